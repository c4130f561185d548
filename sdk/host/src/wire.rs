//! What travels on a channel's socket between two PD processes. The peer is
//! untrusted: [`Packet::decode`] checks every byte count.

use axolotl_sdk::{Message, MAX_MESSAGE_WORDS};

const TAG_NOTIFY: u8 = b'N';
const TAG_CALL: u8 = b'C';
const TAG_REPLY: u8 = b'R';
const TAG_ERROR: u8 = b'E';

/// Header: tag, word count, 2 spare bytes, seq (u32), label (u64).
const HEADER: usize = 16;

/// The largest encoded packet.
pub const MAX_PACKET: usize = HEADER + 8 * MAX_MESSAGE_WORDS;

/// Error codes the supervisor sends in place of a reply.
pub mod error_code {
    /// The callee faulted or was restarted during the call.
    pub const PEER_RESTARTED: u64 = 1;
    /// The callee is stopped for good.
    pub const PEER_STOPPED: u64 = 2;
}

/// One datagram on a channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Packet {
    /// A notification.
    Notify,
    /// A protected call, with the caller's sequence number.
    Call(u32, Message),
    /// The reply to call `seq`.
    Reply(u32, Message),
    /// Call `seq` failed (sent by the supervisor on the callee's behalf).
    Error(u32, u64),
}

impl Packet {
    /// Encodes into `buf`, returning the length used.
    pub fn encode(&self, buf: &mut [u8; MAX_PACKET]) -> usize {
        let (tag, seq, label, words): (u8, u32, u64, &[u64]) = match self {
            Packet::Notify => {
                buf[0] = TAG_NOTIFY;
                return 1;
            }
            Packet::Call(seq, m) => (TAG_CALL, *seq, m.label(), m.words()),
            Packet::Reply(seq, m) => (TAG_REPLY, *seq, m.label(), m.words()),
            Packet::Error(seq, code) => (TAG_ERROR, *seq, *code, &[]),
        };
        buf[0] = tag;
        buf[1] = words.len() as u8;
        buf[2] = 0;
        buf[3] = 0;
        buf[4..8].copy_from_slice(&seq.to_le_bytes());
        buf[8..16].copy_from_slice(&label.to_le_bytes());
        for (i, w) in words.iter().enumerate() {
            buf[HEADER + 8 * i..HEADER + 8 * i + 8].copy_from_slice(&w.to_le_bytes());
        }
        HEADER + 8 * words.len()
    }

    /// Decodes a datagram; `None` for anything malformed.
    pub fn decode(buf: &[u8]) -> Option<Packet> {
        match *buf.first()? {
            TAG_NOTIFY if buf.len() == 1 => return Some(Packet::Notify),
            TAG_CALL | TAG_REPLY | TAG_ERROR => {}
            _ => return None,
        }
        let count = *buf.get(1)? as usize;
        if count > MAX_MESSAGE_WORDS || buf.len() != HEADER + 8 * count {
            return None;
        }
        let seq = u32::from_le_bytes(buf[4..8].try_into().ok()?);
        let label = u64::from_le_bytes(buf[8..16].try_into().ok()?);
        let mut msg = Message::new(label);
        for chunk in buf[HEADER..].chunks_exact(8) {
            msg.push(u64::from_le_bytes(chunk.try_into().ok()?)).ok()?;
        }
        Some(match buf[0] {
            TAG_CALL => Packet::Call(seq, msg),
            TAG_REPLY => Packet::Reply(seq, msg),
            _ if count == 0 => Packet::Error(seq, label),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut buf = [0u8; MAX_PACKET];
        let msg = Message::with_words(7, &[1, 2, u64::MAX]).unwrap();
        for p in [
            Packet::Notify,
            Packet::Call(3, msg.clone()),
            Packet::Reply(u32::MAX, msg),
            Packet::Error(9, error_code::PEER_RESTARTED),
            Packet::Call(1, Message::with_words(0, &[5; MAX_MESSAGE_WORDS]).unwrap()),
        ] {
            let n = p.encode(&mut buf);
            assert_eq!(Packet::decode(&buf[..n]), Some(p));
        }
    }

    #[test]
    fn rejects_malformed_datagrams() {
        let mut buf = [0u8; MAX_PACKET];
        let n = Packet::Call(1, Message::with_words(1, &[1, 2]).unwrap()).encode(&mut buf);
        assert!(Packet::decode(&buf[..n - 1]).is_none(), "truncated");
        assert!(Packet::decode(&[]).is_none());
        assert!(Packet::decode(b"NN").is_none());
        assert!(Packet::decode(b"X").is_none());
        buf[1] = 65;
        assert!(Packet::decode(&buf[..n]).is_none(), "too many words");
        let mut err = [0u8; MAX_PACKET];
        let n = Packet::Reply(1, Message::with_words(1, &[1]).unwrap()).encode(&mut err);
        err[0] = b'E';
        assert!(Packet::decode(&err[..n]).is_none(), "error with words");
        // Every short prefix of arbitrary bytes decodes or is refused, never panics.
        for len in 0..40 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 3) as u8).collect();
            let _ = Packet::decode(&junk);
            let mut c = junk.clone();
            if let Some(b) = c.first_mut() {
                *b = b'C';
            }
            let _ = Packet::decode(&c);
        }
    }
}
