//! Request heads from the network into the status page.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = axolotl_http::parse_request(data);
});
