//! Types of the constants that the build generates from system.xml for each
//! PD (see `axolotl-sysdesc`'s code generator). Nothing here is written by
//! hand in a PD: ids, addresses and sizes come from system.xml only.

use crate::{Channel, Child};

/// A memory region as one PD maps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// The region's name in system.xml.
    pub name: &'static str,
    /// Where this PD maps it.
    pub vaddr: usize,
    /// Its size in bytes.
    pub size: usize,
    /// Whether this PD may write it.
    pub writable: bool,
}

/// A range of x86 I/O ports (`<ioport>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoPorts {
    /// The I/O port identifier in system.xml.
    pub id: u8,
    /// First port.
    pub base: u64,
    /// Number of ports.
    pub count: u64,
}

/// Where a child's program starts over or is made to fault, found in its
/// ELF by the image build (`axolotl image`) and generated into its parent.
/// Restarting at `reset` gives the child fresh `.data`, `.bss` and stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChildEntries {
    /// The child.
    pub child: crate::Child,
    /// Start over with fresh program memory.
    pub reset: usize,
    /// Fault injection: dereference a null pointer.
    pub inject_null: usize,
    /// Fault injection: panic.
    pub inject_panic: usize,
    /// Fault injection: loop for ever without answering heartbeats.
    pub inject_hang: usize,
    /// Fault injection that the child carries on after (`garbage`,
    /// `corrupt`): the kind in the first argument register, the bits in
    /// the second; the entry ends in a trap its parent resumes from.
    pub inject_swifi: usize,
}

impl Region {
    /// The region's first byte in this PD's address space.
    pub const fn ptr(&self) -> *mut u8 {
        self.vaddr as *mut u8
    }

    /// The whole region as bytes.
    ///
    /// # Safety
    /// The runtime must have mapped the region (every runtime maps all of a
    /// PD's regions before its `init` runs) and mapped it writable; no other
    /// reference to it may be live in this PD; and no other PD may map it
    /// (otherwise use it through atomics, as rings do).
    #[allow(unsafe_code)]
    pub unsafe fn bytes_mut(&self) -> &'static mut [u8] {
        // SAFETY: the caller guarantees the mapping, its permissions and
        // exclusivity; a mapping lives as long as the PD.
        unsafe { core::slice::from_raw_parts_mut(self.ptr(), self.size) }
    }
}

/// Which end of a ring this PD is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingRole {
    /// This PD enqueues descriptors.
    Producer,
    /// This PD dequeues descriptors.
    Consumer,
}

/// A ring carried by a channel (`<axolotl:ring>` in system.xml).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingConfig {
    /// The ring's name in system.xml.
    pub name: &'static str,
    /// The PD at the ring's other end.
    pub peer: &'static str,
    /// The shared region that holds it.
    pub region: Region,
    /// The channel that carries its notifications.
    pub channel: Channel,
    /// Number of descriptor slots (a power of two).
    pub slots: u32,
    /// This PD's end.
    pub role: RingRole,
}

/// Which end of a link this PD is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkRole {
    /// This PD fills buffers and sends them.
    Sender,
    /// This PD reads them and gives them back.
    Receiver,
}

/// One direction of a packet path (`<axolotl:link>` in system.xml): a
/// region holding the active ring, the free ring and a pool of buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkConfig {
    /// The link's name in system.xml.
    pub name: &'static str,
    /// The shared region that holds it.
    pub region: Region,
    /// The channel that carries its notifications (both ways).
    pub channel: Channel,
    /// Buffers in the pool, and slots of each ring.
    pub buffers: u32,
    /// Bytes per buffer.
    pub buf_size: u32,
    /// Offset of the active ring in the region.
    pub active_offset: usize,
    /// Offset of the free ring.
    pub free_offset: usize,
    /// Offset of the pool.
    pub pool_offset: usize,
    /// This PD's end.
    pub role: LinkRole,
    /// For an app's requests to a transport: the ports (listens, binds)
    /// the app may hold there.
    pub max_ports: u16,
}

/// The network interface's addresses (`<axolotl:net>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetConfig {
    /// Ethernet address.
    pub mac: [u8; 6],
    /// IPv4 address.
    pub addr: [u8; 4],
    /// On-link prefix length.
    pub prefix_len: u8,
    /// Default gateway.
    pub gateway: Option<[u8; 4]>,
}

/// One packet filter rule (`<axolotl:rule>`); unset fields match anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FilterRule {
    /// Pass (else drop).
    pub pass: bool,
    /// `Some(true)`: inbound only; `Some(false)`: outbound only.
    pub inbound: Option<bool>,
    /// IP protocol number; 0 for any.
    pub proto: u8,
    /// The other end's network.
    pub remote: Option<([u8; 4], u8)>,
    /// The system's own ports.
    pub ports: Option<(u16, u16)>,
}

/// What a parent does when a child faults (`<axolotl:restart>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Delay before the first restart after a fault, in milliseconds
    /// (`0`: restart at once).
    pub initial_backoff_ms: u64,
    /// Upper bound of the back-off, doubled after each fault that came too
    /// soon after the previous restart.
    pub max_backoff_ms: u64,
    /// A child that ran at least this long before faulting is restarted with
    /// the initial back-off again (crash-loop damping).
    pub min_run_ms: u64,
    /// Give up after this many faults within `window_ms` (`0`: never give up).
    pub max_faults: u32,
    /// The window for `max_faults`, in milliseconds.
    pub window_ms: u64,
}

/// Liveness checking of a child (`<axolotl:heartbeat>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    /// How often the parent pings, in milliseconds.
    pub period_ms: u64,
    /// How many periods without an answer make the child hung.
    pub misses: u32,
}

/// A child under supervision, as its parent sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SupervisedChild {
    /// The child's PD name.
    pub name: &'static str,
    /// Its id under the parent.
    pub child: Child,
    /// The parent's end of the channel to the child, used for heartbeats and
    /// the child's "up" signal, if there is one.
    pub channel: Option<Channel>,
    /// What to do when it faults.
    pub restart: RestartPolicy,
    /// Liveness checking, if any.
    pub heartbeat: Option<Heartbeat>,
    /// Its priority: a PD that loops starves those below it, which then
    /// miss heartbeats too; the monitor blames the highest silent one.
    pub priority: u8,
}

/// A client of the state store, as the store sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreClient {
    /// The store's end of the channel the client calls on; it is the client's
    /// identity, which the client cannot forge.
    pub channel: Channel,
    /// The client's PD name; its keys live in a namespace of this name.
    pub namespace: &'static str,
    /// Most bytes of keys plus values the client may keep.
    pub quota_bytes: u32,
    /// Most keys the client may keep.
    pub quota_keys: u32,
    /// The client's value buffer (`<axolotl:state buffer>`), where the
    /// store maps it: values larger than a message and batches pass
    /// through it.
    pub buffer: Option<Region>,
    /// The namespaces (PD names) whose keys the client may read and watch
    /// (`<axolotl:state read>`), besides its own.
    pub reads: &'static [&'static str],
}

/// A periodic tick the timer driver sends without being asked for each one
/// (to the monitor, which never calls a PD it supervises).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tick {
    /// The timer's end of the channel to notify.
    pub channel: Channel,
    /// The period in nanoseconds.
    pub period_ns: u64,
}
