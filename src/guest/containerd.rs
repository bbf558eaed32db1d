//! containerd tasks (`containerd:NAMESPACE/ID`, or `containerd:ID` in namespace "default"),
//! through `ctr --address SOCK --namespace NS task ls`: the task's init PID and status.
//!
//! The socket is `$CONTAINERD_ADDRESS` (a path, `unix://` allowed) when set, else
//! /run/containerd/containerd.sock. IDs exist only within a namespace, so a bare word never
//! looks here.

use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::guest::tool;

pub const DEFAULT_SOCKET: &str = "/run/containerd/containerd.sock";
pub const ADDRESS_ENV: &str = "CONTAINERD_ADDRESS";
pub const DEFAULT_NAMESPACE: &str = "default";

/// containerd's rule for namespaces and IDs (identifiers/validate.go): alphanumerics, with
/// single `.`, `_` or `-` between them, at most 76 characters.
pub fn valid_identifier(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 76
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.windows(2)
            .all(|w| w[0].is_ascii_alphanumeric() || w[1].is_ascii_alphanumeric())
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// Splits `NS/ID` (or `ID`, namespace "default") and checks both parts.
pub fn parse_ref(s: &str) -> Result<(String, String), Error> {
    let (ns, id) = match s.split_once('/') {
        Some((ns, id)) => (ns, id),
        None => (DEFAULT_NAMESPACE, s),
    };
    if !valid_identifier(ns) {
        return Err(Error::Invalid(format!(
            "containerd:{s}: '{ns}' is not a valid containerd namespace (give \
             containerd:NAMESPACE/ID)"
        )));
    }
    if !valid_identifier(id) {
        return Err(Error::Invalid(format!(
            "containerd:{s}: '{id}' is not a valid containerd container ID (give \
             containerd:NAMESPACE/ID)"
        )));
    }
    Ok((ns.to_string(), id.to_string()))
}

/// The daemon's socket: `$CONTAINERD_ADDRESS` (path or `unix://path`), else the default.
pub fn socket_path() -> Result<PathBuf, Error> {
    match std::env::var(ADDRESS_ENV) {
        Ok(a) if !a.is_empty() => {
            let p = a.strip_prefix("unix://").unwrap_or(&a);
            if !p.starts_with('/') {
                return Err(Error::Guest(format!(
                    "{ADDRESS_ENV}={a}: pipework talks to containerd on its local unix socket \
                     (a path such as {DEFAULT_SOCKET})"
                )));
            }
            Ok(PathBuf::from(p))
        }
        _ => Ok(PathBuf::from(DEFAULT_SOCKET)),
    }
}

/// One task as `ctr task ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub pid: u32,
    /// CREATED, RUNNING, PAUSED, PAUSING, STOPPED, UNKNOWN.
    pub status: String,
}

impl Task {
    /// A task whose init process lives (a paused one's namespace is there too).
    pub fn usable(&self) -> bool {
        self.pid > 0 && matches!(self.status.as_str(), "RUNNING" | "PAUSED" | "PAUSING")
    }
}

#[derive(Debug)]
pub enum Lookup {
    Found(Task),
    /// The container exists but has no task (never started, or its task was deleted).
    NoTask,
    /// No such container in that namespace.
    NotFound,
}

/// Finds the task of container `id` in namespace `ns`. A missing tool or daemon is an error
/// that says what to do (this is only reached with the `containerd:` prefix).
pub fn lookup(socket: &Path, ns: &str, id: &str) -> Result<Lookup, Error> {
    let ctr = tool::find("ctr").ok_or_else(|| {
        Error::Guest(format!(
            "containerd:{ns}/{id}: ctr (containerd's client) is not installed; install \
             containerd"
        ))
    })?;
    // Checked first: ctr would otherwise retry a dead socket until its own timeout.
    let is_socket = std::fs::metadata(socket)
        .map(|m| m.file_type().is_socket())
        .unwrap_or(false);
    let answers = if is_socket {
        UnixStream::connect(socket).map(drop)
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no such socket",
        ))
    };
    if let Err(e) = answers {
        return Err(Error::Guest(format!(
            "containerd:{ns}/{id}: no containerd answers at {} ({e}); set {ADDRESS_ENV} to \
             its socket",
            socket.display()
        )));
    }
    let sock = socket.to_string_lossy();
    let base = ["--address", &sock, "--namespace", ns];
    let out = tool::run(&ctr, &[&base[..], &["task", "ls"]].concat())?;
    if !out.success {
        return Err(Error::Guest(format!(
            "`ctr --namespace {ns} task ls` at {sock} failed: {}",
            out.message()
        )));
    }
    if let Some(t) = parse_task_ls(&out.stdout, id) {
        return Ok(Lookup::Found(t));
    }
    // Not a task: a container without one, or nothing at all.
    let info = tool::run(&ctr, &[&base[..], &["containers", "info", id]].concat())?;
    if info.success {
        Ok(Lookup::NoTask)
    } else {
        Ok(Lookup::NotFound)
    }
}

/// The row of task `id` in `ctr task ls` output (`TASK PID STATUS` table).
pub fn parse_task_ls(text: &str, id: &str) -> Option<Task> {
    text.lines().skip(1).find_map(|line| {
        let mut cols = line.split_whitespace();
        if cols.next()? != id {
            return None;
        }
        // 0 is a task without a process (CREATED); anything past the kernel's limit is junk.
        let pid: u32 = cols.next()?.parse().ok()?;
        if pid != 0 && !crate::guest::valid_pid(pid) {
            return None;
        }
        let status = cols.next().unwrap_or("UNKNOWN").to_string();
        Some(Task { pid, status })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LS: &str = "TASK     PID      STATUS    \n\
                      pwtc1    28114    RUNNING\n\
                      pwtc10   28200    STOPPED\n\
                      web      0        CREATED\n";

    #[test]
    fn finds_tasks() {
        assert_eq!(
            parse_task_ls(LS, "pwtc1"),
            Some(Task {
                pid: 28114,
                status: "RUNNING".into()
            })
        );
        let t = parse_task_ls(LS, "pwtc10").unwrap();
        assert!(!t.usable());
        assert!(!parse_task_ls(LS, "web").unwrap().usable());
        assert_eq!(parse_task_ls(LS, "pwtc"), None);
        assert_eq!(parse_task_ls(LS, "TASK"), None);
        assert_eq!(parse_task_ls("TASK    PID    STATUS    \n", "x"), None);
        assert_eq!(parse_task_ls("", "x"), None);
    }

    #[test]
    fn paused_is_usable() {
        let t = parse_task_ls("TASK PID STATUS\nc 5 PAUSED\n", "c").unwrap();
        assert!(t.usable());
    }

    #[test]
    fn references() {
        assert_eq!(
            parse_ref("k8s.io/abc").unwrap(),
            ("k8s.io".into(), "abc".into())
        );
        assert_eq!(parse_ref("c1").unwrap(), ("default".into(), "c1".into()));
        assert!(parse_ref("ns/").is_err());
        assert!(parse_ref("/c1").is_err());
        assert!(parse_ref("ns/a/b").is_err());
        assert!(parse_ref("-x").is_err());
        assert!(parse_ref("ns/--help").is_err());
        assert!(parse_ref("a..b").is_err());
    }

    #[test]
    fn identifiers() {
        assert!(valid_identifier("default"));
        assert!(valid_identifier("my_app.v2-1"));
        assert!(!valid_identifier(""));
        assert!(!valid_identifier("a_"));
        assert!(!valid_identifier("a__b"));
        assert!(!valid_identifier(&"a".repeat(77)));
    }
}
