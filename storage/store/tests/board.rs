//! The monitor's incarnation board: what the monitor publishes becomes keys
//! of its namespace in the store, whose watchers hear of each change; a
//! scribbled board changes nothing; a restarted store catches up.

use axolotl_ring::shared::SharedBytes;
use axolotl_sdk::config::StoreClient;
use axolotl_sdk::mock::{Event, MockOs};
use axolotl_sdk::{Channel, ChannelSet, Handler};
use axolotl_store::StoreServer;
use axolotl_store_api::buffered as buf;
use axolotl_store_api::incarnations::{board_bytes, Publisher};
use axolotl_store_api::StoreError;
use std::cell::RefCell;
use std::rc::Rc;

const A: Channel = Channel::new(1);
const C: Channel = Channel::new(2);
/// The store's end of the monitor's board channel.
const G: Channel = Channel::new(7);

static CLIENTS: [StoreClient; 3] = [
    StoreClient {
        channel: A,
        namespace: "consumer",
        quota_bytes: 256,
        quota_keys: 4,
        buffer: None,
        reads: &["guardian"],
    },
    StoreClient {
        channel: C,
        namespace: "other",
        quota_bytes: 256,
        quota_keys: 4,
        buffer: None,
        reads: &[],
    },
    StoreClient {
        channel: G,
        namespace: "guardian",
        quota_bytes: 3 * (8 + 8),
        quota_keys: 3,
        buffer: None,
        reads: &[],
    },
];

/// The board's memory, leaked: it lives for ever.
fn board_mem() -> (*mut u8, usize) {
    let len = board_bytes(8);
    (
        Box::leak(vec![0u8; len].into_boxed_slice()).as_mut_ptr(),
        len,
    )
}

fn writable((p, n): (*mut u8, usize)) -> SharedBytes {
    // SAFETY: leaked memory, only ever copied in and out, volatile.
    unsafe { SharedBytes::new(p, n) }
}

fn read_only((p, n): (*mut u8, usize)) -> SharedBytes {
    // SAFETY: as above.
    unsafe { SharedBytes::read_only(p, n) }
}

type Server = Rc<RefCell<StoreServer<Vec<u8>>>>;

/// A platform whose calls reach the server; the server's notifications
/// land in `notes`.
fn client_os(server: &Server, notes: &Rc<RefCell<Vec<Channel>>>) -> MockOs {
    let (server, notes) = (server.clone(), notes.clone());
    MockOs::new().on_call(move |ch, msg| {
        let mut inner = MockOs::new();
        let reply = server.borrow_mut().protected(&mut inner, ch, msg).unwrap();
        for e in inner.take() {
            if let Event::Notify(n) = e {
                notes.borrow_mut().push(n);
            }
        }
        Ok(reply)
    })
}

/// The monitor notifies the store on the board channel.
fn tell(server: &Server) -> Vec<Channel> {
    let mut os = MockOs::new();
    server
        .borrow_mut()
        .notified(&mut os, ChannelSet::single(G))
        .unwrap();
    os.take()
        .into_iter()
        .filter_map(|e| match e {
            Event::Notify(n) => Some(n),
            _ => None,
        })
        .collect()
}

fn incarnation(os: &mut MockOs, pd: &str) -> Option<u64> {
    let mut v = [0u8; 8];
    match buf::get_from(os, A, "guardian", pd.as_bytes(), &mut v) {
        Ok(Some(8)) => Some(u64::from_le_bytes(v)),
        Ok(None) => None,
        other => panic!("{other:?}"),
    }
}

#[test]
fn published_incarnations_are_kept_and_watched() {
    let mem = board_mem();
    let mut monitor = Publisher::new(writable(mem));
    monitor
        .publish([("producer", 0), ("consumer", 0), ("guardian", 0)])
        .unwrap();
    let server: Server = Rc::new(RefCell::new(
        StoreServer::with_medium(vec![0u8; 0x10000], &CLIENTS).with_board(read_only(mem), G),
    ));
    let notes = Rc::new(RefCell::new(Vec::new()));
    let mut os = client_os(&server, &notes);
    assert_eq!(incarnation(&mut os, "producer"), Some(0));
    assert_eq!(incarnation(&mut os, "guardian"), Some(0));
    // A PD without the grant may neither read nor watch it.
    let mut v = [0u8; 8];
    assert_eq!(
        buf::get_from(&mut os, C, "guardian", b"producer", &mut v),
        Err(StoreError::Denied)
    );
    assert_eq!(
        buf::watch(&mut os, C, "guardian", b"producer"),
        Err(StoreError::Denied)
    );
    buf::watch(&mut os, A, "guardian", b"producer").unwrap();

    // The producer restarts.
    monitor
        .publish([("producer", 1), ("consumer", 0), ("guardian", 0)])
        .unwrap();
    assert_eq!(tell(&server), vec![A], "the watcher was not told");
    let (mut ns, mut key) = ([0u8; 32], [0u8; 32]);
    assert_eq!(
        buf::changed(&mut os, A, &mut ns, &mut key),
        Ok(Some((8, 8)))
    );
    assert_eq!((&ns[..8], &key[..8]), (&b"guardian"[..], &b"producer"[..]));
    assert_eq!(incarnation(&mut os, "producer"), Some(1));
    // Another PD's restart: nobody watches it.
    monitor
        .publish([("producer", 1), ("consumer", 1), ("guardian", 0)])
        .unwrap();
    assert_eq!(tell(&server), vec![]);
    assert_eq!(incarnation(&mut os, "consumer"), Some(1));
    assert_eq!(server.borrow().counters().incarnations, 3 + 2);

    // A scribbled board is not believed: nothing changes, it is counted.
    let (p, _) = mem;
    // SAFETY: the board is leaked; this test is its only user right now.
    unsafe { *p.add(board_bytes(1) - 1) ^= 0x40 };
    assert_eq!(tell(&server), vec![]);
    assert_eq!(incarnation(&mut os, "producer"), Some(1));
    assert_eq!(server.borrow().counters().bad_boards, 1);
    // SAFETY: as above.
    unsafe { *p.add(board_bytes(1) - 1) ^= 0x40 };

    // The store restarts; meanwhile the producer restarted again and the
    // monitor's notification found no store. The new store catches up.
    monitor
        .publish([("producer", 2), ("consumer", 1), ("guardian", 0)])
        .unwrap();
    let journal = std::mem::replace(
        &mut *server.borrow_mut(),
        StoreServer::with_medium(vec![0u8; 16], &CLIENTS),
    )
    .into_store()
    .into_medium();
    *server.borrow_mut() =
        StoreServer::with_medium(journal, &CLIENTS).with_board(read_only(mem), G);
    let mut inner = MockOs::new();
    server.borrow_mut().notify_watchers(&mut inner);
    assert_eq!(inner.take(), vec![Event::Notify(A)]);
    assert_eq!(
        buf::changed(&mut os, A, &mut ns, &mut key),
        Ok(Some((8, 8)))
    );
    assert_eq!(incarnation(&mut os, "producer"), Some(2));
}

#[test]
fn a_board_past_the_monitors_quota_is_refused_not_kept() {
    let mem = board_mem();
    let names = ["a", "b", "c", "d", "e"];
    Publisher::new(writable(mem))
        .publish(names.iter().map(|n| (*n, 1)))
        .unwrap();
    let server =
        StoreServer::with_medium(vec![0u8; 0x10000], &CLIENTS).with_board(read_only(mem), G);
    // Three keys fit the quota; the rest are refused and counted.
    assert_eq!(server.counters().incarnations, 3);
    assert_eq!(server.counters().bad_boards, 2);
}
