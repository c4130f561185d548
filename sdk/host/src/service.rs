//! Services of `axolotl run` itself that are not PDs (the host gateway):
//! supervised like PDs all the same.
//!
//! A service runs on a thread of the supervisor's process. It calls
//! [`Service::serve`] with one round of its work at a time: a panic in a
//! round is caught, counted and logged, and the service is started again
//! with fresh state (its `restart` callback), under a crash-loop limit.
//! Each round is also a heartbeat. `axolotl status` shows a service as a
//! row of its own, and `axolotl inject NAME panic|hang` works on it.
//!
//! What cannot be mended ends `axolotl run` with an error naming the
//! service, never a silent half-working system: a service over its
//! crash-loop limit, one whose thread ended, one that stopped answering
//! (a hang: a thread cannot be killed and started again in its place).

use crate::status::{FaultStatus, PdStatus};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// More faults than this within [`FAULT_WINDOW`] and the service is given up.
pub const MAX_FAULTS: usize = 10;
/// The window of [`MAX_FAULTS`].
pub const FAULT_WINDOW: Duration = Duration::from_secs(10);
/// A service silent for this long is hung.
pub const HANG_LIMIT: Duration = Duration::from_secs(5);

const INJECT_NONE: u8 = 0;
const INJECT_PANIC: u8 = 1;
const INJECT_HANG: u8 = 2;

#[derive(Default)]
struct Record {
    restarts: u32,
    /// The last fault: the panic message and when (since the service began).
    last_fault: Option<(String, Duration)>,
    last_recovery: Option<Duration>,
    /// Recent fault times, for the crash-loop limit.
    recent: Vec<Instant>,
    /// Why the service ended, once it has.
    failed: Option<String>,
}

struct Shared {
    name: String,
    t0: Instant,
    /// Nanoseconds since `t0` of the last round.
    beat_ns: AtomicU64,
    inject: AtomicU8,
    record: Mutex<Record>,
    /// Readable once the service has failed for good.
    wake_rx: UnixDatagram,
    wake_tx: UnixDatagram,
}

/// The handle on a service: one is kept by its thread, one by the
/// supervisor (clones share everything).
#[derive(Clone)]
pub struct Service(Arc<Shared>);

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Service({})", self.0.name)
    }
}

impl Service {
    /// A service named `name` (as `status` and `inject` name it).
    pub fn new(name: &str) -> std::io::Result<Service> {
        let (wake_rx, wake_tx) = UnixDatagram::pair()?;
        wake_rx.set_nonblocking(true)?;
        wake_tx.set_nonblocking(true)?;
        Ok(Service(Arc::new(Shared {
            name: name.into(),
            t0: Instant::now(),
            beat_ns: AtomicU64::new(0),
            inject: AtomicU8::new(INJECT_NONE),
            record: Mutex::new(Record::default()),
            wake_rx,
            wake_tx,
        })))
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    fn record(&self) -> std::sync::MutexGuard<'_, Record> {
        // A panic never happens while the lock is held; recover anyway.
        self.0.record.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn beat(&self) {
        let ns = self.0.t0.elapsed().as_nanos() as u64;
        self.0.beat_ns.store(ns, Ordering::Relaxed);
    }

    /// Runs `round` for ever on `state`, the way a parent runs a PD: a
    /// panic in a round is a fault; `restart` then builds the state anew
    /// from what the old one keeps (sockets bound to host ports, say).
    /// Returns only when the service is given up (the reason is recorded).
    pub fn serve<S>(&self, mut state: S, mut round: impl FnMut(&mut S), restart: impl Fn(&mut S)) {
        loop {
            self.beat();
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                match self.0.inject.swap(INJECT_NONE, Ordering::Relaxed) {
                    INJECT_PANIC => panic!("injected fault: panic"),
                    INJECT_HANG => {
                        log::warn!("{}: injected fault: hang", self.0.name);
                        loop {
                            std::thread::park();
                        }
                    }
                    _ => round(&mut state),
                }
            }));
            let Err(payload) = outcome else { continue };
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            let fault_at = Instant::now();
            {
                let mut r = self.record();
                r.last_fault = Some((message.clone(), self.0.t0.elapsed()));
                r.recent
                    .retain(|t| fault_at.duration_since(*t) < FAULT_WINDOW);
                r.recent.push(fault_at);
                if r.recent.len() > MAX_FAULTS {
                    drop(r);
                    self.fail(format!(
                        "{} failed {} times within {} s, the last time with: {message}",
                        self.0.name,
                        MAX_FAULTS + 1,
                        FAULT_WINDOW.as_secs()
                    ));
                    return;
                }
            }
            log::error!("{} faulted: {message}; restarting it", self.0.name);
            if catch_unwind(AssertUnwindSafe(|| restart(&mut state))).is_err() {
                self.fail(format!("{} could not be restarted", self.0.name));
                return;
            }
            let mut r = self.record();
            r.restarts += 1;
            r.last_recovery = Some(fault_at.elapsed());
            log::info!(
                "{} restarted with fresh state (restart #{})",
                self.0.name,
                r.restarts
            );
        }
    }

    /// Gives the service up for `why`, and wakes the supervisor, which
    /// then ends `axolotl run` with that error.
    pub fn fail(&self, why: String) {
        log::error!("{why}");
        self.record().failed.get_or_insert(why);
        let _ = self.0.wake_tx.send(&[1]);
    }

    /// Readable when the service may have failed: the supervisor polls it.
    pub fn wake_fd(&self) -> RawFd {
        self.0.wake_rx.as_raw_fd()
    }

    /// Why the service cannot go on, if it cannot: given up, or silent
    /// for longer than [`HANG_LIMIT`].
    pub fn failure(&self) -> Option<String> {
        let mut buf = [0u8; 16];
        while self.0.wake_rx.recv(&mut buf).is_ok() {}
        if let Some(why) = &self.record().failed {
            return Some(why.clone());
        }
        let beat = Duration::from_nanos(self.0.beat_ns.load(Ordering::Relaxed));
        let silent = self.0.t0.elapsed().saturating_sub(beat);
        (silent > HANG_LIMIT).then(|| {
            format!(
                "{} hung: no round for {:.1} s (a thread cannot be restarted in its place)",
                self.0.name,
                silent.as_secs_f64()
            )
        })
    }

    /// Asks for a fault in the next round: `panic` or `hang`.
    pub fn inject(&self, kind: &str) -> Result<(), String> {
        let k = match kind {
            "panic" => INJECT_PANIC,
            "hang" => INJECT_HANG,
            _ => {
                return Err(format!(
                "{} is a thread of axolotl run, not a process: it takes panic or hang, not {kind}",
                self.0.name
            ))
            }
        };
        self.0.inject.store(k, Ordering::Relaxed);
        Ok(())
    }

    /// The row `axolotl status` shows. Fault times count from the
    /// service's creation, just before the system started.
    pub fn status(&self) -> PdStatus {
        let r = self.record();
        let state = if r.failed.is_some() {
            "dead"
        } else {
            "running"
        };
        PdStatus {
            name: self.0.name.clone(),
            state: state.into(),
            pid: None,
            parent: Some("axolotl".into()),
            restarts: r.restarts,
            max_faults: None,
            window_ms: None,
            last_fault: r.last_fault.as_ref().map(|(m, at)| FaultStatus {
                kind: "panic".into(),
                addr: "0x0".into(),
                pc: "0x0".into(),
                message: Some(m.clone()),
                at_s: at.as_secs_f64(),
            }),
            last_recovery_us: r.last_recovery.map(|d| d.as_secs_f64() * 1e6),
            last_recovery_to_notified_us: None,
            notifications: 0,
            calls: 0,
            heartbeats: 0,
            errors: 0,
            bad_packets: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Runs a service on a thread; the counter returned counts its fresh
    /// states. Round `n` of a state panics when `panic_at(n, fresh states
    /// so far)`.
    fn spawn(
        svc: &Service,
        panic_at: fn(usize, usize) -> bool,
    ) -> (Arc<AtomicUsize>, std::thread::JoinHandle<()>) {
        let restarts = Arc::new(AtomicUsize::new(0));
        let (s, r) = (svc.clone(), restarts.clone());
        let r2 = restarts.clone();
        let t = std::thread::spawn(move || {
            s.serve(
                0usize,
                |n| {
                    *n += 1;
                    if panic_at(*n, r2.load(Ordering::Relaxed)) {
                        panic!("boom at round {n}");
                    }
                    std::thread::sleep(Duration::from_millis(1));
                },
                |n| {
                    *n = 0;
                    r.fetch_add(1, Ordering::Relaxed);
                },
            )
        });
        (restarts, t)
    }

    fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
        let t = Instant::now();
        while !f() {
            assert!(t.elapsed() < Duration::from_secs(10), "no {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_panic_restarts_the_service_with_fresh_state_and_is_counted() {
        let svc = Service::new("svc").unwrap();
        // Round 3 of the first two states panics; the third runs on.
        let (restarts, _t) = spawn(&svc, |n, r| n == 3 && r < 2);
        // Fresh state each time: round 3 comes again, and faults again.
        wait_for("two restarts", || svc.status().restarts == 2);
        assert_eq!(restarts.load(Ordering::Relaxed), 2);
        std::thread::sleep(Duration::from_millis(20));
        let st = svc.status();
        assert_eq!(st.restarts, 2);
        assert_eq!(st.state, "running");
        let f = st.last_fault.unwrap();
        assert_eq!(f.kind, "panic");
        assert_eq!(f.message.as_deref(), Some("boom at round 3"));
        assert!(svc.failure().is_none());
    }

    #[test]
    fn a_crash_loop_gives_the_service_up_and_says_why() {
        let svc = Service::new("svc").unwrap();
        let (_, t) = spawn(&svc, |_, _| true);
        t.join().unwrap();
        // The supervisor is woken.
        let mut fds = [libc::pollfd {
            fd: svc.wake_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        crate::sys::poll(&mut fds, 0).unwrap();
        assert_ne!(fds[0].revents & libc::POLLIN, 0);
        let why = svc.failure().expect("a crash loop is a failure");
        assert!(why.contains("svc failed 11 times"), "{why}");
        assert!(why.contains("boom at round 1"), "{why}");
        assert_eq!(svc.status().state, "dead");
    }

    #[test]
    fn injected_faults_panic_once_or_hang_for_good() {
        let svc = Service::new("svc").unwrap();
        let (restarts, _t) = spawn(&svc, |_, _| false);
        svc.inject("panic").unwrap();
        wait_for("restart", || restarts.load(Ordering::Relaxed) == 1);
        assert_eq!(
            svc.status().last_fault.unwrap().message.as_deref(),
            Some("injected fault: panic")
        );
        assert!(svc.inject("segv").unwrap_err().contains("panic or hang"));
        svc.inject("hang").unwrap();
        // Hung: the failure shows once the hang limit has passed.
        let start = Instant::now();
        wait_for("hang", || {
            start.elapsed() > HANG_LIMIT + Duration::from_millis(200) && svc.failure().is_some()
        });
        assert!(svc.failure().unwrap().contains("svc hung"));
    }
}
