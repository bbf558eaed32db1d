//! Typed reports of the engine: what an attach did (its `--json`, and the record's copy), what
//! detach/gc did, what `ls` lists, what `check` found. Every front end renders these; none
//! re-parses text.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::Serialize;

use crate::addressing::dhcp::Lease;
use crate::guest::{Engine, Guest};
use crate::mac::MacAddr;
use crate::plan::{Kind, Plan};

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RouteReport {
    pub dst: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<IpAddr>,
    pub dev: String,
}

/// The `dhcp` object of `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct DhcpReport {
    pub client: &'static str,
    pub family: u8,
    pub server: Option<IpAddr>,
    pub lease_time: u32,
    pub t1: u32,
    pub t2: u32,
    pub dns: Vec<IpAddr>,
    pub supervisor: Option<SupervisorReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SupervisorReport {
    pub pid: u32,
    pub pidfile: PathBuf,
}

/// What apply learnt from the kernel along the way.
#[derive(Debug, Default, Clone)]
pub struct Applied {
    pub guest_mac: Option<MacAddr>,
    pub guest_mtu: Option<u32>,
    pub guest_index: Option<u32>,
    pub host_index: Option<u32>,
    pub routes: Vec<RouteReport>,
    /// What DHCP (or SLAAC) gave the interface.
    pub lease: Option<Lease>,
    /// The bridge the plan was to create turned up meanwhile (a concurrent attach): used.
    pub host_interface_existed: bool,
    pub dhcp: Option<DhcpReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GuestInfo {
    pub spec: String,
    pub engine: Engine,
    pub id: Option<String>,
    pub name: Option<String>,
    pub pid: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NetnsInfo {
    pub path: String,
    pub inode: u64,
}

/// What an attach did (or, with a dry run, would do).
#[derive(Debug, Clone, Serialize)]
pub struct AttachReport {
    pub kind: Kind,
    pub guest: GuestInfo,
    pub netns: NetnsInfo,
    pub host_interface: String,
    pub host_interface_created: bool,
    pub host_ifname: Option<String>,
    pub guest_ifname: String,
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
    /// The runtime's names for it (CNI).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<crate::request::Owner>,
    /// True when only the plan was shown (--dry-run).
    pub dry_run: bool,
    pub steps: Vec<&'static str>,
    /// With a dry run: each step and what it would do.
    #[serde(skip)]
    pub plan: Vec<(&'static str, String)>,
}

impl GuestInfo {
    pub fn of(guest: &Guest) -> GuestInfo {
        GuestInfo {
            spec: guest.spec.clone(),
            engine: guest.engine,
            id: guest.id.clone(),
            name: guest.name.clone(),
            pid: guest.pid,
        }
    }
}

impl AttachReport {
    pub fn new(guest: &Guest, plan: &Plan, applied: Option<Applied>) -> Self {
        let dry_run = applied.is_none();
        let applied = applied.unwrap_or_default();
        AttachReport {
            kind: plan.kind,
            guest: GuestInfo::of(guest),
            netns: NetnsInfo {
                path: guest.netns.path.display().to_string(),
                inode: guest.netns.inode,
            },
            host_interface: plan.host_interface.clone(),
            host_interface_created: plan.host_interface_created && !applied.host_interface_existed,
            host_ifname: plan.host_ifname.clone(),
            guest_ifname: plan.guest_ifname.clone(),
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
            owner: None,
            dry_run,
            steps: plan.steps.iter().map(|s| s.name).collect(),
            plan: if dry_run {
                plan.steps
                    .iter()
                    .map(|s| (s.name, s.op.to_string()))
                    .collect()
            } else {
                Vec::new()
            },
        }
    }
}

/// What detach or gc did (or, with --dry-run, would do), one line per action; and the
/// records that could not be read.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ActionsReport {
    pub dry_run: bool,
    pub actions: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// One line of `pipework ls`: a recorded attachment, alive, stale or incomplete.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    /// `alive`, `stale` (its guest or interface is gone, or is not the one recorded), or
    /// `incomplete` (an attach still running, or killed: gc rolls it back).
    pub state: &'static str,
    pub guest: String,
    pub engine: Engine,
    pub guest_id: Option<String>,
    pub guest_name: Option<String>,
    pub guest_pid: Option<u32>,
    pub netns_inode: u64,
    pub kind: Kind,
    pub host_interface: String,
    pub host_ifname: Option<String>,
    pub ifname: String,
    pub address: Option<String>,
    pub addresses: Vec<String>,
    pub mac: Option<String>,
    pub vlan: Option<u16>,
    /// The DHCP client kept running for this attachment (its PID), if any.
    pub pid: Option<u32>,
    pub client: Option<String>,
    pub pidfile: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ListReport {
    pub attachments: Vec<Listed>,
    pub warnings: Vec<String>,
}

/// `pipework check`: for each attachment, what no longer matches its record.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    pub guest: String,
    pub ifname: String,
    pub kind: Kind,
    /// `ok`, `drift` (something differs), `stale` or `incomplete`.
    pub state: &'static str,
    pub differences: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    pub attachments: Vec<Checked>,
    pub warnings: Vec<String>,
}

impl CheckReport {
    pub fn all_ok(&self) -> bool {
        self.attachments.iter().all(|c| c.state == "ok")
    }
}
