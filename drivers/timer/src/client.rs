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
