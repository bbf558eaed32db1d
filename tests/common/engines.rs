//! Private container engines for tests/engines.rs, one per test, each in its own
//! `/tmp/pwt-<engine>-…` directory and removed (with everything it ran) on drop:
//! - [`Podman`]: `podman system service` on a private socket, private containers.conf and
//!   storage.conf (vfs, file locks, cgroupfs, CNI backend: nothing outside the directory is
//!   touched), a busybox image imported from a local rootfs;
//! - [`Lxc`]: a private LXC path (`-P`), containers with `lxc.net.0.type = empty`. LXC's
//!   tools reach a running container's monitor over an abstract unix socket, which lives in the
//!   network namespace `lxc-start` ran in: every lxc-* command runs in the test's host
//!   namespace, where pipework runs too;
//! - [`Containerd`]: a standalone containerd (own config, root, state, socket; CRI off) and
//!   `ctr run -d --rootfs DIR` tasks (no image), runc's root and the IO fifos in the directory.
//!
//! Processes are ended by PID (never by name), and only those whose command line names the
//! fixture's own directory.

#![allow(dead_code)]

use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use crate::common::*;

/// True when root and all `programs` are installed; prints why not otherwise.
pub fn engine_or_skip(test: &str, engine: &str, programs: &[&str]) -> bool {
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
            "SKIP {test}: {engine} is not installed (missing {missing:?}); scripts/testenv.sh \
             install"
        ));
        return false;
    }
    true
}

/// Runs a prepared command; panics with its output unless it succeeds; its stdout, trimmed.
fn must(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    if !out.status.success() {
        panic!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Live processes (not zombies) whose command line contains `needle`.
fn pids_mentioning(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| *p != me && proc_alive(*p))
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

/// Stops a daemon we started: TERM, then KILL after `grace`; reaps it.
fn stop_child(child: &mut Child, grace: Duration) {
    if let Ok(None) = child.try_wait() {
        // SAFETY: plain kill(2) on our own child, not yet reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        if !wait_until(grace, || matches!(child.try_wait(), Ok(Some(_)))) {
            let _ = child.kill();
        }
    }
    let _ = child.wait();
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

/// Waits until something accepts connections on the unix socket `sock`.
fn wait_socket(sock: &Path, limit: Duration) -> bool {
    wait_until(limit, || UnixStream::connect(sock).is_ok())
}

// ---------------------------------------------------------------------------------------------
// Podman
// ---------------------------------------------------------------------------------------------

/// A private rootful Podman and its API service.
pub struct Podman {
    service: Option<Child>,
    pub socket: PathBuf,
    pub image: String,
    dir: TempDir,
}

/// A Podman container (removed with its [`Podman`]).
pub struct PodmanGuest {
    pub name: String,
    pub id: String,
    /// 0 when not running.
    pub pid: u32,
}

impl Ns for PodmanGuest {
    fn ns_path(&self) -> PathBuf {
        assert!(
            self.pid != 0,
            "podman container {} is not running",
            self.name
        );
        PathBuf::from(format!("/proc/{}/ns/net", self.pid))
    }
    fn describe(&self) -> String {
        format!("podman container {}", self.name)
    }
}

impl Podman {
    pub fn start() -> Podman {
        let dir = TempDir::new("podman");
        let d = dir.str().to_string();
        std::fs::create_dir_all(dir.join("net.d")).unwrap();
        std::fs::write(
            dir.join("containers.conf"),
            format!(
                r#"[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{d}/events.log"
lock_type = "file"
tmp_dir = "{d}/tmp"
static_dir = "{d}/root/libpod"
volume_path = "{d}/root/volumes"
[network]
network_backend = "cni"
cni_plugin_dirs = ["/usr/lib/cni"]
network_config_dir = "{d}/net.d"
"#
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
        let mut p = Podman {
            service: None,
            socket: dir.join("podman.sock"),
            image: "localhost/pwt-busybox:latest".into(),
            dir,
        };
        // The image: a busybox rootfs, imported from a tarball.
        let rootfs = p.dir.join("rootfs");
        busybox_rootfs(&rootfs);
        let tar = p.dir.join("rootfs.tar");
        must(
            Command::new("tar")
                .arg("-C")
                .arg(&rootfs)
                .arg("-cf")
                .arg(&tar)
                .arg("."),
            "tar of the busybox rootfs",
        );
        p.ok(&["import", "-q", tar.to_str().unwrap(), &p.image.clone()]);
        let mut svc = p.command();
        svc.args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", p.socket.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(p.dir.join("service.log"))
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            );
        die_with_parent(&mut svc);
        p.service = Some(svc.spawn().expect("spawn podman system service"));
        assert!(
            wait_socket(&p.socket, Duration::from_secs(10)),
            "podman system service did not listen on {}: {}",
            p.socket.display(),
            std::fs::read_to_string(p.dir.join("service.log")).unwrap_or_default()
        );
        p
    }

    /// `unix://…`: CONTAINER_HOST for pipework.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The podman CLI on this instance's configuration (never remote).
    pub fn command(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", self.dir.join("storage.conf"))
            .env_remove("CONTAINER_HOST")
            .env_remove("CONTAINER_CONNECTION");
        c
    }

    pub fn output(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("spawn podman")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        must(
            self.command().args(args),
            &format!("podman {}", args.join(" ")),
        )
    }

    /// `podman run -d --network=none --name NAME IMAGE sleep 100000`.
    pub fn run(&self, name: &str) -> PodmanGuest {
        self.make("run", name)
    }

    /// `podman create …`: exists, never started.
    pub fn create(&self, name: &str) -> PodmanGuest {
        self.make("create", name)
    }

    fn make(&self, verb: &str, name: &str) -> PodmanGuest {
        let mut args = vec![verb];
        if verb == "run" {
            args.push("-d");
        }
        args.extend_from_slice(&[
            "--network=none",
            "--name",
            name,
            &self.image,
            "sleep",
            "100000",
        ]);
        let id = self.ok(&args);
        let pid = self
            .ok(&["inspect", "-f", "{{.State.Pid}}", name])
            .parse()
            .expect("State.Pid");
        PodmanGuest {
            name: name.into(),
            id,
            pid,
        }
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.output(&["rm", "-a", "-f", "-t", "0"]);
        if let Some(mut s) = self.service.take() {
            stop_child(&mut s, Duration::from_secs(5));
        }
        // conmon and `podman container cleanup` of this instance, if any linger.
        for pid in pids_mentioning(self.dir.str()) {
            terminate(pid, Duration::from_secs(2));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// LXC
// ---------------------------------------------------------------------------------------------

/// A private LXC path; containers are created, started and destroyed from `host`'s namespace.
pub struct Lxc {
    /// The host namespace, held open: the fixture outlives the test's named namespace.
    host_ns: std::fs::File,
    names: Mutex<Vec<String>>,
    dir: TempDir,
}

/// An LXC container (destroyed with its [`Lxc`]).
pub struct LxcGuest {
    pub name: String,
    /// 0 when not running.
    pub pid: u32,
}

impl Ns for LxcGuest {
    fn ns_path(&self) -> PathBuf {
        assert!(self.pid != 0, "LXC container {} is not running", self.name);
        PathBuf::from(format!("/proc/{}/ns/net", self.pid))
    }
    fn describe(&self) -> String {
        format!("LXC container {}", self.name)
    }
}

impl Lxc {
    pub fn new(host: &dyn Ns) -> Lxc {
        let dir = TempDir::new("lxc");
        std::fs::write(
            dir.join("container.conf"),
            "lxc.net.0.type = empty\nlxc.apparmor.profile = unconfined\n",
        )
        .unwrap();
        Lxc {
            host_ns: std::fs::File::open(host.ns_path()).expect("open the host namespace"),
            names: Mutex::new(vec![]),
            dir,
        }
    }

    /// The LXC path (LXC_PATH for pipework).
    pub fn path(&self) -> &str {
        self.dir.str()
    }

    /// `lxc-TOOL -P PATH ARGS…` in the host namespace.
    pub fn tool(&self, tool: &str, args: &[&str]) -> Command {
        let mut c = Command::new(tool);
        c.args(["-P", self.path()]).args(args);
        let ns = self.host_ns.try_clone().expect("dup the host namespace fd");
        // SAFETY: only async-signal-safe calls (setns) run in the child.
        unsafe {
            c.pre_exec(move || {
                use std::os::fd::AsRawFd;
                if libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        c
    }

    /// `lxc-create -t busybox`: defined, not running.
    pub fn create(&self, name: &str) -> LxcGuest {
        self.names.lock().unwrap().push(name.to_string());
        let conf = self.dir.join("container.conf");
        must(
            &mut self.tool(
                "lxc-create",
                &["-n", name, "-f", conf.to_str().unwrap(), "-t", "busybox"],
            ),
            &format!("lxc-create {name}"),
        );
        LxcGuest {
            name: name.into(),
            pid: 0,
        }
    }

    /// Created and started; its init PID.
    pub fn run(&self, name: &str) -> LxcGuest {
        let mut g = self.create(name);
        let log = self.dir.join(&format!("{name}.log"));
        must(
            &mut self.tool(
                "lxc-start",
                &["-n", name, "-d", "-o", log.to_str().unwrap()],
            ),
            &format!("lxc-start {name}"),
        );
        let mut pid = 0;
        wait_until(Duration::from_secs(10), || {
            pid = must(
                &mut self.tool("lxc-info", &["-n", name, "-pH"]),
                &format!("lxc-info {name}"),
            )
            .parse()
            .unwrap_or(0);
            pid != 0
        });
        assert!(pid != 0, "LXC container {name} did not start");
        ip(&PidNs(pid), &["link", "set", "lo", "up"]);
        g.pid = pid;
        g
    }
}

/// A process's namespace, for `ip`.
struct PidNs(u32);
impl Ns for PidNs {
    fn ns_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.0))
    }
}

impl Drop for Lxc {
    fn drop(&mut self) {
        for name in self.names.lock().unwrap().iter() {
            let _ = self
                .tool("lxc-stop", &["-n", name, "-k"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = self
                .tool("lxc-destroy", &["-n", name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        for pid in pids_mentioning(self.dir.str()) {
            terminate(pid, Duration::from_secs(2));
        }
        // liblxc's lock files for this LXC path.
        let _ = std::fs::remove_dir_all(
            Path::new("/run/lxc/lock")
                .join(self.dir.path.strip_prefix("/").unwrap_or(&self.dir.path)),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// containerd
// ---------------------------------------------------------------------------------------------

/// A standalone containerd and its tasks.
pub struct Containerd {
    daemon: Option<Child>,
    pub socket: PathBuf,
    tasks: Mutex<Vec<(String, String)>>,
    /// cgroup directories `/sys/fs/cgroup[/CONTROLLER]/NAMESPACE` that were not there before.
    cgroup_dirs: Mutex<Vec<PathBuf>>,
    dir: TempDir,
}

impl Containerd {
    pub fn start() -> Containerd {
        let dir = TempDir::new("ctrd");
        write_containerd_config(Path::new(dir.str()), "");
        busybox_rootfs(&dir.join("rootfs"));
        let mut cmd = Command::new("containerd");
        cmd.arg("--config")
            .arg(dir.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(dir.join("containerd.log"))
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            );
        die_with_parent(&mut cmd);
        let daemon = cmd.spawn().expect("spawn containerd");
        let c = Containerd {
            daemon: Some(daemon),
            socket: dir.join("containerd.sock"),
            tasks: Mutex::new(vec![]),
            cgroup_dirs: Mutex::new(vec![]),
            dir,
        };
        assert!(
            wait_socket(&c.socket, Duration::from_secs(10))
                && wait_until(Duration::from_secs(10), || c
                    .ctr("default", &["version"])
                    .status
                    .success()),
            "containerd did not start: {}",
            std::fs::read_to_string(c.dir.join("containerd.log")).unwrap_or_default()
        );
        c
    }

    /// CONTAINERD_ADDRESS for pipework.
    pub fn address(&self) -> &str {
        self.socket.to_str().unwrap()
    }

    pub fn ctr(&self, ns: &str, args: &[&str]) -> Output {
        Command::new("ctr")
            .args(["--address", self.address(), "--namespace", ns])
            .args(args)
            .env_remove("CONTAINERD_NAMESPACE")
            .stdin(Stdio::null())
            .output()
            .expect("spawn ctr")
    }

    fn ctr_ok(&self, ns: &str, args: &[&str]) -> String {
        let out = self.ctr(ns, args);
        assert!(
            out.status.success(),
            "ctr -n {ns} {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ctr run -d --rootfs DIR ID /bin/sleep 100000`: the task's PID.
    pub fn run(&self, ns: &str, id: &str) -> u32 {
        self.tasks
            .lock()
            .unwrap()
            .push((ns.to_string(), id.to_string()));
        // The cgroup parent ctr will make for this namespace, where it is new.
        let mut hierarchies = vec![PathBuf::from("/sys/fs/cgroup")];
        if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
            hierarchies.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
        }
        self.cgroup_dirs.lock().unwrap().extend(
            hierarchies
                .into_iter()
                .map(|h| h.join(ns))
                .filter(|p| !p.exists()),
        );
        let rootfs = self.dir.join("rootfs");
        let fifo = self.dir.join("fifo");
        let runc = self.dir.join("runc");
        self.ctr_ok(
            ns,
            &[
                "run",
                "-d",
                "--fifo-dir",
                fifo.to_str().unwrap(),
                "--runc-root",
                runc.to_str().unwrap(),
                "--rootfs",
                rootfs.to_str().unwrap(),
                id,
                "/bin/sleep",
                "100000",
            ],
        );
        let pid = self.task(ns, id).map(|(p, _)| p).unwrap_or(0);
        assert!(pid != 0, "task {ns}/{id} has no PID");
        ip(&PidNs(pid), &["link", "set", "lo", "up"]);
        pid
    }

    /// `(pid, status)` of the task, from `ctr task ls`.
    pub fn task(&self, ns: &str, id: &str) -> Option<(u32, String)> {
        let out = self.ctr_ok(ns, &["task", "ls"]);
        out.lines().skip(1).find_map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            (c.first() == Some(&id)).then(|| (c[1].parse().unwrap_or(0), c[2].to_string()))
        })
    }

    /// Kills the task and waits until containerd reports it STOPPED.
    pub fn kill(&self, ns: &str, id: &str) {
        self.ctr_ok(ns, &["task", "kill", "-s", "SIGKILL", id]);
        assert!(
            wait_until(Duration::from_secs(10), || self
                .task(ns, id)
                .is_some_and(|(_, s)| s == "STOPPED")),
            "task {ns}/{id} did not stop"
        );
    }

    /// Deletes the (stopped) task: the container stays, without a task.
    pub fn delete_task(&self, ns: &str, id: &str) {
        self.ctr_ok(ns, &["task", "rm", id]);
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let tasks = self.tasks.lock().unwrap().clone();
        for (ns, id) in &tasks {
            let _ = self.ctr(ns, &["task", "rm", "-f", id]);
            let _ = self.ctr(ns, &["containers", "rm", id]);
        }
        if let Some(mut d) = self.daemon.take() {
            stop_child(&mut d, Duration::from_secs(5));
        }
        // Shims of this daemon (their command line names its socket).
        for pid in pids_mentioning(self.dir.str()) {
            terminate(pid, Duration::from_secs(2));
        }
        // The default cgroup of a ctr task is /NAMESPACE/ID: runc removes ID, not NAMESPACE.
        // Remove the NAMESPACE directories this fixture made (empty ones only).
        for dir in self.cgroup_dirs.lock().unwrap().iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}
