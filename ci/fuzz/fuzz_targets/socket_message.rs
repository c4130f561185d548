//! Messages from a neighbouring PD on the socket interface.
#![no_main]
use axolotl_socket::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let meta = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
    if let Ok(m) = decode(meta, &data[4..]) {
        let mut buf = vec![0u8; data.len() + 16];
        let (meta2, n) = encode(&m, &mut buf).expect("a decoded message encodes");
        assert_eq!(decode(meta2, &buf[..n]), Ok(m));
    }
});
