//! `axolotl run`: the host's stand-in for the seL4 kernel and the Microkit
//! loader. It owns every region and channel, starts each PD as a process,
//! reaps faulted ones, hands their faults to the parent PD, and obeys the
//! parent's restart and stop requests. It never runs PD logic itself.

use crate::boot::{Boot, ChanSpec, MapSpec, Produced};
use crate::control::{CtrlToPd, PdToCtrl};
use crate::page::{StatusPage, PAGE_BYTES};
use crate::service::Service;
use crate::status::{FaultStatus, PdStatus};
use crate::sys;
use crate::wire::{error_code, Packet, MAX_PACKET};
use axolotl_sdk::{Child, FaultInfo};
use axolotl_sysdesc::System;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// How to run a system.
#[derive(Clone, Debug)]
pub struct Options {
    /// Where the control socket for `axolotl status` / `inject` goes.
    pub control: PathBuf,
    /// Where the PD programs are (`program_image="x.elf"` runs `x` from here).
    pub pd_dir: PathBuf,
    /// Fingerprint of the description's text ([`axolotl_sysdesc::fingerprint`]).
    pub fingerprint: u64,
    /// Threads of `axolotl run` supervised beside the PDs (the host
    /// gateway): shown by `status`, faulted by `inject`; one that fails
    /// for good ends the run with its error.
    pub services: Vec<Service>,
    /// Keep a spare process of every PD started and waiting, so that a
    /// restart need not wait for fork, exec and dynamic linking.
    pub spares: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Starting,
    Running,
    Faulted,
    Stopped,
    Dead,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Running => "running",
            State::Faulted => "faulted",
            State::Stopped => "stopped",
            State::Dead => "dead",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum After {
    Restart,
    Stop,
    Shutdown,
}

struct End {
    id: u8,
    fd: RawFd,
    pp: bool,
    notify: bool,
    callee: bool,
    parent: bool,
}

struct Proc {
    name: String,
    program: PathBuf,
    parent: Option<usize>,
    child_id: Option<u8>,
    ctrl_sup: OwnedFd,
    ctrl_pd: OwnedFd,
    page_fd: OwnedFd,
    page: &'static StatusPage,
    maps: Vec<MapSpec>,
    ends: Vec<End>,
    produces: Vec<Produced>,
    pid: Option<i32>,
    state: State,
    restarts: u32,
    /// Its restart policy's give-up budget: faults, window in ms.
    budget: Option<(u32, u64)>,
    ever_up: bool,
    last_fault: Option<(FaultInfo, Option<String>, u64)>,
    fault_at: Option<u64>,
    last_recovery_ns: Option<u64>,
    /// When the last fault happened, kept until the new incarnation's first
    /// `notified`, to measure recovery up to then.
    notified_since: Option<u64>,
    report: Option<(FaultInfo, Option<String>)>,
    after_kill: Option<After>,
    /// A process of this PD's program, started but waiting to take over.
    spare: Option<Spare>,
}

/// A started PD process that waits, owning nothing, for its start signal.
struct Spare {
    pid: i32,
    /// The write end of its start pipe: a byte starts it, closing ends it.
    go: OwnedFd,
}

struct Supervisor {
    procs: Vec<Proc>,
    /// Every region's descriptor, and its read-only twin, open for as long
    /// as PDs may be (re)started with them.
    _regions: Vec<OwnedFd>,
    _channels: Vec<(OwnedFd, OwnedFd)>,
    t0: u64,
    fingerprint: u64,
    mismatch: Option<String>,
    all_up_logged: bool,
    shutting_down: bool,
    services: Vec<Service>,
    /// Stalled PDs: (process index, its pid, when to let it run on).
    stalls: Vec<(usize, i32, u64)>,
    /// Keep spares ([`Options::spares`]).
    spares: bool,
}

/// Finds the host program for every PD; reports every missing one.
pub fn programs(system: &System, pd_dir: &Path) -> Result<Vec<PathBuf>, Vec<String>> {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for pd in &system.pds {
        let stem = pd
            .program_image
            .strip_suffix(".elf")
            .unwrap_or(&pd.program_image);
        let path = pd_dir.join(stem);
        if path.is_file() {
            found.push(path);
        } else {
            missing.push(format!(
                "{}:{}:{}: <protection_domain name=\"{}\">: no host program '{}' in {} for \
                 program_image '{}' (build the workspace: `cargo build --release`)",
                system.file,
                pd.pos.line,
                pd.pos.col,
                pd.name,
                stem,
                pd_dir.display(),
                pd.program_image
            ));
        }
    }
    if missing.is_empty() {
        Ok(found)
    } else {
        Err(missing)
    }
}

/// Runs `system` until SIGINT, SIGTERM or SIGHUP. Every PD process is gone
/// when this returns.
pub fn run(system: &System, opts: &Options) -> Result<(), String> {
    let programs = programs(system, &opts.pd_dir).map_err(|m| m.join("\n"))?;
    let signals = block_signals()?;
    let listener = bind_control(&opts.control)?;
    let mut sup = Supervisor::new(system, programs, opts.fingerprint)?;
    sup.services = opts.services.clone();
    sup.spares = opts.spares;
    log::info!(
        "starting {} PDs from {}; control socket {}; Ctrl-C stops",
        sup.procs.len(),
        system.file,
        opts.control.display()
    );
    for i in 0..sup.procs.len() {
        sup.spawn(i);
    }
    let result = sup.serve(signals.as_raw_fd(), &listener);
    sup.shutdown();
    let _ = std::fs::remove_file(&opts.control);
    result
}

fn block_signals() -> Result<OwnedFd, String> {
    // SAFETY: sigset manipulation on a local set, then a new signalfd.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGCHLD, libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        if fd < 0 {
            return Err(format!("signalfd: {}", std::io::Error::last_os_error()));
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

fn bind_control(path: &Path) -> Result<UnixListener, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(format!(
                "another `axolotl run` is serving {}; stop it first or pass --control",
                path.display()
            ));
        }
        let _ = std::fs::remove_file(path);
    }
    let l = UnixListener::bind(path).map_err(|e| format!("{}: {e}", path.display()))?;
    l.set_nonblocking(true)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(l)
}

/// The rings PD `i` produces, at the addresses it maps them: where an
/// injected `garbage` fault writes.
fn produced_rings(system: &System, i: usize) -> Vec<Produced> {
    let vaddr = |region: &str| {
        system.pds[i]
            .maps
            .iter()
            .find(|m| m.region == region && m.perms.write)
            .map(|m| m.vaddr as usize)
    };
    let my_id = |channel: usize| {
        system.channels[channel]
            .ends
            .iter()
            .find(|e| e.pd == i)
            .map(|e| e.id)
    };
    let mut out = Vec::new();
    for r in system.rings.iter().filter(|r| r.producer == i) {
        if let (Some(ring), Some(channel)) = (vaddr(&r.region), my_id(r.channel)) {
            out.push(Produced {
                ring,
                slots: r.slots,
                buf_size: 0,
                pool: 0,
                channel,
            });
        }
    }
    for k in &system.links {
        let lay = axolotl_sysdesc::link_layout(k.buffers, k.buf_size);
        let (Some(base), Some(channel)) = (vaddr(&k.region), my_id(k.channel)) else {
            continue;
        };
        if k.sender == i {
            out.push(Produced {
                ring: base + lay.active as usize,
                slots: k.buffers,
                buf_size: k.buf_size,
                pool: base + lay.pool as usize,
                channel,
            });
        }
        if k.receiver == i {
            out.push(Produced {
                ring: base + lay.free as usize,
                slots: k.buffers,
                buf_size: k.buf_size,
                pool: 0,
                channel,
            });
        }
    }
    out
}

impl Supervisor {
    fn new(
        system: &System,
        programs: Vec<PathBuf>,
        fingerprint: u64,
    ) -> Result<Supervisor, String> {
        let mut regions = Vec::new();
        // Read-only descriptors of the same regions, for read-only maps: a
        // PD cannot make such a map writable with mprotect, as on seL4.
        let mut read_only = Vec::new();
        for r in &system.regions {
            let fd = sys::memfd(&r.name, r.size).map_err(|e| format!("region {}: {e}", r.name))?;
            read_only.push(
                sys::reopen_read_only(fd.as_raw_fd())
                    .map_err(|e| format!("region {}: a read-only descriptor: {e}", r.name))?,
            );
            regions.push(fd);
        }
        let mut channels = Vec::new();
        for _ in &system.channels {
            channels.push(sys::seqpacket_pair().map_err(|e| format!("channel: {e}"))?);
        }
        let mut procs = Vec::new();
        for (i, (pd, program)) in system.pds.iter().zip(programs).enumerate() {
            let (ctrl_sup, ctrl_pd) = sys::seqpacket_pair().map_err(|e| format!("control: {e}"))?;
            let page_fd = sys::memfd(&format!("{}-status", pd.name), PAGE_BYTES as u64)
                .map_err(|e| format!("status page: {e}"))?;
            let ptr = sys::map_shared(
                page_fd.as_raw_fd(),
                0,
                PAGE_BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
            )
            .map_err(|e| format!("status page: {e}"))?;
            // SAFETY: a fresh page-aligned shared mapping that is never unmapped.
            let page = unsafe { StatusPage::from_ptr(ptr) };
            let maps = pd
                .maps
                .iter()
                .filter_map(|m| {
                    let ri = system.regions.iter().position(|r| r.name == m.region)?;
                    let fd = if m.perms.write {
                        &regions[ri]
                    } else {
                        &read_only[ri]
                    };
                    Some(MapSpec {
                        name: m.region.clone(),
                        fd: fd.as_raw_fd(),
                        vaddr: m.vaddr as usize,
                        size: system.regions[ri].size as usize,
                        write: m.perms.write,
                        exec: m.perms.execute,
                    })
                })
                .collect();
            let produces = produced_rings(system, i);
            // Supervision is the first channel to the parent, as in the
            // generated `PARENT`; a later one (the monitor's board channel to
            // the store) carries notifications the PD's handler must see.
            let parent_channel = pd.parent.and_then(|p| {
                system
                    .channels_of(i)
                    .find(|(_, _, peer)| peer.pd == p)
                    .map(|(ci, _, _)| ci)
            });
            let mut ends = Vec::new();
            for (ci, ch) in system.channels.iter().enumerate() {
                for side in 0..2 {
                    let (me, peer) = (&ch.ends[side], &ch.ends[1 - side]);
                    if me.pd != i {
                        continue;
                    }
                    let fd = if side == 0 {
                        channels[ci].0.as_raw_fd()
                    } else {
                        channels[ci].1.as_raw_fd()
                    };
                    ends.push(End {
                        id: me.id,
                        fd,
                        pp: me.pp,
                        notify: me.notify,
                        callee: peer.pp,
                        parent: parent_channel == Some(ci),
                    });
                }
            }
            procs.push(Proc {
                name: pd.name.clone(),
                program,
                parent: pd.parent,
                child_id: pd.child_id,
                ctrl_sup,
                ctrl_pd,
                page_fd,
                page,
                maps,
                ends,
                produces,
                pid: None,
                state: State::Starting,
                restarts: 0,
                budget: pd
                    .restart
                    .filter(|r| r.max_faults > 0)
                    .map(|r| (r.max_faults, r.window_ms)),
                ever_up: false,
                last_fault: None,
                fault_at: None,
                last_recovery_ns: None,
                notified_since: None,
                report: None,
                after_kill: None,
                spare: None,
            });
        }
        Ok(Supervisor {
            procs,
            _regions: regions.into_iter().chain(read_only).collect(),
            _channels: channels,
            t0: sys::monotonic_ns(),
            fingerprint,
            mismatch: None,
            all_up_logged: false,
            shutting_down: false,
            services: Vec::new(),
            stalls: Vec::new(),
            spares: false,
        })
    }

    /// Starts PD `i`: hands over to its spare if it has one, else starts a
    /// process of its program.
    fn spawn(&mut self, i: usize) {
        let p = &mut self.procs[i];
        p.page.reset_for_start();
        if let Some(spare) = p.spare.take() {
            if sys::write_all_once(spare.go.as_raw_fd(), b"g") {
                p.pid = Some(spare.pid);
                p.state = State::Starting;
                log::debug!("{} taken over by its spare, pid {}", p.name, spare.pid);
                return;
            }
            // It died waiting (reaped or about to be): start afresh.
            log::warn!("the spare of {} (pid {}) is gone", p.name, spare.pid);
        }
        match self.launch(i, None) {
            Ok(pid) => {
                let p = &mut self.procs[i];
                p.pid = Some(pid);
                p.state = State::Starting;
                log::debug!("started {} as pid {pid}", p.name);
            }
            Err(e) => {
                let p = &mut self.procs[i];
                log::error!("cannot start {} ({}): {e}", p.name, p.program.display());
                p.state = State::Dead;
            }
        }
    }

    /// Starts a spare of PD `i` unless it has one or spares are off.
    fn spawn_spare(&mut self, i: usize) {
        if !self.spares || self.shutting_down || self.procs[i].spare.is_some() {
            return;
        }
        let (read, write) = match sys::pipe() {
            Ok(p) => p,
            Err(e) => {
                log::warn!("no spare for {}: pipe: {e}", self.procs[i].name);
                return;
            }
        };
        match self.launch(i, Some(read.as_raw_fd())) {
            Ok(pid) => {
                log::debug!("spare of {} waits as pid {pid}", self.procs[i].name);
                self.procs[i].spare = Some(Spare { pid, go: write });
            }
            Err(e) => log::warn!("no spare for {}: {e}", self.procs[i].name),
        }
        // The child has its copy of the read end; ours closes here.
        drop(read);
    }

    /// Starts a process of PD `i`'s program with its boot description
    /// (a spare if `go` is its start pipe); its pid.
    fn launch(&self, i: usize, go: Option<RawFd>) -> std::io::Result<i32> {
        let p = &self.procs[i];
        let boot = Boot {
            name: p.name.clone(),
            ctrl: p.ctrl_pd.as_raw_fd(),
            page: p.page_fd.as_raw_fd(),
            t0: self.t0,
            system: self.fingerprint,
            maps: p.maps.clone(),
            chans: p
                .ends
                .iter()
                .map(|e| ChanSpec {
                    id: e.id,
                    fd: e.fd,
                    pp: e.pp,
                    notify: e.notify,
                    callee: e.callee,
                    parent: e.parent,
                })
                .collect(),
            produces: p.produces.clone(),
            go,
        };
        let mut fds: Vec<RawFd> = vec![boot.ctrl, boot.page];
        fds.extend(boot.maps.iter().map(|m| m.fd));
        fds.extend(boot.chans.iter().map(|c| c.fd));
        fds.extend(go);
        // SAFETY: getpid has no preconditions.
        let me = unsafe { libc::getpid() };
        let mut cmd = Command::new(&p.program);
        cmd.env(crate::boot::ENV, boot.encode())
            .stdin(Stdio::null())
            .process_group(0);
        // SAFETY: the closure runs between fork and exec and calls only
        // async-signal-safe functions (fcntl, sigprocmask, prctl, getppid,
        // _exit) on memory it owns; it does not allocate.
        unsafe {
            cmd.pre_exec(move || {
                for &fd in &fds {
                    sys::clear_cloexec(fd)?;
                }
                let mut empty: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut empty);
                libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != me {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        cmd.spawn().map(|child| child.id() as i32)
    }

    fn serve(&mut self, sigfd: RawFd, listener: &UnixListener) -> Result<(), String> {
        loop {
            // Poll set: signals, control listener, every PD's control socket,
            // and the channel ends of PDs that will never run again.
            let mut pfds = vec![pollin(sigfd), pollin(listener.as_raw_fd())];
            pfds.extend(self.services.iter().map(|s| pollin(s.wake_fd())));
            let first_pd = pfds.len();
            let mut who = Vec::new();
            for (i, p) in self.procs.iter().enumerate() {
                pfds.push(pollin(p.ctrl_sup.as_raw_fd()));
                who.push((i, None));
                if matches!(p.state, State::Stopped | State::Dead) {
                    for e in p.ends.iter().filter(|e| e.callee) {
                        pfds.push(pollin(e.fd));
                        who.push((i, Some(e.fd)));
                    }
                }
            }
            // With services to watch for hangs, look at least once a second;
            // wake for the next stall that ends.
            let mut timeout: i32 = if self.services.is_empty() { -1 } else { 1000 };
            if let Some(at) = self.stalls.iter().map(|s| s.2).min() {
                let ms = at.saturating_sub(sys::monotonic_ns()).div_ceil(1_000_000);
                let ms = i32::try_from(ms).unwrap_or(i32::MAX);
                timeout = if timeout < 0 { ms } else { timeout.min(ms) };
            }
            sys::poll(&mut pfds, timeout).map_err(|e| format!("poll: {e}"))?;
            if pfds[0].revents != 0 && self.on_signals(sigfd) {
                return Ok(());
            }
            if let Some(why) = self.services.iter().find_map(Service::failure) {
                return Err(format!("{why}; stopping every PD"));
            }
            if pfds[1].revents != 0 {
                self.on_control_client(listener);
            }
            for (k, &(i, fd)) in who.iter().enumerate() {
                if pfds[k + first_pd].revents == 0 {
                    continue;
                }
                match fd {
                    None => self.on_ctrl(i),
                    Some(fd) => refuse_calls(fd),
                }
            }
            self.end_stalls();
            if let Some(msg) = self.mismatch.take() {
                return Err(msg);
            }
        }
    }

    /// Lets stalled PDs whose time is up run on (unless they died or were
    /// restarted meanwhile: then the pid is another's or none).
    fn end_stalls(&mut self) {
        let now = sys::monotonic_ns();
        let (due, left): (Vec<_>, Vec<_>) = self.stalls.drain(..).partition(|s| s.2 <= now);
        self.stalls = left;
        for (i, pid, _) in due {
            if self.procs[i].pid == Some(pid) {
                // SAFETY: signalling a child process we started and have not reaped.
                unsafe { libc::kill(pid, libc::SIGCONT) };
                log::info!("{} runs on after its stall", self.procs[i].name);
            }
        }
    }

    /// Stops PD `i` for `ms` milliseconds (SIGSTOP; SIGCONT when the time
    /// is up): a slow PD, not a dead one. Its heartbeats go unanswered
    /// meanwhile, so a stall longer than its heartbeat limit is a hang,
    /// and the monitor restarts it.
    fn stall(&mut self, i: usize, ms: u64) -> String {
        let p = &self.procs[i];
        let Some(pid) = p.pid else {
            return format!("error: {} is {}, not running\n", p.name, p.state.name());
        };
        // SAFETY: signalling a child process we started and have not reaped.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        let until = sys::monotonic_ns().saturating_add(ms.saturating_mul(1_000_000));
        self.stalls.push((i, pid, until));
        log::warn!("{} stalled for {ms} ms", p.name);
        format!("injected stall into {}\n", p.name)
    }

    /// Handles pending signals; true means shut down.
    fn on_signals(&mut self, sigfd: RawFd) -> bool {
        let mut stop = false;
        loop {
            // SAFETY: a zeroed signalfd_siginfo is valid to read into.
            let mut si: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            // SAFETY: reading at most `size` bytes into `si`.
            let n =
                unsafe { libc::read(sigfd, (&mut si as *mut libc::signalfd_siginfo).cast(), size) };
            if n != size as isize {
                break;
            }
            match si.ssi_signo as libc::c_int {
                libc::SIGCHLD => {}
                s => {
                    log::info!("signal {s}: stopping every PD");
                    stop = true;
                }
            }
        }
        self.reap();
        stop
    }

    fn reap(&mut self) {
        loop {
            let mut status = 0;
            // SAFETY: waitpid writes the status into a local.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return;
            }
            if let Some(i) = self.procs.iter().position(|p| p.pid == Some(pid)) {
                self.on_exit(i, status);
            } else if let Some(p) = self
                .procs
                .iter_mut()
                .find(|p| p.spare.as_ref().is_some_and(|s| s.pid == pid))
            {
                log::warn!("the spare of {} (pid {pid}) ended while waiting", p.name);
                p.spare = None;
            }
        }
    }

    fn on_exit(&mut self, i: usize, status: libc::c_int) {
        self.on_ctrl(i);
        let now = sys::monotonic_ns();
        let p = &mut self.procs[i];
        let pid = p.pid.take().unwrap_or(0);
        // The call it was serving will never be answered: tell the caller.
        if let Some((ch, seq)) = p.page.in_call() {
            if let Some(e) = p.ends.iter().find(|e| u64::from(e.id) == ch && e.callee) {
                let mut buf = [0u8; MAX_PACKET];
                let n = Packet::Error(seq, error_code::PEER_RESTARTED).encode(&mut buf);
                let _ = sys::send_nonblocking(e.fd, &buf[..n]);
            }
            p.page.leave_call();
        }
        match p.after_kill.take() {
            Some(After::Restart) => {
                p.restarts += 1;
                log::info!("restarting {} (restart #{})", p.name, p.restarts);
                self.spawn(i);
                return;
            }
            Some(After::Stop) => {
                p.state = State::Stopped;
                log::warn!("{} stopped", p.name);
                return;
            }
            Some(After::Shutdown) => {
                p.state = State::Dead;
                return;
            }
            None => {}
        }
        if self.shutting_down {
            return;
        }
        let (info, message) = p
            .report
            .take()
            .unwrap_or_else(|| (crate::fault::from_wait_status(status), None));
        let detail = message
            .as_deref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        log::error!("{} (pid {pid}) faulted: {info}{detail}", p.name);
        p.last_fault = Some((info, message, now));
        p.fault_at = Some(now);
        p.notified_since = Some(now);
        let (parent, child_id) = (p.parent, p.child_id);
        match (parent, child_id) {
            (Some(parent), Some(id)) => {
                p.state = State::Faulted;
                let msg = CtrlToPd::ChildFault(Child::new(id), info).encode();
                let fd = self.procs[parent].ctrl_sup.as_raw_fd();
                if sys::send_blocking(fd, msg.as_bytes()).is_err() {
                    log::error!(
                        "cannot tell {} that {} faulted",
                        self.procs[parent].name,
                        self.procs[i].name
                    );
                }
            }
            _ => {
                p.state = State::Dead;
                log::error!("{} has no parent to restart it; it stays down", p.name);
            }
        }
    }

    fn on_ctrl(&mut self, i: usize) {
        let mut buf = [0u8; 1024];
        while let Ok(Some(n)) = sys::recv_nonblocking(self.procs[i].ctrl_sup.as_raw_fd(), &mut buf)
        {
            if n == 0 {
                return;
            }
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            match PdToCtrl::decode(&text) {
                Some(PdToCtrl::Up) => self.on_up(i),
                Some(PdToCtrl::Mismatch) => {
                    self.mismatch = Some(format!(
                        "{}: the program {} was built from another system description; rebuild \
                         (`cargo build --release`, or start through `cargo run`, which rebuilds \
                         for the file it runs) or run the file it was built from",
                        self.procs[i].name,
                        self.procs[i].program.display()
                    ));
                }
                Some(PdToCtrl::Fault(info)) => self.procs[i].report = Some((info, None)),
                Some(PdToCtrl::Panic(m)) => {
                    let info = FaultInfo {
                        kind: axolotl_sdk::FaultKind::Panic,
                        addr: 0,
                        pc: 0,
                    };
                    self.procs[i].report = Some((info, Some(m)));
                }
                Some(PdToCtrl::Restart(id)) => self.on_child_request(i, id, After::Restart),
                Some(PdToCtrl::Stop(id)) => self.on_child_request(i, id, After::Stop),
                None => log::warn!("{}: malformed control message ignored", self.procs[i].name),
            }
        }
    }

    fn on_up(&mut self, i: usize) {
        let now = sys::monotonic_ns();
        let p = &mut self.procs[i];
        p.state = State::Running;
        p.ever_up = true;
        if let Some(at) = p.fault_at.take() {
            let ns = now.saturating_sub(at);
            p.last_recovery_ns = Some(ns);
            log::info!(
                "{} is serving again, {:.3} ms after its fault",
                p.name,
                ns as f64 / 1e6
            );
        }
        if !self.all_up_logged && self.procs.iter().all(|p| p.ever_up) {
            self.all_up_logged = true;
            let ms = now.saturating_sub(self.t0) as f64 / 1e6;
            log::info!(
                "system up: all {} PDs running ({ms:.1} ms)",
                self.procs.len()
            );
            // Spares start once the system is up, not competing with its boot.
            for k in 0..self.procs.len() {
                if self.procs[k].parent.is_some() {
                    self.spawn_spare(k);
                }
            }
        } else if self.all_up_logged && self.procs[i].parent.is_some() {
            self.spawn_spare(i);
        }
    }

    fn on_child_request(&mut self, parent: usize, id: u8, what: After) {
        let Some(c) = self
            .procs
            .iter()
            .position(|p| p.parent == Some(parent) && p.child_id == Some(id))
        else {
            log::warn!(
                "{} asked about child {id}, which it does not have",
                self.procs[parent].name
            );
            return;
        };
        if self.shutting_down {
            return;
        }
        let parent_name = self.procs[parent].name.clone();
        let p = &mut self.procs[c];
        match p.pid {
            Some(pid) => {
                // The parent gives up on a child that is still running: it
                // stopped answering (the monitor's only reason to do this).
                let now = sys::monotonic_ns();
                let info = FaultInfo {
                    kind: axolotl_sdk::FaultKind::Hang,
                    addr: 0,
                    pc: 0,
                };
                // Where it is, for whoever debugs the hang: the kernel's
                // view of its thread (state, and the system call it is in).
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let state = stat
                    .rsplit(") ")
                    .next()
                    .and_then(|r| r.split(' ').next())
                    .unwrap_or("?");
                let syscall =
                    std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
                log::error!(
                    "{} (pid {pid}) is hung: its parent {parent_name} stops it (state {state}, syscall {})",
                    p.name,
                    syscall.split(' ').next().unwrap_or("?").trim()
                );
                p.last_fault = Some((info, None, now));
                p.fault_at = Some(now);
                p.notified_since = Some(now);
                p.after_kill = Some(what);
                // SAFETY: signalling a child process we started and have not reaped.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            None if what == After::Restart => {
                p.restarts += 1;
                self.spawn(c);
            }
            None => p.state = State::Stopped,
        }
    }

    fn statuses(&self) -> Vec<PdStatus> {
        use std::sync::atomic::Ordering::Relaxed;
        self.procs
            .iter()
            .map(|p| PdStatus {
                name: p.name.clone(),
                state: p.state.name().into(),
                pid: p.pid,
                parent: p.parent.map(|i| self.procs[i].name.clone()),
                restarts: p.restarts,
                max_faults: p.budget.map(|b| b.0),
                window_ms: p.budget.map(|b| b.1),
                last_fault: p.last_fault.as_ref().map(|(f, m, at)| FaultStatus {
                    kind: f.kind.name().into(),
                    addr: format!("{:#x}", f.addr),
                    pc: format!("{:#x}", f.pc),
                    message: m.clone(),
                    at_s: at.saturating_sub(self.t0) as f64 / 1e9,
                }),
                last_recovery_us: p.last_recovery_ns.map(|ns| ns as f64 / 1e3),
                last_recovery_to_notified_us: p.notified_since.and_then(|t| {
                    let first = p.page.first_notified_ns.load(Relaxed);
                    (first > t).then(|| (first - t) as f64 / 1e3)
                }),
                notifications: p.page.notified.load(Relaxed),
                calls: p.page.calls.load(Relaxed),
                heartbeats: p.page.heartbeats.load(Relaxed),
                errors: p.page.errors.load(Relaxed),
                bad_packets: p.page.bad_packets.load(Relaxed),
            })
            .chain(self.services.iter().map(Service::status))
            .collect()
    }

    fn on_control_client(&mut self, listener: &UnixListener) {
        while let Ok((stream, _)) = listener.accept() {
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
            let mut line = String::new();
            // A request is one short line; read no more than 4 KiB of it.
            if BufReader::new((&stream).take(4096))
                .read_line(&mut line)
                .is_err()
            {
                continue;
            }
            let answer = self.answer(line.trim());
            let _ = (&stream).write_all(answer.as_bytes());
        }
    }

    fn answer(&mut self, request: &str) -> String {
        let words: Vec<&str> = request.split_whitespace().collect();
        if let ["inject", name, kind] = words[..] {
            if let Some(s) = self.services.iter().find(|s| s.name() == name) {
                return match s.inject(kind) {
                    Ok(()) => format!("injected {kind} into {name}\n"),
                    Err(e) => format!("error: {e}\n"),
                };
            }
        }
        if let ["inject", pd, "stall", rest @ ..] = &words[..] {
            let ms = match rest {
                [] => 200,
                [ms] => match ms.parse::<u64>() {
                    Ok(ms) if (1..=60_000).contains(&ms) => ms,
                    _ => return format!("error: a stall lasts 1 to 60000 ms, not '{ms}'\n"),
                },
                _ => return "error: usage: inject PD stall [MS]\n".into(),
            };
            return match self.procs.iter().position(|p| p.name == *pd) {
                Some(i) => self.stall(i, ms),
                None => format!("error: no PD named '{pd}'\n"),
            };
        }
        match words[..] {
            ["status"] => {
                serde_json::to_string(&self.statuses()).unwrap_or_else(|e| format!("error: {e}"))
            }
            ["inject", pd, kind, ref rest @ ..] => {
                let kind = match (kind, rest) {
                    ("panic" | "segv" | "abort" | "hang" | "garbage", []) => kind.to_string(),
                    ("corrupt", []) => "corrupt 1".to_string(),
                    ("corrupt", [bits]) => match bits.parse::<u32>() {
                        Ok(b) if (1..=4096).contains(&b) => format!("corrupt {b}"),
                        _ => return format!("error: corrupt flips 1 to 4096 bits, not '{bits}'\n"),
                    },
                    _ => {
                        return format!(
                            "error: unknown fault '{}' (panic, segv, abort, hang, stall [MS], \
                             garbage, corrupt [BITS])\n",
                            words[2..].join(" ")
                        )
                    }
                };
                let Some(p) = self.procs.iter().find(|p| p.name == pd) else {
                    let names: Vec<&str> = self
                        .procs
                        .iter()
                        .map(|p| p.name.as_str())
                        .chain(self.services.iter().map(Service::name))
                        .collect();
                    return format!("error: no PD named '{pd}' (PDs: {})\n", names.join(", "));
                };
                if p.pid.is_none() {
                    return format!("error: {pd} is {}, not running\n", p.state.name());
                }
                let msg = CtrlToPd::Inject(kind.clone()).encode();
                match sys::send_blocking(p.ctrl_sup.as_raw_fd(), msg.as_bytes()) {
                    Ok(()) => format!("injected {kind} into {pd}\n"),
                    Err(e) => format!("error: {e}\n"),
                }
            }
            _ => format!("error: unknown request '{request}'\n"),
        }
    }

    fn shutdown(&mut self) {
        self.shutting_down = true;
        for p in &mut self.procs {
            if let Some(spare) = p.spare.take() {
                // Closing its start pipe ends it; the kill makes sure.
                drop(spare.go);
                // SAFETY: signalling and then waiting for our own child.
                unsafe {
                    libc::kill(spare.pid, libc::SIGKILL);
                    libc::waitpid(spare.pid, &mut 0, 0);
                }
            }
        }
        for p in &mut self.procs {
            if let Some(pid) = p.pid {
                p.after_kill = Some(After::Shutdown);
                // SAFETY: signalling a child process we started and have not reaped.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        for i in 0..self.procs.len() {
            if let Some(pid) = self.procs[i].pid {
                let mut status = 0;
                // SAFETY: waiting for our own child; status is a local.
                unsafe { libc::waitpid(pid, &mut status, 0) };
                self.procs[i].pid = None;
                self.procs[i].state = State::Dead;
            }
        }
        log::info!("all PDs stopped");
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if self
            .procs
            .iter()
            .any(|p| p.pid.is_some() || p.spare.is_some())
        {
            self.shutdown();
        }
    }
}

fn pollin(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// A PD that will not run again gets no calls: answer each at once.
fn refuse_calls(fd: RawFd) {
    let mut buf = [0u8; MAX_PACKET];
    while let Ok(Some(n)) = sys::recv_nonblocking(fd, &mut buf) {
        if n == 0 {
            return;
        }
        if let Some(Packet::Call(seq, _)) = Packet::decode(&buf[..n]) {
            let mut out = [0u8; MAX_PACKET];
            let len = Packet::Error(seq, error_code::PEER_STOPPED).encode(&mut out);
            let _ = sys::send_nonblocking(fd, &out[..len]);
        }
    }
}
