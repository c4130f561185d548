//! The packet filter PD on the Linux host: generated wiring (and rules)
//! plus `axolotl-filter`.

mod wire;

axolotl_sdk::include_pd!();

fn main() {
    axolotl_host::pd_main(pd::SYSTEM_FINGERPRINT, |init| wire::component(init.os()))
}
