//! The warden PD (the root: restarts the monitor) on the Linux host:
//! generated wiring plus the portable `axolotl-warden` component.

axolotl_sdk::include_pd!();

fn main() {
    axolotl_host::pd_main(pd::SYSTEM_FINGERPRINT, |_init| {
        axolotl_warden::Warden::init(pd::MONITOR_NAME)
    })
}
