//! A link as system.xml wires it: one region holding the active ring, the
//! free ring and the pool ([`LinkConfig`], generated from `<axolotl:link>`).
#![allow(unsafe_code)]

use crate::{PoolError, Receiver, SendError, Sender};
use axolotl_ring::{Consumer, PeerMisbehavior, Producer};
use axolotl_sdk::config::{LinkConfig, LinkRole};
use axolotl_sdk::Channel;

/// Why a link cannot be attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachError {
    /// This PD is the other end of the link.
    WrongEnd,
    /// The parts do not fit in the region, or a ring refused to attach.
    BadLayout,
    /// The pool geometry is impossible.
    Pool(PoolError),
}

impl core::fmt::Display for AttachError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AttachError::WrongEnd => f.write_str("this PD is the other end of the link"),
            AttachError::BadLayout => f.write_str("rings and pool do not fit the region"),
            AttachError::Pool(e) => write!(f, "bad pool: {e:?}"),
        }
    }
}

fn ring_len(cfg: &LinkConfig) -> usize {
    axolotl_ring::region_bytes(cfg.buffers)
}

fn check(cfg: &LinkConfig, role: LinkRole) -> Result<(), AttachError> {
    if cfg.role != role {
        return Err(AttachError::WrongEnd);
    }
    let pool = (cfg.buffers as usize).checked_mul(cfg.buf_size as usize);
    let fits = |off: usize, len: usize| off.checked_add(len).is_some_and(|e| e <= cfg.region.size);
    let ok = fits(cfg.active_offset, ring_len(cfg))
        && fits(cfg.free_offset, ring_len(cfg))
        && pool.is_some_and(|p| fits(cfg.pool_offset, p));
    if ok {
        Ok(())
    } else {
        Err(AttachError::BadLayout)
    }
}

/// The sending end of a wired link.
pub struct TxLink {
    sender: Sender,
    pool: *mut u8,
    pool_len: usize,
    channel: Channel,
}

// SAFETY: the pool pointer is only used by the owner of the TxLink.
unsafe impl Send for TxLink {}

impl TxLink {
    /// Attaches the sending end of `cfg`.
    ///
    /// # Safety
    /// The runtime must have mapped `cfg.region` read-write at its address
    /// for the life of the program, and this must be the only `TxLink` for
    /// it in this PD.
    pub unsafe fn attach(cfg: &LinkConfig) -> Result<TxLink, AttachError> {
        check(cfg, LinkRole::Sender)?;
        let base = cfg.region.ptr();
        // SAFETY: check() showed both rings lie inside the region, which
        // the caller promises is mapped; only this end produces on the
        // active ring and consumes the free ring.
        let (active, free) = unsafe {
            (
                Producer::attach(base.add(cfg.active_offset), ring_len(cfg), cfg.buffers),
                Consumer::attach(base.add(cfg.free_offset), ring_len(cfg), cfg.buffers),
            )
        };
        let (Ok(active), Ok(free)) = (active, free) else {
            return Err(AttachError::BadLayout);
        };
        let pool_len = cfg.buffers as usize * cfg.buf_size as usize;
        let sender = Sender::new(active, free, pool_len, cfg.buf_size as usize)
            .map_err(AttachError::Pool)?;
        Ok(TxLink {
            sender,
            // SAFETY: inside the region (checked above).
            pool: unsafe { base.add(cfg.pool_offset) },
            pool_len,
            channel: cfg.channel,
        })
    }

    /// The channel to notify after a batch.
    pub fn channel(&self) -> Channel {
        self.channel
    }

    /// Copies `packet` into a free buffer and queues it with `meta`.
    pub fn send(&mut self, packet: &[u8], meta: u32) -> Result<(), SendError> {
        // SAFETY: the pool lies in the mapped region (attach); only the
        // sender writes it, and the receiver copies a buffer out before it
        // looks at it, so what it sees mid-write is never trusted.
        let pool = unsafe { core::slice::from_raw_parts_mut(self.pool, self.pool_len) };
        self.sender.send(pool, packet, meta)
    }

    /// Whether the receiver wants a notification now.
    pub fn must_notify(&mut self) -> bool {
        self.sender.must_notify()
    }

    /// Buffers free to send into (after taking back the returned ones).
    pub fn free_buffers(&mut self) -> usize {
        let _ = self.sender.reclaim();
        self.sender.free_buffers()
    }

    /// Buffers returned wrongly by the receiver so far.
    pub fn bad_returns(&self) -> u64 {
        self.sender.bad_returns()
    }

    /// Buffers out with the receiver (see [`crate::Sender::unreturned`]).
    pub fn unreturned(&mut self) -> u64 {
        self.sender.unreturned() as u64
    }

    /// Before waiting for buffers: asks for a notification when some come
    /// back; false if some came back meanwhile.
    pub fn request_returns(&mut self) -> bool {
        self.sender.request_returns()
    }
}

/// The receiving end of a wired link.
pub struct RxLink {
    receiver: Receiver,
    pool: *const u8,
    pool_len: usize,
    channel: Channel,
}

// SAFETY: the pool pointer is only used by the owner of the RxLink.
unsafe impl Send for RxLink {}

impl RxLink {
    /// Attaches the receiving end of `cfg`.
    ///
    /// # Safety
    /// As for [`TxLink::attach`], for the receiving end.
    pub unsafe fn attach(cfg: &LinkConfig) -> Result<RxLink, AttachError> {
        check(cfg, LinkRole::Receiver)?;
        let base = cfg.region.ptr();
        // SAFETY: as in TxLink::attach, for the other ends of the rings.
        let (active, free) = unsafe {
            (
                Consumer::attach(base.add(cfg.active_offset), ring_len(cfg), cfg.buffers),
                Producer::attach(base.add(cfg.free_offset), ring_len(cfg), cfg.buffers),
            )
        };
        let (Ok(active), Ok(free)) = (active, free) else {
            return Err(AttachError::BadLayout);
        };
        let pool_len = cfg.buffers as usize * cfg.buf_size as usize;
        let receiver = Receiver::new(active, free, pool_len, cfg.buf_size as usize)
            .map_err(AttachError::Pool)?;
        Ok(RxLink {
            receiver,
            // SAFETY: inside the region (checked above).
            pool: unsafe { base.add(cfg.pool_offset) },
            pool_len,
            channel: cfg.channel,
        })
    }

    /// The channel to notify after giving buffers back.
    pub fn channel(&self) -> Channel {
        self.channel
    }

    /// The next packet copied into `out`: its length and meta.
    pub fn recv(&mut self, out: &mut [u8]) -> Result<Option<(usize, u32)>, PeerMisbehavior> {
        let pool = SharedPool {
            base: self.pool,
            len: self.pool_len,
        };
        self.receiver.recv(&pool, out)
    }

    /// Whether the sender wants a notification now (buffers came back).
    pub fn must_notify(&mut self) -> bool {
        self.receiver.must_notify()
    }

    /// Descriptors refused so far.
    pub fn bad_descriptors(&self) -> u64 {
        self.receiver.bad_descriptors()
    }

    /// See [`crate::Receiver::ring_errors`].
    pub fn ring_errors(&self) -> u32 {
        self.receiver.ring_errors()
    }

    /// Whether the sender (re)attached since the last call: it restarted.
    pub fn peer_restarted(&mut self) -> bool {
        self.receiver.peer_restarted()
    }

    /// Before waiting: asks for a notification; false if packets arrived
    /// meanwhile.
    pub fn request_packets(&mut self) -> bool {
        self.receiver.request_packets()
    }
}

/// The sender's pool in shared memory, which the sender may write at any
/// time: read only through volatile loads from a raw pointer, never
/// through a Rust reference.
struct SharedPool {
    base: *const u8,
    len: usize,
}

impl crate::Pool for SharedPool {
    fn size(&self) -> usize {
        self.len
    }

    fn copy_out(&self, offset: usize, out: &mut [u8]) {
        debug_assert!(offset + out.len() <= self.len);
        // `base..base + len` is the pool, mapped for the life of the link
        // (attach), and the receiver keeps `offset + out.len()` within
        // `len`: every address below is inside it.
        // SAFETY: `offset <= len`, so the pointer stays inside the pool.
        let src = unsafe { self.base.add(offset) };
        let mut i = 0;
        if src.cast::<u64>().is_aligned() {
            // Whole words while they last: a packet is copied eight bytes
            // at a time.
            while i + 8 <= out.len() {
                // SAFETY: an aligned word inside the pool; a volatile load
                // of a plain integer is valid for any bits the sender
                // writes meanwhile.
                let w = unsafe { src.add(i).cast::<u64>().read_volatile() };
                out[i..i + 8].copy_from_slice(&w.to_ne_bytes());
                i += 8;
            }
        }
        while i < out.len() {
            // SAFETY: a byte inside the pool, loaded as above.
            out[i] = unsafe { src.add(i).read_volatile() };
            i += 1;
        }
    }
}

/// Attaches the sending end of `cfg`, panicking with the link's name if
/// system.xml's wiring does not fit (a build mismatch the monitor sees as a
/// fault).
///
/// # Safety
/// As for [`TxLink::attach`].
pub unsafe fn sender(cfg: &LinkConfig) -> TxLink {
    // SAFETY: passed on from the caller.
    unsafe { TxLink::attach(cfg) }.unwrap_or_else(|e| panic!("link {}: {e}", cfg.name))
}

/// Attaches the receiving end of `cfg`, panicking with the link's name if
/// it does not fit.
///
/// # Safety
/// As for [`RxLink::attach`].
pub unsafe fn receiver(cfg: &LinkConfig) -> RxLink {
    // SAFETY: passed on from the caller.
    unsafe { RxLink::attach(cfg) }.unwrap_or_else(|e| panic!("link {}: {e}", cfg.name))
}
