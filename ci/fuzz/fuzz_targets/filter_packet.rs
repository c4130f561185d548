//! Packets both ways through the packet filter's checks.
#![no_main]
use axolotl_filter::{Action, Direction, Filter, Policy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut f = Filter::new(Policy {
        rules: Default::default(),
        default: Action::Pass,
    });
    f.resync_until(u64::from(data.first().copied().unwrap_or(0)) * 1000);
    let mut now = 0;
    for chunk in data.chunks(97) {
        let dir = if chunk.first().is_some_and(|b| b & 1 == 1) {
            Direction::Out
        } else {
            Direction::In
        };
        f.check(dir, chunk, now);
        now += 1_000_000_000;
    }
    f.expire(now);
});
