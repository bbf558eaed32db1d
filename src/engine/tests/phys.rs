//! `--direct-phys`: the NIC moved into the guest, and everything of it given back.

use super::*;

#[test]
fn phys_plan() {
    let (r, p) = phys(&[GUEST_MAC], "@10.0.0.1");
    assert_eq!(p.kind, Kind::Phys);
    assert_eq!(p.host_ifname.as_deref(), Some(NIC));
    assert_eq!(
        p.dropped_addresses,
        [
            "192.168.7.10/24".parse::<ipnet::IpNet>().unwrap(),
            "192.168.8.10/24".parse().unwrap()
        ]
    );
    assert_eq!(
        names(&p),
        [
            "move-nic",
            "set-mac",
            "guest-arp-notify",
            "guest-link-up",
            "add-address",
            "add-default-route",
            "announce"
        ]
    );
    assert_eq!(
        *op(&p, "move-nic"),
        Op::MoveToGuest {
            nic: NicState {
                name: NIC.into(),
                mac: Some(mac("52:54:00:12:34:56")),
                mtu: Some(9000),
                up: true,
                addresses: p.dropped_addresses.clone(),
                phy: None,
                index: r.world.index_of(r.h(), NIC),
                master: None,
                routes: Vec::new(),
            },
            guest: "eth1".into(),
            mtu: None
        }
    );
    assert_eq!(
        *op(&p, "set-mac"),
        Op::SetMac {
            ifname: "eth1".into(),
            mac: mac(GUEST_MAC)
        }
    );
}

#[test]
fn phys_apply() {
    let (r, p) = phys(&[GUEST_MAC], "@10.0.0.1");
    let (a, j) = r.attach(&p);
    assert!(
        matches!(&j[0], UndoEntry::MoveBack { guest, nic } if guest == "eth1" && nic.name == NIC)
    );
    assert_eq!(j.len(), 2);
    let (h, g) = r.snaps();
    assert_eq!(h.links, [lo()], "the NIC left the host");
    assert!(h.addresses.is_empty());
    assert_eq!(
        g.links,
        [
            LinkSnapshot {
                name: "eth1".into(),
                kind: None,
                master: None,
                mac: GUEST_MAC.into(),
                mtu: 9000,
                up: true,
                group: 0,
            },
            lo()
        ]
    );
    assert_eq!(g.addresses, strings(&["eth1 10.0.0.5/24"]));
    assert_eq!(g.routes, strings(&["default via 10.0.0.1 dev eth1"]));
    assert_eq!(a.guest_mac, Some(mac(GUEST_MAC)));
}

#[test]
fn phys_rollback_restores_name_mac_addresses() {
    rolls_back_everywhere(|| phys(&[GUEST_MAC], "@10.0.0.1"));
    rolls_back_everywhere(|| phys(&[], ""));
}

#[test]
fn phys_teardown() {
    let (r, p) = phys(&[GUEST_MAC], "@10.0.0.1");
    let before = r.snaps();
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    let (done, left) = r.teardown(&rec, None);
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(done.len(), 2, "{done:?}");
    assert_eq!(r.snaps(), before);
    let (r, p) = phys(&[], "");
    let before = r.snaps();
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    let mut batch = Batch {
        group: BATCH_GROUP,
        ..Batch::default()
    };
    let (_, left) = r.teardown(&rec, Some(&mut batch));
    assert!(left.is_empty(), "{left:?}");
    assert!(batch.host_links.is_empty());
    assert_eq!(r.snaps(), before);
}

#[test]
fn phys_check() {
    let (r, p) = phys(&[GUEST_MAC], "");
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    assert!(r.check(&rec).is_empty(), "{:?}", r.check(&rec));
    assert!(r.alive(&rec));
    let gi = r.world.index_of(r.g(), "eth1").unwrap();
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
    assert!(!r.alive(&rec));
    r.gnl
        .clone()
        .request(msg::set_link_mac(gi, &mac(GUEST_MAC)), 0)
        .unwrap();
    r.gnl
        .clone()
        .request(msg::del_address(gi, ip("10.0.0.5"), 24), 0)
        .unwrap();
    assert_eq!(r.check(&rec), ["eth1 lost its address 10.0.0.5/24"]);
    // The NIC moved back by hand, a dummy of its guest name in its place.
    r.gnl
        .clone()
        .request(msg::move_link(gi, r.h(), NIC, None), 0)
        .unwrap();
    assert_eq!(r.check(&rec), ["eth1 is gone from the guest"]);
    r.world.seed_link(
        r.g(),
        Seed {
            name: "eth1".into(),
            kind: Some(InfoKind::Dummy),
            mac: Some(mac(GUEST_MAC)),
            up: true,
            ..Seed::default()
        },
    );
    assert!(!r.alive(&rec), "another ifindex");
}

#[test]
fn phys_down_nic_stays_down_after_rollback_and_teardown() {
    let setup = || {
        let mut r = Rig::new();
        let i = r.seed_nic(NIC, false);
        r.world.add_address(r.h(), i, ip("192.168.7.10"), 24);
        let p = r
            .plan(&["--direct-phys", NIC, "web1", "10.0.0.5/24", "--mtu", "1400"])
            .unwrap();
        (r, p)
    };
    let (r, p) = setup();
    assert!(matches!(
        op(&p, "move-nic"),
        Op::MoveToGuest { nic, mtu: Some(1400), .. } if !nic.up && nic.mtu == Some(1500)
    ));
    let before = r.snaps();
    let (a, j) = r.attach(&p);
    assert_eq!(link(&r.world.snapshot(r.g()), "eth1").mtu, 1400);
    let rec = r.record(&p, &a, j);
    assert!(r.check(&rec).is_empty(), "{:?}", r.check(&rec));
    let (_, left) = r.teardown(&rec, None);
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(
        r.snaps(),
        before,
        "name, MTU, address and down state restored"
    );
    rolls_back_everywhere(setup);
}

#[test]
fn phys_vlan_moves_the_child_and_removes_it_after() {
    let setup = || {
        let mut r = Rig::new();
        r.seed_nic(NIC, true);
        let p = r
            .plan(&["--direct-phys", NIC, "web1", "10.0.0.5/24@10.0.0.1", "@10"])
            .unwrap();
        (r, p)
    };
    let (r, p) = setup();
    let vname = format!("{NIC}.10");
    assert_eq!(
        names(&p),
        [
            "create-vlan",
            "move-nic",
            "guest-arp-notify",
            "guest-link-up",
            "add-address",
            "add-default-route",
            "announce"
        ]
    );
    assert!(matches!(
        op(&p, "move-nic"),
        Op::MoveToGuest { nic, .. } if nic.name == vname && nic.up && nic.mac.is_none()
    ));
    assert_eq!(p.host_ifname.as_deref(), Some(vname.as_str()));
    let before = r.snaps();
    let (a, j) = r.attach(&p);
    assert_eq!(
        j[0],
        UndoEntry::DeleteVlan {
            name: vname.clone()
        }
    );
    assert!(matches!(&j[1], UndoEntry::MoveBack { nic, .. } if nic.name == vname));
    let (h, g) = r.snaps();
    assert_eq!(link_names(&h), ["lo", NIC]);
    let e = link(&g, "eth1");
    assert_eq!(
        (e.kind.as_deref(), e.group, e.up),
        (Some("vlan"), LINK_GROUP, true)
    );
    let rec = r.record(&p, &a, j);
    assert!(r.check(&rec).is_empty(), "{:?}", r.check(&rec));
    let (done, left) = r.teardown(&rec, None);
    assert!(left.is_empty(), "{left:?}");
    assert!(
        done.iter()
            .any(|d| d.contains(&format!("delete VLAN interface {vname}"))),
        "{done:?}"
    );
    assert_eq!(r.snaps(), before);
    rolls_back_everywhere(setup);
}

/// A NIC that is a port of a bridge.
fn phys_bridge_port() -> (Rig, Plan) {
    let mut r = Rig::new();
    let br = r.world.seed_link(
        r.h(),
        Seed {
            name: "br0".into(),
            kind: Some(InfoKind::Bridge),
            up: true,
            ..Seed::default()
        },
    );
    r.world.seed_link(
        r.h(),
        Seed {
            name: NIC.into(),
            up: true,
            master: Some(br),
            ..Seed::default()
        },
    );
    let p = r
        .plan(&["--direct-phys", NIC, "web1", "10.0.0.5/24"])
        .unwrap();
    (r, p)
}

#[test]
fn phys_rollback_puts_a_bridge_port_back_on_its_bridge() {
    let (r, p) = phys_bridge_port();
    let before = r.snaps();
    assert_eq!(link(&before.0, NIC).master.as_deref(), Some("br0"));
    let mut j = Vec::new();
    r.apply(&p, &mut j, Some("add-address")).unwrap_err();
    assert_eq!(r.snaps(), before);
}

#[test]
fn phys_rollback_restores_the_host_routes_through_the_nic() {
    let mut r = Rig::new();
    let i = r.seed_nic(NIC, true);
    r.world.add_address(r.h(), i, ip("192.168.7.10"), 24);
    r.world
        .add_route(r.h(), msg::new_default_route(ip("192.168.7.1"), i));
    let p = r
        .plan(&["--direct-phys", NIC, "web1", "10.0.0.5/24"])
        .unwrap();
    let before = r.snaps();
    assert_eq!(
        before.0.routes,
        strings(&[&format!("default via 192.168.7.1 dev {NIC}")])
    );
    let mut j = Vec::new();
    r.apply(&p, &mut j, Some("add-address")).unwrap_err();
    assert_eq!(r.snaps(), before, "the host lost its default route");
}

#[test]
fn phys_identity_names_the_nics_host_ifindex() {
    let (r, p) = phys(&[], "");
    let i = r.world.index_of(r.h(), NIC);
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    assert_eq!(rec.header.identity.unwrap().host_ifindex, i);
}

#[test]
fn move_back_never_takes_a_link_that_is_not_the_nic() {
    let (r, p) = phys(&[], "");
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    // The NIC went elsewhere; the guest got an eth1 of its own (say, a veth from its engine).
    let gi = r.world.index_of(r.g(), "eth1").unwrap();
    r.gnl
        .clone()
        .request(msg::move_link(gi, 99, NIC, None), 0)
        .unwrap();
    r.world.seed_veth(r.h(), "vethengine", r.g(), "eth1");
    // Not alive: this is the record `gc` (and the next attach's recovery) tears down.
    assert!(!r.alive(&rec));
    let before = r.snaps();
    let (_, left) = r.teardown(&rec, None);
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(
        r.snaps(),
        before,
        "the guest's own eth1 was moved to the host as {NIC}"
    );
}
