//! A lab on disk: its state (what the last apply made, and the request it applied) and the
//! write-ahead journal of an apply in progress.
//!
//! `<runtime>/labs/LAB.json` is replaced atomically when an apply commits; `LAB.journal` gets
//! one JSON line per change *before* the change, under an flock. The journal's first line
//! names its transaction; the state names the last committed one. So a journal left behind
//! is either committed (the state names it: only the file is left to remove) or not (a killed
//! apply: replayed backwards by the next apply, destroy or gc).

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::lab::{CrossEnd, LabAttach, LabLink, LabRequest, LabRoute, StretchedBridge};
use crate::store;

pub const VERSION: u32 = 1;
/// A state or journal larger than this is not ours.
const MAX_FILE: u64 = 64 << 20;

pub fn dir() -> PathBuf {
    store::runtime_dir().join("labs")
}

pub fn state_path(lab: &str) -> PathBuf {
    dir().join(format!("{lab}.json"))
}

pub fn journal_path(lab: &str) -> PathBuf {
    dir().join(format!("{lab}.journal"))
}

fn lock_path(lab: &str) -> PathBuf {
    dir().join(format!("{lab}.lock"))
}

/// A namespace as a state remembers it: where, and which (its inode tells a namespace
/// re-created under the same name from the one the lab used).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsRef {
    pub path: String,
    pub inode: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MadeBridge {
    pub name: String,
    pub ovs: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MadeAttach {
    pub attach: LabAttach,
    pub netns: NsRef,
    /// The engine's record of it (its own journal: what tears it down).
    pub record: PathBuf,
    pub host_ifname: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MadeLink {
    pub link: LabLink,
    pub netns: [NsRef; 2],
}

/// This host's VXLAN end of a cross-host link, in its guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MadeCross {
    pub end: CrossEnd,
    pub netns: NsRef,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MadeRoute {
    pub route: LabRoute,
    pub netns: NsRef,
}

/// What the lab has made, as of its last committed apply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabState {
    pub version: u32,
    pub lab: String,
    /// The host namespace (inode) it was applied from.
    pub host_netns: u64,
    /// The last committed transaction.
    pub txn: u64,
    /// Named namespaces the lab created.
    pub netns: Vec<String>,
    /// Bridges the lab created (external and pre-existing ones are not here).
    pub bridges: Vec<MadeBridge>,
    pub attach: Vec<MadeAttach>,
    pub links: Vec<MadeLink>,
    pub routes: Vec<MadeRoute>,
    /// VXLAN ports of stretched bridges (in the host namespace), as made.
    #[serde(default)]
    pub vxlans: Vec<StretchedBridge>,
    #[serde(default)]
    pub cross: Vec<MadeCross>,
    /// The guests' keys and specs of the last apply (what `ls --lab` shows).
    #[serde(default)]
    pub request: Option<LabRequest>,
}

impl LabState {
    pub fn is_empty(&self) -> bool {
        self.netns.is_empty()
            && self.bridges.is_empty()
            && self.attach.is_empty()
            && self.links.is_empty()
            && self.routes.is_empty()
            && self.vxlans.is_empty()
            && self.cross.is_empty()
    }
}

pub fn parse_state(bytes: &[u8]) -> Result<LabState, String> {
    let s: LabState = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if s.version != VERSION {
        return Err(format!(
            "state version {} (this pipework reads {VERSION})",
            s.version
        ));
    }
    Ok(s)
}

fn read_bounded(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    use std::io::Read;
    let f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("cannot open {}", path.display()), e)),
    };
    let mut buf = Vec::new();
    f.take(MAX_FILE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    if buf.len() as u64 > MAX_FILE {
        return Err(Error::Internal(format!(
            "{} is larger than {MAX_FILE} bytes: not a lab file of pipework's",
            path.display()
        )));
    }
    Ok(Some(buf))
}

/// The lab's committed state (an empty one when the lab was never applied).
pub fn read_state(lab: &str) -> Result<LabState, Error> {
    let path = state_path(lab);
    match read_bounded(&path)? {
        None => Ok(LabState {
            version: VERSION,
            lab: lab.to_string(),
            ..LabState::default()
        }),
        Some(b) => parse_state(&b)
            .map_err(|e| Error::Internal(format!("lab state {}: {e}", path.display()))),
    }
}

pub fn write_state(s: &LabState) -> Result<(), Error> {
    let bytes = serde_json::to_vec(s)
        .map_err(|e| Error::Internal(format!("cannot encode the lab state: {e}")))?;
    store::write_atomic(&state_path(&s.lab), &bytes)
}

/// Every lab with a state or a journal here.
pub fn labs() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().into_string().ok()?;
            n.strip_suffix(".json")
                .or_else(|| n.strip_suffix(".journal"))
                .map(str::to_string)
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The lab's lock, held for a whole apply or destroy (one at a time per lab).
pub fn lock(lab: &str) -> Result<File, Error> {
    let path = lock_path(lab);
    std::fs::create_dir_all(dir())
        .map_err(|e| Error::io(format!("cannot create {}", dir().display()), e))?;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(Error::Busy(format!(
            "another pipework is applying or destroying lab {lab} right now"
        )));
    }
    Ok(f)
}

/// One change an apply made (or was about to make), and so how to take it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "undo", rename_all = "kebab-case")]
pub enum LabUndo {
    /// A named namespace the lab created: removed.
    Netns { name: String },
    /// A bridge the lab created: deleted (it carries the lab's link group).
    Bridge { name: String, ovs: bool },
    /// An attachment made through the engine: rolled back from its record.
    Record { path: PathBuf },
    /// A veth the lab made between two guests, by its first end (the peer goes with it).
    Link { ns: NsRef, name: String },
    /// An address the apply added (`added`) or removed: the other way round.
    Address {
        ns: NsRef,
        ifname: String,
        address: IpNet,
        added: bool,
    },
    /// An MTU the apply changed: set back.
    Mtu { ns: NsRef, ifname: String, mtu: u32 },
    /// A link the apply brought up: down again.
    LinkDown { ns: NsRef, ifname: String },
    /// A bridge's MTU the apply changed: set back.
    BridgeMtu { name: String, mtu: u32 },
    /// A route the apply added (`added`) or removed, as the kernel's bytes.
    Route {
        ns: NsRef,
        route: crate::plan::RouteBytes,
        text: String,
        added: bool,
    },
    /// A root qdisc the apply put or changed: back to this (none: the kernel's default).
    Qdisc {
        ns: NsRef,
        ifname: String,
        rate: Option<String>,
        netem: Option<String>,
    },
    /// A link the apply made in the host namespace (a VXLAN port): deleted if still ours.
    HostLink { name: String },
    /// A VXLAN end the apply made in a guest: deleted if still ours.
    GuestLink { ns: NsRef, name: String },
    /// A flood entry (`added`) or its removal on a VXLAN port: the other way round.
    Fdb {
        name: String,
        remote: std::net::IpAddr,
        added: bool,
    },
    /// Something of the lab the apply removed: made again.
    Removed(Box<Removed>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Removed {
    Attach(MadeAttach),
    Link(MadeLink),
    Route(MadeRoute),
    Bridge(MadeBridge, Option<u32>),
    Netns(String),
    Vxlan(StretchedBridge),
    Cross(MadeCross),
}

#[derive(Debug, Serialize, Deserialize)]
struct JournalHead {
    lab: String,
    txn: u64,
    writer: u32,
}

/// The journal of the apply in progress.
pub struct LabJournal {
    /// None: a journal in memory only (what a rollback's own re-creations write to).
    file: Option<File>,
    path: PathBuf,
    pub txn: u64,
    pub entries: Vec<LabUndo>,
}

impl LabJournal {
    pub fn create(lab: &str) -> Result<LabJournal, Error> {
        let path = journal_path(lab);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))?;
        let txn = new_txn();
        let mut j = LabJournal {
            file: Some(file),
            path,
            txn,
            entries: Vec::new(),
        };
        let head = JournalHead {
            lab: lab.to_string(),
            txn,
            writer: std::process::id(),
        };
        j.append(&head)?;
        Ok(j)
    }

    fn append<T: Serialize>(&mut self, v: &T) -> Result<(), Error> {
        let mut l = serde_json::to_vec(v)
            .map_err(|e| Error::Internal(format!("cannot encode a journal line: {e}")))?;
        l.push(b'\n');
        // One write(2) per line: a crash leaves whole lines or a torn last one, dropped on
        // reading (the change it announced was never made).
        match &mut self.file {
            Some(f) => f
                .write_all(&l)
                .map_err(|e| Error::io(format!("cannot write {}", self.path.display()), e)),
            None => Ok(()),
        }
    }

    /// Journals `u` before its change is made.
    pub fn will(&mut self, u: LabUndo) -> Result<(), Error> {
        self.append(&u)?;
        self.entries.push(u);
        Ok(())
    }

    /// The change just announced did not happen (the kernel refused it): forgotten.
    pub fn cancel_last(&mut self) -> Result<(), Error> {
        self.append(&serde_json::json!({"cancel": true}))?;
        self.entries.pop();
        Ok(())
    }

    /// A journal in memory (nothing on disk).
    pub fn scratch() -> LabJournal {
        LabJournal {
            file: None,
            path: PathBuf::new(),
            txn: 0,
            entries: Vec::new(),
        }
    }

    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn new_txn() -> u64 {
    let mut b = [0u8; 8];
    // Unique enough to tell this apply's journal from another's; the clock is the fallback.
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        b = (t ^ u64::from(std::process::id())).to_le_bytes();
    }
    u64::from_le_bytes(b) | 1
}

/// A journal left on disk: its transaction and entries, in order (cancelled ones dropped, a
/// torn last line ignored).
#[derive(Debug, PartialEq)]
pub struct LeftJournal {
    pub txn: u64,
    pub entries: Vec<LabUndo>,
}

pub fn parse_journal(bytes: &[u8]) -> Result<LeftJournal, String> {
    let mut lines = bytes.split(|b| *b == b'\n');
    let head: JournalHead = lines
        .next()
        .and_then(|l| serde_json::from_slice(l).ok())
        .ok_or("no journal header")?;
    let mut entries = Vec::new();
    for l in lines {
        if l.is_empty() {
            continue;
        }
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(l) {
            if v.get("cancel").is_some() {
                entries.pop();
                continue;
            }
            match serde_json::from_value::<LabUndo>(v) {
                Ok(u) => entries.push(u),
                Err(e) => return Err(format!("journal entry: {e}")),
            }
        }
        // An unparsable line can only be the torn last one.
    }
    Ok(LeftJournal {
        txn: head.txn,
        entries,
    })
}

/// The journal a killed apply left, unless an apply holds it now (its lab lock says so: the
/// caller holds that lock).
pub fn read_journal(lab: &str) -> Result<Option<LeftJournal>, Error> {
    let path = journal_path(lab);
    match read_bounded(&path)? {
        None => Ok(None),
        Some(b) => parse_journal(&b)
            .map(Some)
            .map_err(|e| Error::Internal(format!("lab journal {}: {e}", path.display()))),
    }
}

pub fn remove_journal(lab: &str) {
    let _ = std::fs::remove_file(journal_path(lab));
}

pub fn remove_state(lab: &str) {
    let _ = std::fs::remove_file(state_path(lab));
    let _ = std::fs::remove_file(lock_path(lab));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_lines_cancel_and_torn_tail() {
        let ns = NsRef {
            path: "/run/netns/a".into(),
            inode: 7,
        };
        let mut text = serde_json::to_string(&JournalHead {
            lab: "l".into(),
            txn: 9,
            writer: 1,
        })
        .unwrap();
        text.push('\n');
        for u in [
            LabUndo::Netns { name: "a".into() },
            LabUndo::Link {
                ns: ns.clone(),
                name: "eth1".into(),
            },
        ] {
            text.push_str(&serde_json::to_string(&u).unwrap());
            text.push('\n');
        }
        text.push_str("{\"cancel\":true}\n{\"undo\":\"bri");
        let j = parse_journal(text.as_bytes()).unwrap();
        assert_eq!(j.txn, 9);
        assert_eq!(j.entries, vec![LabUndo::Netns { name: "a".into() }]);
        assert!(parse_journal(b"").is_err());
        assert!(parse_journal(b"{}\n").is_err());
    }

    #[test]
    fn state_round_trip_and_version() {
        let s = LabState {
            version: VERSION,
            lab: "demo".into(),
            txn: 3,
            netns: vec!["r1".into()],
            ..LabState::default()
        };
        let b = serde_json::to_vec(&s).unwrap();
        assert_eq!(parse_state(&b).unwrap(), s);
        let old = LabState { version: 99, ..s };
        let e = parse_state(&serde_json::to_vec(&old).unwrap()).unwrap_err();
        assert!(e.contains("version 99"), "{e}");
        assert!(parse_state(b"[").is_err());
    }
}
