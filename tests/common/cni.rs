//! Real CNI runtimes driving a plugin, for tests/cni_runtimes.rs (TESTENV.md, "CNI runtimes
//! driving a plugin, verified end to end"). Everything is private to one test:
//! - [`RuntimeHost`]: the test's "host" network namespace plus a long-lived holder process in
//!   a private mount namespace (sysfs of that network namespace, the machine's cgroups bound
//!   back under it, tmpfs over /run, /dev/shm and /var/lib). Every runtime command runs inside
//!   it (setns into both namespaces); files the runtimes make on those tmpfs mounts are read
//!   through `/proc/HOLDER/root`. Drop ends every process left in that mount namespace.
//! - [`Plugin`] and [`plugin_dir`]: the plugin under test (the reference `bridge`, or the
//!   pipework binary installed as a copy named `pipework`) and copies of the reference
//!   plugins it chains or delegates to (host-local, portmap, loopback).
//! - [`BridgeNet`]: a conflist with the bridge plugin's keys, host-local IPAM in a private
//!   `dataDir`, optionally the reference `portmap` chained after it.
//! - [`CniPodman`]: Podman 4.3 on its CNI backend (private containers.conf, storage and
//!   registries; `--rootfs` of a busybox tree, no image).
//! - [`CniContainerd`]: a private containerd, and `ctr run --rm --cni` with `/etc/cni/net.d`,
//!   `/opt/cni/bin` and `/usr/lib/cni` holding only this test's files.
//! - Leftover checks shared by the tests: bridge ports, host-local reservations, pipework
//!   records, firewall rules naming the container.

#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;

/// Where Debian's containernetworking-plugins are.
pub const REFERENCE_DIR: &str = "/usr/lib/cni";

/// The reference plugins every test installs beside the plugin under test.
pub const HELPERS: &[&str] = &["host-local", "portmap", "loopback"];

/// The CNI version the runtimes here speak (libcni 1.1: up to 1.0.0).
pub const CNI_VERSION: &str = "1.0.0";

// ---------------------------------------------------------------------------------------------
// The plugin under test
// ---------------------------------------------------------------------------------------------

/// The first plugin of the conflist: the reference bridge (to prove the recipe) or pipework.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plugin {
    Reference,
    Pipework,
}

impl Plugin {
    /// Its `"type"` in the conflist, and its file name in the plugin directory.
    pub fn type_name(self) -> &'static str {
        match self {
            Plugin::Reference => "bridge",
            Plugin::Pipework => "pipework",
        }
    }

    /// The binary installed under [`Plugin::type_name`].
    pub fn source(self) -> PathBuf {
        match self {
            Plugin::Reference => Path::new(REFERENCE_DIR).join("bridge"),
            Plugin::Pipework => PathBuf::from(BIN),
        }
    }

    /// Whether it keeps records under `$PIPEWORK_RUNTIME_DIR/attachments/`.
    pub fn keeps_records(self) -> bool {
        self == Plugin::Pipework
    }
}

/// True when root, the programs are installed and the plugins can be installed; prints why
/// not otherwise.
pub fn cni_or_skip(test: &str, runtime: &str, programs: &[&str], plugin: Plugin) -> bool {
    if !root_or_skip(test) {
        return false;
    }
    let mut missing: Vec<String> = programs
        .iter()
        .chain(&["unshare", "mount", "umount", "ip"])
        .filter(|p| !have_program(p))
        .map(|p| p.to_string())
        .collect();
    for h in HELPERS {
        let p = Path::new(REFERENCE_DIR).join(h);
        if !p.is_file() {
            missing.push(p.display().to_string());
        }
    }
    if !plugin.source().is_file() {
        missing.push(plugin.source().display().to_string());
    }
    if !missing.is_empty() {
        skip(format!(
            "SKIP {test}: {runtime} or the reference CNI plugins are not installed (missing \
             {missing:?}); scripts/testenv.sh install"
        ));
        return false;
    }
    true
}

/// Fills `dir` with copies (never symlinks: a runtime may exec them from another mount
/// namespace) of `plugin`, under its type name, and of the reference [`HELPERS`].
pub fn plugin_dir(dir: &Path, plugin: Plugin) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    let mut copies = vec![(plugin.source(), plugin.type_name().to_string())];
    copies.extend(
        HELPERS
            .iter()
            .map(|h| (Path::new(REFERENCE_DIR).join(h), h.to_string())),
    );
    for (src, name) in copies {
        let dst = dir.join(&name);
        std::fs::copy(&src, &dst)
            .unwrap_or_else(|e| panic!("copy {} to {}: {e}", src.display(), dst.display()));
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// The network configuration
// ---------------------------------------------------------------------------------------------

/// A bridge network as the reference bridge plugin is configured: gateway on the bridge,
/// default route in the container, host-local IPAM with a private `dataDir`.
#[derive(Debug, Clone)]
pub struct BridgeNet {
    pub name: String,
    pub bridge: String,
    /// `10.N.M.0/24`.
    pub subnet: String,
    /// `10.N.M.1`.
    pub gateway: String,
    pub mtu: u32,
    pub ip_masq: bool,
    /// The conflist's `cniVersion`.
    pub version: &'static str,
    /// Chain the reference portmap after the bridge plugin.
    pub portmap: bool,
    /// host-local's `dataDir`.
    pub data_dir: PathBuf,
}

impl BridgeNet {
    /// Network `pwt-…`, bridge `pwt-b…`, subnet `10.<a>.<b>.0/24`.
    pub fn new(a: u8, b: u8, data_dir: &Path) -> BridgeNet {
        BridgeNet {
            name: unique("n"),
            bridge: unique("b"),
            subnet: format!("10.{a}.{b}.0/24"),
            gateway: format!("10.{a}.{b}.1"),
            mtu: 1400,
            ip_masq: true,
            version: CNI_VERSION,
            portmap: false,
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// The first three octets and a dot, `10.N.M.`.
    pub fn prefix(&self) -> &str {
        let last_dot = self.gateway.rfind('.').expect("an IPv4 gateway");
        &self.gateway[..=last_dot]
    }

    pub fn conflist(&self, plugin: Plugin) -> Value {
        let mut plugins = vec![json!({
            "type": plugin.type_name(),
            "bridge": self.bridge,
            "isGateway": true,
            "isDefaultGateway": true,
            "ipMasq": self.ip_masq,
            "mtu": self.mtu,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "dataDir": self.data_dir,
                "ranges": [[{"subnet": self.subnet, "gateway": self.gateway}]],
            },
        })];
        if self.portmap {
            plugins.push(json!({"type": "portmap", "capabilities": {"portMappings": true}}));
        }
        json!({"cniVersion": self.version, "name": self.name, "plugins": plugins})
    }

    /// host-local's reservations of this network: `(address, content)` of each file of
    /// `dataDir/<network>/` named by an IP address (its `lock` and `last_reserved_ip.*` are
    /// bookkeeping, not reservations).
    pub fn reservations(&self) -> Vec<(String, String)> {
        let Ok(rd) = std::fs::read_dir(self.data_dir.join(&self.name)) else {
            return vec![];
        };
        let mut v: Vec<(String, String)> = rd
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_str()?.to_string();
                name.parse::<std::net::IpAddr>().ok()?;
                Some((name, std::fs::read_to_string(e.path()).unwrap_or_default()))
            })
            .collect();
        v.sort();
        v
    }
}

// ---------------------------------------------------------------------------------------------
// The test's host: a network namespace and a private mount namespace
// ---------------------------------------------------------------------------------------------

/// A process's network namespace (a container's, by its PID).
pub struct ProcNs(pub u32);

impl Ns for ProcNs {
    fn ns_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.0))
    }
    fn describe(&self) -> String {
        format!("the network namespace of pid {}", self.0)
    }
}

/// Dies with the test process (as root the parent-death signal holds).
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// Runs a prepared command; panics with its output unless it succeeds; its stdout (a stderr
/// it wrote anyway is printed: runtimes put their plugins' warnings there).
fn must(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    if !out.status.success() {
        panic!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if !out.stderr.is_empty() {
        eprintln!(
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The test's "host": its own network namespace, and a holder process (`unshare --mount
/// --propagation private sleep infinity`) whose mount namespace the runtimes run in.
pub struct RuntimeHost {
    holder: Option<Child>,
    pub pid: u32,
    mnt_inode: u64,
    pub netns: Netns,
    /// `/tmp/pwt-<tag>-…`: configuration, state, plugins, IPAM and pipework's runtime
    /// directory (seen the same from both mount namespaces).
    pub dir: TempDir,
}

impl Ns for RuntimeHost {
    fn ns_path(&self) -> PathBuf {
        self.netns.path()
    }
    fn ns_name(&self) -> Option<&str> {
        Some(&self.netns.name)
    }
    fn describe(&self) -> String {
        format!("the test host netns {}", self.netns.name)
    }
}

impl RuntimeHost {
    pub fn new(tag: &str) -> RuntimeHost {
        let dir = TempDir::new(tag);
        let netns = Netns::new("rth");
        let mut cmd = cmd_in(&netns, "unshare");
        cmd.args(["--mount", "--propagation", "private", "sleep", "infinity"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        die_with_parent(&mut cmd);
        let holder = cmd.spawn().expect("spawn unshare --mount sleep infinity");
        let pid = holder.id();
        let mine = inode_of(Path::new("/proc/self/ns/mnt"));
        let theirs = format!("/proc/{pid}/ns/mnt");
        let mut mnt_inode = 0;
        let entered = wait_until(Duration::from_secs(5), || {
            mnt_inode = std::fs::metadata(&theirs)
                .map(|_| inode_of(Path::new(&theirs)))
                .unwrap_or(mine);
            mnt_inode != mine
        });
        let mut h = RuntimeHost {
            holder: Some(holder),
            pid,
            mnt_inode,
            netns,
            dir,
        };
        assert!(entered, "unshare --mount did not take effect");
        h.setup();
        h
    }

    /// sysfs of the host namespace (nsenter-style entry keeps the machine's), the cgroup
    /// hierarchies bound back under it (runc needs them), tmpfs over what the runtimes write.
    fn setup(&mut self) {
        let stage = self.dir.join("cgroup");
        std::fs::create_dir_all(&stage).unwrap();
        let stage = stage.to_str().unwrap().to_string();
        self.ok(&["mount", "--rbind", "/sys/fs/cgroup", &stage]);
        self.ok(&["umount", "-l", "/sys"]);
        self.ok(&["mount", "-t", "sysfs", "sysfs", "/sys"]);
        self.ok(&["mount", "--move", &stage, "/sys/fs/cgroup"]);
        for m in ["/run", "/dev/shm", "/var/lib"] {
            self.tmpfs(m);
        }
        for d in ["/run/netns", "/run/lock", "/var/lib/cni"] {
            std::fs::create_dir_all(self.inside(d)).unwrap();
        }
    }

    /// `program` run inside the host's network and mount namespaces.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        let net = File::open(self.netns.path()).expect("open the host netns");
        let mnt =
            File::open(format!("/proc/{}/ns/mnt", self.pid)).expect("open the holder's mntns");
        // SAFETY: only async-signal-safe calls (setns) run in the child, which is single
        // threaded (setns into a mount namespace needs that).
        unsafe {
            c.pre_exec(move || {
                if libc::setns(net.as_raw_fd(), libc::CLONE_NEWNET) != 0
                    || libc::setns(mnt.as_raw_fd(), libc::CLONE_NEWNS) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        c.stdin(Stdio::null());
        c
    }

    /// `args[0] args[1..]` inside; panics with its output unless it succeeds; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        must(
            self.command(args[0]).args(&args[1..]),
            &format!("{} (in the test host)", args.join(" ")),
        )
    }

    /// A tmpfs over `path` (which exists), in the private mount namespace only.
    pub fn tmpfs(&self, path: &str) {
        self.ok(&["mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", path]);
    }

    /// Makes `path` show `src` (a bind mount) in the private mount namespace. Where `path`
    /// does not exist, a tmpfs goes over its nearest existing ancestor first (never `/` nor
    /// anything under /etc: the machine's files are never written), and `path` is made there.
    pub fn bind_over(&self, src: &Path, path: &str) {
        if !self.inside(path).exists() {
            let mut anc = Path::new(path);
            while !self.inside(anc.to_str().unwrap()).exists() {
                anc = anc.parent().unwrap();
            }
            let a = anc.to_str().unwrap();
            assert!(
                a != "/" && !a.starts_with("/etc"),
                "{path}: will not mount over {a}"
            );
            self.tmpfs(a);
            std::fs::create_dir_all(self.inside(path)).unwrap();
        }
        self.ok(&["mount", "--bind", src.to_str().unwrap(), path]);
    }

    /// `path` as the private mount namespace sees it, for reading from the test.
    pub fn inside(&self, path: &str) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{}/root/{}",
            self.pid,
            path.trim_start_matches('/')
        ))
    }

    /// Live processes in the private mount namespace, except the holder.
    pub fn processes(&self) -> Vec<u32> {
        let me = std::process::id();
        let Ok(rd) = std::fs::read_dir("/proc") else {
            return vec![];
        };
        rd.flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&p| p != me && p != self.pid && proc_alive(p))
            .filter(|p| {
                let m = format!("/proc/{p}/ns/mnt");
                std::fs::metadata(&m).is_ok() && inode_of(Path::new(&m)) == self.mnt_inode
            })
            .collect()
    }

    /// Ends every process left in the private mount namespace (daemons, shims, conmon).
    pub fn stop_processes(&self) {
        for _ in 0..3 {
            let left = self.processes();
            if left.is_empty() {
                return;
            }
            for p in left {
                if let Some(info) = proc_info(p) {
                    eprintln!("stopping leftover process {info}");
                }
                terminate(p, Duration::from_secs(2));
            }
        }
    }
}

impl Drop for RuntimeHost {
    fn drop(&mut self) {
        self.stop_processes();
        if let Some(mut h) = self.holder.take() {
            let _ = h.kill();
            let _ = h.wait();
        }
        // Then the fields: the namespace is deleted, the directory removed.
    }
}

// ---------------------------------------------------------------------------------------------
// Leftovers
// ---------------------------------------------------------------------------------------------

/// Files under `dir/attachments/` (pipework's records), recursively.
pub fn records_in(runtime_dir: &Path) -> Vec<PathBuf> {
    files_below(&runtime_dir.join("attachments"), None)
}

/// Firewall rules in `ns` (iptables-save and nft, as installed) whose line names any of
/// `needles` (a container's address or ID).
pub fn firewall_lines(ns: &dyn Ns, needles: &[&str]) -> Vec<String> {
    let mut dumps = vec![];
    for (prog, args) in [
        ("iptables-save", &[][..]),
        ("ip6tables-save", &[][..]),
        ("nft", &["list", "ruleset"][..]),
    ] {
        if !have_program(prog) {
            continue;
        }
        if let Ok(out) = cmd_in(ns, prog).args(args).stdin(Stdio::null()).output() {
            dumps.push((prog, String::from_utf8_lossy(&out.stdout).into_owned()));
        }
    }
    dumps
        .iter()
        .flat_map(|(prog, d)| {
            d.lines()
                .filter(|l| needles.iter().any(|n| !n.is_empty() && l.contains(n)))
                .map(move |l| format!("{prog}: {l}"))
        })
        .collect()
}

/// Links of `ns` that are veths (host ends), except those named in `except`.
pub fn veths(ns: &dyn Ns, except: &[&str]) -> Vec<String> {
    links(ns)
        .into_iter()
        .filter(|l| l.kind.as_deref() == Some("veth") && !except.contains(&l.name.as_str()))
        .map(|l| l.name)
        .collect()
}

/// The `hairpin` flag of a bridge port, as `ip -d -j link` shows it.
pub fn hairpin(l: &Link) -> Option<bool> {
    l.raw
        .pointer("/linkinfo/info_slave_data/hairpin")
        .and_then(Value::as_bool)
}

/// A client namespace joined to `host` by a veth: `host_if` with `host_cidr` in the host,
/// `eth0` with `client_cidr` in the client. The veth goes with the client's namespace.
pub fn client_netns(host: &dyn Ns, host_if: &str, host_cidr: &str, client_cidr: &str) -> Netns {
    let client = Netns::new("cl");
    ip(
        host,
        &[
            "link",
            "add",
            host_if,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &client.name,
        ],
    );
    ip(host, &["addr", "add", host_cidr, "dev", host_if]);
    ip(host, &["link", "set", host_if, "up"]);
    ip(&client, &["addr", "add", client_cidr, "dev", "eth0"]);
    ip(&client, &["link", "set", "eth0", "up"]);
    client
}

/// `GET path` over HTTP/1.0 from inside `ns` (a thread that setns), retried until `limit`:
/// the response body, or the last error.
pub fn http_get(
    ns: &dyn Ns,
    addr: &str,
    port: u16,
    path: &str,
    limit: Duration,
) -> Result<String, String> {
    use std::net::{SocketAddr, TcpStream};
    let sa: SocketAddr = format!("{addr}:{port}")
        .parse()
        .map_err(|e| format!("bad address {addr}:{port}: {e}"))?;
    let nsp = ns.ns_path();
    let path = path.to_string();
    std::thread::spawn(move || -> Result<String, String> {
        enter_thread_ns(&nsp).map_err(|e| format!("setns {}: {e}", nsp.display()))?;
        let deadline = Instant::now() + limit;
        let once = || -> Result<String, String> {
            let mut s = TcpStream::connect_timeout(&sa, Duration::from_secs(1))
                .map_err(|e| format!("connect {sa}: {e}"))?;
            s.set_read_timeout(Some(Duration::from_secs(2)))
                .map_err(|e| e.to_string())?;
            s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
                .map_err(|e| format!("send to {sa}: {e}"))?;
            let mut resp = vec![];
            s.read_to_end(&mut resp)
                .map_err(|e| format!("read from {sa} (got {} bytes): {e}", resp.len()))?;
            let text = String::from_utf8_lossy(&resp).into_owned();
            match text.split_once("\r\n\r\n") {
                Some((head, body)) if head.starts_with("HTTP/1.") && head.contains(" 200 ") => {
                    Ok(body.to_string())
                }
                _ => Err(format!("unexpected answer from {sa}: {text:?}")),
            }
        };
        loop {
            match once() {
                Ok(b) => return Ok(b),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    })
    .join()
    .map_err(|_| "the HTTP client thread panicked".to_string())?
}

// ---------------------------------------------------------------------------------------------
// Podman with its CNI backend
// ---------------------------------------------------------------------------------------------

/// A private rootful Podman (CNI backend) whose every command runs inside a [`RuntimeHost`].
/// The plugins' environment: libcni hands a plugin the runtime's own environment plus the
/// CNI_* variables, so PIPEWORK_RUNTIME_DIR is set for podman; containers.conf `[engine] env`
/// sets it too, for the `podman container cleanup` that conmon runs when a container exits
/// (conmon passes on only PATH, HOME and CONTAINERS_CONF).
pub struct CniPodman {
    /// The plugin directory (`cni_plugin_dirs`, the only one).
    pub plugins: PathBuf,
    /// `network_config_dir`.
    pub net_dir: PathBuf,
    /// The busybox tree containers run from (`--rootfs`), with `/www/index.txt`.
    pub rootfs: PathBuf,
    /// PIPEWORK_RUNTIME_DIR of the plugin.
    pub runtime_dir: PathBuf,
    dir: PathBuf,
    pub host: RuntimeHost,
}

/// A running Podman container.
pub struct PodmanCtr {
    pub name: String,
    pub id: String,
    pub pid: u32,
}

impl Ns for PodmanCtr {
    fn ns_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.pid))
    }
    fn describe(&self) -> String {
        format!("podman container {}", self.name)
    }
}

/// What the containers' web server serves at `/index.txt`.
pub const WEB_TOKEN: &str = "pwt-served-from-the-container";

impl CniPodman {
    pub fn new(host: RuntimeHost, plugin: Plugin) -> CniPodman {
        let dir = host.dir.join("podman");
        let plugins = host.dir.join("cni-bin");
        let net_dir = host.dir.join("net.d");
        let rootfs = host.dir.join("rootfs");
        let runtime_dir = host.dir.join("pipework-run");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&net_dir).unwrap();
        plugin_dir(&plugins, plugin);
        busybox_rootfs(&rootfs);
        std::fs::create_dir_all(rootfs.join("www")).unwrap();
        std::fs::write(rootfs.join("www/index.txt"), WEB_TOKEN).unwrap();
        let d = dir.to_str().unwrap();
        std::fs::write(
            dir.join("containers.conf"),
            format!(
                r#"[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{d}/events.log"
runtime = "runc"
tmp_dir = "{d}/tmp"
static_dir = "{d}/root/libpod"
volume_path = "{d}/root/volumes"
env = ["PIPEWORK_RUNTIME_DIR={rt}"]
[network]
network_backend = "cni"
cni_plugin_dirs = ["{p}"]
network_config_dir = "{n}"
"#,
                rt = runtime_dir.display(),
                p = plugins.display(),
                n = net_dir.display(),
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{d}/root\"\nrunroot = \"{d}/run\"\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("registries.conf"),
            "unqualified-search-registries = []\n",
        )
        .unwrap();
        CniPodman {
            plugins,
            net_dir,
            rootfs,
            runtime_dir,
            dir,
            host,
        }
    }

    /// Installs a network (`NAME.conflist` in `network_config_dir`).
    pub fn add_network(&self, name: &str, conflist: &Value) {
        std::fs::write(
            self.net_dir.join(format!("{name}.conflist")),
            serde_json::to_vec_pretty(conflist).unwrap(),
        )
        .unwrap();
    }

    /// The podman CLI on this instance (inside the host, never remote).
    pub fn command(&self) -> Command {
        let mut c = self.host.command("podman");
        c.env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", self.dir.join("storage.conf"))
            .env(
                "CONTAINERS_REGISTRIES_CONF",
                self.dir.join("registries.conf"),
            )
            .env("PIPEWORK_RUNTIME_DIR", &self.runtime_dir)
            .env_remove("CONTAINER_HOST")
            .env_remove("CONTAINER_CONNECTION");
        c
    }

    pub fn output(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("spawn podman")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        must(
            self.command().args(args),
            &format!("podman {}", args.join(" ")),
        )
        .trim()
        .to_string()
    }

    /// `podman run -d --name NAME OPTIONS… --rootfs ROOTFS CMD…` (the ulimits this sandbox
    /// needs added): the container, running.
    pub fn run(&self, options: &[&str], cmd: &[&str]) -> PodmanCtr {
        let name = unique("c");
        let id = self.ok(&self.run_args(&name, options, cmd));
        let pid = self.pid(&name);
        PodmanCtr { name, id, pid }
    }

    /// `podman run`'s arguments for container `name` (for a run expected to fail, too).
    pub fn run_args<'a>(
        &'a self,
        name: &'a str,
        options: &[&'a str],
        cmd: &[&'a str],
    ) -> Vec<&'a str> {
        let mut args = vec![
            "run",
            "-d",
            "--name",
            name,
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ];
        args.extend_from_slice(options);
        args.extend_from_slice(&["--rootfs", self.rootfs.to_str().unwrap()]);
        args.extend_from_slice(cmd);
        args
    }

    /// The PID of a running container.
    pub fn pid(&self, name: &str) -> u32 {
        let pid = self
            .ok(&["inspect", "-f", "{{.State.Pid}}", name])
            .parse()
            .expect("State.Pid");
        assert!(pid != 0, "podman container {name} is not running");
        pid
    }

    /// `podman inspect NAME` (the first object).
    pub fn inspect(&self, name: &str) -> Value {
        let v: Value = serde_json::from_str(&self.ok(&["inspect", name])).expect("inspect JSON");
        v[0].clone()
    }

    /// Files libcni keeps for `id` in its result cache (removed by a DEL that succeeded).
    pub fn cached_results(&self, id: &str) -> Vec<String> {
        std::fs::read_dir(self.host.inside("/var/lib/cni/results"))
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().to_str().map(String::from))
                    .filter(|n| n.contains(id))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for CniPodman {
    fn drop(&mut self) {
        let _ = self.output(&["rm", "-a", "-f", "-t", "0"]);
        // conmon and `podman container cleanup`, if any linger, go with the host.
    }
}

// ---------------------------------------------------------------------------------------------
// containerd: `ctr run --cni`
// ---------------------------------------------------------------------------------------------

/// A private containerd inside a [`RuntimeHost`] whose `/etc/cni/net.d` holds only one
/// conflist and whose `/opt/cni/bin` and `/usr/lib/cni` (ctr looks in both) hold copies of the
/// test's plugins. `ctr` runs there too: it is ctr, not containerd, that calls the plugins.
pub struct CniContainerd {
    daemon: Option<Child>,
    pub socket: PathBuf,
    /// The containerd namespace of this test (unique: its cgroup directories are removed).
    pub ns: String,
    pub rootfs: PathBuf,
    pub runtime_dir: PathBuf,
    dir: PathBuf,
    ids: Mutex<Vec<String>>,
    cgroup_dirs: Vec<PathBuf>,
    pub host: RuntimeHost,
}

impl CniContainerd {
    /// `None` (with the reason printed) when there is no /etc/cni/net.d to mount over.
    pub fn start(host: RuntimeHost, plugin: Plugin, conflist: &Value) -> Option<CniContainerd> {
        let test = test_name();
        let Some(etc) = ["/etc/cni/net.d", "/etc/cni"]
            .into_iter()
            .find(|p| host.inside(p).is_dir())
        else {
            skip(format!(
                "SKIP {test}: no /etc/cni here to mount a private conflist directory over (the \
                 machine's /etc is never written)"
            ));
            return None;
        };
        let dir = host.dir.join("containerd");
        let plugins = host.dir.join("cni-bin");
        let rootfs = host.dir.join("rootfs");
        let runtime_dir = host.dir.join("pipework-run");
        std::fs::create_dir_all(&dir).unwrap();
        plugin_dir(&plugins, plugin);
        busybox_rootfs(&rootfs);
        host.tmpfs(etc);
        std::fs::create_dir_all(host.inside("/etc/cni/net.d")).unwrap();
        let name = conflist["name"].as_str().unwrap();
        std::fs::write(
            host.inside(&format!("/etc/cni/net.d/10-{name}.conflist")),
            serde_json::to_vec_pretty(conflist).unwrap(),
        )
        .unwrap();
        host.bind_over(&plugins, "/opt/cni/bin");
        host.bind_over(&plugins, REFERENCE_DIR);
        let d = dir.to_str().unwrap();
        write_containerd_config(
            &dir,
            &format!("[plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{d}/opt\"\n"),
        );
        let ns = unique("ns");
        // The cgroup parents ctr's tasks get (`/NAMESPACE/ID` in every hierarchy): the
        // machine's own cgroup tree, bound into the host.
        let mut hierarchies = vec![PathBuf::from("/sys/fs/cgroup")];
        if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
            hierarchies.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
        }
        let cgroup_dirs = hierarchies.into_iter().map(|h| h.join(&ns)).collect();
        let mut cmd = host.command("containerd");
        cmd.arg("--config")
            .arg(dir.join("config.toml"))
            .stdout(Stdio::null())
            .stderr(
                File::create(dir.join("containerd.log"))
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            );
        die_with_parent(&mut cmd);
        let c = CniContainerd {
            daemon: Some(cmd.spawn().expect("spawn containerd")),
            socket: dir.join("containerd.sock"),
            ns,
            rootfs,
            runtime_dir,
            dir,
            ids: Mutex::new(vec![]),
            cgroup_dirs,
            host,
        };
        assert!(
            wait_until(Duration::from_secs(10), || UnixStream::connect(&c.socket)
                .is_ok()
                && c.ctr(&["version"])
                    .output()
                    .is_ok_and(|o| o.status.success())),
            "containerd did not start: {}",
            std::fs::read_to_string(c.dir.join("containerd.log")).unwrap_or_default()
        );
        Some(c)
    }

    /// `ctr --address SOCK --namespace NS ARGS…` inside the host, with the plugin's
    /// PIPEWORK_RUNTIME_DIR (ctr's environment is the plugins').
    pub fn ctr(&self, args: &[&str]) -> Command {
        let mut c = self.host.command("ctr");
        c.args([
            "--address",
            self.socket.to_str().unwrap(),
            "--namespace",
            &self.ns,
        ])
        .args(args)
        .env("PIPEWORK_RUNTIME_DIR", &self.runtime_dir)
        .env_remove("CONTAINERD_NAMESPACE")
        .env_remove("CONTAINERD_ADDRESS");
        c
    }

    fn ctr_ok(&self, args: &[&str]) -> String {
        must(&mut self.ctr(args), &format!("ctr {}", args.join(" ")))
    }

    /// The CNI_CONTAINERID ctr gives the plugins: `NAMESPACE-ID`.
    pub fn cni_id(&self, id: &str) -> String {
        format!("{}-{id}", self.ns)
    }

    /// Spawns `ctr run --rm --cni --rootfs ROOTFS ID CMD…` (stdout and stderr piped): ADD
    /// before the task starts, DEL (with an empty CNI_NETNS) once it has exited.
    pub fn spawn_run_rm(&self, id: &str, cmd: &[&str]) -> Child {
        self.ids.lock().unwrap().push(id.to_string());
        let fifo = self.dir.join("fifo");
        let runc = self.dir.join("runc");
        let mut args = vec![
            "run",
            "--rm",
            "--cni",
            "--fifo-dir",
            fifo.to_str().unwrap(),
            "--runc-root",
            runc.to_str().unwrap(),
            "--rootfs",
            self.rootfs.to_str().unwrap(),
            id,
        ];
        args.extend_from_slice(cmd);
        let mut c = self.ctr(&args);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        die_with_parent(&mut c);
        c.spawn().expect("spawn ctr run")
    }

    /// `(pid, status)` of the task, from `ctr task ls`.
    pub fn task(&self, id: &str) -> Option<(u32, String)> {
        let out = self.ctr_ok(&["task", "ls"]);
        out.lines().skip(1).find_map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            (c.first() == Some(&id)).then(|| (c[1].parse().unwrap_or(0), c[2].to_string()))
        })
    }

    pub fn kill(&self, id: &str) {
        self.ctr_ok(&["task", "kill", "-s", "SIGKILL", id]);
    }

    /// Container IDs ctr still knows.
    pub fn containers(&self) -> Vec<String> {
        self.ctr_ok(&["containers", "ls", "-q"])
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    }
}

impl Drop for CniContainerd {
    fn drop(&mut self) {
        let ids = self.ids.lock().unwrap().clone();
        for id in &ids {
            let _ = self.ctr(&["task", "kill", "-s", "SIGKILL", id]).output();
            let _ = self.ctr(&["task", "rm", "-f", id]).output();
            let _ = self.ctr(&["containers", "rm", id]).output();
        }
        // A `ctr run --rm` whose task just died still sends its DEL: let it finish.
        wait_until(Duration::from_secs(10), || {
            !self
                .host
                .processes()
                .into_iter()
                .any(|p| proc_info(p).is_some_and(|i| i.comm == "ctr"))
        });
        if let Some(mut d) = self.daemon.take() {
            // SAFETY: kill(2) on our own child, not yet reaped.
            unsafe { libc::kill(d.id() as libc::pid_t, libc::SIGTERM) };
            if !wait_until(Duration::from_secs(5), || {
                matches!(d.try_wait(), Ok(Some(_)))
            }) {
                let _ = d.kill();
            }
            let _ = d.wait();
        }
        // Shims, before the cgroups they may still be in.
        self.host.stop_processes();
        for d in self.cgroup_dirs.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}
