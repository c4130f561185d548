//! Log lines on stderr, one `write` each so processes do not interleave
//! within a line: `seconds-since-start  pd  LEVEL  message`.

use std::io::Write;
use std::sync::OnceLock;

struct Logger {
    name: String,
    t0: u64,
    level: log::LevelFilter,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= self.level
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let t = crate::sys::monotonic_ns().saturating_sub(self.t0);
        let line = format!(
            "{:>4}.{:03} {:<9} {:<5} {}\n",
            t / 1_000_000_000,
            (t / 1_000_000) % 1000,
            self.name,
            record.level(),
            record.args()
        );
        let _ = std::io::stderr().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// The level from `AXOLOTL_LOG` (error, warn, info, debug, trace), info by default.
pub fn level_from_env() -> log::LevelFilter {
    std::env::var("AXOLOTL_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(log::LevelFilter::Info)
}

/// Installs the logger for this process, naming it `name`.
pub fn init(name: &str, t0: u64) {
    let level = level_from_env();
    let logger = LOGGER.get_or_init(|| Logger {
        name: name.to_string(),
        t0,
        level,
    });
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
}
