//! Typed errors of the library. Every message says what failed, on which object, and what to do.

use std::io;

use crate::netlink::NlError;

/// Exit status for errors found in the command line or its values, before anything is touched.
pub const EXIT_USAGE: i32 = 2;
/// Exit status for every other failure (after a full rollback).
pub const EXIT_FAILURE: i32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line does not follow the grammar.
    #[error("{0}")]
    Usage(String),

    /// A value on the command line is malformed (address, MAC, name, number).
    #[error("{0}")]
    Invalid(String),

    #[error("{0}")]
    Guest(String),

    #[error("{0}")]
    HostInterface(String),

    #[error("{0}")]
    Busy(String),

    /// The guest already has an interface of the name asked for (what `watch` takes as
    /// "already plumbed" when it catches up).
    #[error("{0}")]
    InterfaceExists(String),

    #[error("{0}")]
    Permission(String),

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

    /// A step failed; the rollback ran. Carries the step's name for the user.
    #[error("step {step} failed: {source}")]
    Step {
        step: &'static str,
        #[source]
        source: Box<Error>,
    },

    /// Test hook (PIPEWORK_TEST_FAIL_STEP): fail right after a step, to prove the rollback.
    #[error("injected failure after step {0}")]
    Injected(&'static str),

    /// A rollback action failed as well: the original error and what could not be undone.
    #[error("{source}\nrollback incomplete, left behind: {left}")]
    Rollback {
        #[source]
        source: Box<Error>,
        left: String,
    },
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::Invalid(_) => EXIT_USAGE,
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

    /// The kernel errno behind this error, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Netlink { source, .. } => Some(source.errno),
            Error::Step { source, .. } | Error::Rollback { source, .. } => source.errno(),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
