//! A test PD for the host runtime's own tests: it does what the environment
//! variable `AXOLOTL_PROBE_<PD name>` says, then serves events.
//!
//! The value is `AT-INIT|ON-NOTIFY`, each a comma-separated list of actions:
//! `read:ADDR`, `write:ADDR`, `protect:ADDR` (make its page writable with
//! mprotect), `notify:CH`, `call:CH`, `open:PATH` (open a file),
//! `socket:inet` or `socket:unix` (create a socket), `exec:PATH` (start a
//! program). Every result is logged.

use axolotl_sdk::{Channel, ChannelSet, Handler, Message, Os};

struct Probe {
    on_notify: Vec<String>,
}

fn act(os: &mut dyn Os, action: &str) {
    let Some((what, arg)) = action.split_once(':') else {
        return;
    };
    let num = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or(0);
    match what {
        "read" => {
            let p = std::ptr::with_exposed_provenance::<u64>(num(arg) as usize);
            // SAFETY: deliberately unchecked: the probe reads whatever address
            // the test names, to show what the runtime mapped.
            let v = unsafe { p.read_volatile() };
            log::info!("probe read {arg} = {v:#x}");
        }
        "write" => {
            let p = std::ptr::with_exposed_provenance_mut::<u64>(num(arg) as usize);
            log::info!("probe writing {arg}");
            // SAFETY: deliberately unchecked: a write through a read-only map
            // must fault, and that is what the test checks.
            unsafe { p.write_volatile(0x5eed) };
            log::info!("probe wrote {arg}");
        }
        "protect" => {
            let page = (num(arg) as usize) & !0xfff;
            // SAFETY: deliberately unchecked: the probe asks the kernel to
            // make whatever page the test names writable; for a read-only
            // map the runtime must have made that impossible.
            let r = unsafe {
                libc::mprotect(
                    std::ptr::with_exposed_provenance_mut(page),
                    0x1000,
                    libc::PROT_READ | libc::PROT_WRITE,
                )
            };
            let e = std::io::Error::last_os_error();
            log::info!(
                "probe mprotect {arg}: {}",
                if r == 0 {
                    "writable".to_string()
                } else {
                    format!("refused ({e})")
                }
            );
        }
        "open" => {
            let r = std::fs::File::open(arg);
            log::info!("probe open {arg}: {}", outcome(r.map(|_| ())));
        }
        "socket" => {
            let r = if arg == "unix" {
                std::os::unix::net::UnixDatagram::unbound().map(|_| ())
            } else {
                std::net::UdpSocket::bind("127.0.0.1:0").map(|_| ())
            };
            log::info!("probe socket {arg}: {}", outcome(r));
        }
        "exec" => {
            let r = std::process::Command::new(arg).output();
            log::info!("probe exec {arg}: {}", outcome(r.map(|_| ())));
        }
        "notify" => os.notify(Channel::new(num(arg) as u8)),
        "call" => {
            let r = os.call(Channel::new(num(arg) as u8), &Message::new(1));
            log::info!("probe call on {arg}: {r:?}");
        }
        _ => log::error!("probe: unknown action {action}"),
    }
}

/// "done", or "refused (why)".
fn outcome(r: std::io::Result<()>) -> String {
    match r {
        Ok(()) => "done".into(),
        Err(e) => format!("refused ({e})"),
    }
}

impl Handler for Probe {
    type Error = std::convert::Infallible;

    fn notified(&mut self, os: &mut dyn Os, channels: ChannelSet) -> Result<(), Self::Error> {
        log::info!("probe notified {:#x}", channels.bits());
        for a in &self.on_notify {
            act(os, a);
        }
        Ok(())
    }

    fn protected(
        &mut self,
        _os: &mut dyn Os,
        ch: Channel,
        _msg: &Message,
    ) -> Result<Message, Self::Error> {
        log::info!("probe called on {}", ch.index());
        Ok(Message::new(0))
    }
}

fn main() {
    axolotl_host::pd::run_any_system(|init| {
        let spec = std::env::var(format!("AXOLOTL_PROBE_{}", init.name())).unwrap_or_default();
        let (at_init, on_notify) = spec.split_once('|').unwrap_or((&spec, ""));
        for a in at_init.split(',').filter(|a| !a.is_empty()) {
            act(init.os(), a);
        }
        Probe {
            on_notify: on_notify
                .split(',')
                .filter(|a| !a.is_empty())
                .map(String::from)
                .collect(),
        }
    })
}
