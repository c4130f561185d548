//! The ARP cache kept in the state store, so that a restarted IP sends its
//! first packet to a known neighbour at once, with no ARP round trip.
//!
//! The record is one value under [`KEY`] in IP's namespace: a version byte
//! (1), then [`ENTRY`] bytes per neighbour, in address order: its IPv4
//! address, its MAC address, and when it was learnt, in whole
//! [`STEP_NS`] since the clock's start (rounded down, so a restored entry
//! expires no later than the original would). Rounding also bounds the
//! writes: the record changes when a neighbour comes, goes or changes its
//! address, and at most once a step for a neighbour that keeps talking.
//! [`decode`] checks everything; a record that does not parse is logged
//! and ignored (IP asks by ARP again, as it did before it kept anything).

use crate::{EthernetAddress, Ip, Ipv4Address, Nanos, ARP_TTL_NS};
use axolotl_sdk::{Channel, Os};
use axolotl_store_api::{Mirror, StoreError, MAX_VALUE_LEN};

/// The key of the record.
pub const KEY: &[u8] = b"neighbours";
/// Bytes per neighbour.
pub const ENTRY: usize = 4 + 6 + 4;
/// Neighbours the record has room for (the most recently learnt are kept).
pub const MAX_KEPT: usize = (MAX_VALUE_LEN - 1) / ENTRY;
/// The unit of the learnt time in the record.
pub const STEP_NS: u64 = ARP_TTL_NS / 2;
const VERSION: u8 = 1;
/// Tries of a store call that met a restarting store.
const RETRIES: usize = 4;

/// A neighbour: its addresses and when it was learnt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Neighbour {
    /// Its IPv4 address.
    pub ip: Ipv4Address,
    /// Its MAC address.
    pub mac: EthernetAddress,
    /// When it was learnt.
    pub learnt: Nanos,
}

/// Why a record was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadRecord {
    /// Empty, too long, or not a version byte and whole entries.
    Length(usize),
    /// A version this code does not know.
    Version(u8),
    /// An entry out of address order, repeated, or with a MAC address that
    /// is not unicast.
    Entry(usize),
}

/// Writes the record of `neighbours` into `out`: its length.
pub fn encode(neighbours: &[Neighbour], out: &mut [u8; MAX_VALUE_LEN]) -> usize {
    let mut kept: heapless::Vec<Neighbour, { crate::ARP_ENTRIES }> = neighbours
        .iter()
        .copied()
        .take(crate::ARP_ENTRIES)
        .collect();
    // The most recent ones, in address order.
    kept.sort_unstable_by_key(|n| core::cmp::Reverse(n.learnt));
    kept.truncate(MAX_KEPT);
    kept.sort_unstable_by_key(|n| n.ip.octets());
    out[0] = VERSION;
    let mut len = 1;
    for n in &kept {
        let steps = u32::try_from(n.learnt / STEP_NS).unwrap_or(u32::MAX);
        out[len..len + 4].copy_from_slice(&n.ip.octets());
        out[len + 4..len + 10].copy_from_slice(n.mac.as_bytes());
        out[len + 10..len + ENTRY].copy_from_slice(&steps.to_le_bytes());
        len += ENTRY;
    }
    len
}

/// The neighbours of a record, each given to `each`; nothing is given if
/// the record does not parse.
pub fn decode(bytes: &[u8], mut each: impl FnMut(Neighbour)) -> Result<(), BadRecord> {
    let (&version, entries) = bytes.split_first().ok_or(BadRecord::Length(0))?;
    if version != VERSION {
        return Err(BadRecord::Version(version));
    }
    if entries.len() % ENTRY != 0 || entries.len() > MAX_KEPT * ENTRY {
        return Err(BadRecord::Length(bytes.len()));
    }
    let parse = |e: &[u8]| {
        let ip = Ipv4Address::new(e[0], e[1], e[2], e[3]);
        let mac = EthernetAddress::from_bytes(&e[4..10]);
        let steps = u32::from_le_bytes([e[10], e[11], e[12], e[13]]);
        Neighbour {
            ip,
            mac,
            learnt: u64::from(steps).saturating_mul(STEP_NS),
        }
    };
    // Check all before giving any.
    let mut last: Option<[u8; 4]> = None;
    for (i, e) in entries.chunks_exact(ENTRY).enumerate() {
        let n = parse(e);
        if !n.mac.is_unicast() || last.is_some_and(|l| l >= n.ip.octets()) {
            return Err(BadRecord::Entry(i));
        }
        last = Some(n.ip.octets());
    }
    entries.chunks_exact(ENTRY).for_each(|e| each(parse(e)));
    Ok(())
}

/// The record in the store.
pub struct NeighbourBook {
    mirror: Mirror,
    /// `Ip::changes` when the record was last brought up to date.
    kept: Option<u64>,
}

impl NeighbourBook {
    /// Reads the record through the store on `store` and teaches `ip` the
    /// neighbours it lists (none if there is no record, it does not parse
    /// or the store cannot be reached; each logged).
    pub fn open(os: &mut dyn Os, store: Channel, ip: &mut Ip) -> NeighbourBook {
        let mut buf = [0u8; MAX_VALUE_LEN];
        let (mirror, found) = Mirror::open(os, store, KEY, RETRIES, &mut buf);
        let now = os.now().as_nanos();
        match found {
            Ok(Some(record)) => {
                let mut known = 0;
                let parsed = decode(record, |n| {
                    if ip.remember(n, now) {
                        known += 1;
                    }
                });
                match parsed {
                    Ok(()) => log::info!("neighbours known again from the store: {known}"),
                    Err(e) => log::warn!("the neighbours in the store do not parse ({e:?})"),
                }
            }
            Ok(None) => {}
            Err(e) => log::warn!("cannot read the neighbours from the store ({e:?})"),
        }
        NeighbourBook { mirror, kept: None }
    }

    /// Makes the record say what `ip` knows now, if it does not already;
    /// costs nothing while the cache has not changed (it runs after every
    /// round of the IP PD).
    pub fn keep(&mut self, os: &mut dyn Os, ip: &Ip) -> Result<(), StoreError> {
        if self.kept == Some(ip.changes()) {
            return Ok(());
        }
        let now = os.now().as_nanos();
        let known: heapless::Vec<Neighbour, { crate::ARP_ENTRIES }> = ip.neighbours(now).collect();
        let mut record = [0u8; MAX_VALUE_LEN];
        let len = encode(&known, &mut record);
        self.mirror.keep(os, &record[..len])?;
        self.kept = Some(ip.changes());
        Ok(())
    }
}
