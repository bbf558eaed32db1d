//! The network configuration a runtime gives on stdin, with the reference `bridge` plugin's
//! keys, defaults and checks (containernetworking/plugins, plugins/main/bridge/bridge.go:
//! `loadNetConf`, `collectVlanTrunk`, the checks at the top of `cmdAdd`), so a conflist that
//! says `"type": "bridge"` works unchanged with `"type": "pipework"`.

use serde::Deserialize;

use super::error::{CniError, Code};
use crate::mac::MacAddr;

pub const DEFAULT_BRIDGE: &str = "cni0";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    pub cni_version: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default = "default_bridge")]
    pub bridge: String,
    #[serde(default)]
    pub is_gateway: bool,
    #[serde(default)]
    pub is_default_gateway: bool,
    #[serde(default)]
    pub force_address: bool,
    #[serde(default)]
    pub ip_masq: bool,
    pub ip_masq_backend: Option<String>,
    #[serde(default)]
    pub mtu: i64,
    #[serde(default)]
    pub hairpin_mode: bool,
    #[serde(default)]
    pub promisc_mode: bool,
    #[serde(default)]
    pub vlan: i64,
    pub vlan_trunk: Option<Vec<VlanTrunk>>,
    #[serde(default)]
    pub preserve_default_vlan: bool,
    #[serde(default, rename = "macspoofchk")]
    pub mac_spoof_chk: bool,
    #[serde(default, rename = "enabledad")]
    pub enable_dad: bool,
    #[serde(default)]
    pub disable_container_interface: bool,
    #[serde(default)]
    pub port_isolation: bool,
    /// Delegated to the IPAM plugin named by `type`, passed the whole configuration.
    pub ipam: Option<serde_json::Value>,
    pub dns: Option<serde_json::Value>,
    #[serde(default)]
    pub args: Args,
    #[serde(default)]
    pub runtime_config: RuntimeConfig,
    pub prev_result: Option<serde_json::Value>,
    /// pipework's own keys (docs/cni.md): every pipework kind, a stable MAC, the built-in
    /// DHCP client.
    pub pipework: Option<PipeworkKeys>,
}

/// The `pipework` object of a network configuration.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PipeworkKeys {
    /// `bridge` (the default), `ovs` (an Open vSwitch bridge named by `bridge`), `macvlan`
    /// (a child of `master`), `nic` (`master` itself moved in) or `ipoib` (a child of the
    /// InfiniBand `master`).
    pub kind: Option<String>,
    pub master: Option<String>,
    /// macvlan: bridge (default), private, vepa, passthru.
    pub macvlan_mode: Option<String>,
    /// IPoIB partition key, hexadecimal.
    pub pkey: Option<String>,
    /// A MAC derived from the container ID and interface name (the original's `U:` MAC):
    /// the same pod gets the same MAC back.
    #[serde(default)]
    pub stable_mac: bool,
    /// Open vSwitch datapath of a bridge pipework creates (`netdev` for the userspace one).
    pub ovs_datapath: Option<String>,
    /// pipework's own DHCP client instead of an IPAM plugin, kept renewing the lease until DEL.
    pub dhcp: Option<DhcpKeys>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DhcpKeys {
    /// DHCPv6 instead of DHCPv4.
    #[serde(default)]
    pub v6: bool,
    /// Seconds to wait for the first lease (default 10).
    pub timeout: Option<f64>,
}

fn default_bridge() -> String {
    DEFAULT_BRIDGE.to_string()
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VlanTrunk {
    #[serde(rename = "minID")]
    pub min_id: Option<i64>,
    #[serde(rename = "maxID")]
    pub max_id: Option<i64>,
    pub id: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Args {
    #[serde(default)]
    pub cni: CniArgs,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct CniArgs {
    pub mac: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RuntimeConfig {
    pub mac: Option<String>,
}

/// The configuration checked, with what the checks derived.
#[derive(Debug, Clone)]
pub struct Checked {
    pub conf: NetConf,
    /// `isDefaultGateway` implies `isGateway`.
    pub is_gateway: bool,
    /// From the trunk list: sorted, without duplicates.
    pub trunk: Vec<u16>,
    pub vlan: Option<u16>,
    pub mtu: Option<u32>,
    /// CNI_ARGS MAC < args.cni.mac < runtimeConfig.mac.
    pub mac: Option<MacAddr>,
}

fn invalid(version: &str, why: impl Into<String>) -> CniError {
    CniError::new(
        version,
        Code::InvalidConfig,
        "invalid network configuration",
        why,
    )
}

/// Decodes stdin's configuration (error 6 when it is not one).
pub fn decode(stdin: &[u8]) -> Result<NetConf, CniError> {
    serde_json::from_slice(stdin).map_err(|e| {
        let why = e.to_string();
        // Only pipework's own object refuses keys: the spec's code 2 names the field.
        if why.starts_with("unknown field") {
            return CniError::new(
                super::version::CURRENT,
                Code::UnsupportedField,
                "unsupported field in the pipework object of the network configuration",
                why,
            );
        }
        CniError::new(
            super::version::CURRENT,
            Code::Decode,
            "cannot decode the network configuration",
            why,
        )
    })
}

/// The trunk list as VLAN IDs (bridge.go's collectVlanTrunk, with its messages).
pub fn collect_trunk(items: &[VlanTrunk]) -> Result<Vec<u16>, String> {
    let ok = |v: i64| (1..=4094).contains(&v);
    let mut ids = std::collections::BTreeSet::new();
    for t in items {
        match (t.min_id, t.max_id) {
            (Some(lo), Some(hi)) => {
                if !ok(lo) {
                    return Err("incorrect trunk minID parameter".into());
                }
                if !ok(hi) {
                    return Err("incorrect trunk maxID parameter".into());
                }
                if hi < lo {
                    return Err("minID is greater than maxID in trunk parameter".into());
                }
                ids.extend((lo..=hi).map(|v| v as u16));
            }
            (None, Some(_)) => {
                return Err(
                    "minID and maxID should be configured simultaneously, minID is missing".into(),
                )
            }
            (Some(_), None) => {
                return Err(
                    "minID and maxID should be configured simultaneously, maxID is missing".into(),
                )
            }
            (None, None) => {}
        }
        if let Some(id) = t.id {
            if !ok(id) {
                return Err("incorrect trunk id parameter".into());
            }
            ids.insert(id as u16);
        }
    }
    Ok(ids.into_iter().collect())
}

/// The reference plugin's checks, and the MAC from its three sources. `env_mac` is CNI_ARGS'
/// `MAC` (already checked for unknown keys by the caller).
pub fn check(conf: NetConf, version: &str, env_mac: Option<&str>) -> Result<Checked, CniError> {
    if !(0..=4094).contains(&conf.vlan) {
        return Err(invalid(
            version,
            format!("invalid VLAN ID {} (must be between 0 and 4094)", conf.vlan),
        ));
    }
    let trunk = collect_trunk(conf.vlan_trunk.as_deref().unwrap_or(&[]))
        .map_err(|e| invalid(version, e))?;
    if !conf.name.is_empty() && !super::env::valid_container_id(&conf.name) {
        return Err(invalid(
            version,
            format!(
                "network name {:?} must start with a letter or digit, then letters, digits, _ . or -",
                conf.name
            ),
        ));
    }
    let has_ipam = conf
        .ipam
        .as_ref()
        .and_then(|i| i.get("type"))
        .and_then(|t| t.as_str())
        .is_some_and(|t| !t.is_empty());
    if has_ipam && conf.disable_container_interface {
        return Err(invalid(
            version,
            "cannot use IPAM when DisableContainerInterface flag is set",
        ));
    }
    if conf.hairpin_mode && conf.promisc_mode {
        return Err(invalid(
            version,
            "cannot set hairpin mode and promiscuous mode at the same time",
        ));
    }
    if let Some(b) = &conf.ip_masq_backend {
        if b != "iptables" && b != "nftables" {
            return Err(invalid(
                version,
                format!("ipMasqBackend {b:?}: must be \"iptables\" or \"nftables\""),
            ));
        }
    }
    if let Some(why) = super::env::ifname_problem(&conf.bridge) {
        return Err(invalid(version, format!("bridge {:?} {why}", conf.bridge)));
    }
    let mtu = match conf.mtu {
        0 => None,
        m if (68..=65535).contains(&m) => Some(m as u32),
        m => {
            return Err(invalid(
                version,
                format!("mtu {m}: must be between 68 and 65535 (or 0 for the default)"),
            ))
        }
    };
    let mac = [
        env_mac.map(|m| ("CNI_ARGS MAC", m)),
        conf.args.cni.mac.as_deref().map(|m| ("args.cni.mac", m)),
        conf.runtime_config
            .mac
            .as_deref()
            .map(|m| ("runtimeConfig.mac", m)),
    ]
    .into_iter()
    .flatten()
    // The last source that gives one wins.
    .rfind(|(_, m)| !m.is_empty())
    .map(|(from, m)| {
        m.parse::<MacAddr>()
            .map_err(|e| invalid(version, format!("{from} {m:?}: {e}")))
    })
    .transpose()?;
    Ok(Checked {
        is_gateway: conf.is_gateway || conf.is_default_gateway,
        vlan: (conf.vlan != 0).then_some(conf.vlan as u16),
        trunk,
        mtu,
        mac,
        conf,
    })
}

/// CNI_ARGS as the reference plugins read it (`types.LoadArgs` into `MAC` plus
/// `IgnoreUnknown`): a key it does not know is an error unless IgnoreUnknown is true. Returns
/// the MAC, if any.
pub fn env_args(args: &[(String, String)], version: &str) -> Result<Option<String>, CniError> {
    let truthy = |v: &str| matches!(v, "1" | "t" | "T" | "true" | "TRUE" | "True");
    let ignore = args.iter().any(|(k, v)| k == "IgnoreUnknown" && truthy(v));
    let mut mac = None;
    for (k, v) in args {
        match k.as_str() {
            "MAC" => mac = Some(v.clone()),
            "IgnoreUnknown" => {}
            _ if ignore => {}
            _ => {
                return Err(CniError::new(
                    version,
                    Code::InvalidEnvironment,
                    "invalid CNI_ARGS",
                    format!("CNI_ARGS: unknown key {k:?} (set IgnoreUnknown=1 to allow it)"),
                ))
            }
        }
    }
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(json: &str) -> NetConf {
        decode(json.as_bytes()).unwrap()
    }

    fn err(json: &str) -> String {
        check(conf(json), "1.1.0", None).unwrap_err().details
    }

    #[test]
    fn defaults_are_the_reference_plugins() {
        let c = check(
            conf(r#"{"cniVersion":"1.1.0","name":"n","type":"pipework"}"#),
            "1.1.0",
            None,
        )
        .unwrap();
        assert_eq!(c.conf.bridge, "cni0");
        assert!(!c.is_gateway && !c.conf.ip_masq && !c.conf.preserve_default_vlan);
        assert_eq!((c.vlan, c.mtu, c.mac), (None, None, None));
        assert!(c.trunk.is_empty());
        let c = check(conf(r#"{"isDefaultGateway":true}"#), "1.1.0", None).unwrap();
        assert!(c.is_gateway, "isDefaultGateway implies isGateway");
    }

    #[test]
    fn reference_checks_with_its_messages() {
        assert_eq!(
            err(r#"{"vlan":4095}"#),
            "invalid VLAN ID 4095 (must be between 0 and 4094)"
        );
        assert_eq!(
            err(r#"{"vlan":-1}"#),
            "invalid VLAN ID -1 (must be between 0 and 4094)"
        );
        assert_eq!(
            err(r#"{"hairpinMode":true,"promiscMode":true}"#),
            "cannot set hairpin mode and promiscuous mode at the same time"
        );
        assert_eq!(
            err(r#"{"disableContainerInterface":true,"ipam":{"type":"host-local"}}"#),
            "cannot use IPAM when DisableContainerInterface flag is set"
        );
        assert!(err(r#"{"ipMasqBackend":"ipfw"}"#).contains("iptables"));
        assert!(err(r#"{"mtu":10}"#).contains("between 68"));
        assert!(err(r#"{"bridge":"a23456789012345x"}"#).contains("longer than 15"));
        assert!(err(r#"{"bridge":"br\u0000x"}"#).contains("NUL"));
        assert!(err(r#"{"name":"-x"}"#).contains("network name"));
        let e = decode(b"{not json").unwrap_err();
        assert_eq!(e.code, 6);
        assert_eq!(
            check(conf(r#"{"vlan":0}"#), "1.1.0", None).unwrap().vlan,
            None
        );
    }

    #[test]
    fn trunks_like_collect_vlan_trunk() {
        let t = |json: &str| collect_trunk(&serde_json::from_str::<Vec<VlanTrunk>>(json).unwrap());
        assert_eq!(
            t(r#"[{"minID":10,"maxID":12},{"id":11},{"id":5}]"#).unwrap(),
            [5, 10, 11, 12]
        );
        assert_eq!(
            t(r#"[{"minID":0,"maxID":12}]"#).unwrap_err(),
            "incorrect trunk minID parameter"
        );
        assert_eq!(
            t(r#"[{"minID":1,"maxID":4095}]"#).unwrap_err(),
            "incorrect trunk maxID parameter"
        );
        assert_eq!(
            t(r#"[{"minID":9,"maxID":3}]"#).unwrap_err(),
            "minID is greater than maxID in trunk parameter"
        );
        assert!(t(r#"[{"maxID":3}]"#)
            .unwrap_err()
            .contains("minID is missing"));
        assert!(t(r#"[{"minID":3}]"#)
            .unwrap_err()
            .contains("maxID is missing"));
        assert_eq!(
            t(r#"[{"id":4095}]"#).unwrap_err(),
            "incorrect trunk id parameter"
        );
    }

    #[test]
    fn mac_precedence_env_then_args_then_runtime_config() {
        let m = |json: &str, env: Option<&str>| {
            check(conf(json), "1.1.0", env)
                .unwrap()
                .mac
                .map(|m| m.to_string())
        };
        let env = Some("02:00:00:00:00:01");
        assert_eq!(m("{}", env).as_deref(), env);
        assert_eq!(
            m(r#"{"args":{"cni":{"mac":"02:00:00:00:00:02"}}}"#, env).as_deref(),
            Some("02:00:00:00:00:02")
        );
        assert_eq!(
            m(
                r#"{"args":{"cni":{"mac":"02:00:00:00:00:02"}},"runtimeConfig":{"mac":"02:00:00:00:00:03"}}"#,
                env
            )
            .as_deref(),
            Some("02:00:00:00:00:03")
        );
        let e = check(conf(r#"{"runtimeConfig":{"mac":"zz"}}"#), "1.1.0", None).unwrap_err();
        assert!(e.details.starts_with("runtimeConfig.mac"), "{e:?}");
    }

    #[test]
    fn cni_args_are_strict_unless_ignore_unknown() {
        let a = |pairs: &[(&str, &str)]| {
            let v: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            env_args(&v, "1.1.0")
        };
        assert_eq!(
            a(&[("MAC", "02:00:00:00:00:01")]).unwrap().as_deref(),
            Some("02:00:00:00:00:01")
        );
        let e = a(&[("K8S_POD_NAME", "web")]).unwrap_err();
        assert_eq!(e.code, 4);
        assert!(e.details.contains("K8S_POD_NAME"));
        assert_eq!(
            a(&[("IgnoreUnknown", "1"), ("K8S_POD_NAME", "web")]).unwrap(),
            None
        );
        assert_eq!(a(&[("IgnoreUnknown", "true"), ("X", "y")]).unwrap(), None);
        assert!(a(&[("IgnoreUnknown", "0"), ("X", "y")]).is_err());
    }
}
