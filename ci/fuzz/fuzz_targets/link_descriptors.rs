//! A hostile neighbour on a link: whatever it writes into the shared
//! region (ring indices, descriptors, the flag), the receiving end and the
//! sending end must neither panic nor read outside the pool.
#![no_main]
use axolotl_link::{Receiver, Sender};
use axolotl_ring::{region_bytes, Consumer, Producer};
use libfuzzer_sys::fuzz_target;

const SLOTS: u32 = 8;
const BUF: usize = 64;

fuzz_target!(|data: &[u8]| {
    let ring = region_bytes(SLOTS);
    // Two rings each way: the hostile peer's ends are never attached; it
    // "writes" by the fuzz input overwriting the shared memory.
    let mut active = vec![0u64; ring / 8];
    let mut free = vec![0u64; ring / 8];
    let mut pool = vec![0u8; SLOTS as usize * BUF];
    let (a, f) = (active.as_mut_ptr().cast::<u8>(), free.as_mut_ptr().cast::<u8>());
    // SAFETY: each region is `ring` bytes, 8-byte aligned, alive for the
    // whole target; one end of each ring is attached.
    let (rx_active, rx_free) = unsafe { (Consumer::attach(a, ring, SLOTS), Producer::attach(f, ring, SLOTS)) };
    let mut rx = Receiver::new(rx_active.unwrap(), rx_free.unwrap(), pool.len(), BUF).unwrap();
    let mut out = [0u8; BUF];
    for chunk in data.chunks(ring.min(97)) {
        // The hostile sender scribbles over the active ring.
        let bytes = unsafe { std::slice::from_raw_parts_mut(a, ring) };
        let at = usize::from(chunk.first().copied().unwrap_or(0)) % ring;
        for (i, b) in chunk.iter().enumerate() {
            bytes[(at + i) % ring] = *b;
        }
        for _ in 0..SLOTS * 2 {
            match rx.recv(&pool[..], &mut out) {
                Ok(Some((n, _))) => assert!(n <= BUF),
                _ => break,
            }
        }
        rx.request_packets();
        rx.must_notify();
    }
    // The same for a sender whose receiver gives back nonsense.
    let mut active2 = vec![0u64; ring / 8];
    let mut free2 = vec![0u64; ring / 8];
    let (a2, f2) = (active2.as_mut_ptr().cast::<u8>(), free2.as_mut_ptr().cast::<u8>());
    // SAFETY: as above.
    let (tx_active, tx_free) = unsafe { (Producer::attach(a2, ring, SLOTS), Consumer::attach(f2, ring, SLOTS)) };
    let mut tx = Sender::new(tx_active.unwrap(), tx_free.unwrap(), pool.len(), BUF).unwrap();
    for chunk in data.chunks(41) {
        let _ = tx.send(&mut pool, &chunk[..chunk.len().min(BUF)], 0);
        let bytes = unsafe { std::slice::from_raw_parts_mut(f2, ring) };
        let at = usize::from(chunk.first().copied().unwrap_or(0)) % ring;
        for (i, b) in chunk.iter().enumerate() {
            bytes[(at + i) % ring] = *b;
        }
        let _ = tx.reclaim();
        assert!(tx.free_buffers() <= SLOTS as usize);
    }
    drop((active, free, active2, free2));
});
