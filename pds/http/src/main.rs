//! The HTTP status page app PD on the Linux host: generated wiring plus
//! `axolotl-http`.

use axolotl_http::HttpApp;

use axolotl_monitor::query::Reported;

axolotl_sdk::include_pd!();

/// The port the status page listens on.
const PORT: u16 = 80;

fn main() {
    axolotl_host::pd_main(pd::SYSTEM_FINGERPRINT, |init| {
        let Some(monitor) = pd::PARENT else {
            panic!("system.xml must make the status page a child of the monitor");
        };
        // SAFETY: the runtime mapped every region of this PD before init,
        // for the life of the process; each link is attached once.
        let (to, from) = unsafe {
            (
                axolotl_link::sender(&pd::link::HTTP_REQ),
                axolotl_link::receiver(&pd::link::HTTP_EV),
            )
        };
        let handler = HttpApp::new(init.os(), PORT, to, from, monitor);
        // Ring counters go to the monitor, for the status page.
        Reported::new(handler, pd::PARENT)
    })
}
