//! `axolotl`: the command-line tool of the Axolotl component system.

mod bench;
mod campaign;
mod image;
mod net;
mod qemu;
mod soak;
mod store_bench;

use axolotl_host::status;
use clap::{Parser, Subcommand};
use net::NetArgs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Axolotl: a self-healing component system on seL4 Microkit.
///
/// Every driver and service is a protection domain (PD) wired in one
/// system.xml. When a PD crashes or hangs, the monitor restarts it with fresh
/// memory and it reloads its state from the state store, while the rest keeps
/// running. `axolotl run` runs a system on Linux, one process per PD.
#[derive(Parser)]
#[command(name = "axolotl", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a system description against Microkit's and Axolotl's rules.
    ///
    /// Checks the system for the Linux host and for every board that an
    /// `axolotl:board` attribute names. Prints every error as
    /// FILE:LINE:COL: message and exits non-zero if there is any.
    Check {
        /// The system description.
        #[arg(default_value = "system.xml")]
        file: PathBuf,
    },
    /// Print the plain Microkit description (Axolotl extensions removed) that
    /// the Microkit tool accepts.
    Lower {
        /// The system description.
        #[arg(default_value = "system.xml")]
        file: PathBuf,
        /// The Microkit board: elements whose axolotl:board list does not
        /// name it are left out.
        #[arg(long, default_value = "qemu_virt_aarch64")]
        board: String,
        /// Write here instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Run a system on Linux: every PD its own process, until Ctrl-C.
    ///
    /// When started through `cargo run`, the PD programs are built first.
    /// Otherwise they are looked up next to this program (program_image
    /// "x.elf" runs the program "x").
    Run {
        /// The system description.
        #[arg(default_value = "system.xml")]
        file: PathBuf,
        /// Control socket for `axolotl status` and `axolotl inject`.
        #[arg(long, env = "AXOLOTL_CONTROL")]
        control: Option<PathBuf>,
        /// Where the PD programs are (default: next to this program).
        #[arg(long)]
        pd_dir: Option<PathBuf>,
        /// Do not build the PD programs, even under `cargo run`.
        #[arg(long)]
        no_build: bool,
        /// Start every restart afresh (fork, exec, linking) instead of
        /// handing over to a spare process of the PD's program, started
        /// and waiting, owning nothing (the default: a faster recovery).
        #[arg(long)]
        no_spares: bool,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Build a bootable seL4 Microkit image of a system for a board.
    ///
    /// Writes build/BOARD/CONFIG/loader.img and the Microkit report beside
    /// it. Needs a Microkit 2.3 SDK (MICROKIT_SDK, default
    /// /opt/microkit-sdk-2.3.0), nightly Rust with rust-src, and
    /// sel4-reset-cli (SEL4_RESET_CLI or on PATH); says what is missing
    /// and how to get it.
    Image {
        #[command(flatten)]
        target: ImageArgs,
    },
    /// Build the image if needed and boot it under QEMU, with the serial
    /// console on this terminal.
    ///
    /// `axolotl status` and `axolotl inject` work against it as against
    /// `axolotl run`, through the console. Lines typed here go to the
    /// console too (try `status`). The NIC is a virtio-net device on QEMU's
    /// user networking, with the same host forwards as `axolotl run`.
    Qemu {
        #[command(flatten)]
        target: ImageArgs,
        #[command(flatten)]
        net: NetArgs,
        /// Control socket for `axolotl status` and `axolotl inject`.
        #[arg(long, env = "AXOLOTL_CONTROL")]
        control: Option<PathBuf>,
        /// Stop QEMU after this many seconds.
        #[arg(long)]
        timeout: Option<u64>,
        /// Boot the image already built, without building.
        #[arg(long)]
        no_build: bool,
    },
    /// Show every PD of a running system: state, pid, restarts, last fault,
    /// last recovery time.
    Status {
        /// Print a JSON array of objects (name, state, restarts, ...).
        #[arg(long)]
        json: bool,
        /// Control socket of the running system.
        #[arg(long, env = "AXOLOTL_CONTROL")]
        control: Option<PathBuf>,
    },
    /// Run a system for a while under continuous byte-checked traffic and
    /// periodic faults, and report what moved and what went wrong.
    ///
    /// Starts the system itself (`axolotl run`, or `axolotl qemu` with
    /// --board) on free host ports, drives TCP echo (a new connection per
    /// transfer), UDP echo and the status page, injects a fault into a
    /// random PD every --fault-every, and prints the traffic moved, wrong
    /// bytes, refused connections, restarts per PD and every process's
    /// memory at the start and the end. Progress every 30 s. Exits
    /// non-zero on any wrong byte, refused or broken connection, a restart
    /// nobody caused, or memory that grew.
    ///
    /// For the record: `axolotl soak --duration 1h`; on QEMU:
    /// `axolotl soak --board qemu_virt_aarch64 --duration 10m`.
    Soak(soak::SoakArgs),
    /// Inject many faults into a running system and judge each by what
    /// its clients saw.
    ///
    /// Against `axolotl run` or `axolotl qemu` (--control), with
    /// byte-checked traffic through the system's forwarded ports (TCP echo
    /// on a new connection per transfer, UDP echo, the status page; see
    /// --echo-port), injects --faults faults of random kinds into random
    /// PDs, one every --interval ms, and prints per PD: injected, recovered
    /// with no client noticing, recovered with an error a client saw (a
    /// reset connection), fail-silent (wrong data back after a corrupt:
    /// the corrupted PD checksummed it afresh), and system failures (a
    /// wrong byte after any other fault, a PD not serving again within
    /// --bound ms, no echo back for longer than that, or any PD restarted
    /// after a garbage). Exits non-zero on any system failure. The same seed gives
    /// the same campaign (--dry-run prints it).
    ///
    /// Example: `axolotl run &` then `axolotl campaign --faults 1000 --interval 200`.
    Campaign(campaign::CampaignArgs),
    /// Measure recovery: each PD's time from fault to serving again
    /// (median, p99), and TCP echo throughput while a PD is killed every
    /// 1 s and every 4 s, as a ratio to the throughput with no fault, all
    /// in one run.
    ///
    /// Starts the system itself (`--board linux`, or a QEMU board). About
    /// four minutes with the defaults. Example: `axolotl bench-recovery`,
    /// or `axolotl bench-recovery --board qemu_virt_aarch64 --samples 10`.
    BenchRecovery(bench::BenchArgs),
    /// Measure the state store: put and get latency (median, p99) and the
    /// commit rate, each against a baseline measured in the same run.
    ///
    /// On a QEMU board it boots storage/store-bench/store-bench.xml (the
    /// store and a client that times puts, gets and PINGs of the same
    /// words by protected call: the baseline is the call alone); on linux
    /// it runs the store's request path against an fsync-free file append
    /// (`cargo bench -p axolotl-store --bench store`, from the source tree).
    /// Example: `axolotl bench-store --board qemu_virt_aarch64`.
    BenchStore(store_bench::StoreBenchArgs),
    /// Inject a fault into a PD of a running system (a debug facility).
    ///
    /// KIND is one of: panic, segv (a null-pointer write), abort, hang (stops
    /// answering; the monitor's heartbeat catches it), stall (the PD stops
    /// for --ms milliseconds and then runs on: a slow PD, not a dead one; a
    /// stall longer than its heartbeat limit is a hang, and it is
    /// restarted), garbage (the PD writes random descriptors and random
    /// bytes into every ring and link it produces, then carries on: its
    /// neighbours must count, drop and carry on), corrupt (flips --bits
    /// random bits of the PD's own writable memory: data, bss, heap,
    /// stacks; it may crash, hang, misbehave or carry on). On seL4 there is
    /// no abort, corrupt flips at most 64 bits, and only in .bss (heap,
    /// stacks, zeroed statics).
    Inject {
        /// The PD's name in system.xml.
        pd: String,
        /// panic, segv, abort, hang, stall, garbage or corrupt.
        #[arg(value_parser = ["panic", "segv", "abort", "hang", "stall", "garbage", "corrupt"])]
        kind: String,
        /// How long a stall lasts, in milliseconds (1 to 60000).
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=60_000))]
        ms: u64,
        /// How many bits a corrupt fault flips (1 to 4096; 64 on seL4).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
        bits: u32,
        /// Control socket of the running system.
        #[arg(long, env = "AXOLOTL_CONTROL")]
        control: Option<PathBuf>,
    },
}

/// Which system, for which board, in which kernel configuration.
#[derive(clap::Args)]
struct ImageArgs {
    /// The system description.
    #[arg(default_value = "system.xml")]
    file: PathBuf,
    /// qemu_virt_aarch64 or x86_64_generic.
    #[arg(long, default_value = "qemu_virt_aarch64")]
    board: String,
    /// debug (the kernel prints too) or release (it prints nothing).
    #[arg(long, default_value = "debug")]
    config: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { file } => check(&file),
        Command::Lower {
            file,
            board,
            output,
        } => lower(&file, &board, output.as_deref()),
        Command::Run {
            file,
            control,
            pd_dir,
            no_build,
            no_spares,
            net,
        } => run(&file, control, pd_dir, no_build, !no_spares, &net),
        Command::Image { target } => read_system(&target.file)
            .and_then(|(name, _)| image::build(Path::new(&name), &target.board, &target.config))
            .map(|_| ()),
        Command::Qemu {
            target,
            net,
            control,
            timeout,
            no_build,
        } => boot(&target, &net, control, timeout, no_build),
        Command::Status { json, control } => show_status(json, &control_path(control)),
        Command::Soak(args) => soak::run(&args),
        Command::Campaign(args) => campaign::run(&args, &control_path(args.control.clone())),
        Command::BenchRecovery(args) => bench::run(&args),
        Command::BenchStore(args) => store_bench::run(&args),
        Command::Inject {
            pd,
            kind,
            ms,
            bits,
            control,
        } => {
            let line = match kind.as_str() {
                "stall" => format!("inject {pd} stall {ms}"),
                "corrupt" => format!("inject {pd} corrupt {bits}"),
                _ => format!("inject {pd} {kind}"),
            };
            status::request(&control_path(control), &line).map(|answer| print!("{answer}"))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// The default control socket: `$XDG_RUNTIME_DIR/axolotl/control.sock`, or
/// `/tmp/axolotl-UID/control.sock`.
fn control_path(given: Option<PathBuf>) -> PathBuf {
    if let Some(p) = given {
        return p;
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR") {
        return PathBuf::from(dir).join("axolotl/control.sock");
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    PathBuf::from(format!("/tmp/axolotl-{uid}/control.sock"))
}

/// Reads system.xml, looking next to the workspace when run by cargo from
/// elsewhere.
fn read_system(file: &Path) -> Result<(String, String), String> {
    let mut path = file.to_path_buf();
    if !path.exists() && path.is_relative() {
        if let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR") {
            let candidate = PathBuf::from(dir).join("../..").join(file);
            if candidate.exists() {
                path = candidate;
            }
        }
    }
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((path.display().to_string(), text))
}

/// A system description's errors, one per line, and their count (for the
/// board, if one).
fn errors(name: &str, diags: &[axolotl_sysdesc::Diagnostic], board: Option<&str>) -> String {
    let mut s: Vec<String> = diags.iter().map(ToString::to_string).collect();
    let board = board.map(|b| format!(" for {b}")).unwrap_or_default();
    s.push(format!("{name}: {} error(s){board}", diags.len()));
    s.join("\n")
}

/// The system, its fingerprint and the path it was read from.
fn parse_with_fingerprint(file: &Path) -> Result<(axolotl_sysdesc::System, u64, PathBuf), String> {
    let (name, text) = read_system(file)?;
    let system = axolotl_sysdesc::parse(&name, &text).map_err(|d| errors(&name, &d, None))?;
    Ok((
        system,
        axolotl_sysdesc::fingerprint(&text),
        PathBuf::from(name),
    ))
}

fn check(file: &Path) -> Result<(), String> {
    let (name, text) = read_system(file)?;
    let mut boards = vec![axolotl_sysdesc::HOST_BOARD.to_string()];
    for b in axolotl_sysdesc::boards_named(&text) {
        if !boards.contains(&b) {
            boards.push(b);
        }
    }
    let mut failed = Vec::new();
    for board in &boards {
        match axolotl_sysdesc::parse_for(&name, &text, board) {
            Ok(system) => println!(
                "{name}: ok for {board}: {} PDs, {} channels, {} memory regions, {} rings",
                system.pds.len(),
                system.channels.len(),
                system.regions.len(),
                system.rings.len()
            ),
            Err(diags) => {
                for d in &diags {
                    let line = d.to_string();
                    // The same mistake usually shows on every board: once.
                    if !failed.contains(&line) {
                        eprintln!("{line}");
                        failed.push(line);
                    }
                }
                eprintln!("{name}: {} error(s) for {board}", diags.len());
            }
        }
    }
    match failed.is_empty() {
        true => Ok(()),
        false => Err(format!("{name}: not ok")),
    }
}

fn lower(file: &Path, board: &str, output: Option<&Path>) -> Result<(), String> {
    let (name, text) = read_system(file)?;
    let xml = axolotl_sysdesc::to_microkit(&name, &text, board).map_err(|diags| {
        diags
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    match output {
        Some(out) => std::fs::write(out, xml).map_err(|e| format!("{}: {e}", out.display())),
        None => {
            print!("{xml}");
            Ok(())
        }
    }
}

/// Under `cargo run`, builds every PD program with the same profile first,
/// with its constants generated from `system`.
fn build_pds(exe_dir: &Path, system: &Path) -> Result<(), String> {
    let (Some(cargo), Some(manifest)) = (
        std::env::var_os("CARGO"),
        std::env::var_os("CARGO_MANIFEST_DIR"),
    ) else {
        return Ok(());
    };
    let root = PathBuf::from(manifest).join("../..");
    let mut cmd = std::process::Command::new(cargo);
    let system = system
        .canonicalize()
        .map_err(|e| format!("{}: {e}", system.display()))?;
    cmd.current_dir(&root)
        .args(["build", "--workspace", "--bins"]);
    // PD builds read the workspace's system.xml unless told otherwise; say so
    // only for another file, so that the usual case does not rebuild.
    if root.join("system.xml").canonicalize().ok().as_deref() != Some(system.as_path()) {
        cmd.env("AXOLOTL_SYSTEM", &system);
    }
    if exe_dir.ends_with("release") {
        cmd.arg("--release");
    }
    eprintln!("building the PD programs (cargo build --workspace --bins)...");
    let status = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("building the PD programs failed".into());
    }
    Ok(())
}

fn run(
    file: &Path,
    control: Option<PathBuf>,
    pd_dir: Option<PathBuf>,
    no_build: bool,
    spares: bool,
    net: &NetArgs,
) -> Result<(), String> {
    let (system, fingerprint, path) = parse_with_fingerprint(file)?;
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    if !no_build && pd_dir.is_none() {
        build_pds(&exe_dir, &path)?;
    }
    axolotl_host::logger::init("axolotl", axolotl_host::sys::monotonic_ns());
    let control = control_path(control);
    let services = net::start(&system, net, &control)?;
    let opts = axolotl_host::supervisor::Options {
        control,
        pd_dir: pd_dir.unwrap_or(exe_dir),
        fingerprint,
        services,
        spares,
    };
    axolotl_host::supervisor::run(&system, &opts)
}

fn boot(
    target: &ImageArgs,
    net: &NetArgs,
    control: Option<PathBuf>,
    timeout: Option<u64>,
    no_build: bool,
) -> Result<(), String> {
    let (file, board, config) = (&target.file, target.board.as_str(), target.config.as_str());
    let (name, text) = read_system(file)?;
    let system = axolotl_sysdesc::parse_for(&name, &text, board)
        .map_err(|d| errors(&name, &d, Some(board)))?;
    let extra = net::qemu_args(&system, board, net)?;
    let img = if no_build {
        let img = image::out_dir_for(Path::new(&name), board, config).join("loader.img");
        if !img.is_file() {
            return Err(format!(
                "no image at {}: build it with `axolotl image --board {board} --config {config}`",
                img.display()
            ));
        }
        img
    } else {
        image::build(Path::new(&name), board, config)?
    };
    qemu::run(
        board,
        config,
        &img,
        &extra,
        &control_path(control),
        timeout.map(std::time::Duration::from_secs),
    )
}

fn show_status(json: bool, control: &Path) -> Result<(), String> {
    let pds = status::query(control)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&pds).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", status::table(&pds));
    }
    Ok(())
}
