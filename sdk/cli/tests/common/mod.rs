//! Drives a running `axolotl run` for the integration tests and the
//! recovery benchmark.
#![allow(dead_code)]

pub mod net;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const TIMEOUT: Duration = Duration::from_secs(30);

pub fn axolotl() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_axolotl"))
}

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn pd_dir() -> PathBuf {
    let dir = axolotl().parent().unwrap().to_path_buf();
    for pd in [
        "guardian", "timer", "store", "producer", "consumer", "nic", "ip", "filter", "tcp", "udp",
        "http", "echo",
    ] {
        assert!(
            dir.join(pd).is_file(),
            "PD program {pd} is missing from {}: run `cargo build --workspace --bins` first",
            dir.display()
        );
    }
    dir
}

/// A running demo system, stopped with SIGINT when dropped.
pub struct Running {
    child: Option<Child>,
    dir: PathBuf,
    log: PathBuf,
}

impl Running {
    pub fn start(name: &str) -> Running {
        Running::start_with(name, &root().join("system.xml"))
    }

    /// Starts the system described by `system`, its NIC unplugged.
    pub fn start_with(name: &str, system: &Path) -> Running {
        Running::start_args(name, system, &["--net", "none"])
    }

    /// Starts the system described by `system` with `args` for `axolotl run`.
    pub fn start_args(name: &str, system: &Path, args: &[&str]) -> Running {
        let dir = std::env::temp_dir().join(format!("axolotl-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log");
        let child = Command::new(axolotl())
            .arg("run")
            .arg(system)
            .arg("--no-build")
            .arg("--pd-dir")
            .arg(pd_dir())
            .arg("--control")
            .arg(dir.join("control.sock"))
            .args(args)
            .env("AXOLOTL_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("stdout")).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let r = Running {
            child: Some(child),
            dir,
            log,
        };
        r.wait_log("system up: all ");
        r
    }

    /// What `axolotl run` printed on standard output.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.join("stdout")).unwrap_or_default()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for a log line containing `needle`; returns the log.
    pub fn wait_log(&self, needle: &str) -> String {
        self.wait_log_count(needle, 1)
    }

    pub fn wait_log_count(&self, needle: &str, n: usize) -> String {
        let start = Instant::now();
        loop {
            let log = self.log();
            if log.matches(needle).count() >= n {
                return log;
            }
            assert!(
                start.elapsed() < TIMEOUT,
                "no {n}x '{needle}' within {TIMEOUT:?}; log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The system's control socket.
    pub fn control(&self) -> PathBuf {
        self.dir.join("control.sock")
    }

    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(axolotl())
            .args(args)
            .arg("--control")
            .arg(self.dir.join("control.sock"))
            .output()
            .unwrap()
    }

    pub fn status(&self) -> Vec<Value> {
        let out = self.cli(&["status", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    /// Each PD's name and restarts, in status order.
    pub fn restarts(&self) -> Vec<(String, u64)> {
        self.status()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap_or("?").to_string(),
                    p["restarts"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    }

    pub fn pd(&self, name: &str) -> Value {
        self.status()
            .into_iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no PD {name} in status"))
    }

    pub fn inject(&self, pd: &str, kind: &str) {
        let out = self.cli(&["inject", pd, kind]);
        assert!(
            out.status.success(),
            "inject {pd} {kind}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Waits until `pd` is running with at least `restarts` restarts.
    pub fn wait_restarted(&self, pd: &str, restarts: u64) -> Value {
        let start = Instant::now();
        loop {
            let p = self.pd(pd);
            if p["state"] == "running" && p["restarts"].as_u64() >= Some(restarts) {
                return p;
            }
            assert!(
                start.elapsed() < TIMEOUT,
                "{pd} did not come back: {p}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to `within` for `axolotl run` to end by itself; its exit
    /// status, or `None` if it still runs.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < within {
            if let Some(s) = self.child.as_mut()?.try_wait().unwrap() {
                self.child = None;
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Stops the system with SIGINT; returns its exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        libc_kill(child.id() as i32, libc::SIGINT);
        let start = Instant::now();
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return s;
            }
            if start.elapsed() > TIMEOUT {
                let _ = child.kill();
                panic!("axolotl run did not stop on SIGINT");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn libc_kill(pid: i32, sig: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid, sig) };
}

/// A deterministic pseudo-random byte stream (xorshift), so that any
/// misplaced, lost or repeated byte shows.
pub fn pattern(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
