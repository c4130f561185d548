//! The packet filter PD: a T-junction between IP and the transports. Every
//! packet from IP is checked inbound and goes to TCP or UDP by protocol;
//! every packet from a transport is checked outbound and goes to IP.

use crate::kept::FlowBook;
use crate::{Action, Direction, Filter, Net, Policy, Proto, Rule};
use axolotl_link::{RxLink, TxLink};
use axolotl_sdk::config::FilterRule;
use axolotl_sdk::{Channel, ChannelSet, Handler, Os};
use smoltcp::wire::{IpProtocol, Ipv4Address};

/// Packets moved per link per round at most.
const BATCH: usize = 64;
/// How long after a start a filter without a state store resyncs open TCP
/// connections (see [`Filter::resync_until`]); one with a store takes its
/// flows back from there instead, with no such window.
pub const RESYNC_NS: u64 = 5_000_000_000;

/// The policy that system.xml's rules describe.
pub fn policy(rules: &[FilterRule], default_pass: bool) -> Policy {
    let mut p = Policy {
        rules: heapless::Vec::new(),
        default: if default_pass {
            Action::Pass
        } else {
            Action::Drop
        },
    };
    for r in rules {
        let rule = Rule {
            action: if r.pass { Action::Pass } else { Action::Drop },
            direction: r
                .inbound
                .map(|i| if i { Direction::In } else { Direction::Out }),
            proto: match r.proto {
                6 => Proto::Tcp,
                17 => Proto::Udp,
                1 => Proto::Icmp,
                _ => Proto::Any,
            },
            remote: r.remote.map(|(a, n)| Net {
                addr: Ipv4Address::from(a),
                prefix_len: n,
            }),
            local_ports: r.ports,
        };
        if p.rules.push(rule).is_err() {
            log::warn!(
                "more than {} filter rules: the rest are ignored",
                crate::MAX_RULES
            );
            break;
        }
    }
    p
}

/// The filter PD's links.
pub struct FilterLinks {
    /// Inbound packets from IP.
    pub from_ip: RxLink,
    /// Outbound packets to IP.
    pub to_ip: TxLink,
    /// Inbound TCP.
    pub to_tcp: TxLink,
    /// Outbound TCP.
    pub from_tcp: RxLink,
    /// Inbound UDP.
    pub to_udp: TxLink,
    /// Outbound UDP.
    pub from_udp: RxLink,
}

/// Packets the filter passed but could not deliver (a full link), or that
/// no transport takes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Undelivered {
    /// The next PD's link was full.
    pub link_full: u64,
    /// Inbound packets of protocols without a transport PD.
    pub no_transport: u64,
}

/// The filter PD's handler.
pub struct FilterPd {
    filter: Filter,
    links: FilterLinks,
    undelivered: Undelivered,
    /// Where the flow table is kept, if anywhere.
    book: Option<FlowBook>,
}

impl FilterPd {
    /// The filter PD. With the state store on `store`, it takes back the
    /// flows kept there and keeps each new one there before its first
    /// packet passes on; without, it resyncs open connections for
    /// [`RESYNC_NS`].
    pub fn new(
        os: &mut dyn Os,
        mut filter: Filter,
        links: FilterLinks,
        store: Option<Channel>,
    ) -> FilterPd {
        let now = os.now().as_nanos();
        let book = match store {
            Some(store) => {
                let (book, n) = FlowBook::open(os, store, &mut filter, now);
                log::info!("flows taken back from the store: {n}");
                Some(book)
            }
            None => {
                filter.resync_until(now.saturating_add(RESYNC_NS));
                None
            }
        };
        let mut pd = FilterPd {
            filter,
            links,
            undelivered: Undelivered::default(),
            book,
        };
        pd.run(os);
        pd
    }

    fn run(&mut self, os: &mut dyn Os) {
        let mut buf = [0u8; 2048];
        loop {
            let now = os.now().as_nanos();
            let mut moved = 0;
            let l = &mut self.links;
            // Inbound.
            for _ in 0..BATCH {
                let n = match l.from_ip.recv(&mut buf) {
                    Ok(Some((n, _))) => n,
                    Ok(None) => break,
                    Err(e) => {
                        if l.from_ip.ring_errors().is_power_of_two() {
                            log::warn!("link from IP: {e} ({} so far)", l.from_ip.ring_errors());
                        }
                        break;
                    }
                };
                moved += 1;
                let p = &buf[..n];
                if self.filter.check(Direction::In, p, now) == Action::Drop {
                    continue;
                }
                // A new flow is kept before its first packet passes on.
                if self.filter.has_added() {
                    keep(&mut self.book, &mut self.filter, os);
                }
                // check() passed it, so it is a whole IPv4 header: the
                // protocol is its byte 9 (no second parse on the path).
                let proto = p.get(9).copied().map(IpProtocol::from);
                let to = match proto {
                    Some(IpProtocol::Tcp) => &mut l.to_tcp,
                    Some(IpProtocol::Udp) => &mut l.to_udp,
                    _ => {
                        self.undelivered.no_transport += 1;
                        continue;
                    }
                };
                if to.send(p, 0).is_err() {
                    self.undelivered.link_full += 1;
                }
            }
            // Outbound.
            for from in [&mut l.from_tcp, &mut l.from_udp] {
                for _ in 0..BATCH {
                    let n = match from.recv(&mut buf) {
                        Ok(Some((n, _))) => n,
                        Ok(None) => break,
                        Err(e) => {
                            if from.ring_errors().is_power_of_two() {
                                log::warn!(
                                    "link from a transport: {e} ({} so far)",
                                    from.ring_errors()
                                );
                            }
                            break;
                        }
                    };
                    moved += 1;
                    if self.filter.check(Direction::Out, &buf[..n], now) == Action::Drop {
                        continue;
                    }
                    if self.filter.has_added() {
                        keep(&mut self.book, &mut self.filter, os);
                    }
                    if l.to_ip.send(&buf[..n], 0).is_err() {
                        self.undelivered.link_full += 1;
                    }
                }
            }
            // Flows forgotten this round.
            keep(&mut self.book, &mut self.filter, os);
            for (must, ch) in [
                (l.from_ip.must_notify(), l.from_ip.channel()),
                (l.from_tcp.must_notify(), l.from_tcp.channel()),
                (l.from_udp.must_notify(), l.from_udp.channel()),
                (l.to_ip.must_notify(), l.to_ip.channel()),
                (l.to_tcp.must_notify(), l.to_tcp.channel()),
                (l.to_udp.must_notify(), l.to_udp.channel()),
            ] {
                if must {
                    os.notify(ch);
                }
            }
            os.keepalive();
            if moved == 0
                && l.from_ip.request_packets()
                && l.from_tcp.request_packets()
                && l.from_udp.request_packets()
            {
                return;
            }
        }
    }
}

/// Keeps what `filter` added and forgot in `book`, if there is one.
fn keep(book: &mut Option<FlowBook>, filter: &mut Filter, os: &mut dyn Os) {
    if let Some(book) = book {
        book.keep(os, filter);
    }
}

impl Handler for FilterPd {
    type Error = core::convert::Infallible;

    fn notified(&mut self, os: &mut dyn Os, _channels: ChannelSet) -> Result<(), Self::Error> {
        self.run(os);
        Ok(())
    }
}

impl axolotl_monitor::query::HasCounters for FilterPd {
    fn counters(&mut self) -> axolotl_monitor::query::Counters {
        let s = self.filter.stats();
        let buffers_out = self.links.to_ip.unreturned()
            + self.links.to_tcp.unreturned()
            + self.links.to_udp.unreturned();
        let l = &self.links;
        axolotl_monitor::query::Counters {
            packets_in: s.passed_established
                + s.passed_new
                + s.dropped_policy
                + s.dropped_stray
                + s.dropped_full
                + s.dropped_malformed,
            packets_out: s.passed_established + s.passed_new,
            dropped: s.dropped_policy
                + s.dropped_stray
                + s.dropped_full
                + self.undelivered.link_full
                + self.undelivered.no_transport,
            bad: s.dropped_malformed
                + l.from_ip.bad_descriptors()
                + l.from_tcp.bad_descriptors()
                + l.from_udp.bad_descriptors()
                + l.to_ip.bad_returns()
                + l.to_tcp.bad_returns()
                + l.to_udp.bad_returns(),
            buffers_out,
            ..Default::default()
        }
    }
}
