//! `pipework watch`: containers plumbed from their `pipework.N` labels and from a rules file
//! when they start, unplumbed when they die, again after `docker restart` (same interfaces,
//! addresses and MACs), caught up when watch starts, and again after the engine restarts.
//!
//! Each test runs `pipework watch` as a background child inside its own host namespace (setns
//! in pre_exec), with its own runtime directory, and stops it in `Drop`. Subnets are 10.236.x.x.
//!
//! A watcher follows *every* container of its engine, so two watchers on the shared test
//! daemon would both plumb each other's labelled containers (into different host namespaces).
//! The tests that use the shared daemon therefore take an exclusive lock (flock on this test
//! binary) for their whole run; the engine-restart test has a private dockerd of its own, and
//! the Podman test a private Podman service (tests/common/engines.rs).

mod common;
#[path = "common/engines.rs"]
mod engines;
use common::*;

use serde_json::Value;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Serialising the tests that share the test daemon
// ---------------------------------------------------------------------------------------------

/// An exclusive flock on this test binary, held until dropped. nextest runs every test in its
/// own process; this makes the watchers of the shared daemon take turns.
struct SharedDaemonLock {
    _file: File,
}

fn lock_shared_daemon() -> SharedDaemonLock {
    let exe = std::env::current_exe().expect("current_exe");
    let file = File::open(&exe).unwrap_or_else(|e| panic!("open {}: {e}", exe.display()));
    let t = Instant::now();
    loop {
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            break;
        }
        let e = std::io::Error::last_os_error();
        assert_eq!(e.kind(), std::io::ErrorKind::Interrupted, "flock: {e}");
    }
    eprintln!("waited {:?} for the shared-daemon lock", t.elapsed());
    SharedDaemonLock { _file: file }
}

// ---------------------------------------------------------------------------------------------
// The watcher
// ---------------------------------------------------------------------------------------------

/// `pipework watch ARGS` running in the background inside a host namespace; its stdout and
/// stderr go to a log file. Drop: SIGTERM, up to 2 s, SIGKILL, reaped; the log is printed.
struct Watch {
    child: Child,
    log: PathBuf,
    started: Instant,
}

impl Watch {
    fn spawn(host: &dyn Ns, docker_host: &str, runtime_dir: &str, args: &[&str]) -> Watch {
        let log = std::env::temp_dir().join(format!("pwt-watchlog-{}", rand_hex(12)));
        let out = File::create(&log).expect("create the watch log");
        let err = out.try_clone().expect("dup the watch log");
        let mut cmd = Command::new(BIN);
        cmd.arg("watch")
            .args(args)
            .env("DOCKER_HOST", docker_host)
            .env("PIPEWORK_RUNTIME_DIR", runtime_dir)
            .env_remove("PIPEWORK_TEST_FAIL_STEP")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let ns = File::open(host.ns_path()).expect("open the host namespace");
        // SAFETY: only async-signal-safe calls (prctl, setns) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // Dies with the test even when Drop never runs.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let started = Instant::now();
        let child = cmd.spawn().expect("spawn pipework watch");
        Watch {
            child,
            log,
            started,
        }
    }

    /// Starts the watcher and waits until it has subscribed to the engine's events.
    fn start(host: &dyn Ns, docker_host: &str, runtime_dir: &str, args: &[&str]) -> Watch {
        let mut w = Watch::spawn(host, docker_host, runtime_dir, args);
        w.wait_log("following events at", 1, Duration::from_secs(10));
        eprintln!("watch subscribed after {:?}", w.started.elapsed());
        w
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn count(&self, needle: &str) -> usize {
        self.log().matches(needle).count()
    }

    /// Waits until `needle` appears `n` times in the log; panics (with the log) otherwise.
    fn wait_log(&mut self, needle: &str, n: usize, limit: Duration) {
        let ok = wait_until(limit, || {
            self.count(needle) >= n || !matches!(self.child.try_wait(), Ok(None))
        });
        self.assert_running();
        assert!(
            ok && self.count(needle) >= n,
            "watch did not log {needle:?} {n} time(s) within {limit:?}\n--- watch log ---\n{}",
            self.log()
        );
    }

    /// The watcher must never exit on its own.
    fn assert_running(&mut self) {
        if let Some(st) = self.child.try_wait().expect("try_wait") {
            panic!(
                "pipework watch exited on its own ({st}) after {:?}\n--- watch log ---\n{}",
                self.started.elapsed(),
                self.log()
            );
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill(2) on our own child, not yet reaped.
            unsafe {
                libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
            }
            let gone = wait_until(Duration::from_secs(2), || {
                !matches!(self.child.try_wait(), Ok(None))
            });
            if !gone {
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
        eprintln!(
            "--- pipework watch log ({:?}) ---\n{}--- end of watch log ---",
            self.started.elapsed(),
            self.log()
        );
        let _ = std::fs::remove_file(&self.log);
    }
}

// ---------------------------------------------------------------------------------------------
// Containers
// ---------------------------------------------------------------------------------------------

fn docker_out(host: &str, args: &[&str]) -> String {
    let out = docker(host, args);
    assert!(
        out.status.success(),
        "docker {} failed ({}): {}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A container of a test daemon, with the name the test chose; `docker rm -f` on drop.
struct Ctr {
    host: String,
    name: String,
    id: String,
}

impl Ctr {
    /// `docker run -d --pull=never --net=none --name NAME [-l K=V]… EXTRA… IMAGE sleep 100000`.
    fn run(host: &str, name: &str, labels: &[(&str, &str)], extra: &[&str]) -> Ctr {
        let image = test_image();
        let mut args: Vec<String> = ["run", "-d", "--pull=never", "--net=none", "--name", name]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for (k, v) in labels {
            args.push("-l".into());
            args.push(format!("{k}={v}"));
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend([image, "sleep".into(), "100000".into()]);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut c = Ctr {
            host: host.to_string(),
            name: name.to_string(),
            id: String::new(),
        };
        c.id = docker_out(host, &argv);
        c
    }

    fn pid(&self) -> u32 {
        docker_out(&self.host, &["inspect", "-f", "{{.State.Pid}}", &self.name])
            .parse()
            .expect("State.Pid")
    }

    /// The container's namespace as it is now (a restart gives it a new one).
    fn ns(&self) -> CtrNs {
        let pid = self.pid();
        assert_ne!(pid, 0, "container {} is not running", self.name);
        CtrNs {
            pid,
            name: self.name.clone(),
        }
    }

    fn exec(&self, args: &[&str]) -> Output {
        let mut full = vec!["exec", self.name.as_str()];
        full.extend_from_slice(args);
        docker(&self.host, &full)
    }

    fn exec_out(&self, args: &[&str]) -> String {
        let out = self.exec(args);
        assert!(
            out.status.success(),
            "docker exec {} {}: {}{}",
            self.name,
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// busybox ping from inside the container (`docker exec`), a few tries.
    fn ping(&self, addr: &str) -> bool {
        (0..3).any(|_| {
            let out = self.exec(&["ping", "-c1", "-W1", addr]);
            if !out.status.success() {
                eprintln!(
                    "ping {addr} from {}: {}{}",
                    self.name,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            out.status.success()
        })
    }

    fn remove(&self) {
        docker_out(&self.host, &["rm", "-f", &self.name]);
    }
}

impl Drop for Ctr {
    fn drop(&mut self) {
        let _ = docker(&self.host, &["rm", "-f", &self.name]);
    }
}

/// One incarnation of a container's network namespace.
struct CtrNs {
    pid: u32,
    name: String,
}

impl Ns for CtrNs {
    fn ns_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.pid))
    }
    fn describe(&self) -> String {
        format!("container {} (pid {})", self.name, self.pid)
    }
}

/// What a guest interface looks like: MAC and global addresses (sorted); None when absent or
/// not up.
fn iface(ns: &dyn Ns, ifname: &str) -> Option<(String, Vec<String>)> {
    let l = link(ns, ifname)?;
    if !l.is_up() {
        return None;
    }
    let mut a = global_cidrs(ns, ifname);
    a.sort();
    Some((l.mac, a))
}

/// Polls until `ifname` in `ns` is up with exactly `cidr`; returns how long it took from
/// `since`. Panics with the watcher's log after `limit`.
fn wait_plumbed(
    w: &mut Watch,
    ns: &dyn Ns,
    ifname: &str,
    cidr: &str,
    since: Instant,
    limit: Duration,
) -> Duration {
    let want = vec![cidr.to_string()];
    let ok = wait_until(limit.saturating_sub(since.elapsed()), || {
        iface(ns, ifname).is_some_and(|(_, a)| a == want)
    });
    let took = since.elapsed();
    w.assert_running();
    assert!(
        ok,
        "{ifname} of {} was not plumbed with {cidr} within {limit:?} (now: {:?}, links {:?})\n\
         --- watch log ---\n{}",
        ns.describe(),
        iface(ns, ifname),
        link_names(ns),
        w.log()
    );
    eprintln!("{ifname} {cidr} in {} after {took:?}", ns.describe());
    took
}

/// `docker exec` view of an interface: its `ip -o addr` lines and its MAC from sysfs.
fn exec_view(c: &Ctr, ifname: &str) -> (String, String) {
    let addrs = c.exec_out(&["ip", "-o", "addr", "show", "dev", ifname]);
    let mac = c
        .exec_out(&["cat", &format!("/sys/class/net/{ifname}/address")])
        .trim()
        .to_string();
    (addrs, mac)
}

/// The MAC watch derives for a spec without one: as `U:<name>/<if>` would.
fn derived_mac(name: &str, ifname: &str) -> String {
    pipework::mac::MacAddr::hashed(&format!("{name}/{ifname}")).to_string()
}

// ---------------------------------------------------------------------------------------------
// `pipework ls --json` with the watcher's runtime directory
// ---------------------------------------------------------------------------------------------

fn ls(host: &dyn Ns, docker_host: &str, runtime_dir: &str) -> Vec<Value> {
    let mut cmd = cmd_in(host, BIN);
    cmd.args(["ls", "--json"])
        .env("DOCKER_HOST", docker_host)
        .env("PIPEWORK_RUNTIME_DIR", runtime_dir)
        .stdin(Stdio::null());
    let out = cmd.output().expect("spawn pipework ls");
    assert!(
        out.status.success(),
        "pipework ls --json failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    match serde_json::from_slice::<Value>(&out.stdout) {
        Ok(Value::Array(v)) => v,
        other => panic!(
            "pipework ls --json: expected an array, got {other:?}: {}",
            String::from_utf8_lossy(&out.stdout)
        ),
    }
}

/// `(ifname, state, host_ifname, mac)` of the records of the container named `name`, sorted.
fn records_of(list: &[Value], name: &str) -> Vec<(String, String, String, String)> {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let mut v: Vec<_> = list
        .iter()
        .filter(|r| r.get("guest_name").and_then(Value::as_str) == Some(name))
        .map(|r| {
            (
                s(r, "ifname"),
                s(r, "state"),
                s(r, "host_ifname"),
                s(r, "mac"),
            )
        })
        .collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------------
// 1. catch-up
// ---------------------------------------------------------------------------------------------

#[test]
fn catch_up_plumbs_a_container_started_before_watch() {
    let dh = need_docker!();
    let _lock = lock_shared_daemon();
    let host = Netns::new("h");
    // The bridge exists already (with an address to ping).
    ip(&host, &["link", "add", "br1", "type", "bridge"]);
    ip(&host, &["addr", "add", "10.236.1.1/24", "dev", "br1"]);
    ip(&host, &["link", "set", "br1", "up"]);
    let rt = RuntimeDir::new();
    let c = Ctr::run(
        &dh,
        &unique("wc"),
        &[("pipework.1", "br1 10.236.1.5/24")],
        &[],
    );
    let ns = c.ns();
    assert_eq!(link_names(&ns), ["lo"], "not plumbed before watch starts");

    let mut w = Watch::spawn(&host, &dh, rt.path(), &[]);
    let spawned = w.started;
    let took = wait_plumbed(
        &mut w,
        &ns,
        "eth1",
        "10.236.1.5/24",
        spawned,
        Duration::from_secs(2),
    );
    eprintln!("catch-up: plumbed {took:?} after watch was spawned");

    let (g, _) = assert_attached(&host, "br1", &ns, "eth1", &["10.236.1.5/24"]);
    assert_eq!(g.mac, derived_mac(&c.name, "eth1"), "derived MAC");
    let (addrs, mac) = exec_view(&c, "eth1");
    assert!(addrs.contains("inet 10.236.1.5/24"), "docker exec: {addrs}");
    assert_eq!(mac, g.mac, "MAC seen inside the container");
    assert!(c.ping("10.236.1.1"), "container -> host bridge");

    let recs = records_of(&ls(&host, &dh, rt.path()), &c.name);
    assert_eq!(recs.len(), 1, "one record: {recs:?}");
    assert_eq!((recs[0].0.as_str(), recs[0].1.as_str()), ("eth1", "alive"));
    w.assert_running();
}

// ---------------------------------------------------------------------------------------------
// 2. start event, two labels
// ---------------------------------------------------------------------------------------------

/// Containers are handled concurrently: one container whose label waits for a DHCP lease that
/// never comes (no server on br-slow) does not hold up another container's attachment, which is
/// in place while the first one's attach is still waiting (its record still `incomplete`).
#[test]
fn a_slow_dhcp_wait_does_not_stall_other_containers() {
    let dh = need_docker!();
    let _lock = lock_shared_daemon();
    let host = Netns::new("h");
    let rt = RuntimeDir::new();
    let mut w = Watch::start(&host, &dh, rt.path(), &[]);

    let slow = unique("wsl");
    let _a = Ctr::run(
        &dh,
        &slow,
        &[("pipework.1", "brslow --dhcp-timeout 8 dhcp")],
        &[],
    );
    // The slow container's attach has started: its record is there, incomplete.
    let started = wait_until(Duration::from_secs(5), || {
        records_of(&ls(&host, &dh, rt.path()), &slow)
            .iter()
            .any(|r| r.1 == "incomplete")
    });
    assert!(started, "the slow attach never started\n{}", w.log());

    let fast = unique("wsf");
    let since = Instant::now();
    let b = Ctr::run(&dh, &fast, &[("pipework.1", "br1 10.236.40.5/24")], &[]);
    let ns = b.ns();
    wait_plumbed(
        &mut w,
        &ns,
        "eth1",
        "10.236.40.5/24",
        since,
        Duration::from_secs(6),
    );
    let slow_state = records_of(&ls(&host, &dh, rt.path()), &slow);
    assert!(
        slow_state.iter().any(|r| r.1 == "incomplete"),
        "the fast container was plumbed only after the slow one gave up: {slow_state:?}\n{}",
        w.log()
    );
    assert_eq!(
        records_of(&ls(&host, &dh, rt.path()), &fast)
            .iter()
            .map(|r| r.1.as_str())
            .collect::<Vec<_>>(),
        ["alive"]
    );
}

#[test]
fn start_event_applies_every_label() {
    let dh = need_docker!();
    let _lock = lock_shared_daemon();
    let host = Netns::new("h");
    let rt = RuntimeDir::new();
    let mut w = Watch::start(&host, &dh, rt.path(), &[]);

    let name = unique("ws");
    let t = Instant::now();
    let c = Ctr::run(
        &dh,
        &name,
        &[
            ("pipework.1", "br1 10.236.2.5/24"),
            ("pipework.2", "br2 -i eth2 10.236.22.5/24"),
        ],
        &[],
    );
    let run_took = t.elapsed();
    let since = Instant::now();
    let ns = c.ns();
    let t1 = wait_plumbed(
        &mut w,
        &ns,
        "eth1",
        "10.236.2.5/24",
        since,
        Duration::from_secs(1),
    );
    let t2 = wait_plumbed(
        &mut w,
        &ns,
        "eth2",
        "10.236.22.5/24",
        since,
        Duration::from_secs(1),
    );
    eprintln!("docker run took {run_took:?}; eth1 after {t1:?}, eth2 after {t2:?}");

    let (g1, h1) = assert_attached(&host, "br1", &ns, "eth1", &["10.236.2.5/24"]);
    let (g2, h2) = assert_attached(&host, "br2", &ns, "eth2", &["10.236.22.5/24"]);
    assert_eq!(g1.mac, derived_mac(&name, "eth1"));
    assert_eq!(g2.mac, derived_mac(&name, "eth2"));
    assert_ne!(g1.mac, g2.mac, "one MAC per interface");
    let mut names = link_names(&ns);
    names.sort();
    assert_eq!(
        names,
        ["eth1", "eth2", "lo"],
        "exactly the labelled interfaces"
    );
    let (a1, m1) = exec_view(&c, "eth1");
    let (a2, m2) = exec_view(&c, "eth2");
    assert!(a1.contains("inet 10.236.2.5/24"), "docker exec: {a1}");
    assert!(a2.contains("inet 10.236.22.5/24"), "docker exec: {a2}");
    assert_eq!((m1, m2), (g1.mac.clone(), g2.mac.clone()));

    let recs = records_of(&ls(&host, &dh, rt.path()), &name);
    let want = vec![
        (
            "eth1".into(),
            "alive".into(),
            h1.name.clone(),
            g1.mac.clone(),
        ),
        (
            "eth2".into(),
            "alive".into(),
            h2.name.clone(),
            g2.mac.clone(),
        ),
    ];
    assert_eq!(recs, want, "records of the two attachments");
    w.assert_running();
}

// ---------------------------------------------------------------------------------------------
// 3. docker restart
// ---------------------------------------------------------------------------------------------

#[test]
fn restart_gives_back_the_same_interfaces_addresses_and_macs() {
    let dh = need_docker!();
    let _lock = lock_shared_daemon();
    let host = Netns::new("h");
    ip(&host, &["link", "add", "br1", "type", "bridge"]);
    ip(&host, &["addr", "add", "10.236.3.1/24", "dev", "br1"]);
    ip(&host, &["link", "set", "br1", "up"]);
    let rt = RuntimeDir::new();
    let mut w = Watch::start(&host, &dh, rt.path(), &[]);

    let name = unique("wr");
    let c = Ctr::run(
        &dh,
        &name,
        &[
            ("pipework.1", "br1 10.236.3.5/24"),
            ("pipework.2", "br1 -i eth2 10.236.3.6/24"),
        ],
        &[],
    );
    let since = Instant::now();
    let ns = c.ns();
    wait_plumbed(
        &mut w,
        &ns,
        "eth1",
        "10.236.3.5/24",
        since,
        Duration::from_secs(1),
    );
    wait_plumbed(
        &mut w,
        &ns,
        "eth2",
        "10.236.3.6/24",
        since,
        Duration::from_secs(1),
    );
    let before = (
        iface(&ns, "eth1").expect("eth1"),
        iface(&ns, "eth2").expect("eth2"),
    );
    assert_eq!(before.0 .0, derived_mac(&name, "eth1"));
    assert_eq!(before.1 .0, derived_mac(&name, "eth2"));
    let mut old_pid = ns.pid;

    for round in 1..=2 {
        let t = Instant::now();
        docker_out(&dh, &["restart", "-t", "0", &name]);
        let restart_took = t.elapsed();
        let since = Instant::now();
        let ns = c.ns();
        assert_ne!(
            ns.pid, old_pid,
            "round {round}: the container was restarted"
        );
        old_pid = ns.pid;
        let t1 = wait_plumbed(
            &mut w,
            &ns,
            "eth1",
            "10.236.3.5/24",
            since,
            Duration::from_secs(1),
        );
        let t2 = wait_plumbed(
            &mut w,
            &ns,
            "eth2",
            "10.236.3.6/24",
            since,
            Duration::from_secs(1),
        );
        eprintln!(
            "restart {round}: docker restart took {restart_took:?}; eth1 back after {t1:?}, \
             eth2 after {t2:?}"
        );
        let after = (
            iface(&ns, "eth1").expect("eth1"),
            iface(&ns, "eth2").expect("eth2"),
        );
        assert_eq!(
            after, before,
            "round {round}: same MACs and addresses after restart"
        );
        let mut names = link_names(&ns);
        names.sort();
        assert_eq!(
            names,
            ["eth1", "eth2", "lo"],
            "round {round}: same interfaces"
        );
        let (g1, h1) = assert_attached(&host, "br1", &ns, "eth1", &["10.236.3.5/24"]);
        let (g2, h2) = assert_attached(&host, "br1", &ns, "eth2", &["10.236.3.6/24"]);
        assert_eq!(
            ports_of(&host, "br1").len(),
            2,
            "round {round}: no old host ends left"
        );
        let (a1, m1) = exec_view(&c, "eth1");
        assert!(a1.contains("inet 10.236.3.5/24"), "docker exec: {a1}");
        assert_eq!(m1, g1.mac);
        assert!(
            c.ping("10.236.3.1"),
            "round {round}: container -> host bridge"
        );

        // The dead incarnation's records were removed at its death, the new ones are alive.
        let want = vec![
            (
                "eth1".into(),
                "alive".into(),
                h1.name.clone(),
                g1.mac.clone(),
            ),
            (
                "eth2".into(),
                "alive".into(),
                h2.name.clone(),
                g2.mac.clone(),
            ),
        ];
        let mut recs = vec![];
        let same = wait_until(Duration::from_secs(2), || {
            recs = records_of(&ls(&host, &dh, rt.path()), &name);
            recs == want
        });
        assert!(
            same,
            "round {round}: records after restart\n  got  {recs:?}\n  want {want:?}\n\
             --- watch log ---\n{}",
            w.log()
        );
    }
    w.assert_running();
}

/// A watcher that falls behind the event stream (busy, descheduled) handles a restart's
/// `die` only once the container runs again. The dead incarnation's attachments must still be
/// undone: no stale record (with DHCP, its supervisor would keep the dead namespace alive).
#[test]
fn restart_handled_late_leaves_no_stale_record() {
    let dh = need_docker!();
    let _lock = lock_shared_daemon();
    let host = Netns::new("h");
    let rt = RuntimeDir::new();
    let mut w = Watch::start(&host, &dh, rt.path(), &[]);
    let name = unique("wl");
    let c = Ctr::run(&dh, &name, &[("pipework.1", "br1 10.236.7.5/24")], &[]);
    let since = Instant::now();
    let ns = c.ns();
    wait_plumbed(
        &mut w,
        &ns,
        "eth1",
        "10.236.7.5/24",
        since,
        Duration::from_secs(1),
    );

    // The watcher sleeps through the restart, then catches up with die + start.
    let pid = w.child.id() as libc::pid_t;
    // SAFETY: kill(2) on our own child, not yet reaped (SIGCONT follows right after).
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let r = docker(&dh, &["restart", "-t", "0", &name]);
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert!(r.status.success(), "docker restart: {r:?}");
    let since = Instant::now();
    let ns = c.ns();
    wait_plumbed(
        &mut w,
        &ns,
        "eth1",
        "10.236.7.5/24",
        since,
        Duration::from_secs(2),
    );
    let mac = iface(&ns, "eth1").unwrap().0;
    assert_eq!(mac, derived_mac(&name, "eth1"));
    let h = host_end_of(&host, &ns, "eth1");
    let want = vec![("eth1".to_string(), "alive".to_string(), h.name, mac)];
    let mut recs = vec![];
    let same = wait_until(Duration::from_secs(2), || {
        recs = records_of(&ls(&host, &dh, rt.path()), &name);
        recs == want
    });
    assert!(
        same,
        "records after a restart handled late\n  got  {recs:?}\n  want {want:?}\n\
         --- watch log ---\n{}",
        w.log()
    );
    w.assert_running();
}

/// A label that is not a valid spec is reported and skipped; the watcher carries on (and the
/// bare `pipework` label works like `pipework.N`).
#[test]
fn bad_label_is_reported_and_watch_carries_on() {
    let dh = need_docker!();
    let _lock = lock_shared_daemon();
    let host = Netns::new("h");
    let rt = RuntimeDir::new();
    let mut w = Watch::start(&host, &dh, rt.path(), &[]);
    let bad = Ctr::run(
        &dh,
        &unique("wx"),
        &[("pipework.1", "br1 10.236.8.300/24")],
        &[],
    );
    let good = Ctr::run(
        &dh,
        &unique("wx"),
        &[("pipework", "br1 10.236.8.6/24")],
        &[],
    );
    let since = Instant::now();
    let ng = good.ns();
    wait_plumbed(
        &mut w,
        &ng,
        "eth1",
        "10.236.8.6/24",
        since,
        Duration::from_secs(1),
    );
    // The bad one's start was handled before the good one's.
    assert_eq!(
        link_names(&bad.ns()),
        ["lo"],
        "nothing attached to {}",
        bad.name
    );
    let log = w.log();
    assert!(
        log.lines()
            .any(|l| l.contains(&bad.name) && l.contains("10.236.8.300")),
        "the bad label is reported with the container's name:\n{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
    let list = ls(&host, &dh, rt.path());
    assert!(records_of(&list, &bad.name).is_empty(), "{list:?}");
    assert_eq!(records_of(&list, &good.name).len(), 1, "{list:?}");
    w.assert_running();
}

// ---------------------------------------------------------------------------------------------
// 4. die
// ---------------------------------------------------------------------------------------------

#[test]
fn die_removes_records_host_ends_and_the_bridge_watch_created() {
    let dh = need_docker!();
    let _lock = lock_shared_daemon();
    let host = Netns::new("h");
    let rt = RuntimeDir::new();
    let mut w = Watch::start(&host, &dh, rt.path(), &[]);
    assert!(link(&host, "br1").is_none());

    let a = Ctr::run(
        &dh,
        &unique("wd"),
        &[("pipework.1", "br1 10.236.4.5/24")],
        &[],
    );
    let b = Ctr::run(
        &dh,
        &unique("wd"),
        &[("pipework.1", "br1 10.236.4.6/24")],
        &[],
    );
    let since = Instant::now();
    let (na, nb) = (a.ns(), b.ns());
    wait_plumbed(
        &mut w,
        &na,
        "eth1",
        "10.236.4.5/24",
        since,
        Duration::from_secs(2),
    );
    wait_plumbed(
        &mut w,
        &nb,
        "eth1",
        "10.236.4.6/24",
        since,
        Duration::from_secs(2),
    );
    let (_, ha) = assert_attached(&host, "br1", &na, "eth1", &["10.236.4.5/24"]);
    let (_, hb) = assert_attached(&host, "br1", &nb, "eth1", &["10.236.4.6/24"]);
    assert!(
        ping(&na, "10.236.4.6"),
        "a -> b across the bridge watch created"
    );
    let list = ls(&host, &dh, rt.path());
    assert_eq!(records_of(&list, &a.name).len(), 1, "{list:?}");
    assert_eq!(records_of(&list, &b.name).len(), 1, "{list:?}");

    // a dies: its record and host end go, the bridge stays (b still uses it).
    let t = Instant::now();
    a.remove();
    let mut list = vec![];
    let gone = wait_until(Duration::from_secs(2), || {
        list = ls(&host, &dh, rt.path());
        records_of(&list, &a.name).is_empty()
    });
    assert!(
        gone,
        "a's record is still listed after docker rm -f: {list:?}\n--- watch log ---\n{}",
        w.log()
    );
    eprintln!(
        "a's record gone {:?} after docker rm -f returned",
        t.elapsed()
    );
    assert!(
        link(&host, &ha.name).is_none(),
        "a's host end {} is gone",
        ha.name
    );
    assert_eq!(
        records_of(&list, &b.name).len(),
        1,
        "b's record stays: {list:?}"
    );
    assert!(link(&host, "br1").is_some(), "br1 stays while b uses it");
    assert_eq!(
        ports_of(&host, "br1")
            .into_iter()
            .map(|l| l.name)
            .collect::<Vec<_>>(),
        vec![hb.name.clone()],
        "b's host end is br1's only port"
    );

    // b dies: the bridge watch created is now unused and goes too.
    let t = Instant::now();
    b.remove();
    let gone = wait_until(Duration::from_secs(2), || {
        list = ls(&host, &dh, rt.path());
        list.is_empty() && link(&host, "br1").is_none()
    });
    assert!(
        gone,
        "after b's death: records {list:?}, host links {:?}\n--- watch log ---\n{}",
        link_names(&host),
        w.log()
    );
    eprintln!(
        "b's record and br1 gone {:?} after docker rm -f returned",
        t.elapsed()
    );
    assert_eq!(
        link_names(&host),
        ["lo"],
        "nothing of watch's left in the host namespace"
    );
    w.assert_running();
}

// ---------------------------------------------------------------------------------------------
// 5. rules file
// ---------------------------------------------------------------------------------------------

#[test]
fn rules_file_matches_by_name_and_by_label() {
    let dh = need_docker!();
    let _lock = lock_shared_daemon();
    let host = Netns::new("h");
    let rt = RuntimeDir::new();
    let prefix = unique("wr");
    let rules = std::env::temp_dir().join(format!("{prefix}-rules.json"));
    let _rm = RemoveOnDrop(rules.clone());
    let doc = serde_json::json!({"rules": [
        {"match": {"name": format!("{prefix}-a*")}, "attach": ["br1 10.236.5.7/24"]},
        {"match": {"label": "role=x"}, "attach": ["br1 -i eth3 10.236.5.8/24"]},
    ]});
    std::fs::write(&rules, doc.to_string()).unwrap();
    let mut w = Watch::start(&host, &dh, rt.path(), &["--rules", rules.to_str().unwrap()]);

    // Neither name nor label matches (role=y): started first, so its start event is handled
    // before the others'.
    let none = Ctr::run(&dh, &format!("{prefix}-c1"), &[("role", "y")], &[]);
    let by_name = Ctr::run(&dh, &format!("{prefix}-a1"), &[], &[]);
    let by_label = Ctr::run(&dh, &format!("{prefix}-b1"), &[("role", "x")], &[]);
    let since = Instant::now();
    let (nn, na, nl) = (none.ns(), by_name.ns(), by_label.ns());
    wait_plumbed(
        &mut w,
        &na,
        "eth1",
        "10.236.5.7/24",
        since,
        Duration::from_secs(2),
    );
    wait_plumbed(
        &mut w,
        &nl,
        "eth3",
        "10.236.5.8/24",
        since,
        Duration::from_secs(2),
    );
    let (g, _) = assert_attached(&host, "br1", &na, "eth1", &["10.236.5.7/24"]);
    assert_eq!(g.mac, derived_mac(&by_name.name, "eth1"));
    let (g, _) = assert_attached(&host, "br1", &nl, "eth3", &["10.236.5.8/24"]);
    assert_eq!(g.mac, derived_mac(&by_label.name, "eth3"));
    let mut names = link_names(&na);
    names.sort();
    assert_eq!(names, ["eth1", "lo"], "the name rule only");
    let mut names = link_names(&nl);
    names.sort();
    assert_eq!(names, ["eth3", "lo"], "the label rule only");
    assert_eq!(link_names(&nn), ["lo"], "no rule matches {}", none.name);
    let (a, _) = exec_view(&by_label, "eth3");
    assert!(a.contains("inet 10.236.5.8/24"), "docker exec: {a}");

    let list = ls(&host, &dh, rt.path());
    assert!(records_of(&list, &none.name).is_empty(), "{list:?}");
    assert_eq!(records_of(&list, &by_name.name).len(), 1, "{list:?}");
    assert_eq!(records_of(&list, &by_label.name).len(), 1, "{list:?}");
    w.assert_running();
}

/// A path removed (file) on drop.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs `pipework watch ARGS` in `host` and waits at most `limit` for it to exit.
fn watch_must_exit(host: &dyn Ns, args: &[&str], limit: Duration) -> (i32, String, Duration) {
    let rt = RuntimeDir::new();
    let mut w = Watch::spawn(
        host,
        "unix:///nonexistent/pwt-no-docker.sock",
        rt.path(),
        args,
    );
    let exited = wait_until(limit, || !matches!(w.child.try_wait(), Ok(None)));
    let took = w.started.elapsed();
    let log = w.log();
    assert!(
        exited,
        "pipework watch {} did not exit within {limit:?}\n{log}",
        args.join(" ")
    );
    let st = w.child.wait().unwrap();
    let out = Output {
        status: st,
        stdout: vec![],
        stderr: vec![],
    };
    (code_of(&out), log, took)
}

#[test]
fn broken_rules_file_stops_watch_at_once() {
    need_root!();
    let host = Netns::new("h");
    let dir = std::env::temp_dir();
    let syntax = dir.join(format!("{}-rules.json", unique("wb")));
    let _r1 = RemoveOnDrop(syntax.clone());
    std::fs::write(
        &syntax,
        r#"{"rules": [ {"match": {"name": "web*"}, "attach": ["#,
    )
    .unwrap();
    let missing_field = dir.join(format!("{}-rules.json", unique("wb")));
    let _r2 = RemoveOnDrop(missing_field.clone());
    std::fs::write(
        &missing_field,
        r#"{"rules": [{"match": {"name": "web*"}, "atach": ["br1 10.236.5.9/24"]}]}"#,
    )
    .unwrap();
    let absent = dir.join(format!("{}-absent.json", unique("wb")));

    let mut problems = vec![];
    // (file, the exit codes accepted): a malformed file is a bad value (2, README's table);
    // a file that cannot be read is a failure (1).
    for (file, want) in [(&syntax, 2), (&missing_field, 2), (&absent, 1)] {
        let f = file.to_str().unwrap();
        let (code, log, took) = watch_must_exit(&host, &["--rules", f], Duration::from_secs(5));
        eprintln!("watch --rules {f}: exit {code} after {took:?}: {log}");
        if code != want {
            problems.push(format!("--rules {f}: exit {code}, want {want}: {log}"));
        }
        if !log.contains(f) {
            problems.push(format!(
                "--rules {f}: the message does not name the file: {log}"
            ));
        }
        if log.contains("panicked at") || log.contains("following events") {
            problems.push(format!("--rules {f}: {log}"));
        }
        if took > Duration::from_secs(2) {
            problems.push(format!("--rules {f}: took {took:?} to exit"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// 6. engine restart (a private dockerd)
// ---------------------------------------------------------------------------------------------

/// A dockerd of this test only: its own directory (/tmp/pwt-dockerd-…: data-root, exec-root,
/// socket, pidfile, log), running in its own network namespace with its own default bridge
/// (pwtw…, 10.236.250.1/24), no iptables/forwarding changes. Drop removes its containers,
/// stops it (and any containerd or shim of it left behind, found by its directory), unmounts
/// everything below its directory and removes it.
struct Dockerd {
    dir: PathBuf,
    ns: Netns,
    bridge: String,
    child: Option<Child>,
    launches: u32,
}

impl Dockerd {
    fn start() -> Dockerd {
        let dir = std::env::temp_dir().join(format!("pwt-dockerd-{}", rand_hex(8)));
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("daemon.json"), "{}").unwrap();
        let ns = Netns::new("dk");
        let bridge = format!("pwtw{}", rand_hex(6));
        ip(&ns, &["link", "add", &bridge, "type", "bridge"]);
        ip(&ns, &["addr", "add", "10.236.250.1/24", "dev", &bridge]);
        let mut d = Dockerd {
            dir,
            ns,
            bridge,
            child: None,
            launches: 0,
        };
        d.launch();
        d
    }

    fn sock(&self) -> String {
        format!("unix://{}", self.dir.join("docker.sock").display())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }

    /// Starts dockerd (same directories every time) and waits until it answers.
    fn launch(&mut self) -> Duration {
        assert!(self.child.is_none(), "dockerd already running");
        self.launches += 1;
        let d = |p: &str| self.dir.join(p).display().to_string();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("dockerd.log"))
            .unwrap();
        let mut cmd = Command::new("dockerd");
        cmd.args(["--config-file", &d("daemon.json")])
            .args(["--data-root", &d("data")])
            .args(["--exec-root", &d("exec")])
            .args(["--pidfile", &d("docker.pid")])
            .args(["-H", &self.sock()])
            .arg(format!("--bridge={}", self.bridge))
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--ip-forward=false",
                "--ip-masq=false",
                "--shutdown-timeout=2",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let ns = File::open(self.ns.path()).unwrap();
        // SAFETY: only async-signal-safe calls (prctl, setns) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // If the test dies without Drop, dockerd shuts down (and stops its containerd).
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                if libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let t = Instant::now();
        self.child = Some(cmd.spawn().expect("spawn dockerd"));
        let sock = self.sock();
        let up = wait_until(Duration::from_secs(30), || {
            Command::new("docker")
                .args(["-H", &sock, "version"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
                || !matches!(self.child.as_mut().unwrap().try_wait(), Ok(None))
        });
        let alive = matches!(self.child.as_mut().unwrap().try_wait(), Ok(None));
        assert!(
            up && alive,
            "private dockerd (launch {}) did not come up:\n{}",
            self.launches,
            self.log()
        );
        t.elapsed()
    }

    /// SIGTERM and waits for dockerd to exit (it stops its containers and its containerd).
    fn stop(&mut self) -> Duration {
        let t = Instant::now();
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child, not yet reaped.
            unsafe {
                libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
            }
            let gone = wait_until(Duration::from_secs(30), || {
                !matches!(c.try_wait(), Ok(None))
            });
            if !gone {
                eprintln!("private dockerd did not stop within 30 s: SIGKILL");
                let _ = c.kill();
            }
            let _ = c.wait();
        }
        // Its containerd goes with it; wait for that too, so the next launch starts clean.
        let dir = self.dir.display().to_string();
        wait_until(Duration::from_secs(10), || procs_naming(&dir).is_empty());
        t.elapsed()
    }

    /// `docker import` of a busybox rootfs (as scripts/testenv.sh does).
    fn import_image(&self, image: &str) {
        let root = self.dir.join("rootfs");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        let busybox = find_program("busybox").expect("busybox (scripts/testenv.sh install)");
        std::fs::copy(&busybox, root.join("bin/busybox")).unwrap();
        let list = Command::new(root.join("bin/busybox"))
            .arg("--list")
            .output()
            .expect("busybox --list");
        for a in String::from_utf8_lossy(&list.stdout).split_whitespace() {
            if a != "busybox" {
                let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(a));
            }
        }
        let mut tar = Command::new("tar")
            .arg("-C")
            .arg(&root)
            .args(["-c", "."])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn tar");
        let out = Command::new("docker")
            .args(["-H", &self.sock(), "import", "-", image])
            .stdin(tar.stdout.take().unwrap())
            .output()
            .expect("spawn docker import");
        let _ = tar.wait();
        assert!(
            out.status.success(),
            "docker import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = std::fs::remove_dir_all(&root);
    }
}

/// Live processes whose command line names `needle` (not their environment: the watcher's
/// DOCKER_HOST names the private daemon's socket).
fn procs_naming(needle: &str) -> Vec<ProcInfo> {
    let me = std::process::id();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| p != me && proc_alive(p))
        .filter_map(proc_info)
        .filter(|i| i.cmdline.contains(needle))
        .collect()
}

/// Mount points at or below `dir` (deepest first).
fn mounts_below(dir: &Path) -> Vec<String> {
    let prefix = format!("{}/", dir.display());
    let mut v: Vec<String> = std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1).map(String::from))
        .filter(|m| m.starts_with(&prefix) || *m == prefix.trim_end_matches('/'))
        .collect();
    v.sort();
    v.reverse();
    v
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if self.child.is_some() {
            let ids = docker(&self.sock(), &["ps", "-aq"]);
            for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
                let _ = docker(&self.sock(), &["rm", "-f", id]);
            }
        }
        if std::thread::panicking() {
            eprintln!("--- private dockerd log ---\n{}", self.log());
        }
        self.stop();
        // Anything of this daemon still running (an orphaned containerd or shim): by pid,
        // only processes whose command line names its directory.
        let dir = self.dir.display().to_string();
        for p in procs_naming(&dir) {
            eprintln!("stopping leftover process of the private dockerd: {p}");
            terminate(p.pid, Duration::from_secs(2));
        }
        for m in mounts_below(&self.dir) {
            let c = std::ffi::CString::new(m.clone()).unwrap();
            // SAFETY: umount2 with a valid C string.
            if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
                eprintln!("umount {m}: {}", std::io::Error::last_os_error());
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("remove {}: {e}", self.dir.display());
        }
    }
}

#[test]
fn engine_restart_watch_reconnects_and_plumbs() {
    need_root!();
    if !programs_or_skip(&test_name(), &["dockerd", "docker", "busybox", "tar"]) {
        return;
    }
    let t0 = Instant::now();
    let mut engine = Dockerd::start();
    let image = test_image();
    engine.import_image(&image);
    eprintln!("private dockerd up with the image after {:?}", t0.elapsed());
    let dh = engine.sock();

    let host = Netns::new("h");
    let rt = RuntimeDir::new();
    let mut w = Watch::start(&host, &dh, rt.path(), &[]);

    // Restarted by the engine itself when it comes back.
    let old = Ctr::run(
        &dh,
        &unique("we"),
        &[("pipework.1", "br1 10.236.6.5/24")],
        &["--restart=always", "--stop-timeout=1"],
    );
    let since = Instant::now();
    let ns = old.ns();
    wait_plumbed(
        &mut w,
        &ns,
        "eth1",
        "10.236.6.5/24",
        since,
        Duration::from_secs(2),
    );
    let mac = iface(&ns, "eth1").unwrap().0;
    let old_pid = ns.pid;

    let stop_took = engine.stop();
    eprintln!("private dockerd stopped in {stop_took:?}");
    // The watcher noticed: the stream ended, and a reconnection failed (no engine at all).
    let noticed = wait_until(Duration::from_secs(5), || {
        w.log().contains("no container engine")
    });
    w.assert_running();
    assert!(
        noticed,
        "watch did not notice the engine going away:\n{}",
        w.log()
    );
    let launch_took = engine.launch();
    let back = Instant::now();
    eprintln!("private dockerd relaunched in {launch_took:?}");

    // The engine restarts the container (restart=always); watch reconnects and plumbs it.
    let mut pid = 0;
    let restarted = wait_until(Duration::from_secs(15), || {
        let out = docker(&dh, &["inspect", "-f", "{{.State.Pid}}", &old.name]);
        pid = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        pid != 0 && pid != old_pid
    });
    assert!(
        restarted,
        "the engine did not restart {} (restart=always)\n{}",
        old.name,
        engine.log()
    );
    let ns = CtrNs {
        pid,
        name: old.name.clone(),
    };
    let t_old = wait_plumbed(
        &mut w,
        &ns,
        "eth1",
        "10.236.6.5/24",
        back,
        Duration::from_secs(20),
    );
    assert_eq!(
        iface(&ns, "eth1").unwrap().0,
        mac,
        "same MAC after the engine restart"
    );
    assert_attached(&host, "br1", &ns, "eth1", &["10.236.6.5/24"]);
    w.wait_log("following events at", 2, Duration::from_secs(1));

    // A container started now: the start event of the new connection.
    let t = Instant::now();
    let new = Ctr::run(
        &dh,
        &unique("we"),
        &[("pipework.1", "br1 10.236.6.6/24")],
        &[],
    );
    let nn = new.ns();
    let t_new = wait_plumbed(
        &mut w,
        &nn,
        "eth1",
        "10.236.6.6/24",
        t,
        Duration::from_secs(5),
    );
    assert!(ping(&nn, "10.236.6.5"), "new -> restarted container");
    eprintln!(
        "engine restart: stop {stop_took:?}, relaunch {launch_took:?}; the restarted container \
         was plumbed {t_old:?} after the engine answered again, a new one {t_new:?} after \
         docker run was called; test total {:?}",
        t0.elapsed()
    );

    // The old incarnation died while the engine shut down (its die event came before the
    // stream closed): only the new incarnation's record is left.
    let mut recs = vec![];
    let one = wait_until(Duration::from_secs(2), || {
        recs = records_of(&ls(&host, &dh, rt.path()), &old.name);
        recs.len() == 1 && recs[0].0 == "eth1" && recs[0].1 == "alive"
    });
    assert!(
        one,
        "records of the restarted container: {recs:?} (want one, alive)\n--- watch log ---\n{}",
        w.log()
    );
    w.assert_running();
    drop(new);
    drop(old);
    drop(w);
}

// ---------------------------------------------------------------------------------------------
// 7. Podman's event stream (a private Podman service)
// ---------------------------------------------------------------------------------------------

/// The namespace of a Podman container as it is now (a restart gives it a new one).
fn podman_ns(podman: &engines::Podman, name: &str) -> CtrNs {
    let pid: u32 = podman
        .ok(&["inspect", "-f", "{{.State.Pid}}", name])
        .parse()
        .expect("State.Pid");
    assert_ne!(pid, 0, "podman container {name} is not running");
    CtrNs {
        pid,
        name: name.to_string(),
    }
}

/// Watch on Podman's Docker-compatible socket (DOCKER_HOST=unix://…/podman.sock): a labelled
/// container is plumbed at its start, again after `podman restart` (same address and MAC, the
/// dead incarnation's record gone), and its record goes when it is removed. Podman 4.3 names a
/// container's death `died` internally and only matches that name in an event filter (it
/// reports it as `die`): without asking for both, watch would never see a Podman death.
#[test]
fn podman_event_stream_plumbs_restart_and_removal() {
    if !engines::engine_or_skip(&test_name(), "Podman", &["podman"]) {
        return;
    }
    // Dropped last: its Drop removes every container, then stops the service.
    let podman = engines::Podman::start();
    let ph = podman.host();
    let host = Netns::new("h");
    let rt = RuntimeDir::new();
    let mut w = Watch::start(&host, &ph, rt.path(), &[]);

    let name = unique("wp");
    let t = Instant::now();
    podman.ok(&[
        "run",
        "-d",
        "--network=none",
        "--name",
        &name,
        "-l",
        "pipework.1=br1 10.236.90.5/24",
        &podman.image,
        "sleep",
        "100000",
    ]);
    let run_took = t.elapsed();
    let since = Instant::now();
    let ns = podman_ns(&podman, &name);
    let took = wait_plumbed(
        &mut w,
        &ns,
        "eth1",
        "10.236.90.5/24",
        since,
        Duration::from_secs(2),
    );
    eprintln!("podman run took {run_took:?}; eth1 plumbed {took:?} after it returned");
    let (g, h) = assert_attached(&host, "br1", &ns, "eth1", &["10.236.90.5/24"]);
    assert_eq!(g.mac, derived_mac(&name, "eth1"), "derived MAC");
    let mut names = link_names(&ns);
    names.sort();
    assert_eq!(names, ["eth1", "lo"], "exactly the labelled interface");
    let before = iface(&ns, "eth1").expect("eth1");
    let want = vec![("eth1".to_string(), "alive".to_string(), h.name, g.mac)];
    let listed = ls(&host, &ph, rt.path());
    let recs = records_of(&listed, &name);
    assert_eq!(recs, want, "the record of the attachment");
    // The Docker-compatible socket is Podman's: the record says so (detach podman:NAME finds it).
    let engines: Vec<&str> = listed
        .iter()
        .filter(|r| r.get("guest_name").and_then(Value::as_str) == Some(name.as_str()))
        .filter_map(|r| r.get("engine").and_then(Value::as_str))
        .collect();
    assert_eq!(
        engines,
        ["podman"],
        "watch on a Podman socket records the engine as podman"
    );

    // podman restart: die, then start; same interface, address and MAC in the new namespace.
    let t = Instant::now();
    podman.ok(&["restart", "-t", "0", &name]);
    let restart_took = t.elapsed();
    let since = Instant::now();
    let ns2 = podman_ns(&podman, &name);
    assert_ne!(ns2.pid, ns.pid, "the container was restarted");
    let took = wait_plumbed(
        &mut w,
        &ns2,
        "eth1",
        "10.236.90.5/24",
        since,
        Duration::from_secs(2),
    );
    eprintln!("podman restart took {restart_took:?}; eth1 back {took:?} after it returned");
    assert_eq!(
        iface(&ns2, "eth1").expect("eth1"),
        before,
        "same MAC and address after podman restart"
    );
    let (g, h) = assert_attached(&host, "br1", &ns2, "eth1", &["10.236.90.5/24"]);
    assert_eq!(ports_of(&host, "br1").len(), 1, "no old host end left");
    // The restart's die event was seen: the old incarnation's attachment was undone.
    w.wait_log(": detached (", 1, Duration::from_secs(2));
    // The dead incarnation's record was removed at its death (die event), the new one is alive.
    let want = vec![("eth1".to_string(), "alive".to_string(), h.name, g.mac)];
    let mut recs = vec![];
    let same = wait_until(Duration::from_secs(2), || {
        recs = records_of(&ls(&host, &ph, rt.path()), &name);
        recs == want
    });
    assert!(
        same,
        "records after podman restart\n  got  {recs:?}\n  want {want:?}\n--- watch log ---\n{}",
        w.log()
    );

    // podman rm -f: the record, the host end and the bridge watch created all go.
    let t = Instant::now();
    podman.ok(&["rm", "-f", "-t", "0", &name]);
    let rm_took = t.elapsed();
    let since = Instant::now();
    let mut list = vec![];
    let gone = wait_until(Duration::from_secs(2), || {
        list = ls(&host, &ph, rt.path());
        records_of(&list, &name).is_empty()
    });
    assert!(
        gone,
        "the record is still listed after podman rm -f: {list:?}\n--- watch log ---\n{}",
        w.log()
    );
    eprintln!(
        "podman rm -f took {rm_took:?}; record gone {:?} after it returned",
        since.elapsed()
    );
    assert!(list.is_empty(), "no record left: {list:?}");
    let clean = wait_until(Duration::from_secs(2), || link_names(&host) == ["lo"]);
    assert!(
        clean,
        "nothing of watch's left in the host namespace: {:?}\n--- watch log ---\n{}",
        link_names(&host),
        w.log()
    );
    w.assert_running();
}

/// `watch --lab FILE`: a lab guest that restarts (a new namespace, its lab interfaces gone)
/// gets its part of the lab back, with the same MAC; the rest of the lab is not touched.
#[test]
fn lab_guest_restart_is_reconverged() {
    let dh = need_docker!();
    let _lock = lock_shared_daemon();
    let host = Netns::new("h");
    let rt = RuntimeDir::new();
    let peer = Netns::new("g");
    let name = unique("wl");
    let c = Ctr::run(&dh, &name, &[], &[]);
    let dir = TempDir::new("watchlab");
    let file = dir.join("lab.yaml");
    let br = format!("pwl{}", rand_hex(6));
    let lab = format!("t{}", rand_hex(6));
    std::fs::write(
        &file,
        format!(
            "lab: {lab}\nguests:\n  web: docker:{name}\n  peer: {{netns: {}}}\n\
             bridges:\n  {br}: {{}}\nattach:\n  - {br} web 10.236.40.2/24\n  - {br} peer 10.236.40.3/24\n",
            peer.name
        ),
    )
    .unwrap();
    let f = file.display().to_string();
    let apply = |args: &[&str]| {
        let mut cmd = cmd_in(&host, BIN);
        cmd.args(args)
            .env("DOCKER_HOST", &dh)
            .env("PIPEWORK_RUNTIME_DIR", rt.path())
            .env_remove("PIPEWORK_TEST_FAIL_STEP")
            .stdin(Stdio::null());
        let out = cmd.output().expect("spawn pipework");
        assert!(
            out.status.success(),
            "pipework {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    apply(&["apply", &f]);
    let (mac, _) = iface(&c.ns(), "eth1").expect("web:eth1 after apply");
    let peer_before = snapshot(&peer);
    let mut w = Watch::start(&host, &dh, rt.path(), &["--lab", &f]);
    docker_out(&dh, &["restart", "-t", "0", &name]);
    let since = Instant::now();
    let ns = c.ns();
    wait_plumbed(
        &mut w,
        &ns,
        "eth1",
        "10.236.40.2/24",
        since,
        Duration::from_secs(5),
    );
    let (mac2, addrs) = iface(&ns, "eth1").expect("web:eth1 after the restart");
    assert_eq!(mac2, mac, "the stable MAC comes back");
    assert_eq!(addrs, ["10.236.40.2/24"]);
    assert!(
        c.ping("10.236.40.3"),
        "the restarted container reaches the peer again"
    );
    assert_unchanged(&peer, &peer_before, "the rest of the lab");
    w.wait_log(&format!("lab {lab} guest web"), 1, Duration::from_secs(5));
    drop(w);
    assert!(apply(&["plan", &f]).contains("no changes"));
    apply(&["destroy", &lab]);
}
