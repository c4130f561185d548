//! Helpers shared by the store's integration tests.
#![allow(dead_code)]

use axolotl_sdk::config::StoreClient;
use axolotl_sdk::Channel;
use axolotl_store::{Medium, Store};
use std::collections::BTreeMap;

/// Client 0 has tight quotas; 1 and 2 roomy ones.
pub static CLIENTS: [StoreClient; 3] = [
    StoreClient {
        channel: Channel::new(1),
        namespace: "tight",
        quota_bytes: 200,
        quota_keys: 4,
        buffer: None,
        reads: &[],
    },
    StoreClient {
        channel: Channel::new(2),
        namespace: "producer",
        quota_bytes: 100_000,
        quota_keys: 1000,
        buffer: None,
        reads: &[],
    },
    StoreClient {
        channel: Channel::new(5),
        namespace: "consumer",
        quota_bytes: 100_000,
        quota_keys: 1000,
        buffer: None,
        reads: &[],
    },
];

/// A medium that records every write, in order, so that the region as it
/// was after any prefix of the written bytes can be rebuilt: a crash there.
pub struct Recorder {
    pub bytes: Vec<u8>,
    pub log: Vec<(usize, Vec<u8>)>,
}

impl Recorder {
    pub fn new(bytes: Vec<u8>) -> Recorder {
        Recorder {
            bytes,
            log: Vec::new(),
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> usize {
        self.log.iter().map(|(_, d)| d.len()).sum()
    }
}

impl Medium for Recorder {
    fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    fn write(&mut self, offset: usize, data: &[u8]) {
        self.bytes[offset..offset + data.len()].copy_from_slice(data);
        self.log.push((offset, data.to_vec()));
    }
}

/// `initial` after the first `cut` bytes of the writes in `log`: a crash
/// after `cut` byte stores, each write storing its bytes in order.
pub fn image_at(initial: &[u8], log: &[(usize, Vec<u8>)], cut: usize) -> Vec<u8> {
    let mut image = initial.to_vec();
    let mut left = cut;
    for (off, data) in log {
        let n = data.len().min(left);
        image[*off..off + n].copy_from_slice(&data[..n]);
        left -= n;
        if left == 0 {
            break;
        }
    }
    image
}

/// Everything a store holds.
pub type State = BTreeMap<(usize, Vec<u8>), Vec<u8>>;

pub fn state<M: Medium>(store: &Store<M>) -> State {
    store
        .iter()
        .map(|(c, k, v)| ((c, k.to_vec()), v.to_vec()))
        .collect()
}

/// A region of `len` bytes of deterministic garbage.
pub fn garbage(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
