//! Requests that carry more than a message: values of up to
//! [`MAX_BUFFER_VALUE_LEN`] bytes and atomic batches travel through the
//! client's **value buffer**, a memory region that system.xml maps into the
//! client and the store (`<axolotl:state buffer="REGION">`). Also reads of
//! another PD's namespace that system.xml grants (`read="PD ..."`), and
//! watches.
//!
//! | request | label | word 0 | then | buffer |
//! |---|---|---|---|---|
//! | `PUT_BUF` | 5 | `key_len \| value_len << 8` | key bytes | the value, from offset 0 |
//! | `GET_BUF` | 6 | `key_len` | key bytes | the reply's value, from offset 0 |
//! | `BATCH` | 7 | bytes of the batch | – | the batch, from offset 0 |
//! | `GET_FROM` | 8 | `ns_len \| key_len << 8` | namespace then key bytes, packed together | – |
//! | `WATCH` | 9 | `ns_len \| key_len << 8` | namespace (empty: the client's own) then key | – |
//! | `CHANGED` | 10 | – | – | – |
//!
//! Replies: `GET_BUF` answers `OK` with `value_len` in word 0 (the value is
//! in the buffer); `GET_FROM` as a `GET` does (values longer than a message
//! get [`Status::TooLarge`]); `CHANGED` answers `OK` with `ns_len |
//! key_len << 8` and the namespace and key bytes, or `NOT_FOUND` when no
//! watched key changed since the last `CHANGED`.
//!
//! A batch is a sequence of changes, each `op` (1 put, 2 delete), `key_len`,
//! two zero bytes, `value_len` (4 bytes, little-endian; 0 for a delete),
//! the key and the value; at most [`MAX_BATCH`] changes. The store applies
//! all of them or none, also across a crash.
//!
//! The store copies everything it reads from a buffer out of it before it
//! checks it: the client can write its buffer at any time.

use crate::protocol::{Key, Status, MAX_KEY_LEN, MAX_VALUE_LEN};
use crate::StoreError;
use axolotl_ring::shared::SharedBytes;
use axolotl_sdk::{Channel, Message, Os};

/// Label of a PUT through the buffer.
pub const PUT_BUF: u64 = 5;
/// Label of a GET through the buffer.
pub const GET_BUF: u64 = 6;
/// Label of a batch.
pub const BATCH: u64 = 7;
/// Label of a GET from another namespace.
pub const GET_FROM: u64 = 8;
/// Label of a watch.
pub const WATCH: u64 = 9;
/// Label of a "what changed?".
pub const CHANGED: u64 = 10;

/// Longest value through the buffer.
pub const MAX_BUFFER_VALUE_LEN: usize = 64 << 10;
/// Most changes in one batch.
pub const MAX_BATCH: usize = 64;
/// Longest namespace (a PD name) in a request.
pub const MAX_NAMESPACE_LEN: usize = 32;
/// Bytes of a batch change before its key.
pub const CHANGE_HEADER_LEN: usize = 8;

/// One change of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change<'a> {
    /// Set a key to a value.
    Put(&'a [u8], &'a [u8]),
    /// Remove a key (no error if it is not there).
    Delete(&'a [u8]),
}

/// A namespace and a key, as a buffered request names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Named {
    ns: [u8; MAX_NAMESPACE_LEN],
    ns_len: u8,
    /// The key.
    pub key: Key,
}

impl Named {
    /// The namespace (empty: the caller's own).
    pub fn namespace(&self) -> &[u8] {
        &self.ns[..usize::from(self.ns_len)]
    }
}

/// A buffered request, as the store decodes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BufRequest {
    /// Store the first `value_len` bytes of the buffer under `key`.
    PutBuf {
        /// The key.
        key: Key,
        /// Bytes of the value.
        value_len: usize,
    },
    /// Copy the value of `key` into the buffer.
    GetBuf {
        /// The key.
        key: Key,
    },
    /// Apply the batch in the first `len` bytes of the buffer.
    Batch {
        /// Bytes of the batch.
        len: usize,
    },
    /// The value of a key in a namespace the client may read.
    GetFrom(Named),
    /// Notify the client when this key changes.
    Watch(Named),
    /// The next watched key that changed.
    Changed,
}

/// Whether `label` is one of this module's requests.
pub fn is_buffered(label: u64) -> bool {
    (PUT_BUF..=CHANGED).contains(&label)
}

fn bytes_msg(label: u64, w0: u64, bytes: &[&[u8]]) -> Message {
    let mut msg = Message::new(label);
    let _ = msg.push(w0);
    let mut all = [0u8; MAX_NAMESPACE_LEN + MAX_KEY_LEN];
    let mut n = 0;
    for b in bytes {
        all[n..n + b.len()].copy_from_slice(b);
        n += b.len();
    }
    let _ = msg.push_bytes(&all[..n]);
    msg
}

fn check_key(key: &[u8]) -> Result<(), StoreError> {
    match key.len() {
        0 => Err(StoreError::BadRequest),
        n if n > MAX_KEY_LEN => Err(StoreError::TooLarge),
        _ => Ok(()),
    }
}

fn named_msg(label: u64, ns: &[u8], key: &[u8]) -> Result<Message, StoreError> {
    check_key(key)?;
    if ns.len() > MAX_NAMESPACE_LEN {
        return Err(StoreError::TooLarge);
    }
    Ok(bytes_msg(
        label,
        ns.len() as u64 | (key.len() as u64) << 8,
        &[ns, key],
    ))
}

impl BufRequest {
    /// Decodes a buffered request; exactly the messages the client
    /// helpers here send, anything else is [`Status::BadRequest`].
    pub fn decode(msg: &Message) -> Result<BufRequest, Status> {
        const BAD: Status = Status::BadRequest;
        let label = msg.label();
        if label == CHANGED {
            return if msg.words().is_empty() {
                Ok(BufRequest::Changed)
            } else {
                Err(BAD)
            };
        }
        let w0 = msg.word(0).ok_or(BAD)?;
        // The bytes after word 0: how many, and how many words they take.
        let (lead, key_len, rest) = match label {
            PUT_BUF => {
                let value_len = (w0 >> 8) as usize;
                if value_len > MAX_BUFFER_VALUE_LEN {
                    return Err(BAD);
                }
                (0, (w0 & 0xff) as usize, value_len)
            }
            GET_BUF => {
                if w0 > 0xff {
                    return Err(BAD);
                }
                (0, w0 as usize, 0)
            }
            BATCH => {
                let len = usize::try_from(w0).map_err(|_| BAD)?;
                if msg.words().len() != 1 || len == 0 {
                    return Err(BAD);
                }
                return Ok(BufRequest::Batch { len });
            }
            GET_FROM | WATCH => {
                if w0 >> 16 != 0 {
                    return Err(BAD);
                }
                ((w0 & 0xff) as usize, (w0 >> 8 & 0xff) as usize, 0)
            }
            _ => return Err(BAD),
        };
        if lead > MAX_NAMESPACE_LEN || !(1..=MAX_KEY_LEN).contains(&key_len) {
            return Err(BAD);
        }
        if label == GET_FROM && lead == 0 {
            return Err(BAD);
        }
        let n = lead + key_len;
        if msg.words().len() != 1 + n.div_ceil(8) {
            return Err(BAD);
        }
        let mut all = [0u8; MAX_NAMESPACE_LEN + MAX_KEY_LEN + 8];
        let words = n.div_ceil(8) * 8;
        msg.read_bytes(1, &mut all[..words]).ok_or(BAD)?;
        if all[n..words].iter().any(|&b| b != 0) {
            return Err(BAD);
        }
        let key = Key::new(&all[lead..n]).ok_or(BAD)?;
        let mut ns = [0u8; MAX_NAMESPACE_LEN];
        ns[..lead].copy_from_slice(&all[..lead]);
        let named = Named {
            ns,
            ns_len: lead as u8,
            key,
        };
        Ok(match label {
            PUT_BUF => BufRequest::PutBuf {
                key,
                value_len: rest,
            },
            GET_BUF => BufRequest::GetBuf { key },
            GET_FROM => BufRequest::GetFrom(named),
            _ => BufRequest::Watch(named),
        })
    }
}

/// The changes of a batch of `bytes` (copied out of the buffer), checked:
/// every length within the limits and within `bytes`, padding zero, at
/// most [`MAX_BATCH`] changes, at least one.
pub fn parse_batch<'a>(bytes: &'a [u8], mut each: impl FnMut(Change<'a>)) -> Result<usize, Status> {
    const BAD: Status = Status::BadRequest;
    let mut at = 0;
    let mut n = 0;
    while at < bytes.len() {
        let h = bytes.get(at..at + CHANGE_HEADER_LEN).ok_or(BAD)?;
        let (op, key_len) = (h[0], usize::from(h[1]));
        let value_len = u32::from_le_bytes([h[4], h[5], h[6], h[7]]) as usize;
        if h[2] != 0 || h[3] != 0 || !(1..=MAX_KEY_LEN).contains(&key_len) {
            return Err(BAD);
        }
        if value_len > MAX_BUFFER_VALUE_LEN || (op == 2 && value_len != 0) {
            return Err(BAD);
        }
        let body = at + CHANGE_HEADER_LEN;
        let end = body + key_len + value_len;
        let key = bytes.get(body..body + key_len).ok_or(BAD)?;
        let value = bytes.get(body + key_len..end).ok_or(BAD)?;
        n += 1;
        if n > MAX_BATCH {
            return Err(BAD);
        }
        match op {
            1 => each(Change::Put(key, value)),
            2 => each(Change::Delete(key)),
            _ => return Err(BAD),
        }
        at = end;
    }
    if n == 0 {
        return Err(BAD);
    }
    Ok(n)
}

/// Writes `changes` as a batch into `buf`; its length.
pub fn encode_batch(buf: &mut SharedBytes, changes: &[Change<'_>]) -> Result<usize, StoreError> {
    if changes.is_empty() {
        return Err(StoreError::BadRequest);
    }
    if changes.len() > MAX_BATCH {
        return Err(StoreError::TooLarge);
    }
    let mut at = 0;
    for c in changes {
        let (op, key, value): (u8, &[u8], &[u8]) = match *c {
            Change::Put(k, v) => (1, k, v),
            Change::Delete(k) => (2, k, &[]),
        };
        check_key(key)?;
        if value.len() > MAX_BUFFER_VALUE_LEN {
            return Err(StoreError::TooLarge);
        }
        let mut h = [0u8; CHANGE_HEADER_LEN];
        h[0] = op;
        h[1] = key.len() as u8;
        h[4..8].copy_from_slice(&(value.len() as u32).to_le_bytes());
        if !(buf.copy_in(at, &h)
            && buf.copy_in(at + CHANGE_HEADER_LEN, key)
            && buf.copy_in(at + CHANGE_HEADER_LEN + key.len(), value))
        {
            return Err(StoreError::TooLarge);
        }
        at += CHANGE_HEADER_LEN + key.len() + value.len();
    }
    Ok(at)
}

fn status_of(reply: &Message) -> Result<Status, StoreError> {
    Status::from_label(reply.label()).ok_or(StoreError::Unexpected(reply.label()))
}

fn ok_or_error(reply: &Message) -> Result<(), StoreError> {
    match status_of(reply)? {
        Status::Ok if reply.words().is_empty() => Ok(()),
        s => Err(StoreError::from_status(s).unwrap_or(StoreError::Unexpected(reply.label()))),
    }
}

/// Stores `value` (up to [`MAX_BUFFER_VALUE_LEN`] bytes) under `key`,
/// through this PD's value buffer `buf`. Durable when this returns `Ok`.
pub fn put_large(
    os: &mut dyn Os,
    store: Channel,
    buf: &mut SharedBytes,
    key: &[u8],
    value: &[u8],
) -> Result<(), StoreError> {
    check_key(key)?;
    if value.len() > MAX_BUFFER_VALUE_LEN || !buf.copy_in(0, value) {
        return Err(StoreError::TooLarge);
    }
    let msg = bytes_msg(
        PUT_BUF,
        key.len() as u64 | (value.len() as u64) << 8,
        &[key],
    );
    ok_or_error(&os.call(store, &msg)?)
}

/// Reads the value under `key` into `out` through the value buffer `buf`:
/// its length, or `None` if there is none.
pub fn get_large(
    os: &mut dyn Os,
    store: Channel,
    buf: &SharedBytes,
    key: &[u8],
    out: &mut [u8],
) -> Result<Option<usize>, StoreError> {
    check_key(key)?;
    let msg = bytes_msg(GET_BUF, key.len() as u64, &[key]);
    let reply = os.call(store, &msg)?;
    match status_of(&reply)? {
        Status::Ok => {
            let n = match reply.words() {
                [n] => usize::try_from(*n).map_err(|_| StoreError::Unexpected(reply.label()))?,
                _ => return Err(StoreError::Unexpected(reply.label())),
            };
            if n > MAX_BUFFER_VALUE_LEN || n > buf.len() {
                return Err(StoreError::Unexpected(reply.label()));
            }
            let out = out.get_mut(..n).ok_or(StoreError::BufferTooSmall)?;
            if !buf.copy_out(0, out) {
                return Err(StoreError::Unexpected(reply.label()));
            }
            Ok(Some(n))
        }
        Status::NotFound if reply.words().is_empty() => Ok(None),
        s => Err(StoreError::from_status(s).unwrap_or(StoreError::Unexpected(reply.label()))),
    }
}

/// Applies `changes` together: after `Ok`, all of them are durable; after
/// an error or a crash of the store, none or all of them are (a retry is
/// safe: a batch is idempotent).
pub fn batch(
    os: &mut dyn Os,
    store: Channel,
    buf: &mut SharedBytes,
    changes: &[Change<'_>],
) -> Result<(), StoreError> {
    let len = encode_batch(buf, changes)?;
    let mut msg = Message::new(BATCH);
    let _ = msg.push(len as u64);
    ok_or_error(&os.call(store, &msg)?)
}

/// Reads `key` of the namespace `namespace` (a PD whose state system.xml
/// lets this PD read) into `out`: its length, or `None` if there is none.
pub fn get_from(
    os: &mut dyn Os,
    store: Channel,
    namespace: &str,
    key: &[u8],
    out: &mut [u8],
) -> Result<Option<usize>, StoreError> {
    if namespace.is_empty() {
        return Err(StoreError::BadRequest);
    }
    let msg = named_msg(GET_FROM, namespace.as_bytes(), key)?;
    let reply = os.call(store, &msg)?;
    crate::decode_get_reply(&reply, out)
}

/// Asks to be notified (on the store channel) when `key` of `namespace`
/// (empty: this PD's own) changes; then [`changed`] says which key it was.
/// Watches are kept in the store's journal: they outlive restarts of the
/// store and of this PD.
pub fn watch(
    os: &mut dyn Os,
    store: Channel,
    namespace: &str,
    key: &[u8],
) -> Result<(), StoreError> {
    let msg = named_msg(WATCH, namespace.as_bytes(), key)?;
    ok_or_error(&os.call(store, &msg)?)
}

/// The next watched key that changed since the last call: (namespace
/// length, key length) read into `ns` and `key`; `None` when there is no
/// more. The namespace is empty for the PD's own.
pub fn changed(
    os: &mut dyn Os,
    store: Channel,
    ns: &mut [u8; MAX_NAMESPACE_LEN],
    key: &mut [u8; MAX_KEY_LEN],
) -> Result<Option<(usize, usize)>, StoreError> {
    let reply = os.call(store, &Message::new(CHANGED))?;
    match status_of(&reply)? {
        Status::Ok => {
            let bad = StoreError::Unexpected(reply.label());
            let w0 = reply.word(0).ok_or(bad)?;
            let (n, k) = ((w0 & 0xff) as usize, (w0 >> 8 & 0xff) as usize);
            if w0 >> 16 != 0 || n > MAX_NAMESPACE_LEN || !(1..=MAX_KEY_LEN).contains(&k) {
                return Err(bad);
            }
            if reply.words().len() != 1 + (n + k).div_ceil(8) {
                return Err(bad);
            }
            let mut all = [0u8; MAX_NAMESPACE_LEN + MAX_KEY_LEN];
            reply.read_bytes(1, &mut all[..n + k]).ok_or(bad)?;
            ns[..n].copy_from_slice(&all[..n]);
            key[..k].copy_from_slice(&all[n..n + k]);
            Ok(Some((n, k)))
        }
        Status::NotFound if reply.words().is_empty() => Ok(None),
        s => Err(StoreError::from_status(s).unwrap_or(StoreError::Unexpected(reply.label()))),
    }
}

/// The reply to a `CHANGED` naming `ns` (empty for the client's own) and `key`.
pub fn changed_reply(ns: &[u8], key: &Key) -> Message {
    bytes_msg(
        Status::Ok.label(),
        ns.len() as u64 | (key.as_bytes().len() as u64) << 8,
        &[ns, key.as_bytes()],
    )
}

/// The reply to a `GET_BUF` whose value of `len` bytes is in the buffer.
pub fn get_buf_reply(len: usize) -> Message {
    let mut m = Message::new(Status::Ok.label());
    let _ = m.push(len as u64);
    m
}

// A namespace and a key fit in a message after word 0.
const _: () = assert!((MAX_NAMESPACE_LEN + MAX_KEY_LEN) / 8 < axolotl_sdk::MAX_MESSAGE_WORDS);
// A small value's reply still fits.
const _: () = assert!(MAX_VALUE_LEN < MAX_BUFFER_VALUE_LEN);
