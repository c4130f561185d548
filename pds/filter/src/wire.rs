//! The packet filter PD's wiring, shared by its Linux program (`main.rs`)
//! and its seL4 program (`pds/sel4/filter`): the generated constants and
//! rules (`crate::pd`) in, the component out.

use axolotl_filter::component::{policy, FilterLinks, FilterPd};
use axolotl_filter::Filter;
use axolotl_monitor::query::Reported;
use axolotl_sdk::{Handler, Os};

use crate::pd;

/// The filter PD: `axolotl-filter` with system.xml's rules between IP and
/// the transports, reporting its counters.
pub fn component(os: &mut dyn Os) -> impl Handler {
    // SAFETY: the runtime mapped every region of this PD before init, for
    // the life of the PD; each link is attached once.
    let links = unsafe {
        FilterLinks {
            from_ip: axolotl_link::receiver(&pd::link::IP_UP),
            to_ip: axolotl_link::sender(&pd::link::IP_DOWN),
            to_tcp: axolotl_link::sender(&pd::link::TCP_IN),
            from_tcp: axolotl_link::receiver(&pd::link::TCP_OUT),
            to_udp: axolotl_link::sender(&pd::link::UDP_IN),
            from_udp: axolotl_link::receiver(&pd::link::UDP_OUT),
        }
    };
    let filter = Filter::new(policy(pd::FILTER_RULES, pd::FILTER_DEFAULT_PASS));
    let handler = FilterPd::new(os, filter, links, pd::STORE);
    // Ring counters go to the monitor, for the status page.
    Reported::new(handler, pd::PARENT)
}
