use super::*;
use axolotl_sdk::config::{Heartbeat, RestartPolicy};
use axolotl_sdk::mock::{Event, MockOs};

const TIMER_CH: Channel = Channel::new(0);
const WORKER_CH: Channel = Channel::new(1);
const TIMER_CH_AS_CHILD: Channel = Channel::new(2);
const WORKER: Child = Child::new(1);
const TIMER: Child = Child::new(2);

const POLICY: RestartPolicy = RestartPolicy {
    initial_backoff_ms: 0,
    max_backoff_ms: 400,
    min_run_ms: 1_000,
    max_faults: 4,
    window_ms: 10_000,
};

static CHILDREN: [SupervisedChild; 2] = [
    SupervisedChild {
        name: "worker",
        child: WORKER,
        channel: Some(WORKER_CH),
        restart: POLICY,
        heartbeat: Some(Heartbeat {
            period_ms: 100,
            misses: 3,
        }),
    },
    SupervisedChild {
        name: "timer",
        child: TIMER,
        channel: Some(TIMER_CH_AS_CHILD),
        restart: RestartPolicy {
            initial_backoff_ms: 500,
            ..POLICY
        },
        heartbeat: None,
    },
];

const SEGV: FaultInfo = FaultInfo {
    kind: FaultKind::MemoryAccess,
    addr: 0x10,
    pc: 0x1234,
};

fn monitor() -> (Monitor, MockOs) {
    let mut os = MockOs::new();
    let m = Monitor::init(&mut os, &CHILDREN, Some(TIMER_CH), Some(TIMER), None);
    (m, os)
}

const WATCHDOG: Channel = Channel::new(10);

/// Records when the watchdog is armed.
struct Recorder(std::rc::Rc<std::cell::Cell<Option<u64>>>);

impl Watchdog for Recorder {
    fn arm(&mut self, at: Option<Instant>) {
        self.0.set(at.map(Instant::as_nanos));
    }
}

#[test]
fn the_watchdog_catches_a_timer_whose_ticks_stopped() {
    let armed = std::rc::Rc::new(std::cell::Cell::new(None));
    let mut os = MockOs::new();
    let mut m = Monitor::init(
        &mut os,
        &CHILDREN,
        Some(TIMER_CH),
        Some(TIMER),
        Some((WATCHDOG, Recorder(armed.clone()))),
    );
    // The timer has no heartbeat here: one second without a tick is a hang.
    assert_eq!(armed.get(), Some(1_000_000_000));
    up(&mut m, &mut os, TIMER_CH);
    tick(&mut m, &mut os, 100);
    assert_eq!(
        armed.get(),
        Some(1_100_000_000),
        "each tick pushes the watchdog back"
    );
    os.take();
    // A spurious early watchdog interrupt changes nothing.
    os.advance_ms(500);
    m.notified(&mut os, ChannelSet::single(WATCHDOG)).unwrap();
    assert_eq!(os.take(), vec![Event::IrqAck(WATCHDOG)]);
    // The ticks stop; the watchdog fires.
    os.advance_ms(600);
    m.notified(&mut os, ChannelSet::single(WATCHDOG)).unwrap();
    assert_eq!(
        os.take(),
        vec![Event::IrqAck(WATCHDOG), Event::Restart(TIMER)]
    );
    assert_eq!(
        m.state("timer").unwrap().last_fault.map(|f| f.kind),
        Some(FaultKind::Hang)
    );
    assert_eq!(
        armed.get(),
        Some(2_200_000_000),
        "re-armed for the restarted timer"
    );
}

fn tick<W: Watchdog>(m: &mut Monitor<W>, os: &mut MockOs, ms: u64) {
    os.advance_ms(ms);
    m.notified(os, ChannelSet::single(TIMER_CH)).unwrap();
}

fn up<W: Watchdog>(m: &mut Monitor<W>, os: &mut MockOs, ch: Channel) {
    m.notified(os, ChannelSet::single(ch)).unwrap();
}

#[test]
fn fault_restarts_and_up_signal_records_recovery_time() {
    let (mut m, mut os) = monitor();
    up(&mut m, &mut os, WORKER_CH);
    os.advance_ms(2_000);
    m.fault(&mut os, WORKER, &SEGV).unwrap();
    assert_eq!(os.take(), vec![Event::Restart(WORKER)]);
    let st = m.state("worker").unwrap();
    assert_eq!(st.restarts, 1);
    assert_eq!(st.last_fault, Some(SEGV));
    assert!(matches!(st.phase, Phase::Starting { .. }));
    os.advance_ms(3);
    up(&mut m, &mut os, WORKER_CH);
    let st = m.state("worker").unwrap();
    assert_eq!(st.phase, Phase::Running);
    assert_eq!(st.last_recovery_ns, Some(3_000_000));
}

#[test]
fn heartbeats_ping_and_a_silent_child_is_declared_hung() {
    let (mut m, mut os) = monitor();
    up(&mut m, &mut os, WORKER_CH);
    os.take();
    os.advance_ms(2_000);
    tick(&mut m, &mut os, 100);
    assert_eq!(os.take(), vec![Event::Notify(WORKER_CH)]);
    // It answers: no hang, next ping a period later.
    up(&mut m, &mut os, WORKER_CH);
    tick(&mut m, &mut os, 50);
    assert_eq!(os.take(), vec![]);
    tick(&mut m, &mut os, 50);
    assert_eq!(os.take(), vec![Event::Notify(WORKER_CH)]);
    // Now it stays silent for three periods.
    tick(&mut m, &mut os, 100);
    tick(&mut m, &mut os, 100);
    assert_eq!(os.take(), vec![]);
    tick(&mut m, &mut os, 100);
    // Ran long enough since start: restarted at once (the restart kills it).
    assert_eq!(os.take(), vec![Event::Restart(WORKER)]);
    // Hung again soon after its restart: a crash loop, so it is stopped
    // until its back-off has passed.
    up(&mut m, &mut os, WORKER_CH);
    for _ in 0..4 {
        tick(&mut m, &mut os, 100);
    }
    assert_eq!(
        os.take(),
        vec![Event::Notify(WORKER_CH), Event::Stop(WORKER)]
    );
    assert_eq!(
        m.state("worker").unwrap().last_fault.map(|f| f.kind),
        Some(FaultKind::Hang)
    );
}

#[test]
fn crash_loop_waits_for_ticks_and_gives_up_in_the_end() {
    let (mut m, mut os) = monitor();
    up(&mut m, &mut os, WORKER_CH);
    os.advance_ms(5_000);
    m.fault(&mut os, WORKER, &SEGV).unwrap();
    assert_eq!(os.take(), vec![Event::Restart(WORKER)]);
    // Faults again at once: back-off of 10 ms, so no restart until a tick.
    os.advance_ms(1);
    m.fault(&mut os, WORKER, &SEGV).unwrap();
    assert_eq!(os.take(), vec![]);
    assert!(matches!(
        m.state("worker").unwrap().phase,
        Phase::Waiting { .. }
    ));
    tick(&mut m, &mut os, 5);
    assert_eq!(os.take(), vec![]);
    tick(&mut m, &mut os, 5);
    assert_eq!(os.take(), vec![Event::Restart(WORKER)]);
    os.advance_ms(1);
    m.fault(&mut os, WORKER, &SEGV).unwrap();
    tick(&mut m, &mut os, 20);
    assert_eq!(os.take(), vec![Event::Restart(WORKER)]);
    // Fourth fault within the window: give up.
    os.advance_ms(1);
    m.fault(&mut os, WORKER, &SEGV).unwrap();
    assert_eq!(os.take(), vec![Event::Stop(WORKER)]);
    assert_eq!(m.state("worker").unwrap().phase, Phase::GaveUp);
    tick(&mut m, &mut os, 1_000);
    assert_eq!(os.take(), vec![]);
}

#[test]
fn the_tick_source_is_restarted_at_once_despite_its_back_off() {
    let (mut m, mut os) = monitor();
    os.advance_ms(10);
    m.fault(&mut os, TIMER, &SEGV).unwrap();
    assert_eq!(os.take(), vec![Event::Restart(TIMER)]);
}

#[test]
fn a_child_that_never_comes_up_is_hung() {
    let (mut m, mut os) = monitor();
    for _ in 0..19 {
        tick(&mut m, &mut os, 100);
    }
    assert_eq!(os.take(), vec![]);
    tick(&mut m, &mut os, 100);
    assert_eq!(os.take(), vec![Event::Restart(WORKER)]);
}

#[test]
fn unknown_children_and_channels_are_errors_not_crashes() {
    let (mut m, mut os) = monitor();
    assert_eq!(
        m.fault(&mut os, Child::new(9), &SEGV),
        Err(MonitorError::UnknownChild(Child::new(9)))
    );
    m.notified(&mut os, ChannelSet::single(Channel::new(30)))
        .unwrap();
    assert_eq!(os.take(), vec![]);
}
