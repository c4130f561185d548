//! The TCP PD's wiring, shared by its Linux program (`main.rs`) and its
//! seL4 program (`pds/sel4/tcp`): the generated constants (`crate::pd`) in,
//! the component out.

use axolotl_monitor::query::Reported;
use axolotl_netqueue::component::TransportPd;
use axolotl_sdk::{Handler, Os};
use axolotl_tcp::component::{AppLinks, TcpWithApps};
use axolotl_tcp::TcpService;
use axolotl_timer::client::Wakeup;

use crate::pd;

/// The TCP PD: smoltcp's TCP serving its app PDs, the status page (app
/// 0) and echo and discard (app 1), which listen on their ports;
/// reporting its counters.
pub fn component(os: &mut dyn Os) -> impl Handler {
    let (Some(net), Some(timer)) = (pd::NET, pd::TIMER) else {
        panic!("system.xml must give the TCP PD <axolotl:net> and a channel to the timer");
    };
    let now = os.now().as_nanos();
    let svc = TcpService::new(
        net.addr.into(),
        net.prefix_len,
        net.gateway.map(Into::into),
        &[],
        now,
    );
    // SAFETY: the runtime mapped every region of this PD before init, for
    // the life of the PD; each link is attached once.
    let (from, to, apps) = unsafe {
        (
            axolotl_link::receiver(&pd::link::TCP_IN),
            axolotl_link::sender(&pd::link::TCP_OUT),
            alloc::vec![
                AppLinks {
                    to_app: axolotl_link::sender(&pd::link::HTTP_EV),
                    from_app: axolotl_link::receiver(&pd::link::HTTP_REQ),
                    max_ports: pd::link::HTTP_REQ.max_ports,
                },
                AppLinks {
                    to_app: axolotl_link::sender(&pd::link::ECHO_TCP_EV),
                    from_app: axolotl_link::receiver(&pd::link::ECHO_TCP_REQ),
                    max_ports: pd::link::ECHO_TCP_REQ.max_ports,
                },
            ],
        )
    };
    let mut svc = TcpWithApps::new(svc, apps);
    match pd::STORE {
        Some(store) => {
            svc = svc.keep_ports_in(os, store);
            log::info!("TCP up; its apps' listening ports are kept in the store");
        }
        None => log::info!("TCP up; its apps listen on their ports (no store: none are kept)"),
    }
    let handler = TransportPd::new(os, svc, from, to, Wakeup::new(timer));
    // Ring counters go to the monitor, for the status page.
    Reported::new(handler, pd::PARENT)
}
