//! Every way of naming a guest: PID, `ip netns` name, namespace file path, Docker container
//! name / ID / ID prefix, forced prefixes (`pid:`, `netns:`, `docker:`), and the failures:
//! unknown guests and stopped containers. Subnets 10.212.x.x.

mod common;
use common::*;

use serde_json::Value;

/// Attaches `spec` (which must resolve to `guest`) and checks the result and the JSON `guest`
/// object's engine.
fn attach_and_check(host: &Netns, spec: &str, guest: &dyn Ns, addr: &str, engine: &str) -> Value {
    let j = pipework(host, &["--json", "br1", spec, addr]).ok().json();
    assert_attached(host, "br1", guest, "eth1", &[addr]);
    // `spec` is the guest as given; a `pid:`/`netns:`/`docker:` prefix may be dropped.
    let bare = spec.split_once(':').map_or(spec, |(_, rest)| rest);
    let got = j["guest"]["spec"].as_str().unwrap_or_default();
    assert!(
        got == spec || got == bare,
        "guest.spec is {spec:?} or {bare:?}: {j}"
    );
    assert_eq!(j["guest"]["engine"], engine, "{j}");
    assert_eq!(
        j["netns"]["inode"].as_u64(),
        Some(inode_of(&guest.ns_path())),
        "{j}"
    );
    j
}

#[test]
fn pid_guest() {
    need_root!();
    let host = Netns::new("h");
    let guest = PidGuest::new();
    let pid = guest.pid.to_string();
    let j = attach_and_check(&host, &pid, &guest, "10.212.1.5/24", "pid");
    assert_eq!(j["guest"]["pid"].as_u64(), Some(guest.pid as u64), "{j}");
    assert_eq!(
        j["host_ifname"].as_str().map(String::from),
        default_host_name("eth1", guest.pid),
        "{j}"
    );
    // Unlike the original script, no /var/run/netns/<PID> entry is made (or left behind).
    for dir in ["/run/netns", "/var/run/netns"] {
        let p = std::path::Path::new(dir).join(&pid);
        assert!(!p.exists(), "{} left behind", p.display());
    }
}

#[test]
fn pid_prefix() {
    need_root!();
    let host = Netns::new("h");
    let guest = PidGuest::new();
    let spec = format!("pid:{}", guest.pid);
    let j = attach_and_check(&host, &spec, &guest, "10.212.2.5/24", "pid");
    assert_eq!(j["guest"]["pid"].as_u64(), Some(guest.pid as u64), "{j}");
}

#[test]
fn netns_name_guest() {
    need_root!();
    let host = Netns::new("h");
    let guest = Netns::new("g");
    attach_and_check(&host, &guest.name, &guest, "10.212.3.5/24", "netns");
}

#[test]
fn netns_prefix() {
    need_root!();
    let host = Netns::new("h");
    let guest = Netns::new("g");
    let spec = format!("netns:{}", guest.name);
    attach_and_check(&host, &spec, &guest, "10.212.4.5/24", "netns");
}

/// A netns whose name is all digits is still reachable with the `netns:` prefix (a bare
/// all-digit spec means a PID).
#[test]
fn netns_prefix_with_numeric_name() {
    need_root!();
    let host = Netns::new("h");
    // `ip netns` names must be unique machine-wide: derive digits from the random name.
    let digits: String = format!(
        "9{}",
        u64::from_str_radix(&rand_hex(8), 16).unwrap() % 1_000_000_000
    );
    let numeric = Netns::named(&digits);
    let spec = format!("netns:{digits}");
    attach_and_check(&host, &spec, &numeric, "10.212.5.5/24", "netns");
}

#[test]
fn path_of_proc_pid_ns_net() {
    need_root!();
    let host = Netns::new("h");
    let guest = PidGuest::new();
    let path = guest.ns_path().display().to_string();
    let j = attach_and_check(&host, &path, &guest, "10.212.6.5/24", "path");
    assert_eq!(j["netns"]["path"], path.as_str(), "{j}");
}

#[test]
fn path_of_run_netns() {
    need_root!();
    let host = Netns::new("h");
    let guest = Netns::new("g");
    let path = guest.path().display().to_string();
    attach_and_check(&host, &path, &guest, "10.212.7.5/24", "path");
}

#[test]
fn docker_name() {
    let dh = need_docker!();
    let host = Netns::new("h");
    let c = Container::run(&dh);
    let j = attach_and_check(&host, &c.name, &c, "10.212.8.5/24", "docker");
    check_docker_json(&j, &c);
}

#[test]
fn docker_prefix() {
    let dh = need_docker!();
    let host = Netns::new("h");
    let c = Container::run(&dh);
    let spec = format!("docker:{}", c.name);
    let j = attach_and_check(&host, &spec, &c, "10.212.9.5/24", "docker");
    check_docker_json(&j, &c);
}

#[test]
fn docker_full_id() {
    let dh = need_docker!();
    let host = Netns::new("h");
    let c = Container::run(&dh);
    let j = attach_and_check(&host, &c.id, &c, "10.212.10.5/24", "docker");
    check_docker_json(&j, &c);
}

#[test]
fn docker_id_prefix() {
    let dh = need_docker!();
    let host = Netns::new("h");
    let c = Container::run(&dh);
    let short = &c.id[..12];
    let j = attach_and_check(&host, short, &c, "10.212.11.5/24", "docker");
    check_docker_json(&j, &c);
}

fn check_docker_json(j: &Value, c: &Container) {
    assert_eq!(j["guest"]["id"], c.id.as_str(), "{j}");
    let name = j["guest"]["name"].as_str().unwrap_or_default();
    assert_eq!(name.trim_start_matches('/'), c.name, "{j}");
    assert_eq!(j["guest"]["pid"].as_u64(), Some(c.pid as u64), "{j}");
}

// ---- failures: exit 1, the guest named, nothing left -----------------------------------------

fn check_unknown(spec: &str, needle: &str, env: &[(&str, &str)]) {
    let host = Netns::new("h");
    let before = snapshot(&host);
    pipework_env(&host, &["br1", spec, "10.212.20.5/24"], env)
        .fails(1, needle)
        .clean_error();
    assert_unchanged(&host, &before, "unknown guest");
}

#[test]
fn unknown_name() {
    need_root!();
    let name = unique("nosuch");
    check_unknown(&name, &name, &[]);
}

#[test]
fn unknown_name_docker_unreachable() {
    need_root!();
    let name = unique("nosuch");
    check_unknown(
        &name,
        &name,
        &[("DOCKER_HOST", "unix:///nonexistent/pwt-docker.sock")],
    );
}

#[test]
fn unknown_docker_prefixed() {
    need_root!();
    let name = unique("nosuch");
    check_unknown(&format!("docker:{name}"), &name, &[]);
}

#[test]
fn unknown_pid() {
    need_root!();
    // Above the kernel's PID_MAX_LIMIT (4194304): never a live process.
    check_unknown("999999999", "999999999", &[]);
}

#[test]
fn unknown_pid_prefixed() {
    need_root!();
    check_unknown("pid:999999999", "999999999", &[]);
}

#[test]
fn unknown_netns_prefixed() {
    need_root!();
    let name = unique("nosuch");
    check_unknown(&format!("netns:{name}"), &name, &[]);
}

#[test]
fn unknown_path() {
    need_root!();
    let path = format!("/nonexistent/{}/ns/net", unique("p"));
    check_unknown(&path, &path, &[]);
}

#[test]
fn path_that_is_not_a_namespace() {
    need_root!();
    let dir = std::env::temp_dir().join(unique("f"));
    std::fs::write(&dir, b"not a namespace\n").unwrap();
    let path = dir.display().to_string();
    let host = Netns::new("h");
    let before = snapshot(&host);
    let r = pipework(&host, &["br1", &path, "10.212.21.5/24"]);
    let _ = std::fs::remove_file(&dir);
    r.fails(1, &path).clean_error();
    assert_unchanged(&host, &before, "path that is not a netns");
}

#[test]
fn stopped_container_never_started() {
    let dh = need_docker!();
    let host = Netns::new("h");
    let c = Container::created(&dh);
    let before = snapshot(&host);
    pipework(&host, &["br1", &c.name, "10.212.22.5/24"])
        .fails(1, "not running")
        .clean_error();
    assert_unchanged(&host, &before, "stopped container");
}

#[test]
fn stopped_container_after_running() {
    let dh = need_docker!();
    let host = Netns::new("h");
    let mut c = Container::run(&dh);
    c.stop();
    let before = snapshot(&host);
    pipework(&host, &["br1", &c.name, "10.212.23.5/24"])
        .fails(1, "not running")
        .clean_error();
    assert_unchanged(&host, &before, "stopped container");
}
