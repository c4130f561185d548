//! Single-producer single-consumer rings of descriptors in shared memory.
//!
//! A ring is a 64-byte header followed by `slots` descriptors of 16 bytes,
//! laid out like sDDF's queues (free-running `tail` and `head`, a
//! `consumer_signalled` flag), plus an epoch per side that each side bumps
//! when it (re)attaches, so that a neighbour can tell its peer restarted.
//!
//! | offset | field                | written by |
//! |--------|----------------------|------------|
//! | 0      | `tail`               | producer   |
//! | 4      | `head`               | consumer   |
//! | 8      | `consumer_signalled` | both       |
//! | 12     | `producer_epoch`     | producer   |
//! | 16     | `consumer_epoch`     | consumer   |
//! | 20..64 | reserved (zero)      |            |
//! | 64     | descriptors          | producer   |
//!
//! Roles are types: only a [`Producer`] can enqueue and only a [`Consumer`]
//! can dequeue. The peer is untrusted: every index or flag it writes is
//! checked before use; an impossible one is refused with
//! [`PeerMisbehavior`] and counted, never trusted, never a panic, and a slot
//! is always `index & (slots - 1)` inside the checked region.
//!
//! # Signalling (sDDF's request / re-check / cancel protocol)
//!
//! The producer notifies only when the consumer asked for it, so a busy
//! consumer costs no notifications:
//!
//! ```ignore
//! // producer, after enqueueing one or more descriptors:
//! if producer.must_notify() { os.notify(channel) }
//!
//! // consumer, whenever it runs (at start and on each notification):
//! loop {
//!     while let Some(desc) = consumer.dequeue()? { handle(desc) }
//!     if consumer.request_signal() { break } // empty: safe to wait
//! }
//! ```
//!
//! `request_signal` asks for a signal, then (after a full fence) looks at the
//! ring again; `must_notify` (after a full fence, following the publication
//! of the tail) looks at the request. One of the two always sees the other,
//! so no wake-up is lost; `tests/loom.rs` checks every interleaving.
#![cfg_attr(not(any(test, loom)), no_std)]

#[cfg(any(feature = "alloc", loom, test))]
extern crate alloc;

#[cfg(any(feature = "alloc", loom, test))]
mod owned;
mod sync;

#[cfg(any(feature = "alloc", loom, test))]
pub use owned::{Field, OwnedRing};

use sync::{fence, AtomicU32, Ordering};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Bytes of the header before the descriptors.
pub const HEADER_BYTES: usize = 64;
/// Bytes of one descriptor.
pub const DESC_BYTES: usize = 16;
/// Fewest slots a ring may have.
pub const MIN_SLOTS: u32 = 2;
/// Most slots a ring may have.
pub const MAX_SLOTS: u32 = 65536;

/// Bytes a ring of `slots` descriptors needs.
pub const fn region_bytes(slots: u32) -> usize {
    HEADER_BYTES + DESC_BYTES * slots as usize
}

/// One descriptor: where a buffer is in a pool, how long it is, and a word
/// for the protocol's own use.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct Desc {
    /// Offset of the buffer in its pool.
    pub offset: u64,
    /// Length of the data.
    pub len: u32,
    /// Protocol-specific.
    pub meta: u32,
}

const _: () = assert!(core::mem::size_of::<Desc>() == DESC_BYTES);

/// A descriptor points outside its buffer pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadDescriptor;

impl Desc {
    /// The byte range this descriptor names in a pool of `pool_len` bytes,
    /// if it lies wholly inside.
    pub fn check_within(&self, pool_len: usize) -> Result<core::ops::Range<usize>, BadDescriptor> {
        let start = usize::try_from(self.offset).map_err(|_| BadDescriptor)?;
        let end = start.checked_add(self.len as usize).ok_or(BadDescriptor)?;
        if end > pool_len {
            return Err(BadDescriptor);
        }
        Ok(start..end)
    }
}

/// The ring header, as atomics over the shared bytes.
#[repr(C)]
pub(crate) struct Header {
    tail: AtomicU32,
    head: AtomicU32,
    consumer_signalled: AtomicU32,
    producer_epoch: AtomicU32,
    consumer_epoch: AtomicU32,
}

#[cfg(not(loom))]
const _: () = assert!(core::mem::size_of::<Header>() <= HEADER_BYTES);

/// Why a ring could not be attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachError {
    /// `slots` is not a power of two in `MIN_SLOTS..=MAX_SLOTS`.
    BadSlots,
    /// The region is smaller than [`region_bytes`].
    TooSmall,
    /// The region is not 8-byte aligned.
    Misaligned,
}

/// What the peer did wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerMisbehavior {
    /// The producer published a tail more than `slots` ahead of the head, or
    /// behind it.
    ImpossibleTail(u32),
    /// The consumer published a head beyond the tail, or moved it backwards.
    ImpossibleHead(u32),
}

/// Why a descriptor could not be enqueued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnqueueError {
    /// Every slot is in use.
    Full,
    /// The consumer broke the protocol.
    Peer(PeerMisbehavior),
}

impl core::fmt::Display for PeerMisbehavior {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PeerMisbehavior::ImpossibleTail(t) => {
                write!(f, "producer published impossible tail {t}")
            }
            PeerMisbehavior::ImpossibleHead(h) => {
                write!(f, "consumer published impossible head {h}")
            }
        }
    }
}

/// The shared part both ends point at.
struct Shared {
    header: *const Header,
    slots: *mut Desc,
    mask: u32,
}

impl Shared {
    /// # Safety
    /// `header` must point to a live `Header` and `slots` to `mask + 1` live
    /// descriptors, both for as long as the end that owns this exists.
    unsafe fn new(header: *const Header, slots: *mut Desc, n: u32) -> Shared {
        Shared {
            header,
            slots,
            mask: n - 1,
        }
    }

    fn h(&self) -> &Header {
        // SAFETY: `new`'s contract keeps the header alive and valid; every
        // field is an atomic, valid for any bits the peer writes.
        unsafe { &*self.header }
    }

    fn read(&self, index: u32) -> Desc {
        let i = (index & self.mask) as usize;
        // SAFETY: i <= mask, so the slot is inside the region; any bytes are
        // a valid `Desc`; volatile because the peer shares the memory.
        unsafe { self.slots.add(i).read_volatile() }
    }

    fn write(&self, index: u32, d: Desc) {
        let i = (index & self.mask) as usize;
        // SAFETY: as in `read`; only the producer writes slots.
        unsafe { self.slots.add(i).write_volatile(d) }
    }

    fn size(&self) -> u32 {
        self.mask + 1
    }
}

fn bump(epoch: &AtomicU32) -> u32 {
    let mut e = epoch.load(Ordering::Relaxed).wrapping_add(1);
    if e == 0 {
        e = 1;
    }
    epoch.store(e, Ordering::Release);
    e
}

/// Checks a region and splits it into header and slots.
///
/// # Safety
/// `base` must point to `len` bytes of live shared memory that outlive the
/// returned pointers' users.
unsafe fn split(
    base: *mut u8,
    len: usize,
    slots: u32,
) -> Result<(*const Header, *mut Desc), AttachError> {
    if !slots.is_power_of_two() || !(MIN_SLOTS..=MAX_SLOTS).contains(&slots) {
        return Err(AttachError::BadSlots);
    }
    if len < region_bytes(slots) {
        return Err(AttachError::TooSmall);
    }
    if !(base as usize).is_multiple_of(8) {
        return Err(AttachError::Misaligned);
    }
    // SAFETY: HEADER_BYTES < len, checked above.
    let slots_ptr = unsafe { base.add(HEADER_BYTES) } as *mut Desc;
    Ok((base as *const Header, slots_ptr))
}

/// The producing end.
pub struct Producer {
    ring: Shared,
    tail: u32,
    head_seen: u32,
    peer_epoch: u32,
    epoch: u32,
    misbehavior: u32,
}

// SAFETY: the end owns its view of shared memory; moving it to another
// thread (or process) is what shared memory is for.
unsafe impl Send for Producer {}

impl Producer {
    /// Attaches the producing end of the ring in `len` bytes at `base`,
    /// continuing from the tail in shared memory (a restarted PD carries on
    /// where the ring is) and bumping the producer epoch.
    ///
    /// # Safety
    /// `base` must point to `len` bytes of shared memory that stay mapped
    /// for the life of the `Producer`, and no other `Producer` may exist for
    /// the ring.
    pub unsafe fn attach(base: *mut u8, len: usize, slots: u32) -> Result<Producer, AttachError> {
        // SAFETY: forwarded caller contract.
        let (header, descs) = unsafe { split(base, len, slots)? };
        // SAFETY: `split` checked the size; the caller keeps it mapped.
        Ok(unsafe { Producer::from_parts(Shared::new(header, descs, slots)) })
    }

    /// # Safety
    /// As for [`Producer::attach`].
    unsafe fn from_parts(ring: Shared) -> Producer {
        let h = ring.h();
        let tail = h.tail.load(Ordering::Relaxed);
        let head = h.head.load(Ordering::Acquire);
        let mut p = Producer {
            tail,
            head_seen: head,
            peer_epoch: h.consumer_epoch.load(Ordering::Acquire),
            epoch: 0,
            misbehavior: 0,
            ring,
        };
        if tail.wrapping_sub(head) > p.ring.size() {
            // The ring is inconsistent: restart it empty from our side.
            p.misbehavior += 1;
            p.tail = head;
            p.ring.h().tail.store(head, Ordering::Release);
        }
        p.epoch = bump(&p.ring.h().producer_epoch);
        p
    }

    /// This side's epoch after attaching.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Protocol violations seen from the consumer so far.
    pub fn misbehavior_count(&self) -> u32 {
        self.misbehavior
    }

    /// Descriptors enqueued and not yet seen consumed.
    pub fn len(&self) -> u32 {
        self.tail.wrapping_sub(self.head_seen)
    }

    /// Whether every descriptor enqueued has been seen consumed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn refresh_head(&mut self) -> Result<(), PeerMisbehavior> {
        let head = self.ring.h().head.load(Ordering::Acquire);
        // The head may only move forward, up to the tail.
        let advanced = head.wrapping_sub(self.head_seen);
        if advanced > self.tail.wrapping_sub(self.head_seen) {
            self.misbehavior += 1;
            return Err(PeerMisbehavior::ImpossibleHead(head));
        }
        self.head_seen = head;
        Ok(())
    }

    /// Adds a descriptor and publishes it.
    pub fn enqueue(&mut self, desc: Desc) -> Result<(), EnqueueError> {
        if self.len() >= self.ring.size() {
            self.refresh_head().map_err(EnqueueError::Peer)?;
            if self.len() >= self.ring.size() {
                return Err(EnqueueError::Full);
            }
        }
        self.ring.write(self.tail, desc);
        self.tail = self.tail.wrapping_add(1);
        self.ring.h().tail.store(self.tail, Ordering::Release);
        Ok(())
    }

    /// After enqueueing: whether the consumer asked to be notified. If so,
    /// the request is cancelled here and the caller must notify.
    pub fn must_notify(&mut self) -> bool {
        fence(Ordering::SeqCst);
        let h = self.ring.h();
        if h.consumer_signalled.load(Ordering::Relaxed) == 0 {
            h.consumer_signalled.store(1, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    /// Whether the consumer re-attached (restarted) since the last look.
    pub fn peer_restarted(&mut self) -> bool {
        let e = self.ring.h().consumer_epoch.load(Ordering::Acquire);
        let changed = e != self.peer_epoch;
        self.peer_epoch = e;
        changed
    }
}

/// The consuming end.
pub struct Consumer {
    ring: Shared,
    head: u32,
    tail_seen: u32,
    peer_epoch: u32,
    epoch: u32,
    misbehavior: u32,
}

// SAFETY: as for `Producer`.
unsafe impl Send for Consumer {}

impl Consumer {
    /// Attaches the consuming end, continuing from the head in shared memory
    /// and bumping the consumer epoch.
    ///
    /// # Safety
    /// As for [`Producer::attach`], with no other `Consumer` for the ring.
    pub unsafe fn attach(base: *mut u8, len: usize, slots: u32) -> Result<Consumer, AttachError> {
        // SAFETY: forwarded caller contract.
        let (header, descs) = unsafe { split(base, len, slots)? };
        // SAFETY: `split` checked the size; the caller keeps it mapped.
        Ok(unsafe { Consumer::from_parts(Shared::new(header, descs, slots)) })
    }

    /// # Safety
    /// As for [`Consumer::attach`].
    unsafe fn from_parts(ring: Shared) -> Consumer {
        let h = ring.h();
        let head = h.head.load(Ordering::Relaxed);
        let mut c = Consumer {
            head,
            tail_seen: head,
            peer_epoch: h.producer_epoch.load(Ordering::Acquire),
            epoch: 0,
            misbehavior: 0,
            ring,
        };
        // An impossible tail is counted (in `refresh_tail`) and ignored:
        // nothing is read until the producer publishes a plausible one.
        let _ = c.refresh_tail();
        c.epoch = bump(&c.ring.h().consumer_epoch);
        c
    }

    /// This side's epoch after attaching.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Protocol violations seen from the producer so far.
    pub fn misbehavior_count(&self) -> u32 {
        self.misbehavior
    }

    fn refresh_tail(&mut self) -> Result<(), PeerMisbehavior> {
        let tail = self.ring.h().tail.load(Ordering::Acquire);
        if tail.wrapping_sub(self.head) > self.ring.size() {
            self.misbehavior += 1;
            return Err(PeerMisbehavior::ImpossibleTail(tail));
        }
        self.tail_seen = tail;
        Ok(())
    }

    /// Descriptors known to be waiting (without looking at the tail again).
    pub fn len(&self) -> u32 {
        self.tail_seen.wrapping_sub(self.head)
    }

    /// Whether none is known to be waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `i`-th waiting descriptor, without consuming it (see
    /// [`Consumer::release`]): a consumer that must save its work before the
    /// producer may reuse a slot peeks, saves, then releases.
    pub fn peek(&mut self, i: u32) -> Result<Option<Desc>, PeerMisbehavior> {
        if i >= self.len() {
            self.refresh_tail()?;
            if i >= self.len() {
                return Ok(None);
            }
        }
        Ok(Some(self.ring.read(self.head.wrapping_add(i))))
    }

    /// Consumes the first `n` waiting descriptors (at most those seen).
    pub fn release(&mut self, n: u32) -> Result<(), PeerMisbehavior> {
        let n = n.min(self.len());
        self.head = self.head.wrapping_add(n);
        self.ring.h().head.store(self.head, Ordering::Release);
        Ok(())
    }

    /// Takes the next descriptor, if any.
    pub fn dequeue(&mut self) -> Result<Option<Desc>, PeerMisbehavior> {
        let d = self.peek(0)?;
        if d.is_some() {
            self.release(1)?;
        }
        Ok(d)
    }

    /// Before waiting: asks for a signal, then looks again. `true`: still
    /// empty, safe to wait for the notification. `false`: descriptors arrived
    /// meanwhile; the request is cancelled and the caller keeps draining.
    pub fn request_signal(&mut self) -> bool {
        self.ring.h().consumer_signalled.store(0, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let empty = match self.refresh_tail() {
            Ok(()) => self.is_empty(),
            // An impossible tail: nothing usable is queued; wait for more.
            Err(_) => true,
        };
        if !empty {
            self.ring.h().consumer_signalled.store(1, Ordering::Relaxed);
        }
        empty
    }

    /// A deliberately broken `request_signal` that does not look again: only
    /// for the loom test that shows the check can fail.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn request_signal_without_recheck(&mut self) -> bool {
        self.ring.h().consumer_signalled.store(0, Ordering::Relaxed);
        true
    }

    /// Whether the producer re-attached (restarted) since the last look.
    pub fn peer_restarted(&mut self) -> bool {
        let e = self.ring.h().producer_epoch.load(Ordering::Acquire);
        let changed = e != self.peer_epoch;
        self.peer_epoch = e;
        changed
    }
}

#[cfg(test)]
mod tests;
