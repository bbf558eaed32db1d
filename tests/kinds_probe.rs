//! Host-interface kinds that need kernel support or hardware this machine may lack: dummy
//! interfaces (module dummy), 802.1Q VLANs on a NIC (module 8021q), IPoIB (InfiniBand).
//!
//! Each success-path test probes the kernel first (creates one such link in a throwaway
//! namespace) and skips with a printed reason when it cannot; the error paths for a kernel
//! WITHOUT the support run for real (and skip, with a reason, on a kernel that has it).
//! Subnets 10.223.x.x / fd00:223::.

mod common;
use common::*;

use std::path::PathBuf;
use std::time::Duration;

/// Evaluates to nothing, or returns early (with a printed reason) when the probe failed.
macro_rules! need_kernel {
    ($probe:expr, $what:expr) => {
        if let Err(e) = $probe {
            skip(format!(
                "SKIP {}: the kernel has no {} (probe: {e})",
                test_name(),
                $what
            ));
            return;
        }
    };
}

/// Returns early (with a printed reason) when the probe succeeded: for the tests of the path
/// where the kernel lacks the feature.
macro_rules! need_kernel_without {
    ($probe:expr, $what:expr) => {
        if $probe.is_ok() {
            skip(format!(
                "SKIP {}: the kernel has {}, so its missing-support error cannot happen here \
                 (the success path is tested instead)",
                test_name(),
                $what
            ));
            return;
        }
    };
}

/// Pre-existing default routes in a guest (over a veth pair inside it).
fn add_default_routes(g: &dyn Ns) {
    ip(
        g,
        &[
            "link", "add", "name", "gw0", "type", "veth", "peer", "name", "gw1",
        ],
    );
    ip(g, &["addr", "add", "10.223.99.2/24", "dev", "gw0"]);
    ip(g, &["link", "set", "gw0", "up"]);
    ip(g, &["link", "set", "gw1", "up"]);
    ip(g, &["route", "add", "default", "via", "10.223.99.1"]);
}

/// For every step of a `-v` run of `args` (`{g}` = the guest) in a fresh world made by
/// `world`, a fresh world and a run failing after that step; every namespace the world
/// returns must end as it began.
fn inject_each_step<W>(world: &dyn Fn() -> (W, Vec<Box<dyn Ns>>, Netns), args: &[&str]) {
    let run = |step: Option<&str>| -> (Vec<String>, Run) {
        let (_keep, others, guest) = world();
        add_default_routes(&guest);
        let before: Vec<Snapshot> = others.iter().map(|n| snapshot(n.as_ref())).collect();
        let gb = snapshot(&guest);
        let argv: Vec<&str> = args
            .iter()
            .map(|a| if *a == "{g}" { guest.name.as_str() } else { a })
            .collect();
        let host = &others[0];
        let Some(step) = step else {
            return (vec![], pipework(host.as_ref(), &argv));
        };
        let r = pipework_env(host.as_ref(), &argv, &[("PIPEWORK_TEST_FAIL_STEP", step)]);
        let mut problems = injected_failure_problems(&r, step);
        for (n, b) in others.iter().zip(&before) {
            if let Some(d) = changed_within(n.as_ref(), b, Duration::from_secs(2), "namespace") {
                problems.push(d);
            }
        }
        if let Some(d) = changed_within(&guest, &gb, Duration::from_secs(1), "guest") {
            problems.push(d);
        }
        if !problems.is_empty() {
            problems.push(format!("stderr: {}", r.stderr.trim()));
        }
        (problems, r)
    };
    let (_, r) = run(None);
    r.ok();
    let steps = step_names_of(&r);
    assert!(!steps.is_empty(), "-v logs its steps:\n{}", r.stderr);
    for_each_step(&steps, |s| run(Some(s)).0);
}

// ---- dummy -----------------------------------------------------------------------------------

#[test]
fn dummy_without_kernel_support_fails_cleanly() {
    need_root!();
    need_kernel_without!(kernel_has_dummy(), "dummy interfaces");
    let host = Netns::new("h");
    let guest = Netns::new("g");
    let hb = snapshot(&host);
    let gb = snapshot(&guest);
    let r = pipework(&host, &["dummy", &guest.name, "10.223.1.2/24@10.223.1.1"]);
    r.fails_any(1, &["dummy"]).clean_error();
    let msg = r.stderr.to_lowercase();
    assert!(
        ["kernel", "module"].iter().any(|w| msg.contains(w)),
        "the message says the kernel lacks the dummy type/module:\n{}",
        r.stderr
    );
    assert_unchanged(&host, &hb, "host after a kernel without dummy");
    assert_unchanged(&guest, &gb, "guest after a kernel without dummy");
}

#[test]
fn dummy_attach_address_and_gateway() {
    need_root!();
    need_kernel!(kernel_has_dummy(), "dummy interfaces");
    let host = Netns::new("h");
    let g1 = Netns::new("g");
    let g2 = Netns::new("g");
    let j = pipework(
        &host,
        &["--json", "dummy", &g1.name, "10.223.1.2/24@10.223.1.1"],
    )
    .ok()
    .json();
    let l = must_link(&g1, "eth1");
    assert_eq!(l.kind.as_deref(), Some("dummy"), "{:?}", l.raw);
    assert!(l.is_up());
    assert_eq!(global_cidrs(&g1, "eth1"), ["10.223.1.2/24"]);
    assert_eq!(
        default_route(&g1, false),
        Some(("10.223.1.1".into(), "eth1".into()))
    );
    assert_eq!(j["kind"], "dummy", "{j}");
    assert!(j["host_ifname"].is_null(), "{j}");
    assert!(j["vlan"].is_null(), "{j}");
    assert_eq!(link_names(&host), ["lo"], "nothing in the host");
    // Any missing name starting with "dummy", -i, IPv6 and a MAC.
    pipework(
        &host,
        &[
            "dummy7",
            "-i",
            "du0",
            &g2.name,
            "fd00:223:1::2/64",
            "02:22:3d:00:01:02",
        ],
    )
    .ok();
    let l2 = must_link(&g2, "du0");
    assert_eq!(l2.kind.as_deref(), Some("dummy"));
    assert_eq!(l2.mac, "02:22:3d:00:01:02");
    assert_eq!(global_cidrs(&g2, "du0"), ["fd00:223:1::2/64"]);
}

#[test]
fn dummy_inject_failure_at_each_step() {
    need_root!();
    need_kernel!(kernel_has_dummy(), "dummy interfaces");
    inject_each_step(
        &|| {
            let host: Box<dyn Ns> = Box::new(Netns::new("h"));
            ((), vec![host], Netns::new("g"))
        },
        &["-v", "dummy", "{g}", "10.223.2.2/24@10.223.2.1"],
    );
}

// ---- 802.1Q VLAN on a NIC (macvlan on NIC.VLAN) ------------------------------------------------

/// Host with NIC `pwn0` (down; peer `lan0` in `lan`).
fn nic_world() -> (Netns, Netns) {
    let host = Netns::new("h");
    let lan = Netns::new("l");
    veth_nic(&host, "pwn0", None, &lan, "lan0");
    (host, lan)
}

#[test]
fn vlan_without_8021q_fails_cleanly() {
    need_root!();
    need_kernel_without!(kernel_has_8021q(), "802.1Q VLANs");
    let (host, lan) = nic_world();
    let guest = Netns::new("g");
    let hb = snapshot(&host);
    let gb = snapshot(&guest);
    let lb = snapshot(&lan);
    let r = pipework(&host, &["pwn0", &guest.name, "10.223.3.2/24", "@10"]);
    r.fails_any(1, &["802.1q", "8021q"]).clean_error();
    assert!(link(&host, "pwn0.10").is_none(), "no pwn0.10 left");
    assert_unchanged_soon(
        &host,
        &hb,
        "host after a kernel without 8021q (NIC still down)",
    );
    assert_unchanged(&guest, &gb, "guest after a kernel without 8021q");
    assert_unchanged(&lan, &lb, "LAN after a kernel without 8021q");
}

/// The same with `--direct-phys` (which, as in the original, would move the NIC's VLAN child):
/// the NIC stays where it was.
#[test]
fn direct_phys_vlan_without_8021q_fails_cleanly() {
    need_root!();
    need_kernel_without!(kernel_has_8021q(), "802.1Q VLANs");
    let (host, _lan) = nic_world();
    ip(&host, &["link", "set", "pwn0", "up"]);
    let guest = Netns::new("g");
    wait_until(Duration::from_secs(2), || {
        addrs(&host, Some("pwn0"))
            .iter()
            .any(|a| a.family == "inet6")
    });
    let hb = snapshot(&host);
    let gb = snapshot(&guest);
    pipework(
        &host,
        &["--direct-phys", "pwn0", &guest.name, "10.223.3.3/24", "@10"],
    )
    .fails_any(1, &["802.1q", "8021q"])
    .clean_error();
    assert_unchanged_soon(
        &host,
        &hb,
        "host after a kernel without 8021q (NIC still up)",
    );
    assert_unchanged(&guest, &gb, "guest after a kernel without 8021q");
}

#[test]
fn vlan_name_taken_by_a_non_vlan_link() {
    need_root!();
    let (host, lan) = nic_world();
    // pwn0.10 exists, but it is a veth, not VLAN 10 of pwn0.
    ip(
        &host,
        &[
            "link", "add", "name", "pwn0.10", "type", "veth", "peer", "name", "pwn0.10p",
        ],
    );
    let guest = Netns::new("g");
    let hb = snapshot(&host);
    let gb = snapshot(&guest);
    let lb = snapshot(&lan);
    pipework(&host, &["pwn0", &guest.name, "10.223.4.2/24", "@10"])
        .fails(1, "is not a VLAN device for tag 10")
        .clean_error();
    assert_unchanged_soon(&host, &hb, "host after a VLAN name clash");
    assert_unchanged(&guest, &gb, "guest after a VLAN name clash");
    assert_unchanged(&lan, &lb, "LAN after a VLAN name clash");
}

#[test]
fn vlan_child_created_then_reused() {
    need_root!();
    need_kernel!(kernel_has_8021q(), "802.1Q VLANs");
    let (host, lan) = nic_world();
    // The LAN side of VLAN 10.
    ip(
        &lan,
        &[
            "link", "add", "link", "lan0", "name", "lan0.10", "type", "vlan", "id", "10",
        ],
    );
    ip(&lan, &["addr", "add", "10.223.5.1/24", "dev", "lan0.10"]);
    ip(&lan, &["link", "set", "lan0.10", "up"]);
    let g1 = Netns::new("g");
    let g2 = Netns::new("g");
    let j = pipework(&host, &["--json", "pwn0", &g1.name, "10.223.5.2/24", "@10"])
        .ok()
        .json();
    assert_eq!(j["kind"], "macvlan", "{j}");
    assert_eq!(j["vlan"], 10, "{j}");
    let v = must_link(&host, "pwn0.10");
    assert_eq!(v.kind.as_deref(), Some("vlan"), "{:?}", v.raw);
    assert_eq!(info_data(&v, "id").and_then(|x| x.as_u64()), Some(10));
    let e1 = must_link(&g1, "eth1");
    assert_eq!(e1.kind.as_deref(), Some("macvlan"));
    assert_eq!(link_index(&e1), Some(v.index), "macvlan on pwn0.10");
    pipework(&host, &["pwn0", &g2.name, "10.223.5.3/24", "@10"]).ok();
    assert_eq!(
        must_link(&host, "pwn0.10").index,
        v.index,
        "existing VLAN reused"
    );
    assert!(ping(&g1, "10.223.5.1"), "guest -> LAN on VLAN 10");
    assert!(ping(&g1, "10.223.5.3"), "g1 -> g2 on VLAN 10");
}

#[test]
fn vlan_inject_failure_at_each_step_creates_child() {
    need_root!();
    need_kernel!(kernel_has_8021q(), "802.1Q VLANs");
    inject_each_step(
        &|| {
            let (host, lan) = nic_world();
            (
                (),
                vec![Box::new(host) as Box<dyn Ns>, Box::new(lan)],
                Netns::new("g"),
            )
        },
        &["-v", "pwn0", "{g}", "10.223.6.2/24@10.223.6.1", "@10"],
    );
}

#[test]
fn vlan_inject_failure_at_each_step_existing_child_kept() {
    need_root!();
    need_kernel!(kernel_has_8021q(), "802.1Q VLANs");
    inject_each_step(
        &|| {
            let (host, lan) = nic_world();
            ip(
                &host,
                &[
                    "link", "add", "link", "pwn0", "name", "pwn0.20", "type", "vlan", "id", "20",
                ],
            );
            (
                (),
                vec![Box::new(host) as Box<dyn Ns>, Box::new(lan)],
                Netns::new("g"),
            )
        },
        &["-v", "pwn0", "{g}", "10.223.7.2/24", "@20"],
    );
}

// ---- IPoIB -----------------------------------------------------------------------------------

/// The machine's own network namespace (read-only use, and only for the opted-in IPoIB
/// tests: an InfiniBand link cannot be made in a test namespace).
struct MachineNs;
impl Ns for MachineNs {
    fn ns_path(&self) -> PathBuf {
        PathBuf::from("/proc/self/ns/net")
    }
    fn describe(&self) -> String {
        "the machine's namespace".into()
    }
}

/// The InfiniBand link the IPoIB tests may use, or None (with a printed reason). IB links
/// cannot be created in a test namespace, so a real one is needed, and since the tests then
/// create IPoIB children of it in the machine's namespace, they run only when the operator
/// names it in PIPEWORK_TEST_IPOIB_PARENT.
fn ipoib_parent_or_skip() -> Option<String> {
    if !root_or_skip(&test_name()) {
        return None;
    }
    let ib = infiniband_links(&MachineNs);
    if ib.is_empty() {
        skip(format!(
            "SKIP {}: no InfiniBand link (link type 32) on this machine",
            test_name()
        ));
        return None;
    }
    match std::env::var("PIPEWORK_TEST_IPOIB_PARENT") {
        Ok(p) if ib.contains(&p) => Some(p),
        _ => {
            skip(format!(
                "SKIP {}: InfiniBand links {ib:?} exist, but the IPoIB tests create children \
                 of a real link in the machine's namespace: opt in with \
                 PIPEWORK_TEST_IPOIB_PARENT=<one of them>",
                test_name()
            ));
            None
        }
    }
}

#[test]
fn ipoib_child_named_ib0_and_pkey() {
    let Some(parent) = ipoib_parent_or_skip() else {
        return;
    };
    let g1 = Netns::new("g");
    let g2 = Netns::new("g");
    let j = pipework(&MachineNs, &["--json", &parent, &g1.name, "10.223.8.2/24"])
        .ok()
        .json();
    assert_eq!(j["kind"], "ipoib", "{j}");
    assert!(j["host_ifname"].is_null(), "{j}");
    assert_eq!(j["guest_ifname"], "ib0", "{j}");
    let l = must_link(&g1, "ib0");
    assert_eq!(l.kind.as_deref(), Some("ipoib"), "{:?}", l.raw);
    assert_eq!(global_cidrs(&g1, "ib0"), ["10.223.8.2/24"]);
    pipework(
        &MachineNs,
        &[&parent, "-i", "ib1", &g2.name, "10.223.8.3/24", "@8001"],
    )
    .ok();
    let l2 = must_link(&g2, "ib1");
    assert_eq!(l2.kind.as_deref(), Some("ipoib"));
    // iproute2 prints the partition key in info_data (as "key"/"pkey", hex or decimal).
    let pkey = l2
        .raw
        .pointer("/linkinfo/info_data")
        .map(|v| v.to_string())
        .unwrap_or_default();
    assert!(
        pkey.contains("8001") || pkey.contains("32769"),
        "partition key 0x8001: {:?}",
        l2.raw
    );
}

#[test]
fn ipoib_refuses_a_mac() {
    let Some(parent) = ipoib_parent_or_skip() else {
        return;
    };
    let g = Netns::new("g");
    let gb = snapshot(&g);
    let mb = snapshot(&MachineNs);
    pipework(
        &MachineNs,
        &[&parent, &g.name, "10.223.9.2/24", "02:22:3b:00:00:01"],
    )
    .fails(2, "MACADDR configuration unsupported for IPoIB interfaces.")
    .clean_error();
    assert_unchanged(&g, &gb, "guest after a MAC for IPoIB");
    assert_unchanged(&MachineNs, &mb, "machine namespace after a MAC for IPoIB");
}

/// The mapping that decides "the kernel lacks X" (skip) from `ip`'s error, against what every
/// other failure must be (a failed test).
#[test]
fn kernel_lacks_mapping() {
    for lacks in [
        "Error: Unknown device type.",
        "RTNETLINK answers: Operation not supported",
        "Error: Not supported.",
    ] {
        assert!(kernel_lacks_from_ip(lacks), "{lacks}");
    }
    for other in [
        "RTNETLINK answers: Operation not permitted",
        "RTNETLINK answers: File exists",
        "Error: argument \"x\" is wrong: invalid VLAN id",
        "Cannot find device \"pv0\"",
        "",
    ] {
        assert!(!kernel_lacks_from_ip(other), "{other}");
    }
}
