//! The IP layer: the only PD that talks to the NIC driver.
//!
//! - Frames from the NIC ([`Ip::receive_frame`]) are checked through
//!   smoltcp's wire types (lengths, versions, checksums) before anything
//!   else looks at them. ARP requests for our address are answered, and
//!   ARP replies and requests teach the cache. IPv4 packets for us are
//!   checked; ICMP echo requests are answered here; TCP and UDP packets go
//!   up ([`Sink::up`]) to the packet filter; other protocols get an ICMP
//!   "protocol unreachable". Fragments are dropped (and counted): nothing is
//!   reassembled, so no amount of fragments can take memory.
//! - Packets from above ([`Ip::send`]) are whole IPv4 packets (the
//!   transports build their headers); they are checked (version, length,
//!   source is us), routed (on-link or through the gateway), and sent once
//!   the next hop's MAC is known. A packet for a next hop not yet in the
//!   cache waits in a bounded queue while ARP asks; after
//!   [`ARP_RETRIES`] unanswered requests its packets are dropped.
//! - [`Ip::poll`] expires cache entries after [`ARP_TTL_NS`] and repeats
//!   ARP requests every [`ARP_RETRY_NS`].
//!
//! No clock, no device: time is an argument, output goes to a [`Sink`].
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

use heapless::Vec;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetFrame, EthernetProtocol, EthernetRepr,
    Icmpv4DstUnreachable, Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Packet, Ipv4Repr,
};
pub use smoltcp::wire::{EthernetAddress, Ipv4Address};

/// Largest Ethernet frame handled (no VLAN tag, no jumbo frames).
pub const MAX_FRAME: usize = 1514;
/// Ethernet header bytes.
pub const ETH_HEADER: usize = 14;
/// Largest IPv4 packet (the Ethernet MTU).
pub const MTU: usize = MAX_FRAME - ETH_HEADER;
/// ARP cache entries.
pub const ARP_ENTRIES: usize = 32;
/// How long a learnt MAC address is trusted.
pub const ARP_TTL_NS: u64 = 60_000_000_000;
/// How often an unanswered ARP request is repeated.
pub const ARP_RETRY_NS: u64 = 1_000_000_000;
/// Unanswered requests before the waiting packets are dropped.
pub const ARP_RETRIES: u8 = 3;
/// Packets waiting for ARP, over all next hops.
pub const PENDING_PACKETS: usize = 8;

/// Time in nanoseconds, from any fixed start.
pub type Nanos = u64;

/// Where the IP layer's output goes.
pub trait Sink {
    /// A whole Ethernet frame for the NIC.
    fn to_nic(&mut self, frame: &[u8]);
    /// A checked IPv4 packet (TCP or UDP) for us, for the packet filter.
    fn up(&mut self, packet: &[u8]);
}

/// The interface's addresses and route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Our MAC address.
    pub mac: EthernetAddress,
    /// Our IPv4 address.
    pub addr: Ipv4Address,
    /// The on-link prefix length.
    pub prefix_len: u8,
    /// The default gateway, if any.
    pub gateway: Option<Ipv4Address>,
}

impl Config {
    fn on_link(&self, a: Ipv4Address) -> bool {
        let mask = match self.prefix_len {
            0 => 0,
            n => u32::MAX << (32 - u32::from(n.min(32))),
        };
        (u32::from(a) & mask) == (u32::from(self.addr) & mask)
    }

    fn broadcast(&self) -> Ipv4Address {
        let host = match self.prefix_len {
            n if n >= 32 => 0,
            n => u32::MAX >> n,
        };
        Ipv4Address::from(u32::from(self.addr) | host)
    }

    /// The next hop towards `dst`, or `None` if there is no route.
    pub fn next_hop(&self, dst: Ipv4Address) -> Option<Ipv4Address> {
        if self.on_link(dst) {
            Some(dst)
        } else {
            self.gateway
        }
    }
}

/// What the IP layer counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames taken from the NIC.
    pub frames_in: u64,
    /// Frames given to the NIC.
    pub frames_out: u64,
    /// Frames or packets dropped as malformed (bad length, version,
    /// checksum, header).
    pub malformed: u64,
    /// Frames not for us (another MAC, another IP address).
    pub not_ours: u64,
    /// Fragments dropped.
    pub fragments: u64,
    /// ICMP echo requests answered.
    pub echo_replies: u64,
    /// Packets passed up.
    pub up: u64,
    /// Packets from above refused (malformed, not from us, no route).
    pub refused: u64,
    /// Packets dropped waiting for ARP (queue full or no answer).
    pub arp_dropped: u64,
}

#[derive(Clone, Copy, Debug)]
struct ArpEntry {
    ip: Ipv4Address,
    mac: EthernetAddress,
    learnt: Nanos,
}

#[derive(Clone, Copy, Debug)]
struct Resolving {
    ip: Ipv4Address,
    asked: Nanos,
    tries: u8,
}

struct Pending {
    next_hop: Ipv4Address,
    len: usize,
    packet: [u8; MTU],
}

/// The IP layer.
pub struct Ip {
    cfg: Config,
    arp: Vec<ArpEntry, ARP_ENTRIES>,
    resolving: Vec<Resolving, PENDING_PACKETS>,
    pending: Vec<Pending, PENDING_PACKETS>,
    stats: Stats,
    /// Changes of the cache as the state store keeps it (a neighbour
    /// came, went, changed its address, or was learnt in a new step).
    changes: u64,
}

fn caps() -> ChecksumCapabilities {
    ChecksumCapabilities::default()
}

impl Ip {
    /// An IP layer with an empty cache.
    pub fn new(cfg: Config) -> Ip {
        Ip {
            cfg,
            arp: Vec::new(),
            resolving: Vec::new(),
            pending: Vec::new(),
            stats: Stats::default(),
            changes: 0,
        }
    }

    /// How many times the cache changed as the state store keeps it: a
    /// neighbour came, went or changed its address, or was learnt again in
    /// a new [`neighbours::STEP_NS`] step.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// What was counted so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The neighbours the cache holds at `now` (not expired).
    pub fn neighbours(&self, now: Nanos) -> impl Iterator<Item = neighbours::Neighbour> + '_ {
        self.arp
            .iter()
            .filter(move |e| now.saturating_sub(e.learnt) < ARP_TTL_NS)
            .map(|e| neighbours::Neighbour {
                ip: e.ip,
                mac: e.mac,
                learnt: e.learnt,
            })
    }

    /// Takes a neighbour an earlier incarnation knew (from the state
    /// store) into the cache, unless it has expired at `now`, is not a
    /// unicast neighbour, or the cache is full; whether it was taken.
    pub fn remember(&mut self, n: neighbours::Neighbour, now: Nanos) -> bool {
        let fresh = n.learnt <= now && now - n.learnt < ARP_TTL_NS;
        let ok = fresh
            && n.mac.is_unicast()
            && !(n.ip.is_broadcast() || n.ip.is_multicast() || n.ip.is_unspecified())
            && !self.arp.iter().any(|e| e.ip == n.ip);
        ok && self
            .arp
            .push(ArpEntry {
                ip: n.ip,
                mac: n.mac,
                learnt: n.learnt,
            })
            .is_ok()
    }

    /// The MAC address the cache holds for `ip`, if any.
    pub fn lookup(&self, ip: Ipv4Address, now: Nanos) -> Option<EthernetAddress> {
        self.arp
            .iter()
            .find(|e| e.ip == ip && now.saturating_sub(e.learnt) < ARP_TTL_NS)
            .map(|e| e.mac)
    }

    fn learn(&mut self, ip: Ipv4Address, mac: EthernetAddress, now: Nanos, sink: &mut dyn Sink) {
        if !mac.is_unicast() || ip.is_broadcast() || ip.is_multicast() || ip.is_unspecified() {
            return;
        }
        match self.arp.iter_mut().find(|e| e.ip == ip) {
            Some(e) => {
                let step = |t: Nanos| t / neighbours::STEP_NS;
                if e.mac != mac || step(e.learnt) != step(now) {
                    self.changes += 1;
                }
                e.mac = mac;
                e.learnt = now;
            }
            None => {
                self.changes += 1;
                if self.arp.is_full() {
                    // Forget the oldest.
                    let oldest = (0..self.arp.len())
                        .min_by_key(|&i| self.arp[i].learnt)
                        .unwrap_or(0);
                    self.arp.swap_remove(oldest);
                }
                let _ = self.arp.push(ArpEntry {
                    ip,
                    mac,
                    learnt: now,
                });
            }
        }
        self.resolving.retain(|r| r.ip != ip);
        // Send what waited for this address.
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].next_hop == ip {
                let p = self.pending.swap_remove(i);
                self.emit_ipv4(mac, &p.packet[..p.len], sink);
            } else {
                i += 1;
            }
        }
    }

    /// Handles one frame from the NIC.
    pub fn receive_frame(&mut self, frame: &[u8], now: Nanos, sink: &mut dyn Sink) {
        self.stats.frames_in += 1;
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            self.stats.malformed += 1;
            return;
        };
        let dst = eth.dst_addr();
        if dst != self.cfg.mac && !dst.is_broadcast() {
            self.stats.not_ours += 1;
            return;
        }
        match eth.ethertype() {
            EthernetProtocol::Arp => self.receive_arp(eth.payload(), now, sink),
            EthernetProtocol::Ipv4 => self.receive_ipv4(eth.src_addr(), eth.payload(), now, sink),
            _ => self.stats.not_ours += 1,
        }
    }

    fn receive_arp(&mut self, payload: &[u8], now: Nanos, sink: &mut dyn Sink) {
        let repr = ArpPacket::new_checked(payload).and_then(|p| ArpRepr::parse(&p));
        let Ok(ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr,
            source_protocol_addr,
            target_protocol_addr,
            ..
        }) = repr
        else {
            self.stats.malformed += 1;
            return;
        };
        let for_us = target_protocol_addr == self.cfg.addr;
        // Learn from anything addressed to us, and refresh what we know.
        if for_us || self.arp.iter().any(|e| e.ip == source_protocol_addr) {
            self.learn(source_protocol_addr, source_hardware_addr, now, sink);
        }
        if for_us && operation == ArpOperation::Request && source_hardware_addr.is_unicast() {
            let reply = ArpRepr::EthernetIpv4 {
                operation: ArpOperation::Reply,
                source_hardware_addr: self.cfg.mac,
                source_protocol_addr: self.cfg.addr,
                target_hardware_addr: source_hardware_addr,
                target_protocol_addr: source_protocol_addr,
            };
            self.emit_arp(source_hardware_addr, &reply, sink);
        }
    }

    fn emit_arp(&mut self, to: EthernetAddress, repr: &ArpRepr, sink: &mut dyn Sink) {
        let mut buf = [0u8; ETH_HEADER + 28];
        let len = ETH_HEADER + repr.buffer_len();
        let mut frame = EthernetFrame::new_unchecked(&mut buf[..len]);
        EthernetRepr {
            src_addr: self.cfg.mac,
            dst_addr: to,
            ethertype: EthernetProtocol::Arp,
        }
        .emit(&mut frame);
        repr.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
        self.stats.frames_out += 1;
        sink.to_nic(&buf[..len]);
    }

    fn receive_ipv4(
        &mut self,
        src_mac: EthernetAddress,
        payload: &[u8],
        now: Nanos,
        sink: &mut dyn Sink,
    ) {
        let Ok(packet) = Ipv4Packet::new_checked(payload) else {
            self.stats.malformed += 1;
            return;
        };
        if packet.more_frags() || packet.frag_offset() != 0 {
            self.stats.fragments += 1;
            return;
        }
        let Ok(repr) = Ipv4Repr::parse(&packet, &caps()) else {
            self.stats.malformed += 1;
            return;
        };
        if repr.dst_addr != self.cfg.addr {
            self.stats.not_ours += 1;
            return;
        }
        if repr.src_addr.is_broadcast() || repr.src_addr.is_multicast() {
            self.stats.malformed += 1;
            return;
        }
        // The sender of a packet for us is a neighbour worth remembering
        // only if it is on-link; refresh it if known.
        if self.arp.iter().any(|e| e.ip == repr.src_addr) {
            self.learn(repr.src_addr, src_mac, now, sink);
        }
        let whole = &payload[..packet.total_len() as usize];
        match repr.next_header {
            IpProtocol::Icmp => self.receive_icmp(&repr, packet.payload(), now, sink),
            IpProtocol::Tcp | IpProtocol::Udp => {
                self.stats.up += 1;
                sink.up(whole);
            }
            _ => self.unreachable(
                Icmpv4DstUnreachable::ProtoUnreachable,
                &repr,
                packet.payload(),
                now,
                sink,
            ),
        }
    }

    fn receive_icmp(&mut self, ip: &Ipv4Repr, payload: &[u8], now: Nanos, sink: &mut dyn Sink) {
        let Ok(packet) = Icmpv4Packet::new_checked(payload) else {
            self.stats.malformed += 1;
            return;
        };
        let Ok(repr) = Icmpv4Repr::parse(&packet, &caps()) else {
            self.stats.malformed += 1;
            return;
        };
        if let Icmpv4Repr::EchoRequest {
            ident,
            seq_no,
            data,
        } = repr
        {
            let reply = Icmpv4Repr::EchoReply {
                ident,
                seq_no,
                data,
            };
            if self.send_icmp(ip.src_addr, &reply, now, sink) {
                self.stats.echo_replies += 1;
            }
        }
    }

    /// Tells `about`'s sender that its packet could not be delivered.
    fn unreachable(
        &mut self,
        reason: Icmpv4DstUnreachable,
        about: &Ipv4Repr,
        payload: &[u8],
        now: Nanos,
        sink: &mut dyn Sink,
    ) {
        // RFC 1812: as much of the offending packet as fits in a 576-byte
        // datagram (IP header + ICMP header + the packet's header + data).
        let data = &payload[..payload.len().min(576 - 20 - 8 - 20)];
        let repr = Icmpv4Repr::DstUnreachable {
            reason,
            header: *about,
            data,
        };
        self.send_icmp(about.src_addr, &repr, now, sink);
    }

    fn send_icmp(
        &mut self,
        dst: Ipv4Address,
        repr: &Icmpv4Repr,
        now: Nanos,
        sink: &mut dyn Sink,
    ) -> bool {
        let icmp_len = repr.buffer_len();
        let ip = Ipv4Repr {
            src_addr: self.cfg.addr,
            dst_addr: dst,
            next_header: IpProtocol::Icmp,
            payload_len: icmp_len,
            hop_limit: 64,
        };
        let total = ip.buffer_len() + icmp_len;
        if total > MTU {
            return false;
        }
        let mut buf = [0u8; MTU];
        let mut packet = Ipv4Packet::new_unchecked(&mut buf[..total]);
        ip.emit(&mut packet, &caps());
        repr.emit(
            &mut Icmpv4Packet::new_unchecked(packet.payload_mut()),
            &caps(),
        );
        self.route(&buf[..total], dst, now, sink)
    }

    /// Sends an IPv4 packet built by a transport. Refused (false) when it
    /// is not a well-formed IPv4 packet from our address, or there is no
    /// route.
    pub fn send(&mut self, packet: &[u8], now: Nanos, sink: &mut dyn Sink) -> bool {
        // Longer than the MTU: refused (no fragmentation here), before it
        // could overrun a frame or a buffer waiting for ARP.
        let checked = Ipv4Packet::new_checked(packet).ok().filter(|p| {
            usize::from(p.total_len()) <= MTU
                && Ipv4Repr::parse(p, &caps()).is_ok()
                && p.src_addr() == self.cfg.addr
        });
        let Some(p) = checked else {
            self.stats.refused += 1;
            return false;
        };
        let dst = p.dst_addr();
        let whole = &packet[..p.total_len() as usize];
        self.route(whole, dst, now, sink)
    }

    fn route(&mut self, packet: &[u8], dst: Ipv4Address, now: Nanos, sink: &mut dyn Sink) -> bool {
        if dst == self.cfg.broadcast() || dst.is_broadcast() {
            self.emit_ipv4(EthernetAddress::BROADCAST, packet, sink);
            return true;
        }
        let Some(hop) = self.cfg.next_hop(dst) else {
            self.stats.refused += 1;
            return false;
        };
        if let Some(mac) = self.lookup(hop, now) {
            self.emit_ipv4(mac, packet, sink);
            return true;
        }
        // Wait for ARP.
        if self.pending.is_full() {
            self.stats.arp_dropped += 1;
            return false;
        }
        let mut p = Pending {
            next_hop: hop,
            len: packet.len(),
            packet: [0; MTU],
        };
        p.packet[..packet.len()].copy_from_slice(packet);
        let _ = self.pending.push(p);
        if !self.resolving.iter().any(|r| r.ip == hop) {
            let _ = self.resolving.push(Resolving {
                ip: hop,
                asked: now,
                tries: 1,
            });
            self.ask(hop, sink);
        }
        true
    }

    fn ask(&mut self, ip: Ipv4Address, sink: &mut dyn Sink) {
        let req = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: self.cfg.mac,
            source_protocol_addr: self.cfg.addr,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: ip,
        };
        self.emit_arp(EthernetAddress::BROADCAST, &req, sink);
    }

    fn emit_ipv4(&mut self, to: EthernetAddress, packet: &[u8], sink: &mut dyn Sink) {
        let mut buf = [0u8; MAX_FRAME];
        let len = ETH_HEADER + packet.len();
        if len > MAX_FRAME {
            self.stats.refused += 1;
            return;
        }
        let mut frame = EthernetFrame::new_unchecked(&mut buf[..len]);
        EthernetRepr {
            src_addr: self.cfg.mac,
            dst_addr: to,
            ethertype: EthernetProtocol::Ipv4,
        }
        .emit(&mut frame);
        frame.payload_mut().copy_from_slice(packet);
        self.stats.frames_out += 1;
        sink.to_nic(&buf[..len]);
    }

    /// Expires old cache entries, repeats unanswered ARP requests, and
    /// drops the packets of next hops that never answered.
    pub fn poll(&mut self, now: Nanos, sink: &mut dyn Sink) {
        let before = self.arp.len();
        self.arp
            .retain(|e| now.saturating_sub(e.learnt) < ARP_TTL_NS);
        if self.arp.len() != before {
            self.changes += 1;
        }
        let mut i = 0;
        while i < self.resolving.len() {
            let r = self.resolving[i];
            if now.saturating_sub(r.asked) < ARP_RETRY_NS {
                i += 1;
                continue;
            }
            if r.tries >= ARP_RETRIES {
                self.resolving.swap_remove(i);
                let before = self.pending.len();
                self.pending.retain(|p| p.next_hop != r.ip);
                self.stats.arp_dropped += (before - self.pending.len()) as u64;
                log::debug!("no ARP answer from {}: dropped its packets", r.ip);
                continue;
            }
            self.resolving[i].tries += 1;
            self.resolving[i].asked = now;
            self.ask(r.ip, sink);
            i += 1;
        }
    }

    /// When [`Ip::poll`] next has something to do, if ever.
    pub fn poll_at(&self) -> Option<Nanos> {
        let retry = self.resolving.iter().map(|r| r.asked + ARP_RETRY_NS).min();
        let expiry = self.arp.iter().map(|e| e.learnt + ARP_TTL_NS).min();
        match (retry, expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

pub mod component;
pub mod neighbours;

#[cfg(test)]
mod tests;
