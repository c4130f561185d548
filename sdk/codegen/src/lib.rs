//! Turns system.xml into the constants one PD's code uses, so that channel
//! ids, region addresses and sizes, rings, restart policies and store quotas
//! are written once, in system.xml, and never again by hand.
//!
//! A PD crate's build script calls [`build::generate`] with its program image
//! name; the PD includes the result:
//!
//! ```ignore
//! mod pd {
//!     include!(concat!(env!("OUT_DIR"), "/pd.rs"));
//! }
//! ```
//!
//! What the module holds is described in the crate README.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

#[cfg(feature = "std")]
pub mod build;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use axolotl_sysdesc::{Pd, Role, System};
use core::fmt::Write as _;

/// Quota of a store client that system.xml gives none (matches the checker).
pub const DEFAULT_QUOTA_BYTES: u32 = 1024;
/// Key quota of a store client that system.xml gives none.
pub const DEFAULT_QUOTA_KEYS: u32 = 32;

/// A Rust constant name for a system.xml name: upper case, `_` for anything
/// else, never starting with a digit.
pub fn const_name(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

/// The index of the PD whose program image is `image`.
pub fn pd_for_image(system: &System, image: &str) -> Result<usize, String> {
    let hits: Vec<usize> = (0..system.pds.len())
        .filter(|&i| system.pds[i].program_image == image)
        .collect();
    match hits[..] {
        [i] => Ok(i),
        [] => Err(format!(
            "{}: no protection_domain has program_image \"{image}\"",
            system.file
        )),
        _ => Err(format!(
            "{}: several protection domains use program_image \"{image}\"; give each its own \
             program so that each gets its own constants",
            system.file
        )),
    }
}

fn region_expr(system: &System, pd: &Pd, region: &str) -> Option<String> {
    let map = pd.maps.iter().find(|m| m.region == region)?;
    let size = system.region(region)?.size;
    Some(format!(
        "axolotl_sdk::config::Region {{ name: {:?}, vaddr: {:#x}, size: {:#x}, writable: {} }}",
        region, map.vaddr, size, map.perms.write
    ))
}

/// The channel from `me` to the PD `other` on which `me` may call, if any.
fn call_channel(system: &System, me: usize, other: Option<usize>) -> Option<u8> {
    let other = other?;
    system
        .channels_of(me)
        .find(|(_, mine, peer)| peer.pd == other && mine.pp)
        .map(|(_, mine, _)| mine.id)
}

fn opt<T: core::fmt::Display>(v: Option<T>, wrap: &str) -> String {
    match v {
        Some(v) => format!("Some({wrap}({v}))"),
        None => "None".into(),
    }
}

/// A PD program's entry points, as the image build found them in its ELF.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entries {
    /// The PD's name.
    pub pd: String,
    /// `_reset` (sel4-reset).
    pub reset: u64,
    /// `axolotl_inject_null`.
    pub inject_null: u64,
    /// `axolotl_inject_panic`.
    pub inject_panic: u64,
    /// `axolotl_inject_hang`.
    pub inject_hang: u64,
    /// `axolotl_inject_swifi`.
    pub inject_swifi: u64,
}

impl Entries {
    /// One line of an entries file: `PD RESET NULL PANIC HANG SWIFI`,
    /// addresses in hex.
    pub fn to_line(&self) -> String {
        format!(
            "{} {:#x} {:#x} {:#x} {:#x} {:#x}",
            self.pd,
            self.reset,
            self.inject_null,
            self.inject_panic,
            self.inject_hang,
            self.inject_swifi
        )
    }

    /// Parses an entries file; the error names the line.
    pub fn parse_file(text: &str) -> Result<Vec<Entries>, String> {
        let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
        let mut out = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.is_empty() {
                continue;
            }
            let parsed = match f[..] {
                [pd, r, a, b, c, d] => match (hex(r), hex(a), hex(b), hex(c), hex(d)) {
                    (Some(reset), Some(null), Some(panic), Some(hang), Some(swifi)) => {
                        Some(Entries {
                            pd: pd.to_string(),
                            reset,
                            inject_null: null,
                            inject_panic: panic,
                            inject_hang: hang,
                            inject_swifi: swifi,
                        })
                    }
                    _ => None,
                },
                _ => None,
            };
            out.push(parsed.ok_or_else(|| {
                format!(
                    "line {}: expected 'PD RESET NULL PANIC HANG SWIFI' (hex), not '{line}'",
                    n + 1
                )
            })?);
        }
        Ok(out)
    }
}

/// The generated module for PD `i` of `system`, whose text had `fingerprint`
/// (see [`axolotl_sysdesc::fingerprint`]).
pub fn pd_module(system: &System, i: usize, fingerprint: u64, entries: &[Entries]) -> String {
    let pd = &system.pds[i];
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "// @generated by axolotl-codegen from {}: edit system.xml, not this.",
        system.file
    );
    let _ = writeln!(w, "use axolotl_sdk::{{Channel, ChannelSet, Child}};");
    let _ = writeln!(w, "use axolotl_sdk::config::*;");
    let _ = writeln!(
        w,
        "/// This PD's name.\npub const NAME: &str = {:?};",
        pd.name
    );
    let _ = writeln!(
        w,
        "/// Fingerprint of the system description these constants come from.\npub const SYSTEM_FINGERPRINT: u64 = {fingerprint:#x};"
    );
    let _ = writeln!(
        w,
        "/// This PD's priority.\npub const PRIORITY: u8 = {};",
        pd.priority
    );

    // Channels, named after the PD at the other end.
    let chans: Vec<_> = system.channels_of(i).collect();
    let _ = writeln!(w, "/// This PD's channels, named after the PD at the other end.\npub mod channel {{\n    use axolotl_sdk::Channel;");
    for (_, mine, peer) in &chans {
        let peer_name = &system.pds[peer.pd].name;
        let dup = chans.iter().filter(|(_, _, p)| p.pd == peer.pd).count() > 1;
        let name = if dup {
            format!("{}_{}", const_name(peer_name), mine.id)
        } else {
            const_name(peer_name)
        };
        let how = match (mine.pp, peer.pp) {
            (true, _) => "this PD calls it",
            (_, true) => "it calls this PD",
            _ => "notifications only",
        };
        let _ = writeln!(
            w,
            "    /// To `{peer_name}` ({how}).\n    pub const {name}: Channel = Channel::new({});",
            mine.id
        );
    }
    let _ = writeln!(w, "}}");

    let _ = writeln!(
        w,
        "/// This PD's interrupts.\npub mod irq {{\n    use axolotl_sdk::Channel;"
    );
    for irq in &pd.irqs {
        let name = irq
            .name
            .as_deref()
            .map(const_name)
            .unwrap_or_else(|| format!("IRQ_{}", irq.id));
        let _ = writeln!(
            w,
            "    pub const {name}: Channel = Channel::new({});",
            irq.id
        );
    }
    let _ = writeln!(w, "}}");

    let _ = writeln!(
        w,
        "/// This PD's x86 I/O port ranges.\npub mod ioport {{\n    use axolotl_sdk::config::IoPorts;"
    );
    for p in &pd.ioports {
        let name = p
            .name
            .as_deref()
            .map(const_name)
            .unwrap_or_else(|| format!("IOPORT_{}", p.id));
        let _ = writeln!(
            w,
            "    pub const {name}: IoPorts = IoPorts {{ id: {}, base: {:#x}, count: {:#x} }};",
            p.id, p.addr, p.size
        );
    }
    let _ = writeln!(w, "}}");

    let _ = writeln!(w, "/// The memory regions this PD maps.\npub mod region {{");
    let mut all = Vec::new();
    for m in &pd.maps {
        if let Some(e) = region_expr(system, pd, &m.region) {
            let name = const_name(&m.region);
            let _ = writeln!(
                w,
                "    pub const {name}: axolotl_sdk::config::Region = {e};"
            );
            all.push(name);
        }
    }
    let _ = writeln!(
        w,
        "    /// Every region this PD maps.\n    pub const ALL: &[axolotl_sdk::config::Region] = &[{}];",
        all.join(", ")
    );
    let _ = writeln!(w, "}}");

    let _ = writeln!(w, "/// The rings this PD is an end of.\npub mod ring {{");
    let mut all = Vec::new();
    for r in system
        .rings
        .iter()
        .filter(|r| r.producer == i || r.consumer == i)
    {
        let mine = system.channels[r.channel]
            .ends
            .iter()
            .find(|e| e.pd == i)
            .map(|e| e.id);
        let (Some(region), Some(ch)) = (region_expr(system, pd, &r.region), mine) else {
            continue;
        };
        let (role, peer) = if r.producer == i {
            ("Producer", r.consumer)
        } else {
            ("Consumer", r.producer)
        };
        let _ = writeln!(
            w,
            "    pub const {}: axolotl_sdk::config::RingConfig = axolotl_sdk::config::RingConfig {{ name: {:?}, peer: {:?}, region: {region}, channel: axolotl_sdk::Channel::new({ch}), slots: {}, role: axolotl_sdk::config::RingRole::{role} }};",
            const_name(&r.name), r.name, system.pds[peer].name, r.slots
        );
        all.push(const_name(&r.name));
    }
    let _ = writeln!(
        w,
        "    /// Every ring this PD is an end of.\n    pub const ALL: &[axolotl_sdk::config::RingConfig] = &[{}];",
        all.join(", ")
    );
    let _ = writeln!(w, "}}");

    let _ = writeln!(
        w,
        "/// The packet links this PD is an end of.\npub mod link {{"
    );
    let mut all = Vec::new();
    for k in system
        .links
        .iter()
        .filter(|k| k.sender == i || k.receiver == i)
    {
        let mine = system.channels[k.channel]
            .ends
            .iter()
            .find(|e| e.pd == i)
            .map(|e| e.id);
        let (Some(region), Some(ch)) = (region_expr(system, pd, &k.region), mine) else {
            continue;
        };
        let role = if k.sender == i { "Sender" } else { "Receiver" };
        let lay = axolotl_sysdesc::link_layout(k.buffers, k.buf_size);
        let _ = writeln!(
            w,
            "    pub const {}: axolotl_sdk::config::LinkConfig = axolotl_sdk::config::LinkConfig {{ name: {:?}, region: {region}, channel: axolotl_sdk::Channel::new({ch}), buffers: {}, buf_size: {}, active_offset: {:#x}, free_offset: {:#x}, pool_offset: {:#x}, role: axolotl_sdk::config::LinkRole::{role}, max_ports: {} }};",
            const_name(&k.name), k.name, k.buffers, k.buf_size, lay.active, lay.free, lay.pool, k.max_ports
        );
        all.push(const_name(&k.name));
    }
    let _ = writeln!(
        w,
        "    /// Every link this PD is an end of.\n    pub const ALL: &[axolotl_sdk::config::LinkConfig] = &[{}];",
        all.join(", ")
    );
    let _ = writeln!(w, "}}");

    // The network interface, the same for every PD.
    let ip4 = |a: [u8; 4]| format!("[{}, {}, {}, {}]", a[0], a[1], a[2], a[3]);
    let net = system.pds.iter().find_map(|p| p.net.as_ref()).map(|n| {
        format!(
            "Some(NetConfig {{ mac: {:?}, addr: {}, prefix_len: {}, gateway: {} }})",
            n.mac,
            ip4(n.addr),
            n.prefix_len,
            n.gateway
                .map(|g| format!("Some({})", ip4(g)))
                .unwrap_or_else(|| "None".into())
        )
    });
    let _ = writeln!(
        w,
        "/// The system's network interface (`<axolotl:net>`).\npub const NET: Option<NetConfig> = {};",
        net.unwrap_or_else(|| "None".into())
    );
    let _ = writeln!(w, "/// (Packet filter) its rules, first match wins.\npub const FILTER_RULES: &[FilterRule] = &[");
    if let Some(f) = &pd.filter {
        for r in &f.rules {
            let _ = writeln!(
                w,
                "    FilterRule {{ pass: {}, inbound: {:?}, proto: {}, remote: {}, ports: {:?} }},",
                r.pass,
                r.inbound,
                r.proto,
                r.remote
                    .map(|(a, n)| format!("Some(({}, {n}))", ip4(a)))
                    .unwrap_or_else(|| "None".into()),
                r.ports
            );
        }
    }
    let _ = writeln!(w, "];");
    let _ = writeln!(
        w,
        "/// (Packet filter) pass what no rule matches.\npub const FILTER_DEFAULT_PASS: bool = {};",
        pd.filter.as_ref().is_some_and(|f| f.default_pass)
    );

    // Supervision.
    let parent_ch = pd.parent.and_then(|p| {
        system
            .channels_of(i)
            .find(|(_, _, peer)| peer.pd == p)
            .map(|(_, mine, _)| mine.id)
    });
    let _ = writeln!(w, "/// The channel to this PD's parent (the runtime answers heartbeats on it).\npub const PARENT: Option<Channel> = {};", opt(parent_ch, "Channel::new"));
    let monitor_name = system
        .monitor()
        .map(|m| system.pds[m].name.as_str())
        .unwrap_or("");
    let _ = writeln!(w, "/// The monitor's PD name (empty if there is none).\npub const MONITOR_NAME: &str = {monitor_name:?};");
    let parent_name = pd.parent.map(|p| format!("Some({:?})", system.pds[p].name));
    let _ = writeln!(w, "/// The name of this PD's parent, if it has one.\npub const PARENT_NAME: Option<&str> = {};", parent_name.as_deref().unwrap_or("None"));
    // As Microkit decides whether a PD's input is an endpoint or only a
    // notification.
    let receives_calls = system.pds.iter().any(|p| p.parent == Some(i))
        || system.channels_of(i).any(|(_, _, peer)| peer.pp);
    let _ = writeln!(w, "/// Whether other PDs call this one or it has children (its input is an endpoint on seL4, not only a notification).\npub const RECEIVES_CALLS: bool = {receives_calls};");
    let _ = writeln!(
        w,
        "/// Children this PD supervises.\npub const CHILDREN: &[SupervisedChild] = &["
    );
    for c in system.children_of(i) {
        let child = &system.pds[c];
        let (Some(rs), Some(id)) = (&child.restart, child.child_id) else {
            continue;
        };
        let ch = system
            .channels_of(i)
            .find(|(_, _, peer)| peer.pd == c)
            .map(|(_, mine, _)| mine.id);
        let hb = child.heartbeat.as_ref().map(|h| {
            format!(
                "Heartbeat {{ period_ms: {}, misses: {} }}",
                h.period_ms, h.misses
            )
        });
        let _ = writeln!(
            w,
            "    SupervisedChild {{ name: {:?}, child: Child::new({id}), channel: {}, restart: RestartPolicy {{ initial_backoff_ms: {}, max_backoff_ms: {}, min_run_ms: {}, max_faults: {}, window_ms: {} }}, heartbeat: {}, priority: {} }},",
            child.name,
            opt(ch, "Channel::new"),
            rs.initial_backoff_ms, rs.max_backoff_ms, rs.min_run_ms, rs.max_faults, rs.window_ms,
            hb.map(|h| format!("Some({h})")).unwrap_or_else(|| "None".into()),
            child.priority,
        );
    }
    let _ = writeln!(w, "];");

    // Where each child starts over, found in the children's ELF files by
    // the image build (see `entries`).
    let _ = writeln!(w, "/// (seL4) children's reset and fault-injection entry points, from the image build.\npub const CHILD_ENTRIES: &[ChildEntries] = &[");
    for c in system.children_of(i) {
        let child = &system.pds[c];
        let Some(id) = child.child_id else { continue };
        if let Some(e) = entries.iter().find(|e| e.pd == child.name) {
            let _ = writeln!(
                w,
                "    ChildEntries {{ child: Child::new({id}), reset: {:#x}, inject_null: {:#x}, inject_panic: {:#x}, inject_hang: {:#x}, inject_swifi: {:#x} }},",
                e.reset, e.inject_null, e.inject_panic, e.inject_hang, e.inject_swifi
            );
        }
    }
    let _ = writeln!(w, "];");

    // The monitor's ticks.
    let monitor = system.monitor();
    let timer = system.timer();
    let link = |a: usize, b: usize| {
        system
            .channels_of(a)
            .find(|(_, _, peer)| peer.pd == b)
            .map(|(_, mine, _)| mine.id)
    };
    let tick_ch = match (monitor, timer) {
        (Some(m), Some(t)) if m == i => link(m, t),
        _ => None,
    };
    let tick_source = timer
        .filter(|&t| system.pds[t].parent == Some(i))
        .and_then(|t| system.pds[t].child_id);
    let _ = writeln!(w, "/// (Monitor) the channel on which the timer ticks it.\npub const TICK_CHANNEL: Option<Channel> = {};", opt(tick_ch, "Channel::new"));
    let _ = writeln!(w, "/// (Monitor) the timer, if it is a child: restarted at once, since back-off needs its ticks.\npub const TICK_SOURCE: Option<Child> = {};", opt(tick_source, "Child::new"));

    // The timer's ticks and clients.
    let mut ticks = String::new();
    let mut clients = 0u64;
    if timer == Some(i) {
        if let Some(m) = monitor {
            let period = system
                .children_of(m)
                .filter_map(|c| system.pds[c].heartbeat.as_ref().map(|h| h.period_ms))
                .min();
            if let (Some(ms), Some(ch)) = (period, link(i, m)) {
                let _ = write!(
                    ticks,
                    "Tick {{ channel: Channel::new({ch}), period_ns: {} }}",
                    ms.saturating_mul(1_000_000)
                );
            }
        }
        for (_, mine, peer) in system.channels_of(i) {
            if peer.pp {
                clients |= 1u64 << mine.id;
            }
        }
    }
    let _ = writeln!(
        w,
        "/// (Timer) periodic ticks to send.\npub const TICKS: &[Tick] = &[{ticks}];"
    );
    let _ = writeln!(w, "/// (Timer) the channels of its clients.\npub const TIMER_CLIENTS: ChannelSet = ChannelSet::from_bits({clients:#x});");

    // The store, as client and as server.
    let store = system.store();
    let _ = writeln!(w, "/// The channel on which this PD calls the state store.\npub const STORE: Option<Channel> = {};", opt(call_channel(system, i, store), "Channel::new"));
    let _ = writeln!(
        w,
        "/// The channel on which this PD calls the timer.\npub const TIMER: Option<Channel> = {};",
        opt(call_channel(system, i, timer), "Channel::new")
    );
    let _ = writeln!(w, "/// (Store) its clients; the channel is the client's identity.\npub const STORE_CLIENTS: &[StoreClient] = &[");
    let mut journal = "None".to_string();
    if store == Some(i) {
        for (_, mine, peer) in system.channels_of(i) {
            if !peer.pp {
                continue;
            }
            let client = &system.pds[peer.pd];
            let (bytes, keys) = client
                .state_quota
                .as_ref()
                .map(|q| (q.bytes, q.keys))
                .unwrap_or((DEFAULT_QUOTA_BYTES, DEFAULT_QUOTA_KEYS));
            let q = client.state_quota.as_ref();
            let buffer = q
                .and_then(|q| q.buffer.as_deref())
                .and_then(|b| region_expr(system, pd, b))
                .map(|e| format!("Some({e})"))
                .unwrap_or_else(|| "None".into());
            let reads: Vec<String> = q
                .map(|q| q.reads.iter().map(|r| format!("{r:?}")).collect())
                .unwrap_or_default();
            let _ = writeln!(
                w,
                "    StoreClient {{ channel: Channel::new({}), namespace: {:?}, quota_bytes: {bytes}, quota_keys: {keys}, buffer: {buffer}, reads: &[{}] }},",
                mine.id, client.name, reads.join(", ")
            );
        }
        // The monitor's namespace, where the store keeps the incarnations
        // the monitor publishes; the monitor never calls on its channel.
        if let (Some(ch), Some(q), Some(m)) = (
            system.publish_channel(),
            axolotl_sysdesc::board_quota(system),
            system.monitor(),
        ) {
            let [a, b] = &system.channels[ch].ends;
            let mine = if a.pd == i { a } else { b };
            let _ = writeln!(
                w,
                "    StoreClient {{ channel: Channel::new({}), namespace: {:?}, quota_bytes: {}, quota_keys: {}, buffer: None, reads: &[] }},",
                mine.id, system.pds[m].name, q.bytes, q.keys
            );
        }
        if let Some(Role::Store { journal: j }) = &pd.role {
            if let Some(e) = region_expr(system, pd, j) {
                journal = format!("Some({e})");
            }
        }
    }
    let _ = writeln!(w, "];");
    let _ = writeln!(
        w,
        "/// (Store) the journal region.\npub const JOURNAL: Option<Region> = {journal};"
    );
    let store_buffer = pd
        .state_quota
        .as_ref()
        .and_then(|q| q.buffer.as_deref())
        .and_then(|b| region_expr(system, pd, b))
        .map(|e| format!("Some({e})"))
        .unwrap_or_else(|| "None".into());
    let _ = writeln!(
        w,
        "/// (Store client) its value buffer, shared with the store.\npub const STORE_BUFFER: Option<Region> = {store_buffer};"
    );
    let mut monitor_state = "None".to_string();
    if let Some(Role::Monitor { state: Some(r), .. }) = &pd.role {
        if let Some(e) = region_expr(system, pd, r) {
            monitor_state = format!("Some({e})");
        }
    }
    // The incarnation board: the monitor writes it, the store reads it.
    let (mut board, mut board_ch) = ("None".to_string(), "None".to_string());
    if system.monitor() == Some(i) || store == Some(i) {
        if let (Some(r), Some(ch)) = (system.publish_region(), system.publish_channel()) {
            if let Some(e) = region_expr(system, pd, r) {
                board = format!("Some({e})");
            }
            let [a, b] = &system.channels[ch].ends;
            let mine = if a.pd == i { a } else { b };
            board_ch = format!("Some(Channel::new({}))", mine.id);
        }
    }
    let _ = writeln!(
        w,
        "/// (Monitor, store) the board where the monitor publishes each PD's incarnation (`axolotl_store_api::incarnations`).\npub const INCARNATIONS: Option<Region> = {board};"
    );
    let _ = writeln!(
        w,
        "/// (Monitor, store) the channel on which the monitor tells the store it published.\npub const INCARNATIONS_CHANNEL: Option<Channel> = {board_ch};"
    );
    let _ = writeln!(
        w,
        "/// (Monitor) the region that keeps its own state across its restarts.\npub const MONITOR_STATE: Option<Region> = {monitor_state};"
    );
    out
}

#[cfg(test)]
mod tests;
