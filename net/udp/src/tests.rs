use super::*;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
};

const US: Ipv4Address = Ipv4Address::new(10, 0, 2, 15);
const PEER: Ipv4Address = Ipv4Address::new(10, 0, 2, 2);

fn datagram(port: u16, data: &[u8]) -> Vec<u8> {
    let caps = ChecksumCapabilities::default();
    let udp = UdpRepr {
        src_port: 5555,
        dst_port: port,
    };
    let ip = Ipv4Repr {
        src_addr: PEER,
        dst_addr: US,
        next_header: IpProtocol::Udp,
        payload_len: 8 + data.len(),
        hop_limit: 64,
    };
    let mut buf = vec![0u8; 20 + 8 + data.len()];
    let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
    ip.emit(&mut p, &caps);
    udp.emit(
        &mut UdpPacket::new_unchecked(p.payload_mut()),
        &PEER.into(),
        &US.into(),
        data.len(),
        |b| b.copy_from_slice(data),
        &caps,
    );
    buf
}

fn service() -> UdpService {
    UdpService::new(US, 24, None, &[(7, App::Echo), (9, App::Discard)], 0)
}

#[test]
fn echo_returns_each_datagram_to_its_sender() {
    let mut svc = service();
    let mut out = Vec::new();
    for i in 0..10u8 {
        svc.input(&datagram(7, &vec![i; usize::from(i) * 100 + 1]));
    }
    svc.poll(1_000, &mut |p| out.push(p.to_vec()));
    assert_eq!(out.len(), 10);
    for (i, p) in out.iter().enumerate() {
        let ip = Ipv4Packet::new_checked(&p[..]).unwrap();
        assert_eq!((ip.src_addr(), ip.dst_addr()), (US, PEER));
        let u = UdpPacket::new_checked(ip.payload()).unwrap();
        assert!(u.verify_checksum(&US.into(), &PEER.into()));
        assert_eq!((u.src_port(), u.dst_port()), (7, 5555));
        assert_eq!(u.payload(), &vec![i as u8; i * 100 + 1][..]);
    }
}

#[test]
fn discard_answers_nothing_and_closed_ports_get_port_unreachable() {
    let mut svc = service();
    let mut out = Vec::new();
    svc.input(&datagram(9, b"into the void"));
    svc.poll(1_000, &mut |p| out.push(p.to_vec()));
    assert!(out.is_empty());
    assert_eq!(svc.stats().datagrams, 1);
    svc.input(&datagram(53, b"anyone?"));
    svc.poll(2_000, &mut |p| out.push(p.to_vec()));
    assert_eq!(out.len(), 1);
    let ip = Ipv4Packet::new_checked(&out[0][..]).unwrap();
    let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
    assert!(matches!(
        Icmpv4Repr::parse(&icmp, &ChecksumCapabilities::default()).unwrap(),
        Icmpv4Repr::DstUnreachable { .. }
    ));
}

#[test]
fn floods_and_garbage_are_bounded() {
    let mut svc = service();
    for _ in 0..(INPUT_QUEUE + 10) {
        svc.input(&datagram(7, b"x"));
    }
    svc.input(&[0x45; 10]);
    svc.input(&[0; MTU + 1]);
    let mut n = 0;
    svc.poll(1_000, &mut |_| n += 1);
    // 10 over the queue, then the garbage and the oversized one: the queue is full.
    assert_eq!(svc.stats().dropped_in, 12);
    assert!(n <= INPUT_QUEUE);
}

/// An app PD's side of the service, recording what it was given.
#[derive(Default)]
struct Client {
    room: usize,
    got: Vec<(u8, u16, Endpoint, Vec<u8>)>,
}

impl DatagramIo for Client {
    fn room(&mut self, _: u8) -> bool {
        self.got.len() < self.room
    }
    fn datagram(&mut self, client: u8, port: u16, from: Endpoint, data: &[u8]) {
        self.got.push((client, port, from, data.to_vec()));
    }
}

#[test]
fn apps_bind_ports_receive_datagrams_and_send_them() {
    let mut svc = service();
    assert!(svc.client_bind(0, 5000));
    assert!(
        svc.client_bind(0, 5000),
        "binding its own port again is fine"
    );
    assert!(!svc.client_bind(1, 5000), "another app's port is taken");
    assert!(!svc.client_bind(1, 7), "a built-in service's port is taken");
    svc.input(&datagram(5000, b"to the app"));
    let mut io = Client {
        room: 8,
        ..Client::default()
    };
    let mut out = Vec::new();
    svc.poll_with(1_000, &mut |p| out.push(p.to_vec()), &mut io);
    assert_eq!(
        io.got,
        [(0, 5000, (PEER.octets(), 5555), b"to the app".to_vec())]
    );
    assert!(out.is_empty());

    // The app answers from its port; not from one that is not its own.
    assert!(svc.client_send_to(0, 5000, (PEER.octets(), 5555), b"back"));
    assert!(!svc.client_send_to(1, 5000, (PEER.octets(), 5555), b"not yours"));
    assert!(!svc.client_send_to(0, 7, (PEER.octets(), 5555), b"not yours"));
    svc.poll_with(2_000, &mut |p| out.push(p.to_vec()), &mut io);
    assert_eq!(out.len(), 1);
    let ip = Ipv4Packet::new_checked(&out[0][..]).unwrap();
    let u = UdpPacket::new_checked(ip.payload()).unwrap();
    assert_eq!(
        (u.src_port(), u.dst_port(), u.payload()),
        (5000, 5555, &b"back"[..])
    );
}

#[test]
fn datagrams_wait_while_the_app_has_no_room() {
    let mut svc = service();
    assert!(svc.client_bind(2, 6000));
    for i in 0..3u8 {
        svc.input(&datagram(6000, &[i]));
    }
    let mut io = Client::default();
    svc.poll_with(1_000, &mut |_| {}, &mut io);
    assert!(io.got.is_empty());
    assert!(svc.clients_waiting());
    io.room = 3;
    svc.poll_with(2_000, &mut |_| {}, &mut io);
    let data: Vec<u8> = io.got.iter().map(|g| g.3[0]).collect();
    assert_eq!(data, [0, 1, 2], "none lost, in order");
    assert!(!svc.clients_waiting());
}

#[test]
fn a_restarted_app_loses_its_ports() {
    let mut svc = service();
    assert!(svc.client_bind(0, 5000));
    svc.client_reset(0);
    assert!(svc.client_bind(1, 5000), "the port is free again");
    assert!(!svc.client_send_to(0, 5000, (PEER.octets(), 5555), b"x"));
    // A closed port answers port unreachable again once nobody has it.
    svc.client_reset(1);
    let mut out = Vec::new();
    svc.input(&datagram(5000, b"anyone?"));
    svc.poll(3_000, &mut |p| out.push(p.to_vec()));
    assert_eq!(out.len(), 1);
    let ip = Ipv4Packet::new_checked(&out[0][..]).unwrap();
    assert!(Icmpv4Packet::new_checked(ip.payload()).is_ok());
}

/// What a restarted UDP binds from the state store (`client_ports` of its
/// earlier incarnation) serves at once: the app's datagrams reach it with
/// no bind by the app, and none draws port unreachable.
#[test]
fn ports_bound_again_from_the_list_of_an_earlier_incarnation_serve_at_once() {
    let mut before = service();
    assert!(before.client_bind(0, 5000));
    assert!(before.client_bind(3, 6000));
    let mut kept = before.client_ports();
    kept.sort_unstable();
    assert_eq!(kept, [(5000, 0), (6000, 3)], "apps' ports, not built-ins");
    // UDP restarts: fresh memory, the ports from the store.
    let mut after = service();
    for &(port, app) in &kept {
        assert!(after.client_bind(app, port));
    }
    after.input(&datagram(5000, b"right after"));
    after.input(&datagram(6000, b"the restart"));
    let mut io = Client {
        room: 8,
        ..Client::default()
    };
    let mut out = Vec::new();
    after.poll_with(1_000, &mut |p| out.push(p.to_vec()), &mut io);
    assert!(out.is_empty(), "port unreachable for a kept port");
    let got: Vec<(u8, u16)> = io.got.iter().map(|g| (g.0, g.1)).collect();
    assert_eq!(got, [(0, 5000), (3, 6000)]);
}
