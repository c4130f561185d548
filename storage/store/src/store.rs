//! The store: per-client namespaces and quotas, an index in memory, every
//! change in the journal before it is acknowledged.

use crate::journal::{Journal, Medium, Record, RecordKind};
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use axolotl_sdk::config::StoreClient;
use axolotl_sdk::crc::crc32;
pub use axolotl_store_api::buffered::Change;
use axolotl_store_api::buffered::MAX_BUFFER_VALUE_LEN;
use axolotl_store_api::{Key, Status};

/// What one client keeps: the quantities its quotas limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes of keys plus values.
    pub bytes: u64,
    /// Number of keys.
    pub keys: u64,
}

/// Most changes in one batch.
pub const MAX_BATCH: usize = axolotl_store_api::buffered::MAX_BATCH;

/// Most keys one client watches.
pub const MAX_WATCHES: usize = 16;

/// A watch: (watcher, watched namespace, key), client indices.
type Watch = (u8, u8, Key);

/// Each client index as a one-byte value, for watch records to borrow.
const NS_BYTES: [[u8; 1]; 256] = {
    let mut t = [[0u8; 1]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [i as u8];
        i += 1;
    }
    t
};

/// Most clients a store serves (a record holds the client index in a byte;
/// Microkit gives a PD at most 63 channels anyway).
pub const MAX_CLIENTS: usize = 256;

/// The key-value store of every client, over a journal.
pub struct Store<M: Medium = &'static mut [u8]> {
    journal: Journal<M>,
    clients: &'static [StoreClient],
    index: BTreeMap<(u8, Key), Entry>,
    usage: Vec<Usage>,
    /// Every watch, from the journal.
    watches: BTreeSet<Watch>,
    /// Watched keys that changed and the watcher has not asked about yet.
    fired: BTreeSet<Watch>,
    /// Clients to notify that a watched key changed.
    to_notify: BTreeSet<u8>,
    repairs: u64,
}

/// A value in the index, with a checksum over its client, key and bytes.
///
/// The index lives in the store's ordinary memory, which a stray write or
/// a flipped bit can change (`axolotl inject store corrupt`). A value is
/// checked whenever it leaves the store (an answer, a compaction into the
/// journal); one that fails means the memory is not to be trusted, and
/// the store stops at once ([`Entry::checked`] panics) so that its parent
/// restarts it with fresh memory, from the journal, which is checksummed
/// record by record and lives in a region of its own. Served, a wrong
/// value would spread: the filter taking back flows that never were,
/// TCP listening for the wrong app. Lookups that miss because a key's
/// bytes changed are not caught here; they end as "not found".
struct Entry {
    sum: u32,
    value: Vec<u8>,
}

impl Entry {
    fn new(client: u8, key: &Key, value: &[u8]) -> Entry {
        Entry {
            sum: Self::sum(client, key, value),
            value: value.to_vec(),
        }
    }

    fn sum(client: u8, key: &Key, value: &[u8]) -> u32 {
        crc32(&[&[client], key.as_bytes(), value])
    }

    /// The bytes, unchecked: for comparing and counting.
    fn as_slice(&self) -> &[u8] {
        &self.value
    }

    /// The bytes, once the checksum says they are what was stored under
    /// `key` of `client`.
    ///
    /// # Panics
    /// If they are not: the store's memory is corrupt (see [`Entry`]).
    fn checked(&self, client: u8, key: &Key) -> &[u8] {
        if Self::sum(client, key, &self.value) != self.sum {
            panic!(
                "store: the value of a key of client {client} changed in memory; restarting from \
                 the journal"
            );
        }
        &self.value
    }
}

fn cost(key: &[u8], value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64
}

impl<M: Medium> Store<M> {
    /// Opens the store over `medium`, replaying the journal in it (or
    /// formatting it, if it holds none). Client `i` is `clients[i]`; records
    /// of clients that are not in the table are dropped (and logged).
    pub fn new(medium: M, clients: &'static [StoreClient]) -> Store<M> {
        if clients.len() > MAX_CLIENTS {
            log::error!(
                "store: {} clients, only the first {MAX_CLIENTS} are served",
                clients.len()
            );
        }
        let clients = clients.get(..MAX_CLIENTS).unwrap_or(clients);
        let mut index = BTreeMap::new();
        let mut watches = BTreeSet::new();
        let mut dropped = 0u64;
        let journal = Journal::attach(medium, |record| {
            let Some(key) = Key::new(record.key()) else {
                return;
            };
            if usize::from(record.client()) >= clients.len() {
                dropped += 1;
                return;
            }
            match record.kind() {
                RecordKind::Put => {
                    let entry = Entry::new(record.client(), &key, record.value());
                    index.insert((record.client(), key), entry);
                }
                RecordKind::Delete => {
                    index.remove(&(record.client(), key));
                }
                RecordKind::Watch => {
                    if let Some(&ns) = record.value().first() {
                        if usize::from(ns) < clients.len() {
                            watches.insert((record.client(), ns, key));
                        }
                    }
                }
            }
        });
        if dropped > 0 {
            log::warn!("store: dropped {dropped} journal records of clients that are no longer in the table");
        }
        let mut usage = alloc::vec![Usage::default(); clients.len()];
        for ((client, key), value) in &index {
            if let Some(u) = usage.get_mut(usize::from(*client)) {
                u.bytes += cost(key.as_bytes(), value.as_slice());
                u.keys += 1;
            }
        }
        for (client, u) in clients.iter().zip(&usage) {
            if u.bytes > u64::from(client.quota_bytes) || u.keys > u64::from(client.quota_keys) {
                log::warn!(
                    "store: {} holds {} bytes in {} keys, over its quota; it can only shrink",
                    client.namespace,
                    u.bytes,
                    u.keys
                );
            }
        }
        log::info!(
            "store: {} keys and {} watches of {} clients",
            index.len(),
            watches.len(),
            clients.len()
        );
        // A change may have happened just before the store's restart, with
        // its watcher not yet told which key: every watched key counts as
        // changed (the watcher reads it again; nothing is missed).
        let fired = watches.clone();
        Store {
            journal,
            clients,
            index,
            usage,
            watches,
            fired,
            to_notify: BTreeSet::new(),
            repairs: 0,
        }
    }

    /// Every record of the live set that is not a key's value: the watches.
    fn watch_records(watches: &BTreeSet<Watch>) -> impl Iterator<Item = Record<'_>> + Clone {
        watches
            .iter()
            .filter_map(|(w, ns, k)| Record::watch(*w, k.as_bytes(), &NS_BYTES[usize::from(*ns)]))
    }

    /// A key of client `c` changed: its watchers are told.
    fn fire(&mut self, c: u8, key: &Key) {
        for &(w, ns, k) in &self.watches {
            if ns == c && k == *key {
                self.fired.insert((w, ns, k));
                self.to_notify.insert(w);
            }
        }
    }

    /// The clients to notify because a key they watch changed, since the
    /// last call.
    pub fn take_notifications(&mut self) -> Vec<usize> {
        let all = core::mem::take(&mut self.to_notify);
        all.into_iter().map(usize::from).collect()
    }

    /// Client `client` watches `key` of client `ns` (its own or one it may
    /// read: the caller checks). [`Status::Ok`] once the watch is durable;
    /// `QuotaExceeded` past [`MAX_WATCHES`]; watching twice is one watch.
    pub fn watch(&mut self, client: usize, ns: usize, key: &[u8]) -> Status {
        if client >= self.clients.len() || ns >= self.clients.len() {
            return Status::UnknownClient;
        }
        let (c, n) = (client as u8, ns as u8);
        let (Some(k), Some(record)) = (Key::new(key), Record::watch(c, key, &NS_BYTES[ns])) else {
            return Status::BadRequest;
        };
        if self.watches.contains(&(c, n, k)) {
            return Status::Ok;
        }
        if self.watches.iter().filter(|(w, ..)| *w == c).count() >= MAX_WATCHES {
            return Status::QuotaExceeded;
        }
        if self.journal.append(&record).is_err() {
            let live = self
                .index
                .iter()
                .filter_map(|((oc, ok), v)| Record::put(*oc, ok.as_bytes(), v.checked(*oc, ok)))
                .chain(Self::watch_records(&self.watches))
                .chain(core::iter::once(record));
            if self.journal.compact(live).is_err() {
                return Status::JournalFull;
            }
        }
        self.watches.insert((c, n, k));
        Status::Ok
    }

    /// The next watched key of client `client` that changed since it last
    /// asked: (the namespace's client index, the key).
    pub fn changed(&mut self, client: usize) -> Option<(usize, Key)> {
        let c = u8::try_from(client).ok()?;
        let first = *self.fired.iter().find(|(w, ..)| *w == c)?;
        self.fired.remove(&first);
        Some((usize::from(first.1), first.2))
    }

    /// The client table.
    pub fn clients(&self) -> &'static [StoreClient] {
        self.clients
    }

    /// Stores `value` under `key` for client `client`: [`Status::Ok`] once
    /// it is durable, or why not (`UnknownClient`, `BadRequest` for lengths
    /// out of the limits, `QuotaExceeded`, `JournalFull`). Putting the value
    /// a key already has writes nothing.
    pub fn put(&mut self, client: usize, key: &[u8], value: &[u8]) -> Status {
        let (Some(quota), Some(usage)) =
            (self.clients.get(client), self.usage.get(client).copied())
        else {
            return Status::UnknownClient;
        };
        let c = client as u8;
        let (Some(k), Some(record)) = (Key::new(key), Record::put(c, key, value)) else {
            return Status::BadRequest;
        };
        let old = self.index.get(&(c, k));
        if old.is_some_and(|old| old.as_slice() == value) {
            return Status::Ok;
        }
        // An overwrite counts the new size, not both.
        let new = Usage {
            bytes: usage
                .bytes
                .saturating_sub(old.map_or(0, |old| cost(key, old.as_slice())))
                + cost(key, value),
            keys: usage.keys + u64::from(old.is_none()),
        };
        if new.bytes > u64::from(quota.quota_bytes) || new.keys > u64::from(quota.quota_keys) {
            if self.repair_usage(client) {
                return self.put(client, key, value);
            }
            return Status::QuotaExceeded;
        }
        if self.journal.append(&record).is_err() {
            let live = self
                .index
                .iter()
                .filter(move |((oc, ok), _)| !(*oc == c && *ok == k))
                .filter_map(|((oc, ok), v)| Record::put(*oc, ok.as_bytes(), v.checked(*oc, ok)))
                .chain(Self::watch_records(&self.watches))
                .chain(core::iter::once(record));
            if self.journal.compact(live).is_err() {
                log::warn!("store: journal full, {} cannot put", quota.namespace);
                return Status::JournalFull;
            }
        }
        self.index.insert((c, k), Entry::new(c, &k, value));
        self.usage[client] = new;
        self.fire(c, &k);
        Status::Ok
    }

    /// Applies `changes` of client `client` in order, all together or not
    /// at all: after a crash the store holds either none or all of them.
    /// [`Status::Ok`] once they are durable, or why not (`UnknownClient`;
    /// `BadRequest` for an empty or over-long batch or a key or value out
    /// of the limits; `QuotaExceeded` if the client's usage after the whole
    /// batch is over a quota; `JournalFull`). Only the net effect is
    /// written: a key put and then deleted in one batch costs nothing.
    pub fn batch(&mut self, client: usize, changes: &[Change<'_>]) -> Status {
        let (Some(quota), Some(usage)) =
            (self.clients.get(client), self.usage.get(client).copied())
        else {
            return Status::UnknownClient;
        };
        if changes.is_empty() || changes.len() > MAX_BATCH {
            return Status::BadRequest;
        }
        let c = client as u8;
        // The net effect per key, in key order.
        let mut net: BTreeMap<Key, Option<&[u8]>> = BTreeMap::new();
        for change in changes {
            let (key, value) = match *change {
                Change::Put(k, v) if v.len() <= MAX_BUFFER_VALUE_LEN => (k, Some(v)),
                Change::Put(..) => return Status::BadRequest,
                Change::Delete(k) => (k, None),
            };
            let Some(k) = Key::new(key) else {
                return Status::BadRequest;
            };
            net.insert(k, value);
        }
        let mut new = usage;
        let mut records = Vec::new();
        // The keys that change, in key order.
        let mut changed = Vec::new();
        for (k, value) in &net {
            let old = self.index.get(&(c, *k));
            let key = k.as_bytes();
            let record = match (old, value) {
                (Some(o), Some(v)) if o.as_slice() == *v => continue,
                (None, None) => continue,
                (_, Some(v)) => Record::put(c, key, v),
                (Some(_), None) => Record::delete(c, key),
            };
            let Some(record) = record else {
                return Status::BadRequest;
            };
            if let Some(o) = old {
                new.bytes = new.bytes.saturating_sub(cost(key, o.as_slice()));
                new.keys = new.keys.saturating_sub(1);
            }
            if let Some(v) = value {
                new.bytes += cost(key, v);
                new.keys += 1;
            }
            records.push(record);
            changed.push(*k);
        }
        if records.is_empty() {
            return Status::Ok;
        }
        let grows = new.bytes > usage.bytes || new.keys > usage.keys;
        if grows
            && (new.bytes > u64::from(quota.quota_bytes) || new.keys > u64::from(quota.quota_keys))
        {
            if self.repair_usage(client) {
                return self.batch(client, changes);
            }
            return Status::QuotaExceeded;
        }
        if self.journal.append_batch(&records).is_err() {
            // The whole state after the batch, written at once.
            let changed = &changed;
            let live = self
                .index
                .iter()
                .filter(move |((oc, ok), _)| !(*oc == c && changed.binary_search(ok).is_ok()))
                .filter_map(|((oc, ok), v)| Record::put(*oc, ok.as_bytes(), v.checked(*oc, ok)))
                .chain(Self::watch_records(&self.watches))
                .chain(
                    records
                        .iter()
                        .filter(|r| r.kind() == RecordKind::Put)
                        .copied(),
                );
            if self.journal.compact(live).is_err() {
                log::warn!(
                    "store: journal full, {} cannot apply a batch",
                    quota.namespace
                );
                return Status::JournalFull;
            }
        }
        for r in &records {
            let Some(k) = Key::new(r.key()) else { continue };
            match r.kind() {
                RecordKind::Put => {
                    self.index.insert((c, k), Entry::new(c, &k, r.value()));
                }
                RecordKind::Delete => {
                    self.index.remove(&(c, k));
                }
                RecordKind::Watch => {}
            }
        }
        self.usage[client] = new;
        for k in &changed {
            self.fire(c, k);
        }
        Status::Ok
    }

    /// The value of `key` for client `client`, or why not (`UnknownClient`,
    /// `BadRequest`, `NotFound`).
    pub fn get(&self, client: usize, key: &[u8]) -> Result<&[u8], Status> {
        if client >= self.clients.len() {
            return Err(Status::UnknownClient);
        }
        let key = Key::new(key).ok_or(Status::BadRequest)?;
        let c = client as u8;
        self.index
            .get(&(c, key))
            .map(|e| e.checked(c, &key))
            .ok_or(Status::NotFound)
    }

    /// The first key of client `client` after `after` (the very first if
    /// `None`), in key order (shorter keys first), with its value; `None`
    /// past the last.
    pub fn next(&self, client: usize, after: Option<&[u8]>) -> Option<(&[u8], &[u8])> {
        use core::ops::Bound::{Excluded, Included, Unbounded};
        if client >= self.clients.len() {
            return None;
        }
        let c = client as u8;
        let after = after.map(Key::new);
        let start = match after {
            Some(a) => Excluded((c, a?)),
            // The smallest key of all: one zero byte.
            None => Included((c, Key::new(&[0])?)),
        };
        let found = self
            .index
            .range((start, Unbounded))
            .next()
            .filter(|((oc, _), _)| *oc == c)?;
        // A key changed in memory can leave the tree out of order, and a
        // search then ends at a key that is not after `after`: the client
        // would refuse the answer (and a filter take back only part of its
        // flows). Stop instead, and come back from the journal.
        if let Some(Some(a)) = after {
            if found.0 .1 <= a {
                panic!("store: the index is out of order in memory; restarting from the journal");
            }
        }
        let ((_, k), v) = found;
        Some((k.as_bytes(), v.checked(c, k)))
    }

    /// Removes `key` of client `client`: [`Status::Ok`] once that is durable,
    /// `NotFound` if there was no such key, or why not.
    pub fn delete(&mut self, client: usize, key: &[u8]) -> Status {
        let Some(usage) = self.usage.get(client).copied() else {
            return Status::UnknownClient;
        };
        let c = client as u8;
        let (Some(k), Some(record)) = (Key::new(key), Record::delete(c, key)) else {
            return Status::BadRequest;
        };
        let Some(old_len) = self.index.get(&(c, k)).map(|e| e.as_slice().len()) else {
            return Status::NotFound;
        };
        if self.journal.append(&record).is_err() {
            let live = self
                .index
                .iter()
                .filter(move |((oc, ok), _)| !(*oc == c && *ok == k))
                .filter_map(|((oc, ok), v)| Record::put(*oc, ok.as_bytes(), v.checked(*oc, ok)))
                .chain(Self::watch_records(&self.watches));
            // The live set shrinks, so it fits where it was; but never assume.
            if self.journal.compact(live).is_err() {
                log::warn!("store: journal full, cannot delete");
                return Status::JournalFull;
            }
        }
        self.index.remove(&(c, k));
        self.usage[client] = Usage {
            bytes: usage.bytes.saturating_sub((key.len() + old_len) as u64),
            keys: usage.keys.saturating_sub(1),
        };
        self.fire(c, &k);
        Status::Ok
    }

    /// Before a client is refused for its quota: counts its usage again
    /// from the index, the state itself. The running count can only
    /// disagree if the store's own memory was corrupted (a stray write, a
    /// flipped bit); left alone, the client would be refused for ever,
    /// while the store runs on and nothing restarts it. True if the count
    /// was wrong and is now repaired (counted in [`Store::repairs`]).
    fn repair_usage(&mut self, client: usize) -> bool {
        let c = client as u8;
        let mut real = Usage::default();
        for ((_, k), v) in self.index.iter().filter(|((oc, _), _)| *oc == c) {
            real.bytes += cost(k.as_bytes(), v.as_slice());
            real.keys += 1;
        }
        match self.usage.get_mut(client) {
            Some(u) if *u != real => {
                log::warn!("store: client {client}'s usage was {u:?}, is {real:?}: repaired");
                *u = real;
                self.repairs += 1;
                true
            }
            _ => false,
        }
    }

    /// Running counts found wrong and repaired from the state.
    pub fn repairs(&self) -> u64 {
        self.repairs
    }

    /// What client `client` keeps (zero for an unknown client).
    pub fn usage(&self, client: usize) -> Usage {
        self.usage.get(client).copied().unwrap_or_default()
    }

    /// Every key of every client: (client index, key, value), by client then
    /// key.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &[u8], &[u8])> {
        self.index
            .iter()
            .map(|((c, k), v)| (usize::from(*c), k.as_bytes(), v.checked(*c, k)))
    }

    /// Number of keys of all clients.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether no client has a key.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The journal.
    pub fn journal(&self) -> &Journal<M> {
        &self.journal
    }

    /// Gives the journal's medium back (tests reopen it).
    pub fn into_medium(self) -> M {
        self.journal.into_medium()
    }
}

// A value's length fits the journal's 24-bit field.
const _: () = assert!(MAX_BUFFER_VALUE_LEN < 1 << 24);

#[cfg(test)]
mod tests {
    use super::*;
    use axolotl_sdk::Channel;

    static CLIENTS: [StoreClient; 1] = [StoreClient {
        channel: Channel::new(1),
        namespace: "tight",
        quota_bytes: 200,
        quota_keys: 4,
        buffer: None,
        reads: &[],
    }];

    #[test]
    fn a_corrupted_usage_count_is_repaired_before_a_client_is_refused() {
        let mut s: Store<Vec<u8>> = Store::new(vec![0; 4096], &CLIENTS);
        assert_eq!(s.put(0, b"a", b"one"), Status::Ok);
        assert_eq!(s.put(0, b"b", b"two"), Status::Ok);
        let real = s.usage(0);
        // A flipped bit in the running count (as a `corrupt` fault does).
        s.usage[0].bytes ^= 1 << 40;
        assert_eq!(s.put(0, b"c", b"three"), Status::Ok);
        assert_eq!(s.repairs(), 1);
        assert_eq!(s.usage(0).keys, real.keys + 1);
        s.usage[0].keys = 999;
        let changes = [Change::Put(b"d", b"four")];
        assert_eq!(s.batch(0, &changes), Status::Ok);
        assert_eq!(s.repairs(), 2);
        // A real quota is still a quota: one key too many, after no repair.
        assert_eq!(s.put(0, b"e", b"five"), Status::QuotaExceeded);
        assert_eq!(s.repairs(), 2);
    }

    /// A flipped bit in the value `b` holds in memory, as a `corrupt` fault
    /// does.
    fn flip_b(s: &mut Store<Vec<u8>>) {
        let k = Key::new(b"b").unwrap();
        s.index.get_mut(&(0, k)).unwrap().value[1] ^= 4;
    }

    fn corrupted() -> Store<Vec<u8>> {
        let mut s: Store<Vec<u8>> = Store::new(vec![0; 4096], &CLIENTS);
        assert_eq!(s.put(0, b"a", b"one"), Status::Ok);
        assert_eq!(s.put(0, b"b", b"two"), Status::Ok);
        flip_b(&mut s);
        s
    }

    #[test]
    #[should_panic(expected = "changed in memory")]
    fn a_value_changed_in_memory_is_never_served() {
        let _ = corrupted().get(0, b"b");
    }

    #[test]
    #[should_panic(expected = "changed in memory")]
    fn a_value_changed_in_memory_is_never_listed() {
        let s = corrupted();
        let first = s.next(0, None).map(|(k, _)| k.to_vec());
        let _ = s.next(0, first.as_deref());
    }

    #[test]
    #[should_panic(expected = "changed in memory")]
    fn a_value_changed_in_memory_never_reaches_the_journal() {
        // Overwrites of `a` fill the journal until it is compacted, which
        // copies the index into it: it must stop at the bad value rather
        // than make it durable.
        let mut s = corrupted();
        for i in 0..1000u32 {
            let v = if i % 2 == 0 { &b"uno"[..] } else { &b"one"[..] };
            assert_eq!(s.put(0, b"a", v), Status::Ok, "put {i}");
        }
    }

    #[test]
    fn the_store_restarted_from_its_journal_serves_what_was_stored() {
        let s = corrupted();
        assert_eq!(s.get(0, b"a"), Ok(&b"one"[..]));
        let again: Store<Vec<u8>> = Store::new(s.into_medium(), &CLIENTS);
        assert_eq!(again.get(0, b"b"), Ok(&b"two"[..]));
    }
}
