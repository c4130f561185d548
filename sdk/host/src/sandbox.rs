//! The system calls a PD process may make once its `init` has returned: a
//! seccomp filter, so that on Linux, as on seL4, a PD reaches the world only
//! through what system.xml gives it. It cannot open a file, create a
//! socket (but for the NIC driver's connection to the host gateway, which
//! it makes again when the gateway restarts: `socket(AF_UNIX)`, `connect`
//! and `dup3`), signal another process or start a program. Anything else
//! fails with `EPERM`.
//!
//! Allowed: I/O on descriptors it already holds (`read`, `write`, `recvfrom`,
//! `sendto`, `recvmsg`, `sendmsg`, `poll`, `close`, `fcntl`), its own memory
//! (`mmap`, `munmap`, `mremap`, `mprotect`, `madvise`, `brk`), signals to
//! itself (`tgkill` of its own process, `rt_sig*`, `sigaltstack`), time
//! (`clock_*`, `nanosleep`, `timerfd_settime`, `timerfd_gettime`),
//! `futex`, `sched_yield`, `getrandom`, `getpid`, `gettid`,
//! `sched_getaffinity`, `restart_syscall`, `exit`, `exit_group`.
//!
//! `AXOLOTL_NO_SECCOMP=1` in `axolotl run`'s environment leaves the filter
//! out (to debug a PD with tools that need more).

use std::io;

/// `AUDIT_ARCH_*` of this build's architecture.
#[cfg(target_arch = "x86_64")]
const ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const ARCH: u32 = 0xc000_00b7;

/// The environment variable that turns the filter off.
pub const DISABLE_ENV: &str = "AXOLOTL_NO_SECCOMP";

fn allowed() -> Vec<libc::c_long> {
    let mut v = vec![
        libc::SYS_read,
        // An injected `corrupt` fault reads /proc/self/maps, opened at start.
        libc::SYS_pread64,
        libc::SYS_write,
        libc::SYS_readv,
        libc::SYS_writev,
        libc::SYS_recvfrom,
        libc::SYS_sendto,
        libc::SYS_recvmsg,
        libc::SYS_sendmsg,
        libc::SYS_ppoll,
        libc::SYS_close,
        libc::SYS_fcntl,
        libc::SYS_mmap,
        libc::SYS_munmap,
        libc::SYS_mremap,
        libc::SYS_mprotect,
        libc::SYS_madvise,
        libc::SYS_brk,
        libc::SYS_rt_sigaction,
        libc::SYS_rt_sigprocmask,
        libc::SYS_rt_sigreturn,
        libc::SYS_sigaltstack,
        libc::SYS_futex,
        libc::SYS_sched_yield,
        libc::SYS_nanosleep,
        libc::SYS_clock_nanosleep,
        libc::SYS_clock_gettime,
        libc::SYS_clock_getres,
        libc::SYS_gettimeofday,
        libc::SYS_timerfd_settime,
        libc::SYS_timerfd_gettime,
        libc::SYS_getrandom,
        libc::SYS_getpid,
        libc::SYS_gettid,
        libc::SYS_sched_getaffinity,
        libc::SYS_exit,
        libc::SYS_exit_group,
        // A call interrupted by a stop (SIGSTOP, then SIGCONT) goes on
        // through this one.
        libc::SYS_restart_syscall,
    ];
    #[cfg(target_arch = "x86_64")]
    v.push(libc::SYS_poll);
    v
}

// Classic BPF, as seccomp takes it.
const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const RET_K: u16 = 0x06;
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_ERRNO: u32 = 0x0005_0000;
/// `struct seccomp_data`: the call's number, the architecture, the first
/// argument's low word.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARG0: u32 = 16;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jeq(k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: JEQ_K,
        jt,
        jf,
        k,
    }
}

/// The filter program: `unix_connect` allows `socket(AF_UNIX, ...)` and
/// `connect`; `pid` is the only process `tgkill` may signal.
fn program(unix_connect: bool, pid: u32) -> Vec<libc::sock_filter> {
    let mut p = vec![
        stmt(LD_W_ABS, OFF_ARCH),
        // Another architecture's calls (a 32-bit entry): kill.
        jeq(ARCH, 1, 0),
        stmt(RET_K, RET_KILL_PROCESS),
        stmt(LD_W_ABS, OFF_NR),
    ];
    for nr in allowed() {
        p.push(jeq(nr as u32, 0, 1));
        p.push(stmt(RET_K, RET_ALLOW));
    }
    if unix_connect {
        // A new connection takes the old one's number (dup3), so the event
        // loop polls it without being told.
        for nr in [libc::SYS_connect, libc::SYS_dup3] {
            p.push(jeq(nr as u32, 0, 1));
            p.push(stmt(RET_K, RET_ALLOW));
        }
        // socket: only AF_UNIX. (Any other call jumps past this block.)
        p.push(jeq(libc::SYS_socket as u32, 0, 4));
        p.push(stmt(LD_W_ABS, OFF_ARG0));
        p.push(jeq(libc::AF_UNIX as u32, 0, 1));
        p.push(stmt(RET_K, RET_ALLOW));
        // Not AF_UNIX; and the number is gone from the accumulator: deny.
        p.push(stmt(RET_K, RET_ERRNO | libc::EPERM as u32));
    }
    // tgkill: only this process (abort and panics signal themselves).
    p.push(jeq(libc::SYS_tgkill as u32, 0, 3));
    p.push(stmt(LD_W_ABS, OFF_ARG0));
    p.push(jeq(pid, 0, 1));
    p.push(stmt(RET_K, RET_ALLOW));
    // Another process, and every call not allowed above: EPERM.
    p.push(stmt(RET_K, RET_ERRNO | libc::EPERM as u32));
    p
}

/// Installs the filter for this process, for good (it is inherited and
/// cannot be removed). `unix_connect`: the process may connect to a local
/// socket (the NIC driver's gateway).
pub fn install(unix_connect: bool) -> io::Result<()> {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() } as u32;
    let prog = program(unix_connect, pid);
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: plain prctl calls; the filter program outlives them (the
    // kernel copies it).
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER as libc::c_ulong,
            &fprog as *const libc::sock_fprog,
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program over a call the way the kernel does.
    fn verdict(p: &[libc::sock_filter], arch: u32, nr: libc::c_long, arg0: u32) -> u32 {
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let f = p[pc];
            match f.code {
                LD_W_ABS => {
                    acc = match f.k {
                        OFF_NR => nr as u32,
                        OFF_ARCH => arch,
                        OFF_ARG0 => arg0,
                        k => panic!("load of offset {k}"),
                    };
                    pc += 1;
                }
                JEQ_K => pc += 1 + usize::from(if acc == f.k { f.jt } else { f.jf }),
                RET_K => return f.k,
                c => panic!("opcode {c:#x}"),
            }
        }
    }

    const EPERM: u32 = RET_ERRNO | libc::EPERM as u32;

    #[test]
    fn the_runtime_s_calls_pass_and_the_world_stays_out() {
        for unix in [false, true] {
            let p = program(unix, 42);
            assert!(p.len() < 256);
            let v = |nr, arg0| verdict(&p, ARCH, nr, arg0);
            for nr in [
                libc::SYS_read,
                libc::SYS_pread64,
                libc::SYS_sendto,
                libc::SYS_mmap,
                libc::SYS_restart_syscall,
                libc::SYS_exit_group,
            ] {
                assert_eq!(v(nr, 0), RET_ALLOW, "{nr}");
            }
            // No files, no programs, no other processes.
            for nr in [
                libc::SYS_openat,
                libc::SYS_execve,
                libc::SYS_kill,
                libc::SYS_ioctl,
            ] {
                assert_eq!(v(nr, 0), EPERM, "{nr}");
            }
            assert_eq!(v(libc::SYS_tgkill, 42), RET_ALLOW);
            assert_eq!(v(libc::SYS_tgkill, 43), EPERM);
            // Sockets only for the NIC driver's gateway, and only local.
            let unix_socket = v(libc::SYS_socket, libc::AF_UNIX as u32);
            assert_eq!(unix_socket, if unix { RET_ALLOW } else { EPERM });
            assert_eq!(v(libc::SYS_socket, libc::AF_INET as u32), EPERM);
            for nr in [libc::SYS_connect, libc::SYS_dup3] {
                assert_eq!(v(nr, 0), if unix { RET_ALLOW } else { EPERM }, "{nr}");
            }
            // Another architecture's entry: killed.
            assert_eq!(
                verdict(&p, 0x4000_0003, libc::SYS_read, 0),
                RET_KILL_PROCESS
            );
        }
    }
}
