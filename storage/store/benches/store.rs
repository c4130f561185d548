//! The state store's own costs, against a baseline measured in the same
//! run: an fsync-free append to a file, the least a durable-looking write
//! can cost on the host (the store's journal is memory that outlives the
//! store, so it needs no fsync either).
//!
//! `cargo bench -p axolotl-store --bench store`
//!
//! - put: a 16-byte key and a 64-byte value, each put a new value, through
//!   the store's whole request path (`StoreServer::handle`: decode, quota,
//!   journal append, index, reply), compactions included, on a journal of
//!   system.xml's size; against `write(2)` of the same bytes to a file
//!   opened with `O_APPEND`.
//! - get: the same keys read back through `handle`; against a read of the
//!   same bytes at an offset of that file (`pread(2)`).
//! - commit rate: puts per second over the run.
//!
//! A protected call from another PD adds the platform's call cost on top
//! (`cargo bench -p axolotl-host --bench ipc` measures the host's).

use axolotl_sdk::config::StoreClient;
use axolotl_sdk::{Channel, Message};
use axolotl_store::StoreServer;
use axolotl_store_api::{encode_get, encode_put};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::time::Instant;

const OPS: usize = 200_000;
const KEYS: usize = 64;
const JOURNAL: usize = 0x40000;
const CH: Channel = Channel::new(1);

static CLIENTS: [StoreClient; 1] = [StoreClient {
    channel: CH,
    namespace: "bench",
    quota_bytes: 16384,
    quota_keys: 128,
    buffer: None,
    reads: &[],
}];

/// Median and 99th percentile of `ns`, in nanoseconds.
fn spread(ns: &mut [u64]) -> (u64, u64) {
    ns.sort_unstable();
    (ns[ns.len() / 2], ns[ns.len() * 99 / 100])
}

fn key(i: usize) -> [u8; 16] {
    let mut k = *b"key-000000000000";
    k[4..].copy_from_slice(format!("{:012}", i % KEYS).as_bytes());
    k
}

fn value(i: usize) -> [u8; 64] {
    [(i % 251) as u8; 64]
}

fn main() {
    let journal: &'static mut [u8] = Box::leak(vec![0u8; JOURNAL].into_boxed_slice());
    let mut store = StoreServer::init(journal, &CLIENTS);
    let puts: Vec<Message> = (0..OPS)
        .map(|i| encode_put(&key(i), &value(i)).unwrap())
        .collect();
    let gets: Vec<Message> = (0..OPS).map(|i| encode_get(&key(i)).unwrap()).collect();

    let mut put_ns = Vec::with_capacity(OPS);
    let start = Instant::now();
    for m in &puts {
        let t = Instant::now();
        let reply = store.handle(CH, m);
        put_ns.push(t.elapsed().as_nanos() as u64);
        assert_eq!(reply.label(), 0, "a put failed");
    }
    let put_rate = OPS as f64 / start.elapsed().as_secs_f64();
    let mut get_ns = Vec::with_capacity(OPS);
    for m in &gets {
        let t = Instant::now();
        let reply = store.handle(CH, m);
        get_ns.push(t.elapsed().as_nanos() as u64);
        assert_eq!(reply.label(), 0, "a get failed");
    }

    // The baseline: the same bytes appended to a file, and read back.
    let path = std::env::temp_dir().join(format!("axolotl-store-bench-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let mut file = std::fs::OpenOptions::new()
        .create_new(true)
        .read(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .unwrap();
    let mut record = [0u8; 80];
    let mut append_ns = Vec::with_capacity(OPS);
    let start = Instant::now();
    for i in 0..OPS {
        record[..16].copy_from_slice(&key(i));
        record[16..].copy_from_slice(&value(i));
        let t = Instant::now();
        file.write_all(&record).unwrap();
        append_ns.push(t.elapsed().as_nanos() as u64);
    }
    let append_rate = OPS as f64 / start.elapsed().as_secs_f64();
    let mut read_ns = Vec::with_capacity(OPS);
    for i in 0..OPS {
        let t = Instant::now();
        file.read_exact_at(&mut record, (i * 80) as u64).unwrap();
        read_ns.push(t.elapsed().as_nanos() as u64);
    }
    let _ = std::fs::remove_file(&path);

    let (p50, p99) = spread(&mut put_ns);
    let (a50, a99) = spread(&mut append_ns);
    let (g50, g99) = spread(&mut get_ns);
    let (r50, r99) = spread(&mut read_ns);
    let c = store.counters();
    println!("state store, {OPS} operations on {KEYS} keys, journal of {JOURNAL:#x} bytes");
    println!(
        "  put  median / p99: {p50} / {p99} ns   baseline (file append): {a50} / {a99} ns   ratio {:.2} / {:.2}",
        p50 as f64 / a50 as f64,
        p99 as f64 / a99 as f64
    );
    println!(
        "  get  median / p99: {g50} / {g99} ns   baseline (file pread):  {r50} / {r99} ns   ratio {:.2} / {:.2}",
        g50 as f64 / r50 as f64,
        g99 as f64 / r99 as f64
    );
    println!(
        "  commit rate: {:.0} puts/s   baseline: {:.0} appends/s   ratio {:.2}   ({} puts, {} gets counted)",
        put_rate,
        append_rate,
        put_rate / append_rate,
        c.puts,
        c.gets
    );
    println!(
        "  journal compactions over the run: {}",
        store.store().journal().compactions()
    );
}
