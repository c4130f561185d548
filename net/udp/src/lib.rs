//! The UDP service: smoltcp's UDP sockets (and its ICMP "port unreachable"
//! for ports nobody bound) over IPv4 packets from and to the packet filter.
//! Ports are served by app PDs through the socket interface
//! ([`component::UdpWithApps`]: bind, send to, datagrams), or by the
//! service itself: echo sends each datagram back to its sender, discard
//! drops it (for systems without an app PD, and for tests).
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;
use axolotl_netqueue::{instant, Queues};
use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::udp;
use smoltcp::wire::{IpEndpoint, Ipv4Address};

pub use axolotl_netqueue::MTU;

pub mod component;

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
    /// App PD number `n`, through the socket interface.
    Client(u8),
}

/// An IPv4 endpoint: address and port.
pub type Endpoint = ([u8; 4], u16);

/// Where the datagrams of app PDs' ports go.
pub trait DatagramIo {
    /// Whether one more datagram for `client` fits now.
    fn room(&mut self, client: u8) -> bool;
    /// Delivers a datagram that came to `port` from `from` (called only
    /// after `room` said yes).
    fn datagram(&mut self, client: u8, port: u16, from: Endpoint, data: &[u8]);
}

/// No app PDs.
pub struct NoClients;

impl DatagramIo for NoClients {
    fn room(&mut self, _: u8) -> bool {
        false
    }
    fn datagram(&mut self, _: u8, _: u16, _: Endpoint, _: &[u8]) {}
}

fn endpoint(e: IpEndpoint) -> Endpoint {
    let smoltcp::wire::IpAddress::Ipv4(a) = e.addr;
    (a.octets(), e.port)
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
        let mut svc = UdpService {
            iface,
            dev,
            sockets: SocketSet::new(Vec::new()),
            ports: Vec::new(),
            stats: Stats::default(),
        };
        for &(port, app) in ports {
            svc.bind(port, app);
        }
        svc
    }

    /// Opens a socket on `port` for `app`; false if the port is taken.
    fn bind(&mut self, port: u16, app: App) -> bool {
        if self.ports.iter().any(|p| p.1 == port) {
            return false;
        }
        let buf = || {
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; DATAGRAMS],
                vec![0u8; DATAGRAMS * MTU],
            )
        };
        let mut s = udp::Socket::new(buf(), buf());
        if let Err(e) = s.bind(port) {
            log::warn!("cannot bind UDP port {port}: {e}");
            return false;
        }
        self.ports.push((self.sockets.add(s), port, app));
        true
    }

    /// App PD `client` binds `port`: true if it is its own now (again).
    pub fn client_bind(&mut self, client: u8, port: u16) -> bool {
        match self.ports.iter().find(|p| p.1 == port) {
            Some(p) => p.2 == App::Client(client),
            None => self.bind(port, App::Client(client)),
        }
    }

    /// The ports app PDs hold, with the app that holds each.
    pub fn client_ports(&self) -> Vec<(u16, u8)> {
        self.ports
            .iter()
            .filter_map(|&(_, port, app)| match app {
                App::Client(c) => Some((port, c)),
                _ => None,
            })
            .collect()
    }

    /// App PD `client` restarted: its ports are free again.
    pub fn client_reset(&mut self, client: u8) {
        let sockets = &mut self.sockets;
        self.ports.retain(|&(h, _, app)| {
            let keep = app != App::Client(client);
            if !keep {
                sockets.remove(h);
            }
            keep
        });
    }

    /// App PD `client` sends `data` from its `port` to `to`; false if the
    /// port is not its own or the socket has no room (the datagram is
    /// dropped, as UDP may).
    pub fn client_send_to(&mut self, client: u8, port: u16, to: Endpoint, data: &[u8]) -> bool {
        let Some(&(h, _, _)) = self
            .ports
            .iter()
            .find(|p| p.1 == port && p.2 == App::Client(client))
        else {
            return false;
        };
        let to = IpEndpoint::new(Ipv4Address::from(to.0).into(), to.1);
        self.sockets
            .get_mut::<udp::Socket>(h)
            .send_slice(data, to)
            .is_ok()
    }

    /// Whether datagrams wait for an app PD that had no room for them.
    pub fn clients_waiting(&mut self) -> bool {
        self.ports.iter().any(|&(h, _, app)| {
            matches!(app, App::Client(_)) && self.sockets.get::<udp::Socket>(h).can_recv()
        })
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

    /// Runs UDP and the built-in apps at `now_ns`; every packet to send
    /// goes to `out`.
    pub fn poll(&mut self, now_ns: u64, out: &mut dyn FnMut(&[u8])) {
        self.poll_with(now_ns, out, &mut NoClients)
    }

    /// Runs UDP and the apps at `now_ns`, datagrams for app PDs going to
    /// `io`; every packet to send goes to `out`.
    pub fn poll_with(&mut self, now_ns: u64, out: &mut dyn FnMut(&[u8]), io: &mut dyn DatagramIo) {
        let now = instant(now_ns);
        for _ in 0..256 {
            self.iface.poll(now, &mut self.dev, &mut self.sockets);
            let mut moved = false;
            for &(h, port, app) in &self.ports {
                let s = self.sockets.get_mut::<udp::Socket>(h);
                let mut buf = [0u8; MTU];
                while s.can_recv() {
                    if let App::Client(k) = app {
                        if !io.room(k) {
                            break;
                        }
                    }
                    let Ok((n, meta)) = s.recv_slice(&mut buf) else {
                        break;
                    };
                    self.stats.datagrams += 1;
                    moved = true;
                    match app {
                        App::Echo => {
                            if s.send_slice(&buf[..n], meta.endpoint).is_err() {
                                self.stats.echo_dropped += 1;
                            }
                        }
                        App::Discard => {}
                        App::Client(k) => io.datagram(k, port, endpoint(meta.endpoint), &buf[..n]),
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

impl axolotl_netqueue::ports::Ports for UdpService {
    fn take(&mut self, app: u8, port: u16) -> bool {
        self.client_bind(app, port)
    }
    fn held(&self) -> Vec<(u16, u8)> {
        self.client_ports()
    }
}
