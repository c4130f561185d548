//! The UDP PD's wiring, shared by its Linux program (`main.rs`) and its
//! seL4 program (`pds/sel4/udp`): the generated constants (`crate::pd`) in,
//! the component out.

use axolotl_monitor::query::Reported;
use axolotl_netqueue::component::TransportPd;
use axolotl_sdk::{Handler, Os};
use axolotl_socket::AppLinks;
use axolotl_timer::client::Wakeup;
use axolotl_udp::component::UdpWithApps;
use axolotl_udp::UdpService;

use crate::pd;

/// The UDP PD: smoltcp's UDP serving its app PDs (echo and discard, which
/// bind their ports), reporting its counters.
pub fn component(os: &mut dyn Os) -> impl Handler {
    let (Some(net), Some(timer)) = (pd::NET, pd::TIMER) else {
        panic!("system.xml must give the UDP PD <axolotl:net> and a channel to the timer");
    };
    let now = os.now().as_nanos();
    let svc = UdpService::new(
        net.addr.into(),
        net.prefix_len,
        net.gateway.map(Into::into),
        &[],
        now,
    );
    // SAFETY: the runtime mapped every region of this PD before init, for
    // the life of the PD; each link is attached once.
    let (from, to, echo) = unsafe {
        (
            axolotl_link::receiver(&pd::link::UDP_IN),
            axolotl_link::sender(&pd::link::UDP_OUT),
            AppLinks {
                to_app: axolotl_link::sender(&pd::link::ECHO_UDP_EV),
                from_app: axolotl_link::receiver(&pd::link::ECHO_UDP_REQ),
                max_ports: pd::link::ECHO_UDP_REQ.max_ports,
            },
        )
    };
    let mut svc = UdpWithApps::new(svc, alloc::vec![echo]);
    match pd::STORE {
        Some(store) => {
            svc = svc.keep_ports_in(os, store);
            log::info!("UDP up; its apps' ports are kept in the store");
        }
        None => log::info!("UDP up; its apps bind their ports (no store: none are kept)"),
    }
    let handler = TransportPd::new(os, svc, from, to, Wakeup::new(timer));
    // Ring counters go to the monitor, for the status page.
    Reported::new(handler, pd::PARENT)
}
