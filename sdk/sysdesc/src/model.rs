//! The checked system description.

use alloc::string::String;
use alloc::vec::Vec;

/// A 1-based position in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Pos {
    /// Line.
    pub line: u32,
    /// Column.
    pub col: u32,
}

/// A whole system.
#[derive(Clone, Debug, PartialEq)]
pub struct System {
    /// The file name given to [`crate::parse`].
    pub file: String,
    /// Memory regions.
    pub regions: Vec<MemoryRegion>,
    /// Protection domains, in document order (parents before children).
    pub pds: Vec<Pd>,
    /// Channels.
    pub channels: Vec<ChannelDecl>,
    /// Rings (`<axolotl:ring>` inside channels).
    pub rings: Vec<Ring>,
    /// Packet links (`<axolotl:link>` inside channels).
    pub links: Vec<Link>,
}

/// `<memory_region>`.
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryRegion {
    /// Name.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// Page size (0x1000 or 0x200000).
    pub page_size: u64,
    /// Fixed physical address, for device memory.
    pub phys_addr: Option<u64>,
    /// Where it is declared.
    pub pos: Pos,
}

/// `<protection_domain>`.
#[derive(Clone, Debug, PartialEq)]
pub struct Pd {
    /// Name.
    pub name: String,
    /// Priority, 0-254.
    pub priority: u8,
    /// Passive PD.
    pub passive: bool,
    /// `<program_image path>`.
    pub program_image: String,
    /// The parent PD (index into [`System::pds`]).
    pub parent: Option<usize>,
    /// `id` under its parent.
    pub child_id: Option<u8>,
    /// `<map>`s.
    pub maps: Vec<Map>,
    /// `<irq>`s.
    pub irqs: Vec<Irq>,
    /// `<ioport>`s (x86 only).
    pub ioports: Vec<IoPort>,
    /// What Axolotl role it plays, if any.
    pub role: Option<Role>,
    /// `<axolotl:restart>`.
    pub restart: Option<RestartSpec>,
    /// `<axolotl:heartbeat>`.
    pub heartbeat: Option<HeartbeatSpec>,
    /// `<axolotl:state>`.
    pub state_quota: Option<StateQuota>,
    /// `<axolotl:net>`: the network interface's addresses.
    pub net: Option<NetSpec>,
    /// `<axolotl:filter>`: packet filter rules.
    pub filter: Option<FilterSpec>,
    /// Regions named by `<setvar region_paddr>`, with where.
    pub setvar_regions: Vec<(String, Pos)>,
    /// Where it is declared.
    pub pos: Pos,
}

/// An Axolotl role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// `<axolotl:monitor state="REGION" publish="REGION"/>` (both
    /// optional).
    Monitor {
        /// The region that keeps the monitor's own state across its
        /// restarts, if any.
        state: Option<String>,
        /// The region where it publishes each PD's incarnation for the
        /// store (`axolotl_store_api::incarnations`), if any.
        publish: Option<String>,
    },
    /// `<axolotl:warden/>`: the root PD whose one job is to restart the
    /// monitor.
    Warden,
    /// `<axolotl:timer/>`.
    Timer,
    /// `<axolotl:store journal="REGION"/>`.
    Store {
        /// The journal region.
        journal: String,
    },
}

/// `<map>`.
#[derive(Clone, Debug, PartialEq)]
pub struct Map {
    /// The region (`mr`).
    pub region: String,
    /// Virtual address.
    pub vaddr: u64,
    /// Permissions.
    pub perms: Perms,
    /// Cached (default true).
    pub cached: bool,
    /// `setvar_vaddr` symbol.
    pub setvar_vaddr: Option<String>,
    /// Where it is declared.
    pub pos: Pos,
}

/// Map permissions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perms {
    /// r
    pub read: bool,
    /// w
    pub write: bool,
    /// x
    pub execute: bool,
}

/// `<irq>`.
#[derive(Clone, Debug, PartialEq)]
pub struct Irq {
    /// Channel id it is delivered on.
    pub id: u8,
    /// `axolotl:name`, for generated code.
    pub name: Option<String>,
    /// The ARM/RISC-V interrupt number, if that form is used.
    pub irq: Option<u64>,
    /// Where it is declared.
    pub pos: Pos,
}

/// `<ioport>`: a range of x86 I/O ports.
#[derive(Clone, Debug, PartialEq)]
pub struct IoPort {
    /// The I/O port identifier Microkit gives it.
    pub id: u8,
    /// `axolotl:name`, for generated code.
    pub name: Option<String>,
    /// First port.
    pub addr: u64,
    /// Number of ports.
    pub size: u64,
    /// Where it is declared.
    pub pos: Pos,
}

/// `<channel>`.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelDecl {
    /// The two ends.
    pub ends: [ChannelEnd; 2],
    /// Where it is declared.
    pub pos: Pos,
}

/// `<end>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelEnd {
    /// The PD (index into [`System::pds`]).
    pub pd: usize,
    /// Its channel id.
    pub id: u8,
    /// This end may call the other.
    pub pp: bool,
    /// This end may notify the other.
    pub notify: bool,
}

/// `<axolotl:ring>`.
#[derive(Clone, Debug, PartialEq)]
pub struct Ring {
    /// Name.
    pub name: String,
    /// The channel carrying it (index into [`System::channels`]).
    pub channel: usize,
    /// Producer PD.
    pub producer: usize,
    /// Consumer PD.
    pub consumer: usize,
    /// Region holding it.
    pub region: String,
    /// Descriptor slots.
    pub slots: u32,
    /// Where it is declared.
    pub pos: Pos,
}

/// `<axolotl:link>`: one direction of a packet path between the two PDs of
/// its channel. Its region holds the active ring, the free ring and the
/// buffer pool, laid out by [`crate::link_layout`].
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    /// Name.
    pub name: String,
    /// The channel carrying its notifications (index into [`System::channels`]).
    pub channel: usize,
    /// The PD that fills buffers.
    pub sender: usize,
    /// The PD that reads them.
    pub receiver: usize,
    /// The region holding rings and pool.
    pub region: String,
    /// Buffers in the pool (and slots of each ring).
    pub buffers: u32,
    /// Bytes per buffer.
    pub buf_size: u32,
    /// For an app's requests to a transport: the ports (listens, binds)
    /// the app may hold there (`max_ports`, default 1).
    pub max_ports: u16,
    /// Where it is declared.
    pub pos: Pos,
}

/// `<axolotl:net>`: the system's network interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetSpec {
    /// Ethernet address.
    pub mac: [u8; 6],
    /// IPv4 address.
    pub addr: [u8; 4],
    /// On-link prefix length.
    pub prefix_len: u8,
    /// Default gateway.
    pub gateway: Option<[u8; 4]>,
    /// Where it is declared.
    pub pos: Pos,
}

/// `<axolotl:filter>`: the packet filter's rules, first match wins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterSpec {
    /// Pass what no rule matches (`default="pass"`), else drop it.
    pub default_pass: bool,
    /// `<axolotl:rule>`s in order.
    pub rules: Vec<FilterRuleSpec>,
}

/// `<axolotl:rule>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterRuleSpec {
    /// `action="pass"` (else drop).
    pub pass: bool,
    /// `direction`: `Some(true)` in, `Some(false)` out, `None` both.
    pub inbound: Option<bool>,
    /// IP protocol number, 0 for any (`proto="tcp|udp|icmp|any"`).
    pub proto: u8,
    /// `remote="a.b.c.d/n"`.
    pub remote: Option<([u8; 4], u8)>,
    /// `ports="N"` or `ports="N-M"`: the system's own port(s).
    pub ports: Option<(u16, u16)>,
    /// Where it is declared.
    pub pos: Pos,
}

/// `<axolotl:restart>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestartSpec {
    /// First back-off, ms.
    pub initial_backoff_ms: u64,
    /// Largest back-off, ms.
    pub max_backoff_ms: u64,
    /// Run time that resets the back-off, ms.
    pub min_run_ms: u64,
    /// Faults in the window that make the monitor give up (0: never).
    pub max_faults: u32,
    /// The window, ms.
    pub window_ms: u64,
}

impl Default for RestartSpec {
    fn default() -> Self {
        RestartSpec {
            initial_backoff_ms: 0,
            max_backoff_ms: 1000,
            min_run_ms: 1000,
            max_faults: 10,
            window_ms: 10_000,
        }
    }
}

/// `<axolotl:heartbeat>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeartbeatSpec {
    /// Ping period, ms.
    pub period_ms: u64,
    /// Periods without an answer that make the PD hung.
    pub misses: u32,
}

impl Default for HeartbeatSpec {
    fn default() -> Self {
        HeartbeatSpec {
            period_ms: 100,
            misses: 3,
        }
    }
}

/// `<axolotl:state>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateQuota {
    /// Bytes of keys and values.
    pub bytes: u32,
    /// Keys.
    pub keys: u32,
    /// The value buffer region (`buffer`), shared with the store.
    pub buffer: Option<String>,
    /// PDs whose state this one may read and watch (`read`, space-separated).
    pub reads: Vec<String>,
    /// Where the element is.
    pub pos: Pos,
}

impl Default for StateQuota {
    fn default() -> Self {
        StateQuota {
            bytes: 1024,
            keys: 32,
            buffer: None,
            reads: Vec::new(),
            pos: Pos::default(),
        }
    }
}

impl System {
    /// The PD named `name`.
    pub fn pd_index(&self, name: &str) -> Option<usize> {
        self.pds.iter().position(|p| p.name == name)
    }

    fn role_index(&self, f: impl Fn(&Role) -> bool) -> Option<usize> {
        self.pds
            .iter()
            .position(|p| p.role.as_ref().is_some_and(&f))
    }

    /// The monitor PD.
    pub fn monitor(&self) -> Option<usize> {
        self.role_index(|r| matches!(r, Role::Monitor { .. }))
    }

    /// The warden PD (the monitor's parent).
    pub fn warden(&self) -> Option<usize> {
        self.role_index(|r| *r == Role::Warden)
    }

    /// The timer PD.
    pub fn timer(&self) -> Option<usize> {
        self.role_index(|r| *r == Role::Timer)
    }

    /// The state store PD.
    pub fn store(&self) -> Option<usize> {
        self.role_index(|r| matches!(r, Role::Store { .. }))
    }

    /// The region the monitor publishes incarnations on, if it does.
    pub fn publish_region(&self) -> Option<&str> {
        match &self.pds[self.monitor()?].role {
            Some(Role::Monitor {
                publish: Some(r), ..
            }) => Some(r),
            _ => None,
        }
    }

    /// The channel (its index) on which the monitor tells the store that
    /// it published: the last channel between the two, if it is not their
    /// supervision channel (the first, when the store is the monitor's
    /// child) and neither end calls on it.
    pub fn publish_channel(&self) -> Option<usize> {
        let (m, st) = (self.monitor()?, self.store()?);
        let between: Vec<_> = self
            .channels_of(m)
            .filter(|(_, _, peer)| peer.pd == st)
            .collect();
        let supervision = usize::from(self.pds[st].parent == Some(m));
        let &(i, mine, peer) = between.get(supervision..)?.last()?;
        (!mine.pp && !peer.pp).then_some(i)
    }

    /// The region named `name`.
    pub fn region(&self, name: &str) -> Option<&MemoryRegion> {
        self.regions.iter().find(|r| r.name == name)
    }

    /// Channels touching `pd`: (channel index, this PD's end, the peer's end).
    pub fn channels_of(
        &self,
        pd: usize,
    ) -> impl Iterator<Item = (usize, &ChannelEnd, &ChannelEnd)> {
        self.channels.iter().enumerate().flat_map(move |(i, c)| {
            let [a, b] = &c.ends;
            let first = (a.pd == pd).then_some((i, a, b));
            let second = (b.pd == pd && a.pd != pd).then_some((i, b, a));
            first.into_iter().chain(second)
        })
    }

    /// The direct children of `pd`.
    pub fn children_of(&self, pd: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.pds.len()).filter(move |&i| self.pds[i].parent == Some(pd))
    }
}
