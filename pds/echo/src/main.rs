//! The echo and discard app PD on the Linux host: generated wiring plus
//! `axolotl-echo`.

mod wire;

axolotl_sdk::include_pd!();

fn main() {
    axolotl_host::pd_main(pd::SYSTEM_FINGERPRINT, |init| wire::component(init.os()))
}
