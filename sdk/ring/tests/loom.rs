//! Every interleaving (and every weak-memory outcome loom models) of one
//! producer and one consumer running the signalling protocol: no wake-up is
//! lost. Three deliberately broken variants show that the check can fail.
//!
//! ```sh
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=/tmp/tgt-ring-loom \
//!     cargo test -p axolotl-ring --release --test loom
//! ```
//!
//! `RING_LOOM_BOUND=N` sets loom's preemption bound (default 4).
#![cfg(loom)]

use axolotl_ring::{Desc, EnqueueError, OwnedRing};
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

/// Items the producer sends, through a ring of two slots (so it also fills).
const ITEMS: u64 = 3;

/// Which side, if any, runs a broken protocol.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Variant {
    Correct,
    /// The consumer requests a signal but does not look at the tail again.
    ConsumerWithoutRecheck,
    /// The consumer requests and re-checks without the full fence.
    ConsumerWithoutFence,
    /// The producer looks at the flag without the full fence.
    ProducerWithoutFence,
}

fn model(variant: Variant) {
    let mut builder = loom::model::Builder::new();
    // Bounded preemptions keep the run short: 4 (the default) explores
    // every schedule with up to four preemptions in about 10 s; each broken
    // variant already fails with two. `RING_LOOM_BOUND=5` takes about a
    // minute.
    builder.preemption_bound = Some(
        std::env::var("RING_LOOM_BOUND")
            .ok()
            .and_then(|b| b.parse().ok())
            .unwrap_or(4),
    );
    builder.check(move || {
        let ring = OwnedRing::new(2);
        let mut producer = ring.producer();
        let mut consumer = ring.consumer();
        // The notification object: a sticky counter, as on seL4.
        let pending = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let (pending2, done2) = (pending.clone(), done.clone());
        let t = thread::spawn(move || {
            for i in 0..ITEMS {
                let desc = Desc {
                    offset: i,
                    len: 0,
                    meta: 0,
                };
                loop {
                    match producer.enqueue(desc) {
                        Ok(()) => break,
                        Err(EnqueueError::Full) => thread::yield_now(),
                        Err(e) => panic!("honest consumer misbehaved: {e:?}"),
                    }
                }
                let notify = if variant == Variant::ProducerWithoutFence {
                    producer.must_notify_without_fence()
                } else {
                    producer.must_notify()
                };
                if notify {
                    pending2.fetch_add(1, Ordering::SeqCst);
                }
            }
            done2.store(true, Ordering::SeqCst);
        });

        let mut got = 0;
        'run: loop {
            while let Some(desc) = consumer.dequeue().unwrap() {
                assert_eq!(desc.offset, got, "out of order");
                got += 1;
            }
            let may_sleep = match variant {
                Variant::ConsumerWithoutRecheck => consumer.request_signal_without_recheck(),
                Variant::ConsumerWithoutFence => consumer.request_signal_without_fence(),
                _ => consumer.request_signal(),
            };
            if !may_sleep {
                continue;
            }
            // Asleep: only a notification wakes the consumer. Once the
            // producer has finished and none is pending, none will ever
            // come: the consumer sleeps for ever.
            loop {
                if pending.swap(0, Ordering::SeqCst) > 0 {
                    continue 'run;
                }
                if done.load(Ordering::SeqCst) {
                    if pending.swap(0, Ordering::SeqCst) > 0 {
                        continue 'run;
                    }
                    break 'run;
                }
                thread::yield_now();
            }
        }
        t.join().unwrap();
        // Asleep for ever with no notification pending: the ring must be
        // empty, i.e. everything was consumed.
        assert_eq!(got, ITEMS, "lost wake-up: asleep with work in the ring");
        assert_eq!(consumer.dequeue().unwrap(), None);
    });
}

#[test]
fn no_wake_up_is_lost() {
    model(Variant::Correct);
}

#[test]
#[should_panic(expected = "lost wake-up")]
fn a_consumer_that_does_not_recheck_loses_wake_ups() {
    model(Variant::ConsumerWithoutRecheck);
}

#[test]
#[should_panic(expected = "lost wake-up")]
fn a_consumer_without_the_fence_loses_wake_ups() {
    model(Variant::ConsumerWithoutFence);
}

#[test]
#[should_panic(expected = "lost wake-up")]
fn a_producer_without_the_fence_loses_wake_ups() {
    model(Variant::ProducerWithoutFence);
}
