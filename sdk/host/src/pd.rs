//! The runtime inside one PD process: maps its regions, reports its faults,
//! and drives its [`Handler`] from its channels, as Microkit's event loop does.

use crate::boot::{Boot, ChanSpec};
use crate::control::{CtrlToPd, PdToCtrl};
use crate::page::{StatusPage, PAGE_BYTES};
use crate::sys;
use crate::wire::{error_code, Packet, MAX_PACKET};
use axolotl_sdk::{
    CallError, Channel, ChannelSet, Child, FaultInfo, Handler, Instant, Message, Os, MAX_CHANNELS,
};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;

struct Chan {
    fd: OwnedFd,
    spec: ChanSpec,
}

/// The host back-end of [`Os`] for one PD process.
pub struct HostOs {
    name: String,
    chans: Vec<Option<Chan>>,
    ctrl: OwnedFd,
    page: &'static StatusPage,
    pending: ChannelSet,
    seq: u32,
    /// Device models: the interrupt, the fd, and whether it is a counter
    /// (timerfd) to read empty on each interrupt.
    devices: Vec<(Channel, RawFd, bool)>,
}

/// What a PD's `init` gets on the host: the [`Os`], and host device models.
pub struct Init<'a> {
    os: &'a mut HostOs,
}

impl Init<'_> {
    /// This PD's name in the system description.
    pub fn name(&self) -> &str {
        &self.os.name
    }

    /// The platform, for calls made during start-up (reloading state).
    pub fn os(&mut self) -> &mut dyn Os {
        self.os
    }

    /// The host model of a timer device: a one-shot alarm whose expiry is
    /// delivered as a notification on `irq` (the PD's `<irq>` id for its timer).
    pub fn alarm(&mut self, irq: Channel) -> std::io::Result<Alarm> {
        let fd = sys::timerfd()?;
        self.os.devices.push((irq, fd.as_raw_fd(), true));
        Ok(Alarm { fd })
    }
}

impl Init<'_> {
    /// The host model of a device interrupt: whenever `fd` is readable,
    /// `irq` (the PD's `<irq>` id for the device) is notified. The device
    /// keeps it readable until drained, as a level-triggered interrupt
    /// stays raised. `fd` must stay open for the life of the process.
    pub fn device_irq(&mut self, irq: Channel, fd: RawFd) {
        self.os.devices.push((irq, fd, false));
    }
}

/// A one-shot alarm on CLOCK_MONOTONIC (see [`Init::alarm`]).
pub struct Alarm {
    fd: OwnedFd,
}

impl Alarm {
    /// The current time on the clock every PD shares.
    pub fn now(&self) -> Instant {
        Instant(sys::monotonic_ns())
    }

    /// Fire at `at` (at once if past); `None` disarms.
    pub fn set(&mut self, at: Option<Instant>) {
        if let Err(e) = sys::timerfd_set(self.fd.as_raw_fd(), at.map(Instant::as_nanos)) {
            log::error!("cannot arm the timer: {e}");
        }
    }
}

impl HostOs {
    fn chan(&self, ch: Channel) -> Option<&Chan> {
        self.chans.get(ch.index() as usize)?.as_ref()
    }

    fn ctrl_send(&self, msg: &PdToCtrl) {
        let text = msg.encode();
        if let Err(e) = sys::send_blocking(self.ctrl.as_raw_fd(), text.as_bytes()) {
            // The supervisor is gone: nothing can run without it.
            eprintln!("lost the supervisor ({e}); exiting");
            std::process::exit(1);
        }
    }

    /// Takes the heartbeat pings queued on the parent channel and answers
    /// them, leaving anything else for the event loop.
    fn answer_heartbeats(&mut self, ch: Channel, fd: RawFd) {
        let mut buf = [0u8; MAX_PACKET];
        while sys::peek_first_byte(fd) == Some(b'N') {
            if let Ok(Some(1)) = sys::recv_nonblocking(fd, &mut buf) {
                self.page.heartbeats.fetch_add(1, Ordering::Relaxed);
                self.notify(ch);
            } else {
                return;
            }
        }
    }

    fn send(&self, fd: RawFd, p: &Packet) -> std::io::Result<bool> {
        let mut buf = [0u8; MAX_PACKET];
        let n = p.encode(&mut buf);
        sys::send_nonblocking(fd, &buf[..n])
    }
}

impl Os for HostOs {
    fn notify(&mut self, channel: Channel) {
        match self.chan(channel) {
            Some(c) if c.spec.notify => {
                // A full queue means the peer has notifications pending already.
                if let Err(e) = self.send(c.fd.as_raw_fd(), &Packet::Notify) {
                    log::warn!("notify on channel {}: {e}", channel.index());
                }
            }
            _ => log::warn!("notify on channel {} is not permitted", channel.index()),
        }
    }

    fn keepalive(&mut self) {
        let parent = self
            .chans
            .iter()
            .flatten()
            .find(|c| c.spec.parent)
            .map(|c| (Channel::new(c.spec.id), c.fd.as_raw_fd()));
        if let Some((ch, fd)) = parent {
            self.answer_heartbeats(ch, fd);
        }
    }

    fn call(&mut self, channel: Channel, msg: &Message) -> Result<Message, CallError> {
        let fd = match self.chan(channel) {
            Some(c) if c.spec.pp => c.fd.as_raw_fd(),
            _ => return Err(CallError::NotPermitted),
        };
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut buf = [0u8; MAX_PACKET];
        let n = Packet::Call(seq, msg.clone()).encode(&mut buf);
        if sys::send_blocking(fd, &buf[..n]).is_err() {
            return Err(CallError::PeerStopped);
        }
        // While waiting, keep answering the parent's heartbeats: this PD's
        // code is not stuck, it waits for a neighbour (which has its own
        // heartbeat, if it is the one that hangs).
        let calls_parent = self.chan(channel).is_some_and(|c| c.spec.parent);
        let parent = self
            .chans
            .iter()
            .flatten()
            .find(|c| c.spec.parent && c.fd.as_raw_fd() != fd)
            .map(|c| (Channel::new(c.spec.id), c.fd.as_raw_fd()));
        loop {
            let mut pfds = [
                libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: parent.map_or(-1, |p| p.1),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            if let Err(e) = sys::poll(&mut pfds, -1) {
                log::error!("waiting for a reply: {e}");
                return Err(CallError::PeerStopped);
            }
            if let Some((pch, pfd)) = parent.filter(|_| pfds[1].revents != 0) {
                self.answer_heartbeats(pch, pfd);
                if pfds[0].revents == 0 {
                    continue;
                }
            }
            while let Some(len) = sys::recv_nonblocking(fd, &mut buf).unwrap_or(Some(0)) {
                if len == 0 {
                    return Err(CallError::PeerStopped);
                }
                match Packet::decode(&buf[..len]) {
                    Some(Packet::Reply(s, reply)) if s == seq => return Ok(reply),
                    Some(Packet::Error(s, code)) if s == seq => {
                        return Err(match code {
                            error_code::PEER_RESTARTED => CallError::PeerRestarted,
                            _ => CallError::PeerStopped,
                        })
                    }
                    // The parent's notification is its heartbeat, whether
                    // or not it is the one called: a busy parent that
                    // answers late must not find this PD silent.
                    Some(Packet::Notify) if calls_parent => {
                        self.page.heartbeats.fetch_add(1, Ordering::Relaxed);
                        self.notify(channel);
                    }
                    Some(Packet::Notify) => self.pending.insert(channel),
                    // Stale answers to calls of an earlier incarnation.
                    Some(Packet::Reply(..) | Packet::Error(..)) => {}
                    Some(Packet::Call(..)) | None => {
                        self.page.bad_packets.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    fn irq_ack(&mut self, _channel: Channel) {
        // Host device models re-arm themselves.
    }

    fn now(&self) -> Instant {
        Instant(sys::monotonic_ns())
    }

    fn restart_child(&mut self, child: Child) {
        self.ctrl_send(&PdToCtrl::Restart(child.index()));
    }

    fn stop_child(&mut self, child: Child) {
        self.ctrl_send(&PdToCtrl::Stop(child.index()));
    }
}

/// Runs this process as a PD: reads the boot description left by
/// `axolotl run`, maps regions, builds the handler with `init`, and serves
/// events for ever. `system` is the fingerprint of the system description
/// the PD's constants were generated from (`pd::SYSTEM_FINGERPRINT`); a PD
/// started for another description refuses to run.
pub fn run<H: Handler>(system: u64, init: impl FnOnce(&mut Init<'_>) -> H) -> ! {
    run_checked(Some(system), init)
}

/// Like [`run`], for test programs that serve any system description (they
/// take nothing from generated constants).
pub fn run_any_system<H: Handler>(init: impl FnOnce(&mut Init<'_>) -> H) -> ! {
    run_checked(None, init)
}

fn run_checked<H: Handler>(system: Option<u64>, init: impl FnOnce(&mut Init<'_>) -> H) -> ! {
    let boot = match std::env::var(crate::boot::ENV)
        .map_err(|_| "not set".to_string())
        .and_then(|s| Boot::decode(&s))
    {
        Ok(b) => b,
        Err(e) => {
            let me = std::env::args().next().unwrap_or_default();
            eprintln!(
                "{me}: this program is a protection domain of an Axolotl system and is started by \
                 `axolotl run` ({} {e})",
                crate::boot::ENV
            );
            std::process::exit(2);
        }
    };
    crate::logger::init(&boot.name, boot.t0);
    allocate_large_blocks_lazily();
    if let Some(system) = system.filter(|&s| s != boot.system) {
        log::error!(
            "built from another system description (fingerprint {system:#x}, running {:#x})",
            boot.system
        );
        let msg = PdToCtrl::Mismatch.encode();
        let _ = sys::send_blocking(boot.ctrl, msg.as_bytes());
        std::process::exit(4);
    }
    if let Some(go) = boot.go {
        wait_to_take_over(go);
    }
    match start(&boot) {
        Ok(mut os) => {
            let handler = init(&mut Init { os: &mut os });
            // From here on, only the calls the runtime needs (init opened
            // what the PD owns: its regions, channels, devices).
            if std::env::var_os(crate::sandbox::DISABLE_ENV).is_none() {
                if let Err(e) = crate::sandbox::install(crate::nic::connects_to_gateway()) {
                    log::error!(
                        "cannot install the seccomp filter ({e}); set {}=1 to run without it",
                        crate::sandbox::DISABLE_ENV
                    );
                    std::process::exit(3);
                }
            }
            serve(&mut os, handler)
        }
        Err(e) => {
            log::error!("cannot start: {e}");
            std::process::exit(3);
        }
    }
}

/// Blocks of 64 KiB and more (a TCP socket's buffers) come from their own
/// fresh mappings, which are zero already and untouched until used, rather
/// than from the heap, which `calloc` must clear page by page: a restarted
/// TCP PD's listening sockets cost half a millisecond less (3 MiB of
/// buffers it would have written to zero before serving).
fn allocate_large_blocks_lazily() {
    // SAFETY: mallopt changes a malloc tunable; no memory is involved.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 * 1024);
    }
}

/// A spare waits here, started (exec'd, linked, its logger up) but owning
/// nothing yet, until the supervisor writes a byte to take over from a
/// faulted incarnation; it exits when the supervisor closes the pipe instead.
fn wait_to_take_over(go: RawFd) {
    // SAFETY: the supervisor passed this descriptor for us to own.
    let go = unsafe { OwnedFd::from_raw_fd(go) };
    if !sys::read_byte_blocking(go.as_raw_fd()) {
        std::process::exit(0);
    }
}

fn start(boot: &Boot) -> Result<HostOs, String> {
    // SAFETY: the supervisor passed these descriptor numbers for us to own.
    let ctrl = unsafe { OwnedFd::from_raw_fd(boot.ctrl) };
    crate::fault::install(boot.ctrl);
    #[cfg(feature = "inject")]
    crate::swifi::prepare(&boot.produces);

    let page_ptr = sys::map_shared(boot.page, 0, PAGE_BYTES, libc::PROT_READ | libc::PROT_WRITE)
        .map_err(|e| format!("status page: {e}"))?;
    // SAFETY: a fresh page-aligned shared mapping of PAGE_BYTES that is never unmapped.
    let page = unsafe { StatusPage::from_ptr(page_ptr) };

    for m in &boot.maps {
        let mut prot = libc::PROT_READ;
        if m.write {
            prot |= libc::PROT_WRITE;
        }
        if m.exec {
            prot |= libc::PROT_EXEC;
        }
        sys::map_shared(m.fd, m.vaddr, m.size, prot)
            .map_err(|e| format!("cannot map region {} at {:#x}: {e}", m.name, m.vaddr))?;
        // The mapping keeps the memory; the descriptor is no longer needed.
        // SAFETY: the supervisor passed this descriptor for us to own.
        drop(unsafe { OwnedFd::from_raw_fd(m.fd) });
    }

    let mut chans: Vec<Option<Chan>> = (0..MAX_CHANNELS).map(|_| None).collect();
    for c in &boot.chans {
        // SAFETY: the supervisor passed this descriptor for us to own.
        let fd = unsafe { OwnedFd::from_raw_fd(c.fd) };
        chans[c.id as usize] = Some(Chan {
            fd,
            spec: c.clone(),
        });
    }
    Ok(HostOs {
        name: boot.name.clone(),
        chans,
        ctrl,
        page,
        pending: ChannelSet::EMPTY,
        seq: 0,
        devices: Vec::new(),
    })
}

fn serve<H: Handler>(os: &mut HostOs, mut handler: H) -> ! {
    os.ctrl_send(&PdToCtrl::Up);
    let parents: Vec<Channel> = os
        .chans
        .iter()
        .flatten()
        .filter(|c| c.spec.parent)
        .map(|c| Channel::new(c.spec.id))
        .collect();
    for &p in &parents {
        os.notify(p);
    }

    let chan_fds: Vec<(Channel, RawFd)> = os
        .chans
        .iter()
        .flatten()
        .map(|c| (Channel::new(c.spec.id), c.fd.as_raw_fd()))
        .collect();
    let mut pfds: Vec<libc::pollfd> = chan_fds
        .iter()
        .map(|&(_, fd)| fd)
        .chain(os.devices.iter().map(|&(_, fd, _)| fd))
        .chain([os.ctrl.as_raw_fd()])
        .map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ndev = os.devices.len();
    let mut buf = [0u8; MAX_PACKET];
    loop {
        if !os.pending.is_empty() {
            let set = std::mem::take(&mut os.pending);
            if os.page.notified.fetch_add(1, Ordering::Relaxed) == 0
                || os.page.first_notified_ns.load(Ordering::Relaxed) == 0
            {
                os.page
                    .first_notified_ns
                    .store(sys::monotonic_ns(), Ordering::Release);
            }
            if let Err(e) = handler.notified(os, set) {
                os.page.errors.fetch_add(1, Ordering::Relaxed);
                log::error!("notified: {e}");
            }
            continue;
        }
        if let Err(e) = sys::poll(&mut pfds, -1) {
            log::error!("poll: {e}");
            std::process::exit(1);
        }
        for (i, &(ch, fd)) in chan_fds.iter().enumerate() {
            if pfds[i].revents != 0 {
                drain_channel(os, &mut handler, ch, fd, &mut buf);
            }
        }
        for i in 0..ndev {
            if pfds[chan_fds.len() + i].revents != 0 {
                let (ch, fd, counter) = os.devices[i];
                if counter {
                    sys::drain_counter(fd);
                }
                os.pending.insert(ch);
            }
        }
        if pfds[pfds.len() - 1].revents != 0 {
            drain_control(os, &mut handler);
        }
    }
}

fn drain_channel<H: Handler>(
    os: &mut HostOs,
    handler: &mut H,
    ch: Channel,
    fd: RawFd,
    buf: &mut [u8; MAX_PACKET],
) {
    let Some(spec) = os.chan(ch).map(|c| c.spec.clone()) else {
        return;
    };
    // A bounded batch, so that one busy neighbour cannot starve the others.
    for _ in 0..256 {
        let len = match sys::recv_nonblocking(fd, buf) {
            Ok(Some(0)) => {
                log::error!("channel {} closed: the supervisor is gone", ch.index());
                std::process::exit(1);
            }
            Ok(Some(n)) => n,
            Ok(None) => return,
            Err(e) => {
                log::error!("channel {}: {e}", ch.index());
                return;
            }
        };
        match Packet::decode(&buf[..len]) {
            Some(Packet::Notify) if spec.parent => {
                // A heartbeat: the event loop is alive, so answer at once.
                os.page.heartbeats.fetch_add(1, Ordering::Relaxed);
                os.notify(ch);
            }
            Some(Packet::Notify) => os.pending.insert(ch),
            Some(Packet::Call(seq, msg)) if spec.callee => {
                os.page.enter_call(ch.index(), seq);
                let reply = match handler.protected(os, ch, &msg) {
                    Ok(r) => r,
                    Err(e) => {
                        os.page.errors.fetch_add(1, Ordering::Relaxed);
                        log::error!("protected call on channel {}: {e}", ch.index());
                        Message::error_reply()
                    }
                };
                os.page.calls.fetch_add(1, Ordering::Relaxed);
                if let Ok(false) | Err(_) = os.send(fd, &Packet::Reply(seq, reply)) {
                    log::warn!("channel {}: the caller is not taking its reply", ch.index());
                }
                os.page.leave_call();
            }
            // Answers to calls of an earlier incarnation of this PD.
            Some(Packet::Reply(..) | Packet::Error(..)) => {}
            Some(Packet::Call(..)) | None => {
                let n = os.page.bad_packets.fetch_add(1, Ordering::Relaxed);
                if n < 10 {
                    log::warn!(
                        "channel {}: dropped a malformed or forbidden packet",
                        ch.index()
                    );
                }
            }
        }
    }
}

fn drain_control<H: Handler>(os: &mut HostOs, handler: &mut H) {
    let mut buf = [0u8; 512];
    while let Ok(Some(n)) = sys::recv_nonblocking(os.ctrl.as_raw_fd(), &mut buf) {
        if n == 0 {
            log::error!("the supervisor is gone; exiting");
            std::process::exit(1);
        }
        let text = String::from_utf8_lossy(&buf[..n]);
        match CtrlToPd::decode(&text) {
            Some(CtrlToPd::ChildFault(child, info)) => deliver_fault(os, handler, child, info),
            Some(CtrlToPd::Inject(kind)) => {
                for ch in crate::fault::inject(&kind) {
                    os.notify(Channel::new(ch));
                }
            }
            None => log::warn!("unknown control message '{text}'"),
        }
    }
}

fn deliver_fault<H: Handler>(os: &mut HostOs, handler: &mut H, child: Child, info: FaultInfo) {
    if let Err(e) = handler.fault(os, child, &info) {
        os.page.errors.fetch_add(1, Ordering::Relaxed);
        log::error!("fault handler: {e}");
    }
}
