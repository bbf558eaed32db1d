use super::*;

fn request(yaml: &str) -> LabRequest {
    let lab = crate::topology::file::check(crate::topology::file::parse(yaml.as_bytes()).unwrap())
        .unwrap();
    crate::topology::to_request(&lab).unwrap()
}

/// The issue's example, with a guest on every host and a host-less one.
const LAB: &str = r#"
lab: stretch
hosts:
  a: 192.0.2.10
  b: 192.0.2.20
  c: 192.0.2.30
guests:
  web1: {spec: "docker:web1", host: a}
  web2: {spec: "docker:web2", host: b}
  r1: {netns: r1, host: a}
  r9: {netns: r9, host: c}
  r2: {netns: r2, host: a}
  probe: {netns: probe}
bridges:
  br1: {vni: 42}
  br2: {}
  lonely: {}
attach:
  - br1 web1 10.0.0.5/24
  - br1 web2 10.0.0.6/24
  - br2 r1 10.0.2.1/24
  - br2 -i eth5 r2 10.0.2.2/24 --mtu 9000
links:
  - endpoints: [r1:eth1, r9:eth1]
    ipv4: [10.9.0.1/30, 10.9.0.2/30]
  - endpoints: [r1:eth2, r2:eth2]
  - endpoints: [r1:eth3, probe:eth3]
"#;

fn fixed(mtu: u32) -> impl FnMut(IpAddr) -> Result<Underlay, Error> {
    move |_| {
        Ok(Underlay {
            dev: Some("ul0".into()),
            mtu,
        })
    }
}

#[test]
fn each_host_gets_its_own_share() {
    let req = request(LAB);
    let a = share(&req, "a", &mut fixed(1500)).unwrap();
    assert_eq!(a.host.as_deref(), Some("a"));
    let keys: Vec<&String> = a.guests.keys().collect();
    assert_eq!(keys, ["probe", "r1", "r2", "web1"]);
    assert_eq!(a.attach.len(), 3);
    // br1 spans a and b; br2 is a's alone; lonely has no members: on every host.
    assert_eq!(a.stretch.len(), 1);
    let s = &a.stretch[0];
    assert_eq!(
        (s.bridge.as_str(), s.name.as_str(), s.vni),
        ("br1", "pwvx42", 42)
    );
    assert_eq!(s.remotes, ["192.0.2.20".parse::<IpAddr>().unwrap()]);
    assert_eq!(s.local, "192.0.2.10".parse::<IpAddr>().unwrap());
    assert_eq!((s.port, s.mtu, s.dev.as_deref()), (4789, 1450, Some("ul0")));
    assert!(a.bridges.contains_key("br2") && a.bridges.contains_key("lonely"));
    // The stretched bridge's members get the tunnel's MTU; others keep theirs.
    assert_eq!(a.attach[0].request.mtu, Some(1450));
    assert_eq!(a.attach[1].request.mtu, None);
    assert_eq!(a.attach[2].request.mtu, Some(9000));
    // Local links stay veths (both ends here, or one end host-less); r1~r9 is a's VXLAN end.
    let local: Vec<String> = a.links.iter().map(|l| l.name()).collect();
    assert_eq!(local, ["r1:eth2~r2:eth2", "r1:eth3~probe:eth3"]);
    assert_eq!(a.cross.len(), 1);
    let x = &a.cross[0];
    assert_eq!(
        (x.end.guest.as_str(), x.end.ifname.as_str()),
        ("r1", "eth1")
    );
    assert_eq!((x.peer_host.as_str(), x.mtu), ("c", 1450));
    assert_eq!(x.remote, "192.0.2.30".parse::<IpAddr>().unwrap());
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);

    // c: the other end of the link, the same VNI; br1 has no members there.
    let c = share(&req, "c", &mut fixed(1500)).unwrap();
    assert!(c.stretch.is_empty());
    assert!(!c.bridges.contains_key("br1") && !c.bridges.contains_key("br2"));
    assert_eq!(c.cross[0].end.guest, "r9");
    assert_eq!(c.cross[0].vni, x.vni);
    assert_eq!(c.cross[0].end.addresses[0].to_string(), "10.9.0.2/30");
    assert!(c.links.is_empty());
    let keys: Vec<&String> = c.guests.keys().collect();
    assert_eq!(keys, ["probe", "r9"]);

    let b = share(&req, "b", &mut fixed(1500)).unwrap();
    assert_eq!(
        b.stretch[0].remotes,
        ["192.0.2.10".parse::<IpAddr>().unwrap()]
    );
}

#[test]
fn an_ipv6_underlay_costs_70_and_the_smallest_underlay_mtu_wins() {
    let yaml = LAB
        .replace("192.0.2.10", "2001:db8::a")
        .replace("192.0.2.20", "2001:db8::b")
        .replace("192.0.2.30", "2001:db8::c")
        .replace("  - br2 r1 10.0.2.1/24\n", "  - br1 r9 10.0.0.9/24\n");
    let req = request(&yaml);
    let mut u = |ip: IpAddr| {
        Ok(Underlay {
            dev: Some("ul0".into()),
            mtu: if ip.to_string().ends_with('c') {
                9000
            } else {
                1500
            },
        })
    };
    let a = share(&req, "a", &mut u).unwrap();
    let s = &a.stretch[0];
    assert_eq!(s.remotes.len(), 2);
    assert_eq!(s.mtu, 1430);
    assert_eq!(a.cross[0].mtu, 9000 - 70);
}

#[test]
fn an_explicit_mtu_wins_with_a_warning() {
    let yaml = LAB
        .replace(
            "  - br1 web2 10.0.0.6/24\n",
            "  - br1 web2 10.0.0.6/24 --mtu 1500\n",
        )
        .replace(
            "    ipv4: [10.9.0.1/30, 10.9.0.2/30]\n",
            "    ipv4: [10.9.0.1/30, 10.9.0.2/30]\n    mtu: 1500\n",
        );
    let req = request(&yaml);
    let b = share(&req, "b", &mut fixed(1500)).unwrap();
    assert_eq!(b.attach[0].request.mtu, Some(1500));
    assert_eq!(b.warnings.len(), 1, "{:?}", b.warnings);
    assert!(b.warnings[0].contains("mtu 1500 does not fit stretched bridge br1"));
    assert!(b.warnings[0].contains("1450"), "{}", b.warnings[0]);
    let a = share(&req, "a", &mut fixed(1500)).unwrap();
    assert_eq!(a.cross[0].mtu, 1500);
    assert!(a
        .warnings
        .iter()
        .any(|w| w.contains("link r1:eth1~r9:eth1: mtu 1500")));
}

#[test]
fn adding_a_host_adds_one_peer_and_keeps_vnis() {
    let req = request(LAB);
    let before = share(&req, "a", &mut fixed(1500)).unwrap();
    let yaml = LAB
        .replace("  c: 192.0.2.30\n", "  c: 192.0.2.30\n  d: 192.0.2.40\n")
        .replace(
            "  probe: {netns: probe}\n",
            "  probe: {netns: probe}\n  d1: {netns: d1, host: d}\n",
        )
        .replace(
            "  - br1 web2 10.0.0.6/24\n",
            "  - br1 web2 10.0.0.6/24\n  - br1 d1 10.0.0.7/24\n",
        );
    let after = share(&request(&yaml), "a", &mut fixed(1500)).unwrap();
    assert_eq!(after.stretch[0].remotes.len(), 2);
    assert_eq!(after.stretch[0].vni, before.stretch[0].vni);
    assert_eq!(after.cross[0].vni, before.cross[0].vni);
    assert_eq!(after.attach, before.attach);
}

#[test]
fn derived_vnis_are_stable_in_range_and_never_clash() {
    let v = derive_vni("lab", "bridge:br1");
    assert_eq!(v, derive_vni("lab", "bridge:br1"));
    assert_ne!(v, derive_vni("lab2", "bridge:br1"));
    assert!((1..=MAX_VNI).contains(&v));
    // An explicit VNI that equals a derived one pushes the derived one aside.
    let explicit = BTreeMap::from([("bridge:x".to_string(), v)]);
    let t = vnis("lab", &explicit, &["bridge:br1".into(), "bridge:x".into()]);
    assert_eq!(t["bridge:x"], v);
    assert_eq!(t["bridge:br1"], if v == MAX_VNI { 1 } else { v + 1 });
    assert_eq!(vxlan_name(16_777_215), "pwvx16777215");
    assert!(vxlan_name(16_777_215).len() <= 15);
}

#[test]
fn the_host_is_found_from_the_machine_s_addresses() {
    let req = request(LAB);
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(
        own_host(&req, &[ip("127.0.0.1"), ip("192.0.2.20")]).unwrap(),
        "b"
    );
    let e = own_host(&req, &[ip("127.0.0.1")]).unwrap_err();
    assert!(e.to_string().contains("--host NAME"), "{e}");
    assert_eq!(e.exit_code(), 2);
    let e = own_host(&req, &[ip("192.0.2.10"), ip("192.0.2.30")]).unwrap_err();
    assert!(
        e.to_string().contains("several hosts") && e.to_string().contains("a, c"),
        "{e}"
    );
    let e = share(&req, "zz", &mut fixed(1500)).unwrap_err();
    assert!(e.to_string().contains("host 'zz' is not one of"), "{e}");
    assert_eq!(e.exit_code(), 2);
}

#[test]
fn an_unreachable_peer_is_the_lookup_s_error() {
    let req = request(LAB);
    let e = share(&req, "a", &mut |ip: IpAddr| {
        Err(Error::Invalid(format!("no route to {ip}")))
    })
    .unwrap_err();
    assert!(e.to_string().contains("no route to 192.0.2."), "{e}");
}

#[test]
fn an_unlisted_bridge_across_hosts_is_not_stretched_and_says_so() {
    let yaml = LAB.replace(
        "  - br2 r1 10.0.2.1/24\n",
        "  - br7 r1 10.0.2.1/24\n  - br7 r9 10.0.2.9/24\n",
    );
    let a = share(&request(&yaml), "a", &mut fixed(1500)).unwrap();
    assert!(a.stretch.iter().all(|s| s.bridge != "br7"));
    assert!(a
        .warnings
        .iter()
        .any(|w| w.contains("br7") && w.contains("not under bridges")));
}

#[test]
fn a_guest_on_an_unlisted_host_is_refused_not_trusted() {
    let mut req = request(LAB);
    req.guests.get_mut("r9").unwrap().host = Some("zz".into());
    let e = share(&req, "a", &mut fixed(1500)).unwrap_err();
    assert!(
        e.to_string().contains("guest r9 is placed on host 'zz'"),
        "{e}"
    );
}
