//! The packet filter: sits in a T-junction between IP and the transports
//! and sees every packet both ways.
//!
//! - A packet is an IPv4 packet, checked through smoltcp's wire types; one
//!   that does not parse is dropped.
//! - Flows: a packet that belongs to a flow already seen (same protocol and
//!   the same two address/port pairs, either way round) passes, whatever the
//!   rules say: established traffic is not cut by a rule change or by the
//!   filter's own restart once the flow table is reloaded.
//! - A packet that starts a flow is checked against the rules in order;
//!   the first that matches decides; none matching, the default policy
//!   does. A passed packet that starts a flow records it. For TCP only a
//!   SYN (without ACK) starts a flow; any other TCP segment of an unknown
//!   flow is dropped.
//! - The flow table is bounded ([`MAX_FLOWS`]). Flows expire after
//!   [`TCP_IDLE_NS`] / [`UDP_IDLE_NS`] without a packet, and a finished
//!   TCP flow (an RST, or FIN both ways) after [`TCP_CLOSING_NS`]. When the table is
//!   full, a new flow takes the place of, in this order: the TCP flow
//!   finished longest ago (RST, or FIN both ways), the UDP or ICMP flow
//!   idle longest (a rule lets its next datagram in again), the
//!   half-closed TCP flow idle longest. A live TCP
//!   connection is never pushed out: with the table full of them, the new
//!   connection's SYN is dropped (and counted), and its sender tries again.
//!   (Evicting live flows cut connections in the middle of their close:
//!   their next segment was a stray, dropped, and both ends hung.)
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

use alloc::collections::BTreeMap;
use heapless::Vec;
use smoltcp::wire::{IpProtocol, Ipv4Address, Ipv4Packet, TcpPacket, UdpPacket};

/// Flows tracked at once.
pub const MAX_FLOWS: usize = 1024;
/// Rules at most.
pub const MAX_RULES: usize = 32;
/// An idle TCP flow is forgotten after this long.
pub const TCP_IDLE_NS: u64 = 300_000_000_000;
/// A TCP flow that saw an RST, or FIN both ways, is forgotten after this long.
pub const TCP_CLOSING_NS: u64 = 10_000_000_000;
/// An idle UDP flow is forgotten after this long.
pub const UDP_IDLE_NS: u64 = 60_000_000_000;

/// Which way a packet goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the network to the system.
    In,
    /// From the system to the network.
    Out,
}

/// What to do with a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Let it through.
    Pass,
    /// Drop it.
    Drop,
}

/// Which protocols a rule covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// Any protocol.
    Any,
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP.
    Icmp,
}

/// An address and prefix length: `10.0.2.0/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Net {
    /// The address.
    pub addr: Ipv4Address,
    /// Prefix length, 0 to 32.
    pub prefix_len: u8,
}

impl Net {
    fn contains(&self, a: Ipv4Address) -> bool {
        let mask = match self.prefix_len {
            0 => 0,
            n => u32::MAX << (32 - u32::from(n.min(32))),
        };
        u32::from(a) & mask == u32::from(self.addr) & mask
    }
}

/// One rule. Unset fields match anything. Addresses and ports are seen
/// from the system: `remote` is the other end, `local_port` ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// What to do with a matching packet.
    pub action: Action,
    /// Which way, if only one.
    pub direction: Option<Direction>,
    /// Which protocol.
    pub proto: Proto,
    /// The other end's network.
    pub remote: Option<Net>,
    /// Our port range (TCP and UDP).
    pub local_ports: Option<(u16, u16)>,
}

/// The rules and the default policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// In order; the first that matches decides.
    pub rules: Vec<Rule, MAX_RULES>,
    /// When no rule matches.
    pub default: Action,
}

/// A flow: protocol and both ends, ours first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FlowKey {
    /// IP protocol number.
    pub proto: u8,
    /// Our address and port (0 for ICMP).
    pub local: (Ipv4Address, u16),
    /// The other end.
    pub remote: (Ipv4Address, u16),
}

#[derive(Clone, Copy, Debug, Default)]
struct Flow {
    /// When the last packet passed.
    last: u64,
    /// A FIN went out, came in; an RST either way.
    fin_out: bool,
    fin_in: bool,
    rst: bool,
    /// Taken back from the state store, and no packet of it seen since.
    restored: bool,
}

/// A flow's state as the state store keeps it: [`FLOW_FIN_OUT`],
/// [`FLOW_FIN_IN`] and [`FLOW_RST`] bits.
pub type FlowState = u8;
/// A FIN went out.
pub const FLOW_FIN_OUT: FlowState = 1;
/// A FIN came in.
pub const FLOW_FIN_IN: FlowState = 2;
/// An RST went either way.
pub const FLOW_RST: FlowState = 4;

impl Flow {
    fn state(&self) -> FlowState {
        (u8::from(self.fin_out) * FLOW_FIN_OUT)
            | (u8::from(self.fin_in) * FLOW_FIN_IN)
            | (u8::from(self.rst) * FLOW_RST)
    }
    fn closing(&self) -> bool {
        self.fin_out || self.fin_in || self.rst
    }
    fn finished(&self) -> bool {
        self.rst || (self.fin_out && self.fin_in)
    }
    fn note(&mut self, dir: Direction, s: &Summary) {
        self.rst |= s.rst;
        match dir {
            Direction::In => self.fin_in |= s.fin,
            Direction::Out => self.fin_out |= s.fin,
        }
    }
}

/// What the filter counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Passed as part of a known flow.
    pub passed_established: u64,
    /// Passed by a rule or the default.
    pub passed_new: u64,
    /// Dropped by a rule or the default.
    pub dropped_policy: u64,
    /// Dropped as malformed.
    pub dropped_malformed: u64,
    /// TCP segments of unknown flows that were not SYNs.
    pub dropped_stray: u64,
    /// New flows dropped because the table was full of live connections.
    pub dropped_full: u64,
}

/// The filter.
pub struct Filter {
    policy: Policy,
    flows: BTreeMap<FlowKey, Flow>,
    stats: Stats,
    resync_until: u64,
    /// Whether flows added and forgotten are noted (for the state store).
    noting: bool,
    /// Flows added, or whose state changed, with their state now.
    added: alloc::vec::Vec<(FlowKey, FlowState)>,
    forgotten: alloc::vec::Vec<FlowKey>,
}

/// A packet's protocol, both ends and TCP flags, as the filter needs them.
struct Summary {
    key: FlowKey,
    syn_only: bool,
    fin: bool,
    rst: bool,
}

fn summarize(dir: Direction, packet: &[u8]) -> Option<Summary> {
    let ip = Ipv4Packet::new_checked(packet).ok()?;
    if !ip.verify_checksum() {
        return None;
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let proto = ip.next_header();
    let payload = ip.payload();
    let (sport, dport, syn_only, fin, rst) = match proto {
        IpProtocol::Tcp => {
            let t = TcpPacket::new_checked(payload).ok()?;
            (
                t.src_port(),
                t.dst_port(),
                t.syn() && !t.ack(),
                t.fin(),
                t.rst(),
            )
        }
        IpProtocol::Udp => {
            let u = UdpPacket::new_checked(payload).ok()?;
            (u.src_port(), u.dst_port(), false, false, false)
        }
        _ => (0, 0, false, false, false),
    };
    let key = match dir {
        Direction::In => FlowKey {
            proto: proto.into(),
            local: (dst, dport),
            remote: (src, sport),
        },
        Direction::Out => FlowKey {
            proto: proto.into(),
            local: (src, sport),
            remote: (dst, dport),
        },
    };
    Some(Summary {
        key,
        syn_only,
        fin,
        rst,
    })
}

impl Rule {
    fn matches(&self, dir: Direction, key: &FlowKey) -> bool {
        let proto_ok = match self.proto {
            Proto::Any => true,
            Proto::Tcp => key.proto == u8::from(IpProtocol::Tcp),
            Proto::Udp => key.proto == u8::from(IpProtocol::Udp),
            Proto::Icmp => key.proto == u8::from(IpProtocol::Icmp),
        };
        proto_ok
            && self.direction.is_none_or(|d| d == dir)
            && self.remote.is_none_or(|n| n.contains(key.remote.0))
            && self
                .local_ports
                .is_none_or(|(lo, hi)| (lo..=hi).contains(&key.local.1))
    }
}

impl Filter {
    /// A filter with `policy` and no flows.
    pub fn new(policy: Policy) -> Filter {
        Filter {
            policy,
            flows: BTreeMap::new(),
            stats: Stats::default(),
            resync_until: 0,
            noting: false,
            added: alloc::vec::Vec::new(),
            forgotten: alloc::vec::Vec::new(),
        }
    }

    /// From now on, notes the flows it adds and forgets, for
    /// [`Filter::take_added`] and [`Filter::take_forgotten`] (which must
    /// then be called, or the notes grow).
    pub fn note_changes(&mut self) {
        self.noting = true;
    }

    /// Whether flows were added (or finished) since the last
    /// [`Filter::take_added`].
    pub fn has_added(&self) -> bool {
        !self.added.is_empty()
    }

    /// The flows added since the last call, and those that finished (an
    /// RST, or FIN both ways), each with its state now; oldest first.
    pub fn take_added(&mut self) -> alloc::vec::Vec<(FlowKey, FlowState)> {
        core::mem::take(&mut self.added)
    }

    /// The flows forgotten since the last call (expired or pushed out).
    pub fn take_forgotten(&mut self) -> alloc::vec::Vec<FlowKey> {
        core::mem::take(&mut self.forgotten)
    }

    /// What was counted.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The flows known now (to save in the state store).
    pub fn flows(&self) -> impl Iterator<Item = FlowKey> + '_ {
        self.flows.keys().copied()
    }

    /// Takes back a flow saved before a restart, in `state`; whether it
    /// found room (it pushes no flow out). Until a packet of it passes, it gives way to a new flow
    /// in a full table before any flow seen since (after finished and UDP
    /// flows): it may be one whose end the earlier filter never saw.
    pub fn restore_flow(&mut self, key: FlowKey, state: FlowState, now: u64) -> bool {
        if self.flows.len() >= MAX_FLOWS && !self.flows.contains_key(&key) {
            return false;
        }
        self.flows.insert(
            key,
            Flow {
                last: now,
                fin_out: state & FLOW_FIN_OUT != 0,
                fin_in: state & FLOW_FIN_IN != 0,
                rst: state & FLOW_RST != 0,
                restored: true,
            },
        );
        true
    }

    fn idle_limit(key: &FlowKey, f: &Flow) -> u64 {
        // A half-closed connection may still carry a long transfer the
        // other way (and stall in it for a while): only a finished one is
        // forgotten sooner.
        if f.finished() {
            TCP_CLOSING_NS
        } else if key.proto == u8::from(IpProtocol::Tcp) {
            TCP_IDLE_NS
        } else {
            UDP_IDLE_NS
        }
    }

    /// After a restart the flow table is empty although connections are
    /// open: until `until`, a TCP segment of an unknown flow is judged by
    /// the rules as a new connection's first segment would be (and its
    /// flow remembered) instead of being dropped as stray. The rules still
    /// apply, so nothing passes that a new connection could not open.
    pub fn resync_until(&mut self, until: u64) {
        self.resync_until = until;
    }

    /// Forgets flows idle too long.
    pub fn expire(&mut self, now: u64) {
        let (noting, forgotten) = (self.noting, &mut self.forgotten);
        self.flows.retain(|k, f| {
            let keep = now.saturating_sub(f.last) < Self::idle_limit(k, f);
            if !keep && noting {
                forgotten.push(*k);
            }
            keep
        });
    }

    /// Records a new flow; false if the table is full of live TCP
    /// connections, none of which may go for it.
    fn remember(&mut self, key: FlowKey, now: u64) -> bool {
        if let Some(f) = self.flows.get_mut(&key) {
            f.last = now;
            return true;
        }
        if self.flows.len() >= MAX_FLOWS {
            self.expire(now);
        }
        if self.flows.len() >= MAX_FLOWS {
            let tcp = u8::from(IpProtocol::Tcp);
            // Rank: finished TCP first, then UDP/ICMP, then TCP taken
            // back from the store and not seen since, then half-closed
            // TCP; within a rank, idle longest first. Live TCP: never.
            let victim = self
                .flows
                .iter()
                .filter_map(|(k, f)| {
                    let rank = if k.proto != tcp {
                        1
                    } else if f.finished() {
                        0
                    } else if f.restored {
                        2
                    } else if f.closing() {
                        3
                    } else {
                        return None;
                    };
                    Some(((rank, f.last), *k))
                })
                .min_by_key(|(order, _)| *order)
                .map(|(_, k)| k);
            match victim {
                Some(k) => {
                    self.flows.remove(&k);
                    if self.noting {
                        self.forgotten.push(k);
                    }
                }
                None => return false,
            }
        }
        self.flows.insert(
            key,
            Flow {
                last: now,
                ..Flow::default()
            },
        );
        if self.noting {
            // A key forgotten and added again in one round stays.
            self.forgotten.retain(|k| *k != key);
            self.added.push((key, 0));
        }
        true
    }

    /// Decides about one packet going `dir` at time `now`.
    pub fn check(&mut self, dir: Direction, packet: &[u8], now: u64) -> Action {
        let Some(s) = summarize(dir, packet) else {
            self.stats.dropped_malformed += 1;
            return Action::Drop;
        };
        if let Some(f) = self.flows.get_mut(&s.key) {
            if now.saturating_sub(f.last) < Self::idle_limit(&s.key, f) {
                f.last = now;
                f.restored = false;
                let was_finished = f.finished();
                f.note(dir, &s);
                if self.noting && !was_finished && f.finished() {
                    self.added.push((s.key, f.state()));
                }
                self.stats.passed_established += 1;
                return Action::Pass;
            }
        }
        let is_tcp = s.key.proto == u8::from(IpProtocol::Tcp);
        if is_tcp && !s.syn_only && now >= self.resync_until {
            self.stats.dropped_stray += 1;
            return Action::Drop;
        }
        let action = self
            .policy
            .rules
            .iter()
            .find(|r| r.matches(dir, &s.key))
            .map_or(self.policy.default, |r| r.action);
        match action {
            Action::Pass if !self.remember(s.key, now) => {
                self.stats.dropped_full += 1;
                return Action::Drop;
            }
            Action::Pass => {
                self.stats.passed_new += 1;
                if let Some(f) = self.flows.get_mut(&s.key) {
                    f.note(dir, &s);
                    if self.noting && f.finished() {
                        self.added.push((s.key, f.state()));
                    }
                }
            }
            Action::Drop => self.stats.dropped_policy += 1,
        }
        action
    }
}

pub mod component;
pub mod kept;

#[cfg(test)]
mod tests;
