//! The state store's benchmark where the store really runs: a client PD
//! times puts and gets through protected calls, and, in the same run, the
//! baseline: a PING of the same words, which the store answers at once (a
//! protected call and nothing else). The ratios say what the store itself
//! adds to the platform's call: decoding, quota, the journal append (no
//! fsync: the journal is memory that outlives the store), the index.
//!
//! `axolotl bench-store --board qemu_virt_aarch64` boots
//! `storage/store-bench/store-bench.xml` (this client and the store, alone) and
//! prints the lines [`run`] logs. On the host, `cargo bench -p
//! axolotl-store --bench store` measures the same request path against an
//! fsync-free file append.
//!
//! Each operation: a 16-byte key (64 of them, round robin) and a 64-byte
//! value; puts overwrite, so the journal compacts along the way.
#![cfg_attr(not(test), no_std)]
#![warn(missing_docs)]

extern crate alloc;

use alloc::vec::Vec;
use axolotl_sdk::{Channel, ChannelSet, Handler, Message, Os};
use axolotl_store_api::{encode_get, encode_put, StoreError};

/// Operations of each kind in a run.
pub const OPS: usize = 5_000;
/// Keys the puts cycle through.
pub const KEYS: usize = 64;
/// The line that ends a run's report.
pub const DONE: &str = "store-bench: done";

/// Median and 99th percentile, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Spread {
    /// The median.
    pub median: u64,
    /// The 99th percentile.
    pub p99: u64,
}

impl Spread {
    fn of(ns: &mut [u64]) -> Spread {
        ns.sort_unstable();
        let at = |q: usize| ns.get((ns.len() * q / 100).min(ns.len().saturating_sub(1)));
        Spread {
            median: at(50).copied().unwrap_or(0),
            p99: at(99).copied().unwrap_or(0),
        }
    }
}

/// What a run measured.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Report {
    /// Operations of each kind.
    pub ops: usize,
    /// Put latency.
    pub put: Spread,
    /// A PING of a put's words.
    pub put_baseline: Spread,
    /// Get latency.
    pub get: Spread,
    /// A PING of a get's words.
    pub get_baseline: Spread,
    /// Puts per second over the put loop.
    pub put_rate: f64,
    /// PINGs (a put's words) per second.
    pub ping_rate: f64,
}

fn key(i: usize) -> [u8; 16] {
    let mut k = *b"key-000000000000";
    let mut n = i % KEYS;
    for d in k[4..].iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    k
}

fn value(i: usize) -> [u8; 64] {
    [(i % 251) as u8; 64]
}

/// A PING carrying `msg`'s words.
fn ping_like(msg: &Message) -> Message {
    let mut p = Message::new(axolotl_store_api::PING);
    for &w in msg.words() {
        // Cannot fail: as many words as `msg` holds.
        let _ = p.push(w);
    }
    p
}

/// Times `ops` calls of `msg(i)` to `store`; each reply must be `OK`.
/// Their latencies (ns) and the elapsed time (ns).
fn time_calls(
    os: &mut dyn Os,
    store: Channel,
    ops: usize,
    msg: impl Fn(usize) -> Message,
) -> Result<(Vec<u64>, u64), StoreError> {
    let mut ns = Vec::with_capacity(ops);
    let start = os.now().as_nanos();
    for i in 0..ops {
        let m = msg(i);
        let t = os.now().as_nanos();
        let reply = os.call(store, &m)?;
        ns.push(os.now().as_nanos().saturating_sub(t));
        if reply.label() != 0 {
            return Err(StoreError::Unexpected(reply.label()));
        }
    }
    Ok((ns, os.now().as_nanos().saturating_sub(start)))
}

fn rate(ops: usize, ns: u64) -> f64 {
    ops as f64 * 1e9 / ns.max(1) as f64
}

/// Runs the benchmark against the store on `store`: puts and their
/// baseline interleaved in rounds (so that a slower stretch of the machine
/// hits both alike), then gets and theirs.
pub fn run(os: &mut dyn Os, store: Channel, ops: usize) -> Result<Report, StoreError> {
    let put = |i: usize| encode_put(&key(i), &value(i)).unwrap_or_else(|_| Message::new(0));
    let get = |i: usize| encode_get(&key(i)).unwrap_or_else(|_| Message::new(0));
    // Warm up: every key exists before a get, and caches are warm.
    time_calls(os, store, KEYS, put)?;
    let (mut puts, mut put_base, mut gets, mut get_base) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut put_ns, mut ping_ns) = (0, 0);
    const ROUND: usize = 500;
    let mut done = 0;
    while done < ops {
        let n = ROUND.min(ops - done);
        let (v, t) = time_calls(os, store, n, |i| put(done + i))?;
        puts.extend(v);
        put_ns += t;
        let (v, t) = time_calls(os, store, n, |i| ping_like(&put(done + i)))?;
        put_base.extend(v);
        ping_ns += t;
        gets.extend(time_calls(os, store, n, |i| get(done + i))?.0);
        get_base.extend(time_calls(os, store, n, |i| ping_like(&get(done + i)))?.0);
        done += n;
    }
    Ok(Report {
        ops,
        put: Spread::of(&mut puts),
        put_baseline: Spread::of(&mut put_base),
        get: Spread::of(&mut gets),
        get_baseline: Spread::of(&mut get_base),
        put_rate: rate(ops, put_ns),
        ping_rate: rate(ops, ping_ns),
    })
}

fn ratio(a: u64, b: u64) -> f64 {
    a as f64 / b.max(1) as f64
}

/// Logs `r` as the lines `axolotl bench-store` reads, then [`DONE`].
pub fn log_report(r: &Report) {
    log::info!(
        "store-bench: {} puts and {} gets of a 16-byte key and a 64-byte value, by protected call; baseline: a PING of the same words",
        r.ops,
        r.ops
    );
    for (what, m, b) in [
        ("put", r.put, r.put_baseline),
        ("get", r.get, r.get_baseline),
    ] {
        log::info!(
            "store-bench: {what} median / p99: {} / {} ns   baseline (PING): {} / {} ns   ratio {:.2} / {:.2}",
            m.median,
            m.p99,
            b.median,
            b.p99,
            ratio(m.median, b.median),
            ratio(m.p99, b.p99)
        );
    }
    log::info!(
        "store-bench: commit rate: {:.0} puts/s   baseline: {:.0} PINGs/s   ratio {:.2}",
        r.put_rate,
        r.ping_rate,
        r.put_rate / r.ping_rate.max(1.0)
    );
    log::info!("{DONE}");
}

/// The benchmark's PD: runs once at start, then waits for nothing.
pub struct StoreBench {
    /// What the run measured, if it finished.
    pub report: Option<Report>,
}

impl StoreBench {
    /// Runs the benchmark against the store on `store` and logs it. A
    /// store that fails is reported, not panicked on: the run ends there.
    pub fn start(os: &mut dyn Os, store: Option<Channel>) -> StoreBench {
        let Some(store) = store else {
            log::error!("store-bench: system.xml gives this PD no channel to the store");
            return StoreBench { report: None };
        };
        match run(os, store, OPS) {
            Ok(r) => {
                log_report(&r);
                StoreBench { report: Some(r) }
            }
            Err(e) => {
                log::error!("store-bench: the store failed: {e:?}");
                StoreBench { report: None }
            }
        }
    }
}

impl Handler for StoreBench {
    type Error = core::convert::Infallible;

    fn notified(&mut self, _os: &mut dyn Os, _channels: ChannelSet) -> Result<(), Self::Error> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cycle_and_spreads_are_ranks() {
        assert_eq!(&key(0), b"key-000000000000");
        assert_eq!(&key(KEYS + 7), b"key-000000000007");
        let mut v: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(
            Spread::of(&mut v),
            Spread {
                median: 51,
                p99: 100
            }
        );
        assert_eq!(Spread::of(&mut []), Spread::default());
    }

    #[test]
    fn a_run_against_a_real_store_measures_every_kind_and_stores_the_puts() {
        const CH: Channel = Channel::new(1);
        let (mut os, calls) =
            axolotl_store::mock::os_with_store_of(CH, "bench", (16384, 128), 0x10000);
        let r = run(&mut os, CH, 600).unwrap();
        assert_eq!(r.ops, 600);
        // The warm-up, then four kinds of 600 calls each.
        assert_eq!(calls.made.get() as usize, KEYS + 4 * 600);
        assert!(r.put_rate > 0.0 && r.ping_rate > 0.0);
        assert!(r.put.p99 >= r.put.median && r.get.p99 >= r.get.median);
        // The puts reached the store: the last value of a key is there.
        let mut v = [0u8; 64];
        let n = axolotl_store_api::get(&mut os, CH, &key(599), &mut v).unwrap();
        assert_eq!((n, v), (Some(64), value(599)));
    }
}
