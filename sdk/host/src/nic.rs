//! The host's network devices for the NIC driver PD, chosen by the
//! `AXOLOTL_NIC` environment variable that `axolotl run` sets:
//!
//! - `unix:PATH`: a `SOCK_SEQPACKET` connection to the host gateway
//!   listening at `PATH`, one Ethernet frame per packet. No privileges
//!   needed. (Datagram sockets would drop frames after ten queued ones.)
//! - `tap:NAME`: the TAP device `NAME` (in a network namespace where the
//!   caller may create one, such as `unshare -rn`).
//! - `none`: no device at all.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

/// How long a frame for a full gateway connection waits for room before
/// it is dropped.
const SEND_WAIT_MS: libc::c_int = 5;

/// The environment variable naming the device.
pub const ENV: &str = "AXOLOTL_NIC";

/// Set once this process opened a gateway connection, which it makes again
/// when the gateway restarts: its seccomp filter lets it connect.
static GATEWAY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this process drives a NIC connected to the host gateway.
pub fn connects_to_gateway() -> bool {
    GATEWAY.load(std::sync::atomic::Ordering::Relaxed)
}

/// A host network device: frames in and out, readable when one waits.
pub enum HostNic {
    /// A connection to the host gateway. When the gateway drops it (it
    /// restarted), the driver connects again on the same descriptor
    /// number, and counts a reset.
    Unix {
        /// The connection (or, while there is none, an idle socket).
        fd: OwnedFd,
        /// Where the gateway listens.
        path: PathBuf,
        /// Whether `fd` is connected.
        connected: bool,
        /// Times the connection was lost (the gateway restarted).
        resets: u64,
    },
    /// A TAP device.
    Tap(OwnedFd),
    /// No device: nothing arrives, everything sent is lost.
    Unplugged(UnixDatagram),
}

impl HostNic {
    /// Opens the device `AXOLOTL_NIC` names.
    pub fn from_env() -> io::Result<HostNic> {
        let spec = std::env::var(ENV).map_err(|_| {
            io::Error::other(format!(
                "{ENV} is not set: the NIC driver runs under `axolotl run`, which sets it"
            ))
        })?;
        HostNic::open(&spec)
    }

    /// Opens `unix:PATH` or `tap:NAME`.
    pub fn open(spec: &str) -> io::Result<HostNic> {
        if let Some(path) = spec.strip_prefix("unix:") {
            GATEWAY.store(true, std::sync::atomic::Ordering::Relaxed);
            let path = PathBuf::from(path);
            crate::sys::seqpacket_connect(&path).map(|fd| HostNic::Unix {
                fd,
                path,
                connected: true,
                resets: 0,
            })
        } else if spec == "none" {
            UnixDatagram::unbound().map(HostNic::Unplugged)
        } else if let Some(name) = spec.strip_prefix("tap:") {
            tap(name).map(HostNic::Tap)
        } else {
            Err(io::Error::other(format!(
                "{ENV}='{spec}': expected unix:PATH, tap:NAME or none"
            )))
        }
    }

    /// The descriptor that is readable when a frame waits.
    pub fn fd(&self) -> RawFd {
        match self {
            HostNic::Unix { fd, .. } => fd.as_raw_fd(),
            HostNic::Tap(fd) => fd.as_raw_fd(),
            HostNic::Unplugged(s) => s.as_raw_fd(),
        }
    }

    /// Times the device went away and came back (the gateway restarted).
    pub fn resets(&self) -> u64 {
        match self {
            HostNic::Unix { resets, .. } => *resets,
            _ => 0,
        }
    }

    /// The gateway dropped the connection, or there was none: connect
    /// again on the same descriptor number, which the runtime polls. While
    /// the gateway is not there, the number holds a socket that never
    /// becomes readable (a closed connection would wake the PD for ever).
    fn reconnect(&mut self) {
        let HostNic::Unix {
            fd,
            path,
            connected,
            resets,
        } = self
        else {
            return;
        };
        let (new, ok) = match crate::sys::seqpacket_connect(path) {
            Ok(c) => (c, true),
            Err(_) => match UnixDatagram::unbound() {
                Ok(idle) => (OwnedFd::from(idle), false),
                Err(_) => return,
            },
        };
        if crate::sys::replace_fd(fd, new).is_err() {
            return;
        }
        if *connected {
            *resets += 1;
        }
        *connected = ok;
    }

    /// A received frame, if one waits.
    pub fn recv(&mut self, buf: &mut [u8]) -> Option<usize> {
        match self {
            HostNic::Unix { fd, connected, .. } => {
                if !*connected {
                    return None;
                }
                match crate::sys::recv_nonblocking(fd.as_raw_fd(), buf) {
                    Ok(Some(0)) | Err(_) => {
                        self.reconnect();
                        None
                    }
                    Ok(n) => n,
                }
            }
            HostNic::Tap(fd) => crate::sys::recv_read(fd.as_raw_fd(), buf),
            HostNic::Unplugged(_) => None,
        }
    }

    /// Sends a frame; false if it was dropped (no gateway, queue full).
    pub fn send(&mut self, frame: &[u8]) -> bool {
        if matches!(
            self,
            HostNic::Unix {
                connected: false,
                ..
            }
        ) {
            self.reconnect();
        }
        match self {
            HostNic::Unix { fd, connected, .. } => {
                if !*connected {
                    return false;
                }
                let fd = fd.as_raw_fd();
                let mut sent = crate::sys::send_nonblocking(fd, frame);
                if let Ok(false) = sent {
                    // The gateway is behind: wait a little for room, as a
                    // NIC's queue would, rather than drop the frame (a lost
                    // segment costs TCP a retransmission timeout).
                    let mut p = [libc::pollfd {
                        fd,
                        events: libc::POLLOUT,
                        revents: 0,
                    }];
                    if crate::sys::poll(&mut p, SEND_WAIT_MS).is_ok_and(|n| n > 0) {
                        sent = crate::sys::send_nonblocking(fd, frame);
                    }
                }
                match sent {
                    Ok(sent) => sent,
                    Err(_) => {
                        self.reconnect();
                        false
                    }
                }
            }
            HostNic::Tap(fd) => crate::sys::write_all_once(fd.as_raw_fd(), frame),
            HostNic::Unplugged(_) => false,
        }
    }
}

fn tap(name: &str) -> io::Result<OwnedFd> {
    const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
    const IFF_TAP: libc::c_short = 0x0002;
    const IFF_NO_PI: libc::c_short = 0x1000;
    #[repr(C)]
    struct IfReq {
        name: [u8; 16],
        flags: libc::c_short,
        _pad: [u8; 22],
    }
    if name.is_empty() || name.len() > 15 {
        return Err(io::Error::other(format!(
            "TAP name '{name}' must have 1 to 15 bytes"
        )));
    }
    // SAFETY: a plain open of a NUL-terminated path.
    let raw = unsafe {
        libc::open(
            c"/dev/net/tun".as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: raw is a descriptor we just opened and own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut req = IfReq {
        name: [0; 16],
        flags: IFF_TAP | IFF_NO_PI,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: TUNSETIFF reads and writes an ifreq, which req is laid out as.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, &mut req as *mut IfReq) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("TAP device '{name}': {e} (creating one needs CAP_NET_ADMIN, for example inside `unshare -rn`)"),
        ));
    }
    Ok(fd)
}
