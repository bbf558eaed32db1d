//! LXC containers by name, through `lxc-info` (liblxc finds the container's init process on
//! cgroup v1 and v2 hosts alike; we never guess cgroup paths ourselves).
//!
//! The LXC path (where containers are defined) is, in this order: `$LXC_PATH`, else
//! `lxc.lxcpath` in the system's /etc/lxc/lxc.conf (what `lxc-config lxc.lxcpath` reads for
//! root — read directly: a bare word's lookup must not spawn a process), else /var/lib/lxc.
//!
//! `lxc-info` asks the container's monitor over an abstract unix socket, and abstract sockets
//! belong to a network namespace: pipework must run in the namespace `lxc-start` ran in (the
//! host's, normally), or a running container looks STOPPED.

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::guest::tool;

pub const DEFAULT_LXC_PATH: &str = "/var/lib/lxc";
pub const LXC_PATH_ENV: &str = "LXC_PATH";

/// What `lxc-info` said about a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// RUNNING, STOPPED, FROZEN, STARTING, STOPPING, ABORTING, THAWED.
    pub state: String,
    pub pid: Option<u32>,
}

impl Info {
    /// Whether the container has an init process whose namespace can be plumbed (a frozen
    /// container's namespace is there; only its processes are paused).
    pub fn usable(&self) -> bool {
        matches!(self.state.as_str(), "RUNNING" | "FROZEN" | "THAWED") && self.pid.is_some()
    }
}

/// The answer for one name.
#[derive(Debug)]
pub enum Lookup {
    Found(Info),
    /// LXC does not know this name (the text says where we looked).
    NotFound(String),
    /// LXC is not installed (the text says what is missing).
    NoTool(String),
}

/// LXC names: no '/', not empty, nothing that `lxc-info` would take for an option.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty() && !s.starts_with('-') && !s.contains('/') && s != "." && s != ".."
}

/// `lxc-info`, when installed.
pub fn lxc_info() -> Option<PathBuf> {
    tool::find("lxc-info")
}

/// The system's LXC configuration file.
const LXC_CONF: &str = "/etc/lxc/lxc.conf";

/// The LXC path: `$LXC_PATH`, else `lxc.lxcpath` of /etc/lxc/lxc.conf, else /var/lib/lxc.
pub fn lxc_path() -> PathBuf {
    if let Some(p) = std::env::var_os(LXC_PATH_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    std::fs::read_to_string(LXC_CONF)
        .ok()
        .and_then(|c| conf_lxcpath(&c))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_LXC_PATH))
}

/// `lxc.lxcpath = /path` in lxc.conf syntax (the last one wins, as in LXC).
fn conf_lxcpath(conf: &str) -> Option<PathBuf> {
    conf.lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.trim() == "lxc.lxcpath")
        .map(|(_, v)| v.trim().to_string())
        .rfind(|v| v.starts_with('/'))
        .map(PathBuf::from)
}

/// Whether `name` is defined under `lxcpath` (has a directory there): a cheap test that spares
/// a bare word's lookup the `lxc-info` process when there is no such container.
pub fn defined(lxcpath: &Path, name: &str) -> bool {
    valid_name(name) && lxcpath.join(name).is_dir()
}

/// Asks `lxc-info -P PATH -n NAME -s -p` about the container.
pub fn info(lxcpath: &Path, name: &str) -> Result<Lookup, Error> {
    if !valid_name(name) {
        return Err(Error::Invalid(format!(
            "'{name}' is not a valid LXC container name"
        )));
    }
    let Some(tool) = lxc_info() else {
        return Ok(Lookup::NoTool(
            "LXC is not installed (no lxc-info on PATH)".into(),
        ));
    };
    let path = lxcpath.to_string_lossy();
    let out = tool::run(&tool, &["-P", &path, "-n", name, "-s", "-p"])?;
    if !out.success {
        let msg = out.message();
        if msg.contains("doesn't exist") || msg.contains("does not exist") {
            return Ok(Lookup::NotFound(format!(
                "no LXC container of that name in {path} (set {LXC_PATH_ENV} for another LXC \
                 path; `lxc-ls -P {path}` lists them)"
            )));
        }
        return Err(Error::Guest(format!(
            "lxc-info could not inspect LXC container {name} in {path}: {msg}"
        )));
    }
    parse_info(&out.stdout).map(Lookup::Found).ok_or_else(|| {
        Error::Guest(format!(
            "unexpected answer from lxc-info for LXC container {name}: {:?}",
            out.stdout.trim()
        ))
    })
}

/// Parses `State: RUNNING` / `PID: 123` lines (with or without labels' padding).
pub fn parse_info(text: &str) -> Option<Info> {
    let mut state = None;
    let mut pid = None;
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        match k.trim() {
            "State" => state = Some(v.trim().to_string()),
            "PID" => {
                pid = v
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|p| crate::guest::valid_pid(*p))
            }
            _ => {}
        }
    }
    Some(Info { state: state?, pid })
}

/// Whether a /proc/PID/cgroup text belongs to LXC container `name`: it names the container
/// (`lxc.payload.NAME`, LXC 4+; `/lxc/NAME`, older), or it names no LXC container at all
/// (custom cgroup patterns), so a recycled PID in another LXC container is refused.
pub fn cgroup_matches(cgroup: &str, name: &str) -> bool {
    let ends = |rest: &str| rest.is_empty() || rest.starts_with('/') || rest.starts_with('\n');
    let names = |marker: &str| {
        let needle = format!("{marker}{name}");
        cgroup
            .match_indices(&needle)
            .any(|(i, _)| ends(&cgroup[i + needle.len()..]))
    };
    if names("lxc.payload.") || names("/lxc/") {
        return true;
    }
    !(cgroup.contains("lxc.payload.") || cgroup.contains("/lxc/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lxcpath_from_conf() {
        assert_eq!(
            conf_lxcpath("# c\nlxc.lxcpath = /srv/lxc\n"),
            Some(PathBuf::from("/srv/lxc"))
        );
        assert_eq!(
            conf_lxcpath("lxc.lxcpath=/a\nlxc.lxcpath = /b"),
            Some(PathBuf::from("/b"))
        );
        assert_eq!(conf_lxcpath("lxc.bdev.lvm.vg = x"), None);
    }

    #[test]
    fn parses_running() {
        let i = parse_info("State:          RUNNING\nPID:            2962\n").unwrap();
        assert_eq!(
            i,
            Info {
                state: "RUNNING".into(),
                pid: Some(2962)
            }
        );
        assert!(i.usable());
    }

    #[test]
    fn parses_stopped_and_frozen() {
        let i = parse_info("State:          STOPPED\n").unwrap();
        assert_eq!(i.pid, None);
        assert!(!i.usable());
        let f = parse_info("State:          FROZEN\nPID:            7\n").unwrap();
        assert!(f.usable());
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse_info(""), None);
        assert_eq!(parse_info("PID: 5\n"), None);
        let i = parse_info("State: RUNNING\nPID: x\n").unwrap();
        assert!(!i.usable());
    }

    #[test]
    fn names() {
        assert!(valid_name("c1"));
        assert!(valid_name("my.container_1"));
        assert!(!valid_name(""));
        assert!(!valid_name("-n"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(".."));
    }

    #[test]
    fn cgroup_identity() {
        let v2 = "0::/lxc.payload.c1\n";
        assert!(cgroup_matches(v2, "c1"));
        assert!(!cgroup_matches(v2, "c"));
        assert!(!cgroup_matches("0::/lxc.payload.c10\n", "c1"));
        assert!(cgroup_matches(
            "4:memory:/lxc.payload.c1/init.scope\n0::/lxc.payload.c1\n",
            "c1"
        ));
        assert!(cgroup_matches("3:cpu:/lxc/web\n", "web"));
        assert!(!cgroup_matches("3:cpu:/lxc/other\n", "web"));
        assert!(cgroup_matches("0::/user.slice/x.scope\n", "web"));
    }
}
