//! The kinds that hang from a host NIC (macvlan, `--direct-phys`, IPoIB): the NIC brought up
//! as the original does, and with `@VLAN` its 802.1Q child, created (or reused) first and
//! removed once no attachment uses it.

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::MacVlanMode;

use crate::driver_api::{host_link_up, refused, HostIf, PlanCtx, Undone};
use crate::env::{Env, Sys};
use crate::error::Error;
use crate::links::{self, get_link, is_ours, kernel_lacks, link_index};
use crate::naming::validate_ifname;
use crate::netlink::msg;
use crate::plan::{LinkKind, Op, Plan, Side, Step, UndoEntry};
use crate::request::{vlan_id, MacvlanMode};
use crate::store::Record;

pub fn mode(m: MacvlanMode) -> MacVlanMode {
    match m {
        MacvlanMode::Bridge => MacVlanMode::Bridge,
        MacvlanMode::Private => MacVlanMode::Private,
        MacvlanMode::Vepa => MacVlanMode::Vepa,
        MacvlanMode::Passthru => MacVlanMode::Passthrough,
    }
}

/// The ops of [`plan_parent`]: the NIC (or its VLAN child) up, the VLAN child created.
pub fn apply_parent(op: &Op, env: &mut Env<'_>) -> Result<bool, Error> {
    let Op::CreateVlan {
        parent,
        name,
        id,
        mtu,
    } = op
    else {
        return host_link_up(env, op);
    };
    let p = link_index(env.host, parent, Side::Host)?;
    env.journal
        .will(UndoEntry::DeleteVlan { name: name.clone() })?;
    let Err(e) = env
        .host
        .request(msg::new_vlan(name, p, *id, *mtu), NLM_F_CREATE | NLM_F_EXCL)
    else {
        return Ok(true);
    };
    refused(env, &e)?;
    // Another attach made it meanwhile: used, as a bridge is, when it is that VLAN of that NIC
    // (never removed by our rollback: the entry is void).
    if e.errno == libc::EEXIST {
        if let Some(l) = get_link(env.host, name)? {
            if msg::vlan_id(&l) == Some(*id) && msg::link_parent(&l) == Some(p) {
                return Ok(true);
            }
        }
    }
    Err(match kernel_lacks(e.errno, "802.1Q VLAN", "8021q") {
        Some(why) => Error::netlink(format!("cannot create {name}: {why}"), e),
        None => Error::netlink(format!("cannot create VLAN {id} on {parent} as {name}"), e),
    })
}

/// The teardown of a kind that hangs from a NIC's VLAN child (`@VLAN`): its entries, then the
/// child, if pipework made it and nothing else uses it.
pub fn teardown_with_vlan(rec: &Record) -> Vec<UndoEntry> {
    match rec.shown().vlan {
        Some(v) => crate::driver_api::teardown_then(
            rec,
            UndoEntry::DeleteVlan {
                name: format!("{}.{v}", rec.header.host_interface),
            },
        ),
        None => crate::driver_api::teardown_entries(rec),
    }
}

/// An 802.1Q child pipework made goes when no live attachment hangs from it any more.
pub fn undo_vlan(entry: &UndoEntry, sys: &mut Sys<'_>) -> Option<Undone> {
    let UndoEntry::DeleteVlan { name } = entry else {
        return None;
    };
    Some((|| {
        let Some(l) = get_link(sys.host, name)? else {
            return Ok(None);
        };
        if !is_ours(&l, LinkKind::Vlan) || vlan_in_use(name, sys) {
            return Ok(None);
        }
        if !sys.dry_run() {
            links::delete_link(sys.host, l.header.index, name)?;
        }
        Ok(Some(format!(
            "delete VLAN interface {name} (created by pipework, now unused)"
        )))
    })())
}

/// Whether another live attachment (not torn down in this run) uses VLAN child `name`.
fn vlan_in_use(name: &str, sys: &Sys<'_>) -> bool {
    let me = sys.record.map(|r| r.path.as_path());
    crate::store::scan().records.iter().any(|r| {
        if Some(r.path.as_path()) == me || sys.record_going(&r.path) {
            return false;
        }
        if !r.complete() {
            // Another process's attach, running right now, may be about to hang from it.
            return r.header.writer != std::process::id() && crate::store::being_written(r);
        }
        let vlan = r
            .shown()
            .vlan
            .map(|v| format!("{}.{v}", r.header.host_interface));
        vlan.as_deref() == Some(name) && crate::store::guest_alive(r)
    })
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
