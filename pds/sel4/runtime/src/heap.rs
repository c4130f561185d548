//! The PD's heap: dlmalloc over a static block of memory that a reset does
//! not clear.
//!
//! `sel4-microkit`'s `heap_size` puts the heap in `.bss`, and a reset
//! (`sel4-reset`) writes all of `.bss` to zero before the PD starts again:
//! 8 MiB for TCP, 1 MiB for most network PDs, every restart, most of the
//! time a restart took on QEMU. Nothing needs that memory to be zero. The
//! block lives in `.persistent.heap`, which a reset leaves alone, while the
//! allocator's own state (dlmalloc's bins and the block's watermark) is an
//! ordinary static that a reset restores: a new incarnation starts with an
//! empty heap, and no pointer of the old one survives to reach its bytes.
//! The block tells dlmalloc that it does *not* hand out zeroes, so memory
//! asked for zeroed (`vec![0; n]`) is cleared as it is handed out, and only
//! that: a PD pays for what it uses, not for the size of its heap.
//!
//! ```ignore
//! axolotl_sel4::declare_heap!(0x100000);
//! ```

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// dlmalloc's source of memory: the block, handed out from its start up.
struct Block {
    /// Where the block starts (a symbol's address: a function, because a
    /// static's initialiser cannot take an extern symbol's).
    base: fn() -> *mut u8,
    size: usize,
    /// Bytes of the block dlmalloc has taken.
    taken: AtomicUsize,
}

// SAFETY: the block is static memory; `taken` is atomic.
unsafe impl Send for Block {}

// SAFETY: `alloc` hands out disjoint parts of a static block; nothing is
// ever given back (`free` and `free_part` say so), and `allocates_zeros`
// is false, so dlmalloc clears what it hands out zeroed itself.
unsafe impl dlmalloc::Allocator for Block {
    fn alloc(&self, size: usize) -> (*mut u8, usize, u32) {
        let start = self.taken.load(Ordering::Relaxed);
        match start.checked_add(size) {
            Some(end) if end <= self.size => {
                self.taken.store(end, Ordering::Relaxed);
                ((self.base)().wrapping_add(start), size, 0)
            }
            _ => (ptr::null_mut(), 0, 0),
        }
    }

    fn remap(&self, _ptr: *mut u8, _old: usize, _new: usize, _can_move: bool) -> *mut u8 {
        ptr::null_mut()
    }

    fn free_part(&self, _ptr: *mut u8, _old: usize, _new: usize) -> bool {
        false
    }

    fn free(&self, _ptr: *mut u8, _size: usize) -> bool {
        false
    }

    fn can_release_part(&self, _flags: u32) -> bool {
        false
    }

    fn allocates_zeros(&self) -> bool {
        // The block keeps what an earlier incarnation wrote into it.
        false
    }

    fn page_size(&self) -> usize {
        4096
    }
}

/// The global allocator [`declare_heap!`] declares.
pub struct Heap {
    dl: UnsafeCell<dlmalloc::Dlmalloc<Block>>,
    busy: AtomicBool,
}

// SAFETY: every access to `dl` holds `busy`.
unsafe impl Sync for Heap {}

impl Heap {
    /// A heap over `size` bytes at `base()`, which nothing else uses.
    pub const fn new(base: fn() -> *mut u8, size: usize) -> Heap {
        Heap {
            dl: UnsafeCell::new(dlmalloc::Dlmalloc::new_with_allocator(Block {
                base,
                size,
                taken: AtomicUsize::new(0),
            })),
            busy: AtomicBool::new(false),
        }
    }

    /// Runs `f` on dlmalloc, or returns `None` if it is in use already: the
    /// PD is single-threaded, so that is an allocation from a fault or
    /// panic inside the allocator, which fails rather than corrupt it.
    fn with<R>(&self, f: impl FnOnce(&mut dlmalloc::Dlmalloc<Block>) -> R) -> Option<R> {
        if self.busy.swap(true, Ordering::Acquire) {
            return None;
        }
        // SAFETY: `busy` was false and is now ours: no other reference.
        let r = f(unsafe { &mut *self.dl.get() });
        self.busy.store(false, Ordering::Release);
        Some(r)
    }
}

// SAFETY: dlmalloc's contract is GlobalAlloc's; `with` serialises it.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded under the lock.
        self.with(|d| unsafe { d.malloc(l.size(), l.align()) })
            .unwrap_or(ptr::null_mut())
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded under the lock.
        self.with(|d| unsafe { d.calloc(l.size(), l.align()) })
            .unwrap_or(ptr::null_mut())
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded under the lock; if it is busy, the block leaks.
        self.with(|d| unsafe { d.free(p, l.size(), l.align()) });
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // SAFETY: forwarded under the lock.
        self.with(|d| unsafe { d.realloc(p, l.size(), l.align(), new) })
            .unwrap_or(ptr::null_mut())
    }
}

/// Declares the PD's heap of `$size` bytes and makes it the global
/// allocator (instead of `protection_domain`'s `heap_size`). The block is
/// `.persistent.heap`, given no bytes in the image (`nobits`: a Rust static
/// with an explicit section would be written out as 8 MiB of zeroes).
#[macro_export]
macro_rules! declare_heap {
    ($size:expr) => {
        const _: () = {
            ::core::arch::global_asm!(
                ".pushsection .persistent.heap, \"aw\", %nobits",
                ".balign 4096",
                ".global __axolotl_heap",
                "__axolotl_heap:",
                ".space {size}",
                ".popsection",
                size = const $size,
            );

            unsafe extern "C" {
                static mut __axolotl_heap: [u8; 0];
            }

            fn base() -> *mut u8 {
                // SAFETY: only the address is taken; the heap owns the bytes.
                unsafe { (&raw mut __axolotl_heap).cast() }
            }

            #[global_allocator]
            static HEAP: $crate::heap::Heap = $crate::heap::Heap::new(base, $size);
        };
    };
}
