//! `pipework route|rule|tc <guest> ARGS...` (runs `ip route` / `ip rule` / `tc` inside the
//! guest's netns, exit status passed through) and `pipework --wait` (run inside a netns,
//! returns once the interface is up with carrier). Subnets 10.213.x.x.

mod common;
use common::*;

use serde_json::Value;
use std::time::{Duration, Instant};

/// Runs `program args` directly in `ns`, for comparing exit codes and messages.
fn direct(ns: &dyn Ns, program: &str, args: &[&str]) -> (i32, String) {
    let out = cmd_in(ns, program).args(args).output().expect("spawn");
    (
        code_of(&out),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn has_route(ns: &dyn Ns, dst: &str) -> bool {
    routes(ns, false).iter().any(|r| r["dst"] == dst)
}

#[test]
fn route_add_and_show_in_netns_guest() {
    need_root!();
    let host = Netns::new("h");
    let guest = Netns::new("g");
    pipework(
        &host,
        &["route", &guest.name, "add", "10.213.1.0/24", "dev", "lo"],
    )
    .ok();
    assert!(
        has_route(&guest, "10.213.1.0/24"),
        "route added in the guest"
    );
    assert!(!has_route(&host, "10.213.1.0/24"), "not in the host");
    let r = pipework(&host, &["route", &guest.name, "show"]);
    r.ok();
    assert!(
        r.stdout.contains("10.213.1.0/24"),
        "ip route output passed through: {}",
        r.stdout
    );
}

#[test]
fn route_in_pid_guest() {
    need_root!();
    let host = Netns::new("h");
    let guest = PidGuest::new();
    pipework(
        &host,
        &[
            "route",
            &guest.pid.to_string(),
            "add",
            "10.213.2.0/24",
            "dev",
            "lo",
        ],
    )
    .ok();
    assert!(has_route(&guest, "10.213.2.0/24"));
}

#[test]
fn route_in_docker_container() {
    let dh = need_docker!();
    let host = Netns::new("h");
    let c = Container::run(&dh);
    pipework(
        &host,
        &["route", &c.name, "add", "10.213.3.0/24", "dev", "lo"],
    )
    .ok();
    assert!(has_route(&c, "10.213.3.0/24"));
}

#[test]
fn route_after_attach_uses_the_new_interface() {
    need_root!();
    let host = Netns::new("h");
    let guest = Netns::new("g");
    pipework(&host, &["br1", &guest.name, "10.213.4.5/24"]).ok();
    pipework(
        &host,
        &[
            "route",
            &guest.name,
            "replace",
            "default",
            "via",
            "10.213.4.1",
            "dev",
            "eth1",
        ],
    )
    .ok();
    assert_eq!(
        default_route(&guest, false),
        Some(("10.213.4.1".into(), "eth1".into()))
    );
}

#[test]
fn route_exit_status_passed_through() {
    need_root!();
    let host = Netns::new("h");
    let guest = Netns::new("g");
    let before = snapshot(&guest);
    // Same command directly, in a twin namespace, for the expected status and message.
    let twin = Netns::new("t");
    for args in [
        vec!["add", "10.213.5.0/24", "via", "10.213.9.9"], // "Nexthop has invalid gateway", 2
        vec!["flurb"],                                     // unknown command, 255
    ] {
        let mut ip_args = vec!["route"];
        ip_args.extend_from_slice(&args);
        let (want_code, want_err) = direct(&twin, "ip", &ip_args);
        assert_ne!(want_code, 0, "ip {ip_args:?} fails");
        let mut argv = vec!["route", guest.name.as_str()];
        argv.extend_from_slice(&args);
        let r = pipework(&host, &argv);
        assert_eq!(r.code, want_code, "exit status of ip passed through: {r:?}");
        let first = want_err.lines().next().unwrap_or_default();
        assert!(
            r.stderr.contains(first),
            "ip's message {first:?} shown: {r:?}"
        );
    }
    assert_unchanged(&guest, &before, "failed route commands");
}

#[test]
fn rule_add_in_guest() {
    need_root!();
    let host = Netns::new("h");
    let guest = Netns::new("g");
    pipework(
        &host,
        &[
            "rule",
            &guest.name,
            "add",
            "from",
            "10.213.6.0/24",
            "table",
            "100",
            "priority",
            "1000",
        ],
    )
    .ok();
    let rules = ip_json(&guest, &["rule", "show"]);
    assert!(
        rules
            .iter()
            .any(|r| r["priority"] == 1000 && r["src"] == "10.213.6.0" && r["table"] == "100"),
        "rule in the guest: {rules:?}"
    );
    let host_rules = ip_json(&host, &["rule", "show"]);
    assert!(
        !host_rules.iter().any(|r| r["priority"] == 1000),
        "not in the host: {host_rules:?}"
    );
}

#[test]
fn rule_exit_status_passed_through() {
    need_root!();
    let host = Netns::new("h");
    let guest = Netns::new("g");
    let twin = Netns::new("t");
    let (want_code, want_err) = direct(&twin, "ip", &["rule", "add", "bogus"]);
    let r = pipework(&host, &["rule", &guest.name, "add", "bogus"]);
    assert_eq!(r.code, want_code, "{r:?}");
    let first = want_err.lines().next().unwrap_or_default();
    assert!(
        r.stderr.contains(first),
        "ip's message {first:?} shown: {r:?}"
    );
}

fn qdiscs(ns: &dyn Ns, dev: &str) -> Vec<Value> {
    let out = cmd_in(ns, "tc")
        .args(["-j", "qdisc", "show", "dev", dev])
        .output()
        .expect("spawn tc");
    assert!(out.status.success());
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap_or_default()
}

#[test]
fn tc_qdisc_in_guest() {
    need_root!();
    let host = Netns::new("h");
    let guest = Netns::new("g");
    pipework(
        &host,
        &[
            "tc",
            &guest.name,
            "qdisc",
            "add",
            "dev",
            "lo",
            "root",
            "tbf",
            "rate",
            "1mbit",
            "burst",
            "32kbit",
            "latency",
            "400ms",
        ],
    )
    .ok();
    assert!(
        qdiscs(&guest, "lo").iter().any(|q| q["kind"] == "tbf"),
        "tbf on the guest's lo: {:?}",
        qdiscs(&guest, "lo")
    );
    assert!(
        !qdiscs(&host, "lo").iter().any(|q| q["kind"] == "tbf"),
        "not on the host's lo"
    );
    let r = pipework(&host, &["tc", &guest.name, "qdisc", "show", "dev", "lo"]);
    r.ok();
    assert!(
        r.stdout.contains("tbf"),
        "tc output passed through: {}",
        r.stdout
    );
}

#[test]
fn tc_exit_status_passed_through() {
    need_root!();
    let host = Netns::new("h");
    let guest = Netns::new("g");
    let twin = Netns::new("t");
    let args = [
        "qdisc", "add", "dev", "nosuch0", "root", "tbf", "rate", "1mbit", "burst", "32kbit",
        "latency", "400ms",
    ];
    let (want_code, want_err) = direct(&twin, "tc", &args);
    assert_ne!(want_code, 0);
    let mut argv = vec!["tc", guest.name.as_str()];
    argv.extend_from_slice(&args);
    let r = pipework(&host, &argv);
    assert_eq!(r.code, want_code, "{r:?}");
    let first = want_err.lines().next().unwrap_or_default();
    assert!(
        r.stderr.contains(first),
        "tc's message {first:?} shown: {r:?}"
    );
}

#[test]
fn route_with_unknown_guest() {
    need_root!();
    let host = Netns::new("h");
    let name = unique("nosuch");
    pipework(&host, &["route", &name, "show"])
        .fails(1, &name)
        .clean_error();
}

// ---- --wait ----------------------------------------------------------------------------------

/// Waits for a spawned `pipework --wait` with a limit; returns (exit code, stderr, elapsed).
fn finish(child: std::process::Child, limit: Duration) -> (i32, String, Duration) {
    let start = Instant::now();
    let out = wait_timeout(child, limit).unwrap_or_else(|(o, _)| {
        panic!(
            "pipework --wait still running after {limit:?}; stderr: {}",
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (
        code_of(&out),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        start.elapsed(),
    )
}

fn still_running(child: &mut std::process::Child) -> bool {
    child.try_wait().expect("try_wait").is_none()
}

#[test]
fn wait_returns_when_attach_brings_the_link_up() {
    need_root!();
    let host = Netns::new("h");
    let guest = Netns::new("g");
    let mut waiter = spawn_pipework(&guest, &["--wait", "-i", "eth1", "--timeout", "10"]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        still_running(&mut waiter),
        "--wait waits while eth1 is missing"
    );
    pipework(&host, &["br1", &guest.name, "10.213.10.5/24"]).ok();
    let (code, err, took) = finish(waiter, Duration::from_secs(15));
    assert_eq!(code, 0, "--wait exits 0 once eth1 is up: {err}");
    assert!(
        took < Duration::from_secs(2),
        "--wait noticed the link quickly (took {took:?})"
    );
}

#[test]
fn wait_default_interface_is_eth1() {
    need_root!();
    let host = Netns::new("h");
    let guest = Netns::new("g");
    let mut waiter = spawn_pipework(&guest, &["--wait", "--timeout", "10"]);
    std::thread::sleep(Duration::from_millis(200));
    assert!(still_running(&mut waiter));
    pipework(&host, &["br1", &guest.name, "0/0"]).ok();
    let (code, err, took) = finish(waiter, Duration::from_secs(15));
    assert_eq!(code, 0, "{err}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[test]
fn wait_for_a_link_that_is_already_up() {
    need_root!();
    let host = Netns::new("h");
    let guest = Netns::new("g");
    pipework(&host, &["br1", "-i", "in5", &guest.name, "10.213.11.5/24"]).ok();
    let start = Instant::now();
    let waiter = spawn_pipework(&guest, &["--wait", "-i", "in5", "--timeout", "10"]);
    let (code, err, _) = finish(waiter, Duration::from_secs(15));
    assert_eq!(code, 0, "{err}");
    assert!(start.elapsed() < Duration::from_secs(2), "immediate");
}

#[test]
fn wait_needs_up_and_carrier() {
    need_root!();
    let guest = Netns::new("g");
    ip(
        &guest,
        &[
            "link", "add", "name", "eth1", "type", "veth", "peer", "name", "eth1p",
        ],
    );
    let mut waiter = spawn_pipework(&guest, &["--wait", "-i", "eth1", "--timeout", "10"]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        still_running(&mut waiter),
        "eth1 exists but is down: still waiting"
    );
    ip(&guest, &["link", "set", "eth1", "up"]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        still_running(&mut waiter),
        "eth1 is up but has no carrier (peer down): still waiting"
    );
    ip(&guest, &["link", "set", "eth1p", "up"]);
    let (code, err, took) = finish(waiter, Duration::from_secs(15));
    assert_eq!(code, 0, "{err}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[test]
fn wait_times_out() {
    need_root!();
    let guest = Netns::new("g");
    let start = Instant::now();
    let waiter = spawn_pipework(&guest, &["--wait", "-i", "eth1", "--timeout", "1"]);
    let (code, err, _) = finish(waiter, Duration::from_secs(15));
    let took = start.elapsed();
    assert_eq!(code, 1, "timeout exits 1: {err}");
    assert!(err.contains("eth1"), "message names the interface: {err}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "about 1 s (took {took:?})"
    );
    assert!(!err.contains("panicked at"), "{err}");
}
