//! The guardian PD (the monitor: parent of every restartable PD) on the Linux host: generated wiring plus the portable
//! `axolotl-monitor` component, with the host's alarm device as its watchdog.

use axolotl_monitor::{Monitor, Watchdog};
use axolotl_sdk::Instant;

axolotl_sdk::include_pd!();

struct HostWatchdog(axolotl_host::Alarm);

impl Watchdog for HostWatchdog {
    fn arm(&mut self, at: Option<Instant>) {
        self.0.set(at)
    }
}

fn main() {
    axolotl_host::pd_main(pd::SYSTEM_FINGERPRINT, |init| {
        let watchdog = match init.alarm(pd::irq::WATCHDOG) {
            Ok(a) => (pd::irq::WATCHDOG, HostWatchdog(a)),
            Err(e) => panic!("no host watchdog device: {e}"),
        };
        Monitor::init(
            init.os(),
            pd::CHILDREN,
            pd::TICK_CHANNEL,
            pd::TICK_SOURCE,
            Some(watchdog),
        )
        .with_name(pd::NAME)
    })
}
