//! `axolotl qemu`: boots an image under QEMU with the serial console on the
//! terminal, and serves `axolotl status` and `axolotl inject` through it.
//!
//! QEMU's serial port is this program's pipe: every console line is copied
//! to standard output, lines typed on standard input go to the console, and
//! a request on the control socket (the same one `axolotl run` serves)
//! becomes a console command for the monitor (`status`, `inject PD KIND`)
//! whose answer line (`AXOLOTL-STATUS ...`, `AXOLOTL-INJECTED ...`,
//! `AXOLOTL-ERROR ...`) goes back to the requester.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axolotl_monitor::console::{ERROR_PREFIX, INJECTED_PREFIX, STATUS_PREFIX, UP_MARKER};

/// The QEMU command line that boots `img` for `board`, with `extra`
/// options (the network) at the end.
pub fn command(
    board: &str,
    config: &str,
    img: &Path,
    sdk: &Path,
    extra: &[String],
) -> Result<Command, String> {
    let (prog, args): (&str, Vec<String>) = match board {
        "qemu_virt_aarch64" => (
            "qemu-system-aarch64",
            vec![
                "-machine".into(),
                "virt,virtualization=on".into(),
                "-cpu".into(),
                "cortex-a53".into(),
                "-m".into(),
                "size=2G".into(),
                "-device".into(),
                format!("loader,file={},addr=0x70000000,cpu-num=0", img.display()),
            ],
        ),
        "x86_64_generic" => {
            // The Microkit tool writes the 32-bit kernel ELF beside the image.
            let beside = img.with_file_name("sel4_32.elf");
            let kernel = if beside.is_file() {
                beside
            } else {
                sdk.join("board/x86_64_generic")
                    .join(config)
                    .join("elf/sel4_32.elf")
            };
            (
                "qemu-system-x86_64",
                vec![
                    "-cpu".into(),
                    "qemu64,+fsgsbase,+pdpe1gb,+xsaveopt,+xsave".into(),
                    "-m".into(),
                    "2G".into(),
                    "-kernel".into(),
                    kernel.display().to_string(),
                    "-initrd".into(),
                    img.display().to_string(),
                ],
            )
        }
        _ => return Err(format!("no QEMU machine for board '{board}'")),
    };
    if super::image::on_path(prog).is_none() {
        return Err(format!(
            "{prog} is not installed: on Debian or Ubuntu, `apt-get install qemu-system-arm \
             qemu-system-x86` (QEMU 7.2 or newer)"
        ));
    }
    let mut cmd = Command::new(prog);
    cmd.args(["-display", "none", "-monitor", "none", "-serial", "stdio"])
        .args(args)
        .args(extra);
    Ok(cmd)
}

/// Kinds of answer line, and what follows the prefix.
fn answer_of(line: &str) -> Option<&str> {
    [STATUS_PREFIX, INJECTED_PREFIX, ERROR_PREFIX]
        .iter()
        .find_map(|p| line.find(p).map(|at| &line[at..]))
}

/// Boots `img` with QEMU options `extra` (the network) and serves the
/// console until QEMU ends (or `timeout`).
pub fn run(
    board: &str,
    config: &str,
    img: &Path,
    extra: &[String],
    control: &Path,
    timeout: Option<Duration>,
) -> Result<(), String> {
    let sdk = super::image::sdk_dir();
    let mut cmd = command(board, config, img, &sdk, extra)?;
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    // SAFETY: prctl in the child between fork and exec touches no memory of
    // the parent; it makes QEMU die with this process.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let listener = bind(control)?;
    eprintln!(
        "axolotl: booting {} under {:?}; control socket {}; Ctrl-C stops",
        img.display(),
        cmd.get_program(),
        control.display()
    );
    let started = Instant::now();
    let mut qemu = cmd
        .spawn()
        .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
    let stdin = Arc::new(Mutex::new(qemu.stdin.take()));
    let stdout = qemu.stdout.take().ok_or("no pipe from QEMU")?;
    let (answers_tx, answers_rx) = mpsc::channel::<String>();

    std::thread::spawn(move || copy_console(stdout, started, answers_tx));
    {
        let stdin = stdin.clone();
        let answers = Mutex::new(answers_rx);
        std::thread::spawn(move || serve_control(listener, stdin, answers));
    }
    {
        let stdin = stdin.clone();
        std::thread::spawn(move || forward_input(stdin));
    }
    let status = wait(&mut qemu, timeout);
    let _ = std::fs::remove_file(control);
    match status {
        Some(s) if s.success() => Ok(()),
        Some(s) => Err(format!("QEMU ended: {s}")),
        None => {
            eprintln!(
                "axolotl: stopped QEMU after {:?}",
                timeout.unwrap_or_default()
            );
            Ok(())
        }
    }
}

fn bind(control: &Path) -> Result<UnixListener, String> {
    if let Some(dir) = control.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    if std::os::unix::net::UnixStream::connect(control).is_ok() {
        return Err(format!(
            "a system is already running with control socket {} (stop it, or pass --control)",
            control.display()
        ));
    }
    let _ = std::fs::remove_file(control);
    UnixListener::bind(control).map_err(|e| format!("{}: {e}", control.display()))
}

fn wait(qemu: &mut Child, timeout: Option<Duration>) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        if let Ok(Some(s)) = qemu.try_wait() {
            return Some(s);
        }
        if timeout.is_some_and(|t| start.elapsed() >= t) {
            let _ = qemu.kill();
            let _ = qemu.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Copies the console to standard output, line by line, noting the moment
/// every PD is up and passing answers on.
fn copy_console(stdout: impl Read, started: Instant, answers: Sender<String>) {
    let mut reader = BufReader::new(stdout);
    let mut buf = Vec::new();
    let mut up = false;
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end_matches(['\n', '\r']);
        {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
        if !up && line.contains(UP_MARKER) {
            up = true;
            println!(
                "axolotl: every PD up {:.0} ms after QEMU started",
                started.elapsed().as_secs_f64() * 1e3
            );
        }
        if let Some(a) = answer_of(line) {
            let _ = answers.send(a.to_string());
        }
    }
}

fn send_line(stdin: &Mutex<Option<ChildStdin>>, line: &str) -> Result<(), String> {
    let mut guard = stdin.lock().map_err(|_| "console lock poisoned")?;
    let pipe = guard.as_mut().ok_or("QEMU's console is closed")?;
    // One byte at a time would be kinder to a slow UART; QEMU buffers.
    pipe.write_all(format!("{line}\n").as_bytes())
        .and_then(|()| pipe.flush())
        .map_err(|e| format!("console: {e}"))
}

/// Lines typed on standard input go to the console.
fn forward_input(stdin: Arc<Mutex<Option<ChildStdin>>>) {
    let input = std::io::stdin();
    for line in input.lock().lines() {
        let Ok(line) = line else { return };
        if send_line(&stdin, &line).is_err() {
            return;
        }
    }
}

/// Answers control requests through the console, one at a time.
fn serve_control(
    listener: UnixListener,
    stdin: Arc<Mutex<Option<ChildStdin>>>,
    answers: Mutex<Receiver<String>>,
) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut line = String::new();
        if BufReader::new((&stream).take(4096))
            .read_line(&mut line)
            .is_err()
        {
            continue;
        }
        let answer = match answers.lock() {
            Ok(rx) => ask(&stdin, &rx, line.trim()),
            Err(_) => "error: internal: answers lock poisoned\n".into(),
        };
        let _ = (&stream).write_all(answer.as_bytes());
    }
}

/// Sends one request to the monitor and turns its answer into what
/// `axolotl status` / `axolotl inject` expect from a control socket.
fn ask(stdin: &Mutex<Option<ChildStdin>>, answers: &Receiver<String>, request: &str) -> String {
    let words: Vec<&str> = request.split_whitespace().collect();
    let expect = match words[..] {
        ["status"] => STATUS_PREFIX,
        ["inject", _, _] | ["inject", _, "stall" | "corrupt", _] => INJECTED_PREFIX,
        _ => return format!("error: unknown request '{request}'\n"),
    };
    // Answers nobody waited for (a person typing `status`) are stale.
    while answers.try_recv().is_ok() {}
    if let Err(e) = send_line(stdin, request) {
        return format!("error: {e}\n");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match answers.recv_timeout(left) {
            Ok(a) if a.starts_with(expect) => {
                let rest = &a[expect.len()..];
                return match words[..] {
                    ["inject", pd, kind, ..] => format!("injected {kind} into {pd}\n"),
                    _ => rest.to_string(),
                };
            }
            Ok(a) if a.starts_with(ERROR_PREFIX) => {
                return format!("error: {}\n", &a[ERROR_PREFIX.len()..]);
            }
            Ok(_) => continue,
            Err(RecvTimeoutError::Timeout) => {
                return "error: the monitor did not answer on the console within 10 s\n".into()
            }
            Err(RecvTimeoutError::Disconnected) => return "error: QEMU's console closed\n".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_found_after_a_log_prefix() {
        assert_eq!(
            answer_of("guardian  INFO  AXOLOTL-STATUS [1]"),
            Some("AXOLOTL-STATUS [1]")
        );
        assert_eq!(
            answer_of("AXOLOTL-ERROR no such PD"),
            Some("AXOLOTL-ERROR no such PD")
        );
        assert_eq!(answer_of("store INFO replayed 3 records"), None);
    }
}
