use super::*;
use axolotl_ring::OwnedRing;
use axolotl_sdk::config::StoreClient;
use axolotl_sdk::mock::MockOs;
use axolotl_sdk::{CallError, ChannelSet, Handler, Message};
use axolotl_store::StoreServer;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

const STORE: Channel = Channel::new(1);
const TIMER: Channel = Channel::new(2);
const RING: Channel = Channel::new(3);

static CLIENTS: [StoreClient; 1] = [StoreClient {
    channel: STORE,
    namespace: "worker",
    quota_bytes: 256,
    quota_keys: 4,
    buffer: None,
    reads: &[],
}];

/// A platform with a real store behind STORE, whose journal survives
/// "restarts" of the store, and a timer that accepts anything.
struct World {
    store: Rc<RefCell<StoreServer>>,
    fail_next: Rc<Cell<u32>>,
}

impl World {
    fn new() -> World {
        let journal: &'static mut [u8] = Box::leak(vec![0u8; 8192].into_boxed_slice());
        let store = StoreServer::init(journal, &CLIENTS);
        World {
            store: Rc::new(RefCell::new(store)),
            fail_next: Rc::new(Cell::new(0)),
        }
    }

    fn os(&self) -> MockOs {
        let store = self.store.clone();
        let fail = self.fail_next.clone();
        MockOs::new().on_call(move |ch, msg| {
            if ch == TIMER {
                return Ok(Message::new(0));
            }
            if fail.get() > 0 {
                fail.set(fail.get() - 1);
                return Err(CallError::PeerRestarted);
            }
            Ok(store.borrow_mut().handle(ch, msg))
        })
    }
}

#[test]
fn producer_numbers_jobs_and_resumes_from_the_store() {
    let w = World::new();
    let ring = OwnedRing::new(8);
    let mut os = w.os();
    let mut p = Producer::init(&mut os, ring.producer(), RING, STORE, TIMER, 1_000, 3).unwrap();
    p.notified(&mut os, ChannelSet::single(TIMER)).unwrap();
    assert_eq!(p.next_seq(), 3);
    assert!(os.take_notified().contains(&RING), "consumer was told");
    // The producer restarts: fresh memory, same store and ring.
    let mut p = Producer::init(&mut os, ring.producer(), RING, STORE, TIMER, 1_000, 3).unwrap();
    assert_eq!(p.next_seq(), 3, "resumed, not from zero");
    // The ring holds 8: the third tick fills it and the producer waits.
    p.notified(&mut os, ChannelSet::single(TIMER)).unwrap();
    p.notified(&mut os, ChannelSet::single(TIMER)).unwrap();
    assert_eq!(p.next_seq(), 8);
}

#[test]
fn consumer_counts_once_across_its_own_and_the_producers_restarts() {
    let w = World::new();
    let ring = OwnedRing::new(16);
    let mut os = w.os();
    let mut p = Producer::init(&mut os, ring.producer(), RING, STORE, TIMER, 1_000, 4).unwrap();
    let mut c = Consumer::init(&mut os, ring.consumer(), RING, STORE).unwrap();
    p.notified(&mut os, ChannelSet::single(TIMER)).unwrap();
    c.notified(&mut os, ChannelSet::single(RING)).unwrap();
    assert_eq!(
        c.progress(),
        Progress {
            count: 4,
            next_seq: 4
        }
    );

    // Four more jobs; then the producer restarts and resumes at 8.
    p.notified(&mut os, ChannelSet::single(TIMER)).unwrap();
    let mut restarted =
        Producer::init(&mut os, ring.producer(), RING, STORE, TIMER, 1_000, 4).unwrap();
    assert_eq!(restarted.next_seq(), 8);

    // The consumer restarts before it was notified: it takes the jobs that
    // waited in the ring while it was down.
    let mut c = Consumer::init(&mut os, ring.consumer(), RING, STORE).unwrap();
    assert_eq!(
        c.progress(),
        Progress {
            count: 8,
            next_seq: 8
        }
    );
    restarted
        .notified(&mut os, ChannelSet::single(TIMER))
        .unwrap();
    c.notified(&mut os, ChannelSet::single(RING)).unwrap();
    assert_eq!(
        c.progress(),
        Progress {
            count: 12,
            next_seq: 12
        }
    );
    assert_eq!(c.gaps(), 0);
}

#[test]
fn duplicates_are_skipped_and_gaps_counted() {
    let w = World::new();
    let ring = OwnedRing::new(16);
    let mut os = w.os();
    let mut raw = ring.producer();
    let mut c = Consumer::init(&mut os, ring.consumer(), RING, STORE).unwrap();
    for seq in [0u64, 1, 1, 0, 2, 5, 1 << 60, 6, 7 + 17] {
        raw.enqueue(axolotl_ring::Desc {
            offset: seq,
            len: 0,
            meta: 0,
        })
        .unwrap();
    }
    c.notified(&mut os, ChannelSet::single(RING)).unwrap();
    assert_eq!(
        c.progress(),
        Progress {
            count: 5,
            next_seq: 7
        }
    );
    assert_eq!(c.duplicates(), 2);
    assert_eq!(c.gaps(), 2);
    // Further ahead than the ring holds: garbage, dropped and counted.
    assert_eq!(c.implausible(), 2);
}

#[test]
fn store_restarts_during_calls_are_retried() {
    let w = World::new();
    let ring = OwnedRing::new(8);
    let mut os = w.os();
    w.fail_next.set(3);
    let mut p = Producer::init(&mut os, ring.producer(), RING, STORE, TIMER, 1_000, 2).unwrap();
    w.fail_next.set(2);
    p.notified(&mut os, ChannelSet::single(TIMER)).unwrap();
    let p2 = Producer::init(&mut os, ring.producer(), RING, STORE, TIMER, 1_000, 2).unwrap();
    assert_eq!(p2.next_seq(), 2);
    // A store that never comes back is an error, not a hang or a panic.
    w.fail_next.set(1_000);
    assert_eq!(
        p.notified(&mut os, ChannelSet::single(TIMER)).unwrap_err(),
        WorkerError::Store(axolotl_store_api::StoreError::PeerRestarted)
    );
}
