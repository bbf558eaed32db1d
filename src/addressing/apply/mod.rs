//! The guest-side ops every kind shares, applied once the link is in place: announce setup,
//! link up, addresses, routes, DHCP, the announce itself; and the undo of the entries they
//! journal (routes, DHCP clients, files).

pub mod dhcp;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::RouteNetlinkMessage;

use crate::announce;
use crate::driver_api::Undone;
use crate::env::{Env, Sys};
use crate::error::Error;
use crate::links::{get_link, link_index};
use crate::netlink::msg;
use crate::plan::{Op, RouteBytes, Side, UndoEntry};
use crate::report::RouteReport;

/// The guest interface's index, cached once known.
pub fn guest_index(env: &mut Env<'_>, ifname: &str) -> Result<u32, Error> {
    if let Some((n, i)) = &env.learned.guest_index {
        if n == ifname {
            return Ok(*i);
        }
    }
    let i = link_index(env.guest, ifname, Side::Guest)?;
    env.learned.guest_index = Some((ifname.to_string(), i));
    Ok(i)
}

/// Applies a guest-side op; `Ok(false)` when the op is not one of these.
pub fn apply(op: &Op, env: &mut Env<'_>) -> Result<bool, Error> {
    match op {
        Op::SetArpNotify { ifname } => {
            let i = guest_index(env, ifname)?;
            announce::enable_arp_notify(env.guest, i, ifname)?;
        }
        Op::EnableIpv6 { ifname } => {
            let now = announce::read_ipv6_conf(env.guest_ns, env.home, ifname, "disable_ipv6")?;
            if now.as_deref() == Some("1") {
                env.journal.will(UndoEntry::Ipv6Conf {
                    ifname: ifname.clone(),
                    key: "disable_ipv6".into(),
                    value: "1".into(),
                })?;
                announce::write_ipv6_conf(env.guest_ns, env.home, ifname, "disable_ipv6", "0")?;
            }
        }
        Op::SetNdiscNotify { ifname } => {
            announce::enable_ndisc_notify(env.guest_ns, env.home, ifname)?;
        }
        Op::DisableDad { ifname } => {
            announce::write_ipv6_conf(env.guest_ns, env.home, ifname, "accept_dad", "0")?
        }
        Op::LinkUp { ifname } => {
            let i = guest_index(env, ifname)?;
            env.guest
                .request(msg::set_link_up(i), 0)
                .map_err(|e| Error::netlink(format!("cannot bring {ifname} up in the guest"), e))?;
        }
        Op::AddAddress { ifname, address } => {
            let i = guest_index(env, ifname)?;
            let brd = msg::v4_broadcast(address);
            env.guest
                .request(
                    msg::new_address(i, address.addr(), address.prefix_len(), brd),
                    NLM_F_CREATE | NLM_F_EXCL,
                )
                .map_err(|e| {
                    Error::netlink(format!("cannot add address {address} to {ifname}"), e)
                })?;
        }
        Op::DeleteRoute { route, text } => {
            // Deleted only if it can be put back.
            let bytes = msg::route_to_bytes(route).ok_or_else(|| {
                Error::Invalid(format!(
                    "the guest's route {text} uses a lightweight tunnel or MPLS attributes that \
                     pipework cannot restore; remove it first, or attach without a gateway"
                ))
            })?;
            env.journal.will(UndoEntry::ReAddRoute {
                route: RouteBytes(bytes),
                text: text.clone(),
            })?;
            match env.guest.request(msg::del_route(route), 0) {
                Ok(()) => {}
                // Gone meanwhile: the restore finds it absent and puts the old one back,
                // which is what the guest had when we planned.
                Err(e) if e.errno == libc::ESRCH => {}
                Err(e) => return Err(Error::netlink(format!("cannot delete route {text}"), e)),
            }
        }
        Op::AddHostRoute { gateway, ifname } => {
            let i = guest_index(env, ifname)?;
            let len = if gateway.is_ipv4() { 32 } else { 128 };
            match env
                .guest
                .request(msg::new_host_route(*gateway, i), NLM_F_CREATE | NLM_F_EXCL)
            {
                Ok(()) => {}
                Err(e) if e.errno == libc::EEXIST => {} // a route to it is already there
                Err(e) => {
                    return Err(Error::netlink(
                        format!("cannot add route {gateway}/{len} dev {ifname}"),
                        e,
                    ))
                }
            }
            env.learned.applied.routes.push(RouteReport {
                dst: format!("{gateway}/{len}"),
                via: None,
                dev: ifname.clone(),
            });
        }
        Op::AddDefaultRoute { gateway, ifname } => {
            let i = guest_index(env, ifname)?;
            let route = msg::new_default_route(*gateway, i);
            if let RouteNetlinkMessage::NewRoute(r) = &route {
                // Taken out first on undo, so the original default can be restored in its
                // place (the veth's deletion would take it too, but later).
                let bytes = msg::route_to_bytes(r)
                    .ok_or_else(|| Error::Internal("a default route of pipework's own".into()))?;
                env.journal.will(UndoEntry::DeleteRoute {
                    route: RouteBytes(bytes),
                    text: format!("default via {gateway} dev {ifname}"),
                })?;
            }
            env.guest
                .request(route, NLM_F_CREATE | NLM_F_REPLACE)
                .map_err(|e| {
                    Error::netlink(
                        format!("cannot set default route via {gateway} dev {ifname}"),
                        e,
                    )
                })?;
            env.learned.applied.routes.push(RouteReport {
                dst: "default".into(),
                via: Some(*gateway),
                dev: ifname.clone(),
            });
        }
        Op::AddRoute { dst, via, ifname } => {
            let i = guest_index(env, ifname)?;
            match env
                .guest
                .request(msg::new_route(*dst, *via, i), NLM_F_CREATE | NLM_F_EXCL)
            {
                Ok(()) => {}
                Err(e) if e.errno == libc::EEXIST => {}
                Err(e) => {
                    let how = via.map(|v| format!(" via {v}")).unwrap_or_default();
                    return Err(Error::netlink(
                        format!("cannot add route {dst}{how} dev {ifname}"),
                        e,
                    ));
                }
            }
            env.learned.applied.routes.push(RouteReport {
                dst: dst.to_string(),
                via: *via,
                dev: ifname.clone(),
            });
        }
        Op::Dhcp(d) => {
            // A wait of up to --dhcp-timeout: shown as a spinner on a terminal.
            let _task = crate::progress::Task::start(
                &format!("{}: waiting for a DHCP lease", d.ifname),
                None,
            );
            dhcp::run(env, d)?
        }
        Op::DhcpRecord { ifname } => dhcp::record(env, ifname)?,
        Op::Announce { ifname } => {
            let i = guest_index(env, ifname)?;
            let mac = match env.learned.applied.guest_mac {
                Some(m) => m,
                None => {
                    let l = get_link(env.guest, ifname)?;
                    l.as_ref().and_then(msg::link_mac).ok_or_else(|| {
                        Error::HostInterface(format!("{ifname} has no MAC address to announce"))
                    })?
                }
            };
            announce::announce(env.guest, i, ifname, &mac)?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Undoes the entries of the guest-side ops; `None` for others.
pub fn undo(entry: &UndoEntry, sys: &mut Sys<'_>) -> Option<Undone> {
    Some(match entry {
        UndoEntry::DeleteRoute { route, text } => (|| {
            let (Some(g), Some(r)) = (sys.guest.as_deref_mut(), msg::route_from_bytes(&route.0))
            else {
                return Ok(None);
            };
            if sys.batch.as_ref().is_some_and(|b| b.dry_run) {
                return Ok(Some(format!("delete route {text}")));
            }
            match g.request(msg::del_route(&r), 0) {
                Ok(()) => Ok(Some(format!("delete route {text}"))),
                Err(e) if e.errno == libc::ESRCH || e.errno == libc::ENODEV => Ok(None),
                Err(e) => Err(Error::netlink(format!("cannot delete route {text}"), e)),
            }
        })(),
        UndoEntry::ReAddRoute { route, text } => (|| {
            let (Some(g), Some(r)) = (sys.guest.as_deref_mut(), msg::route_from_bytes(&route.0))
            else {
                return Ok(None);
            };
            if sys.batch.as_ref().is_some_and(|b| b.dry_run) {
                return Ok(Some(format!("restore route {text}")));
            }
            match g.request(msg::readd_route(&r), NLM_F_CREATE | NLM_F_EXCL) {
                Ok(()) => Ok(Some(format!("restore route {text}"))),
                Err(e) if e.errno == libc::EEXIST => Ok(None),
                // Its device went with the attachment's own link (a detach after the guest
                // changed): nothing to restore it on.
                Err(e) if e.errno == libc::ENODEV => Ok(None),
                Err(e) => Err(Error::netlink(format!("route {text} was not restored"), e)),
            }
        })(),
        UndoEntry::StopProcess { pid, start, files } => {
            // Without a start time (the process was gone when journalled) nothing is signalled:
            // the bare PID may name anyone by now.
            let held = start.and_then(|s| crate::process::Held::verified(*pid, s));
            let alive = held.is_some();
            let dry = sys.dry_run();
            if !dry {
                if let Some(h) = &held {
                    h.stop();
                }
                for f in files {
                    let _ = std::fs::remove_file(f);
                }
            }
            Ok(alive.then(|| format!("stop DHCP client {pid}")))
        }
        UndoEntry::Ipv6Conf { ifname, key, value } => {
            let (Some(ns), home) = (sys.guest_ns, sys.home) else {
                return Some(Ok(None));
            };
            if sys.dry_run() {
                return Some(Ok(None));
            }
            // Gone with the attachment's own link (deleted, or moved back to the host).
            match announce::read_ipv6_conf(ns, home, ifname, key) {
                Ok(Some(_)) => announce::write_ipv6_conf(ns, home, ifname, key, value)
                    .map(|()| Some(entry.to_string())),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            }
        }
        UndoEntry::RestoreFile { file, content } => {
            if sys.dry_run() {
                return Some(Ok(None));
            }
            file.restore(content.as_deref())
                .map(|()| Some(format!("restore {file}")))
        }
        _ => return None,
    })
}
