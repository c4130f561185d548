//! A recording [`Os`] for unit tests of components (feature `mock`).

extern crate alloc;
extern crate std;

use crate::{CallError, Channel, Child, Instant, Message, Os};
use alloc::boxed::Box;
use alloc::vec::Vec;

/// Something a component asked of the platform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// `notify(channel)`.
    Notify(Channel),
    /// `irq_ack(channel)`.
    IrqAck(Channel),
    /// `restart_child(child)`.
    Restart(Child),
    /// `stop_child(child)`.
    Stop(Child),
    /// `resume_child(child)`.
    Resume(Child),
    /// `inject_child(child, kind)`.
    Inject(Child, crate::InjectKind),
}

type CallFn = Box<dyn FnMut(Channel, &Message) -> Result<Message, CallError>>;

/// A platform that records what it is asked and answers calls through a
/// closure. Time stands still unless the test moves it.
pub struct MockOs {
    /// Everything asked so far, in order (calls excepted).
    pub events: Vec<Event>,
    /// The current time.
    pub now: Instant,
    on_call: CallFn,
}

impl Default for MockOs {
    fn default() -> Self {
        MockOs::new()
    }
}

impl MockOs {
    /// A platform whose calls all fail with `NotPermitted`.
    pub fn new() -> MockOs {
        MockOs {
            events: Vec::new(),
            now: Instant(0),
            on_call: Box::new(|_, _| Err(CallError::NotPermitted)),
        }
    }

    /// Answers protected calls with `f`.
    pub fn on_call(
        mut self,
        f: impl FnMut(Channel, &Message) -> Result<Message, CallError> + 'static,
    ) -> MockOs {
        self.on_call = Box::new(f);
        self
    }

    /// Moves time forward by `ms` milliseconds.
    pub fn advance_ms(&mut self, ms: u64) {
        self.now = self.now.add_nanos(ms * 1_000_000);
    }

    /// Takes the recorded events, leaving none.
    pub fn take(&mut self) -> Vec<Event> {
        core::mem::take(&mut self.events)
    }

    /// Channels notified so far (and forgets all events).
    pub fn take_notified(&mut self) -> Vec<Channel> {
        self.take()
            .into_iter()
            .filter_map(|e| match e {
                Event::Notify(ch) => Some(ch),
                _ => None,
            })
            .collect()
    }
}

impl Os for MockOs {
    fn notify(&mut self, channel: Channel) {
        self.events.push(Event::Notify(channel));
    }
    fn call(&mut self, channel: Channel, msg: &Message) -> Result<Message, CallError> {
        (self.on_call)(channel, msg)
    }
    fn irq_ack(&mut self, channel: Channel) {
        self.events.push(Event::IrqAck(channel));
    }
    fn now(&self) -> Instant {
        self.now
    }
    fn restart_child(&mut self, child: Child) {
        self.events.push(Event::Restart(child));
    }
    fn stop_child(&mut self, child: Child) {
        self.events.push(Event::Stop(child));
    }

    fn resume_child(&mut self, child: Child) {
        self.events.push(Event::Resume(child));
    }

    fn inject_child(&mut self, child: Child, kind: crate::InjectKind) -> Result<(), &'static str> {
        self.events.push(Event::Inject(child, kind));
        Ok(())
    }
}
