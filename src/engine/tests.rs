//! Root-free unit tests of every kind's plan, apply, rollback, teardown and check against the
//! recording netlink fake.
//!
//! Each test builds a [`World`] with two fake namespaces, named by two real fds of the current
//! network namespace (different fds, same inode): one is "the host", the other the guest. No
//! real interface is read or changed; the only real-system reads are the store directory (an
//! empty per-process temporary directory, `PIPEWORK_RUNTIME_DIR`), OVS's database socket (an
//! empty temporary run directory, `OVS_RUNDIR`) and sysfs for a wireless phy of a NIC name
//! that does not exist on any machine. The environment variables are set once per process:
//! these tests are meant for `cargo nextest` (one process per test).
//!
//! Only IPv4 static addresses are used: IPv6 and DHCPv6 write /proc/sys in the guest, which
//! `NetNs::run_in` would do inline in the real namespace (same inode).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Once;

use netlink_packet_route::link::{InfoKind, LinkLayerType};
use netlink_packet_route::RouteNetlinkMessage;

use super::*;
use crate::driver::driver;
use crate::driver_api::nic;
use crate::env::{Batch, Sys};
use crate::grammar::{self, Invocation};
use crate::guest::Engine;
use crate::log::Log;
use crate::mac::MacAddr;
use crate::netlink::fake::{CallOp, FakeNl, LinkSnapshot, NsSnapshot, Seed, World};
use crate::netlink::{msg, Rtnl};
use crate::plan::{GuestLink, NicState, Op, Side, Step, UndoEntry, LINK_GROUP};
use crate::request::Command;
use crate::store::{Journal, Record};

// ---- the rig -------------------------------------------------------------------------------

/// A NIC name no real machine has (phys reads /sys/class/net/NAME/phy80211).
const NIC: &str = "pwtnic0";
const GUEST_MAC: &str = "02:42:ac:11:00:05";
const BATCH_GROUP: u32 = 0x7077_00ff;

fn isolate() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let base =
            std::env::temp_dir().join(format!("pipework-engine-tests-{}", std::process::id()));
        let run = base.join("run");
        let ovs = base.join("ovs");
        std::fs::create_dir_all(&run).expect("temp dir");
        std::fs::create_dir_all(&ovs).expect("temp dir");
        std::env::set_var("PIPEWORK_RUNTIME_DIR", &run);
        std::env::set_var("OVS_RUNDIR", &ovs);
    });
}

struct Rig {
    world: World,
    home: NetNs,
    guest: Guest,
    host: FakeNl,
    gnl: FakeNl,
}

impl Rig {
    fn new() -> Rig {
        isolate();
        let home = NetNs::open(Path::new("/proc/self/ns/net")).expect("open host netns");
        let netns = NetNs::open(Path::new("/proc/self/ns/net")).expect("open guest netns");
        assert_ne!(home.raw_fd(), netns.raw_fd());
        assert_eq!(home.inode, netns.inode);
        let world = World::new();
        let host = world.netns(home.raw_fd());
        let gnl = world.netns(netns.raw_fd());
        let guest = Guest {
            spec: "web1".into(),
            engine: Engine::Netns,
            id: None,
            name: Some("web1".into()),
            pid: None,
            netns,
        };
        Rig {
            world,
            home,
            guest,
            host,
            gnl,
        }
    }

    fn h(&self) -> i32 {
        self.home.raw_fd()
    }

    fn g(&self) -> i32 {
        self.guest.netns.raw_fd()
    }

    /// The default host-side name of the veth kinds for guest interface `ifname`.
    fn veth_name(&self, ifname: &str) -> String {
        crate::naming::default_host_ifname(ifname, self.guest.naming_id())
    }

    fn snaps(&self) -> (NsSnapshot, NsSnapshot) {
        (self.world.snapshot(self.h()), self.world.snapshot(self.g()))
    }

    /// A host NIC (physical: no kind), with a fixed MAC.
    fn seed_nic(&self, name: &str, up: bool) -> u32 {
        self.world.seed_link(
            self.h(),
            Seed {
                name: name.into(),
                mac: Some("52:54:00:12:34:56".parse().unwrap()),
                up,
                ..Seed::default()
            },
        )
    }

    fn plan(&mut self, argv: &[&str]) -> Result<Plan, Error> {
        let req = request(argv);
        plan_attach(&mut PlanCtx {
            req: &req,
            guest: &self.guest,
            host: &mut self.host,
            guest_nl: &mut self.gnl,
        })
    }

    fn apply(
        &self,
        plan: &Plan,
        journal: &mut dyn Journal,
        fail_after: Option<&str>,
    ) -> Result<Applied, Error> {
        let mut host = self.host.clone();
        let mut gnl = self.gnl.clone();
        let mut env = Env {
            host: &mut host,
            guest: &mut gnl,
            guest_ns: &self.guest.netns,
            guest_desc: &self.guest,
            home: &self.home,
            log: Log::default(),
            journal,
            learned: Learned::default(),
        };
        apply::apply(plan, &mut env, fail_after, |_| Ok(()))
    }

    /// Applies, expecting success; returns the report's data and the journal.
    fn attach(&self, plan: &Plan) -> (Applied, Vec<UndoEntry>) {
        let mut j = Vec::new();
        let a = self
            .apply(plan, &mut j, None)
            .unwrap_or_else(|e| panic!("apply failed: {e}"));
        (a, j)
    }

    fn attach_with(&self, plan: &Plan, journal: &mut dyn Journal) -> Applied {
        self.apply(plan, journal, None)
            .unwrap_or_else(|e| panic!("apply failed: {e}"))
    }

    /// The first `k` steps, each through the kind's driver or the guest-side ops as `apply`
    /// runs them, and no rollback: an attach killed there. Returns its journal.
    fn apply_first_steps(&self, plan: &Plan, k: usize) -> Vec<UndoEntry> {
        let mut j = Vec::new();
        let mut host = self.host.clone();
        let mut gnl = self.gnl.clone();
        let mut env = Env {
            host: &mut host,
            guest: &mut gnl,
            guest_ns: &self.guest.netns,
            guest_desc: &self.guest,
            home: &self.home,
            log: Log::default(),
            journal: &mut j,
            learned: Learned::default(),
        };
        let drv = driver(plan.kind);
        for s in &plan.steps[..k] {
            let done = drv.apply(&s.op, &mut env).expect("step applies")
                || crate::addressing::apply::apply(&s.op, &mut env).expect("step applies");
            assert!(done, "no one applies {}", s.name);
        }
        j
    }

    /// The record a complete attach leaves, in memory.
    fn record(&self, plan: &Plan, applied: &Applied, undo: Vec<UndoEntry>) -> Record {
        let mut header = header_of(&self.home, &self.guest, plan);
        header.state = RecordState::Complete;
        header.identity = Some(identity_of(plan, applied));
        header.attachment = Some(
            serde_json::to_value(AttachReport::new(&self.guest, plan, Some(applied.clone())))
                .expect("report encodes"),
        );
        Record {
            path: PathBuf::from("/nonexistent/pipework-test-record.json"),
            header,
            undo,
        }
    }

    fn with_sys<T>(&self, batch: Option<&mut Batch>, f: impl FnOnce(&mut Sys<'_>) -> T) -> T {
        let mut host = self.host.clone();
        let mut gnl = self.gnl.clone();
        let mut sys = Sys {
            host: &mut host,
            guest: Some(&mut gnl),
            guest_ns: Some(&self.guest.netns),
            home: &self.home,
            log: Log::default(),
            batch,
        };
        f(&mut sys)
    }

    /// Replays entries; returns (done, left).
    fn replay(
        &self,
        kind: Kind,
        entries: &[UndoEntry],
        batch: Option<&mut Batch>,
    ) -> (Vec<String>, Vec<String>) {
        self.with_sys(batch, |sys| {
            let mut done = Vec::new();
            let left = apply::undo::replay(kind, entries, sys, &mut done);
            (done, left)
        })
    }

    /// A detach of the record: the driver's teardown entries, replayed.
    fn teardown(&self, rec: &Record, batch: Option<&mut Batch>) -> (Vec<String>, Vec<String>) {
        let entries = driver(rec.header.kind).teardown(rec);
        self.replay(rec.header.kind, &entries, batch)
    }

    fn check(&self, rec: &Record) -> Vec<String> {
        self.with_sys(None, |sys| driver(rec.header.kind).check(rec, sys))
            .expect("check runs")
    }

    fn alive(&self, rec: &Record) -> bool {
        self.with_sys(None, |sys| driver(rec.header.kind).alive(rec, sys))
    }

    fn requests(&self) -> usize {
        self.world
            .calls()
            .iter()
            .filter(|c| matches!(c.op, CallOp::Request { .. }))
            .count()
    }

    fn del(&self, fd: i32, name: &str) {
        let i = self.world.index_of(fd, name).expect("link to delete");
        self.world
            .netns(fd)
            .request(msg::del_link(i), 0)
            .expect("delete");
    }
}

fn request(argv: &[&str]) -> AttachRequest {
    let argv: Vec<String> = std::iter::once("pipework")
        .chain(argv.iter().copied())
        .map(String::from)
        .collect();
    match grammar::parse(&argv).unwrap_or_else(|e| panic!("{argv:?} does not parse: {e}")) {
        Invocation::Run(cmd, _) => match *cmd {
            Command::Attach(r) => r,
            _ => panic!("{argv:?} is not an attach"),
        },
        Invocation::Print(_) => panic!("{argv:?} is not an attach"),
    }
}

fn names(plan: &Plan) -> Vec<&'static str> {
    plan.steps.iter().map(|s| s.name).collect()
}

fn op<'a>(plan: &'a Plan, name: &str) -> &'a Op {
    &plan
        .steps
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no step {name} in {:?}", names(plan)))
        .op
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

fn link<'a>(s: &'a NsSnapshot, name: &str) -> &'a LinkSnapshot {
    s.links
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no link {name} in {:?}", s.links))
}

fn link_names(s: &NsSnapshot) -> Vec<&str> {
    s.links.iter().map(|l| l.name.as_str()).collect()
}

fn lo() -> LinkSnapshot {
    LinkSnapshot {
        name: "lo".into(),
        kind: None,
        master: None,
        mac: "00:00:00:00:00:00".into(),
        mtu: 65536,
        up: false,
        group: 0,
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Fails every change of a successful apply in turn (N = 1..=all), then injects a failure
/// after every step (and the record): each time the apply fails and every namespace equals
/// its snapshot before the attach.
fn rolls_back_everywhere(setup: impl Fn() -> (Rig, Plan)) {
    let (r, plan) = setup();
    r.world.clear_record();
    let before = r.requests();
    let mut spy = Spy::new(&r);
    r.attach_with(&plan, &mut spy);
    let entries = spy.entries.len();
    assert!(entries > 0);
    let n = r.requests() - before;
    assert!(
        n >= plan.steps.len() - 1,
        "{n} changes for {:?}",
        names(&plan)
    );
    for i in 1..=n {
        let (r, plan) = setup();
        let snaps = r.snaps();
        r.world.fail_nth_change(i, libc::EINVAL);
        let mut j = Vec::new();
        let e = r.apply(&plan, &mut j, None).expect_err(&format!(
            "change {i} of {n} failed, yet the apply succeeded"
        ));
        assert!(
            matches!(e, Error::Step { .. }),
            "change {i}: not a clean step failure: {e}"
        );
        assert_eq!(e.errno(), Some(libc::EINVAL), "change {i}: {e}");
        assert!(e.left_behind().is_empty(), "change {i}: {e}");
        assert_eq!(r.snaps(), snaps, "change {i} of {n} failed: not all undone");
    }
    // One more than there are: nothing fails.
    let (r, plan) = setup();
    r.world.fail_nth_change(n + 1, libc::EINVAL);
    r.attach(&plan);

    let mut steps = names(&plan);
    steps.push("record");
    for s in steps {
        let (r, plan) = setup();
        let snaps = r.snaps();
        let mut j = Vec::new();
        let e = r
            .apply(&plan, &mut j, Some(s))
            .expect_err("an injected failure fails the apply");
        assert!(matches!(e, Error::Injected(x) if x == s), "after {s}: {e}");
        assert_eq!(r.snaps(), snaps, "failure after step {s}: not all undone");
    }

    // The journal refuses its mth write: the change it announced is never made (each entry is
    // written before its change), and the rollback of the earlier ones leaves nothing.
    for m in 1..=entries {
        let (r, plan) = setup();
        let snaps = r.snaps();
        let mut spy = Spy::new(&r);
        spy.refuse = Some(m);
        r.apply(&plan, &mut spy, None)
            .expect_err("the journal write failed");
        assert_eq!(spy.entries.len(), m - 1);
        assert_eq!(
            r.snaps(),
            snaps,
            "journal write {m} refused: a change was made without it"
        );
    }

    // Killed right after an entry reached the journal, before its change: the undo of a change
    // that never happened is harmless.
    for m in 1..=entries {
        let (r, plan) = setup();
        let snaps = r.snaps();
        let mut spy = Spy::new(&r);
        spy.crash_after_write = Some(m);
        r.apply(&plan, &mut spy, None)
            .expect_err("the journal write failed");
        assert_eq!(spy.entries.len(), m);
        assert_eq!(
            r.snaps(),
            snaps,
            "entry {m} written, its change not made: not all undone"
        );
    }

    // Killed after any step, no rollback: the journal backwards (what gc replays for an
    // incomplete record) undoes everything.
    for k in 0..=plan.steps.len() {
        let (r, plan) = setup();
        let snaps = r.snaps();
        let journal = r.apply_first_steps(&plan, k);
        let entries: Vec<UndoEntry> = journal.into_iter().rev().collect();
        let (_, left) = r.replay(plan.kind, &entries, None);
        assert!(left.is_empty(), "killed after {k} steps: {left:?}");
        assert_eq!(
            r.snaps(),
            snaps,
            "killed after {k} steps: recovery left something"
        );
    }
}

/// A journal that notes, for each entry, how many calls the world had seen and whether the
/// link it names existed already; it can refuse its nth write.
struct Spy {
    world: World,
    host: i32,
    guest: i32,
    entries: Vec<UndoEntry>,
    seen: Vec<(usize, bool)>,
    refuse: Option<usize>,
    /// Keeps the nth entry, then fails (a crash between the journal and the change).
    crash_after_write: Option<usize>,
}

impl Spy {
    fn new(r: &Rig) -> Spy {
        Spy {
            world: r.world.clone(),
            host: r.h(),
            guest: r.g(),
            entries: Vec::new(),
            seen: Vec::new(),
            refuse: None,
            crash_after_write: None,
        }
    }
}

impl Journal for Spy {
    fn will(&mut self, entry: UndoEntry) -> Result<(), Error> {
        if self.refuse == Some(self.entries.len() + 1) {
            return Err(Error::Internal("the journal cannot be written".into()));
        }
        let exists = match &entry {
            UndoEntry::DeleteLink { side, name, .. } => {
                let fd = match side {
                    Side::Host => self.host,
                    Side::Guest => self.guest,
                };
                self.world.index_of(fd, name).is_some()
            }
            UndoEntry::DeleteBridge { name } | UndoEntry::DeleteVlan { name } => {
                self.world.index_of(self.host, name).is_some()
            }
            _ => false,
        };
        self.seen.push((self.world.calls().len(), exists));
        self.entries.push(entry);
        if self.crash_after_write == Some(self.entries.len()) {
            return Err(Error::Internal("killed after the journal write".into()));
        }
        Ok(())
    }

    fn entries(&self) -> &[UndoEntry] {
        &self.entries
    }
}

/// The index in `calls` of the request creating a link named `name`.
fn creating_call(w: &World, name: &str) -> usize {
    w.calls()
        .iter()
        .position(|c| {
            matches!(c.op, CallOp::Request { .. })
                && matches!(&c.msg, RouteNetlinkMessage::NewLink(m) if msg::link_name(m) == Some(name))
        })
        .unwrap_or_else(|| panic!("no request created {name}"))
}

// ---- bridge created by pipework ------------------------------------------------------------

const BR_NEW: &[&str] = &["br1", "web1", "10.0.0.5/24@10.0.0.1", GUEST_MAC];

fn bridge_new() -> (Rig, Plan) {
    let mut r = Rig::new();
    let p = r.plan(BR_NEW).expect("plans");
    (r, p)
}

#[test]
fn bridge_new_plan() {
    let (r, p) = bridge_new();
    let veth = r.veth_name("eth1");
    assert_eq!(p.kind, Kind::Bridge);
    assert!(p.host_interface_created);
    assert_eq!(p.host_ifname.as_deref(), Some(veth.as_str()));
    assert_eq!(
        names(&p),
        [
            "create-bridge",
            "create-veth",
            "guest-arp-notify",
            "guest-link-up",
            "add-address",
            "add-default-route",
            "wait-port-ready",
            "announce"
        ]
    );
    assert_eq!(
        *op(&p, "create-bridge"),
        Op::CreateBridge {
            name: "br1".into(),
            mtu: None
        }
    );
    assert_eq!(
        *op(&p, "create-veth"),
        Op::CreateVeth {
            host: veth.clone(),
            master: Some("br1".into()),
            guest: "eth1".into(),
            mtu: 1500,
            mac: Some(mac(GUEST_MAC)),
        }
    );
    assert_eq!(
        *op(&p, "add-default-route"),
        Op::AddDefaultRoute {
            gateway: ip("10.0.0.1"),
            ifname: "eth1".into()
        }
    );
    assert_eq!(*op(&p, "wait-port-ready"), Op::WaitPortReady { port: veth });
    assert!(p.ready.is_none(), "the ready step went into the steps");
    // Planning changed nothing.
    assert_eq!(r.requests(), 0);
}

#[test]
fn bridge_new_apply() {
    let (r, p) = bridge_new();
    let veth = r.veth_name("eth1");
    let mut spy = Spy::new(&r);
    let a = r.apply(&p, &mut spy, None).expect("applies");
    let (h, g) = r.snaps();
    let br = link(&h, "br1");
    assert_eq!(
        (br.kind.as_deref(), br.up, br.group, br.mtu),
        (Some("bridge"), true, LINK_GROUP, 1500)
    );
    let he = link(&h, &veth);
    assert_eq!(
        (
            he.kind.as_deref(),
            he.master.as_deref(),
            he.up,
            he.group,
            he.mtu
        ),
        (Some("veth"), Some("br1"), true, LINK_GROUP, 1500)
    );
    assert_eq!(link_names(&h), ["br1", "lo", veth.as_str()]);
    assert_eq!(
        g.links,
        [
            LinkSnapshot {
                name: "eth1".into(),
                kind: Some("veth".into()),
                master: None,
                mac: GUEST_MAC.into(),
                mtu: 1500,
                up: true,
                group: LINK_GROUP,
            },
            lo()
        ]
    );
    assert_eq!(g.addresses, strings(&["eth1 10.0.0.5/24"]));
    assert_eq!(g.routes, strings(&["default via 10.0.0.1 dev eth1"]));
    assert!(h.addresses.is_empty() && h.routes.is_empty());
    let gi = r.world.index_of(r.g(), "eth1").unwrap();
    assert!(r.world.arp_notify(r.g(), gi));
    assert_eq!(a.guest_index, Some(gi));
    assert_eq!(a.host_index, r.world.index_of(r.h(), &veth));
    assert_eq!(a.guest_mac, Some(mac(GUEST_MAC)));
    assert_eq!(a.guest_mtu, Some(1500));

    // The journal, in order, each entry before its change.
    assert_eq!(spy.entries.len(), 3);
    assert_eq!(
        spy.entries[0],
        UndoEntry::DeleteBridge { name: "br1".into() }
    );
    assert_eq!(
        spy.entries[1],
        UndoEntry::DeleteLink {
            side: Side::Host,
            name: veth.clone(),
            kind: LinkKind::Veth
        }
    );
    assert!(matches!(
        &spy.entries[2],
        UndoEntry::DeleteRoute { text, .. } if text == "default via 10.0.0.1 dev eth1"
    ));
    assert_eq!(
        spy.seen.iter().map(|s| s.1).collect::<Vec<_>>(),
        [false, false, false],
        "an entry was journalled after its link existed"
    );
    assert!(spy.seen[0].0 <= creating_call(&r.world, "br1"));
    assert!(spy.seen[1].0 <= creating_call(&r.world, &veth));
    assert!(creating_call(&r.world, "br1") < spy.seen[1].0);
    // The route entry precedes the route's request.
    let route_call = r
        .world
        .calls()
        .iter()
        .position(|c| matches!(c.msg, RouteNetlinkMessage::NewRoute(_)))
        .unwrap();
    assert!(spy.seen[2].0 <= route_call);
    // Every change, in order.
    let ch = r.world.changes();
    assert_eq!(ch.len(), 7, "{ch:#?}");
    assert!(
        ch[0].contains("newlink bridge br1") && ch[0].ends_with(" up"),
        "{ch:#?}"
    );
    assert!(
        ch[1].contains(&format!("newlink veth {veth} peer eth1 in ns {}", r.g())),
        "{ch:#?}"
    );
    assert!(ch[2].contains("arp_notify 1"), "{ch:#?}");
    assert!(ch[3].ends_with(" up"), "{ch:#?}");
    assert!(ch[4].contains("newaddr 10.0.0.5/24 dev eth1"), "{ch:#?}");
    assert!(
        ch[5].contains("newroute default via 10.0.0.1 dev eth1"),
        "{ch:#?}"
    );
    assert!(ch[6].contains(&format!("mac {GUEST_MAC}")), "{ch:#?}");
}

#[test]
fn bridge_new_rollback() {
    rolls_back_everywhere(bridge_new);
}

#[test]
fn bridge_new_journal_failure_stops_before_the_change() {
    let (r, p) = bridge_new();
    let before = r.snaps();
    let veth = r.veth_name("eth1");
    let mut spy = Spy::new(&r);
    spy.refuse = Some(2);
    let e = r
        .apply(&p, &mut spy, None)
        .expect_err("journal failure fails");
    assert_eq!(e.step(), Some("create-veth"));
    assert_eq!(r.snaps(), before, "the bridge was not rolled back");
    assert!(
        !r.world.calls().iter().any(|c| matches!(
            &c.msg,
            RouteNetlinkMessage::NewLink(m) if msg::link_name(m) == Some(veth.as_str())
        )),
        "the veth was created without its undo entry"
    );
}

#[test]
fn bridge_new_teardown() {
    let (r, p) = bridge_new();
    let before = r.snaps();
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    let (done, left) = r.teardown(&rec, None);
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(done.len(), 3, "{done:?}");
    assert!(done[2].contains("delete bridge br1"), "{done:?}");
    assert_eq!(r.snaps(), before);
}

#[test]
fn bridge_new_teardown_in_a_batch() {
    let (r, p) = bridge_new();
    let before = r.snaps();
    let veth = r.veth_name("eth1");
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    let mut batch = Batch {
        dry_run: false,
        group: BATCH_GROUP,
        ..Batch::default()
    };
    let (done, left) = r.teardown(&rec, Some(&mut batch));
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(done.len(), 3, "{done:?}");
    // Queued, not deleted: the veth and the bridge wait in the batch's group.
    let h = r.world.snapshot(r.h());
    assert_eq!(link(&h, &veth).group, BATCH_GROUP);
    assert_eq!(link(&h, "br1").group, BATCH_GROUP);
    assert!(batch.host_links.contains(&veth) && batch.host_links.contains("br1"));
    assert_eq!(batch.host_links.len(), 2);
    // The route was taken out at once; the guest end is still there until the flush.
    assert!(r.world.snapshot(r.g()).routes.is_empty());
    r.host
        .clone()
        .request(msg::del_link_group(BATCH_GROUP), 0)
        .expect("group delete");
    assert_eq!(r.snaps(), before);
}

#[test]
fn bridge_new_check() {
    let (r, p) = bridge_new();
    let veth = r.veth_name("eth1");
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    assert_eq!(r.check(&rec), Vec::<String>::new());
    assert!(r.alive(&rec));
    let gi = r.world.index_of(r.g(), "eth1").unwrap();

    // Another MAC.
    r.gnl
        .clone()
        .request(msg::set_link_mac(gi, &mac("02:00:00:00:00:99")), 0)
        .unwrap();
    assert_eq!(
        r.check(&rec),
        [format!(
            "eth1 has MAC 02:00:00:00:00:99 (recorded {GUEST_MAC})"
        )]
    );
    r.gnl
        .clone()
        .request(msg::set_link_mac(gi, &mac(GUEST_MAC)), 0)
        .unwrap();
    assert!(r.check(&rec).is_empty());

    // The address gone.
    r.gnl
        .clone()
        .request(msg::del_address(gi, ip("10.0.0.5"), 24), 0)
        .unwrap();
    assert_eq!(r.check(&rec), ["eth1 lost its address 10.0.0.5/24"]);

    // Off the bridge.
    let hi = r.world.index_of(r.h(), &veth).unwrap();
    let mut nomaster = netlink_packet_route::link::LinkMessage::default();
    nomaster.header.index = hi;
    nomaster
        .attributes
        .push(netlink_packet_route::link::LinkAttribute::Controller(0));
    r.host
        .clone()
        .request(RouteNetlinkMessage::SetLink(nomaster), 0)
        .unwrap();
    let d = r.check(&rec);
    assert!(
        d.contains(&format!("{veth} is no longer a port of br1")),
        "{d:?}"
    );

    // The host end removed (its peer goes with it).
    r.del(r.h(), &veth);
    let d = r.check(&rec);
    assert_eq!(
        d,
        [
            format!("the host end {veth} is gone or is not the one pipework made"),
            "eth1 is gone from the guest".to_string()
        ]
    );
    assert!(!r.alive(&rec));
}

#[test]
fn bridge_check_a_replaced_link_is_not_alive() {
    let (r, p) = bridge_new();
    let veth = r.veth_name("eth1");
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    r.del(r.h(), &veth);
    // Someone else's pair of the same names: no pipework group, new indexes.
    r.world.seed_veth(r.h(), &veth, r.g(), "eth1");
    assert!(!r.alive(&rec));
    let d = r.check(&rec);
    assert!(
        d.contains(&format!(
            "the host end {veth} is gone or is not the one pipework made"
        )),
        "{d:?}"
    );
    // And the guest side replaced by a link of another type.
    r.del(r.g(), "eth1");
    r.world.add_link(r.g(), "eth1", Some(InfoKind::Dummy));
    let d = r.check(&rec);
    assert!(
        d.contains(&"eth1 is a dummy now, not the veth pipework made".to_string()),
        "{d:?}"
    );
}

#[test]
fn bridge_made_by_pipework_goes_with_its_last_port() {
    let mut r = Rig::new();
    let before = r.snaps();
    let p1 = r.plan(BR_NEW).unwrap();
    let (a1, j1) = r.attach(&p1);
    let rec1 = r.record(&p1, &a1, j1);
    let p2 = r
        .plan(&["br1", "-i", "eth2", "web1", "10.0.1.5/24"])
        .unwrap();
    assert_eq!(names(&p2)[0], "create-veth", "br1 exists now");
    let (a2, j2) = r.attach(&p2);
    let rec2 = r.record(&p2, &a2, j2);
    let (_, left) = r.teardown(&rec1, None);
    assert!(left.is_empty(), "{left:?}");
    let h = r.world.snapshot(r.h());
    assert!(link_names(&h).contains(&"br1"), "br1 still has a port");
    assert_eq!(
        link(&h, &r.veth_name("eth2")).master.as_deref(),
        Some("br1")
    );
    let (_, left) = r.teardown(&rec2, None);
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(r.snaps(), before);
}

// ---- an existing bridge --------------------------------------------------------------------

fn bridge_existing() -> (Rig, Plan) {
    let mut r = Rig::new();
    r.world.seed_link(
        r.h(),
        Seed {
            name: "br0".into(),
            kind: Some(InfoKind::Bridge),
            mtu: Some(9000),
            up: true,
            ..Seed::default()
        },
    );
    let p = r.plan(&["br0", "web1", "10.0.0.5/24@10.0.0.1"]).unwrap();
    (r, p)
}

#[test]
fn bridge_existing_plan_apply_teardown() {
    let (r, p) = bridge_existing();
    let veth = r.veth_name("eth1");
    assert!(!p.host_interface_created);
    assert_eq!(
        names(&p),
        [
            "create-veth",
            "guest-arp-notify",
            "guest-link-up",
            "add-address",
            "add-default-route",
            "wait-port-ready",
            "announce"
        ]
    );
    assert_eq!(
        *op(&p, "create-veth"),
        Op::CreateVeth {
            host: veth.clone(),
            master: Some("br0".into()),
            guest: "eth1".into(),
            mtu: 9000,
            mac: None
        }
    );
    let before = r.snaps();
    let (a, j) = r.attach(&p);
    assert_eq!(j.len(), 2);
    assert_eq!(
        j[0],
        UndoEntry::DeleteLink {
            side: Side::Host,
            name: veth.clone(),
            kind: LinkKind::Veth
        }
    );
    let (h, g) = r.snaps();
    assert_eq!(link(&h, &veth).master.as_deref(), Some("br0"));
    assert_eq!(link(&h, &veth).mtu, 9000);
    assert_eq!(link(&g, "eth1").mtu, 9000);
    assert_eq!(link(&h, "br0").group, 0);
    let rec = r.record(&p, &a, j);
    assert!(r.check(&rec).is_empty());
    let (done, left) = r.teardown(&rec, None);
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(done.len(), 2, "the user's bridge is not deleted: {done:?}");
    assert_eq!(r.snaps(), before, "the user's bridge is kept as it was");
}

#[test]
fn bridge_existing_rollback() {
    rolls_back_everywhere(bridge_existing);
}

#[test]
fn bridge_refuses_a_vlan_tag() {
    let (mut r, _) = bridge_existing();
    let e = r
        .plan(&["br0", "web1", "10.0.0.5/24", "@10"])
        .expect_err("tag refused");
    assert!(e.to_string().contains("cannot carry VLAN tags"), "{e}");
}

// ---- macvlan -------------------------------------------------------------------------------

fn macvlan(extra: &[&str]) -> (Rig, Plan) {
    let mut r = Rig::new();
    r.seed_nic(NIC, false);
    let mut argv = vec![NIC, "web1", "10.0.0.5/24@10.0.0.1"];
    argv.extend(extra);
    let p = r.plan(&argv).unwrap();
    (r, p)
}

#[test]
fn macvlan_plan() {
    let (_, p) = macvlan(&[]);
    assert_eq!(p.kind, Kind::Macvlan);
    assert_eq!(
        names(&p),
        [
            "host-link-up",
            "create-macvlan",
            "guest-arp-notify",
            "guest-link-up",
            "add-address",
            "add-default-route",
            "announce"
        ]
    );
    assert_eq!(
        *op(&p, "create-macvlan"),
        Op::CreateInGuest {
            link: GuestLink::Macvlan {
                parent: NIC.into(),
                mode: crate::request::MacvlanMode::Bridge
            },
            name: "eth1".into(),
            mtu: Some(1500),
            mac: None
        }
    );
    assert_eq!(*op(&p, "host-link-up"), Op::HostLinkUp { name: NIC.into() });
}

#[test]
fn macvlan_apply() {
    let (r, p) = macvlan(&[]);
    let mut spy = Spy::new(&r);
    let a = r.apply(&p, &mut spy, None).expect("applies");
    assert_eq!(
        spy.entries[..2],
        [
            UndoEntry::HostLinkDown { name: NIC.into() },
            UndoEntry::DeleteLink {
                side: Side::Guest,
                name: "eth1".into(),
                kind: LinkKind::Macvlan
            }
        ]
    );
    assert_eq!(spy.entries.len(), 3);
    assert!(!spy.seen[1].1, "journalled after the macvlan existed");
    assert!(spy.seen[1].0 <= creating_call(&r.world, "eth1"));
    let (h, g) = r.snaps();
    assert!(link(&h, NIC).up);
    assert_eq!(link(&h, NIC).group, 0);
    let e = link(&g, "eth1");
    assert_eq!(
        (e.kind.as_deref(), e.up, e.group, e.mtu),
        (Some("macvlan"), true, LINK_GROUP, 1500)
    );
    assert_eq!(Some(mac(&e.mac)), a.guest_mac);
    assert_eq!(g.addresses, strings(&["eth1 10.0.0.5/24"]));
    assert_eq!(g.routes, strings(&["default via 10.0.0.1 dev eth1"]));
    // The macvlan's parent is the host NIC.
    let l = r.world.link(r.g(), "eth1").unwrap();
    assert_eq!(msg::link_parent(&l), r.world.index_of(r.h(), NIC));
}

#[test]
fn macvlan_rollback() {
    rolls_back_everywhere(|| macvlan(&[]));
}

#[test]
fn macvlan_teardown_keeps_the_nic_up() {
    let (r, p) = macvlan(&[]);
    let (mut h0, g0) = r.snaps();
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    for b in [false, true] {
        let mut batch = Batch {
            group: BATCH_GROUP,
            ..Batch::default()
        };
        if b {
            // Once more, on a second attach, in a batch (the guest link is not batched).
            let (a, j) = r.attach(&p);
            let rec = r.record(&p, &a, j);
            let (_, left) = r.teardown(&rec, Some(&mut batch));
            assert!(left.is_empty(), "{left:?}");
            assert!(batch.host_links.is_empty(), "{:?}", batch.host_links);
        } else {
            let (done, left) = r.teardown(&rec, None);
            assert!(left.is_empty(), "{left:?}");
            assert_eq!(done.len(), 2, "{done:?}");
        }
        let idx = h0.links.iter().position(|l| l.name == NIC).unwrap();
        h0.links[idx].up = true;
        assert_eq!(r.snaps(), (h0.clone(), g0.clone()), "batch {b}");
    }
}

#[test]
fn macvlan_check() {
    let (r, p) = macvlan(&[]);
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    assert!(r.check(&rec).is_empty(), "{:?}", r.check(&rec));
    assert!(r.alive(&rec));
    let gi = r.world.index_of(r.g(), "eth1").unwrap();
    r.gnl
        .clone()
        .request(msg::set_link_mac(gi, &mac("02:00:00:00:00:99")), 0)
        .unwrap();
    let d = r.check(&rec);
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0].starts_with("eth1 has MAC 02:00:00:00:00:99"), "{d:?}");
    assert!(!r.alive(&rec), "a MAC change is another interface");
    r.gnl
        .clone()
        .request(msg::set_link_mac(gi, &a.guest_mac.unwrap()), 0)
        .unwrap();
    r.gnl
        .clone()
        .request(msg::del_address(gi, ip("10.0.0.5"), 24), 0)
        .unwrap();
    assert_eq!(r.check(&rec), ["eth1 lost its address 10.0.0.5/24"]);
    r.gnl.clone().request(msg::set_link_down(gi), 0).unwrap();
    assert_eq!(
        r.check(&rec),
        ["eth1 lost its address 10.0.0.5/24", "eth1 is down"]
    );
    // Replaced by someone else's dummy of the same name.
    r.del(r.g(), "eth1");
    assert_eq!(r.check(&rec), ["eth1 is gone from the guest"]);
    r.world.add_link(r.g(), "eth1", Some(InfoKind::Dummy));
    let d = r.check(&rec);
    assert!(
        d.contains(&"eth1 is a dummy now, not the macvlan pipework made".to_string()),
        "{d:?}"
    );
    assert!(!r.alive(&rec));
}

// ---- macvlan on an 802.1Q child ------------------------------------------------------------

#[test]
fn macvlan_vlan_plan_apply_teardown() {
    let (r, p) = macvlan(&["@10"]);
    let vname = format!("{NIC}.10");
    assert_eq!(p.vlan, Some(10));
    assert_eq!(
        names(&p),
        [
            "host-link-up",
            "create-vlan",
            "create-macvlan",
            "guest-arp-notify",
            "guest-link-up",
            "add-address",
            "add-default-route",
            "announce"
        ]
    );
    assert_eq!(
        *op(&p, "create-vlan"),
        Op::CreateVlan {
            parent: NIC.into(),
            name: vname.clone(),
            id: 10,
            mtu: Some(1500)
        }
    );
    assert!(matches!(
        op(&p, "create-macvlan"),
        Op::CreateInGuest { link: GuestLink::Macvlan { parent, .. }, .. } if *parent == vname
    ));
    let (mut h0, g0) = r.snaps();
    let mut spy = Spy::new(&r);
    let a = r.apply(&p, &mut spy, None).unwrap();
    assert_eq!(
        spy.entries[..3],
        [
            UndoEntry::HostLinkDown { name: NIC.into() },
            UndoEntry::DeleteVlan {
                name: vname.clone()
            },
            UndoEntry::DeleteLink {
                side: Side::Guest,
                name: "eth1".into(),
                kind: LinkKind::Macvlan
            }
        ]
    );
    assert!(!spy.seen[1].1 && !spy.seen[2].1);
    assert!(spy.seen[1].0 <= creating_call(&r.world, &vname));
    let h = r.world.snapshot(r.h());
    let v = link(&h, &vname);
    assert_eq!(
        (v.kind.as_deref(), v.up, v.group, v.mtu),
        (Some("vlan"), true, LINK_GROUP, 1500)
    );
    let vl = r.world.link(r.h(), &vname).unwrap();
    assert_eq!(msg::vlan_id(&vl), Some(10));
    assert_eq!(msg::link_parent(&vl), r.world.index_of(r.h(), NIC));
    let gl = r.world.link(r.g(), "eth1").unwrap();
    assert_eq!(msg::link_parent(&gl), r.world.index_of(r.h(), &vname));

    let rec = r.record(&p, &a, spy.entries);
    assert!(r.check(&rec).is_empty());
    // Removing the VLAN child takes the macvlan with it.
    let (done, left) = r.teardown(&rec, None);
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(done.len(), 3, "{done:?}");
    assert!(
        done[2].contains(&format!("delete VLAN interface {vname}")),
        "{done:?}"
    );
    let idx = h0.links.iter().position(|l| l.name == NIC).unwrap();
    h0.links[idx].up = true;
    assert_eq!(r.snaps(), (h0, g0));
}

#[test]
fn macvlan_vlan_rollback() {
    rolls_back_everywhere(|| macvlan(&["@10"]));
}

#[test]
fn macvlan_vlan_check_when_the_vlan_child_goes() {
    let (r, p) = macvlan(&["@10"]);
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    r.del(r.h(), &format!("{NIC}.10"));
    assert_eq!(r.check(&rec), ["eth1 is gone from the guest"]);
    assert!(!r.alive(&rec));
}

#[test]
fn macvlan_vlan_reuses_an_existing_child() {
    let mut r = Rig::new();
    let nic = r.seed_nic(NIC, true);
    let vname = format!("{NIC}.10");
    // Created through the fake as `ip link add` would (the seed cannot carry a VLAN id).
    r.host
        .request(
            msg::new_vlan(&vname, nic, 10, None),
            netlink_packet_core::NLM_F_CREATE,
        )
        .unwrap();
    let vi = r.world.index_of(r.h(), &vname).unwrap();
    r.host.request(msg::set_link_group(vi, 0), 0).unwrap();
    let p = r.plan(&[NIC, "web1", "10.0.0.5/24", "@10"]).unwrap();
    assert_eq!(names(&p)[0], "create-macvlan", "{:?}", names(&p));
    let before = r.snaps();
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    let (_, left) = r.teardown(&rec, None);
    assert!(left.is_empty());
    assert_eq!(r.snaps(), before, "the user's VLAN child is kept");
    // A link of that name that is not a VLAN of that id is refused.
    let mut r = Rig::new();
    r.seed_nic(NIC, true);
    r.world.add_link(r.h(), &vname, Some(InfoKind::Dummy));
    let e = r.plan(&[NIC, "web1", "10.0.0.5/24", "@10"]).unwrap_err();
    assert!(
        e.to_string().contains("is not a VLAN device for tag 10"),
        "{e}"
    );
}

#[test]
fn macvlan_vlan_without_8021q_says_the_module_is_missing() {
    let (r, p) = macvlan(&["@10"]);
    let before = r.snaps();
    r.world.lack_kind(InfoKind::Vlan);
    let mut j = Vec::new();
    let e = r.apply(&p, &mut j, None).expect_err("no 8021q");
    assert_eq!(e.step(), Some("create-vlan"));
    assert_eq!(e.errno(), Some(libc::EOPNOTSUPP));
    let text = e.to_string();
    assert!(text.contains("module 8021q is not loaded"), "{text}");
    assert!(text.contains("modprobe 8021q"), "{text}");
    assert_eq!(r.snaps(), before, "the NIC went back down");
}

#[test]
fn macvlan_refuses_loopback() {
    let mut r = Rig::new();
    let e = r.plan(&["lo", "web1", "10.0.0.5/24"]).unwrap_err();
    assert!(matches!(e, Error::HostInterface(_)), "{e}");
    assert_eq!(r.requests(), 0);
}

#[test]
#[ignore = "fake gap: the fake's lo lacks IFF_LOOPBACK (render_link never sets LinkFlags::Loopback), so the loopback refusal is not the one reached"]
fn macvlan_refuses_loopback_as_loopback() {
    let mut r = Rig::new();
    let e = r.plan(&["lo", "web1", "10.0.0.5/24"]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "lo is the loopback interface: it cannot carry guests"
    );
}

// ---- --direct-phys -------------------------------------------------------------------------

fn phys(extra: &[&str], gateway: &str) -> (Rig, Plan) {
    let mut r = Rig::new();
    let i = r.world.seed_link(
        r.h(),
        Seed {
            name: NIC.into(),
            mac: Some("52:54:00:12:34:56".parse().unwrap()),
            mtu: Some(9000),
            up: true,
            ..Seed::default()
        },
    );
    r.world.add_address(r.h(), i, ip("192.168.7.10"), 24);
    r.world.add_address(r.h(), i, ip("192.168.8.10"), 24);
    let addr = format!("10.0.0.5/24{gateway}");
    let mut argv = vec!["--direct-phys", NIC, "web1", addr.as_str()];
    argv.extend(extra);
    let p = r.plan(&argv).unwrap();
    (r, p)
}

#[test]
fn phys_plan() {
    let (_, p) = phys(&[GUEST_MAC], "@10.0.0.1");
    assert_eq!(p.kind, Kind::Phys);
    assert_eq!(p.host_ifname.as_deref(), Some(NIC));
    assert_eq!(
        p.dropped_addresses,
        [
            "192.168.7.10/24".parse::<ipnet::IpNet>().unwrap(),
            "192.168.8.10/24".parse().unwrap()
        ]
    );
    assert_eq!(
        names(&p),
        [
            "move-nic",
            "set-mac",
            "guest-arp-notify",
            "guest-link-up",
            "add-address",
            "add-default-route",
            "announce"
        ]
    );
    assert_eq!(
        *op(&p, "move-nic"),
        Op::MoveToGuest {
            nic: NicState {
                name: NIC.into(),
                mac: Some(mac("52:54:00:12:34:56")),
                mtu: Some(9000),
                up: true,
                addresses: p.dropped_addresses.clone(),
                phy: None
            },
            guest: "eth1".into(),
            mtu: None
        }
    );
    assert_eq!(
        *op(&p, "set-mac"),
        Op::SetMac {
            ifname: "eth1".into(),
            mac: mac(GUEST_MAC)
        }
    );
}

#[test]
fn phys_apply() {
    let (r, p) = phys(&[GUEST_MAC], "@10.0.0.1");
    let (a, j) = r.attach(&p);
    assert!(
        matches!(&j[0], UndoEntry::MoveBack { guest, nic } if guest == "eth1" && nic.name == NIC)
    );
    assert_eq!(j.len(), 2);
    let (h, g) = r.snaps();
    assert_eq!(h.links, [lo()], "the NIC left the host");
    assert!(h.addresses.is_empty());
    assert_eq!(
        g.links,
        [
            LinkSnapshot {
                name: "eth1".into(),
                kind: None,
                master: None,
                mac: GUEST_MAC.into(),
                mtu: 9000,
                up: true,
                group: 0,
            },
            lo()
        ]
    );
    assert_eq!(g.addresses, strings(&["eth1 10.0.0.5/24"]));
    assert_eq!(g.routes, strings(&["default via 10.0.0.1 dev eth1"]));
    assert_eq!(a.guest_mac, Some(mac(GUEST_MAC)));
}

#[test]
fn phys_rollback_restores_name_mac_addresses() {
    rolls_back_everywhere(|| phys(&[GUEST_MAC], "@10.0.0.1"));
    rolls_back_everywhere(|| phys(&[], ""));
}

#[test]
fn phys_teardown() {
    let (r, p) = phys(&[GUEST_MAC], "@10.0.0.1");
    let before = r.snaps();
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    let (done, left) = r.teardown(&rec, None);
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(done.len(), 2, "{done:?}");
    assert_eq!(r.snaps(), before);
    let (r, p) = phys(&[], "");
    let before = r.snaps();
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    let mut batch = Batch {
        group: BATCH_GROUP,
        ..Batch::default()
    };
    let (_, left) = r.teardown(&rec, Some(&mut batch));
    assert!(left.is_empty(), "{left:?}");
    assert!(batch.host_links.is_empty());
    assert_eq!(r.snaps(), before);
}

#[test]
fn phys_check() {
    let (r, p) = phys(&[GUEST_MAC], "");
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    assert!(r.check(&rec).is_empty(), "{:?}", r.check(&rec));
    assert!(r.alive(&rec));
    let gi = r.world.index_of(r.g(), "eth1").unwrap();
    r.gnl
        .clone()
        .request(msg::set_link_mac(gi, &mac("02:00:00:00:00:99")), 0)
        .unwrap();
    assert_eq!(
        r.check(&rec),
        [format!(
            "eth1 has MAC 02:00:00:00:00:99 (recorded {GUEST_MAC})"
        )]
    );
    assert!(!r.alive(&rec));
    r.gnl
        .clone()
        .request(msg::set_link_mac(gi, &mac(GUEST_MAC)), 0)
        .unwrap();
    r.gnl
        .clone()
        .request(msg::del_address(gi, ip("10.0.0.5"), 24), 0)
        .unwrap();
    assert_eq!(r.check(&rec), ["eth1 lost its address 10.0.0.5/24"]);
    // The NIC moved back by hand, a dummy of its guest name in its place.
    r.gnl
        .clone()
        .request(msg::move_link(gi, r.h(), NIC, None), 0)
        .unwrap();
    assert_eq!(r.check(&rec), ["eth1 is gone from the guest"]);
    r.world.seed_link(
        r.g(),
        Seed {
            name: "eth1".into(),
            kind: Some(InfoKind::Dummy),
            mac: Some(mac(GUEST_MAC)),
            up: true,
            ..Seed::default()
        },
    );
    assert!(!r.alive(&rec), "another ifindex");
}

// ---- IPoIB ---------------------------------------------------------------------------------

/// The fake cannot seed an Infiniband link ([`Seed`] has no link layer): the parent is made
/// through the fake as an IPoIB child of a seeded NIC, then given back group 0 and brought
/// down, so it looks like a user's InfiniBand interface.
fn ipoib(tag: Option<&str>) -> (Rig, Plan) {
    let mut r = Rig::new();
    let h = r.h();
    let nic = r.world.seed_link(
        h,
        Seed {
            name: "pwtib_lower".into(),
            mtu: Some(4092),
            up: true,
            ..Seed::default()
        },
    );
    r.host
        .request(
            msg::new_link_in_guest(
                &msg::GuestLinkKind::Ipoib {
                    parent: nic,
                    pkey: None,
                },
                "ib0",
                Some(2044),
                None,
                h,
            ),
            netlink_packet_core::NLM_F_CREATE,
        )
        .unwrap();
    let i = r.world.index_of(h, "ib0").unwrap();
    r.host.request(msg::set_link_group(i, 0), 0).unwrap();
    r.world.clear_record();
    let mut argv = vec!["ib0", "web1", "10.0.0.5/24@10.0.0.1"];
    if let Some(t) = tag {
        argv.push(t);
    }
    let p = r.plan(&argv).unwrap();
    (r, p)
}

#[test]
fn ipoib_plan() {
    let (_, p) = ipoib(None);
    assert_eq!(p.kind, Kind::Ipoib);
    assert!(!p.announce);
    assert_eq!(
        names(&p),
        [
            "host-link-up",
            "create-ipoib",
            "guest-arp-notify",
            "guest-link-up",
            "add-address",
            "add-default-route"
        ]
    );
    assert_eq!(
        *op(&p, "create-ipoib"),
        Op::CreateInGuest {
            link: GuestLink::Ipoib {
                parent: "ib0".into(),
                pkey: None
            },
            name: "ib0".into(),
            mtu: None,
            mac: None
        }
    );
    let (_, p) = ipoib(Some("@8001"));
    assert_eq!(p.vlan, Some(0x8001));
    assert!(matches!(
        op(&p, "create-ipoib"),
        Op::CreateInGuest {
            link: GuestLink::Ipoib {
                pkey: Some(0x8001),
                ..
            },
            ..
        }
    ));
}

#[test]
fn ipoib_refuses_a_mac() {
    let (mut r, _) = ipoib(None);
    let e = r
        .plan(&["ib0", "web1", "10.0.0.5/24", GUEST_MAC])
        .unwrap_err();
    assert!(
        e.to_string().contains("MACADDR configuration unsupported"),
        "{e}"
    );
}

#[test]
fn ipoib_apply_check_teardown() {
    let (r, p) = ipoib(Some("@8001"));
    let (mut h0, g0) = r.snaps();
    let (a, j) = r.attach(&p);
    assert_eq!(
        j[..2],
        [
            UndoEntry::HostLinkDown { name: "ib0".into() },
            UndoEntry::DeleteLink {
                side: Side::Guest,
                name: "ib0".into(),
                kind: LinkKind::Ipoib
            }
        ]
    );
    let g = r.world.snapshot(r.g());
    let l = link(&g, "ib0");
    assert_eq!(
        (l.kind.as_deref(), l.up, l.group, l.mtu),
        (Some("ipoib"), true, LINK_GROUP, 2044)
    );
    let gl = r.world.link(r.g(), "ib0").unwrap();
    assert_eq!(gl.header.link_layer_type, LinkLayerType::Infiniband);
    assert_eq!(msg::link_parent(&gl), r.world.index_of(r.h(), "ib0"));
    assert_eq!(g.addresses, strings(&["ib0 10.0.0.5/24"]));
    assert_eq!(g.routes, strings(&["default via 10.0.0.1 dev ib0"]));
    assert_eq!(a.guest_mac, None, "an InfiniBand address is no MAC");
    // No announce: no MAC was re-set.
    assert!(!r.world.changes().iter().any(|c| c.contains(" mac ")));

    let rec = r.record(&p, &a, j);
    assert!(r.check(&rec).is_empty(), "{:?}", r.check(&rec));
    assert!(r.alive(&rec));
    let gi = r.world.index_of(r.g(), "ib0").unwrap();
    r.gnl
        .clone()
        .request(msg::del_address(gi, ip("10.0.0.5"), 24), 0)
        .unwrap();
    assert_eq!(r.check(&rec), ["ib0 lost its address 10.0.0.5/24"]);
    r.gnl
        .clone()
        .request(
            msg::new_address(gi, ip("10.0.0.5"), 24, Some("10.0.0.255".parse().unwrap())),
            netlink_packet_core::NLM_F_CREATE,
        )
        .unwrap();
    let (done, left) = r.teardown(&rec, None);
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(done.len(), 2, "{done:?}");
    let idx = h0.links.iter().position(|l| l.name == "ib0").unwrap();
    h0.links[idx].up = true;
    assert_eq!(r.snaps(), (h0, g0));
}

#[test]
fn ipoib_rollback() {
    rolls_back_everywhere(|| ipoib(None));
}

#[test]
#[ignore = "fake gap: Seed has no link layer, so no Infiniband NIC can be seeded (seed_link always makes Ether)"]
fn fake_can_seed_an_infiniband_nic() {
    let r = Rig::new();
    r.world.seed_link(
        r.h(),
        Seed {
            name: "ib0".into(),
            kind: Some(InfoKind::Ipoib),
            ..Seed::default()
        },
    );
    let l = r.world.link(r.h(), "ib0").unwrap();
    assert_eq!(l.header.link_layer_type, LinkLayerType::Infiniband);
}

// ---- dummy ---------------------------------------------------------------------------------

fn dummy(addr: &str) -> (Rig, Plan) {
    let mut r = Rig::new();
    let p = r.plan(&["dummy", "web1", addr]).unwrap();
    (r, p)
}

#[test]
fn dummy_plan() {
    let (_, p) = dummy("10.0.21.101/24");
    assert_eq!(p.kind, Kind::Dummy);
    assert_eq!(
        names(&p),
        [
            "create-dummy",
            "guest-arp-notify",
            "guest-link-up",
            "add-address",
            "announce"
        ]
    );
    assert_eq!(
        *op(&p, "create-dummy"),
        Op::CreateInGuest {
            link: GuestLink::Dummy,
            name: "eth1".into(),
            mtu: None,
            mac: None
        }
    );
    let mut r = Rig::new();
    let e = r
        .plan(&["dummy", "web1", "10.0.21.101/24", "@10"])
        .unwrap_err();
    assert!(e.to_string().contains("cannot carry VLAN tags"), "{e}");
}

#[test]
fn dummy_apply_check_teardown() {
    let (r, p) = dummy("10.0.21.101/24@10.0.21.1");
    let before = r.snaps();
    let mut spy = Spy::new(&r);
    let a = r.apply(&p, &mut spy, None).unwrap();
    assert_eq!(
        spy.entries[0],
        UndoEntry::DeleteLink {
            side: Side::Guest,
            name: "eth1".into(),
            kind: LinkKind::Dummy
        }
    );
    assert!(!spy.seen[0].1);
    assert!(spy.seen[0].0 <= creating_call(&r.world, "eth1"));
    let (h, g) = r.snaps();
    assert_eq!(h, before.0, "nothing in the host");
    let l = link(&g, "eth1");
    assert_eq!(
        (l.kind.as_deref(), l.up, l.group, l.mtu),
        (Some("dummy"), true, LINK_GROUP, 1500)
    );
    assert_eq!(g.addresses, strings(&["eth1 10.0.21.101/24"]));
    assert_eq!(g.routes, strings(&["default via 10.0.21.1 dev eth1"]));
    let rec = r.record(&p, &a, spy.entries);
    assert!(r.check(&rec).is_empty());
    assert!(r.alive(&rec));
    let (done, left) = r.teardown(&rec, None);
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(done.len(), 2, "{done:?}");
    assert_eq!(r.snaps(), before);
}

#[test]
fn dummy_rollback() {
    rolls_back_everywhere(|| dummy("10.0.21.101/24@10.0.21.1"));
}

// ---- gateways ------------------------------------------------------------------------------

#[test]
fn gateway_outside_the_subnet_gets_an_on_link_route() {
    let setup = || dummy("10.0.0.5/24@10.9.9.1");
    let (r, p) = setup();
    assert_eq!(
        names(&p),
        [
            "create-dummy",
            "guest-arp-notify",
            "guest-link-up",
            "add-address",
            "add-gateway-route",
            "add-default-route",
            "announce"
        ]
    );
    assert_eq!(
        *op(&p, "add-gateway-route"),
        Op::AddHostRoute {
            gateway: ip("10.9.9.1"),
            ifname: "eth1".into()
        }
    );
    let before = r.snaps();
    let (a, j) = r.attach(&p);
    let g = r.world.snapshot(r.g());
    assert_eq!(
        g.routes,
        strings(&[
            "10.9.9.1/32 dev eth1 scope link",
            "default via 10.9.9.1 dev eth1"
        ])
    );
    assert_eq!(a.routes.len(), 2);
    let rec = r.record(&p, &a, j);
    let (_, left) = r.teardown(&rec, None);
    assert!(left.is_empty());
    assert_eq!(r.snaps(), before);
    rolls_back_everywhere(setup);
    // The same through a veth on a bridge.
    rolls_back_everywhere(|| {
        let mut r = Rig::new();
        let p = r.plan(&["br1", "web1", "10.0.0.5/24@10.9.9.1"]).unwrap();
        assert!(names(&p).contains(&"add-gateway-route"));
        (r, p)
    });
}

/// A guest with its own interface and default route (a container's eth0).
fn guest_with_default(r: &Rig) {
    let (_, gi) = r.world.seed_veth(r.h(), "vethdocker0", r.g(), "eth0");
    r.world
        .netns(r.g())
        .request(msg::set_link_up(gi), 0)
        .unwrap();
    r.world.add_address(r.g(), gi, ip("172.17.0.2"), 16);
    r.world
        .add_route(r.g(), msg::new_default_route(ip("172.17.0.1"), gi));
    r.world.clear_record();
}

fn with_default(kind_argv: &[&str]) -> (Rig, Plan) {
    let mut r = Rig::new();
    r.seed_nic(NIC, true);
    guest_with_default(&r);
    let p = r.plan(kind_argv).unwrap();
    (r, p)
}

#[test]
fn existing_default_route_is_replaced_and_restored() {
    for argv in [
        &["br1", "web1", "10.0.0.5/24@10.0.0.1"][..],
        &[NIC, "web1", "10.0.0.5/24@10.0.0.1"][..],
        &["dummy", "web1", "10.0.0.5/24@10.9.9.1"][..],
        &["--direct-phys", NIC, "web1", "10.0.0.5/24@10.0.0.1"][..],
    ] {
        let (r, p) = with_default(argv);
        let n = names(&p);
        let at = n.iter().position(|s| *s == "delete-default-route");
        let add = n.iter().position(|s| *s == "add-default-route");
        assert!(at.is_some() && at < add, "{argv:?}: {n:?}");
        assert!(
            matches!(
                op(&p, "delete-default-route"),
                Op::DeleteRoute { text, .. } if text == "default via 172.17.0.1 dev eth0"
            ),
            "{argv:?}"
        );
        let before = r.snaps();
        assert_eq!(
            before.1.routes,
            strings(&["default via 172.17.0.1 dev eth0"])
        );
        let (a, j) = r.attach(&p);
        assert!(
            j.iter().any(|e| matches!(e, UndoEntry::ReAddRoute { text, .. } if text == "default via 172.17.0.1 dev eth0")),
            "{argv:?}: {j:?}"
        );
        let g = r.world.snapshot(r.g());
        assert!(
            !g.routes.iter().any(|x| x.contains("172.17.0.1")),
            "{argv:?}: {:?}",
            g.routes
        );
        assert!(
            g.routes
                .iter()
                .any(|x| x.starts_with("default via") && x.ends_with("dev eth1")),
            "{argv:?}: {:?}",
            g.routes
        );
        let rec = r.record(&p, &a, j);
        let (_, left) = r.teardown(&rec, None);
        assert!(left.is_empty(), "{argv:?}: {left:?}");
        assert_eq!(
            r.snaps(),
            before,
            "{argv:?}: detach restores the old default"
        );
        rolls_back_everywhere(|| with_default(argv));
    }
}

// ---- OVS (plan only: its apply runs the real ovs-vsctl) ------------------------------------

#[test]
fn ovs_plan_without_a_running_ovs_is_refused() {
    let mut r = Rig::new();
    // OVS_RUNDIR is an empty directory: nothing listens there.
    assert!(matches!(
        crate::driver::ovs::bridge_datapath("ovs1").unwrap(),
        crate::driver::ovs::OvsBridge::NotRunning(why) if why.contains("db.sock")
    ));
    let e = r.plan(&["ovs1", "web1", "10.0.0.5/24"]).unwrap_err();
    assert!(matches!(e, Error::Engine(_)), "{e}");
    assert!(e.to_string().contains("Open vSwitch is not running"), "{e}");
    // A tap might be an OVS bridge of the userspace datapath: asked, and refused.
    r.world.add_link(r.h(), "tap0", Some(InfoKind::Tun));
    let e = r.plan(&["tap0", "web1", "10.0.0.5/24"]).unwrap_err();
    assert!(e.to_string().contains("tap0 is a tap device"), "{e}");
    assert_eq!(r.requests(), 0);
}

// ---- identity and safety -------------------------------------------------------------------

#[test]
fn undo_never_deletes_a_link_pipework_did_not_make() {
    let r = Rig::new();
    let (h, g) = (r.h(), r.g());
    // Same names as journalled, but no pipework group, or another type.
    r.world.seed_veth(h, "vethX", g, "eth1");
    r.world.seed_link(
        h,
        Seed {
            name: "br1".into(),
            kind: Some(InfoKind::Bridge),
            up: true,
            ..Seed::default()
        },
    );
    r.world.seed_link(
        h,
        Seed {
            name: "dum0".into(),
            kind: Some(InfoKind::Dummy),
            group: LINK_GROUP,
            ..Seed::default()
        },
    );
    r.world.seed_link(
        g,
        Seed {
            name: "eth2".into(),
            kind: Some(InfoKind::Dummy),
            group: LINK_GROUP,
            ..Seed::default()
        },
    );
    r.world.seed_link(
        h,
        Seed {
            name: format!("{NIC}.10"),
            kind: Some(InfoKind::Vlan),
            up: true,
            ..Seed::default()
        },
    );
    let entries = vec![
        UndoEntry::DeleteLink {
            side: Side::Host,
            name: "vethX".into(),
            kind: LinkKind::Veth,
        },
        UndoEntry::DeleteLink {
            side: Side::Host,
            name: "dum0".into(),
            kind: LinkKind::Veth,
        },
        UndoEntry::DeleteLink {
            side: Side::Guest,
            name: "eth1".into(),
            kind: LinkKind::Macvlan,
        },
        UndoEntry::DeleteLink {
            side: Side::Guest,
            name: "eth2".into(),
            kind: LinkKind::Macvlan,
        },
        UndoEntry::DeleteBridge { name: "br1".into() },
        UndoEntry::DeleteVlan {
            name: format!("{NIC}.10"),
        },
    ];
    let before = r.snaps();
    for kind in [Kind::Bridge, Kind::Macvlan, Kind::Phys, Kind::Dummy] {
        let (done, left) = r.replay(kind, &entries, None);
        assert!(
            done.is_empty() && left.is_empty(),
            "{kind}: {done:?} {left:?}"
        );
        let mut batch = Batch {
            group: BATCH_GROUP,
            ..Batch::default()
        };
        let (done, left) = r.replay(kind, &entries, Some(&mut batch));
        assert!(
            done.is_empty() && left.is_empty(),
            "{kind}: {done:?} {left:?}"
        );
        assert!(
            batch.host_links.is_empty(),
            "{kind}: {:?}",
            batch.host_links
        );
        assert_eq!(r.snaps(), before, "{kind}");
    }
    assert_eq!(r.requests(), 0, "not even a group change");
}

#[test]
fn teardown_leaves_a_same_named_link_of_someone_else() {
    let (r, p) = bridge_new();
    let veth = r.veth_name("eth1");
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    // The pair was removed and someone made their own of the same names.
    r.del(r.h(), &veth);
    r.world.seed_veth(r.h(), &veth, r.g(), "eth1");
    let bi = r.world.index_of(r.h(), "br1").unwrap();
    let vi = r.world.index_of(r.h(), &veth).unwrap();
    let mut m = netlink_packet_route::link::LinkMessage::default();
    m.header.index = vi;
    m.attributes
        .push(netlink_packet_route::link::LinkAttribute::Controller(bi));
    r.host
        .clone()
        .request(RouteNetlinkMessage::SetLink(m), 0)
        .unwrap();
    let before = r.snaps();
    let (_, left) = r.teardown(&rec, None);
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(
        r.snaps(),
        before,
        "their veth, and the bridge it is a port of, stay"
    );
    // A macvlan replaced by a user's macvlan-named dummy carrying our group: also kept.
    let (r, p) = macvlan(&[]);
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    r.del(r.g(), "eth1");
    r.world.seed_link(
        r.g(),
        Seed {
            name: "eth1".into(),
            kind: Some(InfoKind::Dummy),
            group: LINK_GROUP,
            ..Seed::default()
        },
    );
    let before = r.snaps();
    let (_, left) = r.teardown(&rec, None);
    assert!(left.is_empty());
    assert_eq!(r.snaps(), before);
}

#[test]
fn a_step_list_with_a_foreign_op_is_an_internal_error() {
    let (r, mut p) = dummy("10.0.21.101/24");
    let before = r.snaps();
    p.steps.insert(
        1,
        Step::new(
            "create-vlan",
            Op::CreateVlan {
                parent: NIC.into(),
                name: "x.1".into(),
                id: 1,
                mtu: None,
            },
        ),
    );
    let mut j = Vec::new();
    let e = r.apply(&p, &mut j, None).unwrap_err();
    assert!(
        e.to_string().contains("no driver applies step create-vlan"),
        "{e}"
    );
    assert_eq!(r.snaps(), before);
}

// ---- --direct-phys: more of the NIC's state ------------------------------------------------

#[test]
fn phys_down_nic_stays_down_after_rollback_and_teardown() {
    let setup = || {
        let mut r = Rig::new();
        let i = r.seed_nic(NIC, false);
        r.world.add_address(r.h(), i, ip("192.168.7.10"), 24);
        let p = r
            .plan(&["--direct-phys", NIC, "web1", "10.0.0.5/24", "--mtu", "1400"])
            .unwrap();
        (r, p)
    };
    let (r, p) = setup();
    assert!(matches!(
        op(&p, "move-nic"),
        Op::MoveToGuest { nic, mtu: Some(1400), .. } if !nic.up && nic.mtu == Some(1500)
    ));
    let before = r.snaps();
    let (a, j) = r.attach(&p);
    assert_eq!(link(&r.world.snapshot(r.g()), "eth1").mtu, 1400);
    let rec = r.record(&p, &a, j);
    assert!(r.check(&rec).is_empty(), "{:?}", r.check(&rec));
    let (_, left) = r.teardown(&rec, None);
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(
        r.snaps(),
        before,
        "name, MTU, address and down state restored"
    );
    rolls_back_everywhere(setup);
}

#[test]
fn phys_vlan_moves_the_child_and_removes_it_after() {
    let setup = || {
        let mut r = Rig::new();
        r.seed_nic(NIC, true);
        let p = r
            .plan(&["--direct-phys", NIC, "web1", "10.0.0.5/24@10.0.0.1", "@10"])
            .unwrap();
        (r, p)
    };
    let (r, p) = setup();
    let vname = format!("{NIC}.10");
    assert_eq!(
        names(&p),
        [
            "create-vlan",
            "move-nic",
            "guest-arp-notify",
            "guest-link-up",
            "add-address",
            "add-default-route",
            "announce"
        ]
    );
    assert!(matches!(
        op(&p, "move-nic"),
        Op::MoveToGuest { nic, .. } if nic.name == vname && nic.up && nic.mac.is_none()
    ));
    assert_eq!(p.host_ifname.as_deref(), Some(vname.as_str()));
    let before = r.snaps();
    let (a, j) = r.attach(&p);
    assert_eq!(
        j[0],
        UndoEntry::DeleteVlan {
            name: vname.clone()
        }
    );
    assert!(matches!(&j[1], UndoEntry::MoveBack { nic, .. } if nic.name == vname));
    let (h, g) = r.snaps();
    assert_eq!(link_names(&h), ["lo", NIC]);
    let e = link(&g, "eth1");
    assert_eq!(
        (e.kind.as_deref(), e.group, e.up),
        (Some("vlan"), LINK_GROUP, true)
    );
    let rec = r.record(&p, &a, j);
    assert!(r.check(&rec).is_empty(), "{:?}", r.check(&rec));
    let (done, left) = r.teardown(&rec, None);
    assert!(left.is_empty(), "{left:?}");
    assert!(
        done.iter()
            .any(|d| d.contains(&format!("delete VLAN interface {vname}"))),
        "{done:?}"
    );
    assert_eq!(r.snaps(), before);
    rolls_back_everywhere(setup);
}

/// A NIC that is a port of a bridge.
fn phys_bridge_port() -> (Rig, Plan) {
    let mut r = Rig::new();
    let br = r.world.seed_link(
        r.h(),
        Seed {
            name: "br0".into(),
            kind: Some(InfoKind::Bridge),
            up: true,
            ..Seed::default()
        },
    );
    r.world.seed_link(
        r.h(),
        Seed {
            name: NIC.into(),
            up: true,
            master: Some(br),
            ..Seed::default()
        },
    );
    let p = r
        .plan(&["--direct-phys", NIC, "web1", "10.0.0.5/24"])
        .unwrap();
    (r, p)
}

#[test]
#[ignore = "bug: a moved NIC's bridge (IFLA_MASTER) is not recorded in NicState nor restored by return_to_host"]
fn phys_rollback_puts_a_bridge_port_back_on_its_bridge() {
    let (r, p) = phys_bridge_port();
    let before = r.snaps();
    assert_eq!(link(&before.0, NIC).master.as_deref(), Some("br0"));
    let mut j = Vec::new();
    r.apply(&p, &mut j, Some("add-address")).unwrap_err();
    assert_eq!(r.snaps(), before);
}

#[test]
#[ignore = "bug: the host routes through a moved NIC (the kernel drops them on the move) are not recorded nor restored"]
fn phys_rollback_restores_the_host_routes_through_the_nic() {
    let mut r = Rig::new();
    let i = r.seed_nic(NIC, true);
    r.world.add_address(r.h(), i, ip("192.168.7.10"), 24);
    r.world
        .add_route(r.h(), msg::new_default_route(ip("192.168.7.1"), i));
    let p = r
        .plan(&["--direct-phys", NIC, "web1", "10.0.0.5/24"])
        .unwrap();
    let before = r.snaps();
    assert_eq!(
        before.0.routes,
        strings(&[&format!("default via 192.168.7.1 dev {NIC}")])
    );
    let mut j = Vec::new();
    r.apply(&p, &mut j, Some("add-address")).unwrap_err();
    assert_eq!(r.snaps(), before, "the host lost its default route");
}

#[test]
#[ignore = "bug: Identity::host_ifindex is documented as the moved NIC's host ifindex, but phys never sets Applied::host_index"]
fn phys_identity_names_the_nics_host_ifindex() {
    let (r, p) = phys(&[], "");
    let i = r.world.index_of(r.h(), NIC);
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    assert_eq!(rec.header.identity.unwrap().host_ifindex, i);
}

// ---- the VLAN child and other attachments --------------------------------------------------

/// Another live attachment on `NIC.10`, on disk in the (temporary) store.
fn other_record_on_vlan(r: &Rig) -> PathBuf {
    let mut h = Header {
        version: store::VERSION,
        state: RecordState::Complete,
        created: 1,
        kind: Kind::Macvlan,
        guest: GuestRef {
            spec: "web2".into(),
            engine: Engine::Netns,
            id: None,
            name: Some("web2".into()),
            pid: None,
        },
        netns: NetnsRef {
            path: "/proc/self/ns/net".into(),
            inode: r.guest.netns.inode,
        },
        host_netns: r.home.inode,
        ifname: "eth9".into(),
        host_interface: NIC.into(),
        host_ifname: None,
        writer: 0,
        identity: None,
        attachment: None,
    };
    h.attachment = Some(serde_json::json!({ "vlan": 10, "addresses": [] }));
    let path = store::dir().join(format!("{}-eth9.json", r.guest.netns.inode));
    let mut data = serde_json::to_vec(&h).unwrap();
    data.push(b'\n');
    store::write_atomic(&path, &data).unwrap();
    path
}

#[test]
fn vlan_child_stays_while_another_attachment_uses_it() {
    let (r, p) = macvlan(&["@10"]);
    let vname = format!("{NIC}.10");
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    let other = other_record_on_vlan(&r);
    let (done, left) = r.teardown(&rec, None);
    std::fs::remove_file(&other).ok();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(done.len(), 2, "{done:?}");
    assert!(
        r.world.index_of(r.h(), &vname).is_some(),
        "removed under a user"
    );

    // In a batch that tears the other one down too, it goes.
    let (r, p) = macvlan(&["@10"]);
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    let other = other_record_on_vlan(&r);
    let mut batch = Batch {
        group: BATCH_GROUP,
        ..Batch::default()
    };
    batch.records.insert(other.clone());
    let (done, left) = r.teardown(&rec, Some(&mut batch));
    std::fs::remove_file(&other).ok();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(done.len(), 3, "{done:?}");
    assert!(r.world.index_of(r.h(), &vname).is_none());
}

// ---- failing undo, dry runs ----------------------------------------------------------------

#[test]
fn a_failing_undo_is_reported_and_the_rest_still_runs() {
    let (r, p) = macvlan(&["@10"]);
    let vname = format!("{NIC}.10");
    r.world
        .fail_when(|m| matches!(m, RouteNetlinkMessage::DelLink(_)).then_some(libc::EBUSY));
    let mut j = Vec::new();
    let e = r
        .apply(&p, &mut j, Some("add-default-route"))
        .expect_err("injected");
    let left = e.left_behind().to_vec();
    assert!(
        matches!(&e, Error::Rollback { source, .. } if matches!(**source, Error::Injected("add-default-route"))),
        "{e}"
    );
    assert_eq!(e.step(), Some("add-default-route"));
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(
        left[0].starts_with("delete macvlan eth1 (Guest): cannot delete eth1"),
        "{left:?}"
    );
    assert!(
        left[1].starts_with(&format!(
            "delete VLAN interface {vname} if unused: cannot delete {vname}"
        )),
        "{left:?}"
    );
    let h = r.world.snapshot(r.h());
    assert!(
        !link(&h, NIC).up,
        "the NIC went back down after the failures"
    );
    assert!(link_names(&h).contains(&vname.as_str()));
    assert!(
        r.world.snapshot(r.g()).routes.is_empty(),
        "the new default route was taken out"
    );
}

#[test]
fn a_dry_run_batch_changes_nothing() {
    let (r, p) = bridge_new();
    let veth = r.veth_name("eth1");
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    let snaps = r.snaps();
    let n = r.requests();
    let mut batch = Batch {
        dry_run: true,
        group: BATCH_GROUP,
        ..Batch::default()
    };
    let (done, left) = r.teardown(&rec, Some(&mut batch));
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(r.requests(), n, "a dry run sent a change");
    assert_eq!(r.snaps(), snaps);
    assert!(
        done.contains(&format!("delete {veth} (host end)")),
        "{done:?}"
    );
    assert!(
        done.iter().any(|d| d.starts_with("delete bridge br1")),
        "{done:?}"
    );
    let (r, p) = phys(&[], "");
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    let snaps = r.snaps();
    let mut batch = Batch {
        dry_run: true,
        ..Batch::default()
    };
    let (done, _) = r.teardown(&rec, Some(&mut batch));
    assert_eq!(done, [format!("move eth1 back to the host as {NIC}")]);
    assert_eq!(r.snaps(), snaps);
}

#[test]
#[ignore = "nit: in a dry run the undo of an added route reports nothing (addressing/apply/mod.rs, UndoEntry::DeleteRoute returns Ok(None)), so gc --dry-run lists less than gc does"]
fn a_dry_run_lists_what_the_real_run_does() {
    let (r, p) = bridge_new();
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    let mut batch = Batch {
        dry_run: true,
        group: BATCH_GROUP,
        ..Batch::default()
    };
    let (dry, _) = r.teardown(&rec, Some(&mut batch));
    let (real, _) = r.teardown(&rec, None);
    assert_eq!(dry, real);
}

// ---- the bridge kind's refusals and races --------------------------------------------------

#[test]
fn bridge_plan_refusals() {
    let mut r = Rig::new();
    r.world.add_link(r.g(), "eth1", Some(InfoKind::Dummy));
    let e = r.plan(BR_NEW).unwrap_err();
    assert!(matches!(e, Error::InterfaceExists(_)), "{e}");
    assert!(
        e.to_string()
            .contains("already has an interface named eth1"),
        "{e}"
    );
    let e = r
        .plan(&["br1", "-i", "eth2", "-l", "br1", "web1", "10.0.0.5/24"])
        .unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e}");
    r.world.seed_link(
        r.h(),
        Seed {
            name: "vbusy".into(),
            kind: Some(InfoKind::Veth),
            up: true,
            ..Seed::default()
        },
    );
    let e = r
        .plan(&["br1", "-i", "eth2", "-l", "vbusy", "web1", "10.0.0.5/24"])
        .unwrap_err();
    assert!(matches!(e, Error::Busy(_)), "{e}");
    assert_eq!(r.requests(), 0);
}

#[test]
fn bridge_replaces_a_down_leftover_veth() {
    let mut r = Rig::new();
    let veth = r.veth_name("eth1");
    // A leftover of a container that died: its host end, down, peer gone elsewhere.
    r.world.seed_veth(r.h(), &veth, 99, "eth1");
    let p = r.plan(BR_NEW).unwrap();
    assert_eq!(
        names(&p)[..3],
        ["create-bridge", "replace-stale-host-link", "create-veth"]
    );
    assert_eq!(
        *op(&p, "replace-stale-host-link"),
        Op::DeleteStaleLink { name: veth.clone() }
    );
    let (_, j) = r.attach(&p);
    assert_eq!(j.len(), 3, "the replacement itself has no undo: {j:?}");
    let h = r.world.snapshot(r.h());
    assert_eq!(
        link(&h, &veth).group,
        LINK_GROUP,
        "the new veth is pipework's"
    );
    assert!(
        r.world.snapshot(99).links.iter().all(|l| l.name == "lo"),
        "the old pair is gone"
    );
}

#[test]
#[ignore = "safety question: plan_veth (driver_api/veth.rs) replaces ANY down host link of the chosen name, whatever its type or group, and without an undo entry; the LINK_GROUP rule says a name alone can be anyone's"]
fn a_down_host_link_of_someone_else_is_not_deleted() {
    let mut r = Rig::new();
    r.world.add_link(r.h(), "mylink", Some(InfoKind::Dummy));
    let before = r.snaps();
    // Either the plan refuses the name, or a failed attach leaves the user's link as it was.
    if let Ok(p) = r.plan(&["br1", "-l", "mylink", "web1", "10.0.0.5/24"]) {
        let mut j = Vec::new();
        r.apply(&p, &mut j, Some("create-veth")).unwrap_err();
        assert_eq!(r.snaps(), before, "the user's down dummy was deleted");
    }
}

#[test]
fn bridge_created_meanwhile_is_used() {
    let (r, p) = bridge_new();
    // Another attach makes br1 between this plan and its apply.
    r.world.seed_link(
        r.h(),
        Seed {
            name: "br1".into(),
            kind: Some(InfoKind::Bridge),
            up: true,
            group: LINK_GROUP,
            ..Seed::default()
        },
    );
    let other = r.world.seed_link(
        r.h(),
        Seed {
            name: "vother".into(),
            kind: Some(InfoKind::Veth),
            up: true,
            group: LINK_GROUP,
            master: r.world.index_of(r.h(), "br1"),
            ..Seed::default()
        },
    );
    let before = r.snaps();
    let (a, j) = r.attach(&p);
    assert!(a.host_interface_existed);
    let report = AttachReport::new(&r.guest, &p, Some(a.clone()));
    assert!(!report.host_interface_created);
    assert_eq!(
        link(&r.world.snapshot(r.h()), &r.veth_name("eth1"))
            .master
            .as_deref(),
        Some("br1")
    );
    let rec = r.record(&p, &a, j);
    let (_, left) = r.teardown(&rec, None);
    assert!(left.is_empty());
    assert_eq!(r.snaps(), before, "the other attach's bridge and port stay");
    let _ = other;
    // And a rollback leaves it too.
    let (r, p) = bridge_new();
    r.world.seed_link(
        r.h(),
        Seed {
            name: "br1".into(),
            kind: Some(InfoKind::Bridge),
            up: true,
            group: LINK_GROUP,
            ..Seed::default()
        },
    );
    let bi = r.world.index_of(r.h(), "br1");
    r.world.seed_link(
        r.h(),
        Seed {
            name: "vother".into(),
            kind: Some(InfoKind::Veth),
            up: true,
            group: LINK_GROUP,
            master: bi,
            ..Seed::default()
        },
    );
    let before = r.snaps();
    let mut j = Vec::new();
    r.apply(&p, &mut j, Some("announce")).unwrap_err();
    assert_eq!(r.snaps(), before);
}

#[test]
fn bridge_check_when_the_bridge_is_gone() {
    let (r, p) = bridge_new();
    let veth = r.veth_name("eth1");
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    r.del(r.h(), "br1");
    let d = r.check(&rec);
    assert_eq!(d, ["bridge br1 is gone"]);
    // Still its veth: alive.
    assert!(r.alive(&rec));
    assert_eq!(link(&r.world.snapshot(r.h()), &veth).master, None);
}

// ---- the record on disk --------------------------------------------------------------------

/// The journal as the engine writes it (a [`RecordFile`]), completed, read back from disk and
/// torn down: route bytes and every entry survive the JSON round trip.
#[test]
fn record_on_disk_round_trips_and_tears_down() {
    for argv in [
        &["br1", "web1", "10.0.0.5/24@10.0.0.1"][..],
        &[NIC, "web1", "10.0.0.5/24@10.0.0.1", "@10"][..],
        &["--direct-phys", NIC, "web1", "10.0.0.5/24@10.9.9.1"][..],
        &["dummy", "web1", "10.0.0.5/24@10.0.0.1"][..],
    ] {
        let (mut r, _) = with_default(&["dummy", "web1", "10.0.0.5/24"]);
        let p = r.plan(argv).unwrap();
        let before = r.snaps();
        let path = store::path_for(r.guest.netns.inode, &p.guest_ifname);
        let mut file = RecordFile::create(&path, header_of(&r.home, &r.guest, &p)).unwrap();
        let a = r.attach_with(&p, &mut file);
        let report =
            serde_json::to_value(AttachReport::new(&r.guest, &p, Some(a.clone()))).unwrap();
        let journal = Journal::entries(&file).to_vec();
        file.complete(identity_of(&p, &a), report, p.host_ifname.clone())
            .unwrap();
        drop(file);
        let rec = store::read_record(&path).unwrap();
        assert!(rec.complete());
        assert_eq!(rec.undo, journal, "{argv:?}");
        assert_eq!(rec.header.identity, Some(identity_of(&p, &a)));
        assert!(r.check(&rec).is_empty(), "{argv:?}: {:?}", r.check(&rec));
        assert!(r.alive(&rec), "{argv:?}");
        // As `detach` does it: the record is in the batch (so it is no user of its own VLAN
        // child), then the batch's group delete.
        let mut batch = Batch {
            group: BATCH_GROUP,
            ..Batch::default()
        };
        batch.records.insert(path.clone());
        let (_, left) = r.teardown(&rec, Some(&mut batch));
        std::fs::remove_file(&path).unwrap();
        assert!(left.is_empty(), "{argv:?}: {left:?}");
        r.host
            .clone()
            .request(msg::del_link_group(BATCH_GROUP), 0)
            .expect("group delete");
        let (mut h0, g0) = before;
        if let Some(l) = h0.links.iter_mut().find(|l| l.name == NIC) {
            l.up = true; // a NIC pipework brought up stays up
        }
        assert_eq!(r.snaps(), (h0, g0), "{argv:?}");
    }
}

// ---- identity of a moved NIC ---------------------------------------------------------------

#[test]
#[ignore = "bug: Phys::undo MoveBack (driver/phys.rs move_back) moves whatever link has the guest name, without checking it is the NIC (no ifindex/MAC/kind in MoveBack)"]
fn move_back_never_takes_a_link_that_is_not_the_nic() {
    let (r, p) = phys(&[], "");
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    // The NIC went elsewhere; the guest got an eth1 of its own (say, a veth from its engine).
    let gi = r.world.index_of(r.g(), "eth1").unwrap();
    r.gnl
        .clone()
        .request(msg::move_link(gi, 99, NIC, None), 0)
        .unwrap();
    r.world.seed_veth(r.h(), "vethengine", r.g(), "eth1");
    // Not alive: this is the record `gc` (and the next attach's recovery) tears down.
    assert!(!r.alive(&rec));
    let before = r.snaps();
    let (_, left) = r.teardown(&rec, None);
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(
        r.snaps(),
        before,
        "the guest's own eth1 was moved to the host as {NIC}"
    );
}

// ---- Open vSwitch, planned against a fake OVSDB --------------------------------------------

/// A fake ovsdb-server on `$OVS_RUNDIR/db.sock` answering the datapath `select`: bridge
/// "ovs0" exists (default datapath), "ovsnd" exists (netdev), any other name is absent.
/// Nothing else of OVS is asked at plan time.
fn fake_ovsdb() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        isolate();
        let sock = crate::driver::ovs::db_socket();
        let l = std::os::unix::net::UnixListener::bind(&sock).expect("bind the fake OVSDB");
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                std::thread::spawn(move || serve_ovsdb(s));
            }
        });
    });
}

fn serve_ovsdb(mut s: std::os::unix::net::UnixStream) {
    use std::io::Write;
    let Some(Ok(req)) = serde_json::Deserializer::from_reader(&mut s)
        .into_iter::<serde_json::Value>()
        .next()
    else {
        return;
    };
    assert_eq!(req["method"], "transact");
    assert_eq!(req["params"][1]["op"], "select", "plan only reads");
    let rows = match req.pointer("/params/1/where/0/2").and_then(|v| v.as_str()) {
        Some("ovs0") => serde_json::json!([{ "datapath_type": "" }]),
        Some("ovsnd") => serde_json::json!([{ "datapath_type": "netdev" }]),
        _ => serde_json::json!([]),
    };
    let answer =
        serde_json::json!({ "id": req["id"], "result": [{ "rows": rows }], "error": null });
    let _ = s.write_all(answer.to_string().as_bytes());
}

#[test]
fn ovs_plan_existing_absent_and_netdev_bridges() {
    fake_ovsdb();
    let mut r = Rig::new();
    let veth = r.veth_name("eth1");
    // The kernel datapath's bridge device.
    r.world.seed_link(
        r.h(),
        Seed {
            name: "ovs0".into(),
            kind: Some(InfoKind::Other("openvswitch".into())),
            mtu: Some(1450),
            up: true,
            ..Seed::default()
        },
    );
    let p = r
        .plan(&["ovs0", "web1", "10.0.0.5/24@10.0.0.1", "@42"])
        .unwrap();
    assert_eq!(p.kind, Kind::Ovs);
    assert!(!p.host_interface_created);
    assert_eq!(p.vlan, Some(42));
    assert_eq!(
        names(&p),
        [
            "create-veth",
            "ovs-add-port",
            "guest-arp-notify",
            "guest-link-up",
            "add-address",
            "add-default-route",
            "announce"
        ]
    );
    assert_eq!(
        *op(&p, "create-veth"),
        Op::CreateVeth {
            host: veth.clone(),
            master: None,
            guest: "eth1".into(),
            mtu: 1450,
            mac: None
        }
    );
    let inode = r.guest.netns.inode.to_string();
    assert_eq!(
        *op(&p, "ovs-add-port"),
        Op::OvsAddPort {
            bridge: "ovs0".into(),
            port: veth.clone(),
            tag: Some(42),
            external_ids: vec![
                ("pipework.interface".into(), veth.clone()),
                ("pipework.bridge".into(), "ovs0".into()),
                ("pipework.netns".into(), inode),
                ("pipework.vlan".into(), "42".into()),
            ]
        }
    );

    // A name OVS does not know: pipework creates the bridge, with the datapath asked for.
    let p = r
        .plan(&["ovsnew", "--ovs-datapath", "netdev", "web1", "10.0.0.5/24"])
        .unwrap();
    assert!(p.host_interface_created);
    assert_eq!(
        names(&p)[..4],
        [
            "ovs-add-bridge",
            "create-veth",
            "ovs-add-port",
            "guest-tx-checksum-off"
        ]
    );
    assert_eq!(
        *op(&p, "ovs-add-bridge"),
        Op::OvsAddBridge {
            name: "ovsnew".into(),
            datapath: Some("netdev".into())
        }
    );
    assert!(matches!(
        op(&p, "create-veth"),
        Op::CreateVeth { mtu: 1500, .. }
    ));

    // The userspace datapath's bridge is a tap: asked about, found to be OVS (netdev), so the
    // guest end's tx checksum offload is turned off.
    r.world.add_link(r.h(), "ovsnd", Some(InfoKind::Tun));
    let p = r.plan(&["ovsnd", "web1", "10.0.0.5/24"]).unwrap();
    assert_eq!(p.kind, Kind::Ovs);
    assert_eq!(
        *op(&p, "guest-tx-checksum-off"),
        Op::TxChecksumOff {
            ifname: "eth1".into()
        }
    );
    // A tap OVS does not know is any other link: a macvlan parent.
    r.world.add_link(r.h(), "tap7", Some(InfoKind::Tun));
    let p = r.plan(&["tap7", "web1", "10.0.0.5/24"]).unwrap();
    assert_eq!(p.kind, Kind::Macvlan);
    assert_eq!(r.requests(), 0, "planning changed something");
}

#[test]
fn ovs_teardown_removes_the_port_before_the_veth_and_the_bridge_last() {
    let r = Rig::new();
    let mut rec_plan = Plan {
        kind: Kind::Ovs,
        host_interface: "ovsnew".into(),
        host_interface_created: true,
        host_ifname: Some("vx".into()),
        guest_ifname: "eth1".into(),
        mac: None,
        vlan: None,
        dropped_addresses: Vec::new(),
        announce: true,
        addresses: Vec::new(),
        gateway: None,
        steps: Vec::new(),
        ready: None,
    };
    let undo = vec![
        UndoEntry::OvsDelBridge {
            name: "ovsnew".into(),
        },
        UndoEntry::DeleteLink {
            side: Side::Host,
            name: "vx".into(),
            kind: LinkKind::Veth,
        },
        UndoEntry::OvsDelPort {
            bridge: "ovsnew".into(),
            port: "vx".into(),
        },
    ];
    let rec = r.record(&rec_plan, &Applied::default(), undo.clone());
    assert_eq!(
        driver(Kind::Ovs).teardown(&rec),
        [undo[2].clone(), undo[1].clone(), undo[0].clone()]
    );
    // On a bridge it did not create, the bridge's removal (if unused) still comes last.
    rec_plan.host_interface = "ovs0".into();
    let rec = r.record(&rec_plan, &Applied::default(), undo[1..].to_vec());
    assert_eq!(
        driver(Kind::Ovs).teardown(&rec),
        [
            undo[2].clone(),
            undo[1].clone(),
            UndoEntry::OvsDelBridge {
                name: "ovs0".into()
            }
        ]
    );
}

#[test]
#[ignore = "latent: undo_vlan (driver_api/nic.rs vlan_in_use) counts the record being torn down as a user of its VLAN child unless a Batch lists it; a teardown with batch None (the Driver API allows it) leaks NIC.VLAN"]
fn vlan_child_goes_with_the_last_attachment_without_a_batch() {
    let (r, p) = macvlan(&["@10"]);
    let path = store::path_for(r.guest.netns.inode, &p.guest_ifname);
    let mut file = RecordFile::create(&path, header_of(&r.home, &r.guest, &p)).unwrap();
    let a = r.attach_with(&p, &mut file);
    let report = serde_json::to_value(AttachReport::new(&r.guest, &p, Some(a.clone()))).unwrap();
    file.complete(identity_of(&p, &a), report, p.host_ifname.clone())
        .unwrap();
    drop(file);
    let rec = store::read_record(&path).unwrap();
    let (_, left) = r.teardown(&rec, None);
    std::fs::remove_file(&path).unwrap();
    assert!(left.is_empty(), "{left:?}");
    assert!(
        r.world.index_of(r.h(), &format!("{NIC}.10")).is_none(),
        "the VLAN child outlived its last attachment"
    );
}

#[test]
#[ignore = "design limit: DeleteLink{Host} checks only name, group and type; a stale record whose guest is gone deletes another live attachment's veth of the same name (PID reuse) instead of checking Identity::host_ifindex"]
fn a_stale_record_never_deletes_the_veth_of_a_newer_attachment() {
    let (r, p) = bridge_new();
    let veth = r.veth_name("eth1");
    let (a, j) = r.attach(&p);
    let stale = r.record(&p, &a, j);
    // The guest died (its pair with it); a new guest of the same PID got the same names.
    r.del(r.h(), &veth);
    let (a2, _) = r.attach(&p);
    assert_ne!(a2.host_index, a.host_index);
    let before = r.world.snapshot(r.h());
    // gc of the stale record: its namespace is gone (no guest side).
    let entries = driver(Kind::Bridge).teardown(&stale);
    let mut host = r.host.clone();
    let mut sys = Sys {
        host: &mut host,
        guest: None,
        guest_ns: None,
        home: &r.home,
        log: Log::default(),
        batch: None,
    };
    let left = apply::undo::replay(Kind::Bridge, &entries, &mut sys, &mut Vec::new());
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(
        r.world.snapshot(r.h()),
        before,
        "the newer attachment's veth was deleted"
    );
}

// ---- IPv6 (without the ndisc_notify step, which writes /proc/sys) --------------------------

fn without_sysctl(mut p: Plan) -> Plan {
    assert!(matches!(
        op(&p, "guest-ndisc-notify"),
        Op::SetNdiscNotify { ifname } if ifname == &p.guest_ifname
    ));
    p.steps.retain(|s| s.name != "guest-ndisc-notify");
    p
}

fn v6(argv: &[&str], existing_default: bool) -> (Rig, Plan) {
    let mut r = Rig::new();
    if existing_default {
        let (_, gi) = r.world.seed_veth(r.h(), "vethdocker0", r.g(), "eth0");
        r.world
            .netns(r.g())
            .request(msg::set_link_up(gi), 0)
            .unwrap();
        r.world
            .add_route(r.g(), msg::new_default_route(ip("fe80::1"), gi));
        r.world.clear_record();
    }
    let p = without_sysctl(r.plan(argv).unwrap());
    (r, p)
}

#[test]
fn ipv6_static_plan_apply_rollback_teardown() {
    let (mut r, _) = v6(&["dummy", "web1", "fd00::5/64@fd00::1"], false);
    let p = r.plan(&["dummy", "web1", "fd00::5/64@fd01::1"]).unwrap();
    assert_eq!(
        names(&p),
        [
            "create-dummy",
            "guest-ndisc-notify",
            "guest-link-up",
            "add-address",
            "add-gateway-route",
            "add-default-route",
            "announce"
        ]
    );
    let p = r.plan(&["dummy", "web1", "fd00::5/64@fe80::1"]).unwrap();
    assert!(
        !names(&p).contains(&"add-gateway-route"),
        "a link-local gateway is on-link"
    );

    for (argv, routes) in [
        (
            &["dummy", "web1", "fd00::5/64@fd00::1"][..],
            &["default via fd00::1 dev eth1"][..],
        ),
        (
            &["dummy", "web1", "fd00::5/64@fd01::1"][..],
            &[
                "default via fd01::1 dev eth1",
                "fd01::1/128 dev eth1 scope link",
            ][..],
        ),
        (
            &["br1", "web1", "fd00::5/64@fd00::1"][..],
            &["default via fd00::1 dev eth1"][..],
        ),
    ] {
        for existing in [false, true] {
            let (r, p) = v6(argv, existing);
            assert_eq!(
                names(&p).contains(&"delete-default-route"),
                existing,
                "{argv:?}"
            );
            let before = r.snaps();
            let (a, j) = r.attach(&p);
            let g = r.world.snapshot(r.g());
            assert_eq!(g.routes, strings(routes), "{argv:?} {existing}");
            assert!(
                g.addresses.contains(&"eth1 fd00::5/64".to_string()),
                "{argv:?}"
            );
            let rec = r.record(&p, &a, j);
            assert!(r.check(&rec).is_empty(), "{argv:?}: {:?}", r.check(&rec));
            let (_, left) = r.teardown(&rec, None);
            assert!(left.is_empty(), "{argv:?}: {left:?}");
            assert_eq!(r.snaps(), before, "{argv:?} {existing}");
            rolls_back_everywhere(|| v6(argv, existing));
        }
    }
}

// ---- check: MTU, and a guest whose namespace is gone ---------------------------------------

#[test]
fn check_reports_the_mtu_and_a_missing_namespace() {
    let (r, p) = bridge_new();
    let veth = r.veth_name("eth1");
    let (a, j) = r.attach(&p);
    let rec = r.record(&p, &a, j);
    let gi = r.world.index_of(r.g(), "eth1").unwrap();
    let mut m = netlink_packet_route::link::LinkMessage::default();
    m.header.index = gi;
    m.attributes
        .push(netlink_packet_route::link::LinkAttribute::Mtu(1400));
    r.gnl
        .clone()
        .request(RouteNetlinkMessage::SetLink(m), 0)
        .unwrap();
    assert_eq!(r.check(&rec), ["eth1 has MTU 1400 (recorded 1500)"]);
    let mut host = r.host.clone();
    let mut sys = Sys {
        host: &mut host,
        guest: None,
        guest_ns: None,
        home: &r.home,
        log: Log::default(),
        batch: None,
    };
    assert_eq!(
        driver(Kind::Bridge).check(&rec, &mut sys).unwrap(),
        ["the guest's namespace is gone"]
    );
    assert!(
        driver(Kind::Bridge).alive(&rec, &mut sys),
        "the host end is still ours"
    );
    assert!(!driver(Kind::Macvlan).alive(&rec, &mut sys));
    let _ = veth;
}

// ---- which driver takes the host interface -------------------------------------------------

#[test]
fn the_kind_is_chosen_as_the_original_chooses_it() {
    let mut r = Rig::new();
    r.seed_nic(NIC, true);
    r.world.seed_link(
        r.h(),
        Seed {
            name: "br0".into(),
            kind: Some(InfoKind::Bridge),
            up: true,
            ..Seed::default()
        },
    );
    // By MAC.
    let p = r
        .plan(&["mac:52:54:00:12:34:56", "web1", "10.0.0.5/24"])
        .unwrap();
    assert_eq!((p.kind, p.host_interface.as_str()), (Kind::Macvlan, NIC));
    let e = r
        .plan(&["mac:52:54:00:00:00:01", "web1", "10.0.0.5/24"])
        .unwrap_err();
    assert!(
        e.to_string().contains(
            "Mac address 52:54:00:00:00:01 specified for interface but no host interface matched"
        ),
        "{e}"
    );
    // A missing name: only br*, ovs* and dummy* are created.
    let e = r.plan(&["nosuch0", "web1", "10.0.0.5/24"]).unwrap_err();
    assert!(
        e.to_string()
            .contains("I do not know how to setup interface nosuch0"),
        "{e}"
    );
    assert_eq!(
        r.plan(&["br9", "web1", "10.0.0.5/24"]).unwrap().kind,
        Kind::Bridge
    );
    assert_eq!(
        r.plan(&["dummy9", "web1", "10.0.0.5/24"]).unwrap().kind,
        Kind::Dummy
    );
    // An existing bridge is a bridge whatever its name.
    r.world.seed_link(
        r.h(),
        Seed {
            name: "lan".into(),
            kind: Some(InfoKind::Bridge),
            up: true,
            ..Seed::default()
        },
    );
    assert_eq!(
        r.plan(&["lan", "web1", "10.0.0.5/24"]).unwrap().kind,
        Kind::Bridge
    );
    // --direct-phys takes a NIC, and refuses a bridge or a missing name.
    assert_eq!(
        r.plan(&["--direct-phys", NIC, "web1", "10.0.0.5/24"])
            .unwrap()
            .kind,
        Kind::Phys
    );
    let e = r
        .plan(&["--direct-phys", "br0", "web1", "10.0.0.5/24"])
        .unwrap_err();
    assert!(e.to_string().contains("br0 is a bridge"), "{e}");
    let e = r
        .plan(&["--direct-phys", "nosuch0", "web1", "10.0.0.5/24"])
        .unwrap_err();
    assert!(e.to_string().contains("no interface nosuch0"), "{e}");
    // The macvlan mode, -i and a MAC.
    let p = r
        .plan(&[
            NIC,
            "-i",
            "net0",
            "web1",
            "10.0.0.5/24",
            GUEST_MAC,
            "--macvlan-mode",
            "private",
        ])
        .unwrap();
    assert_eq!(
        *op(&p, "create-macvlan"),
        Op::CreateInGuest {
            link: GuestLink::Macvlan {
                parent: NIC.into(),
                mode: crate::request::MacvlanMode::Private
            },
            name: "net0".into(),
            mtu: Some(1500),
            mac: Some(mac(GUEST_MAC))
        }
    );
    // No addressing (0/0): the link only comes up.
    let p = r.plan(&["dummy", "web1", "0/0"]).unwrap();
    assert_eq!(names(&p), ["create-dummy", "guest-link-up"]);
    let p = r.plan(&["br0", "web1", "0/0"]).unwrap();
    assert_eq!(
        names(&p),
        ["create-veth", "guest-link-up", "wait-port-ready"]
    );
    assert_eq!(r.requests(), 0, "planning changed something");
}

// ---- concurrent attaches -------------------------------------------------------------------

#[test]
#[ignore = "bug: CreateVlan (driver_api/nic.rs apply_parent) journals DeleteVlan, then on EEXIST fails; the rollback deletes the VLAN child a concurrent attach just made (its record is incomplete, so vlan_in_use does not see it), and its macvlan with it"]
fn a_failed_attach_never_removes_a_vlan_child_it_did_not_create() {
    let mut r = Rig::new();
    let nic = r.seed_nic(NIC, true);
    let vname = format!("{NIC}.10");
    let p = r.plan(&[NIC, "web1", "10.0.0.5/24", "@10"]).unwrap();
    assert_eq!(names(&p)[0], "create-vlan");
    // Meanwhile another attach (still running: its record is incomplete) made the VLAN child
    // and its guest's macvlan on it.
    r.host
        .request(
            msg::new_vlan(&vname, nic, 10, Some(1500)),
            netlink_packet_core::NLM_F_CREATE,
        )
        .unwrap();
    let vi = r.world.index_of(r.h(), &vname).unwrap();
    r.host
        .request(
            msg::new_link_in_guest(
                &msg::GuestLinkKind::Macvlan {
                    parent: vi,
                    mode: nic::mode(crate::request::MacvlanMode::Bridge),
                },
                "eth1",
                None,
                None,
                77,
            ),
            netlink_packet_core::NLM_F_CREATE,
        )
        .unwrap();
    let before = (r.snaps(), r.world.snapshot(77));
    let mut j = Vec::new();
    let e = r.apply(&p, &mut j, None).unwrap_err();
    assert_eq!(e.errno(), Some(libc::EEXIST), "{e}");
    assert_eq!(
        (r.snaps(), r.world.snapshot(77)),
        before,
        "the other attach's VLAN child (and its macvlan) were deleted"
    );
}
