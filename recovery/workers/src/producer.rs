use crate::{load, with_retry, WorkerError};
use axolotl_ring::Desc;
use axolotl_sdk::{Channel, ChannelSet, Handler, Os};

const KEY_NEXT: &[u8] = b"next_seq";

/// Numbers jobs into the ring on every timer tick.
pub struct Producer {
    ring: axolotl_ring::Producer,
    ring_channel: Channel,
    store: Channel,
    timer: Channel,
    period_ns: u64,
    per_tick: u32,
    next_seq: u64,
}

impl Producer {
    /// The demo's producer as a PD program starts it, from its generated
    /// wiring: panics (so that the monitor sees the fault) when system.xml
    /// gives it no store or timer, or when the store cannot be read.
    pub fn start(
        os: &mut dyn Os,
        ring: axolotl_ring::Producer,
        ring_channel: Channel,
        store: Option<Channel>,
        timer: Option<Channel>,
    ) -> Producer {
        let (Some(store), Some(timer)) = (store, timer) else {
            panic!("system.xml must give the producer channels to the store and the timer");
        };
        let p = Producer::init(
            os,
            ring,
            ring_channel,
            store,
            timer,
            crate::DEMO_PERIOD_NS,
            crate::DEMO_JOBS_PER_TICK,
        );
        p.unwrap_or_else(|e| panic!("cannot start: {e}"))
    }

    /// Reloads the next job number from the store, and asks the timer for
    /// the first tick.
    pub fn init(
        os: &mut dyn Os,
        ring: axolotl_ring::Producer,
        ring_channel: Channel,
        store: Channel,
        timer: Channel,
        period_ns: u64,
        per_tick: u32,
    ) -> Result<Producer, WorkerError> {
        let next_seq = load(os, store, KEY_NEXT)?;
        log::info!("producer resumed at job {next_seq} from the store");
        let p = Producer {
            ring,
            ring_channel,
            store,
            timer,
            period_ns,
            per_tick,
            next_seq,
        };
        p.arm(os);
        Ok(p)
    }

    /// The next job number.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    fn arm(&self, os: &mut dyn Os) {
        if let Err(e) = axolotl_timer::client::set_timeout(os, self.timer, self.period_ns) {
            // The timer restarted during the call; it notifies every client
            // when it is back, and that notification re-arms.
            log::warn!("timer: {e}");
        }
    }

    fn produce(&mut self, os: &mut dyn Os) -> Result<(), WorkerError> {
        if self.ring.peer_restarted() {
            // The consumer re-attached: it asks for a signal again once it has
            // drained, so the next enqueue notifies it; nothing else to do.
            log::info!("the consumer (re)attached to the ring; carrying on");
        }
        let mut made = 0;
        for _ in 0..self.per_tick {
            let desc = Desc {
                offset: self.next_seq,
                len: 0,
                meta: 0,
            };
            match self.ring.enqueue(desc) {
                Ok(()) => {
                    self.next_seq += 1;
                    made += 1;
                }
                Err(axolotl_ring::EnqueueError::Full) => break,
                Err(_) => return Err(WorkerError::Ring),
            }
        }
        if made > 0 {
            // Saved after enqueueing: a crash in between re-sends numbers the
            // consumer already has, which it skips; no number is ever lost.
            let next = self.next_seq;
            with_retry(os, |os| {
                axolotl_store_api::put_u64(os, self.store, KEY_NEXT, next)
            })?;
            if self.ring.must_notify() {
                os.notify(self.ring_channel);
            }
        }
        Ok(())
    }
}

impl Handler for Producer {
    type Error = WorkerError;

    fn notified(&mut self, os: &mut dyn Os, channels: ChannelSet) -> Result<(), WorkerError> {
        if channels.contains(self.timer) {
            let r = self.produce(os);
            self.arm(os);
            r?;
        }
        Ok(())
    }
}
