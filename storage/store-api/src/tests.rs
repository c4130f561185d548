use super::*;
use axolotl_sdk::{Message, MAX_MESSAGE_WORDS};
use proptest::prelude::*;

#[test]
fn requests_round_trip() {
    let put = encode_put(b"count", &[7; 200]).unwrap();
    match Request::decode(&put).unwrap() {
        Request::Put(k, v) => {
            assert_eq!(k.as_bytes(), b"count");
            assert_eq!(v.as_bytes(), &[7; 200][..]);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Request::decode(&encode_get(b"k").unwrap()),
        Ok(Request::Get(_))
    ));
    assert!(matches!(
        Request::decode(&encode_delete(b"k").unwrap()),
        Ok(Request::Delete(_))
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
        decode_get_reply(&value_reply(b"abc"), &mut buf),
        Ok(Some(3))
    );
    assert_eq!(&buf[..3], b"abc");
    assert_eq!(
        decode_get_reply(&Status::NotFound.reply(), &mut buf),
        Ok(None)
    );
    assert_eq!(
        decode_get_reply(&value_reply(&[0; 9]), &mut buf),
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
