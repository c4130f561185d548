use super::*;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::time::Instant;
use smoltcp::wire::{IpAddress, Ipv4Packet, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber};

const US: Ipv4Address = Ipv4Address::new(10, 0, 2, 15);
const PEER: Ipv4Address = Ipv4Address::new(10, 0, 2, 2);

/// A peer: an smoltcp stack of its own, wired to the service.
struct Peer {
    iface: Interface,
    dev: Queues,
    sockets: SocketSet<'static>,
}

impl Peer {
    fn new() -> Peer {
        let (iface, dev) = axolotl_netqueue::interface(PEER, 24, None, 1024, 0);
        Peer {
            iface,
            dev,
            sockets: SocketSet::new(Vec::new()),
        }
    }

    fn connect(&mut self, port: u16, local: u16) -> SocketHandle {
        let s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 65536]),
            tcp::SocketBuffer::new(vec![0; 65536]),
        );
        let h = self.sockets.add(s);
        let cx = self.iface.context();
        self.sockets
            .get_mut::<tcp::Socket>(h)
            .connect(cx, (IpAddress::from(US), port), local)
            .unwrap();
        h
    }
}

fn service() -> TcpService {
    TcpService::new(
        US,
        24,
        None,
        &[
            Listen {
                port: 7,
                app: App::Echo,
                sockets: 4,
                buffer: 8192,
            },
            Listen {
                port: 9,
                app: App::Discard,
                sockets: 2,
                buffer: 8192,
            },
        ],
        0,
    )
}

/// Moves packets both ways for one millisecond step; `lose` drops every
/// n-th packet from the peer (0: none).
fn step(svc: &mut TcpService, peer: &mut Peer, t_ms: u64, lose: u64, count: &mut u64) {
    let now = Instant::from_millis(t_ms as i64);
    peer.iface.poll(now, &mut peer.dev, &mut peer.sockets);
    let mut sent = Vec::new();
    peer.dev.send_to(&mut |p| sent.push(p.to_vec()));
    for p in sent {
        *count += 1;
        if lose != 0 && (*count).is_multiple_of(lose) {
            continue;
        }
        svc.input(&p);
    }
    let mut back = Vec::new();
    svc.poll(t_ms * 1_000_000, &mut |p| back.push(p.to_vec()));
    for p in back {
        peer.dev.push(&p);
    }
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Sends `data` on each connection and collects what comes back.
fn exchange(conns: usize, data_len: usize, lose: u64) -> (TcpService, Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut svc = service();
    let mut peer = Peer::new();
    let handles: Vec<SocketHandle> = (0..conns)
        .map(|i| peer.connect(7, 50000 + i as u16))
        .collect();
    let sent: Vec<Vec<u8>> = (0..conns).map(|i| pattern(data_len, i as u8)).collect();
    let mut offs = vec![0usize; conns];
    let mut got: Vec<Vec<u8>> = vec![Vec::new(); conns];
    let mut count = 0;
    for t in 0..60_000u64 {
        step(&mut svc, &mut peer, t, lose, &mut count);
        let mut done = true;
        for (i, &h) in handles.iter().enumerate() {
            let s = peer.sockets.get_mut::<tcp::Socket>(h);
            if s.can_send() && offs[i] < data_len {
                offs[i] += s.send_slice(&sent[i][offs[i]..]).unwrap();
            }
            while s.can_recv() {
                let mut buf = [0u8; 4096];
                let n = s.recv_slice(&mut buf).unwrap();
                got[i].extend_from_slice(&buf[..n]);
            }
            done &= got[i].len() >= data_len;
        }
        if done {
            break;
        }
    }
    (svc, sent, got)
}

#[test]
fn echo_returns_exactly_what_was_sent_on_several_connections() {
    let (svc, sent, got) = exchange(3, 200_000, 0);
    for i in 0..3 {
        assert_eq!(got[i].len(), sent[i].len(), "connection {i}");
        assert!(got[i] == sent[i], "connection {i}: bytes differ");
    }
    assert_eq!(svc.stats().accepted, 3);
}

#[test]
fn echo_survives_lost_packets() {
    // Every 7th packet from the peer is lost: smoltcp retransmits.
    let (_, sent, got) = exchange(1, 50_000, 7);
    assert!(
        got[0] == sent[0],
        "{} of {} bytes back",
        got[0].len(),
        sent[0].len()
    );
}

#[test]
fn discard_takes_everything_and_sends_nothing_back() {
    let mut svc = service();
    let mut peer = Peer::new();
    let h = peer.connect(9, 40000);
    let data = pattern(100_000, 3);
    let mut off = 0;
    let mut count = 0;
    for t in 0..20_000u64 {
        step(&mut svc, &mut peer, t, 0, &mut count);
        let s = peer.sockets.get_mut::<tcp::Socket>(h);
        if s.can_send() && off < data.len() {
            off += s.send_slice(&data[off..]).unwrap();
        }
        assert!(!s.can_recv());
        if off == data.len() && s.send_queue() == 0 {
            break;
        }
    }
    assert_eq!(svc.stats().bytes_in, 100_000);
    assert_eq!(svc.stats().bytes_out, 0);
}

#[test]
fn a_closed_port_is_refused_and_closed_connections_listen_again() {
    let mut svc = service();
    let mut peer = Peer::new();
    let h = peer.connect(23, 40001);
    let mut count = 0;
    for t in 0..100 {
        step(&mut svc, &mut peer, t, 0, &mut count);
    }
    // smoltcp answered the SYN with a RST.
    assert!(!peer.sockets.get::<tcp::Socket>(h).is_open());
    // Five connections one after the other on a port with 4 sockets:
    // each closes, and its socket listens again.
    for i in 0..5u16 {
        let h = peer.connect(7, 41000 + i);
        let mut echoed = false;
        for t in 0..2000 {
            step(
                &mut svc,
                &mut peer,
                100 + u64::from(i) * 10_000 + t,
                0,
                &mut count,
            );
            let s = peer.sockets.get_mut::<tcp::Socket>(h);
            if s.can_send() && !echoed && s.send_queue() == 0 && s.recv_queue() == 0 {
                s.send_slice(b"hi").unwrap();
                echoed = true;
            }
            if s.can_recv() {
                let mut b = [0u8; 8];
                assert_eq!(s.recv_slice(&mut b).unwrap(), 2);
                s.close();
            }
            if !s.is_open() {
                break;
            }
        }
        assert!(echoed, "connection {i} never opened");
    }
    assert_eq!(svc.stats().accepted, 5);
}

#[test]
fn garbage_in_is_dropped_without_harm() {
    let mut svc = service();
    for len in [0usize, 1, 19, 20, 40, 1500, 1600] {
        svc.input(&vec![0x45; len]);
    }
    let mut out = Vec::new();
    svc.poll(0, &mut |p| out.push(p.to_vec()));
    assert!(out.is_empty());
    assert_eq!(svc.stats().dropped_in, 1);
}

/// A peer that writes its own segments, to send what a well-behaved stack
/// never would.
struct RawPeer {
    from: Ipv4Address,
    seq: u32,
    ack: u32,
    /// The right edge of the window the service last advertised.
    right_edge: u32,
    /// The window scale option of its SYN (`None`: the service scales
    /// nothing).
    window_scale: Option<u8>,
    /// The scale the service applies to the windows it advertises.
    shift: u8,
}

impl RawPeer {
    fn new(from: Ipv4Address, seq: u32) -> RawPeer {
        RawPeer {
            from,
            seq,
            ack: 0,
            right_edge: 0,
            window_scale: None,
            shift: 0,
        }
    }

    /// SYN, SYN-ACK, ACK with the service at `t_ms`.
    fn connect(&mut self, svc: &mut TcpService, t_ms: u64) {
        svc.input(&self.segment(TcpControl::Syn, false, &[], self.seq));
        self.hear(&poll_collect(svc, t_ms));
        self.seq += 1;
        assert_ne!(self.ack, 0, "no SYN-ACK from the service");
        svc.input(&self.segment(TcpControl::None, true, &[], self.seq));
        self.hear(&poll_collect(svc, t_ms));
    }

    fn segment(&self, control: TcpControl, ack: bool, payload: &[u8], seq: u32) -> Vec<u8> {
        let tcp = TcpRepr {
            src_port: 40100,
            dst_port: 9,
            control,
            seq_number: TcpSeqNumber(seq as i32),
            ack_number: ack.then_some(TcpSeqNumber(self.ack as i32)),
            window_len: 65535,
            window_scale: (control == TcpControl::Syn)
                .then_some(self.window_scale)
                .flatten(),
            // A large MSS: the service then acknowledges only every 64 KiB,
            // so it keeps taking segments with no ACK in between.
            max_seg_size: (control == TcpControl::Syn).then_some(65535),
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: None,
            payload,
        };
        crate::leftover::ipv4_packet(self.from, US, &tcp)
    }

    /// Reads what the service sent: its sequence number, and the window
    /// it advertised.
    fn hear(&mut self, packets: &[Vec<u8>]) {
        for p in packets {
            let ip = Ipv4Packet::new_checked(&p[..]).unwrap();
            let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
            if tcp.syn() {
                self.ack = tcp.seq_number().0 as u32 + 1;
            }
            if tcp.syn() {
                self.shift = TcpRepr::parse(
                    &tcp,
                    &IpAddress::from(US),
                    &IpAddress::from(self.from),
                    &ChecksumCapabilities::default(),
                )
                .ok()
                .and_then(|r| r.window_scale)
                .filter(|_| self.window_scale.is_some())
                .unwrap_or(0);
            }
            if tcp.ack() {
                // The SYN-ACK's window is never scaled.
                let shift = if tcp.syn() { 0 } else { self.shift };
                self.right_edge =
                    (tcp.ack_number().0 as u32).wrapping_add(u32::from(tcp.window_len()) << shift);
            }
        }
    }
}

/// Discard on port 9 with one socket and a small buffer.
fn one_small_discard_socket() -> TcpService {
    TcpService::new(
        US,
        24,
        None,
        &[Listen {
            port: 9,
            app: App::Discard,
            sockets: 1,
            buffer: 2048,
        }],
        0,
    )
}

fn poll_collect(svc: &mut TcpService, now_ms: u64) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    svc.poll(now_ms * 1_000_000, &mut |p| out.push(p.to_vec()));
    out
}

/// smoltcp issue 1048: a peer that sends past the right edge of the
/// window last advertised, into room the app has freed since and before
/// any window update, made smoltcp 0.12 panic with "attempt to subtract
/// sequence numbers with underflow" (`last_scaled_window`). It killed the
/// host gateway, and a remote peer could kill the TCP PD the same way.
/// smoltcp 0.13.1 and later reject the bytes outside the window.
#[test]
fn bytes_past_the_advertised_window_are_refused_without_a_panic() {
    // A small buffer: smoltcp sends no window update while more than half
    // of the window is still open, so a segment bigger than that half
    // reaches past the edge into room the app has freed.
    let mut svc = one_small_discard_socket();
    let mut peer = RawPeer::new(PEER, 1000);
    peer.connect(&mut svc, 0);
    let start = peer.seq;
    // Segments one at a time, each polled (discard empties the buffer at
    // once), on past the edge; the clock stands still, so no delayed ACK
    // falls due.
    for (i, len) in [1000usize, 1400, 1400, 1400].into_iter().enumerate() {
        let edge = peer.right_edge;
        let taken_before = svc.stats().bytes_in as u32;
        let seg = pattern(len, i as u8);
        svc.input(&peer.segment(TcpControl::Psh, true, &seg, peer.seq));
        peer.hear(&poll_collect(&mut svc, 0));
        let taken = svc.stats().bytes_in as u32;
        // Never a byte past the edge advertised when the segment was sent.
        assert!(
            start.wrapping_add(taken) <= edge,
            "segment {i}: {taken} bytes taken, the advertised window ended at {}",
            edge.wrapping_sub(start)
        );
        peer.seq = start.wrapping_add(taken);
        if taken == taken_before {
            break;
        }
    }
    // The service still works: it takes what fits once time moves on.
    let before = svc.stats().bytes_in;
    for t in 1..200u64 {
        peer.hear(&poll_collect(&mut svc, t));
        if peer.right_edge.wrapping_sub(peer.seq) >= 500 {
            let seg = pattern(500, 99);
            svc.input(&peer.segment(TcpControl::Psh, true, &seg, peer.seq));
            peer.seq += 500;
        }
    }
    assert!(svc.stats().bytes_in > before, "the connection stalled");
}

/// Fixed in smoltcp 0.13.1 as well: a SYN from the unspecified address to a
/// listening socket. It must draw no answer and leave the port listening.
#[test]
fn a_syn_from_the_unspecified_address_is_ignored() {
    let mut svc = service();
    let mut peer = RawPeer::new(Ipv4Address::UNSPECIFIED, 5000);
    svc.input(&peer.segment(TcpControl::Syn, false, &[], peer.seq));
    assert!(poll_collect(&mut svc, 0).is_empty());
    assert_eq!(svc.stats().accepted, 0);
    // The port still serves a real peer.
    peer.from = PEER;
    svc.input(&peer.segment(TcpControl::Syn, false, &[], peer.seq));
    peer.hear(&poll_collect(&mut svc, 1));
    assert_ne!(peer.ack, 0, "no SYN-ACK for a real peer after the bad SYN");
}

/// A second peer's SYN at `t_ms` to a port whose one socket is taken: it
/// must draw no SYN-ACK.
fn a_second_peer_is_refused(svc: &mut TcpService, t_ms: u64) -> RawPeer {
    let mut other = RawPeer::new(Ipv4Address::new(10, 0, 2, 3), 100);
    svc.input(&other.segment(TcpControl::Syn, false, &[], other.seq));
    other.hear(&poll_collect(svc, t_ms));
    assert_eq!(
        other.ack, 0,
        "a second connection on a port with one socket"
    );
    other
}

/// A peer that vanishes in the middle of a connection (say its last
/// segments were lost and its host is gone) gives its socket back: the
/// service probes, times out, and the port serves the next peer. Without
/// that, a port with one socket stayed taken for ever.
#[test]
fn a_vanished_peer_gives_its_socket_back() {
    let mut svc = one_small_discard_socket();
    RawPeer::new(PEER, 7000).connect(&mut svc, 0);
    assert_eq!(svc.stats().accepted, 1);
    // The peer is gone: nothing it would answer arrives. Another peer's
    // SYN is refused while the socket is held...
    let mut other = a_second_peer_is_refused(&mut svc, 2);
    // ...and served once the vanished one has timed out.
    let end_ms = (KEEP_ALIVE + PEER_TIMEOUT).total_millis() + 5_000;
    let mut t = 3;
    while t < end_ms {
        poll_collect(&mut svc, t);
        t += 500;
    }
    svc.input(&other.segment(TcpControl::Syn, false, &[], other.seq));
    other.hear(&poll_collect(&mut svc, t));
    assert_ne!(other.ack, 0, "the port never served again");
}

/// An app PD's side of the socket interface, for tests: events are
/// recorded while `room` says yes, but for the next `refuse` of them (a
/// link the app broke, though its buffers looked free).
#[derive(Default)]
struct App0 {
    room: bool,
    refuse: u32,
    events: Vec<(u8, Handle)>,
    data: Vec<u8>,
}

const EV_ACCEPTED: u8 = 1;
const EV_CLOSED: u8 = 4;

impl App0 {
    /// The handles of the events of one kind, in order.
    fn handles(&self, kind: u8) -> Vec<Handle> {
        self.events
            .iter()
            .filter(|e| e.0 == kind)
            .map(|e| e.1)
            .collect()
    }
}

impl ClientIo for App0 {
    fn room(&mut self, _: u8) -> bool {
        self.room
    }
    fn event(&mut self, _: u8, ev: Event<'_>) -> bool {
        assert!(self.room, "an event without room");
        if self.refuse > 0 {
            self.refuse -= 1;
            return false;
        }
        self.events.push(match ev {
            Event::Accepted(h, ..) => (EV_ACCEPTED, h),
            Event::Data(h, d) => {
                self.data.extend_from_slice(d);
                (2, h)
            }
            Event::PeerClosed(h) => (3, h),
            Event::Closed(h) => (EV_CLOSED, h),
        });
        true
    }
}

/// One millisecond of traffic between a peer and a service with app 0.
fn step_app(svc: &mut TcpService, peer: &mut Peer, app: &mut App0, t_ms: u64) {
    let now = Instant::from_millis(t_ms as i64);
    peer.iface.poll(now, &mut peer.dev, &mut peer.sockets);
    let mut sent = Vec::new();
    peer.dev.send_to(&mut |p| sent.push(p.to_vec()));
    for p in sent {
        svc.input(&p);
    }
    let mut back = Vec::new();
    svc.poll_with(t_ms * 1_000_000, &mut |p| back.push(p.to_vec()), app);
    for p in back {
        peer.dev.push(&p);
    }
}

/// A service where app 0 listens on port 7 (with room for its events),
/// and a peer.
fn app_0_on_port_7() -> (TcpService, Peer, App0) {
    let mut svc = TcpService::new(US, 24, None, &[], 0);
    assert!(svc.client_listen(0, 7));
    let app = App0 {
        room: true,
        ..App0::default()
    };
    (svc, Peer::new(), app)
}

/// Connects, runs until the connection is established (or 200 ms pass),
/// then resets it; whether it was established.
fn connect_and_reset(
    svc: &mut TcpService,
    peer: &mut Peer,
    app: &mut App0,
    port: u16,
    t: &mut u64,
) -> bool {
    let h = peer.connect(7, port);
    let mut up = false;
    for _ in 0..200 {
        *t += 1;
        step_app(svc, peer, app, *t);
        up = peer.sockets.get::<tcp::Socket>(h).state() == tcp::State::Established;
        if up {
            break;
        }
    }
    peer.sockets.get_mut::<tcp::Socket>(h).abort();
    for _ in 0..5 {
        *t += 1;
        step_app(svc, peer, app, *t);
    }
    peer.sockets.remove(h);
    up
}

/// An event the app's link refuses though it looked as if it had room (a
/// link the app broke: garbage on its free ring) loses nothing: the bytes
/// stay in the socket and reach the app, in order, once the link takes
/// them. Before, they were taken out of the socket first, and a refused
/// send lost bytes the peer had had acknowledged: the echo came back with
/// a hole in it.
#[test]
fn data_an_app_link_refuses_is_offered_again_not_lost() {
    let (mut svc, mut peer, mut app) = app_0_on_port_7();
    let h = peer.connect(7, 43000);
    let sent: Vec<u8> = (0..6000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut t = 0;
    let mut queued = false;
    for _ in 0..400 {
        t += 1;
        if !queued && !app.handles(EV_ACCEPTED).is_empty() {
            let s = peer.sockets.get_mut::<tcp::Socket>(h);
            assert_eq!(s.send_slice(&sent).unwrap(), sent.len());
            queued = true;
            // The accept went; the next events (data) are refused.
            app.refuse = 3;
        }
        step_app(&mut svc, &mut peer, &mut app, t);
        if app.data.len() == sent.len() {
            break;
        }
    }
    assert!(queued, "never connected");
    assert_eq!(app.refuse, 0, "no event was refused");
    assert!(
        app.data == sent,
        "bytes lost or reordered: {} of {} came",
        app.data.len(),
        sent.len()
    );
}

/// A busy app (its link full) must not make its port refuse connections:
/// connections that end meanwhile give their sockets back at once, and the
/// app hears of them later, in order. Before, each such socket waited for
/// the app's link; with all of the port's sockets waiting, the next
/// connection was refused (the soak's refused connection).
#[test]
fn a_busy_app_does_not_make_its_port_refuse_connections() {
    let (mut svc, mut peer, mut app) = app_0_on_port_7();
    let mut t = 0;
    // Every socket of the port takes a connection, and the app hears of
    // each.
    let conns: Vec<SocketHandle> = (0..CLIENT_SOCKETS as u16)
        .map(|i| peer.connect(7, 42000 + i))
        .collect();
    for _ in 0..50 {
        t += 1;
        step_app(&mut svc, &mut peer, &mut app, t);
    }
    let accepted = app.handles(EV_ACCEPTED);
    assert_eq!(accepted.len(), CLIENT_SOCKETS);
    // The app's link fills up; meanwhile every connection ends.
    app.room = false;
    for &h in &conns {
        peer.sockets.get_mut::<tcp::Socket>(h).abort();
    }
    for _ in 0..5 {
        t += 1;
        step_app(&mut svc, &mut peer, &mut app, t);
    }
    for h in conns {
        peer.sockets.remove(h);
    }
    // New connections are served all the same (and ones the app never
    // heard of end without a word to it).
    for i in 0..2 * CLIENT_SOCKETS as u16 {
        assert!(
            connect_and_reset(&mut svc, &mut peer, &mut app, 43000 + i, &mut t),
            "connection {i} refused while the app's link was full"
        );
    }
    // Room again: the app hears that each connection it knew ended, once,
    // in order.
    app.room = true;
    for _ in 0..5 {
        t += 1;
        step_app(&mut svc, &mut peer, &mut app, t);
    }
    let closed = app.handles(EV_CLOSED);
    assert_eq!(
        closed, accepted,
        "each accepted connection closed once, in order"
    );
}

/// The right edge of the window an app connection advertises never moves
/// back, however the bytes arrive. smoltcp scales a window of more than
/// 65,535 bytes and rounds it down, so with a 64 KiB buffer an odd number
/// of free bytes moved the edge back by one: the peer's byte at the old
/// edge was refused, and once the window closed, smoltcp refused the
/// peer's every ACK too (their sequence number lay past a zero window).
/// With the app waiting for that connection's send buffer to drain, the
/// connection and every other one of the app stalled for good (the echo
/// test's 30 s stall of six connections at once).
#[test]
fn an_app_connections_window_edge_never_moves_back() {
    let mut svc = TcpService::new(US, 24, None, &[], 0);
    assert!(svc.client_listen(0, 9));
    let mut peer = RawPeer::new(PEER, 1000);
    peer.window_scale = Some(0);
    peer.connect(&mut svc, 0);
    assert!(peer.right_edge.wrapping_sub(peer.seq) > 60_000);
    // The app takes nothing (`poll` gives it no room): the window fills.
    let mut t = 0;
    let mut edge = peer.right_edge;
    let mut closed_for = 0;
    while closed_for < 3 {
        let room = edge.wrapping_sub(peer.seq) as usize;
        if room == 0 {
            closed_for += 1;
        }
        // Sizes such that the free room is odd at some of the service's
        // ACKs (it acknowledges every second segment).
        let seg = pattern(room.min(1000 + (t / 50 % 3) as usize), t as u8);
        if !seg.is_empty() {
            svc.input(&peer.segment(TcpControl::Psh, true, &seg, peer.seq));
            peer.seq = peer.seq.wrapping_add(seg.len() as u32);
        }
        // Past the delayed ACK: the service says where its window ends.
        t += 50;
        peer.hear(&poll_collect(&mut svc, t));
        assert!(
            (peer.right_edge.wrapping_sub(edge) as i32) >= 0,
            "the window's right edge moved back by {} bytes after {} bytes",
            edge.wrapping_sub(peer.right_edge),
            peer.seq - 1001
        );
        assert_eq!(peer.shift, 0, "the service scales its window");
        edge = peer.right_edge;
        assert!(t < 60_000, "the window never closed");
    }
    assert_eq!(
        svc.stats().bytes_in,
        0,
        "the app took bytes it had no room for"
    );
}

/// A connection refused because every socket of its port is busy is
/// counted (the soak's refused connections are told apart from others by
/// it); a repeated SYN of a connection being set up is not.
#[test]
fn connections_refused_for_want_of_a_socket_are_counted() {
    let mut svc = one_small_discard_socket();
    let mut first = RawPeer::new(PEER, 7000);
    let syn = first.segment(TcpControl::Syn, false, &[], first.seq);
    svc.input(&syn);
    first.hear(&poll_collect(&mut svc, 0));
    // The first peer's SYN again (its SYN-ACK was lost): not a refusal.
    svc.input(&syn);
    poll_collect(&mut svc, 1);
    assert_eq!(svc.stats().refused_busy, 0);
    // Another peer while the only socket is taken: refused, and counted.
    let other = a_second_peer_is_refused(&mut svc, 2);
    assert_eq!(svc.stats().refused_busy, 1);
    // Not a SYN, or not TCP: not counted.
    svc.input(&other.segment(TcpControl::None, true, &[], other.seq));
    svc.input(&[0x45; 40]);
    poll_collect(&mut svc, 3);
    assert_eq!(svc.stats().refused_busy, 1);
}

/// A TCP restarted with its apps' ports from the store (`client_ports` of
/// its earlier incarnation) answers a SYN at once, with no listen by the
/// app; the app's own listen again, when it notices the restart, is a
/// no-op that leaves the new connection alone.
#[test]
fn ports_listened_on_again_from_an_earlier_incarnation_answer_at_once() {
    let mut before = TcpService::new(US, 24, None, &[], 0);
    assert!(before.client_listen(1, 9));
    assert!(before.client_listen(0, 80));
    assert_eq!(before.client_ports(), [(9, 1), (80, 0)]);
    // TCP restarts: fresh memory, the ports from the store.
    let mut after = TcpService::new(US, 24, None, &[], 0);
    for (port, app) in before.client_ports() {
        assert!(after.client_listen(app, port));
    }
    let mut peer = RawPeer::new(PEER, 3000);
    peer.connect(&mut after, 0);
    assert_eq!(after.stats().accepted, 1, "no connection on a kept port");
    // The app notices the restart and listens again: the connection stays.
    assert!(after.client_listen(1, 9));
    let mut app = App0 {
        room: true,
        ..App0::default()
    };
    after.poll_with(1_000_000, &mut |_| {}, &mut app);
    assert_eq!(app.handles(EV_ACCEPTED).len(), 1);
    assert!(
        app.handles(EV_CLOSED).is_empty(),
        "listening again reset it"
    );
    assert!(
        !after.client_listen(0, 9),
        "another app's port is still taken"
    );
}

/// A handle carries the TCP PD's incarnation: the same slot and generation
/// in the next incarnation make another handle, and an app's handle from
/// before the restart reaches no connection now.
#[test]
fn a_handle_of_an_earlier_incarnation_names_nothing() {
    let accept = |inc: u8, seq: u32| {
        let mut svc = TcpService::new(US, 24, None, &[], 0);
        svc.set_incarnation(inc);
        assert!(svc.client_listen(0, 9));
        let mut peer = RawPeer::new(PEER, seq);
        peer.connect(&mut svc, 0);
        let mut app = App0 {
            room: true,
            ..App0::default()
        };
        svc.poll_with(1_000_000, &mut |_| {}, &mut app);
        let h = app.handles(EV_ACCEPTED)[0];
        (svc, h)
    };
    let (_, old) = accept(1, 100);
    let (mut svc, new) = accept(2, 200);
    assert_eq!(old & 0xffff, new & 0xffff, "the same slot and generation");
    assert_ne!(old, new);
    assert_eq!(new >> 16, 2);
    // The old handle sends nothing on the new connection.
    svc.client_send(0, old, b"not for you");
    let out = poll_collect(&mut svc, 2);
    assert!(
        out.iter().all(|p| {
            let ip = Ipv4Packet::new_checked(&p[..]).unwrap();
            TcpPacket::new_checked(ip.payload())
                .unwrap()
                .payload()
                .is_empty()
        }),
        "bytes sent on an old handle"
    );
    assert_eq!(svc.stats().bytes_out, 0);
    // The new one does.
    svc.client_send(0, new, b"yours");
    assert_eq!(svc.stats().bytes_out, 5);
}

/// An app that restarts (here: hung while a connection came in) has its
/// connections reset, and its listen again comes at once on the new link.
/// The reset must reach the peer: before, the listen took the aborted
/// socket back before smoltcp had sent its RST, which the listen forgot,
/// and the peer waited on a connection nobody served.
#[test]
fn a_restarted_apps_connections_are_reset_even_when_it_listens_again_at_once() {
    let (mut svc, mut peer, mut app) = app_0_on_port_7();
    let h = peer.connect(7, 40000);
    let mut t = 0;
    while peer.sockets.get::<tcp::Socket>(h).state() != tcp::State::Established {
        t += 1;
        assert!(t < 200, "never established");
        step_app(&mut svc, &mut peer, &mut app, t);
    }
    t += 1;
    step_app(&mut svc, &mut peer, &mut app, t);
    assert_eq!(app.handles(EV_ACCEPTED).len(), 1);
    // The app restarts and at once listens again, before TCP polls.
    svc.client_reset(0);
    assert!(svc.client_listen(0, 7));
    for _ in 0..20 {
        t += 1;
        step_app(&mut svc, &mut peer, &mut app, t);
    }
    assert_eq!(
        peer.sockets.get::<tcp::Socket>(h).state(),
        tcp::State::Closed,
        "the peer never heard of the reset"
    );
    // And the port serves a new connection.
    let h2 = peer.connect(7, 40001);
    for _ in 0..50 {
        t += 1;
        step_app(&mut svc, &mut peer, &mut app, t);
    }
    assert_eq!(
        peer.sockets.get::<tcp::Socket>(h2).state(),
        tcp::State::Established
    );
}

/// The window of a pure ACK TCP sent, if `p` is one.
fn pure_ack_window(p: &[u8]) -> Option<u16> {
    let ip = Ipv4Packet::new_checked(p).ok()?;
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    (tcp.ack() && !tcp.syn() && !tcp.fin() && !tcp.rst() && tcp.payload().is_empty())
        .then(|| tcp.window_len())
}

/// A window update lost on the way (a PD on the path restarted with it)
/// would leave a peer that waits for the window silent until its persist
/// timer fires (5 s and more on BSD-derived stacks): TCP sends it again.
#[test]
fn a_lost_window_update_is_sent_again() {
    let (mut svc, mut peer, mut app) = app_0_on_port_7();
    let h = peer.connect(7, 52000);
    let mut t = 0;
    while peer.sockets.get::<tcp::Socket>(h).state() != tcp::State::Established {
        t += 1;
        assert!(t < 500, "no connection");
        step_app(&mut svc, &mut peer, &mut app, t);
    }
    // The app stops reading; the peer fills the window and more.
    app.room = false;
    let data = pattern(100_000, 9);
    let mut off = 0;
    let mut shut = false;
    for _ in 0..3_000 {
        t += 1;
        let s = peer.sockets.get_mut::<tcp::Socket>(h);
        if s.can_send() && off < data.len() {
            off += s.send_slice(&data[off..]).unwrap();
        }
        let now = Instant::from_millis(t as i64);
        peer.iface.poll(now, &mut peer.dev, &mut peer.sockets);
        let mut sent = Vec::new();
        peer.dev.send_to(&mut |p| sent.push(p.to_vec()));
        for p in sent {
            svc.input(&p);
        }
        let mut back = Vec::new();
        svc.poll_with(t * 1_000_000, &mut |p| back.push(p.to_vec()), &mut app);
        for p in back {
            shut |= pure_ack_window(&p) == Some(0);
            peer.dev.push(&p);
        }
        if shut {
            break;
        }
    }
    assert!(shut, "the window never shut");
    // The app reads again: the window opens, and that update is lost. The
    // peer says nothing more (it waits for its persist timer).
    app.room = true;
    t += 1;
    let mut update = None;
    svc.poll_with(
        t * 1_000_000,
        &mut |p| {
            if pure_ack_window(p).is_some_and(|w| w > 0) {
                update = Some(p.to_vec());
            }
        },
        &mut app,
    );
    let update = update.expect("no window update when the app read");
    let lost_at = t;
    let due = svc.poll_at(t * 1_000_000).expect("nothing due");
    assert!(due <= (lost_at + 200) * 1_000_000, "due only at {due} ns");
    let mut again = Vec::new();
    for _ in 0..1_000 {
        t += 1;
        svc.poll_with(
            t * 1_000_000,
            &mut |p| {
                if p == &update[..] {
                    again.push(t);
                }
            },
            &mut app,
        );
    }
    assert!(
        !again.is_empty(),
        "the lost window update was never sent again"
    );
    assert!(
        again[0] >= lost_at + 200 && again[0] <= lost_at + 250,
        "{again:?}"
    );
    assert!(svc.stats().window_resends >= 1);
    // Delivered at last, it lets the peer send the rest.
    peer.dev.push(&update);
    let mut got = 0usize;
    for _ in 0..5_000 {
        t += 1;
        let s = peer.sockets.get_mut::<tcp::Socket>(h);
        if s.can_send() && off < data.len() {
            off += s.send_slice(&data[off..]).unwrap();
        }
        step_app(&mut svc, &mut peer, &mut app, t);
        got = app.events.iter().filter(|e| e.0 == 2).count();
        if off == data.len() && peer.sockets.get::<tcp::Socket>(h).send_queue() == 0 {
            break;
        }
    }
    assert_eq!(
        off,
        data.len(),
        "the peer could not send the rest ({got} data events)"
    );
}

/// Sockets of `svc` that hold a connection from `from`:40100 (RawPeer's).
fn sockets_of(svc: &TcpService, from: Ipv4Address) -> usize {
    svc.slots
        .iter()
        .map(|slot| svc.sockets.get::<tcp::Socket>(slot.handle))
        .filter(|s| s.state() != tcp::State::Listen)
        .filter(|s| s.remote_endpoint() == Some((IpAddress::from(from), 40100).into()))
        .count()
}

#[test]
fn a_syn_sent_again_never_opens_a_second_socket() {
    let mut svc = service();
    // Socket 0 of port 9 busy with another peer: our SYN lands on socket 1.
    let mut other = RawPeer::new(Ipv4Address::new(10, 0, 2, 3), 1000);
    other.connect(&mut svc, 1);
    let mut peer = RawPeer::new(PEER, 5000);
    let syn = peer.segment(TcpControl::Syn, false, &[], peer.seq);
    svc.input(&syn);
    peer.hear(&poll_collect(&mut svc, 2));
    assert_ne!(peer.ack, 0, "no SYN-ACK");
    // The other connection ends: socket 0 listens again, ahead of ours.
    svc.input(&other.segment(TcpControl::Rst, false, &[], other.seq));
    poll_collect(&mut svc, 3);
    // Our SYN-ACK was lost (a NIC restarting): the peer sends its SYN
    // again. A second socket taking it would answer with a SYN-ACK of
    // another sequence number, and whichever the peer believes, the other
    // socket resets or mixes up the connection.
    svc.input(&syn);
    poll_collect(&mut svc, 4);
    assert_eq!(sockets_of(&svc, PEER), 1);
    // The connection still opens, with the sequence number first offered.
    let mut seen = Vec::new();
    for t in (5..4000).step_by(100) {
        seen.extend(poll_collect(&mut svc, t));
    }
    let first_ack = peer.ack;
    peer.hear(&seen);
    assert_eq!(
        peer.ack, first_ack,
        "a SYN-ACK with another sequence number"
    );
    peer.seq += 1;
    svc.input(&peer.segment(TcpControl::None, true, b"hello", peer.seq));
    poll_collect(&mut svc, 4001);
    let established = svc
        .slots
        .iter()
        .map(|slot| svc.sockets.get::<tcp::Socket>(slot.handle))
        .filter(|s| s.state() == tcp::State::Established)
        .count();
    assert_eq!(established, 1);
    assert_eq!(sockets_of(&svc, PEER), 1);
}
