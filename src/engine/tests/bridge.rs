//! The bridge kind: a bridge pipework creates, an existing one, the veth's refusals and races.

use super::*;

#[test]
fn bridge_new_plan() {
    let (r, p) = bridge_new();
    let veth = r.veth_name("eth1");
    assert_eq!(p.kind, Kind::Bridge);
    assert!(p.host_interface_created);
    assert_eq!(p.host_ifname.as_deref(), Some(veth.as_str()));
    assert_eq!(
        names(&p),
        [
            "create-bridge",
            "create-veth",
            "guest-arp-notify",
            "guest-link-up",
            "add-address",
            "add-default-route",
            "wait-port-ready",
            "announce"
        ]
    );
    assert_eq!(
        *op(&p, "create-bridge"),
        Op::CreateBridge {
            name: "br1".into(),
            mtu: None
        }
    );
    assert_eq!(
        *op(&p, "create-veth"),
        Op::CreateVeth {
            host: veth.clone(),
            master: Some("br1".into()),
            guest: "eth1".into(),
            mtu: 1500,
            mac: Some(mac(GUEST_MAC)),
        }
    );
    assert_eq!(
        *op(&p, "add-default-route"),
        Op::AddDefaultRoute {
            gateway: ip("10.0.0.1"),
            ifname: "eth1".into()
        }
    );
    assert_eq!(*op(&p, "wait-port-ready"), Op::WaitPortReady { port: veth });
    assert!(p.ready.is_none(), "the ready step went into the steps");
    // Planning changed nothing.
    assert_eq!(r.requests(), 0);
}

#[test]
fn bridge_new_apply() {
    let (r, p) = bridge_new();
    let veth = r.veth_name("eth1");
    let mut spy = Spy::new(&r);
    let a = r.apply(&p, &mut spy, None).expect("applies");
    let (h, g) = r.snaps();
    let br = link(&h, "br1");
    assert_eq!(
        (br.kind.as_deref(), br.up, br.group, br.mtu),
        (Some("bridge"), true, LINK_GROUP, 1500)
    );
    let he = link(&h, &veth);
    assert_eq!(
        (
            he.kind.as_deref(),
            he.master.as_deref(),
            he.up,
            he.group,
            he.mtu
        ),
        (Some("veth"), Some("br1"), true, LINK_GROUP, 1500)
    );
    assert_eq!(link_names(&h), ["br1", "lo", veth.as_str()]);
    assert_eq!(
        g.links,
        [
            LinkSnapshot {
                name: "eth1".into(),
                kind: Some("veth".into()),
                master: None,
                mac: GUEST_MAC.into(),
                mtu: 1500,
                up: true,
                group: LINK_GROUP,
            },
            lo()
        ]
    );
    assert_eq!(g.addresses, strings(&["eth1 10.0.0.5/24"]));
    assert_eq!(g.routes, strings(&["default via 10.0.0.1 dev eth1"]));
    assert!(h.addresses.is_empty() && h.routes.is_empty());
    let gi = r.world.index_of(r.g(), "eth1").unwrap();
    assert!(r.world.arp_notify(r.g(), gi));
    assert_eq!(a.guest_index, Some(gi));
    assert_eq!(a.host_index, r.world.index_of(r.h(), &veth));
    assert_eq!(a.guest_mac, Some(mac(GUEST_MAC)));
    assert_eq!(a.guest_mtu, Some(1500));

    // The journal, in order, each entry before its change.
    assert_eq!(spy.entries.len(), 3);
    assert_eq!(
        spy.entries[0],
        UndoEntry::DeleteBridge { name: "br1".into() }
    );
    assert_eq!(
        spy.entries[1],
        UndoEntry::DeleteLink {
            side: Side::Host,
            name: veth.clone(),
            kind: LinkKind::Veth
        }
    );
    assert!(matches!(
        &spy.entries[2],
        UndoEntry::DeleteRoute { text, .. } if text == "default via 10.0.0.1 dev eth1"
    ));
    assert_eq!(
        spy.seen.iter().map(|s| s.1).collect::<Vec<_>>(),
        [false, false, false],
        "an entry was journalled after its link existed"
    );
    assert!(spy.seen[0].0 <= creating_call(&r.world, "br1"));
    assert!(spy.seen[1].0 <= creating_call(&r.world, &veth));
    assert!(creating_call(&r.world, "br1") < spy.seen[1].0);
    // The route entry precedes the route's request.
    let route_call = r
        .world
        .calls()
        .iter()
        .position(|c| matches!(c.msg, RouteNetlinkMessage::NewRoute(_)))
        .unwrap();
    assert!(spy.seen[2].0 <= route_call);
    // Every change, in order.
    let ch = r.world.changes();
    assert_eq!(ch.len(), 7, "{ch:#?}");
    assert!(
        ch[0].contains("newlink bridge br1") && ch[0].ends_with(" up"),
        "{ch:#?}"
    );
    assert!(
        ch[1].contains(&format!("newlink veth {veth} peer eth1 in ns {}", r.g())),
        "{ch:#?}"
    );
    assert!(ch[2].contains("arp_notify 1"), "{ch:#?}");
    assert!(ch[3].ends_with(" up"), "{ch:#?}");
    assert!(ch[4].contains("newaddr 10.0.0.5/24 dev eth1"), "{ch:#?}");
    assert!(
        ch[5].contains("newroute default via 10.0.0.1 dev eth1"),
        "{ch:#?}"
    );
    assert!(ch[6].contains(&format!("mac {GUEST_MAC}")), "{ch:#?}");
}

#[test]
fn bridge_new_rollback() {
    rolls_back_everywhere(bridge_new);
}

#[test]
fn bridge_new_journal_failure_stops_before_the_change() {
    let (r, p) = bridge_new();
    let before = r.snaps();
    let veth = r.veth_name("eth1");
    let mut spy = Spy::new(&r);
    spy.refuse = Some(2);
    let e = r
        .apply(&p, &mut spy, None)
        .expect_err("journal failure fails");
    assert_eq!(e.step(), Some("create-veth"));
    assert_eq!(r.snaps(), before, "the bridge was not rolled back");
    assert!(
        !r.world.calls().iter().any(|c| matches!(
            &c.msg,
            RouteNetlinkMessage::NewLink(m) if msg::link_name(m) == Some(veth.as_str())
        )),
        "the veth was created without its undo entry"
    );
}

#[test]
fn bridge_new_teardown() {
    let (r, p) = bridge_new();
    let before = r.snaps();
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    let (done, left) = r.teardown(&rec, None);
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(done.len(), 3, "{done:?}");
    assert!(done[2].contains("delete bridge br1"), "{done:?}");
    assert_eq!(r.snaps(), before);
}

#[test]
fn bridge_new_teardown_in_a_batch() {
    let (r, p) = bridge_new();
    let before = r.snaps();
    let veth = r.veth_name("eth1");
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    let mut batch = Batch {
        dry_run: false,
        group: BATCH_GROUP,
        ..Batch::default()
    };
    let (done, left) = r.teardown(&rec, Some(&mut batch));
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(done.len(), 3, "{done:?}");
    // Queued, not deleted: the veth and the bridge wait in the batch's group.
    let h = r.world.snapshot(r.h());
    assert_eq!(link(&h, &veth).group, BATCH_GROUP);
    assert_eq!(link(&h, "br1").group, BATCH_GROUP);
    assert!(batch.host_links.contains(&veth) && batch.host_links.contains("br1"));
    assert_eq!(batch.host_links.len(), 2);
    // The route was taken out at once; the guest end is still there until the flush.
    assert!(r.world.snapshot(r.g()).routes.is_empty());
    r.host
        .clone()
        .request(msg::del_link_group(BATCH_GROUP), 0)
        .expect("group delete");
    assert_eq!(r.snaps(), before);
}

#[test]
fn bridge_new_check() {
    let (r, p) = bridge_new();
    let veth = r.veth_name("eth1");
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    assert_eq!(r.check(&rec), Vec::<String>::new());
    assert!(r.alive(&rec));
    let gi = r.world.index_of(r.g(), "eth1").unwrap();

    // Another MAC.
    r.gnl
        .clone()
        .request(msg::set_link_mac(gi, &mac("02:00:00:00:00:99")), 0)
        .unwrap();
    assert_eq!(
        r.check(&rec),
        [format!(
            "eth1 has MAC 02:00:00:00:00:99 (recorded {GUEST_MAC})"
        )]
    );
    r.gnl
        .clone()
        .request(msg::set_link_mac(gi, &mac(GUEST_MAC)), 0)
        .unwrap();
    assert!(r.check(&rec).is_empty());

    // The address gone.
    r.gnl
        .clone()
        .request(msg::del_address(gi, ip("10.0.0.5"), 24), 0)
        .unwrap();
    assert_eq!(r.check(&rec), ["eth1 lost its address 10.0.0.5/24"]);

    // Off the bridge.
    let hi = r.world.index_of(r.h(), &veth).unwrap();
    let mut nomaster = netlink_packet_route::link::LinkMessage::default();
    nomaster.header.index = hi;
    nomaster
        .attributes
        .push(netlink_packet_route::link::LinkAttribute::Controller(0));
    r.host
        .clone()
        .request(RouteNetlinkMessage::SetLink(nomaster), 0)
        .unwrap();
    let d = r.check(&rec);
    assert!(
        d.contains(&format!("{veth} is no longer a port of br1")),
        "{d:?}"
    );

    // The host end removed (its peer goes with it).
    r.del(r.h(), &veth);
    let d = r.check(&rec);
    assert_eq!(
        d,
        [
            format!("the host end {veth} is gone or is not the one pipework made"),
            "eth1 is gone from the guest".to_string()
        ]
    );
    assert!(!r.alive(&rec));
}

#[test]
fn bridge_check_a_replaced_link_is_not_alive() {
    let (r, p) = bridge_new();
    let veth = r.veth_name("eth1");
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    r.del(r.h(), &veth);
    // Someone else's pair of the same names: no pipework group, new indexes.
    r.world.seed_veth(r.h(), &veth, r.g(), "eth1");
    assert!(!r.alive(&rec));
    let d = r.check(&rec);
    assert!(
        d.contains(&format!(
            "the host end {veth} is gone or is not the one pipework made"
        )),
        "{d:?}"
    );
    // And the guest side replaced by a link of another type.
    r.del(r.g(), "eth1");
    r.world.add_link(r.g(), "eth1", Some(InfoKind::Dummy));
    let d = r.check(&rec);
    assert!(
        d.contains(&"eth1 is a dummy now, not the veth pipework made".to_string()),
        "{d:?}"
    );
}

#[test]
fn bridge_check_when_the_bridge_is_gone() {
    let (r, p) = bridge_new();
    let veth = r.veth_name("eth1");
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    r.del(r.h(), "br1");
    let d = r.check(&rec);
    assert_eq!(d, ["bridge br1 is gone"]);
    // Still its veth: alive.
    assert!(r.alive(&rec));
    assert_eq!(link(&r.world.snapshot(r.h()), &veth).master, None);
}

#[test]
fn check_reports_the_mtu_and_a_missing_namespace() {
    let (r, p) = bridge_new();
    let veth = r.veth_name("eth1");
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    let gi = r.world.index_of(r.g(), "eth1").unwrap();
    let mut m = netlink_packet_route::link::LinkMessage::default();
    m.header.index = gi;
    m.attributes
        .push(netlink_packet_route::link::LinkAttribute::Mtu(1400));
    r.gnl
        .clone()
        .request(RouteNetlinkMessage::SetLink(m), 0)
        .unwrap();
    assert_eq!(r.check(&rec), ["eth1 has MTU 1400 (recorded 1500)"]);
    let mut host = r.host.clone();
    let mut sys = Sys {
        host: &mut host,
        guest: None,
        guest_ns: None,
        home: &r.home,
        log: Log::default(),
        batch: None,
        record: None,
    };
    assert_eq!(
        driver(Kind::Bridge).check(&rec, &mut sys).unwrap(),
        ["the guest's namespace is gone"]
    );
    assert!(
        driver(Kind::Bridge).alive(&rec, &mut sys),
        "the host end is still ours"
    );
    assert!(!driver(Kind::Macvlan).alive(&rec, &mut sys));
    let _ = veth;
}

#[test]
fn bridge_made_by_pipework_goes_with_its_last_port() {
    let mut r = Rig::new();
    let before = r.snaps();
    let p1 = r.plan(BR_NEW).unwrap();
    let (a1, j1) = r.attach(&p1);
    let rec1 = r.record(&p1, &a1, j1);
    let p2 = r
        .plan(&["br1", "-i", "eth2", "web1", "10.0.1.5/24"])
        .unwrap();
    assert_eq!(names(&p2)[0], "create-veth", "br1 exists now");
    let (a2, j2) = r.attach(&p2);
    let rec2 = r.record(&p2, &a2, j2);
    let (_, left) = r.teardown(&rec1, None);
    assert!(left.is_empty(), "{left:?}");
    let h = r.world.snapshot(r.h());
    assert!(link_names(&h).contains(&"br1"), "br1 still has a port");
    assert_eq!(
        link(&h, &r.veth_name("eth2")).master.as_deref(),
        Some("br1")
    );
    let (_, left) = r.teardown(&rec2, None);
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(r.snaps(), before);
}

#[test]
fn bridge_existing_plan_apply_teardown() {
    let (r, p) = bridge_existing();
    let veth = r.veth_name("eth1");
    assert!(!p.host_interface_created);
    assert_eq!(
        names(&p),
        [
            "create-veth",
            "guest-arp-notify",
            "guest-link-up",
            "add-address",
            "add-default-route",
            "wait-port-ready",
            "announce"
        ]
    );
    assert_eq!(
        *op(&p, "create-veth"),
        Op::CreateVeth {
            host: veth.clone(),
            master: Some("br0".into()),
            guest: "eth1".into(),
            mtu: 9000,
            mac: None
        }
    );
    let before = r.snaps();
    let (a, j) = r.attach(&p);
    assert_eq!(j.len(), 2);
    assert_eq!(
        j[0],
        UndoEntry::DeleteLink {
            side: Side::Host,
            name: veth.clone(),
            kind: LinkKind::Veth
        }
    );
    let (h, g) = r.snaps();
    assert_eq!(link(&h, &veth).master.as_deref(), Some("br0"));
    assert_eq!(link(&h, &veth).mtu, 9000);
    assert_eq!(link(&g, "eth1").mtu, 9000);
    assert_eq!(link(&h, "br0").group, 0);
    let rec = r.record(&p, &a, j);
    assert!(r.check(&rec).is_empty());
    let (done, left) = r.teardown(&rec, None);
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(done.len(), 2, "the user's bridge is not deleted: {done:?}");
    assert_eq!(r.snaps(), before, "the user's bridge is kept as it was");
}

#[test]
fn bridge_existing_rollback() {
    rolls_back_everywhere(bridge_existing);
}

#[test]
fn bridge_refuses_a_vlan_tag() {
    let (mut r, _) = bridge_existing();
    let e = r
        .plan(&["br0", "web1", "10.0.0.5/24", "@10"])
        .expect_err("tag refused");
    assert!(e.to_string().contains("cannot carry VLAN tags"), "{e}");
}

#[test]
fn bridge_plan_refusals() {
    let mut r = Rig::new();
    r.world.add_link(r.g(), "eth1", Some(InfoKind::Dummy));
    let e = r.plan(BR_NEW).unwrap_err();
    assert!(matches!(e, Error::InterfaceExists(_)), "{e}");
    assert!(
        e.to_string()
            .contains("already has an interface named eth1"),
        "{e}"
    );
    let e = r
        .plan(&["br1", "-i", "eth2", "-l", "br1", "web1", "10.0.0.5/24"])
        .unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e}");
    r.world.seed_link(
        r.h(),
        Seed {
            name: "vbusy".into(),
            kind: Some(InfoKind::Veth),
            up: true,
            ..Seed::default()
        },
    );
    let e = r
        .plan(&["br1", "-i", "eth2", "-l", "vbusy", "web1", "10.0.0.5/24"])
        .unwrap_err();
    assert!(matches!(e, Error::Busy(_)), "{e}");
    assert_eq!(r.requests(), 0);
}

#[test]
fn bridge_replaces_a_down_leftover_veth() {
    let mut r = Rig::new();
    let veth = r.veth_name("eth1");
    // A leftover of a container that died: its host end, down, peer gone elsewhere.
    r.world.seed_veth(r.h(), &veth, 99, "eth1");
    let p = r.plan(BR_NEW).unwrap();
    assert_eq!(
        names(&p)[..3],
        ["create-bridge", "replace-stale-host-link", "create-veth"]
    );
    assert_eq!(
        *op(&p, "replace-stale-host-link"),
        Op::DeleteStaleLink { name: veth.clone() }
    );
    let (_, j) = r.attach(&p);
    assert_eq!(j.len(), 3, "the replacement itself has no undo: {j:?}");
    let h = r.world.snapshot(r.h());
    assert_eq!(
        link(&h, &veth).group,
        LINK_GROUP,
        "the new veth is pipework's"
    );
    assert!(
        r.world.snapshot(99).links.iter().all(|l| l.name == "lo"),
        "the old pair is gone"
    );
}

#[test]
fn a_down_host_link_of_someone_else_is_not_deleted() {
    let mut r = Rig::new();
    r.world.add_link(r.h(), "mylink", Some(InfoKind::Dummy));
    let before = r.snaps();
    // Only a down veth is a leftover to replace: the plan refuses the user's dummy.
    let e = r
        .plan(&["br1", "-l", "mylink", "web1", "10.0.0.5/24"])
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("Link mylink exists and is not a veth (a dummy)"),
        "{e}"
    );
    assert_eq!(r.snaps(), before, "the user's down dummy was touched");
}

#[test]
fn bridge_created_meanwhile_is_used() {
    let (r, p) = bridge_new();
    // Another attach makes br1 between this plan and its apply.
    r.world.seed_link(
        r.h(),
        Seed {
            name: "br1".into(),
            kind: Some(InfoKind::Bridge),
            up: true,
            group: LINK_GROUP,
            ..Seed::default()
        },
    );
    let other = r.world.seed_link(
        r.h(),
        Seed {
            name: "vother".into(),
            kind: Some(InfoKind::Veth),
            up: true,
            group: LINK_GROUP,
            master: r.world.index_of(r.h(), "br1"),
            ..Seed::default()
        },
    );
    let before = r.snaps();
    let (a, j) = r.attach(&p);
    assert!(a.host_interface_existed);
    let report = AttachReport::new(&r.guest, &p, Some(a.clone()));
    assert!(!report.host_interface_created);
    assert_eq!(
        link(&r.world.snapshot(r.h()), &r.veth_name("eth1"))
            .master
            .as_deref(),
        Some("br1")
    );
    let rec = r.record(&p, &a, j);
    let (_, left) = r.teardown(&rec, None);
    assert!(left.is_empty());
    assert_eq!(r.snaps(), before, "the other attach's bridge and port stay");
    let _ = other;
    // And a rollback leaves it too.
    let (r, p) = bridge_new();
    r.world.seed_link(
        r.h(),
        Seed {
            name: "br1".into(),
            kind: Some(InfoKind::Bridge),
            up: true,
            group: LINK_GROUP,
            ..Seed::default()
        },
    );
    let bi = r.world.index_of(r.h(), "br1");
    r.world.seed_link(
        r.h(),
        Seed {
            name: "vother".into(),
            kind: Some(InfoKind::Veth),
            up: true,
            group: LINK_GROUP,
            master: bi,
            ..Seed::default()
        },
    );
    let before = r.snaps();
    let mut j = Vec::new();
    r.apply(&p, &mut j, Some("announce")).unwrap_err();
    assert_eq!(r.snaps(), before);
}
