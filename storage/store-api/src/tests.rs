use super::*;
use crate::protocol::{decode_next_reply, encode_next, entry_reply, NEXT};
use axolotl_sdk::{Message, MAX_MESSAGE_WORDS};
use proptest::prelude::*;

#[test]
fn requests_round_trip() {
    let put = encode_put(b"count", &[7; 200]).unwrap();
    match Request::decode(&put).unwrap() {
        Request::Put { key: k, value: v } => {
            assert_eq!(k.as_bytes(), b"count");
            assert_eq!(v.as_bytes(), &[7; 200][..]);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Request::decode(&encode_get(b"k").unwrap()),
        Ok(Request::Get { .. })
    ));
    assert!(matches!(
        Request::decode(&encode_delete(b"k").unwrap()),
        Ok(Request::Delete { .. })
    ));
    // The largest PUT fits in one message.
    let big = encode_put(&[1; MAX_KEY_LEN], &[2; MAX_VALUE_LEN]).unwrap();
    assert!(big.words().len() <= MAX_MESSAGE_WORDS);
    assert!(Request::decode(&big).is_ok());
}

#[test]
fn client_side_limits() {
    assert_eq!(encode_put(b"", b"x").unwrap_err(), StoreError::BadRequest);
    assert_eq!(encode_put(&[0; 33], b"").unwrap_err(), StoreError::TooLarge);
    assert_eq!(
        encode_put(b"k", &[0; 257]).unwrap_err(),
        StoreError::TooLarge
    );
}

#[test]
fn malformed_requests_are_bad_requests() {
    let mut words = encode_put(b"key", b"value").unwrap().words().to_vec();
    words.pop();
    assert_eq!(
        Request::decode(&Message::with_words(PUT, &words).unwrap()),
        Err(Status::BadRequest)
    );
    assert_eq!(Request::decode(&Message::new(GET)), Err(Status::BadRequest));
    assert_eq!(
        Request::decode(&Message::with_words(9, &[1, 0]).unwrap()),
        Err(Status::BadRequest)
    );
    assert_eq!(
        Request::decode(&Message::with_words(GET, &[0]).unwrap()),
        Err(Status::BadRequest)
    );
    assert_eq!(
        Request::decode(&Message::with_words(GET, &[1 | 1 << 40, 0]).unwrap()),
        Err(Status::BadRequest)
    );
}

#[test]
fn replies_decode() {
    let mut buf = [0u8; 8];
    assert_eq!(
        decode_get_reply(&value_reply(&Value::new(b"abc").unwrap()), &mut buf),
        Ok(Some(3))
    );
    assert_eq!(&buf[..3], b"abc");
    assert_eq!(
        decode_get_reply(&Status::NotFound.reply(), &mut buf),
        Ok(None)
    );
    assert_eq!(
        decode_get_reply(&value_reply(&Value::new(&[0; 9]).unwrap()), &mut buf),
        Err(StoreError::BufferTooSmall)
    );
    assert_eq!(
        decode_put_reply(&Status::QuotaExceeded.reply()),
        Err(StoreError::QuotaExceeded)
    );
    assert_eq!(
        decode_put_reply(&Message::new(77)),
        Err(StoreError::Unexpected(77))
    );
    assert_eq!(decode_delete_reply(&Status::NotFound.reply()), Ok(false));
    assert_eq!(
        decode_get_reply(&Message::with_words(0, &[300]).unwrap(), &mut buf),
        Err(StoreError::Unexpected(0))
    );
}

proptest! {
    #[test]
    fn any_message_decodes_or_is_refused(label in 0u64..6, words in proptest::collection::vec(any::<u64>(), 0..64)) {
        let msg = Message::with_words(label, &words).unwrap();
        let _ = Request::decode(&msg);
        let mut buf = [0u8; 300];
        let _ = decode_get_reply(&msg, &mut buf);
        let _ = decode_put_reply(&msg);
    }
}

#[test]
fn nonzero_padding_and_extra_words_are_refused() {
    let good = encode_put(b"abc", b"xy").unwrap();
    assert!(Request::decode(&good).is_ok());
    let mut words = good.words().to_vec();
    words[1] |= 1 << 40; // a byte after the key's three
    assert_eq!(
        Request::decode(&Message::with_words(PUT, &words).unwrap()),
        Err(Status::BadRequest)
    );
    let mut words = good.words().to_vec();
    words.push(0);
    assert_eq!(
        Request::decode(&Message::with_words(PUT, &words).unwrap()),
        Err(Status::BadRequest)
    );
    // A value on a GET, an empty or over-long key, an over-long value.
    for w0 in [1 | 1 << 16, 0, 33, 1 | 257 << 16] {
        let mut words = vec![w0];
        words.extend([0u64; 40]);
        for label in [PUT, GET, DELETE] {
            let msg = Message::with_words(label, &words[..1 + 5]).unwrap();
            if label == PUT && w0 == 1 | 1 << 16 {
                continue;
            }
            assert_eq!(Request::decode(&msg), Err(Status::BadRequest), "{w0:#x}");
        }
    }
}

#[test]
fn statuses_and_errors() {
    for s in Status::ALL {
        assert_eq!(Status::from_label(s.label()), Some(s));
        assert_eq!(s.reply().label(), s.label());
    }
    assert_eq!(Status::from_label(8), None);
    assert_eq!(Status::JournalFull.label(), 4);
    assert_eq!(
        StoreError::from(axolotl_sdk::CallError::PeerRestarted),
        StoreError::PeerRestarted
    );
    assert_eq!(
        StoreError::Unexpected(9).to_string(),
        "unexpected reply (label 0x9)"
    );
    assert_eq!(StoreError::from_status(Status::Ok), None);
    assert_eq!(
        StoreError::from_status(Status::UnknownClient),
        Some(StoreError::UnknownClient)
    );
}

proptest! {
    /// Every valid request round-trips, and the layout is the documented one.
    #[test]
    fn valid_requests_round_trip(
        key in proptest::collection::vec(any::<u8>(), 1..=MAX_KEY_LEN),
        value in proptest::collection::vec(any::<u8>(), 0..=MAX_VALUE_LEN),
    ) {
        let msg = encode_put(&key, &value).unwrap();
        prop_assert_eq!(msg.label(), PUT);
        prop_assert_eq!(msg.word(0), Some(key.len() as u64 | (value.len() as u64) << 16));
        prop_assert_eq!(msg.words().len(), 1 + key.len().div_ceil(8) + value.len().div_ceil(8));
        let req = Request::decode(&msg).unwrap();
        prop_assert_eq!(&req, &Request::Put { key: Key::new(&key).unwrap(), value: Value::new(&value).unwrap() });
        prop_assert_eq!(req.encode(), msg);
        let get = encode_get(&key).unwrap();
        prop_assert_eq!(Request::decode(&get), Ok(Request::Get { key: Key::new(&key).unwrap() }));
        let reply = value_reply(&Value::new(&value).unwrap());
        let mut buf = [0u8; MAX_VALUE_LEN];
        prop_assert_eq!(decode_get_reply(&reply, &mut buf), Ok(Some(value.len())));
        prop_assert_eq!(&buf[..value.len()], &value[..]);
    }

    /// Decoding is exact: whatever decodes re-encodes to the same message.
    #[test]
    fn decoding_is_canonical(label in 0u64..5, words in proptest::collection::vec(0u64..4, 0..8), w0 in 0u64..80) {
        let mut all = vec![w0];
        all.extend(words);
        let msg = Message::with_words(label, &all).unwrap();
        if let Ok(req) = Request::decode(&msg) {
            prop_assert_eq!(req.encode(), msg);
        }
    }
}

#[test]
fn next_requests_and_replies_round_trip_and_bad_ones_are_refused() {
    assert_eq!(
        Request::decode(&encode_next(&[]).unwrap()),
        Ok(Request::Next { after: None })
    );
    assert_eq!(
        Request::decode(&encode_next(b"flow").unwrap()),
        Ok(Request::Next {
            after: Key::new(b"flow")
        })
    );
    assert_eq!(
        encode_next(&[0; MAX_KEY_LEN + 1]),
        Err(StoreError::TooLarge)
    );
    // A NEXT with a value, or an over-long key, is malformed.
    let with_value = Message::with_words(NEXT, &[1 | 1 << 16, 7, 7]).unwrap();
    assert_eq!(Request::decode(&with_value), Err(Status::BadRequest));
    let long = Message::with_words(NEXT, &[33, 0, 0, 0, 0, 0]).unwrap();
    assert_eq!(Request::decode(&long), Err(Status::BadRequest));
    // PUT, GET and DELETE still need a key.
    for label in [PUT, GET, DELETE] {
        let empty = Message::with_words(label, &[0]).unwrap();
        assert_eq!(Request::decode(&empty), Err(Status::BadRequest));
    }

    let reply = entry_reply(&Key::new(b"k1").unwrap(), &Value::new(&[9; 20]).unwrap());
    let (mut k, mut v) = ([0u8; MAX_KEY_LEN], [0u8; MAX_VALUE_LEN]);
    assert_eq!(decode_next_reply(&reply, &mut k, &mut v), Ok(Some((2, 20))));
    assert_eq!((&k[..2], &v[..20]), (&b"k1"[..], &[9; 20][..]));
    assert_eq!(
        decode_next_reply(&Status::NotFound.reply(), &mut k, &mut v),
        Ok(None)
    );
    assert_eq!(
        decode_next_reply(&reply, &mut k[..1], &mut v),
        Err(StoreError::BufferTooSmall)
    );
    // A reply with a zero-length key, or more words than it says, is refused.
    let bad = Message::with_words(Status::Ok.label(), &[0]).unwrap();
    assert!(matches!(
        decode_next_reply(&bad, &mut k, &mut v),
        Err(StoreError::Unexpected(_))
    ));
    let long = Message::with_words(Status::Ok.label(), &[1, 1, 0]).unwrap();
    assert!(matches!(
        decode_next_reply(&long, &mut k, &mut v),
        Err(StoreError::Unexpected(_))
    ));
}

proptest! {
    #[test]
    fn any_next_reply_decodes_without_a_panic(label in 0u64..8, words in proptest::collection::vec(any::<u64>(), 0..40)) {
        if let Ok(msg) = Message::with_words(label, &words) {
            let (mut k, mut v) = ([0u8; MAX_KEY_LEN], [0u8; MAX_VALUE_LEN]);
            let _ = decode_next_reply(&msg, &mut k, &mut v);
        }
    }
}

/// A store that answers NEXT with a key not after the one asked about
/// (corrupted, or hostile) would keep a listing loop going for ever: the
/// client refuses such an answer.
#[test]
fn a_next_that_does_not_move_on_is_refused() {
    use axolotl_sdk::mock::MockOs;
    use axolotl_sdk::Channel;
    let store = Channel::new(3);
    for answer in [&b"b"[..], b"a", b"0", b"zz"] {
        let reply = entry_reply(&Key::new(answer).unwrap(), &Value::new(b"v").unwrap());
        let mut os = MockOs::new().on_call(move |_, _| Ok(reply.clone()));
        let (mut k, mut v) = ([0u8; MAX_KEY_LEN], [0u8; MAX_VALUE_LEN]);
        let got = next(&mut os, store, b"b", &mut k, &mut v);
        // Keys order by length, then bytes: only "zz" comes after "b".
        if answer == b"zz" {
            assert_eq!(got, Ok(Some((2, 1))));
        } else {
            assert!(
                matches!(got, Err(StoreError::Unexpected(_))),
                "{answer:?}: {got:?}"
            );
        }
        // The first key of all may be anything.
        assert!(next(&mut os, store, b"", &mut k, &mut v).is_ok());
    }
}
