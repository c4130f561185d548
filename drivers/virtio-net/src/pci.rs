//! Finding a virtio-net device on PCI bus 0 and placing its memory BARs in
//! the device window system.xml maps (so that the window, not the
//! firmware's choice, decides where its registers are).

use crate::dma;
use virtio_drivers::transport::pci::bus::{
    BarInfo, Command, ConfigurationAccess, DeviceFunction, MemoryBarType, PciRoot,
};
use virtio_drivers::transport::pci::{virtio_device_type, PciTransport};

/// The transport of a virtio device on PCI.
pub type Transport = PciTransport;
use virtio_drivers::transport::DeviceType;

/// Why no device could be used.
#[derive(Debug)]
pub enum PciError {
    /// No virtio-net function on bus 0.
    NotFound,
    /// The device's memory BARs do not fit the window.
    WindowTooSmall {
        /// Bytes the BARs need, aligned.
        need: u64,
        /// Bytes the window has.
        have: u64,
    },
    /// A BAR could not be read or is of a kind this driver cannot place.
    Bar(virtio_drivers::transport::pci::bus::PciError),
    /// virtio-drivers refused the device.
    Transport(virtio_drivers::transport::pci::VirtioPciError),
}

/// The device found.
pub struct Found {
    /// Bus, device and function.
    pub function: DeviceFunction,
    /// The transport for [`crate::VirtioNic`].
    pub transport: PciTransport,
}

/// Finds the first virtio-net function on bus 0, moves its memory BARs
/// into the window at physical `window_paddr` (mapped at `window_vaddr`,
/// `window_size` bytes), enables it, and returns its transport.
///
/// # Safety
/// The window must be mapped uncached at `window_vaddr` for the life of the
/// program, be free physical address space that no other device decodes,
/// and be used by nothing else.
pub unsafe fn find_net<C: ConfigurationAccess>(
    root: &mut PciRoot<C>,
    window_vaddr: usize,
    window_paddr: u64,
    window_size: usize,
) -> Result<Found, PciError> {
    let (function, _) = root
        .enumerate_bus(0)
        .find(|(_, info)| virtio_device_type(info) == Some(DeviceType::Network))
        .ok_or(PciError::NotFound)?;

    // Stop decoding while the BARs move.
    let (_, command) = root.get_status_command(function);
    root.set_command(
        function,
        command & !(Command::MEMORY_SPACE | Command::IO_SPACE),
    );
    let mut next = 0u64;
    let mut index = 0u8;
    while index < 6 {
        let info = root.bar_info(function, index).map_err(PciError::Bar)?;
        let width = match &info {
            Some(b) if b.takes_two_entries() => 2,
            _ => 1,
        };
        if let Some(BarInfo::Memory {
            address_type, size, ..
        }) = info
        {
            let at = next.next_multiple_of(size.max(1));
            let end = at + size;
            if end > window_size as u64 {
                return Err(PciError::WindowTooSmall {
                    need: end,
                    have: window_size as u64,
                });
            }
            let paddr = window_paddr + at;
            match address_type {
                MemoryBarType::Width64 => root.set_bar_64(function, index, paddr),
                _ => match u32::try_from(paddr) {
                    Ok(p) => root.set_bar_32(function, index, p),
                    Err(_) => {
                        return Err(PciError::Bar(
                            virtio_drivers::transport::pci::bus::PciError::InvalidBarType,
                        ))
                    }
                },
            }
            log::info!("virtio-net BAR{index}: {size:#x} bytes at {paddr:#x}");
            next = end;
        }
        index += width;
    }
    root.set_command(function, Command::MEMORY_SPACE | Command::BUS_MASTER);
    // SAFETY: passed on from the caller.
    unsafe { dma::set_mmio_window(window_vaddr, window_paddr, window_size) };

    let transport =
        PciTransport::new::<dma::Hal, C>(root, function).map_err(PciError::Transport)?;
    Ok(Found {
        function,
        transport,
    })
}
