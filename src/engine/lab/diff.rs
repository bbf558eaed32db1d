//! The plan of a lab: what the kernel shows (`Observed`, read once per namespace) against
//! what the request wants and what the lab's state says it made, as a list of changes, each
//! rendered field by field. Pure: unit-tested without a kernel.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use super::state::{LabState, NsRef};
use crate::error::Error;
use crate::lab::{LabBridge, LabRequest};
use crate::mac::MacAddr;
use crate::plan::LINK_GROUP;
use crate::request::{Addressing, AttachRequest};

/// The MTU a link gets when nothing says otherwise.
pub const DEFAULT_MTU: u32 = 1500;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkSeen {
    pub index: u32,
    pub kind: Option<String>,
    pub mac: Option<MacAddr>,
    pub mtu: Option<u32>,
    pub up: bool,
    pub group: u32,
    pub master: Option<u32>,
    /// Its own addresses (not the kernel's IPv6 link-local ones).
    pub addresses: Vec<IpNet>,
    /// The root qdisc's kind, when it is not the kernel's default.
    pub qdisc: Option<String>,
    /// A VXLAN device's settings.
    pub vxlan: Option<crate::netlink::vxlan::VxlanSeen>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteSeen {
    pub dst: IpNet,
    pub via: Option<IpAddr>,
    pub oif: Option<u32>,
    pub metric: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct GuestSeen {
    pub ns: Option<NsRef>,
    pub links: HashMap<String, LinkSeen>,
    pub routes: Vec<RouteSeen>,
}

/// The kernel as the plan saw it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub host: HashMap<String, LinkSeen>,
    /// Open vSwitch bridges that exist.
    pub ovs: BTreeSet<String>,
    /// Per guest key; `None`: its named namespace does not exist yet.
    pub guests: BTreeMap<String, Option<GuestSeen>>,
    /// The flood lists of the host's VXLAN ports the lab names, by device name (sorted).
    pub fdb: HashMap<String, Vec<IpAddr>>,
}

/// One change of an apply. Indexes are into the request (`i`) or the state (`s`).
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    MakeNetns {
        guest: String,
        name: String,
    },
    MakeBridge {
        name: String,
        bridge: LabBridge,
    },
    BridgeMtu {
        name: String,
        from: Option<u32>,
        to: u32,
    },
    Attach {
        i: usize,
    },
    Reattach {
        i: usize,
        s: usize,
        why: String,
    },
    /// `drops`: the default route through it now, which the kernel drops with the address.
    AttachAddresses {
        i: usize,
        s: usize,
        del: Vec<IpNet>,
        add: Vec<IpNet>,
        drops: Option<IpAddr>,
    },
    AttachMtu {
        i: usize,
        s: usize,
        from: Option<u32>,
        to: u32,
    },
    AttachGateway {
        i: usize,
        s: usize,
        from: Option<IpAddr>,
        to: Option<IpAddr>,
    },
    AttachUp {
        i: usize,
        s: usize,
    },
    Link {
        i: usize,
    },
    Relink {
        i: usize,
        s: usize,
        why: String,
    },
    LinkAddresses {
        i: usize,
        end: usize,
        del: Vec<IpNet>,
        add: Vec<IpNet>,
    },
    LinkMtu {
        i: usize,
        from: Option<u32>,
        to: u32,
    },
    LinkQdisc {
        i: usize,
        from: Qdisc,
        to: Qdisc,
    },
    /// `again`: present now, but its interface is re-created by this apply.
    Route {
        i: usize,
        again: bool,
    },
    Unroute {
        s: usize,
    },
    Unlink {
        s: usize,
    },
    Detach {
        s: usize,
    },
    Unbridge {
        s: usize,
    },
    Unnetns {
        name: String,
    },
    /// A stretched bridge's VXLAN port (`want.stretch[i]`).
    Vxlan {
        i: usize,
    },
    Revxlan {
        i: usize,
        s: usize,
        why: String,
    },
    /// Only its flood list changes (a host came or went): in place.
    VxlanPeers {
        i: usize,
        del: Vec<IpAddr>,
        add: Vec<IpAddr>,
    },
    Unvxlan {
        s: usize,
    },
    /// This host's VXLAN end of a cross-host link (`want.cross[i]`).
    Cross {
        i: usize,
    },
    Recross {
        i: usize,
        s: usize,
        why: String,
    },
    CrossAddresses {
        i: usize,
        del: Vec<IpNet>,
        add: Vec<IpNet>,
    },
    Uncross {
        s: usize,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Qdisc {
    pub rate: Option<String>,
    pub netem: Option<String>,
}

impl Qdisc {
    /// The root qdisc kind that carries it.
    pub fn kind(&self) -> Option<&'static str> {
        match (&self.rate, &self.netem) {
            (_, Some(_)) => Some("netem"),
            (Some(_), None) => Some("tbf"),
            (None, None) => None,
        }
    }
}

/// One line of a plan: `+`, `~` or `-`, the object, and for a change the field and its old
/// and new values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanLine {
    pub op: char,
    pub object: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<String>,
}

impl std::fmt::Display for PlanLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.op, self.object)?;
        if let Some(field) = &self.field {
            write!(f, " {field}")?;
        }
        match (&self.old, &self.new) {
            (Some(o), Some(n)) => write!(f, ": {o} → {n}"),
            (None, Some(n)) => write!(f, ": {n}"),
            (Some(o), None) => write!(f, ": {o}"),
            (None, None) => Ok(()),
        }
    }
}

fn want_addresses(r: &AttachRequest) -> Option<Vec<IpNet>> {
    match &r.addressing {
        Addressing::None => Some(Vec::new()),
        Addressing::Static { address, .. } => Some(vec![*address]),
        Addressing::List { addresses, .. } => Some(addresses.clone()),
        Addressing::Dhcp(_) => None,
    }
}

fn want_gateway(r: &AttachRequest) -> Option<IpAddr> {
    match &r.addressing {
        Addressing::Static { gateway, .. } => *gateway,
        _ => None,
    }
}

/// What an attachment is apart from what can change in place (addresses, gateway, MTU): a
/// difference there re-creates it.
fn shape_change(old: &AttachRequest, new: &AttachRequest) -> Option<String> {
    let norm = |r: &AttachRequest| {
        let mut r = r.clone();
        r.mtu = None;
        if want_addresses(&r).is_some() {
            r.addressing = Addressing::None;
        }
        r
    };
    let (a, b) = (norm(old), norm(new));
    if a == b {
        return None;
    }
    Some(if a.host_if != b.host_if {
        format!("host interface {} → {}", host_if(old), host_if(new))
    } else if a.mac != b.mac {
        format!("mac {} → {}", opt(&a.mac), opt(&b.mac))
    } else if a.tag != b.tag {
        format!("tag {} → {}", opt(&a.tag), opt(&b.tag))
    } else if a.addressing != b.addressing {
        format!(
            "addressing {} → {}",
            addressing(&old.addressing),
            addressing(&new.addressing)
        )
    } else if a.guest != b.guest {
        format!("guest {} → {}", a.guest, b.guest)
    } else {
        "its options changed".to_string()
    })
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or("none".to_string(), |v| v.to_string())
}

fn host_if(r: &AttachRequest) -> String {
    match &r.host_if {
        crate::request::HostIfSpec::Name(n) => n.clone(),
        crate::request::HostIfSpec::Mac(m) => format!("mac:{m}"),
    }
}

pub fn addressing(a: &Addressing) -> String {
    match a {
        Addressing::None => "none (0/0)".into(),
        Addressing::Static { address, gateway } => match gateway {
            Some(g) => format!("{address}@{g}"),
            None => address.to_string(),
        },
        Addressing::Dhcp(d) => format!("dhcp ({})", d.client.name()),
        Addressing::List { addresses, .. } => list(addresses),
    }
}

fn list(v: &[IpNet]) -> String {
    if v.is_empty() {
        return "none".into();
    }
    v.iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn sorted(mut v: Vec<IpNet>) -> Vec<IpNet> {
    v.sort();
    v.dedup();
    v
}

fn minus(a: &[IpNet], b: &[IpNet]) -> Vec<IpNet> {
    a.iter().filter(|x| !b.contains(x)).copied().collect()
}

fn ours(l: &LinkSeen) -> bool {
    l.group == LINK_GROUP
}

/// The default route's gateway of a family through `oif`.
fn gateway_through(routes: &[RouteSeen], oif: u32, v6: bool) -> Option<IpAddr> {
    routes
        .iter()
        .find(|r| r.dst.prefix_len() == 0 && r.dst.addr().is_ipv6() == v6 && r.oif == Some(oif))
        .and_then(|r| r.via)
}

fn route_present(seen: &GuestSeen, r: &crate::lab::LabRoute) -> bool {
    let oif = r
        .dev
        .as_ref()
        .and_then(|d| seen.links.get(d))
        .map(|l| l.index);
    seen.routes.iter().any(|k| {
        k.dst == r.dst
            && k.via == r.via
            && (r.dev.is_none() || k.oif == oif)
            && k.metric.unwrap_or(0) == r.metric.unwrap_or(0)
    })
}

fn bridge_exists(seen: &Observed, name: &str, b: &LabBridge) -> bool {
    if b.ovs {
        seen.ovs.contains(name)
    } else {
        seen.host
            .get(name)
            .is_some_and(|l| l.kind.as_deref() == Some("bridge"))
    }
}

/// The changes that make the kernel match `want`, in the order apply makes them: namespaces
/// and bridges, attachments, links, routes, then what is gone from the file, last.
pub fn diff(want: &LabRequest, state: &LabState, seen: &Observed) -> Result<Vec<Change>, Error> {
    let mut out = Vec::new();
    let lab = &want.lab;
    for (key, g) in &want.guests {
        if let (Some(name), Some(None)) = (&g.netns, seen.guests.get(key)) {
            out.push(Change::MakeNetns {
                guest: key.clone(),
                name: name.clone(),
            });
        }
    }
    for (name, b) in &want.bridges {
        let exists = bridge_exists(seen, name, b);
        if b.external {
            if !exists {
                return Err(Error::HostInterface(format!(
                    "bridge {name} is marked external but does not exist: create it first, or \
                     drop `external: true` to let lab {lab} create it"
                )));
            }
            continue;
        }
        if !exists {
            out.push(Change::MakeBridge {
                name: name.clone(),
                bridge: b.clone(),
            });
            continue;
        }
        let made = state.bridges.iter().any(|m| &m.name == name && !m.ovs);
        if let (true, Some(to), Some(l)) = (made, b.mtu, seen.host.get(name)) {
            if l.mtu != Some(to) {
                out.push(Change::BridgeMtu {
                    name: name.clone(),
                    from: l.mtu,
                    to,
                });
            }
        }
    }
    diff_vxlans(want, state, seen, &mut out)?;
    // Interfaces re-created by this apply: routes through them come back afterwards.
    let mut recreated: BTreeSet<String> = BTreeSet::new();
    let mut matched = vec![false; state.attach.len()];
    for (i, a) in want.attach.iter().enumerate() {
        let ifname = a.ifname();
        let who = format!("{}:{ifname}", a.guest);
        let s = state
            .attach
            .iter()
            .position(|m| m.attach.guest == a.guest && m.attach.ifname() == ifname);
        if let Some(s) = s {
            matched[s] = true;
        }
        let Some(Some(g)) = seen.guests.get(&a.guest) else {
            recreated.insert(a.guest.clone());
            out.push(match s {
                Some(s) => Change::Reattach {
                    i,
                    s,
                    why: "its namespace is to be created".into(),
                },
                None => Change::Attach { i },
            });
            continue;
        };
        let link = g.links.get(ifname);
        let Some(s) = s else {
            if link.is_some() {
                return Err(Error::InterfaceExists(format!(
                    "{who}: the guest already has an interface {ifname} that lab {lab} did not \
                     make: pick another name with -i, or remove it"
                )));
            }
            recreated.insert(a.guest.clone());
            out.push(Change::Attach { i });
            continue;
        };
        let m = &state.attach[s];
        let why = if g.ns.as_ref().map(|n| n.inode) != Some(m.netns.inode) {
            Some("the guest's namespace is a new one (restarted)".to_string())
        } else if !link.is_some_and(ours) {
            Some(format!("{ifname} is gone from the guest"))
        } else if m
            .host_ifname
            .as_ref()
            .is_some_and(|h| !seen.host.contains_key(h))
        {
            Some(format!(
                "its host end {} is gone",
                m.host_ifname.as_deref().unwrap_or("")
            ))
        } else {
            shape_change(&m.attach.request, &a.request)
        };
        if let Some(why) = why {
            recreated.insert(a.guest.clone());
            out.push(Change::Reattach { i, s, why });
            continue;
        }
        let l = link.expect("checked above");
        if let Some(want_a) = want_addresses(&a.request) {
            let (want_a, have) = (sorted(want_a), sorted(l.addresses.clone()));
            let (del, add) = (minus(&have, &want_a), minus(&want_a, &have));
            let mut dropped = BTreeSet::new();
            if !del.is_empty() || !add.is_empty() {
                let drops = [false, true]
                    .into_iter()
                    .filter_map(|v6| gateway_through(&g.routes, l.index, v6))
                    .find(|gw| del.iter().any(|d| d.addr().is_ipv6() == gw.is_ipv6()));
                if let Some(gw) = drops {
                    dropped.insert(gw.is_ipv6());
                }
                out.push(Change::AttachAddresses {
                    i,
                    s,
                    del,
                    add,
                    drops,
                });
            }
            for v6 in [false, true] {
                let to = want_gateway(&a.request).filter(|g| g.is_ipv6() == v6);
                let mut from = gateway_through(&g.routes, l.index, v6);
                if dropped.contains(&v6) {
                    from = None; // gone with the old address: added back after the new one
                }
                let was = want_gateway(&m.attach.request).filter(|g| g.is_ipv6() == v6);
                // A gateway nobody asked for, then or now, is not the lab's to remove.
                if to != from && (to.is_some() || was.is_some()) {
                    out.push(Change::AttachGateway { i, s, from, to });
                }
            }
        }
        if let Some(to) = a.request.mtu {
            if l.mtu != Some(to) {
                out.push(Change::AttachMtu {
                    i,
                    s,
                    from: l.mtu,
                    to,
                });
            }
        }
        if !l.up && !a.request.guest_link_down {
            out.push(Change::AttachUp { i, s });
        }
    }
    let mut lmatched = vec![false; state.links.len()];
    for (i, want_l) in want.links.iter().enumerate() {
        let name = want_l.name();
        let s = state.links.iter().position(|m| m.link.name() == name);
        if let Some(s) = s {
            lmatched[s] = true;
        }
        let seen_ends: Vec<Option<&GuestSeen>> = want_l
            .ends
            .iter()
            .map(|e| seen.guests.get(&e.guest).and_then(|g| g.as_ref()))
            .collect();
        let links: Vec<Option<&LinkSeen>> = want_l
            .ends
            .iter()
            .zip(&seen_ends)
            .map(|(e, g)| g.and_then(|g| g.links.get(&e.ifname)))
            .collect();
        let Some(s) = s else {
            if let Some(n) = want_l
                .ends
                .iter()
                .zip(&links)
                .find_map(|(e, l)| l.map(|_| e))
            {
                return Err(Error::InterfaceExists(format!(
                    "link {name}: {}:{} already exists and lab {lab} did not make it: pick \
                     another interface name, or remove it",
                    n.guest, n.ifname
                )));
            }
            for e in &want_l.ends {
                recreated.insert(e.guest.clone());
            }
            out.push(Change::Link { i });
            continue;
        };
        let m = &state.links[s];
        let mut why = None;
        for (n, e) in want_l.ends.iter().enumerate() {
            let inode = seen_ends[n].and_then(|g| g.ns.as_ref()).map(|n| n.inode);
            why = why.or(if inode != Some(m.netns[n].inode) {
                Some(format!("{}'s namespace is a new one", e.guest))
            } else if !links[n].is_some_and(|l| ours(l) && l.kind.as_deref() == Some("veth")) {
                Some(format!("{}:{} is gone", e.guest, e.ifname))
            } else if links[n].and_then(|l| l.mac) != Some(e.mac) {
                Some(format!(
                    "{}:{} mac {} → {}",
                    e.guest,
                    e.ifname,
                    opt(&links[n].and_then(|l| l.mac)),
                    e.mac
                ))
            } else {
                None
            });
        }
        if let Some(why) = why {
            for e in &want_l.ends {
                recreated.insert(e.guest.clone());
            }
            out.push(Change::Relink { i, s, why });
            continue;
        }
        let to = want_l.mtu.unwrap_or(DEFAULT_MTU);
        let from = links[0].and_then(|l| l.mtu);
        if from != Some(to) || links[1].and_then(|l| l.mtu) != Some(to) {
            out.push(Change::LinkMtu { i, from, to });
        }
        for (end, e) in want_l.ends.iter().enumerate() {
            let have = sorted(links[end].map(|l| l.addresses.clone()).unwrap_or_default());
            let w = sorted(e.addresses.clone());
            let (del, add) = (minus(&have, &w), minus(&w, &have));
            if !del.is_empty() || !add.is_empty() {
                out.push(Change::LinkAddresses { i, end, del, add });
            }
        }
        let to = Qdisc {
            rate: want_l.rate.clone(),
            netem: want_l.netem.clone(),
        };
        let from = Qdisc {
            rate: m.link.rate.clone(),
            netem: m.link.netem.clone(),
        };
        let kinds_ok = links
            .iter()
            .all(|l| l.and_then(|l| l.qdisc.as_deref()) == to.kind());
        if from != to || !kinds_ok {
            out.push(Change::LinkQdisc { i, from, to });
        }
    }
    let uncross = diff_cross(want, state, seen, &mut out, &mut recreated)?;
    let mut rmatched = vec![false; state.routes.len()];
    for (i, r) in want.routes.iter().enumerate() {
        if let Some(s) = state.routes.iter().position(|m| m.route == *r) {
            rmatched[s] = true;
        }
        match seen.guests.get(&r.guest) {
            Some(Some(g)) if route_present(g, r) => {
                if recreated.contains(&r.guest) {
                    out.push(Change::Route { i, again: true });
                }
            }
            _ => out.push(Change::Route { i, again: false }),
        }
    }
    for (s, m) in state.routes.iter().enumerate() {
        let present = seen
            .guests
            .get(&m.route.guest)
            .and_then(|g| g.as_ref())
            .is_some_and(|g| {
                g.ns.as_ref().map(|n| n.inode) == Some(m.netns.inode) && route_present(g, &m.route)
            });
        if !rmatched[s] && present {
            out.push(Change::Unroute { s });
        }
    }
    for (s, _) in state
        .links
        .iter()
        .enumerate()
        .filter(|(s, _)| !lmatched[*s])
    {
        out.push(Change::Unlink { s });
    }
    out.extend(uncross);
    for (s, _) in state
        .attach
        .iter()
        .enumerate()
        .filter(|(s, _)| !matched[*s])
    {
        out.push(Change::Detach { s });
    }
    for (s, m) in state.vxlans.iter().enumerate() {
        if !want.stretch.iter().any(|w| w.name == m.name) {
            out.push(Change::Unvxlan { s });
        }
    }
    for (s, b) in state.bridges.iter().enumerate() {
        let wanted = want
            .bridges
            .get(&b.name)
            .is_some_and(|w| !w.external && w.ovs == b.ovs);
        if !wanted {
            out.push(Change::Unbridge { s });
        }
    }
    let wanted_ns: BTreeSet<&String> = want
        .guests
        .values()
        .filter_map(|g| g.netns.as_ref())
        .collect();
    for n in &state.netns {
        if !wanted_ns.contains(n) {
            out.push(Change::Unnetns { name: n.clone() });
        }
    }
    Ok(out)
}

/// The VXLAN ports of stretched bridges: made, re-made when they are not as wanted, their
/// flood lists changed in place.
fn diff_vxlans(
    want: &LabRequest,
    state: &LabState,
    seen: &Observed,
    out: &mut Vec<Change>,
) -> Result<(), Error> {
    for (i, w) in want.stretch.iter().enumerate() {
        let s = state.vxlans.iter().position(|m| m.name == w.name);
        let Some(l) = seen.host.get(&w.name) else {
            out.push(Change::Vxlan { i });
            continue;
        };
        let Some(s) = s else {
            return Err(Error::InterfaceExists(format!(
                "{} (the VXLAN port of bridge {} for VNI {}) already exists and lab {} did not \
                 make it: another lab or `pipework stretch` uses VNI {} here; give bridge {} \
                 another vni",
                w.name, w.bridge, w.vni, want.lab, w.vni, w.bridge
            )));
        };
        let v = l.vxlan.clone().unwrap_or_default();
        let master = seen.host.get(&w.bridge).map(|b| b.index);
        let dev = w
            .dev
            .as_ref()
            .and_then(|d| seen.host.get(d))
            .map(|d| d.index);
        let why = if l.kind.as_deref() != Some("vxlan") || l.group != super::LAB_GROUP {
            Some(format!("{} is no VXLAN port of the lab's", w.name))
        } else if v.vni != Some(w.vni) || v.port != Some(w.port) || v.local != Some(w.local) {
            Some(format!(
                "vni/port/local {}/{}/{} → {}/{}/{}",
                opt(&v.vni),
                opt(&v.port),
                opt(&v.local),
                w.vni,
                w.port,
                w.local
            ))
        } else if master.is_none() || l.master != master {
            Some(format!("it is not a port of {}", w.bridge))
        } else if dev.is_some() && v.dev != dev {
            Some(format!(
                "its underlay device is not {}",
                w.dev.as_deref().unwrap_or("")
            ))
        } else if l.mtu != Some(w.mtu) {
            Some(format!("mtu {} → {}", opt(&l.mtu), w.mtu))
        } else {
            None
        };
        if let Some(why) = why {
            out.push(Change::Revxlan { i, s, why });
            continue;
        }
        let have = seen.fdb.get(&w.name).cloned().unwrap_or_default();
        let del: Vec<IpAddr> = have
            .iter()
            .filter(|a| !w.remotes.contains(a))
            .copied()
            .collect();
        let add: Vec<IpAddr> = w
            .remotes
            .iter()
            .filter(|a| !have.contains(a))
            .copied()
            .collect();
        if !del.is_empty() || !add.is_empty() {
            out.push(Change::VxlanPeers { i, del, add });
        }
    }
    Ok(())
}

/// This host's ends of cross-host links; returns the removals (made with the links').
fn diff_cross(
    want: &LabRequest,
    state: &LabState,
    seen: &Observed,
    out: &mut Vec<Change>,
    recreated: &mut BTreeSet<String>,
) -> Result<Vec<Change>, Error> {
    let lab = &want.lab;
    let mut matched = vec![false; state.cross.len()];
    for (i, w) in want.cross.iter().enumerate() {
        let e = &w.end;
        let s = state
            .cross
            .iter()
            .position(|m| m.end.end.guest == e.guest && m.end.end.ifname == e.ifname);
        if let Some(s) = s {
            matched[s] = true;
        }
        let g = seen.guests.get(&e.guest).and_then(|g| g.as_ref());
        let l = g.and_then(|g| g.links.get(&e.ifname));
        let Some(s) = s else {
            if l.is_some() {
                return Err(Error::InterfaceExists(format!(
                    "link {}: {}:{} already exists and lab {lab} did not make it: pick another \
                 interface name, or remove it",
                    w.link, e.guest, e.ifname
                )));
            }
            recreated.insert(e.guest.clone());
            out.push(Change::Cross { i });
            continue;
        };
        let m = &state.cross[s];
        let v = l.and_then(|l| l.vxlan.clone()).unwrap_or_default();
        let inode = g.and_then(|g| g.ns.as_ref()).map(|n| n.inode);
        let why = if inode != Some(m.netns.inode) {
            Some(format!("{}'s namespace is a new one", e.guest))
        } else if !l.is_some_and(|l| ours(l) && l.kind.as_deref() == Some("vxlan")) {
            Some(format!("{}:{} is gone", e.guest, e.ifname))
        } else if v.vni != Some(w.vni)
            || v.remote != Some(w.remote)
            || v.local != Some(w.local)
            || v.port != Some(w.port)
        {
            Some(format!(
                "vni/remote {}/{} → {}/{}",
                opt(&v.vni),
                opt(&v.remote),
                w.vni,
                w.remote
            ))
        } else if l.and_then(|l| l.mac) != Some(e.mac) {
            Some(format!("mac → {}", e.mac))
        } else if l.and_then(|l| l.mtu) != Some(w.mtu) {
            Some(format!("mtu {} → {}", opt(&l.and_then(|l| l.mtu)), w.mtu))
        } else if m.end.rate != w.rate || m.end.netem != w.netem {
            Some("its rate or netem changed".into())
        } else {
            None
        };
        if let Some(why) = why {
            recreated.insert(e.guest.clone());
            out.push(Change::Recross { i, s, why });
            continue;
        }
        let have = sorted(l.map(|l| l.addresses.clone()).unwrap_or_default());
        let wa = sorted(e.addresses.clone());
        let (del, add) = (minus(&have, &wa), minus(&wa, &have));
        if !del.is_empty() || !add.is_empty() {
            out.push(Change::CrossAddresses { i, del, add });
        }
    }
    Ok((0..state.cross.len())
        .filter(|s| !matched[*s])
        .map(|s| Change::Uncross { s })
        .collect())
}

fn ips(v: &[IpAddr]) -> String {
    if v.is_empty() {
        return "none".into();
    }
    v.iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn vxlan_desc(s: &crate::lab::StretchedBridge) -> String {
    format!(
        "on {}, vni {}, port {}, local {}, peers {}, mtu {}{}",
        s.bridge,
        s.vni,
        s.port,
        s.local,
        ips(&s.remotes),
        s.mtu,
        s.dev
            .as_ref()
            .map(|d| format!(", underlay {d}"))
            .unwrap_or_default()
    )
}

fn cross_desc(c: &crate::lab::CrossEnd) -> String {
    let mut d = format!(
        "{}:{} {} mac {}, vxlan vni {} to {} (host {}), mtu {}",
        c.end.guest,
        c.end.ifname,
        list(&c.end.addresses),
        c.end.mac,
        c.vni,
        c.remote,
        c.peer_host,
        c.mtu
    );
    if let Some(r) = &c.rate {
        d.push_str(&format!(", rate {r}"));
    }
    if let Some(n) = &c.netem {
        d.push_str(&format!(", netem {n}"));
    }
    d
}

/// `~ OBJECT re-created (WHY): OLD → NEW`.
fn recreated(object: String, why: &str, old: String, new: String) -> PlanLine {
    PlanLine {
        op: '~',
        object,
        field: Some(format!("re-created ({why})")),
        old: Some(old),
        new: Some(new),
    }
}

fn line(op: char, object: String) -> PlanLine {
    PlanLine {
        op,
        object,
        field: None,
        old: None,
        new: None,
    }
}

fn field(object: String, f: &str, old: String, new: String) -> PlanLine {
    PlanLine {
        op: '~',
        object,
        field: Some(f.to_string()),
        old: Some(old),
        new: Some(new),
    }
}

/// The plan's lines of one change.
pub fn render(c: &Change, want: &LabRequest, state: &LabState) -> Vec<PlanLine> {
    let attach_obj = |guest: &str, ifname: &str| format!("attach {guest}:{ifname}");
    let attach_desc = |a: &crate::lab::LabAttach| {
        let mut d = format!(
            "on {}, {}",
            host_if(&a.request),
            addressing(&a.request.addressing)
        );
        if let Some(m) = &a.request.mac {
            d.push_str(&format!(", mac {m}"));
        }
        if let Some(t) = &a.request.tag {
            d.push_str(&format!(", vlan {t}"));
        }
        if let Some(m) = a.request.mtu {
            d.push_str(&format!(", mtu {m}"));
        }
        d
    };
    let link_desc = |l: &crate::lab::LabLink| {
        let mut d = Vec::new();
        for e in &l.ends {
            d.push(format!(
                "{}:{} {} mac {}",
                e.guest,
                e.ifname,
                list(&e.addresses),
                e.mac
            ));
        }
        d.push(format!("mtu {}", l.mtu.unwrap_or(DEFAULT_MTU)));
        if let Some(r) = &l.rate {
            d.push(format!("rate {r}"));
        }
        if let Some(n) = &l.netem {
            d.push(format!("netem {n}"));
        }
        d.join(", ")
    };
    let with = |mut l: PlanLine, new: String| {
        l.new = Some(new);
        l
    };
    match c {
        Change::MakeNetns { guest, name } => vec![with(
            line('+', format!("netns {name}")),
            format!("guest {guest}"),
        )],
        Change::MakeBridge { name, bridge } => {
            let mut d = if bridge.ovs {
                format!(
                    "Open vSwitch{}",
                    bridge
                        .datapath
                        .as_ref()
                        .map(|d| format!(", datapath {d}"))
                        .unwrap_or_default()
                )
            } else {
                "Linux bridge".to_string()
            };
            if let Some(m) = bridge.mtu {
                d.push_str(&format!(", mtu {m}"));
            }
            vec![with(line('+', format!("bridge {name}")), d)]
        }
        Change::BridgeMtu { name, from, to } => {
            vec![field(
                format!("bridge {name}"),
                "mtu",
                opt(from),
                to.to_string(),
            )]
        }
        Change::Attach { i } => {
            let a = &want.attach[*i];
            vec![with(
                line('+', attach_obj(&a.guest, a.ifname())),
                attach_desc(a),
            )]
        }
        Change::Reattach { i, s, why } => {
            let a = &want.attach[*i];
            let old = &state.attach[*s].attach;
            vec![recreated(
                attach_obj(&a.guest, a.ifname()),
                why,
                attach_desc(old),
                attach_desc(a),
            )]
        }
        Change::AttachAddresses { i, del, add, .. } => {
            let a = &want.attach[*i];
            vec![field(
                attach_obj(&a.guest, a.ifname()),
                "address",
                list(del),
                list(add),
            )]
        }
        Change::AttachMtu { i, from, to, .. } => {
            let a = &want.attach[*i];
            vec![field(
                attach_obj(&a.guest, a.ifname()),
                "mtu",
                opt(from),
                to.to_string(),
            )]
        }
        Change::AttachGateway { i, from, to, .. } => {
            let a = &want.attach[*i];
            vec![field(
                attach_obj(&a.guest, a.ifname()),
                "gateway",
                opt(from),
                opt(to),
            )]
        }
        Change::AttachUp { i, .. } => {
            let a = &want.attach[*i];
            vec![field(
                attach_obj(&a.guest, a.ifname()),
                "state",
                "down".into(),
                "up".into(),
            )]
        }
        Change::Link { i } => {
            let l = &want.links[*i];
            vec![with(line('+', format!("link {}", l.name())), link_desc(l))]
        }
        Change::Relink { i, s, why } => {
            let l = &want.links[*i];
            vec![recreated(
                format!("link {}", l.name()),
                why,
                link_desc(&state.links[*s].link),
                link_desc(l),
            )]
        }
        Change::LinkAddresses { i, end, del, add } => {
            let l = &want.links[*i];
            let e = &l.ends[*end];
            vec![field(
                format!("link {}", l.name()),
                &format!("address of {}:{}", e.guest, e.ifname),
                list(del),
                list(add),
            )]
        }
        Change::LinkMtu { i, from, to } => {
            let l = &want.links[*i];
            vec![field(
                format!("link {}", l.name()),
                "mtu",
                opt(from),
                to.to_string(),
            )]
        }
        Change::LinkQdisc { i, from, to } => {
            let l = &want.links[*i];
            let mut v = Vec::new();
            if from.rate != to.rate {
                v.push(field(
                    format!("link {}", l.name()),
                    "rate",
                    opt(&from.rate),
                    opt(&to.rate),
                ));
            }
            if from.netem != to.netem {
                v.push(field(
                    format!("link {}", l.name()),
                    "netem",
                    opt(&from.netem),
                    opt(&to.netem),
                ));
            }
            if v.is_empty() {
                v.push(field(
                    format!("link {}", l.name()),
                    "qdisc",
                    "not as applied".into(),
                    to.kind().unwrap_or("default").into(),
                ));
            }
            v
        }
        Change::Route { i, again } => {
            let r = &want.routes[*i];
            let mut l = line('+', format!("route {} {r}", r.guest));
            if *again {
                l.op = '~';
                l.field = Some("re-added (its interface is re-created)".into());
            }
            vec![l]
        }
        Change::Unroute { s } => {
            let r = &state.routes[*s].route;
            vec![line('-', format!("route {} {r}", r.guest))]
        }
        Change::Unlink { s } => {
            let l = &state.links[*s].link;
            vec![line('-', format!("link {}", l.name()))]
        }
        Change::Detach { s } => {
            let a = &state.attach[*s].attach;
            vec![with(
                line('-', attach_obj(&a.guest, a.ifname())),
                attach_desc(a),
            )]
        }
        Change::Unbridge { s } => vec![line('-', format!("bridge {}", state.bridges[*s].name))],
        Change::Unnetns { name } => vec![line('-', format!("netns {name}"))],
        Change::Vxlan { i } => {
            let v = &want.stretch[*i];
            vec![with(line('+', format!("vxlan {}", v.name)), vxlan_desc(v))]
        }
        Change::Revxlan { i, s, why } => {
            let v = &want.stretch[*i];
            vec![recreated(
                format!("vxlan {}", v.name),
                why,
                vxlan_desc(&state.vxlans[*s]),
                vxlan_desc(v),
            )]
        }
        Change::VxlanPeers { i, del, add } => {
            let v = &want.stretch[*i];
            // The flood list before: this one without what is added, with what is deleted.
            let mut old: Vec<IpAddr> = v
                .remotes
                .iter()
                .filter(|a| !add.contains(a))
                .chain(del.iter())
                .copied()
                .collect();
            old.sort();
            vec![field(
                format!("vxlan {}", v.name),
                "peers",
                ips(&old),
                ips(&v.remotes),
            )]
        }
        Change::Unvxlan { s } => vec![line('-', format!("vxlan {}", state.vxlans[*s].name))],
        Change::Cross { i } => {
            let c = &want.cross[*i];
            vec![with(line('+', format!("link {}", c.link)), cross_desc(c))]
        }
        Change::Recross { i, s, why } => {
            let c = &want.cross[*i];
            vec![recreated(
                format!("link {}", c.link),
                why,
                cross_desc(&state.cross[*s].end),
                cross_desc(c),
            )]
        }
        Change::CrossAddresses { i, del, add } => {
            let c = &want.cross[*i];
            vec![field(
                format!("link {}", c.link),
                &format!("address of {}:{}", c.end.guest, c.end.ifname),
                list(del),
                list(add),
            )]
        }
        Change::Uncross { s } => {
            vec![line('-', format!("link {}", state.cross[*s].end.link))]
        }
    }
}

#[cfg(test)]
mod tests;
