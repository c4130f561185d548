//! End-to-end tests of the network on the Linux host: the NIC driver, IP,
//! filter, TCP, UDP and status page PDs as processes, reached through the
//! host gateway's port forwards, as a user reaches them.

mod common;

use common::net::{
    assert_echoed, assert_udp_echoed, connect, discard, echo, http_get, start_serving, status_json,
    wait_echoed,
};
use common::pattern;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

#[test]
fn echo_discard_udp_and_the_status_page_through_the_split_stack() {
    let (sys, p) = start_serving("net-basic");
    let out = sys.stdout();
    for line in p.forward_lines() {
        assert!(out.contains(&line), "no '{line}' in:\n{out}");
    }

    // TCP echo: from one byte to a few MiB, exactly.
    for n in [1, 1460, 1461, 65_536, 4 << 20] {
        assert_echoed(p.echo, n, n as u64);
    }

    // TCP discard takes everything and sends nothing back.
    let rest = discard(p.discard, 2 << 20);
    assert!(rest.is_empty(), "discard sent {} bytes back", rest.len());

    // UDP echo.
    assert_udp_echoed(p.udp, 20);

    // The status page lists every PD as running, with counters.
    let page = http_get(p.http, "/");
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(page.contains("Content-Type: text/html"), "{page}");
    for pd in [
        "warden", "guardian", "timer", "store", "nic", "ip", "filter", "tcp", "udp", "http", "echo",
    ] {
        assert!(
            page.contains(&format!("<tr><td>{pd}</td><td>running</td>")),
            "{pd} not running in:\n{page}"
        );
    }
    let pds = status_json(p.http);
    let tcp = pds.iter().find(|p| p["name"] == "tcp").unwrap().clone();
    assert!(
        tcp["counters"]["packets_in"].as_u64().unwrap_or(0) > 100,
        "{tcp}"
    );
    assert!(http_get(p.http, "/nothing").starts_with("HTTP/1.1 404 "));
    let mut bad = connect(p.http);
    bad.write_all(b"BREW /pot HTCPCP/1.0\r\n\r\n").unwrap();
    let mut answer = String::new();
    bad.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
}

#[test]
fn a_hundred_mib_and_several_connections_at_once_come_back_exact() {
    let (_sys, p) = start_serving("net-bulk");
    let start = Instant::now();
    assert_echoed(p.echo, 100 << 20, 42);
    eprintln!("100 MiB echoed in {:?}", start.elapsed());
    let workers: Vec<_> = (0..6)
        .map(|i| std::thread::spawn(move || assert_echoed(p.echo, 4 << 20, 1000 + i)))
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}

#[test]
fn faults_in_the_network_pds_do_not_corrupt_or_lose_a_transfer() {
    let (sys, p) = start_serving("net-faults");
    assert_echoed(p.echo, 1 << 20, 1);
    let mut restarts = std::collections::HashMap::new();
    for (pd, kind) in [
        ("nic", "segv"),
        ("ip", "segv"),
        ("filter", "segv"),
        ("udp", "panic"),
        ("http", "segv"),
        ("nic", "hang"),
        ("ip", "hang"),
        ("filter", "hang"),
    ] {
        let n = 16 << 20;
        let seed = restarts.len() as u64 + 7;
        let port = p.echo;
        let transfer = std::thread::spawn(move || {
            let got = echo(port, n, seed);
            (got, Instant::now())
        });
        std::thread::sleep(Duration::from_millis(150));
        sys.inject(pd, kind);
        let injected = Instant::now();
        let count = restarts.entry(pd).or_insert(0u64);
        *count += 1;
        sys.wait_restarted(pd, *count);
        let (got, finished) = transfer.join().unwrap();
        // Otherwise the fault proved nothing about the transfer.
        assert!(
            finished > injected,
            "{pd} {kind}: the transfer ended before the fault; make it longer"
        );
        let got =
            got.unwrap_or_else(|e| panic!("{pd} {kind}: transfer failed: {e}\n{}", sys.log()));
        assert!(
            got.len() == n && got == pattern(seed, n),
            "{pd} {kind}: the echo came back changed ({} of {n} bytes)",
            got.len()
        );
    }
    // Every PD that was restarted shows it on the status page.
    let pds = status_json(p.http);
    for (pd, n) in restarts {
        let st = pds.iter().find(|p| p["name"] == pd).unwrap();
        assert_eq!(st["restarts"].as_u64(), Some(n), "{st}\n{}", sys.log());
        assert_eq!(st["state"], "running", "{st}");
    }
}

/// UDP keeps its apps' bound ports in the state store: after a restart
/// they are bound again from there, before echo has even noticed, and
/// echo's own bind again is taken as a no-op.
#[test]
fn a_restarted_udp_binds_its_apps_ports_again_from_the_store() {
    let (sys, p) = start_serving("net-udp-restart");
    assert_udp_echoed(p.udp, 5);
    sys.wait_log("app 0 bound UDP port 7");
    sys.inject("udp", "segv");
    sys.wait_restarted("udp", 1);
    sys.wait_log("app 0's UDP port 7 is back, from the store");
    assert_udp_echoed(p.udp, 5);
    // Again: what the second incarnation kept is there for the third.
    sys.inject("udp", "panic");
    sys.wait_restarted("udp", 2);
    sys.wait_log_count("app 0's UDP port 7 is back, from the store", 2);
    assert_udp_echoed(p.udp, 5);
}

/// The filter keeps its flow table in the state store: a connection open
/// across the filter's restart, idle meanwhile, carries on with no grace
/// window (which is gone: the flows come back from the store).
#[test]
fn a_restarted_filter_takes_its_flows_back_from_the_store() {
    let (sys, p) = start_serving("net-filter-restart");
    let mut idle = connect(p.echo);
    idle.write_all(b"before").unwrap();
    let mut got = [0u8; 6];
    idle.read_exact(&mut got).unwrap();
    sys.inject("filter", "segv");
    sys.wait_restarted("filter", 1);
    let log = sys.wait_log_count("flows taken back from the store: ", 2);
    let last = log
        .lines()
        .rev()
        .find_map(|l| l.split("flows taken back from the store: ").nth(1))
        .and_then(|n| n.trim().parse::<u64>().ok());
    assert!(last.is_some_and(|n| n >= 1), "no flow came back:\n{log}");
    idle.write_all(b"after!").unwrap();
    idle.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"after!");
}

/// IP keeps its ARP cache in the state store: a restarted IP knows the
/// gateway at once.
#[test]
fn a_restarted_ip_knows_its_neighbours_from_the_store() {
    let (sys, p) = start_serving("net-ip-restart");
    assert_udp_echoed(p.udp, 3);
    sys.inject("ip", "segv");
    sys.wait_restarted("ip", 1);
    sys.wait_log("neighbours known again from the store: 1");
    assert_udp_echoed(p.udp, 3);
}

#[test]
fn a_restarted_tcp_resets_its_connections_and_serves_new_ones() {
    let (sys, p) = start_serving("net-tcp-restart");
    let port = p.echo;
    let transfer = std::thread::spawn(move || echo(port, 64 << 20, 5));
    std::thread::sleep(Duration::from_millis(200));
    sys.inject("tcp", "segv");
    sys.wait_restarted("tcp", 1);
    // Its apps' listening ports came back from the store, not from the
    // apps listening again.
    for line in [
        "app 1's TCP port 7 is back, from the store",
        "app 1's TCP port 9 is back, from the store",
        "app 0's TCP port 80 is back, from the store",
        // New handles: the apps' old ones name nothing now.
        "TCP incarnation 2",
    ] {
        sys.wait_log(line);
    }
    // TCP's connection state is gone with it: the transfer ends in an
    // error or short, never with wrong bytes.
    if let Ok(got) = transfer.join().unwrap() {
        assert!(
            got[..] == pattern(5, 64 << 20)[..got.len()],
            "bytes changed"
        );
    }
    // New connections work, and the status page (an app of TCP) listens again.
    let start = Instant::now();
    loop {
        if let Ok(got) = echo(p.echo, 1 << 20, 6) {
            if got == pattern(6, 1 << 20) {
                break;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "echo does not work after TCP restarted"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    sys.wait_log_count("HTTP status page on TCP port 80", 2);
    let page = http_get(p.http, "/");
    assert!(
        page.contains("<tr><td>tcp</td><td>running</td><td>1</td>"),
        "{page}"
    );
}

/// A client that waits for a reply, with nothing of its own
/// unacknowledged, hears nothing from a restarted TCP that forgot its
/// connection: without more it would hang until a timeout of its own. The
/// new TCP finds the connection's ends in the store and makes the client's
/// end reset it at once.
#[test]
fn a_client_waiting_on_a_connection_tcp_forgot_is_reset_at_once() {
    let (sys, p) = start_serving("net-tcp-leftover");
    let mut idle = Vec::new();
    for n in 0..3u64 {
        let mut s = connect(p.echo);
        // A round trip first: the connection is open at both ends, and
        // everything the client sent was acknowledged.
        s.write_all(&pattern(n, 100)).unwrap();
        let mut back = vec![0u8; 100];
        s.read_exact(&mut back).unwrap();
        assert_eq!(back, pattern(n, 100));
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        idle.push(s);
    }
    // The connections' keys reach the store within a round.
    std::thread::sleep(Duration::from_millis(500));
    sys.inject("tcp", "segv");
    sys.wait_restarted("tcp", 1);
    sys.wait_log("3 connections of TCP's earlier incarnation");
    let restarted = Instant::now();
    for mut s in idle {
        let mut buf = [0u8; 16];
        match s.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!(
                "the waiting client was not reset: {other:?} after {:?}\n{}",
                restarted.elapsed(),
                sys.log()
            ),
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(3),
            "reset only after {:?}",
            restarted.elapsed()
        );
    }
    // And the port serves new connections.
    wait_echoed(
        p.echo,
        4096,
        8,
        Duration::from_secs(10),
        Duration::from_millis(100),
        "echo does not work after TCP restarted",
    );
}

#[test]
fn a_restarted_echo_app_resets_its_connections_and_serves_new_ones() {
    let (sys, p) = start_serving("net-echo-restart");
    assert_udp_echoed(p.udp, 3);
    let port = p.echo;
    let transfer = std::thread::spawn(move || echo(port, 64 << 20, 8));
    std::thread::sleep(Duration::from_millis(200));
    sys.inject("echo", "segv");
    sys.wait_restarted("echo", 1);
    // The app's connections belonged to its earlier life: TCP resets them.
    // The transfer ends in an error or short, never with wrong bytes.
    if let Ok(got) = transfer.join().unwrap() {
        assert!(
            got[..] == pattern(8, 64 << 20)[..got.len()],
            "bytes changed"
        );
    }
    // The new app listens and binds again: TCP and UDP echo work.
    wait_echoed(
        p.echo,
        1 << 20,
        9,
        Duration::from_secs(20),
        Duration::from_millis(100),
        "TCP echo does not work after the echo app restarted",
    );
    assert_udp_echoed(p.udp, 5);
    let pds = status_json(p.http);
    let st = pds.iter().find(|p| p["name"] == "echo").unwrap();
    assert_eq!(st["restarts"].as_u64(), Some(1), "{st}");
    assert_eq!(st["state"], "running", "{st}");
}

/// The host gateway is supervised like a PD: a panic in it (as smoltcp
/// 0.12's did) restarts it with fresh state, the restart shows in
/// `axolotl status` and, through the NIC driver's device resets, on the
/// status page, and every forward works again.
#[test]
fn a_gateway_panic_restarts_it_and_every_forward_serves_again() {
    let (sys, p) = start_serving("net-gateway-panic");
    assert_echoed(p.echo, 1 << 20, 1);
    let gw = sys.pd("gateway");
    assert_eq!(
        (gw["state"].as_str(), gw["restarts"].as_u64()),
        (Some("running"), Some(0)),
        "{gw}"
    );
    // A connection open across the fault ends (the gateway lost it), but
    // never with wrong bytes.
    let port = p.echo;
    let transfer = std::thread::spawn(move || echo(port, 64 << 20, 5));
    std::thread::sleep(Duration::from_millis(200));
    sys.inject("gateway", "panic");
    let gw = sys.wait_restarted("gateway", 1);
    assert_eq!(gw["last_fault"]["kind"], "panic", "{gw}");
    assert_eq!(gw["last_fault"]["message"], "injected fault: panic", "{gw}");
    if let Ok(got) = transfer.join().unwrap() {
        assert!(
            got == pattern(5, got.len()),
            "wrong bytes across the gateway restart"
        );
    }
    sys.wait_log("gateway restarted with fresh state (restart #1)");
    // Every forward serves again: TCP echo, UDP echo, the status page.
    assert_echoed(p.echo, 4 << 20, 2);
    assert_udp_echoed(p.udp, 5);
    // The NIC driver counted the device going away and coming back; it
    // reports at most twice a second.
    let start = Instant::now();
    loop {
        let pds = status_json(p.http);
        let nic = pds.iter().find(|p| p["name"] == "nic").unwrap();
        if nic["counters"]["device_resets"].as_u64() >= Some(1) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no device reset on the page: {nic}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(http_get(p.http, "/").contains("<th>device resets</th>"));
    // Every PD kept running meanwhile.
    for pd in sys.status() {
        assert_eq!(pd["state"], "running", "{pd}");
        if pd["name"] != "gateway" {
            assert_eq!(pd["restarts"], 0, "{pd}");
        }
    }
}

/// A gateway that stops answering cannot be replaced on its thread: then
/// `axolotl run` ends with an error that names it, instead of running on
/// with dead forwards.
#[test]
fn a_hung_gateway_ends_axolotl_run_with_an_error() {
    let (mut sys, _p) = start_serving("net-gateway-hang");
    let out = sys.cli(&["inject", "gateway", "segv"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("takes panic or hang"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sys.inject("gateway", "hang");
    let status = sys.wait_exit(Duration::from_secs(20)).unwrap_or_else(|| {
        panic!(
            "axolotl run kept running with a hung gateway:\n{}",
            sys.log()
        )
    });
    assert!(!status.success());
    let log = sys.log();
    assert!(log.contains("gateway hung: no round for"), "{log}");
}

/// Many short connections one after the other, each half-closed by the
/// client after its bytes: every one is echoed. (The gateway once
/// dropped a connection in TIME-WAIT before its delayed ACK of the
/// system's FIN went out; the system then held each socket, sending its
/// FIN again, and after eight connections refused every new one.)
#[test]
fn short_half_closed_connections_one_after_another_are_all_echoed() {
    let (_sys, p) = start_serving("net-short");
    for i in 0..200u64 {
        let data = pattern(i, 1 + (i as usize * 37) % 3000);
        let mut s = connect(p.echo);
        s.write_all(&data).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got)
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        assert!(
            got == data,
            "connection {i}: {} of {} bytes back",
            got.len(),
            data.len()
        );
    }
}
