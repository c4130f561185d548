//! The store PD's wiring, shared by its Linux program (`main.rs`) and its
//! seL4 program (`pds/sel4/store`): the generated constants (`crate::pd`)
//! in, the component out.

use crate::pd;
use axolotl_ring::shared::SharedBytes;
use axolotl_sdk::Os;
use axolotl_store::StoreServer;

/// The store over its journal, with each client's value buffer and the
/// monitor's incarnation board.
pub fn component(os: &mut dyn Os) -> StoreServer {
    let Some(journal) = pd::JOURNAL else {
        panic!("system.xml gives the store no journal region");
    };
    // SAFETY: the runtime mapped the journal read-write before init; the
    // checker guarantees no other PD maps it; this is the only reference.
    let journal = unsafe { journal.bytes_mut() };
    let buffers = pd::STORE_CLIENTS
        .iter()
        .map(|c| {
            c.buffer.map(|r| {
                // SAFETY: the runtime mapped the region read-write before
                // init for the life of the PD (the checker makes the store
                // map every value buffer read-write); the client writes it
                // too, so it is only ever copied, volatile.
                unsafe { SharedBytes::new(r.ptr(), r.size) }
            })
        })
        .collect();
    let mut store = StoreServer::init(journal, pd::STORE_CLIENTS).with_buffers(buffers);
    if let (Some(r), Some(ch)) = (pd::INCARNATIONS, pd::INCARNATIONS_CHANNEL) {
        // SAFETY: the runtime mapped the board readable before init for the
        // life of the PD; the monitor writes it at any time, so it is only
        // ever copied, volatile.
        let board = unsafe { SharedBytes::read_only(r.ptr(), r.size) };
        store = store.with_board(board, ch);
        store.notify_watchers(os);
    }
    store
}
