//! What a client PD calls. The caller's channel identifies it to the timer.

use crate::label;
use axolotl_sdk::{CallError, Channel, Instant, Message, Os};

/// The current time, as the timer driver sees it.
pub fn now(os: &mut dyn Os, timer: Channel) -> Result<Instant, CallError> {
    let reply = os.call(timer, &Message::new(label::GET_TIME))?;
    Ok(Instant(reply.word(0).unwrap_or(0)))
}

/// Asks for one notification on `timer` after `ns` nanoseconds, replacing any
/// pending one.
pub fn set_timeout(os: &mut dyn Os, timer: Channel, ns: u64) -> Result<(), CallError> {
    let mut msg = Message::new(label::SET_TIMEOUT);
    // A fresh message always has room for one word.
    let _ = msg.push(ns);
    os.call(timer, &msg).map(|_| ())
}

/// Cancels the pending timeout, if any.
pub fn cancel(os: &mut dyn Os, timer: Channel) -> Result<(), CallError> {
    os.call(timer, &Message::new(label::CANCEL)).map(|_| ())
}

/// A PD's one pending wake-up from the timer driver: asks the driver only
/// when the wanted time changes.
#[derive(Debug)]
pub struct Wakeup {
    timer: Channel,
    armed: Option<Instant>,
}

impl Wakeup {
    /// Wake-ups through the timer driver on `timer` (a `pp` channel).
    pub const fn new(timer: Channel) -> Wakeup {
        Wakeup { timer, armed: None }
    }

    /// The channel the driver notifies on.
    pub fn channel(&self) -> Channel {
        self.timer
    }

    /// The notification came: nothing is armed any more.
    pub fn fired(&mut self) {
        self.armed = None;
    }

    /// Wants a notification at `at` (none: `None`), `now` being the time.
    /// A failed call is logged and tried again on the next `want`.
    pub fn want(&mut self, os: &mut dyn Os, now: Instant, at: Option<Instant>) {
        let at = at.map(|a| a.max(now));
        if at == self.armed {
            return;
        }
        let result = match at {
            Some(a) => set_timeout(os, self.timer, a.nanos_since(now)),
            None => cancel(os, self.timer),
        };
        match result {
            Ok(()) => self.armed = at,
            Err(e) => log::warn!("timer: {e}"),
        }
    }
}
