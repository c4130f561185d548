//! Thin, checked wrappers over the few Linux calls the runtime needs.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cvt_size(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// A read-only descriptor of the same file as `fd` (through
/// `/proc/self/fd`): a shared mapping made from it can never be made
/// writable with `mprotect`.
pub fn reopen_read_only(fd: RawFd) -> io::Result<OwnedFd> {
    let path = CString::new(format!("/proc/self/fd/{fd}")).map_err(io::Error::other)?;
    // SAFETY: `path` is a valid NUL-terminated string for the duration of the call.
    let ro = cvt(unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) })?;
    // SAFETY: open returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ro) })
}

/// An anonymous shared-memory file of `size` bytes, zero-filled.
pub fn memfd(name: &str, size: u64) -> io::Result<OwnedFd> {
    let cname = CString::new(name.replace('\0', "_")).map_err(io::Error::other)?;
    // SAFETY: `cname` is a valid NUL-terminated string for the duration of the call.
    let fd = cvt(unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC) })?;
    // SAFETY: memfd_create returned a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let size = libc::off_t::try_from(size).map_err(io::Error::other)?;
    // SAFETY: plain syscall on a descriptor we own.
    cvt(unsafe { libc::ftruncate(fd.as_raw_fd(), size) })?;
    Ok(fd)
}

/// A connected pair of `SOCK_SEQPACKET` Unix sockets, close-on-exec.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors socketpair writes.
    cvt(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: socketpair succeeded, so both are fresh descriptors we now own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sends one datagram without blocking. `Ok(false)` if the queue is full.
pub fn send_nonblocking(fd: RawFd, buf: &[u8]) -> io::Result<bool> {
    // SAFETY: `buf` is valid for reads of its length.
    let r = unsafe {
        libc::send(
            fd,
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    match cvt_size(r) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
        Err(e) => Err(e),
    }
}

/// Sends one datagram, waiting for room if the queue is full.
pub fn send_blocking(fd: RawFd, buf: &[u8]) -> io::Result<()> {
    loop {
        if send_nonblocking(fd, buf)? {
            return Ok(());
        }
        wait_fd(fd, libc::POLLOUT, -1)?;
    }
}

/// Receives one datagram without blocking: `Ok(None)` if none is queued,
/// `Ok(Some(0))` on end of file.
pub fn recv_nonblocking(fd: RawFd, buf: &mut [u8]) -> io::Result<Option<usize>> {
    // SAFETY: `buf` is valid for writes of its length.
    let r = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
    match cvt_size(r) {
        Ok(n) => Ok(Some(n)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
        Err(e) => Err(e),
    }
}

/// Peeks at the first byte of the next datagram without taking it.
pub fn peek_first_byte(fd: RawFd) -> Option<u8> {
    let mut b = [0u8; 1];
    // SAFETY: `b` is valid for one byte; MSG_PEEK leaves the datagram queued.
    let r = unsafe {
        libc::recv(
            fd,
            b.as_mut_ptr().cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    (r == 1).then_some(b[0])
}

/// Waits until `fd` has `events` (or `timeout_ms` passes; -1 waits for ever).
pub fn wait_fd(fd: RawFd, events: libc::c_short, timeout_ms: libc::c_int) -> io::Result<bool> {
    let mut pfd = [libc::pollfd {
        fd,
        events,
        revents: 0,
    }];
    Ok(poll(&mut pfd, timeout_ms)? > 0)
}

/// `poll(2)`, retried on EINTR.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: libc::c_int) -> io::Result<usize> {
    loop {
        // SAFETY: `fds` is a valid, exclusively borrowed array of pollfd.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        match cvt(r) {
            Ok(n) => return Ok(n as usize),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// CLOCK_MONOTONIC in nanoseconds: the same clock in every process.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// A shared mapping of `len` bytes of `fd` at exactly `vaddr` (or anywhere,
/// if `vaddr` is zero). Fails rather than replace an existing mapping.
pub fn map_shared(fd: RawFd, vaddr: usize, len: usize, prot: libc::c_int) -> io::Result<*mut u8> {
    let flags = if vaddr == 0 {
        libc::MAP_SHARED
    } else {
        libc::MAP_SHARED | libc::MAP_FIXED_NOREPLACE
    };
    // SAFETY: mapping a file we hold; MAP_FIXED_NOREPLACE never clobbers an
    // existing mapping, so no Rust object can be invalidated by it.
    let p = unsafe { libc::mmap(vaddr as *mut libc::c_void, len, prot, flags, fd, 0) };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    if vaddr != 0 && p as usize != vaddr {
        // Kernels before 4.17 ignore MAP_FIXED_NOREPLACE and pick another place.
        // SAFETY: unmapping exactly what was just mapped and is used by nothing.
        unsafe { libc::munmap(p, len) };
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("address {vaddr:#x} is not free"),
        ));
    }
    Ok(p.cast())
}

/// Clears close-on-exec so that a spawned program inherits `fd`. Only
/// async-signal-safe calls: usable between fork and exec.
pub fn clear_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor number; no memory is involved.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }).map(|_| ())
}

/// A non-blocking CLOCK_MONOTONIC timerfd.
pub fn timerfd() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall creating a new descriptor.
    let fd = cvt(unsafe {
        libc::timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_CLOEXEC | libc::TFD_NONBLOCK,
        )
    })?;
    // SAFETY: a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Arms `fd` (a timerfd) to expire once at absolute CLOCK_MONOTONIC `at_ns`,
/// or disarms it.
pub fn timerfd_set(fd: RawFd, at_ns: Option<u64>) -> io::Result<()> {
    // An expiry of zero would disarm; the past expires at once.
    let at = at_ns.map(|t| t.max(1)).unwrap_or(0);
    let spec = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: (at / 1_000_000_000) as libc::time_t,
            tv_nsec: (at % 1_000_000_000) as libc::c_long,
        },
    };
    // SAFETY: `spec` is a valid itimerspec; the old value is not requested.
    cvt(unsafe { libc::timerfd_settime(fd, libc::TFD_TIMER_ABSTIME, &spec, std::ptr::null_mut()) })
        .map(|_| ())
}

/// Reads and discards whatever a timerfd or eventfd holds.
pub fn drain_counter(fd: RawFd) {
    let mut buf = [0u8; 8];
    // SAFETY: `buf` is valid for 8 bytes; the fd is non-blocking.
    unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
}

/// One `read` into `buf` without blocking: its length, or `None`.
pub fn recv_read(fd: RawFd, buf: &mut [u8]) -> Option<usize> {
    // SAFETY: buf is writable for buf.len() bytes.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    usize::try_from(n).ok().filter(|&n| n > 0)
}

/// A pipe, both ends close-on-exec: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are new and ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Blocks until one byte can be read from `fd`: true if one came, false
/// at end of file or on an error.
pub fn read_byte_blocking(fd: RawFd) -> bool {
    let mut b = 0u8;
    loop {
        // SAFETY: reading at most one byte into a local.
        let n = unsafe { libc::read(fd, (&mut b as *mut u8).cast(), 1) };
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return n == 1;
    }
}

/// One `write` of all of `buf`; false if it did not go out whole.
pub fn write_all_once(fd: RawFd, buf: &[u8]) -> bool {
    // SAFETY: buf is readable for buf.len() bytes.
    let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    usize::try_from(n).is_ok_and(|n| n == buf.len())
}

fn unix_addr(path: &std::path::Path) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: sockaddr_un is plain data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() >= addr.sun_path.len() {
        return Err(io::Error::other(format!(
            "socket path {} is longer than {} bytes",
            path.display(),
            addr.sun_path.len() - 1
        )));
    }
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    Ok((
        addr,
        std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
    ))
}

fn seqpacket_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket creation.
    let fd = cvt(unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    })?;
    // SAFETY: socket succeeded; we own the new descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A non-blocking listening `SOCK_SEQPACKET` socket at `path` (replacing
/// a stale one).
pub fn seqpacket_listen(path: &std::path::Path) -> io::Result<OwnedFd> {
    let _ = std::fs::remove_file(path);
    let fd = seqpacket_socket()?;
    let (addr, len) = unix_addr(path)?;
    // SAFETY: addr is a valid sockaddr_un of length len.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            len,
        )
    })?;
    // SAFETY: fd is a bound socket we own.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), 4) })?;
    Ok(fd)
}

/// Accepts one connection on a listening socket, non-blocking.
pub fn seqpacket_accept(fd: RawFd) -> Option<OwnedFd> {
    // SAFETY: accept4 with null address pointers is allowed.
    let c = unsafe {
        libc::accept4(
            fd,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
        )
    };
    // SAFETY: accept4 succeeded; we own the new descriptor.
    (c >= 0).then(|| unsafe { OwnedFd::from_raw_fd(c) })
}

/// A non-blocking `SOCK_SEQPACKET` connection to `path`.
/// Makes descriptor number `target` (owned by the caller) refer to what
/// `with` refers to, atomically: whoever polls that number goes on
/// polling it. `with` itself is closed.
pub fn replace_fd(target: &OwnedFd, with: OwnedFd) -> io::Result<()> {
    // SAFETY: both are open descriptors we own; dup3 closes what `target`
    // referred to and makes its number a copy of `with`, so `target` still
    // owns exactly one open descriptor. `with` is dropped (closed) after.
    cvt(unsafe { libc::dup3(with.as_raw_fd(), target.as_raw_fd(), libc::O_CLOEXEC) })?;
    Ok(())
}

pub fn seqpacket_connect(path: &std::path::Path) -> io::Result<OwnedFd> {
    let fd = seqpacket_socket()?;
    let (addr, len) = unix_addr(path)?;
    // SAFETY: addr is a valid sockaddr_un of length len.
    cvt(unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            len,
        )
    })
    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    Ok(fd)
}
