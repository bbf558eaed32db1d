//! The veth pair of the bridge and OVS kinds: its plan (the host end's name checked, a down
//! leftover replaced), its creation in one message, and the checks of its host end.

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};

use crate::driver_api::{learn_guest_link, refused, HostIf, PlanCtx};
use crate::env::{Env, Sys};
use crate::error::Error;
use crate::links::{get_link, get_link_by_index, is_ours, link_index};
use crate::naming::default_host_ifname;
use crate::netlink::msg;
use crate::plan::{LinkKind, Op, Plan, Side, Step, UndoEntry};
use crate::store::Record;

const DEFAULT_MTU: u32 = 1500;

/// The veth pair of the bridge and OVS kinds: checks the host-side name (a down leftover is
/// replaced, an up one refused) and adds the creation step. Returns the host end's name.
pub fn plan_veth(
    ctx: &mut PlanCtx<'_>,
    host_if: &HostIf,
    plan: &mut Plan,
    master: Option<String>,
) -> Result<String, Error> {
    let req = ctx.req;
    let host = req
        .host_ifname
        .clone()
        .unwrap_or_else(|| default_host_ifname(&plan.guest_ifname, ctx.guest.naming_id()));
    if host == host_if.name {
        return Err(Error::Invalid(format!(
            "the host-side name {host} (-l) is the bridge's own name"
        )));
    }
    let mtu = match (&host_if.link, req.mtu) {
        (_, Some(m)) => m,
        (Some(l), None) => msg::link_mtu(l).unwrap_or(DEFAULT_MTU),
        (None, None) => DEFAULT_MTU,
    };
    if let Some(existing) = get_link(ctx.host, &host)? {
        if msg::link_is_up(&existing) {
            return Err(Error::Busy(format!(
                "Link {host} exists and is up: it is in use; pick another host-side name with \
                 -l, or remove it"
            )));
        }
        // A down veth of that name is a leftover (of the original, or of a guest that died
        // with its end in the host): replaced, as the original does. Anything else is
        // someone's link.
        if msg::link_kind_name(&existing).as_deref() != Some("veth") {
            return Err(Error::Busy(format!(
                "Link {host} exists and is not a veth (a {}): pick another host-side name with \
                 -l, or remove it",
                msg::link_kind_name(&existing).unwrap_or_else(|| "device".into())
            )));
        }
        plan.steps.push(Step::new(
            "replace-stale-host-link",
            Op::DeleteStaleLink { name: host.clone() },
        ));
    }
    plan.steps.push(Step::new(
        "create-veth",
        Op::CreateVeth {
            host: host.clone(),
            master,
            guest: plan.guest_ifname.clone(),
            mtu,
            mac: req.mac,
        },
    ));
    plan.host_ifname = Some(host.clone());
    Ok(host)
}

/// The veth ops of the bridge and OVS kinds: a down leftover of the host end's name replaced,
/// and the pair created in one message.
pub fn apply_veth(op: &Op, env: &mut Env<'_>) -> Result<bool, Error> {
    match op {
        Op::DeleteStaleLink { name } => {
            if let Some(l) = get_link(env.host, name)? {
                match env.host.request(msg::del_link(l.header.index), 0) {
                    Ok(()) => {}
                    Err(e) if e.errno == libc::ENODEV => {}
                    Err(e) => {
                        return Err(Error::netlink(
                            format!("cannot delete leftover link {name}"),
                            e,
                        ))
                    }
                }
            }
        }
        Op::CreateVeth {
            host,
            master,
            guest,
            mtu,
            mac,
        } => {
            let master = match (master, env.learned.bridge_index) {
                (None, _) => None,
                (Some(_), Some(i)) => Some(i),
                (Some(m), None) => Some(link_index(env.host, m, Side::Host)?),
            };
            let peer = msg::PeerSpec {
                name: guest.clone(),
                mtu: *mtu,
                mac: *mac,
                netns_fd: env.guest_ns.raw_fd(),
            };
            // Deleting the host end deletes the guest end, and with it every address and
            // route the later steps put on it: those steps need no undo of their own.
            env.journal.will(UndoEntry::DeleteLink {
                side: Side::Host,
                name: host.clone(),
                kind: LinkKind::Veth,
            })?;
            let r = env.host.request(
                msg::new_veth(host, *mtu, master, &peer),
                NLM_F_CREATE | NLM_F_EXCL,
            );
            if let Err(e) = &r {
                refused(env, e)?;
            }
            r.map_err(|e| {
                let what = if e.errno == libc::EEXIST {
                    format!(
                        "cannot create veth pair {host} (host) <-> {guest} (guest): one of the \
                             two names is already taken"
                    )
                } else {
                    format!("cannot create veth pair {host} (host) <-> {guest} (guest)")
                };
                Error::netlink(what, e)
            })?;
            env.learned.applied.host_index = Some(link_index(env.host, host, Side::Host)?);
            learn_guest_link(env, guest)?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// The host end is the recorded one: same ifindex, name, type, pipework's group.
pub fn host_end_matches(rec: &Record, sys: &mut Sys<'_>) -> bool {
    let (Some(name), Some(index)) = (
        rec.header.host_ifname.as_deref(),
        rec.header.identity.as_ref().and_then(|i| i.host_ifindex),
    ) else {
        return false;
    };
    matches!(
        get_link_by_index(sys.host, index),
        Ok(Some(l)) if msg::link_name(&l) == Some(name) && is_ours(&l, LinkKind::Veth)
    )
}

pub fn check_host_end(rec: &Record, sys: &mut Sys<'_>) -> Result<Vec<String>, Error> {
    let mut d = Vec::new();
    if !host_end_matches(rec, sys) {
        d.push(format!(
            "the host end {} is gone or is not the one pipework made",
            rec.header.host_ifname.as_deref().unwrap_or("?")
        ));
    }
    Ok(d)
}
