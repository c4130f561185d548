//! Rules that relate elements to each other: Microkit's and Axolotl's.

use crate::diag::Diags;
use crate::model::*;
use crate::{RING_DESC_BYTES, RING_HEADER_BYTES};
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

/// Microkit's limit on protection domains.
pub const MAX_PDS: usize = 63;
/// Buffers in one link at most (the sender tracks them in a bit set).
pub const MAX_LINK_BUFFERS: u32 = 512;
/// Filter rules at most.
pub const MAX_FILTER_RULES: usize = 32;
const PAGE_SIZES: [u64; 2] = [0x1000, 0x20_0000];

pub(crate) fn all(s: &System, d: &mut Diags) {
    counts_and_names(s, d);
    regions(s, d);
    ids(s, d);
    maps(s, d);
    calls(s, d);
    roles(s, d);
    store_quotas(s, d);
    supervision(s, d);
    rings(s, d);
    links(s, d);
    net(s, d);
}

fn pd_label(p: &Pd) -> String {
    format!("<protection_domain name=\"{}\">", p.name)
}

fn counts_and_names(s: &System, d: &mut Diags) {
    if s.pds.len() > MAX_PDS {
        d.at(
            s.pds[MAX_PDS].pos,
            format!(
                "{}: more than {MAX_PDS} protection domains ({} in all)",
                pd_label(&s.pds[MAX_PDS]),
                s.pds.len()
            ),
        );
    }
    for (i, p) in s.pds.iter().enumerate() {
        if p.name == "monitor" {
            d.at(
                p.pos,
                format!(
                    "{}: the PD name 'monitor' is reserved by Microkit for its own monitor",
                    pd_label(p)
                ),
            );
        }
        if let Some(first) = s.pds[..i].iter().find(|q| q.name == p.name) {
            d.at(
                p.pos,
                format!(
                    "{}: name already used at line {}",
                    pd_label(p),
                    first.pos.line
                ),
            );
        }
    }
    for (i, r) in s.regions.iter().enumerate() {
        if let Some(first) = s.regions[..i].iter().find(|q| q.name == r.name) {
            d.at(
                r.pos,
                format!(
                    "<memory_region name=\"{}\">: name already used at line {}",
                    r.name, first.pos.line
                ),
            );
        }
    }
    for (i, r) in s.rings.iter().enumerate() {
        if let Some(first) = s.rings[..i].iter().find(|q| q.name == r.name) {
            d.at(
                r.pos,
                format!(
                    "<axolotl:ring name=\"{}\">: name already used at line {}",
                    r.name, first.pos.line
                ),
            );
        }
    }
}

fn regions(s: &System, d: &mut Diags) {
    for r in &s.regions {
        let l = format!("<memory_region name=\"{}\">", r.name);
        if !PAGE_SIZES.contains(&r.page_size) {
            d.at(
                r.pos,
                format!(
                    "{l}: page_size {:#x} is not 0x1000 or 0x200000",
                    r.page_size
                ),
            );
        } else if r.size == 0 || r.size % r.page_size != 0 {
            d.at(
                r.pos,
                format!(
                    "{l}: size {:#x} is not a non-zero multiple of the page size {:#x}",
                    r.size, r.page_size
                ),
            );
        }
        if let Some(pa) = r.phys_addr {
            if PAGE_SIZES.contains(&r.page_size) && pa % r.page_size != 0 {
                d.at(
                    r.pos,
                    format!("{l}: phys_addr {pa:#x} is not aligned to the page size"),
                );
            }
        }
    }
    for p in &s.pds {
        for (name, pos) in &p.setvar_regions {
            if s.region(name).is_none() {
                d.at(
                    *pos,
                    format!("<setvar>: region_paddr names no memory_region '{name}'"),
                );
            }
        }
    }
}

fn ids(s: &System, d: &mut Diags) {
    for (i, p) in s.pds.iter().enumerate() {
        // Channel ends and irqs share the PD's id space.
        let mut used: Vec<(u8, u32)> = Vec::new();
        for irq in &p.irqs {
            if let Some((_, line)) = used.iter().find(|(id, _)| *id == irq.id) {
                d.at(
                    irq.pos,
                    format!(
                        "<irq id=\"{}\"> in {}: id already used at line {line}",
                        irq.id, p.name
                    ),
                );
            }
            used.push((irq.id, irq.pos.line));
        }
        for c in &s.channels {
            for e in c.ends.iter().filter(|e| e.pd == i) {
                if let Some((_, line)) = used.iter().find(|(id, _)| *id == e.id) {
                    d.at(
                        c.pos,
                        format!(
                            "<channel>: id {} of PD {} is already used at line {line}",
                            e.id, p.name
                        ),
                    );
                }
                used.push((e.id, c.pos.line));
            }
        }
        // Child ids.
        let children: Vec<&Pd> = s.children_of(i).map(|c| &s.pds[c]).collect();
        for (k, c) in children.iter().enumerate() {
            if let Some(id) = c.child_id {
                if let Some(first) = children[..k].iter().find(|o| o.child_id == Some(id)) {
                    d.at(
                        c.pos,
                        format!(
                            "{}: child id {id} already used by {} under {}",
                            pd_label(c),
                            first.name,
                            p.name
                        ),
                    );
                }
            }
        }
    }
}

fn maps(s: &System, d: &mut Diags) {
    for p in &s.pds {
        let mut spans: Vec<(u64, u64, &Map)> = Vec::new();
        for m in &p.maps {
            let l = format!("<map mr=\"{}\"> in {}", m.region, p.name);
            let Some(r) = s.region(&m.region) else {
                d.at(m.pos, format!("{l}: no memory_region named '{}'", m.region));
                continue;
            };
            if PAGE_SIZES.contains(&r.page_size) && m.vaddr % r.page_size != 0 {
                d.at(
                    m.pos,
                    format!(
                        "{l}: vaddr {:#x} is not aligned to the region's page size {:#x}",
                        m.vaddr, r.page_size
                    ),
                );
            }
            let Some(end) = m.vaddr.checked_add(r.size) else {
                d.at(
                    m.pos,
                    format!("{l}: vaddr {:#x} + size {:#x} overflows", m.vaddr, r.size),
                );
                continue;
            };
            if let Some((_, _, other)) = spans.iter().find(|(a, b, _)| m.vaddr < *b && *a < end) {
                d.at(
                    m.pos,
                    format!(
                        "{l}: overlaps the map of '{}' at line {}",
                        other.region, other.pos.line
                    ),
                );
            }
            spans.push((m.vaddr, end, m));
        }
    }
}

fn calls(s: &System, d: &mut Diags) {
    let store = s.store();
    let mut edges: Vec<(usize, usize, Pos)> = Vec::new();
    for c in &s.channels {
        for k in 0..2 {
            let (caller, callee) = (&c.ends[k], &c.ends[1 - k]);
            if !caller.pp {
                continue;
            }
            let (a, b) = (&s.pds[caller.pd], &s.pds[callee.pd]);
            edges.push((caller.pd, callee.pd, c.pos));
            if a.priority >= b.priority {
                let msg = if Some(callee.pd) == store {
                    format!(
                        "<channel>: the state store must outrank every PD that calls it: {} (priority {}) calls the store, {} (priority {})",
                        a.name, a.priority, b.name, b.priority
                    )
                } else {
                    format!(
                        "<channel>: protected calls go only to a strictly higher priority: {} (priority {}) calls {} (priority {})",
                        a.name, a.priority, b.name, b.priority
                    )
                };
                d.at(c.pos, msg);
            }
        }
    }
    // Cycles in the call graph (impossible with strict priorities, checked anyway).
    let n = s.pds.len();
    let mut state = vec![0u8; n];
    fn visit(v: usize, edges: &[(usize, usize, Pos)], state: &mut [u8], found: &mut Option<Pos>) {
        state[v] = 1;
        for &(a, b, pos) in edges.iter().filter(|e| e.0 == v) {
            let _ = a;
            match state[b] {
                1 => *found = found.or(Some(pos)),
                0 => visit(b, edges, state, found),
                _ => {}
            }
        }
        state[v] = 2;
    }
    let mut found = None;
    for v in 0..n {
        if state[v] == 0 {
            visit(v, &edges, &mut state, &mut found);
        }
    }
    if let Some(pos) = found {
        d.at(pos, "<channel>: protected calls form a cycle".into());
    }
}

fn roles(s: &System, d: &mut Diags) {
    let mut seen: Vec<(&'static str, &Pd)> = Vec::new();
    for p in &s.pds {
        let Some(role) = &p.role else { continue };
        let name = match role {
            Role::Monitor { .. } => "monitor",
            Role::Warden => "warden",
            Role::Timer => "timer",
            Role::Store { .. } => "store",
        };
        if let Some((_, first)) = seen.iter().find(|(n, _)| *n == name) {
            d.at(
                p.pos,
                format!(
                    "{}: there is already a {name} ({})",
                    pd_label(p),
                    first.name
                ),
            );
        }
        seen.push((name, p));
        match role {
            Role::Store { journal } => own_region(
                s,
                d,
                p,
                "<axolotl:store>",
                ("the store", "journal", "journal"),
                journal,
            ),
            Role::Monitor {
                state: Some(state),
                publish,
            } => {
                if let Some(r) = publish {
                    publish_board(s, d, p, r);
                }
                own_region(
                    s,
                    d,
                    p,
                    "<axolotl:monitor>",
                    ("the monitor", "state", "state region"),
                    state,
                );
                if let Some(r) = s.region(state) {
                    let need = monitor_state_bytes(
                        s.children_of(s.pd_index(&p.name).unwrap_or(0)).count(),
                    );
                    if r.size < need {
                        d.at(r.pos, format!("<memory_region name=\"{state}\">: the monitor's state for its children needs {need:#x} bytes, this region has {:#x}", r.size));
                    }
                }
            }
            Role::Warden => warden(s, d, p),
            Role::Monitor {
                state: None,
                publish,
            } => {
                if let Some(r) = publish {
                    publish_board(s, d, p, r);
                }
            }
            Role::Timer => {}
        }
    }
}

/// Bytes of the monitor's incarnation board for `entries` PDs (its
/// children and itself): a 24-byte header and 48 bytes an entry
/// (`axolotl_store_api::incarnations`, whose size the monitor's tests
/// check against this).
pub fn incarnation_board_bytes(entries: usize) -> u64 {
    24 + 48 * entries as u64
}

/// Longest PD name on the incarnation board (a store key).
const MAX_BOARD_NAME: usize = 32;

/// The names the monitor publishes: its children's and its own.
fn board_names(s: &System, monitor: usize) -> impl Iterator<Item = &str> {
    s.children_of(monitor)
        .chain(core::iter::once(monitor))
        .map(|i| s.pds[i].name.as_str())
}

/// The store's quota for the monitor's namespace, where the incarnations
/// live: one key a PD, an 8-byte value each.
pub fn board_quota(s: &System) -> Option<StateQuota> {
    s.publish_region()?;
    let m = s.monitor()?;
    let (mut bytes, mut keys) = (0u32, 0u32);
    for name in board_names(s, m) {
        bytes += name.len() as u32 + 8;
        keys += 1;
    }
    Some(StateQuota {
        bytes,
        keys,
        ..StateQuota::default()
    })
}

/// `<axolotl:monitor publish="REGION">`: the monitor maps the region
/// read-write, the store read-only, no one else at all; it holds a board
/// for every PD; a channel of their own tells the store of a publication.
fn publish_board(s: &System, d: &mut Diags, p: &Pd, region: &str) {
    let elem = format!("<axolotl:monitor> in {}", p.name);
    let Some(r) = s.region(region) else {
        d.at(
            p.pos,
            format!("{elem}: publish names no memory_region '{region}'"),
        );
        return;
    };
    let Some(store) = s.store() else {
        d.at(
            p.pos,
            format!("{elem}: publish needs a state store (<axolotl:store>) to publish to"),
        );
        return;
    };
    fn maps<'a>(pd: &'a Pd, region: &str) -> Option<&'a Map> {
        pd.maps.iter().find(|m| m.region == region)
    }
    if !maps(p, region).is_some_and(|m| m.perms.read && m.perms.write) {
        d.at(
            p.pos,
            format!("{elem}: the monitor must map its board '{region}' read-write"),
        );
    }
    let st = &s.pds[store];
    match maps(st, region) {
        None => d.at(
            st.pos,
            format!(
                "{}: the store must map the monitor's board '{region}' (perms=\"r\")",
                pd_label(st)
            ),
        ),
        Some(m) if m.perms.write => d.at(
            m.pos,
            format!("<map mr=\"{region}\"> in {}: the store reads the monitor's board; map it perms=\"r\"", st.name),
        ),
        Some(_) => {}
    }
    for other in s
        .pds
        .iter()
        .filter(|o| o.name != p.name && o.name != st.name)
    {
        if let Some(m) = maps(other, region) {
            d.at(
                m.pos,
                format!(
                    "<map mr=\"{region}\"> in {}: only the monitor and the store may map the monitor's board (watch incarnations through the store)",
                    other.name
                ),
            );
        }
    }
    let monitor = s.pd_index(&p.name).unwrap_or(0);
    let n = board_names(s, monitor).count();
    let need = incarnation_board_bytes(n);
    if r.size < need {
        d.at(
            r.pos,
            format!("<memory_region name=\"{region}\">: the monitor's board for {n} PDs needs {need:#x} bytes, this region has {:#x}", r.size),
        );
    }
    for name in board_names(s, monitor).filter(|n| n.len() > MAX_BOARD_NAME) {
        d.at(
            p.pos,
            format!("{elem}: the PD name '{name}' is longer than the {MAX_BOARD_NAME} bytes the board holds"),
        );
    }
    if s.publish_channel().is_none() {
        d.at(
            p.pos,
            format!(
                "{elem}: publish needs a <channel> of its own between {} and {} (after their supervision channel, with no pp), on which the monitor tells the store it published",
                p.name, st.name
            ),
        );
    }
}

/// Longest value a client writes through its value buffer.
pub const MAX_BUFFER_VALUE: u64 = 64 << 10;

/// Journal bytes of a record of a 32-byte key and a `value`-byte value.
pub fn journal_record_bytes(value: u64) -> u64 {
    16 + (32 + value).div_ceil(8) * 8
}

/// Like [`journal_room`], when the largest record takes `largest` bytes.
pub fn journal_room_for(len: u64, largest: u64) -> u64 {
    (journal_room(len) + JOURNAL_MAX_RECORD).saturating_sub(largest)
}

/// A store client's value buffer and read grants.
fn state_extras(s: &System, d: &mut Diags, client: &Pd, q: &StateQuota, store: usize) {
    let elem = format!("<axolotl:state> in {}", client.name);
    if let Some(b) = &q.buffer {
        match s.region(b) {
            None => d.at(
                q.pos,
                format!("{elem}: buffer names no memory_region '{b}'"),
            ),
            Some(r) => {
                let rw = |p: &Pd| {
                    p.maps
                        .iter()
                        .any(|m| &m.region == b && m.perms.read && m.perms.write)
                };
                if !rw(client) {
                    d.at(
                        q.pos,
                        format!(
                            "{elem}: {} must map its value buffer '{b}' read-write",
                            client.name
                        ),
                    );
                }
                if !rw(&s.pds[store]) {
                    d.at(
                        q.pos,
                        format!(
                            "{elem}: the store ({}) must map the value buffer '{b}' read-write",
                            s.pds[store].name
                        ),
                    );
                }
                for other in s
                    .pds
                    .iter()
                    .filter(|o| o.name != client.name && o.name != s.pds[store].name)
                {
                    if let Some(m) = other.maps.iter().find(|m| &m.region == b) {
                        d.at(m.pos, format!("<map mr=\"{b}\"> in {}: only {} and the store may map its value buffer", other.name, client.name));
                    }
                }
                if r.size < 0x1000 {
                    d.at(
                        r.pos,
                        format!(
                            "<memory_region name=\"{b}\">: a value buffer needs at least a page"
                        ),
                    );
                }
            }
        }
    }
    for name in &q.reads {
        let Some(i) = s.pd_index(name) else {
            d.at(
                q.pos,
                format!("{elem}: read names no protection domain '{name}'"),
            );
            continue;
        };
        let calls_store = s
            .channels_of(i)
            .any(|(_, mine, peer)| peer.pd == store && mine.pp);
        let publishes = s.monitor() == Some(i) && s.publish_region().is_some();
        if !calls_store && !publishes {
            d.at(
                q.pos,
                format!("{elem}: read names {name}, which keeps no state in the store"),
            );
        }
        if name == &client.name {
            d.at(
                q.pos,
                format!("{elem}: read names {name} itself (a PD always reads its own state)"),
            );
        }
    }
}

/// Bytes of the monitor's state region for `children` children: two
/// copies of a 64-byte header plus, per child, a record of 72 bytes and
/// its fault history (`axolotl_monitor::saved`, whose tests check these
/// figures against its own).
pub fn monitor_state_bytes(children: usize) -> u64 {
    2 * (64 + children as u64 * (72 + 8 * 64))
}

/// A region only `p` maps, and maps read-write: `who` names `p` in the
/// messages, `attr` is the attribute that names the region, `noun` what
/// it is to `p`.
fn own_region(
    s: &System,
    d: &mut Diags,
    p: &Pd,
    elem: &str,
    (who, attr, noun): (&str, &str, &str),
    region: &str,
) {
    if s.region(region).is_none() {
        d.at(
            p.pos,
            format!(
                "{elem} in {}: {attr} names no memory_region '{region}'",
                p.name
            ),
        );
        return;
    }
    if !p
        .maps
        .iter()
        .any(|m| m.region == region && m.perms.read && m.perms.write)
    {
        d.at(
            p.pos,
            format!(
                "{elem} in {}: {who} must map its {noun} '{region}' read-write",
                p.name
            ),
        );
    }
    for other in s.pds.iter().filter(|o| o.name != p.name) {
        if let Some(m) = other.maps.iter().find(|m| m.region == region) {
            d.at(
                m.pos,
                format!(
                    "<map mr=\"{region}\"> in {}: only {who} may map its {noun}",
                    other.name
                ),
            );
        }
    }
}

/// The warden is the root, and its one child is the monitor.
fn warden(s: &System, d: &mut Diags, p: &Pd) {
    if p.parent.is_some() {
        d.at(
            p.pos,
            format!(
                "{}: the warden must be the root PD (it restarts the monitor; nothing restarts it)",
                pd_label(p)
            ),
        );
    }
    let me = s.pd_index(&p.name).unwrap_or(0);
    let monitor = s.monitor();
    for c in s.children_of(me) {
        if Some(c) != monitor {
            d.at(s.pds[c].pos, format!("{}: the warden's only child is the monitor; make this PD a child of the monitor", pd_label(&s.pds[c])));
        }
    }
    match monitor {
        None => d.at(
            p.pos,
            format!(
                "{}: a warden needs an <axolotl:monitor/> PD as its child",
                pd_label(p)
            ),
        ),
        Some(m) if s.pds[m].parent != Some(me) => d.at(
            s.pds[m].pos,
            format!(
                "{}: with a warden in the system, the monitor must be its child",
                pd_label(&s.pds[m])
            ),
        ),
        Some(_) => {}
    }
}

/// Journal bytes per record besides its key and value: the record header
/// and up to 7 bytes of padding (`axolotl_store::journal`, whose tests
/// check these figures against its own).
pub const JOURNAL_RECORD_OVERHEAD: u64 = 16 + 7;
/// Journal bytes of the largest record (a 32-byte key, a 256-byte value).
pub const JOURNAL_MAX_RECORD: u64 = 16 + 288;
/// Journal bytes besides its two halves (the superblock).
pub const JOURNAL_SUPERBLOCK: u64 = 64;

/// The bytes a store client's quota can take in the journal: all of its
/// bytes and keys live, each key a record of its own.
pub fn quota_journal_bytes(q: &StateQuota) -> u64 {
    u64::from(q.bytes) + u64::from(q.keys) * JOURNAL_RECORD_OVERHEAD
}

/// The live bytes a journal region of `len` bytes holds while still
/// leaving room for the largest record: one half, less that record.
pub fn journal_room(len: u64) -> u64 {
    (len.saturating_sub(JOURNAL_SUPERBLOCK) / 2 / 8 * 8).saturating_sub(JOURNAL_MAX_RECORD)
}

/// Every client of the store says what it may keep, and all of it fits
/// the journal.
fn store_quotas(s: &System, d: &mut Diags) {
    let Some(store) = s.store() else { return };
    let mut total = 0;
    let mut largest = JOURNAL_MAX_RECORD;
    for c in &s.channels {
        for k in 0..2 {
            let (caller, callee) = (&c.ends[k], &c.ends[1 - k]);
            if !caller.pp || callee.pd != store {
                continue;
            }
            let client = &s.pds[caller.pd];
            match &client.state_quota {
                Some(q) => {
                    total += quota_journal_bytes(q);
                    if let Some(b) = &q.buffer {
                        let size = s.region(b).map_or(0, |r| r.size);
                        largest = largest.max(journal_record_bytes(
                            size.min(u64::from(q.bytes)).min(MAX_BUFFER_VALUE),
                        ));
                    }
                    state_extras(s, d, client, q, store);
                }
                None => d.at(
                    c.pos,
                    format!(
                        "<channel>: {} calls the state store but has no <axolotl:state quota_bytes=\"...\" quota_keys=\"...\"/>: say how much it may keep",
                        client.name
                    ),
                ),
            }
        }
    }
    if let Some(q) = board_quota(s) {
        total += quota_journal_bytes(&q);
    }
    let p = &s.pds[store];
    let Some(Role::Store { journal }) = &p.role else {
        return;
    };
    let Some(region) = s.region(journal) else {
        return;
    };
    let room = journal_room_for(region.size, largest);
    if total > room {
        d.at(
            region.pos,
            format!(
                "<memory_region name=\"{journal}\">: the store's clients may keep {total} bytes of journal records (their quotas, with {JOURNAL_RECORD_OVERHEAD} bytes per key), more than this journal of {:#x} bytes holds ({room}): make it larger or the quotas smaller",
                region.size
            ),
        );
    }
}

fn linked(s: &System, a: usize, b: usize) -> bool {
    s.channels_of(a).any(|(_, _, peer)| peer.pd == b)
}

fn supervision(s: &System, d: &mut Diags) {
    let monitor = s.monitor();
    let mut any_heartbeat = false;
    for p in &s.pds {
        if p.restart.is_none() && p.heartbeat.is_none() {
            continue;
        }
        any_heartbeat |= p.heartbeat.is_some();
        match monitor {
            None => d.at(p.pos, format!("{}: a restart policy or heartbeat needs an <axolotl:monitor/> PD as its parent", pd_label(p))),
            Some(m) if p.parent != Some(m) => d.at(
                p.pos,
                format!("{}: a PD with a restart policy or heartbeat must be a child of the monitor ({})", pd_label(p), s.pds[m].name),
            ),
            Some(m) => {
                let me = s.pd_index(&p.name).unwrap_or(0);
                if p.heartbeat.is_some() && !linked(s, me, m) {
                    d.at(p.pos, format!("{}: a heartbeat needs a channel between it and the monitor", pd_label(p)));
                }
            }
        }
    }
    if let (true, Some(m)) = (any_heartbeat, monitor) {
        match s.timer() {
            None => d.at(
                s.pds[m].pos,
                format!(
                    "{}: heartbeats need an <axolotl:timer/> PD to tick the monitor",
                    pd_label(&s.pds[m])
                ),
            ),
            Some(t) if !linked(s, m, t) => d.at(
                s.pds[m].pos,
                format!(
                    "{}: heartbeats need a channel between the monitor and the timer ({})",
                    pd_label(&s.pds[m]),
                    s.pds[t].name
                ),
            ),
            Some(_) => {}
        }
    }
}

fn rings(s: &System, d: &mut Diags) {
    for r in &s.rings {
        let l = format!("<axolotl:ring name=\"{}\">", r.name);
        if !r.slots.is_power_of_two() || !(2..=65536).contains(&r.slots) {
            d.at(
                r.pos,
                format!(
                    "{l}: slots {} is not a power of two from 2 to 65536",
                    r.slots
                ),
            );
        }
        let Some(region) = s.region(&r.region) else {
            d.at(r.pos, format!("{l}: no memory_region named '{}'", r.region));
            continue;
        };
        let need = RING_HEADER_BYTES + RING_DESC_BYTES * u64::from(r.slots);
        if region.size < need {
            d.at(
                r.pos,
                format!(
                    "{l}: region '{}' has {:#x} bytes; {} slots need {need:#x}",
                    r.region, region.size, r.slots
                ),
            );
        }
        shared_region(s, d, &l, &r.region, [r.producer, r.consumer], r.pos);
    }
}

/// A region that two PDs share for a ring or a link: both map it read-write
/// (both ends write indices), and no third PD maps it.
fn shared_region(s: &System, d: &mut Diags, l: &str, region: &str, ends: [usize; 2], pos: Pos) {
    for end in ends {
        let p = &s.pds[end];
        if !p
            .maps
            .iter()
            .any(|m| m.region == region && m.perms.read && m.perms.write)
        {
            d.at(
                pos,
                format!(
                    "{l}: {} must map region '{region}' read-write (both ends are wired)",
                    p.name
                ),
            );
        }
    }
    for (i, p) in s.pds.iter().enumerate() {
        if ends.contains(&i) {
            continue;
        }
        if let Some(m) = p.maps.iter().find(|m| m.region == region) {
            d.at(
                m.pos,
                format!(
                    "<map mr=\"{region}\"> in {}: only the two ends of {l} may map its region",
                    p.name
                ),
            );
        }
    }
}

fn links(s: &System, d: &mut Diags) {
    for (i, k) in s.links.iter().enumerate() {
        let l = format!("<axolotl:link name=\"{}\">", k.name);
        if let Some(first) = s.links[..i].iter().find(|q| q.name == k.name) {
            d.at(
                k.pos,
                format!("{l}: name already used at line {}", first.pos.line),
            );
        }
        if let Some(r) = s.rings.iter().find(|r| r.region == k.region) {
            d.at(
                k.pos,
                format!("{l}: region '{}' already holds ring '{}'", k.region, r.name),
            );
        }
        if let Some(o) = s.links[..i].iter().find(|q| q.region == k.region) {
            d.at(
                k.pos,
                format!("{l}: region '{}' already holds link '{}'", k.region, o.name),
            );
        }
        if !k.buffers.is_power_of_two() || !(2..=MAX_LINK_BUFFERS).contains(&k.buffers) {
            d.at(
                k.pos,
                format!(
                    "{l}: buffers {} is not a power of two from 2 to {MAX_LINK_BUFFERS}",
                    k.buffers
                ),
            );
        }
        if k.buf_size % 64 != 0 || !(64..=65536).contains(&k.buf_size) {
            d.at(
                k.pos,
                format!(
                    "{l}: buf_size {} is not a multiple of 64 from 64 to 65536",
                    k.buf_size
                ),
            );
        }
        let Some(region) = s.region(&k.region) else {
            d.at(k.pos, format!("{l}: no memory_region named '{}'", k.region));
            continue;
        };
        let need = crate::link_layout(k.buffers.min(MAX_LINK_BUFFERS), k.buf_size.min(65536)).total;
        if region.size < need {
            d.at(
                k.pos,
                format!(
                    "{l}: region '{}' has {:#x} bytes; {} buffers of {} bytes and their rings need {need:#x}",
                    k.region, region.size, k.buffers, k.buf_size
                ),
            );
        }
        shared_region(s, d, &l, &k.region, [k.sender, k.receiver], k.pos);
    }
}

fn net(s: &System, d: &mut Diags) {
    let nets: Vec<&Pd> = s.pds.iter().filter(|p| p.net.is_some()).collect();
    if let [first, rest @ ..] = &nets[..] {
        for p in rest {
            if let Some(n) = &p.net {
                d.at(
                    n.pos,
                    format!(
                        "<axolotl:net> in {}: the system has one network interface, declared at line {}",
                        p.name,
                        first.net.as_ref().map_or(0, |n| n.pos.line)
                    ),
                );
            }
        }
    }
    let filters: Vec<&Pd> = s.pds.iter().filter(|p| p.filter.is_some()).collect();
    if filters.len() > 1 {
        d.at(
            filters[1].pos,
            format!(
                "{}: only one PD may hold <axolotl:filter> ({} has one)",
                pd_label(filters[1]),
                filters[0].name
            ),
        );
    }
    for p in filters {
        if let Some(f) = &p.filter {
            if f.rules.len() > MAX_FILTER_RULES {
                d.at(
                    f.rules[MAX_FILTER_RULES].pos,
                    format!("<axolotl:rule>: more than {MAX_FILTER_RULES} rules"),
                );
            }
        }
    }
}
