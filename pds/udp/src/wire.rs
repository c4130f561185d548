//! The UDP PD's wiring, shared by its Linux program (`main.rs`) and its
//! seL4 program (`pds/sel4/udp`): the generated constants (`crate::pd`) in,
//! the component out.

use axolotl_monitor::query::Reported;
use axolotl_netqueue::component::TransportPd;
use axolotl_sdk::{Handler, Os};
use axolotl_timer::client::Wakeup;
use axolotl_udp::{App, UdpService};

use crate::pd;

/// The UDP PD: smoltcp's UDP with echo (7) and discard (9), reporting its
/// counters.
pub fn component(os: &mut dyn Os) -> impl Handler {
    let (Some(net), Some(timer)) = (pd::NET, pd::TIMER) else {
        panic!("system.xml must give the UDP PD <axolotl:net> and a channel to the timer");
    };
    let now = os.now().as_nanos();
    let svc = UdpService::new(
        net.addr.into(),
        net.prefix_len,
        net.gateway.map(Into::into),
        &[(7, App::Echo), (9, App::Discard)],
        now,
    );
    // SAFETY: the runtime mapped every region of this PD before init, for
    // the life of the PD; each link is attached once.
    let (from, to) = unsafe {
        (
            axolotl_link::receiver(&pd::link::UDP_IN),
            axolotl_link::sender(&pd::link::UDP_OUT),
        )
    };
    log::info!("UDP serving ports 7 (echo) and 9 (discard)");
    let handler = TransportPd::new(os, svc, from, to, Wakeup::new(timer));
    // Ring counters go to the monitor, for the status page.
    Reported::new(handler, pd::PARENT)
}
