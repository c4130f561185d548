//! Connections an earlier incarnation of TCP left open at its peers.
//!
//! A restarted TCP knows none of the connections its earlier life had
//! (surviving them is a later step). A peer that still has data to send
//! retransmits it, gets a reset and tells its user at once. But a peer
//! that waits, with nothing unacknowledged (a client that sent its request
//! and waits for the reply), hears nothing: its user hangs until a timeout
//! of its own, 20 s and more, though the service is back in milliseconds.
//!
//! So TCP keeps the ends of each open connection in the state store, a key
//! of its own ([`key`]) with an empty value, written in the round that
//! accepted the connection and deleted once the connection is over. A
//! restarted TCP lists them, deletes them, and sends each peer two pure
//! ACKs on the connection ([`provoking_acks`]) with numbers the peer
//! cannot accept. TCP cannot know the peer's numbers, but of two
//! acknowledgment numbers half the sequence space apart one is ahead of
//! anything the peer sent, and a peer answers such an ACK, or a segment
//! outside its window, with an ACK of its own (RFC 9293 3.10.7.4, RFC 5961
//! 5.2; an ACK that looks old is dropped without a word, hence two). The
//! new TCP, knowing no such connection, answers that ACK with a reset that
//! carries exactly the sequence number the peer expects. The peer's user
//! sees a reset within a round trip of the restart, and connects again.
//! (A SYN would not do: smoltcp drops a segment without ACK on a
//! synchronized connection silently.)

use alloc::vec;
use alloc::vec::Vec;
use axolotl_sdk::{Channel, Os};
use axolotl_store_api::{MAX_KEY_LEN, MAX_VALUE_LEN};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    IpAddress, IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr,
    TcpSeqNumber,
};

/// A connection's ends: our address and port, the peer's (ports
/// big-endian).
pub type Ends = [u8; 12];

/// The first byte of every connection's key: no other key of TCP's
/// namespace ("incarnation", "ports") is 13 bytes long and starts so.
pub const KEY_TAG: u8 = b'c';
/// Bytes of a connection's key.
pub const KEY_LEN: usize = 13;
/// Keys a listing goes through at most.
const LIST_LIMIT: usize = 4 * crate::MAX_SLOTS;
/// Tries of a store call that met a restarting store.
const RETRIES: usize = 4;

/// The ends of a connection from our address and port and the peer's.
pub fn ends(local: ([u8; 4], u16), remote: ([u8; 4], u16)) -> Ends {
    let mut e = [0u8; 12];
    e[0..4].copy_from_slice(&local.0);
    e[4..6].copy_from_slice(&local.1.to_be_bytes());
    e[6..10].copy_from_slice(&remote.0);
    e[10..12].copy_from_slice(&remote.1.to_be_bytes());
    e
}

/// A connection's key in the store.
pub fn key(e: &Ends) -> [u8; KEY_LEN] {
    let mut k = [0u8; KEY_LEN];
    k[0] = KEY_TAG;
    k[1..].copy_from_slice(e);
    k
}

/// The ends a key names; `None` for any other key.
pub fn decode(key: &[u8]) -> Option<Ends> {
    match key {
        [KEY_TAG, rest @ ..] => rest.try_into().ok(),
        _ => None,
    }
}

/// Two IPv4 packets from our end of `e` to its peer: pure ACKs whose
/// numbers lie half the sequence space apart, so that the peer answers
/// one of them with an ACK telling where it is.
pub fn provoking_acks(e: &Ends) -> [Vec<u8>; 2] {
    [0u32, 1 << 31].map(|n| ack_packet(e, n))
}

fn ack_packet(e: &Ends, n: u32) -> Vec<u8> {
    let src = Ipv4Address::new(e[0], e[1], e[2], e[3]);
    let dst = Ipv4Address::new(e[6], e[7], e[8], e[9]);
    let tcp = TcpRepr {
        src_port: u16::from_be_bytes([e[4], e[5]]),
        dst_port: u16::from_be_bytes([e[10], e[11]]),
        control: TcpControl::None,
        seq_number: TcpSeqNumber(n as i32),
        ack_number: Some(TcpSeqNumber(n as i32)),
        window_len: 0,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    };
    ipv4_packet(src, dst, &tcp)
}

/// `tcp` from `src` to `dst` as a whole IPv4 packet, checksums filled in.
pub(crate) fn ipv4_packet(src: Ipv4Address, dst: Ipv4Address, tcp: &TcpRepr<'_>) -> Vec<u8> {
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Tcp,
        payload_len: tcp.buffer_len(),
        hop_limit: 64,
    };
    let mut buf = vec![0u8; ip.buffer_len() + tcp.buffer_len()];
    let caps = ChecksumCapabilities::default();
    let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
    ip.emit(&mut p, &caps);
    tcp.emit(
        &mut TcpPacket::new_unchecked(p.payload_mut()),
        &IpAddress::Ipv4(src),
        &IpAddress::Ipv4(dst),
        &caps,
    );
    buf
}

/// The open connections kept in the store.
pub struct ConnBook {
    store: Channel,
    /// The keys written, sorted.
    kept: Vec<[u8; KEY_LEN]>,
    /// Writes or deletes that failed (tried again at the next `keep`).
    pub failures: u64,
}

impl ConnBook {
    /// The book on the store on `store`, and the connections an earlier
    /// incarnation left there (their keys deleted now).
    pub fn open(os: &mut dyn Os, store: Channel) -> (ConnBook, Vec<Ends>) {
        let mut book = ConnBook {
            store,
            kept: Vec::new(),
            failures: 0,
        };
        let (mut k, mut v) = ([0u8; MAX_KEY_LEN], [0u8; MAX_VALUE_LEN]);
        let mut after: Vec<u8> = Vec::new();
        let mut left = Vec::new();
        for _ in 0..LIST_LIMIT {
            let listed = axolotl_store_api::retry(os, RETRIES, |os| {
                axolotl_store_api::next(os, store, &after, &mut k, &mut v)
            });
            let n = match listed {
                Ok(Some((n, _))) => n,
                Ok(None) => break,
                Err(e) => {
                    log::warn!("cannot list TCP's connections in the store ({e:?})");
                    book.failures += 1;
                    break;
                }
            };
            if let Some(e) = decode(&k[..n]) {
                left.push(e);
            }
            after.clear();
            after.extend_from_slice(&k[..n]);
        }
        for e in &left {
            let r = axolotl_store_api::retry(os, RETRIES, |os| {
                axolotl_store_api::delete(os, store, &key(e))
            });
            if r.is_err() {
                book.failures += 1;
                // Still there: the next `keep` deletes it.
                book.kept.push(key(e));
            }
        }
        book.kept.sort_unstable();
        (book, left)
    }

    /// Makes the store hold exactly the connections `open`: deletes the
    /// keys of those that ended, writes the new ones. A failed call is
    /// counted, logged (1st, 2nd, 4th... time) and tried again next time.
    pub fn keep(&mut self, os: &mut dyn Os, open: &[Ends]) {
        let mut want: Vec<[u8; KEY_LEN]> = open.iter().map(key).collect();
        want.sort_unstable();
        want.dedup();
        if want == self.kept {
            return;
        }
        let store = self.store;
        let mut now_kept = Vec::with_capacity(want.len());
        for k in core::mem::take(&mut self.kept) {
            if want.binary_search(&k).is_ok() {
                now_kept.push(k);
                continue;
            }
            let r = axolotl_store_api::retry(os, RETRIES, |os| {
                axolotl_store_api::delete(os, store, &k)
            });
            if r.is_err() {
                self.note_failure("delete");
                now_kept.push(k);
            }
        }
        now_kept.sort_unstable();
        let before = now_kept.clone();
        for k in want {
            if before.binary_search(&k).is_ok() {
                continue;
            }
            let r = axolotl_store_api::retry(os, RETRIES, |os| {
                axolotl_store_api::put(os, store, &k, &[])
            });
            match r {
                Ok(_) => now_kept.push(k),
                Err(_) => self.note_failure("write"),
            }
        }
        now_kept.sort_unstable();
        now_kept.dedup();
        self.kept = now_kept;
    }

    fn note_failure(&mut self, what: &str) {
        self.failures += 1;
        if self.failures.is_power_of_two() {
            log::warn!(
                "cannot {what} a TCP connection's key in the store ({} failures so far)",
                self.failures
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_ends_and_nothing_else() {
        let e = ends(([10, 0, 2, 15], 7), ([10, 0, 2, 2], 40000));
        assert_eq!(decode(&key(&e)), Some(e));
        for other in [&b"ports"[..], b"incarnation", b"", b"cshort", &[b'c'; 14]] {
            assert_eq!(decode(other), None, "{other:?}");
        }
    }

    #[test]
    fn the_provoking_acks_are_well_formed_pure_acks_between_the_ends() {
        let e = ends(([10, 0, 2, 15], 7), ([10, 0, 2, 2], 40000));
        let mut acks = Vec::new();
        for p in provoking_acks(&e) {
            let ip = Ipv4Packet::new_checked(&p[..]).unwrap();
            assert!(ip.verify_checksum());
            assert_eq!(ip.src_addr(), Ipv4Address::new(10, 0, 2, 15));
            assert_eq!(ip.dst_addr(), Ipv4Address::new(10, 0, 2, 2));
            let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
            assert!(tcp.verify_checksum(&ip.src_addr().into(), &ip.dst_addr().into()));
            assert_eq!((tcp.src_port(), tcp.dst_port()), (7, 40000));
            assert!(tcp.ack() && !tcp.syn() && !tcp.rst() && !tcp.fin());
            assert!(tcp.payload().is_empty());
            acks.push(tcp.ack_number());
        }
        // Half the sequence space apart: one is ahead of any peer.
        assert_eq!((acks[1].0 as u32).wrapping_sub(acks[0].0 as u32), 1 << 31);
    }
}
