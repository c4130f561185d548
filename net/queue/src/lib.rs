//! An smoltcp [`Device`] of medium IP made of two queues: packets pushed
//! with [`Queues::push`] are what smoltcp receives; what smoltcp sends
//! collects in [`Queues::take_sent`]. The transport PDs (TCP, UDP) run an
//! smoltcp `Interface` over it, fed from and draining into their rings.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod component;
pub mod ports;

use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use smoltcp::iface::{Config, Interface};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::time::Instant;
use smoltcp::wire::{HardwareAddress, IpCidr, Ipv4Address};

/// Nanoseconds (the PDs' time) as smoltcp's time.
pub fn instant(ns: u64) -> Instant {
    Instant::from_micros((ns / 1_000) as i64)
}

/// A device with room for `limit` packets in, and an smoltcp interface
/// over it at `addr/prefix_len`, routing through `gateway`.
pub fn interface(
    addr: Ipv4Address,
    prefix_len: u8,
    gateway: Option<Ipv4Address>,
    limit: usize,
    now_ns: u64,
) -> (Interface, Queues) {
    let mut dev = Queues::new(limit);
    let mut iface = Interface::new(Config::new(HardwareAddress::Ip), &mut dev, instant(now_ns));
    iface.update_ip_addrs(|a| {
        let _ = a.push(IpCidr::new(addr.into(), prefix_len));
    });
    if let Some(gw) = gateway {
        let _ = iface.routes_mut().add_default_ipv4_route(gw);
    }
    (iface, dev)
}

/// Largest packet.
pub const MTU: usize = 1500;

/// The device.
pub struct Queues {
    rx: VecDeque<Vec<u8>>,
    tx: Vec<Vec<u8>>,
    limit: usize,
    pushed: u64,
    dropped: u64,
    sent: u64,
}

/// What smoltcp receives.
pub struct Rx(Vec<u8>);
/// Where smoltcp sends.
pub struct Tx<'a>(&'a mut Vec<Vec<u8>>);

impl RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0u8; len];
        let r = f(&mut buf);
        self.0.push(buf);
        r
    }
}

impl Queues {
    /// Queues holding at most `limit` received packets.
    pub fn new(limit: usize) -> Queues {
        Queues {
            rx: VecDeque::new(),
            tx: Vec::new(),
            limit,
            pushed: 0,
            dropped: 0,
            sent: 0,
        }
    }

    /// Queues a packet for smoltcp; false (and counted) if the queue is
    /// full or the packet longer than [`MTU`].
    pub fn push(&mut self, packet: &[u8]) -> bool {
        if self.rx.len() >= self.limit || packet.len() > MTU {
            self.dropped += 1;
            return false;
        }
        self.pushed += 1;
        self.rx.push_back(packet.to_vec());
        true
    }

    /// Packets taken by [`Queues::push`].
    pub fn pushed(&self) -> u64 {
        self.pushed
    }

    /// Packets handed out by [`Queues::send_to`].
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Whether packets wait for smoltcp.
    pub fn has_input(&self) -> bool {
        !self.rx.is_empty()
    }

    /// Packets refused by [`Queues::push`].
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Hands what smoltcp sent since the last call to `out`; whether there
    /// was anything.
    pub fn send_to(&mut self, out: &mut dyn FnMut(&[u8])) -> bool {
        let any = !self.tx.is_empty();
        for p in self.tx.drain(..) {
            self.sent += 1;
            out(&p);
        }
        any
    }
}

impl Device for Queues {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _: Instant) -> Option<(Rx, Tx<'_>)> {
        let p = self.rx.pop_front()?;
        Some((Rx(p), Tx(&mut self.tx)))
    }

    fn transmit(&mut self, _: Instant) -> Option<Tx<'_>> {
        Some(Tx(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = MTU;
        caps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_in_and_collected_out() {
        let mut q = Queues::new(2);
        assert!(q.push(b"one") && q.push(b"two"));
        assert!(!q.push(b"three"));
        assert!(!q.push(&[0; MTU + 1]));
        assert_eq!(q.dropped(), 2);
        let (rx, tx) = q.receive(Instant::ZERO).unwrap();
        assert_eq!(rx.consume(|b| b.to_vec()), b"one");
        tx.consume(3, |b| b.copy_from_slice(b"out"));
        let mut sent = Vec::new();
        assert!(q.send_to(&mut |p| sent.push(p.to_vec())));
        assert_eq!(sent, vec![b"out".to_vec()]);
        assert!(!q.send_to(&mut |_| panic!("nothing more was sent")));
        assert_eq!((q.pushed(), q.sent()), (2, 1));
        assert!(q.has_input());
    }
}
