use crate::{with_retry, WorkerError};
use axolotl_sdk::{Channel, ChannelSet, Handler, Os};

const KEY_PROGRESS: &[u8] = b"progress";

/// What the consumer has counted; saved in the store as 16 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Jobs counted.
    pub count: u64,
    /// The number of the next job expected.
    pub next_seq: u64,
}

impl Progress {
    fn to_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.count.to_le_bytes());
        b[8..].copy_from_slice(&self.next_seq.to_le_bytes());
        b
    }

    fn from_bytes(b: &[u8]) -> Option<Progress> {
        let b: &[u8; 16] = b.try_into().ok()?;
        let (c, n) = b.split_at(8);
        Some(Progress {
            count: u64::from_le_bytes(c.try_into().ok()?),
            next_seq: u64::from_le_bytes(n.try_into().ok()?),
        })
    }
}

/// Counts the jobs from the ring.
pub struct Consumer {
    ring: axolotl_ring::Consumer,
    ring_channel: Channel,
    store: Channel,
    progress: Progress,
    duplicates: u64,
    gaps: u64,
    implausible: u64,
    /// The producer's incarnation, watched in the store: the monitor's
    /// namespace and the producer's name there, and the last value seen.
    watched: Option<Watched>,
}

/// A neighbour's incarnation the consumer watches.
struct Watched {
    monitor: &'static str,
    peer: &'static str,
    incarnation: Option<u64>,
    restarts_seen: u64,
}

impl Consumer {
    /// The demo's consumer as a PD program starts it, from its generated
    /// wiring: panics (so that the monitor sees the fault) when system.xml
    /// gives it no store, or when the store cannot be read.
    pub fn start(
        os: &mut dyn Os,
        ring: axolotl_ring::Consumer,
        ring_channel: Channel,
        store: Option<Channel>,
    ) -> Consumer {
        let Some(store) = store else {
            panic!("system.xml must give the consumer a channel to the store");
        };
        Consumer::init(os, ring, ring_channel, store)
            .unwrap_or_else(|e| panic!("cannot start: {e}"))
    }

    /// Reloads the progress from the store and takes whatever jobs queued up
    /// while this PD was down.
    pub fn init(
        os: &mut dyn Os,
        ring: axolotl_ring::Consumer,
        ring_channel: Channel,
        store: Channel,
    ) -> Result<Consumer, WorkerError> {
        let mut buf = [0u8; 16];
        let stored = with_retry(os, |os| {
            axolotl_store_api::get(os, store, KEY_PROGRESS, &mut buf)
        })?;
        let progress = match stored {
            Some(16) => Progress::from_bytes(&buf).unwrap_or_default(),
            Some(n) => {
                log::warn!("stored progress has {n} bytes, not 16: starting from zero");
                Progress::default()
            }
            None => Progress::default(),
        };
        log::info!(
            "consumer resumed at count {} (next job {}) from the store",
            progress.count,
            progress.next_seq
        );
        let mut c = Consumer {
            ring,
            ring_channel,
            store,
            progress,
            duplicates: 0,
            gaps: 0,
            implausible: 0,
            watched: None,
        };
        c.drain(os)?;
        Ok(c)
    }

    /// Watches the incarnation of `peer` (the producer) that the monitor
    /// publishes in the store under its namespace `monitor` (system.xml
    /// grants the consumer `read="MONITOR"`), and logs each restart of it
    /// the store reports. Without the grant, or with no monitor, it says
    /// so and carries on without.
    pub fn watch_peer(
        mut self,
        os: &mut dyn Os,
        monitor: &'static str,
        peer: &'static str,
    ) -> Self {
        if monitor.is_empty() {
            return self;
        }
        let store = self.store;
        match with_retry(os, |os| {
            axolotl_store_api::buffered::watch(os, store, monitor, peer.as_bytes())
        }) {
            Ok(()) => {
                let mut w = Watched {
                    monitor,
                    peer,
                    incarnation: None,
                    restarts_seen: 0,
                };
                w.incarnation = read_incarnation(os, store, &w);
                match w.incarnation {
                    Some(n) => log::info!("watching {peer}'s incarnation (now {n})"),
                    None => log::info!("watching {peer}'s incarnation (none published yet)"),
                }
                self.watched = Some(w);
            }
            Err(e) => {
                log::warn!("cannot watch {peer}'s incarnation in {monitor}'s namespace: {e:?}")
            }
        }
        self
    }

    /// Restarts of the watched peer the store reported.
    pub fn peer_restarts_seen(&self) -> u64 {
        self.watched.as_ref().map_or(0, |w| w.restarts_seen)
    }

    /// Takes the changes the store reports of watched keys.
    fn on_store_notification(&mut self, os: &mut dyn Os) {
        let store = self.store;
        let Some(w) = &mut self.watched else { return };
        let mut ns = [0u8; axolotl_store_api::buffered::MAX_NAMESPACE_LEN];
        let mut key = [0u8; axolotl_store_api::MAX_KEY_LEN];
        // Bounded: a store that keeps answering is not believed for ever.
        for _ in 0..16 {
            match axolotl_store_api::buffered::changed(os, store, &mut ns, &mut key) {
                Ok(Some((n, k))) => {
                    if &ns[..n] != w.monitor.as_bytes() || &key[..k] != w.peer.as_bytes() {
                        continue;
                    }
                    let now = read_incarnation(os, store, w);
                    if now.is_some() && now != w.incarnation {
                        w.restarts_seen += 1;
                        log::info!(
                            "{} restarted: it is at incarnation {} (the store says so)",
                            w.peer,
                            now.unwrap_or(0)
                        );
                        w.incarnation = now;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    log::warn!("cannot ask the store what changed: {e:?}");
                    return;
                }
            }
        }
    }

    /// The progress so far.
    pub fn progress(&self) -> Progress {
        self.progress
    }

    /// Jobs seen twice (re-sent by a restarted producer) and skipped.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Jobs that never arrived.
    pub fn gaps(&self) -> u64 {
        self.gaps
    }

    /// Job numbers too far ahead to be true, dropped (see `drain`).
    pub fn implausible(&self) -> u64 {
        self.implausible
    }

    /// Counts every job in the ring, saves the progress, then releases the
    /// jobs; repeats until the ring stays empty with a signal requested.
    fn drain(&mut self, os: &mut dyn Os) -> Result<(), WorkerError> {
        if self.ring.peer_restarted() {
            // Nothing to redo: the ring's indices live in shared memory, and
            // numbers the new producer sends again are skipped below.
            log::info!("the producer (re)attached to the ring; carrying on");
        }
        loop {
            let mut taken = 0u32;
            let mut progress = self.progress;
            while let Some(desc) = self.ring.peek(taken).map_err(|_| WorkerError::Ring)? {
                taken += 1;
                let seq = desc.offset;
                if seq < progress.next_seq {
                    self.duplicates += 1;
                    continue;
                }
                // The producer numbers jobs one by one and keeps its next
                // number in the store: it can lose at most what the ring
                // held. A number further ahead is garbage from a producer
                // gone wrong; taking it would end counting for good.
                if seq - progress.next_seq > u64::from(self.ring.slots()) {
                    self.implausible += 1;
                    if self.implausible.is_power_of_two() {
                        log::warn!(
                            "job {seq} is implausible after {}: dropped ({} so far)",
                            progress.next_seq,
                            self.implausible
                        );
                    }
                    continue;
                }
                if seq > progress.next_seq {
                    self.gaps += seq - progress.next_seq;
                    log::warn!("jobs {}..{} never arrived", progress.next_seq, seq);
                }
                progress.count += 1;
                progress.next_seq = seq + 1;
            }
            if taken > 0 {
                if progress != self.progress {
                    let bytes = progress.to_bytes();
                    with_retry(os, |os| {
                        axolotl_store_api::put(os, self.store, KEY_PROGRESS, &bytes)
                    })?;
                    log::debug!("persisted count={}", progress.count);
                    if progress.count / 100 != self.progress.count / 100 {
                        log::info!("counted {} jobs", progress.count);
                    }
                    self.progress = progress;
                }
                self.ring.release(taken).map_err(|_| WorkerError::Ring)?;
                continue;
            }
            if self.ring.request_signal() {
                return Ok(());
            }
        }
    }
}

impl Handler for Consumer {
    type Error = WorkerError;

    fn notified(&mut self, os: &mut dyn Os, channels: ChannelSet) -> Result<(), WorkerError> {
        if channels.contains(self.store) {
            self.on_store_notification(os);
        }
        if channels.contains(self.ring_channel) {
            self.drain(os)?;
        }
        Ok(())
    }
}

/// The watched peer's incarnation as the store has it.
fn read_incarnation(os: &mut dyn Os, store: Channel, w: &Watched) -> Option<u64> {
    let mut buf = [0u8; 8];
    let got =
        axolotl_store_api::buffered::get_from(os, store, w.monitor, w.peer.as_bytes(), &mut buf);
    match got {
        Ok(Some(8)) => Some(u64::from_le_bytes(buf)),
        _ => None,
    }
}
