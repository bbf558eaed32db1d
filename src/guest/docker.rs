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

/// The most an engine's answer may be (a container's inspect JSON is a few KiB).
pub const MAX_ANSWER: u64 = 16 << 20;

impl Container {
    /// An engine's answer is input like any other: the ID must be a full hex ID, the name a
    /// name, the PID a possible one, and the container the one asked for (by name or by a
    /// prefix of its ID), before any of it names a namespace or lands in a record.
    pub fn validate(&self, reference: &str) -> Result<(), Error> {
        let bad = |what: String| {
            Error::Guest(format!(
                "the engine's answer for {reference} is not usable: {what}"
            ))
        };
        if !(self.id.len() == 64 && self.id.bytes().all(|b| b.is_ascii_hexdigit())) {
            return Err(bad(format!(
                "container ID {:?} is not 64 hex digits",
                self.id
            )));
        }
        let name = self.name.strip_prefix('/').unwrap_or(&self.name);
        if name.len() > 255 || !valid_reference(name) {
            return Err(bad(format!(
                "container name {:?} is not a valid name",
                self.name
            )));
        }
        if !crate::guest::valid_pid(self.state.pid) && self.state.pid != 0 {
            return Err(bad(format!("PID {} is out of range", self.state.pid)));
        }
        if name != reference && !self.id.starts_with(reference) {
            return Err(bad(format!(
                "it describes container {name} ({}), not the one asked for",
                &self.id[..12]
            )));
        }
        Ok(())
    }
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
    // Bounded: an engine (or whatever listens there) is not trusted to end its answer.
    (&mut stream)
        .take(MAX_ANSWER + 1)
        .read_to_end(&mut resp)
        .map_err(io_err)?;
    if resp.len() as u64 > MAX_ANSWER {
        return Err(Error::Guest(format!(
            "the engine at {} answered with more than {MAX_ANSWER} bytes for {reference}",
            socket.display()
        )));
    }
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
            c.validate(reference)?;
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

    const ID: &str = "555e98e6cf14a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a";

    fn answer(id: &str, name: &str, pid: u64) -> Container {
        let body = format!(
            r#"{{"Id":"{id}","Name":"{name}","State":{{"Status":"running","Running":true,"Paused":false,"Pid":{pid}}}}}"#
        );
        serde_json::from_str(&body).unwrap()
    }

    #[test]
    fn parses_container_json() {
        let c = answer(ID, "/web1", 42);
        assert_eq!(
            (c.id.as_str(), c.name.as_str(), c.state.pid),
            (ID, "/web1", 42)
        );
        assert!(c.state.running);
        c.validate("web1").unwrap();
        c.validate("555e98e6cf14").unwrap();
        c.validate(ID).unwrap();
    }

    #[test]
    fn hostile_answers_are_refused() {
        let msg = |c: Container, r: &str| c.validate(r).unwrap_err().to_string();
        assert!(msg(answer("abc", "/web1", 42), "web1").contains("64 hex"));
        assert!(msg(answer(&"é".repeat(32), "/web1", 42), "web1").contains("64 hex"));
        assert!(msg(answer(ID, "/../../etc", 42), "web1").contains("not a valid name"));
        assert!(msg(answer(ID, "/web1", 4_194_305), "web1").contains("out of range"));
        assert!(msg(answer(ID, "/db", 42), "web1").contains("not the one asked for"));
        // A stopped container has PID 0: fine.
        answer(ID, "/web1", 0).validate("web1").unwrap();
    }
}
