//! The IPoIB kind, on an InfiniBand parent (made through the fake: see `ipoib`).

use super::*;

#[test]
fn ipoib_plan() {
    let (_, p) = ipoib(None);
    assert_eq!(p.kind, Kind::Ipoib);
    assert!(!p.announce);
    assert_eq!(
        names(&p),
        [
            "host-link-up",
            "create-ipoib",
            "guest-arp-notify",
            "guest-link-up",
            "add-address",
            "add-default-route"
        ]
    );
    assert_eq!(
        *op(&p, "create-ipoib"),
        Op::CreateInGuest {
            link: GuestLink::Ipoib {
                parent: "ib0".into(),
                pkey: None
            },
            name: "ib0".into(),
            mtu: None,
            mac: None
        }
    );
    let (_, p) = ipoib(Some("@8001"));
    assert_eq!(p.vlan, Some(0x8001));
    assert!(matches!(
        op(&p, "create-ipoib"),
        Op::CreateInGuest {
            link: GuestLink::Ipoib {
                pkey: Some(0x8001),
                ..
            },
            ..
        }
    ));
}

#[test]
fn ipoib_refuses_a_mac() {
    let (mut r, _) = ipoib(None);
    let e = r
        .plan(&["ib0", "web1", "10.0.0.5/24", GUEST_MAC])
        .unwrap_err();
    assert!(
        e.to_string().contains("MACADDR configuration unsupported"),
        "{e}"
    );
}

#[test]
fn ipoib_apply_check_teardown() {
    let (r, p) = ipoib(Some("@8001"));
    let (mut h0, g0) = r.snaps();
    let (a, j) = r.attach(&p);
    assert_eq!(
        j[..2],
        [
            UndoEntry::HostLinkDown { name: "ib0".into() },
            UndoEntry::DeleteLink {
                side: Side::Guest,
                name: "ib0".into(),
                kind: LinkKind::Ipoib
            }
        ]
    );
    let g = r.world.snapshot(r.g());
    let l = link(&g, "ib0");
    assert_eq!(
        (l.kind.as_deref(), l.up, l.group, l.mtu),
        (Some("ipoib"), true, LINK_GROUP, 2044)
    );
    let gl = r.world.link(r.g(), "ib0").unwrap();
    assert_eq!(gl.header.link_layer_type, LinkLayerType::Infiniband);
    assert_eq!(msg::link_parent(&gl), r.world.index_of(r.h(), "ib0"));
    assert_eq!(g.addresses, strings(&["ib0 10.0.0.5/24"]));
    assert_eq!(g.routes, strings(&["default via 10.0.0.1 dev ib0"]));
    assert_eq!(a.guest_mac, None, "an InfiniBand address is no MAC");
    // No announce: no MAC was re-set.
    assert!(!r.world.changes().iter().any(|c| c.contains(" mac ")));

    let rec = r.record(&p, &a, j);
    assert!(r.check(&rec).is_empty(), "{:?}", r.check(&rec));
    assert!(r.alive(&rec));
    let gi = r.world.index_of(r.g(), "ib0").unwrap();
    r.gnl
        .clone()
        .request(msg::del_address(gi, ip("10.0.0.5"), 24), 0)
        .unwrap();
    assert_eq!(r.check(&rec), ["ib0 lost its address 10.0.0.5/24"]);
    r.gnl
        .clone()
        .request(
            msg::new_address(gi, ip("10.0.0.5"), 24, Some("10.0.0.255".parse().unwrap())),
            netlink_packet_core::NLM_F_CREATE,
        )
        .unwrap();
    let (done, left) = r.teardown(&rec, None);
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(done.len(), 2, "{done:?}");
    let idx = h0.links.iter().position(|l| l.name == "ib0").unwrap();
    h0.links[idx].up = true;
    assert_eq!(r.snaps(), (h0, g0));
}

#[test]
fn ipoib_rollback() {
    rolls_back_everywhere(|| ipoib(None));
}

#[test]
fn fake_can_seed_an_infiniband_nic() {
    let r = Rig::new();
    r.world.seed_link(
        r.h(),
        Seed {
            name: "ib0".into(),
            kind: Some(InfoKind::Ipoib),
            ..Seed::default()
        },
    );
    let l = r.world.link(r.h(), "ib0").unwrap();
    assert_eq!(l.header.link_layer_type, LinkLayerType::Infiniband);
}
