//! The flow table kept in the state store, so that a restarted filter
//! passes the connections that were open, and only those, from its first
//! packet on: no grace window in which a stray segment could pass.
//!
//! Each flow is a key of its own in the filter's namespace (see
//! [`encode_key`]), with an empty value: written before the first packet
//! of the flow passes on, deleted (at the end of the round) when the flow
//! is forgotten. A restarted filter lists its keys with NEXT and takes
//! each flow back. A key that does not parse is deleted and logged.

use crate::{Filter, FlowKey, FlowState, MAX_FLOWS};
use alloc::vec::Vec;
use axolotl_sdk::{Channel, Os};
use axolotl_store_api::{StoreError, MAX_KEY_LEN, MAX_VALUE_LEN};
use smoltcp::wire::Ipv4Address;

/// Bytes of a flow's key.
pub const KEY_LEN: usize = 13;
/// Tries of a store call that met a restarting store.
const RETRIES: usize = 4;

/// A flow's key in the store: protocol, our address and port, the other
/// end's address and port (ports big-endian).
pub fn encode_key(k: &FlowKey) -> [u8; KEY_LEN] {
    let mut out = [0u8; KEY_LEN];
    out[0] = k.proto;
    out[1..5].copy_from_slice(&k.local.0.octets());
    out[5..7].copy_from_slice(&k.local.1.to_be_bytes());
    out[7..11].copy_from_slice(&k.remote.0.octets());
    out[11..13].copy_from_slice(&k.remote.1.to_be_bytes());
    out
}

/// The flow of a key; `None` if it is not one.
pub fn decode_key(b: &[u8]) -> Option<FlowKey> {
    let b: &[u8; KEY_LEN] = b.try_into().ok()?;
    let addr = |i: usize| Ipv4Address::new(b[i], b[i + 1], b[i + 2], b[i + 3]);
    Some(FlowKey {
        proto: b[0],
        local: (addr(1), u16::from_be_bytes([b[5], b[6]])),
        remote: (addr(7), u16::from_be_bytes([b[11], b[12]])),
    })
}

/// The flows in the store, and what it counted.
pub struct FlowBook {
    store: Channel,
    /// Writes or deletes that failed (the flow still holds in memory).
    pub failures: u64,
}

impl FlowBook {
    /// Takes into `filter` the flows kept on the store on `store` (each as
    /// seen at `now`), and makes the filter note its changes from now on;
    /// the book, and how many flows came back.
    pub fn open(
        os: &mut dyn Os,
        store: Channel,
        filter: &mut Filter,
        now: u64,
    ) -> (FlowBook, usize) {
        let mut book = FlowBook { store, failures: 0 };
        let (mut key, mut value) = ([0u8; MAX_KEY_LEN], [0u8; MAX_VALUE_LEN]);
        let mut after: Vec<u8> = Vec::new();
        let mut found: Vec<(FlowKey, FlowState)> = Vec::new();
        let mut junk: Vec<Vec<u8>> = Vec::new();
        loop {
            let listed = axolotl_store_api::retry(os, RETRIES, |os| {
                axolotl_store_api::next(os, store, &after, &mut key, &mut value)
            });
            let (n, v) = match listed {
                Ok(Some(lens)) => lens,
                Ok(None) => break,
                Err(e) => {
                    log::warn!("cannot list the flows in the store ({e:?})");
                    book.failures += 1;
                    break;
                }
            };
            match (decode_key(&key[..n]), &value[..v]) {
                (Some(flow), &[state])
                    if state <= crate::FLOW_FIN_OUT | crate::FLOW_FIN_IN | crate::FLOW_RST =>
                {
                    found.push((flow, state))
                }
                _ => junk.push(key[..n].to_vec()),
            }
            after.clear();
            after.extend_from_slice(&key[..n]);
        }
        // Unfinished flows first: they are the ones whose packets must not
        // be dropped as strays.
        found.sort_by_key(|&(_, state)| state != 0);
        let mut restored = 0;
        for (i, &(flow, state)) in found.iter().enumerate() {
            if i < MAX_FLOWS && filter.restore_flow(flow, state, now) {
                restored += 1;
            } else {
                junk.push(encode_key(&flow).to_vec());
            }
        }
        if !junk.is_empty() {
            log::warn!(
                "{} keys in the store are no flow, or no room for them: deleted",
                junk.len()
            );
        }
        for k in junk {
            let r = axolotl_store_api::retry(os, RETRIES, |os| {
                axolotl_store_api::delete(os, store, &k)
            });
            book.note(r.map(|_| ()), "delete");
        }
        filter.note_changes();
        (book, restored)
    }

    /// Writes the flows `filter` added, then deletes those it forgot. A
    /// failure is logged (the 1st, 2nd, 4th... time) and counted, and the
    /// flow still holds in this incarnation.
    pub fn keep(&mut self, os: &mut dyn Os, filter: &mut Filter) {
        let store = self.store;
        for (k, state) in filter.take_added() {
            let key = encode_key(&k);
            let r = axolotl_store_api::retry(os, RETRIES, |os| {
                axolotl_store_api::put(os, store, &key, &[state])
            });
            self.note(r.map(|_| ()), "write");
        }
        for k in filter.take_forgotten() {
            let key = encode_key(&k);
            let r = axolotl_store_api::retry(os, RETRIES, |os| {
                axolotl_store_api::delete(os, store, &key)
            });
            self.note(r.map(|_| ()), "delete");
        }
    }

    fn note(&mut self, r: Result<(), StoreError>, what: &str) {
        if let Err(e) = r {
            self.failures += 1;
            if self.failures.is_power_of_two() {
                log::warn!(
                    "cannot {what} a flow in the store ({e:?}); {} failures so far",
                    self.failures
                );
            }
        }
    }
}
