//! Turning real faults of a PD process into reports for its parent, and
//! injecting faults for testing.

use crate::control::PdToCtrl;
use axolotl_sdk::{FaultInfo, FaultKind};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

static CTRL: AtomicI32 = AtomicI32::new(-1);
static PANICKED: AtomicBool = AtomicBool::new(false);

const FAULT_SIGNALS: [libc::c_int; 5] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGABRT,
];

/// Installs the fault-signal handlers and the panic hook, which report to the
/// supervisor over `ctrl` before the process dies.
pub fn install(ctrl: std::os::fd::RawFd) {
    CTRL.store(ctrl, Ordering::SeqCst);
    install_alt_stack();
    for sig in FAULT_SIGNALS {
        // SAFETY: a zeroed sigaction is a valid starting point; the handler
        // has the SA_SIGINFO signature and only calls async-signal-safe code.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_fault_signal as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESETHAND;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
    std::panic::set_hook(Box::new(|info| {
        PANICKED.store(true, Ordering::SeqCst);
        let text = info.to_string();
        log::error!("{text}");
        send_ctrl(PdToCtrl::Panic(text).encode().as_bytes());
        std::process::abort();
    }));
}

/// A stack for the signal handler, so that a stack overflow is reported too.
fn install_alt_stack() {
    const SIZE: usize = 64 * 1024;
    let stack = Box::leak(vec![0u8; SIZE].into_boxed_slice());
    let ss = libc::stack_t {
        ss_sp: stack.as_mut_ptr().cast(),
        ss_flags: 0,
        ss_size: SIZE,
    };
    // SAFETY: `ss` describes a leaked buffer that lives for the whole process.
    unsafe { libc::sigaltstack(&ss, std::ptr::null_mut()) };
}

fn send_ctrl(bytes: &[u8]) {
    let fd = CTRL.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: send(2) is async-signal-safe; `bytes` is valid for its length.
        unsafe {
            libc::send(
                fd,
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
    }
}

extern "C" fn on_fault_signal(
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    ctx: *mut libc::c_void,
) {
    if !(sig == libc::SIGABRT && PANICKED.load(Ordering::SeqCst)) {
        let kind = match sig {
            libc::SIGSEGV => FaultKind::MemoryAccess,
            libc::SIGBUS => FaultKind::Bus,
            libc::SIGILL => FaultKind::IllegalInstruction,
            libc::SIGFPE => FaultKind::Arithmetic,
            _ => FaultKind::Abort,
        };
        let addr = if sig == libc::SIGABRT || info.is_null() {
            0
        } else {
            // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
            unsafe { (*info).si_addr() as u64 }
        };
        let pc = pc_of(ctx);
        let mut buf = [0u8; 64];
        let n = format_fault(&mut buf, kind.code(), addr, pc);
        send_ctrl(&buf[..n]);
    }
    // SA_RESETHAND restored the default action. A real fault happens again
    // when the instruction is retried; a signal sent by someone else must be
    // raised again to take effect once this handler returns.
    // SAFETY: raise(3) is async-signal-safe.
    unsafe { libc::raise(sig) };
}

#[cfg(target_arch = "x86_64")]
fn pc_of(ctx: *mut libc::c_void) -> u64 {
    if ctx.is_null() {
        return 0;
    }
    // SAFETY: for SA_SIGINFO handlers the third argument is a ucontext_t.
    unsafe { (*(ctx as *const libc::ucontext_t)).uc_mcontext.gregs[libc::REG_RIP as usize] as u64 }
}

#[cfg(target_arch = "aarch64")]
fn pc_of(ctx: *mut libc::c_void) -> u64 {
    if ctx.is_null() {
        return 0;
    }
    // SAFETY: for SA_SIGINFO handlers the third argument is a ucontext_t.
    unsafe { (*(ctx as *const libc::ucontext_t)).uc_mcontext.pc }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn pc_of(_ctx: *mut libc::c_void) -> u64 {
    0
}

/// Writes `fault CODE 0xADDR 0xPC` without allocating (signal-safe).
fn format_fault(buf: &mut [u8; 64], code: u64, addr: u64, pc: u64) -> usize {
    let mut n = 0;
    let mut put = |b: u8| {
        buf[n] = b;
        n += 1;
    };
    for &b in b"fault " {
        put(b);
    }
    put(b'0' + (code % 10) as u8);
    for v in [addr, pc] {
        put(b' ');
        put(b'0');
        put(b'x');
        for shift in (0..16).rev() {
            let d = ((v >> (shift * 4)) & 0xf) as u8;
            put(if d < 10 { b'0' + d } else { b'a' + d - 10 });
        }
    }
    n
}

/// Performs an injected fault of `kind`: `panic`, `segv`, `abort`, `hang`,
/// `garbage` (random descriptors and bytes into every ring and pool this PD
/// produces, then carry on) or `corrupt [BITS]` (flip that many random bits
/// of the PD's own writable memory, then carry on, if it can).
///
/// Returns the channels to notify afterwards (after `garbage`, those of
/// the rings it wrote).
#[cfg(feature = "inject")]
pub fn inject(kind: &str) -> Vec<u8> {
    log::warn!("injected fault: {kind}");
    let mut words = kind.split_whitespace();
    match words.next().unwrap_or("") {
        "garbage" => return crate::swifi::garbage(),
        "corrupt" => {
            let bits = words.next().and_then(|b| b.parse().ok()).unwrap_or(1);
            crate::swifi::corrupt(bits);
        }
        "panic" => panic!("injected panic"),
        "segv" => {
            // SAFETY: deliberately not sound: this write to an address that is
            // never mapped (below mmap_min_addr) exists to raise SIGSEGV.
            unsafe {
                core::ptr::write_volatile(core::ptr::without_provenance_mut::<u64>(0x8), 0xdead)
            };
        }
        "abort" => std::process::abort(),
        "hang" => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
        other => log::error!("unknown fault kind to inject: {other}"),
    }
    Vec::new()
}

/// Fault injection is compiled out of this build.
#[cfg(not(feature = "inject"))]
pub fn inject(kind: &str) -> Vec<u8> {
    log::warn!("fault injection ({kind}) is not in this build");
    Vec::new()
}

/// The fault a process's wait status shows, when it did not report one.
pub fn from_wait_status(status: libc::c_int) -> FaultInfo {
    let (kind, addr) = if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        let kind = match sig {
            libc::SIGSEGV => FaultKind::MemoryAccess,
            libc::SIGBUS => FaultKind::Bus,
            libc::SIGILL => FaultKind::IllegalInstruction,
            libc::SIGFPE => FaultKind::Arithmetic,
            libc::SIGABRT => FaultKind::Abort,
            _ => FaultKind::Killed,
        };
        (
            kind,
            if kind == FaultKind::Killed {
                sig as u64
            } else {
                0
            },
        )
    } else {
        (FaultKind::Exit, libc::WEXITSTATUS(status) as u64)
    };
    FaultInfo { kind, addr, pc: 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::PdToCtrl;

    #[test]
    fn signal_safe_format_parses_back() {
        let mut buf = [0u8; 64];
        let n = format_fault(&mut buf, 1, 0x8, 0x5555_dead_beef);
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        assert_eq!(
            PdToCtrl::decode(text),
            Some(PdToCtrl::Fault(FaultInfo {
                kind: FaultKind::MemoryAccess,
                addr: 8,
                pc: 0x5555_dead_beef
            }))
        );
    }
}
