//! `axolotl bench-recovery`: how fast each PD comes back, and how much TCP
//! throughput survives a PD killed again and again, measured in one run.
//!
//! 1. Recovery: a null-pointer write into each PD in turn, `--samples`
//!    times each; the time from the fault to the PD serving again as the
//!    system itself measures it (`last_recovery_us` of `axolotl status`:
//!    on the host, from the supervisor reaping the process to the new
//!    one's `init` returning; on seL4, from the monitor taking the fault to
//!    the PD's "up"). Faults into one PD are at least 1.2 s apart, past the
//!    monitor's crash-loop damping, which would otherwise add its back-off.
//! 2. Throughput: one TCP echo stream (every byte checked) for `--phase`
//!    with no fault, then the same while a PD is killed (segv) every 1 s
//!    and every 4 s, for each of `--kill`; each as a ratio to the no-fault
//!    phases measured around it (MINIX 3 reported 0.75 and 0.92 of its
//!    throughput with its Ethernet driver killed every 1 s and 4 s).

use crate::soak::{free_ports, wait_serving, System};
use serde_json::{json, Value};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `axolotl bench-recovery`'s options.
#[derive(clap::Args, Clone, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub system: crate::soak::SystemArgs,
    /// Recovery samples per PD.
    #[arg(long, default_value_t = 20)]
    pub samples: usize,
    /// The PDs whose recovery is measured (default: every PD that has a
    /// parent to restart it, but the host's own services).
    #[arg(long, value_delimiter = ',')]
    pub pds: Vec<String>,
    /// The PDs killed during the throughput phases.
    #[arg(long, value_delimiter = ',', default_value = "nic,ip,filter,udp")]
    pub kill: Vec<String>,
    /// How long each throughput phase lasts: 10s, 1m.
    #[arg(long, default_value = "12s", value_parser = crate::soak::parse_duration)]
    pub phase: Duration,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The value at fraction `q` of sorted `v` (nearest rank).
fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let k = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[k - 1]
}

fn row<'a>(status: &'a [Value], pd: &str) -> Option<&'a Value> {
    status.iter().find(|p| p["name"] == pd)
}

/// One TCP echo stream: bytes that came back right, reconnecting when a
/// fault resets it; a wrong byte is remembered.
struct Stream {
    bytes: AtomicU64,
    wrong: AtomicU64,
    resets: AtomicU64,
    stop: AtomicBool,
}

fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(0x9e37_79b9) >> 13) as u8
}

fn stream(port: u16, s: &Stream) {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    while !s.stop.load(Relaxed) {
        let Ok(conn) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = conn.set_write_timeout(Some(Duration::from_secs(5)));
        let Ok(mut w) = conn.try_clone() else {
            continue;
        };
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        // The writer keeps at most 256 KiB ahead of the reader: echo sends
        // back what it gets, so that is what is in flight.
        let acked = Arc::new(AtomicU64::new(0));
        let a = acked.clone();
        let writer = std::thread::spawn(move || {
            let mut sent = 0u64;
            let mut buf = [0u8; 16 * 1024];
            while !d.load(Relaxed) {
                if sent - a.load(Relaxed) > 256 * 1024 {
                    std::thread::sleep(Duration::from_micros(200));
                    continue;
                }
                for (j, b) in buf.iter_mut().enumerate() {
                    *b = pattern(sent + j as u64);
                }
                if w.write_all(&buf).is_err() {
                    return;
                }
                sent += buf.len() as u64;
            }
        });
        let mut r = conn;
        let mut got = 0u64;
        let mut buf = [0u8; 16 * 1024];
        while !s.stop.load(Relaxed) {
            match r.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => {
                    let bad = buf[..k]
                        .iter()
                        .enumerate()
                        .filter(|(j, b)| **b != pattern(got + *j as u64))
                        .count();
                    s.wrong.fetch_add(bad as u64, Relaxed);
                    got += k as u64;
                    acked.store(got, Relaxed);
                    s.bytes.fetch_add(k as u64, Relaxed);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        done.store(true, Relaxed);
        let _ = r.shutdown(std::net::Shutdown::Both);
        let _ = writer.join();
        if !s.stop.load(Relaxed) {
            s.resets.fetch_add(1, Relaxed);
        }
    }
}

/// Injects a fault, or says why it could not.
fn inject(sys: &System, pd: &str) -> Result<(), String> {
    axolotl_host::status::request(&sys.control, &format!("inject {pd} segv")).map(|_| ())
}

/// Runs the benchmark; the report on standard output.
pub fn run(args: &BenchArgs) -> Result<(), String> {
    let ports = free_ports()?;
    let log = std::env::temp_dir().join(format!("axolotl-bench-{}.log", std::process::id()));
    eprintln!(
        "bench-recovery: {} on {}; the system's output goes to {}",
        args.system.file.display(),
        args.system.board,
        log.display()
    );
    let mut sys = System::start(&args.system.launch(), ports, &log)?;
    let qemu = args.system.board != "linux";
    let first = sys.wait_up(Duration::from_secs(if qemu { 900 } else { 600 }), &log)?;
    wait_serving(ports, Duration::from_secs(60))?;
    let pds: Vec<String> = if args.pds.is_empty() {
        first
            .iter()
            .filter(|p| p["parent"].is_string() && p["parent"] != "axolotl")
            .filter_map(|p| p["name"].as_str().map(str::to_string))
            .collect()
    } else {
        args.pds.clone()
    };
    for pd in pds.iter().chain(&args.kill) {
        if row(&first, pd).is_none() {
            return Err(format!("no PD named '{pd}' in this system"));
        }
    }

    // 1. Recovery, round-robin over the PDs.
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); pds.len()];
    let mut last: Vec<Option<Instant>> = vec![None; pds.len()];
    let mut missing: Vec<u64> = vec![0; pds.len()];
    let gap = Duration::from_millis(1_200);
    for round in 0..args.samples {
        for (i, pd) in pds.iter().enumerate() {
            if let Some(t) = last[i] {
                if let Some(wait) = gap.checked_sub(t.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            let status = sys.status()?;
            let before = row(&status, pd)
                .and_then(|p| p["restarts"].as_u64())
                .unwrap_or(0);
            inject(&sys, pd)?;
            let t = Instant::now();
            last[i] = Some(t);
            let back = loop {
                if t.elapsed() > Duration::from_secs(20) {
                    break None;
                }
                if let Ok(st) = sys.status() {
                    if let Some(p) = row(&st, pd) {
                        if p["state"] == "running" && p["restarts"].as_u64() > Some(before) {
                            break Some(p["last_recovery_us"].as_f64());
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            };
            match back {
                Some(Some(us)) => times[i].push(us / 1000.0),
                Some(None) => missing[i] += 1,
                None => {
                    return Err(format!(
                        "{pd} did not come back within 20 s (sample {round})"
                    ))
                }
            }
        }
        eprintln!(
            "bench-recovery: recovery round {} of {}",
            round + 1,
            args.samples
        );
    }
    let recovery: Vec<Value> = pds
        .iter()
        .zip(times.iter_mut())
        .zip(&missing)
        .map(|((pd, t), &missing)| {
            t.sort_by(f64::total_cmp);
            json!({
                "pd": pd,
                "samples": t.len(),
                "not_measured": missing,
                "median_ms": quantile(t, 0.5),
                "p99_ms": quantile(t, 0.99),
                "max_ms": t.last().copied().unwrap_or(f64::NAN),
            })
        })
        .collect();

    // 2. Throughput under kills.
    let s = Arc::new(Stream {
        bytes: AtomicU64::new(0),
        wrong: AtomicU64::new(0),
        resets: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let worker = {
        let s = s.clone();
        let port = ports.0;
        std::thread::spawn(move || stream(port, &s))
    };
    // Warm up, then one phase: bytes per second while `kill` (if any) is
    // killed every `every`.
    std::thread::sleep(Duration::from_secs(2));
    let phase = |kill: Option<(&str, Duration)>| -> Result<f64, String> {
        let (b0, t0) = (s.bytes.load(Relaxed), Instant::now());
        let mut next = kill.map(|(_, every)| t0 + every / 2);
        while t0.elapsed() < args.phase {
            if let (Some((pd, every)), Some(at)) = (kill, next) {
                if Instant::now() >= at {
                    inject(&sys, pd)?;
                    next = Some(at + every);
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok((s.bytes.load(Relaxed) - b0) as f64 / t0.elapsed().as_secs_f64())
    };
    let mut baselines = vec![phase(None)?];
    let mut kills = Vec::new();
    for pd in &args.kill {
        let mut entry = json!({ "pd": pd });
        for (key, every) in [("every_1s", 1), ("every_4s", 4)] {
            eprintln!("bench-recovery: TCP echo while {pd} is killed every {every} s");
            let rate = phase(Some((pd, Duration::from_secs(every))))?;
            // The baseline around it: the mean of the no-fault phases
            // before and after.
            let after = phase(None)?;
            let base = (baselines.last().copied().unwrap_or(after) + after) / 2.0;
            baselines.push(after);
            entry[key] = json!({ "mib_s": rate / 1048576.0, "ratio": rate / base });
        }
        kills.push(entry);
    }
    s.stop.store(true, Relaxed);
    let _ = worker.join();
    sys.stop();
    let baseline = baselines.iter().sum::<f64>() / baselines.len() as f64;
    let report = json!({
        "board": args.system.board,
        "recovery": recovery,
        "throughput": {
            "phase_s": args.phase.as_secs_f64(),
            "baseline_mib_s": baseline / 1048576.0,
            "baseline_phases_mib_s": baselines.iter().map(|b| b / 1048576.0).collect::<Vec<_>>(),
            "kills": kills,
            "wrong_bytes": s.wrong.load(Relaxed),
            "stream_resets": s.resets.load(Relaxed),
        },
    });
    crate::soak::print_report(&report, args.json, text);
    if s.wrong.load(Relaxed) > 0 {
        return Err(format!("{} wrong bytes came back", s.wrong.load(Relaxed)));
    }
    Ok(())
}

fn text(r: &Value) -> String {
    let mut out = format!(
        "recovery on {}, fault to serving again (ms):\n",
        r["board"].as_str().unwrap_or("?")
    );
    out.push_str("PD           samples   median      p99      max\n");
    for p in r["recovery"].as_array().into_iter().flatten() {
        let f = |k: &str| {
            p[k].as_f64()
                .map_or("-".to_string(), |v| format!("{v:8.3}"))
        };
        out.push_str(&format!(
            "{:<12} {:>7} {} {} {}\n",
            p["pd"].as_str().unwrap_or("?"),
            p["samples"],
            f("median_ms"),
            f("p99_ms"),
            f("max_ms")
        ));
    }
    let t = &r["throughput"];
    out.push_str(&format!(
        "\nTCP echo, one stream, {} s phases: {:.1} MiB/s with no fault\n",
        t["phase_s"],
        t["baseline_mib_s"].as_f64().unwrap_or(0.0)
    ));
    out.push_str("killed       every 1 s        every 4 s   (ratio to no fault)\n");
    for k in t["kills"].as_array().into_iter().flatten() {
        let f = |key: &str| {
            format!(
                "{:5.3} ({:5.1} MiB/s)",
                k[key]["ratio"].as_f64().unwrap_or(0.0),
                k[key]["mib_s"].as_f64().unwrap_or(0.0)
            )
        };
        out.push_str(&format!(
            "{:<12} {}  {}\n",
            k["pd"].as_str().unwrap_or("?"),
            f("every_1s"),
            f("every_4s")
        ));
    }
    out.push_str(&format!(
        "wrong bytes: {}; stream resets: {}\n",
        t["wrong_bytes"], t["stream_resets"]
    ));
    out
}
