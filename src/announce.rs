//! Announcing a new address to the neighbours without a raw socket or a sleep: the kernel's
//! own gratuitous ARP (arp_notify) and unsolicited neighbour advertisement (ndisc_notify),
//! triggered by the link coming up and again by re-setting the interface's MAC.

use std::io::Write;

use crate::error::Error;
use crate::mac::MacAddr;
use crate::netlink::{msg, Rtnl};
use crate::ns::NetNs;

/// arp_notify over netlink (IFLA_AF_SPEC). Separate from, and before, the message that brings
/// the link up.
pub fn enable_arp_notify(nl: &mut dyn Rtnl, index: u32, ifname: &str) -> Result<(), Error> {
    nl.request(msg::set_arp_notify(index), 0)
        .map_err(|e| Error::netlink(format!("cannot set arp_notify on {ifname}"), e))
}

/// ndisc_notify has no netlink knob: write the sysctl from inside the guest namespace
/// (/proc/sys/net resolves against the calling thread's namespace).
pub fn enable_ndisc_notify(ns: &NetNs, home: &NetNs, ifname: &str) -> Result<(), Error> {
    write_ipv6_conf(ns, home, ifname, "ndisc_notify", "1")
}

/// Writes net.ipv6.conf.IF.KEY in the guest (IPv6 devconf has no netlink setter).
pub fn write_ipv6_conf(
    ns: &NetNs,
    home: &NetNs,
    ifname: &str,
    key: &str,
    value: &str,
) -> Result<(), Error> {
    let path = ipv6_conf_path(ifname, key)?;
    ns.run_in(home, || {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(value.as_bytes()))
    })?
    .map_err(|e| {
        Error::io(
            format!("cannot set {path} to {value} in the guest (is IPv6 disabled there?)"),
            e,
        )
    })
}

/// Reads net.ipv6.conf.IF.KEY in the guest; None when the interface has no IPv6 devconf
/// (gone, or IPv6 compiled out).
pub fn read_ipv6_conf(
    ns: &NetNs,
    home: &NetNs,
    ifname: &str,
    key: &str,
) -> Result<Option<String>, Error> {
    let path = ipv6_conf_path(ifname, key)?;
    ns.run_in(home, || {
        std::fs::read_to_string(&path)
            .ok()
            .map(|s| s.trim().to_string())
    })
}

/// /proc/sys/net/ipv6/conf/IF/KEY, for names that cannot leave that directory (the kernel
/// forbids '/' and "."/".." in interface names; checked again here).
fn ipv6_conf_path(ifname: &str, key: &str) -> Result<String, Error> {
    let ok = |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains('/');
    if !ok(ifname) || !ok(key) {
        return Err(Error::Invalid(format!(
            "bad interface name or setting {ifname:?}/{key:?}"
        )));
    }
    Ok(format!("/proc/sys/net/ipv6/conf/{ifname}/{key}"))
}

/// Re-sets the MAC the interface already has: NETDEV_CHANGEADDR makes the kernel send a
/// gratuitous ARP for each IPv4 address (arp_notify) and an unsolicited NA (ndisc_notify), now
/// that the bridge port is forwarding.
pub fn announce(nl: &mut dyn Rtnl, index: u32, ifname: &str, mac: &MacAddr) -> Result<(), Error> {
    nl.request(msg::set_link_mac(index, mac), 0)
        .map_err(|e| Error::netlink(format!("cannot announce the addresses of {ifname}"), e))
}
