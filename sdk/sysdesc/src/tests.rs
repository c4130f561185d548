use super::*;

const GOOD: &str = include_str!("../tests/good/demo.xml");

#[test]
fn the_demo_parses_and_accessors_find_roles() {
    let s = parse("demo.xml", GOOD).unwrap_or_else(|d| panic!("{d:?}"));
    assert_eq!(s.file, "demo.xml");
    let monitor = s.monitor().unwrap();
    assert_eq!(s.pds[monitor].name, "guardian");
    assert_eq!(s.pds[s.timer().unwrap()].name, "timer");
    assert_eq!(s.pds[s.store().unwrap()].name, "store");
    let children: Vec<&str> = s
        .children_of(monitor)
        .map(|i| s.pds[i].name.as_str())
        .collect();
    assert_eq!(children, ["timer", "store", "producer", "consumer"]);
    let producer = s.pd_index("producer").unwrap();
    let peers: Vec<(u8, &str)> = s
        .channels_of(producer)
        .map(|(_, me, peer)| (me.id, s.pds[peer.pd].name.as_str()))
        .collect();
    assert_eq!(
        peers,
        [(0, "guardian"), (1, "store"), (2, "timer"), (3, "consumer")]
    );
    assert_eq!(s.rings.len(), 1);
    assert_eq!(s.rings[0].producer, producer);
    assert_eq!(s.pds[producer].restart.unwrap().max_faults, 10);
    assert_eq!(
        s.pds[s.timer().unwrap()].irqs[0].name.as_deref(),
        Some("timer")
    );
}

#[test]
fn numbers_follow_microkit() {
    assert_eq!(parse::number("0x1_000"), Some(0x1000));
    assert_eq!(parse::number("4_096"), Some(4096));
    assert_eq!(parse::number("x"), None);
    assert_eq!(parse::number(""), None);
}

#[test]
fn lowering_removes_every_axolotl_name_and_keeps_the_rest() {
    let out = to_microkit("demo.xml", GOOD, "qemu_virt_aarch64").unwrap();
    assert!(!out.contains("xmlns:axolotl"), "{out}");
    let doc = roxmltree::Document::parse(&out).unwrap();
    for n in doc.descendants().filter(|n| n.is_element()) {
        assert_eq!(n.tag_name().namespace(), None, "{out}");
        assert!(
            n.attributes()
                .all(|a| a.namespace().is_none() && !a.name().contains(':')),
            "{out}"
        );
        assert!(!n.tag_name().name().contains("axolotl"));
    }
    assert!(
        !out.contains("<axolotl:") && !out.contains(" axolotl:name"),
        "{out}"
    );
    let count = |tag: &str| doc.descendants().filter(|n| n.has_tag_name(tag)).count();
    let src = roxmltree::Document::parse(GOOD).unwrap();
    let src_count = |tag: &str| {
        src.descendants()
            .filter(|n| n.tag_name().name() == tag && n.tag_name().namespace().is_none())
            .count()
    };
    for tag in [
        "protection_domain",
        "channel",
        "end",
        "map",
        "memory_region",
        "irq",
        "program_image",
    ] {
        assert_eq!(count(tag), src_count(tag), "{tag}");
        assert!(count(tag) > 0, "{tag}");
    }
    // Attributes of Microkit elements survive; Axolotl's are gone.
    let irqs: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("irq"))
        .collect();
    let numbers: Vec<_> = irqs.iter().filter_map(|n| n.attribute("irq")).collect();
    assert_eq!(numbers, ["27", "30"]);
    assert!(irqs.iter().all(|n| n.attributes().count() == 3));
}

const BOARDS: &str = r#"<system xmlns:axolotl="urn:axolotl:system:1">
    <memory_region name="uart" size="0x1000" phys_addr="0x9000000" axolotl:board="qemu_virt_aarch64" />
    <protection_domain name="a" priority="10">
        <program_image path="a.elf" />
        <irq irq="30" id="1" axolotl:name="timer" axolotl:board="linux qemu_virt_aarch64" />
        <irq ioapic="0" pin="2" vector="10" id="1" axolotl:name="timer" axolotl:board="x86_64_generic" />
        <map mr="uart" vaddr="0x3000000" perms="rw" axolotl:board="qemu_virt_aarch64" />
        <ioport id="0" addr="0x3f8" size="8" axolotl:name="com1" axolotl:board="x86_64_generic" />
    </protection_domain>
    <protection_domain name="b" priority="5" axolotl:board="qemu_virt_aarch64 x86_64_generic">
        <program_image path="b.elf" />
    </protection_domain>
    <channel axolotl:board="qemu_virt_aarch64 x86_64_generic">
        <end pd="a" id="2" />
        <end pd="b" id="0" />
    </channel>
</system>
"#;

#[test]
fn board_attributes_select_elements() {
    assert_eq!(
        boards_named(BOARDS),
        ["qemu_virt_aarch64", "linux", "x86_64_generic"]
    );
    let host = parse("b.xml", BOARDS).unwrap_or_else(|d| panic!("{d:?}"));
    assert_eq!(host.pds.len(), 1);
    assert_eq!(host.pds[0].irqs.len(), 1);
    assert!(host.pds[0].maps.is_empty() && host.channels.is_empty() && host.regions.is_empty());
    let arm = parse_for("b.xml", BOARDS, "qemu_virt_aarch64").unwrap_or_else(|d| panic!("{d:?}"));
    assert_eq!(
        (arm.pds.len(), arm.channels.len(), arm.regions.len()),
        (2, 1, 1)
    );
    assert_eq!(arm.pds[0].irqs[0].irq, Some(30));
    assert!(arm.pds[0].ioports.is_empty());
    let x86 = parse_for("b.xml", BOARDS, "x86_64_generic").unwrap_or_else(|d| panic!("{d:?}"));
    assert_eq!(x86.pds[0].irqs[0].irq, None);
    assert_eq!(x86.pds[0].ioports[0].addr, 0x3f8);
    assert_eq!(x86.pds[0].ioports[0].name.as_deref(), Some("com1"));
    // Lowered: the other board's elements and the attribute itself are gone.
    let low = to_microkit("b.xml", BOARDS, "x86_64_generic").unwrap();
    assert!(!low.contains("irq=\"30\"") && !low.contains("uart") && !low.contains("board"));
    assert!(low.contains("pin=\"2\"") && low.contains("<ioport"));
    let low = to_microkit("b.xml", BOARDS, "qemu_virt_aarch64").unwrap();
    assert!(low.contains("irq=\"30\"") && !low.contains("ioport") && low.contains("name=\"b\""));
}

#[test]
fn board_lists_are_checked() {
    let bad = BOARDS.replace(
        "axolotl:board=\"qemu_virt_aarch64\" />",
        "axolotl:board=\"qemu-virt\" />",
    );
    let d = parse_for("b.xml", &bad, "qemu_virt_aarch64").unwrap_err();
    // Both elements that name the bad board, though neither is on this board.
    assert_eq!(d.len(), 2, "{d:?}");
    assert!(d[0].to_string().starts_with("b.xml:2:"), "{}", d[0]);
    assert!(d[1].to_string().starts_with("b.xml:7:"), "{}", d[1]);
    assert!(
        d[0].to_string()
            .contains("axolotl:board is a space-separated list"),
        "{}",
        d[0]
    );
    // On one board two irqs with the same id are an error as ever.
    let dup = BOARDS.replace(
        "axolotl:board=\"x86_64_generic\" />\n        <map",
        "/>\n        <map",
    );
    let d = parse_for("b.xml", &dup, "qemu_virt_aarch64").unwrap_err();
    assert!(d[0].to_string().contains("id already used"), "{d:?}");
}
