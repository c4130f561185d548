//! The `garbage` and `corrupt` faults on seL4 (see `axolotl-swifi`), which
//! the PD carries on after. Its parent suspends the PD's thread, keeps its
//! registers, and starts it at `axolotl_inject_swifi` (on a stack of its
//! own, like the other injection entries) with the kind and the bits in
//! the first two argument registers; the entry does the damage and ends in
//! a trap, on which the parent puts the registers back and resumes the
//! thread where it was (a system call it was blocked in is made again, as
//! after any suspend and resume). Nothing here allocates or takes a lock:
//! the PD may have been stopped anywhere, in its allocator too.

use axolotl_sdk::config::{LinkConfig, RingConfig};
use axolotl_sdk::InjectKind;
use axolotl_swifi::Rng;
use core::cell::UnsafeCell;

/// The kind codes the parent passes in the first argument register.
pub(crate) const GARBAGE: usize = 1;
pub(crate) const CORRUPT: usize = 2;

/// The code of a kind the PD carries on after, and its bits.
pub(crate) fn code(kind: InjectKind) -> Option<(usize, usize)> {
    match kind {
        InjectKind::Garbage => Some((GARBAGE, 0)),
        InjectKind::Corrupt(bits) => Some((CORRUPT, bits as usize)),
        _ => None,
    }
}

struct Wiring(UnsafeCell<(&'static [RingConfig], &'static [LinkConfig])>);

// SAFETY: a PD has one thread; the cell is written once, in `adapt`, before
// anything can start the thread at an injection entry, and only read after.
unsafe impl Sync for Wiring {}

static WIRING: Wiring = Wiring(UnsafeCell::new((&[], &[])));

/// Keeps the rings and links the PD is an end of, for `garbage`.
pub(crate) fn keep(rings: &'static [RingConfig], links: &'static [LinkConfig]) {
    // SAFETY: see `Wiring`: called once, from `adapt`, before any read.
    unsafe { *WIRING.0.get() = (rings, links) };
}

fn rng() -> Rng {
    Rng::new(crate::clock::now_ns() ^ 0x5f1f_1000)
}

/// Does the fault `code` says, with `bits` for `corrupt`.
pub(crate) fn run(code: usize, bits: usize) {
    match code {
        GARBAGE => garbage(),
        CORRUPT => corrupt(bits as u32),
        _ => log::warn!("fault injection: unknown kind {code}"),
    }
}

fn garbage() {
    // SAFETY: see `Wiring`.
    let (rings, links) = unsafe { *WIRING.0.get() };
    let mut rng = rng();
    // The thread was stopped: a buffer it was filling stays as it is.
    let filling = axolotl_ring::FILLING.load(core::sync::atomic::Ordering::Relaxed);
    let (mut rings_hit, mut published, mut buffers) = (0, 0, 0);
    let mut notified = axolotl_sdk::ChannelSet::EMPTY;
    for (t, ch) in axolotl_swifi::targets(rings, links) {
        // SAFETY: each target is a ring this PD produces (and, for a
        // sender, the pool it fills), at the address system.xml maps it
        // here, writable, for the life of the PD (the generated wiring
        // says so; `targets` keeps only producing ends).
        let s = unsafe { axolotl_swifi::scribble(&t, filling, &mut rng) };
        rings_hit += 1;
        published += s.published;
        buffers += s.buffers;
        notified.insert(ch);
    }
    log::warn!(
        "garbage: {published} random descriptors published on {rings_hit} rings, {buffers} pool \
         buffers overwritten"
    );
    // A PD gone wrong may well notify too: the neighbours look at once.
    for ch in notified.iter() {
        crate::signal(sel4_microkit::Channel::new(ch.index() as usize));
    }
}

/// Areas at most: the writable segments of a PD's ELF, split around the
/// injection stack.
const MAX_AREAS: usize = 8;

/// Flips `bits` random bits of the zero-initialised part of the PD's
/// writable segments: `.bss`, which holds its heap, its stacks and every
/// static that starts at zero. Not `.data`: it shares the file-backed part
/// of the segment with `.persistent` (the physical addresses the Microkit
/// tool patched in), which a reset leaves alone, so a flip there would
/// outlive the PD's restart and not be a fault of one life of it. Nor the
/// injection stack this runs on.
fn corrupt(bits: u32) {
    use sel4_phdrs::{ProgramHeader, PT_LOAD};
    const PF_W: u32 = 2;
    let Ok(phdrs) = sel4_phdrs::locate_phdrs() else {
        log::warn!("corrupt: cannot find the program headers; nothing flipped");
        return;
    };
    let (stack_start, stack_end) = crate::inject_stack();
    let mut areas = [(0usize, 0usize); MAX_AREAS];
    let mut n = 0;
    let mut add = |a: usize, b: usize| {
        if b > a && n < MAX_AREAS {
            areas[n] = (a, b);
            n += 1;
        }
    };
    let writable = |p: &&ProgramHeader| p.p_type == PT_LOAD && p.p_flags & PF_W != 0;
    for p in phdrs.iter().filter(writable) {
        let (start, end) = (p.p_vaddr + p.p_filesz, p.p_vaddr + p.p_memsz);
        if stack_start < end && start < stack_end {
            add(start, stack_start.max(start));
            add(stack_end.min(end), end);
        } else {
            add(start, end);
        }
    }
    let areas = &areas[..n];
    let total: usize = areas.iter().map(|a| a.1 - a.0).sum();
    log::warn!(
        "corrupt: flipping {bits} bits in {} KiB of .bss",
        total / 1024
    );
    // SAFETY: deliberately not sound: this is the injected fault. Each area
    // is the zero-initialised part of a loaded writable segment of this
    // program, mapped for its whole life, so the accesses do not trap.
    unsafe { axolotl_swifi::flip(areas, bits, &mut rng()) };
}
