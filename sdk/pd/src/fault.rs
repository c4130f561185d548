//! What a parent learns when a child faults.

/// The kind of fault, as the platform reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// A memory access the PD's address space does not allow (seL4 VM fault,
    /// Linux SIGSEGV). `addr` holds the address.
    MemoryAccess,
    /// A bus error (misaligned or unbacked access; Linux SIGBUS).
    Bus,
    /// An undefined or privileged instruction (seL4 user exception, SIGILL).
    IllegalInstruction,
    /// Arithmetic fault (SIGFPE).
    Arithmetic,
    /// The PD's code panicked.
    Panic,
    /// The PD aborted (SIGABRT, or `abort()` from its runtime).
    Abort,
    /// The PD stopped answering heartbeats; its parent declared it hung.
    Hang,
    /// The PD's program ended when it should run for ever; `addr` holds the
    /// exit status.
    Exit,
    /// Killed by some other signal; `addr` holds the signal number.
    Killed,
}

impl FaultKind {
    /// A short lowercase name, used in logs, `axolotl status` and JSON.
    pub const fn name(self) -> &'static str {
        match self {
            FaultKind::MemoryAccess => "memory-access",
            FaultKind::Bus => "bus-error",
            FaultKind::IllegalInstruction => "illegal-instruction",
            FaultKind::Arithmetic => "arithmetic",
            FaultKind::Panic => "panic",
            FaultKind::Abort => "abort",
            FaultKind::Hang => "hang",
            FaultKind::Exit => "exit",
            FaultKind::Killed => "killed",
        }
    }

    /// The kind with this [`FaultKind::code`], if any.
    pub const fn from_code(code: u64) -> Option<FaultKind> {
        Some(match code {
            1 => FaultKind::MemoryAccess,
            2 => FaultKind::Bus,
            3 => FaultKind::IllegalInstruction,
            4 => FaultKind::Arithmetic,
            5 => FaultKind::Panic,
            6 => FaultKind::Abort,
            7 => FaultKind::Hang,
            8 => FaultKind::Exit,
            9 => FaultKind::Killed,
            _ => return None,
        })
    }

    /// A stable number for the kind, for carrying it in messages.
    pub const fn code(self) -> u64 {
        match self {
            FaultKind::MemoryAccess => 1,
            FaultKind::Bus => 2,
            FaultKind::IllegalInstruction => 3,
            FaultKind::Arithmetic => 4,
            FaultKind::Panic => 5,
            FaultKind::Abort => 6,
            FaultKind::Hang => 7,
            FaultKind::Exit => 8,
            FaultKind::Killed => 9,
        }
    }
}

/// A fault of a child PD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultInfo {
    /// What happened.
    pub kind: FaultKind,
    /// The faulting data address (memory faults), exit status or signal
    /// number (see [`FaultKind`]); zero when there is none.
    pub addr: u64,
    /// The instruction pointer at the fault, zero if unknown.
    pub pc: u64,
}

impl core::fmt::Display for FaultInfo {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.kind {
            FaultKind::Exit => write!(f, "exit (status {})", self.addr),
            FaultKind::Killed => write!(f, "killed (signal {})", self.addr),
            kind => {
                write!(f, "{} at address {:#x}", kind.name(), self.addr)?;
                if self.pc != 0 {
                    write!(f, ", pc {:#x}", self.pc)?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for code in 0..12 {
            if let Some(kind) = FaultKind::from_code(code) {
                assert_eq!(kind.code(), code);
            }
        }
        assert_eq!(FaultKind::from_code(5), Some(FaultKind::Panic));
        assert_eq!(FaultKind::from_code(0), None);
    }
}
