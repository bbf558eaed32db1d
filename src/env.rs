//! What the layers below the engine work with: the namespaces, their netlink sockets (any
//! [`Rtnl`]: the kernel, or the recording fake in unit tests), the journal, and what earlier
//! steps learnt. Plain borrows, so one session's sockets serve many requests.

use std::collections::HashSet;

use crate::guest::Guest;
use crate::log::Log;
use crate::netlink::Rtnl;
use crate::ns::NetNs;
use crate::report::Applied;
use crate::store::Journal;

/// An attach in progress: what every step's apply gets.
pub struct Env<'a> {
    pub host: &'a mut dyn Rtnl,
    pub guest: &'a mut dyn Rtnl,
    pub guest_ns: &'a NetNs,
    /// The guest as resolved (for DHCP supervisors and records).
    pub guest_desc: &'a Guest,
    /// The namespace the session works from (the host side).
    pub home: &'a NetNs,
    pub log: Log,
    /// Gets each change's undo entry before the change is made.
    pub journal: &'a mut dyn Journal,
    pub learned: Learned,
}

/// What earlier steps found out, for later steps and the report.
#[derive(Default)]
pub struct Learned {
    pub bridge_index: Option<u32>,
    /// The guest interface's name and index, once it exists.
    pub guest_index: Option<(String, u32)>,
    /// A DHCP client left running: pid, client name, pidfile, info file.
    pub dhcp_client: Option<(u32, &'static str, std::path::PathBuf, std::path::PathBuf)>,
    pub applied: Applied,
}

impl Env<'_> {
    /// The same namespaces, for undoing.
    pub fn sys(&mut self) -> Sys<'_> {
        Sys {
            host: &mut *self.host,
            guest: Some(&mut *self.guest),
            guest_ns: Some(self.guest_ns),
            home: self.home,
            log: self.log,
            batch: None,
            record: None,
        }
    }
}

/// Undo, teardown and check: the host, and the guest's namespace while it exists.
pub struct Sys<'a> {
    pub host: &'a mut dyn Rtnl,
    pub guest: Option<&'a mut dyn Rtnl>,
    pub guest_ns: Option<&'a NetNs>,
    pub home: &'a NetNs,
    pub log: Log,
    /// Set while many attachments are torn down together (detach --all, gc).
    pub batch: Option<&'a mut Batch>,
    /// The record being torn down (None: a rollback in the attach's own process). Its identity
    /// says which live links are its own: a link of the journalled name but another ifindex
    /// belongs to a newer attachment, and is left alone.
    pub record: Option<&'a crate::store::Record>,
}

/// Host links of many attachments, deleted in one kernel pass: each is moved into the batch's
/// link group as its attachment is torn down, and one group delete takes them all.
#[derive(Debug, Default)]
pub struct Batch {
    pub dry_run: bool,
    pub group: u32,
    /// Host links in the batch (deleted at the flush; with a dry run, would be).
    pub host_links: HashSet<String>,
    /// Records torn down in this run (their attachments no longer count as users).
    pub records: HashSet<std::path::PathBuf>,
    /// One attachment: its host links are deleted at once (one message), not grouped for a
    /// group delete (two).
    pub direct: bool,
}

impl Sys<'_> {
    pub fn dry_run(&self) -> bool {
        self.batch.as_ref().is_some_and(|b| b.dry_run)
    }

    /// A record already torn down in this run.
    pub fn record_going(&self, path: &std::path::Path) -> bool {
        self.batch
            .as_ref()
            .is_some_and(|b| b.records.contains(path))
    }

    /// Host links already on their way out in this batch.
    pub fn going(&self, name: &str) -> bool {
        self.batch
            .as_ref()
            .is_some_and(|b| b.host_links.contains(name))
    }
}
