//! The Linux-hosted runtime keeps seL4's rules: a region is mapped with the
//! permissions system.xml gives, calls travel only where `pp` allows, and
//! once `init` has returned a PD can open no file, socket or program of
//! its own (seccomp).
//! Uses the test program `axolotl-probe` (built with the workspace).

mod common;

use common::axolotl;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SYSTEM: &str = r#"<?xml version="1.0"?>
<system>
    <memory_region name="shared" size="0x1000" />
    <protection_domain name="writer" priority="10">
        <program_image path="axolotl-probe.elf" />
        <map mr="shared" vaddr="0x2000000" perms="rw" />
    </protection_domain>
    <protection_domain name="reader" priority="20">
        <program_image path="axolotl-probe.elf" />
        <map mr="shared" vaddr="0x3000000" perms="r" />
    </protection_domain>
    <channel>
        <end pd="writer" id="1" />
        <end pd="reader" id="2" />
    </channel>
</system>
"#;

#[test]
fn read_only_maps_fault_on_write_and_calls_need_pp() {
    let dir = std::env::temp_dir().join(format!("axolotl-isolation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let system = dir.join("system.xml");
    std::fs::write(&system, SYSTEM).unwrap();
    let probe_dir = axolotl().parent().unwrap().to_path_buf();
    assert!(
        probe_dir.join("axolotl-probe").is_file(),
        "build the workspace first"
    );
    let log = dir.join("log");
    let mut child = Command::new(axolotl())
        .arg("run")
        .arg(&system)
        .args(["--no-build", "--pd-dir"])
        .arg(&probe_dir)
        .arg("--control")
        .arg(dir.join("c.sock"))
        // The writer writes, notifies the reader, and tries a call it has no
        // pp for; the reader, when notified, reads the shared word, tries
        // to make its read-only map writable, then writes through it.
        .env(
            "AXOLOTL_PROBE_writer",
            "open:/etc/hostname,write:2000000,notify:1,call:1|",
        )
        .env(
            "AXOLOTL_PROBE_reader",
            "|open:/etc/hostname,socket:inet,socket:unix,exec:/bin/true,read:3000000,protect:3000000,write:3000000",
        )
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("reader has no parent") || start.elapsed() > Duration::from_secs(20) {
            break text;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    common::libc_kill(child.id() as i32, libc::SIGINT);
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        text.contains("probe call on 1: Err(NotPermitted)"),
        "{text}"
    );
    // What init could do (the writer's probe ran its actions at init) the
    // reader, when notified, cannot.
    assert!(text.contains("probe open /etc/hostname: done"), "{text}");
    for refused in [
        "probe open /etc/hostname: refused (Operation not permitted",
        "probe socket inet: refused (Operation not permitted",
        "probe socket unix: refused (Operation not permitted",
        "probe exec /bin/true: refused (Operation not permitted",
    ] {
        assert!(text.contains(refused), "no '{refused}':\n{text}");
    }
    assert!(
        text.contains("probe read 3000000 = 0x5eed"),
        "the reader sees the writer's word:\n{text}"
    );
    assert!(
        text.contains("probe mprotect 3000000: refused"),
        "a read-only map could be made writable:\n{text}"
    );
    assert!(text.contains("probe writing 3000000"), "{text}");
    assert!(
        !text.contains("probe wrote 3000000"),
        "a write through a read-only map went through:\n{text}"
    );
    assert!(
        text.contains("reader (pid")
            && text.contains("faulted: memory-access at address 0x3000000"),
        "{text}"
    );
    assert!(
        !text.contains("probe called on"),
        "a call without pp arrived:\n{text}"
    );
}
