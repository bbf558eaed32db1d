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

/// Real CNI runtimes (Podman's CNI backend, `ctr run --cni`) driving a plugin.
pub mod cni;

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

/// A skipped test's reason: printed, and counted by scripts/test.sh (one line appended to the
/// file `$PIPEWORK_TEST_SKIPS` names).
pub fn skip(line: String) {
    eprintln!("{line}");
    if let Some(path) = std::env::var_os("PIPEWORK_TEST_SKIPS") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{}", line.replace('\n', " "));
        }
    }
}

/// True when the test may run; prints the reason and returns false otherwise.
pub fn root_or_skip(test: &str) -> bool {
    if is_root() {
        return true;
    }
    skip(format!(
        "SKIP {test}: needs root (network namespaces); run scripts/test.sh as root"
    ));
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
        skip(format!(
            "SKIP {test}: needs the test Docker daemon: PIPEWORK_TEST_DOCKER_HOST is unset or \
             not answering (scripts/test.sh starts one with scripts/testenv.sh up)"
        ));
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

impl PidGuest {
    /// Kills the process and reaps it (the guest "dies"; its namespace goes with it unless
    /// something else holds it).
    pub fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: plain kill(2) on our own child, not yet reaped.
            unsafe {
                libc::kill(self.pid as libc::pid_t, libc::SIGKILL);
            }
        }
        let _ = self.child.wait();
    }
}

impl Drop for PidGuest {
    fn drop(&mut self) {
        self.kill();
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
    pub fn show(&self) -> String {
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
    /// Fed to its stdin (a CNI configuration), instead of /dev/null.
    pub stdin: Option<Vec<u8>>,
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
    // Records of one test never meet another's: a namespace inode freed by one test is soon
    // reused by another, and an attach there would find (and roll back) the first one's record.
    cmd.env("PIPEWORK_RUNTIME_DIR", test_runtime_dir());
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

/// This test process's own runtime directory (nextest runs one test per process): a
/// subdirectory of the run's (`$PIPEWORK_RUNTIME_DIR`, which scripts/test.sh removes at the end),
/// else of /tmp. Tests that need their own ([`RuntimeDir`]) pass it explicitly.
pub fn test_runtime_dir() -> PathBuf {
    let base = std::env::var_os("PIPEWORK_RUNTIME_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("pwt-run-shared"));
    base.join(format!("t{}", std::process::id()))
}

/// Runs pipework inside `host` with all the knobs.
pub fn pipework_with(host: &dyn Ns, args: &[&str], opts: &Opts) -> Run {
    pipework_within(host, args, opts, RUN_TIMEOUT)
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
/// The guest end of a veth attachment: a veth, up, with carrier, holding exactly `cidrs`.
pub fn assert_guest_veth(guest: &dyn Ns, ifname: &str, cidrs: &[&str]) -> Link {
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
    g
}

/// `cidrs`, and its host end is a veth enslaved to `bridge`, up. Returns (guest link, host
/// end).
pub fn assert_attached(
    host: &dyn Ns,
    bridge: &str,
    guest: &dyn Ns,
    ifname: &str,
    cidrs: &[&str],
) -> (Link, Link) {
    let g = assert_guest_veth(guest, ifname, cidrs);
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
    // `ip -j link` gives the peer's ifindex as "link_index" for a peer in another netns. Guests
    // in fresh namespaces often all have the same ifindex for their interface (2), so match
    // both ways: the guest end's link_index is the host end's ifindex, and the host end's
    // link_index is the guest end's.
    let peer = g.raw.get("link_index").and_then(Value::as_u64);
    let found = ours.iter().find(|l| {
        l.raw.get("link_index").and_then(Value::as_u64) == Some(g.index)
            && peer.is_none_or(|p| p == l.index)
    });
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

// ---------------------------------------------------------------------------------------------
// Host-interface kinds: shared helpers (Open vSwitch, macvlan, direct-phys, probes)
// ---------------------------------------------------------------------------------------------

/// True when `program` is an executable file in one of the directories of `$PATH` (plus the
/// sbin directories, where Debian puts the OVS daemons).
pub fn have_program(program: &str) -> bool {
    find_program(program).is_some()
}

/// The full path of `program` (see [`have_program`]).
pub fn find_program(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"])
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(program))
        .find(|p| {
            std::fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        });
    found
}

/// A `-v` run's distinct step names, in order.
pub fn step_names_of(run: &Run) -> Vec<String> {
    let mut names: Vec<String> = vec![];
    for (n, _) in run.steps() {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    names
}

/// Checks of one run with `PIPEWORK_TEST_FAIL_STEP=step`: exit 1 and the injection message.
pub fn injected_failure_problems(run: &Run, step: &str) -> Vec<String> {
    let mut problems = vec![];
    if run.code != 1 {
        problems.push(format!("exit code {} (want 1)", run.code));
    }
    let needle = format!("injected failure after step {step}");
    if !run.stderr.contains(&needle) {
        problems.push(format!("stderr lacks {needle:?}"));
    }
    if run.stderr.contains("panicked at") {
        problems.push("stderr shows a panic".into());
    }
    problems
}

/// `None` when `ns` looks like `before` (waiting up to `limit` for the kernel and daemons to
/// settle: link-local addresses, OVS reconfiguration), else a description of the difference.
pub fn changed_within(
    ns: &dyn Ns,
    before: &Snapshot,
    limit: Duration,
    what: &str,
) -> Option<String> {
    let mut last = None;
    let same = wait_until(limit, || {
        let now = snapshot(ns);
        let eq = &now == before;
        last = Some(now);
        eq
    });
    if same {
        None
    } else {
        Some(format!(
            "{what} ({}) changed:\nbefore {before:#?}\nafter {:#?}",
            ns.describe(),
            last.unwrap()
        ))
    }
}

/// [`changed_within`] over several namespaces: one description per namespace that did not come
/// back to its snapshot within its limit.
#[allow(dead_code)]
pub fn namespaces_changed(checks: &[(&dyn Ns, &Snapshot, Duration, &str)]) -> Vec<String> {
    checks
        .iter()
        .filter_map(|(ns, before, limit, what)| changed_within(*ns, before, *limit, what))
        .collect()
}

/// Like [`assert_unchanged`], but gives the namespace up to 2 s to settle.
pub fn assert_unchanged_soon(ns: &dyn Ns, before: &Snapshot, context: &str) {
    if let Some(d) = changed_within(ns, before, Duration::from_secs(2), context) {
        panic!("{d}");
    }
}

/// Runs every attempt, collects the problems of each, fails once at the end with all of them.
pub fn for_each_step(steps: &[String], mut attempt: impl FnMut(&str) -> Vec<String>) {
    assert!(!steps.is_empty(), "no steps to inject a failure after");
    eprintln!("steps: {steps:?}");
    let mut failures = vec![];
    for step in steps {
        let problems = attempt(step);
        if !problems.is_empty() {
            failures.push(format!("step {step}:\n  {}", problems.join("\n  ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} injected failures did not roll back cleanly:\n{}",
        failures.len(),
        steps.len(),
        failures.join("\n\n")
    );
}

/// One ping, one try, waiting `wait_s` seconds: for checks that a peer is NOT reachable.
pub fn ping_once(ns: &dyn Ns, addr: &str, wait_s: u32) -> bool {
    cmd_in(ns, "ping")
        .args(["-c1", &format!("-W{wait_s}"), addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("spawn ping")
        .success()
}

/// Moves the calling thread into the network namespace at `path` (only this thread).
pub fn enter_thread_ns(path: &Path) -> std::io::Result<()> {
    let f = File::open(path)?;
    // SAFETY: setns on a valid fd; affects only the calling thread's network namespace.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A TCP exchange between two namespaces: a listener in `server` on `port`, a client in
/// `client` that connects to `addr`, sends `len` bytes (several full-size segments, so
/// checksums and segmentation matter) and reads them back echoed. Threads that setns, no
/// external tools. Err with what went wrong.
pub fn tcp_roundtrip(
    server: &dyn Ns,
    client: &dyn Ns,
    addr: &str,
    port: u16,
    len: usize,
) -> Result<(), String> {
    use std::io::Write;
    use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
    use std::sync::mpsc;
    let limit = Duration::from_secs(5);
    let ip: IpAddr = addr
        .parse()
        .map_err(|e| format!("bad address {addr}: {e}"))?;
    let sp = server.ns_path();
    let cp = client.ns_path();
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    let srv = std::thread::spawn(move || -> Result<(), String> {
        let setup = (|| -> Result<TcpListener, String> {
            enter_thread_ns(&sp).map_err(|e| format!("server setns: {e}"))?;
            let any: IpAddr = if ip.is_ipv6() {
                "::".parse().unwrap()
            } else {
                "0.0.0.0".parse().unwrap()
            };
            let l = TcpListener::bind(SocketAddr::new(any, port))
                .map_err(|e| format!("bind :{port}: {e}"))?;
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            Ok(l)
        })();
        let l = match setup {
            Ok(l) => {
                let _ = ready_tx.send(Ok(()));
                l
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e.clone()));
                return Err(e);
            }
        };
        let deadline = Instant::now() + limit;
        let (mut s, _) = loop {
            match l.accept() {
                Ok(x) => break x,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        return Err("server: no connection within 5 s".into());
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(format!("accept: {e}")),
            }
        };
        s.set_nonblocking(false).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(limit)).map_err(|e| e.to_string())?;
        s.set_write_timeout(Some(limit))
            .map_err(|e| e.to_string())?;
        let mut buf = vec![];
        s.read_to_end(&mut buf)
            .map_err(|e| format!("server read (got {} bytes): {e}", buf.len()))?;
        s.write_all(&buf)
            .map_err(|e| format!("server write: {e}"))?;
        let _ = s.shutdown(Shutdown::Write);
        Ok(())
    });
    match ready_rx.recv_timeout(limit) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err("server did not start".into()),
    }
    let cli = std::thread::spawn(move || -> Result<(), String> {
        enter_thread_ns(&cp).map_err(|e| format!("client setns: {e}"))?;
        let mut s = TcpStream::connect_timeout(&SocketAddr::new(ip, port), limit)
            .map_err(|e| format!("connect {ip} port {port}: {e}"))?;
        s.set_read_timeout(Some(limit)).map_err(|e| e.to_string())?;
        s.set_write_timeout(Some(limit))
            .map_err(|e| e.to_string())?;
        let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        s.write_all(&payload)
            .map_err(|e| format!("client write: {e}"))?;
        s.shutdown(Shutdown::Write)
            .map_err(|e| format!("client shutdown: {e}"))?;
        let mut back = vec![];
        s.read_to_end(&mut back)
            .map_err(|e| format!("client read (got {} bytes): {e}", back.len()))?;
        if back != payload {
            return Err(format!(
                "echo differs: sent {} bytes, got {}",
                payload.len(),
                back.len()
            ));
        }
        Ok(())
    });
    let c = cli
        .join()
        .map_err(|_| "client thread panicked".to_string())?;
    let s = srv
        .join()
        .map_err(|_| "server thread panicked".to_string())?;
    c.and(s)
}

/// A veth pair standing for a "physical NIC": `nic` in `host` (down, optional MAC), its peer
/// `peer` in `lan` (up, no automatic IPv6 link-local address), the outside switch/LAN. Returns the NIC as the host sees it.
pub fn veth_nic(host: &Netns, nic: &str, mac: Option<&str>, lan: &Netns, peer: &str) -> Link {
    let mut args = vec!["link", "add", "name", nic];
    if let Some(m) = mac {
        args.extend_from_slice(&["address", m]);
    }
    args.extend_from_slice(&["type", "veth", "peer", "name", peer, "netns", &lan.name]);
    ip(host, &args);
    // No automatic link-local address on the LAN side: it would appear the first time the NIC
    // comes up and stay (kernel behaviour, not pipework's), which would spoil before/after
    // comparisons of the LAN namespace. Addresses added by hand still work.
    ip(lan, &["link", "set", peer, "addrgenmode", "none"]);
    ip(lan, &["link", "set", peer, "up"]);
    must_link(host, nic)
}

/// The kernel can create a link of this type: tries `ip link add <args>` in a throwaway
/// namespace (which holds a veth `pv0` to use as a parent). Err(kernel's message) when not.
pub fn probe_link(args: &[&str]) -> Result<(), String> {
    let ns = Netns::new("probe");
    ip(
        &ns,
        &["link", "add", "pv0", "type", "veth", "peer", "name", "pv1"],
    );
    let mut full = vec!["link", "add"];
    full.extend_from_slice(args);
    let out = ip_raw(&ns, &full);
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert!(
        kernel_lacks_from_ip(&err),
        "probing `ip link add {}` failed for another reason than missing kernel support (a \
         broken test machine is a failure, not a skip): {err}",
        args.join(" ")
    );
    Err(err)
}

/// Whether `ip link add`'s error means the kernel lacks the link type (module not built or
/// loadable), as opposed to any other failure, which must fail the test instead of skipping it.
/// iproute2 says "Unknown device type" when the kernel has no rtnl_link_ops for the kind
/// (EOPNOTSUPP after a failed module request), and "Operation not supported" when it exists but
/// refuses the variant.
pub fn kernel_lacks_from_ip(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    [
        "unknown device type",
        "operation not supported",
        "not supported",
    ]
    .iter()
    .any(|n| s.contains(n))
        && !s.contains("permission")
        && !s.contains("file exists")
}

/// Whether the kernel has the `dummy` link type (module dummy).
pub fn kernel_has_dummy() -> Result<(), String> {
    static R: OnceLock<Result<(), String>> = OnceLock::new();
    R.get_or_init(|| probe_link(&["pwtprobe0", "type", "dummy"]))
        .clone()
}

/// Whether the kernel has 802.1Q VLAN links (module 8021q).
pub fn kernel_has_8021q() -> Result<(), String> {
    static R: OnceLock<Result<(), String>> = OnceLock::new();
    R.get_or_init(|| probe_link(&["link", "pv0", "name", "pv0.5", "type", "vlan", "id", "5"]))
        .clone()
}

/// Links of type InfiniBand (ARPHRD_INFINIBAND, 32) in `ns`: `ip -j link` says
/// `"link_type": "infiniband"`. Read only.
pub fn infiniband_links(ns: &dyn Ns) -> Vec<String> {
    links(ns)
        .into_iter()
        .filter(|l| l.raw.get("link_type").and_then(Value::as_str) == Some("infiniband"))
        .map(|l| l.name)
        .collect()
}

/// `linkinfo.info_data.<key>` of a link (`ip -d -j link`), e.g. the macvlan `mode`.
pub fn info_data(l: &Link, key: &str) -> Option<Value> {
    l.raw
        .pointer(&format!("/linkinfo/info_data/{key}"))
        .cloned()
}

/// The parent's ifindex of a link whose parent is in another namespace (macvlan/veth peer).
pub fn link_index(l: &Link) -> Option<u64> {
    l.raw.get("link_index").and_then(Value::as_u64)
}

/// `ethtool -k IF` inside `ns`: the value of `feature` (e.g. "tx-checksumming"), "on"/"off".
pub fn ethtool_feature(ns: &dyn Ns, ifname: &str, feature: &str) -> Option<String> {
    let ethtool = find_program("ethtool").unwrap_or_else(|| "ethtool".into());
    let out = cmd_in(ns, ethtool.to_str().unwrap_or("ethtool"))
        .args(["-k", ifname])
        .output()
        .expect("spawn ethtool (install it: scripts/testenv.sh install)");
    assert!(
        out.status.success(),
        "ethtool -k {ifname}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == feature).then(|| v.split_whitespace().next().unwrap_or("").to_string())
    })
}

// ---------------------------------------------------------------------------------------------
// Open vSwitch (userspace datapath), one private instance per test
// ---------------------------------------------------------------------------------------------

/// Where the OVS database schema lives (OVS_PKGDATADIR overrides, as for OVS's own tools).
pub fn ovs_schema() -> PathBuf {
    let dir = std::env::var("OVS_PKGDATADIR").unwrap_or_else(|_| "/usr/share/openvswitch".into());
    Path::new(&dir).join("vswitch.ovsschema")
}

/// True when the OVS tools and daemons are installed; prints the reason and returns false
/// otherwise (or when not root).
pub fn ovs_or_skip(test: &str) -> bool {
    if !root_or_skip(test) {
        return false;
    }
    let missing: Vec<&str> = [
        "ovs-vsctl",
        "ovsdb-tool",
        "ovsdb-server",
        "ovs-vswitchd",
        "ethtool",
    ]
    .into_iter()
    .filter(|p| !have_program(p))
    .collect();
    if !missing.is_empty() || !ovs_schema().exists() {
        skip(format!(
            "SKIP {test}: needs Open vSwitch and ethtool (missing: {missing:?}, schema {}): \
             scripts/testenv.sh install",
            ovs_schema().display()
        ));
        return false;
    }
    true
}

/// Returns early (with a printed reason) unless root with Open vSwitch installed.
#[allow(unused_macros)]
macro_rules! need_ovs {
    () => {
        if !$crate::common::ovs_or_skip(&$crate::common::test_name()) {
            return;
        }
    };
}
#[allow(unused_imports)]
pub(crate) use need_ovs;

/// A private Open vSwitch for one test: ovsdb-server and ovs-vswitchd running inside the
/// test's host namespace, everything (database, sockets, pidfiles, logs) in their own
/// directory `/tmp/pwt-ovs…` (OVS_RUNDIR). Bridges must use `datapath_type=netdev` (the kernel
/// here has no OVS datapath). The daemons are children of the test process (PR_SET_PDEATHSIG,
/// so they die with it even when Drop never runs); Drop stops them and removes the directory.
pub struct Ovs {
    pub dir: PathBuf,
    ns: PathBuf,
    db: Option<Child>,
    vswitchd: Option<Child>,
}

impl Ovs {
    /// Database and switch daemon, ready.
    pub fn start(host: &dyn Ns) -> Ovs {
        let mut o = Ovs::start_db_only(host);
        o.start_vswitchd();
        o
    }

    /// Only ovsdb-server (an initialised database), no ovs-vswitchd.
    pub fn start_db_only(host: &dyn Ns) -> Ovs {
        let dir = std::env::temp_dir().join(unique("ovs"));
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        let mut o = Ovs {
            dir,
            ns: host.ns_path(),
            db: None,
            vswitchd: None,
        };
        let db = o.path("conf.db");
        let out = Command::new(find_program("ovsdb-tool").unwrap_or_else(|| "ovsdb-tool".into()))
            .arg("create")
            .arg(&db)
            .arg(ovs_schema())
            .output()
            .expect("spawn ovsdb-tool");
        assert!(
            out.status.success(),
            "ovsdb-tool create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let child = o
            .daemon("ovsdb-server")
            .arg(&db)
            .arg(format!("--remote=punix:{}", o.path("db.sock").display()))
            .arg(format!("--pidfile={}", o.path("db.pid").display()))
            .arg(format!("--log-file={}", o.path("db.log").display()))
            .arg(format!("--unixctl={}", o.path("db.ctl").display()))
            .spawn()
            .expect("spawn ovsdb-server");
        o.db = Some(child);
        let sock = o.path("db.sock");
        // Accepting, not only there: the socket file appears at bind(), before listen(), and a
        // connect in between is refused (seen under load).
        let up = || std::os::unix::net::UnixStream::connect(&sock).is_ok();
        if !wait_until(Duration::from_secs(5), up) {
            panic!("ovsdb-server did not come up:\n{}", o.log("db.log"));
        }
        o.vsctl(&["--no-wait", "init"]);
        o
    }

    /// Starts ovs-vswitchd (again).
    pub fn start_vswitchd(&mut self) {
        assert!(self.vswitchd.is_none(), "ovs-vswitchd already running");
        let ctl = self.path("vs.ctl");
        let _ = std::fs::remove_file(&ctl);
        let child = self
            .daemon("ovs-vswitchd")
            .arg(format!("unix:{}", self.path("db.sock").display()))
            .arg(format!("--pidfile={}", self.path("vs.pid").display()))
            .arg(format!("--log-file={}", self.path("vs.log").display()))
            .arg(format!("--unixctl={}", ctl.display()))
            .spawn()
            .expect("spawn ovs-vswitchd");
        self.vswitchd = Some(child);
        if !wait_until(Duration::from_secs(5), || ctl.exists()) {
            panic!("ovs-vswitchd did not come up:\n{}", self.log("vs.log"));
        }
    }

    /// Stops ovs-vswitchd (the database stays up).
    pub fn stop_vswitchd(&mut self) {
        if let Some(c) = self.vswitchd.take() {
            stop_child(c);
        }
    }

    fn daemon(&self, program: &str) -> Command {
        let mut cmd = Command::new(find_program(program).unwrap_or_else(|| program.into()));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for k in ["OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR", "OVS_SYSCONFDIR"] {
            cmd.env(k, &self.dir);
        }
        let file =
            File::open(&self.ns).unwrap_or_else(|e| panic!("open {}: {e}", self.ns.display()));
        // SAFETY: only async-signal-safe calls (prctl, setns) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The value to give pipework (and ovs-vsctl) as OVS_RUNDIR.
    pub fn rundir(&self) -> &str {
        self.dir.to_str().expect("utf-8 temp dir")
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    /// `ovs-vsctl --timeout=10 ARGS` with OVS_RUNDIR, inside the host namespace.
    pub fn vsctl_raw(&self, args: &[&str]) -> Output {
        let mut c = Command::new(find_program("ovs-vsctl").unwrap_or_else(|| "ovs-vsctl".into()));
        enter_ns(&mut c, &self.ns);
        c.env("OVS_RUNDIR", &self.dir)
            .arg("--timeout=10")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("spawn ovs-vsctl")
    }

    /// `ovs-vsctl ARGS`, panicking with its output when it fails; stdout trimmed.
    pub fn vsctl(&self, args: &[&str]) -> String {
        let out = self.vsctl_raw(args);
        if !out.status.success() {
            panic!(
                "ovs-vsctl {} failed ({}): {}{}\n--- vs.log ---\n{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.log("vs.log")
            );
        }
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A userspace-datapath bridge (its kernel side is a tap device named `name`).
    pub fn add_br(&self, name: &str) {
        self.vsctl(&[
            "add-br",
            name,
            "--",
            "set",
            "bridge",
            name,
            "datapath_type=netdev",
        ]);
    }

    fn lines(&self, args: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = self
            .vsctl(args)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        v.sort();
        v
    }

    /// Bridges in the database (sorted).
    pub fn bridges(&self) -> Vec<String> {
        self.lines(&["--no-wait", "list-br"])
    }

    /// Ports of `bridge` (without its own internal port), sorted.
    pub fn ports(&self, bridge: &str) -> Vec<String> {
        self.lines(&["--no-wait", "list-ports", bridge])
    }

    /// One column of one record, e.g. `get("Port", "x", "tag")` ("[]" when unset).
    pub fn get(&self, table: &str, record: &str, column: &str) -> String {
        self.vsctl(&["--no-wait", "get", table, record, column])
    }

    /// The VLAN tag of port `port` (None when untagged).
    pub fn tag(&self, port: &str) -> Option<u64> {
        let t = self.get("Port", port, "tag");
        (t != "[]").then(|| t.parse().unwrap_or_else(|_| panic!("tag of {port}: {t}")))
    }

    /// `external_ids` of Interface `iface`.
    pub fn external_ids(&self, iface: &str) -> BTreeMap<String, String> {
        let s = self.vsctl(&[
            "--no-wait",
            "--format=json",
            "--columns=external_ids",
            "list",
            "Interface",
            iface,
        ]);
        let v: Value = serde_json::from_str(&s).unwrap_or_else(|e| panic!("{e}: {s}"));
        // {"data":[[["map",[["k","v"],...]]]],"headings":["external_ids"]}
        let pairs = v
            .pointer("/data/0/0/1")
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("external_ids of {iface}: {s}"));
        pairs
            .iter()
            .filter_map(|p| {
                Some((
                    p.get(0)?.as_str()?.to_string(),
                    p.get(1)?.as_str()?.to_string(),
                ))
            })
            .collect()
    }

    /// Everything pipework may add to the database: bridges with their ports, and all Port
    /// and Interface names (orphans included). Compared before/after failed runs.
    pub fn state(&self) -> BTreeMap<String, Vec<String>> {
        let mut m = BTreeMap::new();
        for br in self.bridges() {
            let ports = self.ports(&br);
            m.insert(format!("bridge {br}"), ports);
        }
        m.insert(
            "all ports".into(),
            self.lines(&["--no-wait", "--bare", "--columns=name", "list", "Port"]),
        );
        m.insert(
            "all interfaces".into(),
            self.lines(&["--no-wait", "--bare", "--columns=name", "list", "Interface"]),
        );
        m
    }
}

/// SIGTERM, up to 2 s grace, then SIGKILL; always reaped.
fn stop_child(mut c: Child) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = c.kill();
    let _ = c.wait();
}

impl Drop for Ovs {
    fn drop(&mut self) {
        if let Some(c) = self.vswitchd.take() {
            stop_child(c);
        }
        if let Some(c) = self.db.take() {
            stop_child(c);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------------------------
// DHCP: a dnsmasq per test, pipework's runtime directory, leftover processes, resolv.conf
// ---------------------------------------------------------------------------------------------

/// True when all `programs` are installed (and running as root); prints the reason otherwise.
pub fn programs_or_skip(test: &str, programs: &[&str]) -> bool {
    if !root_or_skip(test) {
        return false;
    }
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| !have_program(p))
        .collect();
    if !missing.is_empty() {
        skip(format!(
            "SKIP {test}: needs {missing:?}: scripts/testenv.sh install"
        ));
        return false;
    }
    true
}

/// Returns early (with a printed reason) unless root with all these programs installed.
#[allow(unused_macros)]
macro_rules! need_programs {
    ($($p:expr),+ $(,)?) => {
        if !$crate::common::programs_or_skip(&$crate::common::test_name(), &[$($p),+]) {
            return;
        }
    };
}
#[allow(unused_imports)]
pub(crate) use need_programs;

/// The machine's own resolver configuration: DHCP clients' default scripts rewrite it, and a
/// pipework run must never touch it.
pub const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";

/// The host's /etc/resolv.conf as read when created. [`HostResolvConf::assert_unchanged`]
/// compares byte for byte; Drop compares again, puts the original bytes back if they changed
/// (so one bad run does not break the machine's DNS) and fails the test.
pub struct HostResolvConf {
    before: Option<Vec<u8>>,
}

impl HostResolvConf {
    pub fn read() -> HostResolvConf {
        HostResolvConf {
            before: std::fs::read(HOST_RESOLV_CONF).ok(),
        }
    }

    fn difference(&self) -> Option<String> {
        let now = std::fs::read(HOST_RESOLV_CONF).ok();
        if now == self.before {
            return None;
        }
        let show = |b: &Option<Vec<u8>>| match b {
            Some(b) => format!("{:?}", String::from_utf8_lossy(b)),
            None => "(no file)".to_string(),
        };
        Some(format!(
            "the HOST's {HOST_RESOLV_CONF} was changed (restored by the test)\nbefore: {}\nafter:  {}",
            show(&self.before),
            show(&now)
        ))
    }

    fn restore(&self) {
        match &self.before {
            Some(b) => {
                let _ = std::fs::write(HOST_RESOLV_CONF, b);
            }
            None => {
                let _ = std::fs::remove_file(HOST_RESOLV_CONF);
            }
        }
    }

    pub fn assert_unchanged(&self, context: &str) {
        if let Some(d) = self.difference() {
            self.restore();
            panic!("{context}: {d}");
        }
    }
}

impl Drop for HostResolvConf {
    fn drop(&mut self) {
        if let Some(d) = self.difference() {
            self.restore();
            if std::thread::panicking() {
                eprintln!("{d}");
            } else {
                panic!("{d}");
            }
        }
    }
}

/// One process, for messages.
#[derive(Debug, Clone)]
pub struct ProcInfo {
    pub pid: u32,
    pub comm: String,
    pub cmdline: String,
}

impl std::fmt::Display for ProcInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} ({}): {}", self.pid, self.comm, self.cmdline)
    }
}

/// The process exists and is not a zombie (PID 1 here is not an init: dead daemons linger as
/// zombies and `kill -0` still succeeds on them).
pub fn proc_alive(pid: u32) -> bool {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    !s.lines().any(|l| {
        l.strip_prefix("State:")
            .is_some_and(|st| st.trim_start().starts_with(['Z', 'X']))
    })
}

pub fn proc_info(pid: u32) -> Option<ProcInfo> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline = String::from_utf8_lossy(&cmdline)
        .split('\0')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    Some(ProcInfo {
        pid,
        comm: comm.trim().to_string(),
        cmdline,
    })
}

/// Every process on the machine except this test process itself.
fn other_pids() -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter(|&p| p != me)
                .collect()
        })
        .unwrap_or_default()
}

/// The process's command line or environment contains `needle`.
fn proc_mentions(pid: u32, needle: &str) -> bool {
    let n = needle.as_bytes();
    ["cmdline", "environ"].iter().any(|f| {
        std::fs::read(format!("/proc/{pid}/{f}"))
            .map(|b| b.windows(n.len()).any(|w| w == n))
            .unwrap_or(false)
    })
}

/// Live processes whose command line or environment mentions `needle` (e.g. a test's unique
/// runtime directory, which every process pipework starts inherits or is given).
pub fn procs_mentioning(needle: &str) -> Vec<ProcInfo> {
    other_pids()
        .into_iter()
        .filter(|&p| proc_mentions(p, needle) && proc_alive(p))
        .filter_map(proc_info)
        .collect()
}

/// The inode of a network namespace (stable while it exists; compare with /proc/PID/ns/net).
pub fn netns_inode(ns: &dyn Ns) -> u64 {
    inode_of(&ns.ns_path())
}

/// Live processes any of whose threads is in the network namespace with inode `inode` (a
/// DHCP client runs there; pipework's own DHCP thread enters it), except the pids in `except`.
pub fn procs_in_netns(inode: u64, except: &[u32]) -> Vec<ProcInfo> {
    let in_ns = |pid: u32| -> bool {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return false;
        };
        tasks.filter_map(|t| t.ok()).any(|t| {
            std::fs::metadata(t.path().join("ns/net"))
                .map(|m| {
                    use std::os::unix::fs::MetadataExt;
                    m.ino() == inode
                })
                .unwrap_or(false)
        })
    };
    other_pids()
        .into_iter()
        .filter(|p| !except.contains(p))
        .filter(|&p| in_ns(p) && proc_alive(p))
        .filter_map(proc_info)
        .collect()
}

/// SIGTERM, up to `grace` for it to go, then SIGKILL (and a short wait).
pub fn terminate(pid: u32, grace: Duration) {
    if !proc_alive(pid) {
        return;
    }
    // SAFETY: kill(2); callers only pass pids they checked to be processes of this test.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
    if wait_until(grace, || !proc_alive(pid)) {
        return;
    }
    // SAFETY: as above.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
    wait_until(Duration::from_secs(2), || !proc_alive(pid));
}

/// Names of the programs a DHCP run may leave running (pipework's supervisor and the clients).
const DHCP_PROCESS_NAMES: [&str; 5] = ["pipework", "dhclient", "udhcpc", "busybox", "dhcpcd"];

/// pipework's runtime directory for one test (`PIPEWORK_RUNTIME_DIR=/tmp/pwt-run-<hex>`), not
/// created here (pipework makes it). Drop stops every process the runs left behind — pids
/// seen in --json output ([`RuntimeDir::track`]), pids in pidfiles under the directory, and
/// any live process whose command line or environment names the directory — then removes the
/// directory and any extra paths registered with [`RuntimeDir::remove_on_drop`]. (DHCP
/// clients that rewrite their command line and keep pidfiles elsewhere, like dhcpcd, are
/// stopped by the guest wrapper, [`DhcpGuest`].)
pub struct RuntimeDir {
    pub dir: PathBuf,
    tracked: std::sync::Mutex<Vec<u32>>,
    extra: std::sync::Mutex<Vec<PathBuf>>,
}

impl Default for RuntimeDir {
    fn default() -> Self {
        Self::new()
    }
}

impl RuntimeDir {
    pub fn new() -> RuntimeDir {
        RuntimeDir {
            dir: std::env::temp_dir().join(format!("pwt-run-{}", rand_hex(12))),
            tracked: Default::default(),
            extra: Default::default(),
        }
    }

    pub fn path(&self) -> &str {
        self.dir.to_str().expect("utf-8 temp dir")
    }

    /// A pid pipework reported (a supervisor or client it left running).
    pub fn track(&self, pid: u32) {
        self.tracked.lock().unwrap().push(pid);
    }

    /// A file or directory to remove at the end (e.g. /etc/netns/NAME).
    pub fn remove_on_drop(&self, p: PathBuf) {
        self.extra.lock().unwrap().push(p);
    }

    /// Every `*.pid` file below the directory.
    pub fn pidfiles(&self) -> Vec<PathBuf> {
        files_below(&self.dir, Some("pid"))
    }

    /// Live processes of this test's pipework runs: those naming the directory, plus live
    /// tracked or pidfile pids that run a DHCP program.
    pub fn live_processes(&self) -> Vec<ProcInfo> {
        let mut found = procs_mentioning(self.path());
        let mut pids: Vec<u32> = self.tracked.lock().unwrap().clone();
        for f in self.pidfiles() {
            if let Some(p) = std::fs::read_to_string(&f)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                pids.push(p);
            }
        }
        for p in pids {
            if found.iter().any(|f| f.pid == p) || !proc_alive(p) {
                continue;
            }
            if let Some(info) = proc_info(p) {
                if DHCP_PROCESS_NAMES.contains(&info.comm.as_str()) {
                    found.push(info);
                }
            }
        }
        found
    }

    /// Stops everything [`RuntimeDir::live_processes`] finds.
    pub fn stop_all(&self) {
        for _ in 0..3 {
            let procs = self.live_processes();
            if procs.is_empty() {
                return;
            }
            for p in procs {
                eprintln!("stopping leftover process {p}");
                terminate(p.pid, Duration::from_secs(2));
            }
        }
    }
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        self.stop_all();
        let _ = std::fs::remove_dir_all(&self.dir);
        for p in self.extra.lock().unwrap().drain(..) {
            let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
        }
    }
}

/// A guest of a DHCP test. Before the guest goes away, Drop stops any DHCP program still
/// running inside its network namespace (a client pipework left behind). Only while the guest
/// still exists: a freed namespace's inode number is soon reused by another test's namespace.
pub struct DhcpGuest<T: Ns> {
    pub inner: T,
    inode: u64,
}

impl<T: Ns> DhcpGuest<T> {
    pub fn new(inner: T) -> DhcpGuest<T> {
        let inode = netns_inode(&inner);
        DhcpGuest { inner, inode }
    }

    /// The guest's namespace is still the one it was created with.
    fn still_there(&self) -> bool {
        std::fs::metadata(self.inner.ns_path()).is_ok()
            && std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                inode_of(&self.inner.ns_path())
            }))
            .is_ok_and(|i| i == self.inode)
    }
}

impl<T: Ns> std::ops::Deref for DhcpGuest<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T: Ns> std::ops::DerefMut for DhcpGuest<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

impl<T: Ns> Ns for DhcpGuest<T> {
    fn ns_path(&self) -> PathBuf {
        self.inner.ns_path()
    }
    fn ns_name(&self) -> Option<&str> {
        self.inner.ns_name()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

impl<T: Ns> Drop for DhcpGuest<T> {
    fn drop(&mut self) {
        if !self.still_there() {
            return;
        }
        for p in procs_in_netns(self.inode, &[]) {
            if DHCP_PROCESS_NAMES.contains(&p.comm.as_str()) {
                eprintln!("stopping DHCP process left in {}: {p}", self.describe());
                terminate(p.pid, Duration::from_secs(2));
            }
        }
    }
}

/// IPv6 service of a test's dnsmasq.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum V6Mode {
    #[default]
    Off,
    /// DHCPv6 (IA_NA) from `fd00:224:N::100`–`::1ff`, with router advertisements.
    Stateful,
    /// Router advertisements for `fd00:224:N::/64` (SLAAC) only, no DHCPv6 addresses.
    Slaac,
}

/// What a test's dnsmasq serves (always DHCPv4 from 10.224.N.100–150, 2 minute leases, router
/// 10.224.N.1, DNS server 10.224.N.53).
#[derive(Clone, Debug, Default)]
pub struct DnsmasqConf {
    /// DHCP option 58 (renewal time), seconds. dnsmasq 2.90 silently replaces values below
    /// 3 with half the lease (measured: T1=2 went out as 1m, T1=3 as 3s).
    pub t1: Option<u32>,
    /// DHCP option 59 (rebinding time), seconds.
    pub t2: Option<u32>,
    pub v6: V6Mode,
    /// Last octets of the DHCPv4 range, instead of [`V4_RANGE`] (a server restarted with
    /// another range NAKs the old leases).
    pub range: Option<(u8, u8)>,
}

/// First and last address of the DHCPv4 range of subnet N.
pub const V4_RANGE: (u8, u8) = (100, 150);

/// A dnsmasq serving DHCP on one bridge of a test's host namespace, run in the foreground as a
/// child of the test (as root, so the parent-death signal survives: it dies with the test even
/// when Drop never runs). Everything in its own `/tmp/pwt-dhcp-…` directory: `log`
/// (`--log-dhcp`), `leases`, `pid`, `stderr`. Drop stops it, prints the log if the test is
/// failing, and removes the directory.
pub struct Dnsmasq {
    pub dir: PathBuf,
    pub n: u8,
    child: Option<Child>,
}

impl Dnsmasq {
    pub fn start(host: &dyn Ns, bridge: &str, n: u8, conf: &DnsmasqConf) -> Dnsmasq {
        let dir = std::env::temp_dir().join(format!("pwt-dhcp-{}", rand_hex(12)));
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        let mut d = Dnsmasq {
            dir,
            n,
            child: None,
        };
        let p = |f: &str| d.dir.join(f).display().to_string();
        let mut args = vec![
            "--keep-in-foreground".to_string(),
            "--conf-file=/dev/null".into(),
            "--user=root".into(),
            "--group=root".into(),
            "--port=0".into(),
            format!("--interface={bridge}"),
            "--bind-interfaces".into(),
            "--dhcp-authoritative".into(),
            "--no-ping".into(),
            "--log-dhcp".into(),
            format!("--log-facility={}", p("log")),
            format!("--dhcp-leasefile={}", p("leases")),
            format!("--pid-file={}", p("pid")),
            format!(
                "--dhcp-range=10.224.{n}.{},10.224.{n}.{},255.255.255.0,2m",
                conf.range.unwrap_or(V4_RANGE).0,
                conf.range.unwrap_or(V4_RANGE).1
            ),
            format!("--dhcp-option=option:router,10.224.{n}.1"),
            format!("--dhcp-option=option:dns-server,10.224.{n}.53"),
        ];
        if let Some(t1) = conf.t1 {
            args.push(format!("--dhcp-option=option:T1,{t1}"));
        }
        if let Some(t2) = conf.t2 {
            args.push(format!("--dhcp-option=option:T2,{t2}"));
        }
        match conf.v6 {
            V6Mode::Off => {}
            V6Mode::Stateful => {
                args.push(format!(
                    "--dhcp-range=fd00:224:{n}::100,fd00:224:{n}::1ff,64,2m"
                ));
                args.push("--enable-ra".into());
            }
            V6Mode::Slaac => {
                args.push(format!("--dhcp-range=fd00:224:{n}::,slaac,64,2m"));
                args.push("--enable-ra".into());
            }
        }
        let stderr = File::create(d.dir.join("stderr")).expect("create dnsmasq stderr file");
        let mut cmd = Command::new(find_program("dnsmasq").unwrap_or_else(|| "dnsmasq".into()));
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let file = File::open(host.ns_path())
            .unwrap_or_else(|e| panic!("open {}: {e}", host.ns_path().display()));
        // SAFETY: only async-signal-safe calls (prctl, setns) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .expect("spawn dnsmasq (scripts/testenv.sh install)");
        let pid = child.id();
        // Ready when its DHCP sockets are bound (seen from its own namespace).
        let bound = |file: &str, port: &str| {
            std::fs::read_to_string(format!("/proc/{pid}/net/{file}"))
                .map(|s| {
                    s.lines().skip(1).any(|l| {
                        l.split_whitespace()
                            .nth(1)
                            .is_some_and(|a| a.ends_with(port))
                    })
                })
                .unwrap_or(false)
        };
        let ready = wait_until(Duration::from_secs(5), || {
            matches!(child.try_wait(), Ok(None))
                && bound("udp", ":0043")
                && (conf.v6 != V6Mode::Stateful || bound("udp6", ":0223"))
        });
        let exited = child.try_wait().ok().flatten();
        d.child = Some(child);
        if !ready {
            panic!(
                "dnsmasq did not come up (exit status {exited:?}): {}\n--- stderr ---\n{}\n--- log ---\n{}",
                args.join(" "),
                d.file("stderr"),
                d.log()
            );
        }
        d
    }

    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    /// The `--log-dhcp` log so far.
    pub fn log(&self) -> String {
        self.file("log")
    }

    /// The leases file (`expiry MAC IP hostname client-id` for IPv4).
    pub fn leases(&self) -> String {
        self.file("leases")
    }

    /// Log lines containing every one of `needles` (case-insensitive).
    pub fn log_lines(&self, needles: &[&str]) -> Vec<String> {
        let needles: Vec<String> = needles.iter().map(|n| n.to_lowercase()).collect();
        self.log()
            .lines()
            .filter(|l| {
                let l = l.to_lowercase();
                needles.iter().all(|n| l.contains(n.as_str()))
            })
            .map(String::from)
            .collect()
    }

    /// DHCPACKs sent to `mac` (the first lease and every renewal).
    pub fn acks(&self, mac: &str) -> usize {
        self.log_lines(&["DHCPACK(", mac]).len()
    }

    /// Waits until at least `n` DHCPACKs went to `mac`.
    pub fn wait_acks(&self, mac: &str, n: usize, limit: Duration) -> bool {
        wait_until(limit, || self.acks(mac) >= n)
    }

    /// True once a DHCPRELEASE from `mac` was logged.
    pub fn released(&self, mac: &str) -> bool {
        !self.log_lines(&["DHCPRELEASE(", mac]).is_empty()
    }

    /// `(address, hostname)` of the IPv4 lease of `mac` in the leases file.
    pub fn lease_of(&self, mac: &str) -> Option<(String, String)> {
        let mac = mac.to_lowercase();
        self.leases().lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4 && f[1].to_lowercase() == mac)
                .then(|| (f[2].to_string(), f[3].to_string()))
        })
    }

    /// Stops the server (SIGTERM, then SIGKILL).
    pub fn stop(&mut self) {
        if let Some(c) = self.child.take() {
            stop_child(c);
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "--- dnsmasq log ({}) ---\n{}--- leases ---\n{}",
                self.dir.display(),
                self.log(),
                self.leases()
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One DHCP test's world: a host namespace holding bridge `br1` (10.224.N.1/24 and
/// fd00:224:N::1/64 nodad, up) with a dnsmasq on it (or none), pipework's runtime directory,
/// and the host's resolv.conf as it was at the start. Drop order: leftover processes and the
/// runtime directory first, then the server, the namespace, and last the resolv.conf check.
pub struct DhcpLan {
    pub rt: RuntimeDir,
    pub server: Option<Dnsmasq>,
    pub host: Netns,
    pub n: u8,
    pub resolv: HostResolvConf,
}

impl DhcpLan {
    /// Bridge + dnsmasq serving `conf`.
    pub fn new(n: u8, conf: &DnsmasqConf) -> DhcpLan {
        let mut lan = DhcpLan::without_server(n);
        lan.server = Some(Dnsmasq::start(&lan.host, "br1", n, conf));
        lan
    }

    /// Bridge, but nobody answers DHCP.
    pub fn without_server(n: u8) -> DhcpLan {
        let resolv = HostResolvConf::read();
        let host = Netns::new("h");
        ip(&host, &["link", "add", "name", "br1", "type", "bridge"]);
        ip(
            &host,
            &["addr", "add", &format!("10.224.{n}.1/24"), "dev", "br1"],
        );
        ip(
            &host,
            &[
                "addr",
                "add",
                &format!("fd00:224:{n}::1/64"),
                "dev",
                "br1",
                "nodad",
            ],
        );
        ip(&host, &["link", "set", "br1", "up"]);
        DhcpLan {
            rt: RuntimeDir::new(),
            server: None,
            host,
            n,
            resolv,
        }
    }

    pub fn server(&self) -> &Dnsmasq {
        self.server.as_ref().expect("this test has a DHCP server")
    }

    /// A named-namespace guest (see [`DhcpGuest`]).
    pub fn netns_guest(&self) -> DhcpGuest<Netns> {
        DhcpGuest::new(Netns::new("g"))
    }

    /// An `unshare -n sleep` guest (see [`DhcpGuest`]).
    pub fn pid_guest(&self) -> DhcpGuest<PidGuest> {
        DhcpGuest::new(PidGuest::new())
    }

    /// A Docker guest (see [`DhcpGuest`]).
    pub fn container(&self, docker_host: &str) -> DhcpGuest<Container> {
        DhcpGuest::new(Container::run(docker_host))
    }

    /// The bridge's address, the DHCP server and router: 10.224.N.1.
    pub fn router(&self) -> String {
        format!("10.224.{}.1", self.n)
    }

    /// The DNS server the leases announce: 10.224.N.53.
    pub fn dns(&self) -> String {
        format!("10.224.{}.53", self.n)
    }

    /// `fd00:224:N::` (the IPv6 prefix, /64).
    pub fn v6_prefix(&self) -> String {
        format!("fd00:224:{}::", self.n)
    }

    /// True when `ip` (no prefix) is in the DHCPv4 range.
    pub fn in_v4_range(&self, addr: &str) -> bool {
        let Ok(a) = addr.parse::<std::net::Ipv4Addr>() else {
            return false;
        };
        let o = a.octets();
        o[..3] == [10, 224, self.n] && (V4_RANGE.0..=V4_RANGE.1).contains(&o[3])
    }

    /// True when `ip` (no prefix) is in the DHCPv6 range fd00:224:N::100–::1ff.
    pub fn in_v6_range(&self, addr: &str) -> bool {
        let (Ok(a), Ok(lo), Ok(hi)) = (
            addr.parse::<std::net::Ipv6Addr>(),
            format!("fd00:224:{}::100", self.n).parse::<std::net::Ipv6Addr>(),
            format!("fd00:224:{}::1ff", self.n).parse::<std::net::Ipv6Addr>(),
        ) else {
            return false;
        };
        lo <= a && a <= hi
    }

    /// The one IPv4 address of `ifname` in `g`: from the DHCP range, with the lease's /24 and
    /// broadcast.
    pub fn v4_lease(&self, g: &dyn Ns, ifname: &str) -> Addr {
        let v4 = global_v4(g, ifname);
        assert_eq!(
            v4.len(),
            1,
            "exactly one IPv4 address on {ifname} in {}: {v4:?}",
            g.describe()
        );
        let a = v4[0].clone();
        assert!(
            self.in_v4_range(&a.local),
            "{} is from the DHCP range 10.224.{}.{}-{}",
            a.local,
            self.n,
            V4_RANGE.0,
            V4_RANGE.1
        );
        assert_eq!(a.prefixlen, 24, "prefix from the lease's netmask: {a:?}");
        let bcast = format!("10.224.{}.255", self.n);
        assert_eq!(
            a.broadcast.as_deref(),
            Some(bcast.as_str()),
            "broadcast set: {a:?}"
        );
        a
    }

    /// Runs pipework in the host namespace with PIPEWORK_RUNTIME_DIR set (plus `env`). Pids
    /// of supervisors in --json output are remembered for cleanup. A run that exits while a
    /// process it left behind still holds its stdout/stderr fails the test (a shell's
    /// `$(pipework --json …)` would never return).
    pub fn pw_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let (run, held) = self.run(args, env);
        if let Some(h) = held {
            panic!("{h}\n{}", run.show());
        }
        run
    }

    /// Like [`DhcpLan::pw_env`], but returns the "output held open" problem instead of
    /// failing.
    pub fn run(&self, args: &[&str], env: &[(&str, &str)]) -> (Run, Option<String>) {
        let mut all = vec![("PIPEWORK_RUNTIME_DIR", self.rt.path())];
        all.extend_from_slice(env);
        let (run, held) = pipework_detached(
            &self.host,
            args,
            &Opts {
                env: all,
                ..Default::default()
            },
        );
        if let Ok(v) = serde_json::from_str::<Value>(run.stdout.trim()) {
            if let Some(pid) = v.pointer("/dhcp/supervisor/pid").and_then(Value::as_u64) {
                self.rt.track(pid as u32);
            }
        }
        (run, held)
    }

    pub fn pw(&self, args: &[&str]) -> Run {
        self.pw_env(args, &[])
    }

    /// `pipework ls --json` with this test's runtime directory: the running supervisors.
    pub fn ls(&self) -> Vec<Value> {
        let r = self.pw(&["ls", "--json"]);
        r.ok();
        match r.json() {
            Value::Array(v) => {
                for e in &v {
                    if let Some(p) = e.get("pid").and_then(Value::as_u64) {
                        self.rt.track(p as u32);
                    }
                }
                v
            }
            other => panic!("pipework ls --json: expected an array, got {other}"),
        }
    }

    /// Problems showing that a DHCP run left something running: pidfiles under the runtime
    /// directory, live processes of the runs, or processes inside the guest's namespace (inode
    /// `guest_netns`; the guest's own processes `guest_pids` excepted). Waits up to `limit`
    /// for them to go away first.
    pub fn leftovers(
        &self,
        guest_netns: Option<u64>,
        guest_pids: &[u32],
        limit: Duration,
    ) -> Vec<String> {
        self.leftovers_of(true, guest_netns, guest_pids, limit)
    }

    /// Like [`DhcpLan::leftovers`], without looking at pidfiles.
    pub fn leftover_processes(
        &self,
        guest_netns: Option<u64>,
        guest_pids: &[u32],
        limit: Duration,
    ) -> Vec<String> {
        self.leftovers_of(false, guest_netns, guest_pids, limit)
    }

    fn leftovers_of(
        &self,
        pidfiles: bool,
        guest_netns: Option<u64>,
        guest_pids: &[u32],
        limit: Duration,
    ) -> Vec<String> {
        let mut problems = vec![];
        wait_until(limit, || {
            problems.clear();
            for f in self.rt.pidfiles().into_iter().filter(|_| pidfiles) {
                problems.push(format!(
                    "pidfile left: {} ({:?})",
                    f.display(),
                    std::fs::read_to_string(&f).unwrap_or_default().trim()
                ));
            }
            for p in self.rt.live_processes() {
                problems.push(format!("process left running: {p}"));
            }
            if let Some(ino) = guest_netns {
                for p in procs_in_netns(ino, guest_pids) {
                    // The guest's own processes (a container's command, docker exec) are not
                    // pipework's.
                    if p.comm == "sleep" || p.comm == "unshare" {
                        continue;
                    }
                    problems.push(format!("process left in the guest's namespace: {p}"));
                }
            }
            problems.is_empty()
        });
        problems
    }

    /// Panics with [`DhcpLan::leftovers`]' findings.
    pub fn assert_no_leftovers(&self, guest_netns: Option<u64>, guest_pids: &[u32], context: &str) {
        let p = self.leftovers(guest_netns, guest_pids, Duration::from_secs(3));
        assert!(p.is_empty(), "{context}:\n  {}", p.join("\n  "));
    }

    /// The host's /etc/resolv.conf is byte for byte what it was when the test started.
    pub fn finish(&self) {
        self.resolv.assert_unchanged("at the end of the test");
    }
}

/// Global IPv4 addresses of `ifname` (empty when the link is gone).
pub fn global_v4(g: &dyn Ns, ifname: &str) -> Vec<Addr> {
    if link(g, ifname).is_none() {
        return vec![];
    }
    addrs(g, Some(ifname))
        .into_iter()
        .filter(|a| a.family == "inet" && a.scope == "global")
        .collect()
}

/// Global IPv6 addresses of `ifname` (empty when the link is gone).
pub fn global_v6(g: &dyn Ns, ifname: &str) -> Vec<Addr> {
    if link(g, ifname).is_none() {
        return vec![];
    }
    addrs(g, Some(ifname))
        .into_iter()
        .filter(|a| a.family == "inet6" && a.scope == "global")
        .collect()
}

/// Runs pipework like [`pipework_with`], but returns as soon as pipework itself has exited,
/// without waiting for end-of-file on its output (a supervisor it left running may hold the
/// pipes). The second value describes the problem when stdout/stderr were still held open 3 s
/// after pipework exited.
pub fn pipework_detached(host: &dyn Ns, args: &[&str], opts: &Opts) -> (Run, Option<String>) {
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, Mutex};
    fn drain(mut r: impl Read + Send + 'static) -> (Arc<Mutex<Vec<u8>>>, Arc<AtomicBool>) {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(AtomicBool::new(false));
        let (b, d) = (buf.clone(), done.clone());
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            loop {
                match r.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => b.lock().unwrap().extend_from_slice(&chunk[..k]),
                }
            }
            d.store(true, Ordering::SeqCst);
        });
        (buf, done)
    }
    let mut cmd = pipework_command(host, args, opts);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn pipework");
    let (so, so_done) = drain(child.stdout.take().expect("stdout"));
    let (se, se_done) = drain(child.stderr.take().expect("stderr"));
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if start.elapsed() >= RUN_TIMEOUT {
            timed_out = true;
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let elapsed = start.elapsed();
    let eof = wait_until(Duration::from_secs(3), || {
        so_done.load(Ordering::SeqCst) && se_done.load(Ordering::SeqCst)
    });
    let out = Output {
        status,
        stdout: so.lock().unwrap().clone(),
        stderr: se.lock().unwrap().clone(),
    };
    let run = Run {
        args: args.iter().map(|s| s.to_string()).collect(),
        code: code_of(&out),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed,
    };
    eprintln!("{}\n(took {:?})\n", run.show(), run.elapsed);
    if timed_out {
        panic!(
            "pipework did not finish within {RUN_TIMEOUT:?}\n{}",
            run.show()
        );
    }
    let held = (!eof).then(|| {
        let which: Vec<&str> = [("stdout", &so_done), ("stderr", &se_done)]
            .iter()
            .filter(|(_, d)| !d.load(Ordering::SeqCst))
            .map(|(n, _)| *n)
            .collect();
        format!(
            "pipework exited, but its {} stayed open 3 s later: a process it left running \
             (DHCP supervisor or client) did not close or redirect them, so a caller reading \
             the output (`x=$(pipework --json …)`) would hang",
            which.join(" and ")
        )
    });
    (run, held)
}

// ---------------------------------------------------------------------------------------------
// Runs with a short deadline (tests/records.rs, tests/journal.rs)
// ---------------------------------------------------------------------------------------------

/// Runs pipework like [`pipework_with`], but fails the test when the run does not finish within
/// `limit` (killing it first): a command that blocks (say, opening a FIFO among the records)
/// must fail the test instead of hanging it.
pub fn pipework_within(host: &dyn Ns, args: &[&str], opts: &Opts, limit: Duration) -> Run {
    let mut cmd = pipework_command(host, args, opts);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    if opts.stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn pipework");
    if let (Some(data), Some(mut w)) = (opts.stdin.clone(), child.stdin.take()) {
        // A plugin that fails early may not read it all: a broken pipe is its answer.
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = w.write_all(&data);
        });
    }
    let out = wait_timeout(child, limit).unwrap_or_else(|(o, _)| {
        panic!(
            "pipework {} did not finish within {limit:?} (killed: it blocks)\nstdout: {}\nstderr: {}",
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

/// A snapshot of `ns` once it has settled: no link's operational state is still waiting for
/// the kernel's link watcher (which applies carrier changes up to a second late, and only
/// then gives an up link with carrier its IPv6 link-local address), and two snapshots 200 ms
/// apart agree (at most 3 s in all). A "before" snapshot taken too early would miss that
/// address and blame pipework for it later.
pub fn settled_snapshot(ns: &dyn Ns) -> Snapshot {
    let deadline = Instant::now() + Duration::from_secs(3);
    let pending = |l: &Link| {
        let oper = l.raw.get("operstate").and_then(Value::as_str).unwrap_or("");
        let running = oper == "UP" || oper == "UNKNOWN";
        l.is_up() && l.has_carrier() != running
    };
    wait_until(Duration::from_secs(3), || !links(ns).iter().any(pending));
    let mut last = snapshot(ns);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = snapshot(ns);
        if now == last || Instant::now() >= deadline {
            return now;
        }
        last = now;
    }
}

// ---- shared by the lifecycle and records tests ----------------------------------------------

/// The host end named in an attach's `--json` report.
pub fn host_ifname(rep: &Value) -> String {
    rep["host_ifname"]
        .as_str()
        .unwrap_or_else(|| panic!("host_ifname in {rep}"))
        .to_string()
}

pub fn inode(rep: &Value) -> u64 {
    rep["netns"]["inode"].as_u64().expect("netns.inode")
}

/// The "nothing to do" answer of an idempotent detach/gc.
pub fn assert_nothing_to_do(r: &Run) {
    r.ok();
    assert_eq!(r.stdout.trim(), "nothing to do", "{r:?}");
}

/// A process that holds a guest's namespace after the guest itself is gone (killed on drop).
pub struct Holder(pub Child);

impl Holder {
    pub fn new(ns: &dyn Ns) -> Holder {
        let mut cmd = cmd_in(ns, "sleep");
        cmd.arg("infinity").stdin(Stdio::null());
        // SAFETY: prctl is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let h = Holder(cmd.spawn().expect("spawn sleep"));
        let want = netns_inode(ns);
        assert!(
            wait_until(Duration::from_secs(5), || std::fs::metadata(h.ns_path())
                .is_ok()
                && inode_of(&h.ns_path()) == want),
            "holder entered the namespace"
        );
        h
    }
}

impl Ns for Holder {
    fn ns_path(&self) -> std::path::PathBuf {
        format!("/proc/{}/ns/net", self.0.id()).into()
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Fixture directories and guest root filesystems (engines, CNI runtimes)
// ---------------------------------------------------------------------------------------------

/// The busybox binary the guests' root filesystems are made of (package busybox-static).
fn busybox() -> PathBuf {
    find_program("busybox").expect("busybox (scripts/testenv.sh install)")
}

/// A directory `/tmp/pwt-<tag>-<hex>`: on drop, whatever is mounted below it is unmounted and
/// it is removed.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("pwt-{tag}-{}", rand_hex(10)));
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.path.join(p)
    }

    pub fn str(&self) -> &str {
        self.path.to_str().expect("utf-8 temp dir")
    }
}

/// Mount points at or below `dir`, deepest first.
fn mounts_below(dir: &Path) -> Vec<String> {
    let d = dir.to_string_lossy().to_string();
    let mut v: Vec<String> = std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1).map(String::from))
        .filter(|m| *m == d || m.starts_with(&format!("{d}/")))
        .collect();
    v.sort_by_key(|m| std::cmp::Reverse(m.len()));
    v
}

impl Drop for TempDir {
    fn drop(&mut self) {
        for m in mounts_below(&self.path) {
            let _ = Command::new("umount").args(["-l", &m]).status();
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// `DIR/bin/busybox` plus a symlink per applet (sh, sleep, ip…).
pub fn busybox_rootfs(dir: &Path) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(busybox(), bin.join("busybox")).expect("copy busybox");
    let out = Command::new(bin.join("busybox"))
        .arg("--list")
        .output()
        .expect("busybox --list");
    for a in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        if a != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", bin.join(a));
        }
    }
}

/// A private containerd's config.toml in `dir` (root, state and sockets under it, no CRI),
/// then `extra` TOML.
pub fn write_containerd_config(dir: &Path, extra: &str) {
    let d = dir.display();
    let text = format!(
        r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[debug]
  address = "{d}/debug.sock"
"#
    );
    std::fs::write(dir.join("config.toml"), text + extra).unwrap();
}

/// Every file below `dir` (with extension `ext`, when given), sorted.
pub fn files_below(dir: &Path, ext: Option<&str>) -> Vec<PathBuf> {
    fn walk(d: &Path, ext: Option<&str>, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, ext, out);
            } else if ext.is_none_or(|x| p.extension().is_some_and(|y| y == x)) {
                out.push(p);
            }
        }
    }
    let mut v = vec![];
    walk(dir, ext, &mut v);
    v.sort();
    v
}

/// Bytes as text, lossily.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs a program (not pipework) with its output captured, at most `limit`; panics with its
/// output when it cannot run or times out.
pub fn run_for(cmd: &mut Command, limit: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    match wait_timeout(child, limit) {
        Ok(out) => out,
        Err((out, ())) => panic!(
            "{cmd:?} timed out\nstdout: {}\nstderr: {}",
            text(&out.stdout),
            text(&out.stderr)
        ),
    }
}

/// `run_for` with the usual limit, and it must succeed.
pub fn must_run(cmd: &mut Command) -> Output {
    let out = run_for(cmd, RUN_TIMEOUT);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({:?})\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// A named namespace someone else owns (a lab made it): reachable by the helpers, never
/// deleted on drop.
pub struct Named(pub String);

impl Ns for Named {
    fn ns_path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.0))
    }
    fn ns_name(&self) -> Option<&str> {
        Some(&self.0)
    }
}
