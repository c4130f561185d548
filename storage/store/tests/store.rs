//! The store's operations, namespaces, quotas, limits and journal formats.

mod common;

use axolotl_sdk::config::StoreClient;
use axolotl_sdk::Channel;
use axolotl_store::journal::{MAX_RECORD_LEN, MIN_REGION_LEN};
use axolotl_store::{Attached, Store};
use axolotl_store_api::{Status, MAX_KEY_LEN, MAX_VALUE_LEN};
use common::{garbage, state, CLIENTS};
use proptest::prelude::*;

fn open(region: Vec<u8>) -> Store<Vec<u8>> {
    Store::new(region, &CLIENTS)
}

#[test]
fn put_get_delete_overwrite() {
    let mut s = open(vec![0; 4096]);
    assert_eq!(s.journal().attached(), Attached::Blank);
    assert_eq!(s.get(1, b"k"), Err(Status::NotFound));
    assert_eq!(s.put(1, b"k", b"one"), Status::Ok);
    assert_eq!(s.get(1, b"k"), Ok(&b"one"[..]));
    assert_eq!(s.put(1, b"k", b"two!"), Status::Ok);
    assert_eq!(s.get(1, b"k"), Ok(&b"two!"[..]));
    assert_eq!(s.put(1, b"empty", b""), Status::Ok);
    assert_eq!(s.get(1, b"empty"), Ok(&b""[..]));
    assert_eq!(s.delete(1, b"k"), Status::Ok);
    assert_eq!(s.get(1, b"k"), Err(Status::NotFound));
    assert_eq!(s.delete(1, b"k"), Status::NotFound);
    // All of it survives a restart of the store.
    let s = open(s.into_medium());
    assert_eq!(s.journal().attached(), Attached::Existing);
    assert_eq!(s.get(1, b"k"), Err(Status::NotFound));
    assert_eq!(s.get(1, b"empty"), Ok(&b""[..]));
    assert_eq!(s.len(), 1);
}

#[test]
fn namespaces_are_isolated() {
    let mut s = open(vec![0; 4096]);
    assert_eq!(s.put(1, b"count", b"producer's"), Status::Ok);
    assert_eq!(s.get(2, b"count"), Err(Status::NotFound));
    assert_eq!(s.put(2, b"count", b"consumer's"), Status::Ok);
    assert_eq!(s.get(1, b"count"), Ok(&b"producer's"[..]));
    assert_eq!(s.delete(2, b"count"), Status::Ok);
    assert_eq!(s.get(1, b"count"), Ok(&b"producer's"[..]));
    let s = open(s.into_medium());
    assert_eq!(s.get(1, b"count"), Ok(&b"producer's"[..]));
    assert_eq!(s.get(2, b"count"), Err(Status::NotFound));
}

#[test]
fn unknown_clients_and_limits() {
    let mut s = open(vec![0; 4096]);
    assert_eq!(s.put(3, b"k", b"v"), Status::UnknownClient);
    assert_eq!(s.get(3, b"k"), Err(Status::UnknownClient));
    assert_eq!(s.delete(usize::MAX, b"k"), Status::UnknownClient);
    assert_eq!(s.put(1, b"", b"v"), Status::BadRequest);
    assert_eq!(s.put(1, &[1; MAX_KEY_LEN + 1], b"v"), Status::BadRequest);
    // Values may be as long as a value buffer carries, no longer.
    let over = vec![1; axolotl_store_api::buffered::MAX_BUFFER_VALUE_LEN + 1];
    assert_eq!(s.put(1, b"k", &over), Status::BadRequest);
    assert_eq!(s.get(1, b""), Err(Status::BadRequest));
    assert_eq!(s.delete(1, &[0; 40]), Status::BadRequest);
    assert_eq!(s.put(1, &[7; MAX_KEY_LEN], &[8; MAX_VALUE_LEN]), Status::Ok);
    assert!(!s.is_empty() && s.len() == 1);
}

#[test]
fn quotas_count_bytes_and_keys_and_deletes_free_them() {
    // Client 0: 200 bytes, 4 keys.
    let mut s = open(vec![0; 8192]);
    for i in 0..4u8 {
        assert_eq!(s.put(0, &[i], b"x"), Status::Ok);
    }
    assert_eq!(s.usage(0).keys, 4);
    assert_eq!(s.usage(0).bytes, 8);
    assert_eq!(s.put(0, &[9], b"x"), Status::QuotaExceeded, "key quota");
    assert_eq!(s.get(0, &[9]), Err(Status::NotFound));
    // Overwriting counts the new size, not both: 1 + 190 + 3 * 2 = 197.
    assert_eq!(s.put(0, &[0], &[0; 190]), Status::Ok);
    assert_eq!(s.usage(0).bytes, 197);
    assert_eq!(s.put(0, &[1], &[0; 5]), Status::QuotaExceeded, "byte quota");
    assert_eq!(
        s.get(0, &[1]),
        Ok(&b"x"[..]),
        "a refused put changes nothing"
    );
    assert_eq!(s.put(0, &[1], &[0; 4]), Status::Ok, "exactly at the quota");
    assert_eq!(s.usage(0).bytes, 200);
    // Deleting frees bytes and a key.
    assert_eq!(s.delete(0, &[0]), Status::Ok);
    assert_eq!(s.usage(0).bytes, 9);
    assert_eq!(s.usage(0).keys, 3);
    assert_eq!(s.put(0, &[9], &[0; 150]), Status::Ok);
    // Other clients are not charged.
    assert_eq!(s.usage(1).bytes, 0);
    // Usage is rebuilt on restart.
    let s = open(s.into_medium());
    assert_eq!(s.usage(0).keys, 4);
    assert_eq!(s.usage(0).bytes, 9 + 151);
}

#[test]
fn a_full_journal_compacts_and_keeps_everything() {
    let mut s = open(vec![0; 1024]);
    for round in 0..500u32 {
        assert_eq!(s.put(1, b"counter", &round.to_le_bytes()), Status::Ok);
        assert_eq!(
            s.put(2, &[(round % 5) as u8 + 1], &[round as u8; 20]),
            Status::Ok
        );
    }
    assert!(s.journal().compactions() > 20);
    let before = state(&s);
    let s = open(s.into_medium());
    assert_eq!(state(&s), before);
    assert_eq!(s.get(1, b"counter"), Ok(&499u32.to_le_bytes()[..]));
    assert_eq!(s.len(), 6);
}

#[test]
fn journal_full_is_reported_and_changes_nothing() {
    // One half holds about three of the largest records.
    let len = MIN_REGION_LEN + 2 * MAX_RECORD_LEN;
    let mut s = open(vec![0; len]);
    let mut n = 0u8;
    while s.put(1, &[n], &[n; MAX_VALUE_LEN]) == Status::Ok {
        n += 1;
    }
    assert_eq!(s.put(1, &[n], &[n; MAX_VALUE_LEN]), Status::JournalFull);
    assert!(n >= 2);
    let full = state(&s);
    // Deleting still works (it only shrinks the live set), and makes room.
    assert_eq!(s.delete(1, &[0]), Status::Ok);
    assert_eq!(s.put(1, &[n], &[n; MAX_VALUE_LEN]), Status::Ok);
    let s = open(s.into_medium());
    let mut want = full;
    want.remove(&(1, vec![0]));
    want.insert((1, vec![n]), vec![n; MAX_VALUE_LEN]);
    assert_eq!(state(&s), want);
}

#[test]
fn same_value_put_writes_nothing() {
    let mut s = open(vec![0; 4096]);
    assert_eq!(s.put(1, b"k", b"v"), Status::Ok);
    let used = s.journal().used();
    assert_eq!(s.put(1, b"k", b"v"), Status::Ok);
    assert_eq!(s.journal().used(), used);
}

#[test]
fn garbage_is_reformatted_and_too_small_refuses_puts() {
    let mut s = open(garbage(3000, 7));
    assert_eq!(s.journal().attached(), Attached::Garbage);
    assert!(s.is_empty());
    assert_eq!(s.put(1, b"k", b"v"), Status::Ok);
    let s = open(s.into_medium());
    assert_eq!(s.journal().attached(), Attached::Existing);
    assert_eq!(s.get(1, b"k"), Ok(&b"v"[..]));

    for len in [0, 1, 100, MIN_REGION_LEN - 1] {
        let mut s = open(vec![0xAA; len]);
        assert_eq!(s.journal().attached(), Attached::TooSmall);
        assert_eq!(s.put(1, b"k", b"v"), Status::JournalFull);
        assert_eq!(s.delete(1, b"k"), Status::NotFound);
        assert_eq!(
            s.into_medium(),
            vec![0xAA; len],
            "a small region is left alone"
        );
    }
    let mut s = open(vec![0; MIN_REGION_LEN]);
    assert_eq!(s.put(1, &[1; MAX_KEY_LEN], &[2; MAX_VALUE_LEN]), Status::Ok);
}

#[test]
fn a_changed_region_size_reformats() {
    let mut s = open(vec![0; 4096]);
    assert_eq!(s.put(1, b"k", b"v"), Status::Ok);
    let mut region = s.into_medium();
    region.extend_from_slice(&[0; 1024]);
    let s = open(region);
    assert_eq!(s.journal().attached(), Attached::Garbage);
    assert!(s.is_empty());
}

#[test]
fn records_of_clients_no_longer_configured_are_dropped() {
    static TWO: [axolotl_sdk::config::StoreClient; 2] = [CLIENTS[0], CLIENTS[1]];
    let mut s = open(vec![0; 4096]);
    assert_eq!(s.put(2, b"k", b"v"), Status::Ok);
    assert_eq!(s.put(1, b"k", b"w"), Status::Ok);
    let s = Store::new(s.into_medium(), &TWO);
    assert_eq!(s.len(), 1);
    assert_eq!(s.get(1, b"k"), Ok(&b"w"[..]));
    assert_eq!(s.get(2, b"k"), Err(Status::UnknownClient));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any bytes at all: opening never panics, and the store works after.
    #[test]
    fn any_region_opens(region in proptest::collection::vec(any::<u8>(), 0..2500)) {
        let len = region.len();
        let mut s = open(region);
        if len >= MIN_REGION_LEN {
            prop_assert_eq!(s.put(1, b"k", b"v"), Status::Ok);
            let s = open(s.into_medium());
            prop_assert_eq!(s.get(1, b"k"), Ok(&b"v"[..]));
        }
    }

    /// A valid journal with bytes flipped anywhere: no panic; what is read
    /// is a subset of history, and the store keeps working.
    #[test]
    fn corrupted_journal_opens(flips in proptest::collection::vec((0usize..2048, any::<u8>()), 1..8)) {
        let mut s = open(vec![0; 2048]);
        for i in 0..40u8 {
            let _ = s.put(1 + usize::from(i % 2), &[i % 7], &[i; 13]);
        }
        let mut region = s.into_medium();
        for (at, x) in flips {
            region[at] ^= x | 1;
        }
        let mut s = open(region);
        for (c, k, v) in s.iter() {
            prop_assert!(c == 1 || c == 2);
            prop_assert!(k.len() == 1 && k[0] < 7 && v.len() == 13 && v.iter().all(|&b| b % 7 == k[0] && b == v[0]));
        }
        prop_assert_eq!(s.put(1, b"after", b"v"), Status::Ok);
        let s = open(s.into_medium());
        prop_assert_eq!(s.get(1, b"after"), Ok(&b"v"[..]));
    }
}

#[test]
fn a_batch_changes_keys_together_and_checks_them_first() {
    use axolotl_store::{Change, MAX_BATCH};
    let mut s = open(vec![0; 4096]);
    assert_eq!(s.put(1, b"a", b"old"), Status::Ok);
    let records = s.journal().records();
    // Only the net effect is written: b put and deleted again costs nothing.
    let batch = [
        Change::Put(b"b", b"x"),
        Change::Delete(b"a"),
        Change::Put(b"c", b"cc"),
        Change::Delete(b"b"),
        Change::Delete(b"never"),
    ];
    assert_eq!(s.batch(1, &batch), Status::Ok);
    assert_eq!(s.journal().records(), records + 2, "delete a, put c");
    assert_eq!(s.get(1, b"a"), Err(Status::NotFound));
    assert_eq!(s.get(1, b"b"), Err(Status::NotFound));
    assert_eq!(s.get(1, b"c"), Ok(&b"cc"[..]));
    assert_eq!(s.usage(1).keys, 1);
    let s2 = open(s.into_medium());
    assert_eq!(s2.get(1, b"c"), Ok(&b"cc"[..]));
    let mut s = s2;
    // Refused whole: a bad key, an empty or over-long batch, an unknown
    // client, a quota the batch as a whole would break.
    assert_eq!(
        s.batch(1, &[Change::Put(b"d", b"1"), Change::Put(b"", b"2")]),
        Status::BadRequest
    );
    assert_eq!(s.batch(1, &[]), Status::BadRequest);
    let many = vec![Change::Delete(b"z"); MAX_BATCH + 1];
    assert_eq!(s.batch(1, &many), Status::BadRequest);
    assert_eq!(s.batch(3, &[Change::Delete(b"c")]), Status::UnknownClient);
    // Client 0 may keep 4 keys: five new ones in one batch are refused,
    // and none of them is kept.
    let keys = [b"k0", b"k1", b"k2", b"k3", b"k4"];
    let over: Vec<Change<'_>> = keys.iter().map(|k| Change::Put(&k[..], b"v")).collect();
    assert_eq!(s.batch(0, &over), Status::QuotaExceeded);
    assert_eq!(
        s.get(0, b"k0"),
        Err(Status::NotFound),
        "nothing of a refused batch"
    );
    assert_eq!(s.batch(0, &over[..4]), Status::Ok);
    assert_eq!(s.usage(0).keys, 4);
    assert_eq!(s.get(1, b"c"), Ok(&b"cc"[..]));
}

/// `axolotl check` promises (`axolotl_sysdesc::journal_room`) that clients
/// whose quotas fit a journal can fill them and rewrite them for ever:
/// every put to the full quota of two clients, then overwrites that force
/// compaction after compaction, never meet JOURNAL_FULL. Its figures are
/// the journal's own.
#[test]
fn quotas_that_axolotl_check_accepts_always_fit_the_journal() {
    use axolotl_sysdesc::{
        journal_room, quota_journal_bytes, StateQuota, JOURNAL_MAX_RECORD, JOURNAL_RECORD_OVERHEAD,
        JOURNAL_SUPERBLOCK,
    };
    assert_eq!(
        JOURNAL_RECORD_OVERHEAD as usize,
        axolotl_store::journal::RECORD_HEADER_LEN + 7
    );
    assert_eq!(JOURNAL_MAX_RECORD as usize, MAX_RECORD_LEN);
    assert_eq!(
        JOURNAL_SUPERBLOCK as usize,
        axolotl_store::journal::SUPERBLOCK_LEN
    );

    const LEN: usize = 4096;
    // Two clients, 8 keys each, their bytes the rest of the room.
    let keys = 8u32;
    let room = journal_room(LEN as u64);
    let per_client = room / 2;
    let bytes = (per_client - u64::from(keys) * JOURNAL_RECORD_OVERHEAD) as u32;
    let q = StateQuota {
        bytes,
        keys,
        ..StateQuota::default()
    };
    assert!(2 * quota_journal_bytes(&q) <= room);
    let clients: &'static [StoreClient] = Box::leak(Box::new([
        StoreClient {
            channel: Channel::new(1),
            namespace: "a",
            quota_bytes: bytes,
            quota_keys: keys,
            buffer: None,
            reads: &[],
        },
        StoreClient {
            channel: Channel::new(2),
            namespace: "b",
            quota_bytes: bytes,
            quota_keys: keys,
            buffer: None,
            reads: &[],
        },
    ]));
    let mut s = Store::new(vec![0u8; LEN], clients);
    // Keys of odd lengths, so that padding counts too.
    let key = |i: u32| format!("k{i:0>w$}", w = 20 + i as usize % 7).into_bytes();
    let key_bytes: usize = (0..keys).map(|i| key(i).len()).sum();
    let value_len = (bytes as usize - key_bytes) / keys as usize;
    for round in 0..50u8 {
        for c in 0..2 {
            for i in 0..keys {
                let v = vec![round ^ i as u8; value_len - (i as usize % 3)];
                assert_eq!(
                    s.put(c, &key(i), &v),
                    Status::Ok,
                    "round {round}, client {c}, key {i}"
                );
            }
        }
    }
}
