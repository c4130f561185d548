//! Ring and notification costs between two processes, against a Unix socket
//! pair doing the same work, measured in the same run.
//!
//! `cargo bench -p axolotl-host --bench ipc`
//!
//! - Descriptor throughput: 16-byte descriptors go from one process to the
//!   other and back (sDDF's active and free queues): over two Axolotl rings in
//!   shared memory with the request/cancel signalling and the same
//!   notification transport PDs use (a seqpacket datagram), against each
//!   descriptor sent as a datagram over a socket pair and sent back.
//! - Notify round trip: one process notifies, the other wakes and notifies
//!   back, using the PD runtime's notification transport; against a 1-byte
//!   ping-pong over a stream socket pair.

use axolotl_host::sys;
use axolotl_ring::{Consumer, Desc, Producer};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

const SLOTS: u32 = 512;
const DESCS: u64 = 2_000_000;
const ROUND_TRIPS: usize = 20_000;

struct Shared {
    base: *mut u8,
    len: usize,
}

fn shared_rings() -> (Shared, Shared) {
    let len = axolotl_ring::region_bytes(SLOTS);
    let mk = |name| {
        let fd = sys::memfd(name, len as u64).unwrap();
        let base =
            sys::map_shared(fd.as_raw_fd(), 0, len, libc::PROT_READ | libc::PROT_WRITE).unwrap();
        Shared { base, len }
    };
    (mk("active"), mk("free"))
}

fn fork(child: impl FnOnce()) -> libc::pid_t {
    // SAFETY: the bench is single-threaded; the child runs `child` and exits
    // without returning into the caller.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        child();
        // SAFETY: leave the child without running the parent's destructors.
        unsafe { libc::_exit(0) };
    }
    pid
}

fn wait(pid: libc::pid_t) {
    let mut st = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut st, 0) };
}

fn notify(fd: RawFd) {
    let _ = sys::send_nonblocking(fd, b"N");
}

fn wait_notification(fd: RawFd) {
    let mut buf = [0u8; 64];
    sys::wait_fd(fd, libc::POLLIN, -1).unwrap();
    while let Ok(Some(n)) = sys::recv_nonblocking(fd, &mut buf) {
        if n == 0 {
            break;
        }
    }
}

/// Moves DESCS descriptors there and back through two rings; returns seconds.
fn ring_throughput() -> f64 {
    let (active, free) = shared_rings();
    let (a, b) = sys::seqpacket_pair().unwrap();
    let (a, b) = (a.as_raw_fd(), b.as_raw_fd());
    let pid = fork(|| {
        // SAFETY: both regions are live shared mappings of the right size.
        let (mut rx, mut tx) = unsafe {
            (
                Consumer::attach(active.base, active.len, SLOTS).unwrap(),
                Producer::attach(free.base, free.len, SLOTS).unwrap(),
            )
        };
        let mut seen = 0;
        while seen < DESCS {
            let mut moved = false;
            while let Ok(Some(d)) = rx.dequeue() {
                tx.enqueue(d).unwrap();
                seen += 1;
                moved = true;
            }
            if moved && tx.must_notify() {
                notify(b);
            }
            if seen < DESCS && rx.request_signal() {
                wait_notification(b);
            }
        }
    });
    // SAFETY: as above.
    let (mut tx, mut rx) = unsafe {
        (
            Producer::attach(active.base, active.len, SLOTS).unwrap(),
            Consumer::attach(free.base, free.len, SLOTS).unwrap(),
        )
    };
    let start = Instant::now();
    let (mut sent, mut back) = (0u64, 0u64);
    while back < DESCS {
        let mut queued = false;
        while sent < DESCS && sent - back < u64::from(SLOTS) {
            if tx
                .enqueue(Desc {
                    offset: sent,
                    len: 64,
                    meta: 0,
                })
                .is_err()
            {
                break;
            }
            sent += 1;
            queued = true;
        }
        if queued && tx.must_notify() {
            notify(a);
        }
        while let Ok(Some(d)) = rx.dequeue() {
            assert_eq!(d.offset, back, "descriptors out of order");
            back += 1;
        }
        let blocked = sent == DESCS || sent - back >= u64::from(SLOTS);
        if back < DESCS && blocked && rx.request_signal() {
            wait_notification(a);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    wait(pid);
    secs
}

/// The same work over a socket pair: each descriptor a datagram, sent back.
fn socket_throughput() -> f64 {
    let (a, b) = sys::seqpacket_pair().unwrap();
    let (a, b) = (a.as_raw_fd(), b.as_raw_fd());
    let pid = fork(|| {
        let mut buf = [0u8; 16];
        for _ in 0..DESCS {
            sys::wait_fd(b, libc::POLLIN, -1).unwrap();
            let n = sys::recv_nonblocking(b, &mut buf).unwrap().unwrap();
            sys::send_blocking(b, &buf[..n]).unwrap();
        }
    });
    let start = Instant::now();
    let (mut sent, mut back) = (0u64, 0u64);
    let mut buf = [0u8; 16];
    while back < DESCS {
        while sent < DESCS && sent - back < u64::from(SLOTS) {
            let mut d = [0u8; 16];
            d[..8].copy_from_slice(&sent.to_le_bytes());
            if !sys::send_nonblocking(a, &d).unwrap() {
                break;
            }
            sent += 1;
        }
        sys::wait_fd(a, libc::POLLIN, -1).unwrap();
        while let Ok(Some(16)) = sys::recv_nonblocking(a, &mut buf) {
            assert_eq!(u64::from_le_bytes(buf[..8].try_into().unwrap()), back);
            back += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    wait(pid);
    secs
}

/// Round trips of a notification and its answer; returns sorted nanoseconds.
fn notify_round_trips() -> Vec<u64> {
    let (a, b) = sys::seqpacket_pair().unwrap();
    let (a, b) = (a.as_raw_fd(), b.as_raw_fd());
    let pid = fork(|| {
        for _ in 0..ROUND_TRIPS {
            wait_notification(b);
            notify(b);
        }
    });
    let mut t = Vec::with_capacity(ROUND_TRIPS);
    for _ in 0..ROUND_TRIPS {
        let s = Instant::now();
        notify(a);
        wait_notification(a);
        t.push(s.elapsed().as_nanos() as u64);
    }
    wait(pid);
    t.sort_unstable();
    t
}

/// A 1-byte ping-pong over a stream socket pair.
fn socket_round_trips() -> Vec<u64> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors.
    let r = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) };
    assert_eq!(r, 0);
    let (a, b) = (fds[0], fds[1]);
    let rw = |fd: RawFd, write: bool| {
        let mut byte = [1u8];
        // SAFETY: one byte to or from a local buffer.
        let n = unsafe {
            if write {
                libc::write(fd, byte.as_ptr().cast(), 1)
            } else {
                libc::read(fd, byte.as_mut_ptr().cast(), 1)
            }
        };
        assert_eq!(n, 1);
    };
    let pid = fork(|| {
        for _ in 0..ROUND_TRIPS {
            rw(b, false);
            rw(b, true);
        }
    });
    let mut t = Vec::with_capacity(ROUND_TRIPS);
    for _ in 0..ROUND_TRIPS {
        let s = Instant::now();
        rw(a, true);
        rw(a, false);
        t.push(s.elapsed().as_nanos() as u64);
    }
    wait(pid);
    t.sort_unstable();
    t
}

fn pct(v: &[u64], p: f64) -> u64 {
    v[((v.len() - 1) as f64 * p) as usize]
}

fn main() {
    // `cargo test --benches` runs this with --bench absent: do a tiny run only.
    if std::env::args().any(|a| a == "--test") || !std::env::args().any(|a| a == "--bench") {
        println!("ipc bench: run with `cargo bench -p axolotl-host --bench ipc`");
        return;
    }
    println!("descriptor throughput: {DESCS} descriptors there and back, window {SLOTS}");
    let ring = ring_throughput();
    let sock = socket_throughput();
    let (r, s) = (DESCS as f64 / ring, DESCS as f64 / sock);
    println!("  axolotl rings     {:>12.0} desc/s", r);
    println!("  socket pair       {:>12.0} desc/s", s);
    println!("  ratio rings/socket {:>10.2}x", r / s);

    println!("notify round trip: {ROUND_TRIPS} round trips");
    let n = notify_round_trips();
    let k = socket_round_trips();
    println!(
        "  axolotl notify    median {:>7} ns   p99 {:>7} ns",
        pct(&n, 0.5),
        pct(&n, 0.99)
    );
    println!(
        "  socket ping-pong  median {:>7} ns   p99 {:>7} ns",
        pct(&k, 0.5),
        pct(&k, 0.99)
    );
    println!(
        "  ratio notify/socket (median, lower is better) {:.2}x",
        pct(&n, 0.5) as f64 / pct(&k, 0.5) as f64
    );
}
