//! The state store PD on seL4: generated wiring plus the portable
//! `axolotl-store` component, the same one the Linux host runs.
#![no_std]
#![no_main]

axolotl_sdk::include_pd!();

#[sel4_microkit::protection_domain(stack_size = 0x10000, heap_size = 0x40000)]
fn init() -> impl sel4_microkit::Handler {
    axolotl_sel4::adapt(axolotl_sel4::config!(), |_os| {
        let Some(journal) = pd::JOURNAL else {
            panic!("the system description gives the store no journal region");
        };
        // SAFETY: Microkit maps the journal read-write before init; the
        // checker guarantees no other PD maps it; this is the only reference.
        let journal = unsafe { journal.bytes_mut() };
        axolotl_store::StoreServer::init(journal, pd::STORE_CLIENTS)
    })
}
