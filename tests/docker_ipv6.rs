//! IPv6 on Docker containers as Docker makes them: Debian's docker.io 20.10 starts
//! `--net=none` containers with net.ipv6.conf.all.disable_ipv6=1 and default.disable_ipv6=1, so
//! a new interface there has IPv6 off. pipework turns it on for its own interface alone
//! (eth1's disable_ipv6 = 0), changes nothing else in the guest, and puts it back on rollback.
//! Static addresses with and without a gateway, dhcp6 and slaac, each with a real container on
//! a [`DhcpLan`] (bridge br1 with fd00:224:N::1/64, dnsmasq). Subnets: N = 70–79.

mod common;
use common::*;

use serde_json::Value;
use std::time::Duration;

/// A guest sysctl as the container itself reads it.
fn sysctl(c: &Container, key: &str) -> String {
    let out = c.exec(&["cat", &format!("/proc/sys/net/ipv6/conf/{key}")]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Skips unless this Docker's containers start with IPv6 off (what the tests are about);
/// asserts the container is in that state otherwise.
fn starts_with_ipv6_off(c: &Container) -> bool {
    let (all, default) = (
        sysctl(c, "all/disable_ipv6"),
        sysctl(c, "default/disable_ipv6"),
    );
    if all != "1" || default != "1" {
        skip(format!(
            "{}: this Docker starts containers with IPv6 on (all={all}, default={default})",
            test_name()
        ));
        return false;
    }
    true
}

/// Only eth1 changed: all and default stay off, eth1 is on.
fn assert_only_eth1_enabled(c: &Container) {
    assert_eq!(
        sysctl(c, "all/disable_ipv6"),
        "1",
        "all.disable_ipv6 untouched"
    );
    assert_eq!(
        sysctl(c, "default/disable_ipv6"),
        "1",
        "default.disable_ipv6 untouched"
    );
    assert_eq!(sysctl(c, "eth1/disable_ipv6"), "0", "eth1 has IPv6 on");
}

/// The container reaches the bridge's IPv6 address (DAD may hold the address tentative for
/// a moment: a few tries).
fn assert_pings(c: &Container, to: &str) {
    let ok = wait_until(Duration::from_secs(5), || {
        c.exec(&["ping", "-6", "-c", "1", "-W", "1", to])
            .status
            .success()
    });
    assert!(ok, "the container pings {to} over IPv6");
}

fn v6_default_via(c: &Container) -> Vec<String> {
    routes(c, true)
        .iter()
        .filter(|r| r["dst"] == "default")
        .filter_map(|r| r["gateway"].as_str().map(String::from))
        .collect()
}

#[test]
fn static_v6_with_gateway() {
    let dh = need_docker!();
    let lan = DhcpLan::without_server(70);
    let c = lan.container(&dh);
    if !starts_with_ipv6_off(&c) {
        return;
    }
    let addr = format!("{}5/64", lan.v6_prefix());
    let gw = format!("{}1", lan.v6_prefix());
    lan.pw(&["br1", "-a", "6", &c.name, &format!("{addr}@{gw}")])
        .ok();
    let have: Vec<String> = global_v6(&c, "eth1").iter().map(Addr::cidr).collect();
    assert!(have.contains(&addr), "eth1 has {addr}: {have:?}");
    assert_eq!(
        v6_default_via(&c),
        vec![gw.clone()],
        "default route via {gw}"
    );
    assert_only_eth1_enabled(&c);
    assert_pings(&c, &gw);
    lan.pw(&["detach", &c.name]).ok();
    assert!(link(&*c, "eth1").is_none(), "detach removes eth1");
    lan.finish();
}

#[test]
fn static_v6_without_gateway() {
    let dh = need_docker!();
    let lan = DhcpLan::without_server(71);
    let c = lan.container(&dh);
    if !starts_with_ipv6_off(&c) {
        return;
    }
    let addr = format!("{}6/64", lan.v6_prefix());
    lan.pw(&["br1", &c.name, &addr]).ok();
    let have: Vec<String> = global_v6(&c, "eth1").iter().map(Addr::cidr).collect();
    assert!(have.contains(&addr), "eth1 has {addr}: {have:?}");
    assert!(
        v6_default_via(&c).is_empty(),
        "no default route was asked for"
    );
    assert_only_eth1_enabled(&c);
    assert_pings(&c, &format!("{}1", lan.v6_prefix()));
    lan.finish();
}

#[test]
fn dhcp6_in_a_docker_container() {
    let dh = need_docker!();
    need_programs!("dnsmasq");
    let lan = DhcpLan::new(
        72,
        &DnsmasqConf {
            v6: V6Mode::Stateful,
            ..Default::default()
        },
    );
    let c = lan.container(&dh);
    if !starts_with_ipv6_off(&c) {
        return;
    }
    let r = lan.pw(&["--json", "br1", &c.name, "dhcp6"]);
    r.ok();
    let leased: Vec<Addr> = global_v6(&c, "eth1")
        .into_iter()
        .filter(|a| lan.in_v6_range(&a.local))
        .collect();
    assert_eq!(leased.len(), 1, "one DHCPv6 address on eth1: {leased:?}");
    assert_eq!(r.json()["dhcp"]["family"], Value::from(6));
    assert_only_eth1_enabled(&c);
    lan.assert_no_leftovers(Some(netns_inode(&*c)), &[], "one-shot dhcp6");
    lan.finish();
}

#[test]
fn slaac_in_a_docker_container() {
    let dh = need_docker!();
    need_programs!("dnsmasq");
    let lan = DhcpLan::new(
        73,
        &DnsmasqConf {
            v6: V6Mode::Slaac,
            ..Default::default()
        },
    );
    let c = lan.container(&dh);
    if !starts_with_ipv6_off(&c) {
        return;
    }
    lan.pw(&["--dhcp-timeout", "20", "br1", &c.name, "slaac"])
        .ok();
    let prefix: std::net::Ipv6Addr = lan.v6_prefix().parse().unwrap();
    let global = global_v6(&c, "eth1");
    assert!(
        global.iter().any(|a| a.prefixlen == 64
            && a.local
                .parse::<std::net::Ipv6Addr>()
                .is_ok_and(|x| x.segments()[..4] == prefix.segments()[..4])),
        "eth1 has a SLAAC address in {prefix}/64: {global:?}"
    );
    assert_only_eth1_enabled(&c);
    lan.finish();
}

/// A failure after IPv6 was turned on: rollback sets eth1's disable_ipv6 back before the link
/// goes, and the container is exactly as before.
#[test]
fn rollback_turns_ipv6_back_off() {
    let dh = need_docker!();
    let lan = DhcpLan::without_server(74);
    let c = lan.container(&dh);
    if !starts_with_ipv6_off(&c) {
        return;
    }
    let before = snapshot(&*c);
    let addr = format!("{}7/64", lan.v6_prefix());
    let r = lan.pw_env(
        &["-v", "br1", &c.name, &addr],
        &[("PIPEWORK_TEST_FAIL_STEP", "add-address")],
    );
    r.fails(1, "add-address");
    assert!(
        r.stderr
            .contains("net.ipv6.conf.eth1.disable_ipv6 back to 1"),
        "the rollback restores eth1's setting: {}",
        r.stderr
    );
    assert_unchanged_soon(&*c, &before, "container after the rollback");
    assert_eq!(sysctl(&c, "all/disable_ipv6"), "1");
    lan.finish();
}
