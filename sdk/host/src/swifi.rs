//! Software-implemented fault injection inside a PD process: the `garbage`
//! and `corrupt` fault kinds of `axolotl inject`, over the shared
//! [`axolotl_swifi`] (which the seL4 runtime uses too; its docs say what
//! each fault writes).
//!
//! - `garbage` scribbles over every ring this PD produces (see
//!   [`crate::boot::Produced`]) and the pools it fills, then the PD carries
//!   on from its own (now stale) view of the rings.
//! - `corrupt N` flips N random bits of the PD's own private writable
//!   memory (`.data`, `.bss`, heap, stacks: every `rw-p` mapping of
//!   `/proc/self/maps`, which is opened at start, before the seccomp filter
//!   closes `open`). Shared regions are left alone. The PD may crash, hang,
//!   misbehave or carry on.

use crate::boot::Produced;
use crate::rng::Rng;
use axolotl_swifi::{flip, scribble, Target};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::OnceLock;

static PRODUCED: OnceLock<Vec<Produced>> = OnceLock::new();
static MAPS: OnceLock<Option<OwnedFd>> = OnceLock::new();

/// Keeps what the faults need: the rings the PD produces, and an open
/// `/proc/self/maps` (called at start, while files may still be opened).
pub fn prepare(produced: &[Produced]) {
    let _ = PRODUCED.set(produced.to_vec());
    let maps = std::fs::File::open("/proc/self/maps")
        .ok()
        .map(OwnedFd::from);
    if maps.is_none() {
        log::warn!("cannot open /proc/self/maps: `corrupt` faults will do nothing");
    }
    let _ = MAPS.set(maps);
}

/// A generator seeded from the clock and the pid: each fault different.
fn rng() -> Rng {
    Rng::new(crate::sys::monotonic_ns() ^ (u64::from(std::process::id()) << 32))
}

/// Writes garbage into every ring and pool this PD produces; the channels
/// to notify, so that the consumers look at once (a PD gone wrong may well
/// notify too).
pub fn garbage() -> Vec<u8> {
    let Some(produced) = PRODUCED.get() else {
        return Vec::new();
    };
    let mut rng = rng();
    // The PD's own thread runs on meanwhile: the buffer it fills now, as
    // it was when we looked (a send starting later may still meet garbage).
    let filling = axolotl_ring::FILLING.load(std::sync::atomic::Ordering::Relaxed);
    let (mut published, mut buffers) = (0, 0);
    for p in produced {
        let t = Target {
            ring: p.ring,
            slots: p.slots,
            buf_size: p.buf_size,
            pool: p.pool,
        };
        // SAFETY: the supervisor derived each `Produced` from the writable
        // maps of this PD, which `pd::start` mapped before this can run and
        // never unmaps; only the producer's own fields, slots it has not
        // published and buffers no published descriptor names are written.
        let s = unsafe { scribble(&t, filling, &mut rng) };
        published += s.published;
        buffers += s.buffers;
    }
    log::warn!(
        "garbage: {published} random descriptors published on {} rings, {buffers} pool buffers \
         overwritten",
        produced.len()
    );
    let mut channels: Vec<u8> = produced.iter().map(|p| p.channel).collect();
    channels.sort_unstable();
    channels.dedup();
    channels
}

/// Flips `bits` random bits in this process's private writable memory.
pub fn corrupt(bits: u32) {
    let Some(Some(fd)) = MAPS.get() else {
        log::warn!("corrupt: /proc/self/maps is not open; nothing flipped");
        return;
    };
    let text = match read_all(fd) {
        Ok(t) => t,
        Err(e) => {
            log::warn!("corrupt: cannot read /proc/self/maps: {e}");
            return;
        }
    };
    let areas = writable_private(&text);
    let total: usize = areas.iter().map(|a| a.1 - a.0).sum();
    log::warn!(
        "corrupt: flipping {bits} bits in {} KiB of writable memory",
        total / 1024
    );
    // SAFETY: deliberately not sound: this is the injected fault. Each
    // area is one /proc/self/maps lists as readable and writable, so the
    // accesses themselves do not trap.
    unsafe { flip(&areas, bits, &mut rng()) };
}

fn read_all(fd: &OwnedFd) -> std::io::Result<String> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        // SAFETY: `buf[len..]` is valid for writes of its length.
        let n = unsafe {
            libc::pread(
                fd.as_raw_fd(),
                buf[len..].as_mut_ptr().cast(),
                buf.len() - len,
                len as libc::off_t,
            )
        };
        match n {
            0 => break,
            n if n < 0 => return Err(std::io::Error::last_os_error()),
            n => len += n as usize,
        }
    }
    buf.truncate(len);
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// The `rw-p` areas of a `/proc/PID/maps` text, as `(start, end)`.
fn writable_private(maps: &str) -> Vec<(usize, usize)> {
    maps.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (range, perms) = (f.next()?, f.next()?);
            if perms != "rw-p" {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            let (a, b) = (
                usize::from_str_radix(a, 16).ok()?,
                usize::from_str_radix(b, 16).ok()?,
            );
            (b > a).then_some((a, b))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_private_writable_areas_are_corrupted() {
        let maps = "\
00400000-00452000 r-xp 00000000 08:02 173521 /usr/bin/pd
00651000-00652000 rw-p 00051000 08:02 173521 /usr/bin/pd
00652000-00655000 rw-p 00000000 00:00 0 [heap]
7f0000000000-7f0000100000 rw-s 00000000 00:05 99 /memfd:ring (deleted)
7ffc0000-7ffd0000 rw-p 00000000 00:00 0 [stack]
7ffd0000-7ffd1000 ---p 00000000 00:00 0
garbage line
";
        assert_eq!(
            writable_private(maps),
            vec![
                (0x651000, 0x652000),
                (0x652000, 0x655000),
                (0x7ffc0000, 0x7ffd0000)
            ]
        );
    }

    #[test]
    fn this_process_has_writable_memory_to_corrupt() {
        let fd = std::fs::File::open("/proc/self/maps")
            .map(OwnedFd::from)
            .unwrap();
        let areas = writable_private(&read_all(&fd).unwrap());
        let here = &areas as *const _ as usize;
        assert!(
            areas.iter().any(|&(a, b)| (a..b).contains(&here)),
            "the stack is listed"
        );
    }
}
