//! The state store: one record per attachment under `<runtime>/attachments/`
//! (`/run/pipework` by default, tmpfs: records die with the host's boot, like the interfaces
//! they describe), and the undo journal inside it.
//!
//! A record is a small JSON Lines file, `<netns inode>-<guest ifname>.json`:
//! - line 1, the header: version, kind, guest, namespace, interface, host namespace;
//! - then one undo entry per line ([`UndoEntry`]), appended *before* each change is made (a
//!   `{"cancel":true}` line voids the entry before it);
//! - last, once everything is in place, the completion: the identity of the live interface
//!   and the attach's `--json` report.
//!
//! An attach killed at any instant (even by SIGKILL) leaves an `incomplete` record whose
//! entries undo everything it did; `gc`, `detach` and the next attach of that interface replay
//! them. Every line is one `write`, and a torn last line is dropped. Reading never blocks and never trusts a file: a non-regular file
//! (a FIFO) is never opened, and a broken record is named in a warning and skipped.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::guest::Engine;
use crate::mac::MacAddr;
use crate::plan::{Kind, LinkKind, UndoEntry};

pub const VERSION: u32 = 2;
/// A record larger than this is not ours (they are a few KiB).
const MAX_RECORD: u64 = 1 << 20;

/// pipework's runtime directory: `$PIPEWORK_RUNTIME_DIR`, else /run/pipework.
pub fn runtime_dir() -> PathBuf {
    std::env::var_os("PIPEWORK_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/pipework"))
}

/// Write-then-rename, so a reader never sees half a file.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), Error> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)
            .map_err(|e| Error::io(format!("cannot create {}", d.display()), e))?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, data)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordState {
    /// An attach is running, or died: the undo entries say what it did.
    Incomplete,
    Complete,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestRef {
    pub spec: String,
    pub engine: Engine,
    pub id: Option<String>,
    pub name: Option<String>,
    pub pid: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetnsRef {
    pub path: String,
    pub inode: u64,
}

/// What makes the live interface this attachment's and no other's: a name alone can be
/// re-used (a namespace re-created under the same name even gets the same inode back).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The guest interface's MAC.
    pub mac: Option<MacAddr>,
    /// The host end's ifindex (veth kinds) or the moved NIC's host ifindex before the move.
    pub host_ifindex: Option<u32>,
    /// The guest interface's ifindex in its namespace.
    pub guest_ifindex: Option<u32>,
    /// The link type of the guest interface pipework created (None: a moved NIC).
    pub guest_link: Option<LinkKind>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub version: u32,
    pub state: RecordState,
    /// Unix seconds.
    pub created: u64,
    pub kind: Kind,
    pub guest: GuestRef,
    pub netns: NetnsRef,
    /// The namespace that was "the host" (its inode): only a session there handles the
    /// record. Test hosts, or pipework run in another namespace, share /run/pipework.
    pub host_netns: u64,
    pub ifname: String,
    pub host_interface: String,
    pub host_ifname: Option<String>,
    /// The process that writes an incomplete record.
    pub writer: u32,
    #[serde(default)]
    pub identity: Option<Identity>,
    /// The attach's `--json` report, once complete.
    #[serde(default)]
    pub attachment: Option<serde_json::Value>,
    /// The runtime's names for it (CNI), from the start: a GC finds an attach that died
    /// half-way by them too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<crate::request::Owner>,
}

/// The parts of the attach report `ls` shows (the report has more).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Shown {
    #[serde(default)]
    pub mac: Option<String>,
    #[serde(default)]
    pub vlan: Option<u16>,
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub dhcp: Option<serde_json::Value>,
}

#[derive(Debug, Clone)]
pub struct Record {
    pub path: PathBuf,
    pub header: Header,
    /// In the order the changes were made.
    pub undo: Vec<UndoEntry>,
}

impl Record {
    pub fn complete(&self) -> bool {
        self.header.state == RecordState::Complete
    }

    pub fn shown(&self) -> Shown {
        self.header
            .attachment
            .as_ref()
            .and_then(|v| Shown::deserialize(v).ok())
            .unwrap_or_default()
    }

    /// "eth1 of web1", for messages.
    pub fn who(&self) -> String {
        format!("{} of {}", self.header.ifname, self.header.guest.spec)
    }
}

pub fn dir() -> PathBuf {
    runtime_dir().join("attachments")
}

/// `<dir>/<netns inode>-<guest ifname>.json`: one attachment, one file.
pub fn path_for(inode: u64, guest_ifname: &str) -> PathBuf {
    dir().join(format!("{inode}-{guest_ifname}.json"))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn line(v: &impl Serialize) -> Result<Vec<u8>, Error> {
    let mut b = serde_json::to_vec(v)
        .map_err(|e| Error::io("cannot encode a record", std::io::Error::other(e)))?;
    b.push(b'\n');
    Ok(b)
}

/// Where undo entries go before each change: the record file (the engine), or memory (unit
/// tests, dry runs).
pub trait Journal {
    fn will(&mut self, entry: UndoEntry) -> Result<(), Error>;
    /// The change the last entry announced was refused by the kernel: nothing to undo (and
    /// its undo must not run: the object of that name is someone else's).
    fn cancel_last(&mut self) -> Result<(), Error>;
    fn entries(&self) -> &[UndoEntry];
    /// Everything is in place: the record is complete (a journal in memory has nothing to do).
    fn complete(
        &mut self,
        identity: Identity,
        attachment: serde_json::Value,
        host_ifname: Option<String>,
    ) -> Result<(), Error> {
        let _ = (identity, attachment, host_ifname);
        Ok(())
    }
}

impl Journal for Vec<UndoEntry> {
    fn will(&mut self, entry: UndoEntry) -> Result<(), Error> {
        self.push(entry);
        Ok(())
    }
    fn cancel_last(&mut self) -> Result<(), Error> {
        self.pop();
        Ok(())
    }
    fn entries(&self) -> &[UndoEntry] {
        self
    }
}

/// The journal line that voids the entry before it.
const CANCEL: &str = "{\"cancel\":true}";

/// An attach's record while it runs: the header, written before the first change, then one
/// appended line per undo entry. Holds an exclusive flock on the file for its life, so another
/// process can tell a running attach from a dead one.
pub struct RecordFile {
    file: File,
    path: PathBuf,
    header: Header,
    entries: Vec<UndoEntry>,
}

impl RecordFile {
    /// Starts the record of a new attach. Fails with `Busy` if another live process holds it.
    pub fn create(path: &Path, mut header: Header) -> Result<RecordFile, Error> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)
                .map_err(|e| Error::io(format!("cannot create {}", d.display()), e))?;
        }
        header.version = VERSION;
        header.state = RecordState::Incomplete;
        header.created = now();
        header.writer = std::process::id();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| Error::io(format!("cannot create record {}", path.display()), e))?;
        let meta = file
            .metadata()
            .map_err(|e| Error::io(format!("cannot stat {}", path.display()), e))?;
        if !meta.file_type().is_file() {
            return Err(Error::Busy(format!(
                "{} is not a regular file: remove it",
                path.display()
            )));
        }
        // SAFETY: flock on an fd we own; released when the file is closed (or we die).
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(Error::Busy(format!(
                "another pipework is attaching {} to guest {} right now",
                header.ifname, header.guest.spec
            )));
        }
        file.set_len(0)
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
        let mut r = RecordFile {
            file,
            path: path.to_path_buf(),
            header,
            entries: Vec::new(),
        };
        let head = line(&r.header)?;
        r.append(&head)?;
        Ok(r)
    }

    fn append(&mut self, bytes: &[u8]) -> Result<(), Error> {
        // One write(2) per line: a crash leaves whole lines, or a torn last one that the
        // reader drops (the change it announced was never made).
        self.file
            .write_all(bytes)
            .map_err(|e| Error::io(format!("cannot write {}", self.path.display()), e))
    }

    /// Marks the attach done with one more appended line, the completion (no rewrite, no
    /// rename: a rename over the journal makes ext4 flush it, ~0.5 ms). A crash while it is
    /// written leaves a torn last line: the record reads as incomplete, and gc rolls back.
    pub fn complete(
        &mut self,
        identity: Identity,
        attachment: serde_json::Value,
        host_ifname: Option<String>,
    ) -> Result<(), Error> {
        let c = Completion {
            complete: Completed {
                identity,
                attachment,
                host_ifname,
            },
        };
        let l = line(&c)?;
        self.append(&l)?;
        let Completion { complete } = c;
        self.header.state = RecordState::Complete;
        self.header.identity = Some(complete.identity);
        self.header.attachment = Some(complete.attachment);
        self.header.host_ifname = complete.host_ifname;
        Ok(())
    }

    /// After a complete rollback: nothing is left to record.
    pub fn discard(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Journal for RecordFile {
    fn will(&mut self, entry: UndoEntry) -> Result<(), Error> {
        let l = line(&entry)?;
        self.append(&l)?;
        self.entries.push(entry);
        Ok(())
    }
    fn cancel_last(&mut self) -> Result<(), Error> {
        self.append(format!("{CANCEL}\n").as_bytes())?;
        self.entries.pop();
        Ok(())
    }
    fn complete(
        &mut self,
        identity: Identity,
        attachment: serde_json::Value,
        host_ifname: Option<String>,
    ) -> Result<(), Error> {
        RecordFile::complete(self, identity, attachment, host_ifname)
    }
    fn entries(&self) -> &[UndoEntry] {
        &self.entries
    }
}

/// The last line of a complete record.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Completion {
    complete: Completed,
}

#[derive(Serialize, Deserialize)]
struct Completed {
    identity: Identity,
    attachment: serde_json::Value,
    host_ifname: Option<String>,
}

/// Every readable record, and a warning for each file that is not one.
#[derive(Debug, Default)]
pub struct Scan {
    pub records: Vec<Record>,
    pub warnings: Vec<String>,
}

/// Reads the records directory. Never blocks: each file is checked to be a regular file
/// before it is opened (and opened non-blocking, without following links, in case it changes
/// in between).
pub fn scan() -> Scan {
    let mut out = Scan::default();
    let d = dir();
    let entries = match std::fs::read_dir(&d) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return out,
        Err(e) => {
            out.warnings
                .push(format!("cannot read the records in {}: {e}", d.display()));
            return out;
        }
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        match read_record(&path) {
            Ok(r) => out.records.push(r),
            Err(why) => out
                .warnings
                .push(format!("skipping record {}: {why}", path.display())),
        }
    }
    out.records
        .sort_by(|a, b| (a.header.created, &a.path).cmp(&(b.header.created, &b.path)));
    out
}

/// One record, or why the file is not one.
pub fn read_record(path: &Path) -> Result<Record, String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("cannot stat it: {e}"))?;
    let ft = meta.file_type();
    if !ft.is_file() {
        let what = if ft.is_fifo() {
            "a FIFO"
        } else if ft.is_dir() {
            "a directory"
        } else if ft.is_symlink() {
            "a symbolic link"
        } else {
            "not a regular file"
        };
        return Err(format!("it is {what}, not a record; remove it"));
    }
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| format!("cannot open it: {e}"))?;
    let meta = f.metadata().map_err(|e| format!("cannot stat it: {e}"))?;
    if !meta.file_type().is_file() {
        return Err("it is not a regular file; remove it".into());
    }
    if meta.len() > MAX_RECORD {
        return Err(format!(
            "it is {} bytes, too large for a record",
            meta.len()
        ));
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    Read::by_ref(&mut f)
        .take(MAX_RECORD)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read it: {e}"))?;
    parse(path, &buf)
}

/// Parses a record's bytes (see the module doc for the format).
pub fn parse(path: &Path, buf: &[u8]) -> Result<Record, String> {
    let text = std::str::from_utf8(buf).map_err(|_| "it is not UTF-8 text".to_string())?;
    let mut lines = text.split_inclusive('\n');
    let first = lines.next().ok_or("it is empty")?;
    #[derive(Deserialize)]
    struct Version {
        version: Option<u32>,
    }
    let v: Version = serde_json::from_str(first.trim_end())
        .map_err(|e| format!("its header is not valid JSON ({e})"))?;
    match v.version {
        Some(VERSION) => {}
        Some(n) => {
            return Err(format!(
                "it is a version {n} record; this pipework reads version {VERSION} (use the \
                 pipework that wrote it, or remove the file once its interfaces are gone)"
            ))
        }
        None => return Err("its header has no version".into()),
    }
    let mut header: Header = serde_json::from_str(first.trim_end())
        .map_err(|e| format!("its header is not a pipework record ({e})"))?;
    let rest: Vec<&str> = lines.collect();
    let mut undo = Vec::with_capacity(rest.len());
    for (i, l) in rest.iter().enumerate() {
        let last = i + 1 == rest.len();
        if header.state == RecordState::Complete {
            return Err(format!(
                "it goes on after its completion, on line {}",
                i + 2
            ));
        }
        if l.trim_end() == CANCEL {
            undo.pop();
            continue;
        }
        if l.starts_with("{\"complete\"") {
            if let Ok(Completion { complete: c }) = serde_json::from_str(l.trim_end()) {
                header.state = RecordState::Complete;
                header.identity = Some(c.identity);
                header.attachment = Some(c.attachment);
                header.host_ifname = c.host_ifname;
                continue;
            }
        }
        match serde_json::from_str::<UndoEntry>(l.trim_end()) {
            Ok(e) => undo.push(e),
            // A line torn by a crash mid-write: its change (or the completion) never happened.
            Err(_) if last && !l.ends_with('\n') => {}
            Err(e) => return Err(format!("its undo entry on line {} is corrupt ({e})", i + 2)),
        }
    }
    Ok(Record {
        path: path.to_path_buf(),
        header,
        undo,
    })
}

/// Whether a process is still writing this record (it holds the record's flock).
pub fn being_written(r: &Record) -> bool {
    let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&r.path)
    else {
        return false;
    };
    // SAFETY: flock on an fd we own, released when it closes.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) != 0 }
}

/// Serialises attaches (shared) against detach/gc (exclusive): a detach never deletes a
/// bridge an attach is about to use, and two detaches agree on who is last.
pub fn lock(exclusive: bool) -> Result<File, Error> {
    let path = runtime_dir().join("lock");
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)
            .map_err(|e| Error::io(format!("cannot create {}", d.display()), e))?;
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
    // Released when the file is closed.
    relock(&f, exclusive)?;
    Ok(f)
}

/// `<runtime>/owners/NETWORK@CONTAINER@IFNAME`: holds the path of the record of an
/// attachment a runtime names (CNI), so its DEL finds it without reading every record. `@`
/// is in none of the three names' alphabets.
pub fn owner_index(owner: &crate::request::Owner, ifname: &str) -> PathBuf {
    runtime_dir()
        .join("owners")
        .join(format!("{}@{}@{ifname}", owner.network, owner.container_id))
}

/// The owner a record names: in its header, or (records written before the header had it)
/// in its completion line.
pub fn owner_of(r: &Record) -> Option<crate::request::Owner> {
    if let Some(o) = &r.header.owner {
        return Some(o.clone());
    }
    let v = r.header.attachment.as_ref()?.get("owner")?;
    serde_json::from_value(v.clone()).ok()
}

/// The record an owner index points at, if it is a record of that owner (an index is only a
/// hint: it is checked against the record it names).
pub fn read_owner_index(owner: &crate::request::Owner, ifname: &str) -> Option<Record> {
    let f = owner_index(owner, ifname);
    let m = std::fs::symlink_metadata(&f).ok()?;
    if !m.is_file() || m.len() > 4096 {
        return None;
    }
    let path = PathBuf::from(std::fs::read_to_string(&f).ok()?);
    if path.parent() != Some(dir().as_path()) {
        return None;
    }
    let r = read_record(&path).ok()?;
    (owner_of(&r).as_ref() == Some(owner) && r.header.ifname == ifname).then_some(r)
}

/// Changes a held lock between shared and exclusive. flock(2) drops the old lock before
/// taking the new one, so two holders upgrading at once do not deadlock (whoever waits sees
/// the other's work done when it gets the lock).
pub fn relock(f: &File, exclusive: bool) -> Result<(), Error> {
    let op = if exclusive {
        libc::LOCK_EX
    } else {
        libc::LOCK_SH
    };
    // SAFETY: flock on an fd the caller owns.
    if unsafe { libc::flock(f.as_raw_fd(), op) } != 0 {
        return Err(Error::io(
            format!("cannot lock {}", runtime_dir().join("lock").display()),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Open vSwitch bridges pipework created, remembered apart from the attachment that created
/// them (OVS links carry no group of ours): whichever attachment is undone last removes them.
/// Keyed by the host namespace too: each host (a test's, a lab's) has its own OVS.
pub fn ovs_marker(host_netns: u64, name: &str) -> PathBuf {
    runtime_dir()
        .join("created")
        .join(format!("ovs-{host_netns}-{name}"))
}

/// Whether a live guest still holds the record's namespace: its process still has the same
/// namespace, or its namespace file still is that namespace.
pub fn guest_alive(r: &Record) -> bool {
    use std::os::unix::fs::MetadataExt;
    let h = &r.header;
    let inode = h.netns.inode;
    match h.guest.pid {
        Some(pid) => match std::fs::metadata(format!("/proc/{pid}/ns/net")) {
            Ok(m) => m.ino() == inode,
            // Not ours to inspect (not root): the process existing is all we can tell.
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                Path::new(&format!("/proc/{pid}")).exists()
            }
            Err(_) => false,
        },
        None => std::fs::metadata(&h.netns.path)
            .map(|m| m.ino() == inode)
            .unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Side;

    fn header() -> Header {
        Header {
            version: VERSION,
            state: RecordState::Incomplete,
            created: 5,
            kind: Kind::Bridge,
            guest: GuestRef {
                spec: "web1".into(),
                engine: Engine::Docker,
                id: Some("abc".into()),
                name: Some("web1".into()),
                pid: Some(42),
            },
            netns: NetnsRef {
                path: "/proc/42/ns/net".into(),
                inode: 4026532000,
            },
            host_netns: 4026531840,
            ifname: "eth1".into(),
            host_interface: "br1".into(),
            host_ifname: Some("veth1pl42".into()),
            writer: 7,
            identity: None,
            attachment: None,
            owner: None,
        }
    }

    /// Found by fuzzing (fuzz/, target store): a number in the attachment report read back
    /// one ULP off once written again (serde_json's fast float parsing), so a record did not
    /// re-read equal; `float_roundtrip` makes the parse exact.
    #[test]
    fn a_record_written_again_reads_back_equal() {
        let mut h = header();
        h.state = RecordState::Complete;
        h.identity = Some(Identity::default());
        h.attachment =
            Some(serde_json::json!({"x": 1.5e200, "y": 0.1, "z": 2.2250738585072014e-308}));
        let text = format!("{}\n", serde_json::to_string(&h).unwrap());
        let r = parse(Path::new("r.json"), text.as_bytes()).unwrap();
        let again = format!("{}\n", serde_json::to_string(&r.header).unwrap());
        let r2 = parse(Path::new("r.json"), again.as_bytes()).unwrap();
        assert_eq!(r2.header, r.header);
        let raw = "1.5e200";
        let v: serde_json::Value = serde_json::from_str(raw).unwrap();
        assert_eq!(v.as_f64(), Some(1.5e200));
    }

    fn entry() -> UndoEntry {
        UndoEntry::DeleteLink {
            side: Side::Host,
            name: "veth1pl42".into(),
            kind: LinkKind::Veth,
        }
    }

    fn bytes(h: &Header, entries: &[UndoEntry]) -> Vec<u8> {
        let mut b = line(h).unwrap();
        for e in entries {
            b.extend(line(e).unwrap());
        }
        b
    }

    #[test]
    fn journal_round_trip() {
        let b = bytes(
            &header(),
            &[entry(), UndoEntry::DeleteBridge { name: "br1".into() }],
        );
        let r = parse(Path::new("/x.json"), &b).unwrap();
        assert_eq!(r.header, header());
        assert_eq!(r.undo.len(), 2);
        assert_eq!(r.undo[0], entry());
    }

    #[test]
    fn completion_is_the_last_line() {
        let mut b = bytes(&header(), &[entry()]);
        let c = Completion {
            complete: Completed {
                identity: Identity {
                    host_ifindex: Some(7),
                    ..Identity::default()
                },
                attachment: serde_json::json!({"mac": "02:00:00:00:00:01"}),
                host_ifname: Some("veth1pl42".into()),
            },
        };
        b.extend(line(&c).unwrap());
        let r = parse(Path::new("/x.json"), &b).unwrap();
        assert!(r.complete());
        assert_eq!(r.undo, vec![entry()]);
        assert_eq!(r.header.identity.as_ref().unwrap().host_ifindex, Some(7));
        assert_eq!(r.shown().mac.as_deref(), Some("02:00:00:00:00:01"));
        // Torn by a crash while it was written: incomplete, its undo entries intact.
        let torn = &b[..b.len() - 5];
        let r = parse(Path::new("/x.json"), torn).unwrap();
        assert!(!r.complete());
        assert_eq!(r.undo, vec![entry()]);
        // Nothing may follow it.
        b.extend(line(&entry()).unwrap());
        assert!(parse(Path::new("/x.json"), &b)
            .unwrap_err()
            .contains("after its completion"));
    }

    #[test]
    fn a_cancelled_entry_is_void() {
        let mut b = bytes(&header(), &[entry()]);
        b.extend_from_slice(CANCEL.as_bytes());
        b.push(b'\n');
        b.extend(line(&UndoEntry::DeleteBridge { name: "br1".into() }).unwrap());
        let r = parse(Path::new("/x.json"), &b).unwrap();
        assert_eq!(r.undo, vec![UndoEntry::DeleteBridge { name: "br1".into() }]);
    }

    #[test]
    fn torn_last_line_of_an_incomplete_record_is_dropped() {
        let mut b = bytes(&header(), &[entry()]);
        b.extend_from_slice(b"{\"undo\":\"delete-li");
        let r = parse(Path::new("/x.json"), &b).unwrap();
        assert_eq!(r.undo, vec![entry()]);
    }

    #[test]
    fn corrupt_or_foreign_records_say_why() {
        let p = Path::new("/x.json");
        assert!(parse(p, b"").unwrap_err().contains("empty"));
        assert!(parse(p, b"{not json")
            .unwrap_err()
            .contains("not valid JSON"));
        assert!(parse(p, b"{\"version\":99}\n")
            .unwrap_err()
            .contains("version 99"));
        assert!(parse(p, b"{\"version\":2}\n")
            .unwrap_err()
            .contains("not a pipework record"));
        let mut b = bytes(&header(), &[]);
        b.extend_from_slice(b"garbage\n");
        b.extend(line(&entry()).unwrap());
        assert!(parse(p, &b).unwrap_err().contains("line 2"));
        assert!(parse(p, &[0xff, 0xfe]).unwrap_err().contains("UTF-8"));
    }
}
