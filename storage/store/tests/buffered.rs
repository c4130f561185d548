//! Values larger than a message, atomic batches, read grants and watches:
//! the client helpers of `axolotl_store_api::buffered` against a real
//! `StoreServer`, through each client's value buffer.

mod common;

use axolotl_ring::shared::SharedBytes;
use axolotl_sdk::config::StoreClient;
use axolotl_sdk::mock::{Event, MockOs};
use axolotl_sdk::{Channel, Handler, Message};
use axolotl_store::{Store, StoreServer};
use axolotl_store_api::buffered::{self as buf, Change, MAX_BUFFER_VALUE_LEN};
use axolotl_store_api::{self as api, Status, StoreError};
use common::{image_at, state, Recorder};
use std::cell::RefCell;
use std::rc::Rc;

const A: Channel = Channel::new(1);
const B: Channel = Channel::new(2);
const C: Channel = Channel::new(3);

/// Memory that both the client and the store see, as a region is.
fn region(len: usize) -> (*mut u8, usize) {
    (
        Box::leak(vec![0u8; len].into_boxed_slice()).as_mut_ptr(),
        len,
    )
}

fn shared((p, n): (*mut u8, usize)) -> SharedBytes {
    // SAFETY: the memory is leaked: it lives for ever; every access to it
    // goes through SharedBytes' volatile copies.
    unsafe { SharedBytes::new(p, n) }
}

struct World {
    server: Rc<RefCell<StoreServer<Vec<u8>>>>,
    bufs: [(*mut u8, usize); 3],
    clients: &'static [StoreClient],
}

/// Clients `a` (a buffer; may read `b`), `b` (a buffer) and `c` (no
/// buffer, no grant).
fn world(journal: Vec<u8>) -> World {
    let bufs = [region(80 << 10), region(80 << 10), region(0)];
    let clients: &'static [StoreClient] = Box::leak(Box::new([
        StoreClient {
            channel: A,
            namespace: "a",
            quota_bytes: 200_000,
            quota_keys: 16,
            buffer: None,
            reads: &["b"],
        },
        StoreClient {
            channel: B,
            namespace: "b",
            quota_bytes: 200_000,
            quota_keys: 16,
            buffer: None,
            reads: &[],
        },
        StoreClient {
            channel: C,
            namespace: "c",
            quota_bytes: 1_000,
            quota_keys: 4,
            buffer: None,
            reads: &[],
        },
    ]));
    World {
        server: Rc::new(RefCell::new(server_over(journal, clients, &bufs))),
        bufs,
        clients,
    }
}

fn server_over(
    journal: Vec<u8>,
    clients: &'static [StoreClient],
    bufs: &[(*mut u8, usize); 3],
) -> StoreServer<Vec<u8>> {
    StoreServer::with_medium(journal, clients).with_buffers(vec![
        Some(shared(bufs[0])),
        Some(shared(bufs[1])),
        None,
    ])
}

impl World {
    /// A platform whose calls reach the server, and whose server's
    /// notifications are recorded in `notes`.
    fn os(&self, notes: Rc<RefCell<Vec<Channel>>>) -> MockOs {
        let server = self.server.clone();
        MockOs::new().on_call(move |ch, msg| {
            let mut s = server.borrow_mut();
            let mut inner = MockOs::new();
            let reply = s.protected(&mut inner, ch, msg).unwrap();
            for e in inner.take() {
                if let Event::Notify(n) = e {
                    notes.borrow_mut().push(n);
                }
            }
            Ok(reply)
        })
    }

    /// The store restarts: a new server over the same journal.
    fn restart(&mut self) {
        let journal = self.server.borrow().store().journal().medium().clone();
        self.server = Rc::new(RefCell::new(server_over(journal, self.clients, &self.bufs)));
    }
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
}

#[test]
fn a_64_kib_value_goes_through_the_buffer_and_survives_a_store_restart() {
    let mut w = world(vec![0; 0x40000]);
    let notes = Rc::new(RefCell::new(Vec::new()));
    let mut os = w.os(notes.clone());
    let mut a = shared(w.bufs[0]);
    let big = pattern(MAX_BUFFER_VALUE_LEN, 7);
    buf::put_large(&mut os, A, &mut a, b"big", &big).unwrap();
    // The client scribbles over its buffer: the stored value is a copy.
    a.copy_in(0, &[0xee; 1024]);
    let mut out = vec![0u8; MAX_BUFFER_VALUE_LEN];
    assert_eq!(
        buf::get_large(&mut os, A, &a, b"big", &mut out),
        Ok(Some(MAX_BUFFER_VALUE_LEN))
    );
    assert_eq!(out, big);
    // Too large for a message: a plain GET says so.
    let mut small = [0u8; 256];
    assert_eq!(
        api::get(&mut os, A, b"big", &mut small),
        Err(StoreError::TooLarge)
    );

    w.restart();
    let mut os = w.os(notes);
    let mut out = vec![0u8; MAX_BUFFER_VALUE_LEN];
    assert_eq!(
        buf::get_large(&mut os, A, &a, b"big", &mut out),
        Ok(Some(MAX_BUFFER_VALUE_LEN))
    );
    assert_eq!(out, big, "the journal did not keep the whole value");
    // Over the limit, or without a buffer: refused, nothing sent or kept.
    let over = vec![1u8; MAX_BUFFER_VALUE_LEN + 1];
    assert_eq!(
        buf::put_large(&mut os, A, &mut a, b"over", &over),
        Err(StoreError::TooLarge)
    );
    let mut none = shared(region(4096));
    assert_eq!(
        buf::put_large(&mut os, C, &mut none, b"k", b"v"),
        Err(StoreError::Denied)
    );
    assert_eq!(
        buf::get_large(&mut os, A, &a, b"missing", &mut out),
        Ok(None)
    );
}

#[test]
fn a_batch_applies_all_or_nothing() {
    let w = world(vec![0; 0x40000]);
    let mut os = w.os(Rc::new(RefCell::new(Vec::new())));
    let mut b = shared(w.bufs[1]);
    api::put(&mut os, B, b"gone", b"soon").unwrap();
    let big = pattern(40_000, 3);
    buf::batch(
        &mut os,
        B,
        &mut b,
        &[
            Change::Put(b"x", b"1"),
            Change::Put(b"y", &big),
            Change::Delete(b"gone"),
        ],
    )
    .unwrap();
    let mut v = [0u8; 8];
    assert_eq!(api::get(&mut os, B, b"x", &mut v), Ok(Some(1)));
    assert_eq!(api::get(&mut os, B, b"gone", &mut v), Ok(None));
    let mut out = vec![0u8; 40_000];
    assert_eq!(
        buf::get_large(&mut os, B, &b, b"y", &mut out),
        Ok(Some(40_000))
    );
    assert_eq!(out, big);

    // Over the quota as a whole (more keys than its 16): none of it
    // happens, not even the first change.
    let names: Vec<[u8; 2]> = (0..20u8).map(|i| [b'q', i]).collect();
    let mut changes = vec![Change::Put(b"x", b"2")];
    changes.extend(names.iter().map(|n| Change::Put(&n[..], b"v")));
    assert_eq!(
        buf::batch(&mut os, B, &mut b, &changes),
        Err(StoreError::QuotaExceeded)
    );
    assert_eq!(api::get(&mut os, B, b"x", &mut v), Ok(Some(1)));
    assert_eq!(v[0], b'1');
    assert_eq!(api::get(&mut os, B, &[b'q', 0], &mut v), Ok(None));
    // More than the buffer holds: refused before anything is sent.
    let huge = pattern(60_000, 9);
    assert_eq!(
        buf::batch(
            &mut os,
            B,
            &mut b,
            &[Change::Put(b"z1", &huge), Change::Put(b"z2", &huge)]
        ),
        Err(StoreError::TooLarge)
    );

    // A malformed batch (the client wrote garbage into its buffer): refused
    // whole, never a panic.
    let mut msg = Message::new(buf::BATCH);
    msg.push(64).unwrap();
    b.copy_in(0, &[0xff; 64]);
    let reply = w.server.borrow_mut().handle(B, &msg);
    assert_eq!(reply.label(), Status::BadRequest.label());
    // Longer than the buffer: refused.
    let mut msg = Message::new(buf::BATCH);
    msg.push(u64::MAX).unwrap();
    let reply = w.server.borrow_mut().handle(B, &msg);
    assert_eq!(reply.label(), Status::BadRequest.label());
    assert_eq!(api::get(&mut os, B, b"x", &mut v), Ok(Some(1)));
}

#[test]
fn a_crash_inside_a_batch_of_large_values_leaves_all_or_none_of_it() {
    static CLIENTS: [StoreClient; 1] = [StoreClient {
        channel: Channel::new(1),
        namespace: "one",
        quota_bytes: 200_000,
        quota_keys: 16,
        buffer: None,
        reads: &[],
    }];
    let initial = vec![0u8; 0x40000];
    let mut store = Store::new(Recorder::new(initial.clone()), &CLIENTS);
    let v1 = pattern(30_000, 1);
    assert_eq!(store.put(0, b"a", &v1), Status::Ok);
    let before = state(&store);
    let start = store.journal().medium().written();
    let v2 = pattern(50_000, 2);
    let v3 = pattern(20_000, 3);
    assert_eq!(
        store.batch(0, &[Change::Put(b"a", &v2), Change::Put(b"b", &v3)]),
        Status::Ok
    );
    let after = state(&store);
    let log = store.journal().medium().log.clone();
    let end = store.journal().medium().written();
    // Every 997th byte of the batch's writes, and its last ones.
    let cuts = (start..=end).step_by(997).chain(end - 8..=end);
    for cut in cuts {
        let image = image_at(&initial, &log, cut);
        let got = state(&Store::new(image, &CLIENTS));
        if cut == end {
            assert_eq!(got, after);
        } else {
            assert!(
                got == before || got == after,
                "crash at byte {cut}: neither state"
            );
            if cut < end - 4 {
                assert_eq!(got, before, "crash at byte {cut} before the last commit");
            }
        }
    }
}

#[test]
fn reads_of_another_namespace_need_a_grant() {
    let w = world(vec![0; 0x40000]);
    let mut os = w.os(Rc::new(RefCell::new(Vec::new())));
    api::put(&mut os, B, b"port", b"80").unwrap();
    let mut v = [0u8; 8];
    assert_eq!(buf::get_from(&mut os, A, "b", b"port", &mut v), Ok(Some(2)));
    assert_eq!(&v[..2], b"80");
    assert_eq!(buf::get_from(&mut os, A, "b", b"none", &mut v), Ok(None));
    // No grant: b may not read a, c may not read b; no such namespace.
    api::put(&mut os, A, b"secret", b"s").unwrap();
    assert_eq!(
        buf::get_from(&mut os, B, "a", b"secret", &mut v),
        Err(StoreError::Denied)
    );
    assert_eq!(
        buf::get_from(&mut os, C, "b", b"port", &mut v),
        Err(StoreError::Denied)
    );
    assert_eq!(
        buf::get_from(&mut os, A, "nobody", b"port", &mut v),
        Err(StoreError::Denied)
    );
    // A grant is to read: writes still go to the caller's own namespace.
    api::put(&mut os, A, b"port", b"99").unwrap();
    assert_eq!(buf::get_from(&mut os, A, "b", b"port", &mut v), Ok(Some(2)));
    assert_eq!(&v[..2], b"80");
}

#[test]
fn a_watcher_is_notified_of_changes_even_across_a_store_restart() {
    let mut w = world(vec![0; 0x40000]);
    let notes = Rc::new(RefCell::new(Vec::new()));
    let mut os = w.os(notes.clone());
    let (mut ns, mut key) = ([0u8; 32], [0u8; 32]);
    // a watches b's "incarnation" and its own "cfg"; c may not watch b.
    buf::watch(&mut os, A, "b", b"incarnation").unwrap();
    buf::watch(&mut os, A, "", b"cfg").unwrap();
    assert_eq!(
        buf::watch(&mut os, C, "b", b"incarnation"),
        Err(StoreError::Denied)
    );
    assert_eq!(buf::changed(&mut os, A, &mut ns, &mut key), Ok(None));

    api::put_u64(&mut os, B, b"incarnation", 1).unwrap();
    assert_eq!(*notes.borrow(), vec![A], "the watcher was not notified");
    assert_eq!(
        buf::changed(&mut os, A, &mut ns, &mut key),
        Ok(Some((1, 11)))
    );
    assert_eq!((&ns[..1], &key[..11]), (&b"b"[..], &b"incarnation"[..]));
    assert_eq!(buf::changed(&mut os, A, &mut ns, &mut key), Ok(None));
    // Another key of b: nobody is told.
    notes.borrow_mut().clear();
    api::put_u64(&mut os, B, b"other", 1).unwrap();
    assert!(notes.borrow().is_empty());
    // Its own key, by a batch.
    let mut a = shared(w.bufs[0]);
    buf::batch(&mut os, A, &mut a, &[Change::Put(b"cfg", b"on")]).unwrap();
    assert_eq!(*notes.borrow(), vec![A]);
    assert_eq!(
        buf::changed(&mut os, A, &mut ns, &mut key),
        Ok(Some((0, 3)))
    );
    assert_eq!(&key[..3], b"cfg");

    // The store restarts: the watches are in its journal. Every watched key
    // counts as changed once (a change may have been lost with the store).
    w.restart();
    notes.borrow_mut().clear();
    let mut os = w.os(notes.clone());
    let mut seen = Vec::new();
    while let Some((n, k)) = buf::changed(&mut os, A, &mut ns, &mut key).unwrap() {
        seen.push((ns[..n].to_vec(), key[..k].to_vec()));
    }
    seen.sort();
    assert_eq!(
        seen,
        vec![
            (vec![], b"cfg".to_vec()),
            (b"b".to_vec(), b"incarnation".to_vec())
        ]
    );
    api::put_u64(&mut os, B, b"incarnation", 2).unwrap();
    assert_eq!(*notes.borrow(), vec![A], "a watch was lost with the store");
    // Watches are bounded per client.
    for i in 0..20u8 {
        let r = buf::watch(&mut os, B, "", &[b'k', i]);
        if i < 16 {
            r.unwrap();
        } else {
            assert_eq!(r, Err(StoreError::QuotaExceeded));
        }
    }
}

#[test]
fn random_buffered_requests_and_buffer_contents_never_panic() {
    let w = world(vec![0; 0x10000]);
    let mut b = shared(w.bufs[1]);
    let mut x = 0x1234_5678_9abc_def1u64;
    let mut rand = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..20_000 {
        let mut junk = [0u8; 256];
        junk.iter_mut().for_each(|j| *j = rand() as u8);
        // Sometimes a plausible batch header.
        if rand() % 2 == 0 {
            junk[0] = 1 + (rand() % 2) as u8;
            junk[1] = 1 + (rand() % 32) as u8;
            junk[2] = 0;
            junk[3] = 0;
            junk[4..8].copy_from_slice(&((rand() % 64) as u32).to_le_bytes());
        }
        b.copy_in(0, &junk);
        let label = buf::PUT_BUF + rand() % 6;
        let mut msg = Message::new(label);
        for _ in 0..rand() % 8 {
            let word = match rand() % 3 {
                0 => rand() % 300,
                1 => rand() & 0xffff,
                _ => rand(),
            };
            let _ = msg.push(word);
        }
        let ch = [A, B, C, Channel::new(9)][(rand() % 4) as usize];
        let reply = w.server.borrow_mut().handle(ch, &msg);
        assert!(Status::from_label(reply.label()).is_some());
    }
}
