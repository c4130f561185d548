use super::*;
use axolotl_ring::{Consumer, Desc, Producer};
use axolotl_sdk::config::Region;

#[test]
fn the_same_seed_gives_the_same_numbers() {
    let (mut a, mut b) = (Rng::new(7), Rng::new(7));
    let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
    assert_eq!(xs, (0..8).map(|_| b.next_u64()).collect::<Vec<_>>());
    assert_ne!(
        xs,
        (0..8).map(|_| Rng::new(8).next_u64()).collect::<Vec<_>>()
    );
    assert!((0..1000).all(|_| a.below(10) < 10));
}

#[test]
fn flip_flips_the_bits_asked_for_inside_the_areas_only() {
    for seed in 0..50 {
        let mut mem = vec![0u8; 3 * 4096];
        let base = mem.as_mut_ptr() as usize;
        // Two areas, with an untouched page between them.
        let areas = [(base, base + 4096), (base + 8192, base + 3 * 4096)];
        // SAFETY: both areas are inside `mem`, which nothing else uses.
        assert_eq!(unsafe { flip(&areas, 9, &mut Rng::new(seed)) }, 9);
        let flipped: u32 = mem.iter().map(|b| b.count_ones()).sum();
        // Two picks of one bit cancel out: fewer, by an even number.
        assert!(
            (1..=9).contains(&flipped) && (9 - flipped).is_multiple_of(2),
            "{flipped}"
        );
        assert!(mem[4096..8192].iter().all(|&b| b == 0), "outside the areas");
    }
}

#[test]
fn flip_caps_the_bits_and_does_nothing_without_memory() {
    let mut mem = vec![0u8; 4096];
    let base = mem.as_mut_ptr() as usize;
    // SAFETY: the area is `mem`.
    let flipped = unsafe { flip(&[(base, base + 4096)], 1000, &mut Rng::new(1)) };
    assert_eq!(flipped, MAX_BITS);
    // SAFETY: no area, nothing written.
    assert_eq!(unsafe { flip(&[], 3, &mut Rng::new(1)) }, 0);
}

/// A link's active ring and pool in ordinary memory.
#[repr(C, align(64))]
struct Link([u8; 64 + 16 * 8 + 8 * 64]);

/// Bytes of [`Link`]'s ring: the pool follows.
const RING_LEN: usize = 64 + 16 * 8;

impl Link {
    fn new() -> Box<Link> {
        Box::new(Link([0; 64 + 16 * 8 + 8 * 64]))
    }

    /// The ring of 8 slots and the pool of 8 buffers of 64 bytes.
    fn target(&mut self) -> Target {
        let base = self.0.as_mut_ptr() as usize;
        Target {
            ring: base,
            slots: 8,
            buf_size: 64,
            pool: base + RING_LEN,
        }
    }

    fn buffer(&mut self, b: usize) -> &mut [u8] {
        &mut self.0[RING_LEN + b * 64..][..64]
    }
}

#[test]
fn garbage_spares_what_is_in_flight_and_publishes_some() {
    let mut mem = Link::new();
    let t = mem.target();
    let base = mem.0.as_mut_ptr();
    // SAFETY: `mem` outlives both ends; one producer, one consumer.
    let (mut tx, mut rx) = unsafe {
        (
            Producer::attach(base, RING_LEN, 8).unwrap(),
            Consumer::attach(base, RING_LEN, 8).unwrap(),
        )
    };
    // Two packets in flight, in buffers 3 and 5, after three consumed.
    for i in 0..3 {
        let d = Desc {
            offset: i * 64,
            len: 1,
            meta: 0,
        };
        tx.enqueue(d).unwrap();
        rx.dequeue().unwrap();
    }
    for b in [3u64, 5] {
        mem.buffer(b as usize).fill(b as u8);
        tx.enqueue(Desc {
            offset: b * 64,
            len: 64,
            meta: 9,
        })
        .unwrap();
    }
    for seed in 0..20 {
        let mut rng = Rng::new(seed);
        // SAFETY: `t` describes `mem`.
        let s = unsafe { scribble(&t, 0, &mut rng) };
        assert_eq!(s.buffers, 6);
        assert!((1..=6).contains(&s.published), "{s:?}");
        // What was in flight comes out first, intact.
        for b in [3u8, 5] {
            let d = rx.dequeue().unwrap().unwrap();
            assert_eq!((d.offset, d.len, d.meta), (u64::from(b) * 64, 64, 9));
            assert!(mem.buffer(usize::from(b)).iter().all(|&x| x == b));
        }
        // Then the garbage, which the consumer can take; a descriptor
        // naming a real buffer never names one in flight.
        let mut garbage = 0;
        while let Some(d) = rx.dequeue().unwrap() {
            assert!(d.offset != 3 * 64 && d.offset != 5 * 64, "{d:?}");
            garbage += 1;
        }
        assert_eq!(garbage, s.published);
        // The producer carries on from its own tail and the ring heals.
        tx.enqueue(Desc {
            offset: 0,
            len: 1,
            meta: 1,
        })
        .unwrap();
        assert_eq!(rx.dequeue().unwrap().map(|d| d.meta), Some(1));
        // The two packets in flight again, for the next round.
        for b in [3u64, 5] {
            tx.enqueue(Desc {
                offset: b * 64,
                len: 64,
                meta: 9,
            })
            .unwrap();
        }
    }
}

#[test]
fn a_pd_produces_its_rings_its_links_active_rings_and_its_free_rings() {
    use axolotl_sdk::config::LinkRole;
    let region = |vaddr| Region {
        name: "r",
        vaddr,
        size: 0x10000,
        writable: true,
    };
    let ring = |vaddr, role| RingConfig {
        name: "ring",
        peer: "peer",
        region: region(vaddr),
        channel: Channel::new(1),
        slots: 16,
        role,
    };
    let link = |vaddr, role| LinkConfig {
        name: "link",
        region: region(vaddr),
        channel: Channel::new(2),
        buffers: 32,
        buf_size: 2048,
        active_offset: 0,
        free_offset: 0x1000,
        pool_offset: 0x2000,
        role,
        max_ports: 0,
    };
    let rings = [
        ring(0x10_0000, RingRole::Producer),
        ring(0x20_0000, RingRole::Consumer),
    ];
    let links = [
        link(0x30_0000, LinkRole::Sender),
        link(0x40_0000, LinkRole::Receiver),
    ];
    let got: Vec<(Target, Channel)> = targets(&rings, &links).collect();
    let t = |ring, buf_size, pool| Target {
        ring,
        slots: if buf_size == 0 { 16 } else { 32 },
        buf_size,
        pool,
    };
    assert_eq!(
        got,
        vec![
            (t(0x10_0000, 0, 0), Channel::new(1)),
            (t(0x30_0000, 2048, 0x30_2000), Channel::new(2)),
            (t(0x40_1000, 2048, 0), Channel::new(2)),
        ]
    );
}

#[test]
fn garbage_spares_the_buffer_being_filled() {
    let mut mem = Link::new();
    let t = mem.target();
    let base = mem.0.as_mut_ptr();
    // Buffer 2 is half written: its descriptor is not on the ring yet.
    mem.buffer(2).fill(0x5a);
    for seed in 0..20 {
        // SAFETY: `t` describes `mem`, an empty ring and its pool.
        let s = unsafe { scribble(&t, t.pool + 2 * 64, &mut Rng::new(seed)) };
        assert_eq!(s.buffers, 7);
        assert!(mem.buffer(2).iter().all(|&x| x == 0x5a));
        // No garbage descriptor names it either.
        // SAFETY: as above; the consumer end of the same ring.
        let mut rx = unsafe { Consumer::attach(base, RING_LEN, 8).unwrap() };
        while let Some(d) = rx.dequeue().unwrap() {
            assert_ne!(d.offset, 2 * 64, "{d:?}");
        }
    }
}
