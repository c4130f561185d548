//! What a client sees when a store operation fails.

use crate::Status;
use axolotl_sdk::CallError;

/// Why a store operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StoreError {
    /// The client's quota (bytes of keys plus values, or number of keys)
    /// would be exceeded.
    QuotaExceeded,
    /// The store did not understand the request (or the client library
    /// refused to send it: an empty key).
    BadRequest,
    /// The store's journal has no room even after compaction.
    JournalFull,
    /// The store does not know the channel the call came on.
    UnknownClient,
    /// The key or value is longer than the protocol allows; caught before
    /// anything is sent.
    TooLarge,
    /// The stored value is longer than the buffer given to [`crate::get`].
    BufferTooSmall,
    /// The stored value is not 8 bytes long, so it is not a `u64`
    /// ([`crate::get_u64`]).
    WrongSize,
    /// The store restarted during the call: the operation may or may not have
    /// taken effect. Every store operation is idempotent, so callers retry.
    PeerRestarted,
    /// The store is stopped for good.
    PeerStopped,
    /// This PD may not call the store on that channel.
    NotPermitted,
    /// The store refused: no read grant for that namespace, or no value
    /// buffer for a buffered request.
    Denied,
    /// A reply the protocol does not allow for the request: an unknown label,
    /// or a known one with malformed words. Holds the reply's label.
    Unexpected(u64),
}

impl StoreError {
    /// The error a non-OK, non-NOT_FOUND status stands for; `None` for
    /// [`Status::Ok`] and [`Status::NotFound`], which each request reads its
    /// own way.
    pub const fn from_status(status: Status) -> Option<StoreError> {
        match status {
            Status::Ok | Status::NotFound => None,
            Status::QuotaExceeded => Some(StoreError::QuotaExceeded),
            Status::BadRequest => Some(StoreError::BadRequest),
            Status::JournalFull => Some(StoreError::JournalFull),
            Status::UnknownClient => Some(StoreError::UnknownClient),
            Status::TooLarge => Some(StoreError::TooLarge),
            Status::Denied => Some(StoreError::Denied),
        }
    }
}

impl From<CallError> for StoreError {
    fn from(e: CallError) -> StoreError {
        match e {
            CallError::NotPermitted => StoreError::NotPermitted,
            CallError::PeerRestarted => StoreError::PeerRestarted,
            CallError::PeerStopped => StoreError::PeerStopped,
        }
    }
}

impl core::fmt::Display for StoreError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StoreError::QuotaExceeded => f.write_str("quota exceeded"),
            StoreError::BadRequest => f.write_str("bad request"),
            StoreError::JournalFull => f.write_str("journal full"),
            StoreError::UnknownClient => f.write_str("the store does not know this client"),
            StoreError::TooLarge => f.write_str("key or value too large"),
            StoreError::BufferTooSmall => f.write_str("value larger than the buffer"),
            StoreError::WrongSize => f.write_str("stored value is not 8 bytes"),
            StoreError::PeerRestarted => f.write_str("store restarted during the call"),
            StoreError::PeerStopped => f.write_str("store is stopped"),
            StoreError::NotPermitted => f.write_str("no permission to call the store"),
            StoreError::Denied => {
                f.write_str("the store denied it (no read grant, or no value buffer)")
            }
            StoreError::Unexpected(label) => write!(f, "unexpected reply (label {label:#x})"),
        }
    }
}
