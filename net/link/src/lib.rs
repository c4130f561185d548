//! One direction of a packet path between two PDs, as in sDDF's network
//! queues: the sender owns a pool of fixed-size buffers in a memory region
//! (mapped writable in the sender, read-only in the receiver), fills one,
//! and puts a descriptor (`offset` of the buffer, `len`) on the *active*
//! ring; the receiver copies the packet out and gives the buffer back on
//! the *free* ring.
//!
//! Neither side trusts the other:
//! - [`Receiver::recv`] checks that a descriptor names a whole buffer
//!   (`offset` a multiple of the buffer size, inside the pool) and a length
//!   that fits, and copies the bytes out before anyone parses them, so a
//!   sender changing them afterwards changes nothing. A bad descriptor is
//!   counted and skipped.
//! - [`Sender`] keeps which buffers are out; a buffer given back that was
//!   not out (twice, or never sent), or that is not a buffer at all, is
//!   counted and ignored, so a hostile receiver can neither make the
//!   sender reuse a buffer still in flight nor grow its free list.
//! - Neither waits on the other to repair a ring: a sender whose free ring
//!   the receiver broke goes on sending from the buffers it holds, and a
//!   ring's producer goes on from its consumer's head when that is ahead
//!   of its own tail, however far (garbage published from a stale tail,
//!   twice). Each end only repairs a ring by using it, so refusing either
//!   would leave both ends waiting for the other for ever.
//!
//! Restarts: a restarted sender takes as out every buffer its earlier life
//! left on the active ring or given back on the free ring and not yet
//! reclaimed, so it never writes into a buffer whose old descriptor the
//! receiver has still to read. The receiver copies a packet out, gives the
//! buffer back, and only then consumes its descriptor, so at every moment a
//! buffer that is out is on one of the two rings. A restarted receiver
//! whose earlier life died between giving a buffer back and consuming its
//! descriptor drops that descriptor (the buffer may already hold another
//! packet); that drop is counted, and happens only at a receiver's restart.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

mod wired;
pub use wired::{receiver, sender, AttachError, RxLink, TxLink};

use axolotl_ring::{Consumer, Desc, EnqueueError, PeerMisbehavior, Producer};

/// Buffers in one pool at most.
pub const MAX_BUFFERS: usize = 512;

/// Why a packet was not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// Larger than a buffer.
    TooLong,
    /// Every buffer is out, or the active ring is full: try again after
    /// the receiver gave some back.
    Full,
    /// The receiver broke the ring's rules (counted by the ring).
    Peer,
}

/// The sender's pool, as the receiver reads it: the bytes are copied out
/// of it, never borrowed (the sender may write them at any time).
pub trait Pool {
    /// Bytes in the pool.
    fn size(&self) -> usize;
    /// Copies the `out.len()` bytes at `offset` into `out`; the caller
    /// keeps the range inside the pool.
    fn copy_out(&self, offset: usize, out: &mut [u8]);
}

/// A pool in ordinary memory (tests, fuzzing).
impl Pool for [u8] {
    fn size(&self) -> usize {
        self.len()
    }
    fn copy_out(&self, offset: usize, out: &mut [u8]) {
        out.copy_from_slice(&self[offset..offset + out.len()]);
    }
}

/// Why a pool cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolError {
    /// Buffer size 0, or more than [`MAX_BUFFERS`] buffers, or none.
    BadGeometry,
}

/// The sending end.
pub struct Sender {
    active: Producer,
    free: Consumer,
    buf_size: usize,
    buffers: usize,
    /// Bit set: buffer is out (on the active ring or held by the receiver).
    out: [u64; MAX_BUFFERS / 64],
    /// Where on the active ring each buffer that is out was put: a return
    /// must name that place (the receiver's `position` when it read it),
    /// and one the receiver has reached.
    sent_at: [u32; MAX_BUFFERS],
    bad_returns: u64,
    /// Something went wrong that may have left a buffer marked out on
    /// neither ring (a bad return, a ring that had to be caught up): count
    /// again from the rings before refusing a send for want of buffers.
    suspect: bool,
    /// Packets queued since the last `must_notify`.
    queued: bool,
}

/// The receiving end.
pub struct Receiver {
    active: Consumer,
    free: Producer,
    buf_size: usize,
    buffers: usize,
    bad_descriptors: u64,
    /// Buffers given back since the last `must_notify`.
    returned: bool,
    dropped_at_attach: u64,
}

/// The buffer a descriptor names (of `buffers` of `buf_size` bytes), if
/// it names one.
fn buffer_index(d: Desc, buf_size: usize, buffers: usize) -> Option<usize> {
    usize::try_from(d.offset)
        .ok()
        .filter(|o| o % buf_size == 0)
        .map(|o| o / buf_size)
        .filter(|&i| i < buffers)
}

fn geometry(pool_len: usize, buf_size: usize) -> Result<usize, PoolError> {
    if buf_size == 0 {
        return Err(PoolError::BadGeometry);
    }
    let n = pool_len / buf_size;
    if n == 0 || n > MAX_BUFFERS {
        return Err(PoolError::BadGeometry);
    }
    Ok(n)
}

impl Sender {
    /// The sending end over `active` (to the receiver) and `free` (back),
    /// for a pool of `pool_len` bytes cut into `buf_size`-byte buffers.
    pub fn new(
        active: Producer,
        free: Consumer,
        pool_len: usize,
        buf_size: usize,
    ) -> Result<Sender, PoolError> {
        let buffers = geometry(pool_len, buf_size)?;
        let mut s = Sender {
            active,
            free,
            buf_size,
            buffers,
            out: [0; MAX_BUFFERS / 64],
            sent_at: [0; MAX_BUFFERS],
            bad_returns: 0,
            suspect: false,
            queued: false,
        };
        s.adopt_in_flight();
        Ok(s)
    }

    /// Takes as out what an earlier life of this sender left in flight:
    /// the buffers on the active ring, and those on the free ring not yet
    /// reclaimed (which the reclaim that follows frees again).
    ///
    /// The same count serves a running sender that may have lost track
    /// (see `suspect`): every buffer that is out is on one ring or the
    /// other (the receiver gives a buffer back before it consumes its
    /// descriptor), so what is on neither is free.
    fn adopt_in_flight(&mut self) {
        let mut held = [0u64; MAX_BUFFERS / 64];
        let (buf_size, buffers) = (self.buf_size, self.buffers);
        let sent_at = &mut self.sent_at;
        // A buffer named more than once on the active ring keeps the last
        // place: the earlier ones are garbage (a garbage-writing life of
        // this PD names only buffers no descriptor in flight names, and
        // this end may send a real packet in one before the receiver reads
        // the garbage). Taking the first would let the receiver's return
        // for the garbage free the buffer under the real packet.
        let _ = self.active.in_flight(|at, d| {
            if let Some(i) = buffer_index(d, buf_size, buffers) {
                sent_at[i] = at;
                held[i / 64] |= 1 << (i % 64);
            }
        });
        // Given back, not yet reclaimed: the return says where it was. A
        // buffer also on the active ring (given back, its descriptor not
        // yet consumed) keeps the place the active ring says: the free
        // ring's word for it is the receiver's, and may be garbage.
        let mut i = 0;
        while let Ok(Some(d)) = self.free.peek(i) {
            if let Some(b) = buffer_index(d, buf_size, buffers) {
                if held[b / 64] & (1 << (b % 64)) == 0 {
                    sent_at[b] = d.meta;
                }
                held[b / 64] |= 1 << (b % 64);
            }
            i += 1;
        }
        self.out = held;
        self.suspect = false;
        let _ = self.reclaim();
    }

    fn is_out(&self, i: usize) -> bool {
        self.out[i / 64] & (1 << (i % 64)) != 0
    }

    fn set_out(&mut self, i: usize, out: bool) {
        if out {
            self.out[i / 64] |= 1 << (i % 64);
        } else {
            self.out[i / 64] &= !(1 << (i % 64));
        }
    }

    /// Takes back the buffers the receiver returned. A return counts only
    /// if it names a buffer that is out, the place on the active ring that
    /// buffer was put at, and a place the receiver has reached: random
    /// returns (from a receiver writing garbage) cannot free a buffer whose
    /// packet is still to be read.
    pub fn reclaim(&mut self) -> Result<(), PeerMisbehavior> {
        let misbehavior = self.active.misbehavior_count();
        loop {
            let d = match self.free.dequeue() {
                Ok(Some(d)) => d,
                Ok(None) => break,
                Err(e) => {
                    self.suspect = true;
                    return Err(e);
                }
            };
            let ok = buffer_index(d, self.buf_size, self.buffers)
                .filter(|&i| self.is_out(i))
                .filter(|&i| self.sent_at[i] == d.meta)
                .filter(|_| self.reached(d.meta));
            match ok {
                Some(i) => self.set_out(i, false),
                None => {
                    self.bad_returns += 1;
                    self.suspect = true;
                }
            }
        }
        if self.active.misbehavior_count() != misbehavior {
            self.suspect = true;
        }
        Ok(())
    }

    /// Whether the receiver has reached place `at` of the active ring. It
    /// gives a buffer back before it moves its head past the buffer's
    /// place, so for a return already taken off the free ring a head read
    /// now is at that place at least (read only when the last one seen is
    /// not: a head read per return would cost a shared cache line each).
    fn reached(&mut self, at: u32) -> bool {
        let past = |head: u32| head.wrapping_sub(at) <= i32::MAX as u32;
        past(self.active.consumed()) || {
            let _ = self.active.refresh();
            past(self.active.consumed())
        }
    }

    /// With every buffer out after something went wrong (`suspect`):
    /// counts again from the rings, which frees those on neither.
    fn recount_if_starved(&mut self) {
        if self.suspect && (0..self.buffers).all(|i| self.is_out(i)) {
            self.adopt_in_flight();
        }
    }

    /// Buffers given back wrongly so far.
    pub fn bad_returns(&self) -> u64 {
        self.bad_returns
    }

    /// Buffers out with the receiver, after taking back what it returned:
    /// zero on a link with no traffic, unless buffers leaked.
    ///
    /// After something went wrong (`suspect`) it counts again from the
    /// rings first, which frees the buffers on neither: a garbled return
    /// would otherwise stay out until every buffer is (see `send`), and on
    /// a link that never fills, for ever. Only here and when starved, not
    /// on every send: this is asked for now and then (status counters),
    /// so the scan of both rings costs a hostile receiver's sender little.
    pub fn unreturned(&mut self) -> usize {
        let _ = self.reclaim();
        if self.suspect {
            self.adopt_in_flight();
        }
        (0..self.buffers).filter(|&i| self.is_out(i)).count()
    }

    /// Packets that can be sent now: buffers not out, as far as the active
    /// ring has room for them. (A buffer given back may be free before its
    /// descriptor leaves the active ring: the receiver gives back first.)
    pub fn free_buffers(&mut self) -> usize {
        let _ = self.reclaim();
        self.recount_if_starved();
        let free = (0..self.buffers).filter(|&i| !self.is_out(i)).count();
        free.min(self.active.room() as usize)
    }

    /// Copies `packet` into a free buffer of `pool` and queues it, with
    /// `meta` for the receiver. Call [`Sender::must_notify`] after a batch.
    pub fn send(&mut self, pool: &mut [u8], packet: &[u8], meta: u32) -> Result<(), SendError> {
        if packet.len() > self.buf_size {
            return Err(SendError::TooLong);
        }
        // A free ring the receiver broke does not stop the sending: the
        // buffers this end holds are still its own to use, and only the
        // next send lets the receiver (which gives buffers back as it
        // takes packets) repair its ring. Refusing would wait for each
        // other for ever.
        let _ = self.reclaim();
        self.recount_if_starved();
        let Some(i) = (0..self.buffers).find(|&i| !self.is_out(i)) else {
            return Err(SendError::Full);
        };
        let start = i * self.buf_size;
        let Some(dst) = pool.get_mut(start..start + packet.len()) else {
            return Err(SendError::TooLong);
        };
        let filling = &axolotl_ring::FILLING;
        filling.store(dst.as_ptr() as usize, core::sync::atomic::Ordering::Relaxed);
        dst.copy_from_slice(packet);
        let desc = Desc {
            offset: start as u64,
            len: packet.len() as u32,
            meta,
        };
        let enqueued = self.active.enqueue(desc);
        filling.store(0, core::sync::atomic::Ordering::Relaxed);
        match enqueued {
            Ok(()) => {
                self.set_out(i, true);
                self.sent_at[i] = self.active.position().wrapping_sub(1);
                self.queued = true;
                Ok(())
            }
            Err(EnqueueError::Full) => Err(SendError::Full),
            Err(_) => Err(SendError::Peer),
        }
    }

    /// After a batch of sends: whether the receiver asked to be notified.
    /// False when nothing was sent since the last call, so that calling it
    /// after every round never wakes a peer for nothing.
    pub fn must_notify(&mut self) -> bool {
        core::mem::take(&mut self.queued) && self.active.must_notify()
    }

    /// Before waiting for buffers back: asks the receiver to notify when it
    /// returns some; false if some came back meanwhile.
    pub fn request_returns(&mut self) -> bool {
        self.free.request_signal()
    }
}

impl Receiver {
    /// The receiving end over `active` (from the sender) and `free` (back),
    /// for a pool of `pool_len` bytes cut into `buf_size`-byte buffers.
    pub fn new(
        active: Consumer,
        free: Producer,
        pool_len: usize,
        buf_size: usize,
    ) -> Result<Receiver, PoolError> {
        let buffers = geometry(pool_len, buf_size)?;
        let mut r = Receiver {
            active,
            free,
            buf_size,
            buffers,
            bad_descriptors: 0,
            returned: false,
            dropped_at_attach: 0,
        };
        // An earlier life that gave the head's buffer back and died before
        // it consumed the descriptor (its last return names this very
        // place on the active ring): the buffer may hold another packet by
        // now, so the descriptor is dropped, not read.
        if r.free.epoch() > 1 {
            if let Ok(Some(head)) = r.active.peek(0) {
                let last = r.free.last_enqueued();
                if head.offset == last.offset && last.meta == r.active.position() {
                    let _ = r.active.release(1);
                    r.dropped_at_attach += 1;
                }
            }
        }
        Ok(r)
    }

    /// Descriptors dropped when this receiver attached (see the crate's
    /// notes on restarts).
    pub fn dropped_at_attach(&self) -> u64 {
        self.dropped_at_attach
    }

    /// Descriptors refused so far.
    pub fn bad_descriptors(&self) -> u64 {
        self.bad_descriptors
    }

    /// Times the sender broke the active ring's rules, as the ring counts
    /// them (each look at an impossible tail). A receiver logs an error
    /// only when this is a power of two: a ring that stays broken until
    /// the sender next uses it would otherwise log at every poll.
    pub fn ring_errors(&self) -> u32 {
        self.active.misbehavior_count()
    }

    /// The next packet, copied out of `pool` into `out`: its length and
    /// `meta`. Bad descriptors are skipped (and counted); every buffer,
    /// good or bad, is given back at once.
    pub fn recv<P: Pool + ?Sized>(
        &mut self,
        pool: &P,
        out: &mut [u8],
    ) -> Result<Option<(usize, u32)>, PeerMisbehavior> {
        loop {
            // Copied, given back, and only then consumed: a buffer that is
            // out is always on one ring or the other (see the crate docs).
            let Some(d) = self.active.peek(0)? else {
                return Ok(None);
            };
            let len = d.len as usize;
            let start = usize::try_from(d.offset)
                .ok()
                .filter(|o| o % self.buf_size == 0 && o / self.buf_size < self.buffers)
                .filter(|_| len <= self.buf_size && len <= out.len())
                .filter(|o| o.checked_add(len).is_some_and(|end| end <= pool.size()));
            let got = start.map(|o| {
                pool.copy_out(o, &mut out[..len]);
                (len, d.meta)
            });
            // Give the buffer back whatever it held: the sender checks it.
            // The descriptor's place on the active ring goes with it, for a
            // next life of this receiver (see `Receiver::new`).
            let ret = Desc {
                offset: d.offset,
                len: 0,
                meta: self.active.position(),
            };
            if self.free.enqueue(ret).is_ok() {
                self.returned = true;
            }
            self.active.release(1)?;
            match got {
                Some(g) => return Ok(Some(g)),
                None => self.bad_descriptors += 1,
            }
        }
    }

    /// After giving buffers back: whether the sender asked to be told
    /// (false when none were given back since the last call).
    pub fn must_notify(&mut self) -> bool {
        core::mem::take(&mut self.returned) && self.free.must_notify()
    }

    /// Whether the sender (re)attached since the last call: it restarted.
    pub fn peer_restarted(&mut self) -> bool {
        self.active.peer_restarted()
    }

    /// Before waiting: asks the sender for a notification; false if packets
    /// arrived meanwhile (keep receiving).
    pub fn request_packets(&mut self) -> bool {
        self.active.request_signal()
    }
}

#[cfg(test)]
mod tests;
