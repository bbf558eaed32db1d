//! Attaching guests to a Linux bridge: the main job of pipework.
//!
//! Each test makes its own "host" namespace (where pipework runs and the bridge lives) and its
//! own guests; subnets are 10.210.x.x / fd00:210:x::.

mod common;
use common::*;

use std::time::Duration;

#[test]
fn ipv4_new_bridge_netns_guest() {
    need_root!();
    let host = Netns::new("h");
    let guest = Netns::new("g");
    pipework(&host, &["br1", &guest.name, "10.210.1.5/24"]).ok();

    let (g, h) = assert_attached(&host, "br1", &guest, "eth1", &["10.210.1.5/24"]);
    let a = addrs(&guest, Some("eth1"))
        .into_iter()
        .find(|a| a.family == "inet")
        .expect("an IPv4 address on eth1");
    assert_eq!(
        a.broadcast.as_deref(),
        Some("10.210.1.255"),
        "broadcast set: {a:?}"
    );
    assert_eq!(g.mtu, 1500);
    assert_eq!(h.mtu, 1500);
    assert!(h.name.starts_with('v'), "host end name {}", h.name);
    assert!(
        route_to(&guest, false, "10.210.1.0/24").is_some(),
        "subnet route"
    );
    assert!(
        default_route(&guest, false).is_none(),
        "no gateway given: no default route"
    );
    let mut gl = link_names(&guest);
    gl.sort();
    assert_eq!(gl, ["eth1", "lo"], "guest holds lo and eth1 only");
    let mut hl = link_names(&host);
    hl.sort();
    let mut want = vec!["br1".to_string(), "lo".to_string(), h.name.clone()];
    want.sort();
    assert_eq!(hl, want, "host holds lo, the bridge and the host end only");
}

#[test]
fn two_guests_ping_ipv4() {
    need_root!();
    let host = Netns::new("h");
    let g1 = Netns::new("g");
    let g2 = Netns::new("g");
    pipework(&host, &["br1", &g1.name, "10.210.2.1/24"]).ok();
    pipework(&host, &["br1", &g2.name, "10.210.2.2/24"]).ok();
    assert_eq!(ports_of(&host, "br1").len(), 2, "two ports on br1");
    assert!(ping(&g1, "10.210.2.2"), "g1 -> g2");
    assert!(ping(&g2, "10.210.2.1"), "g2 -> g1");
}

#[test]
fn two_guests_ping_ipv6_not_tentative() {
    need_root!();
    let host = Netns::new("h");
    let g1 = Netns::new("g");
    let g2 = Netns::new("g");
    pipework(&host, &["br1", &g1.name, "fd00:210:3::1/64"]).ok();
    pipework(&host, &["br1", &g2.name, "fd00:210:3::2/64"]).ok();
    for (g, want) in [(&g1, "fd00:210:3::1/64"), (&g2, "fd00:210:3::2/64")] {
        assert_attached(&host, "br1", g, "eth1", &[want]);
        let a = addrs(g, Some("eth1"))
            .into_iter()
            .find(|a| a.scope == "global")
            .unwrap();
        assert!(
            !a.tentative,
            "IPv6 address added with nodad is not tentative: {a:?}"
        );
    }
    // Right away: no DAD delay.
    assert!(ping(&g1, "fd00:210:3::2"), "g1 -> g2");
    assert!(ping(&g2, "fd00:210:3::1"), "g2 -> g1");
}

#[test]
fn ipv4_gateway_inside_subnet() {
    need_root!();
    let host = Netns::new("h");
    let guest = Netns::new("g");
    pipework(&host, &["br1", &guest.name, "10.210.4.5/24@10.210.4.1"]).ok();
    assert_attached(&host, "br1", &guest, "eth1", &["10.210.4.5/24"]);
    assert_eq!(
        default_route(&guest, false),
        Some(("10.210.4.1".into(), "eth1".into()))
    );
}

#[test]
fn ipv4_gateway_outside_subnet_gets_onlink_route() {
    need_root!();
    let host = Netns::new("h");
    let guest = Netns::new("g");
    pipework(&host, &["br1", &guest.name, "10.210.5.5/24@10.210.99.1"]).ok();
    assert_attached(&host, "br1", &guest, "eth1", &["10.210.5.5/24"]);
    let r = route_to(&guest, false, "10.210.99.1/32").expect("host route to the gateway");
    assert_eq!(r["dev"], "eth1", "{r}");
    assert!(
        r.get("gateway").is_none(),
        "the gateway route is on-link: {r}"
    );
    assert_eq!(
        default_route(&guest, false),
        Some(("10.210.99.1".into(), "eth1".into()))
    );
}

#[test]
fn ipv6_gateway_inside_subnet() {
    need_root!();
    let host = Netns::new("h");
    let guest = Netns::new("g");
    pipework(
        &host,
        &["br1", &guest.name, "fd00:210:6::5/64@fd00:210:6::1"],
    )
    .ok();
    assert_attached(&host, "br1", &guest, "eth1", &["fd00:210:6::5/64"]);
    assert_eq!(
        default_route(&guest, true),
        Some(("fd00:210:6::1".into(), "eth1".into()))
    );
}

#[test]
fn ipv6_gateway_outside_subnet_gets_onlink_route() {
    need_root!();
    let host = Netns::new("h");
    let guest = Netns::new("g");
    pipework(
        &host,
        &["br1", &guest.name, "fd00:210:7::5/64@fd00:210:99::1"],
    )
    .ok();
    assert_attached(&host, "br1", &guest, "eth1", &["fd00:210:7::5/64"]);
    let r = route_to(&guest, true, "fd00:210:99::1/128").expect("host route to the gateway");
    assert_eq!(r["dev"], "eth1", "{r}");
    assert_eq!(
        default_route(&guest, true),
        Some(("fd00:210:99::1".into(), "eth1".into()))
    );
}

/// Contract example: `fd00::5/64@fd00::1`.
#[test]
fn ipv6_contract_example_fd00_5() {
    need_root!();
    let host = Netns::new("h");
    let guest = Netns::new("g");
    pipework(&host, &["br1", &guest.name, "fd00::5/64@fd00::1"]).ok();
    assert_attached(&host, "br1", &guest, "eth1", &["fd00::5/64"]);
    assert_eq!(
        default_route(&guest, true),
        Some(("fd00::1".into(), "eth1".into()))
    );
}

#[test]
fn gateway_replaces_existing_default_route() {
    need_root!();
    let host = Netns::new("h");
    let guest = Netns::new("g");
    // A pre-existing default route inside the guest, over an in-guest veth pair.
    ip(
        &guest,
        &[
            "link", "add", "name", "gw0", "type", "veth", "peer", "name", "gw1",
        ],
    );
    ip(&guest, &["addr", "add", "10.210.98.2/24", "dev", "gw0"]);
    ip(&guest, &["link", "set", "gw0", "up"]);
    ip(&guest, &["link", "set", "gw1", "up"]);
    ip(&guest, &["route", "add", "default", "via", "10.210.98.1"]);
    pipework(&host, &["br1", &guest.name, "10.210.8.5/24@10.210.8.1"]).ok();
    let defaults: Vec<_> = routes(&guest, false)
        .into_iter()
        .filter(|r| r["dst"] == "default")
        .collect();
    assert_eq!(defaults.len(), 1, "exactly one default route: {defaults:?}");
    assert_eq!(defaults[0]["gateway"], "10.210.8.1");
    assert_eq!(defaults[0]["dev"], "eth1");
}

#[test]
fn zero_address_only_brings_link_up() {
    need_root!();
    let host = Netns::new("h");
    let guest = Netns::new("g");
    pipework(&host, &["br1", &guest.name, "0/0"]).ok();
    assert_attached(&host, "br1", &guest, "eth1", &[]);
    assert!(
        addrs(&guest, Some("eth1"))
            .iter()
            .all(|a| a.family != "inet"),
        "no IPv4 address on eth1"
    );
    assert!(default_route(&guest, false).is_none());
    assert!(default_route(&guest, true).is_none());
}

#[test]
fn explicit_mac() {
    need_root!();
    let host = Netns::new("h");
    let guest = Netns::new("g");
    pipework(
        &host,
        &["br1", &guest.name, "10.210.9.5/24", "02:21:00:aa:bb:cc"],
    )
    .ok();
    let (g, _) = assert_attached(&host, "br1", &guest, "eth1", &["10.210.9.5/24"]);
    assert_eq!(g.mac, "02:21:00:aa:bb:cc");
}

#[test]
fn explicit_mac_uppercase_is_accepted() {
    need_root!();
    let host = Netns::new("h");
    let guest = Netns::new("g");
    pipework(
        &host,
        &["br1", &guest.name, "10.210.9.6/24", "02:21:00:AA:BB:CD"],
    )
    .ok();
    assert_eq!(must_link(&guest, "eth1").mac, "02:21:00:aa:bb:cd");
}

#[test]
fn unique_mac_from_string() {
    need_root!();
    let host = Netns::new("h");
    let guest = Netns::new("g");
    // 02 + the first 5 bytes of md5("myhost.foo.com\n").
    pipework(
        &host,
        &["br1", &guest.name, "10.210.10.5/24", "U:myhost.foo.com"],
    )
    .ok();
    assert_eq!(must_link(&guest, "eth1").mac, "02:72:6c:cd:9b:8d");
}

#[test]
fn custom_guest_and_host_names() {
    need_root!();
    let host = Netns::new("h");
    let guest = Netns::new("g");
    pipework(
        &host,
        &[
            "br1",
            "-i",
            "in0",
            "-l",
            "pwhost0",
            &guest.name,
            "10.210.11.5/24",
        ],
    )
    .ok();
    let (_, h) = assert_attached(&host, "br1", &guest, "in0", &["10.210.11.5/24"]);
    assert_eq!(h.name, "pwhost0");
    assert!(link(&guest, "eth1").is_none(), "no eth1 when -i in0");
}

#[test]
fn guest_name_of_exactly_15_bytes() {
    need_root!();
    let host = Netns::new("h");
    let guest = Netns::new("g");
    pipework(
        &host,
        &[
            "br1",
            "-i",
            "e12345678901234",
            &guest.name,
            "10.210.12.5/24",
        ],
    )
    .ok();
    assert_attached(&host, "br1", &guest, "e12345678901234", &["10.210.12.5/24"]);
}

#[test]
fn address_family_flag() {
    need_root!();
    let host = Netns::new("h");
    let g4 = Netns::new("g");
    let g6 = Netns::new("g");
    pipework(&host, &["br1", "-a", "4", &g4.name, "10.210.13.5/24"]).ok();
    pipework(&host, &["br1", "-a", "6", &g6.name, "fd00:210:13::5/64"]).ok();
    assert_attached(&host, "br1", &g4, "eth1", &["10.210.13.5/24"]);
    assert_attached(&host, "br1", &g6, "eth1", &["fd00:210:13::5/64"]);
}

#[test]
fn host_interface_by_mac() {
    need_root!();
    let host = Netns::new("h");
    let guest = Netns::new("g");
    ip(
        &host,
        &[
            "link",
            "add",
            "name",
            "brm",
            "address",
            "02:21:0b:00:00:01",
            "type",
            "bridge",
        ],
    );
    ip(&host, &["link", "set", "brm", "up"]);
    pipework(
        &host,
        &["mac:02:21:0b:00:00:01", &guest.name, "10.210.14.5/24"],
    )
    .ok();
    assert_attached(&host, "brm", &guest, "eth1", &["10.210.14.5/24"]);
    let mut hl = link_names(&host);
    hl.retain(|n| n.starts_with("br"));
    assert_eq!(hl, ["brm"], "no other bridge was created");
}

#[test]
fn default_host_name_is_v_if_pl_pid() {
    need_root!();
    let host = Netns::new("h");
    let guest = PidGuest::new();
    let pid = guest.pid.to_string();
    pipework(&host, &["br1", &pid, "10.210.15.5/24"]).ok();
    let (_, h) = assert_attached(&host, "br1", &guest, "eth1", &["10.210.15.5/24"]);
    assert_eq!(Some(h.name), default_host_name("eth1", guest.pid));
}

#[test]
fn long_default_host_name_is_short_deterministic_vp() {
    need_root!();
    let host = Netns::new("h");
    let guest = PidGuest::new();
    let pid = guest.pid.to_string();
    let args = ["br1", "-i", "longguestif1", pid.as_str(), "10.210.16.5/24"];
    assert!(
        default_host_name("longguestif1", guest.pid).is_none(),
        "v<IF>pl<PID> does not fit"
    );
    pipework(&host, &args).ok();
    let (_, h) = assert_attached(&host, "br1", &guest, "longguestif1", &["10.210.16.5/24"]);
    assert!(
        h.name.starts_with("vp"),
        "short name starts with vp: {}",
        h.name
    );
    assert!(h.name.len() <= 15);
    // Deterministic: detach (deleting one end deletes both) and attach again.
    ip(&host, &["link", "del", &h.name]);
    assert!(
        wait_until(Duration::from_secs(2), || link(&guest, "longguestif1")
            .is_none()),
        "guest end went with the host end"
    );
    pipework(&host, &args).ok();
    let (_, h2) = assert_attached(&host, "br1", &guest, "longguestif1", &["10.210.16.5/24"]);
    assert_eq!(h.name, h2.name, "same inputs, same host name");
}

#[test]
fn mtu_option() {
    need_root!();
    let host = Netns::new("h");
    let guest = Netns::new("g");
    pipework(
        &host,
        &["br1", &guest.name, "10.210.17.5/24", "--mtu", "1400"],
    )
    .ok();
    let (g, h) = assert_attached(&host, "br1", &guest, "eth1", &["10.210.17.5/24"]);
    assert_eq!(g.mtu, 1400, "guest end MTU");
    assert_eq!(h.mtu, 1400, "host end MTU");
}

#[test]
fn mtu_follows_existing_bridge() {
    need_root!();
    let host = Netns::new("h");
    let guest = Netns::new("g");
    ip(
        &host,
        &[
            "link", "add", "name", "br1", "mtu", "1450", "type", "bridge",
        ],
    );
    ip(&host, &["link", "set", "br1", "up"]);
    pipework(&host, &["br1", &guest.name, "10.210.18.5/24"]).ok();
    let (g, h) = assert_attached(&host, "br1", &guest, "eth1", &["10.210.18.5/24"]);
    assert_eq!(g.mtu, 1450, "guest end takes the bridge's MTU");
    assert_eq!(h.mtu, 1450, "host end takes the bridge's MTU");
}

#[test]
fn existing_bridge_is_reused_and_kept() {
    need_root!();
    let host = Netns::new("h");
    let g1 = Netns::new("g");
    let g2 = Netns::new("g");
    ip(&host, &["link", "add", "name", "br1", "type", "bridge"]);
    ip(&host, &["addr", "add", "10.210.19.1/24", "dev", "br1"]);
    ip(&host, &["link", "set", "br1", "up"]);
    let before = must_link(&host, "br1");
    let j = pipework(&host, &["--json", "br1", &g1.name, "10.210.19.5/24"])
        .ok()
        .json();
    assert_eq!(j["host_interface_created"], false, "{j}");
    pipework(&host, &["br1", &g2.name, "10.210.19.6/24"]).ok();
    let after = must_link(&host, "br1");
    assert_eq!(before.index, after.index, "same bridge");
    assert_eq!(
        global_cidrs(&host, "br1"),
        ["10.210.19.1/24"],
        "address kept"
    );
    assert_eq!(ports_of(&host, "br1").len(), 2);
    assert!(
        ping(&g1, "10.210.19.1"),
        "guest reaches the host's bridge address"
    );
    assert!(ping(&g1, "10.210.19.6"), "g1 -> g2");
}

#[test]
fn guest_on_two_bridges() {
    need_root!();
    let host = Netns::new("h");
    let guest = Netns::new("g");
    pipework(&host, &["br1", &guest.name, "10.210.20.5/24"]).ok();
    pipework(&host, &["br2", "-i", "eth2", &guest.name, "10.210.21.5/24"]).ok();
    assert_attached(&host, "br1", &guest, "eth1", &["10.210.20.5/24"]);
    assert_attached(&host, "br2", &guest, "eth2", &["10.210.21.5/24"]);
}

#[test]
fn json_output() {
    need_root!();
    let host = Netns::new("h");
    let guest = Netns::new("g");
    let r = pipework(
        &host,
        &[
            "--json",
            "br1",
            &guest.name,
            "10.210.22.5/24@10.210.22.1",
            "02:21:00:00:22:05",
        ],
    );
    let j = r.ok().json();
    let (g, h) = assert_attached(&host, "br1", &guest, "eth1", &["10.210.22.5/24"]);
    assert!(j.is_object(), "one JSON object: {j}");
    assert_eq!(j["kind"], "bridge", "{j}");
    assert_eq!(j["guest"]["spec"], guest.name.as_str(), "{j}");
    assert_eq!(j["guest"]["engine"], "netns", "{j}");
    assert!(j["guest"]["id"].is_null(), "{j}");
    assert!(j["guest"]["pid"].is_null(), "{j}");
    let ino = inode_of(&guest.path());
    assert_eq!(j["netns"]["inode"].as_u64(), Some(ino), "{j}");
    let p = j["netns"]["path"].as_str().expect("netns.path");
    assert_eq!(
        inode_of(std::path::Path::new(p)),
        ino,
        "netns.path opens the guest's netns"
    );
    assert_eq!(j["host_interface"], "br1", "{j}");
    assert_eq!(j["host_interface_created"], true, "{j}");
    assert_eq!(j["host_ifname"], h.name.as_str(), "{j}");
    assert_eq!(j["guest_ifname"], "eth1", "{j}");
    assert_eq!(j["mac"], g.mac.as_str(), "{j}");
    assert_eq!(j["mac"], "02:21:00:00:22:05", "{j}");
    assert_eq!(j["mtu"], 1500, "{j}");
    assert_eq!(j["addresses"], serde_json::json!(["10.210.22.5/24"]), "{j}");
    assert_eq!(j["gateway"], "10.210.22.1", "{j}");
    assert!(j["routes"].is_array(), "{j}");
}

#[test]
fn json_output_without_gateway_or_address() {
    need_root!();
    let host = Netns::new("h");
    let guest = Netns::new("g");
    let j = pipework(&host, &["br1", &guest.name, "0/0", "--json"])
        .ok()
        .json();
    assert!(j["gateway"].is_null(), "{j}");
    assert_eq!(j["addresses"], serde_json::json!([]), "{j}");
    let mac = must_link(&guest, "eth1").mac;
    assert_eq!(
        j["mac"],
        mac.as_str(),
        "JSON reports the kernel-chosen MAC: {j}"
    );
}

#[test]
fn verbose_logs_one_line_per_step() {
    need_root!();
    let host = Netns::new("h");
    let guest = Netns::new("g");
    let r = pipework(
        &host,
        &["-v", "br1", &guest.name, "10.210.23.5/24@10.210.99.1"],
    );
    r.ok();
    let steps = r.steps();
    assert!(
        steps.len() >= 3,
        "several `pipework: step NAME: DETAIL` lines on stderr:\n{}",
        r.stderr
    );
    for (name, _) in &steps {
        assert!(
            !name.is_empty() && !name.contains(char::is_whitespace),
            "step name is one word: {name:?}"
        );
    }
    assert!(
        r.stdout.trim().is_empty(),
        "no JSON without --json: {}",
        r.stdout
    );
    // Without -v: no step lines.
    let g2 = Netns::new("g");
    let quiet = pipework(&host, &["br1", &g2.name, "10.210.23.6/24"]);
    quiet.ok();
    assert!(
        quiet.steps().is_empty(),
        "quiet without -v: {}",
        quiet.stderr
    );
}

#[test]
fn options_before_hostif_and_after_positionals() {
    need_root!();
    let host = Netns::new("h");
    let g1 = Netns::new("g");
    let g2 = Netns::new("g");
    let r1 = pipework(
        &host,
        &[
            "--json",
            "-v",
            "--mtu",
            "1400",
            "br1",
            &g1.name,
            "10.210.24.1/24",
        ],
    );
    r1.ok();
    assert_eq!(r1.json()["mtu"], 1400);
    assert!(!r1.steps().is_empty());
    let r2 = pipework(
        &host,
        &[
            "br1",
            &g2.name,
            "10.210.24.2/24",
            "--mtu",
            "1400",
            "--verbose",
            "--json",
        ],
    );
    r2.ok();
    assert_eq!(r2.json()["mtu"], 1400);
    assert!(!r2.steps().is_empty());
    assert_eq!(must_link(&g1, "eth1").mtu, 1400);
    assert_eq!(must_link(&g2, "eth1").mtu, 1400);
    assert!(ping(&g1, "10.210.24.2"));
}

#[test]
fn help_and_version() {
    need_root!();
    let host = Netns::new("h");
    for flag in ["-h", "--help"] {
        let r = pipework(&host, &[flag]);
        r.ok();
        assert!(r.stdout.contains("pipework"), "usage text: {}", r.stdout);
    }
    let r = pipework(&host, &["--version"]);
    r.ok();
    assert!(
        r.stdout.contains(env!("CARGO_PKG_VERSION")),
        "version: {}",
        r.stdout
    );
    assert_eq!(link_names(&host), ["lo"], "nothing created");
}

#[test]
fn docker_containers_by_name_ping_each_other() {
    let dh = need_docker!();
    let host = Netns::new("h");
    let c1 = Container::run(&dh);
    let c2 = Container::run(&dh);
    pipework(&host, &["br1", &c1.name, "10.210.25.1/24"]).ok();
    pipework(&host, &["br1", &c2.name, "10.210.25.2/24"]).ok();
    let (_, h1) = assert_attached(&host, "br1", &c1, "eth1", &["10.210.25.1/24"]);
    assert_eq!(Some(h1.name), default_host_name("eth1", c1.pid));
    assert_attached(&host, "br1", &c2, "eth1", &["10.210.25.2/24"]);
    assert!(docker_ping(&c1, "10.210.25.2"), "c1 -> c2");
    assert!(docker_ping(&c2, "10.210.25.1"), "c2 -> c1");
}

#[test]
fn docker_container_by_id_ipv6_with_gateway() {
    let dh = need_docker!();
    let host = Netns::new("h");
    // Docker disables IPv6 in containers of a daemon without IPv6: turn it back on.
    let c1 = Container::run_with(
        &dh,
        &[
            "--sysctl",
            "net.ipv6.conf.all.disable_ipv6=0",
            "--sysctl",
            "net.ipv6.conf.default.disable_ipv6=0",
        ],
    );
    let g2 = Netns::new("g");
    pipework(&host, &["br1", &c1.id, "fd00:210:26::1/64@fd00:210:26::ff"]).ok();
    pipework(&host, &["br1", &g2.name, "fd00:210:26::2/64"]).ok();
    assert_attached(&host, "br1", &c1, "eth1", &["fd00:210:26::1/64"]);
    assert_eq!(
        default_route(&c1, true),
        Some(("fd00:210:26::ff".into(), "eth1".into()))
    );
    assert!(
        docker_ping(&c1, "fd00:210:26::2"),
        "container -> netns guest"
    );
    assert!(ping(&g2, "fd00:210:26::1"), "netns guest -> container");
}
