//! Software-implemented fault injection inside a PD process: the `garbage`
//! and `corrupt` fault kinds of `axolotl inject`.
//!
//! - `garbage` plays a PD gone wrong that scribbles over what it shares:
//!   into every ring it produces (see [`crate::boot::Produced`]) it writes
//!   random descriptors over the free slots and publishes some of them by
//!   moving the ring's tail, and into every pool it fills it writes random
//!   bytes over the buffers no descriptor on the ring names. Then the PD
//!   carries on from its own (now stale) view of the rings. Descriptors
//!   already published and the buffers they name are left alone: they are
//!   the packets a correct PD handed over before it went wrong, and
//!   overwriting them would make the injected fault a wrong-data fault of
//!   the PD itself rather than a test of its neighbours. Whether each
//!   neighbour counts, drops and carries on is what the fault tests.
//! - `corrupt N` flips N random bits of the PD's own private writable
//!   memory (`.data`, `.bss`, heap, stacks: every `rw-p` mapping of
//!   `/proc/self/maps`, which is opened at start, before the seccomp filter
//!   closes `open`), each mapping chosen with a weight of its size, as SWIFI
//!   campaigns do. Shared regions are left alone. The PD may crash, hang,
//!   misbehave or carry on.

use crate::boot::Produced;
use crate::rng::Rng;
use axolotl_ring::{DESC_BYTES, HEADER_BYTES, HEAD_OFFSET, TAIL_OFFSET};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{fence, Ordering};
use std::sync::OnceLock;

static PRODUCED: OnceLock<Vec<Produced>> = OnceLock::new();
static MAPS: OnceLock<Option<OwnedFd>> = OnceLock::new();

/// Keeps what the faults need: the rings the PD produces, and an open
/// `/proc/self/maps` (called at start, while files may still be opened).
pub fn prepare(produced: &[Produced]) {
    let _ = PRODUCED.set(produced.to_vec());
    let maps = std::fs::File::open("/proc/self/maps")
        .ok()
        .map(OwnedFd::from);
    if maps.is_none() {
        log::warn!("cannot open /proc/self/maps: `corrupt` faults will do nothing");
    }
    let _ = MAPS.set(maps);
}

/// A generator seeded from the clock and the pid: each fault different.
fn rng() -> Rng {
    Rng::new(crate::sys::monotonic_ns() ^ (u64::from(std::process::id()) << 32))
}

/// What one ring's garbage amounted to (for the log).
#[derive(Debug, Default, PartialEq, Eq)]
struct Scribbled {
    published: u32,
    buffers: u32,
}

/// Writes garbage into every ring and pool this PD produces; the channels
/// to notify, so that the consumers look at once (a PD gone wrong may well
/// notify too).
pub fn garbage() -> Vec<u8> {
    let Some(produced) = PRODUCED.get() else {
        return Vec::new();
    };
    let mut rng = rng();
    let (mut published, mut buffers) = (0, 0);
    for p in produced {
        // SAFETY: the supervisor derived each `Produced` from the writable
        // maps of this PD, which `pd::start` mapped before this can run and
        // never unmaps; only the producer's own fields, slots it has not
        // published and buffers no published descriptor names are written.
        let s = unsafe { scribble(p, &mut rng) };
        published += s.published;
        buffers += s.buffers;
    }
    log::warn!(
        "garbage: {published} random descriptors published on {} rings, {buffers} pool buffers \
         overwritten",
        produced.len()
    );
    let mut channels: Vec<u8> = produced.iter().map(|p| p.channel).collect();
    channels.sort_unstable();
    channels.dedup();
    channels
}

/// # Safety
/// `p.ring` must be the address of a live, writable ring of `p.slots` slots
/// and, if `p.pool` is not 0, `p.pool` of a live, writable pool of
/// `p.slots` buffers of `p.buf_size` bytes.
unsafe fn scribble(p: &Produced, rng: &mut Rng) -> Scribbled {
    let base = p.ring as *mut u8;
    // SAFETY: inside the ring's header, which the caller vouches for; u32
    // fields at 4-byte aligned offsets of a page-aligned region.
    let (tail_at, head_at) = unsafe {
        (
            base.add(TAIL_OFFSET).cast::<u32>(),
            base.add(HEAD_OFFSET).cast::<u32>(),
        )
    };
    // SAFETY: as above; volatile because the consumer writes the head.
    let (tail, head) = unsafe { (tail_at.read_volatile(), head_at.read_volatile()) };
    // SAFETY: the slots follow the 64-byte header, inside the ring.
    let slots_at = unsafe { base.add(HEADER_BYTES) };
    let mask = p.slots - 1;
    let slot = |i: u32| -> *mut u8 {
        // SAFETY: `i & mask` < slots: inside the ring's slots.
        unsafe { slots_at.add((i & mask) as usize * DESC_BYTES) }
    };
    let in_flight = tail.wrapping_sub(head);
    let free = p.slots.saturating_sub(in_flight);
    let buffers = if p.buf_size > 0 { p.slots } else { 0 };
    // Buffers a published descriptor names: left alone.
    let mut named = vec![false; buffers as usize];
    if in_flight <= p.slots {
        for k in 0..in_flight {
            // SAFETY: a slot of the ring; the first 8 bytes of a descriptor
            // are its offset (read unaligned: any bytes are an offset).
            let offset = unsafe { slot(head.wrapping_add(k)).cast::<u64>().read_volatile() };
            if p.buf_size > 0 && offset % u64::from(p.buf_size) == 0 {
                if let Some(n) = named.get_mut((offset / u64::from(p.buf_size)) as usize) {
                    *n = true;
                }
            }
        }
    }
    let unnamed: Vec<u32> = (0..buffers).filter(|&b| !named[b as usize]).collect();
    let mut out = Scribbled::default();
    if p.pool != 0 {
        for &b in &unnamed {
            let start = p.pool + b as usize * p.buf_size as usize;
            for w in 0..p.buf_size as usize / 8 {
                // SAFETY: inside buffer `b` of the pool the caller vouches
                // for, 8-byte aligned (buffer sizes are multiples of 8 in
                // practice; an unaligned write is used to be sure).
                unsafe { ((start + w * 8) as *mut u64).write_unaligned(rng.next_u64()) };
            }
            out.buffers += 1;
        }
    }
    // Random descriptors over every free slot; some of them published.
    for k in 0..free {
        let pick = rng.below(4);
        let (offset, len) = match (pick, unnamed.is_empty()) {
            // A real buffer (not one in flight) of random length.
            (0 | 1, false) => (
                u64::from(unnamed[rng.below(unnamed.len() as u64) as usize])
                    * u64::from(p.buf_size),
                rng.below(u64::from(p.buf_size) + 1) as u32,
            ),
            // Not a buffer start, or past the pool.
            (2, _) if p.buf_size > 0 => (
                rng.below(u64::from(p.slots) * u64::from(p.buf_size) * 2),
                rng.next_u64() as u32,
            ),
            _ => (rng.next_u64(), rng.next_u64() as u32),
        };
        let meta = rng.next_u64() as u32;
        let at = slot(tail.wrapping_add(k));
        // SAFETY: a free slot of the ring (the consumer reads it only once
        // the tail below is published), 16 bytes: offset, len, meta.
        unsafe {
            at.cast::<u64>().write_unaligned(offset);
            at.add(8).cast::<u32>().write_unaligned(len);
            at.add(12).cast::<u32>().write_unaligned(meta);
        }
    }
    if free > 0 {
        out.published = 1 + rng.below(u64::from(free)) as u32;
        // Descriptors before the tail that publishes them.
        fence(Ordering::Release);
        // SAFETY: the producer's own field of the header.
        unsafe { tail_at.write_volatile(tail.wrapping_add(out.published)) };
    }
    out
}

/// Flips `bits` random bits in this process's private writable memory.
pub fn corrupt(bits: u32) {
    let Some(Some(fd)) = MAPS.get() else {
        log::warn!("corrupt: /proc/self/maps is not open; nothing flipped");
        return;
    };
    let text = match read_all(fd) {
        Ok(t) => t,
        Err(e) => {
            log::warn!("corrupt: cannot read /proc/self/maps: {e}");
            return;
        }
    };
    let areas = writable_private(&text);
    let total: usize = areas.iter().map(|a| a.1 - a.0).sum();
    log::warn!(
        "corrupt: flipping {bits} bits in {} KiB of writable memory",
        total / 1024
    );
    // SAFETY: deliberately not sound: this is the injected fault. Each
    // area is one /proc/self/maps lists as readable and writable, so the
    // accesses themselves do not trap.
    unsafe { flip(&areas, bits, &mut rng()) };
}

/// Flips `bits` random bits in `areas` (`(start, end)` addresses), each
/// area chosen with a weight of its size.
///
/// # Safety
/// Every byte of every area must be readable and writable; what writing
/// it breaks is the caller's business.
unsafe fn flip(areas: &[(usize, usize)], bits: u32, rng: &mut Rng) {
    let total: usize = areas.iter().map(|a| a.1 - a.0).sum();
    if total == 0 {
        return;
    }
    // Chosen before any is flipped: the flips may hit this very code's data.
    let picks: Vec<(usize, u8)> = (0..bits)
        .map(|_| {
            let mut at = rng.below(total as u64) as usize;
            let mut addr = 0;
            for &(start, end) in areas {
                if at < end - start {
                    addr = start + at;
                    break;
                }
                at -= end - start;
            }
            (addr, 1u8 << rng.below(8))
        })
        .collect();
    for (addr, mask) in picks {
        let p = addr as *mut u8;
        // SAFETY: inside an area the caller vouches for.
        unsafe { p.write_volatile(p.read_volatile() ^ mask) };
    }
}

fn read_all(fd: &OwnedFd) -> std::io::Result<String> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        // SAFETY: `buf[len..]` is valid for writes of its length.
        let n = unsafe {
            libc::pread(
                fd.as_raw_fd(),
                buf[len..].as_mut_ptr().cast(),
                buf.len() - len,
                len as libc::off_t,
            )
        };
        match n {
            0 => break,
            n if n < 0 => return Err(std::io::Error::last_os_error()),
            n => len += n as usize,
        }
    }
    buf.truncate(len);
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// The `rw-p` areas of a `/proc/PID/maps` text, as `(start, end)`.
fn writable_private(maps: &str) -> Vec<(usize, usize)> {
    maps.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (range, perms) = (f.next()?, f.next()?);
            if perms != "rw-p" {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            let (a, b) = (
                usize::from_str_radix(a, 16).ok()?,
                usize::from_str_radix(b, 16).ok()?,
            );
            (b > a).then_some((a, b))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axolotl_ring::{Consumer, Producer};

    #[test]
    fn only_private_writable_areas_are_corrupted() {
        let maps = "\
00400000-00452000 r-xp 00000000 08:02 173521 /usr/bin/pd
00651000-00652000 rw-p 00051000 08:02 173521 /usr/bin/pd
00652000-00655000 rw-p 00000000 00:00 0 [heap]
7f0000000000-7f0000100000 rw-s 00000000 00:05 99 /memfd:ring (deleted)
7ffc0000-7ffd0000 rw-p 00000000 00:00 0 [stack]
7ffd0000-7ffd1000 ---p 00000000 00:00 0
garbage line
";
        assert_eq!(
            writable_private(maps),
            vec![
                (0x651000, 0x652000),
                (0x652000, 0x655000),
                (0x7ffc0000, 0x7ffd0000)
            ]
        );
    }

    #[test]
    fn this_process_has_writable_memory_to_corrupt() {
        let fd = std::fs::File::open("/proc/self/maps")
            .map(OwnedFd::from)
            .unwrap();
        let areas = writable_private(&read_all(&fd).unwrap());
        let here = &areas as *const _ as usize;
        assert!(
            areas.iter().any(|&(a, b)| (a..b).contains(&here)),
            "the stack is listed"
        );
    }

    #[test]
    fn corrupt_flips_the_bits_asked_for_inside_the_areas_only() {
        for seed in 0..50 {
            let mut mem = vec![0u8; 3 * 4096];
            let base = mem.as_mut_ptr() as usize;
            // Two areas, with an untouched page between them.
            let areas = [(base, base + 4096), (base + 8192, base + 3 * 4096)];
            // SAFETY: both areas are inside `mem`, which nothing else uses.
            unsafe { flip(&areas, 9, &mut Rng::new(seed)) };
            let flipped: u32 = mem.iter().map(|b| b.count_ones()).sum();
            // Two picks of one bit cancel out: fewer, by an even number.
            assert!(
                (1..=9).contains(&flipped) && (9 - flipped).is_multiple_of(2),
                "{flipped}"
            );
            assert!(mem[4096..8192].iter().all(|&b| b == 0), "outside the areas");
        }
    }

    /// A link's active ring and pool in ordinary memory.
    #[repr(C, align(64))]
    struct Link([u8; 64 + 16 * 8 + 8 * 64]);

    #[test]
    fn garbage_spares_what_is_in_flight_and_publishes_some() {
        let mut mem = Box::new(Link([0; 64 + 16 * 8 + 8 * 64]));
        let base = mem.0.as_mut_ptr();
        let ring_len = 64 + 16 * 8;
        // SAFETY: `mem` outlives both ends; one producer, one consumer.
        let (mut tx, mut rx) = unsafe {
            (
                Producer::attach(base, ring_len, 8).unwrap(),
                Consumer::attach(base, ring_len, 8).unwrap(),
            )
        };
        // Two packets in flight, in buffers 3 and 5, after three consumed.
        for i in 0..3 {
            tx.enqueue(axolotl_ring::Desc {
                offset: i * 64,
                len: 1,
                meta: 0,
            })
            .unwrap();
            rx.dequeue().unwrap();
        }
        let pool = base as usize + ring_len;
        for b in [3u64, 5] {
            mem.0[ring_len + b as usize * 64..][..64].fill(b as u8);
            tx.enqueue(axolotl_ring::Desc {
                offset: b * 64,
                len: 64,
                meta: 9,
            })
            .unwrap();
        }
        let p = Produced {
            ring: base as usize,
            slots: 8,
            buf_size: 64,
            pool,
            channel: 0,
        };
        let mut rng = rng();
        // SAFETY: `p` describes `mem`.
        let s = unsafe { scribble(&p, &mut rng) };
        assert_eq!(s.buffers, 6);
        assert!((1..=6).contains(&s.published), "{s:?}");
        // What was in flight comes out first, intact.
        for b in [3u8, 5] {
            let d = rx.dequeue().unwrap().unwrap();
            assert_eq!((d.offset, d.len, d.meta), (u64::from(b) * 64, 64, 9));
            assert!(mem.0[ring_len + b as usize * 64..][..64]
                .iter()
                .all(|&x| x == b));
        }
        // Then the garbage, which the consumer can take.
        let mut garbage = 0;
        while rx.dequeue().unwrap().is_some() {
            garbage += 1;
        }
        assert_eq!(garbage, s.published);
        // The producer carries on from its own tail and the ring heals.
        tx.enqueue(axolotl_ring::Desc {
            offset: 0,
            len: 1,
            meta: 1,
        })
        .unwrap();
        assert_eq!(rx.dequeue().unwrap().map(|d| d.meta), Some(1));
    }
}
