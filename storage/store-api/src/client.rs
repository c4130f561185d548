//! The client side: one protected call per operation.
//!
//! Every operation is idempotent (a PUT of the same value, a DELETE of a key
//! that is gone), so a caller that sees [`StoreError::PeerRestarted`] simply
//! tries again.

use crate::protocol::MAX_VALUE_LEN;
use crate::protocol::{
    decode_delete_reply, decode_get_reply, decode_next_reply, decode_put_reply, encode_delete,
    encode_get, encode_next, encode_put,
};
use crate::StoreError;
use axolotl_sdk::{Channel, Message, Os};

/// Stores `value` under `key` in this PD's namespace. The value is durable
/// when this returns `Ok`.
pub fn put(os: &mut dyn Os, store: Channel, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
    let msg = encode_put(key, value)?;
    let reply = os.call(store, &msg)?;
    decode_put_reply(&reply)
}

/// Reads the value under `key` into `buf`: its length, or `None` if there is
/// none. [`StoreError::BufferTooSmall`] if it does not fit in `buf`.
pub fn get(
    os: &mut dyn Os,
    store: Channel,
    key: &[u8],
    buf: &mut [u8],
) -> Result<Option<usize>, StoreError> {
    let msg = encode_get(key)?;
    let reply = os.call(store, &msg)?;
    decode_get_reply(&reply, buf)
}

/// Removes `key`; whether it was there.
pub fn delete(os: &mut dyn Os, store: Channel, key: &[u8]) -> Result<bool, StoreError> {
    let msg = encode_delete(key)?;
    let reply = os.call(store, &msg)?;
    decode_delete_reply(&reply)
}

/// The first key of this PD's namespace after `after` (an empty `after`:
/// the first of all), in byte order with shorter keys first, read into
/// `key` with its value into `value`: their lengths, or `None` past the
/// last key. Listing a namespace: start with `&[]`, then pass each key
/// found.
pub fn next(
    os: &mut dyn Os,
    store: Channel,
    after: &[u8],
    key: &mut [u8],
    value: &mut [u8],
) -> Result<Option<(usize, usize)>, StoreError> {
    let msg = encode_next(after)?;
    let reply = os.call(store, &msg)?;
    let found = decode_next_reply(&reply, key, value)?;
    // The store is a neighbour like any other: a key that does not come
    // after `after` would make a caller's listing loop run for ever.
    if let Some((n, _)) = found {
        let k = &key[..n.min(key.len())];
        if !after.is_empty() && (k.len(), k) <= (after.len(), after) {
            return Err(StoreError::Unexpected(reply.label()));
        }
    }
    Ok(found)
}

/// Stores `value` under `key` as 8 little-endian bytes.
pub fn put_u64(os: &mut dyn Os, store: Channel, key: &[u8], value: u64) -> Result<(), StoreError> {
    put(os, store, key, &value.to_le_bytes())
}

/// A PING carrying `msg`'s words (none, or as many as a request of the
/// size to compare with): `Ok` once the store answered.
pub fn ping(os: &mut dyn Os, store: Channel, words: &[u64]) -> Result<(), StoreError> {
    let mut msg = Message::new(crate::PING);
    for &w in words {
        msg.push(w).map_err(|_| StoreError::TooLarge)?;
    }
    let reply = os.call(store, &msg)?;
    crate::protocol::decode_put_reply(&reply)
}

/// Reads a value stored by [`put_u64`]; `None` if there is none,
/// [`StoreError::WrongSize`] if the stored value is not 8 bytes long.
pub fn get_u64(os: &mut dyn Os, store: Channel, key: &[u8]) -> Result<Option<u64>, StoreError> {
    let mut buf = [0u8; 8];
    match get(os, store, key, &mut buf) {
        Ok(Some(8)) => Ok(Some(u64::from_le_bytes(buf))),
        Ok(Some(_)) | Err(StoreError::BufferTooSmall) => Err(StoreError::WrongSize),
        Ok(None) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Runs `op` again while it meets a restarting store
/// ([`StoreError::PeerRestarted`]), up to `tries` times in all; its last
/// result. Every operation is idempotent, so this is always safe.
pub fn retry<T>(
    os: &mut dyn Os,
    tries: usize,
    mut op: impl FnMut(&mut dyn Os) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut last = StoreError::PeerRestarted;
    for _ in 0..tries {
        match op(os) {
            Err(StoreError::PeerRestarted) => last = StoreError::PeerRestarted,
            other => return other,
        }
    }
    Err(last)
}

/// A value in the store that mirrors a piece of a PD's state, so that the
/// PD's next incarnation finds it: read once at start, written whenever
/// the state's encoding changes (and only then).
pub struct Mirror {
    store: Channel,
    key: &'static [u8],
    saved: [u8; MAX_VALUE_LEN],
    saved_len: Option<usize>,
    tries: usize,
}

impl Mirror {
    /// The mirror under `key` through the store on `store` (each call
    /// tried up to `tries` times while the store restarts), and the value
    /// an earlier incarnation left there, read into `buf`: `Ok(None)` if
    /// there is none.
    pub fn open<'b>(
        os: &mut dyn Os,
        store: Channel,
        key: &'static [u8],
        tries: usize,
        buf: &'b mut [u8; MAX_VALUE_LEN],
    ) -> (Mirror, Result<Option<&'b [u8]>, StoreError>) {
        let mut m = Mirror {
            store,
            key,
            saved: [0; MAX_VALUE_LEN],
            saved_len: None,
            tries,
        };
        let found = match retry(os, tries, |os| get(os, store, key, &mut buf[..])) {
            Ok(Some(n)) => {
                m.saved[..n].copy_from_slice(&buf[..n]);
                m.saved_len = Some(n);
                Ok(Some(&buf[..n]))
            }
            other => other.map(|_| None),
        };
        (m, found)
    }

    /// Makes the value `value`, if it is not already; durable when this
    /// returns `Ok`.
    pub fn keep(&mut self, os: &mut dyn Os, value: &[u8]) -> Result<(), StoreError> {
        if self.saved_len.is_some_and(|n| self.saved[..n] == *value) {
            return Ok(());
        }
        if value.len() > MAX_VALUE_LEN {
            return Err(StoreError::TooLarge);
        }
        let (store, key) = (self.store, self.key);
        retry(os, self.tries, |os| put(os, store, key, value))?;
        self.saved[..value.len()].copy_from_slice(value);
        self.saved_len = Some(value.len());
        Ok(())
    }
}
