//! `axolotl bench-store`: the state store's put/get latency and commit
//! rate, each against a baseline measured in the same run.
//!
//! - On a QEMU board: boots `storage/store-bench/store-bench.xml` (the store
//!   and one client, nothing else), whose client times puts, gets and PINGs
//!   of the same words through protected calls
//!   (`axolotl-store-bench`), and prints the figures it logs.
//! - On `linux`: runs the store's request-path benchmark
//!   (`cargo bench -p axolotl-store --bench store`), whose baseline is an
//!   fsync-free append to a file.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The benchmark's own system description, under the source tree.
pub const SYSTEM: &str = "storage/store-bench/store-bench.xml";

/// `axolotl bench-store`'s options.
#[derive(clap::Args, Clone, Debug)]
pub struct StoreBenchArgs {
    /// Where to measure: linux, qemu_virt_aarch64, x86_64_generic
    /// (comma-separated). Default: linux, and both QEMU boards where a
    /// Microkit SDK is installed.
    #[arg(long, value_delimiter = ',')]
    pub board: Vec<String>,
    /// The seL4 kernel configuration on QEMU (debug prints the figures
    /// through the kernel; a release kernel prints nothing).
    #[arg(long, default_value = "debug", value_parser = ["debug"])]
    pub config: String,
    /// Give up on a board after this many seconds (a build included).
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
}

/// The boards measured by default.
fn default_boards() -> Vec<String> {
    let mut boards = vec!["linux".to_string()];
    match crate::image::toolchain("qemu_virt_aarch64", "debug") {
        Ok(_) => boards.extend(["qemu_virt_aarch64".into(), "x86_64_generic".into()]),
        Err(e) => eprintln!("bench-store: seL4 boards skipped: {}", first_line(&e)),
    }
    boards
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

pub fn run(args: &StoreBenchArgs) -> Result<(), String> {
    let boards = if args.board.is_empty() {
        default_boards()
    } else {
        args.board.clone()
    };
    let mut failed = Vec::new();
    for board in &boards {
        println!("== {board}");
        let r = match board.as_str() {
            "linux" => host(),
            "qemu_virt_aarch64" | "x86_64_generic" => {
                on_qemu(board, &args.config, Duration::from_secs(args.timeout))
            }
            other => Err(format!(
                "unknown board '{other}': linux, qemu_virt_aarch64 or x86_64_generic"
            )),
        };
        if let Err(e) = r {
            eprintln!("bench-store: {board}: {e}");
            failed.push(board.clone());
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("no figures from {}", failed.join(", ")))
    }
}

/// The host: the store's request path, by `cargo bench`.
fn host() -> Result<(), String> {
    let root = crate::image::source_root();
    eprintln!("bench-store: linux: cargo bench -p axolotl-store --bench store (builds first)");
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["bench", "-q", "-p", "axolotl-store", "--bench", "store"])
        .current_dir(&root)
        .status()
        .map_err(|e| format!("cannot run cargo in {}: {e}", root.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo bench failed ({status})"))
    }
}

/// A QEMU board: builds and boots the benchmark's image, prints its lines.
fn on_qemu(board: &str, config: &str, timeout: Duration) -> Result<(), String> {
    let system: PathBuf = crate::image::source_root().join(SYSTEM);
    eprintln!("bench-store: {board}: building the image of {SYSTEM}");
    let img = crate::image::build(&system, board, config)?;
    eprintln!("bench-store: {board}: booting {}", img.display());
    let exe = std::env::current_exe().map_err(|e| format!("this program: {e}"))?;
    let control =
        std::env::temp_dir().join(format!("axolotl-store-bench-{}.sock", std::process::id()));
    let mut child = Command::new(exe)
        .args([
            "qemu",
            "--board",
            board,
            "--config",
            config,
            "--net",
            "none",
            "--no-build",
        ])
        .arg("--control")
        .arg(&control)
        .arg("--timeout")
        .arg(timeout.as_secs().to_string())
        .arg(&system)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start QEMU: {e}"))?;
    let stdout = child.stdout.take().ok_or("no console")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    let mut said = Instant::now();
    let result = loop {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(line) => {
                let Some(at) = line.find("store-bench:") else {
                    if line.contains("ERROR") || line.contains("panicked") {
                        eprintln!("{line}");
                    }
                    continue;
                };
                let text = &line[at..];
                println!("{text}");
                if text.starts_with(axolotl_store_bench::DONE) {
                    break Ok(());
                }
                if line.contains("ERROR") {
                    break Err(text.to_string());
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                break Err("QEMU ended before the benchmark was done".into())
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if start.elapsed() > timeout {
            break Err(format!("no result within {} s", timeout.as_secs()));
        }
        if said.elapsed() > Duration::from_secs(15) {
            eprintln!(
                "bench-store: {board}: running ({} s)...",
                start.elapsed().as_secs()
            );
            said = Instant::now();
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(&control);
    result
}
