//! The messages of multi-host labs: VXLAN devices (a bridge's port, or one end of a
//! point-to-point link inside a guest), their flood lists (all-zeros FDB entries, one per
//! remote: head-end replication) and the route lookup that finds the underlay. Pure builders
//! and parsers, unit-tested byte for byte.

use std::net::IpAddr;
use std::os::fd::RawFd;

use netlink_packet_route::link::{InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkFlags};
use netlink_packet_route::link::{LinkInfo, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::mac::MacAddr;

/// A VXLAN device to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanSpec {
    pub name: String,
    pub vni: u32,
    pub port: u16,
    /// The tunnel's source: this host's underlay address.
    pub local: IpAddr,
    /// One remote (a point-to-point link); none: the flood list says where (a bridge port).
    pub remote: Option<IpAddr>,
    /// The underlay device's index.
    pub dev: Option<u32>,
    pub mtu: u32,
    pub mac: Option<MacAddr>,
    pub group: u32,
    /// Enslaved to this bridge and up from birth (a bridge port).
    pub master: Option<u32>,
    /// Made inside this namespace (the UDP socket stays in the sender's: the underlay's).
    pub netns_fd: Option<RawFd>,
    pub learning: bool,
}

/// RTM_NEWLINK of a VXLAN device.
pub fn new_vxlan(s: &VxlanSpec) -> RouteNetlinkMessage {
    let mut m = LinkMessage::default();
    if s.master.is_some() {
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
    }
    m.attributes.push(LinkAttribute::IfName(s.name.clone()));
    m.attributes.push(LinkAttribute::Mtu(s.mtu));
    if let Some(mac) = &s.mac {
        m.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
    }
    if let Some(master) = s.master {
        m.attributes.push(LinkAttribute::Controller(master));
    }
    m.attributes.push(LinkAttribute::Group(s.group));
    if let Some(fd) = s.netns_fd {
        m.attributes.push(LinkAttribute::NetNsFd(fd));
    }
    let mut data = vec![InfoVxlan::Id(s.vni)];
    match s.local {
        IpAddr::V4(a) => data.push(InfoVxlan::Local(a)),
        IpAddr::V6(a) => data.push(InfoVxlan::Local6(a)),
    }
    match s.remote {
        Some(IpAddr::V4(a)) => data.push(InfoVxlan::Group(a)),
        Some(IpAddr::V6(a)) => data.push(InfoVxlan::Group6(a)),
        None => {}
    }
    if let Some(d) = s.dev {
        data.push(InfoVxlan::Link(d));
    }
    data.push(InfoVxlan::Port(s.port));
    data.push(InfoVxlan::Learning(s.learning));
    m.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Vxlan),
        LinkInfo::Data(InfoData::Vxlan(data)),
    ]));
    RouteNetlinkMessage::NewLink(m)
}

/// What a VXLAN device is, as the kernel shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VxlanSeen {
    pub vni: Option<u32>,
    pub port: Option<u16>,
    pub local: Option<IpAddr>,
    pub remote: Option<IpAddr>,
    pub dev: Option<u32>,
}

/// A link's VXLAN settings; none when it is no VXLAN device.
pub fn vxlan_of(m: &LinkMessage) -> Option<VxlanSeen> {
    let data = m.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Data(InfoData::Vxlan(d)) => Some(d),
            _ => None,
        }),
        _ => None,
    })?;
    let mut v = VxlanSeen::default();
    for d in data {
        match d {
            InfoVxlan::Id(i) => v.vni = Some(*i),
            InfoVxlan::Port(p) => v.port = Some(*p),
            InfoVxlan::Local(a) => v.local = Some(IpAddr::V4(*a)),
            InfoVxlan::Local6(a) => v.local = Some(IpAddr::V6(*a)),
            InfoVxlan::Group(a) if !a.is_unspecified() => v.remote = Some(IpAddr::V4(*a)),
            InfoVxlan::Group6(a) if !a.is_unspecified() => v.remote = Some(IpAddr::V6(*a)),
            InfoVxlan::Link(l) if *l != 0 => v.dev = Some(*l),
            _ => {}
        }
    }
    Some(v)
}

fn flood_message(index: u32, dst: IpAddr) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Bridge;
    m.header.ifindex = index;
    m.header.state = NeighbourState::Permanent;
    m.header.flags = NeighbourFlags::Own;
    m.attributes
        .push(NeighbourAttribute::LinkLayerAddress(vec![0; 6]));
    m.attributes
        .push(NeighbourAttribute::Destination(match dst {
            IpAddr::V4(a) => NeighbourAddress::Inet(a),
            IpAddr::V6(a) => NeighbourAddress::Inet6(a),
        }));
    m
}

/// `bridge fdb append 00:00:00:00:00:00 dev VX dst DST` (send with NLM_F_CREATE|NLM_F_APPEND),
/// or its `del`.
pub fn fdb_flood(index: u32, dst: IpAddr, add: bool) -> RouteNetlinkMessage {
    let m = flood_message(index, dst);
    if add {
        RouteNetlinkMessage::NewNeighbour(m)
    } else {
        RouteNetlinkMessage::DelNeighbour(m)
    }
}

/// RTM_GETNEIGH of the bridge family: every FDB entry.
pub fn dump_fdb() -> RouteNetlinkMessage {
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Bridge;
    RouteNetlinkMessage::GetNeighbour(m)
}

/// The flood list (all-zeros entries' destinations) of device `index`, sorted.
pub fn flood_entries(msgs: &[RouteNetlinkMessage], index: u32) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = msgs
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewNeighbour(n) if n.header.ifindex == index => Some(n),
            _ => None,
        })
        .filter(|n| {
            n.attributes
                .iter()
                .any(|a| matches!(a, NeighbourAttribute::LinkLayerAddress(l) if l.iter().all(|b| *b == 0)))
        })
        .filter_map(|n| {
            n.attributes.iter().find_map(|a| match a {
                NeighbourAttribute::Destination(d) => neighbour_ip(d),
                _ => None,
            })
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// An FDB entry's NDA_DST: the bridge family's answers carry it as bare bytes.
fn neighbour_ip(d: &NeighbourAddress) -> Option<IpAddr> {
    match d {
        NeighbourAddress::Inet(a) => Some(IpAddr::V4(*a)),
        NeighbourAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        NeighbourAddress::Other(b) => match b.len() {
            4 => Some(IpAddr::from(<[u8; 4]>::try_from(&b[..]).ok()?)),
            16 => Some(IpAddr::from(<[u8; 16]>::try_from(&b[..]).ok()?)),
            _ => None,
        },
        _ => None,
    }
}

/// `ip route get DST`: the kernel's choice of route (its device and source address).
pub fn get_route_to(dst: IpAddr) -> RouteNetlinkMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = crate::netlink::msg::family_of(&dst);
    m.header.destination_prefix_length = if dst.is_ipv4() { 32 } else { 128 };
    m.attributes
        .push(RouteAttribute::Destination(RouteAddress::from(dst)));
    RouteNetlinkMessage::GetRoute(m)
}

/// A route's preferred source address.
pub fn route_prefsrc(m: &RouteMessage) -> Option<IpAddr> {
    m.attributes.iter().find_map(|a| match a {
        RouteAttribute::PrefSource(RouteAddress::Inet(a)) => Some(IpAddr::V4(*a)),
        RouteAttribute::PrefSource(RouteAddress::Inet6(a)) => Some(IpAddr::V6(*a)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::msg::tests::{bytes, nlas};

    const IFLA_IFNAME: u16 = 3;
    const IFLA_MTU: u16 = 4;
    const IFLA_MASTER: u16 = 10;
    const IFLA_LINKINFO: u16 = 18;
    const IFLA_NET_NS_FD: u16 = 28;
    const IFLA_INFO_KIND: u16 = 1;
    const IFLA_INFO_DATA: u16 = 2;
    const IFLA_VXLAN_ID: u16 = 1;
    const IFLA_VXLAN_GROUP: u16 = 2;
    const IFLA_VXLAN_LINK: u16 = 3;
    const IFLA_VXLAN_LOCAL: u16 = 4;
    const IFLA_VXLAN_LEARNING: u16 = 7;
    const IFLA_VXLAN_PORT: u16 = 15;
    const IFLA_VXLAN_GROUP6: u16 = 16;
    const IFLA_VXLAN_LOCAL6: u16 = 17;

    fn attr(list: &[(u16, Vec<u8>)], k: u16) -> Option<Vec<u8>> {
        list.iter().find(|(t, _)| *t == k).map(|(_, v)| v.clone())
    }

    fn spec() -> VxlanSpec {
        VxlanSpec {
            name: "pwvx42".into(),
            vni: 42,
            port: 4789,
            local: "192.0.2.10".parse().unwrap(),
            remote: None,
            dev: Some(7),
            mtu: 1450,
            mac: None,
            group: 0x7077_0002,
            master: Some(9),
            netns_fd: None,
            learning: true,
        }
    }

    #[test]
    fn a_bridge_port_vxlan_in_bytes() {
        let b = bytes(new_vxlan(&spec()));
        // nlmsghdr (16) + ifinfomsg (16); IFF_UP in flags and change mask.
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), 16); // RTM_NEWLINK
        assert_eq!(&b[24..28], &1u32.to_ne_bytes());
        assert_eq!(&b[28..32], &1u32.to_ne_bytes());
        let top = nlas(&b[32..]);
        assert_eq!(attr(&top, IFLA_IFNAME).unwrap(), b"pwvx42\0");
        assert_eq!(attr(&top, IFLA_MTU).unwrap(), 1450u32.to_ne_bytes());
        assert_eq!(attr(&top, IFLA_MASTER).unwrap(), 9u32.to_ne_bytes());
        let info = nlas(&attr(&top, IFLA_LINKINFO).unwrap());
        assert_eq!(attr(&info, IFLA_INFO_KIND).unwrap(), b"vxlan\0");
        let data = nlas(&attr(&info, IFLA_INFO_DATA).unwrap());
        assert_eq!(attr(&data, IFLA_VXLAN_ID).unwrap(), 42u32.to_ne_bytes());
        assert_eq!(attr(&data, IFLA_VXLAN_LOCAL).unwrap(), [192, 0, 2, 10]);
        assert_eq!(attr(&data, IFLA_VXLAN_LINK).unwrap(), 7u32.to_ne_bytes());
        // The port is big-endian on the wire.
        assert_eq!(attr(&data, IFLA_VXLAN_PORT).unwrap(), [0x12, 0xb5]);
        assert_eq!(attr(&data, IFLA_VXLAN_LEARNING).unwrap(), [1]);
        assert!(attr(&data, IFLA_VXLAN_GROUP).is_none());
    }

    #[test]
    fn a_point_to_point_vxlan_is_made_in_the_guest_with_its_remote() {
        let mut s = spec();
        s.master = None;
        s.netns_fd = Some(5);
        s.local = "2001:db8::1".parse().unwrap();
        s.remote = Some("2001:db8::2".parse().unwrap());
        s.learning = false;
        let b = bytes(new_vxlan(&s));
        // Down at birth: addresses go on first.
        assert_eq!(&b[24..28], &0u32.to_ne_bytes());
        let top = nlas(&b[32..]);
        assert_eq!(attr(&top, IFLA_NET_NS_FD).unwrap(), 5i32.to_ne_bytes());
        assert!(attr(&top, IFLA_MASTER).is_none());
        let info = nlas(&attr(&top, IFLA_LINKINFO).unwrap());
        let data = nlas(&attr(&info, IFLA_INFO_DATA).unwrap());
        let mut v6 = [0u8; 16];
        v6[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        v6[15] = 2;
        assert_eq!(attr(&data, IFLA_VXLAN_GROUP6).unwrap(), v6);
        v6[15] = 1;
        assert_eq!(attr(&data, IFLA_VXLAN_LOCAL6).unwrap(), v6);
        assert_eq!(attr(&data, IFLA_VXLAN_LEARNING).unwrap(), [0]);
    }

    #[test]
    fn flood_entries_in_bytes_and_read_back() {
        let b = bytes(fdb_flood(12, "192.0.2.20".parse().unwrap(), true));
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), 28); // RTM_NEWNEIGH
                                                          // ndmsg: family AF_BRIDGE (7), ifindex 12, state NUD_PERMANENT, flags NTF_SELF.
        assert_eq!(b[16], 7);
        assert_eq!(&b[20..24], &12i32.to_ne_bytes());
        assert_eq!(&b[24..26], &0x80u16.to_ne_bytes());
        assert_eq!(b[26], 0x02);
        let a = nlas(&b[28..]);
        assert_eq!(attr(&a, 2).unwrap(), [0; 6]); // NDA_LLADDR
        assert_eq!(attr(&a, 1).unwrap(), [192, 0, 2, 20]); // NDA_DST
        let d = bytes(fdb_flood(12, "192.0.2.20".parse().unwrap(), false));
        assert_eq!(u16::from_ne_bytes([d[4], d[5]]), 29); // RTM_DELNEIGH

        // The bridge family's answers: NDA_DST as bare bytes; a learned MAC is no flood entry.
        let mut seen = flood_message(12, "192.0.2.30".parse().unwrap());
        seen.attributes[1] =
            NeighbourAttribute::Destination(NeighbourAddress::Other(vec![192, 0, 2, 30]));
        let mut learned = flood_message(12, "192.0.2.40".parse().unwrap());
        learned.attributes[0] = NeighbourAttribute::LinkLayerAddress(vec![2, 0, 0, 0, 0, 1]);
        let other_dev = flood_message(13, "192.0.2.50".parse().unwrap());
        let msgs = [
            RouteNetlinkMessage::NewNeighbour(seen),
            RouteNetlinkMessage::NewNeighbour(learned),
            RouteNetlinkMessage::NewNeighbour(other_dev),
            RouteNetlinkMessage::NewNeighbour(flood_message(12, "192.0.2.20".parse().unwrap())),
        ];
        let got: Vec<String> = flood_entries(&msgs, 12)
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(got, ["192.0.2.20", "192.0.2.30"]);
    }

    #[test]
    fn a_route_lookup_in_bytes() {
        let b = bytes(get_route_to("2001:db8::9".parse().unwrap()));
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), 26); // RTM_GETROUTE
        assert_eq!(b[16], 10); // AF_INET6
        assert_eq!(b[17], 128); // rtm_dst_len
        let a = nlas(&b[28..]);
        assert_eq!(attr(&a, 1).unwrap().len(), 16); // RTA_DST
    }

    #[test]
    fn vxlan_settings_are_read_back_from_a_link() {
        let RouteNetlinkMessage::NewLink(mut m) = new_vxlan(&VxlanSpec {
            remote: Some("192.0.2.20".parse().unwrap()),
            ..spec()
        }) else {
            unreachable!()
        };
        let v = vxlan_of(&m).unwrap();
        assert_eq!(v.vni, Some(42));
        assert_eq!(v.port, Some(4789));
        assert_eq!(v.local, Some("192.0.2.10".parse().unwrap()));
        assert_eq!(v.remote, Some("192.0.2.20".parse().unwrap()));
        assert_eq!(v.dev, Some(7));
        m.attributes
            .retain(|a| !matches!(a, LinkAttribute::LinkInfo(_)));
        assert_eq!(vxlan_of(&m), None);
    }
}
