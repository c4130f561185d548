//! Axolotl's `system.xml`: a seL4 Microkit 2.3 system description plus
//! Axolotl's extensions in the namespace [`NAMESPACE`].
//!
//! - [`parse`] reads and checks a file against Microkit's rules and Axolotl's,
//!   reporting every error (not only the first) as a [`Diagnostic`] printed
//!   `FILE:LINE:COL: message`.
//! - [`to_microkit`] lowers it to the plain Microkit description that the
//!   Microkit tool accepts: Axolotl's elements and attributes removed,
//!   everything else kept.
//!
//! The vocabulary and the list of checks are in this crate's README.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

mod check;
mod diag;
mod lower;
mod model;
mod parse;

pub use check::{
    board_quota, incarnation_board_bytes, journal_room, monitor_state_bytes, quota_journal_bytes,
    JOURNAL_MAX_RECORD, JOURNAL_RECORD_OVERHEAD, JOURNAL_SUPERBLOCK,
};
pub use diag::Diagnostic;
pub use model::*;

use alloc::string::String;
use alloc::vec::Vec;

/// The XML namespace of Axolotl's extensions.
pub const NAMESPACE: &str = "urn:axolotl:system:1";
/// Bytes of a ring's header.
pub const RING_HEADER_BYTES: u64 = 64;
/// Bytes of one ring descriptor.
pub const RING_DESC_BYTES: u64 = 16;

/// Where the parts of an `<axolotl:link>`'s region lie: the active ring
/// (sender to receiver), the free ring (back) and the pool of buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkLayout {
    /// Offset of the active ring.
    pub active: u64,
    /// Offset of the free ring.
    pub free: u64,
    /// Offset of the pool.
    pub pool: u64,
    /// Bytes the region needs at least.
    pub total: u64,
}

/// The layout of a link of `buffers` buffers of `buf_size` bytes (each ring
/// has `buffers` slots; parts start on 64-byte boundaries).
pub const fn link_layout(buffers: u32, buf_size: u32) -> LinkLayout {
    let ring = RING_HEADER_BYTES + RING_DESC_BYTES * buffers as u64;
    let ring = ring.div_ceil(64) * 64;
    LinkLayout {
        active: 0,
        free: ring,
        pool: 2 * ring,
        total: 2 * ring + buffers as u64 * buf_size as u64,
    }
}

/// A fingerprint of a system description's text (64-bit FNV-1a). Each PD
/// program carries the fingerprint of the file its constants were generated
/// from, and `axolotl run` refuses to start a PD built from another file.
pub fn fingerprint(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The board name of the Linux-hosted mode (`axolotl run`).
pub const HOST_BOARD: &str = "linux";

/// Parses and checks `text` (named `file` in messages) as the Linux-hosted
/// mode sees it: [`parse_for`] with [`HOST_BOARD`].
pub fn parse(file: &str, text: &str) -> Result<System, Vec<Diagnostic>> {
    parse_for(file, text, HOST_BOARD)
}

/// The boards named by `axolotl:board` attributes in `text`, in document
/// order (empty if none, or if the XML is malformed).
pub fn boards_named(text: &str) -> Vec<String> {
    roxmltree::Document::parse(text)
        .map(|doc| parse::boards_named(&doc))
        .unwrap_or_default()
}

/// Parses and checks `text` (named `file` in messages) for `board`: elements
/// whose `axolotl:board` list does not name `board` are left out, as if they
/// were not there. `Ok` only when there is no error at all.
pub fn parse_for(file: &str, text: &str, board: &str) -> Result<System, Vec<Diagnostic>> {
    let doc = roxmltree::Document::parse(text).map_err(|e| {
        let pos = e.pos();
        alloc::vec![Diagnostic::new(
            file,
            pos.row,
            pos.col,
            alloc::format!("malformed XML: {e}")
        )]
    })?;
    let mut diags = diag::Diags::new(file, &doc);
    let mut system = parse::system(&doc, &mut diags, board);
    if let Some(s) = &mut system {
        s.file = file.into();
    }
    if let Some(system) = &system {
        check::all(system, &mut diags);
    }
    match (system, diags.into_vec()) {
        (Some(s), d) if d.is_empty() => Ok(s),
        (_, d) => Err(d),
    }
}

/// Parses, checks, and lowers `text` to a plain Microkit 2.3 description
/// for `board`.
pub fn to_microkit(file: &str, text: &str, board: &str) -> Result<String, Vec<Diagnostic>> {
    parse_for(file, text, board)?;
    let doc = roxmltree::Document::parse(text).map_err(|e| {
        alloc::vec![Diagnostic::new(
            file,
            e.pos().row,
            e.pos().col,
            alloc::format!("{e}")
        )]
    })?;
    Ok(lower::microkit(&doc, board))
}

#[cfg(test)]
mod tests;
