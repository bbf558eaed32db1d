//! Declarative labs: plan / apply / destroy / ls --lab / graph on named namespaces, the
//! convergence of an edited file, rollback of a failed apply (first, middle and last change of
//! a 100-guest lab, and an in-place change), a SIGKILL mid-apply then destroy, and refusals.
//! Subnets 10.211.x.x.

mod common;
use common::*;

use std::path::{Path, PathBuf};

/// A lab file in the test's own directory, and the unique names a lab needs.
struct LabFiles {
    dir: PathBuf,
    /// Lab name: `t` + 6 hex (unique per test).
    lab: String,
    /// Prefix of the namespaces the lab makes (unique).
    ns: String,
}

impl LabFiles {
    fn new() -> LabFiles {
        let dir = std::env::temp_dir().join(format!("pwt-lab-{}", rand_hex(8)));
        std::fs::create_dir_all(&dir).unwrap();
        LabFiles {
            dir,
            lab: format!("t{}", rand_hex(6)),
            ns: format!("pwt-{}", rand_hex(6)),
        }
    }

    fn write(&self, name: &str, body: &str) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, body).unwrap();
        p.display().to_string()
    }
}

impl Drop for LabFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        // Namespaces a failed test's lab left behind.
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

fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

fn ping(from: &dyn Ns, to: &str) -> bool {
    let mut c = cmd_in(from, "ping");
    c.args(["-c", "1", "-W", "2", to]);
    c.output().map(|o| o.status.success()).unwrap_or(false)
}

fn small_lab(f: &LabFiles, br: &str) -> String {
    format!(
        r#"lab: {lab}
guests:
  r1: {{netns: {ns}-r1}}
  r2: {{netns: {ns}-r2}}
  h1: {{netns: {ns}-h1}}
bridges:
  {br}: {{mtu: 9000}}
attach:
  - {br} h1 10.211.0.5/24@10.211.0.1
  - {br} r1 10.211.0.1/24
links:
  - endpoints: [r1:eth9, r2:eth9]
    ipv4: [10.211.9.1/30, 10.211.9.2/30]
    mtu: 9000
    rate: 10mbit
routes:
  r2: ["10.211.0.0/24 via 10.211.9.1"]
"#,
        lab = f.lab,
        ns = f.ns
    )
}

#[test]
fn plan_apply_noop_ls_graph_destroy() {
    if !root_or_skip("plan_apply_noop_ls_graph_destroy") {
        return;
    }
    let host = Netns::new("h");
    let f = LabFiles::new();
    let br = format!("pwb{}", rand_hex(6));
    let file = f.write("lab.yaml", &small_lab(&f, &br));
    let before = snapshot(&host);

    let plan = pipework(&host, &["plan", &file]);
    plan.ok();
    for want in [
        format!("+ netns {}-r1", f.ns),
        format!("+ bridge {br}: Linux bridge, mtu 9000"),
        "+ attach h1:eth1: on".to_string(),
        "+ link r1:eth9~r2:eth9".to_string(),
        "+ route r2 10.211.0.0/24 via 10.211.9.1".to_string(),
        "8 to create, 0 to change, 0 to remove".to_string(),
    ] {
        assert!(plan.stdout.contains(&want), "{want}\n{}", plan.show());
    }
    // A plan changes nothing.
    assert_unchanged(&host, &before, "plan");
    assert!(!netns_exists(&format!("{}-r1", f.ns)));

    let applied = pipework(&host, &["apply", &file, "--json"]);
    applied.ok();
    let j = applied.json();
    assert_eq!(
        j["changes"].as_array().unwrap().len(),
        8,
        "{}",
        applied.show()
    );
    assert!(j["netlink_writes"].as_u64().unwrap() > 0);

    // What the lab says is there.
    let (r1, r2, h1) = (
        Named(format!("{}-r1", f.ns)),
        Named(format!("{}-r2", f.ns)),
        Named(format!("{}-h1", f.ns)),
    );
    assert!(ip(&r2, &["addr", "show", "eth9"]).contains("10.211.9.2/30"));
    assert!(ip(&r2, &["link", "show", "eth9"]).contains("mtu 9000"));
    assert!(ip(&r2, &["route"]).contains("10.211.0.0/24 via 10.211.9.1 dev eth9"));
    assert!(ip(&h1, &["route"]).contains("default via 10.211.0.1 dev eth1"));
    assert!(ip(&host, &["-d", "link", "show", &br]).contains("mtu 9000"));
    let tc = {
        let mut c = cmd_in(&r1, "tc");
        c.args(["qdisc", "show", "dev", "eth9"]);
        String::from_utf8_lossy(&c.output().unwrap().stdout).to_string()
    };
    assert!(tc.contains("tbf") && tc.contains("rate 10Mbit"), "{tc}");
    // The lab's namespaces are visible machine-wide, as `ip netns add` makes them.
    let list = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains(&r1.0));
    // Traffic flows: across the link, and over the bridge.
    ip(&r1, &["link", "show", "eth9"]);
    assert!(ping(&r2, "10.211.9.1"), "r2 → r1 over the link");
    assert!(ping(&h1, "10.211.0.1"), "h1 → r1 over the bridge");
    // Stable MACs: the one plan showed is the one made.
    let mac_line = plan
        .stdout
        .lines()
        .find(|l| l.starts_with("+ attach h1:eth1"))
        .unwrap();
    let mac = mac_line.rsplit("mac ").next().unwrap().trim();
    assert!(ip(&h1, &["link", "show", "eth1"]).contains(mac), "{mac}");

    // Converged: nothing to plan, a re-apply makes no netlink write.
    let again = pipework(&host, &["plan", &file]);
    again.ok();
    assert!(again.stdout.contains("no changes"), "{}", again.show());
    let noop = pipework(&host, &["apply", &file, "--json"]);
    noop.ok();
    assert_eq!(noop.json()["netlink_writes"], 0, "{}", noop.show());
    assert_eq!(noop.json()["changes"].as_array().unwrap().len(), 0);

    let ls = pipework(&host, &["ls", "--lab", &f.lab, "--json"]);
    ls.ok();
    let objs = ls.json()["objects"].as_array().unwrap().clone();
    assert_eq!(objs.len(), 8, "{}", ls.show());
    assert!(objs.iter().all(|o| o["state"] == "alive"), "{}", ls.show());

    let dot = pipework(&host, &["graph", &file, "--format", "dot"]);
    dot.ok();
    assert!(
        dot.stdout.contains("graph") && dot.stdout.contains(&br),
        "{}",
        dot.show()
    );
    let mm = pipework(&host, &["graph", &file, "--format", "mermaid"]);
    mm.ok();
    assert!(mm.stdout.contains("flowchart"), "{}", mm.show());
    pipework(&host, &["graph", &file, "--format", "png"]).fails(2, "png");

    // Destroy works from the name alone, and leaves nothing the lab made.
    let d = pipework(&host, &["destroy", &f.lab]);
    d.ok();
    for n in [&r1.0, &r2.0, &h1.0] {
        assert!(!netns_exists(n), "{n} left behind");
    }
    assert_unchanged(&host, &before, "destroy");
    pipework(&host, &["destroy", &f.lab]).fails(1, "no lab");
    pipework(&host, &["ls", "--lab", &f.lab]).fails(1, "no lab");
}

/// Snapshots of the guest namespaces a lab file names (lab-made ones by name).
fn guest_snapshots(names: &[String]) -> Vec<Snapshot> {
    names.iter().map(|n| snapshot(&Named(n.clone()))).collect()
}

#[test]
fn an_edited_file_converges_to_what_a_fresh_apply_makes() {
    if !root_or_skip("an_edited_file_converges_to_what_a_fresh_apply_makes") {
        return;
    }
    let host = Netns::new("h");
    let f = LabFiles::new();
    let br = format!("pwb{}", rand_hex(6));
    let v1 = small_lab(&f, &br);
    // Edited: h1's address changes, the link's MTU changes, a link is added, the route is
    // removed.
    let v2 = v1
        .replace("10.211.0.5/24@10.211.0.1", "10.211.0.7/24@10.211.0.1")
        .replace("    mtu: 9000\n", "    mtu: 1400\n")
        .replace(
            "routes:\n  r2: [\"10.211.0.0/24 via 10.211.9.1\"]\n",
            "  - endpoints: [h1:eth5, r2:eth5]\n    ipv4: [10.211.5.1/30, 10.211.5.2/30]\n",
        );
    assert_ne!(v1, v2);
    let f1 = f.write("v1.yaml", &v1);
    let f2 = f.write("v2.yaml", &v2);
    pipework(&host, &["apply", &f1]).ok();
    let r2 = Named(format!("{}-r2", f.ns));
    let idx_before = ip(&r2, &["-o", "link", "show", "eth9"]);

    let plan = pipework(&host, &["plan", &f2, "--json"]);
    plan.ok();
    let lines: Vec<String> = plan.json()["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} {} {}",
                c["op"].as_str().unwrap(),
                c["object"].as_str().unwrap(),
                c["field"].as_str().unwrap_or("")
            )
            .trim()
            .to_string()
        })
        .collect();
    assert_eq!(
        lines,
        vec![
            "~ attach h1:eth1 address".to_string(),
            "~ attach h1:eth1 gateway".to_string(),
            "~ link r1:eth9~r2:eth9 mtu".to_string(),
            "+ link h1:eth5~r2:eth5".to_string(),
            "- route r2 10.211.0.0/24 via 10.211.9.1".to_string(),
        ],
        "{}",
        plan.show()
    );
    let text = pipework(&host, &["plan", &f2]);
    assert!(
        text.stdout
            .contains("address: 10.211.0.5/24 → 10.211.0.7/24"),
        "{}",
        text.show()
    );
    assert!(text.stdout.contains("mtu: 9000 → 1400"), "{}", text.show());

    pipework(&host, &["apply", &f2]).ok();
    // In place: the link kept its ifindex.
    let idx_after = ip(&r2, &["-o", "link", "show", "eth9"]);
    assert_eq!(
        idx_before.split(':').next(),
        idx_after.split(':').next(),
        "the link was re-created instead of changed in place"
    );
    pipework(&host, &["plan", &f2]).ok();
    let noop = pipework(&host, &["apply", &f2, "--json"]);
    assert_eq!(noop.json()["netlink_writes"], 0, "{}", noop.show());

    let names: Vec<String> = ["r1", "r2", "h1"]
        .iter()
        .map(|g| format!("{}-{g}", f.ns))
        .collect();
    let converged = guest_snapshots(&names);
    // The same file applied fresh makes the same namespaces.
    pipework(&host, &["destroy", &f2]).ok();
    pipework(&host, &["apply", &f2]).ok();
    let fresh = guest_snapshots(&names);
    assert_eq!(converged, fresh);
    pipework(&host, &["destroy", &f2]).ok();
}

/// A lab of `n` existing guests (namespaces made by the test) on two bridges.
fn big_lab(f: &LabFiles, guests: &[Netns], br: &str) -> String {
    let mut s = format!("lab: {}\nguests:\n", f.lab);
    for (i, g) in guests.iter().enumerate() {
        s.push_str(&format!("  g{i}: {{netns: {}}}\n", g.name));
    }
    s.push_str(&format!(
        "bridges:\n  {br}a: {{}}\n  {br}b: {{}}\nattach:\n"
    ));
    for i in 0..guests.len() {
        let b = if i % 2 == 0 { "a" } else { "b" };
        s.push_str(&format!(
            "  - {br}{b} g{i} 10.211.{}.{}/16\n",
            100 + i / 200,
            1 + i % 200
        ));
    }
    s.push_str("links:\n");
    for i in (0..guests.len().min(10)).step_by(2) {
        s.push_str(&format!(
            "  - endpoints: [g{i}:eth7, g{}:eth7]\n    ipv4: [10.212.{i}.1/30, 10.212.{i}.2/30]\n",
            i + 1
        ));
    }
    s
}

fn rollback_at(fail: &str) {
    let host = Netns::new("h");
    let guests: Vec<Netns> = (0..100).map(|_| Netns::new("g")).collect();
    let f = LabFiles::new();
    let br = format!("pwr{}", rand_hex(5));
    let file = f.write("lab.yaml", &big_lab(&f, &guests, &br));
    let host_before = snapshot(&host);
    let before: Vec<Snapshot> = guests.iter().map(|g| snapshot(g)).collect();
    let r = pipework_env(
        &host,
        &["apply", &file],
        &[("PIPEWORK_TEST_LAB_FAIL_AFTER", fail)],
    );
    r.fails(1, "injected");
    r.clean_error();
    assert_unchanged(
        &host,
        &host_before,
        &format!("host after a failure at {fail}"),
    );
    for (g, b) in guests.iter().zip(&before) {
        assert_unchanged(g, b, &format!("guest after a failure at {fail}"));
    }
    // Nothing recorded: the lab is as if never applied, and a real apply works.
    pipework(&host, &["ls", "--lab", &f.lab]).fails(1, "no lab");
    pipework(&host, &["apply", &file]).ok();
    pipework(&host, &["destroy", &f.lab]).ok();
    assert_unchanged(&host, &host_before, "host after destroy");
    for (g, b) in guests.iter().zip(&before) {
        assert_unchanged(g, b, "guest after destroy");
    }
}

// 2 bridges + 100 attachments + 5 links: changes 1, 50 and the last.
#[test]
fn rollback_after_the_first_change_of_a_100_guest_apply() {
    if root_or_skip("rollback_after_the_first_change_of_a_100_guest_apply") {
        rollback_at("1");
    }
}

#[test]
fn rollback_after_a_middle_change_of_a_100_guest_apply() {
    if root_or_skip("rollback_after_a_middle_change_of_a_100_guest_apply") {
        rollback_at("50");
    }
}

#[test]
fn rollback_after_the_last_change_of_a_100_guest_apply() {
    if root_or_skip("rollback_after_the_last_change_of_a_100_guest_apply") {
        rollback_at("last");
    }
}

#[test]
fn rollback_of_in_place_changes() {
    if !root_or_skip("rollback_of_in_place_changes") {
        return;
    }
    let host = Netns::new("h");
    let f = LabFiles::new();
    let br = format!("pwb{}", rand_hex(6));
    let v1 = small_lab(&f, &br);
    let v2 = v1
        .replace("10.211.0.5/24@10.211.0.1", "10.211.0.7/24@10.211.0.1")
        .replace("    mtu: 9000\n", "    mtu: 1400\n")
        .replace("rate: 10mbit", "rate: 20mbit")
        .replace("bridges:\n", "bridges:\n  extra0: {}\n");
    let f1 = f.write("v1.yaml", &v1);
    let f2 = f.write("v2.yaml", &v2);
    pipework(&host, &["apply", &f1]).ok();
    let names: Vec<String> = ["r1", "r2", "h1"]
        .iter()
        .map(|g| format!("{}-{g}", f.ns))
        .collect();
    let before = guest_snapshots(&names);
    let host_before = snapshot(&host);
    let tc_of = |n: &str| {
        let mut c = cmd_in(&Named(n.to_string()), "tc");
        c.args(["qdisc", "show", "dev", "eth9"]);
        String::from_utf8_lossy(&c.output().unwrap().stdout).to_string()
    };
    let tc_before = tc_of(&names[0]);
    let plan = pipework(&host, &["plan", &f2]);
    assert!(
        plan.stdout.contains("rate: 10mbit → 20mbit"),
        "{}",
        plan.show()
    );
    pipework_env(
        &host,
        &["apply", &f2],
        &[("PIPEWORK_TEST_LAB_FAIL_AFTER", "last")],
    )
    .fails(1, "injected");
    assert_eq!(
        guest_snapshots(&names),
        before,
        "in-place changes left behind"
    );
    assert_unchanged(&host, &host_before, "host after the failed in-place apply");
    assert_eq!(tc_of(&names[0]), tc_before, "the qdisc was not restored");
    // The state is still v1's: nothing to plan for it.
    assert!(pipework(&host, &["plan", &f1])
        .stdout
        .contains("no changes"));
    pipework(&host, &["destroy", &f.lab]).ok();
}

#[test]
fn sigkill_during_apply_then_destroy_leaves_nothing() {
    if !root_or_skip("sigkill_during_apply_then_destroy_leaves_nothing") {
        return;
    }
    let host = Netns::new("h");
    let guests: Vec<Netns> = (0..20).map(|_| Netns::new("g")).collect();
    let f = LabFiles::new();
    let br = format!("pwk{}", rand_hex(5));
    let file = f.write("lab.yaml", &big_lab(&f, &guests, &br));
    let host_before = snapshot(&host);
    let before: Vec<Snapshot> = guests.iter().map(|g| snapshot(g)).collect();
    for (k, then) in [(7, "destroy"), (31, "apply"), (45, "gc")] {
        let r = pipework_env(
            &host,
            &["apply", &file],
            &[("PIPEWORK_TEST_KILL_AFTER_MSG", &k.to_string())],
        );
        assert_eq!(r.code, -9, "not killed after {k} changes\n{}", r.show());
        let ls = pipework(&host, &["ls", "--lab", &f.lab]);
        assert!(
            ls.stdout.contains("incomplete"),
            "a killed apply shows as incomplete\n{}",
            ls.show()
        );
        match then {
            "destroy" => {
                pipework(&host, &["destroy", &f.lab]).ok();
            }
            "gc" => {
                pipework(&host, &["gc"]).ok();
                pipework(&host, &["ls", "--lab", &f.lab]).fails(1, "no lab");
            }
            _ => {
                let a = pipework(&host, &["apply", &file]);
                a.ok();
                assert!(a.stdout.contains("rolled back"), "{}", a.show());
                pipework(&host, &["destroy", &file]).ok();
            }
        }
        assert_unchanged(&host, &host_before, &format!("host after a kill at {k}"));
        for (g, b) in guests.iter().zip(&before) {
            assert_unchanged(g, b, &format!("guest after a kill at {k}"));
        }
    }
}

#[test]
fn refusals_exit_2_and_touch_nothing() {
    if !root_or_skip("refusals_exit_2_and_touch_nothing") {
        return;
    }
    let host = Netns::new("h");
    let g = Netns::new("g");
    let f = LabFiles::new();
    let before = snapshot(&host);
    let gbefore = snapshot(&g);
    let cases: Vec<(String, &str)> = vec![
        (
            format!("lab: {}\nguests: {{a: {{netns: {}}}}}\nattachh: []\n", f.lab, g.name),
            "did you mean `attach`",
        ),
        (
            format!("lab: {}\nguests:\n  a: [1\n", f.lab),
            "line 3",
        ),
        (
            format!("lab: {}\nguests: {{a: {{netns: {}}}}}\nattach: ['pwtbr0 b 10.211.1.1/24']\n", f.lab, g.name),
            "guest 'b' is not defined",
        ),
        (
            format!(
                "lab: {}\nguests: {{a: {{netns: {}}}}}\nattach: ['pwtbr0 -i eth1 a 10.211.1.1/24', 'pwtbr0 -i eth1 a 10.211.1.2/24']\n",
                f.lab, g.name
            ),
            "used twice",
        ),
        (
            format!(
                "lab: {}\nguests: {{a: {{netns: {}}}}}\nattach: ['pwtbr0 a 10.211.1.1/24', 'pwtbr0 a 10.211.1.1/24']\n",
                f.lab, g.name
            ),
            "given twice",
        ),
        (
            format!("lab: {}\nguests: {{a: 999999999}}\nattach: ['pwtbr0 a 10.211.1.1/24']\n", f.lab),
            "is not running",
        ),
        ("lab: Bad_Name\n".to_string(), "lab name"),
    ];
    for (i, (body, want)) in cases.iter().enumerate() {
        let file = f.write(&format!("bad{i}.yaml"), body);
        for cmd in ["plan", "apply"] {
            let r = pipework(&host, &[cmd, &file]);
            r.fails(2, want);
            r.clean_error();
        }
    }
    // A file of more than 1,024 ports on one bridge.
    let mut big = format!(
        "lab: {}\nguests: {{a: {{netns: {}}}}}\nattach:\n",
        f.lab, g.name
    );
    for i in 0..1025 {
        big.push_str(&format!("  - pwtbr0 -i e{i} a 0/0\n"));
    }
    let file = f.write("big.yaml", &big);
    pipework(&host, &["apply", &file]).fails(2, "at most 1024");
    pipework(&host, &["plan", "/nonexistent/lab.yaml"]).fails(2, "cannot read lab file");
    pipework(&host, &["destroy", "Not A Lab"]).fails(2, "neither a lab name");
    assert_unchanged(&host, &before, "refusals");
    assert_unchanged(&g, &gbefore, "refusals (guest)");
    assert!(!test_runtime_dir()
        .join("labs")
        .join(format!("{}.json", f.lab))
        .exists());
}
