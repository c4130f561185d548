//! The state store: what each PD must remember across its own restart.
//!
//! - [`journal`]: an append-only log in a memory region that survives the
//!   store's crash; a record is durable once its commit word is written.
//! - [`Store`]: the index rebuilt from the journal, with per-client
//!   namespaces and quotas.
//! - [`StoreServer`]: the PD component answering `axolotl-store-api` calls.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

mod crc;
pub mod journal;
mod server;
mod store;

pub use journal::{Journal, Medium, SliceMedium};
pub use server::StoreServer;
pub use store::{Store, Usage};

#[cfg(test)]
mod tests;
