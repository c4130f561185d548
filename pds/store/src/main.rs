//! The state store PD on the Linux host: generated wiring plus the portable
//! `axolotl-store` component.

axolotl_sdk::include_pd!();

fn main() {
    axolotl_host::pd_main(pd::SYSTEM_FINGERPRINT, |init| {
        let _ = init;
        let Some(journal) = pd::JOURNAL else {
            panic!("system.xml gives the store no journal region");
        };
        // SAFETY: the runtime mapped the journal read-write before init; the
        // checker guarantees no other PD maps it; this is the only reference.
        let journal = unsafe { journal.bytes_mut() };
        axolotl_store::StoreServer::init(journal, pd::STORE_CLIENTS)
    })
}
