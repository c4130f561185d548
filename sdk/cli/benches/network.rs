//! The network benchmark: TCP bulk throughput and small request/response
//! latency through Axolotl's whole split stack, and through the Linux
//! kernel's own stack over the same kind of link, measured in one run.
//!
//! ```sh
//! cargo build --release --workspace --bins && cargo bench -p axolotl-cli --bench network
//! ```
//!
//! It makes a user and network namespace (`unshare -rn`, no root needed
//! where user namespaces are allowed) holding two links of one kind, a TAP
//! device with a user-space program on its far side:
//!
//! - Axolotl: TAP `ax0` (10.0.2.2) <-> the NIC driver PD <-> ip <-> filter <->
//!   tcp / udp, serving echo (7) and discard (9) at 10.0.2.15;
//! - Linux: TAP `la0` (10.0.3.1) <-> a user-space frame relay (what the NIC
//!   driver does, without the stack) <-> TAP `lb0` (10.0.3.2) in a second
//!   network namespace, whose kernel serves echo and discard from this
//!   program's threads.
//!
//! The client is the first namespace's kernel in both cases. For each:
//! 32 MiB through TCP echo (sending and receiving at once, checked byte for
//! byte), 64 MiB into TCP discard, and 1,000 round trips of 64 bytes over
//! TCP and over UDP echo; medians of 3 runs, ratios Axolotl / Linux.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const INSIDE: &str = "AXOLOTL_BENCH_INSIDE";
const SERVE: &str = "AXOLOTL_BENCH_SERVE";
const RUNS: usize = 3;
const ROUND_TRIPS: usize = 1000;

fn sh(cmd: &str) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .status()
        .map(|s| s.success());
    assert!(matches!(ok, Ok(true)), "set-up step failed: {cmd}");
}

fn main() {
    if std::env::var_os(SERVE).is_some() {
        return serve();
    }
    if !std::env::args().any(|a| a == "--bench") {
        println!("network bench: run with `cargo bench -p axolotl-cli --bench network`");
        return;
    }
    if std::env::var_os(INSIDE).is_none() {
        let me = std::env::current_exe().unwrap();
        let status = Command::new("unshare")
            .arg("-rn")
            .arg(&me)
            .arg("--bench")
            .env(INSIDE, "1")
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => {
                eprintln!("network bench failed ({s}); it needs `unshare -rn` (user namespaces)");
                std::process::exit(1);
            }
            Err(e) => eprintln!("network bench: cannot run unshare: {e}"),
        }
        return;
    }
    inside();
}

/// Echo (7), discard (9) and UDP echo (7) on the Linux kernel's stack.
fn serve() {
    let echo = TcpListener::bind("0.0.0.0:7").unwrap();
    let discard = TcpListener::bind("0.0.0.0:9").unwrap();
    let udp = UdpSocket::bind("0.0.0.0:7").unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = udp.recv_from(&mut buf) {
            let _ = udp.send_to(&buf[..n], from);
        }
    });
    std::thread::spawn(move || {
        for s in discard.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = vec![0u8; 1 << 16];
                while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    for s in echo.incoming().flatten() {
        std::thread::spawn(move || {
            let _ = s.set_nodelay(true);
            let mut r = s.try_clone().unwrap();
            let mut w = s;
            let mut buf = vec![0u8; 1 << 16];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 || w.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
    }
}

/// Frames between two TAP devices, the second in another network
/// namespace: the Linux baseline's user-space hop.
fn relay(peer_pid: u32) {
    let mut a = axolotl_host::nic::HostNic::open("tap:la0").unwrap();
    let ns = std::fs::File::open(format!("/proc/{peer_pid}/ns/net")).unwrap();
    // SAFETY: setns on a namespace file we opened; this process has one
    // thread here.
    let entered = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(entered, 0);
    let mut b = axolotl_host::nic::HostNic::open("tap:lb0").unwrap();
    let mut buf = [0u8; 2048];
    loop {
        let mut fds = [a.fd(), b.fd()].map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
        // SAFETY: fds is a valid array of two pollfd.
        unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        while let Some(n) = a.recv(&mut buf) {
            b.send(&buf[..n]);
        }
        while let Some(n) = b.recv(&mut buf) {
            a.send(&buf[..n]);
        }
    }
}

fn inside() {
    let me = std::env::current_exe().unwrap();
    let pd_dir = common::pd_dir();
    // The peer namespace for the Linux baseline.
    let mut holder = Command::new("unshare")
        .args(["-n", "sleep", "3600"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let pid = holder.id();
    sh("ip link set lo up");
    sh("ip tuntap add dev ax0 mode tap && ip addr add 10.0.2.2/24 dev ax0 && ip link set ax0 up");
    sh("ip tuntap add dev la0 mode tap && ip addr add 10.0.3.1/24 dev la0 && ip link set la0 up");
    sh(&format!(
        "nsenter -t {pid} -n sh -c 'ip link set lo up && ip tuntap add dev lb0 mode tap && \
         ip addr add 10.0.3.2/24 dev lb0 && ip link set lb0 up'"
    ));
    let mut server = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-n"])
        .arg(&me)
        .env(SERVE, "1")
        .spawn()
        .unwrap();
    // The relay: a child process of its own (it enters the other namespace).
    // SAFETY: fork here has no threads to worry about but the two spawned
    // children's waiters, which do not run; the child only runs `relay`.
    let forked = unsafe { libc::fork() };
    let relay_child = match forked {
        0 => {
            relay(pid);
            std::process::exit(0);
        }
        child => child,
    };
    let dir = std::env::temp_dir().join(format!("axolotl-bench-net-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("log");
    let mut sys = Command::new(common::axolotl())
        .args(["run", "--no-build", "--net", "tap:ax0", "--pd-dir"])
        .arg(&pd_dir)
        .arg("--control")
        .arg(dir.join("control.sock"))
        .arg(common::root().join("system.xml"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("HTTP status page on TCP port 80")
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the system did not come up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let targets = [("Axolotl", "10.0.2.15"), ("Linux", "10.0.3.2")];
    // Warm up: ARP, connections.
    for (_, addr) in targets {
        let _ = round_trips(addr, 20, false);
    }
    let mut results: Vec<[Vec<f64>; 6]> = vec![Default::default(), Default::default()];
    for _ in 0..RUNS {
        for (t, (_, addr)) in targets.iter().enumerate() {
            let r = &mut results[t];
            r[0].push(echo_mbit(addr, 32 << 20));
            r[1].push(discard_mbit(addr, 64 << 20));
            let (m, p) = round_trips(addr, ROUND_TRIPS, false);
            r[2].push(m);
            r[3].push(p);
            let (m, p) = round_trips(addr, ROUND_TRIPS, true);
            r[4].push(m);
            r[5].push(p);
        }
    }
    let med = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("\nnetwork bench: medians of {RUNS} runs; both over a TAP device with a user-space program on its far side");
    println!(
        "{:<34} {:>12} {:>12} {:>8}",
        "", "Axolotl", "Linux", "ratio"
    );
    let rows = [
        ("TCP echo, 32 MiB (Mbit/s)", 0, true),
        ("TCP discard, 64 MiB (Mbit/s)", 1, true),
        ("TCP round trip median (us)", 2, false),
        ("TCP round trip p99 (us)", 3, false),
        ("UDP round trip median (us)", 4, false),
        ("UDP round trip p99 (us)", 5, false),
    ];
    for (name, i, higher_better) in rows {
        let (a, l) = (med(&results[0][i]), med(&results[1][i]));
        let note = if higher_better {
            "(higher is better)"
        } else {
            "(lower is better)"
        };
        println!("{name:<34} {a:>12.1} {l:>12.1} {:>8.2} {note}", a / l);
    }
    let _ = sys.kill();
    let _ = sys.wait();
    let _ = server.kill();
    let _ = server.wait();
    let _ = holder.kill();
    let _ = holder.wait();
    // SAFETY: killing our own child.
    unsafe { libc::kill(relay_child, libc::SIGKILL) };
    let _ = std::fs::remove_dir_all(&dir);
}

fn pattern(n: usize) -> Vec<u8> {
    common::pattern(0x9e37_79b9_7f4a_7c15, n)
}

fn connect(addr: &str, port: u16) -> TcpStream {
    let a: SocketAddr = format!("{addr}:{port}").parse().unwrap();
    let s = TcpStream::connect_timeout(&a, Duration::from_secs(10)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

fn echo_mbit(addr: &str, n: usize) -> f64 {
    let data = pattern(n);
    let mut s = connect(addr, 7);
    let mut r = s.try_clone().unwrap();
    let start = Instant::now();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::with_capacity(n);
        let mut buf = vec![0u8; 1 << 16];
        while got.len() < n {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => got.extend_from_slice(&buf[..k]),
            }
        }
        got
    });
    s.write_all(&data).unwrap();
    let got = reader.join().unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert!(got == data, "echo through {addr} came back changed");
    (n * 8) as f64 / secs / 1e6
}

fn discard_mbit(addr: &str, n: usize) -> f64 {
    let data = pattern(1 << 20);
    let mut s = connect(addr, 9);
    let start = Instant::now();
    let mut sent = 0;
    while sent < n {
        s.write_all(&data).unwrap();
        sent += data.len();
    }
    s.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    (n * 8) as f64 / start.elapsed().as_secs_f64() / 1e6
}

/// Median and p99 of `n` 64-byte round trips, in microseconds.
fn round_trips(addr: &str, n: usize, udp: bool) -> (f64, f64) {
    let msg = [0x5au8; 64];
    let mut buf = [0u8; 64];
    let mut times = Vec::with_capacity(n);
    if udp {
        let u = UdpSocket::bind("0.0.0.0:0").unwrap();
        u.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        u.connect(format!("{addr}:7")).unwrap();
        for _ in 0..n {
            let t = Instant::now();
            u.send(&msg).unwrap();
            if u.recv(&mut buf).is_ok() {
                times.push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
    } else {
        let mut s = connect(addr, 7);
        for _ in 0..n {
            let t = Instant::now();
            s.write_all(&msg).unwrap();
            s.read_exact(&mut buf).unwrap();
            times.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    times.sort_by(f64::total_cmp);
    if times.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    (times[times.len() / 2], times[(times.len() - 1) * 99 / 100])
}
