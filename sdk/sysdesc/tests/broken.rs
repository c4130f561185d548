//! Every file in tests/broken/ breaks one rule (many_errors_at_once breaks
//! several) and must produce exactly the lines in its `.expected` file.
//! `AXOLOTL_BLESS=1 cargo test -p axolotl-sysdesc --test broken` rewrites the
//! `.expected` files; review the diff before committing.

use std::path::Path;

#[test]
fn each_broken_file_gives_exactly_its_expected_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/broken");
    let bless = std::env::var_os("AXOLOTL_BLESS").is_some();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    files.sort();
    assert!(files.len() >= 40, "only {} broken files", files.len());
    let mut failures = Vec::new();
    for path in files {
        let name = path.file_name().unwrap().to_str().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let diags = match axolotl_sysdesc::parse(name, &text) {
            Ok(_) => {
                failures.push(format!("{name}: no error at all"));
                continue;
            }
            Err(d) => d,
        };
        let got: String = diags.iter().map(|d| format!("{d}\n")).collect();
        let expected_path = path.with_extension("expected");
        if bless {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        match std::fs::read_to_string(&expected_path) {
            Ok(want) if want == got => {}
            Ok(want) => failures.push(format!("{name}:\n--- expected\n{want}--- got\n{got}")),
            Err(_) => failures.push(format!("{name}: no .expected file")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_good_files_have_no_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/good");
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        if let Err(d) = axolotl_sysdesc::parse("good.xml", &text) {
            panic!("{}: {d:#?}", path.display());
        }
    }
}
