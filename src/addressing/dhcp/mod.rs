//! DHCP addressing: the built-in client (DHCPv4, DHCPv6, SLAAC wait), the original's external
//! clients run with a script of ours, the supervisor that keeps a lease renewed, and the
//! guest's resolv.conf. The async DHCP library stays confined here: plain attaches never start
//! a runtime.

pub mod builtin;
pub mod external;
pub mod supervisor;
pub mod v4;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::guest::{Engine, Guest};
use crate::guestfs::GuestFile;
use crate::mac::MacAddr;

/// What a DHCP exchange (or SLAAC) gave the interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub family: u8,
    pub address: IpNet,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broadcast: Option<Ipv4Addr>,
    pub gateway: Option<IpAddr>,
    /// Classless static routes (option 121): destination and router.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<(IpNet, IpAddr)>,
    pub dns: Vec<IpAddr>,
    pub server: Option<IpAddr>,
    pub lease_time: u32,
    pub t1: u32,
    pub t2: u32,
}

impl Lease {
    /// A lease known only by what is on the interface (SLAAC, or an external client's work).
    pub fn observed(address: IpNet, gateway: Option<IpAddr>) -> Lease {
        Lease {
            family: if address.addr().is_ipv4() { 4 } else { 6 },
            address,
            broadcast: None,
            gateway,
            routes: Vec::new(),
            dns: Vec::new(),
            server: None,
            lease_time: 0,
            t1: 0,
            t2: 0,
        }
    }
}

/// What the interface's DHCP client needs to know, for any client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientParams {
    pub ifname: String,
    pub index: u32,
    pub mac: Option<MacAddr>,
    pub hostname: Option<String>,
    pub v6: bool,
    pub timeout: Duration,
}

/// An address of an interface, as the kernel reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfAddr {
    pub net: IpNet,
    pub scope: netlink_packet_route::address::AddressScope,
    /// Still in duplicate address detection (IPv6): not usable yet.
    pub tentative: bool,
}

/// The addresses of interface `index` (one RTM_GETADDR dump).
pub fn if_addresses(nl: &mut dyn crate::netlink::Rtnl, index: u32) -> Result<Vec<IfAddr>, Error> {
    use netlink_packet_route::address::{AddressAttribute, AddressFlags};
    use netlink_packet_route::RouteNetlinkMessage;
    let all = nl
        .dump(crate::netlink::msg::dump_addresses())
        .map_err(|e| Error::netlink("cannot list addresses", e))?;
    Ok(all
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewAddress(a) if a.header.index == index => {
                let ip = a.attributes.iter().find_map(|x| match x {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                })?;
                let tentative = a.attributes.iter().any(
                    |x| matches!(x, AddressAttribute::Flags(f) if f.contains(AddressFlags::Tentative)),
                );
                Some(IfAddr {
                    net: IpNet::new(ip, a.header.prefix_len).ok()?,
                    scope: a.header.scope,
                    tentative,
                })
            }
            _ => None,
        })
        .collect())
}

pub use crate::store::runtime_dir;

/// Files of one DHCP client: `<runtime>/dhcp/<netns inode>-<ifname>.{pid,json,log,leases}`.
pub fn client_file(guest: &Guest, ifname: &str, ext: &str) -> PathBuf {
    runtime_dir()
        .join("dhcp")
        .join(format!("{}-{ifname}.{ext}", guest.netns.inode))
}

/// The hostname option: the guest as named on the command line, as the original sends it,
/// when that is a valid hostname; else the container's or namespace's name.
pub fn hostname_for(guest: &Guest) -> Option<String> {
    let valid = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            && !s.starts_with('-')
    };
    let spec = guest
        .spec
        .split_once(':')
        .filter(|(p, _)| matches!(*p, "docker" | "netns" | "pid"))
        .map(|(_, r)| r)
        .unwrap_or(&guest.spec);
    if valid(spec) && !spec.bytes().all(|b| b.is_ascii_digit()) {
        return Some(spec.to_string());
    }
    guest.name.as_deref().filter(|n| valid(n)).map(String::from)
}

/// Where the guest's resolv.conf is: the container's own `/etc/resolv.conf` resolved inside its
/// root (`/proc/PID/root`), or `/etc/netns/NAME/resolv.conf` for a named namespace (what `ip
/// netns exec` shows processes there). Refused when that file is this host's own (a guest
/// sharing the host's mount namespace or its /etc), or is not a regular file.
pub fn resolv_target(guest: &Guest) -> Result<GuestFile, Error> {
    let target = match (guest.engine, guest.pid, guest.name.as_deref()) {
        (Engine::Netns, _, Some(name)) => GuestFile::of_named_netns(name, "resolv.conf"),
        (_, Some(pid), _) => GuestFile::of_process(pid, "etc/resolv.conf")?,
        _ => {
            return Err(Error::Invalid(format!(
                "--dns-resolv: cannot tell where guest {}'s resolv.conf is (give a container, \
                 a PID or a named netns)",
                guest.spec
            )))
        }
    };
    if target.check(Path::new("/etc/resolv.conf"))? {
        return Err(Error::Guest(format!(
            "--dns-resolv: guest {} shares this host's /etc (its resolv.conf is the host's own \
             file), which pipework never writes",
            guest.spec
        )));
    }
    Ok(target)
}

/// The resolv.conf text for a lease's DNS servers.
pub fn resolv_text(dns: &[IpAddr]) -> String {
    let mut s = String::from("# written by pipework from a DHCP lease\n");
    for d in dns {
        s.push_str(&format!("nameserver {d}\n"));
    }
    s
}

/// Writes the guest's resolv.conf (in place, inside the guest's root only).
pub fn write_resolv(target: &GuestFile, dns: &[IpAddr]) -> Result<(), Error> {
    target.write(resolv_text(dns).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_text_lists_servers() {
        let t = resolv_text(&["10.0.0.53".parse().unwrap(), "fd00::53".parse().unwrap()]);
        assert!(t.contains("nameserver 10.0.0.53\n"));
        assert!(t.contains("nameserver fd00::53\n"));
    }

    #[test]
    fn lease_round_trips_as_json() {
        let l = Lease {
            family: 4,
            address: "10.0.0.7/24".parse().unwrap(),
            broadcast: Some("10.0.0.255".parse().unwrap()),
            gateway: Some("10.0.0.1".parse().unwrap()),
            routes: vec![("10.9.0.0/16".parse().unwrap(), "10.0.0.2".parse().unwrap())],
            dns: vec!["10.0.0.53".parse().unwrap()],
            server: Some("10.0.0.1".parse().unwrap()),
            lease_time: 120,
            t1: 60,
            t2: 105,
        };
        let s = serde_json::to_string(&l).unwrap();
        assert_eq!(serde_json::from_str::<Lease>(&s).unwrap(), l);
    }
}
