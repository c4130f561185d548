//! [`VirtioNic`]: a virtio-net device as the NIC driver's [`NicHw`].
//!
//! Every receive buffer is posted to the device at start and posted again
//! as soon as its frame has been copied out; transmit buffers come from a
//! free list and go back to it when the device is done with them. All
//! buffers live in the DMA window, so virtio-drivers shares them in place.
//! What the device reports (tokens, lengths) is checked before use.

use crate::dma::{self, Hal};
use axolotl_nic::NicHw;
use heapless::Vec;
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::Transport;

/// Descriptors per queue (QEMU's virtio-net offers 256; fewer is allowed).
pub const QUEUE: usize = 128;
/// Bytes per packet buffer: the virtio-net header and a whole frame.
pub const BUF: usize = 2048;

type Buf = [u8; BUF];

/// Why a device could not be brought up.
#[derive(Debug)]
pub enum InitError {
    /// virtio-drivers refused the device or its queues.
    Device(virtio_drivers::Error),
    /// The DMA window has no room for the packet buffers.
    DmaFull,
}

/// What the device side counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Stats {
    /// Frames the device gave that did not fit the caller's buffer or
    /// came with a length the buffer cannot hold.
    rx_bad: u64,
    /// Completions naming a descriptor that is not one of ours.
    bad_tokens: u64,
}

/// A virtio-net device over transport `T`.
pub struct VirtioNic<T: Transport> {
    net: VirtIONetRaw<Hal, T, QUEUE>,
    rx_bufs: &'static mut [Buf],
    tx_bufs: &'static mut [Buf],
    /// The receive buffer each head descriptor (token) holds.
    rx_slot: [Option<u16>; QUEUE],
    /// The transmit buffer, and the length given, each token holds.
    tx_slot: [Option<(u16, u16)>; QUEUE],
    tx_free: Vec<u16, QUEUE>,
    stats: Stats,
}

impl<T: Transport> VirtioNic<T> {
    /// Resets and starts the device behind `transport`, with its buffers in
    /// the DMA window (which [`dma::init`] must have set up).
    pub fn new(transport: T) -> Result<Self, InitError> {
        let net = VirtIONetRaw::<Hal, T, QUEUE>::new(transport).map_err(InitError::Device)?;
        let rx_bufs = dma::alloc_buffers::<BUF>(QUEUE).ok_or(InitError::DmaFull)?;
        let tx_bufs = dma::alloc_buffers::<BUF>(QUEUE).ok_or(InitError::DmaFull)?;
        let mut nic = VirtioNic {
            net,
            rx_bufs,
            tx_bufs,
            rx_slot: [None; QUEUE],
            tx_slot: [None; QUEUE],
            tx_free: (0..QUEUE as u16).collect(),
            stats: Stats::default(),
        };
        for slot in 0..QUEUE as u16 {
            nic.post_rx(slot).map_err(InitError::Device)?;
        }
        log::info!(
            "virtio-net up: MAC {:02x?}, {QUEUE} buffers each way",
            nic.net.mac_address()
        );
        Ok(nic)
    }

    /// The device's own Ethernet address.
    pub fn mac(&self) -> [u8; 6] {
        self.net.mac_address()
    }

    fn post_rx(&mut self, slot: u16) -> Result<(), virtio_drivers::Error> {
        let buf = &mut self.rx_bufs[usize::from(slot)];
        // SAFETY: the buffer is ours alone (one slot, one posting) and is
        // not touched again until the device hands its token back.
        let token = unsafe { self.net.receive_begin(buf)? };
        match self.rx_slot.get_mut(usize::from(token)) {
            Some(s) => *s = Some(slot),
            None => self.stats.bad_tokens += 1,
        }
        Ok(())
    }

    /// Takes back every transmit buffer the device is done with.
    fn reclaim_tx(&mut self) {
        while let Some(token) = self.net.poll_transmit() {
            let Some((slot, len)) = self
                .tx_slot
                .get_mut(usize::from(token))
                .and_then(Option::take)
            else {
                // Not a transmission of ours: virtio-drivers cannot pop it,
                // and asking again would find it again.
                self.stats.bad_tokens += 1;
                return;
            };
            let buf = &self.tx_bufs[usize::from(slot)][..usize::from(len)];
            // SAFETY: the same buffer that transmit_begin was given for
            // this token.
            if let Err(e) = unsafe { self.net.transmit_complete(token, buf) } {
                log::warn!("transmit completion: {e:?}");
            }
            // Cannot overflow: each slot is in the list or in flight, once.
            let _ = self.tx_free.push(slot);
        }
    }
}

impl<T: Transport> NicHw for VirtioNic<T> {
    fn receive(&mut self, out: &mut [u8]) -> Option<usize> {
        loop {
            let token = self.net.poll_receive()?;
            let Some(slot) = self
                .rx_slot
                .get_mut(usize::from(token))
                .and_then(Option::take)
            else {
                self.stats.bad_tokens += 1;
                return None;
            };
            let buf = &mut self.rx_bufs[usize::from(slot)];
            // SAFETY: the same buffer that receive_begin was given for this
            // token.
            let got = unsafe { self.net.receive_complete(token, buf) };
            let copied = match got {
                Ok((hdr, len)) => match buf.get(hdr..hdr.saturating_add(len)) {
                    Some(frame) if frame.len() <= out.len() => {
                        out[..frame.len()].copy_from_slice(frame);
                        Some(frame.len())
                    }
                    _ => {
                        self.stats.rx_bad += 1;
                        None
                    }
                },
                Err(e) => {
                    log::warn!("receive completion: {e:?}");
                    self.stats.rx_bad += 1;
                    None
                }
            };
            if let Err(e) = self.post_rx(slot) {
                log::error!("cannot give receive buffer {slot} back to the device: {e:?}");
            }
            if copied.is_some() {
                return copied;
            }
        }
    }

    fn transmit(&mut self, frame: &[u8]) -> bool {
        self.reclaim_tx();
        let Some(slot) = self.tx_free.pop() else {
            return false;
        };
        let buf = &mut self.tx_bufs[usize::from(slot)];
        let Ok(hdr) = self.net.fill_buffer_header(buf) else {
            let _ = self.tx_free.push(slot);
            return false;
        };
        let len = hdr + frame.len();
        let Some(body) = buf.get_mut(hdr..len) else {
            let _ = self.tx_free.push(slot);
            return false;
        };
        body.copy_from_slice(frame);
        // SAFETY: the buffer is ours alone and not touched again until the
        // device hands its token back (reclaim_tx).
        match unsafe { self.net.transmit_begin(&buf[..len]) } {
            Ok(token) => match self.tx_slot.get_mut(usize::from(token)) {
                // `len` fits: at most BUF bytes.
                Some(s) => {
                    *s = Some((slot, len as u16));
                    true
                }
                None => {
                    self.stats.bad_tokens += 1;
                    true
                }
            },
            Err(_) => {
                let _ = self.tx_free.push(slot);
                false
            }
        }
    }

    fn ack(&mut self) {
        self.net.ack_interrupt();
    }

    fn bad(&self) -> u64 {
        self.stats.rx_bad + self.stats.bad_tokens
    }
}
