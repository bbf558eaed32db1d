//! The session's requests on recorded attachments: detach, gc, list, check, and the recovery
//! of an interface's earlier, incomplete attach. All of them work from the records, checked
//! against the live kernel state, and never act on an interface pipework did not make.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::Session;
use crate::apply::undo;
use crate::driver::{self, DEFAULT_GUEST_IFNAME};
use crate::env::{Batch, Sys};
use crate::error::Error;
use crate::guest::{Engine, Guest, GuestSpec};
use crate::netlink::{msg, Rtnl};
use crate::ns::NetNs;
use crate::plan::UndoEntry;
use crate::report::{ActionsReport, CheckReport, Checked, ListReport, Listed};
use crate::request::{AttachRequest, Target};
use crate::store::{self, Record};

/// Link group of one batch of deletions: unique to this process (an exclusive lock serialises
/// batches anyway), never pipework's own mark.
fn batch_group() -> u32 {
    0x7078_0000 | (std::process::id() & 0xffff)
}

/// The record's namespace, if it is still that namespace (same inode).
pub fn record_ns(r: &Record) -> Option<NetNs> {
    let h = &r.header;
    let path = match h.guest.pid {
        Some(pid) => PathBuf::from(format!("/proc/{pid}/ns/net")),
        None => PathBuf::from(&h.netns.path),
    };
    NetNs::open(&path).ok().filter(|n| n.inode == h.netns.inode)
}

impl Session {
    /// The records of this session's host (see [`store::Header::host_netns`]).
    fn scan(&self) -> store::Scan {
        let mut s = store::scan();
        s.records.retain(|r| r.header.host_netns == self.home.inode);
        s
    }

    /// Runs `f` with the record's namespaces (the guest's only while it still exists).
    fn with_sys<T>(
        &mut self,
        r: &Record,
        batch: Option<&mut Batch>,
        f: impl FnOnce(&mut Sys<'_>) -> T,
    ) -> T {
        let ns = record_ns(r);
        if let Some(ns) = &ns {
            // Not allowed to look inside (not root): the guest side stays unknown.
            let _ = self.guest_socket(ns);
        }
        let guest = ns
            .as_ref()
            .and_then(|n| self.guests.get_mut(&n.inode))
            .map(|g| g as &mut dyn Rtnl);
        let mut sys = Sys {
            host: &mut self.host,
            guest,
            guest_ns: ns.as_ref(),
            home: &self.home,
            log: self.log,
            batch,
            record: Some(r),
        };
        f(&mut sys)
    }

    /// Alive: the guest still holds the namespace, and the live interface is the recorded one.
    pub fn alive(&mut self, r: &Record) -> bool {
        if !r.complete() || !store::guest_alive(r) {
            return false;
        }
        let looked = record_ns(r).is_some_and(|n| self.guest_socket(&n).is_ok());
        let drv = driver::driver(r.header.kind);
        self.with_sys(r, None, |sys| {
            if !looked && sys.guest.is_none() && !crate::privilege::is_admin() {
                // Not root: the guest's liveness is all we can tell.
                return true;
            }
            drv.alive(r, sys)
        })
    }

    /// Before a new attach of an interface: an earlier attach of it that died half-way is
    /// rolled back, and a stale record of it torn down, so the new one starts clean.
    pub(super) fn recover_interface(
        &mut self,
        guest: &Guest,
        req: &AttachRequest,
    ) -> Result<(), Error> {
        let names: Vec<&str> = match &req.guest_ifname {
            Some(n) => vec![n.as_str()],
            None => vec![DEFAULT_GUEST_IFNAME, driver::ipoib::DEFAULT_GUEST_IFNAME],
        };
        for name in names {
            let path = store::path_for(guest.netns.inode, name);
            if std::fs::symlink_metadata(&path).is_err() {
                continue;
            }
            let r = match store::read_record(&path) {
                Ok(r) => r,
                Err(why) => {
                    tracing::warn!("record {}: {why}", path.display());
                    continue;
                }
            };
            if r.header.host_netns != self.home.inode {
                // Another host's record of a namespace inode that is free again: not ours.
                continue;
            }
            if r.complete() && self.alive(&r) {
                continue; // planning refuses the taken name with a clear error
            }
            if !r.complete() && store::being_written(&r) {
                return Err(Error::Busy(format!(
                    "another pipework is attaching {name} to guest {} right now",
                    guest.spec
                )));
            }
            self.log.info(format_args!(
                "rolling back the earlier {} attach of {}",
                if r.complete() { "stale" } else { "incomplete" },
                r.who()
            ));
            self.teardown_many(&[r], false)?;
        }
        Ok(())
    }

    pub fn detach(&mut self, t: &Target, dry_run: bool) -> Result<ActionsReport, Error> {
        crate::privilege::require_admin()?;
        let _lock = store::lock(true)?;
        let scan = self.scan();
        let chosen = self.select(t, scan.records);
        let mut rep = self.teardown_many(&chosen, dry_run)?;
        rep.warnings = scan.warnings;
        Ok(rep)
    }

    /// Undoes what belongs to guests that are gone, and attaches that died half-way.
    pub fn gc(&mut self, dry_run: bool) -> Result<ActionsReport, Error> {
        crate::privilege::require_admin()?;
        // Stretches whose bridge is gone (a destroy takes the store's lock itself).
        let stretched = if dry_run {
            Vec::new()
        } else {
            self.stretch_gc()
        };
        let _lock = store::lock(true)?;
        // Labs' applies that were killed first: their journals name records gc would see.
        let labs = if dry_run { Vec::new() } else { self.lab_gc() };
        let scan = self.scan();
        let chosen: Vec<Record> = scan
            .records
            .into_iter()
            .filter(|r| {
                if r.complete() {
                    !self.alive(r)
                } else {
                    // Attaches hold the lock shared: none is running now, whatever the flock.
                    !store::being_written(r) || r.header.writer == std::process::id()
                }
            })
            .collect();
        let mut rep = self.teardown_many(&chosen, dry_run)?;
        rep.actions.splice(0..0, labs);
        rep.actions.splice(0..0, stretched);
        rep.warnings = scan.warnings;
        Ok(rep)
    }

    /// The records `t` names.
    fn select(&mut self, t: &Target, records: Vec<Record>) -> Vec<Record> {
        match t {
            Target::All => records,
            Target::DeadContainer { id } => records
                .into_iter()
                .filter(|r| {
                    r.header.guest.id.as_deref() == Some(id.as_str()) && !store::guest_alive(r)
                })
                .collect(),
            Target::Guest { spec, ifname } => {
                let parsed = GuestSpec::parse(spec).ok();
                let inode = parsed
                    .as_ref()
                    .and_then(|gs| self.resolve(gs).ok())
                    .map(|g| g.netns.inode);
                records
                    .into_iter()
                    .filter(|r| {
                        let who = match inode {
                            Some(i) => i == r.header.netns.inode,
                            None => names_guest(r, spec),
                        };
                        who && ifname.as_ref().is_none_or(|i| *i == r.header.ifname)
                    })
                    .collect()
            }
        }
    }

    /// Tears attachments down together: their host links deleted in one batched kernel pass,
    /// then what waits for them (bridges, VLAN children, OVS bridges now unused).
    pub(crate) fn teardown_many(
        &mut self,
        records: &[Record],
        dry_run: bool,
    ) -> Result<ActionsReport, Error> {
        self.teardown_then(records, dry_run, &mut || Ok(()))
    }

    /// `teardown_many`, with `before_later` run between the deletes of the attachments' own
    /// links and what waits for them (a bridge deleted once unused), e.g. to take the store's
    /// lock exclusively only for that.
    fn teardown_then(
        &mut self,
        records: &[Record],
        dry_run: bool,
        before_later: &mut dyn FnMut() -> Result<(), Error>,
    ) -> Result<ActionsReport, Error> {
        let mut batch = Batch {
            dry_run,
            group: batch_group(),
            direct: records.len() == 1,
            ..Batch::default()
        };
        let mut rep = ActionsReport {
            dry_run,
            ..ActionsReport::default()
        };
        let mut left = Vec::new();
        let mut later: Vec<(crate::plan::Kind, UndoEntry, Record)> = Vec::new();
        let mut task = (records.len() > 1).then(|| {
            crate::progress::Task::start("removing attachments", Some(records.len() as u64))
        });
        for r in records {
            batch.records.insert(r.path.clone());
            let drv = driver::driver(r.header.kind);
            // A complete attachment: its driver's teardown. An incomplete one: the whole
            // journal backwards, as the rollback it never finished.
            let entries = if r.complete() {
                drv.teardown(r)
            } else {
                r.undo.iter().rev().cloned().collect()
            };
            let (now, wait): (Vec<_>, Vec<_>) = entries.into_iter().partition(|e| {
                !matches!(
                    e,
                    UndoEntry::DeleteBridge { .. }
                        | UndoEntry::OvsDelBridge { .. }
                        | UndoEntry::DeleteVlan { .. }
                )
            });
            let who = r.who();
            let kind = r.header.kind;
            let mut done = Vec::new();
            // A complete record whose guest interface is no longer the recorded one (a
            // namespace re-created under the same name and inode): nothing in that guest is
            // ours any more, so the guest side is treated as gone.
            let foreign = r.complete() && store::guest_alive(r) && !self.alive(r);
            let l = self.with_sys(r, Some(&mut batch), |sys| {
                if foreign {
                    sys.guest = None;
                    sys.guest_ns = None;
                }
                undo::replay(kind, &now, sys, &mut done)
            });
            rep.actions
                .extend(done.into_iter().map(|d| format!("{d} [{who}]")));
            left.extend(l);
            later.extend(wait.into_iter().map(|e| (kind, e, r.clone())));
            if let Some(t) = &mut task {
                t.inc(1);
            }
        }
        drop(task);
        if !dry_run && !batch.direct && !batch.host_links.is_empty() {
            if let Err(e) = self.host.request(msg::del_link_group(batch.group), 0) {
                left.push(format!(
                    "host links {:?}: {}",
                    batch.host_links,
                    Error::netlink("cannot delete them", e)
                ));
            }
        }
        if !later.is_empty() {
            before_later()?;
        }
        let mut seen = HashSet::new();
        for (kind, e, r) in later {
            if !seen.insert(format!("{e:?}")) {
                continue;
            }
            let mut done = Vec::new();
            let l = self.with_sys(&r, Some(&mut batch), |sys| {
                undo::replay(kind, std::slice::from_ref(&e), sys, &mut done)
            });
            rep.actions.extend(done);
            left.extend(l);
        }
        for r in records {
            if !dry_run && left.is_empty() {
                let _ = std::fs::remove_file(&r.path);
                if let Some(o) = store::owner_of(r) {
                    let _ = std::fs::remove_file(store::owner_index(&o, &r.header.ifname));
                }
                self.forget_guest(r.header.netns.inode);
            }
            rep.actions
                .push(format!("forget the record of {}", r.who()));
        }
        if !left.is_empty() {
            return Err(Error::Rollback {
                source: Box::new(Error::Busy(
                    "some of what pipework made could not be removed; the records are kept for \
                     the next gc"
                        .into(),
                )),
                left,
            });
        }
        Ok(rep)
    }

    /// Every recorded attachment, alive, stale or incomplete, and the files that are not
    /// records.
    pub fn list(&mut self) -> ListReport {
        let supervisors = crate::list::dhcp_clients();
        let scan = self.scan();
        let mut out = ListReport {
            attachments: Vec::new(),
            warnings: scan.warnings,
        };
        for r in scan.records {
            let h = &r.header;
            let shown = r.shown();
            let sup = supervisors
                .iter()
                .find(|s| s.netns_inode == h.netns.inode && s.ifname == h.ifname);
            let state = if !r.complete() {
                "incomplete"
            } else if self.alive(&r) {
                "alive"
            } else {
                "stale"
            };
            out.attachments.push(Listed {
                state,
                guest: h.guest.spec.clone(),
                engine: h.guest.engine,
                guest_id: h.guest.id.clone(),
                guest_name: h.guest.name.clone(),
                guest_pid: h.guest.pid,
                netns_inode: h.netns.inode,
                kind: h.kind,
                host_interface: h.host_interface.clone(),
                host_ifname: h.host_ifname.clone(),
                ifname: h.ifname.clone(),
                address: shown.addresses.first().cloned(),
                addresses: shown.addresses.clone(),
                mac: shown.mac.clone(),
                vlan: shown.vlan,
                pid: sup.map(|s| s.pid),
                client: sup.map(|s| s.client.clone()),
                pidfile: sup.map(|s| s.pidfile.clone()),
            });
        }
        out
    }

    /// Does each attachment `t` names still match its record (links, master, MAC, MTU,
    /// addresses)?
    pub fn check(&mut self, t: &Target) -> Result<CheckReport, Error> {
        let scan = self.scan();
        let chosen = self.select(t, scan.records);
        let mut out = CheckReport {
            attachments: Vec::new(),
            warnings: scan.warnings,
        };
        for r in chosen {
            let c = self.check_one(&r)?;
            out.attachments.push(c);
        }
        Ok(out)
    }

    /// One record against the live state.
    pub fn check_one(&mut self, r: &Record) -> Result<Checked, Error> {
        let (state, differences) = if !r.complete() {
            (
                "incomplete",
                vec!["the attach did not finish: gc rolls it back".into()],
            )
        } else if !store::guest_alive(r) {
            ("stale", vec!["the guest is gone".into()])
        } else {
            let drv = driver::driver(r.header.kind);
            let d = self.with_sys(r, None, |sys| drv.check(r, sys))?;
            (if d.is_empty() { "ok" } else { "drift" }, d)
        };
        Ok(Checked {
            guest: r.header.guest.spec.clone(),
            ifname: r.header.ifname.clone(),
            kind: r.header.kind,
            state,
            differences,
        })
    }

    /// Tears down the records a front end found itself (CNI DEL and GC); each is read again
    /// under the store's lock, so one another DEL removed is skipped. The attachments' own
    /// links go under the lock shared (DELs of many containers run side by side, as attaches
    /// do); it is taken exclusively only to delete what waits for them (a bridge pipework
    /// created, once unused), so no attach is adding a port to it meanwhile.
    pub fn remove(&mut self, records: &[Record]) -> Result<ActionsReport, Error> {
        crate::privilege::require_admin()?;
        let lock = store::lock(false)?;
        let fresh: Vec<Record> = records
            .iter()
            .filter_map(|r| store::read_record(&r.path).ok())
            .collect();
        self.teardown_then(&fresh, false, &mut || store::relock(&lock, true))
    }
}

/// Whether a record names this guest (for guests that are gone): as given, by name, by ID or
/// by PID. An engine prefix must match the record's engine: `podman:web1` never names a
/// Docker container web1.
fn names_guest(r: &Record, spec: &str) -> bool {
    let g = &r.header.guest;
    let (engine, bare) = match spec.split_once(':') {
        Some((p, rest)) => match engine_of_prefix(p) {
            Some(e) => (Some(e), rest),
            None => (None, spec),
        },
        None => (None, spec),
    };
    // `pid:N` names any guest by its process, whatever engine found it.
    if let Some(e) = engine.filter(|e| *e != Engine::Pid) {
        if e != g.engine {
            return false;
        }
    }
    g.spec == spec
        || g.name.as_deref() == Some(bare)
        || g.id
            .as_deref()
            .is_some_and(|id| bare.len() >= 4 && id.starts_with(bare))
        || g.pid.map(|p| p.to_string()).as_deref() == Some(bare)
        || Path::new(&r.header.netns.path) == Path::new(bare)
}

fn engine_of_prefix(p: &str) -> Option<Engine> {
    Some(match p {
        "docker" => Engine::Docker,
        "podman" => Engine::Podman,
        "lxc" => Engine::Lxc,
        "containerd" => Engine::Containerd,
        "netns" => Engine::Netns,
        "pid" => Engine::Pid,
        _ => return None,
    })
}

/// Records of one container's interface (what the CNI front end looks up by).
pub fn find_by_container(id: &str, ifname: &str) -> Vec<Record> {
    store::scan()
        .records
        .into_iter()
        .filter(|r| r.header.guest.id.as_deref() == Some(id) && r.header.ifname == ifname)
        .collect()
}

/// The records of an attachment a runtime names: through its owner index, else (an index
/// lost, a record of an older version) by reading every record.
pub fn find_by_owner(owner: &crate::request::Owner, ifname: &str) -> Vec<Record> {
    if let Some(r) = store::read_owner_index(owner, ifname) {
        return vec![r];
    }
    find_by_container(&owner.container_id, ifname)
        .into_iter()
        .filter(|r| store::owner_of(r).is_none_or(|o| o.network == owner.network))
        .collect()
}

/// The record of one namespace's interface.
pub fn find_by_netns(inode: u64, ifname: &str) -> Option<Record> {
    store::read_record(&store::path_for(inode, ifname)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Kind;
    use crate::store::{GuestRef, Header, NetnsRef, RecordState};

    fn rec(engine: Engine, name: &str) -> Record {
        Record {
            path: PathBuf::from("/x.json"),
            header: Header {
                version: store::VERSION,
                state: RecordState::Complete,
                created: 0,
                kind: Kind::Bridge,
                guest: GuestRef {
                    spec: name.into(),
                    engine,
                    id: Some("0123456789abcdef".into()),
                    name: Some(name.into()),
                    pid: Some(42),
                },
                netns: NetnsRef {
                    path: "/proc/42/ns/net".into(),
                    inode: 1,
                },
                host_netns: 2,
                ifname: "eth1".into(),
                host_interface: "br1".into(),
                host_ifname: None,
                writer: 0,
                identity: None,
                attachment: None,
                owner: None,
            },
            undo: Vec::new(),
        }
    }

    #[test]
    fn engine_prefix_must_match_the_record() {
        let d = rec(Engine::Docker, "web1");
        assert!(names_guest(&d, "web1"));
        assert!(names_guest(&d, "docker:web1"));
        assert!(!names_guest(&d, "podman:web1"));
        assert!(!names_guest(&d, "lxc:web1"));
        assert!(names_guest(&d, "0123"));
        assert!(!names_guest(&d, "012"), "IDs need 4 characters");
        assert!(names_guest(&d, "pid:42"), "a PID names any engine's guest");
        assert!(!names_guest(&d, "pid:43"));
        let p = rec(Engine::Podman, "web1");
        assert!(names_guest(&p, "podman:web1"));
        assert!(!names_guest(&p, "docker:web1"));
    }
}
