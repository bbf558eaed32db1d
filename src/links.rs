//! Link lookups every layer shares (by name, by index, by MAC), over any [`Rtnl`].

use netlink_packet_route::link::LinkMessage;
use netlink_packet_route::RouteNetlinkMessage;

use crate::error::Error;
use crate::mac::MacAddr;
use crate::netlink::{msg, Rtnl};
use crate::plan::{LinkKind, Side, LINK_GROUP};

pub fn get_link(nl: &mut dyn Rtnl, name: &str) -> Result<Option<LinkMessage>, Error> {
    match nl.get(msg::get_link_by_name(name)) {
        Ok(Some(RouteNetlinkMessage::NewLink(m))) => Ok(Some(m)),
        Ok(_) => Ok(None),
        Err(e) => Err(Error::netlink(format!("cannot look up link {name}"), e)),
    }
}

pub fn get_link_by_index(nl: &mut dyn Rtnl, index: u32) -> Result<Option<LinkMessage>, Error> {
    match nl.get(msg::get_link_by_index(index)) {
        Ok(Some(RouteNetlinkMessage::NewLink(m))) => Ok(Some(m)),
        Ok(_) => Ok(None),
        Err(e) => Err(Error::netlink(format!("cannot look up link {index}"), e)),
    }
}

pub fn dump_links(nl: &mut dyn Rtnl) -> Result<Vec<LinkMessage>, Error> {
    Ok(nl
        .dump(msg::dump_links())
        .map_err(|e| Error::netlink("cannot list links", e))?
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(l),
            _ => None,
        })
        .collect())
}

pub fn find_by_mac(nl: &mut dyn Rtnl, mac: &MacAddr) -> Result<Option<LinkMessage>, Error> {
    Ok(dump_links(nl)?
        .into_iter()
        .find(|l| msg::link_mac(l).as_ref() == Some(mac)))
}

pub fn side_name(side: Side) -> &'static str {
    match side {
        Side::Host => "host",
        Side::Guest => "guest",
    }
}

/// The ifindex of `name`, which a previous step made or found.
pub fn link_index(nl: &mut dyn Rtnl, name: &str, side: Side) -> Result<u32, Error> {
    get_link(nl, name)?.map(|l| l.header.index).ok_or_else(|| {
        Error::NotFound(format!(
            "link {name} disappeared from the {} namespace",
            side_name(side)
        ))
    })
}

/// Whether a live link is one pipework made as `kind`: it carries pipework's link group and
/// is of that type. Anything else of the same name is someone else's.
pub fn is_ours(l: &LinkMessage, kind: LinkKind) -> bool {
    msg::link_group(l) == LINK_GROUP && msg::link_kind_name(l).as_deref() == Some(kind.info_kind())
}

/// Deletes a link by index; one that is gone already is fine.
pub fn delete_link(nl: &mut dyn Rtnl, index: u32, name: &str) -> Result<(), Error> {
    match nl.request(msg::del_link(index), 0) {
        Ok(()) => Ok(()),
        Err(e) if e.errno == libc::ENODEV => Ok(()),
        Err(e) => Err(Error::netlink(format!("cannot delete {name}"), e)),
    }
}

/// Ports of a bridge (by ifindex), by name.
pub fn bridge_ports(nl: &mut dyn Rtnl, bridge: u32) -> Result<Vec<String>, Error> {
    let ports = nl
        .dump(msg::dump_ports_of(bridge))
        .map_err(|e| Error::netlink("cannot list the bridge's ports", e))?;
    // Filtered again: a kernel (or the fake) that ignores the filter answers with every link.
    Ok(ports
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(l),
            _ => None,
        })
        .filter(|l| msg::link_master(l) == Some(bridge))
        .filter_map(|l| msg::link_name(l).map(str::to_string))
        .collect())
}

/// A link's own addresses (not the kernel's automatic IPv6 link-local ones).
pub fn link_addresses(nl: &mut dyn Rtnl, index: u32) -> Result<Vec<ipnet::IpNet>, Error> {
    let all = nl
        .dump(msg::dump_addresses())
        .map_err(|e| Error::netlink("cannot list addresses", e))?;
    Ok(all
        .into_iter()
        .filter_map(|m| match m {
            netlink_packet_route::RouteNetlinkMessage::NewAddress(a)
                if a.header.index == index
                    && a.header.scope != netlink_packet_route::address::AddressScope::Link =>
            {
                a.attributes.iter().find_map(|x| match x {
                    netlink_packet_route::address::AddressAttribute::Local(ip)
                    | netlink_packet_route::address::AddressAttribute::Address(ip) => {
                        ipnet::IpNet::new(*ip, a.header.prefix_len).ok()
                    }
                    _ => None,
                })
            }
            _ => None,
        })
        .collect())
}

/// Turns "operation not supported" for a link kind into a sentence about the kernel.
pub fn kernel_lacks(errno: i32, what: &str, module: &str) -> Option<String> {
    (errno == libc::EOPNOTSUPP || errno == libc::ENOENT).then(|| {
        format!(
            "this kernel has no {what} support (module {module} is not loaded or not built); \
             load it with `modprobe {module}`"
        )
    })
}

#[cfg(test)]
mod kernel_lacks_tests {
    use super::kernel_lacks;

    #[test]
    fn missing_kind_errnos_say_which_module() {
        for errno in [libc::EOPNOTSUPP, libc::ENOENT] {
            let m = kernel_lacks(errno, "802.1Q VLAN", "8021q").expect("a lack of support");
            assert!(
                m.contains("no 802.1Q VLAN support") && m.contains("modprobe 8021q"),
                "{m}"
            );
        }
    }

    #[test]
    fn other_errnos_are_not_a_missing_kernel_feature() {
        for errno in [
            libc::EPERM,
            libc::EEXIST,
            libc::EINVAL,
            libc::ENODEV,
            libc::EBUSY,
            0,
        ] {
            assert_eq!(kernel_lacks(errno, "dummy", "dummy"), None, "errno {errno}");
        }
    }
}
