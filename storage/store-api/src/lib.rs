//! The state store's wire protocol and client helpers.
//!
//! Every PD that keeps state across its own restarts talks to the state-store
//! PD with a protected call (in the manner of Hubris' `*-api` crates: the
//! server and all its clients share this one crate). The caller's identity is
//! the channel the call arrives on, never a field of the message, so a client
//! can only ever reach its own namespace.
//!
//! | request  | label | words                                             |
//! |----------|-------|---------------------------------------------------|
//! | `PUT`    | 1     | `key_len \| value_len << 16`, key bytes, value bytes |
//! | `GET`    | 2     | `key_len`, key bytes                              |
//! | `DELETE` | 3     | `key_len`, key bytes                              |
//! | `PING`   | 11    | anything (ignored): answered `OK` at once         |
//!
//! Bytes are packed eight to a word, little-endian, zero-padded
//! ([`Message::push_bytes`]); the value starts at the word after the key.
//! Keys are 1..=[`MAX_KEY_LEN`] bytes, values 0..=[`MAX_VALUE_LEN`] bytes.
//!
//! The reply's label is a [`Status`]; a `GET` answered with [`Status::Ok`]
//! carries `value_len` in word 0 and the value bytes from word 1.
//!
//! The client side is [`put`], [`get`], [`delete`], [`put_u64`] and
//! [`get_u64`]; the server side is [`Request::decode`] plus
//! [`Status::reply`] and [`value_reply`].
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod buffered;
mod client;
mod error;
pub mod incarnations;
mod protocol;

pub use client::{delete, get, get_u64, next, ping, put, put_u64, retry, Mirror};
pub use error::StoreError;
pub use protocol::{
    decode_delete_reply, decode_get_reply, decode_next_reply, decode_put_reply, encode_delete,
    encode_get, encode_next, encode_put, entry_reply, value_reply, Key, Request, Status, Value,
    DELETE, GET, MAX_KEY_LEN, MAX_VALUE_LEN, NEXT, PING, PUT,
};

#[cfg(test)]
mod tests;
