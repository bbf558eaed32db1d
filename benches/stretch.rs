//! Multi-host benchmark (issue 12, "Speed and scale"): a lab stretched over three simulated
//! hosts with N guests per host (PIPEWORK_BENCH_STRETCH_N, default 300), beside a one-host lab
//! of the same N guests in the same run, and TCP throughput across the VXLAN beside the same
//! bridge.
//!
//! Run as root: `cargo bench --bench stretch`, or `PIPEWORK_BENCH_ONLY=stretch scripts/bench.sh`
//! (which builds the release binary first; the full `scripts/bench.sh` runs it last).
//!
//! Nothing outside the bench's own namespaces is touched: the bench unshares its mount
//! namespace and mounts a tmpfs on /run/netns, seen only by itself and its children. Every
//! namespace is a named one there: the underlay `pwbs<id>-ul` (a bridge `sw`), the hosts
//! `pwbs<id>-a` .. `-d` (a veth `ul0` on `sw`, 10.251.0.K/24), the one-host baseline's host
//! `pwbs<id>-solo`, and the guests `pwbs<id>-<host><i>`. A second tmpfs holds the lab files and
//! each host's PIPEWORK_RUNTIME_DIR. A SIGKILLed bench leaves nothing: its mount namespace,
//! and with it every namespace, goes with it.
//!
//! Rows (wall time spawn to exit, printed, never asserted):
//! 1. baseline: `pipework apply solo.yaml --json` in the solo host, N guests on one bridge, no
//!    `hosts:`;
//! 2. `pipework apply lab.yaml --host a --json`: the same N guests on a's share of a bridge with
//!    VNI 100 stretched over a, b and c (VXLAN port and flood entries included; target <= 1 s),
//!    then the same on b and c; checked: every guest of a up with its address, a's flood list
//!    is b and c, a guest on a reaches one on c over TCP;
//! 3. `pipework plan lab.yaml --host a`, R times (PIPEWORK_BENCH_STRETCH_REPS, default 5):
//!    checked: no change line;
//! 4. the no-op `apply --host a --json`, R times: checked: 0 changes and 0 netlink writes;
//! 5. a fourth host d (D guests, PIPEWORK_BENCH_STRETCH_D, default 10) in the file, applied on d,
//!    then `apply --host a --json`: checked: exactly one change, `~ vxlan pwvx100 peers`;
//! 6. `pipework destroy` on a (then b, c, d, solo): checked: each host back to `lo` and `ul0`,
//!    each guest back to `lo`.
//!
//! PIPEWORK_BENCH_STRETCH_IPV6=0 turns IPv6 off in every namespace of the bench first: a new
//! guest port's IPv6 chatter (DAD, router solicitation, MLD) is flooded by the bridge, through
//! the VXLAN port to every other host and there into every guest, which on one kernel is CPU the
//! apply competes with (on real hosts it is the other machines').
//!
//! Throughput (PIPEWORK_BENCH_STRETCH_SECS seconds each, default 3; 0 skips): one TCP stream
//! between two guests, the bench's own threads entering their namespaces (setns) and writing
//! 256 KiB at a time, first on the same bridge of host a, then from a guest on b to one on a
//! across the VXLAN; the ratio is printed. All the "hosts" share one kernel, so the VXLAN row
//! measures the encapsulation's cost, not a wire.

#[path = "support/mod.rs"]
mod support;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

use serde_json::Value;

const DEFAULT_N: usize = 300;
const DEFAULT_D: usize = 10;
const DEFAULT_REPS: usize = 5;
const DEFAULT_SECS: usize = 3;
const MAX_N: usize = 1000;
const VNI: u32 = 100;
const VXLAN: &str = "pwvx100";
const BRIDGE: &str = "brst";
const TARGET_APPLY_MS: f64 = 1000.0;
const NETNS_DIR: &str = "/run/netns";
const WORLD_PREFIX: &str = "/tmp/pwb-stretch-";
const CLEAN_TIMEOUT: Duration = Duration::from_secs(120);
const HOSTS: [&str; 4] = ["a", "b", "c", "d"];
const TCP_PORT: u16 = 5201;

// ---------------------------------------------------------------------------------------------
// The private world.

struct World {
    root: PathBuf,
    netns_mounted: bool,
    made_netns_dir: bool,
    /// Every named namespace made (unmounted on drop, lazily: what is inside goes with it).
    named: Vec<PathBuf>,
}

impl World {
    fn enter() -> R<World> {
        let root = private_world(WORLD_PREFIX)?;
        let netns = Path::new(NETNS_DIR);
        let made_netns_dir = !netns.is_dir();
        let mut w = World {
            root,
            netns_mounted: false,
            made_netns_dir,
            named: Vec::new(),
        };
        if made_netns_dir {
            std::fs::DirBuilder::new()
                .mode(0o755)
                .create(netns)
                .map_err(|e| format!("mkdir {NETNS_DIR}: {e}"))?;
        }
        mount_tmpfs(&w.root, "mode=0700,size=64m", false)?;
        mount_tmpfs(netns, "mode=0755,size=16m", false)?;
        w.netns_mounted = true;
        Ok(w)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Named namespaces in the bench's /run/netns (support::bind_named_netns).
    fn make_named(&mut self, names: &[String]) -> R<()> {
        let list: Vec<PathBuf> = names.iter().map(|n| Path::new(NETNS_DIR).join(n)).collect();
        let (made, r) = bind_named_netns(list)?;
        self.named.extend(made);
        r
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for p in &self.named {
            lazy_umount(p);
            let _ = std::fs::remove_file(p);
        }
        if self.netns_mounted {
            lazy_umount(Path::new(NETNS_DIR));
        }
        if self.made_netns_dir {
            let _ = std::fs::remove_dir(NETNS_DIR);
        }
        lazy_umount(&self.root);
        let _ = std::fs::remove_dir(&self.root);
    }
}

/// An open named namespace.
fn ns_fd(name: &str) -> R<File> {
    let p = Path::new(NETNS_DIR).join(name);
    File::open(&p).map_err(|e| format!("open {}: {e}", p.display()))
}

/// `ip ARGS` inside the named namespace `ns`.
fn ip(ns: &str, args: &[&str]) -> R<String> {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    let mut c = Command::new("ip");
    c.args(&all);
    output_of(c, "ip", &all)
}

/// Runs `f` on a thread that entered the named namespace `ns` first.
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> R<T> + Send + 'static) -> R<T> {
    let fd = ns_fd(ns)?;
    std::thread::spawn(move || -> R<T> {
        if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(os_err("setns"));
        }
        f()
    })
    .join()
    .map_err(|_| "namespace thread panicked".to_string())?
}

// ---------------------------------------------------------------------------------------------
// Names, addresses and files.

struct Names {
    id: String,
    n: usize,
    d: usize,
}

impl Names {
    fn ns(&self, what: &str) -> String {
        format!("pwbs{}-{what}", self.id)
    }
    fn lab(&self) -> String {
        format!("bs{}", self.id)
    }
    /// Guests per host: N on a, b, c and the solo baseline, D on d.
    fn count(&self, host: &str) -> usize {
        if host == "d" {
            self.d
        } else {
            self.n
        }
    }
    fn guest(&self, host: &str, i: usize) -> String {
        self.ns(&format!("{host}{i}"))
    }
    fn underlay(host: &str) -> Ipv4Addr {
        let k = HOSTS.iter().position(|h| *h == host).unwrap_or(0);
        Ipv4Addr::new(10, 251, 0, k as u8 + 1)
    }
    /// Guest i of `host` in 10.96.0.0/12: every host its own /16 in it.
    fn addr(host: &str, i: usize) -> Ipv4Addr {
        let k = match host {
            "solo" => 9,
            h => HOSTS.iter().position(|x| *x == h).unwrap_or(0),
        };
        Ipv4Addr::new(10, 96 + k as u8, (i / 250) as u8, (i % 250 + 1) as u8)
    }
}

/// The stretched lab over `hosts`; with `hosts` = ["solo"], the one-host baseline (no
/// `hosts:`, no VNI).
fn lab_yaml(names: &Names, hosts: &[&str]) -> String {
    let solo = hosts == ["solo"];
    let mut y = format!("lab: {}{}\n", names.lab(), if solo { "solo" } else { "" });
    if !solo {
        y.push_str("hosts:\n");
        for h in hosts {
            y.push_str(&format!("  {h}: {}\n", Names::underlay(h)));
        }
    }
    y.push_str("guests:\n");
    for h in hosts {
        for i in 0..names.count(h) {
            let place = if solo {
                String::new()
            } else {
                format!(", host: {h}")
            };
            y.push_str(&format!(
                "  {h}{i}: {{netns: {}{place}}}\n",
                names.guest(h, i)
            ));
        }
    }
    if solo {
        y.push_str(&format!("bridges:\n  {BRIDGE}: {{}}\nattach:\n"));
    } else {
        y.push_str(&format!("bridges:\n  {BRIDGE}: {{vni: {VNI}}}\nattach:\n"));
    }
    for h in hosts {
        for i in 0..names.count(h) {
            y.push_str(&format!("  - {BRIDGE} {h}{i} {}/12\n", Names::addr(h, i)));
        }
    }
    y
}

// ---------------------------------------------------------------------------------------------
// Simulated hosts.

/// The underlay namespace with its bridge, and host `h`'s veth on it.
fn underlay(names: &Names) -> R<()> {
    let ul = names.ns("ul");
    ip(&ul, &["link", "add", "sw", "type", "bridge"])?;
    ip(&ul, &["link", "set", "sw", "up"])?;
    Ok(())
}

fn wire_host(names: &Names, h: &str) -> R<()> {
    let (ul, ns) = (names.ns("ul"), names.ns(h));
    let peer = format!("u{h}");
    ip(
        &ns,
        &[
            "link", "add", "ul0", "type", "veth", "peer", "name", &peer, "netns", &ul,
        ],
    )?;
    ip(&ul, &["link", "set", &peer, "master", "sw", "up"])?;
    let a = format!("{}/24", Names::underlay(h));
    ip(&ns, &["addr", "add", &a, "dev", "ul0"])?;
    ip(&ns, &["link", "set", "ul0", "up"])?;
    ip(&ns, &["link", "set", "lo", "up"])?;
    Ok(())
}

struct Run {
    ms: f64,
    ok: bool,
    stdout: String,
    stderr: String,
    status: String,
}

/// `pipework ARGS` in host `h`'s namespace with its own runtime dir, timed.
fn pw(world: &World, bin: &Path, names: &Names, h: &str, args: &[&str]) -> R<Run> {
    let fd = ns_fd(&names.ns(h))?;
    let mut c = cmd_in(fd.as_raw_fd(), bin);
    let rt = world.path(&format!("rt-{h}"));
    std::fs::create_dir_all(&rt).map_err(|e| format!("mkdir {}: {e}", rt.display()))?;
    c.args(args)
        .env("PIPEWORK_RUNTIME_DIR", &rt)
        .stdin(Stdio::null());
    let t0 = Instant::now();
    let out = c
        .output()
        .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    drop(fd);
    Ok(Run {
        ms,
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        status: out.status.to_string(),
    })
}

fn must(label: &str, r: R<Run>) -> R<Run> {
    let r = r?;
    if r.ok {
        Ok(r)
    } else {
        let cut = |s: &str| s.trim().chars().take(800).collect::<String>();
        Err(format!(
            "{label} failed ({}): {}; {}",
            r.status,
            cut(&r.stderr),
            cut(&r.stdout)
        ))
    }
}

/// An `apply --json` report's change lines (`~ vxlan pwvx100 peers`) and netlink writes.
fn report(stdout: &str) -> R<(Vec<String>, u64)> {
    let v: Value =
        serde_json::from_str(stdout.trim()).map_err(|e| format!("apply --json: {e}: {stdout}"))?;
    let changes = v["changes"]
        .as_array()
        .ok_or("apply --json has no changes list")?
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().map(str::to_string);
            let op = s("op").unwrap_or_default();
            let mut line = format!("{op} {}", s("object").unwrap_or_default());
            if let Some(f) = s("field") {
                line.push_str(&format!(" {f}"));
            }
            line
        })
        .collect();
    Ok((changes, v["netlink_writes"].as_u64().unwrap_or(u64::MAX)))
}

/// Every guest of `host` has eth1 up with its address.
fn check_guests(names: &Names, host: &str) -> R<Vec<String>> {
    let mut bad = Vec::new();
    for i in 0..names.count(host) {
        let want = Names::addr(host, i);
        let ifs = in_ns(&names.guest(host, i), list_ifaces)?;
        let ok = ifs
            .iter()
            .any(|f| f.name == "eth1" && f.up && f.v4.iter().any(|(a, p)| *a == want && *p == 12));
        if !ok {
            bad.push(format!("{host}{i}: no eth1 up with {want}/12"));
        }
    }
    Ok(bad)
}

/// Links other than `lo` (and `ul0` on a host) still in `ns`.
fn leftovers(ns: &str, keep: &'static [&'static str]) -> R<Vec<String>> {
    let ifs = in_ns(ns, list_ifaces)?;
    Ok(ifs
        .into_iter()
        .filter(|f| !keep.contains(&f.name.as_str()))
        .map(|f| f.name)
        .collect())
}

/// The unicast addresses of `dev`'s all-zeros flood entries in host namespace `ns`.
fn flood_list(ns: &str, dev: &str) -> R<Vec<String>> {
    let out = output_of(
        {
            let mut c = Command::new("bridge");
            c.args(["-n", ns, "fdb", "show", "dev", dev]);
            c
        },
        "bridge",
        &["-n", ns, "fdb", "show", "dev", dev],
    )?;
    let mut v: Vec<String> = out
        .lines()
        .filter(|l| l.starts_with("00:00:00:00:00:00 dst "))
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .collect();
    v.sort();
    Ok(v)
}

/// Reachability over TCP (the bench needs no ping): a connection from guest `from` to a
/// listener in guest `to` on `addr`, closed at once.
fn reach(from: &str, to: &str, addr: Ipv4Addr) -> R<()> {
    throughput(from, to, addr, 0).map(|_| ())
}

/// IPv6 off in namespace `ns` (all, default and every existing interface), for the
/// PIPEWORK_BENCH_STRETCH_IPV6=0 variant.
fn ipv6_off(ns: &str) -> R<()> {
    in_ns(ns, || -> R<()> {
        let dir = std::fs::read_dir("/proc/sys/net/ipv6/conf").map_err(|e| format!("{e}"))?;
        for e in dir.flatten() {
            let p = e.path().join("disable_ipv6");
            std::fs::write(&p, "1").map_err(|e| format!("write {}: {e}", p.display()))?;
        }
        Ok(())
    })
}

/// The MTU of `dev` in `ns`.
fn mtu(ns: &str, dev: &str) -> R<u32> {
    let out = ip(ns, &["-o", "link", "show", dev])?;
    let mut it = out.split_whitespace();
    while let Some(w) = it.next() {
        if w == "mtu" {
            return it
                .next()
                .and_then(|m| m.parse().ok())
                .ok_or_else(|| format!("no mtu in {out}"));
        }
    }
    Err(format!("no mtu in {out}"))
}

/// One TCP stream from guest `from` to guest `to` (listening on `addr`) for `secs`: Gbit/s.
fn throughput(from: &str, to: &str, addr: Ipv4Addr, secs: u64) -> R<f64> {
    let sa = SocketAddr::from((addr, TCP_PORT));
    let (tx, rx) = std::sync::mpsc::channel::<R<()>>();
    let to_ns = ns_fd(to)?;
    let server = std::thread::spawn(move || -> R<u64> {
        if unsafe { libc::setns(to_ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            let e = os_err("setns (server)");
            let _ = tx.send(Err(e.clone()));
            return Err(e);
        }
        let l = match TcpListener::bind(sa) {
            Ok(l) => l,
            Err(e) => {
                let e = format!("listen on {sa}: {e}");
                let _ = tx.send(Err(e.clone()));
                return Err(e);
            }
        };
        let _ = tx.send(Ok(()));
        // Never blocked for good: a client that could not connect must not hang the bench.
        l.set_nonblocking(true)
            .map_err(|e| format!("listener: {e}"))?;
        let t0 = Instant::now();
        let mut s = loop {
            match l.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if t0.elapsed() > Duration::from_secs(10) {
                        return Err(format!("no connection to {sa} within 10 s"));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(format!("accept: {e}")),
            }
        };
        s.set_nonblocking(false)
            .map_err(|e| format!("stream: {e}"))?;
        let mut buf = vec![0u8; 1 << 18];
        let mut n = 0u64;
        loop {
            match s.read(&mut buf) {
                Ok(0) => return Ok(n),
                Ok(k) => n += k as u64,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(5))
        .map_err(|_| "the server thread did not start".to_string())??;
    let sent = in_ns(from, move || -> R<(u64, f64)> {
        let mut s = TcpStream::connect_timeout(&sa, Duration::from_secs(5))
            .map_err(|e| format!("connect {sa}: {e}"))?;
        let buf = vec![0x5au8; 1 << 18];
        let t0 = Instant::now();
        let mut n = 0u64;
        while t0.elapsed() < Duration::from_secs(secs) {
            check_stop()?;
            s.write_all(&buf).map_err(|e| format!("write: {e}"))?;
            n += buf.len() as u64;
        }
        s.shutdown(std::net::Shutdown::Write)
            .map_err(|e| format!("shutdown: {e}"))?;
        // Until the server has read everything: the time covers delivery, not just buffering.
        let mut b = [0u8; 1];
        let _ = s.read(&mut b);
        Ok((n, t0.elapsed().as_secs_f64()))
    });
    let got = server
        .join()
        .map_err(|_| "server thread panicked".to_string())?;
    let (n, secs) = sent.map_err(|e| format!("{from} -> {to}: {e}"))?;
    let got = got?;
    if got != n {
        return Err(format!("sent {n} bytes, the server read {got}"));
    }
    Ok(n as f64 * 8.0 / secs / 1e9)
}

// ---------------------------------------------------------------------------------------------

struct Row {
    label: String,
    runs: Vec<f64>,
    target: Option<f64>,
    note: String,
}

fn p50(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[(s.len() - 1) / 2]
}

fn print_rows(rows: &[Row], baseline_ms: f64) {
    println!();
    println!(
        "{:<44} {:>4} {:>9} {:>9} {:>8}  target / notes",
        "row", "runs", "p50_ms", "min_ms", "vs_solo"
    );
    for r in rows {
        let w = p50(&r.runs);
        let lo = r.runs.iter().copied().fold(f64::INFINITY, f64::min);
        let t = match r.target {
            Some(t) => format!("<= {t:.0} ms: {}", if w <= t { "met" } else { "OVER" }),
            None => String::new(),
        };
        let ratio = format!("{:.2}x", w / baseline_ms);
        println!(
            "{:<44} {:>4} {:>9.1} {:>9.1} {:>8}  {t}{}{}",
            r.label,
            r.runs.len(),
            w,
            lo,
            ratio,
            if t.is_empty() || r.note.is_empty() {
                ""
            } else {
                "; "
            },
            r.note
        );
    }
}

fn run() -> R<()> {
    if unsafe { libc::geteuid() } != 0 {
        println!("stretch bench: skipped, needs root (namespaces, veth, bridges, vxlan)");
        return Ok(());
    }
    match std::env::var("PIPEWORK_BENCH_ONLY").as_deref() {
        Ok("stretch") | Ok("") | Err(_) => {}
        Ok(other) => {
            println!("stretch bench: skipped (PIPEWORK_BENCH_ONLY={other})");
            return Ok(());
        }
    }
    let n = env_usize("PIPEWORK_BENCH_STRETCH_N", DEFAULT_N)?;
    let d = env_usize("PIPEWORK_BENCH_STRETCH_D", DEFAULT_D)?;
    let reps = env_usize("PIPEWORK_BENCH_STRETCH_REPS", DEFAULT_REPS)?.max(1);
    let secs = env_usize("PIPEWORK_BENCH_STRETCH_SECS", DEFAULT_SECS)? as u64;
    let ipv6 = env_usize("PIPEWORK_BENCH_STRETCH_IPV6", 1)? != 0;
    if !(2..=MAX_N).contains(&n) || !(1..=MAX_N).contains(&d) {
        return Err(format!(
            "PIPEWORK_BENCH_STRETCH_N must be 2..={MAX_N} and _D 1..={MAX_N}"
        ));
    }
    let bin = pipework_bin();
    if !bin.is_file() {
        return Err(format!(
            "{} not found: run `cargo build --release` first (or set PIPEWORK_BIN)",
            bin.display()
        ));
    }
    // Before any thread: unshare(CLONE_NEWNS) refuses in a multi-threaded process.
    let mut world = World::enter()?;
    let names = Names {
        id: base36(std::process::id()),
        n,
        d,
    };
    println!(
        "stretch bench: {n} guests on each of hosts a, b, c and the solo baseline, {d} on d; \
         {reps} runs of the cheap rows; binary {}",
        bin.display()
    );

    // Every namespace up front (untimed).
    let t0 = Instant::now();
    let mut all: Vec<String> = ["ul", "a", "b", "c", "d", "solo"]
        .iter()
        .map(|h| names.ns(h))
        .collect();
    for h in ["a", "b", "c", "d", "solo"] {
        all.extend((0..names.count(h)).map(|i| names.guest(h, i)));
    }
    world.make_named(&all)?;
    underlay(&names)?;
    for h in HOSTS {
        wire_host(&names, h)?;
    }
    if !ipv6 {
        for ns in &all {
            ipv6_off(ns)?;
        }
        println!("  PIPEWORK_BENCH_STRETCH_IPV6=0: IPv6 off in every namespace of the bench");
    }
    println!(
        "  setup: {} namespaces and the underlay in {:.0} ms",
        all.len(),
        t0.elapsed().as_secs_f64() * 1e3
    );

    let write = |name: &str, text: String| -> R<String> {
        let p = world.path(name);
        std::fs::write(&p, text).map_err(|e| format!("write {}: {e}", p.display()))?;
        Ok(p.display().to_string())
    };
    let solo_file = write("solo.yaml", lab_yaml(&names, &["solo"]))?;
    let lab3 = write("lab.yaml", lab_yaml(&names, &["a", "b", "c"]))?;
    let lab4 = write("lab4.yaml", lab_yaml(&names, &["a", "b", "c", "d"]))?;
    let mut problems: Vec<String> = Vec::new();
    let mut rows: Vec<Row> = Vec::new();

    // 1. The one-host baseline.
    let solo = must(
        "solo apply",
        pw(
            &world,
            &bin,
            &names,
            "solo",
            &["apply", &solo_file, "--json"],
        ),
    )?;
    problems.extend(check_guests(&names, "solo")?);
    let baseline = solo.ms;
    rows.push(Row {
        label: format!("baseline: one-host lab apply, {n} guests"),
        runs: vec![solo.ms],
        target: None,
        note: String::new(),
    });

    // 2. Each host's share of the stretched lab.
    for h in ["a", "b", "c"] {
        let r = must(
            &format!("apply --host {h}"),
            pw(
                &world,
                &bin,
                &names,
                h,
                &["apply", &lab3, "--host", h, "--json"],
            ),
        )?;
        let (changes, writes) = report(&r.stdout)?;
        rows.push(Row {
            label: format!("apply --host {h} (3 hosts, {n} guests here)"),
            runs: vec![r.ms],
            target: Some(TARGET_APPLY_MS),
            note: format!("{} changes, {writes} netlink writes", changes.len()),
        });
        problems.extend(check_guests(&names, h)?);
    }
    let fl = flood_list(&names.ns("a"), VXLAN)?;
    if fl != ["10.251.0.2", "10.251.0.3"] {
        problems.push(format!("a's flood list is {fl:?}, not b and c"));
    }
    let gm = mtu(&names.guest("a", 0), "eth1")?;
    if gm != 1450 {
        problems.push(format!("a0's eth1 has MTU {gm}, not 1500 - 50"));
    }
    if let Err(e) = reach(
        &names.guest("a", 0),
        &names.guest("c", n - 1),
        Names::addr("c", n - 1),
    ) {
        problems.push(format!("a0 cannot reach c{}: {e}", n - 1));
    }

    // 3 and 4. plan and the no-op apply.
    let mut plan = Row {
        label: "plan --host a (applied)".into(),
        runs: Vec::new(),
        target: None,
        note: String::new(),
    };
    let mut noop = Row {
        label: "apply --host a again (no-op)".into(),
        runs: Vec::new(),
        target: None,
        note: String::new(),
    };
    for _ in 0..reps {
        check_stop()?;
        let r = must(
            "plan",
            pw(&world, &bin, &names, "a", &["plan", &lab3, "--host", "a"]),
        )?;
        if r.stdout
            .lines()
            .any(|l| l.trim_start().starts_with(['+', '~', '-']))
        {
            problems.push(format!(
                "plan of the applied lab shows changes: {}",
                r.stdout
            ));
        }
        plan.runs.push(r.ms);
        let r = must(
            "no-op apply",
            pw(
                &world,
                &bin,
                &names,
                "a",
                &["apply", &lab3, "--host", "a", "--json"],
            ),
        )?;
        let (changes, writes) = report(&r.stdout)?;
        if !changes.is_empty() || writes != 0 {
            problems.push(format!(
                "the no-op apply made {changes:?} with {writes} writes"
            ));
        }
        noop.runs.push(r.ms);
    }
    noop.note = "0 changes, 0 writes".into();
    rows.push(plan);
    rows.push(noop);

    // 5. A fourth host.
    let rd = must(
        "apply --host d",
        pw(
            &world,
            &bin,
            &names,
            "d",
            &["apply", &lab4, "--host", "d", "--json"],
        ),
    )?;
    let r = must(
        "apply --host a (4 hosts)",
        pw(
            &world,
            &bin,
            &names,
            "a",
            &["apply", &lab4, "--host", "a", "--json"],
        ),
    )?;
    let (changes, writes) = report(&r.stdout)?;
    let want = format!("~ vxlan {VXLAN} peers");
    if changes != [want.clone()] {
        problems.push(format!(
            "host d's arrival made {changes:?} on a, not [{want}]"
        ));
    }
    rows.push(Row {
        label: "apply --host a, host d added".into(),
        runs: vec![r.ms],
        target: None,
        note: format!("{}; {writes} netlink writes", changes.join(", ")),
    });
    for h in ["b", "c"] {
        must(
            &format!("apply --host {h} (4 hosts)"),
            pw(
                &world,
                &bin,
                &names,
                h,
                &["apply", &lab4, "--host", h, "--json"],
            ),
        )?;
    }
    println!("  host d's own apply ({d} guests): {:.1} ms", rd.ms);
    if let Err(e) = reach(
        &names.guest("d", 0),
        &names.guest("b", 0),
        Names::addr("b", 0),
    ) {
        problems.push(format!("d0 cannot reach b0: {e}"));
    }

    // Throughput.
    let mut tput = Vec::new();
    if secs > 0 {
        let a0 = Names::addr("a", 0);
        let same = throughput(&names.guest("a", 1), &names.guest("a", 0), a0, secs)?;
        let cross = throughput(&names.guest("b", 0), &names.guest("a", 0), a0, secs)?;
        tput.push(format!(
            "throughput, one TCP stream, {secs} s each: a1 -> a0 (same bridge) {same:.2} Gbit/s, \
             b0 -> a0 (across the VXLAN) {cross:.2} Gbit/s: {:.2}x of the same bridge",
            cross / same
        ));
    }

    // 6. destroy.
    let lab = names.lab();
    for h in HOSTS {
        let r = must(
            &format!("destroy on {h}"),
            pw(&world, &bin, &names, h, &["destroy", &lab]),
        )?;
        if h == "a" {
            rows.push(Row {
                label: "destroy on a".into(),
                runs: vec![r.ms],
                target: None,
                note: String::new(),
            });
        }
    }
    must(
        "destroy solo",
        pw(
            &world,
            &bin,
            &names,
            "solo",
            &["destroy", &format!("{lab}solo")],
        ),
    )?;
    let t0 = Instant::now();
    for h in ["a", "b", "c", "d", "solo"] {
        let keep: &'static [&'static str] = if h == "solo" { &["lo"] } else { &["lo", "ul0"] };
        let left = leftovers(&names.ns(h), keep)?;
        if !left.is_empty() {
            problems.push(format!("host {h} still has {left:?} after destroy"));
        }
        for i in 0..names.count(h) {
            let g = names.guest(h, i);
            loop {
                check_stop()?;
                let left = leftovers(&g, &["lo"])?;
                if left.is_empty() {
                    break;
                }
                if t0.elapsed() > CLEAN_TIMEOUT {
                    problems.push(format!("guest {g} still has {left:?} after destroy"));
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    print_rows(&rows, baseline);
    for t in &tput {
        println!("{t}");
    }
    if problems.is_empty() {
        println!("stretch bench: every check passed");
        Ok(())
    } else {
        for p in &problems {
            println!("  problem: {p}");
        }
        Err(format!("{} problems", problems.len()))
    }
}

fn main() {
    bench_main("stretch", run)
}
