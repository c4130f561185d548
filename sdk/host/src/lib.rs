//! The Linux-hosted back-end of Axolotl.
//!
//! - [`pd::run`] is the runtime inside each PD process: it maps the PD's
//!   memory regions at their system.xml addresses with their permissions,
//!   carries notifications and protected calls over one socket per channel,
//!   answers heartbeats, and reports faults (signals, panics) before the
//!   process dies.
//! - [`supervisor::run`] is `axolotl run`: it plays the kernel's part. It
//!   creates the regions (memfds) and channels (socket pairs), starts every PD
//!   as its own process, hands each fault to the faulting PD's parent PD, and
//!   carries out the parent's restart and stop requests. A restart is a new
//!   process: fresh `.data`, `.bss`, heap and stack; regions persist because
//!   the supervisor keeps them.
//!
//! Only channels declared in system.xml exist: a PD holds exactly the socket
//! ends and region descriptors system.xml gives it.

pub mod boot;
pub mod control;
mod fault;
pub mod logger;
pub mod nic;
pub mod page;
pub mod pd;
pub mod rng;
pub mod sandbox;
pub mod service;
pub mod status;
pub mod supervisor;
#[cfg(feature = "inject")]
mod swifi;
pub mod sys;
pub mod wire;

pub use pd::{run as pd_main, Alarm, HostOs, Init};
