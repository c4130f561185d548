use super::*;
use axolotl_ring::OwnedRing;
use proptest::prelude::*;

const BUF: usize = 256;
const N: usize = 8;

struct Pair {
    tx: Sender,
    rx: Receiver,
    active: &'static OwnedRing,
    free: &'static OwnedRing,
    pool: Vec<u8>,
}

fn pair() -> Pair {
    let active = OwnedRing::new(16);
    let free = OwnedRing::new(16);
    let tx = Sender::new(active.producer(), free.consumer(), BUF * N, BUF).unwrap();
    let rx = Receiver::new(active.consumer(), free.producer(), BUF * N, BUF).unwrap();
    Pair {
        tx,
        rx,
        active,
        free,
        pool: vec![0; BUF * N],
    }
}

#[test]
fn packets_arrive_whole_and_buffers_come_back() {
    let mut p = pair();
    let mut out = [0u8; BUF];
    for round in 0..5u8 {
        for i in 0..N as u8 {
            let pkt = vec![round ^ i; usize::from(i) * 10 + 1];
            p.tx.send(&mut p.pool, &pkt, u32::from(i)).unwrap();
        }
        assert_eq!(p.tx.send(&mut p.pool, b"x", 0), Err(SendError::Full));
        for i in 0..N as u8 {
            let (len, meta) = p.rx.recv(&p.pool, &mut out).unwrap().unwrap();
            assert_eq!((len, meta), (usize::from(i) * 10 + 1, u32::from(i)));
            assert!(out[..len].iter().all(|&b| b == round ^ i));
        }
        assert_eq!(p.rx.recv(&p.pool, &mut out).unwrap(), None);
        p.tx.reclaim().unwrap();
        assert_eq!(p.tx.free_buffers(), N);
    }
    assert_eq!(
        p.tx.send(&mut p.pool, &[0; BUF + 1], 0),
        Err(SendError::TooLong)
    );
}

#[test]
fn a_hostile_sender_cannot_make_the_receiver_read_outside_the_pool() {
    let mut p = pair();
    let mut out = [0u8; BUF];
    let mut evil = p.active.producer();
    for d in [
        Desc {
            offset: 3,
            len: 10,
            meta: 0,
        }, // not a buffer start
        Desc {
            offset: (BUF * N) as u64,
            len: 10,
            meta: 0,
        }, // past the pool
        Desc {
            offset: 0,
            len: BUF as u32 + 1,
            meta: 0,
        }, // longer than a buffer
        Desc {
            offset: u64::MAX - 5,
            len: 100,
            meta: 0,
        }, // wraps
        Desc {
            offset: BUF as u64,
            len: 20,
            meta: 9,
        }, // fine
    ] {
        evil.enqueue(d).unwrap();
    }
    p.pool[BUF..BUF + 20].copy_from_slice(&[7; 20]);
    assert_eq!(p.rx.recv(&p.pool, &mut out).unwrap(), Some((20, 9)));
    assert_eq!(p.rx.bad_descriptors(), 4);
}

#[test]
fn a_hostile_receiver_cannot_free_buffers_still_in_flight() {
    let mut p = pair();
    p.tx.send(&mut p.pool, b"one", 0).unwrap();
    let mut evil = p.free.producer();
    // Returns a buffer that was never sent, one twice, and garbage.
    for d in [
        Desc {
            offset: BUF as u64,
            len: 0,
            meta: 0,
        },
        Desc {
            offset: 0,
            len: 0,
            meta: 0,
        },
        Desc {
            offset: 0,
            len: 0,
            meta: 0,
        },
        Desc {
            offset: 17,
            len: 0,
            meta: 0,
        },
        Desc {
            offset: u64::MAX,
            len: 0,
            meta: 0,
        },
    ] {
        evil.enqueue(d).unwrap();
    }
    p.tx.reclaim().unwrap();
    assert_eq!(p.tx.bad_returns(), 4);
    assert_eq!(p.tx.free_buffers(), N);
    // Buffer 0 is free again only once: the next send uses it, and the
    // one after must not.
    p.tx.send(&mut p.pool, b"two", 0).unwrap();
    p.tx.send(&mut p.pool, b"three", 0).unwrap();
    assert_eq!(p.tx.free_buffers(), N - 2);
}

#[test]
fn bad_geometry_is_refused() {
    let a = OwnedRing::new(4);
    let f = OwnedRing::new(4);
    assert!(Sender::new(a.producer(), f.consumer(), 100, 0).is_err());
    assert!(Sender::new(a.producer(), f.consumer(), 100, 200).is_err());
    assert!(Receiver::new(a.consumer(), f.producer(), 4096 * 1024, 2).is_err());
}

proptest! {
    #[test]
    fn random_descriptors_never_panic(ds in proptest::collection::vec((any::<u64>(), any::<u32>(), any::<u32>()), 0..15)) {
        let mut p = pair();
        let mut evil = p.active.producer();
        for (offset, len, meta) in ds {
            let _ = evil.enqueue(Desc { offset, len, meta });
        }
        let mut out = [0u8; BUF];
        while let Ok(Some((len, _))) = p.rx.recv(&p.pool, &mut out) {
            prop_assert!(len <= BUF);
        }
    }
}
