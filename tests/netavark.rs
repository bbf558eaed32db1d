//! pipework as a netavark plugin, driven the way netavark drives it (plugin-API.md): the
//! binary is exec'd under the name `pipework-netavark` (a symlink in a private directory) with
//! `info`, `create`, `setup NETNS` or `teardown NETNS`, JSON on stdin; the tests read stdout,
//! the exit code and the kernel's state.
//!
//! - `info` answers the plugin and API versions; `create` fills the bridge and gateways and
//!   keeps what it does not know; a bad network is `{"error": …}` and exit 1.
//! - `setup` puts the static IP, MAC and default route on the container interface in the guest
//!   namespace, its host end on the bridge (with the gateway) in a test "host" namespace, and
//!   prints the status block; `teardown` leaves no host veth and no record, twice in a row.
//! - Bad input (malformed JSON, a namespace that does not exist) is a clear error, exit 1, and
//!   leaves nothing behind.
//!
//! Each test has its own host namespace, guest and runtime directory. Subnets 10.226.90+.x.

mod common;
use common::*;

use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Instant;

/// The binary under netavark's plugin name, and a private runtime directory.
struct Plugin {
    dir: PathBuf,
    rt: RuntimeDir,
}

impl Plugin {
    fn new() -> Plugin {
        let dir = std::env::temp_dir().join(format!("pwt-nvbin-{}", rand_hex(12)));
        std::fs::create_dir_all(&dir).expect("mkdir plugin dir");
        std::os::unix::fs::symlink(BIN, dir.join("pipework-netavark")).expect("symlink");
        Plugin {
            dir,
            rt: RuntimeDir::new(),
        }
    }

    /// Runs `pipework-netavark ARGS` inside `host` with `stdin`.
    fn run(&self, host: &dyn Ns, args: &[&str], stdin: &str) -> Run {
        let bin = self.dir.join("pipework-netavark");
        let mut cmd = cmd_in(host, bin.to_str().expect("utf-8"));
        cmd.args(args)
            .env("PIPEWORK_RUNTIME_DIR", &self.rt.dir)
            .env("DOCKER_HOST", "unix:///nonexistent/pwt-no-docker.sock")
            .env_remove("CNI_COMMAND")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let start = Instant::now();
        let mut child = cmd.spawn().expect("spawn pipework-netavark");
        let mut input = child.stdin.take().expect("stdin");
        let data = stdin.as_bytes().to_vec();
        let writer = std::thread::spawn(move || {
            let _ = input.write_all(&data);
        });
        let out = match wait_timeout(child, RUN_TIMEOUT) {
            Ok(o) => o,
            Err((o, ())) => panic!(
                "pipework-netavark {args:?} timed out: {}",
                String::from_utf8_lossy(&o.stderr)
            ),
        };
        let _ = writer.join();
        Run {
            args: args.iter().map(|s| s.to_string()).collect(),
            code: code_of(&out),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed: start.elapsed(),
        }
    }

    /// Every record file under the runtime directory.
    fn records(&self) -> Vec<PathBuf> {
        files_below(&self.rt.dir, Some("json"))
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The error object of a failed run: exit 1 and `{"error": "..."}` on stdout.
fn error_of(r: &Run) -> String {
    assert_eq!(r.code, 1, "expected exit code 1: {r:?}");
    let v = r.json();
    let e = v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error string: {r:?}"));
    assert!(!e.is_empty());
    assert!(!r.stderr.contains("panicked at"), "{r:?}");
    e.to_string()
}

fn network(bridge: &str, third: u8) -> Value {
    json!({
        "name": format!("nv{third}"),
        "id": "2f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9",
        "driver": "pipework-netavark",
        "network_interface": bridge,
        "subnets": [{"subnet": format!("10.226.{third}.0/24"), "gateway": format!("10.226.{third}.1")}],
        "ipv6_enabled": false,
        "internal": false,
        "dns_enabled": false,
        "ipam_options": {"driver": "host-local"}
    })
}

fn exec_input(net: &Value, container: &str, ip: &str, mac: &str) -> String {
    json!({
        "container_id": container,
        "container_name": "testctr",
        "port_mappings": [],
        "network": net,
        "network_options": {
            "aliases": ["t"],
            "interface_name": "eth0",
            "static_ips": [ip],
            "static_mac": mac
        }
    })
    .to_string()
}

#[test]
fn info_answers_versions() {
    need_root!();
    let host = Netns::new("nvh");
    let p = Plugin::new();
    for args in [&["info"][..], &[][..]] {
        let r = p.run(&host, args, "");
        r.ok();
        let v = r.json();
        assert_eq!(v["api_version"], "1.0.0", "{r:?}");
        assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    }
    let e = error_of(&p.run(&host, &["frobnicate"], ""));
    assert!(e.contains("unknown subcommand"), "{e}");
}

#[test]
fn create_fills_and_validates() {
    need_root!();
    let host = Netns::new("nvh");
    let p = Plugin::new();
    let input = json!({
        "name": "example1",
        "id": "2f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9",
        "driver": "pipework-netavark",
        "subnets": [{"subnet": "10.226.91.0/24"}],
        "ipv6_enabled": false, "internal": false, "dns_enabled": true,
        "ipam_options": {"driver": "host-local"},
        "options": {"mtu": "1400"},
        "labels": {"team": "net"}
    });
    let r = p.run(&host, &["create"], &input.to_string());
    r.ok();
    let v = r.json();
    assert_eq!(v["name"], "example1");
    assert_eq!(v["id"], input["id"]);
    assert_eq!(v["driver"], "pipework-netavark");
    assert_eq!(v["network_interface"], "pw2f259bab93a");
    assert_eq!(v["subnets"][0]["gateway"], "10.226.91.1");
    assert_eq!(v["options"]["mtu"], "1400");
    assert_eq!(v["labels"]["team"], "net");
    assert_eq!(v["dns_enabled"], false);

    let mut bad = input.clone();
    bad["options"] = json!({"vlan": "7"});
    let e = error_of(&p.run(&host, &["create"], &bad.to_string()));
    assert!(e.contains("unknown option \"vlan\""), "{e}");
    let e = error_of(&p.run(&host, &["create"], "{\"name\": "));
    assert!(e.contains("cannot decode the network configuration"), "{e}");
    // create only answers: nothing was made.
    assert_eq!(link_names(&host), vec!["lo".to_string()]);
}

#[test]
fn setup_then_teardown_twice() {
    need_root!();
    let host = Netns::new("nvh");
    let guest = Netns::new("nvg");
    let p = Plugin::new();
    let bridge = unique("b");
    let net = network(&bridge, 92);
    let cid = format!("c{}", rand_hex(16));
    let mac = "02:aa:bb:cc:dd:01";
    let input = exec_input(&net, &cid, "10.226.92.50", mac);
    let gpath = guest.path();
    let gpath = gpath.to_str().unwrap();

    let r = p.run(&host, &["setup", gpath], &input);
    r.ok();
    let v = r.json();
    let eth0 = &v["interfaces"]["eth0"];
    assert_eq!(eth0["mac_address"], mac, "{r:?}");
    assert_eq!(eth0["subnets"][0]["ipnet"], "10.226.92.50/24");
    assert_eq!(eth0["subnets"][0]["gateway"], "10.226.92.1");
    assert!(v["dns_server_ips"].is_array() && v["dns_search_domains"].is_array());

    // The guest: address, MAC, up, default route through the gateway.
    let l = assert_guest_veth(&guest, "eth0", &["10.226.92.50/24"]);
    assert_eq!(l.mac, mac);
    assert_eq!(
        default_route(&guest, false),
        Some(("10.226.92.1".to_string(), "eth0".to_string()))
    );
    // The host: the bridge with the gateway, one veth port (the deterministic host end).
    let host_end = pipework::cni::plugin::host_ifname(&cid, "eth0");
    let ports = ports_of(&host, &bridge);
    assert_eq!(
        ports.iter().map(|l| l.name.clone()).collect::<Vec<_>>(),
        vec![host_end.clone()]
    );
    assert_eq!(ports[0].kind.as_deref(), Some("veth"));
    assert!(global_cidrs(&host, &bridge).contains(&"10.226.92.1/24".to_string()));
    assert_eq!(p.records().len(), 1, "one record");
    assert!(
        ping(&host, "10.226.92.50"),
        "the host reaches the container"
    );

    // Teardown: nothing left, and a second one is a success too.
    for round in 0..2 {
        let r = p.run(&host, &["teardown", gpath], &input);
        r.ok();
        assert!(r.stdout.trim().is_empty(), "round {round}: {r:?}");
        assert!(link(&host, &host_end).is_none(), "round {round}");
        assert!(ports_of(&host, &bridge).is_empty(), "round {round}");
        assert!(link(&guest, "eth0").is_none(), "round {round}");
        assert!(p.records().is_empty(), "round {round}: {:?}", p.records());
    }
}

#[test]
fn teardown_without_the_namespace() {
    need_root!();
    let host = Netns::new("nvh");
    let guest = Netns::new("nvg");
    let p = Plugin::new();
    let bridge = unique("b");
    let net = network(&bridge, 93);
    let cid = format!("c{}", rand_hex(16));
    let input = exec_input(&net, &cid, "10.226.93.7", "02:aa:bb:cc:dd:02");
    let gpath = guest.path().to_str().unwrap().to_string();
    p.run(&host, &["setup", &gpath], &input).ok();
    let host_end = pipework::cni::plugin::host_ifname(&cid, "eth0");
    assert!(link(&host, &host_end).is_some());
    drop(guest);
    // The namespace is gone (the veth went with it); teardown still clears the record.
    let r = p.run(&host, &["teardown", &gpath], &input);
    r.ok();
    assert!(link(&host, &host_end).is_none());
    assert!(p.records().is_empty(), "{:?}", p.records());
}

#[test]
fn bad_input_is_a_clear_error_and_leaves_nothing() {
    need_root!();
    let host = Netns::new("nvh");
    let guest = Netns::new("nvg");
    let p = Plugin::new();
    let bridge = unique("b");
    let net = network(&bridge, 94);
    let cid = format!("c{}", rand_hex(16));
    let gpath = guest.path().to_str().unwrap().to_string();
    let good = exec_input(&net, &cid, "10.226.94.9", "02:aa:bb:cc:dd:03");
    let before = link_names(&host);

    let e = error_of(&p.run(&host, &["setup", &gpath], "{\"container_id\": 1"));
    assert!(e.contains("cannot decode the setup input"), "{e}");
    let e = error_of(&p.run(&host, &["setup", &gpath], ""));
    assert!(e.contains("no setup input"), "{e}");
    let e = error_of(&p.run(&host, &["setup"], &good));
    assert!(e.contains("namespace path argument is missing"), "{e}");
    let missing = format!("/run/netns/{}", unique("gone"));
    let e = error_of(&p.run(&host, &["setup", &missing], &good));
    assert!(e.contains(&missing) && e.contains("does not exist"), "{e}");
    let outside = exec_input(&net, &cid, "192.0.2.9", "02:aa:bb:cc:dd:03");
    let e = error_of(&p.run(&host, &["setup", &gpath], &outside));
    assert!(e.contains("static IP 192.0.2.9"), "{e}");
    let badmac = exec_input(&net, &cid, "10.226.94.9", "nope");
    let e = error_of(&p.run(&host, &["setup", &gpath], &badmac));
    assert!(e.contains("static_mac"), "{e}");
    let e = error_of(&p.run(&host, &["teardown", &gpath], "[]"));
    assert!(e.contains("cannot decode the teardown input"), "{e}");

    assert_eq!(link_names(&host), before, "nothing made on the host");
    assert_eq!(link_names(&guest), vec!["lo".to_string()]);
    assert!(p.records().is_empty(), "{:?}", p.records());
}

#[test]
fn dual_stack_two_containers_and_network_routes() {
    need_root!();
    let host = Netns::new("nvh");
    let g1 = Netns::new("nvg");
    let g2 = Netns::new("nvg");
    let p = Plugin::new();
    let bridge = unique("b");
    let net = json!({
        "name": "nv95", "id": "95", "driver": "pipework-netavark",
        "network_interface": bridge,
        "subnets": [
            {"subnet": "10.226.95.0/24", "gateway": "10.226.95.1"},
            {"subnet": "fd00:226:95::/64", "gateway": "fd00:226:95::1"}
        ],
        "routes": [{"destination": "10.227.95.0/24", "gateway": "10.226.95.254"}],
        "ipv6_enabled": true, "internal": false, "dns_enabled": false
    });
    let input = |cid: &str, last: u8| {
        json!({
            "container_id": cid, "container_name": cid,
            "network": net,
            "network_options": {
                "interface_name": "eth0",
                "static_ips": [format!("10.226.95.{last}"), format!("fd00:226:95::{last}")]
            }
        })
        .to_string()
    };
    let (c1, c2) = (format!("c{}", rand_hex(16)), format!("c{}", rand_hex(16)));
    let (p1, p2) = (g1.path(), g2.path());
    let r = p.run(&host, &["setup", p1.to_str().unwrap()], &input(&c1, 11));
    r.ok();
    p.run(&host, &["setup", p2.to_str().unwrap()], &input(&c2, 12))
        .ok();
    // No static_mac: the status block still names the interface's real MAC.
    let v = r.json();
    let l = assert_guest_veth(&g1, "eth0", &["10.226.95.11/24", "fd00:226:95::11/64"]);
    assert_eq!(
        v["interfaces"]["eth0"]["mac_address"],
        l.mac.as_str(),
        "{r:?}"
    );
    assert_eq!(
        v["interfaces"]["eth0"]["subnets"][1]["ipnet"],
        "fd00:226:95::11/64"
    );
    assert_eq!(
        v["interfaces"]["eth0"]["subnets"][1]["gateway"],
        "fd00:226:95::1"
    );
    assert_eq!(
        default_route(&g1, true),
        Some(("fd00:226:95::1".to_string(), "eth0".to_string()))
    );
    let r = route_to(&g1, false, "10.227.95.0/24").expect("the network's route");
    assert_eq!(r["gateway"], "10.226.95.254");
    assert_eq!(ports_of(&host, &bridge).len(), 2);
    let mut cidrs = global_cidrs(&host, &bridge);
    cidrs.sort();
    assert_eq!(cidrs, vec!["10.226.95.1/24", "fd00:226:95::1/64"]);
    assert!(ping(&g2, "10.226.95.11"), "containers of one network talk");

    // Tearing one down leaves the other alone.
    p.run(&host, &["teardown", p1.to_str().unwrap()], &input(&c1, 11))
        .ok();
    assert!(link(&g1, "eth0").is_none());
    assert_guest_veth(&g2, "eth0", &["10.226.95.12/24", "fd00:226:95::12/64"]);
    assert_eq!(ports_of(&host, &bridge).len(), 1);
    assert_eq!(p.records().len(), 1);
    p.run(&host, &["teardown", p2.to_str().unwrap()], &input(&c2, 12))
        .ok();
    assert!(ports_of(&host, &bridge).is_empty());
    assert!(p.records().is_empty());
}

#[test]
fn failed_setup_rolls_back() {
    need_root!();
    let host = Netns::new("nvh");
    let guest = Netns::new("nvg");
    let p = Plugin::new();
    // The guest already has an eth0: the attach fails after the host side was started.
    ip(&guest, &["link", "add", "eth0", "type", "bridge"]);
    let bridge = unique("b");
    let net = network(&bridge, 96);
    let cid = format!("c{}", rand_hex(16));
    let input = exec_input(&net, &cid, "10.226.96.5", "02:aa:bb:cc:dd:06");
    let gpath = guest.path().to_str().unwrap().to_string();
    let r = p.run(&host, &["setup", &gpath], &input);
    let e = error_of(&r);
    eprintln!("setup error: {e}");
    assert!(e.contains("eth0"), "{e}");
    let host_end = pipework::cni::plugin::host_ifname(&cid, "eth0");
    assert!(link(&host, &host_end).is_none(), "no host veth left");
    assert!(ports_of(&host, &bridge).is_empty());
    assert_eq!(must_link(&guest, "eth0").kind.as_deref(), Some("bridge"));
    assert!(p.records().is_empty(), "{:?}", p.records());
    // And teardown of what never was is a success.
    p.run(&host, &["teardown", &gpath], &input).ok();
}
