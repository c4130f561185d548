//! From XML to the model, checking each element on its own: known elements
//! and attributes, required attributes, numbers and booleans.

use crate::diag::Diags;
use crate::model::*;
use crate::NAMESPACE;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use roxmltree::Node;

/// Microkit elements whose insides Axolotl passes through without checking.
const PASS_THROUGH_TOP: &[&str] = &[
    "virtual_machine",
    "domains",
    "domain_schedule",
    "io_address_space",
];
const PASS_THROUGH_PD: &[&str] = &["virtual_machine", "cspace"];

const PD_ATTRS: &[&str] = &[
    "name",
    "priority",
    "budget",
    "period",
    "passive",
    "stack_size",
    "smc",
    "cpu",
    "domain",
    "fpu",
];
const CHILD_PD_ATTRS: &[&str] = &["id", "setvar_id"];

/// `<tag name="x">` for messages.
pub(crate) fn label(node: Node) -> String {
    let tag = node.tag_name();
    let prefix = if tag.namespace() == Some(NAMESPACE) {
        "axolotl:"
    } else {
        ""
    };
    for key in ["name", "pd", "mr", "id", "path"] {
        if let Some(v) = node
            .attributes()
            .find(|a| a.name() == key && a.namespace().is_none())
        {
            return format!("<{prefix}{} {key}=\"{}\">", tag.name(), v.value());
        }
    }
    format!("<{prefix}{}>", tag.name())
}

fn is_axolotl(node: Node) -> bool {
    node.tag_name().namespace() == Some(NAMESPACE)
}

fn is_plain(node: Node) -> bool {
    node.tag_name().namespace().is_none()
}

/// Parses a Microkit number: decimal or `0x` hex, `_` allowed.
pub(crate) fn number(s: &str) -> Option<u64> {
    let cleaned: String = s.chars().filter(|&c| c != '_').collect();
    match cleaned.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => cleaned.parse().ok(),
    }
}

struct Ctx<'d, 'a, 'i> {
    d: &'d mut Diags<'a, 'i>,
    board: &'d str,
}

/// Whether `node` belongs in the system for `board`: elements without
/// `axolotl:board` belong everywhere; others only on the boards they list.
pub(crate) fn on_board(node: Node, board: &str) -> bool {
    match node
        .attributes()
        .find(|a| a.name() == "board" && a.namespace() == Some(NAMESPACE))
    {
        Some(a) => a.value().split_whitespace().any(|b| b == board),
        None => true,
    }
}

/// The element children of `node` that belong on `board`.
fn elements<'a, 'i>(node: Node<'a, 'i>, board: &str) -> Vec<Node<'a, 'i>> {
    node.children()
        .filter(|n| n.is_element() && on_board(*n, board))
        .collect()
}

/// The boards named by `axolotl:board` attributes anywhere in `doc`, in
/// document order, each once.
pub(crate) fn boards_named(doc: &roxmltree::Document) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in doc.descendants() {
        for a in n.attributes() {
            if a.name() == "board" && a.namespace() == Some(NAMESPACE) {
                for b in a.value().split_whitespace() {
                    if !out.iter().any(|x| x == b) {
                        out.push(b.to_string());
                    }
                }
            }
        }
    }
    out
}

impl Ctx<'_, '_, '_> {
    fn attrs(&mut self, node: Node, plain: &[&str], axolotl: &[&str]) {
        for a in node.attributes() {
            let ok = match a.namespace() {
                None => plain.contains(&a.name()),
                Some(NAMESPACE) if a.name() == "board" => true,
                Some(NAMESPACE) => axolotl.contains(&a.name()),
                Some(_) => false,
            };
            if !ok {
                let pos = self.d.pos_attr(node, a.name());
                let shown = if a.namespace() == Some(NAMESPACE) {
                    format!("axolotl:{}", a.name())
                } else {
                    a.name().to_string()
                };
                self.d
                    .at(pos, format!("{}: unknown attribute '{shown}'", label(node)));
            }
        }
    }

    fn get<'n>(&self, node: Node<'n, '_>, attr: &str) -> Option<&'n str> {
        node.attributes()
            .find(|a| a.name() == attr && a.namespace().is_none())
            .map(|a| a.value())
    }

    fn get_ax<'n>(&self, node: Node<'n, '_>, attr: &str) -> Option<&'n str> {
        node.attributes()
            .find(|a| a.name() == attr && a.namespace() == Some(NAMESPACE))
            .map(|a| a.value())
    }

    fn req<'n>(&mut self, node: Node<'n, '_>, attr: &str) -> Option<&'n str> {
        let v = self.get(node, attr);
        if v.is_none() {
            let pos = self.d.pos_of(node);
            self.d
                .at(pos, format!("{}: missing attribute '{attr}'", label(node)));
        }
        v
    }

    fn num(&mut self, node: Node, attr: &str) -> Option<u64> {
        let v = self.get(node, attr)?;
        let n = number(v);
        if n.is_none() {
            let pos = self.d.pos_attr(node, attr);
            self.d.at(
                pos,
                format!("{}: {attr}=\"{v}\" is not a number", label(node)),
            );
        }
        n
    }

    fn req_num(&mut self, node: Node, attr: &str) -> Option<u64> {
        self.req(node, attr)?;
        self.num(node, attr)
    }

    /// A number that must lie in `lo..=hi`.
    fn ranged(&mut self, node: Node, attr: &str, lo: u64, hi: u64, what: &str) -> Option<u64> {
        let n = self.num(node, attr)?;
        if n < lo || n > hi {
            let pos = self.d.pos_attr(node, attr);
            self.d.at(
                pos,
                format!(
                    "{}: {attr} {n} out of range ({what} are {lo}-{hi})",
                    label(node)
                ),
            );
            return None;
        }
        Some(n)
    }

    fn boolean(&mut self, node: Node, attr: &str, default: bool) -> bool {
        match self.get(node, attr) {
            None => default,
            Some("true") => true,
            Some("false") => false,
            Some(v) => {
                let pos = self.d.pos_attr(node, attr);
                self.d.at(
                    pos,
                    format!(
                        "{}: {attr} must be 'true' or 'false', not '{v}'",
                        label(node)
                    ),
                );
                default
            }
        }
    }

    /// An optional attribute read by `parse`; a value it refuses is reported
    /// at the attribute ("ATTR "V" is not WHAT") and gives `Err`.
    fn parsed<T>(
        &mut self,
        node: Node,
        attr: &str,
        parse: impl Fn(&str) -> Option<T>,
        what: &str,
    ) -> Result<Option<T>, ()> {
        let Some(v) = self.get(node, attr) else {
            return Ok(None);
        };
        match parse(v) {
            Some(t) => Ok(Some(t)),
            None => {
                let pos = self.d.pos_attr(node, attr);
                self.d.at(
                    pos,
                    format!("{}: {attr} \"{v}\" is not {what}", label(node)),
                );
                Err(())
            }
        }
    }

    /// An optional attribute that is one of the words in `options`; any
    /// other word is reported at the attribute and gives `Err`.
    fn choice<T: Copy>(
        &mut self,
        node: Node,
        attr: &str,
        options: &[(&str, T)],
    ) -> Result<Option<T>, ()> {
        let Some(v) = self.get(node, attr) else {
            return Ok(None);
        };
        if let Some((_, t)) = options.iter().find(|(w, _)| *w == v) {
            return Ok(Some(*t));
        }
        let mut list = String::new();
        for (i, (w, _)) in options.iter().enumerate() {
            if i > 0 {
                list.push_str(if i + 1 == options.len() { " or " } else { ", " });
            }
            list.push_str(&format!("'{w}'"));
        }
        let pos = self.d.pos_attr(node, attr);
        self.d.at(
            pos,
            format!("{}: {attr} must be {list}, not '{v}'", label(node)),
        );
        Err(())
    }

    fn error(&mut self, node: Node, msg: String) {
        let pos = self.d.pos_of(node);
        self.d.at(pos, format!("{}: {msg}", label(node)));
    }

    fn unknown_element(&mut self, node: Node, inside: &str) {
        self.error(node, format!("unknown element inside <{inside}>"));
    }
}

/// Parses the whole document. `None` only if the root is not `<system>`.
pub(crate) fn system(doc: &roxmltree::Document, d: &mut Diags, board: &str) -> Option<System> {
    let root = doc.root_element();
    let mut cx = Ctx { d, board };
    if root.tag_name().name() != "system" || !is_plain(root) {
        cx.error(root, "the root element must be <system>".into());
        return None;
    }
    cx.attrs(root, &[], &[]);
    // Board lists are checked everywhere, also on elements of other boards.
    for n in doc.descendants() {
        for a in n.attributes() {
            if a.name() != "board" || a.namespace() != Some(NAMESPACE) {
                continue;
            }
            let ok = !a.value().trim().is_empty()
                && a.value()
                    .split_whitespace()
                    .all(|b| b.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_'));
            if !ok {
                let pos = cx.d.pos_attr(n, "board");
                cx.d.at(
                    pos,
                    format!(
                        "{}: axolotl:board is a space-separated list of board names \
                         (letters, digits, '_'), not '{}'",
                        label(n),
                        a.value()
                    ),
                );
            }
        }
    }
    let mut sys = System {
        file: String::new(),
        regions: Vec::new(),
        pds: Vec::new(),
        channels: Vec::new(),
        rings: Vec::new(),
        links: Vec::new(),
    };
    let mut channel_nodes = Vec::new();
    for node in elements(root, board) {
        if !is_plain(node) {
            cx.unknown_element(node, "system");
            continue;
        }
        match node.tag_name().name() {
            "memory_region" => {
                if let Some(r) = region(&mut cx, node) {
                    sys.regions.push(r);
                }
            }
            "protection_domain" => pd(&mut cx, node, None, &mut sys.pds),
            "channel" => channel_nodes.push(node),
            n if PASS_THROUGH_TOP.contains(&n) => {}
            _ => cx.unknown_element(node, "system"),
        }
    }
    for node in channel_nodes {
        channel(&mut cx, node, &mut sys);
    }
    Some(sys)
}

fn region(cx: &mut Ctx, node: Node) -> Option<MemoryRegion> {
    cx.attrs(
        node,
        &[
            "name",
            "size",
            "page_size",
            "phys_addr",
            "prefill_path",
            "prefill_bootinfo",
        ],
        &[],
    );
    let name = cx.req(node, "name");
    let size = cx.req_num(node, "size");
    let page_size = cx.num(node, "page_size").unwrap_or(0x1000);
    let phys_addr = cx.num(node, "phys_addr");
    Some(MemoryRegion {
        name: name?.to_string(),
        size: size?,
        page_size,
        phys_addr,
        pos: cx.d.pos_of(node),
    })
}

fn pd(cx: &mut Ctx, node: Node, parent: Option<usize>, out: &mut Vec<Pd>) {
    let mut allowed: Vec<&str> = PD_ATTRS.to_vec();
    if parent.is_some() {
        allowed.extend_from_slice(CHILD_PD_ATTRS);
    }
    cx.attrs(node, &allowed, &[]);
    let name = cx.req(node, "name").unwrap_or("").to_string();
    let priority = cx
        .ranged(node, "priority", 0, 254, "priorities")
        .unwrap_or(0) as u8;
    let passive = cx.boolean(node, "passive", false);
    let _ = cx.boolean(node, "fpu", true);
    let _ = cx.boolean(node, "smc", false);
    for a in ["budget", "period", "stack_size", "cpu"] {
        let _ = cx.num(node, a);
    }
    let child_id = match parent {
        Some(_) if cx.req(node, "id").is_some() => {
            cx.ranged(node, "id", 0, 62, "child ids").map(|v| v as u8)
        }
        _ => None,
    };
    let index = out.len();
    out.push(Pd {
        name,
        priority,
        passive,
        program_image: String::new(),
        parent,
        child_id,
        maps: Vec::new(),
        irqs: Vec::new(),
        ioports: Vec::new(),
        role: None,
        restart: None,
        heartbeat: None,
        state_quota: None,
        net: None,
        filter: None,
        setvar_regions: Vec::new(),
        pos: cx.d.pos_of(node),
    });
    let mut program_image = None;
    let mut children = Vec::new();
    let mut seen_ext: Vec<&str> = Vec::new();
    for child in elements(node, cx.board) {
        if is_axolotl(child) {
            let tag = child.tag_name().name();
            if seen_ext.contains(&tag) {
                cx.error(
                    child,
                    format!("<axolotl:{tag}> given twice in one protection domain"),
                );
                continue;
            }
            seen_ext.push(tag);
            extension(cx, child, &mut out[index]);
            continue;
        }
        if !is_plain(child) {
            cx.unknown_element(child, "protection_domain");
            continue;
        }
        match child.tag_name().name() {
            "program_image" => {
                cx.attrs(child, &["path", "path_for_symbols"], &[]);
                if program_image.is_some() {
                    cx.error(child, "a protection domain has one program_image".into());
                }
                if let Some(p) = cx.req(child, "path") {
                    program_image = Some(p.to_string());
                }
            }
            "map" => {
                if let Some(m) = map(cx, child) {
                    out[index].maps.push(m);
                }
            }
            "irq" => {
                if let Some(irq) = irq(cx, child) {
                    out[index].irqs.push(irq);
                }
            }
            "ioport" => {
                cx.attrs(
                    child,
                    &["id", "setvar_id", "setvar_addr", "addr", "size"],
                    &["name"],
                );
                let has_id = cx.req(child, "id").is_some();
                let id = cx.ranged(child, "id", 0, 62, "ioport ids");
                let addr = cx.req_num(child, "addr");
                let size = cx.req_num(child, "size");
                if let (true, Some(id), Some(addr), Some(size)) = (has_id, id, addr, size) {
                    out[index].ioports.push(IoPort {
                        id: id as u8,
                        name: cx.get_ax(child, "name").map(ToString::to_string),
                        addr,
                        size,
                        pos: cx.d.pos_of(child),
                    });
                }
            }
            "setvar" => {
                cx.attrs(child, &["symbol", "region_paddr"], &[]);
                cx.req(child, "symbol");
                if let Some(r) = cx.req(child, "region_paddr") {
                    let pos = cx.d.pos_attr(child, "region_paddr");
                    out[index].setvar_regions.push((r.to_string(), pos));
                }
            }
            "protection_domain" => children.push(child),
            n if PASS_THROUGH_PD.contains(&n) => {}
            _ => cx.unknown_element(child, "protection_domain"),
        }
    }
    match program_image {
        Some(p) => out[index].program_image = p,
        None => cx.error(node, "missing <program_image>".into()),
    }
    for child in children {
        pd(cx, child, Some(index), out);
    }
}

fn map(cx: &mut Ctx, node: Node) -> Option<Map> {
    cx.attrs(
        node,
        &[
            "mr",
            "vaddr",
            "perms",
            "cached",
            "setvar_vaddr",
            "setvar_size",
            "setvar_prefill_size",
        ],
        &[],
    );
    let region = cx.req(node, "mr");
    let vaddr = cx.req_num(node, "vaddr");
    let perms_text = cx.get(node, "perms").unwrap_or("rw");
    let mut perms = Perms {
        read: false,
        write: false,
        execute: false,
    };
    let mut bad = perms_text.is_empty();
    for c in perms_text.chars() {
        match c {
            'r' => perms.read = true,
            'w' => perms.write = true,
            'x' => perms.execute = true,
            _ => bad = true,
        }
    }
    if bad {
        let pos = cx.d.pos_attr(node, "perms");
        cx.d.at(
            pos,
            format!(
                "{}: perms must combine 'r', 'w' and 'x', not '{perms_text}'",
                label(node)
            ),
        );
    } else if perms.write && !perms.read {
        let pos = cx.d.pos_attr(node, "perms");
        cx.d.at(
            pos,
            format!(
                "{}: perms '{perms_text}': write-only mappings are not allowed",
                label(node)
            ),
        );
    }
    let cached = cx.boolean(node, "cached", true);
    Some(Map {
        region: region?.to_string(),
        vaddr: vaddr?,
        perms,
        cached,
        setvar_vaddr: cx.get(node, "setvar_vaddr").map(ToString::to_string),
        pos: cx.d.pos_of(node),
    })
}

fn irq(cx: &mut Ctx, node: Node) -> Option<Irq> {
    let is = |a: &str| {
        node.attributes()
            .any(|x| x.name() == a && x.namespace().is_none())
    };
    if is("pin") || is("ioapic") {
        cx.attrs(
            node,
            &[
                "id",
                "setvar_id",
                "ioapic",
                "pin",
                "trigger",
                "polarity",
                "vector",
            ],
            &["name"],
        );
        let _ = cx.req_num(node, "pin");
        let _ = cx.req_num(node, "vector");
    } else if is("pcidev") {
        cx.attrs(
            node,
            &["id", "setvar_id", "pcidev", "handle", "vector"],
            &["name"],
        );
        let _ = cx.req_num(node, "handle");
        let _ = cx.req_num(node, "vector");
    } else {
        cx.attrs(node, &["irq", "id", "setvar_id", "trigger"], &["name"]);
        let _ = cx.req_num(node, "irq");
        if let Some(t) = cx.get(node, "trigger") {
            if t != "level" && t != "edge" {
                let pos = cx.d.pos_attr(node, "trigger");
                cx.d.at(
                    pos,
                    format!(
                        "{}: trigger must be 'level' or 'edge', not '{t}'",
                        label(node)
                    ),
                );
            }
        }
    }
    cx.req(node, "id")?;
    let id = cx.ranged(node, "id", 0, 62, "channel and irq ids")? as u8;
    Some(Irq {
        id,
        name: cx.get_ax(node, "name").map(ToString::to_string),
        irq: cx.get(node, "irq").and_then(number),
        pos: cx.d.pos_of(node),
    })
}

fn ms(cx: &mut Ctx, node: Node, attr: &str, default: u64) -> u64 {
    cx.num(node, attr).unwrap_or(default)
}

fn extension(cx: &mut Ctx, node: Node, pd: &mut Pd) {
    let tag = node.tag_name().name();
    let mut set_role = |cx: &mut Ctx, role: Role| {
        if pd.role.is_some() {
            cx.error(
                node,
                "a protection domain has at most one Axolotl role".into(),
            );
        } else {
            pd.role = Some(role);
        }
    };
    match tag {
        "monitor" => {
            cx.attrs(node, &["state", "publish"], &[]);
            let state = cx.get(node, "state").map(str::to_string);
            let publish = cx.get(node, "publish").map(str::to_string);
            set_role(cx, Role::Monitor { state, publish });
        }
        "warden" => {
            cx.attrs(node, &[], &[]);
            set_role(cx, Role::Warden);
        }
        "timer" => {
            cx.attrs(node, &[], &[]);
            set_role(cx, Role::Timer);
        }
        "store" => {
            cx.attrs(node, &["journal"], &[]);
            if let Some(j) = cx.req(node, "journal") {
                set_role(
                    cx,
                    Role::Store {
                        journal: j.to_string(),
                    },
                );
            }
        }
        "restart" => {
            cx.attrs(
                node,
                &[
                    "initial_backoff_ms",
                    "max_backoff_ms",
                    "min_run_ms",
                    "max_faults",
                    "window_ms",
                ],
                &[],
            );
            let dflt = RestartSpec::default();
            let spec = RestartSpec {
                initial_backoff_ms: ms(cx, node, "initial_backoff_ms", dflt.initial_backoff_ms),
                max_backoff_ms: ms(cx, node, "max_backoff_ms", dflt.max_backoff_ms),
                min_run_ms: ms(cx, node, "min_run_ms", dflt.min_run_ms),
                max_faults: cx
                    .ranged(node, "max_faults", 0, 64, "fault limits")
                    .unwrap_or(u64::from(dflt.max_faults)) as u32,
                window_ms: ms(cx, node, "window_ms", dflt.window_ms),
            };
            if spec.max_backoff_ms < spec.initial_backoff_ms {
                let pos = cx.d.pos_attr(node, "max_backoff_ms");
                cx.d.at(
                    pos,
                    format!(
                        "<axolotl:restart>: max_backoff_ms {} is less than initial_backoff_ms {}",
                        spec.max_backoff_ms, spec.initial_backoff_ms
                    ),
                );
            }
            pd.restart = Some(spec);
        }
        "heartbeat" => {
            cx.attrs(node, &["period_ms", "misses"], &[]);
            let dflt = HeartbeatSpec::default();
            let period_ms = if cx.get(node, "period_ms").is_some() {
                cx.ranged(node, "period_ms", 1, 3_600_000, "heartbeat periods")
            } else {
                Some(dflt.period_ms)
            };
            let misses = if cx.get(node, "misses").is_some() {
                cx.ranged(node, "misses", 1, 1000, "miss counts")
                    .map(|v| v as u32)
            } else {
                Some(dflt.misses)
            };
            pd.heartbeat = Some(HeartbeatSpec {
                period_ms: period_ms.unwrap_or(dflt.period_ms),
                misses: misses.unwrap_or(dflt.misses),
            });
        }
        "state" => {
            cx.attrs(node, &["quota_bytes", "quota_keys", "buffer", "read"], &[]);
            let dflt = StateQuota::default();
            pd.state_quota = Some(StateQuota {
                bytes: cx
                    .ranged(node, "quota_bytes", 0, u64::from(u32::MAX), "quotas")
                    .unwrap_or(u64::from(dflt.bytes)) as u32,
                keys: cx
                    .ranged(node, "quota_keys", 0, u64::from(u32::MAX), "quotas")
                    .unwrap_or(u64::from(dflt.keys)) as u32,
                buffer: cx.get(node, "buffer").map(str::to_string),
                reads: cx
                    .get(node, "read")
                    .map(|r| r.split_whitespace().map(str::to_string).collect())
                    .unwrap_or_default(),
                pos: cx.d.pos_of(node),
            });
        }
        "net" => {
            cx.attrs(node, &["mac", "address", "gateway"], &[]);
            let pos = cx.d.pos_of(node);
            let _ = (cx.req(node, "mac"), cx.req(node, "address"));
            let mac = cx.parsed(
                node,
                "mac",
                parse_mac,
                "six hex bytes like 52:54:00:12:34:56",
            );
            let addr = cx.parsed(
                node,
                "address",
                parse_cidr,
                "an IPv4 address with a prefix length like 10.0.2.15/24",
            );
            let gateway = cx.parsed(node, "gateway", parse_ipv4, "an IPv4 address");
            if let (Ok(Some(mac)), Ok(Some((addr, prefix_len))), Ok(gateway)) = (mac, addr, gateway)
            {
                pd.net = Some(NetSpec {
                    mac,
                    addr,
                    prefix_len,
                    gateway,
                    pos,
                });
            }
        }
        "filter" => {
            cx.attrs(node, &["default"], &[]);
            let _ = cx.req(node, "default");
            let default_pass = cx
                .choice(node, "default", &[("pass", true), ("drop", false)])
                .ok()
                .flatten()
                .unwrap_or(false);
            let mut rules = Vec::new();
            for r in elements(node, cx.board) {
                if !is_axolotl(r) || r.tag_name().name() != "rule" {
                    cx.unknown_element(r, "axolotl:filter");
                    continue;
                }
                if let Some(rule) = filter_rule(cx, r) {
                    rules.push(rule);
                }
            }
            pd.filter = Some(FilterSpec {
                default_pass,
                rules,
            });
        }
        _ => cx.unknown_element(node, "protection_domain"),
    }
}

fn filter_rule(cx: &mut Ctx, node: Node) -> Option<FilterRuleSpec> {
    cx.attrs(
        node,
        &["action", "direction", "proto", "remote", "ports"],
        &[],
    );
    cx.req(node, "action")?;
    let pass = cx.choice(node, "action", &[("pass", true), ("drop", false)]);
    let inbound = cx.choice(
        node,
        "direction",
        &[("in", Some(true)), ("out", Some(false)), ("both", None)],
    );
    let proto = cx.choice(
        node,
        "proto",
        &[("tcp", 6), ("udp", 17), ("icmp", 1), ("any", 0)],
    );
    let remote = cx.parsed(node, "remote", parse_cidr, "a network like 10.0.2.0/24");
    let ports = cx.parsed(
        node,
        "ports",
        parse_ports,
        "a port or a range like 7 or 1024-65535",
    );
    let (Ok(Some(pass)), Ok(inbound), Ok(proto), Ok(remote), Ok(ports)) =
        (pass, inbound, proto, remote, ports)
    else {
        return None;
    };
    let proto = proto.unwrap_or(0);
    if ports.is_some() && !matches!(proto, 6 | 17) {
        let p = cx.d.pos_attr(node, "ports");
        cx.d.at(
            p,
            "<axolotl:rule>: ports need proto=\"tcp\" or proto=\"udp\"".into(),
        );
        return None;
    }
    Some(FilterRuleSpec {
        pass,
        inbound: inbound.flatten(),
        proto,
        remote,
        ports,
        pos: cx.d.pos_of(node),
    })
}

/// `N` or `N-M`, `N <= M`.
pub(crate) fn parse_ports(v: &str) -> Option<(u16, u16)> {
    let (a, b) = match v.split_once('-') {
        Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
        None => {
            let p = v.trim().parse().ok()?;
            (p, p)
        }
    };
    (a <= b).then_some((a, b))
}

/// `a.b.c.d`.
pub(crate) fn parse_ipv4(s: &str) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut parts = s.split('.');
    for o in &mut out {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        *o = p.parse().ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// `a.b.c.d/n`.
pub(crate) fn parse_cidr(s: &str) -> Option<([u8; 4], u8)> {
    let (a, n) = s.split_once('/')?;
    let n: u8 = n.parse().ok().filter(|n| *n <= 32)?;
    Some((parse_ipv4(a)?, n))
}

/// `xx:xx:xx:xx:xx:xx`.
pub(crate) fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for o in &mut out {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *o = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// The PD named `name` by `attr` of `node`, if it is one of the channel's
/// two `ends`; otherwise reported.
fn channel_end(
    cx: &mut Ctx,
    sys: &System,
    node: Node,
    attr: &str,
    name: &str,
    ends: [usize; 2],
) -> Option<usize> {
    let found = sys.pd_index(name).filter(|p| ends.contains(p));
    if found.is_none() {
        let pos = cx.d.pos_attr(node, attr);
        cx.d.at(
            pos,
            format!(
                "{}: {attr} '{name}' is not one of the channel's PDs ({}, {})",
                label(node),
                sys.pds[ends[0]].name,
                sys.pds[ends[1]].name
            ),
        );
    }
    found
}

fn channel(cx: &mut Ctx, node: Node, sys: &mut System) {
    cx.attrs(node, &[], &[]);
    let mut ends = Vec::new();
    let mut rings = Vec::new();
    let mut links = Vec::new();
    for child in elements(node, cx.board) {
        if is_plain(child) && child.tag_name().name() == "end" {
            ends.push(child);
        } else if is_axolotl(child) && child.tag_name().name() == "ring" {
            rings.push(child);
        } else if is_axolotl(child) && child.tag_name().name() == "link" {
            links.push(child);
        } else {
            cx.unknown_element(child, "channel");
        }
    }
    if ends.len() != 2 {
        cx.error(
            node,
            format!("a channel has exactly two <end>s, not {}", ends.len()),
        );
        return;
    }
    let mut parsed = Vec::new();
    for e in &ends {
        cx.attrs(*e, &["pd", "id", "pp", "notify", "setvar_id"], &[]);
        let pd_name = cx.req(*e, "pd");
        let id = cx
            .req(*e, "id")
            .and_then(|_| cx.ranged(*e, "id", 0, 62, "channel and irq ids"));
        let pp = cx.boolean(*e, "pp", false);
        let notify = cx.boolean(*e, "notify", true);
        let pd = pd_name.and_then(|n| {
            let found = sys.pd_index(n);
            if found.is_none() {
                let pos = cx.d.pos_attr(*e, "pd");
                cx.d.at(
                    pos,
                    format!("{}: no protection domain named '{n}'", label(*e)),
                );
            }
            found
        });
        parsed.push((pd, id, pp, notify));
    }
    let [(Some(pa), Some(ia), ppa, na), (Some(pb), Some(ib), ppb, nb)] = parsed[..] else {
        return;
    };
    if ppa && ppb {
        cx.error(
            node,
            "both ends have pp=\"true\": protected calls go one way only".into(),
        );
    }
    let index = sys.channels.len();
    sys.channels.push(ChannelDecl {
        ends: [
            ChannelEnd {
                pd: pa,
                id: ia as u8,
                pp: ppa,
                notify: na,
            },
            ChannelEnd {
                pd: pb,
                id: ib as u8,
                pp: ppb,
                notify: nb,
            },
        ],
        pos: cx.d.pos_of(node),
    });
    for r in rings {
        cx.attrs(r, &["name", "producer", "region", "slots"], &[]);
        let name = cx.req(r, "name");
        let producer = cx.req(r, "producer");
        let region = cx.req(r, "region");
        let slots = cx.req_num(r, "slots");
        let (Some(name), Some(producer), Some(region), Some(slots)) =
            (name, producer, region, slots)
        else {
            continue;
        };
        let Some(prod) = channel_end(cx, sys, r, "producer", producer, [pa, pb]) else {
            continue;
        };
        sys.rings.push(Ring {
            name: name.to_string(),
            channel: index,
            producer: prod,
            consumer: if prod == pa { pb } else { pa },
            region: region.to_string(),
            slots: u32::try_from(slots).unwrap_or(u32::MAX),
            pos: cx.d.pos_of(r),
        });
    }
    for l in links {
        cx.attrs(
            l,
            &[
                "name",
                "sender",
                "region",
                "buffers",
                "buf_size",
                "max_ports",
            ],
            &[],
        );
        // An app's requests to a transport: the ports it may hold there.
        let max_ports = cx.ranged(l, "max_ports", 1, 64, "ports an app may hold");
        let name = cx.req(l, "name");
        let sender = cx.req(l, "sender");
        let region = cx.req(l, "region");
        let buffers = cx.req_num(l, "buffers");
        let buf_size = cx.req_num(l, "buf_size");
        let (Some(name), Some(sender), Some(region), Some(buffers), Some(buf_size)) =
            (name, sender, region, buffers, buf_size)
        else {
            continue;
        };
        let Some(snd) = channel_end(cx, sys, l, "sender", sender, [pa, pb]) else {
            continue;
        };
        sys.links.push(Link {
            name: name.to_string(),
            channel: index,
            sender: snd,
            receiver: if snd == pa { pb } else { pa },
            region: region.to_string(),
            buffers: u32::try_from(buffers).unwrap_or(u32::MAX),
            buf_size: u32::try_from(buf_size).unwrap_or(u32::MAX),
            max_ports: max_ports.map_or(1, |n| n as u16),
            pos: cx.d.pos_of(l),
        });
    }
}
