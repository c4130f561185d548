//! The reincarnation monitor: parent of every restartable PD.
//!
//! - A child's fault reaches [`Monitor::fault`]; the [`policy`] decides to
//!   restart it now, later (back-off), or to give up; every fault is logged
//!   with the PD's name, the fault, and the restart count.
//! - Liveness: on every tick from the timer driver the monitor pings each
//!   child that has a heartbeat by notifying the channel between them; the
//!   child's runtime answers with a notification. A child that misses
//!   `misses` periods in a row is hung: it is restarted like a faulted one.
//! - A restarted child's runtime notifies the monitor once it is up again;
//!   the monitor logs the time from fault to that moment.
//!
//! The monitor never calls a PD it supervises (it only notifies), so no child
//! can block it. Its time comes from [`Os::now`]; its ticks from the timer,
//! which is always restarted at once because back-off needs ticks.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

pub mod console;
pub mod policy;
pub mod query;
pub mod saved;

use axolotl_ring::shared::SharedBytes;
use axolotl_sdk::config::SupervisedChild;
use axolotl_sdk::{
    Channel, ChannelSet, Child, FaultInfo, FaultKind, Handler, Instant, Message, Os,
};
use axolotl_store_api::incarnations::Publisher;
use policy::{Decision, History};

const NS_PER_MS: u64 = 1_000_000;

/// Where a child is in its life, as the monitor sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Started (at boot or by a restart) and not yet signalled "up".
    Starting {
        /// When it was started.
        since: Instant,
        /// When the fault that caused this start happened, if any.
        fault_at: Option<Instant>,
    },
    /// Up and answering.
    Running,
    /// Faulted; will be restarted at `at`.
    Waiting {
        /// When to restart.
        at: Instant,
        /// When it faulted.
        fault_at: Instant,
    },
    /// Faulted too often: stopped for good.
    GaveUp,
}

/// The monitor's view of one child.
#[derive(Clone, Debug)]
pub struct ChildState {
    /// Where it is.
    pub phase: Phase,
    /// Restarts so far.
    pub restarts: u32,
    /// The last fault, if any.
    pub last_fault: Option<FaultInfo>,
    /// When the last fault happened.
    pub last_fault_at: Option<Instant>,
    /// Time from the last fault to the child being up again, in nanoseconds.
    pub last_recovery_ns: Option<u64>,
    /// Heartbeats answered.
    pub heartbeats: u64,
    /// Whether it has been up at least once.
    pub ever_up: bool,
    /// The ring counters it reported last (see [`query`]).
    pub counters: Option<query::Counters>,
    /// Stopped on purpose (an injected stall) until then.
    pub stalled_until: Option<Instant>,
    history: History,
    ping_sent: Option<Instant>,
    last_ping: Instant,
    /// Starved by a PD above it, silent for a whole period, at the last
    /// tick.
    starved: bool,
    /// Spared once already, since its last answer, for a PD above it that
    /// was only slow.
    spared: bool,
}

/// Whether a PD above a child keeps it from running (see
/// `Monitor::starved`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Starved {
    No,
    /// A PD above has a ping out, not yet for a whole period of its own:
    /// it may only be slow under load. Spares a child once.
    Briefly,
    /// A PD above has been silent for a whole period, or is starting up
    /// after a fault.
    Long,
}

/// Why the monitor could not do something. Logged by the runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MonitorError {
    /// A fault of a child that system.xml does not put under the monitor.
    UnknownChild(Child),
}

impl core::fmt::Display for MonitorError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MonitorError::UnknownChild(c) => write!(f, "fault of unknown child {}", c.index()),
        }
    }
}

/// The monitor's own alarm, independent of the timer driver: a hardware
/// watchdog that raises the monitor's `watchdog` interrupt. It is how a hung
/// timer (whose ticks are the monitor's only other wake-up) is noticed.
pub trait Watchdog {
    /// Raise the interrupt at `at`; `None` disarms.
    fn arm(&mut self, at: Option<Instant>);
}

/// No watchdog: a hung timer goes unnoticed.
pub struct NoWatchdog;

impl Watchdog for NoWatchdog {
    fn arm(&mut self, _at: Option<Instant>) {}
}

/// How long without a tick means the timer is hung, when the timer has no
/// heartbeat of its own in system.xml.
pub const DEFAULT_TICK_LIMIT_NS: u64 = 1_000 * NS_PER_MS;

/// The monitor component.
pub struct Monitor<W: Watchdog = NoWatchdog> {
    children: &'static [SupervisedChild],
    states: heapless::Vec<ChildState, 63>,
    tick: Option<Channel>,
    tick_source: Option<Child>,
    watchdog: Option<(Channel, W)>,
    last_tick: Instant,
    all_up: bool,
    console: Option<console::Console>,
    name: &'static str,
    saved: Option<saved::Saved>,
    own: saved::Own,
    /// The monitor's own parent (the warden), for status answers.
    parent: Option<&'static str>,
    /// Something worth saving changed since the last save.
    dirty: bool,
    /// Where it publishes each PD's incarnation for the store, and the
    /// channel that tells the store.
    board: Option<(Publisher, Channel)>,
    /// An incarnation changed since the last publication.
    republish: bool,
}

impl<W: Watchdog> Monitor<W> {
    /// A monitor of `children` (generated from system.xml), ticked on `tick`
    /// by the timer driver, which is the child `tick_source` (if supervised),
    /// with an optional watchdog interrupt on its channel.
    pub fn init(
        os: &mut dyn Os,
        children: &'static [SupervisedChild],
        tick: Option<Channel>,
        tick_source: Option<Child>,
        watchdog: Option<(Channel, W)>,
    ) -> Monitor<W> {
        let now = os.now();
        let mut states = heapless::Vec::new();
        for _ in children.iter().take(63) {
            let mut history = History::default();
            history.started(now);
            // Cannot fail: at most 63 are taken.
            let _ = states.push(ChildState {
                phase: Phase::Starting {
                    since: now,
                    fault_at: None,
                },
                restarts: 0,
                last_fault: None,
                last_fault_at: None,
                last_recovery_ns: None,
                heartbeats: 0,
                ever_up: false,
                counters: None,
                stalled_until: None,
                history,
                ping_sent: None,
                starved: false,
                spared: false,
                last_ping: now,
            });
        }
        log::info!("supervising {} PDs", states.len());
        let mut m = Monitor {
            children,
            states,
            tick,
            tick_source,
            watchdog,
            last_tick: now,
            all_up: false,
            console: None,
            name: "monitor",
            saved: None,
            own: saved::Own::default(),
            parent: None,
            dirty: false,
            board: None,
            republish: true,
        };
        m.arm_watchdog(now);
        m
    }

    /// Takes commands (`status`, `inject PD KIND`) from the console stream
    /// `reader`, whose writer notifies `ch`; answers go to the log, which
    /// the platform sends to the console. `name` is the monitor's own PD.
    pub fn with_console(
        mut self,
        name: &'static str,
        ch: Channel,
        reader: axolotl_ring::bytes::ByteReader,
    ) -> Self {
        self.console = Some(console::Console::new(name, ch, reader));
        self.name = name;
        self.republish = true;
        self
    }

    /// Keeps the monitor's state in `region` (system.xml's `<axolotl:monitor
    /// state>`), which outlives the monitor's restarts: what a previous
    /// incarnation saved there is loaded now (restart counts, fault
    /// history and policy windows, where each child is in its life), and
    /// every change is saved from now on. See [`saved`].
    pub fn with_saved_state(mut self, os: &mut dyn Os, region: &'static mut [u8]) -> Self {
        let mut saved = saved::Saved::new(region, self.children);
        let now = os.now();
        match saved.load(&mut self.states) {
            Some(own) => {
                self.own = saved::Own {
                    incarnation: own.incarnation.saturating_add(1),
                    all_up: own.all_up,
                };
                self.all_up = own.all_up;
                for st in &mut self.states {
                    st.last_ping = now;
                }
                let restarts: u64 = self.states.iter().map(|s| u64::from(s.restarts)).sum();
                log::warn!(
                    "the monitor is back (restart #{}): it keeps the state of {} PDs ({restarts} restarts so far)",
                    self.own.incarnation,
                    self.states.len()
                );
            }
            None => log::info!("the monitor keeps its state across its restarts"),
        }
        self.saved = Some(saved);
        self.dirty = true;
        self.republish = true;
        self.persist();
        self
    }

    /// Publishes each PD's incarnation (its restarts; the monitor's own
    /// too) in `region` (system.xml's `<axolotl:monitor publish>`), now and
    /// after every restart, and notifies `ch` each time: the store keeps
    /// them in the monitor's namespace, where any PD may watch them. See
    /// [`axolotl_store_api::incarnations`]. A name or saved state given
    /// later is published at the next event.
    pub fn with_board(mut self, os: &mut dyn Os, region: SharedBytes, ch: Channel) -> Self {
        self.board = Some((Publisher::new(region), ch));
        self.republish = true;
        self.publish(os);
        self
    }

    /// Publishes the incarnations if one changed.
    fn publish(&mut self, os: &mut dyn Os) {
        let Some((board, ch)) = &mut self.board else {
            return;
        };
        if !self.republish {
            return;
        }
        self.republish = false;
        let children = self.children.iter().zip(self.states.iter());
        let entries = children
            .map(|(c, st)| (c.name, u64::from(st.restarts)))
            .chain(core::iter::once((
                self.name,
                u64::from(self.own.incarnation),
            )));
        match board.publish(entries) {
            Ok(()) => os.notify(*ch),
            Err(e) => log::warn!("cannot publish the incarnations: {e:?}"),
        }
    }

    /// The monitor's own restarts (0 without a state region).
    pub fn own_restarts(&self) -> u32 {
        self.own.incarnation
    }

    /// Saves the state if it changed.
    fn persist(&mut self) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        if let Some(saved) = &mut self.saved {
            self.own.all_up = self.all_up;
            saved.save(&self.states, self.own);
        }
    }

    /// Names the monitor's own parent (in status answers).
    pub fn with_parent(mut self, parent: Option<&'static str>) -> Self {
        self.parent = parent;
        self
    }

    /// Names the monitor's own PD (in status answers).
    pub fn with_name(mut self, name: &'static str) -> Self {
        self.name = name;
        self.republish = true;
        self
    }

    /// The children (from system.xml) and the monitor's view of each.
    pub fn children(&self) -> impl Iterator<Item = (&SupervisedChild, &ChildState)> {
        self.children.iter().zip(self.states.iter())
    }

    /// How long without a tick means the timer is hung.
    fn tick_limit_ns(&self) -> u64 {
        let hb = self
            .children
            .iter()
            .find(|c| Some(c.child) == self.tick_source)
            .and_then(|c| c.heartbeat);
        match hb {
            Some(hb) => hb
                .period_ms
                .saturating_mul(u64::from(hb.misses))
                .saturating_mul(NS_PER_MS),
            None => DEFAULT_TICK_LIMIT_NS,
        }
    }

    fn arm_watchdog(&mut self, from: Instant) {
        let at = from.add_nanos(self.tick_limit_ns());
        if let Some((_, w)) = &mut self.watchdog {
            w.arm(Some(at));
        }
    }

    /// The watchdog fired: if the ticks stopped, the timer is hung.
    fn on_watchdog(&mut self, os: &mut dyn Os) {
        let now = os.now();
        let limit = self.tick_limit_ns();
        if now.nanos_since(self.last_tick) >= limit {
            let timer = self
                .tick_source
                .and_then(|t| self.children.iter().position(|c| c.child == t));
            match timer {
                Some(i)
                    if !matches!(self.states[i].phase, Phase::GaveUp | Phase::Waiting { .. }) =>
                {
                    log::error!(
                        "no tick for {} ms: {} is hung",
                        now.nanos_since(self.last_tick) / NS_PER_MS,
                        self.children[i].name
                    );
                    let info = FaultInfo {
                        kind: FaultKind::Hang,
                        addr: 0,
                        pc: 0,
                    };
                    self.on_fault(os, i, info, true);
                }
                _ => log::warn!(
                    "no tick for {} ms",
                    now.nanos_since(self.last_tick) / NS_PER_MS
                ),
            }
            // Without ticks nobody was pinged, and a hung timer spins above
            // most PDs: a ping that went unanswered meanwhile says nothing.
            // Their misses count again from now.
            for st in &mut self.states {
                if matches!(st.phase, Phase::Running) && st.ping_sent.is_some() {
                    st.ping_sent = Some(now);
                }
            }
            // Give the restarted timer the same time before looking again.
            self.last_tick = now;
        }
        self.arm_watchdog(self.last_tick);
    }

    /// The monitor's view of the child named `name`.
    pub fn state(&self, name: &str) -> Option<&ChildState> {
        let i = self.children.iter().position(|c| c.name == name)?;
        self.states.get(i)
    }

    fn index_of(&self, child: Child) -> Option<usize> {
        self.children.iter().position(|c| c.child == child)
    }

    fn restart(&mut self, os: &mut dyn Os, i: usize, now: Instant, fault_at: Instant) {
        self.dirty = true;
        self.republish = true;
        let (cfg, st) = (&self.children[i], &mut self.states[i]);
        st.restarts += 1;
        st.stalled_until = None;
        st.ping_sent = None;
        st.spared = false;
        st.last_ping = now;
        st.history.started(now);
        let why = st.last_fault.map(|f| f.kind.name()).unwrap_or("no fault");
        st.phase = if cfg.channel.is_some() {
            Phase::Starting {
                since: now,
                fault_at: Some(fault_at),
            }
        } else {
            // Without a channel the child cannot say it is up.
            Phase::Running
        };
        log::info!(
            "restarting {} after {why} (restart #{})",
            cfg.name,
            st.restarts
        );
        os.restart_child(cfg.child);
    }

    /// Applies the policy to a fault (or hang) of child `i`. `running` says the
    /// child is still running (a hang) and must be stopped if not restarted
    /// at once.
    fn on_fault(&mut self, os: &mut dyn Os, i: usize, info: FaultInfo, running: bool) {
        let now = os.now();
        self.dirty = true;
        let cfg = self.children[i];
        let st = &mut self.states[i];
        st.last_fault = Some(info);
        st.last_fault_at = Some(now);
        log::error!(
            "{} faulted: {} (restarts so far: {})",
            cfg.name,
            info,
            st.restarts
        );
        match st.history.on_fault(&cfg.restart, now) {
            Decision::GiveUp { faults } => {
                log::error!(
                    "giving up on {}: {} faults within {} ms; it stays stopped",
                    cfg.name,
                    faults,
                    cfg.restart.window_ms
                );
                st.phase = Phase::GaveUp;
                os.stop_child(cfg.child);
            }
            Decision::RestartAt(at) if at <= now || Some(cfg.child) == self.tick_source => {
                self.restart(os, i, now, now);
            }
            Decision::RestartAt(at) => {
                log::warn!(
                    "{} is crash-looping: restart in {} ms",
                    cfg.name,
                    at.nanos_since(now) / NS_PER_MS
                );
                st.phase = Phase::Waiting { at, fault_at: now };
                if running {
                    os.stop_child(cfg.child);
                }
            }
        }
    }

    /// A tick: stalls that are over, restarts that are due, heartbeat
    /// pings and hang detection.
    fn on_tick(&mut self, os: &mut dyn Os) {
        let now = os.now();
        for (cfg, st) in self.children.iter().zip(self.states.iter_mut()) {
            if st.stalled_until.is_some_and(|t| t <= now) {
                st.stalled_until = None;
                if st.phase == Phase::Running {
                    os.resume_child(cfg.child);
                    log::info!("{} runs on after its stall", cfg.name);
                }
            }
        }
        // Decided before this tick changes anything: a child restarted
        // below for its hang still starved the ones after it in the list.
        let mut starved = [Starved::No; 63];
        for (i, s) in starved.iter_mut().enumerate().take(self.states.len()) {
            *s = self.starved(i, now);
        }
        for i in 0..self.states.len() {
            let cfg = self.children[i];
            let starved = starved[i];
            let st = &mut self.states[i];
            // The first tick after a starvation ends starts its window
            // afresh: it may have been pinged long ago, and it must catch
            // up with what piled up while it could not run.
            let fed_again = st.starved && starved != Starved::Long;
            st.starved = starved == Starved::Long;
            // A PD above only slow spares a child once per ping: a child
            // that stays silent through a second window is hung, however
            // busy the ones above it are.
            let spare = match starved {
                Starved::Long => true,
                Starved::Briefly => !st.spared,
                Starved::No => false,
            };
            match st.phase {
                Phase::Waiting { at, fault_at } if at <= now => {
                    self.restart(os, i, now, fault_at);
                }
                Phase::Running => {
                    let (Some(hb), Some(ch)) = (cfg.heartbeat, cfg.channel) else {
                        continue;
                    };
                    let period_ns = hb.period_ms.saturating_mul(NS_PER_MS);
                    match st.ping_sent {
                        Some(_) if fed_again => st.ping_sent = Some(now),
                        Some(sent)
                            if now.nanos_since(sent)
                                >= period_ns.saturating_mul(u64::from(hb.misses))
                                && !spare =>
                        {
                            log::error!(
                                "{} missed {} heartbeats ({} ms): hung{}",
                                cfg.name,
                                hb.misses,
                                now.nanos_since(sent) / NS_PER_MS,
                                Above(self, i, now)
                            );
                            let info = FaultInfo {
                                kind: FaultKind::Hang,
                                addr: 0,
                                pc: 0,
                            };
                            self.on_fault(os, i, info, true);
                        }
                        Some(sent)
                            if spare
                                && now.nanos_since(sent)
                                    >= period_ns.saturating_mul(u64::from(hb.misses)) =>
                        {
                            // Count its misses again from now: it gets its
                            // full time once the one above it is dealt with.
                            log::debug!("{} is silent, starved by a PD above it", cfg.name);
                            st.ping_sent = Some(now);
                            st.spared |= starved == Starved::Briefly;
                        }
                        Some(_) => {}
                        None if now.nanos_since(st.last_ping) >= period_ns => {
                            st.ping_sent = Some(now);
                            st.last_ping = now;
                            os.notify(ch);
                        }
                        None => {}
                    }
                }
                Phase::Starting { since, .. } => {
                    // A child that never comes up is hung in its start-up.
                    let Some(hb) = cfg.heartbeat else { continue };
                    let limit = hb
                        .period_ms
                        .saturating_mul(u64::from(hb.misses))
                        .saturating_mul(NS_PER_MS)
                        .max(STARTUP_GRACE_NS);
                    if now.nanos_since(since) >= limit {
                        log::error!(
                            "{} did not come up within {} ms: hung",
                            cfg.name,
                            limit / NS_PER_MS
                        );
                        let info = FaultInfo {
                            kind: FaultKind::Hang,
                            addr: 0,
                            pc: 0,
                        };
                        self.on_fault(os, i, info, true);
                    }
                }
                Phase::Waiting { .. } | Phase::GaveUp => {}
            }
        }
    }

    /// Whether child `i`, silent, may only be starved: a child of higher
    /// priority is silent too (has not answered a ping sent at an earlier
    /// tick; a live one answers within microseconds, well before the next
    /// tick). On a machine with strict priorities a looping PD keeps every
    /// PD below it from running; the loop is the higher one's, which is
    /// declared hung in its turn, and the lower ones answer once it is
    /// restarted.
    fn starved(&self, i: usize, now: Instant) -> Starved {
        let me = self.children[i].priority;
        let mut judged = Starved::No;
        for (c, s) in self.children.iter().zip(self.states.iter()) {
            if c.priority <= me {
                continue;
            }
            let period = c
                .heartbeat
                .map_or(0, |h| h.period_ms.saturating_mul(NS_PER_MS));
            let this = match s.phase {
                Phase::Running => match s.ping_sent.map(|sent| now.nanos_since(sent)) {
                    Some(age) if age >= period.max(1) => Starved::Long,
                    Some(age) if age > 0 => Starved::Briefly,
                    _ => Starved::No,
                },
                // Restarted after a fault and not up yet: still running its
                // start-up, above the ones it starved.
                Phase::Starting { fault_at, .. } if fault_at.is_some() => Starved::Long,
                _ => Starved::No,
            };
            judged = judged.max(this);
        }
        judged
    }

    /// The child at the other end of `ch` signalled: it is up, or it answered
    /// a ping.
    fn on_child_signal(&mut self, os: &mut dyn Os, i: usize) {
        let now = os.now();
        let cfg = self.children[i];
        let st = &mut self.states[i];
        if st.ping_sent.take().is_some() {
            st.heartbeats += 1;
        }
        st.spared = false;
        if let Phase::Starting { fault_at, .. } = st.phase {
            self.dirty = true;
            st.phase = Phase::Running;
            st.ever_up = true;
            match fault_at {
                Some(at) => {
                    let ns = now.nanos_since(at);
                    st.last_recovery_ns = Some(ns);
                    log::info!(
                        "{} recovered in {}.{:03} ms (restart #{})",
                        cfg.name,
                        ns / NS_PER_MS,
                        (ns % NS_PER_MS) / 1_000,
                        st.restarts
                    );
                }
                None => log::debug!("{} is up", cfg.name),
            }
        }
        if !self.all_up && self.states.iter().all(|s| s.ever_up) {
            self.all_up = true;
            let ns = now.as_nanos();
            log::info!(
                "{} all {} PDs up, {}.{:03} ms after the clock started",
                console::UP_MARKER,
                // Its children, itself and its own parent (the warden).
                self.states.len() + 1 + usize::from(self.parent.is_some()),
                ns / NS_PER_MS,
                (ns % NS_PER_MS) / 1_000
            );
        }
    }
}

/// What a hang verdict saw above the child (for the log): each PD of
/// higher priority with a ping out, and for how long, or that none was
/// silent. A PD declared hung while those above it answered was not
/// starved by priority; one above it silent too points at that one.
struct Above<'a, W: Watchdog>(&'a Monitor<W>, usize, Instant);

impl<W: Watchdog> core::fmt::Display for Above<'_, W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let Above(m, i, now) = *self;
        let me = m.children[i].priority;
        let mut shown = 0;
        for (c, s) in m.children.iter().zip(m.states.iter()) {
            if c.priority <= me {
                continue;
            }
            let silent = match s.phase {
                Phase::Running => s.ping_sent.map(|t| now.nanos_since(t) / NS_PER_MS),
                Phase::Starting { .. } => Some(u64::MAX),
                _ => None,
            };
            let Some(ms) = silent else { continue };
            if shown == 4 {
                return f.write_str(", ...");
            }
            f.write_str(if shown == 0 {
                "; silent above it: "
            } else {
                ", "
            })?;
            if ms == u64::MAX {
                write!(f, "{} (starting)", c.name)?;
            } else {
                write!(f, "{} {ms} ms", c.name)?;
            }
            shown += 1;
        }
        if shown == 0 {
            f.write_str("; every PD above it answered")?;
        }
        Ok(())
    }
}

/// A restarted child gets at least this long to come up before it counts as
/// hung, however short its heartbeat period.
pub const STARTUP_GRACE_NS: u64 = 2_000 * NS_PER_MS;

impl<W: Watchdog> Handler for Monitor<W> {
    type Error = MonitorError;

    fn notified(&mut self, os: &mut dyn Os, channels: ChannelSet) -> Result<(), MonitorError> {
        let watchdog = self.watchdog.as_ref().map(|(ch, _)| *ch);
        if let Some(ch) = watchdog.filter(|&ch| channels.contains(ch)) {
            os.irq_ack(ch);
            self.on_watchdog(os);
        }
        let mut channels = channels;
        if let Some(ch) = watchdog {
            channels.remove(ch);
        }
        if let Some(ch) = self.console.as_ref().map(console::Console::channel) {
            if channels.contains(ch) {
                channels.remove(ch);
                self.on_console(os);
            }
        }
        // The tick channel is also the timer's supervision channel: a tick
        // proves the timer's event loop runs, like a heartbeat answer does.
        for ch in channels {
            match self.children.iter().position(|c| c.channel == Some(ch)) {
                Some(i) => self.on_child_signal(os, i),
                None if Some(ch) == self.tick => {}
                None => log::warn!("notification on unexpected channel {}", ch.index()),
            }
        }
        if self.tick.is_some_and(|t| channels.contains(t)) {
            self.last_tick = os.now();
            self.arm_watchdog(self.last_tick);
            self.on_tick(os);
        }
        self.persist();
        self.publish(os);
        Ok(())
    }

    fn protected(
        &mut self,
        _os: &mut dyn Os,
        channel: Channel,
        msg: &Message,
    ) -> Result<Message, MonitorError> {
        Ok(self.on_call(channel, msg))
    }

    fn fault(
        &mut self,
        os: &mut dyn Os,
        child: Child,
        info: &FaultInfo,
    ) -> Result<(), MonitorError> {
        let i = self
            .index_of(child)
            .ok_or(MonitorError::UnknownChild(child))?;
        if self.states[i].phase == Phase::GaveUp {
            return Ok(());
        }
        self.on_fault(os, i, *info, false);
        self.persist();
        self.publish(os);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
