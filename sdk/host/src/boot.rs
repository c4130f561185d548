//! What the supervisor tells a PD process at start: its name, and which
//! inherited descriptors are its control socket, status page, regions and
//! channel ends. Carried in the `AXOLOTL_BOOT` environment variable as
//! `;`-separated `key=value` items.

use std::fmt::Write as _;

/// The environment variable holding the boot description.
pub const ENV: &str = "AXOLOTL_BOOT";

/// One memory region to map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapSpec {
    /// Region name (for messages).
    pub name: String,
    /// Inherited memfd.
    pub fd: i32,
    /// Where to map it.
    pub vaddr: usize,
    /// Bytes.
    pub size: usize,
    /// Writable?
    pub write: bool,
    /// Executable?
    pub exec: bool,
}

/// One channel end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChanSpec {
    /// This PD's channel id.
    pub id: u8,
    /// Inherited socket.
    pub fd: i32,
    /// This end may call the other.
    pub pp: bool,
    /// This end may notify the other.
    pub notify: bool,
    /// The other end may call this one (its `pp` is set).
    pub callee: bool,
    /// The other end is this PD's parent: the runtime answers heartbeats and
    /// signals "up" on it.
    pub parent: bool,
}

/// A ring this PD produces (a plain ring, a link's active ring as its
/// sender, or a link's free ring as its receiver), so that an injected
/// `garbage` fault knows where to write. Addresses are where the PD maps
/// them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Produced {
    /// The ring's header.
    pub ring: usize,
    /// Its descriptor slots.
    pub slots: u32,
    /// For a link: bytes per buffer of its pool (0 for a plain ring).
    pub buf_size: u32,
    /// For a link: the pool this PD fills (0: it only gives buffers back,
    /// or a plain ring).
    pub pool: usize,
    /// This PD's id of the channel that carries the ring's notifications.
    pub channel: u8,
}

/// Everything a PD process needs to start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Boot {
    /// The PD's name.
    pub name: String,
    /// Control socket to the supervisor.
    pub ctrl: i32,
    /// The status page shared with the supervisor.
    pub page: i32,
    /// CLOCK_MONOTONIC nanoseconds when the system started (log timestamps).
    pub t0: u64,
    /// Fingerprint of the system description being run.
    pub system: u64,
    /// Regions.
    pub maps: Vec<MapSpec>,
    /// Channels.
    pub chans: Vec<ChanSpec>,
    /// The rings it produces.
    pub produces: Vec<Produced>,
    /// A spare's start signal: the read end of a pipe. A spare waits,
    /// before it maps or runs anything, until a byte arrives (take over
    /// from a faulted incarnation) or the pipe closes (not needed: exit).
    pub go: Option<i32>,
}

impl Boot {
    /// Encodes for the environment.
    pub fn encode(&self) -> String {
        let mut s = format!(
            "name={};ctrl={};page={};t0={};system={:#x}",
            self.name, self.ctrl, self.page, self.t0, self.system
        );
        for m in &self.maps {
            let perms = format!(
                "r{}{}",
                if m.write { "w" } else { "" },
                if m.exec { "x" } else { "" }
            );
            let _ = write!(
                s,
                ";map={},{},{:#x},{:#x},{}",
                m.name, m.fd, m.vaddr, m.size, perms
            );
        }
        for c in &self.chans {
            let _ = write!(
                s,
                ";chan={},{},{},{},{},{}",
                c.id, c.fd, c.pp as u8, c.notify as u8, c.callee as u8, c.parent as u8
            );
        }
        if let Some(go) = self.go {
            let _ = write!(s, ";go={go}");
        }
        for p in &self.produces {
            let _ = write!(
                s,
                ";produce={:#x},{},{},{:#x},{}",
                p.ring, p.slots, p.buf_size, p.pool, p.channel
            );
        }
        s
    }

    /// Decodes, saying what is wrong with a malformed description.
    pub fn decode(s: &str) -> Result<Boot, String> {
        let mut boot = Boot {
            ctrl: -1,
            page: -1,
            ..Boot::default()
        };
        for item in s.split(';') {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| format!("item '{item}' has no '='"))?;
            match key {
                "name" => boot.name = value.to_string(),
                "ctrl" => boot.ctrl = num(value)? as i32,
                "page" => boot.page = num(value)? as i32,
                "t0" => boot.t0 = num(value)?,
                "system" => boot.system = num(value)?,
                "map" => {
                    let f: Vec<&str> = value.split(',').collect();
                    let [name, fd, vaddr, size, perms] = f[..] else {
                        return Err(format!("map '{value}' needs 5 fields"));
                    };
                    boot.maps.push(MapSpec {
                        name: name.to_string(),
                        fd: num(fd)? as i32,
                        vaddr: num(vaddr)? as usize,
                        size: num(size)? as usize,
                        write: perms.contains('w'),
                        exec: perms.contains('x'),
                    });
                }
                "chan" => {
                    let f: Vec<&str> = value.split(',').collect();
                    let [id, fd, pp, notify, callee, parent] = f[..] else {
                        return Err(format!("chan '{value}' needs 6 fields"));
                    };
                    let id = num(id)?;
                    if id >= u64::from(axolotl_sdk::MAX_CHANNELS) {
                        return Err(format!("channel id {id} out of range"));
                    }
                    boot.chans.push(ChanSpec {
                        id: id as u8,
                        fd: num(fd)? as i32,
                        pp: pp == "1",
                        notify: notify == "1",
                        callee: callee == "1",
                        parent: parent == "1",
                    });
                }
                "produce" => {
                    let f: Vec<&str> = value.split(',').collect();
                    let [ring, slots, buf_size, pool, channel] = f[..] else {
                        return Err(format!("produce '{value}' needs 5 fields"));
                    };
                    let channel = num(channel)?;
                    if channel >= u64::from(axolotl_sdk::MAX_CHANNELS) {
                        return Err(format!("produce '{value}': channel id out of range"));
                    }
                    let slots = num(slots)?;
                    if !slots.is_power_of_two() || slots > u64::from(axolotl_ring::MAX_SLOTS) {
                        return Err(format!("produce '{value}': bad slot count"));
                    }
                    boot.produces.push(Produced {
                        ring: num(ring)? as usize,
                        slots: slots as u32,
                        buf_size: u32::try_from(num(buf_size)?)
                            .map_err(|_| format!("produce '{value}': buffer too large"))?,
                        pool: num(pool)? as usize,
                        channel: channel as u8,
                    });
                }
                "go" => {
                    boot.go = Some(
                        i32::try_from(num(value)?)
                            .map_err(|_| format!("go '{value}': not a descriptor"))?,
                    )
                }
                other => return Err(format!("unknown item '{other}'")),
            }
        }
        if boot.name.is_empty() || boot.ctrl < 0 || boot.page < 0 {
            return Err("name, ctrl and page are required".into());
        }
        Ok(boot)
    }
}

fn num(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|_| format!("'{s}' is not a number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let boot = Boot {
            name: "worker".into(),
            ctrl: 3,
            page: 4,
            maps: vec![MapSpec {
                name: "ring".into(),
                fd: 5,
                vaddr: 0x200_0000,
                size: 0x1000,
                write: true,
                exec: false,
            }],
            chans: vec![ChanSpec {
                id: 62,
                fd: 6,
                pp: true,
                notify: true,
                callee: false,
                parent: true,
            }],
            t0: 77,
            system: 0xfeed,
            produces: vec![
                Produced {
                    ring: 0x200_0000,
                    slots: 64,
                    buf_size: 2048,
                    pool: 0x200_1000,
                    channel: 3,
                },
                Produced {
                    ring: 0x300_0000,
                    slots: 8,
                    buf_size: 0,
                    pool: 0,
                    channel: 0,
                },
            ],
            go: None,
        };
        assert_eq!(Boot::decode(&boot.encode()), Ok(boot.clone()));
        let spare = Boot {
            go: Some(9),
            ..boot
        };
        assert!(spare.encode().contains(";go=9"));
        assert_eq!(Boot::decode(&spare.encode()), Ok(spare));
        assert!(Boot::decode("name=x;ctrl=1;page=2;go=-1").is_err());
        assert!(Boot::decode("name=x;ctrl=1").is_err());
        assert!(Boot::decode("name=x;ctrl=1;page=2;chan=63,1,0,0,0,0").is_err());
        assert!(Boot::decode("name=x;ctrl=z;page=2").is_err());
        assert!(Boot::decode("name=x;ctrl=1;page=2;map=a,1").is_err());
        assert!(Boot::decode("name=x;ctrl=1;page=2;produce=0x1000,3,0,0,1").is_err());
        assert!(Boot::decode("name=x;ctrl=1;page=2;produce=0x1000,4,0,0").is_err());
        assert!(Boot::decode("name=x;ctrl=1;page=2;produce=0x1000,4,0,0,63").is_err());
    }
}
