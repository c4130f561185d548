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
//!
//! A restarted sender finds every buffer free again (its `.bss` is fresh);
//! descriptors still on the rings from its earlier life are told apart by
//! the ring epochs (see `axolotl_ring`).
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
    bad_returns: u64,
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
        Ok(Sender {
            active,
            free,
            buf_size,
            buffers,
            out: [0; MAX_BUFFERS / 64],
            bad_returns: 0,
            queued: false,
        })
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

    /// Takes back the buffers the receiver returned.
    pub fn reclaim(&mut self) -> Result<(), PeerMisbehavior> {
        while let Some(d) = self.free.dequeue()? {
            let ok = usize::try_from(d.offset)
                .ok()
                .filter(|o| o % self.buf_size == 0)
                .map(|o| o / self.buf_size)
                .filter(|&i| i < self.buffers && self.is_out(i));
            match ok {
                Some(i) => self.set_out(i, false),
                None => self.bad_returns += 1,
            }
        }
        Ok(())
    }

    /// Buffers given back wrongly so far.
    pub fn bad_returns(&self) -> u64 {
        self.bad_returns
    }

    /// Buffers not out now.
    pub fn free_buffers(&self) -> usize {
        (0..self.buffers).filter(|&i| !self.is_out(i)).count()
    }

    /// Copies `packet` into a free buffer of `pool` and queues it, with
    /// `meta` for the receiver. Call [`Sender::must_notify`] after a batch.
    pub fn send(&mut self, pool: &mut [u8], packet: &[u8], meta: u32) -> Result<(), SendError> {
        if packet.len() > self.buf_size {
            return Err(SendError::TooLong);
        }
        self.reclaim().map_err(|_| SendError::Peer)?;
        let Some(i) = (0..self.buffers).find(|&i| !self.is_out(i)) else {
            return Err(SendError::Full);
        };
        let start = i * self.buf_size;
        let Some(dst) = pool.get_mut(start..start + packet.len()) else {
            return Err(SendError::TooLong);
        };
        dst.copy_from_slice(packet);
        let desc = Desc {
            offset: start as u64,
            len: packet.len() as u32,
            meta,
        };
        match self.active.enqueue(desc) {
            Ok(()) => {
                self.set_out(i, true);
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
        Ok(Receiver {
            active,
            free,
            buf_size,
            buffers,
            bad_descriptors: 0,
            returned: false,
        })
    }

    /// Descriptors refused so far.
    pub fn bad_descriptors(&self) -> u64 {
        self.bad_descriptors
    }

    /// The next packet, copied out of `pool` into `out`: its length and
    /// `meta`. Bad descriptors are skipped (and counted); every buffer,
    /// good or bad, is given back at once.
    pub fn recv(
        &mut self,
        pool: &[u8],
        out: &mut [u8],
    ) -> Result<Option<(usize, u32)>, PeerMisbehavior> {
        loop {
            let Some(d) = self.active.dequeue()? else {
                return Ok(None);
            };
            let range = usize::try_from(d.offset)
                .ok()
                .filter(|o| o % self.buf_size == 0 && o / self.buf_size < self.buffers)
                .filter(|_| d.len as usize <= self.buf_size && d.len as usize <= out.len())
                .and_then(|o| pool.get(o..o + d.len as usize));
            let got = range.map(|bytes| {
                out[..bytes.len()].copy_from_slice(bytes);
                (bytes.len(), d.meta)
            });
            // Give the buffer back whatever it held: the sender checks it.
            let ret = Desc {
                offset: d.offset,
                len: 0,
                meta: 0,
            };
            if self.free.enqueue(ret).is_ok() {
                self.returned = true;
            }
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
