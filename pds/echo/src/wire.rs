//! The echo and discard app PD's wiring, shared by its Linux program
//! (`main.rs`) and its seL4 program (`pds/sel4/echo`): the generated
//! constants (`crate::pd`) in, the component out.

use axolotl_echo::{EchoApp, Service, Services, TransportLinks};
use axolotl_monitor::query::Reported;
use axolotl_sdk::{Handler, Os};

use crate::pd;

/// The services: echo on port 7 and discard on port 9 (RFC 862, 863),
/// over TCP and over UDP.
const PORTS: [(u16, Service); 2] = [(7, Service::Echo), (9, Service::Discard)];

/// The echo and discard app of the TCP and UDP PDs, reporting its counters.
pub fn component(os: &mut dyn Os) -> impl Handler {
    // SAFETY: the runtime mapped every region of this PD before init, for
    // the life of the PD; each link is attached once.
    let (tcp, udp) = unsafe {
        (
            TransportLinks {
                to: axolotl_link::sender(&pd::link::ECHO_TCP_REQ),
                from: axolotl_link::receiver(&pd::link::ECHO_TCP_EV),
            },
            TransportLinks {
                to: axolotl_link::sender(&pd::link::ECHO_UDP_REQ),
                from: axolotl_link::receiver(&pd::link::ECHO_UDP_EV),
            },
        )
    };
    let app = EchoApp::new(os, Services::new(&PORTS, &PORTS), tcp, udp);
    // Ring counters go to the monitor, for the status page.
    Reported::new(app, pd::PARENT)
}
