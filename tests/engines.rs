//! Guests from every container engine, with real engines: Podman (its API socket), LXC (by
//! name, `lxc-info` with a private LXC path) and containerd (`containerd:NS/ID`,
//! `containerd:ID`), and a name found in both Docker and Podman. For each engine: attach
//! (`ENGINE:NAME` and, where a bare word reaches it, the bare name) → the interface is inside →
//! `pipework ls --json` shows it with the right engine → `pipework detach ENGINE:NAME` → nothing
//! left; unknown names and stopped containers fail with exit 1 and a message that names them.
//!
//! Each test starts its own private engine (tests/common/engines.rs) and its own host
//! namespace and runtime directory; pipework is pointed at them with CONTAINER_HOST, LXC_PATH,
//! CONTAINERD_ADDRESS and PIPEWORK_RUNTIME_DIR. Subnets 10.232.x.x.

mod common;
#[path = "common/engines.rs"]
mod engines;

use common::*;
use engines::*;

use serde_json::Value;

/// Skips (with the reason printed) unless root and the engine's programs are installed.
macro_rules! need_engine {
    ($engine:expr, $($p:expr),+ $(,)?) => {
        if !engine_or_skip(&test_name(), $engine, &[$($p),+]) {
            return;
        }
    };
}

const PODMAN: &[&str] = &["podman"];
const LXC: &[&str] = &[
    "lxc-create",
    "lxc-start",
    "lxc-info",
    "lxc-stop",
    "lxc-destroy",
];
const CONTAINERD: &[&str] = &["containerd", "ctr", "runc"];

/// This test's host namespace, runtime directory and engine addresses. Declare engines after
/// it: they drop first (an LXC container's monitor lives in the host namespace).
struct World {
    env: Vec<(String, String)>,
    /// PIPEWORK_RUNTIME_DIR, removed on drop.
    _rt: TempDir,
    host: Netns,
}

impl World {
    fn new() -> World {
        let rt = TempDir::new("run");
        World {
            env: vec![
                ("PIPEWORK_RUNTIME_DIR".into(), rt.str().into()),
                // Never the machine's own engines.
                (
                    "CONTAINER_HOST".into(),
                    "unix:///nonexistent/pwt-no-podman.sock".into(),
                ),
                ("LXC_PATH".into(), "/nonexistent/pwt-no-lxc".into()),
                (
                    "CONTAINERD_ADDRESS".into(),
                    "/nonexistent/pwt-no-containerd.sock".into(),
                ),
            ],
            _rt: rt,
            host: Netns::new("h"),
        }
    }

    fn set(&mut self, k: &str, v: &str) {
        self.env.retain(|(x, _)| x != k);
        self.env.push((k.into(), v.into()));
    }

    fn with_podman(mut self, p: &Podman) -> World {
        self.set("CONTAINER_HOST", &p.host());
        self
    }

    fn with_lxc(mut self, l: &Lxc) -> World {
        self.set("LXC_PATH", l.path());
        self
    }

    fn with_containerd(mut self, c: &Containerd) -> World {
        self.set("CONTAINERD_ADDRESS", c.address());
        self
    }

    fn pw(&self, args: &[&str]) -> Run {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        pipework_env(&self.host, args, &env)
    }

    fn ls(&self) -> Vec<Value> {
        match self.pw(&["ls", "--json"]).ok().json() {
            Value::Array(v) => v,
            other => panic!("ls --json is an array: {other}"),
        }
    }
}

/// Attaches `spec` as eth1 (and, when given, the bare name as eth2), checks the report, the
/// interfaces and `ls`, detaches with `spec` and checks that nothing is left.
fn attach_ls_detach(
    w: &World,
    spec: &str,
    bare: Option<&str>,
    guest: &dyn Ns,
    engine: &str,
    name: &str,
    subnet: u8,
) {
    let host_before = snapshot(&w.host);
    let guest_before = snapshot(guest);
    let a1 = format!("10.232.{subnet}.5/24");
    let j = w.pw(&["--json", "br1", spec, &a1]).ok().json();
    assert_eq!(j["guest"]["engine"], engine, "{j}");
    assert_eq!(j["guest"]["spec"], spec, "{j}");
    assert_eq!(j["guest"]["name"], name, "{j}");
    assert_eq!(
        j["netns"]["inode"].as_u64(),
        Some(inode_of(&guest.ns_path())),
        "{j}"
    );
    assert_attached(&w.host, "br1", guest, "eth1", &[&a1]);
    let mut want = vec!["eth1"];
    if let Some(b) = bare {
        let a2 = format!("10.232.{subnet}.6/24");
        let j = w.pw(&["--json", "br1", "-i", "eth2", b, &a2]).ok().json();
        assert_eq!(j["guest"]["engine"], engine, "bare name {b}: {j}");
        assert_attached(&w.host, "br1", guest, "eth2", &[&a2]);
        want.push("eth2");
    }

    let ls = w.ls();
    let mut got: Vec<&str> = ls.iter().filter_map(|e| e["ifname"].as_str()).collect();
    got.sort();
    assert_eq!(got, want, "ls --json lists our interfaces: {ls:?}");
    for e in &ls {
        assert_eq!(e["engine"], engine, "{e}");
        assert_eq!(e["state"], "alive", "{e}");
        assert_eq!(e["guest_name"], name, "{e}");
    }

    let d = w.pw(&["detach", spec]);
    d.ok();
    assert!(d.stdout.contains("eth1"), "detach says what it removed");
    assert!(w.ls().is_empty(), "no record left after detach");
    assert_unchanged(&w.host, &host_before, "host after detach");
    assert_unchanged(guest, &guest_before, "guest after detach");
}

/// An attach that must fail with exit 1, a message containing every needle, and no change.
fn refused(w: &World, spec: &str, needles: &[&str]) {
    let before = snapshot(&w.host);
    let r = w.pw(&["br1", spec, "10.232.250.5/24"]);
    for n in needles {
        r.fails(1, n);
    }
    r.clean_error();
    assert_unchanged(&w.host, &before, spec);
    assert!(w.ls().is_empty(), "no record after a refused attach");
}

// ---- Podman ----------------------------------------------------------------------------------

#[test]
fn podman_attach_ls_detach() {
    need_engine!("Podman", PODMAN[0]);
    let podman = Podman::start();
    let w = World::new().with_podman(&podman);
    let c = podman.run(&unique("p"));
    let spec = format!("podman:{}", c.name);
    attach_ls_detach(&w, &spec, Some(&c.name), &c, "podman", &c.name, 1);
    // The report's ID is Podman's.
    let j = w.pw(&["--json", "br1", &spec, "10.232.1.7/24"]).ok().json();
    assert_eq!(j["guest"]["id"], c.id.as_str(), "{j}");
    assert_eq!(j["guest"]["pid"].as_u64(), Some(c.pid as u64), "{j}");
    w.pw(&["detach", &spec]).ok();
}

#[test]
fn podman_unknown_name() {
    need_engine!("Podman", PODMAN[0]);
    let podman = Podman::start();
    let w = World::new().with_podman(&podman);
    let name = unique("nosuch");
    refused(
        &w,
        &format!("podman:{name}"),
        &[&name, "Podman", "not found"],
    );
    // No Podman at all: the message says where it looked and what to do.
    let w = World::new();
    refused(
        &w,
        &format!("podman:{name}"),
        &[&name, "pwt-no-podman.sock", "podman system service"],
    );
}

#[test]
fn podman_stopped_container() {
    need_engine!("Podman", PODMAN[0]);
    let podman = Podman::start();
    let w = World::new().with_podman(&podman);
    let c = podman.create(&unique("p"));
    refused(&w, &format!("podman:{}", c.name), &[&c.name, "not running"]);
    refused(&w, &c.name, &[&c.name, "not running"]);
}

// ---- LXC -------------------------------------------------------------------------------------

#[test]
fn lxc_attach_ls_detach() {
    need_engine!("LXC", LXC[0], LXC[1], LXC[2], LXC[3], LXC[4]);
    let w0 = World::new();
    let lxc = Lxc::new(&w0.host);
    let w = w0.with_lxc(&lxc);
    let c = lxc.run(&unique("l"));
    let spec = format!("lxc:{}", c.name);
    attach_ls_detach(&w, &spec, Some(&c.name), &c, "lxc", &c.name, 2);
}

#[test]
fn lxc_unknown_name() {
    need_engine!("LXC", LXC[0], LXC[1], LXC[2], LXC[3], LXC[4]);
    let w0 = World::new();
    let lxc = Lxc::new(&w0.host);
    let w = w0.with_lxc(&lxc);
    let name = unique("nosuch");
    refused(&w, &format!("lxc:{name}"), &[&name, "LXC", lxc.path()]);
}

#[test]
fn lxc_stopped_container() {
    need_engine!("LXC", LXC[0], LXC[1], LXC[2], LXC[3], LXC[4]);
    let w0 = World::new();
    let lxc = Lxc::new(&w0.host);
    let w = w0.with_lxc(&lxc);
    let c = lxc.create(&unique("l"));
    refused(
        &w,
        &format!("lxc:{}", c.name),
        &[&c.name, "not running", "STOPPED", "lxc-start"],
    );
    refused(&w, &c.name, &[&c.name, "not running"]);
}

// ---- containerd ------------------------------------------------------------------------------

#[test]
fn containerd_attach_ls_detach() {
    need_engine!("containerd", CONTAINERD[0], CONTAINERD[1], CONTAINERD[2]);
    let ctrd = Containerd::start();
    let w = World::new().with_containerd(&ctrd);
    let ns = unique("ns");
    let id = unique("c");
    let pid = ctrd.run(&ns, &id);
    let guest = TaskNs(pid);
    let spec = format!("containerd:{ns}/{id}");
    attach_ls_detach(&w, &spec, None, &guest, "containerd", &id, 3);

    // `containerd:ID` is namespace "default".
    let id2 = unique("c");
    let pid2 = ctrd.run("default", &id2);
    let spec2 = format!("containerd:{id2}");
    let j = w
        .pw(&["--json", "br1", &spec2, "10.232.4.5/24"])
        .ok()
        .json();
    assert_eq!(j["guest"]["engine"], "containerd", "{j}");
    assert_eq!(j["guest"]["pid"].as_u64(), Some(pid2 as u64), "{j}");
    assert_eq!(j["guest"]["id"], format!("default/{id2}").as_str(), "{j}");
    assert_attached(&w.host, "br1", &TaskNs(pid2), "eth1", &["10.232.4.5/24"]);
    w.pw(&["detach", &spec2]).ok();
    assert!(w.ls().is_empty());
    // A bare ID is never looked up in containerd (IDs need their namespace).
    refused(&w, &id2, &[&id2, "containerd:NAMESPACE/ID"]);
}

#[test]
fn containerd_unknown_name() {
    need_engine!("containerd", CONTAINERD[0], CONTAINERD[1], CONTAINERD[2]);
    let ctrd = Containerd::start();
    let w = World::new().with_containerd(&ctrd);
    let id = unique("nosuch");
    refused(
        &w,
        &format!("containerd:pwt-ns/{id}"),
        &[&id, "containerd namespace pwt-ns", "not found"],
    );
    refused(&w, &format!("containerd:{id}"), &[&id, "namespace default"]);
    // No containerd at that address.
    let w = World::new();
    refused(
        &w,
        &format!("containerd:{id}"),
        &[&id, "pwt-no-containerd.sock", "CONTAINERD_ADDRESS"],
    );
}

#[test]
fn containerd_stopped_task() {
    need_engine!("containerd", CONTAINERD[0], CONTAINERD[1], CONTAINERD[2]);
    let ctrd = Containerd::start();
    let w = World::new().with_containerd(&ctrd);
    let ns = unique("ns");
    let id = unique("c");
    ctrd.run(&ns, &id);
    let spec = format!("containerd:{ns}/{id}");
    let host_before = snapshot(&w.host);
    w.pw(&["br1", &spec, "10.232.6.5/24"]).ok();
    ctrd.kill(&ns, &id);
    // The attachment of a task that died: stale, and `detach` by the same spec undoes it.
    let ls = w.ls();
    assert_eq!(ls.len(), 1, "{ls:?}");
    assert_eq!(ls[0]["state"], "stale", "{ls:?}");
    w.pw(&["detach", &spec]).ok();
    assert!(w.ls().is_empty(), "no record left after detach");
    assert_unchanged_soon(&w.host, &host_before, "host after detach of a dead task");

    refused(&w, &spec, &[&id, "not running", "stopped"]);
    // The container without a task at all.
    ctrd.delete_task(&ns, &id);
    refused(&w, &spec, &[&id, "not running", "no task"]);
}

/// A task's namespace, by its PID.
struct TaskNs(u32);
impl Ns for TaskNs {
    fn ns_path(&self) -> std::path::PathBuf {
        format!("/proc/{}/ns/net", self.0).into()
    }
    fn describe(&self) -> String {
        format!("containerd task (pid {})", self.0)
    }
}

// ---- one name, two engines -------------------------------------------------------------------

/// A Docker and a Podman container both named NAME: the bare name is refused, listing both;
/// each prefix picks its own.
#[test]
fn docker_and_podman_same_name_is_ambiguous() {
    need_engine!("Podman", PODMAN[0]);
    let dh = need_docker!();
    let podman = Podman::start();
    let w = World::new().with_podman(&podman);
    let d = Container::run(&dh);
    let p = podman.run(&d.name);
    refused(
        &w,
        &d.name,
        &[
            "ambiguous",
            &format!("docker:{}", d.name),
            &format!("podman:{}", d.name),
            "prefix",
        ],
    );
    let j = w
        .pw(&[
            "--json",
            "br1",
            &format!("podman:{}", p.name),
            "10.232.5.5/24",
        ])
        .ok()
        .json();
    assert_eq!(j["guest"]["engine"], "podman", "{j}");
    assert_attached(&w.host, "br1", &p, "eth1", &["10.232.5.5/24"]);
    let j = w
        .pw(&[
            "--json",
            "br1",
            &format!("docker:{}", d.name),
            "10.232.5.6/24",
        ])
        .ok()
        .json();
    assert_eq!(j["guest"]["engine"], "docker", "{j}");
    assert_attached(&w.host, "br1", &d, "eth1", &["10.232.5.6/24"]);
    // Detaching one leaves the other.
    w.pw(&["detach", &format!("podman:{}", p.name)]).ok();
    let ls = w.ls();
    assert_eq!(ls.len(), 1, "{ls:?}");
    assert_eq!(ls[0]["engine"], "docker", "{ls:?}");
    w.pw(&["detach", &format!("docker:{}", d.name)]).ok();
    assert!(w.ls().is_empty());
}
