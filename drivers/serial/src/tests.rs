use super::*;
use axolotl_sdk::mock::{Event, MockOs};
use std::collections::VecDeque;

const CLIENT: Channel = Channel::new(2);
const IRQ: Channel = Channel::new(1);

#[derive(Default)]
struct FakeUart {
    sent: Vec<u8>,
    incoming: VecDeque<u8>,
    /// Bytes the transmitter takes before it is full.
    room: usize,
    rx_irq: bool,
    cleared: u32,
}

impl Uart for &mut FakeUart {
    fn try_send(&mut self, byte: u8) -> bool {
        if self.room == 0 {
            return false;
        }
        self.room -= 1;
        self.sent.push(byte);
        true
    }
    fn receive(&mut self) -> Option<u8> {
        self.incoming.pop_front()
    }
    fn enable_rx_interrupt(&mut self) {
        self.rx_irq = true;
    }
    fn clear_rx_interrupt(&mut self) {
        self.cleared += 1;
    }
}

/// A stream region: (writer, reader) over leaked memory.
#[allow(unsafe_code)]
fn stream(size: usize) -> (ByteWriter, ByteReader) {
    let mem: &'static mut [u32] = Vec::leak(vec![0u32; size / 4]);
    let base = mem.as_mut_ptr() as *mut u8;
    // SAFETY: never freed; one writer and one reader.
    unsafe {
        (
            ByteWriter::attach(base, size).unwrap(),
            ByteReader::attach(base, size).unwrap(),
        )
    }
}

#[test]
fn output_waiting_at_start_and_later_goes_out_in_order() {
    let mut uart = FakeUart {
        room: usize::MAX,
        ..FakeUart::default()
    };
    let (mut tx_w, tx_r) = stream(256);
    let (rx_w, _rx_r) = stream(256);
    tx_w.write(b"before start\n");
    let mut os = MockOs::new();
    let mut d = SerialDriver::init(&mut uart, tx_r, rx_w, CLIENT, IRQ);
    tx_w.write(b"later\n");
    d.notified(&mut os, ChannelSet::single(CLIENT)).unwrap();
    assert!(d.uart.rx_irq);
    assert_eq!(d.uart.sent, b"before start\nlater\n");
}

#[test]
fn a_full_transmitter_keeps_the_byte_for_later() {
    let mut uart = FakeUart::default();
    let (mut tx_w, tx_r) = stream(256);
    let (rx_w, _rx_r) = stream(256);
    tx_w.write(b"abc");
    let mut os = MockOs::new();
    let mut d = SerialDriver::init(&mut uart, tx_r, rx_w, CLIENT, IRQ);
    d.uart.room = 2;
    d.notified(&mut os, ChannelSet::single(CLIENT)).unwrap();
    assert_eq!(d.uart.sent, b"ab");
    d.uart.room = 10;
    d.notified(&mut os, ChannelSet::single(IRQ)).unwrap();
    assert_eq!(d.uart.sent, b"abc");
}

#[test]
fn input_reaches_the_client_and_overruns_are_counted() {
    let mut uart = FakeUart {
        room: usize::MAX,
        ..FakeUart::default()
    };
    let (tx_w, tx_r) = stream(256);
    let (rx_w, mut rx_r) = stream(64 + 8);
    let _ = tx_w;
    let mut os = MockOs::new();
    let mut d = SerialDriver::init(&mut uart, tx_r, rx_w, CLIENT, IRQ);
    d.uart.incoming.extend(b"status\nmore");
    d.notified(&mut os, ChannelSet::single(IRQ)).unwrap();
    assert_eq!(os.take(), vec![Event::Notify(CLIENT), Event::IrqAck(IRQ)]);
    let mut buf = [0u8; 16];
    let n = rx_r.read(&mut buf);
    assert_eq!(&buf[..n], b"status\nm");
    assert_eq!(d.overrun(), 3);
    // Nothing received: the interrupt is acknowledged, the client left alone.
    d.notified(&mut os, ChannelSet::single(IRQ)).unwrap();
    assert_eq!(os.take(), vec![Event::IrqAck(IRQ)]);
}

/// A UART that receives one more byte while the driver acknowledges.
struct LateUart {
    inner: FakeUart,
    late: Option<u8>,
}

impl Uart for LateUart {
    fn try_send(&mut self, byte: u8) -> bool {
        (&mut self.inner).try_send(byte)
    }
    fn receive(&mut self) -> Option<u8> {
        let b = (&mut self.inner).receive();
        if b.is_none() {
            // Arrives just after the FIFO looked empty.
            if let Some(l) = self.late.take() {
                self.inner.incoming.push_back(l);
            }
        }
        b
    }
    fn enable_rx_interrupt(&mut self) {}
}

#[test]
fn a_byte_arriving_during_the_acknowledgement_is_not_stranded() {
    let (tx_w, tx_r) = stream(256);
    let (rx_w, mut rx_r) = stream(256);
    let _ = tx_w;
    let mut os = MockOs::new();
    let uart = LateUart {
        inner: FakeUart::default(),
        late: Some(b'\n'),
    };
    let mut d = SerialDriver::init(uart, tx_r, rx_w, CLIENT, IRQ);
    d.uart.inner.incoming.extend(b"status");
    d.notified(&mut os, ChannelSet::single(IRQ)).unwrap();
    let mut buf = [0u8; 16];
    let n = rx_r.read(&mut buf);
    assert_eq!(&buf[..n], b"status\n");
}
