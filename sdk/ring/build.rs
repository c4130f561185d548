//! Declares `cfg(loom)` (set with `RUSTFLAGS="--cfg loom"` for the model
//! checking in tests/loom.rs) so that `unexpected_cfgs` accepts it while the
//! crate keeps `[lints] workspace = true`.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(loom)");
    println!("cargo::rerun-if-changed=build.rs");
}
