//! Delegation to an IPAM plugin found in CNI_PATH (SPEC.md section 4): it gets the whole
//! network configuration on stdin with CNI_COMMAND set to the command at hand, run by argv
//! (no shell), its output bounded and its error object passed through. A plugin that speaks
//! an older spec than the configuration (the reference plugins 1.1 stop at 1.0.0) is given the
//! newest version both speak, and its result is read as that version.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::env::{Command as CniCommand, Invocation};
use super::error::{CniError, Code};
use super::version::SUPPORTED;

/// How long a delegated plugin may take (host-local takes milliseconds; dhcp's daemon more).
pub const TIMEOUT: Duration = Duration::from_secs(60);
const MAX_OUTPUT: u64 = 1 << 20;

fn command_name(c: CniCommand) -> &'static str {
    match c {
        CniCommand::Add => "ADD",
        CniCommand::Del => "DEL",
        CniCommand::Check => "CHECK",
        CniCommand::Status => "STATUS",
        CniCommand::Version => "VERSION",
        CniCommand::Gc => "GC",
    }
}

/// The plugin `kind` (a bare file name) in the first CNI_PATH directory that has it.
pub fn find(kind: &str, path: &[PathBuf], version: &str) -> Result<PathBuf, CniError> {
    let bad = |why: String| CniError::new(version, Code::InvalidConfig, "invalid IPAM plugin", why);
    if !super::env::valid_container_id(kind) {
        return Err(bad(format!(
            "ipam.type {kind:?} is not a plugin name (letters, digits, _ . -, no path)"
        )));
    }
    if path.is_empty() {
        return Err(bad(format!(
            "CNI_PATH is not set: cannot find IPAM plugin {kind:?}"
        )));
    }
    path.iter()
        .map(|d| d.join(kind))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| {
            bad(format!(
                "failed to find plugin {kind:?} in path {}",
                path.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":")
            ))
        })
}

/// Runs `plugin` for `cmd` with the invocation's environment and `stdin`; its stdout on
/// success, its own error object (or one made from its stderr) on failure.
pub fn run(
    plugin: &Path,
    cmd: CniCommand,
    inv: &Invocation,
    stdin: &[u8],
    version: &str,
) -> Result<Vec<u8>, CniError> {
    let unreachable = |why: String| {
        CniError::new(
            version,
            Code::Unreachable,
            format!("IPAM plugin {} failed", plugin.display()),
            why,
        )
    };
    let mut c = Command::new(plugin);
    c.env_clear()
        .env("CNI_COMMAND", command_name(cmd))
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    c.env("CNI_CONTAINERID", opt(&inv.container_id))
        .env("CNI_IFNAME", opt(&inv.ifname))
        .env(
            "CNI_NETNS",
            inv.netns
                .as_deref()
                .map(Path::as_os_str)
                .unwrap_or_default(),
        )
        .env(
            "CNI_ARGS",
            inv.args
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(";"),
        )
        .env(
            "CNI_PATH",
            std::env::join_paths(&inv.path).unwrap_or_default(),
        );
    let ran = crate::process::run_bounded(&mut c, Some(stdin), MAX_OUTPUT, TIMEOUT)
        .map_err(|e| unreachable(format!("cannot run it: {e}")))?;
    let crate::process::Ran::Exited {
        status,
        stdout: out,
        stderr: err,
    } = ran
    else {
        return Err(unreachable(format!(
            "no answer within {} s",
            TIMEOUT.as_secs()
        )));
    };
    if out.len() as u64 > MAX_OUTPUT {
        return Err(unreachable(format!(
            "it printed more than {MAX_OUTPUT} bytes"
        )));
    }
    if status.success() {
        return Ok(out);
    }
    // Its own error object, passed through (with our version), else its stderr.
    #[derive(serde::Deserialize)]
    struct Theirs {
        code: u32,
        #[serde(default)]
        msg: String,
        #[serde(default)]
        details: String,
    }
    match serde_json::from_slice::<Theirs>(&out) {
        // The spec's codes mean the same from any plugin; another plugin's own codes (and the
        // reference plugins' catch-all 999) would mean one of ours: they become "the IPAM
        // plugin failed", with its code in the details.
        Ok(t) if matches!(t.code, 1..=7 | 11 | 50 | 51) => Err(CniError {
            cni_version: version.to_string(),
            code: t.code,
            msg: t.msg,
            details: t.details,
        }),
        Ok(t) => Err(CniError::new(
            version,
            Code::Unreachable,
            t.msg,
            format!(
                "IPAM plugin {} failed with its code {}{}{}",
                plugin.display(),
                t.code,
                if t.details.is_empty() { "" } else { ": " },
                t.details
            ),
        )),
        Err(_) => Err(unreachable(format!(
            "{status}: {}",
            String::from_utf8_lossy(&err).trim()
        ))),
    }
}

/// The newest version both the configuration's and the plugin's lists have; `asked` itself
/// when the plugin speaks it.
pub fn common_version<'a>(asked: &'a str, theirs: &[String]) -> Option<&'a str> {
    if theirs.iter().any(|v| v == asked) {
        return Some(asked);
    }
    let pos = SUPPORTED.iter().position(|v| *v == asked)?;
    SUPPORTED[..pos]
        .iter()
        .rev()
        .copied()
        .find(|v| theirs.iter().any(|t| t == v))
}

/// What a plugin file is: the same path, inode, size and change time mean the same binary.
fn identity(plugin: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(plugin).ok()?;
    Some(format!(
        "{} {} {} {}.{}",
        plugin.display(),
        m.ino(),
        m.size(),
        m.ctime(),
        m.ctime_nsec()
    ))
}

/// The versions a plugin speaks (its VERSION answer), remembered per plugin binary in the
/// runtime directory: asking costs one more exec of it on every ADD and DEL otherwise.
pub fn versions_of(plugin: &Path, inv: &Invocation, version: &str) -> Vec<String> {
    let id = identity(plugin);
    let file = id.as_ref().map(|id| {
        use md5::{Digest, Md5};
        let h: String = Md5::digest(id.as_bytes())[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        crate::store::runtime_dir().join("cni-versions").join(h)
    });
    if let (Some(id), Some(f)) = (&id, &file) {
        if let Some(v) = read_cached(f, id) {
            return v;
        }
    }
    let probe = serde_json::json!({ "cniVersion": version }).to_string();
    let theirs: Vec<String> = run(plugin, CniCommand::Version, inv, probe.as_bytes(), version)
        .ok()
        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o).ok())
        .and_then(|v| serde_json::from_value(v["supportedVersions"].clone()).ok())
        .unwrap_or_default();
    if let (Some(id), Some(f), false) = (&id, &file, theirs.is_empty()) {
        let entry = serde_json::json!({ "plugin": id, "supportedVersions": theirs });
        // Best effort: without it, the next call asks again.
        let _ = crate::store::write_atomic(f, entry.to_string().as_bytes());
    }
    theirs
}

/// A cache entry, if it is about this very binary (a regular, small file of ours).
fn read_cached(f: &Path, id: &str) -> Option<Vec<String>> {
    let m = std::fs::symlink_metadata(f).ok()?;
    if !m.is_file() || m.len() > 4096 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(f).ok()?).ok()?;
    if v["plugin"].as_str() != Some(id) {
        return None;
    }
    let list: Vec<String> = serde_json::from_value(v["supportedVersions"].clone()).ok()?;
    // Only versions pipework knows are worth anything; an entry of others is ignored.
    list.iter()
        .all(|x| x.len() < 16)
        .then_some(list)
        .filter(|l| !l.is_empty())
}

/// Delegates `cmd` to the configuration's IPAM plugin: `conf` is the whole configuration as
/// the runtime gave it. Returns the plugin's stdout and the version it answered in.
pub fn delegate(
    kind: &str,
    cmd: CniCommand,
    inv: &Invocation,
    conf: &serde_json::Value,
    version: &str,
) -> Result<(Vec<u8>, String), CniError> {
    let plugin = find(kind, &inv.path, version)?;
    let theirs = versions_of(&plugin, inv, version);
    let speak = common_version(version, &theirs).ok_or_else(|| {
        CniError::new(
            version,
            Code::IncompatibleVersion,
            format!("IPAM plugin {kind} speaks no version pipework does"),
            format!("it speaks {}", theirs.join(", ")),
        )
    })?;
    // GC and STATUS are 1.1.0's: a plugin that stops before it has neither.
    if matches!(cmd, CniCommand::Gc | CniCommand::Status) && !theirs.iter().any(|t| t == "1.1.0") {
        return Err(CniError::new(
            version,
            Code::IncompatibleVersion,
            format!("IPAM plugin {kind} has no {}", command_name(cmd)),
            format!("it speaks {}", theirs.join(", ")),
        ));
    }
    let mut conf = conf.clone();
    conf["cniVersion"] = speak.into();
    let out = run(&plugin, cmd, inv, conf.to_string().as_bytes(), version)?;
    Ok((out, speak.to_string()))
}

#[cfg(test)]
mod tests {
    //! Root-free, against the real reference plugins (containernetworking-plugins) when they
    //! are installed; host-local keeps its leases in a temporary dataDir.
    use super::*;
    use crate::cni::result::CniResult;

    const PLUGINS: &str = "/usr/lib/cni";

    fn have_host_local() -> bool {
        Path::new(PLUGINS).join("host-local").is_file()
    }

    fn inv(cmd: CniCommand) -> Invocation {
        Invocation {
            command: cmd,
            container_id: Some("pwtest1".into()),
            netns: Some("/proc/self/ns/net".into()),
            ifname: Some("eth0".into()),
            args: vec![],
            path: vec![PathBuf::from("/nonexistent"), PathBuf::from(PLUGINS)],
        }
    }

    #[test]
    fn plugin_names_and_paths() {
        let i = inv(CniCommand::Add);
        for bad in ["../host-local", "/usr/lib/cni/host-local", "", "a b"] {
            assert_eq!(find(bad, &i.path, "1.1.0").unwrap_err().code, 7, "{bad:?}");
        }
        let e = find("no-such-plugin", &i.path, "1.1.0").unwrap_err();
        assert!(e.details.contains("failed to find plugin") && e.details.contains(PLUGINS));
        assert_eq!(find("host-local", &[], "1.1.0").unwrap_err().code, 7);
    }

    #[test]
    fn versions_are_negotiated_down() {
        let theirs: Vec<String> = ["0.3.1", "0.4.0", "1.0.0"].map(String::from).to_vec();
        assert_eq!(common_version("1.1.0", &theirs), Some("1.0.0"));
        assert_eq!(common_version("0.4.0", &theirs), Some("0.4.0"));
        assert_eq!(common_version("1.1.0", &["0.1.0".to_string()]), None);
        assert_eq!(common_version("1.1.0", &[]), None);
    }

    #[test]
    fn versions_are_remembered_per_plugin_binary() {
        if !have_host_local() {
            println!("SKIP: no {PLUGINS}/host-local (containernetworking-plugins)");
            return;
        }
        // nextest runs each test in its own process: the variable is this test's alone.
        let rt = std::env::temp_dir().join(format!("pwt-vc-{}", std::process::id()));
        std::env::set_var("PIPEWORK_RUNTIME_DIR", &rt);
        let plugin = Path::new(PLUGINS).join("host-local");
        let i = inv(CniCommand::Add);
        let first = versions_of(&plugin, &i, "1.1.0");
        assert!(first.iter().any(|v| v == "1.0.0"), "{first:?}");
        let dir = rt.join("cni-versions");
        let files: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
        assert_eq!(files.len(), 1);
        assert_eq!(versions_of(&plugin, &i, "1.1.0"), first, "read back");
        // An entry about another binary (the plugin was replaced) is not believed.
        let f = files[0].path();
        let forged = serde_json::json!({"plugin": "other", "supportedVersions": ["9.9.9"]});
        std::fs::write(&f, forged.to_string()).unwrap();
        assert_eq!(versions_of(&plugin, &i, "1.1.0"), first);
        std::fs::remove_dir_all(&rt).unwrap();
    }

    #[test]
    fn host_local_add_then_del() {
        if !have_host_local() {
            println!("SKIP: no {PLUGINS}/host-local (containernetworking-plugins)");
            return;
        }
        let data = std::env::temp_dir().join(format!("pw-cni-ipam-{}", std::process::id()));
        let conf = serde_json::json!({
            "cniVersion": "1.1.0", "name": "pwtest", "type": "pipework",
            "ipam": {"type": "host-local", "subnet": "10.99.7.0/24", "dataDir": data},
        });
        let (out, spoke) = delegate(
            "host-local",
            CniCommand::Add,
            &inv(CniCommand::Add),
            &conf,
            "1.1.0",
        )
        .unwrap();
        let r = CniResult::decode(&out, &spoke).unwrap();
        assert_eq!(r.ips.len(), 1, "{}", String::from_utf8_lossy(&out));
        assert!(r.ips[0].address.to_string().starts_with("10.99.7."));
        assert!(
            data.join("pwtest").is_dir(),
            "host-local keeps its lease in our dataDir"
        );
        delegate(
            "host-local",
            CniCommand::Del,
            &inv(CniCommand::Del),
            &conf,
            "1.1.0",
        )
        .unwrap();
        let left: Vec<_> = std::fs::read_dir(data.join("pwtest"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("10."))
            .collect();
        assert!(left.is_empty(), "DEL released the address: {left:?}");
        // The plugin's own error object comes through: a subnet it cannot parse.
        let mut broken = conf.clone();
        broken["ipam"]["subnet"] = "10.99.7.0/99".into();
        let e = delegate(
            "host-local",
            CniCommand::Add,
            &inv(CniCommand::Add),
            &broken,
            "1.1.0",
        )
        .unwrap_err();
        assert_eq!(
            e.code, 102,
            "the reference plugin's 999 is not passed on: {e:?}"
        );
        assert!(
            e.msg.contains("invalid CIDR") && e.details.contains("999"),
            "{e:?}"
        );
        let _ = std::fs::remove_dir_all(&data);
    }
}
