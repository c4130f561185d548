//! The NIC driver PD on the Linux host: the portable `axolotl-nic` driver
//! over the host's network device model (`axolotl_host::nic`).

use axolotl_host::nic::HostNic;
use axolotl_nic::{NicDriver, NicHw};

use axolotl_monitor::query::Reported;

axolotl_sdk::include_pd!();

struct Host(HostNic);

impl NicHw for Host {
    fn receive(&mut self, buf: &mut [u8]) -> Option<usize> {
        self.0.recv(buf)
    }
    fn transmit(&mut self, frame: &[u8]) -> bool {
        self.0.send(frame)
    }
    fn resets(&self) -> u64 {
        self.0.resets()
    }
}

fn main() {
    axolotl_host::pd_main(pd::SYSTEM_FINGERPRINT, |init| {
        let nic = HostNic::from_env().unwrap_or_else(|e| panic!("no network device: {e}"));
        init.device_irq(pd::irq::NIC, nic.fd());
        // SAFETY: the runtime mapped every region of this PD before init,
        // for the life of the process; each link is attached once.
        let (rx, tx) = unsafe {
            (
                axolotl_link::sender(&pd::link::NIC_RX),
                axolotl_link::receiver(&pd::link::NIC_TX),
            )
        };
        let handler = NicDriver::new(init.os(), Host(nic), rx, tx, pd::irq::NIC);
        // Ring counters go to the monitor, for the status page.
        Reported::new(handler, pd::PARENT)
    })
}
