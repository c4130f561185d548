//! Recovery time on the Linux host: faults injected into the running demo
//! system and, for each, the time from the fault to the restarted PD
//! (a) serving again (its `init` returned) and (b) running `notified` again.
//!
//! `cargo build --release --workspace --bins && cargo bench -p axolotl-cli --bench recovery`
//!
//! The demo's policy damps crash loops (a PD that faults within a second of
//! its start is restarted only after a back-off) and gives up after ten faults
//! in ten seconds, so faults go round three PDs, each PD faulting every 1.2 s.
//! (b) includes waiting for the PD's next event (the consumer's comes with the
//! producer's next batch, every 50 ms), so (a) is the recovery time proper.

#[path = "../tests/common/mod.rs"]
mod common;

use common::Running;
use std::time::{Duration, Instant};

const ROUNDS: usize = 20;
const SPACING: Duration = Duration::from_millis(1_200);
const SUBJECTS: [(&str, &str); 3] = [
    ("consumer", "segv"),
    ("store", "abort"),
    ("producer", "panic"),
];

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p) as usize]
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("recovery bench: run with `cargo bench -p axolotl-cli --bench recovery`");
        return;
    }
    let sys = Running::start("bench-recovery");
    sys.wait_log("persisted count=3");
    let mut samples: Vec<(Vec<f64>, Vec<f64>, Vec<f64>)> = vec![Default::default(); SUBJECTS.len()];
    let mut last = [Instant::now(); 3];
    std::thread::sleep(SPACING);
    for round in 0..ROUNDS {
        for (k, (pd, kind)) in SUBJECTS.iter().enumerate() {
            let wait = SPACING.saturating_sub(last[k].elapsed());
            std::thread::sleep(wait);
            let restarts = sys.pd(pd)["restarts"].as_u64().unwrap();
            let start = Instant::now();
            sys.inject(pd, kind);
            let p = sys.wait_restarted(pd, restarts + 1);
            last[k] = Instant::now();
            let s = &mut samples[k];
            s.2.push(start.elapsed().as_secs_f64() * 1e6);
            s.0.push(p["last_recovery_us"].as_f64().unwrap());
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(2) {
                if let Some(us) = sys.pd(pd)["last_recovery_to_notified_us"].as_f64() {
                    s.1.push(us);
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        if round % 5 == 4 {
            eprint!(".");
        }
    }
    eprintln!();
    println!(
        "recovery on the Linux host, {ROUNDS} faults per PD (target: <= 1 ms fault to serving)"
    );
    for (k, (pd, kind)) in SUBJECTS.iter().enumerate() {
        let (up, notified, outside) = &mut samples[k];
        println!("{pd} ({kind}):");
        println!(
            "  fault -> serving again          median {:>9.1} us   p99 {:>9.1} us",
            pct(up, 0.5),
            pct(up, 0.99)
        );
        if !notified.is_empty() {
            println!(
                "  fault -> first notified         median {:>9.1} us   p99 {:>9.1} us",
                pct(notified, 0.5),
                pct(notified, 0.99)
            );
        }
        println!(
            "  inject -> status says running   median {:>9.1} us   p99 {:>9.1} us",
            pct(outside, 0.5),
            pct(outside, 0.99)
        );
    }
    let log = sys.log();
    assert!(
        !log.contains("giving up"),
        "the monitor gave up on a PD:\n{log}"
    );
}
