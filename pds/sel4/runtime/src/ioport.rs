//! x86 I/O ports (`<ioport>` in system.xml) through seL4's IOPort
//! invocations on the capability Microkit gives the PD for each range.

use axolotl_sdk::config::IoPorts;

/// Microkit's capability slots for I/O ports start here (one per
/// `<ioport>` id).
const BASE_IOPORT_CAP: u64 = 394;

/// One `<ioport>` range of this PD.
#[derive(Clone, Copy)]
pub struct Ports(IoPorts);

impl Ports {
    /// The range `ports` (a generated `pd::ioport::*` constant).
    pub const fn new(ports: IoPorts) -> Ports {
        Ports(ports)
    }

    fn cap(&self) -> u64 {
        BASE_IOPORT_CAP + u64::from(self.0.id)
    }

    /// The port `off` bytes into the range, if `width` bytes from it are
    /// inside; a port outside is a bug of the caller, logged.
    fn port(&self, off: u64, width: u64) -> Option<u64> {
        if off
            .checked_add(width)
            .is_some_and(|end| end <= self.0.count)
        {
            Some(self.0.base + off)
        } else {
            log::error!(
                "I/O port {:#x}+{off:#x} ({width} bytes) is outside <ioport id=\"{}\">",
                self.0.base,
                self.0.id
            );
            None
        }
    }

    /// Reads a byte; all ones if the port is outside the range.
    pub fn in8(&self, off: u64) -> u8 {
        let Some(port) = self.port(off, 1) else {
            return 0xff;
        };
        sel4::with_ipc_buffer_mut(|ib| ib.inner_mut().seL4_X86_IOPort_In8(self.cap(), port as _))
            .result as u8
    }

    /// Writes a byte (nothing if the port is outside the range).
    pub fn out8(&self, off: u64, v: u8) {
        if let Some(port) = self.port(off, 1) {
            sel4::with_ipc_buffer_mut(|ib| {
                ib.inner_mut()
                    .seL4_X86_IOPort_Out8(self.cap(), port as _, v as _)
            });
        }
    }

    /// Reads 32 bits; all ones if the port is outside the range.
    pub fn in32(&self, off: u64) -> u32 {
        let Some(port) = self.port(off, 4) else {
            return u32::MAX;
        };
        sel4::with_ipc_buffer_mut(|ib| ib.inner_mut().seL4_X86_IOPort_In32(self.cap(), port as _))
            .result as u32
    }

    /// Writes 32 bits (nothing if the port is outside the range).
    pub fn out32(&self, off: u64, v: u32) {
        if let Some(port) = self.port(off, 4) {
            sel4::with_ipc_buffer_mut(|ib| {
                ib.inner_mut()
                    .seL4_X86_IOPort_Out32(self.cap(), port as _, v as _)
            });
        }
    }
}
