//! Neighbours resynchronise: every network PD restarted again and again
//! under traffic, and afterwards no byte arrived wrong, every link's
//! buffers are back with their senders, and the path still carries data
//! exactly.
//!
//! `AXOLOTL_RESTARTS` sets the restarts per PD (default 20, what CI runs;
//! the record is `AXOLOTL_RESTARTS=1000 cargo test -p axolotl-cli --test
//! restarts -- --nocapture`, about 7 minutes on 2 cores; see net/README.md).

mod common;

use common::net::{assert_echoed, http_get, start_serving, status_json, Traffic};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

const PDS: [&str; 7] = ["nic", "ip", "filter", "udp", "tcp", "http", "echo"];

#[test]
fn network_pds_restarted_again_and_again_under_traffic_lose_no_buffer_and_no_byte() {
    let n: u64 = std::env::var("AXOLOTL_RESTARTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let (sys, p) = start_serving("restarts");
    assert_echoed(p.echo, 4096, 1);

    // Traffic all along: TCP echo of random sizes, UDP echo, status pages.
    // Connections a restart resets are allowed; a wrong byte is not.
    let traffic = Traffic::start(&p);
    let exact = traffic.exact.clone();

    // The faults: round after round, a null-pointer write into each
    // network PD, each waited for until it is back. A PD is faulted at
    // most every 400 ms: past its crash-loop damping (200 ms) and below
    // the monitor's give-up rate (30 in 10 s).
    let t0 = Instant::now();
    for round in 1..=n {
        let started = Instant::now();
        for pd in PDS {
            sys.inject(pd, "segv");
            sys.wait_restarted(pd, round);
        }
        if round % 50 == 0 {
            eprintln!(
                "restarts: round {round} of {n} ({} s), {} exact echoes",
                t0.elapsed().as_secs(),
                exact.load(Relaxed)
            );
        }
        if let Some(rest) = Duration::from_millis(400).checked_sub(started.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    let (wrong, exact) = traffic.finish();
    assert_eq!(wrong, 0, "wrong bytes or datagrams came back");
    assert!(exact > 0, "no echo came back whole during the faults");

    // Quiet now: a few small exchanges through every PD, far enough apart
    // for each to report its counters, then every sender must have its
    // buffers back but for the last few in flight.
    for seed in 0..4 {
        assert_echoed(p.echo, 100, 900 + seed);
        let _ = http_get(p.http, "/");
        std::thread::sleep(Duration::from_millis(700));
    }
    let pds = status_json(p.http);
    for name in PDS {
        let pd = pds
            .iter()
            .find(|x| x["name"] == name)
            .unwrap_or_else(|| panic!("{name} not on the status page"));
        // At least the injected ones (a loaded machine may add a hang).
        assert!(pd["restarts"].as_u64() >= Some(n), "{pd}");
        assert_eq!(pd["state"], "running", "{pd}");
        let out = pd["counters"]["buffers_out"]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} reported no counters: {pd}"));
        assert!(
            out <= 4,
            "{name} has {out} buffers out with its receivers after {n} restarts of each PD: a leak ({pd})"
        );
    }
    // And the path carries data exactly, big transfers too.
    assert_echoed(p.echo, 4 << 20, 7);
}
