//! The monitor's console on seL4: commands in, answers out.
//!
//! Commands are lines of text from the console stream (the serial driver
//! writes what arrives on the UART):
//!
//! - `status`: answered with one line `AXOLOTL-STATUS <json>`, a JSON array
//!   of one object per PD in the shape `axolotl status --json` prints on
//!   the Linux host (name, state, pid, parent, restarts, last_fault,
//!   last_recovery_us, ...).
//! - `inject PD KIND` (KIND: `segv`, `panic`, `hang`): answered with
//!   `AXOLOTL-INJECTED PD KIND` or `AXOLOTL-ERROR <why>`.
//!
//! Answers go out through the log, which the platform sends to the console.
//! Anything else on the console (a person typing) is answered with
//! `AXOLOTL-ERROR`. A line longer than [`MAX_LINE`] is dropped whole.

use crate::{Monitor, Phase, Watchdog, NS_PER_MS};
use axolotl_ring::bytes::ByteReader;
use axolotl_sdk::{Channel, InjectKind, Instant, Os, MAX_CORRUPT_BITS};
use core::fmt::{self, Write as _};

/// The line the monitor logs once every PD is up.
pub const UP_MARKER: &str = "AXOLOTL-UP";
/// The prefix of a status answer.
pub const STATUS_PREFIX: &str = "AXOLOTL-STATUS ";
/// The prefix of an inject answer.
pub const INJECTED_PREFIX: &str = "AXOLOTL-INJECTED ";
/// The prefix of a refusal.
pub const ERROR_PREFIX: &str = "AXOLOTL-ERROR ";
/// Longest command line.
pub const MAX_LINE: usize = 128;

/// The console stream and the line being read.
pub struct Console {
    name: &'static str,
    ch: Channel,
    reader: ByteReader,
    line: heapless::Vec<u8, MAX_LINE>,
    too_long: bool,
}

/// A console command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// `status`.
    Status,
    /// `inject PD KIND`.
    Inject(&'a str, InjectKind),
    /// `inject PD stall [MS]`: the PD stops for MS milliseconds (default
    /// [`DEFAULT_STALL_MS`]) and then runs on.
    Stall(&'a str, u64),
}

/// How long a stall lasts when the command does not say.
pub const DEFAULT_STALL_MS: u64 = 200;
/// The longest stall.
pub const MAX_STALL_MS: u64 = 60_000;

/// Parses one command line.
pub fn parse(line: &str) -> Result<Command<'_>, &'static str> {
    let mut words = line.split_whitespace();
    match (words.next(), words.next(), words.next(), words.next()) {
        (Some("status"), None, _, _) => Ok(Command::Status),
        (Some("inject"), Some(pd), Some("stall"), ms) => {
            let ms = match ms {
                None => DEFAULT_STALL_MS,
                Some(ms) => ms
                    .parse()
                    .ok()
                    .filter(|ms| (1..=MAX_STALL_MS).contains(ms))
                    .ok_or("a stall lasts 1 to 60000 ms")?,
            };
            if words.next().is_some() {
                return Err("usage: inject PD stall [MS]");
            }
            Ok(Command::Stall(pd, ms))
        }
        (Some("inject"), Some(pd), Some("corrupt"), Some(bits)) => {
            let bits = bits
                .parse()
                .ok()
                .filter(|b| (1..=MAX_CORRUPT_BITS).contains(b))
                .ok_or("corrupt flips 1 to 64 bits")?;
            if words.next().is_some() {
                return Err("usage: inject PD corrupt [BITS]");
            }
            Ok(Command::Inject(pd, InjectKind::Corrupt(bits)))
        }
        (Some("inject"), Some(pd), Some(kind), None) => InjectKind::from_name(kind)
            .map(|k| Command::Inject(pd, k))
            .ok_or("unknown fault kind (segv, panic, hang, stall, garbage, corrupt)"),
        (Some("inject"), ..) => Err("usage: inject PD KIND"),
        _ => Err("unknown command (status, inject PD KIND)"),
    }
}

impl Console {
    pub(crate) fn new(name: &'static str, ch: Channel, reader: ByteReader) -> Console {
        Console {
            name,
            ch,
            reader,
            line: heapless::Vec::new(),
            too_long: false,
        }
    }

    pub(crate) fn channel(&self) -> Channel {
        self.ch
    }

    /// The next complete line, if one has arrived.
    fn next_line(&mut self) -> Option<heapless::Vec<u8, MAX_LINE>> {
        let mut byte = [0u8; 1];
        while self.reader.read(&mut byte) == 1 {
            match byte[0] {
                b'\n' | b'\r' => {
                    let line = core::mem::take(&mut self.line);
                    if core::mem::take(&mut self.too_long) {
                        log::warn!("{ERROR_PREFIX}console line longer than {MAX_LINE} bytes");
                        continue;
                    }
                    if !line.is_empty() {
                        return Some(line);
                    }
                }
                b => {
                    if self.line.push(b).is_err() {
                        self.too_long = true;
                    }
                }
            }
        }
        None
    }
}

impl<W: Watchdog> Monitor<W> {
    pub(crate) fn on_console(&mut self, os: &mut dyn Os) {
        loop {
            let Some(line) = self.console.as_mut().and_then(Console::next_line) else {
                return;
            };
            let Ok(text) = core::str::from_utf8(&line) else {
                log::warn!("{ERROR_PREFIX}console line is not UTF-8");
                continue;
            };
            match parse(text) {
                Ok(Command::Status) => log::info!("{STATUS_PREFIX}{}", self.status_json()),
                Ok(Command::Inject(pd, kind)) => self.inject(os, pd, kind),
                Ok(Command::Stall(pd, ms)) => self.stall(os, pd, ms),
                Err(e) => log::warn!("{ERROR_PREFIX}{e}: '{text}'"),
            }
        }
    }

    /// The status of every PD as a JSON array, in the shape of
    /// `axolotl status --json`.
    pub fn status_json(&self) -> impl fmt::Display + '_ {
        StatusJson { m: self }
    }

    /// The index of child `pd` if it is running; otherwise says why not on
    /// the console.
    fn running_child(&self, pd: &str) -> Option<usize> {
        let Some(i) = self.children.iter().position(|c| c.name == pd) else {
            log::warn!("{ERROR_PREFIX}no supervised PD named '{pd}'");
            return None;
        };
        if self.states[i].phase != Phase::Running {
            log::warn!("{ERROR_PREFIX}{pd} is not running");
            return None;
        }
        Some(i)
    }

    /// Stops child `pd` for `ms` milliseconds; a tick after that resumes
    /// it. Its heartbeats go unanswered meanwhile: a stall longer than its
    /// heartbeat limit is a hang, and it is restarted.
    fn stall(&mut self, os: &mut dyn Os, pd: &str, ms: u64) {
        let Some(i) = self.running_child(pd) else {
            return;
        };
        let until = os.now().add_nanos(ms.saturating_mul(NS_PER_MS));
        self.states[i].stalled_until = Some(until);
        os.stop_child(self.children[i].child);
        log::info!("{INJECTED_PREFIX}{pd} stall");
    }

    fn inject(&mut self, os: &mut dyn Os, pd: &str, kind: InjectKind) {
        if pd == self.name {
            // Saved first: the next incarnation starts from this state.
            self.persist();
            log::info!("{INJECTED_PREFIX}{pd} {}", kind.name());
            if let Err(e) = os.inject_self(kind) {
                log::warn!("{ERROR_PREFIX}{e}");
            }
            return;
        }
        let Some(i) = self.running_child(pd) else {
            return;
        };
        match os.inject_child(self.children[i].child, kind) {
            Ok(()) => log::info!("{INJECTED_PREFIX}{pd} {}", kind.name()),
            Err(e) => log::warn!("{ERROR_PREFIX}{e}"),
        }
    }
}

/// A JSON string.
struct Str<'a>(&'a str);

impl fmt::Display for Str<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                c if (c as u32) < 0x20 => write!(f, "\\u{:04x}", c as u32)?,
                c => f.write_char(c)?,
            }
        }
        f.write_char('"')
    }
}

/// A parent's name as JSON, or null.
struct Parent(Option<&'static str>);

impl fmt::Display for Parent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(p) => Str(p).fmt(f),
            None => f.write_str("null"),
        }
    }
}

/// Seconds as JSON: a number with millisecond precision.
struct Secs(Instant);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0.as_nanos();
        write!(f, "{}.{:03}", ns / 1_000_000_000, (ns / NS_PER_MS) % 1_000)
    }
}

/// The status of every PD as one JSON array.
struct StatusJson<'a, W: Watchdog> {
    m: &'a Monitor<W>,
}

/// The fields every PD entry ends with: counters the monitor does not keep
/// on this platform are 0 or null, so the shape matches the host's.
fn counters(f: &mut fmt::Formatter<'_>, heartbeats: u64) -> fmt::Result {
    write!(
        f,
        "\"last_recovery_to_notified_us\":null,\"notifications\":0,\"calls\":0,\
         \"heartbeats\":{heartbeats},\"errors\":0,\"bad_packets\":0}}"
    )
}

impl<W: Watchdog> fmt::Display for StatusJson<'_, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.m.console.as_ref().map_or("monitor", |c| c.name);
        f.write_char('[')?;
        if let Some(parent) = self.m.parent {
            // The warden: it runs whenever the monitor does (it is the
            // root and only waits for the monitor's faults).
            write!(
                f,
                "{{\"name\":{},\"state\":\"running\",\"pid\":null,\"parent\":null,\"restarts\":0,\
                 \"max_faults\":null,\"window_ms\":null,\"last_fault\":null,\"last_recovery_us\":null,",
                Str(parent)
            )?;
            counters(f, 0)?;
            f.write_char(',')?;
        }
        write!(
            f,
            "{{\"name\":{},\"state\":\"running\",\"pid\":null,\"parent\":{},\"restarts\":{},\
             \"max_faults\":null,\"window_ms\":null,\"last_fault\":null,\"last_recovery_us\":null,",
            Str(name),
            Parent(self.m.parent),
            self.m.own.incarnation
        )?;
        counters(f, 0)?;
        for (cfg, st) in self.m.children() {
            let state = match st.phase {
                Phase::Starting { .. } => "starting",
                Phase::Running => "running",
                Phase::Waiting { .. } => "faulted",
                Phase::GaveUp => "stopped",
            };
            write!(
                f,
                ",{{\"name\":{},\"state\":\"{state}\",\"pid\":null,\"parent\":{},\"restarts\":{},",
                Str(cfg.name),
                Str(name),
                st.restarts
            )?;
            // The give-up budget, as the host's status gives it (null:
            // never given up on).
            match cfg.restart.max_faults {
                0 => f.write_str("\"max_faults\":null,\"window_ms\":null,")?,
                n => write!(
                    f,
                    "\"max_faults\":{n},\"window_ms\":{},",
                    cfg.restart.window_ms
                )?,
            }
            f.write_str("\"last_fault\":")?;
            match (st.last_fault, st.last_fault_at) {
                (Some(fault), Some(at)) => write!(
                    f,
                    "{{\"kind\":\"{}\",\"addr\":\"{:#x}\",\"pc\":\"{:#x}\",\"at_s\":{}}}",
                    fault.kind.name(),
                    fault.addr,
                    fault.pc,
                    Secs(at)
                )?,
                _ => f.write_str("null")?,
            }
            f.write_str(",\"last_recovery_us\":")?;
            match st.last_recovery_ns {
                Some(ns) => write!(f, "{}.{:03}", ns / 1_000, ns % 1_000)?,
                None => f.write_str("null")?,
            }
            f.write_char(',')?;
            counters(f, st.heartbeats)?;
        }
        f.write_char(']')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        assert_eq!(parse("status"), Ok(Command::Status));
        assert_eq!(parse("  status  "), Ok(Command::Status));
        assert_eq!(
            parse("inject store panic"),
            Ok(Command::Inject("store", InjectKind::Panic))
        );
        assert_eq!(
            parse("inject timer segv"),
            Ok(Command::Inject("timer", InjectKind::NullDeref))
        );
        assert_eq!(
            parse("inject ip garbage"),
            Ok(Command::Inject("ip", InjectKind::Garbage))
        );
        assert_eq!(
            parse("inject ip corrupt"),
            Ok(Command::Inject("ip", InjectKind::Corrupt(1)))
        );
        assert_eq!(
            parse("inject ip corrupt 8"),
            Ok(Command::Inject("ip", InjectKind::Corrupt(8)))
        );
        assert!(parse("inject ip corrupt 0").is_err());
        assert!(parse("inject ip corrupt 65").is_err());
        assert!(parse("inject ip corrupt x").is_err());
        assert!(parse("inject ip corrupt 1 2").is_err());
        assert!(parse("inject store").is_err());
        assert!(parse("inject store boom").is_err());
        assert!(parse("inject a b c").is_err());
        assert!(parse("status now").is_err());
        assert!(parse("").is_err());
        assert!(parse("reboot").is_err());
    }

    #[test]
    fn json_strings_are_escaped() {
        let s = format!("{}", Str("a\"b\\c\n"));
        assert_eq!(s, "\"a\\\"b\\\\c\\u000a\"");
    }
}
