//! `pipework watch`: keeps containers plumbed across restarts. It follows the engine's event
//! stream (Docker's, or Podman's on its Docker-compatible socket) and, when a container starts,
//! applies the attachments asked for by its labels (`pipework.1=br1 192.168.1.5/24@192.168.1.1`,
//! `pipework.2=…`; the command line's grammar without the guest) and by a rules file; when it
//! dies, undoes them (`detach`). On start it catches up with containers already running, and it
//! reconnects when the engine restarts. Each attach is the same typed request run by an engine
//! session as the command line's. Containers are handled concurrently: each container's events
//! go, in order, to a worker thread of its own (with its own session), so one container's 10 s
//! DHCP wait never stalls another's start or death.
//!
//! Without a MAC in the spec, the interface gets a MAC derived from the container's name and
//! the interface (as `U:<name>/<if>` would): a restarted container gets the same MAC back, and
//! so the same DHCP lease.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::engine::{Session, SessionOptions};
use crate::error::Error;
use crate::guest::{Engine, GuestSpec};
use crate::mac::MacAddr;
use crate::request::{AttachRequest, Target};

/// An engine answer larger than this is not one we asked for.
const MAX_ANSWER: u64 = 16 << 20;
/// A worker with no event for this long ends (a new event starts a new one).
const WORKER_IDLE: Duration = Duration::from_secs(30);

/// `{"rules": [{"match": {"name": "web*", "label": "role=front", "image": "nginx*"},
///              "attach": ["br1 192.168.1.5/24@192.168.1.1", "br2 dhcp"]}]}`
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Rules {
    #[serde(default)]
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Rule {
    #[serde(rename = "match", default)]
    pub matches: Match,
    pub attach: Vec<String>,
}

/// Every given field must match; `*` in name and image is a wildcard.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Match {
    pub name: Option<String>,
    /// `key=value`, or `key` for presence.
    pub label: Option<String>,
    pub image: Option<String>,
}

/// What the watcher knows of a container.
#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub image: String,
    pub labels: Vec<(String, String)>,
}

pub fn load_rules(path: &Path) -> Result<Rules, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("cannot read rules file {}", path.display()), e))?;
    parse_rules(&text, &path.display().to_string())
}

/// A rules file's text (`origin` names it in the error): pure, so it can be fuzzed.
pub fn parse_rules(text: &str, origin: &str) -> Result<Rules, Error> {
    serde_json::from_str(text).map_err(|e| Error::Invalid(format!("rules file {origin}: {e}")))
}

/// Shell-style `*` wildcard. Iterative, retrying only from the last `*`: O(len × pattern).
/// Trying every split at every `*` (the first version) grew as len^stars: `*a` six times then
/// `b` against a 40-byte name took seconds, and a container's name is not ours to choose.
/// Bytewise is exact for UTF-8: a literal run cannot match from the middle of a character.
fn glob(pattern: &str, s: &str) -> bool {
    let (p, s) = (pattern.as_bytes(), s.as_bytes());
    let (mut pi, mut si) = (0, 0);
    // The last `*` seen, and where in `s` its match ends for now.
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if p.get(pi) == Some(&b'*') {
            star = Some((pi, si));
            pi += 1;
        } else if p.get(pi) == Some(&s[si]) {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            // The last `*` takes one byte more.
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|b| *b == b'*')
}

impl Match {
    pub fn matches(&self, c: &Container) -> bool {
        self.name.as_ref().is_none_or(|p| glob(p, &c.name))
            && self.image.as_ref().is_none_or(|p| glob(p, &c.image))
            && self.label.as_ref().is_none_or(|l| match l.split_once('=') {
                Some((k, v)) => c.labels.iter().any(|(a, b)| a == k && b == v),
                None => c.labels.iter().any(|(a, _)| a == l),
            })
    }
}

/// The attachment specs for a container: its `pipework`/`pipework.N` labels (in N order),
/// then the rules that match it.
pub fn specs_for(c: &Container, rules: &Rules) -> Vec<String> {
    let mut labelled: Vec<(u32, String)> = c
        .labels
        .iter()
        .filter_map(|(k, v)| {
            if k == "pipework" {
                Some((0, v.clone()))
            } else {
                k.strip_prefix("pipework.")
                    .and_then(|n| n.parse::<u32>().ok())
                    .map(|n| (n, v.clone()))
            }
        })
        .collect();
    labelled.sort();
    let mut out: Vec<String> = labelled.into_iter().map(|(_, v)| v).collect();
    for r in rules.rules.iter().filter(|r| r.matches.matches(c)) {
        out.extend(r.attach.iter().cloned());
    }
    out
}

/// Turns a spec (`br1 -i eth2 10.0.0.5/24@10.0.0.1`) into the typed request for this
/// container, with the CLI's own typed parser.
pub fn request_for(c: &Container, spec: &str) -> Result<AttachRequest, Error> {
    let mut req = crate::grammar::parse_attach_spec(spec, GuestSpec::Docker(c.id.clone()))
        .map_err(|e| match e {
            Error::Invalid(m) => Error::Invalid(format!("{}: {m}", c.name)),
            e => e,
        })?;
    if req.mac.is_none() && !req.direct_phys {
        let ifname = req.guest_ifname.as_deref().unwrap_or("eth1");
        req.mac = Some(MacAddr::hashed(&format!("{}/{ifname}", c.name)));
    }
    Ok(req)
}

/// A container ID as the engines make them: 64 (or a 12+ prefix of) hexadecimal digits. An
/// ID from an event is checked before it goes anywhere (a path, a record).
pub fn valid_id(id: &str) -> bool {
    (12..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit())
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

// ---- the engine's API ------------------------------------------------------------------------

fn engine_socket() -> Result<PathBuf, Error> {
    crate::guest::docker::socket_path()
}

/// One GET on the engine's socket, JSON answer.
fn get_json(sock: &Path, path: &str) -> Result<Value, Error> {
    let mut s = UnixStream::connect(sock)
        .map_err(|e| Error::Engine(format!("no container engine at {} ({e})", sock.display())))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    write!(s, "GET {path} HTTP/1.0\r\nHost: engine\r\n\r\n")
        .map_err(|e| Error::io("engine API", e))?;
    let mut buf = Vec::new();
    s.take(MAX_ANSWER)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io("engine API", e))?;
    parse_answer(path, &buf)
}

/// The engine's HTTP answer to `GET path`: its JSON body, `Null` for a 404. Pure, so it can be
/// fuzzed.
pub fn parse_answer(path: &str, buf: &[u8]) -> Result<Value, Error> {
    let at = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| Error::Engine("unreadable answer from the engine".into()))?;
    let status = std::str::from_utf8(&buf[..at])
        .ok()
        .and_then(|h| h.split_whitespace().nth(1))
        .and_then(|c| c.parse::<u16>().ok())
        .unwrap_or(0);
    if status == 404 {
        return Ok(Value::Null);
    }
    if status != 200 {
        return Err(Error::Engine(format!(
            "the engine answered {path} with status {status}"
        )));
    }
    serde_json::from_slice(&buf[at + 4..])
        .map_err(|e| Error::Engine(format!("unreadable answer from the engine: {e}")))
}

/// What the watcher knows of a container, from its inspect answer.
pub fn container_of(v: &Value) -> Option<Container> {
    let id = v.get("Id")?.as_str()?.to_string();
    let name = v
        .get("Name")
        .and_then(Value::as_str)
        .map(|n| n.trim_start_matches('/').to_string())
        .unwrap_or_default();
    let config = v.get("Config");
    let image = config
        .and_then(|c| c.get("Image"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let labels = config
        .and_then(|c| c.get("Labels"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    Some(Container {
        id,
        name,
        image,
        labels,
    })
}

fn inspect(sock: &Path, id: &str) -> Result<Option<Container>, Error> {
    if !valid_id(id) {
        return Ok(None);
    }
    Ok(container_of(&get_json(
        sock,
        &format!("/containers/{id}/json"),
    )?))
}

fn running(sock: &Path) -> Result<Vec<String>, Error> {
    let v = get_json(sock, "/containers/json")?;
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("Id").and_then(Value::as_str).map(String::from))
        .filter(|id| valid_id(id))
        .collect())
}

/// Which engine serves the Docker API on `sock`: Podman says so in `/version`.
fn api_engine(sock: &Path) -> Engine {
    engine_of_version(&get_json(sock, "/version").unwrap_or(Value::Null))
}

/// Podman names itself among the `Components` of its `/version` answer; anything else is
/// Docker. Pure, so it can be fuzzed.
pub fn engine_of_version(v: &Value) -> Engine {
    let podman = v
        .get("Components")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| {
            c.get("Name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.to_ascii_lowercase().contains("podman"))
        });
    if podman {
        Engine::Podman
    } else {
        Engine::Docker
    }
}

// ---- the loop ------------------------------------------------------------------------------

pub struct Watcher {
    pub rules_path: Option<PathBuf>,
    /// `watch --lab FILE`: a guest of the lab that starts gets its part re-converged.
    pub lab_path: Option<PathBuf>,
    pub verbose: bool,
}

#[derive(Debug, Clone)]
enum Event {
    Start,
    Die,
}

/// One worker thread per container with events pending: a container's events run in order,
/// different containers' at the same time.
#[derive(Clone, Default)]
struct Workers {
    queues: Arc<Mutex<HashMap<String, mpsc::Sender<Event>>>>,
}

/// What a worker needs to handle a container's events.
#[derive(Clone)]
struct Ctx {
    sock: PathBuf,
    rules_path: Option<PathBuf>,
    lab_path: Option<PathBuf>,
    verbose: bool,
    engine: Engine,
}

impl Workers {
    fn send(&self, ctx: &Ctx, id: &str, ev: Event) {
        let mut q = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = q.get(id) {
            if tx.send(ev.clone()).is_ok() {
                return;
            }
        }
        let (tx, rx) = mpsc::channel();
        let _ = tx.send(ev);
        q.insert(id.to_string(), tx);
        let (me, ctx, owned) = (self.clone(), ctx.clone(), id.to_string());
        let spawned = std::thread::Builder::new()
            .name(format!("watch-{}", short(id)))
            .spawn(move || me.work(&ctx, &owned, rx));
        if let Err(e) = spawned {
            q.remove(id);
            tracing::warn!("{}: cannot start a worker: {e}", short(id));
        }
    }

    fn work(&self, ctx: &Ctx, id: &str, rx: mpsc::Receiver<Event>) {
        let mut session = None;
        loop {
            let ev = match rx.recv_timeout(WORKER_IDLE) {
                Ok(ev) => ev,
                Err(_) => {
                    // Idle: leave, unless an event arrived while we were deciding.
                    let mut q = self.queues.lock().unwrap_or_else(|p| p.into_inner());
                    match rx.try_recv() {
                        Ok(ev) => {
                            drop(q);
                            ev
                        }
                        Err(_) => {
                            q.remove(id);
                            return;
                        }
                    }
                }
            };
            if session.is_none() {
                match Session::open(SessionOptions {
                    verbose: ctx.verbose,
                }) {
                    Ok(mut s) => {
                        s.set_api_engine(ctx.engine);
                        session = Some(s);
                    }
                    Err(e) => {
                        tracing::warn!("{}: {e}", short(id));
                        continue;
                    }
                }
            }
            let s = session.as_mut().expect("opened above");
            match ev {
                Event::Start => plumb(s, ctx, id),
                Event::Die => unplumb(s, id),
            }
        }
    }
}

fn rules(path: &Option<PathBuf>) -> Rules {
    match path {
        None => Rules::default(),
        // Re-read at each container start: edits apply without a restart.
        Some(p) => load_rules(p).unwrap_or_else(|e| {
            tracing::warn!("{e}; using no rules");
            Rules::default()
        }),
    }
}

fn plumb(s: &mut Session, ctx: &Ctx, id: &str) {
    let c = match inspect(&ctx.sock, id) {
        Ok(Some(c)) => c,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!("cannot inspect {}: {e}", short(id));
            return;
        }
    };
    if let Some(p) = &ctx.lab_path {
        plumb_lab(s, p, &c);
    }
    for spec in specs_for(&c, &rules(&ctx.rules_path)) {
        let r = request_for(&c, &spec).and_then(|req| s.attach(&req, false));
        match r {
            Ok(_) => tracing::info!("{}: attached {spec}", c.name),
            // Caught up with an attachment that is already there.
            Err(Error::InterfaceExists(_)) => {}
            Err(e) => tracing::warn!("{}: {spec}: {e}", c.name),
        }
    }
}

/// The key of the lab's guest that this container is (by name, `docker:`/`podman:` name, or
/// an ID prefix of at least 4).
pub fn lab_guest_of(c: &Container, req: &crate::lab::LabRequest) -> Option<String> {
    use crate::guest::GuestSpec;
    req.guests.iter().find_map(|(key, g)| {
        let n = match &g.spec {
            GuestSpec::Auto(n) | GuestSpec::Docker(n) | GuestSpec::Podman(n) => n,
            _ => return None,
        };
        let hit = *n == c.name || (n.len() >= 4 && c.id.starts_with(n.as_str()));
        hit.then(|| key.clone())
    })
}

/// A lab guest started: the lab is applied again (everything else is already as the file
/// says, so only that guest's part changes). The file is re-read each time: edits apply.
fn plumb_lab(s: &mut Session, path: &Path, c: &Container) {
    let req = match crate::topology::load(path)
        .and_then(|l| crate::topology::to_request(&l))
        .and_then(|r| s.lab_localize(&r, None))
    {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("lab {}: {e}", path.display());
            return;
        }
    };
    let Some(key) = lab_guest_of(c, &req) else {
        return;
    };
    // Several guests may start at once: one apply at a time per lab.
    for attempt in 0..50 {
        match s.lab_apply(&req) {
            Ok(rep) => {
                tracing::info!(
                    "{}: lab {} guest {key}: {} changes",
                    c.name,
                    req.lab,
                    rep.changes.len()
                );
                return;
            }
            Err(Error::Busy(_)) if attempt < 49 => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => {
                tracing::warn!("{}: lab {} guest {key}: {e}", c.name, req.lab);
                return;
            }
        }
    }
}

fn unplumb(s: &mut Session, id: &str) {
    let t = Target::DeadContainer { id: id.to_string() };
    match s.detach(&t, false) {
        Ok(done) if !done.actions.is_empty() => {
            tracing::info!("{}: detached ({} actions)", short(id), done.actions.len())
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("{}: {e}", short(id)),
    }
}

impl Watcher {
    /// Undoes the attachments of every container (recorded by ID) whose namespace is gone.
    fn reap_dead(&self, workers: &Workers, ctx: &Ctx) {
        let ids: std::collections::BTreeSet<String> = crate::store::scan()
            .records
            .into_iter()
            .filter(|r| !crate::store::guest_alive(r))
            .filter_map(|r| r.header.guest.id)
            .filter(|id| valid_id(id))
            .collect();
        for id in ids {
            workers.send(ctx, &id, Event::Die);
        }
    }

    /// Follows the engine forever, reconnecting after it goes away.
    pub fn run(&self) -> Result<(), Error> {
        let sock = engine_socket()?;
        let workers = Workers::default();
        let mut backoff = Duration::from_millis(200);
        loop {
            let mut connected = false;
            match self.session(&sock, &workers, &mut connected) {
                Ok(()) => tracing::info!("the engine closed its event stream"),
                Err(e) => tracing::warn!("{e}"),
            }
            if connected {
                backoff = Duration::from_millis(200);
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// One connection: subscribe first, then catch up, then follow.
    fn session(&self, sock: &Path, workers: &Workers, connected: &mut bool) -> Result<(), Error> {
        let mut s = UnixStream::connect(sock)
            .map_err(|e| Error::io(format!("no container engine at {}", sock.display()), e))?;
        // Podman (4.3 and older) matches an event filter against its own name for a death,
        // `died`, though its Docker-compatible stream reports it as `die`: ask for both
        // (Docker accepts, and never sends, `died`).
        let filters = r#"{"type":["container"],"event":["start","die","died"]}"#;
        write!(
            s,
            "GET /events?filters={} HTTP/1.0\r\nHost: engine\r\n\r\n",
            urlencode(filters)
        )
        .map_err(|e| Error::io("engine events", e))?;
        let mut r = BufReader::new(s);
        let mut line = String::new();
        // Headers.
        loop {
            line.clear();
            if r.read_line(&mut line)
                .map_err(|e| Error::io("engine events", e))?
                == 0
            {
                return Ok(());
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
        }
        tracing::info!("following events at {}", sock.display());
        *connected = true;
        let ctx = Ctx {
            sock: sock.to_path_buf(),
            rules_path: self.rules_path.clone(),
            lab_path: self.lab_path.clone(),
            verbose: self.verbose,
            engine: api_engine(sock),
        };
        // Catch up: containers that died while we were away, then those running now.
        self.reap_dead(workers, &ctx);
        for id in running(sock)? {
            workers.send(&ctx, &id, Event::Start);
        }
        let mut de = serde_json::Deserializer::from_reader(r).into_iter::<Value>();
        for ev in de.by_ref() {
            let ev = ev.map_err(|e| Error::Engine(format!("engine events: {e}")))?;
            match event_of(&ev) {
                Seen::Start(id) => workers.send(&ctx, id, Event::Start),
                Seen::Die(id) => workers.send(&ctx, id, Event::Die),
                Seen::BadId => {
                    tracing::warn!("ignoring an event for a malformed container ID")
                }
                Seen::Other => {}
            }
        }
        Ok(())
    }
}

/// What one event of the engine's stream asks of the watcher.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen<'a> {
    /// A container started: its (checked) ID.
    Start(&'a str),
    Die(&'a str),
    /// A start or death with an ID that is not one (never used in a path or a record).
    BadId,
    /// Anything else: another action, or no ID.
    Other,
}

/// Classifies one event (Docker's `Action`/`Actor.ID`, or the older `status`/`id`). Pure, so it
/// can be fuzzed.
pub fn event_of(ev: &Value) -> Seen<'_> {
    let action = ev
        .get("Action")
        .or_else(|| ev.get("status"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(id) = ev
        .pointer("/Actor/ID")
        .or_else(|| ev.get("id"))
        .and_then(Value::as_str)
    else {
        return Seen::Other;
    };
    if !valid_id(id) {
        return Seen::BadId;
    }
    match action {
        "start" => Seen::Start(id),
        // `died`: the `Action` of Podman 3's Docker-compatible stream.
        "die" | "died" => Seen::Die(id),
        _ => Seen::Other,
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web() -> Container {
        Container {
            id: "0123456789ab".into(),
            name: "web1".into(),
            image: "nginx:1.25".into(),
            labels: vec![
                ("pipework.2".into(), "br2 dhcp".into()),
                ("pipework.1".into(), "br1 192.168.1.5/24@192.168.1.1".into()),
                ("role".into(), "front".into()),
            ],
        }
    }

    #[test]
    fn labels_in_order_then_rules() {
        let rules: Rules = serde_json::from_str(
            r#"{"rules":[{"match":{"name":"web*","label":"role=front"},"attach":["ovsbr0 10.0.4.2/24 @10"]},
                         {"match":{"image":"redis*"},"attach":["br9 0/0"]}]}"#,
        )
        .unwrap();
        assert_eq!(
            specs_for(&web(), &rules),
            [
                "br1 192.168.1.5/24@192.168.1.1",
                "br2 dhcp",
                "ovsbr0 10.0.4.2/24 @10"
            ]
        );
    }

    /// Found writing the rules fuzz target (fuzz/): many stars against a long name must not
    /// take time exponential in the stars.
    #[test]
    fn globs_are_linear() {
        let name = "a".repeat(4096);
        let t = std::time::Instant::now();
        assert!(!glob(&format!("{}b", "*a".repeat(40)), &name));
        assert!(glob(&"*a".repeat(40), &name));
        assert!(t.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn globs() {
        assert!(glob("web*", "web1"));
        assert!(glob("*:1.25", "nginx:1.25"));
        assert!(glob("a*b*c", "aXbYc"));
        assert!(!glob("web*", "db1"));
        assert!(glob("exact", "exact"));
        assert!(glob("*", "") && glob("**", "x") && glob("", "") && !glob("", "x"));
        assert!(glob("a*", "a") && !glob("a*b", "a") && glob("*ab", "aab"));
        assert!(glob("*é*", "xéy") && !glob("*é", "xe"));
        assert!(glob("web*-*1", "web-a-b-1") && !glob("web*-*1", "web-a-b-2"));
    }

    #[test]
    fn spec_becomes_a_request_with_a_stable_mac() {
        let r = request_for(&web(), "br1 -i eth2 10.0.0.5/24@10.0.0.1").unwrap();
        assert_eq!(
            r.guest,
            crate::guest::GuestSpec::Docker("0123456789ab".into())
        );
        assert_eq!(r.guest_ifname.as_deref(), Some("eth2"));
        assert_eq!(r.mac, Some(MacAddr::hashed("web1/eth2")));
        let r = request_for(&web(), "br1 10.0.0.5/24 02:00:00:00:00:09").unwrap();
        assert_eq!(r.mac.unwrap().to_string(), "02:00:00:00:00:09");
        assert!(request_for(&web(), "").is_err());
        assert!(request_for(&web(), "br1").is_err());
        assert!(request_for(&web(), "ls").is_err());
        assert!(request_for(&web(), "br1 10.0.0.5/24 --all").is_err());
    }

    #[test]
    fn event_ids_are_checked() {
        assert!(valid_id("0123456789ab"));
        assert!(valid_id(&"f".repeat(64)));
        assert!(!valid_id("0123456789a"), "too short");
        assert!(!valid_id("../../etc/passwd0"));
        assert!(!valid_id("0123456789aé"), "non-ASCII");
        assert_eq!(short("0123456789abcdef"), "0123456789ab");
        assert_eq!(short("é"), "é", "never slices inside a character");
    }

    #[test]
    fn filters_are_url_encoded() {
        assert_eq!(urlencode(r#"{"a":["b"]}"#), "%7B%22a%22%3A%5B%22b%22%5D%7D");
    }
}
