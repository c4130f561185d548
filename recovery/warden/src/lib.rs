//! The warden: the root PD, parent of the monitor and of nothing else.
//!
//! Its one job is to restart the monitor with fresh program memory when it
//! faults. It has no heap, no store client and no timer: it keeps nothing
//! but a count, so there is nothing in it to go wrong after a restart of
//! its own (it has none: it is the root). The monitor reloads its own
//! state from its state region (`axolotl_monitor::saved`); the monitor's
//! children keep running meanwhile, and their faults wait for the new
//! monitor (on seL4 in the monitor's endpoint; on the host in its control
//! socket).
//!
//! It restarts the monitor every time and at once: with no timer it could
//! only back off by spinning, and a monitor left down leaves every other PD
//! unsupervised.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

use axolotl_sdk::{Channel, ChannelSet, Child, FaultInfo, Handler, Message, Os};

/// The warden component.
pub struct Warden {
    monitor: &'static str,
    restarts: u32,
}

/// What the warden refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WardenError {
    /// A notification on a channel: the warden has none to take.
    Unexpected(Channel),
}

impl core::fmt::Display for WardenError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            WardenError::Unexpected(ch) => {
                write!(
                    f,
                    "notification on channel {}, which the warden does not use",
                    ch.index()
                )
            }
        }
    }
}

impl Warden {
    /// The warden of the monitor named `monitor` (for the log).
    pub fn init(monitor: &'static str) -> Warden {
        log::info!("warden: watching {monitor}");
        Warden {
            monitor,
            restarts: 0,
        }
    }

    /// How often the monitor was restarted.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }
}

impl Handler for Warden {
    type Error = WardenError;

    fn notified(&mut self, _os: &mut dyn Os, channels: ChannelSet) -> Result<(), WardenError> {
        match channels.into_iter().next() {
            Some(ch) => Err(WardenError::Unexpected(ch)),
            None => Ok(()),
        }
    }

    fn protected(
        &mut self,
        _os: &mut dyn Os,
        channel: Channel,
        _msg: &Message,
    ) -> Result<Message, WardenError> {
        Err(WardenError::Unexpected(channel))
    }

    fn fault(
        &mut self,
        os: &mut dyn Os,
        child: Child,
        info: &FaultInfo,
    ) -> Result<(), WardenError> {
        // system.xml's checker makes the monitor the warden's only child.
        self.restarts = self.restarts.saturating_add(1);
        log::error!(
            "warden: {} faulted: {info}; restarting it (restart #{})",
            self.monitor,
            self.restarts
        );
        os.restart_child(child);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axolotl_sdk::mock::{Event, MockOs};
    use axolotl_sdk::FaultKind;

    #[test]
    fn every_fault_of_the_monitor_restarts_it_at_once() {
        let mut os = MockOs::new();
        let mut w = Warden::init("guardian");
        let info = FaultInfo {
            kind: FaultKind::MemoryAccess,
            addr: 0,
            pc: 0x1000,
        };
        for n in 1..=3 {
            w.fault(&mut os, Child::new(0), &info).unwrap();
            assert_eq!(w.restarts(), n);
        }
        assert_eq!(os.events, vec![Event::Restart(Child::new(0)); 3]);
    }

    #[test]
    fn it_takes_no_notifications_or_calls() {
        let mut os = MockOs::new();
        let mut w = Warden::init("guardian");
        assert_eq!(
            w.notified(&mut os, ChannelSet::single(Channel::new(3))),
            Err(WardenError::Unexpected(Channel::new(3)))
        );
        assert!(w.notified(&mut os, ChannelSet::EMPTY).is_ok());
        assert!(w
            .protected(&mut os, Channel::new(1), &Message::new(0))
            .is_err());
        assert!(os.events.is_empty());
    }
}
