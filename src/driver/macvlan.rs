//! macvlan driver: a child of a host NIC, created directly inside the guest (bridge mode by
//! default, so several guests on one NIC reach each other). `@VLAN` puts it on the NIC's 802.1Q
//! child `<nic>.<vlan>`, created (or reused) first.

use netlink_packet_route::link::{LinkFlags, LinkLayerType};

use crate::driver::{get_link, guest_ifname, new_plan, HostIf, DEFAULT_GUEST_IFNAME};
use crate::error::Error;
use crate::naming::validate_ifname;
use crate::netlink::msg;
use crate::plan::{GuestLink, Kind, Op, Plan, PlanCtx, Step};
use crate::request::vlan_id;

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

/// Brings the NIC up (as the original does) and, with `@VLAN`, provides its 802.1Q child.
/// Returns the name of the link the guest's interface hangs from (or is: `--direct-phys`).
pub fn plan_parent(
    ctx: &mut PlanCtx<'_>,
    host_if: &HostIf,
    plan: &mut Plan,
) -> Result<String, Error> {
    let nic = host_if.link.as_ref().ok_or_else(|| {
        Error::HostInterface(format!("no interface {} in the host", host_if.name))
    })?;
    if !msg::link_is_up(nic) {
        plan.steps.push(Step::new(
            "host-link-up",
            Op::HostLinkUp {
                name: host_if.name.clone(),
            },
        ));
    }
    let Some(tag) = ctx.req.tag.as_deref() else {
        return Ok(host_if.name.clone());
    };
    let id = vlan_id(tag)?;
    let vname = format!("{}.{id}", host_if.name);
    validate_ifname(&vname, "VLAN interface")?;
    plan.vlan = Some(id);
    match get_link(ctx.host, &vname)? {
        Some(l) => {
            if msg::vlan_id(&l) != Some(id) || msg::link_parent(&l) != Some(nic.header.index) {
                return Err(Error::HostInterface(format!(
                    "{vname} already exists but is not a VLAN device for tag {id} on {}",
                    host_if.name
                )));
            }
            if !msg::link_is_up(&l) {
                plan.steps.push(Step::new(
                    "vlan-link-up",
                    Op::HostLinkUp {
                        name: vname.clone(),
                    },
                ));
            }
        }
        None => plan.steps.push(Step::new(
            "create-vlan",
            Op::CreateVlan {
                parent: host_if.name.clone(),
                name: vname.clone(),
                id,
                mtu: msg::link_mtu(nic),
            },
        )),
    }
    Ok(vname)
}
