//! `axolotl campaign`: many faults into a running system (`axolotl run` or
//! `axolotl qemu`), one every `--interval`, each into a random PD with a
//! random kind, while byte-checked traffic runs through the system's
//! forwarded ports (the soak's: TCP echo on a new connection per transfer,
//! UDP echo, the status page). Each fault is judged by what followed it,
//! until the next:
//!
//! - *unnoticed*: the PD was restarted and serving again within
//!   `--bound`, and no client saw an error;
//! - *noticed*: the same, but a client saw a refused or broken connection,
//!   or a status page that did not answer (a TCP or app restart resets its
//!   connections, by design);
//! - *fail-silent*: after a `corrupt` fault, a wrong byte or datagram came
//!   back. A PD whose own memory is corrupted may send wrong data on with
//!   valid checksums (a flipped bit in TCP's send buffer is checksummed
//!   afresh when the segment is sent); no isolation between PDs can catch
//!   that, as no kernel can catch a flipped bit in its own socket buffers.
//!   SWIFI studies call it a fail-silence violation of the faulted
//!   component. It is counted and listed on its own, and is not a system
//!   failure; the same wrong byte after any other kind of fault is;
//! - *system failure*: a wrong byte or datagram, a PD not serving again
//!   within `--bound`, no echo coming back whole for longer than `--bound`
//!   (the system not serving), or, after `garbage`, any PD restarted (its
//!   neighbours must count, drop and carry on).
//!
//! An error a client saw is laid at the door of the latest fault before
//! it (a connection that stalls is only declared broken after 20 s, so it
//! may land on a later fault). The same seed, PDs and kinds give the same
//! faults in the same order (`--dry-run` prints them).

use crate::soak::{self, ClientError, Ctx, Rng};
use axolotl_host::status::{query, PdStatus};
use axolotl_sdk::MAX_CORRUPT_BITS;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long to wait before asking the system's status again, when the
/// last answer took `took`: a status answer is work for the system under
/// test (on QEMU the monitor prints it over the serial console, at a
/// priority above the network stack), so a slow answer is asked for less
/// often: 10 ms on the host, where it takes about a millisecond; about
/// 100 ms on QEMU, where it takes about 20.
pub(crate) fn poll_pause(took: Duration) -> Duration {
    (took * 5).clamp(Duration::from_millis(10), Duration::from_millis(250))
}

/// `axolotl campaign`'s options.
#[derive(clap::Args, Clone, Debug)]
pub struct CampaignArgs {
    /// Faults to inject.
    #[arg(long)]
    pub faults: u64,
    /// The PDs to fault, comma-separated (default: every PD but the root,
    /// the warden, which nothing restarts; the monitor gets no hangs, which
    /// nothing would notice).
    #[arg(long, value_delimiter = ',')]
    pub pds: Vec<String>,
    #[command(flatten)]
    pub shared: soak::FaultsAndTraffic,
    /// Milliseconds from one fault to the next.
    #[arg(long, default_value_t = 1000)]
    pub interval: u64,
    /// Milliseconds a faulted PD may take to serve again, and the system
    /// may go without echoing anything back, before it is a system failure.
    #[arg(long, default_value_t = 5000)]
    pub bound: u64,
    /// The host port forwarded to TCP echo (port 7) of the system.
    #[arg(long, default_value_t = 8007)]
    pub echo_port: u16,
    /// The host port forwarded to UDP echo (port 7).
    #[arg(long, default_value_t = 8007)]
    pub udp_port: u16,
    /// The host port forwarded to the status page (port 80).
    #[arg(long, default_value_t = 8080)]
    pub http_port: u16,
    /// Drive no traffic: only the PDs' recovery is judged.
    #[arg(long)]
    pub no_traffic: bool,
    /// Bits a `corrupt` fault flips (1 to 4096; 64 on seL4).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub bits: u32,
    /// Print the faults the campaign would inject, and inject none.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Control socket of the running system.
    #[arg(long, env = "AXOLOTL_CONTROL")]
    pub control: Option<PathBuf>,
}

/// How one fault went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Unnoticed,
    Noticed,
    /// A corrupted PD sent wrong data on (see the module's docs).
    FailSilent,
    Failure,
}

/// Per PD: injected, unnoticed, noticed, system failures.
#[derive(Default, Clone, Copy)]
struct Tally {
    injected: u64,
    unnoticed: u64,
    noticed: u64,
    fail_silent: u64,
    failures: u64,
}

/// How long a campaign's stalls last: shorter than the demo's heartbeat
/// limit (3 x 100 ms), so the PD runs on rather than being restarted.
const STALL_MS: u64 = 100;

/// PD `pd`'s row of a status, if it has one.
fn row<'a>(rows: &'a [PdStatus], pd: &str) -> Option<&'a PdStatus> {
    rows.iter().find(|r| r.name == pd)
}

/// Kinds of fault that end, or may end, in a restart, which the faulted
/// PD's parent counts against its give-up budget.
const RESTARTING: [&str; 5] = ["segv", "panic", "abort", "hang", "corrupt"];

/// Room left in each budget: a `corrupt` PD may crash twice, and a
/// restart is counted when it is detected (a hang some 300 ms after it
/// was injected), so a campaign gives a PD at most `max_faults - 2`
/// restarting faults in a window one second longer than the policy's.
const BUDGET_MARGIN: u32 = 2;
const WINDOW_SLACK_MS: u64 = 1_000;

/// A PD's give-up budget, from the system's status: `max_faults` faults
/// within `window_ms` make its parent leave it stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Faults in the window that mean giving up.
    pub max_faults: u32,
    /// The window, ms.
    pub window_ms: u64,
}

impl Budget {
    /// Restarting faults a campaign may give the PD within [`Self::span_ms`].
    fn allowed(&self) -> usize {
        self.max_faults.saturating_sub(BUDGET_MARGIN).max(1) as usize
    }

    fn span_ms(&self) -> u64 {
        self.window_ms + WINDOW_SLACK_MS
    }
}

/// One fault of a campaign's plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    /// The PD.
    pub pd: String,
    /// The kind.
    pub kind: String,
    /// Milliseconds from the previous fault's injection to this one's, at
    /// least the interval (0 for the first).
    pub gap_ms: u64,
}

/// The faults of a campaign, in order. PDs in `no_hang` are never given a
/// hang, a stall or a corrupt (which may hang): nothing watches them for
/// one (the monitor: its parent, the warden, has no clock to notice a hang
/// with).
///
/// The plan keeps every PD within its give-up budget (`budgets`; a PD with
/// none is never given up on): faults are `interval_ms` apart on the plan's
/// clock, and a restarting fault drawn for a PD that has had its share in
/// the budget's window is drawn again, for another PD; when every PD has
/// had its share, the clock moves on to when the first share frees. The
/// campaign then waits at least each `gap_ms`, so faults are never closer
/// in time than planned, and no PD's window ever holds more than planned.
/// The plan is a function of its arguments only: the same seed gives the
/// same campaign.
pub fn plan(
    seed: u64,
    n: u64,
    pds: &[String],
    kinds: &[String],
    no_hang: &[String],
    budgets: &BTreeMap<String, Budget>,
    interval_ms: u64,
) -> Vec<Planned> {
    let mut rng = Rng::new(seed ^ 0xca4a_1600);
    // Nor a stall: on seL4 the monitor cannot stop itself for a while.
    let others: Vec<String> = kinds
        .iter()
        .filter(|k| !["hang", "stall", "corrupt"].contains(&k.as_str()))
        .cloned()
        .collect();
    // Plan-clock times of each PD's restarting faults still in its span.
    let mut recent: BTreeMap<&str, std::collections::VecDeque<u64>> = BTreeMap::new();
    let mut out: Vec<Planned> = Vec::new();
    let mut now = 0u64;
    let mut last = 0u64;
    for i in 0..n {
        if i > 0 {
            now += interval_ms;
        }
        let mut tries = 0;
        let chosen = loop {
            let pd = &pds[rng.below(pds.len() as u64) as usize];
            let choice = if no_hang.contains(pd) { &others } else { kinds };
            if choice.is_empty() {
                break None;
            }
            let kind = &choice[rng.below(choice.len() as u64) as usize];
            let counted = RESTARTING.contains(&kind.as_str());
            let budget = budgets.get(pd.as_str()).filter(|_| counted);
            let full = budget.is_some_and(|b| {
                let q = recent.entry(pd.as_str()).or_default();
                while q.front().is_some_and(|&t| now >= t + b.span_ms()) {
                    q.pop_front();
                }
                q.len() >= b.allowed()
            });
            if !full {
                if budget.is_some() {
                    recent.entry(pd.as_str()).or_default().push_back(now);
                }
                break Some((pd, kind));
            }
            tries += 1;
            if tries % 32 == 0 {
                // Every PD drawn had its share: on to when the first frees.
                let frees = recent
                    .iter()
                    .filter_map(|(pd, q)| Some(q.front()? + budgets.get(*pd)?.span_ms()))
                    .min();
                now = frees.map_or(now + interval_ms, |t| t.max(now + 1));
            }
        };
        let Some((pd, kind)) = chosen else {
            continue;
        };
        out.push(Planned {
            pd: pd.clone(),
            kind: kind.clone(),
            gap_ms: if out.is_empty() { 0 } else { now - last },
        });
        last = now;
    }
    out
}

/// Runs a campaign; the report on standard output; an error if any system
/// failure.
pub fn run(args: &CampaignArgs, control: &Path) -> Result<(), String> {
    if args.faults == 0 {
        return Err("--faults: at least one".into());
    }
    let first = query(control)?;
    // PDs, not the host's own services (their parent is `axolotl`), and
    // not the root (the warden, no parent), which nothing restarts.
    let pd_names: Vec<String> = first
        .iter()
        .filter(|p| {
            p.parent
                .as_deref()
                .is_some_and(|parent| parent != "axolotl")
        })
        .map(|p| p.name.clone())
        .collect();
    let all: Vec<String> = first.iter().map(|p| p.name.clone()).collect();
    let targets = soak::choose_pds(&args.pds, &all, pd_names.clone())?;
    if targets.is_empty() {
        return Err("no PD to fault".into());
    }
    // On seL4 there are no processes: no pids, and no abort.
    let on_host = first.iter().any(|p| p.pid.is_some());
    let kinds = args.shared.kinds(on_host);
    if !on_host && kinds.iter().any(|k| k == "abort") {
        return Err(
            "--kinds abort: seL4 has no abort; give segv, panic, hang, stall, garbage or corrupt"
                .into(),
        );
    }
    if !on_host && kinds.iter().any(|k| k == "corrupt") && args.bits > MAX_CORRUPT_BITS {
        return Err(format!(
            "--bits {}: a corrupt fault on seL4 flips 1 to {MAX_CORRUPT_BITS} bits",
            args.bits
        ));
    }
    let seed = args.shared.seed;
    // The root's children (the monitor) have no hang detection.
    let roots: Vec<&str> = first
        .iter()
        .filter(|p| p.parent.is_none())
        .map(|p| p.name.as_str())
        .collect();
    let no_hang: Vec<String> = first
        .iter()
        .filter(|p| p.parent.as_deref().is_some_and(|q| roots.contains(&q)))
        .map(|p| p.name.clone())
        .collect();
    let budgets: BTreeMap<String, Budget> = first
        .iter()
        .filter_map(|p| {
            Some((
                p.name.clone(),
                Budget {
                    max_faults: p.max_faults.filter(|&m| m > 0)?,
                    window_ms: p.window_ms?,
                },
            ))
        })
        .collect();
    let faults = plan(
        seed,
        args.faults,
        &targets,
        &kinds,
        &no_hang,
        &budgets,
        args.interval.max(1),
    );
    if (faults.len() as u64) < args.faults {
        return Err(format!(
            "--kinds: {} cannot be hung, stalled or corrupted (nothing watches it for hangs); give it another kind or leave it out of --pds",
            no_hang.join(", ")
        ));
    }
    if args.dry_run {
        let list: Vec<Value> = faults
            .iter()
            .map(|f| json!([f.pd, f.kind, f.gap_ms]))
            .collect();
        if args.json {
            println!("{}", json!({ "seed": seed, "plan": list }));
        } else {
            println!(
                "{:>6}  {:<7}  {:<10}  {:>7}",
                "fault", "kind", "PD", "gap ms"
            );
            for (i, f) in faults.iter().enumerate() {
                println!("{:>6}  {:<7}  {:<10}  {:>7}", i + 1, f.kind, f.pd, f.gap_ms);
            }
        }
        return Ok(());
    }

    let interval = Duration::from_millis(args.interval.max(1));
    let bound = Duration::from_millis(args.bound.max(1));
    eprintln!(
        "campaign: {} faults (seed {}) into {} with {}, one every {} ms; bound {} ms",
        args.faults,
        seed,
        targets.join(","),
        kinds.join(","),
        args.interval,
        args.bound
    );
    let ctx = Arc::new(Ctx::new("campaign"));
    let mut threads = Vec::new();
    if !args.no_traffic {
        let ports = (args.echo_port, args.udp_port, args.http_port);
        soak::wait_serving(ports, Duration::from_secs(30)).map_err(|e| {
            format!("{e} (are the forwards of the system on these ports? see --echo-port)")
        })?;
        threads = args.shared.start(&ctx, ports, &pd_names);
    }

    let mut tally: BTreeMap<String, Tally> = BTreeMap::new();
    let mut failures: Vec<String> = Vec::new();
    let mut fail_silent: Vec<String> = Vec::new();
    let mut seen_errors = 0usize;
    // When each PD was last given a fault of its own: a `corrupt` PD may
    // crash a while later, during the next fault.
    let mut last_faulted: BTreeMap<String, Instant> = BTreeMap::new();
    let mut next_progress = Instant::now() + Duration::from_secs(30);
    let fail = |failures: &mut Vec<String>, what: String| {
        eprintln!("campaign: system failure: {what}");
        failures.push(what);
    };
    let mut previous: Option<Instant> = None;
    let mut paced = Duration::ZERO;
    for (i, Planned { pd, kind, gap_ms }) in faults.iter().enumerate() {
        // Never closer to the last fault than planned (see `plan`).
        if let Some(p) = previous {
            let due = p + Duration::from_millis(*gap_ms);
            let now = Instant::now();
            // The interval was already waited at the end of the last
            // fault: any wait here is for a budget.
            if due > now {
                paced += due - now;
                std::thread::sleep(due - now);
            }
        }
        let started = Instant::now();
        previous = Some(started);
        let rows_before = query(control).unwrap_or_default();
        let before = row(&rows_before, pd).map_or(0, |r| r.restarts);
        let t = tally.entry(pd.clone()).or_default();
        t.injected += 1;
        let mut verdict = Verdict::Unnoticed;
        let request = match kind.as_str() {
            "stall" => format!("inject {pd} stall {STALL_MS}"),
            "corrupt" => format!("inject {pd} corrupt {}", args.bits),
            _ => format!("inject {pd} {kind}"),
        };
        if let Err(e) = axolotl_host::status::request(control, &request) {
            fail(
                &mut failures,
                format!("fault {}: inject {pd} {kind}: {e}", i + 1),
            );
            verdict = Verdict::Failure;
        } else {
            // Serving again: restarted and running; after a stall, a
            // garbage or a corrupt, which a PD may run on after, running
            // once a stall would be over (restarted or not).
            let stall = soak::RUNS_ON.contains(&kind.as_str());
            let back = loop {
                let asked = Instant::now();
                let answer = query(control);
                let pause = poll_pause(asked.elapsed());
                if let Ok(rows) = answer {
                    let r = row(&rows, pd);
                    let restarts = r.map_or(0, |r| r.restarts);
                    let running = r.is_some_and(|r| r.state == "running");
                    let over = started.elapsed() >= Duration::from_millis(STALL_MS);
                    if running && (restarts > before || (stall && over)) {
                        break true;
                    }
                }
                if started.elapsed() > bound {
                    break false;
                }
                std::thread::sleep(pause);
            };
            if !back {
                fail(
                    &mut failures,
                    format!(
                        "fault {} ({kind} into {pd}): not serving again within {} ms",
                        i + 1,
                        args.bound
                    ),
                );
                verdict = Verdict::Failure;
            }
        }
        // The rest of the interval, then what the clients saw meanwhile.
        while started.elapsed() < interval {
            std::thread::sleep(Duration::from_millis(10));
        }
        // Garbage from a PD restarts nothing: its neighbours count, drop
        // and carry on, and so does the PD itself. A PD given a fault of
        // its own within the bound before is not counted: that fault may
        // restart it now (a corrupted PD crashing a second later).
        if kind == "garbage" && verdict != Verdict::Failure {
            if let Ok(rows) = query(control) {
                let own_fault = |name: &str| {
                    name != pd.as_str()
                        && last_faulted
                            .get(name)
                            .is_some_and(|t| started.duration_since(*t) < bound)
                };
                let restarted: Vec<String> = rows
                    .iter()
                    .filter(|r| r.restarts > row(&rows_before, &r.name).map_or(0, |b| b.restarts))
                    .filter(|r| !own_fault(&r.name))
                    .map(|r| r.name.clone())
                    .collect();
                if !restarted.is_empty() {
                    fail(
                        &mut failures,
                        format!(
                            "fault {} (garbage from {pd}): {} restarted",
                            i + 1,
                            restarted.join(", ")
                        ),
                    );
                    verdict = Verdict::Failure;
                }
            }
        }
        last_faulted.insert(pd.clone(), started);
        let errors: Vec<ClientError> = {
            let all = ctx.errors.lock().unwrap_or_else(|p| p.into_inner());
            let new = all[seen_errors..].iter().map(|e| e.1).collect();
            seen_errors = all.len();
            new
        };
        if errors.contains(&ClientError::Wrong) && kind == "corrupt" && verdict != Verdict::Failure
        {
            eprintln!(
                "campaign: fault {} (corrupt into {pd}): a wrong byte came back (fail-silence violation)",
                i + 1
            );
            fail_silent.push(format!("fault {} (corrupt into {pd})", i + 1));
            verdict = Verdict::FailSilent;
        } else if errors.contains(&ClientError::Wrong) {
            fail(
                &mut failures,
                format!("fault {} ({kind} into {pd}): a wrong byte came back", i + 1),
            );
            verdict = Verdict::Failure;
        } else if !errors.is_empty() && verdict == Verdict::Unnoticed {
            verdict = Verdict::Noticed;
        }
        if !args.no_traffic {
            let quiet = ctx.t0.elapsed().as_millis() as u64 - ctx.last_ok_ms.load(Relaxed);
            if quiet > args.bound {
                fail(
                    &mut failures,
                    format!(
                        "fault {} ({kind} into {pd}): no echo came back whole for {quiet} ms",
                        i + 1
                    ),
                );
                verdict = Verdict::Failure;
            }
        }
        let t = tally.entry(pd.clone()).or_default();
        match verdict {
            Verdict::Unnoticed => t.unnoticed += 1,
            Verdict::Noticed => t.noticed += 1,
            Verdict::FailSilent => t.fail_silent += 1,
            Verdict::Failure => t.failures += 1,
        }
        if Instant::now() >= next_progress {
            next_progress += Duration::from_secs(30);
            eprintln!(
                "campaign: {} of {} faults, {} system failures; {:.1} s waited for give-up budgets",
                i + 1,
                args.faults,
                failures.len(),
                paced.as_secs_f64()
            );
        }
    }
    ctx.stop.store(true, Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let report = report(args, &ctx, &tally, &failures, &fail_silent, paced);
    soak::print_report(&report, args.json, text);
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "campaign failed: {} system failures",
            failures.len()
        ))
    }
}

fn report(
    args: &CampaignArgs,
    ctx: &Ctx,
    tally: &BTreeMap<String, Tally>,
    failures: &[String],
    fail_silent: &[String],
    paced: Duration,
) -> Value {
    let c = &ctx.counts;
    let pds: serde_json::Map<String, Value> = tally
        .iter()
        .map(|(pd, t)| {
            (
                pd.clone(),
                json!({
                    "injected": t.injected,
                    "unnoticed": t.unnoticed,
                    "noticed": t.noticed,
                    "fail_silent": t.fail_silent,
                    "system_failures": t.failures,
                }),
            )
        })
        .collect();
    json!({
        "seed": args.shared.seed,
        "injected": tally.values().map(|t| t.injected).sum::<u64>(),
        "unnoticed": tally.values().map(|t| t.unnoticed).sum::<u64>(),
        "noticed": tally.values().map(|t| t.noticed).sum::<u64>(),
        "fail_silent": fail_silent.len(),
        "fail_silent_faults": fail_silent.iter().take(100).collect::<Vec<_>>(),
        "system_failures": failures.len(),
        "bound_ms": args.bound,
        "interval_ms": args.interval,
        "paced_ms": paced.as_millis() as u64,
        "pds": pds,
        "failures": failures.iter().take(100).collect::<Vec<_>>(),
        "traffic": {
            "tcp_connections": c.tcp_connections.load(Relaxed),
            "tcp_bytes": c.tcp_bytes.load(Relaxed),
            "tcp_refused": c.tcp_refused.load(Relaxed),
            "tcp_broken": c.tcp_broken.load(Relaxed),
            "wrong": c.tcp_wrong.load(Relaxed) + c.udp_wrong.load(Relaxed),
            "udp_sent": c.udp_sent.load(Relaxed),
            "udp_received": c.udp_received.load(Relaxed),
            "pages": c.http_pages.load(Relaxed),
        },
    })
}

fn text(r: &Value) -> String {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let mut out = format!(
        "campaign report (seed {}): {} faults, one every {} ms ({:.1} s more waited for give-up budgets)\n",
        n(&r["seed"]),
        n(&r["injected"]),
        n(&r["interval_ms"]),
        n(&r["paced_ms"]) as f64 / 1e3
    );
    out += &format!(
        "  {:<10} {:>9} {:>10} {:>15} {:>12} {:>16}\n",
        "PD", "injected", "unnoticed", "client saw one", "fail-silent", "system failures"
    );
    if let Some(pds) = r["pds"].as_object() {
        for (pd, t) in pds {
            out += &format!(
                "  {:<10} {:>9} {:>10} {:>15} {:>12} {:>16}\n",
                pd,
                n(&t["injected"]),
                n(&t["unnoticed"]),
                n(&t["noticed"]),
                n(&t["fail_silent"]),
                n(&t["system_failures"])
            );
        }
    }
    out += &format!(
        "  {:<10} {:>9} {:>10} {:>15} {:>12} {:>16}\n",
        "all",
        n(&r["injected"]),
        n(&r["unnoticed"]),
        n(&r["noticed"]),
        n(&r["fail_silent"]),
        n(&r["system_failures"])
    );
    let t = &r["traffic"];
    out += &format!(
        "  traffic: {} TCP connections, {:.1} MiB echoed, {} refused, {} broken; {} of {} datagrams back; {} pages; {} wrong\n",
        n(&t["tcp_connections"]),
        n(&t["tcp_bytes"]) as f64 / 1048576.0,
        n(&t["tcp_refused"]),
        n(&t["tcp_broken"]),
        n(&t["udp_received"]),
        n(&t["udp_sent"]),
        n(&t["pages"]),
        n(&t["wrong"]),
    );
    if let Some(f) = r["fail_silent_faults"].as_array() {
        for line in f {
            out += &format!(
                "  fail-silent: {}: wrong data from the corrupted PD\n",
                line.as_str().unwrap_or("")
            );
        }
    }
    if let Some(f) = r["failures"].as_array() {
        for line in f {
            out += &format!("  failure: {}\n", line.as_str().unwrap_or(""));
        }
    }
    out += if n(&r["system_failures"]) == 0 {
        "PASSED: no system failure\n"
    } else {
        "FAILED\n"
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    /// Each fault's time on the plan's clock.
    fn times(p: &[Planned]) -> Vec<u64> {
        p.iter()
            .scan(0, |t, f| {
                *t += f.gap_ms;
                Some(*t)
            })
            .collect()
    }

    /// The most restarting faults any PD has within any span of its budget.
    fn worst_window(p: &[Planned], budgets: &BTreeMap<String, Budget>) -> BTreeMap<String, usize> {
        let at = times(p);
        let mut worst = BTreeMap::new();
        for (i, f) in p.iter().enumerate() {
            let Some(b) = budgets.get(&f.pd) else {
                continue;
            };
            if !RESTARTING.contains(&f.kind.as_str()) {
                continue;
            }
            let n = (i..p.len())
                .filter(|&j| {
                    p[j].pd == f.pd
                        && RESTARTING.contains(&p[j].kind.as_str())
                        && at[j] < at[i] + b.span_ms()
                })
                .count();
            let w = worst.entry(f.pd.clone()).or_insert(0);
            *w = (*w).max(n);
        }
        worst
    }

    #[test]
    fn without_budgets_faults_are_one_interval_apart() {
        let pds = names(&["a", "b", "c"]);
        let kinds = names(&["segv", "hang", "garbage"]);
        let p = plan(9, 500, &pds, &kinds, &[], &BTreeMap::new(), 20);
        assert_eq!(p.len(), 500);
        assert_eq!(p[0].gap_ms, 0);
        assert!(p[1..].iter().all(|f| f.gap_ms == 20));
        assert_eq!(p, plan(9, 500, &pds, &kinds, &[], &BTreeMap::new(), 20));
        assert_ne!(p, plan(10, 500, &pds, &kinds, &[], &BTreeMap::new(), 20));
    }

    #[test]
    fn a_plan_keeps_every_pd_within_its_give_up_budget() {
        let pds = names(&["net", "demo", "free"]);
        let kinds = names(&["segv", "panic", "hang", "stall", "garbage", "corrupt"]);
        let budgets: BTreeMap<String, Budget> = [("net", 30, 10_000), ("demo", 10, 10_000)]
            .into_iter()
            .map(|(pd, max_faults, window_ms)| {
                (
                    pd.to_string(),
                    Budget {
                        max_faults,
                        window_ms,
                    },
                )
            })
            .collect();
        // A fault every 10 ms would give each PD some 300 restarting
        // faults in ten seconds.
        let p = plan(3, 5_000, &pds, &kinds, &[], &budgets, 10);
        assert_eq!(p.len(), 5_000);
        let worst = worst_window(&p, &budgets);
        assert_eq!(worst["net"], 28, "{worst:?}");
        assert_eq!(worst["demo"], 8, "{worst:?}");
        // The PD with no budget takes up the slack, and the rest of the
        // plan still comes one interval apart.
        let free = p.iter().filter(|f| f.pd == "free").count();
        assert!(free > p.len() / 2, "{free}");
        assert!(p[1..].iter().all(|f| f.gap_ms == 10));
        assert_eq!(p, plan(3, 5_000, &pds, &kinds, &[], &budgets, 10));
    }

    #[test]
    fn when_every_pd_had_its_share_the_plan_waits() {
        let pds = names(&["a", "b"]);
        let kinds = names(&["segv"]);
        let budgets: BTreeMap<String, Budget> = ["a", "b"]
            .into_iter()
            .map(|pd| {
                (
                    pd.to_string(),
                    Budget {
                        max_faults: 5,
                        window_ms: 2_000,
                    },
                )
            })
            .collect();
        let p = plan(1, 60, &pds, &kinds, &[], &budgets, 10);
        assert_eq!(p.len(), 60);
        // Three per PD per 3 s span: six faults, then a wait.
        assert!(p.iter().any(|f| f.gap_ms > 10));
        let worst = worst_window(&p, &budgets);
        assert_eq!(worst.values().max(), Some(&3), "{worst:?}");
        let end = *times(&p).last().unwrap();
        assert!(end >= 9 * 3_000, "{end}");
    }

    #[test]
    fn a_slow_status_answer_is_asked_for_less_often() {
        let ms = Duration::from_millis;
        assert_eq!(poll_pause(Duration::from_micros(500)), ms(10));
        assert_eq!(poll_pause(ms(20)), ms(100));
        assert_eq!(poll_pause(ms(400)), ms(250));
    }
}
