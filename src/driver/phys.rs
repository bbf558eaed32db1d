//! `--direct-phys`: the host interface itself moves into the guest, renamed in the same
//! RTM_SETLINK. The kernel drops its addresses on the way: they are recorded, reported, and put
//! back if the attach is rolled back (the NIC then returns under its own name, MAC and state).
//! A wireless interface cannot change namespace on its own: its phy is moved (by `iw`).

use netlink_packet_route::link::LinkFlags;
use netlink_packet_route::RouteNetlinkMessage;

use crate::driver_api::nic::{apply_parent, plan_parent, undo_vlan};
use crate::driver_api::{
    check_guest_link, guest_ifname, learn_guest_link, new_plan, Driver, Found, HostIf, PlanCtx,
    Undone, DEFAULT_GUEST_IFNAME,
};
use crate::env::{Env, Sys};
use crate::error::Error;
use crate::links::{self, get_link, link_index};
use crate::netlink::{msg, Rtnl};
use crate::ns::NetNs;
use crate::plan::{Kind, NicState, Op, Plan, RouteBytes, Side, Step, UndoEntry};
use crate::request::AttachRequest;
use crate::store::Record;

pub struct Phys;

impl Driver for Phys {
    fn kind(&self) -> Kind {
        Kind::Phys
    }

    fn guest_link(&self) -> Option<crate::plan::LinkKind> {
        None
    }

    fn claims(&self, _host_if: &HostIf, req: &AttachRequest) -> bool {
        req.direct_phys
    }

    fn plan(&self, ctx: &mut PlanCtx<'_>, host_if: &HostIf) -> Result<Plan, Error> {
        match host_if.found {
            Found::Missing => Err(Error::HostInterface(format!(
                "--direct-phys: no interface {} in the host to move into the guest",
                host_if.name
            ))),
            Found::LinuxBridge | Found::Ovs(_) => Err(Error::HostInterface(format!(
                "--direct-phys: {} is a bridge; only a physical (or virtual) NIC can be moved \
                 into a guest",
                host_if.name
            ))),
            _ => plan(ctx, host_if),
        }
    }

    fn apply(&self, op: &Op, env: &mut Env<'_>) -> Result<bool, Error> {
        match op {
            Op::MoveToGuest { nic, guest, mtu } => {
                // As it is now (a VLAN child this run made has its ifindex and MAC only now).
                let mut nic = nic.clone();
                if let Some(l) = get_link(env.host, &nic.name)? {
                    nic.index = Some(l.header.index);
                    nic.mac = nic.mac.or_else(|| msg::link_mac(&l));
                }
                env.journal.will(UndoEntry::MoveBack {
                    nic: nic.clone(),
                    guest: guest.clone(),
                })?;
                let nic = &nic;
                env.learned.applied.host_index = nic.index;
                move_to_guest(env, nic, guest, *mtu)?;
                let gi = learn_guest_link(env, guest)?;
                // Its ifindex in the guest (the kernel gives it a new one when the host's is
                // taken there): what the undo recognises it by once a later step (set-mac)
                // has changed its MAC. The first entry stays for a crash before this one.
                if nic.index != Some(gi) {
                    env.journal.will(UndoEntry::MoveBack {
                        nic: NicState {
                            index: Some(gi),
                            ..nic.clone()
                        },
                        guest: guest.clone(),
                    })?;
                }
                if !nic.addresses.is_empty() {
                    let list: Vec<String> = nic.addresses.iter().map(|a| a.to_string()).collect();
                    tracing::warn!(
                        "moving {} into the guest dropped its host addresses: {}",
                        nic.name,
                        list.join(", ")
                    );
                }
            }
            Op::SetMac { ifname, mac } => {
                let i = match &env.learned.guest_index {
                    Some((n, i)) if n == ifname => *i,
                    _ => link_index(env.guest, ifname, Side::Guest)?,
                };
                env.guest
                    .request(msg::set_link_mac(i, mac), 0)
                    .map_err(|e| Error::netlink(format!("cannot set mac {mac} on {ifname}"), e))?;
                env.learned.applied.guest_mac = Some(*mac);
            }
            _ => return apply_parent(op, env),
        }
        Ok(true)
    }

    /// Any attachment on a VLAN child pipework made removes it when it is the last user.
    fn teardown(&self, rec: &Record) -> Vec<UndoEntry> {
        crate::driver_api::nic::teardown_with_vlan(rec)
    }

    fn undo(&self, entry: &UndoEntry, sys: &mut Sys<'_>) -> Option<Undone> {
        match entry {
            UndoEntry::MoveBack { nic, guest } => Some(move_back(sys, nic, guest)),
            _ => undo_vlan(entry, sys),
        }
    }

    fn check(&self, rec: &Record, sys: &mut Sys<'_>) -> Result<Vec<String>, Error> {
        check_guest_link(rec, sys)
    }
}

/// Moves a host NIC into the guest under its guest name, in one RTM_SETLINK; a wireless NIC
/// moves with its phy (by `iw`), then is renamed.
fn move_to_guest(
    env: &mut Env<'_>,
    nic: &NicState,
    guest: &str,
    mtu: Option<u32>,
) -> Result<(), Error> {
    let index = link_index(env.host, &nic.name, Side::Host)?;
    let Some(phy) = &nic.phy else {
        return env
            .host
            .request(msg::move_link(index, env.guest_ns.raw_fd(), guest, mtu), 0)
            .map_err(|e| {
                Error::netlink(
                    format!("cannot move {} into the guest as {guest}", nic.name),
                    e,
                )
            });
    };
    run_iw(&iw_move_args(phy, env.guest_ns.raw_fd()), None)?;
    let i = link_index(env.guest, &nic.name, Side::Guest)?;
    env.guest
        .request(msg::rename_link(i, guest), 0)
        .map_err(|e| {
            Error::netlink(
                format!("cannot rename {} to {guest} in the guest", nic.name),
                e,
            )
        })
}

/// Undo of a move: the NIC is looked for in the guest under its guest name, or under its own
/// (a wireless move whose rename failed); still in the host, it never left.
fn move_back(sys: &mut Sys<'_>, nic: &NicState, guest: &str) -> Undone {
    let dry = sys.dry_run();
    let (Some(g), Some(gns)) = (sys.guest.as_deref_mut(), sys.guest_ns) else {
        return Ok(None);
    };
    let found = match get_link(g, guest)? {
        Some(l) => Some(l),
        None => get_link(g, &nic.name)?,
    };
    let Some(l) = found else {
        return Ok(None);
    };
    // The NIC, not another link that took its name: its ifindex (kept across the move) or its
    // MAC (the NIC's own, or the one the attach gave it, as the record says).
    let recorded = sys.record.and_then(|r| r.header.identity.as_ref());
    let index_ok = match recorded.and_then(|i| i.guest_ifindex).or(nic.index) {
        Some(i) => i == l.header.index,
        None => false,
    };
    let mac = msg::link_mac(&l);
    let mac_ok = mac.is_some()
        && (mac == nic.mac || (recorded.is_some_and(|i| i.mac.is_some() && i.mac == mac)));
    if !index_ok && !mac_ok {
        sys.log.info(format_args!(
            "{guest} in the guest is not {} (another ifindex and MAC): left alone",
            nic.name
        ));
        return Ok(None);
    }
    let what = format!("move {guest} back to the host as {}", nic.name);
    if dry {
        return Ok(Some(what));
    }
    return_to_host(sys.host, g, gns, sys.home, l.header.index, nic)?;
    Ok(Some(what))
}

pub fn plan(ctx: &mut PlanCtx<'_>, host_if: &HostIf) -> Result<Plan, Error> {
    let nic = host_if.link.as_ref().ok_or_else(|| {
        Error::HostInterface(format!("--direct-phys: no interface {}", host_if.name))
    })?;
    if nic.header.flags.contains(LinkFlags::Loopback) {
        return Err(Error::HostInterface(format!(
            "--direct-phys: {} is the loopback interface",
            host_if.name
        )));
    }
    let guest = guest_ifname(ctx, DEFAULT_GUEST_IFNAME)?;
    let mut plan = new_plan(Kind::Phys, &host_if.name, guest, ctx);
    // As in the original, `@VLAN` moves the NIC's 802.1Q child instead of the NIC.
    let moved = if ctx.req.tag.is_some() {
        plan_parent(ctx, host_if, &mut plan)?
    } else {
        host_if.name.clone()
    };
    let nic_state = match get_link(ctx.host, &moved)? {
        Some(l) => NicState {
            name: moved.clone(),
            mac: msg::link_mac(&l),
            mtu: msg::link_mtu(&l),
            up: msg::link_is_up(&l),
            addresses: crate::links::link_addresses(ctx.host, l.header.index)?,
            phy: wireless_phy(&moved),
            index: Some(l.header.index),
            master: match msg::link_master(&l) {
                Some(m) => links::get_link_by_index(ctx.host, m)?
                    .as_ref()
                    .and_then(msg::link_name)
                    .map(str::to_string),
                None => None,
            },
            routes: host_routes(ctx.host, l.header.index)?,
        },
        // A VLAN child this run creates: nothing on it yet.
        None => NicState {
            name: moved.clone(),
            mac: None,
            mtu: None,
            up: true,
            addresses: Vec::new(),
            phy: None,
            index: None,
            master: None,
            routes: Vec::new(),
        },
    };
    plan.dropped_addresses = nic_state.addresses.clone();
    plan.host_ifname = Some(moved);
    let guest = plan.guest_ifname.clone();
    plan.steps.push(Step::new(
        "move-nic",
        Op::MoveToGuest {
            nic: nic_state,
            guest: guest.clone(),
            mtu: ctx.req.mtu,
        },
    ));
    if let Some(mac) = ctx.req.mac {
        plan.steps
            .push(Step::new("set-mac", Op::SetMac { ifname: guest, mac }));
    }
    Ok(plan)
}

/// The host's own routes through the NIC (not the kernel's: those come back with the
/// addresses), to restore after a move back.
fn host_routes(nl: &mut dyn Rtnl, index: u32) -> Result<Vec<RouteBytes>, Error> {
    use netlink_packet_route::route::RouteProtocol;
    let mut out = Vec::new();
    for family in [
        netlink_packet_route::AddressFamily::Inet,
        netlink_packet_route::AddressFamily::Inet6,
    ] {
        for m in nl
            .dump(msg::dump_routes(family))
            .map_err(|e| Error::netlink("cannot list host routes", e))?
        {
            if let RouteNetlinkMessage::NewRoute(r) = m {
                if msg::route_oif(&r) == Some(index)
                    && r.header.protocol != RouteProtocol::Kernel
                    && msg::route_table(&r) == 254
                {
                    // One pipework cannot write back (a tunnel encap) is not kept.
                    out.extend(msg::route_to_bytes(&r).map(RouteBytes));
                }
            }
        }
    }
    Ok(out)
}

/// The phy of a wireless interface (sysfs `phy80211`), if it is one.
fn wireless_phy(name: &str) -> Option<String> {
    std::fs::read_to_string(format!("/sys/class/net/{name}/phy80211/name"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// `iw phy PHY set netns name PATH`: iw opens PATH as a namespace file (a path with '/'),
/// so the namespace is passed by our held fd (`/proc/<our pid>/fd/N`), never by PID.
pub fn iw_move_args(phy: &str, netns_fd: i32) -> Vec<String> {
    vec![
        "phy".into(),
        phy.into(),
        "set".into(),
        "netns".into(),
        "name".into(),
        format!("/proc/{}/fd/{netns_fd}", std::process::id()),
    ]
}

/// Gives a moved NIC back to the host: out of the guest under its own name (and MTU), then
/// its MAC, addresses and up state — for rollback and for `detach`.
pub fn return_to_host(
    host: &mut dyn Rtnl,
    guest: &mut dyn Rtnl,
    guest_ns: &NetNs,
    home: &NetNs,
    guest_index: u32,
    nic: &NicState,
) -> Result<(), Error> {
    use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
    match &nic.phy {
        None => guest
            .request(
                msg::move_link(guest_index, home.raw_fd(), &nic.name, nic.mtu),
                0,
            )
            .map_err(|e| Error::netlink(format!("cannot move {} back", nic.name), e))?,
        Some(phy) => {
            guest
                .request(msg::set_link_down(guest_index), 0)
                .and_then(|()| guest.request(msg::rename_link(guest_index, &nic.name), 0))
                .map_err(|e| Error::netlink(format!("cannot rename {} back", nic.name), e))?;
            run_iw(&iw_move_args(phy, home.raw_fd()), Some(guest_ns))?;
        }
    }
    let index = get_link(host, &nic.name)?
        .map(|l| l.header.index)
        .ok_or_else(|| Error::HostInterface(format!("{} did not come back", nic.name)))?;
    if let Some(mac) = &nic.mac {
        host.request(msg::set_link_mac(index, mac), 0)
            .map_err(|e| Error::netlink(format!("cannot restore its mac {mac}"), e))?;
    }
    for a in &nic.addresses {
        match host.request(
            msg::new_address(index, a.addr(), a.prefix_len(), msg::v4_broadcast(a)),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Ok(()) => {}
            Err(e) if e.errno == libc::EEXIST => {}
            Err(e) => return Err(Error::netlink(format!("cannot restore its address {a}"), e)),
        }
    }
    if let Some(m) = &nic.master {
        if let Some(b) = get_link(host, m)? {
            host.request(msg::set_link_master(index, b.header.index), 0)
                .map_err(|e| Error::netlink(format!("cannot put it back on bridge {m}"), e))?;
        }
    }
    if nic.up {
        host.request(msg::set_link_up(index), 0)
            .map_err(|e| Error::netlink("cannot bring it back up", e))?;
    }
    for r in nic
        .routes
        .iter()
        .filter_map(|b| msg::route_from_bytes(&b.0))
    {
        let mut r = r;
        // Its ifindex may be a new one after the round trip.
        r.attributes
            .retain(|a| !matches!(a, netlink_packet_route::route::RouteAttribute::Oif(_)));
        r.attributes
            .push(netlink_packet_route::route::RouteAttribute::Oif(index));
        match host.request(msg::readd_route(&r), NLM_F_CREATE | NLM_F_EXCL) {
            Ok(()) => {}
            Err(e) if e.errno == libc::EEXIST => {}
            Err(e) => return Err(Error::netlink("cannot restore a route through it", e)),
        }
    }
    Ok(())
}

/// Runs `iw ARGS…` (wireless phys change namespace through nl80211), inside `ns` if given.
pub fn run_iw(args: &[String], ns: Option<&NetNs>) -> Result<(), Error> {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new("iw");
    cmd.args(args);
    if let Some(ns) = ns {
        let fd = ns.raw_fd();
        // SAFETY: only a setns syscall between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let b = std::os::fd::BorrowedFd::borrow_raw(fd);
                nix::sched::setns(b, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(std::io::Error::from)
            });
        }
    }
    let out = cmd
        .output()
        .map_err(|e| Error::io("cannot run iw (package iw) to move a wireless interface", e))?;
    if !out.status.success() {
        return Err(Error::HostInterface(format!(
            "iw {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wireless_phy_moves_by_fd_path() {
        let a = iw_move_args("phy0", 7);
        assert_eq!(&a[..5], ["phy", "phy0", "set", "netns", "name"]);
        assert_eq!(a[5], format!("/proc/{}/fd/7", std::process::id()));
    }
}
