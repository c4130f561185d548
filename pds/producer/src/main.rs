//! The demo's producer PD on the Linux host: generated wiring plus the
//! portable `axolotl-demo-workers` component.

axolotl_sdk::include_pd!();

/// How often the producer makes jobs, and how many each time.
const PERIOD_NS: u64 = 50_000_000;
const JOBS_PER_TICK: u32 = 4;

fn main() {
    axolotl_host::pd_main(pd::SYSTEM_FINGERPRINT, |init| {
        let ring = pd::ring::JOBS;
        // SAFETY: the runtime mapped the ring's region before init, for the
        // life of the process; this PD is the ring's only producer.
        let producer = unsafe {
            axolotl_ring::Producer::attach(ring.region.ptr(), ring.region.size, ring.slots)
        };
        let producer = producer.unwrap_or_else(|e| panic!("ring {}: {e:?}", ring.name));
        let (Some(store), Some(timer)) = (pd::STORE, pd::TIMER) else {
            panic!("system.xml must give the producer channels to the store and the timer");
        };
        match axolotl_demo_workers::Producer::init(
            init.os(),
            producer,
            ring.channel,
            store,
            timer,
            PERIOD_NS,
            JOBS_PER_TICK,
        ) {
            Ok(p) => p,
            Err(e) => panic!("cannot start: {e}"),
        }
    })
}
