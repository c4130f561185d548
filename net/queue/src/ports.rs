//! The ports a transport's apps hold (bound UDP ports, listening TCP
//! ports, each with the app that owns it), kept in the state store so that
//! a restarted transport serves them at once, before its apps have even
//! noticed the restart.
//!
//! The record is one value under [`KEY`] in the transport's namespace:
//! a version byte (1), then three bytes per port: the port (little-endian)
//! and the app's number. [`decode`] checks all of it; a record that does
//! not parse is logged and ignored (the apps bind and listen again, as
//! they do after any restart of the transport).

use alloc::vec::Vec;
use axolotl_sdk::{Channel, Os};
use axolotl_store_api::{retry, StoreError, MAX_VALUE_LEN};

/// The key of the record.
pub const KEY: &[u8] = b"ports";
/// Ports the record has room for.
pub const MAX_PORTS: usize = (MAX_VALUE_LEN - 1) / 3;
const VERSION: u8 = 1;
/// Tries of a store call that met a restarting store.
const RETRIES: usize = 4;

/// A port and the app that holds it.
pub type Held = (u16, u8);

/// Why a record was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadRecord {
    /// Empty, longer than [`MAX_PORTS`] entries, or a length that is not a
    /// version byte and whole entries.
    Length(usize),
    /// A version this code does not know.
    Version(u8),
    /// Port 0, or a port listed twice.
    Port(u16),
}

/// The record of `ports` (at most [`MAX_PORTS`]; more are not kept).
pub fn encode(ports: &[Held]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 3 * ports.len().min(MAX_PORTS));
    out.push(VERSION);
    for &(port, app) in ports.iter().take(MAX_PORTS) {
        out.extend_from_slice(&port.to_le_bytes());
        out.push(app);
    }
    out
}

/// The ports of a record.
pub fn decode(bytes: &[u8]) -> Result<Vec<Held>, BadRecord> {
    let (&version, entries) = bytes.split_first().ok_or(BadRecord::Length(0))?;
    if version != VERSION {
        return Err(BadRecord::Version(version));
    }
    if entries.len() % 3 != 0 || entries.len() > 3 * MAX_PORTS {
        return Err(BadRecord::Length(bytes.len()));
    }
    let mut ports: Vec<Held> = Vec::with_capacity(entries.len() / 3);
    for e in entries.chunks_exact(3) {
        let port = u16::from_le_bytes([e[0], e[1]]);
        if port == 0 || ports.iter().any(|p| p.0 == port) {
            return Err(BadRecord::Port(port));
        }
        ports.push((port, e[2]));
    }
    Ok(ports)
}

/// The record in the store, and what it last said.
pub struct PortBook {
    store: Channel,
    saved: Vec<Held>,
}

impl PortBook {
    /// Reads the record through the store on `store`: the book, and the
    /// ports it lists (none if there is no record, it does not parse, or
    /// the store cannot be reached; each logged).
    pub fn open(os: &mut dyn Os, store: Channel) -> (PortBook, Vec<Held>) {
        let mut buf = [0u8; MAX_VALUE_LEN];
        let ports = match retry(os, RETRIES, |os| {
            axolotl_store_api::get(os, store, KEY, &mut buf)
        }) {
            Ok(Some(n)) => decode(&buf[..n]).unwrap_or_else(|e| {
                log::warn!("the ports in the store do not parse ({e:?}): starting with none");
                Vec::new()
            }),
            Ok(None) => Vec::new(),
            Err(e) => {
                log::warn!("cannot read the ports from the store ({e:?}): starting with none");
                Vec::new()
            }
        };
        let book = PortBook {
            store,
            saved: ports.clone(),
        };
        (book, ports)
    }

    /// Makes the record say `ports` (in any order), if it does not
    /// already; durable when this returns `Ok`.
    pub fn keep(&mut self, os: &mut dyn Os, ports: &[Held]) -> Result<(), StoreError> {
        let mut sorted = ports.to_vec();
        sorted.sort_unstable();
        if sorted == self.saved {
            return Ok(());
        }
        let record = encode(&sorted);
        retry(os, RETRIES, |os| {
            axolotl_store_api::put(os, self.store, KEY, &record)
        })?;
        self.saved = sorted;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axolotl_sdk::config::StoreClient;
    use axolotl_sdk::mock::MockOs;
    use axolotl_sdk::CallError;
    use axolotl_store::StoreServer;
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;

    const STORE: Channel = Channel::new(1);
    static CLIENTS: [StoreClient; 1] = [StoreClient {
        channel: STORE,
        namespace: "udp",
        quota_bytes: 512,
        quota_keys: 2,
    }];

    /// An OS whose calls reach a real store; `fail` calls before that see
    /// the store restarting.
    fn world() -> (MockOs, Rc<RefCell<StoreServer>>, Rc<Cell<u32>>) {
        let journal: &'static mut [u8] = Box::leak(vec![0u8; 8192].into_boxed_slice());
        let store = Rc::new(RefCell::new(StoreServer::init(journal, &CLIENTS)));
        let fail = Rc::new(Cell::new(0));
        let (s, f) = (store.clone(), fail.clone());
        let os = MockOs::new().on_call(move |ch, msg| {
            if f.get() > 0 {
                f.set(f.get() - 1);
                return Err(CallError::PeerRestarted);
            }
            Ok(s.borrow_mut().handle(ch, msg))
        });
        (os, store, fail)
    }

    #[test]
    fn ports_kept_are_there_for_the_next_incarnation() {
        let (mut os, _, fail) = world();
        let (mut book, ports) = PortBook::open(&mut os, STORE);
        assert!(ports.is_empty(), "a first start finds no ports");
        book.keep(&mut os, &[(7, 0), (53, 1)]).unwrap();
        // The store restarts during the next write: it is tried again.
        fail.set(2);
        book.keep(&mut os, &[(9, 0), (7, 0), (53, 1)]).unwrap();
        // The transport restarts: fresh memory, the same store.
        let (_, ports) = PortBook::open(&mut os, STORE);
        assert_eq!(ports, vec![(7, 0), (9, 0), (53, 1)]);
    }

    #[test]
    fn an_unchanged_set_is_not_written_again() {
        let (mut os, _, _) = world();
        let (mut book, _) = PortBook::open(&mut os, STORE);
        book.keep(&mut os, &[(7, 0)]).unwrap();
        // Any call now would fail: none is made.
        let mut calls_fail = MockOs::new().on_call(|_, _| Err(CallError::PeerStopped));
        book.keep(&mut calls_fail, &[(7, 0)]).unwrap();
        assert!(book.keep(&mut calls_fail, &[(8, 0)]).is_err());
    }

    #[test]
    fn a_store_that_stays_away_is_reported_not_waited_for() {
        let (mut os, _, fail) = world();
        fail.set(100);
        let (mut book, ports) = PortBook::open(&mut os, STORE);
        assert!(ports.is_empty());
        assert_eq!(
            book.keep(&mut os, &[(7, 0)]),
            Err(StoreError::PeerRestarted)
        );
    }

    #[test]
    fn records_round_trip_and_bad_ones_are_refused() {
        let ports = vec![(7, 0), (65535, 255), (1, 3)];
        assert_eq!(decode(&encode(&ports)), Ok(ports));
        assert_eq!(decode(&encode(&[])), Ok(vec![]));
        assert_eq!(decode(&[]), Err(BadRecord::Length(0)));
        assert_eq!(decode(&[2, 7, 0, 0]), Err(BadRecord::Version(2)));
        assert_eq!(decode(&[1, 7, 0]), Err(BadRecord::Length(3)));
        assert_eq!(decode(&[1, 0, 0, 0]), Err(BadRecord::Port(0)));
        assert_eq!(decode(&[1, 7, 0, 0, 7, 0, 1]), Err(BadRecord::Port(7)));
        // Too many to keep: the record holds the first MAX_PORTS and
        // still fits a store value.
        let many: Vec<Held> = (1..=200).map(|p| (p, 0)).collect();
        let record = encode(&many);
        assert!(record.len() <= MAX_VALUE_LEN);
        assert_eq!(decode(&record).unwrap().len(), MAX_PORTS);
    }

    #[test]
    fn any_bytes_decode_without_a_panic() {
        let mut x: u32 = 1;
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = decode(&bytes);
            let mut b = bytes.clone();
            if let Some(v) = b.first_mut() {
                *v = VERSION;
            }
            if let Ok(p) = decode(&b) {
                assert_eq!(encode(&p), b);
            }
        }
    }
}
