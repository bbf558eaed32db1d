//! A recording route-netlink fake with a small in-memory kernel, for unit tests of plan, apply,
//! rollback, teardown and check without root or a kernel (after youki's syscall test fake).
//!
//! A [`World`] holds network namespaces, each named by the fd a caller would put in
//! IFLA_NET_NS_FD; [`World::netns`] gives an [`Rtnl`] handle bound to one of them, as
//! `Netlink::open` inside that namespace would. The world
//! - models links (kind, name, master, MAC, MTU, up, group, parent, veth peer), addresses and
//!   routes closely enough that "apply, then roll back, and every namespace equals its
//!   snapshot" means something, with the kernel's errnos (EEXIST, ENODEV, ENOTCONN, ESRCH …);
//! - records every call ([`World::calls`]) and a readable line per applied change
//!   ([`World::changes`]);
//! - injects errors: the nth change, any message a predicate picks, or a missing kernel
//!   module ([`World::lack_kind`]).
//!
//! Compiled always (not only under `cfg(test)`) because unit tests of other modules use it;
//! production code never constructs one. Single-threaded (`Rc<RefCell<…>>`), which is all a
//! unit test needs.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::rc::Rc;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    AfSpecInet, AfSpecUnspec, BridgePortState, InfoBridgePort, InfoData, InfoKind, InfoPortData,
    InfoPortKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkLayerType, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteScope,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{NlError, NlResult, Rtnl};
use crate::mac::MacAddr;

/// Ethernet MTU, what the kernel gives a new veth, bridge or dummy.
const DEFAULT_MTU: u32 = 1500;
/// The kernel's largest MTU for software devices (ETH_MAX_MTU).
const MAX_MTU: u32 = 65535;
/// The smallest MTU IPv4 allows (ETH_MIN_MTU).
const MIN_MTU: u32 = 68;
/// IFNAMSIZ - 1.
const MAX_NAME: usize = 15;
/// The kernel's default metric of an IPv6 route (IP6_RT_PRIO_USER).
const V6_DEFAULT_METRIC: u32 = 1024;

/// What a call asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOp {
    /// A change, with the NLM_F_* flags the caller passed (NLM_F_ACK is implied).
    Request {
        flags: u16,
    },
    Get,
    Dump,
}

/// One recorded call: in which namespace (its fd), what kind, and the message as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub ns: i32,
    pub op: CallOp,
    pub msg: RouteNetlinkMessage,
}

/// How a link of a namespace looks in a [`NsSnapshot`]: everything a rollback must restore,
/// without the index (a re-created link has a new one).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LinkSnapshot {
    pub name: String,
    /// The IFLA_INFO_KIND ("veth", "bridge" …); `None` for a physical NIC or lo.
    pub kind: Option<String>,
    pub master: Option<String>,
    pub mac: String,
    pub mtu: u32,
    pub up: bool,
    pub group: u32,
}

/// The state of one namespace, sorted, for "every namespace equals its snapshot" assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsSnapshot {
    pub links: Vec<LinkSnapshot>,
    /// "IFNAME ADDRESS/PREFIX", sorted.
    pub addresses: Vec<String>,
    /// iproute2-like lines ("default via 10.0.0.1 dev eth1", "10.0.0.1/32 dev eth1 scope
    /// link"), sorted; tables other than main are named.
    pub routes: Vec<String>,
}

/// A link to seed into a namespace with [`World::seed_link`].
#[derive(Debug, Clone, Default)]
pub struct Seed {
    pub name: String,
    /// `None`: a physical Ethernet NIC (which, like the kernel's, cannot be deleted).
    pub kind: Option<InfoKind>,
    pub mtu: Option<u32>,
    pub mac: Option<MacAddr>,
    pub up: bool,
    pub master: Option<u32>,
    pub group: u32,
    pub parent: Option<u32>,
}

#[derive(Debug, Clone)]
struct Link {
    index: u32,
    name: String,
    kind: Option<InfoKind>,
    /// Kind-specific data as created (VLAN id, macvlan mode, IPoIB pkey), echoed in answers.
    data: Option<InfoData>,
    master: Option<u32>,
    mac: Vec<u8>,
    mtu: u32,
    up: bool,
    group: u32,
    /// IFLA_LINK: the lower device of a macvlan/VLAN/IPoIB child (an index of the namespace
    /// it was created from).
    parent: Option<u32>,
    /// The other end of a veth (indexes are unique across the world).
    peer: Option<u32>,
    link_layer: LinkLayerType,
    arp_notify: bool,
}

#[derive(Debug, Clone, Default)]
struct Ns {
    links: BTreeMap<u32, Link>,
    addresses: Vec<AddressMessage>,
    routes: Vec<RouteMessage>,
}

type Pred = Box<dyn Fn(&RouteNetlinkMessage) -> Option<i32>>;

#[derive(Default)]
struct Inner {
    namespaces: BTreeMap<i32, Ns>,
    next_index: u32,
    next_mac: u32,
    calls: Vec<Call>,
    changes: Vec<String>,
    /// Change requests seen so far (applied or failed).
    change_count: usize,
    /// (change number, errno): that change request fails without being applied.
    fail_at: Vec<(usize, i32)>,
    fail_when: Vec<Pred>,
    lacking: Vec<InfoKind>,
}

/// The fake kernel: every namespace, the call record and the error injections. Cloning gives
/// another handle on the same world.
#[derive(Clone)]
pub struct World {
    inner: Rc<RefCell<Inner>>,
}

/// A route-netlink "socket" of one namespace of a [`World`].
#[derive(Clone)]
pub struct FakeNl {
    world: World,
    ns: i32,
}

impl fmt::Debug for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.inner.borrow();
        f.debug_struct("World")
            .field("namespaces", &inner.namespaces.keys().collect::<Vec<_>>())
            .field("changes", &inner.changes)
            .finish()
    }
}

impl fmt::Debug for FakeNl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FakeNl(ns {})", self.ns)
    }
}

fn err(errno: i32, text: &str) -> NlError {
    NlError {
        errno,
        ext_ack: Some(text.to_string()),
    }
}

/// An errno without kernel text, as most of the kernel answers.
fn bare(errno: i32) -> NlError {
    NlError {
        errno,
        ext_ack: None,
    }
}

fn enodev() -> NlError {
    bare(libc::ENODEV)
}

fn mac_text(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn kind_text(kind: &Option<InfoKind>) -> String {
    match kind {
        Some(k) => k.to_string(),
        None => "ether".into(),
    }
}

/// What the ifinfomsg asks of IFF_UP: `Some(up)` or no change. With a zero change mask the
/// kernel takes the flags as they are (so only a set IFF_UP means something).
fn wanted_up(m: &LinkMessage) -> Option<bool> {
    if m.header.change_mask.is_empty() {
        m.header.flags.contains(LinkFlags::Up).then_some(true)
    } else if m.header.change_mask.contains(LinkFlags::Up) {
        Some(m.header.flags.contains(LinkFlags::Up))
    } else {
        None
    }
}

fn attr_name(m: &LinkMessage) -> Option<&str> {
    super::msg::link_name(m)
}

fn attr_mtu(m: &LinkMessage) -> Option<u32> {
    super::msg::link_mtu(m)
}

fn attr_mac(m: &LinkMessage) -> Option<&Vec<u8>> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(b) => Some(b),
        _ => None,
    })
}

fn attr_netns(m: &LinkMessage) -> Option<i32> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::NetNsFd(fd) => Some(*fd),
        _ => None,
    })
}

fn attr_master(m: &LinkMessage) -> Option<u32> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::Controller(i) => Some(*i),
        _ => None,
    })
}

fn attr_group(m: &LinkMessage) -> Option<u32> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::Group(g) => Some(*g),
        _ => None,
    })
}

fn attr_arp_notify(m: &LinkMessage) -> Option<bool> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::AfSpecUnspec(specs) => specs.iter().find_map(|s| match s {
            AfSpecUnspec::Inet(inet) => inet.iter().find_map(|i| match i {
                AfSpecInet::DevConfRequest(c) | AfSpecInet::DevConf(c) => Some(c.arp_notify != 0),
                _ => None,
            }),
            _ => None,
        }),
        _ => None,
    })
}

fn infos(m: &LinkMessage) -> impl Iterator<Item = &LinkInfo> {
    m.attributes
        .iter()
        .filter_map(|a| match a {
            LinkAttribute::LinkInfo(i) => Some(i),
            _ => None,
        })
        .flatten()
}

fn info_kind(m: &LinkMessage) -> Option<InfoKind> {
    infos(m).find_map(|i| match i {
        LinkInfo::Kind(k) => Some(k.clone()),
        _ => None,
    })
}

fn info_data(m: &LinkMessage) -> Option<InfoData> {
    infos(m).find_map(|i| match i {
        LinkInfo::Data(d) => Some(d.clone()),
        _ => None,
    })
}

fn veth_peer(m: &LinkMessage) -> Option<&LinkMessage> {
    infos(m).find_map(|i| match i {
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))) => Some(p),
        _ => None,
    })
}

fn addr_ip(m: &AddressMessage) -> Option<IpAddr> {
    let local = m.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    local.or_else(|| {
        m.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        })
    })
}

/// The kernel's identity of an address: IPv4 by (link, local, prefix), IPv6 by (link, address).
fn same_address(a: &AddressMessage, b: &AddressMessage) -> bool {
    a.header.index == b.header.index
        && addr_ip(a) == addr_ip(b)
        && (a.header.prefix_len == b.header.prefix_len || addr_ip(a).is_some_and(|i| i.is_ipv6()))
}

fn route_priority(m: &RouteMessage) -> u32 {
    m.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Priority(p) => Some(*p),
            _ => None,
        })
        .unwrap_or(0)
}

/// The table a route message names (RTA_TABLE over rtm_table), 0 meaning main as the kernel
/// takes it.
fn route_table_of(m: &RouteMessage) -> u32 {
    match super::msg::route_table(m) {
        0 => RouteHeader::RT_TABLE_MAIN as u32,
        t => t,
    }
}

/// The kernel's identity of a route in its table: family, table, destination, TOS, metric.
fn same_route(a: &RouteMessage, b: &RouteMessage) -> bool {
    a.header.address_family == b.header.address_family
        && route_table_of(a) == route_table_of(b)
        && super::msg::route_dst(a) == super::msg::route_dst(b)
        && a.header.destination_prefix_length == b.header.destination_prefix_length
        && a.header.tos == b.header.tos
        && route_priority(a) == route_priority(b)
}

/// A route as the kernel would store and dump it: table and metric explicit, no flags.
fn normalized_route(m: &RouteMessage) -> RouteMessage {
    let mut r = m.clone();
    let table = route_table_of(m);
    r.header.table = u8::try_from(table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
    r.attributes
        .retain(|a| !matches!(a, RouteAttribute::Table(_) | RouteAttribute::CacheInfo(_)));
    r.attributes.push(RouteAttribute::Table(table));
    if r.header.address_family == AddressFamily::Inet6 && route_priority(&r) == 0 {
        r.attributes
            .retain(|a| !matches!(a, RouteAttribute::Priority(_)));
        r.attributes
            .push(RouteAttribute::Priority(V6_DEFAULT_METRIC));
    }
    r.header.flags = RouteFlags::empty();
    r
}

fn prefix_contains(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => ipnet::Ipv4Net::new(n, len).is_ok_and(|p| p.contains(&i)),
        (IpAddr::V6(n), IpAddr::V6(i)) => ipnet::Ipv6Net::new(n, len).is_ok_and(|p| p.contains(&i)),
        _ => false,
    }
}

fn route_line(ns: &Ns, r: &RouteMessage) -> String {
    let dst = match super::msg::route_dst(r) {
        Some((ip, len)) if len > 0 => format!("{ip}/{len}"),
        _ => "default".to_string(),
    };
    let mut line = dst;
    if let Some(gw) = super::msg::route_gateway(r) {
        line.push_str(&format!(" via {gw}"));
    }
    if let Some(oif) = super::msg::route_oif(r) {
        let name = ns
            .links
            .get(&oif)
            .map(|l| l.name.clone())
            .unwrap_or_else(|| format!("if{oif}"));
        line.push_str(&format!(" dev {name}"));
    }
    let table = route_table_of(r);
    if table != RouteHeader::RT_TABLE_MAIN as u32 {
        line.push_str(&format!(" table {table}"));
    }
    if r.header.scope == RouteScope::Link {
        line.push_str(" scope link");
    }
    let metric = route_priority(r);
    if metric != 0
        && !(r.header.address_family == AddressFamily::Inet6 && metric == V6_DEFAULT_METRIC)
    {
        line.push_str(&format!(" metric {metric}"));
    }
    line
}

impl Default for World {
    fn default() -> Self {
        World::new()
    }
}

impl World {
    pub fn new() -> World {
        World {
            inner: Rc::new(RefCell::new(Inner {
                // 1 is every namespace's lo.
                next_index: 2,
                ..Inner::default()
            })),
        }
    }

    /// The namespace IFLA_NET_NS_FD = `fd` refers to, created (with its lo) on first use.
    pub fn netns(&self, fd: i32) -> FakeNl {
        self.inner.borrow_mut().ns_mut(fd);
        FakeNl {
            world: self.clone(),
            ns: fd,
        }
    }

    /// Every call so far, failed ones included, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.inner.borrow().calls.clone()
    }

    /// One readable line per applied change, in order ("ns 3: newlink veth veth1pl42 peer
    /// eth1 in ns 4").
    pub fn changes(&self) -> Vec<String> {
        self.inner.borrow().changes.clone()
    }

    /// Forgets the recorded calls and changes (the model and the injections stay).
    pub fn clear_record(&self) {
        let mut inner = self.inner.borrow_mut();
        inner.calls.clear();
        inner.changes.clear();
    }

    /// The `n`th change request from now (1 = the next one), in any namespace, fails with
    /// `errno` without being applied.
    pub fn fail_nth_change(&self, n: usize, errno: i32) {
        let mut inner = self.inner.borrow_mut();
        let at = inner.change_count + n.max(1);
        inner.fail_at.push((at, errno));
    }

    /// Every call (change, get or dump) for which `pred` returns an errno fails with it,
    /// without being applied.
    pub fn fail_when(&self, pred: impl Fn(&RouteNetlinkMessage) -> Option<i32> + 'static) {
        self.inner.borrow_mut().fail_when.push(Box::new(pred));
    }

    /// Creating links of this kind fails with EOPNOTSUPP, as on a kernel without the module.
    pub fn lack_kind(&self, kind: InfoKind) {
        self.inner.borrow_mut().lacking.push(kind);
    }

    /// The sorted state of one namespace.
    pub fn snapshot(&self, fd: i32) -> NsSnapshot {
        let mut inner = self.inner.borrow_mut();
        let ns = inner.ns_mut(fd);
        let name_of = |i: &u32| ns.links.get(i).map(|l| l.name.clone());
        let mut links: Vec<LinkSnapshot> = ns
            .links
            .values()
            .map(|l| LinkSnapshot {
                name: l.name.clone(),
                kind: l.kind.as_ref().map(|k| k.to_string()),
                master: l.master.as_ref().and_then(name_of),
                mac: mac_text(&l.mac),
                mtu: l.mtu,
                up: l.up,
                group: l.group,
            })
            .collect();
        links.sort();
        let mut addresses: Vec<String> = ns
            .addresses
            .iter()
            .map(|a| {
                let dev = name_of(&a.header.index).unwrap_or_default();
                let ip = addr_ip(a).map(|i| i.to_string()).unwrap_or_default();
                format!("{dev} {ip}/{}", a.header.prefix_len)
            })
            .collect();
        addresses.sort();
        let mut routes: Vec<String> = ns.routes.iter().map(|r| route_line(ns, r)).collect();
        routes.sort();
        NsSnapshot {
            links,
            addresses,
            routes,
        }
    }

    /// Adds a link directly (not recorded, not counted): a host NIC, a bridge, a leftover.
    pub fn seed_link(&self, fd: i32, seed: Seed) -> u32 {
        let mut inner = self.inner.borrow_mut();
        let index = inner.new_index();
        let mac = seed
            .mac
            .map(|m| m.0.to_vec())
            .unwrap_or_else(|| inner.new_mac());
        // An IPoIB device is an InfiniBand link, as the kernel reports it.
        let link_layer = if seed.kind == Some(InfoKind::Ipoib) {
            LinkLayerType::Infiniband
        } else {
            LinkLayerType::Ether
        };
        let link = Link {
            index,
            name: seed.name,
            kind: seed.kind,
            data: None,
            master: seed.master,
            mac,
            mtu: seed.mtu.unwrap_or(DEFAULT_MTU),
            up: seed.up,
            group: seed.group,
            parent: seed.parent,
            peer: None,
            link_layer,
            arp_notify: false,
        };
        inner.ns_mut(fd).links.insert(index, link);
        index
    }

    /// Adds a link of `kind` (`None`: a physical Ethernet NIC), down, with defaults.
    pub fn add_link(&self, fd: i32, name: &str, kind: Option<InfoKind>) -> u32 {
        self.seed_link(
            fd,
            Seed {
                name: name.to_string(),
                kind,
                ..Seed::default()
            },
        )
    }

    /// Adds a veth pair directly (not recorded): `name` in `fd`, `peer_name` in `peer_fd`,
    /// both down. Returns both indexes.
    pub fn seed_veth(&self, fd: i32, name: &str, peer_fd: i32, peer_name: &str) -> (u32, u32) {
        let a = self.add_link(fd, name, Some(InfoKind::Veth));
        let b = self.add_link(peer_fd, peer_name, Some(InfoKind::Veth));
        let mut inner = self.inner.borrow_mut();
        if let Some(l) = inner.ns_mut(fd).links.get_mut(&a) {
            l.peer = Some(b);
        }
        if let Some(l) = inner.ns_mut(peer_fd).links.get_mut(&b) {
            l.peer = Some(a);
        }
        (a, b)
    }

    /// Adds an address to a link directly (not recorded).
    pub fn add_address(&self, fd: i32, index: u32, ip: IpAddr, prefix_len: u8) {
        let brd = ipnet::IpNet::new(ip, prefix_len)
            .ok()
            .and_then(|n| super::msg::v4_broadcast(&n));
        if let RouteNetlinkMessage::NewAddress(m) =
            super::msg::new_address(index, ip, prefix_len, brd)
        {
            self.inner.borrow_mut().ns_mut(fd).addresses.push(m);
        }
    }

    /// Adds a route directly (not recorded, not checked), e.g. a guest's existing default.
    pub fn add_route(&self, fd: i32, route: RouteNetlinkMessage) {
        if let RouteNetlinkMessage::NewRoute(r) = route {
            let r = normalized_route(&r);
            self.inner.borrow_mut().ns_mut(fd).routes.push(r);
        }
    }

    /// The index of the link called `name` in namespace `fd`.
    pub fn index_of(&self, fd: i32, name: &str) -> Option<u32> {
        let mut inner = self.inner.borrow_mut();
        inner.ns_mut(fd).by_name(name)
    }

    /// The link as the kernel would answer a GET for it.
    pub fn link(&self, fd: i32, name: &str) -> Option<LinkMessage> {
        let mut inner = self.inner.borrow_mut();
        let i = inner.ns_mut(fd).by_name(name)?;
        Some(inner.render_link(fd, i))
    }

    /// Whether arp_notify was turned on for the link (IFLA_AF_SPEC/AF_INET devconf).
    pub fn arp_notify(&self, fd: i32, index: u32) -> bool {
        let mut inner = self.inner.borrow_mut();
        inner
            .ns_mut(fd)
            .links
            .get(&index)
            .is_some_and(|l| l.arp_notify)
    }

    fn call(&self, ns: i32, op: CallOp, msg: &RouteNetlinkMessage) -> NlResult<()> {
        let mut inner = self.inner.borrow_mut();
        inner.calls.push(Call {
            ns,
            op,
            msg: msg.clone(),
        });
        if let CallOp::Request { .. } = op {
            inner.change_count += 1;
            let n = inner.change_count;
            if let Some(&(_, errno)) = inner.fail_at.iter().find(|(at, _)| *at == n) {
                return Err(err(errno, "injected by the test fake"));
            }
        }
        // Evaluated without the world borrowed, so a predicate may look at it (snapshot,
        // index_of) to decide.
        let preds = std::mem::take(&mut inner.fail_when);
        drop(inner);
        let hit = preds.iter().find_map(|p| p(msg));
        let mut inner = self.inner.borrow_mut();
        let added = std::mem::replace(&mut inner.fail_when, preds);
        inner.fail_when.extend(added);
        match hit {
            Some(errno) => Err(err(errno, "injected by the test fake")),
            None => Ok(()),
        }
    }
}

impl Ns {
    fn by_name(&self, name: &str) -> Option<u32> {
        self.links
            .values()
            .find(|l| l.name == name)
            .map(|l| l.index)
    }
}

/// A name the kernel accepts: 1–15 bytes, no '/', ':' or whitespace, not "." or "..".
fn check_name(name: &str) -> NlResult<()> {
    let bad = name.is_empty()
        || name.len() > MAX_NAME
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace());
    if bad {
        return Err(err(libc::EINVAL, "invalid interface name"));
    }
    Ok(())
}

fn check_mtu(mtu: u32, max: u32) -> NlResult<()> {
    if mtu > max {
        return Err(err(libc::EINVAL, "mtu greater than device maximum"));
    }
    if mtu < MIN_MTU {
        return Err(err(libc::EINVAL, "mtu less than device minimum"));
    }
    Ok(())
}

/// IFLA_MASTER naming no link is EINVAL; naming one that takes no ports is EOPNOTSUPP.
fn bad_master(ns: &Ns, index: u32) -> NlError {
    let errno = if ns.links.contains_key(&index) {
        libc::EOPNOTSUPP
    } else {
        libc::EINVAL
    };
    NlError {
        errno,
        ext_ack: None,
    }
}

/// The kernel's IPv4 code words its errors; IPv6's mostly does not.
fn v4_text(ip: IpAddr, errno: i32, text: &str) -> NlError {
    NlError {
        errno,
        ext_ack: ip.is_ipv4().then(|| text.to_string()),
    }
}

/// Kinds the kernel refuses to move to another namespace (NETIF_F_NETNS_LOCAL).
fn netns_local(l: &Link) -> bool {
    l.link_layer == LinkLayerType::Loopback || l.kind == Some(InfoKind::Bridge)
}

impl Inner {
    fn ns_mut(&mut self, fd: i32) -> &mut Ns {
        self.namespaces.entry(fd).or_insert_with(|| {
            let mut ns = Ns::default();
            ns.links.insert(
                1,
                Link {
                    index: 1,
                    name: "lo".into(),
                    kind: None,
                    data: None,
                    master: None,
                    mac: vec![0; 6],
                    mtu: 65536,
                    up: false,
                    group: 0,
                    parent: None,
                    peer: None,
                    link_layer: LinkLayerType::Loopback,
                    arp_notify: false,
                },
            );
            ns
        })
    }

    fn new_index(&mut self) -> u32 {
        let i = self.next_index;
        self.next_index += 1;
        i
    }

    /// A locally administered unicast MAC, different for every link of the world.
    fn new_mac(&mut self) -> Vec<u8> {
        self.next_mac += 1;
        let n = self.next_mac.to_be_bytes();
        vec![0x02, 0xfa, n[0], n[1], n[2], n[3]]
    }

    /// Where a link of this index lives (the namespace's fd), across the world.
    fn find(&self, index: u32) -> Option<i32> {
        self.namespaces
            .iter()
            .find(|(_, ns)| index != 1 && ns.links.contains_key(&index))
            .map(|(fd, _)| *fd)
    }

    fn render_link(&mut self, fd: i32, index: u32) -> LinkMessage {
        let peer_up = |inner: &Inner, peer: Option<u32>| {
            peer.and_then(|p| {
                let pfd = inner.find(p)?;
                inner.namespaces.get(&pfd)?.links.get(&p)
            })
            .is_some_and(|p| p.up)
        };
        let ns = self.ns_mut(fd);
        let Some(l) = ns.links.get(&index).cloned() else {
            return LinkMessage::default();
        };
        let master = l.master.and_then(|m| ns.links.get(&m).cloned());
        let ports_up = ns.links.values().any(|p| p.master == Some(index) && p.up);
        let lower_up = l.up
            && match &l.kind {
                Some(InfoKind::Veth) => peer_up(self, l.peer),
                Some(InfoKind::Bridge) => ports_up,
                _ => true,
            };
        let mut m = LinkMessage::default();
        m.header.index = l.index;
        m.header.link_layer_type = l.link_layer;
        if l.link_layer == LinkLayerType::Loopback {
            m.header.flags |= LinkFlags::Loopback;
        }
        if l.up {
            m.header.flags |= LinkFlags::Up;
        }
        if lower_up {
            m.header.flags |= LinkFlags::LowerUp | LinkFlags::Running;
        }
        m.attributes.push(LinkAttribute::IfName(l.name.clone()));
        m.attributes.push(LinkAttribute::Mtu(l.mtu));
        m.attributes.push(LinkAttribute::Group(l.group));
        m.attributes.push(LinkAttribute::Address(l.mac.clone()));
        if let Some(p) = l.parent.or(l.peer) {
            m.attributes.push(LinkAttribute::Link(p));
        }
        if let Some(mi) = l.master {
            m.attributes.push(LinkAttribute::Controller(mi));
        }
        let mut info = Vec::new();
        if let Some(k) = &l.kind {
            info.push(LinkInfo::Kind(k.clone()));
        }
        if let Some(d) = &l.data {
            info.push(LinkInfo::Data(d.clone()));
        }
        if master.is_some_and(|m| m.kind == Some(InfoKind::Bridge)) {
            let state = if lower_up {
                BridgePortState::Forwarding
            } else {
                BridgePortState::Disabled
            };
            info.push(LinkInfo::PortKind(InfoPortKind::Bridge));
            info.push(LinkInfo::PortData(InfoPortData::BridgePort(vec![
                InfoBridgePort::State(state),
            ])));
        }
        if !info.is_empty() {
            m.attributes.push(LinkAttribute::LinkInfo(info));
        }
        m
    }

    // ---- changes ---------------------------------------------------------------------------

    fn change(&mut self, fd: i32, msg: &RouteNetlinkMessage, flags: u16) -> NlResult<String> {
        match msg {
            RouteNetlinkMessage::NewLink(m) => {
                // The kernel looks a name up in the namespace the link would be created in
                // (IFLA_NET_NS_FD), not the sender's: a host "eth1" does not clash with a
                // guest "eth1" created from the host.
                let there = attr_netns(m).unwrap_or(fd);
                let existing = if m.header.index != 0 {
                    Some(m.header.index)
                } else {
                    attr_name(m).and_then(|n| self.ns_mut(there).by_name(n))
                };
                match existing {
                    Some(i) if self.ns_mut(there).links.contains_key(&i) => {
                        if flags & NLM_F_EXCL != 0 {
                            return Err(bare(libc::EEXIST));
                        }
                        // Taken for a change of that link: kind data cannot change (veth has
                        // no changelink at all), nor can the kind.
                        let l = &self.ns_mut(there).links[&i];
                        let kind = info_kind(m);
                        let data = info_data(m);
                        if (kind.is_some() && kind != l.kind)
                            || matches!(data, Some(InfoData::Veth(_)))
                        {
                            return Err(bare(libc::EOPNOTSUPP));
                        }
                        self.set_link(there, i, m)
                    }
                    Some(_) if m.header.index != 0 => Err(enodev()),
                    _ => {
                        if flags & NLM_F_CREATE == 0 {
                            return Err(enodev());
                        }
                        self.new_link(fd, m)
                    }
                }
            }
            RouteNetlinkMessage::SetLink(m) => {
                let i = if m.header.index != 0 {
                    m.header.index
                } else {
                    attr_name(m)
                        .and_then(|n| self.ns_mut(fd).by_name(n))
                        .ok_or_else(enodev)?
                };
                if !self.ns_mut(fd).links.contains_key(&i) {
                    return Err(enodev());
                }
                self.set_link(fd, i, m)
            }
            RouteNetlinkMessage::DelLink(m) => self.del_link(fd, m),
            RouteNetlinkMessage::NewAddress(m) => self.new_address(fd, m, flags),
            RouteNetlinkMessage::DelAddress(m) => self.del_address(fd, m),
            RouteNetlinkMessage::NewRoute(m) => self.new_route(fd, m, flags),
            RouteNetlinkMessage::DelRoute(m) => self.del_route(fd, m),
            _ => Err(err(
                libc::EOPNOTSUPP,
                "the test fake does not model this request",
            )),
        }
    }

    /// Builds one new link of `m` (no veth peer) to live in `target`; `src` is the sender's
    /// namespace, where IFLA_LINK and IFLA_MASTER are looked up.
    fn build_link(
        &mut self,
        src: i32,
        target: i32,
        m: &LinkMessage,
        kind: &Option<InfoKind>,
    ) -> NlResult<Link> {
        let name = match attr_name(m) {
            Some(n) => n.to_string(),
            None => format!("{}{}", kind_text(kind), self.next_index),
        };
        check_name(&name)?;
        if self.ns_mut(target).by_name(&name).is_some() {
            return Err(bare(libc::EEXIST));
        }
        let parent = super::msg::link_parent(m);
        let needs_parent = matches!(
            kind,
            Some(
                InfoKind::MacVlan
                    | InfoKind::MacVtap
                    | InfoKind::Vlan
                    | InfoKind::Ipoib
                    | InfoKind::IpVlan
            )
        );
        let mut max_mtu = MAX_MTU;
        let mut mtu = DEFAULT_MTU;
        if needs_parent {
            let p = parent.ok_or_else(|| err(libc::EINVAL, "lower device not specified"))?;
            let lower = self.ns_mut(src).links.get(&p).cloned().ok_or_else(enodev)?;
            max_mtu = lower.mtu;
            mtu = lower.mtu;
        }
        if let Some(want) = attr_mtu(m) {
            check_mtu(want, max_mtu)?;
            mtu = want;
        }
        let link_layer = if matches!(kind, Some(InfoKind::Ipoib)) {
            LinkLayerType::Infiniband
        } else {
            LinkLayerType::Ether
        };
        let mac = match attr_mac(m) {
            Some(mac) => {
                if link_layer == LinkLayerType::Ether && mac.len() != 6 {
                    return Err(err(libc::EINVAL, "invalid link address"));
                }
                mac.clone()
            }
            None if link_layer == LinkLayerType::Infiniband => {
                let mut v = vec![0; 14];
                v.extend(self.new_mac());
                v
            }
            None => self.new_mac(),
        };
        let master = match attr_master(m) {
            Some(0) | None => None,
            Some(mi) => {
                let ok = self
                    .ns_mut(target)
                    .links
                    .get(&mi)
                    .is_some_and(|l| l.kind == Some(InfoKind::Bridge));
                if !ok {
                    return Err(bad_master(self.ns_mut(target), mi));
                }
                Some(mi)
            }
        };
        Ok(Link {
            index: 0,
            name,
            kind: kind.clone(),
            data: info_data(m).filter(|d| !matches!(d, InfoData::Veth(_))),
            master,
            mac,
            mtu,
            up: wanted_up(m) == Some(true),
            group: attr_group(m).unwrap_or(0),
            parent: if needs_parent { parent } else { None },
            peer: None,
            link_layer,
            arp_notify: false,
        })
    }

    fn new_link(&mut self, fd: i32, m: &LinkMessage) -> NlResult<String> {
        let kind = info_kind(m);
        let Some(k) = &kind else {
            return Err(err(libc::EOPNOTSUPP, "kind not specified"));
        };
        if self.lacking.contains(k) {
            return Err(err(libc::EOPNOTSUPP, "Unknown device type"));
        }
        let target = attr_netns(m).unwrap_or(fd);
        let mut link = self.build_link(fd, target, m, &kind)?;
        let mut line = format!("ns {fd}: newlink {k} {}", link.name);
        if *k == InfoKind::Veth {
            let p = veth_peer(m).cloned().unwrap_or_default();
            if wanted_up(&p) == Some(true) {
                // The kernel cannot open the peer before the pair is registered.
                return Err(bare(libc::ENOTCONN));
            }
            let peer_ns = attr_netns(&p).unwrap_or(fd);
            let mut peer = self.build_link(fd, peer_ns, &p, &kind)?;
            if peer_ns == target && peer.name == link.name {
                return Err(bare(libc::EEXIST));
            }
            // The kernel registers the peer first: it gets the lower index.
            peer.index = self.new_index();
            link.index = self.new_index();
            link.peer = Some(peer.index);
            peer.peer = Some(link.index);
            line.push_str(&format!(" peer {}", peer.name));
            if peer_ns != fd {
                line.push_str(&format!(" in ns {peer_ns}"));
            }
            self.ns_mut(peer_ns).links.insert(peer.index, peer);
        } else {
            link.index = self.new_index();
        }
        if target != fd {
            line.push_str(&format!(" in ns {target}"));
        }
        if let Some(p) = link.parent {
            line.push_str(&format!(" parent {p}"));
        }
        if let Some(mi) = link.master {
            line.push_str(&format!(" master {mi}"));
        }
        if link.up {
            line.push_str(" up");
        }
        self.ns_mut(target).links.insert(link.index, link);
        Ok(line)
    }

    /// Changes an existing link, in the kernel's order: the move (with its new name) first,
    /// then the other attributes in the namespace it lands in, flags last.
    fn set_link(&mut self, fd: i32, index: u32, m: &LinkMessage) -> NlResult<String> {
        let mut parts = Vec::new();
        let mut here = fd;
        let mut link = self.ns_mut(fd).links[&index].clone();
        let new_name = attr_name(m).filter(|n| *n != link.name).map(str::to_string);
        if let Some(n) = &new_name {
            check_name(n)?;
        }
        if let Some(target) = attr_netns(m).filter(|t| *t != fd) {
            if netns_local(&link) {
                return Err(err(libc::EINVAL, "The interface netns is immutable"));
            }
            let name = new_name.clone().unwrap_or_else(|| link.name.clone());
            if self.ns_mut(target).by_name(&name).is_some() {
                return Err(bare(libc::EEXIST));
            }
            // What the kernel does on the way: the device is closed, leaves its master, and
            // loses its addresses and the routes through it.
            let src = self.ns_mut(fd);
            src.links.remove(&index);
            src.addresses.retain(|a| a.header.index != index);
            src.routes
                .retain(|r| super::msg::route_oif(r) != Some(index));
            link.up = false;
            link.master = None;
            link.name = name.clone();
            here = target;
            parts.push(format!("move to ns {target} as {name}"));
        } else if let Some(n) = &new_name {
            if self.ns_mut(fd).by_name(n).is_some() {
                return Err(bare(libc::EEXIST));
            }
            parts.push(format!("rename to {n}"));
            link.name = n.clone();
        }
        if let Some(mtu) = attr_mtu(m) {
            let max = match link.parent {
                Some(p) if link.kind != Some(InfoKind::Veth) => self
                    .namespaces
                    .values()
                    .find_map(|ns| ns.links.get(&p).filter(|_| p != 1).map(|l| l.mtu))
                    .unwrap_or(MAX_MTU),
                _ => MAX_MTU,
            };
            check_mtu(mtu, max)?;
            if mtu != link.mtu || attr_netns(m).is_none() {
                parts.push(format!("mtu {mtu}"));
            }
            link.mtu = mtu;
        }
        if let Some(mac) = attr_mac(m) {
            if link.link_layer == LinkLayerType::Ether && mac.len() != 6 {
                return Err(err(libc::EINVAL, "invalid link address"));
            }
            parts.push(format!("mac {}", mac_text(mac)));
            link.mac = mac.clone();
        }
        if let Some(mi) = attr_master(m) {
            if mi == 0 {
                parts.push("nomaster".into());
                link.master = None;
            } else {
                let ok = self
                    .ns_mut(here)
                    .links
                    .get(&mi)
                    .is_some_and(|l| l.kind == Some(InfoKind::Bridge));
                if !ok {
                    return Err(bad_master(self.ns_mut(here), mi));
                }
                parts.push(format!("master {mi}"));
                link.master = Some(mi);
            }
        }
        if let Some(g) = attr_group(m) {
            parts.push(format!("group {g}"));
            link.group = g;
        }
        if let Some(on) = attr_arp_notify(m) {
            parts.push(format!("arp_notify {}", u8::from(on)));
            link.arp_notify = on;
        }
        if let Some(up) = wanted_up(m) {
            parts.push(if up { "up" } else { "down" }.into());
            if link.up && !up {
                // NETDEV_DOWN: the kernel flushes every route through the device and its IPv6
                // addresses (keep_addr_on_down=0); IPv4 addresses stay.
                let ns = self.ns_mut(here);
                ns.routes
                    .retain(|r| super::msg::route_oif(r) != Some(index));
                ns.addresses
                    .retain(|a| a.header.index != index || a.header.family != AddressFamily::Inet6);
            }
            link.up = up;
        }
        if parts.is_empty() {
            parts.push("no change".into());
        }
        self.ns_mut(here).links.insert(index, link);
        Ok(parts.join(" "))
    }

    fn remove_link(&mut self, fd: i32, index: u32, gone: &mut Vec<String>) {
        let Some(link) = self
            .namespaces
            .get_mut(&fd)
            .and_then(|ns| ns.links.remove(&index))
        else {
            return;
        };
        gone.push(link.name.clone());
        let ns = self.ns_mut(fd);
        ns.addresses.retain(|a| a.header.index != index);
        ns.routes
            .retain(|r| super::msg::route_oif(r) != Some(index));
        for l in ns.links.values_mut() {
            if l.master == Some(index) {
                l.master = None;
            }
        }
        // The other end of a veth goes with it, and children (macvlan, VLAN, IPoIB) lose their
        // lower device, in whatever namespace they live.
        let mut dependants = Vec::new();
        for (nfd, ns) in &self.namespaces {
            for l in ns.links.values() {
                if link.peer == Some(l.index) || (index != 1 && l.parent == Some(index)) {
                    dependants.push((*nfd, l.index));
                }
            }
        }
        for (nfd, i) in dependants {
            self.remove_link(nfd, i, gone);
        }
    }

    fn del_link(&mut self, fd: i32, m: &LinkMessage) -> NlResult<String> {
        let targets: Vec<u32> = if m.header.index != 0 {
            vec![m.header.index]
        } else if let Some(n) = attr_name(m) {
            vec![self.ns_mut(fd).by_name(n).ok_or_else(enodev)?]
        } else if let Some(g) = attr_group(m) {
            if g == 0 {
                // Everything is in group 0 by default: the kernel refuses to delete it all.
                return Err(bare(libc::EPERM));
            }
            self.ns_mut(fd)
                .links
                .values()
                .filter(|l| l.group == g)
                .map(|l| l.index)
                .collect()
        } else {
            return Err(err(libc::EINVAL, "no device specified"));
        };
        let ns = self.ns_mut(fd);
        for i in &targets {
            let l = ns.links.get(i).ok_or_else(enodev)?;
            if l.kind.is_none() {
                // lo and physical NICs have no rtnl_link_ops: the kernel cannot delete them.
                return Err(bare(libc::EOPNOTSUPP));
            }
        }
        let mut gone = Vec::new();
        for i in targets {
            self.remove_link(fd, i, &mut gone);
        }
        let what = match attr_group(m) {
            Some(g) if m.header.index == 0 && attr_name(m).is_none() => format!("group {g}: "),
            _ => String::new(),
        };
        Ok(format!("ns {fd}: dellink {what}{}", gone.join(" ")))
    }

    fn new_address(&mut self, fd: i32, m: &AddressMessage, flags: u16) -> NlResult<String> {
        let ns = self.ns_mut(fd);
        let link = ns
            .links
            .get(&m.header.index)
            .ok_or_else(enodev)?
            .name
            .clone();
        let ip = addr_ip(m).ok_or_else(|| err(libc::EINVAL, "local address not specified"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        if m.header.prefix_len > max {
            return Err(err(libc::EINVAL, "invalid prefix length"));
        }
        if let Some(pos) = ns.addresses.iter().position(|a| same_address(a, m)) {
            if flags & NLM_F_EXCL != 0 || flags & NLM_F_REPLACE == 0 {
                return Err(v4_text(ip, libc::EEXIST, "ipv4: Address already assigned"));
            }
            ns.addresses[pos] = m.clone();
            return Ok(format!(
                "ns {fd}: replace address {ip}/{} dev {link}",
                m.header.prefix_len
            ));
        }
        ns.addresses.push(m.clone());
        Ok(format!(
            "ns {fd}: newaddr {ip}/{} dev {link}",
            m.header.prefix_len
        ))
    }

    fn del_address(&mut self, fd: i32, m: &AddressMessage) -> NlResult<String> {
        let ns = self.ns_mut(fd);
        let link = ns
            .links
            .get(&m.header.index)
            .ok_or_else(enodev)?
            .name
            .clone();
        let ip = addr_ip(m);
        let pos = ns
            .addresses
            .iter()
            .position(|a| {
                a.header.index == m.header.index
                    && (ip.is_none() || addr_ip(a) == ip)
                    && (m.header.prefix_len == 0 || a.header.prefix_len == m.header.prefix_len)
            })
            .ok_or_else(|| {
                let v4 = ip.is_none_or(|i| i.is_ipv4());
                NlError {
                    errno: libc::EADDRNOTAVAIL,
                    ext_ack: v4.then(|| "ipv4: Address not found".to_string()),
                }
            })?;
        let a = ns.addresses.remove(pos);
        let shown = addr_ip(&a).map(|i| i.to_string()).unwrap_or_default();
        Ok(format!(
            "ns {fd}: deladdr {shown}/{} dev {link}",
            a.header.prefix_len
        ))
    }

    /// The gateway of a route out of `oif` is reachable: inside a prefix of one of the link's
    /// addresses (its connected route; IPv4 only while the link is up), covered by a route
    /// without gateway out of it (the on-link /32 the engine adds first), or IPv6 link-local.
    fn gateway_ok(ns: &Ns, oif: u32, gw: IpAddr) -> bool {
        if let IpAddr::V6(v6) = gw {
            if v6.segments()[0] & 0xffc0 == 0xfe80 {
                return true;
            }
        }
        let up = ns.links.get(&oif).is_some_and(|l| l.up);
        let by_address = ns.addresses.iter().any(|a| {
            a.header.index == oif
                && (up || gw.is_ipv6())
                && addr_ip(a).is_some_and(|ip| prefix_contains(ip, a.header.prefix_len, gw))
        });
        let by_route = ns.routes.iter().any(|r| {
            super::msg::route_oif(r) == Some(oif)
                && super::msg::route_gateway(r).is_none()
                && match super::msg::route_dst(r) {
                    Some((dst, len)) => prefix_contains(dst, len, gw),
                    None => false,
                }
        });
        by_address || by_route
    }

    fn new_route(&mut self, fd: i32, m: &RouteMessage, flags: u16) -> NlResult<String> {
        let ns = self.ns_mut(fd);
        if let Some(oif) = super::msg::route_oif(m) {
            let l = ns.links.get(&oif).ok_or_else(enodev)?;
            match super::msg::route_gateway(m) {
                // Also what a down link gives: its connected routes are gone.
                Some(gw)
                    if !m.header.flags.contains(RouteFlags::Onlink)
                        && !Self::gateway_ok(ns, oif, gw) =>
                {
                    return Err(err(libc::ENETUNREACH, "Nexthop has invalid gateway"));
                }
                None if m.header.address_family == AddressFamily::Inet && !l.up => {
                    return Err(err(libc::ENETDOWN, "Device for nexthop is not up"));
                }
                _ => {}
            }
        } else if super::msg::route_gateway(m).is_none() {
            return Err(err(libc::EINVAL, "no nexthop device or gateway"));
        }
        let r = normalized_route(m);
        let line = route_line(ns, &r);
        if let Some(pos) = ns.routes.iter().position(|x| same_route(x, &r)) {
            if flags & NLM_F_REPLACE == 0 || flags & NLM_F_EXCL != 0 {
                return Err(bare(libc::EEXIST));
            }
            ns.routes[pos] = r;
            return Ok(format!("ns {fd}: replace route {line}"));
        }
        if flags & NLM_F_CREATE == 0 {
            return Err(err(
                libc::ENOENT,
                "route does not exist and NLM_F_CREATE is not set",
            ));
        }
        ns.routes.push(r);
        Ok(format!("ns {fd}: newroute {line}"))
    }

    /// The kernel deletes the first route of the same destination and table that also
    /// matches every nexthop attribute, metric and protocol the request gives.
    fn del_route(&mut self, fd: i32, m: &RouteMessage) -> NlResult<String> {
        let ns = self.ns_mut(fd);
        let want = normalized_route(m);
        let given_metric = route_priority(m) != 0;
        let pos = ns
            .routes
            .iter()
            .position(|r| {
                r.header.address_family == want.header.address_family
                    && route_table_of(r) == route_table_of(&want)
                    && super::msg::route_dst(r) == super::msg::route_dst(&want)
                    && r.header.destination_prefix_length == want.header.destination_prefix_length
                    && (!given_metric || route_priority(r) == route_priority(&want))
                    && super::msg::route_oif(m).is_none_or(|o| super::msg::route_oif(r) == Some(o))
                    && super::msg::route_gateway(m)
                        .is_none_or(|g| super::msg::route_gateway(r) == Some(g))
                    && (m.header.protocol == Default::default()
                        || r.header.protocol == m.header.protocol)
            })
            .ok_or(bare(libc::ESRCH))?;
        let r = ns.routes.remove(pos);
        let ns = &self.namespaces[&fd];
        Ok(format!("ns {fd}: delroute {}", route_line(ns, &r)))
    }

    // ---- reads -----------------------------------------------------------------------------

    fn get(&mut self, fd: i32, msg: &RouteNetlinkMessage) -> NlResult<RouteNetlinkMessage> {
        match msg {
            RouteNetlinkMessage::GetLink(m) => {
                let ns = self.ns_mut(fd);
                let i = if m.header.index != 0 {
                    Some(m.header.index).filter(|i| ns.links.contains_key(i))
                } else {
                    attr_name(m).and_then(|n| ns.by_name(n))
                };
                let i = i.ok_or_else(enodev)?;
                Ok(RouteNetlinkMessage::NewLink(self.render_link(fd, i)))
            }
            _ => Err(err(
                libc::EOPNOTSUPP,
                "the test fake does not model this GET",
            )),
        }
    }

    fn dump(&mut self, fd: i32, msg: &RouteNetlinkMessage) -> NlResult<Vec<RouteNetlinkMessage>> {
        match msg {
            RouteNetlinkMessage::GetLink(_) => {
                let indexes: Vec<u32> = self.ns_mut(fd).links.keys().copied().collect();
                Ok(indexes
                    .into_iter()
                    .map(|i| RouteNetlinkMessage::NewLink(self.render_link(fd, i)))
                    .collect())
            }
            RouteNetlinkMessage::GetAddress(f) => {
                let ns = self.ns_mut(fd);
                Ok(ns
                    .addresses
                    .iter()
                    .filter(|a| f.header.index == 0 || a.header.index == f.header.index)
                    .filter(|a| {
                        f.header.family == AddressFamily::Unspec
                            || a.header.family == f.header.family
                    })
                    .map(|a| {
                        let mut a = a.clone();
                        if let Some(l) = ns.links.get(&a.header.index) {
                            if a.header.family == AddressFamily::Inet {
                                a.attributes.push(AddressAttribute::Label(l.name.clone()));
                            }
                        }
                        RouteNetlinkMessage::NewAddress(a)
                    })
                    .collect())
            }
            RouteNetlinkMessage::GetRoute(f) => {
                let ns = self.ns_mut(fd);
                Ok(ns
                    .routes
                    .iter()
                    .filter(|r| {
                        f.header.address_family == AddressFamily::Unspec
                            || r.header.address_family == f.header.address_family
                    })
                    .filter(|r| f.header.table == 0 || route_table_of(r) == route_table_of(f))
                    .map(|r| RouteNetlinkMessage::NewRoute(r.clone()))
                    .collect())
            }
            _ => Err(err(
                libc::EOPNOTSUPP,
                "the test fake does not model this dump",
            )),
        }
    }
}

impl FakeNl {
    /// The fd of the namespace this handle talks to.
    pub fn ns(&self) -> i32 {
        self.ns
    }

    pub fn world(&self) -> &World {
        &self.world
    }
}

impl Rtnl for FakeNl {
    fn request(&mut self, msg: RouteNetlinkMessage, flags: u16) -> NlResult<()> {
        self.world.call(self.ns, CallOp::Request { flags }, &msg)?;
        let mut inner = self.world.inner.borrow_mut();
        // All or nothing, like one kernel request: a failure leaves no trace in the model.
        let backup = (inner.namespaces.clone(), inner.next_index, inner.next_mac);
        match inner.change(self.ns, &msg, flags) {
            Ok(line) => {
                let line = if line.starts_with("ns ") {
                    line
                } else {
                    let name = match &msg {
                        RouteNetlinkMessage::SetLink(m) | RouteNetlinkMessage::NewLink(m) => {
                            link_label(&backup.0, self.ns, m)
                        }
                        _ => String::new(),
                    };
                    format!("ns {}: setlink {name} {line}", self.ns)
                };
                inner.changes.push(line);
                Ok(())
            }
            Err(e) => {
                (inner.namespaces, inner.next_index, inner.next_mac) = backup;
                Err(e)
            }
        }
    }

    fn get(&mut self, msg: RouteNetlinkMessage) -> NlResult<Option<RouteNetlinkMessage>> {
        let r = self
            .world
            .call(self.ns, CallOp::Get, &msg)
            .and_then(|()| self.world.inner.borrow_mut().get(self.ns, &msg));
        // As the socket client: "no such object" is an answer.
        match r {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.errno == libc::ENODEV || e.errno == libc::ENOENT => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn dump(&mut self, msg: RouteNetlinkMessage) -> NlResult<Vec<RouteNetlinkMessage>> {
        self.world.call(self.ns, CallOp::Dump, &msg)?;
        self.world.inner.borrow_mut().dump(self.ns, &msg)
    }
}

/// The name a SETLINK acts on, as it was before the change (for the change line).
fn link_label(namespaces: &BTreeMap<i32, Ns>, fd: i32, m: &LinkMessage) -> String {
    let ns = namespaces.get(&fd);
    if m.header.index != 0 {
        if let Some(l) = ns.and_then(|ns| ns.links.get(&m.header.index)) {
            return l.name.clone();
        }
        return format!("if{}", m.header.index);
    }
    attr_name(m).unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::msg;
    use netlink_packet_route::link::MacVlanMode;

    const HOST: i32 = 3;
    const GUEST: i32 = 4;
    const CREATE: u16 = NLM_F_CREATE | NLM_F_EXCL;

    fn world() -> (World, FakeNl, FakeNl) {
        let w = World::new();
        let host = w.netns(HOST);
        let guest = w.netns(GUEST);
        (w, host, guest)
    }

    fn link(nl: &mut FakeNl, name: &str) -> LinkMessage {
        match nl.get(msg::get_link_by_name(name)).unwrap() {
            Some(RouteNetlinkMessage::NewLink(l)) => l,
            other => panic!("no link {name}: {other:?}"),
        }
    }

    fn peer(name: &str, fd: i32) -> msg::PeerSpec {
        msg::PeerSpec {
            name: name.into(),
            mtu: 1500,
            mac: Some("02:00:00:00:00:42".parse().unwrap()),
            netns_fd: fd,
        }
    }

    fn names(w: &World, fd: i32) -> Vec<String> {
        w.snapshot(fd).links.into_iter().map(|l| l.name).collect()
    }

    #[test]
    fn every_namespace_starts_with_lo_only() {
        let (w, mut host, _) = world();
        assert_eq!(names(&w, HOST), vec!["lo"]);
        let links = host.dump(msg::dump_links()).unwrap();
        assert_eq!(links.len(), 1);
        assert!(w.changes().is_empty());
    }

    #[test]
    fn bridge_is_created_up_and_a_clash_is_eexist() {
        let (w, mut host, _) = world();
        host.request(msg::new_bridge("br1", Some(1400)), CREATE)
            .unwrap();
        let br = link(&mut host, "br1");
        assert!(msg::link_is_up(&br));
        assert_eq!(msg::link_mtu(&br), Some(1400));
        assert_eq!(msg::link_kind(&br), Some(&InfoKind::Bridge));
        let e = host
            .request(msg::new_bridge("br1", None), CREATE)
            .unwrap_err();
        assert_eq!(e.errno, libc::EEXIST);
        assert_eq!(w.changes(), vec!["ns 3: newlink bridge br1 up"]);
    }

    #[test]
    fn newlink_without_create_is_enodev() {
        let (_, mut host, _) = world();
        let e = host.request(msg::new_bridge("br1", None), 0).unwrap_err();
        assert_eq!(e.errno, libc::ENODEV);
    }

    #[test]
    fn veth_peer_is_created_in_the_guest_with_its_final_name() {
        let (w, mut host, mut guest) = world();
        let br = w.add_link(HOST, "br1", Some(InfoKind::Bridge));
        host.request(
            msg::new_veth("veth1pl42", 1500, Some(br), &peer("eth1", GUEST)),
            CREATE,
        )
        .unwrap();
        let h = link(&mut host, "veth1pl42");
        assert!(msg::link_is_up(&h));
        assert_eq!(
            h.attributes.iter().find_map(|a| match a {
                LinkAttribute::Controller(m) => Some(*m),
                _ => None,
            }),
            Some(br)
        );
        let g = link(&mut guest, "eth1");
        assert!(!msg::link_is_up(&g), "the peer is created down");
        assert_eq!(
            msg::link_mac(&g),
            Some("02:00:00:00:00:42".parse().unwrap())
        );
        assert!(host.get(msg::get_link_by_name("eth1")).unwrap().is_none());
        assert_eq!(
            w.changes(),
            vec![format!(
                "ns 3: newlink veth veth1pl42 peer eth1 in ns 4 master {br} up"
            )]
        );
        // The host end is a bridge port, disabled until the guest end is up.
        assert_eq!(msg::bridge_port_state(&h), Some(BridgePortState::Disabled));
        guest.request(msg::set_link_up(g.header.index), 0).unwrap();
        let h = link(&mut host, "veth1pl42");
        assert_eq!(
            msg::bridge_port_state(&h),
            Some(BridgePortState::Forwarding)
        );
        let snap = w.snapshot(HOST);
        let port = snap.links.iter().find(|l| l.name == "veth1pl42").unwrap();
        assert_eq!(port.master.as_deref(), Some("br1"));
        assert_eq!(port.kind.as_deref(), Some("veth"));
    }

    #[test]
    fn veth_peer_up_in_the_creating_message_is_enotconn() {
        let (w, mut host, _) = world();
        let RouteNetlinkMessage::NewLink(mut m) =
            msg::new_veth("v0", 1500, None, &peer("eth1", GUEST))
        else {
            unreachable!()
        };
        for a in &mut m.attributes {
            if let LinkAttribute::LinkInfo(infos) = a {
                for i in infos {
                    if let LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))) = i {
                        p.header.flags = LinkFlags::Up;
                        p.header.change_mask = LinkFlags::Up;
                    }
                }
            }
        }
        let e = host
            .request(RouteNetlinkMessage::NewLink(m), CREATE)
            .unwrap_err();
        assert_eq!(e.errno, libc::ENOTCONN);
        assert_eq!(names(&w, HOST), vec!["lo"]);
        assert_eq!(names(&w, GUEST), vec!["lo"]);
    }

    /// As the kernel (see netlink::tests::real_newlink_into_another_namespace_checks_names_there).
    #[test]
    fn names_of_links_created_elsewhere_are_checked_there() {
        let (w, mut host, _) = world();
        w.add_link(HOST, "eth1", None);
        let dummy = |name: &str| {
            msg::new_link_in_guest(&msg::GuestLinkKind::Dummy, name, None, None, GUEST)
        };
        host.request(dummy("eth1"), CREATE).unwrap();
        assert_eq!(names(&w, GUEST), vec!["eth1", "lo"]);
        let e = host.request(dummy("eth1"), CREATE).unwrap_err();
        assert_eq!(e.errno, libc::EEXIST);
        let mut veth = peer("eth1", GUEST);
        veth.name = "eth2".into();
        let RouteNetlinkMessage::NewLink(mut m) = msg::new_veth("eth1", 1500, None, &veth) else {
            unreachable!()
        };
        m.attributes.push(LinkAttribute::NetNsFd(GUEST));
        let e = host
            .request(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE)
            .unwrap_err();
        assert_eq!(e.errno, libc::EOPNOTSUPP);
        assert_eq!(names(&w, GUEST), vec!["eth1", "lo"]);
        // A bridge re-created without NLM_F_EXCL is a change of the existing one.
        host.request(msg::new_bridge("br1", None), CREATE).unwrap();
        host.request(msg::new_bridge("br1", Some(1400)), NLM_F_CREATE)
            .unwrap();
        assert_eq!(msg::link_mtu(&link(&mut host, "br1")), Some(1400));
    }

    #[test]
    fn veth_clash_on_either_end_is_eexist_and_creates_nothing() {
        let (w, mut host, _) = world();
        w.add_link(GUEST, "eth1", Some(InfoKind::Veth));
        let e = host
            .request(
                msg::new_veth("v0", 1500, None, &peer("eth1", GUEST)),
                CREATE,
            )
            .unwrap_err();
        assert_eq!(e.errno, libc::EEXIST);
        assert_eq!(names(&w, HOST), vec!["lo"]);
        // Both ends in one namespace under one name.
        let e = host
            .request(msg::new_veth("v0", 1500, None, &peer("v0", HOST)), CREATE)
            .unwrap_err();
        assert_eq!(e.errno, libc::EEXIST);
    }

    #[test]
    fn deleting_one_veth_end_deletes_the_other_with_addresses_and_routes() {
        let (w, mut host, mut guest) = world();
        let before = (w.snapshot(HOST), w.snapshot(GUEST));
        host.request(
            msg::new_veth("v0", 1500, None, &peer("eth1", GUEST)),
            CREATE,
        )
        .unwrap();
        let g = link(&mut guest, "eth1").header.index;
        guest.request(msg::set_link_up(g), 0).unwrap();
        guest
            .request(
                msg::new_address(g, "10.0.0.2".parse().unwrap(), 24, None),
                CREATE,
            )
            .unwrap();
        guest
            .request(
                msg::new_default_route("10.0.0.1".parse().unwrap(), g),
                NLM_F_CREATE | NLM_F_REPLACE,
            )
            .unwrap();
        assert_eq!(
            w.snapshot(GUEST).routes,
            vec!["default via 10.0.0.1 dev eth1"]
        );
        let h = link(&mut host, "v0").header.index;
        host.request(msg::del_link(h), 0).unwrap();
        assert_eq!((w.snapshot(HOST), w.snapshot(GUEST)), before);
        assert_eq!(w.changes().last().unwrap(), "ns 3: dellink v0 eth1");
        let e = host.request(msg::del_link(h), 0).unwrap_err();
        assert_eq!(e.errno, libc::ENODEV);
    }

    #[test]
    fn macvlan_is_created_in_the_guest_from_a_host_parent() {
        let (w, mut host, mut guest) = world();
        let nic = w.seed_link(
            HOST,
            Seed {
                name: "eth0".into(),
                mtu: Some(9000),
                up: true,
                ..Seed::default()
            },
        );
        let kind = msg::GuestLinkKind::Macvlan {
            parent: nic,
            mode: MacVlanMode::Bridge,
        };
        host.request(
            msg::new_link_in_guest(&kind, "eth1", None, None, GUEST),
            CREATE,
        )
        .unwrap();
        let m = link(&mut guest, "eth1");
        assert_eq!(msg::link_kind(&m), Some(&InfoKind::MacVlan));
        assert_eq!(msg::link_mtu(&m), Some(9000), "inherits the parent's MTU");
        assert_eq!(msg::link_parent(&m), Some(nic));
        assert!(msg::link_mac(&m).is_some(), "a MAC is generated");
        assert_eq!(
            w.changes(),
            vec![format!("ns 3: newlink macvlan eth1 in ns 4 parent {nic}")]
        );
        // Larger than the parent: refused, like the kernel.
        let e = host
            .request(
                msg::new_link_in_guest(&kind, "eth2", Some(9001), None, GUEST),
                CREATE,
            )
            .unwrap_err();
        assert_eq!(e.errno, libc::EINVAL);
        // A missing parent.
        let bad = msg::GuestLinkKind::Macvlan {
            parent: 999,
            mode: MacVlanMode::Private,
        };
        let e = host
            .request(
                msg::new_link_in_guest(&bad, "eth2", None, None, GUEST),
                CREATE,
            )
            .unwrap_err();
        assert_eq!(e.errno, libc::ENODEV);
    }

    #[test]
    fn ipoib_and_dummy_are_created_in_the_guest() {
        let (w, mut host, mut guest) = world();
        let ib = w.add_link(HOST, "ib0", None);
        let kind = msg::GuestLinkKind::Ipoib {
            parent: ib,
            pkey: Some(0x8001),
        };
        host.request(
            msg::new_link_in_guest(&kind, "ib1", None, None, GUEST),
            CREATE,
        )
        .unwrap();
        let l = link(&mut guest, "ib1");
        assert_eq!(msg::link_kind(&l), Some(&InfoKind::Ipoib));
        assert_eq!(l.header.link_layer_type, LinkLayerType::Infiniband);
        host.request(
            msg::new_link_in_guest(&msg::GuestLinkKind::Dummy, "d0", Some(1400), None, GUEST),
            CREATE,
        )
        .unwrap();
        let d = link(&mut guest, "d0");
        assert_eq!(msg::link_mtu(&d), Some(1400));
        assert_eq!(names(&w, GUEST), vec!["d0", "ib1", "lo"]);
    }

    #[test]
    fn a_kind_the_kernel_lacks_is_eopnotsupp() {
        let (w, mut host, _) = world();
        w.lack_kind(InfoKind::Vlan);
        let nic = w.add_link(HOST, "eth0", None);
        let e = host
            .request(msg::new_vlan("eth0.10", nic, 10, None), CREATE)
            .unwrap_err();
        assert_eq!(e.errno, libc::EOPNOTSUPP);
        assert_eq!(e.ext_ack.as_deref(), Some("Unknown device type"));
        assert!(w.changes().is_empty());
    }

    #[test]
    fn vlan_child_is_created_up_in_the_host_and_dies_with_its_parent() {
        let (w, mut host, _) = world();
        let nic = w.add_link(HOST, "eth0", Some(InfoKind::Veth));
        host.request(msg::new_vlan("eth0.10", nic, 10, None), CREATE)
            .unwrap();
        let v = link(&mut host, "eth0.10");
        assert!(msg::link_is_up(&v));
        assert_eq!(msg::vlan_id(&v), Some(10));
        assert_eq!(msg::link_parent(&v), Some(nic));
        host.request(msg::del_link(nic), 0).unwrap();
        assert_eq!(names(&w, HOST), vec!["lo"]);
    }

    #[test]
    fn move_and_rename_in_one_message_drops_addresses() {
        let (w, mut host, mut guest) = world();
        let nic = w.seed_link(
            HOST,
            Seed {
                name: "enp1s0".into(),
                up: true,
                ..Seed::default()
            },
        );
        w.add_address(HOST, nic, "192.168.7.2".parse().unwrap(), 24);
        host.request(msg::move_link(nic, GUEST, "eth1", Some(1400)), 0)
            .unwrap();
        assert_eq!(names(&w, HOST), vec!["lo"]);
        assert!(w.snapshot(HOST).addresses.is_empty());
        let g = link(&mut guest, "eth1");
        assert_eq!(g.header.index, nic, "the index is kept");
        assert!(!msg::link_is_up(&g), "a moved device arrives down");
        assert_eq!(msg::link_mtu(&g), Some(1400));
        assert!(w.snapshot(GUEST).addresses.is_empty());
        assert_eq!(
            w.changes(),
            vec!["ns 3: setlink enp1s0 move to ns 4 as eth1 mtu 1400"]
        );
        // Back, under its old name: what a rollback does.
        guest
            .request(msg::move_link(nic, HOST, "enp1s0", None), 0)
            .unwrap();
        assert_eq!(names(&w, HOST), vec!["enp1s0", "lo"]);
        // A clash in the target namespace.
        w.add_link(GUEST, "eth1", Some(InfoKind::Veth));
        let e = host
            .request(msg::move_link(nic, GUEST, "eth1", None), 0)
            .unwrap_err();
        assert_eq!(e.errno, libc::EEXIST);
        assert_eq!(names(&w, HOST), vec!["enp1s0", "lo"]);
    }

    #[test]
    fn bridges_and_lo_cannot_change_namespace() {
        let (w, mut host, _) = world();
        let br = w.add_link(HOST, "br1", Some(InfoKind::Bridge));
        let e = host
            .request(msg::move_link(br, GUEST, "br1", None), 0)
            .unwrap_err();
        assert_eq!(e.errno, libc::EINVAL);
        let e = host
            .request(msg::move_link(1, GUEST, "lo", None), 0)
            .unwrap_err();
        assert_eq!(e.errno, libc::EINVAL);
    }

    #[test]
    fn rename_down_up_and_mac() {
        let (w, mut host, _) = world();
        let i = w.seed_link(
            HOST,
            Seed {
                name: "eth1".into(),
                up: true,
                ..Seed::default()
            },
        );
        host.request(msg::set_link_down(i), 0).unwrap();
        host.request(msg::rename_link(i, "nic1"), 0).unwrap();
        let mac: MacAddr = "02:00:00:00:00:07".parse().unwrap();
        host.request(msg::set_link_mac(i, &mac), 0).unwrap();
        host.request(msg::set_link_up(i), 0).unwrap();
        let l = link(&mut host, "nic1");
        assert!(msg::link_is_up(&l));
        assert_eq!(msg::link_mac(&l), Some(mac));
        assert_eq!(
            w.changes(),
            vec![
                "ns 3: setlink eth1 down",
                "ns 3: setlink eth1 rename to nic1",
                "ns 3: setlink nic1 mac 02:00:00:00:00:07",
                "ns 3: setlink nic1 up",
            ]
        );
        let e = host.request(msg::set_link_up(999), 0).unwrap_err();
        assert_eq!(e.errno, libc::ENODEV);
        w.add_link(HOST, "taken", None);
        let e = host.request(msg::rename_link(i, "taken"), 0).unwrap_err();
        assert_eq!(e.errno, libc::EEXIST);
    }

    #[test]
    fn arp_notify_is_accepted_and_recorded() {
        let (w, mut host, _) = world();
        let i = w.add_link(HOST, "eth1", None);
        host.request(msg::set_arp_notify(i), 0).unwrap();
        assert!(w.arp_notify(HOST, i));
        assert_eq!(w.changes(), vec!["ns 3: setlink eth1 arp_notify 1"]);
        // Not part of the snapshot: the link's own state did not change.
        let l = link(&mut host, "eth1");
        assert!(!msg::link_is_up(&l));
    }

    #[test]
    fn mtu_limits_are_the_kernels() {
        let (w, mut host, _) = world();
        let i = w.add_link(HOST, "eth1", Some(InfoKind::Veth));
        let set_mtu = |mtu| {
            let mut m = LinkMessage::default();
            m.header.index = i;
            m.attributes.push(LinkAttribute::Mtu(mtu));
            RouteNetlinkMessage::SetLink(m)
        };
        let e = host.request(set_mtu(70000), 0).unwrap_err();
        assert_eq!(
            e.ext_ack.as_deref(),
            Some("mtu greater than device maximum")
        );
        assert_eq!(
            host.request(set_mtu(60), 0).unwrap_err().errno,
            libc::EINVAL
        );
        host.request(set_mtu(9000), 0).unwrap();
        assert_eq!(w.snapshot(HOST).links[0].mtu, 9000);
    }

    #[test]
    fn addresses_add_duplicate_delete_and_dump() {
        let (w, _, mut guest) = world();
        let i = w.add_link(GUEST, "eth1", Some(InfoKind::Veth));
        let ip = "10.0.0.2".parse().unwrap();
        let brd = msg::v4_broadcast(&"10.0.0.2/24".parse().unwrap());
        guest
            .request(msg::new_address(i, ip, 24, brd), CREATE)
            .unwrap();
        let e = guest
            .request(msg::new_address(i, ip, 24, brd), CREATE)
            .unwrap_err();
        assert_eq!(e.errno, libc::EEXIST);
        guest
            .request(
                msg::new_address(i, "fd00::2".parse().unwrap(), 64, None),
                CREATE,
            )
            .unwrap();
        assert_eq!(
            w.snapshot(GUEST).addresses,
            vec!["eth1 10.0.0.2/24", "eth1 fd00::2/64"]
        );
        let dumped = guest.dump(msg::dump_addresses()).unwrap();
        assert_eq!(dumped.len(), 2);
        let RouteNetlinkMessage::NewAddress(a) = &dumped[0] else {
            panic!("{dumped:?}")
        };
        assert!(a
            .attributes
            .contains(&AddressAttribute::Broadcast("10.0.0.255".parse().unwrap())));
        guest.request(msg::del_address(i, ip, 24), 0).unwrap();
        let e = guest.request(msg::del_address(i, ip, 24), 0).unwrap_err();
        assert_eq!(e.errno, libc::EADDRNOTAVAIL);
        assert_eq!(w.snapshot(GUEST).addresses, vec!["eth1 fd00::2/64"]);
        let e = guest
            .request(msg::new_address(999, ip, 24, None), CREATE)
            .unwrap_err();
        assert_eq!(e.errno, libc::ENODEV);
        assert_eq!(
            w.changes(),
            vec![
                "ns 4: newaddr 10.0.0.2/24 dev eth1",
                "ns 4: newaddr fd00::2/64 dev eth1",
                "ns 4: deladdr 10.0.0.2/24 dev eth1",
            ]
        );
    }

    fn guest_with_link(up: bool) -> (World, FakeNl, u32) {
        let (w, _, guest) = world();
        let i = w.seed_link(
            GUEST,
            Seed {
                name: "eth1".into(),
                kind: Some(InfoKind::Veth),
                up,
                ..Seed::default()
            },
        );
        w.add_address(GUEST, i, "10.0.0.2".parse().unwrap(), 24);
        (w, guest, i)
    }

    #[test]
    fn gateway_outside_the_subnet_needs_the_host_route_first() {
        let (w, mut guest, i) = guest_with_link(true);
        let gw = "10.9.9.1".parse().unwrap();
        let e = guest
            .request(msg::new_default_route(gw, i), NLM_F_CREATE | NLM_F_REPLACE)
            .unwrap_err();
        assert_eq!(e.errno, libc::ENETUNREACH);
        assert_eq!(e.ext_ack.as_deref(), Some("Nexthop has invalid gateway"));
        guest.request(msg::new_host_route(gw, i), CREATE).unwrap();
        let e = guest
            .request(msg::new_host_route(gw, i), CREATE)
            .unwrap_err();
        assert_eq!(e.errno, libc::EEXIST);
        guest
            .request(msg::new_default_route(gw, i), NLM_F_CREATE | NLM_F_REPLACE)
            .unwrap();
        assert_eq!(
            w.snapshot(GUEST).routes,
            vec![
                "10.9.9.1/32 dev eth1 scope link",
                "default via 10.9.9.1 dev eth1"
            ]
        );
    }

    #[test]
    fn link_down_flushes_its_routes_and_ipv6_addresses() {
        let (w, mut guest, i) = guest_with_link(true);
        w.add_address(GUEST, i, "fd00::2".parse().unwrap(), 64);
        guest
            .request(
                msg::new_default_route("10.0.0.1".parse().unwrap(), i),
                NLM_F_CREATE | NLM_F_REPLACE,
            )
            .unwrap();
        guest.request(msg::set_link_down(i), 0).unwrap();
        let snap = w.snapshot(GUEST);
        assert!(snap.routes.is_empty(), "{snap:?}");
        assert_eq!(snap.addresses, vec!["eth1 10.0.0.2/24"]);
    }

    #[test]
    fn ipv4_routes_over_a_down_link_fail() {
        let (_, mut guest, i) = guest_with_link(false);
        let e = guest
            .request(
                msg::new_default_route("10.0.0.1".parse().unwrap(), i),
                NLM_F_CREATE | NLM_F_REPLACE,
            )
            .unwrap_err();
        assert_eq!(e.errno, libc::ENETUNREACH);
        let e = guest
            .request(msg::new_host_route("10.7.7.7".parse().unwrap(), i), CREATE)
            .unwrap_err();
        assert_eq!(e.errno, libc::ENETDOWN);
        assert_eq!(e.ext_ack.as_deref(), Some("Device for nexthop is not up"));
    }

    #[test]
    fn master_must_be_a_bridge() {
        let (w, mut host, _) = world();
        let (a, b) = w.seed_veth(HOST, "a0", HOST, "a1");
        let set_master = |m| {
            let mut l = LinkMessage::default();
            l.header.index = a;
            l.attributes.push(LinkAttribute::Controller(m));
            RouteNetlinkMessage::SetLink(l)
        };
        assert_eq!(
            host.request(set_master(b), 0).unwrap_err().errno,
            libc::EOPNOTSUPP
        );
        assert_eq!(
            host.request(set_master(999), 0).unwrap_err().errno,
            libc::EINVAL
        );
        let br = w.add_link(HOST, "br0", Some(InfoKind::Bridge));
        host.request(set_master(br), 0).unwrap();
        host.request(set_master(0), 0).unwrap();
        assert_eq!(
            w.snapshot(HOST)
                .links
                .iter()
                .find(|l| l.name == "a0")
                .unwrap()
                .master,
            None
        );
    }

    #[test]
    fn deleting_group_zero_is_refused() {
        let (_, mut host, _) = world();
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::Group(0));
        let e = host
            .request(RouteNetlinkMessage::DelLink(m), 0)
            .unwrap_err();
        assert_eq!(e.errno, libc::EPERM);
    }

    #[test]
    fn default_route_is_replaced_and_a_classless_route_added() {
        let (w, mut guest, i) = guest_with_link(true);
        let flags = NLM_F_CREATE | NLM_F_REPLACE;
        guest
            .request(
                msg::new_default_route("10.0.0.1".parse().unwrap(), i),
                flags,
            )
            .unwrap();
        guest
            .request(
                msg::new_default_route("10.0.0.254".parse().unwrap(), i),
                flags,
            )
            .unwrap();
        let r = msg::new_route(
            "172.16.0.0/12".parse().unwrap(),
            Some("10.0.0.1".parse().unwrap()),
            i,
        );
        guest.request(r.clone(), CREATE).unwrap();
        assert_eq!(guest.request(r, CREATE).unwrap_err().errno, libc::EEXIST);
        assert_eq!(
            w.snapshot(GUEST).routes,
            vec![
                "172.16.0.0/12 via 10.0.0.1 dev eth1",
                "default via 10.0.0.254 dev eth1"
            ]
        );
        let e = guest
            .request(
                msg::new_default_route("10.0.0.1".parse().unwrap(), i),
                CREATE,
            )
            .unwrap_err();
        assert_eq!(e.errno, libc::EEXIST, "EXCL without REPLACE");
    }

    #[test]
    fn dumped_default_route_is_deleted_and_readded_exactly() {
        let (w, mut guest, i) = guest_with_link(true);
        w.add_route(
            GUEST,
            msg::new_default_route("10.0.0.1".parse().unwrap(), i),
        );
        let before = w.snapshot(GUEST);
        let routes = guest.dump(msg::dump_routes(AddressFamily::Inet)).unwrap();
        let RouteNetlinkMessage::NewRoute(default) = &routes[0] else {
            panic!("{routes:?}")
        };
        assert!(msg::is_main_default(default));
        guest.request(msg::del_route(default), 0).unwrap();
        assert!(w.snapshot(GUEST).routes.is_empty());
        let e = guest.request(msg::del_route(default), 0).unwrap_err();
        assert_eq!(e.errno, libc::ESRCH);
        guest.request(msg::readd_route(default), CREATE).unwrap();
        assert_eq!(w.snapshot(GUEST), before);
        assert!(guest
            .dump(msg::dump_routes(AddressFamily::Inet6))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn ipv6_routes_get_the_default_metric() {
        let (w, mut guest, i) = guest_with_link(false);
        w.add_address(GUEST, i, "fd00::2".parse().unwrap(), 64);
        guest
            .request(
                msg::new_default_route("fd00::1".parse().unwrap(), i),
                NLM_F_CREATE | NLM_F_REPLACE,
            )
            .unwrap();
        let routes = guest.dump(msg::dump_routes(AddressFamily::Inet6)).unwrap();
        let RouteNetlinkMessage::NewRoute(r) = &routes[0] else {
            panic!()
        };
        assert!(r
            .attributes
            .contains(&RouteAttribute::Priority(V6_DEFAULT_METRIC)));
        // Deleting what we added (metric unspecified) finds it.
        guest.request(msg::del_route(r), 0).unwrap();
        assert!(w.snapshot(GUEST).routes.is_empty());
    }

    #[test]
    fn group_delete_removes_every_link_of_the_group_in_that_namespace() {
        let (w, mut host, _) = world();
        for n in ["v1", "v2"] {
            w.seed_link(
                HOST,
                Seed {
                    name: n.into(),
                    kind: Some(InfoKind::Veth),
                    group: 7,
                    ..Seed::default()
                },
            );
        }
        w.seed_link(
            GUEST,
            Seed {
                name: "v3".into(),
                kind: Some(InfoKind::Veth),
                group: 7,
                ..Seed::default()
            },
        );
        w.add_link(HOST, "other", Some(InfoKind::Veth));
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::Group(7));
        host.request(RouteNetlinkMessage::DelLink(m), 0).unwrap();
        assert_eq!(names(&w, HOST), vec!["lo", "other"]);
        assert_eq!(names(&w, GUEST), vec!["lo", "v3"]);
        assert_eq!(w.changes(), vec!["ns 3: dellink group 7: v1 v2"]);
    }

    #[test]
    fn physical_nics_and_lo_cannot_be_deleted() {
        let (w, mut host, _) = world();
        let nic = w.add_link(HOST, "eth0", None);
        assert_eq!(
            host.request(msg::del_link(nic), 0).unwrap_err().errno,
            libc::EOPNOTSUPP
        );
        assert_eq!(
            host.request(msg::del_link(1), 0).unwrap_err().errno,
            libc::EOPNOTSUPP
        );
    }

    #[test]
    fn get_by_index_and_missing_links() {
        let (w, mut host, _) = world();
        let i = w.add_link(HOST, "eth0", None);
        let l = host.get(msg::get_link_by_index(i)).unwrap().unwrap();
        let RouteNetlinkMessage::NewLink(l) = l else {
            panic!()
        };
        assert_eq!(msg::link_name(&l), Some("eth0"));
        assert!(host.get(msg::get_link_by_index(999)).unwrap().is_none());
        assert!(host.get(msg::get_link_by_name("nope")).unwrap().is_none());
        // An index of another namespace is not visible here.
        let g = w.add_link(GUEST, "g0", None);
        assert!(host.get(msg::get_link_by_index(g)).unwrap().is_none());
    }

    #[test]
    fn indexes_are_unique_across_the_world() {
        let (w, _, _) = world();
        let a = w.add_link(HOST, "a", None);
        let b = w.add_link(GUEST, "a", None);
        assert_ne!(a, b);
        assert_eq!(w.index_of(HOST, "a"), Some(a));
        assert_eq!(w.index_of(GUEST, "a"), Some(b));
    }

    #[test]
    fn every_call_is_recorded_with_its_namespace_and_flags() {
        let (w, mut host, mut guest) = world();
        host.request(msg::new_bridge("br1", None), CREATE).unwrap();
        let _ = guest.get(msg::get_link_by_name("eth1"));
        let _ = guest.dump(msg::dump_links());
        let _ = host.request(msg::new_bridge("br1", None), CREATE); // fails: still recorded
        let calls = w.calls();
        let ops: Vec<(i32, CallOp)> = calls.iter().map(|c| (c.ns, c.op)).collect();
        assert_eq!(
            ops,
            vec![
                (HOST, CallOp::Request { flags: CREATE }),
                (GUEST, CallOp::Get),
                (GUEST, CallOp::Dump),
                (HOST, CallOp::Request { flags: CREATE }),
            ]
        );
        assert_eq!(calls[0].msg, msg::new_bridge("br1", None));
        assert_eq!(w.changes().len(), 1);
        w.clear_record();
        assert!(w.calls().is_empty() && w.changes().is_empty());
    }

    #[test]
    fn the_nth_change_fails_without_being_applied() {
        let (w, mut host, mut guest) = world();
        let before = (w.snapshot(HOST), w.snapshot(GUEST));
        w.fail_nth_change(2, libc::EBUSY);
        host.request(
            msg::new_veth("v0", 1500, None, &peer("eth1", GUEST)),
            CREATE,
        )
        .unwrap();
        // Reads do not count.
        let g = link(&mut guest, "eth1").header.index;
        let e = guest.request(msg::set_link_up(g), 0).unwrap_err();
        assert_eq!(e.errno, libc::EBUSY);
        assert!(!msg::link_is_up(&link(&mut guest, "eth1")));
        // Only that one: the next succeeds.
        guest.request(msg::set_link_up(g), 0).unwrap();
        // Rollback brings every namespace back to its snapshot.
        let h = link(&mut host, "v0").header.index;
        host.request(msg::del_link(h), 0).unwrap();
        assert_eq!((w.snapshot(HOST), w.snapshot(GUEST)), before);
    }

    #[test]
    fn a_predicate_picks_which_messages_fail() {
        let (w, mut host, mut guest) = world();
        w.fail_when(|m| match m {
            RouteNetlinkMessage::NewAddress(_) => Some(libc::EACCES),
            _ => None,
        });
        host.request(
            msg::new_veth("v0", 1500, None, &peer("eth1", GUEST)),
            CREATE,
        )
        .unwrap();
        let g = link(&mut guest, "eth1").header.index;
        let e = guest
            .request(
                msg::new_address(g, "10.0.0.2".parse().unwrap(), 24, None),
                CREATE,
            )
            .unwrap_err();
        assert_eq!(e.errno, libc::EACCES);
        assert!(w.snapshot(GUEST).addresses.is_empty());
    }

    #[test]
    fn a_predicate_may_look_at_the_world() {
        let (w, mut host, _) = world();
        let seen = w.clone();
        // Fail any change once a link named "br1" exists.
        w.fail_when(move |_| seen.index_of(HOST, "br1").map(|_| libc::EBUSY));
        host.request(msg::new_bridge("br1", None), CREATE).unwrap();
        let e = host
            .request(msg::new_bridge("br2", None), CREATE)
            .unwrap_err();
        assert_eq!(e.errno, libc::EBUSY);
    }

    #[test]
    fn seeded_veth_pair_is_deleted_as_one() {
        let (w, _, mut guest) = world();
        let (h, g) = w.seed_veth(HOST, "veth1pl42", GUEST, "eth1");
        let l = link(&mut guest, "eth1");
        assert_eq!(msg::link_parent(&l), Some(h), "IFLA_LINK names the peer");
        guest.request(msg::del_link(g), 0).unwrap();
        assert_eq!(names(&w, HOST), vec!["lo"]);
    }

    #[test]
    fn a_failed_request_leaves_no_trace() {
        let (w, mut host, _) = world();
        let nic = w.add_link(HOST, "eth0", None);
        let before = w.snapshot(HOST);
        // Moves (the link leaves HOST), then fails on the MTU: nothing may be left half done.
        let e = host
            .request(msg::move_link(nic, GUEST, "eth1", Some(10)), 0)
            .unwrap_err();
        assert_eq!(e.errno, libc::EINVAL);
        assert_eq!(w.snapshot(HOST), before);
        assert_eq!(names(&w, GUEST), vec!["lo"]);
        assert!(w.changes().is_empty());
    }

    /// The scenario `netlink::tests::real_kernel_answers_as_the_fake_models` runs on the real
    /// kernel gives the same answers here.
    #[test]
    fn the_fake_answers_as_the_kernel() {
        let (_, mut host, mut guest) = world();
        crate::netlink::tests::kernel_facts(&mut host, &mut guest, HOST, GUEST);
    }

    #[test]
    fn snapshot_compares_state_not_indexes() {
        let (w, mut host, _) = world();
        let before = w.snapshot(HOST);
        host.request(msg::new_bridge("br1", None), CREATE).unwrap();
        let i = link(&mut host, "br1").header.index;
        assert_ne!(w.snapshot(HOST), before);
        host.request(msg::del_link(i), 0).unwrap();
        assert_eq!(w.snapshot(HOST), before);
    }
}
