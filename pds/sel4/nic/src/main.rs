//! The NIC driver PD on seL4: the portable `axolotl-nic` driver over a
//! virtio-net device (`axolotl-virtio-net`): in a virtio-mmio slot on
//! QEMU's aarch64 `virt` machine, on PCI bus 0 (`virtio-net-pci`) on
//! x86_64. The device reads and writes the `nic_dma` region, whose
//! physical address the Microkit tool writes into `nic_dma_paddr`.
#![no_std]
#![no_main]

use axolotl_monitor::query::Reported;
use axolotl_nic::NicDriver;
use axolotl_virtio_net::{dma, VirtioNic};

axolotl_sdk::include_pd!();

// Physical addresses the Microkit tool writes (`<setvar symbol=...
// region_paddr=...>` in system.xml). They live in `.persistent`, which a
// reset leaves alone: the tool patches the program after sel4-reset-cli
// took its copy of `.data`, so a reset would put 0 back in `.data`.

/// The `nic_dma` region's physical address.
#[allow(non_upper_case_globals)]
#[unsafe(no_mangle)]
#[used]
#[unsafe(link_section = ".persistent")]
static mut nic_dma_paddr: u64 = 0;

/// What the Microkit tool wrote into `symbol` (0 if it wrote nothing).
fn patched(symbol: *const u64) -> u64 {
    // SAFETY: `symbol` is one of this program's statics; nothing writes it
    // at run time (the Microkit tool wrote it into the image).
    unsafe { core::ptr::read_volatile(symbol) }
}

#[cfg(target_arch = "aarch64")]
mod hw {
    use axolotl_virtio_net::{find_mmio_net, MmioTransport};

    pub type Transport = MmioTransport<'static>;

    /// The virtio-net device among the virtio-mmio slots system.xml maps.
    pub fn transport() -> Transport {
        let r = crate::pd::region::VIRTIO_MMIO;
        // SAFETY: system.xml maps the virtio-mmio slots uncached at this
        // address for the life of the PD; only this PD maps them.
        match unsafe { find_mmio_net(r.vaddr, r.size) } {
            Some((slot, t)) => {
                log::info!("virtio-net in virtio-mmio slot {slot}");
                t
            }
            None => panic!(
                "no virtio-net device in the {} virtio-mmio slots of region {} (is QEMU given \
                 -device virtio-net-device?)",
                r.size / axolotl_virtio_net::MMIO_SLOT,
                r.name
            ),
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod hw {
    use axolotl_sel4::ioport::Ports;
    use axolotl_virtio_net::pci::{find_net, PciError};
    use axolotl_virtio_net::{ConfigurationAccess, DeviceFunction, PciRoot};

    pub type Transport = axolotl_virtio_net::pci::Transport;

    /// The window the device's BARs are placed in: its physical address.
    #[allow(non_upper_case_globals)]
    #[unsafe(no_mangle)]
    #[used]
    #[unsafe(link_section = ".persistent")]
    static mut nic_bar_paddr: u64 = 0;

    /// PCI configuration mechanism #1: an address at 0xcf8, data at 0xcfc.
    struct PortCam(Ports);

    fn address(df: DeviceFunction, off: u8) -> u32 {
        0x8000_0000
            | u32::from(df.bus) << 16
            | u32::from(df.device) << 11
            | u32::from(df.function) << 8
            | u32::from(off & 0xfc)
    }

    impl ConfigurationAccess for PortCam {
        fn read_word(&self, df: DeviceFunction, off: u8) -> u32 {
            self.0.out32(0, address(df, off));
            self.0.in32(4)
        }
        fn write_word(&mut self, df: DeviceFunction, off: u8, data: u32) {
            self.0.out32(0, address(df, off));
            self.0.out32(4, data);
        }
        unsafe fn unsafe_clone(&self) -> Self {
            PortCam(self.0)
        }
    }

    /// The first virtio-net-pci function, its BARs placed in `nic_bar`.
    pub fn transport() -> Transport {
        let ports = Ports::new(crate::pd::ioport::PCI);
        let bar = crate::pd::region::NIC_BAR;
        let paddr = crate::patched(&raw const nic_bar_paddr);
        if paddr == 0 {
            panic!(
                "system.xml must <setvar symbol=\"nic_bar_paddr\" region_paddr=\"{}\"/>",
                bar.name
            );
        }
        let mut root = PciRoot::new(PortCam(ports));
        // SAFETY: system.xml maps `nic_bar` uncached at this address for
        // the life of the PD, at a physical address no other device uses.
        match unsafe { find_net(&mut root, bar.vaddr, paddr, bar.size) } {
            Ok(found) => {
                let line = PortCam(ports).read_word(found.function, 0x3c) & 0xff;
                log::info!(
                    "virtio-net-pci at {}, legacy interrupt line {line}",
                    found.function
                );
                found.transport
            }
            Err(PciError::NotFound) => {
                panic!("no virtio-net device on PCI bus 0 (is QEMU given -device virtio-net-pci?)")
            }
            Err(e) => panic!("virtio-net-pci: {e:?}"),
        }
    }
}

#[sel4_microkit::protection_domain(stack_size = 0x20000, heap_size = 0x10000)]
fn init() -> impl sel4_microkit::Handler {
    axolotl_sel4::adapt(axolotl_sel4::config!(), |os| {
        let window = pd::region::NIC_DMA;
        let paddr = patched(&raw const nic_dma_paddr);
        if paddr == 0 {
            panic!(
                "system.xml must <setvar symbol=\"nic_dma_paddr\" region_paddr=\"{}\"/>",
                window.name
            );
        }
        // SAFETY: system.xml maps `nic_dma` read-write here for the life of
        // the PD; a region with a setvar'd physical address is contiguous;
        // no other PD maps it, and a (re)started driver resets the device
        // before it allocates from the window again.
        unsafe { dma::init(window.vaddr, paddr, window.size) };
        let nic = match VirtioNic::new(hw::transport()) {
            Ok(n) => n,
            Err(e) => panic!("virtio-net: {e:?}"),
        };
        if let Some(net) = pd::NET.filter(|n| n.mac != nic.mac()) {
            log::warn!(
                "the device's MAC {:02x?} is not system.xml's {:02x?}: frames to it may be lost",
                nic.mac(),
                net.mac
            );
        }
        // SAFETY: Microkit maps both link regions before init, for the life
        // of the PD; each link is attached once.
        let (rx, tx) = unsafe {
            (
                axolotl_link::sender(&pd::link::NIC_RX),
                axolotl_link::receiver(&pd::link::NIC_TX),
            )
        };
        let handler = NicDriver::new(os, nic, rx, tx, pd::irq::NIC);
        // Ring counters go to the monitor, for the status page.
        Reported::new(handler, pd::PARENT)
    })
}
