//! `axolotl campaign` against `axolotl run`, as CI runs it: a short seeded
//! campaign with traffic must finish with every fault injected and no
//! system failure, and the same seed must give the same faults.

mod common;

use common::net::{start_serving, Ports};
use common::{axolotl, Running};
use std::process::Command;

fn campaign(sys: &Running, p: &Ports, args: &[&str]) -> (std::process::Output, serde_json::Value) {
    let out = Command::new(axolotl())
        .arg("campaign")
        .arg("--control")
        .arg(sys.control())
        .args(["--echo-port", &p.echo.to_string()])
        .args(["--udp-port", &p.udp.to_string()])
        .args(["--http-port", &p.http.to_string()])
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let r: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}):\n{stderr}"));
    (out, r)
}

#[test]
fn a_short_seeded_campaign_finds_no_system_failure() {
    let (sys, p) = start_serving("campaign");

    // The same seed, the same faults; another seed, others.
    let plan = |seed: &str| campaign(&sys, &p, &["--faults", "40", "--seed", seed, "--dry-run"]).1;
    assert_eq!(plan("5"), plan("5"));
    assert_ne!(plan("5")["plan"], plan("6")["plan"]);
    assert_eq!(plan("5")["plan"].as_array().unwrap().len(), 40);
    // The monitor is faulted too (the warden restarts it), but never hung:
    // nothing would notice.
    let many = campaign(&sys, &p, &["--faults", "300", "--seed", "7", "--dry-run"]).1;
    let many = many["plan"].as_array().unwrap();
    assert!(many.iter().any(|f| f[0] == "guardian"), "{many:?}");
    assert!(!many.iter().any(|f| f[0] == "guardian" && f[1] == "hang"));
    // Stalls, when asked for: never into the monitor either.
    let stalls = campaign(
        &sys,
        &p,
        &[
            "--faults",
            "200",
            "--seed",
            "7",
            "--kinds",
            "stall,segv",
            "--dry-run",
        ],
    )
    .1;
    let stalls = stalls["plan"].as_array().unwrap();
    assert!(stalls.iter().any(|f| f[1] == "stall"));
    assert!(!stalls.iter().any(|f| f[0] == "guardian" && f[1] == "stall"));
    assert!(!many.iter().any(|f| f[0] == "warden"));

    let (out, r) = campaign(
        &sys,
        &p,
        &["--faults", "16", "--seed", "5", "--interval", "400"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\n{stderr}\n{}", r, sys.log());
    assert_eq!(r["injected"], 16);
    assert_eq!(r["system_failures"], 0, "{r}");
    let pds = r["pds"].as_object().unwrap();
    let sum = |k: &str| pds.values().map(|t| t[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(sum("injected"), 16);
    assert_eq!(
        sum("unnoticed") + sum("noticed") + sum("system_failures"),
        16
    );
    assert!(
        r["traffic"]["tcp_connections"].as_u64().unwrap() > 10,
        "{r}"
    );
    // Every fault was a real restart, as the system itself counts them.
    let restarts: u64 = sys
        .status()
        .iter()
        .filter(|s| pds.contains_key(s["name"].as_str().unwrap_or("")))
        .map(|s| s["restarts"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(restarts, 16, "restarts on the status page");
    // Stalls are waited out: the PDs run on, and no client sees a wrong byte.
    let (out, r) = campaign(
        &sys,
        &p,
        &[
            "--faults",
            "6",
            "--seed",
            "3",
            "--kinds",
            "stall",
            "--interval",
            "300",
            "--pds",
            "ip,filter,udp,store",
        ],
    );
    assert!(
        out.status.success(),
        "{r}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(r["injected"], 6);
    assert_eq!(r["system_failures"], 0, "{r}");
    // Not the warden: it is the root, and nothing restarts it.
    assert!(!pds.contains_key("warden"));
}

/// Bad options are refused with a reason, before any fault.
#[test]
fn a_campaign_against_no_system_says_so() {
    let out = Command::new(axolotl())
        .args([
            "campaign",
            "--faults",
            "3",
            "--control",
            "/nonexistent/control.sock",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach a running system"), "{err}");
}
