//! Messages on the control socket between a PD process and the supervisor
//! (the host's stand-in for the kernel). Short text, one per datagram.

use axolotl_sdk::{Child, FaultInfo, FaultKind};

/// From a PD's runtime to the supervisor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PdToCtrl {
    /// `init` returned; the PD serves events.
    Up,
    /// A fault signal is about to end the process.
    Fault(FaultInfo),
    /// A panic is about to abort the process.
    Panic(String),
    /// The parent asks for its child to be restarted.
    Restart(u8),
    /// The parent asks for its child to be stopped.
    Stop(u8),
    /// This program was built from another system description.
    Mismatch,
}

impl PdToCtrl {
    /// The text form.
    pub fn encode(&self) -> String {
        match self {
            PdToCtrl::Up => "up".into(),
            PdToCtrl::Fault(f) => format!("fault {} {:#x} {:#x}", f.kind.code(), f.addr, f.pc),
            PdToCtrl::Panic(m) => format!("panic {}", m.replace('\n', " | ")),
            PdToCtrl::Restart(c) => format!("restart {c}"),
            PdToCtrl::Stop(c) => format!("stop {c}"),
            PdToCtrl::Mismatch => "mismatch".into(),
        }
    }

    /// Parses the text form; `None` if malformed (the PD is untrusted).
    pub fn decode(s: &str) -> Option<PdToCtrl> {
        let (word, rest) = s.split_once(' ').unwrap_or((s, ""));
        Some(match word {
            "up" => PdToCtrl::Up,
            "mismatch" => PdToCtrl::Mismatch,
            "fault" => PdToCtrl::Fault(fault_info(rest)?),
            "panic" => PdToCtrl::Panic(rest.chars().take(400).collect()),
            "restart" => PdToCtrl::Restart(rest.trim().parse().ok()?),
            "stop" => PdToCtrl::Stop(rest.trim().parse().ok()?),
            _ => return None,
        })
    }
}

/// From the supervisor to a PD's runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CtrlToPd {
    /// One of this PD's children faulted.
    ChildFault(Child, FaultInfo),
    /// Inject a fault of this kind (`panic`, `segv`, `abort`, `hang`).
    Inject(String),
}

impl CtrlToPd {
    /// The text form.
    pub fn encode(&self) -> String {
        match self {
            CtrlToPd::ChildFault(c, f) => format!(
                "childfault {} {} {:#x} {:#x}",
                c.index(),
                f.kind.code(),
                f.addr,
                f.pc
            ),
            CtrlToPd::Inject(kind) => format!("inject {kind}"),
        }
    }

    /// Parses the text form.
    pub fn decode(s: &str) -> Option<CtrlToPd> {
        let (word, rest) = s.split_once(' ')?;
        Some(match word {
            "childfault" => {
                let (child, info) = rest.split_once(' ')?;
                CtrlToPd::ChildFault(Child::checked(child.parse().ok()?)?, fault_info(info)?)
            }
            "inject" => CtrlToPd::Inject(rest.to_string()),
            _ => return None,
        })
    }
}

fn fault_info(s: &str) -> Option<FaultInfo> {
    let mut it = s.split_whitespace();
    let kind = FaultKind::from_code(it.next()?.parse().ok()?)?;
    let addr = hex(it.next()?)?;
    let pc = hex(it.next()?)?;
    Some(FaultInfo { kind, addr, pc })
}

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_junk() {
        let f = FaultInfo {
            kind: FaultKind::Bus,
            addr: 0xdead,
            pc: 0x42,
        };
        for m in [
            PdToCtrl::Up,
            PdToCtrl::Fault(f),
            PdToCtrl::Panic("boom at x.rs:1".into()),
            PdToCtrl::Restart(3),
            PdToCtrl::Stop(62),
            PdToCtrl::Mismatch,
        ] {
            assert_eq!(PdToCtrl::decode(&m.encode()), Some(m));
        }
        for m in [
            CtrlToPd::ChildFault(Child::new(4), f),
            CtrlToPd::Inject("segv".into()),
        ] {
            assert_eq!(CtrlToPd::decode(&m.encode()), Some(m));
        }
        for junk in [
            "",
            "fault",
            "fault 99 0x0 0x0",
            "restart x",
            "childfault 63 1 0x0 0x0",
            "up?",
        ] {
            assert_eq!(PdToCtrl::decode(junk), None, "{junk}");
            assert_eq!(CtrlToPd::decode(junk), None, "{junk}");
        }
    }
}
