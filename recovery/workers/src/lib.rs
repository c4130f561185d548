//! The demo system's workers.
//!
//! - [`Producer`]: on every timer tick puts a few numbered jobs into the
//!   "jobs" ring and saves the next number in the state store.
//! - [`Consumer`]: takes jobs from the ring and counts them, saving its
//!   progress in the store *before* it releases the jobs, and skipping
//!   numbers it has already counted; so a crash of either worker (or of the
//!   store) neither loses nor double-counts a job.
//!
//! Both reload their counters from the store in `init`: a restarted worker
//! carries on from where it was, not from zero.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

mod consumer;
mod producer;

pub use consumer::{Consumer, Progress};
pub use producer::Producer;

use axolotl_sdk::{Channel, Os};
use axolotl_store_api::StoreError;

/// How often the demo's producer makes jobs.
pub const DEMO_PERIOD_NS: u64 = 50_000_000;
/// How many jobs the demo's producer makes each time.
pub const DEMO_JOBS_PER_TICK: u32 = 4;

/// How many times a store call is retried when the store restarted during it.
const STORE_RETRIES: usize = 20;

/// Errors of the workers' handlers; logged by the runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerError {
    /// The state store refused or could not be reached.
    Store(StoreError),
    /// The neighbour at the other end of the ring broke the ring protocol.
    Ring,
}

impl core::fmt::Display for WorkerError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            WorkerError::Store(e) => write!(f, "state store: {e}"),
            WorkerError::Ring => f.write_str("the peer broke the ring protocol"),
        }
    }
}

/// Runs a store operation, retrying while the store restarts (every store
/// operation is idempotent, so a retry is safe).
fn with_retry<T>(
    os: &mut dyn Os,
    op: impl FnMut(&mut dyn Os) -> Result<T, StoreError>,
) -> Result<T, WorkerError> {
    axolotl_store_api::retry(os, STORE_RETRIES, op).map_err(WorkerError::Store)
}

/// Loads a `u64` counter from the store (zero if absent).
fn load(os: &mut dyn Os, store: Channel, key: &[u8]) -> Result<u64, WorkerError> {
    with_retry(os, |os| axolotl_store_api::get_u64(os, store, key)).map(|v| v.unwrap_or(0))
}

#[cfg(test)]
mod tests;
