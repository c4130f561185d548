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
            let (len, meta) = p.rx.recv(&p.pool[..], &mut out).unwrap().unwrap();
            assert_eq!((len, meta), (usize::from(i) * 10 + 1, u32::from(i)));
            assert!(out[..len].iter().all(|&b| b == round ^ i));
        }
        assert_eq!(p.rx.recv(&p.pool[..], &mut out).unwrap(), None);
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
    assert_eq!(p.rx.recv(&p.pool[..], &mut out).unwrap(), Some((20, 9)));
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
        while let Ok(Some((len, _))) = p.rx.recv(&p.pool[..], &mut out) {
            prop_assert!(len <= BUF);
        }
    }
}

/// A packet whose every byte says who sent it: (incarnation, number).
fn stamped(inc: u8, n: u16, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| inc ^ (n as u8) ^ (n >> 8) as u8 ^ (i as u8).wrapping_mul(7))
        .collect()
}

fn stamp_ok(p: &[u8], meta: u32) -> bool {
    let (inc, n) = ((meta >> 16) as u8, meta as u16);
    p == &stamped(inc, n, p.len())[..]
}

/// A sender restarted with packets still on the active ring and buffers
/// given back but not reclaimed: it takes the first as out and the second
/// back, so it never writes into a buffer whose old descriptor the
/// receiver has still to read.
#[test]
fn a_restarted_sender_never_writes_into_a_buffer_still_in_flight() {
    let mut p = pair();
    let mut out = [0u8; BUF];
    for n in 0..N as u16 {
        p.tx.send(&mut p.pool, &stamped(1, n, 100), 1 << 16 | u32::from(n))
            .unwrap();
    }
    for _ in 0..3 {
        let (len, meta) = p.rx.recv(&p.pool[..], &mut out).unwrap().unwrap();
        assert!(stamp_ok(&out[..len], meta));
    }
    // The sender restarts: fresh memory, the same rings and pool.
    p.tx = Sender::new(p.active.producer(), p.free.consumer(), BUF * N, BUF).unwrap();
    assert_eq!(
        p.tx.free_buffers(),
        3,
        "the 5 still on the active ring are out"
    );
    for n in 0..3u16 {
        p.tx.send(&mut p.pool, &stamped(2, n, 60), 2 << 16 | u32::from(n))
            .unwrap();
    }
    assert_eq!(p.tx.send(&mut p.pool, b"x", 0), Err(SendError::Full));
    // The old five come whole, then the new three.
    let mut got = Vec::new();
    while let Some((len, meta)) = p.rx.recv(&p.pool[..], &mut out).unwrap() {
        assert!(stamp_ok(&out[..len], meta), "packet {meta:#x} changed");
        got.push(meta);
    }
    assert_eq!(got.len(), 8);
    assert_eq!(
        got[..5],
        [
            1 << 16 | 3,
            1 << 16 | 4,
            1 << 16 | 5,
            1 << 16 | 6,
            1 << 16 | 7
        ]
    );
    p.tx.reclaim().unwrap();
    assert_eq!(p.tx.free_buffers(), N, "a buffer leaked");
}

/// A receiver that died after giving a buffer back and before consuming
/// its descriptor: its next life drops that descriptor (the sender may
/// have written another packet into the buffer) and reads on from there.
#[test]
fn a_restarted_receiver_drops_a_descriptor_its_earlier_life_gave_back() {
    let mut p = pair();
    for n in 0..3u16 {
        p.tx.send(&mut p.pool, &stamped(1, n, 50), 1 << 16 | u32::from(n))
            .unwrap();
    }
    // The earlier life: gives the head's buffer back by hand, then dies.
    let mut active = p.active.consumer();
    let head = active.peek(0).unwrap().unwrap();
    let mut free = p.free.producer();
    free.enqueue(Desc {
        offset: head.offset,
        len: 0,
        meta: active.position(),
    })
    .unwrap();
    let _ = (active, free);
    // The sender reuses it at once.
    p.tx.send(&mut p.pool, &stamped(1, 9, 50), 1 << 16 | 9)
        .unwrap();
    let mut rx = Receiver::new(p.active.consumer(), p.free.producer(), BUF * N, BUF).unwrap();
    assert_eq!(rx.dropped_at_attach(), 1);
    let mut out = [0u8; BUF];
    let mut got = Vec::new();
    while let Some((len, meta)) = rx.recv(&p.pool[..], &mut out).unwrap() {
        assert!(stamp_ok(&out[..len], meta), "packet {meta:#x} changed");
        got.push(meta & 0xffff);
    }
    assert_eq!(got, [1, 2, 9]);
    p.tx.reclaim().unwrap();
    assert_eq!(p.tx.free_buffers(), N);
}

proptest! {
    /// Sends, receives and restarts of either end in any order (a receiver
    /// dying in the middle of a packet among them), hundreds of restarts
    /// a run: no packet arrives changed, and once all
    /// is read the sender has every buffer back.
    #[test]
    fn restarts_of_either_end_leave_no_wrong_byte_and_no_lost_buffer(
        ops in proptest::collection::vec(0u8..11, 2000..3000),
    ) {
        let mut p = pair();
        let mut out = [0u8; BUF];
        let (mut inc, mut n) = (1u8, 0u16);
        let mut restarts = 0;
        for op in ops {
            match op {
                0..=3 => {
                    n = n.wrapping_add(1);
                    let len = 1 + usize::from(n) % BUF;
                    let _ = p.tx.send(&mut p.pool, &stamped(inc, n, len), u32::from(inc) << 16 | u32::from(n));
                }
                4..=7 => {
                    if let Some((len, meta)) = p.rx.recv(&p.pool[..], &mut out).unwrap() {
                        prop_assert!(stamp_ok(&out[..len], meta), "packet {:#x} changed", meta);
                    }
                }
                8 => {
                    inc = inc.wrapping_add(1);
                    restarts += 1;
                    p.tx = Sender::new(p.active.producer(), p.free.consumer(), BUF * N, BUF).unwrap();
                }
                9 => {
                    restarts += 1;
                    p.rx = Receiver::new(p.active.consumer(), p.free.producer(), BUF * N, BUF).unwrap();
                }
                _ => {
                    // The receiver dies between giving a buffer back and
                    // consuming its descriptor.
                    restarts += 1;
                    let mut active = p.active.consumer();
                    if let Some(head) = active.peek(0).unwrap() {
                        let mut free = p.free.producer();
                        let back = Desc { offset: head.offset, len: 0, meta: active.position() };
                        let _ = free.enqueue(back);
                    }
                    p.rx = Receiver::new(p.active.consumer(), p.free.producer(), BUF * N, BUF).unwrap();
                }
            }
        }
        prop_assert!(restarts > 100);
        while let Some((len, meta)) = p.rx.recv(&p.pool[..], &mut out).unwrap() {
            prop_assert!(stamp_ok(&out[..len], meta));
        }
        p.tx.reclaim().unwrap();
        prop_assert_eq!(p.tx.free_buffers(), N, "buffers leaked");
    }
}

/// With as many ring slots as buffers, a buffer given back before its
/// descriptor left the active ring is free, but no slot is: the sender
/// must not count it as room to send (TCP trusted that count and lost an
/// event on QEMU when a send then failed).
#[test]
fn a_free_buffer_without_a_free_slot_is_no_room() {
    let active = OwnedRing::new(8);
    let free = OwnedRing::new(8);
    let mut tx = Sender::new(active.producer(), free.consumer(), BUF * 8, BUF).unwrap();
    let mut pool = vec![0u8; BUF * 8];
    for n in 0..8u32 {
        tx.send(&mut pool, b"packet", n).unwrap();
    }
    assert_eq!(tx.free_buffers(), 0);
    // The receiver gives the first buffer back and has not yet consumed
    // its descriptor.
    let mut rx_active = active.consumer();
    let head = rx_active.peek(0).unwrap().unwrap();
    let mut rx_free = free.producer();
    rx_free
        .enqueue(Desc {
            offset: head.offset,
            len: 0,
            meta: rx_active.position(),
        })
        .unwrap();
    tx.reclaim().unwrap();
    assert_eq!(tx.free_buffers(), 0, "a free buffer but no slot");
    assert_eq!(tx.send(&mut pool, b"x", 9), Err(SendError::Full));
    rx_active.release(1).unwrap();
    assert_eq!(tx.free_buffers(), 1);
    tx.send(&mut pool, b"x", 9).unwrap();
}

#[test]
fn a_return_must_name_where_its_buffer_was_sent_and_be_reached() {
    let mut p = pair();
    for pkt in [b"zero", b"one!", b"two!"] {
        p.tx.send(&mut p.pool, pkt, 0).unwrap();
    }
    let mut evil = p.free.producer();
    // Buffer 1 went out at place 1, buffer 2 at place 2; the receiver has
    // read none of them (its head is 0).
    for (offset, meta) in [(BUF, 0), (BUF, 7), (2 * BUF, 2), (BUF, 1)] {
        let d = Desc {
            offset: offset as u64,
            len: 0,
            meta,
        };
        evil.enqueue(d).unwrap();
    }
    p.tx.reclaim().unwrap();
    assert_eq!(p.tx.bad_returns(), 4);
    assert_eq!(p.tx.free_buffers(), N - 3);
    // The honest receiver reads all three, whole, and gives each back.
    let mut out = [0u8; BUF];
    let mut rx = Receiver::new(p.active.consumer(), p.free.producer(), BUF * N, BUF).unwrap();
    for want in [&b"zero"[..], b"one!", b"two!"] {
        let (len, _) = rx.recv(&p.pool[..], &mut out).unwrap().unwrap();
        assert_eq!(&out[..len], want);
    }
    p.tx.reclaim().unwrap();
    assert_eq!(p.tx.free_buffers(), N);
}

#[test]
fn buffers_whose_returns_were_garbled_are_counted_free_again() {
    let mut p = pair();
    let mut out = [0u8; BUF];
    for round in 0..3u64 {
        for _ in 0..N {
            p.tx.send(&mut p.pool, b"packet", 0).unwrap();
        }
        for _ in 0..N {
            assert!(p.rx.recv(&p.pool[..], &mut out).unwrap().is_some());
        }
        // Garbage over every return before the sender looks at them.
        for slot in 0..16 {
            let d = Desc {
                offset: 17 + round + slot as u64,
                len: 0,
                meta: 0xdead,
            };
            p.free.poke_slot(slot, d);
        }
        p.tx.reclaim().unwrap();
        assert!(p.tx.bad_returns() >= N as u64);
        // Each buffer is on neither ring: the sender counts again rather
        // than stay full for ever.
        p.tx.send(&mut p.pool, b"again", 0).unwrap();
        assert_eq!(p.rx.recv(&p.pool[..], &mut out).unwrap(), Some((5, 0)));
        assert_eq!(p.tx.unreturned(), 0);
    }
}

#[test]
fn a_garbled_return_on_a_link_that_never_fills_is_counted_back_when_asked() {
    let mut p = pair();
    let mut out = [0u8; BUF];
    for round in 0..5u64 {
        // Two packets out of eight: the link is never starved.
        for _ in 0..2 {
            p.tx.send(&mut p.pool, b"packet", 0).unwrap();
        }
        for _ in 0..2 {
            assert!(p.rx.recv(&p.pool[..], &mut out).unwrap().is_some());
        }
        // Garbage over the two returns before the sender looks at them.
        let slot = (2 * round) as usize % 16;
        for s in [slot, slot + 1] {
            let d = Desc {
                offset: 3 + round,
                len: 0,
                meta: 0xbeef,
            };
            p.free.poke_slot(s, d);
        }
        p.tx.reclaim().unwrap();
        assert!(p.tx.bad_returns() >= 2 * (round + 1));
        // Both buffers are on neither ring: the count sees them back, and
        // the sender may use them again.
        assert_eq!(p.tx.unreturned(), 0, "round {round}");
        assert_eq!(p.tx.free_buffers(), N, "round {round}");
    }
}

#[test]
fn counting_back_when_asked_keeps_a_buffer_whose_packet_is_unread() {
    let mut p = pair();
    let mut out = [0u8; BUF];
    p.tx.send(&mut p.pool, b"read", 0).unwrap();
    p.tx.send(&mut p.pool, b"unread", 0).unwrap();
    assert!(p.rx.recv(&p.pool[..], &mut out).unwrap().is_some());
    // A garbled return makes the sender suspect; its count from the rings
    // must still see the unread packet's buffer as out.
    p.free.poke_slot(
        0,
        Desc {
            offset: 5,
            len: 0,
            meta: 0xbeef,
        },
    );
    p.tx.reclaim().unwrap();
    assert_eq!(p.tx.unreturned(), 1);
    for _ in 0..N - 1 {
        p.tx.send(&mut p.pool, b"other", 0).unwrap();
    }
    let (len, _) = p.rx.recv(&p.pool[..], &mut out).unwrap().unwrap();
    assert_eq!(&out[..len], b"unread");
}

#[test]
fn a_broken_free_ring_does_not_stop_the_sending_and_both_rings_heal() {
    // The receiver's garbage took its free ring's tail back: the sender
    // still sends from the buffers it holds, the receiver takes the
    // packets, and giving their buffers back puts the free ring right.
    let mut p = pair();
    let mut out = [0u8; BUF];
    for i in 0..3u32 {
        p.tx.send(&mut p.pool, b"before", i).unwrap();
        p.rx.recv(&p.pool[..], &mut out).unwrap().unwrap();
    }
    p.tx.reclaim().unwrap();
    p.free.poke(axolotl_ring::Field::Tail, 1);
    assert!(p.tx.reclaim().is_err());
    p.tx.send(&mut p.pool, b"after", 9).unwrap();
    assert_eq!(p.rx.recv(&p.pool[..], &mut out).unwrap(), Some((5, 9)));
    assert_eq!(&out[..5], b"after");
    p.tx.reclaim().unwrap();
    assert_eq!(p.tx.free_buffers(), N);
}

#[test]
fn a_consumer_more_than_a_ring_ahead_of_the_sender_is_caught_up_with() {
    // Garbage published twice from the sender's stale tail, and taken
    // each time: the receiver's head is more than a ring ahead of the
    // sender's own tail. The next send goes on from the receiver's head.
    let mut p = pair();
    let mut out = [0u8; BUF];
    let mut evil = p.active.producer();
    for _ in 0..2 {
        for _ in 0..16 {
            evil.enqueue(Desc {
                offset: 1,
                len: 1,
                meta: 0,
            })
            .unwrap();
        }
        while p.rx.recv(&p.pool[..], &mut out).unwrap().is_some() {}
    }
    assert!(p.rx.bad_descriptors() >= 32);
    for i in 0..3u32 {
        p.tx.send(&mut p.pool, b"on", i).unwrap();
        assert_eq!(p.rx.recv(&p.pool[..], &mut out).unwrap(), Some((2, i)));
    }
}

/// Slots of each ring, and buffers of the pool, of the link garbage is
/// scribbled over: as many buffers as slots, as system.xml's links have,
/// so that the ring can fill.
const SCRIBBLED: usize = 16;

/// What `axolotl inject garbage` does to one end of a link, as the swifi
/// crate does it in a PD: the sender scribbles over its active ring and its
/// pool, the receiver over its free ring.
#[allow(unsafe_code)]
fn scribble(ring: &OwnedRing, pool: Option<&mut [u8]>, rng: &mut axolotl_swifi::Rng) {
    let t = axolotl_swifi::Target {
        ring: ring.base() as usize,
        slots: SCRIBBLED as u32,
        buf_size: if pool.is_some() { BUF as u32 } else { 0 },
        pool: pool.map_or(0, |p| p.as_mut_ptr() as usize),
    };
    // SAFETY: a live ring of SCRIBBLED slots and, if given, a pool of
    // SCRIBBLED buffers of BUF bytes, both owned by the test; the PD's own ends are not in
    // the middle of a send (FILLING is 0).
    let _ = unsafe { axolotl_swifi::scribble(&t, 0, rng) };
}

/// Real packets carry this in their meta's top byte.
const REAL: u32 = 0xa5 << 24;

/// A real packet's bytes, all drawn from its meta: a packet with another's
/// bytes, or garbage, is told from it (a packet of `stamped` is not: it
/// has only 16 bits of stamp, and garbage meets them).
fn real_packet(meta: u32, len: usize) -> Vec<u8> {
    let mut rng = axolotl_swifi::Rng::new(u64::from(meta));
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

proptest! {
    /// Sends and receives in any order, with garbage from either end
    /// between them: every packet the sender queued arrives once, whole
    /// and in order, among the garbage (which is counted and dropped), and
    /// once all is read the sender has every buffer back. (A buffer freed
    /// while its packet was unread shows as a packet with another's bytes;
    /// a real descriptor written over a published garbage one, as a packet
    /// missing.)
    #[test]
    fn garbage_from_either_end_loses_and_changes_no_real_packet(
        seed: u64,
        ops in proptest::collection::vec(0u8..22, 200..1500),
    ) {
        let active = OwnedRing::new(SCRIBBLED as u32);
        let free = OwnedRing::new(SCRIBBLED as u32);
        let mut tx = Sender::new(active.producer(), free.consumer(), BUF * SCRIBBLED, BUF).unwrap();
        let mut rx = Receiver::new(active.consumer(), free.producer(), BUF * SCRIBBLED, BUF).unwrap();
        let mut pool = vec![0u8; BUF * SCRIBBLED];
        let mut rng = axolotl_swifi::Rng::new(seed);
        let mut out = [0u8; BUF];
        let (mut sent, mut got) = (Vec::new(), Vec::new());
        let mut n = 0u32;
        let mut take = |rx: &mut Receiver, pool: &[u8], got: &mut Vec<u32>| -> bool {
            match rx.recv(pool, &mut out) {
                Ok(Some((len, meta))) => {
                    if meta >> 24 == REAL >> 24 && len > 0 && out[..len] == real_packet(meta, len)[..] {
                        got.push(meta);
                    }
                    true
                }
                _ => false,
            }
        };
        for op in ops {
            match op {
                0..=7 => {
                    n = (n + 1) & 0xff_ffff;
                    let meta = REAL | n;
                    let len = 1 + n as usize % BUF;
                    let packet = real_packet(meta, len);
                    if tx.send(&mut pool, &packet, meta).is_ok() {
                        sent.push(meta);
                    }
                }
                8..=16 => { take(&mut rx, &pool, &mut got); }
                17 => { let _ = tx.free_buffers(); }
                18 => scribble(active, Some(&mut pool), &mut rng),
                19 | 20 => scribble(free, None, &mut rng),
                _ => { let _ = tx.unreturned(); }
            }
        }
        let mut idle = 0;
        while idle < 3 {
            if !take(&mut rx, &pool, &mut got) {
                idle += 1;
            }
        }
        let first = got.iter().zip(&sent).position(|(a, b)| a != b).unwrap_or(got.len().min(sent.len()));
        prop_assert!(
            got == sent,
            "real packets lost, changed or reordered: from #{first}, got {:x?}, sent {:x?}",
            &got[first..(first + 4).min(got.len())],
            &sent[first..(first + 4).min(sent.len())]
        );
        prop_assert_eq!(tx.unreturned(), 0, "buffers leaked");
    }
}
