//! DHCP with pipework's built-in client: `dhcp` (DHCPv4), `dhcp:-f` / `--dhcp-keep` (a
//! supervisor that renews, releases on SIGTERM and exits with the guest), `dhcp6` (DHCPv6
//! IA_NA), `slaac`, `--dns-resolv`, `--dhcp-timeout`, the MAC argument, bad words, and
//! all-or-nothing under failure injection.
//!
//! Every test gets a [`DhcpLan`]: its own host namespace with bridge `br1` (10.224.N.1/24,
//! fd00:224:N::1/64) and a real dnsmasq on it (`--log-dhcp`, leases file, router 10.224.N.1,
//! DNS server 10.224.N.53, 2 minute leases from 10.224.N.100–150), plus its own
//! PIPEWORK_RUNTIME_DIR. The server's log is the witness of what the client sent (hostname,
//! renewals, release). Every test also ends with the host's /etc/resolv.conf byte for byte as
//! it was (checked by `lan.finish()` and again when the `DhcpLan` is dropped), and leaves no
//! supervisor process, pidfile or runtime directory behind, even when it fails.
//! Subnets: N = 1–29 here (tests/dhcp_external.rs uses 31 and up).

mod common;
use common::*;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

// ---- helpers ----------------------------------------------------------------------------------

/// Gives `g` a default route over a veth pair inside it (10.224.250.2/24 via 10.224.250.1): the
/// lease's router must replace it, like the static `@gateway` form does.
fn add_default_route(g: &dyn Ns) {
    ip(
        g,
        &[
            "link", "add", "name", "gw0", "type", "veth", "peer", "name", "gw1",
        ],
    );
    ip(g, &["addr", "add", "10.224.250.2/24", "dev", "gw0"]);
    ip(g, &["link", "set", "gw0", "up"]);
    ip(g, &["link", "set", "gw1", "up"]);
    ip(g, &["route", "add", "default", "via", "10.224.250.1"]);
}

/// Exactly one IPv4 default route: via the lease's router, on `ifname`.
fn assert_router_default(lan: &DhcpLan, g: &dyn Ns, ifname: &str) {
    let defaults: Vec<Value> = routes(g, false)
        .into_iter()
        .filter(|r| r["dst"] == "default")
        .collect();
    assert_eq!(
        defaults.len(),
        1,
        "exactly one IPv4 default route (the lease's router replaces the guest's old one): \
         {defaults:?}"
    );
    assert_eq!(defaults[0]["gateway"], json!(lan.router()), "{defaults:?}");
    assert_eq!(defaults[0]["dev"], json!(ifname), "{defaults:?}");
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// The `--json` report of a built-in DHCPv4 lease.
fn check_v4_json(lan: &DhcpLan, j: &Value, cidr: &str, t1_t2: Option<(u32, u32)>) {
    assert_eq!(j["addresses"], json!([cidr]), "addresses in {j:#}");
    assert_eq!(j["gateway"], json!(lan.router()), "gateway in {j:#}");
    let d = &j["dhcp"];
    assert!(d.is_object(), "a \"dhcp\" object in {j:#}");
    assert_eq!(d["client"], "builtin", "dhcp.client in {j:#}");
    assert_eq!(num(&d["family"]), Some(4.0), "dhcp.family in {j:#}");
    assert_eq!(d["server"], json!(lan.router()), "dhcp.server in {j:#}");
    assert_eq!(
        num(&d["lease_time"]),
        Some(120.0),
        "dhcp.lease_time in {j:#}"
    );
    assert!(num(&d["t1"]).is_some(), "dhcp.t1 in {j:#}");
    assert!(num(&d["t2"]).is_some(), "dhcp.t2 in {j:#}");
    if let Some((t1, t2)) = t1_t2 {
        assert_eq!(num(&d["t1"]), Some(t1 as f64), "dhcp.t1 in {j:#}");
        assert_eq!(num(&d["t2"]), Some(t2 as f64), "dhcp.t2 in {j:#}");
    }
    assert_eq!(d["dns"], json!([lan.dns()]), "dhcp.dns in {j:#}");
}

/// dnsmasq saw `name` as the client's hostname (option 12): in the leases file or its log.
fn assert_hostname_seen(lan: &DhcpLan, mac: &str, name: &str) {
    let lease = lan.server().lease_of(mac);
    let said = lan
        .server()
        .log_lines(&[&format!("client provides name: {name}")]);
    assert!(
        lease.as_ref().is_some_and(|(_, h)| h == name) || !said.is_empty(),
        "dnsmasq did not see hostname {name:?} from {mac}: lease {lease:?}\n{}",
        lan.server().log()
    );
}

/// `(pid, pidfile)` of the supervisor in a --json report, checked against the contract: the
/// pidfile is `<runtime dir>/dhcp/<something>.pid`, holds the pid, and the process runs.
fn supervisor_of(lan: &DhcpLan, j: &Value) -> (u32, PathBuf) {
    let s = &j["dhcp"]["supervisor"];
    let pid = s["pid"]
        .as_u64()
        .unwrap_or_else(|| panic!("dhcp.supervisor.pid in {j:#}")) as u32;
    lan.rt.track(pid);
    let pidfile = PathBuf::from(
        s["pidfile"]
            .as_str()
            .unwrap_or_else(|| panic!("dhcp.supervisor.pidfile in {j:#}")),
    );
    assert!(
        pidfile.starts_with(lan.rt.dir.join("dhcp"))
            && pidfile.extension().is_some_and(|e| e == "pid"),
        "pidfile {} is <PIPEWORK_RUNTIME_DIR>/dhcp/*.pid ({})",
        pidfile.display(),
        lan.rt.dir.display()
    );
    let content = std::fs::read_to_string(&pidfile)
        .unwrap_or_else(|e| panic!("read pidfile {}: {e}", pidfile.display()));
    assert_eq!(content.trim(), pid.to_string(), "pidfile holds the pid");
    assert!(proc_alive(pid), "supervisor {pid} is running");
    (pid, pidfile)
}

/// The `pipework ls --json` entry of supervisor `pid`, checked: guest, ifname, address.
fn ls_entry(lan: &DhcpLan, pid: u32, guest: &str, ifname: &str, address: &str) -> Value {
    let ls = lan.ls();
    let e = ls
        .iter()
        .find(|e| e["pid"].as_u64() == Some(pid as u64))
        .unwrap_or_else(|| panic!("pipework ls --json lists supervisor {pid}: {ls:#?}"))
        .clone();
    let g = e["guest"].to_string();
    assert!(g.contains(guest), "ls entry names guest {guest}: {e:#}");
    assert_eq!(e["ifname"], json!(ifname), "ls entry ifname: {e:#}");
    let a = e["address"].as_str().unwrap_or_default();
    assert_eq!(
        a.split('/').next(),
        Some(address),
        "ls entry address: {e:#}"
    );
    e
}

/// Waits for `pid` to exit (up to `limit`), then checks that its pidfile is gone and that
/// `ls` no longer lists it.
fn assert_supervisor_gone(lan: &DhcpLan, pid: u32, pidfile: &Path, limit: Duration, why: &str) {
    let t = Instant::now();
    assert!(
        wait_until(limit, || !proc_alive(pid)),
        "supervisor {pid} still running {limit:?} after {why}: {:?}",
        proc_info(pid)
    );
    eprintln!("supervisor {pid} exited {:?} after {why}", t.elapsed());
    assert!(
        wait_until(Duration::from_secs(2), || !pidfile.exists()),
        "pidfile {} removed when the supervisor exits ({why})",
        pidfile.display()
    );
    let ls = lan.ls();
    assert!(
        ls.iter().all(|e| e["pid"].as_u64() != Some(pid as u64)),
        "ls no longer lists {pid} after {why}: {ls:#?}"
    );
}

fn sigterm(pid: u32) {
    // SAFETY: kill(2) on a supervisor pid this test got from pipework (checked alive).
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
}

/// `/etc/netns/NAME`, registered for removal at the end of the test.
fn etc_netns(lan: &DhcpLan, g: &Netns) -> PathBuf {
    let p = PathBuf::from(format!("/etc/netns/{}", g.name));
    lan.rt.remove_on_drop(p.clone());
    p
}

// ---- one-shot DHCPv4 -------------------------------------------------------------------------

#[test]
fn builtin_v4_netns_guest() {
    need_programs!("dnsmasq");
    let lan = DhcpLan::new(
        1,
        &DnsmasqConf {
            t1: Some(30),
            t2: Some(90),
            ..Default::default()
        },
    );
    let guest = lan.netns_guest();
    let etc = etc_netns(&lan, &guest);
    add_default_route(&guest);
    let r = lan.pw(&["--json", "br1", &guest.name, "dhcp"]);
    r.ok();

    let a = lan.v4_lease(&guest, "eth1");
    let cidr = a.cidr();
    let (g, _) = assert_attached(&lan.host, "br1", &guest, "eth1", &[&cidr]);
    assert_router_default(&lan, &guest, "eth1");
    assert!(
        route_to(&guest, false, &format!("10.224.{}.0/24", lan.n)).is_some(),
        "subnet route of the lease"
    );
    assert!(ping(&guest, &lan.router()), "guest -> bridge address");

    check_v4_json(&lan, &r.json(), &cidr, Some((30, 90)));
    assert!(
        r.json()["dhcp"]["supervisor"].is_null(),
        "one-shot: dhcp.supervisor is null: {:#}",
        r.json()
    );
    // The server agrees: this MAC holds this address, under the guest's name.
    let lease = lan.server().lease_of(&g.mac);
    assert_eq!(
        lease.as_ref().map(|l| l.0.as_str()),
        Some(a.local.as_str()),
        "dnsmasq's lease for {}",
        g.mac
    );
    assert_hostname_seen(&lan, &g.mac, &guest.name);

    lan.assert_no_leftovers(
        Some(netns_inode(&guest)),
        &[],
        "one-shot dhcp leaves nothing running",
    );
    assert!(
        !etc.join("resolv.conf").exists(),
        "without --dns-resolv nothing is written to {}",
        etc.display()
    );
    lan.finish();
}

#[test]
fn builtin_v4_docker_guest() {
    let dh = need_docker!();
    need_programs!("dnsmasq");
    let lan = DhcpLan::new(2, &DnsmasqConf::default());
    let c = lan.container(&dh);
    let resolv_before = c.exec(&["cat", "/etc/resolv.conf"]);
    let r = lan.pw(&["--json", "br1", &c.name, "dhcp"]);
    r.ok();

    let a = lan.v4_lease(&c, "eth1");
    let (g, _) = assert_attached(&lan.host, "br1", &c, "eth1", &[&a.cidr()]);
    assert_router_default(&lan, &c, "eth1");
    assert!(
        docker_ping(&c, &lan.router()),
        "container -> bridge address"
    );
    check_v4_json(&lan, &r.json(), &a.cidr(), None);
    assert_hostname_seen(&lan, &g.mac, &c.name);
    let resolv_after = c.exec(&["cat", "/etc/resolv.conf"]);
    assert_eq!(
        String::from_utf8_lossy(&resolv_after.stdout),
        String::from_utf8_lossy(&resolv_before.stdout),
        "without --dns-resolv the container's resolv.conf is untouched"
    );
    lan.assert_no_leftovers(
        Some(netns_inode(&c)),
        &[c.pid],
        "one-shot dhcp leaves nothing running",
    );
    lan.finish();
}

/// A PID guest, with a guest interface name of our choosing.
#[test]
fn builtin_v4_pid_guest_custom_ifname() {
    need_programs!("dnsmasq");
    let lan = DhcpLan::new(3, &DnsmasqConf::default());
    let g = lan.pid_guest();
    let pid = g.pid.to_string();
    let r = lan.pw(&["--json", "br1", "-i", "dhc0", &pid, "dhcp"]);
    r.ok();
    let a = lan.v4_lease(&g, "dhc0");
    assert_attached(&lan.host, "br1", &g, "dhc0", &[&a.cidr()]);
    assert_router_default(&lan, &g, "dhc0");
    assert!(ping(&g, &lan.router()), "guest -> bridge address");
    check_v4_json(&lan, &r.json(), &a.cidr(), None);
    lan.assert_no_leftovers(
        Some(netns_inode(&g)),
        &[g.pid],
        "one-shot dhcp leaves nothing running",
    );
    lan.finish();
}

// ---- keep: the supervisor ----------------------------------------------------------------

/// `dhcp:-f`: renewals at T1 (seen by the server), address kept, listed by `ls`; SIGTERM
/// releases the lease, removes the address and the pidfile.
/// RFC 2131 4.4.5: when the server does not answer unicast renewals (here a tc filter in the
/// host drops them on the guest's port), the supervisor rebinds at T2 by broadcast, the server
/// (which sees the broadcast) acknowledges, and the address stays.
#[test]
fn keep_rebinds_at_t2_when_renewals_go_unanswered() {
    need_programs!("dnsmasq", "tc");
    let lan = DhcpLan::new(
        16,
        &DnsmasqConf {
            t1: Some(3),
            t2: Some(6),
            ..Default::default()
        },
    );
    let guest = lan.netns_guest();
    let r = lan.pw(&["--json", "br1", &guest.name, "dhcp:-f"]);
    r.ok();
    let j = r.json();
    let (pid, pidfile) = supervisor_of(&lan, &j);
    let a = lan.v4_lease(&guest, "eth1");
    let mac = must_link(&guest, "eth1").mac;
    let port = ports_of(&lan.host, "br1")
        .into_iter()
        .next()
        .expect("the guest's port on br1")
        .name;
    // Unicast to the server (its own address, port 67) is dropped; broadcasts pass.
    let tc = |args: &[&str]| {
        let out = cmd_in(&lan.host, "tc").args(args).output().unwrap();
        assert!(out.status.success(), "tc {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // This kernel has no gact (`action drop`): redirect to a veth whose peer is down, where
    // the packets are dropped.
    ip(
        &lan.host,
        &[
            "link", "add", "sink0", "type", "veth", "peer", "name", "sink1",
        ],
    );
    ip(&lan.host, &["link", "set", "sink0", "up"]);
    tc(&["qdisc", "add", "dev", &port, "ingress"]);
    let dst = format!("{}/32", lan.router());
    tc(&[
        "filter", "add", "dev", &port, "parent", "ffff:", "protocol", "ip", "u32", "match", "ip",
        "dst", &dst, "match", "ip", "dport", "67", "0xffff", "action", "mirred", "egress",
        "redirect", "dev", "sink0",
    ]);
    let log = pidfile.with_extension("log");
    let rebound = wait_until(Duration::from_secs(15), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("dhcp state: rebinding"))
            && lan.server().acks(&mac) >= 2
    });
    let stats = tc(&["-s", "filter", "show", "dev", &port, "parent", "ffff:"]);
    assert!(
        rebound,
        "rebinding at T2 got an ACK; supervisor log:\n{}\nDHCPACKs: {:#?}\nfilter: {stats}",
        std::fs::read_to_string(&log).unwrap_or_default(),
        lan.server().log_lines(&["DHCPACK(", &mac])
    );
    assert!(
        !stats.contains("Sent 0 bytes"),
        "the unicast renewals were sent (and dropped): {stats}"
    );
    let now: Vec<String> = global_v4(&guest, "eth1").iter().map(Addr::cidr).collect();
    assert_eq!(
        now,
        vec![a.cidr()],
        "the address stays across the rebinding"
    );
    sigterm(pid);
    assert_supervisor_gone(&lan, pid, &pidfile, Duration::from_secs(5), "SIGTERM");
    lan.finish();
}

#[test]
fn keep_renews_then_releases_on_sigterm() {
    need_programs!("dnsmasq");
    let lan = DhcpLan::new(
        4,
        &DnsmasqConf {
            t1: Some(3),
            t2: Some(100),
            ..Default::default()
        },
    );
    let guest = lan.netns_guest();
    let ino = netns_inode(&guest);
    let r = lan.pw(&["--json", "br1", &guest.name, "dhcp:-f"]);
    r.ok();
    let j = r.json();
    let a = lan.v4_lease(&guest, "eth1");
    let cidr = a.cidr();
    assert_router_default(&lan, &guest, "eth1");
    check_v4_json(&lan, &j, &cidr, Some((3, 100)));
    let (pid, pidfile) = supervisor_of(&lan, &j);
    ls_entry(&lan, pid, &guest.name, "eth1", &a.local);
    let mac = must_link(&guest, "eth1").mac;

    // First lease + at least two renewals (T1 = 3 s).
    let t = Instant::now();
    assert!(
        lan.server().wait_acks(&mac, 3, Duration::from_secs(15)),
        "the server saw at least two renewals from {mac} within 15 s (T1 = 3 s); DHCPACKs: {:#?}",
        lan.server().log_lines(&["DHCPACK(", &mac])
    );
    eprintln!("two renewals after {:?}", t.elapsed());
    for l in lan.server().log_lines(&["DHCPACK(", &mac]) {
        assert!(
            l.contains(&format!(" {} ", a.local)),
            "every ACK is for {}: {l}",
            a.local
        );
    }
    assert!(proc_alive(pid), "supervisor still running after renewals");
    let now: Vec<String> = global_v4(&guest, "eth1").iter().map(Addr::cidr).collect();
    assert_eq!(
        now,
        std::slice::from_ref(&cidr),
        "address kept across renewals"
    );
    assert_router_default(&lan, &guest, "eth1");

    // Control: the leftover checks used everywhere do see a running supervisor.
    let live: Vec<u32> = lan.rt.live_processes().iter().map(|p| p.pid).collect();
    assert!(
        live.contains(&pid),
        "control: the leftover check sees supervisor {pid}: {live:?}"
    );
    assert!(
        lan.rt.pidfiles().contains(&pidfile),
        "control: the leftover check sees {}",
        pidfile.display()
    );

    sigterm(pid);
    assert_supervisor_gone(&lan, pid, &pidfile, Duration::from_secs(5), "SIGTERM");
    assert!(
        wait_until(Duration::from_secs(2), || lan.server().released(&mac)),
        "dnsmasq logged a DHCPRELEASE from {mac}"
    );
    assert!(
        wait_until(Duration::from_secs(2), || global_v4(&guest, "eth1")
            .is_empty()),
        "released address removed from eth1: {:?}",
        global_v4(&guest, "eth1")
    );
    lan.assert_no_leftovers(Some(ino), &[], "after SIGTERM to the supervisor");
    lan.finish();
}

/// A supervised lease (`dhcp:-f`) on a netns guest of a fresh LAN N whose server renews
/// every 3 s (T1 3 s, T2 100 s).
fn kept_lease(n: u8) -> (DhcpLan, DhcpGuest<Netns>, Kept) {
    let conf = DnsmasqConf {
        t1: Some(3),
        t2: Some(100),
        ..Default::default()
    };
    let lan = DhcpLan::new(n, &conf);
    let guest = lan.netns_guest();
    let r = lan.pw(&["--json", "br1", &guest.name, "dhcp:-f"]);
    r.ok();
    let (pid, pidfile) = supervisor_of(&lan, &r.json());
    let ino = netns_inode(&guest);
    (lan, guest, Kept { pid, pidfile, ino })
}

struct Kept {
    pid: u32,
    pidfile: PathBuf,
    ino: u64,
}

impl Kept {
    /// SIGTERM, then the end-of-test checks: nothing left, host files intact.
    fn stop(self, lan: &DhcpLan) {
        sigterm(self.pid);
        assert_supervisor_gone(
            lan,
            self.pid,
            &self.pidfile,
            Duration::from_secs(5),
            "SIGTERM",
        );
        lan.assert_no_leftovers(Some(self.ino), &[], "after SIGTERM to the supervisor");
        lan.finish();
    }
}

/// Renewal at T1 goes to the server by unicast: with broadcasts to port 67 dropped on the
/// server's side after the first lease, renewals still get ACKed (and a fresh DISCOVER does not,
/// the control that the rule bites).
#[test]
fn keep_renews_by_unicast_to_the_server() {
    need_programs!("dnsmasq", "iptables");
    let (lan, guest, kept) = kept_lease(14);
    let a = lan.v4_lease(&guest, "eth1");
    let mac = must_link(&guest, "eth1").mac;
    let drop_rule = [
        "INPUT",
        "-i",
        "br1",
        "-d",
        "255.255.255.255",
        "-p",
        "udp",
        "--dport",
        "67",
        "-j",
        "DROP",
    ];
    let mut add = cmd_in(&lan.host, "iptables");
    add.arg("-I").args(drop_rule);
    assert!(add.status().expect("iptables").success(), "iptables -I");
    let acks = lan.server().acks(&mac);
    assert!(
        lan.server()
            .wait_acks(&mac, acks + 2, Duration::from_secs(15)),
        "two renewals ACKed with broadcasts dropped (T1 = 3 s): {:#?}",
        lan.server().log_lines(&[&mac])
    );
    assert_eq!(
        global_v4(&guest, "eth1")
            .iter()
            .map(Addr::cidr)
            .collect::<Vec<_>>(),
        vec![a.cidr()],
        "address kept"
    );
    // Control: a broadcast DISCOVER from another guest gets nothing now.
    let other = lan.netns_guest();
    let r2 = lan.pw(&["br1", &other.name, "dhcp", "--dhcp-timeout", "2"]);
    assert_ne!(r2.code, 0, "DISCOVER must be dropped: {}", r2.stderr);
    let mut del = cmd_in(&lan.host, "iptables");
    del.arg("-D").args(drop_rule);
    assert!(del.status().expect("iptables").success(), "iptables -D");
    kept.stop(&lan);
}

/// A NAK to a renewal (the server restarted with another range) loses the lease: the
/// supervisor removes the address, discovers again and puts the new lease on.
#[test]
fn keep_nak_on_renewal_starts_over_with_a_new_lease() {
    need_programs!("dnsmasq");
    let (mut lan, guest, kept) = kept_lease(15);
    let old = lan.v4_lease(&guest, "eth1");
    let mut first = lan.server.take().expect("server");
    first.stop();
    drop(first);
    lan.server = Some(Dnsmasq::start(
        &lan.host,
        "br1",
        lan.n,
        &DnsmasqConf {
            t1: Some(3),
            t2: Some(100),
            range: Some((160, 170)),
            ..Default::default()
        },
    ));
    let moved = || {
        let now = global_v4(&guest, "eth1");
        now.len() == 1
            && now[0]
                .local
                .rsplit('.')
                .next()
                .and_then(|o| o.parse::<u8>().ok())
                .is_some_and(|o| (160..=170).contains(&o))
    };
    assert!(
        wait_until(Duration::from_secs(15), moved),
        "after the NAK, eth1 holds one address of the new range instead of {}: {:?}\n{:#?}",
        old.local,
        global_v4(&guest, "eth1"),
        lan.server().log_lines(&["DHCP"])
    );
    assert!(
        !lan.server().log_lines(&["DHCPNAK("]).is_empty(),
        "the server NAKed the old lease: {:#?}",
        lan.server().log_lines(&["DHCP"])
    );
    assert!(
        proc_alive(kept.pid),
        "the supervisor carries on after the NAK"
    );
    assert_router_default(&lan, &guest, "eth1");
    kept.stop(&lan);
}

/// With strict reverse-path filtering in the guest, the kernel drops the broadcast OFFER for a
/// UDP socket on an interface without an address; the client's packet socket still gets it.
#[test]
fn builtin_v4_with_strict_rp_filter_in_the_guest() {
    need_programs!("dnsmasq");
    let lan = DhcpLan::new(16, &DnsmasqConf::default());
    let guest = lan.netns_guest();
    for key in ["all", "default"] {
        let path = format!("/proc/sys/net/ipv4/conf/{key}/rp_filter");
        let mut c = cmd_in(&guest, "sh");
        c.args(["-c", "echo 1 > \"$0\"", &path]);
        assert!(
            c.status().expect("sh").success(),
            "rp_filter=1 in the guest"
        );
    }
    // 2 s: less than the first retransmission (4 s, -1 s at most), so the lease must come
    // from the first DISCOVER.
    let r = lan.pw(&["--json", "br1", &guest.name, "dhcp", "--dhcp-timeout", "2"]);
    r.ok();
    lan.v4_lease(&guest, "eth1");
    lan.finish();
}

/// `--dhcp-keep` with a Docker guest: `docker rm -f` ends the supervisor within seconds.
#[test]
fn keep_supervisor_exits_when_container_removed() {
    let dh = need_docker!();
    need_programs!("dnsmasq");
    let lan = DhcpLan::new(5, &DnsmasqConf::default());
    let c = lan.container(&dh);
    let r = lan.pw(&["--json", "--dhcp-keep", "br1", &c.name, "dhcp"]);
    r.ok();
    let a = lan.v4_lease(&c, "eth1");
    check_v4_json(&lan, &r.json(), &a.cidr(), None);
    let (pid, pidfile) = supervisor_of(&lan, &r.json());
    ls_entry(&lan, pid, &c.name, "eth1", &a.local);
    let out = docker(&dh, &["rm", "-f", &c.name]);
    assert!(out.status.success(), "docker rm -f: {out:?}");
    assert_supervisor_gone(&lan, pid, &pidfile, Duration::from_secs(5), "docker rm -f");
    lan.assert_no_leftovers(None, &[], "after the container was removed");
    lan.finish();
}

/// `dhcp:-f` with a PID guest: killing the guest's process ends the supervisor.
#[test]
fn keep_supervisor_exits_when_pid_guest_killed() {
    need_programs!("dnsmasq");
    let lan = DhcpLan::new(6, &DnsmasqConf::default());
    let mut g = lan.pid_guest();
    let pid_s = g.pid.to_string();
    let r = lan.pw(&["--json", "br1", &pid_s, "dhcp:-f"]);
    r.ok();
    let a = lan.v4_lease(&g, "eth1");
    let (pid, pidfile) = supervisor_of(&lan, &r.json());
    ls_entry(&lan, pid, &pid_s, "eth1", &a.local);
    g.kill();
    assert_supervisor_gone(
        &lan,
        pid,
        &pidfile,
        Duration::from_secs(5),
        "the guest process was killed",
    );
    lan.assert_no_leftovers(None, &[], "after the guest process died");
    lan.finish();
}

/// `dhcp:-f` with a named netns guest: `ip netns del` ends the supervisor.
#[test]
fn keep_supervisor_exits_when_netns_deleted() {
    need_programs!("dnsmasq");
    let lan = DhcpLan::new(7, &DnsmasqConf::default());
    let guest = lan.netns_guest();
    let r = lan.pw(&["--json", "br1", &guest.name, "dhcp:-f"]);
    r.ok();
    let a = lan.v4_lease(&guest, "eth1");
    let (pid, pidfile) = supervisor_of(&lan, &r.json());
    ls_entry(&lan, pid, &guest.name, "eth1", &a.local);
    let out = std::process::Command::new("ip")
        .args(["netns", "del", &guest.name])
        .output()
        .expect("spawn ip netns del");
    assert!(out.status.success(), "ip netns del: {out:?}");
    assert_supervisor_gone(&lan, pid, &pidfile, Duration::from_secs(5), "ip netns del");
    lan.assert_no_leftovers(None, &[], "after the namespace was deleted");
    lan.finish();
}

// ---- the MAC argument ------------------------------------------------------------------------

/// The MAC (explicit or `U:`) is the interface's and the one in the request: a fresh guest
/// with the same MAC gets the same lease.
#[test]
fn same_mac_gets_same_address() {
    need_programs!("dnsmasq");
    let lan = DhcpLan::new(8, &DnsmasqConf::default());
    let mac = "02:24:08:00:00:01";

    // Explicit MAC; detach by deleting the guest (its veth goes with it).
    let first = {
        let g = lan.netns_guest();
        lan.pw(&["br1", &g.name, "dhcp", mac]).ok();
        assert_eq!(must_link(&g, "eth1").mac, mac, "the given MAC is eth1's");
        lan.v4_lease(&g, "eth1").local
    };
    assert_eq!(
        lan.server().lease_of(mac).map(|l| l.0),
        Some(first.clone()),
        "the server leased {first} to {mac}"
    );
    assert!(
        wait_until(Duration::from_secs(3), || ports_of(&lan.host, "br1")
            .is_empty()),
        "the first guest's veth went with its namespace"
    );
    let g2 = lan.netns_guest();
    lan.pw(&["br1", &g2.name, "dhcp", mac]).ok();
    assert_eq!(must_link(&g2, "eth1").mac, mac);
    let second = lan.v4_lease(&g2, "eth1").local;
    assert_eq!(second, first, "same MAC, same address");

    // U:<string>; detach by deleting the guest's interface.
    let g3 = lan.netns_guest();
    lan.pw(&["br1", &g3.name, "dhcp", "U:pwt-dhcp-stable"]).ok();
    let umac = must_link(&g3, "eth1").mac;
    let third = lan.v4_lease(&g3, "eth1").local;
    assert_ne!(third, first, "a different MAC gets a different address");
    ip(&g3, &["link", "del", "eth1"]);
    let g4 = lan.netns_guest();
    lan.pw(&["br1", &g4.name, "dhcp", "U:pwt-dhcp-stable"]).ok();
    assert_eq!(
        must_link(&g4, "eth1").mac,
        umac,
        "U: gives the same MAC again"
    );
    let fourth = lan.v4_lease(&g4, "eth1").local;
    assert_eq!(fourth, third, "same U: string, same address");
    assert_eq!(
        lan.server().lease_of(&umac).map(|l| l.0),
        Some(third),
        "the server's lease for {umac}"
    );
    lan.finish();
}

// ---- IPv6 ------------------------------------------------------------------------------------

/// `dhcp6` and `-a 6 … dhcp`: an IA_NA address from dnsmasq's range, as /128.
#[test]
fn dhcpv6_lease() {
    need_programs!("dnsmasq");
    let lan = DhcpLan::new(
        9,
        &DnsmasqConf {
            v6: V6Mode::Stateful,
            ..Default::default()
        },
    );
    for form in [&["dhcp6"][..], &["-a", "6", "dhcp"][..]] {
        let g = lan.netns_guest();
        let mut args = vec!["--json", "br1"];
        if form.len() > 1 {
            args.extend_from_slice(&form[..2]);
        }
        args.push(&g.name);
        args.push(form[form.len() - 1]);
        let r = lan.pw(&args);
        r.ok();
        let leased: Vec<Addr> = global_v6(&g, "eth1")
            .into_iter()
            .filter(|a| lan.in_v6_range(&a.local))
            .collect();
        assert_eq!(
            leased.len(),
            1,
            "{form:?}: one address from fd00:224:{}::100-1ff on eth1: {:?}",
            lan.n,
            global_v6(&g, "eth1")
        );
        let a = &leased[0];
        assert_eq!(
            a.prefixlen, 128,
            "{form:?}: leased address is a /128: {a:?}"
        );
        let j = r.json();
        assert_eq!(num(&j["dhcp"]["family"]), Some(6.0), "{form:?}: {j:#}");
        assert_eq!(j["dhcp"]["client"], "builtin", "{form:?}: {j:#}");
        let listed: Vec<&str> = j["addresses"]
            .as_array()
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert!(
            listed.contains(&format!("{}/128", a.local).as_str()),
            "{form:?}: addresses lists {}/128: {j:#}",
            a.local
        );
        assert!(
            !lan.server().log_lines(&["DHCPREPLY(", &a.local]).is_empty(),
            "{form:?}: dnsmasq replied with {}",
            a.local
        );
        lan.assert_no_leftovers(
            Some(netns_inode(&g)),
            &[],
            "one-shot dhcp6 leaves nothing running",
        );
    }
    lan.finish();
}

/// `slaac`: returns once the kernel has a global address from the router advertisement.
#[test]
fn slaac_waits_for_router_advertisement() {
    need_programs!("dnsmasq");
    let lan = DhcpLan::new(
        10,
        &DnsmasqConf {
            v6: V6Mode::Slaac,
            ..Default::default()
        },
    );
    let g = lan.netns_guest();
    let r = lan.pw(&["--json", "--dhcp-timeout", "20", "br1", &g.name, "slaac"]);
    r.ok();
    assert!(r.elapsed < Duration::from_secs(20), "took {:?}", r.elapsed);
    let prefix: std::net::Ipv6Addr = lan.v6_prefix().parse().unwrap();
    let in_prefix = |s: &str| {
        s.parse::<std::net::Ipv6Addr>()
            .is_ok_and(|a| a.segments()[..4] == prefix.segments()[..4])
    };
    // Right when pipework returns: the address is there (no waiting in the test).
    let slaac: Vec<Addr> = global_v6(&g, "eth1")
        .into_iter()
        .filter(|a| in_prefix(&a.local))
        .collect();
    assert!(
        !slaac.is_empty(),
        "eth1 has an address in {}/64 when pipework returns: {:?}",
        lan.v6_prefix(),
        global_v6(&g, "eth1")
    );
    assert!(
        slaac.iter().all(|a| a.prefixlen == 64),
        "SLAAC addresses are /64: {slaac:?}"
    );
    let j = r.json();
    let listed: Vec<String> = j["addresses"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        slaac.iter().any(|a| listed.contains(&a.cidr())),
        "addresses lists the SLAAC address {:?}: {j:#}",
        slaac.iter().map(Addr::cidr).collect::<Vec<_>>()
    );
    lan.assert_no_leftovers(Some(netns_inode(&g)), &[], "slaac leaves nothing running");
    lan.finish();
}

// ---- --dns-resolv ----------------------------------------------------------------------------

#[test]
fn dns_resolv_docker_guest_gets_its_own_file() {
    let dh = need_docker!();
    need_programs!("dnsmasq");
    let lan = DhcpLan::new(11, &DnsmasqConf::default());
    let c = lan.container(&dh);
    lan.pw(&["--json", "--dns-resolv", "br1", &c.name, "dhcp"])
        .ok();
    lan.v4_lease(&c, "eth1");
    let out = c.exec(&["cat", "/etc/resolv.conf"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["nameserver", &lan.dns()]),
        "the container's /etc/resolv.conf names the lease's DNS server {}:\n{text}",
        lan.dns()
    );
    lan.finish();
}

#[test]
fn dns_resolv_named_netns_uses_etc_netns() {
    need_programs!("dnsmasq");
    let lan = DhcpLan::new(12, &DnsmasqConf::default());
    let g = lan.netns_guest();
    let etc = etc_netns(&lan, &g);
    assert!(!etc.exists());
    lan.pw(&["--dns-resolv", "br1", &g.name, "dhcp"]).ok();
    lan.v4_lease(&g, "eth1");
    let file = etc.join("resolv.conf");
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{} written by --dns-resolv: {e}", file.display()));
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["nameserver", &lan.dns()]),
        "{} names the lease's DNS server {}:\n{text}",
        file.display(),
        lan.dns()
    );
    lan.finish();
}

/// An `unshare -n` process shares the host's mount namespace: its resolv.conf IS the host's.
#[test]
fn dns_resolv_refused_when_guest_shares_host_files() {
    need_programs!("dnsmasq");
    let lan = DhcpLan::new(13, &DnsmasqConf::default());
    let g = lan.pid_guest();
    let hb = snapshot(&lan.host);
    let gb = snapshot(&g);
    let r = lan.pw(&["--dns-resolv", "br1", &g.pid.to_string(), "dhcp"]);
    r.fails_any(1, &["resolv"]).clean_error();
    assert_unchanged_soon(&lan.host, &hb, "host after --dns-resolv was refused");
    assert_unchanged_soon(&g, &gb, "guest after --dns-resolv was refused");
    lan.assert_no_leftovers(Some(netns_inode(&g)), &[g.pid], "after the refusal");
    lan.finish();
}

// ---- no server, bad input --------------------------------------------------------------------

/// No DHCP server: exit 1 after about --dhcp-timeout, the message names DHCP and the
/// interface, and everything is rolled back (the guest's default route too).
#[test]
fn no_server_fails_cleanly_after_timeout() {
    need_root!();
    let lan = DhcpLan::without_server(14);
    let g = lan.netns_guest();
    add_default_route(&g);
    let hb = snapshot(&lan.host);
    let gb = snapshot(&g);
    let r = lan.pw(&["--dhcp-timeout", "2", "br1", &g.name, "dhcp"]);
    r.fails(1, "DHCP").clean_error();
    assert!(
        r.stderr.contains("eth1"),
        "the message names the interface:\n{}",
        r.stderr
    );
    assert!(
        r.elapsed >= Duration::from_millis(1500) && r.elapsed < Duration::from_secs(8),
        "gave up after about 2 s: {:?}",
        r.elapsed
    );
    assert_unchanged_soon(&lan.host, &hb, "host after no DHCP server answered");
    assert_unchanged_soon(&g, &gb, "guest after no DHCP server answered");
    lan.assert_no_leftovers(Some(netns_inode(&g)), &[], "after no DHCP server answered");
    lan.finish();
}

/// The same with a bridge the run creates (it must go again), with keep (no supervisor
/// left), and for DHCPv6.
#[test]
fn no_server_new_bridge_keep_and_v6_leave_nothing() {
    need_root!();
    let lan = DhcpLan::without_server(15);
    for (bridge, word) in [("br9", "dhcp:-f"), ("br1", "dhcp6")] {
        let g = lan.netns_guest();
        let hb = snapshot(&lan.host);
        let gb = snapshot(&g);
        let r = lan.pw(&["--dhcp-timeout", "2", bridge, &g.name, word]);
        r.fails(1, "DHCP").clean_error();
        assert!(
            r.elapsed < Duration::from_secs(8),
            "{word}: gave up after about 2 s: {:?}",
            r.elapsed
        );
        assert!(
            link(&lan.host, "br9").is_none(),
            "{word}: no bridge br9 left"
        );
        assert_unchanged_soon(
            &lan.host,
            &hb,
            &format!("host after {word} found no server"),
        );
        assert_unchanged_soon(&g, &gb, &format!("guest after {word} found no server"));
        lan.assert_no_leftovers(
            Some(netns_inode(&g)),
            &[],
            &format!("{word} without a server"),
        );
    }
    lan.finish();
}

/// Unknown DHCP words and options the built-in client does not take: exit 2, nothing touched.
#[test]
fn bad_dhcp_words_exit_2() {
    need_root!();
    let lan = DhcpLan::without_server(17);
    let g = lan.netns_guest();
    let hb = snapshot(&lan.host);
    let gb = snapshot(&g);
    for word in ["dhcpx", "foo", "udhcpcd", "slaacx"] {
        let r = lan.pw(&["br1", &g.name, word]);
        r.fails(2, word).clean_error();
        let msg = r.stderr.to_lowercase();
        for supported in ["dhcp", "dhcp6", "slaac", "udhcpc", "dhclient", "dhcpcd"] {
            assert!(
                msg.contains(supported),
                "the message for {word:?} lists the supported words ({supported} missing):\n{}",
                r.stderr
            );
        }
    }
    lan.pw(&["br1", &g.name, "dhcp:-x"])
        .fails(2, "-x")
        .clean_error();
    lan.pw(&["--dhcp-timeout", "abc", "br1", &g.name, "dhcp"])
        .fails(2, "abc")
        .clean_error();
    assert_unchanged(&lan.host, &hb, "host after bad DHCP words");
    assert_unchanged(&g, &gb, "guest after bad DHCP words");
    lan.assert_no_leftovers(Some(netns_inode(&g)), &[], "after bad DHCP words");
    lan.finish();
}

// ---- failure injection -----------------------------------------------------------------------

/// For every step of a `-v` DHCP attach: a fresh guest (with a default route of its own), a
/// run failing right after that step, and the checks: exit 1, host and guest as they were (no
/// veth, no address), no supervisor, no pidfile.
fn inject_each_step(n: u8, word: &str, dhcp_steps: &[&str]) {
    let lan = DhcpLan::new(n, &DnsmasqConf::default());
    let steps = {
        let g = lan.netns_guest();
        add_default_route(&g);
        let r = lan.pw(&["-v", "br1", &g.name, word]);
        r.ok();
        lan.v4_lease(&g, "eth1");
        let names = step_names_of(&r);
        for s in dhcp_steps {
            assert!(
                names.iter().any(|n| n == s),
                "-v logs a step {s:?}: {names:?}\n{}",
                r.stderr
            );
        }
        lan.rt.stop_all();
        names
    };
    for_each_step(&steps, |step| {
        // The previous guest's veth goes away with its namespace, asynchronously.
        let settled = wait_until(Duration::from_secs(5), || {
            ports_of(&lan.host, "br1").is_empty()
        });
        assert!(settled, "earlier guests' veths are gone from br1");
        let g = lan.netns_guest();
        add_default_route(&g);
        let ino = netns_inode(&g);
        let hb = snapshot(&lan.host);
        let gb = snapshot(&g);
        let (r, held) = lan.run(
            &["-v", "br1", &g.name, word],
            &[("PIPEWORK_TEST_FAIL_STEP", step)],
        );
        let mut problems = injected_failure_problems(&r, step);
        problems.extend(held);
        problems.extend(namespaces_changed(&[
            (&lan.host, &hb, Duration::from_secs(2), "host"),
            (&g, &gb, Duration::from_secs(2), "guest"),
        ]));
        problems.extend(lan.leftovers(Some(ino), &[], Duration::from_secs(3)));
        if !problems.is_empty() {
            problems.push(format!("stderr: {}", r.stderr.trim()));
        }
        lan.rt.stop_all();
        problems
    });
    lan.finish();
}

#[test]
fn inject_failure_at_each_step_dhcp() {
    need_programs!("dnsmasq");
    inject_each_step(18, "dhcp", &["dhcp-lease"]);
}

#[test]
fn inject_failure_at_each_step_dhcp_keep() {
    need_programs!("dnsmasq");
    inject_each_step(19, "dhcp:-f", &["dhcp-lease", "dhcp-supervise"]);
}
