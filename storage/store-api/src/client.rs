//! The client side: what a stateful PD calls.

use crate::protocol::*;
use crate::StoreError;
use axolotl_sdk::{Channel, Os};

/// Stores `value` under `key` in this PD's namespace.
pub fn put(os: &mut dyn Os, store: Channel, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
    let msg = encode_put(key, value)?;
    decode_put_reply(&os.call(store, &msg)?)
}

/// Reads `key` into `buf`: the value's length, or `None` if absent.
pub fn get(
    os: &mut dyn Os,
    store: Channel,
    key: &[u8],
    buf: &mut [u8],
) -> Result<Option<usize>, StoreError> {
    let msg = encode_get(key)?;
    decode_get_reply(&os.call(store, &msg)?, buf)
}

/// Removes `key`; whether it existed.
pub fn delete(os: &mut dyn Os, store: Channel, key: &[u8]) -> Result<bool, StoreError> {
    let msg = encode_delete(key)?;
    decode_delete_reply(&os.call(store, &msg)?)
}

/// Stores a `u64` (8 bytes, little-endian).
pub fn put_u64(os: &mut dyn Os, store: Channel, key: &[u8], value: u64) -> Result<(), StoreError> {
    put(os, store, key, &value.to_le_bytes())
}

/// Reads a `u64` stored by [`put_u64`].
pub fn get_u64(os: &mut dyn Os, store: Channel, key: &[u8]) -> Result<Option<u64>, StoreError> {
    let mut buf = [0u8; MAX_VALUE_LEN];
    match get(os, store, key, &mut buf)? {
        None => Ok(None),
        Some(8) => Ok(Some(u64::from_le_bytes([
            buf[0], buf[1], buf[2], buf[3], buf[4], buf[5], buf[6], buf[7],
        ]))),
        Some(_) => Err(StoreError::WrongSize),
    }
}
