//! What the benchmarks share: interruption (a signal sets a flag the loops check, so they
//! unwind through their Drop guards), commands entered into a namespace, and the knobs.
#![allow(dead_code)]

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::fd::RawFd;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

pub type R<T> = Result<T, String>;

pub static STOP: AtomicBool = AtomicBool::new(false);

pub extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

pub fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

pub fn check_stop() -> R<()> {
    if STOP.load(Ordering::SeqCst) {
        Err("interrupted".into())
    } else {
        Ok(())
    }
}

pub fn os_err(what: &str) -> String {
    format!("{what}: {}", io::Error::last_os_error())
}

/// A command whose child process joins the network namespace `ns` before exec.
pub fn cmd_in(ns: RawFd, prog: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new(prog);
    unsafe {
        c.pre_exec(move || {
            if libc::setns(ns, libc::CLONE_NEWNET) == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        });
    }
    c
}

pub fn tv_ms(t: libc::timeval) -> f64 {
    t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3
}

pub fn env_usize(name: &str, default: usize) -> R<usize> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|_| format!("{name}={v:?} is not a number")),
        _ => Ok(default),
    }
}

pub fn pipework_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("PIPEWORK_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let target = if target.is_relative() {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(target)
    } else {
        target
    };
    target.join("release").join("pipework")
}

/// A link of the calling thread's namespace: up or not, its IPv4 addresses and prefixes.
pub struct IfInfo {
    pub name: String,
    pub up: bool,
    pub v4: Vec<(Ipv4Addr, u32)>,
}

/// The calling thread's netns' links and IPv4 addresses (getifaddrs dumps over a netlink
/// socket of that netns).
pub fn list_ifaces() -> R<Vec<IfInfo>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(os_err("getifaddrs"));
    }
    let mut out: Vec<IfInfo> = Vec::new();
    let mut p = head;
    while !p.is_null() {
        let ifa = unsafe { &*p };
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        let idx = match out.iter().position(|i| i.name == name) {
            Some(i) => i,
            None => {
                out.push(IfInfo {
                    name,
                    up: false,
                    v4: Vec::new(),
                });
                out.len() - 1
            }
        };
        out[idx].up |= ifa.ifa_flags & libc::IFF_UP as u32 != 0;
        if !ifa.ifa_addr.is_null() && unsafe { (*ifa.ifa_addr).sa_family } as i32 == libc::AF_INET {
            let a = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
            let m = if ifa.ifa_netmask.is_null() {
                0
            } else {
                unsafe {
                    (*(ifa.ifa_netmask as *const libc::sockaddr_in))
                        .sin_addr
                        .s_addr
                }
            };
            out[idx].v4.push((
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u32::from_be(m).count_ones(),
            ));
        }
        p = ifa.ifa_next;
    }
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// A private, unnamed network namespace held only by this file descriptor: dropping it (once
/// no child process is inside any more) lets the kernel destroy the namespace and every link
/// in it in one batch.
pub struct HostNs {
    pub fd: File,
}

impl HostNs {
    pub fn new() -> R<Self> {
        let fd = std::thread::spawn(|| -> R<File> {
            // Only this short-lived thread moves; the main thread stays where it was.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(os_err("unshare(CLONE_NEWNET)"));
            }
            File::open("/proc/thread-self/ns/net").map_err(|e| format!("open own netns: {e}"))
        })
        .join()
        .map_err(|_| "netns thread panicked".to_string())??;
        Ok(HostNs { fd })
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Run an untimed helper command in `ns`; error with its stderr if it fails.
pub fn run_in(ns: RawFd, prog: &str, args: &[&str]) -> R<String> {
    let mut cmd = cmd_in(ns, prog);
    cmd.args(args);
    output_of(cmd, prog, args)
}

/// Runs `cmd` (already given `args`) to completion; its stdout, or an error with its stderr.
pub fn output_of(mut cmd: Command, prog: &str, args: &[&str]) -> R<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("spawn {prog}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{prog} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A benchmark's `main`: signals handled, `run` timed, its error printed, the exit status.
pub fn bench_main(name: &str, run: fn() -> R<()>) -> ! {
    install_signal_handlers();
    let t0 = std::time::Instant::now();
    let code = match run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{name} bench: error: {e}");
            1
        }
    };
    println!("total bench time {:.1} s", t0.elapsed().as_secs_f64());
    std::process::exit(code);
}

// ---------------------------------------------------------------------------------------------
// A bench's private world: its own mount namespace, with tmpfs mounts that never reach the
// machine's mount table and go with the bench (even a SIGKILLed one).

pub fn cstr(p: &Path) -> R<CString> {
    CString::new(p.as_os_str().as_encoded_bytes()).map_err(|_| format!("NUL in {}", p.display()))
}

/// Enters a mount namespace of the bench's own with private propagation, sweeps the empty
/// mount points of earlier benches of `prefix` that were killed, and makes this one's
/// (`PREFIX<pid>`, mode 0700). Must run while the bench has a single thread: unshare
/// (CLONE_NEWNS) refuses (EINVAL) in a multi-threaded process.
pub fn private_world(prefix: &str) -> R<PathBuf> {
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return Err(os_err("unshare(CLONE_NEWNS)"));
    }
    let slash = CString::new("/").expect("no NUL");
    let r = unsafe {
        libc::mount(
            std::ptr::null(),
            slash.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    if r != 0 {
        return Err(os_err("mount --make-rprivate /"));
    }
    sweep_stale_worlds(prefix);
    let root = PathBuf::from(format!("{prefix}{}", std::process::id()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&root)
        .map_err(|e| format!("mkdir {}: {e}", root.display()))?;
    Ok(root)
}

/// A tmpfs on `at` (nosuid, nodev; noexec unless programs run from it).
pub fn mount_tmpfs(at: &Path, opts: &str, exec: bool) -> R<()> {
    let c = cstr(at)?;
    let fstype = CString::new("tmpfs").expect("no NUL");
    let opts = CString::new(opts).expect("no NUL");
    let mut flags = libc::MS_NOSUID | libc::MS_NODEV;
    if !exec {
        flags |= libc::MS_NOEXEC;
    }
    let r = unsafe {
        libc::mount(
            fstype.as_ptr(),
            c.as_ptr(),
            fstype.as_ptr(),
            flags,
            opts.as_ptr() as *const libc::c_void,
        )
    };
    if r != 0 {
        return Err(os_err(&format!("mount tmpfs on {}", at.display())));
    }
    Ok(())
}

/// Unmounts `p` lazily (what is mounted below goes with it).
pub fn lazy_umount(p: &Path) {
    if let Ok(c) = cstr(p) {
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Mount points of earlier benches that were SIGKILLed (their tmpfs went with their mount
/// namespace; the empty directory stays).
fn sweep_stale_worlds(prefix: &str) {
    let Ok(rd) = std::fs::read_dir("/tmp") else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let Some(pid) = p
            .to_str()
            .and_then(|s| s.strip_prefix(prefix))
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id()
            && !Path::new(&format!("/proc/{pid}")).exists()
            && std::fs::remove_dir(&p).is_ok()
        {
            println!("  removed stale {} (its bench is gone)", p.display());
        }
    }
}

/// `v` in base 36: short, unique names from a pid (every name of a bench fits 15 bytes).
pub fn base36(mut v: u32) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(digits[(v % 36) as usize]);
        v /= 36;
        if v == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ascii")
}

/// Named network namespaces at `paths`, as `ip netns add` makes them, without a process each:
/// one throwaway thread unshares a fresh netns per path and bind-mounts it there (the mount
/// keeps it alive after the thread). The paths made, even when it stopped half-way with the
/// error beside them, so the caller unmounts them all.
pub fn bind_named_netns(paths: Vec<PathBuf>) -> R<(Vec<PathBuf>, R<()>)> {
    std::thread::spawn(move || -> (Vec<PathBuf>, R<()>) {
        let src = CString::new("/proc/thread-self/ns/net").expect("no NUL");
        let mut made = Vec::with_capacity(paths.len());
        for path in paths {
            if let Err(e) = check_stop() {
                return (made, Err(e));
            }
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return (made, Err(os_err("unshare(CLONE_NEWNET)")));
            }
            if let Err(e) = File::create(&path) {
                return (made, Err(format!("create {}: {e}", path.display())));
            }
            let c = match cstr(&path) {
                Ok(c) => c,
                Err(e) => return (made, Err(e)),
            };
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
                return (made, Err(e));
            }
            made.push(path);
        }
        (made, Ok(()))
    })
    .join()
    .map_err(|_| "netns thread panicked".to_string())
}
