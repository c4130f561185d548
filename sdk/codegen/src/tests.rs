use super::*;

const DEMO: &str = include_str!("../../sysdesc/tests/good/demo.xml");

fn module(image: &str) -> String {
    let s = axolotl_sysdesc::parse("demo.xml", DEMO).unwrap();
    pd_module(
        &s,
        pd_for_image(&s, image).unwrap(),
        axolotl_sysdesc::fingerprint(DEMO),
        &[],
    )
}

#[test]
fn child_entries_come_from_the_entries_file() {
    let file = "store 0x200100 0x200200 0x200300 0x200400 0x200500\n\nnobody 0x1 0x2 0x3 0x4 0x5\n";
    let entries = Entries::parse_file(file).unwrap();
    assert_eq!(
        entries[0].to_line(),
        "store 0x200100 0x200200 0x200300 0x200400 0x200500"
    );
    let s = axolotl_sysdesc::parse("demo.xml", DEMO).unwrap();
    let m = pd_module(&s, s.monitor().unwrap(), 0, &entries);
    assert!(m.contains(
        "ChildEntries { child: Child::new(2), reset: 0x200100, inject_null: 0x200200, inject_panic: 0x200300, inject_hang: 0x200400, inject_swifi: 0x200500 }"
    ), "{m}");
    // Only children get entries, and only those the file names.
    assert_eq!(m.matches("ChildEntries {").count(), 1, "{m}");
    assert!(!module("store.elf").contains("ChildEntries {"));
    let bad = Entries::parse_file("store 0x1 0x2\n").unwrap_err();
    assert!(bad.starts_with("line 1: expected"), "{bad}");
    assert!(Entries::parse_file("store 0x1 0x2 0x3 0x4 zz\n").is_err());
    assert!(Entries::parse_file("store 0x1 0x2 0x3 0x4\n").is_err());
}

#[test]
fn names_are_rust_constants() {
    assert_eq!(const_name("jobs_ring"), "JOBS_RING");
    assert_eq!(const_name("9lives"), "_9LIVES");
    assert_eq!(const_name("a-b.c"), "A_B_C");
    assert_eq!(const_name(""), "_");
}

#[test]
fn the_consumer_gets_its_channels_ring_and_store() {
    let m = module("consumer.elf");
    assert!(m.contains("pub const NAME: &str = \"consumer\";"), "{m}");
    assert!(
        m.contains("pub const GUARDIAN: Channel = Channel::new(0);"),
        "{m}"
    );
    assert!(
        m.contains("pub const STORE: Channel = Channel::new(1);"),
        "{m}"
    );
    assert!(
        m.contains("pub const PRODUCER: Channel = Channel::new(3);"),
        "{m}"
    );
    assert!(
        m.contains("pub const JOBS: axolotl_sdk::config::RingConfig"),
        "{m}"
    );
    assert!(
        m.contains("vaddr: 0x2000000, size: 0x1000, writable: true"),
        "{m}"
    );
    assert!(
        m.contains("slots: 64, role: axolotl_sdk::config::RingRole::Consumer"),
        "{m}"
    );
    // The lists fault injection walks (`garbage` writes what a PD produces).
    assert!(
        m.contains("pub const ALL: &[axolotl_sdk::config::RingConfig] = &[JOBS];"),
        "{m}"
    );
    assert!(
        m.contains("pub const ALL: &[axolotl_sdk::config::LinkConfig] = &[];"),
        "{m}"
    );
    assert!(
        m.contains("pub const STORE: Option<Channel> = Some(Channel::new(1));"),
        "{m}"
    );
    assert!(
        m.contains("pub const TIMER: Option<Channel> = None;"),
        "{m}"
    );
    assert!(
        m.contains("pub const PARENT: Option<Channel> = Some(Channel::new(0));"),
        "{m}"
    );
}

#[test]
fn the_monitor_gets_its_children_and_tick() {
    let m = module("guardian.elf");
    assert_eq!(m.matches("SupervisedChild {").count(), 4, "{m}");
    assert!(
        m.contains("name: \"producer\", child: Child::new(3), channel: Some(Channel::new(3))"),
        "{m}"
    );
    assert!(
        m.contains("heartbeat: Some(Heartbeat { period_ms: 100, misses: 3 })"),
        "{m}"
    );
    assert!(
        m.contains("pub const TICK_CHANNEL: Option<Channel> = Some(Channel::new(1));"),
        "{m}"
    );
    assert!(
        m.contains("pub const TICK_SOURCE: Option<Child> = Some(Child::new(1));"),
        "{m}"
    );
}

#[test]
fn the_timer_and_store_get_their_tables() {
    let t = module("timer.elf");
    assert!(
        t.contains("Tick { channel: Channel::new(0), period_ns: 100000000 }"),
        "{t}"
    );
    assert!(t.contains("ChannelSet::from_bits(0x4)"), "{t}");
    assert!(
        t.contains("pub const TIMER: Channel = Channel::new(1);"),
        "{t}"
    );
    let s = module("store.elf");
    assert!(s.contains("StoreClient { channel: Channel::new(1), namespace: \"producer\", quota_bytes: 256, quota_keys: 4, buffer: None, reads: &[] }"), "{s}");
    assert!(
        s.contains("StoreClient { channel: Channel::new(2), namespace: \"consumer\""),
        "{s}"
    );
    assert!(s.contains("pub const JOURNAL: Option<Region> = Some(axolotl_sdk::config::Region { name: \"store_journal\", vaddr: 0x2000000, size: 0x10000, writable: true });"), "{s}");
}

#[test]
fn unknown_or_shared_images_are_errors() {
    let s = axolotl_sysdesc::parse("demo.xml", DEMO).unwrap();
    assert!(pd_for_image(&s, "nothing.elf")
        .unwrap_err()
        .contains("no protection_domain"));
    let shared = DEMO.replace("consumer.elf", "producer.elf");
    let s = axolotl_sysdesc::parse("demo.xml", &shared).unwrap();
    assert!(pd_for_image(&s, "producer.elf")
        .unwrap_err()
        .contains("several"));
}

#[test]
fn value_buffers_grants_warden_and_monitor_state_are_generated() {
    let text = include_str!("../../sysdesc/tests/good/store_buffer.xml");
    let s = axolotl_sysdesc::parse("store_buffer.xml", text).unwrap();
    let module = |image: &str| pd_module(&s, pd_for_image(&s, image).unwrap(), 0, &[]);
    let store = module("store.elf");
    assert!(store.contains("namespace: \"a\", quota_bytes: 70000, quota_keys: 4, buffer: Some(axolotl_sdk::config::Region { name: \"a_values\", vaddr: 0x3000000, size: 0x11000, writable: true }), reads: &[\"b\"] }"), "{store}");
    assert!(
        store.contains(
            "namespace: \"b\", quota_bytes: 256, quota_keys: 4, buffer: None, reads: &[] }"
        ),
        "{store}"
    );
    let a = module("a.elf");
    assert!(a.contains("pub const STORE_BUFFER: Option<Region> = Some(axolotl_sdk::config::Region { name: \"a_values\", vaddr: 0x2000000, size: 0x11000, writable: true });"), "{a}");
    assert!(
        a.contains("pub const PARENT_NAME: Option<&str> = Some(\"guardian\");"),
        "{a}"
    );
    let g = module("guardian.elf");
    assert!(g.contains("pub const MONITOR_STATE: Option<Region> = Some(axolotl_sdk::config::Region { name: \"monitor_state\", vaddr: 0x2300000, size: 0x10000, writable: true });"), "{g}");
    assert!(
        g.contains("pub const PARENT_NAME: Option<&str> = Some(\"warden\");"),
        "{g}"
    );
    let w = module("warden.elf");
    assert!(
        w.contains("pub const MONITOR_NAME: &str = \"guardian\";"),
        "{w}"
    );
    assert!(
        w.contains("pub const PARENT_NAME: Option<&str> = None;"),
        "{w}"
    );
}
