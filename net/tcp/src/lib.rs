//! The TCP service: smoltcp's TCP state machine (no hand-written TCP) over
//! IPv4 packets that arrive from the packet filter and leave towards it.
//!
//! The service is an smoltcp `Interface` of medium IP whose "device" is a
//! pair of bounded queues: [`TcpService::input`] queues a packet from the
//! filter, [`TcpService::poll`] runs smoltcp and hands every packet it
//! emits to the caller. Each listening port has a number of sockets, so
//! that that many connections can be open on it at once; a socket whose
//! connection ended listens again.
//!
//! Services: for now the applications run inside this PD, as handlers of
//! their port ([`App`]): echo (RFC 862) returns every byte, discard (RFC
//! 863) drops them. Applications as PDs of their own need a socket
//! interface over rings; that is the next step.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;
use axolotl_netqueue::{instant, Queues};
use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::wire::Ipv4Address;

pub use axolotl_netqueue::MTU;
/// Packets queued towards smoltcp before more are dropped.
pub const INPUT_QUEUE: usize = 64;

/// What serves a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum App {
    /// Every byte received is sent back.
    Echo,
    /// Every byte received is dropped.
    Discard,
}

/// A listening port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listen {
    /// The port.
    pub port: u16,
    /// What serves it.
    pub app: App,
    /// Connections at once.
    pub sockets: usize,
    /// Bytes of receive and of send buffer per socket.
    pub buffer: usize,
}

/// What the service counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets taken in.
    pub packets_in: u64,
    /// Packets dropped because the input queue was full or they were too long.
    pub dropped_in: u64,
    /// Packets sent.
    pub packets_out: u64,
    /// Connections accepted.
    pub accepted: u64,
    /// Bytes received by the apps.
    pub bytes_in: u64,
    /// Bytes sent by the apps.
    pub bytes_out: u64,
}

struct Slot {
    handle: SocketHandle,
    listen: Listen,
    was_open: bool,
}

/// The TCP service.
pub struct TcpService {
    iface: Interface,
    dev: Queues,
    sockets: SocketSet<'static>,
    slots: Vec<Slot>,
    stats: Stats,
}

impl TcpService {
    /// A service at `addr/prefix_len` (routing through `gateway`) with
    /// `listens` open, at time `now_ns`.
    pub fn new(
        addr: Ipv4Address,
        prefix_len: u8,
        gateway: Option<Ipv4Address>,
        listens: &[Listen],
        now_ns: u64,
    ) -> TcpService {
        let (iface, dev) =
            axolotl_netqueue::interface(addr, prefix_len, gateway, INPUT_QUEUE, now_ns);
        let mut sockets = SocketSet::new(Vec::new());
        let mut slots = Vec::new();
        for l in listens {
            for _ in 0..l.sockets.max(1) {
                let s = tcp::Socket::new(
                    tcp::SocketBuffer::new(vec![0; l.buffer]),
                    tcp::SocketBuffer::new(vec![0; l.buffer]),
                );
                let handle = sockets.add(s);
                slots.push(Slot {
                    handle,
                    listen: *l,
                    was_open: false,
                });
            }
        }
        let mut svc = TcpService {
            iface,
            dev,
            sockets,
            slots,
            stats: Stats::default(),
        };
        svc.relisten();
        svc
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

    /// The ports listened on.
    pub fn ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.slots.iter().map(|s| s.listen.port)
    }

    fn relisten(&mut self) {
        for slot in &mut self.slots {
            let s = self.sockets.get_mut::<tcp::Socket>(slot.handle);
            if !s.is_open() {
                slot.was_open = false;
                if let Err(e) = s.listen(slot.listen.port) {
                    log::warn!("cannot listen on port {}: {e}", slot.listen.port);
                }
            }
        }
    }

    /// Queues an IPv4 packet from the filter (dropped and counted when the
    /// queue is full or the packet too long).
    pub fn input(&mut self, packet: &[u8]) {
        self.dev.push(packet);
    }

    /// Runs TCP and the apps at `now_ns`; every packet to send goes to
    /// `out`.
    pub fn poll(&mut self, now_ns: u64, out: &mut dyn FnMut(&[u8])) {
        let now = instant(now_ns);
        // Until nothing moves: packets in, apps, packets out.
        for _ in 0..256 {
            self.iface.poll(now, &mut self.dev, &mut self.sockets);
            let moved = self.serve();
            self.relisten();
            // smoltcp sends at most one packet per socket per poll: go on
            // while anything leaves.
            let sent = self.dev.send_to(out);
            if !moved && !sent && !self.dev.has_input() {
                break;
            }
        }
    }

    /// Runs the apps once; whether any byte moved.
    fn serve(&mut self) -> bool {
        let mut moved = false;
        for slot in &mut self.slots {
            let s = self.sockets.get_mut::<tcp::Socket>(slot.handle);
            if s.is_active() && !slot.was_open {
                slot.was_open = true;
                self.stats.accepted += 1;
            }
            match slot.listen.app {
                App::Echo => {
                    while s.can_recv() && s.can_send() {
                        let room = s.send_capacity() - s.send_queue();
                        let mut chunk = [0u8; 1024];
                        let want = room.min(chunk.len());
                        if want == 0 {
                            break;
                        }
                        let n = s.recv_slice(&mut chunk[..want]).unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        let sent = s.send_slice(&chunk[..n]).unwrap_or(0);
                        self.stats.bytes_in += n as u64;
                        self.stats.bytes_out += sent as u64;
                        moved = true;
                    }
                }
                App::Discard => {
                    while s.can_recv() {
                        let n = s.recv(|b| (b.len(), b.len())).unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        self.stats.bytes_in += n as u64;
                        moved = true;
                    }
                }
            }
            // The peer closed its side and everything was answered: close ours.
            if !s.may_recv() && s.may_send() && s.send_queue() == 0 {
                s.close();
                moved = true;
            }
        }
        moved
    }

    /// When [`TcpService::poll`] must run next (retransmissions, delayed
    /// ACKs, keep-alive), in nanoseconds; `None` if only a packet can
    /// make work.
    pub fn poll_at(&mut self, now_ns: u64) -> Option<u64> {
        self.iface
            .poll_at(instant(now_ns), &self.sockets)
            .map(|t| (t.total_micros().max(0) as u64).saturating_mul(1_000))
    }
}

impl axolotl_netqueue::component::Transport for TcpService {
    fn input(&mut self, packet: &[u8]) {
        TcpService::input(self, packet)
    }
    fn poll(&mut self, now_ns: u64, out: &mut dyn FnMut(&[u8])) {
        TcpService::poll(self, now_ns, out)
    }
    fn poll_at(&mut self, now_ns: u64) -> Option<u64> {
        TcpService::poll_at(self, now_ns)
    }
}

#[cfg(test)]
mod tests;
