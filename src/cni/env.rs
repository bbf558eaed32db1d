//! The CNI environment (SPEC.md section 2): which variables each command needs, and their
//! checks. Every problem is error 4 naming the variable, before anything is touched.

use std::path::PathBuf;

use super::error::{CniError, Code};
use super::version::CURRENT;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Status,
    Version,
    Gc,
}

impl Command {
    fn parse(s: &str) -> Option<Command> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "STATUS" => Command::Status,
            "VERSION" => Command::Version,
            "GC" => Command::Gc,
            _ => return None,
        })
    }

    /// The variables the spec requires for the command (besides CNI_COMMAND).
    fn required(self) -> &'static [&'static str] {
        match self {
            Command::Add | Command::Check => &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
            // DEL may come after the namespace is gone: CNI_NETNS is optional then.
            Command::Del => &["CNI_CONTAINERID", "CNI_IFNAME"],
            Command::Gc => &["CNI_PATH"],
            Command::Status | Command::Version => &[],
        }
    }
}

/// What the runtime said in the environment, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub command: Command,
    pub container_id: Option<String>,
    pub netns: Option<PathBuf>,
    pub ifname: Option<String>,
    /// CNI_ARGS, `K=V;K=V`, in order.
    pub args: Vec<(String, String)>,
    /// CNI_PATH: where delegated plugins (IPAM) are looked for.
    pub path: Vec<PathBuf>,
}

fn bad(var: &str, why: impl std::fmt::Display) -> CniError {
    CniError::new(
        CURRENT,
        Code::InvalidEnvironment,
        format!("invalid {var}"),
        format!("{var}: {why}"),
    )
}

/// The spec's rule for container IDs (and network names): an alphanumeric, then
/// alphanumerics, `_`, `.` or `-`.
pub fn valid_container_id(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphanumeric())
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// An interface name the kernel takes: 1–15 bytes, not `.` or `..`, no `/`, `:`, NUL or
/// whitespace (a NUL would cut the name short in the kernel's C string: JSON and a test's
/// environment can carry one).
pub fn ifname_problem(s: &str) -> Option<&'static str> {
    if s.is_empty() {
        Some("is empty")
    } else if s.len() > crate::naming::MAX_IFNAME {
        Some("is longer than 15 bytes")
    } else if s == "." || s == ".." {
        Some("may not be . or ..")
    } else if s
        .chars()
        .any(|c| c == '/' || c == ':' || c == '\0' || c.is_whitespace())
    {
        Some("may not contain /, :, NUL or whitespace")
    } else {
        None
    }
}

/// Reads and checks the environment through `get` (the process's, or a test's).
pub fn parse(get: &dyn Fn(&str) -> Option<String>) -> Result<Invocation, CniError> {
    let command = match get("CNI_COMMAND") {
        None => return Err(bad("CNI_COMMAND", "is not set")),
        Some(c) => Command::parse(&c).ok_or_else(|| {
            bad(
                "CNI_COMMAND",
                format!("{c:?} is none of ADD, DEL, CHECK, STATUS, VERSION, GC"),
            )
        })?,
    };
    if command == Command::Version {
        // VERSION reads nothing else: libcni sends it with CNI_NETNS, CNI_IFNAME and CNI_PATH
        // set to "dummy" (Podman validates every conflist that way).
        return Ok(Invocation {
            command,
            container_id: None,
            netns: None,
            ifname: None,
            args: Vec::new(),
            path: Vec::new(),
        });
    }
    let value = |var: &str| get(var).filter(|v| !v.is_empty());
    for var in command.required() {
        if value(var).is_none() {
            return Err(bad(var, "is required for this command and is not set"));
        }
    }
    let container_id = value("CNI_CONTAINERID");
    if let Some(id) = &container_id {
        if !valid_container_id(id) {
            return Err(bad(
                "CNI_CONTAINERID",
                format!("{id:?} must start with a letter or digit, then letters, digits, _ . or -"),
            ));
        }
    }
    let ifname = value("CNI_IFNAME");
    if let Some(n) = &ifname {
        if let Some(why) = ifname_problem(n) {
            return Err(bad("CNI_IFNAME", format!("{n:?} {why}")));
        }
    }
    let netns = value("CNI_NETNS").map(PathBuf::from);
    if let Some(p) = &netns {
        if !p.is_absolute() {
            return Err(bad(
                "CNI_NETNS",
                format!("{} is not an absolute path", p.display()),
            ));
        }
    }
    let mut args = Vec::new();
    for pair in value("CNI_ARGS").iter().flat_map(|a| a.split(';')) {
        if pair.is_empty() {
            continue;
        }
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| bad("CNI_ARGS", format!("{pair:?} is not KEY=VALUE")))?;
        if k.is_empty() {
            return Err(bad("CNI_ARGS", format!("{pair:?} has no key")));
        }
        args.push((k.to_string(), v.to_string()));
    }
    let path = value("CNI_PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .filter(|d| !d.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default();
    Ok(Invocation {
        command,
        container_id,
        netns,
        ifname,
        args,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(pairs: &[(&str, &str)]) -> Result<Invocation, CniError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse(&|k| m.get(k).cloned())
    }

    const ADD: [(&str, &str); 5] = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "abc123"),
        ("CNI_NETNS", "/var/run/netns/x"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
    ];

    fn names(e: CniError, var: &str) {
        assert_eq!(e.code, 4, "{e:?}");
        assert!(e.details.starts_with(var), "{var}: {e:?}");
    }

    #[test]
    fn a_complete_add() {
        let i = with(&ADD).unwrap();
        assert_eq!(i.command, Command::Add);
        assert_eq!(i.ifname.as_deref(), Some("eth0"));
        assert_eq!(
            i.path,
            [PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")]
        );
    }

    #[test]
    fn required_variables_are_named() {
        names(with(&[]).unwrap_err(), "CNI_COMMAND");
        names(with(&[("CNI_COMMAND", "add")]).unwrap_err(), "CNI_COMMAND");
        for missing in ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"] {
            let env: Vec<_> = ADD.iter().copied().filter(|(k, _)| *k != missing).collect();
            names(with(&env).unwrap_err(), missing);
        }
        // DEL without a namespace is fine (it may be gone); GC needs CNI_PATH.
        with(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "a"),
            ("CNI_IFNAME", "eth0"),
        ])
        .unwrap();
        names(with(&[("CNI_COMMAND", "GC")]).unwrap_err(), "CNI_PATH");
        with(&[("CNI_COMMAND", "VERSION")]).unwrap();
        with(&[("CNI_COMMAND", "STATUS")]).unwrap();
    }

    #[test]
    fn version_ignores_libcnis_dummy_values() {
        // What libcni (Podman 4.3's conflist validation) sends with VERSION.
        let i = with(&[
            ("CNI_COMMAND", "VERSION"),
            ("CNI_CONTAINERID", ""),
            ("CNI_NETNS", "dummy"),
            ("CNI_IFNAME", "dummy"),
            ("CNI_PATH", "dummy"),
            ("CNI_ARGS", ""),
        ])
        .unwrap();
        assert_eq!(i.command, Command::Version);
    }

    #[test]
    fn values_are_checked() {
        let set = |k: &str, v: &'static str| {
            let mut env: Vec<(&str, &str)> = ADD.iter().copied().filter(|(x, _)| *x != k).collect();
            env.push((k, v));
            with(&env)
        };
        for id in ["-abc", "a/b", "a b", "é1", "../x"] {
            names(set("CNI_CONTAINERID", id).unwrap_err(), "CNI_CONTAINERID");
        }
        set("CNI_CONTAINERID", "a_b.c-9").unwrap();
        // "\0\0\0eth0": found by fuzz/cni_env (fuzz/corpus/cni_env/regress-nul-ifname).
        for n in [
            "a23456789012345x",
            ".",
            "..",
            "e/1",
            "e:1",
            "e 1",
            "e\t1",
            "\0\0\0eth0",
            "eth\x000",
        ] {
            names(set("CNI_IFNAME", n).unwrap_err(), "CNI_IFNAME");
        }
        set("CNI_IFNAME", "a23456789012345").unwrap();
        names(set("CNI_NETNS", "netns/x").unwrap_err(), "CNI_NETNS");
        names(
            set("CNI_ARGS", "IgnoreUnknown=1;junk").unwrap_err(),
            "CNI_ARGS",
        );
        names(set("CNI_ARGS", "=1").unwrap_err(), "CNI_ARGS");
        let i = set("CNI_ARGS", "IgnoreUnknown=1;;MAC=02:00:00:00:00:01").unwrap();
        assert_eq!(
            i.args,
            [
                ("IgnoreUnknown".to_string(), "1".to_string()),
                ("MAC".to_string(), "02:00:00:00:00:01".to_string())
            ]
        );
    }
}
