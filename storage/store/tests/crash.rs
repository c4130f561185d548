//! Crashes at every byte the store writes: every acknowledged change
//! survives, nothing unacknowledged corrupts anything, and the store keeps
//! working after the restart.
//!
//! The store runs once over a [`Recorder`], which logs every write. The
//! region as it was after any prefix of the written bytes is then rebuilt
//! (a crash there), a fresh store replays it, and its whole contents must be
//! the state after the last operation acknowledged before the crash, or
//! after the one in flight. Then the rest of the stream runs on the
//! recovered store (the in-flight operation retried, as clients do) and a
//! second restart must show exactly what that run acknowledged.

mod common;

use axolotl_store::journal::MIN_REGION_LEN;
use axolotl_store::{Change, Store};
use axolotl_store_api::Status;
use common::{garbage, image_at, state, Recorder, State, CLIENTS};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Put(usize, u8, Vec<u8>),
    Delete(usize, u8),
    /// Puts (`Some`) and deletes (`None`) of one client, all or nothing.
    Batch(usize, Vec<(u8, Option<Vec<u8>>)>),
}

/// Runs `op`, checks the status is one the store may give, and updates
/// `model` if it took effect.
fn apply<M: axolotl_store::Medium>(store: &mut Store<M>, model: &mut State, op: &Op) {
    match op {
        Op::Put(c, k, v) => match store.put(*c, &[*k], v) {
            Status::Ok => {
                model.insert((*c, vec![*k]), v.clone());
            }
            Status::JournalFull | Status::QuotaExceeded => {}
            other => panic!("{op:?}: {other:?}"),
        },
        Op::Delete(c, k) => match store.delete(*c, &[*k]) {
            Status::Ok => {
                assert!(model.remove(&(*c, vec![*k])).is_some(), "{op:?}");
            }
            Status::NotFound => assert!(!model.contains_key(&(*c, vec![*k])), "{op:?}"),
            other => panic!("{op:?}: {other:?}"),
        },
        Op::Batch(c, changes) => {
            let keys: Vec<[u8; 1]> = changes.iter().map(|(k, _)| [*k]).collect();
            let list: Vec<Change<'_>> = changes
                .iter()
                .zip(&keys)
                .map(|((_, v), k)| match v {
                    Some(v) => Change::Put(k, v),
                    None => Change::Delete(k),
                })
                .collect();
            match store.batch(*c, &list) {
                Status::Ok => {
                    for (k, v) in changes {
                        match v {
                            Some(v) => model.insert((*c, vec![*k]), v.clone()),
                            None => model.remove(&(*c, vec![*k])),
                        };
                    }
                }
                Status::JournalFull | Status::QuotaExceeded => {}
                other => panic!("{op:?}: {other:?}"),
            }
        }
    }
    assert_eq!(&state(store), model, "after {op:?}");
}

/// One recorded run: the region before it, every write, and after opening
/// and after each operation the bytes written so far and the state.
struct Run {
    initial: Vec<u8>,
    log: Vec<(usize, Vec<u8>)>,
    checkpoints: Vec<(usize, State)>,
    compactions: u64,
}

fn record(initial: Vec<u8>, ops: &[Op]) -> Run {
    let mut store = Store::new(Recorder::new(initial.clone()), &CLIENTS);
    let mut model = state(&store);
    let mut checkpoints = vec![(store.journal().medium().written(), model.clone())];
    for op in ops {
        apply(&mut store, &mut model, op);
        checkpoints.push((store.journal().medium().written(), model.clone()));
    }
    let compactions = store.journal().compactions();
    let log = store.into_medium().log;
    Run {
        initial,
        log,
        checkpoints,
        compactions,
    }
}

impl Run {
    fn total(&self) -> usize {
        self.log.iter().map(|(_, d)| d.len()).sum()
    }

    /// Crash after `cut` bytes; recover; check; go on with the rest of the
    /// stream if `then` is given.
    fn check(&self, cut: usize, ops: &[Op], go_on: bool) {
        let image = image_at(&self.initial, &self.log, cut);
        let mut store = Store::new(image, &CLIENTS);
        let got = state(&store);
        // The last checkpoint reached before the crash, and the next one.
        let done = self
            .checkpoints
            .partition_point(|(end, _)| *end <= cut)
            .saturating_sub(1);
        let before = &self.checkpoints[done].1;
        let after = self.checkpoints.get(done + 1).map(|(_, s)| s);
        assert!(
            got == *before || Some(&got) == after,
            "crash after {cut} of {} bytes (during op {done}): recovered {got:?}\n\
             acknowledged {before:?}\nor, with the op in flight, {after:?}",
            self.total()
        );
        if go_on {
            let mut model = got;
            // `done` counts the open as checkpoint 0: ops[done] was in flight.
            for op in ops.get(done..).unwrap_or(&[]) {
                apply(&mut store, &mut model, op);
            }
            let reopened = Store::new(store.into_medium(), &CLIENTS);
            assert_eq!(
                state(&reopened),
                model,
                "crash after {cut}: the run after recovery"
            );
        }
    }
}

/// Two clients, six keys each, overwrites of changing sizes (up to 60
/// bytes), deletes of present and absent keys.
fn fixed_stream() -> Vec<Op> {
    (0..120u32)
        .map(|i| {
            let client = 2 - (i as usize % 3).min(1);
            let key = (i * 7 % 6) as u8;
            if i % 5 == 4 {
                Op::Delete(client, key)
            } else {
                Op::Put(client, key, vec![i as u8; (i as usize * 13) % 61])
            }
        })
        .collect()
}

fn sweep(initial: Vec<u8>, ops: &[Op], min_compactions: u64) {
    let run = record(initial, ops);
    assert!(
        run.compactions >= min_compactions,
        "the stream must compact often ({} compactions)",
        run.compactions
    );
    for cut in 0..=run.total() {
        run.check(cut, ops, true);
    }
}

#[test]
fn a_crash_at_every_byte_of_a_fresh_journal() {
    // Halves of 512 bytes: the stream compacts many times.
    sweep(vec![0; 1088], &fixed_stream(), 5);
}

#[test]
fn a_crash_at_every_byte_of_a_used_journal() {
    // Both halves already hold records of earlier generations.
    let first = fixed_stream();
    let mut store = Store::new(vec![0; 1088], &CLIENTS);
    let mut model = State::new();
    for op in &first {
        apply(&mut store, &mut model, op);
    }
    let second: Vec<Op> = first
        .iter()
        .rev()
        .map(|op| match op {
            Op::Put(c, k, v) => Op::Put(3 - c, *k, v.iter().map(|b| b ^ 0x5a).collect()),
            Op::Delete(c, k) => Op::Delete(*c, *k),
            Op::Batch(c, ch) => Op::Batch(*c, ch.clone()),
        })
        .collect();
    sweep(store.into_medium(), &second, 5);
}

#[test]
fn a_crash_at_every_byte_of_formatting_garbage() {
    let ops = &fixed_stream()[..30];
    sweep(garbage(1088, 99), ops, 1);
}

#[test]
fn a_crash_at_every_byte_with_large_values_near_full() {
    // Three of the largest records per half, so puts are refused as well.
    let ops: Vec<Op> = (0..40u32)
        .map(|i| {
            let key = (i % 4) as u8;
            if i % 6 == 5 {
                Op::Delete(1, key)
            } else {
                Op::Put(1, key, vec![i as u8; 200 + (i as usize * 7) % 57])
            }
        })
        .collect();
    sweep(vec![0; MIN_REGION_LEN + 600], &ops, 3);
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let change = (0u8..6, proptest::option::of((any::<u8>(), 0usize..48)))
        .prop_map(|(k, v)| (k, v.map(|(b, n)| vec![b; n])));
    prop_oneof![
        3 => (1usize..3, 0u8..6, any::<u8>(), 0usize..48)
            .prop_map(|(c, k, b, n)| Op::Put(c, k, vec![b; n])),
        1 => (1usize..3, 0u8..6).prop_map(|(c, k)| Op::Delete(c, k)),
        1 => (1usize..3, proptest::collection::vec(change, 1..6))
            .prop_map(|(c, ch)| Op::Batch(c, ch)),
    ]
}

/// Batches among single puts and deletes: a crash inside a batch must leave
/// all of it or none of it (`check` allows only the states before and
/// after each operation), including batches that compact.
#[test]
fn a_crash_at_every_byte_of_batches() {
    let ops: Vec<Op> = (0..60u32)
        .map(|i| {
            let client = 1 + (i as usize % 2);
            match i % 4 {
                0 => Op::Put(client, (i % 6) as u8, vec![i as u8; (i as usize * 11) % 50]),
                1 => Op::Delete(client, ((i + 2) % 6) as u8),
                _ => Op::Batch(
                    client,
                    (0..(2 + i % 4))
                        .map(|j| {
                            let k = ((i + j) % 6) as u8;
                            let v = (j % 3 != 2)
                                .then(|| vec![(i + j) as u8; ((i * 7 + j * 5) % 45) as usize]);
                            (k, v)
                        })
                        .collect(),
                ),
            }
        })
        .collect();
    sweep(vec![0; 1088], &ops, 3);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Random streams on journals of a few sizes, crashed at every byte (or
    /// every few bytes, for long runs, from a random start).
    #[test]
    fn random_streams_crashed_anywhere(
        ops in proptest::collection::vec(op_strategy(), 1..50),
        len in prop_oneof![Just(MIN_REGION_LEN), Just(1088usize), Just(2048usize)],
        phase in 0usize..7,
    ) {
        let run = record(vec![0; len], &ops);
        let total = run.total();
        let stride = if total > 8000 { 7 } else { 1 };
        let mut cut = phase.min(total);
        while cut <= total {
            run.check(cut, &ops, cut % (stride * 5) < stride);
            cut += stride;
        }
        run.check(total, &ops, true);
    }
}
