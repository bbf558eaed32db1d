//! `--direct-phys`: the host interface itself moves into the guest, renamed in the same
//! RTM_SETLINK. The kernel drops its addresses on the way: they are recorded, reported, and put
//! back if the attach is rolled back (the NIC then returns under its own name, MAC and state).
//! A wireless interface cannot change namespace on its own: its phy is moved (by `iw`).

use ipnet::IpNet;
use netlink_packet_route::address::{AddressAttribute, AddressScope};
use netlink_packet_route::link::LinkFlags;
use netlink_packet_route::RouteNetlinkMessage;

use crate::driver::macvlan::plan_parent;
use crate::driver::{get_link, guest_ifname, new_plan, HostIf, DEFAULT_GUEST_IFNAME};
use crate::error::Error;
use crate::netlink::{msg, Netlink};
use crate::ns::NetNs;
use crate::plan::{Kind, NicState, Op, Plan, PlanCtx, Step};

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
            addresses: host_addresses(ctx.host, l.header.index)?,
            phy: wireless_phy(&moved),
        },
        // A VLAN child this run creates: nothing on it yet.
        None => NicState {
            name: moved.clone(),
            mac: None,
            mtu: None,
            up: true,
            addresses: Vec::new(),
            phy: None,
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

/// The NIC's own addresses (not the kernel's automatic IPv6 link-local ones).
fn host_addresses(nl: &mut Netlink, index: u32) -> Result<Vec<IpNet>, Error> {
    let all = nl
        .dump(msg::dump_addresses())
        .map_err(|e| Error::netlink("cannot list host addresses", e))?;
    Ok(all
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewAddress(a)
                if a.header.index == index && a.header.scope != AddressScope::Link =>
            {
                a.attributes.iter().find_map(|x| match x {
                    AddressAttribute::Local(ip) | AddressAttribute::Address(ip) => {
                        IpNet::new(*ip, a.header.prefix_len).ok()
                    }
                    _ => None,
                })
            }
            _ => None,
        })
        .collect())
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
    host: &mut Netlink,
    guest: &mut Netlink,
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
    if nic.up {
        host.request(msg::set_link_up(index), 0)
            .map_err(|e| Error::netlink("cannot bring it back up", e))?;
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
