//! The guardian PD (the monitor: parent of every restartable PD) on the Linux host: generated wiring plus the portable
//! `axolotl-monitor` component, with the host's alarm device as its watchdog.

use axolotl_monitor::{Monitor, Watchdog};
use axolotl_ring::shared::SharedBytes;
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
        let monitor = Monitor::init(
            init.os(),
            pd::CHILDREN,
            pd::TICK_CHANNEL,
            pd::TICK_SOURCE,
            Some(watchdog),
        )
        .with_name(pd::NAME)
        .with_parent(pd::PARENT_NAME);
        let monitor = match pd::MONITOR_STATE {
            // SAFETY: the runtime mapped the region read-write before init;
            // the checker lets no other PD map it; this is the only reference.
            Some(r) => monitor.with_saved_state(init.os(), unsafe { r.bytes_mut() }),
            None => monitor,
        };
        match (pd::INCARNATIONS, pd::INCARNATIONS_CHANNEL) {
            (Some(r), Some(ch)) => {
                // SAFETY: the runtime mapped the board read-write before init
                // for the life of the PD; the store may read it at any time,
                // so it is only ever written with volatile copies.
                let board = unsafe { SharedBytes::new(r.ptr(), r.size) };
                monitor.with_board(init.os(), board, ch)
            }
            _ => monitor,
        }
    })
}
