//! The monitor PD on the Linux host: generated wiring plus the portable
//! `axolotl-monitor` component.

axolotl_sdk::include_pd!();

fn main() {
    axolotl_host::pd_main(pd::SYSTEM_FINGERPRINT, |init| {
        axolotl_monitor::Monitor::init(init.os(), pd::CHILDREN, pd::TICK_CHANNEL, pd::TICK_SOURCE)
    })
}
