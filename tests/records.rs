//! Attachment records and what the lifecycle commands make of them, plus errors as JSON.
//!
//! - Records never block, and broken ones are named: a FIFO, corrupt JSON, a truncated record,
//!   a record of a future version and a directory among the records; `ls`, `ls --json`, `gc`
//!   and `detach --all` finish, exit 0, warn about each (one line naming the file) and still
//!   handle the good record; the bad files stay.
//! - A namespace re-created under the same name is not the old guest: its record is stale and
//!   neither `detach NAME` nor `gc` touches the new namespace's `eth1`.
//! - Records carry the engine (`ls --json` "engine"), and `detach ENGINE:NAME` only matches
//!   records of that engine.
//! - `pipework --json …` failing prints exactly one `{"error": {…}}` object on stdout (kind,
//!   step, object, errno, message), the human message on stderr, the usual exit code; without
//!   `--json` nothing goes to stdout.
//!
//! Each test has its own host namespace, guests and runtime directory. Subnets 10.226.20+.x.

mod common;
use common::*;

use serde_json::Value;
use std::collections::BTreeSet;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A command that does not finish in this time blocks: the test fails (and kills it).
const LIMIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// A host namespace and this test's runtime directory. Fields drop in order: the runtime
/// directory (stopping anything the runs left running, then removing it), then the namespace.
struct World {
    rt: RuntimeDir,
    host: Netns,
}

impl World {
    fn new() -> World {
        World {
            rt: RuntimeDir::new(),
            host: Netns::new("h"),
        }
    }

    fn pw_env(&self, args: &[&str], extra: &[(&str, &str)]) -> Run {
        let mut env = vec![("PIPEWORK_RUNTIME_DIR", self.rt.path())];
        env.extend_from_slice(extra);
        pipework_within(
            &self.host,
            args,
            &Opts {
                env,
                ..Default::default()
            },
            LIMIT,
        )
    }

    /// pipework in the host namespace with this test's runtime directory; at most [`LIMIT`].
    fn pw(&self, args: &[&str]) -> Run {
        self.pw_env(args, &[])
    }

    /// An attach with `--json` that must succeed; its report.
    fn attach(&self, args: &[&str]) -> Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        self.pw(&full).ok().json()
    }

    /// `pipework ls --json`: must exit 0 and print an array.
    fn ls(&self) -> Vec<Value> {
        ls_array(self.pw(&["ls", "--json"]).ok())
    }

    fn attachments_dir(&self) -> PathBuf {
        self.rt.dir.join("attachments")
    }
}

/// The attachments of `ls --json`: its array (or the "attachments" array of an object).
fn ls_array(r: &Run) -> Vec<Value> {
    match r.json() {
        Value::Array(v) => v,
        Value::Object(mut o) if o.get("attachments").is_some_and(Value::is_array) => {
            match o.remove("attachments") {
                Some(Value::Array(v)) => v,
                _ => unreachable!(),
            }
        }
        other => panic!("pipework ls --json: expected an array of attachments, got {other}"),
    }
}

/// Waits (up to 5 s) until these host links are gone (a guest's namespace, and the veth pairs
/// in it, are destroyed asynchronously).
fn wait_links_gone(host: &Netns, names: &[String]) {
    assert!(
        wait_until(Duration::from_secs(5), || names
            .iter()
            .all(|n| link(host, n).is_none())),
        "the kernel removed {names:?} with their guests' namespaces; links now: {:?}",
        link_names(host)
    );
}

// ---------------------------------------------------------------------------------------------
// Broken records
// ---------------------------------------------------------------------------------------------

/// One bad entry among the records, and how to check it was left alone.
enum Bad {
    Fifo(PathBuf),
    Dir(PathBuf),
    File(PathBuf, Vec<u8>),
}

impl Bad {
    fn path(&self) -> &Path {
        match self {
            Bad::Fifo(p) | Bad::Dir(p) | Bad::File(p, _) => p,
        }
    }

    fn name(&self) -> String {
        self.path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }

    /// None when still in place as made.
    fn changed(&self) -> Option<String> {
        let p = self.path();
        let meta = match std::fs::symlink_metadata(p) {
            Ok(m) => m,
            Err(e) => return Some(format!("{} is gone ({e})", p.display())),
        };
        let ok = match self {
            Bad::Fifo(_) => meta.file_type().is_fifo(),
            Bad::Dir(_) => meta.is_dir(),
            Bad::File(_, content) => {
                meta.is_file() && std::fs::read(p).ok().as_ref() == Some(content)
            }
        };
        (!ok).then(|| format!("{} was changed", p.display()))
    }
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
    assert_eq!(
        rc,
        0,
        "mkfifo {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

/// Every bad entry is named on a stderr line that also says "warning".
fn warning_problems(r: &Run, bad: &[Bad]) -> Vec<String> {
    bad.iter()
        .filter(|b| {
            let name = b.name();
            !r.stderr
                .lines()
                .any(|l| l.to_lowercase().contains("warning") && l.contains(&name))
        })
        .map(|b| {
            format!(
                "pipework {}: no warning line naming {}",
                r.args.join(" "),
                b.name()
            )
        })
        .collect()
}

/// A FIFO named `x.json`, corrupt JSON, a truncated record, a record of version 99 and a
/// directory named `y.json`, beside a good record: `ls`, `ls --json`, `gc` and `detach --all`
/// each finish (within 10 s), exit 0, warn about each bad file by name, and still list and
/// detach the good one. The bad files are left in place.
#[test]
fn broken_records_never_block_and_are_named() {
    need_root!();
    let w = World::new();
    let g = Netns::new("g");
    let rep = w.attach(&["br1", &g.name, "10.226.20.2/24"]);
    let dir = w.attachments_dir();
    let good: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    assert_eq!(good.len(), 1, "one record for one attachment: {good:?}");
    // The good record: its first line is a JSON object with the version (the whole record, or
    // the header of a JSON Lines record); what follows it, if anything, is kept as it is.
    let text = std::fs::read_to_string(&good[0]).unwrap();
    let (first, rest) = text.split_once('\n').unwrap_or((text.as_str(), ""));
    let mut header: Value = serde_json::from_str(first)
        .unwrap_or_else(|e| panic!("the record's first line is JSON ({e}): {first}"));
    assert!(
        header["version"].as_u64().is_some_and(|v| v < 99),
        "the record has a version: {header}"
    );
    header["version"] = 99.into();
    let future = format!("{header}\n{rest}");
    // Cut in the middle of the first line: no reading of it is a whole record.
    let truncated = first[..first.len() / 2].to_string();

    let fifo = dir.join("x.json");
    mkfifo(&fifo);
    let subdir = dir.join("y.json");
    std::fs::create_dir(&subdir).unwrap();
    let files: Vec<(&str, Vec<u8>)> = vec![
        (
            "corrupt.json",
            b"{\"version\": 1, this is not JSON ]".to_vec(),
        ),
        ("truncated.json", truncated.into_bytes()),
        ("future.json", future.into_bytes()),
    ];
    let mut bad = vec![Bad::Fifo(fifo), Bad::Dir(subdir)];
    for (name, content) in files {
        let p = dir.join(name);
        std::fs::write(&p, &content).unwrap();
        bad.push(Bad::File(p, content));
    }

    let mut problems = vec![];

    // ls (the table): the good attachment's line.
    let r = w.pw(&["ls"]);
    r.ok();
    problems.extend(warning_problems(&r, &bad));
    assert!(
        r.stdout
            .lines()
            .any(|l| l.contains(&g.name) && l.split_whitespace().next() == Some("alive")),
        "ls lists the good attachment, alive:\n{}",
        r.stdout
    );

    // ls --json: exactly the good attachment (the future one is not misread as a second).
    let r = w.pw(&["ls", "--json"]);
    r.ok();
    problems.extend(warning_problems(&r, &bad));
    let ls = ls_array(&r);
    assert_eq!(ls.len(), 1, "only the good record is listed: {ls:#?}");
    assert_eq!(ls[0]["netns_inode"].as_u64(), Some(inode(&rep)), "{ls:#?}");
    assert_eq!(ls[0]["state"], "alive", "{ls:#?}");

    // gc: nothing of the good (live) attachment is touched.
    let r = w.pw(&["gc"]);
    r.ok();
    problems.extend(warning_problems(&r, &bad));
    assert_attached(&w.host, "br1", &g, "eth1", &["10.226.20.2/24"]);

    // detach --all: the good attachment goes.
    let r = w.pw(&["detach", "--all"]);
    r.ok();
    problems.extend(warning_problems(&r, &bad));
    assert!(
        r.stdout.contains(&host_ifname(&rep)),
        "detach --all says it removed {}:\n{}",
        host_ifname(&rep),
        r.stdout
    );
    assert!(
        link(&g, "eth1").is_none(),
        "the good attachment was detached"
    );
    assert_eq!(link_names(&w.host), ["lo"], "its host end and br1 are gone");
    assert!(!good[0].exists(), "the good record is removed");
    assert_eq!(w.ls(), Vec::<Value>::new(), "nothing listed any more");

    for b in &bad {
        problems.extend(b.changed());
    }
    assert!(
        problems.is_empty(),
        "broken records:\n  {}",
        problems.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------------
// A namespace re-created under the same name
// ---------------------------------------------------------------------------------------------

/// The world after: a macvlan attached into named namespace NAME, NAME deleted and made again
/// (with the old inode number when the kernel can be made to hand it out again), and in the
/// new NAME a veth `eth1` made by hand, with the old attachment's MAC even.
struct Recreated {
    w: World,
    _lan: Netns,
    _holders: Vec<Holder>,
    new: Netns,
    name: String,
    eth1: Link,
}

fn recreated_namespace(subnet: u8) -> Recreated {
    let w = World::new();
    let lan = Netns::new("l");
    veth_nic(&w.host, "pwn0", None, &lan, "lan0");
    ip(&w.host, &["link", "set", "pwn0", "up"]);
    let name = unique("g");
    let g = Netns::named(&name);
    let rep = w.attach(&["pwn0", &name, &format!("10.226.{subnet}.2/24")]);
    assert_eq!(rep["kind"], "macvlan", "{rep}");
    let mac = rep["mac"].as_str().expect("mac").to_string();
    let old = inode(&rep);
    assert_eq!(w.ls()[0]["state"], "alive");
    drop(g);

    // Make the name again until the new namespace gets the old inode number (the lowest free
    // one is handed out): those that get another number are kept alive by a process, under no
    // name, so the next try gets a higher one. At most 60 tries (another test may take the
    // number first); the checks hold either way, but only the same number makes a check by
    // name + inode fail, so the outcome is printed.
    let mut holders = vec![];
    let mut again = None;
    for _ in 0..60 {
        let n = Netns::named(&name);
        if netns_inode(&n) == old {
            again = Some(n);
            break;
        }
        holders.push(Holder::new(&n));
        drop(n);
        std::thread::sleep(Duration::from_millis(30));
    }
    let new = again.unwrap_or_else(|| Netns::named(&name));
    eprintln!(
        "old inode {old}, the new namespace's inode {} ({})",
        netns_inode(&new),
        if netns_inode(&new) == old {
            "the same number again"
        } else {
            "another number: the same-inode case is not exercised this time"
        }
    );
    ip(
        &new,
        &[
            "link", "add", "name", "eth1", "address", &mac, "type", "veth", "peer", "name", "eth1p",
        ],
    );
    ip(&new, &["link", "set", "eth1", "up"]);
    ip(&new, &["link", "set", "eth1p", "up"]);
    let eth1 = must_link(&new, "eth1");
    Recreated {
        w,
        _lan: lan,
        _holders: holders,
        new,
        name,
        eth1,
    }
}

impl Recreated {
    /// The old attachment is listed, stale.
    fn assert_stale(&self) {
        let ls = self.w.ls();
        assert_eq!(ls.len(), 1, "{ls:#?}");
        assert_eq!(
            ls[0]["state"], "stale",
            "the record of the deleted namespace {} is not alive: the namespace under that \
             name now is a new one (its eth1 is a veth made by hand, even if it has the old \
             MAC): {ls:#?}",
            self.name
        );
    }

    /// The hand-made eth1 (and its peer) are still there, the same links.
    fn assert_eth1_kept(&self, after: &str) {
        let now = link(&self.new, "eth1").unwrap_or_else(|| {
            panic!(
                "{after}: the new namespace's own eth1 was deleted; links now: {:?}",
                link_names(&self.new)
            )
        });
        assert_eq!(
            (now.index, now.kind.as_deref(), now.mac.as_str()),
            (self.eth1.index, Some("veth"), self.eth1.mac.as_str()),
            "{after}: the same eth1"
        );
        assert!(now.is_up(), "{after}: eth1 still up");
        assert!(
            link(&self.new, "eth1p").is_some(),
            "{after}: its peer eth1p is still there"
        );
    }
}

/// Two rounds, one after the other (two tests at once would take each other's freed inode
/// numbers): `detach NAME` (NAME now a new namespace) leaves the new eth1 alone, and `gc` then
/// forgets the stale record and still leaves eth1 alone; then `gc` alone does the same.
#[test]
fn recreated_namespace_is_not_the_old_guest() {
    need_root!();
    {
        let r = recreated_namespace(21);
        r.assert_stale();
        r.w.pw(&["detach", &r.name]).ok();
        r.assert_eth1_kept("after detach");
        r.w.pw(&["gc"]).ok();
        r.assert_eth1_kept("after detach and gc");
        assert_eq!(r.w.ls(), Vec::<Value>::new(), "the record is gone after gc");
        assert!(link(&r.w.host, "pwn0").is_some(), "the NIC is untouched");
    }
    {
        let r = recreated_namespace(22);
        r.assert_stale();
        r.w.pw(&["gc"]).ok();
        r.assert_eth1_kept("after gc");
        assert_eq!(r.w.ls(), Vec::<Value>::new(), "the record is gone after gc");
        assert_nothing_to_do(&r.w.pw(&["gc"]));
        r.assert_eth1_kept("after a second gc");
    }
}

// ---------------------------------------------------------------------------------------------
// The engine in records
// ---------------------------------------------------------------------------------------------

/// The `ls --json` entry of the attachment with this namespace inode and guest interface.
fn entry<'a>(ls: &'a [Value], inode: u64, ifname: &str) -> Option<&'a Value> {
    ls.iter()
        .find(|e| e["netns_inode"].as_u64() == Some(inode) && e["ifname"] == ifname)
}

/// `ls --json` of completed attachments: "state" alive and the engine of each guest (a named
/// namespace, a process, a container when the test daemon runs).
#[test]
fn ls_json_shows_engine_and_alive() {
    need_root!();
    let w = World::new();
    let g = Netns::new("g");
    let p = PidGuest::new();
    let dh = docker_host();
    let c = dh.as_deref().map(Container::run);
    if c.is_none() {
        eprintln!("note: no test Docker daemon, the container part of this test is left out");
    }
    let mut want = vec![
        (w.attach(&["br1", &g.name, "10.226.23.2/24"]), "netns"),
        (
            w.attach(&["br1", &p.pid.to_string(), "10.226.23.3/24"]),
            "pid",
        ),
    ];
    if let Some(c) = &c {
        want.push((w.attach(&["br1", &c.name, "10.226.23.4/24"]), "docker"));
    }
    let ls = w.ls();
    assert_eq!(ls.len(), want.len(), "{ls:#?}");
    for (rep, engine) in &want {
        let e = entry(&ls, inode(rep), "eth1")
            .unwrap_or_else(|| panic!("no entry for {}: {ls:#?}", rep["guest"]["spec"]));
        assert_eq!(e["state"], "alive", "{e:#}");
        assert_eq!(e["engine"], *engine, "{e:#}");
        assert_eq!(
            rep["guest"]["engine"], *engine,
            "the attach's report: {rep:#}"
        );
    }
}

/// A Docker container's record says "engine": "docker". `detach podman:NAME` matches no
/// record (whether the container runs or is gone) and touches nothing; `detach docker:NAME`
/// removes the attachment.
#[test]
fn detach_matches_the_engine_of_the_record() {
    let dh = need_docker!();
    let w = World::new();
    let mut c = Container::run(&dh);
    let rep = w.attach(&["br1", &c.name, "10.226.24.2/24"]);
    let he = host_ifname(&rep);
    let ino = inode(&rep);
    let ls = w.ls();
    let e = entry(&ls, ino, "eth1").unwrap_or_else(|| panic!("listed: {ls:#?}"));
    assert_eq!(e["engine"], "docker", "{e:#}");
    assert_eq!(e["state"], "alive", "{e:#}");

    // A running container: the Podman spelling of its name is another guest.
    let podman = format!("podman:{}", c.name);
    assert_nothing_to_do(&w.pw(&["detach", &podman]));
    assert!(
        link(&c, "eth1").is_some(),
        "detach {podman} removed the Docker container's eth1"
    );
    assert!(link(&w.host, &he).is_some(), "its host end {he} is kept");
    assert_eq!(w.ls(), ls, "records unchanged after detach {podman}");

    // The container removed: the record is stale, still of Docker.
    let out = docker(&dh, &["rm", "-f", &c.name]);
    assert!(out.status.success(), "docker rm -f: {out:?}");
    c.pid = 0;
    wait_links_gone(&w.host, std::slice::from_ref(&he));
    let ls = w.ls();
    assert_eq!(ls.len(), 1, "{ls:#?}");
    assert_eq!(ls[0]["state"], "stale", "{ls:#?}");
    assert_eq!(ls[0]["engine"], "docker", "{ls:#?}");
    assert_nothing_to_do(&w.pw(&["detach", &podman]));
    assert_eq!(w.ls(), ls, "detach {podman} left the Docker record alone");

    let r = w.pw(&["detach", &format!("docker:{}", c.name)]);
    r.ok();
    assert_ne!(r.stdout.trim(), "nothing to do", "{r:?}");
    assert_eq!(w.ls(), Vec::<Value>::new(), "detach docker:NAME removed it");
    assert_eq!(
        link_names(&w.host),
        ["lo"],
        "the bridge pipework made went with its last guest"
    );
}

// ---------------------------------------------------------------------------------------------
// Errors as JSON
// ---------------------------------------------------------------------------------------------

const KINDS: [&str; 9] = [
    "bad_input",
    "not_found",
    "exists",
    "busy",
    "kernel",
    "engine_unreachable",
    "timeout",
    "internal",
    "permission",
];

/// A failing run's stdout: exactly one JSON object `{"error": {kind, step, object, errno,
/// message}}` with the right types. Returns the inner object.
fn error_of(r: &Run) -> Value {
    let v: Value = serde_json::from_str(r.stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "stdout of a failing --json run is exactly one JSON object ({e}):\n{:?}",
            r.stdout
        )
    });
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("one JSON object: {v}"));
    assert_eq!(
        obj.keys().map(String::as_str).collect::<Vec<_>>(),
        ["error"],
        "one key, \"error\": {v}"
    );
    let e = &v["error"];
    let keys: BTreeSet<&str> = e
        .as_object()
        .unwrap_or_else(|| panic!("error is an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["kind", "step", "object", "errno", "message"]),
        "the error's keys: {v}"
    );
    let kind = e["kind"]
        .as_str()
        .unwrap_or_else(|| panic!("kind is a string: {v}"));
    assert!(KINDS.contains(&kind), "kind {kind:?} is one of {KINDS:?}");
    assert!(
        e["step"].is_null() || e["step"].as_str().is_some_and(|s| !s.is_empty()),
        "step is null or a name: {v}"
    );
    assert!(
        e["object"].is_null() || e["object"].as_str().is_some_and(|s| !s.is_empty()),
        "object is null or a string: {v}"
    );
    assert!(
        e["errno"].is_null() || e["errno"].as_i64().is_some_and(|n| n > 0),
        "errno is null or a positive number: {v}"
    );
    let msg = e["message"]
        .as_str()
        .unwrap_or_else(|| panic!("message is a string: {v}"));
    assert!(!msg.trim().is_empty(), "message is not empty: {v}");
    e.clone()
}

/// Runs `pipework --json ARGS` and `pipework ARGS` (with `env`) in the host namespace: both
/// fail with `code`, change nothing in the host or the guest; the first prints one error
/// object of `kind` on stdout and the human message on stderr, the second nothing on stdout.
/// Returns the error object.
fn json_failure(
    w: &World,
    guest: &dyn Ns,
    args: &[&str],
    env: &[(&str, &str)],
    code: i32,
    kind: &str,
) -> Value {
    let hb = snapshot(&w.host);
    let gb = snapshot(guest);
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    let r = w.pw_env(&full, env);
    assert_eq!(r.code, code, "exit code of a {kind} failure: {r:?}");
    r.clean_error();
    let e = error_of(&r);
    assert_eq!(e["kind"], kind, "{e:#}");
    let msg = e["message"].as_str().unwrap();
    let first = msg.lines().next().unwrap_or(msg);
    assert!(
        r.stderr.contains(first),
        "stderr has the human message {first:?}:\n{}",
        r.stderr
    );
    assert_unchanged(&w.host, &hb, "host after the --json failure");
    assert_unchanged(guest, &gb, "guest after the --json failure");

    let plain = w.pw_env(args, env);
    assert_eq!(plain.code, code, "same exit code without --json: {plain:?}");
    plain.clean_error();
    assert_eq!(
        plain.stdout, "",
        "without --json nothing goes to stdout on failure"
    );
    assert_unchanged(&w.host, &hb, "host after the failure");
    assert_unchanged(guest, &gb, "guest after the failure");
    e
}

#[test]
fn json_error_bad_input() {
    need_root!();
    let w = World::new();
    let g = Netns::new("g");
    let e = json_failure(
        &w,
        &g,
        &["br1", &g.name, "10.226.25.300/24"],
        &[],
        2,
        "bad_input",
    );
    assert!(e["step"].is_null(), "found before any step: {e:#}");
    assert!(e["errno"].is_null(), "no kernel errno for bad input: {e:#}");
    assert!(
        e["message"].as_str().unwrap().contains("10.226.25.300"),
        "names the bad value: {e:#}"
    );
}

#[test]
fn json_error_not_found() {
    need_root!();
    let w = World::new();
    let g = Netns::new("g");
    let nosuch = unique("nosuch");
    let e = json_failure(
        &w,
        &g,
        &["br1", &nosuch, "10.226.26.2/24"],
        &[],
        1,
        "not_found",
    );
    assert!(
        e["message"].as_str().unwrap().contains(&nosuch),
        "names the guest: {e:#}"
    );
    let forced = format!("netns:{nosuch}");
    json_failure(
        &w,
        &g,
        &["br1", &forced, "10.226.26.2/24"],
        &[],
        1,
        "not_found",
    );
}

#[test]
fn json_error_exists() {
    need_root!();
    let w = World::new();
    let g = Netns::new("g");
    ip(
        &g,
        &[
            "link", "add", "name", "eth1", "type", "veth", "peer", "name", "eth1p",
        ],
    );
    let e = json_failure(
        &w,
        &g,
        &["br1", &g.name, "10.226.27.2/24"],
        &[],
        1,
        "exists",
    );
    assert!(
        e["message"].as_str().unwrap().contains("eth1"),
        "names the interface: {e:#}"
    );
    if let Some(o) = e["object"].as_str() {
        assert!(o.contains("eth1"), "the object is the interface: {e:#}");
    }
}

#[test]
fn json_error_injected_failure_names_the_step() {
    need_root!();
    let w = World::new();
    let g = Netns::new("g");
    let e = json_failure(
        &w,
        &g,
        &["br1", &g.name, "10.226.28.2/24"],
        &[("PIPEWORK_TEST_FAIL_STEP", "create-veth")],
        1,
        "internal",
    );
    assert_eq!(e["step"], "create-veth", "{e:#}");
}

/// The kernel refuses a macvlan in passthru mode on a NIC that already has a macvlan child
/// (EINVAL): kind kernel, with the errno and the step.
#[test]
fn json_error_kernel_refusal() {
    need_root!();
    let w = World::new();
    let lan = Netns::new("l");
    veth_nic(&w.host, "pwn0", None, &lan, "lan0");
    ip(&w.host, &["link", "set", "pwn0", "up"]);
    ip(
        &w.host,
        &[
            "link", "add", "link", "pwn0", "name", "pwn0m", "type", "macvlan", "mode", "bridge",
        ],
    );
    let g = Netns::new("g");
    let e = json_failure(
        &w,
        &g,
        &[
            "--macvlan-mode",
            "passthru",
            "pwn0",
            &g.name,
            "10.226.29.2/24",
        ],
        &[],
        1,
        "kernel",
    );
    assert_eq!(e["errno"], libc::EINVAL, "the kernel's errno: {e:#}");
    assert!(
        e["step"].as_str().is_some_and(|s| !s.is_empty()),
        "the step the kernel refused: {e:#}"
    );
}

/// `docker:NAME` with DOCKER_HOST at a socket that does not exist: engine_unreachable.
#[test]
fn json_error_engine_unreachable() {
    need_root!();
    let w = World::new();
    let g = Netns::new("g");
    let sock = format!("unix:///nonexistent/{}.sock", unique("dk"));
    let c = format!("docker:{}", unique("c"));
    json_failure(
        &w,
        &g,
        &["br1", &c, "10.226.30.2/24"],
        &[("DOCKER_HOST", &sock)],
        1,
        "engine_unreachable",
    );
}

/// Without root (uid 65534, no capabilities): permission.
#[test]
fn json_error_permission() {
    need_root!();
    use std::os::unix::fs::PermissionsExt;
    struct Rm(PathBuf);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let dir = std::env::temp_dir().join(unique("bin"));
    std::fs::create_dir(&dir).unwrap();
    let _rm = Rm(dir.clone());
    let bin = dir.join("pipework");
    std::fs::copy(BIN, &bin).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();

    let w = World::new();
    let g = Netns::new("g");
    let hb = snapshot(&w.host);
    let gb = snapshot(&g);
    let run = |args: &[&str]| {
        pipework_within(
            &w.host,
            args,
            &Opts {
                env: vec![("PIPEWORK_RUNTIME_DIR", w.rt.path())],
                as_user: Some(65534),
                bin: Some(bin.clone()),
                stdin: None,
            },
            LIMIT,
        )
    };
    let r = run(&["--json", "br1", &g.name, "10.226.31.2/24"]);
    assert_eq!(r.code, 1, "{r:?}");
    r.clean_error();
    let e = error_of(&r);
    assert_eq!(e["kind"], "permission", "{e:#}");
    let plain = run(&["br1", &g.name, "10.226.31.2/24"]);
    assert_eq!(plain.code, 1, "{plain:?}");
    assert_eq!(plain.stdout, "", "nothing on stdout without --json");
    assert_unchanged(&w.host, &hb, "host after a run without privileges");
    assert_unchanged(&g, &gb, "guest after a run without privileges");
}
