//! The seL4 back-end of the Axolotl PD model, over rust-sel4's
//! `sel4-microkit`: [`Sel4Os`] implements [`axolotl_sdk::Os`] and [`Adapter`]
//! turns an [`axolotl_sdk::Handler`] into a `sel4_microkit::Handler`, so the
//! same component crates run here and on the Linux host.
//!
//! A PD program (its stack must be declared here: after a reset the PD
//! starts again on the stack its program declares, not on Microkit's):
//!
//! ```ignore
//! axolotl_sdk::include_pd!();
//!
//! #[sel4_microkit::protection_domain(stack_size = 0x10000, heap_size = 0x40000)]
//! fn init() -> impl sel4_microkit::Handler {
//!     axolotl_sel4::adapt(axolotl_sel4::config!(), |os| Component::init(os, ...))
//! }
//! ```
//!
//! What the runtime does for every PD, as the host runtime does:
//! - it notifies its parent once `init` returns ("up"), and answers each
//!   notification from its parent at once (heartbeats) without bothering
//!   the component;
//! - a panic prints its message and then faults on purpose at
//!   [`PANIC_ADDR`], so that the parent's fault handler can tell a panic
//!   from any other memory fault;
//! - every PD is resettable ([`sel4_reset`]): a parent restarts a child at
//!   the child's `_reset` entry, which restores its `.data` and `.bss` and
//!   stack before `_start`; the image build finds the entry in the child's
//!   ELF and generates it into the parent ([`axolotl_sdk::config::ChildEntries`]);
//! - fault injection: `axolotl_inject_null`, `axolotl_inject_panic` and
//!   `axolotl_inject_hang` are entries a parent can start a child at;
//!   `axolotl_inject_swifi` (`garbage`, `corrupt`) one it starts a child at
//!   and then resumes it from where it was (see `swifi`).
#![no_std]

pub mod clock;
#[cfg(target_arch = "x86_64")]
pub mod ioport;
mod logger;
mod patched;
mod swifi;

use axolotl_sdk::config::ChildEntries;
use axolotl_sdk::{
    CallError, Channel, ChannelSet, Child, FaultInfo, FaultKind, InjectKind, Instant, Message, Os,
    MAX_MESSAGE_WORDS, PEER_RESTARTED_LABEL,
};
use sel4_microkit::MessageInfo;

// Linked for its `_reset` entry; every PD image is post-processed by
// `sel4-reset-cli`.
use sel4_reset as _;

pub use logger::ConsoleSink;

/// A panicking PD reads this address, which no PD maps, so that its parent
/// sees a VM fault there and knows it was a panic.
pub const PANIC_ADDR: usize = 0x7a1c_dead_0000;

/// What a PD program tells the runtime about itself: generated constants.
#[derive(Clone, Copy)]
pub struct Config {
    /// The PD's name.
    pub name: &'static str,
    /// The channel to its parent, if it has one.
    pub parent: Option<Channel>,
    /// Its children's entry points.
    pub children: &'static [ChildEntries],
    /// The memory regions it maps (the clock is found among them).
    pub regions: &'static [axolotl_sdk::config::Region],
    /// Whether other PDs call it or it has children.
    pub receives_calls: bool,
    /// The rings it is an end of (`garbage` writes those it produces).
    pub rings: &'static [axolotl_sdk::config::RingConfig],
    /// The links it is an end of.
    pub links: &'static [axolotl_sdk::config::LinkConfig],
}

/// The [`Config`] of the PD whose generated module `pd` is in scope.
#[macro_export]
macro_rules! config {
    () => {
        $crate::Config {
            name: pd::NAME,
            parent: pd::PARENT,
            children: pd::CHILD_ENTRIES,
            regions: pd::region::ALL,
            receives_calls: pd::RECEIVES_CALLS,
            rings: pd::ring::ALL,
            links: pd::link::ALL,
        }
    };
}

/// The platform for a PD on seL4.
pub struct Sel4Os {
    children: &'static [ChildEntries],
    parent: Option<Channel>,
    /// Whether `keepalive` may poll the PD's notification: only where it is
    /// the PD's whole input (a PD that is called waits on an endpoint,
    /// where a poll could take a call it cannot answer in the middle of a
    /// handler).
    can_poll: bool,
    /// Notifications `keepalive` took, for the handler once it returns.
    pending: ChannelSet,
    /// A child running a fault it carries on after (`garbage`, `corrupt`),
    /// with its registers from before: put back when the fault's entry
    /// ends in its trap.
    carrying_on: Option<(Child, sel4::UserContext)>,
}

/// A PD's input capability (Microkit's slot 1): its notification, for a PD
/// that no other PD calls and that has no children.
const INPUT_NOTIFICATION: sel4::cap::Notification = sel4::cap::Notification::from_bits(1);

fn channel(ch: Channel) -> sel4_microkit::Channel {
    sel4_microkit::Channel::new(ch.index() as usize)
}

fn read_message(info: &MessageInfo) -> Message {
    let count = info.count().min(MAX_MESSAGE_WORDS);
    sel4_microkit::with_msg_regs(|mrs| {
        let mut msg = Message::new(info.label());
        for &w in mrs.iter().take(count) {
            // Cannot fail: at most MAX_MESSAGE_WORDS are taken.
            let _ = msg.push(w);
        }
        msg
    })
}

fn write_message(msg: &Message) -> MessageInfo {
    let words = msg.words();
    sel4_microkit::with_msg_regs_mut(|mrs| {
        for (mr, &w) in mrs.iter_mut().zip(words) {
            *mr = w;
        }
    });
    MessageInfo::new(msg.label(), words.len())
}

impl Sel4Os {
    fn entries(&self, child: Child) -> Option<&'static ChildEntries> {
        self.children.iter().find(|e| e.child == child)
    }

    /// Starts `child`'s thread at `pc`, cancelling whatever it was doing
    /// (a fault, a wait, a call), as Microkit's `microkit_pd_restart` does.
    fn start_at(&self, child: Child, pc: usize) -> Result<(), sel4::Error> {
        let mut ctx = sel4::UserContext::default();
        *ctx.pc_mut() = pc as sel4::Word;
        sel4_microkit::Child::new(child.index() as usize)
            .tcb()
            .tcb_write_registers(true, 1, &mut ctx)
    }
}

/// Signals the notification of channel `ch` without rust-sel4's borrow of
/// the IPC buffer (a signal carries no message): safe from code that
/// interrupted a thread in the middle of a system call that holds that
/// borrow (an injected fault the PD carries on after, a log line from it).
pub(crate) fn signal(ch: sel4_microkit::Channel) {
    use sel4::sys::{seL4_MessageInfo, seL4_SendWithMRsWithoutIPCBuffer};
    let cap = ch.notification().bits();
    seL4_SendWithMRsWithoutIPCBuffer(
        cap,
        seL4_MessageInfo::new(0, 0, 0, 0),
        None,
        None,
        None,
        None,
    );
}

impl Os for Sel4Os {
    fn notify(&mut self, ch: Channel) {
        channel(ch).notify();
    }

    fn call(&mut self, ch: Channel, msg: &Message) -> Result<Message, CallError> {
        let reply = channel(ch).pp_call(write_message(msg));
        if reply.label() == PEER_RESTARTED_LABEL && reply.count() == 0 {
            return Err(CallError::PeerRestarted);
        }
        Ok(read_message(&reply))
    }

    fn irq_ack(&mut self, ch: Channel) {
        if let Err(e) = channel(ch).irq_ack() {
            log::error!("irq ack on channel {}: {e}", ch.index());
        }
    }

    fn now(&self) -> Instant {
        Instant(clock::now_ns())
    }

    fn restart_child(&mut self, child: Child) {
        if self.carrying_on.as_ref().is_some_and(|c| c.0 == child) {
            self.carrying_on = None;
        }
        let Some(e) = self.entries(child) else {
            log::error!(
                "cannot restart child {}: no reset entry for it was generated (build the \
                 image with `axolotl image`)",
                child.index()
            );
            return;
        };
        if let Err(err) = self.start_at(child, e.reset) {
            log::error!("cannot restart child {}: {err:?}", child.index());
        }
    }

    fn stop_child(&mut self, child: Child) {
        if let Err(e) = sel4_microkit::Child::new(child.index() as usize)
            .tcb()
            .tcb_suspend()
        {
            log::error!("cannot stop child {}: {e:?}", child.index());
        }
    }

    fn resume_child(&mut self, child: Child) {
        if let Err(e) = sel4_microkit::Child::new(child.index() as usize)
            .tcb()
            .tcb_resume()
        {
            log::error!("cannot resume child {}: {e:?}", child.index());
        }
    }

    fn keepalive(&mut self) {
        if !self.can_poll {
            return;
        }
        let (_, badge) = INPUT_NOTIFICATION.poll();
        if badge == 0 {
            return;
        }
        // Microkit's badge: one bit per channel.
        let mut set = ChannelSet::from_bits(badge);
        if let Some(p) = self.parent.filter(|&p| set.contains(p)) {
            set.remove(p);
            self.notify(p);
        }
        self.pending = self.pending.union(set);
    }

    fn inject_self(&mut self, kind: InjectKind) -> Result<(), &'static str> {
        match kind {
            InjectKind::NullDeref => inject_null(),
            InjectKind::Panic => inject_panic(),
            InjectKind::Hang => inject_hang(),
            InjectKind::Garbage | InjectKind::Corrupt(_) => {
                let (code, bits) = swifi::code(kind).unwrap_or_default();
                swifi::run(code, bits);
                Ok(())
            }
        }
    }

    fn inject_child(&mut self, child: Child, kind: InjectKind) -> Result<(), &'static str> {
        let e = self
            .entries(child)
            .ok_or("no entry points were generated for that PD (build with `axolotl image`)")?;
        let pc = match kind {
            InjectKind::NullDeref => e.inject_null,
            InjectKind::Panic => e.inject_panic,
            InjectKind::Hang => e.inject_hang,
            InjectKind::Garbage | InjectKind::Corrupt(_) => {
                return self.inject_carrying_on(child, e.inject_swifi, kind);
            }
        };
        self.start_at(child, pc)
            .map_err(|_| "the kernel refused to redirect the PD's thread")
    }
}

impl Sel4Os {
    /// Starts `child` at the `axolotl_inject_swifi` entry `pc` for `kind`,
    /// keeping its registers to resume it with once the entry's closing
    /// trap comes in (see [`Adapter`]'s fault handler).
    fn inject_carrying_on(
        &mut self,
        child: Child,
        pc: usize,
        kind: InjectKind,
    ) -> Result<(), &'static str> {
        if let Some((busy, _)) = self.carrying_on {
            if busy != child {
                return Err("another PD is still in a garbage or corrupt fault");
            }
            return Err("that PD is still in a garbage or corrupt fault");
        }
        let (code, bits) = swifi::code(kind).ok_or("not a kind a PD carries on after")?;
        let tcb = sel4_microkit::Child::new(child.index() as usize).tcb();
        // Suspended first: the registers read are where it resumes (a
        // thread blocked in a system call makes it again).
        let saved = tcb
            .tcb_read_all_registers(true)
            .map_err(|_| "the kernel refused to read the PD's registers")?;
        let mut ctx = saved.clone();
        *ctx.pc_mut() = pc as sel4::Word;
        *ctx.c_param_mut(0) = code as sel4::Word;
        *ctx.c_param_mut(1) = bits as sel4::Word;
        if tcb.tcb_write_all_registers(true, &mut ctx).is_err() {
            let mut back = saved;
            let _ = tcb.tcb_write_all_registers(true, &mut back);
            return Err("the kernel refused to redirect the PD's thread");
        }
        self.carrying_on = Some((child, saved));
        Ok(())
    }

    /// If `child`'s fault at `pc` is the closing trap of the fault it
    /// carries on after: resumes it as it was before, and says so.
    fn carry_on(&mut self, child: Child, pc: usize) -> bool {
        let Some((c, saved)) = self.carrying_on.take() else {
            return false;
        };
        if c != child {
            self.carrying_on = Some((c, saved));
            return false;
        }
        let entry = self.entries(child).map_or(0, |e| e.inject_swifi);
        // The trap follows the call in the entry: a few instructions in.
        if !(entry..entry + 64).contains(&pc) {
            // It faulted in the middle of the damage: a fault like any other.
            return false;
        }
        let mut back = saved;
        let resumed = sel4_microkit::Child::new(child.index() as usize)
            .tcb()
            .tcb_write_all_registers(true, &mut back);
        if resumed.is_err() {
            log::error!("cannot resume child {} after its fault", child.index());
            return false;
        }
        true
    }
}

/// Whether rust-sel4 can parse a fault message with `label` (it panics on
/// the others, such as a debug exception from a child's `brk`: a child's
/// fault must never take its parent down).
fn parseable(label: u64) -> bool {
    use sel4::sys::seL4_Fault_tag as t;
    [
        t::seL4_Fault_CapFault as u64,
        t::seL4_Fault_UnknownSyscall as u64,
        t::seL4_Fault_UserException as u64,
        t::seL4_Fault_VMFault as u64,
    ]
    .contains(&label)
}

fn fault_info(info: &MessageInfo) -> FaultInfo {
    use sel4::Fault;
    if !parseable(info.label() as u64) {
        // A trap of some other kind (a breakpoint, a debug exception).
        return FaultInfo {
            kind: FaultKind::IllegalInstruction,
            addr: info.label() as u64,
            pc: 0,
        };
    }
    match info.fault() {
        Fault::VmFault(f) => {
            let addr = f.inner().get_Addr();
            FaultInfo {
                kind: if addr as usize == PANIC_ADDR {
                    FaultKind::Panic
                } else {
                    FaultKind::MemoryAccess
                },
                addr,
                pc: f.inner().get_IP(),
            }
        }
        Fault::UserException(_) => FaultInfo {
            kind: FaultKind::IllegalInstruction,
            addr: 0,
            pc: 0,
        },
        _ => FaultInfo {
            kind: FaultKind::Killed,
            addr: 0,
            pc: 0,
        },
    }
}

/// An Axolotl component as a `sel4_microkit::Handler`.
pub struct Adapter<H> {
    os: Sel4Os,
    parent: Option<Channel>,
    inner: H,
}

/// Sets up logging and panics for the PD `cfg` describes, builds its
/// component with `init`, and tells the parent it is up.
pub fn adapt<H: axolotl_sdk::Handler>(
    cfg: Config,
    init: impl FnOnce(&mut dyn Os) -> H,
) -> Adapter<H> {
    adapt_with_console(cfg, None, init)
}

/// Like [`adapt`], with the PD's log going to `console` instead of the
/// kernel's debug output (which release images do not have).
pub fn adapt_with_console<H: axolotl_sdk::Handler>(
    cfg: Config,
    console: Option<ConsoleSink>,
    init: impl FnOnce(&mut dyn Os) -> H,
) -> Adapter<H> {
    patched::keep();
    // Keep the fault-injection entries in every image: nothing calls them,
    // and the linker drops what nothing references.
    core::hint::black_box([
        axolotl_inject_null as extern "C" fn() -> ! as usize,
        axolotl_inject_panic as extern "C" fn() -> ! as usize,
        axolotl_inject_hang as extern "C" fn() -> ! as usize,
        axolotl_inject_swifi as extern "C" fn() -> ! as usize,
    ]);
    swifi::keep(cfg.rings, cfg.links);
    logger::init(cfg.name, console);
    sel4_microkit::panicking::set_hook(&panic_hook);
    clock::attach(cfg.regions);
    if cfg.receives_calls {
        answer_the_call_left_unanswered();
    }
    let mut os = Sel4Os {
        children: cfg.children,
        parent: cfg.parent,
        // Not during init: what a poll took there would wait for the
        // next notification to be handed on.
        can_poll: false,
        pending: ChannelSet::EMPTY,
        carrying_on: None,
    };
    let inner = init(&mut os);
    os.can_poll = !cfg.receives_calls;
    if let Some(p) = cfg.parent {
        os.notify(p);
    }
    Adapter {
        os,
        parent: cfg.parent,
        inner,
    }
}

/// A server restarted while it served a protected call leaves that call's
/// caller blocked on the PD's reply object, and seL4 would drop it (the
/// caller blocked for ever, "Reply object already has unexecuted reply!")
/// at this incarnation's first receive. So, before that receive, answer it
/// with the empty [`PEER_RESTARTED_LABEL`] reply, which the caller's
/// `Os::call` reports as [`CallError::PeerRestarted`], as on the host.
/// With no call pending, seL4 ignores a send on an empty reply object.
/// In a monitor, what is pending may be a child's fault message that its
/// earlier life did not answer: the reply resumes that child, which
/// faults again at once and is reported to this life.
fn answer_the_call_left_unanswered() {
    sel4_microkit::ipc::reply(MessageInfo::new(PEER_RESTARTED_LABEL, 0));
}

fn panic_hook(info: &core::panic::PanicInfo) {
    log::error!("panicked: {info}");
    // SAFETY: not safe in the usual sense, and not meant to be: PANIC_ADDR
    // is mapped by no PD, so this read faults, which is how the parent
    // learns of the panic. It never returns.
    unsafe { core::ptr::read_volatile(PANIC_ADDR as *const u8) };
}

impl<H: axolotl_sdk::Handler> sel4_microkit::Handler for Adapter<H> {
    type Error = H::Error;

    fn notified(&mut self, channels: sel4_microkit::ChannelSet) -> Result<(), Self::Error> {
        let mut set: ChannelSet = channels
            .iter()
            .filter_map(|c| Channel::checked(c.index() as u64))
            .collect();
        if let Some(p) = self.parent.filter(|&p| set.contains(p)) {
            // A heartbeat: the event loop runs, so answer at once.
            set.remove(p);
            self.os.notify(p);
        }
        while !set.is_empty() {
            self.inner.notified(&mut self.os, set)?;
            // What keepalive took while the handler ran.
            set = core::mem::replace(&mut self.os.pending, ChannelSet::EMPTY);
        }
        Ok(())
    }

    fn protected(
        &mut self,
        ch: sel4_microkit::Channel,
        info: MessageInfo,
    ) -> Result<MessageInfo, Self::Error> {
        let msg = read_message(&info);
        let Some(ch) = Channel::checked(ch.index() as u64) else {
            return Ok(write_message(&Message::error_reply()));
        };
        let reply = self.inner.protected(&mut self.os, ch, &msg)?;
        Ok(write_message(&reply))
    }

    fn fault(
        &mut self,
        child: sel4_microkit::Child,
        info: MessageInfo,
    ) -> Result<Option<MessageInfo>, Self::Error> {
        let fault = fault_info(&info);
        if let Some(c) = Child::checked(child.index() as u64) {
            let exception =
                info.label() as u64 == sel4::sys::seL4_Fault_tag::seL4_Fault_UserException as u64;
            if exception {
                if let sel4::Fault::UserException(e) = info.fault() {
                    if self.os.carry_on(c, e.inner().get_FaultIP() as usize) {
                        return Ok(None);
                    }
                }
            }
            self.inner.fault(&mut self.os, c, &fault)?;
        }
        // Never resume the faulting thread: the parent restarts or stops it.
        Ok(None)
    }
}

// Fault injection entries. A parent starts a child's thread at one of these
// wherever the thread was: running, or blocked in a system call, where its
// stack pointer need not be usable (x86_64's system call convention leaves
// it in another register). So each entry switches to a small stack of its
// own, then calls the Rust function, which never returns: the thread
// faults or hangs, and the parent restarts the PD at `_reset`. Except for
// `axolotl_inject_swifi`, whose function returns into the trap after the
// call, from which the parent resumes the thread where it was.

const INJECT_STACK_BYTES: usize = 0x4000;

#[repr(C, align(16))]
struct InjectStack([u8; INJECT_STACK_BYTES]);

static mut INJECT_STACK: InjectStack = InjectStack([0; INJECT_STACK_BYTES]);

/// Where the injection entries' stack is (`corrupt` leaves it alone).
fn inject_stack() -> (usize, usize) {
    let start = (&raw const INJECT_STACK) as usize;
    (start, start + INJECT_STACK_BYTES)
}

#[cfg(target_arch = "aarch64")]
macro_rules! entry {
    ($name:ident, $target:ident) => {
        #[unsafe(no_mangle)]
        #[unsafe(naked)]
        pub extern "C" fn $name() -> ! {
            core::arch::naked_asm!(
                "adrp x9, {stack}",
                "add x9, x9, :lo12:{stack}",
                "add x9, x9, #{bytes}",
                "mov sp, x9",
                "bl {f}",
                // An undefined instruction: a user exception to the
                // parent (`brk` would be a debug exception).
                "udf #0",
                stack = sym INJECT_STACK,
                bytes = const INJECT_STACK_BYTES,
                f = sym $target,
            )
        }
    };
}

#[cfg(target_arch = "x86_64")]
macro_rules! entry {
    ($name:ident, $target:ident) => {
        #[unsafe(no_mangle)]
        #[unsafe(naked)]
        pub extern "C" fn $name() -> ! {
            core::arch::naked_asm!(
                "lea rsp, [rip + {stack}]",
                "add rsp, {bytes}",
                "xor ebp, ebp",
                "call {f}",
                "ud2",
                stack = sym INJECT_STACK,
                bytes = const INJECT_STACK_BYTES,
                f = sym $target,
            )
        }
    };
}

entry!(axolotl_inject_null, inject_null);
entry!(axolotl_inject_panic, inject_panic);
entry!(axolotl_inject_hang, inject_hang);
entry!(axolotl_inject_swifi, inject_swifi);

/// `garbage` or `corrupt` (the kind code and bits its parent passed), then
/// back into the entry's trap.
extern "C" fn inject_swifi(code: usize, bits: usize) {
    swifi::run(code, bits);
}

extern "C" fn inject_null() -> ! {
    log::warn!("fault injection: writing through a null pointer");
    let null = core::hint::black_box(core::ptr::null_mut::<u64>());
    // SAFETY: not safe, on purpose: the write faults and the parent
    // restarts this PD.
    unsafe { null.write_volatile(0xdead) };
    loop {
        core::hint::spin_loop();
    }
}

extern "C" fn inject_panic() -> ! {
    panic!("fault injection: a panic");
}

extern "C" fn inject_hang() -> ! {
    log::warn!("fault injection: looping for ever");
    loop {
        core::hint::spin_loop();
    }
}
