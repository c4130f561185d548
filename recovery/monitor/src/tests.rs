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
        priority: 100,
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
        priority: 200,
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

/// The demo children with a watchdog; the cell holds when it is armed.
fn with_watchdog() -> (
    Monitor<Recorder>,
    MockOs,
    std::rc::Rc<std::cell::Cell<Option<u64>>>,
) {
    let armed = std::rc::Rc::new(std::cell::Cell::new(None));
    let mut os = MockOs::new();
    let m = Monitor::init(
        &mut os,
        &CHILDREN,
        Some(TIMER_CH),
        Some(TIMER),
        Some((WATCHDOG, Recorder(armed.clone()))),
    );
    (m, os, armed)
}

#[test]
fn the_watchdog_catches_a_timer_whose_ticks_stopped() {
    let (mut m, mut os, armed) = with_watchdog();
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

const CONSOLE: Channel = Channel::new(20);

/// A monitor with a console, and the writing end of the console stream.
#[allow(unsafe_code)]
fn with_console() -> (Monitor, MockOs, axolotl_ring::bytes::ByteWriter) {
    let (m, os) = monitor();
    // Leaked: the stream must outlive both ends, as a mapped region does.
    let mem: &'static mut [u32] = Vec::leak(vec![0u32; 64]);
    let base = mem.as_mut_ptr() as *mut u8;
    // SAFETY: the memory is never freed; one writer, one reader.
    let (w, r) = unsafe {
        (
            axolotl_ring::bytes::ByteWriter::attach(base, 256).unwrap(),
            axolotl_ring::bytes::ByteReader::attach(base, 256).unwrap(),
        )
    };
    (m.with_console("guardian", CONSOLE, r), os, w)
}

#[test]
fn console_inject_reaches_a_running_child_only() {
    let (mut m, mut os, mut w) = with_console();
    // Not up yet: refused.
    w.write(b"inject worker panic\n");
    up(&mut m, &mut os, CONSOLE);
    assert!(os.take().is_empty());
    up(&mut m, &mut os, WORKER_CH);
    // Split across notifications, with a CR LF ending.
    w.write(b"inject wor");
    up(&mut m, &mut os, CONSOLE);
    assert!(os.take().is_empty());
    w.write(b"ker segv\r\ninject nobody hang\ninject worker boom\n");
    up(&mut m, &mut os, CONSOLE);
    assert_eq!(
        os.take(),
        vec![Event::Inject(WORKER, axolotl_sdk::InjectKind::NullDeref)]
    );
    // A line too long is dropped whole, and the next one still works.
    w.write(&[b'x'; 200]);
    up(&mut m, &mut os, CONSOLE);
    w.write(b"\ninject worker hang\n");
    up(&mut m, &mut os, CONSOLE);
    assert_eq!(
        os.take(),
        vec![Event::Inject(WORKER, axolotl_sdk::InjectKind::Hang)]
    );
    // The kinds a PD carries on after reach it the same way.
    w.write(b"inject worker garbage\ninject worker corrupt 3\n");
    up(&mut m, &mut os, CONSOLE);
    assert_eq!(
        os.take(),
        vec![
            Event::Inject(WORKER, axolotl_sdk::InjectKind::Garbage),
            Event::Inject(WORKER, axolotl_sdk::InjectKind::Corrupt(3)),
        ]
    );
}

#[test]
fn status_json_has_the_host_shape() {
    let (mut m, mut os, _w) = with_console();
    up(&mut m, &mut os, WORKER_CH);
    os.advance_ms(1_500);
    m.fault(&mut os, WORKER, &SEGV).unwrap();
    os.advance_ms(3);
    up(&mut m, &mut os, WORKER_CH);
    let text = m.status_json().to_string();
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let pds = v.as_array().unwrap();
    assert_eq!(pds.len(), 3);
    assert_eq!(pds[0]["name"], "guardian");
    let w = &pds[1];
    assert_eq!(w["name"], "worker");
    assert_eq!(w["state"], "running");
    assert_eq!(w["parent"], "guardian");
    assert_eq!(w["restarts"], 1);
    assert_eq!(w["last_fault"]["kind"], "memory-access");
    assert_eq!(w["last_fault"]["addr"], "0x10");
    assert_eq!(w["last_fault"]["at_s"], 1.5);
    assert_eq!(w["last_recovery_us"], 3000.0);
    assert_eq!(w["max_faults"], 4);
    assert_eq!(w["window_ms"], 10_000);
    assert_eq!(pds[0]["max_faults"], serde_json::Value::Null);
    assert_eq!(pds[2]["state"], "starting");
    // The keys of the host's `axolotl status --json`.
    for key in [
        "name",
        "state",
        "pid",
        "parent",
        "restarts",
        "max_faults",
        "window_ms",
        "last_fault",
        "last_recovery_us",
        "last_recovery_to_notified_us",
        "notifications",
        "calls",
        "heartbeats",
        "errors",
        "bad_packets",
    ] {
        for pd in pds {
            assert!(pd.get(key).is_some(), "{key} missing in {pd}");
        }
    }
}

const HIGH_CH: Channel = Channel::new(5);
const LOW_CH: Channel = Channel::new(6);
const HIGH: Child = Child::new(5);
const LOW: Child = Child::new(6);

static TWO: [SupervisedChild; 2] = [
    SupervisedChild {
        name: "low",
        child: LOW,
        channel: Some(LOW_CH),
        restart: POLICY,
        heartbeat: Some(Heartbeat {
            period_ms: 100,
            misses: 3,
        }),
        priority: 100,
    },
    SupervisedChild {
        name: "high",
        child: HIGH,
        channel: Some(HIGH_CH),
        restart: POLICY,
        heartbeat: Some(Heartbeat {
            period_ms: 100,
            misses: 3,
        }),
        priority: 200,
    },
];

/// A monitor of `children` (a low and a high one), both up, two seconds
/// later (past their start-up).
fn both_up(children: &'static [SupervisedChild]) -> (Monitor, MockOs) {
    let mut os = MockOs::new();
    let mut m: Monitor = Monitor::init(&mut os, children, Some(TIMER_CH), None, None);
    up(&mut m, &mut os, LOW_CH);
    up(&mut m, &mut os, HIGH_CH);
    os.advance_ms(2_000);
    (m, os)
}

#[test]
fn a_child_starved_by_a_hung_higher_one_is_not_blamed() {
    let (mut m, mut os) = both_up(&TWO);
    // The low one is pinged first (it comes first); the high one a tick
    // later. Then the high one loops, and the low one never runs again.
    tick(&mut m, &mut os, 0);
    m.on_child_signal(&mut os, 1);
    os.take();
    tick(&mut m, &mut os, 100);
    assert_eq!(os.take(), vec![Event::Notify(HIGH_CH)]);
    // Three periods after its ping the low one is silent, but so is the
    // high one: the low one is starved, not hung.
    tick(&mut m, &mut os, 100);
    tick(&mut m, &mut os, 100);
    assert_eq!(os.take(), vec![]);
    assert_eq!(m.state("low").unwrap().phase, Phase::Running);
    // The high one's own three periods run out: it is the one restarted.
    tick(&mut m, &mut os, 100);
    assert_eq!(os.take(), vec![Event::Restart(HIGH)]);
    assert_eq!(m.state("low").unwrap().restarts, 0);
    // Once the high one is up again the low one gets its full time again;
    // if it stays silent all that time it is blamed.
    up(&mut m, &mut os, HIGH_CH);
    tick(&mut m, &mut os, 100);
    tick(&mut m, &mut os, 100);
    assert!(!os.take().contains(&Event::Restart(LOW)));
    // The high one answers every ping from now on; the low one stays
    // silent and is blamed within its own three periods.
    let mut restarted = false;
    for _ in 0..4 {
        m.on_child_signal(&mut os, 1);
        tick(&mut m, &mut os, 100);
        restarted |= os.take().contains(&Event::Restart(LOW));
    }
    assert!(restarted);
}

#[test]
fn a_starved_child_gets_its_full_time_from_when_the_hung_one_is_back() {
    let (mut m, mut os) = both_up(&TWO);
    // As above: the low one is pinged, the high one a tick later, and the
    // high one loops until it is restarted.
    tick(&mut m, &mut os, 0);
    m.on_child_signal(&mut os, 1);
    tick(&mut m, &mut os, 100);
    os.take();
    for _ in 0..3 {
        tick(&mut m, &mut os, 100);
    }
    assert_eq!(os.take(), vec![Event::Restart(HIGH)]);
    // Its start-up is slow (a store reading its journal): the low one
    // stays starved meanwhile, for longer than its own three periods.
    for _ in 0..4 {
        tick(&mut m, &mut os, 100);
    }
    // The high one is up just before the next tick; the low one, with a
    // backlog to work through, answers two periods later.
    os.advance_ms(90);
    up(&mut m, &mut os, HIGH_CH);
    tick(&mut m, &mut os, 10);
    m.on_child_signal(&mut os, 1);
    tick(&mut m, &mut os, 100);
    m.on_child_signal(&mut os, 1);
    os.advance_ms(50);
    m.on_child_signal(&mut os, 0);
    tick(&mut m, &mut os, 50);
    for _ in 0..5 {
        m.on_child_signal(&mut os, 0);
        m.on_child_signal(&mut os, 1);
        tick(&mut m, &mut os, 100);
    }
    assert!(
        !os.take().contains(&Event::Restart(LOW)),
        "the low one was blamed for the high one's hang"
    );
    assert_eq!(m.state("low").unwrap().restarts, 0);
    assert_eq!(m.state("low").unwrap().phase, Phase::Running);
}

#[test]
fn a_hung_child_is_blamed_though_the_one_above_answers_a_little_late() {
    let (mut m, mut os) = both_up(&TWO);
    // Ticks every 20 ms; the high one answers each ping two ticks late
    // (slow, not hung); the low one loops from the start.
    let mut answer_in: Option<u32> = None;
    let mut blamed_after = None;
    for n in 0..100 {
        tick(&mut m, &mut os, 20);
        match answer_in {
            Some(0) => {
                m.on_child_signal(&mut os, 1);
                answer_in = None;
            }
            Some(k) => answer_in = Some(k - 1),
            None => {}
        }
        let events = os.take();
        if events.contains(&Event::Notify(HIGH_CH)) {
            answer_in = Some(1);
        }
        if events.contains(&Event::Restart(LOW)) {
            blamed_after = Some(n * 20);
            break;
        }
    }
    let ms = blamed_after.expect("the hung low one was never blamed");
    // Spared once (the one above might only be busy), blamed after its
    // second window.
    assert!(ms <= 700, "blamed only after {ms} ms");
    assert_eq!(m.state("high").unwrap().restarts, 0);
}

static SLOW_LOW: [SupervisedChild; 2] = [
    SupervisedChild {
        heartbeat: Some(Heartbeat {
            period_ms: 150,
            misses: 3,
        }),
        ..TWO[0]
    },
    TWO[1],
];

/// The soak's case: a busy low PD (echo) had not answered yet when the one
/// above it (the filter) hung, so when the low one's window ran out the
/// high one had been silent for less than a period. The low one is spared
/// then, and the high one is the one restarted.
#[test]
fn a_child_is_spared_once_for_a_pd_above_that_just_went_silent() {
    let (mut m, mut os) = both_up(&SLOW_LOW);
    tick(&mut m, &mut os, 0);
    os.take();
    m.on_child_signal(&mut os, 1);
    let mut high_restarted = false;
    for n in 1..=60u64 {
        let t = n * 20;
        tick(&mut m, &mut os, 20);
        let events = os.take();
        assert!(
            !events.contains(&Event::Restart(LOW)),
            "the low one was blamed at {t} ms"
        );
        high_restarted |= events.contains(&Event::Restart(HIGH));
        // The high one answers at once until it loops at 390 ms; it is
        // back at 760 ms and answers again.
        if events.contains(&Event::Notify(HIGH_CH)) && !(390..760).contains(&t) {
            m.on_child_signal(&mut os, 1);
        }
        if t == 760 {
            up(&mut m, &mut os, HIGH_CH);
        }
        // The low one, busy, answers only at 900 ms, and promptly after.
        if t >= 900 {
            m.on_child_signal(&mut os, 0);
        }
    }
    assert!(high_restarted, "the hung high one was not restarted");
    assert_eq!(m.state("low").unwrap().restarts, 0);
}

static TWO_HIGH_FIRST: [SupervisedChild; 2] = [TWO[1], TWO[0]];

#[test]
fn the_starved_child_after_the_hung_one_in_the_list_is_spared_too() {
    let (mut m, mut os) = both_up(&TWO_HIGH_FIRST);
    // Both pinged in one tick; neither answers (the high one loops).
    tick(&mut m, &mut os, 0);
    os.take();
    for _ in 0..3 {
        tick(&mut m, &mut os, 100);
    }
    // Only the high one is restarted, though both ran out in this tick.
    assert_eq!(os.take(), vec![Event::Restart(HIGH)]);
    assert_eq!(m.state("low").unwrap().restarts, 0);
}

#[test]
fn status_queries_and_counter_reports() {
    let (m, mut os) = monitor();
    let mut m = m.with_name("guardian");
    m.fault(&mut os, WORKER, &SEGV).unwrap();
    // The worker reports its counters on its supervision channel.
    let report = Message::with_words(query::REPORT, &[10, 20, 3, 4, 2, 6]).unwrap();
    let reply = m.protected(&mut os, WORKER_CH, &report).unwrap();
    assert!(!reply.is_error_reply());
    // A report on a channel of no child is refused.
    let stray = m.protected(&mut os, Channel::new(40), &report).unwrap();
    assert!(stray.is_error_reply());
    let ask = |m: &mut Monitor, os: &mut MockOs, i: u64| {
        let mut q = Message::new(query::STATUS);
        q.push(i).unwrap();
        query::decode_status(&m.protected(os, WORKER_CH, &q).unwrap())
    };
    let me = ask(&mut m, &mut os, 0).unwrap();
    assert_eq!((me.name(), me.phase), ("guardian", "running"));
    let w = ask(&mut m, &mut os, 1).unwrap();
    assert_eq!(w.name(), "worker");
    assert_ne!(w.phase, "running");
    assert_eq!(
        w.last_fault.map(|f| (f.0, f.1)),
        Some((FaultKind::MemoryAccess, 0x10))
    );
    assert_eq!(
        w.counters,
        Some(query::Counters {
            packets_in: 10,
            packets_out: 20,
            dropped: 3,
            bad: 4,
            device_resets: 2,
            buffers_out: 6,
        })
    );
    let t = ask(&mut m, &mut os, 2).unwrap();
    assert_eq!((t.name(), t.counters, t.last_fault), ("timer", None, None));
    assert!(ask(&mut m, &mut os, 3).is_none());
    // With a warden, it comes after the children.
    let mut m = m.with_parent(Some("warden"));
    let w = ask(&mut m, &mut os, 3).unwrap();
    assert_eq!((w.name(), w.phase, w.restarts), ("warden", "running", 0));
    assert!(ask(&mut m, &mut os, 4).is_none());
    assert!(ask(&mut m, &mut os, u64::MAX).is_none());
    // Garbage replies decode to nothing rather than to nonsense.
    let mut bad = Message::with_words(query::STATUS, &[1, 9]).unwrap();
    assert!(query::decode_status(&bad).is_none());
    bad = Message::with_words(
        query::STATUS,
        &[1, 0, 0, u64::MAX, 0, 0, 0, 0, 0, 0, 0, 0, 0, 999],
    )
    .unwrap();
    assert!(query::decode_status(&bad).is_none());
}

/// A timer that hangs spins above the PDs below it and stops the ticks: a
/// ping those PDs could not answer meanwhile is not held against them once
/// the restarted timer ticks again (on seL4 the http and echo PDs were
/// restarted as hung after every timer hang). One that stays silent for
/// its full time after that is still caught.
#[test]
fn a_timer_hang_is_not_blamed_on_the_pds_it_starved() {
    let (mut m, mut os, _armed) = with_watchdog();
    up(&mut m, &mut os, TIMER_CH_AS_CHILD);
    up(&mut m, &mut os, WORKER_CH);
    os.advance_ms(2_000);
    tick(&mut m, &mut os, 100);
    assert!(
        os.take().contains(&Event::Notify(WORKER_CH)),
        "worker pinged"
    );
    // The timer hangs: no tick for a second; the watchdog restarts it.
    os.advance_ms(1_000);
    m.notified(&mut os, ChannelSet::single(WATCHDOG)).unwrap();
    assert!(os.take().contains(&Event::Restart(TIMER)));
    // The new timer is up and ticks: the worker is not restarted for the
    // ping it could not answer.
    up(&mut m, &mut os, TIMER_CH_AS_CHILD);
    tick(&mut m, &mut os, 10);
    assert!(!os.take().contains(&Event::Restart(WORKER)));
    assert_eq!(m.state("worker").unwrap().restarts, 0);
    // Silent for its whole time after that: hung.
    let mut restarted = false;
    for _ in 0..4 {
        tick(&mut m, &mut os, 100);
        restarted |= os.take().contains(&Event::Restart(WORKER));
    }
    assert!(restarted, "a worker silent after the timer came back");
}

/// A state region that outlives monitors, as a memory region does.
fn region(len: usize) -> &'static mut [u8] {
    Box::leak(vec![0u8; len].into_boxed_slice())
}

/// A second handle on the same region: the next incarnation maps what the
/// previous one wrote. Only one of them is used at a time.
fn same(r: &mut [u8]) -> &'static mut [u8] {
    #[allow(unsafe_code)]
    // SAFETY: the test keeps the region alive for ever (leaked) and never
    // uses the earlier monitor once the next one is made from this.
    unsafe {
        std::slice::from_raw_parts_mut(r.as_mut_ptr(), r.len())
    }
}

#[test]
fn a_restarted_monitor_keeps_counts_history_and_phases() {
    let state = region(saved::region_bytes(CHILDREN.len()));
    let (m, mut os) = monitor();
    let mut m = m.with_saved_state(&mut os, same(state));
    assert_eq!(m.own_restarts(), 0);
    up(&mut m, &mut os, WORKER_CH);
    up(&mut m, &mut os, TIMER_CH_AS_CHILD);
    os.advance_ms(5_000);
    m.fault(&mut os, WORKER, &SEGV).unwrap();
    os.advance_ms(2);
    up(&mut m, &mut os, WORKER_CH);
    // Faults again soon after: a crash loop, waiting for its back-off.
    os.advance_ms(1);
    m.fault(&mut os, WORKER, &SEGV).unwrap();
    os.take();
    let before = m.state("worker").unwrap().clone();
    assert!(matches!(before.phase, Phase::Waiting { .. }));
    drop(m);

    // The monitor restarts with fresh memory and the same region.
    let (m2, _) = monitor();
    let mut m2 = m2.with_saved_state(&mut os, same(state));
    assert_eq!(m2.own_restarts(), 1);
    let after = m2.state("worker").unwrap();
    assert_eq!(after.restarts, 1);
    assert_eq!(after.phase, before.phase);
    assert_eq!(after.last_fault, Some(SEGV));
    assert_eq!(after.last_fault_at, before.last_fault_at);
    assert_eq!(after.last_recovery_ns, Some(2_000_000));
    assert!(after.ever_up);
    assert_eq!(
        after.history.recent.iter().collect::<Vec<_>>(),
        before.history.recent.iter().collect::<Vec<_>>()
    );
    assert_eq!(after.history.delay_ms(), before.history.delay_ms());
    // The restart it owed is done when its back-off has passed.
    tick(&mut m2, &mut os, 20);
    assert_eq!(os.take(), vec![Event::Restart(WORKER)]);
    assert_eq!(m2.state("worker").unwrap().restarts, 2);
    // The policy window carried over: two more quick faults make four in
    // the window, and the monitor gives up, as it would have without its
    // own restart.
    for _ in 0..2 {
        up(&mut m2, &mut os, WORKER_CH);
        os.advance_ms(1);
        m2.fault(&mut os, WORKER, &SEGV).unwrap();
        tick(&mut m2, &mut os, 500);
    }
    assert_eq!(m2.state("worker").unwrap().phase, Phase::GaveUp);
    drop(m2);
    let (m3, _) = monitor();
    let m3 = m3
        .with_saved_state(&mut os, same(state))
        .with_parent(Some("warden"));
    assert_eq!(m3.own_restarts(), 2);
    assert_eq!(m3.state("worker").unwrap().phase, Phase::GaveUp);
    // Its status answer names its own restarts.
    let json: serde_json::Value = serde_json::from_str(&m3.status_json().to_string()).unwrap();
    assert_eq!(json[0]["name"], "warden");
    assert_eq!(json[0]["parent"], serde_json::Value::Null);
    assert_eq!(json[1]["name"], "monitor");
    assert_eq!(json[1]["parent"], "warden");
    assert_eq!(json[1]["restarts"], 2);
    assert_eq!(json[2]["name"], "worker");
    assert_eq!(json[2]["restarts"], 3);
}

#[test]
fn without_saved_state_a_restarted_monitor_starts_from_nothing() {
    // What the previous test would see with no region: the control case.
    let (mut m, mut os) = monitor();
    up(&mut m, &mut os, WORKER_CH);
    os.advance_ms(5_000);
    m.fault(&mut os, WORKER, &SEGV).unwrap();
    let (m2, _) = monitor();
    assert_eq!(m2.state("worker").unwrap().restarts, 0);
    assert_eq!(m2.own_restarts(), 0);
}

#[test]
fn a_torn_save_leaves_the_copy_before_it() {
    let state = region(saved::region_bytes(CHILDREN.len()));
    let (m, mut os) = monitor();
    let mut m = m.with_saved_state(&mut os, same(state));
    up(&mut m, &mut os, WORKER_CH);
    os.advance_ms(5_000);
    m.fault(&mut os, WORKER, &SEGV).unwrap();
    drop(m);
    // The next incarnation saves once as it starts, and then the change
    // below; the monitor dies during the second save: any of the bytes
    // it writes may be torn. Whatever is torn, the monitor after loads
    // either the old or the new copy, never garbage and never nothing.
    let (m, _) = monitor();
    let mut m = m.with_saved_state(&mut os, same(state));
    let good = state.to_vec();
    os.advance_ms(3);
    up(&mut m, &mut os, WORKER_CH);
    drop(m);
    let newer = state.to_vec();
    let changed: Vec<usize> = (0..good.len()).filter(|&i| good[i] != newer[i]).collect();
    assert!(!changed.is_empty());
    for cut in 0..=changed.len() {
        let torn = same(state);
        torn.copy_from_slice(&good);
        for &i in &changed[..cut] {
            torn[i] = newer[i];
        }
        let (m, _) = monitor();
        let m = m.with_saved_state(&mut os, torn);
        let w = m.state("worker").unwrap();
        assert_eq!(w.restarts, 1, "cut {cut}");
        assert!(
            matches!(w.phase, Phase::Starting { .. } | Phase::Running),
            "cut {cut}: {:?}",
            w.phase
        );
    }
}

#[test]
fn a_region_of_other_children_or_garbage_is_a_first_boot() {
    let state = region(saved::region_bytes(CHILDREN.len()));
    let (m, mut os) = monitor();
    let mut m = m.with_saved_state(&mut os, same(state));
    os.advance_ms(5_000);
    m.fault(&mut os, WORKER, &SEGV).unwrap();
    drop(m);
    // Other children (system.xml changed): nothing applies.
    static OTHER: [SupervisedChild; 2] = [
        SupervisedChild {
            name: "other",
            ..CHILDREN[0]
        },
        CHILDREN[1],
    ];
    let m = Monitor::<NoWatchdog>::init(&mut os, &OTHER, Some(TIMER_CH), Some(TIMER), None)
        .with_saved_state(&mut os, same(state));
    assert_eq!(m.own_restarts(), 0);
    assert_eq!(m.state("other").unwrap().restarts, 0);
    // Random bytes: never a panic, never a restored count.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..200 {
        let r = region(saved::region_bytes(CHILDREN.len()));
        for b in r.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let (m, _) = monitor();
        let m = m.with_saved_state(&mut os, r);
        assert_eq!(m.own_restarts(), 0);
    }
    // Too small a region keeps nothing, and says so instead of failing.
    let (m, _) = monitor();
    let m = m.with_saved_state(&mut os, region(40));
    assert_eq!(m.own_restarts(), 0);
}

#[test]
fn a_small_region_keeps_the_newest_fault_times() {
    // Room for the records and two fault times each.
    let len = 2 * (saved::HEADER + CHILDREN.len() * (saved::RECORD + 16));
    let state = region(len);
    let (m, mut os) = monitor();
    let mut m = m.with_saved_state(&mut os, same(state));
    let mut times = Vec::new();
    for _ in 0..3 {
        os.advance_ms(2_000);
        times.push(os.now);
        m.fault(&mut os, WORKER, &SEGV).unwrap();
        up(&mut m, &mut os, WORKER_CH);
    }
    drop(m);
    let (m, _) = monitor();
    let m = m.with_saved_state(&mut os, same(state));
    let w = m.state("worker").unwrap();
    assert_eq!(w.restarts, 3);
    assert_eq!(
        w.history.recent.iter().copied().collect::<Vec<_>>(),
        times[1..]
    );
}

#[test]
fn the_checker_sizes_the_state_region_as_the_monitor_does() {
    for n in [0, 1, 11, 63] {
        assert_eq!(
            axolotl_sysdesc::monitor_state_bytes(n),
            saved::region_bytes(n) as u64
        );
    }
}

#[test]
fn a_stall_stops_a_child_and_a_tick_after_it_lets_it_run_on() {
    let (mut m, mut os, mut w) = with_console();
    up(&mut m, &mut os, WORKER_CH);
    up(&mut m, &mut os, TIMER_CH_AS_CHILD);
    os.take();
    w.write(b"inject worker stall 150\ninject worker stall 0\ninject worker stall x y\n");
    up(&mut m, &mut os, CONSOLE);
    assert_eq!(os.take(), vec![Event::Stop(WORKER)]);
    // Still stalled at the first tick; the next one, past 150 ms, ends it.
    tick(&mut m, &mut os, 100);
    assert!(!os.take().contains(&Event::Resume(WORKER)));
    tick(&mut m, &mut os, 100);
    let events = os.take();
    assert!(events.contains(&Event::Resume(WORKER)), "{events:?}");
    assert!(!events.contains(&Event::Restart(WORKER)));
    assert_eq!(m.state("worker").unwrap().restarts, 0);
    // A stall longer than the heartbeat limit is a hang: restarted, and
    // never resumed afterwards.
    os.advance_ms(2_000);
    w.write(b"inject worker stall 5000\n");
    up(&mut m, &mut os, CONSOLE);
    for _ in 0..6 {
        tick(&mut m, &mut os, 100);
    }
    let events = os.take();
    assert!(events.contains(&Event::Restart(WORKER)), "{events:?}");
    assert!(!events.contains(&Event::Resume(WORKER)));
    assert_eq!(m.state("worker").unwrap().stalled_until, None);
    assert_eq!(
        parse_ms("inject worker stall"),
        Some(console::DEFAULT_STALL_MS)
    );
    assert_eq!(parse_ms("inject worker stall 60001"), None);
}

fn parse_ms(line: &str) -> Option<u64> {
    match console::parse(line) {
        Ok(console::Command::Stall(_, ms)) => Some(ms),
        _ => None,
    }
}

const BOARD_CH: Channel = Channel::new(20);

fn board_of(r: &mut [u8]) -> axolotl_ring::shared::SharedBytes {
    #[allow(unsafe_code)]
    // SAFETY: the test's regions are leaked, so they outlive the handle.
    unsafe {
        axolotl_ring::shared::SharedBytes::new(r.as_mut_ptr(), r.len())
    }
}

fn published(r: &mut [u8]) -> Vec<(String, u64)> {
    let mut buf = vec![0u8; r.len()];
    let b = axolotl_store_api::incarnations::Board::copy_from(&board_of(r), &mut buf)
        .expect("a whole board");
    b.iter().map(|(n, i)| (n.to_string(), i)).collect()
}

#[test]
fn restarts_are_published_on_the_board_and_the_store_is_told() {
    let board = region(4096);
    let state = region(saved::region_bytes(CHILDREN.len()));
    let (m, mut os) = monitor();
    let mut m = m
        .with_name("guardian")
        .with_saved_state(&mut os, same(state))
        .with_board(&mut os, board_of(board), BOARD_CH);
    assert_eq!(os.take(), vec![Event::Notify(BOARD_CH)]);
    let want = |w, t, g| {
        vec![
            ("worker".to_string(), w),
            ("timer".to_string(), t),
            ("guardian".to_string(), g),
        ]
    };
    assert_eq!(published(board), want(0, 0, 0));
    up(&mut m, &mut os, WORKER_CH);
    assert_eq!(os.take(), vec![], "nothing changed: nothing published");
    os.advance_ms(2_000);
    m.fault(&mut os, WORKER, &SEGV).unwrap();
    assert_eq!(
        os.take(),
        vec![Event::Restart(WORKER), Event::Notify(BOARD_CH)]
    );
    assert_eq!(published(board), want(1, 0, 0));
    // The monitor restarts: it publishes its own incarnation, and keeps
    // the children's.
    drop(m);
    let (m, mut os) = monitor();
    let _m = m
        .with_name("guardian")
        .with_saved_state(&mut os, same(state))
        .with_board(&mut os, board_of(same(board)), BOARD_CH);
    assert_eq!(os.take(), vec![Event::Notify(BOARD_CH)]);
    assert_eq!(published(board), want(1, 0, 1));
}

#[test]
fn the_checker_sizes_the_board_as_the_store_api_does() {
    for n in [0, 1, 14, 64] {
        assert_eq!(
            axolotl_sysdesc::incarnation_board_bytes(n),
            axolotl_store_api::incarnations::board_bytes(n) as u64
        );
    }
}

#[test]
fn a_hang_verdict_says_what_was_silent_above_the_child() {
    let (mut m, mut os) = both_up(&TWO);
    tick(&mut m, &mut os, 0);
    tick(&mut m, &mut os, 100);
    let now = os.now();
    // Both pinged; the high one has not answered for 100 ms.
    assert_eq!(
        Above(&m, 0, now).to_string(),
        "; silent above it: high 100 ms"
    );
    // Nothing is above the high one.
    assert_eq!(
        Above(&m, 1, now).to_string(),
        "; every PD above it answered"
    );
    m.on_child_signal(&mut os, 1);
    assert_eq!(
        Above(&m, 0, now).to_string(),
        "; every PD above it answered"
    );
}
