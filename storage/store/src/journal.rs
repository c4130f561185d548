//! The journal: records in one of two halves of a memory region, chosen by a
//! superblock.
//!
//! ```text
//! 0      magic "AXJRNL01" (u64)
//! 8      active: generation << 1 | half (u64, written in one store)
//! 64     half 0 ..  64 + H      half 1 .. 64 + 2H     (H = (len - 64) / 2, 8-aligned)
//! record: commit u32 | len u32 | generation u32 | crc u32 | payload (len bytes, padded to 8)
//! payload: op u8 (1 put, 2 delete) | namespace u8 | key_len u8 | 0 | value_len u16 | 0 0 | key | value
//! ```
//!
//! A record is written payload first, then `len`, `generation` and `crc`, and
//! the commit word last, after a release fence. Replay reads records from the
//! start of the live half and stops at the first whose commit word, generation,
//! length or CRC is wrong; so a crash at any byte leaves every record that was
//! acknowledged (whose commit word was written) and nothing else that matters.
//! The generation tells this use of a half from records left by an earlier one.
//!
//! Compaction writes the live set into the other half under the next
//! generation, then flips `active` with a single aligned store: a crash before
//! the flip leaves the old half live and whole.

use crate::crc::crc32;
use alloc::vec::Vec;
use core::sync::atomic::{fence, Ordering};

const MAGIC: u64 = u64::from_le_bytes(*b"AXJRNL01");
const COMMIT: u32 = 0xC0DE_A5A5;
const SUPER: usize = 64;
const REC_HEADER: usize = 16;
const PAYLOAD_HEADER: usize = 8;

/// Where the journal lives: bytes that survive the store's restart.
pub trait Medium {
    /// Length in bytes.
    fn len(&self) -> usize;
    /// Whether it has no bytes at all.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Reads `buf.len()` bytes at `off` (in bounds; the journal checks).
    fn read(&self, off: usize, buf: &mut [u8]);
    /// Writes `data` at `off` (in bounds; the journal checks).
    fn write(&mut self, off: usize, data: &[u8]);
}

/// A journal in a plain byte slice (the mapped region).
pub struct SliceMedium<'a>(pub &'a mut [u8]);

impl Medium for SliceMedium<'_> {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn read(&self, off: usize, buf: &mut [u8]) {
        buf.copy_from_slice(&self.0[off..off + buf.len()]);
    }
    fn write(&mut self, off: usize, data: &[u8]) {
        self.0[off..off + data.len()].copy_from_slice(data);
    }
}

/// One operation in the journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `namespace`, `key`, `value`.
    Put(u8, Vec<u8>, Vec<u8>),
    /// `namespace`, `key`.
    Delete(u8, Vec<u8>),
}

impl Op {
    fn payload(&self) -> Vec<u8> {
        let (op, ns, key, value): (u8, u8, &[u8], &[u8]) = match self {
            Op::Put(ns, k, v) => (1, *ns, k, v),
            Op::Delete(ns, k) => (2, *ns, k, &[]),
        };
        let mut p = Vec::with_capacity(PAYLOAD_HEADER + key.len() + value.len());
        p.extend_from_slice(&[op, ns, key.len() as u8, 0]);
        p.extend_from_slice(&(value.len() as u16).to_le_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(key);
        p.extend_from_slice(value);
        p
    }

    fn parse(p: &[u8]) -> Option<Op> {
        let (&op, rest) = p.split_first()?;
        let ns = *rest.first()?;
        let klen = *rest.get(1)? as usize;
        let vlen = u16::from_le_bytes([*p.get(4)?, *p.get(5)?]) as usize;
        if p.len() != PAYLOAD_HEADER + klen + vlen {
            return None;
        }
        let key = p[PAYLOAD_HEADER..PAYLOAD_HEADER + klen].to_vec();
        let value = p[PAYLOAD_HEADER + klen..].to_vec();
        match op {
            1 => Some(Op::Put(ns, key, value)),
            2 if vlen == 0 => Some(Op::Delete(ns, key)),
            _ => None,
        }
    }
}

/// The journal has no room for a record, even after compaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

/// The journal over a medium.
pub struct Journal<M: Medium> {
    medium: M,
    half: usize,
    half_len: usize,
    generation: u64,
    /// Next free offset inside the live half.
    end: usize,
}

fn pad8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

impl<M: Medium> Journal<M> {
    /// Opens the journal, formatting it if it holds no journal (first boot,
    /// or garbage), and returns it with every valid operation, oldest first.
    /// `None` if the medium is too small to hold a journal at all.
    pub fn open(mut medium: M) -> Option<(Journal<M>, Vec<Op>)> {
        if medium.len() < SUPER + 2 * 64 {
            return None;
        }
        let half_len = (medium.len() - SUPER) / 2 / 8 * 8;
        let mut word = [0u8; 8];
        medium.read(0, &mut word);
        if u64::from_le_bytes(word) != MAGIC {
            log::info!(
                "journal: no journal in the region; formatting {} bytes",
                medium.len()
            );
            medium.write(8, &(1u64 << 1).to_le_bytes());
            fence(Ordering::Release);
            medium.write(0, &MAGIC.to_le_bytes());
        }
        medium.read(8, &mut word);
        let active = u64::from_le_bytes(word);
        let mut j = Journal {
            medium,
            half: (active & 1) as usize,
            half_len,
            generation: active >> 1,
            end: 0,
        };
        let ops = j.replay();
        Some((j, ops))
    }

    fn base(&self, half: usize) -> usize {
        SUPER + half * self.half_len
    }

    fn replay(&mut self) -> Vec<Op> {
        let mut ops = Vec::new();
        let mut off = 0;
        let base = self.base(self.half);
        while off + REC_HEADER <= self.half_len {
            let mut h = [0u8; REC_HEADER];
            self.medium.read(base + off, &mut h);
            let word = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
            let (commit, len, generation, crc) = (word(0), word(4) as usize, word(8), word(12));
            if commit != COMMIT
                || generation != self.generation as u32
                || len > self.half_len - off - REC_HEADER
            {
                break;
            }
            let mut payload = alloc::vec![0u8; len];
            self.medium.read(base + off + REC_HEADER, &mut payload);
            if crc32(&[&h[4..12], &payload]) != crc {
                break;
            }
            match Op::parse(&payload) {
                Some(op) => ops.push(op),
                None => break,
            }
            off += REC_HEADER + pad8(len);
        }
        self.end = off;
        ops
    }

    fn write_record(&mut self, half: usize, off: usize, generation: u64, op: &Op) {
        let payload = op.payload();
        let base = self.base(half);
        let mut meta = [0u8; 8];
        meta[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        meta[4..].copy_from_slice(&(generation as u32).to_le_bytes());
        let crc = crc32(&[&meta, &payload]);
        self.medium.write(base + off + REC_HEADER, &payload);
        self.medium.write(base + off + 4, &meta);
        self.medium.write(base + off + 12, &crc.to_le_bytes());
        fence(Ordering::Release);
        self.medium.write(base + off, &COMMIT.to_le_bytes());
        fence(Ordering::Release);
    }

    fn room(&self, op: &Op) -> usize {
        REC_HEADER + pad8(op.payload().len())
    }

    /// Appends `op`; once this returns `Ok` it survives any crash. When the
    /// live half is full, compacts `live` (the current state, as puts) into the
    /// other half first.
    pub fn append(&mut self, op: &Op, live: impl Fn() -> Vec<Op>) -> Result<(), Full> {
        if self.end + self.room(op) > self.half_len {
            self.compact(&live())?;
            if self.end + self.room(op) > self.half_len {
                return Err(Full);
            }
        }
        let (half, end, generation) = (self.half, self.end, self.generation);
        self.write_record(half, end, generation, op);
        self.end += self.room(op);
        Ok(())
    }

    /// Rewrites `live` into the other half and makes it the live one.
    pub fn compact(&mut self, live: &[Op]) -> Result<(), Full> {
        let need: usize = live.iter().map(|op| self.room(op)).sum();
        if need > self.half_len {
            return Err(Full);
        }
        let (other, generation) = (1 - self.half, self.generation + 1);
        let mut off = 0;
        for op in live {
            self.write_record(other, off, generation, op);
            off += self.room(op);
        }
        // Stop replay of the new half right after the live set, whatever an
        // earlier use of the half left there.
        if off + REC_HEADER <= self.half_len {
            let base = self.base(other);
            self.medium.write(base + off, &0u32.to_le_bytes());
        }
        fence(Ordering::Release);
        self.medium
            .write(8, &(generation << 1 | other as u64).to_le_bytes());
        fence(Ordering::Release);
        self.half = other;
        self.generation = generation;
        self.end = off;
        log::debug!(
            "journal: compacted {} records into half {other}",
            live.len()
        );
        Ok(())
    }

    /// Bytes used in the live half.
    pub fn used(&self) -> usize {
        self.end
    }

    /// The medium.
    pub fn medium(&self) -> &M {
        &self.medium
    }

    /// The medium (for tests).
    pub fn into_medium(self) -> M {
        self.medium
    }
}
