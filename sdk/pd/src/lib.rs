//! The Axolotl protection-domain (PD) programming model.
//!
//! Every PD has one shape, modelled on seL4 Microkit and rust-sel4's
//! `sel4-microkit` `Handler`: it is built once by an `init` function, then the
//! runtime calls [`Handler::notified`] when notifications arrive,
//! [`Handler::protected`] when a neighbour makes a protected procedure call, and
//! (for parents) [`Handler::fault`] when a child faults.
//!
//! Everything that touches the platform goes through the [`Os`] trait, which has
//! one back-end per platform (the Linux-hosted runtime in `axolotl-host`, the seL4
//! runtime built on `sel4-microkit`). Component logic never uses `cfg` to tell
//! platforms apart.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

mod channel;
pub mod config;
pub mod crc;
mod fault;
mod message;
#[cfg(any(test, feature = "mock"))]
pub mod mock;

pub use channel::{Channel, ChannelSet, ChannelSetIter, Child, MAX_CHANNELS};
pub use fault::{FaultInfo, FaultKind};
pub use message::{Message, MessageFull, MAX_MESSAGE_WORDS, PEER_RESTARTED_LABEL};

/// Monotonic time in nanoseconds since an arbitrary origin (boot, on seL4; the
/// start of the run, on the host).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(pub u64);

impl Instant {
    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// `self + ns`, saturating.
    pub const fn add_nanos(self, ns: u64) -> Instant {
        Instant(self.0.saturating_add(ns))
    }

    /// Nanoseconds from `earlier` to `self`, zero if `earlier` is later.
    pub const fn nanos_since(self, earlier: Instant) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// Why a protected procedure call did not return a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallError {
    /// The channel does not exist for this PD, or this end may not call (`pp`
    /// is not set on it in system.xml).
    NotPermitted,
    /// The callee faulted or was restarted while the call was outstanding; the
    /// call may or may not have taken effect. Callers decide whether to retry.
    PeerRestarted,
    /// The callee is stopped (its parent gave up on it).
    PeerStopped,
}

impl core::fmt::Display for CallError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            CallError::NotPermitted => "channel does not permit a protected call",
            CallError::PeerRestarted => "peer restarted during the call",
            CallError::PeerStopped => "peer is stopped",
        })
    }
}

/// The platform as one PD sees it. One implementation per back-end.
pub trait Os {
    /// Signal the PD at the other end of `channel`. Never blocks. Notifications
    /// to one channel coalesce until the receiver runs, as on seL4.
    fn notify(&mut self, channel: Channel);

    /// Protected procedure call to the PD at the other end of `channel`, which
    /// must have a strictly higher priority (checked by `axolotl check`).
    /// Blocks until the callee replies.
    fn call(&mut self, channel: Channel, msg: &Message) -> Result<Message, CallError>;

    /// Acknowledge the interrupt delivered on `channel`, so that it can fire
    /// again.
    fn irq_ack(&mut self, channel: Channel);

    /// Monotonic time. Reading it never blocks and never involves another PD.
    fn now(&self) -> Instant;

    /// Restart `child` with fresh program memory (`.data`, `.bss`, heap and
    /// stack); memory regions keep their contents. If the child is running
    /// (for example, it hangs), it is stopped first. Only a parent may do this.
    fn restart_child(&mut self, child: Child);

    /// Stop `child` for good (until a later `restart_child`).
    fn stop_child(&mut self, child: Child);

    /// Let a child stopped by [`Os::stop_child`] run on from where it was
    /// (a stall injected on purpose ends). Platforms that stall PDs
    /// through a supervisor instead keep the default, which does nothing.
    fn resume_child(&mut self, child: Child) {
        let _ = child;
    }

    /// Called by a handler between rounds of a long stretch of work (a
    /// stream of packets): the platform answers what shows the PD alive
    /// (its parent's heartbeats) without waiting for the handler to
    /// return, and keeps any other notification it took for the handler's
    /// next `notified`. The default does nothing; a platform whose
    /// heartbeats only the event loop can answer keeps that default (on
    /// seL4, a PD that others call: its input is an endpoint).
    fn keepalive(&mut self) {}

    /// Make `child` fault on purpose, as `kind` says: a debugging aid for
    /// testing recovery. Only a parent may do this. Platforms where the
    /// parent cannot (the Linux host injects through its supervisor
    /// instead) say why.
    fn inject_child(&mut self, child: Child, kind: InjectKind) -> Result<(), &'static str> {
        let _ = (child, kind);
        Err("this platform injects faults through its supervisor, not the parent PD")
    }

    /// Make this PD itself fault as `kind` says (the monitor, asked on its
    /// console to fault itself). On success it does not return (the PD
    /// faults, or hangs), except for the kinds that carry on
    /// ([`InjectKind::carries_on`]). Platforms that inject through a
    /// supervisor say so.
    fn inject_self(&mut self, kind: InjectKind) -> Result<(), &'static str> {
        let _ = kind;
        Err("this platform injects faults through its supervisor, not the PD itself")
    }
}

/// A fault to inject into a PD ([`Os::inject_child`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InjectKind {
    /// Write through a null pointer.
    NullDeref,
    /// Panic.
    Panic,
    /// Loop for ever, answering nothing (the heartbeat catches it).
    Hang,
    /// Write random descriptors and bytes into every ring and pool the PD
    /// produces, then carry on (its neighbours must count and drop them).
    Garbage,
    /// Flip this many random bits of the PD's own private writable memory
    /// (1 to [`MAX_CORRUPT_BITS`]), then carry on if it can.
    Corrupt(u32),
}

/// Bits one `corrupt` fault flips at most.
pub const MAX_CORRUPT_BITS: u32 = 64;

impl InjectKind {
    /// Parses the names `axolotl inject` takes: `segv`, `panic`, `hang`,
    /// `garbage`, `corrupt` (one bit; [`InjectKind::Corrupt`] takes more).
    pub fn from_name(name: &str) -> Option<InjectKind> {
        match name {
            "segv" | "null" => Some(InjectKind::NullDeref),
            "panic" => Some(InjectKind::Panic),
            "hang" => Some(InjectKind::Hang),
            "garbage" => Some(InjectKind::Garbage),
            "corrupt" => Some(InjectKind::Corrupt(1)),
            _ => None,
        }
    }

    /// The name `axolotl inject` takes.
    pub fn name(self) -> &'static str {
        match self {
            InjectKind::NullDeref => "segv",
            InjectKind::Panic => "panic",
            InjectKind::Hang => "hang",
            InjectKind::Garbage => "garbage",
            InjectKind::Corrupt(_) => "corrupt",
        }
    }

    /// Whether the PD carries on after it (rather than fault or hang).
    pub fn carries_on(self) -> bool {
        matches!(self, InjectKind::Garbage | InjectKind::Corrupt(_))
    }
}

/// One PD: the runtime builds it with an `init` function, then feeds it events.
///
/// Each method returns a `Result`; an `Err` is logged and counted by the
/// runtime, never turned into a crash of the PD.
pub trait Handler {
    /// What a handler can fail with. Displayed in the log.
    type Error: core::fmt::Display;

    /// Notifications arrived on every channel in `channels`.
    fn notified(&mut self, os: &mut dyn Os, channels: ChannelSet) -> Result<(), Self::Error>;

    /// A protected procedure call arrived on `channel`. The returned message is
    /// the reply. The default refuses every call.
    fn protected(
        &mut self,
        os: &mut dyn Os,
        channel: Channel,
        msg: &Message,
    ) -> Result<Message, Self::Error> {
        let _ = (os, msg);
        log::warn!("unexpected protected call on channel {}", channel.index());
        Ok(Message::error_reply())
    }

    /// The child `child` faulted. It is not running now; the handler decides
    /// whether and when to restart it (see [`Os::restart_child`]). The default
    /// logs the fault and leaves the child stopped.
    fn fault(
        &mut self,
        os: &mut dyn Os,
        child: Child,
        info: &FaultInfo,
    ) -> Result<(), Self::Error> {
        let _ = os;
        log::error!(
            "child {} faulted: {}; no fault handler, leaving it stopped",
            child.index(),
            info
        );
        Ok(())
    }
}

/// Brings in the constants generated from system.xml for this PD (see
/// `axolotl-codegen`) as module `pd`. The PD crate's build script must call
/// `axolotl_codegen::build::generate("<program image>")`.
#[macro_export]
macro_rules! include_pd {
    () => {
        /// Constants generated from system.xml for this PD.
        #[allow(dead_code, unused_imports)]
        pub mod pd {
            include!(concat!(env!("OUT_DIR"), "/pd.rs"));
        }
    };
}
