//! The NIC driver: the only PD that touches the network device.
//!
//! Frames the device received go to the IP PD on the `rx` link; frames the
//! IP PD sent arrive on the `tx` link and go out on the device. The device
//! is behind [`NicHw`]; each platform provides one (on the Linux host a
//! datagram socket to the host gateway or a TAP device; virtio-net on the
//! seL4 boards). A driver holds no state worth keeping: a restarted one
//! attaches the links again and carries on.
//!
//! When the IP PD does not take frames (the `rx` link is full), frames stay
//! in the device, which drops what does not fit, as real hardware does.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

use axolotl_link::{RxLink, SendError, TxLink};
use axolotl_sdk::{Channel, ChannelSet, Handler, Os};

/// Largest frame handled (Ethernet header and 1500 bytes of payload, with
/// room for a VLAN tag).
pub const MAX_FRAME: usize = 1518;

/// Frames moved per notification at most each way, so that one busy
/// direction does not starve the other.
const BATCH: usize = 64;

/// A network device.
pub trait NicHw {
    /// A received frame copied into `buf`: its length; `None` when nothing
    /// is waiting. Frames longer than `buf` are dropped by the device.
    fn receive(&mut self, buf: &mut [u8]) -> Option<usize>;
    /// Sends one frame; false if the device had no room (the frame is
    /// dropped, as a full transmit queue does).
    fn transmit(&mut self, frame: &[u8]) -> bool;
    /// Acknowledges the device's interrupt after draining it.
    fn ack(&mut self) {}
    /// What the device reported that made no sense (bad lengths, unknown
    /// descriptors), counted on the status page with the driver's own.
    fn bad(&self) -> u64 {
        0
    }
    /// Times the device went away and came back (on the host: the
    /// gateway restarted), shown on the status page.
    fn resets(&self) -> u64 {
        0
    }
}

/// What the driver counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames received from the device and passed to IP.
    pub rx_frames: u64,
    /// Frames from IP sent on the device.
    pub tx_frames: u64,
    /// Frames from IP the device refused.
    pub tx_dropped: u64,
    /// Frames from the device too short to be Ethernet.
    pub rx_runts: u64,
    /// Packets from IP too short to be Ethernet, never given to the
    /// device (an empty one makes QEMU's virtio-net stop for good: "nothing
    /// to send", the device then needs a reset).
    pub tx_runts: u64,
}

/// Bytes of an Ethernet header: no frame is shorter.
pub const ETH_HEADER: usize = 14;

/// Whether a packet from IP may go to the device: at least an Ethernet
/// header (a neighbour gone wrong may hand over anything).
pub fn sendable(frame: &[u8]) -> bool {
    frame.len() >= ETH_HEADER
}

/// The NIC driver component.
pub struct NicDriver<H: NicHw> {
    hw: H,
    /// Received frames, to IP.
    rx: TxLink,
    /// Frames to send, from IP.
    tx: RxLink,
    irq: Channel,
    /// A frame taken from the device that the rx link had no room for.
    held: Option<([u8; MAX_FRAME], usize)>,
    stats: Stats,
}

impl<H: NicHw> NicDriver<H> {
    /// Starts the driver over `hw`, whose interrupt arrives on `irq`.
    pub fn new(os: &mut dyn Os, hw: H, rx: TxLink, tx: RxLink, irq: Channel) -> Self {
        let mut d = NicDriver {
            hw,
            rx,
            tx,
            irq,
            held: None,
            stats: Stats::default(),
        };
        d.pump(os);
        d
    }

    /// Moves frames both ways until neither can move.
    pub fn pump(&mut self, os: &mut dyn Os) {
        let mut buf = [0u8; MAX_FRAME];
        loop {
            let mut moved = 0;
            // Out: IP to the device.
            for _ in 0..BATCH {
                match self.tx.recv(&mut buf) {
                    Ok(Some((n, _))) if !sendable(&buf[..n]) => {
                        self.stats.tx_runts += 1;
                        moved += 1;
                    }
                    Ok(Some((n, _))) => {
                        if self.hw.transmit(&buf[..n]) {
                            self.stats.tx_frames += 1;
                        } else {
                            self.stats.tx_dropped += 1;
                        }
                        moved += 1;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        if self.tx.ring_errors().is_power_of_two() {
                            log::warn!("tx link: {e} ({} so far)", self.tx.ring_errors());
                        }
                        break;
                    }
                }
            }
            if self.tx.must_notify() {
                os.notify(self.tx.channel());
            }
            // In: the device to IP.
            for _ in 0..BATCH {
                let (frame, n) = match self.held.take() {
                    Some(h) => h,
                    None => {
                        let mut f = [0u8; MAX_FRAME];
                        match self.hw.receive(&mut f) {
                            Some(n) => (f, n.min(MAX_FRAME)),
                            None => break,
                        }
                    }
                };
                if n < ETH_HEADER {
                    self.stats.rx_runts += 1;
                    continue;
                }
                match self.rx.send(&frame[..n], 0) {
                    Ok(()) => {
                        self.stats.rx_frames += 1;
                        moved += 1;
                    }
                    Err(SendError::Full) => {
                        self.held = Some((frame, n));
                        break;
                    }
                    Err(e) => {
                        log::warn!("rx link: {e:?}");
                        break;
                    }
                }
            }
            if self.rx.must_notify() {
                os.notify(self.rx.channel());
            }
            os.keepalive();
            if moved > 0 {
                continue;
            }
            // Nothing moved: ask to hear of more from IP, and of returned
            // buffers if a frame waits for one; go on if either came.
            let more_out = !self.tx.request_packets();
            let room_back = self.held.is_some() && !self.rx.request_returns();
            if !more_out && !room_back {
                return;
            }
        }
    }
}

impl<H: NicHw> Handler for NicDriver<H> {
    type Error = core::convert::Infallible;

    fn notified(&mut self, os: &mut dyn Os, channels: ChannelSet) -> Result<(), Self::Error> {
        self.pump(os);
        if channels.contains(self.irq) {
            self.hw.ack();
            os.irq_ack(self.irq);
            // A frame that came between the drain and the acknowledgement.
            self.pump(os);
        }
        Ok(())
    }
}

impl<H: NicHw> axolotl_monitor::query::HasCounters for NicDriver<H> {
    fn counters(&mut self) -> axolotl_monitor::query::Counters {
        axolotl_monitor::query::Counters {
            packets_in: self.stats.rx_frames,
            packets_out: self.stats.tx_frames,
            dropped: self.stats.tx_dropped,
            bad: self.stats.rx_runts
                + self.stats.tx_runts
                + self.hw.bad()
                + self.tx.bad_descriptors()
                + self.rx.bad_returns(),
            device_resets: self.hw.resets(),
            buffers_out: self.rx.unreturned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packet_shorter_than_an_ethernet_header_is_never_sent() {
        assert!(!sendable(&[]));
        assert!(!sendable(&[0; ETH_HEADER - 1]));
        assert!(sendable(&[0; ETH_HEADER]));
        assert!(sendable(&[0; MAX_FRAME]));
    }
}
