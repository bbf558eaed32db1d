//! All-or-nothing: a failure after any step leaves the host and the guest exactly as they
//! were (no bridge it created, no veth, no guest interface, the guest's default route back).
//! Also: clashes with existing links. Subnets 10.216.x.x / fd00:216::.
//!
//! Failure injection: `PIPEWORK_TEST_FAIL_STEP=<step>` makes the binary fail right after that
//! step (message `injected failure after step <step>`, exit 1), then roll back. The step names
//! are read from a `-v` run (`pipework: step NAME: DETAIL` lines), so the test follows the
//! binary's steps as they evolve.

mod common;
use common::*;

/// Gives `g` pre-existing default routes (IPv4 and IPv6) over a veth pair inside it.
fn add_default_routes(g: &dyn Ns) {
    ip(
        g,
        &[
            "link", "add", "name", "gw0", "type", "veth", "peer", "name", "gw1",
        ],
    );
    ip(g, &["addr", "add", "10.216.99.2/24", "dev", "gw0"]);
    ip(
        g,
        &["addr", "add", "fd00:216:99::2/64", "dev", "gw0", "nodad"],
    );
    ip(g, &["link", "set", "gw0", "up"]);
    ip(g, &["link", "set", "gw1", "up"]);
    ip(g, &["route", "add", "default", "via", "10.216.99.1"]);
    ip(
        g,
        &["-6", "route", "add", "default", "via", "fd00:216:99::1"],
    );
}

fn guest_netns() -> Box<dyn GuestLike> {
    let g = Netns::new("g");
    add_default_routes(&g);
    Box::new(g)
}

fn guest_pid() -> Box<dyn GuestLike> {
    let g = PidGuest::new();
    add_default_routes(&g);
    Box::new(g)
}

/// A guest and the spec that names it on the command line.
trait GuestLike: Ns {
    fn spec(&self) -> String;
}
impl GuestLike for Netns {
    fn spec(&self) -> String {
        self.name.clone()
    }
}
impl GuestLike for PidGuest {
    fn spec(&self) -> String {
        self.pid.to_string()
    }
}

/// A fresh host namespace, with an existing bridge `br1` (address 10.216.0.1/24) when asked.
fn host_ns(existing_bridge: bool) -> Netns {
    let h = Netns::new("h");
    if existing_bridge {
        ip(&h, &["link", "add", "name", "br1", "type", "bridge"]);
        ip(&h, &["addr", "add", "10.216.0.1/24", "dev", "br1"]);
        ip(&h, &["link", "set", "br1", "up"]);
    }
    h
}

/// The distinct step names of a `-v` run, in order.
fn step_names(
    existing_bridge: bool,
    make_guest: fn() -> Box<dyn GuestLike>,
    args: &[&str],
) -> Vec<String> {
    let host = host_ns(existing_bridge);
    let guest = make_guest();
    let spec = guest.spec();
    let mut argv = vec!["-v", "br1", spec.as_str()];
    argv.extend_from_slice(args);
    let r = pipework(&host, &argv);
    r.ok();
    let mut names: Vec<String> = vec![];
    for (n, _) in r.steps() {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    assert!(
        names.len() >= 3,
        "-v logs its steps as `pipework: step NAME: DETAIL`:\n{}",
        r.stderr
    );
    // Sanity: the attach took effect, so the steps are those of a real attach.
    assert!(link(guest.as_ref(), "eth1").is_some());
    names
}

/// For every step of the attach, a fresh world, a run failing after that step, and the
/// checks. All steps are tried; the failures are reported together.
fn inject_each_step(existing_bridge: bool, make_guest: fn() -> Box<dyn GuestLike>, args: &[&str]) {
    let steps = step_names(existing_bridge, make_guest, args);
    eprintln!("steps: {steps:?}");
    let mut failures = vec![];
    for step in &steps {
        let host = host_ns(existing_bridge);
        let guest = make_guest();
        let hb = snapshot(&host);
        let gb = snapshot(guest.as_ref());
        let spec = guest.spec();
        let mut argv = vec!["-v", "br1", spec.as_str()];
        argv.extend_from_slice(args);
        let r = pipework_env(&host, &argv, &[("PIPEWORK_TEST_FAIL_STEP", step)]);
        let needle = format!("injected failure after step {step}");
        let mut problems = vec![];
        if r.code != 1 {
            problems.push(format!("exit code {} (want 1)", r.code));
        }
        if !r.stderr.contains(&needle) {
            problems.push(format!("stderr lacks {needle:?}"));
        }
        let ha = snapshot(&host);
        if ha != hb {
            problems.push(format!("host changed:\nbefore {hb:#?}\nafter {ha:#?}"));
        }
        let ga = snapshot(guest.as_ref());
        if ga != gb {
            problems.push(format!("guest changed:\nbefore {gb:#?}\nafter {ga:#?}"));
        }
        if !problems.is_empty() {
            failures.push(format!(
                "step {step}:\n  {}\n  stderr: {}",
                problems.join("\n  "),
                r.stderr.trim()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} injected failures did not roll back cleanly:\n{}",
        failures.len(),
        steps.len(),
        failures.join("\n\n")
    );
}

#[test]
fn inject_failure_at_each_step_ipv4_new_bridge() {
    need_root!();
    inject_each_step(false, guest_netns, &["10.216.1.5/24@10.216.200.1"]);
}

#[test]
fn inject_failure_at_each_step_ipv6_new_bridge() {
    need_root!();
    inject_each_step(
        false,
        guest_pid,
        &["fd00:216:1::5/64@fd00:216:200::1", "02:21:06:00:00:05"],
    );
}

#[test]
fn inject_failure_at_each_step_existing_bridge_kept() {
    need_root!();
    inject_each_step(
        true,
        guest_netns,
        &["10.216.0.5/24@10.216.0.1", "U:rollback.example"],
    );
}

// ---- clashes with existing links ---------------------------------------------------------

#[test]
fn existing_host_link_up_is_refused() {
    need_root!();
    let host = host_ns(false);
    let guest = Netns::new("g");
    ip(
        &host,
        &[
            "link", "add", "name", "pwhost0", "type", "veth", "peer", "name", "pwhost0p",
        ],
    );
    ip(&host, &["link", "set", "pwhost0", "up"]);
    let hb = snapshot(&host);
    let gb = snapshot(&guest);
    pipework(
        &host,
        &["br1", "-l", "pwhost0", &guest.name, "10.216.2.5/24"],
    )
    .fails(1, "exists and is up")
    .clean_error();
    assert_unchanged(&host, &hb, "host after refusing a busy host link");
    assert_unchanged(&guest, &gb, "guest after refusing a busy host link");
}

#[test]
fn existing_default_named_host_link_up_is_refused() {
    need_root!();
    let host = host_ns(false);
    let guest = PidGuest::new();
    let name = default_host_name("eth1", guest.pid).expect("fits");
    ip(
        &host,
        &[
            "link", "add", "name", &name, "type", "veth", "peer", "name", "pwpeer0",
        ],
    );
    ip(&host, &["link", "set", &name, "up"]);
    let hb = snapshot(&host);
    let gb = snapshot(&guest);
    pipework(&host, &["br1", &guest.pid.to_string(), "10.216.3.5/24"])
        .fails(1, "exists and is up")
        .clean_error();
    assert_unchanged(&host, &hb, "host after refusing a busy host link");
    assert_unchanged(&guest, &gb, "guest after refusing a busy host link");
}

/// Only a down veth is a leftover pipework replaces: a down link of another type with the
/// host-side name is someone's, and the attach refuses it and touches nothing.
#[test]
fn existing_host_link_down_of_another_type_is_refused() {
    need_root!();
    let host = host_ns(false);
    let guest = Netns::new("g");
    ip(&host, &["link", "add", "name", "pwhost0", "type", "bridge"]);
    let hb = snapshot(&host);
    let gb = snapshot(&guest);
    pipework(
        &host,
        &["br1", "-l", "pwhost0", &guest.name, "10.216.4.5/24"],
    )
    .fails(1, "exists and is not a veth (a bridge)")
    .clean_error();
    assert_unchanged(&host, &hb, "host after refusing someone's down link");
    assert_unchanged(&guest, &gb, "guest after refusing someone's down link");
}

#[test]
fn existing_host_link_down_is_replaced() {
    need_root!();
    let host = host_ns(false);
    let guest = Netns::new("g");
    ip(
        &host,
        &[
            "link", "add", "name", "pwhost0", "type", "veth", "peer", "name", "pwhost0p",
        ],
    );
    let old = must_link(&host, "pwhost0");
    pipework(
        &host,
        &["br1", "-l", "pwhost0", &guest.name, "10.216.4.5/24"],
    )
    .ok();
    let (_, h) = assert_attached(&host, "br1", &guest, "eth1", &["10.216.4.5/24"]);
    assert_eq!(h.name, "pwhost0");
    assert_ne!(h.index, old.index, "a new link");
    assert!(
        link(&host, "pwhost0p").is_none(),
        "the old pair is gone with its deleted end"
    );
}

#[test]
fn existing_guest_interface_is_refused() {
    need_root!();
    let host = host_ns(false);
    let guest = Netns::new("g");
    ip(
        &guest,
        &[
            "link", "add", "name", "eth1", "type", "veth", "peer", "name", "eth1p",
        ],
    );
    ip(&guest, &["link", "set", "eth1", "up"]);
    ip(&guest, &["link", "set", "eth1p", "up"]);
    let hb = snapshot(&host);
    let gb = snapshot(&guest);
    pipework(&host, &["br1", &guest.name, "10.216.5.5/24"])
        .fails(1, "eth1")
        .clean_error();
    assert_unchanged(&host, &hb, "host after a guest name clash (no bridge left)");
    assert_unchanged(&guest, &gb, "guest after a guest name clash");
}

#[test]
fn existing_guest_interface_down_is_refused_too() {
    need_root!();
    let host = host_ns(true);
    let guest = Netns::new("g");
    ip(
        &guest,
        &[
            "link", "add", "name", "in0", "type", "veth", "peer", "name", "in0p",
        ],
    );
    let hb = snapshot(&host);
    let gb = snapshot(&guest);
    pipework(&host, &["br1", "-i", "in0", &guest.name, "10.216.0.6/24"])
        .fails(1, "in0")
        .clean_error();
    assert_unchanged(&host, &hb, "host after a guest name clash");
    assert_unchanged(&guest, &gb, "guest after a guest name clash");
}

#[test]
fn failed_attach_keeps_earlier_attach() {
    need_root!();
    let host = host_ns(false);
    let g1 = Netns::new("g");
    let g2 = Netns::new("g");
    pipework(&host, &["br1", &g1.name, "10.216.6.1/24"]).ok();
    let hb = snapshot(&host);
    // Second guest already has eth1: refused; the bridge (now in use) must stay.
    ip(
        &g2,
        &[
            "link", "add", "name", "eth1", "type", "veth", "peer", "name", "eth1p",
        ],
    );
    pipework(&host, &["br1", &g2.name, "10.216.6.2/24"])
        .fails(1, "eth1")
        .clean_error();
    assert_unchanged(&host, &hb, "host after a failed second attach");
    assert_attached(&host, "br1", &g1, "eth1", &["10.216.6.1/24"]);
}
