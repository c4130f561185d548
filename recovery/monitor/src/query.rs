//! What PDs ask the monitor by protected call on their supervision
//! channel (its `pp` end is the child's):
//!
//! - [`REPORT`]: a PD reports its counters ([`Counters`]); the monitor
//!   keeps the latest per PD.
//! - [`STATUS`]: the state of PD number `i` (0 is the monitor itself, then
//!   the children in system.xml order, then the monitor's parent, the
//!   warden, if there is one), for status pages.
//!
//! Replies are plain words; a caller treats every reply as untrusted data
//! (lengths are checked, names are bounded).

use crate::{Monitor, Phase, Watchdog};
use axolotl_sdk::{CallError, Channel, FaultKind, Message, Os};

/// Label: report counters (6 words; a shorter report leaves the last
/// counters zero).
pub const REPORT: u64 = 0x5250;
/// Label: status of PD `word 0`.
pub const STATUS: u64 = 0x5354;
/// Longest PD name carried in a status reply.
pub const MAX_NAME: usize = 32;

/// Ring counters a PD reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets taken in from its rings.
    pub packets_in: u64,
    /// Packets put on its rings.
    pub packets_out: u64,
    /// Packets dropped (a full ring or queue).
    pub dropped: u64,
    /// Descriptors or packets refused as malformed.
    pub bad: u64,
    /// Times the PD's device went away and came back (for the NIC driver
    /// on the host: the gateway restarted).
    pub device_resets: u64,
    /// Buffers of its sending links out with their receivers: zero when
    /// no traffic flows, unless buffers leaked.
    pub buffers_out: u64,
}

/// The state of one PD as [`STATUS`] answers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PdState {
    /// Name bytes (`name_len` of them).
    pub name: [u8; MAX_NAME],
    /// Bytes of `name` used.
    pub name_len: usize,
    /// `running`, `starting`, `faulted`, `stopped`.
    pub phase: &'static str,
    /// Restarts so far.
    pub restarts: u32,
    /// The last fault: kind, address and time (ns since boot).
    pub last_fault: Option<(FaultKind, u64, u64)>,
    /// Last recovery time, ns.
    pub last_recovery_ns: Option<u64>,
    /// Heartbeats answered.
    pub heartbeats: u64,
    /// The latest counters it reported, if any.
    pub counters: Option<Counters>,
}

impl PdState {
    /// The name as text ("?" if it is not UTF-8).
    pub fn name(&self) -> &str {
        core::str::from_utf8(&self.name[..self.name_len.min(MAX_NAME)]).unwrap_or("?")
    }
}

const PHASES: [&str; 4] = ["running", "starting", "faulted", "stopped"];
const NONE: u64 = u64::MAX;

/// Reports `c` to the monitor on `parent` (the PD's supervision channel).
pub fn report(os: &mut dyn Os, parent: Channel, c: &Counters) -> Result<(), CallError> {
    let words = [
        c.packets_in,
        c.packets_out,
        c.dropped,
        c.bad,
        c.device_resets,
        c.buffers_out,
    ];
    let msg = Message::with_words(REPORT, &words).unwrap_or_else(|_| Message::new(REPORT));
    os.call(parent, &msg).map(|_| ())
}

/// The state of PD number `i`; `Ok(None)` past the last one.
pub fn status(os: &mut dyn Os, monitor: Channel, i: u64) -> Result<Option<PdState>, CallError> {
    let mut msg = Message::new(STATUS);
    let _ = msg.push(i);
    let reply = os.call(monitor, &msg)?;
    Ok(decode_status(&reply))
}

/// Decodes a [`STATUS`] reply; `None` for "no such PD" or a malformed one.
pub fn decode_status(m: &Message) -> Option<PdState> {
    let w = |i: usize| m.word(i);
    if m.label() != STATUS || w(0)? != 1 {
        return None;
    }
    let phase = *PHASES.get(usize::try_from(w(1)?).ok()?)?;
    let fault = match (w(3)?, w(4)?, w(5)?) {
        (NONE, _, _) => None,
        (k, addr, at) => Some((FaultKind::from_code(k)?, addr, at)),
    };
    let opt = |v: u64| (v != NONE).then_some(v);
    let counters = match w(8)? {
        1 => Some(Counters {
            packets_in: w(9)?,
            packets_out: w(10)?,
            dropped: w(11)?,
            bad: w(12)?,
            device_resets: w(13)?,
            buffers_out: w(14)?,
        }),
        _ => None,
    };
    let name_len = usize::try_from(w(15)?).ok().filter(|&n| n <= MAX_NAME)?;
    let mut name = [0u8; MAX_NAME];
    m.read_bytes(16, &mut name[..name_len])?;
    Some(PdState {
        name,
        name_len,
        phase,
        restarts: u32::try_from(w(2)?).ok()?,
        last_fault: fault,
        last_recovery_ns: opt(w(6)?),
        heartbeats: w(7)?,
        counters,
    })
}

fn encode(st: &PdState) -> Message {
    let (k, addr, at) = st
        .last_fault
        .map_or((NONE, 0, 0), |(k, a, t)| (k.code(), a, t));
    let c = st.counters.unwrap_or_default();
    let words = [
        1,
        PHASES.iter().position(|p| *p == st.phase).unwrap_or(0) as u64,
        u64::from(st.restarts),
        k,
        addr,
        at,
        st.last_recovery_ns.unwrap_or(NONE),
        st.heartbeats,
        u64::from(st.counters.is_some()),
        c.packets_in,
        c.packets_out,
        c.dropped,
        c.bad,
        c.device_resets,
        c.buffers_out,
        st.name_len as u64,
    ];
    let mut m = Message::with_words(STATUS, &words).unwrap_or_else(|_| Message::new(STATUS));
    let _ = m.push_bytes(&st.name[..st.name_len]);
    m
}

fn named(name: &str) -> ([u8; MAX_NAME], usize) {
    let mut out = [0u8; MAX_NAME];
    let n = name.len().min(MAX_NAME);
    out[..n].copy_from_slice(&name.as_bytes()[..n]);
    (out, n)
}

impl<W: Watchdog> Monitor<W> {
    /// Answers a protected call from the child on `channel`.
    pub(crate) fn on_call(&mut self, channel: Channel, msg: &Message) -> Message {
        match msg.label() {
            REPORT => {
                let Some(i) = self
                    .children
                    .iter()
                    .position(|c| c.channel == Some(channel))
                else {
                    return Message::error_reply();
                };
                let w = |k| msg.word(k).unwrap_or(0);
                self.states[i].counters = Some(Counters {
                    packets_in: w(0),
                    packets_out: w(1),
                    dropped: w(2),
                    bad: w(3),
                    device_resets: w(4),
                    buffers_out: w(5),
                });
                Message::new(REPORT)
            }
            STATUS => {
                let i = msg.word(0).unwrap_or(NONE);
                let st = match i {
                    0 => {
                        let (name, name_len) = named(self.name);
                        Some(PdState {
                            name,
                            name_len,
                            phase: "running",
                            restarts: self.own.incarnation,
                            last_fault: None,
                            last_recovery_ns: None,
                            heartbeats: 0,
                            counters: None,
                        })
                    }
                    // After the children: the monitor's parent, the
                    // warden, which runs whenever the monitor does.
                    i if i == self.children.len() as u64 + 1 => self.parent.map(|p| {
                        let (name, name_len) = named(p);
                        PdState {
                            name,
                            name_len,
                            phase: "running",
                            restarts: 0,
                            last_fault: None,
                            last_recovery_ns: None,
                            heartbeats: 0,
                            counters: None,
                        }
                    }),
                    i => usize::try_from(i - 1).ok().and_then(|i| {
                        let (cfg, s) = (self.children.get(i)?, self.states.get(i)?);
                        let (name, name_len) = named(cfg.name);
                        Some(PdState {
                            name,
                            name_len,
                            phase: match s.phase {
                                Phase::Running => "running",
                                Phase::Starting { .. } => "starting",
                                Phase::Waiting { .. } => "faulted",
                                Phase::GaveUp => "stopped",
                            },
                            restarts: s.restarts,
                            last_fault: s.last_fault.map(|f| {
                                (f.kind, f.addr, s.last_fault_at.map_or(0, |t| t.as_nanos()))
                            }),
                            last_recovery_ns: s.last_recovery_ns,
                            heartbeats: s.heartbeats,
                            counters: s.counters,
                        })
                    }),
                };
                match st {
                    Some(st) => encode(&st),
                    None => {
                        Message::with_words(STATUS, &[0]).unwrap_or_else(|_| Message::new(STATUS))
                    }
                }
            }
            _ => Message::error_reply(),
        }
    }
}

/// A component whose ring counters its PD reports.
pub trait HasCounters {
    /// The counters now (it may take back returned buffers to count them).
    fn counters(&mut self) -> Counters;
}

/// Least time between two reports.
pub const REPORT_PERIOD_NS: u64 = 500_000_000;

/// A PD's handler that reports its counters to the monitor after it ran,
/// when they changed, at most every [`REPORT_PERIOD_NS`].
pub struct Reported<H> {
    inner: H,
    parent: Option<Channel>,
    last: Option<(axolotl_sdk::Instant, Counters)>,
}

impl<H> Reported<H> {
    /// `inner`, reporting on `parent` (the PD's supervision channel, `pp`
    /// on its end); without one nothing is reported.
    pub fn new(inner: H, parent: Option<Channel>) -> Self {
        Reported {
            inner,
            parent,
            last: None,
        }
    }
}

impl<H: HasCounters> Reported<H> {
    fn maybe_report(&mut self, os: &mut dyn Os) {
        let Some(parent) = self.parent else { return };
        let c = self.inner.counters();
        let now = os.now();
        let due = match self.last {
            None => true,
            Some((at, sent)) => sent != c && now.nanos_since(at) >= REPORT_PERIOD_NS,
        };
        if !due {
            return;
        }
        match report(os, parent, &c) {
            Ok(()) => self.last = Some((now, c)),
            Err(e) => {
                log::warn!("cannot report counters: {e}");
                // Do not try on every event: wait a period.
                self.last = Some((now, c));
            }
        }
    }
}

impl<H: axolotl_sdk::Handler + HasCounters> axolotl_sdk::Handler for Reported<H> {
    type Error = H::Error;

    fn notified(
        &mut self,
        os: &mut dyn Os,
        channels: axolotl_sdk::ChannelSet,
    ) -> Result<(), Self::Error> {
        let r = self.inner.notified(os, channels);
        self.maybe_report(os);
        r
    }

    fn protected(
        &mut self,
        os: &mut dyn Os,
        channel: Channel,
        msg: &Message,
    ) -> Result<Message, Self::Error> {
        self.inner.protected(os, channel, msg)
    }

    fn fault(
        &mut self,
        os: &mut dyn Os,
        child: axolotl_sdk::Child,
        info: &axolotl_sdk::FaultInfo,
    ) -> Result<(), Self::Error> {
        self.inner.fault(os, child, info)
    }
}
