//! For other crates' tests (feature `mock`): a mock platform whose
//! protected calls reach a real store, so that a component's state can be
//! kept and read back across its own "restarts".

use crate::StoreServer;
use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::vec;
use axolotl_sdk::config::StoreClient;
use axolotl_sdk::mock::MockOs;
use axolotl_sdk::{CallError, Channel};
use core::cell::Cell;

/// Counts of what the store was asked, and a way to make it look as if
/// it restarted.
#[derive(Clone, Default)]
pub struct Calls {
    /// Calls that reached the store.
    pub made: Rc<Cell<u32>>,
    /// Calls still to fail with [`CallError::PeerRestarted`] before any
    /// reaches the store.
    pub fail_next: Rc<Cell<u32>>,
}

/// A mock OS whose calls reach a store with one client, `namespace` on
/// `channel` (quota of 4 KiB in 32 keys), over an 8 KiB journal that
/// outlives every component using it; and the counts of its calls.
pub fn os_with_store(channel: Channel, namespace: &'static str) -> (MockOs, Calls) {
    os_with_store_of(channel, namespace, (4096, 32), 8192)
}

/// As [`os_with_store`], with a quota of `(bytes, keys)` and a journal of
/// `journal_len` bytes.
pub fn os_with_store_of(
    channel: Channel,
    namespace: &'static str,
    (quota_bytes, quota_keys): (u32, u32),
    journal_len: usize,
) -> (MockOs, Calls) {
    let clients: &'static [StoreClient] = Box::leak(Box::new([StoreClient {
        channel,
        namespace,
        quota_bytes,
        quota_keys,
        buffer: None,
        reads: &[],
    }]));
    let journal: &'static mut [u8] = Box::leak(vec![0u8; journal_len].into_boxed_slice());
    let mut store = StoreServer::init(journal, clients);
    let calls = Calls::default();
    let c = calls.clone();
    let os = MockOs::new().on_call(move |ch, msg| {
        if c.fail_next.get() > 0 {
            c.fail_next.set(c.fail_next.get() - 1);
            return Err(CallError::PeerRestarted);
        }
        c.made.set(c.made.get() + 1);
        Ok(store.handle(ch, msg))
    });
    (os, calls)
}
