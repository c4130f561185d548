//! Clients of the system's network services (echo, discard, UDP echo, the
//! status page) through host port forwards, for the tests of `axolotl run`
//! and of `axolotl qemu`.

use super::{pattern, root, Running};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

/// The shipped system.xml running as `name`, its services forwarded to
/// free host ports, once the status page serves.
pub fn start_serving(name: &str) -> (Running, Ports) {
    let p = Ports::free();
    let f = p.forward_args();
    let args: Vec<&str> = f.iter().map(String::as_str).collect();
    let sys = Running::start_args(name, &root().join("system.xml"), &args);
    sys.wait_log("HTTP status page on TCP port 80");
    (sys, p)
}

/// Free host ports for TCP echo, UDP echo, TCP discard and HTTP.
pub struct Ports {
    pub echo: u16,
    pub udp: u16,
    pub discard: u16,
    pub http: u16,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// Sends `n` bytes through TCP echo on `port` while reading the echo; the
/// bytes that came back, or the error that ended the connection.
pub fn echo(port: u16, n: usize, seed: u64) -> Result<Vec<u8>, std::io::Error> {
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

pub fn assert_echoed(port: u16, n: usize, seed: u64) {
    let got = echo(port, n, seed).unwrap_or_else(|e| panic!("echo of {n} bytes: {e}"));
    assert_eq!(got.len(), n, "echo of {n} bytes came back short");
    assert!(
        got == pattern(seed, n),
        "echo of {n} bytes came back changed"
    );
}

/// Tries a TCP echo of `n` bytes on `port` until one comes back exact
/// (after a restart, while the service comes back), every `pause`; panics
/// with `what` if none did within `within`.
pub fn wait_echoed(port: u16, n: usize, seed: u64, within: Duration, pause: Duration, what: &str) {
    let start = std::time::Instant::now();
    while echo(port, n, seed).ok() != Some(pattern(seed, n)) {
        assert!(start.elapsed() < within, "{what}");
        std::thread::sleep(pause);
    }
}

pub fn http_get(port: u16, path: &str) -> String {
    let mut s = connect(port);
    write!(s, "GET {path} HTTP/1.1\r\nHost: axolotl\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

impl Ports {
    /// Four free host ports.
    pub fn free() -> Ports {
        Ports {
            echo: free_port(),
            udp: free_port(),
            discard: free_port(),
            http: free_port(),
        }
    }

    /// The lines `axolotl run` and `axolotl qemu` print for these
    /// forwards, to the system at 10.0.2.15.
    pub fn forward_lines(&self) -> Vec<String> {
        [
            ("tcp", self.echo, 7),
            ("udp", self.udp, 7),
            ("tcp", self.discard, 9),
            ("tcp", self.http, 80),
        ]
        .iter()
        .map(|(proto, port, to)| {
            format!("axolotl: forwarding {proto} 127.0.0.1:{port} to 10.0.2.15:{to}")
        })
        .collect()
    }

    /// `--forward` arguments that forward these ports to echo (TCP and
    /// UDP 7), discard (9) and the status page (80).
    pub fn forward_args(&self) -> Vec<String> {
        [
            format!("tcp:{}:7", self.echo),
            format!("udp:{}:7", self.udp),
            format!("tcp:{}:9", self.discard),
            format!("tcp:{}:80", self.http),
        ]
        .into_iter()
        .flat_map(|f| ["--forward".to_string(), f])
        .collect()
    }
}

/// Sends `n` bytes into TCP discard on `port`; what came back (nothing, if
/// discard works).
pub fn discard(port: u16, n: usize) -> Vec<u8> {
    let mut d = connect(port);
    d.write_all(&pattern(9, n)).unwrap();
    d.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    d.read_to_end(&mut rest).unwrap();
    rest
}

/// `count` datagrams of growing size through UDP echo on `port`, each
/// checked; UDP may lose the first ones while ARP resolves, so each is
/// tried up to five times.
pub fn assert_udp_echoed(port: u16, count: u8) {
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    for i in 0..count {
        let msg = pattern(u64::from(i) + 100, 1 + usize::from(i) * 50);
        let mut buf = [0u8; 2048];
        let got = (0..5).find_map(|_| {
            u.send_to(&msg, ("127.0.0.1", port)).unwrap();
            u.recv(&mut buf).ok()
        });
        assert_eq!(
            got.map(|n| &buf[..n]),
            Some(&msg[..]),
            "UDP echo of datagram {i}"
        );
    }
}

/// The status page's JSON: every PD.
pub fn status_json(port: u16) -> Vec<serde_json::Value> {
    let page = http_get(port, "/status.json");
    let body = page.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("status page: {e}: {page}"))
}

/// Byte-checked traffic all along a test: two TCP echo clients of random
/// sizes (a new connection per transfer) and a UDP echo client. A reset
/// connection or a lost datagram is allowed; a wrong byte is not.
pub struct Traffic {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Transfers or datagrams that came back with a wrong byte.
    pub wrong: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// TCP transfers that came back whole.
    pub exact: std::sync::Arc<std::sync::atomic::AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Traffic {
    pub fn start(p: &Ports) -> Traffic {
        use std::sync::atomic::Ordering::Relaxed;
        let mut t = Traffic {
            stop: Default::default(),
            wrong: Default::default(),
            exact: Default::default(),
            threads: Vec::new(),
        };
        let threads = &mut t.threads;
        for w in 0..2u64 {
            let (stop, wrong, exact, port) =
                (t.stop.clone(), t.wrong.clone(), t.exact.clone(), p.echo);
            threads.push(std::thread::spawn(move || {
                let mut k = 0u64;
                while !stop.load(Relaxed) {
                    k += 1;
                    let size = 1 + ((k * 7919 + w * 104_729) % 200_000) as usize;
                    let seed = (w << 32) | k;
                    if let Ok(got) = echo(port, size, seed) {
                        let want = pattern(seed, size);
                        if got.len() == size && got == want {
                            exact.fetch_add(1, Relaxed);
                        } else if got.iter().zip(&want).any(|(a, b)| a != b) {
                            // Short is a reset; different is a wrong byte.
                            wrong.fetch_add(1, Relaxed);
                        }
                    }
                }
            }));
        }
        let (stop, wrong, port) = (t.stop.clone(), t.wrong.clone(), p.udp);
        threads.push(std::thread::spawn(move || {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut k = 0u64;
            let mut buf = [0u8; 2048];
            while !stop.load(Relaxed) {
                k += 1;
                let msg = pattern(k, 1 + (k % 1000) as usize);
                let _ = s.send_to(&msg, ("127.0.0.1", port));
                if let Ok(n) = s.recv(&mut buf) {
                    // Late answers to earlier datagrams are fine; any
                    // datagram must be one that was sent.
                    let seed_ok = (1..=k).rev().take(200).any(|j| {
                        let m = pattern(j, 1 + (j % 1000) as usize);
                        m.len() == n && m[..] == buf[..n]
                    });
                    if !seed_ok {
                        wrong.fetch_add(1, Relaxed);
                    }
                }
            }
        }));
        t
    }

    /// Stops the clients: (wrong, exact).
    pub fn finish(self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.stop.store(true, Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        (self.wrong.load(Relaxed), self.exact.load(Relaxed))
    }
}
