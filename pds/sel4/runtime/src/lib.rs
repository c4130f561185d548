//! The seL4 back-end of the Axolotl PD model, over rust-sel4's
//! `sel4-microkit`: [`Sel4Os`] implements [`axolotl_sdk::Os`] and [`Adapter`]
//! turns an [`axolotl_sdk::Handler`] into a `sel4_microkit::Handler`, so the
//! same component crates run here and on the Linux host.
//!
//! A PD program:
//!
//! ```ignore
//! #[sel4_microkit::protection_domain(heap_size = 0x40000)]
//! fn init() -> impl sel4_microkit::Handler {
//!     axolotl_sel4::adapt("store", |os| Component::init(os, ...))
//! }
//! ```
//!
//! Not yet here: restarting a child with fresh program memory (sel4-reset)
//! and the monitor's clock on x86_64; `restart_child` logs that it cannot.
#![no_std]

use axolotl_sdk::{
    CallError, Channel, ChannelSet, Child, FaultInfo, FaultKind, Instant, Message, Os,
    MAX_MESSAGE_WORDS,
};
use sel4_microkit::MessageInfo;

/// The platform for a PD on seL4.
pub struct Sel4Os;

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

impl Os for Sel4Os {
    fn notify(&mut self, ch: Channel) {
        channel(ch).notify();
    }

    fn call(&mut self, ch: Channel, msg: &Message) -> Result<Message, CallError> {
        let reply = channel(ch).pp_call(write_message(msg));
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
        log::error!(
            "restarting child {} is not implemented on seL4 yet (needs sel4-reset)",
            child.index()
        );
    }

    fn stop_child(&mut self, child: Child) {
        if let Err(e) = sel4_microkit::Child::new(child.index() as usize)
            .tcb()
            .tcb_suspend()
        {
            log::error!("cannot stop child {}: {e:?}", child.index());
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod clock {
    /// The ARM generic timer's physical counter, which Microkit's kernel
    /// configuration exports to user level (KernelArmExportPCNTUser).
    pub fn now_ns() -> u64 {
        let (count, freq): (u64, u64);
        // SAFETY: reading CNTPCT_EL0 and CNTFRQ_EL0 has no side effects, and
        // the kernel lets user level read them.
        unsafe {
            core::arch::asm!("mrs {}, cntpct_el0", out(reg) count, options(nomem, nostack));
            core::arch::asm!("mrs {}, cntfrq_el0", out(reg) freq, options(nomem, nostack));
        }
        if freq == 0 {
            return 0;
        }
        ((u128::from(count) * 1_000_000_000) / u128::from(freq)) as u64
    }
}

#[cfg(not(target_arch = "aarch64"))]
mod clock {
    /// No user-level clock on this architecture yet: time stands still.
    pub fn now_ns() -> u64 {
        0
    }
}

fn fault_info(info: &MessageInfo) -> FaultInfo {
    use sel4::Fault;
    match info.fault() {
        Fault::VmFault(f) => FaultInfo {
            kind: FaultKind::MemoryAccess,
            addr: f.inner().get_Addr(),
            pc: f.inner().get_IP(),
        },
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
    inner: H,
}

/// Sets up logging for PD `name` and builds its component with `init`.
pub fn adapt<H: axolotl_sdk::Handler>(
    name: &'static str,
    init: impl FnOnce(&mut dyn Os) -> H,
) -> Adapter<H> {
    logger::init(name);
    let mut os = Sel4Os;
    let inner = init(&mut os);
    Adapter { os, inner }
}

impl<H: axolotl_sdk::Handler> sel4_microkit::Handler for Adapter<H> {
    type Error = H::Error;

    fn notified(&mut self, channels: sel4_microkit::ChannelSet) -> Result<(), Self::Error> {
        let set: ChannelSet = channels
            .iter()
            .filter_map(|c| Channel::checked(c.index() as u64))
            .collect();
        self.inner.notified(&mut self.os, set)
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
            self.inner.fault(&mut self.os, c, &fault)?;
        }
        // Never resume the faulting thread: the parent restarts or stops it.
        Ok(None)
    }
}

mod logger {
    extern crate alloc;

    /// Log lines on the debug console: `pd  LEVEL  message`.
    struct Logger(&'static str);

    impl log::Log for Logger {
        fn enabled(&self, _: &log::Metadata) -> bool {
            true
        }
        fn log(&self, r: &log::Record) {
            sel4_microkit::debug_println!("{:<9} {:<5} {}", self.0, r.level(), r.args());
        }
        fn flush(&self) {}
    }

    pub fn init(name: &'static str) {
        let logger = alloc::boxed::Box::leak(alloc::boxed::Box::new(Logger(name)));
        if log::set_logger(logger).is_ok() {
            log::set_max_level(log::LevelFilter::Info);
        }
    }
}
