//! Software-implemented fault injection (SWIFI) inside a PD, the same on
//! the Linux host and on seL4: the `garbage` and `corrupt` fault kinds of
//! `axolotl inject`.
//!
//! - [`scribble`] plays a PD gone wrong that scribbles over what it
//!   shares: into a ring it produces it writes random descriptors over the
//!   free slots and publishes some of them by moving the ring's tail, and
//!   into the pool it fills it writes random bytes over the buffers no
//!   descriptor on the ring names. Then the PD carries on from its own (now
//!   stale) view of the ring. Descriptors already published and the
//!   buffers they name are left alone: they are the packets a correct PD
//!   handed over before it went wrong, and overwriting them would make the
//!   injected fault a wrong-data fault of the PD itself rather than a test
//!   of its neighbours.
//! - [`flip`] flips random bits of the PD's own private writable memory,
//!   each area chosen with a weight of its size, as SWIFI campaigns do.
//!
//! Nothing here allocates or locks: on seL4 the code runs on a stack of its
//! own in the middle of whatever the PD was doing, its allocator included.
#![cfg_attr(not(test), no_std)]

use axolotl_ring::{DESC_BYTES, HEADER_BYTES, HEAD_OFFSET, TAIL_OFFSET};
use axolotl_sdk::config::{LinkConfig, LinkRole, RingConfig, RingRole};
use axolotl_sdk::Channel;
use core::sync::atomic::{fence, Ordering};

/// A small seeded pseudo-random generator (xorshift64*): the same seed
/// gives the same numbers. For fault injection and campaigns, where
/// variety and replay matter, not cryptographic quality.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator started from `seed` (any value, 0 included).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform enough in `0..n` (`0..1` for `n` of 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// A ring a PD produces (a plain ring, a link's active ring as its sender,
/// or a link's free ring as its receiver), where the PD maps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// The ring's header.
    pub ring: usize,
    /// Its descriptor slots (a power of two).
    pub slots: u32,
    /// For a link: bytes per buffer of its pool (0 for a plain ring).
    pub buf_size: u32,
    /// For a link's sender: the pool it fills, of `slots` buffers (0: the
    /// PD only gives buffers back, or a plain ring).
    pub pool: usize,
}

/// Buffers of a pool at most: the links' limit.
pub const MAX_BUFFERS: usize = 512;

/// The rings a PD produces, from its generated configuration: with the
/// channel that carries each one's notifications.
pub fn targets<'a>(
    rings: &'a [RingConfig],
    links: &'a [LinkConfig],
) -> impl Iterator<Item = (Target, Channel)> + 'a {
    let rings = rings
        .iter()
        .filter(|r| r.role == RingRole::Producer)
        .map(|r| {
            let t = Target {
                ring: r.region.vaddr,
                slots: r.slots,
                buf_size: 0,
                pool: 0,
            };
            (t, r.channel)
        });
    let links = links.iter().map(|k| {
        let base = k.region.vaddr;
        let t = match k.role {
            LinkRole::Sender => Target {
                ring: base + k.active_offset,
                slots: k.buffers,
                buf_size: k.buf_size,
                pool: base + k.pool_offset,
            },
            LinkRole::Receiver => Target {
                ring: base + k.free_offset,
                slots: k.buffers,
                buf_size: k.buf_size,
                pool: 0,
            },
        };
        (t, k.channel)
    });
    rings.chain(links)
}

/// What one ring's garbage amounted to (for the log).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scribbled {
    /// Random descriptors published.
    pub published: u32,
    /// Pool buffers overwritten with random bytes.
    pub buffers: u32,
}

/// Writes garbage into the ring `t` and its pool (see the crate docs). The
/// buffer at `filling` (the one the PD was filling when it was stopped,
/// [`axolotl_ring::FILLING`]; 0 for none) is left alone like those in
/// flight: its descriptor is about to be published.
///
/// # Safety
/// `t.ring` must be the address of a live, writable ring of `t.slots`
/// slots produced by this PD and, if `t.pool` is not 0, `t.pool` of a
/// live, writable pool of `t.slots` buffers of `t.buf_size` bytes.
pub unsafe fn scribble(t: &Target, filling: usize, rng: &mut Rng) -> Scribbled {
    let base = t.ring as *mut u8;
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
    // SAFETY: the slots follow the header, inside the ring.
    let slots_at = unsafe { base.add(HEADER_BYTES) };
    let mask = t.slots.wrapping_sub(1);
    let slot = |i: u32| -> *mut u8 {
        // SAFETY: `i & mask` < slots: inside the ring's slots.
        unsafe { slots_at.add((i & mask) as usize * DESC_BYTES) }
    };
    let in_flight = tail.wrapping_sub(head);
    let free = t.slots.saturating_sub(in_flight);
    let buffers = if t.buf_size > 0 {
        (t.slots as usize).min(MAX_BUFFERS)
    } else {
        0
    };
    // Buffers a published descriptor names: left alone.
    let mut named = [0u64; MAX_BUFFERS / 64];
    let is_named = |named: &[u64; MAX_BUFFERS / 64], b: usize| named[b / 64] & (1 << (b % 64)) != 0;
    if in_flight <= t.slots && buffers > 0 {
        for k in 0..in_flight {
            // SAFETY: a slot of the ring; the first 8 bytes of a descriptor
            // are its offset (read unaligned: any bytes are an offset).
            let offset = unsafe { slot(head.wrapping_add(k)).cast::<u64>().read_volatile() };
            if offset % u64::from(t.buf_size) == 0 {
                let b = offset / u64::from(t.buf_size);
                if b < buffers as u64 {
                    named[b as usize / 64] |= 1 << (b % 64);
                }
            }
        }
    }
    if t.pool != 0 && filling >= t.pool && t.buf_size > 0 {
        let b = (filling - t.pool) / t.buf_size as usize;
        if b < buffers {
            named[b / 64] |= 1 << (b % 64);
        }
    }
    let unnamed = (0..buffers).filter(|&b| !is_named(&named, b)).count();
    // The `n`th buffer no descriptor names.
    let nth_unnamed = |n: usize| (0..buffers).filter(|&b| !is_named(&named, b)).nth(n);
    let mut out = Scribbled::default();
    if t.pool != 0 {
        for b in (0..buffers).filter(|&b| !is_named(&named, b)) {
            let start = t.pool + b * t.buf_size as usize;
            for w in 0..t.buf_size as usize / 8 {
                // SAFETY: inside buffer `b` of the pool the caller vouches
                // for (an unaligned write, to be sure of any buffer size).
                unsafe { ((start + w * 8) as *mut u64).write_unaligned(rng.next_u64()) };
            }
            out.buffers += 1;
        }
    }
    // Random descriptors over every free slot; some of them published.
    for k in 0..free {
        let pick = rng.below(4);
        let real = match pick {
            0 | 1 if unnamed > 0 => nth_unnamed(rng.below(unnamed as u64) as usize),
            _ => None,
        };
        let (offset, len) = match (real, pick) {
            // A real buffer (not one in flight) of random length.
            (Some(b), _) => (
                b as u64 * u64::from(t.buf_size),
                rng.below(u64::from(t.buf_size) + 1) as u32,
            ),
            // Not a buffer start, or past the pool.
            (None, 2) if t.buf_size > 0 => (
                rng.below(u64::from(t.slots) * u64::from(t.buf_size) * 2),
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

/// Bits one `corrupt` fault flips at most.
pub const MAX_BITS: u32 = 64;

/// Flips `bits` (at most [`MAX_BITS`]) random bits in `areas` (`(start,
/// end)` addresses), each area chosen with a weight of its size; the
/// number of bits flipped.
///
/// # Safety
/// Every byte of every area must be readable and writable; what writing
/// it breaks is the caller's business.
pub unsafe fn flip(areas: &[(usize, usize)], bits: u32, rng: &mut Rng) -> u32 {
    let bits = bits.min(MAX_BITS);
    let total: usize = areas.iter().map(|a| a.1.saturating_sub(a.0)).sum();
    if total == 0 {
        return 0;
    }
    // Chosen before any is flipped: the flips may hit this very code's data.
    let mut picks = [(0usize, 0u8); MAX_BITS as usize];
    for p in picks.iter_mut().take(bits as usize) {
        let mut at = rng.below(total as u64) as usize;
        for &(start, end) in areas {
            let len = end.saturating_sub(start);
            if at < len {
                *p = (start + at, 1u8 << rng.below(8));
                break;
            }
            at -= len;
        }
    }
    for &(addr, mask) in &picks[..bits as usize] {
        let p = addr as *mut u8;
        // SAFETY: inside an area the caller vouches for.
        unsafe { p.write_volatile(p.read_volatile() ^ mask) };
    }
    bits
}

#[cfg(test)]
mod tests;
