//! Multi-host labs on simulated hosts: three (then four) "host" namespaces, each with its own
//! runtime directory and an underlay veth `ul0` on a bridge in an underlay namespace, each
//! running `pipework apply` on the same file. Guests on every host reach each other across the
//! stretched bridge (ping, ARP, broadcast) and the cross-host link; the MTU fits the underlay;
//! re-applies are no-ops; a new host changes only flood entries while a ping runs; destroy
//! gives every namespace back; failures and kills roll the VXLAN steps back; a Docker guest
//! joins; `pipework stretch`; refusals. Subnets 10.212.x.x (overlay), 10.252.x.x (underlay).

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::time::Duration;

struct Host {
    /// a, b, c, d: its key in the file.
    key: String,
    ns: Netns,
    rt: PathBuf,
    addr: String,
}

/// The simulated machines, the lab's files and names; everything removed on drop.
struct World {
    ul: Netns,
    hosts: Vec<Host>,
    v6: bool,
    subnet: u8,
    dir: PathBuf,
    lab: String,
    /// Prefix of the namespaces the lab makes.
    ns: String,
    br: String,
}

impl World {
    fn new(n: usize, v6: bool) -> World {
        let ul = Netns::new("ul");
        ip(&ul, &["link", "add", "sw", "type", "bridge"]);
        ip(&ul, &["link", "set", "sw", "up"]);
        let dir = std::env::temp_dir().join(format!("pwt-stretch-{}", rand_hex(8)));
        std::fs::create_dir_all(&dir).unwrap();
        let mut w = World {
            ul,
            hosts: Vec::new(),
            v6,
            subnet: (u8::from_str_radix(&rand_hex(2), 16).unwrap() % 200) + 20,
            dir,
            lab: format!("s{}", rand_hex(6)),
            ns: format!("pwt-{}", rand_hex(6)),
            br: format!("pws{}", rand_hex(5)),
        };
        for _ in 0..n {
            w.add_host();
        }
        w
    }

    fn add_host(&mut self) {
        let i = self.hosts.len();
        let key = ["a", "b", "c", "d", "e"][i].to_string();
        let ns = Netns::new("h");
        let peer = format!("u{i}");
        let st = std::process::Command::new("ip")
            .args(["link", "add", "ul0", "netns", &ns.name, "type", "veth"])
            .args(["peer", "name", &peer, "netns", &self.ul.name])
            .status()
            .unwrap();
        assert!(st.success(), "cannot make the underlay veth of host {key}");
        ip(&self.ul, &["link", "set", &peer, "master", "sw", "up"]);
        let addr = if self.v6 {
            format!("fd00:{:x}::{}", self.subnet, i + 1)
        } else {
            format!("10.252.{}.{}", self.subnet, i + 1)
        };
        if self.v6 {
            ip(
                &ns,
                &["addr", "add", &format!("{addr}/64"), "dev", "ul0", "nodad"],
            );
        } else {
            ip(&ns, &["addr", "add", &format!("{addr}/24"), "dev", "ul0"]);
        }
        ip(&ns, &["link", "set", "ul0", "up"]);
        let rt = self.dir.join(format!("rt-{key}"));
        self.hosts.push(Host { key, ns, rt, addr });
    }

    fn host(&self, key: &str) -> &Host {
        self.hosts.iter().find(|h| h.key == key).unwrap()
    }

    fn pw(&self, key: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
        let h = self.host(key);
        let mut all = vec![("PIPEWORK_RUNTIME_DIR", h.rt.to_str().unwrap())];
        all.extend_from_slice(env);
        pipework_env(&h.ns, args, &all)
    }

    fn guest(&self, name: &str) -> Named {
        Named(format!("{}-{name}", self.ns))
    }

    /// The overlay address of host k's guest.
    fn ip_of(k: usize) -> String {
        format!("10.212.0.{}", k + 1)
    }

    /// One guest per host on the stretched bridge (VNI 42), and r1 (on a) ~ r9 (on c).
    fn yaml(&self, extra: &str) -> String {
        let mut y = format!("lab: {}\nhosts:\n", self.lab);
        for h in &self.hosts {
            y.push_str(&format!("  {}: \"{}\"\n", h.key, h.addr));
        }
        y.push_str("guests:\n");
        for h in &self.hosts {
            y.push_str(&format!(
                "  g{k}: {{netns: {p}-g{k}, host: {k}}}\n",
                k = h.key,
                p = self.ns
            ));
        }
        y.push_str(&format!(
            "  r1: {{netns: {p}-r1, host: a}}\n  r9: {{netns: {p}-r9, host: c}}\n",
            p = self.ns
        ));
        y.push_str(&format!("bridges:\n  {}: {{vni: 42}}\nattach:\n", self.br));
        for (k, h) in self.hosts.iter().enumerate() {
            y.push_str(&format!(
                "  - {} g{} {}/24{extra}\n",
                self.br,
                h.key,
                World::ip_of(k)
            ));
        }
        y.push_str(
            "links:\n  - endpoints: [r1:eth1, r9:eth1]\n    ipv4: [10.212.9.1/30, 10.212.9.2/30]\n",
        );
        y
    }

    fn write(&self, name: &str, body: &str) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, body).unwrap();
        p.display().to_string()
    }

    fn apply_all(&self, file: &str) {
        for h in &self.hosts {
            self.pw(&h.key, &["apply", file], &[]).ok();
        }
    }

    fn flood_list(&self, key: &str) -> Vec<String> {
        flood_list(&self.host(key).ns, "pwvx42")
    }
}

/// The unicast addresses of `dev`'s permanent all-zeros (flood) entries in `ns`, sorted.
fn flood_list(ns: &dyn Ns, dev: &str) -> Vec<String> {
    let mut c = cmd_in(ns, "bridge");
    c.args(["fdb", "show", "dev", dev]);
    let out = String::from_utf8_lossy(&c.output().unwrap().stdout).to_string();
    let mut v: Vec<String> = out
        .lines()
        .filter(|l| l.starts_with("00:00:00:00:00:00 dst ") && l.contains("permanent"))
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .collect();
    v.sort();
    v
}

impl Drop for World {
    fn drop(&mut self) {
        for h in &self.hosts {
            let _ = pipework_env(
                &h.ns,
                &["destroy", &self.lab],
                &[("PIPEWORK_RUNTIME_DIR", h.rt.to_str().unwrap())],
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Ok(rd) = std::fs::read_dir("/run/netns") {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().to_string();
                if n.starts_with(&self.ns) {
                    let _ = std::process::Command::new("ip")
                        .args(["netns", "del", &n])
                        .status();
                }
            }
        }
    }
}

fn ping(from: &dyn Ns, to: &str) -> bool {
    ping_once(from, to, 2)
}

/// `ping -M do -s SIZE` once: Ok(()) when answered, Err(output) otherwise.
fn ping_df(from: &dyn Ns, to: &str, size: usize) -> Result<(), String> {
    let mut c = cmd_in(from, "ping");
    c.args([
        "-c",
        "1",
        "-W",
        "2",
        "-M",
        "do",
        "-s",
        &size.to_string(),
        to,
    ]);
    let o = c.output().unwrap();
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ))
    }
}

fn reach_and_fit(v6: bool) {
    let w = World::new(3, v6);
    let befores: Vec<Snapshot> = w.hosts.iter().map(|h| snapshot(&h.ns)).collect();
    let ul_before = snapshot(&w.ul);
    let file = w.write("lab.yaml", &w.yaml(""));
    // The host is found from the machine's addresses (no --host).
    for h in &w.hosts {
        let r = w.pw(&h.key, &["apply", &file, "--json"], &[]);
        r.ok();
        let objects: Vec<String> = r.json()["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["object"].as_str().unwrap().to_string())
            .collect();
        assert!(
            objects.contains(&"vxlan pwvx42".to_string()),
            "{}",
            r.show()
        );
    }
    let mtu = if v6 { 1430 } else { 1450 };
    let (ga, gb, gc) = (w.guest("ga"), w.guest("gb"), w.guest("gc"));
    for g in [&ga, &gb, &gc] {
        assert!(
            ip(g, &["link", "show", "eth1"]).contains(&format!("mtu {mtu}")),
            "{}",
            g.0
        );
        ip(
            g,
            &["link", "set", "lo", "up"], // harmless: already up
        );
        let mut s = cmd_in(g, "sysctl");
        s.args(["-qw", "net.ipv4.icmp_echo_ignore_broadcasts=0"]);
        assert!(s.status().unwrap().success());
    }
    // Every host floods to exactly the two others.
    for h in &w.hosts {
        let mut want: Vec<String> = w
            .hosts
            .iter()
            .filter(|o| o.key != h.key)
            .map(|o| o.addr.clone())
            .collect();
        want.sort();
        assert_eq!(w.flood_list(&h.key), want, "host {}", h.key);
        let vx = ip(&h.ns, &["-d", "link", "show", "pwvx42"]);
        assert!(
            vx.contains("vxlan id 42") && vx.contains(&format!("master {}", w.br)),
            "{vx}"
        );
    }
    // Ping and ARP across hosts, both ways.
    assert!(ping(&ga, &World::ip_of(1)), "a → b");
    assert!(ping(&ga, &World::ip_of(2)), "a → c");
    assert!(ping(&gc, &World::ip_of(1)), "c → b");
    let neigh = ip(&ga, &["neigh", "show", &World::ip_of(1)]);
    let mac_b = must_link(&gb, "eth1").mac;
    assert!(
        neigh.contains(&mac_b),
        "ARP of b's guest on a: {neigh} (want {mac_b})"
    );
    // Broadcast: one echo to the subnet's broadcast, answered from both other hosts.
    let mut b = cmd_in(&ga, "ping");
    b.args(["-b", "-c", "3", "-w", "4", "10.212.0.255"]);
    let out = String::from_utf8_lossy(&b.output().unwrap().stdout).to_string();
    for k in [1, 2] {
        assert!(
            out.contains(&format!("from {}", World::ip_of(k))),
            "broadcast answered by {}: {out}",
            World::ip_of(k)
        );
    }
    // The cross-host link: a VXLAN device in the guest under the endpoint's name.
    let (r1, r9) = (w.guest("r1"), w.guest("r9"));
    let x = ip(&r1, &["-d", "link", "show", "eth1"]);
    assert!(
        x.contains("vxlan id") && x.contains(&format!("remote {}", w.host("c").addr)),
        "{x}"
    );
    assert!(ip(&r9, &["addr", "show", "eth1"]).contains("10.212.9.2/30"));
    assert!(ping(&r1, "10.212.9.2"), "r1 → r9 over the cross-host link");
    // MTU: the largest payload that fits passes (every time), one byte more is refused at once.
    let fits = mtu as usize - 28;
    for (from, to) in [(&ga, World::ip_of(2)), (&r1, "10.212.9.2".to_string())] {
        for _ in 0..3 {
            ping_df(from, &to, fits).unwrap_or_else(|e| panic!("{fits} bytes to {to}: {e}"));
        }
        let e = ping_df(from, &to, fits + 1).expect_err("one byte more must not fit");
        assert!(e.contains("message too long"), "{e}");
    }
    // Idempotent on each host.
    for h in &w.hosts {
        let r = w.pw(&h.key, &["apply", &file, "--json"], &[]);
        r.ok();
        assert_eq!(r.json()["netlink_writes"], 0, "{}", r.show());
        assert_eq!(r.json()["changes"].as_array().unwrap().len(), 0);
    }
    // ls --lab shows the tunnels.
    let ls = w.pw("a", &["ls", "--lab", &w.lab, "--json"], &[]);
    ls.ok();
    let kinds: Vec<(String, String)> = ls.json()["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["kind"].as_str().unwrap().into(),
                o["name"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        kinds.contains(&("vxlan".into(), "pwvx42".into())),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("cross".into(), "r1:eth1~r9:eth1".into())),
        "{kinds:?}"
    );
    // Destroy on each host: its share only, and every namespace as it was.
    for (h, before) in w.hosts.iter().zip(&befores) {
        w.pw(&h.key, &["destroy", &w.lab], &[]).ok();
        assert_unchanged(&h.ns, before, &format!("host {} after destroy", h.key));
    }
    assert_unchanged(&w.ul, &ul_before, "the underlay");
    for g in ["ga", "gb", "gc", "r1", "r9"] {
        assert!(!Path::new(&w.guest(g).ns_path()).exists(), "{g} removed");
    }
}

#[test]
fn three_hosts_reach_each_other_over_an_ipv4_underlay() {
    if !root_or_skip("three_hosts_reach_each_other_over_an_ipv4_underlay") {
        return;
    }
    reach_and_fit(false);
}

#[test]
fn an_ipv6_underlay_works_the_same() {
    if !root_or_skip("an_ipv6_underlay_works_the_same") {
        return;
    }
    reach_and_fit(true);
}

#[test]
fn a_fourth_host_changes_only_flood_entries_and_flows_go_on() {
    if !root_or_skip("a_fourth_host_changes_only_flood_entries_and_flows_go_on") {
        return;
    }
    let mut w = World::new(3, false);
    let file = w.write("lab.yaml", &w.yaml(""));
    w.apply_all(&file);
    let (ga, gb) = (w.guest("ga"), w.guest("gb"));
    assert!(ping(&ga, &World::ip_of(1)));
    let index = must_link(&w.host("a").ns, "pwvx42").index;
    // A ping that runs through the whole change: 40 echoes, 0.1 s apart.
    let mut p = cmd_in(&ga, "ping");
    p.args(["-c", "40", "-i", "0.1", "-W", "1", &World::ip_of(1)]);
    p.stdout(std::process::Stdio::piped());
    let running = p.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    w.add_host();
    let file4 = w.write("lab4.yaml", &w.yaml(""));
    w.pw("d", &["apply", &file4], &[]).ok();
    for key in ["a", "b", "c"] {
        let r = w.pw(key, &["apply", &file4, "--json"], &[]);
        r.ok();
        let changes = r.json()["changes"].as_array().unwrap().clone();
        assert_eq!(
            changes.len(),
            1,
            "only the flood list on {key}\n{}",
            r.show()
        );
        assert_eq!(changes[0]["object"], "vxlan pwvx42", "{}", r.show());
        assert_eq!(changes[0]["field"], "peers", "{}", r.show());
        assert_eq!(r.json()["netlink_writes"], 1, "{}", r.show());
    }
    let out = running.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let received: u32 = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("ping's summary: {text}"));
    assert!(
        received >= 39,
        "a running ping lost more than one packet: {text}"
    );
    assert_eq!(
        must_link(&w.host("a").ns, "pwvx42").index,
        index,
        "the VXLAN port was changed in place"
    );
    assert_eq!(w.flood_list("a").len(), 3);
    assert!(ping(&w.guest("gd"), &World::ip_of(0)), "d → a");
    assert!(ping(&gb, &World::ip_of(3)), "b → d");
}

#[test]
fn failed_and_killed_applies_roll_the_vxlan_steps_back() {
    if !root_or_skip("failed_and_killed_applies_roll_the_vxlan_steps_back") {
        return;
    }
    let w = World::new(3, false);
    let file = w.write("lab.yaml", &w.yaml(""));
    let a = &w.host("a").ns;
    let before = snapshot(a);
    // Host a's share: 2 namespaces, the bridge, its VXLAN port, an attachment, the cross end.
    for fail in ["1", "3", "4", "last"] {
        let r = w.pw(
            "a",
            &["apply", &file],
            &[("PIPEWORK_TEST_LAB_FAIL_AFTER", fail)],
        );
        r.fails(1, "injected");
        r.clean_error();
        assert_unchanged(a, &before, &format!("host a after a failure at {fail}"));
        assert!(!w.guest("ga").ns_path().exists() && !w.guest("r1").ns_path().exists());
    }
    for k in [3, 5, 8] {
        let r = w.pw(
            "a",
            &["apply", &file],
            &[("PIPEWORK_TEST_KILL_AFTER_MSG", &k.to_string())],
        );
        assert_eq!(r.code, -9, "not killed after {k} changes\n{}", r.show());
        w.pw("a", &["destroy", &w.lab], &[]).ok();
        assert_unchanged(a, &before, &format!("host a after a kill at {k}"));
    }
    // An in-place flood-list change rolled back: the entries are as before.
    w.apply_all(&file);
    let flood = w.flood_list("a");
    let without_c = w
        .yaml("")
        .replace(&format!("  - {} gc {}/24\n", w.br, World::ip_of(2)), "");
    let f2 = w.write("lab2.yaml", &without_c);
    let plan = w.pw("a", &["plan", &f2], &[]);
    plan.ok();
    assert!(
        plan.stdout.contains("~ vxlan pwvx42 peers"),
        "{}",
        plan.show()
    );
    let r = w.pw(
        "a",
        &["apply", &f2],
        &[("PIPEWORK_TEST_LAB_FAIL_AFTER", "last")],
    );
    r.fails(1, "injected");
    assert_eq!(w.flood_list("a"), flood, "the flood list rolled back");
    w.pw("a", &["apply", &f2], &[]).ok();
    assert_eq!(w.flood_list("a"), vec![w.host("b").addr.clone()]);
}

#[test]
fn a_docker_guest_joins_the_stretched_bridge() {
    let Some(dh) = docker_or_skip("a_docker_guest_joins_the_stretched_bridge") else {
        return;
    };
    let w = World::new(2, false);
    let c = Container::run(&dh);
    let y = format!(
        "lab: {lab}\nhosts: {{a: {a}, b: {b}}}\nguests:\n  ga: {{netns: {p}-ga, host: a}}\n  web: {{spec: \"docker:{name}\", host: b}}\nbridges: {{{br}: {{}}}}\nattach:\n  - {br} ga 10.212.0.1/24\n  - {br} web 10.212.0.2/24\n",
        lab = w.lab,
        a = w.host("a").addr,
        b = w.host("b").addr,
        p = w.ns,
        name = c.name,
        br = w.br
    );
    let file = w.write("lab.yaml", &y);
    w.apply_all(&file);
    assert!(
        docker_ping(&c, "10.212.0.1"),
        "the container on b → a's guest"
    );
    assert!(
        ping(&w.guest("ga"), "10.212.0.2"),
        "a's guest → the container"
    );
    let l = must_link(&c, "eth1");
    assert_eq!(l.mtu, 1450);
}

#[test]
fn the_stretch_command_changes_its_flood_list_in_place() {
    if !root_or_skip("the_stretch_command_changes_its_flood_list_in_place") {
        return;
    }
    let h = Netns::new("h");
    let rt = std::env::temp_dir().join(format!("pwt-strt-{}", rand_hex(8)));
    let env = [("PIPEWORK_RUNTIME_DIR", rt.to_str().unwrap())];
    ip(
        &h,
        &["link", "add", "ul0", "type", "veth", "peer", "name", "ul1"],
    );
    ip(&h, &["addr", "add", "10.252.250.1/24", "dev", "ul0"]);
    for l in ["ul0", "ul1"] {
        ip(&h, &["link", "set", l, "up"]);
    }
    ip(&h, &["link", "add", "br9", "type", "bridge"]);
    let before = snapshot(&h);
    let peers = |h: &Netns| flood_list(h, "pwvx77");
    // `pipework stretch br9 --vni 77 --remote R…`, with --json when asked.
    let stretch = |remotes: &[&str], json: bool| {
        let mut a = vec!["stretch", "br9", "--vni", "77"];
        for r in remotes {
            a.extend(["--remote", r]);
        }
        if json {
            a.push("--json");
        }
        pipework_env(&h, &a, &env)
    };
    for (args, needle) in [
        (
            vec!["--vni", "0", "--remote", "10.252.250.2"],
            "1 to 16777215",
        ),
        (
            vec!["--vni", "16777216", "--remote", "10.252.250.2"],
            "1 to 16777215",
        ),
        (vec!["--vni", "77"], "--remote"),
        (vec!["--remote", "10.252.250.2"], "--vni"),
    ] {
        let mut a = vec!["stretch", "br9"];
        a.extend(args);
        pipework_env(&h, &a, &env).fails(2, needle).clean_error();
        assert_unchanged(&h, &before, "a refused stretch");
    }
    let r = stretch(&["10.252.250.2", "10.252.250.3"], false);
    r.ok();
    assert_eq!(peers(&h), ["10.252.250.2", "10.252.250.3"]);
    let vx = must_link(&h, "pwvx77");
    assert_eq!(vx.master.as_deref(), Some("br9"));
    assert_eq!(vx.mtu, 1450);
    let r = stretch(&["10.252.250.2", "10.252.250.4"], true);
    r.ok();
    assert_eq!(
        r.json()["changes"].as_array().unwrap().len(),
        1,
        "{}",
        r.show()
    );
    assert_eq!(peers(&h), ["10.252.250.2", "10.252.250.4"]);
    assert_eq!(must_link(&h, "pwvx77").index, vx.index);
    pipework_env(&h, &["detach", "br9"], &env).ok();
    assert_unchanged(&h, &before, "after detach br9");
    // A bridge stretch made goes with it; one deleted by hand leaves a port gc removes.
    pipework_env(
        &h,
        &["stretch", "br8", "--vni", "78", "--remote", "10.252.250.2"],
        &env,
    )
    .ok();
    ip(&h, &["link", "del", "br8"]);
    assert!(link(&h, "pwvx78").is_some());
    let gc = pipework_env(&h, &["gc"], &env);
    gc.ok();
    assert!(gc.stdout.contains("delete vxlan pwvx78"), "{}", gc.show());
    assert_unchanged(&h, &before, "after gc");
    let _ = std::fs::remove_dir_all(&rt);
}

#[test]
fn refusals_and_warnings() {
    if !root_or_skip("refusals_and_warnings") {
        return;
    }
    let w = World::new(3, false);
    let a = &w.host("a").ns;
    let before = snapshot(a);
    let file = w.write("lab.yaml", &w.yaml(""));
    w.pw("a", &["apply", &file, "--host", "zz"], &[])
        .fails(2, "host 'zz'")
        .clean_error();
    let typo = w.yaml("").replace("host: c}", "host: cc}");
    let f2 = w.write("typo.yaml", &typo);
    w.pw("a", &["apply", &f2], &[])
        .fails(2, "did you mean 'c'")
        .clean_error();
    // A machine with none of the hosts' addresses must be told which one it is.
    let stranger = Netns::new("x");
    let rt = w.dir.join("rt-x");
    pipework_env(
        &stranger,
        &["apply", &file],
        &[("PIPEWORK_RUNTIME_DIR", rt.to_str().unwrap())],
    )
    .fails(2, "--host")
    .clean_error();
    assert_unchanged(a, &before, "host a after the refusals");
    assert!(!w.guest("ga").ns_path().exists());
    // An explicit MTU that cannot fit: applied, with a warning.
    let big = w.write("big.yaml", &w.yaml(" --mtu 1500"));
    let r = w.pw("a", &["apply", &big, "--host", "a"], &[]);
    r.ok();
    assert!(
        r.stderr.contains("warning") && r.stderr.contains("does not fit"),
        "{}",
        r.show()
    );
    assert!(ip(&w.guest("ga"), &["link", "show", "eth1"]).contains("mtu 1500"));
}
