//! IPoIB driver: a child of an InfiniBand interface (the IPoIB equivalent of a macvlan),
//! created directly inside the guest, named ib0 by default; `@PKEY` is a hexadecimal
//! partition key. InfiniBand is not Ethernet: no MAC can be chosen.

use crate::driver_api::{
    create_in_guest, guest_ifname, host_link_up, new_plan, Driver, Found, HostIf, PlanCtx,
};
use crate::env::Env;
use crate::error::Error;
use crate::netlink::msg;
use crate::plan::{GuestLink, Kind, Op, Plan, Step};
use crate::request::{pkey, AttachRequest};

pub struct Ipoib;

impl Driver for Ipoib {
    fn kind(&self) -> Kind {
        Kind::Ipoib
    }

    fn guest_link(&self) -> Option<crate::plan::LinkKind> {
        Some(crate::plan::LinkKind::Ipoib)
    }

    fn claims(&self, host_if: &HostIf, _req: &AttachRequest) -> bool {
        host_if.found == Found::Infiniband
    }

    fn plan(&self, ctx: &mut PlanCtx<'_>, host_if: &HostIf) -> Result<Plan, Error> {
        plan(ctx, host_if)
    }

    fn apply(&self, op: &Op, env: &mut Env<'_>) -> Result<bool, Error> {
        Ok(host_link_up(env, op)? || create_in_guest(env, op)?)
    }
}

/// The IPoIB kernel module is fussy about names: ib0 unless told otherwise, as the original.
pub const DEFAULT_GUEST_IFNAME: &str = "ib0";

pub fn plan(ctx: &mut PlanCtx<'_>, host_if: &HostIf) -> Result<Plan, Error> {
    if ctx.req.mac.is_some() {
        return Err(Error::Invalid(
            "MACADDR configuration unsupported for IPoIB interfaces.".into(),
        ));
    }
    let pkey = ctx.req.tag.as_deref().map(pkey).transpose()?;
    let guest = guest_ifname(ctx, DEFAULT_GUEST_IFNAME)?;
    let mut plan = new_plan(Kind::Ipoib, &host_if.name, guest, ctx);
    plan.vlan = pkey;
    // Re-setting the MAC (our announce trigger) is not possible on IPoIB; arp_notify still
    // announces when the link comes up.
    plan.announce = false;
    if host_if.link.as_ref().is_some_and(|l| !msg::link_is_up(l)) {
        plan.steps.push(Step::new(
            "host-link-up",
            Op::HostLinkUp {
                name: host_if.name.clone(),
            },
        ));
    }
    plan.steps.push(Step::new(
        "create-ipoib",
        Op::CreateInGuest {
            link: GuestLink::Ipoib {
                parent: host_if.name.clone(),
                pkey,
            },
            name: plan.guest_ifname.clone(),
            mtu: ctx.req.mtu,
            mac: None,
        },
    ));
    Ok(plan)
}
