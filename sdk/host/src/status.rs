//! What `axolotl status` shows, and the client side of the control socket.

use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// A fault as status shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FaultStatus {
    /// Kind name (`memory-access`, `panic`, `hang`, ...).
    pub kind: String,
    /// Faulting address (or exit status / signal), hex.
    pub addr: String,
    /// Instruction pointer, hex.
    pub pc: String,
    /// The panic message, for panics.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Seconds since the system started.
    pub at_s: f64,
}

/// One PD as status shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PdStatus {
    /// PD name.
    pub name: String,
    /// `starting`, `running`, `faulted`, `stopped` or `dead`.
    pub state: String,
    /// Process id, while there is a process.
    pub pid: Option<i32>,
    /// Parent PD, if any.
    pub parent: Option<String>,
    /// Restarts so far.
    pub restarts: u32,
    /// Its restart policy's budget: this many faults within `window_ms`
    /// make its parent give up on it (null: it is never given up on).
    #[serde(default)]
    pub max_faults: Option<u32>,
    /// The window of `max_faults`, in milliseconds.
    #[serde(default)]
    pub window_ms: Option<u64>,
    /// The last fault.
    pub last_fault: Option<FaultStatus>,
    /// Time from the last fault to the PD serving again, in microseconds.
    pub last_recovery_us: Option<f64>,
    /// Time from the last fault to the new incarnation's first `notified`,
    /// in microseconds.
    pub last_recovery_to_notified_us: Option<f64>,
    /// `notified` calls handled (all incarnations).
    pub notifications: u64,
    /// Protected calls served.
    pub calls: u64,
    /// Heartbeats answered.
    pub heartbeats: u64,
    /// Handler errors.
    pub errors: u64,
    /// Malformed packets from neighbours, dropped.
    pub bad_packets: u64,
}

/// Renders the status as a table for people.
pub fn table(pds: &[PdStatus]) -> String {
    let mut out = format!(
        "{:<12} {:<9} {:>8} {:>8}  {:<38} {:>12}\n",
        "PD", "STATE", "PID", "RESTARTS", "LAST FAULT", "RECOVERY"
    );
    for p in pds {
        let fault = p
            .last_fault
            .as_ref()
            .map(|f| format!("{} at {} ({:.1}s)", f.kind, f.addr, f.at_s))
            .unwrap_or_else(|| "-".into());
        let rec = p
            .last_recovery_us
            .map(|us| format!("{:.3} ms", us / 1000.0))
            .unwrap_or_else(|| "-".into());
        let pid = p.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "{:<12} {:<9} {:>8} {:>8}  {:<38} {:>12}\n",
            p.name, p.state, pid, p.restarts, fault, rec
        ));
    }
    out
}

/// Sends one request line to a running system's control socket and returns
/// the answer.
pub fn request(control: &Path, line: &str) -> Result<String, String> {
    let mut s = UnixStream::connect(control).map_err(|e| {
        format!(
            "cannot reach a running system at {} ({e}); start one with `axolotl run`, or pass \
             --control",
            control.display()
        )
    })?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    s.write_all(format!("{line}\n").as_bytes())
        .map_err(|e| format!("{}: {e}", control.display()))?;
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = String::new();
    s.read_to_string(&mut out)
        .map_err(|e| format!("{}: {e}", control.display()))?;
    match out.strip_prefix("error: ") {
        Some(e) => Err(e.trim_end().to_string()),
        None => Ok(out),
    }
}

/// The status of a running system.
pub fn query(control: &Path) -> Result<Vec<PdStatus>, String> {
    let text = request(control, "status")?;
    serde_json::from_str(&text).map_err(|e| format!("malformed status from the system: {e}"))
}
