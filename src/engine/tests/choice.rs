//! Which driver takes the host interface.

use super::*;

#[test]
fn the_kind_is_chosen_as_the_original_chooses_it() {
    let mut r = Rig::new();
    r.seed_nic(NIC, true);
    r.world.seed_link(
        r.h(),
        Seed {
            name: "br0".into(),
            kind: Some(InfoKind::Bridge),
            up: true,
            ..Seed::default()
        },
    );
    // By MAC.
    let p = r
        .plan(&["mac:52:54:00:12:34:56", "web1", "10.0.0.5/24"])
        .unwrap();
    assert_eq!((p.kind, p.host_interface.as_str()), (Kind::Macvlan, NIC));
    let e = r
        .plan(&["mac:52:54:00:00:00:01", "web1", "10.0.0.5/24"])
        .unwrap_err();
    assert!(
        e.to_string().contains(
            "Mac address 52:54:00:00:00:01 specified for interface but no host interface matched"
        ),
        "{e}"
    );
    // A missing name: only br*, ovs* and dummy* are created.
    let e = r.plan(&["nosuch0", "web1", "10.0.0.5/24"]).unwrap_err();
    assert!(
        e.to_string()
            .contains("I do not know how to setup interface nosuch0"),
        "{e}"
    );
    assert_eq!(
        r.plan(&["br9", "web1", "10.0.0.5/24"]).unwrap().kind,
        Kind::Bridge
    );
    assert_eq!(
        r.plan(&["dummy9", "web1", "10.0.0.5/24"]).unwrap().kind,
        Kind::Dummy
    );
    // An existing bridge is a bridge whatever its name.
    r.world.seed_link(
        r.h(),
        Seed {
            name: "lan".into(),
            kind: Some(InfoKind::Bridge),
            up: true,
            ..Seed::default()
        },
    );
    assert_eq!(
        r.plan(&["lan", "web1", "10.0.0.5/24"]).unwrap().kind,
        Kind::Bridge
    );
    // --direct-phys takes a NIC, and refuses a bridge or a missing name.
    assert_eq!(
        r.plan(&["--direct-phys", NIC, "web1", "10.0.0.5/24"])
            .unwrap()
            .kind,
        Kind::Phys
    );
    let e = r
        .plan(&["--direct-phys", "br0", "web1", "10.0.0.5/24"])
        .unwrap_err();
    assert!(e.to_string().contains("br0 is a bridge"), "{e}");
    let e = r
        .plan(&["--direct-phys", "nosuch0", "web1", "10.0.0.5/24"])
        .unwrap_err();
    assert!(e.to_string().contains("no interface nosuch0"), "{e}");
    // The macvlan mode, -i and a MAC.
    let p = r
        .plan(&[
            NIC,
            "-i",
            "net0",
            "web1",
            "10.0.0.5/24",
            GUEST_MAC,
            "--macvlan-mode",
            "private",
        ])
        .unwrap();
    assert_eq!(
        *op(&p, "create-macvlan"),
        Op::CreateInGuest {
            link: GuestLink::Macvlan {
                parent: NIC.into(),
                mode: crate::request::MacvlanMode::Private
            },
            name: "net0".into(),
            mtu: Some(1500),
            mac: Some(mac(GUEST_MAC))
        }
    );
    // No addressing (0/0): the link only comes up.
    let p = r.plan(&["dummy", "web1", "0/0"]).unwrap();
    assert_eq!(names(&p), ["create-dummy", "guest-link-up"]);
    let p = r.plan(&["br0", "web1", "0/0"]).unwrap();
    assert_eq!(
        names(&p),
        ["create-veth", "guest-link-up", "wait-port-ready"]
    );
    assert_eq!(r.requests(), 0, "planning changed something");
}

#[test]
fn a_kernel_without_the_kinds_module_says_which_one() {
    type Setup = fn() -> (Rig, Plan);
    let cases: [(InfoKind, Setup, &str, &str); 3] = [
        (
            InfoKind::MacVlan,
            || macvlan(&[]),
            "create-macvlan",
            "modprobe macvlan",
        ),
        (
            InfoKind::Ipoib,
            || ipoib(None),
            "create-ipoib",
            "modprobe ib_ipoib",
        ),
        (
            InfoKind::Dummy,
            || dummy("10.0.0.5/24"),
            "create-dummy",
            "modprobe dummy",
        ),
    ];
    for (kind, setup, step, hint) in cases {
        let (r, p) = setup();
        let before = r.snaps();
        r.world.lack_kind(kind.clone());
        let mut j = Vec::new();
        let e = r.apply(&p, &mut j, None).unwrap_err();
        assert_eq!(e.step(), Some(step), "{e}");
        assert!(e.to_string().contains(hint), "{kind}: {e}");
        assert_eq!(r.snaps(), before, "{kind}");
    }
}
