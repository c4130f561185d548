//! The state store PD on seL4: generated wiring plus the portable
//! `axolotl-store` component, the same one the Linux host runs (its wiring
//! is `pds/store/src/wire.rs`, compiled into both).
#![no_std]
#![no_main]

axolotl_sdk::include_pd!();

#[path = "../../../store/src/wire.rs"]
mod wire;

#[sel4_microkit::protection_domain(stack_size = 0x10000, heap_size = 0x40000)]
fn init() -> impl sel4_microkit::Handler {
    axolotl_sel4::adapt(axolotl_sel4::config!(), |os| wire::component(os))
}
