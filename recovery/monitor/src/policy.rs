//! The restart policy, as a pure function of the fault history and time.

use axolotl_sdk::config::RestartPolicy;
use axolotl_sdk::Instant;
use heapless::Deque;

/// At most this many recent faults are remembered per child; larger
/// `max_faults` values are clamped to it.
pub const MAX_TRACKED_FAULTS: usize = 64;

/// The first delay of a crash loop when the policy's initial back-off is zero.
pub const CRASH_LOOP_FIRST_DELAY_MS: u64 = 10;

const NS_PER_MS: u64 = 1_000_000;

/// What to do with a child that just faulted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Restart it when this time comes (now or later).
    RestartAt(Instant),
    /// It faulted `faults` times within the window: leave it stopped.
    GiveUp {
        /// Faults counted in the window.
        faults: usize,
    },
}

/// What the policy remembers about one child.
#[derive(Clone, Debug, Default)]
pub struct History {
    pub(crate) recent: Deque<Instant, MAX_TRACKED_FAULTS>,
    pub(crate) started_at: Instant,
    pub(crate) delay_ms: u64,
}

impl History {
    /// A child that started at `now`.
    pub fn started(&mut self, now: Instant) {
        self.started_at = now;
    }

    /// The delay chosen for the last restart, in milliseconds.
    pub fn delay_ms(&self) -> u64 {
        self.delay_ms
    }

    /// Records a fault at `now` and decides.
    ///
    /// - Faults older than the window are forgotten; `max_faults` faults inside
    ///   it mean give up (if `max_faults` is not zero).
    /// - A child that ran at least `min_run_ms` is restarted after the initial
    ///   back-off. One that faulted sooner is in a crash loop: the delay
    ///   doubles each time (starting from the initial back-off, or
    ///   [`CRASH_LOOP_FIRST_DELAY_MS`] if that is zero), up to the maximum.
    pub fn on_fault(&mut self, policy: &RestartPolicy, now: Instant) -> Decision {
        let window_ns = policy.window_ms.saturating_mul(NS_PER_MS);
        while self
            .recent
            .front()
            .is_some_and(|&t| now.nanos_since(t) >= window_ns)
        {
            self.recent.pop_front();
        }
        if self.recent.is_full() {
            self.recent.pop_front();
        }
        // Cannot fail: a slot was just freed if it was full.
        let _ = self.recent.push_back(now);

        let limit = (policy.max_faults as usize).min(MAX_TRACKED_FAULTS);
        if limit > 0 && self.recent.len() >= limit {
            return Decision::GiveUp {
                faults: self.recent.len(),
            };
        }

        let ran_ms = now.nanos_since(self.started_at) / NS_PER_MS;
        self.delay_ms = if ran_ms >= policy.min_run_ms {
            policy.initial_backoff_ms
        } else {
            let floor = policy.initial_backoff_ms.max(CRASH_LOOP_FIRST_DELAY_MS);
            self.delay_ms
                .saturating_mul(2)
                .max(floor)
                .min(policy.max_backoff_ms.max(policy.initial_backoff_ms))
        };
        Decision::RestartAt(now.add_nanos(self.delay_ms.saturating_mul(NS_PER_MS)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RestartPolicy = RestartPolicy {
        initial_backoff_ms: 0,
        max_backoff_ms: 100,
        min_run_ms: 1_000,
        max_faults: 5,
        window_ms: 10_000,
    };

    fn ms(v: u64) -> Instant {
        Instant(v * NS_PER_MS)
    }

    #[test]
    fn a_child_that_ran_long_enough_restarts_at_once() {
        let mut h = History::default();
        h.started(ms(0));
        assert_eq!(
            h.on_fault(&POLICY, ms(5_000)),
            Decision::RestartAt(ms(5_000))
        );
        h.started(ms(5_000));
        assert_eq!(
            h.on_fault(&POLICY, ms(9_000)),
            Decision::RestartAt(ms(9_000))
        );
    }

    #[test]
    fn a_crash_loop_backs_off_exponentially_up_to_the_maximum() {
        let policy = RestartPolicy {
            max_faults: 0,
            ..POLICY
        };
        let mut h = History::default();
        let mut now = ms(2_000);
        h.started(ms(0));
        assert_eq!(h.on_fault(&policy, now), Decision::RestartAt(now));
        let mut delays = Vec::new();
        for _ in 0..6 {
            h.started(now);
            now = now.add_nanos(5 * NS_PER_MS);
            h.on_fault(&policy, now);
            delays.push(h.delay_ms());
        }
        assert_eq!(delays, vec![10, 20, 40, 80, 100, 100]);
        // Running long enough resets the back-off.
        h.started(now);
        now = now.add_nanos(1_000 * NS_PER_MS);
        assert_eq!(h.on_fault(&policy, now), Decision::RestartAt(now));
    }

    #[test]
    fn gives_up_after_max_faults_in_the_window_only() {
        let mut h = History::default();
        for i in 0..4 {
            h.started(ms(i * 3_000));
            let d = h.on_fault(&POLICY, ms(i * 3_000 + 2_000));
            assert!(matches!(d, Decision::RestartAt(_)), "fault {i}: {d:?}");
        }
        // Faults at 2, 5, 8, 11 s: the one at 2 s has left the 10 s window.
        h.started(ms(12_000));
        assert!(matches!(
            h.on_fault(&POLICY, ms(12_500)),
            Decision::RestartAt(_)
        ));
        h.started(ms(13_000));
        assert_eq!(
            h.on_fault(&POLICY, ms(13_500)),
            Decision::GiveUp { faults: 5 }
        );
    }

    #[test]
    fn zero_max_faults_never_gives_up() {
        let policy = RestartPolicy {
            max_faults: 0,
            ..POLICY
        };
        let mut h = History::default();
        for i in 0..1_000 {
            assert!(matches!(h.on_fault(&policy, ms(i)), Decision::RestartAt(_)));
        }
    }
}
