//! The journal: an append-only log of puts and deletes in a memory region
//! that outlives the store's process, in one of two halves chosen by a
//! superblock.
//!
//! ```text
//! region:     superblock (64 bytes) | half 0 (H bytes) | half 1 (H bytes)
//!             H = (len - 64) / 2 rounded down to a multiple of 8
//! superblock: 0  magic "AXJL"           4  version u16 = 1   6  0u16
//!             8  H u32                  12 CRC-32 of bytes 0..12
//!             16 live half u8 (0 or 1)  17..24 zero
//!             24 generation of half 0 u32, 28 its check u32
//!             32 generation of half 1 u32, 36 its check u32
//!             40..64 zero
//! record:     0  crc u32 (the commit word, written last)
//!             4  seq u32 (0, 1, 2, ... within the half)
//!             8  kind u8 (1 put, 2 delete, 3 watch)  9 client u8
//!             10 key_len u8
//!             11 flags u8 (bit 0: more records of this batch follow)
//!             12 value_len: bits 0..16 u16, 14 bits 16..24 u8  15 0u8
//!             16 key bytes, value bytes, zero padding to a multiple of 8
//! ```
//!
//! All integers are little-endian. A record's `crc` is the CRC-32 of the
//! previous record's `crc` (for the first record of a half, the CRC-32 of
//! `"AXJL"`, the half's generation and the half's number) followed by the
//! record's bytes from offset 4 to its padded end. The checksums thus form a
//! chain: a record is only valid right after the record it was written after,
//! in the generation it was written in.
//!
//! Durability: a record is written body first, then, after a release fence,
//! its commit word. Replay walks the live half from its start and stops at
//! the first record whose header is out of range, whose `seq` is not the next
//! one, whose padding is not zero or whose chained checksum is wrong. So a
//! crash at any byte leaves either the whole record (it was committed) or one
//! replay rejects, and nothing after it is read.
//!
//! Batches: the records of one batch carry the *more* flag, all but the
//! last. Replay applies a batch only when it reaches its last record, so a
//! crash anywhere inside a batch leaves none of it; appending then goes on
//! where the batch began, over its remains.
//!
//! Compaction (when a record does not fit): write the generation of the other
//! half into its superblock slot, zero that half, write the live set into it
//! as put records, fence, then flip the live-half byte. That byte store is
//! the commit of the compaction: it is a single byte, so it cannot tear (a
//! wider store through a byte slice might be split on strict-alignment
//! targets, and safe Rust cannot do an aligned atomic store into a `[u8]`).
//! A crash before the flip leaves the old half live and untouched.

use alloc::vec::Vec;
use axolotl_sdk::crc::{crc32, Crc32};
use axolotl_store_api::buffered::MAX_BUFFER_VALUE_LEN;
use axolotl_store_api::{MAX_KEY_LEN, MAX_VALUE_LEN};
use core::sync::atomic::{fence, Ordering};

/// The first four bytes of a formatted region.
pub const MAGIC: [u8; 4] = *b"AXJL";
/// The format version.
pub const VERSION: u16 = 1;
/// Bytes of the superblock, at the start of the region.
pub const SUPERBLOCK_LEN: usize = 64;
/// Bytes of a record header.
pub const RECORD_HEADER_LEN: usize = 16;
/// Header flag: more records of the same batch follow this one.
const FLAG_MORE: u8 = 1;
/// Bytes of the longest record whose value fits in a message.
pub const MAX_RECORD_LEN: usize = RECORD_HEADER_LEN + pad8(MAX_KEY_LEN + MAX_VALUE_LEN);
/// Bytes of the longest record of all (a value through a client's buffer).
pub const MAX_LARGE_RECORD_LEN: usize =
    RECORD_HEADER_LEN + pad8(MAX_KEY_LEN + MAX_BUFFER_VALUE_LEN);
/// The smallest region a journal fits in: each half holds the longest
/// record whose value fits in a message.
pub const MIN_REGION_LEN: usize = SUPERBLOCK_LEN + 2 * MAX_RECORD_LEN;
/// Halves are at most this long (offsets fit a `u32`).
const MAX_HALF_LEN: usize = 1 << 30;

/// Offset of the live-half byte.
const OFF_LIVE: usize = 16;
/// Offsets of the generation slots of the two halves.
const OFF_GENERATION: [usize; 2] = [24, 32];

const fn pad8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

/// Bytes that outlive the store's process. The journal bounds-checks every
/// access; an implementation ignores a write out of range.
pub trait Medium {
    /// The current contents.
    fn bytes(&self) -> &[u8];
    /// Stores `data` at `offset`, in order, byte by byte or wider.
    fn write(&mut self, offset: usize, data: &[u8]);
}

fn write_slice(dst: &mut [u8], offset: usize, data: &[u8]) {
    if let Some(dst) = offset
        .checked_add(data.len())
        .and_then(|end| dst.get_mut(offset..end))
    {
        dst.copy_from_slice(data);
    }
}

impl Medium for &mut [u8] {
    fn bytes(&self) -> &[u8] {
        self
    }
    fn write(&mut self, offset: usize, data: &[u8]) {
        write_slice(self, offset, data);
    }
}

impl Medium for Vec<u8> {
    fn bytes(&self) -> &[u8] {
        self
    }
    fn write(&mut self, offset: usize, data: &[u8]) {
        write_slice(self, offset, data);
    }
}

/// What a record does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// Set a key to a value.
    Put = 1,
    /// Remove a key.
    Delete = 2,
    /// A client watches a key (of its own namespace or one it may read):
    /// the key, and as the value the watched namespace's client index.
    Watch = 3,
}

/// One journal record; always within the protocol's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    kind: RecordKind,
    client: u8,
    key: &'a [u8],
    value: &'a [u8],
}

impl<'a> Record<'a> {
    /// A put, or `None` if the key or value is out of the limits.
    pub fn put(client: u8, key: &'a [u8], value: &'a [u8]) -> Option<Record<'a>> {
        let ok = (1..=MAX_KEY_LEN).contains(&key.len()) && value.len() <= MAX_BUFFER_VALUE_LEN;
        ok.then_some(Record {
            kind: RecordKind::Put,
            client,
            key,
            value,
        })
    }

    /// A watch by `client` of `key` in the namespace of client `ns` (as a
    /// one-byte value), or `None` if the key is out of the limits.
    pub fn watch(client: u8, key: &'a [u8], ns: &'a [u8; 1]) -> Option<Record<'a>> {
        (1..=MAX_KEY_LEN).contains(&key.len()).then_some(Record {
            kind: RecordKind::Watch,
            client,
            key,
            value: ns,
        })
    }

    /// A delete, or `None` if the key is out of the limits.
    pub fn delete(client: u8, key: &'a [u8]) -> Option<Record<'a>> {
        (1..=MAX_KEY_LEN).contains(&key.len()).then_some(Record {
            kind: RecordKind::Delete,
            client,
            key,
            value: &[],
        })
    }

    /// Put or delete.
    pub fn kind(&self) -> RecordKind {
        self.kind
    }
    /// The client's index in the store's client table.
    pub fn client(&self) -> u8 {
        self.client
    }
    /// The key.
    pub fn key(&self) -> &'a [u8] {
        self.key
    }
    /// The value (empty for a delete).
    pub fn value(&self) -> &'a [u8] {
        self.value
    }
    /// Bytes the record takes in the journal.
    pub fn encoded_len(&self) -> usize {
        RECORD_HEADER_LEN + pad8(self.key.len() + self.value.len())
    }
}

/// What [`Journal::attach`] found in the region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attached {
    /// A valid journal, replayed.
    Existing,
    /// All zeros (first boot); formatted.
    Blank,
    /// Neither a journal nor zeros; formatted, the old contents lost.
    Garbage,
    /// The region is smaller than [`MIN_REGION_LEN`]; nothing can be stored.
    TooSmall,
}

/// The live half has no room for the record; compact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoRoom;

/// The live set does not fit in a half: the journal cannot make room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

/// The journal over a [`Medium`].
pub struct Journal<M> {
    medium: M,
    /// Bytes per half; zero if the region is too small.
    half_len: usize,
    live: usize,
    generation: u32,
    /// Where the next record goes, from the start of the live half.
    tail: usize,
    next_seq: u32,
    /// The checksum the next record chains from.
    chain: u32,
    compactions: u64,
    attached: Attached,
}

fn u16_at(b: &[u8; SUPERBLOCK_LEN], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

fn u32_at(b: &[u8; SUPERBLOCK_LEN], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn generation_check(half: usize, generation: u32) -> u32 {
    crc32(&[b"gen", &[half as u8], &generation.to_le_bytes()])
}

fn chain_seed(half: usize, generation: u32) -> u32 {
    crc32(&[&MAGIC, &generation.to_le_bytes(), &[half as u8]])
}

fn half_len_for(region_len: usize) -> usize {
    if region_len < MIN_REGION_LEN {
        0
    } else {
        ((region_len - SUPERBLOCK_LEN) / 2 / 8 * 8).min(MAX_HALF_LEN)
    }
}

/// The superblock's bytes 0..16 for halves of `half_len` bytes.
fn superblock_head(half_len: usize) -> [u8; 16] {
    let mut head = [0u8; 16];
    head[..4].copy_from_slice(&MAGIC);
    head[4..6].copy_from_slice(&VERSION.to_le_bytes());
    head[8..12].copy_from_slice(&(half_len as u32).to_le_bytes());
    let crc = crc32(&[&head[..12]]);
    head[12..].copy_from_slice(&crc.to_le_bytes());
    head
}

/// A record as replay found it.
struct Parsed<'a> {
    record: Record<'a>,
    len: usize,
    crc: u32,
    /// More records of its batch follow.
    more: bool,
}

/// Parses the record at `off` of `half` if it is valid as record number
/// `seq` chained from `chain`.
fn parse_record(half: &[u8], off: usize, seq: u32, chain: u32) -> Option<Parsed<'_>> {
    let rest = half.get(off..)?;
    let h: &[u8; RECORD_HEADER_LEN] = rest.get(..RECORD_HEADER_LEN)?.try_into().ok()?;
    let crc = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    if u32::from_le_bytes([h[4], h[5], h[6], h[7]]) != seq || h[11] & !FLAG_MORE != 0 || h[15] != 0
    {
        return None;
    }
    let (client, key_len) = (h[9], h[10] as usize);
    let value_len = u16::from_le_bytes([h[12], h[13]]) as usize | (h[14] as usize) << 16;
    if !(1..=MAX_KEY_LEN).contains(&key_len) || value_len > MAX_BUFFER_VALUE_LEN {
        return None;
    }
    let len = RECORD_HEADER_LEN + pad8(key_len + value_len);
    let body = rest.get(RECORD_HEADER_LEN..len)?;
    let computed = Crc32::new()
        .update(&chain.to_le_bytes())
        .update(&h[4..])
        .update(body)
        .finish();
    if computed != crc || body.get(key_len + value_len..)?.iter().any(|&b| b != 0) {
        return None;
    }
    let key = body.get(..key_len)?;
    let value = body.get(key_len..key_len + value_len)?;
    let record = match h[8] {
        1 => Record::put(client, key, value)?,
        2 if value_len == 0 => Record::delete(client, key)?,
        3 if value_len == 1 => Record {
            kind: RecordKind::Watch,
            client,
            key,
            value,
        },
        _ => return None,
    };
    Some(Parsed {
        record,
        len,
        crc,
        more: h[11] & FLAG_MORE != 0,
    })
}

impl<M: Medium> Journal<M> {
    /// Attaches to the journal in `medium`, calling `apply` with every valid
    /// record of the live half, oldest first. A blank or garbage region is
    /// formatted (and logged); a region that is too small is logged and left
    /// alone, and then nothing fits in the journal.
    pub fn attach(medium: M, mut apply: impl FnMut(Record<'_>)) -> Journal<M> {
        let half_len = half_len_for(medium.bytes().len());
        let mut j = Journal {
            medium,
            half_len,
            live: 0,
            generation: 0,
            tail: 0,
            next_seq: 0,
            chain: 0,
            compactions: 0,
            attached: Attached::Existing,
        };
        if half_len == 0 {
            log::error!(
                "journal: region of {} bytes is below the minimum of {MIN_REGION_LEN}; nothing can be stored",
                j.medium.bytes().len()
            );
            j.attached = Attached::TooSmall;
            return j;
        }
        match j.read_superblock() {
            Some((live, generation)) => {
                j.live = live;
                j.generation = generation;
                j.replay(&mut apply);
            }
            None => {
                if j.medium.bytes().iter().all(|&b| b == 0) {
                    log::info!("journal: blank region, formatting");
                    j.attached = Attached::Blank;
                } else {
                    log::warn!("journal: the region holds no valid journal; reformatting (its contents are lost)");
                    j.attached = Attached::Garbage;
                }
                j.format();
            }
        }
        j
    }

    fn half_base(&self, half: usize) -> usize {
        SUPERBLOCK_LEN + half * self.half_len
    }

    fn half_bytes(&self, half: usize) -> &[u8] {
        let base = self.half_base(half);
        self.medium
            .bytes()
            .get(base..base + self.half_len)
            .unwrap_or(&[])
    }

    /// The live half and its generation, if the superblock is valid.
    fn read_superblock(&self) -> Option<(usize, u32)> {
        let sb: &[u8; SUPERBLOCK_LEN] =
            self.medium.bytes().get(..SUPERBLOCK_LEN)?.try_into().ok()?;
        if sb[..16] != superblock_head(self.half_len) || u16_at(sb, 6) != 0 {
            return None;
        }
        let live = sb[OFF_LIVE] as usize;
        let slot = *OFF_GENERATION.get(live)?;
        let generation = u32_at(sb, slot);
        (u32_at(sb, slot + 4) == generation_check(live, generation)).then_some((live, generation))
    }

    fn replay(&mut self, apply: &mut impl FnMut(Record<'_>)) {
        let (mut off, mut seq, mut chain) = (0, 0u32, chain_seed(self.live, self.generation));
        // Where the last complete batch (or lone record) ended.
        let mut committed = (off, seq, chain);
        let mut batch = Vec::new();
        let half = self.half_bytes(self.live);
        while let Some(p) = parse_record(half, off, seq, chain) {
            off += p.len;
            seq = seq.wrapping_add(1);
            chain = p.crc;
            batch.push(p.record);
            if !p.more {
                batch.drain(..).for_each(&mut *apply);
                committed = (off, seq, chain);
            }
        }
        if !batch.is_empty() {
            log::warn!(
                "journal: a batch of {} records was cut short by a crash; none of it applies",
                batch.len()
            );
        }
        let (off, seq, chain) = committed;
        log::info!(
            "journal: replayed {seq} records ({off} of {} bytes) of generation {} in half {}",
            self.half_len,
            self.generation,
            self.live
        );
        self.tail = off;
        self.next_seq = seq;
        self.chain = chain;
    }

    fn write_generation(&mut self, half: usize, generation: u32) {
        let mut slot = [0u8; 8];
        slot[..4].copy_from_slice(&generation.to_le_bytes());
        slot[4..].copy_from_slice(&generation_check(half, generation).to_le_bytes());
        self.medium.write(OFF_GENERATION[half & 1], &slot);
    }

    /// Zeroes `half`, skipping words that are zero already.
    fn zero_half(&mut self, half: usize) {
        let base = self.half_base(half);
        let mut off = 0;
        while off < self.half_len {
            let nonzero = self
                .medium
                .bytes()
                .get(base + off..base + off + 8)
                .is_some_and(|w| w.iter().any(|&b| b != 0));
            if nonzero {
                self.medium.write(base + off, &[0; 8]);
            }
            off += 8;
        }
    }

    fn format(&mut self) {
        // The magic goes first (so a crash leaves an unformatted region) and
        // comes back last.
        self.medium.write(0, &[0; SUPERBLOCK_LEN]);
        self.zero_half(0);
        self.write_generation(0, 0);
        self.medium.write(OFF_LIVE, &[0]);
        let head = superblock_head(self.half_len);
        self.medium.write(4, &head[4..]);
        fence(Ordering::Release);
        self.medium.write(0, &head[..4]);
        fence(Ordering::Release);
        self.live = 0;
        self.generation = 0;
        self.tail = 0;
        self.next_seq = 0;
        self.chain = chain_seed(0, 0);
    }

    /// Writes `record` at `off` of `half` as number `seq` chained from
    /// `chain`; returns its checksum. The caller checked that it fits.
    fn write_record(
        &mut self,
        half: usize,
        off: usize,
        seq: u32,
        chain: u32,
        record: &Record<'_>,
        more: bool,
    ) -> u32 {
        let len = record.encoded_len();
        let (klen, vlen) = (record.key.len(), record.value.len());
        let mut head = [0u8; RECORD_HEADER_LEN];
        head[4..8].copy_from_slice(&seq.to_le_bytes());
        head[8] = record.kind as u8;
        head[9] = record.client;
        head[10] = klen as u8;
        head[11] = if more { FLAG_MORE } else { 0 };
        head[12..14].copy_from_slice(&(vlen as u16).to_le_bytes());
        head[14] = (vlen >> 16) as u8;
        let padding = [0u8; 8];
        let pad = &padding[..len - RECORD_HEADER_LEN - klen - vlen];
        let crc = Crc32::new()
            .update(&chain.to_le_bytes())
            .update(&head[4..])
            .update(record.key)
            .update(record.value)
            .update(pad)
            .finish();
        let at = self.half_base(half) + off;
        self.medium.write(at + 4, &head[4..]);
        self.medium.write(at + RECORD_HEADER_LEN, record.key);
        self.medium
            .write(at + RECORD_HEADER_LEN + klen, record.value);
        self.medium.write(at + RECORD_HEADER_LEN + klen + vlen, pad);
        fence(Ordering::Release);
        self.medium.write(at, &crc.to_le_bytes());
        fence(Ordering::Release);
        crc
    }

    /// Appends `record` to the live half. Once this returns `Ok` the record
    /// survives any crash. [`NoRoom`] if the live half is full: compact.
    pub fn append(&mut self, record: &Record<'_>) -> Result<(), NoRoom> {
        self.append_batch(core::slice::from_ref(record))
    }

    /// Appends `records` as one batch: once this returns `Ok` all of them
    /// survive any crash; a crash before leaves none of them. [`NoRoom`]
    /// (with nothing written) if they do not all fit in the live half.
    pub fn append_batch(&mut self, records: &[Record<'_>]) -> Result<(), NoRoom> {
        let len = records
            .iter()
            .try_fold(0usize, |n, r| n.checked_add(r.encoded_len()))
            .ok_or(NoRoom)?;
        if records.is_empty() {
            return Ok(());
        }
        if self.half_len == 0 || self.tail + len > self.half_len {
            return Err(NoRoom);
        }
        let live = self.live;
        for (i, record) in records.iter().enumerate() {
            let more = i + 1 < records.len();
            let (tail, seq, chain) = (self.tail, self.next_seq, self.chain);
            self.chain = self.write_record(live, tail, seq, chain, record, more);
            self.tail += record.encoded_len();
            self.next_seq = seq.wrapping_add(1);
        }
        Ok(())
    }

    /// Replaces the journal by `live` (the whole state, as puts) written into
    /// the other half, which then becomes the live one. Once this returns
    /// `Ok` the new state survives any crash; a crash before leaves the old
    /// one. [`Full`] (with nothing written) if `live` does not fit in a half.
    pub fn compact<'r>(
        &mut self,
        live: impl Iterator<Item = Record<'r>> + Clone,
    ) -> Result<(), Full> {
        let need = live
            .clone()
            .try_fold(0usize, |n, r| n.checked_add(r.encoded_len()))
            .ok_or(Full)?;
        if self.half_len == 0 || need > self.half_len {
            return Err(Full);
        }
        let target = 1 - self.live;
        let generation = self.generation.wrapping_add(1);
        self.write_generation(target, generation);
        self.zero_half(target);
        let (mut off, mut seq, mut chain) = (0, 0u32, chain_seed(target, generation));
        for record in live {
            chain = self.write_record(target, off, seq, chain, &record, false);
            off += record.encoded_len();
            seq = seq.wrapping_add(1);
        }
        fence(Ordering::Release);
        // The commit of the compaction: one byte.
        self.medium.write(OFF_LIVE, &[target as u8]);
        fence(Ordering::Release);
        self.live = target;
        self.generation = generation;
        self.tail = off;
        self.next_seq = seq;
        self.chain = chain;
        self.compactions += 1;
        log::info!(
            "journal: compacted {seq} records ({off} of {} bytes) into half {target}, generation {generation}",
            self.half_len
        );
        Ok(())
    }

    /// Bytes in each half (zero if the region is too small).
    pub fn half_len(&self) -> usize {
        self.half_len
    }
    /// Bytes used in the live half.
    pub fn used(&self) -> usize {
        self.tail
    }
    /// Records in the live half.
    pub fn records(&self) -> u32 {
        self.next_seq
    }
    /// The live half (0 or 1).
    pub fn live_half(&self) -> usize {
        self.live
    }
    /// The live half's generation.
    pub fn generation(&self) -> u32 {
        self.generation
    }
    /// Compactions since attach.
    pub fn compactions(&self) -> u64 {
        self.compactions
    }
    /// What attach found.
    pub fn attached(&self) -> Attached {
        self.attached
    }
    /// The medium.
    pub fn medium(&self) -> &M {
        &self.medium
    }
    /// Gives the medium back.
    pub fn into_medium(self) -> M {
        self.medium
    }
}
