//! A store client for the first seL4 slice: counts its boots in the state
//! store and prints whether the round trip worked.
#![no_std]
#![no_main]

use axolotl_sdk::{ChannelSet, Handler, Os};

axolotl_sdk::include_pd!();

struct Smoke;

impl Handler for Smoke {
    type Error = core::convert::Infallible;
    fn notified(&mut self, _os: &mut dyn Os, _channels: ChannelSet) -> Result<(), Self::Error> {
        Ok(())
    }
}

#[sel4_microkit::protection_domain(heap_size = 0x10000)]
fn init() -> impl sel4_microkit::Handler {
    axolotl_sel4::adapt(pd::NAME, |os| {
        let Some(store) = pd::STORE else {
            panic!("no channel to the store");
        };
        let boots = axolotl_store_api::get_u64(os, store, b"boots")
            .ok()
            .flatten()
            .unwrap_or(0);
        let put = axolotl_store_api::put_u64(os, store, b"boots", boots + 1);
        let back = axolotl_store_api::get_u64(os, store, b"boots");
        match (put, back) {
            (Ok(()), Ok(Some(n))) if n == boots + 1 => {
                log::info!("AXOLOTL SMOKE OK: store round trip, boot count {n}")
            }
            other => log::error!("AXOLOTL SMOKE FAILED: {other:?}"),
        }
        Smoke
    })
}
