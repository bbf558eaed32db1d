//! DHCP through external clients, as in the original: `udhcpc`, `dhclient`, `dhcpcd` (one-shot)
//! and their `-f` forms (left running), each optionally followed by `:OPTIONS`, run inside the
//! guest's namespace with a script of pipework's own — never the distribution's, which would
//! rewrite the HOST's /etc/resolv.conf (every test checks it is byte for byte unchanged).
//!
//! Same world as tests/dhcp.rs ([`DhcpLan`]: host namespace, bridge br1, a dnsmasq with
//! `--log-dhcp`, a private PIPEWORK_RUNTIME_DIR). Options are checked where the server can see
//! them: a vendor class (`udhcpc -V`, `dhcpcd -i`) shows up in dnsmasq's log.
//! Subnets: N = 31 and up.

mod common;
use common::*;

use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

/// `/etc/netns/NAME`, registered for removal at the end of the test.
fn etc_netns(lan: &DhcpLan, g: &Netns) -> PathBuf {
    let p = PathBuf::from(format!("/etc/netns/{}", g.name));
    lan.rt.remove_on_drop(p.clone());
    p
}

/// A one-shot client (`word`) for a fresh named netns guest: the server's lease is on eth1
/// when pipework returns, and no client process is left (in the guest's namespace or
/// anywhere naming the runtime directory), no pidfile, no resolv.conf written anywhere.
fn oneshot_v4(n: u8, word: &str) -> DhcpLan {
    let lan = DhcpLan::new(n, &DnsmasqConf::default());
    let g = lan.netns_guest();
    let etc = etc_netns(&lan, &g);
    lan.pw(&["br1", &g.name, word]).ok();
    let a = lan.v4_lease(&g, "eth1");
    let mac = must_link(&g, "eth1").mac;
    assert_eq!(
        lan.server().lease_of(&mac).map(|l| l.0),
        Some(a.local.clone()),
        "{word}: eth1 holds the server's lease for {mac}"
    );
    eprintln!("{word}: default route {:?}", default_route(&g, false));
    lan.assert_no_leftovers(
        Some(netns_inode(&g)),
        &[],
        &format!("{word} (one-shot) leaves no client running"),
    );
    assert!(
        !etc.exists(),
        "{word}: without --dns-resolv nothing is written to {}",
        etc.display()
    );
    lan.finish();
    lan
}

/// The `pipework ls --json` entry of the running `client` of `guest`, checked: ifname, address.
fn ls_client(lan: &DhcpLan, client: &str, guest: &str, address: &str) -> Value {
    let ls = lan.ls();
    let e = ls
        .iter()
        .find(|e| e["client"] == json!(client) && e["guest"].to_string().contains(guest))
        .unwrap_or_else(|| {
            panic!("pipework ls --json lists a running {client} for guest {guest}: {ls:#?}")
        })
        .clone();
    assert_eq!(e["ifname"], json!("eth1"), "ls entry ifname: {e:#}");
    assert_eq!(
        e["address"].as_str().unwrap_or_default().split('/').next(),
        Some(address),
        "ls entry address: {e:#}"
    );
    e
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on a client pid this test got from `pipework ls` (checked alive).
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// A `-f` client (`word`, listed as `client`) for a named netns guest: the address is there,
/// the client runs inside the guest's namespace, `ls` lists it, the address is still there a
/// moment later (renewed when `renew_signal` can force a renewal: the server then sees another
/// ACK), and SIGTERM to the listed pid stops it.
fn foreground_v4(n: u8, word: &str, client: &str, renew_signal: Option<libc::c_int>) {
    let lan = DhcpLan::new(
        n,
        &DnsmasqConf {
            t1: Some(3),
            t2: Some(100),
            ..Default::default()
        },
    );
    let g = lan.netns_guest();
    let ino = netns_inode(&g);
    lan.pw(&["br1", &g.name, word]).ok();
    let a = lan.v4_lease(&g, "eth1");
    let mac = must_link(&g, "eth1").mac;
    let e = ls_client(&lan, client, &g.name, &a.local);
    let pid = e["pid"]
        .as_u64()
        .unwrap_or_else(|| panic!("ls entry pid: {e:#}")) as u32;
    assert!(proc_alive(pid), "{word}: the client {pid} runs");
    let theirs = inode_of(&PathBuf::from(format!("/proc/{pid}/ns/net")));
    assert_eq!(
        theirs,
        ino,
        "{word}: the client runs inside the guest's namespace: {:?}",
        proc_info(pid)
    );

    // Still running, address kept.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(proc_alive(pid), "{word}: the client {pid} still runs");
    if let Some(sig) = renew_signal {
        let acks = lan.server().acks(&mac);
        signal(pid, sig);
        assert!(
            lan.server()
                .wait_acks(&mac, acks + 1, Duration::from_secs(5)),
            "{word}: the server saw a renewal after signal {sig}: {:#?}",
            lan.server().log_lines(&["DHCPACK(", &mac])
        );
    }
    let now: Vec<String> = global_v4(&g, "eth1").iter().map(Addr::cidr).collect();
    assert_eq!(
        now,
        [a.cidr()],
        "{word}: address kept while the client runs"
    );
    assert!(proc_alive(pid), "{word}: the client {pid} still runs");

    signal(pid, libc::SIGTERM);
    assert!(
        wait_until(Duration::from_secs(5), || !proc_alive(pid)),
        "{word}: SIGTERM stops the client {pid}: {:?}",
        proc_info(pid)
    );
    let ls = lan.ls();
    assert!(
        ls.iter().all(|e| e["pid"].as_u64() != Some(pid as u64)),
        "{word}: ls no longer lists {pid}: {ls:#?}"
    );
    let left = lan.leftover_processes(Some(ino), &[], Duration::from_secs(3));
    assert!(
        left.is_empty(),
        "{word}: nothing left running after SIGTERM:\n  {}",
        left.join("\n  ")
    );
    let stale = lan.rt.pidfiles();
    if !stale.is_empty() {
        eprintln!("{word}: note: pidfiles left after SIGTERM: {stale:?}");
    }
    lan.finish();
}

// ---- udhcpc ------------------------------------------------------------------------------

#[test]
fn udhcpc_oneshot() {
    need_programs!("dnsmasq", "udhcpc");
    oneshot_v4(31, "udhcpc");
}

/// `udhcpc:OPTIONS`: the options reach the client (its vendor class shows at the server).
#[test]
fn udhcpc_with_options() {
    need_programs!("dnsmasq", "udhcpc");
    let lan = oneshot_v4(32, "udhcpc:-V pwtvendor32 -t 3");
    assert!(
        !lan.server()
            .log_lines(&["vendor class: pwtvendor32"])
            .is_empty(),
        "udhcpc was given -V pwtvendor32:\n{}",
        lan.server().log()
    );
}

#[test]
fn udhcpc_f_keeps_running_until_sigterm() {
    need_programs!("dnsmasq", "udhcpc");
    // busybox udhcpc renews at half the lease (it ignores T1); SIGUSR1 makes it renew now.
    foreground_v4(33, "udhcpc-f", "udhcpc", Some(libc::SIGUSR1));
}

/// A Docker guest: the client runs in the container's namespace; neither the container's
/// resolv.conf nor the host's is touched.
#[test]
fn udhcpc_docker_guest() {
    let dh = need_docker!();
    need_programs!("dnsmasq", "udhcpc");
    let lan = DhcpLan::new(41, &DnsmasqConf::default());
    let c = lan.container(&dh);
    let before = c.exec(&["cat", "/etc/resolv.conf"]);
    lan.pw(&["br1", &c.name, "udhcpc"]).ok();
    lan.v4_lease(&c, "eth1");
    assert!(
        docker_ping(&c, &lan.router()),
        "container -> bridge address"
    );
    let after = c.exec(&["cat", "/etc/resolv.conf"]);
    assert_eq!(
        String::from_utf8_lossy(&after.stdout),
        String::from_utf8_lossy(&before.stdout),
        "the container's resolv.conf is untouched"
    );
    lan.assert_no_leftovers(
        Some(netns_inode(&c)),
        &[c.pid],
        "udhcpc (one-shot) leaves no client running",
    );
    lan.finish();
}

// ---- dhclient ----------------------------------------------------------------------------

#[test]
fn dhclient_oneshot_v4() {
    need_programs!("dnsmasq", "dhclient");
    oneshot_v4(34, "dhclient");
}

/// `-a 6 … dhclient` runs `dhclient -6`: an address from the DHCPv6 range.
#[test]
fn dhclient_oneshot_v6() {
    need_programs!("dnsmasq", "dhclient");
    let lan = DhcpLan::new(
        35,
        &DnsmasqConf {
            v6: V6Mode::Stateful,
            ..Default::default()
        },
    );
    let g = lan.netns_guest();
    let etc = etc_netns(&lan, &g);
    lan.pw(&["br1", "-a", "6", &g.name, "dhclient"]).ok();
    let leased: Vec<Addr> = global_v6(&g, "eth1")
        .into_iter()
        .filter(|a| lan.in_v6_range(&a.local))
        .collect();
    assert_eq!(
        leased.len(),
        1,
        "one address from fd00:224:{}::100-1ff on eth1: {:?}",
        lan.n,
        global_v6(&g, "eth1")
    );
    assert!(
        !lan.server()
            .log_lines(&["DHCPREPLY(", &leased[0].local])
            .is_empty(),
        "dnsmasq replied with {}",
        leased[0].local
    );
    assert!(
        global_v4(&g, "eth1").is_empty(),
        "dhclient -6 asked for no IPv4 address: {:?}",
        global_v4(&g, "eth1")
    );
    lan.assert_no_leftovers(
        Some(netns_inode(&g)),
        &[],
        "dhclient -6 (one-shot) leaves no client running",
    );
    assert!(!etc.exists(), "nothing written to {}", etc.display());
    lan.finish();
}

#[test]
fn dhclient_f_keeps_running_until_sigterm() {
    need_programs!("dnsmasq", "dhclient");
    foreground_v4(36, "dhclient-f", "dhclient", None);
}

// ---- dhcpcd ------------------------------------------------------------------------------

#[test]
fn dhcpcd_oneshot() {
    need_programs!("dnsmasq", "dhcpcd");
    oneshot_v4(37, "dhcpcd");
}

/// `dhcpcd:OPTIONS`: the options reach the client (its vendor class shows at the server).
#[test]
fn dhcpcd_with_options() {
    need_programs!("dnsmasq", "dhcpcd");
    let lan = oneshot_v4(39, "dhcpcd:-i pwtvendor39");
    assert!(
        !lan.server()
            .log_lines(&["vendor class: pwtvendor39"])
            .is_empty(),
        "dhcpcd was given -i pwtvendor39:\n{}",
        lan.server().log()
    );
}

#[test]
fn dhcpcd_f_keeps_running_until_sigterm() {
    need_programs!("dnsmasq", "dhcpcd");
    foreground_v4(38, "dhcpcd-f", "dhcpcd", None);
}

// ---- client missing ------------------------------------------------------------------------

/// With a PATH that lacks the client: exit 1 naming it, nothing left behind. (A server runs,
/// so a binary that found the client some other way would succeed and fail this test.)
#[test]
fn missing_client_is_named() {
    need_programs!("dnsmasq");
    let lan = DhcpLan::new(40, &DnsmasqConf::default());
    let empty = std::env::temp_dir().join(unique("nopath"));
    std::fs::create_dir(&empty).unwrap();
    lan.rt.remove_on_drop(empty.clone());
    for client in ["udhcpc", "dhclient-f", "dhcpcd"] {
        let g = lan.netns_guest();
        let hb = snapshot(&lan.host);
        let gb = snapshot(&g);
        let r = lan.pw_env(
            &["br1", &g.name, client],
            &[("PATH", empty.to_str().unwrap())],
        );
        let program = client.trim_end_matches("-f");
        r.fails(1, program).clean_error();
        assert_unchanged_soon(&lan.host, &hb, &format!("host when {program} is missing"));
        assert_unchanged_soon(&g, &gb, &format!("guest when {program} is missing"));
        lan.assert_no_leftovers(Some(netns_inode(&g)), &[], &format!("{program} missing"));
        // The previous guest's veth, if any, goes with its namespace before the next snapshot.
        drop(g);
        wait_until(Duration::from_secs(5), || {
            ports_of(&lan.host, "br1").is_empty()
        });
    }
    lan.finish();
}

// ---- two guests, same interface name ---------------------------------------------------------

/// Two kept clients of the same kind at once, in two guests whose interfaces have the same
/// name (every container has an eth1): neither may find the other's pidfile, control socket or
/// lease file (clients' defaults such as /run/dhcpcd/eth1-4.pid are per interface name, not
/// per namespace). Both get their lease, both are listed, SIGTERM stops each.
fn two_kept_clients(n: u8, word: &str, client: &str) {
    let lan = DhcpLan::new(n, &DnsmasqConf::default());
    let g1 = lan.netns_guest();
    let g2 = lan.netns_guest();
    lan.pw(&["br1", &g1.name, word]).ok();
    let a1 = lan.v4_lease(&g1, "eth1");
    lan.pw(&["br1", &g2.name, word]).ok();
    let a2 = lan.v4_lease(&g2, "eth1");
    assert_ne!(a1.local, a2.local, "two guests, two leases");
    let e1 = ls_client(&lan, client, &g1.name, &a1.local);
    let e2 = ls_client(&lan, client, &g2.name, &a2.local);
    let pids: Vec<u32> = [&e1, &e2]
        .iter()
        .map(|e| e["pid"].as_u64().unwrap_or(0) as u32)
        .collect();
    assert_ne!(pids[0], pids[1], "two client processes: {e1:#} {e2:#}");
    for (pid, g) in pids.iter().zip([&g1, &g2]) {
        assert!(proc_alive(*pid), "{word}: client {pid} of {} runs", g.name);
    }
    // The first guest's lease is still there after the second attach.
    assert_eq!(
        global_v4(&g1, "eth1")
            .iter()
            .map(Addr::cidr)
            .collect::<Vec<_>>(),
        [a1.cidr()],
        "{word}: the first guest kept its address"
    );
    for pid in &pids {
        signal(*pid, libc::SIGTERM);
    }
    for pid in &pids {
        assert!(
            wait_until(Duration::from_secs(5), || !proc_alive(*pid)),
            "{word}: SIGTERM stops client {pid}"
        );
    }
    lan.finish();
}

#[test]
fn two_guests_same_ifname_udhcpc_f() {
    need_programs!("dnsmasq", "udhcpc");
    two_kept_clients(42, "udhcpc-f", "udhcpc");
}

#[test]
fn two_guests_same_ifname_dhclient_f() {
    need_programs!("dnsmasq", "dhclient");
    two_kept_clients(43, "dhclient-f", "dhclient");
}

#[test]
fn two_guests_same_ifname_dhcpcd_f() {
    need_programs!("dnsmasq", "dhcpcd");
    two_kept_clients(44, "dhcpcd-f", "dhcpcd");
}
