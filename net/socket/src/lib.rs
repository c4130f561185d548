//! The socket interface: how an app PD uses the TCP or UDP PD.
//!
//! An app and a transport are joined by two links (`axolotl-link`), one
//! each way. Each packet on them is one message: the descriptor's `meta`
//! holds the operation (low 8 bits) and a connection handle (the other 24
//! bits); the buffer holds the operation's bytes. [`decode`] checks every
//! message from a neighbour (unknown operations, short or long payloads
//! are errors, never panics); [`encode`] writes one.
//!
//! TCP: the app sends [`Msg::Listen`] for a port and gets
//! [`Msg::Listening`] (or [`Msg::Refused`]); each connection arrives as
//! [`Msg::Accepted`] with a handle, then [`Msg::Data`] and
//! [`Msg::PeerClosed`] (the peer sent FIN), and ends with [`Msg::Closed`],
//! after which the handle means nothing. The app sends [`Msg::Send`],
//! [`Msg::Close`] (FIN after what was sent) and [`Msg::Abort`] (RST).
//!
//! UDP: [`Msg::Bind`] a port, then [`Msg::SendTo`] and [`Msg::Datagram`],
//! each naming the local port and the remote end.
//!
//! A restarted transport loses its connections and says nothing: the app
//! sees its links' peer restart and listens (binds) again, which is a
//! no-op for a port the transport kept. A handle of an earlier incarnation
//! of the transport names nothing in the next. A restarted app is seen by
//! the transport on the app's link (the sender attached anew), and its
//! old connections and ports are dropped.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

use axolotl_link::{RxLink, SendError, TxLink};
use axolotl_sdk::Os;

/// An IPv4 endpoint: address and port.
pub type Endpoint = ([u8; 4], u16);

/// A connection handle: 24 bits, chosen by the transport.
pub type Handle = u32;

/// Handles have this many bits.
pub const HANDLE_BITS: u32 = 24;

/// One message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Msg<'a> {
    /// App: listen on a TCP port.
    Listen(u16),
    /// App: send bytes on a connection.
    Send(Handle, &'a [u8]),
    /// App: close a connection after what was sent.
    Close(Handle),
    /// App: reset a connection.
    Abort(Handle),
    /// App: bind a UDP port.
    Bind(u16),
    /// App: send a datagram from a bound port to a remote end.
    SendTo(u16, Endpoint, &'a [u8]),
    /// Transport: listening on the port.
    Listening(u16),
    /// Transport: the port cannot be listened on or bound.
    Refused(u16),
    /// Transport: a connection on a handle, to a local port from a remote end.
    Accepted(Handle, u16, Endpoint),
    /// Transport: bytes that arrived on a connection.
    Data(Handle, &'a [u8]),
    /// Transport: the peer will send no more on the connection.
    PeerClosed(Handle),
    /// Transport: the connection is gone; the handle is free.
    Closed(Handle),
    /// Transport: bound the UDP port.
    Bound(u16),
    /// Transport: a datagram that arrived on a bound port from a remote end.
    Datagram(u16, Endpoint, &'a [u8]),
}

impl Msg<'_> {
    /// The operation's name, for logs (which must not carry payloads).
    pub fn op_name(&self) -> &'static str {
        match self {
            Msg::Listen(_) => "listen",
            Msg::Send(..) => "send",
            Msg::Close(_) => "close",
            Msg::Abort(_) => "abort",
            Msg::Bind(_) => "bind",
            Msg::SendTo(..) => "send-to",
            Msg::Listening(_) => "listening",
            Msg::Refused(_) => "refused",
            Msg::Accepted(..) => "accepted",
            Msg::Data(..) => "data",
            Msg::PeerClosed(_) => "peer-closed",
            Msg::Closed(_) => "closed",
            Msg::Bound(_) => "bound",
            Msg::Datagram(..) => "datagram",
        }
    }
}

/// Why a message was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bad {
    /// Unknown operation code.
    Op(u8),
    /// The payload does not have the operation's length.
    Length,
}

const LISTEN: u8 = 1;
const SEND: u8 = 2;
const CLOSE: u8 = 3;
const ABORT: u8 = 4;
const BIND: u8 = 5;
const SEND_TO: u8 = 6;
const LISTENING: u8 = 0x81;
const REFUSED: u8 = 0x82;
const ACCEPTED: u8 = 0x83;
const DATA: u8 = 0x84;
const PEER_CLOSED: u8 = 0x85;
const CLOSED: u8 = 0x86;
const BOUND: u8 = 0x87;
const DATAGRAM: u8 = 0x88;

/// Bytes of a UDP message's header (local port, remote address and port).
pub const UDP_HEADER: usize = 8;

fn meta(op: u8, handle: Handle) -> u32 {
    u32::from(op) | ((handle & ((1 << HANDLE_BITS) - 1)) << 8)
}

fn port(p: &[u8]) -> Result<u16, Bad> {
    match p {
        [a, b] => Ok(u16::from_le_bytes([*a, *b])),
        _ => Err(Bad::Length),
    }
}

fn endpoint(p: &[u8]) -> Endpoint {
    ([p[0], p[1], p[2], p[3]], u16::from_le_bytes([p[4], p[5]]))
}

/// Decodes a message from its `meta` and payload.
pub fn decode(meta: u32, payload: &[u8]) -> Result<Msg<'_>, Bad> {
    let op = meta as u8;
    let h: Handle = meta >> 8;
    let empty = |m: Msg<'static>| {
        if payload.is_empty() {
            Ok(m)
        } else {
            Err(Bad::Length)
        }
    };
    let udp = |payload: &[u8]| -> Result<(u16, Endpoint), Bad> {
        if payload.len() < UDP_HEADER {
            return Err(Bad::Length);
        }
        Ok((port(&payload[..2])?, endpoint(&payload[2..8])))
    };
    match op {
        LISTEN => port(payload).map(Msg::Listen),
        SEND => Ok(Msg::Send(h, payload)),
        CLOSE => empty(Msg::Close(h)),
        ABORT => empty(Msg::Abort(h)),
        BIND => port(payload).map(Msg::Bind),
        SEND_TO => udp(payload).map(|(p, e)| Msg::SendTo(p, e, &payload[UDP_HEADER..])),
        LISTENING => port(payload).map(Msg::Listening),
        REFUSED => port(payload).map(Msg::Refused),
        ACCEPTED => {
            if payload.len() != UDP_HEADER {
                return Err(Bad::Length);
            }
            let (p, e) = udp(payload)?;
            Ok(Msg::Accepted(h, p, e))
        }
        DATA => Ok(Msg::Data(h, payload)),
        PEER_CLOSED => empty(Msg::PeerClosed(h)),
        CLOSED => empty(Msg::Closed(h)),
        BOUND => port(payload).map(Msg::Bound),
        DATAGRAM => udp(payload).map(|(p, e)| Msg::Datagram(p, e, &payload[UDP_HEADER..])),
        op => Err(Bad::Op(op)),
    }
}

/// The links between an app PD and a transport, as the transport holds
/// them.
pub struct AppLinks {
    /// Events to the app.
    pub to_app: TxLink,
    /// Requests from the app.
    pub from_app: RxLink,
    /// Ports (listens or binds) the app may hold at once (`max_ports` of
    /// its request link in system.xml); more are refused to it alone.
    pub max_ports: u16,
}

impl AppLinks {
    /// Tells a (re)started transport's app to look at its links: it sees
    /// their peer restarted, and listens or binds again.
    pub fn greet(&self, os: &mut dyn Os) {
        os.notify(self.to_app.channel());
    }

    /// After a transport's round: notifies the app as its links ask, and
    /// says whether work came from it meanwhile (then another round runs):
    /// requests, when the transport takes more (`take_more`), or buffers
    /// given back, when events wait for them (`waiting`) and none is free.
    /// An app nobody waits for is not asked for buffers: asking it would
    /// say "came back" for buffers only reclaimed when used, and a
    /// transport of higher priority would spin on it.
    pub fn after(&mut self, os: &mut dyn Os, take_more: bool, waiting: bool) -> bool {
        if self.to_app.must_notify() {
            os.notify(self.to_app.channel());
        }
        if self.from_app.must_notify() {
            os.notify(self.from_app.channel());
        }
        let mut more = take_more && !self.from_app.request_packets();
        if waiting && self.to_app.free_buffers() == 0 {
            more |= !self.to_app.request_returns();
        }
        more
    }
}

/// After a transport's round, for every app `(links, take_more)`: on the
/// transport's first round greets the app (`greeted` remembers), then
/// [`AppLinks::after`]; whether work came from any of them.
pub fn after_round<'a>(
    os: &mut dyn Os,
    greeted: &mut bool,
    apps: impl Iterator<Item = (&'a mut AppLinks, bool)>,
    waiting: bool,
) -> bool {
    let greet = !core::mem::replace(greeted, true);
    let mut more = false;
    for (links, take_more) in apps {
        if greet {
            links.greet(os);
        }
        more |= links.after(os, take_more, waiting);
    }
    more
}

/// Bytes of the largest message [`send`] writes: a datagram of a whole
/// Ethernet payload and its header.
pub const MAX_MESSAGE: usize = 1500 + UDP_HEADER;

/// Encodes `m` and sends it on `link`.
pub fn send(link: &mut TxLink, m: &Msg<'_>) -> Result<(), SendError> {
    let mut buf = [0u8; MAX_MESSAGE];
    match encode(m, &mut buf) {
        Some((meta, n)) => link.send(&buf[..n], meta),
        None => Err(SendError::TooLong),
    }
}

/// Sends `m` to app `app` on `link`; a full link loses it, with a
/// warning.
pub fn send_or_log(link: &mut TxLink, m: &Msg<'_>, app: u8) {
    if send(link, m).is_err() {
        log::warn!("link to app {app} is full: a {} message lost", m.op_name());
    }
}

/// Writes `m` into `buf`: its `meta` and the payload's length; `None` if
/// `buf` is too small.
pub fn encode(m: &Msg<'_>, buf: &mut [u8]) -> Option<(u32, usize)> {
    let mut put = |bytes: &[&[u8]]| -> Option<usize> {
        let mut n = 0;
        for b in bytes {
            buf.get_mut(n..n + b.len())?.copy_from_slice(b);
            n += b.len();
        }
        Some(n)
    };
    let ep = |p: u16, e: &Endpoint| {
        let mut h = [0u8; UDP_HEADER];
        h[..2].copy_from_slice(&p.to_le_bytes());
        h[2..6].copy_from_slice(&e.0);
        h[6..].copy_from_slice(&e.1.to_le_bytes());
        h
    };
    Some(match *m {
        Msg::Listen(p) => (meta(LISTEN, 0), put(&[&p.to_le_bytes()])?),
        Msg::Send(h, d) => (meta(SEND, h), put(&[d])?),
        Msg::Close(h) => (meta(CLOSE, h), 0),
        Msg::Abort(h) => (meta(ABORT, h), 0),
        Msg::Bind(p) => (meta(BIND, 0), put(&[&p.to_le_bytes()])?),
        Msg::SendTo(p, e, d) => (meta(SEND_TO, 0), put(&[&ep(p, &e), d])?),
        Msg::Listening(p) => (meta(LISTENING, 0), put(&[&p.to_le_bytes()])?),
        Msg::Refused(p) => (meta(REFUSED, 0), put(&[&p.to_le_bytes()])?),
        Msg::Accepted(h, p, e) => (meta(ACCEPTED, h), put(&[&ep(p, &e)])?),
        Msg::Data(h, d) => (meta(DATA, h), put(&[d])?),
        Msg::PeerClosed(h) => (meta(PEER_CLOSED, h), 0),
        Msg::Closed(h) => (meta(CLOSED, h), 0),
        Msg::Bound(p) => (meta(BOUND, 0), put(&[&p.to_le_bytes()])?),
        Msg::Datagram(p, e, d) => (meta(DATAGRAM, 0), put(&[&ep(p, &e), d])?),
    })
}

#[cfg(test)]
mod tests {

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_message_round_trips() {
        let e = ([10, 0, 2, 2], 40000);
        let all = [
            Msg::Listen(7),
            Msg::Send(0x1203, b"abc"),
            Msg::Close(5),
            Msg::Abort(6),
            Msg::Bind(9),
            Msg::SendTo(7, e, b"dgram"),
            Msg::Listening(80),
            Msg::Refused(80),
            Msg::Accepted(0xffff, 80, e),
            Msg::Data(1, b""),
            Msg::PeerClosed(2),
            Msg::Closed(3),
            Msg::Bound(7),
            Msg::Datagram(7, e, b"x"),
        ];
        let mut buf = [0u8; 64];
        for m in all {
            let (meta, n) = encode(&m, &mut buf).unwrap();
            assert_eq!(decode(meta, &buf[..n]), Ok(m));
        }
        assert_eq!(encode(&Msg::Send(1, &[0; 65]), &mut buf), None);
    }

    #[test]
    fn hostile_messages_are_refused() {
        assert_eq!(decode(0x42, b""), Err(Bad::Op(0x42)));
        // Every bit above the operation is the handle's.
        assert_eq!(decode(0xabcd_ef02, b"x"), Ok(Msg::Send(0xab_cdef, b"x")));
        assert_eq!(decode(u32::from(LISTEN), b"\x07"), Err(Bad::Length));
        assert_eq!(decode(u32::from(CLOSE), b"x"), Err(Bad::Length));
        assert_eq!(decode(u32::from(SEND_TO), b"1234567"), Err(Bad::Length));
        assert_eq!(decode(u32::from(ACCEPTED), b"123456789"), Err(Bad::Length));
    }

    proptest! {
        #[test]
        fn random_messages_never_panic(meta in any::<u32>(), payload in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(m) = decode(meta, &payload) {
                let mut buf = [0u8; 64];
                let (m2, n) = encode(&m, &mut buf).unwrap();
                prop_assert_eq!(decode(m2, &buf[..n]), Ok(m));
            }
        }
    }
}
