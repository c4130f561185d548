//! virtio-net as an Axolotl network device: [`VirtioNic`] implements the
//! NIC driver's [`axolotl_nic::NicHw`] over virtio-drivers' raw driver, on
//! a virtio-mmio transport (QEMU's aarch64 `virt` machine) or on PCI
//! (x86_64, `virtio-net-pci`).
//!
//! The device reads and writes one DMA window ([`dma`]): a memory region
//! of system.xml whose physical address the Microkit tool writes into the
//! driver (`<setvar region_paddr>`). Queues and packet buffers are carved
//! out of it; every buffer the device sees lives there, so nothing is
//! bounced. The driver holds no state worth keeping: a restarted one
//! resets the device and starts again.
#![cfg_attr(not(test), no_std)]

pub mod dma;
mod nic;
pub mod pci;

pub use nic::{InitError, VirtioNic, BUF, QUEUE};
pub use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
pub use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction, PciRoot};
pub use virtio_drivers::transport::{DeviceType, Transport};

/// Bytes of one virtio-mmio slot (QEMU's `virt` machine puts 32 of them
/// 0x200 apart).
pub const MMIO_SLOT: usize = 0x200;

/// Finds a virtio-net device among the virtio-mmio slots mapped at
/// `vaddr` (`size` bytes, one slot every [`MMIO_SLOT`]): the slot's index
/// and its transport.
///
/// # Safety
/// `size` bytes of device registers must be mapped uncached at `vaddr` for
/// the life of the program, and nothing else may use them.
pub unsafe fn find_mmio_net(vaddr: usize, size: usize) -> Option<(usize, MmioTransport<'static>)> {
    (0..size / MMIO_SLOT).find_map(|slot| {
        let header = core::ptr::NonNull::new((vaddr + slot * MMIO_SLOT) as *mut VirtIOHeader)?;
        // SAFETY: the caller guarantees the mapping; each slot is a whole
        // virtio-mmio register block inside it, used by this transport only
        // (the others are dropped again).
        let t = unsafe { MmioTransport::new(header, MMIO_SLOT) }.ok()?;
        (t.device_type() == DeviceType::Network).then_some((slot, t))
    })
}
