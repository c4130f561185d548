use super::*;
use smoltcp::time::Instant;
use smoltcp::wire::IpAddress;

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
