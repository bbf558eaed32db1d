//! Attachment records: one small JSON file per attachment pipework made, under
//! `<runtime>/attachments/` (`/run/pipework` by default, tmpfs: records die with the host's
//! boot, like the interfaces they describe). One file per attachment, written to a temporary
//! name and renamed into place: concurrent runs never share a file, and a reader never sees
//! half of one. `ls`, `detach` and `gc` reconcile them with the live kernel state.
//!
//! Format (version 1): the attach's `--json` report plus what undoing it needs:
//! `{"version":1,"created":<unix s>,"attachment":{…report…},"undo":{…}}`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::addressing::dhcp::runtime_dir;
use crate::addressing::dhcp::supervisor::write_atomic;
use crate::error::Error;
use crate::netlink::Netlink;

pub const VERSION: u32 = 1;

/// What undoing an attachment needs beyond its report.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct UndoInfo {
    /// An 802.1Q child this attachment created (removed when no longer used).
    #[serde(default)]
    pub vlan_created: Option<String>,
    /// A NIC moved into the guest: its host name, MAC, MTU, addresses, state (and phy).
    #[serde(default)]
    pub moved_nic: Option<crate::plan::NicState>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    pub created: u64,
    pub attachment: Attachment,
    #[serde(default)]
    pub undo: UndoInfo,
}

/// The parts of the attach report that `ls`/`detach`/`gc` use (the report has more).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attachment {
    pub kind: String,
    pub guest: GuestRef,
    pub netns: NetnsRef,
    pub host_interface: String,
    pub host_interface_created: bool,
    pub host_ifname: Option<String>,
    pub guest_ifname: String,
    pub mac: Option<String>,
    #[serde(default)]
    pub vlan: Option<u16>,
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub dhcp: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GuestRef {
    pub spec: String,
    pub engine: String,
    pub id: Option<String>,
    pub name: Option<String>,
    pub pid: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetnsRef {
    pub path: String,
    pub inode: u64,
}

/// What a plan will need undone later, beyond its report.
pub fn undo_info(plan: &crate::plan::Plan) -> UndoInfo {
    use crate::plan::Op;
    let mut u = UndoInfo::default();
    for s in &plan.steps {
        match &s.op {
            Op::CreateVlan { name, .. } => u.vlan_created = Some(name.clone()),
            Op::MoveToGuest { nic, .. } => u.moved_nic = Some(nic.clone()),
            _ => {}
        }
    }
    u
}

/// Host interfaces pipework created (a bridge, an OVS bridge, a VLAN child), remembered apart
/// from the attachment that created them: whichever attachment is undone last removes them.
fn created_marker(what: &str, name: &str) -> PathBuf {
    runtime_dir().join("created").join(format!("{what}-{name}"))
}

/// Returns the marker's path (removed again if the attach rolls back). It holds the link's
/// ifindex: a link of the same name made later by someone else is not ours.
pub fn mark_created(host: &mut Netlink, what: &str, name: &str) -> Result<PathBuf, Error> {
    let p = created_marker(what, name);
    let index = crate::driver::get_link(host, name)?
        .map(|l| l.header.index.to_string())
        .unwrap_or_default();
    write_atomic(&p, index.as_bytes())?;
    Ok(p)
}

pub fn was_created(host: &mut Netlink, what: &str, name: &str) -> bool {
    let Ok(marked) = std::fs::read_to_string(created_marker(what, name)) else {
        return false;
    };
    let now = crate::driver::get_link(host, name)
        .ok()
        .flatten()
        .map(|l| l.header.index.to_string());
    match now {
        Some(i) => marked.is_empty() || marked == i,
        // Gone already: the marker is stale.
        None => {
            unmark_created(what, name);
            false
        }
    }
}

/// Serialises attaches (shared) against detach/gc (exclusive): a detach never deletes a
/// bridge an attach is about to use, and two detaches agree on who is last.
pub fn lock(exclusive: bool) -> Result<std::fs::File, Error> {
    use std::os::fd::AsRawFd;
    let path = runtime_dir().join("lock");
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)
            .map_err(|e| Error::io(format!("cannot create {}", d.display()), e))?;
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
    let op = if exclusive {
        libc::LOCK_EX
    } else {
        libc::LOCK_SH
    };
    // SAFETY: flock on an fd we own; released when the file is closed.
    if unsafe { libc::flock(f.as_raw_fd(), op) } != 0 {
        return Err(Error::io(
            format!("cannot lock {}", path.display()),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(f)
}

pub fn unmark_created(what: &str, name: &str) {
    let _ = std::fs::remove_file(created_marker(what, name));
}

pub fn dir() -> PathBuf {
    runtime_dir().join("attachments")
}

/// `<dir>/<netns inode>-<guest ifname>.json`: one attachment, one file.
pub fn path_for(inode: u64, guest_ifname: &str) -> PathBuf {
    dir().join(format!("{inode}-{guest_ifname}.json"))
}

pub fn write(path: &Path, report: &serde_json::Value, undo: &UndoInfo) -> Result<(), Error> {
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let v = serde_json::json!({
        "version": VERSION,
        "created": created,
        "attachment": report,
        "undo": undo,
    });
    write_atomic(path, v.to_string().as_bytes())
}

/// Every readable record, with its file. Records of another version are skipped.
pub fn read_all() -> Vec<(PathBuf, Record)> {
    let Ok(entries) = std::fs::read_dir(dir()) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, Record)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p| {
            let r: Record = serde_json::from_slice(&std::fs::read(&p).ok()?).ok()?;
            (r.version == VERSION).then_some((p, r))
        })
        .collect();
    out.sort_by(|a, b| (a.1.created, &a.0).cmp(&(b.1.created, &b.0)));
    out
}

/// Whether the guest of a record still exists: its process still holds the same namespace,
/// or its namespace file is still that namespace.
pub fn guest_alive(r: &Record) -> bool {
    use std::os::unix::fs::MetadataExt;
    let inode = r.attachment.netns.inode;
    let same = |p: &str| {
        std::fs::metadata(p)
            .map(|m| m.ino() == inode)
            .unwrap_or(false)
    };
    match r.attachment.guest.pid {
        Some(pid) => {
            let p = format!("/proc/{pid}/ns/net");
            match std::fs::metadata(&p) {
                Ok(m) => m.ino() == inode,
                // Not ours to inspect (not root): the process existing is all we can tell.
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    std::path::Path::new(&format!("/proc/{pid}")).exists()
                }
                Err(_) => false,
            }
        }
        None => same(&r.attachment.netns.path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip_keeps_what_detach_needs() {
        let report = serde_json::json!({
            "kind": "bridge",
            "guest": {"spec": "web1", "engine": "docker", "id": "abc", "name": "web1", "pid": 42},
            "netns": {"path": "/proc/42/ns/net", "inode": 4026532000u64},
            "host_interface": "br1", "host_interface_created": true,
            "host_ifname": "veth1pl42", "guest_ifname": "eth1", "mac": "02:00:00:00:00:01",
            "mtu": 1500, "vlan": null, "addresses": ["10.0.0.2/24"], "dhcp": null,
            "extra_field_of_a_newer_report": 1
        });
        let v = serde_json::json!({"version": 1, "created": 5, "attachment": report,
                                   "undo": UndoInfo::default()});
        let r: Record = serde_json::from_value(v).unwrap();
        assert_eq!(r.attachment.host_ifname.as_deref(), Some("veth1pl42"));
        assert!(r.attachment.host_interface_created);
        assert_eq!(r.attachment.netns.inode, 4026532000);
    }
}
