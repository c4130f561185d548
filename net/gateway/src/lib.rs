//! The host end of the Linux-hosted network.
//!
//! `axolotl run` starts a gateway on the other end of the NIC driver's
//! link (a `SOCK_SEQPACKET` socket, one Ethernet frame per packet; the
//! driver connects, and connects again after a restart). The gateway
//! is a small smoltcp host at 10.0.2.2 on the system's link, as QEMU's user
//! networking is on a guest's, and forwards ports of the host's loopback
//! to the system: each TCP connection accepted on a forwarded host port is
//! opened anew from the gateway to the system's port, and the bytes are
//! relayed both ways, half-closes included; each UDP client gets its own
//! gateway port, so that replies find their way back.
//!
//! No privileges and no system packages are needed: everything is a
//! socket of the user's.

use axolotl_host::service::Service;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::socket::{tcp, udp};
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpEndpoint, Ipv4Address};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Instant;

/// A transport protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    /// `tcp` or `udp`.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One forwarded port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forward {
    /// Which protocol.
    pub proto: Proto,
    /// Where the host listens.
    pub host: SocketAddr,
    /// The system's port.
    pub port: u16,
}

impl Forward {
    /// Parses `PROTO:HOSTPORT:PORT` or `PROTO:ADDR:HOSTPORT:PORT`
    /// (`tcp:8080:80`, `udp:127.0.0.1:8007:7`); the host address defaults
    /// to 127.0.0.1.
    pub fn parse(s: &str) -> Result<Forward, String> {
        let bad = || format!("forward '{s}': expected PROTO:HOSTPORT:PORT, such as tcp:8080:80");
        let parts: Vec<&str> = s.split(':').collect();
        let (proto, addr, hport, port) = match parts[..] {
            [p, h, g] => (p, "127.0.0.1", h, g),
            [p, a, h, g] => (p, a, h, g),
            _ => return Err(bad()),
        };
        let proto = match proto {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            _ => return Err(format!("forward '{s}': protocol must be tcp or udp")),
        };
        let host: SocketAddr = format!("{addr}:{hport}").parse().map_err(|_| bad())?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        Ok(Forward { proto, host, port })
    }

    /// The forwards `axolotl run` sets up unless told otherwise: echo,
    /// discard and the status page.
    pub fn defaults() -> Vec<Forward> {
        ["tcp:8007:7", "udp:8007:7", "tcp:8009:9", "tcp:8080:80"]
            .iter()
            .filter_map(|s| Forward::parse(s).ok())
            .collect()
    }
}

impl std::fmt::Display for Forward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} -> port {}",
            self.proto.name(),
            self.host,
            self.port
        )
    }
}

/// The gateway's place on the link.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Where the gateway listens for the NIC driver.
    pub socket: PathBuf,
    /// The gateway's Ethernet address.
    pub mac: [u8; 6],
    /// The gateway's address and prefix on the link.
    pub addr: ([u8; 4], u8),
    /// The system's address, where forwards go.
    pub system: [u8; 4],
    /// The forwards.
    pub forwards: Vec<Forward>,
}

/// Bytes of send buffer per forwarded TCP connection.
const TCP_BUFFER: usize = 256 * 1024;
/// Bytes of receive buffer per forwarded TCP connection: no more than an
/// unscaled window. smoltcp rounds a scaled window down, which moves its
/// right edge back; bytes the system sent up to the old edge are refused,
/// and while the window is closed so are the system's ACKs (see
/// `axolotl_tcp::MAX_BUFFER`).
const TCP_RX_BUFFER: usize = 65_535;
/// Datagrams buffered each way per UDP client.
const UDP_DATAGRAMS: usize = 32;
/// Frames held for smoltcp before more are dropped.
const RX_QUEUE: usize = 1024;
/// Frames held for the driver's socket before more are dropped.
const TX_QUEUE: usize = 4096;
/// UDP clients remembered at once.
const UDP_CLIENTS: usize = 64;

struct Link {
    listener: OwnedFd,
    conn: Option<OwnedFd>,
    rx: VecDeque<Vec<u8>>,
    /// Frames the driver's socket had no room for yet.
    tx: VecDeque<Vec<u8>>,
}

impl Link {
    /// Sends what waits; whether everything went.
    fn flush(&mut self) -> bool {
        let Some(c) = &self.conn else {
            self.tx.clear();
            return true;
        };
        while let Some(f) = self.tx.front() {
            match axolotl_host::sys::send_nonblocking(c.as_raw_fd(), f) {
                Ok(true) => {
                    self.tx.pop_front();
                }
                Ok(false) => return false,
                Err(_) => {
                    // The driver went away (it is restarting).
                    self.conn = None;
                    self.tx.clear();
                    return true;
                }
            }
        }
        true
    }
}

struct Rx(Vec<u8>);
struct Tx<'a>(&'a mut Link);

impl RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0u8; len];
        let r = f(&mut buf);
        // Without a NIC driver (not started yet, or restarting) the frame
        // is lost, as on a wire with nobody at the other end; a full socket
        // keeps it for later, up to a bound.
        if self.0.conn.is_some() && self.0.tx.len() < TX_QUEUE {
            self.0.tx.push_back(buf);
            self.0.flush();
        }
        r
    }
}

impl Device for Link {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _: SmolInstant) -> Option<(Rx, Tx<'_>)> {
        let f = self.rx.pop_front()?;
        Some((Rx(f), Tx(self)))
    }

    fn transmit(&mut self, _: SmolInstant) -> Option<Tx<'_>> {
        (self.tx.len() < TX_QUEUE).then_some(Tx(self))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ethernet;
        c.max_transmission_unit = 1514;
        c
    }
}

struct TcpConn {
    host: TcpStream,
    handle: SocketHandle,
    /// Bytes from the system not yet written to the host.
    to_host: Vec<u8>,
    host_eof: bool,
    host_shut: bool,
}

struct UdpClient {
    listener: usize,
    client: SocketAddr,
    handle: SocketHandle,
    port: u16,
    last: Instant,
}

enum Listener {
    Tcp(TcpListener, u16),
    Udp(UdpSocket, u16),
}

/// A running gateway: call [`Gateway::step`] on a thread of its own.
pub struct Gateway {
    /// The gateway's Ethernet address and address on the link, to build
    /// its interface anew after a fault.
    mac: [u8; 6],
    addr: ([u8; 4], u8),
    link: Link,
    iface: Interface,
    sockets: SocketSet<'static>,
    listeners: Vec<Listener>,
    tcp: Vec<TcpConn>,
    udp: Vec<UdpClient>,
    system: Ipv4Address,
    next_port: u16,
    t0: Instant,
    /// Scratch space for relaying TCP bytes.
    scratch: Vec<u8>,
}

fn nonblocking_err(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted
}

impl Gateway {
    /// Binds the link socket and every forwarded host port; the error
    /// names what could not be bound.
    pub fn bind(cfg: &GatewayConfig) -> Result<Gateway, String> {
        let listener = axolotl_host::sys::seqpacket_listen(&cfg.socket)
            .map_err(|e| format!("gateway socket {}: {e}", cfg.socket.display()))?;
        let mut link = Link {
            listener,
            conn: None,
            rx: VecDeque::new(),
            tx: VecDeque::new(),
        };
        let mut listeners = Vec::new();
        for f in &cfg.forwards {
            let l = match f.proto {
                Proto::Tcp => TcpListener::bind(f.host).map(|l| Listener::Tcp(l, f.port)),
                Proto::Udp => UdpSocket::bind(f.host).map(|l| Listener::Udp(l, f.port)),
            }
            .map_err(|e| format!("cannot forward {f}: {e} (choose another port with --forward)"))?;
            match &l {
                Listener::Tcp(t, _) => t.set_nonblocking(true),
                Listener::Udp(u, _) => u.set_nonblocking(true),
            }
            .map_err(|e| e.to_string())?;
            listeners.push(l);
        }
        let t0 = Instant::now();
        let iface = interface(cfg.mac, cfg.addr, &mut link, 0);
        Ok(Gateway {
            mac: cfg.mac,
            addr: cfg.addr,
            link,
            iface,
            sockets: SocketSet::new(Vec::new()),
            listeners,
            tcp: Vec::new(),
            udp: Vec::new(),
            system: Ipv4Address::from(cfg.system),
            next_port: 49152,
            t0,
            scratch: vec![0u8; 64 * 1024],
        })
    }

    /// Starts again with fresh state, as after a crash: every forwarded
    /// connection and UDP client is dropped (their host ends see the
    /// connection close), and so is the NIC driver's connection, which the
    /// driver makes anew. What is bound on the host stays bound, so the
    /// forwards keep their ports.
    pub fn reset(&mut self) {
        self.link.conn = None;
        self.link.rx.clear();
        self.link.tx.clear();
        self.tcp.clear();
        self.udp.clear();
        self.sockets = SocketSet::new(Vec::new());
        let now = self.t0.elapsed().as_micros() as i64;
        self.iface = interface(self.mac, self.addr, &mut self.link, now);
    }

    fn now(&self) -> SmolInstant {
        SmolInstant::from_micros(self.t0.elapsed().as_micros() as i64)
    }

    fn ephemeral(&mut self) -> u16 {
        let p = self.next_port;
        self.next_port = if p >= 65000 { 49152 } else { p + 1 };
        p
    }

    /// One round: waits up to `max_wait_ms` for anything, then moves
    /// frames and bytes.
    pub fn step(&mut self, max_wait_ms: i32) {
        let now = self.now();
        let wait = self
            .iface
            .poll_delay(now, &self.sockets)
            .map(|d| d.total_millis().min(max_wait_ms as u64) as i32)
            .unwrap_or(max_wait_ms);
        self.wait(wait);
        self.receive_frames();
        self.accept();
        for _ in 0..8 {
            let now = self.now();
            self.iface.poll(now, &mut self.link, &mut self.sockets);
            let moved = self.relay_tcp() | self.relay_udp();
            if !moved && self.link.rx.is_empty() {
                break;
            }
        }
        let now = self.now();
        self.iface.poll(now, &mut self.link, &mut self.sockets);
        self.reap();
    }

    fn wait(&self, timeout_ms: i32) {
        let mut fds = vec![libc::pollfd {
            fd: self.link.listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        if let Some(c) = &self.link.conn {
            let out = if self.link.tx.is_empty() {
                0
            } else {
                libc::POLLOUT
            };
            fds.push(libc::pollfd {
                fd: c.as_raw_fd(),
                events: libc::POLLIN | out,
                revents: 0,
            });
        }
        for l in &self.listeners {
            let fd = match l {
                Listener::Tcp(t, _) => t.as_raw_fd(),
                Listener::Udp(u, _) => u.as_raw_fd(),
            };
            fds.push(libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        for c in &self.tcp {
            let s = self.sockets.get::<tcp::Socket>(c.handle);
            let mut events = 0;
            if !c.host_eof && s.can_send() {
                events |= libc::POLLIN;
            }
            if !c.to_host.is_empty() {
                events |= libc::POLLOUT;
            }
            fds.push(libc::pollfd {
                fd: c.host.as_raw_fd(),
                events,
                revents: 0,
            });
        }
        // SAFETY: fds is a valid array of pollfd of the length given.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    }

    fn receive_frames(&mut self) {
        // A (re)started driver connects anew: the newest connection wins.
        while let Some(c) = axolotl_host::sys::seqpacket_accept(self.link.listener.as_raw_fd()) {
            self.link.conn = Some(c);
            self.link.tx.clear();
        }
        self.link.flush();
        let mut buf = [0u8; 2048];
        while self.link.rx.len() < RX_QUEUE {
            let Some(c) = &self.link.conn else { break };
            match axolotl_host::sys::recv_nonblocking(c.as_raw_fd(), &mut buf) {
                Ok(Some(0)) | Err(_) => {
                    self.link.conn = None;
                    break;
                }
                Ok(Some(n)) => self.link.rx.push_back(buf[..n].to_vec()),
                Ok(None) => break,
            }
        }
    }

    fn accept(&mut self) {
        for i in 0..self.listeners.len() {
            match &self.listeners[i] {
                Listener::Tcp(l, port) => {
                    let port = *port;
                    let mut accepted = Vec::new();
                    while let Ok(a) = l.accept() {
                        accepted.push(a);
                    }
                    for (stream, from) in accepted {
                        if let Err(e) = self.open_tcp(stream, port) {
                            log::warn!("gateway: cannot forward {from}: {e}");
                        }
                    }
                }
                Listener::Udp(..) => self.udp_from_host(i),
            }
        }
    }

    fn open_tcp(&mut self, host: TcpStream, port: u16) -> Result<(), String> {
        host.set_nonblocking(true).map_err(|e| e.to_string())?;
        let _ = host.set_nodelay(true);
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; TCP_RX_BUFFER]),
            tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
        );
        s.set_nagle_enabled(false);
        // ACK at once: a delayed ACK of the system's FIN would still be
        // pending when the connection is reaped in TIME-WAIT, and the
        // system would hold its socket, retransmitting the FIN, until a
        // reset; with all of a port's sockets held so, it refuses new
        // connections.
        s.set_ack_delay(None);
        let local = self.ephemeral();
        s.connect(
            self.iface.context(),
            IpEndpoint::new(IpAddress::Ipv4(self.system), port),
            local,
        )
        .map_err(|e| e.to_string())?;
        let handle = self.sockets.add(s);
        self.tcp.push(TcpConn {
            host,
            handle,
            to_host: Vec::new(),
            host_eof: false,
            host_shut: false,
        });
        Ok(())
    }

    fn udp_from_host(&mut self, li: usize) {
        let mut buf = [0u8; 65536];
        loop {
            let (n, client, port) = match &self.listeners[li] {
                Listener::Udp(u, port) => match u.recv_from(&mut buf) {
                    Ok((n, c)) => (n, c, *port),
                    Err(_) => return,
                },
                Listener::Tcp(..) => return,
            };
            let idx = match self
                .udp
                .iter()
                .position(|c| c.listener == li && c.client == client)
            {
                Some(i) => i,
                None => {
                    if self.udp.len() >= UDP_CLIENTS {
                        let oldest = (0..self.udp.len()).min_by_key(|&i| self.udp[i].last);
                        if let Some(o) = oldest {
                            let c = self.udp.swap_remove(o);
                            self.sockets.remove(c.handle);
                        }
                    }
                    let mk = || {
                        udp::PacketBuffer::new(
                            vec![udp::PacketMetadata::EMPTY; UDP_DATAGRAMS],
                            vec![0u8; UDP_DATAGRAMS * 1500],
                        )
                    };
                    let mut s = udp::Socket::new(mk(), mk());
                    let local = self.ephemeral();
                    if s.bind(local).is_err() {
                        return;
                    }
                    let handle = self.sockets.add(s);
                    self.udp.push(UdpClient {
                        listener: li,
                        client,
                        handle,
                        port,
                        last: Instant::now(),
                    });
                    self.udp.len() - 1
                }
            };
            let c = &mut self.udp[idx];
            c.last = Instant::now();
            let s = self.sockets.get_mut::<udp::Socket>(c.handle);
            let to = IpEndpoint::new(IpAddress::Ipv4(self.system), c.port);
            if s.send_slice(&buf[..n], to).is_err() {
                log::debug!("gateway: UDP datagram from {client} dropped (too long or no room)");
            }
        }
    }

    fn relay_udp(&mut self) -> bool {
        let mut moved = false;
        let mut buf = [0u8; 2048];
        for c in &self.udp {
            let s = self.sockets.get_mut::<udp::Socket>(c.handle);
            while let Ok((n, _)) = s.recv_slice(&mut buf) {
                if let Listener::Udp(u, _) = &self.listeners[c.listener] {
                    let _ = u.send_to(&buf[..n], c.client);
                }
                moved = true;
            }
        }
        moved
    }

    fn relay_tcp(&mut self) -> bool {
        let mut moved = false;
        let buf = &mut self.scratch;
        for c in &mut self.tcp {
            let s = self.sockets.get_mut::<tcp::Socket>(c.handle);
            // Host to system.
            while !c.host_eof && s.can_send() {
                let room = s.send_capacity() - s.send_queue();
                let want = room.min(buf.len());
                if want == 0 {
                    break;
                }
                match c.host.read(&mut buf[..want]) {
                    Ok(0) => {
                        c.host_eof = true;
                        s.close();
                        moved = true;
                    }
                    Ok(n) => {
                        let _ = s.send_slice(&buf[..n]);
                        moved = true;
                    }
                    Err(e) if nonblocking_err(&e) => break,
                    Err(_) => {
                        c.host_eof = true;
                        s.abort();
                        break;
                    }
                }
            }
            // System to host.
            loop {
                if c.to_host.is_empty() && s.can_recv() {
                    let _ = s.recv(|b| {
                        c.to_host.extend_from_slice(b);
                        (b.len(), ())
                    });
                }
                if c.to_host.is_empty() {
                    break;
                }
                match c.host.write(&c.to_host) {
                    Ok(n) => {
                        c.to_host.drain(..n);
                        moved = true;
                    }
                    Err(e) if nonblocking_err(&e) => break,
                    Err(_) => {
                        c.to_host.clear();
                        s.abort();
                        break;
                    }
                }
            }
            // The system closed its side and everything reached the host.
            if !c.host_shut
                && !s.may_recv()
                && c.to_host.is_empty()
                && s.state() != tcp::State::SynSent
            {
                let _ = c.host.shutdown(Shutdown::Write);
                c.host_shut = true;
                moved = true;
            }
        }
        moved
    }

    fn reap(&mut self) {
        let sockets = &mut self.sockets;
        self.tcp.retain(|c| {
            let s = sockets.get::<tcp::Socket>(c.handle);
            let done = s.state() == tcp::State::Closed
                || (s.state() == tcp::State::TimeWait && c.host_eof);
            if done {
                if !c.host_shut {
                    // Refused or reset by the system: the host sees a reset too.
                    let _ = c.host.shutdown(Shutdown::Both);
                }
                sockets.remove(c.handle);
            }
            !done
        });
    }
}

/// The gateway's smoltcp interface on `link`.
fn interface(mac: [u8; 6], (a, n): ([u8; 4], u8), link: &mut Link, now_us: i64) -> Interface {
    let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
    config.random_seed = u64::from(std::process::id()) ^ 0x9e37_79b9_7f4a_7c15 ^ now_us as u64;
    let mut iface = Interface::new(config, link, SmolInstant::from_micros(now_us));
    iface.update_ip_addrs(|ips| {
        let _ = ips.push(IpCidr::new(IpAddress::Ipv4(Ipv4Address::from(a)), n));
    });
    iface
}

/// Binds the gateway and runs it on a thread of its own, supervised as
/// `service`: a panic restarts it with fresh state ([`Gateway::reset`]),
/// and one it cannot recover from ends `axolotl run` with an error. Every
/// signal is blocked on the thread: the process's signals (SIGCHLD above
/// all) belong to the supervisor's signalfd, and a thread that took them
/// would lose them.
pub fn spawn(cfg: &GatewayConfig, service: &Service) -> Result<(), String> {
    let gw = Gateway::bind(cfg)?;
    let service = service.clone();
    // SAFETY: sigset_t is plain data, filled by sigfillset; the masks are
    // this thread's own, restored right after the spawn (a new thread
    // inherits the mask in force when it is created).
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        let r = std::thread::Builder::new()
            .name("gateway".into())
            .spawn(move || service.serve(gw, |gw| gw.step(100), Gateway::reset))
            .map(drop)
            .map_err(|e| e.to_string());
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        r
    }
}
