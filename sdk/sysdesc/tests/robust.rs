//! Nothing a file can contain makes the parser panic.

use proptest::prelude::*;

const GOOD: &str = include_str!("good/minimal.xml");

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = axolotl_sysdesc::parse("fuzz.xml", &text);
        let _ = axolotl_sysdesc::to_microkit("fuzz.xml", &text, "qemu_virt_aarch64");
    }

    #[test]
    fn mutations_of_a_good_file_never_panic(
        cuts in proptest::collection::vec((0usize..GOOD.len(), 0usize..40, 0usize..GOOD.len()), 1..6)
    ) {
        let mut text = GOOD.to_string();
        for (at, len, dup) in cuts {
            let at = at.min(text.len());
            let end = (at + len).min(text.len());
            if text.is_char_boundary(at) && text.is_char_boundary(end) {
                let piece = text[at..end].to_string();
                text.replace_range(at..end, "");
                let dup = dup.min(text.len());
                if text.is_char_boundary(dup) {
                    text.insert_str(dup, &piece);
                    text.insert_str(dup, &piece);
                }
            }
        }
        match axolotl_sysdesc::parse("m.xml", &text) {
            Ok(_) => prop_assert!(axolotl_sysdesc::to_microkit("m.xml", &text, axolotl_sysdesc::HOST_BOARD).is_ok()),
            Err(diags) => {
                prop_assert!(!diags.is_empty());
                for d in diags {
                    prop_assert!(d.line >= 1 && d.col >= 1, "{}", d);
                }
            }
        }
    }
}
