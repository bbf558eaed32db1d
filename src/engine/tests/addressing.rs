//! The guest-side addressing every kind shares: gateways, an existing default route, IPv6.

use super::*;

#[test]
fn gateway_outside_the_subnet_gets_an_on_link_route() {
    let setup = || dummy("10.0.0.5/24@10.9.9.1");
    let (r, p) = setup();
    assert_eq!(
        names(&p),
        [
            "create-dummy",
            "guest-arp-notify",
            "guest-link-up",
            "add-address",
            "add-gateway-route",
            "add-default-route",
            "announce"
        ]
    );
    assert_eq!(
        *op(&p, "add-gateway-route"),
        Op::AddHostRoute {
            gateway: ip("10.9.9.1"),
            ifname: "eth1".into()
        }
    );
    let before = r.snaps();
    let (a, j) = r.attach(&p);
    let g = r.world.snapshot(r.g());
    assert_eq!(
        g.routes,
        strings(&[
            "10.9.9.1/32 dev eth1 scope link",
            "default via 10.9.9.1 dev eth1"
        ])
    );
    assert_eq!(a.routes.len(), 2);
    let rec = r.record(&p, &a, j);
    let (_, left) = r.teardown(&rec, None);
    assert!(left.is_empty());
    assert_eq!(r.snaps(), before);
    rolls_back_everywhere(setup);
    // The same through a veth on a bridge.
    rolls_back_everywhere(|| {
        let mut r = Rig::new();
        let p = r.plan(&["br1", "web1", "10.0.0.5/24@10.9.9.1"]).unwrap();
        assert!(names(&p).contains(&"add-gateway-route"));
        (r, p)
    });
}

#[test]
fn existing_default_route_is_replaced_and_restored() {
    for argv in [
        &["br1", "web1", "10.0.0.5/24@10.0.0.1"][..],
        &[NIC, "web1", "10.0.0.5/24@10.0.0.1"][..],
        &["dummy", "web1", "10.0.0.5/24@10.9.9.1"][..],
        &["--direct-phys", NIC, "web1", "10.0.0.5/24@10.0.0.1"][..],
    ] {
        let (r, p) = with_default(argv);
        let n = names(&p);
        let at = n.iter().position(|s| *s == "delete-default-route");
        let add = n.iter().position(|s| *s == "add-default-route");
        assert!(at.is_some() && at < add, "{argv:?}: {n:?}");
        assert!(
            matches!(
                op(&p, "delete-default-route"),
                Op::DeleteRoute { text, .. } if text == "default via 172.17.0.1 dev eth0"
            ),
            "{argv:?}"
        );
        let before = r.snaps();
        assert_eq!(
            before.1.routes,
            strings(&["default via 172.17.0.1 dev eth0"])
        );
        let (a, j) = r.attach(&p);
        assert!(
            j.iter().any(|e| matches!(e, UndoEntry::ReAddRoute { text, .. } if text == "default via 172.17.0.1 dev eth0")),
            "{argv:?}: {j:?}"
        );
        let g = r.world.snapshot(r.g());
        assert!(
            !g.routes.iter().any(|x| x.contains("172.17.0.1")),
            "{argv:?}: {:?}",
            g.routes
        );
        assert!(
            g.routes
                .iter()
                .any(|x| x.starts_with("default via") && x.ends_with("dev eth1")),
            "{argv:?}: {:?}",
            g.routes
        );
        let rec = r.record(&p, &a, j);
        let (_, left) = r.teardown(&rec, None);
        assert!(left.is_empty(), "{argv:?}: {left:?}");
        assert_eq!(
            r.snaps(),
            before,
            "{argv:?}: detach restores the old default"
        );
        rolls_back_everywhere(|| with_default(argv));
    }
}

#[test]
fn ipv6_static_plan_apply_rollback_teardown() {
    let (mut r, _) = v6(&["dummy", "web1", "fd00::5/64@fd00::1"], false);
    let p = r.plan(&["dummy", "web1", "fd00::5/64@fd01::1"]).unwrap();
    assert_eq!(
        names(&p),
        [
            "create-dummy",
            "guest-ipv6-on",
            "guest-ndisc-notify",
            "guest-link-up",
            "add-address",
            "add-gateway-route",
            "add-default-route",
            "announce"
        ]
    );
    let p = r.plan(&["dummy", "web1", "fd00::5/64@fe80::1"]).unwrap();
    assert!(
        !names(&p).contains(&"add-gateway-route"),
        "a link-local gateway is on-link"
    );

    for (argv, routes) in [
        (
            &["dummy", "web1", "fd00::5/64@fd00::1"][..],
            &["default via fd00::1 dev eth1"][..],
        ),
        (
            &["dummy", "web1", "fd00::5/64@fd01::1"][..],
            &[
                "default via fd01::1 dev eth1",
                "fd01::1/128 dev eth1 scope link",
            ][..],
        ),
        (
            &["br1", "web1", "fd00::5/64@fd00::1"][..],
            &["default via fd00::1 dev eth1"][..],
        ),
    ] {
        for existing in [false, true] {
            let (r, p) = v6(argv, existing);
            assert_eq!(
                names(&p).contains(&"delete-default-route"),
                existing,
                "{argv:?}"
            );
            let before = r.snaps();
            let (a, j) = r.attach(&p);
            let g = r.world.snapshot(r.g());
            assert_eq!(g.routes, strings(routes), "{argv:?} {existing}");
            assert!(
                g.addresses.contains(&"eth1 fd00::5/64".to_string()),
                "{argv:?}"
            );
            let rec = r.record(&p, &a, j);
            assert!(r.check(&rec).is_empty(), "{argv:?}: {:?}", r.check(&rec));
            let (_, left) = r.teardown(&rec, None);
            assert!(left.is_empty(), "{argv:?}: {left:?}");
            assert_eq!(r.snaps(), before, "{argv:?} {existing}");
            rolls_back_everywhere(|| v6(argv, existing));
        }
    }
}
