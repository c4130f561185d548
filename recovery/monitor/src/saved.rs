//! The monitor's own state, kept across its restarts.
//!
//! The monitor cannot keep its state in the store PD: the store is one of
//! its children (a call into a faulted or hung child would block the
//! monitor for good), and Microkit lets a PD call only PDs of higher
//! priority, while the monitor must outrank its children. So the monitor
//! writes its state into a memory region of its own (`<axolotl:monitor
//! state="REGION">`), which a restart leaves alone as it leaves the store's
//! journal.
//!
//! The region holds two slots (each half of it, rounded down to 8 bytes).
//! Every save goes into the slot that does not hold the newest valid copy:
//! the body, then the header, then, after a fence, the checksum word that
//! commits it. A crash during a save leaves the other slot, one change
//! older, to load from. All integers are little-endian.
//!
//! | offset | size | header field |
//! |---|---|---|
//! | 0 | 4 | magic `"AXMN"` |
//! | 4 | 2 | version = 1 |
//! | 6 | 2 | number of children |
//! | 8 | 8 | sequence number: the higher valid slot is the newest |
//! | 16 | 4 | body length |
//! | 20 | 4 | CRC-32 of bytes 0..20, 24..64 and the body: the commit word |
//! | 24 | 8 | fingerprint of the children (names and child ids) |
//! | 32 | 4 | the monitor's incarnation: 0 at boot, +1 on each restart |
//! | 36 | 1 | 1 once every child has been up |
//! | 37 | 27 | zero |
//!
//! The body is one record per child, in system.xml's order: [`RECORD`]
//! bytes, then 8 bytes for each fault time the restart policy remembers.
//!
//! | offset | size | child field |
//! |---|---|---|
//! | 0 | 4 | restarts |
//! | 4 | 1 | phase: 0 starting, 1 running, 2 waiting for a restart, 3 given up |
//! | 5 | 1 | flags: 1 ever up, 2 the start follows a fault, 4 a last fault, 8 a recovery time |
//! | 6 | 1 | the last fault's kind ([`FaultKind::code`]) |
//! | 7 | 1 | fault times that follow (at most [`MAX_TRACKED_FAULTS`]) |
//! | 8 | 8 | phase time: started at (starting), restart due at (waiting) |
//! | 16 | 8 | the fault this start or wait follows |
//! | 24 | 8 | the last fault's address |
//! | 32 | 8 | the last fault's program counter |
//! | 40 | 8 | when the last fault happened |
//! | 48 | 8 | the last recovery time, in nanoseconds |
//! | 56 | 8 | the policy's: when the child last started |
//! | 64 | 8 | the policy's: the last back-off delay, in milliseconds |
//!
//! A region that holds no valid slot, or one saved for other children (a
//! changed system.xml), is a first boot: the monitor starts afresh.

use crate::policy::{History, MAX_TRACKED_FAULTS};
use crate::{ChildState, Phase};
use axolotl_sdk::config::SupervisedChild;
use axolotl_sdk::crc::Crc32;
use axolotl_sdk::{FaultInfo, FaultKind, Instant};
use core::sync::atomic::{fence, Ordering};

const MAGIC: [u8; 4] = *b"AXMN";
const VERSION: u16 = 1;
/// Bytes of a slot's header.
pub const HEADER: usize = 64;
/// Bytes of a child's record before its fault times.
pub const RECORD: usize = 72;

/// Region bytes that hold the state of `children` children in the worst
/// case (every child with a full fault history), both slots.
pub const fn region_bytes(children: usize) -> usize {
    2 * (HEADER + children * (RECORD + 8 * MAX_TRACKED_FAULTS))
}

/// What the monitor keeps of itself besides its children.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Own {
    /// Its incarnation: 0 at boot, one more after each of its restarts.
    pub incarnation: u32,
    /// Every child has been up once.
    pub all_up: bool,
}

/// The monitor's state region.
pub struct Saved {
    region: &'static mut [u8],
    fingerprint: u64,
    seq: u64,
    /// The slot the next save goes to.
    next: usize,
    warned: bool,
}

/// A fingerprint of the children: a saved state applies only to the same
/// children in the same order.
fn fingerprint(children: &[SupervisedChild]) -> u64 {
    // FNV-1a over each child's name and id.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    };
    for c in children {
        c.name.bytes().for_each(&mut feed);
        feed(0);
        feed(c.child.index());
    }
    h
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

fn checksum(header: &[u8], body: &[u8]) -> u32 {
    Crc32::new()
        .update(&header[..20])
        .update(&header[24..HEADER])
        .update(body)
        .finish()
}

impl Saved {
    /// The state region `region`, for `children`.
    pub fn new(region: &'static mut [u8], children: &[SupervisedChild]) -> Saved {
        Saved {
            region,
            fingerprint: fingerprint(children),
            seq: 0,
            next: 0,
            warned: false,
        }
    }

    fn slot_len(&self) -> usize {
        (self.region.len() / 2) & !7
    }

    /// The slot `i`'s header and body, if it holds a valid copy for these
    /// children: (sequence number, body).
    fn valid(&self, i: usize, children: usize) -> Option<(u64, &[u8])> {
        let len = self.slot_len();
        if len < HEADER {
            return None;
        }
        let slot = &self.region[i * len..(i + 1) * len];
        let (header, rest) = slot.split_at(HEADER);
        let body_len = u32_at(header, 16) as usize;
        if header[..4] != MAGIC
            || u16_at(header, 4) != VERSION
            || usize::from(u16_at(header, 6)) != children
            || u64_at(header, 24) != self.fingerprint
            || body_len > rest.len()
        {
            return None;
        }
        let body = &rest[..body_len];
        (checksum(header, body) == u32_at(header, 20)).then(|| (u64_at(header, 8), body))
    }

    /// Loads the newest valid copy into `states` (one per child, in
    /// order), and says what the monitor kept of itself. `None`: nothing
    /// valid was saved (a first boot); `states` is untouched.
    pub fn load(&mut self, states: &mut [ChildState]) -> Option<Own> {
        let n = states.len();
        let newest = match (self.valid(0, n), self.valid(1, n)) {
            (Some((a, _)), Some((b, _))) if b > a => 1,
            (Some(_), _) => 0,
            (None, Some(_)) => 1,
            (None, None) => return None,
        };
        let (seq, body) = self.valid(newest, n)?;
        let mut at = 0;
        let mut loaded: heapless::Vec<ChildState, 63> = heapless::Vec::new();
        for st in states.iter() {
            let (child, used) = decode_child(&body[at..], st)?;
            at += used;
            // Cannot fail: states has at most 63 entries.
            let _ = loaded.push(child);
        }
        for (st, l) in states.iter_mut().zip(loaded) {
            *st = l;
        }
        let len = self.slot_len();
        let header = &self.region[newest * len..newest * len + HEADER];
        let own = Own {
            incarnation: u32_at(header, 32),
            all_up: header[36] == 1,
        };
        self.seq = seq;
        self.next = 1 - newest;
        Some(own)
    }

    /// Saves `states` and `own` into the older slot. A state that does not
    /// fit keeps the newest fault times that fit (logged once).
    pub fn save(&mut self, states: &[ChildState], own: Own) {
        let len = self.slot_len();
        if len < HEADER {
            if !self.warned {
                self.warned = true;
                log::error!("the monitor's state region is too small to keep anything");
            }
            return;
        }
        let seq = self.seq + 1;
        let fingerprint = self.fingerprint;
        let slot = &mut self.region[self.next * len..(self.next + 1) * len];
        let (header, rest) = slot.split_at_mut(HEADER);
        // Room per child, fault times trimmed evenly if need be.
        let room = rest.len() / states.len().max(1);
        let keep = room.saturating_sub(RECORD) / 8;
        if room < RECORD {
            if !self.warned {
                self.warned = true;
                log::error!("the monitor's state region is too small for its children");
            }
            return;
        }
        let mut at = 0;
        let mut trimmed = false;
        for st in states {
            let (used, cut) = encode_child(st, keep, &mut rest[at..]);
            trimmed |= cut;
            at += used;
        }
        if trimmed && !self.warned {
            self.warned = true;
            log::warn!(
                "the monitor's state region keeps only the newest {keep} fault times of each child"
            );
        }
        header.fill(0);
        header[..4].copy_from_slice(&MAGIC);
        header[4..6].copy_from_slice(&VERSION.to_le_bytes());
        header[6..8].copy_from_slice(&(states.len() as u16).to_le_bytes());
        header[8..16].copy_from_slice(&seq.to_le_bytes());
        header[16..20].copy_from_slice(&(at as u32).to_le_bytes());
        header[24..32].copy_from_slice(&fingerprint.to_le_bytes());
        header[32..36].copy_from_slice(&own.incarnation.to_le_bytes());
        header[36] = u8::from(own.all_up);
        let crc = checksum(header, &rest[..at]);
        // Everything the checksum covers is in memory before the word that
        // commits it.
        fence(Ordering::Release);
        header[20..24].copy_from_slice(&crc.to_le_bytes());
        fence(Ordering::Release);
        self.seq = seq;
        self.next = 1 - self.next;
    }
}

fn encode_child(st: &ChildState, keep: usize, out: &mut [u8]) -> (usize, bool) {
    let recent = &st.history.recent;
    let n = recent.len().min(keep).min(MAX_TRACKED_FAULTS);
    let rec = &mut out[..RECORD + 8 * n];
    rec.fill(0);
    rec[..4].copy_from_slice(&st.restarts.to_le_bytes());
    let (tag, t1, t2) = match st.phase {
        Phase::Starting { since, fault_at } => (0, since.0, fault_at.map_or(0, |t| t.0)),
        Phase::Running => (1, 0, 0),
        Phase::Waiting { at, fault_at } => (2, at.0, fault_at.0),
        Phase::GaveUp => (3, 0, 0),
    };
    rec[4] = tag;
    let mut flags = 0;
    if st.ever_up {
        flags |= 1;
    }
    if matches!(
        st.phase,
        Phase::Starting {
            fault_at: Some(_),
            ..
        }
    ) {
        flags |= 2;
    }
    if let Some(f) = st.last_fault {
        flags |= 4;
        rec[6] = f.kind.code() as u8;
        rec[24..32].copy_from_slice(&f.addr.to_le_bytes());
        rec[32..40].copy_from_slice(&f.pc.to_le_bytes());
    }
    if let Some(ns) = st.last_recovery_ns {
        flags |= 8;
        rec[48..56].copy_from_slice(&ns.to_le_bytes());
    }
    rec[5] = flags;
    rec[7] = n as u8;
    rec[8..16].copy_from_slice(&t1.to_le_bytes());
    rec[16..24].copy_from_slice(&t2.to_le_bytes());
    rec[40..48].copy_from_slice(&st.last_fault_at.map_or(0, |t| t.0).to_le_bytes());
    rec[56..64].copy_from_slice(&st.history.started_at.0.to_le_bytes());
    rec[64..72].copy_from_slice(&st.history.delay_ms.to_le_bytes());
    for (k, t) in recent.iter().skip(recent.len() - n).enumerate() {
        rec[RECORD + 8 * k..RECORD + 8 * k + 8].copy_from_slice(&t.0.to_le_bytes());
    }
    (rec.len(), n < recent.len())
}

/// A child's record from `b`, over `fresh` (what the monitor knows without
/// it); `None` for a record that is not well formed.
fn decode_child(b: &[u8], fresh: &ChildState) -> Option<(ChildState, usize)> {
    if b.len() < RECORD {
        return None;
    }
    let n = usize::from(b[7]);
    if n > MAX_TRACKED_FAULTS || b.len() < RECORD + 8 * n {
        return None;
    }
    let flags = b[5];
    let (t1, t2) = (Instant(u64_at(b, 8)), Instant(u64_at(b, 16)));
    let phase = match b[4] {
        0 => Phase::Starting {
            since: t1,
            fault_at: (flags & 2 != 0).then_some(t2),
        },
        1 => Phase::Running,
        2 => Phase::Waiting {
            at: t1,
            fault_at: t2,
        },
        3 => Phase::GaveUp,
        _ => return None,
    };
    let last_fault = if flags & 4 != 0 {
        Some(FaultInfo {
            kind: FaultKind::from_code(u64::from(b[6]))?,
            addr: u64_at(b, 24),
            pc: u64_at(b, 32),
        })
    } else {
        None
    };
    let mut history = History {
        started_at: Instant(u64_at(b, 56)),
        delay_ms: u64_at(b, 64),
        ..History::default()
    };
    for k in 0..n {
        // Cannot fail: n is at most the deque's capacity.
        let _ = history.recent.push_back(Instant(u64_at(b, RECORD + 8 * k)));
    }
    let st = ChildState {
        phase,
        restarts: u32_at(b, 0),
        last_fault,
        last_fault_at: last_fault.map(|_| Instant(u64_at(b, 40))),
        last_recovery_ns: (flags & 8 != 0).then(|| u64_at(b, 48)),
        heartbeats: 0,
        ever_up: flags & 1 != 0,
        counters: None,
        stalled_until: None,
        history,
        ping_sent: None,
        starved: false,
        spared: false,
        last_ping: fresh.last_ping,
    };
    Some((st, RECORD + 8 * n))
}
