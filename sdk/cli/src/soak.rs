//! `axolotl soak`: runs a system for a given time under continuous,
//! byte-checked traffic through its forwarded ports, with new connections
//! all the time and a fault injected every few seconds, then reports what
//! moved, what went wrong, and every PD's memory at the start and the end.
//!
//! The system is started as a child (`axolotl run`, or `axolotl qemu` for
//! a board) on free host ports and a control socket of its own, so a soak
//! never disturbs a system already running.
//!
//! Traffic (each a thread of its own, all checked byte for byte):
//! - TCP echo (port 7): a new connection per transfer, random sizes from
//!   1 byte to 1 MiB, sent and received at once;
//! - UDP echo (port 7): numbered datagrams with a checked payload;
//! - the status page (port 80): `GET /status.json` must list every PD.
//!
//! What fails a soak: a wrong byte; a refused connection (refused by the
//! host port, or closed by the system before it answered); a connection
//! broken or stalled in the middle of a transfer; a PD that restarted more
//! often than it was faulted (a crash the soak did not cause); memory that
//! grew in a PD incarnation that lived through the soak (more than a tenth
//! and more than 2 MiB); a system that stopped.

use serde_json::{json, Value};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `axolotl soak`'s options.
#[derive(clap::Args, Clone, Debug)]
pub struct SoakArgs {
    #[command(flatten)]
    pub system: SystemArgs,
    /// How long to run: 90s, 10m, 1h.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,
    /// A fault every this long (0s: none).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub fault_every: Duration,
    /// The PDs to fault, comma-separated (default: every PD whose restart
    /// its clients should not see: drivers, ip, filter, udp, the store,
    /// the demo workers; tcp and the apps reset their connections when
    /// they restart, so they are left out).
    #[arg(long, value_delimiter = ',')]
    pub pds: Vec<String>,
    #[command(flatten)]
    pub shared: FaultsAndTraffic,
    /// The system's own output goes here (default: a file in the temporary
    /// directory, named at the start).
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Fault kinds a PD may run on after (no restart expects them): only
/// campaigns inject them.
pub(crate) const RUNS_ON: [&str; 3] = ["stall", "garbage", "corrupt"];

/// The options `axolotl soak` and `axolotl campaign` share.
#[derive(clap::Args, Clone, Debug)]
pub struct FaultsAndTraffic {
    /// Fault kinds, comma-separated (default: segv, panic, hang, and abort
    /// on the host; seL4 has no abort). Only in campaigns: `stall` (a
    /// 100 ms stop: the PD runs on, no restart), `garbage` (random
    /// descriptors and bytes into the PD's rings and links; no PD may
    /// restart) and `corrupt` (--bits random bits of its memory flipped; at
    /// most 64 on seL4).
    #[arg(long, value_delimiter = ',', value_parser = ["segv", "panic", "abort", "hang", "stall", "garbage", "corrupt"])]
    pub kinds: Vec<String>,
    /// TCP echo connections open at once.
    #[arg(long, default_value_t = 2)]
    pub connections: usize,
    /// The same seed gives the same sizes, payloads and faults.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl FaultsAndTraffic {
    /// The kinds asked for, or the default ones (no `abort` on seL4).
    pub fn kinds(&self, on_host: bool) -> Vec<String> {
        if !self.kinds.is_empty() {
            return self.kinds.clone();
        }
        let k: &[&str] = if on_host {
            &["segv", "panic", "abort", "hang"]
        } else {
            &["segv", "panic", "hang"]
        };
        k.iter().map(|s| s.to_string()).collect()
    }

    /// Starts the traffic threads against the forwards `(echo, udp,
    /// http)`; the status page must list `pds`.
    pub(crate) fn start(
        &self,
        ctx: &Arc<Ctx>,
        (echo, udp, http): (u16, u16, u16),
        pds: &[String],
    ) -> Vec<std::thread::JoinHandle<()>> {
        let mut threads = Vec::new();
        for w in 0..self.connections.max(1) as u64 {
            let (c, seed) = (ctx.clone(), self.seed);
            threads.push(std::thread::spawn(move || tcp_worker(echo, w, seed, &c)));
        }
        let (c, seed) = (ctx.clone(), self.seed);
        threads.push(std::thread::spawn(move || udp_worker(udp, seed, &c)));
        let (c, pds) = (ctx.clone(), pds.to_vec());
        threads.push(std::thread::spawn(move || http_worker(http, &pds, &c)));
        threads
    }
}

/// Parses `90s`, `10m`, `1h`, `500ms` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("'{s}': expected a duration such as 90s, 10m or 1h"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("'{s}': the unit must be ms, s, m or h")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("'{s}': {e}"))
}

pub(crate) use axolotl_host::rng::Rng;

/// Byte `i` of the payload of transfer `id`.
fn byte(id: u64, i: u64) -> u8 {
    let x = (id.wrapping_mul(0x9e37_79b9) ^ i.wrapping_mul(0x85eb_ca6b)).wrapping_add(i >> 8);
    (x ^ (x >> 13)) as u8
}

#[derive(Default)]
pub(crate) struct Counts {
    pub(crate) tcp_connections: AtomicU64,
    pub(crate) tcp_bytes: AtomicU64,
    pub(crate) tcp_wrong: AtomicU64,
    pub(crate) tcp_refused: AtomicU64,
    pub(crate) tcp_broken: AtomicU64,
    pub(crate) udp_sent: AtomicU64,
    pub(crate) udp_received: AtomicU64,
    pub(crate) udp_wrong: AtomicU64,
    pub(crate) udp_lost: AtomicU64,
    pub(crate) http_pages: AtomicU64,
    pub(crate) http_refused: AtomicU64,
    pub(crate) http_bad: AtomicU64,
    pub(crate) faults: AtomicU64,
}

/// The first few problems, with when they happened, for the report; each
/// is also printed as it happens, after the command's name.
pub(crate) struct Problems(Mutex<Vec<String>>, &'static str);

/// Problems kept for the report (and printed as they happen).
const PROBLEMS_KEPT: usize = 20;

impl Problems {
    fn note(&self, t0: Instant, what: String) {
        let mut p = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if p.len() < PROBLEMS_KEPT {
            let line = format!("{:8.1} s  {what}", t0.elapsed().as_secs_f64());
            eprintln!("{}: problem at {line}", self.1);
            p.push(line);
        }
    }
}

pub(crate) struct Ctx {
    pub(crate) counts: Counts,
    pub(crate) problems: Problems,
    pub(crate) stop: AtomicBool,
    pub(crate) t0: Instant,
    /// Every error a client saw, with when (since `t0`) and what, for
    /// `axolotl campaign` to lay at a fault's door (the first
    /// `ERRORS_KEPT`).
    pub(crate) errors: Mutex<Vec<(Duration, ClientError)>>,
    /// When (ms since `t0`) an echo last came back whole.
    pub(crate) last_ok_ms: AtomicU64,
}

/// Errors kept with their time.
const ERRORS_KEPT: usize = 1_000_000;

/// An error a client saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClientError {
    /// A wrong byte or datagram: a system failure.
    Wrong,
    /// A connection refused (closed or reset before any byte came back).
    Refused,
    /// A connection broken or stalled in the middle of a transfer.
    Broken,
    /// A status page that did not answer, or answered wrong.
    Page,
}

impl Ctx {
    /// Traffic of the command `name` (it names the problems it prints).
    pub(crate) fn new(name: &'static str) -> Ctx {
        Ctx {
            counts: Counts::default(),
            problems: Problems(Mutex::default(), name),
            stop: AtomicBool::new(false),
            t0: Instant::now(),
            errors: Mutex::new(Vec::new()),
            last_ok_ms: AtomicU64::new(0),
        }
    }

    fn saw(&self, e: ClientError) {
        let mut v = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if v.len() < ERRORS_KEPT {
            v.push((self.t0.elapsed(), e));
        }
    }

    fn served(&self) {
        self.last_ok_ms
            .fetch_max(self.t0.elapsed().as_millis() as u64, Relaxed);
    }
}

/// How a TCP echo transfer ended.
enum Outcome {
    Exact,
    Refused(String),
    Broken(String),
}

const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// Set by Ctrl-C: the soak ends early, with its report.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Relaxed);
}

/// One TCP echo transfer of `n` bytes on a new connection, sent and read
/// back at once; wrong bytes are counted as they arrive.
fn tcp_transfer(port: u16, id: u64, n: u64, ctx: &Ctx) -> Outcome {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let s = match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
        Ok(s) => s,
        Err(e) => return Outcome::Refused(format!("connect: {e}")),
    };
    let _ = s.set_nodelay(true);
    let _ = s.set_read_timeout(Some(IO_TIMEOUT));
    let _ = s.set_write_timeout(Some(IO_TIMEOUT));
    let Ok(mut w) = s.try_clone() else {
        return Outcome::Broken("cannot clone the socket".into());
    };
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut buf = vec![0u8; 16 * 1024];
        let mut sent = 0u64;
        while sent < n {
            let k = (n - sent).min(buf.len() as u64) as usize;
            for (j, b) in buf[..k].iter_mut().enumerate() {
                *b = byte(id, sent + j as u64);
            }
            w.write_all(&buf[..k])?;
            sent += k as u64;
        }
        let _ = w.shutdown(std::net::Shutdown::Write);
        Ok(())
    });
    let mut r = s;
    let mut got = 0u64;
    let mut buf = vec![0u8; 16 * 1024];
    let mut result = None;
    while got < n {
        match r.read(&mut buf) {
            Ok(0) => {
                result = Some(if got == 0 {
                    Outcome::Refused("closed before any byte came back".into())
                } else {
                    Outcome::Broken(format!("closed after {got} of {n} bytes"))
                });
                break;
            }
            Ok(k) => {
                let wrong = buf[..k]
                    .iter()
                    .enumerate()
                    .filter(|(j, b)| **b != byte(id, got + *j as u64))
                    .count();
                if wrong > 0 {
                    ctx.saw(ClientError::Wrong);
                    ctx.counts.tcp_wrong.fetch_add(wrong as u64, Relaxed);
                    ctx.problems.note(
                        ctx.t0,
                        format!("TCP: {wrong} wrong bytes at offset {got} of transfer {id}"),
                    );
                }
                got += k as u64;
                ctx.counts.tcp_bytes.fetch_add(k as u64, Relaxed);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                result = Some(if got == 0 && e.kind() == ErrorKind::ConnectionReset {
                    Outcome::Refused(format!("reset before any byte came back: {e}"))
                } else {
                    Outcome::Broken(format!("after {got} of {n} bytes: {e}"))
                });
                break;
            }
        }
    }
    // A reader that stopped leaves the writer to its own timeout.
    let _ = r.shutdown(std::net::Shutdown::Both);
    let wrote = writer.join().unwrap_or(Ok(()));
    match (result, wrote) {
        (Some(o), _) => o,
        (None, Err(e)) => Outcome::Broken(format!("sending: {e}")),
        (None, Ok(())) => Outcome::Exact,
    }
}

pub(crate) fn tcp_worker(port: u16, worker: u64, seed: u64, ctx: &Ctx) {
    let mut rng = Rng::new(seed ^ (worker << 32));
    let mut k = 0u64;
    while !ctx.stop.load(Relaxed) {
        k += 1;
        let id = (worker << 40) | k;
        // Mostly small transfers, now and then up to 1 MiB.
        let n = match rng.below(10) {
            0..=5 => 1 + rng.below(4096),
            6..=8 => 1 + rng.below(64 * 1024),
            _ => 1 + rng.below(1 << 20),
        };
        ctx.counts.tcp_connections.fetch_add(1, Relaxed);
        match tcp_transfer(port, id, n, ctx) {
            Outcome::Exact => ctx.served(),
            Outcome::Refused(why) => {
                ctx.saw(ClientError::Refused);
                ctx.counts.tcp_refused.fetch_add(1, Relaxed);
                ctx.problems
                    .note(ctx.t0, format!("TCP: connection {id} refused: {why}"));
                std::thread::sleep(Duration::from_millis(100));
            }
            Outcome::Broken(why) => {
                ctx.saw(ClientError::Broken);
                ctx.counts.tcp_broken.fetch_add(1, Relaxed);
                ctx.problems.note(
                    ctx.t0,
                    format!("TCP: transfer {id} of {n} bytes broke: {why}"),
                );
            }
        }
    }
}

/// Numbered datagrams, one outstanding at a time; a lost one (UDP may
/// lose) is counted, a wrong one is a failure.
pub(crate) fn udp_worker(port: u16, seed: u64, ctx: &Ctx) {
    let Ok(sock) = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)) else {
        ctx.problems
            .note(ctx.t0, "UDP: cannot bind a socket".into());
        return;
    };
    let _ = sock.set_read_timeout(Some(Duration::from_millis(500)));
    let to = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut rng = Rng::new(seed ^ 0x0dd);
    let mut n = 0u64;
    let mut buf = [0u8; 2048];
    while !ctx.stop.load(Relaxed) {
        n += 1;
        let len = 8 + rng.below(1000) as usize;
        let mut msg = vec![0u8; len];
        msg[..8].copy_from_slice(&n.to_be_bytes());
        for (i, b) in msg[8..].iter_mut().enumerate() {
            *b = byte(n, i as u64);
        }
        if sock.send_to(&msg, to).is_err() {
            ctx.counts.udp_lost.fetch_add(1, Relaxed);
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        ctx.counts.udp_sent.fetch_add(1, Relaxed);
        // Read until this one's answer or a timeout; late answers to
        // earlier ones are checked too.
        let deadline = Instant::now() + Duration::from_millis(500);
        let mut answered = false;
        while Instant::now() < deadline && !answered {
            let Ok(k) = sock.recv(&mut buf) else { break };
            let reply = &buf[..k];
            let num = reply
                .get(..8)
                .map(|h| u64::from_be_bytes(h.try_into().unwrap_or([0; 8])));
            let ok = num.is_some_and(|m| {
                reply[8..]
                    .iter()
                    .enumerate()
                    .all(|(i, b)| *b == byte(m, i as u64))
            });
            if !ok {
                ctx.saw(ClientError::Wrong);
                ctx.counts.udp_wrong.fetch_add(1, Relaxed);
                ctx.problems
                    .note(ctx.t0, format!("UDP: a wrong datagram of {k} bytes"));
            } else if num == Some(n) {
                if k != len {
                    ctx.saw(ClientError::Wrong);
                    ctx.counts.udp_wrong.fetch_add(1, Relaxed);
                    ctx.problems.note(
                        ctx.t0,
                        format!("UDP: datagram {n} came back with {k} of {len} bytes"),
                    );
                }
                answered = true;
                ctx.counts.udp_received.fetch_add(1, Relaxed);
            }
        }
        if !answered {
            ctx.counts.udp_lost.fetch_add(1, Relaxed);
        }
    }
}

/// The status page, every two seconds: it must answer, and list `pds`.
pub(crate) fn http_worker(port: u16, pds: &[String], ctx: &Ctx) {
    while !ctx.stop.load(Relaxed) {
        match get_status_page(port) {
            Err((refused, why)) => {
                ctx.saw(ClientError::Page);
                if refused {
                    ctx.counts.http_refused.fetch_add(1, Relaxed);
                } else {
                    ctx.counts.http_bad.fetch_add(1, Relaxed);
                }
                ctx.problems.note(ctx.t0, format!("status page: {why}"));
            }
            Ok(v) => {
                let listed = |name: &str| {
                    v.as_array()
                        .is_some_and(|a| a.iter().any(|p| p["name"] == name))
                };
                match pds.iter().find(|p| !listed(p)) {
                    Some(missing) => {
                        ctx.saw(ClientError::Page);
                        ctx.counts.http_bad.fetch_add(1, Relaxed);
                        ctx.problems
                            .note(ctx.t0, format!("status page: {missing} not listed"));
                    }
                    None => {
                        ctx.counts.http_pages.fetch_add(1, Relaxed);
                    }
                }
            }
        }
        sleep_unless_stopped(Duration::from_secs(2), ctx);
    }
}

/// `GET /status.json`: the JSON, or (refused?, why).
fn get_status_page(port: u16) -> Result<Value, (bool, String)> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| (true, format!("connect: {e}")))?;
    let _ = s.set_read_timeout(Some(IO_TIMEOUT));
    let _ = s.set_write_timeout(Some(IO_TIMEOUT));
    s.write_all(b"GET /status.json HTTP/1.1\r\nHost: axolotl\r\nConnection: close\r\n\r\n")
        .map_err(|e| (false, format!("sending the request: {e}")))?;
    let mut page = Vec::new();
    let read = s.read_to_end(&mut page);
    if page.is_empty() {
        return Err((true, format!("closed with no answer ({read:?})")));
    }
    let text = String::from_utf8_lossy(&page);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Err((false, format!("no header end in {} bytes", page.len())));
    };
    if !head.starts_with("HTTP/1.1 200 ") {
        return Err((
            false,
            format!("answer {}", head.lines().next().unwrap_or("")),
        ));
    }
    serde_json::from_str(body).map_err(|e| (false, format!("bad JSON: {e}")))
}

pub(crate) fn sleep_unless_stopped(d: Duration, ctx: &Ctx) {
    let end = Instant::now() + d;
    while !ctx.stop.load(Relaxed) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50).min(end - Instant::now()));
    }
}

/// Waits until TCP echo answers through its forward: PDs run before the
/// apps have listened, and a refusal then would be no fault of the system.
pub(crate) fn wait_serving((echo, _, _): (u16, u16, u16), limit: Duration) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, echo));
        let answered =
            TcpStream::connect_timeout(&addr, Duration::from_secs(2)).and_then(|mut s| {
                s.set_read_timeout(Some(Duration::from_secs(2)))?;
                s.write_all(b"?")?;
                let mut b = [0u8; 1];
                s.read_exact(&mut b)?;
                Ok(b == *b"?")
            });
        if answered.unwrap_or(false) {
            return Ok(());
        }
        if start.elapsed() > limit {
            return Err(format!(
                "TCP echo on 127.0.0.1:{echo} did not answer within {} s of every PD running",
                limit.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Free TCP and UDP ports on 127.0.0.1 for the forwards: (tcp echo, udp
/// echo, status page).
pub(crate) fn free_ports() -> Result<(u16, u16, u16), String> {
    let err = |e: std::io::Error| format!("no free port on 127.0.0.1: {e}");
    let a = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(err)?;
    let b = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(err)?;
    let port = |l: &TcpListener| l.local_addr().map(|a| a.port()).map_err(err);
    let (echo, http) = (port(&a)?, port(&b)?);
    // UDP on the echo port number too, if free; another otherwise.
    let udp = match UdpSocket::bind((Ipv4Addr::LOCALHOST, echo)) {
        Ok(_) => echo,
        Err(_) => UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|u| u.local_addr())
            .map(|a| a.port())
            .map_err(err)?,
    };
    Ok((echo, udp, http))
}

/// Resident memory of process `pid`, KiB.
fn rss_kib(pid: i64) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The children of process `pid` (the QEMU under `axolotl qemu`).
fn children(pid: u32) -> Vec<i64> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// One memory sample: (name, pid, KiB) for every process of the system.
type Memory = Vec<(String, Option<i64>, Option<u64>)>;

/// QEMU's own memory is the machine's: it grows as the guest first
/// touches its RAM and as the emulator translates code, whatever the
/// system does. It is reported, not judged.
const QEMU_ROW: &str = "qemu (the whole machine)";

fn sample_memory(status: &[Value], sys_pid: u32, qemu: bool) -> Memory {
    let mut out: Memory = status
        .iter()
        .filter_map(|p| {
            let name = p["name"].as_str()?.to_string();
            let pid = p["pid"].as_i64();
            Some((name, pid, pid.and_then(rss_kib)))
        })
        .collect();
    if qemu {
        // On seL4 a PD's memory is fixed when the image is built (its
        // heap and stack are in its ELF); the machine's is QEMU's.
        for q in children(sys_pid) {
            out.push((QEMU_ROW.into(), Some(q), rss_kib(q)));
        }
    } else {
        let pid = i64::from(sys_pid);
        out.push((
            "axolotl run (supervisor, gateway)".into(),
            Some(pid),
            rss_kib(pid),
        ));
    }
    out
}

/// Which system a command starts itself, and where.
#[derive(clap::Args, Clone, Debug)]
pub struct SystemArgs {
    /// The system description.
    #[arg(default_value = "system.xml")]
    pub file: PathBuf,
    /// Where: `linux` (`axolotl run`) or a QEMU board (`axolotl qemu`).
    #[arg(long, default_value = "linux")]
    pub board: String,
    /// The seL4 kernel configuration, for a QEMU board.
    #[arg(long, default_value = "debug")]
    pub config: String,
    /// Use the PD programs or image already built.
    #[arg(long)]
    pub no_build: bool,
}

/// Which system to start, and where.
pub(crate) struct Launch<'a> {
    pub(crate) file: &'a Path,
    pub(crate) board: &'a str,
    pub(crate) config: &'a str,
    pub(crate) no_build: bool,
}

impl SystemArgs {
    pub(crate) fn launch(&self) -> Launch<'_> {
        Launch {
            file: &self.file,
            board: &self.board,
            config: &self.config,
            no_build: self.no_build,
        }
    }
}

/// The system under soak: a child `axolotl run` or `axolotl qemu`.
pub(crate) struct System {
    child: Child,
    pub(crate) control: PathBuf,
    dir: PathBuf,
}

impl System {
    pub(crate) fn start(
        args: &Launch<'_>,
        ports: (u16, u16, u16),
        log: &Path,
    ) -> Result<System, String> {
        let dir = std::env::temp_dir().join(format!("axolotl-soak-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let control = dir.join("control.sock");
        let exe = std::env::current_exe().map_err(|e| format!("this program: {e}"))?;
        let mut cmd = Command::new(exe);
        if args.board == "linux" {
            cmd.arg("run");
        } else {
            cmd.args(["qemu", "--board", args.board, "--config", args.config]);
        }
        cmd.arg(args.file).arg("--control").arg(&control);
        if args.no_build {
            cmd.arg("--no-build");
        }
        let (echo, udp, http) = ports;
        for f in [
            format!("tcp:{echo}:7"),
            format!("udp:{udp}:7"),
            format!("tcp:{http}:80"),
        ] {
            cmd.args(["--forward", &f]);
        }
        let out = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        // A process group of its own: Ctrl-C in the terminal reaches the
        // soak, which then reports and stops the system itself.
        let child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start the system: {e}"))?;
        Ok(System {
            child,
            control,
            dir,
        })
    }

    pub(crate) fn status(&self) -> Result<Vec<Value>, String> {
        let text = axolotl_host::status::request(&self.control, "status")?;
        serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .ok_or_else(|| "malformed status".to_string())
    }

    pub(crate) fn ended(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits until every PD runs; prints progress while it builds and boots.
    pub(crate) fn wait_up(&mut self, limit: Duration, log: &Path) -> Result<Vec<Value>, String> {
        let start = Instant::now();
        let mut said = Instant::now();
        loop {
            if let Some(s) = self.ended() {
                return Err(format!(
                    "the system ended before it was up ({s}); its output is in {}",
                    log.display()
                ));
            }
            if let Ok(st) = self.status() {
                if !st.is_empty() && st.iter().all(|p| p["state"] == "running") {
                    return Ok(st);
                }
            }
            if start.elapsed() > limit {
                return Err(format!(
                    "the system was not up within {} s; its output is in {}",
                    limit.as_secs(),
                    log.display()
                ));
            }
            if said.elapsed() > Duration::from_secs(15) {
                eprintln!(
                    "soak: waiting for the system to build and start ({} s)...",
                    start.elapsed().as_secs()
                );
                said = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub(crate) fn stop(&mut self) {
        if self.ended().is_none() {
            // SAFETY: signalling our own child process, not yet reaped.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
            let start = Instant::now();
            while self.ended().is_none() && start.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for System {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The PDs faulted by default: those whose restart no client should see.
const DEFAULT_PDS: &[&str] = &[
    "nic", "ip", "filter", "udp", "timer", "store", "producer", "consumer",
];

/// Prints `report` as JSON, or as `text` makes it.
pub(crate) fn print_report(report: &Value, json: bool, text: fn(&Value) -> String) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).unwrap_or_default()
        );
    } else {
        print!("{}", text(report));
    }
}

/// The names of the rows of a status for which `keep` holds.
pub(crate) fn names_where(status: &[Value], keep: impl Fn(&Value) -> bool) -> Vec<String> {
    status
        .iter()
        .filter(|p| keep(p))
        .filter_map(|p| p["name"].as_str().map(String::from))
        .collect()
}

/// The PDs to fault: `asked` (`--pds`), each of which must be one of
/// `names`, or `default` if none was asked for.
pub(crate) fn choose_pds(
    asked: &[String],
    names: &[String],
    default: Vec<String>,
) -> Result<Vec<String>, String> {
    if asked.is_empty() {
        return Ok(default);
    }
    match asked.iter().find(|p| !names.contains(p)) {
        Some(bad) => Err(format!(
            "--pds: no PD named '{bad}' in the system ({})",
            names.join(", ")
        )),
        None => Ok(asked.to_vec()),
    }
}

/// Runs a soak; the report on standard output; an error if it failed.
pub fn run(args: &SoakArgs) -> Result<(), String> {
    let qemu = args.system.board != "linux";
    let ports = free_ports()?;
    let log = args.log.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("axolotl-soak-{}.log", std::process::id()))
    });
    eprintln!(
        "soak: {} on {} for {} s, a fault every {} s; the system's output goes to {}",
        args.system.file.display(),
        args.system.board,
        args.duration.as_secs(),
        args.fault_every.as_secs_f64(),
        log.display()
    );
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_interrupt as *const () as libc::sighandler_t,
        )
    };
    let mut sys = System::start(&args.system.launch(), ports, &log)?;
    let boot_limit = Duration::from_secs(if qemu { 900 } else { 600 });
    let first = sys.wait_up(boot_limit, &log)?;
    let names = names_where(&first, |_| true);
    let pd_names = names_where(&first, |p| p["parent"] != "axolotl");
    let default: Vec<String> = DEFAULT_PDS
        .iter()
        .filter(|p| names.iter().any(|n| n == *p))
        .map(|p| p.to_string())
        .collect();
    let targets = choose_pds(&args.pds, &names, default)?;
    let kinds = args.shared.kinds(!qemu);
    if let Some(k) = kinds.iter().find(|k| RUNS_ON.contains(&k.as_str())) {
        return Err(format!(
            "--kinds {k}: a soak expects a restart per fault, and a PD may run on after a {k}; \
             use `axolotl campaign` for it"
        ));
    }
    wait_serving(ports, Duration::from_secs(60))?;

    let ctx = Arc::new(Ctx::new("soak"));
    let threads = args.shared.start(&ctx, ports, &pd_names);

    // Memory at the start: after the traffic has warmed the system up.
    sleep_unless_stopped(Duration::from_secs(5).min(args.duration / 10), &ctx);
    let status_start = sys.status().unwrap_or_default();
    let mem_start = sample_memory(&status_start, sys.child.id(), qemu);

    let mut rng = Rng::new(args.shared.seed ^ 0xfa17);
    let mut injected: std::collections::BTreeMap<String, u64> = Default::default();
    let mut next_fault = Instant::now() + args.fault_every;
    let mut next_progress = Instant::now() + Duration::from_secs(30);
    let end = ctx.t0 + args.duration;
    let mut died = None;
    while Instant::now() < end {
        if INTERRUPTED.load(Relaxed) {
            eprintln!("soak: interrupted; reporting what was seen so far");
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        if let Some(s) = sys.ended() {
            died = Some(format!("the system ended during the soak ({s})"));
            break;
        }
        if !args.fault_every.is_zero() && Instant::now() >= next_fault && !targets.is_empty() {
            next_fault += args.fault_every;
            let pd = &targets[rng.below(targets.len() as u64) as usize];
            let kind = &kinds[rng.below(kinds.len() as u64) as usize];
            match axolotl_host::status::request(&sys.control, &format!("inject {pd} {kind}")) {
                Ok(_) => {
                    *injected.entry(pd.clone()).or_default() += 1;
                    ctx.counts.faults.fetch_add(1, Relaxed);
                }
                Err(e) => ctx
                    .problems
                    .note(ctx.t0, format!("inject {pd} {kind} failed: {e}")),
            }
        }
        if Instant::now() >= next_progress {
            next_progress += Duration::from_secs(30);
            let c = &ctx.counts;
            eprintln!(
                "soak: {:>6} s  {} connections, {:.1} MiB echoed, {} datagrams, {} pages, {} faults; \
                 wrong bytes {}, refused {}, broken {}",
                ctx.t0.elapsed().as_secs(),
                c.tcp_connections.load(Relaxed),
                c.tcp_bytes.load(Relaxed) as f64 / 1048576.0,
                c.udp_received.load(Relaxed),
                c.http_pages.load(Relaxed),
                c.faults.load(Relaxed),
                c.tcp_wrong.load(Relaxed) + c.udp_wrong.load(Relaxed),
                c.tcp_refused.load(Relaxed) + c.http_refused.load(Relaxed),
                c.tcp_broken.load(Relaxed),
            );
        }
    }
    // Let the last fault recover before the last look.
    if died.is_none() {
        std::thread::sleep(Duration::from_secs(2));
    }
    let status_end = sys.status().unwrap_or_default();
    let mem_end = sample_memory(&status_end, sys.child.id(), qemu);
    ctx.stop.store(true, Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let elapsed = ctx.t0.elapsed();
    sys.stop();

    let report = report(
        &ctx,
        &Observed {
            board: &args.system.board,
            elapsed,
            status_end: &status_end,
            injected: &injected,
            mem_start: &mem_start,
            mem_end: &mem_end,
            died,
        },
    );
    print_report(&report, args.json, text);
    match report["passed"].as_bool() {
        Some(true) => Ok(()),
        _ => Err(format!(
            "soak failed: {}",
            report["failures"]
                .as_array()
                .map(|f| f
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("; "))
                .unwrap_or_default()
        )),
    }
}

/// A memory row: growth is a failure only for an incarnation that lived
/// through the soak (a restarted PD is a new process).
fn memory_rows(start: &Memory, end: &Memory) -> (Vec<Value>, Vec<String>) {
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for (name, pid1, kib1) in end {
        let before = start.iter().find(|(n, _, _)| n == name);
        let (pid0, kib0) = before.map_or((None, None), |(_, p, k)| (*p, *k));
        let same = pid0.is_some() && pid0 == *pid1;
        let judged = name != QEMU_ROW;
        let grew = match (same && judged, kib0, kib1) {
            (true, Some(a), Some(b)) => *b > a + (a / 10).max(2048),
            _ => false,
        };
        if grew {
            failures.push(format!(
                "{name} grew from {} to {} KiB",
                kib0.unwrap_or(0),
                kib1.unwrap_or(0)
            ));
        }
        rows.push(json!({
            "name": name,
            "pid_start": pid0,
            "kib_start": kib0,
            "pid_end": pid1,
            "kib_end": kib1,
            "same_process": same,
            "judged": judged,
            "flat": !grew,
        }));
    }
    (rows, failures)
}

/// What the soak saw besides its traffic counts.
struct Observed<'a> {
    board: &'a str,
    elapsed: Duration,
    /// `axolotl status` at the end.
    status_end: &'a [Value],
    /// Faults injected, per PD.
    injected: &'a std::collections::BTreeMap<String, u64>,
    mem_start: &'a Memory,
    mem_end: &'a Memory,
    /// Why the system stopped during the soak, if it did.
    died: Option<String>,
}

fn report(ctx: &Ctx, o: &Observed) -> Value {
    let Observed {
        board,
        elapsed,
        status_end,
        injected,
        mem_start,
        mem_end,
        ..
    } = *o;
    let c = &ctx.counts;
    let g = |a: &AtomicU64| a.load(Relaxed);
    let mut failures: Vec<String> = Vec::new();
    let wrong = g(&c.tcp_wrong) + g(&c.udp_wrong);
    if wrong > 0 {
        failures.push(format!("{wrong} wrong bytes or datagrams"));
    }
    let refused = g(&c.tcp_refused) + g(&c.http_refused);
    if refused > 0 {
        failures.push(format!("{refused} refused connections"));
    }
    if g(&c.tcp_broken) > 0 {
        failures.push(format!("{} broken transfers", g(&c.tcp_broken)));
    }
    if g(&c.http_bad) > 0 {
        failures.push(format!("{} bad status pages", g(&c.http_bad)));
    }
    if g(&c.tcp_connections) == 0 || g(&c.tcp_bytes) == 0 {
        failures.push("no TCP traffic moved".into());
    }
    if g(&c.udp_received) == 0 {
        failures.push("no UDP datagram came back".into());
    }
    if status_end.is_empty() {
        failures.push("no status at the end".into());
    }
    let mut restarts = Vec::new();
    for p in status_end {
        let name = p["name"].as_str().unwrap_or("?");
        let r = p["restarts"].as_u64().unwrap_or(0);
        let f = injected.get(name).copied().unwrap_or(0);
        if r > f {
            failures.push(format!(
                "{name} restarted {r} times but was faulted {f} times"
            ));
        }
        if p["state"] != "running" {
            failures.push(format!("{name} is {} at the end", p["state"]));
        }
        restarts.push(json!({"name": name, "restarts": r, "faults_injected": f}));
    }
    let (memory, mem_failures) = memory_rows(mem_start, mem_end);
    failures.extend(mem_failures);
    if let Some(d) = &o.died {
        failures.push(d.clone());
    }
    let problems = ctx.problems.0.lock().map(|p| p.clone()).unwrap_or_default();
    json!({
        "board": board,
        "duration_s": elapsed.as_secs_f64(),
        "tcp": {
            "connections": g(&c.tcp_connections),
            "bytes_echoed": g(&c.tcp_bytes),
            "wrong_bytes": g(&c.tcp_wrong),
            "refused": g(&c.tcp_refused),
            "broken": g(&c.tcp_broken),
        },
        "udp": {
            "sent": g(&c.udp_sent),
            "received": g(&c.udp_received),
            "lost": g(&c.udp_lost),
            "wrong": g(&c.udp_wrong),
        },
        "status_page": {
            "pages": g(&c.http_pages),
            "refused": g(&c.http_refused),
            "bad": g(&c.http_bad),
        },
        "faults_injected": g(&c.faults),
        "restarts": restarts,
        "memory": memory,
        "problems": problems,
        "failures": failures,
        "passed": failures.is_empty(),
    })
}

/// The report for people.
fn text(r: &Value) -> String {
    let mut s = String::new();
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let secs = r["duration_s"].as_f64().unwrap_or(0.0);
    let on_sel4 = r["board"] != "linux";
    s.push_str(&format!(
        "soak report: {secs:.0} s on {}\n",
        r["board"].as_str().unwrap_or("?")
    ));
    let t = &r["tcp"];
    s.push_str(&format!(
        "  TCP echo:    {} connections, {:.1} MiB echoed ({:.1} Mbit/s), {} wrong bytes, {} refused, {} broken\n",
        n(&t["connections"]),
        n(&t["bytes_echoed"]) as f64 / 1048576.0,
        n(&t["bytes_echoed"]) as f64 * 8.0 / secs.max(1.0) / 1e6,
        n(&t["wrong_bytes"]),
        n(&t["refused"]),
        n(&t["broken"])
    ));
    let u = &r["udp"];
    s.push_str(&format!(
        "  UDP echo:    {} sent, {} came back, {} lost, {} wrong\n",
        n(&u["sent"]),
        n(&u["received"]),
        n(&u["lost"]),
        n(&u["wrong"])
    ));
    let h = &r["status_page"];
    s.push_str(&format!(
        "  status page: {} pages, {} refused, {} bad\n",
        n(&h["pages"]),
        n(&h["refused"]),
        n(&h["bad"])
    ));
    s.push_str(&format!(
        "  faults injected: {}\n",
        n(&r["faults_injected"])
    ));
    s.push_str("  PD            restarts  faults   memory start -> end (KiB)\n");
    for p in r["restarts"].as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap_or("?");
        let m = r["memory"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["name"] == name));
        let mem = m.map_or("-".to_string(), |m| mem_cell(m, on_sel4));
        s.push_str(&format!(
            "  {:<13} {:>8} {:>7}   {mem}\n",
            name,
            n(&p["restarts"]),
            n(&p["faults_injected"])
        ));
    }
    for m in r["memory"].as_array().into_iter().flatten() {
        let name = m["name"].as_str().unwrap_or("?");
        if r["restarts"]
            .as_array()
            .is_some_and(|a| a.iter().any(|p| p["name"] == name))
        {
            continue;
        }
        s.push_str(&format!("  {name}: {}\n", mem_cell(m, on_sel4)));
    }
    for p in r["problems"].as_array().into_iter().flatten() {
        s.push_str(&format!("  problem at {}\n", p.as_str().unwrap_or("")));
    }
    match r["passed"].as_bool() {
        Some(true) => s.push_str("PASSED: no wrong byte, no refused connection, memory flat\n"),
        _ => {
            for f in r["failures"].as_array().into_iter().flatten() {
                s.push_str(&format!("  FAILED: {}\n", f.as_str().unwrap_or("")));
            }
        }
    }
    s
}

fn mem_cell(m: &Value, on_sel4: bool) -> String {
    let k = |v: &Value| v.as_u64().map_or("-".into(), |x| x.to_string());
    let note = if m["kib_start"].is_null() && m["kib_end"].is_null() {
        if on_sel4 {
            "(fixed when the image is built)"
        } else {
            "(a thread of axolotl run, counted in its row)"
        }
    } else if m["judged"] == false {
        "(not judged: guest RAM and translated code, touched as used)"
    } else if m["same_process"] == true {
        if m["flat"] == true {
            "flat"
        } else {
            "GREW"
        }
    } else {
        "(restarted: a new process)"
    };
    format!("{} -> {} {note}", k(&m["kib_start"]), k(&m["kib_end"]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_their_units_and_refuse_junk() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("1d").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("-5s").is_err());
    }

    #[test]
    fn memory_growth_fails_only_a_process_that_lived_through() {
        let start: Memory = vec![
            ("a".into(), Some(1), Some(10_000)),
            ("b".into(), Some(2), Some(10_000)),
            ("c".into(), Some(3), Some(10_000)),
        ];
        let end: Memory = vec![
            ("a".into(), Some(1), Some(10_500)),
            ("b".into(), Some(2), Some(20_000)),
            ("c".into(), Some(9), Some(50_000)),
        ];
        let (rows, failures) = memory_rows(&start, &end);
        assert_eq!(failures, vec!["b grew from 10000 to 20000 KiB".to_string()]);
        assert_eq!(rows[0]["flat"], true);
        assert_eq!(rows[2]["same_process"], false);
    }

    #[test]
    fn payload_bytes_depend_on_the_transfer_and_the_offset() {
        let a: Vec<u8> = (0..4096).map(|i| byte(1, i)).collect();
        let b: Vec<u8> = (0..4096).map(|i| byte(2, i)).collect();
        assert_ne!(a, b);
        // Not a short cycle: a shifted copy differs.
        assert_ne!(a[..2048], a[1..2049]);
        let mut r1 = Rng::new(5);
        let mut r2 = Rng::new(5);
        assert_eq!(r1.next_u64(), r2.next_u64());
    }
}
