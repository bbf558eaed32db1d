//! Undo and teardown across kinds: identity of what they delete, failures, dry runs, the record on disk.

use super::*;

#[test]
fn undo_never_deletes_a_link_pipework_did_not_make() {
    let r = Rig::new();
    let (h, g) = (r.h(), r.g());
    // Same names as journalled, but no pipework group, or another type.
    r.world.seed_veth(h, "vethX", g, "eth1");
    r.world.seed_link(
        h,
        Seed {
            name: "br1".into(),
            kind: Some(InfoKind::Bridge),
            up: true,
            ..Seed::default()
        },
    );
    r.world.seed_link(
        h,
        Seed {
            name: "dum0".into(),
            kind: Some(InfoKind::Dummy),
            group: LINK_GROUP,
            ..Seed::default()
        },
    );
    r.world.seed_link(
        g,
        Seed {
            name: "eth2".into(),
            kind: Some(InfoKind::Dummy),
            group: LINK_GROUP,
            ..Seed::default()
        },
    );
    r.world.seed_link(
        h,
        Seed {
            name: format!("{NIC}.10"),
            kind: Some(InfoKind::Vlan),
            up: true,
            ..Seed::default()
        },
    );
    let entries = vec![
        UndoEntry::DeleteLink {
            side: Side::Host,
            name: "vethX".into(),
            kind: LinkKind::Veth,
        },
        UndoEntry::DeleteLink {
            side: Side::Host,
            name: "dum0".into(),
            kind: LinkKind::Veth,
        },
        UndoEntry::DeleteLink {
            side: Side::Guest,
            name: "eth1".into(),
            kind: LinkKind::Macvlan,
        },
        UndoEntry::DeleteLink {
            side: Side::Guest,
            name: "eth2".into(),
            kind: LinkKind::Macvlan,
        },
        UndoEntry::DeleteBridge { name: "br1".into() },
        UndoEntry::DeleteVlan {
            name: format!("{NIC}.10"),
        },
    ];
    let before = r.snaps();
    for kind in [Kind::Bridge, Kind::Macvlan, Kind::Phys, Kind::Dummy] {
        let (done, left) = r.replay(kind, &entries, None);
        assert!(
            done.is_empty() && left.is_empty(),
            "{kind}: {done:?} {left:?}"
        );
        let mut batch = Batch {
            group: BATCH_GROUP,
            ..Batch::default()
        };
        let (done, left) = r.replay(kind, &entries, Some(&mut batch));
        assert!(
            done.is_empty() && left.is_empty(),
            "{kind}: {done:?} {left:?}"
        );
        assert!(
            batch.host_links.is_empty(),
            "{kind}: {:?}",
            batch.host_links
        );
        assert_eq!(r.snaps(), before, "{kind}");
    }
    assert_eq!(r.requests(), 0, "not even a group change");
}

#[test]
fn teardown_leaves_a_same_named_link_of_someone_else() {
    let (r, p) = bridge_new();
    let veth = r.veth_name("eth1");
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    // The pair was removed and someone made their own of the same names.
    r.del(r.h(), &veth);
    r.world.seed_veth(r.h(), &veth, r.g(), "eth1");
    let bi = r.world.index_of(r.h(), "br1").unwrap();
    let vi = r.world.index_of(r.h(), &veth).unwrap();
    let mut m = netlink_packet_route::link::LinkMessage::default();
    m.header.index = vi;
    m.attributes
        .push(netlink_packet_route::link::LinkAttribute::Controller(bi));
    r.host
        .clone()
        .request(RouteNetlinkMessage::SetLink(m), 0)
        .unwrap();
    let before = r.snaps();
    let (_, left) = r.teardown(&rec, None);
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(
        r.snaps(),
        before,
        "their veth, and the bridge it is a port of, stay"
    );
    // A macvlan replaced by a user's macvlan-named dummy carrying our group: also kept.
    let (r, p) = macvlan(&[]);
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    r.del(r.g(), "eth1");
    r.world.seed_link(
        r.g(),
        Seed {
            name: "eth1".into(),
            kind: Some(InfoKind::Dummy),
            group: LINK_GROUP,
            ..Seed::default()
        },
    );
    let before = r.snaps();
    let (_, left) = r.teardown(&rec, None);
    assert!(left.is_empty());
    assert_eq!(r.snaps(), before);
}

#[test]
fn a_stale_record_never_deletes_the_veth_of_a_newer_attachment() {
    let (r, p) = bridge_new();
    let veth = r.veth_name("eth1");
    let (a, j) = r.attach(&p);
    let stale = r.record(&p, &a, j);
    // The guest died (its pair with it); a new guest of the same PID got the same names.
    r.del(r.h(), &veth);
    let (a2, _) = r.attach(&p);
    assert_ne!(a2.host_index, a.host_index);
    let before = r.world.snapshot(r.h());
    // gc of the stale record: its namespace is gone (no guest side).
    let entries = driver(Kind::Bridge).teardown(&stale);
    let mut host = r.host.clone();
    let mut sys = Sys {
        host: &mut host,
        guest: None,
        guest_ns: None,
        home: &r.home,
        log: Log::default(),
        batch: None,
        record: Some(&stale),
    };
    let left = apply::undo::replay(Kind::Bridge, &entries, &mut sys, &mut Vec::new());
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(
        r.world.snapshot(r.h()),
        before,
        "the newer attachment's veth was deleted"
    );
}

#[test]
fn a_step_list_with_a_foreign_op_is_an_internal_error() {
    let (r, mut p) = dummy("10.0.21.101/24");
    let before = r.snaps();
    p.steps.insert(
        1,
        Step::new(
            "create-vlan",
            Op::CreateVlan {
                parent: NIC.into(),
                name: "x.1".into(),
                id: 1,
                mtu: None,
            },
        ),
    );
    let mut j = Vec::new();
    let e = r.apply(&p, &mut j, None).unwrap_err();
    assert!(
        e.to_string().contains("no driver applies step create-vlan"),
        "{e}"
    );
    assert_eq!(r.snaps(), before);
}

#[test]
fn a_failing_undo_is_reported_and_the_rest_still_runs() {
    let (r, p) = macvlan(&["@10"]);
    let vname = format!("{NIC}.10");
    r.world
        .fail_when(|m| matches!(m, RouteNetlinkMessage::DelLink(_)).then_some(libc::EBUSY));
    let mut j = Vec::new();
    let e = r
        .apply(&p, &mut j, Some("add-default-route"))
        .expect_err("injected");
    let left = e.left_behind().to_vec();
    assert!(
        matches!(&e, Error::Rollback { source, .. } if matches!(**source, Error::Injected("add-default-route"))),
        "{e}"
    );
    assert_eq!(e.step(), Some("add-default-route"));
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(
        left[0].starts_with("delete macvlan eth1 (Guest): cannot delete eth1"),
        "{left:?}"
    );
    assert!(
        left[1].starts_with(&format!(
            "delete VLAN interface {vname} if unused: cannot delete {vname}"
        )),
        "{left:?}"
    );
    let h = r.world.snapshot(r.h());
    assert!(
        !link(&h, NIC).up,
        "the NIC went back down after the failures"
    );
    assert!(link_names(&h).contains(&vname.as_str()));
    assert!(
        r.world.snapshot(r.g()).routes.is_empty(),
        "the new default route was taken out"
    );
}

#[test]
fn a_dry_run_batch_changes_nothing() {
    let (r, p) = bridge_new();
    let veth = r.veth_name("eth1");
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    let snaps = r.snaps();
    let n = r.requests();
    let mut batch = Batch {
        dry_run: true,
        group: BATCH_GROUP,
        ..Batch::default()
    };
    let (done, left) = r.teardown(&rec, Some(&mut batch));
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(r.requests(), n, "a dry run sent a change");
    assert_eq!(r.snaps(), snaps);
    assert!(
        done.contains(&format!("delete {veth} (host end)")),
        "{done:?}"
    );
    assert!(
        done.iter().any(|d| d.starts_with("delete bridge br1")),
        "{done:?}"
    );
    let (r, p) = phys(&[], "");
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    let snaps = r.snaps();
    let mut batch = Batch {
        dry_run: true,
        ..Batch::default()
    };
    let (done, _) = r.teardown(&rec, Some(&mut batch));
    assert_eq!(done, [format!("move eth1 back to the host as {NIC}")]);
    assert_eq!(r.snaps(), snaps);
}

#[test]
fn a_dry_run_lists_what_the_real_run_does() {
    let (r, p) = bridge_new();
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    let mut batch = Batch {
        dry_run: true,
        group: BATCH_GROUP,
        ..Batch::default()
    };
    let (dry, _) = r.teardown(&rec, Some(&mut batch));
    let (real, _) = r.teardown(&rec, None);
    assert_eq!(dry, real);
}

/// The journal as the engine writes it (a [`RecordFile`]), completed, read back from disk and
/// torn down: route bytes and every entry survive the JSON round trip.
#[test]
fn record_on_disk_round_trips_and_tears_down() {
    for argv in [
        &["br1", "web1", "10.0.0.5/24@10.0.0.1"][..],
        &[NIC, "web1", "10.0.0.5/24@10.0.0.1", "@10"][..],
        &["--direct-phys", NIC, "web1", "10.0.0.5/24@10.9.9.1"][..],
        &["dummy", "web1", "10.0.0.5/24@10.0.0.1"][..],
    ] {
        let (mut r, _) = with_default(&["dummy", "web1", "10.0.0.5/24"]);
        let p = r.plan(argv).unwrap();
        let before = r.snaps();
        let path = store::path_for(r.guest.netns.inode, &p.guest_ifname);
        let mut file = RecordFile::create(&path, header_of(&r.home, &r.guest, &p)).unwrap();
        let a = r.attach_with(&p, &mut file);
        let report =
            serde_json::to_value(AttachReport::new(&r.guest, &p, Some(a.clone()))).unwrap();
        let journal = Journal::entries(&file).to_vec();
        file.complete(identity_of(&p, &a), report, p.host_ifname.clone())
            .unwrap();
        drop(file);
        let rec = store::read_record(&path).unwrap();
        assert!(rec.complete());
        assert_eq!(rec.undo, journal, "{argv:?}");
        assert_eq!(rec.header.identity, Some(identity_of(&p, &a)));
        assert!(r.check(&rec).is_empty(), "{argv:?}: {:?}", r.check(&rec));
        assert!(r.alive(&rec), "{argv:?}");
        // As `detach` does it: the record is in the batch (so it is no user of its own VLAN
        // child), then the batch's group delete.
        let mut batch = Batch {
            group: BATCH_GROUP,
            ..Batch::default()
        };
        batch.records.insert(path.clone());
        let (_, left) = r.teardown(&rec, Some(&mut batch));
        std::fs::remove_file(&path).unwrap();
        assert!(left.is_empty(), "{argv:?}: {left:?}");
        r.host
            .clone()
            .request(msg::del_link_group(BATCH_GROUP), 0)
            .expect("group delete");
        let (mut h0, g0) = before;
        if let Some(l) = h0.links.iter_mut().find(|l| l.name == NIC) {
            l.up = true; // a NIC pipework brought up stays up
        }
        assert_eq!(r.snaps(), (h0, g0), "{argv:?}");
    }
    clean_scratch();
}
