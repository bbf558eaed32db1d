//! The plan vocabulary: every change an attach will make, decided up front from the request
//! and the observed state, as a list of named steps, and the undo entries the journal records
//! before each change. Plain data: this module imports no driver, no addressing code and no
//! netlink client (drivers plan, `apply` executes, `store` journals).

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_route::route::RouteMessage;
use serde::{Deserialize, Serialize};

use crate::mac::MacAddr;
use crate::request::{DhcpClient, DhcpSpec, MacvlanMode};

/// Which of the two namespaces a link lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Host,
    Guest,
}

pub use crate::request::Kind;

/// A link to create straight inside the guest, its parent named as in the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestLink {
    Macvlan { parent: String, mode: MacvlanMode },
    Ipoib { parent: String, pkey: Option<u16> },
    Dummy,
}

/// A NIC's state before it was moved into the guest: what rollback and `detach` restore
/// (also kept in the attachment's record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct NicState {
    pub name: String,
    pub mac: Option<MacAddr>,
    pub mtu: Option<u32>,
    pub up: bool,
    pub addresses: Vec<IpNet>,
    /// A wireless NIC moves with its phy (nl80211), by `iw`.
    pub phy: Option<String>,
    /// Its ifindex in the host (the kernel keeps it across the move when it is free): what
    /// tells the NIC from another link that took its guest name.
    #[serde(default)]
    pub index: Option<u32>,
    /// The bridge it was a port of.
    #[serde(default)]
    pub master: Option<String>,
    /// The host's routes through it (the kernel drops them on the move), as the kernel's bytes.
    #[serde(default)]
    pub routes: Vec<RouteBytes>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// A Linux bridge, created up.
    CreateBridge {
        name: String,
        mtu: Option<u32>,
    },
    /// An Open vSwitch bridge (`ovs-vsctl add-br`).
    OvsAddBridge {
        name: String,
        datapath: Option<String>,
    },
    /// A leftover host link of the chosen name that is down: replaced, as the original does.
    DeleteStaleLink {
        name: String,
    },
    /// The veth pair in one message: host end (enslaved to `master` when given) and up, guest
    /// end created inside the guest with its final name.
    CreateVeth {
        host: String,
        master: Option<String>,
        guest: String,
        mtu: u32,
        mac: Option<MacAddr>,
    },
    /// The host end becomes a port of an OVS bridge, with the original's external-ids.
    OvsAddPort {
        bridge: String,
        port: String,
        tag: Option<u16>,
        external_ids: Vec<(String, String)>,
    },
    /// Turns off tx checksum offload on the guest end: OVS's userspace datapath does not
    /// complete partial checksums, so TCP through it would fail otherwise.
    TxChecksumOff {
        ifname: String,
    },
    /// An 802.1Q child of a host NIC.
    CreateVlan {
        parent: String,
        name: String,
        id: u16,
        mtu: Option<u32>,
    },
    /// Brings a host link up (restored to down on rollback).
    HostLinkUp {
        name: String,
    },
    /// A macvlan / IPoIB / dummy link created inside the guest with its final name.
    CreateInGuest {
        link: GuestLink,
        name: String,
        mtu: Option<u32>,
        mac: Option<MacAddr>,
    },
    /// Moves a host NIC into the guest under `guest` in one RTM_SETLINK.
    MoveToGuest {
        nic: NicState,
        guest: String,
        mtu: Option<u32>,
    },
    /// Sets the guest interface's MAC (a moved NIC; created links get theirs at creation).
    SetMac {
        ifname: String,
        mac: MacAddr,
    },
    /// net.ipv4.conf.IF.arp_notify = 1 (kernel sends gratuitous ARP on up / MAC change).
    SetArpNotify {
        ifname: String,
    },
    /// net.ipv6.conf.IF.disable_ipv6 = 0 on the new interface alone, when the guest starts
    /// interfaces with IPv6 off (Docker's `--net=none` containers: all and default are 1).
    /// Nothing else in the guest changes; restored on rollback.
    EnableIpv6 {
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
    /// A route to a network via a gateway (DHCP classless static routes, an IPAM result's
    /// routes), or on-link when `via` is None.
    AddRoute {
        dst: IpNet,
        via: Option<IpAddr>,
        ifname: String,
    },
    /// Waits (bounded) until the bridge has processed the new port's carrier, so the announce
    /// and the guest's first packets are not dropped by a port still disabled. The kernel
    /// enables the port from its link-watch work, asynchronously, after the guest end is up.
    WaitPortReady {
        port: String,
    },
    /// Re-sets the interface's MAC so the kernel announces its addresses once the path is
    /// ready (a gratuitous ARP sent the instant the link comes up can be lost).
    Announce {
        ifname: String,
    },
    /// net.ipv6.conf.IF.accept_dad = 0: the link-local address DHCPv6 speaks from is usable
    /// at once instead of after 1–2 s of duplicate address detection.
    DisableDad {
        ifname: String,
    },
    /// Obtains a lease (built-in client, supervisor, SLAAC or an external client) and applies
    /// it: address, default route, routes, and the guest's resolv.conf when asked.
    Dhcp(Box<DhcpStep>),
    /// Records the client left running (supervisor or external `-f`) for `pipework ls`.
    DhcpRecord {
        ifname: String,
    },
    /// The gateway's address on the bridge (CNI `isGateway`); a different address of the
    /// same subnet is an error, or replaced with `force` (`forceAddress`). Left in place on
    /// teardown, as the reference plugin leaves it: other guests route through it.
    BridgeAddress {
        bridge: String,
        address: IpNet,
        force: bool,
    },
    /// IP forwarding on in the host for a family (kept, as the reference plugin keeps it).
    IpForward {
        v6: bool,
    },
    /// The bridge promiscuous (CNI `promiscMode`).
    BridgePromisc {
        bridge: String,
    },
    /// The bridge's VLAN filtering on (CNI `vlan`, `vlanTrunk`).
    BridgeVlanFiltering {
        bridge: String,
    },
    /// The port's hairpin and isolation flags (CNI `hairpinMode`, `portIsolation`).
    PortFlags {
        port: String,
        hairpin: bool,
        isolated: bool,
    },
    /// The port's VLANs: `pvid` untagged, `trunk` tagged; VLAN 1 removed unless
    /// `preserve_default`.
    PortVlan {
        port: String,
        pvid: Option<u16>,
        trunk: Vec<u16>,
        preserve_default: bool,
    },
    /// Frames from the port with another source MAC than the guest's are dropped (CNI
    /// `macspoofchk`), in an nftables table of the attachment's own.
    MacSpoofCheck {
        port: String,
        table: String,
    },
    /// Masquerading of the guest's addresses (CNI `ipMasq`).
    Masquerade(Box<crate::firewall::MasqRules>),
}

/// Everything the DHCP step needs, decided at plan time.
#[derive(Debug, Clone, PartialEq)]
pub struct DhcpStep {
    pub ifname: String,
    pub spec: DhcpSpec,
    pub v6: bool,
    pub hostname: Option<String>,
    pub timeout: std::time::Duration,
    pub resolv: Option<crate::guestfs::GuestFile>,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::CreateBridge { name, .. } => write!(f, "create bridge {name} (up)"),
            Op::OvsAddBridge { name, datapath } => {
                write!(f, "create Open vSwitch bridge {name}")?;
                match datapath {
                    Some(d) => write!(f, " (datapath {d})"),
                    None => Ok(()),
                }
            }
            Op::DeleteStaleLink { name } => {
                write!(f, "delete leftover host link {name} (it is down)")
            }
            Op::CreateVeth {
                host,
                master,
                guest,
                mtu,
                mac,
            } => {
                write!(f, "create veth {host}")?;
                if let Some(m) = master {
                    write!(f, " (on {m}, up)")?;
                }
                write!(f, " <-> {guest} in guest, mtu {mtu}")?;
                if let Some(m) = mac {
                    write!(f, ", mac {m}")?;
                }
                Ok(())
            }
            Op::OvsAddPort {
                bridge, port, tag, ..
            } => {
                write!(f, "add {port} to Open vSwitch bridge {bridge}")?;
                match tag {
                    Some(t) => write!(f, " with tag {t}"),
                    None => Ok(()),
                }
            }
            Op::TxChecksumOff { ifname } => write!(f, "turn off tx checksum offload on {ifname}"),
            Op::CreateVlan {
                parent, name, id, ..
            } => write!(f, "create VLAN {id} on {parent} as {name}"),
            Op::HostLinkUp { name } => write!(f, "bring host link {name} up"),
            Op::CreateInGuest {
                link, name, mac, ..
            } => {
                match link {
                    GuestLink::Macvlan { parent, mode } => write!(
                        f,
                        "create macvlan {name} ({mode:?} mode) of {parent} in guest"
                    )?,
                    GuestLink::Ipoib { parent, pkey } => {
                        write!(f, "create IPoIB {name} of {parent} in guest")?;
                        if let Some(p) = pkey {
                            write!(f, ", pkey 0x{p:04x}")?;
                        }
                    }
                    GuestLink::Dummy => write!(f, "create dummy {name} in guest")?,
                }
                if let Some(m) = mac {
                    write!(f, ", mac {m}")?;
                }
                Ok(())
            }
            Op::MoveToGuest { nic, guest, .. } => {
                write!(f, "move {} into the guest as {guest}", nic.name)?;
                if let Some(phy) = &nic.phy {
                    write!(f, " (wireless: with its phy {phy})")?;
                }
                Ok(())
            }
            Op::SetMac { ifname, mac } => write!(f, "set mac {mac} on {ifname}"),
            Op::SetArpNotify { ifname } => write!(f, "set arp_notify on {ifname}"),
            Op::EnableIpv6 { ifname } => write!(f, "enable IPv6 on {ifname} (disable_ipv6 = 0)"),
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
            Op::DisableDad { ifname } => write!(f, "set accept_dad=0 on {ifname}"),
            Op::AddRoute { dst, via, ifname } => match via {
                Some(via) => write!(f, "add route {dst} via {via} dev {ifname}"),
                None => write!(f, "add route {dst} dev {ifname} (on-link)"),
            },
            Op::Dhcp(d) => {
                let what = match (d.spec.client, d.v6) {
                    (DhcpClient::Builtin, false) => "DHCPv4 (built-in client)".to_string(),
                    (DhcpClient::Builtin, true) => "DHCPv6 (built-in client)".to_string(),
                    (DhcpClient::Slaac, _) => "a SLAAC address".to_string(),
                    (c, v6) => format!("a lease from {}{}", c.name(), if v6 { " -6" } else { "" }),
                };
                write!(f, "obtain {what} on {}", d.ifname)?;
                if d.spec.keep {
                    write!(f, ", kept renewed")?;
                }
                Ok(())
            }
            Op::DhcpRecord { ifname } => {
                write!(f, "record the DHCP client of {ifname} for `pipework ls`")
            }
            Op::BridgeAddress {
                bridge,
                address,
                force,
            } => {
                write!(f, "put gateway address {address} on bridge {bridge}")?;
                if *force {
                    write!(f, " (replacing another one of its subnet)")?;
                }
                Ok(())
            }
            Op::IpForward { v6 } => {
                write!(f, "turn IPv{} forwarding on", if *v6 { 6 } else { 4 })
            }
            Op::BridgePromisc { bridge } => write!(f, "make bridge {bridge} promiscuous"),
            Op::BridgeVlanFiltering { bridge } => {
                write!(f, "turn VLAN filtering on for bridge {bridge}")
            }
            Op::PortFlags {
                port,
                hairpin,
                isolated,
            } => write!(
                f,
                "set bridge port {port} hairpin {}, isolated {}",
                if *hairpin { "on" } else { "off" },
                if *isolated { "on" } else { "off" }
            ),
            Op::PortVlan {
                port, pvid, trunk, ..
            } => {
                write!(f, "put bridge port {port} on")?;
                if let Some(v) = pvid {
                    write!(f, " VLAN {v} (untagged)")?;
                }
                if !trunk.is_empty() {
                    write!(f, " trunk VLANs {trunk:?}")?;
                }
                Ok(())
            }
            Op::MacSpoofCheck { port, table } => {
                write!(
                    f,
                    "drop frames from {port} with a foreign source MAC (nft table {table})"
                )
            }
            Op::Masquerade(m) => write!(
                f,
                "masquerade {} ({:?} {})",
                m.sources
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                m.backend,
                m.name
            ),
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

impl Op {
    /// The object the op changes, for errors (`{"error": {"object": …}}`).
    pub fn object(&self) -> String {
        match self {
            Op::CreateBridge { name, .. }
            | Op::OvsAddBridge { name, .. }
            | Op::DeleteStaleLink { name }
            | Op::CreateVlan { name, .. }
            | Op::HostLinkUp { name }
            | Op::CreateInGuest { name, .. } => name.clone(),
            Op::CreateVeth { host, .. } => host.clone(),
            Op::OvsAddPort { port, .. } => port.clone(),
            Op::WaitPortReady { port } => port.clone(),
            Op::MoveToGuest { nic, .. } => nic.name.clone(),
            Op::TxChecksumOff { ifname }
            | Op::SetMac { ifname, .. }
            | Op::SetArpNotify { ifname }
            | Op::SetNdiscNotify { ifname }
            | Op::EnableIpv6 { ifname }
            | Op::LinkUp { ifname }
            | Op::AddAddress { ifname, .. }
            | Op::AddHostRoute { ifname, .. }
            | Op::AddDefaultRoute { ifname, .. }
            | Op::AddRoute { ifname, .. }
            | Op::Announce { ifname }
            | Op::DisableDad { ifname }
            | Op::DhcpRecord { ifname } => ifname.clone(),
            Op::DeleteRoute { text, .. } => text.clone(),
            Op::Dhcp(d) => d.ifname.clone(),
            Op::BridgeAddress { bridge, .. }
            | Op::BridgePromisc { bridge }
            | Op::BridgeVlanFiltering { bridge } => bridge.clone(),
            Op::IpForward { v6 } => if *v6 { "ipv6" } else { "ipv4" }.to_string(),
            Op::PortFlags { port, .. }
            | Op::PortVlan { port, .. }
            | Op::MacSpoofCheck { port, .. } => port.clone(),
            Op::Masquerade(m) => m.name.clone(),
        }
    }
}

/// Everything an attach will do, and what it will report.
#[derive(Debug, Clone)]
pub struct Plan {
    pub kind: Kind,
    pub host_interface: String,
    pub host_interface_created: bool,
    /// The host-side interface: the veth's host end, or the moved NIC's host name.
    pub host_ifname: Option<String>,
    pub guest_ifname: String,
    pub mac: Option<MacAddr>,
    /// VLAN tag (OVS, 802.1Q) or IPoIB partition key in effect.
    pub vlan: Option<u16>,
    /// Addresses a moved NIC had in the host (the kernel drops them on the move).
    pub dropped_addresses: Vec<IpNet>,
    /// Whether the final announce (MAC re-set) applies to this kind.
    pub announce: bool,
    pub addresses: Vec<IpNet>,
    pub gateway: Option<IpAddr>,
    pub steps: Vec<Step>,
    /// The driver's "host side is ready" step, run once the guest end is up and configured.
    pub ready: Option<Step>,
}

/// The link group (IFLA_GROUP) of every link pipework creates. It marks them as ours: undo,
/// `detach` and `gc` delete only links that carry it (a name alone can be anyone's), and many
/// of them go in one group delete.
pub const LINK_GROUP: u32 = 0x7077_0001;

/// The kernel link types pipework creates, as the journal names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkKind {
    Bridge,
    Veth,
    Macvlan,
    Vlan,
    Ipoib,
    Dummy,
}

impl LinkKind {
    /// The IFLA_INFO_KIND string the kernel reports.
    pub fn info_kind(self) -> &'static str {
        match self {
            LinkKind::Bridge => "bridge",
            LinkKind::Veth => "veth",
            LinkKind::Macvlan => "macvlan",
            LinkKind::Vlan => "vlan",
            LinkKind::Ipoib => "ipoib",
            LinkKind::Dummy => "dummy",
        }
    }
}

/// A route message kept as the kernel's bytes (what a restore sends back verbatim).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteBytes(pub Vec<u8>);

/// One change an attach made (or was about to make), and so how to take it back. The journal
/// on disk gets each entry *before* the change: an undo of a change that never happened must
/// be harmless, so each one checks that what it removes is still what pipework made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "undo", rename_all = "kebab-case")]
pub enum UndoEntry {
    /// A link pipework creates (carrying [`LINK_GROUP`]): deleted if it still is ours. A veth
    /// takes its peer, and a link its addresses and routes, with it.
    DeleteLink {
        side: Side,
        name: String,
        kind: LinkKind,
    },
    /// A Linux bridge pipework creates: deleted once no port is left on it.
    DeleteBridge {
        name: String,
    },
    /// An 802.1Q child pipework creates: deleted once no other attachment uses it.
    DeleteVlan {
        name: String,
    },
    /// A host link pipework brought up goes back down (on rollback only).
    HostLinkDown {
        name: String,
    },
    OvsDelPort {
        bridge: String,
        port: String,
    },
    /// An Open vSwitch bridge pipework creates (its marker file says so to later detaches).
    OvsDelBridge {
        name: String,
    },
    /// A NIC moved into the guest (as `guest`) goes back under its name, MAC, MTU, addresses
    /// and state.
    MoveBack {
        nic: NicState,
        guest: String,
    },
    /// A default route pipework deleted is restored.
    ReAddRoute {
        route: RouteBytes,
        text: String,
    },
    /// A route pipework added is taken out (so the old default can come back).
    DeleteRoute {
        route: RouteBytes,
        text: String,
    },
    /// A DHCP client pipework started: stopped if the process is still that one (its start
    /// time, in clock ticks since boot, as /proc/PID/stat says).
    StopProcess {
        pid: u32,
        start: Option<u64>,
        files: Vec<std::path::PathBuf>,
    },
    /// An IPv6 setting of the guest interface pipework changed (disable_ipv6) gets its old
    /// value back, if the interface is still there (on rollback only).
    Ipv6Conf {
        ifname: String,
        key: String,
        value: String,
    },
    /// A file pipework overwrote (the guest's resolv.conf) gets its old content back (on
    /// rollback only).
    RestoreFile {
        file: crate::guestfs::GuestFile,
        content: Option<Vec<u8>>,
    },
    /// Masquerade rules pipework added: removed.
    Unmasquerade {
        rules: crate::firewall::MasqRules,
    },
    /// An nftables table pipework added (the MAC spoof check): deleted.
    DeleteNftTable {
        family: String,
        name: String,
    },
}

impl UndoEntry {
    /// Entries a detach skips: they only make sense right after a failed attach. A detach
    /// leaves the guest's DNS as the lease left it, and a NIC pipework brought up stays up (as
    /// the original leaves it: other guests may hang from it by then).
    pub fn rollback_only(&self) -> bool {
        matches!(
            self,
            UndoEntry::RestoreFile { .. }
                | UndoEntry::HostLinkDown { .. }
                | UndoEntry::Ipv6Conf { .. }
        )
    }
}

impl fmt::Display for UndoEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UndoEntry::DeleteLink { side, name, kind } => {
                write!(f, "delete {} {name} ({side:?})", kind.info_kind())
            }
            UndoEntry::DeleteBridge { name } => write!(f, "delete bridge {name} if unused"),
            UndoEntry::DeleteVlan { name } => write!(f, "delete VLAN interface {name} if unused"),
            UndoEntry::HostLinkDown { name } => write!(f, "bring {name} back down"),
            UndoEntry::OvsDelPort { bridge, port } => {
                write!(f, "remove port {port} from Open vSwitch bridge {bridge}")
            }
            UndoEntry::OvsDelBridge { name } => write!(f, "delete Open vSwitch bridge {name}"),
            UndoEntry::MoveBack { nic, guest } => {
                write!(f, "move {guest} back to the host as {}", nic.name)
            }
            UndoEntry::ReAddRoute { text, .. } => write!(f, "restore route {text}"),
            UndoEntry::DeleteRoute { text, .. } => write!(f, "delete route {text}"),
            UndoEntry::StopProcess { pid, .. } => write!(f, "stop DHCP client {pid}"),
            UndoEntry::RestoreFile { file, .. } => write!(f, "restore {file}"),
            UndoEntry::Unmasquerade { rules } => {
                write!(
                    f,
                    "remove masquerading ({:?} {})",
                    rules.backend, rules.name
                )
            }
            UndoEntry::DeleteNftTable { family, name } => {
                write!(f, "delete nftables table {family} {name}")
            }
            UndoEntry::Ipv6Conf { ifname, key, value } => {
                write!(f, "set net.ipv6.conf.{ifname}.{key} back to {value}")
            }
        }
    }
}
