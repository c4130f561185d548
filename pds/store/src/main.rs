//! The state store PD on the Linux host: generated wiring plus the portable
//! `axolotl-store` component.

axolotl_sdk::include_pd!();

mod wire;

fn main() {
    axolotl_host::pd_main(pd::SYSTEM_FINGERPRINT, |init| wire::component(init.os()))
}
