//! The demo's producer PD on seL4: generated wiring plus the portable
//! `axolotl-demo-workers` component, the same one the Linux host runs.
#![no_std]
#![no_main]

axolotl_sdk::include_pd!();

/// How often the producer makes jobs, and how many each time.
const PERIOD_NS: u64 = 50_000_000;
const JOBS_PER_TICK: u32 = 4;

#[sel4_microkit::protection_domain(stack_size = 0x10000, heap_size = 0x10000)]
fn init() -> impl sel4_microkit::Handler {
    axolotl_sel4::adapt(axolotl_sel4::config!(), |os| {
        let ring = pd::ring::JOBS;
        // SAFETY: Microkit maps the ring's region before init, for the life
        // of the PD; this PD is the ring's only producer.
        let producer = unsafe {
            axolotl_ring::Producer::attach(ring.region.ptr(), ring.region.size, ring.slots)
        };
        let producer = producer.unwrap_or_else(|e| panic!("ring {}: {e:?}", ring.name));
        let (Some(store), Some(timer)) = (pd::STORE, pd::TIMER) else {
            panic!("system.xml must give the producer channels to the store and the timer");
        };
        match axolotl_demo_workers::Producer::init(
            os,
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
