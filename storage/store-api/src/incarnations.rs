//! How the monitor tells the store which incarnation each PD is in, so that
//! any PD can watch a neighbour's restarts through the store
//! ([`crate::buffered::watch`]) with no channel of its own to the monitor.
//!
//! The monitor cannot call the store (it outranks it, and never calls a PD
//! it supervises). Instead it writes a **board**, a memory region it maps
//! read-write and the store maps read-only (`<axolotl:monitor
//! publish="REGION">`), and notifies the store on a channel of their own.
//! The store copies the board out, checks it, and keeps each entry in the
//! monitor's namespace: the key is the PD's name, the value its incarnation
//! as 8 bytes little-endian (as [`crate::put_u64`] writes). A put that
//! changes a value fires the watches on it.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `"AXIN"` |
//! | 4 | 2 | version = 1 |
//! | 6 | 2 | number of entries |
//! | 8 | 8 | sequence number, one more at every publication |
//! | 16 | 4 | CRC-32 of bytes 0..16 and the entries: written last |
//! | 20 | 4 | zero |
//! | 24 | [`ENTRY`] each | the entries |
//!
//! An entry: the name's length (1..=[`MAX_NAME_LEN`]), 7 zero bytes, the
//! name, zero-padded to [`MAX_NAME_LEN`] bytes, then the incarnation (8
//! bytes): 0 for a PD never restarted, one more after each restart.
//!
//! The store reads the board only through volatile copies and believes
//! nothing it has not checked: a torn or scribbled board fails its CRC and
//! is ignored until the next publication.

use crate::protocol::MAX_KEY_LEN;
use axolotl_ring::shared::SharedBytes;
use axolotl_sdk::crc::Crc32;
use core::sync::atomic::{fence, Ordering};

const MAGIC: [u8; 4] = *b"AXIN";
const VERSION: u16 = 1;
/// Bytes before the first entry.
pub const HEADER: usize = 24;
/// Bytes of an entry.
pub const ENTRY: usize = 48;
/// Longest PD name on the board (it is a store key).
pub const MAX_NAME_LEN: usize = MAX_KEY_LEN;
const NAME_AT: usize = 8;
const VALUE_AT: usize = NAME_AT + MAX_NAME_LEN;

/// Bytes of a board of `entries` entries.
pub const fn board_bytes(entries: usize) -> usize {
    HEADER + entries * ENTRY
}

/// Why a publication did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishError {
    /// More entries than the region holds.
    TooMany,
    /// A name is empty or longer than [`MAX_NAME_LEN`].
    BadName,
}

/// The monitor's end: writes whole boards.
pub struct Publisher {
    region: SharedBytes,
    seq: u64,
}

impl Publisher {
    /// Publishes into `region`. A sequence number already there is carried
    /// on (the monitor's earlier incarnation wrote it).
    pub fn new(region: SharedBytes) -> Publisher {
        let mut seq = [0u8; 8];
        let seq = if region.copy_out(8, &mut seq) {
            u64::from_le_bytes(seq)
        } else {
            0
        };
        Publisher { region, seq }
    }

    /// Writes a board of `entries` (a PD's name and its incarnation): the
    /// entries, then the header, then, after a fence, the CRC that makes
    /// it whole. Nothing is written if an entry is refused.
    pub fn publish<'a, I>(&mut self, entries: I) -> Result<(), PublishError>
    where
        I: IntoIterator<Item = (&'a str, u64)> + Clone,
    {
        let mut n = 0usize;
        for (name, _) in entries.clone() {
            if name.is_empty() || name.len() > MAX_NAME_LEN {
                return Err(PublishError::BadName);
            }
            n += 1;
        }
        if board_bytes(n) > self.region.len() || n > usize::from(u16::MAX) {
            return Err(PublishError::TooMany);
        }
        self.seq = self.seq.wrapping_add(1);
        let mut head = [0u8; 16];
        head[0..4].copy_from_slice(&MAGIC);
        head[4..6].copy_from_slice(&VERSION.to_le_bytes());
        head[6..8].copy_from_slice(&(n as u16).to_le_bytes());
        head[8..16].copy_from_slice(&self.seq.to_le_bytes());
        let mut crc = Crc32::new().update(&head);
        for (i, (name, incarnation)) in entries.into_iter().enumerate() {
            let e = encode_entry(name, incarnation);
            crc = crc.update(&e);
            self.region.copy_in(HEADER + i * ENTRY, &e);
        }
        self.region.copy_in(0, &head);
        self.region.copy_in(20, &[0; 4]);
        fence(Ordering::Release);
        self.region.copy_in(16, &crc.finish().to_le_bytes());
        Ok(())
    }
}

fn encode_entry(name: &str, incarnation: u64) -> [u8; ENTRY] {
    let mut e = [0u8; ENTRY];
    e[0] = name.len() as u8;
    e[NAME_AT..NAME_AT + name.len()].copy_from_slice(name.as_bytes());
    e[VALUE_AT..].copy_from_slice(&incarnation.to_le_bytes());
    e
}

/// Why a board was not believed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoardError {
    /// Nothing was ever published (or the magic is gone).
    Empty,
    /// Another version, an entry count the region cannot hold, a CRC that
    /// does not match (a torn or scribbled board), or a bad entry.
    Corrupt,
    /// The copy buffer is smaller than the board.
    Short,
}

/// A checked copy of a board.
#[derive(Clone, Copy, Debug)]
pub struct Board<'a> {
    bytes: &'a [u8],
    seq: u64,
}

impl<'a> Board<'a> {
    /// Copies the board in `region` into `buf` and checks it. `buf` needs
    /// [`board_bytes`] of the entry count (the region's size always does).
    pub fn copy_from(region: &SharedBytes, buf: &'a mut [u8]) -> Result<Board<'a>, BoardError> {
        let head = buf.get_mut(..HEADER).ok_or(BoardError::Short)?;
        if !region.copy_out(0, head) {
            return Err(BoardError::Empty);
        }
        if head[0..4] != MAGIC {
            return Err(BoardError::Empty);
        }
        let n = usize::from(u16::from_le_bytes([head[6], head[7]]));
        let len = board_bytes(n);
        if u16::from_le_bytes([head[4], head[5]]) != VERSION || len > region.len() {
            return Err(BoardError::Corrupt);
        }
        let all = buf.get_mut(..len).ok_or(BoardError::Short)?;
        // The whole board again, header included, in one copy: the CRC
        // then covers exactly what is parsed.
        if !region.copy_out(0, all) {
            return Err(BoardError::Corrupt);
        }
        let all = &all[..];
        let want = u32::from_le_bytes([all[16], all[17], all[18], all[19]]);
        let got = Crc32::new()
            .update(&all[..16])
            .update(&all[HEADER..])
            .finish();
        if want != got || all[6..8] != (n as u16).to_le_bytes() || all[20..24] != [0; 4] {
            return Err(BoardError::Corrupt);
        }
        let board = Board {
            bytes: all,
            seq: u64::from_le_bytes(all[8..16].try_into().unwrap_or([0; 8])),
        };
        if board.entries().any(|e| e.is_none()) {
            return Err(BoardError::Corrupt);
        }
        Ok(board)
    }

    /// Its sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The entries: a PD's name and its incarnation.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, u64)> + 'a {
        self.entries().map_while(|e| e)
    }

    fn entries(&self) -> impl Iterator<Item = Option<(&'a str, u64)>> + 'a {
        self.bytes[HEADER..].chunks_exact(ENTRY).map(|e| {
            let len = usize::from(e[0]);
            if !(1..=MAX_NAME_LEN).contains(&len) || e[1..NAME_AT] != [0; 7] {
                return None;
            }
            let name = core::str::from_utf8(&e[NAME_AT..NAME_AT + len]).ok()?;
            let value = u64::from_le_bytes(e[VALUE_AT..].try_into().ok()?);
            Some((name, value))
        })
    }
}

#[cfg(test)]
#[allow(unsafe_code)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn region(mem: &mut [u8]) -> SharedBytes {
        // SAFETY: `mem` outlives the result in each test, and nothing else
        // touches it meanwhile.
        unsafe { SharedBytes::new(mem.as_mut_ptr(), mem.len()) }
    }

    #[test]
    fn a_board_reads_back_as_published() {
        let mut mem = vec![0u8; 4096];
        let mut buf = vec![0u8; 4096];
        assert_eq!(
            Board::copy_from(&region(&mut mem), &mut buf).err(),
            Some(BoardError::Empty)
        );
        let mut p = Publisher::new(region(&mut mem));
        p.publish([("nic", 0), ("ip", 3), ("guardian", 1)]).unwrap();
        let r = region(&mut mem);
        let b = Board::copy_from(&r, &mut buf).unwrap();
        assert_eq!(b.seq(), 1);
        let got: Vec<_> = b.iter().collect();
        assert_eq!(got, vec![("nic", 0), ("ip", 3), ("guardian", 1)]);
        // A new publisher (the monitor restarted) carries the sequence on.
        let mut p = Publisher::new(region(&mut mem));
        p.publish([("nic", 1)]).unwrap();
        let b = Board::copy_from(&r, &mut buf).unwrap();
        assert_eq!(
            (b.seq(), b.iter().collect::<Vec<_>>()),
            (2, vec![("nic", 1)])
        );
    }

    #[test]
    fn bad_names_and_too_many_entries_are_refused() {
        let mut mem = vec![0u8; board_bytes(2)];
        let mut p = Publisher::new(region(&mut mem));
        assert_eq!(p.publish([("", 1)]), Err(PublishError::BadName));
        let long = "x".repeat(MAX_NAME_LEN + 1);
        assert_eq!(p.publish([(long.as_str(), 1)]), Err(PublishError::BadName));
        assert_eq!(
            p.publish([("a", 1), ("b", 2), ("c", 3)]),
            Err(PublishError::TooMany)
        );
        assert!(
            mem.iter().all(|&b| b == 0),
            "a refused board writes nothing"
        );
    }

    #[test]
    fn any_flipped_bit_is_caught() {
        let mut mem = vec![0u8; board_bytes(3)];
        Publisher::new(region(&mut mem))
            .publish([("timer", 2), ("store", 0), ("tcp", 7)])
            .unwrap();
        let mut buf = vec![0u8; mem.len()];
        for bit in 0..mem.len() * 8 {
            mem[bit / 8] ^= 1 << (bit % 8);
            let r = Board::copy_from(&region(&mut mem), &mut buf);
            assert!(r.is_err(), "bit {bit} flipped and the board was believed");
            mem[bit / 8] ^= 1 << (bit % 8);
        }
        assert!(Board::copy_from(&region(&mut mem), &mut buf).is_ok());
    }

    #[test]
    fn a_short_copy_buffer_is_an_error_not_a_panic() {
        let mut mem = vec![0u8; 4096];
        Publisher::new(region(&mut mem))
            .publish([("a", 1), ("b", 2)])
            .unwrap();
        let mut buf = [0u8; HEADER + ENTRY];
        assert_eq!(
            Board::copy_from(&region(&mut mem), &mut buf).err(),
            Some(BoardError::Short)
        );
        assert_eq!(
            Board::copy_from(&region(&mut mem), &mut [0u8; 3]).err(),
            Some(BoardError::Short)
        );
    }

    proptest! {
        /// Whatever a neighbour leaves in the region, reading it never
        /// panics, and what is believed is well formed.
        #[test]
        fn random_bytes_never_panic(mut mem in proptest::collection::vec(any::<u8>(), 0..600),
                                    magic in any::<bool>()) {
            if magic && mem.len() >= 8 {
                mem[0..4].copy_from_slice(&MAGIC);
                mem[4..6].copy_from_slice(&VERSION.to_le_bytes());
            }
            let mut buf = vec![0u8; mem.len().max(HEADER)];
            if let Ok(b) = Board::copy_from(&region(&mut mem), &mut buf) {
                for (name, _) in b.iter() {
                    prop_assert!(!name.is_empty() && name.len() <= MAX_NAME_LEN);
                }
            }
        }
    }
}
