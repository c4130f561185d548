//! The TCP PD on the Linux host: generated wiring plus `axolotl-tcp`.

use axolotl_netqueue::component::TransportPd;
use axolotl_tcp::component::{AppLinks, TcpWithApps};
use axolotl_tcp::{App, Listen, TcpService};
use axolotl_timer::client::Wakeup;

use axolotl_monitor::query::Reported;

axolotl_sdk::include_pd!();

/// Connections at once per port, and bytes of buffer each way per socket.
const SOCKETS: usize = 8;
const BUFFER: usize = 64 * 1024;

fn main() {
    axolotl_host::pd_main(pd::SYSTEM_FINGERPRINT, |init| {
        let (Some(net), Some(timer)) = (pd::NET, pd::TIMER) else {
            panic!("system.xml must give the TCP PD <axolotl:net> and a channel to the timer");
        };
        let listens = [(7, App::Echo), (9, App::Discard)].map(|(port, app)| Listen {
            port,
            app,
            sockets: SOCKETS,
            buffer: BUFFER,
        });
        let now = init.os().now().as_nanos();
        let svc = TcpService::new(
            net.addr.into(),
            net.prefix_len,
            net.gateway.map(Into::into),
            &listens,
            now,
        );
        // SAFETY: the runtime mapped every region of this PD before init,
        // for the life of the process; each link is attached once.
        let (from, to, http) = unsafe {
            (
                axolotl_link::receiver(&pd::link::TCP_IN),
                axolotl_link::sender(&pd::link::TCP_OUT),
                AppLinks {
                    to_app: axolotl_link::sender(&pd::link::HTTP_EV),
                    from_app: axolotl_link::receiver(&pd::link::HTTP_REQ),
                },
            )
        };
        log::info!("TCP listening on ports 7 (echo) and 9 (discard); apps listen on theirs");
        // App 0: the status page.
        let svc = TcpWithApps::new(svc, vec![http]);
        let handler = TransportPd::new(init.os(), svc, from, to, Wakeup::new(timer));
        // Ring counters go to the monitor, for the status page.
        Reported::new(handler, pd::PARENT)
    })
}
