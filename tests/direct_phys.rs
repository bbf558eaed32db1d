//! `--direct-phys` (kind "phys"): the NIC itself moves into the guest, renamed.
//!
//! The "NIC" is a veth end `pwp0` in the test's host namespace; its peer `lan0` sits up in
//! another test namespace, the outside LAN. Subnets 10.222.x.x / fd00:222::.

mod common;
use common::*;

use serde_json::Value;
use std::time::Duration;

const NIC_MAC: &str = "02:22:2a:00:00:01";

/// A host namespace with NIC `pwp0` (MAC [`NIC_MAC`], down; peer `lan0` up in `lan`).
struct World {
    host: Netns,
    lan: Netns,
}

impl World {
    fn new() -> World {
        let host = Netns::new("h");
        let lan = Netns::new("l");
        veth_nic(&host, "pwp0", Some(NIC_MAC), &lan, "lan0");
        World { host, lan }
    }

    fn lan_addr(&self, cidr: &str) {
        let mut args = vec!["addr", "add", cidr, "dev", "lan0"];
        if cidr.contains(':') {
            args.push("nodad");
        }
        ip(&self.lan, &args);
    }

    fn pw(&self, args: &[&str]) -> Run {
        pipework(&self.host, args)
    }
}

/// The NIC is gone from the host and is `ifname` in `guest`: same link (its peer is still
/// `lan0`), MAC `mac`, up with carrier, exactly `cidrs`.
fn assert_moved(w: &World, guest: &dyn Ns, ifname: &str, mac: &str, cidrs: &[&str]) -> Link {
    assert!(
        link(&w.host, "pwp0").is_none(),
        "the NIC left the host: {:?}",
        link_names(&w.host)
    );
    let g = must_link(guest, ifname);
    assert_eq!(
        g.kind.as_deref(),
        Some("veth"),
        "the NIC itself, not a copy: {:?}",
        g.raw
    );
    let lan0 = must_link(&w.lan, "lan0");
    assert_eq!(
        link_index(&g),
        Some(lan0.index),
        "still the peer of lan0: {:?}",
        g.raw
    );
    assert_eq!(g.mac, mac, "MAC of {ifname}");
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

/// `dropped_addresses` of the JSON output, without IPv6 link-local ones (the kernel makes
/// those itself; whether they are listed is left open).
fn dropped(j: &Value) -> Vec<String> {
    let mut v: Vec<String> = j["dropped_addresses"]
        .as_array()
        .unwrap_or_else(|| panic!("dropped_addresses is a list: {j}"))
        .iter()
        .map(|a| {
            a.as_str()
                .unwrap_or_else(|| panic!("CIDR strings: {j}"))
                .to_string()
        })
        .filter(|a| !a.to_lowercase().starts_with("fe80:"))
        .collect();
    v.sort();
    v
}

#[test]
fn moves_nic_into_guest_json() {
    need_root!();
    let w = World::new();
    w.lan_addr("10.222.1.1/24");
    let g = Netns::new("g");
    let j = w
        .pw(&[
            "--json",
            "--direct-phys",
            "pwp0",
            &g.name,
            "10.222.1.2/24@10.222.1.1",
        ])
        .ok()
        .json();
    assert_moved(&w, &g, "eth1", NIC_MAC, &["10.222.1.2/24"]);
    assert_eq!(link_names(&w.host), ["lo"], "nothing else in the host");
    assert_eq!(
        default_route(&g, false),
        Some(("10.222.1.1".into(), "eth1".into()))
    );
    assert_eq!(j["kind"], "phys", "{j}");
    assert_eq!(j["host_interface"], "pwp0", "{j}");
    assert_eq!(
        j["host_ifname"], "pwp0",
        "the NIC's original host name: {j}"
    );
    assert_eq!(j["guest_ifname"], "eth1", "{j}");
    assert_eq!(j["mac"], NIC_MAC, "{j}");
    assert!(j["vlan"].is_null(), "{j}");
    assert_eq!(
        dropped(&j),
        Vec::<String>::new(),
        "no addresses to drop: {j}"
    );
    assert!(ping(&g, "10.222.1.1"), "guest -> LAN over the moved NIC");
}

/// README: `pipework --direct-phys mac:00:f3:15:4a:42:c8 -i container0 $CONTAINERID 0/0`.
#[test]
fn by_mac_with_custom_name_and_no_address() {
    need_root!();
    let w = World::new();
    let g = PidGuest::new();
    w.pw(&[
        "--direct-phys",
        &format!("mac:{NIC_MAC}"),
        "-i",
        "container0",
        &g.pid.to_string(),
        "0/0",
    ])
    .ok();
    assert_moved(&w, &g, "container0", NIC_MAC, &[]);
    assert!(link(&g, "eth1").is_none());
    assert!(addrs(&g, Some("container0"))
        .iter()
        .all(|a| a.family != "inet"));
}

#[test]
fn given_mac_and_ipv6_gateway() {
    need_root!();
    let w = World::new();
    w.lan_addr("fd00:222:3::1/64");
    let g = Netns::new("g");
    w.pw(&[
        "--direct-phys",
        "pwp0",
        &g.name,
        "fd00:222:3::2/64@fd00:222:3::1",
        "02:22:2a:00:03:99",
    ])
    .ok();
    assert_moved(&w, &g, "eth1", "02:22:2a:00:03:99", &["fd00:222:3::2/64"]);
    assert_eq!(
        default_route(&g, true),
        Some(("fd00:222:3::1".into(), "eth1".into()))
    );
    assert!(ping(&g, "fd00:222:3::1"), "guest -> LAN over IPv6");
}

#[test]
fn host_addresses_dropped_with_warning() {
    need_root!();
    let w = World::new();
    ip(&w.host, &["addr", "add", "10.222.4.1/24", "dev", "pwp0"]);
    ip(
        &w.host,
        &["addr", "add", "fd00:222:4::1/64", "dev", "pwp0", "nodad"],
    );
    ip(&w.host, &["link", "set", "pwp0", "up"]);
    w.lan_addr("10.222.4.9/24");
    let g = Netns::new("g");
    let r = w.pw(&["--json", "--direct-phys", "pwp0", &g.name, "10.222.4.2/24"]);
    r.ok();
    let j = r.json();
    assert_eq!(
        dropped(&j),
        ["10.222.4.1/24", "fd00:222:4::1/64"],
        "the NIC's host addresses are reported: {j}"
    );
    for a in ["10.222.4.1/24", "fd00:222:4::1/64"] {
        assert!(
            r.stderr.contains(a),
            "a warning on stderr names {a}:\n{}",
            r.stderr
        );
    }
    assert_moved(&w, &g, "eth1", NIC_MAC, &["10.222.4.2/24"]);
    assert!(ping(&g, "10.222.4.9"), "guest -> LAN");
}

#[test]
fn docker_container() {
    let dh = need_docker!();
    let w = World::new();
    w.lan_addr("10.222.5.1/24");
    let c = Container::run(&dh);
    let j = w
        .pw(&[
            "--json",
            "--direct-phys",
            "pwp0",
            &c.name,
            "10.222.5.2/24",
            "U:myhost.foo.com",
        ])
        .ok()
        .json();
    assert_eq!(j["kind"], "phys", "{j}");
    assert_moved(&w, &c, "eth1", "02:72:6c:cd:9b:8d", &["10.222.5.2/24"]);
    assert!(docker_ping(&c, "10.222.5.1"), "container -> LAN");
}

#[test]
fn unknown_nic_fails() {
    need_root!();
    let w = World::new();
    let g = Netns::new("g");
    let hb = snapshot(&w.host);
    let gb = snapshot(&g);
    w.pw(&["--direct-phys", "pwnope0", &g.name, "10.222.6.2/24"])
        .fails(1, "pwnope0")
        .clean_error();
    assert_unchanged(&w.host, &hb, "host after an unknown NIC");
    assert_unchanged(&g, &gb, "guest after an unknown NIC");
}

#[test]
fn bridge_is_refused() {
    need_root!();
    let w = World::new();
    ip(&w.host, &["link", "add", "name", "brx", "type", "bridge"]);
    ip(&w.host, &["link", "set", "brx", "up"]);
    let g = Netns::new("g");
    let hb = snapshot(&w.host);
    let gb = snapshot(&g);
    w.pw(&["--direct-phys", "brx", &g.name, "10.222.7.2/24"])
        .fails(1, "brx")
        .clean_error();
    assert_unchanged(&w.host, &hb, "host after --direct-phys on a bridge");
    assert_unchanged(&g, &gb, "guest after --direct-phys on a bridge");
}

/// The guest already has the target name: refused, and the NIC is still in the host as it was
/// (the move and the rename must not half-happen).
#[test]
fn guest_name_clash_keeps_nic_in_host() {
    need_root!();
    let w = World::new();
    ip(&w.host, &["addr", "add", "10.222.11.1/24", "dev", "pwp0"]);
    ip(&w.host, &["link", "set", "pwp0", "up"]);
    let g = Netns::new("g");
    ip(
        &g,
        &[
            "link", "add", "name", "eth1", "type", "veth", "peer", "name", "eth1p",
        ],
    );
    wait_until(Duration::from_secs(2), || {
        addrs(&w.host, Some("pwp0"))
            .iter()
            .any(|a| a.family == "inet6")
    });
    let hb = snapshot(&w.host);
    let gb = snapshot(&g);
    w.pw(&["--direct-phys", "pwp0", &g.name, "10.222.11.2/24"])
        .fails(1, "eth1")
        .clean_error();
    assert_unchanged_soon(
        &w.host,
        &hb,
        "host after a guest name clash (NIC untouched)",
    );
    assert_unchanged(&g, &gb, "guest after a guest name clash");
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
    ip(g, &["addr", "add", "10.222.99.2/24", "dev", "gw0"]);
    ip(g, &["link", "set", "gw0", "up"]);
    ip(g, &["link", "set", "gw1", "up"]);
    ip(g, &["route", "add", "default", "via", "10.222.99.1"]);
}

/// How the NIC looks before the run.
#[derive(Clone, Copy)]
enum Nic {
    /// Down, no addresses.
    Down,
    /// Up, with an IPv4 and an IPv6 address (and its link-local one).
    UpWithAddresses,
}

/// One `--direct-phys` attach in a fresh world, failing after `step` when given.
fn attempt(nic: Nic, pid_guest: bool, args: &[&str], step: Option<&str>) -> (Vec<String>, Run) {
    let w = World::new();
    if let Nic::UpWithAddresses = nic {
        ip(&w.host, &["addr", "add", "10.222.8.1/24", "dev", "pwp0"]);
        ip(
            &w.host,
            &["addr", "add", "fd00:222:8::1/64", "dev", "pwp0", "nodad"],
        );
        ip(&w.host, &["link", "set", "pwp0", "up"]);
        wait_until(Duration::from_secs(2), || {
            addrs(&w.host, Some("pwp0"))
                .iter()
                .any(|a| a.local.starts_with("fe80:"))
        });
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
    let hb = snapshot(&w.host);
    let gb = snapshot(guest);
    let lb = snapshot(&w.lan);
    let spec_arg = spec.clone();
    let argv: Vec<&str> = args
        .iter()
        .map(|a| if *a == "{g}" { spec_arg.as_str() } else { a })
        .collect();
    let Some(step) = step else {
        return (vec![], w.pw(&argv));
    };
    let r = pipework_env(&w.host, &argv, &[("PIPEWORK_TEST_FAIL_STEP", step)]);
    let mut problems = injected_failure_problems(&r, step);
    let three = Duration::from_secs(3);
    problems.extend(namespaces_changed(&[
        (
            &w.host,
            &hb,
            three,
            "host (the NIC back under its name, MAC, addresses, up/down state)",
        ),
        (guest, &gb, three, "guest"),
        (&w.lan, &lb, three, "LAN"),
    ]));
    if !problems.is_empty() {
        problems.push(format!("stderr: {}", r.stderr.trim()));
    }
    (problems, r)
}

fn inject_each_step(nic: Nic, pid_guest: bool, args: &[&str]) {
    let (_, r) = attempt(nic, pid_guest, args, None);
    r.ok();
    let steps = step_names_of(&r);
    assert!(
        steps.len() >= 2,
        "-v logs its steps as `pipework: step NAME: DETAIL`:\n{}",
        r.stderr
    );
    for_each_step(&steps, |step| attempt(nic, pid_guest, args, Some(step)).0);
}

#[test]
fn inject_failure_at_each_step_nic_up_with_addresses() {
    need_root!();
    inject_each_step(
        Nic::UpWithAddresses,
        false,
        &[
            "-v",
            "--direct-phys",
            "pwp0",
            "{g}",
            "10.222.9.2/24@10.222.200.1",
            "02:22:2a:00:09:02",
        ],
    );
}

#[test]
fn inject_failure_at_each_step_nic_down_by_mac() {
    need_root!();
    inject_each_step(
        Nic::Down,
        true,
        &[
            "-v",
            "--direct-phys",
            "mac:02:22:2a:00:00:01",
            "-i",
            "container0",
            "{g}",
            "fd00:222:10::2/64@fd00:222:10::1",
        ],
    );
}
