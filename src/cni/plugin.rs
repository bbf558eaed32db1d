//! The commands over the engine: ADD plans and applies one attachment through the same
//! `Session`, drivers, journal and records as the CLI; DEL tears it down from its record
//! (never needing the namespace); CHECK compares it with the live state; GC removes what the
//! runtime no longer knows; STATUS says whether an ADD could work now.

use std::collections::HashSet;
use std::io::Read;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use md5::{Digest, Md5};

use super::config::{self, Checked, NetConf};
use super::env::{self, Command, Invocation};
use super::error::{CniError, Code};
use super::ipam;
use super::result::{CniResult, Interface, Ip, Route};
use super::version;
use crate::engine::{records, Session, SessionOptions, Stage2};
use crate::error::Error;
use crate::guest::GuestSpec;
use crate::mac::MacAddr;
use crate::plan::Kind;
use crate::report::AttachReport;
use crate::request::{
    Addressing, AttachRequest, BridgeOptions, DhcpClient, DhcpSpec, HostIfSpec, MacvlanMode,
    Masquerade, Owner, RouteSpec,
};
use crate::store::Record;

/// The most a runtime may send on stdin (a configuration with a prevResult is a few KiB).
pub const MAX_STDIN: usize = 1 << 20;

/// What the process prints and exits with.
pub struct Outcome {
    pub stdout: String,
    pub code: i32,
}

impl Outcome {
    /// A plugin's answer: the result (or nothing) and status 0, else the error object and 1.
    pub fn answer(r: Result<Option<serde_json::Value>, String>) -> Outcome {
        match r {
            Ok(v) => Outcome {
                stdout: v.map(|v| v.to_string()).unwrap_or_default(),
                code: 0,
            },
            Err(error) => Outcome {
                stdout: error,
                code: 1,
            },
        }
    }
}

/// At most `max` bytes of input (a runtime's is a few KiB); `Ok(None)` when there is more.
pub fn read_at_most(r: &mut dyn Read, max: usize) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    r.take(max as u64 + 1).read_to_end(&mut buf)?;
    Ok((buf.len() <= max).then_some(buf))
}

/// Runs one plugin invocation: `get` reads the environment, `stdin` the configuration.
pub fn main(get: &dyn Fn(&str) -> Option<String>, stdin: &mut dyn Read) -> Outcome {
    Outcome::answer(run(get, stdin).map_err(|e| e.to_json()))
}

fn read_stdin(stdin: &mut dyn Read) -> Result<Vec<u8>, CniError> {
    let fail = |code, msg: &str, why: String| CniError::new(version::CURRENT, code, msg, why);
    read_at_most(stdin, MAX_STDIN)
        .map_err(|e| fail(Code::Io, "cannot read the configuration", e.to_string()))?
        .ok_or_else(|| {
            fail(
                Code::Decode,
                "the network configuration is too big",
                format!("more than {MAX_STDIN} bytes on stdin"),
            )
        })
}

/// Everything one command needs, checked before anything changes.
struct Call {
    inv: Invocation,
    /// The configuration as given (what delegated plugins get).
    raw: serde_json::Value,
    checked: Checked,
    version: &'static str,
}

fn run(
    get: &dyn Fn(&str) -> Option<String>,
    stdin: &mut dyn Read,
) -> Result<Option<serde_json::Value>, CniError> {
    let inv = env::parse(get)?;
    let bytes = read_stdin(stdin)?;
    if inv.command == Command::Version {
        let asked = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["cniVersion"].as_str().map(String::from));
        return Ok(Some(
            serde_json::to_value(version::answer(asked.as_deref())).unwrap_or_default(),
        ));
    }
    let conf = config::decode(&bytes)?;
    let version = version::negotiate(conf.cni_version.as_deref())?;
    let raw: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if !raw.is_object() {
        return Err(CniError::new(
            version,
            Code::Decode,
            "the network configuration is not a JSON object",
            "",
        ));
    }
    let env_mac = config::env_args(&inv.args, version)?;
    let checked = config::check(conf, version, env_mac.as_deref())?;
    let call = Call {
        inv,
        raw,
        checked,
        version,
    };
    match call.inv.command {
        Command::Add => add(&call).map(Some),
        Command::Del => del(&call).map(|()| None),
        Command::Check => check(&call).map(|()| None),
        Command::Gc => gc(&call).map(|()| None),
        Command::Status => status(&call).map(|()| None),
        Command::Version => Ok(None),
    }
}

fn engine_err(version: &str) -> impl Fn(Error) -> CniError + '_ {
    move |e| CniError::from_engine(version, &e)
}

fn conf(c: &Call) -> &NetConf {
    &c.checked.conf
}

fn ipam_type(c: &Call) -> Option<&str> {
    conf(c)
        .ipam
        .as_ref()
        .and_then(|i| i.get("type"))
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
}

fn required<'a>(v: &'a Option<String>, var: &str, version: &str) -> Result<&'a str, CniError> {
    v.as_deref().ok_or_else(|| {
        CniError::new(
            version,
            Code::InvalidEnvironment,
            format!("invalid {var}"),
            format!("{var}: is required for this command and is not set"),
        )
    })
}

/// The host end's name: deterministic from the container and interface, so a DEL (or a
/// person) finds it without the record, and never longer than 15 bytes.
pub fn host_ifname(container_id: &str, ifname: &str) -> String {
    let mut h = Md5::new();
    h.update(container_id.as_bytes());
    h.update([0]);
    h.update(ifname.as_bytes());
    let hex: String = h.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("pwc{hex}")
}

/// The `U:`-style MAC of a pod's interface: the same container and interface, the same MAC.
pub fn stable_mac(container_id: &str, ifname: &str) -> MacAddr {
    MacAddr::hashed(&format!("{container_id}/{ifname}"))
}

/// The engine request of an ADD, from the configuration and what IPAM gave.
fn request(c: &Call, ipam: Option<&CniResult>) -> Result<AttachRequest, CniError> {
    let v = c.version;
    let invalid =
        |why: String| CniError::new(v, Code::InvalidConfig, "invalid network configuration", why);
    let id = required(&c.inv.container_id, "CNI_CONTAINERID", v)?;
    let ifname = required(&c.inv.ifname, "CNI_IFNAME", v)?;
    let netns = c.inv.netns.clone().ok_or_else(|| {
        CniError::new(
            v,
            Code::InvalidEnvironment,
            "invalid CNI_NETNS",
            "CNI_NETNS: is required for this command and is not set",
        )
    })?;
    let n = conf(c);
    let keys = n.pipework.clone().unwrap_or_default();
    let kind = match keys.kind.as_deref().unwrap_or("bridge") {
        "bridge" => Kind::Bridge,
        "ovs" => Kind::Ovs,
        "macvlan" => Kind::Macvlan,
        "nic" => Kind::Phys,
        "ipoib" => Kind::Ipoib,
        other => {
            return Err(invalid(format!(
                "pipework.kind {other:?}: must be bridge, ovs, macvlan, nic or ipoib"
            )))
        }
    };
    // The bridge plugin's extras apply to a Linux bridge: silently ignoring one elsewhere
    // would give a pod less than its configuration says.
    if kind != Kind::Bridge {
        let set = [
            ("isGateway", c.checked.is_gateway),
            ("ipMasq", n.ip_masq),
            ("hairpinMode", n.hairpin_mode),
            ("promiscMode", n.promisc_mode),
            ("portIsolation", n.port_isolation),
            ("macspoofchk", n.mac_spoof_chk),
            ("forceAddress", n.force_address),
            ("vlanTrunk", !c.checked.trunk.is_empty()),
            ("vlan", c.checked.vlan.is_some() && kind != Kind::Ovs),
        ];
        if let Some((key, _)) = set.iter().find(|(_, on)| *on) {
            return Err(invalid(format!(
                "{key} applies to the Linux bridge kind only, not to pipework.kind {:?}",
                kind.name()
            )));
        }
    }
    let host_if = match kind {
        Kind::Bridge | Kind::Ovs => n.bridge.clone(),
        _ => keys.master.clone().ok_or_else(|| {
            invalid(format!(
                "pipework.kind {:?} needs pipework.master, the host interface",
                kind.name()
            ))
        })?,
    };
    let host_if = HostIfSpec::parse(&host_if).map_err(|e| invalid(e.to_string()))?;
    let (addressing, dhcp_timeout) = match (&keys.dhcp, ipam) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "pipework.dhcp and ipam are exclusive: pick one way to address the interface"
                    .into(),
            ))
        }
        (Some(d), None) => {
            let t = d.timeout.unwrap_or(10.0);
            if !(t.is_finite() && t > 0.0 && t <= 3600.0) {
                return Err(invalid(format!(
                    "pipework.dhcp.timeout {t}: give a number of seconds from 0 to 3600"
                )));
            }
            (
                Addressing::Dhcp(DhcpSpec {
                    client: DhcpClient::Builtin,
                    v6: d.v6,
                    keep: true,
                    options: Vec::new(),
                }),
                Duration::from_secs_f64(t),
            )
        }
        (None, Some(r)) => (addressing_of(c, r), Duration::from_secs(10)),
        (None, None) => (Addressing::None, Duration::from_secs(10)),
    };
    let mac = match (c.checked.mac, keys.stable_mac) {
        (Some(m), _) => Some(m),
        (None, true) => Some(stable_mac(id, ifname)),
        (None, false) => None,
    };
    let macvlan_mode = keys
        .macvlan_mode
        .as_deref()
        .map(MacvlanMode::parse)
        .transpose()
        .map_err(|e| invalid(e.to_string()))?
        .unwrap_or_default();
    let tag = match kind {
        Kind::Ovs => c.checked.vlan.map(|v| v.to_string()),
        Kind::Ipoib => keys.pkey.clone(),
        _ => None,
    };
    let bridge = Box::new(if kind == Kind::Bridge {
        bridge_options(c, ipam)
    } else {
        BridgeOptions::default()
    });
    let req = AttachRequest {
        host_if,
        guest: GuestSpec::Path(netns),
        guest_ifname: Some(ifname.to_string()),
        host_ifname: matches!(kind, Kind::Bridge | Kind::Ovs).then(|| host_ifname(id, ifname)),
        family: None,
        addressing,
        mac,
        tag,
        mtu: c.checked.mtu,
        direct_phys: kind == Kind::Phys,
        ovs_datapath: keys.ovs_datapath.clone(),
        macvlan_mode,
        dhcp_timeout,
        dns_resolv: false,
        kind: Some(kind),
        bridge,
        guest_link_down: n.disable_container_interface,
        dad: n.enable_dad,
        owner: Some(Owner {
            container_id: id.to_string(),
            network: n.name.clone(),
        }),
    };
    req.validate().map_err(|e| invalid(e.to_string()))?;
    Ok(req)
}

/// The routes of an IPAM result, plus a default route through each family's gateway with
/// `isDefaultGateway` (unless IPAM gave one), as the reference plugin does.
fn routes_of(c: &Call, r: &CniResult) -> Vec<Route> {
    let mut routes = r.routes.clone();
    if conf(c).is_default_gateway {
        for ip in &r.ips {
            let Some(gw) = ip.gateway else { continue };
            let any: IpNet = if gw.is_ipv4() {
                "0.0.0.0/0".parse().expect("literal")
            } else {
                "::/0".parse().expect("literal")
            };
            if !routes.iter().any(|x| x.dst == any) {
                routes.push(Route {
                    dst: any,
                    gw: Some(gw),
                    mtu: None,
                    priority: None,
                    table: None,
                });
            }
        }
    }
    routes
}

fn addressing_of(c: &Call, r: &CniResult) -> Addressing {
    let routes = routes_of(c, r)
        .into_iter()
        .map(|x| RouteSpec {
            dst: x.dst,
            // A route without a gateway goes through its family's gateway, as the
            // reference's ConfigureIface does; on-link when there is none.
            via: x.gw.or_else(|| {
                r.ips
                    .iter()
                    .find(|ip| ip.address.addr().is_ipv4() == x.dst.addr().is_ipv4())
                    .and_then(|ip| ip.gateway)
            }),
        })
        .collect();
    Addressing::List {
        addresses: r.ips.iter().map(|ip| ip.address).collect(),
        routes,
    }
}

fn bridge_options(c: &Call, ipam: Option<&CniResult>) -> BridgeOptions {
    let n = conf(c);
    let mut o = BridgeOptions {
        force_address: n.force_address,
        hairpin: n.hairpin_mode,
        promisc: n.promisc_mode,
        isolated: n.port_isolation,
        vlan: c.checked.vlan,
        trunk: c.checked.trunk.clone(),
        preserve_default_vlan: n.preserve_default_vlan,
        mac_spoof_check: n.mac_spoof_chk,
        ..BridgeOptions::default()
    };
    if let Some(r) = ipam {
        if c.checked.is_gateway {
            for ip in &r.ips {
                if let Some(gw) = ip.gateway {
                    if let Ok(net) = IpNet::new(gw, ip.address.prefix_len()) {
                        if !o.gateways.contains(&net) {
                            o.gateways.push(net);
                        }
                    }
                }
            }
        }
        if n.ip_masq {
            o.masquerade = Some(Masquerade {
                backend: match n.ip_masq_backend.as_deref() {
                    Some("nftables") => crate::request::FirewallBackend::Nftables,
                    Some(_) => crate::request::FirewallBackend::Iptables,
                    None => crate::firewall::default_backend(),
                },
                network: n.name.clone(),
                container_id: c.inv.container_id.clone().unwrap_or_default(),
            });
        }
    }
    o
}

fn session(version: &str) -> Result<Session, CniError> {
    Session::open(SessionOptions::default()).map_err(engine_err(version))
}

/// The CNI result of an attach: [bridge, host end, container interface] for veth kinds,
/// [container interface] otherwise; every MAC filled in.
fn result_of(
    c: &Call,
    rep: &AttachReport,
    ipam: Option<&CniResult>,
    host: &mut Session,
) -> CniResult {
    let mut interfaces = Vec::new();
    let veth = matches!(rep.kind, Kind::Bridge | Kind::Ovs);
    if veth {
        interfaces.push(Interface {
            name: rep.host_interface.clone(),
            mac: host_mac(host, &rep.host_interface),
            mtu: None,
            sandbox: String::new(),
        });
        if let Some(h) = &rep.host_ifname {
            interfaces.push(Interface {
                name: h.clone(),
                mac: host_mac(host, h),
                mtu: None,
                sandbox: String::new(),
            });
        }
    }
    let me = interfaces.len();
    interfaces.push(Interface {
        name: rep.guest_ifname.clone(),
        mac: rep.mac.map(|m| m.to_string()).unwrap_or_default(),
        mtu: rep.mtu,
        sandbox: c
            .inv
            .netns
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    });
    let mut out = CniResult {
        interfaces,
        ..CniResult::default()
    };
    match ipam {
        Some(r) => {
            out.ips = r
                .ips
                .iter()
                .map(|ip| Ip {
                    interface: Some(me),
                    ..ip.clone()
                })
                .collect();
            out.routes = routes_of(c, r);
            out.dns = r.dns.clone();
        }
        None => {
            // The built-in DHCP client's lease (or nothing).
            out.ips = rep
                .addresses
                .iter()
                .filter_map(|a| a.parse::<IpNet>().ok())
                .map(|address| Ip {
                    gateway: rep
                        .gateway
                        .filter(|g| g.is_ipv4() == address.addr().is_ipv4()),
                    address,
                    interface: Some(me),
                })
                .collect();
            if let Some(gw) = rep.gateway {
                out.routes.push(Route {
                    dst: if gw.is_ipv4() {
                        "0.0.0.0/0".parse().expect("literal")
                    } else {
                        "::/0".parse().expect("literal")
                    },
                    gw: Some(gw),
                    mtu: None,
                    priority: None,
                    table: None,
                });
            }
            if let Some(d) = &rep.dhcp {
                out.dns.nameservers = d.dns.iter().map(IpAddr::to_string).collect();
            }
        }
    }
    if out.dns == Default::default() {
        if let Some(d) = conf(c).dns.clone() {
            out.dns = serde_json::from_value(d).unwrap_or_default();
        }
    }
    out
}

fn host_mac(s: &mut Session, name: &str) -> String {
    s.host_link_mac(name)
        .map(|m| m.to_string())
        .unwrap_or_default()
}

/// IPAM plugins that need the container's interface to exist (the reference `dhcp`, whose
/// daemon talks DHCP through it): the link first, then IPAM, then the addresses.
const IPAM_AFTER_LINK: &[&str] = &["dhcp"];

fn add(c: &Call) -> Result<serde_json::Value, CniError> {
    let v = c.version;
    if let Some(kind) = ipam_type(c).filter(|k| IPAM_AFTER_LINK.contains(k)) {
        return add_staged(c, kind);
    }
    let ipam = match ipam_type(c) {
        Some(kind) => {
            let (out, theirs) = ipam::delegate(kind, Command::Add, &c.inv, &c.raw, v)?;
            Some(CniResult::decode(&out, &theirs)?)
        }
        None => None,
    };
    // From here on, a failure gives the addresses back.
    let undo_ipam = |e: CniError| {
        if let Some(kind) = ipam_type(c) {
            let _ = ipam::delegate(kind, Command::Del, &c.inv, &c.raw, v);
        }
        e
    };
    let req = request(c, ipam.as_ref()).map_err(undo_ipam)?;
    let mut s = session(v).map_err(undo_ipam)?;
    let rep = s
        .attach(&req, false)
        .map_err(|e| undo_ipam(CniError::from_engine(v, &e)))?;
    let result = result_of(c, &rep, ipam.as_ref(), &mut s);
    Ok(result.render(v))
}

fn add_staged(c: &Call, kind: &str) -> Result<serde_json::Value, CniError> {
    let v = c.version;
    let req = request(c, Some(&CniResult::default()))?;
    let mut s = session(v)?;
    let mut got: Option<CniResult> = None;
    let mut ipam_error: Option<CniError> = None;
    let rep = s.attach_staged(&req, &mut || {
        let r = ipam::delegate(kind, Command::Add, &c.inv, &c.raw, v)
            .and_then(|(out, theirs)| CniResult::decode(&out, &theirs));
        match r {
            Ok(r) => {
                let stage = Stage2 {
                    addressing: addressing_of(c, &r),
                    bridge: bridge_options(c, Some(&r)),
                };
                got = Some(r);
                Ok(stage)
            }
            Err(e) => {
                let what = Error::Engine(format!("IPAM plugin {kind}: {}", e.msg));
                ipam_error = Some(e);
                Err(what)
            }
        }
    });
    match rep {
        Ok(rep) => Ok(result_of(c, &rep, got.as_ref(), &mut s).render(v)),
        Err(e) => {
            if got.is_some() {
                let _ = ipam::delegate(kind, Command::Del, &c.inv, &c.raw, v);
            }
            Err(ipam_error.unwrap_or_else(|| CniError::from_engine(v, &e)))
        }
    }
}

/// This network's records of the container's interface.
fn records_of(c: &Call, id: &str, ifname: &str) -> Vec<Record> {
    let owner = Owner {
        container_id: id.to_string(),
        network: conf(c).name.clone(),
    };
    records::find_by_owner(&owner, ifname)
}

fn del(c: &Call) -> Result<(), CniError> {
    let v = c.version;
    let id = required(&c.inv.container_id, "CNI_CONTAINERID", v)?;
    let ifname = required(&c.inv.ifname, "CNI_IFNAME", v)?;
    let found = records_of(c, id, ifname);
    let ipam = ipam_type(c);
    // A lease is released through the interface it was taken on: before it goes.
    let release_first = ipam.is_some_and(|k| IPAM_AFTER_LINK.contains(&k));
    if let (Some(kind), true) = (ipam, release_first) {
        ipam::delegate(kind, Command::Del, &c.inv, &c.raw, v)?;
    }
    if !found.is_empty() {
        let mut s = session(v)?;
        s.remove(&found).map_err(engine_err(v))?;
    }
    if let (Some(kind), false) = (ipam, release_first) {
        ipam::delegate(kind, Command::Del, &c.inv, &c.raw, v)?;
    }
    Ok(())
}

fn check(c: &Call) -> Result<(), CniError> {
    let v = c.version;
    let id = required(&c.inv.container_id, "CNI_CONTAINERID", v)?;
    let ifname = required(&c.inv.ifname, "CNI_IFNAME", v)?;
    let prev = match &conf(c).prev_result {
        Some(p) => CniResult::decode(p.to_string().as_bytes(), v)?,
        None => {
            return Err(CniError::new(
                v,
                Code::InvalidConfig,
                "CHECK needs prevResult",
                "the runtime gave no prevResult to check against",
            ))
        }
    };
    let found = records_of(c, id, ifname);
    let Some(r) = found.first() else {
        return Err(CniError::new(
            v,
            Code::UnknownContainer,
            format!(
                "no attachment of container {id} interface {ifname} on network {}",
                conf(c).name
            ),
            "pipework has no record of it: was it added by this plugin?",
        ));
    };
    let mut s = session(v)?;
    let checked = s.check_one(r).map_err(engine_err(v))?;
    let mut problems = checked.differences.clone();
    if checked.state != "ok" && problems.is_empty() {
        problems.push(format!("the attachment is {}", checked.state));
    }
    let shown = r.shown();
    if let Some(me) = prev
        .interfaces
        .iter()
        .find(|i| i.name == ifname && !i.sandbox.is_empty())
    {
        if let Some(m) = &shown.mac {
            if !me.mac.is_empty() && !me.mac.eq_ignore_ascii_case(m) {
                problems.push(format!("{ifname} has MAC {m}, prevResult says {}", me.mac));
            }
        }
    }
    for ip in &prev.ips {
        if !shown.addresses.iter().any(|a| a == &ip.address.to_string()) {
            problems.push(format!(
                "{ifname} was not given {} (it has {})",
                ip.address,
                shown.addresses.join(", ")
            ));
        }
    }
    if !problems.is_empty() {
        return Err(CniError::new(
            v,
            Code::Kernel,
            format!("container {id} interface {ifname} does not match its result"),
            problems.join("; "),
        ));
    }
    if let Some(kind) = ipam_type(c) {
        ipam::delegate(kind, Command::Check, &c.inv, &c.raw, v)?;
    }
    Ok(())
}

/// `cni.dev/valid-attachments` (else `cni.dev/attachments`): the (container, ifname) pairs
/// still in use; a missing list means none.
fn valid_attachments(raw: &serde_json::Value) -> HashSet<(String, String)> {
    let list = raw
        .get("cni.dev/valid-attachments")
        .or_else(|| raw.get("cni.dev/attachments"));
    list.and_then(|l| l.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| {
                    Some((
                        x.get("containerID")?.as_str()?.to_string(),
                        x.get("ifname")?.as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn gc(c: &Call) -> Result<(), CniError> {
    let v = c.version;
    let valid = valid_attachments(&c.raw);
    let name = &conf(c).name;
    let stale: Vec<Record> = crate::store::scan()
        .records
        .into_iter()
        .filter(|r| crate::store::owner_of(r).is_some_and(|o| o.network == *name))
        // An ADD still running holds its record: not for GC to take from under it.
        .filter(|r| r.complete() || !crate::store::being_written(r))
        .filter(|r| {
            let id = r.header.guest.id.clone().unwrap_or_default();
            !valid.contains(&(id, r.header.ifname.clone()))
        })
        .collect();
    if !stale.is_empty() {
        let mut s = session(v)?;
        s.remove(&stale).map_err(engine_err(v))?;
    }
    if let Some(kind) = ipam_type(c) {
        match ipam::delegate(kind, Command::Gc, &c.inv, &c.raw, v) {
            Ok(_) => {}
            // An IPAM plugin older than 1.1.0 has no GC: host-local's reservations are files
            // pipework can read, so it releases the stale ones itself.
            Err(e) if kind == "host-local" && e.code == Code::IncompatibleVersion as u32 => {
                host_local_gc(c, &valid)?
            }
            Err(e) if e.code == Code::IncompatibleVersion as u32 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// host-local keeps one file per reserved address in `dataDir/NETWORK/`, holding
/// `CONTAINERID\r\nIFNAME` (or only the ID, from older versions).
fn host_local_gc(c: &Call, valid: &HashSet<(String, String)>) -> Result<(), CniError> {
    let v = c.version;
    let dir = c.raw["ipam"]["dataDir"]
        .as_str()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/cni/networks"))
        .join(&conf(c).name);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        // Only reservation files: named by an address, regular, small.
        if name.parse::<IpAddr>().is_err() {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
            continue;
        };
        if !meta.is_file() || meta.len() > 4096 {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        let mut lines = text.split("\r\n").map(str::trim);
        let id = lines.next().unwrap_or_default().to_string();
        let ifname = lines.next().unwrap_or_default().to_string();
        let in_use = valid
            .iter()
            .any(|(vid, vif)| *vid == id && (ifname.is_empty() || *vif == ifname));
        if !in_use {
            std::fs::remove_file(e.path()).map_err(|err| {
                CniError::new(
                    v,
                    Code::Io,
                    format!("cannot release {name} in {}", dir.display()),
                    err.to_string(),
                )
            })?;
        }
    }
    Ok(())
}

fn status(c: &Call) -> Result<(), CniError> {
    let v = c.version;
    crate::privilege::require_admin().map_err(|e| {
        CniError::new(
            v,
            Code::NotAvailable,
            "pipework cannot create interfaces here",
            e.to_string(),
        )
    })?;
    let mut s = session(v)?;
    if let Some(problem) = s.host_interface_problem(&conf(c).bridge) {
        return Err(CniError::new(
            v,
            Code::NotAvailable,
            format!("bridge {} cannot be used", conf(c).bridge),
            problem,
        ));
    }
    if let Some(kind) = ipam_type(c) {
        let plugin = ipam::find(kind, &c.inv.path, v)
            .map_err(|e| CniError::new(v, Code::NotAvailable, e.msg, e.details))?;
        match ipam::delegate(kind, Command::Status, &c.inv, &c.raw, v) {
            Ok(_) => {}
            // Older than 1.1.0: no STATUS; it is there and runs (it answered VERSION).
            Err(e) if e.code == Code::IncompatibleVersion as u32 => {}
            Err(e) => {
                return Err(CniError::new(
                    v,
                    Code::NotAvailable,
                    format!("IPAM plugin {} is not ready", plugin.display()),
                    format!("{} ({})", e.msg, e.details),
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Root-free: the configuration and an IPAM result become the engine request.
    use super::*;

    fn call(conf: serde_json::Value, args: &str) -> Call {
        let get = |k: &str| -> Option<String> {
            match k {
                "CNI_COMMAND" => Some("ADD".into()),
                "CNI_CONTAINERID" => Some("c1".into()),
                "CNI_NETNS" => Some("/run/netns/x".into()),
                "CNI_IFNAME" => Some("eth0".into()),
                "CNI_PATH" => Some("/usr/lib/cni".into()),
                "CNI_ARGS" => Some(args.into()),
                _ => None,
            }
        };
        let inv = env::parse(&get).unwrap();
        let bytes = conf.to_string();
        let n = config::decode(bytes.as_bytes()).unwrap();
        let version = version::negotiate(n.cni_version.as_deref()).unwrap();
        let mac = config::env_args(&inv.args, version).unwrap();
        Call {
            inv,
            raw: conf,
            checked: config::check(n, version, mac.as_deref()).unwrap(),
            version,
        }
    }

    fn ipam() -> CniResult {
        CniResult::decode(
            br#"{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.5/24","gateway":"10.1.0.1"},
                {"address":"fd00::5/64","gateway":"fd00::1"}],
                "routes":[{"dst":"192.168.0.0/16"}]}"#,
            "1.0.0",
        )
        .unwrap()
    }

    #[test]
    fn a_bridge_config_becomes_one_bridge_request() {
        let c = call(
            serde_json::json!({"cniVersion":"1.1.0","name":"n1","type":"pipework",
                "isDefaultGateway":true,"ipMasq":true,"ipMasqBackend":"nftables",
                "hairpinMode":true,"mtu":1400}),
            "IgnoreUnknown=1;MAC=02:00:00:00:00:09",
        );
        let r = request(&c, Some(&ipam())).unwrap();
        assert_eq!(r.kind, Some(Kind::Bridge));
        assert_eq!(r.host_if, HostIfSpec::Name("cni0".into()));
        assert_eq!(r.guest_ifname.as_deref(), Some("eth0"));
        assert_eq!(r.host_ifname, Some(host_ifname("c1", "eth0")));
        assert!(r.host_ifname.as_ref().unwrap().len() <= 15);
        assert_eq!(r.mac, Some("02:00:00:00:00:09".parse().unwrap()));
        assert_eq!(r.mtu, Some(1400));
        let Addressing::List { addresses, routes } = &r.addressing else {
            panic!("{:?}", r.addressing)
        };
        assert_eq!(addresses.len(), 2);
        // IPAM's route without a gateway goes through its family's; then the default routes
        // of isDefaultGateway, one per family.
        let via: Vec<(String, Option<String>)> = routes
            .iter()
            .map(|x| (x.dst.to_string(), x.via.map(|v| v.to_string())))
            .collect();
        assert_eq!(
            via,
            vec![
                ("192.168.0.0/16".into(), Some("10.1.0.1".into())),
                ("0.0.0.0/0".into(), Some("10.1.0.1".into())),
                ("::/0".into(), Some("fd00::1".into())),
            ]
        );
        let b = &r.bridge;
        let gws: Vec<String> = b.gateways.iter().map(|g| g.to_string()).collect();
        assert_eq!(gws, vec!["10.1.0.1/24", "fd00::1/64"]);
        assert!(b.hairpin && !b.promisc);
        let m = b.masquerade.as_ref().unwrap();
        assert_eq!(m.backend, crate::request::FirewallBackend::Nftables);
        assert_eq!(m.network, "n1");
        assert_eq!(
            r.owner,
            Some(Owner {
                container_id: "c1".into(),
                network: "n1".into()
            })
        );
    }

    #[test]
    fn pipework_keys_pick_the_kind_and_the_address_source() {
        let c = call(
            serde_json::json!({"cniVersion":"1.0.0","name":"n1","type":"pipework",
                "pipework":{"kind":"macvlan","master":"eth1","macvlanMode":"vepa","stableMac":true}}),
            "",
        );
        let r = request(&c, Some(&ipam())).unwrap();
        assert_eq!(r.kind, Some(Kind::Macvlan));
        assert_eq!(r.host_if, HostIfSpec::Name("eth1".into()));
        assert_eq!(r.macvlan_mode, MacvlanMode::Vepa);
        assert_eq!(r.mac, Some(stable_mac("c1", "eth0")));
        assert_eq!(r.host_ifname, None, "nothing host-side to name");
        assert_eq!(*r.bridge, BridgeOptions::default());
        let c = call(
            serde_json::json!({"cniVersion":"1.0.0","name":"n1","type":"pipework",
                "pipework":{"dhcp":{"v6":true,"timeout":3}}}),
            "",
        );
        let r = request(&c, None).unwrap();
        assert!(matches!(&r.addressing, Addressing::Dhcp(d) if d.v6 && d.keep));
        assert_eq!(r.dhcp_timeout, Duration::from_secs(3));
        // Both ways at once, a kind without its master, a bad timeout, bridge-only keys: 7.
        let both = ipam();
        for (conf, from_ipam) in [
            (serde_json::json!({"pipework":{"dhcp":{}}}), Some(&both)),
            (serde_json::json!({"pipework":{"kind":"nic"}}), None),
            (
                serde_json::json!({"pipework":{"dhcp":{"timeout":-1}}}),
                None,
            ),
            // The bridge plugin's extras on another kind.
            (
                serde_json::json!({"ipMasq":true,"pipework":{"kind":"ovs"}}),
                Some(&both),
            ),
            (
                serde_json::json!({"vlan":3,"pipework":{"kind":"macvlan","master":"e"}}),
                None,
            ),
        ] {
            let mut conf = conf;
            conf["cniVersion"] = "1.0.0".into();
            conf["name"] = "n".into();
            let e = request(&call(conf.clone(), ""), from_ipam).unwrap_err();
            assert_eq!(e.code, Code::InvalidConfig as u32, "{conf}: {e:?}");
        }
    }

    #[test]
    fn host_names_and_stable_macs_are_deterministic() {
        assert_eq!(host_ifname("c1", "eth0"), host_ifname("c1", "eth0"));
        assert_ne!(host_ifname("c1", "eth0"), host_ifname("c1", "eth1"));
        assert_ne!(host_ifname("c1", "eth0"), host_ifname("c2", "eth0"));
        assert_eq!(stable_mac("c1", "eth0"), stable_mac("c1", "eth0"));
        assert_eq!(
            stable_mac("c1", "eth0").0[0],
            0x02,
            "locally administered unicast"
        );
    }

    #[test]
    fn gc_lists_and_their_fallback() {
        let v = serde_json::json!({"cni.dev/attachments":[{"containerID":"a","ifname":"eth0"}]});
        assert_eq!(valid_attachments(&v).len(), 1);
        let v = serde_json::json!({
            "cni.dev/valid-attachments":[{"containerID":"b","ifname":"eth0"}],
            "cni.dev/attachments":[{"containerID":"a","ifname":"eth0"}]});
        assert!(valid_attachments(&v).contains(&("b".into(), "eth0".into())));
        assert!(valid_attachments(&serde_json::json!({})).is_empty());
        // Entries of the wrong shape are skipped, not fatal.
        let v = serde_json::json!({"cni.dev/valid-attachments":[1,{"containerID":2}]});
        assert!(valid_attachments(&v).is_empty());
    }
}
