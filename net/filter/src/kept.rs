//! The flow table kept in the state store, so that a restarted filter
//! passes the connections that were open, and only those, from its first
//! packet on: no grace window in which a stray segment could pass.
//!
//! Each flow is a key of its own in the filter's namespace (see
//! [`encode_key`]), with an empty value: written before the first packet
//! of the flow passes on, deleted (at the end of the round, before the new
//! flows are written) when the flow is forgotten. A delete that fails (the
//! store restarting) is tried again next round; a write refused for the
//! quota sweeps the store of keys the filter no longer has, so that keys
//! left behind by faults never fill it for good. A restarted filter lists
//! its keys with NEXT and takes each flow back. A key that does not parse
//! is deleted and logged.

use crate::{Filter, FlowKey, FlowState, MAX_FLOWS};
use alloc::vec::Vec;
use axolotl_sdk::{Channel, Os};
use axolotl_store_api::{StoreError, MAX_KEY_LEN, MAX_VALUE_LEN};
use smoltcp::wire::Ipv4Address;

/// Bytes of a flow's key.
pub const KEY_LEN: usize = 13;
/// Most keys a listing of the filter's namespace goes through.
const LIST_LIMIT: usize = 4 * MAX_FLOWS;
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
    /// Forgotten flows whose delete failed (the store restarting, say):
    /// tried again on the next `keep`, so that no key is left behind to
    /// fill the quota.
    pending_deletes: Vec<[u8; KEY_LEN]>,
    /// Times the store was swept of keys the filter no longer has.
    pub sweeps: u64,
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
        let mut book = FlowBook {
            store,
            failures: 0,
            pending_deletes: Vec::new(),
            sweeps: 0,
        };
        let (mut key, mut value) = ([0u8; MAX_KEY_LEN], [0u8; MAX_VALUE_LEN]);
        let mut after: Vec<u8> = Vec::new();
        let mut found: Vec<(FlowKey, FlowState)> = Vec::new();
        let mut junk: Vec<Vec<u8>> = Vec::new();
        // The store's quota of keys is about MAX_FLOWS: a listing far
        // longer comes from a store gone wrong, and is cut short.
        for _ in 0..LIST_LIMIT {
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

    /// Deletes the flows `filter` forgot (first: a full table pushed one
    /// out to make room for a new one), then writes those it added. A
    /// failure is logged (the 1st, 2nd, 4th... time) and counted, and the
    /// flow still holds in this incarnation; a failed delete is tried again
    /// next time. A write refused for the quota sweeps the store of every
    /// key the filter no longer has (left by a delete that never got
    /// through) and is tried once more.
    pub fn keep(&mut self, os: &mut dyn Os, filter: &mut Filter) {
        let store = self.store;
        let added = filter.take_added();
        let mut deletes = core::mem::take(&mut self.pending_deletes);
        deletes.extend(filter.take_forgotten().iter().map(encode_key));
        // A flow added again since it was forgotten stays.
        deletes.retain(|d| !added.iter().any(|(k, _)| encode_key(k) == *d));
        deletes.sort_unstable();
        deletes.dedup();
        for key in deletes {
            let r = axolotl_store_api::retry(os, RETRIES, |os| {
                axolotl_store_api::delete(os, store, &key)
            });
            match r {
                Ok(_) => {}
                Err(e) => {
                    self.note(Err(e), "delete");
                    if self.pending_deletes.len() < MAX_FLOWS {
                        self.pending_deletes.push(key);
                    }
                }
            }
        }
        let mut swept = false;
        for (k, state) in added {
            let key = encode_key(&k);
            let put = |os: &mut dyn Os| {
                axolotl_store_api::retry(os, RETRIES, |os| {
                    axolotl_store_api::put(os, store, &key, &[state])
                })
            };
            let mut r = put(os);
            if matches!(r, Err(StoreError::QuotaExceeded)) && !swept {
                swept = true;
                self.sweep(os, filter);
                r = put(os);
            }
            self.note(r.map(|_| ()), "write");
        }
    }

    /// Deletes every key in the store that names no flow of `filter`.
    fn sweep(&mut self, os: &mut dyn Os, filter: &Filter) {
        let store = self.store;
        let mut live: Vec<[u8; KEY_LEN]> = filter.flows().map(|k| encode_key(&k)).collect();
        live.sort_unstable();
        let (mut key, mut value) = ([0u8; MAX_KEY_LEN], [0u8; MAX_VALUE_LEN]);
        let mut after: Vec<u8> = Vec::new();
        let mut stale: Vec<Vec<u8>> = Vec::new();
        for _ in 0..LIST_LIMIT {
            let Ok(Some((n, _))) = axolotl_store_api::retry(os, RETRIES, |os| {
                axolotl_store_api::next(os, store, &after, &mut key, &mut value)
            }) else {
                break;
            };
            if live.binary_search_by(|l| l[..].cmp(&key[..n])).is_err() {
                stale.push(key[..n].to_vec());
            }
            after.clear();
            after.extend_from_slice(&key[..n]);
        }
        self.sweeps += 1;
        log::warn!(
            "the store refused a flow for the quota: {} keys of flows no longer known deleted",
            stale.len()
        );
        for k in stale {
            let r = axolotl_store_api::retry(os, RETRIES, |os| {
                axolotl_store_api::delete(os, store, &k)
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
