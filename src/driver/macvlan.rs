//! macvlan driver: a child of a host NIC, created directly inside the guest (bridge mode by
//! default, so several guests on one NIC reach each other). `@VLAN` puts it on the NIC's 802.1Q
//! child `<nic>.<vlan>`, created (or reused) first.

use netlink_packet_route::link::{LinkFlags, LinkLayerType};

use crate::driver_api::nic::{apply_parent, plan_parent, undo_vlan};
use crate::driver_api::{
    create_in_guest, guest_ifname, new_plan, Driver, Found, HostIf, PlanCtx, Undone,
    DEFAULT_GUEST_IFNAME,
};
use crate::env::{Env, Sys};
use crate::error::Error;
use crate::netlink::msg;
use crate::plan::{GuestLink, Kind, Op, Plan, Step, UndoEntry};
use crate::request::AttachRequest;
use crate::store::Record;

pub struct Macvlan;

impl Driver for Macvlan {
    fn kind(&self) -> Kind {
        Kind::Macvlan
    }

    fn guest_link(&self) -> Option<crate::plan::LinkKind> {
        Some(crate::plan::LinkKind::Macvlan)
    }

    fn claims(&self, host_if: &HostIf, _req: &AttachRequest) -> bool {
        host_if.found == Found::Other
    }

    fn plan(&self, ctx: &mut PlanCtx<'_>, host_if: &HostIf) -> Result<Plan, Error> {
        plan(ctx, host_if)
    }

    fn apply(&self, op: &Op, env: &mut Env<'_>) -> Result<bool, Error> {
        Ok(apply_parent(op, env)? || create_in_guest(env, op)?)
    }

    /// Any attachment on a VLAN child pipework made removes it when it is the last user.
    fn teardown(&self, rec: &Record) -> Vec<UndoEntry> {
        crate::driver_api::nic::teardown_with_vlan(rec)
    }

    fn undo(&self, entry: &UndoEntry, sys: &mut Sys<'_>) -> Option<Undone> {
        undo_vlan(entry, sys)
    }
}

pub fn plan(ctx: &mut PlanCtx<'_>, host_if: &HostIf) -> Result<Plan, Error> {
    if let Some(l) = &host_if.link {
        if l.header.flags.contains(LinkFlags::Loopback) {
            return Err(Error::HostInterface(format!(
                "{} is the loopback interface: it cannot carry guests",
                host_if.name
            )));
        }
        if l.header.link_layer_type != LinkLayerType::Ether {
            return Err(Error::HostInterface(format!(
                "{} is not an Ethernet interface (link type {:?}): macvlan guests need one; \
                 use a bridge, Open vSwitch, or --direct-phys",
                host_if.name, l.header.link_layer_type
            )));
        }
    }
    let guest = guest_ifname(ctx, DEFAULT_GUEST_IFNAME)?;
    let mut plan = new_plan(Kind::Macvlan, &host_if.name, guest, ctx);
    let parent = plan_parent(ctx, host_if, &mut plan)?;
    let mtu = ctx
        .req
        .mtu
        .or_else(|| host_if.link.as_ref().and_then(msg::link_mtu));
    plan.steps.push(Step::new(
        "create-macvlan",
        Op::CreateInGuest {
            link: GuestLink::Macvlan {
                parent,
                mode: ctx.req.macvlan_mode,
            },
            name: plan.guest_ifname.clone(),
            mtu,
            mac: ctx.req.mac,
        },
    ));
    Ok(plan)
}
