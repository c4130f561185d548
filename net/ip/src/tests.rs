use super::*;
use proptest::prelude::*;
use smoltcp::wire::{UdpPacket, UdpRepr};

const US_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x15]);
const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x02]);
const US: Ipv4Address = Ipv4Address::new(10, 0, 2, 15);
const PEER: Ipv4Address = Ipv4Address::new(10, 0, 2, 2);
const FAR: Ipv4Address = Ipv4Address::new(192, 0, 2, 7);

fn ip() -> Ip {
    Ip::new(Config {
        mac: US_MAC,
        addr: US,
        prefix_len: 24,
        gateway: Some(PEER),
    })
}

#[derive(Default)]
struct Out {
    nic: std::vec::Vec<std::vec::Vec<u8>>,
    up: std::vec::Vec<std::vec::Vec<u8>>,
}

impl Sink for Out {
    fn to_nic(&mut self, frame: &[u8]) {
        self.nic.push(frame.to_vec());
    }
    fn up(&mut self, packet: &[u8]) {
        self.up.push(packet.to_vec());
    }
}

fn eth(dst: EthernetAddress, proto: EthernetProtocol, payload: &[u8]) -> std::vec::Vec<u8> {
    let mut buf = vec![0u8; ETH_HEADER + payload.len()];
    let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
    EthernetRepr {
        src_addr: PEER_MAC,
        dst_addr: dst,
        ethertype: proto,
    }
    .emit(&mut f);
    f.payload_mut().copy_from_slice(payload);
    buf
}

fn arp(op: ArpOperation, target: Ipv4Address) -> std::vec::Vec<u8> {
    let repr = ArpRepr::EthernetIpv4 {
        operation: op,
        source_hardware_addr: PEER_MAC,
        source_protocol_addr: PEER,
        target_hardware_addr: if op == ArpOperation::Reply {
            US_MAC
        } else {
            EthernetAddress([0; 6])
        },
        target_protocol_addr: target,
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
    let dst = if op == ArpOperation::Reply {
        US_MAC
    } else {
        EthernetAddress::BROADCAST
    };
    eth(dst, EthernetProtocol::Arp, &buf)
}

fn ipv4(
    src: Ipv4Address,
    dst: Ipv4Address,
    proto: IpProtocol,
    payload: &[u8],
) -> std::vec::Vec<u8> {
    let repr = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: proto,
        payload_len: payload.len(),
        hop_limit: 64,
    };
    let mut buf = vec![0u8; repr.buffer_len() + payload.len()];
    let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
    repr.emit(&mut p, &caps());
    p.payload_mut().copy_from_slice(payload);
    buf
}

fn ping(seq: u16, data: &[u8]) -> std::vec::Vec<u8> {
    let repr = Icmpv4Repr::EchoRequest {
        ident: 7,
        seq_no: seq,
        data,
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Icmpv4Packet::new_unchecked(&mut buf[..]), &caps());
    eth(
        US_MAC,
        EthernetProtocol::Ipv4,
        &ipv4(PEER, US, IpProtocol::Icmp, &buf),
    )
}

fn udp(src: Ipv4Address, dst: Ipv4Address, port: u16, data: &[u8]) -> std::vec::Vec<u8> {
    let repr = UdpRepr {
        src_port: 4000,
        dst_port: port,
    };
    let mut buf = vec![0u8; 8 + data.len()];
    let mut p = UdpPacket::new_unchecked(&mut buf[..]);
    repr.emit(
        &mut p,
        &src.into(),
        &dst.into(),
        data.len(),
        |b| b.copy_from_slice(data),
        &caps(),
    );
    ipv4(src, dst, IpProtocol::Udp, &buf)
}

#[test]
fn answers_arp_for_its_address_only_and_learns_the_asker() {
    let (mut ip, mut out) = (ip(), Out::default());
    ip.receive_frame(
        &arp(ArpOperation::Request, Ipv4Address::new(10, 0, 2, 99)),
        0,
        &mut out,
    );
    assert!(out.nic.is_empty());
    ip.receive_frame(&arp(ArpOperation::Request, US), 0, &mut out);
    assert_eq!(out.nic.len(), 1);
    let f = EthernetFrame::new_checked(&out.nic[0][..]).unwrap();
    assert_eq!(f.dst_addr(), PEER_MAC);
    let r = ArpRepr::parse(&ArpPacket::new_checked(f.payload()).unwrap()).unwrap();
    assert_eq!(
        r,
        ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Reply,
            source_hardware_addr: US_MAC,
            source_protocol_addr: US,
            target_hardware_addr: PEER_MAC,
            target_protocol_addr: PEER,
        }
    );
    assert_eq!(ip.lookup(PEER, 1), Some(PEER_MAC));
    assert_eq!(ip.lookup(PEER, ARP_TTL_NS + 1), None);
}

#[test]
fn answers_ping_with_the_same_data() {
    let (mut ip, mut out) = (ip(), Out::default());
    ip.receive_frame(&arp(ArpOperation::Request, US), 0, &mut out);
    out.nic.clear();
    ip.receive_frame(&ping(3, b"hello axolotl"), 5, &mut out);
    assert_eq!(out.nic.len(), 1);
    let f = EthernetFrame::new_checked(&out.nic[0][..]).unwrap();
    let p = Ipv4Packet::new_checked(f.payload()).unwrap();
    let r = Ipv4Repr::parse(&p, &caps()).unwrap();
    assert_eq!((r.src_addr, r.dst_addr), (US, PEER));
    let icmp = Icmpv4Packet::new_checked(p.payload()).unwrap();
    assert_eq!(
        Icmpv4Repr::parse(&icmp, &caps()).unwrap(),
        Icmpv4Repr::EchoReply {
            ident: 7,
            seq_no: 3,
            data: b"hello axolotl"
        }
    );
    assert_eq!(ip.stats().echo_replies, 1);
}

#[test]
fn a_reply_waits_for_arp_then_goes() {
    let (mut ip, mut out) = (ip(), Out::default());
    // A ping from a neighbour we do not know yet: the reply waits while we ask.
    ip.receive_frame(&ping(1, b"x"), 0, &mut out);
    assert_eq!(out.nic.len(), 1, "an ARP request");
    let f = EthernetFrame::new_checked(&out.nic[0][..]).unwrap();
    assert_eq!(f.ethertype(), EthernetProtocol::Arp);
    assert!(f.dst_addr().is_broadcast());
    ip.receive_frame(&arp(ArpOperation::Reply, US), 10, &mut out);
    assert_eq!(out.nic.len(), 2, "the reply went once the answer came");
    let f = EthernetFrame::new_checked(&out.nic[1][..]).unwrap();
    assert_eq!(
        (f.dst_addr(), f.ethertype()),
        (PEER_MAC, EthernetProtocol::Ipv4)
    );
}

#[test]
fn unanswered_arp_is_repeated_then_its_packets_dropped() {
    let (mut ip, mut out) = (ip(), Out::default());
    let pkt = udp(US, FAR, 9, b"to the world");
    assert!(ip.send(&pkt, 0, &mut out));
    assert_eq!(out.nic.len(), 1);
    // Routed through the gateway: ARP asks for the gateway, not FAR.
    let f = EthernetFrame::new_checked(&out.nic[0][..]).unwrap();
    let r = ArpRepr::parse(&ArpPacket::new_checked(f.payload()).unwrap()).unwrap();
    let ArpRepr::EthernetIpv4 {
        target_protocol_addr,
        ..
    } = r
    else {
        unreachable!()
    };
    assert_eq!(target_protocol_addr, PEER);
    assert_eq!(ip.poll_at(), Some(ARP_RETRY_NS));
    for t in 1..=ARP_RETRIES {
        ip.poll(u64::from(t) * ARP_RETRY_NS, &mut out);
    }
    assert_eq!(out.nic.len(), usize::from(ARP_RETRIES));
    assert_eq!(ip.stats().arp_dropped, 1);
    assert_eq!(ip.poll_at(), None);
}

#[test]
fn sends_only_well_formed_packets_from_its_own_address() {
    let (mut ip, mut out) = (ip(), Out::default());
    assert!(!ip.send(&udp(FAR, PEER, 9, b"spoofed"), 0, &mut out));
    assert!(!ip.send(b"\x45\x00\x00", 0, &mut out));
    let mut bad = udp(US, PEER, 9, b"bad checksum");
    bad[10] ^= 0xff;
    assert!(!ip.send(&bad, 0, &mut out));
    assert_eq!(ip.stats().refused, 3);
    assert!(out.nic.is_empty());
    let no_route = Ip::new(Config {
        gateway: None,
        ..*ip.config()
    })
    .send(&udp(US, FAR, 9, b"x"), 0, &mut out);
    assert!(!no_route);
}

#[test]
fn tcp_and_udp_go_up_other_protocols_get_unreachable() {
    let (mut ip, mut out) = (ip(), Out::default());
    ip.receive_frame(&arp(ArpOperation::Request, US), 0, &mut out);
    out.nic.clear();
    let u = udp(PEER, US, 7, b"echo me");
    ip.receive_frame(&eth(US_MAC, EthernetProtocol::Ipv4, &u), 1, &mut out);
    assert_eq!(out.up, vec![u]);
    // Protocol 200: protocol unreachable back to the sender.
    let odd = ipv4(PEER, US, IpProtocol::Unknown(200), b"0123456789");
    ip.receive_frame(&eth(US_MAC, EthernetProtocol::Ipv4, &odd), 2, &mut out);
    assert_eq!(out.nic.len(), 1);
    let f = EthernetFrame::new_checked(&out.nic[0][..]).unwrap();
    let p = Ipv4Packet::new_checked(f.payload()).unwrap();
    let icmp = Icmpv4Packet::new_checked(p.payload()).unwrap();
    assert!(matches!(
        Icmpv4Repr::parse(&icmp, &caps()).unwrap(),
        Icmpv4Repr::DstUnreachable {
            reason: Icmpv4DstUnreachable::ProtoUnreachable,
            ..
        }
    ));
}

#[test]
fn fragments_bad_checksums_and_strangers_are_dropped() {
    let (mut ip, mut out) = (ip(), Out::default());
    let mut frag = udp(PEER, US, 7, &[0u8; 64]);
    {
        let mut p = Ipv4Packet::new_unchecked(&mut frag[..]);
        p.set_more_frags(true);
        p.fill_checksum();
    }
    ip.receive_frame(&eth(US_MAC, EthernetProtocol::Ipv4, &frag), 0, &mut out);
    // Ping of death: the last fragment of a 65,535+ byte ping.
    let mut pod = ipv4(PEER, US, IpProtocol::Icmp, &[0u8; 1400]);
    {
        let mut p = Ipv4Packet::new_unchecked(&mut pod[..]);
        p.set_frag_offset(65_528);
        p.fill_checksum();
    }
    ip.receive_frame(&eth(US_MAC, EthernetProtocol::Ipv4, &pod), 0, &mut out);
    let mut bad = udp(PEER, US, 7, b"x");
    bad[10] ^= 1;
    ip.receive_frame(&eth(US_MAC, EthernetProtocol::Ipv4, &bad), 0, &mut out);
    let other = udp(PEER, Ipv4Address::new(10, 0, 2, 3), 7, b"x");
    ip.receive_frame(&eth(US_MAC, EthernetProtocol::Ipv4, &other), 0, &mut out);
    let mut lying = udp(PEER, US, 7, b"x");
    lying[3] = 200; // total length beyond the frame
    ip.receive_frame(&eth(US_MAC, EthernetProtocol::Ipv4, &lying), 0, &mut out);
    ip.receive_frame(&[0u8; 10], 0, &mut out);
    assert!(out.nic.is_empty() && out.up.is_empty());
    let s = ip.stats();
    assert_eq!((s.fragments, s.not_ours), (2, 1));
    assert_eq!(s.malformed, 3);
}

#[test]
fn the_cache_is_bounded_and_forgets_the_oldest() {
    let (mut ip, mut out) = (ip(), Out::default());
    for i in 0..(ARP_ENTRIES as u8 + 5) {
        let mut f = arp(ArpOperation::Request, US);
        // Sender 10.0.2.(100+i) with a distinct MAC.
        let mut a = ArpPacket::new_unchecked(&mut f[ETH_HEADER..]);
        a.set_source_protocol_addr(&[10, 0, 2, 100 + i]);
        a.set_source_hardware_addr(&[2, 0, 0, 0, 1, i]);
        ip.receive_frame(&f, u64::from(i), &mut out);
    }
    assert_eq!(ip.lookup(Ipv4Address::new(10, 0, 2, 100), 50), None);
    assert!(ip
        .lookup(Ipv4Address::new(10, 0, 2, 100 + ARP_ENTRIES as u8 + 4), 50)
        .is_some());
}

proptest! {
    #[test]
    fn random_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1600)) {
        let (mut ip, mut out) = (ip(), Out::default());
        ip.receive_frame(&bytes, 0, &mut out);
        let _ = ip.send(&bytes, 0, &mut out);
        for f in &out.nic {
            prop_assert!(f.len() <= MAX_FRAME);
        }
    }

    #[test]
    fn mangled_pings_never_panic(seq in any::<u16>(), at in 0usize..60, v in any::<u8>(),
                                  data in proptest::collection::vec(any::<u8>(), 0..64)) {
        let (mut ip, mut out) = (ip(), Out::default());
        let mut f = ping(seq, &data);
        let at = at % f.len();
        f[at] = v;
        ip.receive_frame(&f, 0, &mut out);
        ip.poll(ARP_RETRY_NS * 10, &mut out);
    }
}

mod kept_neighbours {
    use super::*;
    use crate::neighbours::{decode, encode, BadRecord, Neighbour, NeighbourBook, MAX_KEPT};
    use axolotl_sdk::mock::MockOs;
    use axolotl_sdk::{Channel, Os};
    use axolotl_store::mock::{os_with_store, Calls};
    use axolotl_store_api::MAX_VALUE_LEN;

    const STORE: Channel = Channel::new(4);

    fn world() -> (MockOs, Calls) {
        os_with_store(STORE, "ip")
    }

    /// A restarted IP that read its cache from the store sends its first
    /// packet to a known neighbour at once; one that did not asks by ARP
    /// first.
    #[test]
    fn a_restarted_ip_needs_no_arp_for_a_neighbour_it_knew() {
        let (mut os, calls) = world();
        let (mut first, mut out) = (ip(), Out::default());
        let mut book = NeighbourBook::open(&mut os, STORE, &mut first);
        first.receive_frame(&arp(ArpOperation::Reply, US), 0, &mut out);
        assert!(first.lookup(PEER, 0).is_some());
        book.keep(&mut os, &first).unwrap();
        // Kept once: with nothing new, no more writes.
        let after_write = calls.made.get();
        book.keep(&mut os, &first).unwrap();
        assert_eq!(
            calls.made.get(),
            after_write,
            "an unchanged cache written again"
        );

        // IP restarts 5 s later: fresh memory, the same store.
        os.advance_ms(5_000);
        let now = os.now().as_nanos();
        let mut again = ip();
        let _book = NeighbourBook::open(&mut os, STORE, &mut again);
        let mut out = Out::default();
        again.send(&udp(US, PEER, 7, b"first"), now, &mut out);
        assert_eq!(out.nic.len(), 1);
        let f = EthernetFrame::new_checked(&out.nic[0][..]).unwrap();
        assert_eq!(
            (f.dst_addr(), f.ethertype()),
            (PEER_MAC, EthernetProtocol::Ipv4),
            "an ARP round trip before the first packet"
        );
        // Without the store, the first packet waits for ARP.
        let mut cold = ip();
        let mut out = Out::default();
        cold.send(&udp(US, PEER, 7, b"first"), now, &mut out);
        let f = EthernetFrame::new_checked(&out.nic[0][..]).unwrap();
        assert_eq!(f.ethertype(), EthernetProtocol::Arp);
    }

    /// The cache counts a change only when the record would change: a
    /// neighbour heard again within a step is none; a new step, an expiry
    /// are.
    #[test]
    fn the_cache_counts_only_changes_the_store_would_see() {
        let (mut ip, mut out) = (ip(), Out::default());
        let step = crate::neighbours::STEP_NS;
        ip.receive_frame(&arp(ArpOperation::Reply, US), 1, &mut out);
        let after_learning = ip.changes();
        assert!(after_learning > 0);
        ip.receive_frame(&ping(1, b"x"), 2, &mut out);
        ip.receive_frame(&arp(ArpOperation::Reply, US), 3, &mut out);
        assert_eq!(ip.changes(), after_learning, "heard again, same step");
        ip.receive_frame(&arp(ArpOperation::Reply, US), step + 1, &mut out);
        assert_eq!(ip.changes(), after_learning + 1, "a new step");
        ip.poll(step + 1 + ARP_TTL_NS, &mut out);
        assert_eq!(ip.changes(), after_learning + 2, "expired");
    }

    /// A neighbour kept long ago has expired by the time IP comes back.
    #[test]
    fn an_expired_neighbour_is_not_taken_back() {
        let (mut os, _) = world();
        let mut first = ip();
        let mut book = NeighbourBook::open(&mut os, STORE, &mut first);
        first.receive_frame(&arp(ArpOperation::Reply, US), 0, &mut Out::default());
        book.keep(&mut os, &first).unwrap();
        os.advance_ms(ARP_TTL_NS / 1_000_000 + 1);
        let mut again = ip();
        let _ = NeighbourBook::open(&mut os, STORE, &mut again);
        assert_eq!(again.neighbours(os.now().as_nanos()).count(), 0);
    }

    fn n(last: u8, learnt: u64) -> Neighbour {
        Neighbour {
            ip: Ipv4Address::new(10, 0, 2, last),
            mac: EthernetAddress([2, 0, 0, 0, 0, last]),
            learnt,
        }
    }

    #[test]
    fn records_round_trip_and_bad_ones_are_refused() {
        let step = crate::neighbours::STEP_NS;
        let kept = [n(9, 3 * step + 5), n(2, step)];
        let mut buf = [0u8; MAX_VALUE_LEN];
        let len = encode(&kept, &mut buf);
        let mut got = vec![];
        decode(&buf[..len], |x| got.push(x)).unwrap();
        // In address order, learnt rounded down to whole steps.
        assert_eq!(got, [n(2, step), n(9, 3 * step)]);
        // More than fit: the most recent are kept.
        let many: std::vec::Vec<Neighbour> = (1..=30).map(|i| n(i, u64::from(i) * step)).collect();
        let len = encode(&many, &mut buf);
        let mut got = vec![];
        decode(&buf[..len], |x| got.push(x)).unwrap();
        assert_eq!(got.len(), MAX_KEPT);
        assert!(got
            .iter()
            .all(|x| x.ip.octets()[3] as usize > 30 - MAX_KEPT));
        // Bad records give nothing.
        let mut none = |_| panic!("a neighbour from a bad record");
        assert_eq!(decode(&[], &mut none), Err(BadRecord::Length(0)));
        assert_eq!(decode(&[9], &mut none), Err(BadRecord::Version(9)));
        assert_eq!(decode(&[1, 1, 2], &mut none), Err(BadRecord::Length(3)));
        let len = encode(&[n(2, 0), n(9, 0)], &mut buf);
        let mut swapped = buf[..len].to_vec();
        swapped[1..].rotate_left(crate::neighbours::ENTRY);
        assert_eq!(decode(&swapped, &mut none), Err(BadRecord::Entry(1)));
        // A learnt time past the clock's range saturates (it overflowed).
        let mut late = buf[..len].to_vec();
        late[11..15].copy_from_slice(&[0xff; 4]);
        let mut got = vec![];
        decode(&late, |x| got.push(x)).unwrap();
        assert_eq!(got[0].learnt, u64::MAX);
        let mut broadcast = buf[..len].to_vec();
        broadcast[5..11].copy_from_slice(&[0xff; 6]);
        assert_eq!(decode(&broadcast, &mut none), Err(BadRecord::Entry(0)));
    }

    proptest! {
        #[test]
        fn any_record_decodes_without_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(&bytes, |_| {});
        }
    }
}

/// A packet from the filter longer than the MTU is refused and counted,
/// never a panic: not for a known neighbour, not while ARP is asked (it
/// used to overrun the buffer of a packet waiting for ARP).
#[test]
fn packets_longer_than_the_mtu_from_above_are_refused() {
    for known in [false, true] {
        let (mut ip, mut out) = (ip(), Out::default());
        if known {
            ip.receive_frame(&arp(ArpOperation::Reply, US), 0, &mut out);
        }
        out.nic.clear();
        let long = udp(US, PEER, 7, &vec![7u8; MTU]);
        assert!(long.len() > MTU);
        assert!(!ip.send(&long, 1, &mut out), "known neighbour: {known}");
        assert!(out.nic.is_empty());
        assert_eq!(ip.stats().refused, 1);
        // The longest packet that fits still goes.
        let fits = udp(US, PEER, 7, &vec![7u8; MTU - 28]);
        assert_eq!(fits.len(), MTU);
        assert!(ip.send(&fits, 2, &mut out));
    }
}
