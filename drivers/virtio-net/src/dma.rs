//! The DMA window: one memory region that the device may read and write,
//! whose physical address system.xml gives (`<setvar region_paddr>`), and
//! the device-register window a PCI device's BARs are placed in.
//!
//! virtio-drivers asks its [`Hal`](virtio_drivers::Hal) for memory by
//! static functions, so the windows are statics, set once by
//! [`init`] (and [`set_mmio_window`]) before the device is touched. The
//! queues and every packet buffer are carved out of the DMA window by a bump
//! allocator that never frees: a restarted driver starts with fresh
//! statics, sets the windows again and allocates from the start.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use virtio_drivers::{BufferDirection, PhysAddr, PAGE_SIZE};

/// A window of memory known both by its address here and by its physical
/// address.
struct Window {
    vaddr: AtomicUsize,
    paddr: AtomicU64,
    size: AtomicUsize,
}

impl Window {
    const fn new() -> Self {
        Window {
            vaddr: AtomicUsize::new(0),
            paddr: AtomicU64::new(0),
            size: AtomicUsize::new(0),
        }
    }

    fn set(&self, vaddr: usize, paddr: u64, size: usize) {
        self.vaddr.store(vaddr, Ordering::Relaxed);
        self.paddr.store(paddr, Ordering::Relaxed);
        self.size.store(size, Ordering::Relaxed);
    }

    fn get(&self) -> (usize, u64, usize) {
        (
            self.vaddr.load(Ordering::Relaxed),
            self.paddr.load(Ordering::Relaxed),
            self.size.load(Ordering::Relaxed),
        )
    }

    /// The physical address of `len` bytes at `vaddr`, if all of them are
    /// inside the window.
    fn to_phys(&self, vaddr: usize, len: usize) -> Option<u64> {
        let (base, pbase, size) = self.get();
        let off = vaddr.checked_sub(base)?;
        (size != 0 && off.checked_add(len)? <= size).then(|| pbase + off as u64)
    }

    /// The address here of `len` bytes at physical `paddr`, if all of them
    /// are inside the window.
    fn to_virt(&self, paddr: u64, len: usize) -> Option<usize> {
        let (base, pbase, size) = self.get();
        let off = usize::try_from(paddr.checked_sub(pbase)?).ok()?;
        (size != 0 && off.checked_add(len)? <= size).then(|| base + off)
    }
}

static DMA: Window = Window::new();
static MMIO: Window = Window::new();
/// Bytes of the DMA window handed out so far.
static USED: AtomicUsize = AtomicUsize::new(0);

/// Makes `size` bytes at `vaddr` (physical address `paddr`) the DMA window,
/// with nothing allocated in it yet.
///
/// # Safety
/// The memory must be mapped read-write at `vaddr`, be physically
/// contiguous at `paddr`, stay so for the life of the program, and be used
/// by nothing but this module's allocations. Nothing allocated from an
/// earlier window may still be in use.
pub unsafe fn init(vaddr: usize, paddr: u64, size: usize) {
    USED.store(0, Ordering::Relaxed);
    DMA.set(vaddr, paddr, size);
}

/// Makes `size` bytes at `vaddr` the place where device registers at
/// physical `paddr` are mapped (a PCI device's BARs).
///
/// # Safety
/// The device memory must be mapped uncached at `vaddr` for the life of the
/// program, and nothing else may use it.
pub unsafe fn set_mmio_window(vaddr: usize, paddr: u64, size: usize) {
    MMIO.set(vaddr, paddr, size);
}

/// Bytes left in the DMA window.
pub fn free_bytes() -> usize {
    DMA.get().2.saturating_sub(USED.load(Ordering::Relaxed))
}

/// `len` zeroed bytes of the DMA window aligned to `align` (a power of
/// two), with their physical address; `None` when the window is full.
pub fn alloc(len: usize, align: usize) -> Option<(u64, NonNull<u8>)> {
    let (base, pbase, size) = DMA.get();
    let used = USED.load(Ordering::Relaxed);
    let start = (base.checked_add(used)?.checked_add(align - 1)? & !(align - 1)) - base;
    let end = start.checked_add(len)?;
    if size == 0 || end > size {
        return None;
    }
    USED.store(end, Ordering::Relaxed);
    let ptr = (base + start) as *mut u8;
    // SAFETY: `init`'s caller guarantees that the window is mapped
    // read-write and used by nothing else; [start, end) lies inside it and
    // was never handed out before (the bump pointer only grows).
    unsafe { ptr.write_bytes(0, len) };
    Some((pbase + start as u64, NonNull::new(ptr)?))
}

/// `count` zeroed buffers of `N` bytes in the DMA window (cache-line
/// aligned), for the life of the program.
pub fn alloc_buffers<const N: usize>(count: usize) -> Option<&'static mut [[u8; N]]> {
    let len = N.checked_mul(count)?;
    let (_, ptr) = alloc(len, 64)?;
    // SAFETY: `alloc` returned `len` zeroed bytes (a valid `[[u8; N]]` of
    // `count`), handed out to nobody else, in a window that lives for the
    // program; byte arrays need no alignment.
    Some(unsafe { core::slice::from_raw_parts_mut(ptr.as_ptr().cast::<[u8; N]>(), count) })
}

/// The physical address of `len` bytes at `vaddr` in the DMA window.
pub fn to_phys(vaddr: usize, len: usize) -> Option<u64> {
    DMA.to_phys(vaddr, len)
}

/// virtio-drivers' view of the platform: DMA memory from the window, device
/// registers in the MMIO window, and buffers shared in place (every buffer
/// the driver gives the device lives in the DMA window).
pub struct Hal;

// SAFETY: dma_alloc returns zeroed, page-aligned memory of the window that
// nothing else uses (bump allocation); mmio_phys_to_virt returns addresses
// inside the mapped MMIO window only; share returns the physical address of
// memory inside the DMA window, which is physically contiguous.
unsafe impl virtio_drivers::Hal for Hal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        match pages
            .checked_mul(PAGE_SIZE)
            .and_then(|len| alloc(len, PAGE_SIZE))
        {
            Some(got) => got,
            None => {
                log::error!(
                    "DMA window full: {pages} pages asked, {} bytes free",
                    free_bytes()
                );
                // A zero physical address is virtio-drivers' "no memory".
                (0, NonNull::dangling())
            }
        }
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, _vaddr: NonNull<u8>, _pages: usize) -> i32 {
        // Never reused: the driver keeps its queues for its life.
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        match MMIO
            .to_virt(paddr, size)
            .and_then(|v| NonNull::new(v as *mut u8))
        {
            Some(v) => v,
            None => panic!(
                "device registers at {paddr:#x} (+{size:#x}) are outside the window system.xml maps"
            ),
        }
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        let vaddr = buffer.as_ptr().cast::<u8>() as usize;
        match to_phys(vaddr, buffer.len()) {
            Some(p) => p,
            // Only this crate gives virtio-drivers buffers, all from the
            // window: anything else is a bug here, not bad input.
            None => panic!("buffer at {vaddr:#x} is outside the DMA window"),
        }
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {
        // Shared in place: nothing to copy back.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test touches the statics, so that tests running at once cannot
    /// disturb each other.
    #[test]
    fn windows_translate_and_allocate() {
        #[repr(C, align(4096))]
        struct Page([u8; PAGE_SIZE]);
        let mut pages: Vec<Page> = (0..5).map(|_| Page([0xaa; PAGE_SIZE])).collect();
        // SAFETY: the pages are contiguous initialised bytes; 4 pages and
        // 100 bytes of them are taken.
        let mem = unsafe {
            core::slice::from_raw_parts_mut(pages.as_mut_ptr().cast::<u8>(), 4 * PAGE_SIZE + 100)
        };
        let base = mem.as_mut_ptr() as usize;
        let pbase = 0x4000_0000;
        // SAFETY: `mem` outlives every use below and nothing else uses it.
        unsafe { init(base, pbase, mem.len()) };

        // Translation: inside, at the edge, past the edge, before the start.
        assert_eq!(to_phys(base, 1), Some(pbase));
        assert_eq!(to_phys(base + 10, mem.len() - 10), Some(pbase + 10));
        assert_eq!(to_phys(base + 10, mem.len() - 9), None);
        assert_eq!(to_phys(base - 1, 1), None);
        assert_eq!(to_phys(usize::MAX, 2), None);

        // Allocation: aligned, zeroed, never overlapping, refused when full.
        let (p1, v1) = alloc(10, 1).unwrap();
        assert_eq!((p1, v1.as_ptr() as usize), (pbase, base));
        let (p2, v2) = alloc(PAGE_SIZE, 64).unwrap();
        assert_eq!(p2, pbase + 64);
        assert_eq!(v2.as_ptr() as usize, base + 64);
        assert!(mem[64..64 + PAGE_SIZE].iter().all(|&b| b == 0));
        assert_eq!(mem[10], 0xaa, "bytes between allocations are untouched");
        assert_eq!(free_bytes(), mem.len() - 64 - PAGE_SIZE);
        let (p3, _) = <Hal as virtio_drivers::Hal>::dma_alloc(2, BufferDirection::Both);
        assert_eq!(p3 % PAGE_SIZE as u64, 0);
        assert!(p3 >= pbase + 64 + PAGE_SIZE as u64);
        // More than is left: refused, with virtio-drivers' zero address.
        let (p4, _) = <Hal as virtio_drivers::Hal>::dma_alloc(4, BufferDirection::Both);
        assert_eq!(p4, 0);
        assert!(alloc(free_bytes() + 1, 1).is_none());
        let s = alloc_buffers::<16>(2).unwrap();
        assert_eq!(s, &[[0u8; 16]; 2]);

        // Sharing a buffer in the window gives its physical address.
        let buf = NonNull::slice_from_raw_parts(v2, 100);
        // SAFETY: the buffer is inside `mem`.
        let shared = unsafe { <Hal as virtio_drivers::Hal>::share(buf, BufferDirection::Both) };
        assert_eq!(shared, p2);

        // The MMIO window translates physical to virtual, and only inside.
        let regs = vec![0u8; 0x4000];
        // SAFETY: `regs` outlives the translations below.
        unsafe { set_mmio_window(regs.as_ptr() as usize, 0xc000_0000, regs.len()) };
        assert_eq!(
            MMIO.to_virt(0xc000_1000, 0x1000),
            Some(regs.as_ptr() as usize + 0x1000)
        );
        assert_eq!(MMIO.to_virt(0xc000_1000, 0x3001), None);
        assert_eq!(MMIO.to_virt(0xbfff_ffff, 1), None);

        // A new window starts empty.
        // SAFETY: as for the first.
        unsafe { init(base, pbase, mem.len()) };
        assert_eq!(free_bytes(), mem.len());
    }
}
