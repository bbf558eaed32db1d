//! Guest resolution: from what the user typed to a held network-namespace handle.
//!
//! Forms (a prefix forces one kind):
//! - `pid:N`, or a bare number: a process's namespace (`/proc/N/ns/net`);
//! - a path (anything containing `/`): a namespace file or a bind mount of one;
//! - `netns:NAME`: a named network namespace (`/run/netns/NAME`, as `ip netns` makes);
//! - `docker:NAME|ID` ([`docker`]), `podman:NAME|ID` ([`podman`]), `lxc:NAME` ([`lxc`]),
//!   `containerd:NAMESPACE/ID` or `containerd:ID` (namespace "default", [`containerd`]).
//!
//! A bare word is looked up in this order: a PID (all digits), a path (contains `/`) — these
//! two never ask an engine — then, all of them, a named netns, a Docker container, a Podman
//! container and an LXC container. Exactly one match is the guest; a word that matches in two
//! places (say a Docker and a Podman container, or a container and a netns) is refused with
//! the list of matches, to be repeated with a prefix. containerd is only asked with its prefix
//! (its IDs mean nothing without a namespace). An engine that is absent costs next to nothing:
//! a failed `connect` for an API socket, a PATH lookup (and no process) when `lxc-info` is not
//! installed, a `stat` of LXC_PATH/NAME before `lxc-info` is run.
//!
//! Whatever the engine, its answer (a PID) is trusted only as long as it is checked: the
//! process is pinned with a pidfd, its cgroup must belong to the container, its namespace is
//! opened and held, and the process must still be alive after that ([`open_pinned`]).

pub mod containerd;
pub mod docker;
pub mod lxc;
pub mod podman;
pub(crate) mod tool;

use std::fmt;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::Error;
use crate::ns::NetNs;

const NETNS_DIR: &str = "/run/netns";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum GuestSpec {
    /// A bare name: a named netns or a container of Docker, Podman or LXC.
    Auto(String),
    Docker(String),
    Podman(String),
    Lxc(String),
    Containerd {
        namespace: String,
        id: String,
    },
    NetnsName(String),
    Pid(u32),
    Path(PathBuf),
}

impl GuestSpec {
    pub fn parse(s: &str) -> Result<GuestSpec, Error> {
        if s.is_empty() {
            return Err(Error::Usage(
                "the guest (container, PID, netns) is empty".into(),
            ));
        }
        let api_ref = |r: &str, engine: &str| {
            if docker::valid_reference(r) {
                Ok(r.to_string())
            } else {
                Err(Error::Invalid(format!(
                    "'{r}' is not a valid {engine} container name or ID"
                )))
            }
        };
        if let Some(r) = s.strip_prefix("docker:") {
            return api_ref(r, "Docker").map(GuestSpec::Docker);
        }
        if let Some(r) = s.strip_prefix("podman:") {
            return api_ref(r, "Podman").map(GuestSpec::Podman);
        }
        if let Some(r) = s.strip_prefix("lxc:") {
            if !lxc::valid_name(r) {
                return Err(Error::Invalid(format!(
                    "'{r}' is not a valid LXC container name"
                )));
            }
            return Ok(GuestSpec::Lxc(r.to_string()));
        }
        if let Some(r) = s.strip_prefix("containerd:") {
            let (namespace, id) = containerd::parse_ref(r)?;
            return Ok(GuestSpec::Containerd { namespace, id });
        }
        if let Some(r) = s.strip_prefix("netns:") {
            if r.is_empty() || r.contains('/') || r == "." || r == ".." {
                return Err(Error::Invalid(format!("'{r}' is not a valid netns name")));
            }
            return Ok(GuestSpec::NetnsName(r.to_string()));
        }
        if let Some(r) = s.strip_prefix("pid:") {
            return parse_pid(r).map(GuestSpec::Pid);
        }
        if s.contains('/') {
            return Ok(GuestSpec::Path(PathBuf::from(s)));
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            return parse_pid(s).map(GuestSpec::Pid);
        }
        Ok(GuestSpec::Auto(s.to_string()))
    }
}

/// The canonical text of a spec (what reports and records show as `guest.spec`): the engine
/// prefix is kept when it was forced, so `GuestSpec::parse` of it gives the same spec back.
impl fmt::Display for GuestSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuestSpec::Auto(s) => f.write_str(s),
            GuestSpec::Docker(s) => write!(f, "docker:{s}"),
            GuestSpec::Podman(s) => write!(f, "podman:{s}"),
            GuestSpec::Lxc(s) => write!(f, "lxc:{s}"),
            GuestSpec::Containerd { namespace, id } => write!(f, "containerd:{namespace}/{id}"),
            GuestSpec::NetnsName(s) => write!(f, "netns:{s}"),
            GuestSpec::Pid(p) => write!(f, "{p}"),
            GuestSpec::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

fn parse_pid(s: &str) -> Result<u32, Error> {
    s.parse::<u32>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| Error::Invalid(format!("'{s}' is not a valid PID")))
}

/// Where a guest came from (`guest.engine` in `--json` reports and records).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Docker,
    Podman,
    Lxc,
    Containerd,
    Pid,
    Netns,
    Path,
}

impl Engine {
    /// The spec prefix that forces this kind (`docker`, `lxc`…).
    pub fn prefix(self) -> &'static str {
        match self {
            Engine::Docker => "docker",
            Engine::Podman => "podman",
            Engine::Lxc => "lxc",
            Engine::Containerd => "containerd",
            Engine::Pid => "pid",
            Engine::Netns => "netns",
            Engine::Path => "path",
        }
    }

    /// The name for messages.
    pub fn label(self) -> &'static str {
        match self {
            Engine::Docker => "Docker",
            Engine::Podman => "Podman",
            Engine::Lxc => "LXC",
            Engine::Containerd => "containerd",
            Engine::Pid => "process",
            Engine::Netns => "network namespace",
            Engine::Path => "namespace file",
        }
    }
}

/// A resolved guest: who it is, and its network namespace, held open.
#[derive(Debug)]
pub struct Guest {
    pub spec: String,
    pub engine: Engine,
    pub id: Option<String>,
    pub name: Option<String>,
    pub pid: Option<u32>,
    pub netns: NetNs,
}

impl Guest {
    /// The number in the host end's default name: the PID as in the original, else the
    /// namespace inode.
    pub fn naming_id(&self) -> u64 {
        self.pid.map(u64::from).unwrap_or(self.netns.inode)
    }
}

#[derive(Serialize)]
pub struct GuestInfo<'a> {
    pub spec: &'a str,
    pub engine: Engine,
    pub id: Option<&'a str>,
    pub name: Option<&'a str>,
    pub pid: Option<u32>,
}

impl Guest {
    pub fn info(&self) -> GuestInfo<'_> {
        GuestInfo {
            spec: &self.spec,
            engine: self.engine,
            id: self.id.as_deref(),
            name: self.name.as_deref(),
            pid: self.pid,
        }
    }
}

/// The kernel's PID_MAX_LIMIT (4M on 64-bit): a PID from an engine's answer or a tool's output
/// beyond it (or 0) names no process.
pub const PID_MAX_LIMIT: u32 = 4_194_304;

pub fn valid_pid(pid: u32) -> bool {
    (1..=PID_MAX_LIMIT).contains(&pid)
}

/// Resolves the guest and opens its namespace. Refuses a guest that shares the caller's
/// namespace `home` (e.g. a `--net=host` container): plumbing it would rewire the host itself.
pub fn resolve(raw: &str, spec: &GuestSpec, home: &NetNs) -> Result<Guest, Error> {
    let guest = match spec {
        GuestSpec::Pid(pid) => from_pid(raw, *pid)?,
        GuestSpec::Path(p) => {
            if !p.exists() {
                return Err(Error::Guest(format!(
                    "guest {raw}: no such namespace file {}",
                    p.display()
                )));
            }
            Guest {
                spec: raw.into(),
                engine: Engine::Path,
                id: None,
                name: None,
                pid: pid_of_proc_path(p),
                netns: NetNs::open(p)?,
            }
        }
        GuestSpec::NetnsName(n) => match find_netns(n) {
            Found::Yes(c) => open(raw, c)?,
            Found::No(_) | Found::NoEngine(_) => {
                return Err(Error::Guest(format!(
                    "network namespace {n} not found (no {NETNS_DIR}/{n}); `ip netns list` \
                     shows the named ones"
                )))
            }
        },
        GuestSpec::Docker(r) => {
            let socket = docker::socket_path()?;
            one(
                raw,
                Engine::Docker,
                r,
                find_api(Engine::Docker, &socket, r)?,
            )?
        }
        GuestSpec::Podman(r) => {
            let socket = podman::socket_path()?;
            one(
                raw,
                Engine::Podman,
                r,
                find_api(Engine::Podman, &socket, r)?,
            )?
        }
        GuestSpec::Lxc(n) => one(raw, Engine::Lxc, n, find_lxc(n, false)?)?,
        GuestSpec::Containerd { namespace, id } => {
            let c = find_containerd(namespace, id)?;
            let what = format!("{namespace}/{id}");
            one(raw, Engine::Containerd, &what, c)?
        }
        GuestSpec::Auto(name) => auto(raw, name)?,
    };
    if home.inode == guest.netns.inode {
        return Err(Error::Guest(format!(
            "guest {raw} shares this host's network namespace (a --net=host container?): \
             plumbing it would rewire the host itself"
        )));
    }
    Ok(guest)
}

/// A match of a name in one place: which engine, how to name it unambiguously, and where
/// its namespace is (or why it has none).
#[derive(Debug)]
struct Candidate {
    engine: Engine,
    id: Option<String>,
    name: String,
    at: Place,
}

#[derive(Debug)]
enum Place {
    /// The namespace of this process, which must belong to the container.
    Process { pid: u32, owner: Owner },
    /// A namespace file.
    File(PathBuf),
    /// Known but not running (its state, as the engine says it), and what starts it.
    Stopped { state: String, hint: String },
}

/// How to tell that a process belongs to the container (from its /proc/PID/cgroup).
#[derive(Debug)]
enum Owner {
    /// Docker, Podman, containerd: the cgroup path carries the container ID.
    ContainerId(String),
    /// LXC: `lxc.payload.NAME` (or `/lxc/NAME`).
    LxcName(String),
}

impl Owner {
    fn owns(&self, cgroup: &str) -> bool {
        match self {
            Owner::ContainerId(id) => cgroup_matches(cgroup, id),
            Owner::LxcName(n) => lxc::cgroup_matches(cgroup, n),
        }
    }
}

impl Candidate {
    /// `docker:web1`: the spec that names exactly this match.
    fn qualified(&self) -> String {
        format!("{}:{}", self.engine.prefix(), self.name)
    }

    /// `Docker container web1 (0123456789ab)`, for messages.
    fn describe(&self) -> String {
        let id = self
            .id
            .as_deref()
            .filter(|id| *id != self.name)
            .map(|id| format!(" ({})", id.chars().take(12).collect::<String>()))
            .unwrap_or_default();
        format!("{} container {}{id}", self.engine.label(), self.name)
    }
}

/// Found, or not (the text says where we looked and why nothing was there).
enum Found {
    Yes(Candidate),
    No(String),
    /// The engine itself does not answer (its socket is absent or refuses): not the same as a
    /// container it does not know.
    NoEngine(String),
}

/// A forced engine: its one match, or an error naming the guest and what was looked at.
fn one(raw: &str, engine: Engine, name: &str, found: Found) -> Result<Guest, Error> {
    match found {
        Found::Yes(c) => open(raw, c),
        Found::No(why) => Err(Error::Guest(format!(
            "{} container {name} not found: {why}",
            engine.label()
        ))),
        Found::NoEngine(why) => Err(Error::Engine(format!(
            "{} container {name}: {why}",
            engine.label()
        ))),
    }
}

/// A bare word: every place that can hold a name is asked (see the module's doc for the
/// order); one match wins, several are refused.
fn auto(raw: &str, name: &str) -> Result<Guest, Error> {
    let mut found = Vec::new();
    let mut why = vec!["not a PID or a path".to_string()];
    // Each place's answer; a miss is remembered (with the engine's name) for the message.
    let mut note = |label: &str, f: Found| match f {
        Found::Yes(c) => found.push(c),
        Found::No(w) | Found::NoEngine(w) if label.is_empty() => why.push(w),
        Found::No(w) | Found::NoEngine(w) => why.push(format!("{label}: {w}")),
    };
    note("", find_netns(name));
    if docker::valid_reference(name) {
        let docker_sock = match docker::socket_path() {
            Ok(s) => {
                note("Docker", find_api(Engine::Docker, &s, name)?);
                Some(s)
            }
            Err(e) => {
                note("Docker", Found::No(e.to_string()));
                None
            }
        };
        match podman::socket_path() {
            Ok(s) if docker_sock.as_deref().is_some_and(|d| same_file(d, &s)) => note(
                "Podman",
                Found::No(format!(
                    "its socket {} is Docker's (asked once, as Docker)",
                    s.display()
                )),
            ),
            Ok(s) => note("Podman", find_api(Engine::Podman, &s, name)?),
            Err(e) => note("Podman", Found::No(e.to_string())),
        }
    } else {
        note(
            "",
            Found::No("not a valid Docker or Podman container name".into()),
        );
    }
    note("LXC", find_lxc(name, true)?);
    match found.len() {
        0 => Err(Error::Guest(format!(
            "guest {name} not found: {}; containerd tasks are named \
             containerd:NAMESPACE/ID",
            why.join("; ")
        ))),
        1 => open(raw, found.pop().expect("one match")),
        _ => Err(Error::Guest(format!(
            "guest {name} is ambiguous: {} — say which with a prefix",
            found
                .iter()
                .map(Candidate::qualified)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => a == b,
    }
}

fn find_netns(name: &str) -> Found {
    let path = Path::new(NETNS_DIR).join(name);
    if name == "." || name == ".." || !path.exists() {
        return Found::No(format!("no network namespace {}", path.display()));
    }
    Found::Yes(Candidate {
        engine: Engine::Netns,
        id: None,
        name: name.into(),
        at: Place::File(path),
    })
}

/// Docker or Podman, through the Engine API on `socket`.
fn find_api(engine: Engine, socket: &Path, reference: &str) -> Result<Found, Error> {
    let c = match docker::inspect(socket, reference).map_err(|e| match e {
        Error::Guest(m) => Error::Guest(format!("{}: {m}", engine.label())),
        e => e,
    })? {
        docker::Lookup::NoEngine(why) => {
            let hint = match engine {
                Engine::Podman => format!(
                    "start `podman system service`, or set {}=unix:///path/to/podman.sock",
                    podman::HOST_ENV
                ),
                _ => "set DOCKER_HOST=unix:///path/to/docker.sock".into(),
            };
            return Ok(Found::NoEngine(format!("{why}; {hint}")));
        }
        docker::Lookup::NotFound => {
            return Ok(Found::No(format!(
                "no container of that name or ID at {}",
                socket.display()
            )))
        }
        docker::Lookup::Found(c) => c,
    };
    let name = c.name.trim_start_matches('/').to_string();
    let at = if c.state.running && c.state.pid != 0 {
        Place::Process {
            pid: c.state.pid,
            owner: Owner::ContainerId(c.id.clone()),
        }
    } else {
        let state = if c.state.status.is_empty() {
            "not running".to_string()
        } else {
            c.state.status.clone()
        };
        Place::Stopped {
            state,
            hint: format!("{} start {name}", engine.prefix()),
        }
    };
    Ok(Found::Yes(Candidate {
        engine,
        id: Some(c.id),
        name,
        at,
    }))
}

/// LXC: `quick` (a bare word) looks only when lxc-info is installed and the container is
/// defined in the LXC path, so a host without LXC spawns nothing.
fn find_lxc(name: &str, quick: bool) -> Result<Found, Error> {
    if !lxc::valid_name(name) {
        return Ok(Found::No("not a valid LXC container name".into()));
    }
    if lxc::lxc_info().is_none() {
        return Ok(Found::No("not installed (no lxc-info on PATH)".into()));
    }
    let path = lxc::lxc_path();
    if quick && !lxc::defined(&path, name) {
        return Ok(Found::No(format!(
            "no container {name} in {} (set {} for another LXC path)",
            path.display(),
            lxc::LXC_PATH_ENV
        )));
    }
    let info = match lxc::info(&path, name)? {
        lxc::Lookup::Found(i) => i,
        lxc::Lookup::NotFound(why) | lxc::Lookup::NoTool(why) => return Ok(Found::No(why)),
    };
    let at = match (info.usable(), info.pid) {
        (true, Some(pid)) => Place::Process {
            pid,
            owner: Owner::LxcName(name.into()),
        },
        _ => Place::Stopped {
            state: info.state.clone(),
            hint: format!("lxc-start -P {} -n {name}", path.display()),
        },
    };
    Ok(Found::Yes(Candidate {
        engine: Engine::Lxc,
        id: None,
        name: name.into(),
        at,
    }))
}

fn find_containerd(ns: &str, id: &str) -> Result<Found, Error> {
    let socket = containerd::socket_path()?;
    let full = format!("{ns}/{id}");
    let at = match containerd::lookup(&socket, ns, id)? {
        containerd::Lookup::NotFound => {
            return Ok(Found::No(format!(
                "no container {id} in containerd namespace {ns} at {} (`ctr -n {ns} \
                 containers ls` lists them)",
                socket.display()
            )))
        }
        containerd::Lookup::NoTask => Place::Stopped {
            state: "no task".into(),
            hint: format!("ctr -n {ns} task start {id}"),
        },
        containerd::Lookup::Found(t) if t.usable() => Place::Process {
            pid: t.pid,
            owner: Owner::ContainerId(id.into()),
        },
        containerd::Lookup::Found(t) => Place::Stopped {
            state: t.status.to_lowercase(),
            hint: format!(
                "delete the old task, then start it: ctr -n {ns} task rm {id}; ctr -n {ns} \
                 task start {id}"
            ),
        },
    };
    Ok(Found::Yes(Candidate {
        engine: Engine::Containerd,
        id: Some(full.clone()),
        name: full,
        at,
    }))
}

/// Opens the namespace of a match.
fn open(raw: &str, c: Candidate) -> Result<Guest, Error> {
    let (pid, netns) = match &c.at {
        Place::Stopped { state, hint } => {
            return Err(Error::Guest(format!(
                "{} is not running (state: {state}); start it first ({hint})",
                c.describe()
            )))
        }
        Place::File(p) => (None, NetNs::open(p)?),
        Place::Process { pid, owner } => (
            Some(*pid),
            open_pinned(&c.describe(), *pid, |cg| owner.owns(cg))?,
        ),
    };
    let name = match c.engine {
        // containerd: the ID (the namespace is in `id` and in the spec).
        Engine::Containerd => c.name.split_once('/').map(|(_, i)| i.to_string()),
        _ => Some(c.name),
    };
    Ok(Guest {
        spec: raw.into(),
        engine: c.engine,
        id: c.id,
        name,
        pid,
        netns,
    })
}

fn from_pid(raw: &str, pid: u32) -> Result<Guest, Error> {
    let path = PathBuf::from(format!("/proc/{pid}/ns/net"));
    if !Path::new(&format!("/proc/{pid}")).exists() {
        return Err(Error::Guest(format!(
            "guest {raw}: no process with PID {pid}"
        )));
    }
    Ok(Guest {
        spec: raw.into(),
        engine: Engine::Pid,
        id: None,
        name: None,
        pid: Some(pid),
        netns: NetNs::open(&path)?,
    })
}

/// Opens a container's namespace by the PID its engine reported, without trusting that PID
/// for longer than it is checked: a pidfd pins the process, its cgroup must belong to the
/// container (`owns`), and the process must still be alive after the namespace is open — so a
/// container that exits and a recycled PID can never send us into another process's
/// namespace.
fn open_pinned(what: &str, pid: u32, owns: impl Fn(&str) -> bool) -> Result<NetNs, Error> {
    let gone = || {
        Error::Guest(format!(
            "{what} exited while being resolved (its PID {pid} is gone); start it again"
        ))
    };
    let pidfd = crate::process::pidfd_open(pid).ok_or_else(gone)?;
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).map_err(|_| gone())?;
    if !owns(&cgroup) {
        return Err(gone());
    }
    let netns = NetNs::open(Path::new(&format!("/proc/{pid}/ns/net"))).map_err(|_| gone())?;
    let mut pfd = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd; zero timeout. A pidfd polls readable once the process exits.
    let r = unsafe { libc::poll(&mut pfd, 1, 0) };
    if r != 0 {
        return Err(gone());
    }
    Ok(netns)
}

/// Whether a /proc/PID/cgroup text belongs to container `id`: true when it names the ID, or
/// when it names no container ID at all (engines or setups whose cgroup paths carry none).
fn cgroup_matches(cgroup: &str, id: &str) -> bool {
    if cgroup.contains(id) {
        return true;
    }
    let names_some_id = cgroup
        .split(|c: char| !c.is_ascii_hexdigit())
        .any(|tok| tok.len() == 64);
    !names_some_id
}

/// `/proc/123/ns/net` → 123, so a path to a process's namespace keeps the original's naming.
fn pid_of_proc_path(p: &Path) -> Option<u32> {
    let s = p.to_str()?;
    let rest = s.strip_prefix("/proc/")?;
    let (pid, tail) = rest.split_once('/')?;
    (tail == "ns/net").then(|| pid.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_forms() {
        assert_eq!(GuestSpec::parse("1234").unwrap(), GuestSpec::Pid(1234));
        assert_eq!(GuestSpec::parse("pid:7").unwrap(), GuestSpec::Pid(7));
        assert_eq!(
            GuestSpec::parse("/run/netns/x").unwrap(),
            GuestSpec::Path("/run/netns/x".into())
        );
        assert_eq!(
            GuestSpec::parse("web1").unwrap(),
            GuestSpec::Auto("web1".into())
        );
        assert_eq!(
            GuestSpec::parse("docker:123").unwrap(),
            GuestSpec::Docker("123".into())
        );
        assert_eq!(
            GuestSpec::parse("netns:blue").unwrap(),
            GuestSpec::NetnsName("blue".into())
        );
        assert_eq!(
            GuestSpec::parse("podman:web1").unwrap(),
            GuestSpec::Podman("web1".into())
        );
        assert_eq!(
            GuestSpec::parse("lxc:c1").unwrap(),
            GuestSpec::Lxc("c1".into())
        );
        assert_eq!(
            GuestSpec::parse("containerd:k8s.io/abc").unwrap(),
            GuestSpec::Containerd {
                namespace: "k8s.io".into(),
                id: "abc".into()
            }
        );
        assert_eq!(
            GuestSpec::parse("containerd:abc").unwrap(),
            GuestSpec::Containerd {
                namespace: "default".into(),
                id: "abc".into()
            }
        );
        assert!(GuestSpec::parse("pid:x").is_err());
        assert!(GuestSpec::parse("pid:0").is_err());
        assert!(GuestSpec::parse("netns:a/b").is_err());
        assert!(GuestSpec::parse("docker:").is_err());
        assert!(GuestSpec::parse("podman:../x").is_err());
        assert!(GuestSpec::parse("lxc:").is_err());
        assert!(GuestSpec::parse("lxc:-n").is_err());
        assert!(GuestSpec::parse("containerd:").is_err());
        assert!(GuestSpec::parse("containerd:a/b/c").is_err());
        assert!(GuestSpec::parse("").is_err());
    }

    /// The canonical text keeps a forced prefix and parses back to the same spec.
    #[test]
    fn spec_text_round_trips() {
        for (typed, canonical) in [
            ("1234", "1234"),
            ("pid:7", "7"),
            ("/run/netns/x", "/run/netns/x"),
            ("web1", "web1"),
            ("docker:web1", "docker:web1"),
            ("podman:web1", "podman:web1"),
            ("lxc:c1", "lxc:c1"),
            ("containerd:c1", "containerd:default/c1"),
            ("containerd:ns/c1", "containerd:ns/c1"),
            ("netns:123", "netns:123"),
        ] {
            let spec = GuestSpec::parse(typed).unwrap();
            assert_eq!(spec.to_string(), canonical, "{typed}");
            assert_eq!(GuestSpec::parse(canonical).unwrap(), spec, "{typed}");
        }
    }

    #[test]
    fn engines_serialize_lowercase() {
        for (e, s) in [
            (Engine::Docker, "docker"),
            (Engine::Podman, "podman"),
            (Engine::Lxc, "lxc"),
            (Engine::Containerd, "containerd"),
            (Engine::Netns, "netns"),
        ] {
            assert_eq!(serde_json::to_value(e).unwrap(), s);
            assert_eq!(e.prefix(), s);
        }
    }

    #[test]
    fn ambiguity_lists_prefixed_names() {
        let c = |engine| Candidate {
            engine,
            id: None,
            name: "web1".into(),
            at: Place::File("/x".into()),
        };
        assert_eq!(c(Engine::Docker).qualified(), "docker:web1");
        assert_eq!(c(Engine::Netns).qualified(), "netns:web1");
        assert_eq!(c(Engine::Lxc).describe(), "LXC container web1");
        let d = Candidate {
            id: Some("0123456789abcdef".into()),
            ..c(Engine::Podman)
        };
        assert_eq!(d.describe(), "Podman container web1 (0123456789ab)");
    }

    #[test]
    fn cgroup_identity() {
        let id = "321b6cd2765782a780d0c1acce84726cf94b93560e563c13806f7985ab699c27";
        let other = "0000000000000000000000000000000000000000000000000000000000000001";
        assert!(cgroup_matches(
            &format!("9:name=systemd:/docker/{id}\n"),
            id
        ));
        assert!(cgroup_matches(
            &format!("0::/system.slice/docker-{id}.scope\n"),
            id
        ));
        assert!(!cgroup_matches(&format!("0::/docker/{other}\n"), id));
        assert!(cgroup_matches("0::/user.slice/session-1.scope\n", id));
    }

    #[test]
    fn proc_path_pid() {
        assert_eq!(pid_of_proc_path(Path::new("/proc/42/ns/net")), Some(42));
        assert_eq!(pid_of_proc_path(Path::new("/run/netns/a")), None);
        assert_eq!(pid_of_proc_path(Path::new("/proc/self/ns/net")), None);
    }
}
