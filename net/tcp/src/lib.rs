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
//! Who serves a port ([`App`]): an app PD, through the socket interface
//! (`axolotl-socket`; see [`TcpService::client_listen`] and
//! [`ClientIo`]), or one of two services built in for tests and
//! benchmarks: echo (RFC 862) returns every byte, discard (RFC 863) drops
//! them.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod leftover;
pub mod reannounce;

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
    /// App PD number `n`, through the socket interface.
    Client(u8),
}

/// A connection handle as the socket interface carries it (24 bits): the
/// slot in bits 0-7, the slot's generation in bits 8-15, so that a handle
/// of a connection that ended never reaches the next one on that slot, and
/// the TCP PD's incarnation in bits 16-23, so that a handle of an earlier
/// incarnation names nothing in this one (for 255 restarts in a row).
pub type Handle = u32;

/// What the service tells app PDs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A connection on `handle` to local port `port` from `remote`.
    Accepted(Handle, u16, ([u8; 4], u16)),
    /// Bytes that arrived.
    Data(Handle, &'a [u8]),
    /// The peer sent FIN.
    PeerClosed(Handle),
    /// The connection is gone.
    Closed(Handle),
}

/// Where events for app PDs go.
pub trait ClientIo {
    /// Whether one more event for `client` fits now.
    fn room(&mut self, client: u8) -> bool;
    /// Delivers an event (called only after `room` said yes); whether it
    /// was delivered. `room` is a hint: a link the app broke may still
    /// refuse the event, and what was refused is offered again later (data
    /// stays in the socket, so nothing acknowledged to the peer is lost).
    fn event(&mut self, client: u8, ev: Event<'_>) -> bool;
}

/// No app PDs.
pub struct NoClients;

impl ClientIo for NoClients {
    fn room(&mut self, _: u8) -> bool {
        false
    }
    fn event(&mut self, _: u8, _: Event<'_>) -> bool {
        false
    }
}

/// Bytes of data per [`Event::Data`] at most.
pub const MAX_EVENT_DATA: usize = 1024;
/// Connections at once per port an app listens on.
pub const CLIENT_SOCKETS: usize = 8;
/// Bytes of buffer each way per app connection.
pub const CLIENT_BUFFER: usize = MAX_BUFFER;
/// Bytes of receive buffer per socket at most: the largest window TCP
/// can advertise without window scaling. smoltcp rounds a scaled window
/// down, so with a larger buffer the window's right edge moves back by a
/// byte whenever the free room is odd; the peer's byte at the old edge is
/// refused, and once the window closes smoltcp also refuses the peer's
/// ACKs (their sequence number lies past the closed window). An app that
/// waits for that connection's send buffer to drain before it reads more
/// then stalls it, and its other connections, for good.
pub const MAX_BUFFER: usize = 65_535;
/// Slots at most (handles carry 8 bits of slot).
pub const MAX_SLOTS: usize = 256;
/// An idle connection is probed this often.
pub const KEEP_ALIVE: smoltcp::time::Duration = smoltcp::time::Duration::from_secs(30);
/// A connection whose peer answers nothing for this long (data, a FIN or
/// keep-alive probes outstanding) is aborted, and its socket listens again.
pub const PEER_TIMEOUT: smoltcp::time::Duration = smoltcp::time::Duration::from_secs(90);

/// A listening port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listen {
    /// The port.
    pub port: u16,
    /// What serves it.
    pub app: App,
    /// Connections at once.
    pub sockets: usize,
    /// Bytes of receive and of send buffer per socket (at most
    /// [`MAX_BUFFER`]).
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
    /// Connections refused because every socket of their port was busy.
    pub refused_busy: u64,
    /// Bytes received by the apps.
    pub bytes_in: u64,
    /// Bytes sent by the apps.
    pub bytes_out: u64,
    /// Rounds of window updates sent again (see [`reannounce`]).
    pub window_resends: u64,
    /// SYNs of a connection a socket already held, dropped (see
    /// [`TcpService::input`]).
    pub repeated_syns: u64,
    /// Peers of an earlier incarnation's connections told to reset them
    /// (see [`leftover`]).
    pub provoked: u64,
}

struct Slot {
    handle: SocketHandle,
    listen: Listen,
    was_open: bool,
    /// Generation, bumped at each new connection.
    gen: u8,
    /// (App connections) the app was told of it.
    accepted_sent: bool,
    peer_closed_sent: bool,
    /// Dropped with its listen (the app went away); never listens again.
    retired: bool,
}

/// The TCP service.
pub struct TcpService {
    iface: Interface,
    dev: Queues,
    sockets: SocketSet<'static>,
    slots: Vec<Slot>,
    /// `Closed` events for app connections that ended while the app's
    /// link had no room, oldest first. Their sockets listen again at once:
    /// a port must not refuse connections because its app is busy.
    owed_closed: Vec<(u8, Handle)>,
    stats: Stats,
    /// This incarnation's number (low 8 bits), in every handle.
    incarnation: u8,
    reannounce: reannounce::Reannounce,
    /// An earlier incarnation's connections whose peers are still to be
    /// told (see [`leftover`]).
    leftovers: Vec<leftover::Ends>,
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
        let mut svc = TcpService {
            iface,
            dev,
            sockets: SocketSet::new(Vec::new()),
            slots: Vec::new(),
            owed_closed: Vec::new(),
            stats: Stats::default(),
            incarnation: 0,
            reannounce: reannounce::Reannounce::new(),
            leftovers: Vec::new(),
        };
        for l in listens {
            svc.add_listen(*l);
        }
        svc.relisten();
        svc
    }

    fn add_listen(&mut self, l: Listen) -> bool {
        let l = Listen {
            buffer: l.buffer.min(MAX_BUFFER),
            ..l
        };
        let n = l.sockets.max(1);
        let free: Vec<usize> = (0..self.slots.len())
            .filter(|&i| {
                self.slots[i].retired
                    && !self
                        .sockets
                        .get::<tcp::Socket>(self.slots[i].handle)
                        .is_open()
            })
            .collect();
        if self.slots.len() - free.len() + n > MAX_SLOTS {
            return false;
        }
        let mut reuse = free.into_iter();
        for _ in 0..n {
            match reuse.next() {
                Some(i) => {
                    let slot = &mut self.slots[i];
                    slot.listen = l;
                    slot.retired = false;
                    slot.was_open = false;
                }
                None => {
                    let mut s = tcp::Socket::new(
                        tcp::SocketBuffer::new(vec![0; l.buffer]),
                        tcp::SocketBuffer::new(vec![0; l.buffer]),
                    );
                    // A peer that vanished (its last segments lost, its
                    // host gone) must not hold a socket of the port for
                    // ever: probe an idle connection, give up on one
                    // silent for too long.
                    s.set_keep_alive(Some(KEEP_ALIVE));
                    s.set_timeout(Some(PEER_TIMEOUT));
                    let handle = self.sockets.add(s);
                    self.slots.push(Slot {
                        handle,
                        listen: l,
                        was_open: false,
                        gen: 0,
                        accepted_sent: false,
                        peer_closed_sent: false,
                        retired: false,
                    });
                }
            }
        }
        true
    }

    /// App PD `client` listens on `port`: false if the port is taken (by
    /// another app or a built-in service) or no slots are left. Listening
    /// again on a port of its own changes nothing: an app that saw TCP
    /// restart does so, and TCP may have its ports back from the store and
    /// connections on them already. (A restarted app is told apart by its
    /// link, and [`TcpService::client_reset`] first.)
    pub fn client_listen(&mut self, client: u8, port: u16) -> bool {
        let owner = self
            .slots
            .iter()
            .find(|s| !s.retired && s.listen.port == port)
            .map(|s| s.listen.app);
        match owner {
            Some(App::Client(c)) if c == client => return true,
            Some(_) => return false,
            None => {}
        }
        let ok = self.add_listen(Listen {
            port,
            app: App::Client(client),
            sockets: CLIENT_SOCKETS,
            buffer: CLIENT_BUFFER,
        });
        self.relisten();
        ok
    }

    /// Which incarnation of the TCP PD this is (from the state store): it
    /// goes into every handle from now on.
    pub fn set_incarnation(&mut self, n: u8) {
        self.incarnation = n;
    }

    /// The ports app PDs listen on, with the app that listens on each.
    pub fn client_ports(&self) -> Vec<(u16, u8)> {
        let mut ports: Vec<(u16, u8)> = self
            .slots
            .iter()
            .filter(|s| !s.retired)
            .filter_map(|s| match s.listen.app {
                App::Client(c) => Some((s.listen.port, c)),
                _ => None,
            })
            .collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    /// App PD `client` went away (restarted): its connections are reset
    /// and its ports closed.
    pub fn client_reset(&mut self, client: u8) {
        self.owed_closed.retain(|&(c, _)| c != client);
        for slot in &mut self.slots {
            if slot.listen.app == App::Client(client) && !slot.retired {
                self.sockets.get_mut::<tcp::Socket>(slot.handle).abort();
                slot.retired = true;
                slot.was_open = false;
            }
        }
    }

    fn client_slot(&mut self, client: u8, h: Handle) -> Option<&mut tcp::Socket<'static>> {
        let slot = self.slots.get((h & 0xff) as usize)?;
        let ok = !slot.retired
            && slot.listen.app == App::Client(client)
            && slot.gen == (h >> 8) as u8
            && (h >> 16) as u8 == self.incarnation
            && slot.was_open;
        ok.then(|| self.sockets.get_mut::<tcp::Socket>(slot.handle))
    }

    /// Bytes from app `client` for connection `h`: how many were taken
    /// (fewer when the send buffer is full: offer the rest later). Bytes
    /// for a connection that is gone are taken and dropped.
    pub fn client_send(&mut self, client: u8, h: Handle, data: &[u8]) -> usize {
        let Some(s) = self.client_slot(client, h) else {
            return data.len();
        };
        if !s.may_send() {
            return data.len();
        }
        let n = s.send_slice(data).unwrap_or(data.len());
        self.stats.bytes_out += n as u64;
        n
    }

    /// App `client` closes connection `h` (FIN after what it sent).
    pub fn client_close(&mut self, client: u8, h: Handle) {
        if let Some(s) = self.client_slot(client, h) {
            s.close();
        }
    }

    /// App `client` resets connection `h`.
    pub fn client_abort(&mut self, client: u8, h: Handle) {
        if let Some(s) = self.client_slot(client, h) {
            s.abort();
        }
    }

    /// What was counted.
    pub fn stats(&self) -> Stats {
        Stats {
            packets_in: self.dev.pushed(),
            dropped_in: self.dev.dropped(),
            packets_out: self.dev.sent(),
            window_resends: self.reannounce.resent(),
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
            // An app's connection that ended listens again once its end
            // was dealt with (`was_open` cleared by `serve_client`), never
            // before: a new connection must get a new handle.
            let unsettled = matches!(slot.listen.app, App::Client(_)) && slot.was_open;
            if is_idle(s) && !slot.retired && !unsettled {
                slot.was_open = false;
                if let Err(e) = s.listen(slot.listen.port) {
                    log::warn!("cannot listen on port {}: {e}", slot.listen.port);
                }
            }
        }
    }

    /// Queues an IPv4 packet from the filter (dropped and counted when the
    /// queue is full or the packet too long).
    ///
    /// A SYN of a connection a socket already holds (its peer did not
    /// hear the SYN-ACK, lost to a restarting NIC, say) is dropped: smoltcp
    /// gives a packet to the first socket that takes it, and a listening
    /// socket ahead of the connection's own would open a second
    /// connection with the same ends and another sequence number, which
    /// resets or mixes up the first. The connection's socket sends its
    /// SYN-ACK again by itself.
    pub fn input(&mut self, packet: &[u8]) {
        if let Some(syn) = parse_syn(packet) {
            if self.holds(syn) {
                self.stats.repeated_syns += 1;
                return;
            }
            self.note_syn(syn);
        }
        self.reannounce.incoming(packet);
        self.dev.push(packet);
    }

    /// Whether a socket already holds the connection a SYN to `port` from
    /// `from` would open.
    fn holds(&self, (port, from): (u16, ([u8; 4], u16))) -> bool {
        self.slots.iter().filter(|s| !s.retired).any(|slot| {
            let s = self.sockets.get::<tcp::Socket>(slot.handle);
            let ours = s.local_endpoint().is_some_and(|l| l.port == port);
            let theirs = s.remote_endpoint().is_some_and(|e| {
                let smoltcp::wire::IpAddress::Ipv4(a) = e.addr;
                (a.octets(), e.port) == from
            });
            s.state() != tcp::State::Listen && ours && theirs
        })
    }

    /// A new connection to a port of ours: if every socket of the port is
    /// busy, smoltcp refuses it with a reset. Counted, and logged with what
    /// holds the sockets (1st, 2nd, 4th... time), since a port that refuses
    /// connections under a light load means sockets are held too long.
    fn note_syn(&mut self, (port, from): (u16, ([u8; 4], u16))) {
        let mut sockets = 0;
        let mut states = alloc::collections::BTreeMap::new();
        for slot in self
            .slots
            .iter()
            .filter(|s| !s.retired && s.listen.port == port)
        {
            let s = self.sockets.get::<tcp::Socket>(slot.handle);
            let again = s.remote_endpoint().is_some_and(|e| {
                let smoltcp::wire::IpAddress::Ipv4(a) = e.addr;
                (a.octets(), e.port) == from
            });
            if s.state() == tcp::State::Listen || again {
                return;
            }
            sockets += 1;
            *states
                .entry(alloc::format!("{}", s.state()))
                .or_insert(0u32) += 1;
        }
        if sockets == 0 {
            return;
        }
        self.stats.refused_busy += 1;
        if self.stats.refused_busy.is_power_of_two() {
            let held: Vec<_> = states
                .iter()
                .map(|(s, n)| alloc::format!("{n} {s}"))
                .collect();
            log::warn!(
                "TCP port {port}: a connection refused, all {sockets} sockets busy ({}); {} refused so far",
                held.join(", "),
                self.stats.refused_busy
            );
        }
    }

    /// Runs TCP and the built-in apps at `now_ns`; every packet to send
    /// goes to `out`. (Without app PDs: see [`TcpService::poll_with`].)
    pub fn poll(&mut self, now_ns: u64, out: &mut dyn FnMut(&[u8])) {
        self.poll_with(now_ns, out, &mut NoClients)
    }

    /// The ends of every connection open now (from the first SYN answered
    /// to the last FIN acknowledged; not those in TIME-WAIT, which need
    /// nothing of their peers).
    pub fn connections(&self) -> Vec<leftover::Ends> {
        use smoltcp::wire::IpAddress;
        let mut open = Vec::new();
        for slot in self.slots.iter().filter(|s| !s.retired) {
            let s = self.sockets.get::<tcp::Socket>(slot.handle);
            if !s.is_active() || s.state() == tcp::State::TimeWait {
                continue;
            }
            if let (Some(l), Some(r)) = (s.local_endpoint(), s.remote_endpoint()) {
                let (IpAddress::Ipv4(la), IpAddress::Ipv4(ra)) = (l.addr, r.addr);
                open.push(leftover::ends((la.octets(), l.port), (ra.octets(), r.port)));
            }
        }
        open
    }

    /// Tells the peers of `left`, connections an earlier incarnation had
    /// open, to reset them (on the next poll; see [`leftover`]).
    pub fn provoke(&mut self, left: Vec<leftover::Ends>) {
        self.leftovers = left;
    }

    /// Runs TCP and the apps at `now_ns`; every packet to send goes to
    /// `out`, every event for an app PD to `io`.
    pub fn poll_with(&mut self, now_ns: u64, out: &mut dyn FnMut(&[u8]), io: &mut dyn ClientIo) {
        for e in core::mem::take(&mut self.leftovers) {
            for p in leftover::provoking_acks(&e) {
                out(&p);
            }
            self.stats.provoked += 1;
        }
        let now = instant(now_ns);
        // Until nothing moves: packets in, apps, packets out.
        for _ in 0..256 {
            self.iface.poll(now, &mut self.dev, &mut self.sockets);
            let moved = self.serve(io);
            self.relisten();
            // smoltcp sends at most one packet per socket per poll: go on
            // while anything leaves.
            let reannounce = &mut self.reannounce;
            let sent = self.dev.send_to(&mut |p| {
                reannounce.outgoing(p, now_ns);
                out(p);
            });
            if !moved && !sent && !self.dev.has_input() {
                break;
            }
        }
        self.reannounce.resend(now_ns, out);
    }

    /// Runs the apps once; whether any byte moved.
    fn serve(&mut self, io: &mut dyn ClientIo) -> bool {
        let mut moved = false;
        // What an app is owed comes first, in order; an app still owed
        // something hears nothing newer this round.
        let mut owing = [false; 256];
        self.owed_closed.retain(|&(c, h)| {
            if !owing[usize::from(c)] && io.room(c) && io.event(c, Event::Closed(h)) {
                moved = true;
                return false;
            }
            owing[usize::from(c)] = true;
            true
        });
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if slot.retired {
                continue;
            }
            let s = self.sockets.get_mut::<tcp::Socket>(slot.handle);
            if s.is_active() && !slot.was_open {
                slot.was_open = true;
                slot.gen = slot.gen.wrapping_add(1);
                slot.accepted_sent = false;
                slot.peer_closed_sent = false;
                self.stats.accepted += 1;
            }
            let handle = Handle::from(self.incarnation) << 16
                | Handle::from(slot.gen) << 8
                | index as Handle;
            if let App::Client(c) = slot.listen.app {
                // An app still owed older events hears nothing newer this
                // round, but its ended connections are settled all the same.
                let io: &mut dyn ClientIo = if owing[usize::from(c)] {
                    &mut NoClients
                } else {
                    &mut *io
                };
                let owed = &mut self.owed_closed;
                moved |= serve_client(s, slot, c, handle, io, &mut self.stats, owed);
                continue;
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
                App::Client(_) => {}
            }
            // The peer closed its side and everything was answered: close ours.
            if !s.may_recv() && s.may_send() && s.send_queue() == 0 {
                s.close();
                moved = true;
            }
        }
        moved
    }

    /// Whether any app connection has events waiting for room.
    pub fn clients_waiting(&mut self) -> bool {
        self.slots.iter().any(|slot| {
            let s = self.sockets.get::<tcp::Socket>(slot.handle);
            matches!(slot.listen.app, App::Client(_))
                && !slot.retired
                && slot.was_open
                && (!slot.accepted_sent || s.can_recv())
        }) || !self.owed_closed.is_empty()
    }

    /// When [`TcpService::poll`] must run next (retransmissions, delayed
    /// ACKs, keep-alive), in nanoseconds; `None` if only a packet can
    /// make work.
    pub fn poll_at(&mut self, now_ns: u64) -> Option<u64> {
        let tcp = self
            .iface
            .poll_at(instant(now_ns), &self.sockets)
            .map(|t| (t.total_micros().max(0) as u64).saturating_mul(1_000));
        match (tcp, self.reannounce.poll_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Whether a socket may listen again: closed, and done with its peer. An
/// aborted socket is closed at once but keeps its peer until smoltcp sent
/// the RST on the next poll; listening resets the socket, and would drop
/// that RST and leave the peer waiting on a connection nobody serves.
fn is_idle(s: &tcp::Socket<'_>) -> bool {
    !s.is_open() && s.remote_endpoint().is_none()
}

/// The local port and the sender of an IPv4 packet that opens a TCP
/// connection (SYN without ACK); `None` for anything else or malformed.
fn parse_syn(packet: &[u8]) -> Option<(u16, ([u8; 4], u16))> {
    use smoltcp::wire::{IpProtocol, Ipv4Packet, TcpPacket};
    let ip = Ipv4Packet::new_checked(packet).ok()?;
    if ip.next_header() != IpProtocol::Tcp {
        return None;
    }
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    (tcp.syn() && !tcp.ack()).then(|| (tcp.dst_port(), (ip.src_addr().octets(), tcp.src_port())))
}

/// One app connection's turn: tells the app what happened, as far as
/// there is room; whether anything moved.
fn serve_client(
    s: &mut tcp::Socket<'static>,
    slot: &mut Slot,
    c: u8,
    handle: Handle,
    io: &mut dyn ClientIo,
    stats: &mut Stats,
    owed_closed: &mut Vec<(u8, Handle)>,
) -> bool {
    let mut moved = false;
    if !slot.was_open {
        return false;
    }
    let gone = !s.is_open() || s.state() == tcp::State::TimeWait;
    if gone && !slot.accepted_sent {
        // Over before the app heard of it (reset, timed out): nothing to
        // tell, and the socket listens again at once.
        slot.was_open = false;
        s.abort();
        return true;
    }
    let fin_received = matches!(
        s.state(),
        tcp::State::CloseWait | tcp::State::LastAck | tcp::State::Closing | tcp::State::TimeWait
    );
    if !slot.accepted_sent {
        if s.state() == tcp::State::SynReceived {
            return false; // not a connection yet
        }
        if !io.room(c) {
            return false;
        }
        let local = s.local_endpoint().map_or(0, |e| e.port);
        let remote = s
            .remote_endpoint()
            .map(|e| match e.addr {
                smoltcp::wire::IpAddress::Ipv4(a) => (a.octets(), e.port),
            })
            .unwrap_or(([0; 4], 0));
        if !io.event(c, Event::Accepted(handle, local, remote)) {
            return false;
        }
        slot.accepted_sent = true;
        moved = true;
    }
    // Bytes leave the socket only once the app has them: a refused event
    // leaves them there for the next round (the peer has had them
    // acknowledged, so they must not be lost).
    while s.can_recv() && io.room(c) {
        let taken = s.recv(|buf| {
            let n = buf.len().min(MAX_EVENT_DATA);
            if n > 0 && io.event(c, Event::Data(handle, &buf[..n])) {
                (n, n)
            } else {
                (0, 0)
            }
        });
        let n = taken.unwrap_or(0);
        if n == 0 {
            break;
        }
        stats.bytes_in += n as u64;
        moved = true;
    }
    if fin_received
        && !s.can_recv()
        && !slot.peer_closed_sent
        && io.room(c)
        && io.event(c, Event::PeerClosed(handle))
    {
        slot.peer_closed_sent = true;
        moved = true;
    }
    if gone {
        // Gone: the app hears it now, or as soon as its link has room, and
        // the socket listens again at once (after TIME-WAIT too: the app's
        // side is done, and a short-lived service such as HTTP keeps up).
        if !(io.room(c) && io.event(c, Event::Closed(handle))) {
            owed_closed.push((c, handle));
        }
        slot.was_open = false;
        if s.state() == tcp::State::TimeWait {
            s.abort();
        }
        moved = true;
    }
    moved
}

pub mod component;

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

impl axolotl_netqueue::ports::Ports for TcpService {
    fn take(&mut self, app: u8, port: u16) -> bool {
        self.client_listen(app, port)
    }
    fn held(&self) -> Vec<(u16, u8)> {
        self.client_ports()
    }
}
