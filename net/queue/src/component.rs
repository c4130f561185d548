//! A transport PD (TCP or UDP): its service between the link from the
//! packet filter and the link back, woken by the timer driver when smoltcp
//! has timers running (retransmissions, delayed ACKs).

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use axolotl_link::{RxLink, SendError, TxLink};
use axolotl_sdk::{ChannelSet, Handler, Instant, Os};
use axolotl_timer::client::Wakeup;

/// Packets moved from the filter per round at most.
const BATCH: usize = 64;
/// Packets held for a full link before more are dropped.
pub const BACKLOG: usize = 512;

/// What a transport service does with packets.
pub trait Transport {
    /// Takes one IPv4 packet from the filter.
    fn input(&mut self, packet: &[u8]);
    /// Runs the protocol and the apps; every packet to send goes to `out`.
    fn poll(&mut self, now_ns: u64, out: &mut dyn FnMut(&[u8]));
    /// When `poll` must run next, if a timer runs.
    fn poll_at(&mut self, now_ns: u64) -> Option<u64>;
    /// After a round: notifies other neighbours (app PDs) as needed, and
    /// says whether work arrived from them meanwhile (then another round
    /// runs).
    fn after(&mut self, os: &mut dyn Os) -> bool {
        let _ = os;
        false
    }
    /// Messages from app PDs refused as malformed, and app requests
    /// dropped (counted on the status page with the PD's own).
    fn app_errors(&self) -> (u64, u64) {
        (0, 0)
    }
    /// Buffers of its links to app PDs out with the apps.
    fn app_buffers_out(&mut self) -> u64 {
        0
    }
}

/// The transport PD's handler.
pub struct TransportPd<T: Transport> {
    service: T,
    from_filter: RxLink,
    to_filter: TxLink,
    wakeup: Wakeup,
    backlog: VecDeque<Vec<u8>>,
    dropped: u64,
    packets_in: u64,
    packets_out: u64,
}

impl<T: Transport> TransportPd<T> {
    /// The PD over its two links.
    pub fn new(
        os: &mut dyn Os,
        service: T,
        from_filter: RxLink,
        to_filter: TxLink,
        wakeup: Wakeup,
    ) -> Self {
        let mut pd = TransportPd {
            service,
            from_filter,
            to_filter,
            wakeup,
            backlog: VecDeque::new(),
            dropped: 0,
            packets_in: 0,
            packets_out: 0,
        };
        pd.run(os);
        pd
    }

    /// Sends what waits in the backlog; whether it is empty now.
    fn flush(&mut self) -> bool {
        while let Some(p) = self.backlog.front() {
            match self.to_filter.send(p, 0) {
                Ok(()) => {
                    self.backlog.pop_front();
                    self.packets_out += 1;
                }
                Err(SendError::Full) => return false,
                Err(_) => {
                    self.backlog.pop_front();
                    self.dropped += 1;
                }
            }
        }
        true
    }

    fn run(&mut self, os: &mut dyn Os) {
        let mut buf = [0u8; 2048];
        loop {
            let mut moved = 0;
            for _ in 0..BATCH {
                match self.from_filter.recv(&mut buf) {
                    Ok(Some((n, _))) => {
                        self.service.input(&buf[..n]);
                        self.packets_in += 1;
                        moved += 1;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        log::warn!("link from the filter: {e:?}");
                        break;
                    }
                }
            }
            let clear = self.flush();
            if clear {
                let now = os.now().as_nanos();
                let (link, backlog, dropped, out) = (
                    &mut self.to_filter,
                    &mut self.backlog,
                    &mut self.dropped,
                    &mut self.packets_out,
                );
                self.service.poll(now, &mut |p| {
                    if !backlog.is_empty() {
                        if backlog.len() < BACKLOG {
                            backlog.push_back(p.to_vec());
                        } else {
                            *dropped += 1;
                        }
                        return;
                    }
                    match link.send(p, 0) {
                        Ok(()) => *out += 1,
                        Err(SendError::Full) => backlog.push_back(p.to_vec()),
                        Err(_) => *dropped += 1,
                    }
                });
            }
            if self.from_filter.must_notify() {
                os.notify(self.from_filter.channel());
            }
            if self.to_filter.must_notify() {
                os.notify(self.to_filter.channel());
            }
            os.keepalive();
            let more = self.service.after(os);
            if moved > 0 || more {
                continue;
            }
            let waiting = !self.backlog.is_empty() && !self.to_filter.request_returns();
            if !waiting && self.from_filter.request_packets() {
                break;
            }
        }
        let now = os.now().as_nanos();
        let at = self.service.poll_at(now).map(Instant);
        self.wakeup.want(os, Instant(now), at);
    }
}

impl<T: Transport> Handler for TransportPd<T> {
    type Error = core::convert::Infallible;

    fn notified(&mut self, os: &mut dyn Os, channels: ChannelSet) -> Result<(), Self::Error> {
        if channels.contains(self.wakeup.channel()) {
            self.wakeup.fired();
        }
        self.run(os);
        Ok(())
    }
}

impl<T: Transport> axolotl_monitor::query::HasCounters for TransportPd<T> {
    fn counters(&mut self) -> axolotl_monitor::query::Counters {
        axolotl_monitor::query::Counters {
            buffers_out: self.to_filter.unreturned() + self.service.app_buffers_out(),
            packets_in: self.packets_in,
            packets_out: self.packets_out,
            dropped: self.dropped + self.service.app_errors().1,
            bad: self.from_filter.bad_descriptors()
                + self.to_filter.bad_returns()
                + self.service.app_errors().0,
            ..Default::default()
        }
    }
}
