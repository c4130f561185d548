//! The TCP PD's wiring, shared by its Linux program (`main.rs`) and its
//! seL4 program (`pds/sel4/tcp`): the generated constants (`crate::pd`) in,
//! the component out.

use axolotl_monitor::query::Reported;
use axolotl_netqueue::component::TransportPd;
use axolotl_sdk::{Handler, Os};
use axolotl_tcp::component::{AppLinks, TcpWithApps};
use axolotl_tcp::{App, Listen, TcpService};
use axolotl_timer::client::Wakeup;

use crate::pd;

/// Connections at once per port, and bytes of buffer each way per socket.
const SOCKETS: usize = 8;
const BUFFER: usize = 64 * 1024;

/// The TCP PD: smoltcp's TCP with echo (7) and discard (9) built in and
/// the status page as app 0, reporting its counters.
pub fn component(os: &mut dyn Os) -> impl Handler {
    let (Some(net), Some(timer)) = (pd::NET, pd::TIMER) else {
        panic!("system.xml must give the TCP PD <axolotl:net> and a channel to the timer");
    };
    let listens = [(7, App::Echo), (9, App::Discard)].map(|(port, app)| Listen {
        port,
        app,
        sockets: SOCKETS,
        buffer: BUFFER,
    });
    let now = os.now().as_nanos();
    let svc = TcpService::new(
        net.addr.into(),
        net.prefix_len,
        net.gateway.map(Into::into),
        &listens,
        now,
    );
    // SAFETY: the runtime mapped every region of this PD before init, for
    // the life of the PD; each link is attached once.
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
    let svc = TcpWithApps::new(svc, alloc::vec![http]);
    let handler = TransportPd::new(os, svc, from, to, Wakeup::new(timer));
    // Ring counters go to the monitor, for the status page.
    Reported::new(handler, pd::PARENT)
}
