//! Linux bridge driver: a veth pair whose host end is a port of the bridge.

use crate::apply::Log;
use crate::driver::{get_link, guest_ifname, new_plan, refuse_tag, HostIf, DEFAULT_GUEST_IFNAME};
use crate::error::Error;
use crate::naming::default_host_ifname;
use crate::netlink::{msg, Netlink};
use crate::plan::{Kind, Op, Plan, PlanCtx, Step};

const DEFAULT_MTU: u32 = 1500;

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

/// The veth pair of the bridge and OVS kinds: checks the host-side name (a down leftover is
/// replaced, an up one refused) and adds the creation step. Returns the host end's name.
pub fn plan_veth(
    ctx: &mut PlanCtx<'_>,
    host_if: &HostIf,
    plan: &mut Plan,
    master: Option<String>,
) -> Result<String, Error> {
    let req = ctx.req;
    let host = req
        .host_ifname
        .clone()
        .unwrap_or_else(|| default_host_ifname(&plan.guest_ifname, ctx.guest.naming_id()));
    if host == host_if.name {
        return Err(Error::Invalid(format!(
            "the host-side name {host} (-l) is the bridge's own name"
        )));
    }
    let mtu = match (&host_if.link, req.mtu) {
        (_, Some(m)) => m,
        (Some(l), None) => msg::link_mtu(l).unwrap_or(DEFAULT_MTU),
        (None, None) => DEFAULT_MTU,
    };
    if let Some(existing) = get_link(ctx.host, &host)? {
        if msg::link_is_up(&existing) {
            return Err(Error::Busy(format!(
                "Link {host} exists and is up: it is in use; pick another host-side name with \
                 -l, or remove it"
            )));
        }
        plan.steps.push(Step::new(
            "replace-stale-host-link",
            Op::DeleteStaleLink { name: host.clone() },
        ));
    }
    plan.steps.push(Step::new(
        "create-veth",
        Op::CreateVeth {
            host: host.clone(),
            master,
            guest: plan.guest_ifname.clone(),
            mtu,
            mac: req.mac,
        },
    ));
    plan.host_ifname = Some(host.clone());
    Ok(host)
}

/// How long to wait for the bridge to enable a new port. Normally it is enabled already, or
/// within microseconds; a loaded machine can delay the kernel's link-watch work.
const PORT_READY_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

fn port_enabled(nl: &mut Netlink, port: &str) -> Result<bool, Error> {
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
pub fn wait_port_ready(host: &mut Netlink, log: Log, port: &str) -> Result<(), Error> {
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
