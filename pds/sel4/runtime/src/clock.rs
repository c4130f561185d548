//! Time for [`axolotl_sdk::Os::now`], in nanoseconds since the machine
//! started counting.
//!
//! - aarch64: the generic timer's physical counter, which Microkit's kernel
//!   configuration lets user level read (`CNTPCT_EL0`, `CNTFRQ_EL0`).
//! - x86_64: the HPET's main counter, for PDs that map the region named
//!   [`HPET_REGION`] (the runtime finds it among the PD's regions before
//!   `init`); other PDs have no clock there and read 0. The timer driver and
//!   the monitor map it writable and start it; the network PDs map it
//!   read-only and only read the counter.

#[cfg(target_arch = "aarch64")]
mod imp {
    /// The physical counter and its frequency.
    pub fn counter() -> (u64, u64) {
        let (count, freq): (u64, u64);
        // SAFETY: reading CNTPCT_EL0 and CNTFRQ_EL0 has no side effects, and
        // the kernel lets user level read them.
        unsafe {
            core::arch::asm!("isb", "mrs {}, cntpct_el0", out(reg) count, options(nomem, nostack));
            core::arch::asm!("mrs {}, cntfrq_el0", out(reg) freq, options(nomem, nostack));
        }
        (count, freq)
    }

    pub fn now_ns() -> u64 {
        let (count, freq) = counter();
        super::ticks_to_ns(count, freq)
    }
}

#[cfg(target_arch = "x86_64")]
mod imp {
    use core::sync::atomic::{AtomicUsize, Ordering};

    pub(super) static HPET: AtomicUsize = AtomicUsize::new(0);

    pub fn now_ns() -> u64 {
        match HPET.load(Ordering::Relaxed) {
            0 => 0,
            base => {
                // SAFETY: use_hpet's caller guarantees the mapping.
                let hpet = unsafe { crate::clock::Hpet::at(base) };
                hpet.now_ns()
            }
        }
    }
}

pub use imp::*;

/// Counter ticks at `freq` Hz to nanoseconds.
pub fn ticks_to_ns(ticks: u64, freq: u64) -> u64 {
    if freq == 0 {
        return 0;
    }
    ((u128::from(ticks) * 1_000_000_000) / u128::from(freq)) as u64
}

/// Nanoseconds to counter ticks at `freq` Hz.
pub fn ns_to_ticks(ns: u64, freq: u64) -> u64 {
    ((u128::from(ns) * u128::from(freq)) / 1_000_000_000) as u64
}

/// The x86 HPET's registers, mapped uncached at some address.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub struct Hpet {
    base: usize,
}

#[cfg(target_arch = "x86_64")]
impl Hpet {
    const CAPS: usize = 0x000;
    const CONFIG: usize = 0x010;
    const COUNTER: usize = 0x0f0;
    const ENABLE: u64 = 1 << 0;
    const LEGACY_ROUTE: u64 = 1 << 1;

    /// # Safety
    /// The HPET's 4 KiB of registers must be mapped uncached at `base` for
    /// as long as the result is used.
    pub unsafe fn at(base: usize) -> Hpet {
        Hpet { base }
    }

    fn read(&self, off: usize) -> u64 {
        // SAFETY: `at`'s caller guarantees the mapping; the offsets used are
        // 8-byte aligned registers inside the 4 KiB page.
        unsafe { core::ptr::read_volatile((self.base + off) as *const u64) }
    }

    fn write(&self, off: usize, v: u64) {
        // SAFETY: as for read.
        unsafe { core::ptr::write_volatile((self.base + off) as *mut u64, v) }
    }

    /// Counter frequency in Hz (from the period in femtoseconds).
    pub fn freq(&self) -> u64 {
        let period_fs = self.read(Self::CAPS) >> 32;
        if period_fs == 0 {
            return 0;
        }
        1_000_000_000_000_000 / period_fs
    }

    /// Starts the main counter with legacy interrupt routing (timer 0 on
    /// IRQ 0, timer 1 on IRQ 8). Idempotent: the timer driver and the
    /// monitor both call it.
    pub fn enable(&self) {
        let c = self.read(Self::CONFIG);
        let want = c | Self::ENABLE | Self::LEGACY_ROUTE;
        if c != want {
            self.write(Self::CONFIG, want);
        }
    }

    /// The main counter.
    pub fn counter(&self) -> u64 {
        self.read(Self::COUNTER)
    }

    /// The main counter in nanoseconds.
    pub fn now_ns(&self) -> u64 {
        ticks_to_ns(self.counter(), self.freq())
    }

    /// Timer `n` (0 or 1) raises its interrupt (edge) once the counter
    /// reaches `at_ns`, or at once if it has; `None` disables it.
    pub fn set_alarm(&self, n: usize, at_ns: Option<u64>) {
        let cfg = 0x100 + 0x20 * n;
        let cmp = 0x108 + 0x20 * n;
        const INT_ENABLE: u64 = 1 << 2;
        let Some(at_ns) = at_ns else {
            self.write(cfg, self.read(cfg) & !INT_ENABLE);
            return;
        };
        let freq = self.freq();
        let mut target = ns_to_ticks(at_ns, freq);
        // The comparator fires when the counter *equals* it: never set it
        // behind (or just ahead of) the counter.
        let min_ahead = freq / 100_000 + 1; // 10 us
        let mut ahead = min_ahead;
        // One-shot, edge-triggered, 64-bit.
        self.write(cfg, (self.read(cfg) & !(1 << 3 | 1 << 1)) | INT_ENABLE);
        for _ in 0..16 {
            let now = self.counter();
            if target < now + ahead {
                target = now + ahead;
            }
            self.write(cmp, target);
            if self.counter() < target {
                return;
            }
            ahead = ahead.saturating_mul(2);
        }
    }
}

/// The name of the memory region that is the HPET (x86_64's clock).
pub const HPET_REGION: &str = "hpet";

/// Gives this PD's [`now_ns`] the HPET mapped at `base` (and starts it).
///
/// # Safety
/// As for [`Hpet::at`], for the rest of the PD's life.
#[cfg(target_arch = "x86_64")]
pub unsafe fn use_hpet(base: usize) {
    // SAFETY: passed on from the caller.
    let hpet = unsafe { Hpet::at(base) };
    hpet.enable();
    imp::HPET.store(base, core::sync::atomic::Ordering::Relaxed);
}

/// Sets up [`now_ns`] from the PD's regions: on x86_64 the HPET, if the PD
/// maps it (started if the map is writable, only read otherwise); on
/// aarch64 nothing is needed.
pub(crate) fn attach(regions: &[axolotl_sdk::config::Region]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(r) = regions.iter().find(|r| r.name == HPET_REGION) {
        if r.writable {
            // SAFETY: system.xml maps the HPET's registers at this address
            // for the life of the PD (the runtime maps every region before
            // init); it must be mapped uncached, as every device is.
            unsafe { use_hpet(r.vaddr) };
        } else {
            imp::HPET.store(r.vaddr, core::sync::atomic::Ordering::Relaxed);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = regions;
}
