//! `pipework doctor [--json]`: what this machine can do, and what is missing, one line each
//! with the fix.
//!
//! Kernel support is PROBED, never assumed from config files: a thread unshares a fresh
//! network namespace, tries to create each link kind and qdisc there, and ends; the namespace
//! (and everything made in it) dies with the thread. Probing must never load a module behind
//! the user's back (the kernel auto-loads `rtnl-link-KIND` / `sch_NAME` when asked), so a kind
//! whose module is installed but not loaded is reported as such and not probed.
//!
//! Nothing on the machine is changed: engine sockets are only connected to (with short
//! deadlines), directories only looked at.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use netlink_packet_core::{DefaultNla, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::link::{LinkMessage, MacVlanMode};
use netlink_packet_route::tc::{TcAttribute, TcHandle, TcMessage, TcOption};
use netlink_packet_route::RouteNetlinkMessage;
use serde::Serialize;

use crate::guest::{containerd, docker, lxc, podman};
use crate::netlink::msg::{self, GuestLinkKind, PeerSpec};
use crate::netlink::vxlan::{new_vxlan, VxlanSpec};
use crate::netlink::{Netlink, NlError};
use crate::ns::NetNs;

/// Every engine/socket check gives up after this: doctor must never hang.
const TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Missing,
    Warning,
}

impl Status {
    fn word(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Missing => "missing",
            Status::Warning => "warning",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// kernel | ovs | engine | cni | runtime | privilege
    pub area: &'static str,
    pub name: String,
    pub status: Status,
    pub detail: String,
    pub fix: Option<String>,
}

impl Check {
    fn new(area: &'static str, name: impl Into<String>, status: Status, detail: String) -> Check {
        Check {
            area,
            name: name.into(),
            status,
            detail,
            fix: None,
        }
    }

    fn fix(mut self, fix: impl Into<String>) -> Check {
        self.fix = Some(fix.into());
        self
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The running kernel's release (uname -r).
    pub kernel: String,
    pub checks: Vec<Check>,
}

/// Check names of the basics: without them pipework cannot attach anything.
pub const BRIDGE: &str = "bridge";
pub const VETH: &str = "veth";

impl Report {
    /// The basics (bridge, veth, and the privileges to use them) are there.
    pub fn basics_ok(&self) -> bool {
        let ok = |area: &str, name: &str| {
            self.checks
                .iter()
                .any(|c| c.area == area && c.name == name && c.status == Status::Ok)
        };
        let privs: Vec<&Check> = self
            .checks
            .iter()
            .filter(|c| c.area == "privilege")
            .collect();
        ok("kernel", BRIDGE)
            && ok("kernel", VETH)
            && !privs.is_empty()
            && privs.iter().all(|c| c.status == Status::Ok)
    }

    /// 0 when the basics are there, else 1 (missing extras and engines do not fail).
    pub fn exit_code(&self) -> i32 {
        if self.basics_ok() {
            0
        } else {
            1
        }
    }

    fn count(&self, s: Status) -> usize {
        self.checks.iter().filter(|c| c.status == s).count()
    }
}

/// Runs every check. Never fails: what cannot be checked is a `warning` line saying why.
pub fn diagnose() -> Report {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    // The slow parts (a namespace, sockets with deadlines) run side by side.
    let (kernel_checks, mut others) = std::thread::scope(|s| {
        let k = s.spawn(|| kernel_checks(Path::new("/"), &kernel));
        let ovs = s.spawn(ovs_check);
        let engines = s.spawn(engine_checks);
        let join = |h: std::thread::ScopedJoinHandle<'_, Vec<Check>>, area, what: &str| {
            h.join().unwrap_or_else(|_| {
                vec![Check::new(
                    area,
                    what,
                    Status::Warning,
                    "the check failed unexpectedly".into(),
                )]
            })
        };
        let kc = join(k, "kernel", "probes");
        let mut rest = join(ovs, "ovs", "Open vSwitch");
        rest.extend(join(engines, "engine", "engines"));
        (kc, rest)
    });
    let mut checks = kernel_checks;
    checks.append(&mut others);
    checks.extend(cni_checks(Path::new("/")));
    checks.push(runtime_check(&crate::store::runtime_dir()));
    checks.push(privilege_check());
    Report { kernel, checks }
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

/// The JSON document: the report plus its verdict.
#[derive(Serialize)]
struct JsonReport<'a> {
    kernel: &'a str,
    ok: bool,
    summary: Summary,
    checks: &'a [Check],
}

#[derive(Serialize)]
struct Summary {
    ok: usize,
    missing: usize,
    warning: usize,
}

/// The report as text (one line per check, then a summary) or as one JSON document.
pub fn render(rep: &Report, json: bool, colour: bool) -> String {
    if json {
        let doc = JsonReport {
            kernel: &rep.kernel,
            ok: rep.basics_ok(),
            summary: Summary {
                ok: rep.count(Status::Ok),
                missing: rep.count(Status::Missing),
                warning: rep.count(Status::Warning),
            },
            checks: &rep.checks,
        };
        // Plain strings, numbers and enums: serialization cannot fail.
        return serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".into());
    }
    let area_w = rep.checks.iter().map(|c| c.area.len()).max().unwrap_or(0) + 2;
    let name_w = rep
        .checks
        .iter()
        .map(|c| c.name.chars().count())
        .max()
        .unwrap_or(0)
        + 2;
    let mut out = String::new();
    for c in &rep.checks {
        let word = c.status.word();
        // Padding outside the escape codes, so columns line up with and without colour.
        let pad = " ".repeat(9 - word.len());
        let status = if colour {
            let code = match c.status {
                Status::Ok => "32",
                Status::Warning => "33",
                Status::Missing => "31",
            };
            format!("\x1b[{code}m{word}\x1b[0m{pad}")
        } else {
            format!("{word}{pad}")
        };
        let name_pad = " ".repeat(name_w - c.name.chars().count());
        out.push_str(&format!(
            "{status}{:<area_w$}{}{name_pad}{}",
            c.area, c.name, c.detail
        ));
        if let Some(f) = c.fix.as_deref().filter(|_| c.status != Status::Ok) {
            out.push_str(&format!(" — fix: {f}"));
        }
        out.push('\n');
    }
    let (ok, missing, warning) = (
        rep.count(Status::Ok),
        rep.count(Status::Missing),
        rep.count(Status::Warning),
    );
    let verdict = if rep.basics_ok() {
        "pipework can plumb containers here".to_string()
    } else {
        let lacking: Vec<String> = rep
            .checks
            .iter()
            .filter(|c| {
                c.status != Status::Ok
                    && (c.area == "privilege"
                        || (c.area == "kernel" && (c.name == BRIDGE || c.name == VETH)))
            })
            .map(|c| c.name.clone())
            .collect();
        format!(
            "pipework cannot work here: lacking {}",
            if lacking.is_empty() {
                "the basics".into()
            } else {
                lacking.join(", ")
            }
        )
    };
    out.push_str(&format!(
        "{ok} ok, {missing} missing, {warning} warning{}: {verdict}",
        if warning == 1 { "" } else { "s" }
    ));
    out
}

// ---------------------------------------------------------------------------------------------
// Kernel
// ---------------------------------------------------------------------------------------------

/// What is probed, in probe order (later probes use links made by earlier ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Probe {
    Bridge,
    VlanFiltering,
    Veth,
    Macvlan,
    Vlan,
    Dummy,
    Ipoib,
    Vxlan,
    Netem,
    Tbf,
}

/// How a probe's failure is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// RTM_NEWLINK of a link kind: EOPNOTSUPP ("Unknown device type") = no such kind.
    Link,
    /// RTM_NEWQDISC: ENOENT ("Specified qdisc kind is unknown") = no such qdisc.
    Qdisc,
    /// IFLA_BR_VLAN_FILTERING on a bridge: EOPNOTSUPP = built without it.
    VlanFiltering,
    /// An ipoib link on a non-InfiniBand parent: EOPNOTSUPP = no such kind; any other
    /// refusal comes from the ipoib driver itself, so the kind is there.
    Ipoib,
}

struct Feature {
    probe: Probe,
    name: &'static str,
    /// The module the kernel would auto-load for it.
    module: &'static str,
    config: &'static str,
    kind: ProbeKind,
    /// What the probe does, for the ok line.
    does: &'static str,
}

const FEATURES: &[Feature] = &[
    Feature {
        probe: Probe::Bridge,
        name: BRIDGE,
        module: "bridge",
        config: "CONFIG_BRIDGE",
        kind: ProbeKind::Link,
        does: "created a bridge in a throwaway namespace",
    },
    Feature {
        probe: Probe::Veth,
        name: VETH,
        module: "veth",
        config: "CONFIG_VETH",
        kind: ProbeKind::Link,
        does: "created a veth pair in a throwaway namespace",
    },
    Feature {
        probe: Probe::Macvlan,
        name: "macvlan",
        module: "macvlan",
        config: "CONFIG_MACVLAN",
        kind: ProbeKind::Link,
        does: "created a macvlan in a throwaway namespace",
    },
    Feature {
        probe: Probe::Vlan,
        name: "802.1Q (vlan)",
        module: "8021q",
        config: "CONFIG_VLAN_8021Q",
        kind: ProbeKind::Link,
        does: "created a VLAN link in a throwaway namespace",
    },
    Feature {
        probe: Probe::Dummy,
        name: "dummy",
        module: "dummy",
        config: "CONFIG_DUMMY",
        kind: ProbeKind::Link,
        does: "created a dummy link in a throwaway namespace",
    },
    Feature {
        probe: Probe::Ipoib,
        name: "IPoIB",
        module: "ib_ipoib",
        config: "CONFIG_INFINIBAND_IPOIB",
        kind: ProbeKind::Ipoib,
        does: "the ipoib link kind exists (an IPoIB link also needs an InfiniBand parent NIC)",
    },
    Feature {
        probe: Probe::Vxlan,
        name: "VXLAN",
        module: "vxlan",
        config: "CONFIG_VXLAN",
        kind: ProbeKind::Link,
        does: "created a VXLAN link in a throwaway namespace",
    },
    Feature {
        probe: Probe::Netem,
        name: "netem",
        module: "sch_netem",
        config: "CONFIG_NET_SCH_NETEM",
        kind: ProbeKind::Qdisc,
        does: "added a netem qdisc in a throwaway namespace",
    },
    Feature {
        probe: Probe::Tbf,
        name: "tbf",
        module: "sch_tbf",
        config: "CONFIG_NET_SCH_TBF",
        kind: ProbeKind::Qdisc,
        does: "added a tbf qdisc in a throwaway namespace",
    },
    Feature {
        probe: Probe::VlanFiltering,
        name: "vlan_filtering",
        module: "bridge",
        config: "CONFIG_BRIDGE_VLAN_FILTERING",
        kind: ProbeKind::VlanFiltering,
        does: "turned VLAN filtering on for a bridge in a throwaway namespace",
    },
];

/// Whether a module is loaded, installed but not loaded, or neither (built in, or absent:
/// either way a probe loads nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleState {
    Loaded,
    Available(PathBuf),
    NoFile,
}

/// The state of each of `modules` under `root` (`/` in real use): /sys/module/NAME means
/// loaded (or built in with a sysfs entry); otherwise a NAME.ko* file anywhere under
/// /lib/modules/RELEASE means a probe would make the kernel load it.
pub fn module_states(root: &Path, release: &str, modules: &[&str]) -> HashMap<String, ModuleState> {
    let norm = |s: &str| s.replace('-', "_");
    let mut out = HashMap::new();
    let mut unloaded = Vec::new();
    for m in modules {
        if root.join("sys/module").join(norm(m)).exists() {
            out.insert(m.to_string(), ModuleState::Loaded);
        } else {
            unloaded.push(*m);
        }
    }
    if unloaded.is_empty() {
        return out;
    }
    // One walk for all of them (a distribution kernel has thousands of module files).
    let mut files: HashMap<String, PathBuf> = HashMap::new();
    if !release.is_empty() && !release.contains('/') {
        walk_modules(&root.join("lib/modules").join(release), 0, &mut files);
    }
    for m in unloaded {
        let st = match files.get(&norm(m)) {
            Some(p) => ModuleState::Available(p.clone()),
            None => ModuleState::NoFile,
        };
        out.insert(m.to_string(), st);
    }
    out
}

fn walk_modules(dir: &Path, depth: usize, files: &mut HashMap<String, PathBuf>) {
    if depth > 10 {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        // Not followed: `build` and `source` are symlinks into whole kernel trees.
        let Ok(ft) = e.file_type() else { continue };
        let name = e.file_name();
        let name = name.to_string_lossy();
        if ft.is_dir() {
            walk_modules(&e.path(), depth + 1, files);
        } else if let Some((stem, rest)) = name.split_once(".ko") {
            // NAME.ko, NAME.ko.zst, NAME.ko.xz, NAME.ko.gz
            if rest.is_empty() || rest.starts_with('.') {
                files
                    .entry(stem.replace('-', "_"))
                    .or_insert_with(|| e.path());
            }
        }
    }
}

/// A probe's failure read as a status and a sentence.
pub fn classify(kind: ProbeKind, what: &str, e: &NlError) -> (Status, String) {
    // `"Unknown device type", EOPNOTSUPP`: the kernel's words and the errno's name.
    let errno = nix::errno::Errno::from_raw(e.errno);
    let said = match &e.ext_ack {
        Some(m) => format!("\"{m}\", {errno:?}"),
        None => format!("{errno:?}: {}", errno.desc()),
    };
    match (kind, e.errno) {
        (ProbeKind::Link | ProbeKind::Ipoib, libc::EOPNOTSUPP) => (
            Status::Missing,
            format!("the kernel has no {what} support (kernel: {said})"),
        ),
        (ProbeKind::Qdisc, libc::ENOENT) => (
            Status::Missing,
            format!("the kernel has no {what} qdisc (kernel: {said})"),
        ),
        (ProbeKind::VlanFiltering, libc::EOPNOTSUPP) => (
            Status::Missing,
            format!(
                "the kernel's bridge has no VLAN filtering, built without \
                 CONFIG_BRIDGE_VLAN_FILTERING (kernel: {said})"
            ),
        ),
        // The ipoib driver refused a non-InfiniBand parent: the kind exists.
        (ProbeKind::Ipoib, _) => (Status::Ok, String::new()),
        (_, libc::EPERM | libc::EACCES) => (
            Status::Warning,
            format!("not probed: not permitted to create a {what} (needs CAP_NET_ADMIN; kernel: {said})"),
        ),
        (_, libc::ETIMEDOUT) => (
            Status::Warning,
            format!("not probed: the kernel did not answer (kernel: {said})"),
        ),
        _ => (
            Status::Warning,
            format!("the probe for {what} failed, so support is unknown: {said}"),
        ),
    }
}

/// The outcome of one probe: success, the kernel's refusal, or why it was not tried.
#[derive(Debug, Clone)]
enum Outcome {
    Done,
    Refused(NlError),
    NotTried(String),
}

fn kernel_checks(root: &Path, release: &str) -> Vec<Check> {
    let mods: Vec<&str> = FEATURES.iter().map(|f| f.module).collect();
    let states = module_states(root, release, &mods);
    let blocked = |f: &Feature| matches!(states.get(f.module), Some(ModuleState::Available(_)));
    let wanted: HashSet<Probe> = FEATURES
        .iter()
        .filter(|f| !blocked(f))
        .map(|f| f.probe)
        .collect();
    let outcomes = run_probes(wanted);
    FEATURES
        .iter()
        .map(|f| {
            if let Some(ModuleState::Available(p)) = states.get(f.module) {
                // Probing would load it: say so instead.
                let (status, detail) = if f.probe == Probe::VlanFiltering {
                    (
                        Status::Warning,
                        format!(
                            "not probed: module bridge is available ({}) but not loaded",
                            p.display()
                        ),
                    )
                } else {
                    (
                        Status::Missing,
                        format!(
                            "module {} is available ({}) but not loaded",
                            f.module,
                            p.display()
                        ),
                    )
                };
                return Check::new("kernel", f.name, status, detail)
                    .fix(format!("modprobe {}", f.module));
            }
            let fix = match f.probe {
                Probe::VlanFiltering => format!("use a kernel with {}=y", f.config),
                _ => format!("modprobe {}, or use a kernel with {}", f.module, f.config),
            };
            match outcomes.get(&f.probe) {
                Some(Outcome::Done) => Check::new("kernel", f.name, Status::Ok, f.does.into()),
                Some(Outcome::Refused(e)) => {
                    let (status, detail) = classify(f.kind, f.name, e);
                    let detail = if status == Status::Ok {
                        f.does.to_string()
                    } else {
                        detail
                    };
                    let c = Check::new("kernel", f.name, status, detail);
                    match status {
                        Status::Ok => c,
                        Status::Missing => c.fix(fix),
                        Status::Warning => c.fix("run pipework doctor as root"),
                    }
                }
                Some(Outcome::NotTried(why)) => Check::new(
                    "kernel",
                    f.name,
                    Status::Warning,
                    format!("not probed: {why}"),
                )
                .fix("run pipework doctor as root"),
                None => Check::new("kernel", f.name, Status::Warning, "not probed".into())
                    .fix("run pipework doctor as root"),
            }
        })
        .collect()
}

/// Runs the wanted probes on a thread in a fresh network namespace.
fn run_probes(wanted: HashSet<Probe>) -> HashMap<Probe, Outcome> {
    let all = |why: String| -> HashMap<Probe, Outcome> {
        wanted
            .iter()
            .map(|p| (*p, Outcome::NotTried(why.clone())))
            .collect()
    };
    if wanted.is_empty() {
        return HashMap::new();
    }
    let w = wanted.clone();
    let r = std::thread::Builder::new()
        .name("doctor-probe".into())
        .spawn(move || {
            // This thread only: the namespace ends when the thread does.
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                format!("cannot create a throwaway network namespace ({e}): needs root")
            })?;
            let mut nl =
                Netlink::open().map_err(|e| format!("cannot open a netlink socket there ({e})"))?;
            nl.set_timeout(TIMEOUT);
            let here = NetNs::current().map_err(|e| e.to_string())?;
            Ok::<_, String>(probe_in_fresh_ns(&mut nl, here.raw_fd(), &w))
        });
    match r {
        Err(e) => all(format!("cannot start the probe thread ({e})")),
        Ok(h) => match h.join() {
            Ok(Ok(m)) => m,
            Ok(Err(why)) => all(why),
            Err(_) => all("the probe thread failed".into()),
        },
    }
}

fn probe_in_fresh_ns(
    nl: &mut Netlink,
    here_fd: std::os::fd::RawFd,
    wanted: &HashSet<Probe>,
) -> HashMap<Probe, Outcome> {
    let mut out = HashMap::new();
    let create = NLM_F_CREATE | NLM_F_EXCL;
    let outcome = |r: Result<(), NlError>| match r {
        Ok(()) => Outcome::Done,
        Err(e) => Outcome::Refused(e),
    };
    let index_of = |nl: &mut Netlink, name: &str| -> Option<u32> {
        match nl.get(msg::get_link_by_name(name)) {
            Ok(Some(RouteNetlinkMessage::NewLink(LinkMessage { header, .. }))) => {
                Some(header.index)
            }
            _ => None,
        }
    };
    let mut bridge = None;
    if wanted.contains(&Probe::Bridge) {
        let r = nl.request(msg::new_bridge("pwdoc-br", None), create);
        if r.is_ok() {
            bridge = index_of(nl, "pwdoc-br");
        }
        out.insert(Probe::Bridge, outcome(r));
    }
    if wanted.contains(&Probe::VlanFiltering) {
        let o = match bridge {
            Some(i) => outcome(nl.request(msg::set_vlan_filtering(i), 0)),
            None => Outcome::NotTried("needs a bridge, and none could be made".into()),
        };
        out.insert(Probe::VlanFiltering, o);
    }
    let mut veth = None;
    if wanted.contains(&Probe::Veth) {
        let peer = PeerSpec {
            name: "pwdoc-v1".into(),
            mtu: 1500,
            mac: None,
            netns_fd: here_fd,
        };
        let r = nl.request(msg::new_veth("pwdoc-v0", 1500, None, &peer), create);
        if r.is_ok() {
            veth = index_of(nl, "pwdoc-v0");
        }
        out.insert(Probe::Veth, outcome(r));
    }
    // macvlan and VLAN need an Ethernet parent: the veth, else the bridge.
    let parent = veth.or(bridge);
    for (p, name) in [(Probe::Macvlan, "pwdoc-mv"), (Probe::Vlan, "pwdoc-vl")] {
        if !wanted.contains(&p) {
            continue;
        }
        let o = match parent {
            None => {
                Outcome::NotTried("needs a veth or bridge parent, and none could be made".into())
            }
            Some(parent) => {
                let m = if p == Probe::Macvlan {
                    let kind = GuestLinkKind::Macvlan {
                        parent,
                        mode: MacVlanMode::Bridge,
                    };
                    msg::new_link_in_guest(&kind, name, None, None, here_fd)
                } else {
                    msg::new_vlan(name, parent, 10, None)
                };
                outcome(nl.request(m, create))
            }
        };
        out.insert(p, o);
    }
    if wanted.contains(&Probe::Dummy) {
        let m = msg::new_link_in_guest(&GuestLinkKind::Dummy, "pwdoc-dm", None, None, here_fd);
        out.insert(Probe::Dummy, outcome(nl.request(m, create)));
    }
    if wanted.contains(&Probe::Ipoib) {
        // Parent lo (ifindex 1, always there): not InfiniBand, so the driver refuses it.
        let kind = GuestLinkKind::Ipoib {
            parent: 1,
            pkey: None,
        };
        let m = msg::new_link_in_guest(&kind, "pwdoc-ib", None, None, here_fd);
        out.insert(Probe::Ipoib, outcome(nl.request(m, create)));
    }
    if wanted.contains(&Probe::Vxlan) {
        let spec = VxlanSpec {
            name: "pwdoc-vx".into(),
            vni: 42,
            port: 4789,
            local: IpAddr::V4(Ipv4Addr::LOCALHOST),
            remote: None,
            dev: None,
            mtu: 1450,
            mac: None,
            group: 0,
            master: None,
            netns_fd: None,
            learning: false,
        };
        out.insert(Probe::Vxlan, outcome(nl.request(new_vxlan(&spec), create)));
    }
    for p in [Probe::Netem, Probe::Tbf] {
        if wanted.contains(&p) {
            // Root qdisc of lo; REPLACE so the second probe replaces the first's.
            let m = root_qdisc(1, p == Probe::Netem);
            out.insert(p, outcome(nl.request(m, NLM_F_CREATE | NLM_F_REPLACE)));
        }
    }
    out
}

/// TCA_OPTIONS
const TCA_OPTIONS: u16 = 2;
/// TCA_TBF_PARMS
const TCA_TBF_PARMS: u16 = 1;

/// RTM_NEWQDISC of a root netem (no delay, limit 1000) or tbf (1 MB/s, 100 kB burst) qdisc.
/// netlink-packet-route has no types for these two, so their option structs are laid out here.
fn root_qdisc(ifindex: i32, netem: bool) -> RouteNetlinkMessage {
    let mut m = TcMessage::default();
    m.header.index = ifindex;
    m.header.parent = TcHandle::ROOT;
    m.header.handle = TcHandle {
        major: 0x10,
        minor: 0,
    };
    let u32s = |v: &[u32]| v.iter().flat_map(|x| x.to_ne_bytes()).collect::<Vec<u8>>();
    if netem {
        m.attributes.push(TcAttribute::Kind("netem".into()));
        // struct tc_netem_qopt: latency, limit, loss, gap, duplicate, jitter (raw, not nested).
        m.attributes.push(TcAttribute::Other(DefaultNla::new(
            TCA_OPTIONS,
            u32s(&[0, 1000, 0, 0, 0, 0]),
        )));
    } else {
        m.attributes.push(TcAttribute::Kind("tbf".into()));
        let rate: u32 = 1_000_000; // bytes per second
        let burst_ns: u64 = 100_000_000; // 100 kB at 1 MB/s: above lo's MTU, no kernel warning
                                         // struct tc_ratespec: cell_log u8, linklayer u8 (1 = ethernet: no rate table),
                                         // overhead u16, cell_align i16, mpu u16, rate u32.
        let mut ratespec = vec![0u8, 1, 0, 0, 0, 0, 0, 0];
        ratespec.extend(rate.to_ne_bytes());
        let mut parms = ratespec;
        parms.extend([0u8; 12]); // peakrate: none
                                 // limit (bytes), buffer (psched ticks of 64 ns), mtu (none).
        parms.extend(u32s(&[100_000, (burst_ns >> 6) as u32, 0]));
        m.attributes.push(TcAttribute::Options(vec![TcOption::Other(
            DefaultNla::new(TCA_TBF_PARMS, parms),
        )]));
    }
    RouteNetlinkMessage::NewQueueDiscipline(m)
}

// ---------------------------------------------------------------------------------------------
// Open vSwitch and the engines
// ---------------------------------------------------------------------------------------------

/// Runs `f` on its own thread and waits at most `d`: a blocking connect (a unix socket with a
/// full backlog) or a silent peer cannot hang doctor. A late thread is abandoned.
fn with_deadline<T: Send + 'static>(
    d: Duration,
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| format!("cannot start a thread ({e})"))?;
    rx.recv_timeout(d)
        .unwrap_or_else(|_| Err(format!("no answer within {} s", d.as_secs())))
}

fn connects(sock: &Path) -> Result<(), String> {
    let sock = sock.to_path_buf();
    with_deadline(TIMEOUT, move || {
        UnixStream::connect(&sock)
            .map(drop)
            .map_err(|e| e.to_string())
    })
}

/// `GET /_ping` on an Engine API socket (Docker's and Podman's).
fn ping(sock: &Path) -> Result<(), String> {
    let sock = sock.to_path_buf();
    with_deadline(TIMEOUT, move || {
        let mut s = UnixStream::connect(&sock).map_err(|e| e.to_string())?;
        let _ = s.set_read_timeout(Some(TIMEOUT));
        let _ = s.set_write_timeout(Some(TIMEOUT));
        s.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        // Bounded: whatever listens there is not trusted to end its answer.
        s.take(4096)
            .read_to_end(&mut buf)
            .map_err(|e| e.to_string())?;
        parse_ping(&buf)
    })
}

/// An HTTP answer to `GET /_ping`: 200 is an engine that works.
pub fn parse_ping(resp: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(resp);
    let line = text.lines().next().unwrap_or("").trim();
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(v), Some("200")) if v.starts_with("HTTP/1.") => Ok(()),
        (Some(v), Some(_)) if v.starts_with("HTTP/1.") => Err(format!("it answered {line:?}")),
        _ => Err("the answer is not HTTP".into()),
    }
}

fn ovs_check() -> Vec<Check> {
    let rundir = std::env::var_os("OVS_RUNDIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/openvswitch"));
    let sock = rundir.join("db.sock");
    let vsctl = find_program("ovs-vsctl");
    let c = match (connects(&sock), &vsctl) {
        (Ok(()), Some(v)) => Check::new(
            "ovs",
            "Open vSwitch",
            Status::Ok,
            format!(
                "ovsdb-server answers at {}; {}",
                sock.display(),
                v.display()
            ),
        ),
        (Ok(()), None) => Check::new(
            "ovs",
            "Open vSwitch",
            Status::Warning,
            format!(
                "ovsdb-server answers at {}, but ovs-vsctl is not installed",
                sock.display()
            ),
        )
        .fix("install Open vSwitch's utilities (openvswitch-switch / openvswitch)"),
        (Err(e), v) => Check::new(
            "ovs",
            "Open vSwitch",
            Status::Warning,
            format!(
                "not running: no ovsdb-server at {} ({e}){}",
                sock.display(),
                if v.is_some() {
                    ""
                } else {
                    "; ovs-vsctl is not installed"
                }
            ),
        )
        .fix(if v.is_some() {
            "start it (/usr/share/openvswitch/scripts/ovs-ctl start), or set OVS_RUNDIR \
             (only needed for OVS bridges)"
        } else {
            "install and start Open vSwitch (openvswitch-switch), only needed for OVS bridges"
        }),
    };
    vec![c]
}

fn engine_checks() -> Vec<Check> {
    std::thread::scope(|s| {
        let d = s.spawn(docker_check);
        let p = s.spawn(podman_check);
        let c = s.spawn(containerd_check);
        let l = lxc_check();
        let mut out = Vec::new();
        for (h, name) in [(d, "docker"), (p, "podman"), (c, "containerd")] {
            out.push(h.join().unwrap_or_else(|_| {
                Check::new("engine", name, Status::Warning, "the check failed".into())
            }));
        }
        out.push(l);
        out
    })
}

fn docker_check() -> Check {
    let sock = match docker::socket_path() {
        Ok(s) => s,
        Err(e) => {
            return Check::new("engine", "docker", Status::Warning, e.to_string())
                .fix("set DOCKER_HOST=unix:///path/to/docker.sock")
        }
    };
    match ping(&sock) {
        Ok(()) => Check::new(
            "engine",
            "docker",
            Status::Ok,
            format!("Docker answers at {} (GET /_ping)", sock.display()),
        ),
        Err(e) => Check::new(
            "engine",
            "docker",
            Status::Warning,
            format!("no Docker engine answers at {} ({e})", sock.display()),
        )
        .fix(
            "start dockerd (install Docker if absent), or set DOCKER_HOST=unix:///path/to/docker.sock \
             (only needed for docker: guests)",
        ),
    }
}

fn podman_check() -> Check {
    let sock = match podman::socket_path() {
        Ok(s) => s,
        Err(e) => {
            return Check::new("engine", "podman", Status::Warning, e.to_string()).fix(format!(
                "set {}=unix:///path/to/podman.sock",
                podman::HOST_ENV
            ))
        }
    };
    match ping(&sock) {
        Ok(()) => Check::new(
            "engine",
            "podman",
            Status::Ok,
            format!("Podman answers at {} (GET /_ping)", sock.display()),
        ),
        Err(e) => match find_program("podman") {
            Some(bin) => Check::new(
                "engine",
                "podman",
                Status::Warning,
                format!(
                    "{} is installed, but its API socket {} does not answer ({e})",
                    bin.display(),
                    sock.display()
                ),
            )
            .fix(format!(
                "podman system service --time=0 unix://{} (pipework asks Podman through its \
                 API socket)",
                sock.display()
            )),
            None => Check::new(
                "engine",
                "podman",
                Status::Warning,
                format!(
                    "not installed (no podman on PATH; nothing answers at {}: {e})",
                    sock.display()
                ),
            )
            .fix("install Podman (only needed for podman: guests)"),
        },
    }
}

fn containerd_check() -> Check {
    let sock = match containerd::socket_path() {
        Ok(s) => s,
        Err(e) => {
            return Check::new("engine", "containerd", Status::Warning, e.to_string()).fix(format!(
                "set {}=/path/to/containerd.sock",
                containerd::ADDRESS_ENV
            ))
        }
    };
    match (connects(&sock), find_program("ctr")) {
        (Ok(()), Some(ctr)) => Check::new(
            "engine",
            "containerd",
            Status::Ok,
            format!(
                "containerd answers at {}; {}",
                sock.display(),
                ctr.display()
            ),
        ),
        (Ok(()), None) => Check::new(
            "engine",
            "containerd",
            Status::Warning,
            format!(
                "containerd answers at {}, but ctr is not installed (pipework asks \
                 containerd through ctr)",
                sock.display()
            ),
        )
        .fix("install containerd's ctr tool"),
        (Err(e), _) => Check::new(
            "engine",
            "containerd",
            Status::Warning,
            format!("nothing answers at {} ({e})", sock.display()),
        )
        .fix(format!(
            "start containerd (install it if absent), or set {}=/path/to/containerd.sock \
             (only needed for containerd: guests)",
            containerd::ADDRESS_ENV
        )),
    }
}

fn lxc_check() -> Check {
    let path = lxc::lxc_path();
    match lxc::lxc_info() {
        Some(bin) => Check::new(
            "engine",
            "lxc",
            Status::Ok,
            format!(
                "{}; containers under {}{}",
                bin.display(),
                path.display(),
                if path.is_dir() {
                    ""
                } else {
                    " (none defined yet)"
                }
            ),
        ),
        None => Check::new(
            "engine",
            "lxc",
            Status::Warning,
            format!(
                "not installed (no lxc-info on PATH){}",
                if path.is_dir() {
                    format!(", though {} exists", path.display())
                } else {
                    String::new()
                }
            ),
        )
        .fix("install LXC (lxc / lxc-utils), only needed for lxc: guests"),
    }
}

// ---------------------------------------------------------------------------------------------
// CNI, runtime directory, privileges
// ---------------------------------------------------------------------------------------------

fn cni_checks(root: &Path) -> Vec<Check> {
    let mut out = Vec::new();
    for dir in ["opt/cni/bin", "usr/lib/cni"] {
        let d = root.join(dir);
        let shown = format!("/{dir}");
        let c = if !d.is_dir() {
            Check::new(
                "cni",
                shown.clone(),
                Status::Warning,
                "not present (CNI runtimes look for plugins here)".into(),
            )
            .fix(format!(
                "mkdir -p {shown} && install -m 0755 \"$(command -v pipework)\" {shown}/pipework \
                 (only needed for CNI)"
            ))
        } else if is_executable(&d.join("pipework")) {
            Check::new(
                "cni",
                shown.clone(),
                Status::Ok,
                "present; the pipework plugin is installed".into(),
            )
        } else {
            Check::new(
                "cni",
                shown.clone(),
                Status::Warning,
                "present, but the pipework plugin is not installed there".into(),
            )
            .fix(format!(
                "install -m 0755 \"$(command -v pipework)\" {shown}/pipework (only needed for CNI)"
            ))
        };
        out.push(c);
    }
    let netd = root.join("etc/cni/net.d");
    out.push(if netd.is_dir() {
        let (confs, ours) = cni_confs(&netd);
        let c = Check::new(
            "cni",
            "/etc/cni/net.d",
            if ours > 0 {
                Status::Ok
            } else {
                Status::Warning
            },
            format!("present: {confs} network configuration(s), {ours} using the pipework plugin"),
        );
        if ours > 0 {
            c
        } else {
            c.fix("add a configuration with \"type\": \"pipework\" there (only needed for CNI)")
        }
    } else {
        Check::new(
            "cni",
            "/etc/cni/net.d",
            Status::Warning,
            "not present (CNI runtimes read network configurations here)".into(),
        )
        .fix("create it with a configuration of \"type\": \"pipework\" (only needed for CNI)")
    });
    out
}

/// `program` on PATH or in an sbin directory, as the engine lookups find their tools
/// (guest::tool's rule; that module is private to guest).
fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .filter(|d| d.is_absolute())
        .map(|d| d.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// How many CNI configurations `dir` has, and how many use the pipework plugin.
fn cni_confs(dir: &Path) -> (usize, usize) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return (0, 0);
    };
    let (mut confs, mut ours) = (0, 0);
    for e in rd.flatten().take(1000) {
        let p = e.path();
        let ext = p.extension().and_then(|x| x.to_str()).unwrap_or("");
        if !matches!(ext, "conf" | "conflist" | "json") {
            continue;
        }
        confs += 1;
        let Ok(f) = std::fs::File::open(&p) else {
            continue;
        };
        let mut text = String::new();
        // Bounded: a configuration is a few KiB.
        if f.take(1 << 20).read_to_string(&mut text).is_err() {
            continue;
        }
        if uses_pipework(&text) {
            ours += 1;
        }
    }
    (confs, ours)
}

/// A CNI configuration (`.conf`) or list (`.conflist`) with a `"type": "pipework"` plugin.
pub fn uses_pipework(text: &str) -> bool {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
        return false;
    };
    let is_ours =
        |p: &serde_json::Value| p.get("type").and_then(|t| t.as_str()) == Some("pipework");
    is_ours(&v)
        || v.get("plugins")
            .and_then(|p| p.as_array())
            .is_some_and(|a| a.iter().any(is_ours))
}

fn writable(p: &Path) -> bool {
    use nix::unistd::{access, AccessFlags};
    access(p, AccessFlags::W_OK | AccessFlags::X_OK).is_ok()
}

/// The runtime directory exists and is writable, or can be created (its nearest existing
/// ancestor is writable). Never creates it.
pub fn runtime_check(dir: &Path) -> Check {
    let name = "runtime dir";
    let fix = "run as root, or set PIPEWORK_RUNTIME_DIR to a writable directory";
    if dir.exists() {
        return if !dir.is_dir() {
            Check::new(
                "runtime",
                name,
                Status::Missing,
                format!("{} exists but is not a directory", dir.display()),
            )
            .fix(format!(
                "remove {}, or set PIPEWORK_RUNTIME_DIR",
                dir.display()
            ))
        } else if writable(dir) {
            Check::new(
                "runtime",
                name,
                Status::Ok,
                format!("{} exists and is writable", dir.display()),
            )
        } else {
            Check::new(
                "runtime",
                name,
                Status::Missing,
                format!("{} exists but is not writable", dir.display()),
            )
            .fix(fix)
        };
    }
    let ancestor = dir.ancestors().skip(1).find(|a| a.exists());
    match ancestor {
        Some(a) if a.is_dir() && writable(a) => Check::new(
            "runtime",
            name,
            Status::Ok,
            format!(
                "{} does not exist yet; {} is writable, so it will be created on first use",
                dir.display(),
                a.display()
            ),
        ),
        Some(a) => Check::new(
            "runtime",
            name,
            Status::Missing,
            format!(
                "{} does not exist and {} is not writable, so it cannot be created",
                dir.display(),
                a.display()
            ),
        )
        .fix(fix),
        None => Check::new(
            "runtime",
            name,
            Status::Missing,
            format!("{} is not an absolute path", dir.display()),
        )
        .fix("set PIPEWORK_RUNTIME_DIR to an absolute path"),
    }
}

/// CapEff of /proc/self/status, as a bit set.
pub fn parse_capeff(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

fn privilege_check() -> Check {
    let euid = nix::unistd::geteuid().as_raw();
    let caps = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| parse_capeff(&s));
    privilege_verdict(euid, caps)
}

/// Root or not, what counts is CAP_NET_ADMIN and CAP_SYS_ADMIN in the effective set (root in
/// a container may lack them; a non-root process may have them).
pub fn privilege_verdict(euid: u32, caps: Option<u64>) -> Check {
    let name = "capabilities";
    let who = if euid == 0 {
        "running as root (euid 0)".to_string()
    } else {
        format!("running as euid {euid}")
    };
    let missing = crate::privilege::missing(caps.unwrap_or(0));
    if missing.is_empty() {
        Check::new(
            "privilege",
            name,
            Status::Ok,
            format!("{who} with CAP_NET_ADMIN and CAP_SYS_ADMIN"),
        )
    } else {
        Check::new(
            "privilege",
            name,
            Status::Missing,
            format!("{who} without {}", missing.join(" and ")),
        )
        .fix(
            "run as root (sudo pipework …), or grant CAP_NET_ADMIN and CAP_SYS_ADMIN \
             (setcap cap_net_admin,cap_sys_admin+ep \"$(command -v pipework)\")",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(area: &'static str, name: &str, status: Status) -> Check {
        let c = Check::new(area, name, status, format!("{name} detail"));
        if status == Status::Ok {
            c
        } else {
            c.fix(format!("fix {name}"))
        }
    }

    fn report(bridge: Status, veth: Status, privs: Status) -> Report {
        Report {
            kernel: "6.0.0-test".into(),
            checks: vec![
                check("kernel", BRIDGE, bridge),
                check("kernel", VETH, veth),
                check("kernel", "802.1Q (vlan)", Status::Missing),
                check("engine", "docker", Status::Warning),
                check("privilege", "capabilities", privs),
            ],
        }
    }

    #[test]
    fn exit_code_follows_the_basics_only() {
        use Status::*;
        assert_eq!(report(Ok, Ok, Ok).exit_code(), 0);
        assert_eq!(report(Missing, Ok, Ok).exit_code(), 1);
        assert_eq!(report(Ok, Warning, Ok).exit_code(), 1);
        assert_eq!(report(Ok, Ok, Missing).exit_code(), 1);
        // No privilege line at all is not "fine".
        let mut r = report(Ok, Ok, Ok);
        r.checks.retain(|c| c.area != "privilege");
        assert_eq!(r.exit_code(), 1);
    }

    #[test]
    fn text_has_one_line_per_check_and_a_summary() {
        let r = report(Status::Ok, Status::Ok, Status::Ok);
        let t = render(&r, false, false);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), r.checks.len() + 1, "{t}");
        assert!(lines[0].starts_with("ok       kernel     bridge "), "{t}");
        assert!(
            lines[2].starts_with("missing  kernel     802.1Q (vlan)"),
            "{t}"
        );
        assert!(lines[2].ends_with(" — fix: fix 802.1Q (vlan)"), "{t}");
        // An ok line carries no fix.
        assert!(!lines[0].contains("fix:"), "{t}");
        // Columns line up: every detail starts at the same column.
        let starts: Vec<usize> = lines[..r.checks.len()]
            .iter()
            .zip(&r.checks)
            .map(|(l, c)| l.find(&c.detail).unwrap())
            .collect();
        assert!(starts.windows(2).all(|w| w[0] == w[1]), "{t}");
        assert!(
            lines
                .last()
                .unwrap()
                .starts_with("3 ok, 1 missing, 1 warning: "),
            "{t}"
        );
        assert!(!t.contains('\x1b'));
        let bad = render(
            &report(Status::Missing, Status::Ok, Status::Ok),
            false,
            false,
        );
        assert!(
            bad.lines()
                .last()
                .unwrap()
                .contains("cannot work here: lacking bridge"),
            "{bad}"
        );
    }

    #[test]
    fn colour_wraps_status_words_only() {
        let r = report(Status::Ok, Status::Ok, Status::Ok);
        let t = render(&r, false, true);
        assert!(t.contains("\x1b[32mok\x1b[0m       kernel"), "{t:?}");
        assert!(t.contains("\x1b[31mmissing\x1b[0m  kernel"), "{t:?}");
        assert!(t.contains("\x1b[33mwarning\x1b[0m  engine"), "{t:?}");
        // Same text once the escapes are taken out.
        let plain = t.replace("\x1b[32m", "").replace("\x1b[31m", "");
        let plain = plain.replace("\x1b[33m", "").replace("\x1b[0m", "");
        assert_eq!(plain, render(&r, false, false));
    }

    #[test]
    fn json_is_one_document() {
        let r = report(Status::Ok, Status::Ok, Status::Ok);
        let t = render(&r, true, true);
        assert!(!t.contains('\x1b'));
        let v: serde_json::Value = serde_json::from_str(&t).unwrap();
        assert_eq!(v["ok"], true);
        assert_eq!(v["kernel"], "6.0.0-test");
        assert_eq!(v["summary"]["missing"], 1);
        let checks = v["checks"].as_array().unwrap();
        assert_eq!(checks.len(), 5);
        assert_eq!(checks[0]["area"], "kernel");
        assert_eq!(checks[0]["status"], "ok");
        assert_eq!(checks[0]["fix"], serde_json::Value::Null);
        assert_eq!(checks[2]["status"], "missing");
        assert_eq!(checks[2]["fix"], "fix 802.1Q (vlan)");
        assert_eq!(checks[3]["status"], "warning");
        let bad = render(
            &report(Status::Ok, Status::Ok, Status::Missing),
            true,
            false,
        );
        let v: serde_json::Value = serde_json::from_str(&bad).unwrap();
        assert_eq!(v["ok"], false);
    }

    fn nl(errno: i32, ack: Option<&str>) -> NlError {
        NlError {
            errno,
            ext_ack: ack.map(str::to_string),
        }
    }

    #[test]
    fn errno_mapping() {
        let (s, d) = classify(
            ProbeKind::Link,
            "dummy",
            &nl(libc::EOPNOTSUPP, Some("Unknown device type")),
        );
        assert_eq!(s, Status::Missing);
        assert!(
            d.contains("no dummy support") && d.contains("Unknown device type"),
            "{d}"
        );
        let (s, d) = classify(ProbeKind::Qdisc, "netem", &nl(libc::ENOENT, None));
        assert_eq!(s, Status::Missing);
        assert!(d.contains("no netem qdisc"), "{d}");
        let (s, d) = classify(
            ProbeKind::VlanFiltering,
            "vlan_filtering",
            &nl(libc::EOPNOTSUPP, None),
        );
        assert_eq!(s, Status::Missing);
        assert!(d.contains("CONFIG_BRIDGE_VLAN_FILTERING"), "{d}");
        // IPoIB: the driver refusing lo as a parent means the kind is there.
        assert_eq!(
            classify(ProbeKind::Ipoib, "IPoIB", &nl(libc::ENODEV, None)).0,
            Status::Ok
        );
        assert_eq!(
            classify(ProbeKind::Ipoib, "IPoIB", &nl(libc::EOPNOTSUPP, None)).0,
            Status::Missing
        );
        // A qdisc's ENOENT is "absent", a link's is not.
        assert_eq!(
            classify(ProbeKind::Link, "veth", &nl(libc::ENOENT, None)).0,
            Status::Warning
        );
        let (s, d) = classify(ProbeKind::Link, "veth", &nl(libc::EPERM, None));
        assert_eq!(s, Status::Warning);
        assert!(d.contains("CAP_NET_ADMIN"), "{d}");
        let (s, d) = classify(ProbeKind::Qdisc, "tbf", &nl(libc::ETIMEDOUT, Some("slow")));
        assert_eq!(s, Status::Warning);
        assert!(d.contains("did not answer"), "{d}");
    }

    #[test]
    fn module_guard_reads_sysfs_then_module_files() {
        let root = std::env::temp_dir().join(format!("pwdoc-mods-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let rel = "6.1.0-test";
        let kdir = root.join("lib/modules").join(rel).join("kernel/net");
        std::fs::create_dir_all(root.join("sys/module/bridge")).unwrap();
        std::fs::create_dir_all(kdir.join("8021q")).unwrap();
        std::fs::create_dir_all(kdir.join("sched")).unwrap();
        std::fs::write(kdir.join("8021q/8021q.ko.zst"), b"").unwrap();
        std::fs::write(kdir.join("sched/sch_netem.ko"), b"").unwrap();
        std::fs::write(kdir.join("sched/sch_tbf.kobject"), b"").unwrap();
        // Module files of another release do not count.
        let other = root.join("lib/modules/5.0.0/kernel");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("dummy.ko"), b"").unwrap();
        let st = module_states(
            &root,
            rel,
            &["bridge", "8021q", "sch_netem", "sch_tbf", "dummy"],
        );
        assert_eq!(st["bridge"], ModuleState::Loaded);
        assert_eq!(
            st["8021q"],
            ModuleState::Available(kdir.join("8021q/8021q.ko.zst"))
        );
        assert!(matches!(st["sch_netem"], ModuleState::Available(_)));
        assert_eq!(st["sch_tbf"], ModuleState::NoFile);
        assert_eq!(st["dummy"], ModuleState::NoFile);
        // No /lib/modules at all (a kernel without modules): nothing to load, so probe.
        let st = module_states(&root, "9.9.9", &["8021q"]);
        assert_eq!(st["8021q"], ModuleState::NoFile);
        // A hostile release string never walks outside /lib/modules.
        assert_eq!(
            module_states(&root, "../..", &["dummy"])["dummy"],
            ModuleState::NoFile
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_loadable_module_is_reported_not_probed() {
        let root = std::env::temp_dir().join(format!("pwdoc-guard-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let rel = "6.1.0-test";
        let k = root.join("lib/modules").join(rel).join("kernel");
        std::fs::create_dir_all(&k).unwrap();
        for m in [
            "bridge",
            "veth",
            "macvlan",
            "8021q",
            "dummy",
            "ib_ipoib",
            "vxlan",
            "sch_netem",
            "sch_tbf",
        ] {
            std::fs::write(k.join(format!("{m}.ko.xz")), b"").unwrap();
        }
        // Every module is loadable: nothing is probed (no namespace is even needed).
        let checks = kernel_checks(&root, rel);
        assert_eq!(checks.len(), FEATURES.len());
        for c in &checks {
            assert!(c.detail.contains("available"), "{c:?}");
            assert!(c.fix.as_deref().unwrap().starts_with("modprobe "), "{c:?}");
        }
        let vlan = checks.iter().find(|c| c.name == "802.1Q (vlan)").unwrap();
        assert_eq!(vlan.status, Status::Missing);
        assert_eq!(vlan.fix.as_deref(), Some("modprobe 8021q"));
        let vf = checks.iter().find(|c| c.name == "vlan_filtering").unwrap();
        assert_eq!(vf.status, Status::Warning);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn ping_answers() {
        assert!(parse_ping(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nOK").is_ok());
        assert!(parse_ping(b"HTTP/1.1 200 OK\r\n\r\nOK").is_ok());
        assert!(parse_ping(b"HTTP/1.1 404 Not Found\r\n\r\n")
            .unwrap_err()
            .contains("404"));
        assert!(parse_ping(b"").is_err());
        assert!(parse_ping(b"\xff\xfe garbage").is_err());
    }

    #[test]
    fn capabilities() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert_eq!(parse_capeff(status), Some(0x1ff_ffff_ffff));
        assert_eq!(parse_capeff("CapEff:\tzz\n"), None);
        assert_eq!(parse_capeff(""), None);
        assert_eq!(privilege_verdict(0, Some(u64::MAX)).status, Status::Ok);
        // Root without the capabilities (a restricted container) is not enough.
        let c = privilege_verdict(0, Some(0));
        assert_eq!(c.status, Status::Missing);
        assert!(
            c.detail.contains("CAP_NET_ADMIN and CAP_SYS_ADMIN"),
            "{c:?}"
        );
        assert!(c.fix.is_some());
        let c = privilege_verdict(1000, Some((1 << 12) | (1 << 21)));
        assert_eq!(c.status, Status::Ok);
        assert!(c.detail.contains("euid 1000"));
        assert_eq!(privilege_verdict(1000, None).status, Status::Missing);
    }

    #[test]
    fn runtime_dir_is_never_created() {
        let base = std::env::temp_dir().join(format!("pwdoc-rt-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        let c = runtime_check(&base);
        assert_eq!(c.status, Status::Ok, "{c:?}");
        assert!(c.detail.contains("exists and is writable"));
        let later = base.join("a/b");
        let c = runtime_check(&later);
        assert_eq!(c.status, Status::Ok, "{c:?}");
        assert!(c.detail.contains("will be created"), "{c:?}");
        assert!(!later.exists() && !base.join("a").exists());
        let file = base.join("f");
        std::fs::write(&file, b"").unwrap();
        assert_eq!(runtime_check(&file).status, Status::Missing);
        assert_eq!(runtime_check(&file.join("x")).status, Status::Missing);
        assert_eq!(
            runtime_check(Path::new("relative/dir")).status,
            Status::Missing
        );
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn cni_configurations() {
        assert!(uses_pipework(
            r#"{"cniVersion":"1.0.0","name":"n","type":"pipework"}"#
        ));
        assert!(uses_pipework(
            r#"{"name":"n","plugins":[{"type":"portmap"},{"type":"pipework"}]}"#
        ));
        assert!(!uses_pipework(
            r#"{"name":"n","plugins":[{"type":"bridge"}]}"#
        ));
        assert!(!uses_pipework("not json"));
        let root = std::env::temp_dir().join(format!("pwdoc-cni-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("opt/cni/bin")).unwrap();
        std::fs::create_dir_all(root.join("etc/cni/net.d")).unwrap();
        std::fs::write(
            root.join("etc/cni/net.d/10-p.conflist"),
            r#"{"name":"n","plugins":[{"type":"pipework"}]}"#,
        )
        .unwrap();
        std::fs::write(root.join("etc/cni/net.d/README"), "x").unwrap();
        let c = cni_checks(&root);
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].name, "/opt/cni/bin");
        assert_eq!(c[0].status, Status::Warning);
        assert!(c[0].detail.contains("not installed"), "{:?}", c[0]);
        assert_eq!(c[1].status, Status::Warning);
        assert!(c[1].detail.contains("not present"));
        assert_eq!(c[2].status, Status::Ok, "{:?}", c[2]);
        assert!(c[2].detail.contains("1 network configuration(s), 1 using"));
        assert!(c.iter().all(|c| c.status == Status::Ok || c.fix.is_some()));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn deadline_bounds_a_hung_check() {
        let t = std::time::Instant::now();
        let r: Result<(), String> = with_deadline(Duration::from_millis(100), || {
            std::thread::sleep(Duration::from_secs(5));
            Ok(())
        });
        assert!(r.unwrap_err().contains("no answer"));
        assert!(t.elapsed() < Duration::from_secs(2));
    }
}
