//! The packet filter PD on the Linux host: generated wiring (and rules)
//! plus `axolotl-filter`.

use axolotl_filter::component::{policy, FilterLinks, FilterPd};
use axolotl_filter::Filter;

use axolotl_monitor::query::Reported;

axolotl_sdk::include_pd!();

fn main() {
    axolotl_host::pd_main(pd::SYSTEM_FINGERPRINT, |init| {
        // SAFETY: the runtime mapped every region of this PD before init,
        // for the life of the process; each link is attached once.
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
        let handler = FilterPd::new(init.os(), filter, links);
        // Ring counters go to the monitor, for the status page.
        Reported::new(handler, pd::PARENT)
    })
}
