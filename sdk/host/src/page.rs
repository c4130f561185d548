//! The status page: a small shared mapping between one PD process and the
//! supervisor, playing the part of the kernel's view of a thread. The PD's
//! runtime writes it; the supervisor only reads numbers from it (the PD is
//! untrusted, so any value is possible and is checked before use).

use std::sync::atomic::{AtomicU64, Ordering};

/// Size of the page.
pub const PAGE_BYTES: usize = 4096;

const IN_CALL_VALID: u64 = 1 << 63;

/// The page's fields.
#[repr(C)]
pub struct StatusPage {
    /// The protected call being served: valid bit, channel id, caller's seq.
    in_call: AtomicU64,
    /// `notified` calls made.
    pub notified: AtomicU64,
    /// Protected calls served.
    pub calls: AtomicU64,
    /// Handler errors.
    pub errors: AtomicU64,
    /// Heartbeats answered.
    pub heartbeats: AtomicU64,
    /// Malformed packets from neighbours, dropped.
    pub bad_packets: AtomicU64,
    /// CLOCK_MONOTONIC time of the first `notified` of this incarnation
    /// (0 until then): recovery is measured up to here.
    pub first_notified_ns: AtomicU64,
}

impl StatusPage {
    /// Views a mapping of at least [`PAGE_BYTES`] as a status page.
    ///
    /// # Safety
    /// `ptr` must point to a live, 8-byte-aligned shared mapping of at least
    /// `PAGE_BYTES` bytes that stays mapped for `'static`, only ever accessed
    /// through atomics.
    pub unsafe fn from_ptr(ptr: *mut u8) -> &'static StatusPage {
        // SAFETY: the caller guarantees size, alignment and lifetime; every
        // field is an atomic integer, valid for any bit pattern.
        unsafe { &*(ptr as *const StatusPage) }
    }

    /// Records that the PD is serving call `seq` on channel `ch`.
    pub fn enter_call(&self, ch: u8, seq: u32) {
        self.in_call.store(
            IN_CALL_VALID | (u64::from(ch) << 32) | u64::from(seq),
            Ordering::Release,
        );
    }

    /// Records that the call has been answered.
    pub fn leave_call(&self) {
        self.in_call.store(0, Ordering::Release);
    }

    /// The call being served, if any: (channel id, seq).
    pub fn in_call(&self) -> Option<(u64, u32)> {
        let v = self.in_call.load(Ordering::Acquire);
        (v & IN_CALL_VALID != 0).then_some(((v >> 32) & 0x7fff_ffff, v as u32))
    }

    /// Forgets what belongs to the previous incarnation (before a restart).
    pub fn reset_for_start(&self) {
        self.leave_call();
        self.first_notified_ns.store(0, Ordering::Release);
    }
}

const _: () = assert!(std::mem::size_of::<StatusPage>() <= PAGE_BYTES);
