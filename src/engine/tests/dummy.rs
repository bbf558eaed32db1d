//! The dummy kind (`pipework dummy GUEST ADDR`).

use super::*;

#[test]
fn dummy_plan() {
    let (_, p) = dummy("10.0.21.101/24");
    assert_eq!(p.kind, Kind::Dummy);
    assert_eq!(
        names(&p),
        [
            "create-dummy",
            "guest-arp-notify",
            "guest-link-up",
            "add-address",
            "announce"
        ]
    );
    assert_eq!(
        *op(&p, "create-dummy"),
        Op::CreateInGuest {
            link: GuestLink::Dummy,
            name: "eth1".into(),
            mtu: None,
            mac: None
        }
    );
    let mut r = Rig::new();
    let e = r
        .plan(&["dummy", "web1", "10.0.21.101/24", "@10"])
        .unwrap_err();
    assert!(e.to_string().contains("cannot carry VLAN tags"), "{e}");
}

#[test]
fn dummy_apply_check_teardown() {
    let (r, p) = dummy("10.0.21.101/24@10.0.21.1");
    let before = r.snaps();
    let mut spy = Spy::new(&r);
    let a = r.apply(&p, &mut spy, None).unwrap();
    assert_eq!(
        spy.entries[0],
        UndoEntry::DeleteLink {
            side: Side::Guest,
            name: "eth1".into(),
            kind: LinkKind::Dummy
        }
    );
    assert!(!spy.seen[0].1);
    assert!(spy.seen[0].0 <= creating_call(&r.world, "eth1"));
    let (h, g) = r.snaps();
    assert_eq!(h, before.0, "nothing in the host");
    let l = link(&g, "eth1");
    assert_eq!(
        (l.kind.as_deref(), l.up, l.group, l.mtu),
        (Some("dummy"), true, LINK_GROUP, 1500)
    );
    assert_eq!(g.addresses, strings(&["eth1 10.0.21.101/24"]));
    assert_eq!(g.routes, strings(&["default via 10.0.21.1 dev eth1"]));
    let rec = r.record(&p, &a, spy.entries);
    assert!(r.check(&rec).is_empty());
    assert!(r.alive(&rec));
    let (done, left) = r.teardown(&rec, None);
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(done.len(), 2, "{done:?}");
    assert_eq!(r.snaps(), before);
}

#[test]
fn dummy_rollback() {
    rolls_back_everywhere(|| dummy("10.0.21.101/24@10.0.21.1"));
}
