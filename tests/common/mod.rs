//! Shared helpers for pipework's integration tests.
//!
//! Every test builds its own little world and tears it down in `Drop`, even when it panics:
//! - a "host" network namespace ([`Netns`]) in which the pipework binary runs (never the
//!   machine's own namespace, whose interfaces, routes and firewall we never touch);
//! - guests: plain named namespaces ([`Netns`]), `unshare -n sleep infinity` processes
//!   ([`PidGuest`]) or Docker containers of the private test daemon ([`Container`]).
//!
//! Names are unique per test (`pwt-` + random hex) because nextest runs tests in parallel, one
//! process each. Processes are entered into a namespace with `setns(2)` in `pre_exec` (never
//! `ip netns exec`, which remounts /sys). State is read back with `ip -j` (JSON).
#![allow(dead_code)]

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_pipework");

/// How long one pipework run may take before the test kills it and fails.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Skipping
// ---------------------------------------------------------------------------------------------

/// The running test's name (libtest names the test's thread after it).
pub fn test_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_string()
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// True when the test may run; prints the reason and returns false otherwise.
pub fn root_or_skip(test: &str) -> bool {
    if is_root() {
        return true;
    }
    eprintln!("SKIP {test}: needs root (network namespaces); run scripts/test.sh as root");
    false
}

/// Returns early (the test passes, with a printed reason) unless running as root.
#[allow(unused_macros)]
macro_rules! need_root {
    () => {
        if !$crate::common::root_or_skip(&$crate::common::test_name()) {
            return;
        }
    };
}
#[allow(unused_imports)]
pub(crate) use need_root;

/// Evaluates to the docker host (`unix://...`) or returns early with a printed reason.
#[allow(unused_macros)]
macro_rules! need_docker {
    () => {
        match $crate::common::docker_or_skip(&$crate::common::test_name()) {
            Some(h) => h,
            None => return,
        }
    };
}
#[allow(unused_imports)]
pub(crate) use need_docker;

/// The test dockerd's address when PIPEWORK_TEST_DOCKER_HOST is set and the daemon answers.
pub fn docker_host() -> Option<String> {
    static HOST: OnceLock<Option<String>> = OnceLock::new();
    HOST.get_or_init(|| {
        let host = std::env::var("PIPEWORK_TEST_DOCKER_HOST").ok()?;
        if host.is_empty() {
            return None;
        }
        let ok = Command::new("docker")
            .args(["-H", &host, "version", "--format", "{{.Server.Version}}"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        ok.then_some(host)
    })
    .clone()
}

pub fn docker_or_skip(test: &str) -> Option<String> {
    if !root_or_skip(test) {
        return None;
    }
    let h = docker_host();
    if h.is_none() {
        eprintln!(
            "SKIP {test}: needs the test Docker daemon: PIPEWORK_TEST_DOCKER_HOST is unset or \
             not answering (scripts/test.sh starts one with scripts/testenv.sh up)"
        );
    }
    h
}

pub fn test_image() -> String {
    std::env::var("PIPEWORK_TEST_IMAGE")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "pipework-test/busybox:latest".to_string())
}

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

/// A fresh random-looking hex string: pid, clock and a per-process counter mixed together.
pub fn rand_hex(len: usize) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut x = t ^ ((std::process::id() as u64) << 40) ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    // splitmix64 finaliser
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    let s = format!("{x:016x}");
    s[..len.min(16)].to_string()
}

/// `pwt-<tag><8 hex>`: the prefix the final leak check of scripts/test.sh looks for.
pub fn unique(tag: &str) -> String {
    format!("pwt-{tag}{}", rand_hex(8))
}

// ---------------------------------------------------------------------------------------------
// Namespaces
// ---------------------------------------------------------------------------------------------

/// Anything with a network namespace we can enter or inspect.
pub trait Ns {
    /// A path that opens the namespace (`/run/netns/NAME`, `/proc/PID/ns/net`).
    fn ns_path(&self) -> PathBuf;
    /// The `ip netns` name, when it has one.
    fn ns_name(&self) -> Option<&str> {
        None
    }
    /// A short description for messages.
    fn describe(&self) -> String {
        self.ns_path().display().to_string()
    }
}

/// Makes `cmd` join the network namespace at `path` between fork and exec.
pub fn enter_ns(cmd: &mut Command, path: &Path) {
    let file = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    // SAFETY: only async-signal-safe calls (setns, errno access) run in the child.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A command that runs inside `ns` (by setns in pre_exec).
pub fn cmd_in(ns: &dyn Ns, program: &str) -> Command {
    let mut c = Command::new(program);
    enter_ns(&mut c, &ns.ns_path());
    c
}

/// `ip ARGS` aimed at `ns`: `ip -n NAME` for named namespaces, setns otherwise.
pub fn ip_cmd(ns: &dyn Ns) -> Command {
    match ns.ns_name() {
        Some(name) => {
            let mut c = Command::new("ip");
            c.args(["-n", name]);
            c
        }
        None => cmd_in(ns, "ip"),
    }
}

/// Runs `ip ARGS` in `ns`, panicking with its output when it fails.
pub fn ip(ns: &dyn Ns, args: &[&str]) -> String {
    let out = ip_cmd(ns).args(args).output().expect("spawn ip");
    if !out.status.success() {
        panic!(
            "ip {} in {} failed ({}): {}{}",
            args.join(" "),
            ns.describe(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `ip ARGS` in `ns` and returns the raw output, whatever the status.
pub fn ip_raw(ns: &dyn Ns, args: &[&str]) -> Output {
    ip_cmd(ns).args(args).output().expect("spawn ip")
}

/// `ip -j ARGS` parsed (an empty output is an empty array).
pub fn ip_json(ns: &dyn Ns, args: &[&str]) -> Vec<Value> {
    let mut full = vec!["-j"];
    full.extend_from_slice(args);
    let s = ip(ns, &full);
    if s.trim().is_empty() {
        return vec![];
    }
    match serde_json::from_str::<Value>(&s) {
        Ok(Value::Array(v)) => v,
        Ok(other) => panic!("ip -j {}: expected an array, got {other}", args.join(" ")),
        Err(e) => panic!("ip -j {}: bad JSON ({e}): {s}", args.join(" ")),
    }
}

/// `ip ARGS` without a namespace (only for `ip netns add/del`).
fn ip_ok_global(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("spawn ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn inode_of(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .ino()
}

/// A named network namespace (`ip netns add pwt-...`), deleted on drop. Loopback is up.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        for _ in 0..5 {
            let name = unique(tag);
            let st = Command::new("ip")
                .args(["netns", "add", &name])
                .stderr(Stdio::null())
                .status()
                .expect("spawn ip netns add");
            if st.success() {
                let ns = Netns { name };
                ip(&ns, &["link", "set", "lo", "up"]);
                return ns;
            }
        }
        panic!("could not create a network namespace");
    }

    /// A namespace with exactly this name (the caller makes it unique).
    pub fn named(name: &str) -> Netns {
        ip_ok_global(&["netns", "add", name]);
        let ns = Netns {
            name: name.to_string(),
        };
        ip(&ns, &["link", "set", "lo", "up"]);
        ns
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }
}

impl Ns for Netns {
    fn ns_path(&self) -> PathBuf {
        self.path()
    }
    fn ns_name(&self) -> Option<&str> {
        Some(&self.name)
    }
    fn describe(&self) -> String {
        format!("netns {}", self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// A process alone in its own network namespace: `unshare -n sleep infinity`. Killed on drop.
pub struct PidGuest {
    child: Child,
    pub pid: u32,
}

impl PidGuest {
    pub fn new() -> PidGuest {
        let mut cmd = Command::new("unshare");
        cmd.args(["-n", "sleep", "infinity"]).stdin(Stdio::null());
        // SAFETY: prctl is async-signal-safe. If the test dies without running Drop (killed
        // on timeout), the kernel kills the sleeper too.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn unshare -n sleep infinity");
        let pid = child.id();
        let g = PidGuest { child, pid };
        // Wait until unshare(2) has happened: the process's netns differs from ours.
        let mine = inode_of(Path::new("/proc/self/ns/net"));
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let theirs = std::fs::metadata(g.ns_path())
                .ok()
                .map(|_| inode_of(&g.ns_path()));
            if theirs.is_some_and(|i| i != mine) {
                break;
            }
            assert!(Instant::now() < deadline, "unshare -n did not take effect");
            std::thread::sleep(Duration::from_millis(2));
        }
        ip(&g, &["link", "set", "lo", "up"]);
        g
    }
}

impl Default for PidGuest {
    fn default() -> Self {
        Self::new()
    }
}

impl Ns for PidGuest {
    fn ns_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.pid))
    }
    fn describe(&self) -> String {
        format!("pid {}", self.pid)
    }
}

impl Drop for PidGuest {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) on the child we spawned.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Docker
// ---------------------------------------------------------------------------------------------

pub fn docker(host: &str, args: &[&str]) -> Output {
    Command::new("docker")
        .arg("-H")
        .arg(host)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("spawn docker")
}

fn docker_ok(host: &str, args: &[&str]) -> String {
    let out = docker(host, args);
    if !out.status.success() {
        panic!(
            "docker {} failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A container of the test daemon (`--net=none`, only `lo` inside), removed on drop.
pub struct Container {
    pub host: String,
    pub name: String,
    pub id: String,
    /// 0 when not running.
    pub pid: u32,
}

impl Container {
    /// `docker run -d --pull=never --net=none --name pwt-... IMAGE sleep 100000`.
    pub fn run(host: &str) -> Container {
        Self::make(host, "run", &[])
    }

    /// `docker run` with extra options (before the image), e.g. `--sysctl ...`.
    pub fn run_with(host: &str, extra: &[&str]) -> Container {
        Self::make(host, "run", extra)
    }

    /// `docker create ...`: a container that exists but was never started.
    pub fn created(host: &str) -> Container {
        Self::make(host, "create", &[])
    }

    fn make(host: &str, verb: &str, extra: &[&str]) -> Container {
        let name = unique("c");
        let mut args = vec![verb];
        if verb == "run" {
            args.push("-d");
        }
        let image = test_image();
        args.extend_from_slice(&["--pull=never", "--net=none", "--name", &name]);
        args.extend_from_slice(extra);
        args.extend_from_slice(&[&image, "sleep", "100000"]);
        let mut c = Container {
            host: host.to_string(),
            name: name.clone(),
            id: String::new(),
            pid: 0,
        };
        c.id = docker_ok(host, &args);
        c.pid = docker_ok(host, &["inspect", "-f", "{{.State.Pid}}", &name])
            .parse()
            .expect("State.Pid");
        c
    }

    /// `docker stop -t 0`.
    pub fn stop(&mut self) {
        docker_ok(&self.host, &["stop", "-t", "0", &self.name]);
        self.pid = 0;
    }

    /// `docker exec NAME ARGS...`.
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut full = vec!["exec", self.name.as_str()];
        full.extend_from_slice(args);
        docker(&self.host, &full)
    }
}

impl Ns for Container {
    fn ns_path(&self) -> PathBuf {
        assert!(self.pid != 0, "container {} is not running", self.name);
        PathBuf::from(format!("/proc/{}/ns/net", self.pid))
    }
    fn describe(&self) -> String {
        format!("container {}", self.name)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&self.host, &["rm", "-f", &self.name]);
    }
}

// ---------------------------------------------------------------------------------------------
// Running pipework
// ---------------------------------------------------------------------------------------------

/// What one pipework run did.
#[derive(Debug)]
pub struct Run {
    pub args: Vec<String>,
    /// Exit code; -N when killed by signal N.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    fn show(&self) -> String {
        format!(
            "$ pipework {}\nexit code: {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        )
    }

    /// Panics unless the run exited 0.
    pub fn ok(&self) -> &Run {
        assert_eq!(self.code, 0, "expected success\n{}", self.show());
        self
    }

    /// Panics unless the run exited `code` and stderr (or stdout) contains `needle`.
    pub fn fails(&self, code: i32, needle: &str) -> &Run {
        assert_eq!(
            self.code,
            code,
            "expected exit code {code}\n{}",
            self.show()
        );
        let all = format!("{}{}", self.stderr, self.stdout);
        assert!(
            all.contains(needle),
            "expected the message to contain {needle:?}\n{}",
            self.show()
        );
        self
    }

    /// Panics unless the run exited `code` and the message contains one of `needles`
    /// (case-insensitive): for failures whose exact wording the contract leaves open.
    pub fn fails_any(&self, code: i32, needles: &[&str]) -> &Run {
        assert_eq!(
            self.code,
            code,
            "expected exit code {code}\n{}",
            self.show()
        );
        let all = format!("{}{}", self.stderr, self.stdout).to_lowercase();
        assert!(
            needles.iter().any(|n| all.contains(&n.to_lowercase())),
            "expected the message to mention one of {needles:?}\n{}",
            self.show()
        );
        self
    }

    /// The error went to stderr, and it is not a Rust panic or backtrace.
    pub fn clean_error(&self) -> &Run {
        assert!(
            !self.stderr.trim().is_empty(),
            "no error message\n{}",
            self.show()
        );
        assert!(
            !self.stderr.contains("panicked at") && !self.stderr.contains("stack backtrace"),
            "error message is a panic/backtrace\n{}",
            self.show()
        );
        self
    }

    /// stdout parsed as one JSON object.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{}", self.show()))
    }

    /// `(step, detail)` of every `pipework: step NAME: DETAIL` line on stderr.
    pub fn steps(&self) -> Vec<(String, String)> {
        self.stderr
            .lines()
            .filter_map(|l| l.strip_prefix("pipework: step "))
            .filter_map(|rest| {
                let (name, detail) = rest.split_once(':')?;
                Some((name.trim().to_string(), detail.trim().to_string()))
            })
            .collect()
    }
}

/// Extra settings for one run.
#[derive(Default, Clone)]
pub struct Opts<'a> {
    pub env: Vec<(&'a str, &'a str)>,
    /// Run as this uid/gid (no capabilities) instead of root.
    pub as_user: Option<u32>,
    /// Use this binary instead of BIN.
    pub bin: Option<PathBuf>,
}

/// Runs pipework inside the network namespace `host` with `args`.
pub fn pipework(host: &dyn Ns, args: &[&str]) -> Run {
    pipework_with(host, args, &Opts::default())
}

/// Runs pipework inside `host` with extra environment variables.
pub fn pipework_env(host: &dyn Ns, args: &[&str], env: &[(&str, &str)]) -> Run {
    pipework_with(
        host,
        args,
        &Opts {
            env: env.to_vec(),
            ..Default::default()
        },
    )
}

/// Spawns pipework inside `ns` without waiting (for `--wait`).
pub fn spawn_pipework(ns: &dyn Ns, args: &[&str]) -> Child {
    let mut cmd = pipework_command(ns, args, &Opts::default());
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.spawn().expect("spawn pipework")
}

fn pipework_command(host: &dyn Ns, args: &[&str], opts: &Opts) -> Command {
    let bin = opts.bin.clone().unwrap_or_else(|| PathBuf::from(BIN));
    let mut cmd = Command::new(bin);
    cmd.args(args).stdin(Stdio::null());
    // Never let a test reach the machine's own Docker daemon.
    let dh = docker_host().unwrap_or_else(|| "unix:///nonexistent/pwt-no-docker.sock".into());
    cmd.env("DOCKER_HOST", dh);
    cmd.env_remove("PIPEWORK_TEST_FAIL_STEP");
    for (k, v) in &opts.env {
        cmd.env(k, v);
    }
    let file = File::open(host.ns_path())
        .unwrap_or_else(|e| panic!("open {}: {e}", host.ns_path().display()));
    let as_user = opts.as_user;
    // SAFETY: only async-signal-safe calls run between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // Dies with the test (e.g. a `--wait` left running by a failed test).
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(uid) = as_user {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(uid as libc::gid_t) != 0
                    || libc::setuid(uid as libc::uid_t) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    cmd
}

/// Runs pipework inside `host` with all the knobs.
pub fn pipework_with(host: &dyn Ns, args: &[&str], opts: &Opts) -> Run {
    let mut cmd = pipework_command(host, args, opts);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let start = Instant::now();
    let child = cmd.spawn().expect("spawn pipework");
    let out = wait_timeout(child, RUN_TIMEOUT).unwrap_or_else(|(o, _)| {
        panic!(
            "pipework {} did not finish within {RUN_TIMEOUT:?}\nstdout: {}\nstderr: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    let run = Run {
        args: args.iter().map(|s| s.to_string()).collect(),
        code: code_of(&out),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: start.elapsed(),
    };
    eprintln!("{}\n(took {:?})\n", run.show(), run.elapsed);
    run
}

pub fn code_of(out: &Output) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    out.status
        .code()
        .unwrap_or_else(|| -out.status.signal().unwrap_or(0))
}

/// Waits for `child` (stdout/stderr piped) at most `limit`. On timeout the child is killed and
/// `Err((partial output, ()))` is returned.
pub fn wait_timeout(mut child: Child, limit: Duration) -> Result<Output, (Output, ())> {
    let mut so = child.stdout.take();
    let mut se = child.stderr.take();
    let t_out = std::thread::spawn(move || {
        let mut b = Vec::new();
        if let Some(s) = so.as_mut() {
            let _ = s.read_to_end(&mut b);
        }
        b
    });
    let t_err = std::thread::spawn(move || {
        let mut b = Vec::new();
        if let Some(s) = se.as_mut() {
            let _ = s.read_to_end(&mut b);
        }
        b
    });
    let deadline = Instant::now() + limit;
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let out = Output {
        status,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    };
    if timed_out {
        Err((out, ()))
    } else {
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------------
// Inspection
// ---------------------------------------------------------------------------------------------

/// One link as `ip -d -j link` shows it.
#[derive(Debug, Clone)]
pub struct Link {
    pub name: String,
    pub index: u64,
    pub flags: Vec<String>,
    pub mtu: u64,
    pub mac: String,
    pub master: Option<String>,
    pub kind: Option<String>,
    pub slave_kind: Option<String>,
    pub raw: Value,
}

impl Link {
    fn from_json(v: &Value) -> Link {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        Link {
            name: s("ifname").unwrap_or_default(),
            index: v.get("ifindex").and_then(Value::as_u64).unwrap_or(0),
            flags: v
                .get("flags")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|f| f.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
            mtu: v.get("mtu").and_then(Value::as_u64).unwrap_or(0),
            mac: s("address").unwrap_or_default(),
            master: s("master"),
            kind: v
                .pointer("/linkinfo/info_kind")
                .and_then(Value::as_str)
                .map(String::from),
            slave_kind: v
                .pointer("/linkinfo/info_slave_kind")
                .and_then(Value::as_str)
                .map(String::from),
            raw: v.clone(),
        }
    }

    /// Administratively up (IFF_UP).
    pub fn is_up(&self) -> bool {
        self.flags.iter().any(|f| f == "UP")
    }

    /// Carrier (IFF_LOWER_UP).
    pub fn has_carrier(&self) -> bool {
        self.flags.iter().any(|f| f == "LOWER_UP")
    }
}

pub fn links(ns: &dyn Ns) -> Vec<Link> {
    ip_json(ns, &["-d", "link", "show"])
        .iter()
        .map(Link::from_json)
        .collect()
}

pub fn link(ns: &dyn Ns, name: &str) -> Option<Link> {
    links(ns).into_iter().find(|l| l.name == name)
}

pub fn must_link(ns: &dyn Ns, name: &str) -> Link {
    link(ns, name).unwrap_or_else(|| {
        panic!(
            "no link {name} in {}; links: {:?}",
            ns.describe(),
            link_names(ns)
        )
    })
}

pub fn link_names(ns: &dyn Ns) -> Vec<String> {
    links(ns).into_iter().map(|l| l.name).collect()
}

/// Links enslaved to `bridge`.
pub fn ports_of(ns: &dyn Ns, bridge: &str) -> Vec<Link> {
    links(ns)
        .into_iter()
        .filter(|l| l.master.as_deref() == Some(bridge))
        .collect()
}

/// One address as `ip -j addr` shows it.
#[derive(Debug, Clone)]
pub struct Addr {
    pub ifname: String,
    pub family: String,
    pub local: String,
    pub prefixlen: u64,
    pub broadcast: Option<String>,
    pub scope: String,
    pub tentative: bool,
    pub raw: Value,
}

impl Addr {
    pub fn cidr(&self) -> String {
        format!("{}/{}", self.local, self.prefixlen)
    }
}

/// All addresses in `ns` (optionally of one link).
pub fn addrs(ns: &dyn Ns, ifname: Option<&str>) -> Vec<Addr> {
    let mut args = vec!["addr", "show"];
    if let Some(i) = ifname {
        args.extend_from_slice(&["dev", i]);
    }
    let mut res = vec![];
    for l in ip_json(ns, &args) {
        let name = l.get("ifname").and_then(Value::as_str).unwrap_or_default();
        for a in l
            .get("addr_info")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let s = |k: &str| a.get(k).and_then(Value::as_str).map(str::to_string);
            if s("local").is_none() {
                continue;
            }
            res.push(Addr {
                ifname: name.to_string(),
                family: s("family").unwrap_or_default(),
                local: s("local").unwrap_or_default(),
                prefixlen: a.get("prefixlen").and_then(Value::as_u64).unwrap_or(0),
                broadcast: s("broadcast"),
                scope: s("scope").unwrap_or_default(),
                tentative: a.get("tentative").and_then(Value::as_bool).unwrap_or(false),
                raw: a.clone(),
            });
        }
    }
    res
}

/// Global-scope addresses of a link, as `addr/prefix`.
pub fn global_cidrs(ns: &dyn Ns, ifname: &str) -> Vec<String> {
    addrs(ns, Some(ifname))
        .into_iter()
        .filter(|a| a.scope == "global")
        .map(|a| a.cidr())
        .collect()
}

/// Routes of the main table of one family (`v6` false: IPv4).
pub fn routes(ns: &dyn Ns, v6: bool) -> Vec<Value> {
    ip_json(
        ns,
        &[
            if v6 { "-6" } else { "-4" },
            "route",
            "show",
            "table",
            "main",
        ],
    )
}

/// `(gateway, dev)` of the default route of one family.
pub fn default_route(ns: &dyn Ns, v6: bool) -> Option<(String, String)> {
    routes(ns, v6).into_iter().find_map(|r| {
        (r.get("dst").and_then(Value::as_str) == Some("default")).then(|| {
            (
                r.get("gateway")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                r.get("dev")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            )
        })
    })
}

/// The route to exactly `dst` (as `ip -j` prints it: host routes without /32 or /128).
pub fn route_to(ns: &dyn Ns, v6: bool, dst: &str) -> Option<Value> {
    let bare = dst
        .strip_suffix("/32")
        .or_else(|| dst.strip_suffix("/128"))
        .unwrap_or(dst);
    routes(ns, v6)
        .into_iter()
        .find(|r| matches!(r.get("dst").and_then(Value::as_str), Some(d) if d == dst || d == bare))
}

/// `(lladdr, state)` of the neighbour entry for `addr`.
pub fn neighbour(ns: &dyn Ns, addr: &str) -> Option<(String, String)> {
    ip_json(ns, &["neigh", "show", addr])
        .into_iter()
        .find_map(|n| {
            let ll = n.get("lladdr").and_then(Value::as_str)?.to_string();
            let st = n
                .get("state")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            Some((ll, st))
        })
}

/// Everything in a namespace that an attach could create or change: links (name, kind, master,
/// up, MTU, MAC), addresses, main-table routes of both families. Compared before/after failed runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub links: BTreeMap<String, String>,
    pub addrs: BTreeSet<String>,
    pub routes: BTreeSet<String>,
}

pub fn snapshot(ns: &dyn Ns) -> Snapshot {
    let links = links(ns)
        .into_iter()
        .map(|l| {
            // A bridge that has lost its last port changes its MAC by itself (to zero unless
            // it was set by hand): not pipework's doing, so bridges are compared without it.
            let mac = if l.kind.as_deref() == Some("bridge") {
                "-"
            } else {
                l.mac.as_str()
            };
            let desc = format!(
                "kind={} master={} up={} mtu={} mac={mac}",
                l.kind.clone().unwrap_or_default(),
                l.master.clone().unwrap_or_default(),
                l.is_up(),
                l.mtu,
            );
            (l.name, desc)
        })
        .collect();
    let addrs = addrs(ns, None)
        .into_iter()
        .map(|a| format!("{} {}", a.ifname, a.cidr()))
        .collect();
    let mut routes_set = BTreeSet::new();
    for v6 in [false, true] {
        for r in routes(ns, v6) {
            let g = |k: &str| match r.get(k) {
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => String::new(),
            };
            // "linkdown" follows the carrier of the device (a bridge that lost its last port
            // has none): kernel state, not a change made by pipework.
            let flags: Vec<&str> = r
                .get("flags")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let flags: Vec<&str> = flags.into_iter().filter(|f| *f != "linkdown").collect();
            // The protocol (boot/static/...) is left out: a restored route is the same route.
            routes_set.insert(format!(
                "{} via {} dev {} scope {} metric {} flags {}",
                g("dst"),
                g("gateway"),
                g("dev"),
                g("scope"),
                g("metric"),
                flags.join(",")
            ));
        }
    }
    Snapshot {
        links,
        addrs,
        routes: routes_set,
    }
}

/// Panics with a readable diff unless `ns` looks exactly like `before`.
pub fn assert_unchanged(ns: &dyn Ns, before: &Snapshot, context: &str) {
    let after = snapshot(ns);
    if &after != before {
        panic!(
            "{context}: {} was left changed\nbefore: {before:#?}\nafter: {after:#?}",
            ns.describe()
        );
    }
}

/// Polls `f` every 20 ms until it returns true or `limit` passes.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// Traffic
// ---------------------------------------------------------------------------------------------

/// One ping from inside `ns` to `addr` (system `ping`, iputils). Retries a few times.
pub fn ping(ns: &dyn Ns, addr: &str) -> bool {
    for _ in 0..3 {
        let out = cmd_in(ns, "ping")
            .args(["-c1", "-W1", addr])
            .output()
            .expect("spawn ping (install iputils-ping: scripts/testenv.sh install)");
        if out.status.success() {
            return true;
        }
        eprintln!(
            "ping {addr} from {} failed: {}{}",
            ns.describe(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    false
}

/// One ping from inside a container (busybox ping via `docker exec`). Retries a few times.
pub fn docker_ping(c: &Container, addr: &str) -> bool {
    for _ in 0..3 {
        let out = c.exec(&["ping", "-c1", "-W1", addr]);
        if out.status.success() {
            return true;
        }
        eprintln!(
            "ping {addr} from {} failed: {}{}",
            c.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    false
}

// ---------------------------------------------------------------------------------------------
// Common checks
// ---------------------------------------------------------------------------------------------

/// The guest end `ifname` in `guest` is up with carrier, has exactly the global addresses
/// `cidrs`, and its host end is a veth enslaved to `bridge`, up. Returns (guest link, host
/// end).
pub fn assert_attached(
    host: &dyn Ns,
    bridge: &str,
    guest: &dyn Ns,
    ifname: &str,
    cidrs: &[&str],
) -> (Link, Link) {
    let g = must_link(guest, ifname);
    assert_eq!(
        g.kind.as_deref(),
        Some("veth"),
        "guest end is a veth: {g:?}"
    );
    assert!(g.is_up(), "guest end {ifname} is up: {g:?}");
    assert!(
        wait_until(Duration::from_secs(2), || must_link(guest, ifname)
            .has_carrier()),
        "guest end {ifname} has carrier"
    );
    let mut got = global_cidrs(guest, ifname);
    got.sort();
    let mut want: Vec<String> = cidrs.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(got, want, "addresses of {ifname} in {}", guest.describe());
    let br = must_link(host, bridge);
    assert_eq!(br.kind.as_deref(), Some("bridge"), "{bridge} is a bridge");
    assert!(br.is_up(), "{bridge} is up");
    let hend = host_end_of(host, guest, ifname);
    assert_eq!(
        hend.master.as_deref(),
        Some(bridge),
        "host end {} is enslaved to {bridge}",
        hend.name
    );
    assert!(hend.is_up(), "host end {} is up", hend.name);
    assert!(hend.name.len() <= 15, "host end name fits IFNAMSIZ");
    (g, hend)
}

/// The veth in `host` whose peer is link `guest_if` of `guest` (matched by peer ifindex).
pub fn host_end_of(host: &dyn Ns, guest: &dyn Ns, guest_if: &str) -> Link {
    let g = must_link(guest, guest_if);
    let ours = links(host)
        .into_iter()
        .filter(|l| l.kind.as_deref() == Some("veth"))
        .collect::<Vec<_>>();
    // `ip -j link` gives the peer's ifindex as "link_index" for a peer in another netns.
    let found = ours
        .iter()
        .find(|l| l.raw.get("link_index").and_then(Value::as_u64) == Some(g.index));
    match found {
        Some(l) => l.clone(),
        None => panic!(
            "no veth in {} is the peer of {guest_if} (ifindex {}) in {}: {:?}",
            host.describe(),
            g.index,
            guest.describe(),
            ours.iter().map(|l| &l.raw).collect::<Vec<_>>()
        ),
    }
}

/// Host-end name from the `v<IF>pl<PID>` rule (None when it does not fit 15 bytes).
pub fn default_host_name(guest_if: &str, pid: u32) -> Option<String> {
    let n = format!("v{guest_if}pl{pid}");
    (n.len() <= 15).then_some(n)
}
