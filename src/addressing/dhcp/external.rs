//! The original's external DHCP clients (udhcpc, dhclient, dhcpcd), run inside the guest's
//! namespace by argv, with a script of pipework's own: this very binary, which recognises the
//! call by PIPEWORK_DHCP_HOOK in its environment and configures only the guest interface over
//! netlink. The distributions' scripts are never run (they rewrite the host's resolv.conf),
//! and every file a client keeps (pid, leases, config) lives in pipework's runtime directory.

use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};

use crate::error::Error;
use crate::netlink::{msg, Netlink};
use crate::ns::NetNs;
use crate::process::Held;
use crate::request::DhcpClient;

/// Set in the client's environment: the script it runs is us, in hook mode.
pub const HOOK_ENV: &str = "PIPEWORK_DHCP_HOOK";
const RESOLV_ENV: &str = "PIPEWORK_DHCP_RESOLV";

/// How to run one external client for one interface.
#[derive(Debug, Clone)]
pub struct Run {
    pub client: DhcpClient,
    pub ifname: String,
    pub hostname: Option<String>,
    pub v6: bool,
    pub keep: bool,
    pub options: Vec<String>,
    pub timeout: Duration,
    /// `<runtime>/dhcp/<inode>-<if>`: pid, leases and config files get their extension.
    pub files: PathBuf,
    pub resolv: Option<crate::guestfs::GuestFile>,
}

impl Run {
    pub fn pidfile(&self) -> PathBuf {
        self.files.with_extension("pid")
    }

    /// The client's argv (without the program's own path, which is argv[0]).
    pub fn argv(&self, script: &Path) -> Result<Vec<String>, Error> {
        let script = script.display().to_string();
        let pid = self.pidfile().display().to_string();
        let mut a: Vec<String> = Vec::new();
        match self.client {
            DhcpClient::Udhcpc => {
                if self.v6 {
                    return Err(Error::Invalid(
                        "udhcpc speaks only DHCPv4: use dhcp6 (built in) or dhclient with -a 6"
                            .into(),
                    ));
                }
                a.extend(
                    ["udhcpc", "-i", &self.ifname, "-s", &script, "-p", &pid].map(String::from),
                );
                // Give up when no server answers (-n); one-shot quits once bound (-q), the
                // kept one forks to the background once bound (udhcpc's default).
                a.push("-n".into());
                if !self.keep {
                    a.push("-q".into());
                }
                if let Some(h) = &self.hostname {
                    a.extend(["-x".into(), format!("hostname:{h}")]);
                }
            }
            DhcpClient::Dhclient => {
                let conf = self.files.with_extension("dhclient.conf");
                a.push("dhclient".into());
                if self.v6 {
                    a.push("-6".into());
                }
                a.extend(["-1", "-sf", &script, "-pf", &pid].map(String::from));
                // dhclient runs its script with a clean environment: pass ours explicitly.
                a.extend(self.script_env("-e"));
                a.extend([
                    "-lf".into(),
                    self.files.with_extension("leases").display().to_string(),
                    "-cf".into(),
                    conf.display().to_string(),
                ]);
            }
            DhcpClient::Dhcpcd => {
                a.push("dhcpcd".into());
                a.push(if self.v6 { "-6" } else { "-4" }.into());
                a.extend(["-c", &script, "-t"].map(String::from));
                a.push(format!("{}", self.timeout.as_secs().max(1)));
                // Its hooks are replaced by our script (-c); skip the RFC 5227 ARP probe
                // (seconds) as other container DHCP clients do; our environment for the script.
                a.push("--noarp".into());
                a.extend(self.script_env("--env"));
                if !self.keep {
                    a.push("-1".into()); // one shot: exit once bound
                }
                if let Some(h) = &self.hostname {
                    a.extend(["-h".into(), h.clone()]);
                }
            }
            DhcpClient::Builtin | DhcpClient::Slaac => {
                return Err(Error::Invalid("not an external DHCP client".into()))
            }
        }
        a.extend(self.options.iter().cloned());
        if matches!(self.client, DhcpClient::Dhclient | DhcpClient::Dhcpcd) {
            a.push(self.ifname.clone());
        }
        Ok(a)
    }

    /// `FLAG NAME=VALUE` pairs that put the hook's settings in a client's script environment.
    fn script_env(&self, flag: &str) -> Vec<String> {
        let mut v = vec![
            flag.to_string(),
            format!("{HOOK_ENV}={}", self.client.name()),
        ];
        if let Some(r) = self.resolv_env() {
            v.extend([flag.to_string(), format!("{RESOLV_ENV}={r}")]);
        }
        v
    }

    /// The guest file, as JSON (its root, path and owner process) for the hook.
    fn resolv_env(&self) -> Option<String> {
        self.resolv
            .as_ref()
            .and_then(|r| serde_json::to_string(r).ok())
    }

    /// dhclient's own configuration: our timeout, the hostname, and what to request.
    fn dhclient_conf(&self) -> String {
        let mut c = format!("timeout {};\nretry 1;\n", self.timeout.as_secs().max(1));
        if let Some(h) = &self.hostname {
            c.push_str(&format!("send host-name \"{h}\";\n"));
        }
        c.push_str("request subnet-mask, broadcast-address, routers, domain-name-servers;\n");
        c
    }
}

/// Runs the client inside the guest until it has a lease. One-shot clients leave nothing
/// behind; kept ones keep running (the daemon is returned, held by its pidfd).
pub fn run(r: &Run, ns: &NetNs) -> Result<Option<Held>, Error> {
    let script = std::env::current_exe().map_err(|e| Error::io("cannot find our own binary", e))?;
    let argv = r.argv(&script)?;
    if let Some(d) = r.files.parent() {
        std::fs::create_dir_all(d)
            .map_err(|e| Error::io(format!("cannot create {}", d.display()), e))?;
    }
    if r.client == DhcpClient::Dhclient {
        std::fs::write(r.files.with_extension("dhclient.conf"), r.dhclient_conf())
            .map_err(|e| Error::io("cannot write dhclient's configuration", e))?;
    }
    let _ = std::fs::remove_file(r.pidfile());
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env(HOOK_ENV, r.client.name())
        .env(RESOLV_ENV, r.resolv_env().unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let fd = ns.raw_fd();
    // dhcpcd keeps its pidfile, control socket and leases under fixed paths named after the
    // interface (/run/dhcpcd/eth1-4.pid…), shared by every namespace: two guests' eth1 would
    // collide. It gets a private mount namespace where those directories are ours.
    let private = if r.client == DhcpClient::Dhcpcd {
        let run = r.files.with_extension("dhcpcd-run");
        let lib = r.files.with_extension("dhcpcd-lib");
        for d in [
            &run,
            &lib,
            &PathBuf::from(DHCPCD_RUN),
            &PathBuf::from(DHCPCD_LIB),
        ] {
            std::fs::create_dir_all(d)
                .map_err(|e| Error::io(format!("cannot create {}", d.display()), e))?;
        }
        Some((cstr(&run)?, cstr(&lib)?))
    } else {
        None
    };
    // SAFETY: only async-signal-safe syscalls (setns, unshare, mount) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let b = std::os::fd::BorrowedFd::borrow_raw(fd);
            nix::sched::setns(b, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)?;
            if let Some((run, lib)) = &private {
                private_dirs(run, lib)?;
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Guest(format!(
                "You asked for DHCP client {}, but I can't find it (install it, or use the \
                 built-in client: dhcp)",
                argv[0]
            ))
        } else {
            Error::io(format!("cannot run {}", argv[0]), e)
        }
    })?;
    // The foreground process ends once bound (it exits, or forks the kept daemon and exits).
    let deadline = Instant::now() + r.timeout + Duration::from_secs(2);
    let status = loop {
        if let Some(s) = child
            .try_wait()
            .map_err(|e| Error::io("waiting for the client", e))?
        {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            kill_daemon(r, ns.inode);
            return Err(Error::Timeout(format!(
                "no DHCP server answered {} on {} within {:.0} s",
                argv[0],
                r.ifname,
                r.timeout.as_secs_f64()
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        kill_daemon(r, ns.inode);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        return Err(Error::Timeout(format!(
            "{} got no lease on {} ({status}{}{last})",
            argv[0],
            r.ifname,
            if last.is_empty() { "" } else { ": " }
        )));
    }
    if r.keep {
        return Ok(daemon_pid(r, ns.inode));
    }
    // One-shot: a client that went to the background anyway (dhclient always does, writing
    // its pidfile just after) is stopped without releasing, as the original does.
    if r.client == DhcpClient::Dhclient {
        daemon_pid(r, ns.inode);
    }
    kill_daemon(r, ns.inode);
    Ok(None)
}

const DHCPCD_RUN: &str = "/run/dhcpcd";
const DHCPCD_LIB: &str = "/var/lib/dhcpcd";

fn cstr(p: &Path) -> Result<std::ffi::CString, Error> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::Invalid(format!("bad path {}", p.display())))
}

/// In the forked child: a mount namespace of its own where dhcpcd's run and lease directories
/// are bind mounts of ours (so its pidfile is readable here, and nothing is shared).
fn private_dirs(run: &std::ffi::CStr, lib: &std::ffi::CStr) -> std::io::Result<()> {
    let check = |r: libc::c_int| {
        if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    let none = std::ptr::null::<libc::c_char>();
    // SAFETY: plain syscalls with valid NUL-terminated paths.
    unsafe {
        check(libc::unshare(libc::CLONE_NEWNS))?;
        check(libc::mount(
            none,
            c"/".as_ptr(),
            none,
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ))?;
        check(libc::mount(
            run.as_ptr(),
            c"/run/dhcpcd".as_ptr(),
            none,
            libc::MS_BIND,
            std::ptr::null(),
        ))?;
        check(libc::mount(
            lib.as_ptr(),
            c"/var/lib/dhcpcd".as_ptr(),
            none,
            libc::MS_BIND,
            std::ptr::null(),
        ))?;
    }
    Ok(())
}

impl Run {
    /// What the daemon's /proc/PID/comm says (busybox's udhcpc may run as `busybox`).
    fn comms(&self) -> &'static [&'static str] {
        match self.client {
            DhcpClient::Udhcpc => &["udhcpc", "busybox"],
            DhcpClient::Dhclient => &["dhclient"],
            DhcpClient::Dhcpcd => &["dhcpcd"],
            DhcpClient::Builtin | DhcpClient::Slaac => &[],
        }
    }
}

/// The live daemon named by the client's pidfiles (ours for udhcpc and dhclient, dhcpcd's own
/// in its private run directory). A pidfile holds a bare PID: it counts only for a process of
/// that client inside the guest's namespace `netns`, and is then held by a pidfd.
fn daemon_now(r: &Run, netns: u64) -> Option<Held> {
    let mut files = vec![r.pidfile()];
    if let Ok(d) = std::fs::read_dir(r.files.with_extension("dhcpcd-run")) {
        files.extend(
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "pid")),
        );
    }
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .filter_map(|s| s.trim().parse::<u32>().ok())
        .find_map(|p| Held::in_netns(p, netns, r.comms()))
}

/// The running daemon. A forking client writes its pidfile just after its foreground process
/// exits: wait for it, briefly.
fn daemon_pid(r: &Run, netns: u64) -> Option<Held> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let held = daemon_now(r, netns);
        if held.is_some() || Instant::now() >= deadline {
            // dhcpcd's own pidfile is inside its mount namespace: mirror it where ours live.
            if let (Some(h), DhcpClient::Dhcpcd) = (&held, r.client) {
                let _ = std::fs::write(r.pidfile(), format!("{}\n", h.pid));
            }
            return held;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Stops a client's daemon (named by its pidfile, verified), without letting it release or
/// unconfigure.
pub fn kill_daemon(r: &Run, netns: u64) {
    if let Some(h) = daemon_now(r, netns) {
        h.signal(libc::SIGKILL);
        h.exited_within(Duration::from_secs(1));
    }
    let _ = std::fs::remove_file(r.pidfile());
    let _ = std::fs::remove_dir_all(r.files.with_extension("dhcpcd-run"));
    let _ = std::fs::remove_dir_all(r.files.with_extension("dhcpcd-lib"));
}

// ---- hook mode: we are the client's script ---------------------------------------------------

/// What a client's script call asks for.
#[derive(Debug, PartialEq)]
pub enum HookAction {
    Bind {
        ifname: String,
        address: IpNet,
        broadcast: Option<Ipv4Addr>,
        gateway: Option<IpAddr>,
        dns: Vec<IpAddr>,
    },
    Unbind {
        ifname: String,
        address: Option<IpNet>,
    },
    /// Only name servers to record (dhcpcd configures addresses itself).
    Dns {
        dns: Vec<IpAddr>,
    },
    Nothing,
}

fn mask_len(mask: &str) -> Option<u8> {
    mask.parse::<Ipv4Addr>()
        .ok()
        .map(|m| u32::from(m).count_ones() as u8)
        .or_else(|| mask.parse::<u8>().ok())
}

fn ips(list: Option<String>) -> Vec<IpAddr> {
    list.unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Reads the client's call: `event` is argv[1] (udhcpc) and `var` its environment.
pub fn hook_action(
    client: &str,
    event: Option<&str>,
    var: &dyn Fn(&str) -> Option<String>,
) -> HookAction {
    let v4 = |ip: Option<String>, mask: Option<String>| -> Option<IpNet> {
        let ip: Ipv4Addr = ip?.parse().ok()?;
        IpNet::new(IpAddr::V4(ip), mask_len(&mask?)?).ok()
    };
    match client {
        "udhcpc" => {
            let ifname = var("interface").unwrap_or_default();
            match event {
                Some("bound") | Some("renew") => match v4(var("ip"), var("subnet")) {
                    Some(address) => HookAction::Bind {
                        ifname,
                        address,
                        broadcast: var("broadcast").and_then(|b| b.parse().ok()),
                        gateway: ips(var("router")).first().copied(),
                        dns: ips(var("dns")),
                    },
                    None => HookAction::Nothing,
                },
                Some("deconfig") => HookAction::Unbind {
                    ifname,
                    address: None,
                },
                _ => HookAction::Nothing,
            }
        }
        "dhclient" => {
            let ifname = var("interface").unwrap_or_default();
            match var("reason").as_deref() {
                Some("BOUND" | "RENEW" | "REBIND" | "REBOOT") => {
                    match v4(var("new_ip_address"), var("new_subnet_mask")) {
                        Some(address) => HookAction::Bind {
                            ifname,
                            address,
                            broadcast: var("new_broadcast_address").and_then(|b| b.parse().ok()),
                            gateway: ips(var("new_routers")).first().copied(),
                            dns: ips(var("new_domain_name_servers")),
                        },
                        None => HookAction::Nothing,
                    }
                }
                Some("BOUND6" | "RENEW6" | "REBIND6" | "REBOOT6") => {
                    let ip: Option<IpAddr> = var("new_ip6_address").and_then(|a| a.parse().ok());
                    let len: u8 = var("new_ip6_prefixlen")
                        .and_then(|l| l.parse().ok())
                        .unwrap_or(128);
                    match ip.and_then(|ip| IpNet::new(ip, len).ok()) {
                        Some(address) => HookAction::Bind {
                            ifname,
                            address,
                            broadcast: None,
                            gateway: None,
                            dns: ips(var("new_dhcp6_name_servers")),
                        },
                        None => HookAction::Nothing,
                    }
                }
                Some("EXPIRE" | "FAIL" | "RELEASE" | "STOP") => HookAction::Unbind {
                    ifname,
                    address: v4(var("old_ip_address"), var("old_subnet_mask")),
                },
                Some("EXPIRE6" | "RELEASE6" | "STOP6") => HookAction::Unbind {
                    ifname,
                    address: var("old_ip6_address")
                        .and_then(|a| a.parse::<IpAddr>().ok())
                        .and_then(|ip| {
                            let len = var("old_ip6_prefixlen")
                                .and_then(|l| l.parse().ok())
                                .unwrap_or(128);
                            IpNet::new(ip, len).ok()
                        }),
                },
                _ => HookAction::Nothing,
            }
        }
        "dhcpcd" => match var("reason").as_deref() {
            Some("BOUND" | "RENEW" | "REBIND" | "REBOOT" | "BOUND6" | "RENEW6" | "REBIND6") => {
                let mut dns = ips(var("new_domain_name_servers"));
                dns.extend(ips(var("new_dhcp6_name_servers")));
                HookAction::Dns { dns }
            }
            _ => HookAction::Nothing,
        },
        _ => HookAction::Nothing,
    }
}

/// Hook mode entry (`PIPEWORK_DHCP_HOOK` set): configure the interface, exit 0. Runs inside
/// the guest's namespace (the client's), touching only the interface it was called for and,
/// when asked, the guest's resolv.conf.
pub fn hook(client: &str) -> ! {
    // Run by the client before any front end: its one error line needs a subscriber of its own.
    crate::log::init(0, tracing::Level::WARN, false);
    let event = std::env::args().nth(1);
    let action = hook_action(client, event.as_deref(), &|k| std::env::var(k).ok());
    let resolv = match std::env::var(RESOLV_ENV).ok().filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => serde_json::from_str::<crate::guestfs::GuestFile>(&v)
            .map(Some)
            .map_err(|e| Error::Invalid(format!("bad {RESOLV_ENV}: {e}"))),
    };
    let code = match resolv.and_then(|r| do_hook(action, r.as_ref())) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("{e}");
            1
        }
    };
    std::process::exit(code)
}

fn do_hook(action: HookAction, resolv: Option<&crate::guestfs::GuestFile>) -> Result<(), Error> {
    let dns = match &action {
        HookAction::Nothing | HookAction::Unbind { .. } => Vec::new(),
        HookAction::Bind { dns, .. } | HookAction::Dns { dns } => dns.clone(),
    };
    let nl = || Netlink::open().map_err(|e| Error::netlink("cannot open a netlink socket", e));
    match action {
        HookAction::Bind {
            ifname,
            address,
            broadcast,
            gateway,
            ..
        } => {
            let mut nl = nl()?;
            let index = index_of(&mut nl, &ifname)?;
            nl.request(msg::set_link_up(index), 0)
                .map_err(|e| Error::netlink(format!("cannot bring {ifname} up"), e))?;
            nl.request(
                msg::new_address(index, address.addr(), address.prefix_len(), broadcast),
                NLM_F_CREATE | NLM_F_REPLACE,
            )
            .map_err(|e| Error::netlink(format!("cannot add {address} to {ifname}"), e))?;
            if let Some(gw) = gateway {
                nl.request(
                    msg::new_default_route(gw, index),
                    NLM_F_CREATE | NLM_F_REPLACE,
                )
                .map_err(|e| Error::netlink(format!("cannot route default via {gw}"), e))?;
            }
        }
        HookAction::Unbind { ifname, address } => {
            let mut nl = nl()?;
            if let (Ok(index), Some(a)) = (index_of(&mut nl, &ifname), address) {
                let _ = nl.request(msg::del_address(index, a.addr(), a.prefix_len()), 0);
            }
        }
        HookAction::Dns { .. } | HookAction::Nothing => {}
    }
    if let (Some(path), false) = (resolv, dns.is_empty()) {
        super::write_resolv(path, &dns)?;
    }
    Ok(())
}

fn index_of(nl: &mut dyn crate::netlink::Rtnl, ifname: &str) -> Result<u32, Error> {
    crate::links::get_link(nl, ifname)?
        .map(|l| l.header.index)
        .ok_or_else(|| Error::HostInterface(format!("no interface {ifname} here")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let v: Vec<(String, String)> = pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        move |k| v.iter().find(|(a, _)| a == k).map(|(_, b)| b.clone())
    }

    #[test]
    fn udhcpc_bound() {
        let e = env(&[
            ("interface", "eth1"),
            ("ip", "10.0.0.7"),
            ("subnet", "255.255.255.0"),
            ("broadcast", "10.0.0.255"),
            ("router", "10.0.0.1 10.0.0.2"),
            ("dns", "10.0.0.53"),
        ]);
        assert_eq!(
            hook_action("udhcpc", Some("bound"), &e),
            HookAction::Bind {
                ifname: "eth1".into(),
                address: "10.0.0.7/24".parse().unwrap(),
                broadcast: Some("10.0.0.255".parse().unwrap()),
                gateway: Some("10.0.0.1".parse().unwrap()),
                dns: vec!["10.0.0.53".parse().unwrap()],
            }
        );
        assert_eq!(
            hook_action("udhcpc", Some("leasefail"), &e),
            HookAction::Nothing
        );
    }

    #[test]
    fn dhclient_v4_v6_and_release() {
        let e = env(&[
            ("reason", "BOUND"),
            ("interface", "eth1"),
            ("new_ip_address", "10.0.0.8"),
            ("new_subnet_mask", "255.255.0.0"),
            ("new_routers", "10.0.0.1"),
        ]);
        assert!(
            matches!(hook_action("dhclient", None, &e), HookAction::Bind { address, .. } if address.to_string() == "10.0.0.8/16")
        );
        let e = env(&[
            ("reason", "BOUND6"),
            ("interface", "eth1"),
            ("new_ip6_address", "fd00::9"),
            ("new_ip6_prefixlen", "128"),
        ]);
        assert!(
            matches!(hook_action("dhclient", None, &e), HookAction::Bind { address, .. } if address.to_string() == "fd00::9/128")
        );
        let e = env(&[
            ("reason", "RELEASE"),
            ("interface", "eth1"),
            ("old_ip_address", "10.0.0.8"),
            ("old_subnet_mask", "255.255.0.0"),
        ]);
        assert!(matches!(
            hook_action("dhclient", None, &e),
            HookAction::Unbind {
                address: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn argv_keeps_every_file_in_our_runtime_dir() {
        let r = Run {
            client: DhcpClient::Dhclient,
            ifname: "eth1".into(),
            hostname: Some("web1".into()),
            v6: false,
            keep: false,
            options: vec!["-v".into()],
            timeout: Duration::from_secs(10),
            files: PathBuf::from("/run/pipework/dhcp/42-eth1"),
            resolv: None,
        };
        let a = r.argv(Path::new("/usr/bin/pipework")).unwrap();
        assert_eq!(a[0], "dhclient");
        assert!(a.windows(2).any(|w| w == ["-sf", "/usr/bin/pipework"]));
        assert!(a
            .windows(2)
            .any(|w| w == ["-pf", "/run/pipework/dhcp/42-eth1.pid"]));
        assert!(a
            .windows(2)
            .any(|w| w == ["-lf", "/run/pipework/dhcp/42-eth1.leases"]));
        assert_eq!(a.last().unwrap(), "eth1");
        assert!(r.dhclient_conf().contains("send host-name \"web1\";"));
        let u = Run {
            client: DhcpClient::Udhcpc,
            ..r.clone()
        };
        let a = u.argv(Path::new("/usr/bin/pipework")).unwrap();
        assert!(a.windows(2).any(|w| w == ["-s", "/usr/bin/pipework"]));
        assert!(a.contains(&"-q".to_string()));
        assert!(a.windows(2).any(|w| w == ["-x", "hostname:web1"]));
        let u6 = Run {
            client: DhcpClient::Udhcpc,
            v6: true,
            ..r
        };
        assert!(u6.argv(Path::new("/x")).is_err());
    }
}
