//! The JSON of netavark's plugin API (containers/netavark plugin-API.md, `src/network/types.rs`):
//! the network configuration (`create`'s input and output), the setup/teardown input, the
//! status block, the info object and the error object. Pure: parsing, checking and rendering
//! only, no system calls.
//!
//! Fields pipework does not know are kept (`extra`), so `create` gives podman back everything
//! it sent.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The plugin API version netavark speaks (the only one so far).
pub const API_VERSION: &str = "1.0.0";

/// The most netavark may send on stdin: a network and a container's options are a few KiB.
pub const MAX_STDIN: usize = 1 << 20;

/// A network, as podman stores it and netavark passes it on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    pub id: String,
    pub driver: String,
    /// The host interface: for pipework, the Linux bridge the containers are plugged into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_interface: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnets: Option<Vec<Subnet>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<Vec<NetRoute>>,
    #[serde(default)]
    pub ipv6_enabled: bool,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub dns_enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam_options: Option<BTreeMap<String, String>>,
    /// Everything else podman sent (created, labels, network_dns_servers, …), given back as is.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subnet {
    pub subnet: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_range: Option<Value>,
}

/// A static route of the network, put in every container's namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetRoute {
    pub destination: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_type: Option<String>,
}

/// What `setup` and `teardown` get on stdin (netavark's `NetworkPluginExec`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PluginExec {
    pub container_id: String,
    #[serde(default)]
    pub container_name: String,
    pub network: Network,
    pub network_options: PerNetworkOptions,
}

/// The container's options on this network.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PerNetworkOptions {
    pub interface_name: String,
    #[serde(default)]
    pub static_ips: Option<Vec<IpAddr>>,
    #[serde(default)]
    pub static_mac: Option<String>,
    #[serde(default)]
    pub aliases: Option<Vec<String>>,
    #[serde(default)]
    pub options: Option<BTreeMap<String, String>>,
}

/// `setup`'s answer: what podman shows in `podman inspect`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusBlock {
    pub dns_search_domains: Vec<String>,
    pub dns_server_ips: Vec<IpAddr>,
    pub interfaces: BTreeMap<String, NetInterface>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetInterface {
    pub mac_address: String,
    pub subnets: Vec<NetAddress>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetAddress {
    pub ipnet: IpNet,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
}

/// `info`'s answer: the plugin's version and the API version, plus extra string fields.
pub fn info() -> Value {
    serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "api_version": API_VERSION,
        "name": "pipework",
        "description": "pipework: containers on a Linux bridge, leak-free (https://github.com/jpetazzo/pipework)",
    })
}

/// The plugin API's error object.
pub fn error_json(msg: &str) -> String {
    serde_json::json!({ "error": msg }).to_string()
}

/// Decodes `what` (a JSON object) from stdin's bytes, with the field at fault in the message.
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(format!("no {what} on stdin: netavark sends it as JSON"));
    }
    serde_json::from_slice(bytes).map_err(|e| format!("cannot decode the {what} on stdin: {e}"))
}

/// The network's options pipework understands (`podman network create -o KEY=VALUE`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `bridge`: the Linux bridge's name (also accepted as `--interface-name`).
    pub bridge: Option<String>,
    /// `mtu`: of the container interface and its host end.
    pub mtu: Option<u32>,
    /// `hairpin`: the port sends frames back where they came from.
    pub hairpin: bool,
    /// `isolate`: containers of this network do not talk to each other (port isolation).
    pub isolate: bool,
    /// `stable_mac`: a MAC derived from the container and interface when podman gives none.
    pub stable_mac: bool,
}

pub const OPTION_KEYS: &[&str] = &["bridge", "mtu", "hairpin", "isolate", "stable_mac"];

fn boolean(key: &str, v: &str) -> Result<bool, String> {
    match v {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(format!("option {key}={v:?}: give true or false")),
    }
}

impl Options {
    pub fn parse(opts: Option<&BTreeMap<String, String>>) -> Result<Options, String> {
        let mut o = Options::default();
        for (k, v) in opts.into_iter().flatten() {
            match k.as_str() {
                "bridge" => o.bridge = Some(v.clone()),
                "mtu" => {
                    let m: u32 = v
                        .parse()
                        .ok()
                        .filter(|m| (68..=65535).contains(m))
                        .ok_or_else(|| {
                            format!("option mtu={v:?}: give a number from 68 to 65535")
                        })?;
                    o.mtu = Some(m);
                }
                "hairpin" => o.hairpin = boolean(k, v)?,
                "isolate" => o.isolate = boolean(k, v)?,
                "stable_mac" => o.stable_mac = boolean(k, v)?,
                other => {
                    return Err(format!(
                        "unknown option {other:?}: pipework knows {}",
                        OPTION_KEYS.join(", ")
                    ))
                }
            }
        }
        Ok(o)
    }
}

/// A Linux interface name: 1–15 bytes, not `.`/`..`, no `/`, `:` or whitespace.
pub fn check_ifname(name: &str, what: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 15
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "{what} {name:?} is not a valid interface name (1 to 15 bytes, not . or .., no /, : or spaces)"
        ));
    }
    Ok(())
}

/// The bridge of a network pipework created (or validated): `network_interface`.
pub fn bridge_of(n: &Network) -> Result<&str, String> {
    n.network_interface.as_deref().ok_or_else(|| {
        format!(
            "network {:?} has no network_interface (its bridge): was it created with this plugin?",
            n.name
        )
    })
}

/// The default bridge name of a network: `pw` and 11 hex digits of its ID (or of its name).
fn default_bridge(n: &Network) -> String {
    use md5::{Digest, Md5};
    let hex: String = if n.id.len() >= 11 && n.id.bytes().all(|b| b.is_ascii_hexdigit()) {
        n.id[..11].to_ascii_lowercase()
    } else {
        let mut h = Md5::new();
        h.update(n.id.as_bytes());
        h.update([0]);
        h.update(n.name.as_bytes());
        h.finalize()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()[..11]
            .to_string()
    };
    format!("pw{hex}")
}

/// `create`: checks a network configuration and fills its defaults. The name, ID and driver
/// are never changed.
pub fn create(mut n: Network) -> Result<Network, String> {
    if n.name.is_empty() {
        return Err("the network has no name".into());
    }
    let opts = Options::parse(n.options.as_ref())?;
    let bridge = match (opts.bridge.as_deref(), n.network_interface.as_deref()) {
        (Some(a), Some(b)) if a != b => {
            return Err(format!(
                "option bridge={a:?} and network_interface {b:?} disagree: give one"
            ))
        }
        (Some(a), _) => a.to_string(),
        (None, Some(b)) => b.to_string(),
        (None, None) => default_bridge(&n),
    };
    check_ifname(&bridge, "bridge")?;
    n.network_interface = Some(bridge);
    match n
        .ipam_options
        .as_ref()
        .and_then(|o| o.get("driver"))
        .map(String::as_str)
    {
        None | Some("host-local") | Some("none") | Some("") => {}
        Some(other) => {
            return Err(format!(
                "ipam driver {other:?} is not supported: use host-local (podman allocates the addresses) or none"
            ))
        }
    }
    let mut subnets = n.subnets.take().unwrap_or_default();
    for s in subnets.iter_mut() {
        let net = s.subnet.trunc();
        if net != s.subnet {
            return Err(format!(
                "subnet {}: host bits are set, did you mean {net}?",
                s.subnet
            ));
        }
        match s.gateway {
            Some(g) => {
                if !net.contains(&g) {
                    return Err(format!("gateway {g} is not in subnet {net}"));
                }
                if g == net.network() && net.prefix_len() < net.max_prefix_len() - 1 {
                    return Err(format!(
                        "gateway {g} is the network address of subnet {net}"
                    ));
                }
            }
            None if !n.internal => {
                s.gateway = first_host(&net);
            }
            None => {}
        }
    }
    for (i, a) in subnets.iter().enumerate() {
        for b in &subnets[i + 1..] {
            if a.subnet.contains(&b.subnet.network()) || b.subnet.contains(&a.subnet.network()) {
                return Err(format!("subnets {} and {} overlap", a.subnet, b.subnet));
            }
        }
    }
    if subnets.iter().any(|s| s.subnet.addr().is_ipv6()) {
        n.ipv6_enabled = true;
    }
    n.subnets = (!subnets.is_empty()).then_some(subnets);
    for r in n.routes.iter().flatten() {
        if r.route_type.as_deref().is_some_and(|t| t != "unicast") {
            return Err(format!(
                "route to {}: type {:?} is not supported (only unicast)",
                r.destination,
                r.route_type.as_deref().unwrap_or_default()
            ));
        }
        if r.metric.is_some() {
            return Err(format!(
                "route to {}: metric is not supported by pipework",
                r.destination
            ));
        }
        if r.gateway.is_none() {
            return Err(format!("route to {}: a gateway is required", r.destination));
        }
    }
    // Podman allocates the static IPs of host-local networks; without subnets there is
    // nothing to allocate.
    let has_subnets = n.subnets.is_some();
    let ipam = n.ipam_options.get_or_insert_with(BTreeMap::new);
    if ipam.get("driver").is_none_or(|d| d.is_empty()) {
        let d = if has_subnets { "host-local" } else { "none" };
        ipam.insert("driver".into(), d.into());
    }
    // pipework runs no DNS server for the network.
    if n.extra
        .get("network_dns_servers")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        return Err(
            "network_dns_servers: pipework runs no DNS server for the network (leave --dns out)"
                .into(),
        );
    }
    n.dns_enabled = false;
    Ok(n)
}

/// The first usable address of a subnet (the gateway default, as netavark's bridge driver).
pub fn first_host(net: &IpNet) -> Option<IpAddr> {
    match net {
        IpNet::V4(n) if n.prefix_len() <= 30 => {
            Some(IpAddr::V4((u32::from(n.network()) + 1).into()))
        }
        IpNet::V6(n) if n.prefix_len() <= 126 => {
            Some(IpAddr::V6((u128::from(n.network()) + 1).into()))
        }
        _ => None,
    }
}

/// The static IPs with the prefix of the subnet each belongs to; an IP outside every subnet is
/// an error.
pub fn addresses_of(n: &Network, ips: &[IpAddr]) -> Result<Vec<(IpNet, Option<IpAddr>)>, String> {
    let subnets = n.subnets.as_deref().unwrap_or_default();
    ips.iter()
        .map(|ip| {
            let s = subnets
                .iter()
                .find(|s| s.subnet.contains(ip))
                .ok_or_else(|| {
                    format!(
                        "static IP {ip} is in none of network {:?}'s subnets ({})",
                        n.name,
                        subnets
                            .iter()
                            .map(|s| s.subnet.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?;
            let net = IpNet::new(*ip, s.subnet.prefix_len()).map_err(|e| e.to_string())?;
            let gw = if n.internal { None } else { s.gateway };
            Ok((net, gw))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(json: &str) -> Network {
        serde_json::from_str(json).unwrap()
    }

    const BASIC: &str = r#"{"name":"n1","id":"2f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9",
        "driver":"pipework-netavark","subnets":[{"subnet":"10.0.0.0/16"}],"ipv6_enabled":false,
        "internal":false,"dns_enabled":true,"ipam_options":{"driver":"host-local"},
        "created":"2024-01-01T00:00:00Z","labels":{"a":"b"}}"#;

    #[test]
    fn create_fills_defaults_and_keeps_unknown_fields() {
        let out = create(net(BASIC)).unwrap();
        assert_eq!(out.network_interface.as_deref(), Some("pw2f259bab93a"));
        let s = &out.subnets.as_ref().unwrap()[0];
        assert_eq!(s.gateway, Some("10.0.0.1".parse().unwrap()));
        assert!(!out.dns_enabled);
        let v = serde_json::to_value(&out).unwrap();
        assert_eq!(v["created"], "2024-01-01T00:00:00Z");
        assert_eq!(v["labels"]["a"], "b");
        assert_eq!(v["name"], "n1");
        assert_eq!(v["driver"], "pipework-netavark");
        assert_eq!(v["subnets"][0]["gateway"], "10.0.0.1");
        assert_eq!(v["ipam_options"]["driver"], "host-local");
        let n = net(r#"{"name":"n","id":"i","driver":"d"}"#);
        let out = create(n).unwrap();
        assert_eq!(out.ipam_options.unwrap()["driver"], "none");
        assert_eq!(out.subnets, None);
    }

    #[test]
    fn create_bridge_option_and_interface() {
        let mut n = net(BASIC);
        n.options = Some([("bridge".to_string(), "br-x".to_string())].into());
        assert_eq!(
            create(n.clone()).unwrap().network_interface.as_deref(),
            Some("br-x")
        );
        n.network_interface = Some("br-y".into());
        assert!(create(n.clone()).unwrap_err().contains("disagree"));
        n.options = None;
        assert_eq!(
            create(n).unwrap().network_interface.as_deref(),
            Some("br-y")
        );
    }

    #[test]
    fn create_default_bridge_without_hex_id() {
        let mut n = net(BASIC);
        n.id = "x".into();
        let b = create(n).unwrap().network_interface.unwrap();
        assert!(b.starts_with("pw") && b.len() == 13, "{b}");
    }

    #[test]
    fn create_rejects_bad_values() {
        let cases: &[(&str, &str)] = &[
            (r#""subnets":[{"subnet":"10.0.0.1/16"}]"#, "host bits"),
            (
                r#""subnets":[{"subnet":"10.0.0.0/16","gateway":"10.1.0.1"}]"#,
                "not in subnet",
            ),
            (
                r#""subnets":[{"subnet":"10.0.0.0/16","gateway":"10.0.0.0"}]"#,
                "network address",
            ),
            (
                r#""subnets":[{"subnet":"10.0.0.0/16"},{"subnet":"10.0.1.0/24"}]"#,
                "overlap",
            ),
            (r#""options":{"mtu":"9"}"#, "mtu"),
            (r#""options":{"hairpin":"maybe"}"#, "true or false"),
            (r#""options":{"vlan":"3"}"#, "unknown option \"vlan\""),
            (
                r#""options":{"bridge":"a/b"}"#,
                "not a valid interface name",
            ),
            (
                r#""ipam_options":{"driver":"dhcp"}"#,
                "ipam driver \"dhcp\"",
            ),
            (
                r#""routes":[{"destination":"10.9.0.0/16"}]"#,
                "gateway is required",
            ),
            (
                r#""routes":[{"destination":"10.9.0.0/16","gateway":"10.0.0.9","metric":5}]"#,
                "metric",
            ),
            (
                r#""routes":[{"destination":"10.9.0.0/16","route_type":"blackhole"}]"#,
                "blackhole",
            ),
            (r#""network_dns_servers":["192.0.2.53"]"#, "no DNS server"),
        ];
        for (field, needle) in cases {
            let n = net(&format!(r#"{{"name":"n","id":"i","driver":"d",{field}}}"#));
            let e = create(n).unwrap_err();
            assert!(e.contains(needle), "{field}: {e}");
        }
    }

    #[test]
    fn create_v6_and_internal() {
        let n = net(r#"{"name":"n","id":"i","driver":"d","internal":true,
            "subnets":[{"subnet":"fd00:1::/64"}]}"#);
        let out = create(n).unwrap();
        assert!(out.ipv6_enabled);
        assert_eq!(out.subnets.unwrap()[0].gateway, None);
        let n = net(r#"{"name":"n","id":"i","driver":"d","subnets":[{"subnet":"fd00:1::/64"}]}"#);
        assert_eq!(
            create(n).unwrap().subnets.unwrap()[0].gateway,
            Some("fd00:1::1".parse().unwrap())
        );
    }

    #[test]
    fn options_parse() {
        let m: BTreeMap<String, String> = [
            ("mtu", "1400"),
            ("hairpin", "true"),
            ("isolate", "1"),
            ("stable_mac", "yes"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let o = Options::parse(Some(&m)).unwrap();
        assert_eq!(o.mtu, Some(1400));
        assert!(o.hairpin && o.isolate && o.stable_mac);
        assert_eq!(Options::parse(None).unwrap(), Options::default());
    }

    #[test]
    fn exec_input_decodes_the_api_example() {
        let ex = r#"{"container_id":"7529","container_name":"testctr",
          "port_mappings":[{"container_port":80,"host_ip":"127.0.0.1","host_port":8080,"protocol":"tcp","range":1}],
          "network":{"dns_enabled":false,"driver":"bridge","id":"2f25","internal":false,"ipv6_enabled":false,
            "name":"podman","network_interface":"podman0","options":null,"ipam_options":{"driver":"host-local"},
            "subnets":[{"gateway":"10.88.0.1","lease_range":null,"subnet":"10.88.0.0/16"}],"network_dns_servers":null},
          "network_options":{"aliases":["752947ff91f9"],"interface_name":"eth0","static_ips":["10.88.0.50"],
            "static_mac":"aa:bb:cc:dd:aa:00"}}"#;
        let x: PluginExec = decode(ex.as_bytes(), "input").unwrap();
        assert_eq!(x.network_options.interface_name, "eth0");
        assert_eq!(bridge_of(&x.network).unwrap(), "podman0");
        let a = addresses_of(&x.network, x.network_options.static_ips.as_deref().unwrap()).unwrap();
        assert_eq!(
            a,
            vec![(
                "10.88.0.50/16".parse().unwrap(),
                Some("10.88.0.1".parse().unwrap())
            )]
        );
        let e = addresses_of(&x.network, &["10.1.0.1".parse().unwrap()]).unwrap_err();
        assert!(
            e.contains("none of network \"podman\"'s subnets (10.88.0.0/16)"),
            "{e}"
        );
    }

    #[test]
    fn decode_errors_are_clear() {
        assert!(decode::<PluginExec>(b"  ", "setup input")
            .unwrap_err()
            .contains("no setup input"));
        let e = decode::<PluginExec>(b"{", "setup input").unwrap_err();
        assert!(e.starts_with("cannot decode the setup input"), "{e}");
        let e = decode::<PluginExec>(br#"{"container_id":"a"}"#, "setup input").unwrap_err();
        assert!(e.contains("missing field"), "{e}");
    }

    #[test]
    fn status_block_renders_like_netavark() {
        let s = StatusBlock {
            dns_search_domains: vec![],
            dns_server_ips: vec![],
            interfaces: [(
                "eth0".to_string(),
                NetInterface {
                    mac_address: "aa:bb:cc:dd:aa:00".into(),
                    subnets: vec![NetAddress {
                        ipnet: "10.88.0.50/16".parse().unwrap(),
                        gateway: Some("10.88.0.1".parse().unwrap()),
                    }],
                },
            )]
            .into(),
        };
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"dns_search_domains":[],"dns_server_ips":[],"interfaces":{"eth0":{"mac_address":"aa:bb:cc:dd:aa:00","subnets":[{"ipnet":"10.88.0.50/16","gateway":"10.88.0.1"}]}}}"#
        );
        assert_eq!(error_json("x \"y\""), r#"{"error":"x \"y\""}"#);
        assert_eq!(info()["api_version"], "1.0.0");
    }

    #[test]
    fn ifname_checks() {
        for bad in ["", ".", "..", "a/b", "a:b", "a b", "0123456789abcdef"] {
            assert!(check_ifname(bad, "x").is_err(), "{bad}");
        }
        check_ifname("eth0", "x").unwrap();
    }
}
