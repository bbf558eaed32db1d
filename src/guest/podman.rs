//! Podman (rootful): the same Engine API as Docker (`GET /containers/{id}/json`), on Podman's
//! own socket (`podman system service`, or the podman.socket unit). The socket is, in this
//! order: `$CONTAINER_HOST` when it is `unix://PATH` (Podman's own variable), else
//! /run/podman/podman.sock.

use std::path::PathBuf;

use crate::error::Error;

pub const DEFAULT_SOCKET: &str = "/run/podman/podman.sock";
pub const HOST_ENV: &str = "CONTAINER_HOST";

/// The Podman API socket: `$CONTAINER_HOST=unix://PATH` when set, else the rootful default.
pub fn socket_path() -> Result<PathBuf, Error> {
    socket_from(std::env::var(HOST_ENV).ok().as_deref())
}

fn socket_from(host: Option<&str>) -> Result<PathBuf, Error> {
    match host {
        Some(h) if !h.is_empty() => match h.strip_prefix("unix://") {
            Some(p) if p.starts_with('/') => Ok(PathBuf::from(p)),
            _ => Err(Error::Guest(format!(
                "{HOST_ENV}={h}: pipework talks to Podman on its local unix socket \
                 (unix:///path/to/podman.sock); a remote engine's containers are not on this \
                 host"
            ))),
        },
        _ => Ok(PathBuf::from(DEFAULT_SOCKET)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_order() {
        assert_eq!(socket_from(None).unwrap(), PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(
            socket_from(Some("")).unwrap(),
            PathBuf::from(DEFAULT_SOCKET)
        );
        assert_eq!(
            socket_from(Some("unix:///tmp/p.sock")).unwrap(),
            PathBuf::from("/tmp/p.sock")
        );
        assert!(socket_from(Some("ssh://root@h/run/podman/podman.sock")).is_err());
        assert!(socket_from(Some("unix://rel.sock")).is_err());
    }
}
