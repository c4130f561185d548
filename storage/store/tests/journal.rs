//! The journal's byte layout and its crash cases, tested directly.

mod common;

use axolotl_store::journal::{Full, NoRoom, SUPERBLOCK_LEN};
use axolotl_store::{Attached, Journal, Record, RecordKind};
use common::{image_at, Recorder};

type Owned = (RecordKind, u8, Vec<u8>, Vec<u8>);

fn attach(region: Vec<u8>) -> (Journal<Vec<u8>>, Vec<Owned>) {
    let mut seen = Vec::new();
    let j = Journal::attach(region, |r| {
        seen.push((r.kind(), r.client(), r.key().to_vec(), r.value().to_vec()))
    });
    (j, seen)
}

fn put(key: &'static [u8], value: &'static [u8]) -> Record<'static> {
    Record::put(1, key, value).unwrap()
}

fn owned(r: &Record<'_>) -> Owned {
    (r.kind(), r.client(), r.key().to_vec(), r.value().to_vec())
}

#[test]
fn byte_layout_is_as_documented() {
    let (mut j, seen) = attach(vec![0; 1088]);
    assert!(seen.is_empty());
    assert_eq!(j.attached(), Attached::Blank);
    assert_eq!(j.half_len(), 512);
    j.append(&Record::put(2, b"key", b"value").unwrap())
        .unwrap();
    j.append(&Record::delete(2, b"key").unwrap()).unwrap();
    let r = j.into_medium();
    assert_eq!(&r[0..4], b"AXJL");
    assert_eq!(&r[4..8], &[1, 0, 0, 0], "version 1");
    assert_eq!(&r[8..12], &512u32.to_le_bytes());
    assert_eq!(r[16], 0, "half 0 is live");
    assert_eq!(&r[24..28], &0u32.to_le_bytes(), "generation 0");
    let rec = &r[SUPERBLOCK_LEN..SUPERBLOCK_LEN + 24];
    assert_eq!(&rec[4..8], &0u32.to_le_bytes(), "seq 0");
    assert_eq!(
        &rec[8..16],
        &[1, 2, 3, 0, 5, 0, 0, 0],
        "put, client 2, key 3, value 5"
    );
    assert_eq!(&rec[16..24], b"keyvalue");
    let del = &r[SUPERBLOCK_LEN + 24..SUPERBLOCK_LEN + 48];
    assert_eq!(&del[4..16], &[1, 0, 0, 0, 2, 2, 3, 0, 0, 0, 0, 0]);
    assert_eq!(&del[16..24], b"key\0\0\0\0\0", "zero padding");
    let (_, seen) = attach(r);
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1], (RecordKind::Delete, 2, b"key".to_vec(), vec![]));
}

#[test]
fn replay_stops_at_the_first_bad_record() {
    let (mut j, _) = attach(vec![0; 1088]);
    for k in [b"a", b"b", b"c"] {
        j.append(&put(k, b"12345678")).unwrap();
    }
    let mut r = j.into_medium();
    // Corrupt one value byte of the second record: the third goes too.
    r[SUPERBLOCK_LEN + 24 + 18] ^= 1;
    let (mut j, seen) = attach(r);
    assert_eq!(seen.len(), 1);
    // Appending carries on right after the last good record.
    j.append(&put(b"d", b"")).unwrap();
    let (_, seen) = attach(j.into_medium());
    assert_eq!(
        seen.iter().map(|s| s.2.clone()).collect::<Vec<_>>(),
        [b"a".to_vec(), b"d".to_vec()]
    );
}

#[test]
fn a_torn_record_then_a_shorter_one_leaves_no_ghost() {
    // A long record is torn (its commit word never written); after the
    // restart a short record goes where it was, then another: the torn
    // record's bytes beyond must not turn into records.
    let (j, _) = attach(vec![0; 1088]);
    let mut j = Journal::attach(Recorder::new(j.into_medium()), |_| {});
    let before = j.medium().bytes.clone();
    j.append(&put(b"long", &[0xEE; 200])).unwrap();
    let log = j.into_medium().log;
    let total: usize = log.iter().map(|(_, d)| d.len()).sum();
    let (mut j, seen) = attach(image_at(&before, &log, total - 4));
    assert!(seen.is_empty(), "torn record replayed");
    j.append(&put(b"s", b"")).unwrap();
    j.append(&put(b"t", b"x")).unwrap();
    let (_, seen) = attach(j.into_medium());
    assert_eq!(seen.len(), 2);
}

#[test]
fn an_aborted_compaction_leaves_nothing_for_a_later_one() {
    // Fill the live half.
    let (mut j, _) = attach(vec![0; 1088]);
    let mut n = 0u8;
    let keys: Vec<[u8; 1]> = (0..=255u8).map(|k| [k]).collect();
    while j.append(&Record::put(1, &keys[n as usize], &[n; 40]).unwrap()) != Err(NoRoom) {
        n += 1;
    }
    // A compaction into the other half is cut just before its flip.
    let live_a: Vec<Record<'_>> = [b"A", b"B", b"C", b"X"]
        .iter()
        .map(|k| put(*k, b"old"))
        .collect();
    let mut j = Journal::attach(Recorder::new(j.into_medium()), |_| {});
    let before = j.medium().bytes.clone();
    j.compact(live_a.iter().copied()).unwrap();
    let log = j.into_medium().log;
    let total: usize = log.iter().map(|(_, d)| d.len()).sum();
    let (mut j, seen) = attach(image_at(&before, &log, total - 1));
    assert_eq!(seen.len(), usize::from(n), "the old half is still live");
    // The next compaction writes a prefix of what the aborted one wrote.
    let live_b = &live_a[..2];
    j.compact(live_b.iter().copied()).unwrap();
    let (_, seen) = attach(j.into_medium());
    assert_eq!(
        seen,
        live_b.iter().map(owned).collect::<Vec<_>>(),
        "stale records came back"
    );
}

#[test]
fn compaction_refuses_a_live_set_that_does_not_fit() {
    let (mut j, _) = attach(vec![0; 1088]);
    j.append(&put(b"k", b"v")).unwrap();
    let big = [0u8; 256];
    let live: Vec<Record<'_>> = (0..3)
        .map(|_| Record::put(1, b"k", &big).unwrap())
        .collect();
    let before = j.medium().clone();
    assert_eq!(j.compact(live.iter().copied()), Err(Full));
    assert_eq!(j.medium(), &before, "nothing written");
    assert_eq!(j.live_half(), 0);
}

/// A batch's records carry the *more* flag (header byte 11), all but the
/// last; a batch cut short by a crash applies not at all, and the next
/// append goes where it began.
#[test]
fn a_batch_applies_whole_or_not_at_all() {
    let (mut j, _) = attach(vec![0; 1088]);
    j.append(&put(b"a", b"1")).unwrap();
    let before = j.used();
    let batch = [
        put(b"b", b"2"),
        put(b"c", b"3"),
        Record::delete(1, b"a").unwrap(),
    ];
    j.append_batch(&batch).unwrap();
    let r = j.into_medium();
    let base = SUPERBLOCK_LEN + before;
    assert_eq!(r[base + 11], 1, "first of the batch: more follows");
    let last = base + batch[0].encoded_len() + batch[1].encoded_len();
    assert_eq!(r[last + 11], 0, "last of the batch");
    // Whole: all three replay.
    let (_, seen) = attach(r.clone());
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[3], owned(&batch[2]));
    // Its last record's commit word torn: none of the batch replays.
    let mut torn = r;
    torn[last] ^= 0xff;
    let (mut j, seen) = attach(torn);
    assert_eq!(seen, vec![owned(&put(b"a", b"1"))]);
    assert_eq!(j.used(), before, "appending goes on where the batch began");
    j.append(&put(b"d", b"4")).unwrap();
    let (_, seen) = attach(j.into_medium());
    assert_eq!(seen, vec![owned(&put(b"a", b"1")), owned(&put(b"d", b"4"))]);
}
