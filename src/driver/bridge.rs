//! Linux bridge driver: a veth pair whose host end is a port of the bridge.

use crate::driver::{get_link, guest_ifname, new_plan, refuse_tag, HostIf, DEFAULT_GUEST_IFNAME};
use crate::error::Error;
use crate::naming::default_host_ifname;
use crate::netlink::msg;
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
