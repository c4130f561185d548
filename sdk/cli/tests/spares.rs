//! Spares: once the system is up, `axolotl run` keeps a process of each
//! restartable PD's program started and waiting, owning nothing, and a
//! restart hands over to it instead of waiting for fork, exec and linking.

mod common;

use common::{libc_kill, root, Running};
use std::path::Path;
use std::time::Duration;

/// The pid of the `n`th (1-based) spare of `pd` the log names, waiting up
/// to a minute for it.
fn nth_spare(sys: &Running, pd: &str, n: usize) -> i64 {
    let needle = format!("spare of {pd} waits as pid ");
    let log = sys.wait_log_count(&needle, n);
    let line = log
        .lines()
        .filter(|l| l.contains(&needle))
        .nth(n - 1)
        .unwrap();
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

fn gone(pid: i64) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
        || std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true)
}

/// What the process `pid` has mapped, from /proc.
fn maps(pid: i64) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default()
}

#[test]
fn a_restart_hands_over_to_the_waiting_spare_and_a_new_one_waits_in_its_place() {
    let mut sys = Running::start("spares");
    let spare = nth_spare(&sys, "consumer", 1);
    let running = sys.pd("consumer")["pid"].as_i64().unwrap();
    assert_ne!(spare, running);
    // Waiting, it owns nothing: none of the consumer's regions is mapped.
    let mapped = maps(running);
    let region = mapped
        .lines()
        .find(|l| l.contains("memfd:jobs_ring"))
        .unwrap_or_else(|| panic!("the consumer maps no jobs ring:\n{mapped}"))
        .split('-')
        .next()
        .unwrap()
        .to_string();
    assert!(
        !maps(spare).contains(&region),
        "the spare mapped {region} before taking over"
    );

    let before = sys.pd("consumer")["restarts"].as_u64().unwrap();
    sys.inject("consumer", "segv");
    let p = sys.wait_restarted("consumer", before + 1);
    assert_eq!(
        p["pid"].as_i64(),
        Some(spare),
        "the spare did not take over"
    );
    assert!(maps(spare).contains(&region));
    // It is the consumer, its state from the store: it resumed twice.
    sys.wait_log_count("consumer resumed at count", 2);
    let next = nth_spare(&sys, "consumer", 2);
    assert_ne!(next, spare);

    let producer = nth_spare(&sys, "producer", 1);
    assert!(sys.stop().success());
    for pid in [producer, next] {
        assert!(gone(pid), "spare {pid} outlived axolotl run");
    }
}

#[test]
fn a_spare_that_dies_waiting_is_noticed_and_the_restart_starts_afresh() {
    let sys = Running::start("spare-dies");
    let spare = nth_spare(&sys, "producer", 1);
    libc_kill(spare as i32, 9);
    sys.wait_log(&format!(
        "the spare of producer (pid {spare}) ended while waiting"
    ));
    let before = sys.pd("producer")["restarts"].as_u64().unwrap();
    sys.inject("producer", "panic");
    let p = sys.wait_restarted("producer", before + 1);
    let pid = p["pid"].as_i64().unwrap();
    assert_ne!(pid, spare);
    assert!(!gone(pid));
    // Once it is up, it has a spare again.
    assert_ne!(nth_spare(&sys, "producer", 2), spare);
}

#[test]
fn without_spares_no_process_waits_and_restarts_still_work() {
    let sys = Running::start_args(
        "no-spares",
        &root().join("system.xml"),
        &["--net", "none", "--no-spares"],
    );
    let before = sys.pd("consumer")["restarts"].as_u64().unwrap();
    sys.inject("consumer", "segv");
    sys.wait_restarted("consumer", before + 1);
    // Spares would start as soon as the system is up and each PD again.
    std::thread::sleep(Duration::from_millis(500));
    let log = sys.log();
    assert!(!log.contains("spare of"), "{log}");
    assert!(log.contains("consumer is serving again"), "{log}");
}
