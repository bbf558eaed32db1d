//! Typed errors of the library. Every error has a kind (what a program calling us branches
//! on: the CLI's exit status, the CNI front end's error code), and may name the step and the
//! object it failed on and the kernel's errno. Messages say what failed, on which object, and
//! what to do.

use std::io;

use serde::Serialize;

use crate::netlink::NlError;

/// Exit status for errors found in the command line or its values, before anything is touched.
pub const EXIT_USAGE: i32 = 2;
/// Exit status for every other failure (after a full rollback).
pub const EXIT_FAILURE: i32 = 1;

/// What kind of failure: stable names in `{"error": {"kind": …}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The command line or a value in it (or in a rules file, a request) is wrong.
    BadInput,
    /// The guest, the host interface, or a record does not exist.
    NotFound,
    /// Something of that name is there already.
    Exists,
    /// In use: a host link up, a lock held.
    Busy,
    /// The kernel refused a change (errno says why).
    Kernel,
    /// A container engine (Docker, Podman, containerd, OVS) could not be reached.
    EngineUnreachable,
    Timeout,
    /// Not allowed: pipework needs CAP_NET_ADMIN and CAP_SYS_ADMIN.
    Permission,
    /// Anything else: a bug, an I/O failure of our own files, an injected test failure.
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line does not follow the grammar.
    #[error("{0}")]
    Usage(String),

    /// A value on the command line is malformed (address, MAC, name, number).
    #[error("{0}")]
    Invalid(String),

    /// The guest cannot be found or used.
    #[error("{0}")]
    Guest(String),

    /// The host interface cannot be found or used.
    #[error("{0}")]
    HostInterface(String),

    #[error("{0}")]
    NotFound(String),

    #[error("{0}")]
    Busy(String),

    /// The guest already has an interface of the name asked for (what `watch` takes as
    /// "already plumbed" when it catches up).
    #[error("{0}")]
    InterfaceExists(String),

    #[error("{0}")]
    Permission(String),

    /// A container engine or OVS does not answer.
    #[error("{0}")]
    Engine(String),

    /// The kernel refused a netlink request.
    #[error("{what}: {source}")]
    Netlink {
        what: String,
        #[source]
        source: NlError,
    },

    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },

    #[error("{0}")]
    Timeout(String),

    /// A step failed; the rollback ran. Carries the step's name and its object.
    #[error("step {step} failed: {source}")]
    Step {
        step: &'static str,
        object: Option<String>,
        #[source]
        source: Box<Error>,
    },

    /// A bug of ours: an invariant that did not hold.
    #[error("internal error: {0}")]
    Internal(String),

    /// Test hook (PIPEWORK_TEST_FAIL_STEP): fail right after a step, to prove the rollback.
    #[error("injected failure after step {0}")]
    Injected(&'static str),

    /// A rollback action failed as well: the original error and each thing not undone.
    #[error("{source}\nrollback incomplete, left behind: {}", left.join("; "))]
    Rollback {
        #[source]
        source: Box<Error>,
        left: Vec<String>,
    },
}

/// `{"error": {...}}` of `--json`.
#[derive(Debug, Serialize)]
pub struct ErrorReport {
    pub kind: ErrorKind,
    pub step: Option<&'static str>,
    pub object: Option<String>,
    pub errno: Option<i32>,
    pub message: String,
    /// What a failed rollback could not undo.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub left_behind: Vec<String>,
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self.kind() {
            ErrorKind::BadInput => EXIT_USAGE,
            _ => EXIT_FAILURE,
        }
    }

    pub fn netlink(what: impl Into<String>, source: NlError) -> Self {
        Error::Netlink {
            what: what.into(),
            source,
        }
    }

    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Usage(_) | Error::Invalid(_) => ErrorKind::BadInput,
            Error::Guest(_) | Error::HostInterface(_) | Error::NotFound(_) => ErrorKind::NotFound,
            Error::Busy(_) => ErrorKind::Busy,
            Error::InterfaceExists(_) => ErrorKind::Exists,
            Error::Permission(_) => ErrorKind::Permission,
            Error::Engine(_) => ErrorKind::EngineUnreachable,
            Error::Netlink { source, .. } => match source.errno {
                libc::ETIMEDOUT => ErrorKind::Timeout,
                libc::EEXIST => ErrorKind::Exists,
                libc::EPERM | libc::EACCES => ErrorKind::Permission,
                _ => ErrorKind::Kernel,
            },
            Error::Io { source, .. } => match source.kind() {
                io::ErrorKind::PermissionDenied => ErrorKind::Permission,
                io::ErrorKind::TimedOut => ErrorKind::Timeout,
                _ => ErrorKind::Internal,
            },
            Error::Timeout(_) => ErrorKind::Timeout,
            Error::Injected(_) | Error::Internal(_) => ErrorKind::Internal,
            Error::Step { source, .. } | Error::Rollback { source, .. } => source.kind(),
        }
    }

    /// The kernel errno behind this error, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Netlink { source, .. } => Some(source.errno),
            Error::Io { source, .. } => source.raw_os_error(),
            Error::Step { source, .. } | Error::Rollback { source, .. } => source.errno(),
            _ => None,
        }
    }

    /// The step that failed, for errors of an apply.
    pub fn step(&self) -> Option<&'static str> {
        match self {
            Error::Step { step, .. } => Some(step),
            Error::Injected(step) => Some(step),
            Error::Rollback { source, .. } => source.step(),
            _ => None,
        }
    }

    pub fn object(&self) -> Option<String> {
        match self {
            Error::Step { object, source, .. } => object.clone().or_else(|| source.object()),
            Error::Rollback { source, .. } => source.object(),
            _ => None,
        }
    }

    /// What a failed rollback left behind, one entry per thing.
    pub fn left_behind(&self) -> &[String] {
        match self {
            Error::Rollback { left, .. } => left,
            _ => &[],
        }
    }

    pub fn report(&self) -> ErrorReport {
        ErrorReport {
            kind: self.kind(),
            step: self.step(),
            object: self.object(),
            errno: self.errno(),
            message: self.to_string(),
            left_behind: self.left_behind().to_vec(),
        }
    }

    /// One JSON object for `--json` on stdout: `{"error": {...}}`.
    pub fn to_json(&self) -> String {
        serde_json::json!({ "error": self.report() }).to_string()
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_exit_codes() {
        assert_eq!(Error::Invalid("x".into()).exit_code(), EXIT_USAGE);
        assert_eq!(Error::Guest("x".into()).kind(), ErrorKind::NotFound);
        let kernel = Error::netlink(
            "cannot create veth",
            NlError {
                errno: libc::EINVAL,
                ext_ack: Some("bad mtu".into()),
            },
        );
        assert_eq!(kernel.kind(), ErrorKind::Kernel);
        assert_eq!(kernel.exit_code(), EXIT_FAILURE);
        let step = Error::Step {
            step: "create-veth",
            object: Some("veth1pl5".into()),
            source: Box::new(kernel),
        };
        let rb = Error::Rollback {
            source: Box::new(step),
            left: vec!["link a".into(), "link b".into()],
        };
        let v: serde_json::Value = serde_json::from_str(&rb.to_json()).unwrap();
        let e = &v["error"];
        assert_eq!(e["kind"], "kernel");
        assert_eq!(e["step"], "create-veth");
        assert_eq!(e["object"], "veth1pl5");
        assert_eq!(e["errno"], libc::EINVAL);
        assert_eq!(e["left_behind"], serde_json::json!(["link a", "link b"]));
        assert!(e["message"].as_str().unwrap().contains("bad mtu"));
        assert!(rb.to_string().contains("left behind: link a; link b"));
    }

    #[test]
    fn plain_errors_have_no_step_or_errno() {
        let v: serde_json::Value =
            serde_json::from_str(&Error::Engine("no engine".into()).to_json()).unwrap();
        assert_eq!(v["error"]["kind"], "engine_unreachable");
        assert!(v["error"]["step"].is_null());
        assert!(v["error"]["errno"].is_null());
    }
}
