//! The demo's producer PD on seL4: generated wiring plus the portable
//! `axolotl-demo-workers` component, the same one the Linux host runs.
#![no_std]
#![no_main]

axolotl_sdk::include_pd!();

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
        axolotl_demo_workers::Producer::start(os, producer, ring.channel, pd::STORE, pd::TIMER)
    })
}
