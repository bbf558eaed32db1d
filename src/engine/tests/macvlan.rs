//! The macvlan kind, on the NIC itself and on its 802.1Q child `NIC.VLAN`.

use super::*;

#[test]
fn macvlan_plan() {
    let (_, p) = macvlan(&[]);
    assert_eq!(p.kind, Kind::Macvlan);
    assert_eq!(
        names(&p),
        [
            "host-link-up",
            "create-macvlan",
            "guest-arp-notify",
            "guest-link-up",
            "add-address",
            "add-default-route",
            "announce"
        ]
    );
    assert_eq!(
        *op(&p, "create-macvlan"),
        Op::CreateInGuest {
            link: GuestLink::Macvlan {
                parent: NIC.into(),
                mode: crate::request::MacvlanMode::Bridge
            },
            name: "eth1".into(),
            mtu: Some(1500),
            mac: None
        }
    );
    assert_eq!(*op(&p, "host-link-up"), Op::HostLinkUp { name: NIC.into() });
}

#[test]
fn macvlan_apply() {
    let (r, p) = macvlan(&[]);
    let mut spy = Spy::new(&r);
    let a = r.apply(&p, &mut spy, None).expect("applies");
    assert_eq!(
        spy.entries[..2],
        [
            UndoEntry::HostLinkDown { name: NIC.into() },
            UndoEntry::DeleteLink {
                side: Side::Guest,
                name: "eth1".into(),
                kind: LinkKind::Macvlan
            }
        ]
    );
    assert_eq!(spy.entries.len(), 3);
    assert!(!spy.seen[1].1, "journalled after the macvlan existed");
    assert!(spy.seen[1].0 <= creating_call(&r.world, "eth1"));
    let (h, g) = r.snaps();
    assert!(link(&h, NIC).up);
    assert_eq!(link(&h, NIC).group, 0);
    let e = link(&g, "eth1");
    assert_eq!(
        (e.kind.as_deref(), e.up, e.group, e.mtu),
        (Some("macvlan"), true, LINK_GROUP, 1500)
    );
    assert_eq!(Some(mac(&e.mac)), a.guest_mac);
    assert_eq!(g.addresses, strings(&["eth1 10.0.0.5/24"]));
    assert_eq!(g.routes, strings(&["default via 10.0.0.1 dev eth1"]));
    // The macvlan's parent is the host NIC.
    let l = r.world.link(r.g(), "eth1").unwrap();
    assert_eq!(msg::link_parent(&l), r.world.index_of(r.h(), NIC));
}

#[test]
fn macvlan_rollback() {
    rolls_back_everywhere(|| macvlan(&[]));
}

#[test]
fn macvlan_teardown_keeps_the_nic_up() {
    let (r, p) = macvlan(&[]);
    let (mut h0, g0) = r.snaps();
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    for b in [false, true] {
        let mut batch = Batch {
            group: BATCH_GROUP,
            ..Batch::default()
        };
        if b {
            // Once more, on a second attach, in a batch (the guest link is not batched).
            let (a, j) = r.attach(&p);
            let rec = r.record(&p, &a, j);
            let (_, left) = r.teardown(&rec, Some(&mut batch));
            assert!(left.is_empty(), "{left:?}");
            assert!(batch.host_links.is_empty(), "{:?}", batch.host_links);
        } else {
            let (done, left) = r.teardown(&rec, None);
            assert!(left.is_empty(), "{left:?}");
            assert_eq!(done.len(), 2, "{done:?}");
        }
        let idx = h0.links.iter().position(|l| l.name == NIC).unwrap();
        h0.links[idx].up = true;
        assert_eq!(r.snaps(), (h0.clone(), g0.clone()), "batch {b}");
    }
}

#[test]
fn macvlan_check() {
    let (r, p) = macvlan(&[]);
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    assert!(r.check(&rec).is_empty(), "{:?}", r.check(&rec));
    assert!(r.alive(&rec));
    let gi = r.world.index_of(r.g(), "eth1").unwrap();
    r.gnl
        .clone()
        .request(msg::set_link_mac(gi, &mac("02:00:00:00:00:99")), 0)
        .unwrap();
    let d = r.check(&rec);
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0].starts_with("eth1 has MAC 02:00:00:00:00:99"), "{d:?}");
    assert!(!r.alive(&rec), "a MAC change is another interface");
    r.gnl
        .clone()
        .request(msg::set_link_mac(gi, &a.guest_mac.unwrap()), 0)
        .unwrap();
    r.gnl
        .clone()
        .request(msg::del_address(gi, ip("10.0.0.5"), 24), 0)
        .unwrap();
    assert_eq!(r.check(&rec), ["eth1 lost its address 10.0.0.5/24"]);
    r.gnl.clone().request(msg::set_link_down(gi), 0).unwrap();
    // Down, the link loses its routes too (NETDEV_DOWN): check names the default route.
    assert_eq!(
        r.check(&rec),
        [
            "eth1 lost its address 10.0.0.5/24",
            "eth1 is down",
            "eth1 lost its route default via 10.0.0.1"
        ]
    );
    // Replaced by someone else's dummy of the same name.
    r.del(r.g(), "eth1");
    assert_eq!(r.check(&rec), ["eth1 is gone from the guest"]);
    r.world.add_link(r.g(), "eth1", Some(InfoKind::Dummy));
    let d = r.check(&rec);
    assert!(
        d.contains(&"eth1 is a dummy now, not the macvlan pipework made".to_string()),
        "{d:?}"
    );
    assert!(!r.alive(&rec));
}

#[test]
fn macvlan_vlan_plan_apply_teardown() {
    let (r, p) = macvlan(&["@10"]);
    let vname = format!("{NIC}.10");
    assert_eq!(p.vlan, Some(10));
    assert_eq!(
        names(&p),
        [
            "host-link-up",
            "create-vlan",
            "create-macvlan",
            "guest-arp-notify",
            "guest-link-up",
            "add-address",
            "add-default-route",
            "announce"
        ]
    );
    assert_eq!(
        *op(&p, "create-vlan"),
        Op::CreateVlan {
            parent: NIC.into(),
            name: vname.clone(),
            id: 10,
            mtu: Some(1500)
        }
    );
    assert!(matches!(
        op(&p, "create-macvlan"),
        Op::CreateInGuest { link: GuestLink::Macvlan { parent, .. }, .. } if *parent == vname
    ));
    let (mut h0, g0) = r.snaps();
    let mut spy = Spy::new(&r);
    let a = r.apply(&p, &mut spy, None).unwrap();
    assert_eq!(
        spy.entries[..3],
        [
            UndoEntry::HostLinkDown { name: NIC.into() },
            UndoEntry::DeleteVlan {
                name: vname.clone()
            },
            UndoEntry::DeleteLink {
                side: Side::Guest,
                name: "eth1".into(),
                kind: LinkKind::Macvlan
            }
        ]
    );
    assert!(!spy.seen[1].1 && !spy.seen[2].1);
    assert!(spy.seen[1].0 <= creating_call(&r.world, &vname));
    let h = r.world.snapshot(r.h());
    let v = link(&h, &vname);
    assert_eq!(
        (v.kind.as_deref(), v.up, v.group, v.mtu),
        (Some("vlan"), true, LINK_GROUP, 1500)
    );
    let vl = r.world.link(r.h(), &vname).unwrap();
    assert_eq!(msg::vlan_id(&vl), Some(10));
    assert_eq!(msg::link_parent(&vl), r.world.index_of(r.h(), NIC));
    let gl = r.world.link(r.g(), "eth1").unwrap();
    assert_eq!(msg::link_parent(&gl), r.world.index_of(r.h(), &vname));

    let rec = r.record(&p, &a, spy.entries);
    assert!(r.check(&rec).is_empty());
    // Removing the VLAN child takes the macvlan with it.
    let (done, left) = r.teardown(&rec, None);
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(done.len(), 3, "{done:?}");
    assert!(
        done[2].contains(&format!("delete VLAN interface {vname}")),
        "{done:?}"
    );
    let idx = h0.links.iter().position(|l| l.name == NIC).unwrap();
    h0.links[idx].up = true;
    assert_eq!(r.snaps(), (h0, g0));
}

#[test]
fn macvlan_vlan_rollback() {
    rolls_back_everywhere(|| macvlan(&["@10"]));
}

#[test]
fn macvlan_vlan_check_when_the_vlan_child_goes() {
    let (r, p) = macvlan(&["@10"]);
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    r.del(r.h(), &format!("{NIC}.10"));
    assert_eq!(r.check(&rec), ["eth1 is gone from the guest"]);
    assert!(!r.alive(&rec));
}

#[test]
fn macvlan_vlan_reuses_an_existing_child() {
    let mut r = Rig::new();
    let nic = r.seed_nic(NIC, true);
    let vname = format!("{NIC}.10");
    // Created through the fake as `ip link add` would (the seed cannot carry a VLAN id).
    r.host
        .request(
            msg::new_vlan(&vname, nic, 10, None),
            netlink_packet_core::NLM_F_CREATE,
        )
        .unwrap();
    let vi = r.world.index_of(r.h(), &vname).unwrap();
    r.host.request(msg::set_link_group(vi, 0), 0).unwrap();
    let p = r.plan(&[NIC, "web1", "10.0.0.5/24", "@10"]).unwrap();
    assert_eq!(names(&p)[0], "create-macvlan", "{:?}", names(&p));
    let before = r.snaps();
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    let (_, left) = r.teardown(&rec, None);
    assert!(left.is_empty());
    assert_eq!(r.snaps(), before, "the user's VLAN child is kept");
    // A link of that name that is not a VLAN of that id is refused.
    let mut r = Rig::new();
    r.seed_nic(NIC, true);
    r.world.add_link(r.h(), &vname, Some(InfoKind::Dummy));
    let e = r.plan(&[NIC, "web1", "10.0.0.5/24", "@10"]).unwrap_err();
    assert!(
        e.to_string().contains("is not a VLAN device for tag 10"),
        "{e}"
    );
}

#[test]
fn macvlan_vlan_without_8021q_says_the_module_is_missing() {
    let (r, p) = macvlan(&["@10"]);
    let before = r.snaps();
    r.world.lack_kind(InfoKind::Vlan);
    let mut j = Vec::new();
    let e = r.apply(&p, &mut j, None).expect_err("no 8021q");
    assert_eq!(e.step(), Some("create-vlan"));
    assert_eq!(e.errno(), Some(libc::EOPNOTSUPP));
    let text = e.to_string();
    assert!(text.contains("module 8021q is not loaded"), "{text}");
    assert!(text.contains("modprobe 8021q"), "{text}");
    assert_eq!(r.snaps(), before, "the NIC went back down");
}

#[test]
fn macvlan_refuses_loopback() {
    let mut r = Rig::new();
    let e = r.plan(&["lo", "web1", "10.0.0.5/24"]).unwrap_err();
    assert!(matches!(e, Error::HostInterface(_)), "{e}");
    assert_eq!(r.requests(), 0);
}

#[test]
fn macvlan_refuses_loopback_as_loopback() {
    let mut r = Rig::new();
    let e = r.plan(&["lo", "web1", "10.0.0.5/24"]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "lo is the loopback interface: it cannot carry guests"
    );
}

/// Another live attachment on `NIC.10`, on disk in the (temporary) store.
fn other_record_on_vlan(r: &Rig) -> PathBuf {
    let mut h = Header {
        version: store::VERSION,
        state: RecordState::Complete,
        created: 1,
        kind: Kind::Macvlan,
        guest: GuestRef {
            spec: "web2".into(),
            engine: Engine::Netns,
            id: None,
            name: Some("web2".into()),
            pid: None,
        },
        netns: NetnsRef {
            path: "/proc/self/ns/net".into(),
            inode: r.guest.netns.inode,
        },
        host_netns: r.home.inode,
        ifname: "eth9".into(),
        host_interface: NIC.into(),
        host_ifname: None,
        writer: 0,
        identity: None,
        attachment: None,
        owner: None,
    };
    h.attachment = Some(serde_json::json!({ "vlan": 10, "addresses": [] }));
    let path = store::dir().join(format!("{}-eth9.json", r.guest.netns.inode));
    let mut data = serde_json::to_vec(&h).unwrap();
    data.push(b'\n');
    store::write_atomic(&path, &data).unwrap();
    path
}

#[test]
fn vlan_child_stays_while_another_attachment_uses_it() {
    let (r, p) = macvlan(&["@10"]);
    let vname = format!("{NIC}.10");
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    let other = other_record_on_vlan(&r);
    let (done, left) = r.teardown(&rec, None);
    std::fs::remove_file(&other).ok();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(done.len(), 2, "{done:?}");
    assert!(
        r.world.index_of(r.h(), &vname).is_some(),
        "removed under a user"
    );

    // In a batch that tears the other one down too, it goes.
    let (r, p) = macvlan(&["@10"]);
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    let other = other_record_on_vlan(&r);
    let mut batch = Batch {
        group: BATCH_GROUP,
        ..Batch::default()
    };
    batch.records.insert(other.clone());
    let (done, left) = r.teardown(&rec, Some(&mut batch));
    std::fs::remove_file(&other).ok();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(done.len(), 3, "{done:?}");
    assert!(r.world.index_of(r.h(), &vname).is_none());
    clean_scratch();
}

#[test]
fn vlan_child_goes_with_the_last_attachment_without_a_batch() {
    let (r, p) = macvlan(&["@10"]);
    let path = store::path_for(r.guest.netns.inode, &p.guest_ifname);
    let mut file = RecordFile::create(&path, header_of(&r.home, &r.guest, &p)).unwrap();
    let a = r.attach_with(&p, &mut file);
    let report = serde_json::to_value(AttachReport::new(&r.guest, &p, Some(a.clone()))).unwrap();
    file.complete(identity_of(&p, &a), report, p.host_ifname.clone())
        .unwrap();
    drop(file);
    let rec = store::read_record(&path).unwrap();
    let (_, left) = r.teardown(&rec, None);
    std::fs::remove_file(&path).unwrap();
    clean_scratch();
    assert!(left.is_empty(), "{left:?}");
    assert!(
        r.world.index_of(r.h(), &format!("{NIC}.10")).is_none(),
        "the VLAN child outlived its last attachment"
    );
}

#[test]
fn a_failed_attach_never_removes_a_vlan_child_it_did_not_create() {
    let mut r = Rig::new();
    let nic = r.seed_nic(NIC, true);
    let vname = format!("{NIC}.10");
    let p = r.plan(&[NIC, "web1", "10.0.0.5/24", "@10"]).unwrap();
    assert_eq!(names(&p)[0], "create-vlan");
    // Meanwhile another attach (still running: its record is incomplete) made the VLAN child
    // and its guest's macvlan on it.
    r.host
        .request(
            msg::new_vlan(&vname, nic, 10, Some(1500)),
            netlink_packet_core::NLM_F_CREATE,
        )
        .unwrap();
    let vi = r.world.index_of(r.h(), &vname).unwrap();
    r.host
        .request(
            msg::new_link_in_guest(
                &msg::GuestLinkKind::Macvlan {
                    parent: vi,
                    mode: nic::mode(crate::request::MacvlanMode::Bridge),
                },
                "eth1",
                None,
                None,
                77,
            ),
            netlink_packet_core::NLM_F_CREATE,
        )
        .unwrap();
    let before = (r.snaps(), r.world.snapshot(77));
    // The child of that id on that NIC is used, as a bridge made meanwhile is; a failure
    // later rolls back our macvlan and never the other attach's VLAN child.
    let mut j = Vec::new();
    let e = r.apply(&p, &mut j, Some("add-address")).unwrap_err();
    assert!(e.to_string().contains("injected"), "{e}");
    assert!(
        !j.iter().any(|e| matches!(e, UndoEntry::DeleteVlan { .. })),
        "the VLAN entry was voided: {j:?}"
    );
    assert_eq!(
        (r.snaps(), r.world.snapshot(77)),
        before,
        "the other attach's VLAN child (and its macvlan) were deleted"
    );
    let mut j = Vec::new();
    r.apply(&p, &mut j, None).unwrap();
    assert!(r.world.index_of(r.g(), "eth1").is_some());
}

#[test]
fn check_sees_a_re_created_interface_that_alive_rejects() {
    let (r, p) = macvlan(&[GUEST_MAC]);
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    // Deleted and made again, same kind, MAC, group, MTU, address, up.
    r.del(r.g(), "eth1");
    let nic = r.world.index_of(r.h(), NIC).unwrap();
    r.host
        .clone()
        .request(
            msg::new_link_in_guest(
                &msg::GuestLinkKind::Macvlan {
                    parent: nic,
                    mode: nic::mode(crate::request::MacvlanMode::Bridge),
                },
                "eth1",
                Some(1500),
                Some(&mac(GUEST_MAC)),
                r.g(),
            ),
            netlink_packet_core::NLM_F_CREATE,
        )
        .unwrap();
    let gi = r.world.index_of(r.g(), "eth1").unwrap();
    let mut g = r.gnl.clone();
    g.request(msg::set_link_up(gi), 0).unwrap();
    g.request(
        msg::new_address(gi, ip("10.0.0.5"), 24, None),
        netlink_packet_core::NLM_F_CREATE,
    )
    .unwrap();
    assert_ne!(Some(gi), a.guest_index);
    assert!(
        !r.alive(&rec),
        "another ifindex: not the recorded interface"
    );
    let d = r.check(&rec);
    assert!(
        d.iter()
            .any(|x| x.starts_with("eth1 is another interface now")),
        "check finds nothing wrong with what alive rejects: {d:?}"
    );
}
