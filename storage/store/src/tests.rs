use crate::journal::{Medium, Op};
use crate::{Store, StoreServer};
use axolotl_sdk::config::StoreClient;
use axolotl_sdk::mock::MockOs;
use axolotl_sdk::{Channel, Handler, Message};
use axolotl_store_api::Status;
use proptest::prelude::*;
use std::collections::BTreeMap;

static CLIENTS: [StoreClient; 2] = [
    StoreClient {
        channel: Channel::new(1),
        namespace: "a",
        quota_bytes: 200,
        quota_keys: 4,
    },
    StoreClient {
        channel: Channel::new(2),
        namespace: "b",
        quota_bytes: 10_000,
        quota_keys: 100,
    },
];

/// Memory that stops taking writes after `budget` bytes: a crash at that byte.
#[derive(Clone)]
struct CrashMedium {
    bytes: Vec<u8>,
    budget: usize,
}

impl CrashMedium {
    fn new(len: usize, budget: usize) -> Self {
        CrashMedium {
            bytes: vec![0; len],
            budget,
        }
    }
    fn crashed(&self) -> bool {
        self.budget == 0
    }
}

impl Medium for CrashMedium {
    fn len(&self) -> usize {
        self.bytes.len()
    }
    fn read(&self, off: usize, buf: &mut [u8]) {
        buf.copy_from_slice(&self.bytes[off..off + buf.len()]);
    }
    fn write(&mut self, off: usize, data: &[u8]) {
        for (i, &b) in data.iter().enumerate() {
            if self.budget == 0 {
                return;
            }
            self.budget -= 1;
            self.bytes[off + i] = b;
        }
    }
}

fn store(m: CrashMedium) -> Store<CrashMedium> {
    Store::open(m, &CLIENTS).unwrap()
}

#[test]
fn put_get_delete_overwrite_and_namespaces() {
    let mut s = store(CrashMedium::new(4096, usize::MAX));
    assert_eq!(s.put(0, b"k", b"one"), Status::Ok);
    assert_eq!(s.put(1, b"k", b"other"), Status::Ok);
    assert_eq!(s.get(0, b"k"), Ok(&b"one"[..]));
    assert_eq!(s.get(1, b"k"), Ok(&b"other"[..]), "namespaces are separate");
    assert_eq!(s.put(0, b"k", b"two!"), Status::Ok);
    assert_eq!(s.get(0, b"k"), Ok(&b"two!"[..]));
    assert_eq!(s.usage(0).bytes, 5);
    assert_eq!(s.usage(0).keys, 1);
    assert_eq!(s.delete(0, b"k"), Status::Ok);
    assert_eq!(s.get(0, b"k"), Err(Status::NotFound));
    assert_eq!(s.delete(0, b"k"), Status::NotFound);
    assert_eq!(s.usage(0).bytes, 0);
    assert_eq!(s.get(1, b"k"), Ok(&b"other"[..]));
    assert_eq!(s.put(9, b"k", b""), Status::UnknownClient);
    // Survives a reopen.
    let s = store(s.into_medium());
    assert_eq!(s.get(1, b"k"), Ok(&b"other"[..]));
    assert_eq!(s.get(0, b"k"), Err(Status::NotFound));
}

#[test]
fn quotas_count_bytes_and_keys_and_deletes_free_them() {
    let mut s = store(CrashMedium::new(8192, usize::MAX));
    for i in 0..4u8 {
        assert_eq!(s.put(0, &[i], b"x"), Status::Ok);
    }
    assert_eq!(s.put(0, &[9], b"x"), Status::QuotaExceeded, "key quota");
    assert_eq!(
        s.put(0, &[0], &[0; 150]),
        Status::Ok,
        "overwrite counts the new size only"
    );
    assert_eq!(
        s.put(0, &[1], &[0; 60]),
        Status::QuotaExceeded,
        "byte quota"
    );
    assert_eq!(s.delete(0, &[0]), Status::Ok);
    assert_eq!(s.put(0, &[1], &[0; 60]), Status::Ok);
    assert_eq!(s.put(0, &[9], b"x"), Status::Ok);
}

#[test]
fn a_full_journal_compacts_and_keeps_everything() {
    let mut s = store(CrashMedium::new(1024, usize::MAX));
    for round in 0..200u32 {
        assert_eq!(
            s.put(1, b"counter", &round.to_le_bytes()),
            Status::Ok,
            "round {round}"
        );
        assert_eq!(s.put(1, &[(round % 5) as u8 + 1], b"v"), Status::Ok);
    }
    let s = store(s.into_medium());
    assert_eq!(s.get(1, b"counter"), Ok(&199u32.to_le_bytes()[..]));
    assert_eq!(s.len(), 6);
}

#[test]
fn garbage_or_blank_regions_are_formatted() {
    let mut m = CrashMedium::new(2048, usize::MAX);
    for (i, b) in m.bytes.iter_mut().enumerate() {
        *b = (i * 31 + 7) as u8;
    }
    let mut s = store(m);
    assert!(s.is_empty());
    assert_eq!(s.put(1, b"k", b"v"), Status::Ok);
    assert_eq!(store(s.into_medium()).get(1, b"k"), Ok(&b"v"[..]));
    assert!(Store::open(CrashMedium::new(100, usize::MAX), &CLIENTS).is_none());
}

#[derive(Clone, Debug)]
enum Step {
    Put(u8, u8),
    Delete(u8),
}

/// Runs `steps` on a journal of `len` bytes that crashes after `budget`
/// written bytes, reopens it, and checks that every acknowledged operation
/// is there and nothing else but the one in flight.
fn crash_check(steps: &[Step], len: usize, budget: usize) -> usize {
    let mut s = store(CrashMedium::new(len, budget));
    let mut acked: BTreeMap<u8, Vec<u8>> = BTreeMap::new();
    let mut in_flight: Option<(u8, Option<Vec<u8>>)> = None;
    for (i, step) in steps.iter().enumerate() {
        let (key, value) = match *step {
            Step::Put(k, v) => (k, Some(vec![v; (v % 40) as usize + 1 + i % 3])),
            Step::Delete(k) => (k, None),
        };
        let status = match &value {
            Some(v) => s.put(1, &[key], v),
            None => s.delete(1, &[key]),
        };
        if s_crashed(&s) {
            in_flight = Some((key, value));
            break;
        }
        match (status, value) {
            (Status::Ok, Some(v)) => {
                acked.insert(key, v);
            }
            (Status::Ok | Status::NotFound, None) => {
                acked.remove(&key);
            }
            // Not enough room even after compaction: refused, not applied.
            (Status::JournalFull, _) => {}
            (other, _) => panic!("step {i}: {other:?}"),
        }
    }
    let written = s.into_medium();
    let used = usize::MAX - written.budget;
    let reopened = store(CrashMedium {
        budget: usize::MAX,
        ..written
    });
    for key in 0..=255u8 {
        let got = reopened.get(1, &[key]).ok().map(<[u8]>::to_vec);
        let want = acked.get(&key).cloned();
        let ok = got == want
            || in_flight
                .as_ref()
                .is_some_and(|(k, v)| *k == key && got == *v);
        assert!(
            ok,
            "crash after {budget} bytes: key {key}: got {got:?}, acknowledged {want:?}"
        );
    }
    used
}

fn s_crashed(s: &Store<CrashMedium>) -> bool {
    s.medium().crashed()
}

fn fixed_stream() -> Vec<Step> {
    (0..60u8)
        .map(|i| {
            if i % 7 == 6 {
                Step::Delete(i % 5)
            } else {
                Step::Put(i % 6, i)
            }
        })
        .collect()
}

#[test]
fn a_crash_at_every_byte_keeps_every_acknowledged_put() {
    let steps = fixed_stream();
    // A small journal, so that compaction (and crashes inside it) happen.
    let len = 1024;
    let mut budget = 0;
    let mut full_run = store(CrashMedium::new(len, usize::MAX));
    let mut bytes = 0;
    for (i, step) in steps.iter().enumerate() {
        let before = usize::MAX - full_run.medium().budget;
        match *step {
            Step::Put(k, v) => full_run.put(1, &[k], &vec![v; (v % 40) as usize + 1 + i % 3]),
            Step::Delete(k) => full_run.delete(1, &[k]),
        };
        bytes += usize::MAX - full_run.medium().budget - before;
    }
    assert!(
        bytes > 2 * len,
        "the stream must compact a few times ({bytes} bytes)"
    );
    while budget <= bytes {
        crash_check(&steps, len, budget);
        budget += 1;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn random_streams_and_crash_points(
        steps in proptest::collection::vec(
            prop_oneof![(0u8..8, any::<u8>()).prop_map(|(k, v)| Step::Put(k, v)), (0u8..8).prop_map(Step::Delete)],
            1..80,
        ),
        budget in 0usize..20_000,
    ) {
        crash_check(&steps, 2048, budget);
    }

    #[test]
    fn any_message_gets_a_valid_reply(label in 0u64..8, ch in 0u8..4, words in proptest::collection::vec(any::<u64>(), 0..64)) {
        let mem: &'static mut [u8] = Box::leak(vec![0u8; 4096].into_boxed_slice());
        let mut server = StoreServer::init(mem, &CLIENTS);
        let mut os = MockOs::new();
        let msg = Message::with_words(label, &words).unwrap();
        let reply = server.protected(&mut os, Channel::new(ch), &msg).unwrap();
        prop_assert!(Status::from_label(reply.label()).is_some());
    }
}

#[test]
fn client_and_server_round_trip_through_a_call() {
    let mem: &'static mut [u8] = Box::leak(vec![0u8; 4096].into_boxed_slice());
    let server = std::rc::Rc::new(std::cell::RefCell::new(StoreServer::init(mem, &CLIENTS)));
    let s2 = server.clone();
    let mut os = MockOs::new().on_call(move |ch, msg| Ok(s2.borrow_mut().handle(ch, msg)));
    let store = Channel::new(2);
    axolotl_store_api::put_u64(&mut os, store, b"count", 41).unwrap();
    assert_eq!(
        axolotl_store_api::get_u64(&mut os, store, b"count"),
        Ok(Some(41))
    );
    assert_eq!(
        axolotl_store_api::get_u64(&mut os, Channel::new(1), b"count"),
        Ok(None),
        "other namespace"
    );
    assert_eq!(
        axolotl_store_api::put(&mut os, Channel::new(7), b"k", b"v"),
        Err(axolotl_store_api::StoreError::UnknownClient)
    );
    assert!(axolotl_store_api::delete(&mut os, store, b"count").unwrap());
    assert_eq!(server.borrow().counters().0, 1);
    let _ = Op::Delete(0, vec![]);
}
