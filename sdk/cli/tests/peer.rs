//! A peer on the same link: the system's NIC on a TAP device in a network
//! namespace this test makes (`unshare -rn`, no root needed where user
//! namespaces are allowed), the namespace's own kernel stack as the peer.
//! It pings the system, uses its ports, and sends hostile frames (ping of
//! death, overlapping fragments, bad checksums, truncated headers, bogus
//! TCP options, a SYN flood, random frames) while a transfer goes on; see
//! tests/peer/peer.py.

mod common;

use common::{axolotl, pd_dir, root};
use std::process::Command;

#[test]
fn a_peer_on_the_link_pings_reaches_the_ports_and_cannot_break_it() {
    let probe = Command::new("unshare")
        .args(["-rn", "ip", "tuntap", "add", "dev", "probe0", "mode", "tap"])
        .output();
    match probe {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            eprintln!(
                "skipped: cannot make a TAP device in a user and network namespace here ({})",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            return;
        }
        Err(e) => {
            eprintln!("skipped: no unshare ({e})");
            return;
        }
    }
    let dir = std::env::temp_dir().join(format!("axolotl-peer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let script = root().join("sdk/cli/tests/peer/run.sh");
    let out = Command::new("unshare")
        .arg("-rn")
        .arg(&script)
        .arg(axolotl())
        .arg(pd_dir())
        .arg(&dir)
        .arg(root().join("system.xml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("{stdout}");
    for check in [
        "ping",
        "tcp-echo",
        "udp-echo",
        "http",
        "transfer-during-hostile-input",
        "ping-after",
        "tcp-echo-after",
        "no-network-pd-restarted",
        "malformed-counted",
    ] {
        assert!(
            stdout.contains(&format!("PEER-OK {check}")),
            "peer check '{check}' failed:\n{stdout}\n{}\nsystem log (end):\n{}",
            String::from_utf8_lossy(&out.stderr),
            log.lines().rev().take(40).collect::<Vec<_>>().join("\n")
        );
    }
    assert!(out.status.success(), "{stdout}");
}
