//! The engine: one [`Session`] per process, under every front end (the CLI, `watch`, and the
//! CNI plugin and topology `apply` to come). It holds the home namespace, one netlink socket
//! per namespace (reused across requests), the state store and the log; it runs typed
//! requests and returns typed reports. Front ends only parse input and render output.
//!
//! The path of one attach: request → guest resolved → driver plans (no change yet) → record
//! started (journal) → apply, each change journalled before it is made → record completed →
//! report. Any failure replays the journal backwards; a crash leaves it for `gc`.

pub mod lab;
pub mod records;

use std::collections::HashMap;

use crate::apply;
use crate::driver::{self, PlanCtx};
use crate::env::{Env, Learned};
use crate::error::Error;
use crate::guest::{self, Guest};
use crate::log::Log;
use crate::netlink::Netlink;
use crate::ns::NetNs;
use crate::plan::Plan;
use crate::report::{Applied, AttachReport};
use crate::request::{AttachRequest, ExecRequest, WaitRequest};
use crate::store::{self, GuestRef, Header, Identity, NetnsRef, RecordFile, RecordState};

/// Sockets kept for guests' namespaces. A socket pins its namespace, so a long-running session
/// (watch) must not keep one per guest forever: past this many, the cache is emptied.
const GUEST_SOCKETS: usize = 256;

#[derive(Debug, Clone, Copy, Default)]
pub struct SessionOptions {
    /// Log each step on stderr (`-v`).
    pub verbose: bool,
}

pub struct Session {
    home: NetNs,
    host: Netlink,
    guests: HashMap<u64, Netlink>,
    log: Log,
    /// The test hook's step (test builds only; see `testhook`).
    fail_after: Option<String>,
    /// Which engine really serves the Docker API the `docker:` guests come from (watch on a
    /// Podman socket records its guests as Podman's).
    api_engine: Option<crate::guest::Engine>,
    /// How many guests' sockets are kept (a lab's apply keeps one per guest of the lab).
    max_sockets: usize,
}

impl Session {
    /// Opens the session in the calling thread's network namespace, which becomes "the host".
    pub fn open(opts: SessionOptions) -> Result<Session, Error> {
        let home = NetNs::current()?;
        let host =
            Netlink::open().map_err(|e| Error::netlink("cannot open a netlink socket", e))?;
        tracing::debug!(
            "session opened in the network namespace of inode {} ({})",
            home.inode,
            home.path.display()
        );
        Ok(Session {
            home,
            host,
            guests: HashMap::new(),
            log: Log {
                verbose: opts.verbose,
            },
            fail_after: crate::testhook::fail_after_step(),
            api_engine: None,
            max_sockets: GUEST_SOCKETS,
        })
    }

    /// Says which engine serves the Docker API (`docker:` guests are recorded as its).
    pub fn set_api_engine(&mut self, e: crate::guest::Engine) {
        self.api_engine = Some(e);
    }

    /// The socket into a guest's namespace, opened once per namespace.
    fn guest_socket(&mut self, ns: &NetNs) -> Result<&mut Netlink, Error> {
        if !self.guests.contains_key(&ns.inode) {
            if self.guests.len() >= self.max_sockets {
                self.guests.clear();
            }
            let nl = ns.run_in(&self.home, Netlink::open)?.map_err(|e| {
                Error::netlink(
                    format!(
                        "cannot open a netlink socket in the guest's namespace {}",
                        ns.path.display()
                    ),
                    e,
                )
            })?;
            self.guests.insert(ns.inode, nl);
        }
        Ok(self.guests.get_mut(&ns.inode).expect("inserted above"))
    }

    /// Lets a guest's namespace go (its socket pins it), e.g. once it is detached.
    pub fn forget_guest(&mut self, inode: u64) {
        self.guests.remove(&inode);
    }

    pub fn resolve(&self, spec: &guest::GuestSpec) -> Result<Guest, Error> {
        let mut g = guest::resolve(&spec.to_string(), spec, &self.home)?;
        if let (crate::guest::Engine::Docker, Some(e)) = (g.engine, self.api_engine) {
            g.engine = e;
        }
        Ok(g)
    }

    /// Plumbs one interface into one guest; with `dry_run`, only plans.
    pub fn attach(&mut self, req: &AttachRequest, dry_run: bool) -> Result<AttachReport, Error> {
        self.attach_with(req, dry_run, None)
    }

    /// An attach whose addresses exist only once the interface does (a CNI `dhcp` IPAM, whose
    /// daemon talks DHCP through it): the link is planned and applied from `req` (its
    /// addressing and the bridge's layer-3 options are left out), then `addresses` gives the
    /// rest, which is planned and applied in the same journal before the record completes. A
    /// failure in either stage rolls both back.
    pub fn attach_staged(
        &mut self,
        req: &AttachRequest,
        addresses: &mut dyn FnMut() -> Result<Stage2, Error>,
    ) -> Result<AttachReport, Error> {
        self.attach_with(req, false, Some(addresses))
    }

    fn attach_with(
        &mut self,
        req: &AttachRequest,
        dry_run: bool,
        stage2: Option<&mut dyn FnMut() -> Result<Stage2, Error>>,
    ) -> Result<AttachReport, Error> {
        let staged_first;
        let req = if stage2.is_some() {
            let mut bridge = (*req.bridge).clone();
            bridge.gateways.clear();
            bridge.masquerade = None;
            staged_first = AttachRequest {
                addressing: crate::request::Addressing::None,
                bridge: Box::new(bridge),
                ..req.clone()
            };
            &staged_first
        } else {
            req
        };
        crate::privilege::require_admin()?;
        let mut guest = self.resolve(&req.guest)?;
        if let Some(o) = &req.owner {
            guest.id = Some(o.container_id.clone());
        }
        // Shared with other attaches, exclusive of detach/gc (see store::lock).
        let _lock = if dry_run {
            None
        } else {
            Some(store::lock(false)?)
        };
        self.attach_guest(req, &guest, dry_run, stage2, true)
    }

    /// An attach into a guest already resolved, the store's lock already held (a lab's apply
    /// holds it once for all). Without `announce`, the plan's wait for the bridge port and its
    /// gratuitous ARPs (arp_notify, the final announce) are left out: on a bridge the caller
    /// has just created, no neighbour can hold a stale entry.
    pub(crate) fn attach_guest(
        &mut self,
        req: &AttachRequest,
        guest: &Guest,
        dry_run: bool,
        mut stage2: Option<&mut dyn FnMut() -> Result<Stage2, Error>>,
        announce: bool,
    ) -> Result<AttachReport, Error> {
        self.log.info(format_args!(
            "guest {}: {:?}{}, namespace {} (inode {})",
            guest.spec,
            guest.engine,
            guest.pid.map(|p| format!(" pid {p}")).unwrap_or_default(),
            guest.netns.path.display(),
            guest.netns.inode
        ));
        if !dry_run {
            self.recover_interface(guest, req)?;
        }
        self.guest_socket(&guest.netns)?;
        let Session { host, guests, .. } = self;
        let guest_nl = guests.get_mut(&guest.netns.inode).expect("opened above");
        let mut plan = plan_attach(&mut PlanCtx {
            req,
            guest,
            host,
            guest_nl,
        })?;
        if !announce {
            plan.steps.retain(|s| {
                !matches!(
                    s.op,
                    crate::plan::Op::WaitPortReady { .. }
                        | crate::plan::Op::Announce { .. }
                        | crate::plan::Op::SetArpNotify { .. }
                )
            });
        }
        if dry_run {
            return Ok(AttachReport::new(guest, &plan, None));
        }
        let path = store::path_for(guest.netns.inode, &plan.guest_ifname);
        let mut header = header_of(&self.home, guest, &plan);
        header.owner = req.owner.clone();
        let mut record = RecordFile::create(&path, header)?;
        // The record's completion is apply's last step (`record`): a failure there rolls the
        // whole attach back like any other.
        let mut report = None;
        let mut env = Env {
            host: &mut self.host,
            guest: self
                .guests
                .get_mut(&guest.netns.inode)
                .expect("opened above"),
            guest_ns: &guest.netns,
            home: &self.home,
            guest_desc: guest,
            log: self.log,
            journal: &mut record,
            learned: Learned::default(),
        };
        let fail_after = self.fail_after.clone();
        let applied = apply::apply(&plan, &mut env, fail_after.as_deref(), |env| {
            let mut whole = None;
            if let Some(f) = stage2.as_mut() {
                let s2 = f()?;
                let req2 = AttachRequest {
                    addressing: s2.addressing,
                    bridge: Box::new(s2.bridge),
                    ..req.clone()
                };
                let p2 = plan_stage2(&req2, guest, env, &plan)?;
                apply::run_steps(&p2, env, fail_after.as_deref(), &mut Vec::new())?;
                let mut all = plan.clone();
                all.addresses.extend(p2.addresses);
                all.gateway = all.gateway.or(p2.gateway);
                all.steps.extend(p2.steps);
                whole = Some(all);
            }
            let plan = whole.as_ref().unwrap_or(&plan);
            let applied = &env.learned.applied;
            let mut rep = AttachReport::new(guest, plan, Some(applied.clone()));
            rep.owner = req.owner.clone();
            let value = serde_json::to_value(&rep)
                .map_err(|e| Error::Internal(format!("cannot encode the attach report: {e}")))?;
            env.journal
                .complete(identity_of(plan, applied), value, plan.host_ifname.clone())?;
            report = Some(rep);
            Ok(())
        });
        if let Err(e) = applied {
            // Nothing left: the record goes. Something left: it stays, incomplete, for gc (or
            // the next attach of this interface) to finish the rollback.
            if e.left_behind().is_empty() {
                record.discard();
            }
            return Err(e);
        }
        if let Some(o) = &req.owner {
            // Best effort: without it, a DEL finds the record by reading them all.
            let _ = store::write_atomic(
                &store::owner_index(o, &plan.guest_ifname),
                path.display().to_string().as_bytes(),
            );
        }
        report.ok_or_else(|| Error::Internal("the attach left no report".into()))
    }

    /// The MAC of a host link (what a CNI result shows for the bridge and the host end).
    pub fn host_link_mac(&mut self, name: &str) -> Option<crate::mac::MacAddr> {
        crate::links::get_link(&mut self.host, name)
            .ok()
            .flatten()
            .as_ref()
            .and_then(crate::netlink::msg::link_mac)
    }

    /// Why a bridge of this name could not be used or created now, if it could not.
    pub fn host_interface_problem(&mut self, name: &str) -> Option<String> {
        match crate::links::get_link(&mut self.host, name) {
            Err(e) => Some(e.to_string()),
            Ok(None) => None,
            Ok(Some(l)) => match crate::netlink::msg::link_kind(&l) {
                Some(netlink_packet_route::link::InfoKind::Bridge) => None,
                _ => Some(format!("{name:?} already exists but is not a bridge")),
            },
        }
    }

    /// `route|rule|tc GUEST ARGS…`: the tool's exit status.
    pub fn exec(&mut self, e: &ExecRequest) -> Result<i32, Error> {
        crate::privilege::require_admin()?;
        let guest = self.resolve(&e.guest)?;
        self.log.info(format_args!(
            "running {} {} in {}",
            e.tool.argv().join(" "),
            e.args.join(" "),
            guest.netns.path.display()
        ));
        crate::exec::run_tool(e.tool, &e.args, &guest.netns)
    }

    /// `exec` with the tool's output kept (`--json`): status, stdout, stderr.
    pub fn exec_captured(&mut self, e: &ExecRequest) -> Result<(i32, String, String), Error> {
        crate::privilege::require_admin()?;
        let guest = self.resolve(&e.guest)?;
        crate::exec::capture_tool(e.tool, &e.args, &guest.netns)
    }

    /// `--wait`: inside a guest, until the interface is up.
    pub fn wait(&mut self, w: &WaitRequest) -> Result<(), Error> {
        crate::wait::wait_for_link(&w.ifname, w.timeout)
    }
}

/// What the second stage of a staged attach gets from the front end.
pub struct Stage2 {
    pub addressing: crate::request::Addressing,
    /// Its gateways and masquerading (the rest of the bridge's options come with the link).
    pub bridge: crate::request::BridgeOptions,
}

/// A staged attach's second plan: the bridge's layer-3 steps and the addressing, for the link
/// the first plan made.
fn plan_stage2(
    req: &AttachRequest,
    guest: &Guest,
    env: &mut Env<'_>,
    first: &Plan,
) -> Result<Plan, Error> {
    let mut p = Plan {
        steps: Vec::new(),
        ready: None,
        addresses: Vec::new(),
        gateway: None,
        ..first.clone()
    };
    let mut ctx = PlanCtx {
        req,
        guest,
        host: &mut *env.host,
        guest_nl: &mut *env.guest,
    };
    if first.kind == crate::plan::Kind::Bridge {
        driver::bridge::plan_layer3(&ctx, &first.host_interface, &mut p);
    }
    crate::addressing::plan_static(&mut ctx, &mut p)?;
    Ok(p)
}

/// The whole plan of an attach: the kind's link, then the guest-side addressing.
pub fn plan_attach(ctx: &mut PlanCtx<'_>) -> Result<Plan, Error> {
    let mut plan = driver::plan_link(ctx)?;
    crate::addressing::plan_static(ctx, &mut plan)?;
    Ok(plan)
}

fn header_of(home: &NetNs, guest: &Guest, plan: &Plan) -> Header {
    Header {
        version: store::VERSION,
        state: RecordState::Incomplete,
        created: 0,
        kind: plan.kind,
        guest: GuestRef {
            spec: guest.spec.clone(),
            engine: guest.engine,
            id: guest.id.clone(),
            name: guest.name.clone(),
            pid: guest.pid,
        },
        netns: NetnsRef {
            path: guest.netns.path.display().to_string(),
            inode: guest.netns.inode,
        },
        host_netns: home.inode,
        ifname: plan.guest_ifname.clone(),
        host_interface: plan.host_interface.clone(),
        host_ifname: plan.host_ifname.clone(),
        writer: 0,
        identity: None,
        attachment: None,
        owner: None,
    }
}

fn identity_of(plan: &Plan, a: &Applied) -> Identity {
    Identity {
        mac: a.guest_mac,
        host_ifindex: a.host_index,
        guest_ifindex: a.guest_index,
        guest_link: driver::driver(plan.kind).guest_link(),
    }
}

#[cfg(test)]
mod tests;
