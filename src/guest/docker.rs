//! The Docker Engine API (also served by Podman's socket): one `GET /containers/{id}/json`
//! over the unix socket. HTTP/1.0 so the daemon closes the connection when done; no HTTP
//! client stack for one request.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::Error;

pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// The engine socket: `DOCKER_HOST=unix://PATH` when set, else /var/run/docker.sock.
pub fn socket_path() -> Result<PathBuf, Error> {
    match std::env::var("DOCKER_HOST") {
        Ok(h) if !h.is_empty() => match h.strip_prefix("unix://") {
            Some(p) => Ok(PathBuf::from(p)),
            None => Err(Error::Guest(format!(
                "DOCKER_HOST={h}: pipework talks to the engine on its local unix socket \
                 (unix:///path/to/docker.sock); a remote engine's containers are not on this host"
            ))),
        },
        _ => Ok(PathBuf::from(DEFAULT_SOCKET)),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Container {
    pub id: String,
    pub name: String,
    pub state: State,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct State {
    #[serde(default)]
    pub running: bool,
    #[serde(default)]
    pub paused: bool,
    #[serde(default)]
    pub pid: u32,
    #[serde(default)]
    pub status: String,
}

/// Docker's rule for names and IDs; anything else never reaches the URL path.
pub fn valid_reference(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// The answer of the engine: found, unknown to it, or no engine at that socket.
#[derive(Debug)]
pub enum Lookup {
    Found(Container),
    NotFound,
    NoEngine(String),
}

pub fn inspect(socket: &Path, reference: &str) -> Result<Lookup, Error> {
    if !valid_reference(reference) {
        return Err(Error::Invalid(format!(
            "'{reference}' is not a valid container name or ID"
        )));
    }
    let mut stream = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e) => {
            return Ok(Lookup::NoEngine(format!(
                "no container engine answers at {} ({e})",
                socket.display()
            )))
        }
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    let req = format!("GET /containers/{reference}/json HTTP/1.0\r\nHost: docker\r\n\r\n");
    let io_err = |e| Error::io(format!("engine API at {}", socket.display()), e);
    stream.write_all(req.as_bytes()).map_err(io_err)?;
    let mut resp = Vec::with_capacity(16 * 1024);
    stream.read_to_end(&mut resp).map_err(io_err)?;
    parse_inspect_answer(&resp, socket, reference)
}

/// The engine's HTTP answer to `GET /containers/{reference}/json` (Docker's or Podman's
/// compatible API), as read from `socket`: pure, so it can be fuzzed.
pub fn parse_inspect_answer(resp: &[u8], socket: &Path, reference: &str) -> Result<Lookup, Error> {
    let (status, body) = split_http(resp).ok_or_else(|| {
        Error::Guest(format!(
            "the engine at {} sent an unreadable answer",
            socket.display()
        ))
    })?;
    match status {
        200 => {
            let c: Container = serde_json::from_slice(body).map_err(|e| {
                Error::Guest(format!(
                    "unexpected answer from the engine for {reference}: {e}"
                ))
            })?;
            Ok(Lookup::Found(c))
        }
        404 => Ok(Lookup::NotFound),
        _ => {
            #[derive(Deserialize)]
            struct Msg {
                message: String,
            }
            let msg = serde_json::from_slice::<Msg>(body)
                .map(|m| m.message)
                .unwrap_or_else(|_| String::from_utf8_lossy(body).into_owned());
            Err(Error::Guest(format!(
                "the engine refused to inspect container {reference}: {msg}"
            )))
        }
    }
}

fn split_http(resp: &[u8]) -> Option<(u16, &[u8])> {
    let end = resp.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&resp[..end]).ok()?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, &resp[end + 4..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert!(valid_reference("web1"));
        assert!(valid_reference("555e98e6cf14"));
        assert!(valid_reference("my_app.v2-1"));
        assert!(!valid_reference(""));
        assert!(!valid_reference("-web"));
        assert!(!valid_reference("web 1"));
        assert!(!valid_reference("../../info"));
        assert!(!valid_reference("a?b"));
    }

    #[test]
    fn parses_http_answer() {
        let r =
            b"HTTP/1.0 404 Not Found\r\nContent-Type: application/json\r\n\r\n{\"message\":\"x\"}";
        let (s, b) = split_http(r).unwrap();
        assert_eq!(s, 404);
        assert_eq!(b, b"{\"message\":\"x\"}");
    }

    #[test]
    fn parses_container_json() {
        let body = br#"{"Id":"abc","Name":"/web1","State":{"Status":"running","Running":true,"Paused":false,"Pid":42}}"#;
        let c: Container = serde_json::from_slice(body).unwrap();
        assert_eq!(
            (c.id.as_str(), c.name.as_str(), c.state.pid),
            ("abc", "/web1", 42)
        );
        assert!(c.state.running);
    }
}
