//! The plugin driven by real CNI runtimes (issue 10), each fully private inside a test host
//! (tests/common/cni.rs; TESTENV.md, "CNI runtimes driving a plugin"):
//! - Podman 4.3 on its CNI backend, with a conflist of the plugin first (the bridge plugin's
//!   keys, host-local IPAM with a private dataDir):
//!   - the reference portmap chained after it: `podman run -d --network NET --mac-address …
//!     -p HOSTPORT:PORT` → the container has its address, MAC, MTU and default route, Podman
//!     reads them back, its web server answers on the host port (from another namespace and
//!     from the host); `podman rm -f -t 0` → no bridge port, host veth, reservation, record,
//!     firewall rule or cached result is left. With a 1.0.0 and a 0.3.1 conflist;
//!   - a container that exits by itself is torn down by `podman container cleanup` (conmon's
//!     exit command, with its own environment), then started again and removed;
//!   - two containers, one with `--ip`: they reach each other, removing one leaves the other.
//! - containerd's `ctr run --rm --cni` (1.0.0 and 0.4.0 conflists): the task has its address;
//!   after it exits (ctr's DEL comes with an empty CNI_NETNS) nothing is left.
//!
//! Every test runs twice: against the reference `bridge` plugin (the recipe itself works) and
//! against pipework installed as a copy named `pipework` (`"type": "pipework"`).
//! Subnets 10.235.x.0/24; client links 10.236.x.0/30.

mod common;

use common::cni::*;
use common::*;

use std::time::Duration;

const PODMAN: &[&str] = &["podman", "conmon", "runc", "iptables"];
const CONTAINERD: &[&str] = &["containerd", "ctr", "runc", "containerd-shim-runc-v2"];

macro_rules! need_cni {
    ($runtime:expr, $programs:expr, $plugin:expr) => {
        if !cni_or_skip(&test_name(), $runtime, $programs, $plugin) {
            return;
        }
    };
}

/// The container's interface: one global IPv4 address in the network's subnet, the MTU of
/// the configuration, a default route through the gateway. Returns the address.
fn assert_container_side(c: &dyn Ns, net: &BridgeNet) -> String {
    let eth0 = must_link(c, "eth0");
    assert!(eth0.is_up(), "eth0 is up in {}: {eth0:?}", c.describe());
    assert_eq!(
        eth0.mtu, net.mtu as u64,
        "eth0's MTU (\"mtu\": {})",
        net.mtu
    );
    let v4: Vec<Addr> = addrs(c, Some("eth0"))
        .into_iter()
        .filter(|a| a.family == "inet" && a.scope == "global")
        .collect();
    assert_eq!(v4.len(), 1, "one IPv4 address on eth0: {v4:?}");
    assert!(
        v4[0].local.starts_with(net.prefix()) && v4[0].prefixlen == 24,
        "eth0's address {} is in {}",
        v4[0].cidr(),
        net.subnet
    );
    assert_eq!(
        default_route(c, false),
        Some((net.gateway.clone(), "eth0".to_string())),
        "default route through the gateway (isDefaultGateway)"
    );
    v4[0].local.clone()
}

/// The host side: the bridge is up with the gateway address, and its only port is the peer
/// of the container's eth0 (up, hairpin on, the configured MTU).
fn assert_host_side(host: &RuntimeHost, c: &dyn Ns, net: &BridgeNet) -> Link {
    let br = must_link(host, &net.bridge);
    assert_eq!(
        br.kind.as_deref(),
        Some("bridge"),
        "{} is a bridge",
        net.bridge
    );
    assert!(br.is_up(), "bridge {} is up", net.bridge);
    assert!(
        global_cidrs(host, &net.bridge).contains(&format!("{}/24", net.gateway)),
        "the gateway address is on the bridge (isGateway): {:?}",
        global_cidrs(host, &net.bridge)
    );
    let ports = ports_of(host, &net.bridge);
    assert_eq!(ports.len(), 1, "one port on the bridge: {ports:?}");
    let hend = host_end_of(host, c, "eth0");
    assert_eq!(
        ports[0].name, hend.name,
        "the bridge port is the container's peer"
    );
    assert!(hend.is_up(), "host veth {} is up", hend.name);
    assert_eq!(hend.mtu, net.mtu as u64, "host veth MTU");
    assert_eq!(
        hairpin(&hend),
        Some(true),
        "hairpin on the port (hairpinMode): {:?}",
        hend.raw
    );
    hend
}

/// host-local holds exactly one reservation, of `addr`, for `container_id` on eth0.
fn assert_reserved(net: &BridgeNet, addr: &str, container_id: &str) {
    let r = net.reservations();
    assert_eq!(r.len(), 1, "one host-local reservation: {r:?}");
    assert_eq!(
        r[0].0, addr,
        "the reservation is of the container's address"
    );
    let mut lines = r[0].1.lines().map(str::trim);
    assert_eq!(
        lines.next(),
        Some(container_id),
        "reserved for the container: {r:?}"
    );
    assert_eq!(lines.next(), Some("eth0"), "reserved for its eth0: {r:?}");
}

/// pipework's records: `want` under the runtime directory the runtime handed the plugin, and
/// none under the default /run/pipework of the host (which would mean the plugin ran without
/// PIPEWORK_RUNTIME_DIR somewhere).
fn assert_records(host: &RuntimeHost, runtime_dir: &std::path::Path, plugin: Plugin, want: usize) {
    if !plugin.keeps_records() {
        return;
    }
    let recs = records_in(runtime_dir);
    assert_eq!(
        recs.len(),
        want,
        "pipework records in {}: {recs:?}",
        runtime_dir.display()
    );
    let default = records_in(&host.inside("/run/pipework"));
    assert!(
        default.is_empty(),
        "records in the host's /run/pipework: {default:?}"
    );
}

/// Nothing of the container is left in the host: no bridge port, no veth but `except`, no
/// reservation, no record, no firewall rule naming its address or ID.
fn assert_nothing_left(
    host: &RuntimeHost,
    net: &BridgeNet,
    runtime_dir: &std::path::Path,
    plugin: Plugin,
    except: &[&str],
    needles: &[&str],
    context: &str,
) {
    assert!(
        wait_until(Duration::from_secs(5), || ports_of(host, &net.bridge)
            .is_empty()),
        "ports left on {}: {:?}\n{context}",
        net.bridge,
        ports_of(host, &net.bridge)
    );
    assert_eq!(
        veths(host, except),
        Vec::<String>::new(),
        "host veths left\n{context}"
    );
    assert_eq!(
        net.reservations(),
        vec![],
        "host-local reservations left\n{context}"
    );
    assert_records(host, runtime_dir, plugin, 0);
    assert_eq!(
        firewall_lines(host, needles),
        Vec::<String>::new(),
        "firewall rules naming the container ({needles:?}) left\n{context}"
    );
}

// ---------------------------------------------------------------------------------------------
// Podman
// ---------------------------------------------------------------------------------------------

/// `podman run -d --network NET --mac-address MAC -p 18080:8080` of a web server, then
/// `podman rm -f -t 0`; the conflist in CNI `version` (portmap reads the plugin's result in it).
fn podman_run_portmap_rm(plugin: Plugin, subnet: u8, version: &'static str) {
    need_cni!("Podman", PODMAN, plugin);
    let host = RuntimeHost::new("pcni");
    let mut net = BridgeNet::new(235, subnet, &host.dir.join("ipam"));
    net.portmap = true;
    net.version = version;
    let pm = CniPodman::new(host, plugin);
    pm.add_network(&net.name, &net.conflist(plugin));
    let uplink = unique("u");
    let (up_addr, cl_addr) = (format!("10.236.{subnet}.1"), format!("10.236.{subnet}.2"));
    let client = client_netns(
        &pm.host,
        &uplink,
        &format!("{up_addr}/30"),
        &format!("{cl_addr}/30"),
    );

    let mac = format!("02:42:0a:eb:{subnet:02x}:63");
    let c = pm.run(
        &[
            "--network",
            &net.name,
            "--mac-address",
            &mac,
            "-p",
            "18080:8080",
        ],
        &["/bin/httpd", "-f", "-p", "8080", "-h", "/www"],
    );

    // Podman sees the network with the plugin as its driver.
    let nets = pm.ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    assert!(
        nets.lines()
            .any(|l| l == format!("{} {}", net.name, plugin.type_name())),
        "podman network ls: {nets}"
    );
    // Inside the container.
    let addr = assert_container_side(&c, &net);
    assert_eq!(must_link(&c, "eth0").mac, mac, "eth0 has --mac-address");
    // The host, IPAM and records.
    let hend = assert_host_side(&pm.host, &c, &net);
    assert_reserved(&net, &addr, &c.id);
    assert_records(&pm.host, &pm.runtime_dir, plugin, 1);
    // What Podman read back from the result.
    let ins = pm.inspect(&c.name);
    let got = &ins["NetworkSettings"]["Networks"][&net.name];
    assert_eq!(
        got["IPAddress"].as_str(),
        Some(addr.as_str()),
        "podman inspect: {got}"
    );
    assert_eq!(
        got["MacAddress"].as_str(),
        Some(mac.as_str()),
        "podman inspect: {got}"
    );
    assert_eq!(
        got["Gateway"].as_str(),
        Some(net.gateway.as_str()),
        "podman inspect: {got}"
    );

    // The port mapping (portmap, from our prevResult): from another namespace through the
    // uplink, and from the host itself to the gateway address.
    assert!(
        !firewall_lines(&pm.host, &[&addr]).is_empty(),
        "portmap's DNAT to {addr} is visible"
    );
    for (from, to) in [
        (&client as &dyn Ns, up_addr.as_str()),
        (&pm.host, net.gateway.as_str()),
    ] {
        match http_get(from, to, 18080, "/index.txt", Duration::from_secs(10)) {
            Ok(body) => assert_eq!(body, WEB_TOKEN, "served through {to}:18080"),
            Err(e) => panic!(
                "GET http://{to}:18080/ from {} failed: {e}\nnat: {:#?}",
                from.describe(),
                firewall_lines(&pm.host, &["DNAT", "HOSTPORT"])
            ),
        }
    }

    pm.ok(&["rm", "-f", "-t", "0", &c.name]);
    assert_eq!(pm.ok(&["ps", "-a", "-q"]), "", "no container left");
    assert_nothing_left(
        &pm.host,
        &net,
        &pm.runtime_dir,
        plugin,
        &[&uplink],
        &[&addr, &c.id],
        "after podman rm -f -t 0",
    );
    assert!(
        link(&pm.host, &hend.name).is_none(),
        "host veth {} is gone",
        hend.name
    );
    assert_eq!(
        pm.cached_results(&c.id),
        Vec::<String>::new(),
        "libcni's cached result"
    );
}

#[test]
fn podman_run_portmap_rm_reference_bridge() {
    podman_run_portmap_rm(Plugin::Reference, 1, CNI_VERSION);
}

#[test]
fn podman_run_portmap_rm_pipework() {
    podman_run_portmap_rm(Plugin::Pipework, 2, CNI_VERSION);
}

#[test]
fn podman_run_portmap_rm_reference_bridge_cni_0_3_1() {
    podman_run_portmap_rm(Plugin::Reference, 11, "0.3.1");
}

#[test]
fn podman_run_portmap_rm_pipework_cni_0_3_1() {
    podman_run_portmap_rm(Plugin::Pipework, 12, "0.3.1");
}

/// A container that exits by itself: conmon's `podman container cleanup` sends the DEL (its
/// environment has only what containers.conf `[engine] env` gives it). Started again, the same
/// container ID is attached again in a new namespace; `podman rm` then leaves nothing.
fn podman_exit_cleanup_restart(plugin: Plugin, subnet: u8) {
    need_cni!("Podman", PODMAN, plugin);
    let host = RuntimeHost::new("pcni");
    let net = BridgeNet::new(235, subnet, &host.dir.join("ipam"));
    let pm = CniPodman::new(host, plugin);
    pm.add_network(&net.name, &net.conflist(plugin));
    let c = pm.run(&["--network", &net.name], &["/bin/sleep", "5"]);
    let addr = assert_container_side(&c, &net);
    assert_host_side(&pm.host, &c, &net);
    assert_reserved(&net, &addr, &c.id);
    assert_records(&pm.host, &pm.runtime_dir, plugin, 1);

    pm.ok(&["wait", &c.name]);
    let cleaned = wait_until(Duration::from_secs(15), || {
        net.reservations().is_empty()
            && ports_of(&pm.host, &net.bridge).is_empty()
            && (!plugin.keeps_records() || records_in(&pm.runtime_dir).is_empty())
    });
    assert!(
        cleaned,
        "podman container cleanup did not tear the network down: reservations {:?}, ports {:?}, \
         records {:?}; podman ps -a:\n{}",
        net.reservations(),
        ports_of(&pm.host, &net.bridge),
        records_in(&pm.runtime_dir),
        pm.ok(&["ps", "-a"])
    );
    assert_nothing_left(
        &pm.host,
        &net,
        &pm.runtime_dir,
        plugin,
        &[],
        &[&addr, &c.id],
        "after podman container cleanup",
    );
    assert_eq!(
        pm.cached_results(&c.id),
        Vec::<String>::new(),
        "libcni's cached result"
    );

    // Again: the same container ID, a new namespace.
    pm.ok(&["start", &c.name]);
    let again = PodmanCtr {
        pid: pm.pid(&c.name),
        name: c.name.clone(),
        id: c.id.clone(),
    };
    assert_ne!(again.pid, c.pid, "a new container process");
    let addr2 = assert_container_side(&again, &net);
    assert_host_side(&pm.host, &again, &net);
    assert_reserved(&net, &addr2, &c.id);
    assert_records(&pm.host, &pm.runtime_dir, plugin, 1);
    pm.ok(&["rm", "-f", "-t", "0", &c.name]);
    assert_nothing_left(
        &pm.host,
        &net,
        &pm.runtime_dir,
        plugin,
        &[],
        &[&addr2, &c.id],
        "after podman start, then podman rm -f -t 0",
    );
}

#[test]
fn podman_exit_cleanup_restart_reference_bridge() {
    podman_exit_cleanup_restart(Plugin::Reference, 3);
}

#[test]
fn podman_exit_cleanup_restart_pipework() {
    podman_exit_cleanup_restart(Plugin::Pipework, 4);
}

/// Two containers on one network, one with `--ip` (CNI_ARGS `IP=`, which host-local reads
/// through the plugin): they reach each other; removing one leaves the other's attachment,
/// reservation and record alone.
fn podman_two_containers(plugin: Plugin, subnet: u8) {
    need_cni!("Podman", PODMAN, plugin);
    let host = RuntimeHost::new("pcni");
    let net = BridgeNet::new(235, subnet, &host.dir.join("ipam"));
    let pm = CniPodman::new(host, plugin);
    pm.add_network(&net.name, &net.conflist(plugin));
    let fixed = format!("{}50", net.prefix());
    let sleep = ["/bin/sleep", "300"];
    let a = pm.run(&["--network", &net.name], &sleep);
    let b = pm.run(&["--network", &net.name, "--ip", &fixed], &sleep);
    let addr_a = assert_container_side(&a, &net);
    assert_eq!(assert_container_side(&b, &net), fixed, "--ip is honoured");
    assert_eq!(ports_of(&pm.host, &net.bridge).len(), 2, "two bridge ports");
    let hend_b = host_end_of(&pm.host, &b, "eth0");
    let mut want = vec![
        (addr_a.clone(), format!("{}\r\neth0", a.id)),
        (fixed.clone(), format!("{}\r\neth0", b.id)),
    ];
    want.sort();
    let got: Vec<(String, String)> = net
        .reservations()
        .into_iter()
        .map(|(ip, c)| (ip, c.trim().to_string()))
        .collect();
    assert_eq!(got, want, "host-local reservations");
    assert_records(&pm.host, &pm.runtime_dir, plugin, 2);
    assert!(ping(&a, &fixed), "container a reaches b at {fixed}");
    assert!(ping(&b, &addr_a), "container b reaches a at {addr_a}");

    pm.ok(&["rm", "-f", "-t", "0", &a.name]);
    let ports: Vec<String> = ports_of(&pm.host, &net.bridge)
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(ports, vec![hend_b.name.clone()], "only b's port is left");
    assert_reserved(&net, &fixed, &b.id);
    assert_records(&pm.host, &pm.runtime_dir, plugin, 1);
    assert!(ping(&pm.host, &fixed), "the host still reaches b");
    assert_eq!(
        firewall_lines(&pm.host, &[&addr_a, &a.id]),
        Vec::<String>::new(),
        "a's rules are gone"
    );
    assert!(
        !firewall_lines(&pm.host, &[&fixed]).is_empty(),
        "b's masquerade rule (ipMasq) is still there"
    );

    pm.ok(&["rm", "-f", "-t", "0", &b.name]);
    assert_nothing_left(
        &pm.host,
        &net,
        &pm.runtime_dir,
        plugin,
        &[],
        &[&fixed, &b.id],
        "after removing both",
    );
}

#[test]
fn podman_two_containers_reference_bridge() {
    podman_two_containers(Plugin::Reference, 7);
}

#[test]
fn podman_two_containers_pipework() {
    podman_two_containers(Plugin::Pipework, 8);
}

/// A failing ADD (`--ip` of an address another container holds: Podman passes it on, and
/// host-local refuses it after the plugin has made its veth) fails `podman run` and leaves
/// nothing of that container, and the running one untouched.
fn podman_failed_add(plugin: Plugin, subnet: u8) {
    need_cni!("Podman", PODMAN, plugin);
    let host = RuntimeHost::new("pcni");
    let net = BridgeNet::new(235, subnet, &host.dir.join("ipam"));
    let pm = CniPodman::new(host, plugin);
    pm.add_network(&net.name, &net.conflist(plugin));
    let sleep = ["/bin/sleep", "300"];
    let a = pm.run(&["--network", &net.name], &sleep);
    let addr_a = assert_container_side(&a, &net);
    let hend_a = host_end_of(&pm.host, &a, "eth0");

    let name = unique("c");
    let out = pm.output(&pm.run_args(
        &name,
        &["--network", &net.name, "--ip", &addr_a],
        &["/bin/sleep", "300"],
    ));
    let said = format!(
        "podman run --ip {addr_a} ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "the ADD should fail: {said}");
    eprintln!("{said}");
    let ports: Vec<String> = ports_of(&pm.host, &net.bridge)
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert!(
        wait_until(Duration::from_secs(5), || ports_of(&pm.host, &net.bridge)
            .len()
            == 1),
        "only the running container's port is left: {ports:?}\n{said}"
    );
    assert_eq!(
        veths(&pm.host, &[]),
        vec![hend_a.name.clone()],
        "host veths\n{said}"
    );
    assert_reserved(&net, &addr_a, &a.id);
    assert_records(&pm.host, &pm.runtime_dir, plugin, 1);
    assert!(
        ping(&a, &net.gateway),
        "the running container still reaches the gateway"
    );

    let _ = pm.output(&["rm", "-f", "-t", "0", &name]);
    pm.ok(&["rm", "-f", "-t", "0", &a.name]);
    assert_nothing_left(
        &pm.host,
        &net,
        &pm.runtime_dir,
        plugin,
        &[],
        &[&addr_a, &a.id],
        "after removing both",
    );
}

#[test]
fn podman_failed_add_reference_bridge() {
    podman_failed_add(Plugin::Reference, 9);
}

#[test]
fn podman_failed_add_pipework() {
    podman_failed_add(Plugin::Pipework, 10);
}

// ---------------------------------------------------------------------------------------------
// containerd
// ---------------------------------------------------------------------------------------------

/// `ctr run --rm --cni … sleep`, inspected while it runs, then killed: ctr's DEL comes with an
/// empty CNI_NETNS, after the namespace is gone. The conflist in CNI `version`.
fn ctr_run_rm(plugin: Plugin, subnet: u8, version: &'static str) {
    need_cni!("containerd", CONTAINERD, plugin);
    let host = RuntimeHost::new("ccni");
    let mut net = BridgeNet::new(235, subnet, &host.dir.join("ipam"));
    net.version = version;
    let Some(cd) = CniContainerd::start(host, plugin, &net.conflist(plugin)) else {
        return;
    };
    let id = unique("t");
    let mut child = cd.spawn_run_rm(&id, &["/bin/sleep", "60"]);
    let mut pid = 0;
    let mut exited = None;
    wait_until(Duration::from_secs(20), || {
        if let Ok(Some(st)) = child.try_wait() {
            exited = Some(st);
            return true;
        }
        pid = match cd.task(&id) {
            Some((p, s)) if s == "RUNNING" => p,
            _ => 0,
        };
        pid != 0
    });
    if exited.is_some() || pid == 0 {
        let _ = child.kill();
        let out = child.wait_with_output().expect("ctr run output");
        panic!(
            "ctr run --cni did not start the task ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let task = ProcNs(pid);
    let addr = assert_container_side(&task, &net);
    assert_host_side(&cd.host, &task, &net);
    assert_reserved(&net, &addr, &cd.cni_id(&id));
    assert_records(&cd.host, &cd.runtime_dir, plugin, 1);
    assert!(
        !firewall_lines(&cd.host, &[&addr]).is_empty(),
        "the masquerade rule for {addr} (ipMasq) is visible"
    );

    cd.kill(&id);
    let out = match wait_timeout(child, Duration::from_secs(20)) {
        Ok(o) => o,
        Err((o, ())) => panic!(
            "ctr run did not return after its task was killed:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    };
    let said = format!(
        "ctr run ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !cd.containers().contains(&id),
        "ctr --rm removed the container; {said}"
    );
    // The reference bridge keeps its masquerade rules on a DEL without a namespace (TESTENV);
    // pipework removes them from its record.
    let needles: Vec<&str> = match plugin {
        Plugin::Reference => vec![],
        Plugin::Pipework => vec![&addr, &id],
    };
    if plugin == Plugin::Reference {
        let kept = firewall_lines(&cd.host, &[&addr]);
        eprintln!("the reference bridge left these rules after its DEL: {kept:#?}");
    }
    assert_nothing_left(
        &cd.host,
        &net,
        &cd.runtime_dir,
        plugin,
        &[],
        &needles,
        &said,
    );
}

#[test]
fn ctr_run_rm_reference_bridge() {
    ctr_run_rm(Plugin::Reference, 5, CNI_VERSION);
}

#[test]
fn ctr_run_rm_pipework() {
    ctr_run_rm(Plugin::Pipework, 6, CNI_VERSION);
}

#[test]
fn ctr_run_rm_reference_bridge_cni_0_4_0() {
    ctr_run_rm(Plugin::Reference, 13, "0.4.0");
}

#[test]
fn ctr_run_rm_pipework_cni_0_4_0() {
    ctr_run_rm(Plugin::Pipework, 14, "0.4.0");
}
