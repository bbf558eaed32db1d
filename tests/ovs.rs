//! Attaching guests to an Open vSwitch bridge (kind "ovs").
//!
//! Every test runs its own OVS (ovsdb-server + ovs-vswitchd, userspace datapath) inside its own
//! host namespace, with its own directory (the [`Ovs`] guard); pipework finds it through
//! `OVS_RUNDIR`. Bridges use `datapath_type=netdev`: the kernel here has no OVS datapath.
//! Subnets 10.220.x.x / fd00:220::.

mod common;
use common::*;

use std::time::Duration;

/// A host namespace with its private Open vSwitch. Fields drop in order: OVS first, then the
/// namespace.
struct World {
    ovs: Ovs,
    host: Netns,
}

impl World {
    /// Host + OVS, without any bridge.
    fn bare() -> World {
        let host = Netns::new("h");
        let ovs = Ovs::start(&host);
        World { ovs, host }
    }

    /// Host + OVS with the userspace bridge `ovsbr0`.
    fn with_bridge() -> World {
        let w = World::bare();
        w.ovs.add_br("ovsbr0");
        w
    }

    /// pipework inside the host namespace, pointed at this OVS.
    fn pw(&self, args: &[&str]) -> Run {
        self.pw_env(args, &[])
    }

    fn pw_env(&self, args: &[&str], extra: &[(&str, &str)]) -> Run {
        let mut env = vec![("OVS_RUNDIR", self.ovs.rundir())];
        env.extend_from_slice(extra);
        pipework_env(&self.host, args, &env)
    }
}

/// The guest end `ifname` is a veth, up with carrier, with exactly `cidrs`, and TX checksum
/// offload off (a netdev-datapath bridge needs it for TCP); its host end is up and is a port of
/// OVS bridge `bridge`. Returns (guest end, host end).
fn assert_ovs_attached(
    w: &World,
    bridge: &str,
    guest: &dyn Ns,
    ifname: &str,
    cidrs: &[&str],
) -> (Link, Link) {
    let g = assert_guest_veth(guest, ifname, cidrs);
    let h = host_end_of(&w.host, guest, ifname);
    assert!(h.is_up(), "host end {} is up", h.name);
    assert!(h.name.len() <= 15, "host end name fits IFNAMSIZ");
    let ports = w.ovs.ports(bridge);
    assert!(
        ports.contains(&h.name),
        "host end {} is a port of OVS bridge {bridge}: {ports:?}",
        h.name
    );
    assert_eq!(
        ethtool_feature(guest, ifname, "tx-checksumming").as_deref(),
        Some("off"),
        "TX checksum offload is off on the guest end of a netdev-datapath bridge"
    );
    (g, h)
}

#[test]
fn existing_bridge_netns_guest_json_and_external_ids() {
    need_ovs!();
    let w = World::with_bridge();
    let guest = Netns::new("g");
    let j = w
        .pw(&["--json", "ovsbr0", &guest.name, "10.220.1.2/24@10.220.1.1"])
        .ok()
        .json();
    let (g, h) = assert_ovs_attached(&w, "ovsbr0", &guest, "eth1", &["10.220.1.2/24"]);
    assert_eq!(j["kind"], "ovs", "{j}");
    assert!(j["vlan"].is_null(), "untagged: {j}");
    assert_eq!(j["host_interface"], "ovsbr0", "{j}");
    assert_eq!(j["host_interface_created"], false, "{j}");
    assert_eq!(j["host_ifname"], h.name.as_str(), "{j}");
    assert_eq!(j["guest_ifname"], "eth1", "{j}");
    assert_eq!(j["mac"], g.mac.as_str(), "{j}");
    assert_eq!(
        default_route(&guest, false),
        Some(("10.220.1.1".into(), "eth1".into()))
    );
    assert_eq!(w.ovs.tag(&h.name), None, "no tag without @VLAN");
    let ids = w.ovs.external_ids(&h.name);
    assert_eq!(
        ids.get("pipework.interface"),
        Some(&h.name),
        "external-ids {ids:?}"
    );
    assert_eq!(
        ids.get("pipework.bridge").map(String::as_str),
        Some("ovsbr0"),
        "external-ids {ids:?}"
    );
    for absent in [
        "pipework.vlan",
        "pipework.nspid",
        "pipework.containerid",
        "pipework.containername",
    ] {
        assert!(
            !ids.contains_key(absent),
            "{absent} not set for an untagged named-netns guest: {ids:?}"
        );
    }
    // Nothing else appeared in the host: the bridge's tap, OVS's datapath tap, the host end.
    let mut hl = link_names(&w.host);
    hl.sort();
    let mut want = vec![
        "lo".to_string(),
        "ovs-netdev".to_string(),
        "ovsbr0".to_string(),
        h.name.clone(),
    ];
    want.sort();
    assert_eq!(hl, want, "host links");
    assert_eq!(w.ovs.bridges(), ["ovsbr0"], "no other bridge was created");
}

#[test]
fn untagged_pid_guests_ping_and_tcp() {
    need_ovs!();
    let w = World::with_bridge();
    let g1 = PidGuest::new();
    let g2 = PidGuest::new();
    w.pw(&["ovsbr0", &g1.pid.to_string(), "10.220.2.1/24"]).ok();
    w.pw(&["ovsbr0", &g2.pid.to_string(), "10.220.2.2/24"]).ok();
    let (_, h1) = assert_ovs_attached(&w, "ovsbr0", &g1, "eth1", &["10.220.2.1/24"]);
    let (_, h2) = assert_ovs_attached(&w, "ovsbr0", &g2, "eth1", &["10.220.2.2/24"]);
    assert_eq!(Some(h1.name.clone()), default_host_name("eth1", g1.pid));
    assert_eq!(Some(h2.name.clone()), default_host_name("eth1", g2.pid));
    assert_eq!(w.ovs.ports("ovsbr0").len(), 2, "two ports");
    let ids = w.ovs.external_ids(&h1.name);
    assert_eq!(
        ids.get("pipework.nspid"),
        Some(&g1.pid.to_string()),
        "nspid of a PID guest: {ids:?}"
    );
    assert!(ping(&g1, "10.220.2.2"), "g1 -> g2");
    assert!(ping(&g2, "10.220.2.1"), "g2 -> g1");
    // TCP across the userspace datapath (needs TX checksum offload off on the guest ends).
    tcp_roundtrip(&g2, &g1, "10.220.2.2", 5201, 200_000).expect("TCP g1 -> g2 over OVS");
}

#[test]
fn vlan_tags_isolate_guests() {
    need_ovs!();
    let w = World::with_bridge();
    let a = Netns::new("g");
    let b = Netns::new("g");
    let c = Netns::new("g");
    let ja = w
        .pw(&["--json", "ovsbr0", &a.name, "10.220.3.1/24", "@10"])
        .ok()
        .json();
    w.pw(&["ovsbr0", &b.name, "10.220.3.2/24", "@10"]).ok();
    w.pw(&["ovsbr0", &c.name, "10.220.3.3/24", "02:22:00:00:03:03@20"])
        .ok();
    let (_, ha) = assert_ovs_attached(&w, "ovsbr0", &a, "eth1", &["10.220.3.1/24"]);
    let (_, hb) = assert_ovs_attached(&w, "ovsbr0", &b, "eth1", &["10.220.3.2/24"]);
    let (gc, hc) = assert_ovs_attached(&w, "ovsbr0", &c, "eth1", &["10.220.3.3/24"]);
    assert_eq!(ja["kind"], "ovs", "{ja}");
    assert_eq!(ja["vlan"], 10, "{ja}");
    assert_eq!(w.ovs.tag(&ha.name), Some(10));
    assert_eq!(w.ovs.tag(&hb.name), Some(10));
    assert_eq!(w.ovs.tag(&hc.name), Some(20));
    assert_eq!(gc.mac, "02:22:00:00:03:03", "MAC and VLAN together");
    let ids = w.ovs.external_ids(&ha.name);
    assert_eq!(
        ids.get("pipework.vlan").map(String::as_str),
        Some("10"),
        "{ids:?}"
    );
    assert!(ping(&a, "10.220.3.2"), "same tag: a -> b");
    assert!(ping(&b, "10.220.3.1"), "same tag: b -> a");
    assert!(
        !ping_once(&a, "10.220.3.3", 1),
        "tag 10 must not reach tag 20"
    );
    assert!(
        !ping_once(&c, "10.220.3.2", 1),
        "tag 20 must not reach tag 10"
    );
}

#[test]
fn ipv6_gateway_and_mac() {
    need_ovs!();
    let w = World::with_bridge();
    let g1 = Netns::new("g");
    let g2 = Netns::new("g");
    w.pw(&[
        "ovsbr0",
        &g1.name,
        "fd00:220:4::2/64@fd00:220:4::1",
        "02:22:00:00:04:02",
    ])
    .ok();
    w.pw(&["ovsbr0", &g2.name, "fd00:220:4::3/64"]).ok();
    let (g, _) = assert_ovs_attached(&w, "ovsbr0", &g1, "eth1", &["fd00:220:4::2/64"]);
    assert_eq!(g.mac, "02:22:00:00:04:02");
    assert_eq!(
        default_route(&g1, true),
        Some(("fd00:220:4::1".into(), "eth1".into()))
    );
    assert!(ping(&g1, "fd00:220:4::3"), "g1 -> g2 over IPv6");
    tcp_roundtrip(&g1, &g2, "fd00:220:4::2", 5202, 100_000).expect("TCP over IPv6 via OVS");
}

#[test]
fn zero_address_unique_mac_custom_names() {
    need_ovs!();
    let w = World::with_bridge();
    let guest = Netns::new("g");
    w.pw(&[
        "ovsbr0",
        "-i",
        "in0",
        "-l",
        "pwovs0",
        &guest.name,
        "0/0",
        "U:myhost.foo.com",
    ])
    .ok();
    let (g, h) = assert_ovs_attached(&w, "ovsbr0", &guest, "in0", &[]);
    assert_eq!(h.name, "pwovs0");
    assert_eq!(g.mac, "02:72:6c:cd:9b:8d", "U: MAC as for bridges");
    assert!(
        addrs(&guest, Some("in0"))
            .iter()
            .all(|a| a.family != "inet"),
        "no IPv4 address with 0/0"
    );
    assert!(link(&guest, "eth1").is_none());
    assert_eq!(
        w.ovs
            .external_ids("pwovs0")
            .get("pipework.interface")
            .map(String::as_str),
        Some("pwovs0")
    );
}

#[test]
fn docker_containers_external_ids_and_ping() {
    let dh = need_docker!();
    if !ovs_or_skip(&test_name()) {
        return;
    }
    let w = World::with_bridge();
    let c1 = Container::run(&dh);
    let c2 = Container::run(&dh);
    w.pw(&["ovsbr0", &c1.name, "10.220.5.1/24", "@7"]).ok();
    w.pw(&["ovsbr0", &c2.id, "10.220.5.2/24", "@7"]).ok();
    let (_, h1) = assert_ovs_attached(&w, "ovsbr0", &c1, "eth1", &["10.220.5.1/24"]);
    assert_ovs_attached(&w, "ovsbr0", &c2, "eth1", &["10.220.5.2/24"]);
    assert_eq!(Some(h1.name.clone()), default_host_name("eth1", c1.pid));
    let ids = w.ovs.external_ids(&h1.name);
    assert_eq!(ids.get("pipework.containerid"), Some(&c1.id), "{ids:?}");
    let cname = ids
        .get("pipework.containername")
        .unwrap_or_else(|| panic!("containername set: {ids:?}"));
    assert!(
        cname == &c1.name || cname == &format!("/{}", c1.name),
        "containername is the container's name (Docker's .Name may carry a leading /): {cname}"
    );
    assert_eq!(
        ids.get("pipework.nspid"),
        Some(&c1.pid.to_string()),
        "{ids:?}"
    );
    assert_eq!(ids.get("pipework.vlan").map(String::as_str), Some("7"));
    assert!(docker_ping(&c1, "10.220.5.2"), "c1 -> c2");
}

#[test]
fn missing_ovs_name_creates_netdev_bridge() {
    need_ovs!();
    let w = World::bare();
    let g1 = Netns::new("g");
    let g2 = Netns::new("g");
    let j = w
        .pw(&[
            "--json",
            "--ovs-datapath",
            "netdev",
            "ovs0",
            &g1.name,
            "10.220.6.1/24",
        ])
        .ok()
        .json();
    assert_eq!(j["kind"], "ovs", "{j}");
    assert_eq!(j["host_interface_created"], true, "{j}");
    assert_eq!(w.ovs.bridges(), ["ovs0"], "bridge created through OVS");
    assert_eq!(
        w.ovs
            .get("Bridge", "ovs0", "datapath_type")
            .trim_matches('"'),
        "netdev",
        "--ovs-datapath netdev"
    );
    // Now it exists (a tap device OVS knows): found as "ovs", not created again.
    let j2 = w
        .pw(&["--json", "ovs0", &g2.name, "10.220.6.2/24"])
        .ok()
        .json();
    assert_eq!(j2["kind"], "ovs", "{j2}");
    assert_eq!(j2["host_interface_created"], false, "{j2}");
    assert_ovs_attached(&w, "ovs0", &g1, "eth1", &["10.220.6.1/24"]);
    assert_ovs_attached(&w, "ovs0", &g2, "eth1", &["10.220.6.2/24"]);
    assert!(ping(&g1, "10.220.6.2"), "g1 -> g2 on the new bridge");
}

/// Kind detection asks OVS about tap devices: a tap it does not know is an ordinary link
/// (macvlan parent), not an OVS bridge.
#[test]
fn tap_unknown_to_ovs_is_not_an_ovs_bridge() {
    need_ovs!();
    let w = World::with_bridge();
    ip(&w.host, &["tuntap", "add", "dev", "pwtap0", "mode", "tap"]);
    let guest = Netns::new("g");
    let j = w
        .pw(&["--json", "pwtap0", &guest.name, "10.220.8.2/24"])
        .ok()
        .json();
    assert_eq!(j["kind"], "macvlan", "{j}");
    assert_eq!(w.ovs.ports("ovsbr0"), Vec::<String>::new(), "no OVS port");
    let l = must_link(&guest, "eth1");
    assert_eq!(l.kind.as_deref(), Some("macvlan"), "{:?}", l.raw);
}

// ---- OVS missing or down (exit 1, nothing left) ----------------------------------------------

#[test]
fn ovs_not_running_empty_rundir() {
    need_ovs!();
    let host = Netns::new("h");
    let guest = Netns::new("g");
    let empty = std::env::temp_dir().join(unique("ovsempty"));
    std::fs::create_dir(&empty).unwrap();
    let hb = snapshot(&host);
    let gb = snapshot(&guest);
    let r = pipework_env(
        &host,
        &[
            "--ovs-datapath",
            "netdev",
            "ovs0",
            &guest.name,
            "10.220.7.2/24",
        ],
        &[("OVS_RUNDIR", empty.to_str().unwrap())],
    );
    let _ = std::fs::remove_dir_all(&empty);
    r.fails_any(1, &["open vswitch"]).clean_error();
    assert_unchanged(&host, &hb, "host after OVS was unreachable");
    assert_unchanged(&guest, &gb, "guest after OVS was unreachable");
}

#[test]
fn ovs_not_installed() {
    need_ovs!();
    let w = World::bare();
    let guest = Netns::new("g");
    // A PATH without ovs-vsctl (the OVS daemons of this test do run).
    let empty = std::env::temp_dir().join(unique("nopath"));
    std::fs::create_dir(&empty).unwrap();
    let hb = snapshot(&w.host);
    let gb = snapshot(&guest);
    let r = w.pw_env(
        &[
            "--ovs-datapath",
            "netdev",
            "ovs0",
            &guest.name,
            "10.220.7.3/24",
        ],
        &[("PATH", empty.to_str().unwrap())],
    );
    let _ = std::fs::remove_dir_all(&empty);
    // The contract asks for "Open vSwitch"; the original's own wording ("Need OVS installed on
    // the system to create an ovs bridge") is accepted too.
    r.fails_any(1, &["open vswitch", "need ovs installed"])
        .clean_error();
    assert_unchanged(&w.host, &hb, "host when ovs-vsctl is not installed");
    assert_unchanged(&guest, &gb, "guest when ovs-vsctl is not installed");
    assert!(w.ovs.bridges().is_empty(), "no bridge in the database");
}

/// An existing OVS bridge (a tap device in the host) while pipework cannot reach OVS: it must
/// not guess (e.g. put a macvlan on the bridge's tap); exit 1, nothing changed.
#[test]
fn existing_ovs_bridge_but_ovs_unreachable() {
    need_ovs!();
    let w = World::with_bridge();
    let guest = Netns::new("g");
    let empty = std::env::temp_dir().join(unique("ovsempty"));
    std::fs::create_dir(&empty).unwrap();
    let hb = snapshot(&w.host);
    let gb = snapshot(&guest);
    let ob = w.ovs.state();
    let r = pipework_env(
        &w.host,
        &["ovsbr0", &guest.name, "10.220.7.5/24"],
        &[("OVS_RUNDIR", empty.to_str().unwrap())],
    );
    let _ = std::fs::remove_dir_all(&empty);
    r.fails_any(1, &["open vswitch"]).clean_error();
    assert_unchanged(&w.host, &hb, "host when OVS is unreachable");
    assert_unchanged(&guest, &gb, "guest when OVS is unreachable");
    assert_eq!(w.ovs.state(), ob, "OVS database untouched");
}

/// The database answers but ovs-vswitchd is down: ovs-vsctl would wait for the switch forever.
/// pipework must give up (exit 1, message about Open vSwitch) and leave nothing, database
/// included.
#[test]
fn ovs_vswitchd_not_running() {
    need_ovs!();
    let host = Netns::new("h");
    let ovs = Ovs::start_db_only(&host);
    let guest = Netns::new("g");
    let hb = snapshot(&host);
    let gb = snapshot(&guest);
    let ob = ovs.state();
    let r = pipework_env(
        &host,
        &[
            "--ovs-datapath",
            "netdev",
            "ovs0",
            &guest.name,
            "10.220.7.4/24",
        ],
        &[("OVS_RUNDIR", ovs.rundir())],
    );
    r.fails_any(1, &["open vswitch"]).clean_error();
    assert_unchanged(&host, &hb, "host when ovs-vswitchd is down");
    assert_unchanged(&guest, &gb, "guest when ovs-vswitchd is down");
    assert_eq!(ovs.state(), ob, "OVS database after a failed run");
}

// ---- rollback --------------------------------------------------------------------------------

/// One injected failure after `step` in a fresh world; the problems found.
fn inject_once(
    make: &dyn Fn() -> World,
    guest_pid: bool,
    args: &dyn Fn(&str) -> Vec<String>,
    step: Option<&str>,
) -> (Vec<String>, Run) {
    let w = make();
    let pg;
    let ng;
    let (guest, spec): (&dyn Ns, String) = if guest_pid {
        pg = PidGuest::new();
        (&pg, pg.pid.to_string())
    } else {
        ng = Netns::new("g");
        (&ng, ng.name.clone())
    };
    let hb = snapshot(&w.host);
    let gb = snapshot(guest);
    let ob = w.ovs.state();
    let argv = args(&spec);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let Some(step) = step else {
        let r = w.pw(&argv);
        return (vec![], r);
    };
    let r = w.pw_env(&argv, &[("PIPEWORK_TEST_FAIL_STEP", step)]);
    let mut problems = injected_failure_problems(&r, step);
    problems.extend(namespaces_changed(&[
        (&w.host, &hb, Duration::from_secs(2), "host"),
        (guest, &gb, Duration::from_secs(1), "guest"),
    ]));
    let mut oa = w.ovs.state();
    if oa != ob {
        std::thread::sleep(Duration::from_millis(500));
        oa = w.ovs.state();
    }
    if oa != ob {
        problems.push(format!(
            "OVS database changed:\nbefore {ob:#?}\nafter {oa:#?}"
        ));
    }
    if !problems.is_empty() {
        problems.push(format!("stderr: {}", r.stderr.trim()));
    }
    (problems, r)
}

fn inject_each_step(make: &dyn Fn() -> World, guest_pid: bool, args: &dyn Fn(&str) -> Vec<String>) {
    let (_, r) = inject_once(make, guest_pid, args, None);
    r.ok();
    let steps = step_names_of(&r);
    assert!(
        steps.len() >= 3,
        "-v logs its steps as `pipework: step NAME: DETAIL`:\n{}",
        r.stderr
    );
    for_each_step(&steps, |step| {
        inject_once(make, guest_pid, args, Some(step)).0
    });
}

#[test]
fn inject_failure_at_each_step_existing_bridge_tagged() {
    need_ovs!();
    inject_each_step(&World::with_bridge, true, &|g| {
        vec![
            "-v".into(),
            "ovsbr0".into(),
            g.into(),
            "10.220.9.2/24@10.220.9.1".into(),
            "02:22:00:00:09:02@10".into(),
        ]
    });
}

#[test]
fn inject_failure_at_each_step_new_bridge() {
    need_ovs!();
    inject_each_step(&World::bare, false, &|g| {
        vec![
            "-v".into(),
            "--ovs-datapath".into(),
            "netdev".into(),
            "ovs0".into(),
            g.into(),
            "fd00:220:10::2/64@fd00:220:10::1".into(),
        ]
    });
}
