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

/// Counts the bytes a line will take, so that it is written whole or not
/// at all, with no buffer to format it into (a status line of many PDs
/// is longer than a PD's stack could hold).
struct Count(usize);

impl core::fmt::Write for Count {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

/// Formats straight into the console stream (after [`Count`] said it fits).
struct Stream<'a>(&'a mut ByteWriter);

impl core::fmt::Write for Stream<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0.write(s.as_bytes());
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

/// A line is formatted twice: once to count its bytes, then, if the
/// console stream has room for all of them, into the stream. Only this
/// PD writes the stream, so the line's pieces stay together; a line longer
/// than the stream's room is dropped whole and counted (the console ring,
/// 16 KiB in the shipped system.xml, holds a status line of some 50 PDs).
#[inline(never)]
fn to_console(name: &str, sink: &mut ConsoleSink, dropped: &mut u64, r: &log::Record) {
    if *dropped > 0 {
        let mut n = Count(0);
        let _ = write!(n, "{name:<9} WARN  {dropped} console lines lost\r\n");
        if sink.writer.room() >= n.0 {
            let _ = write!(
                Stream(&mut sink.writer),
                "{name:<9} WARN  {dropped} console lines lost\r\n"
            );
            *dropped = 0;
        }
    }
    // A whole line or nothing: the serial driver runs below the monitor's
    // priority, so waiting for room would wait for ever.
    let mut n = Count(0);
    let _ = write!(n, "{:<9} {:<5} {}\r\n", name, r.level(), r.args());
    if sink.writer.room() >= n.0 {
        let _ = write!(
            Stream(&mut sink.writer),
            "{:<9} {:<5} {}\r\n",
            name,
            r.level(),
            r.args()
        );
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
