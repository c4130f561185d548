use super::*;
use proptest::prelude::*;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{Ipv4Repr, TcpControl, TcpRepr, TcpSeqNumber, UdpRepr};

const US: Ipv4Address = Ipv4Address::new(10, 0, 2, 15);
const HOST: Ipv4Address = Ipv4Address::new(10, 0, 2, 2);
const FAR: Ipv4Address = Ipv4Address::new(192, 0, 2, 9);

fn ip(src: Ipv4Address, dst: Ipv4Address, proto: IpProtocol, payload: &[u8]) -> std::vec::Vec<u8> {
    let repr = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: proto,
        payload_len: payload.len(),
        hop_limit: 64,
    };
    let mut buf = vec![0u8; 20 + payload.len()];
    let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
    repr.emit(&mut p, &ChecksumCapabilities::default());
    p.payload_mut().copy_from_slice(payload);
    buf
}

fn tcp(
    src: (Ipv4Address, u16),
    dst: (Ipv4Address, u16),
    control: TcpControl,
    ack: bool,
) -> std::vec::Vec<u8> {
    let repr = TcpRepr {
        src_port: src.1,
        dst_port: dst.1,
        control,
        seq_number: TcpSeqNumber(100),
        ack_number: ack.then_some(TcpSeqNumber(1)),
        window_len: 1000,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None, None, None],
        timestamp: None,
        payload: b"",
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(
        &mut TcpPacket::new_unchecked(&mut buf[..]),
        &src.0.into(),
        &dst.0.into(),
        &ChecksumCapabilities::default(),
    );
    ip(src.0, dst.0, IpProtocol::Tcp, &buf)
}

fn udp(src: (Ipv4Address, u16), dst: (Ipv4Address, u16)) -> std::vec::Vec<u8> {
    let repr = UdpRepr {
        src_port: src.1,
        dst_port: dst.1,
    };
    let mut buf = vec![0u8; 8 + 4];
    repr.emit(
        &mut UdpPacket::new_unchecked(&mut buf[..]),
        &src.0.into(),
        &dst.0.into(),
        4,
        |b| b.copy_from_slice(b"ping"),
        &ChecksumCapabilities::default(),
    );
    ip(src.0, dst.0, IpProtocol::Udp, &buf)
}

/// Services on 7, 9 and 80 open to everyone; everything else in is dropped;
/// everything out passes.
fn policy() -> Policy {
    let mut rules = Vec::new();
    for (lo, hi) in [(7, 7), (9, 9), (80, 80)] {
        let _ = rules.push(Rule {
            action: Action::Pass,
            direction: Some(Direction::In),
            proto: Proto::Any,
            remote: None,
            local_ports: Some((lo, hi)),
        });
    }
    let _ = rules.push(Rule {
        action: Action::Pass,
        direction: Some(Direction::Out),
        proto: Proto::Any,
        remote: None,
        local_ports: None,
    });
    Policy {
        rules,
        default: Action::Drop,
    }
}

#[test]
fn services_open_others_closed() {
    let mut f = Filter::new(policy());
    let syn = tcp((HOST, 5000), (US, 7), TcpControl::Syn, false);
    assert_eq!(f.check(Direction::In, &syn, 0), Action::Pass);
    let syn22 = tcp((HOST, 5000), (US, 22), TcpControl::Syn, false);
    assert_eq!(f.check(Direction::In, &syn22, 0), Action::Drop);
    assert_eq!(
        f.check(Direction::In, &udp((HOST, 5000), (US, 7)), 0),
        Action::Pass
    );
    assert_eq!(
        f.check(Direction::In, &udp((HOST, 5000), (US, 53)), 0),
        Action::Drop
    );
    assert_eq!(f.stats().dropped_policy, 2);
}

#[test]
fn established_flows_pass_both_ways_and_strays_do_not() {
    let mut f = Filter::new(policy());
    // Our reply to a connection that was never opened: out passes by rule,
    // but it is no SYN, so it is a stray.
    let stray = tcp((US, 7), (HOST, 5000), TcpControl::None, true);
    assert_eq!(f.check(Direction::Out, &stray, 0), Action::Drop);
    assert_eq!(f.stats().dropped_stray, 1);
    // Opened from outside: the rest of the flow passes either way.
    let syn = tcp((HOST, 5000), (US, 7), TcpControl::Syn, false);
    assert_eq!(f.check(Direction::In, &syn, 0), Action::Pass);
    let synack = tcp((US, 7), (HOST, 5000), TcpControl::Syn, true);
    assert_eq!(f.check(Direction::Out, &synack, 1), Action::Pass);
    let ack = tcp((HOST, 5000), (US, 7), TcpControl::None, true);
    assert_eq!(f.check(Direction::In, &ack, 2), Action::Pass);
    assert_eq!(f.stats().passed_established, 2);
    // A flow we opened to a port the in-rules do not open: replies pass.
    let out = udp((US, 40000), (FAR, 53));
    assert_eq!(f.check(Direction::Out, &out, 3), Action::Pass);
    let reply = udp((FAR, 53), (US, 40000));
    assert_eq!(f.check(Direction::In, &reply, 4), Action::Pass);
    // But not from another port of the same host.
    let other = udp((FAR, 54), (US, 40000));
    assert_eq!(f.check(Direction::In, &other, 5), Action::Drop);
}

#[test]
fn flows_expire_and_closing_ones_sooner() {
    let mut f = Filter::new(policy());
    let out = udp((US, 40000), (FAR, 53));
    let reply = udp((FAR, 53), (US, 40000));
    f.check(Direction::Out, &out, 0);
    assert_eq!(
        f.check(Direction::In, &reply, UDP_IDLE_NS - 1),
        Action::Pass
    );
    assert_eq!(
        f.check(Direction::In, &reply, 2 * UDP_IDLE_NS),
        Action::Drop
    );
    // TCP: a FIN one way leaves the flow its full life (the other way may
    // still carry a long transfer, and stall in it); FIN both ways
    // shortens it.
    let syn = tcp((HOST, 5001), (US, 80), TcpControl::Syn, false);
    f.check(Direction::In, &syn, 0);
    let fin = tcp((HOST, 5001), (US, 80), TcpControl::Fin, true);
    assert_eq!(f.check(Direction::In, &fin, 1), Action::Pass);
    let late = tcp((HOST, 5001), (US, 80), TcpControl::None, true);
    let t = 2 + TCP_CLOSING_NS;
    assert_eq!(f.check(Direction::In, &late, t), Action::Pass);
    let fin_back = tcp((US, 80), (HOST, 5001), TcpControl::Fin, true);
    assert_eq!(f.check(Direction::Out, &fin_back, t + 1), Action::Pass);
    assert_eq!(
        f.check(Direction::In, &late, t + 2 + TCP_CLOSING_NS),
        Action::Drop
    );
}

#[test]
fn the_flow_table_is_bounded_and_survives_a_restart() {
    let mut f = Filter::new(policy());
    for p in 0..(MAX_FLOWS as u16 + 10) {
        f.check(
            Direction::Out,
            &udp((US, 10000 + p), (FAR, 53)),
            u64::from(p),
        );
    }
    assert_eq!(f.flows().count(), MAX_FLOWS);
    // The oldest went; the newest is there.
    assert_eq!(
        f.check(Direction::In, &udp((FAR, 53), (US, 10000)), 1000),
        Action::Drop
    );
    assert_eq!(
        f.check(
            Direction::In,
            &udp((FAR, 53), (US, 10000 + MAX_FLOWS as u16 + 9)),
            1000
        ),
        Action::Pass
    );
    // A new filter with the saved flows lets established traffic on.
    let saved: std::vec::Vec<FlowKey> = f.flows().collect();
    let mut g = Filter::new(policy());
    for k in saved {
        g.restore_flow(k, 0, 2000);
    }
    assert_eq!(
        g.check(
            Direction::In,
            &udp((FAR, 53), (US, 10000 + MAX_FLOWS as u16 + 9)),
            2001
        ),
        Action::Pass
    );
}

#[test]
fn malformed_packets_are_dropped() {
    let mut f = Filter::new(Policy {
        rules: Vec::new(),
        default: Action::Pass,
    });
    let mut bad = udp((HOST, 1), (US, 7));
    bad[10] ^= 1; // IP header checksum
    assert_eq!(f.check(Direction::In, &bad, 0), Action::Drop);
    let short_tcp = ip(HOST, US, IpProtocol::Tcp, &[0u8; 10]);
    assert_eq!(f.check(Direction::In, &short_tcp, 0), Action::Drop);
    assert_eq!(f.check(Direction::In, &[0x45, 0], 0), Action::Drop);
    assert_eq!(f.stats().dropped_malformed, 3);
}

proptest! {
    #[test]
    fn random_packets_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), out in any::<bool>()) {
        let mut f = Filter::new(policy());
        let dir = if out { Direction::Out } else { Direction::In };
        let _ = f.check(dir, &bytes, 0);
    }
}

#[test]
fn a_restarted_filter_resyncs_open_connections_by_the_rules() {
    let mut f = Filter::new(policy());
    f.resync_until(1_000);
    // Mid-connection segments of flows it never saw: judged by the rules.
    let ack_in = tcp((HOST, 5000), (US, 7), TcpControl::None, true);
    assert_eq!(f.check(Direction::In, &ack_in, 10), Action::Pass);
    let ack_out = tcp((US, 7), (HOST, 5000), TcpControl::None, true);
    assert_eq!(f.check(Direction::Out, &ack_out, 11), Action::Pass);
    assert_eq!(f.stats().passed_established, 1);
    // The rules still hold during the resync...
    let closed = tcp((HOST, 5000), (US, 22), TcpControl::None, true);
    assert_eq!(f.check(Direction::In, &closed, 12), Action::Drop);
    // ...and afterwards strays of unknown flows are dropped again, while
    // the resynced flow goes on.
    let stray = tcp((HOST, 5001), (US, 7), TcpControl::None, true);
    assert_eq!(f.check(Direction::In, &stray, 1_000), Action::Drop);
    assert_eq!(f.check(Direction::In, &ack_in, 1_001), Action::Pass);
}

/// With the table full, a new connection takes the place of a finished
/// one, then of a half-closed one; a live connection is never pushed out,
/// so its next segment (a FIN, a retransmission) still passes. With the
/// table full of live connections, the new SYN is dropped and counted.
#[test]
fn a_full_table_gives_way_finished_flows_first_and_never_live_ones() {
    let mut f = Filter::new(policy());
    let conn = |p: u16| ((HOST, 20000 + p), (US, 7));
    let open = |f: &mut Filter, p: u16, t: u64| {
        let (a, b) = conn(p);
        assert_eq!(
            f.check(Direction::In, &tcp(a, b, TcpControl::Syn, false), t),
            Action::Pass
        );
    };
    for p in 0..MAX_FLOWS as u16 {
        open(&mut f, p, u64::from(p));
    }
    // Connection 5 finishes (FIN both ways), 9 is half-closed.
    let (a, b) = conn(5);
    f.check(Direction::In, &tcp(a, b, TcpControl::Fin, true), 5000);
    f.check(Direction::Out, &tcp(b, a, TcpControl::Fin, true), 5001);
    let (a, b) = conn(9);
    f.check(Direction::In, &tcp(a, b, TcpControl::Fin, true), 5002);
    // Two new connections take the places of 5, then 9.
    open(&mut f, 3000, 6000);
    let (a5, b5) = conn(5);
    let ack = |a, b| tcp(a, b, TcpControl::None, true);
    assert_eq!(f.check(Direction::In, &ack(a5, b5), 6001), Action::Drop);
    let (a9, b9) = conn(9);
    assert_eq!(f.check(Direction::In, &ack(a9, b9), 6002), Action::Pass);
    open(&mut f, 3001, 6003);
    assert_eq!(f.check(Direction::In, &ack(a9, b9), 6004), Action::Drop);
    // Now every flow is a live connection: a third new one is refused,
    // and the oldest live one (connection 0) still passes.
    let (a, b) = conn(3002);
    assert_eq!(
        f.check(Direction::In, &tcp(a, b, TcpControl::Syn, false), 6005),
        Action::Drop
    );
    assert_eq!(f.stats().dropped_full, 1);
    let (a0, b0) = conn(0);
    assert_eq!(f.check(Direction::In, &ack(a0, b0), 6006), Action::Pass);
    assert_eq!(f.flows().count(), MAX_FLOWS);
}

mod kept_flows {
    use super::*;
    use crate::kept::{decode_key, encode_key, FlowBook};
    use axolotl_sdk::mock::MockOs;
    use axolotl_sdk::Channel;
    use axolotl_store::mock::os_with_store_of;

    /// The store as system.xml gives it to the filter.
    fn os_with_store(ch: Channel, ns: &'static str) -> (MockOs, axolotl_store::mock::Calls) {
        os_with_store_of(ch, ns, (16384, 1100), 256 * 1024)
    }

    const STORE: Channel = Channel::new(4);
    const MINUTE: u64 = 60_000_000_000;

    /// The keys in the filter's namespace of the store.
    fn kept(os: &mut MockOs) -> std::vec::Vec<FlowKey> {
        let (mut k, mut v) = ([0u8; 32], [0u8; 256]);
        let mut after = std::vec::Vec::new();
        let mut out = std::vec::Vec::new();
        while let Some((n, _)) = axolotl_store_api::next(os, STORE, &after, &mut k, &mut v).unwrap()
        {
            out.push(decode_key(&k[..n]).unwrap());
            after = k[..n].to_vec();
        }
        out
    }

    /// What the filter PD does with a packet: check it, and keep a new
    /// flow before the packet passes on.
    fn pass(
        f: &mut Filter,
        book: &mut FlowBook,
        os: &mut MockOs,
        dir: Direction,
        p: &[u8],
        now: u64,
    ) -> bool {
        let passed = f.check(dir, p, now) == Action::Pass;
        if f.has_added() {
            book.keep(os, f);
            assert!(!f.has_added());
        }
        passed
    }

    /// After a restart, the connections that were open pass both ways even
    /// after a minute of silence, and a stray segment to an open port is
    /// dropped at once: no grace window.
    #[test]
    fn a_restarted_filter_passes_its_open_connections_and_no_stray() {
        let (mut os, _) = os_with_store(STORE, "filter");
        let mut f = Filter::new(policy());
        let (mut book, n) = FlowBook::open(&mut os, STORE, &mut f, 0);
        assert_eq!(n, 0);
        let syn = tcp((HOST, 5000), (US, 7), TcpControl::Syn, false);
        assert!(pass(&mut f, &mut book, &mut os, Direction::In, &syn, 1));
        // Kept before the SYN went on.
        assert_eq!(kept(&mut os).len(), 1);
        let ack_out = tcp((US, 7), (HOST, 5000), TcpControl::Syn, true);
        assert!(pass(
            &mut f,
            &mut book,
            &mut os,
            Direction::Out,
            &ack_out,
            2
        ));

        // The filter restarts: fresh memory, the same store.
        let mut g = Filter::new(policy());
        let (mut book, n) = FlowBook::open(&mut os, STORE, &mut g, 3);
        assert_eq!(n, 1);
        let stray = tcp((HOST, 5001), (US, 7), TcpControl::None, true);
        assert!(!pass(&mut g, &mut book, &mut os, Direction::In, &stray, 4));
        let ack_in = tcp((HOST, 5000), (US, 7), TcpControl::None, true);
        assert!(pass(
            &mut g,
            &mut book,
            &mut os,
            Direction::In,
            &ack_in,
            MINUTE
        ));
        let ack_out = tcp((US, 7), (HOST, 5000), TcpControl::None, true);
        assert!(pass(
            &mut g,
            &mut book,
            &mut os,
            Direction::Out,
            &ack_out,
            MINUTE + 1
        ));
        assert_eq!(g.stats().passed_established, 2);
    }

    /// A flow the filter forgets leaves the store too; one added and
    /// forgotten in one round never stays there.
    #[test]
    fn forgotten_flows_leave_the_store() {
        let (mut os, calls) = os_with_store(STORE, "filter");
        let mut f = Filter::new(policy());
        let (mut book, _) = FlowBook::open(&mut os, STORE, &mut f, 0);
        let dns = udp((US, 4000), (FAR, 53));
        assert!(pass(&mut f, &mut book, &mut os, Direction::Out, &dns, 1));
        assert_eq!(kept(&mut os).len(), 1);
        f.expire(UDP_IDLE_NS + 2);
        book.keep(&mut os, &mut f);
        assert!(kept(&mut os).is_empty());
        // A store that stays away: counted, and the flow still passes.
        calls.fail_next.set(1_000);
        assert!(pass(
            &mut f,
            &mut book,
            &mut os,
            Direction::Out,
            &dns,
            UDP_IDLE_NS + 3
        ));
        assert!(book.failures > 0);
    }

    /// A delete the store could not take (it was restarting) is tried
    /// again, so that no key of a forgotten flow stays to fill the quota.
    #[test]
    fn a_failed_delete_is_tried_again() {
        let (mut os, calls) = os_with_store(STORE, "filter");
        let mut f = Filter::new(policy());
        let (mut book, _) = FlowBook::open(&mut os, STORE, &mut f, 0);
        let dns = udp((US, 4000), (FAR, 53));
        assert!(pass(&mut f, &mut book, &mut os, Direction::Out, &dns, 1));
        f.expire(UDP_IDLE_NS + 2);
        calls.fail_next.set(1_000);
        book.keep(&mut os, &mut f);
        calls.fail_next.set(0);
        assert_eq!(kept(&mut os).len(), 1, "the delete failed");
        book.keep(&mut os, &mut f);
        assert!(kept(&mut os).is_empty());
    }

    /// Keys left in the store by deletes that never got through (a
    /// restarted filter, a store gone for longer than the retries) do not
    /// keep new flows out of it for good: a write refused for the quota
    /// sweeps them away.
    #[test]
    fn keys_left_behind_give_way_to_new_flows() {
        let (mut os, _) = os_with_store_of(STORE, "filter", (2 * 14, 2), 64 * 1024);
        let mut f = Filter::new(policy());
        let (mut book, _) = FlowBook::open(&mut os, STORE, &mut f, 0);
        for port in [1000u16, 1001] {
            let stale = FlowKey {
                proto: 17,
                local: (US, port),
                remote: (FAR, 53),
            };
            axolotl_store_api::put(&mut os, STORE, &encode_key(&stale), &[0]).unwrap();
        }
        let dns = udp((US, 4000), (FAR, 53));
        assert!(pass(&mut f, &mut book, &mut os, Direction::Out, &dns, 1));
        assert_eq!(book.sweeps, 1);
        assert_eq!(book.failures, 0);
        assert_eq!(kept(&mut os).len(), 1);
    }

    /// A flow that finished is kept as finished: a restarted filter
    /// forgets it as soon as the first would have, and a full table of
    /// them gives way to new connections.
    #[test]
    fn finished_flows_come_back_finished_and_give_way() {
        let (mut os, _) = os_with_store(STORE, "filter");
        let mut f = Filter::new(Policy {
            rules: Vec::new(),
            default: Action::Pass,
        });
        let (mut book, _) = FlowBook::open(&mut os, STORE, &mut f, 0);
        // A table full of connections that ended (FIN both ways).
        for i in 0..MAX_FLOWS as u16 {
            let (them, us) = ((HOST, 20000 + i), (US, 7));
            for (dir, p) in [
                (Direction::In, tcp(them, us, TcpControl::Syn, false)),
                (Direction::Out, tcp(us, them, TcpControl::Fin, true)),
                (Direction::In, tcp(them, us, TcpControl::Fin, true)),
            ] {
                assert!(pass(&mut f, &mut book, &mut os, dir, &p, 10));
            }
        }
        let mut g = Filter::new(policy());
        let (mut book, n) = FlowBook::open(&mut os, STORE, &mut g, 20);
        assert_eq!(n, MAX_FLOWS);
        // A new connection takes the place of one of them.
        let syn = tcp((HOST, 40000), (US, 7), TcpControl::Syn, false);
        assert!(pass(&mut g, &mut book, &mut os, Direction::In, &syn, 21));
        // And they are gone after TCP_CLOSING_NS, not TCP_IDLE_NS.
        g.expire(20 + TCP_CLOSING_NS);
        book.keep(&mut os, &mut g);
        assert_eq!(kept(&mut os).len(), 1);
    }

    /// More flows in the store than the table holds (the earlier filter
    /// stopped before it deleted the ones it forgot): unfinished ones come
    /// back first, the rest are deleted; and an unfinished flow not seen
    /// since gives way to a new connection before one that was.
    #[test]
    fn unfinished_flows_come_back_first_and_unseen_ones_give_way() {
        let (mut os, _) = os_with_store(STORE, "filter");
        let key = |port: u16| FlowKey {
            proto: 6,
            local: (US, 7),
            remote: (HOST, port),
        };
        // Finished ones sort first by key; unfinished ones after them.
        for port in 1..=40u16 {
            let state = if port <= 20 { crate::FLOW_RST } else { 0 };
            axolotl_store_api::put(&mut os, STORE, &encode_key(&key(port)), &[state]).unwrap();
        }
        let mut g = Filter::new(policy());
        let (_, n) = FlowBook::open(&mut os, STORE, &mut g, 0);
        assert_eq!(n, 40, "all fit an empty table");
        let mut h = Filter::new(policy());
        for i in 0..MAX_FLOWS as u16 - 30 {
            h.restore_flow(key(1000 + i), 0, 0);
        }
        // With room for 30 only, the 20 unfinished ones come back.
        let (mut hb, n) = FlowBook::open(&mut os, STORE, &mut h, 0);
        assert_eq!(n, 30);
        let ack = tcp((HOST, 40), (US, 7), TcpControl::None, true);
        assert!(pass(&mut h, &mut hb, &mut os, Direction::In, &ack, 1));
        // The ten finished ones that found no room left the store.
        let left = kept(&mut os);
        assert_eq!(left.len(), 30);
        assert!((21..=40).all(|p| left.contains(&key(p))));
        // A table full of flows: a new connection pushes out one that was
        // not seen since it came back, never one that was.
        let syn = tcp((HOST, 50000), (US, 7), TcpControl::Syn, false);
        assert!(pass(&mut h, &mut hb, &mut os, Direction::In, &syn, 2));
        assert!(
            pass(&mut h, &mut hb, &mut os, Direction::In, &ack, 3),
            "a seen flow was pushed out"
        );
    }

    #[test]
    fn keys_round_trip_and_others_are_not_flows() {
        let k = FlowKey {
            proto: 6,
            local: (US, 7),
            remote: (FAR, 65535),
        };
        assert_eq!(decode_key(&encode_key(&k)), Some(k));
        assert_eq!(decode_key(b"ports"), None);
        assert_eq!(decode_key(&[0; 14]), None);
    }

    /// A key in the namespace that is no flow is deleted, and the rest
    /// still come back.
    #[test]
    fn a_key_that_is_no_flow_is_dropped_and_the_rest_come_back() {
        let (mut os, _) = os_with_store(STORE, "filter");
        let k = FlowKey {
            proto: 17,
            local: (US, 4000),
            remote: (FAR, 53),
        };
        axolotl_store_api::put(&mut os, STORE, &encode_key(&k), &[0]).unwrap();
        axolotl_store_api::put(&mut os, STORE, b"junk", b"x").unwrap();
        let mut bad_state = encode_key(&k);
        bad_state[12] ^= 1;
        axolotl_store_api::put(&mut os, STORE, &bad_state, &[0x80]).unwrap();
        let mut f = Filter::new(policy());
        let (_, n) = FlowBook::open(&mut os, STORE, &mut f, 0);
        assert_eq!(n, 1);
        assert_eq!(kept(&mut os), [k]);
    }
}
