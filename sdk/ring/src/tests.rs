use super::*;
use proptest::prelude::*;

fn d(n: u64) -> Desc {
    Desc {
        offset: n,
        len: n as u32,
        meta: 7,
    }
}

#[test]
fn fills_drains_and_refuses_when_full() {
    let ring = OwnedRing::new(4);
    let (mut p, mut c) = (ring.producer(), ring.consumer());
    for i in 0..4 {
        p.enqueue(d(i)).unwrap();
    }
    assert_eq!(p.enqueue(d(9)), Err(EnqueueError::Full));
    assert_eq!(c.dequeue().unwrap(), Some(d(0)));
    p.enqueue(d(4)).unwrap();
    let got: Vec<u64> = std::iter::from_fn(|| c.dequeue().unwrap())
        .map(|x| x.offset)
        .collect();
    assert_eq!(got, vec![1, 2, 3, 4]);
    assert_eq!(c.dequeue().unwrap(), None);
}

#[test]
fn indices_wrap_around_u32() {
    let ring = OwnedRing::new(8);
    ring.poke(owned::Field::Tail, u32::MAX - 3);
    ring.poke(owned::Field::Head, u32::MAX - 3);
    let (mut p, mut c) = (ring.producer(), ring.consumer());
    for round in 0..5u64 {
        for i in 0..6 {
            p.enqueue(d(round * 10 + i)).unwrap();
        }
        for i in 0..6 {
            assert_eq!(c.dequeue().unwrap(), Some(d(round * 10 + i)));
        }
    }
    assert_eq!(p.misbehavior_count() + c.misbehavior_count(), 0);
}

#[test]
fn peek_then_release_consumes_only_when_told() {
    let ring = OwnedRing::new(4);
    let (mut p, mut c) = (ring.producer(), ring.consumer());
    for i in 0..3 {
        p.enqueue(d(i)).unwrap();
    }
    assert_eq!(c.peek(0).unwrap(), Some(d(0)));
    assert_eq!(c.peek(2).unwrap(), Some(d(2)));
    assert_eq!(c.peek(3).unwrap(), None);
    // A consumer that "crashes" before releasing sees them again.
    let mut c2 = ring.consumer();
    assert_eq!(c2.peek(0).unwrap(), Some(d(0)));
    c2.release(2).unwrap();
    assert_eq!(c2.dequeue().unwrap(), Some(d(2)));
    assert_eq!(c2.dequeue().unwrap(), None);
}

#[test]
fn reattach_continues_and_peers_see_the_restart() {
    let ring = OwnedRing::new(8);
    let (mut p, mut c) = (ring.producer(), ring.consumer());
    assert!(!c.peer_restarted());
    for i in 0..3 {
        p.enqueue(d(i)).unwrap();
    }
    assert_eq!(c.dequeue().unwrap(), Some(d(0)));
    // The producer restarts: fresh memory, same ring.
    let first_epoch = p.epoch();
    let mut p = ring.producer();
    assert_ne!(p.epoch(), first_epoch);
    assert!(c.peer_restarted());
    assert!(!c.peer_restarted(), "reported once");
    p.enqueue(d(3)).unwrap();
    let got: Vec<u64> = std::iter::from_fn(|| c.dequeue().unwrap())
        .map(|x| x.offset)
        .collect();
    assert_eq!(got, vec![1, 2, 3]);
    // The consumer restarts.
    let _c = ring.consumer();
    assert!(p.peer_restarted());
}

#[test]
fn signalling_requests_cancels_and_rechecks() {
    let ring = OwnedRing::new(8);
    let (mut p, mut c) = (ring.producer(), ring.consumer());
    // Fresh memory means "signal requested".
    p.enqueue(d(1)).unwrap();
    assert!(p.must_notify());
    p.enqueue(d(2)).unwrap();
    assert!(!p.must_notify(), "already notified once");
    // The consumer has work: a request is cancelled on the re-check.
    assert!(!c.request_signal());
    while c.dequeue().unwrap().is_some() {}
    assert!(c.request_signal());
    p.enqueue(d(3)).unwrap();
    assert!(p.must_notify());
}

#[test]
fn impossible_indices_are_refused_and_counted() {
    let ring = OwnedRing::new(4);
    let (mut p, mut c) = (ring.producer(), ring.consumer());
    ring.poke(owned::Field::Tail, 100);
    assert_eq!(c.dequeue(), Err(PeerMisbehavior::ImpossibleTail(100)));
    assert_eq!(c.misbehavior_count(), 1);
    for i in 0..4 {
        p.enqueue(d(i)).unwrap();
    }
    ring.poke(owned::Field::Head, 1000);
    assert_eq!(
        p.enqueue(d(5)),
        Err(EnqueueError::Peer(PeerMisbehavior::ImpossibleHead(1000)))
    );
    assert_eq!(p.misbehavior_count(), 1);
}

#[test]
fn check_within_never_overflows() {
    let desc = Desc {
        offset: u64::MAX,
        len: 10,
        meta: 0,
    };
    assert_eq!(desc.check_within(usize::MAX), Err(BadDescriptor));
    let desc = Desc {
        offset: 4090,
        len: 6,
        meta: 0,
    };
    assert_eq!(desc.check_within(4096), Ok(4090..4096));
    assert_eq!(desc.check_within(4095), Err(BadDescriptor));
}

#[test]
fn attach_checks_the_region() {
    let mut mem = vec![0u64; region_bytes(8) / 8];
    let base = mem.as_mut_ptr() as *mut u8;
    let len = region_bytes(8);
    // SAFETY: `mem` outlives every end made here.
    unsafe {
        assert!(matches!(
            Producer::attach(base, len, 3),
            Err(AttachError::BadSlots)
        ));
        assert!(matches!(
            Producer::attach(base, len, 16),
            Err(AttachError::TooSmall)
        ));
        assert!(matches!(
            Producer::attach(base.add(4), len - 4, 2),
            Err(AttachError::Misaligned)
        ));
        assert!(matches!(
            Consumer::attach(base, len, 1),
            Err(AttachError::BadSlots)
        ));
        let mut p = Producer::attach(base, len, 8).unwrap();
        let mut c = Consumer::attach(base, len, 8).unwrap();
        p.enqueue(d(42)).unwrap();
        assert_eq!(c.dequeue().unwrap(), Some(d(42)));
    }
    // The header layout is the documented one.
    assert_eq!(
        u32::from_le_bytes((mem[0] as u32).to_le_bytes()),
        1,
        "tail at offset 0"
    );
    assert_eq!((mem[0] >> 32) as u32, 1, "head at offset 4");
    assert_eq!((mem[1] >> 32) as u32, 1, "producer epoch at offset 12");
    assert_eq!(mem[2] as u32, 1, "consumer epoch at offset 16");
    assert_eq!(mem[8], 42, "first descriptor at offset 64");
}

#[test]
fn threads_pass_many_items_in_order() {
    let ring = OwnedRing::new(64);
    let (mut p, mut c) = (ring.producer(), ring.consumer());
    const N: u64 = 200_000;
    let t = std::thread::spawn(move || {
        let mut i = 0;
        while i < N {
            match p.enqueue(d(i)) {
                Ok(()) => i += 1,
                Err(EnqueueError::Full) => std::hint::spin_loop(),
                Err(e) => panic!("{e:?}"),
            }
        }
    });
    let mut next = 0;
    while next < N {
        if let Some(x) = c.dequeue().unwrap() {
            assert_eq!(x, d(next));
            next += 1;
        }
    }
    t.join().unwrap();
}

#[derive(Clone, Debug)]
enum Op {
    Enqueue(u64),
    Dequeue,
    Peek(u32),
    Release(u32),
    Request,
    Notify,
    PokeTail(u32),
    PokeHead(u32),
    PokeSignal(u32),
    PokeEpoch(u32),
    PokeSlot(usize, u64, u32),
    ReattachProducer,
    ReattachConsumer,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        any::<u64>().prop_map(Op::Enqueue),
        Just(Op::Dequeue),
        any::<u32>().prop_map(Op::Peek),
        any::<u32>().prop_map(Op::Release),
        Just(Op::Request),
        Just(Op::Notify),
        any::<u32>().prop_map(Op::PokeTail),
        any::<u32>().prop_map(Op::PokeHead),
        any::<u32>().prop_map(Op::PokeSignal),
        any::<u32>().prop_map(Op::PokeEpoch),
        (0usize..8, any::<u64>(), any::<u32>()).prop_map(|(i, o, l)| Op::PokeSlot(i, o, l)),
        Just(Op::ReattachProducer),
        Just(Op::ReattachConsumer),
    ]
}

proptest! {
    /// A peer writing anything at any time: no panic, no read outside the
    /// ring, and every impossible index refused.
    #[test]
    fn hostile_peer_cannot_break_either_end(ops in proptest::collection::vec(op(), 1..200)) {
        let ring = OwnedRing::new(8);
        let (mut p, mut c) = (ring.producer(), ring.consumer());
        for op in ops {
            match op {
                Op::Enqueue(v) => { let _ = p.enqueue(d(v)); }
                Op::Dequeue => { let _ = c.dequeue(); }
                Op::Peek(i) => { let _ = c.peek(i); }
                Op::Release(n) => { let _ = c.release(n); }
                Op::Request => { let _ = c.request_signal(); }
                Op::Notify => { let _ = p.must_notify(); }
                Op::PokeTail(v) => ring.poke(owned::Field::Tail, v),
                Op::PokeHead(v) => ring.poke(owned::Field::Head, v),
                Op::PokeSignal(v) => ring.poke(owned::Field::ConsumerSignalled, v),
                Op::PokeEpoch(v) => ring.poke(owned::Field::ProducerEpoch, v),
                Op::PokeSlot(i, o, l) => ring.poke_slot(i, Desc { offset: o, len: l, meta: 0 }),
                Op::ReattachProducer => p = ring.producer(),
                Op::ReattachConsumer => c = ring.consumer(),
            }
            // Whatever the peer did, each end's own view stays possible.
            prop_assert!(p.len() <= 8, "producer len {}", p.len());
            prop_assert!(c.len() <= 8, "consumer len {}", c.len());
        }
    }

    /// With an honest peer, every enqueued descriptor comes out once, in order.
    #[test]
    fn honest_peers_lose_nothing(ops in proptest::collection::vec(any::<bool>(), 1..500)) {
        let ring = OwnedRing::new(4);
        let (mut p, mut c) = (ring.producer(), ring.consumer());
        let (mut sent, mut got) = (0u64, 0u64);
        for enqueue in ops {
            if enqueue {
                if p.enqueue(d(sent)).is_ok() { sent += 1; }
            } else if let Some(x) = c.dequeue().unwrap() {
                prop_assert_eq!(x, d(got));
                got += 1;
            }
        }
        while let Some(x) = c.dequeue().unwrap() {
            prop_assert_eq!(x, d(got));
            got += 1;
        }
        prop_assert_eq!(sent, got);
    }
}
