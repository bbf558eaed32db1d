//! Multi-host labs: one host's share of a lab whose guests are placed on several machines.
//! `share` narrows the request to what this host runs (its guests, their attachments and
//! links, the bridges with members here), gives every bridge whose members span hosts a VXLAN
//! port flooding to the other hosts with members, turns every link whose ends are on two
//! hosts into this host's VXLAN end, and fits guests' MTUs to the underlay. Pure but for the
//! underlay lookup it is handed, so unit tests drive it without a kernel. No controller:
//! every host derives the same VNIs and peers from the same file.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use md5::{Digest, Md5};
use netlink_packet_core::{NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::RouteNetlinkMessage;

use super::diff::Qdisc;
use super::state::{LabJournal, LabUndo, MadeCross, NsRef};
use super::LAB_GROUP;
use crate::engine::Session;
use crate::error::Error;
use crate::lab::{CrossEnd, LabRequest, StretchedBridge, MAX_VNI, VXLAN_PORT};
use crate::links;
use crate::netlink::vxlan::{self, VxlanSpec};
use crate::netlink::{msg, Netlink};
use crate::ns::NetNs;
use crate::plan::{Side, LINK_GROUP};

/// What VXLAN adds to a frame: outer Ethernet is not counted by the MTU; outer IP (20 or 40),
/// UDP (8), VXLAN (8) and the inner Ethernet header (14).
pub fn overhead(v6: bool) -> u32 {
    if v6 {
        70
    } else {
        50
    }
}

/// The MTU guests get on a tunnel over an underlay of `underlay_mtu`.
pub fn guest_mtu(underlay_mtu: u32, v6: bool) -> u32 {
    underlay_mtu.saturating_sub(overhead(v6)).max(68)
}

/// A VNI from the lab's and the object's names: every host derives the same one.
pub fn derive_vni(lab: &str, object: &str) -> u32 {
    let mut h = Md5::new();
    h.update(lab.as_bytes());
    h.update(b"/");
    h.update(object.as_bytes());
    let d = h.finalize();
    let v = u32::from_be_bytes([0, d[0], d[1], d[2]]);
    if v == 0 {
        1
    } else {
        v
    }
}

/// The VXLAN port of a stretched bridge (15 bytes at most: `pwvx16777215` is 12).
pub fn vxlan_name(vni: u32) -> String {
    format!("pwvx{vni}")
}

/// The VNI of every stretched bridge (`bridge:NAME`) and cross-host link (`link:NAME`): the
/// file's own first, then derived ones, a clash moved to the next free value. The order is
/// the file's names, so every host computes the same table.
pub fn vnis(
    lab: &str,
    explicit: &BTreeMap<String, u32>,
    derived: &[String],
) -> BTreeMap<String, u32> {
    let mut out: BTreeMap<String, u32> = explicit.clone();
    let mut taken: BTreeSet<u32> = explicit.values().copied().collect();
    let mut todo: Vec<(u32, &String)> = derived
        .iter()
        .filter(|k| !explicit.contains_key(*k))
        .map(|k| (derive_vni(lab, k), k))
        .collect();
    todo.sort();
    for (mut v, k) in todo {
        while taken.contains(&v) {
            v = if v >= MAX_VNI { 1 } else { v + 1 };
        }
        taken.insert(v);
        out.insert(k.clone(), v);
    }
    out
}

/// Which of the lab's hosts this machine is: the one whose underlay address it has.
pub fn own_host(req: &LabRequest, local: &[IpAddr]) -> Result<String, Error> {
    let mine: Vec<&String> = req
        .hosts
        .iter()
        .filter(|(_, a)| local.contains(a))
        .map(|(h, _)| h)
        .collect();
    let list = || {
        req.hosts
            .iter()
            .map(|(h, a)| format!("{h} {a}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match mine.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(Error::Invalid(format!(
            "none of this machine's addresses is a host of lab {} ({}): say which host this \
             is with --host NAME",
            req.lab,
            list()
        ))),
        many => Err(Error::Invalid(format!(
            "this machine has the addresses of several hosts of lab {} ({}): say which host \
             this is with --host NAME",
            req.lab,
            many.iter()
                .map(|h| h.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The underlay towards one peer: the device the route goes out of, and its MTU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Underlay {
    pub dev: Option<String>,
    pub mtu: u32,
}

/// The guests' host: `None` is every host.
fn host_of<'a>(req: &'a LabRequest, guest: &str) -> Option<&'a str> {
    req.guests.get(guest).and_then(|g| g.host.as_deref())
}

/// This host's share of `req` (see the module's text). `underlay` answers the route to a
/// peer's address.
pub fn share(
    req: &LabRequest,
    me: &str,
    underlay: &mut dyn FnMut(IpAddr) -> Result<Underlay, Error>,
) -> Result<LabRequest, Error> {
    let Some(local) = req.hosts.get(me).copied() else {
        return Err(Error::Invalid(format!(
            "host '{me}' is not one of lab {}'s hosts ({})",
            req.lab,
            req.hosts.keys().cloned().collect::<Vec<_>>().join(", ")
        )));
    };
    // The file's checks placed every guest on a listed host; a request built otherwise is
    // refused here rather than trusted.
    if let Some((g, h)) = req.guests.iter().find_map(|(k, g)| {
        g.host
            .as_deref()
            .filter(|h| !req.hosts.contains_key(*h))
            .map(|h| (k, h))
    }) {
        return Err(Error::Invalid(format!(
            "guest {g} is placed on host '{h}', which is not one of lab {}'s hosts",
            req.lab
        )));
    }
    let v6 = local.is_ipv6();
    let all: BTreeSet<&str> = req.hosts.keys().map(String::as_str).collect();
    let here = |g: &str| host_of(req, g).is_none_or(|h| h == me);
    let mut out = req.clone();
    out.host = Some(me.to_string());
    out.guests.retain(|k, _| here(k));
    out.attach.retain(|a| here(&a.guest));
    out.routes.retain(|r| here(&r.guest));
    out.stretch.clear();
    out.cross.clear();
    out.warnings.clear();

    // The hosts each bridge has members on.
    let mut members: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for a in &req.attach {
        if let crate::request::HostIfSpec::Name(b) = &a.request.host_if {
            let e = members.entry(b.as_str()).or_default();
            match host_of(req, &a.guest) {
                Some(h) => {
                    e.insert(h);
                }
                None => e.extend(all.iter().copied()),
            }
        }
    }
    let stretched: Vec<&String> = req
        .bridges
        .iter()
        .filter(|(b, d)| !d.ovs && members.get(b.as_str()).is_some_and(|m| m.len() > 1))
        .map(|(b, _)| b)
        .collect();
    // Cross-host links, by name.
    let cross: Vec<&crate::lab::LabLink> = req
        .links
        .iter()
        .filter(|l| {
            matches!(
                (host_of(req, &l.ends[0].guest), host_of(req, &l.ends[1].guest)),
                (Some(a), Some(b)) if a != b
            )
        })
        .collect();
    let explicit: BTreeMap<String, u32> = req
        .bridges
        .iter()
        .filter_map(|(b, d)| d.vni.map(|v| (format!("bridge:{b}"), v)))
        .collect();
    let mut derived: Vec<String> = stretched.iter().map(|b| format!("bridge:{b}")).collect();
    derived.extend(cross.iter().map(|l| format!("link:{}", l.name())));
    let vni = vnis(&req.lab, &explicit, &derived);

    let mut cache: HashMap<IpAddr, Underlay> = HashMap::new();
    let mut towards = |peers: &[IpAddr]| -> Result<Underlay, Error> {
        let mut u: Option<Underlay> = None;
        for p in peers {
            let got = match cache.get(p) {
                Some(g) => g.clone(),
                None => {
                    let g = underlay(*p)?;
                    cache.insert(*p, g.clone());
                    g
                }
            };
            u = Some(match u {
                None => got,
                Some(prev) => Underlay {
                    dev: prev.dev.or(got.dev),
                    mtu: prev.mtu.min(got.mtu),
                },
            });
        }
        Ok(u.unwrap_or(Underlay {
            dev: None,
            mtu: crate::engine::lab::diff::DEFAULT_MTU,
        }))
    };

    let mut keep_bridges: BTreeSet<String> = BTreeSet::new();
    for b in req.bridges.keys() {
        match members.get(b.as_str()) {
            None => {
                keep_bridges.insert(b.clone()); // no members anywhere: every host has it
            }
            Some(m) if m.contains(me) => {
                keep_bridges.insert(b.clone());
            }
            Some(_) => {}
        }
    }
    for (b, m) in &members {
        if m.len() > 1 && !req.bridges.contains_key(*b) && m.contains(me) {
            out.warnings.push(format!(
                "{b} has members on hosts {} but is not under bridges: it is not stretched \
                 (list it under bridges to carry it between hosts)",
                m.iter().copied().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    out.bridges.retain(|b, _| keep_bridges.contains(b));

    for b in stretched {
        let m = &members[b.as_str()];
        if !m.contains(me) {
            continue;
        }
        let d = &req.bridges[b];
        let mut remotes: Vec<IpAddr> = m
            .iter()
            .filter(|h| **h != me)
            .map(|h| req.hosts[*h])
            .collect();
        remotes.sort();
        let u = towards(&remotes)?;
        let mtu = guest_mtu(u.mtu, v6);
        let v = vni[&format!("bridge:{b}")];
        if let Some(bm) = d.mtu.filter(|bm| *bm > mtu) {
            out.warnings.push(format!(
                "bridge {b}: mtu {bm} does not fit the VXLAN to the other hosts (underlay MTU \
                 {} minus {} of encapsulation is {mtu}): frames larger than {mtu} are dropped",
                u.mtu,
                overhead(v6)
            ));
        }
        for a in out.attach.iter_mut() {
            if !matches!(&a.request.host_if, crate::request::HostIfSpec::Name(n) if n == b) {
                continue;
            }
            match a.request.mtu {
                None => a.request.mtu = Some(mtu),
                Some(x) if x > mtu => out.warnings.push(format!(
                    "attach '{}': mtu {x} does not fit stretched bridge {b} (underlay MTU {} \
                     minus {} of encapsulation is {mtu}): packets larger than {mtu} are dropped",
                    a.line,
                    u.mtu,
                    overhead(v6)
                )),
                Some(_) => {}
            }
        }
        out.stretch.push(StretchedBridge {
            bridge: b.clone(),
            name: vxlan_name(v),
            vni: v,
            port: d.port.unwrap_or(VXLAN_PORT),
            local,
            remotes,
            dev: u.dev,
            mtu,
        });
    }

    out.links.retain(|l| {
        let (a, b) = (
            host_of(req, &l.ends[0].guest),
            host_of(req, &l.ends[1].guest),
        );
        match (a, b) {
            (Some(a), Some(b)) => a == me && b == me,
            (Some(h), None) | (None, Some(h)) => h == me,
            (None, None) => true,
        }
    });
    for l in cross {
        let name = l.name();
        let hosts = [
            host_of(req, &l.ends[0].guest).unwrap_or_default(),
            host_of(req, &l.ends[1].guest).unwrap_or_default(),
        ];
        let Some(k) = hosts.iter().position(|h| *h == me) else {
            continue;
        };
        let peer = hosts[1 - k];
        let remote = req.hosts[peer];
        let u = towards(&[remote])?;
        let fits = guest_mtu(u.mtu, v6);
        let mtu = match l.mtu {
            None => fits,
            Some(x) => {
                if x > fits {
                    out.warnings.push(format!(
                        "link {name}: mtu {x} does not fit the VXLAN to host {peer} (underlay \
                         MTU {} minus {} of encapsulation is {fits}): packets larger than {fits} \
                         are dropped",
                        u.mtu,
                        overhead(v6)
                    ));
                }
                x
            }
        };
        out.cross.push(CrossEnd {
            link: name.clone(),
            end: l.ends[k].clone(),
            peer_host: peer.to_string(),
            vni: vni[&format!("link:{name}")],
            port: VXLAN_PORT,
            local,
            remote,
            dev: u.dev,
            mtu,
            rate: l.rate.clone(),
            netem: l.netem.clone(),
        });
    }
    Ok(out)
}

impl Session {
    /// This machine's share of a lab (`host`: its name, or none to find it from the host
    /// namespace's addresses). A lab without hosts is its own share.
    pub fn lab_localize(
        &mut self,
        req: &LabRequest,
        host: Option<&str>,
    ) -> Result<LabRequest, Error> {
        if req.hosts.is_empty() {
            if let Some(h) = host {
                return Err(Error::Invalid(format!(
                    "--host {h}: lab {} names no hosts (a one-host lab is applied as it is)",
                    req.lab
                )));
            }
            return Ok(req.clone());
        }
        let me = match host {
            Some(h) => h.to_string(),
            None => own_host(req, &self.local_addresses()?)?,
        };
        let nl = &mut self.host;
        share(req, &me, &mut |ip| underlay_to(nl, ip))
    }

    fn local_addresses(&mut self) -> Result<Vec<IpAddr>, Error> {
        let all = self
            .host
            .dump(msg::dump_addresses())
            .map_err(|e| Error::netlink("cannot list this host's addresses", e))?;
        Ok(super::addresses_by_index(all)
            .into_values()
            .flatten()
            .map(|n| n.addr())
            .collect())
    }

    /// A stretched bridge's VXLAN port, enslaved and up, with its flood list.
    pub(super) fn make_vxlan(
        &mut self,
        v: &StretchedBridge,
        j: &mut LabJournal,
    ) -> Result<(), Error> {
        let master = links::link_index(&mut self.host, &v.bridge, Side::Host)?;
        let dev = self.underlay_index(v.dev.as_deref())?;
        j.will(LabUndo::HostLink {
            name: v.name.clone(),
        })?;
        let spec = VxlanSpec {
            name: v.name.clone(),
            vni: v.vni,
            port: v.port,
            local: v.local,
            remote: None,
            dev,
            mtu: v.mtu,
            mac: None,
            group: LAB_GROUP,
            master: Some(master),
            netns_fd: None,
            learning: true,
        };
        self.create_vxlan(&spec, j, || {
            format!(
                "cannot create VXLAN port {} (vni {}, port {}) on bridge {}",
                v.name, v.vni, v.port, v.bridge
            )
        })?;
        let index = links::link_index(&mut self.host, &v.name, Side::Host)?;
        for r in &v.remotes {
            self.fdb(index, &v.name, *r, true)?;
        }
        Ok(())
    }

    /// The kernel's refusal of a VXLAN device cancels its journal entry (nothing was made).
    fn create_vxlan(
        &mut self,
        spec: &VxlanSpec,
        j: &mut LabJournal,
        what: impl FnOnce() -> String,
    ) -> Result<(), Error> {
        if let Err(e) = self
            .host
            .request(vxlan::new_vxlan(spec), NLM_F_CREATE | NLM_F_EXCL)
        {
            j.cancel_last()?;
            return Err(Error::netlink(what(), e));
        }
        Ok(())
    }

    fn underlay_index(&mut self, dev: Option<&str>) -> Result<Option<u32>, Error> {
        match dev {
            Some(d) => Ok(Some(links::link_index(&mut self.host, d, Side::Host)?)),
            None => Ok(None),
        }
    }

    /// One flood entry of a VXLAN port added or removed.
    pub(super) fn fdb(
        &mut self,
        index: u32,
        name: &str,
        remote: IpAddr,
        add: bool,
    ) -> Result<(), Error> {
        let flags = if add { NLM_F_CREATE | NLM_F_APPEND } else { 0 };
        self.host
            .request(vxlan::fdb_flood(index, remote, add), flags)
            .map_err(|e| {
                let what = if add {
                    format!("cannot add peer {remote} to the flood list of {name}")
                } else {
                    format!("cannot remove peer {remote} from the flood list of {name}")
                };
                Error::netlink(what, e)
            })
    }

    /// Deletes a VXLAN port if it still is the lab's.
    pub(super) fn delete_vxlan(&mut self, name: &str) -> Result<(), Error> {
        if let Some(l) = links::get_link(&mut self.host, name)? {
            if msg::link_group(&l) == LAB_GROUP
                && msg::link_kind_name(&l).as_deref() == Some("vxlan")
            {
                links::delete_link(&mut self.host, l.header.index, name)?;
            }
        }
        Ok(())
    }

    /// This host's end of a cross-host link: made in the host namespace (where its UDP socket
    /// and underlay are) straight into the guest under its final name, then addressed and up.
    pub(super) fn make_cross(
        &mut self,
        c: &CrossEnd,
        ns: &(NetNs, NsRef),
        j: &mut LabJournal,
    ) -> Result<(), Error> {
        let dev = self.underlay_index(c.dev.as_deref())?;
        let e = &c.end;
        j.will(LabUndo::GuestLink {
            ns: ns.1.clone(),
            name: e.ifname.clone(),
        })?;
        let spec = VxlanSpec {
            name: e.ifname.clone(),
            vni: c.vni,
            port: c.port,
            local: c.local,
            remote: Some(c.remote),
            dev,
            mtu: c.mtu,
            mac: Some(e.mac),
            group: LINK_GROUP,
            master: None,
            netns_fd: Some(ns.0.raw_fd()),
            learning: false,
        };
        self.create_vxlan(&spec, j, || {
            format!(
                "cannot create link {} ({}:{} as VXLAN vni {} to {})",
                c.link, e.guest, e.ifname, c.vni, c.remote
            )
        })?;
        let q = Qdisc {
            rate: c.rate.clone(),
            netem: c.netem.clone(),
        };
        self.link_end_up(&ns.0, e, &q)
    }

    pub(super) fn delete_cross(&mut self, m: &MadeCross) -> Result<(), Error> {
        match self.nl_of(&m.netns) {
            Some((_, nl)) => delete_vxlan_end(nl, &m.end.end.ifname),
            None => Ok(()), // its namespace is gone, and the device with it
        }
    }

    /// `pipework stretch BRIDGE --vni N --remote ADDR…`: one bridge (made when missing)
    /// stretched to the given peers, as a lab of its own (`stretch_lab`), so that running it
    /// again with other peers changes the flood list in place, and detach/gc know it.
    pub fn stretch(
        &mut self,
        bridge: &str,
        vni: u32,
        remotes: &[IpAddr],
        port: u16,
    ) -> Result<super::LabReport, Error> {
        crate::privilege::require_admin()?;
        let bad = |m: String| Error::Invalid(m);
        crate::naming::validate_ifname(bridge, "bridge")?;
        if !(1..=MAX_VNI).contains(&vni) {
            return Err(bad(format!("--vni {vni}: give 1 to {MAX_VNI}")));
        }
        if port == 0 {
            return Err(bad("--port 0: give 1 to 65535".into()));
        }
        let mut peers: Vec<IpAddr> = remotes.to_vec();
        peers.sort();
        peers.dedup();
        let Some(first) = peers.first().copied() else {
            return Err(Error::Usage(
                "stretch needs at least one --remote ADDR (the other hosts' underlay addresses)"
                    .into(),
            ));
        };
        if let Some(p) = peers
            .iter()
            .find(|p| p.is_unspecified() || p.is_multicast() || p.is_ipv6() != first.is_ipv6())
        {
            return Err(bad(format!(
                "--remote {p}: give the unicast underlay addresses of the other hosts, all of one \
                 family"
            )));
        }
        let lab = stretch_lab(bridge);
        let old = super::state::read_state(&lab)?;
        let made = old.bridges.iter().any(|b| b.name == bridge);
        let external = match links::get_link(&mut self.host, bridge)? {
            Some(l) if msg::link_kind_name(&l).as_deref() != Some("bridge") => {
                return Err(Error::HostInterface(format!(
                    "{bridge} is not a Linux bridge (it is a {}): stretch takes a bridge",
                    msg::link_kind_name(&l).unwrap_or_else(|| "device".into())
                )))
            }
            Some(_) => !made,
            None => false,
        };
        let local = {
            let r = match self.host.get(vxlan::get_route_to(first)) {
                Ok(Some(RouteNetlinkMessage::NewRoute(r))) => r,
                Ok(_) => return Err(no_route(first, None)),
                Err(e) => return Err(no_route(first, Some(e))),
            };
            vxlan::route_prefsrc(&r).ok_or_else(|| {
                Error::HostInterface(format!(
                    "the route to {first} has no source address: give this host an address on \
                     the underlay"
                ))
            })?
        };
        let mut u: Option<Underlay> = None;
        for p in &peers {
            let got = underlay_to(&mut self.host, *p)?;
            u = Some(match u {
                None => got,
                Some(prev) => Underlay {
                    dev: prev.dev.or(got.dev),
                    mtu: prev.mtu.min(got.mtu),
                },
            });
        }
        let u = u.expect("one peer at least");
        let mtu = guest_mtu(u.mtu, first.is_ipv6());
        let mut warnings = Vec::new();
        if let Some(b) = links::get_link(&mut self.host, bridge)? {
            let ports = self
                .host
                .dump(msg::dump_ports_of(b.header.index))
                .map_err(|e| Error::netlink(format!("cannot list the ports of {bridge}"), e))?;
            let big: Vec<String> = ports
                .iter()
                .filter_map(|m| match m {
                    RouteNetlinkMessage::NewLink(l)
                        if msg::link_mtu(l).is_some_and(|m| m > mtu)
                            && msg::link_kind_name(l).as_deref() != Some("vxlan") =>
                    {
                        msg::link_name(l).map(str::to_string)
                    }
                    _ => None,
                })
                .collect();
            if !big.is_empty() {
                warnings.push(format!(
                    "ports {} of {bridge} have an MTU above the {mtu} the VXLAN carries \
                     (underlay MTU {} minus {}): set the guests' MTU to {mtu}, or larger \
                     frames are dropped",
                    big.join(", "),
                    u.mtu,
                    overhead(first.is_ipv6())
                ));
            }
        }
        let req = LabRequest {
            lab,
            guests: BTreeMap::new(),
            bridges: BTreeMap::from([(
                bridge.to_string(),
                crate::lab::LabBridge {
                    external,
                    ..Default::default()
                },
            )]),
            attach: Vec::new(),
            links: Vec::new(),
            routes: Vec::new(),
            hosts: BTreeMap::new(),
            host: None,
            stretch: vec![StretchedBridge {
                bridge: bridge.to_string(),
                name: vxlan_name(vni),
                vni,
                port,
                local,
                remotes: peers,
                dev: u.dev,
                mtu,
            }],
            cross: Vec::new(),
            warnings: Vec::new(),
        };
        let mut rep = self.lab_apply(&req)?;
        rep.warnings = warnings;
        Ok(rep)
    }

    /// `detach BRIDGE` of a stretched bridge: what `stretch` made goes. `None`: `name` is no
    /// bridge `stretch` made here.
    pub fn unstretch(&mut self, name: &str) -> Option<Result<crate::report::ActionsReport, Error>> {
        if !self.is_stretched(name) {
            return None;
        }
        Some(self.lab_destroy(&stretch_lab(name)))
    }

    /// Whether `name` is a bridge `stretch` made a lab for here.
    pub fn is_stretched(&self, name: &str) -> bool {
        let lab = stretch_lab(name);
        super::state::state_path(&lab).exists() || super::state::journal_path(&lab).exists()
    }

    /// `gc`'s part: a stretch whose bridge is gone is removed (its VXLAN port with it).
    pub fn stretch_gc(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for lab in super::state::labs() {
            if !lab.starts_with(STRETCH_PREFIX) {
                continue;
            }
            let Ok(st) = super::state::read_state(&lab) else {
                continue;
            };
            let gone = st.vxlans.iter().all(|v| {
                links::get_link(&mut self.host, &v.bridge)
                    .ok()
                    .flatten()
                    .is_none()
            });
            if !gone {
                continue;
            }
            match self.lab_destroy(&lab) {
                Ok(r) => out.extend(r.actions.into_iter().map(|a| format!("stretch {lab}: {a}"))),
                Err(e) => out.push(format!("stretch {lab}: {e}")),
            }
        }
        out
    }
}

/// The labs `stretch` makes are named by their bridge: `pwst` + 8 hex digits.
pub const STRETCH_PREFIX: &str = "pwst";

pub fn stretch_lab(bridge: &str) -> String {
    let mut h = Md5::new();
    h.update(bridge.as_bytes());
    let d = h.finalize();
    format!(
        "{STRETCH_PREFIX}{:02x}{:02x}{:02x}{:02x}",
        d[0], d[1], d[2], d[3]
    )
}

fn no_route(ip: IpAddr, e: Option<crate::netlink::NlError>) -> Error {
    let what = format!(
        "no route to peer {ip} from this host: the underlay must reach every other host \
         (UDP port 4789 between them)"
    );
    match e {
        Some(e) => Error::netlink(what, e),
        None => Error::HostInterface(what),
    }
}

/// The kernel's route to a peer: its device and that device's MTU.
fn underlay_to(nl: &mut Netlink, ip: IpAddr) -> Result<Underlay, Error> {
    let r = match nl.get(vxlan::get_route_to(ip)) {
        Ok(Some(RouteNetlinkMessage::NewRoute(r))) => r,
        Ok(_) => return Err(no_route(ip, None)),
        Err(e) => return Err(no_route(ip, Some(e))),
    };
    let Some(oif) = msg::route_oif(&r) else {
        return Ok(Underlay {
            dev: None,
            mtu: super::diff::DEFAULT_MTU,
        });
    };
    let l = links::get_link_by_index(nl, oif)?.ok_or_else(|| {
        Error::NotFound(format!("the underlay device (index {oif}) to {ip} is gone"))
    })?;
    Ok(Underlay {
        dev: msg::link_name(&l).map(str::to_string),
        mtu: msg::link_mtu(&l).unwrap_or(super::diff::DEFAULT_MTU),
    })
}

/// Deletes a cross link's VXLAN end if it still is pipework's.
pub(super) fn delete_vxlan_end(nl: &mut Netlink, name: &str) -> Result<(), Error> {
    if let Some(l) = links::get_link(nl, name)? {
        if msg::link_group(&l) == LINK_GROUP && msg::link_kind_name(&l).as_deref() == Some("vxlan")
        {
            links::delete_link(nl, l.header.index, name)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
