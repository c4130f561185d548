use super::*;
use axolotl_sdk::mock::{Event, MockOs};
use std::cell::Cell;
use std::rc::Rc;

/// A fake timer whose clock is shared with the test.
struct FakeHw {
    now: Rc<Cell<u64>>,
    alarm: Rc<Cell<Option<u64>>>,
}

impl TimerHw for FakeHw {
    fn now(&self) -> Instant {
        Instant(self.now.get())
    }
    fn set_alarm(&mut self, at: Option<Instant>) {
        self.alarm.set(at.map(Instant::as_nanos));
    }
}

const IRQ: Channel = Channel::new(10);
const CLIENT_A: Channel = Channel::new(1);
const CLIENT_B: Channel = Channel::new(2);
const MONITOR: Channel = Channel::new(0);
static TICKS: [Tick; 1] = [Tick {
    channel: MONITOR,
    period_ns: 100,
}];

type Clock = Rc<Cell<u64>>;
type AlarmCell = Rc<Cell<Option<u64>>>;

fn driver() -> (TimerDriver<FakeHw>, MockOs, Clock, AlarmCell) {
    let now = Rc::new(Cell::new(1_000));
    let alarm = Rc::new(Cell::new(None));
    let hw = FakeHw {
        now: now.clone(),
        alarm: alarm.clone(),
    };
    let mut os = MockOs::new();
    let clients: ChannelSet = [CLIENT_A, CLIENT_B].into_iter().collect();
    let d = TimerDriver::init(&mut os, hw, IRQ, &TICKS, clients);
    (d, os, now, alarm)
}

fn set_timeout(d: &mut TimerDriver<FakeHw>, os: &mut MockOs, ch: Channel, ns: u64) {
    let msg = Message::with_words(label::SET_TIMEOUT, &[ns]).unwrap();
    let reply = d.protected(os, ch, &msg).unwrap();
    assert!(!reply.is_error_reply());
}

#[test]
fn restart_notifies_every_client_and_arms_the_tick() {
    let (_d, mut os, _now, alarm) = driver();
    assert_eq!(os.take_notified(), vec![CLIENT_A, CLIENT_B]);
    assert_eq!(alarm.get(), Some(1_100));
}

#[test]
fn timeouts_fire_in_order_and_only_when_due() {
    let (mut d, mut os, now, alarm) = driver();
    os.take();
    set_timeout(&mut d, &mut os, CLIENT_A, 50);
    set_timeout(&mut d, &mut os, CLIENT_B, 30);
    assert_eq!(alarm.get(), Some(1_030));
    now.set(1_030);
    d.notified(&mut os, ChannelSet::single(IRQ)).unwrap();
    assert_eq!(os.take(), vec![Event::Notify(CLIENT_B), Event::IrqAck(IRQ)]);
    assert_eq!(alarm.get(), Some(1_050));
    now.set(1_060);
    d.notified(&mut os, ChannelSet::single(IRQ)).unwrap();
    assert_eq!(os.take(), vec![Event::Notify(CLIENT_A), Event::IrqAck(IRQ)]);
    // Only the tick is left.
    assert_eq!(alarm.get(), Some(1_100));
}

#[test]
fn a_new_request_replaces_the_old_and_cancel_disarms() {
    let (mut d, mut os, now, _alarm) = driver();
    os.take();
    set_timeout(&mut d, &mut os, CLIENT_A, 10);
    set_timeout(&mut d, &mut os, CLIENT_A, 90);
    now.set(1_050);
    d.notified(&mut os, ChannelSet::single(IRQ)).unwrap();
    assert_eq!(os.take(), vec![Event::IrqAck(IRQ)]);
    d.protected(&mut os, CLIENT_A, &Message::new(label::CANCEL))
        .unwrap();
    now.set(1_095);
    d.notified(&mut os, ChannelSet::single(IRQ)).unwrap();
    assert_eq!(os.take(), vec![Event::IrqAck(IRQ)]);
}

#[test]
fn ticks_are_periodic_and_skip_missed_periods() {
    let (mut d, mut os, now, alarm) = driver();
    os.take();
    now.set(1_100);
    d.notified(&mut os, ChannelSet::single(IRQ)).unwrap();
    assert_eq!(os.take_notified(), vec![MONITOR]);
    assert_eq!(alarm.get(), Some(1_200));
    // Late by three periods: one tick, then back on the grid.
    now.set(1_530);
    d.notified(&mut os, ChannelSet::single(IRQ)).unwrap();
    assert_eq!(os.take_notified(), vec![MONITOR]);
    assert_eq!(alarm.get(), Some(1_600));
}

#[test]
fn bad_requests_are_refused_not_fatal() {
    let (mut d, mut os, _now, _alarm) = driver();
    let reply = d.protected(&mut os, CLIENT_A, &Message::new(99)).unwrap();
    assert!(reply.is_error_reply());
    let reply = d
        .protected(&mut os, CLIENT_A, &Message::new(label::SET_TIMEOUT))
        .unwrap();
    assert!(reply.is_error_reply());
    assert_eq!(d.refused(), 2);
    let reply = d
        .protected(&mut os, CLIENT_A, &Message::new(label::GET_TIME))
        .unwrap();
    assert_eq!(reply.word(0), Some(1_000));
}

/// A timer whose clock moves on while the driver re-arms it: the deadline
/// it was just given passes before the interrupt is acknowledged.
struct SlowHw {
    now: Rc<Cell<u64>>,
    step: u64,
}

impl TimerHw for SlowHw {
    fn now(&self) -> Instant {
        Instant(self.now.get())
    }
    fn set_alarm(&mut self, _at: Option<Instant>) {
        self.now.set(self.now.get() + self.step);
    }
}

#[test]
fn a_deadline_that_passes_while_re_arming_is_not_lost() {
    let now = Rc::new(Cell::new(1_000));
    let mut os = MockOs::new();
    let hw = SlowHw {
        now: now.clone(),
        step: 0,
    };
    let mut d = TimerDriver::init(&mut os, hw, IRQ, &TICKS, ChannelSet::EMPTY);
    os.take();
    // The tick is due; re-arming takes longer than a whole period.
    now.set(1_100);
    d.hw.step = 150;
    d.notified(&mut os, ChannelSet::single(IRQ)).unwrap();
    let ev = os.take();
    assert_eq!(
        ev.iter().filter(|e| **e == Event::Notify(MONITOR)).count(),
        2,
        "{ev:?}"
    );
    assert!(ev.contains(&Event::IrqAck(IRQ)));
}
