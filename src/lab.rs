//! The typed request of a whole lab (what the topology front end builds from its file and the
//! engine converges): guests, bridges, attachments (the CLI's own requests), point-to-point
//! links, extra routes. Plain data, serialisable: the lab's state on disk keeps the last
//! applied request, which is what `destroy` and the rollback of a removal work from.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::guest::GuestSpec;
use crate::mac::MacAddr;
use crate::request::AttachRequest;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabRequest {
    /// `[a-z0-9-]`, at most 12 bytes: tags everything the lab makes.
    pub lab: String,
    pub guests: BTreeMap<String, LabGuest>,
    pub bridges: BTreeMap<String, LabBridge>,
    pub attach: Vec<LabAttach>,
    pub links: Vec<LabLink>,
    pub routes: Vec<LabRoute>,
    /// The lab's machines by name and underlay address (empty: a one-host lab).
    #[serde(default)]
    pub hosts: BTreeMap<String, IpAddr>,
    /// Set on one host's share of a multi-host lab (`engine::lab::stretch`): the host it is,
    /// its bridges' VXLAN ports and its ends of cross-host links.
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub stretch: Vec<StretchedBridge>,
    #[serde(default)]
    pub cross: Vec<CrossEnd>,
    /// What the share's making noticed (an explicit MTU that cannot fit the underlay).
    #[serde(skip)]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabGuest {
    pub spec: GuestSpec,
    /// The host (a key of `hosts`) it runs on; none: every host has its own.
    #[serde(default)]
    pub host: Option<String>,
    /// A named namespace (`/run/netns/NAME`): made by the lab when missing, and then removed
    /// by `destroy`.
    pub netns: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabBridge {
    pub ovs: bool,
    pub datapath: Option<String>,
    pub mtu: Option<u32>,
    /// Must exist: joined, never changed or deleted.
    pub external: bool,
    /// Its VXLAN network identifier when its members span hosts (none: derived from the lab
    /// and bridge names).
    #[serde(default)]
    pub vni: Option<u32>,
    /// The VXLAN UDP port (none: 4789).
    #[serde(default)]
    pub port: Option<u16>,
}

/// VXLAN network identifiers are 24 bits.
pub const MAX_VNI: u32 = 0xff_ffff;

/// The IANA VXLAN port.
pub const VXLAN_PORT: u16 = 4789;

/// A bridge of this host's share whose members span hosts: its VXLAN port floods to every
/// other host with members (head-end replication), learning on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StretchedBridge {
    pub bridge: String,
    /// The VXLAN device's name (`pwvx` + VNI).
    pub name: String,
    pub vni: u32,
    pub port: u16,
    /// This host's underlay address (the tunnel's source).
    pub local: IpAddr,
    /// The other hosts with members, sorted: one all-zeros FDB entry each.
    pub remotes: Vec<IpAddr>,
    /// The underlay device (the route to the peers goes out of it).
    pub dev: Option<String>,
    /// The VXLAN device's MTU (the underlay's minus the encapsulation).
    pub mtu: u32,
}

/// This host's end of a link whose other end is on another host: a VXLAN device with one
/// remote, made inside the guest under the end's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrossEnd {
    /// The link's name (`r1:eth1~r9:eth1`).
    pub link: String,
    pub end: LinkEnd,
    /// The other end's host.
    pub peer_host: String,
    pub vni: u32,
    pub port: u16,
    pub local: IpAddr,
    pub remote: IpAddr,
    pub dev: Option<String>,
    pub mtu: u32,
    pub rate: Option<String>,
    pub netem: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabAttach {
    /// The guest's key in `guests`.
    pub guest: String,
    /// The file's line, for messages.
    pub line: String,
    /// `guest` is the key's spec; `guest_ifname` and `mac` are always set.
    pub request: AttachRequest,
}

impl LabAttach {
    pub fn ifname(&self) -> &str {
        self.request.guest_ifname.as_deref().unwrap_or("eth1")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkEnd {
    pub guest: String,
    pub ifname: String,
    pub mac: MacAddr,
    pub addresses: Vec<IpNet>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabLink {
    pub ends: [LinkEnd; 2],
    pub mtu: Option<u32>,
    /// tc's rate syntax (`10mbit`): a tbf (or netem's rate) on both ends.
    pub rate: Option<String>,
    /// netem's arguments (`delay 20ms loss 0.1%`) on both ends.
    pub netem: Option<String>,
}

impl LabLink {
    /// `r1:eth1~r2:eth1`: how plans and errors name it.
    pub fn name(&self) -> String {
        let [a, b] = &self.ends;
        format!("{}:{}~{}:{}", a.guest, a.ifname, b.guest, b.ifname)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabRoute {
    pub guest: String,
    pub dst: IpNet,
    pub via: Option<IpAddr>,
    pub dev: Option<String>,
    pub metric: Option<u32>,
}

impl fmt::Display for LabRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.dst.trunc())?;
        if let Some(v) = self.via {
            write!(f, " via {v}")?;
        }
        if let Some(d) = &self.dev {
            write!(f, " dev {d}")?;
        }
        if let Some(m) = self.metric {
            write!(f, " metric {m}")?;
        }
        Ok(())
    }
}

impl LabRoute {
    /// `DST via GW [dev IF] [metric N]` (or `DST dev IF …`), ip route's order.
    pub fn parse(guest: &str, s: &str) -> Result<LabRoute, crate::error::Error> {
        let bad =
            |why: String| crate::error::Error::Invalid(format!("route '{s}' of {guest}: {why}"));
        let mut w = s.split_whitespace();
        let dst = w.next().ok_or_else(|| bad("empty".into()))?;
        let dst: IpNet = if dst == "default" {
            "0.0.0.0/0".parse().expect("a prefix")
        } else {
            dst.parse()
                .or_else(|_| dst.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| bad(format!("'{dst}' is not a destination (CIDR or default)")))?
        };
        let mut r = LabRoute {
            guest: guest.to_string(),
            dst: dst.trunc(),
            via: None,
            dev: None,
            metric: None,
        };
        while let Some(k) = w.next() {
            let v = w
                .next()
                .ok_or_else(|| bad(format!("'{k}' needs a value")))?;
            match k {
                "via" if r.via.is_none() => {
                    let ip: IpAddr = v
                        .parse()
                        .map_err(|_| bad(format!("gateway '{v}' is not an IP address")))?;
                    if ip.is_ipv4() != dst.addr().is_ipv4() {
                        // "default via fe80::1": the family follows the gateway.
                        if s.starts_with("default") && ip.is_ipv6() {
                            r.dst = "::/0".parse().expect("a prefix");
                        } else {
                            return Err(bad("the gateway and destination families differ".into()));
                        }
                    }
                    r.via = Some(ip);
                }
                "dev" if r.dev.is_none() => {
                    crate::naming::validate_ifname(v, "route dev")
                        .map_err(|e| bad(e.to_string()))?;
                    r.dev = Some(v.to_string());
                }
                "metric" if r.metric.is_none() => {
                    r.metric = Some(
                        v.parse()
                            .map_err(|_| bad(format!("metric '{v}' is not a number")))?,
                    );
                }
                _ => {
                    return Err(bad(format!(
                        "unknown or repeated word '{k}' (use: DST via GW [dev IF] [metric N])"
                    )))
                }
            }
        }
        if r.via.is_none() && r.dev.is_none() {
            return Err(bad(
                "give a gateway (via GW) or an interface (dev IF)".into()
            ));
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_in_ip_route_order() {
        let r = LabRoute::parse("r1", "10.1.0.0/16 via 10.9.0.2").unwrap();
        assert_eq!(r.to_string(), "10.1.0.0/16 via 10.9.0.2");
        let r = LabRoute::parse("r1", "10.1.2.3/16 via 10.9.0.2 dev eth1 metric 5").unwrap();
        assert_eq!(r.to_string(), "10.1.0.0/16 via 10.9.0.2 dev eth1 metric 5");
        let r = LabRoute::parse("r1", "default via fe80::1 dev eth1").unwrap();
        assert_eq!(r.dst.to_string(), "::/0");
        let r = LabRoute::parse("r1", "192.0.2.7 dev eth1").unwrap();
        assert_eq!(r.dst.to_string(), "192.0.2.7/32");
    }

    #[test]
    fn bad_routes_say_why() {
        for (s, want) in [
            ("", "empty"),
            ("nope via 1.2.3.4", "not a destination"),
            ("10.0.0.0/8 via x", "not an IP address"),
            ("10.0.0.0/8 via ::1", "families differ"),
            ("10.0.0.0/8", "give a gateway"),
            (
                "10.0.0.0/8 via 1.2.3.4 table 5",
                "unknown or repeated word 'table'",
            ),
            ("10.0.0.0/8 via 1.2.3.4 via 1.2.3.5", "repeated"),
            ("10.0.0.0/8 metric", "needs a value"),
            ("10.0.0.0/8 dev eth1 metric -1", "not a number"),
        ] {
            let e = LabRoute::parse("r1", s).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("r1"), "{s:?}: {e}");
        }
    }
}
