//! A byte stream in shared memory from one PD to another: a console line,
//! a command. Single producer, single consumer.
//!
//! | offset | field           | written by |
//! |--------|-----------------|------------|
//! | 0      | `written` (u32) | writer     |
//! | 32     | `read` (u32)    | reader     |
//! | 64     | data            | writer     |
//!
//! Both counters run freely (wrapping); byte `n` of the stream lives at
//! `64 + n % capacity`. The writer never overwrites unread bytes: when the
//! stream is full, [`ByteWriter::write`] takes what fits and says how much.
//! Each side checks what the other wrote: a reader that finds more unread
//! bytes than fit (a broken or hostile writer) skips to the writer's
//! position and counts it, and a writer that finds the reader ahead of it
//! treats the stream as empty. Neither ever reads or writes outside the
//! region.

use crate::sync::{AtomicU32, Ordering};
use core::ptr::NonNull;

const HEADER: usize = 64;
const READ_OFFSET: usize = 32;

/// Why a region cannot hold a byte stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamError {
    /// Smaller than the header plus one byte, or larger than 2^31 bytes.
    BadSize(usize),
    /// Not 4-byte aligned.
    Misaligned,
}

struct Stream {
    base: NonNull<u8>,
    capacity: u32,
}

impl Stream {
    /// # Safety
    /// As for [`ByteWriter::attach`].
    unsafe fn attach(base: *mut u8, size: usize) -> Result<Stream, StreamError> {
        if size <= HEADER || size > (1 << 31) {
            return Err(StreamError::BadSize(size));
        }
        let base = NonNull::new(base).ok_or(StreamError::Misaligned)?;
        if (base.as_ptr() as usize) & 3 != 0 {
            return Err(StreamError::Misaligned);
        }
        Ok(Stream {
            base,
            capacity: (size - HEADER) as u32,
        })
    }

    fn counter(&self, offset: usize) -> &AtomicU32 {
        // SAFETY: attach checked the region holds the header and is 4-byte
        // aligned; the caller of attach keeps it mapped; the counters are
        // only ever accessed as atomics by both sides.
        unsafe { &*(self.base.as_ptr().add(offset) as *const AtomicU32) }
    }

    fn data(&self, n: u32) -> *mut u8 {
        // SAFETY: the index is reduced modulo the capacity, so the byte is
        // inside the region attach checked.
        unsafe {
            self.base
                .as_ptr()
                .add(HEADER + (n % self.capacity) as usize)
        }
    }
}

/// The writing end.
pub struct ByteWriter {
    s: Stream,
}

// SAFETY: a stream end owns its view of the region (attach's contract: the
// only writer, or the only reader, for as long as it lives), and the other
// side is another PD already, so moving an end to another thread of this
// one changes nothing.
unsafe impl Send for ByteWriter {}
// SAFETY: as for ByteWriter.
unsafe impl Send for ByteReader {}

impl ByteWriter {
    /// The writing end of the stream in `size` bytes at `base`. Keeps the
    /// stream's contents (a restarted writer carries on).
    ///
    /// # Safety
    /// `base..base + size` must stay mapped read-write for the life of the
    /// result, and this must be the stream's only writer. The reader may
    /// be any PD, hostile or not.
    pub unsafe fn attach(base: *mut u8, size: usize) -> Result<ByteWriter, StreamError> {
        // SAFETY: passed on from the caller.
        let s = unsafe { Stream::attach(base, size)? };
        Ok(ByteWriter { s })
    }

    /// Bytes the stream can hold.
    pub fn capacity(&self) -> usize {
        self.s.capacity as usize
    }

    /// Bytes that can be written now without waiting for the reader.
    pub fn room(&self) -> usize {
        let written = self.s.counter(0).load(Ordering::Relaxed);
        let read = self.s.counter(READ_OFFSET).load(Ordering::Acquire);
        let unread = written.wrapping_sub(read);
        // A reader ahead of the writer, or claiming more than was written:
        // take the stream as empty.
        let unread = if unread > self.s.capacity { 0 } else { unread };
        (self.s.capacity - unread) as usize
    }

    /// Appends as much of `bytes` as fits and returns how much that was.
    pub fn write(&mut self, bytes: &[u8]) -> usize {
        let written = self.s.counter(0).load(Ordering::Relaxed);
        let n = bytes.len().min(self.room());
        for (i, &b) in bytes[..n].iter().enumerate() {
            // SAFETY: data() keeps the byte inside the region; the reader
            // does not read bytes past `written`, which is published below.
            unsafe {
                self.s
                    .data(written.wrapping_add(i as u32))
                    .write_volatile(b)
            };
        }
        self.s
            .counter(0)
            .store(written.wrapping_add(n as u32), Ordering::Release);
        n
    }

    /// Whether everything written has been read.
    pub fn drained(&self) -> bool {
        self.s.counter(0).load(Ordering::Relaxed)
            == self.s.counter(READ_OFFSET).load(Ordering::Acquire)
    }
}

/// The reading end.
pub struct ByteReader {
    s: Stream,
    skipped: u64,
}

impl ByteReader {
    /// The reading end of the stream in `size` bytes at `base`.
    ///
    /// # Safety
    /// `base..base + size` must stay mapped read-write for the life of the
    /// result, and this must be the stream's only reader. The writer may be
    /// any PD, hostile or not.
    pub unsafe fn attach(base: *mut u8, size: usize) -> Result<ByteReader, StreamError> {
        // SAFETY: passed on from the caller.
        let s = unsafe { Stream::attach(base, size)? };
        Ok(ByteReader { s, skipped: 0 })
    }

    /// Reads up to `out.len()` bytes and returns how many.
    pub fn read(&mut self, out: &mut [u8]) -> usize {
        let written = self.s.counter(0).load(Ordering::Acquire);
        let mut read = self.s.counter(READ_OFFSET).load(Ordering::Relaxed);
        let mut unread = written.wrapping_sub(read);
        if unread > self.s.capacity {
            // Impossible for an honest writer: skip to where it is.
            self.skipped += 1;
            read = written;
            unread = 0;
        }
        let n = out.len().min(unread as usize);
        for (i, o) in out[..n].iter_mut().enumerate() {
            // SAFETY: data() keeps the byte inside the region.
            *o = unsafe { self.s.data(read.wrapping_add(i as u32)).read_volatile() };
        }
        self.s
            .counter(READ_OFFSET)
            .store(read.wrapping_add(n as u32), Ordering::Release);
        n
    }

    /// Times the writer's counter was impossible and the reader skipped.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn region(size: usize) -> Vec<u32> {
        vec![0u32; size / 4]
    }

    #[test]
    fn bytes_come_out_in_order_across_the_wrap() {
        let mut mem = region(64 + 16);
        let base = mem.as_mut_ptr() as *mut u8;
        // SAFETY: mem outlives both ends; one writer, one reader.
        let (mut w, mut r) = unsafe {
            (
                ByteWriter::attach(base, 80).unwrap(),
                ByteReader::attach(base, 80).unwrap(),
            )
        };
        assert_eq!(w.capacity(), 16);
        let mut seen = Vec::new();
        let mut next = 0u8;
        for round in 0..50 {
            let chunk: Vec<u8> = (0..(round % 7 + 1)).map(|i| next.wrapping_add(i)).collect();
            let n = w.write(&chunk);
            next = next.wrapping_add(n as u8);
            let mut buf = [0u8; 5];
            let got = r.read(&mut buf);
            seen.extend_from_slice(&buf[..got]);
        }
        let mut buf = [0u8; 32];
        let got = r.read(&mut buf);
        seen.extend_from_slice(&buf[..got]);
        assert!(w.drained());
        let expect: Vec<u8> = (0..seen.len()).map(|i| i as u8).collect();
        assert_eq!(seen, expect);
        assert!(seen.len() > 16 * 3, "the stream wrapped several times");
    }

    #[test]
    fn a_full_stream_takes_only_what_fits() {
        let mut mem = region(64 + 8);
        let base = mem.as_mut_ptr() as *mut u8;
        // SAFETY: as above.
        let (mut w, mut r) = unsafe {
            (
                ByteWriter::attach(base, 72).unwrap(),
                ByteReader::attach(base, 72).unwrap(),
            )
        };
        assert_eq!(w.room(), 8);
        assert_eq!(w.write(b"0123456789"), 8);
        assert_eq!(w.room(), 0);
        assert_eq!(w.write(b"x"), 0);
        let mut buf = [0u8; 3];
        assert_eq!(r.read(&mut buf), 3);
        assert_eq!(&buf, b"012");
        assert_eq!(w.write(b"abcd"), 3);
        let mut rest = [0u8; 16];
        let n = r.read(&mut rest);
        assert_eq!(&rest[..n], b"34567abc");
    }

    #[test]
    fn hostile_counters_never_reach_outside_the_region() {
        let mut mem = region(64 + 8);
        let base = mem.as_mut_ptr() as *mut u8;
        // SAFETY: as above.
        let (mut w, mut r) = unsafe {
            (
                ByteWriter::attach(base, 72).unwrap(),
                ByteReader::attach(base, 72).unwrap(),
            )
        };
        // The writer claims a million bytes.
        mem[0] = 1_000_000;
        let mut buf = [0u8; 64];
        assert_eq!(r.read(&mut buf), 0);
        assert_eq!(r.skipped(), 1);
        // The reader claims to be ahead of the writer.
        mem[8] = mem[0].wrapping_add(5);
        assert_eq!(w.write(b"abc"), 3);
        for _ in 0..100 {
            mem[0] = mem[0].wrapping_mul(2_654_435_761).wrapping_add(7);
            mem[8] = mem[8].wrapping_mul(40_503).wrapping_add(3);
            let _ = w.write(b"0123456789");
            let _ = r.read(&mut buf);
        }
    }

    #[test]
    fn bad_regions_are_refused() {
        let mut mem = region(128);
        let base = mem.as_mut_ptr() as *mut u8;
        // SAFETY: attach only checks the arguments here.
        unsafe {
            assert_eq!(
                ByteWriter::attach(base, 64).err(),
                Some(StreamError::BadSize(64))
            );
            assert_eq!(
                ByteReader::attach(base.add(1), 100).err(),
                Some(StreamError::Misaligned)
            );
            assert!(ByteReader::attach(core::ptr::null_mut(), 100).is_err());
        }
    }
}
