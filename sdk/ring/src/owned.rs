//! A ring in ordinary memory, for tests, model checking and benchmarks.

use crate::sync::{AtomicU32, Ordering};
use crate::{Consumer, Desc, Header, Producer, Shared};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::UnsafeCell;

/// A ring on the heap, leaked so that its ends can be `'static`: made once
/// per test, it lives until the process ends.
pub struct OwnedRing {
    header: Header,
    slots: Box<[UnsafeCell<Desc>]>,
}

// SAFETY: the header is atomics; slots are only touched through the ends,
// whose protocol orders the accesses (and the tests that poke them on purpose
// play a hostile peer, which is what the ends must survive).
unsafe impl Sync for OwnedRing {}

/// A header field, for tests that play a hostile peer.
#[derive(Clone, Copy, Debug)]
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

impl OwnedRing {
    /// An empty ring of `slots` (a power of two, 2..=65536), leaked.
    pub fn new(slots: u32) -> &'static OwnedRing {
        assert!(slots.is_power_of_two() && (crate::MIN_SLOTS..=crate::MAX_SLOTS).contains(&slots));
        let slots: Vec<UnsafeCell<Desc>> = (0..slots)
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
            slots: slots.into_boxed_slice(),
        }))
    }

    fn shared(&'static self) -> Shared {
        let n = self.slots.len() as u32;
        // `UnsafeCell<Desc>` has the layout of `Desc`, so the cells are an
        // array of descriptors.
        let first = UnsafeCell::raw_get(self.slots.as_ptr());
        // SAFETY: header and slots are leaked, so live for ever.
        unsafe { Shared::new(&self.header, first, n) }
    }

    /// Attaches a producer end (again, after a simulated restart).
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

    /// Writes a descriptor slot as a hostile peer would.
    pub fn poke_slot(&self, index: usize, desc: Desc) {
        if let Some(cell) = self.slots.get(index) {
            // SAFETY: a volatile write into a live slot; readers use
            // volatile reads and accept any bytes.
            unsafe { cell.get().write_volatile(desc) };
        }
    }
}
