//! The serial driver: the only PD that touches the UART.
//!
//! It moves bytes between two console streams in shared memory
//! ([`axolotl_ring::bytes`]) and the UART:
//! - `tx`: written by the console's owner (the monitor, which notifies the
//!   driver's `client` channel), sent out on the UART;
//! - `rx`: what arrives on the UART (the driver's interrupt), written for
//!   the client, who is notified.
//!
//! The UART is behind [`Uart`]; each board provides one (PL011, 16550).
//! A restarted driver carries on: the streams live in memory regions.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

use axolotl_ring::bytes::{ByteReader, ByteWriter};
use axolotl_sdk::{Channel, ChannelSet, Handler, Os};

/// A UART.
pub trait Uart {
    /// Sends one byte if the transmitter has room; false if it has not.
    fn try_send(&mut self, byte: u8) -> bool;
    /// A received byte, if one is waiting.
    fn receive(&mut self) -> Option<u8>;
    /// Turns on the receive interrupt.
    fn enable_rx_interrupt(&mut self);
    /// Clears the UART's own receive interrupt, before the driver drains
    /// what arrived: a byte that comes after this raises it again.
    fn clear_rx_interrupt(&mut self) {}
}

/// How many times a full transmitter is polled before the rest of the
/// output waits for the next notification.
const TX_SPIN: u32 = 100_000;

/// The serial driver component.
pub struct SerialDriver<U: Uart> {
    uart: U,
    tx: ByteReader,
    rx: ByteWriter,
    client: Channel,
    irq: Channel,
    /// A byte taken from `tx` that the UART had no room for yet.
    pending: Option<u8>,
    /// Received bytes dropped because the client did not read `rx`.
    overrun: u64,
}

impl<U: Uart> SerialDriver<U> {
    /// Starts the driver and sends whatever output is already waiting.
    pub fn init(
        mut uart: U,
        tx: ByteReader,
        rx: ByteWriter,
        client: Channel,
        irq: Channel,
    ) -> Self {
        uart.enable_rx_interrupt();
        let mut d = SerialDriver {
            uart,
            tx,
            rx,
            client,
            irq,
            pending: None,
            overrun: 0,
        };
        d.send();
        d
    }

    /// Received bytes dropped so far because `rx` was full.
    pub fn overrun(&self) -> u64 {
        self.overrun
    }

    fn send(&mut self) {
        let mut spins = 0;
        loop {
            let byte = match self.pending.take() {
                Some(b) => b,
                None => {
                    let mut b = [0u8; 1];
                    if self.tx.read(&mut b) == 0 {
                        return;
                    }
                    b[0]
                }
            };
            while !self.uart.try_send(byte) {
                spins += 1;
                if spins >= TX_SPIN {
                    self.pending = Some(byte);
                    return;
                }
            }
        }
    }

    fn receive(&mut self, os: &mut dyn Os) {
        let mut got = false;
        while let Some(b) = self.uart.receive() {
            if self.rx.write(&[b]) == 1 {
                got = true;
            } else {
                self.overrun += 1;
            }
        }
        if got {
            os.notify(self.client);
        }
    }
}

impl<U: Uart> Handler for SerialDriver<U> {
    type Error = core::convert::Infallible;

    fn notified(&mut self, os: &mut dyn Os, channels: ChannelSet) -> Result<(), Self::Error> {
        if channels.contains(self.irq) {
            self.uart.clear_rx_interrupt();
            self.receive(os);
            os.irq_ack(self.irq);
            // A byte that came while the interrupt was held for the
            // acknowledgement may have raised no new interrupt (an edge
            // lost, or a level already cleared): look once more.
            self.receive(os);
        }
        // Output on every wake-up: a notification of the client, or an
        // interrupt while output was waiting for room.
        self.send();
        Ok(())
    }
}

#[cfg(test)]
mod tests;
