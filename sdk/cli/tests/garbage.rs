//! Hostile neighbours: each network PD in turn, and the demo's producer,
//! writes garbage into every ring and link it produces (random descriptors
//! published on its rings, random bytes in its free buffers; `axolotl
//! inject PD garbage`) while traffic runs. Its neighbours count what they refused, drop it and carry
//! on: no PD restarts, no byte arrives wrong, echoes keep coming back
//! whole, and afterwards every link's buffers are back with their senders.

mod common;

use common::net::{
    assert_echoed, assert_udp_echoed, http_get, start_serving, status_json, Traffic,
};
use serde_json::Value;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

const PDS: [&str; 7] = ["nic", "ip", "filter", "tcp", "udp", "http", "echo"];

/// `bad` summed over every PD but `except`, from the status page.
fn bad_elsewhere(pds: &[Value], except: &str) -> u64 {
    pds.iter()
        .filter(|p| p["name"] != except)
        .filter_map(|p| p["counters"]["bad"].as_u64())
        .sum()
}

#[test]
fn garbage_from_any_network_pd_is_counted_and_dropped_by_its_neighbours() {
    let (sys, p) = start_serving("garbage");
    assert_echoed(p.echo, 4096, 1);
    let traffic = Traffic::start(&p);
    let before = sys.restarts();

    for pd in PDS {
        let bad_before = bad_elsewhere(&status_json(p.http), pd);
        let exact_before = traffic.exact.load(Relaxed);
        // A garbage fault publishes a random number of random descriptors,
        // about half of them impossible: a few faults make it certain
        // that some neighbour refuses one.
        let mut counted = false;
        for _ in 0..3 {
            sys.inject(pd, "garbage");
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(3) {
                // Counters are reported at most every 500 ms.
                std::thread::sleep(Duration::from_millis(250));
                if bad_elsewhere(&status_json(p.http), pd) > bad_before {
                    counted = true;
                    break;
                }
            }
            if counted {
                break;
            }
        }
        assert!(
            counted,
            "no neighbour of {pd} counted anything of its garbage\n{}",
            sys.log()
        );
        // Still serving through it, exactly.
        let t = Instant::now();
        while traffic.exact.load(Relaxed) < exact_before + 3 {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "echoes stopped coming back whole after garbage from {pd}\n{}",
                sys.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            sys.restarts(),
            before,
            "garbage from {pd} restarted a PD\n{}",
            sys.log()
        );
        let log = sys.log();
        assert!(
            log.lines()
                .any(|l| l.contains(&format!(" {pd} ")) && l.contains("garbage: ")),
            "{pd} wrote no garbage\n{log}"
        );
    }
    // The demo's producer too: its consumer drops job numbers that cannot
    // be true instead of counting from them.
    for _ in 0..3 {
        sys.inject("producer", "garbage");
        std::thread::sleep(Duration::from_millis(300));
    }
    sys.wait_log("is implausible");
    assert_eq!(
        sys.restarts(),
        before,
        "garbage from the producer restarted a PD"
    );
    let (wrong, exact) = traffic.finish();
    assert_eq!(wrong, 0, "wrong bytes or datagrams came back");
    assert!(exact > 0);

    // Quiet: every sender has its buffers back but for a few in flight,
    // and the path carries data exactly, big transfers too.
    for seed in 0..4 {
        assert_echoed(p.echo, 100, 900 + seed);
        let _ = http_get(p.http, "/");
        std::thread::sleep(Duration::from_millis(700));
    }
    for pd in status_json(p.http) {
        let out = pd["counters"]["buffers_out"].as_u64().unwrap_or(0);
        assert!(
            out <= 4,
            "{} has {out} buffers out after garbage: {pd}",
            pd["name"]
        );
    }
    assert_echoed(p.echo, 4 << 20, 7);
    assert_udp_echoed(p.udp, 20);
    assert_eq!(sys.restarts(), before);
}
