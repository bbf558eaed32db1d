//! Guest resolution: from what the user typed to a held network-namespace handle.
//!
//! Lookup order for a bare word (documented in the README): a path (contains '/'), a PID (all
//! digits), then a named network namespace and a Docker/Podman container — a name found in both
//! is ambiguous and refused. Prefixes force one kind: `docker:`, `netns:`, `pid:`.

pub mod docker;

use std::os::fd::{AsRawFd, FromRawFd};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::Error;
use crate::ns::NetNs;

const NETNS_DIR: &str = "/run/netns";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestSpec {
    /// A bare name: a named netns or a container.
    Auto(String),
    Docker(String),
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
        if let Some(r) = s.strip_prefix("docker:") {
            return Ok(GuestSpec::Docker(r.to_string()));
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

fn parse_pid(s: &str) -> Result<u32, Error> {
    s.parse::<u32>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| Error::Invalid(format!("'{s}' is not a valid PID")))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Docker,
    Pid,
    Netns,
    Path,
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
        GuestSpec::NetnsName(n) => from_netns(raw, n)?.ok_or_else(|| {
            Error::Guest(format!(
                "network namespace {n} not found (no {NETNS_DIR}/{n}); `ip netns list` shows \
                     the named ones"
            ))
        })?,
        GuestSpec::Docker(r) => match docker_lookup(raw, r)? {
            Ok(g) => g,
            Err(why) => return Err(Error::Guest(format!("container {r} not found: {why}"))),
        },
        GuestSpec::Auto(name) => {
            let ns = from_netns(raw, name)?;
            let dk = if docker::valid_reference(name) {
                Some(docker_lookup(raw, name)?)
            } else {
                None
            };
            match (ns, dk) {
                (Some(_), Some(Ok(_))) => {
                    return Err(Error::Guest(format!(
                        "guest {name} is ambiguous: it is both a named network namespace \
                         ({NETNS_DIR}/{name}) and a container; say which with netns:{name} or \
                         docker:{name}"
                    )))
                }
                (Some(g), _) => g,
                (None, Some(Ok(g))) => g,
                (None, Some(Err(why))) => {
                    return Err(Error::Guest(format!(
                        "guest {name} not found: no network namespace {NETNS_DIR}/{name}, and {why}"
                    )))
                }
                (None, None) => {
                    return Err(Error::Guest(format!(
                        "guest {name} not found: not a PID, a path, a named network namespace or \
                         a valid container name"
                    )))
                }
            }
        }
    };
    if home.inode == guest.netns.inode {
        return Err(Error::Guest(format!(
            "guest {raw} shares this host's network namespace (a --net=host container?): \
             plumbing it would rewire the host itself"
        )));
    }
    Ok(guest)
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

fn from_netns(raw: &str, name: &str) -> Result<Option<Guest>, Error> {
    let path = Path::new(NETNS_DIR).join(name);
    if !path.exists() {
        return Ok(None);
    }
    Ok(Some(Guest {
        spec: raw.into(),
        engine: Engine::Netns,
        id: None,
        name: Some(name.into()),
        pid: None,
        netns: NetNs::open(&path)?,
    }))
}

/// `Ok(Ok(guest))` found and running; `Ok(Err(why))` not found (why says where we looked);
/// `Err` for a found-but-unusable container or an engine failure.
fn docker_lookup(raw: &str, reference: &str) -> Result<Result<Guest, String>, Error> {
    let socket = docker::socket_path()?;
    match docker::inspect(&socket, reference)? {
        docker::Lookup::NoEngine(why) => Ok(Err(why)),
        docker::Lookup::NotFound => Ok(Err(format!(
            "no container of that name or ID at {}",
            socket.display()
        ))),
        docker::Lookup::Found(c) => {
            let name = c.name.trim_start_matches('/').to_string();
            if !c.state.running || c.state.pid == 0 {
                let status = if c.state.status.is_empty() {
                    "not running".to_string()
                } else {
                    c.state.status.clone()
                };
                return Err(Error::Guest(format!(
                    "container {name} ({}) is not running (state: {status}); start it first",
                    &c.id[..c.id.len().min(12)]
                )));
            }
            let netns = open_container_netns(&name, &c.id, c.state.pid)?;
            Ok(Ok(Guest {
                spec: raw.into(),
                engine: Engine::Docker,
                id: Some(c.id),
                name: Some(name),
                pid: Some(c.state.pid),
                netns,
            }))
        }
    }
}

/// Opens a container's namespace by the PID its engine reported, without trusting that PID
/// for longer than it is checked: a pidfd pins the process, its cgroup must name the container
/// (when the cgroup path carries container IDs at all), and the process must still be alive
/// after the namespace is open — so a container that exits and a recycled PID can never send
/// us into another process's namespace.
fn open_container_netns(name: &str, id: &str, pid: u32) -> Result<NetNs, Error> {
    let gone = || {
        Error::Guest(format!(
            "container {name} exited while being resolved (its PID {pid} is gone); start it again"
        ))
    };
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) };
    if raw < 0 {
        return Err(gone());
    }
    // SAFETY: the syscall just returned this fd to us; we own it.
    let pidfd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw as i32) };
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).map_err(|_| gone())?;
    if !cgroup_matches(&cgroup, id) {
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
        assert!(GuestSpec::parse("pid:x").is_err());
        assert!(GuestSpec::parse("pid:0").is_err());
        assert!(GuestSpec::parse("netns:a/b").is_err());
        assert!(GuestSpec::parse("").is_err());
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
