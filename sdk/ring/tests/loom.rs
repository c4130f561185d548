//! Every interleaving of one producer and one consumer running the
//! signalling protocol (loom): no wake-up is lost.
//!
//! `RUSTFLAGS="--cfg loom" cargo test -p axolotl-ring --release --test loom`
#![cfg(loom)]

use axolotl_ring::{Desc, OwnedRing};
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

const ITEMS: u64 = 2;

/// Runs the model; `broken` uses a consumer that does not re-check after
/// requesting a signal.
fn model(broken: bool) {
    // Three preemptions cover the lost-wake-up window (found with two) while
    // keeping the run in seconds.
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(move || {
        let ring = OwnedRing::new(2);
        let mut producer = ring.producer();
        let mut consumer = ring.consumer();
        // The notification object: a sticky counter, as on seL4.
        let notified = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let (n2, d2) = (notified.clone(), done.clone());
        let t = thread::spawn(move || {
            for i in 0..ITEMS {
                while producer
                    .enqueue(Desc {
                        offset: i,
                        len: 0,
                        meta: 0,
                    })
                    .is_err()
                {
                    thread::yield_now();
                }
                if producer.must_notify() {
                    n2.fetch_add(1, Ordering::SeqCst);
                }
            }
            d2.store(true, Ordering::SeqCst);
        });

        let mut got = 0;
        'run: loop {
            while let Some(desc) = consumer.dequeue().unwrap() {
                assert_eq!(desc.offset, got);
                got += 1;
            }
            let may_sleep = if broken {
                consumer.request_signal_without_recheck()
            } else {
                consumer.request_signal()
            };
            if !may_sleep {
                continue;
            }
            // Wait for a notification; once the producer is done and none
            // is pending, the consumer sleeps for ever.
            loop {
                if notified.swap(0, Ordering::SeqCst) > 0 {
                    continue 'run;
                }
                if done.load(Ordering::SeqCst) {
                    if notified.swap(0, Ordering::SeqCst) > 0 {
                        continue 'run;
                    }
                    break 'run;
                }
                thread::yield_now();
            }
        }
        t.join().unwrap();
        assert_eq!(
            got, ITEMS,
            "the consumer went to sleep with work in the ring"
        );
    });
}

#[test]
fn no_wake_up_is_lost() {
    model(false);
}

#[test]
#[should_panic(expected = "went to sleep with work in the ring")]
fn a_consumer_that_does_not_recheck_loses_wake_ups() {
    model(true);
}
