//! The store: namespaces, quotas and the index over the journal.

use crate::journal::{Journal, Medium, Op};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use axolotl_sdk::config::StoreClient;
use axolotl_store_api::Status;

/// What one client uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes of keys plus values.
    pub bytes: u32,
    /// Keys.
    pub keys: u32,
}

/// The key-value store of every client, over a journal.
pub struct Store<M: Medium> {
    journal: Journal<M>,
    clients: &'static [StoreClient],
    map: BTreeMap<(u8, Vec<u8>), Vec<u8>>,
    usage: Vec<Usage>,
}

/// The state after setting (`Some`) or deleting (`None`) one key, as puts:
/// what compaction writes when the journal is full.
fn live_after(
    map: &BTreeMap<(u8, Vec<u8>), Vec<u8>>,
    ns: u8,
    key: &[u8],
    value: Option<&[u8]>,
) -> Vec<Op> {
    let mut live: Vec<Op> = map
        .iter()
        .filter(|((n, k), _)| !(*n == ns && k.as_slice() == key))
        .map(|((n, k), v)| Op::Put(*n, k.clone(), v.clone()))
        .collect();
    if let Some(v) = value {
        live.push(Op::Put(ns, key.to_vec(), v.to_vec()));
    }
    live
}

fn cost(key: &[u8], value: &[u8]) -> u32 {
    (key.len() + value.len()) as u32
}

impl<M: Medium> Store<M> {
    /// Opens the store over `medium`, replaying its journal. `None` if the
    /// medium is too small for a journal.
    pub fn open(medium: M, clients: &'static [StoreClient]) -> Option<Store<M>> {
        let (journal, ops) = Journal::open(medium)?;
        let mut s = Store {
            journal,
            clients,
            map: BTreeMap::new(),
            usage: alloc::vec![Usage::default(); clients.len()],
        };
        let n = ops.len();
        for op in ops {
            s.apply(op);
        }
        log::info!(
            "state store: replayed {n} journal records, {} keys",
            s.map.len()
        );
        Some(s)
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Put(ns, k, v) => {
                let Some(u) = self.usage.get_mut(ns as usize) else {
                    return;
                };
                let (klen, vlen) = (k.len() as u32, v.len() as u32);
                match self.map.insert((ns, k), v) {
                    // The key is counted once; only the value changes.
                    Some(old) => u.bytes = u.bytes - old.len() as u32 + vlen,
                    None => {
                        u.bytes += klen + vlen;
                        u.keys += 1;
                    }
                }
            }
            Op::Delete(ns, k) => {
                if let Some(old) = self.map.remove(&(ns, k.clone())) {
                    if let Some(u) = self.usage.get_mut(ns as usize) {
                        u.bytes -= cost(&k, &old);
                        u.keys -= 1;
                    }
                }
            }
        }
    }

    /// What client `ns` uses.
    pub fn usage(&self, ns: usize) -> Usage {
        self.usage.get(ns).copied().unwrap_or_default()
    }

    /// Stores `value` under `key` for client `ns`: durable when `Ok`.
    pub fn put(&mut self, ns: usize, key: &[u8], value: &[u8]) -> Status {
        let (Some(client), Some(u)) = (self.clients.get(ns), self.usage.get(ns).copied()) else {
            return Status::UnknownClient;
        };
        let old = self.map.get(&(ns as u8, key.to_vec()));
        let (bytes, keys) = match old {
            Some(old) => (u.bytes - cost(key, old) + cost(key, value), u.keys),
            None => (u.bytes + cost(key, value), u.keys + 1),
        };
        if bytes > client.quota_bytes || keys > client.quota_keys {
            return Status::QuotaExceeded;
        }
        let op = Op::Put(ns as u8, key.to_vec(), value.to_vec());
        let map = &self.map;
        let live = || live_after(map, ns as u8, key, Some(value));
        if self.journal.append(&op, live).is_err() {
            return Status::JournalFull;
        }
        self.apply(op);
        Status::Ok
    }

    /// The value of `key` for client `ns`.
    pub fn get(&self, ns: usize, key: &[u8]) -> Result<&[u8], Status> {
        if ns >= self.clients.len() {
            return Err(Status::UnknownClient);
        }
        self.map
            .get(&(ns as u8, key.to_vec()))
            .map(Vec::as_slice)
            .ok_or(Status::NotFound)
    }

    /// Removes `key` for client `ns`: durable when `Ok`.
    pub fn delete(&mut self, ns: usize, key: &[u8]) -> Status {
        if ns >= self.clients.len() {
            return Status::UnknownClient;
        }
        if !self.map.contains_key(&(ns as u8, key.to_vec())) {
            return Status::NotFound;
        }
        let op = Op::Delete(ns as u8, key.to_vec());
        let map = &self.map;
        let live = || live_after(map, ns as u8, key, None);
        if self.journal.append(&op, live).is_err() {
            return Status::JournalFull;
        }
        self.apply(op);
        Status::Ok
    }

    /// Number of keys of all clients.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no client has any key.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The journal's medium.
    pub fn medium(&self) -> &M {
        self.journal.medium()
    }

    /// The journal's medium (for tests).
    pub fn into_medium(self) -> M {
        self.journal.into_medium()
    }
}
