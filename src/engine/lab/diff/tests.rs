use super::*;
use crate::engine::lab::state::{MadeAttach, MadeLink};

fn request(yaml: &str) -> LabRequest {
    let lab = crate::topology::file::check(crate::topology::file::parse(yaml.as_bytes()).unwrap())
        .unwrap();
    crate::topology::to_request(&lab).unwrap()
}

const LAB: &str = r#"
lab: t
guests:
  a: {netns: a}
  b: {netns: b}
bridges:
  br0: {mtu: 9000}
attach:
  - br0 a 10.0.0.1/24@10.0.0.254
links:
  - endpoints: [a:eth9, b:eth9]
    ipv4: [10.9.0.1/30, 10.9.0.2/30]
"#;

fn ns(inode: u64) -> NsRef {
    NsRef {
        path: format!("/run/netns/x{inode}"),
        inode,
    }
}

/// The kernel and the state as a successful apply of `want` leaves them.
fn applied(want: &LabRequest) -> (LabState, Observed) {
    let mut seen = Observed::default();
    seen.host.insert(
        "br0".into(),
        LinkSeen {
            index: 2,
            kind: Some("bridge".into()),
            mtu: Some(9000),
            up: true,
            ..LinkSeen::default()
        },
    );
    seen.host.insert("vh".into(), LinkSeen::default());
    let link = |index, mac, addresses: Vec<IpNet>, mtu| LinkSeen {
        index,
        kind: Some("veth".into()),
        mac: Some(mac),
        mtu: Some(mtu),
        up: true,
        group: LINK_GROUP,
        addresses,
        ..LinkSeen::default()
    };
    let a = &want.attach[0];
    let l = &want.links[0];
    let mut ga = GuestSeen {
        ns: Some(ns(1)),
        ..GuestSeen::default()
    };
    ga.links.insert(
        "eth1".into(),
        link(
            5,
            a.request.mac.unwrap(),
            vec!["10.0.0.1/24".parse().unwrap()],
            9000,
        ),
    );
    ga.links.insert(
        "eth9".into(),
        link(6, l.ends[0].mac, l.ends[0].addresses.clone(), 1500),
    );
    ga.routes.push(RouteSeen {
        dst: "0.0.0.0/0".parse().unwrap(),
        via: Some("10.0.0.254".parse().unwrap()),
        oif: Some(5),
        metric: None,
    });
    let mut gb = GuestSeen {
        ns: Some(ns(2)),
        ..GuestSeen::default()
    };
    gb.links.insert(
        "eth9".into(),
        link(7, l.ends[1].mac, l.ends[1].addresses.clone(), 1500),
    );
    seen.guests.insert("a".into(), Some(ga));
    seen.guests.insert("b".into(), Some(gb));
    let state = LabState {
        version: 1,
        lab: "t".into(),
        netns: vec!["a".into(), "b".into()],
        bridges: vec![super::super::state::MadeBridge {
            name: "br0".into(),
            ovs: false,
        }],
        attach: vec![MadeAttach {
            attach: a.clone(),
            netns: ns(1),
            record: "/r".into(),
            host_ifname: Some("vh".into()),
        }],
        links: vec![MadeLink {
            link: l.clone(),
            netns: [ns(1), ns(2)],
        }],
        ..LabState::default()
    };
    (state, seen)
}

fn lines(want: &LabRequest, state: &LabState, seen: &Observed) -> Vec<String> {
    diff(want, state, seen)
        .unwrap()
        .iter()
        .flat_map(|c| render(c, want, state))
        .map(|l| l.to_string())
        .collect()
}

#[test]
fn a_fresh_lab_is_all_creations_in_order() {
    let want = request(LAB);
    let mut seen = Observed::default();
    seen.guests.insert("a".into(), None);
    seen.guests.insert("b".into(), None);
    let l = lines(&want, &LabState::default(), &seen);
    let ops: Vec<&str> = l.iter().map(|s| s.split(": ").next().unwrap()).collect();
    assert_eq!(
        ops,
        vec![
            "+ netns a",
            "+ netns b",
            "+ bridge br0",
            "+ attach a:eth1",
            "+ link a:eth9~b:eth9"
        ]
    );
}

#[test]
fn a_converged_lab_plans_nothing() {
    let want = request(LAB);
    let (state, seen) = applied(&want);
    assert_eq!(lines(&want, &state, &seen), Vec::<String>::new());
}

#[test]
fn edits_are_field_changes_in_place() {
    let want = request(LAB);
    let (state, seen) = applied(&want);
    let edited = request(&LAB.replace("10.0.0.1/24@", "10.0.0.2/24@").replace(
        "    ipv4: [10.9.0.1/30, 10.9.0.2/30]\n",
        "    ipv4: [10.9.0.1/30, 10.9.0.2/30]\n    mtu: 1400\n    rate: 1mbit\n",
    ));
    assert_eq!(
        lines(&edited, &state, &seen),
        vec![
            "~ attach a:eth1 address: 10.0.0.1/24 → 10.0.0.2/24",
            "~ attach a:eth1 gateway: none → 10.0.0.254",
            "~ link a:eth9~b:eth9 mtu: 1500 → 1400",
            "~ link a:eth9~b:eth9 rate: none → 1mbit",
        ]
    );
}

#[test]
fn what_the_kernel_lost_or_changed_is_made_again() {
    let want = request(LAB);
    let (state, mut seen) = applied(&want);
    // The link's far end is gone; the guest's interface got down; the bridge's MTU drifted.
    if let Some(Some(b)) = seen.guests.get_mut("b") {
        b.links.remove("eth9");
    }
    if let Some(Some(a)) = seen.guests.get_mut("a") {
        a.links.get_mut("eth1").unwrap().up = false;
    }
    seen.host.get_mut("br0").unwrap().mtu = Some(1500);
    let l = lines(&want, &state, &seen);
    assert_eq!(l[0], "~ bridge br0 mtu: 1500 → 9000");
    assert_eq!(l[1], "~ attach a:eth1 state: down → up");
    assert!(
        l[2].starts_with("~ link a:eth9~b:eth9 re-created (b:eth9 is gone)"),
        "{l:?}"
    );
    // A guest restarted (new namespace): its attachment is re-created.
    let (state, mut seen) = applied(&want);
    if let Some(Some(a)) = seen.guests.get_mut("a") {
        a.ns = Some(ns(9));
    }
    let l = lines(&want, &state, &seen);
    assert!(
        l[0].contains("re-created (the guest's namespace is a new one"),
        "{l:?}"
    );
}

#[test]
fn what_the_file_drops_is_removed_last() {
    let want = request(LAB);
    let (state, seen) = applied(&want);
    let less = request(
        "lab: t\nguests:\n  a: {netns: a}\n  b: {netns: b}\nbridges:\n  br0: {mtu: 9000}\n",
    );
    assert_eq!(
        lines(&less, &state, &seen),
        vec![
            "- link a:eth9~b:eth9".to_string(),
            format!(
                "- attach a:eth1: on br0, 10.0.0.1/24@10.0.0.254, mac {}",
                want.attach[0].request.mac.unwrap()
            )
        ]
    );
    let none = request("lab: t\n");
    let l = lines(&none, &state, &seen);
    assert_eq!(&l[2..], ["- bridge br0", "- netns a", "- netns b"]);
}

#[test]
fn someone_elses_interface_or_a_missing_external_bridge_is_an_error() {
    let want = request(LAB);
    let (_, seen) = applied(&want);
    // Not in the state, but the guest has eth1: not the lab's to take.
    let e = diff(&want, &LabState::default(), &seen).unwrap_err();
    assert!(matches!(e, Error::InterfaceExists(_)), "{e}");
    assert!(e.to_string().contains("a:eth1"), "{e}");
    let ext = request("lab: t\nbridges:\n  lan0: {external: true}\n");
    let e = diff(&ext, &LabState::default(), &Observed::default()).unwrap_err();
    assert!(
        e.to_string()
            .contains("lan0 is marked external but does not exist"),
        "{e}"
    );
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// `LAB` with br0 stretched to two peers and a:eth7 the VXLAN end of a cross-host link, as
/// applied.
fn stretched() -> (LabRequest, LabState, Observed) {
    let mut want = request(LAB);
    want.stretch.push(crate::lab::StretchedBridge {
        bridge: "br0".into(),
        name: "pwvx42".into(),
        vni: 42,
        port: 4789,
        local: ip("192.0.2.10"),
        remotes: vec![ip("192.0.2.20"), ip("192.0.2.30")],
        dev: Some("ul0".into()),
        mtu: 1450,
    });
    want.cross.push(crate::lab::CrossEnd {
        link: "a:eth7~z:eth7".into(),
        end: crate::lab::LinkEnd {
            guest: "a".into(),
            ifname: "eth7".into(),
            mac: MacAddr([2, 0, 0, 0, 0, 7]),
            addresses: vec!["10.9.9.1/30".parse().unwrap()],
        },
        peer_host: "c".into(),
        vni: 7,
        port: 4789,
        local: ip("192.0.2.10"),
        remote: ip("192.0.2.30"),
        dev: Some("ul0".into()),
        mtu: 1450,
        rate: None,
        netem: None,
    });
    let (mut state, mut seen) = applied(&want);
    state.vxlans = want.stretch.clone();
    state.cross = vec![super::super::state::MadeCross {
        end: want.cross[0].clone(),
        netns: ns(1),
    }];
    let vx = |remote: Option<&str>, local| crate::netlink::vxlan::VxlanSeen {
        vni: None,
        port: Some(4789),
        local: Some(ip(local)),
        remote: remote.map(ip),
        dev: Some(3),
    };
    seen.host.insert(
        "ul0".into(),
        LinkSeen {
            index: 3,
            ..LinkSeen::default()
        },
    );
    seen.host.insert(
        "pwvx42".into(),
        LinkSeen {
            index: 9,
            kind: Some("vxlan".into()),
            mtu: Some(1450),
            up: true,
            group: crate::engine::lab::LAB_GROUP,
            master: Some(2),
            vxlan: Some(crate::netlink::vxlan::VxlanSeen {
                vni: Some(42),
                ..vx(None, "192.0.2.10")
            }),
            ..LinkSeen::default()
        },
    );
    seen.fdb
        .insert("pwvx42".into(), vec![ip("192.0.2.20"), ip("192.0.2.30")]);
    let ga = seen.guests.get_mut("a").unwrap().as_mut().unwrap();
    ga.links.insert(
        "eth7".into(),
        LinkSeen {
            index: 8,
            kind: Some("vxlan".into()),
            mac: Some(MacAddr([2, 0, 0, 0, 0, 7])),
            mtu: Some(1450),
            up: true,
            group: LINK_GROUP,
            addresses: vec!["10.9.9.1/30".parse().unwrap()],
            vxlan: Some(crate::netlink::vxlan::VxlanSeen {
                vni: Some(7),
                ..vx(Some("192.0.2.30"), "192.0.2.10")
            }),
            ..LinkSeen::default()
        },
    );
    (want, state, seen)
}

#[test]
fn a_stretched_lab_as_applied_plans_nothing() {
    let (want, state, seen) = stretched();
    assert_eq!(lines(&want, &state, &seen), Vec::<String>::new());
}

#[test]
fn a_host_that_comes_or_goes_changes_only_the_flood_list() {
    let (mut want, state, seen) = stretched();
    want.stretch[0].remotes = vec![ip("192.0.2.20"), ip("192.0.2.40")];
    let c = diff(&want, &state, &seen).unwrap();
    assert_eq!(
        c,
        vec![Change::VxlanPeers {
            i: 0,
            del: vec![ip("192.0.2.30")],
            add: vec![ip("192.0.2.40")],
        }]
    );
    assert_eq!(
        lines(&want, &state, &seen),
        ["~ vxlan pwvx42 peers: 192.0.2.20, 192.0.2.30 → 192.0.2.20, 192.0.2.40"]
    );
}

#[test]
fn a_vxlan_port_not_as_wanted_is_made_again() {
    let (mut want, state, seen) = stretched();
    want.stretch[0].mtu = 1400;
    let l = lines(&want, &state, &seen);
    assert_eq!(l.len(), 1);
    assert!(
        l[0].starts_with("~ vxlan pwvx42 re-created (mtu 1450 → 1400)"),
        "{l:?}"
    );
    let (mut want, state, mut seen) = stretched();
    seen.host.get_mut("pwvx42").unwrap().master = None;
    want.stretch[0].port = 8472;
    let l = lines(&want, &state, &seen);
    assert!(
        l[0].contains("re-created (vni/port/local 42/4789/192.0.2.10 → 42/8472/192.0.2.10)"),
        "{l:?}"
    );
    // Gone: made again from scratch; the cross end likewise.
    let (want, state, mut seen) = stretched();
    seen.host.remove("pwvx42");
    let ga = seen.guests.get_mut("a").unwrap().as_mut().unwrap();
    ga.links.remove("eth7");
    let l = lines(&want, &state, &seen);
    assert!(
        l.iter()
            .any(|s| s.starts_with("+ vxlan pwvx42: on br0, vni 42")),
        "{l:?}"
    );
    assert!(
        l.iter()
            .any(|s| s.starts_with("~ link a:eth7~z:eth7 re-created (a:eth7 is gone)")),
        "{l:?}"
    );
}

#[test]
fn cross_ends_change_addresses_in_place_and_go_with_the_file() {
    let (mut want, state, seen) = stretched();
    want.cross[0].end.addresses = vec!["10.9.9.5/30".parse().unwrap()];
    assert_eq!(
        lines(&want, &state, &seen),
        ["~ link a:eth7~z:eth7 address of a:eth7: 10.9.9.1/30 → 10.9.9.5/30"]
    );
    let (mut want, state, seen) = stretched();
    want.cross[0].remote = ip("192.0.2.99");
    let l = lines(&want, &state, &seen);
    assert!(
        l[0].contains("re-created (vni/remote 7/192.0.2.30 → 7/192.0.2.99)"),
        "{l:?}"
    );
    // Dropped from the file (or the host left the lab): removed, the VXLAN port before its
    // bridge.
    let (mut want, state, seen) = stretched();
    want.cross.clear();
    want.stretch.clear();
    want.bridges.clear();
    want.attach.clear();
    let l = lines(&want, &state, &seen);
    let pos = |p: &str| l.iter().position(|s| s.starts_with(p)).unwrap();
    assert!(pos("- link a:eth7~z:eth7") < pos("- vxlan pwvx42"));
    assert!(pos("- vxlan pwvx42") < pos("- bridge br0"));
}

#[test]
fn a_vxlan_port_someone_else_made_is_an_error() {
    let (want, mut state, seen) = stretched();
    state.vxlans.clear();
    let e = diff(&want, &state, &seen).unwrap_err().to_string();
    assert!(
        e.contains("pwvx42") && e.contains("lab t did not make it") && e.contains("another vni"),
        "{e}"
    );
    let (want, mut state, seen) = stretched();
    state.cross.clear();
    let e = diff(&want, &state, &seen).unwrap_err().to_string();
    assert!(e.contains("a:eth7 already exists"), "{e}");
}
