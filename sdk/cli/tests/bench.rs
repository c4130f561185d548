//! `axolotl bench-recovery`, shortened: it starts the system, measures each
//! PD's recovery and TCP throughput under kills, and reports them.

mod common;

use common::{axolotl, root};
use std::process::Command;

#[test]
fn the_recovery_benchmark_reports_every_pd_and_the_kill_ratios() {
    let out = Command::new(axolotl())
        .current_dir(root())
        .args([
            "bench-recovery",
            "--no-build",
            "--samples",
            "3",
            "--pds",
            "nic,ip,guardian,store",
            "--kill",
            "nic",
            "--phase",
            "3s",
            "--json",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}):\n{stderr}"));
    let rec = r["recovery"].as_array().unwrap();
    assert_eq!(rec.len(), 4, "{r}");
    for p in rec {
        assert_eq!(p["samples"], 3, "{p}");
        let (median, p99) = (
            p["median_ms"].as_f64().unwrap(),
            p["p99_ms"].as_f64().unwrap(),
        );
        assert!(median > 0.0 && median <= p99 && p99 < 2_000.0, "{p}");
    }
    let t = &r["throughput"];
    assert!(t["baseline_mib_s"].as_f64().unwrap() > 0.1, "{t}");
    assert_eq!(t["wrong_bytes"], 0, "{t}");
    let nic = &t["kills"][0];
    assert_eq!(nic["pd"], "nic");
    for k in ["every_1s", "every_4s"] {
        let ratio = nic[k]["ratio"].as_f64().unwrap();
        assert!(ratio > 0.0 && ratio < 2.0, "{nic}");
    }
}
