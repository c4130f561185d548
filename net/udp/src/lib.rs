//! The UDP service: smoltcp's UDP sockets (and its ICMP "port unreachable"
//! for ports nobody bound) over IPv4 packets from and to the packet filter.
//! As for TCP, the applications run inside the service for now: echo
//! (port 7 in the demo) sends each datagram back to its sender, discard
//! drops it.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;
use axolotl_netqueue::{instant, Queues};
use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::udp;
use smoltcp::wire::Ipv4Address;

pub use axolotl_netqueue::MTU;

/// Packets queued towards smoltcp before more are dropped.
pub const INPUT_QUEUE: usize = 64;
/// Datagrams each socket holds each way.
pub const DATAGRAMS: usize = 16;

/// What serves a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum App {
    /// Each datagram goes back to its sender.
    Echo,
    /// Each datagram is dropped.
    Discard,
}

/// What the service counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets taken in.
    pub packets_in: u64,
    /// Packets dropped because the queue was full or they were too long.
    pub dropped_in: u64,
    /// Packets sent.
    pub packets_out: u64,
    /// Datagrams the apps received.
    pub datagrams: u64,
    /// Datagrams echo could not send back (no room).
    pub echo_dropped: u64,
}

/// The UDP service.
pub struct UdpService {
    iface: Interface,
    dev: Queues,
    sockets: SocketSet<'static>,
    ports: Vec<(SocketHandle, u16, App)>,
    stats: Stats,
}

impl UdpService {
    /// A service at `addr/prefix_len` (routing through `gateway`) serving
    /// `ports`, at time `now_ns`.
    pub fn new(
        addr: Ipv4Address,
        prefix_len: u8,
        gateway: Option<Ipv4Address>,
        ports: &[(u16, App)],
        now_ns: u64,
    ) -> UdpService {
        let (iface, dev) =
            axolotl_netqueue::interface(addr, prefix_len, gateway, INPUT_QUEUE, now_ns);
        let mut sockets = SocketSet::new(Vec::new());
        let mut bound = Vec::new();
        for &(port, app) in ports {
            let buf = || {
                udp::PacketBuffer::new(
                    vec![udp::PacketMetadata::EMPTY; DATAGRAMS],
                    vec![0u8; DATAGRAMS * MTU],
                )
            };
            let mut s = udp::Socket::new(buf(), buf());
            if let Err(e) = s.bind(port) {
                log::warn!("cannot bind UDP port {port}: {e}");
                continue;
            }
            bound.push((sockets.add(s), port, app));
        }
        UdpService {
            iface,
            dev,
            sockets,
            ports: bound,
            stats: Stats::default(),
        }
    }

    /// What was counted.
    pub fn stats(&self) -> Stats {
        Stats {
            packets_in: self.dev.pushed(),
            dropped_in: self.dev.dropped(),
            packets_out: self.dev.sent(),
            ..self.stats
        }
    }

    /// The ports served.
    pub fn ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.ports.iter().map(|p| p.1)
    }

    /// Queues an IPv4 packet from the filter (dropped and counted when the
    /// queue is full or the packet too long).
    pub fn input(&mut self, packet: &[u8]) {
        self.dev.push(packet);
    }

    /// Runs UDP and the apps at `now_ns`; every packet to send goes to `out`.
    pub fn poll(&mut self, now_ns: u64, out: &mut dyn FnMut(&[u8])) {
        let now = instant(now_ns);
        for _ in 0..256 {
            self.iface.poll(now, &mut self.dev, &mut self.sockets);
            let mut moved = false;
            for &(h, _, app) in &self.ports {
                let s = self.sockets.get_mut::<udp::Socket>(h);
                let mut buf = [0u8; MTU];
                while s.can_recv() {
                    let Ok((n, meta)) = s.recv_slice(&mut buf) else {
                        break;
                    };
                    self.stats.datagrams += 1;
                    moved = true;
                    if app == App::Echo && s.send_slice(&buf[..n], meta.endpoint).is_err() {
                        self.stats.echo_dropped += 1;
                    }
                }
            }
            // smoltcp sends at most one packet per socket per poll: go on
            // while anything leaves.
            let sent = self.dev.send_to(out);
            if !moved && !sent && !self.dev.has_input() {
                break;
            }
        }
    }

    /// When [`UdpService::poll`] must run next, if ever (UDP has no timers
    /// but smoltcp's own).
    pub fn poll_at(&mut self, now_ns: u64) -> Option<u64> {
        self.iface
            .poll_at(instant(now_ns), &self.sockets)
            .map(|t| (t.total_micros().max(0) as u64).saturating_mul(1_000))
    }
}

impl axolotl_netqueue::component::Transport for UdpService {
    fn input(&mut self, packet: &[u8]) {
        UdpService::input(self, packet)
    }
    fn poll(&mut self, now_ns: u64, out: &mut dyn FnMut(&[u8])) {
        UdpService::poll(self, now_ns, out)
    }
    fn poll_at(&mut self, now_ns: u64) -> Option<u64> {
        UdpService::poll_at(self, now_ns)
    }
}

#[cfg(test)]
mod tests;
