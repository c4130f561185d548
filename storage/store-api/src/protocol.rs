//! The wire format: requests and replies as protected-call messages.

use crate::StoreError;
use axolotl_sdk::Message;

/// Store a value under a key.
pub const PUT: u64 = 1;
/// Read the value of a key.
pub const GET: u64 = 2;
/// Remove a key.
pub const DELETE: u64 = 3;
/// Longest key.
pub const MAX_KEY_LEN: usize = 32;
/// Longest value.
pub const MAX_VALUE_LEN: usize = 256;

/// The reply's label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u64)]
pub enum Status {
    /// Done.
    Ok = 0,
    /// No such key.
    NotFound = 1,
    /// The client's quota would be exceeded.
    QuotaExceeded = 2,
    /// Malformed request.
    BadRequest = 3,
    /// No room in the journal even after compaction.
    JournalFull = 4,
    /// The channel is not a client's.
    UnknownClient = 5,
}

impl Status {
    /// The status a reply label stands for.
    pub const fn from_label(label: u64) -> Option<Status> {
        Some(match label {
            0 => Status::Ok,
            1 => Status::NotFound,
            2 => Status::QuotaExceeded,
            3 => Status::BadRequest,
            4 => Status::JournalFull,
            5 => Status::UnknownClient,
            _ => return None,
        })
    }

    /// A reply with this status and no words.
    pub const fn reply(self) -> Message {
        Message::new(self as u64)
    }
}

/// A key: 1 to [`MAX_KEY_LEN`] bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    len: u8,
    bytes: [u8; MAX_KEY_LEN],
}

impl Key {
    /// A key, if `bytes` has an allowed length.
    pub fn new(bytes: &[u8]) -> Option<Key> {
        if bytes.is_empty() || bytes.len() > MAX_KEY_LEN {
            return None;
        }
        let mut k = Key {
            len: bytes.len() as u8,
            bytes: [0; MAX_KEY_LEN],
        };
        k.bytes[..bytes.len()].copy_from_slice(bytes);
        Some(k)
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl core::fmt::Debug for Key {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Key({:?})", self.as_bytes())
    }
}

/// A value: up to [`MAX_VALUE_LEN`] bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Value {
    len: u16,
    bytes: [u8; MAX_VALUE_LEN],
}

impl Value {
    /// A value, if `bytes` is short enough.
    pub fn new(bytes: &[u8]) -> Option<Value> {
        if bytes.len() > MAX_VALUE_LEN {
            return None;
        }
        let mut v = Value {
            len: bytes.len() as u16,
            bytes: [0; MAX_VALUE_LEN],
        };
        v.bytes[..bytes.len()].copy_from_slice(bytes);
        Some(v)
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl core::fmt::Debug for Value {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Value({} bytes)", self.len)
    }
}

/// A decoded request.
// A request lives on the stack for one call; boxing the PUT would need an
// allocator in every client, for ~300 bytes.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Store `1` under `0`.
    Put(Key, Value),
    /// Read.
    Get(Key),
    /// Remove.
    Delete(Key),
}

fn words_for(len: usize) -> usize {
    len.div_ceil(8)
}

impl Request {
    /// Decodes a call from an untrusted client; every malformed message is
    /// [`Status::BadRequest`].
    pub fn decode(msg: &Message) -> Result<Request, Status> {
        let head = msg.word(0).ok_or(Status::BadRequest)?;
        let key_len = (head & 0xffff) as usize;
        let value_len = ((head >> 16) & 0xffff) as usize;
        if head >> 32 != 0 || key_len == 0 || key_len > MAX_KEY_LEN {
            return Err(Status::BadRequest);
        }
        let mut kb = [0u8; MAX_KEY_LEN];
        msg.read_bytes(1, &mut kb[..key_len])
            .ok_or(Status::BadRequest)?;
        let key = Key::new(&kb[..key_len]).ok_or(Status::BadRequest)?;
        let key_words = words_for(key_len);
        match msg.label() {
            PUT => {
                if value_len > MAX_VALUE_LEN
                    || msg.words().len() != 1 + key_words + words_for(value_len)
                {
                    return Err(Status::BadRequest);
                }
                let mut vb = [0u8; MAX_VALUE_LEN];
                msg.read_bytes(1 + key_words, &mut vb[..value_len])
                    .ok_or(Status::BadRequest)?;
                Ok(Request::Put(
                    key,
                    Value::new(&vb[..value_len]).ok_or(Status::BadRequest)?,
                ))
            }
            GET | DELETE if value_len == 0 && msg.words().len() == 1 + key_words => {
                Ok(if msg.label() == GET {
                    Request::Get(key)
                } else {
                    Request::Delete(key)
                })
            }
            _ => Err(Status::BadRequest),
        }
    }
}

fn encode(label: u64, key: &[u8], value: &[u8]) -> Result<Message, StoreError> {
    if key.is_empty() {
        return Err(StoreError::BadRequest);
    }
    if key.len() > MAX_KEY_LEN || value.len() > MAX_VALUE_LEN {
        return Err(StoreError::TooLarge);
    }
    let mut m = Message::new(label);
    let full = |_| StoreError::TooLarge;
    m.push(key.len() as u64 | (value.len() as u64) << 16)
        .map_err(full)?;
    m.push_bytes(key).map_err(full)?;
    m.push_bytes(value).map_err(full)?;
    Ok(m)
}

/// A PUT request.
pub fn encode_put(key: &[u8], value: &[u8]) -> Result<Message, StoreError> {
    encode(PUT, key, value)
}

/// A GET request.
pub fn encode_get(key: &[u8]) -> Result<Message, StoreError> {
    encode(GET, key, &[])
}

/// A DELETE request.
pub fn encode_delete(key: &[u8]) -> Result<Message, StoreError> {
    encode(DELETE, key, &[])
}

/// The OK reply to a GET, carrying `value`.
pub fn value_reply(value: &[u8]) -> Message {
    let mut m = Status::Ok.reply();
    let _ = m.push(value.len() as u64);
    if m.push_bytes(value).is_err() {
        return Status::BadRequest.reply();
    }
    m
}

fn status(reply: &Message) -> Result<Status, StoreError> {
    Status::from_label(reply.label()).ok_or(StoreError::Unexpected(reply.label()))
}

/// Reads the reply to a PUT.
pub fn decode_put_reply(reply: &Message) -> Result<(), StoreError> {
    match status(reply)? {
        Status::Ok => Ok(()),
        Status::NotFound => Err(StoreError::Unexpected(reply.label())),
        s => Err(StoreError::from_status(s).unwrap_or(StoreError::Unexpected(reply.label()))),
    }
}

/// Reads the reply to a GET into `buf`: the value's length, or `None`.
pub fn decode_get_reply(reply: &Message, buf: &mut [u8]) -> Result<Option<usize>, StoreError> {
    match status(reply)? {
        Status::Ok => {
            let len = reply.word(0).ok_or(StoreError::Unexpected(reply.label()))? as usize;
            if len > MAX_VALUE_LEN || reply.words().len() != 1 + words_for(len) {
                return Err(StoreError::Unexpected(reply.label()));
            }
            let out = buf.get_mut(..len).ok_or(StoreError::BufferTooSmall)?;
            reply
                .read_bytes(1, out)
                .ok_or(StoreError::Unexpected(reply.label()))?;
            Ok(Some(len))
        }
        Status::NotFound => Ok(None),
        s => Err(StoreError::from_status(s).unwrap_or(StoreError::Unexpected(reply.label()))),
    }
}

/// Reads the reply to a DELETE: whether the key existed.
pub fn decode_delete_reply(reply: &Message) -> Result<bool, StoreError> {
    match status(reply)? {
        Status::Ok => Ok(true),
        Status::NotFound => Ok(false),
        s => Err(StoreError::from_status(s).unwrap_or(StoreError::Unexpected(reply.label()))),
    }
}
