//! The DHCP supervisor: a small process of ours (this binary, started as `pipework
//! __dhcp-supervise`) that obtains the lease, hands it to the attach, then renews at T1,
//! rebinds at T2, re-applies changes, and on SIGTERM releases the lease and unconfigures the
//! address. It lives inside the guest's namespace, which its presence keeps alive: so it
//! watches the guest's process (pidfd) or named namespace and lets go when the guest is gone.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::builtin::{self, Event};
use super::{ClientParams, Lease};
use crate::error::Error;
use crate::netlink::{msg, Netlink};

/// The hidden sub-command that runs a supervisor.
pub const SUBCOMMAND: &str = "__dhcp-supervise";
/// fds the supervisor inherits: the guest namespace, and a pidfd of the guest's process.
const NS_FD: RawFd = 3;
const PIDFD_FD: RawFd = 4;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    pub params: ClientParams,
    pub guest_spec: String,
    /// The guest's process, watched through the pidfd (fd 4) when there is one.
    pub guest_pid: Option<u32>,
    /// A named namespace's path, watched when there is no process.
    pub netns_path: Option<PathBuf>,
    pub netns_inode: u64,
    pub pidfile: PathBuf,
    pub infofile: PathBuf,
    pub resolv: Option<crate::guestfs::GuestFile>,
}

/// What `pipework ls` reads for a running DHCP client (built-in supervisor or external).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Info {
    pub pid: u32,
    pub client: String,
    pub guest: String,
    pub netns_inode: u64,
    pub ifname: String,
    pub address: Option<String>,
    pub pidfile: PathBuf,
}

pub fn write_info(path: &Path, info: &Info) -> Result<(), Error> {
    write_atomic(
        path,
        serde_json::to_string(info).unwrap_or_default().as_bytes(),
    )
}

pub use crate::store::write_atomic;

/// Attach side: starts the supervisor with the guest's namespace (and pidfd), waits for its
/// lease (or its error), and returns the lease and the supervisor's PID.
/// `started` gets the supervisor's PID as soon as it exists (the attach journals it then, so a
/// crash while waiting for the lease still leaves a way to stop it); its error stops the child.
pub fn spawn(
    cfg: &Config,
    ns: &crate::ns::NetNs,
    started: impl FnOnce(u32) -> Result<(), Error>,
) -> Result<(Lease, u32), Error> {
    let exe = std::env::current_exe().map_err(|e| Error::io("cannot find our own binary", e))?;
    // High, close-on-exec copies: the child moves them to 3 and 4 (dup2 clears the flag).
    let ns_copy = dup_high(ns.raw_fd())?;
    let pidfd = match cfg.guest_pid {
        Some(pid) => Some(
            crate::process::pidfd_open(pid)
                .ok_or_else(|| Error::Guest(format!("the guest's process {pid} is gone")))?,
        ),
        None => None,
    };
    let pid_copy = pidfd
        .as_ref()
        .map(|f| dup_high(f.as_raw_fd()))
        .transpose()?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(cfg.pidfile.with_extension("log"))
        .map_err(|e| Error::io("cannot open the supervisor's log", e))?;
    let (nsr, pidr) = (
        ns_copy.as_raw_fd(),
        pid_copy.as_ref().map(|f| f.as_raw_fd()),
    );
    let mut cmd = Command::new(exe);
    cmd.arg(SUBCOMMAND)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log));
    // SAFETY: only async-signal-safe calls (dup2, setsid) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(nsr, NS_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(p) = pidr {
                if libc::dup2(p, PIDFD_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // Its own session: no terminal's signals, and it outlives the attach.
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::io("cannot start the DHCP supervisor", e))?;
    let pid = child.id();
    let fail = |child: &mut std::process::Child, e: Error| {
        let _ = child.kill();
        let _ = child.wait();
        e
    };
    if let Err(e) = started(pid) {
        return Err(fail(&mut child, e));
    }
    if let Some(mut stdin) = child.stdin.take() {
        let cfg_json = serde_json::to_vec(cfg).unwrap_or_default();
        if let Err(e) = stdin.write_all(&cfg_json) {
            return Err(fail(
                &mut child,
                Error::io("cannot configure the DHCP supervisor", e),
            ));
        }
    }
    let stdout = child.stdout.take().expect("piped");
    let wait = cfg.params.timeout + Duration::from_secs(5);
    let line = match read_line_timeout(stdout, wait) {
        Ok(l) => l,
        Err(e) => return Err(fail(&mut child, e)),
    };
    #[derive(Deserialize)]
    struct Answer {
        lease: Option<Lease>,
        error: Option<String>,
    }
    let answer: Answer = serde_json::from_str(&line)
        .map_err(|_| Error::Guest(format!("the DHCP supervisor said: {}", line.trim())))?;
    match (answer.lease, answer.error) {
        (Some(l), _) => {
            // It runs on by itself; the attach must not wait for it.
            std::mem::forget(child);
            Ok((l, pid))
        }
        (None, e) => {
            let _ = child.wait();
            Err(Error::Timeout(
                e.unwrap_or_else(|| "the DHCP supervisor failed".into()),
            ))
        }
    }
}

fn dup_high(fd: RawFd) -> Result<OwnedFd, Error> {
    // SAFETY: F_DUPFD_CLOEXEC returns a new fd we own, or -1.
    let r = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 100) };
    if r < 0 {
        return Err(Error::io(
            "cannot duplicate a file descriptor",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: r is a fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

fn read_line_timeout(out: std::process::ChildStdout, wait: Duration) -> Result<String, Error> {
    let mut pfd = libc::pollfd {
        fd: out.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let r = unsafe { libc::poll(&mut pfd, 1, wait.as_millis().min(i32::MAX as u128) as i32) };
    if r <= 0 {
        return Err(Error::Timeout(
            "the DHCP supervisor did not answer in time".into(),
        ));
    }
    let mut line = String::new();
    BufReader::new(out)
        .read_line(&mut line)
        .map_err(|e| Error::io("cannot read the DHCP supervisor's answer", e))?;
    if line.is_empty() {
        return Err(Error::Guest(
            "the DHCP supervisor exited without a lease".into(),
        ));
    }
    Ok(line)
}

/// Supervisor side (`pipework __dhcp-supervise`): never returns.
pub fn run() -> ! {
    // Its stderr is its log (the attach's runtime directory): every lease event, at info.
    crate::log::init(0, tracing::Level::INFO, false);
    let code = match supervise() {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("{e}");
            1
        }
    };
    std::process::exit(code)
}

fn say(v: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

fn supervise() -> Result<(), Error> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| Error::io("cannot read the supervisor's configuration", e))?;
    let cfg: Config = serde_json::from_str(&input)
        .map_err(|e| Error::Invalid(format!("bad supervisor configuration: {e}")))?;
    let (ns, pidfd) = inherited(&cfg)?;
    nix::sched::setns(ns.fd(), nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| Error::io("cannot enter the guest", std::io::Error::from(e)))?;
    write_atomic(&cfg.pidfile, format!("{}\n", std::process::id()).as_bytes())?;
    let result = builtin::runtime()?.block_on(session(&cfg, pidfd));
    let _ = std::fs::remove_file(&cfg.pidfile);
    let _ = std::fs::remove_file(&cfg.infofile);
    if result.is_ok() {
        // A clean stop leaves nothing; a failure keeps its log for the user.
        let _ = std::fs::remove_file(cfg.pidfile.with_extension("log"));
    }
    result
}

/// The descriptors `spawn` hands over, verified before use: fd 3 must be the network namespace
/// the configuration names (by inode), and fd 4, when there is a guest process, a pidfd of that
/// very PID. Anything else (started by hand, or by someone else's fds) is refused.
fn inherited(cfg: &Config) -> Result<(crate::ns::NetNs, Option<OwnedFd>), Error> {
    let refuse = |why: String| {
        Error::Invalid(format!(
            "{SUBCOMMAND} is started only by pipework itself: {why}; refusing to run"
        ))
    };
    let ns = crate::ns::NetNs::open(Path::new(&format!("/proc/self/fd/{NS_FD}")))
        .map_err(|e| refuse(format!("fd {NS_FD} is not a network namespace ({e})")))?;
    if ns.inode != cfg.netns_inode {
        return Err(refuse(format!(
            "fd {NS_FD} is network namespace {}, not the guest's {}",
            ns.inode, cfg.netns_inode
        )));
    }
    // SAFETY: fd 3 is open (just reopened through /proc) and nothing else in this process uses
    // it; it is closed here, the reopened handle is what we keep.
    drop(unsafe { OwnedFd::from_raw_fd(NS_FD) });
    let Some(pid) = cfg.guest_pid else {
        return Ok((ns, None));
    };
    let held = pidfd_of(PIDFD_FD);
    if held != Some(pid) {
        return Err(refuse(format!(
            "fd {PIDFD_FD} is not a pidfd of the guest's process {pid} ({})",
            held.map_or("no pidfd".to_string(), |p| format!("it names {p}"))
        )));
    }
    // SAFETY: fd 4 is the pidfd checked above; we own it from here.
    Ok((ns, Some(unsafe { OwnedFd::from_raw_fd(PIDFD_FD) })))
}

/// The PID a pidfd refers to, from the kernel's fdinfo (`Pid:` is shown only for pidfds);
/// None when the fd is not open or not a pidfd.
fn pidfd_of(fd: RawFd) -> Option<u32> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?;
    pidfd_fdinfo_pid(&info)
}

fn pidfd_fdinfo_pid(info: &str) -> Option<u32> {
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse::<i64>().ok())
        .and_then(|p| u32::try_from(p).ok())
}

async fn session(cfg: &Config, pidfd: Option<OwnedFd>) -> Result<(), Error> {
    use tokio::io::unix::AsyncFd;
    use tokio::signal::unix::{signal, SignalKind};
    let p = &cfg.params;
    let mut nl = Netlink::open().map_err(|e| Error::netlink("cannot open a netlink socket", e))?;
    let mut client = match builtin::start(p, &mut nl).await {
        Ok(c) => c,
        Err(e) => {
            say(serde_json::json!({ "error": e.to_string() }));
            return Err(e);
        }
    };
    let mut current = match builtin::acquire(&mut client, p).await {
        Ok(l) => l,
        Err(e) => {
            say(serde_json::json!({ "error": e.to_string() }));
            return Err(e);
        }
    };
    say(serde_json::json!({ "lease": current }));
    // From here on, nobody reads our stdout.
    if let Ok(null) = std::fs::File::options().write(true).open("/dev/null") {
        // SAFETY: dup2 onto stdout.
        unsafe { libc::dup2(null.as_raw_fd(), 1) };
    }
    tracing::info!(
        "pid {}: {} on {} of {} (T1 {} s, T2 {} s, lease {} s)",
        std::process::id(),
        current.address,
        p.ifname,
        cfg.guest_spec,
        current.t1,
        current.t2,
        current.lease_time
    );
    let mut term = signal(SignalKind::terminate()).map_err(|e| Error::io("signal", e))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| Error::io("signal", e))?;
    let guest_exit = match pidfd {
        // SAFETY: we own the pidfd and hand it over; nothing else uses or closes it.
        Some(fd) => {
            Some(unsafe { AsyncFd::register(fd) }.map_err(|e| Error::io("pidfd", e.into()))?)
        }
        None => None,
    };
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let gone = |path: &Option<PathBuf>| -> bool {
        use std::os::unix::fs::MetadataExt;
        match path {
            Some(pth) => std::fs::metadata(pth)
                .map(|m| m.ino() != cfg.netns_inode)
                .unwrap_or(true),
            None => false,
        }
    };
    loop {
        tokio::select! {
            ev = builtin::next(&mut client, p) => match ev {
                Ok(Event::Bound(lease)) => {
                    if lease != current {
                        tracing::info!("lease changed: {} -> {}", current.address, lease.address);
                        if let Err(e) = reconfigure(&mut nl, p, Some(&current), &lease, cfg.resolv.as_ref()) {
                            tracing::warn!("cannot apply the new lease: {e}");
                        }
                        current = lease;
                    } else {
                        tracing::info!("lease renewed: {}", current.address);
                    }
                }
                Ok(Event::Progress(s)) => tracing::info!("dhcp state: {s}"),
                Err(e) => {
                    // Lease lost (expired, NAK, server gone): drop the address, start over.
                    tracing::warn!("{e}; starting over");
                    let _ = unconfigure(&mut nl, p, &current);
                    builtin::reset(&mut client);
                    match builtin::acquire(&mut client, p).await {
                        Ok(l) => {
                            let _ = reconfigure(&mut nl, p, None, &l, cfg.resolv.as_ref());
                            current = l;
                        }
                        Err(e) => {
                            tracing::warn!("{e}");
                            tokio::time::sleep(Duration::from_secs(5)).await;
                        }
                    }
                }
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = async { guest_exit.as_ref().unwrap().readable().await }, if guest_exit.is_some() => {
                tracing::info!("the guest's process exited: letting go");
                let _ = builtin::release(&mut client, p).await;
                return Ok(());
            }
            _ = tick.tick() => {
                if gone(&cfg.netns_path) {
                    tracing::info!("the guest's namespace was removed: letting go");
                    let _ = builtin::release(&mut client, p).await;
                    return Ok(());
                }
            }
        }
    }
    tracing::info!("stopping: releasing {}", current.address);
    let _ = builtin::release(&mut client, p).await;
    unconfigure(&mut nl, p, &current)
}

/// Puts a (new) lease on the interface: address, then default route and classless routes.
pub fn reconfigure(
    nl: &mut Netlink,
    p: &ClientParams,
    old: Option<&Lease>,
    new: &Lease,
    resolv: Option<&crate::guestfs::GuestFile>,
) -> Result<(), Error> {
    use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
    if let Some(o) = old.filter(|o| o.address != new.address) {
        let _ = unconfigure(nl, p, o);
    }
    nl.request(
        msg::new_address(
            p.index,
            new.address.addr(),
            new.address.prefix_len(),
            new.broadcast,
        ),
        NLM_F_CREATE | NLM_F_REPLACE,
    )
    .map_err(|e| Error::netlink(format!("cannot add {} to {}", new.address, p.ifname), e))?;
    if let Some(gw) = new.gateway {
        nl.request(
            msg::new_default_route(gw, p.index),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .map_err(|e| Error::netlink(format!("cannot route default via {gw}"), e))?;
    }
    if let Some(path) = resolv {
        if !new.dns.is_empty() {
            super::write_resolv(path, &new.dns)?;
        }
    }
    Ok(())
}

/// Removes a lease's address (its routes go with it).
pub fn unconfigure(nl: &mut Netlink, p: &ClientParams, lease: &Lease) -> Result<(), Error> {
    nl.request(
        msg::del_address(p.index, lease.address.addr(), lease.address.prefix_len()),
        0,
    )
    .map_err(|e| {
        Error::netlink(
            format!("cannot remove {} from {}", lease.address, p.ifname),
            e,
        )
    })
}
