//! Single-producer single-consumer rings of descriptors in shared memory.
//!
//! A ring is a 64-byte header followed by `slots` descriptors of 16 bytes,
//! laid out like sDDF's queues (free-running `tail` and `head`, a
//! `consumer_signalled` flag), plus an epoch per side that each side bumps
//! when it (re)attaches, so that a neighbour can tell its peer restarted.
//! All header fields are little-endian `u32`s accessed as atomics.
//!
//! | offset | field                | written by                       |
//! |--------|----------------------|----------------------------------|
//! | 0      | `tail`               | producer                         |
//! | 4      | `head`               | consumer                         |
//! | 8      | `consumer_signalled` | both (0 = consumer wants signal) |
//! | 12     | `producer_epoch`     | producer                         |
//! | 16     | `consumer_epoch`     | consumer                         |
//! | 20..64 | reserved (zero)      | nobody                           |
//! | 64     | `slots` × [`Desc`]   | producer                         |
//!
//! Roles are types: only a [`Producer`] can enqueue and only a [`Consumer`]
//! can dequeue. Each end keeps shadow copies of the indices; the peer is
//! untrusted: every index or flag it writes is checked before use, an
//! impossible one is refused with [`PeerMisbehavior`] and counted
//! ([`Producer::misbehavior_count`], [`Consumer::misbehavior_count`]), never
//! a panic, and a slot is always `index & (slots - 1)` inside the region that
//! `attach` checked. A consumer found *ahead* of the producer's own tail
//! (by at most `slots`: someone else published a tail) is caught up with,
//! so the ring goes on instead of refusing every later descriptor; a tail
//! published *ahead* of the producer's own (garbage from a broken life of
//! the producer's PD) is gone on from, never written over, since the
//! consumer may be reading those slots.
//!
//! # Signalling (sDDF's request / re-check / cancel protocol)
//!
//! The producer notifies only when the consumer asked for it, so a busy
//! consumer costs no notifications. The loops callers run, with `os` the
//! PD's [`Os`](https://docs.rs/axolotl-sdk) and `ch` the ring's channel:
//!
//! ```no_run
//! # use axolotl_ring::{Consumer, Desc, EnqueueError, PeerMisbehavior, Producer};
//! # fn notify() {}
//! # fn handle(_: Desc) {}
//! // Producer, whenever it has work:
//! fn produce(ring: &mut Producer, work: &[Desc]) -> Result<(), EnqueueError> {
//!     let mut queued = false;
//!     for &desc in work {
//!         match ring.enqueue(desc) {
//!             Ok(()) => queued = true,
//!             Err(EnqueueError::Full) => break, // retry on the next notification
//!             Err(e) => return Err(e),
//!         }
//!     }
//!     // Once per batch, after the descriptors are published:
//!     if queued && ring.must_notify() {
//!         notify(); // os.notify(ch)
//!     }
//!     Ok(())
//! }
//!
//! // Consumer, at start and on every notification of the ring's channel:
//! fn consume(ring: &mut Consumer) -> Result<(), PeerMisbehavior> {
//!     loop {
//!         while let Some(desc) = ring.dequeue()? {
//!             handle(desc);
//!         }
//!         if ring.request_signal() {
//!             return Ok(()); // still empty with a signal requested: wait
//!         }
//!         // Descriptors arrived while asking: the request was cancelled,
//!         // drain again.
//!     }
//! }
//! ```
//!
//! `request_signal` sets the flag to "requested", issues a full (`SeqCst`)
//! fence, then looks at the tail again; `must_notify` issues a full fence
//! after the tail was published, then looks at the flag. Of two stores each
//! followed by a full fence and a load of the other's location, at least one
//! load sees the other store, so either the consumer sees the new
//! descriptors or the producer sees the request: no wake-up is lost.
//! `tests/loom.rs` checks every interleaving, and shows that the protocol
//! without the re-check or without a fence does lose wake-ups.
//!
//! # Epochs
//!
//! Attaching bumps this side's epoch (skipping 0, which means "never
//! attached") and takes the local shadow index from the shared index this
//! side owns, so a restarted PD continues where the ring is. A PD learns its
//! neighbour restarted through `peer_restarted()` and then resynchronises
//! its own protocol state (the ring itself needs none).
//!
//! # Memory for tests
//!
//! With the `alloc` feature, `OwnedRing` is a ring in ordinary memory
//! (exactly [`region_bytes`] long, attached through the same `attach`
//! functions) for tests and benchmarks.
#![cfg_attr(not(test), no_std)]

#[cfg(any(feature = "alloc", loom, test))]
extern crate alloc;

pub mod bytes;
#[cfg(any(feature = "alloc", loom, test))]
mod owned;
pub mod shared;
mod sync;

#[cfg(any(feature = "alloc", loom, test))]
pub use owned::{Field, OwnedRing};

use sync::{fence, AtomicU32, Ordering};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Where the buffer this PD is filling now starts (0: none), set by a
/// producer that fills a buffer before it publishes the descriptor naming
/// it (a link's sender). Only fault injection reads it: a `garbage` fault,
/// which may stop the PD anywhere, must not write into a packet the PD is
/// about to publish; that would be a wrong-data fault of the PD itself
/// (its neighbours cannot tell it from a real packet), not a test of its
/// neighbours.
pub static FILLING: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Bytes of the header before the descriptors.
pub const HEADER_BYTES: usize = 64;
/// Bytes of one descriptor.
pub const DESC_BYTES: usize = 16;
/// Fewest slots a ring may have.
pub const MIN_SLOTS: u32 = 2;
/// Most slots a ring may have.
pub const MAX_SLOTS: u32 = 65536;
/// Alignment `attach` requires of a region.
pub const REGION_ALIGN: usize = 8;

/// Byte offset of `tail` in the header.
pub const TAIL_OFFSET: usize = 0;
/// Byte offset of `head` in the header.
pub const HEAD_OFFSET: usize = 4;
/// Byte offset of `consumer_signalled` in the header.
pub const CONSUMER_SIGNALLED_OFFSET: usize = 8;
/// Byte offset of `producer_epoch` in the header.
pub const PRODUCER_EPOCH_OFFSET: usize = 12;
/// Byte offset of `consumer_epoch` in the header.
pub const CONSUMER_EPOCH_OFFSET: usize = 16;

/// `consumer_signalled` value: the consumer asked to be signalled.
pub const SIGNAL_REQUESTED: u32 = 0;
/// `consumer_signalled` value: no signal asked for (or already sent).
pub const SIGNAL_CANCELLED: u32 = 1;

/// Bytes a ring of `slots` descriptors needs: the header and the slots.
pub const fn region_bytes(slots: u32) -> usize {
    HEADER_BYTES + DESC_BYTES * slots as usize
}

/// One descriptor: where a buffer is in a pool, how long it is, and a word
/// for the protocol's own use. Any 16 bytes are a valid `Desc`; use
/// [`Desc::check_within`] before touching the buffer it names.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, FromBytes, IntoBytes, Immutable, KnownLayout,
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
const _: () = assert!(HEADER_BYTES & (core::mem::align_of::<Desc>() - 1) == 0);

/// A descriptor names bytes outside its buffer pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadDescriptor;

impl core::fmt::Display for BadDescriptor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("descriptor lies outside its buffer pool")
    }
}

impl Desc {
    /// The byte range `offset..offset + len` in a pool of `pool_len` bytes,
    /// if it lies wholly inside (computed without overflow).
    pub fn check_within(&self, pool_len: usize) -> Result<core::ops::Range<usize>, BadDescriptor> {
        let start = usize::try_from(self.offset).map_err(|_| BadDescriptor)?;
        let len = usize::try_from(self.len).map_err(|_| BadDescriptor)?;
        let end = start.checked_add(len).ok_or(BadDescriptor)?;
        if end > pool_len {
            return Err(BadDescriptor);
        }
        Ok(start..end)
    }
}

/// The ring header, as atomics over the shared bytes (the first 20 of the
/// 64; the rest is reserved).
#[repr(C)]
pub(crate) struct Header {
    tail: AtomicU32,
    head: AtomicU32,
    consumer_signalled: AtomicU32,
    producer_epoch: AtomicU32,
    consumer_epoch: AtomicU32,
}

#[cfg(not(loom))]
const _: () = {
    assert!(core::mem::size_of::<Header>() <= HEADER_BYTES);
    assert!(core::mem::offset_of!(Header, tail) == TAIL_OFFSET);
    assert!(core::mem::offset_of!(Header, head) == HEAD_OFFSET);
    assert!(core::mem::offset_of!(Header, consumer_signalled) == CONSUMER_SIGNALLED_OFFSET);
    assert!(core::mem::offset_of!(Header, producer_epoch) == PRODUCER_EPOCH_OFFSET);
    assert!(core::mem::offset_of!(Header, consumer_epoch) == CONSUMER_EPOCH_OFFSET);
};

/// Why a ring could not be attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachError {
    /// `slots` is not a power of two in `MIN_SLOTS..=MAX_SLOTS`.
    BadSlots,
    /// The region is smaller than [`region_bytes`].
    TooSmall,
    /// The region is null or not [`REGION_ALIGN`]-byte aligned.
    Misaligned,
}

impl core::fmt::Display for AttachError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            AttachError::BadSlots => "slots is not a power of two in 2..=65536",
            AttachError::TooSmall => "region is smaller than the ring",
            AttachError::Misaligned => "region is null or not 8-byte aligned",
        })
    }
}

/// What the peer did wrong. Each is counted by the end that saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerMisbehavior {
    /// The producer published a tail more than `slots` ahead of the
    /// consumer's head.
    TailOverrun {
        /// The tail read.
        tail: u32,
        /// The consumer's head.
        head: u32,
    },
    /// The producer published a tail behind one it had already published
    /// (taking back descriptors), or behind the consumer's head.
    TailBackwards {
        /// The tail read.
        tail: u32,
        /// The tail seen before (never behind the head).
        seen: u32,
    },
    /// The consumer moved its head backwards.
    HeadBackwards {
        /// The head read.
        head: u32,
        /// The head seen before.
        seen: u32,
    },
    /// The consumer wrote a value other than 0 or 1 into
    /// `consumer_signalled` (treated as a request: a spurious notification
    /// is harmless, a lost one is not).
    BadSignalFlag(u32),
}

impl core::fmt::Display for PeerMisbehavior {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            PeerMisbehavior::TailOverrun { tail, head } => {
                write!(
                    f,
                    "producer published tail {tail}, over a full ring past head {head}"
                )
            }
            PeerMisbehavior::TailBackwards { tail, seen } => {
                write!(f, "producer moved its tail back to {tail} from {seen}")
            }
            PeerMisbehavior::HeadBackwards { head, seen } => {
                write!(f, "consumer moved its head back to {head} from {seen}")
            }
            PeerMisbehavior::BadSignalFlag(v) => {
                write!(f, "consumer wrote {v} into consumer_signalled")
            }
        }
    }
}

/// Why a descriptor could not be enqueued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnqueueError {
    /// Every slot is in use.
    Full,
    /// The consumer broke the protocol.
    Peer(PeerMisbehavior),
}

impl core::fmt::Display for EnqueueError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EnqueueError::Full => f.write_str("ring is full"),
            EnqueueError::Peer(e) => e.fmt(f),
        }
    }
}

/// `a` is behind `b` in free-running (wrapping) index arithmetic.
fn behind(a: u32, b: u32) -> bool {
    // A distance below 2^31 going back from `b` to `a`.
    let back = b.wrapping_sub(a);
    back != 0 && back <= i32::MAX as u32
}

/// The shared part both ends point at.
struct Shared {
    header: *const Header,
    slots: *mut Desc,
    mask: u32,
}

impl Shared {
    /// # Safety
    /// `header` must point to a live `Header` and `slots` to `n` live
    /// descriptors (`n` a power of two, at least 1), both for as long as the
    /// end that owns the returned value exists.
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
        // SAFETY: i <= mask < n, so the slot is inside the region `new` was
        // given; any 16 bytes are a valid `Desc`; the slot pointer is 8-byte
        // aligned (region aligned to 8, header 64 bytes); volatile because
        // the peer shares the memory and may write it at any time.
        unsafe { self.slots.add(i).read_volatile() }
    }

    fn write(&self, index: u32, d: Desc) {
        let i = (index & self.mask) as usize;
        // SAFETY: as in `read`; only the producer writes slots, and it owns
        // the slot at its tail until it publishes the tail.
        unsafe { self.slots.add(i).write_volatile(d) }
    }

    fn size(&self) -> u32 {
        self.mask + 1
    }
}

/// Bumps an epoch this side owns, skipping 0 ("never attached").
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
/// `base` must point to `len` bytes of one allocation (or `len` must be
/// too small for the ring): the slots pointer is computed inside it.
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
    if base.is_null() || (base as usize) & (REGION_ALIGN - 1) != 0 {
        return Err(AttachError::Misaligned);
    }
    // SAFETY: HEADER_BYTES < region_bytes(slots) <= len, checked above, so
    // the result is inside the region the caller vouches for.
    let slots_ptr = unsafe { base.add(HEADER_BYTES) }.cast::<Desc>();
    Ok((base.cast::<Header>().cast_const(), slots_ptr))
}

/// Adds one to a misbehaviour counter, saturating.
fn count(counter: &mut u32) {
    *counter = counter.saturating_add(1);
}

/// The producing end: the only one that can [`enqueue`](Producer::enqueue).
pub struct Producer {
    ring: Shared,
    /// Shadow of `tail`: the next slot to fill.
    tail: u32,
    /// The last plausible `head` read.
    head_seen: u32,
    peer_epoch: u32,
    epoch: u32,
    misbehavior: u32,
}

// SAFETY: the end owns its view of shared memory; moving it to another
// thread (or process) is what shared memory is for.
unsafe impl Send for Producer {}

impl Producer {
    /// Attaches the producing end of the ring of `slots` descriptors in the
    /// `len` bytes at `base`, continuing from the tail in shared memory (a
    /// restarted PD carries on where the ring is) and bumping the producer
    /// epoch. If the shared indices are impossible (`tail - head > slots`),
    /// the tail is reset to the head (the ring restarts empty) and that is
    /// counted as misbehaviour.
    ///
    /// Checks: `slots` is a power of two in `2..=65536`, `len >=
    /// region_bytes(slots)`, `base` non-null and 8-byte aligned.
    ///
    /// # Safety
    /// `base` must point to `len` bytes of memory, readable and writable,
    /// that stay mapped for the life of the `Producer`, that nothing accesses
    /// except the two ends of this ring (through this crate or the same
    /// protocol, atomically for the header), and no other `Producer` may
    /// exist for the ring.
    pub unsafe fn attach(base: *mut u8, len: usize, slots: u32) -> Result<Producer, AttachError> {
        // SAFETY: the caller vouches for `len` bytes at `base`.
        let (header, descs) = unsafe { split(base, len, slots)? };
        // SAFETY: `split` checked the region holds the header and `slots`
        // descriptors; the caller keeps it mapped while the end lives.
        Ok(unsafe { Producer::from_parts(Shared::new(header, descs, slots)) })
    }

    /// # Safety
    /// As for [`Producer::attach`], with `ring` built over such memory.
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
            count(&mut p.misbehavior);
            p.tail = head;
            p.ring.h().tail.store(head, Ordering::Release);
        }
        p.epoch = bump(&p.ring.h().producer_epoch);
        p
    }

    /// The number of slots.
    pub fn slots(&self) -> u32 {
        self.ring.size()
    }

    /// This side's epoch, as set when attaching.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Protocol violations seen from the consumer since attaching.
    pub fn misbehavior_count(&self) -> u32 {
        self.misbehavior
    }

    /// Descriptors enqueued and not yet seen consumed (as of the last look
    /// at the head: [`Producer::refresh`] looks again).
    pub fn len(&self) -> u32 {
        self.tail.wrapping_sub(self.head_seen)
    }

    /// Whether every descriptor enqueued has been seen consumed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The descriptors enqueued and not yet consumed, as the ring holds
    /// them now (the head is looked at again first): what a restarted
    /// producer's earlier life left in flight. The consumer may take some
    /// meanwhile; none it has not taken is missed. Each comes with its
    /// index on the ring (as [`Producer::position`] counts).
    pub fn in_flight(&mut self, mut each: impl FnMut(u32, Desc)) -> Result<(), PeerMisbehavior> {
        self.refresh()?;
        for i in 0..self.len() {
            let at = self.head_seen.wrapping_add(i);
            each(at, self.ring.read(at));
        }
        Ok(())
    }

    /// The consumer's head as last seen: descriptors before it are taken
    /// ([`Producer::refresh`] looks again).
    pub fn consumed(&self) -> u32 {
        self.head_seen
    }

    /// The index the next descriptor will be enqueued at (counting every
    /// descriptor the ring ever carried, wrapping): the consumer's
    /// [`Consumer::position`] when it reaches that descriptor.
    pub fn position(&self) -> u32 {
        self.tail
    }

    /// What the slot before the tail holds: the last descriptor enqueued,
    /// by this or an earlier life of the producer (all zero if none ever
    /// was).
    pub fn last_enqueued(&self) -> Desc {
        self.ring.read(self.tail.wrapping_sub(1))
    }

    /// Whether the ring looked full at the last look at the head.
    pub fn is_full(&self) -> bool {
        self.len() >= self.ring.size()
    }

    /// Free slots now (the head is looked at again first; a consumer
    /// breaking the rules counts as no room).
    pub fn room(&mut self) -> u32 {
        if self.refresh().is_err() {
            return 0;
        }
        self.ring.size().saturating_sub(self.len())
    }

    /// Reads the consumer's head, checking it lies between the head seen
    /// before and the tail.
    ///
    /// A head *ahead* of the tail means the consumer took descriptors this
    /// end never published: the shared tail was written by someone else (a
    /// corrupted or garbage-writing life of this PD, maybe more than once,
    /// so by more than `slots` in all), or the consumer lies. Either way the
    /// ring cannot go on from the old tail (every descriptor published from
    /// it would look taken back to the consumer, for ever), so the tail
    /// catches up with the head, however far ahead: the ring goes on
    /// empty, and that is counted as misbehaviour. Only a head moved back
    /// is refused.
    ///
    /// A shared tail *ahead* of this end's own (by at most `slots`, and at
    /// most `slots` past the head) was published by someone else too: a
    /// garbage-writing life of this PD. The consumer may be reading those
    /// slots right now, so this end never writes into them: its tail moves
    /// past them (counted as misbehaviour) and the consumer takes them as
    /// the garbage they are. Writing a real descriptor over one instead
    /// races the consumer, which may read the slot half-written (the real
    /// length and meta with a garbage offset: wrong bytes delivered as
    /// good), or take the garbage and step over the real one (a message
    /// lost).
    pub fn refresh(&mut self) -> Result<(), PeerMisbehavior> {
        let head = self.ring.h().head.load(Ordering::Acquire);
        // Our own field: nobody else should write it, so no ordering.
        let shared = self.ring.h().tail.load(Ordering::Relaxed);
        let ahead = shared.wrapping_sub(self.tail);
        if ahead != 0
            && ahead <= self.ring.size()
            && shared.wrapping_sub(head) <= self.ring.size()
            && !behind(head, self.head_seen)
        {
            count(&mut self.misbehavior);
            self.tail = shared;
        }
        let advanced = head.wrapping_sub(self.head_seen);
        if advanced > self.len() {
            count(&mut self.misbehavior);
            if behind(head, self.head_seen) {
                return Err(PeerMisbehavior::HeadBackwards {
                    head,
                    seen: self.head_seen,
                });
            }
            self.tail = head;
            self.head_seen = head;
            self.ring.h().tail.store(head, Ordering::Release);
            return Ok(());
        }
        self.head_seen = head;
        Ok(())
    }

    /// Adds a descriptor and publishes it. The head is read first every
    /// time (as sDDF's queues do), so a consumer that ran ahead of the tail
    /// is caught up with before the descriptor is written (see
    /// [`Producer::refresh`]); an impossible head is counted, and the last
    /// good one is used.
    pub fn enqueue(&mut self, desc: Desc) -> Result<(), EnqueueError> {
        let fresh = self.refresh();
        if self.is_full() {
            fresh.map_err(EnqueueError::Peer)?;
            return Err(EnqueueError::Full);
        }
        self.ring.write(self.tail, desc);
        self.tail = self.tail.wrapping_add(1);
        self.ring.h().tail.store(self.tail, Ordering::Release);
        Ok(())
    }

    /// After enqueueing one or more descriptors: whether the consumer asked
    /// to be notified. If so, the request is cancelled here and the caller
    /// must notify the consumer. A flag other than 0 or 1 counts as
    /// misbehaviour and is treated as a request.
    pub fn must_notify(&mut self) -> bool {
        self.must_notify_impl(true)
    }

    fn must_notify_impl(&mut self, with_fence: bool) -> bool {
        if with_fence {
            // Orders the tail published before against the flag read below
            // (pairs with the fence in `Consumer::request_signal`).
            fence(Ordering::SeqCst);
        }
        let h = self.ring.h();
        match h.consumer_signalled.load(Ordering::Relaxed) {
            SIGNAL_CANCELLED => false,
            flag => {
                if flag != SIGNAL_REQUESTED {
                    count(&mut self.misbehavior);
                }
                h.consumer_signalled
                    .store(SIGNAL_CANCELLED, Ordering::Relaxed);
                true
            }
        }
    }

    /// Deliberately broken [`Producer::must_notify`] without the fence: only
    /// for the loom test that shows the check can fail.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn must_notify_without_fence(&mut self) -> bool {
        self.must_notify_impl(false)
    }

    /// The consumer's epoch now (0: it never attached).
    pub fn peer_epoch(&self) -> u32 {
        self.ring.h().consumer_epoch.load(Ordering::Acquire)
    }

    /// Whether the consumer's epoch changed since the last call (or since
    /// attaching): it (re)attached, so its protocol state may need
    /// resynchronising.
    pub fn peer_restarted(&mut self) -> bool {
        let e = self.peer_epoch();
        let changed = e != self.peer_epoch;
        self.peer_epoch = e;
        changed
    }
}

/// The consuming end: the only one that can [`dequeue`](Consumer::dequeue).
pub struct Consumer {
    ring: Shared,
    /// Shadow of `head`: the next slot to take.
    head: u32,
    /// The last plausible `tail` read (`head <= tail_seen <= head + slots`).
    tail_seen: u32,
    peer_epoch: u32,
    epoch: u32,
    misbehavior: u32,
}

// SAFETY: as for `Producer`.
unsafe impl Send for Consumer {}

impl Consumer {
    /// Attaches the consuming end, continuing from the head in shared memory
    /// and bumping the consumer epoch. An impossible tail at this point is
    /// counted and ignored: nothing is read until the producer publishes a
    /// plausible one. Checks as for [`Producer::attach`].
    ///
    /// # Safety
    /// As for [`Producer::attach`], with no other `Consumer` for the ring.
    pub unsafe fn attach(base: *mut u8, len: usize, slots: u32) -> Result<Consumer, AttachError> {
        // SAFETY: the caller vouches for `len` bytes at `base`.
        let (header, descs) = unsafe { split(base, len, slots)? };
        // SAFETY: `split` checked the region holds the header and `slots`
        // descriptors; the caller keeps it mapped while the end lives.
        Ok(unsafe { Consumer::from_parts(Shared::new(header, descs, slots)) })
    }

    /// # Safety
    /// As for [`Consumer::attach`], with `ring` built over such memory.
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
        let _ = c.refresh();
        c.epoch = bump(&c.ring.h().consumer_epoch);
        c
    }

    /// The number of slots.
    pub fn slots(&self) -> u32 {
        self.ring.size()
    }

    /// This side's epoch, as set when attaching.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Protocol violations seen from the producer since attaching.
    pub fn misbehavior_count(&self) -> u32 {
        self.misbehavior
    }

    /// Reads the producer's tail, checking it is neither behind the tail
    /// seen before nor more than `slots` ahead of the head.
    ///
    /// A tail between the head and the tail seen before took back
    /// descriptors not yet taken (a garbage-writing life of the producer
    /// published some from a tail its own thread then wrote over): it is
    /// counted and reported once, and the ring goes on from it, since
    /// waiting for the producer to publish past the old one could wait for
    /// ever. A tail behind the head is refused until the producer catches
    /// up with the head ([`Producer::refresh`]).
    pub fn refresh(&mut self) -> Result<(), PeerMisbehavior> {
        let tail = self.ring.h().tail.load(Ordering::Acquire);
        let available = tail.wrapping_sub(self.head);
        if available <= self.ring.size() && available < self.len() {
            count(&mut self.misbehavior);
            let seen = self.tail_seen;
            self.tail_seen = tail;
            return Err(PeerMisbehavior::TailBackwards { tail, seen });
        }
        if available > self.ring.size() {
            count(&mut self.misbehavior);
            return Err(if behind(tail, self.tail_seen) {
                PeerMisbehavior::TailBackwards {
                    tail,
                    seen: self.tail_seen,
                }
            } else {
                PeerMisbehavior::TailOverrun {
                    tail,
                    head: self.head,
                }
            });
        }
        self.tail_seen = tail;
        Ok(())
    }

    /// The index of the next descriptor to take (counting every descriptor
    /// the ring ever carried, wrapping).
    pub fn position(&self) -> u32 {
        self.head
    }

    /// Descriptors known to be waiting (as of the last look at the tail:
    /// [`Consumer::refresh`] looks again).
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
            self.refresh()?;
            if i >= self.len() {
                return Ok(None);
            }
        }
        Ok(Some(self.ring.read(self.head.wrapping_add(i))))
    }

    /// Consumes the first `n` waiting descriptors (at most those known to be
    /// waiting) and publishes the head. Never fails today: the peer's values
    /// are checked by `peek`.
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

    /// Before waiting: asks for a signal, then looks at the tail again.
    /// `true`: still empty, safe to wait for the notification. `false`:
    /// descriptors are waiting (they arrived meanwhile, or were not
    /// drained); the request is cancelled and the caller keeps draining.
    /// An impossible tail is counted and treated as "nothing usable": wait.
    pub fn request_signal(&mut self) -> bool {
        self.request_signal_impl(true, true)
    }

    fn request_signal_impl(&mut self, with_fence: bool, recheck: bool) -> bool {
        let flag = &self.ring.h().consumer_signalled;
        flag.store(SIGNAL_REQUESTED, Ordering::Relaxed);
        if with_fence {
            // Orders the request above against the tail read below (pairs
            // with the fence in `Producer::must_notify`).
            fence(Ordering::SeqCst);
        }
        if recheck {
            let _ = self.refresh();
        }
        if self.is_empty() {
            return true;
        }
        self.ring
            .h()
            .consumer_signalled
            .store(SIGNAL_CANCELLED, Ordering::Relaxed);
        false
    }

    /// Deliberately broken [`Consumer::request_signal`] that does not look
    /// at the tail again: only for the loom test that shows the check can
    /// fail.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn request_signal_without_recheck(&mut self) -> bool {
        self.request_signal_impl(true, false)
    }

    /// Deliberately broken [`Consumer::request_signal`] without the fence:
    /// only for the loom test that shows the check can fail.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn request_signal_without_fence(&mut self) -> bool {
        self.request_signal_impl(false, true)
    }

    /// The producer's epoch now (0: it never attached).
    pub fn peer_epoch(&self) -> u32 {
        self.ring.h().producer_epoch.load(Ordering::Acquire)
    }

    /// Whether the producer's epoch changed since the last call (or since
    /// attaching): it (re)attached, so its protocol state may need
    /// resynchronising.
    pub fn peer_restarted(&mut self) -> bool {
        let e = self.peer_epoch();
        let changed = e != self.peer_epoch;
        self.peer_epoch = e;
        changed
    }
}

// The unit tests use the byte-region `OwnedRing`, not the loom one.
#[cfg(all(test, not(loom)))]
mod tests;
