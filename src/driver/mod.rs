//! Host-interface drivers, one file per kind. Each driver owns its kind's whole life:
//! - `plan`: the steps that put the guest interface in place, from the request and the state
//!   it observes;
//! - `apply`: its own ops (the guest-side addressing ops are `addressing`'s);
//! - `undo`: its own journal entries, for rollback, crash recovery and teardown alike;
//! - `teardown`: which entries a detach replays (and what it adds, e.g. a bridge now unused);
//! - `alive` and `check`: does the live interface still match the record.
//!
//! The kind is chosen as the original chooses it, by asking each registered driver in order
//! whether it claims the host interface: `--direct-phys`, an existing Linux bridge, an
//! existing Open vSwitch bridge, an InfiniBand interface (IPoIB), any other existing link
//! (macvlan); a missing name by its prefix (`br*` bridge, `ovs*` OVS bridge, `dummy*` dummy).
//! Adding a kind: its file, and one line in [`DRIVERS`].

pub mod bridge;
pub mod dummy;
pub mod ipoib;
pub mod macvlan;
pub mod ovs;
pub mod phys;

use netlink_packet_route::link::{InfoKind, LinkLayerType, LinkMessage};

pub use crate::driver_api::{Driver, Found, HostIf, PlanCtx, Undone, DEFAULT_GUEST_IFNAME};
use crate::error::Error;
use crate::links::{self, get_link};
use crate::netlink::{msg, Rtnl};
use crate::plan::{Kind, Plan};
use crate::request::HostIfSpec;

/// The registry, in the order drivers are asked to claim a host interface.
pub static DRIVERS: &[&dyn Driver] = &[
    &phys::Phys,
    &bridge::Bridge,
    &ovs::Ovs,
    &ipoib::Ipoib,
    &macvlan::Macvlan,
    &dummy::Dummy,
];

pub fn driver(kind: Kind) -> &'static dyn Driver {
    DRIVERS
        .iter()
        .copied()
        .find(|d| d.kind() == kind)
        .unwrap_or(&bridge::Bridge)
}

/// Finds the host interface named on the command line (by name, or by MAC for `mac:`).
pub fn find_host_if(nl: &mut dyn Rtnl, spec: &HostIfSpec) -> Result<HostIf, Error> {
    let (name, link) = match spec {
        HostIfSpec::Name(name) => (name.clone(), get_link(nl, name)?),
        HostIfSpec::Mac(mac) => {
            let link = links::find_by_mac(nl, mac)?.ok_or_else(|| {
                Error::HostInterface(format!(
                    "Mac address {mac} specified for interface but no host interface matched."
                ))
            })?;
            let name = msg::link_name(&link).unwrap_or_default().to_string();
            (name, Some(link))
        }
    };
    let found = classify(&name, link.as_ref())?;
    Ok(HostIf { name, link, found })
}

fn classify(name: &str, link: Option<&LinkMessage>) -> Result<Found, Error> {
    let Some(link) = link else {
        return Ok(Found::Missing);
    };
    Ok(match msg::link_kind(link) {
        Some(InfoKind::Bridge) => Found::LinuxBridge,
        // The kernel datapath's bridge device.
        Some(InfoKind::Other(k)) if k == "openvswitch" => Found::Ovs(None),
        // The userspace datapath's bridge device is a tap: ask OVS whether it is one of its
        // bridges (only then, so other attaches never talk to OVS).
        Some(InfoKind::Tun) if link.header.link_layer_type == LinkLayerType::Ether => {
            match ovs::bridge_datapath(name)? {
                ovs::OvsBridge::Exists(dp) => Found::Ovs(Some(dp)),
                ovs::OvsBridge::Absent | ovs::OvsBridge::NotInstalled => Found::Other,
                // Could be an OVS bridge we cannot see: a macvlan on it would silently put the
                // guest on the wrong network.
                ovs::OvsBridge::NotRunning(why) => {
                    return Err(Error::Engine(format!(
                        "{name} is a tap device and Open vSwitch, whose userspace bridges are \
                         taps, cannot be asked about it ({why}); if it is an OVS bridge, start \
                         OVS or set OVS_RUNDIR"
                    )))
                }
            }
        }
        _ if link.header.link_layer_type == LinkLayerType::Infiniband => Found::Infiniband,
        _ => Found::Other,
    })
}

/// Picks the driver that claims the host interface and lets it plan the link.
pub fn plan_link(ctx: &mut PlanCtx<'_>) -> Result<Plan, Error> {
    let host_if = find_host_if(ctx.host, &ctx.req.host_if)?;
    // The front end said which kind (CNI): that driver plans, and refuses an interface that
    // is not of its kind.
    if let Some(k) = ctx.req.kind {
        return driver(k).plan(ctx, &host_if);
    }
    match DRIVERS.iter().find(|d| d.claims(&host_if, ctx.req)) {
        Some(d) => d.plan(ctx, &host_if),
        None => Err(Error::HostInterface(format!(
            "I do not know how to setup interface {}: no such link, and only names starting \
             with 'br' (Linux bridge), 'ovs' (Open vSwitch bridge) or 'dummy' are created",
            host_if.name
        ))),
    }
}
