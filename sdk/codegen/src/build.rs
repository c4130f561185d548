//! The build-script side: find system.xml, check it, write `OUT_DIR/pd.rs`.

use std::path::PathBuf;

/// Generates the constants of the PD whose program image is `image` into
/// `$OUT_DIR/pd.rs`, from `$AXOLOTL_SYSTEM` if set, else from the
/// system.xml at the root of the workspace (two levels above the PD
/// crate). Any error in system.xml fails the build with the checker's
/// `file:line:col: message` lines.
pub fn generate(image: &str) {
    generate_with_default("../../system.xml", image);
}

/// Like [`generate`], for a PD crate that is not two levels below the
/// workspace's system.xml: `$AXOLOTL_SYSTEM` if set, else `default`
/// (relative to the PD crate's directory).
pub fn generate_with_default(default: &str, image: &str) {
    println!("cargo::rerun-if-env-changed=AXOLOTL_SYSTEM");
    match std::env::var_os("AXOLOTL_SYSTEM") {
        Some(p) => generate_from(PathBuf::from(p), image),
        None => generate_from(default, image),
    }
}

/// The board a build is for: `$AXOLOTL_BOARD`, else the Linux host.
pub fn board() -> String {
    println!("cargo::rerun-if-env-changed=AXOLOTL_BOARD");
    std::env::var("AXOLOTL_BOARD").unwrap_or_else(|_| axolotl_sysdesc::HOST_BOARD.to_string())
}

/// Like [`generate`], from the system description at `path` (relative to
/// the PD crate's directory).
pub fn generate_from(path: impl Into<PathBuf>, image: &str) {
    let path: PathBuf = path.into();
    let path = match std::env::var_os("CARGO_MANIFEST_DIR") {
        Some(dir) if path.is_relative() => PathBuf::from(dir).join(path),
        _ => path,
    };
    let path = path.canonicalize().unwrap_or(path);
    println!("cargo::rerun-if-changed={}", path.display());
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let name = path.display().to_string();
    let board = board();
    let system = match axolotl_sysdesc::parse_for(&name, &text, &board) {
        Ok(s) => s,
        Err(diags) => {
            for d in &diags {
                eprintln!("{d}");
            }
            panic!(
                "{} has {} error(s) for board {board}; run `axolotl check {}`",
                name,
                diags.len(),
                name
            );
        }
    };
    let i = crate::pd_for_image(&system, image).unwrap_or_else(|e| panic!("{e}"));
    let out =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo")).join("pd.rs");
    let fingerprint = axolotl_sysdesc::fingerprint(&text);
    let entries = entries();
    std::fs::write(&out, crate::pd_module(&system, i, fingerprint, &entries))
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
}

/// The children's entry points (`$AXOLOTL_ENTRIES`, written by `axolotl
/// image` after it built the children), or none.
fn entries() -> Vec<crate::Entries> {
    println!("cargo::rerun-if-env-changed=AXOLOTL_ENTRIES");
    let Some(path) = std::env::var_os("AXOLOTL_ENTRIES") else {
        return Vec::new();
    };
    let path = PathBuf::from(path);
    println!("cargo::rerun-if-changed={}", path.display());
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    crate::Entries::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
