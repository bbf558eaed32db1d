//! Every bad input: its message (substring), its exit code, and that nothing was left behind
//! (no new link, address or route in the host namespace or in the guest's).
//!
//! Exit code 2: bad command line or invalid input, detected before anything is touched.
//! Exit code 1: any other failure. Subnets 10.215.x.x.

mod common;
use common::*;

/// Runs pipework in a fresh host namespace against a fresh guest namespace. `{g}` in `args` is
/// replaced by the guest's name. Checks the exit code, that the message contains `needle`
/// (exact substring), that it is a clean error (no panic), and that nothing changed.
fn bad(args: &[&str], code: i32, needle: &str) {
    bad_with(args, code, &[needle], true, |_, _| {});
}

/// Like [`bad`], but the message may contain any of `needles` (case-insensitive), for inputs
/// whose exact wording the contract leaves open.
fn bad_any(args: &[&str], code: i32, needles: &[&str]) {
    bad_with(args, code, needles, false, |_, _| {});
}

fn bad_with(
    args: &[&str],
    code: i32,
    needles: &[&str],
    exact: bool,
    setup: impl FnOnce(&Netns, &Netns),
) {
    let host = Netns::new("h");
    let guest = Netns::new("g");
    setup(&host, &guest);
    let hb = snapshot(&host);
    let gb = snapshot(&guest);
    let args: Vec<String> = args.iter().map(|a| a.replace("{g}", &guest.name)).collect();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = pipework(&host, &argv);
    if exact {
        r.fails(code, needles[0]);
    } else {
        r.fails_any(code, needles);
    }
    r.clean_error();
    assert_unchanged(&host, &hb, "host after a refused run");
    assert_unchanged(&guest, &gb, "guest after a refused run");
}

// ---- command line (exit 2) -------------------------------------------------------------------

#[test]
fn no_arguments() {
    need_root!();
    bad_any(&[], 2, &["usage", "syntax"]);
}

#[test]
fn missing_address() {
    need_root!();
    bad_any(
        &["br1", "{g}"],
        2,
        &["usage", "syntax", "required", "missing"],
    );
}

#[test]
fn missing_guest_and_address() {
    need_root!();
    bad_any(&["br1"], 2, &["usage", "syntax", "required", "missing"]);
}

#[test]
fn unknown_option() {
    need_root!();
    bad(&["--bogus", "br1", "{g}", "10.215.0.5/24"], 2, "--bogus");
}

#[test]
fn unknown_option_after_positionals() {
    need_root!();
    bad(&["br1", "{g}", "10.215.0.5/24", "--bogus"], 2, "--bogus");
}

#[test]
fn too_many_arguments() {
    need_root!();
    bad(
        &[
            "br1",
            "{g}",
            "10.215.0.5/24",
            "02:21:00:00:00:01",
            "extra-arg",
        ],
        2,
        "extra-arg",
    );
}

#[test]
fn option_missing_its_value() {
    need_root!();
    bad_any(
        &["br1", "{g}", "10.215.0.5/24", "--mtu"],
        2,
        &["--mtu", "value"],
    );
}

#[test]
fn mtu_not_a_number() {
    need_root!();
    bad(&["--mtu", "abc", "br1", "{g}", "10.215.0.5/24"], 2, "abc");
}

#[test]
fn timeout_not_a_number() {
    need_root!();
    bad(
        &["--timeout", "soon", "br1", "{g}", "10.215.0.5/24"],
        2,
        "soon",
    );
}

#[test]
fn route_without_guest() {
    need_root!();
    bad_any(
        &["route"],
        2,
        &["usage", "syntax", "required", "missing", "guest"],
    );
}

// ---- addresses (exit 2) ----------------------------------------------------------------------

#[test]
fn missing_netmask_contract_example() {
    need_root!();
    bad(
        &["br1", "{g}", "192.168.1.5"],
        2,
        "Maybe you meant 192.168.1.5/24?",
    );
}

#[test]
fn missing_netmask() {
    need_root!();
    bad(
        &["br1", "{g}", "10.215.1.5"],
        2,
        "Maybe you meant 10.215.1.5/24?",
    );
}

#[test]
fn missing_netmask_with_gateway() {
    need_root!();
    bad_any(
        &["br1", "{g}", "10.215.1.5@10.215.1.1"],
        2,
        &["netmask", "prefix", "10.215.1.5"],
    );
}

#[test]
fn address_octet_out_of_range() {
    need_root!();
    bad(&["br1", "{g}", "10.215.1.300/24"], 2, "10.215.1.300");
}

#[test]
fn address_too_short() {
    need_root!();
    bad(&["br1", "{g}", "10.215.1/24"], 2, "10.215.1");
}

#[test]
fn address_not_an_ip() {
    need_root!();
    bad(&["br1", "{g}", "not-an-ip/24"], 2, "not-an-ip");
}

#[test]
fn ipv6_address_malformed() {
    need_root!();
    bad(&["br1", "{g}", "fd00:215:::5/64"], 2, "fd00:215:::5");
}

#[test]
fn ipv4_prefix_too_long() {
    need_root!();
    bad_any(&["br1", "{g}", "10.215.1.5/33"], 2, &["/33", "33"]);
}

#[test]
fn ipv6_prefix_too_long() {
    need_root!();
    bad_any(&["br1", "{g}", "fd00:215::5/129"], 2, &["/129", "129"]);
}

#[test]
fn prefix_empty() {
    need_root!();
    bad_any(
        &["br1", "{g}", "10.215.1.5/"],
        2,
        &["10.215.1.5/", "prefix", "netmask"],
    );
}

#[test]
fn prefix_not_a_number() {
    need_root!();
    bad(&["br1", "{g}", "10.215.1.5/abc"], 2, "abc");
}

#[test]
fn gateway_malformed() {
    need_root!();
    bad(
        &["br1", "{g}", "10.215.1.5/24@10.215.1.999"],
        2,
        "10.215.1.999",
    );
}

#[test]
fn gateway_empty() {
    need_root!();
    bad_any(&["br1", "{g}", "10.215.1.5/24@"], 2, &["gateway"]);
}

#[test]
fn gateway_of_other_family() {
    need_root!();
    bad_any(
        &["br1", "{g}", "10.215.1.5/24@fd00:215::1"],
        2,
        &["fd00:215::1", "family", "gateway"],
    );
}

#[test]
fn address_family_flag_invalid() {
    need_root!();
    bad_any(
        &["br1", "-a", "5", "{g}", "10.215.1.5/24"],
        2,
        &["-a", "family", "'5'", "\"5\"", " 5"],
    );
}

#[test]
fn address_family_flag_not_a_number() {
    need_root!();
    bad_any(
        &["br1", "-a", "inet9", "{g}", "10.215.1.5/24"],
        2,
        &["inet9"],
    );
}

#[test]
fn address_family_flag_mismatch() {
    need_root!();
    bad_any(
        &["br1", "-a", "6", "{g}", "10.215.1.5/24"],
        2,
        &["family", "10.215.1.5", "-a"],
    );
}

// ---- MAC addresses (exit 2) ------------------------------------------------------------------

#[test]
fn mac_not_hex() {
    need_root!();
    bad(
        &["br1", "{g}", "10.215.2.5/24", "zz:00:00:00:00:01"],
        2,
        "zz:00:00:00:00:01",
    );
}

#[test]
fn mac_too_short() {
    need_root!();
    bad(
        &["br1", "{g}", "10.215.2.5/24", "02:00:00:00:01"],
        2,
        "02:00:00:00:01",
    );
}

#[test]
fn mac_too_long() {
    need_root!();
    bad(
        &["br1", "{g}", "10.215.2.5/24", "02:00:00:00:00:01:02"],
        2,
        "02:00:00:00:00:01:02",
    );
}

#[test]
fn mac_multicast() {
    need_root!();
    bad_any(
        &["br1", "{g}", "10.215.2.5/24", "01:00:5e:00:00:01"],
        2,
        &["multicast", "01:00:5e:00:00:01"],
    );
}

#[test]
fn mac_multicast_bit_only() {
    need_root!();
    bad_any(
        &["br1", "{g}", "10.215.2.5/24", "03:21:00:00:00:01"],
        2,
        &["multicast", "03:21:00:00:00:01"],
    );
}

#[test]
fn mac_broadcast() {
    need_root!();
    bad_any(
        &["br1", "{g}", "10.215.2.5/24", "ff:ff:ff:ff:ff:ff"],
        2,
        &["multicast", "broadcast", "ff:ff:ff:ff:ff:ff"],
    );
}

// ---- interface names (exit 2) ----------------------------------------------------------------

#[test]
fn guest_ifname_too_long() {
    need_root!();
    bad(
        &["br1", "-i", "eth0123456789abc", "{g}", "10.215.3.5/24"],
        2,
        "eth0123456789abc",
    );
}

#[test]
fn host_ifname_too_long() {
    need_root!();
    bad(
        &["br1", "-l", "veth0123456789ab", "{g}", "10.215.3.5/24"],
        2,
        "veth0123456789ab",
    );
}

#[test]
fn bridge_name_too_long() {
    need_root!();
    bad(
        &["br0123456789abcd", "{g}", "10.215.3.5/24"],
        2,
        "br0123456789abcd",
    );
}

#[test]
fn guest_ifname_with_slash() {
    need_root!();
    bad(&["br1", "-i", "eth/1", "{g}", "10.215.3.5/24"], 2, "eth/1");
}

#[test]
fn host_ifname_with_slash() {
    need_root!();
    bad(&["br1", "-l", "vh/1", "{g}", "10.215.3.5/24"], 2, "vh/1");
}

#[test]
fn bridge_name_with_slash() {
    need_root!();
    bad(&["br/1", "{g}", "10.215.3.5/24"], 2, "br/1");
}

#[test]
fn guest_ifname_empty() {
    need_root!();
    bad_any(
        &["br1", "-i", "", "{g}", "10.215.3.5/24"],
        2,
        &["empty", "interface", "name", "-i"],
    );
}

#[test]
fn wait_ifname_too_long() {
    need_root!();
    bad(
        &["--wait", "-i", "eth0123456789abc", "--timeout", "1"],
        2,
        "eth0123456789abc",
    );
}

// ---- the host interface (exit 1) -------------------------------------------------------------

#[test]
fn host_interface_of_unknown_shape() {
    need_root!();
    bad(
        &["eth7", "{g}", "10.215.4.5/24"],
        1,
        "I do not know how to setup interface eth7",
    );
}

/// An existing non-bridge link gets macvlan guests (tests/macvlan.rs), but only an Ethernet
/// one that is not the loopback.
#[test]
fn host_interface_loopback_is_refused() {
    need_root!();
    bad_with(
        &["lo", "{g}", "10.215.4.5/24"],
        1,
        &["lo is the loopback interface"],
        true,
        |_, _| {},
    );
}

#[test]
fn host_interface_not_ethernet_is_refused() {
    need_root!();
    bad_with(
        &["brtun0", "{g}", "10.215.4.5/24"],
        1,
        &["brtun0 is not an Ethernet interface"],
        true,
        |host, _| {
            ip(host, &["tuntap", "add", "dev", "brtun0", "mode", "tun"]);
        },
    );
}

#[test]
fn host_interface_mac_not_found() {
    need_root!();
    bad_any(
        &["mac:02:21:0f:00:00:01", "{g}", "10.215.4.5/24"],
        1,
        &["02:21:0f:00:00:01"],
    );
}

// ---- the kernel and the caller (exit 1) ------------------------------------------------------

/// An MTU the kernel cannot take (veth: 68..=65535). Whether it is caught by range check
/// (exit 2) or refused by the kernel (exit 1) the contract leaves open; either way the message
/// mentions the MTU and nothing is left behind.
#[test]
fn mtu_below_minimum() {
    need_root!();
    let host = Netns::new("h");
    let guest = Netns::new("g");
    let hb = snapshot(&host);
    let gb = snapshot(&guest);
    let r = pipework(&host, &["--mtu", "60", "br1", &guest.name, "10.215.5.5/24"]);
    assert!(r.code == 1 || r.code == 2, "exit 1 or 2: {r:?}");
    r.fails_any(r.code, &["mtu"]).clean_error();
    assert_unchanged(&host, &hb, "host after a refused MTU");
    assert_unchanged(&guest, &gb, "guest after a refused MTU");
}

#[test]
fn mtu_above_maximum() {
    need_root!();
    let host = Netns::new("h");
    let guest = Netns::new("g");
    let hb = snapshot(&host);
    let gb = snapshot(&guest);
    let r = pipework(
        &host,
        &["--mtu", "70000", "br1", &guest.name, "10.215.5.5/24"],
    );
    assert!(r.code == 1 || r.code == 2, "exit 1 or 2: {r:?}");
    r.fails_any(r.code, &["mtu", "70000"]).clean_error();
    assert_unchanged(&host, &hb, "host after a refused MTU");
    assert_unchanged(&guest, &gb, "guest after a refused MTU");
}

/// Not root: uid 65534 without capabilities. Exit 1, the message says why.
#[test]
fn not_root() {
    need_root!();
    // A copy of the binary that uid 65534 can surely execute, wherever the tree lives.
    let dir = std::env::temp_dir().join(unique("bin"));
    std::fs::create_dir(&dir).unwrap();
    let bin = dir.join("pipework");
    std::fs::copy(BIN, &bin).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    struct Rm(std::path::PathBuf);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _rm = Rm(dir.clone());

    let host = Netns::new("h");
    let guest = Netns::new("g");
    let hb = snapshot(&host);
    let gb = snapshot(&guest);
    let r = pipework_with(
        &host,
        &["br1", &guest.name, "10.215.6.5/24"],
        &Opts {
            as_user: Some(65534),
            bin: Some(bin),
            ..Default::default()
        },
    );
    r.fails_any(1, &["root", "CAP_NET_ADMIN"]).clean_error();
    assert_unchanged(&host, &hb, "host after a run without privileges");
    assert_unchanged(&guest, &gb, "guest after a run without privileges");
}

/// A guest with IPv6 disabled for all and new interfaces (what Docker's `--net=none` does) is
/// not an error any more: pipework turns IPv6 on for its own interface alone, nothing else
/// (tests/docker_ipv6.rs does the same with real containers).
#[test]
fn ipv6_disabled_guest_gets_ipv6_on_its_interface_only() {
    need_root!();
    let host = Netns::new("h");
    let guest = Netns::new("g");
    let sysctl = |key: &str, value: Option<&str>| {
        let path = format!("/proc/sys/net/ipv6/conf/{key}/disable_ipv6");
        let script = match value {
            Some(v) => format!("echo {v} > {path}"),
            None => format!("cat {path}"),
        };
        let out = cmd_in(&guest, "sh").args(["-c", &script]).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    sysctl("all", Some("1"));
    sysctl("default", Some("1"));
    pipework(
        &host,
        &["br1", &guest.name, "fd00:215:7::5/64@fd00:215:7::1"],
    )
    .ok();
    assert_eq!(sysctl("eth1", None), "0", "eth1 has IPv6 on");
    assert_eq!(sysctl("all", None), "1", "all.disable_ipv6 untouched");
    assert_eq!(
        sysctl("default", None),
        "1",
        "default.disable_ipv6 untouched"
    );
    let have: Vec<String> = addrs(&guest, Some("eth1")).iter().map(Addr::cidr).collect();
    assert!(have.contains(&"fd00:215:7::5/64".to_string()), "{have:?}");
}
