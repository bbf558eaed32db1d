//! request → plan: every change an attach will make, decided up front from the request and
//! the observed state, as a list of named steps. Nothing here changes the system; `apply`
//! executes the steps with an undo log.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_route::route::RouteMessage;
use serde::Serialize;

use crate::error::Error;
use crate::guest::Guest;
use crate::mac::MacAddr;
use crate::netlink::Netlink;
use crate::request::AttachRequest;
use crate::{addressing, driver};

/// Which of the two namespaces a step acts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Host,
    Guest,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// A Linux bridge, created up.
    CreateBridge {
        name: String,
        mtu: Option<u32>,
    },
    /// A leftover host link of the chosen name that is down: replaced, as the original does.
    DeleteStaleLink {
        name: String,
    },
    /// The veth pair in one message: host end enslaved and up, guest end created inside the
    /// guest with its final name.
    CreateVeth {
        host: String,
        bridge: String,
        guest: String,
        mtu: u32,
        mac: Option<MacAddr>,
    },
    /// net.ipv4.conf.IF.arp_notify = 1 (kernel sends gratuitous ARP on up / MAC change).
    SetArpNotify {
        ifname: String,
    },
    /// net.ipv6.conf.IF.ndisc_notify = 1 (unsolicited neighbour advertisements).
    SetNdiscNotify {
        ifname: String,
    },
    LinkUp {
        ifname: String,
    },
    AddAddress {
        ifname: String,
        address: IpNet,
    },
    /// Removes an existing default route (restored on rollback).
    DeleteRoute {
        route: Box<RouteMessage>,
        text: String,
    },
    /// On-link host route to a gateway outside the interface's subnet.
    AddHostRoute {
        gateway: IpAddr,
        ifname: String,
    },
    AddDefaultRoute {
        gateway: IpAddr,
        ifname: String,
    },
    /// Waits (bounded) until the bridge has processed the new port's carrier, so the announce
    /// and the guest's first packets are not dropped by a port still disabled. The kernel
    /// enables the port from its link-watch work, asynchronously, after the guest end is up.
    WaitPortReady {
        port: String,
    },
    /// Re-sets the interface's MAC so the kernel announces its addresses once the bridge port
    /// forwards (a gratuitous ARP sent the instant the link comes up can be lost).
    Announce {
        ifname: String,
    },
}

impl Op {
    pub fn side(&self) -> Side {
        match self {
            Op::CreateBridge { .. }
            | Op::DeleteStaleLink { .. }
            | Op::CreateVeth { .. }
            | Op::WaitPortReady { .. } => Side::Host,
            _ => Side::Guest,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::CreateBridge { name, .. } => write!(f, "create bridge {name} (up)"),
            Op::DeleteStaleLink { name } => {
                write!(f, "delete leftover host link {name} (it is down)")
            }
            Op::CreateVeth {
                host,
                bridge,
                guest,
                mtu,
                mac,
            } => {
                write!(
                    f,
                    "create veth {host} (on {bridge}, up) <-> {guest} in guest, mtu {mtu}"
                )?;
                if let Some(m) = mac {
                    write!(f, ", mac {m}")?;
                }
                Ok(())
            }
            Op::SetArpNotify { ifname } => write!(f, "set arp_notify on {ifname}"),
            Op::SetNdiscNotify { ifname } => write!(f, "set ndisc_notify on {ifname}"),
            Op::LinkUp { ifname } => write!(f, "bring {ifname} up"),
            Op::AddAddress { ifname, address } => write!(f, "add address {address} to {ifname}"),
            Op::DeleteRoute { text, .. } => write!(f, "delete route {text}"),
            Op::AddHostRoute { gateway, ifname } => {
                write!(f, "add on-link route {gateway} dev {ifname}")
            }
            Op::AddDefaultRoute { gateway, ifname } => {
                write!(f, "add route default via {gateway} dev {ifname}")
            }
            Op::WaitPortReady { port } => {
                write!(f, "wait until bridge port {port} leaves the disabled state")
            }
            Op::Announce { ifname } => {
                write!(
                    f,
                    "announce the addresses of {ifname} (gratuitous ARP / unsolicited NA)"
                )
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Stable name: shown by -v, used by PIPEWORK_TEST_FAIL_STEP and in error messages.
    pub name: &'static str,
    pub op: Op,
}

impl Step {
    pub fn new(name: &'static str, op: Op) -> Step {
        Step { name, op }
    }
}

/// Everything an attach will do, and what it will report.
#[derive(Debug, Clone)]
pub struct Plan {
    pub kind: &'static str,
    pub host_interface: String,
    pub host_interface_created: bool,
    pub host_ifname: String,
    pub guest_ifname: String,
    pub mtu: u32,
    pub mac: Option<MacAddr>,
    pub addresses: Vec<IpNet>,
    pub gateway: Option<IpAddr>,
    pub steps: Vec<Step>,
    /// The driver's "host side is ready" step, run once the guest end is up and configured.
    pub ready: Option<Step>,
}

/// What planning may look at: the request, the resolved guest, and read-only netlink access
/// to both namespaces.
pub struct PlanCtx<'a> {
    pub req: &'a AttachRequest,
    pub guest: &'a Guest,
    pub host: &'a mut Netlink,
    pub guest_nl: &'a mut Netlink,
}

pub fn plan_attach(ctx: &mut PlanCtx<'_>) -> Result<Plan, Error> {
    let mut plan = driver::plan_link(ctx)?;
    addressing::plan_static(ctx, &mut plan)?;
    Ok(plan)
}
