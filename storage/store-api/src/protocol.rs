//! Message layouts, with checked decoding in both directions.

use crate::StoreError;
use axolotl_sdk::{Message, MAX_MESSAGE_WORDS};

/// Label of a PUT request.
pub const PUT: u64 = 1;
/// Label of a GET request.
pub const GET: u64 = 2;
/// Label of a DELETE request.
pub const DELETE: u64 = 3;
/// Label of a NEXT request: the first key after a given one (or the
/// first of all), with its value; how a client lists its keys.
pub const NEXT: u64 = 4;
/// Label of a PING: answered [`Status::Ok`] at once, whatever words it
/// carries, so it costs a protected call and nothing else (the baseline of
/// the store's benchmark, and a liveness probe).
pub const PING: u64 = 11;

/// Longest key, in bytes (keys are never empty).
pub const MAX_KEY_LEN: usize = 32;
/// Longest value, in bytes.
pub const MAX_VALUE_LEN: usize = 256;

// The largest request (a PUT of the longest key and value) fits in a message.
const _: () = assert!(1 + MAX_KEY_LEN / 8 + MAX_VALUE_LEN / 8 <= MAX_MESSAGE_WORDS);

/// The label of a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// Done; a GET reply carries the value.
    Ok = 0,
    /// GET or DELETE of a key that is not there.
    NotFound = 1,
    /// The client's quota (bytes or keys) would be exceeded.
    QuotaExceeded = 2,
    /// The request is malformed: unknown label, wrong lengths, too few or too
    /// many words, non-zero padding, or over the limits.
    BadRequest = 3,
    /// The journal has no room even after compaction.
    JournalFull = 4,
    /// The call came on a channel that belongs to no client.
    UnknownClient = 5,
    /// The value is longer than a message: read it through the value
    /// buffer (`GET_BUF`), or the client has no buffer for it.
    TooLarge = 6,
    /// The client may not read that namespace (system.xml grants no
    /// `read`), or has no value buffer for a buffered request.
    Denied = 7,
}

impl Status {
    /// Every status, in label order.
    pub const ALL: [Status; 8] = [
        Status::Ok,
        Status::NotFound,
        Status::QuotaExceeded,
        Status::BadRequest,
        Status::JournalFull,
        Status::UnknownClient,
        Status::TooLarge,
        Status::Denied,
    ];

    /// The reply label.
    pub const fn label(self) -> u64 {
        self as u64
    }

    /// The status with this label, if any.
    pub const fn from_label(label: u64) -> Option<Status> {
        Some(match label {
            0 => Status::Ok,
            1 => Status::NotFound,
            2 => Status::QuotaExceeded,
            3 => Status::BadRequest,
            4 => Status::JournalFull,
            5 => Status::UnknownClient,
            6 => Status::TooLarge,
            7 => Status::Denied,
            _ => return None,
        })
    }

    /// A short name, for logs.
    pub const fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::NotFound => "not-found",
            Status::QuotaExceeded => "quota-exceeded",
            Status::BadRequest => "bad-request",
            Status::JournalFull => "journal-full",
            Status::UnknownClient => "unknown-client",
            Status::TooLarge => "too-large",
            Status::Denied => "denied",
        }
    }

    /// A reply with this status and no words.
    pub const fn reply(self) -> Message {
        Message::new(self.label())
    }
}

impl core::fmt::Display for Status {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// A key: 1..=[`MAX_KEY_LEN`] bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    // Bytes past `len` are always zero, so the derived orders and equality
    // are those of the byte strings (shorter keys first).
    len: u8,
    bytes: [u8; MAX_KEY_LEN],
}

impl Key {
    /// The key `bytes`, or `None` if it is empty or longer than
    /// [`MAX_KEY_LEN`].
    pub fn new(bytes: &[u8]) -> Option<Key> {
        if bytes.is_empty() || bytes.len() > MAX_KEY_LEN {
            return None;
        }
        let mut key = Key {
            len: bytes.len() as u8,
            bytes: [0; MAX_KEY_LEN],
        };
        key.bytes[..bytes.len()].copy_from_slice(bytes);
        Some(key)
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl core::fmt::Debug for Key {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Key({:?})", EscapedBytes(self.as_bytes()))
    }
}

/// A value: 0..=[`MAX_VALUE_LEN`] bytes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Value {
    len: u16,
    bytes: [u8; MAX_VALUE_LEN],
}

impl Value {
    /// The value `bytes`, or `None` if longer than [`MAX_VALUE_LEN`].
    pub fn new(bytes: &[u8]) -> Option<Value> {
        if bytes.len() > MAX_VALUE_LEN {
            return None;
        }
        let mut value = Value {
            len: bytes.len() as u16,
            bytes: [0; MAX_VALUE_LEN],
        };
        value.bytes[..bytes.len()].copy_from_slice(bytes);
        Some(value)
    }

    /// The value's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl core::fmt::Debug for Value {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Value({:?})", EscapedBytes(self.as_bytes()))
    }
}

struct EscapedBytes<'a>(&'a [u8]);

impl core::fmt::Debug for EscapedBytes<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("b\"")?;
        for &b in self.0 {
            write!(f, "{}", core::ascii::escape_default(b))?;
        }
        f.write_str("\"")
    }
}

/// A request, as the store decodes it.
// No allocator here to box the value in; a request lives on the stack for
// one call, so ~300 bytes for every variant is fine.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Store `value` under `key`, replacing any earlier value.
    Put {
        /// The key.
        key: Key,
        /// The value.
        value: Value,
    },
    /// Read the value under `key`.
    Get {
        /// The key.
        key: Key,
    },
    /// Remove `key` and its value.
    Delete {
        /// The key.
        key: Key,
    },
    /// The client's first key after `after` in byte order (shorter keys
    /// first), with its value; the very first key if `after` is `None`.
    Next {
        /// The key to start after.
        after: Option<Key>,
    },
}

/// Words needed to pack `n` bytes.
const fn words_for(n: usize) -> usize {
    n.div_ceil(8)
}

/// Whether the padding after `len` packed bytes starting at word `first` is
/// zero (the words themselves must exist).
fn padding_is_zero(msg: &Message, first: usize, len: usize) -> bool {
    let used = len % 8;
    if used == 0 {
        return true;
    }
    match msg.word(first + len / 8) {
        Some(w) => w >> (8 * used) == 0,
        None => false,
    }
}

/// Builds a request message; the lengths must already be checked.
fn encode(label: u64, key: &[u8], value: &[u8]) -> Message {
    let mut msg = Message::new(label);
    // The lengths are within the limits, so none of these can fail (the
    // largest request fits, as asserted above).
    let _ = msg.push(key.len() as u64 | (value.len() as u64) << 16);
    let _ = msg.push_bytes(key);
    let _ = msg.push_bytes(value);
    msg
}

fn check_key(key: &[u8]) -> Result<(), StoreError> {
    if key.is_empty() {
        Err(StoreError::BadRequest)
    } else if key.len() > MAX_KEY_LEN {
        Err(StoreError::TooLarge)
    } else {
        Ok(())
    }
}

/// A PUT request. Fails with [`StoreError::TooLarge`] if the key or value is
/// over the limit, [`StoreError::BadRequest`] if the key is empty.
pub fn encode_put(key: &[u8], value: &[u8]) -> Result<Message, StoreError> {
    check_key(key)?;
    if value.len() > MAX_VALUE_LEN {
        return Err(StoreError::TooLarge);
    }
    Ok(encode(PUT, key, value))
}

/// A GET request (errors as for [`encode_put`]).
pub fn encode_get(key: &[u8]) -> Result<Message, StoreError> {
    check_key(key)?;
    Ok(encode(GET, key, &[]))
}

/// A DELETE request (errors as for [`encode_put`]).
pub fn encode_delete(key: &[u8]) -> Result<Message, StoreError> {
    check_key(key)?;
    Ok(encode(DELETE, key, &[]))
}

/// A NEXT request: the first key after `after` (an empty `after`: the
/// first key of all). [`StoreError::TooLarge`] if `after` is too long.
pub fn encode_next(after: &[u8]) -> Result<Message, StoreError> {
    if after.len() > MAX_KEY_LEN {
        return Err(StoreError::TooLarge);
    }
    Ok(encode(NEXT, after, &[]))
}

impl Request {
    /// Decodes a request. Every message that is not exactly what
    /// [`Request::encode`] produces for some request is refused with
    /// [`Status::BadRequest`]: an unknown label, bits set above the two
    /// lengths in word 0, an empty or over-long key, an over-long value, a
    /// value on a GET or DELETE, too few or too many words, or non-zero
    /// padding bytes.
    pub fn decode(msg: &Message) -> Result<Request, Status> {
        const BAD: Status = Status::BadRequest;
        let w0 = msg.word(0).ok_or(BAD)?;
        if w0 >> 32 != 0 {
            return Err(BAD);
        }
        let key_len = (w0 & 0xffff) as usize;
        let value_len = (w0 >> 16 & 0xffff) as usize;
        if key_len > MAX_KEY_LEN || value_len > MAX_VALUE_LEN {
            return Err(BAD);
        }
        match msg.label() {
            PUT if key_len > 0 => {}
            GET | DELETE if key_len > 0 && value_len == 0 => {}
            NEXT if value_len == 0 => {}
            _ => return Err(BAD),
        }
        let key_words = words_for(key_len);
        if msg.words().len() != 1 + key_words + words_for(value_len) {
            return Err(BAD);
        }
        if !padding_is_zero(msg, 1, key_len) || !padding_is_zero(msg, 1 + key_words, value_len) {
            return Err(BAD);
        }
        let mut key = [0u8; MAX_KEY_LEN];
        msg.read_bytes(1, &mut key[..key_len]).ok_or(BAD)?;
        if msg.label() == NEXT {
            return Ok(Request::Next {
                after: Key::new(&key[..key_len]),
            });
        }
        let key = Key::new(&key[..key_len]).ok_or(BAD)?;
        Ok(match msg.label() {
            PUT => {
                let mut value = [0u8; MAX_VALUE_LEN];
                msg.read_bytes(1 + key_words, &mut value[..value_len])
                    .ok_or(BAD)?;
                let value = Value::new(&value[..value_len]).ok_or(BAD)?;
                Request::Put { key, value }
            }
            GET => Request::Get { key },
            _ => Request::Delete { key },
        })
    }

    /// Encodes the request.
    pub fn encode(&self) -> Message {
        match self {
            Request::Put { key, value } => encode(PUT, key.as_bytes(), value.as_bytes()),
            Request::Get { key } => encode(GET, key.as_bytes(), &[]),
            Request::Delete { key } => encode(DELETE, key.as_bytes(), &[]),
            Request::Next { after } => encode(NEXT, after.as_ref().map_or(&[], Key::as_bytes), &[]),
        }
    }

    /// The request's key (`None` for a NEXT from the start).
    pub fn key(&self) -> Option<&Key> {
        match self {
            Request::Put { key, .. } | Request::Get { key } | Request::Delete { key } => Some(key),
            Request::Next { after } => after.as_ref(),
        }
    }
}

/// The reply to a GET that found `value`: [`Status::Ok`], `value_len` in
/// word 0, then the bytes.
pub fn value_reply(value: &Value) -> Message {
    let mut msg = Message::new(Status::Ok.label());
    let _ = msg.push(value.as_bytes().len() as u64);
    let _ = msg.push_bytes(value.as_bytes());
    msg
}

/// The reply to a NEXT that found `key` with `value`: [`Status::Ok`],
/// `key_len | value_len << 16` in word 0, then the key's bytes, then the
/// value's from the next word.
pub fn entry_reply(key: &Key, value: &Value) -> Message {
    encode(Status::Ok.label(), key.as_bytes(), value.as_bytes())
}

/// Reads the reply to a NEXT into `key` and `value`: their lengths, or
/// `None` if there is no key after the one asked about.
/// [`StoreError::BufferTooSmall`] if either does not fit.
pub fn decode_next_reply(
    msg: &Message,
    key: &mut [u8],
    value: &mut [u8],
) -> Result<Option<(usize, usize)>, StoreError> {
    let unexpected = StoreError::Unexpected(msg.label());
    if msg.label() != Status::Ok.label() {
        return match bare_status(msg)? {
            Status::NotFound => Ok(None),
            other => Err(StoreError::from_status(other).unwrap_or(unexpected)),
        };
    }
    let w0 = msg.word(0).ok_or(unexpected)?;
    let (key_len, value_len) = ((w0 & 0xffff) as usize, (w0 >> 16 & 0xffff) as usize);
    if w0 >> 32 != 0 || key_len == 0 || key_len > MAX_KEY_LEN || value_len > MAX_VALUE_LEN {
        return Err(unexpected);
    }
    let key_words = words_for(key_len);
    if msg.words().len() != 1 + key_words + words_for(value_len)
        || !padding_is_zero(msg, 1, key_len)
        || !padding_is_zero(msg, 1 + key_words, value_len)
    {
        return Err(unexpected);
    }
    let (Some(k), Some(v)) = (key.get_mut(..key_len), value.get_mut(..value_len)) else {
        return Err(StoreError::BufferTooSmall);
    };
    msg.read_bytes(1, k).ok_or(unexpected)?;
    msg.read_bytes(1 + key_words, v).ok_or(unexpected)?;
    Ok(Some((key_len, value_len)))
}

/// The status of a reply that must carry no words.
fn bare_status(msg: &Message) -> Result<Status, StoreError> {
    match Status::from_label(msg.label()) {
        Some(status) if msg.words().is_empty() => Ok(status),
        _ => Err(StoreError::Unexpected(msg.label())),
    }
}

/// Reads the reply to a PUT.
pub fn decode_put_reply(msg: &Message) -> Result<(), StoreError> {
    match bare_status(msg)? {
        Status::Ok => Ok(()),
        Status::NotFound => Err(StoreError::Unexpected(msg.label())),
        other => Err(StoreError::from_status(other).unwrap_or(StoreError::Unexpected(msg.label()))),
    }
}

/// Reads the reply to a DELETE: whether the key was there.
pub fn decode_delete_reply(msg: &Message) -> Result<bool, StoreError> {
    match bare_status(msg)? {
        Status::Ok => Ok(true),
        Status::NotFound => Ok(false),
        other => Err(StoreError::from_status(other).unwrap_or(StoreError::Unexpected(msg.label()))),
    }
}

/// Reads the reply to a GET into `buf`: the value's length, or `None` if the
/// key is not there. [`StoreError::BufferTooSmall`] if the value does not fit
/// (`buf` is then left alone).
pub fn decode_get_reply(msg: &Message, buf: &mut [u8]) -> Result<Option<usize>, StoreError> {
    let unexpected = StoreError::Unexpected(msg.label());
    if msg.label() != Status::Ok.label() {
        return match bare_status(msg)? {
            Status::NotFound => Ok(None),
            other => Err(StoreError::from_status(other).unwrap_or(unexpected)),
        };
    }
    let len = msg.word(0).ok_or(unexpected)?;
    if len > MAX_VALUE_LEN as u64 {
        return Err(unexpected);
    }
    let len = len as usize;
    if msg.words().len() != 1 + words_for(len) || !padding_is_zero(msg, 1, len) {
        return Err(unexpected);
    }
    let out = buf.get_mut(..len).ok_or(StoreError::BufferTooSmall)?;
    msg.read_bytes(1, out).ok_or(unexpected)?;
    Ok(Some(len))
}
