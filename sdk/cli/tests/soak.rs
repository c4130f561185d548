//! `axolotl soak` on the host, as CI runs it: half a minute of byte-checked
//! traffic with a fault every two seconds; the report must show traffic,
//! faults, every PD restarted only by them, and memory for each process.

mod common;

use common::{axolotl, pd_dir, root};
use std::process::Command;

#[test]
fn a_short_soak_with_faults_passes_and_reports_everything() {
    pd_dir(); // the PD programs are built
    let out = Command::new(axolotl())
        .arg("soak")
        .arg(root().join("system.xml"))
        .args([
            "--duration",
            "30s",
            "--fault-every",
            "2s",
            "--seed",
            "7",
            "--json",
        ])
        .args(["--no-build"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let r: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}):\n{stderr}"));
    assert!(
        out.status.success(),
        "soak failed: {}\n{stderr}",
        r["failures"]
    );
    assert_eq!(r["passed"], true);
    assert!(
        r["tcp"]["connections"].as_u64().unwrap() > 100,
        "{}",
        r["tcp"]
    );
    assert!(
        r["tcp"]["bytes_echoed"].as_u64().unwrap() > 1 << 20,
        "{}",
        r["tcp"]
    );
    assert_eq!(r["tcp"]["wrong_bytes"], 0);
    assert_eq!(r["tcp"]["refused"], 0);
    assert!(r["udp"]["received"].as_u64().unwrap() > 100, "{}", r["udp"]);
    assert!(r["status_page"]["pages"].as_u64().unwrap() > 5);
    let faults = r["faults_injected"].as_u64().unwrap();
    assert!(faults >= 10, "{faults} faults");
    // Every fault restarted its PD, and nothing else did.
    let restarts: u64 = r["restarts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["restarts"].as_u64().unwrap())
        .sum();
    assert_eq!(restarts, faults, "{}", r["restarts"]);
    // Memory of every PD process and of axolotl run, at both ends.
    let mem = r["memory"].as_array().unwrap();
    for name in [
        "guardian",
        "tcp",
        "echo",
        "axolotl run (supervisor, gateway)",
    ] {
        let m = mem
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("{name}"));
        assert!(m["kib_start"].as_u64().unwrap() > 100, "{m}");
        assert!(m["kib_end"].as_u64().unwrap() > 100, "{m}");
    }
    assert!(stderr.contains("soak: "), "no progress lines: {stderr}");
}
