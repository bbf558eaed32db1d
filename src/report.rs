//! What an attach did, as printed by `--json` (and, later, recorded for `ls`/`detach`).

use std::net::IpAddr;

use serde::Serialize;

use crate::apply::dhcp::DhcpReport;
use crate::apply::{Applied, RouteReport};
use crate::guest::{Guest, GuestInfo};
use crate::mac::MacAddr;
use crate::plan::{Kind, Plan};

#[derive(Serialize)]
pub struct NetnsInfo {
    pub path: String,
    pub inode: u64,
}

#[derive(Serialize)]
pub struct AttachReport<'a> {
    pub kind: Kind,
    pub guest: GuestInfo<'a>,
    pub netns: NetnsInfo,
    pub host_interface: &'a str,
    pub host_interface_created: bool,
    pub host_ifname: Option<&'a str>,
    pub guest_ifname: &'a str,
    pub mac: Option<MacAddr>,
    pub mtu: Option<u32>,
    /// VLAN tag (OVS, 802.1Q) or IPoIB partition key.
    pub vlan: Option<u16>,
    /// Host addresses a moved NIC lost (`--direct-phys`).
    pub dropped_addresses: Vec<String>,
    pub addresses: Vec<String>,
    pub gateway: Option<IpAddr>,
    pub routes: Vec<RouteReport>,
    /// The lease and the client, for DHCP and SLAAC.
    pub dhcp: Option<DhcpReport>,
    /// True when only the plan was shown (--dry-run).
    pub dry_run: bool,
    pub steps: Vec<&'static str>,
}

impl<'a> AttachReport<'a> {
    pub fn new(guest: &'a Guest, plan: &'a Plan, applied: Option<Applied>) -> Self {
        let dry_run = applied.is_none();
        let applied = applied.unwrap_or_default();
        AttachReport {
            kind: plan.kind,
            guest: guest.info(),
            netns: NetnsInfo {
                path: guest.netns.path.display().to_string(),
                inode: guest.netns.inode,
            },
            host_interface: &plan.host_interface,
            host_interface_created: plan.host_interface_created && !applied.host_interface_existed,
            host_ifname: plan.host_ifname.as_deref(),
            guest_ifname: &plan.guest_ifname,
            mac: applied.guest_mac.or(plan.mac),
            mtu: applied.guest_mtu,
            vlan: plan.vlan,
            dropped_addresses: plan
                .dropped_addresses
                .iter()
                .map(|a| a.to_string())
                .collect(),
            addresses: plan
                .addresses
                .iter()
                .chain(applied.lease.as_ref().map(|l| &l.address))
                .map(|a| a.to_string())
                .collect(),
            gateway: plan
                .gateway
                .or(applied.lease.as_ref().and_then(|l| l.gateway)),
            routes: applied.routes,
            dhcp: applied.dhcp,
            dry_run,
            steps: plan.steps.iter().map(|s| s.name).collect(),
        }
    }
}
