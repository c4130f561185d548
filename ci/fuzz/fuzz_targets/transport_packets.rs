//! IPv4 packets from the filter into the TCP and UDP services.
#![no_main]
use axolotl_tcp::{App, Listen, TcpService};
use axolotl_udp::UdpService;
use libfuzzer_sys::fuzz_target;
use smoltcp::wire::Ipv4Address;

fuzz_target!(|data: &[u8]| {
    let us = Ipv4Address::new(10, 0, 2, 15);
    let listens = [Listen { port: 7, app: App::Echo, sockets: 2, buffer: 4096 }];
    let mut tcp = TcpService::new(us, 24, None, &listens, 0);
    let mut udp = UdpService::new(us, 24, None, &[(7, axolotl_udp::App::Echo)], 0);
    let mut now = 0;
    for chunk in data.split(|&b| b == 0xA5) {
        tcp.input(chunk);
        udp.input(chunk);
        now += 50_000_000;
        tcp.poll(now, &mut |p| assert!(p.len() <= 1500));
        udp.poll(now, &mut |p| assert!(p.len() <= 1500));
    }
});
