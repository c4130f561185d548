//! Replies to the status page's question, as a (hostile) monitor could
//! send them.
#![no_main]
use axolotl_sdk::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let words: Vec<u64> = data
        .chunks(8)
        .map(|c| {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            u64::from_le_bytes(w)
        })
        .take(axolotl_sdk::MAX_MESSAGE_WORDS)
        .collect();
    let label = words.first().copied().unwrap_or(0) & 1;
    let label = if label == 1 { axolotl_monitor::query::STATUS } else { words.first().copied().unwrap_or(0) };
    if let Ok(m) = Message::with_words(label, words.get(1..).unwrap_or(&[])) {
        if let Some(st) = axolotl_monitor::query::decode_status(&m) {
            let _ = axolotl_http::html(&[st]);
            let _ = axolotl_http::json(&[st]);
        }
    }
});
