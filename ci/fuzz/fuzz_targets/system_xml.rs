//! system.xml text, as a person may write it.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = axolotl_sysdesc::parse("fuzz.xml", text);
        let _ = axolotl_sysdesc::to_microkit("fuzz.xml", text, "qemu_virt_aarch64");
    }
});
