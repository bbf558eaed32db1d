//! Topology benchmark (issue 11, "Speed"): the declarative lab commands `pipework apply`,
//! `plan` and `destroy` on a lab of N existing guests (PIPEWORK_BENCH_TOPO_N, default 1000),
//! beside two baselines that build the same thing in the same run.
//!
//! Run as root: `cargo bench --bench topology`, or `PIPEWORK_BENCH_ONLY=topology
//! scripts/bench.sh` (which builds the release binary first; the full `scripts/bench.sh` runs it
//! after the CNI bench).
//!
//! Nothing outside the bench's own namespaces is touched:
//! * the bench first unshares its mount namespace (private propagation) and mounts a tmpfs on
//!   /run/netns, seen only by the bench and its children: the guests are named network
//!   namespaces there (`/run/netns/pwbt<id>-g<i>`, a bind mount of a fresh netns, exactly what
//!   `ip netns add` makes; made in-process, see `Guests::make`), so neither `ip netns list` on the
//!   machine nor its /run/netns ever sees them, and a SIGKILLed bench leaves none behind (the
//!   kernel drops its mount namespace); a second tmpfs at /tmp/pwb-topo-<pid> holds the lab
//!   files, every PIPEWORK_RUNTIME_DIR and the commands' output;
//! * each variant (the lab, baseline a, baseline b) gets its own unnamed "host" netns (held
//!   only by a file descriptor) and its own PIPEWORK_RUNTIME_DIR on that tmpfs (the one
//!   scripts/bench.sh exports is not used): the bridges and host ends exist only
//!   there, and the variants never see each other's links. Every variant starts from the same
//!   guests, checked back to `lo` only.
//!
//! Lab rows (`<id>` is the bench's pid in base 36, so every name fits 15 bytes):
//! 1. `pipework apply lab.yaml --json`: N guests `{netns: pwbt<id>-g<i>}`, bridges
//!    brpwbt<id>-0..3 (`{}`: the lab makes them), attach lines `BR g<i> 10.(64+b).x.y/16` with
//!    guest i on bridge i % 4; checked: every guest's eth1 up with its address, N/4 ports each;
//! 2. `pipework plan lab.yaml` of the applied lab, R times (PIPEWORK_BENCH_TOPO_REPS, default 5):
//!    p50 and min; checked: no `+`/`~`/`-` line;
//! 3. `pipework apply lab.yaml --json` again, R times: the no-op; checked: the host's links and
//!    every guest's links (ifindex, flags, addresses) are the same before and after; the change
//!    count is printed if the JSON report has one;
//! 4. one guest's address changed in the file, then `apply --json`, R times (alternating between
//!    the changed and the original file); checked: that guest has exactly the new address;
//! 5. the same lab plus N/2 point-to-point `links` (g2k:eth9 <-> g2k+1:eth9, a /30 each from
//!    10.128.0.0), `apply --json` once; checked: every guest's eth9 with its address;
//! 6. `pipework destroy <lab>`; checked: the host netns back to `lo` only, every guest back to
//!    `lo` only (the time until then is printed), the named namespaces still there (the lab did
//!    not make them).
//!
//! Baselines (the same attaches, from the same clean guests):
//! * a: N `pipework BR netns:NAME IP/16` processes one after the other (pipework creates the
//!   bridges), then one `pipework detach --all`;
//! * b: iproute2 at its fastest: one `ip -batch -` process in the host netns fed
//!   `link add BR type bridge`, `link set BR up` and per guest
//!   `link add H master BR up type veth peer name eth1 netns NAME` (veth, port and host end up
//!   in one RTM_NEWLINK; `ip` resolves the named netns itself), then per guest one
//!   `ip -n NAME -batch -` fed `addr add IP dev eth1` and `link set eth1 up`. A batch line cannot
//!   take `-n`, a moved link loses its addresses, and `up` on a veth's peer is refused
//!   (ENOTCONN on this kernel), so N + 1 processes is the least iproute2 can do. Teardown: one `ip -batch -`
//!   with `link del H` per guest and `link del BR` per bridge.
//!   Rows 1 and 6 print their speed-up against both (baseline wall / row wall).
//!
//! Timings are printed, never asserted: wall time spawn to reap, and the child's CPU time (user
//! and system, wait4's rusage). A functional problem is listed after the table and makes the bench
//! exit non-zero. Until the binary knows the lab commands (probed with `plan` in a throwaway
//! host netns), the lab rows print "skipped: lab commands not built" and the baselines run alone.
//!
//! Environment: PIPEWORK_BIN (default target/release/pipework), PIPEWORK_BENCH_TOPO_N (2..=4096:
//! four bridges of at most 1,024 ports), PIPEWORK_BENCH_TOPO_REPS, PIPEWORK_BENCH_ONLY (when set,
//! this bench runs only for "topology").

#[path = "support/mod.rs"]
mod support;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

use serde_json::Value;

const DEFAULT_N: usize = 1000;
const DEFAULT_REPS: usize = 5;
const BRIDGES: usize = 4;
const MAX_N: usize = BRIDGES * 1024;
const TARGET_APPLY_MS: f64 = 1000.0;
const TARGET_PLAN_MS: f64 = 300.0;
const TARGET_NOOP_MS: f64 = 300.0;
const TARGET_CHANGE_MS: f64 = 100.0;
const TARGET_LINKS_MS: f64 = 1000.0;
const TARGET_DESTROY_MS: f64 = 1000.0;
const NETNS_DIR: &str = "/run/netns";
const WORLD_PREFIX: &str = "/tmp/pwb-topo-";
const LINK_IF: &str = "eth9";
/// How long the kernel may take to finish deleting veths after a teardown returned.
const CLEAN_TIMEOUT: Duration = Duration::from_secs(120);
const SKIPPED: &str = "skipped: lab commands not built";

// ---------------------------------------------------------------------------------------------
// The private world: a mount namespace of the bench's own, a tmpfs on /run/netns and one for
// the files.

struct World {
    root: PathBuf,
    netns_mounted: bool,
    /// /run/netns did not exist: it is removed again (if still empty) on drop.
    made_netns_dir: bool,
}

impl World {
    /// Must run while the bench has a single thread: unshare(CLONE_NEWNS) refuses (EINVAL) in
    /// a multi-threaded process.
    fn enter() -> R<World> {
        let root = private_world(WORLD_PREFIX)?;
        let netns = Path::new(NETNS_DIR);
        let made_netns_dir = !netns.is_dir();
        let mut world = World {
            root,
            netns_mounted: false,
            made_netns_dir,
        };
        if made_netns_dir {
            std::fs::DirBuilder::new()
                .mode(0o755)
                .create(netns)
                .map_err(|e| format!("mkdir {NETNS_DIR}: {e}"))?;
        }
        mount_tmpfs(&world.root, "mode=0700,size=256m", false)?;
        mount_tmpfs(netns, "mode=0755,size=16m", false)?;
        world.netns_mounted = true;
        Ok(world)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// A fresh, empty runtime dir for one variant (no variant finds another's records).
    fn runtime_dir(&self, name: &str) -> R<PathBuf> {
        let p = self.path(name);
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir(&p).map_err(|e| format!("mkdir {}: {e}", p.display()))?;
        Ok(p)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if self.netns_mounted {
            // Any guest mount left below goes with it.
            lazy_umount(Path::new(NETNS_DIR));
        }
        if self.made_netns_dir {
            let _ = std::fs::remove_dir(NETNS_DIR);
        }
        lazy_umount(&self.root);
        let _ = std::fs::remove_dir(&self.root);
    }
}

// ---------------------------------------------------------------------------------------------
// Names and addresses.

/// Every name the bench makes, derived from its pid (base 36: at most 5 characters, so
/// `pwbt<id>-g4095` and `pwbt<id>-h4095` fit the 15 bytes of an interface or lab netns name).
struct Names {
    id: String,
    n: usize,
}

impl Names {
    fn prefix(&self) -> String {
        format!("pwbt{}", self.id)
    }
    fn lab(&self) -> String {
        format!("bt{}", self.id)
    }
    fn guest_ns(&self, i: usize) -> String {
        format!("pwbt{}-g{i}", self.id)
    }
    /// `br...`: pipework creates a missing host interface only when its name says what it is.
    fn bridge(&self, b: usize) -> String {
        format!("brpwbt{}-{b}", self.id)
    }
    fn bridge_of(&self, i: usize) -> String {
        self.bridge(i % BRIDGES)
    }
    /// Baseline b's host end of guest i.
    fn host_end(&self, i: usize) -> String {
        format!("pwbt{}-h{i}", self.id)
    }
    /// Guest i's attach address: bridge b's guests in 10.(64+b).0.0/16.
    fn addr(&self, i: usize) -> Ipv4Addr {
        let j = i / BRIDGES;
        Ipv4Addr::new(
            10,
            (64 + i % BRIDGES) as u8,
            (j / 250) as u8,
            (j % 250 + 1) as u8,
        )
    }
    /// Row 4's new address of guest 0: in its subnet, never given to another guest.
    fn changed_addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 64, 255, 254)
    }
    fn links(&self) -> usize {
        self.n / 2
    }
    /// Link k's two addresses: the k-th /30 from 10.128.0.0.
    fn link_addrs(&self, k: usize) -> [Ipv4Addr; 2] {
        let base = u32::from(Ipv4Addr::new(10, 128, 0, 0)) + 4 * k as u32;
        [Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2)]
    }
}

/// The lab file: N guests, the 4 bridges, one attach line per guest; with `links`, N/2
/// point-to-point links; `changed` moves guest 0 to its row-4 address.
fn lab_yaml(names: &Names, changed: bool, links: bool) -> String {
    let mut s = String::with_capacity(names.n * 120);
    s.push_str(&format!("lab: {}\nguests:\n", names.lab()));
    for i in 0..names.n {
        s.push_str(&format!("  g{i}: {{netns: {}}}\n", names.guest_ns(i)));
    }
    s.push_str("bridges:\n");
    for b in 0..BRIDGES {
        s.push_str(&format!("  {}: {{}}\n", names.bridge(b)));
    }
    s.push_str("attach:\n");
    for i in 0..names.n {
        let a = if changed && i == 0 {
            names.changed_addr()
        } else {
            names.addr(i)
        };
        s.push_str(&format!("  - {} g{i} {a}/16\n", names.bridge_of(i)));
    }
    if links {
        s.push_str("links:\n");
        for k in 0..names.links() {
            let [a, b] = names.link_addrs(k);
            s.push_str(&format!(
                "  - endpoints: [g{}:{LINK_IF}, g{}:{LINK_IF}]\n    ipv4: [{a}/30, {b}/30]\n",
                2 * k,
                2 * k + 1
            ));
        }
    }
    s
}

/// The lab file as pipework's own parser and checks read it (the library, in-process): a
/// generation mistake shows here, not as a confusing apply failure.
fn self_check_yaml(text: &str, n: usize, links: usize) -> R<()> {
    let lab = pipework::topology::file::parse(text.as_bytes())
        .and_then(pipework::topology::file::check)
        .map_err(|e| format!("the generated lab file does not check: {e}"))?;
    if lab.attach.len() != n || lab.links.len() != links {
        return Err(format!(
            "the generated lab file has {} attach lines and {} links, expected {n} and {links}",
            lab.attach.len(),
            lab.links.len()
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Guests: named network namespaces, as `ip netns add` makes them.

struct Guests {
    paths: Vec<PathBuf>,
}

impl Guests {
    /// One throwaway thread unshares a fresh netns per guest and bind-mounts it on
    /// /run/netns/NAME (the mount keeps it alive after the thread is gone): the same kernel
    /// state as `ip netns add NAME` without N processes (which would only slow the setup).
    fn make(names: &Names) -> R<Guests> {
        let list: Vec<PathBuf> = (0..names.n)
            .map(|i| Path::new(NETNS_DIR).join(names.guest_ns(i)))
            .collect();
        // Dropped on an error half-way: the guests made so far are unmounted.
        let (paths, r) = bind_named_netns(list)?;
        let g = Guests { paths };
        r.map(|()| g)
    }
}

impl Drop for Guests {
    fn drop(&mut self) {
        for p in &self.paths {
            lazy_umount(p);
            let _ = std::fs::remove_file(p);
        }
    }
}

/// One guest's links as seen from inside: name, ifindex, up, IPv4 addresses (sorted).
#[derive(Debug, Clone, PartialEq)]
struct Link {
    name: String,
    index: u32,
    up: bool,
    v4: Vec<(Ipv4Addr, u32)>,
}

fn own_links() -> R<Vec<Link>> {
    let mut out: Vec<Link> = list_ifaces()?
        .into_iter()
        .map(|f| {
            let c = CString::new(f.name.clone()).unwrap_or_default();
            let mut v4 = f.v4;
            v4.sort();
            Link {
                index: unsafe { libc::if_nametoindex(c.as_ptr()) },
                name: f.name,
                up: f.up,
                v4,
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Every guest's links, from two threads (one per core) that setns() from guest to guest
/// (getifaddrs dumps over a netlink socket of the thread's netns).
fn snapshot(guests: &[PathBuf]) -> R<Vec<Vec<Link>>> {
    let chunk = guests.len().div_ceil(2).max(1);
    std::thread::scope(|s| {
        let hs: Vec<_> = guests
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || -> R<Vec<Vec<Link>>> {
                    let mut out = Vec::with_capacity(part.len());
                    for p in part {
                        let f = File::open(p).map_err(|e| format!("open {}: {e}", p.display()))?;
                        if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                            return Err(os_err(&format!("setns {}", p.display())));
                        }
                        out.push(own_links()?);
                    }
                    Ok(out)
                })
            })
            .collect();
        let mut all = Vec::with_capacity(guests.len());
        for h in hs {
            all.extend(
                h.join()
                    .map_err(|_| "check thread panicked".to_string())??,
            );
        }
        Ok(all)
    })
}

/// What guest i should hold besides `lo`: (ifname, address, prefix), sorted by name.
type Want = Vec<(String, Ipv4Addr, u32)>;

fn want_attached(names: &Names, links: bool, changed: bool) -> Vec<Want> {
    (0..names.n)
        .map(|i| {
            let a = if changed && i == 0 {
                names.changed_addr()
            } else {
                names.addr(i)
            };
            let mut w = vec![("eth1".to_string(), a, 16)];
            if links && i / 2 < names.links() {
                w.push((LINK_IF.to_string(), names.link_addrs(i / 2)[i % 2], 30));
            }
            w
        })
        .collect()
}

/// A guest link as compared: name, up, addresses.
type Seen = (String, bool, Vec<(Ipv4Addr, u32)>);

/// Differences between the guests' links and `want` (the first few, and how many in all).
fn check_guests(guests: &[PathBuf], want: &[Want]) -> R<Vec<String>> {
    let snap = snapshot(guests)?;
    let mut bad = Vec::new();
    for (i, (links, w)) in snap.iter().zip(want).enumerate() {
        let got: Vec<Seen> = links
            .iter()
            .filter(|l| l.name != "lo")
            .map(|l| (l.name.clone(), l.up, l.v4.clone()))
            .collect();
        let exp: Vec<Seen> = w
            .iter()
            .map(|(n, a, p)| (n.clone(), true, vec![(*a, *p)]))
            .collect();
        if got != exp {
            bad.push(format!("guest g{i}: has {got:?}, expected {exp:?}"));
        }
    }
    Ok(summarize(bad))
}

fn summarize(mut bad: Vec<String>) -> Vec<String> {
    let n = bad.len();
    if n > 3 {
        bad.truncate(3);
        bad.push(format!("... {} more like these", n - 3));
    }
    bad
}

/// Waits until every guest is back to `lo` only (the kernel deletes veths asynchronously);
/// how long that took.
fn wait_clean(guests: &[PathBuf], timeout: Duration) -> R<Duration> {
    let t0 = Instant::now();
    loop {
        check_stop()?;
        let dirty = snapshot(guests)?
            .iter()
            .filter(|l| l.iter().any(|x| x.name != "lo"))
            .count();
        if dirty == 0 {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > timeout {
            return Err(format!(
                "{dirty} guests still have links other than lo {timeout:?} after the teardown"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// After a variant: every guest back to `lo` only. If a teardown left links behind (a lab
/// command that failed), they are deleted here, untimed, so the next variant starts clean; that
/// is a problem of the variant, listed.
fn reset_guests(guests: &Guests, label: &str, problems: &mut Vec<String>) -> R<()> {
    let guests = &guests.paths;
    if let Err(e) = wait_clean(guests, Duration::from_secs(10)) {
        problems.push(format!("{label}: {e}; deleted by the bench"));
        let snap = snapshot(guests)?;
        for (p, links) in guests.iter().zip(&snap) {
            let ns = File::open(p).map_err(|e| format!("open {}: {e}", p.display()))?;
            for l in links.iter().filter(|l| l.name != "lo") {
                // A veth's peer may be gone with its other end already.
                let _ = run_in(ns.as_raw_fd(), "ip", &["link", "del", &l.name]);
            }
        }
        wait_clean(guests, CLEAN_TIMEOUT)?;
    }
    Ok(())
}

/// The lab makes a missing named netns in the machine's mount namespace (PID 1's), not in the
/// bench's private one: if it ever missed the bench's guests and made its own, they would be on
/// the machine. Any such `/run/netns/pwbt<id>-*` there is a problem, and is removed with
/// `ip netns delete` run in that mount namespace (only names of this bench).
fn sweep_machine_netns(names: &Names, problems: &mut Vec<String>) {
    let dir = Path::new("/proc/1/root").join(NETNS_DIR.trim_start_matches('/'));
    let mine = format!("{}-", names.prefix());
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with(&mine) {
            continue;
        }
        let mut c = Command::new("nsenter");
        c.args(["--mount=/proc/1/ns/mnt", "ip", "netns", "delete", &name]);
        let how = match output_of(c, "nsenter", &["ip", "netns", "delete", &name]) {
            Ok(_) => "removed".to_string(),
            Err(e) => format!("could not remove it: {e}"),
        };
        problems.push(format!(
            "the lab made {NETNS_DIR}/{name} in the machine's mount namespace ({how})"
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// The host netns: its links as `ip -j -d link` reports them.

#[derive(Debug, Clone, PartialEq)]
struct HostLink {
    name: String,
    index: u64,
    kind: String,
    master: String,
    flags: String,
}

fn host_links(host: &HostNs) -> R<Vec<HostLink>> {
    let out = run_in(host.raw(), "ip", &["-j", "-d", "link", "show"])?;
    let v: Value =
        serde_json::from_str(out.trim()).map_err(|e| format!("parse `ip -j -d link show`: {e}"))?;
    let mut links: Vec<HostLink> = v
        .as_array()
        .ok_or("`ip -j link` is not a list")?
        .iter()
        .map(|l| HostLink {
            name: l["ifname"].as_str().unwrap_or_default().to_string(),
            index: l["ifindex"].as_u64().unwrap_or_default(),
            kind: l["linkinfo"]["info_kind"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            master: l["master"].as_str().unwrap_or_default().to_string(),
            flags: l["flags"].to_string(),
        })
        .collect();
    links.sort_by_key(|l| l.index);
    Ok(links)
}

/// The attach end state in the host netns: the 4 bridges, N/4 ports on each (guest i's on
/// bridge i % 4).
fn check_host(host: &HostNs, names: &Names) -> R<Vec<String>> {
    let links = host_links(host)?;
    let mut bad = Vec::new();
    for b in 0..BRIDGES {
        let br = names.bridge(b);
        let want = (0..names.n).filter(|i| i % BRIDGES == b).count();
        let exists = links.iter().any(|l| l.name == br && l.kind == "bridge");
        let ports = links.iter().filter(|l| l.master == br).count();
        if !exists || ports != want {
            bad.push(format!(
                "bridge {br}: exists={exists}, {ports} ports, expected {want}"
            ));
        }
    }
    Ok(bad)
}

// ---------------------------------------------------------------------------------------------
// Processes: spawned with stdout and stderr to files on the tmpfs (no pipe to drain), stdin
// fed when given, reaped with wait4 for their own rusage.

struct Run {
    ms: f64,
    cpu_ms: f64,
    ok: bool,
    status: String,
    stdout: String,
    stderr: String,
}

impl Run {
    fn describe(&self) -> String {
        let cut = |s: &str| s.trim().chars().take(600).collect::<String>();
        format!(
            "{}; stdout: {}; stderr: {}",
            self.status,
            cut(&self.stdout),
            cut(&self.stderr)
        )
    }
}

fn timed(world: &World, mut c: Command, stdin: Option<&[u8]>) -> R<Run> {
    let (out_p, err_p) = (world.path("out"), world.path("err"));
    let out = File::create(&out_p).map_err(|e| format!("create {}: {e}", out_p.display()))?;
    let err = File::create(&err_p).map_err(|e| format!("create {}: {e}", err_p.display()))?;
    c.stdout(Stdio::from(out)).stderr(Stdio::from(err));
    c.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let t0 = Instant::now();
    let mut child = c
        .spawn()
        .map_err(|e| format!("spawn {:?}: {e}", c.get_program()))?;
    if let (Some(data), Some(mut w)) = (stdin, child.stdin.take()) {
        // An early exit of the child shows in its status; EPIPE here says nothing more.
        let _ = w.write_all(data);
    }
    let mut run = reap(child, t0)?;
    run.stdout = std::fs::read_to_string(&out_p).unwrap_or_default();
    run.stderr = std::fs::read_to_string(&err_p).unwrap_or_default();
    Ok(run)
}

fn reap(child: Child, t0: Instant) -> R<Run> {
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == pid {
            break;
        }
        if r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return Err(os_err("wait4"));
    }
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    // Reaped already: dropping a std Child neither waits nor kills.
    drop(child);
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
    Ok(Run {
        ms,
        cpu_ms: tv_ms(ru.ru_utime) + tv_ms(ru.ru_stime),
        ok,
        status,
        stdout: String::new(),
        stderr: String::new(),
    })
}

/// `pipework ARGS` in `host` with its own runtime dir.
fn pw(bin: &Path, host: &HostNs, rt: &Path, args: &[&str]) -> Command {
    let mut c = cmd_in(host.raw(), bin);
    c.args(args).env("PIPEWORK_RUNTIME_DIR", rt);
    c
}

fn must(label: &str, r: Run) -> R<Run> {
    if r.ok {
        Ok(r)
    } else {
        Err(format!("{label} failed: {}", r.describe()))
    }
}

// ---------------------------------------------------------------------------------------------
// Rows.

#[derive(Default)]
struct Row {
    label: String,
    /// Wall time of each run, ms.
    wall: Vec<f64>,
    /// CPU time (user + system) of each run, ms.
    cpu: Vec<f64>,
    /// Processes per run.
    procs: usize,
    changes: Option<String>,
    target_ms: Option<f64>,
    /// Baseline walls to compare against: (name, ms).
    vs: Vec<(&'static str, f64)>,
    skipped: Option<String>,
    note: Option<String>,
}

fn p50(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s[(s.len() - 1) / 2]
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::min)
}

/// The number of changes an `apply --json` report gives, under whatever name it uses: a
/// top-level number (or list, counted) whose key speaks of changes or writes.
fn change_count(stdout: &str) -> Option<String> {
    let v: Value = serde_json::from_str(stdout.trim()).ok()?;
    let obj = v.as_object()?;
    let keys = [
        "changes",
        "changed",
        "netlink_writes",
        "writes",
        "actions",
        "ops",
    ];
    for k in keys {
        match obj.get(k) {
            Some(Value::Number(n)) => return Some(n.to_string()),
            Some(Value::Array(a)) => return Some(a.len().to_string()),
            _ => {}
        }
    }
    obj.iter().find_map(|(k, v)| match v {
        Value::Number(n) if k.contains("change") || k.contains("write") => Some(n.to_string()),
        _ => None,
    })
}

/// `+`/`~`/`-` lines of a plan.
fn diff_lines(plan: &str) -> usize {
    plan.lines()
        .filter(|l| l.trim_start().starts_with(['+', '~', '-']))
        .count()
}

/// Whether the binary knows the lab commands: `plan` of the lab file in a throwaway host netns
/// (it changes nothing; today's grammar would read it as a bridge named "plan" and refuse the
/// line for want of an address).
fn lab_probe(world: &World, bin: &Path, file: &Path) -> Result<(), String> {
    let host = HostNs::new()?;
    let rt = world.runtime_dir("rt-probe")?;
    let f = file.to_str().ok_or("non-UTF-8 path")?;
    let r = timed(world, pw(bin, &host, &rt, &["plan", f]), None)?;
    if r.ok {
        if diff_lines(&r.stdout) == 0 {
            println!("  note: `pipework plan` of the unapplied lab printed no +/~/- line");
        }
        Ok(())
    } else {
        let first = r
            .stderr
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        Err(format!("`pipework plan` answered {}: {first}", r.status))
    }
}

struct LabOut {
    rows: Vec<Row>,
}

/// Rows 1-6 in one host netns.
#[allow(clippy::too_many_arguments)]
fn lab_rows(
    world: &World,
    bin: &Path,
    names: &Names,
    guests: &Guests,
    reps: usize,
    files: &LabFiles,
    problems: &mut Vec<String>,
) -> R<LabOut> {
    let host = HostNs::new()?;
    let rt = world.runtime_dir("rt-lab")?;
    let s = |p: &Path| p.to_str().unwrap_or_default().to_string();
    let (f_base, f_changed, f_links) = (s(&files.base), s(&files.changed), s(&files.links));
    let mut rows = Vec::new();
    let n = names.n;

    // 1. apply.
    check_stop()?;
    let r = must(
        "apply",
        timed(
            world,
            pw(bin, &host, &rt, &["apply", &f_base, "--json"]),
            None,
        )?,
    )?;
    for p in check_host(&host, names)? {
        problems.push(format!("after apply: {p}"));
    }
    for p in check_guests(&guests.paths, &want_attached(names, false, false))? {
        problems.push(format!("after apply: {p}"));
    }
    rows.push(Row {
        label: format!("1 apply: {n} guests, {BRIDGES} bridges"),
        wall: vec![r.ms],
        cpu: vec![r.cpu_ms],
        procs: 1,
        changes: change_count(&r.stdout),
        target_ms: Some(TARGET_APPLY_MS),
        ..Default::default()
    });

    // 2. plan of the applied lab.
    let mut row = Row {
        label: "2 plan (applied lab)".into(),
        procs: 1,
        target_ms: Some(TARGET_PLAN_MS),
        ..Default::default()
    };
    for k in 0..reps {
        check_stop()?;
        let r = must(
            "plan",
            timed(world, pw(bin, &host, &rt, &["plan", &f_base]), None)?,
        )?;
        let d = diff_lines(&r.stdout);
        if d > 0 && k == 0 {
            problems.push(format!(
                "plan of the applied lab: {d} +/~/- lines, e.g. {:?}",
                r.stdout.lines().next().unwrap_or_default()
            ));
        }
        row.wall.push(r.ms);
        row.cpu.push(r.cpu_ms);
    }
    rows.push(row);

    // 3. no-op re-apply: the host's and the guests' links must be the same afterwards.
    let before = (host_links(&host)?, snapshot(&guests.paths)?);
    let mut row = Row {
        label: "3 no-op re-apply".into(),
        procs: 1,
        target_ms: Some(TARGET_NOOP_MS),
        ..Default::default()
    };
    for _ in 0..reps {
        check_stop()?;
        let r = must(
            "no-op apply",
            timed(
                world,
                pw(bin, &host, &rt, &["apply", &f_base, "--json"]),
                None,
            )?,
        )?;
        row.changes = change_count(&r.stdout).or(row.changes);
        row.wall.push(r.ms);
        row.cpu.push(r.cpu_ms);
    }
    if let Some(c) = row.changes.as_deref().filter(|c| *c != "0") {
        problems.push(format!(
            "no-op apply: its JSON report counts {c} changes (zero netlink writes promised)"
        ));
    }
    let after = (host_links(&host)?, snapshot(&guests.paths)?);
    if before.0 != after.0 {
        problems
            .push("no-op apply: the host netns' links changed (ifindex, flags or master)".into());
    }
    let moved = before
        .1
        .iter()
        .zip(&after.1)
        .filter(|(a, b)| a != b)
        .count();
    if moved > 0 {
        problems.push(format!(
            "no-op apply: {moved} guests' links changed (ifindex, flags or addresses)"
        ));
    }
    row.note = Some(if before == after {
        "host and guest links unchanged".into()
    } else {
        "links changed!".into()
    });
    rows.push(row);

    // 4. one address changed, alternating between the changed and the original file.
    let mut row = Row {
        label: "4 one address changed + apply".into(),
        procs: 1,
        target_ms: Some(TARGET_CHANGE_MS),
        ..Default::default()
    };
    let g0 = &guests.paths[..1];
    let mut last_changed = false;
    for k in 0..reps {
        check_stop()?;
        let changed = k % 2 == 0;
        let f = if changed { &f_changed } else { &f_base };
        let r = must(
            "apply (one address changed)",
            timed(world, pw(bin, &host, &rt, &["apply", f, "--json"]), None)?,
        )?;
        row.changes = change_count(&r.stdout).or(row.changes);
        row.wall.push(r.ms);
        row.cpu.push(r.cpu_ms);
        let want = vec![want_attached(names, false, changed).swap_remove(0)];
        for p in check_guests(g0, &want)? {
            problems.push(format!("after the address change #{k}: {p}"));
        }
        last_changed = changed;
    }
    rows.push(row);

    // 5. links: the lab as it is now, plus N/2 links.
    check_stop()?;
    let f = if last_changed {
        &f_links
    } else {
        &s(&files.links_base)
    };
    let r = must(
        "apply (links)",
        timed(world, pw(bin, &host, &rt, &["apply", f, "--json"]), None)?,
    )?;
    for p in check_guests(&guests.paths, &want_attached(names, true, last_changed))? {
        problems.push(format!("after applying the links: {p}"));
    }
    rows.push(Row {
        label: format!("5 apply +{} p2p links", names.links()),
        wall: vec![r.ms],
        cpu: vec![r.cpu_ms],
        procs: 1,
        changes: change_count(&r.stdout),
        target_ms: Some(TARGET_LINKS_MS),
        ..Default::default()
    });

    // 6. destroy.
    check_stop()?;
    let lab = names.lab();
    let r = must(
        "destroy",
        timed(world, pw(bin, &host, &rt, &["destroy", &lab]), None)?,
    )?;
    let left: Vec<String> = host_links(&host)?
        .into_iter()
        .filter(|l| l.name != "lo")
        .map(|l| l.name)
        .collect();
    if !left.is_empty() {
        problems.push(format!(
            "after destroy: {} links left in the host netns ({})",
            left.len(),
            left.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    let clean = wait_clean(&guests.paths, CLEAN_TIMEOUT);
    let missing = guests.paths.iter().filter(|p| !p.exists()).count();
    if missing > 0 {
        problems.push(format!(
            "after destroy: {missing} of the guests' named namespaces are gone (the lab did not make them)"
        ));
    }
    let note = match &clean {
        Ok(t) => format!(
            "guests back to lo {:.0} ms after it returned",
            t.as_secs_f64() * 1e3
        ),
        Err(e) => {
            problems.push(format!("after destroy: {e}"));
            "guests not clean".into()
        }
    };
    rows.push(Row {
        label: "6 destroy".into(),
        wall: vec![r.ms],
        cpu: vec![r.cpu_ms],
        procs: 1,
        target_ms: Some(TARGET_DESTROY_MS),
        note: Some(note),
        ..Default::default()
    });
    drop(host);
    Ok(LabOut { rows })
}

struct Baseline {
    setup: Row,
    teardown: Row,
}

/// Baseline a: N `pipework BR netns:NAME IP/16`, then `pipework detach --all`.
fn baseline_a(
    world: &World,
    bin: &Path,
    names: &Names,
    guests: &Guests,
    problems: &mut Vec<String>,
) -> R<Baseline> {
    let host = HostNs::new()?;
    let rt = world.runtime_dir("rt-a")?;
    let mut each = Vec::with_capacity(names.n);
    let mut cpu = 0.0;
    let t0 = Instant::now();
    for i in 0..names.n {
        check_stop()?;
        let g = format!("netns:{}", names.guest_ns(i));
        let ip = format!("{}/16", names.addr(i));
        let br = names.bridge_of(i);
        let r = must(
            &format!("`pipework {br} {g} {ip}`"),
            timed(world, pw(bin, &host, &rt, &[&br, &g, &ip]), None)?,
        )?;
        each.push(r.ms);
        cpu += r.cpu_ms;
    }
    let total = t0.elapsed().as_secs_f64() * 1e3;
    for p in check_host(&host, names)? {
        problems.push(format!("baseline a: {p}"));
    }
    for p in check_guests(&guests.paths, &want_attached(names, false, false))? {
        problems.push(format!("baseline a: {p}"));
    }
    check_stop()?;
    let d = must(
        "`pipework detach --all`",
        timed(world, pw(bin, &host, &rt, &["detach", "--all"]), None)?,
    )?;
    let ends = host_links(&host)?
        .into_iter()
        .filter(|l| l.kind == "veth")
        .count();
    if ends > 0 {
        problems.push(format!(
            "baseline a: {ends} host ends left after detach --all"
        ));
    }
    let clean = wait_clean(&guests.paths, CLEAN_TIMEOUT)?;
    drop(host);
    Ok(Baseline {
        setup: Row {
            label: format!("a {} x pipework BR netns:NAME IP", names.n),
            wall: vec![total],
            cpu: vec![cpu],
            procs: names.n,
            note: Some(format!("p50 {:.2} ms per attach", p50(&each))),
            ..Default::default()
        },
        teardown: Row {
            label: "a pipework detach --all".into(),
            wall: vec![d.ms],
            cpu: vec![d.cpu_ms],
            procs: 1,
            note: Some(format!(
                "guests back to lo {:.0} ms after it returned",
                clean.as_secs_f64() * 1e3
            )),
            ..Default::default()
        },
    })
}

/// Baseline b: one `ip -batch -` in the host netns, N `ip -n NAME -batch -`; one `ip -batch -`
/// deleting the host ends and bridges.
fn baseline_b(
    world: &World,
    names: &Names,
    guests: &Guests,
    problems: &mut Vec<String>,
) -> R<Baseline> {
    let host = HostNs::new()?;
    let mut script = String::with_capacity(names.n * 96);
    for b in 0..BRIDGES {
        let br = names.bridge(b);
        script.push_str(&format!("link add {br} type bridge\nlink set {br} up\n"));
    }
    for i in 0..names.n {
        script.push_str(&format!(
            "link add {} master {} up type veth peer name eth1 netns {}\n",
            names.host_end(i),
            names.bridge_of(i),
            names.guest_ns(i)
        ));
    }
    check_stop()?;
    let t0 = Instant::now();
    let mut c = cmd_in(host.raw(), "ip");
    c.args(["-batch", "-"]);
    let hr = must(
        "`ip -batch -` (host side)",
        timed(world, c, Some(script.as_bytes()))?,
    )?;
    let mut cpu = hr.cpu_ms;
    for i in 0..names.n {
        check_stop()?;
        let ns = names.guest_ns(i);
        let lines = format!("addr add {}/16 dev eth1\nlink set eth1 up\n", names.addr(i));
        let mut c = Command::new("ip");
        c.args(["-n", &ns, "-batch", "-"]);
        let r = must(
            &format!("`ip -n {ns} -batch -`"),
            timed(world, c, Some(lines.as_bytes()))?,
        )?;
        cpu += r.cpu_ms;
    }
    let total = t0.elapsed().as_secs_f64() * 1e3;
    for p in check_host(&host, names)? {
        problems.push(format!("baseline b: {p}"));
    }
    for p in check_guests(&guests.paths, &want_attached(names, false, false))? {
        problems.push(format!("baseline b: {p}"));
    }
    let mut del = String::with_capacity(names.n * 24);
    for i in 0..names.n {
        del.push_str(&format!("link del {}\n", names.host_end(i)));
    }
    for b in 0..BRIDGES {
        del.push_str(&format!("link del {}\n", names.bridge(b)));
    }
    check_stop()?;
    let mut c = cmd_in(host.raw(), "ip");
    c.args(["-batch", "-"]);
    let d = must(
        "`ip -batch -` (link del)",
        timed(world, c, Some(del.as_bytes()))?,
    )?;
    let left = host_links(&host)?.iter().filter(|l| l.name != "lo").count();
    if left > 0 {
        problems.push(format!(
            "baseline b: {left} host links left after ip -batch link del"
        ));
    }
    let clean = wait_clean(&guests.paths, CLEAN_TIMEOUT)?;
    drop(host);
    Ok(Baseline {
        setup: Row {
            label: format!("b ip -batch + {} x ip -n -batch", names.n),
            wall: vec![total],
            cpu: vec![cpu],
            procs: names.n + 1,
            note: Some(format!("host-side batch alone {:.0} ms", hr.ms)),
            ..Default::default()
        },
        teardown: Row {
            label: "b ip -batch link del".into(),
            wall: vec![d.ms],
            cpu: vec![d.cpu_ms],
            procs: 1,
            note: Some(format!(
                "guests back to lo {:.0} ms after it returned",
                clean.as_secs_f64() * 1e3
            )),
            ..Default::default()
        },
    })
}

// ---------------------------------------------------------------------------------------------
// Output.

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "{:<38} {:>5} {:>5} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8}  target / notes",
        "row", "runs", "procs", "wall_ms", "min_ms", "cpu_ms", "changes", "vs_a", "vs_b"
    );
    for r in rows {
        if let Some(why) = &r.skipped {
            println!("{:<38} {why}", r.label);
            continue;
        }
        let w = p50(&r.wall);
        let ratio = |name: &str| {
            r.vs.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, b)| format!("{:.1}x", b / w))
                .unwrap_or_else(|| "-".into())
        };
        let mut t = match r.target_ms {
            Some(t) => format!("<= {t:.0} ms: {}", if w <= t { "met" } else { "OVER" }),
            None => "(baseline)".into(),
        };
        if let Some(n) = &r.note {
            t.push_str(&format!("; {n}"));
        }
        println!(
            "{:<38} {:>5} {:>5} {:>9.1} {:>9.1} {:>9.1} {:>8} {:>8} {:>8}  {t}",
            r.label,
            r.wall.len(),
            r.procs,
            w,
            min(&r.wall),
            p50(&r.cpu),
            r.changes.as_deref().unwrap_or("-"),
            ratio("a"),
            ratio("b"),
        );
    }
}

struct LabFiles {
    base: PathBuf,
    changed: PathBuf,
    /// Links on top of the changed file (row 4 leaves it applied with an odd repetition count).
    links: PathBuf,
    /// Links on top of the original file (an even count).
    links_base: PathBuf,
}

fn write_files(world: &World, names: &Names) -> R<LabFiles> {
    let files = LabFiles {
        base: world.path("lab.yaml"),
        changed: world.path("lab-changed.yaml"),
        links: world.path("lab-links.yaml"),
        links_base: world.path("lab-links-base.yaml"),
    };
    for (p, changed, links) in [
        (&files.base, false, false),
        (&files.changed, true, false),
        (&files.links, true, true),
        (&files.links_base, false, true),
    ] {
        let text = lab_yaml(names, changed, links);
        self_check_yaml(&text, names.n, if links { names.links() } else { 0 })?;
        std::fs::write(p, text).map_err(|e| format!("write {}: {e}", p.display()))?;
    }
    Ok(files)
}

fn run() -> R<()> {
    if unsafe { libc::geteuid() } != 0 {
        println!("topology bench: skipped, needs root (namespaces, veth, bridges)");
        return Ok(());
    }
    match std::env::var("PIPEWORK_BENCH_ONLY").as_deref() {
        Ok("topology") | Ok("") | Err(_) => {}
        Ok(other) => {
            println!("topology bench: skipped (PIPEWORK_BENCH_ONLY={other})");
            return Ok(());
        }
    }
    let n = env_usize("PIPEWORK_BENCH_TOPO_N", DEFAULT_N)?;
    if !(2..=MAX_N).contains(&n) {
        return Err(format!(
            "PIPEWORK_BENCH_TOPO_N={n}: 2..={MAX_N} ({BRIDGES} bridges of at most 1,024 ports)"
        ));
    }
    let reps = env_usize("PIPEWORK_BENCH_TOPO_REPS", DEFAULT_REPS)?.max(1);
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

    // First, while the bench has one thread.
    let world = World::enter()?;
    let names = Names {
        id: base36(std::process::id()),
        n,
    };
    println!(
        "pipework topology bench: binary {}, N = {n}, {reps} repetitions of the cheap rows, names {}-*, lab {}",
        bin.display(),
        names.prefix(),
        names.lab()
    );
    println!(
        "  private mount namespace: guests on a tmpfs at {NETNS_DIR}, files and runtime dirs on one at {}",
        world.root.display()
    );
    let files = write_files(&world, &names)?;

    let t = Instant::now();
    let guests = Guests::make(&names)?;
    let made_ms = t.elapsed().as_secs_f64() * 1e3;
    println!(
        "  {n} named netns made in {made_ms:.0} ms ({:.2} ms each; unshare + bind mount, as `ip netns add`)",
        made_ms / n as f64
    );

    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let lab = match lab_probe(&world, &bin, &files.base) {
        Ok(()) => {
            let t = Instant::now();
            let out = lab_rows(&world, &bin, &names, &guests, reps, &files, &mut problems);
            println!("  lab rows done in {:.1} s", t.elapsed().as_secs_f64());
            match out {
                Ok(o) => Some(o),
                Err(e) => {
                    problems.push(format!("lab rows: {e}"));
                    None
                }
            }
        }
        Err(why) => {
            println!("  lab rows {SKIPPED} ({why})");
            notes.push(format!("lab rows {SKIPPED}: {why}"));
            None
        }
    };
    sweep_machine_netns(&names, &mut problems);
    reset_guests(&guests, "lab", &mut problems)?;

    let t = Instant::now();
    let a = baseline_a(&world, &bin, &names, &guests, &mut problems)?;
    println!("  baseline a done in {:.1} s", t.elapsed().as_secs_f64());
    reset_guests(&guests, "baseline a", &mut problems)?;
    let t = Instant::now();
    let b = baseline_b(&world, &names, &guests, &mut problems)?;
    println!("  baseline b done in {:.1} s", t.elapsed().as_secs_f64());
    reset_guests(&guests, "baseline b", &mut problems)?;

    let t = Instant::now();
    drop(guests);
    println!(
        "  {n} named netns unmounted in {:.0} ms (the kernel frees them in the background)",
        t.elapsed().as_secs_f64() * 1e3
    );

    let mut rows = match lab {
        Some(mut o) => {
            for r in &mut o.rows {
                if r.label.starts_with("1 ") {
                    r.vs = vec![("a", a.setup.wall[0]), ("b", b.setup.wall[0])];
                }
                if r.label.starts_with("6 ") {
                    r.vs = vec![("a", a.teardown.wall[0]), ("b", b.teardown.wall[0])];
                }
            }
            o.rows
        }
        None => [
            format!("1 apply: {n} guests, {BRIDGES} bridges"),
            "2 plan (applied lab)".into(),
            "3 no-op re-apply".into(),
            "4 one address changed + apply".into(),
            format!("5 apply +{} p2p links", names.links()),
            "6 destroy".into(),
        ]
        .into_iter()
        .map(|label| Row {
            label,
            skipped: Some(SKIPPED.into()),
            ..Default::default()
        })
        .collect(),
    };
    rows.extend([a.setup, a.teardown, b.setup, b.teardown]);
    println!();
    println!("== topology: lab of {n} guests on {BRIDGES} bridges, beside the same attaches by N pipework processes (a) and by iproute2 (b) ==");
    print_table(&rows);
    println!();
    println!("wall_ms: spawn to reap (p50 over the runs; a baseline row: its whole sequence of processes); min_ms: the fastest run;");
    println!("  cpu_ms: user + system CPU of the process(es), wait4's rusage (p50 over runs; a baseline: the sum over its processes).");
    println!("  vs_a / vs_b = the baseline's wall time / the row's (rows 1 and 6: setup vs setup, teardown vs teardown).");
    println!("  changes: what `apply --json` reports as its count of changes, if it does.");
    println!("a: one `pipework BR netns:NAME 10.(64+b).x.y/16` process per guest, one after the other; `pipework detach --all`.");
    println!("b: one `ip -batch -` in the host netns (bridges; per guest `link add H master BR up type veth peer name eth1 netns NAME`)");
    println!("  and per guest one `ip -n NAME -batch -` (`addr add`, `link set eth1 up`); teardown one `ip -batch -` of `link del`s.");
    println!("Targets (issue 11, for N = 1000, never asserted): apply <= 1 s, plan and no-op apply <= 300 ms, one changed address");
    println!("  <= 100 ms, N/2 links <= 1 s, destroy <= 1 s.");
    for n in &notes {
        println!("note: {n}");
    }
    if problems.is_empty() {
        println!("checks: every variant's bridges, ports and guest addresses as expected; nothing left after each teardown");
        Ok(())
    } else {
        for p in &problems {
            println!("problem: {p}");
        }
        Err(format!("{} problems (listed above)", problems.len()))
    }
}

fn main() {
    bench_main("topology", run);
}
