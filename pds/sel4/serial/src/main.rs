//! The serial driver PD on seL4: the portable `axolotl-serial` driver over
//! the board's UART (aarch64 virt: a PL011; x86_64: the 16550 at COM1,
//! through seL4's I/O port invocations).
#![no_std]
#![no_main]

use axolotl_ring::bytes::{ByteReader, ByteWriter};
use axolotl_serial::{SerialDriver, Uart};

axolotl_sdk::include_pd!();

/// The channel on which the monitor and this driver tell each other that
/// console bytes wait (the second channel between them in system.xml).
const CONSOLE: axolotl_sdk::Channel = pd::channel::GUARDIAN_2;

#[cfg(target_arch = "aarch64")]
mod hw {
    use super::*;

    /// ARM PL011 registers.
    pub struct Pl011(usize);

    const DR: usize = 0x00;
    const FR: usize = 0x18;
    const IMSC: usize = 0x38;
    const ICR: usize = 0x44;
    const FR_RXFE: u32 = 1 << 4;
    const FR_TXFF: u32 = 1 << 5;
    const RX_INTERRUPTS: u32 = (1 << 4) | (1 << 6);

    pub fn uart() -> Pl011 {
        Pl011(pd::region::UART.vaddr)
    }

    impl Pl011 {
        fn read(&self, off: usize) -> u32 {
            // SAFETY: system.xml maps the PL011's page uncached at .0; the
            // offsets are registers inside it.
            unsafe { core::ptr::read_volatile((self.0 + off) as *const u32) }
        }
        fn write(&self, off: usize, v: u32) {
            // SAFETY: as for read.
            unsafe { core::ptr::write_volatile((self.0 + off) as *mut u32, v) }
        }
    }

    impl Uart for Pl011 {
        fn try_send(&mut self, byte: u8) -> bool {
            if self.read(FR) & FR_TXFF != 0 {
                return false;
            }
            self.write(DR, u32::from(byte));
            true
        }
        fn receive(&mut self) -> Option<u8> {
            if self.read(FR) & FR_RXFE != 0 {
                return None;
            }
            Some(self.read(DR) as u8)
        }
        fn enable_rx_interrupt(&mut self) {
            self.write(IMSC, RX_INTERRUPTS);
        }
        fn clear_rx_interrupt(&mut self) {
            self.write(ICR, RX_INTERRUPTS);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod hw {
    use super::*;

    use axolotl_sel4::ioport::Ports;

    /// A 16550 UART behind I/O ports.
    pub struct Com(Ports);

    const LSR_DATA_READY: u8 = 1 << 0;
    const LSR_THR_EMPTY: u8 = 1 << 5;

    pub fn uart() -> Com {
        Com(Ports::new(pd::ioport::UART))
    }

    impl Com {
        fn inb(&self, reg: u64) -> u8 {
            self.0.in8(reg)
        }
        fn outb(&self, reg: u64, v: u8) {
            self.0.out8(reg, v)
        }
    }

    impl Uart for Com {
        fn try_send(&mut self, byte: u8) -> bool {
            if self.inb(5) & LSR_THR_EMPTY == 0 {
                return false;
            }
            self.outb(0, byte);
            true
        }
        fn receive(&mut self) -> Option<u8> {
            if self.inb(5) & LSR_DATA_READY == 0 {
                return None;
            }
            Some(self.inb(0))
        }
        fn enable_rx_interrupt(&mut self) {
            // 8N1, FIFO on, DTR | RTS | OUT2 (OUT2 gates the interrupt line
            // on PCs), receive-data interrupt on.
            self.outb(3, 0x03);
            self.outb(2, 0x07);
            self.outb(4, 0x0b);
            self.outb(1, 0x01);
        }
    }
}

#[sel4_microkit::protection_domain(stack_size = 0x10000, heap_size = 0x10000)]
fn init() -> impl sel4_microkit::Handler {
    axolotl_sel4::adapt(axolotl_sel4::config!(), |_os| {
        let (tx, rx) = (pd::region::CONSOLE_TX, pd::region::CONSOLE_RX);
        // SAFETY: Microkit maps both console regions read-write before init
        // for the life of the PD; this PD is the only reader of tx and the
        // only writer of rx.
        let (reader, writer) = unsafe {
            (
                ByteReader::attach(tx.ptr(), tx.size),
                ByteWriter::attach(rx.ptr(), rx.size),
            )
        };
        let (Ok(reader), Ok(writer)) = (reader, writer) else {
            panic!("the console regions are too small or misaligned");
        };
        SerialDriver::init(hw::uart(), reader, writer, CONSOLE, pd::irq::UART)
    })
}
