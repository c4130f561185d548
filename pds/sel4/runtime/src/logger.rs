//! Log lines `pd  LEVEL  message`: on the kernel's debug output, or on the
//! console stream to the serial driver ([`ConsoleSink`]).

extern crate alloc;

use axolotl_ring::bytes::ByteWriter;
use core::cell::UnsafeCell;
use core::fmt::Write as _;
use core::sync::atomic::{AtomicBool, Ordering};

/// Where a PD's log goes instead of the kernel's debug output: the writing
/// end of a console stream, and the channel to notify when there is more.
pub struct ConsoleSink {
    /// The stream.
    pub writer: ByteWriter,
    /// Notified after each line.
    pub notify: sel4_microkit::Channel,
}

struct Logger {
    name: &'static str,
    console: UnsafeCell<Option<ConsoleSink>>,
    /// Set while a line is being written: a log call from inside logging
    /// (a panic in a formatter) goes to the debug output instead.
    busy: AtomicBool,
    dropped: UnsafeCell<u64>,
}

// SAFETY: a PD has one thread; `busy` keeps re-entrant use (the only other
// way to reach the logger twice at once) away from the cells.
unsafe impl Sync for Logger {}

/// A line being formatted, bounded so that formatting needs no heap.
struct Line(heapless::String<LINE>);

/// Longest line; longer ones are cut (a status line for 63 PDs fits).
const LINE: usize = 4096;

impl core::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for c in s.chars() {
            // Leave room for the line end.
            if self.0.len() + c.len_utf8() > LINE - 2 || self.0.push(c).is_err() {
                break;
            }
        }
        Ok(())
    }
}

impl log::Log for Logger {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, r: &log::Record) {
        if self.busy.swap(true, Ordering::Acquire) {
            sel4_microkit::debug_println!("{:<9} {:<5} {}", self.name, r.level(), r.args());
            return;
        }
        // SAFETY: `busy` is held: nothing else touches the cells now.
        let console = unsafe { &mut *self.console.get() };
        match console {
            Some(sink) => {
                // SAFETY: as above.
                let dropped = unsafe { &mut *self.dropped.get() };
                to_console(self.name, sink, dropped, r);
            }
            None => {
                sel4_microkit::debug_println!("{:<9} {:<5} {}", self.name, r.level(), r.args())
            }
        }
        self.busy.store(false, Ordering::Release);
    }

    fn flush(&self) {}
}

/// Out of line: the line buffer is large, and only PDs with a console
/// should pay for it on their stack.
#[inline(never)]
fn to_console(name: &str, sink: &mut ConsoleSink, dropped: &mut u64, r: &log::Record) {
    let mut line = Line(heapless::String::new());
    let _ = write!(line, "{:<9} {:<5} {}", name, r.level(), r.args());
    let _ = line.0.push('\r');
    let _ = line.0.push('\n');
    if *dropped > 0 {
        let mut note = Line(heapless::String::new());
        let _ = write!(note, "{name:<9} WARN  {dropped} console lines lost\r\n");
        if sink.writer.room() >= note.0.len() {
            sink.writer.write(note.0.as_bytes());
            *dropped = 0;
        }
    }
    // A whole line or nothing: the serial driver runs below the monitor's
    // priority, so waiting for room would wait for ever.
    if sink.writer.room() >= line.0.len() {
        sink.writer.write(line.0.as_bytes());
    } else {
        *dropped += 1;
    }
    // Not through the IPC buffer: a line may come from an injected fault
    // that stopped the PD in a system call that holds it.
    crate::signal(sink.notify);
}

pub fn init(name: &'static str, console: Option<ConsoleSink>) {
    let logger = alloc::boxed::Box::leak(alloc::boxed::Box::new(Logger {
        name,
        console: UnsafeCell::new(console),
        busy: AtomicBool::new(false),
        dropped: UnsafeCell::new(0),
    }));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}
