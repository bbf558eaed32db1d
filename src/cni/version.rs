//! Versions of the CNI spec pipework speaks, and the VERSION command's answer.

use serde::Serialize;

use super::error::{CniError, Code};

/// Oldest first. 0.1.0 and 0.2.0 had another result shape; no runtime in use still asks for it.
pub const SUPPORTED: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
pub const CURRENT: &str = "1.1.0";

/// The version a configuration asks for, checked: an unknown or missing one is error 1.
pub fn negotiate(asked: Option<&str>) -> Result<&'static str, CniError> {
    let asked = asked.unwrap_or("");
    SUPPORTED
        .iter()
        .copied()
        .find(|v| *v == asked)
        .ok_or_else(|| {
            CniError::new(
                CURRENT,
                Code::IncompatibleVersion,
                format!("incompatible CNI version {asked:?}"),
                format!("pipework supports {}", SUPPORTED.join(", ")),
            )
        })
}

/// Whether results of this version carry `ips[].version` (up to 0.4.0; gone from 1.0.0).
pub fn ips_have_version(v: &str) -> bool {
    v.starts_with("0.")
}

#[derive(Debug, Serialize)]
pub struct VersionAnswer {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    #[serde(rename = "supportedVersions")]
    pub supported_versions: Vec<&'static str>,
}

/// VERSION: echoes the version asked for (any, as the spec says) and lists ours.
pub fn answer(asked: Option<&str>) -> VersionAnswer {
    VersionAnswer {
        cni_version: asked.unwrap_or(CURRENT).to_string(),
        supported_versions: SUPPORTED.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_versions_are_accepted_others_are_error_1() {
        for v in SUPPORTED {
            assert_eq!(negotiate(Some(v)).unwrap(), v);
        }
        for v in [None, Some(""), Some("0.2.0"), Some("1.2.0"), Some("1.1")] {
            let e = negotiate(v).unwrap_err();
            assert_eq!(e.code, 1, "{v:?}");
            assert!(e.details.contains("1.1.0"));
        }
    }

    #[test]
    fn version_answer_echoes_and_lists() {
        let a = serde_json::to_value(answer(Some("0.4.0"))).unwrap();
        assert_eq!(a["cniVersion"], "0.4.0");
        assert_eq!(a["supportedVersions"], serde_json::json!(SUPPORTED));
        assert!(ips_have_version("0.4.0") && ips_have_version("0.3.1"));
        assert!(!ips_have_version("1.0.0") && !ips_have_version("1.1.0"));
    }
}
