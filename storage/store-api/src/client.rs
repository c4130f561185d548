//! The client side: one protected call per operation.
//!
//! Every operation is idempotent (a PUT of the same value, a DELETE of a key
//! that is gone), so a caller that sees [`StoreError::PeerRestarted`] simply
//! tries again.

use crate::protocol::{
    decode_delete_reply, decode_get_reply, decode_put_reply, encode_delete, encode_get, encode_put,
};
use crate::StoreError;
use axolotl_sdk::{Channel, Os};

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

/// Stores `value` under `key` as 8 little-endian bytes.
pub fn put_u64(os: &mut dyn Os, store: Channel, key: &[u8], value: u64) -> Result<(), StoreError> {
    put(os, store, key, &value.to_le_bytes())
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
