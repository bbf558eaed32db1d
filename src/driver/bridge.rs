//! Linux bridge driver: a veth pair whose host end is a port of the bridge (created, up and
//! marked as pipework's, when it does not exist). The veth half is shared with the OVS driver.

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::InfoKind;

use crate::driver_api::veth::{apply_veth, check_host_end, host_end_matches, plan_veth};
use crate::driver_api::{
    check_guest_link, guest_ifname, new_plan, refuse_tag, teardown_then, Driver, Found, HostIf,
    PlanCtx, Undone, DEFAULT_GUEST_IFNAME,
};
use crate::env::{Env, Sys};
use crate::error::Error;
use crate::links::{self, get_link, is_ours, link_index};
use crate::log::Log;
use crate::netlink::{msg, Netlink, Rtnl};
use crate::plan::{Kind, LinkKind, Op, Plan, Side, Step, UndoEntry};
use crate::request::AttachRequest;
use crate::store::Record;

pub struct Bridge;

impl Driver for Bridge {
    fn kind(&self) -> Kind {
        Kind::Bridge
    }

    fn guest_link(&self) -> Option<crate::plan::LinkKind> {
        Some(LinkKind::Veth)
    }

    fn claims(&self, host_if: &HostIf, _req: &AttachRequest) -> bool {
        host_if.found == Found::LinuxBridge
            || (host_if.found == Found::Missing && host_if.name.starts_with("br"))
    }

    fn plan(&self, ctx: &mut PlanCtx<'_>, host_if: &HostIf) -> Result<Plan, Error> {
        plan(ctx, host_if)
    }

    fn apply(&self, op: &Op, env: &mut Env<'_>) -> Result<bool, Error> {
        match op {
            Op::CreateBridge { name, mtu } => create_bridge(env, name, *mtu)?,
            Op::WaitPortReady { port } => wait_port_ready(env.host, env.log, port)?,
            _ => return apply_veth(op, env),
        }
        Ok(true)
    }

    fn undo(&self, entry: &UndoEntry, sys: &mut Sys<'_>) -> Option<Undone> {
        match entry {
            UndoEntry::DeleteBridge { name } => Some(delete_bridge_if_unused(sys, name)),
            _ => None,
        }
    }

    /// Any attachment on a bridge pipework created removes it when it is the last port.
    fn teardown(&self, rec: &Record) -> Vec<UndoEntry> {
        teardown_then(
            rec,
            UndoEntry::DeleteBridge {
                name: rec.header.host_interface.clone(),
            },
        )
    }

    fn alive(&self, rec: &Record, sys: &mut Sys<'_>) -> bool {
        host_end_matches(rec, sys)
    }

    fn check(&self, rec: &Record, sys: &mut Sys<'_>) -> Result<Vec<String>, Error> {
        let mut d = check_host_end(rec, sys)?;
        if d.is_empty() {
            if let Some(h) = &rec.header.host_ifname {
                let port = get_link(sys.host, h)?;
                let bridge = get_link(sys.host, &rec.header.host_interface)?;
                match (port, bridge) {
                    (_, None) => d.push(format!("bridge {} is gone", rec.header.host_interface)),
                    (Some(p), Some(b)) if msg::link_master(&p) != Some(b.header.index) => d.push(
                        format!("{h} is no longer a port of {}", rec.header.host_interface),
                    ),
                    _ => {}
                }
            }
        }
        d.extend(check_guest_link(rec, sys)?);
        Ok(d)
    }
}

fn create_bridge(env: &mut Env<'_>, name: &str, mtu: Option<u32>) -> Result<(), Error> {
    env.journal.will(UndoEntry::DeleteBridge {
        name: name.to_string(),
    })?;
    match env
        .host
        .request(msg::new_bridge(name, mtu), NLM_F_CREATE | NLM_F_EXCL)
    {
        Ok(()) => {
            env.learned.bridge_index = Some(link_index(env.host, name, Side::Host)?);
        }
        // Another attach created it in the meantime: use it, if it is a bridge (and never
        // remove it on rollback: it is that attach's).
        Err(e) if e.errno == libc::EEXIST => {
            env.journal.cancel_last()?;
            let l = get_link(env.host, name)?
                .filter(|l| matches!(msg::link_kind(l), Some(InfoKind::Bridge)));
            let l = l.ok_or_else(|| Error::netlink(format!("cannot create bridge {name}"), e))?;
            env.learned.bridge_index = Some(l.header.index);
            env.learned.applied.host_interface_existed = true;
        }
        Err(e) => {
            crate::driver_api::refused(env, &e)?;
            return Err(Error::netlink(format!("cannot create bridge {name}"), e));
        }
    }
    Ok(())
}

/// A bridge pipework created (it carries pipework's link group) goes once no port is left on
/// it (counting the ports a batch is about to delete as gone).
fn delete_bridge_if_unused(sys: &mut Sys<'_>, name: &str) -> Undone {
    let Some(l) = get_link(sys.host, name)? else {
        return Ok(None);
    };
    if !is_ours(&l, LinkKind::Bridge) {
        return Ok(None);
    }
    let ports = links::bridge_ports(sys.host, l.header.index)?;
    if ports.iter().any(|p| !sys.going(p)) {
        return Ok(None);
    }
    let what = format!("delete bridge {name} (created by pipework, now unused)");
    if sys.dry_run() {
        return Ok(Some(what));
    }
    if let Some(b) = sys.batch.as_deref_mut() {
        // Its ports go with the batch's group delete: the bridge must wait for that.
        if !ports.is_empty() {
            b.host_links.insert(name.to_string());
            sys.host
                .request(msg::set_link_group(l.header.index, b.group), 0)
                .map_err(|e| Error::netlink(format!("cannot queue {name} for deletion"), e))?;
            return Ok(Some(what));
        }
    }
    links::delete_link(sys.host, l.header.index, name)?;
    Ok(Some(what))
}

pub fn plan(ctx: &mut PlanCtx<'_>, host_if: &HostIf) -> Result<Plan, Error> {
    refuse_tag(ctx, &format!("Linux bridge {}", host_if.name))?;
    let guest = guest_ifname(ctx, DEFAULT_GUEST_IFNAME)?;
    let mut plan = new_plan(Kind::Bridge, &host_if.name, guest, ctx);
    if host_if.link.is_none() {
        plan.host_interface_created = true;
        plan.steps.push(Step::new(
            "create-bridge",
            Op::CreateBridge {
                name: host_if.name.clone(),
                mtu: None,
            },
        ));
    }
    let host = plan_veth(ctx, host_if, &mut plan, Some(host_if.name.clone()))?;
    plan.ready = Some(Step::new(
        "wait-port-ready",
        Op::WaitPortReady { port: host },
    ));
    Ok(plan)
}

/// How long to wait for the bridge to enable a new port. Normally it is enabled already, or
/// within microseconds; a loaded machine can delay the kernel's link-watch work.
const PORT_READY_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

fn port_enabled(nl: &mut dyn Rtnl, port: &str) -> Result<bool, Error> {
    use netlink_packet_route::link::BridgePortState;
    let link = get_link(nl, port)?.ok_or_else(|| {
        Error::HostInterface(format!("bridge port {port} disappeared from the host"))
    })?;
    // Forwarding, or STP's listening/learning: the bridge has seen the carrier; STP's own
    // delays are the bridge's policy, not ours to wait out.
    Ok(!matches!(
        msg::bridge_port_state(&link),
        Some(BridgePortState::Disabled)
    ))
}

/// Event-driven: the kernel notifies RTM_NEWLINK for the port right after the bridge has
/// processed its carrier change, so we subscribe, re-check, and sleep only on the socket.
pub fn wait_port_ready(host: &mut dyn Rtnl, log: Log, port: &str) -> Result<(), Error> {
    if port_enabled(host, port)? {
        return Ok(());
    }
    let mut events =
        Netlink::open().map_err(|e| Error::netlink("cannot open a netlink socket", e))?;
    events
        .subscribe(crate::netlink::RTNLGRP_LINK)
        .map_err(|e| Error::netlink("cannot subscribe to link events", e))?;
    let deadline = std::time::Instant::now() + PORT_READY_LIMIT;
    loop {
        if port_enabled(&mut events, port)? {
            return Ok(());
        }
        let now = std::time::Instant::now();
        if now >= deadline {
            log.info(format_args!(
                "bridge port {port} still disabled after {PORT_READY_LIMIT:?}; announcing anyway"
            ));
            return Ok(());
        }
        // Any link event may be ours; the re-check above decides.
        events
            .recv_events(deadline - now)
            .map_err(|e| Error::netlink("cannot read link events", e))?;
    }
}
