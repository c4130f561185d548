//! The demo's consumer PD on the Linux host: generated wiring plus the
//! portable `axolotl-demo-workers` component.

axolotl_sdk::include_pd!();

fn main() {
    axolotl_host::pd_main(pd::SYSTEM_FINGERPRINT, |init| {
        let ring = pd::ring::JOBS;
        // SAFETY: the runtime mapped the ring's region before init, for the
        // life of the process; this PD is the ring's only consumer.
        let consumer = unsafe {
            axolotl_ring::Consumer::attach(ring.region.ptr(), ring.region.size, ring.slots)
        };
        let consumer = consumer.unwrap_or_else(|e| panic!("ring {}: {e:?}", ring.name));
        axolotl_demo_workers::Consumer::start(init.os(), consumer, ring.channel, pd::STORE)
            .watch_peer(init.os(), pd::MONITOR_NAME, ring.peer)
    })
}
