//! `axolotl image`: builds a bootable seL4 Microkit image of a system.
//!
//! 1. Lowers system.xml for the board (`build/<board>/<config>/system.xml`).
//! 2. Builds the PD programs in the seL4 workspace (`pds/sel4`), with
//!    nightly Rust, for the board's architecture, their constants
//!    generated from system.xml for that board: the deepest PDs first,
//!    then their parents, up to the root (the warden). After each level,
//!    makes its programs resettable with `sel4-reset-cli` and reads their
//!    reset and fault-injection entry points from their symbols into
//!    `entries.txt`, which the parents' generated constants hold
//!    (`AXOLOTL_ENTRIES`).
//! 3. Runs the Microkit tool: `loader.img` and `report.txt`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Microkit SDK's default place when `MICROKIT_SDK` is not set.
pub const DEFAULT_SDK: &str = "/opt/microkit-sdk-2.3.0";

/// The boards an image can be built for.
pub const BOARDS: &[&str] = &["qemu_virt_aarch64", "x86_64_generic"];

/// What an image build needs, found.
pub struct Toolchain {
    /// The Microkit SDK.
    pub sdk: PathBuf,
    /// `sel4-reset-cli`.
    pub reset_cli: PathBuf,
}

/// The repository: where system.xml and `pds/sel4` are.
pub fn source_root() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// The SDK: `$MICROKIT_SDK`, else [`DEFAULT_SDK`].
pub fn sdk_dir() -> PathBuf {
    std::env::var_os("MICROKIT_SDK")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SDK))
}

fn arch(board: &str) -> Result<&'static str, String> {
    match board {
        "qemu_virt_aarch64" => Ok("aarch64"),
        "x86_64_generic" => Ok("x86_64"),
        _ => Err(format!(
            "unknown board '{board}': axolotl builds images for {}",
            BOARDS.join(", ")
        )),
    }
}

/// `name` found on `PATH`.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Finds everything an image build for `board`/`config` needs, or says
/// exactly what is missing and how to get it.
pub fn toolchain(board: &str, config: &str) -> Result<Toolchain, String> {
    arch(board)?;
    if config != "debug" && config != "release" {
        return Err(format!("unknown config '{config}': debug or release"));
    }
    let sdk = sdk_dir();
    if !sdk.join("bin/microkit").is_file() {
        return Err(format!(
            "no Microkit SDK at {} (bin/microkit is missing).\n  Get Microkit 2.3.0 from its \
             release page (github.com/seL4/microkit/releases) or build it from source \
             (its DEVELOPER.md), then set MICROKIT_SDK to its directory.",
            sdk.display()
        ));
    }
    let board_dir = sdk.join("board").join(board).join(config);
    if !board_dir.join("include").is_dir() {
        let have: Vec<String> = std::fs::read_dir(sdk.join("board"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        return Err(format!(
            "the Microkit SDK at {} has no board {board} in config {config} (it has: {}); \
             build the SDK with that board and config",
            sdk.display(),
            have.join(", ")
        ));
    }
    let nightly = Command::new("rustc")
        .args(["+nightly", "--print", "sysroot"])
        .output();
    let sysroot = match nightly {
        Ok(o) if o.status.success() => PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()),
        _ => {
            return Err(
                "no nightly Rust: install it with `rustup toolchain install nightly \
                        --component rust-src`"
                    .into(),
            )
        }
    };
    if !sysroot.join("lib/rustlib/src/rust/library/core").is_dir() {
        return Err(
            "nightly Rust has no rust-src (the seL4 PDs build the standard library): \
             `rustup component add rust-src --toolchain nightly`"
                .into(),
        );
    }
    let reset_cli = std::env::var_os("SEL4_RESET_CLI")
        .map(PathBuf::from)
        .or_else(|| on_path("sel4-reset-cli"))
        .ok_or(
            "no sel4-reset-cli (it makes PD programs resettable): install it with `cargo \
             install --git https://github.com/seL4/rust-sel4 --tag v5.0.0 sel4-reset-cli`, or \
             set SEL4_RESET_CLI to its path",
        )?;
    Ok(Toolchain { sdk, reset_cli })
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let status = cmd
        .status()
        .map_err(|e| format!("{what}: cannot start {:?}: {e}", cmd.get_program()))?;
    if !status.success() {
        return Err(format!("{what} failed ({status})"));
    }
    Ok(())
}

/// A `cargo +nightly` in the seL4 workspace, clean of the variables an
/// outer `cargo run` or `cargo test` sets for its own toolchain.
fn nightly_cargo(ws: &Path) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.arg("+nightly").current_dir(ws);
    for v in [
        "RUSTUP_TOOLCHAIN",
        "RUSTC",
        "RUSTDOC",
        "RUSTC_WRAPPER",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO",
        "CARGO_MANIFEST_DIR",
    ] {
        cmd.env_remove(v);
    }
    cmd
}

/// rust-sel4's target specification for `arch`, from the rust-sel4 sources
/// cargo fetched for the seL4 workspace.
fn target_spec(ws: &Path, arch: &str) -> Result<PathBuf, String> {
    let out = nightly_cargo(ws)
        .args(["metadata", "--format-version", "1"])
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo metadata in {} failed (can cargo reach rust-sel4's git repository?):\n{}",
            ws.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("cargo metadata: {e}"))?;
    let manifest = meta["packages"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "sel4-microkit"))
        .and_then(|p| p["manifest_path"].as_str())
        .ok_or("cargo metadata does not list sel4-microkit")?;
    let spec = Path::new(manifest)
        .parent()
        .unwrap_or(Path::new("."))
        .join("../../support/targets")
        .join(format!("{arch}-sel4.json"));
    spec.canonicalize()
        .map_err(|e| format!("no target specification at {}: {e}", spec.display()))
}

/// Reads a resettable PD program's entry points from its symbols.
pub fn entries_of(pd: &str, elf: &Path) -> Result<axolotl_codegen::Entries, String> {
    use object::{Object, ObjectSymbol};
    let data = std::fs::read(elf).map_err(|e| format!("{}: {e}", elf.display()))?;
    let file = object::File::parse(&*data).map_err(|e| format!("{}: {e}", elf.display()))?;
    let find = |name: &str| {
        file.symbols()
            .find(|s| s.name() == Ok(name))
            .map(|s| s.address())
            .ok_or_else(|| format!("{}: no symbol {name}", elf.display()))
    };
    Ok(axolotl_codegen::Entries {
        pd: pd.to_string(),
        reset: find("_reset")?,
        inject_null: find("axolotl_inject_null")?,
        inject_panic: find("axolotl_inject_panic")?,
        inject_hang: find("axolotl_inject_hang")?,
        inject_swifi: find("axolotl_inject_swifi")?,
    })
}

/// Where the image of the shipped `system.xml` for `board`/`config` goes.
pub fn out_dir(board: &str, config: &str) -> PathBuf {
    source_root().join("build").join(board).join(config)
}

/// Where the image of `system` goes: [`out_dir`] for a file called
/// `system.xml`, else a directory named after the file too
/// (`build/BOARD/CONFIG-STEM`), so that a second system (a benchmark's)
/// never replaces the shipped one's image or build.
pub fn out_dir_for(system: &Path, board: &str, config: &str) -> PathBuf {
    match variant(system) {
        None => out_dir(board, config),
        Some(stem) => source_root()
            .join("build")
            .join(board)
            .join(format!("{config}-{stem}")),
    }
}

/// The name that sets `system`'s build apart, if it is not `system.xml`.
fn variant(system: &Path) -> Option<String> {
    let stem = system.file_stem()?.to_string_lossy().into_owned();
    (stem != "system").then_some(stem)
}

/// Builds the image of `system` (a path) for `board` in `config`; returns
/// the loader image's path.
pub fn build(system: &Path, board: &str, config: &str) -> Result<PathBuf, String> {
    let arch = arch(board)?;
    let tc = toolchain(board, config)?;
    let system = system
        .canonicalize()
        .map_err(|e| format!("{}: {e}", system.display()))?;
    let text =
        std::fs::read_to_string(&system).map_err(|e| format!("{}: {e}", system.display()))?;
    let name = system.display().to_string();
    let diags = |d: Vec<axolotl_sysdesc::Diagnostic>| {
        d.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let model = axolotl_sysdesc::parse_for(&name, &text, board).map_err(diags)?;
    let lowered = axolotl_sysdesc::to_microkit(&name, &text, board).map_err(diags)?;

    let root = source_root().canonicalize().map_err(|e| e.to_string())?;
    let ws = root.join("pds/sel4");
    let out = out_dir_for(&system, board, config);
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    std::fs::write(out.join("system.xml"), lowered).map_err(|e| e.to_string())?;

    // Built deepest first: a parent's build needs its children's entry
    // points, read from their finished programs (the monitor is both: the
    // warden's child and every other PD's parent).
    let depth = |mut i: usize| {
        let mut d = 0;
        while let Some(p) = model.pds[i].parent {
            i = p;
            d += 1;
        }
        d
    };
    let deepest = (0..model.pds.len()).map(depth).max().unwrap_or(0);
    let levels: Vec<Vec<usize>> = (0..=deepest)
        .rev()
        .map(|d| (0..model.pds.len()).filter(|&i| depth(i) == d).collect())
        .collect();
    let steps = levels.len() + 2;
    eprintln!("[1/{steps}] finding rust-sel4's target specification for {arch}");
    let spec = target_spec(&ws, arch)?;
    let target_dir = ws.join("target").join(match variant(&system) {
        None => format!("{board}-{config}"),
        Some(stem) => format!("{board}-{config}-{stem}"),
    });
    let bin_dir = target_dir.join(format!("{arch}-sel4")).join("release");

    let program = |i: usize| -> Result<String, String> {
        let image = &model.pds[i].program_image;
        image
            .strip_suffix(".elf")
            .map(str::to_string)
            .ok_or_else(|| {
                format!(
                    "{}: program_image '{image}' must end in .elf",
                    model.pds[i].name
                )
            })
    };
    let entries_file = out.join("entries.txt");
    let cargo_build = |pds: &[usize], step: &str| -> Result<(), String> {
        let mut cmd = nightly_cargo(&ws);
        cmd.args(["build", "-Z", "json-target-spec", "--release", "--target"])
            .arg(&spec)
            .env("CARGO_TARGET_DIR", &target_dir)
            .env("AXOLOTL_BOARD", board)
            .env("AXOLOTL_SYSTEM", &system)
            .env("AXOLOTL_ENTRIES", &entries_file)
            .env(
                "SEL4_INCLUDE_DIRS",
                tc.sdk
                    .join("board")
                    .join(board)
                    .join(config)
                    .join("include"),
            );
        let mut names = Vec::new();
        for &i in pds {
            let p = program(i)?;
            cmd.args(["--bin", &p]);
            names.push(p);
        }
        eprintln!(
            "{step} building {} for {board} (cargo +nightly build)",
            names.join(", ")
        );
        run(&mut cmd, "building the seL4 PD programs")
    };
    let reset = |i: usize| -> Result<PathBuf, String> {
        let p = program(i)?;
        let dst = out.join(format!("{p}.elf"));
        run(
            Command::new(&tc.reset_cli)
                .arg(bin_dir.join(format!("{p}.elf")))
                .arg("-o")
                .arg(&dst),
            &format!("sel4-reset-cli on {p}.elf"),
        )?;
        Ok(dst)
    };

    // The entry file must exist (empty) for the leaves' build.
    std::fs::write(&entries_file, "").map_err(|e| e.to_string())?;
    let mut lines = String::new();
    for (k, level) in levels.iter().enumerate() {
        cargo_build(level, &format!("[{}/{steps}]", k + 2))?;
        for &i in level {
            let elf = reset(i)?;
            lines.push_str(&entries_of(&model.pds[i].name, &elf)?.to_line());
            lines.push('\n');
        }
        std::fs::write(&entries_file, &lines).map_err(|e| e.to_string())?;
    }

    eprintln!("[{steps}/{steps}] running the Microkit tool");
    let img = out.join("loader.img");
    run(
        Command::new(tc.sdk.join("bin/microkit"))
            .arg(out.join("system.xml"))
            .arg("--search-path")
            .arg(&out)
            .args(["--board", board, "--config", config, "-o"])
            .arg(&img)
            .arg("-r")
            .arg(out.join("report.txt")),
        "the Microkit tool",
    )?;
    eprintln!("image: {}", img.display());
    Ok(img)
}
