//! The lifecycle commands: `pipework ls [--json]`, `pipework detach GUEST [-i IF]`,
//! `pipework detach --all` and `pipework gc [--dry-run]`, checked against the kernel.
//!
//! Each test has its own host namespace and guests, and its own runtime directory
//! (`PIPEWORK_RUNTIME_DIR`, where the attachment records live), given to every pipework run
//! and removed at the end ([`World`]): tests never see each other's records. Subnets
//! 10.233.x.x / fd00:233:x::.

mod common;
use common::*;

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// A host namespace, this test's runtime directory and (optionally) a private Open vSwitch.
/// Fields drop in order: OVS daemons, then the runtime directory (stopping anything the runs
/// left running, then removing it), then the namespace with everything in it.
struct World {
    ovs: Option<Ovs>,
    rt: RuntimeDir,
    host: Netns,
}

impl World {
    fn new() -> World {
        World {
            ovs: None,
            rt: RuntimeDir::new(),
            host: Netns::new("h"),
        }
    }

    fn with_ovs() -> World {
        let host = Netns::new("h");
        let ovs = Ovs::start(&host);
        World {
            ovs: Some(ovs),
            rt: RuntimeDir::new(),
            host,
        }
    }

    fn opts(&self, as_user: Option<u32>, bin: Option<std::path::PathBuf>) -> Opts<'_> {
        let mut env = vec![("PIPEWORK_RUNTIME_DIR", self.rt.path())];
        if let Some(o) = &self.ovs {
            env.push(("OVS_RUNDIR", o.rundir()));
        }
        Opts {
            env,
            as_user,
            bin,
            stdin: None,
        }
    }

    /// pipework in the host namespace, with this test's runtime directory.
    fn pw(&self, args: &[&str]) -> Run {
        pipework_with(&self.host, args, &self.opts(None, None))
    }

    /// An attach with `--json` that must succeed; its report.
    fn attach(&self, args: &[&str]) -> Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let j = self.pw(&full).ok().json();
        assert_eq!(j["dry_run"], false, "{j}");
        j
    }

    /// `pipework ls --json`: must exit 0 and print an array.
    fn ls(&self) -> Vec<Value> {
        ls_array(self.pw(&["ls", "--json"]).ok())
    }

    /// `detach`/`gc` with `--json`: must exit 0; `(dry_run, actions)`.
    fn actions(&self, args: &[&str]) -> (bool, Vec<String>) {
        let mut full = args.to_vec();
        full.push("--json");
        actions_of(self.pw(&full).ok())
    }

    fn attachments_dir(&self) -> std::path::PathBuf {
        self.rt.dir.join("attachments")
    }
}

fn ls_array(r: &Run) -> Vec<Value> {
    match r.json() {
        Value::Array(v) => v,
        other => panic!("pipework ls --json: expected an array, got {other}"),
    }
}

fn actions_of(r: &Run) -> (bool, Vec<String>) {
    let j = r.json();
    let obj = j
        .as_object()
        .unwrap_or_else(|| panic!("detach/gc --json prints one object: {j}"));
    let keys: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from(["actions", "dry_run"]),
        "detach/gc --json keys: {j}"
    );
    let dry = j["dry_run"]
        .as_bool()
        .unwrap_or_else(|| panic!("dry_run is a bool: {j}"));
    let acts = j["actions"]
        .as_array()
        .unwrap_or_else(|| panic!("actions is an array: {j}"))
        .iter()
        .map(|a| {
            a.as_str()
                .unwrap_or_else(|| panic!("actions are strings: {j}"))
                .to_string()
        })
        .collect();
    (dry, acts)
}

/// The `ls` entry of the attachment with this namespace inode and guest interface.
fn entry<'a>(ls: &'a [Value], inode: u64, ifname: &str) -> Option<&'a Value> {
    ls.iter()
        .find(|e| e["netns_inode"].as_u64() == Some(inode) && e["ifname"] == ifname)
}

/// Same, for the attachment an attach `--json` report describes.
fn entry_of<'a>(ls: &'a [Value], rep: &Value) -> Option<&'a Value> {
    entry(
        ls,
        rep["netns"]["inode"].as_u64().expect("netns.inode"),
        rep["guest_ifname"].as_str().expect("guest_ifname"),
    )
}

/// What `ls --json` must say about the attachment of report `rep` (no DHCP client kept).
fn expected_entry(rep: &Value, state: &str) -> Value {
    json!({
        "state": state,
        "guest": rep["guest"]["spec"],
        "engine": rep["guest"]["engine"],
        "guest_id": rep["guest"]["id"],
        "guest_name": rep["guest"]["name"],
        "guest_pid": rep["guest"]["pid"],
        "netns_inode": rep["netns"]["inode"],
        "kind": rep["kind"],
        "host_interface": rep["host_interface"],
        "host_ifname": rep["host_ifname"],
        "ifname": rep["guest_ifname"],
        "address": rep["addresses"].get(0).cloned().unwrap_or(Value::Null),
        "addresses": rep["addresses"],
        "mac": rep["mac"],
        "vlan": rep["vlan"],
        "pid": null,
        "client": null,
        "pidfile": null,
    })
}

/// `ls` has an entry for `rep`, equal field for field to what the report said, in `state`.
fn assert_listed(ls: &[Value], rep: &Value, state: &str) {
    let e = entry_of(ls, rep).unwrap_or_else(|| {
        panic!(
            "ls lists no attachment for {} {}: {ls:#?}",
            rep["guest"]["spec"], rep["guest_ifname"]
        )
    });
    assert_eq!(
        e,
        &expected_entry(rep, state),
        "ls entry vs the attach's --json report"
    );
}

fn assert_not_listed(ls: &[Value], rep: &Value, context: &str) {
    assert!(
        entry_of(ls, rep).is_none(),
        "{context}: ls still lists {} {}: {ls:#?}",
        rep["guest"]["spec"],
        rep["guest_ifname"]
    );
}

/// A copy of the binary that uid 65534 can surely execute, removed on drop.
struct BinCopy(std::path::PathBuf);

impl BinCopy {
    fn new() -> BinCopy {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(unique("bin"));
        std::fs::create_dir(&dir).unwrap();
        let c = BinCopy(dir.clone());
        let bin = dir.join("pipework");
        std::fs::copy(BIN, &bin).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        c
    }
    fn bin(&self) -> std::path::PathBuf {
        self.0.join("pipework")
    }
}

impl Drop for BinCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Waits (up to 5 s) until the kernel has removed these host links: a namespace is destroyed
/// asynchronously, and its veth pairs with it, some time after its last user went away.
fn wait_links_gone(host: &Netns, names: &[String]) {
    assert!(
        wait_until(Duration::from_secs(5), || names
            .iter()
            .all(|n| link(host, n).is_none())),
        "the kernel removed {names:?} with their guests' namespaces; links now: {:?}",
        link_names(host)
    );
}

/// A bridge the test (the "user") made itself, up, with an address.
fn user_bridge(host: &Netns, name: &str, cidr: &str) {
    ip(host, &["link", "add", "name", name, "type", "bridge"]);
    ip(host, &["addr", "add", cidr, "dev", name]);
    ip(host, &["link", "set", name, "up"]);
}

// ---------------------------------------------------------------------------------------------
// ls
// ---------------------------------------------------------------------------------------------

#[test]
fn ls_with_no_records_at_all() {
    need_root!();
    let w = World::new();
    assert!(
        !w.rt.dir.exists(),
        "the runtime directory does not exist yet"
    );
    assert_eq!(w.ls(), Vec::<Value>::new(), "no attachments, no entries");
    let r = w.pw(&["ls"]);
    r.ok();
    let lines: Vec<&str> = r.stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "only the header line: {:?}", r.stdout);
    assert!(
        lines[0].contains("STATE") && lines[0].contains("GUEST"),
        "header: {:?}",
        lines[0]
    );
    assert_nothing_to_do(&w.pw(&["detach", "--all"]));
    assert_nothing_to_do(&w.pw(&["gc"]));
    assert_nothing_to_do(&w.pw(&["gc", "--dry-run"]));
    assert_eq!(
        w.actions(&["gc"]),
        (false, vec![]),
        "gc --json with nothing to do"
    );
}

/// Attachments of every kind and guest type: `ls` lists exactly them, each entry matching the
/// attach's `--json` report (and the kernel); removed guests turn "stale", never "alive".
#[test]
fn ls_lists_every_attachment_then_stale_ones() {
    need_root!();
    let w = World::new();
    let lan = Netns::new("l");
    veth_nic(&w.host, "pwn0", None, &lan, "lan0");
    let g1 = Netns::new("g");
    let g2 = Netns::new("g");
    let g3 = Netns::new("g");
    let mut pg = PidGuest::new();
    let dh = docker_host();
    let mut c = dh.as_deref().map(Container::run);
    if c.is_none() {
        eprintln!("note: no test Docker daemon, the container part of this test is left out");
    }

    let mut reps = vec![];
    // Two interfaces in one guest (a bridge pipework creates, a given MAC on the second).
    let r_g1a = w.attach(&["br1", &g1.name, "10.233.1.2/24@10.233.1.1"]);
    let r_g1b = w.attach(&[
        "-i",
        "eth2",
        "br1",
        &g1.name,
        "fd00:233:1::2/64",
        "02:33:01:00:00:12",
    ]);
    // A PID guest.
    let pid = pg.pid.to_string();
    let r_pid = w.attach(&["br1", &pid, "10.233.1.3/24"]);
    // A named namespace, forced with the netns: prefix.
    let forced = format!("netns:{}", g3.name);
    let r_g3 = w.attach(&["br1", &forced, "10.233.1.5/24"]);
    // A macvlan child of a "NIC".
    let r_mv = w.attach(&["pwn0", &g2.name, "10.233.2.2/24"]);
    reps.extend([&r_g1a, &r_g1b, &r_pid, &r_g3, &r_mv].map(|r| r.clone()));
    let r_c = c
        .as_ref()
        .map(|c| w.attach(&["br1", &c.name, "10.233.1.4/24"]));
    reps.extend(r_c.clone());

    // The reports say what was asked.
    assert_eq!(r_g1a["guest"]["spec"], g1.name.as_str());
    assert_eq!(r_g1a["guest"]["engine"], "netns");
    assert_eq!(r_g1b["guest_ifname"], "eth2");
    assert_eq!(r_g1b["mac"], "02:33:01:00:00:12");
    assert_eq!(r_pid["guest"]["engine"], "pid");
    assert_eq!(r_pid["guest"]["pid"], pg.pid);
    assert_eq!(r_g3["guest"]["spec"], forced.as_str(), "the guest as given");
    assert_eq!(r_g3["guest"]["name"], g3.name.as_str());
    assert_eq!(r_mv["kind"], "macvlan");
    if let (Some(r), Some(c)) = (&r_c, &c) {
        assert_eq!(r["guest"]["engine"], "docker");
        assert_eq!(r["guest"]["name"], c.name.as_str());
        assert_eq!(r["guest"]["id"], c.id.as_str());
        assert_eq!(r["guest"]["pid"], c.pid);
    }

    let ls = w.ls();
    assert_eq!(
        ls.len(),
        reps.len(),
        "one entry per attachment, nothing else: {ls:#?}"
    );
    for r in &reps {
        assert_listed(&ls, r, "alive");
    }
    // The entries match the kernel too.
    for (rep, g) in [
        (&r_g1a, &g1 as &dyn Ns),
        (&r_g1b, &g1),
        (&r_pid, &pg),
        (&r_g3, &g3),
    ] {
        let ifname = rep["guest_ifname"].as_str().unwrap();
        let h = host_end_of(&w.host, g, ifname);
        assert_eq!(
            h.name,
            host_ifname(rep),
            "host end of {ifname} in {}",
            g.describe()
        );
        assert_eq!(h.master.as_deref(), Some("br1"));
        assert_eq!(rep["mac"], must_link(g, ifname).mac.as_str());
    }
    assert_eq!(r_mv["mac"], must_link(&g2, "eth1").mac.as_str());
    if let (Some(r), Some(c)) = (&r_c, &c) {
        assert_eq!(host_end_of(&w.host, c, "eth1").name, host_ifname(r));
    }

    // The table: a header, then one line per attachment.
    let t = w.pw(&["ls"]);
    t.ok();
    let lines: Vec<&str> = t.stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines[0].contains("STATE") && lines[0].contains("GUEST"),
        "header line first: {:?}",
        t.stdout
    );
    assert_eq!(
        lines.len(),
        1 + reps.len(),
        "header + one line each: {}",
        t.stdout
    );
    for r in &reps {
        // The guest as given, or its name (the table may show either).
        let spec = r["guest"]["spec"].as_str().unwrap();
        let name = r["guest"]["name"].as_str().unwrap_or(spec);
        let ifn = r["guest_ifname"].as_str().unwrap();
        let host_if = r["host_ifname"].as_str().unwrap_or("-");
        assert!(
            lines[1..]
                .iter()
                .any(|l| (l.contains(spec) || l.contains(name))
                    && l.split_whitespace().any(|f| f == ifn)
                    && l.split_whitespace().any(|f| f == host_if)
                    && l.split_whitespace().next() == Some("alive")),
            "a line for {spec} {ifn}, alive:\n{}",
            t.stdout
        );
    }

    // Guests go away: a deleted namespace, a killed process, a removed container.
    let g2_name = g2.name.clone();
    drop(g2);
    assert!(!std::path::Path::new(&format!("/run/netns/{g2_name}")).exists());
    pg.kill();
    if let Some(c) = &mut c {
        let out = docker(&c.host, &["rm", "-f", &c.name]);
        assert!(out.status.success(), "docker rm -f: {out:?}");
        c.pid = 0;
    }
    let ls = w.ls();
    assert_eq!(
        ls.len(),
        reps.len(),
        "stale records are still listed: {ls:#?}"
    );
    for r in [&r_g1a, &r_g1b, &r_g3] {
        assert_listed(&ls, r, "alive");
    }
    assert_listed(&ls, &r_mv, "stale");
    assert_listed(&ls, &r_pid, "stale");
    if let Some(r) = &r_c {
        assert_listed(&ls, r, "stale");
    }
    let t = w.pw(&["ls"]);
    t.ok();
    let stale_lines = t
        .stdout
        .lines()
        .filter(|l| l.split_whitespace().next() == Some("stale"))
        .count();
    assert_eq!(
        stale_lines,
        2 + usize::from(r_c.is_some()),
        "stale rows in the table:\n{}",
        t.stdout
    );
}

/// A namespace deleted and made again under the same name is a different guest: the old
/// record's interface is not in it, so the record is stale. (The kernel often gives the new
/// namespace the freed inode number, so a record checked by name + inode alone would look
/// alive; we try a few times to get that case.)
#[test]
fn recreated_namespace_is_not_the_old_guest() {
    need_root!();
    let w = World::new();
    let name = unique("g");
    let g = Netns::named(&name);
    let rep = w.attach(&["br1", &name, "10.233.3.2/24"]);
    let old = inode(&rep);
    drop(g);
    wait_links_gone(&w.host, &[host_ifname(&rep)]);
    // Make the name again until the new namespace gets the old inode number (the kernel hands
    // out the lowest free one): namespaces that get another number are kept alive (by a
    // process) under no name, so that the next try gets a higher one. Gives up after 40 tries
    // (other tests may take the number first); the check below holds either way.
    let mut holders = vec![];
    let mut again = None;
    for _ in 0..40 {
        let n = Netns::named(&name);
        if netns_inode(&n) == old {
            again = Some(n);
            break;
        }
        holders.push(Holder::new(&n));
        drop(n);
        std::thread::sleep(Duration::from_millis(30));
    }
    let g2 = again.unwrap_or_else(|| Netns::named(&name));
    eprintln!(
        "old inode {old}, new namespace's inode {} ({}, {} tries)",
        netns_inode(&g2),
        if netns_inode(&g2) == old {
            "reused"
        } else {
            "not reused"
        },
        holders.len() + 1
    );
    assert!(link(&g2, "eth1").is_none(), "the new namespace is empty");
    let ls = w.ls();
    assert_eq!(ls.len(), 1, "{ls:#?}");
    assert_eq!(
        ls[0]["state"], "stale",
        "the record of the deleted namespace {name} (eth1, host end {}) is not alive: \
         nothing of it exists any more: {ls:#?}",
        rep["host_ifname"]
    );
}

// ---------------------------------------------------------------------------------------------
// detach
// ---------------------------------------------------------------------------------------------

/// Two guests on a bridge pipework created: detaching the first removes its veth pair and
/// record and keeps the bridge; detaching the last removes the bridge. Detaching again, a
/// guest never attached, or one that does not exist: "nothing to do".
#[test]
fn detach_bridge_guests_then_the_bridge_goes() {
    need_root!();
    let w = World::new();
    let a = Netns::new("g");
    let b = Netns::new("g");
    let never = Netns::new("g");
    let ra = w.attach(&["br1", &a.name, "10.233.4.2/24"]);
    let rb = w.attach(&["br1", &b.name, "10.233.4.3/24"]);
    assert_eq!(ra["host_interface_created"], true);
    let ha = host_ifname(&ra);
    let hb = host_ifname(&rb);

    let r = w.pw(&["detach", &a.name]);
    r.ok();
    assert!(
        r.stdout.contains(&ha),
        "says it removed {ha}:\n{}",
        r.stdout
    );
    assert!(link(&w.host, &ha).is_none(), "host end {ha} is gone");
    assert!(link(&a, "eth1").is_none(), "guest end is gone");
    assert!(
        link(&w.host, "br1").is_some(),
        "br1 is kept: b still uses it"
    );
    assert_attached(&w.host, "br1", &b, "eth1", &["10.233.4.3/24"]);
    let ls = w.ls();
    assert_not_listed(&ls, &ra, "after detach");
    assert_listed(&ls, &rb, "alive");
    assert_eq!(ls.len(), 1);

    assert_nothing_to_do(&w.pw(&["detach", &a.name]));
    assert_nothing_to_do(&w.pw(&["detach", &never.name]));
    assert_nothing_to_do(&w.pw(&["detach", &unique("nosuch")]));
    assert_nothing_to_do(&w.pw(&["detach", "-i", "eth7", &b.name]));
    assert_eq!(w.ls().len(), 1, "b is still listed");
    assert!(link(&w.host, &hb).is_some(), "b's host end is untouched");

    let r = w.pw(&["detach", &b.name]);
    r.ok();
    assert!(r.stdout.contains(&hb), "{}", r.stdout);
    assert!(
        r.stdout.contains("br1"),
        "says it deleted br1:\n{}",
        r.stdout
    );
    assert!(link(&b, "eth1").is_none(), "b's eth1 is gone");
    assert_eq!(
        link_names(&w.host),
        ["lo"],
        "the last guest gone, the bridge pipework created is gone too"
    );
    assert_eq!(w.ls(), Vec::<Value>::new());
    assert_nothing_to_do(&w.pw(&["detach", &b.name]));
    assert_nothing_to_do(&w.pw(&["detach", "--all"]));
}

/// A bridge the user made is never deleted, even when its last guest goes.
#[test]
fn detach_keeps_a_user_bridge() {
    need_root!();
    let w = World::new();
    user_bridge(&w.host, "br1", "10.233.5.1/24");
    let g = PidGuest::new();
    let pid = g.pid.to_string();
    let rep = w.attach(&["br1", &pid, "10.233.5.2/24"]);
    assert_eq!(rep["host_interface_created"], false);
    assert!(ping(&g, "10.233.5.1"));
    let (dry, acts) = w.actions(&["detach", &pid]);
    assert!(!dry);
    assert!(
        acts.iter().all(|a| !a.contains("bridge")),
        "no bridge action for a user bridge: {acts:?}"
    );
    assert!(link(&g, "eth1").is_none(), "guest end gone");
    assert!(link(&w.host, &host_ifname(&rep)).is_none(), "host end gone");
    let br = must_link(&w.host, "br1");
    assert!(br.is_up(), "the user's bridge is still up");
    assert_eq!(global_cidrs(&w.host, "br1"), ["10.233.5.1/24"]);
    assert_eq!(w.ls(), Vec::<Value>::new());
}

/// `-i IF` removes one interface of a guest and leaves its others.
#[test]
fn detach_one_interface_of_a_guest() {
    need_root!();
    let w = World::new();
    let g = Netns::new("g");
    let r1 = w.attach(&["br1", &g.name, "10.233.6.2/24"]);
    let r2 = w.attach(&["-i", "eth2", "br2", &g.name, "10.233.7.2/24"]);
    let r = w.pw(&["detach", &g.name, "-i", "eth2"]);
    r.ok();
    assert!(link(&g, "eth2").is_none(), "eth2 is gone");
    assert!(
        link(&w.host, &host_ifname(&r2)).is_none(),
        "its host end too"
    );
    assert!(
        link(&w.host, "br2").is_none(),
        "br2 (pipework's, now unused) too"
    );
    assert_attached(&w.host, "br1", &g, "eth1", &["10.233.6.2/24"]);
    let ls = w.ls();
    assert_eq!(ls.len(), 1, "{ls:#?}");
    assert_listed(&ls, &r1, "alive");
    assert_nothing_to_do(&w.pw(&["detach", &g.name, "-i", "eth2"]));
}

/// A macvlan child lives inside the guest: detach deletes it there and leaves the NIC alone.
#[test]
fn detach_macvlan() {
    need_root!();
    let w = World::new();
    let lan = Netns::new("l");
    veth_nic(&w.host, "pwn0", None, &lan, "lan0");
    ip(&lan, &["addr", "add", "10.233.8.1/24", "dev", "lan0"]);
    let g = Netns::new("g");
    let rep = w.attach(&["pwn0", &g.name, "10.233.8.2/24"]);
    assert_eq!(rep["kind"], "macvlan");
    assert!(ping(&g, "10.233.8.1"));
    let nic = must_link(&w.host, "pwn0");
    let r = w.pw(&["detach", &g.name]);
    r.ok();
    assert_eq!(link_names(&g), ["lo"], "the macvlan is gone from the guest");
    let after = must_link(&w.host, "pwn0");
    assert_eq!(
        (after.index, &after.mac, after.is_up()),
        (nic.index, &nic.mac, nic.is_up()),
        "the NIC itself is untouched"
    );
    assert_eq!(w.ls(), Vec::<Value>::new());
    assert_nothing_to_do(&w.pw(&["detach", &g.name]));
}

/// `--dry-run` says what it would do ("would …") and changes nothing; `--json` gives the same
/// actions; the real run then does exactly those.
#[test]
fn detach_dry_run_changes_nothing() {
    need_root!();
    let w = World::new();
    let a = Netns::new("g");
    let rep = w.attach(&["br1", &a.name, "10.233.9.2/24"]);
    let hs = snapshot(&w.host);
    let gs = snapshot(&a);
    let ls0 = w.ls();

    let r = w.pw(&["detach", "--dry-run", &a.name]);
    r.ok();
    let lines: Vec<&str> = r.stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "says something: {r:?}");
    assert!(
        lines.iter().all(|l| l.starts_with("would ")),
        "every line starts with \"would \":\n{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&host_ifname(&rep)),
        "names the host end:\n{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("br1"),
        "names the bridge it would delete:\n{}",
        r.stdout
    );

    let (dry, acts) = w.actions(&["detach", "--dry-run", &a.name]);
    assert!(dry);
    let plain: Vec<String> = lines
        .iter()
        .map(|l| l.strip_prefix("would ").unwrap().to_string())
        .collect();
    assert_eq!(acts, plain, "--json lists the same actions as the text");

    assert_unchanged(&w.host, &hs, "host after detach --dry-run");
    assert_unchanged(&a, &gs, "guest after detach --dry-run");
    assert_eq!(w.ls(), ls0, "records unchanged after detach --dry-run");

    let (dry, done) = w.actions(&["detach", &a.name]);
    assert!(!dry);
    assert_eq!(done, acts, "the real run does what the dry run said");
    assert_eq!(link_names(&w.host), ["lo"]);
}

/// `detach --all` removes every attachment (of every guest and kind), the bridges pipework
/// made, and keeps the user's; a second run has nothing to do.
#[test]
fn detach_all() {
    need_root!();
    let w = World::new();
    user_bridge(&w.host, "br0", "10.233.10.1/24");
    let lan = Netns::new("l");
    veth_nic(&w.host, "pwn0", None, &lan, "lan0");
    let g1 = Netns::new("g");
    let g2 = PidGuest::new();
    let g3 = Netns::new("g");
    let gone = Netns::new("g");
    let p2 = g2.pid.to_string();
    let reps = [
        w.attach(&["br0", &g1.name, "10.233.10.2/24"]),
        w.attach(&["br1", &g1.name, "-i", "eth2", "10.233.11.2/24"]),
        w.attach(&["br1", &p2, "10.233.11.3/24"]),
        w.attach(&["pwn0", &g3.name, "10.233.12.3/24"]),
        w.attach(&["br1", &gone.name, "10.233.11.9/24"]),
    ];
    drop(gone); // one stale record as well
    wait_links_gone(&w.host, &[host_ifname(&reps[4])]);
    assert_eq!(w.ls().len(), 5);

    let hs = snapshot(&w.host);
    let r = w.pw(&["detach", "--all", "--dry-run"]);
    r.ok();
    assert!(
        r.stdout.lines().all(|l| l.starts_with("would ")),
        "{}",
        r.stdout
    );
    assert_unchanged(&w.host, &hs, "host after detach --all --dry-run");
    assert_eq!(w.ls().len(), 5, "records unchanged after the dry run");

    w.pw(&["detach", "--all"]).ok();
    assert_eq!(w.ls(), Vec::<Value>::new(), "no records left");
    for r in &reps {
        if let Some(h) = r["host_ifname"].as_str() {
            assert!(link(&w.host, h).is_none(), "{h} is gone");
        }
    }
    let mut names = link_names(&w.host);
    names.sort();
    assert_eq!(
        names,
        ["br0", "lo", "pwn0"],
        "only the user's bridge and NIC are left"
    );
    assert_eq!(global_cidrs(&w.host, "br0"), ["10.233.10.1/24"]);
    assert_eq!(link_names(&g1), ["lo"]);
    assert_eq!(link_names(&g2), ["lo"]);
    assert_eq!(link_names(&g3), ["lo"]);
    assert_nothing_to_do(&w.pw(&["detach", "--all"]));
}

/// A dry run of `detach --all` announces everything the real run then does (here: the bridge
/// pipework made goes with its last two guests).
#[test]
fn detach_all_dry_run_predicts_the_real_run() {
    need_root!();
    let w = World::new();
    let g1 = Netns::new("g");
    let g2 = Netns::new("g");
    w.attach(&["br1", &g1.name, "10.233.13.2/24"]);
    w.attach(&["br1", &g2.name, "10.233.13.3/24"]);
    let (dry, predicted) = w.actions(&["detach", "--all", "--dry-run"]);
    assert!(dry);
    let (dry, done) = w.actions(&["detach", "--all"]);
    assert!(!dry);
    assert!(
        link(&w.host, "br1").is_none(),
        "the bridge pipework made is gone with its last guests"
    );
    let p: BTreeSet<&String> = predicted.iter().collect();
    let d: BTreeSet<&String> = done.iter().collect();
    assert_eq!(p, d, "dry run said {predicted:#?}\nreal run did {done:#?}");
}

/// Docker guests: detach by name, by short ID; a container removed before its detach only
/// leaves a record, which the detach forgets; then "nothing to do".
#[test]
fn detach_docker_guests() {
    let dh = need_docker!();
    let w = World::new();
    let c1 = Container::run(&dh);
    let c2 = Container::run(&dh);
    let c3 = Container::run(&dh);
    let r1 = w.attach(&["br1", &c1.name, "10.233.14.2/24"]);
    let r2 = w.attach(&["br1", &c2.name, "10.233.14.3/24"]);
    let r3 = w.attach(&["br1", &c3.name, "10.233.14.4/24"]);
    assert!(docker_ping(&c1, "10.233.14.3"));

    // By short ID.
    w.pw(&["detach", &c2.id[..12]]).ok();
    assert!(link(&w.host, &host_ifname(&r2)).is_none());
    assert!(link(&c2, "eth1").is_none());
    // By name.
    w.pw(&["detach", &c1.name]).ok();
    assert!(link(&w.host, &host_ifname(&r1)).is_none());
    assert!(link(&c1, "eth1").is_none());
    // Gone before its detach.
    let out = docker(&dh, &["rm", "-f", &c3.name]);
    assert!(out.status.success(), "{out:?}");
    assert_listed(&w.ls(), &r3, "stale");
    w.pw(&["detach", &c3.name]).ok();
    assert_eq!(w.ls(), Vec::<Value>::new());
    assert!(
        link(&w.host, "br1").is_none(),
        "the bridge went with the last guest"
    );
    assert_nothing_to_do(&w.pw(&["detach", &c3.name]));
    assert_nothing_to_do(&w.pw(&["detach", &c1.name]));
}

/// `--direct-phys`: detach gives the NIC back to the host under its original name, with its
/// MAC, MTU, host addresses and up state; it works there again.
#[test]
fn detach_direct_phys_gives_the_nic_back() {
    need_root!();
    const NIC_MAC: &str = "02:33:0f:00:00:01";
    let w = World::new();
    let lan = Netns::new("l");
    veth_nic(&w.host, "pwp0", Some(NIC_MAC), &lan, "lan0");
    ip(&lan, &["addr", "add", "10.233.15.9/24", "dev", "lan0"]);
    ip(&w.host, &["link", "set", "pwp0", "mtu", "1400"]);
    ip(&w.host, &["addr", "add", "10.233.15.1/24", "dev", "pwp0"]);
    ip(
        &w.host,
        &["addr", "add", "fd00:233:15::1/64", "dev", "pwp0", "nodad"],
    );
    ip(&w.host, &["link", "set", "pwp0", "up"]);
    assert!(ping(&w.host, "10.233.15.9"), "the NIC works before");
    let before = must_link(&w.host, "pwp0");
    let lan0 = must_link(&lan, "lan0");

    let g = Netns::new("g");
    let rep = w.attach(&[
        "--direct-phys",
        "pwp0",
        "-i",
        "wan0",
        &g.name,
        "10.233.15.2/24",
        "02:33:0f:00:00:99",
    ]);
    assert_eq!(rep["kind"], "phys");
    assert!(link(&w.host, "pwp0").is_none(), "the NIC is in the guest");
    assert_eq!(must_link(&g, "wan0").mac, "02:33:0f:00:00:99");
    assert_listed(&w.ls(), &rep, "alive");

    let r = w.pw(&["detach", &g.name]);
    r.ok();
    assert!(
        r.stdout.contains("pwp0"),
        "says it gives pwp0 back:\n{}",
        r.stdout
    );
    assert_eq!(link_names(&g), ["lo"], "the NIC left the guest");
    let nic = must_link(&w.host, "pwp0");
    assert_eq!(
        link_index(&nic),
        Some(lan0.index),
        "the same NIC (peer of lan0)"
    );
    assert_eq!(nic.mac, before.mac, "its own MAC again");
    assert_eq!(nic.mtu, 1400, "its MTU");
    assert!(nic.is_up(), "up again");
    let mut got = global_cidrs(&w.host, "pwp0");
    got.sort();
    assert_eq!(
        got,
        ["10.233.15.1/24", "fd00:233:15::1/64"],
        "its host addresses, and not the guest's"
    );
    assert!(ping(&w.host, "10.233.15.9"), "the host uses the NIC again");
    assert_eq!(w.ls(), Vec::<Value>::new());
    assert_nothing_to_do(&w.pw(&["detach", &g.name]));
}

/// Someone deleted the veth by hand: detach still succeeds, forgets the record and removes the
/// bridge pipework made; then "nothing to do".
#[test]
fn detach_after_the_interface_was_removed_by_hand() {
    need_root!();
    let w = World::new();
    let g = Netns::new("g");
    let rep = w.attach(&["br1", &g.name, "10.233.40.2/24"]);
    ip(&w.host, &["link", "del", &host_ifname(&rep)]);
    assert!(link(&g, "eth1").is_none(), "the pair went together");
    // Still listed (whether "alive" or "stale" is left open: the guest lives on).
    assert!(entry_of(&w.ls(), &rep).is_some());
    let (dry, acts) = w.actions(&["detach", &g.name]);
    assert!(!dry);
    assert!(
        acts.iter().all(|a| !a.contains(&host_ifname(&rep))),
        "nothing to delete for a veth that is gone: {acts:?}"
    );
    assert_eq!(w.ls(), Vec::<Value>::new());
    assert_eq!(
        link_names(&w.host),
        ["lo"],
        "the bridge pipework made went too"
    );
    assert_nothing_to_do(&w.pw(&["detach", &g.name]));
}

/// The bridge pipework made was deleted by hand and the user made their own under the same
/// name: it is the user's now, and detaching the guest must not delete it.
#[test]
fn detach_keeps_a_bridge_the_user_made_again_under_the_same_name() {
    need_root!();
    let w = World::new();
    let g = Netns::new("g");
    let rep = w.attach(&["br1", &g.name, "10.233.41.2/24"]);
    assert_eq!(rep["host_interface_created"], true);
    ip(&w.host, &["link", "del", "br1"]);
    user_bridge(&w.host, "br1", "10.233.41.1/24");
    let (_, acts) = w.actions(&["detach", &g.name]);
    assert!(link(&g, "eth1").is_none(), "the guest was detached");
    assert!(
        link(&w.host, "br1").is_some(),
        "the user's own br1 was deleted by detach: {acts:?}"
    );
    assert_eq!(global_cidrs(&w.host, "br1"), ["10.233.41.1/24"]);
}

/// A kept DHCP client: `ls` shows it (pid, client, pidfile); detach stops it (which releases the
/// lease) and removes the interface and the record, leaving no process behind.
/// (DhcpLan's subnet is 10.224.N.x; N = 233 here.)
#[test]
fn detach_stops_a_kept_dhcp_client_and_releases_the_lease() {
    need_programs!("dnsmasq");
    let lan = DhcpLan::new(233, &DnsmasqConf::default());
    let g = lan.netns_guest();
    let r = lan.pw(&["--json", "--dhcp-keep", "br1", &g.name, "dhcp"]);
    r.ok();
    let j = r.json();
    let pid = j
        .pointer("/dhcp/supervisor/pid")
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("dhcp.supervisor.pid in {j:#}")) as u32;
    lan.rt.track(pid);
    let pidfile = j["dhcp"]["supervisor"]["pidfile"].clone();
    let mac = j["mac"].as_str().expect("mac").to_string();
    let host_end = host_ifname(&j);
    assert!(proc_alive(pid), "the kept client runs");

    let ls = lan.ls();
    assert_eq!(ls.len(), 1, "{ls:#?}");
    let e = &ls[0];
    assert_eq!(e["state"], "alive", "{e:#}");
    assert_eq!(e["pid"], pid, "{e:#}");
    assert!(
        e["client"].as_str().is_some_and(|c| !c.is_empty()),
        "client named: {e:#}"
    );
    assert_eq!(e["pidfile"], pidfile, "{e:#}");
    assert_eq!(e["address"], j["addresses"][0], "{e:#}");
    assert_eq!(e["host_ifname"], host_end.as_str(), "{e:#}");

    let d = lan.pw(&["detach", &g.name]);
    d.ok();
    assert!(
        d.stdout.contains(&pid.to_string()),
        "says it stopped the client {pid}:\n{}",
        d.stdout
    );
    assert!(
        wait_until(Duration::from_secs(3), || !proc_alive(pid)),
        "the client {pid} was stopped"
    );
    assert!(
        wait_until(Duration::from_secs(3), || lan.server().released(&mac)),
        "the lease of {mac} was released:\n{}",
        lan.server().log()
    );
    assert!(link(&g, "eth1").is_none(), "guest end gone");
    assert!(link(&lan.host, &host_end).is_none(), "host end gone");
    assert!(
        link(&lan.host, "br1").is_some(),
        "the test's own bridge stays"
    );
    assert_eq!(lan.ls(), Vec::<Value>::new());
    lan.assert_no_leftovers(Some(netns_inode(&g)), &[], "after detach");
    lan.finish();
}

// ---------------------------------------------------------------------------------------------
// gc
// ---------------------------------------------------------------------------------------------

/// Guests gone in every way (namespace deleted, process killed, a killed process whose
/// namespace something else still holds, containers removed): `gc --dry-run` only says, `gc`
/// removes their records and whatever of theirs is still there, and leaves live guests alone.
#[test]
fn gc_removes_what_belongs_to_gone_guests() {
    need_root!();
    let w = World::new();
    let live = Netns::new("g");
    let ns_gone = Netns::new("g");
    let mut pid_gone = PidGuest::new();
    let mut pid_held = PidGuest::new();
    let dh = docker_host();
    let cs: Vec<Container> = dh
        .iter()
        .flat_map(|h| [Container::run(h), Container::run(h)])
        .collect();
    if cs.is_empty() {
        eprintln!("note: no test Docker daemon, the container part of this test is left out");
    }
    let r_live = w.attach(&["br1", &live.name, "10.233.16.2/24"]);
    let r_ns = w.attach(&["br1", &ns_gone.name, "10.233.16.3/24"]);
    let r_pid = w.attach(&["br1", &pid_gone.pid.to_string(), "10.233.16.4/24"]);
    let r_held = w.attach(&["br1", &pid_held.pid.to_string(), "10.233.16.5/24"]);
    let r_cs: Vec<Value> = cs
        .iter()
        .enumerate()
        .map(|(i, c)| w.attach(&["br1", &c.name, &format!("10.233.16.{}/24", 10 + i)]))
        .collect();

    // Make them go.
    drop(ns_gone);
    pid_gone.kill();
    let holder = Holder::new(&pid_held);
    pid_held.kill();
    for c in &cs {
        let out = docker(&c.host, &["rm", "-f", &c.name]);
        assert!(out.status.success(), "{out:?}");
    }
    let mut gone_ends = vec![host_ifname(&r_ns), host_ifname(&r_pid)];
    gone_ends.extend(r_cs.iter().map(host_ifname));
    wait_links_gone(&w.host, &gone_ends);
    let held_end = host_ifname(&r_held);
    assert!(
        link(&w.host, &held_end).is_some(),
        "the host end of the killed-but-held guest is still there"
    );
    let mut stale = vec![&r_ns, &r_pid, &r_held];
    stale.extend(r_cs.iter());
    let ls = w.ls();
    assert_eq!(ls.len(), stale.len() + 1);
    for r in &stale {
        assert_listed(&ls, r, "stale");
    }
    assert_listed(&ls, &r_live, "alive");

    // Dry run: says, changes nothing.
    let hs = snapshot(&w.host);
    let r = w.pw(&["gc", "--dry-run"]);
    r.ok();
    assert!(
        r.stdout.lines().all(|l| l.starts_with("would ")),
        "{}",
        r.stdout
    );
    for rep in &stale {
        let spec = rep["guest"]["spec"].as_str().unwrap();
        assert!(r.stdout.contains(spec), "names {spec}:\n{}", r.stdout);
    }
    assert!(
        r.stdout.contains(&held_end),
        "names {held_end}:\n{}",
        r.stdout
    );
    assert!(
        !r.stdout.contains(live.name.as_str()),
        "the live guest is not mentioned:\n{}",
        r.stdout
    );
    let (dry, predicted) = w.actions(&["gc", "--dry-run"]);
    assert!(dry);
    assert_unchanged(&w.host, &hs, "host after gc --dry-run");
    assert_eq!(w.ls(), ls, "records unchanged after gc --dry-run");

    // The real run.
    let r = w.pw(&["gc"]);
    r.ok();
    for rep in &stale {
        let spec = rep["guest"]["spec"].as_str().unwrap();
        assert!(
            r.stdout.contains(spec),
            "says what of {spec} it removed:\n{}",
            r.stdout
        );
    }
    let done: Vec<String> = r.stdout.lines().map(String::from).collect();
    assert_eq!(done, predicted, "gc did what gc --dry-run said");
    assert!(link(&w.host, &held_end).is_none(), "{held_end} was removed");
    assert!(link(&holder, "eth1").is_none(), "and with it the guest end");
    let ls = w.ls();
    assert_eq!(ls.len(), 1, "{ls:#?}");
    assert_listed(&ls, &r_live, "alive");
    assert_attached(&w.host, "br1", &live, "eth1", &["10.233.16.2/24"]);
    assert_eq!(
        ports_of(&w.host, "br1")
            .into_iter()
            .map(|l| l.name)
            .collect::<Vec<_>>(),
        [host_ifname(&r_live)],
        "only the live guest's port is left on br1"
    );
    assert_nothing_to_do(&w.pw(&["gc"]));
}

// ---------------------------------------------------------------------------------------------
// Open vSwitch
// ---------------------------------------------------------------------------------------------

/// OVS ports outlive the veth they name: gc removes the port of a gone guest, detach the port
/// of a live one; a user's OVS bridge stays.
#[test]
fn ovs_gc_and_detach_remove_ports() {
    need_ovs!();
    let w = World::with_ovs();
    let ovs = w.ovs.as_ref().unwrap();
    ovs.add_br("ovsbr0");
    let g1 = Netns::new("g");
    let g2 = Netns::new("g");
    let r1 = w.attach(&["ovsbr0", &g1.name, "10.233.17.2/24"]);
    let r2 = w.attach(&["ovsbr0", &g2.name, "10.233.17.3/24"]);
    assert_eq!(r1["kind"], "ovs");
    let (p1, p2) = (host_ifname(&r1), host_ifname(&r2));
    let mut both = vec![p1.clone(), p2.clone()];
    both.sort();
    assert_eq!(ovs.ports("ovsbr0"), both);
    drop(g1);
    assert_eq!(
        ovs.ports("ovsbr0"),
        both,
        "the port of the gone guest is still in OVS"
    );
    assert_listed(&w.ls(), &r1, "stale");

    let r = w.pw(&["gc", "--dry-run"]);
    r.ok();
    assert!(r.stdout.contains(&p1), "{}", r.stdout);
    assert_eq!(ovs.ports("ovsbr0"), both, "dry run: port still there");
    let r = w.pw(&["gc"]);
    r.ok();
    assert!(
        r.stdout.contains(&p1),
        "says it removed port {p1}:\n{}",
        r.stdout
    );
    assert_eq!(
        ovs.ports("ovsbr0"),
        vec![p2.clone()],
        "only g2's port is left"
    );
    let ls = w.ls();
    assert_eq!(ls.len(), 1);
    assert_listed(&ls, &r2, "alive");

    w.pw(&["detach", &g2.name]).ok();
    assert_eq!(
        ovs.ports("ovsbr0"),
        Vec::<String>::new(),
        "g2's port removed"
    );
    assert!(link(&g2, "eth1").is_none());
    assert!(link(&w.host, &p2).is_none());
    assert_eq!(ovs.bridges(), ["ovsbr0"], "the user's OVS bridge stays");
    assert_eq!(w.ls(), Vec::<Value>::new());
}

/// An OVS bridge pipework created goes with its last guest.
#[test]
fn ovs_bridge_pipework_created_goes_with_its_last_guest() {
    need_ovs!();
    let w = World::with_ovs();
    let ovs = w.ovs.as_ref().unwrap();
    let g1 = Netns::new("g");
    let g2 = Netns::new("g");
    let r1 = w.attach(&[
        "--ovs-datapath",
        "netdev",
        "ovs0",
        &g1.name,
        "10.233.18.2/24",
    ]);
    assert_eq!(r1["host_interface_created"], true);
    w.attach(&["ovs0", &g2.name, "10.233.18.3/24"]);
    w.pw(&["detach", &g1.name]).ok();
    assert_eq!(ovs.bridges(), ["ovs0"], "kept while g2 uses it");
    let r = w.pw(&["detach", &g2.name]);
    r.ok();
    assert_eq!(
        ovs.bridges(),
        Vec::<String>::new(),
        "deleted with its last guest"
    );
    assert!(r.stdout.contains("ovs0"), "{}", r.stdout);
    assert_eq!(w.ls(), Vec::<Value>::new());
}

// ---------------------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------------------

/// Checks `ls --json` against the kernel: every entry is alive, its guest interface exists and
/// its host end (the guest interface's veth peer) is the listed one, enslaved to the listed
/// bridge; every veth on `bridges` is listed; every record file is complete (no temporaries).
fn assert_ls_matches_kernel(w: &World, bridges: &[&str], guests: &[&Netns]) -> Vec<Value> {
    let ls = w.ls();
    let mut problems = vec![];
    let mut listed = BTreeSet::new();
    for e in &ls {
        if e["state"] != "alive" {
            problems.push(format!("not alive: {e}"));
            continue;
        }
        let ino = e["netns_inode"].as_u64().unwrap_or(0);
        let Some(g) = guests.iter().copied().find(|g| netns_inode(*g) == ino) else {
            problems.push(format!("entry of an unknown namespace: {e}"));
            continue;
        };
        let ifname = e["ifname"].as_str().unwrap_or("");
        let h = e["host_ifname"].as_str().unwrap_or("").to_string();
        let br = e["host_interface"].as_str().unwrap_or("");
        if !listed.insert(h.clone()) {
            problems.push(format!("host end {h} listed twice"));
        }
        if link(g, ifname).is_none() {
            problems.push(format!("{} has no {ifname}: {e}", g.name));
            continue;
        }
        let end = host_end_of(&w.host, g, ifname);
        if end.name != h || end.master.as_deref() != Some(br) {
            problems.push(format!(
                "host end of {ifname} in {} is {} (master {:?}), ls says {h} on {br}",
                g.name, end.name, end.master
            ));
        }
    }
    let mut on_bridges = BTreeSet::new();
    for b in bridges {
        for l in ports_of(&w.host, b) {
            if l.kind.as_deref() == Some("veth") {
                on_bridges.insert(l.name);
            }
        }
    }
    for p in on_bridges.difference(&listed) {
        problems.push(format!("veth {p} on {bridges:?} is not listed"));
    }
    for p in listed.difference(&on_bridges) {
        problems.push(format!("listed host end {p} is not on {bridges:?}"));
    }
    if let Ok(rd) = std::fs::read_dir(w.attachments_dir()) {
        for f in rd.flatten() {
            let p = f.path();
            if p.extension().is_none_or(|x| x != "json") {
                problems.push(format!("stray file {}", p.display()));
            } else if String::from_utf8(std::fs::read(&p).unwrap_or_default())
                .map(|t| {
                    // JSON Lines: the header, then one undo entry per line.
                    t.is_empty() || t.lines().any(|l| serde_json::from_str::<Value>(l).is_err())
                })
                .unwrap_or(true)
            {
                problems.push(format!("corrupt record {}", p.display()));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "ls --json vs the kernel:\n  {}\nls: {ls:#?}",
        problems.join("\n  ")
    );
    ls
}

/// Runs `args_of(i, guest)` for every guest, all at once (one thread and one pipework each).
fn in_parallel<'a>(
    w: &World,
    guests: &'a [Netns],
    args_of: impl Fn(usize, &'a Netns) -> Vec<String> + Sync,
) -> Vec<Run> {
    let barrier = std::sync::Barrier::new(guests.len());
    std::thread::scope(|s| {
        let hs: Vec<_> = guests
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let args = args_of(i, g);
                let barrier = &barrier;
                s.spawn(move || {
                    let a: Vec<&str> = args.iter().map(String::as_str).collect();
                    barrier.wait();
                    w.pw(&a)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn assert_all_ok(runs: &[Run], what: &str) {
    let failed: Vec<&Run> = runs.iter().filter(|r| r.code != 0).collect();
    assert!(
        failed.is_empty(),
        "{} of {} {what} failed: {failed:#?}",
        failed.len(),
        runs.len()
    );
}

/// The test: 20 attaches at once into one bridge (made by pipework for a first guest),
/// then 10 detaches at once: `ls` matches the kernel exactly, before and after.
#[test]
fn concurrent_attaches_and_detaches_keep_records_exact() {
    need_root!();
    let w = World::new();
    let seed = Netns::new("g");
    let r_seed = w.attach(&["br1", &seed.name, "10.233.19.2/24"]);
    assert_eq!(r_seed["host_interface_created"], true);
    let guests: Vec<Netns> = (0..20).map(|_| Netns::new("g")).collect();
    let runs = in_parallel(&w, &guests, |i, g| {
        [
            "--json",
            "br1",
            &g.name,
            &format!("10.233.19.{}/24", 10 + i),
        ]
        .map(String::from)
        .to_vec()
    });
    assert_all_ok(&runs, "parallel attaches");
    let mut all: Vec<&Netns> = guests.iter().collect();
    all.push(&seed);
    let ls = assert_ls_matches_kernel(&w, &["br1"], &all);
    assert_eq!(ls.len(), 21, "21 attachments listed");
    for r in &runs {
        assert_listed(&ls, &r.json(), "alive");
    }
    assert!(ping(&guests[0], "10.233.19.29"), "guest 0 -> guest 19");

    let detaches = in_parallel(&w, &guests[..10], |_, g| {
        vec!["detach".into(), g.name.clone()]
    });
    assert_all_ok(&detaches, "parallel detaches");
    let ls = assert_ls_matches_kernel(&w, &["br1"], &all);
    assert_eq!(ls.len(), 11, "11 attachments left");
    for g in &guests[..10] {
        assert!(link(g, "eth1").is_none(), "{} was detached", g.name);
    }
    for r in &runs[10..] {
        assert_listed(&ls, &r.json(), "alive");
    }
    assert!(link(&w.host, "br1").is_some(), "br1 still has guests");
    assert!(
        ping(&guests[10], "10.233.19.2"),
        "guest 10 -> the seed guest"
    );
}

/// Attaches at once into a bridge that does not exist yet: every one of them must succeed
/// (whichever loses the race to create it uses it). Three rounds, each with a new bridge.
#[test]
fn concurrent_attaches_into_a_missing_bridge() {
    need_root!();
    let w = World::new();
    let guests: Vec<Netns> = (0..10).map(|_| Netns::new("g")).collect();
    let mut bridges = vec![];
    for round in 1..=3 {
        let br = format!("br{round}");
        let runs = in_parallel(&w, &guests, |i, g| {
            [
                "--json",
                "-i",
                &format!("eth{round}"),
                &br,
                &g.name,
                &format!("10.233.{}.{}/24", 20 + round, 10 + i),
            ]
            .map(String::from)
            .to_vec()
        });
        assert_all_ok(
            &runs,
            &format!("parallel attaches into missing {br} (round {round})"),
        );
        bridges.push(br);
        let b: Vec<&str> = bridges.iter().map(String::as_str).collect();
        let ls = assert_ls_matches_kernel(&w, &b, &guests.iter().collect::<Vec<_>>());
        assert_eq!(ls.len(), 10 * round);
    }
}

/// The last guests of a bridge pipework made, detached all at once: the bridge still goes
/// (and its "created" mark with it). Three rounds.
#[test]
fn concurrent_detach_of_the_last_guests_removes_the_bridge() {
    need_root!();
    let w = World::new();
    let guests: Vec<Netns> = (0..6).map(|_| Netns::new("g")).collect();
    let mut left = vec![];
    for round in 1..=3 {
        let br = format!("br{round}");
        for (i, g) in guests.iter().enumerate() {
            w.attach(&[
                &br,
                &g.name,
                &format!("10.233.{}.{}/24", 30 + round, 10 + i),
            ]);
        }
        let runs = in_parallel(&w, &guests, |_, g| vec!["detach".into(), g.name.clone()]);
        assert_all_ok(&runs, "parallel detaches");
        assert_eq!(
            w.ls(),
            Vec::<Value>::new(),
            "round {round}: no records left"
        );
        if link(&w.host, &br).is_some() {
            left.push(br.clone());
            ip(&w.host, &["link", "del", &br]);
        }
    }
    assert!(
        left.is_empty(),
        "every guest detached at once, but the bridge pipework made was left behind in \
         round(s) {left:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Privileges
// ---------------------------------------------------------------------------------------------

/// Three attachments (a named namespace, a PID guest, a gone namespace), for the unprivileged
/// runs: `(world, guests to keep alive, ls as root)`.
fn world_for_nobody() -> (World, (Netns, PidGuest), Vec<Value>) {
    let w = World::new();
    let g = Netns::new("g");
    let p = PidGuest::new();
    let gone = Netns::new("g");
    w.attach(&["br1", &g.name, "10.233.50.2/24"]);
    w.attach(&["br1", &p.pid.to_string(), "10.233.50.3/24"]);
    let r = w.attach(&["br1", &gone.name, "10.233.50.4/24"]);
    drop(gone);
    wait_links_gone(&w.host, &[host_ifname(&r)]);
    let ls = w.ls();
    (w, (g, p), ls)
}

/// Without root (uid 65534, no capabilities) detach and gc refuse with a clear message and
/// change nothing; ls only reads files: it works.
#[test]
fn not_root() {
    need_root!();
    let (w, (g, _p), root_ls) = world_for_nobody();
    let bc = BinCopy::new();
    let hs = snapshot(&w.host);
    let nobody = |args: &[&str]| pipework_with(&w.host, args, &w.opts(Some(65534), Some(bc.bin())));
    for args in [
        &["detach", g.name.as_str()][..],
        &["detach", "--all"],
        &["detach", "--all", "--dry-run"],
        &["gc"],
        &["gc", "--dry-run"],
    ] {
        nobody(args)
            .fails_any(1, &["root", "CAP_NET_ADMIN"])
            .clean_error();
    }
    assert_unchanged(&w.host, &hs, "host after detach/gc without privileges");
    assert_eq!(w.ls(), root_ls, "records unchanged");
    let r = nobody(&["ls", "--json"]);
    r.ok();
    assert_eq!(ls_array(&r).len(), 3, "{}", r.stdout);
    let t = nobody(&["ls"]);
    t.ok();
    assert!(t.stdout.starts_with("STATE"), "{}", t.stdout);
}

/// `ls` without root tells alive from stale just as `ls` as root does (a PID guest's
/// /proc/PID/ns/net cannot be opened or stat'ed by another user).
#[test]
fn ls_without_root_sees_the_same_states() {
    need_root!();
    let (w, _guests, root_ls) = world_for_nobody();
    let bc = BinCopy::new();
    let r = pipework_with(
        &w.host,
        &["ls", "--json"],
        &w.opts(Some(65534), Some(bc.bin())),
    );
    r.ok();
    let states = |ls: &[Value]| -> Vec<(String, String)> {
        ls.iter()
            .map(|e| (e["guest"].to_string(), e["state"].to_string()))
            .collect()
    };
    assert_eq!(
        states(&ls_array(&r)),
        states(&root_ls),
        "(guest, state) as uid 65534 vs as root"
    );
    assert_eq!(ls_array(&r), root_ls, "the whole listing");
}
