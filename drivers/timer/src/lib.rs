//! The timer driver: the only PD that owns a hardware timer.
//!
//! Clients (lower priority, `pp="true"` towards the timer) ask for time and
//! one-shot timeouts by protected call ([`client`]); when a timeout expires the
//! timer notifies the client's channel. A client has at most one timeout
//! pending, as in sDDF's timer protocol: a new request replaces the old one.
//!
//! The monitor never calls a PD it supervises, so it does not call the timer:
//! it gets periodic ticks instead, configured from system.xml
//! ([`axolotl_sdk::config::Tick`]).
//!
//! Resynchronisation: a restarted timer has forgotten every pending timeout,
//! so at start it notifies every client once. Clients treat any notification
//! from the timer as "check your deadlines and ask again if needed".
//!
//! The hardware is behind [`TimerHw`]; the host runtime and each seL4 board
//! provide one.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

pub mod client;

use axolotl_sdk::config::Tick;
use axolotl_sdk::{Channel, ChannelSet, Handler, Instant, Message, Os, MAX_CHANNELS};

/// Protected-call labels of the timer protocol.
pub mod label {
    /// Reply word 0: the current time in nanoseconds.
    pub const GET_TIME: u64 = 1;
    /// Word 0: nanoseconds from now. Replaces the caller's pending timeout.
    pub const SET_TIMEOUT: u64 = 2;
    /// Cancels the caller's pending timeout.
    pub const CANCEL: u64 = 3;
}

/// A hardware timer: a monotonic counter and one alarm that raises the
/// driver's interrupt.
pub trait TimerHw {
    /// The current time.
    fn now(&self) -> Instant;
    /// Raise the interrupt at `at` (or at once if it has passed); `None`
    /// disarms.
    fn set_alarm(&mut self, at: Option<Instant>);
}

/// Why a timer request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerError {
    /// A protected call with a label the timer does not know.
    UnknownRequest(u64),
    /// A request without its argument word.
    MissingArgument,
}

impl core::fmt::Display for TimerError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TimerError::UnknownRequest(l) => write!(f, "unknown timer request label {l}"),
            TimerError::MissingArgument => f.write_str("timer request without its argument"),
        }
    }
}

/// The timer driver component.
pub struct TimerDriver<H: TimerHw> {
    hw: H,
    irq: Channel,
    /// Pending one-shot deadline per client channel.
    deadlines: [Option<Instant>; MAX_CHANNELS as usize],
    /// Periodic ticks and the next time each is due.
    ticks: &'static [Tick],
    next_tick: [Instant; MAX_CHANNELS as usize],
    refused: u64,
}

impl<H: TimerHw> TimerDriver<H> {
    /// Starts the driver: arms the ticks and notifies every channel in
    /// `clients` so that they re-arm whatever timeouts a previous incarnation
    /// of the timer forgot.
    pub fn init(
        os: &mut dyn Os,
        hw: H,
        irq: Channel,
        ticks: &'static [Tick],
        clients: ChannelSet,
    ) -> Self {
        let now = hw.now();
        let mut next_tick = [Instant(0); MAX_CHANNELS as usize];
        for tick in ticks {
            next_tick[tick.channel.index() as usize] = now.add_nanos(tick.period_ns);
        }
        let mut driver = TimerDriver {
            hw,
            irq,
            deadlines: [None; MAX_CHANNELS as usize],
            ticks,
            next_tick,
            refused: 0,
        };
        for ch in clients {
            os.notify(ch);
        }
        driver.rearm();
        driver
    }

    /// Requests refused so far (bad labels, missing arguments).
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// The earliest pending deadline or tick, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        let timeouts = self.deadlines.iter().flatten().copied();
        let ticks = self
            .ticks
            .iter()
            .map(|t| self.next_tick[t.channel.index() as usize]);
        timeouts.chain(ticks).min()
    }

    fn rearm(&mut self) {
        let next = self.next_deadline();
        self.hw.set_alarm(next);
    }

    /// Notifies every client whose deadline has passed and every tick that is
    /// due, then re-arms the hardware.
    pub fn fire_expired(&mut self, os: &mut dyn Os) {
        let now = self.hw.now();
        for (id, slot) in self.deadlines.iter_mut().enumerate() {
            if slot.is_some_and(|d| d <= now) {
                *slot = None;
                if let Some(ch) = Channel::checked(id as u64) {
                    os.notify(ch);
                }
            }
        }
        for tick in self.ticks {
            let next = &mut self.next_tick[tick.channel.index() as usize];
            if *next <= now {
                os.notify(tick.channel);
                // Skip missed periods rather than firing a burst.
                let period = tick.period_ns.max(1);
                let behind = now.nanos_since(*next) / period + 1;
                *next = next.add_nanos(behind.saturating_mul(period));
            }
        }
        self.rearm();
    }

    fn request(&mut self, channel: Channel, msg: &Message) -> Result<Message, TimerError> {
        let now = self.hw.now();
        match msg.label() {
            label::GET_TIME => {
                let mut reply = Message::new(0);
                let _ = reply.push(now.as_nanos());
                Ok(reply)
            }
            label::SET_TIMEOUT => {
                let ns = msg.word(0).ok_or(TimerError::MissingArgument)?;
                self.deadlines[channel.index() as usize] = Some(now.add_nanos(ns));
                self.rearm();
                Ok(Message::new(0))
            }
            label::CANCEL => {
                self.deadlines[channel.index() as usize] = None;
                self.rearm();
                Ok(Message::new(0))
            }
            other => Err(TimerError::UnknownRequest(other)),
        }
    }
}

impl<H: TimerHw> Handler for TimerDriver<H> {
    type Error = TimerError;

    fn notified(&mut self, os: &mut dyn Os, channels: ChannelSet) -> Result<(), TimerError> {
        if channels.contains(self.irq) {
            self.fire_expired(os);
            // Acknowledged after re-arming, as a level-triggered timer
            // wants. An edge-triggered one (the HPET on x86) may have fired
            // between the two, while its line was masked, and that edge is
            // lost: so look at the clock once more.
            os.irq_ack(self.irq);
            if self.next_deadline().is_some_and(|d| d <= self.hw.now()) {
                self.fire_expired(os);
            }
        }
        for ch in channels.iter().filter(|&c| c != self.irq) {
            log::debug!("ignoring notification on channel {}", ch.index());
        }
        Ok(())
    }

    fn protected(
        &mut self,
        _os: &mut dyn Os,
        channel: Channel,
        msg: &Message,
    ) -> Result<Message, TimerError> {
        match self.request(channel, msg) {
            Ok(reply) => Ok(reply),
            Err(e) => {
                self.refused += 1;
                log::warn!("channel {}: {e}", channel.index());
                Ok(Message::error_reply())
            }
        }
    }
}

#[cfg(test)]
mod tests;
