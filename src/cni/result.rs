//! CNI results (SPEC.md "Success"): read from a delegated IPAM plugin in whichever version it
//! answers, and printed in the shape of the configuration's `cniVersion` — `ips[].version` up
//! to 0.4.0, none from 1.0.0 on.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::error::{CniError, Code};
use super::version::ips_have_version;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The container's namespace path, for the container's own interface.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ip {
    pub address: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// A result of any supported version (older ones' `ips[].version` is read and dropped: the
/// address says its family).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct CniResult {
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    #[serde(default)]
    pub ips: Vec<Ip>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub dns: Dns,
}

/// The most a delegated plugin may print (a result is a few KiB).
pub const MAX_RESULT: usize = 1 << 20;

impl CniResult {
    /// A delegated plugin's stdout (error 6 when it is not a result).
    pub fn decode(bytes: &[u8], version: &str) -> Result<CniResult, CniError> {
        if bytes.len() > MAX_RESULT {
            return Err(CniError::new(
                version,
                Code::Decode,
                "the IPAM plugin's result is too big",
                format!("{} bytes (at most {MAX_RESULT})", bytes.len()),
            ));
        }
        let fail = |e: String| {
            CniError::new(
                version,
                Code::Decode,
                "cannot decode the IPAM plugin's result",
                e,
            )
        };
        // An object, not whatever serde would also take for a struct (an array).
        let v: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| fail(e.to_string()))?;
        if !v.is_object() {
            return Err(fail(format!("expected a JSON object, got {v}")));
        }
        // `interface` indexes are the IPAM plugin's own; the caller sets ours.
        let r: CniResult = serde_json::from_value(v).map_err(|e| fail(e.to_string()))?;
        Ok(r)
    }

    /// The result as printed for `version`.
    pub fn render(&self, version: &str) -> serde_json::Value {
        let ips: Vec<serde_json::Value> = self
            .ips
            .iter()
            .map(|ip| {
                let mut v = serde_json::to_value(ip).unwrap_or_default();
                if ips_have_version(version) {
                    let fam = if ip.address.addr().is_ipv4() {
                        "4"
                    } else {
                        "6"
                    };
                    v["version"] = fam.into();
                }
                v
            })
            .collect();
        let mut out = serde_json::json!({
            "cniVersion": version,
            "interfaces": self.interfaces,
            "ips": ips,
        });
        if !self.routes.is_empty() {
            out["routes"] = serde_json::to_value(&self.routes).unwrap_or_default();
        }
        out["dns"] = serde_json::to_value(&self.dns).unwrap_or_default();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = r#"{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.1.0.5/16","gateway":"10.1.0.1"},
        {"version":"6","address":"fd00::5/64"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{"nameservers":["10.1.0.53"]}}"#;

    #[test]
    fn reads_old_and_new_shapes() {
        let r = CniResult::decode(OLD.as_bytes(), "0.4.0").unwrap();
        assert_eq!(r.ips.len(), 2);
        assert_eq!(r.ips[0].gateway, Some("10.1.0.1".parse().unwrap()));
        let new = CniResult::decode(br#"{"cniVersion":"1.0.0","ips":[{"address":"10.99.0.2/24","gateway":"10.99.0.1"}],"dns":{}}"#, "1.0.0").unwrap();
        assert_eq!(new.ips[0].address.to_string(), "10.99.0.2/24");
        assert_eq!(CniResult::decode(b"[]", "1.1.0").unwrap_err().code, 6);
        assert_eq!(
            CniResult::decode(&vec![b' '; MAX_RESULT + 1], "1.1.0")
                .unwrap_err()
                .code,
            6
        );
        let bad = br#"{"ips":[{"address":"10.0.0.300/24"}]}"#;
        assert_eq!(CniResult::decode(bad, "1.1.0").unwrap_err().code, 6);
    }

    #[test]
    fn renders_in_the_configs_version() {
        let mut r = CniResult::decode(OLD.as_bytes(), "0.4.0").unwrap();
        r.interfaces = vec![
            Interface {
                name: "cni0".into(),
                mac: "02:00:00:00:00:01".into(),
                ..Default::default()
            },
            Interface {
                name: "eth0".into(),
                mac: "02:00:00:00:00:02".into(),
                sandbox: "/var/run/netns/x".into(),
                ..Default::default()
            },
        ];
        r.ips[0].interface = Some(1);
        let v = r.render("0.3.1");
        assert_eq!(v["cniVersion"], "0.3.1");
        assert_eq!(v["ips"][0]["version"], "4");
        assert_eq!(v["ips"][1]["version"], "6");
        assert_eq!(v["ips"][0]["interface"], 1);
        let v = r.render("1.1.0");
        assert!(
            v["ips"][0].get("version").is_none(),
            "no ips[].version from 1.0.0: {v}"
        );
        assert_eq!(v["interfaces"][1]["sandbox"], "/var/run/netns/x");
        assert_eq!(v["routes"][0]["dst"], "0.0.0.0/0");
        assert_eq!(v["dns"]["nameservers"][0], "10.1.0.53");
    }
}
