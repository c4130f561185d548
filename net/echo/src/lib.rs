//! The echo and discard app PD: the small services of RFC 862 and RFC 863
//! over TCP and UDP, as an app of the TCP and UDP PDs through the socket
//! interface (`axolotl-socket`), so that a fault in them is a fault of one
//! app PD and not of a transport.
//!
//! [`Services`] is the protocol logic: a message from a transport in, the
//! answer (if any) out, with no links or time. [`EchoApp`] is the PD: it
//! moves messages between the links and [`Services`], and takes a message
//! from a transport only when the link back has room for its answer, so a
//! slow sender holds TCP back instead of losing bytes.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;
use axolotl_link::{RxLink, TxLink};
use axolotl_monitor::query::{self, HasCounters};
use axolotl_sdk::{ChannelSet, Handler, Os};
use axolotl_socket::{decode, Handle, Msg};

/// What a port does with what arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// Sends every byte (datagram) back.
    Echo,
    /// Drops every byte (datagram).
    Discard,
}

/// What the services counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages from the transports.
    pub messages_in: u64,
    /// Messages to the transports.
    pub messages_out: u64,
    /// Bytes and datagrams discarded, in messages.
    pub discarded: u64,
    /// Messages from a transport that make no sense here (malformed, for
    /// a connection or port not ours, not for an app).
    pub bad: u64,
    /// Answers a full link refused.
    pub dropped: u64,
}

/// The protocol logic of the services on both transports.
pub struct Services {
    tcp_ports: Vec<(u16, Service)>,
    udp_ports: Vec<(u16, Service)>,
    /// Open TCP connections and what serves them.
    conns: Vec<(Handle, Service)>,
    stats: Stats,
}

impl Services {
    /// The services: `tcp` ports and `udp` ports, each with what serves it.
    pub fn new(tcp: &[(u16, Service)], udp: &[(u16, Service)]) -> Services {
        Services {
            tcp_ports: tcp.to_vec(),
            udp_ports: udp.to_vec(),
            conns: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// What was counted.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Open TCP connections.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// The requests that (re)start the services on TCP: one listen per
    /// port. A restarted TCP forgot them; so did TCP's view of a restarted
    /// app, which also resets the app's old connections.
    pub fn tcp_start(&mut self) -> impl Iterator<Item = Msg<'static>> + '_ {
        self.conns.clear();
        self.tcp_ports.iter().map(|&(p, _)| Msg::Listen(p))
    }

    /// The requests that (re)start the services on UDP: one bind per port.
    pub fn udp_start(&self) -> impl Iterator<Item = Msg<'static>> + '_ {
        self.udp_ports.iter().map(|&(p, _)| Msg::Bind(p))
    }

    fn bad(&mut self, what: &Msg<'_>) {
        self.stats.bad += 1;
        // A confused transport may send many: the 1st, 2nd, 4th, 8th...
        if self.stats.bad.is_power_of_two() {
            log::warn!(
                "unexpected {} message from a transport ({} so far)",
                what.op_name(),
                self.stats.bad
            );
        }
    }

    /// A message from TCP; the answer to send back, if any.
    pub fn on_tcp<'a>(&mut self, m: Msg<'a>) -> Option<Msg<'a>> {
        self.stats.messages_in += 1;
        let service = |conns: &[(Handle, Service)], h| conns.iter().find(|c| c.0 == h).map(|c| c.1);
        let answer = match m {
            Msg::Listening(p) => {
                log::info!("TCP port {p}: {:?}", self.tcp_service(p));
                None
            }
            Msg::Refused(p) => {
                log::error!("TCP refused port {p}");
                None
            }
            Msg::Accepted(h, port, _) => match self.tcp_service(port) {
                Some(s) => {
                    self.conns.retain(|c| c.0 != h);
                    self.conns.push((h, s));
                    None
                }
                None => {
                    self.bad(&m);
                    Some(Msg::Abort(h))
                }
            },
            Msg::Data(h, d) => match service(&self.conns, h) {
                Some(Service::Echo) => Some(Msg::Send(h, d)),
                Some(Service::Discard) => {
                    self.stats.discarded += 1;
                    None
                }
                None => {
                    self.bad(&m);
                    None
                }
            },
            // The peer is done: so are we, once what it sent went back.
            Msg::PeerClosed(h) => match service(&self.conns, h) {
                Some(_) => Some(Msg::Close(h)),
                None => {
                    self.bad(&m);
                    None
                }
            },
            Msg::Closed(h) => {
                self.conns.retain(|c| c.0 != h);
                None
            }
            other => {
                self.bad(&other);
                None
            }
        };
        if answer.is_some() {
            self.stats.messages_out += 1;
        }
        answer
    }

    /// A message from UDP; the answer to send back, if any.
    pub fn on_udp<'a>(&mut self, m: Msg<'a>) -> Option<Msg<'a>> {
        self.stats.messages_in += 1;
        let answer = match m {
            Msg::Bound(p) => {
                log::info!("UDP port {p}: {:?}", self.udp_service(p));
                None
            }
            Msg::Refused(p) => {
                log::error!("UDP refused port {p}");
                None
            }
            Msg::Datagram(port, from, d) => match self.udp_service(port) {
                Some(Service::Echo) => Some(Msg::SendTo(port, from, d)),
                Some(Service::Discard) => {
                    self.stats.discarded += 1;
                    None
                }
                None => {
                    self.bad(&m);
                    None
                }
            },
            other => {
                self.bad(&other);
                None
            }
        };
        if answer.is_some() {
            self.stats.messages_out += 1;
        }
        answer
    }

    fn tcp_service(&self, port: u16) -> Option<Service> {
        self.tcp_ports.iter().find(|p| p.0 == port).map(|p| p.1)
    }

    fn udp_service(&self, port: u16) -> Option<Service> {
        self.udp_ports.iter().find(|p| p.0 == port).map(|p| p.1)
    }
}

/// The links to one transport.
pub struct TransportLinks {
    /// Requests to the transport.
    pub to: TxLink,
    /// Events from it.
    pub from: RxLink,
}

/// Messages taken from one transport per round at most.
const BATCH: usize = 64;

/// The echo and discard app PD.
pub struct EchoApp {
    services: Services,
    tcp: TransportLinks,
    udp: TransportLinks,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Tcp,
    Udp,
}

impl EchoApp {
    /// The PD, with `services`, on its links to TCP and UDP.
    pub fn new(
        os: &mut dyn Os,
        services: Services,
        tcp: TransportLinks,
        udp: TransportLinks,
    ) -> EchoApp {
        let mut app = EchoApp { services, tcp, udp };
        app.start(Side::Tcp);
        app.start(Side::Udp);
        app.run(os);
        app
    }

    /// What was counted.
    pub fn stats(&self) -> Stats {
        self.services.stats()
    }

    fn start(&mut self, side: Side) {
        let (msgs, link): (Vec<Msg<'static>>, &mut TxLink) = match side {
            Side::Tcp => (self.services.tcp_start().collect(), &mut self.tcp.to),
            Side::Udp => (self.services.udp_start().collect(), &mut self.udp.to),
        };
        for m in msgs {
            if axolotl_socket::send(link, &m).is_err() {
                log::error!("cannot send {m:?}: the link is full");
            }
        }
    }

    /// Moves what one transport sent through the services while the link
    /// back has room for an answer: the number of messages moved, and
    /// whether it stopped for want of room.
    fn round(&mut self, side: Side) -> (usize, bool) {
        let mut buf = [0u8; axolotl_socket::MAX_MESSAGE];
        let links = match side {
            Side::Tcp => &mut self.tcp,
            Side::Udp => &mut self.udp,
        };
        let mut moved = 0;
        for _ in 0..BATCH {
            if links.to.free_buffers() == 0 {
                return (moved, true);
            }
            let (n, meta) = match links.from.recv(&mut buf) {
                Ok(Some(got)) => got,
                Ok(None) => break,
                Err(e) => {
                    if links.from.ring_errors().is_power_of_two() {
                        log::warn!(
                            "link from a transport: {e} ({} so far)",
                            links.from.ring_errors()
                        );
                    }
                    break;
                }
            };
            moved += 1;
            let m = match decode(meta, &buf[..n]) {
                Ok(m) => m,
                Err(e) => {
                    self.services.stats.bad += 1;
                    let bad = self.services.stats.bad;
                    if bad.is_power_of_two() {
                        log::warn!("malformed message from a transport: {e:?} ({bad} bad so far)");
                    }
                    continue;
                }
            };
            let answer = match side {
                Side::Tcp => self.services.on_tcp(m),
                Side::Udp => self.services.on_udp(m),
            };
            if let Some(a) = answer {
                if axolotl_socket::send(&mut links.to, &a).is_err() {
                    self.services.stats.dropped += 1;
                }
            }
        }
        (moved, false)
    }

    fn run(&mut self, os: &mut dyn Os) {
        loop {
            if self.tcp.from.peer_restarted() {
                log::info!("TCP restarted: listening again");
                self.start(Side::Tcp);
            }
            if self.udp.from.peer_restarted() {
                log::info!("UDP restarted: binding again");
                self.start(Side::Udp);
            }
            let (tcp_moved, tcp_full) = self.round(Side::Tcp);
            let (udp_moved, udp_full) = self.round(Side::Udp);
            for l in [&mut self.tcp, &mut self.udp] {
                if l.to.must_notify() {
                    os.notify(l.to.channel());
                }
                if l.from.must_notify() {
                    os.notify(l.from.channel());
                }
            }
            os.keepalive();
            if tcp_moved + udp_moved > 0 {
                continue;
            }
            // Idle: sleep unless something came meanwhile (packets from a
            // transport, or buffers back where an answer waits for one).
            let mut more = false;
            for (l, full) in [(&mut self.tcp, tcp_full), (&mut self.udp, udp_full)] {
                if full {
                    more |= !l.to.request_returns();
                } else {
                    more |= !l.from.request_packets();
                }
            }
            if !more {
                return;
            }
        }
    }
}

impl HasCounters for EchoApp {
    fn counters(&mut self) -> query::Counters {
        let s = self.services.stats();
        query::Counters {
            packets_in: s.messages_in,
            packets_out: s.messages_out,
            dropped: s.dropped,
            bad: s.bad
                + self.tcp.from.bad_descriptors()
                + self.udp.from.bad_descriptors()
                + self.tcp.to.bad_returns()
                + self.udp.to.bad_returns(),
            buffers_out: self.tcp.to.unreturned() + self.udp.to.unreturned(),
            ..Default::default()
        }
    }
}

impl Handler for EchoApp {
    type Error = core::convert::Infallible;

    fn notified(&mut self, os: &mut dyn Os, _channels: ChannelSet) -> Result<(), Self::Error> {
        self.run(os);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: ([u8; 4], u16) = ([10, 0, 2, 2], 5555);

    fn services() -> Services {
        Services::new(
            &[(7, Service::Echo), (9, Service::Discard)],
            &[(7, Service::Echo), (9, Service::Discard)],
        )
    }

    #[test]
    fn start_listens_and_binds_every_port() {
        let mut s = services();
        assert_eq!(
            s.tcp_start().collect::<Vec<_>>(),
            [Msg::Listen(7), Msg::Listen(9)]
        );
        assert_eq!(
            s.udp_start().collect::<Vec<_>>(),
            [Msg::Bind(7), Msg::Bind(9)]
        );
    }

    #[test]
    fn tcp_echo_sends_back_and_closes_after_the_peer() {
        let mut s = services();
        assert_eq!(s.on_tcp(Msg::Accepted(0x101, 7, PEER)), None);
        assert_eq!(
            s.on_tcp(Msg::Data(0x101, b"hello")),
            Some(Msg::Send(0x101, b"hello"))
        );
        assert_eq!(s.on_tcp(Msg::PeerClosed(0x101)), Some(Msg::Close(0x101)));
        assert_eq!(s.on_tcp(Msg::Closed(0x101)), None);
        assert_eq!(s.connections(), 0);
        // The handle means nothing now.
        assert_eq!(s.on_tcp(Msg::Data(0x101, b"late")), None);
        assert_eq!(s.stats().bad, 1);
    }

    #[test]
    fn tcp_discard_drops_everything() {
        let mut s = services();
        s.on_tcp(Msg::Accepted(0x202, 9, PEER));
        for _ in 0..3 {
            assert_eq!(s.on_tcp(Msg::Data(0x202, &[0; 1024])), None);
        }
        assert_eq!(s.stats().discarded, 3);
        assert_eq!(s.on_tcp(Msg::PeerClosed(0x202)), Some(Msg::Close(0x202)));
    }

    #[test]
    fn a_connection_on_a_port_not_ours_is_reset() {
        let mut s = services();
        assert_eq!(
            s.on_tcp(Msg::Accepted(0x303, 80, PEER)),
            Some(Msg::Abort(0x303))
        );
        assert_eq!(s.connections(), 0);
        // Requests are not events: a confused transport is counted.
        assert_eq!(s.on_tcp(Msg::Listen(7)), None);
        assert_eq!(s.on_tcp(Msg::Datagram(7, PEER, b"x")), None);
        assert_eq!(s.stats().bad, 3);
    }

    #[test]
    fn a_restart_forgets_connections() {
        let mut s = services();
        s.on_tcp(Msg::Accepted(1, 7, PEER));
        s.on_tcp(Msg::Accepted(2, 9, PEER));
        assert_eq!(s.connections(), 2);
        let _ = s.tcp_start().count();
        assert_eq!(s.connections(), 0);
        assert_eq!(s.on_tcp(Msg::Data(1, b"x")), None);
    }

    #[test]
    fn udp_echo_answers_the_sender_and_discard_does_not() {
        let mut s = services();
        assert_eq!(
            s.on_udp(Msg::Datagram(7, PEER, b"ping")),
            Some(Msg::SendTo(7, PEER, b"ping"))
        );
        assert_eq!(s.on_udp(Msg::Datagram(9, PEER, b"gone")), None);
        assert_eq!(s.on_udp(Msg::Datagram(53, PEER, b"?")), None);
        assert_eq!(s.on_udp(Msg::Bound(7)), None);
        let st = s.stats();
        assert_eq!(
            (st.discarded, st.bad, st.messages_in, st.messages_out),
            (1, 1, 4, 1)
        );
    }
}
