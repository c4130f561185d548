//! The warden PD on seL4: the root PD, whose only job is to restart the
//! monitor at its `_reset` entry when it faults (the portable
//! `axolotl-warden` component). The heap is the runtime's (its logger);
//! the component itself allocates nothing.
#![no_std]
#![no_main]

axolotl_sdk::include_pd!();

#[sel4_microkit::protection_domain(stack_size = 0x10000, heap_size = 0x10000)]
fn init() -> impl sel4_microkit::Handler {
    axolotl_sel4::adapt(axolotl_sel4::config!(), |_os| {
        axolotl_warden::Warden::init(pd::MONITOR_NAME)
    })
}
