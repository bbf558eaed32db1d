//! Attaching guests to an existing non-bridge link (kind "macvlan"): the guest gets a macvlan
//! child of the "NIC", created directly inside the guest.
//!
//! The "NIC" is a veth end `pwn0` in the test's host namespace; its peer `lan0` sits up in
//! another test namespace, the outside LAN. Subnets 10.221.x.x / fd00:221::.
//! (VLANs on a NIC — `NIC.VLAN` links, module 8021q — are in kinds_probe.rs.)

mod common;
use common::*;

use std::time::Duration;

/// A host namespace with NIC `pwn0` (down; peer `lan0` up in `lan`).
struct World {
    host: Netns,
    lan: Netns,
}

impl World {
    fn new() -> World {
        Self::with_nic(None)
    }

    fn with_nic(mac: Option<&str>) -> World {
        let host = Netns::new("h");
        let lan = Netns::new("l");
        veth_nic(&host, "pwn0", mac, &lan, "lan0");
        World { host, lan }
    }

    /// Gives the LAN side an address (a neighbour the guests can ping).
    fn lan_addr(&self, cidr: &str) {
        let mut args = vec!["addr", "add", cidr, "dev", "lan0"];
        if cidr.contains(':') {
            args.push("nodad");
        }
        ip(&self.lan, &args);
    }

    fn nic(&self) -> Link {
        must_link(&self.host, "pwn0")
    }
}

/// `ifname` in `guest` is a macvlan of `nic` (in `host`) in `mode`, up with carrier, with
/// exactly `cidrs`. Returns it.
fn assert_macvlan(
    host: &dyn Ns,
    nic: &str,
    guest: &dyn Ns,
    ifname: &str,
    mode: &str,
    cidrs: &[&str],
) -> Link {
    let g = must_link(guest, ifname);
    assert_eq!(
        g.kind.as_deref(),
        Some("macvlan"),
        "{ifname} is a macvlan: {:?}",
        g.raw
    );
    assert_eq!(
        info_data(&g, "mode")
            .and_then(|v| v.as_str().map(String::from))
            .as_deref(),
        Some(mode),
        "macvlan mode of {ifname}: {:?}",
        g.raw
    );
    let parent = must_link(host, nic);
    assert_eq!(
        link_index(&g),
        Some(parent.index),
        "{ifname}'s parent is {nic} (ifindex {}) in the host: {:?}",
        parent.index,
        g.raw
    );
    assert!(g.is_up(), "{ifname} is up: {g:?}");
    assert!(
        wait_until(Duration::from_secs(2), || must_link(guest, ifname)
            .has_carrier()),
        "{ifname} has carrier"
    );
    let mut got = global_cidrs(guest, ifname);
    got.sort();
    let mut want: Vec<String> = cidrs.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(got, want, "addresses of {ifname} in {}", guest.describe());
    g
}

#[test]
fn two_guests_json_mtu_and_lan() {
    need_root!();
    let w = World::new();
    ip(&w.host, &["link", "set", "pwn0", "mtu", "1450"]);
    w.lan_addr("10.221.1.1/24");
    let g1 = Netns::new("g");
    let g2 = PidGuest::new();
    let hosts_links = link_names(&w.host);
    assert!(!w.nic().is_up(), "the NIC starts down");
    let j = w
        .pw(&["--json", "pwn0", &g1.name, "10.221.1.2/24"])
        .ok()
        .json();
    w.pw(&["pwn0", &g2.pid.to_string(), "10.221.1.3/24"]).ok();
    let l1 = assert_macvlan(&w.host, "pwn0", &g1, "eth1", "bridge", &["10.221.1.2/24"]);
    let l2 = assert_macvlan(&w.host, "pwn0", &g2, "eth1", "bridge", &["10.221.1.3/24"]);
    assert_eq!(l1.mtu, 1450, "MTU follows the NIC");
    assert_eq!(l2.mtu, 1450, "MTU follows the NIC");
    assert!(w.nic().is_up(), "the NIC was brought up");
    assert_eq!(
        link_names(&w.host),
        hosts_links,
        "nothing created in the host: the macvlan is made inside the guest"
    );
    assert_eq!(j["kind"], "macvlan", "{j}");
    assert!(j["host_ifname"].is_null(), "{j}");
    assert!(j["vlan"].is_null(), "{j}");
    assert_eq!(j["host_interface"], "pwn0", "{j}");
    assert_eq!(j["host_interface_created"], false, "{j}");
    assert_eq!(j["guest_ifname"], "eth1", "{j}");
    assert_eq!(j["mtu"], 1450, "{j}");
    assert_eq!(j["mac"], l1.mac.as_str(), "{j}");
    assert!(ping(&g1, "10.221.1.3"), "g1 -> g2 (macvlan bridge mode)");
    assert!(ping(&g2, "10.221.1.2"), "g2 -> g1");
    assert!(ping(&g1, "10.221.1.1"), "g1 -> the LAN through the NIC");
    assert!(ping(&w.lan, "10.221.1.3"), "the LAN -> g2");
}

impl World {
    fn pw(&self, args: &[&str]) -> Run {
        pipework(&self.host, args)
    }
}

#[test]
fn mtu_option_and_guest_name() {
    need_root!();
    let w = World::new();
    let g = Netns::new("g");
    let j = w
        .pw(&[
            "--json",
            "pwn0",
            "-i",
            "in0",
            &g.name,
            "10.221.2.2/24",
            "--mtu",
            "1300",
        ])
        .ok()
        .json();
    let l = assert_macvlan(&w.host, "pwn0", &g, "in0", "bridge", &["10.221.2.2/24"]);
    assert_eq!(l.mtu, 1300, "--mtu");
    assert_eq!(j["mtu"], 1300, "{j}");
    assert_eq!(j["guest_ifname"], "in0", "{j}");
    assert!(link(&g, "eth1").is_none());
}

#[test]
fn private_mode_isolates_guests() {
    need_root!();
    let w = World::new();
    w.lan_addr("10.221.3.1/24");
    let g1 = Netns::new("g");
    let g2 = Netns::new("g");
    w.pw(&[
        "--macvlan-mode",
        "private",
        "pwn0",
        &g1.name,
        "10.221.3.2/24",
    ])
    .ok();
    w.pw(&[
        "pwn0",
        &g2.name,
        "10.221.3.3/24",
        "--macvlan-mode",
        "private",
    ])
    .ok();
    assert_macvlan(&w.host, "pwn0", &g1, "eth1", "private", &["10.221.3.2/24"]);
    assert_macvlan(&w.host, "pwn0", &g2, "eth1", "private", &["10.221.3.3/24"]);
    assert!(
        ping(&g1, "10.221.3.1"),
        "private guests still reach the LAN"
    );
    assert!(
        ping(&g2, "10.221.3.1"),
        "private guests still reach the LAN"
    );
    assert!(
        !ping_once(&g1, "10.221.3.3", 1),
        "private mode: g1 must not reach g2"
    );
}

#[test]
fn vepa_and_passthru_modes() {
    need_root!();
    let w = World::new();
    veth_nic(&w.host, "pwn1", None, &w.lan, "lan1");
    let g1 = Netns::new("g");
    let g2 = Netns::new("g");
    let j = w
        .pw(&[
            "--json",
            "--macvlan-mode",
            "vepa",
            "pwn0",
            &g1.name,
            "10.221.4.2/24",
        ])
        .ok()
        .json();
    assert_eq!(j["kind"], "macvlan", "{j}");
    w.pw(&[
        "--macvlan-mode",
        "passthru",
        "pwn1",
        &g2.name,
        "10.221.4.3/24",
    ])
    .ok();
    assert_macvlan(&w.host, "pwn0", &g1, "eth1", "vepa", &["10.221.4.2/24"]);
    assert_macvlan(&w.host, "pwn1", &g2, "eth1", "passthru", &["10.221.4.3/24"]);
}

#[test]
fn invalid_mode_is_bad_input() {
    need_root!();
    let w = World::new();
    let g = Netns::new("g");
    let hb = snapshot(&w.host);
    let gb = snapshot(&g);
    w.pw(&["--macvlan-mode", "bogus", "pwn0", &g.name, "10.221.5.2/24"])
        .fails(2, "bogus")
        .clean_error();
    assert_unchanged(&w.host, &hb, "host after an invalid --macvlan-mode");
    assert_unchanged(&g, &gb, "guest after an invalid --macvlan-mode");
}

#[test]
fn host_interface_by_mac() {
    need_root!();
    let w = World::with_nic(Some("02:22:1a:00:00:06"));
    w.lan_addr("10.221.6.1/24");
    let g = Netns::new("g");
    let j = w
        .pw(&["--json", "mac:02:22:1a:00:00:06", &g.name, "10.221.6.2/24"])
        .ok()
        .json();
    assert_eq!(j["kind"], "macvlan", "{j}");
    assert_macvlan(&w.host, "pwn0", &g, "eth1", "bridge", &["10.221.6.2/24"]);
    assert!(ping(&g, "10.221.6.1"), "guest -> LAN");
}

/// README, "Let the Docker host communicate over macvlan interfaces": a macvlan in the host on
/// the same NIC reaches the guests.
#[test]
fn host_reaches_guest_through_its_own_macvlan() {
    need_root!();
    let w = World::new();
    ip(
        &w.host,
        &[
            "link", "add", "link", "pwn0", "name", "pwn0m", "type", "macvlan", "mode", "bridge",
        ],
    );
    ip(&w.host, &["addr", "add", "10.221.7.1/24", "dev", "pwn0m"]);
    ip(&w.host, &["link", "set", "pwn0m", "up"]);
    let g = Netns::new("g");
    w.pw(&["pwn0", &g.name, "10.221.7.2/24@10.221.7.1"]).ok();
    assert_macvlan(&w.host, "pwn0", &g, "eth1", "bridge", &["10.221.7.2/24"]);
    assert_eq!(
        default_route(&g, false),
        Some(("10.221.7.1".into(), "eth1".into()))
    );
    assert!(ping(&w.host, "10.221.7.2"), "host (via pwn0m) -> guest");
    assert!(ping(&g, "10.221.7.1"), "guest -> host's macvlan");
}

#[test]
fn ipv6_gateway_and_mac() {
    need_root!();
    let w = World::new();
    w.lan_addr("fd00:221:8::1/64");
    let g = Netns::new("g");
    w.pw(&[
        "pwn0",
        &g.name,
        "fd00:221:8::2/64@fd00:221:8::1",
        "02:22:1a:00:08:02",
    ])
    .ok();
    let l = assert_macvlan(&w.host, "pwn0", &g, "eth1", "bridge", &["fd00:221:8::2/64"]);
    assert_eq!(l.mac, "02:22:1a:00:08:02");
    let a = addrs(&g, Some("eth1"))
        .into_iter()
        .find(|a| a.scope == "global")
        .unwrap();
    assert!(!a.tentative, "IPv6 address is not tentative: {a:?}");
    assert_eq!(
        default_route(&g, true),
        Some(("fd00:221:8::1".into(), "eth1".into()))
    );
    assert!(ping(&g, "fd00:221:8::1"), "guest -> LAN over IPv6");
}

#[test]
fn zero_address_unique_mac() {
    need_root!();
    let w = World::new();
    let g = Netns::new("g");
    w.pw(&["pwn0", &g.name, "0/0", "U:myhost.foo.com"]).ok();
    let l = assert_macvlan(&w.host, "pwn0", &g, "eth1", "bridge", &[]);
    assert_eq!(l.mac, "02:72:6c:cd:9b:8d", "U: MAC as for bridges");
    assert!(addrs(&g, Some("eth1")).iter().all(|a| a.family != "inet"));
    assert!(default_route(&g, false).is_none());
}

#[test]
fn docker_container_on_nic() {
    let dh = need_docker!();
    let w = World::new();
    w.lan_addr("10.221.9.1/24");
    let c = Container::run(&dh);
    let g = Netns::new("g");
    let j = w
        .pw(&["--json", "pwn0", &c.name, "10.221.9.2/24@10.221.9.1"])
        .ok()
        .json();
    w.pw(&["pwn0", &g.name, "10.221.9.3/24"]).ok();
    assert_eq!(j["kind"], "macvlan", "{j}");
    assert!(j["host_ifname"].is_null(), "{j}");
    assert_macvlan(&w.host, "pwn0", &c, "eth1", "bridge", &["10.221.9.2/24"]);
    assert!(docker_ping(&c, "10.221.9.1"), "container -> LAN");
    assert!(ping(&g, "10.221.9.2"), "netns guest -> container");
}

// ---- rollback --------------------------------------------------------------------------------

/// Pre-existing default routes in a guest (over a veth pair inside it).
fn add_default_routes(g: &dyn Ns) {
    ip(
        g,
        &[
            "link", "add", "name", "gw0", "type", "veth", "peer", "name", "gw1",
        ],
    );
    ip(g, &["addr", "add", "10.221.99.2/24", "dev", "gw0"]);
    ip(
        g,
        &["addr", "add", "fd00:221:99::2/64", "dev", "gw0", "nodad"],
    );
    ip(g, &["link", "set", "gw0", "up"]);
    ip(g, &["link", "set", "gw1", "up"]);
    ip(g, &["route", "add", "default", "via", "10.221.99.1"]);
    ip(
        g,
        &["-6", "route", "add", "default", "via", "fd00:221:99::1"],
    );
}

/// One attach in a fresh world (NIC up or down), failing after `step` when given. Returns the
/// problems found (empty for a plain run) and the run.
fn attempt(nic_up: bool, pid_guest: bool, args: &[&str], step: Option<&str>) -> (Vec<String>, Run) {
    let w = World::new();
    if nic_up {
        ip(&w.host, &["link", "set", "pwn0", "up"]);
    }
    let pg;
    let ng;
    let (guest, spec): (&dyn Ns, String) = if pid_guest {
        pg = PidGuest::new();
        (&pg, pg.pid.to_string())
    } else {
        ng = Netns::new("g");
        (&ng, ng.name.clone())
    };
    add_default_routes(guest);
    // Wait for the NIC's link-local address before the "before" picture.
    wait_until(Duration::from_secs(2), || {
        !nic_up
            || addrs(&w.host, Some("pwn0"))
                .iter()
                .any(|a| a.family == "inet6")
    });
    let hb = snapshot(&w.host);
    let gb = snapshot(guest);
    let lb = snapshot(&w.lan);
    let mut argv = vec!["-v", "pwn0", spec.as_str()];
    argv.extend_from_slice(args);
    let Some(step) = step else {
        return (vec![], w.pw(&argv));
    };
    let r = pipework_env(&w.host, &argv, &[("PIPEWORK_TEST_FAIL_STEP", step)]);
    let mut problems = injected_failure_problems(&r, step);
    let two = Duration::from_secs(2);
    problems.extend(namespaces_changed(&[
        (&w.host, &hb, two, "host (NIC back to its up/down state)"),
        (guest, &gb, two, "guest (no macvlan left)"),
        (&w.lan, &lb, two, "LAN"),
    ]));
    if !problems.is_empty() {
        problems.push(format!("stderr: {}", r.stderr.trim()));
    }
    (problems, r)
}

fn inject_each_step(nic_up: bool, pid_guest: bool, args: &[&str]) {
    let (_, r) = attempt(nic_up, pid_guest, args, None);
    r.ok();
    let steps = step_names_of(&r);
    assert!(
        steps.len() >= 2,
        "-v logs its steps as `pipework: step NAME: DETAIL`:\n{}",
        r.stderr
    );
    for_each_step(&steps, |step| {
        attempt(nic_up, pid_guest, args, Some(step)).0
    });
}

#[test]
fn inject_failure_at_each_step_nic_down() {
    need_root!();
    inject_each_step(
        false,
        false,
        &["10.221.10.2/24@10.221.200.1", "02:22:1a:00:10:02"],
    );
}

#[test]
fn inject_failure_at_each_step_nic_up_private_ipv6() {
    need_root!();
    inject_each_step(
        true,
        true,
        &[
            "--macvlan-mode",
            "private",
            "fd00:221:11::2/64@fd00:221:11::1",
            "U:rollback.example",
        ],
    );
}
