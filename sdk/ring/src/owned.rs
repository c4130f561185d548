//! A ring in ordinary memory, for tests, model checking and benchmarks
//! (feature `alloc`).
//!
//! Normally the ring is a heap region of exactly [`region_bytes`] bytes,
//! 8-byte aligned, and the ends are made by the public `attach` functions,
//! so tests exercise the same checks a PD does. Under `--cfg loom` the header
//! is a struct of loom's atomics instead (loom's atomics are not 4 bytes).

#[cfg(not(loom))]
use crate::{region_bytes, sync::AtomicU32, sync::Ordering};
#[cfg(loom)]
use crate::{sync::AtomicU32, sync::Ordering, Header, Shared};
use crate::{Consumer, Desc, Producer};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::UnsafeCell;

/// A header field, for tests that play a hostile peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// `tail`.
    Tail,
    /// `head`.
    Head,
    /// `consumer_signalled`.
    ConsumerSignalled,
    /// `producer_epoch`.
    ProducerEpoch,
    /// `consumer_epoch`.
    ConsumerEpoch,
}

/// A ring on the heap, leaked so that its ends need no lifetime: made once
/// per test or benchmark, it lives until the process ends. Attach ends with
/// [`OwnedRing::producer`] and [`OwnedRing::consumer`] (each call is a
/// (re)attach, as after a restart); play a hostile peer with
/// [`OwnedRing::poke`] and [`OwnedRing::poke_slot`].
///
/// Keep at most one live end of each role at a time, as in a real system;
/// an end made by a re-attach replaces the previous one.
#[cfg(not(loom))]
pub struct OwnedRing {
    /// Exactly `region_bytes(slots)` bytes, as 8-byte words for alignment.
    mem: Box<[UnsafeCell<u64>]>,
    slots: u32,
}

/// A ring on the heap (loom variant: the header is loom's atomics).
#[cfg(loom)]
pub struct OwnedRing {
    header: Header,
    descs: Box<[UnsafeCell<Desc>]>,
}

// SAFETY: the header is only accessed as atomics; slots are only touched
// through the ends, whose protocol orders the accesses, and through the
// volatile pokes of tests that play a hostile peer on one thread.
unsafe impl Sync for OwnedRing {}

#[cfg(not(loom))]
impl OwnedRing {
    /// An empty ring of `slots` (a power of two, 2..=65536), zeroed and
    /// leaked. Panics on a bad `slots`.
    pub fn new(slots: u32) -> &'static OwnedRing {
        assert!(
            slots.is_power_of_two() && (crate::MIN_SLOTS..=crate::MAX_SLOTS).contains(&slots),
            "bad slots {slots}"
        );
        let words = region_bytes(slots) / 8;
        let mem: Vec<UnsafeCell<u64>> = (0..words).map(|_| UnsafeCell::new(0)).collect();
        Box::leak(Box::new(OwnedRing {
            mem: mem.into_boxed_slice(),
            slots,
        }))
    }

    /// The region: exactly `region_bytes(slots)` bytes, 8-byte aligned.
    pub fn base(&self) -> *mut u8 {
        UnsafeCell::raw_get(self.mem.as_ptr()).cast::<u8>()
    }

    /// Bytes of the region.
    pub fn region_len(&self) -> usize {
        region_bytes(self.slots)
    }

    /// Attaches a producer end (again, after a simulated restart).
    pub fn producer(&'static self) -> Producer {
        // SAFETY: the region is leaked, so mapped for ever, and only reached
        // through ends and atomic or volatile pokes.
        unsafe { Producer::attach(self.base(), self.region_len(), self.slots) }
            .expect("an owned region always fits")
    }

    /// Attaches a consumer end.
    pub fn consumer(&'static self) -> Consumer {
        // SAFETY: as for `producer`.
        unsafe { Consumer::attach(self.base(), self.region_len(), self.slots) }
            .expect("an owned region always fits")
    }

    fn field(&self, field: Field) -> &AtomicU32 {
        let offset = match field {
            Field::Tail => crate::TAIL_OFFSET,
            Field::Head => crate::HEAD_OFFSET,
            Field::ConsumerSignalled => crate::CONSUMER_SIGNALLED_OFFSET,
            Field::ProducerEpoch => crate::PRODUCER_EPOCH_OFFSET,
            Field::ConsumerEpoch => crate::CONSUMER_EPOCH_OFFSET,
        };
        // SAFETY: every offset is below 20 and a multiple of 4, inside the
        // 8-aligned region; the header is only ever accessed atomically.
        unsafe { AtomicU32::from_ptr(self.base().add(offset).cast::<u32>()) }
    }

    /// Reads a header field.
    pub fn get(&self, field: Field) -> u32 {
        self.field(field).load(Ordering::Acquire)
    }

    /// Writes a header field as a hostile peer would.
    pub fn poke(&self, field: Field, value: u32) {
        self.field(field).store(value, Ordering::Release);
    }

    /// Reads descriptor slot `index` (ignored past the end: `None`).
    pub fn slot(&self, index: usize) -> Option<Desc> {
        if index >= self.slots as usize {
            return None;
        }
        // SAFETY: the slot lies inside the region (index < slots), 8-aligned.
        Some(unsafe {
            self.base()
                .add(crate::HEADER_BYTES + index * crate::DESC_BYTES)
                .cast::<Desc>()
                .read_volatile()
        })
    }

    /// Writes descriptor slot `index` as a hostile peer would (ignored past
    /// the end).
    pub fn poke_slot(&self, index: usize, desc: Desc) {
        if index >= self.slots as usize {
            return;
        }
        // SAFETY: as in `slot`; readers use volatile reads and accept any
        // bytes.
        unsafe {
            self.base()
                .add(crate::HEADER_BYTES + index * crate::DESC_BYTES)
                .cast::<Desc>()
                .write_volatile(desc)
        }
    }
}

#[cfg(loom)]
impl OwnedRing {
    /// An empty ring of `slots` (a power of two, 2..=65536), leaked.
    pub fn new(slots: u32) -> &'static OwnedRing {
        assert!(slots.is_power_of_two() && (crate::MIN_SLOTS..=crate::MAX_SLOTS).contains(&slots));
        let descs: Vec<UnsafeCell<Desc>> = (0..slots)
            .map(|_| UnsafeCell::new(Desc::default()))
            .collect();
        Box::leak(Box::new(OwnedRing {
            header: Header {
                tail: AtomicU32::new(0),
                head: AtomicU32::new(0),
                consumer_signalled: AtomicU32::new(0),
                producer_epoch: AtomicU32::new(0),
                consumer_epoch: AtomicU32::new(0),
            },
            descs: descs.into_boxed_slice(),
        }))
    }

    fn shared(&'static self) -> Shared {
        let n = self.descs.len() as u32;
        // `UnsafeCell<Desc>` has the layout of `Desc`, so the cells are an
        // array of descriptors.
        let first = UnsafeCell::raw_get(self.descs.as_ptr());
        // SAFETY: header and slots are leaked, so live for ever.
        unsafe { Shared::new(&self.header, first, n) }
    }

    /// Attaches a producer end.
    pub fn producer(&'static self) -> Producer {
        // SAFETY: the memory lives for ever; tests keep one producer at a time.
        unsafe { Producer::from_parts(self.shared()) }
    }

    /// Attaches a consumer end.
    pub fn consumer(&'static self) -> Consumer {
        // SAFETY: as for `producer`.
        unsafe { Consumer::from_parts(self.shared()) }
    }

    /// Writes a header field as a hostile peer would.
    pub fn poke(&self, field: Field, value: u32) {
        let h = &self.header;
        let f = match field {
            Field::Tail => &h.tail,
            Field::Head => &h.head,
            Field::ConsumerSignalled => &h.consumer_signalled,
            Field::ProducerEpoch => &h.producer_epoch,
            Field::ConsumerEpoch => &h.consumer_epoch,
        };
        f.store(value, Ordering::Release);
    }
}
