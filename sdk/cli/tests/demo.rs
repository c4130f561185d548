//! End-to-end tests of the demo system on the Linux host: real PD processes,
//! real faults, real restarts. They need the PD programs built next to the
//! `axolotl` binary (`cargo build --workspace --bins`; `ci/test` does it).

mod common;

use common::{axolotl, libc_kill, root, Running};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The last value of `key=N` or `key N` after `prefix` in the log.
fn last_number_after(log: &str, prefix: &str) -> Option<u64> {
    log.lines().rev().find_map(|l| {
        let rest = &l[l.find(prefix)? + prefix.len()..];
        rest.trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    })
}

#[test]
fn every_pd_but_the_monitor_recovers_and_workers_keep_their_state() {
    let mut sys = Running::start("recover");
    // The consumer has counted something worth keeping.
    sys.wait_log("persisted count=5");

    let cases = [
        ("consumer", "segv", "memory-access"),
        ("producer", "panic", "panic"),
        ("store", "abort", "abort"),
        ("timer", "segv", "memory-access"),
        ("consumer", "hang", "hang"),
        ("producer", "abort", "abort"),
        ("store", "hang", "hang"),
        ("timer", "hang", "hang"),
        ("timer", "panic", "panic"),
    ];
    let mut restarts = std::collections::HashMap::new();
    for (pd, kind, reported) in cases {
        let before = sys.log();
        let pid_before = sys.pd(pd)["pid"].clone();
        let n = restarts.entry(pd).or_insert(0u64);
        *n += 1;
        // Let it run past the monitor's crash-loop damping window.
        std::thread::sleep(Duration::from_millis(1_100));
        sys.inject(pd, kind);
        let p = sys.wait_restarted(pd, *n);
        assert_ne!(
            p["pid"], pid_before,
            "{pd} was not restarted as a new process"
        );
        assert_eq!(p["last_fault"]["kind"], reported, "{pd}: {p}");
        assert!(p["last_recovery_us"].as_f64().unwrap() > 0.0);
        let log = sys.log();
        let new = &log[before.len()..];
        assert!(
            new.contains(&format!("{pd} faulted: {reported}")) || reported == "hang",
            "monitor did not log the fault of {pd}:\n{new}"
        );
        if kind == "segv" {
            assert!(
                new.contains("at address 0x8"),
                "fault address not reported:\n{new}"
            );
        }
    }

    // Workers resumed from their stored counters, never from zero.
    let log = sys.log();
    let resumed: Vec<u64> = log
        .lines()
        .filter_map(|l| {
            let rest = &l[l.find("consumer resumed at count ")? + 26..];
            rest.split(' ').next()?.parse().ok()
        })
        .collect();
    assert!(resumed.len() >= 3, "consumer restarts not seen:\n{log}");
    assert_eq!(resumed[0], 0, "first start begins at zero");
    assert!(
        resumed[1..].iter().all(|&c| c > 0),
        "a restart lost the count: {resumed:?}"
    );
    assert!(
        resumed.windows(2).all(|w| w[0] <= w[1]),
        "count went backwards: {resumed:?}"
    );
    assert!(!log.contains("never arrived"), "jobs were lost:\n{log}");

    // Work carries on after all that.
    let before = sys.log().matches("persisted count=").count();
    sys.wait_log_count("persisted count=", before + 5);
    for p in sys.status() {
        assert_eq!(p["state"], "running", "{p}");
    }
    assert!(sys.stop().success());
}

#[test]
fn the_monitor_comes_back_with_its_counts_and_still_restarts_others() {
    let sys = Running::start("monitor-restart");
    sys.wait_log("persisted count=3");
    let w = sys.pd("warden");
    assert_eq!(
        w["parent"],
        serde_json::Value::Null,
        "the warden is the root"
    );
    assert_eq!(sys.pd("guardian")["parent"], "warden");

    // The monitor restarts a child and counts it.
    sys.inject("consumer", "segv");
    sys.wait_restarted("consumer", 1);
    let consumer_pid = sys.pd("consumer")["pid"].clone();

    // The monitor itself faults; the warden restarts it.
    let before = sys.log().len();
    sys.inject("guardian", "segv");
    let g = sys.wait_restarted("guardian", 1);
    assert_eq!(g["last_fault"]["kind"], "memory-access", "{g}");
    sys.wait_log("the monitor is back (restart #1)");
    // Its children kept running meanwhile.
    assert_eq!(sys.pd("consumer")["pid"], consumer_pid);
    assert_eq!(sys.pd("producer")["restarts"], 0);

    // The new monitor has the old one's counts: the consumer's next
    // restart is its second, in the monitor's own words.
    std::thread::sleep(Duration::from_millis(1_100));
    sys.inject("consumer", "segv");
    sys.wait_restarted("consumer", 2);
    let log = sys.wait_log("restarting consumer after memory-access (restart #2)");
    assert!(
        !log[before..].contains("restarting consumer after memory-access (restart #1)"),
        "the restarted monitor counted from zero:\n{log}"
    );

    // A child that faults while the monitor is down waits for it: hold
    // the warden so the monitor stays down, fault the monitor and then
    // the producer.
    let warden = sys.pd("warden")["pid"].as_i64().unwrap() as i32;
    libc_kill(warden, libc::SIGSTOP);
    sys.inject("guardian", "segv");
    let start = std::time::Instant::now();
    while sys.pd("guardian")["state"] != "faulted" {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "guardian did not fault"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    sys.inject("producer", "segv");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sys.pd("producer")["state"], "faulted");
    // The consumer still counts jobs without its monitor.
    assert_eq!(sys.pd("consumer")["state"], "running");
    libc_kill(warden, libc::SIGCONT);
    sys.wait_restarted("guardian", 2);
    let p = sys.wait_restarted("producer", 1);
    assert_eq!(p["last_fault"]["kind"], "memory-access");
    sys.wait_log("the monitor is back (restart #2)");
    let log = sys.wait_log("producer recovered");
    assert!(
        log.contains("restarting producer after memory-access (restart #1)"),
        "{log}"
    );
    for p in sys.status() {
        assert_eq!(p["state"], "running", "{p}");
    }
}

#[test]
fn a_short_stall_is_waited_out_and_a_long_one_is_a_hang() {
    let sys = Running::start("stall");
    sys.wait_log("persisted count=3");
    let pid = sys.pd("consumer")["pid"].clone();
    let out = sys.cli(&["inject", "consumer", "stall", "--ms", "150"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "injected stall into consumer\n"
    );
    let log = sys.wait_log("consumer runs on after its stall");
    let counted = log.matches("persisted count=").count();
    // It carries on as the same process, with no restart.
    sys.wait_log_count("persisted count=", counted + 2);
    let c = sys.pd("consumer");
    assert_eq!(
        (c["pid"].clone(), c["restarts"].clone()),
        (pid, 0.into()),
        "{c}"
    );
    // Longer than its heartbeat limit (3 x 100 ms): hung, and restarted.
    std::thread::sleep(Duration::from_millis(1_100));
    let out = sys.cli(&["inject", "consumer", "stall", "--ms", "5000"]);
    assert!(out.status.success());
    let c = sys.wait_restarted("consumer", 1);
    assert_eq!(c["last_fault"]["kind"], "hang", "{c}");
    // Bad durations are refused with the reason.
    let out = sys.cli(&["inject", "consumer", "stall", "--ms", "0"]);
    assert!(!out.status.success());
}

#[test]
fn the_store_keeps_every_acknowledged_put_across_random_kills() {
    let sys = Running::start("store-kills");
    sys.wait_log("persisted count=3");
    let seed = std::process::id() as u64 ^ 0x9e37_79b9_7f4a_7c15;
    let mut x = seed;
    let mut rand = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 1..=6u64 {
        // Kill the store at a random moment of the stream of puts.
        std::thread::sleep(Duration::from_millis(50 + rand() % 400));
        let pid = sys.pd("store")["pid"].as_i64().expect("store has a pid");
        libc_kill(pid as i32, libc::SIGKILL);
        sys.wait_restarted("store", round);
    }
    // Now restart the consumer: it must read back exactly what the store
    // last acknowledged to it.
    std::thread::sleep(Duration::from_millis(1_100));
    let before = sys.log().matches("consumer resumed at count").count();
    // Freeze the consumer's view: the last acknowledged count before the fault.
    sys.inject("consumer", "segv");
    let log = sys.wait_log_count("consumer resumed at count", before + 1);
    let fault_at = log.rfind("injected fault: segv").unwrap();
    let acked = last_number_after(&log[..fault_at], "persisted count=").unwrap();
    let resumed = last_number_after(&log, "consumer resumed at count").unwrap();
    assert_eq!(
        resumed, acked,
        "store lost or invented an acknowledged put (seed {seed:#x})"
    );
    assert!(
        !log.contains("never arrived"),
        "jobs were lost (seed {seed:#x})"
    );
}

#[test]
fn clients_waiting_on_a_hung_store_are_not_taken_for_hung() {
    let sys = Running::start("store-hang");
    sys.wait_log("persisted count=3");
    std::thread::sleep(Duration::from_millis(1_100));
    sys.inject("store", "hang");
    let p = sys.wait_restarted("store", 1);
    assert_eq!(p["last_fault"]["kind"], "hang", "{p}");
    // Both workers were blocked in calls to the store for the whole hang.
    let before = sys.log().matches("persisted count=").count();
    sys.wait_log_count("persisted count=", before + 3);
    for pd in ["producer", "consumer", "timer"] {
        let p = sys.pd(pd);
        assert_eq!(
            p["restarts"],
            0,
            "{pd} was restarted while it waited: {p}\n{}",
            sys.log()
        );
    }
}

#[test]
fn ctrl_c_stops_every_pd_process() {
    let mut sys = Running::start("ctrl-c");
    let pids: Vec<i64> = sys
        .status()
        .iter()
        .filter_map(|p| p["pid"].as_i64())
        .collect();
    assert!(pids.len() >= 5, "{pids:?}");
    assert_eq!(pids.len(), sys.status().len());
    assert!(sys.stop().success());
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .map(|s| s.contains(") Z "))
                    .unwrap_or(true),
            "PD process {pid} outlived axolotl run"
        );
    }
}

#[test]
fn missing_pd_programs_are_named_with_their_line() {
    let empty = std::env::temp_dir().join(format!("axolotl-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let out = Command::new(axolotl())
        .arg("run")
        .arg(root().join("system.xml"))
        .args(["--no-build", "--pd-dir"])
        .arg(&empty)
        .arg("--control")
        .arg(empty.join("c.sock"))
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&empty);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("system.xml:"), "{err}");
    assert!(err.contains("no host program 'consumer'"), "{err}");
    // As many as `axolotl check` counts for the Linux mode.
    let check = Command::new(axolotl())
        .arg("check")
        .arg(root().join("system.xml"))
        .output()
        .unwrap();
    let check = String::from_utf8_lossy(&check.stdout);
    let pds: usize = check
        .split("ok for linux: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no PD count for linux in: {check}"));
    assert!(pds > 10, "{check}");
    assert_eq!(
        err.matches("no host program").count(),
        pds,
        "one line per PD of the linux board: {err}"
    );
}

#[test]
fn programs_built_from_another_system_xml_are_refused() {
    let dir = std::env::temp_dir().join(format!("axolotl-mismatch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(root().join("system.xml")).unwrap();
    // Same wiring, other channel id: the PDs' constants would be wrong.
    let other = text.replace(
        "<end pd=\"consumer\" id=\"3\" />",
        "<end pd=\"consumer\" id=\"5\" />",
    );
    assert_ne!(other, text);
    let path = dir.join("other.xml");
    std::fs::write(&path, other).unwrap();
    let out = Command::new(axolotl())
        .arg("run")
        .arg(&path)
        .args(["--no-build", "--pd-dir"])
        .arg(common::pd_dir())
        .arg("--control")
        .arg(dir.join("c.sock"))
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("built from another system description"),
        "{err}"
    );
}

#[test]
fn check_reports_every_error_with_file_line_and_column() {
    let dir = std::env::temp_dir().join(format!("axolotl-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = std::fs::read_to_string(root().join("system.xml")).unwrap();
    let ok = Command::new(axolotl())
        .arg("check")
        .arg(root().join("system.xml"))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let bad = good
        .replace(
            "<end pd=\"consumer\" id=\"3\" />",
            "<end pd=\"consumer\" id=\"70\" />",
        )
        .replace("priority=\"252\"", "priority=\"300\"");
    let path = dir.join("bad.xml");
    std::fs::write(&path, bad).unwrap();
    let out = Command::new(axolotl())
        .arg("check")
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let located: Vec<&str> = err
        .lines()
        .filter(|l| {
            let mut it = l.splitn(4, ':');
            let (_, line, col) = (it.next(), it.next(), it.next());
            line.is_some_and(|s| s.parse::<u32>().is_ok())
                && col.is_some_and(|s| s.parse::<u32>().is_ok())
        })
        .collect();
    assert!(
        located.len() >= 2,
        "both errors reported with positions:\n{err}"
    );
    assert!(err.contains("70"), "{err}");
    assert!(err.contains("300"), "{err}");
}

#[test]
fn status_and_inject_without_a_running_system_say_so() {
    let out = Command::new(axolotl())
        .args(["status", "--control", "/nonexistent/axolotl.sock"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("axolotl run"));
}

#[test]
fn inject_rejects_unknown_pds_and_kinds() {
    let sys = Running::start("inject-errors");
    let out = sys.cli(&["inject", "nosuchpd", "segv"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no PD named 'nosuchpd'"));
    let out = sys.cli(&["inject", "consumer", "explode"]);
    assert!(!out.status.success());
    for p in sys.status() {
        assert_eq!(p["restarts"], 0, "{p}");
    }
}

/// The monitor publishes every PD's incarnation; the store keeps it in the
/// monitor's namespace; the consumer, which watches its producer there,
/// hears of each restart, also after the store and the monitor themselves
/// restarted.
#[test]
fn a_neighbour_learns_of_each_restart_through_the_store() {
    let sys = Running::start("incarnations");
    sys.wait_log("watching producer's incarnation (now 0)");
    // Faults the producer for its `n`th restart; the consumer's words.
    let restart_producer = |kind: &str, n: u64| {
        std::thread::sleep(Duration::from_millis(1_100));
        sys.inject("producer", kind);
        sys.wait_restarted("producer", n);
        sys.wait_log(&format!(
            "producer restarted: it is at incarnation {n} (the store says so)"
        ))
    };
    restart_producer("segv", 1);

    // The store restarts: the watch and the monitor's namespace are in its
    // journal, and it reads the board afresh; the producer's next restart
    // still reaches the consumer. (A publication missed while the store
    // was down: storage/store/tests/board.rs.)
    sys.inject("store", "segv");
    sys.wait_restarted("store", 1);
    restart_producer("panic", 2);

    // The monitor restarts; it still publishes, with the counts it kept.
    sys.inject("guardian", "segv");
    sys.wait_restarted("guardian", 1);
    sys.wait_log("the monitor is back (restart #1)");
    let log = restart_producer("segv", 3);
    assert!(
        !log.contains("notification on unexpected channel"),
        "the board's channel reached the wrong end:\n{log}"
    );
}
