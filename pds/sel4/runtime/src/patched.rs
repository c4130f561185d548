//! Keeping what the Microkit tool wrote into a PD program across a reset.
//!
//! The Microkit tool patches symbols in each program's `.data` when it
//! builds the image: which channels may notify, call, or acknowledge an
//! interrupt (`microkit_notifications`, `microkit_pps`, `microkit_irqs`),
//! whether the PD is passive, and its name. sel4-reset restores `.data`
//! from a copy taken *before* that patching, so a restarted PD would find
//! every channel invalid. On its first start a PD saves the patched values
//! in `.persistent` memory, which a reset leaves alone, and after each reset
//! it writes them back before anything reads them.

const NAME_LENGTH: usize = 64;
const SAVED: usize = 0x6178_6f6c_6f74_6c21; // "axolotl!"

#[repr(C)]
struct Patched {
    magic: usize,
    irqs: usize,
    notifications: usize,
    pps: usize,
    passive: bool,
    name: [u8; NAME_LENGTH],
}

#[unsafe(link_section = ".persistent")]
static mut KEPT: Patched = Patched {
    magic: 0,
    irqs: 0,
    notifications: 0,
    pps: 0,
    passive: false,
    name: [0; NAME_LENGTH],
};

// Defined by sel4-microkit (as cells in `.data`), patched by the Microkit
// tool.
unsafe extern "C" {
    static mut microkit_irqs: usize;
    static mut microkit_notifications: usize;
    static mut microkit_pps: usize;
    static mut microkit_passive: bool;
    static mut microkit_name: [u8; NAME_LENGTH];
}

/// Saves the patched values on the first start; restores them after a reset.
/// Must run before anything uses a channel.
pub(crate) fn keep() {
    // SAFETY: a PD has one thread and this runs at the start of init,
    // before any other code reads or writes these statics; the extern
    // declarations match sel4-microkit's definitions (a cell of the same
    // type, in writable `.data`).
    unsafe {
        let kept = &mut *core::ptr::addr_of_mut!(KEPT);
        if kept.magic == SAVED {
            microkit_irqs = kept.irqs;
            microkit_notifications = kept.notifications;
            microkit_pps = kept.pps;
            microkit_passive = kept.passive;
            microkit_name = kept.name;
        } else {
            kept.irqs = microkit_irqs;
            kept.notifications = microkit_notifications;
            kept.pps = microkit_pps;
            kept.passive = microkit_passive;
            kept.name = microkit_name;
            kept.magic = SAVED;
        }
    }
}
