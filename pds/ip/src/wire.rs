//! The IP PD's wiring, shared by its Linux program (`main.rs`) and its seL4
//! program (`pds/sel4/ip`): the generated constants (`crate::pd`) in, the
//! component out.

use axolotl_ip::component::{IpLinks, IpPd};
use axolotl_ip::neighbours::NeighbourBook;
use axolotl_ip::{Config, Ip};
use axolotl_monitor::query::Reported;
use axolotl_sdk::{Handler, Os};
use axolotl_timer::client::Wakeup;

use crate::pd;

/// The IP PD: `axolotl-ip` on its four links, reporting its counters.
pub fn component(os: &mut dyn Os) -> impl Handler {
    let Some(net) = pd::NET else {
        panic!("system.xml has no <axolotl:net> for the IP PD");
    };
    let Some(timer) = pd::TIMER else {
        panic!("system.xml must give the IP PD a channel to the timer");
    };
    let cfg = Config {
        mac: axolotl_ip::EthernetAddress(net.mac),
        addr: net.addr.into(),
        prefix_len: net.prefix_len,
        gateway: net.gateway.map(Into::into),
    };
    // SAFETY: the runtime mapped every region of this PD before init, for
    // the life of the PD; each link is attached once.
    let links = unsafe {
        IpLinks {
            from_nic: axolotl_link::receiver(&pd::link::NIC_RX),
            to_nic: axolotl_link::sender(&pd::link::NIC_TX),
            up: axolotl_link::sender(&pd::link::IP_UP),
            down: axolotl_link::receiver(&pd::link::IP_DOWN),
        }
    };
    let mut ip = Ip::new(cfg);
    let book = pd::STORE.map(|store| NeighbourBook::open(os, store, &mut ip));
    let handler = IpPd::new(os, ip, links, Wakeup::new(timer), book);
    // Ring counters go to the monitor, for the status page.
    Reported::new(handler, pd::PARENT)
}
