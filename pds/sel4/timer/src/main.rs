//! The timer driver PD on seL4: the portable `axolotl-timer` driver over
//! the board's timer (aarch64: the generic timer's physical timer, which
//! Microkit lets user level program; x86_64: HPET timer 0).
#![no_std]
#![no_main]

use axolotl_sdk::Instant;
use axolotl_timer::{TimerDriver, TimerHw};

axolotl_sdk::include_pd!();

#[cfg(target_arch = "aarch64")]
mod hw {
    use super::*;
    use axolotl_sel4::clock;

    pub struct Hw;

    pub fn new() -> Hw {
        Hw
    }

    impl TimerHw for Hw {
        fn now(&self) -> Instant {
            Instant(clock::now_ns())
        }

        fn set_alarm(&mut self, at: Option<Instant>) {
            match at {
                None => {
                    // SAFETY: disabling the EL0 physical timer, which the
                    // kernel exports to user level and only this PD uses.
                    unsafe { core::arch::asm!("msr cntp_ctl_el0, {}", in(reg) 0u64) };
                }
                Some(at) => {
                    let (_, freq) = clock::counter();
                    let cval = clock::ns_to_ticks(at.as_nanos(), freq);
                    // SAFETY: as above; compare value first, then enable
                    // with the interrupt unmasked.
                    unsafe {
                        core::arch::asm!("msr cntp_cval_el0, {}", in(reg) cval);
                        core::arch::asm!("msr cntp_ctl_el0, {}", "isb", in(reg) 1u64);
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod hw {
    use super::*;
    use axolotl_sel4::clock::{self, Hpet};

    pub struct Hw(Hpet);

    pub fn new() -> Hw {
        let r = pd::region::HPET;
        // SAFETY: system.xml maps the HPET's page uncached at this address
        // for the life of the PD.
        unsafe { clock::use_hpet(r.vaddr) };
        // SAFETY: as above.
        Hw(unsafe { Hpet::at(r.vaddr) })
    }

    impl TimerHw for Hw {
        fn now(&self) -> Instant {
            Instant(self.0.now_ns())
        }

        fn set_alarm(&mut self, at: Option<Instant>) {
            self.0.set_alarm(0, at.map(Instant::as_nanos));
        }
    }
}

#[sel4_microkit::protection_domain(stack_size = 0x10000, heap_size = 0x10000)]
fn init() -> impl sel4_microkit::Handler {
    axolotl_sel4::adapt(axolotl_sel4::config!(), |os| {
        TimerDriver::init(os, hw::new(), pd::irq::TIMER, pd::TICKS, pd::TIMER_CLIENTS)
    })
}
