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
        };
        c.drain(os)?;
        Ok(c)
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
        if channels.contains(self.ring_channel) {
            self.drain(os)?;
        }
        Ok(())
    }
}
