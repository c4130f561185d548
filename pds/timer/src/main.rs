//! The timer driver PD on the Linux host: the portable `axolotl-timer` driver
//! over the host's timer device model (a timerfd delivering its expiry as the
//! PD's timer interrupt).

use axolotl_sdk::Instant;
use axolotl_timer::{TimerDriver, TimerHw};

axolotl_sdk::include_pd!();

struct HostTimer(axolotl_host::Alarm);

impl TimerHw for HostTimer {
    fn now(&self) -> Instant {
        self.0.now()
    }
    fn set_alarm(&mut self, at: Option<Instant>) {
        self.0.set(at)
    }
}

fn main() {
    axolotl_host::pd_main(pd::SYSTEM_FINGERPRINT, |init| {
        let alarm = match init.alarm(pd::irq::TIMER) {
            Ok(a) => a,
            Err(e) => panic!("no host timer device: {e}"),
        };
        TimerDriver::init(
            init.os(),
            HostTimer(alarm),
            pd::irq::TIMER,
            pd::TICKS,
            pd::TIMER_CLIENTS,
        )
    })
}
