//! What every host-interface driver is written against: the [`Driver`] trait, the planning
//! context, and the helpers several kinds share (guest-side links, host links brought up, the
//! undo of links pipework made, the checks of the guest interface). It depends on no driver, so
//! drivers may share code through it (`veth` for bridge and OVS, `nic` for the kinds that hang
//! from a host NIC) without import cycles.

pub mod nic;
pub mod veth;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::LinkMessage;

use crate::env::{Env, Sys};
use crate::error::Error;
use crate::guest::Guest;
use crate::links::{self, get_link, is_ours, kernel_lacks, link_index};
use crate::netlink::{msg, Rtnl};
use crate::plan::{GuestLink, Kind, LinkKind, Op, Plan, Side, UndoEntry};
use crate::request::AttachRequest;
use crate::store::Record;

/// The default guest interface name of Ethernet kinds.
pub const DEFAULT_GUEST_IFNAME: &str = "eth1";

/// What planning may look at: the request, the resolved guest, and read-only netlink access
/// to both namespaces.
pub struct PlanCtx<'a> {
    pub req: &'a AttachRequest,
    pub guest: &'a Guest,
    pub host: &'a mut dyn Rtnl,
    pub guest_nl: &'a mut dyn Rtnl,
}

/// The host interface as found in the host namespace.
pub struct HostIf {
    pub name: String,
    pub link: Option<LinkMessage>,
    pub found: Found,
}

/// What the host interface turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// No link of that name.
    Missing,
    LinuxBridge,
    /// An OVS bridge, with its datapath type when known ("netdev", "system", "").
    Ovs(Option<String>),
    Infiniband,
    /// Any other link (a NIC, a veth end, a VLAN…).
    Other,
}

/// What an undo did (a line for detach's output), or `None` when there was nothing to do.
pub type Undone = Result<Option<String>, Error>;

pub trait Driver: Sync {
    fn kind(&self) -> Kind;

    /// The link type of the guest interface this kind creates (None: it moves one).
    fn guest_link(&self) -> Option<LinkKind>;

    /// Whether this driver takes the host interface (asked in [`DRIVERS`] order).
    fn claims(&self, host_if: &HostIf, req: &AttachRequest) -> bool;

    fn plan(&self, ctx: &mut PlanCtx<'_>, host_if: &HostIf) -> Result<Plan, Error>;

    /// Applies one of its ops; `Ok(false)` when the op is not this driver's.
    fn apply(&self, op: &Op, env: &mut Env<'_>) -> Result<bool, Error>;

    /// Undoes one of its journal entries; `None` when the entry is not this driver's.
    fn undo(&self, entry: &UndoEntry, sys: &mut Sys<'_>) -> Option<Undone> {
        let _ = (entry, sys);
        None
    }

    /// The entries a detach replays, in order: by default the journal backwards, without the
    /// rollback-only ones.
    fn teardown(&self, rec: &Record) -> Vec<UndoEntry> {
        teardown_entries(rec)
    }

    /// Whether the live interface is the recorded one (kind, MAC, host end).
    fn alive(&self, rec: &Record, sys: &mut Sys<'_>) -> bool {
        guest_link_matches(rec, sys)
    }

    /// What no longer matches the record (empty: all as recorded).
    fn check(&self, rec: &Record, sys: &mut Sys<'_>) -> Result<Vec<String>, Error> {
        check_guest_link(rec, sys)
    }
}

/// After a create the kernel refused (it made nothing): the journal entry written for it is
/// void. Not after a timeout: then the kernel may have made it, and the undo must stay.
pub fn refused(env: &mut Env<'_>, e: &crate::netlink::NlError) -> Result<(), Error> {
    if e.errno == libc::ETIMEDOUT || e.errno == libc::EINTR {
        return Ok(());
    }
    env.journal.cancel_last()
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
            "guest {} already has an interface named {name}; choose another name (-i; CNI_IFNAME for the CNI plugin)",
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

/// Reads the guest interface just created or moved: its index (cached for later steps), MAC
/// and MTU (for the report).
pub fn learn_guest_link(env: &mut Env<'_>, name: &str) -> Result<u32, Error> {
    let gl = get_link(env.guest, name)?
        .ok_or_else(|| Error::NotFound(format!("{name} did not appear in the guest")))?;
    env.learned.guest_index = Some((name.to_string(), gl.header.index));
    env.learned.applied.guest_index = Some(gl.header.index);
    env.learned.applied.guest_mac = msg::link_mac(&gl);
    env.learned.applied.guest_mtu = msg::link_mtu(&gl);
    Ok(gl.header.index)
}

/// `CreateInGuest`: a macvlan, IPoIB or dummy link made straight inside the guest (the
/// three guest-side kinds share it).
pub fn create_in_guest(env: &mut Env<'_>, op: &Op) -> Result<bool, Error> {
    let Op::CreateInGuest {
        link,
        name,
        mtu,
        mac,
    } = op
    else {
        return Ok(false);
    };
    let (kind, what, module, lk) = match link {
        GuestLink::Macvlan { parent, mode } => (
            msg::GuestLinkKind::Macvlan {
                parent: link_index(env.host, parent, Side::Host)?,
                mode: nic::mode(*mode),
            },
            "macvlan",
            "macvlan",
            LinkKind::Macvlan,
        ),
        GuestLink::Ipoib { parent, pkey } => (
            msg::GuestLinkKind::Ipoib {
                parent: link_index(env.host, parent, Side::Host)?,
                pkey: *pkey,
            },
            "IPoIB",
            "ib_ipoib",
            LinkKind::Ipoib,
        ),
        GuestLink::Dummy => (
            msg::GuestLinkKind::Dummy,
            "dummy interface",
            "dummy",
            LinkKind::Dummy,
        ),
    };
    env.journal.will(UndoEntry::DeleteLink {
        side: Side::Guest,
        name: name.clone(),
        kind: lk,
    })?;
    let m = msg::new_link_in_guest(&kind, name, *mtu, mac.as_ref(), env.guest_ns.raw_fd());
    if let Err(e) = env.host.request(m, NLM_F_CREATE | NLM_F_EXCL) {
        refused(env, &e)?;
        return Err(match kernel_lacks(e.errno, what, module) {
            Some(why) => Error::netlink(format!("cannot create {name}: {why}"), e),
            None => Error::netlink(format!("cannot create {what} {name} in the guest"), e),
        });
    }
    learn_guest_link(env, name)?;
    Ok(true)
}

/// `HostLinkUp`: a host NIC (or its VLAN child) brought up, as the original does.
pub fn host_link_up(env: &mut Env<'_>, op: &Op) -> Result<bool, Error> {
    let Op::HostLinkUp { name } = op else {
        return Ok(false);
    };
    let l = get_link(env.host, name)?
        .ok_or_else(|| Error::HostInterface(format!("no link {name} in the host")))?;
    if !msg::link_is_up(&l) {
        env.journal
            .will(UndoEntry::HostLinkDown { name: name.clone() })?;
        env.host
            .request(msg::set_link_up(l.header.index), 0)
            .map_err(|e| Error::netlink(format!("cannot bring {name} up"), e))?;
    }
    Ok(true)
}

/// The link undo entries every kind shares: deleting a link pipework made, bringing a host
/// link back down.
pub fn undo_common(entry: &UndoEntry, sys: &mut Sys<'_>) -> Option<Undone> {
    Some(match entry {
        UndoEntry::DeleteLink { side, name, kind } => delete_our_link(sys, *side, name, *kind),
        UndoEntry::HostLinkDown { name } => (|| {
            let Some(l) = get_link(sys.host, name)? else {
                return Ok(None);
            };
            if !msg::link_is_up(&l) {
                return Ok(None);
            }
            if !sys.dry_run() {
                match sys.host.request(msg::set_link_down(l.header.index), 0) {
                    Ok(()) => {}
                    Err(e) if e.errno == libc::ENODEV => return Ok(None),
                    Err(e) => return Err(Error::netlink(format!("{name} is still up"), e)),
                }
            }
            Ok(Some(format!("bring {name} back down")))
        })(),
        _ => return None,
    })
}

/// Deletes a link only if it is still the one pipework made (its group and type): a link of
/// the same name may be anyone's. In a batch, host links join the batch's group instead.
fn delete_our_link(sys: &mut Sys<'_>, side: Side, name: &str, kind: LinkKind) -> Undone {
    let dry = sys.dry_run();
    let what = format!("delete {name} ({} end)", links::side_name(side));
    let nl: &mut dyn Rtnl = match side {
        Side::Host => &mut *sys.host,
        Side::Guest => match sys.guest.as_deref_mut() {
            Some(g) => g,
            // The guest's namespace is gone, and the link with it.
            None => return Ok(None),
        },
    };
    let Some(l) = get_link(nl, name)? else {
        return Ok(None);
    };
    if !is_ours(&l, kind) || !recorded_index(sys.record, side, name, l.header.index) {
        sys.log.info(format_args!(
            "{name} is not the {} pipework made (another link of that name): left alone",
            kind.info_kind()
        ));
        return Ok(None);
    }
    if let (Side::Host, Some(batch)) = (side, sys.batch.as_deref_mut()) {
        if batch.dry_run {
        } else if batch.direct {
            links::delete_link(nl, l.header.index, name)?;
        } else {
            nl.request(msg::set_link_group(l.header.index, batch.group), 0)
                .map_err(|e| Error::netlink(format!("cannot queue {name} for deletion"), e))?;
        }
        batch.host_links.insert(name.to_string());
        return Ok(Some(what));
    }
    if !dry {
        links::delete_link(nl, l.header.index, name)?;
    }
    Ok(Some(what))
}

/// Whether a live link of the record's host end or guest interface name has the ifindex the
/// record's identity names (true when there is no record or nothing recorded for it).
pub fn recorded_index(rec: Option<&Record>, side: Side, name: &str, index: u32) -> bool {
    let Some(h) = rec.map(|r| &r.header) else {
        return true;
    };
    let Some(id) = &h.identity else {
        return true;
    };
    let want = match side {
        Side::Host if h.host_ifname.as_deref() == Some(name) => id.host_ifindex,
        Side::Guest if h.ifname == name => id.guest_ifindex,
        _ => None,
    };
    want.is_none_or(|w| w == index)
}

/// The journal backwards, without what only a rollback undoes.
pub fn teardown_entries(rec: &Record) -> Vec<UndoEntry> {
    rec.undo
        .iter()
        .rev()
        .filter(|e| !e.rollback_only())
        .cloned()
        .collect()
}

/// [`teardown_entries`], then `last` (once): what any attachment of a kind removes when it is
/// the last user, whether or not this one created it (a bridge pipework made, say).
pub fn teardown_then(rec: &Record, last: UndoEntry) -> Vec<UndoEntry> {
    let mut v = teardown_entries(rec);
    if !v.contains(&last) {
        v.push(last);
    }
    v
}

/// The guest interface is the recorded one: same name, type, MAC (and ifindex when known).
pub fn guest_link_matches(rec: &Record, sys: &mut Sys<'_>) -> bool {
    let Some(g) = sys.guest.as_deref_mut() else {
        return false;
    };
    let Some(id) = &rec.header.identity else {
        return false;
    };
    let Ok(Some(l)) = get_link(g, &rec.header.ifname) else {
        return false;
    };
    if id.guest_ifindex.is_some_and(|i| i != l.header.index) {
        return false;
    }
    if id.mac.is_some() && msg::link_mac(&l) != id.mac {
        return false;
    }
    match id.guest_link {
        Some(k) => msg::link_kind_name(&l).as_deref() == Some(k.info_kind()),
        None => true,
    }
}

/// Differences of the guest interface: present, type, MAC, MTU, addresses.
pub fn check_guest_link(rec: &Record, sys: &mut Sys<'_>) -> Result<Vec<String>, Error> {
    let mut d = Vec::new();
    let h = &rec.header;
    let Some(g) = sys.guest.as_deref_mut() else {
        d.push("the guest's namespace is gone".into());
        return Ok(d);
    };
    let Some(l) = get_link(g, &h.ifname)? else {
        d.push(format!("{} is gone from the guest", h.ifname));
        return Ok(d);
    };
    let id = h.identity.clone().unwrap_or_default();
    if id.guest_ifindex.is_some_and(|i| i != l.header.index) {
        d.push(format!(
            "{} is another interface now (ifindex {}, recorded {})",
            h.ifname,
            l.header.index,
            id.guest_ifindex.unwrap_or_default()
        ));
    }
    if let Some(k) = id.guest_link {
        let now = msg::link_kind_name(&l);
        if now.as_deref() != Some(k.info_kind()) {
            d.push(format!(
                "{} is a {} now, not the {} pipework made",
                h.ifname,
                now.as_deref().unwrap_or("link of unknown type"),
                k.info_kind()
            ));
        }
    }
    if id.mac.is_some() && msg::link_mac(&l) != id.mac {
        d.push(format!(
            "{} has MAC {} (recorded {})",
            h.ifname,
            msg::link_mac(&l).map(|m| m.to_string()).unwrap_or_default(),
            id.mac.map(|m| m.to_string()).unwrap_or_default()
        ));
    }
    let want_mtu = rec
        .header
        .attachment
        .as_ref()
        .and_then(|a| a.get("mtu"))
        .and_then(|m| m.as_u64());
    if let (Some(want), Some(now)) = (want_mtu, msg::link_mtu(&l)) {
        if u64::from(now) != want {
            d.push(format!("{} has MTU {now} (recorded {want})", h.ifname));
        }
    }
    let have: Vec<String> = crate::addressing::dhcp::if_addresses(g, l.header.index)?
        .into_iter()
        .map(|a| a.net.to_string())
        .collect();
    for a in rec.shown().addresses {
        if !have.contains(&a) {
            d.push(format!("{} lost its address {a}", h.ifname));
        }
    }
    if !msg::link_is_up(&l) {
        d.push(format!("{} is down", h.ifname));
    }
    d.extend(missing_routes(rec, g, l.header.index)?);
    Ok(d)
}

/// The routes the attach added (its report's `routes`) that the guest no longer has.
fn missing_routes(rec: &Record, g: &mut dyn Rtnl, index: u32) -> Result<Vec<String>, Error> {
    let want: Vec<(String, Option<std::net::IpAddr>)> = rec
        .header
        .attachment
        .as_ref()
        .and_then(|a| a.get("routes"))
        .and_then(|r| r.as_array())
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let dst = r.get("dst")?.as_str()?.to_string();
            let via = r
                .get("via")
                .and_then(|v| v.as_str())
                .and_then(|v| v.parse().ok());
            Some((dst, via))
        })
        .collect();
    if want.is_empty() {
        return Ok(Vec::new());
    }
    let mut have = Vec::new();
    for family in [
        netlink_packet_route::AddressFamily::Inet,
        netlink_packet_route::AddressFamily::Inet6,
    ] {
        for m in g
            .dump(msg::dump_routes(family))
            .map_err(|e| Error::netlink("cannot list the guest's routes", e))?
        {
            if let netlink_packet_route::RouteNetlinkMessage::NewRoute(r) = m {
                if msg::route_oif(&r) != Some(index) {
                    continue;
                }
                let dst = match msg::route_dst(&r) {
                    Some((ip, len)) if len > 0 => format!("{ip}/{len}"),
                    _ => "default".to_string(),
                };
                have.push((dst, msg::route_gateway(&r)));
            }
        }
    }
    Ok(want
        .into_iter()
        .filter(|w| !have.contains(w))
        .map(|(dst, via)| match via {
            Some(v) => format!("{} lost its route {dst} via {v}", rec.header.ifname),
            None => format!("{} lost its route {dst}", rec.header.ifname),
        })
        .collect())
}
