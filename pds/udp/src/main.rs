//! The UDP PD on the Linux host: generated wiring plus `axolotl-udp`.

use axolotl_netqueue::component::TransportPd;
use axolotl_timer::client::Wakeup;
use axolotl_udp::{App, UdpService};

use axolotl_monitor::query::Reported;

axolotl_sdk::include_pd!();

fn main() {
    axolotl_host::pd_main(pd::SYSTEM_FINGERPRINT, |init| {
        let (Some(net), Some(timer)) = (pd::NET, pd::TIMER) else {
            panic!("system.xml must give the UDP PD <axolotl:net> and a channel to the timer");
        };
        let now = init.os().now().as_nanos();
        let svc = UdpService::new(
            net.addr.into(),
            net.prefix_len,
            net.gateway.map(Into::into),
            &[(7, App::Echo), (9, App::Discard)],
            now,
        );
        // SAFETY: the runtime mapped every region of this PD before init,
        // for the life of the process; each link is attached once.
        let (from, to) = unsafe {
            (
                axolotl_link::receiver(&pd::link::UDP_IN),
                axolotl_link::sender(&pd::link::UDP_OUT),
            )
        };
        log::info!("UDP serving ports 7 (echo) and 9 (discard)");
        let handler = TransportPd::new(init.os(), svc, from, to, Wakeup::new(timer));
        // Ring counters go to the monitor, for the status page.
        Reported::new(handler, pd::PARENT)
    })
}
