//! End-to-end tests of the network on the Linux host: the NIC driver, IP,
//! filter, TCP, UDP and status page PDs as processes, reached through the
//! host gateway's port forwards, as a user reaches them.

mod common;

use common::{pattern, root, Running};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// Free host ports for TCP echo, UDP echo, TCP discard and HTTP.
struct Ports {
    echo: u16,
    udp: u16,
    discard: u16,
    http: u16,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(name: &str) -> (Running, Ports) {
    let p = Ports {
        echo: free_port(),
        udp: free_port(),
        discard: free_port(),
        http: free_port(),
    };
    let f = [
        format!("tcp:{}:7", p.echo),
        format!("udp:{}:7", p.udp),
        format!("tcp:{}:9", p.discard),
        format!("tcp:{}:80", p.http),
    ];
    let mut args = vec![];
    for x in &f {
        args.push("--forward");
        args.push(x.as_str());
    }
    let sys = Running::start_args(name, &root().join("system.xml"), &args);
    sys.wait_log("HTTP status page on TCP port 80");
    (sys, p)
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// Sends `n` bytes through TCP echo on `port` while reading the echo; the
/// bytes that came back, or the error that ended the connection.
fn echo(port: u16, n: usize, seed: u64) -> Result<Vec<u8>, std::io::Error> {
    let mut s = connect(port);
    let mut r = s.try_clone()?;
    let reader = std::thread::spawn(move || {
        let mut got = Vec::with_capacity(n);
        let mut buf = vec![0u8; 1 << 16];
        while got.len() < n {
            match r.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => got.extend_from_slice(&buf[..k]),
                Err(e) => return Err(e),
            }
        }
        Ok(got)
    });
    let data = pattern(seed, n);
    let mut sent = 0;
    while sent < n {
        let end = (sent + (1 << 20)).min(n);
        if let Err(e) = s.write_all(&data[sent..end]) {
            let _ = reader.join();
            return Err(e);
        }
        sent = end;
    }
    let got = reader.join().unwrap()?;
    let _ = s.shutdown(Shutdown::Both);
    Ok(got)
}

fn assert_echoed(port: u16, n: usize, seed: u64) {
    let got = echo(port, n, seed).unwrap_or_else(|e| panic!("echo of {n} bytes: {e}"));
    assert_eq!(got.len(), n, "echo of {n} bytes came back short");
    assert!(
        got == pattern(seed, n),
        "echo of {n} bytes came back changed"
    );
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = connect(port);
    write!(s, "GET {path} HTTP/1.1\r\nHost: axolotl\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn echo_discard_udp_and_the_status_page_through_the_split_stack() {
    let (sys, p) = start("net-basic");
    let out = sys.stdout();
    for (proto, port, to) in [
        ("tcp", p.echo, 7),
        ("udp", p.udp, 7),
        ("tcp", p.discard, 9),
        ("tcp", p.http, 80),
    ] {
        let line = format!("axolotl: forwarding {proto} 127.0.0.1:{port} to 10.0.2.15:{to}");
        assert!(out.contains(&line), "no '{line}' in:\n{out}");
    }

    // TCP echo: from one byte to a few MiB, exactly.
    for n in [1, 1460, 1461, 65_536, 4 << 20] {
        assert_echoed(p.echo, n, n as u64);
    }

    // TCP discard takes everything and sends nothing back.
    let mut d = connect(p.discard);
    d.write_all(&pattern(9, 2 << 20)).unwrap();
    d.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    d.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "discard sent {} bytes back", rest.len());

    // UDP echo.
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    for i in 0..20u8 {
        let msg = pattern(u64::from(i) + 100, 1 + usize::from(i) * 50);
        let mut buf = [0u8; 2048];
        // UDP may lose the first datagrams while ARP resolves: retry.
        let got = (0..5).find_map(|_| {
            u.send_to(&msg, ("127.0.0.1", p.udp)).unwrap();
            u.recv(&mut buf).ok()
        });
        assert_eq!(
            got.map(|n| &buf[..n]),
            Some(&msg[..]),
            "UDP echo of datagram {i}"
        );
    }

    // The status page lists every PD as running, with counters.
    let page = http_get(p.http, "/");
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(page.contains("Content-Type: text/html"), "{page}");
    for pd in [
        "guardian", "timer", "store", "nic", "ip", "filter", "tcp", "udp", "http",
    ] {
        assert!(
            page.contains(&format!("<tr><td>{pd}</td><td>running</td>")),
            "{pd} not running in:\n{page}"
        );
    }
    let json = http_get(p.http, "/status.json");
    let body = json.split("\r\n\r\n").nth(1).unwrap();
    let pds: serde_json::Value = serde_json::from_str(body).unwrap();
    let tcp = pds
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "tcp")
        .unwrap()
        .clone();
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
    let (_sys, p) = start("net-bulk");
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
    let (sys, p) = start("net-faults");
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
    let page = http_get(p.http, "/status.json");
    let body = page.split("\r\n\r\n").nth(1).unwrap();
    let pds: serde_json::Value = serde_json::from_str(body).unwrap();
    for (pd, n) in restarts {
        let st = pds
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == pd)
            .unwrap();
        assert_eq!(st["restarts"].as_u64(), Some(n), "{st}");
        assert_eq!(st["state"], "running", "{st}");
    }
}

#[test]
fn a_restarted_tcp_resets_its_connections_and_serves_new_ones() {
    let (sys, p) = start("net-tcp-restart");
    let port = p.echo;
    let transfer = std::thread::spawn(move || echo(port, 64 << 20, 5));
    std::thread::sleep(Duration::from_millis(200));
    sys.inject("tcp", "segv");
    sys.wait_restarted("tcp", 1);
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
