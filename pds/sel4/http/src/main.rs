//! The status page PD (port 80) on seL4: the same wiring as its Linux program
//! (`pds/http/src/wire.rs`, compiled into both) under the seL4 runtime.
#![no_std]
#![no_main]

#[path = "../../../http/src/wire.rs"]
mod wire;

axolotl_sdk::include_pd!();

#[sel4_microkit::protection_domain(stack_size = 0x10000, heap_size = 0x100000)]
fn init() -> impl sel4_microkit::Handler {
    axolotl_sel4::adapt(axolotl_sel4::config!(), wire::component)
}
