//! The demo's producer PD on the Linux host: generated wiring plus the
//! portable `axolotl-demo-workers` component.

axolotl_sdk::include_pd!();

fn main() {
    axolotl_host::pd_main(pd::SYSTEM_FINGERPRINT, |init| {
        let ring = pd::ring::JOBS;
        // SAFETY: the runtime mapped the ring's region before init, for the
        // life of the process; this PD is the ring's only producer.
        let producer = unsafe {
            axolotl_ring::Producer::attach(ring.region.ptr(), ring.region.size, ring.slots)
        };
        let producer = producer.unwrap_or_else(|e| panic!("ring {}: {e:?}", ring.name));
        axolotl_demo_workers::Producer::start(
            init.os(),
            producer,
            ring.channel,
            pd::STORE,
            pd::TIMER,
        )
    })
}
