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
use crate::plan::{GuestLink, Kind, LinkKind, NicState, Op, Side, Step, UndoEntry, LINK_GROUP};
use crate::request::Command;
use crate::store::{Journal, Record};

mod addressing;
mod bridge;
mod choice;
mod dummy;
mod ipoib;
mod macvlan;
mod ovs;
mod phys;
mod undo;

// ---- the rig -------------------------------------------------------------------------------

/// A NIC name no real machine has (phys reads /sys/class/net/NAME/phy80211).
const NIC: &str = "pwtnic0";

const GUEST_MAC: &str = "02:42:ac:11:00:05";

const BATCH_GROUP: u32 = 0x7077_00ff;

/// This process's scratch directory (store and OVS run directory), made only when written.
fn scratch() -> PathBuf {
    std::env::temp_dir().join(format!("pipework-engine-tests-{}", std::process::id()))
}

/// Removes the scratch directory, at the end of a test that wrote there.
fn clean_scratch() {
    let _ = std::fs::remove_dir_all(scratch());
}

fn isolate() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let base = scratch();
        let run = base.join("run");
        let ovs = base.join("ovs");
        // Created only by the tests that write there (records, the fake OVSDB's socket).
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
        self.with_record(None, batch, f)
    }

    /// [`Self::with_sys`] for the teardown of `rec` (as the engine's detach and gc run it).
    fn with_record<T>(
        &self,
        rec: Option<&Record>,
        batch: Option<&mut Batch>,
        f: impl FnOnce(&mut Sys<'_>) -> T,
    ) -> T {
        let mut host = self.host.clone();
        let mut gnl = self.gnl.clone();
        let mut sys = Sys {
            host: &mut host,
            guest: Some(&mut gnl),
            guest_ns: Some(&self.guest.netns),
            home: &self.home,
            log: Log::default(),
            batch,
            record: rec,
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
        self.with_record(Some(rec), batch, |sys| {
            let mut done = Vec::new();
            let left = apply::undo::replay(rec.header.kind, &entries, sys, &mut done);
            (done, left)
        })
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
            Command::Attach(r) => *r,
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

    fn cancel_last(&mut self) -> Result<(), Error> {
        self.entries.pop();
        self.seen.pop();
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

// ---- fixtures: one attach of each kind, planned ----------------------------------------------

const BR_NEW: &[&str] = &["br1", "web1", "10.0.0.5/24@10.0.0.1", GUEST_MAC];

fn bridge_new() -> (Rig, Plan) {
    let mut r = Rig::new();
    let p = r.plan(BR_NEW).expect("plans");
    (r, p)
}

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

fn macvlan(extra: &[&str]) -> (Rig, Plan) {
    let mut r = Rig::new();
    r.seed_nic(NIC, false);
    let mut argv = vec![NIC, "web1", "10.0.0.5/24@10.0.0.1"];
    argv.extend(extra);
    let p = r.plan(&argv).unwrap();
    (r, p)
}

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

fn dummy(addr: &str) -> (Rig, Plan) {
    let mut r = Rig::new();
    let p = r.plan(&["dummy", "web1", addr]).unwrap();
    (r, p)
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

/// The fake has no /proc/sys: the IPv6 devconf steps (checked here) are left out.
fn without_sysctl(mut p: Plan) -> Plan {
    assert!(matches!(
        op(&p, "guest-ndisc-notify"),
        Op::SetNdiscNotify { ifname } if ifname == &p.guest_ifname
    ));
    assert!(matches!(
        op(&p, "guest-ipv6-on"),
        Op::EnableIpv6 { ifname } if ifname == &p.guest_ifname
    ));
    let at = |n: &str| p.steps.iter().position(|s| s.name == n);
    assert!(
        at("guest-ipv6-on") < at("guest-ndisc-notify"),
        "IPv6 on before any IPv6 setting"
    );
    p.steps
        .retain(|s| s.name != "guest-ndisc-notify" && s.name != "guest-ipv6-on");
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
