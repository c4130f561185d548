//! The store PD component: the protocol end to end.

mod common;

use axolotl_sdk::mock::MockOs;
use axolotl_sdk::{CallError, Channel, ChannelSet, Handler, Message, MAX_MESSAGE_WORDS};
use axolotl_store::StoreServer;
use axolotl_store_api::{self as api, Status, StoreError, GET, PUT};
use common::CLIENTS;
use proptest::prelude::*;
use std::cell::RefCell;
use std::rc::Rc;

const PRODUCER: Channel = Channel::new(2);
const CONSUMER: Channel = Channel::new(5);

/// A mock platform whose calls go to `server`; `restart` makes the next call
/// fail with `PeerRestarted` after the server took it (the reply is lost).
fn os_for(server: Rc<RefCell<StoreServer<Vec<u8>>>>, lose_reply: Rc<RefCell<bool>>) -> MockOs {
    MockOs::new().on_call(move |ch, msg| {
        let reply = server.borrow_mut().handle(ch, msg);
        if std::mem::take(&mut *lose_reply.borrow_mut()) {
            return Err(CallError::PeerRestarted);
        }
        Ok(reply)
    })
}

#[test]
fn client_and_server_round_trip_through_a_call() {
    let server = Rc::new(RefCell::new(StoreServer::with_medium(
        vec![0; 4096],
        &CLIENTS,
    )));
    let lose = Rc::new(RefCell::new(false));
    let mut os = os_for(server.clone(), lose.clone());

    assert_eq!(api::get_u64(&mut os, PRODUCER, b"next"), Ok(None));
    api::put_u64(&mut os, PRODUCER, b"next", 41).unwrap();
    assert_eq!(api::get_u64(&mut os, PRODUCER, b"next"), Ok(Some(41)));
    assert_eq!(
        api::get_u64(&mut os, CONSUMER, b"next"),
        Ok(None),
        "other namespace"
    );

    let value = [9u8; api::MAX_VALUE_LEN];
    api::put(&mut os, CONSUMER, &[b'k'; api::MAX_KEY_LEN], &value).unwrap();
    let mut buf = [0u8; 300];
    assert_eq!(
        api::get(&mut os, CONSUMER, &[b'k'; api::MAX_KEY_LEN], &mut buf),
        Ok(Some(256))
    );
    assert_eq!(buf[..256], value);
    let mut small = [0u8; 8];
    assert_eq!(
        api::get(&mut os, CONSUMER, &[b'k'; api::MAX_KEY_LEN], &mut small),
        Err(StoreError::BufferTooSmall)
    );
    assert_eq!(
        api::get_u64(&mut os, CONSUMER, &[b'k'; api::MAX_KEY_LEN]),
        Err(StoreError::WrongSize)
    );

    // Caught before any call.
    assert_eq!(
        api::put(&mut os, PRODUCER, &[0; 33], b""),
        Err(StoreError::TooLarge)
    );
    assert_eq!(
        api::put(&mut os, PRODUCER, b"k", &[0; 257]),
        Err(StoreError::TooLarge)
    );
    // Refused by the store.
    assert_eq!(
        api::put(&mut os, Channel::new(7), b"k", b"v"),
        Err(StoreError::UnknownClient)
    );
    assert_eq!(
        api::put(&mut os, Channel::new(1), b"k", &[0; 250]),
        Err(StoreError::QuotaExceeded)
    );

    assert_eq!(api::delete(&mut os, PRODUCER, b"next"), Ok(true));
    assert_eq!(api::delete(&mut os, PRODUCER, b"next"), Ok(false));

    // The store restarts during a put: the caller sees PeerRestarted and
    // retries; the put happened once, and survives the restart.
    *lose.borrow_mut() = true;
    assert_eq!(
        api::put_u64(&mut os, PRODUCER, b"next", 42),
        Err(StoreError::PeerRestarted)
    );
    api::put_u64(&mut os, PRODUCER, b"next", 42).unwrap();

    let c = server.borrow().counters();
    assert_eq!((c.puts, c.gets, c.deletes), (4, 6, 2));
    assert_eq!((c.rejects, c.unknown_client, c.bad_requests), (2, 1, 0));

    // A new incarnation of the store over the same region.
    drop(os);
    let region = Rc::try_unwrap(server)
        .ok()
        .unwrap()
        .into_inner()
        .into_store()
        .into_medium();
    let server = Rc::new(RefCell::new(StoreServer::with_medium(region, &CLIENTS)));
    let mut os = os_for(server, lose);
    assert_eq!(api::get_u64(&mut os, PRODUCER, b"next"), Ok(Some(42)));
    assert_eq!(
        api::get(&mut os, CONSUMER, &[b'k'; api::MAX_KEY_LEN], &mut buf),
        Ok(Some(256))
    );
}

#[test]
fn call_errors_map_to_store_errors() {
    for (call, store) in [
        (CallError::PeerRestarted, StoreError::PeerRestarted),
        (CallError::PeerStopped, StoreError::PeerStopped),
        (CallError::NotPermitted, StoreError::NotPermitted),
    ] {
        let mut os = MockOs::new().on_call(move |_, _| Err(call));
        assert_eq!(api::put_u64(&mut os, PRODUCER, b"k", 1), Err(store));
        assert_eq!(api::get_u64(&mut os, PRODUCER, b"k"), Err(store));
        assert_eq!(api::delete(&mut os, PRODUCER, b"k"), Err(store));
    }
    // A peer that answers with something else entirely.
    let mut os = MockOs::new().on_call(|_, _| Ok(Message::error_reply()));
    assert_eq!(
        api::put_u64(&mut os, PRODUCER, b"k", 1),
        Err(StoreError::Unexpected(Message::error_reply().label()))
    );
}

#[test]
fn handler_interface_unknown_channels_malformed_requests_and_notifications() {
    let mem: &'static mut [u8] = Box::leak(vec![0u8; 4096].into_boxed_slice());
    let mut server = StoreServer::init(mem, &CLIENTS);
    let mut os = MockOs::new();
    let put = api::encode_put(b"k", b"v").unwrap();
    let reply = server.protected(&mut os, Channel::new(9), &put).unwrap();
    assert_eq!(reply.label(), Status::UnknownClient.label());
    assert!(reply.words().is_empty());
    let reply = server.protected(&mut os, PRODUCER, &put).unwrap();
    assert_eq!(reply, Status::Ok.reply());
    let reply = server
        .protected(&mut os, PRODUCER, &Message::new(GET))
        .unwrap();
    assert_eq!(reply, Status::BadRequest.reply());
    let reply = server
        .protected(&mut os, PRODUCER, &Message::new(99))
        .unwrap();
    assert_eq!(reply, Status::BadRequest.reply());
    server
        .notified(&mut os, ChannelSet::single(PRODUCER))
        .unwrap();
    let c = server.counters();
    assert_eq!(
        (
            c.puts,
            c.rejects,
            c.unknown_client,
            c.bad_requests,
            c.notifications
        ),
        (1, 3, 1, 2, 1)
    );
    assert!(os.take().is_empty(), "the store never signals anyone");
    assert_eq!(server.store().get(1, b"k"), Ok(&b"v"[..]));
}

fn arbitrary_message() -> impl Strategy<Value = Message> {
    let words = proptest::collection::vec(any::<u64>(), 0..=MAX_MESSAGE_WORDS);
    let label = prop_oneof![0u64..6, any::<u64>()];
    // Near-valid requests too: a real header and lengths, random bytes.
    let near = (
        1u64..4,
        0u64..40,
        0u64..300,
        proptest::collection::vec(any::<u64>(), 0..=MAX_MESSAGE_WORDS - 1),
    )
        .prop_map(|(label, k, v, rest)| {
            let mut words = vec![k | v << 16];
            words.extend(rest);
            Message::with_words(label, &words).unwrap()
        });
    prop_oneof![
        (label, words).prop_map(|(l, w)| Message::with_words(l, &w).unwrap()),
        near,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Any message on any channel: no panic, a reply with a status label,
    /// and a GET's OK reply is well formed.
    #[test]
    fn random_messages_always_get_a_valid_reply(
        msgs in proptest::collection::vec((0u8..8, arbitrary_message()), 1..6),
    ) {
        let mut server = StoreServer::with_medium(vec![0; 2048], &CLIENTS);
        let mut os = MockOs::new();
        for (ch, msg) in msgs {
            let reply = server.protected(&mut os, Channel::new(ch), &msg).unwrap();
            let status = Status::from_label(reply.label());
            prop_assert!(status.is_some(), "reply label {}", reply.label());
            if msg.label() == GET && status == Some(Status::Ok) {
                let mut buf = [0u8; api::MAX_VALUE_LEN];
                prop_assert!(api::decode_get_reply(&reply, &mut buf).is_ok());
            } else {
                prop_assert!(reply.words().is_empty());
            }
            if msg.label() == PUT && status == Some(Status::Ok) {
                prop_assert!(api::Request::decode(&msg).is_ok());
            }
        }
    }
}

/// NEXT lists a client's own keys in order, from the first to past the
/// last, and never another client's.
#[test]
fn a_client_lists_its_own_keys_in_order() {
    let server = Rc::new(RefCell::new(StoreServer::with_medium(
        vec![0; 8192],
        &CLIENTS,
    )));
    let mut os = os_for(server, Rc::new(RefCell::new(false)));
    for k in [&b"b"[..], b"a", b"ab", b"\0", b"zz"] {
        api::put(&mut os, PRODUCER, k, k).unwrap();
    }
    api::put(&mut os, CONSUMER, b"other", b"other").unwrap();
    let list = |os: &mut MockOs, ch| {
        let mut got = Vec::new();
        let mut after = Vec::new();
        let (mut k, mut v) = ([0u8; api::MAX_KEY_LEN], [0u8; api::MAX_VALUE_LEN]);
        while let Some((kl, vl)) = api::next(os, ch, &after, &mut k, &mut v).unwrap() {
            assert_eq!(&k[..kl], &v[..vl], "each key with its own value");
            after = k[..kl].to_vec();
            got.push(after.clone());
        }
        got
    };
    // Shorter keys first, then byte order.
    let want: Vec<Vec<u8>> = vec![
        b"\0".to_vec(),
        b"a".to_vec(),
        b"b".to_vec(),
        b"ab".to_vec(),
        b"zz".to_vec(),
    ];
    assert_eq!(list(&mut os, PRODUCER), want);
    assert_eq!(list(&mut os, CONSUMER), vec![b"other".to_vec()]);
    api::delete(&mut os, PRODUCER, b"b").unwrap();
    assert_eq!(list(&mut os, PRODUCER).len(), 4);
}

/// A PING is answered `OK` whatever it carries, changes nothing, and still
/// needs a client's channel.
#[test]
fn a_ping_is_a_call_and_nothing_else() {
    let server = Rc::new(RefCell::new(StoreServer::with_medium(
        vec![0; 4096],
        &CLIENTS,
    )));
    let mut os = os_for(server.clone(), Rc::new(RefCell::new(false)));
    api::ping(&mut os, PRODUCER, &[]).unwrap();
    let put = api::encode_put(b"k", b"value").unwrap();
    api::ping(&mut os, PRODUCER, put.words()).unwrap();
    assert_eq!(api::get(&mut os, PRODUCER, b"k", &mut [0; 8]), Ok(None));
    assert_eq!(
        api::ping(&mut os, Channel::new(9), &[]),
        Err(StoreError::UnknownClient)
    );
    let c = server.borrow().counters();
    assert_eq!((c.pings, c.puts, c.rejects), (2, 0, 1));
    assert!(api::ping(&mut os, PRODUCER, &[0; MAX_MESSAGE_WORDS + 1]).is_err());
}
