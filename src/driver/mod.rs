//! Link drivers: what the host interface is, and how the guest gets a link from it. One module
//! per kind; each returns the steps that put the guest interface in place (each step with its
//! own undo, run by `apply`).
//!
//! The kind is chosen as the original chooses it: an existing Linux bridge, an existing Open
//! vSwitch bridge, an InfiniBand interface (IPoIB), any other existing link (macvlan, or the
//! link itself with `--direct-phys`); a missing name by its prefix (`br*` bridge, `ovs*` OVS
//! bridge, `dummy*` dummy).

pub mod bridge;
pub mod dummy;
pub mod ipoib;
pub mod macvlan;
pub mod ovs;
pub mod phys;

use netlink_packet_route::link::{InfoKind, LinkLayerType, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;

use crate::error::Error;
use crate::mac::MacAddr;
use crate::netlink::{msg, Netlink};
use crate::plan::{Kind, Plan, PlanCtx};
use crate::request::HostIfSpec;

/// The default guest interface name of Ethernet kinds.
pub const DEFAULT_GUEST_IFNAME: &str = "eth1";

/// The host interface as found in the host namespace.
pub struct HostIf {
    pub name: String,
    pub link: Option<LinkMessage>,
}

/// Finds the host interface named on the command line (by name, or by MAC for `mac:`).
pub fn find_host_if(nl: &mut Netlink, spec: &HostIfSpec) -> Result<HostIf, Error> {
    match spec {
        HostIfSpec::Name(name) => Ok(HostIf {
            name: name.clone(),
            link: get_link(nl, name)?,
        }),
        HostIfSpec::Mac(mac) => {
            let link = find_by_mac(nl, mac)?.ok_or_else(|| {
                Error::HostInterface(format!(
                    "Mac address {mac} specified for interface but no host interface matched."
                ))
            })?;
            let name = msg::link_name(&link).unwrap_or_default().to_string();
            Ok(HostIf {
                name,
                link: Some(link),
            })
        }
    }
}

pub fn get_link(nl: &mut Netlink, name: &str) -> Result<Option<LinkMessage>, Error> {
    match nl.get(msg::get_link_by_name(name)) {
        Ok(Some(RouteNetlinkMessage::NewLink(m))) => Ok(Some(m)),
        Ok(_) => Ok(None),
        Err(e) => Err(Error::netlink(format!("cannot look up link {name}"), e)),
    }
}

fn find_by_mac(nl: &mut Netlink, mac: &MacAddr) -> Result<Option<LinkMessage>, Error> {
    let links = nl
        .dump(msg::dump_links())
        .map_err(|e| Error::netlink("cannot list host links", e))?;
    Ok(links.into_iter().find_map(|m| match m {
        RouteNetlinkMessage::NewLink(l) if msg::link_mac(&l).as_ref() == Some(mac) => Some(l),
        _ => None,
    }))
}

/// What the host interface turned out to be.
enum Found {
    LinuxBridge,
    /// An OVS bridge, with its datapath type when known ("netdev", "system", "").
    Ovs(Option<String>),
    Infiniband,
    Other,
}

fn classify(host_if: &HostIf) -> Result<Found, Error> {
    let Some(link) = &host_if.link else {
        // Missing names are decided by their prefix (plan_link); `ovs*` asks OVS there.
        return Ok(Found::Other);
    };
    Ok(match msg::link_kind(link) {
        Some(InfoKind::Bridge) => Found::LinuxBridge,
        // The kernel datapath's bridge device.
        Some(InfoKind::Other(k)) if k == "openvswitch" => Found::Ovs(None),
        // The userspace datapath's bridge device is a tap: ask OVS whether it is one of its
        // bridges (only then, so other attaches never spawn ovs-vsctl).
        Some(InfoKind::Tun) if link.header.link_layer_type == LinkLayerType::Ether => {
            match ovs::bridge_datapath(&host_if.name)? {
                ovs::OvsBridge::Exists(dp) => Found::Ovs(Some(dp)),
                ovs::OvsBridge::Absent | ovs::OvsBridge::NotInstalled => Found::Other,
                // Could be an OVS bridge we cannot see: a macvlan on it would silently put the
                // guest on the wrong network.
                ovs::OvsBridge::NotRunning(why) => {
                    return Err(Error::HostInterface(format!(
                        "{} is a tap device and Open vSwitch, whose userspace bridges are taps, \
                     cannot be asked about it ({why}); if it is an OVS bridge, start OVS or set \
                     OVS_RUNDIR",
                        host_if.name
                    )))
                }
            }
        }
        _ if link.header.link_layer_type == LinkLayerType::Infiniband => Found::Infiniband,
        _ => Found::Other,
    })
}

/// Picks the driver from what the host interface is (or, when missing, from its name, as the
/// original does) and lets it plan the link.
pub fn plan_link(ctx: &mut PlanCtx<'_>) -> Result<Plan, Error> {
    let host_if = find_host_if(ctx.host, &ctx.req.host_if)?;
    let found = classify(&host_if)?;
    if ctx.req.direct_phys {
        return match (&host_if.link, found) {
            (None, _) => Err(Error::HostInterface(format!(
                "--direct-phys: no interface {} in the host to move into the guest",
                host_if.name
            ))),
            (Some(_), Found::LinuxBridge | Found::Ovs(_)) => Err(Error::HostInterface(format!(
                "--direct-phys: {} is a bridge; only a physical (or virtual) NIC can be moved \
                 into a guest",
                host_if.name
            ))),
            (Some(_), _) => phys::plan(ctx, &host_if),
        };
    }
    match (&host_if.link, found) {
        (_, Found::LinuxBridge) => bridge::plan(ctx, &host_if),
        (_, Found::Ovs(dp)) => ovs::plan(ctx, &host_if, dp),
        (Some(_), Found::Infiniband) => ipoib::plan(ctx, &host_if),
        (Some(_), Found::Other) => macvlan::plan(ctx, &host_if),
        (None, _) if host_if.name.starts_with("br") => bridge::plan(ctx, &host_if),
        (None, _) if host_if.name.starts_with("ovs") => ovs::plan(ctx, &host_if, None),
        (None, _) if host_if.name.starts_with("dummy") => dummy::plan(ctx, &host_if),
        (None, _) => Err(Error::HostInterface(format!(
            "I do not know how to setup interface {}: no such link, and only names starting \
             with 'br' (Linux bridge), 'ovs' (Open vSwitch bridge) or 'dummy' are created",
            host_if.name
        ))),
    }
}

/// The guest interface name (`-i` or the kind's default), refused if the guest has it already.
pub fn guest_ifname(ctx: &mut PlanCtx<'_>, default: &str) -> Result<String, Error> {
    let name = ctx
        .req
        .guest_ifname
        .clone()
        .unwrap_or_else(|| default.to_string());
    if get_link(ctx.guest_nl, &name)?.is_some() {
        return Err(Error::InterfaceExists(format!(
            "guest {} already has an interface named {name}; choose another name with -i",
            ctx.guest.spec
        )));
    }
    Ok(name)
}

/// A plan with the fields every kind fills, and no steps yet.
pub fn new_plan(kind: Kind, host_interface: &str, guest_ifname: String, ctx: &PlanCtx<'_>) -> Plan {
    Plan {
        kind,
        host_interface: host_interface.to_string(),
        host_interface_created: false,
        host_ifname: None,
        guest_ifname,
        mac: ctx.req.mac,
        vlan: None,
        dropped_addresses: Vec::new(),
        announce: true,
        addresses: Vec::new(),
        gateway: None,
        steps: Vec::new(),
        ready: None,
    }
}

/// Refuses a `@tag` on kinds that have no use for one.
pub fn refuse_tag(ctx: &PlanCtx<'_>, what: &str) -> Result<(), Error> {
    match &ctx.req.tag {
        Some(t) => Err(Error::Invalid(format!(
            "VLAN @{t} requested on {what}: {what} cannot carry VLAN tags (use an Open vSwitch \
             bridge or a physical interface)"
        ))),
        None => Ok(()),
    }
}

/// Turns "operation not supported" for a link kind into a sentence about the kernel.
pub fn kernel_lacks(errno: i32, what: &str, module: &str) -> Option<String> {
    (errno == libc::EOPNOTSUPP || errno == libc::ENOENT).then(|| {
        format!(
            "this kernel has no {what} support (module {module} is not loaded or not built); \
             load it with `modprobe {module}`"
        )
    })
}
