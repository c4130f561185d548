//! Frames from the network into the IP PD's logic, and packets from the
//! transports (through the filter) out of it.
#![no_main]
use axolotl_ip::{Config, EthernetAddress, Ip, Ipv4Address, Sink};
use libfuzzer_sys::fuzz_target;

struct Count(usize);
impl Sink for Count {
    fn to_nic(&mut self, f: &[u8]) {
        assert!(f.len() <= axolotl_ip::MAX_FRAME);
        self.0 += 1;
    }
    fn up(&mut self, p: &[u8]) {
        assert!(p.len() <= axolotl_ip::MTU);
        self.0 += 1;
    }
}

fuzz_target!(|data: &[u8]| {
    let mut ip = Ip::new(Config {
        mac: EthernetAddress([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
        addr: Ipv4Address::new(10, 0, 2, 15),
        prefix_len: 24,
        gateway: Some(Ipv4Address::new(10, 0, 2, 2)),
    });
    let mut sink = Count(0);
    // The input is a sequence of frames: a length byte pair, then the frame;
    // odd-numbered ones go down as packets from the transports instead.
    let mut rest = data;
    let mut now = 0u64;
    let mut i = 0;
    while rest.len() >= 2 {
        let n = (usize::from(rest[0]) << 8 | usize::from(rest[1])).min(rest.len() - 2);
        let chunk = &rest[2..2 + n];
        if i % 2 == 0 {
            ip.receive_frame(chunk, now, &mut sink);
        } else {
            ip.send(chunk, now, &mut sink);
        }
        now += 400_000_000;
        ip.poll(now, &mut sink);
        rest = &rest[2 + n..];
        i += 1;
    }
});
