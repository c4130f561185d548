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
    let out = to_microkit("demo.xml", GOOD).unwrap();
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
