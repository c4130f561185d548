//! The monitor PD (guardian) on seL4: the portable `axolotl-monitor`
//! component, with a second timer as its watchdog (aarch64: the PL031
//! real-time clock; x86_64: HPET timer 1), its log on the
//! console stream to the serial driver, and commands from it.
#![no_std]
#![no_main]

use axolotl_monitor::{Monitor, Watchdog};
use axolotl_ring::bytes::{ByteReader, ByteWriter};
use axolotl_ring::shared::SharedBytes;
use axolotl_sdk::Instant;

axolotl_sdk::include_pd!();

/// The channel on which the serial driver and the monitor tell each other
/// that console bytes wait (the second channel between them in system.xml;
/// the first is supervision).
const CONSOLE: axolotl_sdk::Channel = pd::channel::SERIAL_6;

#[cfg(target_arch = "aarch64")]
mod hw {
    use super::*;
    use axolotl_sel4::clock;

    /// The PL031 real-time clock: a seconds counter with a match interrupt.
    /// A watchdog of one-second grain, which is all a watchdog needs.
    pub struct Rtc(usize);

    const DR: usize = 0x00;
    const MR: usize = 0x04;
    const CR: usize = 0x0c;
    const IMSC: usize = 0x10;
    const ICR: usize = 0x1c;

    pub fn watchdog() -> Rtc {
        let rtc = Rtc(pd::region::RTC.vaddr);
        rtc.write(CR, 1);
        rtc
    }

    impl Rtc {
        fn read(&self, off: usize) -> u32 {
            // SAFETY: system.xml maps the PL031's page uncached at .0; the
            // offsets are its registers.
            unsafe { core::ptr::read_volatile((self.0 + off) as *const u32) }
        }
        fn write(&self, off: usize, v: u32) {
            // SAFETY: as for read.
            unsafe { core::ptr::write_volatile((self.0 + off) as *mut u32, v) }
        }
    }

    impl Watchdog for Rtc {
        fn arm(&mut self, at: Option<Instant>) {
            self.write(ICR, 1);
            let Some(at) = at else {
                self.write(IMSC, 0);
                return;
            };
            let ns = at.as_nanos().saturating_sub(clock::now_ns());
            // Whole seconds, at least one: the counter ticks once a second.
            let secs = ns.div_ceil(1_000_000_000).max(1) as u32;
            self.write(MR, self.read(DR).wrapping_add(secs));
            self.write(IMSC, 1);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod hw {
    use super::*;
    use axolotl_sel4::clock::{self, Hpet};

    pub struct Dog(Hpet);

    pub fn watchdog() -> Dog {
        let r = pd::region::HPET;
        // SAFETY: system.xml maps the HPET's page uncached at this address
        // for the life of the PD; this PD uses only its timer 1.
        unsafe { clock::use_hpet(r.vaddr) };
        // SAFETY: as above.
        Dog(unsafe { Hpet::at(r.vaddr) })
    }

    impl Watchdog for Dog {
        fn arm(&mut self, at: Option<Instant>) {
            self.0.set_alarm(1, at.map(Instant::as_nanos));
        }
    }
}

#[sel4_microkit::protection_domain(stack_size = 0x40000, heap_size = 0x20000)]
fn init() -> impl sel4_microkit::Handler {
    let (tx, rx) = (pd::region::CONSOLE_TX, pd::region::CONSOLE_RX);
    // SAFETY: Microkit maps both console regions read-write before init for
    // the life of the PD; this PD is the only writer of tx and the only
    // reader of rx.
    let (writer, reader) = unsafe {
        (
            ByteWriter::attach(tx.ptr(), tx.size),
            ByteReader::attach(rx.ptr(), rx.size),
        )
    };
    let sink = writer.ok().map(|writer| axolotl_sel4::ConsoleSink {
        writer,
        notify: sel4_microkit::Channel::new(CONSOLE.index() as usize),
    });
    axolotl_sel4::adapt_with_console(axolotl_sel4::config!(), sink, |os| {
        let monitor = Monitor::init(
            os,
            pd::CHILDREN,
            pd::TICK_CHANNEL,
            pd::TICK_SOURCE,
            Some((pd::irq::WATCHDOG, hw::watchdog())),
        )
        .with_parent(pd::PARENT_NAME);
        let monitor = match pd::MONITOR_STATE {
            // SAFETY: Microkit maps the region read-write before init; the
            // checker lets no other PD map it; this is the only reference.
            Some(r) => monitor.with_saved_state(os, unsafe { r.bytes_mut() }),
            None => monitor,
        };
        let monitor = match reader {
            Ok(r) => monitor.with_console(pd::NAME, CONSOLE, r),
            Err(e) => {
                log::error!("no console input: {e:?}");
                monitor
            }
        };
        match (pd::INCARNATIONS, pd::INCARNATIONS_CHANNEL) {
            (Some(r), Some(ch)) => {
                // SAFETY: Microkit maps the board read-write before init for
                // the life of the PD; the store may read it at any time, so
                // it is only ever written with volatile copies.
                let board = unsafe { SharedBytes::new(r.ptr(), r.size) };
                monitor.with_board(os, board, ch)
            }
            _ => monitor,
        }
    })
}
