//! Window updates sent again until the peer is heard from.
//!
//! When a receive window that was nearly shut opens again, smoltcp tells
//! the peer once, with a pure ACK (a window update), and never repeats it.
//! If that one packet is lost on the way (a NIC, IP or filter PD restarted
//! with it in flight), the peer still believes the window shut and waits
//! for its persist timer before it probes: at least 5 s on BSD-derived
//! stacks such as QEMU's user networking, longer with each probe answered
//! by a shut window before. Both ends then sit idle, and the connection
//! looks hung to its users.
//!
//! [`Reannounce`] watches the packets TCP sends and receives. It keeps a
//! copy of the last window update of each connection and sends the copy
//! again, after 200 ms and then at doubling intervals, until anything
//! arrives from that peer or TCP sends the connection anything newer
//! (which carries the window too). A copy is a packet smoltcp built, so
//! its checksums and numbers are right; one more pure ACK with a window
//! the peer did not have is no duplicate ACK to it.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use smoltcp::wire::{IpProtocol, Ipv4Packet, TcpPacket};

/// First resend this long after the update, in nanoseconds.
pub const FIRST_RESEND_NS: u64 = 200_000_000;
/// Copies sent at most per update (after 0.2, 0.6, 1.4, 3.0 s).
pub const MAX_RESENDS: u8 = 4;
/// Connections remembered at most; past it the oldest knowledge goes.
const MAX_FLOWS: usize = 1024;

/// Our address and port, then the peer's.
type Flow = ([u8; 4], u16, [u8; 4], u16);

struct Pending {
    packet: Vec<u8>,
    sent_ns: u64,
    resends: u8,
}

/// See the module documentation.
#[derive(Default)]
pub struct Reannounce {
    /// The window each connection last advertised (raw, unscaled: the
    /// scale stays the same for a connection's life).
    windows: BTreeMap<Flow, u16>,
    pending: BTreeMap<Flow, Pending>,
    resent: u64,
}

/// What a TCP segment says, for this purpose.
struct Seg {
    flow: Flow,
    window: u16,
    pure_ack: bool,
    ends: bool,
}

fn parse(packet: &[u8], outgoing: bool) -> Option<Seg> {
    let ip = Ipv4Packet::new_checked(packet).ok()?;
    if ip.next_header() != IpProtocol::Tcp {
        return None;
    }
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    let (src, dst) = (ip.src_addr().octets(), ip.dst_addr().octets());
    let flow = if outgoing {
        (src, tcp.src_port(), dst, tcp.dst_port())
    } else {
        (dst, tcp.dst_port(), src, tcp.src_port())
    };
    let payload = tcp.payload().len();
    Some(Seg {
        flow,
        window: tcp.window_len(),
        pure_ack: tcp.ack() && !tcp.syn() && !tcp.fin() && !tcp.rst() && payload == 0,
        ends: tcp.rst(),
    })
}

impl Reannounce {
    /// Nothing known yet.
    pub fn new() -> Reannounce {
        Reannounce::default()
    }

    /// TCP sent `packet` at `now_ns`.
    pub fn outgoing(&mut self, packet: &[u8], now_ns: u64) {
        let Some(seg) = parse(packet, true) else {
            return;
        };
        // Anything newer on the connection carries the window itself.
        self.pending.remove(&seg.flow);
        if seg.ends {
            self.windows.remove(&seg.flow);
            return;
        }
        if self.windows.len() >= MAX_FLOWS && !self.windows.contains_key(&seg.flow) {
            self.windows.clear();
            self.pending.clear();
        }
        let before = self.windows.insert(seg.flow, seg.window);
        let opened = before.is_some_and(|w| seg.window > w);
        if seg.pure_ack && opened {
            self.pending.insert(
                seg.flow,
                Pending {
                    packet: packet.to_vec(),
                    sent_ns: now_ns,
                    resends: 0,
                },
            );
        }
    }

    /// `packet` arrived for TCP: its sender had the window, or shows by
    /// speaking that it is not waiting for one.
    pub fn incoming(&mut self, packet: &[u8]) {
        let Some(seg) = parse(packet, false) else {
            return;
        };
        self.pending.remove(&seg.flow);
        if seg.ends {
            self.windows.remove(&seg.flow);
        }
    }

    fn due_at(p: &Pending) -> u64 {
        p.sent_ns
            .saturating_add(FIRST_RESEND_NS.saturating_mul(1 << p.resends))
    }

    /// When [`Reannounce::resend`] has work next, in nanoseconds.
    pub fn poll_at(&self) -> Option<u64> {
        self.pending.values().map(Self::due_at).min()
    }

    /// Sends to `out` the copies due at `now_ns`; whether any.
    pub fn resend(&mut self, now_ns: u64, out: &mut dyn FnMut(&[u8])) -> bool {
        let mut any = false;
        self.pending.retain(|_, p| {
            if now_ns < Self::due_at(p) {
                return true;
            }
            out(&p.packet);
            any = true;
            p.resends += 1;
            p.sent_ns = now_ns;
            p.resends < MAX_RESENDS
        });
        if any {
            self.resent += 1;
        }
        any
    }

    /// Rounds in which copies were sent, so far.
    pub fn resent(&self) -> u64 {
        self.resent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::{Ipv4Address, TcpControl, TcpRepr, TcpSeqNumber};

    const US: Ipv4Address = Ipv4Address::new(10, 0, 2, 15);
    const PEER: Ipv4Address = Ipv4Address::new(10, 0, 2, 2);

    fn segment(from_us: bool, window: u16, payload: &[u8], control: TcpControl) -> Vec<u8> {
        let (src, dst, sp, dp) = if from_us {
            (US, PEER, 7, 40000)
        } else {
            (PEER, US, 40000, 7)
        };
        let tcp = TcpRepr {
            src_port: sp,
            dst_port: dp,
            control,
            seq_number: TcpSeqNumber(1000),
            ack_number: Some(TcpSeqNumber(2000)),
            window_len: window,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: None,
            payload,
        };
        crate::leftover::ipv4_packet(src, dst, &tcp)
    }

    fn ack(from_us: bool, window: u16) -> Vec<u8> {
        segment(from_us, window, &[], TcpControl::None)
    }

    fn resent_at(r: &mut Reannounce, ms: u64) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        r.resend(ms * 1_000_000, &mut |p| out.push(p.to_vec()));
        out
    }

    #[test]
    fn a_window_update_is_sent_again_until_the_peer_speaks() {
        let mut r = Reannounce::new();
        r.outgoing(&ack(true, 0), 0);
        let update = ack(true, 8192);
        r.outgoing(&update, 10_000_000);
        assert!(resent_at(&mut r, 100).is_empty());
        assert_eq!(r.poll_at(), Some(210_000_000));
        assert_eq!(resent_at(&mut r, 210), vec![update.clone()]);
        // Then at doubling intervals.
        assert!(resent_at(&mut r, 500).is_empty());
        assert_eq!(resent_at(&mut r, 610), vec![update.clone()]);
        // The peer sends data: it had the window.
        r.incoming(&segment(false, 4096, b"more", TcpControl::Psh));
        assert_eq!(r.poll_at(), None);
        assert!(resent_at(&mut r, 10_000).is_empty());
    }

    #[test]
    fn copies_stop_after_a_few() {
        let mut r = Reannounce::new();
        r.outgoing(&ack(true, 0), 0);
        r.outgoing(&ack(true, 100), 0);
        let mut copies = 0;
        for ms in (0..20_000).step_by(50) {
            copies += resent_at(&mut r, ms).len();
        }
        assert_eq!(copies, usize::from(MAX_RESENDS));
    }

    #[test]
    fn no_copy_of_anything_but_an_opening_pure_ack() {
        let mut r = Reannounce::new();
        // The first segment seen, a shrinking window, data, a FIN.
        r.outgoing(&ack(true, 4000), 0);
        r.outgoing(&ack(true, 1000), 0);
        r.outgoing(&segment(true, 5000, b"data", TcpControl::Psh), 0);
        r.outgoing(&segment(true, 9000, &[], TcpControl::Fin), 0);
        assert_eq!(r.poll_at(), None);
        // Something newer sent after an update replaces it.
        r.outgoing(&ack(true, 9500), 0);
        assert!(r.poll_at().is_some());
        r.outgoing(&segment(true, 9500, b"reply", TcpControl::Psh), 0);
        assert_eq!(r.poll_at(), None);
        // A reset forgets the connection: its next ACK opens nothing.
        r.outgoing(&segment(true, 0, &[], TcpControl::Rst), 0);
        r.outgoing(&ack(true, 9999), 0);
        assert_eq!(r.poll_at(), None);
    }

    #[test]
    fn garbage_and_other_protocols_are_ignored() {
        let mut r = Reannounce::new();
        for p in [&[][..], &[0x45; 10], &[0xff; 60]] {
            r.outgoing(p, 0);
            r.incoming(p);
        }
        assert_eq!(r.poll_at(), None);
    }
}
