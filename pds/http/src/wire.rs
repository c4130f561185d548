//! The status page PD's wiring, shared by its Linux program (`main.rs`)
//! and its seL4 program (`pds/sel4/http`): the generated constants
//! (`crate::pd`) in, the component out.

use axolotl_http::HttpApp;
use axolotl_monitor::query::Reported;
use axolotl_sdk::{Handler, Os};

use crate::pd;

/// The port the status page listens on.
const PORT: u16 = 80;

/// The status page: an app of the TCP PD that asks the monitor what to
/// show, reporting its counters.
pub fn component(os: &mut dyn Os) -> impl Handler {
    let Some(monitor) = pd::PARENT else {
        panic!("system.xml must make the status page a child of the monitor");
    };
    // SAFETY: the runtime mapped every region of this PD before init, for
    // the life of the PD; each link is attached once.
    let (to, from) = unsafe {
        (
            axolotl_link::sender(&pd::link::HTTP_REQ),
            axolotl_link::receiver(&pd::link::HTTP_EV),
        )
    };
    let handler = HttpApp::new(os, PORT, to, from, monitor);
    // Ring counters go to the monitor, for the status page.
    Reported::new(handler, pd::PARENT)
}
