use super::*;
use proptest::prelude::*;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

fn d(n: u64) -> Desc {
    Desc {
        offset: n,
        len: n as u32,
        meta: 7,
    }
}

fn drain(c: &mut Consumer) -> Vec<u64> {
    std::iter::from_fn(|| c.dequeue().unwrap())
        .map(|x| x.offset)
        .collect()
}

// ---------------------------------------------------------------------------
// Unit tests

#[test]
fn fills_drains_and_refuses_when_full() {
    let ring = OwnedRing::new(4);
    let (mut p, mut c) = (ring.producer(), ring.consumer());
    assert!(p.is_empty() && c.is_empty());
    for i in 0..4 {
        p.enqueue(d(i)).unwrap();
    }
    assert_eq!(p.len(), 4);
    assert!(p.is_full());
    assert_eq!(p.enqueue(d(9)), Err(EnqueueError::Full));
    assert_eq!(c.dequeue().unwrap(), Some(d(0)));
    assert_eq!(c.len(), 3);
    p.enqueue(d(4)).unwrap();
    assert_eq!(drain(&mut c), vec![1, 2, 3, 4]);
    assert_eq!(c.dequeue().unwrap(), None);
    p.refresh().unwrap();
    assert!(p.is_empty());
    assert_eq!(p.misbehavior_count() + c.misbehavior_count(), 0);
}

#[test]
fn indices_wrap_around_u32() {
    for slots in [2, 8, 64] {
        let ring = OwnedRing::new(slots);
        ring.poke(Field::Tail, u32::MAX - 3);
        ring.poke(Field::Head, u32::MAX - 3);
        let (mut p, mut c) = (ring.producer(), ring.consumer());
        let mut next = 0u64;
        for _round in 0..5 {
            // Fill completely, across the wrap.
            let start = next;
            while p.enqueue(d(next)).is_ok() {
                next += 1;
            }
            assert_eq!(next - start, slots as u64);
            assert_eq!(c.len() as u64, 0, "nothing seen before looking");
            let got = drain(&mut c);
            assert_eq!(got, (start..next).collect::<Vec<_>>());
        }
        assert!(ring.get(Field::Tail) < 1000, "the tail wrapped");
        assert_eq!(p.misbehavior_count() + c.misbehavior_count(), 0);
    }
}

#[test]
fn peek_then_release_consumes_only_when_told() {
    let ring = OwnedRing::new(4);
    let (mut p, mut c) = (ring.producer(), ring.consumer());
    for i in 0..3 {
        p.enqueue(d(i)).unwrap();
    }
    assert_eq!(c.peek(0).unwrap(), Some(d(0)));
    assert_eq!(c.peek(2).unwrap(), Some(d(2)));
    assert_eq!(c.peek(3).unwrap(), None);
    // A consumer that "crashes" before releasing sees them again.
    let mut c2 = ring.consumer();
    assert_eq!(c2.peek(0).unwrap(), Some(d(0)));
    c2.release(2).unwrap();
    assert_eq!(ring.get(Field::Head), 2);
    // Releasing more than is waiting releases what is waiting.
    c2.release(100).unwrap();
    assert_eq!(ring.get(Field::Head), 3);
    assert_eq!(c2.dequeue().unwrap(), None);
}

#[test]
fn reattach_continues_and_peers_see_the_restart() {
    let ring = OwnedRing::new(8);
    assert_eq!(ring.get(Field::ProducerEpoch), 0, "never attached");
    let (mut p, mut c) = (ring.producer(), ring.consumer());
    assert_eq!((p.epoch(), c.epoch()), (1, 1));
    assert_eq!((p.peer_epoch(), c.peer_epoch()), (1, 1));
    assert!(!c.peer_restarted());
    // The producer attached first, when the consumer had not.
    assert!(p.peer_restarted(), "consumer attached after the producer");
    assert!(!p.peer_restarted());
    for i in 0..3 {
        p.enqueue(d(i)).unwrap();
    }
    assert_eq!(c.dequeue().unwrap(), Some(d(0)));
    // The producer restarts: fresh local state, same ring.
    let mut p = ring.producer();
    assert_eq!(p.epoch(), 2);
    assert_eq!(p.len(), 2, "continues from the shared tail and head");
    assert!(c.peer_restarted());
    assert!(!c.peer_restarted(), "reported once");
    p.enqueue(d(3)).unwrap();
    assert_eq!(drain(&mut c), vec![1, 2, 3]);
    // The consumer restarts mid-stream: it continues from the shared head.
    p.enqueue(d(4)).unwrap();
    p.enqueue(d(5)).unwrap();
    assert_eq!(c.dequeue().unwrap(), Some(d(4)));
    let mut c = ring.consumer();
    assert_eq!(c.epoch(), 2);
    assert!(p.peer_restarted());
    assert_eq!(drain(&mut c), vec![5]);
    assert_eq!(p.misbehavior_count() + c.misbehavior_count(), 0);
}

#[test]
fn epochs_skip_zero_on_wrap() {
    let ring = OwnedRing::new(2);
    ring.poke(Field::ProducerEpoch, u32::MAX);
    ring.poke(Field::ConsumerEpoch, u32::MAX - 1);
    let mut c = ring.consumer();
    assert_eq!(c.epoch(), u32::MAX);
    let p = ring.producer();
    assert_eq!(p.epoch(), 1, "0 means never attached, so it is skipped");
    assert!(c.peer_restarted());
    assert_eq!(c.peer_epoch(), 1);
}

#[test]
fn signalling_requests_cancels_and_rechecks() {
    let ring = OwnedRing::new(8);
    let (mut p, mut c) = (ring.producer(), ring.consumer());
    // Fresh memory (all zero) means "signal requested".
    p.enqueue(d(1)).unwrap();
    assert!(p.must_notify());
    assert_eq!(ring.get(Field::ConsumerSignalled), SIGNAL_CANCELLED);
    p.enqueue(d(2)).unwrap();
    assert!(!p.must_notify(), "already notified, and no new request");
    // The consumer has work: a request is cancelled on the re-check.
    assert!(!c.request_signal());
    assert_eq!(ring.get(Field::ConsumerSignalled), SIGNAL_CANCELLED);
    assert_eq!(drain(&mut c), vec![1, 2]);
    assert!(c.request_signal(), "empty: safe to wait");
    assert_eq!(ring.get(Field::ConsumerSignalled), SIGNAL_REQUESTED);
    // Items arrive after the request, before the consumer sleeps: the
    // re-check sees them.
    p.enqueue(d(3)).unwrap();
    assert!(!c.request_signal());
    assert_eq!(drain(&mut c), vec![3]);
    assert!(c.request_signal());
    p.enqueue(d(4)).unwrap();
    assert!(p.must_notify());
    assert!(!p.must_notify());
    assert_eq!(p.misbehavior_count(), 0);
}

#[test]
fn a_garbage_signal_flag_is_counted_and_treated_as_a_request() {
    let ring = OwnedRing::new(2);
    let mut p = ring.producer();
    ring.poke(Field::ConsumerSignalled, 77);
    assert!(p.must_notify());
    assert_eq!(p.misbehavior_count(), 1);
    assert_eq!(ring.get(Field::ConsumerSignalled), SIGNAL_CANCELLED);
    assert!(!p.must_notify());
}

#[test]
fn impossible_tails_are_refused_and_counted() {
    let ring = OwnedRing::new(4);
    let (mut p, mut c) = (ring.producer(), ring.consumer());
    ring.poke(Field::Tail, 100);
    assert_eq!(
        c.dequeue(),
        Err(PeerMisbehavior::TailOverrun { tail: 100, head: 0 })
    );
    assert_eq!(c.misbehavior_count(), 1);
    // Behind the head.
    ring.poke(Field::Tail, u32::MAX);
    assert_eq!(
        c.dequeue(),
        Err(PeerMisbehavior::TailBackwards {
            tail: u32::MAX,
            seen: 0
        })
    );
    assert_eq!(c.misbehavior_count(), 2);
    // Honest again: it works again.
    ring.poke(Field::Tail, 0);
    for i in 0..3 {
        p.enqueue(d(i)).unwrap();
    }
    assert_eq!(c.peek(2).unwrap(), Some(d(2)));
    // Taking back published descriptors.
    ring.poke(Field::Tail, 1);
    assert_eq!(
        c.peek(3),
        Err(PeerMisbehavior::TailBackwards { tail: 1, seen: 3 })
    );
    assert_eq!(c.misbehavior_count(), 3);
    // Reported once; then the ring goes on from the tail taken back (a
    // consumer holding on to the old one could wait for ever).
    assert_eq!(c.dequeue().unwrap(), Some(d(0)));
    assert_eq!(c.dequeue().unwrap(), None);
    assert_eq!(c.misbehavior_count(), 3);
    ring.poke(Field::Tail, 3);
    assert_eq!(c.dequeue().unwrap(), Some(d(1)));
    assert_eq!(c.dequeue().unwrap(), Some(d(2)));
    assert_eq!(c.dequeue().unwrap(), None);
    // `request_signal` counts and waits on an impossible tail.
    ring.poke(Field::Tail, 1000);
    assert!(c.request_signal());
    assert_eq!(c.misbehavior_count(), 4);
}

/// Garbage published descriptors past the producer's own tail while the
/// consumer was reading one of them: the producer must not write its next
/// real descriptor into that slot (the consumer, done with what it read
/// there, would release it and the real one with it), so it goes on after
/// the garbage.
#[test]
fn a_producer_goes_on_after_garbage_published_past_its_tail() {
    let ring = OwnedRing::new(8);
    let (mut p, mut c) = (ring.producer(), ring.consumer());
    p.enqueue(d(1)).unwrap();
    p.enqueue(d(2)).unwrap();
    // Garbage: four more slots published.
    ring.poke(Field::Tail, 6);
    assert_eq!(drain_n(&mut c, 2), [1, 2]);
    // The consumer is reading slot 2 (garbage) when the producer sends.
    let _garbage = c.peek(0).unwrap().unwrap();
    p.enqueue(d(10)).unwrap();
    c.release(1).unwrap();
    let rest = drain(&mut c);
    assert_eq!(
        rest.last(),
        Some(&10),
        "the real descriptor was lost: {rest:?}"
    );
    assert_eq!(p.position(), 7);
    assert_eq!(p.misbehavior_count(), 1);
}

fn drain_n(c: &mut Consumer, n: usize) -> Vec<u64> {
    (0..n)
        .map(|_| c.dequeue().unwrap().unwrap().offset)
        .collect()
}

#[test]
fn impossible_heads_are_refused_and_counted() {
    let ring = OwnedRing::new(4);
    let mut p = ring.producer();
    for i in 0..4 {
        p.enqueue(d(i)).unwrap();
    }
    ring.poke(Field::Head, 2);
    p.refresh().unwrap();
    assert_eq!(p.len(), 2);
    ring.poke(Field::Head, 1);
    assert_eq!(
        p.refresh(),
        Err(PeerMisbehavior::HeadBackwards { head: 1, seen: 2 })
    );
    assert_eq!(p.misbehavior_count(), 1);
    assert_eq!(p.len(), 2, "the shadow keeps the last good head");
}

#[test]
fn a_head_far_ahead_of_the_tail_moves_the_tail_up_to_it() {
    // Garbage published twice from a stale tail: the consumer took more
    // than a whole ring past what this end published. The ring goes on
    // from the head, instead of publishing for ever behind it.
    let ring = OwnedRing::new(4);
    let mut p = ring.producer();
    for i in 0..4 {
        p.enqueue(d(i)).unwrap();
    }
    ring.poke(Field::Head, 1000);
    p.enqueue(Desc { meta: 5, ..d(5) }).unwrap();
    assert_eq!(p.misbehavior_count(), 1);
    assert_eq!(p.position(), 1001);
    assert_eq!(p.len(), 1);
    // A consumer at that head takes the new descriptor.
    let mut c = ring.consumer();
    assert_eq!(c.dequeue().unwrap().map(|x| x.meta), Some(5));
    assert_eq!(c.dequeue().unwrap(), None);
}

#[test]
fn a_tail_written_behind_the_producers_back_heals_at_its_next_enqueue() {
    let ring = OwnedRing::new(8);
    let (mut p, mut c) = (ring.producer(), ring.consumer());
    p.enqueue(d(1)).unwrap();
    p.enqueue(d(2)).unwrap();
    // A garbage-writing life of the producer's PD published a tail past
    // its own, over slots it never filled; the consumer takes them.
    ring.poke(Field::Tail, 5);
    assert_eq!(drain(&mut c).len(), 5);
    assert_eq!(ring.get(Field::Head), 5);
    // The producer goes on after the tail published past its own (5), not
    // from its own (2): from there, every tail it published would be
    // behind the consumer's head.
    p.enqueue(d(3)).unwrap();
    assert_eq!(p.misbehavior_count(), 1);
    assert_eq!(ring.get(Field::Tail), 6);
    assert_eq!(drain(&mut c), vec![3]);
    for i in 4..8 {
        p.enqueue(d(i)).unwrap();
    }
    assert_eq!(drain(&mut c), vec![4, 5, 6, 7]);
    assert_eq!(c.misbehavior_count(), 0);
    assert_eq!(p.misbehavior_count(), 1);
}

#[test]
fn a_producer_attaching_to_an_impossible_ring_restarts_it_empty() {
    let ring = OwnedRing::new(4);
    ring.poke(Field::Tail, 50);
    ring.poke(Field::Head, 10);
    let p = ring.producer();
    assert_eq!(p.misbehavior_count(), 1);
    assert!(p.is_empty());
    assert_eq!(ring.get(Field::Tail), 10);
    let mut c = ring.consumer();
    assert_eq!(c.dequeue().unwrap(), None);
}

#[test]
fn check_within_never_overflows() {
    let desc = Desc {
        offset: u64::MAX,
        len: 10,
        meta: 0,
    };
    assert_eq!(desc.check_within(usize::MAX), Err(BadDescriptor));
    let desc = Desc {
        offset: usize::MAX as u64 - 5,
        len: 5,
        meta: 0,
    };
    assert_eq!(
        desc.check_within(usize::MAX),
        Ok(usize::MAX - 5..usize::MAX)
    );
    let desc = Desc {
        offset: usize::MAX as u64 - 5,
        len: 6,
        meta: 0,
    };
    assert_eq!(desc.check_within(usize::MAX), Err(BadDescriptor));
    let desc = Desc {
        offset: 4090,
        len: 6,
        meta: 0,
    };
    assert_eq!(desc.check_within(4096), Ok(4090..4096));
    assert_eq!(desc.check_within(4095), Err(BadDescriptor));
    assert_eq!(Desc::default().check_within(0), Ok(0..0));
}

proptest! {
    #[test]
    fn check_within_agrees_with_wide_arithmetic(offset: u64, len: u32, pool: usize) {
        let desc = Desc { offset, len, meta: 0 };
        let end = offset as u128 + len as u128;
        match desc.check_within(pool) {
            Ok(r) => {
                prop_assert!(end <= pool as u128);
                prop_assert_eq!(r, offset as usize..end as usize);
            }
            Err(BadDescriptor) => prop_assert!(end > pool as u128),
        }
    }
}

#[test]
fn desc_layout_is_16_little_endian_bytes() {
    let desc = Desc {
        offset: 0x0807_0605_0403_0201,
        len: 0x0c0b_0a09,
        meta: 0x100f_0e0d,
    };
    assert_eq!(desc.as_bytes(), (1..=16).collect::<Vec<u8>>().as_slice());
    assert_eq!(Desc::read_from_bytes(desc.as_bytes()), Ok(desc));
}

#[test]
fn attach_checks_the_region() {
    let mut mem = vec![0u64; region_bytes(8) / 8];
    let base = mem.as_mut_ptr().cast::<u8>();
    let len = region_bytes(8);
    assert_eq!(len, 64 + 8 * 16);
    // SAFETY: `mem` outlives every end made here and is only reached
    // through them until they are gone.
    unsafe {
        for bad in [0, 1, 3, 6, 65537, 131072, u32::MAX] {
            assert!(matches!(
                Producer::attach(base, usize::MAX, bad),
                Err(AttachError::BadSlots)
            ));
        }
        assert!(matches!(
            Producer::attach(base, len, 16),
            Err(AttachError::TooSmall)
        ));
        assert!(matches!(
            Producer::attach(base, len - 1, 8),
            Err(AttachError::TooSmall)
        ));
        assert!(matches!(
            Producer::attach(base.add(4), len - 4, 2),
            Err(AttachError::Misaligned)
        ));
        assert!(matches!(
            Consumer::attach(core::ptr::null_mut(), len, 2),
            Err(AttachError::Misaligned)
        ));
        assert!(matches!(
            Consumer::attach(base, len, 1),
            Err(AttachError::BadSlots)
        ));
        let mut p = Producer::attach(base, len, 8).unwrap();
        let mut c = Consumer::attach(base, len, 8).unwrap();
        assert_eq!((p.slots(), c.slots()), (8, 8));
        p.enqueue(d(42)).unwrap();
        assert_eq!(c.dequeue().unwrap(), Some(d(42)));
        // A smaller ring in a larger region is fine.
        assert!(Producer::attach(base, len, 2).is_ok());
    }
    // The header layout is the documented one (little-endian u32s).
    let bytes: Vec<u8> = mem.iter().flat_map(|w| w.to_le_bytes()).collect();
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!(word(TAIL_OFFSET), 1, "tail at offset 0");
    assert_eq!(word(HEAD_OFFSET), 1, "head at offset 4");
    assert_eq!(
        word(PRODUCER_EPOCH_OFFSET),
        2,
        "producer epoch at offset 12"
    );
    assert_eq!(
        word(CONSUMER_EPOCH_OFFSET),
        1,
        "consumer epoch at offset 16"
    );
    assert!(bytes[20..64].iter().all(|&b| b == 0), "reserved stays zero");
    assert_eq!(
        Desc::read_from_bytes(&bytes[64..80]).unwrap(),
        d(42),
        "first descriptor at offset 64"
    );
}

// ---------------------------------------------------------------------------
// Real threads over the shared region

#[test]
fn threads_pass_many_items_in_order() {
    let ring = OwnedRing::new(64);
    let (mut p, mut c) = (ring.producer(), ring.consumer());
    const N: u64 = 200_000;
    let t = std::thread::spawn(move || {
        let mut i = 0;
        while i < N {
            match p.enqueue(d(i)) {
                Ok(()) => i += 1,
                Err(EnqueueError::Full) => std::thread::yield_now(),
                Err(e) => panic!("{e:?}"),
            }
        }
        p.misbehavior_count()
    });
    let mut next = 0;
    while next < N {
        match c.dequeue().unwrap() {
            Some(x) => {
                assert_eq!(x, d(next));
                next += 1;
            }
            None => std::thread::yield_now(),
        }
    }
    assert_eq!(t.join().unwrap(), 0);
    assert_eq!(c.misbehavior_count(), 0);
    assert_eq!(c.dequeue().unwrap(), None);
}

/// A sticky notification, as on seL4: signals coalesce until the waiter
/// takes them.
#[derive(Default)]
struct Notification {
    pending: Mutex<bool>,
    cv: Condvar,
}

impl Notification {
    fn signal(&self) {
        *self.pending.lock().unwrap() = true;
        self.cv.notify_one();
    }

    /// Waits for a signal; panics if none comes (a lost wake-up).
    fn wait(&self) {
        let guard = self.pending.lock().unwrap();
        let (mut guard, timeout) = self
            .cv
            .wait_timeout_while(guard, Duration::from_secs(20), |p| !*p)
            .unwrap();
        assert!(!timeout.timed_out(), "lost wake-up: slept with work queued");
        *guard = false;
    }
}

#[test]
fn threads_sleep_and_wake_with_the_signalling_protocol() {
    let ring = OwnedRing::new(16);
    let (mut p, mut c) = (ring.producer(), ring.consumer());
    const N: u64 = 50_000;
    let note = Arc::new(Notification::default());
    let note2 = note.clone();
    let t = std::thread::spawn(move || {
        let (mut i, mut notifications) = (0u64, 0u64);
        let mut batch = 1;
        while i < N {
            // Batches of 1..=7, so the consumer sometimes keeps up and
            // sleeps, sometimes not.
            batch = batch % 7 + 1;
            let mut queued = false;
            for _ in 0..batch {
                if i == N {
                    break;
                }
                match p.enqueue(d(i)) {
                    Ok(()) => {
                        i += 1;
                        queued = true;
                    }
                    Err(EnqueueError::Full) => break,
                    Err(e) => panic!("{e:?}"),
                }
            }
            if queued && p.must_notify() {
                notifications += 1;
                note2.signal();
            }
            if !queued {
                std::thread::yield_now();
            }
        }
        notifications
    });
    let (mut next, mut sleeps, mut requests) = (0u64, 0u64, 0u64);
    loop {
        while let Some(x) = c.dequeue().unwrap() {
            assert_eq!(x, d(next));
            next += 1;
        }
        if next == N {
            break;
        }
        requests += 1;
        if c.request_signal() {
            sleeps += 1;
            note.wait();
        }
    }
    let notifications = t.join().unwrap();
    assert_eq!(c.misbehavior_count(), 0);
    assert!(sleeps > 0, "the consumer never slept");
    // Fresh memory counts as one request; each other notification answers
    // a request (one that found the ring empty, or one cancelled by the
    // re-check after the producer had already seen it).
    assert!(
        notifications <= requests + 1,
        "a notification only answers a request: {notifications} for {requests} requests"
    );
    eprintln!("{N} items, {requests} requests, {sleeps} sleeps, {notifications} notifications");
    assert!(notifications < N, "the producer notified every time");
}

// ---------------------------------------------------------------------------
// A hostile peer, checked against a reference model of each end, over a
// region sized exactly and fenced by inaccessible guard pages, so that any
// access outside it faults.

/// `len` bytes of memory with an inaccessible page before and after the
/// pages that hold it; `at_end` places the region against the following
/// guard page, otherwise against the preceding one.
struct Guarded {
    map: *mut libc::c_void,
    map_len: usize,
    base: *mut u8,
}

impl Guarded {
    fn new(len: usize, at_end: bool) -> Guarded {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let data = len.div_ceil(page) * page;
        let map_len = data + 2 * page;
        // SAFETY: a fresh anonymous mapping, nothing else refers to it.
        let map = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                map_len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(map, libc::MAP_FAILED);
        // SAFETY: `page..page + data` is inside the mapping just made.
        let rc = unsafe {
            libc::mprotect(
                map.cast::<u8>().add(page).cast(),
                data,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        assert_eq!(rc, 0);
        let offset = if at_end { page + data - len } else { page };
        // SAFETY: inside the mapping.
        let base = unsafe { map.cast::<u8>().add(offset) };
        Guarded { map, map_len, base }
    }

    fn field(&self, offset: usize) -> &AtomicU32 {
        // SAFETY: header offsets are inside the region, 4-aligned (the region
        // is 16-aligned); the header is only accessed atomically.
        unsafe { AtomicU32::from_ptr(self.base.add(offset).cast::<u32>()) }
    }

    fn get(&self, offset: usize) -> u32 {
        self.field(offset).load(Ordering::Acquire)
    }

    fn set(&self, offset: usize, v: u32) {
        self.field(offset).store(v, Ordering::Release)
    }

    /// The descriptor in slot `i` (`i < slots`).
    fn slot(&self, slots: u32, i: u32) -> Desc {
        assert!(i < slots);
        // SAFETY: inside the region; 8-aligned.
        unsafe {
            self.base
                .add(HEADER_BYTES + i as usize * DESC_BYTES)
                .cast::<Desc>()
                .read_volatile()
        }
    }

    /// Writes one byte of the descriptor area.
    fn poke_byte(&self, slots: u32, at: usize, v: u8) {
        let at = at % (slots as usize * DESC_BYTES);
        // SAFETY: inside the descriptor area of the region.
        unsafe { self.base.add(HEADER_BYTES + at).write_volatile(v) }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping; the ends over it are gone.
        unsafe { libc::munmap(self.map, self.map_len) };
    }
}

fn slots_strategy() -> impl Strategy<Value = u32> {
    prop_oneof![Just(2u32), Just(4), Just(8), Just(16)]
}

/// An index the hostile peer writes: anywhere, or near one the owner knows
/// (so that plausible values are common too).
#[derive(Clone, Debug)]
enum Index {
    Abs(u32),
    NearOwn(i32),
    NearSeen(i32),
}

fn index() -> impl Strategy<Value = Index> {
    prop_oneof![
        any::<u32>().prop_map(Index::Abs),
        (-3i32..20).prop_map(Index::NearOwn),
        (-3i32..20).prop_map(Index::NearSeen),
    ]
}

fn flag() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), Just(1), any::<u32>()]
}

fn resolve(i: &Index, own: u32, seen: u32) -> u32 {
    match *i {
        Index::Abs(v) => v,
        Index::NearOwn(k) => own.wrapping_add_signed(k),
        Index::NearSeen(k) => seen.wrapping_add_signed(k),
    }
}

fn epoch_after(e: u32) -> u32 {
    match e.wrapping_add(1) {
        0 => 1,
        n => n,
    }
}

/// Operations on a real consumer facing a hostile producer.
#[derive(Clone, Debug)]
enum COp {
    Dequeue,
    Peek(u32),
    Release(u32),
    Request,
    Refresh,
    PeerRestarted,
    Reattach,
    PokeTail(Index),
    PokeByte(usize, u8),
    PokeSignal(u32),
    PokeEpoch(u32),
}

fn c_op() -> impl Strategy<Value = COp> {
    prop_oneof![
        4 => Just(COp::Dequeue),
        2 => (0u32..20).prop_map(COp::Peek),
        2 => (0u32..20).prop_map(COp::Release),
        2 => Just(COp::Request),
        1 => Just(COp::Refresh),
        1 => Just(COp::PeerRestarted),
        1 => Just(COp::Reattach),
        5 => index().prop_map(COp::PokeTail),
        3 => (any::<usize>(), any::<u8>()).prop_map(|(a, v)| COp::PokeByte(a, v)),
        1 => flag().prop_map(COp::PokeSignal),
        1 => any::<u32>().prop_map(COp::PokeEpoch),
    ]
}

/// Operations on a real producer facing a hostile consumer.
#[derive(Clone, Debug)]
enum POp {
    Enqueue(u64),
    MustNotify,
    Refresh,
    PeerRestarted,
    Reattach,
    PokeHead(Index),
    PokeTail(Index),
    PokeSignal(u32),
    PokeEpoch(u32),
    PokeByte(usize, u8),
}

fn p_op() -> impl Strategy<Value = POp> {
    prop_oneof![
        6 => any::<u64>().prop_map(POp::Enqueue),
        2 => Just(POp::MustNotify),
        1 => Just(POp::Refresh),
        1 => Just(POp::PeerRestarted),
        1 => Just(POp::Reattach),
        5 => index().prop_map(POp::PokeHead),
        1 => index().prop_map(POp::PokeTail),
        2 => flag().prop_map(POp::PokeSignal),
        1 => any::<u32>().prop_map(POp::PokeEpoch),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(a, v)| POp::PokeByte(a, v)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A producer that writes anything into the tail, the descriptors, the
    /// flag and its epoch, at any time: the consumer never panics, never
    /// touches memory outside the region, refuses exactly the impossible
    /// tails, counts each, and otherwise behaves as the model says.
    #[test]
    fn a_hostile_producer_cannot_break_the_consumer(
        slots in slots_strategy(),
        at_end: bool,
        start: u32,
        ops in proptest::collection::vec(c_op(), 1..300),
    ) {
        let g = Guarded::new(region_bytes(slots), at_end);
        g.set(TAIL_OFFSET, start);
        g.set(HEAD_OFFSET, start);
        // SAFETY: `g` outlives the ends (declared after it) and is only
        // accessed through them and the atomic/volatile pokes below.
        let mut c = unsafe { Consumer::attach(g.base, region_bytes(slots), slots) }.unwrap();
        // The model: the consumer's head, the last good tail, the count.
        let (mut head, mut seen, mut bad) = (start, start, 0u32);
        let mut peer_epoch = 0u32;
        let mask = slots - 1;
        // What reading the tail should do.
        let look = |head: u32, seen: &mut u32, bad: &mut u32| -> bool {
            let tail = g.get(TAIL_OFFSET);
            let avail = tail.wrapping_sub(head);
            if avail > slots {
                *bad += 1;
                false
            } else if avail < seen.wrapping_sub(head) {
                // Descriptors taken back: reported once, then gone on from.
                *bad += 1;
                *seen = tail;
                false
            } else {
                *seen = tail;
                true
            }
        };
        for op in ops {
            match op {
                COp::Dequeue | COp::Peek(_) => {
                    let i = if let COp::Peek(i) = op { i } else { 0 };
                    let expect_ok =
                        i < seen.wrapping_sub(head) || look(head, &mut seen, &mut bad);
                    let want = (i < seen.wrapping_sub(head))
                        .then(|| g.slot(slots, head.wrapping_add(i) & mask));
                    let got = if matches!(op, COp::Dequeue) { c.dequeue() } else { c.peek(i) };
                    if expect_ok {
                        prop_assert_eq!(got, Ok(want));
                        if matches!(op, COp::Dequeue) && want.is_some() {
                            head = head.wrapping_add(1);
                        }
                    } else {
                        prop_assert!(got.is_err(), "accepted an impossible tail: {:?}", got);
                    }
                }
                COp::Release(n) => {
                    prop_assert_eq!(c.release(n), Ok(()));
                    head = head.wrapping_add(n.min(seen.wrapping_sub(head)));
                }
                COp::Request => {
                    look(head, &mut seen, &mut bad);
                    let empty = seen == head;
                    prop_assert_eq!(c.request_signal(), empty);
                    let want = if empty { SIGNAL_REQUESTED } else { SIGNAL_CANCELLED };
                    prop_assert_eq!(g.get(CONSUMER_SIGNALLED_OFFSET), want);
                }
                COp::Refresh => {
                    let ok = look(head, &mut seen, &mut bad);
                    prop_assert_eq!(c.refresh().is_ok(), ok);
                }
                COp::PeerRestarted => {
                    let now = g.get(PRODUCER_EPOCH_OFFSET);
                    prop_assert_eq!(c.peer_restarted(), now != peer_epoch);
                    peer_epoch = now;
                }
                COp::Reattach => {
                    let epoch = epoch_after(g.get(CONSUMER_EPOCH_OFFSET));
                    peer_epoch = g.get(PRODUCER_EPOCH_OFFSET);
                    // SAFETY: as above; the old end is replaced.
                    c = unsafe { Consumer::attach(g.base, region_bytes(slots), slots) }.unwrap();
                    head = g.get(HEAD_OFFSET);
                    seen = head;
                    bad = 0;
                    look(head, &mut seen, &mut bad);
                    prop_assert_eq!(c.epoch(), epoch);
                    prop_assert_eq!(g.get(CONSUMER_EPOCH_OFFSET), epoch);
                }
                COp::PokeTail(i) => g.set(TAIL_OFFSET, resolve(&i, head, seen)),
                COp::PokeByte(at, v) => g.poke_byte(slots, at, v),
                COp::PokeSignal(v) => g.set(CONSUMER_SIGNALLED_OFFSET, v),
                COp::PokeEpoch(v) => g.set(PRODUCER_EPOCH_OFFSET, v),
            }
            prop_assert!(c.len() <= slots);
            prop_assert_eq!(c.len(), seen.wrapping_sub(head));
            prop_assert_eq!(c.misbehavior_count(), bad);
            prop_assert_eq!(g.get(HEAD_OFFSET), head, "published head");
        }
    }

    /// A consumer that writes anything into the head, the flag, its epoch,
    /// even the tail and the descriptors: the producer never panics, never
    /// touches memory outside the region, refuses exactly the impossible
    /// heads, counts each, and otherwise behaves as the model says.
    #[test]
    fn a_hostile_consumer_cannot_break_the_producer(
        slots in slots_strategy(),
        at_end: bool,
        start: u32,
        ops in proptest::collection::vec(p_op(), 1..300),
    ) {
        let g = Guarded::new(region_bytes(slots), at_end);
        g.set(TAIL_OFFSET, start);
        g.set(HEAD_OFFSET, start);
        // SAFETY: as in the consumer's test.
        let mut p = unsafe { Producer::attach(g.base, region_bytes(slots), slots) }.unwrap();
        let (mut tail, mut seen, mut bad) = (start, start, 0u32);
        let mut peer_epoch = 0u32;
        // Whether the shared tail is the producer's (until the peer writes it).
        let mut tail_ours = true;
        let mask = slots - 1;
        // The producer's look at the head: a head ahead of the tail, by
        // any distance, is caught up with (the tail is published anew);
        // only a head behind the one seen before is refused.
        // A shared tail ahead of the producer's (by a ring at most, and a
        // ring past the head at most) is adopted first: the consumer may be
        // reading what it published.
        let look = |tail: &mut u32, seen: &mut u32, bad: &mut u32, ours: &mut bool| -> bool {
            let head = g.get(HEAD_OFFSET);
            let shared = g.get(TAIL_OFFSET);
            let ahead = shared.wrapping_sub(*tail);
            let head_back = seen.wrapping_sub(head);
            if ahead != 0
                && ahead <= slots
                && shared.wrapping_sub(head) <= slots
                && (head_back == 0 || head_back > i32::MAX as u32)
            {
                *bad += 1;
                *tail = shared;
                *ours = true;
            }
            if head.wrapping_sub(*seen) > tail.wrapping_sub(*seen) {
                *bad += 1;
                if head_back == 0 || head_back > i32::MAX as u32 {
                    *tail = head;
                    *seen = head;
                    *ours = true;
                    return true;
                }
                false
            } else {
                *seen = head;
                true
            }
        };
        for op in ops {
            match op {
                POp::Enqueue(v) => {
                    let desc = d(v);
                    let ok = look(&mut tail, &mut seen, &mut bad, &mut tail_ours);
                    let got = p.enqueue(desc);
                    if tail.wrapping_sub(seen) >= slots && !ok {
                        prop_assert!(matches!(got, Err(EnqueueError::Peer(_))), "{:?}", got);
                    } else if tail.wrapping_sub(seen) >= slots {
                        prop_assert_eq!(got, Err(EnqueueError::Full));
                    } else {
                        prop_assert_eq!(got, Ok(()));
                        prop_assert_eq!(g.slot(slots, tail & mask), desc);
                        tail = tail.wrapping_add(1);
                        tail_ours = true;
                    }
                }
                POp::MustNotify => {
                    let f = g.get(CONSUMER_SIGNALLED_OFFSET);
                    prop_assert_eq!(p.must_notify(), f != SIGNAL_CANCELLED);
                    if f != SIGNAL_CANCELLED && f != SIGNAL_REQUESTED {
                        bad += 1;
                    }
                    prop_assert_eq!(g.get(CONSUMER_SIGNALLED_OFFSET), SIGNAL_CANCELLED);
                }
                POp::Refresh => {
                    let ok = look(&mut tail, &mut seen, &mut bad, &mut tail_ours);
                    prop_assert_eq!(p.refresh().is_ok(), ok);
                }
                POp::PeerRestarted => {
                    let now = g.get(CONSUMER_EPOCH_OFFSET);
                    prop_assert_eq!(p.peer_restarted(), now != peer_epoch);
                    peer_epoch = now;
                }
                POp::Reattach => {
                    let epoch = epoch_after(g.get(PRODUCER_EPOCH_OFFSET));
                    peer_epoch = g.get(CONSUMER_EPOCH_OFFSET);
                    tail = g.get(TAIL_OFFSET);
                    seen = g.get(HEAD_OFFSET);
                    bad = 0;
                    if tail.wrapping_sub(seen) > slots {
                        bad = 1;
                        tail = seen;
                    }
                    // SAFETY: as above; the old end is replaced.
                    p = unsafe { Producer::attach(g.base, region_bytes(slots), slots) }.unwrap();
                    tail_ours = true;
                    prop_assert_eq!(p.epoch(), epoch);
                    prop_assert_eq!(g.get(PRODUCER_EPOCH_OFFSET), epoch);
                }
                POp::PokeHead(i) => g.set(HEAD_OFFSET, resolve(&i, seen, tail)),
                // Only a re-attach reads the tail, which the producer owns.
                POp::PokeTail(i) => {
                    g.set(TAIL_OFFSET, resolve(&i, tail, seen));
                    tail_ours = false;
                }
                POp::PokeSignal(v) => g.set(CONSUMER_SIGNALLED_OFFSET, v),
                POp::PokeEpoch(v) => g.set(CONSUMER_EPOCH_OFFSET, v),
                POp::PokeByte(at, v) => g.poke_byte(slots, at, v),
            }
            prop_assert!(p.len() <= slots);
            prop_assert_eq!(p.len(), tail.wrapping_sub(seen));
            prop_assert_eq!(p.misbehavior_count(), bad);
            if tail_ours {
                prop_assert_eq!(g.get(TAIL_OFFSET), tail, "published tail");
            }
        }
    }

    /// Both ends at once, with a peer scribbling over every header field and
    /// descriptor byte in between: nothing panics and each end's own view
    /// stays possible.
    #[test]
    fn scribbling_over_everything_breaks_neither_end(
        slots in slots_strategy(),
        at_end: bool,
        ops in proptest::collection::vec((p_op(), c_op()), 1..200),
    ) {
        let g = Guarded::new(region_bytes(slots), at_end);
        let len = region_bytes(slots);
        // SAFETY: as in the tests above.
        let (mut p, mut c) = unsafe {
            (Producer::attach(g.base, len, slots).unwrap(), Consumer::attach(g.base, len, slots).unwrap())
        };
        for (pop, cop) in ops {
            match pop {
                POp::Enqueue(v) => { let _ = p.enqueue(d(v)); }
                POp::MustNotify => { let _ = p.must_notify(); }
                POp::Refresh => { let _ = p.refresh(); }
                POp::PeerRestarted => { let _ = p.peer_restarted(); }
                // SAFETY: as above.
                POp::Reattach => p = unsafe { Producer::attach(g.base, len, slots) }.unwrap(),
                POp::PokeHead(i) => g.set(HEAD_OFFSET, resolve(&i, g.get(TAIL_OFFSET), 0)),
                POp::PokeTail(i) => g.set(TAIL_OFFSET, resolve(&i, g.get(HEAD_OFFSET), 0)),
                POp::PokeSignal(v) => g.set(CONSUMER_SIGNALLED_OFFSET, v),
                POp::PokeEpoch(v) => g.set(PRODUCER_EPOCH_OFFSET, v),
                POp::PokeByte(at, v) => g.poke_byte(slots, at, v),
            }
            match cop {
                COp::Dequeue => { let _ = c.dequeue(); }
                COp::Peek(i) => { let _ = c.peek(i); }
                COp::Release(n) => { let _ = c.release(n); }
                COp::Request => { let _ = c.request_signal(); }
                COp::Refresh => { let _ = c.refresh(); }
                COp::PeerRestarted => { let _ = c.peer_restarted(); }
                // SAFETY: as above.
                COp::Reattach => c = unsafe { Consumer::attach(g.base, len, slots) }.unwrap(),
                COp::PokeTail(i) => g.set(TAIL_OFFSET, resolve(&i, g.get(HEAD_OFFSET), 0)),
                COp::PokeByte(at, v) => g.poke_byte(slots, at, v),
                COp::PokeSignal(v) => g.set(CONSUMER_SIGNALLED_OFFSET, v),
                COp::PokeEpoch(v) => g.set(CONSUMER_EPOCH_OFFSET, v),
            }
            prop_assert!(p.len() <= slots, "producer len {}", p.len());
            prop_assert!(c.len() <= slots, "consumer len {}", c.len());
        }
    }

    /// With an honest peer, every enqueued descriptor comes out once, in
    /// order, and nothing is counted as misbehaviour.
    #[test]
    fn honest_peers_lose_nothing(ops in proptest::collection::vec(0u8..4, 1..500)) {
        let ring = OwnedRing::new(4);
        let (mut p, mut c) = (ring.producer(), ring.consumer());
        let (mut sent, mut got) = (0u64, 0u64);
        for op in ops {
            match op {
                0 | 1 => {
                    if p.enqueue(d(sent)).is_ok() { sent += 1; }
                }
                2 => {
                    if let Some(x) = c.dequeue().unwrap() {
                        prop_assert_eq!(x, d(got));
                        got += 1;
                    }
                }
                _ => {
                    // Restart one side or the other.
                    if sent % 2 == 0 { p = ring.producer() } else { c = ring.consumer() }
                }
            }
        }
        while let Some(x) = c.dequeue().unwrap() {
            prop_assert_eq!(x, d(got));
            got += 1;
        }
        prop_assert_eq!(sent, got);
        prop_assert_eq!(p.misbehavior_count() + c.misbehavior_count(), 0);
    }
}
