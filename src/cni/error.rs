//! CNI error objects (SPEC.md "Error"): `{"cniVersion", "code", "msg", "details"}` on stdout,
//! exit status non-zero. Codes 1–11 are the spec's, 50/51 are STATUS's, 100+ are ours. The
//! engine's typed error kinds map onto them; never the reference plugins' catch-all 999.

use serde::Serialize;

use crate::error::{Error, ErrorKind};

/// The spec's well-known codes, and ours from 100 on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    IncompatibleVersion = 1,
    UnsupportedField = 2,
    UnknownContainer = 3,
    InvalidEnvironment = 4,
    Io = 5,
    Decode = 6,
    InvalidConfig = 7,
    TryAgainLater = 11,
    /// STATUS: the plugin cannot service ADD requests.
    NotAvailable = 50,
    /// STATUS: … and existing containers may have limited connectivity.
    LimitedConnectivity = 51,
    /// The kernel refused a change (the message has its errno).
    Kernel = 100,
    /// Something of that name exists already (an interface, an address).
    Exists = 101,
    /// A container engine, Open vSwitch or a delegated plugin could not be reached or run.
    Unreachable = 102,
    /// Not allowed: pipework needs CAP_NET_ADMIN and CAP_SYS_ADMIN.
    Permission = 103,
    /// Anything else (a bug, an I/O failure of pipework's own files).
    Internal = 104,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CniError {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    pub code: u32,
    pub msg: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl CniError {
    pub fn new(
        version: &str,
        code: Code,
        msg: impl Into<String>,
        details: impl Into<String>,
    ) -> Self {
        CniError {
            cni_version: version.to_string(),
            code: code as u32,
            msg: msg.into(),
            details: details.into(),
        }
    }

    /// An engine error as the runtime sees it: the code from its kind, the message as the
    /// short text, and the step and object (when known) in the details.
    pub fn from_engine(version: &str, e: &Error) -> CniError {
        let code = match e.kind() {
            ErrorKind::BadInput => Code::InvalidConfig,
            // The container (its namespace) is gone: the runtime need not clean up.
            ErrorKind::NotFound => Code::UnknownContainer,
            ErrorKind::Exists => Code::Exists,
            ErrorKind::Busy | ErrorKind::Timeout => Code::TryAgainLater,
            ErrorKind::Kernel => Code::Kernel,
            ErrorKind::EngineUnreachable => Code::Unreachable,
            ErrorKind::Permission => Code::Permission,
            ErrorKind::Internal => Code::Internal,
        };
        let mut details = Vec::new();
        if let Some(s) = e.step() {
            details.push(format!("step {s}"));
        }
        if let Some(o) = e.object() {
            details.push(format!("object {o}"));
        }
        if let Some(n) = e.errno() {
            details.push(format!("errno {n}"));
        }
        details.extend(e.left_behind().iter().map(|l| format!("left behind: {l}")));
        CniError::new(version, code, e.to_string(), details.join("; "))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| {
            format!(
                r#"{{"cniVersion":"1.1.0","code":{},"msg":"error"}}"#,
                self.code
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_is_the_specs() {
        let e = CniError::new(
            "1.1.0",
            Code::InvalidConfig,
            "Invalid Configuration",
            "too small",
        );
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"cniVersion": "1.1.0", "code": 7, "msg": "Invalid Configuration",
                               "details": "too small"})
        );
        let e = CniError::new("0.4.0", Code::Io, "x", "");
        assert!(
            !e.to_json().contains("details"),
            "empty details are left out"
        );
    }

    #[test]
    fn every_engine_kind_has_a_code_below_999() {
        let cases = [
            (Error::Invalid("bad".into()), 7),
            (Error::NotFound("gone".into()), 3),
            (Error::InterfaceExists("eth0".into()), 101),
            (Error::Busy("locked".into()), 11),
            (Error::Timeout("slow".into()), 11),
            (Error::Engine("down".into()), 102),
            (Error::Permission("root".into()), 103),
        ];
        for (e, code) in cases {
            let c = CniError::from_engine("1.1.0", &e);
            assert_eq!(c.code, code, "{e:?}");
            assert_eq!(c.msg, e.to_string());
        }
    }
}
