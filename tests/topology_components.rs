//! Declarative labs (`pipework apply/plan/destroy/ls --lab/graph`) against real components:
//! Open vSwitch (userspace datapath), macvlan on a stand-in NIC, dnsmasq DHCP, a Docker
//! container, tc qdiscs (tbf; netem when the kernel has it), external bridges and the graph
//! renderers.
//!
//! Every test makes its own host namespace and runs pipework inside it; lab names are
//! `t` + 6 hex, bridge and netns names are unique. A [`Lab`] guard destroys its lab on drop (even
//! when the test panics) before the namespaces it lives in go away. Subnets 10.230–10.236.x.x,
//! 10.224.77.x (the test dnsmasq's range).

mod common;
use common::*;

use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// A lab file in its own temporary directory, and the host namespace it is applied in. Drop
/// runs `pipework destroy LAB` (ignoring the outcome) unless the test destroyed it already.
struct Lab<'a> {
    host: &'a dyn Ns,
    name: String,
    dir: TempDir,
    env: Vec<(String, String)>,
    destroyed: bool,
}

impl<'a> Lab<'a> {
    fn new(host: &'a dyn Ns, env: &[(&str, &str)]) -> Lab<'a> {
        Lab {
            host,
            name: format!("t{}", rand_hex(6)),
            dir: TempDir::new("lab"),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            destroyed: false,
        }
    }

    fn file(&self) -> PathBuf {
        self.dir.join("lab.yaml")
    }

    fn file_str(&self) -> String {
        self.file().display().to_string()
    }

    /// Writes the lab file: `lab: NAME` followed by `body`.
    fn write(&self, body: &str) {
        let text = format!("lab: {}\n{body}", self.name);
        eprintln!("--- lab file ---\n{text}----------------");
        std::fs::write(self.file(), text).expect("write the lab file");
    }

    /// pipework inside the host namespace. Fails the test when pipework exits while a process
    /// it left behind (a DHCP supervisor) still holds its output open.
    fn pw(&self, args: &[&str]) -> Run {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let (run, held) = pipework_detached(
            self.host,
            args,
            &Opts {
                env,
                ..Default::default()
            },
        );
        if let Some(h) = held {
            panic!("{h}\n{}", run.show());
        }
        run
    }

    fn plan(&self) -> Run {
        self.pw(&["plan", &self.file_str()])
    }

    fn apply(&self) -> Run {
        self.pw(&["apply", &self.file_str()])
    }

    /// `apply --json`, which must succeed; its report.
    fn apply_json(&self) -> Value {
        let r = self.pw(&["apply", &self.file_str(), "--json"]);
        r.ok();
        let j = r.json();
        assert_eq!(j["lab"], self.name.as_str(), "{j}");
        j
    }

    /// A re-apply changes nothing: an empty plan, then `"changes":[]` and no netlink write.
    fn assert_noop(&self) {
        let p = self.plan();
        p.ok();
        let zero = format!("lab {}: 0 to create, 0 to change, 0 to remove", self.name);
        let none = format!("lab {}: no changes", self.name);
        assert!(
            p.stdout.contains(&zero) || p.stdout.contains(&none),
            "plan after apply is empty ({none:?} or {zero:?})\n{}",
            p.show()
        );
        assert!(
            !p.stdout
                .lines()
                .any(|l| l.starts_with("+ ") || l.starts_with("~ ") || l.starts_with("- ")),
            "plan after apply lists no change\n{}",
            p.show()
        );
        let j = self.apply_json();
        assert_eq!(j["changes"], serde_json::json!([]), "no-op apply: {j}");
        assert_eq!(j["netlink_writes"], 0, "no-op apply writes nothing: {j}");
    }

    fn destroy(&mut self) -> Run {
        let r = self.pw(&["destroy", &self.name]);
        r.ok();
        self.destroyed = true;
        r
    }

    /// `destroy FILE` (the lab named inside it).
    fn destroy_file(&mut self) -> Run {
        let r = self.pw(&["destroy", &self.file_str()]);
        r.ok();
        self.destroyed = true;
        r
    }

    /// `ls --lab NAME --json`: its objects.
    fn objects(&self) -> Vec<Value> {
        let r = self.pw(&["ls", "--lab", &self.name, "--json"]);
        r.ok();
        let j = r.json();
        assert_eq!(j["lab"], self.name.as_str(), "{j}");
        j["objects"]
            .as_array()
            .unwrap_or_else(|| panic!("objects in {j}"))
            .clone()
    }

    /// The `ls --lab` object of this kind and name.
    fn object(&self, kind: &str, name: &str) -> Value {
        let objs = self.objects();
        objs.iter()
            .find(|o| o["kind"] == kind && o["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name} in ls --lab: {objs:?}"))
            .clone()
    }

    /// The host end of attachment `guest`'s `ifname`, as `pipework ls --json` reports it.
    fn host_ifname(&self, guest_name: &str, ifname: &str) -> String {
        let r = self.pw(&["ls", "--json"]);
        r.ok();
        let j = r.json();
        let all = j
            .as_array()
            .unwrap_or_else(|| panic!("ls --json array: {j}"));
        let e = all
            .iter()
            .find(|e| e["guest_name"] == guest_name && e["ifname"] == ifname)
            .unwrap_or_else(|| panic!("no record of {guest_name}:{ifname} in ls --json: {j}"));
        e["host_ifname"]
            .as_str()
            .unwrap_or_else(|| panic!("host_ifname in {e}"))
            .to_string()
    }
}

impl Drop for Lab<'_> {
    fn drop(&mut self) {
        if !self.destroyed {
            let _ = self.pw(&["destroy", &self.name]);
        }
    }
}

/// A named namespace the lab may create (and should remove): deleted on drop if still there.
struct NetnsName(String);

impl NetnsName {
    fn new(tag: &str) -> NetnsName {
        NetnsName(unique(tag))
    }
    fn exists(&self) -> bool {
        std::path::Path::new(&format!("/run/netns/{}", self.0)).exists()
    }
}

impl Drop for NetnsName {
    fn drop(&mut self) {
        if self.exists() {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &self.0])
                .status();
        }
    }
}

/// A unique Linux/OVS bridge name (≤ 15 bytes).
fn bridge_name(tag: &str) -> String {
    let n = format!("{tag}{}", rand_hex(8));
    assert!(n.len() <= 15, "{n}");
    n
}

/// A link's group number (`ip -j` prints a number, or a name from /etc/iproute2/group).
fn link_group(l: &Link) -> Option<u64> {
    match l.raw.get("group")? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// `tc qdisc show [dev IF]` inside `ns`.
fn tc_qdiscs(ns: &dyn Ns, dev: Option<&str>) -> String {
    let mut c = cmd_in(ns, "tc");
    c.args(["qdisc", "show"]);
    if let Some(d) = dev {
        c.args(["dev", d]);
    }
    let out = c.output().expect("spawn tc");
    assert!(
        out.status.success(),
        "tc qdisc show in {}: {}",
        ns.describe(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---------------------------------------------------------------------------------------------
// 1. Open vSwitch ports with VLAN tags
// ---------------------------------------------------------------------------------------------

#[test]
fn ovs_ports_with_tags() {
    if !ovs_or_skip(&test_name()) {
        return;
    }
    let host = Netns::new("h");
    let ovs = Ovs::start(&host);
    let (g1, g2, g3) = (Netns::new("g"), Netns::new("g"), Netns::new("g"));
    let br = bridge_name("pwo");
    let mut lab = Lab::new(&host, &[("OVS_RUNDIR", ovs.rundir())]);
    lab.write(&format!(
        "guests:\n  g1: {{netns: {}}}\n  g2: {{netns: {}}}\n  g3: {{netns: {}}}\n\
         bridges:\n  {br}: {{ovs: true, datapath: netdev}}\n\
         attach:\n  - {br} g1 10.230.1.2/24 @10\n  - {br} g2 10.230.1.3/24 @10\n  - {br} g3 10.230.1.4/24 @20\n",
        g1.name, g2.name, g3.name
    ));
    let p = lab.plan();
    p.ok();
    assert!(
        p.stdout.contains(&format!("+ bridge {br}")) && p.stdout.contains("+ attach g3:eth1"),
        "plan lists the bridge and the attachments\n{}",
        p.show()
    );
    let j = lab.apply_json();
    assert!(
        j["netlink_writes"].as_u64().unwrap_or(0) > 0,
        "a creating apply writes: {j}"
    );

    assert!(
        ovs.vsctl_raw(&["--no-wait", "br-exists", &br])
            .status
            .success(),
        "OVS bridge {br} exists"
    );
    assert_eq!(
        ovs.get("Bridge", &br, "datapath_type"),
        "netdev",
        "userspace datapath"
    );
    let mut hosts = vec![];
    for (g, name, tag) in [(&g1, "g1", 10), (&g2, "g2", 10), (&g3, "g3", 20)] {
        let cidr = match name {
            "g1" => "10.230.1.2/24",
            "g2" => "10.230.1.3/24",
            _ => "10.230.1.4/24",
        };
        assert_guest_veth(g, "eth1", &[cidr]);
        assert_eq!(
            ethtool_feature(g, "eth1", "tx-checksumming").as_deref(),
            Some("off"),
            "TX checksum offload off on {name}'s eth1 (netdev datapath), as the CLI does"
        );
        let h = lab.host_ifname(&g.name, "eth1");
        assert_eq!(
            host_end_of(&host, g, "eth1").name,
            h,
            "ls --json names the real host end of {name}"
        );
        assert!(
            ovs.ports(&br).contains(&h),
            "{h} is a port of {br}: {:?}",
            ovs.ports(&br)
        );
        assert_eq!(ovs.tag(&h), Some(tag), "VLAN tag of {name}'s port {h}");
        let o = lab.object("attach", &format!("{name}:eth1"));
        assert_eq!(o["state"], "alive", "{o}");
        hosts.push(h);
    }
    assert!(ping(&g1, "10.230.1.3"), "g1 -> g2 on VLAN 10");
    assert!(
        !ping_once(&g1, "10.230.1.4", 1),
        "g1 (VLAN 10) must not reach g3 (VLAN 20)"
    );

    lab.assert_noop();

    lab.destroy();
    assert!(
        !ovs.vsctl_raw(&["--no-wait", "br-exists", &br])
            .status
            .success(),
        "destroy removed OVS bridge {br}; bridges now {:?}",
        ovs.bridges()
    );
    let st = ovs.state();
    for h in &hosts {
        assert!(
            !st.values().flatten().any(|p| p == h),
            "port {h} left in OVS: {st:?}"
        );
        assert!(link(&host, h).is_none(), "host end {h} deleted");
    }
    for g in [&g1, &g2, &g3] {
        assert!(link(g, "eth1").is_none(), "eth1 of {} removed", g.name);
    }
}

// ---------------------------------------------------------------------------------------------
// 2. macvlan children of a (veth) NIC
// ---------------------------------------------------------------------------------------------

#[test]
fn macvlan_on_a_veth_nic() {
    if !root_or_skip(&test_name()) {
        return;
    }
    let host = Netns::new("h");
    ip(
        &host,
        &[
            "link", "add", "nicA", "type", "veth", "peer", "name", "nicB",
        ],
    );
    for n in ["nicA", "nicB"] {
        ip(&host, &["link", "set", n, "addrgenmode", "none"]);
        ip(&host, &["link", "set", n, "up"]);
    }
    let (g1, g2) = (Netns::new("g"), Netns::new("g"));
    let host_before = settled_snapshot(&host);
    let (g1_before, g2_before) = (snapshot(&g1), snapshot(&g2));
    let nic_index = must_link(&host, "nicA").index;

    let mut lab = Lab::new(&host, &[]);
    lab.write(&format!(
        "guests:\n  g1: {{netns: {}}}\n  g2: {{netns: {}}}\n\
         attach:\n  - nicA g1 10.231.1.2/24\n  - nicA g2 10.231.1.3/24\n",
        g1.name, g2.name
    ));
    lab.apply().ok();
    for (g, cidr) in [(&g1, "10.231.1.2/24"), (&g2, "10.231.1.3/24")] {
        let l = must_link(g, "eth1");
        assert_eq!(
            l.kind.as_deref(),
            Some("macvlan"),
            "eth1 is a macvlan: {l:?}"
        );
        assert_eq!(
            info_data(&l, "mode")
                .and_then(|m| m.as_str().map(String::from))
                .as_deref(),
            Some("bridge"),
            "macvlan mode: {:?}",
            l.raw
        );
        assert_eq!(
            link_index(&l),
            Some(nic_index),
            "eth1's parent is nicA: {:?}",
            l.raw
        );
        assert!(l.is_up(), "eth1 up: {l:?}");
        assert_eq!(global_cidrs(g, "eth1"), vec![cidr.to_string()]);
    }
    let (m1, m2) = (must_link(&g1, "eth1").mac, must_link(&g2, "eth1").mac);
    assert_ne!(m1, m2, "each guest has its own stable MAC");
    assert!(
        ping(&g1, "10.231.1.3"),
        "g1 -> g2 over macvlan (bridge mode)"
    );
    assert!(
        ping(&g2, "10.231.1.2"),
        "g2 -> g1 over macvlan (bridge mode)"
    );
    let o = lab.object("attach", "g2:eth1");
    assert_eq!(o["state"], "alive", "{o}");

    lab.assert_noop();

    // The MACs are stable: derived from (lab, guest, ifname), the same after a re-creation.
    lab.destroy();
    lab.apply().ok();
    assert_eq!(
        (must_link(&g1, "eth1").mac, must_link(&g2, "eth1").mac),
        (m1, m2),
        "same MACs after destroy + apply"
    );
    lab.destroy();
    assert_unchanged_soon(&host, &host_before, "after destroy (nicA/nicB intact)");
    let a = must_link(&host, "nicA");
    assert_eq!(a.index, nic_index, "nicA is the same link");
    assert!(a.is_up(), "nicA still up");
    assert!(link(&host, "nicB").is_some(), "nicB intact");
    assert_unchanged_soon(&g1, &g1_before, "g1 after destroy");
    assert_unchanged_soon(&g2, &g2_before, "g2 after destroy");
}

// ---------------------------------------------------------------------------------------------
// 3. DHCP from dnsmasq on a lab bridge
// ---------------------------------------------------------------------------------------------

#[test]
fn dhcp_against_dnsmasq() {
    if !root_or_skip(&test_name()) {
        return;
    }
    if !programs_or_skip(&test_name(), &["dnsmasq"]) {
        return;
    }
    let resolv = HostResolvConf::read();
    let rt = RuntimeDir::new();
    let host = Netns::new("h");
    let g1 = DhcpGuest::new(Netns::new("g"));
    let g1_inode = netns_inode(&*g1);
    let br = bridge_name("pwd");
    let mut lab = Lab::new(&host, &[("PIPEWORK_RUNTIME_DIR", rt.path())]);

    // Phase 1: the lab makes the bridge; the test puts the server on it.
    let guests = format!("guests:\n  g1: {{netns: {}}}\n", g1.name);
    lab.write(&format!("{guests}bridges:\n  {br}: {{}}\n"));
    lab.apply().ok();
    let b = must_link(&host, &br);
    assert_eq!(b.kind.as_deref(), Some("bridge"), "{b:?}");
    ip(&host, &["addr", "add", "10.224.77.1/24", "dev", &br]);
    ip(&host, &["link", "set", &br, "up"]);
    let mut server = Dnsmasq::start(&host, &br, 77, &DnsmasqConf::default());

    // Phase 2: the guest asks for a lease.
    lab.write(&format!(
        "{guests}bridges:\n  {br}: {{}}\nattach:\n  - {br} g1 dhcp\n"
    ));
    let p = lab.plan();
    p.ok();
    assert!(
        p.stdout.contains("+ attach g1:eth1") && p.stdout.contains("1 to create"),
        "plan adds the DHCP attachment\n{}",
        p.show()
    );
    lab.apply().ok();
    let mac = must_link(&*g1, "eth1").mac;
    let got = global_v4(&*g1, "eth1");
    assert_eq!(got.len(), 1, "one IPv4 address on eth1: {got:?}");
    let a = &got[0];
    let o: Vec<u8> = a.local.split('.').map(|x| x.parse().unwrap_or(0)).collect();
    assert!(
        o[..3] == [10, 224, 77] && (V4_RANGE.0..=V4_RANGE.1).contains(&o[3]) && a.prefixlen == 24,
        "lease address from the range 10.224.77.{}-{}: {a:?}",
        V4_RANGE.0,
        V4_RANGE.1
    );
    assert!(
        server.wait_acks(&mac, 1, Duration::from_secs(3)),
        "dnsmasq acked {mac}:\n{}",
        server.log()
    );
    assert_eq!(
        server.lease_of(&mac).map(|l| l.0).as_deref(),
        Some(a.local.as_str()),
        "dnsmasq's lease is the guest's address"
    );
    assert!(ping(&*g1, "10.224.77.1"), "guest reaches the server");
    let obj = lab.object("attach", "g1:eth1");
    assert_eq!(obj["state"], "alive", "{obj}");

    lab.assert_noop();
    assert_eq!(
        global_cidrs(&*g1, "eth1"),
        vec![a.cidr()],
        "the no-op apply kept the lease"
    );

    lab.destroy();
    let mut problems = vec![];
    wait_until(Duration::from_secs(3), || {
        problems.clear();
        for p in rt.live_processes() {
            problems.push(format!("process left running: {p}"));
        }
        for p in procs_in_netns(g1_inode, &[]) {
            problems.push(format!("process left in the guest's namespace: {p}"));
        }
        for f in rt.pidfiles() {
            problems.push(format!("pidfile left: {}", f.display()));
        }
        problems.is_empty()
    });
    assert!(
        problems.is_empty(),
        "destroy stops the DHCP client:\n  {}",
        problems.join("\n  ")
    );
    assert!(link(&host, &br).is_none(), "destroy removed bridge {br}");
    assert!(link(&*g1, "eth1").is_none(), "destroy removed g1's eth1");
    assert!(
        links(&host).iter().all(|l| l.name == "lo"),
        "host namespace is back to lo only: {:?}",
        link_names(&host)
    );
    server.stop();
    resolv.assert_unchanged("after the DHCP lab");
}

// ---------------------------------------------------------------------------------------------
// 4. A Docker container as a lab guest
// ---------------------------------------------------------------------------------------------

#[test]
fn docker_guest() {
    let Some(dh) = docker_or_skip(&test_name()) else {
        return;
    };
    let host = Netns::new("h");
    let c = Container::run(&dh);
    let peer = Netns::new("g");
    let c_before = snapshot(&c);
    let br = bridge_name("pwk");
    let mut lab = Lab::new(&host, &[]);
    lab.write(&format!(
        "guests:\n  web: docker:{}\n  peer: {{netns: {}}}\n\
         bridges:\n  {br}: {{}}\n\
         attach:\n  - {br} web 10.232.1.2/24\n  - {br} peer 10.232.1.3/24\n",
        c.name, peer.name
    ));
    lab.apply().ok();
    assert_attached(&host, &br, &c, "eth1", &["10.232.1.2/24"]);
    assert_eq!(
        link_group(&must_link(&host, &br)),
        Some(0x7077_0002),
        "the lab's bridge carries link group 0x70770002"
    );
    assert_attached(&host, &br, &peer, "eth1", &["10.232.1.3/24"]);
    assert!(ping(&peer, "10.232.1.2"), "netns guest -> container");
    assert!(docker_ping(&c, "10.232.1.3"), "container -> netns guest");
    let o = lab.object("attach", "web:eth1");
    assert_eq!(
        o["state"], "alive",
        "ls --lab shows the container alive: {o}"
    );
    let ls = lab.pw(&["ls", "--lab", &lab.name]);
    ls.ok();
    assert!(
        ls.stdout
            .lines()
            .any(|l| l.contains("web:eth1") && l.starts_with("alive")),
        "ls --lab (table) shows web:eth1 alive\n{}",
        ls.show()
    );

    lab.assert_noop();

    lab.destroy();
    assert!(
        link(&c, "eth1").is_none(),
        "attachment removed from the container"
    );
    assert_unchanged_soon(&c, &c_before, "container after destroy");
    let running = docker(&dh, &["inspect", "-f", "{{.State.Running}}", &c.name]);
    assert_eq!(
        String::from_utf8_lossy(&running.stdout).trim(),
        "true",
        "the container keeps running"
    );
    assert!(link(&host, &br).is_none(), "bridge {br} removed");
}

// ---------------------------------------------------------------------------------------------
// 5. tbf rates, changed in place; netem probed
// ---------------------------------------------------------------------------------------------

/// Whether the kernel can make a netem qdisc (tried on lo of a throwaway namespace).
fn kernel_has_netem() -> Result<(), String> {
    let ns = Netns::new("probe");
    let out = cmd_in(&ns, "tc")
        .args(["qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"])
        .output()
        .expect("spawn tc");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

#[test]
fn rate_is_tbf_and_netem_is_probed() {
    if !root_or_skip(&test_name()) {
        return;
    }
    let host = Netns::new("h");
    let (a, b) = (Netns::new("g"), Netns::new("g"));
    let mut lab = Lab::new(&host, &[]);
    let guests = format!(
        "guests:\n  a: {{netns: {}}}\n  b: {{netns: {}}}\n",
        a.name, b.name
    );
    let link1 = |rate: &str| {
        format!(
            "  - endpoints: [a:e1, b:e1]\n    ipv4: [10.233.0.1/30, 10.233.0.2/30]\n    rate: {rate}\n"
        )
    };
    lab.write(&format!("{guests}links:\n{}", link1("10mbit")));
    lab.apply().ok();
    for g in [&a, &b] {
        let q = tc_qdiscs(g, Some("e1"));
        assert!(
            q.contains("tbf") && q.contains("rate 10Mbit"),
            "tbf 10Mbit on e1 in {}: {q}",
            g.name
        );
    }
    assert!(ping(&a, "10.233.0.2"), "a -> b over the shaped link");
    let idx = (must_link(&a, "e1").index, must_link(&b, "e1").index);
    lab.assert_noop();

    // 10mbit -> 20mbit: a change in place.
    lab.write(&format!("{guests}links:\n{}", link1("20mbit")));
    let p = lab.plan();
    p.ok();
    assert!(
        p.stdout
            .lines()
            .any(|l| l.starts_with("~ link a:e1~b:e1") && l.contains("rate: 10mbit → 20mbit")),
        "plan shows the rate change\n{}",
        p.show()
    );
    assert!(
        p.stdout.contains("0 to create, 1 to change, 0 to remove"),
        "{}",
        p.show()
    );
    let j = lab.apply_json();
    let ch = j["changes"].as_array().cloned().unwrap_or_default();
    assert!(
        ch.len() == 1
            && ch[0]["op"] == "~"
            && ch[0]["field"] == "rate"
            && ch[0]["old"] == "10mbit"
            && ch[0]["new"] == "20mbit",
        "one rate change: {j}"
    );
    for g in [&a, &b] {
        let q = tc_qdiscs(g, Some("e1"));
        assert!(
            q.contains("tbf") && q.contains("rate 20Mbit"),
            "tbf 20Mbit on e1 in {}: {q}",
            g.name
        );
    }
    assert_eq!(
        (must_link(&a, "e1").index, must_link(&b, "e1").index),
        idx,
        "the link was changed in place, not recreated"
    );
    lab.assert_noop();

    // netem: probe the kernel first.
    let have_netem = kernel_has_netem();
    let before: Vec<(&Netns, Snapshot, String)> = [&host, &a, &b]
        .into_iter()
        .map(|n| (n, settled_snapshot(n), tc_qdiscs(n, None)))
        .collect();
    lab.write(&format!(
        "{guests}links:\n{}  - endpoints: [a:e2, b:e2]\n    netem: \"delay 5ms\"\n",
        link1("20mbit")
    ));
    let r = lab.apply();
    match have_netem {
        Err(why) => {
            assert_ne!(
                r.code,
                0,
                "apply without kernel netem must fail\n{}",
                r.show()
            );
            r.clean_error();
            let msg = format!("{}{}", r.stderr, r.stdout);
            assert!(
                msg.contains("netem") && msg.contains("modprobe sch_netem"),
                "the error names netem and `modprobe sch_netem`\n{}",
                r.show()
            );
            for (n, snap, q) in &before {
                assert_unchanged_soon(*n, snap, "after the failed netem apply");
                assert_eq!(
                    &tc_qdiscs(*n, None),
                    q,
                    "qdiscs of {} unchanged by the failed apply",
                    n.name
                );
            }
            skip(format!(
                "SKIP {} (netem half): the kernel has no netem qdisc ({why}); checked the \
                 refusal and rollback only",
                test_name()
            ));
        }
        Ok(()) => {
            r.ok();
            for g in [&a, &b] {
                let q = tc_qdiscs(g, Some("e2"));
                assert!(
                    q.contains("netem") && q.contains("delay 5ms"),
                    "netem delay 5ms on e2 in {}: {q}",
                    g.name
                );
            }
            lab.assert_noop();
        }
    }

    lab.destroy();
    for g in [&a, &b] {
        assert!(link(g, "e1").is_none(), "e1 of {} removed", g.name);
        assert!(link(g, "e2").is_none(), "e2 of {} removed", g.name);
    }
}

// ---------------------------------------------------------------------------------------------
// 6. External bridges: must exist, joined, never removed
// ---------------------------------------------------------------------------------------------

#[test]
fn external_bridge_must_exist() {
    if !root_or_skip(&test_name()) {
        return;
    }
    let host = Netns::new("h");
    let g1 = Netns::new("g");
    let g2 = NetnsName::new("lg");
    let lan = bridge_name("pwe");
    let mut lab = Lab::new(&host, &[]);
    lab.write(&format!(
        "guests:\n  g1: {{netns: {}}}\n  g2: {{netns: {}}}\n\
         bridges:\n  {lan}: {{external: true}}\n\
         attach:\n  - {lan} g1 10.234.1.2/24\n  - {lan} g2 10.234.1.3/24\n",
        g1.name, g2.0
    ));
    let (host_before, g1_before) = (settled_snapshot(&host), snapshot(&g1));
    let r = lab.apply();
    assert_ne!(
        r.code,
        0,
        "apply with a missing external bridge fails\n{}",
        r.show()
    );
    r.clean_error();
    assert!(
        r.stderr.contains(&lan),
        "the error names the bridge {lan}\n{}",
        r.show()
    );
    assert_unchanged(&host, &host_before, "after the refused apply");
    assert_unchanged(&g1, &g1_before, "after the refused apply");
    assert!(!g2.exists(), "the refused apply created no netns {}", g2.0);

    ip(&host, &["link", "add", &lan, "type", "bridge"]);
    ip(&host, &["link", "set", &lan, "up"]);
    let lan_link = must_link(&host, &lan);
    let host_with_lan = settled_snapshot(&host);
    lab.apply().ok();
    assert!(g2.exists(), "the lab created netns {}", g2.0);
    let g2ns = Netns { name: g2.0.clone() };
    assert_attached(&host, &lan, &g1, "eth1", &["10.234.1.2/24"]);
    assert_attached(&host, &lan, &g2ns, "eth1", &["10.234.1.3/24"]);
    assert!(
        ping(&g1, "10.234.1.3"),
        "g1 -> g2 across the external bridge"
    );
    let l = must_link(&host, &lan);
    assert_eq!(
        (l.index, l.mtu, l.raw.get("group").cloned()),
        (
            lan_link.index,
            lan_link.mtu,
            lan_link.raw.get("group").cloned()
        ),
        "the external bridge is joined, not changed"
    );
    lab.assert_noop();
    lab.destroy_file();
    let after = lab.pw(&["ls", "--lab", &lab.name, "--json"]);
    if after.code == 0 {
        let objs = after.json()["objects"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            objs.is_empty(),
            "ls --lab after destroy lists nothing\n{}",
            after.show()
        );
    } else {
        after.fails(1, "no lab").clean_error();
    }
    std::mem::forget(g2ns); // not ours to delete: the lab did (checked below)
    assert!(!g2.exists(), "destroy removed the netns the lab created");
    assert_unchanged_soon(
        &host,
        &host_with_lan,
        "after destroy (external bridge kept)",
    );
    let l = must_link(&host, &lan);
    assert_eq!(l.index, lan_link.index, "{lan} is still the same bridge");
    assert!(ports_of(&host, &lan).is_empty(), "no ports left on {lan}");
    assert_unchanged(&g1, &g1_before, "g1 after destroy");
}

// ---------------------------------------------------------------------------------------------
// 7. graph renderers
// ---------------------------------------------------------------------------------------------

#[test]
fn graph_formats() {
    if !root_or_skip(&test_name()) {
        return;
    }
    let host = Netns::new("h");
    let host_before = snapshot(&host);
    let br = bridge_name("pwg");
    let gns = unique("gr");
    let lab = Lab::new(&host, &[]);
    lab.write(&format!(
        "guests:\n  alpha: {{netns: {gns}}}\n  beta: 4242\n\
         bridges:\n  {br}: {{mtu: 9000}}\n  lanx0: {{external: true}}\n\
         attach:\n  - {br} alpha 10.235.0.2/24\n  - lanx0 beta dhcp\n\
         links:\n  - endpoints: [alpha:e1, beta:e1]\n    ipv4: [10.235.9.1/30, 10.235.9.2/30]\n    rate: 10mbit\n"
    ));
    let f = lab.file_str();
    let dot = lab.pw(&["graph", &f, "--format", "dot"]);
    dot.ok();
    for needle in [
        "graph ",
        "\"guest:alpha\"",
        "\"guest:beta\"",
        &format!("\"bridge:{br}\""),
        "\"bridge:lanx0\"",
        "10.235.0.2/24",
        "rate 10mbit",
    ] {
        assert!(
            dot.stdout.contains(needle),
            "dot has {needle:?}\n{}",
            dot.show()
        );
    }
    assert!(
        dot.stdout.trim_end().ends_with('}'),
        "dot is closed\n{}",
        dot.show()
    );
    let mm = lab.pw(&["graph", &f, "--format", "mermaid"]);
    mm.ok();
    for needle in [
        "flowchart",
        "alpha",
        "beta",
        br.as_str(),
        "lanx0",
        "10.235.0.2/24",
    ] {
        assert!(
            mm.stdout.contains(needle),
            "mermaid has {needle:?}\n{}",
            mm.show()
        );
    }
    lab.pw(&["graph", &f, "--format", "png"])
        .fails(2, "png")
        .clean_error();

    let svg = lab.pw(&["graph", &f, "--format", "svg"]);
    if have_program("dot") {
        svg.ok();
        assert!(svg.stdout.contains("<svg"), "svg output\n{}", svg.show());
        assert!(
            svg.stdout.contains("alpha"),
            "svg shows the guests\n{}",
            svg.show()
        );
    } else {
        svg.fails_any(1, &["graphviz"]).clean_error();
    }
    // Without Graphviz on PATH, the advice names the package (both cases always checked).
    let env: Vec<(&str, &str)> = vec![("PATH", "/nonexistent-pwt")];
    let (nodot, _) = pipework_detached(
        &host,
        &["graph", &f, "--format", "svg"],
        &Opts {
            env,
            ..Default::default()
        },
    );
    assert_ne!(nodot.code, 0, "svg without dot fails\n{}", nodot.show());
    nodot.clean_error();
    assert!(
        nodot.stderr.contains("graphviz"),
        "the error names the package graphviz\n{}",
        nodot.show()
    );
    // graph touches nothing.
    assert_unchanged(&host, &host_before, "after graph");
    assert!(
        !std::path::Path::new(&format!("/run/netns/{gns}")).exists(),
        "graph created no netns"
    );
}
