//! The IP PD: [`Ip`] between the NIC driver's links and the packet
//! filter's, woken by the timer driver for ARP retries and expiry.

use crate::neighbours::NeighbourBook;
use crate::{Ip, Sink};
use axolotl_link::{RxLink, TxLink};
use axolotl_sdk::{ChannelSet, Handler, Instant, Os};
use axolotl_timer::client::Wakeup;

/// Packets moved per link per round at most.
const BATCH: usize = 64;

/// The links of the IP PD.
pub struct IpLinks {
    /// Frames from the NIC driver.
    pub from_nic: RxLink,
    /// Frames to the NIC driver.
    pub to_nic: TxLink,
    /// Packets up to the filter.
    pub up: TxLink,
    /// Packets down from the filter.
    pub down: RxLink,
}

/// Counts of packets dropped because a neighbour's link was full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkDrops {
    /// Frames for the NIC driver.
    pub to_nic: u64,
    /// Packets for the filter.
    pub up: u64,
}

/// The IP PD's handler.
pub struct IpPd {
    ip: Ip,
    links: IpLinks,
    wakeup: Wakeup,
    drops: LinkDrops,
    /// Where the ARP cache is kept, if anywhere.
    book: Option<NeighbourBook>,
}

struct LinkSink<'a> {
    to_nic: &'a mut TxLink,
    up: &'a mut TxLink,
    drops: &'a mut LinkDrops,
}

impl Sink for LinkSink<'_> {
    fn to_nic(&mut self, frame: &[u8]) {
        if self.to_nic.send(frame, 0).is_err() {
            self.drops.to_nic += 1;
        }
    }
    fn up(&mut self, packet: &[u8]) {
        if self.up.send(packet, 0).is_err() {
            self.drops.up += 1;
        }
    }
}

impl IpPd {
    /// The IP PD over `links`, woken through `wakeup`, keeping its ARP
    /// cache in `book` if there is one (`ip` has learnt from it already:
    /// [`NeighbourBook::open`]).
    pub fn new(
        os: &mut dyn Os,
        ip: Ip,
        links: IpLinks,
        wakeup: Wakeup,
        book: Option<NeighbourBook>,
    ) -> IpPd {
        let mut pd = IpPd {
            ip,
            links,
            wakeup,
            drops: LinkDrops::default(),
            book,
        };
        pd.run(os);
        pd
    }

    fn run(&mut self, os: &mut dyn Os) {
        let mut buf = [0u8; crate::MAX_FRAME + 4];
        loop {
            let now = os.now().as_nanos();
            let mut moved = 0;
            let l = &mut self.links;
            let mut sink = LinkSink {
                to_nic: &mut l.to_nic,
                up: &mut l.up,
                drops: &mut self.drops,
            };
            for _ in 0..BATCH {
                match l.from_nic.recv(&mut buf) {
                    Ok(Some((n, _))) => {
                        self.ip.receive_frame(&buf[..n], now, &mut sink);
                        moved += 1;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        if l.from_nic.ring_errors().is_power_of_two() {
                            log::warn!(
                                "link from the NIC: {e} ({} so far)",
                                l.from_nic.ring_errors()
                            );
                        }
                        break;
                    }
                }
            }
            for _ in 0..BATCH {
                match l.down.recv(&mut buf) {
                    Ok(Some((n, _))) => {
                        self.ip.send(&buf[..n], now, &mut sink);
                        moved += 1;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        if l.down.ring_errors().is_power_of_two() {
                            log::warn!(
                                "link from the filter: {e} ({} so far)",
                                l.down.ring_errors()
                            );
                        }
                        break;
                    }
                }
            }
            self.ip.poll(now, &mut sink);
            for (must, ch) in [
                (l.from_nic.must_notify(), l.from_nic.channel()),
                (l.down.must_notify(), l.down.channel()),
                (l.to_nic.must_notify(), l.to_nic.channel()),
                (l.up.must_notify(), l.up.channel()),
            ] {
                if must {
                    os.notify(ch);
                }
            }
            os.keepalive();
            if moved == 0 && l.from_nic.request_packets() && l.down.request_packets() {
                break;
            }
        }
        if let Some(book) = &mut self.book {
            if let Err(e) = book.keep(os, &self.ip) {
                log::warn!("cannot keep the neighbours in the store: {e:?}");
            }
        }
        let now = os.now();
        let at = self.ip.poll_at().map(Instant);
        self.wakeup.want(os, now, at);
    }
}

impl Handler for IpPd {
    type Error = core::convert::Infallible;

    fn notified(&mut self, os: &mut dyn Os, channels: ChannelSet) -> Result<(), Self::Error> {
        if channels.contains(self.wakeup.channel()) {
            self.wakeup.fired();
        }
        self.run(os);
        Ok(())
    }
}

impl axolotl_monitor::query::HasCounters for IpPd {
    fn counters(&mut self) -> axolotl_monitor::query::Counters {
        let s = self.ip.stats();
        axolotl_monitor::query::Counters {
            packets_in: s.frames_in,
            packets_out: s.frames_out,
            dropped: self.drops.to_nic + self.drops.up + s.arp_dropped + s.fragments,
            bad: s.malformed
                + s.refused
                + self.links.from_nic.bad_descriptors()
                + self.links.down.bad_descriptors()
                + self.links.to_nic.bad_returns()
                + self.links.up.bad_returns(),
            buffers_out: self.links.to_nic.unreturned() + self.links.up.unreturned(),
            ..Default::default()
        }
    }
}
