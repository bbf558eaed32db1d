//! Linux bridge driver: a veth pair whose host end is a port of the bridge.

use crate::driver::{get_link, HostIf};
use crate::error::Error;
use crate::naming::default_host_ifname;
use crate::netlink::msg;
use crate::plan::{Op, Plan, PlanCtx, Step};

pub const DEFAULT_GUEST_IFNAME: &str = "eth1";
const DEFAULT_MTU: u32 = 1500;

pub fn plan(ctx: &mut PlanCtx<'_>, host_if: &HostIf) -> Result<Plan, Error> {
    let req = ctx.req;
    if let Some(vlan) = req.vlan {
        return Err(Error::Invalid(format!(
            "VLAN {vlan} requested on Linux bridge {}: VLAN tags are not supported on Linux \
             bridges (as in the original); use an Open vSwitch bridge or a physical interface",
            host_if.name
        )));
    }
    let guest_ifname = req
        .guest_ifname
        .clone()
        .unwrap_or_else(|| DEFAULT_GUEST_IFNAME.to_string());
    let host_ifname = req
        .host_ifname
        .clone()
        .unwrap_or_else(|| default_host_ifname(&guest_ifname, ctx.guest.naming_id()));
    if host_ifname == host_if.name {
        return Err(Error::Invalid(format!(
            "the host-side name {host_ifname} (-l) is the bridge's own name"
        )));
    }
    let mut steps = Vec::new();

    let created = host_if.link.is_none();
    let mtu = match (&host_if.link, req.mtu) {
        (_, Some(m)) => m,
        (Some(l), None) => msg::link_mtu(l).unwrap_or(DEFAULT_MTU),
        (None, None) => DEFAULT_MTU,
    };
    if created {
        steps.push(Step::new(
            "create-bridge",
            Op::CreateBridge {
                name: host_if.name.clone(),
                mtu: None,
            },
        ));
    }

    // The guest must not already have an interface of that name.
    if get_link(ctx.guest_nl, &guest_ifname)?.is_some() {
        return Err(Error::Busy(format!(
            "guest {} already has an interface named {guest_ifname}; choose another name with -i",
            ctx.guest.spec
        )));
    }

    // A host link of the chosen name: replace it if down (a leftover), refuse if up (in use).
    if let Some(existing) = get_link(ctx.host, &host_ifname)? {
        if msg::link_is_up(&existing) {
            return Err(Error::Busy(format!(
                "Link {host_ifname} exists and is up: it is in use; pick another host-side name \
                 with -l, or remove it"
            )));
        }
        steps.push(Step::new(
            "replace-stale-host-link",
            Op::DeleteStaleLink {
                name: host_ifname.clone(),
            },
        ));
    }

    steps.push(Step::new(
        "create-veth",
        Op::CreateVeth {
            host: host_ifname.clone(),
            bridge: host_if.name.clone(),
            guest: guest_ifname.clone(),
            mtu,
            mac: req.mac,
        },
    ));

    Ok(Plan {
        kind: "bridge",
        host_interface: host_if.name.clone(),
        host_interface_created: created,
        host_ifname: host_ifname.clone(),
        guest_ifname,
        mtu,
        mac: req.mac,
        addresses: Vec::new(),
        gateway: None,
        steps,
        ready: Some(Step::new(
            "wait-port-ready",
            Op::WaitPortReady {
                port: host_ifname.clone(),
            },
        )),
    })
}
