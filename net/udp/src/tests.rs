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
