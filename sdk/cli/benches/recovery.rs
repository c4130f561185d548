//! Recovery time on the Linux host: faults injected into the running demo
//! system and, for each, the time from the fault to the restarted PD
//! (a) serving again (its `init` returned) and (b) running `notified` again.
//! Measured twice in the same run: with spares (the default: a restart hands
//! over to a process of the PD's program that is started and waiting) and
//! with `--no-spares` (every restart is a fork and exec), the baseline.
//!
//! `cargo build --release --workspace --bins && cargo bench -p axolotl-cli --bench recovery`
//!
//! The demo's policy damps crash loops (a PD that faults within a second of
//! its start is restarted only after a back-off) and gives up after ten faults
//! in ten seconds, so faults go round the PDs, each PD faulting every 1.2 s.
//! (b) includes waiting for the PD's next event (the consumer's comes with the
//! producer's next batch, every 50 ms), so (a) is the recovery time proper.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{root, Running};
use std::time::{Duration, Instant};

const ROUNDS: usize = 20;
const SPACING: Duration = Duration::from_millis(1_200);
const SUBJECTS: [(&str, &str); 9] = [
    ("consumer", "segv"),
    ("store", "abort"),
    ("producer", "panic"),
    ("ip", "segv"),
    ("filter", "segv"),
    ("tcp", "segv"),
    ("udp", "segv"),
    ("http", "segv"),
    ("echo", "segv"),
];

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p) as usize]
}

/// Per subject: fault -> serving, fault -> first notified, inject -> status
/// says running (microseconds).
type Samples = Vec<(Vec<f64>, Vec<f64>, Vec<f64>)>;

fn measure(name: &str, args: &[&str]) -> Samples {
    let sys = Running::start_args(name, &root().join("system.xml"), args);
    sys.wait_log("persisted count=3");
    let mut samples: Samples = vec![Default::default(); SUBJECTS.len()];
    let mut last = [Instant::now(); SUBJECTS.len()];
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
    let log = sys.log();
    assert!(
        !log.contains("giving up"),
        "the monitor gave up on a PD:\n{log}"
    );
    samples
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("recovery bench: run with `cargo bench -p axolotl-cli --bench recovery`");
        return;
    }
    let mut spares = measure("bench-recovery-spares", &["--net", "none"]);
    let mut fresh = measure("bench-recovery-fresh", &["--net", "none", "--no-spares"]);
    println!(
        "recovery on the Linux host, {ROUNDS} faults per PD (target: <= 1 ms fault to serving), \
         with spares vs every restart a fork and exec (--no-spares), same run"
    );
    // Per mode (spare, fresh): each PD's median fault -> serving.
    let mut medians = [Vec::new(), Vec::new()];
    for (k, (pd, kind)) in SUBJECTS.iter().enumerate() {
        println!("{pd} ({kind}):");
        for (mode, (label, s)) in [("spare", &mut spares[k]), ("fresh", &mut fresh[k])]
            .into_iter()
            .enumerate()
        {
            let (up, notified, outside) = s;
            let m = pct(up, 0.5);
            medians[mode].push(m);
            println!(
                "  {label}: fault -> serving again          median {:>9.1} us   p99 {:>9.1} us",
                m,
                pct(up, 0.99)
            );
            if !notified.is_empty() {
                println!(
                    "  {label}: fault -> first notified         median {:>9.1} us   p99 {:>9.1} us",
                    pct(notified, 0.5),
                    pct(notified, 0.99)
                );
            }
            println!(
                "  {label}: inject -> status says running   median {:>9.1} us   p99 {:>9.1} us",
                pct(outside, 0.5),
                pct(outside, 0.99)
            );
        }
        println!(
            "  spare / fresh, median fault -> serving: {:.2}",
            medians[0][k] / medians[1][k]
        );
    }
    let [with, without] = &mut medians;
    let (a, b) = (pct(with, 0.5), pct(without, 0.5));
    println!(
        "median over the PDs of their medians: spare {a:.1} us, fresh {b:.1} us, ratio {:.2}",
        a / b
    );
}
