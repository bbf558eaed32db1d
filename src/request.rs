//! The typed request every front end (CLI today; CNI and the watcher later) builds. Parsing the
//! values of the original's grammar lives here so that each front end validates them the same.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::Error;
use crate::guest::GuestSpec;
use crate::mac::MacAddr;
use crate::naming::validate_ifname;
use serde::{Deserialize, Serialize};
use std::fmt;

/// How the host interface is named: `br1`, or `mac:<MAC>` (found by its address).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostIfSpec {
    Name(String),
    Mac(MacAddr),
}

impl HostIfSpec {
    pub fn parse(s: &str) -> Result<Self, Error> {
        if let Some(mac) = s.strip_prefix("mac:") {
            return Ok(HostIfSpec::Mac(mac.parse()?));
        }
        validate_ifname(s, "host interface")?;
        Ok(HostIfSpec::Name(s.to_string()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
pub enum Family {
    #[serde(rename = "4")]
    V4,
    #[serde(rename = "6")]
    V6,
}

impl Family {
    pub fn parse(s: &str) -> Result<Self, Error> {
        match s.trim_start_matches('-') {
            "4" | "inet" => Ok(Family::V4),
            "6" | "inet6" => Ok(Family::V6),
            _ => Err(Error::Invalid(format!(
                "address family '{s}' is not valid for -a: use 4 or 6"
            ))),
        }
    }

    pub fn of(ip: &IpAddr) -> Family {
        if ip.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }
}

/// What the guest interface gets as addressing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Addressing {
    /// `0/0`: no address, the link is only brought up.
    None,
    Static {
        address: IpNet,
        gateway: Option<IpAddr>,
    },
    Dhcp(DhcpSpec),
    /// Addresses and routes decided elsewhere (a CNI IPAM plugin's result): all of them put
    /// on the interface, then the routes, in order.
    List {
        addresses: Vec<IpNet>,
        routes: Vec<RouteSpec>,
    },
}

/// A route the guest gets: via a gateway, or on-link when `via` is None.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteSpec {
    pub dst: IpNet,
    pub via: Option<IpAddr>,
}

/// Which DHCP client obtains the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DhcpClient {
    /// pipework's own client (DHCPv4, or DHCPv6 with `dhcp6` / `-a 6`).
    Builtin,
    /// Wait for the kernel's SLAAC address from a router advertisement.
    Slaac,
    Udhcpc,
    Dhclient,
    Dhcpcd,
}

impl DhcpClient {
    pub fn name(self) -> &'static str {
        match self {
            DhcpClient::Builtin => "builtin",
            DhcpClient::Slaac => "slaac",
            DhcpClient::Udhcpc => "udhcpc",
            DhcpClient::Dhclient => "dhclient",
            DhcpClient::Dhcpcd => "dhcpcd",
        }
    }
}

/// `dhcp`, `dhcp:-f`, `dhcp6`, `slaac`, `udhcpc[-f][:OPTIONS]`, `dhclient…`, `dhcpcd…`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhcpSpec {
    pub client: DhcpClient,
    /// `dhcp6`: the built-in client speaks DHCPv6 (also chosen by `-a 6`).
    pub v6: bool,
    /// Keep a client running to renew the lease (`-f` forms, `dhcp:-f`, `--dhcp-keep`).
    pub keep: bool,
    /// Extra arguments for an external client (`udhcpc:-t 3`).
    pub options: Vec<String>,
}

const DHCP_SUPPORTED: &str = "dhcp, dhcp:-f, dhcp6, slaac, udhcpc, udhcpc-f, dhclient, \
                              dhclient-f, dhcpcd, dhcpcd-f (each external one with :OPTIONS)";

impl DhcpSpec {
    /// `Ok(None)` when `s` is not a DHCP word at all (an address, then).
    pub fn parse(s: &str) -> Result<Option<DhcpSpec>, Error> {
        let (word, opts) = match s.split_once(':') {
            Some((w, o)) => (w, Some(o)),
            None => (s, None),
        };
        // An address has digits, dots or colons; a bare word is a client name.
        if word.is_empty()
            || !word
                .chars()
                .all(|c| c.is_ascii_alphabetic() || c == '-' || c == '6')
            || !word.starts_with(|c: char| c.is_ascii_alphabetic())
        {
            return Ok(None);
        }
        // IPv6 literals such as "fe80::1" are hex words followed by ':' — not client names.
        if opts.is_some() && word.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let (base, keep) = match word.strip_suffix("-f") {
            Some(b) => (b, true),
            None => (word, false),
        };
        let (client, v6) = match base {
            "dhcp" if !keep => (DhcpClient::Builtin, false),
            "dhcp6" if !keep => (DhcpClient::Builtin, true),
            "slaac" if !keep => (DhcpClient::Slaac, true),
            "udhcpc" => (DhcpClient::Udhcpc, false),
            "dhclient" => (DhcpClient::Dhclient, false),
            "dhcpcd" => (DhcpClient::Dhcpcd, false),
            _ => {
                return Err(Error::Invalid(format!(
                    "'{s}' is neither an address (such as 192.168.1.5/24) nor a DHCP client \
                     pipework knows: use one of {DHCP_SUPPORTED}"
                )))
            }
        };
        let options: Vec<String> = opts
            .unwrap_or("")
            .split_whitespace()
            .map(String::from)
            .collect();
        let mut spec = DhcpSpec {
            client,
            v6,
            keep,
            options: Vec::new(),
        };
        match client {
            // The built-in client takes only the original's `-f` (stay and renew).
            DhcpClient::Builtin | DhcpClient::Slaac => {
                for o in &options {
                    match o.as_str() {
                        "-f" if client == DhcpClient::Builtin => spec.keep = true,
                        _ => {
                            return Err(Error::Invalid(format!(
                                "'{s}': the built-in client takes no option '{o}' (only -f, to \
                                 stay and renew); to pass options to a client, name it, e.g. \
                                 udhcpc:{o}"
                            )))
                        }
                    }
                }
            }
            _ => spec.options = options,
        }
        Ok(Some(spec))
    }
}

impl Addressing {
    /// Parses `<ip>/<prefix>[@gateway]`, `0/0`, or a DHCP word.
    pub fn parse(s: &str) -> Result<Self, Error> {
        if let Some(spec) = DhcpSpec::parse(s)? {
            return Ok(Addressing::Dhcp(spec));
        }
        let (addr, gateway) = match s.split_once('@') {
            Some((a, g)) => (a, Some(g)),
            None => (s, None),
        };
        let Some((ip, prefix)) = addr.split_once('/') else {
            let hint = match addr.parse::<IpAddr>() {
                Ok(IpAddr::V6(_)) => "64",
                _ => "24",
            };
            return Err(Error::Invalid(format!(
                "The IP address should include a netmask.\nMaybe you meant {addr}/{hint}?"
            )));
        };
        if addr == "0/0" {
            if let Some(g) = gateway {
                return Err(Error::Invalid(format!(
                    "'{s}': a gateway ({g}) needs an address on the interface; give one such as \
                     192.168.1.5/24@{g}"
                )));
            }
            return Ok(Addressing::None);
        }
        let ip: IpAddr = ip.parse().map_err(|_| {
            Error::Invalid(format!(
                "'{ip}' in '{s}' is not a valid IPv4 or IPv6 address"
            ))
        })?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix.parse().ok().filter(|p| *p <= max).ok_or_else(|| {
            Error::Invalid(format!(
                "'{prefix}' in '{s}' is not a valid prefix length (0 to {max})"
            ))
        })?;
        let address = IpNet::new(ip, prefix).map_err(|e| Error::Invalid(format!("{s}: {e}")))?;
        if ip.is_unspecified() || ip.is_multicast() {
            return Err(Error::Invalid(format!(
                "'{ip}' cannot be an interface address (unspecified or multicast)"
            )));
        }
        let gateway = match gateway {
            None => None,
            Some(g) => {
                let gw: IpAddr = g.parse().map_err(|_| {
                    Error::Invalid(format!("gateway '{g}' in '{s}' is not a valid IP address"))
                })?;
                if gw.is_ipv4() != ip.is_ipv4() {
                    return Err(Error::Invalid(format!(
                        "gateway {gw} and address {ip} in '{s}' are of different families"
                    )));
                }
                if gw == ip {
                    return Err(Error::Invalid(format!(
                        "gateway {gw} is the interface's own address in '{s}'"
                    )));
                }
                if gw.is_unspecified() || gw.is_multicast() {
                    return Err(Error::Invalid(format!(
                        "gateway '{gw}' in '{s}' is not usable"
                    )));
                }
                Some(gw)
            }
        };
        Ok(Addressing::Static { address, gateway })
    }

    pub fn family(&self) -> Option<Family> {
        match self {
            Addressing::None => None,
            Addressing::Dhcp(d) if d.v6 => Some(Family::V6),
            Addressing::Dhcp(_) | Addressing::List { .. } => None,
            Addressing::Static { address, .. } => Some(Family::of(&address.addr())),
        }
    }
}

/// The original's last argument: `[macaddr][@tag]`, where the MAC may be `U:<string>` and the
/// tag is a VLAN id (OVS, 802.1Q) or, for IPoIB, a hexadecimal partition key: its meaning
/// depends on the host interface, so it is interpreted by the driver ([`vlan_id`], [`pkey`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MacVlan {
    pub mac: Option<MacAddr>,
    pub tag: Option<String>,
}

impl MacVlan {
    pub fn parse(s: &str) -> Result<Self, Error> {
        // As in the original (`${MACADDR%%@*}`), the MAC is what stands before the first '@'.
        let (mac, tag) = match s.split_once('@') {
            Some((m, v)) => (m, Some(v.split('@').next().unwrap_or(v))),
            None => (s, None),
        };
        let mac = if mac.is_empty() {
            None
        } else if let Some(unique) = mac.strip_prefix("U:") {
            Some(MacAddr::hashed(unique))
        } else {
            Some(mac.parse()?)
        };
        let tag = match tag {
            None => None,
            Some(t) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Some(t.to_string())
            }
            Some(t) => {
                return Err(Error::Invalid(format!(
                    "'@{t}' in '{s}' is not a VLAN id (a number from 1 to 4094) or an IPoIB                      partition key (hexadecimal)"
                )))
            }
        };
        Ok(MacVlan { mac, tag })
    }
}

/// A tag read as an 802.1Q / OVS VLAN id.
pub fn vlan_id(tag: &str) -> Result<u16, Error> {
    tag.parse::<u16>()
        .ok()
        .filter(|v| (1..=4094).contains(v))
        .ok_or_else(|| Error::Invalid(format!("VLAN '{tag}' must be a number from 1 to 4094")))
}

/// A tag read as an IPoIB partition key, hexadecimal as in the original (`pkey 0x$PKEY`).
pub fn pkey(tag: &str) -> Result<u16, Error> {
    u16::from_str_radix(tag, 16)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| {
            Error::Invalid(format!(
                "partition key '{tag}' must be hexadecimal, from 1 to ffff (e.g. @8001)"
            ))
        })
}

/// `--macvlan-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MacvlanMode {
    #[default]
    Bridge,
    Private,
    Vepa,
    Passthru,
}

impl MacvlanMode {
    pub fn parse(s: &str) -> Result<Self, Error> {
        match s {
            "bridge" => Ok(MacvlanMode::Bridge),
            "private" => Ok(MacvlanMode::Private),
            "vepa" => Ok(MacvlanMode::Vepa),
            "passthru" => Ok(MacvlanMode::Passthru),
            _ => Err(Error::Invalid(format!(
                "macvlan mode '{s}' is not one of bridge, private, vepa, passthru"
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachRequest {
    pub host_if: HostIfSpec,
    pub guest: GuestSpec,
    /// `-i`; the driver picks the default (eth1 for Ethernet kinds).
    pub guest_ifname: Option<String>,
    /// `-l`; default `v<IF>pl<PID>` or a hashed short name.
    pub host_ifname: Option<String>,
    pub family: Option<Family>,
    pub addressing: Addressing,
    pub mac: Option<MacAddr>,
    /// `@N` after the MAC: a VLAN (OVS tag, 802.1Q child) or an IPoIB partition key.
    pub tag: Option<String>,
    pub mtu: Option<u32>,
    /// `--direct-phys`: move the interface itself into the guest.
    pub direct_phys: bool,
    /// `--ovs-datapath TYPE` for an Open vSwitch bridge pipework creates (e.g. netdev).
    pub ovs_datapath: Option<String>,
    pub macvlan_mode: MacvlanMode,
    /// `--dhcp-timeout`: how long to wait for a lease.
    pub dhcp_timeout: std::time::Duration,
    /// `--dns-resolv`: write the lease's DNS servers to the guest's resolv.conf.
    pub dns_resolv: bool,
    /// The kind, when the front end says it (CNI) instead of the host interface's name and
    /// type deciding: a missing `cni0` is then a bridge to create.
    pub kind: Option<Kind>,
    /// The CNI bridge plugin's options of a Linux bridge attachment.
    pub bridge: Box<BridgeOptions>,
    /// Leave the guest interface down, without addresses (CNI `disableContainerInterface`).
    pub guest_link_down: bool,
    /// Keep IPv6 duplicate address detection on the guest interface (CNI `enabledad`);
    /// otherwise addresses from a list are usable at once.
    pub dad: bool,
    /// Who the attachment belongs to when a runtime asks (CNI): recorded, and what DEL, CHECK
    /// and GC find it by.
    pub owner: Option<Owner>,
}

/// A CNI runtime's names for an attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub container_id: String,
    pub network: String,
}

/// What the CNI bridge plugin does to the bridge and the port beyond plugging the veth in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeOptions {
    /// Put on the bridge (`isGateway`): the gateway with its subnet's prefix, and IP
    /// forwarding on for its family.
    pub gateways: Vec<IpNet>,
    /// Replace a different address of the same subnet on the bridge (`forceAddress`).
    pub force_address: bool,
    pub hairpin: bool,
    /// The bridge itself promiscuous (`promiscMode`).
    pub promisc: bool,
    /// `portIsolation`: isolated ports do not talk to each other.
    pub isolated: bool,
    /// The port's untagged VLAN (PVID) and its tagged trunk VLANs, with the bridge's VLAN
    /// filtering on; the default VLAN 1 is removed from the port unless `preserve_default_vlan`.
    pub vlan: Option<u16>,
    pub trunk: Vec<u16>,
    pub preserve_default_vlan: bool,
    /// Drop frames from the guest whose source MAC is not its own (`macspoofchk`).
    pub mac_spoof_check: bool,
    /// Masquerade what the guest's addresses send outside their subnets (`ipMasq`).
    pub masquerade: Option<Masquerade>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FirewallBackend {
    Iptables,
    Nftables,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Masquerade {
    pub backend: FirewallBackend,
    /// Names the rules (a chain or table of their own) and is written in their comment: the
    /// network and the container, as the reference plugin does.
    pub network: String,
    pub container_id: String,
}

impl AttachRequest {
    /// Cross-field checks that need no system state.
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(n) = &self.guest_ifname {
            validate_ifname(n, "guest interface (-i)")?;
        }
        if let Some(n) = &self.host_ifname {
            validate_ifname(n, "host interface (-l)")?;
        }
        if let (Some(f), Some(af)) = (self.family, self.addressing.family()) {
            if f != af {
                return Err(Error::Invalid(format!(
                    "-a {} does not match the address family of the address given (IPv{})",
                    if f == Family::V4 { 4 } else { 6 },
                    if af == Family::V4 { 4 } else { 6 }
                )));
            }
        }
        if let Some(mtu) = self.mtu {
            if !(68..=65535).contains(&mtu) {
                return Err(Error::Invalid(format!(
                    "MTU {mtu} is out of range: use 68 to 65535"
                )));
            }
        }
        Ok(())
    }
}

/// `pipework route|rule|tc GUEST ARGS…`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Route,
    Rule,
    Tc,
}

impl Tool {
    pub fn from_word(w: &str) -> Option<Tool> {
        match w {
            "route" => Some(Tool::Route),
            "rule" => Some(Tool::Rule),
            "tc" => Some(Tool::Tc),
            _ => None,
        }
    }

    /// The argv prefix that runs this tool.
    pub fn argv(self) -> &'static [&'static str] {
        match self {
            Tool::Route => &["ip", "route"],
            Tool::Rule => &["ip", "rule"],
            Tool::Tc => &["tc"],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    pub tool: Tool,
    pub guest: GuestSpec,
    pub args: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WaitRequest {
    pub ifname: String,
    pub timeout: Option<std::time::Duration>,
}

/// Which attachments a detach (or a check) is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    All,
    Guest {
        spec: String,
        ifname: Option<String>,
    },
    /// The attachments of a container's earlier lives (its namespace is gone), whatever it is
    /// doing now: what `watch` undoes when a container dies, even if it is already running
    /// again by the time the event is handled.
    DeadContainer {
        id: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Attach(Box<AttachRequest>),
    Exec(ExecRequest),
    Wait(WaitRequest),
    /// `pipework ls [-o wide] [--format F]`: the attachments pipework made (alive or stale)
    /// and their DHCP clients.
    List(ListView),
    /// `pipework detach GUEST [-i IF]` / `pipework detach --all`.
    Detach(Target),
    /// `pipework check [GUEST [-i IF]]`: does each attachment still match its record.
    Check(Target),
    /// `pipework gc [--dry-run]`.
    Gc,
    /// `pipework watch [--rules FILE] [--lab FILE]`.
    Watch {
        rules: Option<std::path::PathBuf>,
        lab: Option<std::path::PathBuf>,
    },
    /// `pipework plan FILE [--host NAME]`.
    LabPlan {
        file: std::path::PathBuf,
        host: Option<String>,
    },
    /// `pipework apply FILE [--host NAME]`.
    LabApply {
        file: std::path::PathBuf,
        host: Option<String>,
    },
    /// `pipework stretch BRIDGE --vni N --remote ADDR…`.
    Stretch {
        bridge: String,
        vni: u32,
        remotes: Vec<std::net::IpAddr>,
        port: u16,
    },
    /// `pipework destroy LAB|FILE`.
    LabDestroy {
        target: String,
    },
    /// `pipework graph FILE --format dot|mermaid|svg`.
    LabGraph {
        file: std::path::PathBuf,
        format: String,
    },
    /// `pipework ls --lab LAB|FILE`.
    LabList {
        target: String,
    },
    /// `pipework doctor`: what this machine can do, and what is missing.
    Doctor,
    /// `pipework completions bash|zsh|fish`.
    Completions {
        shell: String,
    },
    /// `pipework man [DIR]`: pipework(1) on stdout, or every page into DIR.
    Man {
        dir: Option<std::path::PathBuf>,
    },
}

/// How `pipework ls` shows its table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListView {
    /// `-o wide`: every column (MAC, host namespace, record).
    pub wide: bool,
    /// `--format`: `{{.Field}}` placeholders, or a comma-separated field list.
    pub format: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_with_gateway() {
        let a = Addressing::parse("192.168.1.5/24@192.168.1.1").unwrap();
        assert_eq!(
            a,
            Addressing::Static {
                address: "192.168.1.5/24".parse().unwrap(),
                gateway: Some("192.168.1.1".parse().unwrap())
            }
        );
    }

    #[test]
    fn ipv6_address_with_gateway() {
        let a = Addressing::parse("fd00::5/64@fd00::1").unwrap();
        assert_eq!(a.family(), Some(Family::V6));
    }

    #[test]
    fn zero_means_no_address() {
        assert_eq!(Addressing::parse("0/0").unwrap(), Addressing::None);
    }

    #[test]
    fn missing_netmask_suggests_one() {
        let e = Addressing::parse("192.168.1.5").unwrap_err();
        assert!(
            e.to_string().contains("Maybe you meant 192.168.1.5/24?"),
            "{e}"
        );
        assert_eq!(e.exit_code(), 2);
        let e = Addressing::parse("fd00::5").unwrap_err();
        assert!(e.to_string().contains("fd00::5/64?"), "{e}");
    }

    #[test]
    fn malformed_addresses() {
        for (s, want) in [
            ("192.168.1.300/24", "not a valid IPv4 or IPv6"),
            ("192.168.1.5/33", "not a valid prefix length"),
            ("192.168.1.5/x", "not a valid prefix length"),
            ("192.168.1.5/24@192.168.1", "gateway '192.168.1'"),
            ("192.168.1.5/24@fd00::1", "different families"),
            ("192.168.1.5/24@192.168.1.5", "own address"),
            ("0/0@10.0.0.1", "needs an address"),
            ("224.0.0.1/24", "multicast"),
        ] {
            let e = Addressing::parse(s).unwrap_err();
            assert!(e.to_string().contains(want), "{s}: {e}");
        }
    }

    fn dhcp(s: &str) -> DhcpSpec {
        match Addressing::parse(s).unwrap() {
            Addressing::Dhcp(d) => d,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn dhcp_words() {
        let d = dhcp("dhcp");
        assert_eq!(
            (d.client, d.v6, d.keep),
            (DhcpClient::Builtin, false, false)
        );
        assert!(dhcp("dhcp:-f").keep);
        assert!(dhcp("dhcp6").v6);
        assert_eq!(dhcp("slaac").client, DhcpClient::Slaac);
        let d = dhcp("udhcpc-f:-t 3 -T 1");
        assert_eq!((d.client, d.keep), (DhcpClient::Udhcpc, true));
        assert_eq!(d.options, ["-t", "3", "-T", "1"]);
        assert_eq!(dhcp("dhclient").client, DhcpClient::Dhclient);
        assert!(dhcp("dhcpcd-f").keep);
    }

    #[test]
    fn unknown_dhcp_words_list_the_clients() {
        for s in ["dhcpx", "foo", "dhcp-f", "udhcpd"] {
            let e = Addressing::parse(s).unwrap_err();
            assert!(e.to_string().contains("udhcpc, udhcpc-f"), "{s}: {e}");
            assert_eq!(e.exit_code(), 2);
        }
        let e = Addressing::parse("dhcp:-x").unwrap_err();
        assert!(e.to_string().contains("no option '-x'"), "{e}");
    }

    #[test]
    fn addresses_are_not_dhcp_words() {
        assert!(matches!(
            Addressing::parse("fe80::5/64"),
            Ok(Addressing::Static { .. })
        ));
        assert!(matches!(
            Addressing::parse("dead::5/64"),
            Ok(Addressing::Static { .. })
        ));
        assert!(matches!(Addressing::parse("0/0"), Ok(Addressing::None)));
    }

    #[test]
    fn mac_and_vlan() {
        assert_eq!(MacVlan::parse("").unwrap(), MacVlan::default());
        let m = MacVlan::parse("26:2e:71:98:60:8f").unwrap();
        assert_eq!(m.mac.unwrap().to_string(), "26:2e:71:98:60:8f");
        let m = MacVlan::parse("U:myhost.foo.com").unwrap();
        assert_eq!(m.mac.unwrap().to_string(), "02:72:6c:cd:9b:8d");
        let m = MacVlan::parse("@10").unwrap();
        assert_eq!((m.mac, m.tag.as_deref()), (None, Some("10")));
        let m = MacVlan::parse("fa:de:b0:99:52:1c@20").unwrap();
        assert_eq!(m.tag.as_deref(), Some("20"));
        assert!(MacVlan::parse("@").is_err());
        assert!(MacVlan::parse("@1x").is_err());
        assert!(MacVlan::parse("01:00:5e:00:00:01").is_err());
    }

    #[test]
    fn tags_as_vlan_or_pkey() {
        assert_eq!(vlan_id("10").unwrap(), 10);
        assert!(vlan_id("5000")
            .unwrap_err()
            .to_string()
            .contains("1 to 4094"));
        assert!(vlan_id("0").is_err());
        assert!(vlan_id("8001").is_err());
        assert_eq!(pkey("8001").unwrap(), 0x8001);
        assert!(pkey("10000").is_err());
        assert!(pkey("0").is_err());
    }

    #[test]
    fn macvlan_modes() {
        assert_eq!(MacvlanMode::parse("private").unwrap(), MacvlanMode::Private);
        assert!(MacvlanMode::parse("source").is_err());
    }

    #[test]
    fn family_flag() {
        assert_eq!(Family::parse("4").unwrap(), Family::V4);
        assert_eq!(Family::parse("6").unwrap(), Family::V6);
        assert!(Family::parse("5").is_err());
    }
}

/// What kind of attachment a plan makes (the `kind` of `--json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// veth pair, host end on a Linux bridge.
    Bridge,
    /// veth pair, host end a port of an Open vSwitch bridge.
    Ovs,
    /// macvlan child of a host interface, created inside the guest.
    Macvlan,
    /// The host interface itself, moved into the guest (`--direct-phys`).
    Phys,
    /// IPoIB child of an InfiniBand interface, created inside the guest.
    Ipoib,
    /// A dummy interface inside the guest.
    Dummy,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Bridge => "bridge",
            Kind::Ovs => "ovs",
            Kind::Macvlan => "macvlan",
            Kind::Phys => "phys",
            Kind::Ipoib => "ipoib",
            Kind::Dummy => "dummy",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
