//! `--direct-phys` in apply: moving a NIC into the guest, and back on rollback under its name,
//! with its MAC, MTU, addresses and state. A wireless NIC moves with its phy (by `iw`).

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};

use super::{link_index, Env};
use crate::driver::phys;
use crate::error::Error;
use crate::netlink::msg;
use crate::ns::NetNs;
use crate::plan::{NicState, Side};

pub(super) fn move_to_guest(
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
    // Wireless: the phy moves (with its interfaces, names unchanged), then the rename.
    run_iw(&phys::iw_move_args(phy, env.guest_ns.raw_fd()), None)?;
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

pub(super) fn move_back(env: &mut Env<'_>, guest_index: u32, nic: &NicState) -> Result<(), Error> {
    match &nic.phy {
        None => env
            .guest
            .request(
                msg::move_link(guest_index, env.home.raw_fd(), &nic.name, nic.mtu),
                0,
            )
            .map_err(|e| Error::netlink("cannot move it back", e))?,
        Some(phy) => {
            env.guest
                .request(msg::set_link_down(guest_index), 0)
                .and_then(|()| {
                    env.guest
                        .request(msg::rename_link(guest_index, &nic.name), 0)
                })
                .map_err(|e| Error::netlink("cannot rename it back", e))?;
            run_iw(
                &phys::iw_move_args(phy, env.home.raw_fd()),
                Some(env.guest_ns),
            )?;
        }
    }
    let index = link_index(env.host, &nic.name, Side::Host)?;
    if let Some(mac) = &nic.mac {
        env.host
            .request(msg::set_link_mac(index, mac), 0)
            .map_err(|e| Error::netlink(format!("cannot restore its mac {mac}"), e))?;
    }
    for a in &nic.addresses {
        let brd = match a {
            ipnet::IpNet::V4(n) if n.prefix_len() < 31 => Some(n.broadcast()),
            _ => None,
        };
        match env.host.request(
            msg::new_address(index, a.addr(), a.prefix_len(), brd),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Ok(()) => {}
            Err(e) if e.errno == libc::EEXIST => {}
            Err(e) => return Err(Error::netlink(format!("cannot restore its address {a}"), e)),
        }
    }
    if nic.up {
        env.host
            .request(msg::set_link_up(index), 0)
            .map_err(|e| Error::netlink("cannot bring it back up", e))?;
    }
    Ok(())
}

/// Runs `iw ARGS…` (wireless phys change namespace through nl80211), inside `ns` if given.
fn run_iw(args: &[String], ns: Option<&NetNs>) -> Result<(), Error> {
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
