//! The store's benchmark client on seL4: times puts, gets and PINGs to the
//! store at start and logs the figures (see `axolotl-store-bench`).
#![no_std]
#![no_main]

axolotl_sdk::include_pd!();

#[sel4_microkit::protection_domain(stack_size = 0x10000, heap_size = 0x80000)]
fn init() -> impl sel4_microkit::Handler {
    axolotl_sel4::adapt(axolotl_sel4::config!(), |os| {
        axolotl_store_bench::StoreBench::start(os, pd::STORE)
    })
}
