//! `pipework doctor [--json]`, run as the built binary inside a test-made network namespace
//! (never the machine's own): its verdicts, its output shapes, and that it changed nothing —
//! no link left behind, no module loaded, no runtime directory created.
//!
//! Kernel verdicts are compared with the test's own probe (`ip link add` / `tc qdisc add` in
//! another fresh namespace), so the assertions hold on a kernel with more support than this
//! machine's.

mod common;
use common::*;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

const AREAS: &[&str] = &["kernel", "ovs", "engine", "cni", "runtime", "privilege"];

/// What could betray a module load: /proc/modules (when the kernel has modules at all) and
/// the names under /sys/module.
fn modules_now() -> (Option<String>, Vec<String>) {
    let proc = std::fs::read_to_string("/proc/modules").ok().map(|s| {
        // The use counts change with other tests' work; the set of modules is what matters.
        let mut names: Vec<&str> = s.lines().filter_map(|l| l.split(' ').next()).collect();
        names.sort();
        names.join(" ")
    });
    let mut sys: Vec<String> = std::fs::read_dir("/sys/module")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    sys.sort();
    (proc, sys)
}

/// The checks of a `--json` run, by (area, name).
fn checks_of(v: &Value) -> BTreeMap<(String, String), Value> {
    v["checks"]
        .as_array()
        .expect("checks is an array")
        .iter()
        .map(|c| {
            (
                (
                    c["area"].as_str().unwrap().to_string(),
                    c["name"].as_str().unwrap().to_string(),
                ),
                c.clone(),
            )
        })
        .collect()
}

fn kernel<'a>(checks: &'a BTreeMap<(String, String), Value>, name: &str) -> &'a Value {
    checks
        .get(&("kernel".to_string(), name.to_string()))
        .unwrap_or_else(|| panic!("no kernel check {name:?} in {checks:#?}"))
}

/// The probe would have loaded a module: doctor said so instead, and so must not we.
fn guarded(c: &Value) -> bool {
    c["detail"]
        .as_str()
        .unwrap_or("")
        .contains("but not loaded")
}

/// The test's own probe of a kernel feature, in a fresh namespace of its own.
fn own_probe(name: &str) -> bool {
    let ns = Netns::new("docp");
    let ok = |args: &[&str]| ip_raw(&ns, args).status.success();
    match name {
        "dummy" => ok(&["link", "add", "d0", "type", "dummy"]),
        "802.1Q (vlan)" => {
            ok(&["link", "add", "b0", "type", "bridge"])
                && ok(&[
                    "link", "add", "link", "b0", "name", "v0", "type", "vlan", "id", "10",
                ])
        }
        "vlan_filtering" => ok(&["link", "add", "b0", "type", "bridge", "vlan_filtering", "1"]),
        "netem" | "tbf" => {
            let args: &[&str] = if name == "netem" {
                &["qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"]
            } else {
                &[
                    "qdisc", "add", "dev", "lo", "root", "tbf", "rate", "8mbit", "burst", "100kb",
                    "latency", "50ms",
                ]
            };
            cmd_in(&ns, "tc")
                .args(args)
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        }
        other => panic!("no own probe for {other}"),
    }
}

#[test]
fn doctor_reports_this_kernel_and_changes_nothing() {
    need_root!();
    let ns = Netns::new("doc");
    let before = snapshot(&ns);
    let names_before = link_names(&ns);
    let mods_before = modules_now();
    let rt = test_runtime_dir();
    let rt_existed = rt.exists();

    let text = pipework(&ns, &["doctor"]);
    text.ok();
    let json = pipework(&ns, &["doctor", "--json"]);
    json.ok();

    // Nothing left behind, nothing loaded, nothing created.
    assert_unchanged(&ns, &before, "pipework doctor");
    assert_eq!(link_names(&ns), names_before);
    assert_eq!(modules_now(), mods_before, "a module was loaded by doctor");
    if !rt_existed {
        assert!(!rt.exists(), "doctor created {}", rt.display());
    }

    // --json: exactly one JSON document on stdout, no text around it.
    let out = json.stdout.trim();
    assert!(
        out.starts_with('{') && out.ends_with('}'),
        "{}",
        json.show()
    );
    let v = json.json();
    assert!(
        !out.contains("\x1b["),
        "escape codes in JSON\n{}",
        json.show()
    );
    assert_eq!(v["ok"], true, "{}", json.show());
    let checks = checks_of(&v);
    assert!(!checks.is_empty());
    for ((area, name), c) in &checks {
        assert!(AREAS.contains(&area.as_str()), "area {area} of {name}");
        let status = c["status"].as_str().unwrap();
        assert!(
            ["ok", "missing", "warning"].contains(&status),
            "{name}: {status}"
        );
        assert!(
            !c["detail"].as_str().unwrap().is_empty(),
            "{name}: no detail"
        );
        if status != "ok" {
            let fix = c["fix"].as_str().unwrap_or("");
            assert!(
                !fix.is_empty(),
                "{area}/{name} is {status} without a fix: {c}"
            );
        }
    }
    for area in ["kernel", "ovs", "engine", "cni", "runtime", "privilege"] {
        assert!(
            checks.keys().any(|(a, _)| a == area),
            "no {area} check\n{}",
            json.show()
        );
    }

    // The basics, and what this test's kernel is guaranteed to have.
    for name in ["bridge", "veth", "vxlan", "tbf"] {
        let c = kernel(&checks, if name == "vxlan" { "VXLAN" } else { name });
        if guarded(c) {
            continue; // a loadable module, reported instead of loaded
        }
        assert_eq!(c["status"], "ok", "{name}: {c}");
    }
    assert_eq!(
        checks[&("privilege".to_string(), "capabilities".to_string())]["status"],
        "ok"
    );

    // What this machine's kernel lacks (and a richer one may have): doctor agrees with an
    // independent probe either way.
    for name in ["802.1Q (vlan)", "dummy", "vlan_filtering", "netem", "tbf"] {
        let c = kernel(&checks, name);
        if guarded(c) {
            assert_eq!(
                c["status"],
                if name == "vlan_filtering" {
                    "warning"
                } else {
                    "missing"
                }
            );
            continue;
        }
        if matches!(name, "netem" | "tbf") && !have_program("tc") {
            continue; // nothing to compare with
        }
        let have = own_probe(name);
        let want = if have { "ok" } else { "missing" };
        assert_eq!(
            c["status"], want,
            "{name}: doctor says {c}, `ip`/`tc` say {have}"
        );
    }
    // The IPoIB probe never needs InfiniBand hardware: it is ok or missing, never unknown.
    let ib = kernel(&checks, "IPoIB");
    assert!(
        ib["status"] == "ok" || ib["status"] == "missing",
        "IPoIB: {ib}"
    );

    // Text: one line per check (same verdicts as the JSON), then the summary.
    let lines: Vec<&str> = text.stdout.lines().collect();
    assert_eq!(lines.len(), checks.len() + 1, "{}", text.show());
    assert!(!text.stdout.contains("\x1b["), "colour without a terminal");
    for ((area, name), c) in &checks {
        let line = lines
            .iter()
            .find(|l| {
                let mut w = l.split_whitespace();
                w.next();
                w.next() == Some(area.as_str()) && l.contains(&format!(" {name} "))
            })
            .unwrap_or_else(|| panic!("no text line for {area}/{name}\n{}", text.show()));
        let status = c["status"].as_str().unwrap();
        assert!(line.starts_with(&format!("{status} ")), "{line}");
        assert_eq!(line.contains(" — fix: "), status != "ok", "{line}");
    }
    let summary = lines.last().unwrap();
    let s = &v["summary"];
    assert!(
        summary.starts_with(&format!(
            "{} ok, {} missing, {} warning",
            s["ok"], s["missing"], s["warning"]
        )),
        "{summary} vs {s}"
    );
    let vlan = lines.iter().find(|l| l.contains("802.1Q")).unwrap();
    if vlan.starts_with("missing") {
        assert!(vlan.contains("fix: modprobe 8021q"), "{vlan}");
    }
}

/// A fake engine: answers `GET /_ping` with 200, or (silent) accepts and never answers.
fn fake_engine(path: PathBuf, silent: bool) -> std::thread::JoinHandle<()> {
    let _ = std::fs::remove_file(&path);
    let l = UnixListener::bind(&path).expect("bind fake engine");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().take(4) {
            let Ok(mut s) = s else { return };
            if silent {
                held.push(s); // never answered, never closed until the test ends
                continue;
            }
            let mut buf = [0u8; 1024];
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nOK");
        }
    })
}

#[test]
fn doctor_reaches_engines_and_never_hangs() {
    need_root!();
    let ns = Netns::new("doe");
    let dir = std::env::temp_dir().join(format!("pwt-doctor-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("ovs")).unwrap();
    let docker = dir.join("docker.sock");
    let podman = dir.join("podman.sock");
    let containerd = dir.join("containerd.sock");
    let _d = fake_engine(docker.clone(), false);
    let _p = fake_engine(podman.clone(), true);
    let _c = fake_engine(containerd.clone(), false);
    let _o = fake_engine(dir.join("ovs/db.sock"), false);
    let dh = format!("unix://{}", docker.display());
    let ph = format!("unix://{}", podman.display());
    let ovs = dir.join("ovs").display().to_string();
    let cd = containerd.display().to_string();
    let started = Instant::now();
    let run = pipework_env(
        &ns,
        &["doctor", "--json"],
        &[
            ("DOCKER_HOST", &dh),
            ("CONTAINER_HOST", &ph),
            ("CONTAINERD_ADDRESS", &cd),
            ("OVS_RUNDIR", &ovs),
        ],
    );
    let took = started.elapsed();
    run.ok();
    // The silent Podman costs one deadline (2 s), not a hang.
    assert!(took < Duration::from_secs(6), "doctor took {took:?}");
    let checks = checks_of(&run.json());
    let engine = |n: &str| checks[&("engine".to_string(), n.to_string())].clone();
    assert_eq!(engine("docker")["status"], "ok", "{}", run.show());
    let p = engine("podman");
    assert_eq!(p["status"], "warning", "{p}");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("no answer within 2 s"),
        "{p}"
    );
    // containerd and OVS also need their command-line tools to be usable.
    let c = engine("containerd");
    let want = if have_program("ctr") { "ok" } else { "warning" };
    assert_eq!(c["status"], want, "{c}");
    let o = &checks[&("ovs".to_string(), "Open vSwitch".to_string())];
    let want = if have_program("ovs-vsctl") {
        "ok"
    } else {
        "warning"
    };
    assert_eq!(o["status"], want, "{o}");

    // A remote DOCKER_HOST is a warning with a fix, not a failure.
    let run = pipework_env(
        &ns,
        &["doctor", "--json"],
        &[("DOCKER_HOST", "tcp://10.0.0.1:2375")],
    );
    run.ok();
    let checks = checks_of(&run.json());
    let d = &checks[&("engine".to_string(), "docker".to_string())];
    assert_eq!(d["status"], "warning", "{d}");
    assert!(
        d["fix"].as_str().is_some_and(|f| f.contains("DOCKER_HOST")),
        "{d}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
