//! dummy driver: a dummy interface inside the guest (`pipework dummy C 10.0.21.101/24`).

use crate::driver_api::{
    create_in_guest, guest_ifname, new_plan, refuse_tag, Driver, Found, HostIf, PlanCtx,
    DEFAULT_GUEST_IFNAME,
};
use crate::env::Env;
use crate::error::Error;
use crate::plan::{GuestLink, Kind, Op, Plan, Step};
use crate::request::AttachRequest;

pub struct Dummy;

impl Driver for Dummy {
    fn kind(&self) -> Kind {
        Kind::Dummy
    }

    fn guest_link(&self) -> Option<crate::plan::LinkKind> {
        Some(crate::plan::LinkKind::Dummy)
    }

    fn claims(&self, host_if: &HostIf, _req: &AttachRequest) -> bool {
        host_if.found == Found::Missing && host_if.name.starts_with("dummy")
    }

    fn plan(&self, ctx: &mut PlanCtx<'_>, host_if: &HostIf) -> Result<Plan, Error> {
        plan(ctx, host_if)
    }

    fn apply(&self, op: &Op, env: &mut Env<'_>) -> Result<bool, Error> {
        create_in_guest(env, op)
    }
}

pub fn plan(ctx: &mut PlanCtx<'_>, host_if: &HostIf) -> Result<Plan, Error> {
    refuse_tag(ctx, "a dummy interface")?;
    let guest = guest_ifname(ctx, DEFAULT_GUEST_IFNAME)?;
    let mut plan = new_plan(Kind::Dummy, &host_if.name, guest, ctx);
    plan.steps.push(Step::new(
        "create-dummy",
        Op::CreateInGuest {
            link: GuestLink::Dummy,
            name: plan.guest_ifname.clone(),
            mtu: ctx.req.mtu,
            mac: ctx.req.mac,
        },
    ));
    Ok(plan)
}
