//! The state store: what each PD must remember across its own restart.
//!
//! - [`journal`]: an append-only log in a memory region that survives the
//!   store's own crash; a record is durable once its commit word is written,
//!   and compaction flips between two halves with a one-byte commit.
//! - [`Store`]: the index rebuilt from the journal, with per-client
//!   namespaces and quotas.
//! - [`StoreServer`]: the PD component answering `axolotl-store-api` calls;
//!   the channel a call arrives on says which client it is.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod journal;
#[cfg(any(test, feature = "mock"))]
pub mod mock;
mod server;
mod store;

pub use journal::{Attached, Journal, Medium, Record, RecordKind};
pub use server::{Counters, StoreServer};
pub use store::{Change, Store, Usage, MAX_BATCH, MAX_CLIENTS};
