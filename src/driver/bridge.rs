//! Linux bridge driver: a veth pair whose host end is a port of the bridge (created, up and
//! marked as pipework's, when it does not exist). The veth half is shared with the OVS driver.

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::InfoKind;

use crate::driver_api::veth::{apply_veth, check_host_end, host_end_matches, plan_veth};
use crate::driver_api::{
    check_guest_link, guest_ifname, new_plan, refuse_tag, teardown_then, Driver, Found, HostIf,
    PlanCtx, Undone, DEFAULT_GUEST_IFNAME,
};
use crate::env::{Env, Sys};
use crate::error::Error;
use crate::links::{self, get_link, is_ours, link_index};
use crate::log::Log;
use crate::netlink::{msg, Netlink, Rtnl};
use crate::plan::{Kind, LinkKind, Op, Plan, Side, Step, UndoEntry};
use crate::request::AttachRequest;
use crate::store::Record;

pub struct Bridge;

impl Driver for Bridge {
    fn kind(&self) -> Kind {
        Kind::Bridge
    }

    fn guest_link(&self) -> Option<crate::plan::LinkKind> {
        Some(LinkKind::Veth)
    }

    fn claims(&self, host_if: &HostIf, _req: &AttachRequest) -> bool {
        host_if.found == Found::LinuxBridge
            || (host_if.found == Found::Missing && host_if.name.starts_with("br"))
    }

    fn plan(&self, ctx: &mut PlanCtx<'_>, host_if: &HostIf) -> Result<Plan, Error> {
        plan(ctx, host_if)
    }

    fn apply(&self, op: &Op, env: &mut Env<'_>) -> Result<bool, Error> {
        match op {
            Op::CreateBridge { name, mtu } => create_bridge(env, name, *mtu)?,
            Op::WaitPortReady { port } => wait_port_ready(env.host, env.log, port)?,
            Op::BridgeAddress {
                bridge,
                address,
                force,
            } => bridge_address(env, bridge, address, *force)?,
            Op::IpForward { v6 } => ip_forward(*v6)?,
            Op::BridgePromisc { bridge } => {
                let i = link_index(env.host, bridge, Side::Host)?;
                env.host
                    .request(msg::set_promisc(i), 0)
                    .map_err(|e| Error::netlink(format!("cannot make {bridge} promiscuous"), e))?;
            }
            Op::BridgeVlanFiltering { bridge } => vlan_filtering(env, bridge)?,
            Op::PortFlags {
                port,
                hairpin,
                isolated,
            } => {
                let i = link_index(env.host, port, Side::Host)?;
                env.host
                    .request(msg::set_port_flags(i, *hairpin, *isolated), 0)
                    .map_err(|e| {
                        Error::netlink(
                            format!("cannot set the hairpin and isolation flags of port {port}"),
                            e,
                        )
                    })?;
            }
            Op::PortVlan {
                port,
                pvid,
                trunk,
                preserve_default,
            } => port_vlans(env, port, *pvid, trunk, *preserve_default)?,
            Op::MacSpoofCheck { port, table } => {
                let mac = env.learned.applied.guest_mac.ok_or_else(|| {
                    Error::Internal(format!("the MAC of the guest behind {port} is not known"))
                })?;
                env.journal.will(UndoEntry::DeleteNftTable {
                    family: "bridge".into(),
                    name: table.clone(),
                })?;
                crate::firewall::spoof_check(table, port, &mac)?;
            }
            Op::Masquerade(rules) => {
                env.journal.will(UndoEntry::Unmasquerade {
                    rules: (**rules).clone(),
                })?;
                crate::firewall::masquerade(rules)?;
            }
            _ => return apply_veth(op, env),
        }
        Ok(true)
    }

    fn undo(&self, entry: &UndoEntry, sys: &mut Sys<'_>) -> Option<Undone> {
        match entry {
            UndoEntry::DeleteBridge { name } => Some(delete_bridge_if_unused(sys, name)),
            // Host-side rules: they go whether or not the guest is still there.
            UndoEntry::Unmasquerade { rules } => Some(firewall_undo(sys, entry, || {
                crate::firewall::unmasquerade(rules)
            })),
            UndoEntry::DeleteNftTable { family, name } => Some(firewall_undo(sys, entry, || {
                crate::firewall::delete_table(family, name)
            })),
            _ => None,
        }
    }

    /// Any attachment on a bridge pipework created removes it when it is the last port.
    fn teardown(&self, rec: &Record) -> Vec<UndoEntry> {
        teardown_then(
            rec,
            UndoEntry::DeleteBridge {
                name: rec.header.host_interface.clone(),
            },
        )
    }

    fn alive(&self, rec: &Record, sys: &mut Sys<'_>) -> bool {
        host_end_matches(rec, sys)
    }

    fn check(&self, rec: &Record, sys: &mut Sys<'_>) -> Result<Vec<String>, Error> {
        let mut d = check_host_end(rec, sys)?;
        if d.is_empty() {
            if let Some(h) = &rec.header.host_ifname {
                let port = get_link(sys.host, h)?;
                let bridge = get_link(sys.host, &rec.header.host_interface)?;
                match (port, bridge) {
                    (_, None) => d.push(format!("bridge {} is gone", rec.header.host_interface)),
                    (Some(p), Some(b)) if msg::link_master(&p) != Some(b.header.index) => d.push(
                        format!("{h} is no longer a port of {}", rec.header.host_interface),
                    ),
                    _ => {}
                }
            }
        }
        d.extend(check_guest_link(rec, sys)?);
        Ok(d)
    }
}

fn create_bridge(env: &mut Env<'_>, name: &str, mtu: Option<u32>) -> Result<(), Error> {
    env.journal.will(UndoEntry::DeleteBridge {
        name: name.to_string(),
    })?;
    match env
        .host
        .request(msg::new_bridge(name, mtu), NLM_F_CREATE | NLM_F_EXCL)
    {
        Ok(()) => {
            env.learned.bridge_index = Some(link_index(env.host, name, Side::Host)?);
        }
        // Another attach created it in the meantime: use it, if it is a bridge (and never
        // remove it on rollback: it is that attach's).
        Err(e) if e.errno == libc::EEXIST => {
            env.journal.cancel_last()?;
            let l = get_link(env.host, name)?
                .filter(|l| matches!(msg::link_kind(l), Some(InfoKind::Bridge)));
            let l = l.ok_or_else(|| Error::netlink(format!("cannot create bridge {name}"), e))?;
            env.learned.bridge_index = Some(l.header.index);
            env.learned.applied.host_interface_existed = true;
        }
        Err(e) => {
            crate::driver_api::refused(env, &e)?;
            return Err(Error::netlink(format!("cannot create bridge {name}"), e));
        }
    }
    Ok(())
}

/// A packet filter undo: `remove` says whether there was anything to remove.
fn firewall_undo(
    sys: &Sys<'_>,
    entry: &UndoEntry,
    remove: impl FnOnce() -> Result<bool, Error>,
) -> Undone {
    if sys.dry_run() {
        return Ok(Some(entry.to_string()));
    }
    remove().map(|done| done.then(|| entry.to_string()))
}

/// A bridge pipework created (it carries pipework's link group) goes once no port is left on
/// it (counting the ports a batch is about to delete as gone).
fn delete_bridge_if_unused(sys: &mut Sys<'_>, name: &str) -> Undone {
    let Some(l) = get_link(sys.host, name)? else {
        return Ok(None);
    };
    if !is_ours(&l, LinkKind::Bridge) {
        return Ok(None);
    }
    let ports = links::bridge_ports(sys.host, l.header.index)?;
    if ports.iter().any(|p| !sys.going(p)) {
        return Ok(None);
    }
    let what = format!("delete bridge {name} (created by pipework, now unused)");
    if sys.dry_run() {
        return Ok(Some(what));
    }
    if let Some(b) = sys.batch.as_deref_mut() {
        // Its ports go with the batch's group delete: the bridge must wait for that.
        if !ports.is_empty() && !b.direct {
            b.host_links.insert(name.to_string());
            sys.host
                .request(msg::set_link_group(l.header.index, b.group), 0)
                .map_err(|e| Error::netlink(format!("cannot queue {name} for deletion"), e))?;
            return Ok(Some(what));
        }
    }
    links::delete_link(sys.host, l.header.index, name)?;
    Ok(Some(what))
}

pub fn plan(ctx: &mut PlanCtx<'_>, host_if: &HostIf) -> Result<Plan, Error> {
    if host_if.found != Found::LinuxBridge && host_if.found != Found::Missing {
        return Err(Error::HostInterface(format!(
            "{:?} already exists but is not a bridge",
            host_if.name
        )));
    }
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
    let o = &ctx.req.bridge;
    let bridge = host_if.name.clone();
    if o.promisc {
        plan.steps.push(Step::new(
            "bridge-promisc",
            Op::BridgePromisc {
                bridge: bridge.clone(),
            },
        ));
    }
    if o.vlan.is_some() || !o.trunk.is_empty() {
        plan.steps.push(Step::new(
            "bridge-vlan-filtering",
            Op::BridgeVlanFiltering {
                bridge: bridge.clone(),
            },
        ));
    }
    let host = plan_veth(ctx, host_if, &mut plan, Some(host_if.name.clone()))?;
    if o.hairpin || o.isolated {
        plan.steps.push(Step::new(
            "port-flags",
            Op::PortFlags {
                port: host.clone(),
                hairpin: o.hairpin,
                isolated: o.isolated,
            },
        ));
    }
    if o.vlan.is_some() || !o.trunk.is_empty() {
        plan.steps.push(Step::new(
            "port-vlan",
            Op::PortVlan {
                port: host.clone(),
                pvid: o.vlan,
                trunk: o.trunk.clone(),
                preserve_default: o.preserve_default_vlan,
            },
        ));
    }
    if o.mac_spoof_check {
        let network = ctx.req.owner.as_ref().map(|o| o.network.as_str());
        plan.steps.push(Step::new(
            "mac-spoof-check",
            Op::MacSpoofCheck {
                port: host.clone(),
                table: crate::firewall::spoof_table(
                    network.unwrap_or(""),
                    ctx.guest.id.as_deref().unwrap_or(&ctx.guest.spec),
                    &host,
                ),
            },
        ));
    }
    plan_layer3(ctx, &bridge, &mut plan);
    plan.ready = Some(Step::new(
        "wait-port-ready",
        Op::WaitPortReady { port: host },
    ));
    Ok(plan)
}

/// What depends on the guest's addresses: the gateways on the bridge, forwarding and
/// masquerading. Planned with the link, or once the link exists when the addresses come only
/// then (`Session::attach_staged`).
pub fn plan_layer3(ctx: &PlanCtx<'_>, bridge: &str, plan: &mut Plan) {
    let o = &ctx.req.bridge;
    let bridge = bridge.to_string();
    for gw in &o.gateways {
        plan.steps.push(Step::new(
            "bridge-gateway",
            Op::BridgeAddress {
                bridge: bridge.clone(),
                address: *gw,
                force: o.force_address,
            },
        ));
    }
    for v6 in [false, true] {
        if o.gateways.iter().any(|g| g.addr().is_ipv6() == v6) {
            plan.steps
                .push(Step::new("ip-forward", Op::IpForward { v6 }));
        }
    }
    if let (Some(m), Some(container)) = (&o.masquerade, ctx.guest.id.as_deref()) {
        let sources = match &ctx.req.addressing {
            crate::request::Addressing::List { addresses, .. } => addresses.clone(),
            crate::request::Addressing::Static { address, .. } => vec![*address],
            _ => Vec::new(),
        };
        if !sources.is_empty() {
            plan.steps.push(Step::new(
                "masquerade",
                Op::Masquerade(Box::new(crate::firewall::MasqRules::new(
                    m.backend, &m.network, container, sources,
                ))),
            ));
        }
    }
}

/// How long to wait for the bridge to enable a new port. Normally it is enabled already, or
/// within microseconds; a loaded machine can delay the kernel's link-watch work.
const PORT_READY_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

fn port_enabled(nl: &mut dyn Rtnl, port: &str) -> Result<bool, Error> {
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
pub fn wait_port_ready(host: &mut dyn Rtnl, log: Log, port: &str) -> Result<(), Error> {
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

/// The gateway on the bridge, as the reference plugin's `ensureAddr`: the same address is
/// kept; another IPv4 address, or an IPv6 one of an overlapping subnet, is an error unless
/// `force`, which replaces it.
fn bridge_address(
    env: &mut Env<'_>,
    bridge: &str,
    address: &ipnet::IpNet,
    force: bool,
) -> Result<(), Error> {
    let i = link_index(env.host, bridge, Side::Host)?;
    for a in links::link_addresses(env.host, i)? {
        if a.addr() == address.addr() {
            return Ok(());
        }
        if a.addr().is_ipv4() != address.addr().is_ipv4() {
            continue;
        }
        if a.addr().is_ipv6() && !a.contains(&address.addr()) && !address.contains(&a.addr()) {
            continue;
        }
        if !force {
            return Err(Error::Invalid(format!(
                "{bridge:?} already has an IP address different from {address}: set \
                 forceAddress to replace it, or use another bridge"
            )));
        }
        env.host
            .request(msg::del_address(i, a.addr(), a.prefix_len()), 0)
            .map_err(|e| Error::netlink(format!("cannot remove {a} from {bridge}"), e))?;
    }
    let brd = msg::v4_broadcast(address);
    match env.host.request(
        msg::new_address(i, address.addr(), address.prefix_len(), brd),
        NLM_F_CREATE | NLM_F_EXCL,
    ) {
        // Another ADD put it there meanwhile.
        Err(e) if e.errno != libc::EEXIST => Err(Error::netlink(
            format!("cannot add gateway address {address} to {bridge}"),
            e,
        )),
        _ => Ok(()),
    }
}

fn ip_forward(v6: bool) -> Result<(), Error> {
    let path = if v6 {
        "/proc/sys/net/ipv6/conf/all/forwarding"
    } else {
        "/proc/sys/net/ipv4/ip_forward"
    };
    if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1") {
        return Ok(());
    }
    std::fs::write(path, "1").map_err(|e| Error::io(format!("cannot write 1 to {path}"), e))
}

/// The message when the kernel's bridge has no VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING).
pub fn no_vlan_filtering(bridge: &str) -> String {
    format!(
        "cannot turn VLAN filtering on for bridge {bridge}: this kernel's bridge has no VLAN \
         filtering (CONFIG_BRIDGE_VLAN_FILTERING); remove vlan and vlanTrunk from the \
         configuration, or use a kernel built with it"
    )
}

fn vlan_filtering(env: &mut Env<'_>, bridge: &str) -> Result<(), Error> {
    let i = link_index(env.host, bridge, Side::Host)?;
    match env.host.request(msg::set_vlan_filtering(i), 0) {
        Ok(()) => Ok(()),
        Err(e) if e.errno == libc::EOPNOTSUPP || e.errno == libc::EINVAL => {
            Err(Error::netlink(no_vlan_filtering(bridge), e))
        }
        Err(e) => Err(Error::netlink(
            format!("cannot turn VLAN filtering on for bridge {bridge}"),
            e,
        )),
    }
}

fn port_vlans(
    env: &mut Env<'_>,
    port: &str,
    pvid: Option<u16>,
    trunk: &[u16],
    preserve_default: bool,
) -> Result<(), Error> {
    let i = link_index(env.host, port, Side::Host)?;
    let fail = |vid: u16, e| Error::netlink(format!("cannot put port {port} on VLAN {vid}"), e);
    if !preserve_default && pvid != Some(1) {
        match env.host.request(msg::port_vlan(i, 1, false, false), 0) {
            Err(e) if e.errno != libc::ENOENT && e.errno != libc::EINVAL => {
                return Err(Error::netlink(
                    format!("cannot take port {port} off the default VLAN 1"),
                    e,
                ))
            }
            _ => {}
        }
    }
    if let Some(v) = pvid {
        env.host
            .request(msg::port_vlan(i, v, true, true), 0)
            .map_err(|e| fail(v, e))?;
    }
    for v in trunk {
        env.host
            .request(msg::port_vlan(i, *v, false, true), 0)
            .map_err(|e| fail(*v, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_vlan_filtering_message_says_what_the_kernel_lacks_and_what_to_do() {
        let m = super::no_vlan_filtering("cni0");
        assert!(m.contains("bridge cni0"), "{m}");
        assert!(m.contains("CONFIG_BRIDGE_VLAN_FILTERING"), "{m}");
        assert!(m.contains("remove vlan and vlanTrunk"), "{m}");
    }
}
