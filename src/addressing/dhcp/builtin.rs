//! The built-in DHCP client: DHCPv4 is our own ([`super::v4`]), DHCPv6 is mozim (the DHCP
//! library of nispor and netavark). Both run on a current-thread tokio runtime that lives only
//! on a thread (or process) that has entered the guest's namespace — mozim's sockets open
//! lazily, so that thread must stay inside. Neither configures the interface; `apply` does,
//! over netlink.

use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use mozim::{DhcpV6Client, DhcpV6Config, DhcpV6Lease, DhcpV6Mode, DhcpV6State};
use netlink_packet_route::address::AddressScope;

use super::{if_addresses, v4, ClientParams, Lease};
use crate::error::Error;
use crate::netlink::Netlink;
use crate::ns::NetNs;

/// A running client of either family, with the last lease it obtained (what `release`
/// gives back).
pub enum Client {
    /// Ours keeps its lease itself.
    V4(Box<v4::Client>),
    V6(Box<DhcpV6Client>, Option<Box<DhcpV6Lease>>),
}

/// A state change worth acting on.
pub enum Event {
    /// A lease was obtained or renewed (possibly with new contents).
    Bound(Lease),
    /// Renewing, rebinding, …: nothing to apply.
    Progress(String),
}

pub fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| Error::io("cannot start the DHCP client's runtime", e))
}

/// The DHCP timeout in whole seconds, at least 1 (as mozim is configured: `--dhcp-timeout 0`
/// still gets one exchange a chance).
fn timeout_secs(p: &ClientParams) -> u32 {
    (p.timeout.as_secs_f64().ceil() as u32).max(1)
}

fn timeout_err(p: &ClientParams) -> Error {
    Error::Timeout(format!(
        "no DHCP{} server answered on {} within {} s (is one serving this network?)",
        if p.v6 { "v6" } else { "" },
        p.ifname,
        timeout_secs(p)
    ))
}

fn dhcp_err(p: &ClientParams, e: mozim::DhcpError) -> Error {
    if matches!(e.kind(), mozim::ErrorKind::Timeout) {
        return timeout_err(p);
    }
    Error::Guest(format!("DHCP on {}: {e}", p.ifname))
}

/// Sets up the client for the interface (call inside the guest namespace).
pub async fn start(p: &ClientParams, nl: &mut Netlink) -> Result<Client, Error> {
    if !p.v6 {
        return Ok(Client::V4(Box::new(v4::Client::start(p)?)));
    }
    let ll = link_local(nl, p)?;
    let mut c = DhcpV6Config::new(&p.ifname, DhcpV6Mode::NonTemporaryAddresses);
    c.set_iface_index(p.index).set_link_local_ip(ll);
    if let Some(mac) = &p.mac {
        c.set_duid_by_iface_mac(&mac.0);
        // RFC 8415: the IAID must be stable for the interface; derive it from the MAC.
        c.set_iaid(u32::from_be_bytes([mac.0[2], mac.0[3], mac.0[4], mac.0[5]]));
    }
    c.timeout_sec = timeout_secs(p);
    let cli = DhcpV6Client::init(c, None)
        .await
        .map_err(|e| dhcp_err(p, e))?;
    Ok(Client::V6(Box::new(cli), None))
}

/// Runs the client until the next state change.
pub async fn next(c: &mut Client, p: &ClientParams) -> Result<Event, Error> {
    match c {
        Client::V4(cli) => match cli.next().await? {
            v4::Event::Bound(l) => Ok(Event::Bound(l)),
            v4::Event::Renewing => Ok(Event::Progress("renewing".into())),
            v4::Event::Rebinding => Ok(Event::Progress("rebinding".into())),
            v4::Event::Restarting(why) => Ok(Event::Progress(why)),
            v4::Event::Lost(why) => Err(Error::Guest(format!(
                "DHCP lease on {} lost: {why}",
                p.ifname
            ))),
        },
        Client::V6(cli, last) => match cli.run().await.map_err(|e| dhcp_err(p, e))? {
            DhcpV6State::Done(l) => {
                let lease = lease_v6(&l);
                *last = Some(l);
                Ok(Event::Bound(lease))
            }
            s => Ok(Event::Progress(format!("{s:?}").to_lowercase())),
        },
    }
}

/// Runs the client until it holds a lease, for at most the interface's DHCP timeout.
pub async fn acquire(c: &mut Client, p: &ClientParams) -> Result<Lease, Error> {
    // mozim times out by itself (its configured timeout); ours is timed here.
    let ours = matches!(c, Client::V4(_));
    let lease = async {
        loop {
            if let Event::Bound(l) = next(c, p).await? {
                return Ok(l);
            }
        }
    };
    if !ours {
        return lease.await;
    }
    tokio::time::timeout(Duration::from_secs(timeout_secs(p).into()), lease)
        .await
        .unwrap_or_else(|_| Err(timeout_err(p)))
}

/// Gives the last lease back to the server (DHCPRELEASE / Release).
pub async fn release(c: &mut Client, p: &ClientParams) -> Result<(), Error> {
    match c {
        Client::V4(cli) => cli.release(),
        Client::V6(cli, Some(l)) => cli.release(l).await.map_err(|e| dhcp_err(p, e)),
        _ => Ok(()),
    }
}

/// Starts over (after a lost lease): the next `next` sends DISCOVER / Solicit.
pub fn reset(c: &mut Client) {
    match c {
        Client::V4(cli) => cli.reset(),
        Client::V6(cli, last) => {
            cli.clean_up();
            *last = None;
        }
    }
}

pub fn lease_v6(l: &DhcpV6Lease) -> Lease {
    Lease {
        family: 6,
        // IA_NA carries no prefix length; the on-link prefix comes from router advertisements
        // (as with dhclient, the address is added as a /128).
        address: IpNet::from(IpAddr::V6(l.address)),
        broadcast: None,
        gateway: None,
        routes: Vec::new(),
        dns: l.dns_srvs.iter().map(|d| IpAddr::V6(*d)).collect(),
        server: (!l.srv_ip.is_unspecified()).then_some(IpAddr::V6(l.srv_ip)),
        lease_time: l.valid_time_sec,
        t1: l.t1_sec,
        t2: l.t2_sec,
    }
}

/// The interface's IPv6 link-local address, usable (not tentative): DHCPv6 speaks from it.
fn link_local(nl: &mut dyn crate::netlink::Rtnl, p: &ClientParams) -> Result<Ipv6Addr, Error> {
    let deadline =
        Instant::now() + Duration::from_secs(3).min(p.timeout.max(Duration::from_secs(1)));
    loop {
        let found = if_addresses(nl, p.index)?
            .into_iter()
            .find_map(|a| match a.net.addr() {
                IpAddr::V6(ip) if a.scope == AddressScope::Link && !a.tentative => Some(ip),
                _ => None,
            });
        if let Some(ip) = found {
            return Ok(ip);
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout(format!(
                "{} has no usable IPv6 link-local address to run DHCPv6 from",
                p.ifname
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One-shot: enters the guest on a thread of its own, runs the client to a lease, and returns
/// it; the runtime and the thread end there.
pub fn obtain(ns: &NetNs, p: &ClientParams) -> Result<Lease, Error> {
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(ns.fd(), nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                Error::io("cannot enter the guest for DHCP", std::io::Error::from(e))
            })?;
            let mut nl =
                Netlink::open().map_err(|e| Error::netlink("cannot open a netlink socket", e))?;
            runtime()?.block_on(async {
                let mut c = start(p, &mut nl).await?;
                acquire(&mut c, p).await
            })
        })
        .join()
        .unwrap_or_else(|_| Err(Error::Guest("the DHCP client thread failed".into())))
    })
}

/// SLAAC: waits until the kernel has configured a global, non-tentative address on the
/// interface from a router advertisement.
pub fn wait_slaac(nl: &mut dyn crate::netlink::Rtnl, p: &ClientParams) -> Result<Lease, Error> {
    let deadline = Instant::now() + p.timeout;
    loop {
        let found = if_addresses(nl, p.index)?
            .into_iter()
            .find(|a| a.net.addr().is_ipv6() && a.scope == AddressScope::Universe && !a.tentative);
        if let Some(a) = found {
            return Ok(Lease::observed(a.net, None));
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout(format!(
                "no router advertisement configured an address on {} within {:.0} s (SLAAC)",
                p.ifname,
                p.timeout.as_secs_f64()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
