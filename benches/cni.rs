//! CNI benchmark (issue 10, "Speed"): ADD and DEL of the `pipework` CNI plugin beside the
//! reference `bridge` + `host-local` plugins, in the same run, each driven exactly as a runtime
//! drives it: exec with CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME and CNI_PATH in the
//! environment and the network configuration on stdin; stdout parsed as the result, the exit
//! status checked. DEL gets the ADD's result as `prevResult`, as libcni passes its cache.
//!
//! Run as root: `cargo bench --bench cni`, or `PIPEWORK_BENCH_ONLY=cni scripts/bench.sh` (which
//! builds the release binary first; the full `scripts/bench.sh` runs it after the attach bench).
//!
//! Nothing outside the bench's own namespaces is touched:
//! * the bench first unshares its mount namespace (private propagation) and mounts a tmpfs at
//!   /tmp/pwb-cni-<pid>, seen only by the bench and its children. It holds the plugin dir
//!   (CNI_PATH: `pipework`, `bridge`, `host-local` as symlinks), every host-local dataDir,
//!   every PIPEWORK_RUNTIME_DIR and the guests' netns files. When the bench exits — even
//!   SIGKILLed — the kernel drops that mount namespace and everything in it; only the empty
//!   mount point is left behind, and the next run removes it;
//! * each guest is a bare network namespace bind-mounted on a file there (what `ip netns add`
//!   makes, and what runtimes pass as CNI_NETNS), with no process in it;
//! * each plugin of each section gets its own unnamed "host" netns (only a file descriptor
//!   holds it); the plugins are exec'd inside it, so their bridge, veths, sysctls and (ipMasq)
//!   iptables rules exist only there.
//!
//! Sections, for each N of PIPEWORK_BENCH_CNI_N (default "20,200"):
//! * ADD: for each of N guests, one ADD of each plugin (bridge `cni-bench`, `isGateway`,
//!   host-local with a private dataDir, a default route, no ipMasq), the order rotated guest by
//!   guest so both see the same bridge sizes and background load; beside them, as context,
//!   host-local alone (the same ipam section exec'd by the bench: the floor under a plugin that
//!   delegates to it) and the kernel's own cost of creating one veth (one RTM_NEWLINK from the
//!   bench, peer in a guest netns, host end on a bridge);
//! * DEL: the same guests, again rotated: each plugin's DEL; the kernel's own cost of deleting
//!   a veth (one RTM_DELLINK sent by the bench over netlink, in-process: the baseline of the
//!   "nothing on top" target); `ip link del` (one process doing only that delete); host-local
//!   DEL alone; and the spawn floor (`pipework --version`: exec and loading, no netlink);
//! * the same two with `ipMasq: true`, when iptables is installed and both plugins take it
//!   (PIPEWORK_BENCH_CNI_MASQ=0 skips them).
//!
//! Then the parallel burst: B (default 20, PIPEWORK_BENCH_CNI_BURST) ADDs spawned at once on
//! one fresh bridge, against B serial ADDs on another fresh bridge, per plugin, over R rounds
//! (default 3, PIPEWORK_BENCH_CNI_ROUNDS) in ABBA order; then the same B DELs at once. Failures
//! are counted; wall times are first spawn to last exit.
//!
//! Checked (a problem is listed after the tables and makes the bench exit non-zero): every
//! ADD's result (version, container interface with `sandbox` and MAC, `ips[].interface`
//! pointing at it, the gateway) and the guest's eth0 holding that address; the bridge's ports
//! and gateway address; after DEL: no link left in the host netns but the bridge, nothing but
//! `lo` in any guest, no host-local reservation, no pipework record, and (ipMasq) no iptables
//! rule. A plugin that exits non-zero on ADD or DEL aborts the bench with its output.
//!
//! Timings are printed, never asserted. Each is spawn to exit of one plugin process (the fork,
//! setns into the host netns and exec are the bench's, the same for every row), with the
//! child's CPU time (user + system, from wait4) beside it.
//!
//! Until the binary is a CNI plugin (it answers VERSION), its rows are skipped with the reason
//! and the reference runs alone.
//!
//! Environment: PIPEWORK_BIN (default target/release/pipework), PIPEWORK_BENCH_CNI_N,
//! PIPEWORK_BENCH_CNI_MASQ, PIPEWORK_BENCH_CNI_BURST, PIPEWORK_BENCH_CNI_ROUNDS,
//! PIPEWORK_BENCH_CNI_REF_DIR (the reference plugins, default /usr/lib/cni),
//! PIPEWORK_BENCH_ONLY (when set, this bench runs only for "cni").

#[path = "support/mod.rs"]
mod support;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::RouteNetlinkMessage;
use pipework::netlink::{msg, Netlink};
use serde_json::{json, Value};

const BRIDGE: &str = "cni-bench";
const NET_NAME: &str = "pwbench";
const SUBNET: &str = "10.214.0.0/16";
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 214, 0, 1);
const IFNAME: &str = "eth0";
const DEFAULT_NS: &str = "20,200";
const DEFAULT_BURST: usize = 20;
const DEFAULT_ROUNDS: usize = 3;
const TARGET_ADD_P50_MS: f64 = 3.0;
/// One plugin process may take this long before the bench gives up on it (host-local and
/// iptables take milliseconds; a wedged lock would hang the bench otherwise).
const PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);
const PATH_ENV: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// ---------------------------------------------------------------------------------------------
// Small helpers.

// ---------------------------------------------------------------------------------------------
// The private world: a mount namespace of the bench's own with a tmpfs for every file.

const WORLD_PREFIX: &str = "/tmp/pwb-cni-";

struct World {
    root: PathBuf,
}

impl World {
    /// Must run while the bench has a single thread: unshare(CLONE_NEWNS) refuses (EINVAL) in
    /// a multi-threaded process.
    fn enter() -> R<World> {
        let world = World {
            root: private_world(WORLD_PREFIX)?,
        };
        // Programs run from it (the plugins' copies in bin/).
        mount_tmpfs(&world.root, "mode=0700,size=512m", true)?;
        for d in ["bin", "netns", "ipam", "rt"] {
            std::fs::create_dir(world.root.join(d)).map_err(|e| format!("mkdir {d}: {e}"))?;
        }
        Ok(world)
    }
    fn dir(&self, sub: &str) -> PathBuf {
        self.root.join(sub)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // The guests' bind mounts are below: a lazy unmount takes them along.
        lazy_umount(&self.root);
        let _ = std::fs::remove_dir(&self.root);
    }
}

// ---------------------------------------------------------------------------------------------
// Namespaces.

/// A guest: a network namespace bind-mounted on a file (as `ip netns add` does), no process.
struct Guest {
    path: PathBuf,
}

impl Guest {
    fn open(&self) -> R<File> {
        File::open(&self.path).map_err(|e| format!("open {}: {e}", self.path.display()))
    }
    fn path_str(&self) -> &str {
        self.path.to_str().unwrap_or("/nonexistent")
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        if let Ok(c) = cstr(&self.path) {
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `n` guests `<dir>/<prefix><i>`, made by one throwaway thread that unshares a fresh netns
/// for each and bind-mounts it (the mount keeps it alive after the thread is gone).
fn make_guests(dir: &Path, prefix: &str, n: usize) -> R<Vec<Guest>> {
    let dir = dir.to_path_buf();
    let prefix = prefix.to_string();
    std::thread::spawn(move || -> R<Vec<Guest>> {
        let src = CString::new("/proc/thread-self/ns/net").expect("no NUL");
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            check_stop()?;
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(os_err("unshare(CLONE_NEWNET)"));
            }
            let path = dir.join(format!("{prefix}{i}"));
            File::create(&path).map_err(|e| format!("create {}: {e}", path.display()))?;
            let c = cstr(&path)?;
            let r = unsafe {
                libc::mount(
                    src.as_ptr(),
                    c.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                )
            };
            if r != 0 {
                let e = os_err(&format!("bind-mount a netns on {}", path.display()));
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
            out.push(Guest { path });
        }
        Ok(out)
    })
    .join()
    .map_err(|_| "guest thread panicked".to_string())?
}

/// Runs `f` on a throwaway thread inside the netns `ns`.
fn in_ns<T: Send>(ns: RawFd, f: impl FnOnce() -> R<T> + Send) -> R<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            if unsafe { libc::setns(ns, libc::CLONE_NEWNET) } != 0 {
                return Err(os_err("setns"));
            }
            f()
        })
        .join()
        .map_err(|_| "netns thread panicked".to_string())?
    })
}

/// A netlink socket bound for life to `ns` (sockets belong to the netns they were opened in),
/// usable from any thread afterwards.
fn netlink_in(ns: RawFd) -> R<Netlink> {
    in_ns(ns, || {
        Netlink::open().map_err(|e| format!("netlink socket: {e}"))
    })
}

// ---------------------------------------------------------------------------------------------
// Processes: spawned (one or many at once), their stdout and stderr read through poll, reaped
// with wait4 for their own rusage.

struct Run {
    /// Spawn to exit (both pipes closed), ms.
    ms: f64,
    /// The child's user + system CPU time (wait4's rusage), ms.
    cpu_ms: f64,
    ok: bool,
    status: String,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    t0: Instant,
    t_end: Instant,
}

impl Run {
    /// The status and the first line of each stream, for a one-line note.
    fn brief(&self) -> String {
        let first = |b: &[u8]| {
            let t = String::from_utf8_lossy(b);
            let l = t.lines().next().unwrap_or_default().trim().to_string();
            l.chars().take(160).collect::<String>()
        };
        format!(
            "{}; stdout: {:?}; stderr: {:?}",
            self.status,
            first(&self.stdout),
            first(&self.stderr)
        )
    }
    fn describe(&self) -> String {
        format!(
            "{}; stdout: {}; stderr: {}",
            self.status,
            String::from_utf8_lossy(&self.stdout).trim(),
            String::from_utf8_lossy(&self.stderr).trim()
        )
    }
}

struct Job {
    cmd: Command,
    stdin: Option<Vec<u8>>,
}

struct Running {
    child: Child,
    t0: Instant,
    out: Vec<u8>,
    err: Vec<u8>,
    /// Still open: stdout, stderr.
    open: [bool; 2],
    t_end: Option<Instant>,
}

/// Spawns every job at once, feeds its stdin, collects its output, reaps it. A child still
/// running after PLUGIN_TIMEOUT is killed and the whole batch is an error.
fn run_jobs(jobs: Vec<Job>) -> R<Vec<Run>> {
    let mut running: Vec<Running> = Vec::with_capacity(jobs.len());
    let result = spawn_and_collect(jobs, &mut running);
    if result.is_err() {
        for r in &mut running {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
        return result.map(|_| Vec::new());
    }
    let mut runs = Vec::with_capacity(running.len());
    for r in running {
        let pid = r.child.id() as libc::pid_t;
        let mut status: libc::c_int = 0;
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        loop {
            let w = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
            if w == pid {
                break;
            }
            if w < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(os_err("wait4"));
        }
        // Reaped already: dropping a std Child neither waits nor kills.
        drop(r.child);
        let (ok, status) = if libc::WIFEXITED(status) {
            let code = libc::WEXITSTATUS(status);
            (code == 0, format!("exit status {code}"))
        } else if libc::WIFSIGNALED(status) {
            (
                false,
                format!("killed by signal {}", libc::WTERMSIG(status)),
            )
        } else {
            (false, format!("wait status {status:#x}"))
        };
        let t_end = r.t_end.unwrap_or_else(Instant::now);
        runs.push(Run {
            ms: (t_end - r.t0).as_secs_f64() * 1e3,
            cpu_ms: tv_ms(ru.ru_utime) + tv_ms(ru.ru_stime),
            ok,
            status,
            stdout: r.out,
            stderr: r.err,
            t0: r.t0,
            t_end,
        });
    }
    Ok(runs)
}

fn spawn_and_collect(jobs: Vec<Job>, running: &mut Vec<Running>) -> R<()> {
    for mut job in jobs {
        job.cmd
            .stdin(if job.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let t0 = Instant::now();
        let mut child = job
            .cmd
            .spawn()
            .map_err(|e| format!("spawn {:?}: {e}", job.cmd.get_program()))?;
        if let (Some(bytes), Some(mut w)) = (job.stdin, child.stdin.take()) {
            // A configuration is far below the pipe's 64 KiB: this never waits for the child.
            // A child that exits without reading gives EPIPE, which its exit status explains.
            let _ = w.write_all(&bytes);
        }
        running.push(Running {
            child,
            t0,
            out: Vec::new(),
            err: Vec::new(),
            open: [true, true],
            t_end: None,
        });
    }
    let deadline = Instant::now() + PLUGIN_TIMEOUT;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut fds = Vec::new();
        let mut who = Vec::new();
        for (k, r) in running.iter().enumerate() {
            for (s, open) in r.open.iter().enumerate() {
                if !open {
                    continue;
                }
                let fd = match s {
                    0 => r.child.stdout.as_ref().map(|p| p.as_raw_fd()),
                    _ => r.child.stderr.as_ref().map(|p| p.as_raw_fd()),
                };
                if let Some(fd) = fd {
                    fds.push(libc::pollfd {
                        fd,
                        events: libc::POLLIN,
                        revents: 0,
                    });
                    who.push((k, s));
                }
            }
        }
        if fds.is_empty() {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "a plugin process did not exit within {} s",
                PLUGIN_TIMEOUT.as_secs()
            ));
        }
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                check_stop()?;
                continue;
            }
            return Err(os_err("poll"));
        }
        for (pfd, (k, s)) in fds.iter().zip(who) {
            if pfd.revents == 0 {
                continue;
            }
            let r = &mut running[k];
            let got = match s {
                0 => r.child.stdout.as_mut().map(|p| p.read(&mut buf)),
                _ => r.child.stderr.as_mut().map(|p| p.read(&mut buf)),
            };
            match got {
                Some(Ok(0)) | None | Some(Err(_)) => {
                    r.open[s] = false;
                    if !r.open[0] && !r.open[1] {
                        r.t_end = Some(Instant::now());
                    }
                }
                Some(Ok(len)) => {
                    let dst = if s == 0 { &mut r.out } else { &mut r.err };
                    dst.extend_from_slice(&buf[..len]);
                }
            }
        }
    }
}

fn run_one(cmd: Command, stdin: Option<Vec<u8>>) -> R<Run> {
    run_jobs(vec![Job { cmd, stdin }])?
        .pop()
        .ok_or_else(|| "no run".to_string())
}

// ---------------------------------------------------------------------------------------------
// Plugins and their networks.

struct Plugin {
    /// For the tables: "reference bridge" or "pipework".
    label: &'static str,
    /// The configuration's `type`, also the file name in the plugin dir.
    kind: &'static str,
    exe: PathBuf,
}

/// The plugin dir (CNI_PATH): `pipework` and the reference plugins as symlinks, as runtimes
/// find them by `type`.
fn plugin_dir(world: &World, pipework_bin: &Path, ref_dir: &Path) -> R<PathBuf> {
    let dir = world.dir("bin");
    let links = [
        ("pipework", pipework_bin.to_path_buf()),
        ("bridge", ref_dir.join("bridge")),
        ("host-local", ref_dir.join("host-local")),
    ];
    for (name, target) in links {
        if !target.is_file() {
            return Err(format!(
                "{} not found (the reference plugins: apt-get install containernetworking-plugins; PIPEWORK_BENCH_CNI_REF_DIR)",
                target.display()
            ));
        }
        std::os::unix::fs::symlink(&target, dir.join(name))
            .map_err(|e| format!("symlink {name}: {e}"))?;
    }
    Ok(dir)
}

struct Env<'a> {
    cni_path: &'a Path,
    version: String,
}

/// One plugin's network in one section: its own host netns (where it is exec'd), dataDir and
/// runtime dir.
struct Net<'a> {
    plugin: &'a Plugin,
    host: HostNs,
    data_dir: PathBuf,
    run_dir: PathBuf,
    conf: Value,
}

impl<'a> Net<'a> {
    fn new(world: &World, tag: &str, plugin: &'a Plugin, env: &Env, masq: bool) -> R<Self> {
        let data_dir = world.dir("ipam").join(format!("{tag}-{}", plugin.kind));
        let run_dir = world.dir("rt").join(format!("{tag}-{}", plugin.kind));
        std::fs::create_dir(&run_dir).map_err(|e| format!("mkdir {}: {e}", run_dir.display()))?;
        let conf = json!({
            "cniVersion": env.version,
            "name": NET_NAME,
            "type": plugin.kind,
            "bridge": BRIDGE,
            "isGateway": true,
            "ipMasq": masq,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": SUBNET, "gateway": GATEWAY.to_string()}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": data_dir,
            },
        });
        Ok(Net {
            plugin,
            host: HostNs::new()?,
            data_dir,
            run_dir,
            conf,
        })
    }

    /// One plugin invocation as a runtime makes it.
    fn job(&self, env: &Env, command: &str, id: &str, guest: &Guest, prev: Option<&Value>) -> Job {
        let mut conf = self.conf.clone();
        if let Some(p) = prev {
            conf["prevResult"] = p.clone();
        }
        let mut cmd = cmd_in(self.host.raw(), &self.plugin.exe);
        cmd.env_clear()
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", id)
            .env("CNI_NETNS", guest.path_str())
            .env("CNI_IFNAME", IFNAME)
            .env("CNI_PATH", env.cni_path)
            .env("PATH", PATH_ENV)
            .env("PIPEWORK_RUNTIME_DIR", &self.run_dir);
        Job {
            cmd,
            stdin: Some(conf.to_string().into_bytes()),
        }
    }
}

impl Drop for Net<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}

/// A run that exited non-zero aborts the bench (no meaningful row without it).
fn expect_ok(r: &Run, what: &str) -> R<()> {
    if r.ok {
        Ok(())
    } else {
        Err(format!("{what} failed: {}", r.describe()))
    }
}

/// The ADD result's shape, as issue 10 and Podman want it; problems are noted, not fatal.
fn check_add_result(
    r: &Run,
    env: &Env,
    guest: &Guest,
    what: &str,
    problems: &mut Vec<String>,
) -> R<(Value, IpNet)> {
    let v: Value = serde_json::from_slice(&r.stdout).map_err(|e| {
        format!(
            "{what}: stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&r.stdout)
        )
    })?;
    let mut bad = |why: String| problems.push(format!("{what}: {why}"));
    if v["cniVersion"] != env.version.as_str() {
        bad(format!(
            "cniVersion {} (configuration: {})",
            v["cniVersion"], env.version
        ));
    }
    let ifaces = v["interfaces"].as_array().cloned().unwrap_or_default();
    if !ifaces.iter().any(|i| i["name"] == BRIDGE) {
        bad(format!("no interface {BRIDGE} in {}", v["interfaces"]));
    }
    for i in &ifaces {
        if i["mac"].as_str().is_none_or(str::is_empty) {
            bad(format!("interface {} has no MAC", i["name"]));
        }
    }
    let ip = &v["ips"][0];
    let addr: IpNet = ip["address"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("{what}: no ips[0].address in {v}"))?;
    let subnet: IpNet = SUBNET.parse().expect("a prefix");
    if !subnet.contains(&addr.addr()) || addr.prefix_len() != subnet.prefix_len() {
        bad(format!("address {addr} is not from {SUBNET}"));
    }
    if ip["gateway"] != GATEWAY.to_string().as_str() {
        bad(format!("gateway {} (expected {GATEWAY})", ip["gateway"]));
    }
    match ip["interface"]
        .as_u64()
        .and_then(|k| ifaces.get(k as usize))
    {
        Some(i) if i["name"] == IFNAME && i["sandbox"] == guest.path_str() => {}
        Some(i) => bad(format!(
            "ips[0].interface is {i}, expected {IFNAME} with sandbox {}",
            guest.path_str()
        )),
        None => bad(format!("ips[0].interface does not index interfaces: {v}")),
    }
    Ok((v, addr))
}

// ---------------------------------------------------------------------------------------------
// State checks (untimed, after each phase).

fn ifaces_of(ns: RawFd) -> R<Vec<IfInfo>> {
    in_ns(ns, list_ifaces)
}

/// After ADD: each guest's eth0 is up with its result's address; the bridge has every port and
/// the gateway address.
fn check_added(
    net: &Net,
    guests: &[Guest],
    addrs: &[IpNet],
    what: &str,
    problems: &mut Vec<String>,
) -> R<()> {
    for (g, a) in guests.iter().zip(addrs) {
        let f = g.open()?;
        let ifs = ifaces_of(f.as_raw_fd())?;
        let want = match a.addr() {
            IpAddr::V4(v4) => (v4, a.prefix_len() as u32),
            IpAddr::V6(_) => continue,
        };
        match ifs.iter().find(|i| i.name == IFNAME) {
            Some(i) if i.up && i.v4.contains(&want) => {}
            Some(i) => problems.push(format!(
                "{what}: {}: {IFNAME} up={} with {:?}, expected {a}",
                g.path.display(),
                i.up,
                i.v4
            )),
            None => problems.push(format!(
                "{what}: {}: no {IFNAME} after ADD",
                g.path.display()
            )),
        }
    }
    let out = run_in(
        net.host.raw(),
        "ip",
        &["-j", "link", "show", "master", BRIDGE],
    )?;
    let ports = serde_json::from_str::<Value>(out.trim())
        .ok()
        .and_then(|v| v.as_array().map(Vec::len))
        .unwrap_or(0);
    if ports != guests.len() {
        problems.push(format!(
            "{what}: {BRIDGE} has {ports} ports, expected {}",
            guests.len()
        ));
    }
    let host = ifaces_of(net.host.raw())?;
    let gw = host
        .iter()
        .find(|i| i.name == BRIDGE)
        .is_some_and(|b| b.v4.iter().any(|(a, _)| *a == GATEWAY));
    if !gw {
        problems.push(format!("{what}: {BRIDGE} lacks the gateway {GATEWAY}"));
    }
    Ok(())
}

/// After DEL: nothing left in the host netns but lo and the bridge, guests back to lo, no
/// host-local reservation, no pipework record, (ipMasq) no iptables rule.
fn check_deleted(
    net: &Net,
    guests: &[Guest],
    masq: bool,
    what: &str,
    problems: &mut Vec<String>,
) -> R<()> {
    let left: Vec<String> = ifaces_of(net.host.raw())?
        .into_iter()
        .map(|i| i.name)
        .filter(|n| n != "lo" && n != BRIDGE)
        .collect();
    if !left.is_empty() {
        problems.push(format!(
            "{what}: host links left after DEL: {}",
            left.join(", ")
        ));
    }
    let mut dirty = 0;
    for g in guests {
        let f = g.open()?;
        if ifaces_of(f.as_raw_fd())?.iter().any(|i| i.name != "lo") {
            dirty += 1;
        }
    }
    if dirty > 0 {
        problems.push(format!("{what}: {dirty} guests still have links after DEL"));
    }
    let reserved = reservations(&net.data_dir);
    if reserved > 0 {
        problems.push(format!(
            "{what}: {reserved} host-local reservations left after DEL"
        ));
    }
    let records = files_under(&net.run_dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .count();
    if records > 0 {
        problems.push(format!(
            "{what}: {records} pipework record files left in {} after DEL",
            net.run_dir.display()
        ));
    }
    if masq {
        let rules = run_in(net.host.raw(), "iptables", &["-w", "-t", "nat", "-S"])?;
        let left: Vec<&str> = rules.lines().filter(|l| !l.starts_with("-P ")).collect();
        if !left.is_empty() {
            problems.push(format!(
                "{what}: iptables nat rules left after DEL: {}",
                left.join(" | ")
            ));
        }
    }
    Ok(())
}

/// host-local's reservations in `data_dir`: one file per address, named by it.
fn reservations(data_dir: &Path) -> usize {
    std::fs::read_dir(data_dir.join(NET_NAME))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.parse::<IpAddr>().is_ok())
                .count()
        })
        .unwrap_or(0)
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => out.extend(files_under(&p)),
            Ok(_) => out.push(p),
            Err(_) => {}
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Statistics.

#[derive(Default)]
struct Stats {
    samples_ms: Vec<f64>,
    cpu_ms: Vec<f64>,
}

impl Stats {
    fn push(&mut self, ms: f64, cpu_ms: Option<f64>) {
        self.samples_ms.push(ms);
        if let Some(c) = cpu_ms {
            self.cpu_ms.push(c);
        }
    }
    fn pct_of(v: &[f64], p: f64) -> f64 {
        let mut v = v.to_vec();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        if v.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    }
    fn p50(&self) -> f64 {
        Self::pct_of(&self.samples_ms, 50.0)
    }
    fn pct(&self, p: f64) -> f64 {
        Self::pct_of(&self.samples_ms, p)
    }
    fn max(&self) -> f64 {
        self.samples_ms.iter().cloned().fold(f64::NAN, f64::max)
    }
    fn cpu_p50(&self) -> String {
        if self.cpu_ms.is_empty() {
            "-".into()
        } else {
            format!("{:.2}", Self::pct_of(&self.cpu_ms, 50.0))
        }
    }
}

fn median(v: &[f64]) -> f64 {
    Stats::pct_of(v, 50.0)
}

// ---------------------------------------------------------------------------------------------
// ADD and DEL, N guests, every participant interleaved guest by guest.

struct SectionResult {
    title: String,
    n: usize,
    add: Vec<(String, Stats)>,
    del: Vec<(String, Stats)>,
}

/// The kernel's side of the comparison: a bridge in its own host netns, one veth per guest
/// created and deleted by the bench itself over netlink (in-process), and one more per guest
/// for `ip link del`.
struct KernelBaseline {
    host: HostNs,
    nl: Netlink,
    bridge: u32,
}

fn link_index(nl: &mut Netlink, name: &str) -> R<u32> {
    match nl.get(msg::get_link_by_name(name)) {
        Ok(Some(RouteNetlinkMessage::NewLink(l))) => Ok(l.header.index),
        Ok(_) => Err(format!("link {name} not found")),
        Err(e) => Err(format!("get link {name}: {e}")),
    }
}

impl KernelBaseline {
    fn new() -> R<Self> {
        let host = HostNs::new()?;
        let mut nl = netlink_in(host.raw())?;
        nl.request(msg::new_bridge(BRIDGE, None), NLM_F_CREATE | NLM_F_EXCL)
            .map_err(|e| format!("create bridge {BRIDGE}: {e}"))?;
        let bridge = link_index(&mut nl, BRIDGE)?;
        Ok(KernelBaseline { host, nl, bridge })
    }

    /// One veth `host_name` on the bridge, its peer `peer` created inside `guest`; the time of
    /// the RTM_NEWLINK alone, and the host end's index.
    fn add_veth(&mut self, host_name: &str, peer: &str, guest: &Guest) -> R<(f64, u32)> {
        let g = guest.open()?;
        let m = msg::new_veth(
            host_name,
            1500,
            Some(self.bridge),
            &msg::PeerSpec {
                name: peer.to_string(),
                mtu: 1500,
                mac: None,
                netns_fd: g.as_raw_fd(),
            },
        );
        let t0 = Instant::now();
        self.nl
            .request(m, NLM_F_CREATE | NLM_F_EXCL)
            .map_err(|e| format!("create veth {host_name}: {e}"))?;
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        Ok((ms, link_index(&mut self.nl, host_name)?))
    }

    fn del(&mut self, index: u32) -> R<f64> {
        let t0 = Instant::now();
        self.nl
            .request(msg::del_link(index), 0)
            .map_err(|e| format!("delete link {index}: {e}"))?;
        Ok(t0.elapsed().as_secs_f64() * 1e3)
    }
}

#[derive(Clone, Copy)]
enum AddStep {
    Plugin(usize),
    KernelVeth,
    HostLocal,
}

#[derive(Clone, Copy)]
enum DelStep {
    Plugin(usize),
    HostLocal,
    KernelDel,
    IpLinkDel,
    SpawnFloor,
}

/// `steps` rotated by `i`: every participant runs first, second, … equally often.
fn rotated<T: Copy>(steps: &[T], i: usize) -> Vec<T> {
    let k = i % steps.len().max(1);
    steps[k..].iter().chain(&steps[..k]).copied().collect()
}

#[allow(clippy::too_many_arguments)]
fn add_del_section(
    world: &World,
    env: &Env,
    plugins: &[Plugin],
    pools: &[Vec<Guest>],
    base_pool: &[Guest],
    n: usize,
    masq: bool,
    problems: &mut Vec<String>,
) -> R<SectionResult> {
    let tag = format!("n{n}{}", if masq { "-masq" } else { "" });
    let title = format!(
        "N={n}{}",
        if masq {
            ", ipMasq: true"
        } else {
            ", no ipMasq"
        }
    );
    println!(
        "  section {title}: ADD then DEL of {n} guests per plugin, interleaved guest by guest"
    );
    let nets: Vec<Net> = plugins
        .iter()
        .map(|p| Net::new(world, &tag, p, env, masq))
        .collect::<R<_>>()?;
    let mut kernel = KernelBaseline::new()?;
    // host-local alone, exec'd as both plugins exec it (same ipam section, its own dataDir):
    // the floor under any plugin that delegates to it.
    let hl_plugin = Plugin {
        label: "host-local alone",
        kind: "host-local",
        exe: env.cni_path.join("host-local"),
    };
    let hl = Net::new(world, &tag, &hl_plugin, env, masq)?;
    let hl_ids: Vec<String> = (0..n)
        .map(|i| format!("pwb{}-{tag}-host-local-{i}", std::process::id()))
        .collect();
    let mut add_hl = Stats::default();
    let mut del_hl = Stats::default();
    let mut hl_results = Vec::with_capacity(n);
    let ids: Vec<Vec<String>> = plugins
        .iter()
        .map(|p| {
            (0..n)
                .map(|i| format!("pwb{}-{tag}-{}-{i}", std::process::id(), p.kind))
                .collect()
        })
        .collect();

    let mut add: Vec<Stats> = plugins.iter().map(|_| Stats::default()).collect();
    let mut add_kernel = Stats::default();
    let mut results: Vec<Vec<Value>> = plugins.iter().map(|_| Vec::with_capacity(n)).collect();
    let mut addrs: Vec<Vec<IpNet>> = plugins.iter().map(|_| Vec::with_capacity(n)).collect();
    let mut kernel_idx = Vec::with_capacity(n);
    let mut add_steps: Vec<AddStep> = (0..plugins.len()).map(AddStep::Plugin).collect();
    add_steps.extend([AddStep::HostLocal, AddStep::KernelVeth]);
    for i in 0..n {
        check_stop()?;
        for step in rotated(&add_steps, i) {
            match step {
                AddStep::Plugin(p) => {
                    let g = &pools[p][i];
                    let what = format!("[{title}] {} ADD #{i}", plugins[p].label);
                    let job = nets[p].job(env, "ADD", &ids[p][i], g, None);
                    let r = run_one(job.cmd, job.stdin)?;
                    expect_ok(&r, &what)?;
                    let (v, a) = check_add_result(&r, env, g, &what, problems)?;
                    add[p].push(r.ms, Some(r.cpu_ms));
                    results[p].push(v);
                    addrs[p].push(a);
                }
                AddStep::HostLocal => {
                    let job = hl.job(env, "ADD", &hl_ids[i], &base_pool[i], None);
                    let r = run_one(job.cmd, job.stdin)?;
                    expect_ok(&r, &format!("[{title}] host-local ADD #{i}"))?;
                    add_hl.push(r.ms, Some(r.cpu_ms));
                    hl_results.push(serde_json::from_slice::<Value>(&r.stdout).ok());
                }
                AddStep::KernelVeth => {
                    let g = &base_pool[i];
                    let (ms, idx) = kernel.add_veth(&format!("pwbk{i}"), "k0", g)?;
                    add_kernel.push(ms, None);
                    kernel_idx.push(idx);
                    // The `ip link del` row's veth, untimed.
                    kernel.add_veth(&format!("pwbi{i}"), "i0", g)?;
                }
            }
        }
    }
    for (p, net) in nets.iter().enumerate() {
        let what = format!("[{title}] {}", plugins[p].label);
        check_added(net, &pools[p][..n], &addrs[p], &what, problems)?;
    }

    let mut del: Vec<Stats> = plugins.iter().map(|_| Stats::default()).collect();
    let mut del_kernel = Stats::default();
    let mut del_ip = Stats::default();
    let mut floor = Stats::default();
    let mut del_steps: Vec<DelStep> = (0..plugins.len()).map(DelStep::Plugin).collect();
    del_steps.extend([
        DelStep::HostLocal,
        DelStep::KernelDel,
        DelStep::IpLinkDel,
        DelStep::SpawnFloor,
    ]);
    let pipework_exe = env.cni_path.join("pipework");
    for i in 0..n {
        check_stop()?;
        for step in rotated(&del_steps, i) {
            match step {
                DelStep::Plugin(p) => {
                    let g = &pools[p][i];
                    let what = format!("[{title}] {} DEL #{i}", plugins[p].label);
                    let job = nets[p].job(env, "DEL", &ids[p][i], g, Some(&results[p][i]));
                    let r = run_one(job.cmd, job.stdin)?;
                    expect_ok(&r, &what)?;
                    del[p].push(r.ms, Some(r.cpu_ms));
                }
                DelStep::HostLocal => {
                    let prev = hl_results[i].as_ref();
                    let job = hl.job(env, "DEL", &hl_ids[i], &base_pool[i], prev);
                    let r = run_one(job.cmd, job.stdin)?;
                    expect_ok(&r, &format!("[{title}] host-local DEL #{i}"))?;
                    del_hl.push(r.ms, Some(r.cpu_ms));
                }
                DelStep::KernelDel => {
                    del_kernel.push(kernel.del(kernel_idx[i])?, None);
                }
                DelStep::IpLinkDel => {
                    let mut c = cmd_in(kernel.host.raw(), "ip");
                    c.args(["link", "del", &format!("pwbi{i}")]);
                    let r = run_one(c, None)?;
                    expect_ok(&r, &format!("[{title}] ip link del pwbi{i}"))?;
                    del_ip.push(r.ms, Some(r.cpu_ms));
                }
                DelStep::SpawnFloor => {
                    let mut c = cmd_in(kernel.host.raw(), &pipework_exe);
                    c.arg("--version").env_clear().env("PATH", PATH_ENV);
                    let r = run_one(c, None)?;
                    expect_ok(&r, "pipework --version")?;
                    floor.push(r.ms, Some(r.cpu_ms));
                }
            }
        }
    }
    for (p, net) in nets.iter().enumerate() {
        let what = format!("[{title}] {}", plugins[p].label);
        check_deleted(net, &pools[p][..n], masq, &what, problems)?;
    }
    if reservations(&hl.data_dir) > 0 {
        problems.push(format!(
            "[{title}] host-local alone: reservations left after DEL"
        ));
    }
    drop(kernel);
    drop(nets);
    drop(hl);

    let mut add_rows: Vec<(String, Stats)> = plugins
        .iter()
        .zip(add)
        .map(|(p, s)| (format!("ADD {}", p.label), s))
        .collect();
    add_rows.push(("host-local ADD alone".into(), add_hl));
    add_rows.push(("kernel: veth create (netlink)".into(), add_kernel));
    let mut del_rows: Vec<(String, Stats)> = plugins
        .iter()
        .zip(del)
        .map(|(p, s)| (format!("DEL {}", p.label), s))
        .collect();
    del_rows.push(("host-local DEL alone".into(), del_hl));
    del_rows.push(("kernel: veth delete (netlink)".into(), del_kernel));
    del_rows.push(("ip link del (a process)".into(), del_ip));
    del_rows.push(("spawn floor (pipework -V)".into(), floor));
    Ok(SectionResult {
        title,
        n,
        add: add_rows,
        del: del_rows,
    })
}

// ---------------------------------------------------------------------------------------------
// The parallel burst: B ADDs at once on a fresh bridge against B serial ones on another.

struct Burst {
    label: String,
    serial_add_ms: Vec<f64>,
    burst_add_ms: Vec<f64>,
    serial_each: Stats,
    burst_each: Stats,
    add_failures: usize,
    serial_del_ms: Vec<f64>,
    burst_del_ms: Vec<f64>,
    del_failures: usize,
}

/// First spawn to last exit.
fn wall_ms(runs: &[Run]) -> f64 {
    let (Some(t0), Some(t1)) = (
        runs.iter().map(|r| r.t0).min(),
        runs.iter().map(|r| r.t_end).max(),
    ) else {
        return f64::NAN;
    };
    (t1 - t0).as_secs_f64() * 1e3
}

/// All at once (`parallel`) or one after the other.
fn run_batch(jobs: Vec<Job>, parallel: bool) -> R<Vec<Run>> {
    if parallel {
        return run_jobs(jobs);
    }
    let mut runs = Vec::with_capacity(jobs.len());
    for j in jobs {
        check_stop()?;
        runs.push(run_one(j.cmd, j.stdin)?);
    }
    Ok(runs)
}

#[allow(clippy::too_many_arguments)]
fn burst_batch(
    world: &World,
    env: &Env,
    plugin: &Plugin,
    guests: &[Guest],
    tag: &str,
    parallel: bool,
    out: &mut Burst,
    problems: &mut Vec<String>,
) -> R<()> {
    let what = format!(
        "[burst {tag}] {} {}",
        plugin.label,
        if parallel { "parallel" } else { "serial" }
    );
    let net = Net::new(world, tag, plugin, env, false)?;
    let ids: Vec<String> = (0..guests.len())
        .map(|i| format!("pwb{}-{tag}-{}-{i}", std::process::id(), plugin.kind))
        .collect();
    let jobs = guests
        .iter()
        .zip(&ids)
        .map(|(g, id)| net.job(env, "ADD", id, g, None))
        .collect();
    let runs = run_batch(jobs, parallel)?;
    let wall = wall_ms(&runs);
    let mut prev = Vec::with_capacity(runs.len());
    let mut addrs = Vec::new();
    let mut failed = 0;
    for (i, r) in runs.iter().enumerate() {
        if parallel {
            out.burst_each.push(r.ms, Some(r.cpu_ms));
        } else {
            out.serial_each.push(r.ms, Some(r.cpu_ms));
        }
        if !r.ok {
            failed += 1;
            problems.push(format!("{what}: ADD #{i} failed: {}", r.describe()));
            prev.push(None);
            continue;
        }
        let (v, a) = check_add_result(r, env, &guests[i], &format!("{what} ADD #{i}"), problems)?;
        prev.push(Some(v));
        addrs.push(a);
    }
    out.add_failures += failed;
    if failed == 0 {
        check_added(&net, guests, &addrs, &what, problems)?;
    }
    // Every DEL, also of a failed ADD: DEL is idempotent, and it cleans up what the ADD left.
    let jobs = guests
        .iter()
        .zip(&ids)
        .zip(&prev)
        .map(|((g, id), p)| net.job(env, "DEL", id, g, p.as_ref()))
        .collect();
    let runs = run_batch(jobs, parallel)?;
    for (i, r) in runs.iter().enumerate() {
        if !r.ok {
            out.del_failures += 1;
            problems.push(format!("{what}: DEL #{i} failed: {}", r.describe()));
        }
    }
    if parallel {
        out.burst_add_ms.push(wall);
        out.burst_del_ms.push(wall_ms(&runs));
    } else {
        out.serial_add_ms.push(wall);
        out.serial_del_ms.push(wall_ms(&runs));
    }
    check_deleted(&net, guests, false, &what, problems)
}

fn burst_section(
    world: &World,
    env: &Env,
    plugins: &[Plugin],
    pools: &[Vec<Guest>],
    b: usize,
    rounds: usize,
    problems: &mut Vec<String>,
) -> R<Vec<Burst>> {
    println!(
        "  burst: per plugin and round, {b} serial ADDs on one fresh bridge and {b} ADDs at once on another, then their DELs likewise; {rounds} rounds, ABBA order"
    );
    let mut out: Vec<Burst> = plugins
        .iter()
        .map(|p| Burst {
            label: p.label.to_string(),
            serial_add_ms: Vec::new(),
            burst_add_ms: Vec::new(),
            serial_each: Stats::default(),
            burst_each: Stats::default(),
            add_failures: 0,
            serial_del_ms: Vec::new(),
            burst_del_ms: Vec::new(),
            del_failures: 0,
        })
        .collect();
    // Serial batches in plugin order, then the parallel ones in reverse (A B B A); every other
    // round the other way round.
    let mut order: Vec<(usize, bool)> = (0..plugins.len()).map(|p| (p, false)).collect();
    order.extend((0..plugins.len()).rev().map(|p| (p, true)));
    for round in 0..rounds {
        let mut o = order.clone();
        if round % 2 == 1 {
            o.reverse();
        }
        for (p, parallel) in o {
            check_stop()?;
            let guests = if parallel {
                &pools[p][b..2 * b]
            } else {
                &pools[p][..b]
            };
            let tag = format!("burst{round}-{}", if parallel { "par" } else { "ser" });
            burst_batch(
                world,
                env,
                &plugins[p],
                guests,
                &tag,
                parallel,
                &mut out[p],
                problems,
            )?;
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Probes: is the binary a CNI plugin yet, which version do both speak, does ipMasq work.

fn supported_versions(p: &Plugin, env_path: &Path) -> Result<Vec<String>, String> {
    let host = HostNs::new()?;
    let mut c = cmd_in(host.raw(), &p.exe);
    c.env_clear()
        .env("CNI_COMMAND", "VERSION")
        .env("CNI_PATH", env_path)
        .env("PATH", PATH_ENV);
    let r = run_one(c, Some(br#"{"cniVersion":"1.0.0"}"#.to_vec()))?;
    let v: Value = serde_json::from_slice(&r.stdout)
        .map_err(|_| format!("VERSION did not answer a CNI version object: {}", r.brief()))?;
    if !r.ok {
        return Err(format!("VERSION failed: {}", r.describe()));
    }
    v["supportedVersions"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .ok_or_else(|| format!("VERSION answered without supportedVersions: {v}"))
}

/// One ADD and DEL with `ipMasq: true` per plugin on a throwaway guest; the reason to skip the
/// ipMasq rows if any fails.
fn masq_probe(world: &World, env: &Env, plugins: &[Plugin]) -> Result<(), String> {
    if !["/usr/sbin/iptables", "/sbin/iptables", "/usr/bin/iptables"]
        .iter()
        .any(|p| Path::new(p).exists())
    {
        return Err("iptables is not installed".into());
    }
    let guests = make_guests(&world.dir("netns"), "probe", 1)?;
    for p in plugins {
        let net = Net::new(world, "probe-masq", p, env, true)?;
        let id = format!("pwb{}-probe-{}", std::process::id(), p.kind);
        let job = net.job(env, "ADD", &id, &guests[0], None);
        let add = run_one(job.cmd, job.stdin)?;
        let prev = serde_json::from_slice::<Value>(&add.stdout).ok();
        let job = net.job(
            env,
            "DEL",
            &id,
            &guests[0],
            prev.as_ref().filter(|_| add.ok),
        );
        let del = run_one(job.cmd, job.stdin)?;
        if !add.ok {
            return Err(format!(
                "{} ADD with ipMasq failed: {}",
                p.label,
                add.describe()
            ));
        }
        if !del.ok {
            return Err(format!(
                "{} DEL with ipMasq failed: {}",
                p.label,
                del.describe()
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Output.

fn print_section(s: &SectionResult, version: &str) {
    println!();
    println!(
        "== CNI ADD / DEL, {} (cniVersion {version}; every row {} samples, taken interleaved guest by guest) ==",
        s.title, s.n
    );
    println!(
        "{:<32} {:>5} {:>8} {:>8} {:>8} {:>8} {:>7} {:>9}  target",
        "row", "n", "p50_ms", "p95_ms", "max_ms", "cpu_p50", "vs_ref", "vs_kernel"
    );
    let met = |ok: bool| if ok { "met" } else { "OVER" };
    let ref_add = s.add.first().map(|(_, st)| st.p50()).unwrap_or(f64::NAN);
    let ref_del = s.del.first().map(|(_, st)| st.p50()).unwrap_or(f64::NAN);
    let kernel_del = s
        .del
        .iter()
        .find(|(l, _)| l.starts_with("kernel"))
        .map(|(_, st)| st.p50())
        .unwrap_or(f64::NAN);
    let ip_del = s
        .del
        .iter()
        .find(|(l, _)| l.starts_with("ip link del"))
        .map(|(_, st)| st.p50())
        .unwrap_or(f64::NAN);
    let row = |label: &str, st: &Stats, vs_ref: Option<f64>, vs_kernel: Option<f64>, t: String| {
        let ratio = |r: Option<f64>| r.map(|x| format!("{x:.2}x")).unwrap_or("-".into());
        println!(
            "{:<32} {:>5} {:>8.2} {:>8.2} {:>8.2} {:>8} {:>7} {:>9}  {}",
            label,
            st.samples_ms.len(),
            st.p50(),
            st.pct(95.0),
            st.max(),
            st.cpu_p50(),
            ratio(vs_ref),
            ratio(vs_kernel),
            t
        );
    };
    for (k, (label, st)) in s.add.iter().enumerate() {
        let p50 = st.p50();
        let (vs, t) = if label.starts_with("kernel") {
            (None, "(context: the RTM_NEWLINK alone)".to_string())
        } else if label.starts_with("host-local") {
            (
                Some(p50 / ref_add),
                "(context: the IPAM process both run)".to_string(),
            )
        } else if k == 0 {
            (Some(1.0), "(reference)".to_string())
        } else {
            (
                Some(p50 / ref_add),
                format!(
                    "p50 <= {TARGET_ADD_P50_MS} ms: {}",
                    met(p50 <= TARGET_ADD_P50_MS)
                ),
            )
        };
        row(label, st, vs, None, t);
    }
    // The context rows (host-local, kernel) follow the plugins' rows.
    let plugins = s.add.len() - 2;
    for (k, (label, st)) in s.del.iter().enumerate() {
        let p50 = st.p50();
        let (vs, t) = if k >= plugins {
            let t = if label.starts_with("host-local") {
                "(context: the IPAM process both run)"
            } else if label.starts_with("kernel") {
                "(baseline: the RTM_DELLINK alone, in-process)"
            } else if label.starts_with("ip link") {
                "(the kernel's delete as a process)"
            } else {
                "(exec + loading, no netlink)"
            };
            (None, t.to_string())
        } else if k == 0 {
            (Some(1.0), "(reference)".to_string())
        } else {
            (
                Some(p50 / ref_del),
                format!(
                    "{:+.2} ms on the kernel's delete; <= ip link del: {}",
                    p50 - kernel_del,
                    met(p50 <= ip_del)
                ),
            )
        };
        row(label, st, vs, Some(p50 / kernel_del), t);
    }
}

fn print_burst(rows: &[Burst], b: usize, rounds: usize) {
    println!();
    println!(
        "== {b}-way parallel burst of ADDs vs {b} serial ADDs ({rounds} rounds, a fresh bridge per batch; medians over rounds) =="
    );
    println!(
        "{:<18} {:>10} {:>10} {:>9} {:>10} {:>10} {:>6} {:>10} {:>10} {:>6}  target",
        "plugin",
        "serial_ms",
        "burst_ms",
        "burst/ser",
        "add_p50_s",
        "add_p50_b",
        "fail",
        "del_ser_ms",
        "del_bur_ms",
        "dfail"
    );
    for r in rows {
        let s = median(&r.serial_add_ms);
        let p = median(&r.burst_add_ms);
        let ok = r.add_failures == 0 && r.del_failures == 0 && p < s;
        println!(
            "{:<18} {:>10.1} {:>10.1} {:>8.2}x {:>10.2} {:>10.2} {:>6} {:>10.1} {:>10.1} {:>6}  no failures and burst < serial: {}",
            r.label,
            s,
            p,
            p / s,
            r.serial_each.p50(),
            r.burst_each.p50(),
            r.add_failures,
            median(&r.serial_del_ms),
            median(&r.burst_del_ms),
            r.del_failures,
            if ok { "met" } else { "OVER" }
        );
    }
    if let (Some(a), Some(b2)) = (rows.first(), rows.get(1)) {
        println!(
            "  {} / {}: serial {:.2}x, burst {:.2}x",
            b2.label,
            a.label,
            median(&b2.serial_add_ms) / median(&a.serial_add_ms),
            median(&b2.burst_add_ms) / median(&a.burst_add_ms)
        );
    }
}

// ---------------------------------------------------------------------------------------------

fn run() -> R<()> {
    if unsafe { libc::geteuid() } != 0 {
        println!("cni bench: skipped, needs root (namespaces, veth, bridges)");
        return Ok(());
    }
    match std::env::var("PIPEWORK_BENCH_ONLY").as_deref() {
        Ok("cni") | Ok("") | Err(_) => {}
        Ok(other) => {
            println!("cni bench: skipped (PIPEWORK_BENCH_ONLY={other})");
            return Ok(());
        }
    }
    let ns_list = std::env::var("PIPEWORK_BENCH_CNI_N").unwrap_or_else(|_| DEFAULT_NS.into());
    let sizes: Vec<usize> = ns_list
        .split(',')
        .map(|s| s.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| {
            format!("PIPEWORK_BENCH_CNI_N={ns_list:?}: a comma-separated list of numbers")
        })?;
    if sizes.iter().any(|n| !(1..=4000).contains(n)) {
        return Err(format!(
            "PIPEWORK_BENCH_CNI_N={ns_list:?}: each N in 1..=4000"
        ));
    }
    let b = env_usize("PIPEWORK_BENCH_CNI_BURST", DEFAULT_BURST)?;
    let rounds = env_usize("PIPEWORK_BENCH_CNI_ROUNDS", DEFAULT_ROUNDS)?;
    let masq_on = std::env::var("PIPEWORK_BENCH_CNI_MASQ").as_deref() != Ok("0");
    let bin = pipework_bin();
    if !bin.is_file() {
        return Err(format!(
            "{} not found: build it with `cargo build --release` (scripts/bench.sh does), or set PIPEWORK_BIN",
            bin.display()
        ));
    }
    let bin = bin
        .canonicalize()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let ref_dir = PathBuf::from(
        std::env::var_os("PIPEWORK_BENCH_CNI_REF_DIR").unwrap_or_else(|| "/usr/lib/cni".into()),
    );

    // First, while the bench has one thread.
    let world = World::enter()?;
    let cni_path = plugin_dir(&world, &bin, &ref_dir)?;
    println!(
        "pipework CNI bench: binary {}, reference plugins from {}, N = {ns_list}",
        bin.display(),
        ref_dir.display()
    );
    println!(
        "  private mount namespace; plugin dir, host-local dataDirs, PIPEWORK_RUNTIME_DIRs and guest netns files on a tmpfs at {}",
        world.root.display()
    );

    let reference = Plugin {
        label: "reference bridge",
        kind: "bridge",
        exe: cni_path.join("bridge"),
    };
    let ref_versions = supported_versions(&reference, &cni_path)
        .map_err(|e| format!("the reference bridge plugin: {e}"))?;
    let mut plugins = vec![reference];
    let mut notes = Vec::new();
    let pw = Plugin {
        label: "pipework",
        kind: "pipework",
        exe: cni_path.join("pipework"),
    };
    let mut versions = ref_versions.clone();
    match supported_versions(&pw, &cni_path) {
        Ok(v) => {
            versions.retain(|x| v.contains(x));
            plugins.push(pw);
        }
        Err(e) => {
            let why = format!("pipework rows skipped: the binary is not a CNI plugin yet ({e})");
            println!("  {why}");
            notes.push(why);
        }
    }
    // 1.0.0 is what the runtimes here speak (libcni 1.1); else the newest both take.
    let version = if versions.iter().any(|v| v == "1.0.0") {
        "1.0.0".to_string()
    } else {
        versions
            .last()
            .cloned()
            .ok_or("the plugins share no CNI version")?
    };
    let env = Env {
        cni_path: &cni_path,
        version,
    };
    println!(
        "  plugins: {}; cniVersion {}",
        plugins
            .iter()
            .map(|p| p.label)
            .collect::<Vec<_>>()
            .join(", "),
        env.version
    );
    let masq = if masq_on {
        match masq_probe(&world, &env, &plugins) {
            Ok(()) => true,
            Err(e) => {
                let why = format!("ipMasq rows skipped: {e}");
                println!("  {why}");
                notes.push(why);
                false
            }
        }
    } else {
        notes.push("ipMasq rows skipped (PIPEWORK_BENCH_CNI_MASQ=0)".into());
        false
    };

    let max_n = sizes.iter().copied().max().unwrap_or(1);
    let t = Instant::now();
    let netns_dir = world.dir("netns");
    let pools: Vec<Vec<Guest>> = plugins
        .iter()
        .map(|p| make_guests(&netns_dir, &format!("{}-", p.kind), max_n.max(2 * b)))
        .collect::<R<_>>()?;
    let base_pool = make_guests(&netns_dir, "kernel-", max_n)?;
    println!(
        "  {} guest netns (bind-mounted, no process) made in {:.0} ms",
        pools.iter().map(Vec::len).sum::<usize>() + base_pool.len(),
        t.elapsed().as_secs_f64() * 1e3
    );

    let mut problems = Vec::new();
    let mut sections = Vec::new();
    for &n in &sizes {
        for m in [false, true] {
            if m && !masq {
                continue;
            }
            let t = Instant::now();
            sections.push(add_del_section(
                &world,
                &env,
                &plugins,
                &pools,
                &base_pool,
                n,
                m,
                &mut problems,
            )?);
            println!("    done in {:.1} s", t.elapsed().as_secs_f64());
        }
    }
    let bursts = if b == 0 || rounds == 0 {
        notes.push("burst skipped (PIPEWORK_BENCH_CNI_BURST or _ROUNDS is 0)".into());
        Vec::new()
    } else {
        let t = Instant::now();
        let r = burst_section(&world, &env, &plugins, &pools, b, rounds, &mut problems)?;
        println!("    done in {:.1} s", t.elapsed().as_secs_f64());
        r
    };
    drop(base_pool);
    drop(pools);

    for s in &sections {
        print_section(s, &env.version);
    }
    if !bursts.is_empty() {
        print_burst(&bursts, b, rounds);
    }
    println!();
    println!("Each row: spawn to exit of one plugin process (fork, setns into its host netns, exec: the bench's part, the same for");
    println!("  every row), the plugins' order rotated guest by guest. vs_ref = row p50 / the reference's p50 for the same command;");
    println!("  vs_kernel = row p50 / the kernel's own delete (one RTM_DELLINK of a veth on a bridge, peer in a guest, sent by the bench).");
    println!("  Targets (issue 10, never asserted): ADD p50 <= {TARGET_ADD_P50_MS} ms; DEL no more than the kernel's delete (here: no slower than");
    println!("  `ip link del`, the same delete done by a process); a {b}-way burst of ADDs without failures, faster than {b} serial ADDs.");
    println!("  DEL gets the ADD's result as prevResult; config: bridge {BRIDGE}, isGateway, host-local {SUBNET} + a default route.");
    for n in &notes {
        println!("note: {n}");
    }
    if problems.is_empty() {
        println!("checks: every ADD result, guest address, bridge port and gateway as expected; nothing left after DEL");
        Ok(())
    } else {
        for p in &problems {
            println!("problem: {p}");
        }
        Err(format!("{} problems (listed above)", problems.len()))
    }
}

fn main() {
    bench_main("cni", run);
}
