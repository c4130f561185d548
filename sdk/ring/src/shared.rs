//! Plain bytes in memory that another PD may write at any moment (a
//! store client's value buffer): copied in and out with volatile accesses,
//! never seen through a Rust reference.

/// A shared byte area. Every copy is bounds-checked.
pub struct SharedBytes {
    base: *mut u8,
    len: usize,
    /// Mapped writable: [`SharedBytes::copy_in`] refuses otherwise.
    writable: bool,
}

// SAFETY: the area is plain memory a PD has mapped for its whole life; the
// type only copies bytes in and out with volatile accesses.
unsafe impl Send for SharedBytes {}

impl SharedBytes {
    /// The `len` bytes at `base`.
    ///
    /// # Safety
    /// `base..base + len` must stay mapped read-write for the life of the
    /// result. Other PDs may write it at any time.
    pub unsafe fn new(base: *mut u8, len: usize) -> SharedBytes {
        SharedBytes {
            base,
            len,
            writable: true,
        }
    }

    /// The `len` bytes at `base`, mapped read-only: every
    /// [`SharedBytes::copy_in`] fails.
    ///
    /// # Safety
    /// `base..base + len` must stay mapped readable for the life of the
    /// result. Other PDs may write it at any time.
    pub unsafe fn read_only(base: *const u8, len: usize) -> SharedBytes {
        SharedBytes {
            base: base.cast_mut(),
            len,
            writable: false,
        }
    }

    /// Its size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `out.len()` bytes from `offset` into `out`; `false` (and
    /// nothing copied) if that range is not inside.
    pub fn copy_out(&self, offset: usize, out: &mut [u8]) -> bool {
        if offset
            .checked_add(out.len())
            .is_none_or(|end| end > self.len)
        {
            return false;
        }
        for (i, b) in out.iter_mut().enumerate() {
            // SAFETY: `offset + i < len`, inside the mapped area; a
            // volatile load of a byte is valid whatever the peer writes.
            *b = unsafe { self.base.add(offset + i).read_volatile() };
        }
        true
    }

    /// Copies `data` to `offset`; `false` (and nothing copied) if that
    /// range is not inside, or the area is read-only.
    pub fn copy_in(&mut self, offset: usize, data: &[u8]) -> bool {
        if !self.writable
            || offset
                .checked_add(data.len())
                .is_none_or(|end| end > self.len)
        {
            return false;
        }
        for (i, &b) in data.iter().enumerate() {
            // SAFETY: as for copy_out; the area is mapped writable.
            unsafe { self.base.add(offset + i).write_volatile(b) };
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_stay_inside() {
        let mut mem = [0u8; 16];
        // SAFETY: `mem` outlives `s` and nothing else touches it meanwhile.
        let mut s = unsafe { SharedBytes::new(mem.as_mut_ptr(), mem.len()) };
        assert!(s.copy_in(4, b"abcd"));
        let mut out = [0u8; 4];
        assert!(s.copy_out(4, &mut out));
        assert_eq!(&out, b"abcd");
        assert!(!s.copy_in(14, b"abc"));
        assert!(!s.copy_out(usize::MAX, &mut out));
        assert!(!s.copy_out(13, &mut out));
        assert!(s.copy_out(12, &mut out));
        assert_eq!(&mem[4..8], b"abcd");
        // SAFETY: as above.
        let mut r = unsafe { SharedBytes::read_only(mem.as_ptr(), mem.len()) };
        assert!(!r.copy_in(0, b"x"), "a read-only area takes no writes");
        assert!(r.copy_out(4, &mut out));
        assert_eq!(&out, b"abcd");
    }
}
