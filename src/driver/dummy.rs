//! dummy driver: a dummy interface inside the guest (`pipework dummy C 10.0.21.101/24`).

use crate::driver::{guest_ifname, new_plan, refuse_tag, HostIf, DEFAULT_GUEST_IFNAME};
use crate::error::Error;
use crate::plan::{GuestLink, Kind, Op, Plan, PlanCtx, Step};

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
