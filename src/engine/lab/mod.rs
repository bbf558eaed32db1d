//! Labs: a whole topology converged in one session. `plan` reads the kernel once per
//! namespace and diffs it against the request and the lab's state (`diff`); `apply` makes the
//! changes in order, each journalled before it is made (`state::LabJournal`), attachments
//! through the engine's own attach (each with its record), and on any failure replays the
//! journal backwards, in-place changes included; `destroy` removes what the state says the lab
//! made. A journal a killed apply left is replayed by the next apply, destroy or gc.

pub mod diff;
pub mod state;
pub mod stretch;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::RouteNetlinkMessage;
use serde::Serialize;

use self::diff::{Change, GuestSeen, LinkSeen, Observed, PlanLine, Qdisc, RouteSeen, DEFAULT_MTU};
use self::state::{
    LabJournal, LabState, LabUndo, MadeAttach, MadeBridge, MadeLink, MadeRoute, NsRef, Removed,
};
use super::Session;
use crate::error::Error;
use crate::guest::Guest;
use crate::lab::{LabLink, LabRequest, LabRoute};
use crate::links;
use crate::netlink::{msg, Netlink, NlError};
use crate::ns::{named, NetNs};
use crate::plan::LINK_GROUP;
use crate::report::ActionsReport;
use crate::store;

/// The link group of the bridges a lab creates: not pipework's own mark, so the teardown of
/// an attachment (which deletes an unused bridge pipework made) leaves them to the lab.
pub const LAB_GROUP: u32 = 0x7077_0002;

/// What `plan` shows.
#[derive(Debug, Clone, Serialize)]
pub struct LabPlan {
    pub lab: String,
    pub changes: Vec<PlanLine>,
    /// A killed apply's journal is waiting: the next apply rolls it back first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_rollback: Option<usize>,
}

/// What `apply` did.
#[derive(Debug, Clone, Serialize)]
pub struct LabReport {
    pub lab: String,
    pub changes: Vec<PlanLine>,
    /// Netlink change requests sent (0 for a lab already as the file says).
    pub netlink_writes: u64,
    pub elapsed_ms: f64,
    /// What the rollback of a killed earlier apply undid first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recovered: Vec<String>,
    /// What the user should know (an MTU that cannot fit the underlay).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// One object of `ls --lab`.
#[derive(Debug, Clone, Serialize)]
pub struct LabObject {
    /// `alive`, `stale` (gone or not as made) or `incomplete` (a killed apply's).
    pub state: &'static str,
    pub kind: &'static str,
    pub name: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LabListing {
    pub lab: String,
    pub objects: Vec<LabObject>,
}

/// An apply in progress: the guests resolved, what the plan saw, what was made so far.
struct Run<'a> {
    want: &'a LabRequest,
    old: &'a LabState,
    guests: BTreeMap<String, Guest>,
    seen: Observed,
    made_attach: HashMap<usize, MadeAttach>,
    made_bridges: Vec<MadeBridge>,
    made_netns: Vec<String>,
    gone_bridges: BTreeSet<String>,
    gone_netns: BTreeSet<String>,
    fresh_bridges: BTreeSet<String>,
}

fn nsref(ns: &NetNs) -> NsRef {
    NsRef {
        path: ns.path.display().to_string(),
        inode: ns.inode,
    }
}

/// The namespace a state names, if it is still that one.
fn reopen(r: &NsRef) -> Option<NetNs> {
    NetNs::open(std::path::Path::new(&r.path))
        .ok()
        .filter(|n| n.inode == r.inode)
}

/// A lab of a thousand guests holds a socket and a namespace fd for each: the soft limit on
/// open files goes up to the hard one.
fn raise_nofile() {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < l.rlim_max {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

fn seen_link(l: &netlink_packet_route::link::LinkMessage) -> LinkSeen {
    LinkSeen {
        index: l.header.index,
        kind: msg::link_kind_name(l),
        mac: msg::link_mac(l),
        mtu: msg::link_mtu(l),
        up: msg::link_is_up(l),
        group: msg::link_group(l),
        master: msg::link_master(l),
        addresses: Vec::new(),
        qdisc: None,
        vxlan: crate::netlink::vxlan::vxlan_of(l),
    }
}

fn addresses_by_index(all: Vec<RouteNetlinkMessage>) -> HashMap<u32, Vec<IpNet>> {
    use netlink_packet_route::address::{AddressAttribute, AddressScope};
    let mut out: HashMap<u32, Vec<IpNet>> = HashMap::new();
    for m in all {
        if let RouteNetlinkMessage::NewAddress(a) = m {
            if a.header.scope == AddressScope::Link {
                continue;
            }
            let ip = a.attributes.iter().find_map(|x| match x {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
            let ip = ip.or_else(|| {
                a.attributes.iter().find_map(|x| match x {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                })
            });
            if let Some(n) = ip.and_then(|ip| IpNet::new(ip, a.header.prefix_len).ok()) {
                out.entry(a.header.index).or_default().push(n);
            }
        }
    }
    out
}

fn seen_routes(all: Vec<RouteNetlinkMessage>) -> Vec<RouteSeen> {
    all.into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewRoute(r)
                if msg::route_table(&r)
                    == netlink_packet_route::route::RouteHeader::RT_TABLE_MAIN as u32 =>
            {
                let (ip, len) = msg::route_dst(&r).unwrap_or((
                    if r.header.address_family == AddressFamily::Inet6 {
                        IpAddr::from([0u16; 8])
                    } else {
                        IpAddr::from([0u8; 4])
                    },
                    0,
                ));
                Some(RouteSeen {
                    dst: IpNet::new(ip, len).ok()?.trunc(),
                    via: msg::route_gateway(&r),
                    oif: msg::route_oif(&r),
                    metric: msg::route_metric(&r),
                })
            }
            _ => None,
        })
        .collect()
}

fn nl_err(what: String) -> impl FnOnce(NlError) -> Error {
    move |e| Error::netlink(what, e)
}

/// tc by argv inside `ns`: the root qdisc of `ifname` set to `q` (none: the kernel's default).
fn tc_set(ns: &NetNs, ifname: &str, q: &Qdisc) -> Result<(), Error> {
    let args = tc_args(ifname, q)?;
    crate::netlink::note_write();
    let mut cmd = crate::exec::command_in(ns, "tc");
    cmd.args(&args);
    let ran = crate::process::run_bounded(&mut cmd, None, 64 << 10, Duration::from_secs(10))
        .map_err(|e| Error::io("cannot run tc (is iproute2 installed?)", e))?;
    let err = match ran {
        crate::process::Ran::Exited { status, .. } if status.success() => return Ok(()),
        crate::process::Ran::Exited { stderr, .. } => {
            String::from_utf8_lossy(&stderr).trim().to_string()
        }
        crate::process::Ran::TimedOut => {
            return Err(Error::Timeout(format!(
                "tc on {ifname} did not finish within 10 s"
            )))
        }
    };
    if q.kind().is_none() {
        return Ok(()); // no qdisc of ours to delete: the default is there already
    }
    Err(tc_error(ifname, q, &err))
}

fn tc_error(ifname: &str, q: &Qdisc, err: &str) -> Error {
    let kind = q.kind().unwrap_or("qdisc");
    let module = if kind == "netem" {
        "sch_netem"
    } else {
        "sch_tbf"
    };
    let lacks = err.contains("qdisc kind is unknown") || err.contains("Unknown qdisc");
    let what = if lacks {
        format!(
            "cannot put {kind} on {ifname}: this kernel has no {kind} support (module {module} is \
             not loaded or not built); load it with `modprobe {module}`"
        )
    } else {
        format!(
            "cannot put {kind} on {ifname}: tc {}",
            tc_args(ifname, q).unwrap_or_default().join(" ")
        )
    };
    Error::netlink(
        what,
        NlError {
            errno: if lacks {
                libc::EOPNOTSUPP
            } else {
                libc::EINVAL
            },
            ext_ack: Some(err.to_string()),
        },
    )
}

/// A tc rate (`10mbit`, `1gbit`, `500kbit`, `100mbps`) in bits per second.
pub fn rate_bits(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().ok()?;
    let mult: f64 = match unit {
        "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        "tbit" => 1e12,
        "bps" => 8.0,
        "kbps" => 8e3,
        "mbps" => 8e6,
        "gbps" => 8e9,
        _ => return None,
    };
    let v = n * mult;
    (v >= 8.0 && v.is_finite() && v < 1e15).then_some(v as u64)
}

pub fn tc_args(ifname: &str, q: &Qdisc) -> Result<Vec<String>, Error> {
    let mut a: Vec<String> = vec!["qdisc".into()];
    match (&q.rate, &q.netem) {
        (None, None) => {
            a.extend(["del", "dev", ifname, "root"].map(String::from));
        }
        (rate, Some(netem)) => {
            a.extend(["replace", "dev", ifname, "root", "netem"].map(String::from));
            a.extend(netem.split_whitespace().map(String::from));
            if let Some(r) = rate {
                a.extend(["rate".to_string(), r.clone()]);
            }
        }
        (Some(r), None) => {
            let bits = rate_bits(r).ok_or_else(|| {
                Error::Invalid(format!("rate '{r}' is not a tc rate (e.g. 10mbit, 1gbit)"))
            })?;
            // 10 ms worth of data, at least a full frame: enough burst for the rate.
            let burst = (bits / 8 / 100).max(1600);
            a.extend(["replace", "dev", ifname, "root", "tbf", "rate"].map(String::from));
            a.extend([
                r.clone(),
                "burst".into(),
                burst.to_string(),
                "latency".into(),
                "50ms".into(),
            ]);
        }
    }
    Ok(a)
}

impl Session {
    /// The socket into the namespace a state names, if it is still that one.
    fn nl_of(&mut self, r: &NsRef) -> Option<(NetNs, &mut Netlink)> {
        if r.inode == self.home.inode {
            let ns = NetNs::current().ok()?;
            return Some((ns, &mut self.host));
        }
        let ns = reopen(r)?;
        let inode = ns.inode;
        self.guest_socket(&ns).ok()?;
        let nl = self.guests.get_mut(&inode)?;
        Some((ns, nl))
    }

    /// Sockets into many namespaces, opened on a few threads side by side and kept in the
    /// session's cache (best effort: one that fails is opened again when needed).
    fn open_sockets(&mut self, namespaces: &[NetNs]) {
        self.max_sockets = self
            .max_sockets
            .max(self.guests.len() + namespaces.len() + 16);
        let todo: Vec<&NetNs> = namespaces
            .iter()
            .filter(|n| !self.guests.contains_key(&n.inode) && n.inode != self.home.inode)
            .collect();
        let per = todo.len().div_ceil(OBSERVERS).max(1);
        let opened: Vec<(u64, Netlink)> = std::thread::scope(|sc| {
            let handles: Vec<_> = todo
                .chunks(per)
                .map(|chunk| {
                    sc.spawn(move || {
                        chunk
                            .iter()
                            .filter_map(|n| {
                                nix::sched::setns(n.fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                                    .ok()?;
                                Some((n.inode, Netlink::open().ok()?))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        self.guests.extend(opened);
    }

    /// Every guest resolved (a lab-made namespace not there yet: none) and the kernel read.
    fn lab_observe(
        &mut self,
        want: &LabRequest,
        old: &LabState,
    ) -> Result<(BTreeMap<String, Guest>, Observed), Error> {
        let mut guests = BTreeMap::new();
        let mut seen = Observed::default();
        for l in lean_links(&mut self.host)? {
            if let Some(n) = msg::link_name(&l) {
                seen.host.insert(n.to_string(), seen_link(&l));
            }
        }
        for (name, b) in &want.bridges {
            if b.ovs {
                if let crate::driver::ovs::OvsBridge::Exists(_) =
                    crate::driver::ovs::bridge_datapath(name)?
                {
                    seen.ovs.insert(name.clone());
                }
            }
        }
        let mut needs_routes: BTreeSet<&str> = BTreeSet::new();
        let mut needs_qdisc: BTreeSet<&str> = BTreeSet::new();
        for a in want
            .attach
            .iter()
            .chain(old.attach.iter().map(|m| &m.attach))
        {
            if matches!(
                a.request.addressing,
                crate::request::Addressing::Static {
                    gateway: Some(_),
                    ..
                }
            ) {
                needs_routes.insert(&a.guest);
            }
        }
        for r in want
            .routes
            .iter()
            .chain(old.routes.iter().map(|m| &m.route))
        {
            needs_routes.insert(&r.guest);
        }
        for l in want.links.iter().chain(old.links.iter().map(|m| &m.link)) {
            if l.rate.is_some() || l.netem.is_some() {
                for e in &l.ends {
                    needs_qdisc.insert(&e.guest);
                }
            }
        }
        if !want.stretch.is_empty() || !old.vxlans.is_empty() {
            let fdb = self
                .host
                .dump(crate::netlink::vxlan::dump_fdb())
                .map_err(nl_err("cannot list the bridge forwarding entries".into()))?;
            for name in want
                .stretch
                .iter()
                .map(|s| &s.name)
                .chain(old.vxlans.iter().map(|s| &s.name))
            {
                if let Some(l) = seen.host.get(name) {
                    let list = crate::netlink::vxlan::flood_entries(&fdb, l.index);
                    seen.fdb.insert(name.clone(), list);
                }
            }
        }
        self.max_sockets = self.max_sockets.max(want.guests.len() + 16);
        for (key, g) in &want.guests {
            if let Some(n) = &g.netns {
                if std::fs::symlink_metadata(named::path_of(n)).is_err() {
                    seen.guests.insert(key.clone(), None);
                    continue;
                }
            }
            let guest = self.resolve(&g.spec).map_err(|e| {
                Error::Invalid(format!(
                    "guest {key} ({}) is not running or cannot be used: {e}",
                    g.spec
                ))
            })?;
            guests.insert(key.clone(), guest);
        }
        // Each guest's sockets and dumps, on a few threads side by side: entering a namespace
        // and opening a socket there is most of what reading a guest costs.
        let jobs: Vec<(&String, &Guest, bool, bool)> = guests
            .iter()
            .map(|(k, g)| {
                (
                    k,
                    g,
                    needs_routes.contains(k.as_str()),
                    needs_qdisc.contains(k.as_str()),
                )
            })
            .collect();
        let per = jobs.len().div_ceil(OBSERVERS).max(1);
        let results: Vec<Result<(u64, Netlink, GuestSeen), Error>> = std::thread::scope(|sc| {
            let handles: Vec<_> = jobs
                .chunks(per)
                .map(|chunk| {
                    sc.spawn(move || {
                        chunk
                            .iter()
                            .map(|(k, g, r, q)| observe_guest(k, g, *r, *q))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| {
                    h.join().unwrap_or_else(|_| {
                        vec![Err(Error::Internal("a namespace reader panicked".into()))]
                    })
                })
                .collect()
        });
        for ((key, _, _, _), r) in jobs.iter().zip(results) {
            let (inode, nl, gs) = r?;
            self.guests.insert(inode, nl);
            seen.guests.insert((*key).clone(), Some(gs));
        }
        Ok((guests, seen))
    }

    /// `pipework plan`: what apply would change, field by field; nothing is changed.
    pub fn lab_plan(&mut self, want: &LabRequest) -> Result<LabPlan, Error> {
        crate::privilege::require_admin()?;
        raise_nofile();
        let old = state::read_state(&want.lab)?;
        let pending = state::read_journal(&want.lab)?
            .filter(|j| j.txn != old.txn)
            .map(|j| j.entries.len());
        let (_guests, seen) = self.lab_observe(want, &old)?;
        let changes = diff::diff(want, &old, &seen)?;
        Ok(LabPlan {
            lab: want.lab.clone(),
            changes: changes
                .iter()
                .flat_map(|c| diff::render(c, want, &old))
                .collect(),
            pending_rollback: pending,
        })
    }

    /// `pipework apply`: converges the lab, all or nothing.
    pub fn lab_apply(&mut self, want: &LabRequest) -> Result<LabReport, Error> {
        crate::privilege::require_admin()?;
        raise_nofile();
        let start = Instant::now();
        let writes0 = crate::netlink::writes();
        let _lab_lock = state::lock(&want.lab)?;
        // Shared with attaches, exclusive of detach/gc (see store::lock).
        let _store_lock = store::lock(false)?;
        let recovered = self.lab_recover_locked(&want.lab)?;
        let old = state::read_state(&want.lab)?;
        if !old.is_empty() && old.host_netns != self.home.inode {
            return Err(Error::Invalid(format!(
                "lab {} was applied from another network namespace (inode {}); apply and \
                 destroy it from there",
                want.lab, old.host_netns
            )));
        }
        let (guests, seen) = self.lab_observe(want, &old)?;
        let changes = diff::diff(want, &old, &seen)?;
        let lines: Vec<PlanLine> = changes
            .iter()
            .flat_map(|c| diff::render(c, want, &old))
            .collect();
        if changes.is_empty() {
            return Ok(LabReport {
                lab: want.lab.clone(),
                changes: lines,
                netlink_writes: crate::netlink::writes() - writes0,
                elapsed_ms: start.elapsed().as_secs_f64() * 1e3,
                recovered,
                warnings: want.warnings.clone(),
            });
        }
        let mut j = LabJournal::create(&want.lab)?;
        let mut run = Run {
            want,
            old: &old,
            guests,
            seen,
            made_attach: HashMap::new(),
            made_bridges: Vec::new(),
            made_netns: Vec::new(),
            gone_bridges: BTreeSet::new(),
            gone_netns: BTreeSet::new(),
            fresh_bridges: BTreeSet::new(),
        };
        let fail_after = crate::testhook::lab_fail_after();
        let mut task = crate::progress::Task::start(
            &format!("lab {}: applying", want.lab),
            Some(changes.len() as u64),
        );
        let mut k = 0;
        while k < changes.len() {
            // Removals of attachments go together (one batched kernel delete for all), and so
            // do removals of links (deleted side by side).
            let mut n = 1;
            let same = |a: &Change, b: &Change| {
                matches!(
                    (a, b),
                    (Change::Detach { .. }, Change::Detach { .. })
                        | (Change::Unlink { .. }, Change::Unlink { .. })
                )
            };
            while k + n < changes.len() && same(&changes[k], &changes[k + n]) {
                n += 1;
            }
            let chunk = &changes[k..k + n];
            let mut r = self.lab_changes(chunk, &mut run, &mut j);
            let done = k + n;
            if r.is_ok() {
                if let Some(f) = &fail_after {
                    let hit = f == "last" && done == changes.len()
                        || f.parse::<usize>().is_ok_and(|x| x > k && x <= done);
                    if hit {
                        r = Err(Error::Injected("lab-change"));
                    }
                }
            }
            if let Err(e) = r {
                let object = diff::render(&chunk[0], want, &old)
                    .first()
                    .map(|l| l.object.clone());
                let entries = std::mem::take(&mut j.entries);
                let left = self.lab_undo(entries.into_iter().rev().collect());
                if left.is_empty() {
                    j.remove();
                }
                let err = Error::Step {
                    step: "lab-apply",
                    object,
                    source: Box::new(e),
                };
                return Err(if left.is_empty() {
                    err
                } else {
                    Error::Rollback {
                        source: Box::new(err),
                        left,
                    }
                });
            }
            task.inc(n as u64);
            k = done;
        }
        drop(task);
        let new_state = self.next_state(&mut run, j.txn);
        state::write_state(&new_state)?;
        j.remove();
        Ok(LabReport {
            lab: want.lab.clone(),
            changes: lines,
            netlink_writes: crate::netlink::writes() - writes0,
            elapsed_ms: start.elapsed().as_secs_f64() * 1e3,
            recovered,
            warnings: want.warnings.clone(),
        })
    }

    /// The state after a successful apply: what the request names, with what was made.
    fn next_state(&mut self, run: &mut Run<'_>, txn: u64) -> LabState {
        let want = run.want;
        let old = run.old;
        let mut attach = Vec::new();
        for (i, a) in want.attach.iter().enumerate() {
            if let Some(m) = run.made_attach.remove(&i) {
                attach.push(m);
            } else if let Some(m) = old
                .attach
                .iter()
                .find(|m| m.attach.guest == a.guest && m.attach.ifname() == a.ifname())
            {
                attach.push(MadeAttach {
                    attach: a.clone(),
                    ..m.clone()
                });
            }
        }
        let ns_of = |key: &str| run.guests.get(key).map(|g| nsref(&g.netns));
        let links = want
            .links
            .iter()
            .filter_map(|l| {
                Some(MadeLink {
                    link: l.clone(),
                    netns: [ns_of(&l.ends[0].guest)?, ns_of(&l.ends[1].guest)?],
                })
            })
            .collect();
        let routes = want
            .routes
            .iter()
            .filter_map(|r| {
                Some(MadeRoute {
                    route: r.clone(),
                    netns: ns_of(&r.guest)?,
                })
            })
            .collect();
        let mut bridges: Vec<MadeBridge> = old
            .bridges
            .iter()
            .filter(|b| !run.gone_bridges.contains(&b.name))
            .cloned()
            .collect();
        bridges.append(&mut run.made_bridges);
        let mut netns: Vec<String> = old
            .netns
            .iter()
            .filter(|n| !run.gone_netns.contains(*n))
            .cloned()
            .collect();
        netns.append(&mut run.made_netns);
        LabState {
            version: state::VERSION,
            lab: want.lab.clone(),
            host_netns: self.home.inode,
            txn,
            netns,
            bridges,
            attach,
            links,
            routes,
            vxlans: want.stretch.clone(),
            cross: want
                .cross
                .iter()
                .filter_map(|c| {
                    Some(state::MadeCross {
                        end: c.clone(),
                        netns: ns_of(&c.end.guest)?,
                    })
                })
                .collect(),
            request: Some(want.clone()),
        }
    }

    /// Makes one change (or a run of attachment removals).
    fn lab_changes(
        &mut self,
        chunk: &[Change],
        run: &mut Run<'_>,
        j: &mut LabJournal,
    ) -> Result<(), Error> {
        let want = run.want;
        let old = run.old;
        if matches!(chunk[0], Change::Unlink { .. }) {
            let mut gone = Vec::new();
            for c in chunk {
                if let Change::Unlink { s } = c {
                    let m = &old.links[*s];
                    j.will(LabUndo::Removed(Box::new(Removed::Link(m.clone()))))?;
                    gone.push(m.clone());
                }
            }
            return delete_links(&self.home, &gone).into_iter().collect();
        }
        if matches!(chunk[0], Change::Detach { .. }) {
            let mut records = Vec::new();
            for c in chunk {
                if let Change::Detach { s } = c {
                    let m = &old.attach[*s];
                    j.will(LabUndo::Removed(Box::new(Removed::Attach(m.clone()))))?;
                    if let Ok(r) = store::read_record(&m.record) {
                        records.push(r);
                    }
                }
            }
            if !records.is_empty() {
                self.teardown_many(&records, false)?;
            }
            return Ok(());
        }
        match &chunk[0] {
            Change::MakeNetns { guest, name } => {
                j.will(LabUndo::Netns { name: name.clone() })?;
                if let Err(e) = named::create(name) {
                    j.cancel_last()?;
                    return Err(e);
                }
                run.made_netns.push(name.clone());
                let spec = &want.guests[guest].spec;
                let g = self.resolve(spec)?;
                let nl = self.guest_socket(&g.netns)?;
                // lo up, as a container's: a router's own addresses answer on it.
                nl.request(msg::set_link_up(1), 0)
                    .map_err(nl_err(format!("cannot bring lo up in {name}")))?;
                let mut gs = GuestSeen {
                    ns: Some(nsref(&g.netns)),
                    ..GuestSeen::default()
                };
                gs.links.insert("lo".into(), LinkSeen::default());
                run.seen.guests.insert(guest.clone(), Some(gs));
                run.guests.insert(guest.clone(), g);
            }
            Change::MakeBridge { name, bridge } => {
                j.will(LabUndo::Bridge {
                    name: name.clone(),
                    ovs: bridge.ovs,
                })?;
                let r = if bridge.ovs {
                    crate::driver::ovs::vsctl_change(
                        &crate::driver::ovs::add_bridge_args(name, bridge.datapath.as_deref()),
                        &format!("cannot create Open vSwitch bridge {name}"),
                    )
                } else {
                    self.host
                        .request(
                            msg::new_bridge_in_group(name, bridge.mtu, LAB_GROUP),
                            NLM_F_CREATE | NLM_F_EXCL,
                        )
                        .map_err(nl_err(format!("cannot create bridge {name}")))
                };
                if let Err(e) = r {
                    j.cancel_last()?;
                    return Err(e);
                }
                run.made_bridges.push(MadeBridge {
                    name: name.clone(),
                    ovs: bridge.ovs,
                });
                run.fresh_bridges.insert(name.clone());
            }
            Change::BridgeMtu { name, from, to } => {
                let index = links::link_index(&mut self.host, name, crate::plan::Side::Host)?;
                j.will(LabUndo::BridgeMtu {
                    name: name.clone(),
                    mtu: from.unwrap_or(DEFAULT_MTU),
                })?;
                self.host
                    .request(msg::set_link_mtu(index, *to), 0)
                    .map_err(nl_err(format!("cannot set the MTU of bridge {name}")))?;
            }
            Change::Attach { i } => self.lab_attach(*i, run, j)?,
            Change::Reattach { i, s, .. } => {
                let m = &old.attach[*s];
                j.will(LabUndo::Removed(Box::new(Removed::Attach(m.clone()))))?;
                if let Ok(r) = store::read_record(&m.record) {
                    self.teardown_many(&[r], false)?;
                }
                self.lab_attach(*i, run, j)?;
            }
            Change::AttachAddresses {
                i, del, add, drops, ..
            } => {
                let a = &want.attach[*i];
                if let Some(gw) = drops {
                    // The kernel drops the default route with the address it goes through:
                    // journalled, so a rollback puts it back after the old address.
                    let (ns, nl) = guest_nl(self, run, &a.guest)?;
                    let index = links::link_index(nl, a.ifname(), crate::plan::Side::Guest)?;
                    let bytes = msg::route_to_bytes(&default_route(*gw, index))
                        .ok_or_else(|| Error::Internal("cannot encode a default route".into()))?;
                    j.will(LabUndo::Route {
                        ns,
                        route: crate::plan::RouteBytes(bytes),
                        text: format!("default via {gw}"),
                        added: false,
                    })?;
                }
                self.lab_addresses(run, &a.guest, a.ifname(), del, add, j)?;
            }
            Change::AttachGateway { i, from, to, .. } => {
                let a = &want.attach[*i];
                let (ns, nl) = guest_nl(self, run, &a.guest)?;
                let index = links::link_index(nl, a.ifname(), crate::plan::Side::Guest)?;
                if let Some(gw) = from {
                    let m = default_route(*gw, index);
                    let bytes = msg::route_to_bytes(&m)
                        .ok_or_else(|| Error::Internal("cannot encode a default route".into()))?;
                    j.will(LabUndo::Route {
                        ns: ns.clone(),
                        route: crate::plan::RouteBytes(bytes),
                        text: format!("default via {gw}"),
                        added: false,
                    })?;
                    match nl.request(msg::del_route(&m), 0) {
                        Err(e) if e.errno != libc::ESRCH => {
                            return Err(Error::netlink(
                                format!("cannot delete the default route via {gw}"),
                                e,
                            ))
                        }
                        _ => {}
                    }
                }
                if let Some(gw) = to {
                    let m = default_route(*gw, index);
                    let bytes = msg::route_to_bytes(&m)
                        .ok_or_else(|| Error::Internal("cannot encode a default route".into()))?;
                    j.will(LabUndo::Route {
                        ns,
                        route: crate::plan::RouteBytes(bytes),
                        text: format!("default via {gw}"),
                        added: true,
                    })?;
                    nl.request(RouteNetlinkMessage::NewRoute(m), NLM_F_CREATE | NLM_F_EXCL)
                        .map_err(nl_err(format!("cannot add the default route via {gw}")))?;
                }
            }
            Change::AttachMtu { i, s, from, to } => {
                let a = &want.attach[*i];
                self.lab_mtu(run, &a.guest, a.ifname(), *from, *to, j)?;
                if let Some(h) = &old.attach[*s].host_ifname {
                    let from = run.seen.host.get(h).and_then(|l| l.mtu);
                    let home = NsRef {
                        path: "/proc/self/ns/net".into(),
                        inode: self.home.inode,
                    };
                    let index = links::link_index(&mut self.host, h, crate::plan::Side::Host)?;
                    j.will(LabUndo::Mtu {
                        ns: home,
                        ifname: h.clone(),
                        mtu: from.unwrap_or(DEFAULT_MTU),
                    })?;
                    self.host
                        .request(msg::set_link_mtu(index, *to), 0)
                        .map_err(nl_err(format!("cannot set the MTU of {h}")))?;
                }
            }
            Change::AttachUp { i, .. } => {
                let a = &want.attach[*i];
                let (ns, nl) = guest_nl(self, run, &a.guest)?;
                let index = links::link_index(nl, a.ifname(), crate::plan::Side::Guest)?;
                j.will(LabUndo::LinkDown {
                    ns,
                    ifname: a.ifname().to_string(),
                })?;
                nl.request(msg::set_link_up(index), 0)
                    .map_err(nl_err(format!("cannot bring {} up", a.ifname())))?;
            }
            Change::Link { i } => {
                let l = &want.links[*i];
                let ns = [
                    guest_of(run, &l.ends[0].guest)?,
                    guest_of(run, &l.ends[1].guest)?,
                ];
                self.make_link(l, &ns, j)?;
            }
            Change::Relink { i, s, .. } => {
                let m = &old.links[*s];
                j.will(LabUndo::Removed(Box::new(Removed::Link(m.clone()))))?;
                delete_links(&self.home, std::slice::from_ref(m))
                    .into_iter()
                    .collect::<Result<(), Error>>()?;
                let l = &want.links[*i];
                let ns = [
                    guest_of(run, &l.ends[0].guest)?,
                    guest_of(run, &l.ends[1].guest)?,
                ];
                self.make_link(l, &ns, j)?;
            }
            Change::LinkAddresses { i, end, del, add } => {
                let e = &want.links[*i].ends[*end];
                self.lab_addresses(run, &e.guest, &e.ifname, del, add, j)?;
            }
            Change::LinkMtu { i, from, to } => {
                let l = &want.links[*i];
                for e in &l.ends {
                    let from = run
                        .seen
                        .guests
                        .get(&e.guest)
                        .and_then(|g| g.as_ref())
                        .and_then(|g| g.links.get(&e.ifname))
                        .and_then(|l| l.mtu)
                        .or(*from);
                    self.lab_mtu(run, &e.guest, &e.ifname, from, *to, j)?;
                }
            }
            Change::LinkQdisc { i, from, to } => {
                let l = &want.links[*i];
                for e in &l.ends {
                    let (ns, _) = guest_nl(self, run, &e.guest)?;
                    j.will(LabUndo::Qdisc {
                        ns,
                        ifname: e.ifname.clone(),
                        rate: from.rate.clone(),
                        netem: from.netem.clone(),
                    })?;
                    tc_set(&run.guests[&e.guest].netns, &e.ifname, to)?;
                }
            }
            Change::Route { i, .. } => {
                let r = &want.routes[*i];
                let (ns, nl) = guest_nl(self, run, &r.guest)?;
                add_route(nl, &ns, r, j)?;
            }
            Change::Unroute { s } => {
                let m = &old.routes[*s];
                if let Some((_, nl)) = self.nl_of(&m.netns) {
                    del_route(nl, &m.netns, &m.route, Some(j))?;
                }
            }
            Change::Unbridge { s } => {
                let b = &old.bridges[*s];
                let mtu = run.seen.host.get(&b.name).and_then(|l| l.mtu);
                j.will(LabUndo::Removed(Box::new(Removed::Bridge(b.clone(), mtu))))?;
                self.delete_bridge(&b.name, b.ovs)?;
                run.gone_bridges.insert(b.name.clone());
            }
            Change::Unnetns { name } => {
                j.will(LabUndo::Removed(Box::new(Removed::Netns(name.clone()))))?;
                named::delete(name)?;
                run.gone_netns.insert(name.clone());
            }
            Change::Vxlan { i } => self.make_vxlan(&want.stretch[*i], j)?,
            Change::Revxlan { i, s, .. } => {
                let m = &old.vxlans[*s];
                j.will(LabUndo::Removed(Box::new(Removed::Vxlan(m.clone()))))?;
                self.delete_vxlan(&m.name)?;
                self.make_vxlan(&want.stretch[*i], j)?;
            }
            Change::VxlanPeers { i, del, add } => {
                let v = &want.stretch[*i];
                let index = links::link_index(&mut self.host, &v.name, crate::plan::Side::Host)?;
                let gone = del.iter().map(|r| (*r, false));
                for (remote, added) in gone.chain(add.iter().map(|r| (*r, true))) {
                    j.will(LabUndo::Fdb {
                        name: v.name.clone(),
                        remote,
                        added,
                    })?;
                    self.fdb(index, &v.name, remote, added)?;
                }
            }
            Change::Unvxlan { s } => {
                let m = &old.vxlans[*s];
                j.will(LabUndo::Removed(Box::new(Removed::Vxlan(m.clone()))))?;
                self.delete_vxlan(&m.name)?;
            }
            Change::Cross { i } => {
                let c = &want.cross[*i];
                let ns = guest_of(run, &c.end.guest)?;
                self.make_cross(c, &ns, j)?;
            }
            Change::Recross { i, s, .. } => {
                let m = &old.cross[*s];
                j.will(LabUndo::Removed(Box::new(Removed::Cross(m.clone()))))?;
                self.delete_cross(m)?;
                let c = &want.cross[*i];
                let ns = guest_of(run, &c.end.guest)?;
                self.make_cross(c, &ns, j)?;
            }
            Change::CrossAddresses { i, del, add } => {
                let e = &want.cross[*i].end;
                self.lab_addresses(run, &e.guest, &e.ifname, del, add, j)?;
            }
            Change::Uncross { s } => {
                let m = &old.cross[*s];
                j.will(LabUndo::Removed(Box::new(Removed::Cross(m.clone()))))?;
                self.delete_cross(m)?;
            }
            Change::Detach { .. } | Change::Unlink { .. } => unreachable!("handled above"),
        }
        Ok(())
    }

    fn lab_attach(&mut self, i: usize, run: &mut Run<'_>, j: &mut LabJournal) -> Result<(), Error> {
        let a = &run.want.attach[i];
        let guest = run
            .guests
            .get(&a.guest)
            .ok_or_else(|| Error::Internal(format!("guest {} was not resolved", a.guest)))?;
        let path = store::path_for(guest.netns.inode, a.ifname());
        j.will(LabUndo::Record { path: path.clone() })?;
        let host = match &a.request.host_if {
            crate::request::HostIfSpec::Name(n) => n.clone(),
            crate::request::HostIfSpec::Mac(_) => String::new(),
        };
        // A bridge this apply made (listed, or a br* name the first attach creates): no
        // neighbour can hold a stale entry for a new port, so no wait and no announce.
        let announce = !run.fresh_bridges.contains(&host)
            && (run.seen.host.contains_key(&host) || run.seen.ovs.contains(&host));
        let rep = match self.attach_guest(&a.request, guest, false, None, announce) {
            Ok(r) => r,
            Err(e) => {
                if e.left_behind().is_empty() {
                    j.cancel_last()?;
                }
                return Err(e);
            }
        };
        run.made_attach.insert(
            i,
            MadeAttach {
                attach: a.clone(),
                netns: nsref(&guest.netns),
                record: path,
                host_ifname: rep.host_ifname,
            },
        );
        Ok(())
    }

    fn lab_addresses(
        &mut self,
        run: &Run<'_>,
        guest: &str,
        ifname: &str,
        del: &[IpNet],
        add: &[IpNet],
        j: &mut LabJournal,
    ) -> Result<(), Error> {
        let (ns, nl) = guest_nl(self, run, guest)?;
        let index = links::link_index(nl, ifname, crate::plan::Side::Guest)?;
        for d in del {
            j.will(LabUndo::Address {
                ns: ns.clone(),
                ifname: ifname.into(),
                address: *d,
                added: false,
            })?;
            nl.request(msg::del_address(index, d.addr(), d.prefix_len()), 0)
                .map_err(nl_err(format!("cannot remove {d} from {guest}:{ifname}")))?;
        }
        for a in add {
            j.will(LabUndo::Address {
                ns: ns.clone(),
                ifname: ifname.into(),
                address: *a,
                added: true,
            })?;
            nl.request(
                msg::new_address(index, a.addr(), a.prefix_len(), msg::v4_broadcast(a)),
                NLM_F_CREATE | NLM_F_EXCL,
            )
            .map_err(nl_err(format!("cannot add {a} to {guest}:{ifname}")))?;
        }
        Ok(())
    }

    fn lab_mtu(
        &mut self,
        run: &Run<'_>,
        guest: &str,
        ifname: &str,
        from: Option<u32>,
        to: u32,
        j: &mut LabJournal,
    ) -> Result<(), Error> {
        let (ns, nl) = guest_nl(self, run, guest)?;
        let index = links::link_index(nl, ifname, crate::plan::Side::Guest)?;
        j.will(LabUndo::Mtu {
            ns,
            ifname: ifname.into(),
            mtu: from.unwrap_or(DEFAULT_MTU),
        })?;
        nl.request(msg::set_link_mtu(index, to), 0)
            .map_err(nl_err(format!("cannot set the MTU of {guest}:{ifname}")))
    }

    /// A point-to-point veth between two guests: one message makes both ends in place.
    fn make_link(
        &mut self,
        l: &LabLink,
        ns: &[(NetNs, NsRef); 2],
        j: &mut LabJournal,
    ) -> Result<(), Error> {
        let [a, b] = &l.ends;
        let mtu = l.mtu.unwrap_or(DEFAULT_MTU);
        let name = l.name();
        j.will(LabUndo::Link {
            ns: ns[0].1.clone(),
            name: a.ifname.clone(),
        })?;
        let peer = msg::PeerSpec {
            name: b.ifname.clone(),
            mtu,
            mac: Some(b.mac),
            netns_fd: ns[1].0.raw_fd(),
        };
        let nl = self.guest_socket(&ns[0].0)?;
        if let Err(e) = nl.request(
            msg::new_veth_pair(&a.ifname, &a.mac, mtu, &peer),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            j.cancel_last()?;
            return Err(Error::netlink(format!("cannot create link {name}"), e));
        }
        let q = Qdisc {
            rate: l.rate.clone(),
            netem: l.netem.clone(),
        };
        for (k, e) in l.ends.iter().enumerate() {
            self.link_end_up(&ns[k].0, e, &q)?;
        }
        Ok(())
    }

    /// One end of a link the lab made: its addresses, up, its qdisc.
    fn link_end_up(&mut self, ns: &NetNs, e: &crate::lab::LinkEnd, q: &Qdisc) -> Result<(), Error> {
        let nl = self.guest_socket(ns)?;
        let index = links::link_index(nl, &e.ifname, crate::plan::Side::Guest)?;
        for addr in &e.addresses {
            nl.request(
                msg::new_address(
                    index,
                    addr.addr(),
                    addr.prefix_len(),
                    msg::v4_broadcast(addr),
                ),
                NLM_F_CREATE | NLM_F_EXCL,
            )
            .map_err(nl_err(format!(
                "cannot add {addr} to {}:{}",
                e.guest, e.ifname
            )))?;
        }
        nl.request(msg::set_link_up(index), 0)
            .map_err(nl_err(format!("cannot bring {}:{} up", e.guest, e.ifname)))?;
        if q.kind().is_some() {
            tc_set(ns, &e.ifname, q)?;
        }
        Ok(())
    }

    fn delete_bridge(&mut self, name: &str, ovs: bool) -> Result<(), Error> {
        if ovs {
            return crate::driver::ovs::vsctl_change(
                &["--if-exists", "del-br", name],
                &format!("cannot delete Open vSwitch bridge {name}"),
            );
        }
        if let Some(l) = links::get_link(&mut self.host, name)? {
            if msg::link_group(&l) == LAB_GROUP {
                links::delete_link(&mut self.host, l.header.index, name)?;
            }
        }
        Ok(())
    }

    /// Replays undo entries (newest first, as given); the attachments' records in runs, each
    /// run torn down together. Returns what could not be undone.
    fn lab_undo(&mut self, entries: Vec<LabUndo>) -> Vec<String> {
        let mut left = Vec::new();
        let mut records = Vec::new();
        let flush = |s: &mut Session, records: &mut Vec<store::Record>, left: &mut Vec<String>| {
            if records.is_empty() {
                return;
            }
            if let Err(e) = s.teardown_many(records, false) {
                left.extend(e.left_behind().iter().cloned());
                if e.left_behind().is_empty() {
                    left.push(e.to_string());
                }
            }
            records.clear();
        };
        for u in entries {
            if let LabUndo::Record { path } = &u {
                if let Ok(mut r) = store::read_record(path) {
                    // The whole journal backwards, as a rollback (not a detach's teardown).
                    r.header.state = store::RecordState::Incomplete;
                    records.push(r);
                }
                continue;
            }
            flush(self, &mut records, &mut left);
            if let Err(e) = self.undo_entry(&u) {
                left.push(format!("{}: {e}", undo_text(&u)));
            }
        }
        flush(self, &mut records, &mut left);
        left
    }

    fn undo_entry(&mut self, u: &LabUndo) -> Result<(), Error> {
        self.log.step("lab-rollback", undo_text(u));
        match u {
            LabUndo::Netns { name } => named::delete(name),
            LabUndo::Bridge { name, ovs } => self.delete_bridge(name, *ovs),
            LabUndo::Record { .. } => Ok(()),
            LabUndo::Link { ns, name } => {
                let Some((_, nl)) = self.nl_of(ns) else {
                    return Ok(());
                };
                delete_veth_if_ours(nl, name)
            }
            LabUndo::Address {
                ns,
                ifname,
                address,
                added,
            } => {
                let Some((_, nl)) = self.nl_of(ns) else {
                    return Ok(());
                };
                let Some(l) = links::get_link(nl, ifname)? else {
                    return Ok(());
                };
                let i = l.header.index;
                let r = if *added {
                    nl.request(msg::del_address(i, address.addr(), address.prefix_len()), 0)
                } else {
                    nl.request(
                        msg::new_address(
                            i,
                            address.addr(),
                            address.prefix_len(),
                            msg::v4_broadcast(address),
                        ),
                        NLM_F_CREATE,
                    )
                };
                match r {
                    Err(e)
                        if ![libc::EADDRNOTAVAIL, libc::EEXIST, libc::ENODEV]
                            .contains(&e.errno) =>
                    {
                        Err(Error::netlink(
                            format!("cannot restore {address} on {ifname}"),
                            e,
                        ))
                    }
                    _ => Ok(()),
                }
            }
            LabUndo::Mtu { ns, ifname, mtu } => {
                let Some((_, nl)) = self.nl_of(ns) else {
                    return Ok(());
                };
                if let Some(l) = links::get_link(nl, ifname)? {
                    nl.request(msg::set_link_mtu(l.header.index, *mtu), 0)
                        .map_err(nl_err(format!("cannot set the MTU of {ifname} back")))?;
                }
                Ok(())
            }
            LabUndo::LinkDown { ns, ifname } => {
                let Some((_, nl)) = self.nl_of(ns) else {
                    return Ok(());
                };
                if let Some(l) = links::get_link(nl, ifname)? {
                    nl.request(msg::set_link_down(l.header.index), 0)
                        .map_err(nl_err(format!("cannot bring {ifname} back down")))?;
                }
                Ok(())
            }
            LabUndo::BridgeMtu { name, mtu } => {
                if let Some(l) = links::get_link(&mut self.host, name)? {
                    self.host
                        .request(msg::set_link_mtu(l.header.index, *mtu), 0)
                        .map_err(nl_err(format!("cannot set the MTU of {name} back")))?;
                }
                Ok(())
            }
            LabUndo::Route {
                ns,
                route,
                text,
                added,
            } => {
                let Some((_, nl)) = self.nl_of(ns) else {
                    return Ok(());
                };
                let Some(m) = msg::route_from_bytes(&route.0) else {
                    return Err(Error::Internal(format!("route {text}: unreadable bytes")));
                };
                let r = if *added {
                    nl.request(msg::del_route(&m), 0)
                } else {
                    nl.request(msg::readd_route(&m), NLM_F_CREATE)
                };
                match r {
                    Err(e) if ![libc::ESRCH, libc::EEXIST, libc::ENODEV].contains(&e.errno) => {
                        Err(Error::netlink(format!("cannot restore route {text}"), e))
                    }
                    _ => Ok(()),
                }
            }
            LabUndo::Qdisc {
                ns,
                ifname,
                rate,
                netem,
            } => {
                let Some(n) = reopen(ns) else {
                    return Ok(());
                };
                tc_set(
                    &n,
                    ifname,
                    &Qdisc {
                        rate: rate.clone(),
                        netem: netem.clone(),
                    },
                )
            }
            LabUndo::HostLink { name } => self.delete_vxlan(name),
            LabUndo::GuestLink { ns, name } => {
                let Some((_, nl)) = self.nl_of(ns) else {
                    return Ok(());
                };
                stretch::delete_vxlan_end(nl, name)
            }
            LabUndo::Fdb {
                name,
                remote,
                added,
            } => {
                let Some(l) = links::get_link(&mut self.host, name)? else {
                    return Ok(());
                };
                match self.fdb(l.header.index, name, *remote, !*added) {
                    Err(e)
                        if e.errno() == Some(libc::ENOENT) || e.errno() == Some(libc::EEXIST) =>
                    {
                        Ok(())
                    }
                    r => r,
                }
            }
            LabUndo::Removed(r) => match &**r {
                Removed::Vxlan(v) => {
                    let mut scratch = LabJournal::scratch();
                    self.make_vxlan(v, &mut scratch)
                }
                Removed::Cross(m) => {
                    let Some(n) = reopen(&m.netns) else {
                        return Ok(());
                    };
                    let mut scratch = LabJournal::scratch();
                    self.make_cross(&m.end, &(n, m.netns.clone()), &mut scratch)
                }
                Removed::Attach(m) => {
                    let g = self.resolve(&m.attach.request.guest)?;
                    if g.netns.inode != m.netns.inode {
                        return Ok(()); // its namespace is gone: nothing to give back
                    }
                    self.attach_guest(&m.attach.request, &g, false, None, true)
                        .map(|_| ())
                }
                Removed::Link(m) => {
                    let (Some(a), Some(b)) = (reopen(&m.netns[0]), reopen(&m.netns[1])) else {
                        return Ok(());
                    };
                    let ns = [(a, m.netns[0].clone()), (b, m.netns[1].clone())];
                    let mut scratch = LabJournal::scratch();
                    self.make_link(&m.link, &ns, &mut scratch)
                }
                Removed::Route(m) => {
                    let Some((ns, nl)) = self.nl_of(&m.netns) else {
                        return Ok(());
                    };
                    let _ = ns;
                    let mut scratch = LabJournal::scratch();
                    add_route(nl, &m.netns, &m.route, &mut scratch)
                }
                Removed::Bridge(b, mtu) => {
                    if b.ovs {
                        crate::driver::ovs::vsctl_change(
                            &crate::driver::ovs::add_bridge_args(&b.name, None),
                            &format!("cannot re-create Open vSwitch bridge {}", b.name),
                        )
                    } else {
                        self.host
                            .request(
                                msg::new_bridge_in_group(&b.name, *mtu, LAB_GROUP),
                                NLM_F_CREATE | NLM_F_EXCL,
                            )
                            .map_err(nl_err(format!("cannot re-create bridge {}", b.name)))
                    }
                }
                Removed::Netns(name) => named::create(name),
            },
        }
    }

    /// Rolls back a killed apply's journal (the lab's lock held). What was undone, one line
    /// each.
    fn lab_recover_locked(&mut self, lab: &str) -> Result<Vec<String>, Error> {
        let Some(left) = state::read_journal(lab)? else {
            return Ok(Vec::new());
        };
        let st = state::read_state(lab)?;
        if left.txn == st.txn {
            // It had committed; only its file was left.
            state::remove_journal(lab);
            return Ok(Vec::new());
        }
        self.log.info(format_args!(
            "lab {lab}: rolling back a killed apply ({} changes)",
            left.entries.len()
        ));
        let done: Vec<String> = left.entries.iter().rev().map(undo_text).collect();
        let failed = self.lab_undo(left.entries.into_iter().rev().collect());
        if !failed.is_empty() {
            return Err(kept(
                format!(
                    "lab {lab}: a killed apply could not be rolled back completely; its journal \
                     is kept for the next try"
                ),
                failed,
            ));
        }
        state::remove_journal(lab);
        Ok(done)
    }

    /// `gc`'s part: every lab whose apply was killed is rolled back (labs being applied now are
    /// left alone).
    pub fn lab_gc(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for lab in state::labs() {
            let Ok(_l) = state::lock(&lab) else {
                continue;
            };
            match self.lab_recover_locked(&lab) {
                Ok(done) => out.extend(done.into_iter().map(|d| format!("lab {lab}: {d}"))),
                Err(e) => out.push(format!("lab {lab}: {e}")),
            }
        }
        out
    }

    /// `pipework destroy`: everything the lab made goes, nothing else (external bridges and
    /// the guests stay). Works from the state alone.
    pub fn lab_destroy(&mut self, lab: &str) -> Result<ActionsReport, Error> {
        crate::privilege::require_admin()?;
        raise_nofile();
        let _lab_lock = state::lock(lab)?;
        let _store_lock = store::lock(false)?;
        let had_journal = state::journal_path(lab).exists();
        let mut rep = ActionsReport::default();
        rep.actions.extend(self.lab_recover_locked(lab)?);
        let st = state::read_state(lab)?;
        if st.is_empty() && !had_journal && !state::state_path(lab).exists() {
            return Err(Error::NotFound(format!(
                "no lab {lab} here (nothing in {})",
                state::dir().display()
            )));
        }
        let mut left = Vec::new();
        self.max_sockets = self.max_sockets.max(st.attach.len() + st.links.len() + 16);
        for m in &st.routes {
            if let Some((_, nl)) = self.nl_of(&m.netns) {
                if let Err(e) = del_route(nl, &m.netns, &m.route, None) {
                    left.push(e.to_string());
                } else {
                    rep.actions
                        .push(format!("delete route {} {}", m.route.guest, m.route));
                }
            }
        }
        for (m, r) in st.links.iter().zip(delete_links(&self.home, &st.links)) {
            match r {
                Ok(()) => rep.actions.push(format!("delete link {}", m.link.name())),
                Err(e) => left.push(e.to_string()),
            }
        }
        let records: Vec<store::Record> = st
            .attach
            .iter()
            .filter_map(|m| store::read_record(&m.record).ok())
            .collect();
        // The teardown looks into every guest: their sockets are opened side by side first.
        let namespaces: Vec<NetNs> = st.attach.iter().filter_map(|m| reopen(&m.netns)).collect();
        self.open_sockets(&namespaces);
        if !records.is_empty() {
            match self.teardown_many(&records, false) {
                Ok(r) => rep.actions.extend(r.actions),
                Err(e) => left.extend(e.left_behind().iter().cloned()),
            }
        }
        for m in &st.cross {
            match self.delete_cross(m) {
                Ok(()) => rep.actions.push(format!("delete link {}", m.end.link)),
                Err(e) => left.push(e.to_string()),
            }
        }
        for v in &st.vxlans {
            match self.delete_vxlan(&v.name) {
                Ok(()) => rep.actions.push(format!("delete vxlan {}", v.name)),
                Err(e) => left.push(e.to_string()),
            }
        }
        for b in &st.bridges {
            match self.delete_bridge(&b.name, b.ovs) {
                Ok(()) => rep.actions.push(format!("delete bridge {}", b.name)),
                Err(e) => left.push(e.to_string()),
            }
        }
        for n in &st.netns {
            match named::delete(n) {
                Ok(()) => rep.actions.push(format!("delete netns {n}")),
                Err(e) => left.push(e.to_string()),
            }
        }
        if !left.is_empty() {
            return Err(kept(
                format!(
                    "lab {lab}: some of what it made could not be removed; its state is kept \
                     for the next destroy"
                ),
                left,
            ));
        }
        state::remove_state(lab);
        Ok(rep)
    }

    /// `pipework ls --lab LAB`.
    pub fn lab_list(&mut self, lab: &str) -> Result<LabListing, Error> {
        let st = state::read_state(lab)?;
        let journal = state::read_journal(lab)?.filter(|j| j.txn != st.txn);
        if st.is_empty() && journal.is_none() && !state::state_path(lab).exists() {
            return Err(Error::NotFound(format!("no lab {lab} here")));
        }
        let mut objects = Vec::new();
        let alive = |b: bool| if b { "alive" } else { "stale" };
        for n in &st.netns {
            let ok = std::fs::symlink_metadata(named::path_of(n)).is_ok();
            objects.push(LabObject {
                state: alive(ok),
                kind: "netns",
                name: n.clone(),
                detail: named::path_of(n).display().to_string(),
            });
        }
        for b in &st.bridges {
            let ok = if b.ovs {
                matches!(
                    crate::driver::ovs::bridge_datapath(&b.name),
                    Ok(crate::driver::ovs::OvsBridge::Exists(_))
                )
            } else {
                links::get_link(&mut self.host, &b.name)
                    .ok()
                    .flatten()
                    .is_some()
            };
            objects.push(LabObject {
                state: alive(ok),
                kind: "bridge",
                name: b.name.clone(),
                detail: if b.ovs {
                    "Open vSwitch"
                } else {
                    "Linux bridge"
                }
                .into(),
            });
        }
        for m in &st.attach {
            let ok = store::read_record(&m.record)
                .ok()
                .is_some_and(|r| self.alive(&r));
            objects.push(LabObject {
                state: alive(ok),
                kind: "attach",
                name: format!("{}:{}", m.attach.guest, m.attach.ifname()),
                detail: format!(
                    "{} {}",
                    m.attach.line,
                    m.host_ifname.as_deref().unwrap_or("")
                )
                .trim_end()
                .to_string(),
            });
        }
        for m in &st.links {
            let mut ok = true;
            for (k, e) in m.link.ends.iter().enumerate() {
                ok &= self.nl_of(&m.netns[k]).is_some_and(|(_, nl)| {
                    links::get_link(nl, &e.ifname)
                        .ok()
                        .flatten()
                        .is_some_and(|l| msg::link_group(&l) == LINK_GROUP)
                });
            }
            objects.push(LabObject {
                state: alive(ok),
                kind: "link",
                name: m.link.name(),
                detail: m
                    .link
                    .ends
                    .iter()
                    .flat_map(|e| e.addresses.iter().map(|a| a.to_string()))
                    .collect::<Vec<_>>()
                    .join(" "),
            });
        }
        for v in &st.vxlans {
            let ok = links::get_link(&mut self.host, &v.name)
                .ok()
                .flatten()
                .is_some_and(|l| msg::link_group(&l) == LAB_GROUP);
            objects.push(LabObject {
                state: alive(ok),
                kind: "vxlan",
                name: v.name.clone(),
                detail: format!(
                    "bridge {}, vni {}, port {}, local {}, peers {}, mtu {}",
                    v.bridge,
                    v.vni,
                    v.port,
                    v.local,
                    v.remotes
                        .iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    v.mtu
                ),
            });
        }
        for m in &st.cross {
            let e = &m.end;
            let ok = self.nl_of(&m.netns).is_some_and(|(_, nl)| {
                links::get_link(nl, &e.end.ifname)
                    .ok()
                    .flatten()
                    .is_some_and(|l| msg::link_group(&l) == LINK_GROUP)
            });
            objects.push(LabObject {
                state: alive(ok),
                kind: "cross",
                name: e.link.clone(),
                detail: format!(
                    "{}:{} {}, vxlan vni {} to {} (host {}), mtu {}",
                    e.end.guest,
                    e.end.ifname,
                    e.end
                        .addresses
                        .iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join(" "),
                    e.vni,
                    e.remote,
                    e.peer_host,
                    e.mtu
                ),
            });
        }
        for m in &st.routes {
            objects.push(LabObject {
                state: alive(reopen(&m.netns).is_some()),
                kind: "route",
                name: format!("{} {}", m.route.guest, m.route),
                detail: String::new(),
            });
        }
        if let Some(j) = journal {
            for u in &j.entries {
                objects.push(LabObject {
                    state: "incomplete",
                    kind: "journal",
                    name: undo_text(u),
                    detail: "of a killed apply: the next apply, destroy or gc rolls it back".into(),
                });
            }
        }
        Ok(LabListing {
            lab: lab.to_string(),
            objects,
        })
    }
}

/// Deletes the veth `name` if it still is one pipework made (its link group says so).
fn delete_veth_if_ours(nl: &mut Netlink, name: &str) -> Result<(), Error> {
    if let Some(l) = links::get_link(nl, name)? {
        if links::is_ours(&l, crate::plan::LinkKind::Veth) {
            links::delete_link(nl, l.header.index, name)?;
        }
    }
    Ok(())
}

/// Threads deleting links side by side: each delete waits for an RCU grace period (~20 ms
/// here), and concurrent deletes share one, where one after the other each waits its own (500
/// links: seconds). Links live in many namespaces, so no one group delete can take them all.
const DELETERS: usize = 32;

/// Deletes lab links (each by its first end, or its second when the first's namespace is
/// gone), in parallel; one result per link, in order.
fn delete_links(home: &NetNs, links: &[MadeLink]) -> Vec<Result<(), Error>> {
    let one = |m: &MadeLink| -> Result<(), Error> {
        for (k, e) in m.link.ends.iter().enumerate() {
            let Some(ns) = reopen(&m.netns[k]) else {
                continue;
            };
            return ns.run_in(home, || -> Result<(), Error> {
                let mut nl = Netlink::open().map_err(nl_err(format!(
                    "cannot open a netlink socket in {}",
                    m.netns[k].path
                )))?;
                delete_veth_if_ours(&mut nl, &e.ifname)
            })?;
        }
        Ok(())
    };
    let per = links.len().div_ceil(DELETERS).max(1);
    std::thread::scope(|sc| {
        let handles: Vec<_> = links
            .chunks(per)
            .map(|chunk| {
                (
                    chunk.len(),
                    sc.spawn(move || chunk.iter().map(one).collect::<Vec<_>>()),
                )
            })
            .collect();
        let mut out = Vec::with_capacity(links.len());
        for (n, h) in handles {
            match h.join() {
                Ok(rs) => out.extend(rs),
                Err(_) => out.extend(
                    (0..n).map(|_| Err(Error::Internal("a link-deleting thread panicked".into()))),
                ),
            }
        }
        out
    })
}

/// The namespace's links, without their statistics.
fn lean_links(nl: &mut Netlink) -> Result<Vec<netlink_packet_route::link::LinkMessage>, Error> {
    Ok(nl
        .dump(msg::dump_links_lean())
        .map_err(|e| Error::netlink("cannot list links", e))?
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(l),
            _ => None,
        })
        .collect())
}

/// Threads reading guests' namespaces at once (a plan of a thousand guests).
const OBSERVERS: usize = 4;

/// One guest's links, addresses and (when asked) routes and root qdiscs, read through a new
/// socket in its namespace. Runs on a thread of its own: it enters the namespace for good.
fn observe_guest(
    key: &str,
    guest: &Guest,
    routes: bool,
    qdiscs: bool,
) -> Result<(u64, Netlink, GuestSeen), Error> {
    nix::sched::setns(guest.netns.fd(), nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
        Error::io(
            format!("cannot enter the namespace of guest {key}"),
            std::io::Error::from(e),
        )
    })?;
    let mut nl = Netlink::open().map_err(nl_err(format!(
        "cannot open a netlink socket in guest {key}"
    )))?;
    let mut gs = GuestSeen {
        ns: Some(nsref(&guest.netns)),
        ..GuestSeen::default()
    };
    let mut by_index = HashMap::new();
    for l in lean_links(&mut nl)? {
        if let Some(n) = msg::link_name(&l) {
            by_index.insert(l.header.index, n.to_string());
            gs.links.insert(n.to_string(), seen_link(&l));
        }
    }
    let addrs = nl
        .dump(msg::dump_addresses())
        .map_err(nl_err(format!("cannot list the addresses of guest {key}")))?;
    for (i, a) in addresses_by_index(addrs) {
        if let Some(l) = by_index.get(&i).and_then(|n| gs.links.get_mut(n)) {
            l.addresses = a;
        }
    }
    if routes {
        for fam in [AddressFamily::Inet, AddressFamily::Inet6] {
            let r = nl
                .dump(msg::dump_routes(fam))
                .map_err(nl_err(format!("cannot list the routes of guest {key}")))?;
            gs.routes.extend(seen_routes(r));
        }
    }
    if qdiscs {
        let q = nl
            .dump(msg::dump_qdiscs())
            .map_err(nl_err(format!("cannot list the qdiscs of guest {key}")))?;
        for (i, kind) in msg::root_qdiscs(&q) {
            if kind == "noqueue" || kind == "pfifo_fast" || kind == "fq_codel" {
                continue;
            }
            if let Some(l) = by_index.get(&i).and_then(|n| gs.links.get_mut(n)) {
                l.qdisc = Some(kind);
            }
        }
    }
    Ok((guest.netns.inode, nl, gs))
}

/// What could not be undone or removed, kept on disk for the next try (`why` says which).
fn kept(why: String, left: Vec<String>) -> Error {
    Error::Rollback {
        source: Box::new(Error::Busy(why)),
        left,
    }
}

fn guest_of(run: &Run<'_>, key: &str) -> Result<(NetNs, NsRef), Error> {
    let g = run
        .guests
        .get(key)
        .ok_or_else(|| Error::Internal(format!("guest {key} was not resolved")))?;
    let ns = NetNs::open(&g.netns.path)?;
    if ns.inode != g.netns.inode {
        return Err(Error::Guest(format!(
            "guest {key}'s namespace changed during the apply"
        )));
    }
    let r = nsref(&ns);
    Ok((ns, r))
}

fn guest_nl<'s>(
    s: &'s mut Session,
    run: &Run<'_>,
    key: &str,
) -> Result<(NsRef, &'s mut Netlink), Error> {
    let g = run
        .guests
        .get(key)
        .ok_or_else(|| Error::Internal(format!("guest {key} was not resolved")))?;
    let r = nsref(&g.netns);
    let nl = s.guest_socket(&g.netns)?;
    Ok((r, nl))
}

fn default_route(gw: IpAddr, oif: u32) -> netlink_packet_route::route::RouteMessage {
    match msg::new_default_route(gw, oif) {
        RouteNetlinkMessage::NewRoute(m) => m,
        _ => unreachable!("new_default_route builds a NewRoute"),
    }
}

fn route_msg(
    nl: &mut Netlink,
    r: &LabRoute,
) -> Result<netlink_packet_route::route::RouteMessage, Error> {
    let oif = match &r.dev {
        Some(d) => Some(links::link_index(nl, d, crate::plan::Side::Guest)?),
        None => None,
    };
    match msg::new_route_metric(r.dst, r.via, oif, r.metric) {
        RouteNetlinkMessage::NewRoute(m) => Ok(m),
        _ => unreachable!("new_route_metric builds a NewRoute"),
    }
}

fn add_route(nl: &mut Netlink, ns: &NsRef, r: &LabRoute, j: &mut LabJournal) -> Result<(), Error> {
    let m = route_msg(nl, r)?;
    let bytes = msg::route_to_bytes(&m)
        .ok_or_else(|| Error::Internal(format!("cannot encode route {r}")))?;
    j.will(LabUndo::Route {
        ns: ns.clone(),
        route: crate::plan::RouteBytes(bytes),
        text: format!("{} {r}", r.guest),
        added: true,
    })?;
    match nl.request(RouteNetlinkMessage::NewRoute(m), NLM_F_CREATE | NLM_F_EXCL) {
        Ok(()) => Ok(()),
        // There already (it came back with its interface): nothing of ours to undo.
        Err(e) if e.errno == libc::EEXIST => j.cancel_last(),
        Err(e) => Err(Error::netlink(
            format!("cannot add route {r} in {}", r.guest),
            e,
        )),
    }
}

fn del_route(
    nl: &mut Netlink,
    ns: &NsRef,
    r: &LabRoute,
    j: Option<&mut LabJournal>,
) -> Result<(), Error> {
    let m = match route_msg(nl, r) {
        Ok(m) => m,
        Err(_) => return Ok(()), // its interface is gone, and the route with it
    };
    if let Some(j) = j {
        let bytes = msg::route_to_bytes(&m)
            .ok_or_else(|| Error::Internal(format!("cannot encode route {r}")))?;
        j.will(LabUndo::Route {
            ns: ns.clone(),
            route: crate::plan::RouteBytes(bytes),
            text: format!("{} {r}", r.guest),
            added: false,
        })?;
    }
    match nl.request(msg::del_route(&m), 0) {
        Err(e) if e.errno != libc::ESRCH => Err(Error::netlink(
            format!("cannot delete route {r} in {}", r.guest),
            e,
        )),
        _ => Ok(()),
    }
}

pub fn undo_text(u: &LabUndo) -> String {
    match u {
        LabUndo::Netns { name } => format!("delete netns {name}"),
        LabUndo::Bridge { name, .. } => format!("delete bridge {name}"),
        LabUndo::Record { path } => format!("roll back the attachment of {}", path.display()),
        LabUndo::Link { name, ns } => format!("delete link {name} in {}", ns.path),
        LabUndo::Address {
            ifname,
            address,
            added,
            ..
        } => {
            if *added {
                format!("remove {address} from {ifname}")
            } else {
                format!("put {address} back on {ifname}")
            }
        }
        LabUndo::Mtu { ifname, mtu, .. } => format!("set the MTU of {ifname} back to {mtu}"),
        LabUndo::LinkDown { ifname, .. } => format!("bring {ifname} back down"),
        LabUndo::BridgeMtu { name, mtu } => format!("set the MTU of bridge {name} back to {mtu}"),
        LabUndo::Route { text, added, .. } => {
            if *added {
                format!("delete route {text}")
            } else {
                format!("restore route {text}")
            }
        }
        LabUndo::Qdisc { ifname, .. } => format!("restore the qdisc of {ifname}"),
        LabUndo::Removed(r) => match &**r {
            Removed::Attach(m) => {
                format!("re-create attach {}:{}", m.attach.guest, m.attach.ifname())
            }
            Removed::Link(m) => format!("re-create link {}", m.link.name()),
            Removed::Route(m) => format!("re-add route {} {}", m.route.guest, m.route),
            Removed::Bridge(b, _) => format!("re-create bridge {}", b.name),
            Removed::Netns(n) => format!("re-create netns {n}"),
            Removed::Vxlan(v) => format!("re-create vxlan {} on {}", v.name, v.bridge),
            Removed::Cross(m) => format!("re-create link {}", m.end.link),
        },
        LabUndo::HostLink { name } => format!("delete vxlan {name}"),
        LabUndo::GuestLink { ns, name } => format!("delete link {name} in {}", ns.path),
        LabUndo::Fdb {
            name,
            remote,
            added,
        } => {
            if *added {
                format!("remove peer {remote} from {name}")
            } else {
                format!("put peer {remote} back on {name}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tc_argv_for_each_qdisc() {
        let q = |rate: Option<&str>, netem: Option<&str>| Qdisc {
            rate: rate.map(String::from),
            netem: netem.map(String::from),
        };
        assert_eq!(
            tc_args("eth1", &q(Some("10mbit"), None)).unwrap().join(" "),
            "qdisc replace dev eth1 root tbf rate 10mbit burst 12500 latency 50ms"
        );
        assert_eq!(
            tc_args("eth1", &q(None, Some("delay 20ms loss 0.1%")))
                .unwrap()
                .join(" "),
            "qdisc replace dev eth1 root netem delay 20ms loss 0.1%"
        );
        assert_eq!(
            tc_args("eth1", &q(Some("1mbit"), Some("delay 5ms")))
                .unwrap()
                .join(" "),
            "qdisc replace dev eth1 root netem delay 5ms rate 1mbit"
        );
        assert_eq!(
            tc_args("eth1", &q(None, None)).unwrap().join(" "),
            "qdisc del dev eth1 root"
        );
        let e = tc_args("eth1", &q(Some("fast"), None))
            .unwrap_err()
            .to_string();
        assert!(e.contains("'fast' is not a tc rate"), "{e}");
    }

    #[test]
    fn rates_in_tc_units() {
        assert_eq!(rate_bits("10mbit"), Some(10_000_000));
        assert_eq!(rate_bits("1.5gbit"), Some(1_500_000_000));
        assert_eq!(rate_bits("100kbps"), Some(800_000));
        assert_eq!(rate_bits("8bit"), Some(8));
        for bad in ["", "mbit", "10", "10 mbit", "-1mbit", "1xbit", "1e99gbit"] {
            assert_eq!(rate_bits(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_kernel_without_netem_is_named() {
        let q = Qdisc {
            rate: None,
            netem: Some("delay 20ms".into()),
        };
        let e = tc_error("eth1", &q, "Error: Specified qdisc kind is unknown.");
        let t = e.to_string();
        assert!(
            t.contains("no netem support") && t.contains("modprobe sch_netem"),
            "{t}"
        );
        assert_eq!(e.kind(), crate::error::ErrorKind::Kernel);
        let e = tc_error("eth1", &q, "Error: bad args");
        assert!(e
            .to_string()
            .contains("tc qdisc replace dev eth1 root netem delay 20ms"));
    }
}
