//! Crash at any instant leaves an undoable record.
//!
//! The binary built with the cargo feature `test-hooks` honours
//! `PIPEWORK_TEST_KILL_AFTER_MSG=N`: the process SIGKILLs itself right after the Nth kernel
//! change is acknowledged (a netlink change request, or an ovs-vsctl change). For every kind of
//! attachment available here, and N = 1, 2, 3, … until the attach runs to completion:
//! - the attach dies of SIGKILL;
//! - `pipework ls --json` lists that attachment with `"state": "incomplete"`;
//! - `pipework gc` (or `detach GUEST`, or running the same attach again) exits 0, and afterwards
//!   the host and guest namespaces are exactly as they were before the attach (links, addresses,
//!   routes; OVS's database too), and the incomplete record is gone.
//!
//! Run with `cargo nextest run --features test-hooks --test journal`. Subnets 10.226.x.x.

mod common;
use common::*;

use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

/// The cargo feature's hook.
const KILL_ENV: &str = "PIPEWORK_TEST_KILL_AFTER_MSG";

/// No attach of these kinds takes anywhere near this many kernel changes: a loop that gets
/// here means the hook or the attach is broken.
const MAX_MSGS: u32 = 80;

/// Fewest kills each kind must see (an attach makes at least: the link, its address, the
/// route, up…).
const MIN_KILLS: u32 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `br1` does not exist: pipework creates it (and must delete it on undo).
    NewBridge,
    /// `br1` exists (the user's, up, with an address): it stays.
    ExistingBridge,
    /// A macvlan child of `pwn0`, a veth end in the host standing for a NIC.
    Macvlan,
    /// `--direct-phys pwp0`: the NIC itself moves into the guest (and must come back).
    DirectPhys,
    /// A port on the user's OVS bridge `ovsbr0` (userspace datapath).
    Ovs,
}

/// How the incomplete attachment is undone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Undo {
    Gc,
    Detach,
    /// The same attach again, without the hook: rolls the incomplete one back, then succeeds.
    Reattach,
}

/// One test's world. Fields drop in order: OVS daemons, the runtime directory (stopping
/// anything left running), the LAN namespace, the guest, then the host namespace.
struct World {
    ovs: Option<Ovs>,
    rt: RuntimeDir,
    lan: Option<Netns>,
    guest: Netns,
    host: Netns,
    kind: Kind,
}

impl World {
    /// None (with a printed reason) when the kind cannot run here.
    fn new(kind: Kind) -> Option<World> {
        let host = Netns::new("h");
        let guest = Netns::new("g");
        let mut lan = None;
        let mut ovs = None;
        match kind {
            Kind::NewBridge => {}
            Kind::ExistingBridge => {
                ip(&host, &["link", "add", "name", "br1", "type", "bridge"]);
                // No automatic link-local address: the bridge gets carrier while a guest is on
                // it, and the kernel would give it one then (and keep it), which is not
                // pipework's doing.
                ip(&host, &["link", "set", "br1", "addrgenmode", "none"]);
                ip(&host, &["addr", "add", "10.226.2.1/24", "dev", "br1"]);
                ip(&host, &["link", "set", "br1", "up"]);
            }
            Kind::Macvlan => {
                let l = Netns::new("l");
                veth_nic(&host, "pwn0", None, &l, "lan0");
                ip(&host, &["link", "set", "pwn0", "up"]);
                lan = Some(l);
            }
            Kind::DirectPhys => {
                let l = Netns::new("l");
                veth_nic(&host, "pwp0", Some("02:26:04:00:00:01"), &l, "lan0");
                ip(&host, &["link", "set", "pwp0", "mtu", "1400"]);
                ip(&host, &["addr", "add", "10.226.4.254/24", "dev", "pwp0"]);
                ip(&host, &["link", "set", "pwp0", "up"]);
                lan = Some(l);
            }
            Kind::Ovs => {
                let started =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Ovs::start(&host)));
                match started {
                    Ok(o) => {
                        o.add_br("ovsbr0");
                        ovs = Some(o);
                    }
                    Err(e) => {
                        let why = e
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default();
                        skip(format!(
                            "SKIP {}: Open vSwitch (userspace datapath) could not start here: \
                             {why}",
                            test_name()
                        ));
                        return None;
                    }
                }
            }
        }
        Some(World {
            ovs,
            rt: RuntimeDir::new(),
            lan,
            guest,
            host,
            kind,
        })
    }

    /// The attach under test: a static address with a gateway.
    fn attach_args(&self) -> Vec<String> {
        let g = self.guest.name.clone();
        let v: Vec<&str> = match self.kind {
            Kind::NewBridge => vec!["br1", &g, "10.226.1.5/24@10.226.1.1"],
            Kind::ExistingBridge => vec!["br1", &g, "10.226.2.5/24@10.226.2.1"],
            Kind::Macvlan => vec!["pwn0", &g, "10.226.3.5/24@10.226.3.1"],
            Kind::DirectPhys => vec!["--direct-phys", "pwp0", &g, "10.226.4.5/24@10.226.4.1"],
            Kind::Ovs => vec!["ovsbr0", &g, "10.226.5.5/24@10.226.5.1"],
        };
        v.into_iter().map(String::from).collect()
    }

    fn gateway(&self) -> &'static str {
        match self.kind {
            Kind::NewBridge => "10.226.1.1",
            Kind::ExistingBridge => "10.226.2.1",
            Kind::Macvlan => "10.226.3.1",
            Kind::DirectPhys => "10.226.4.1",
            Kind::Ovs => "10.226.5.1",
        }
    }

    fn address(&self) -> &'static str {
        match self.kind {
            Kind::NewBridge => "10.226.1.5/24",
            Kind::ExistingBridge => "10.226.2.5/24",
            Kind::Macvlan => "10.226.3.5/24",
            Kind::DirectPhys => "10.226.4.5/24",
            Kind::Ovs => "10.226.5.5/24",
        }
    }

    fn pw_env(&self, args: &[&str], extra: &[(&str, &str)]) -> Run {
        let mut env = vec![("PIPEWORK_RUNTIME_DIR", self.rt.path())];
        if let Some(o) = &self.ovs {
            env.push(("OVS_RUNDIR", o.rundir()));
        }
        env.extend_from_slice(extra);
        pipework_within(
            &self.host,
            args,
            &Opts {
                env,
                ..Default::default()
            },
            Duration::from_secs(15),
        )
    }

    fn pw(&self, args: &[&str]) -> Run {
        self.pw_env(args, &[])
    }

    /// `pipework ls --json`: exits 0 and prints an array.
    fn ls(&self) -> Vec<Value> {
        let r = self.pw(&["ls", "--json"]);
        r.ok();
        // Its array (or the "attachments" array of an object).
        match r.json() {
            Value::Array(v) => v,
            Value::Object(mut o) if o.get("attachments").is_some_and(Value::is_array) => {
                match o.remove("attachments") {
                    Some(Value::Array(v)) => v,
                    _ => unreachable!(),
                }
            }
            other => panic!("pipework ls --json: expected an array of attachments, got {other}"),
        }
    }

    /// OVS's database as far as pipework may change it (empty without OVS).
    fn ovs_state(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        self.ovs.as_ref().map(Ovs::state).unwrap_or_default()
    }

    /// Whether this entry of `ls --json` is the attachment of our guest.
    fn is_ours(&self, e: &Value) -> bool {
        e["guest"] == self.guest.name.as_str()
            || e["guest_name"] == self.guest.name.as_str()
            || e["netns_inode"].as_u64() == Some(netns_inode(&self.guest))
    }
}

/// The namespaces (and OVS) as they were before the attach.
struct Before {
    host: Snapshot,
    guest: Snapshot,
    ovs: std::collections::BTreeMap<String, Vec<String>>,
}

impl Before {
    fn take(w: &World) -> Before {
        Before {
            host: settled_snapshot(&w.host),
            guest: settled_snapshot(&w.guest),
            ovs: w.ovs_state(),
        }
    }

    /// What differs from the snapshots (waiting up to 2 s for the kernel and OVS to settle).
    fn problems(&self, w: &World) -> Vec<String> {
        let mut p = namespaces_changed(&[
            (&w.host, &self.host, Duration::from_secs(2), "host"),
            (&w.guest, &self.guest, Duration::from_secs(2), "guest"),
        ]);
        if w.ovs.is_some() {
            let mut now = w.ovs_state();
            if !wait_until(Duration::from_secs(2), || {
                now = w.ovs_state();
                now == self.ovs
            }) {
                p.push(format!(
                    "OVS database changed:\nbefore {:#?}\nafter {now:#?}",
                    self.ovs
                ));
            }
        }
        p
    }
}

/// After a completed attach: the guest has `eth1` with exactly the address, and the default
/// route via the gateway; `ls --json` lists it, alive.
fn assert_completed(w: &World, context: &str) -> Value {
    let g = must_link(&w.guest, "eth1");
    assert!(g.is_up(), "{context}: eth1 is up: {g:?}");
    assert_eq!(
        global_cidrs(&w.guest, "eth1"),
        [w.address()],
        "{context}: addresses of eth1"
    );
    assert_eq!(
        default_route(&w.guest, false),
        Some((w.gateway().to_string(), "eth1".to_string())),
        "{context}: default route"
    );
    let ls = w.ls();
    assert_eq!(ls.len(), 1, "{context}: one attachment listed: {ls:#?}");
    assert!(w.is_ours(&ls[0]), "{context}: the entry is ours: {ls:#?}");
    assert_eq!(ls[0]["state"], "alive", "{context}: {ls:#?}");
    ls[0].clone()
}

/// After the re-attach of a new-bridge attachment: exactly one guest interface, one host end,
/// one port on br1 (nothing of the killed run is left beside the new attachment).
fn assert_only_one_attachment(w: &World, entry: &Value) {
    assert_eq!(w.kind, Kind::NewBridge, "written for the new-bridge kind");
    let mut gl = link_names(&w.guest);
    gl.sort();
    assert_eq!(gl, ["eth1", "lo"], "the guest has only lo and the new eth1");
    let h = host_end_of(&w.host, &w.guest, "eth1");
    assert_eq!(
        entry["host_ifname"],
        h.name.as_str(),
        "ls lists the new host end: {entry}"
    );
    let ports: Vec<String> = ports_of(&w.host, "br1")
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(
        ports,
        std::slice::from_ref(&h.name),
        "br1's only port is the new host end"
    );
    let hl: BTreeSet<String> = link_names(&w.host).into_iter().collect();
    let want: BTreeSet<String> = ["lo", "br1", h.name.as_str()]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(hl, want, "host links after the re-attach");
}

/// The loop: for N = 1, 2, …, an attach killed after the Nth kernel change, then the checks
/// and the undo, until an attach runs to completion. Then detach and the final checks.
fn crash_at_every_message(kind: Kind, undo: Undo) {
    need_root!();
    let Some(w) = World::new(kind) else { return };
    let before = Before::take(&w);
    let args = w.attach_args();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let spec = w.guest.name.clone();
    let mut kills = 0u32;
    let mut completed = false;
    for n in 1..=MAX_MSGS {
        let ns = n.to_string();
        let r = w.pw_env(&argv, &[(KILL_ENV, &ns)]);
        match r.code {
            0 => {
                completed = true;
                eprintln!("N={n}: the attach ran to completion after {kills} kills");
                break;
            }
            -9 => kills += 1,
            other => panic!(
                "{kind:?}, {KILL_ENV}={n}: the attach must die of SIGKILL (exit status \
                 signal 9) or complete (exit 0); got {other}\nstderr: {}",
                r.stderr
            ),
        }
        let ctx = format!("{kind:?}, killed after kernel change {n}");

        // The record is there, and says incomplete.
        let ls = w.ls();
        assert_eq!(
            ls.len(),
            1,
            "{ctx}: ls --json lists the killed attachment (and nothing else): {ls:#?}"
        );
        assert!(
            w.is_ours(&ls[0]),
            "{ctx}: the entry is the attachment of guest {spec}: {ls:#?}"
        );
        assert_eq!(
            ls[0]["state"], "incomplete",
            "{ctx}: the killed attach is listed as incomplete: {ls:#?}"
        );

        // Undo it.
        match undo {
            Undo::Gc => {
                w.pw(&["gc"]).ok();
            }
            Undo::Detach => {
                w.pw(&["detach", &spec]).ok();
            }
            Undo::Reattach => {
                w.pw(&argv).ok();
                let e = assert_completed(&w, &format!("{ctx}, attached again"));
                assert_only_one_attachment(&w, &e);
                w.pw(&["detach", &spec]).ok();
            }
        }
        let problems = before.problems(&w);
        assert!(
            problems.is_empty(),
            "{ctx}: after {undo:?} the namespaces are not as before the attach:\n{}",
            problems.join("\n")
        );
        let ls = w.ls();
        assert!(
            ls.is_empty(),
            "{ctx}: after {undo:?} the record is gone: {ls:#?}"
        );
    }
    assert!(
        completed,
        "{kind:?}: the attach was still killed after {MAX_MSGS} kernel changes"
    );
    assert!(
        kills >= MIN_KILLS,
        "{kind:?}: only {kills} kill(s) before the attach completed (want at least \
         {MIN_KILLS}): is the binary built with --features test-hooks, and does it honour \
         {KILL_ENV}?"
    );

    // The completed attachment: as asked, listed alive; detach undoes all of it.
    assert_completed(&w, &format!("{kind:?}, completed"));
    w.pw(&["detach", &spec]).ok();
    let problems = before.problems(&w);
    assert!(
        problems.is_empty(),
        "{kind:?}: after the final detach the namespaces are not as before:\n{}",
        problems.join("\n")
    );
    assert_eq!(w.ls(), Vec::<Value>::new(), "no record after the detach");
    if let Some(lan) = &w.lan {
        assert!(
            link(lan, "lan0").is_some(),
            "the LAN side of the NIC still exists"
        );
    }
}

#[test]
fn crash_new_bridge_then_gc() {
    crash_at_every_message(Kind::NewBridge, Undo::Gc);
}

#[test]
fn crash_existing_bridge_then_gc() {
    crash_at_every_message(Kind::ExistingBridge, Undo::Gc);
}

#[test]
fn crash_macvlan_then_gc() {
    crash_at_every_message(Kind::Macvlan, Undo::Gc);
}

#[test]
fn crash_direct_phys_then_gc() {
    crash_at_every_message(Kind::DirectPhys, Undo::Gc);
}

#[test]
fn crash_ovs_then_gc() {
    need_ovs!();
    crash_at_every_message(Kind::Ovs, Undo::Gc);
}

#[test]
fn crash_new_bridge_then_detach() {
    crash_at_every_message(Kind::NewBridge, Undo::Detach);
}

#[test]
fn crash_existing_bridge_then_detach() {
    crash_at_every_message(Kind::ExistingBridge, Undo::Detach);
}

#[test]
fn crash_new_bridge_then_attach_again() {
    crash_at_every_message(Kind::NewBridge, Undo::Reattach);
}
