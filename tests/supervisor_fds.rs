//! The hidden `__dhcp-supervise` sub-command runs only with the descriptors pipework hands it:
//! fd 3 the guest's network namespace (the inode its configuration names) and fd 4 a pidfd of
//! the guest's process. Started any other way it refuses, exit 1, before entering any
//! namespace or writing its pidfile. Root-free: the namespaces used are this process's own.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_pipework");

fn own_netns_inode() -> u64 {
    std::fs::metadata("/proc/self/ns/net").unwrap().ino()
}

fn pidfd(pid: u32) -> OwnedFd {
    // SAFETY: pidfd_open(2) returns a new fd or -1.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    assert!(r >= 0, "pidfd_open({pid})");
    // SAFETY: fresh fd.
    unsafe { OwnedFd::from_raw_fd(r as RawFd) }
}

struct Outcome {
    code: Option<i32>,
    stderr: String,
    pidfile: PathBuf,
}

/// Runs the supervisor with `fd3`/`fd4` (None: closed) and a configuration naming
/// `netns_inode` and `guest_pid`.
fn supervise(
    tag: &str,
    fd3: Option<RawFd>,
    fd4: Option<RawFd>,
    netns_inode: u64,
    guest_pid: Option<u32>,
) -> Outcome {
    let dir = std::env::temp_dir().join(format!("pw-supfd-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pidfile = dir.join("c.pid");
    let cfg = serde_json::json!({
        "params": {"ifname": "eth1", "index": 2, "mac": null, "hostname": null, "v6": false,
                   "timeout": {"secs": 1, "nanos": 0}},
        "guest_spec": "test",
        "guest_pid": guest_pid,
        "netns_path": null,
        "netns_inode": netns_inode,
        "pidfile": pidfile,
        "infofile": dir.join("c.json"),
        "resolv": null,
    });
    // High copies first: a source that already is fd 3 or 4 would be clobbered or keep its
    // close-on-exec flag (dup2 onto itself changes nothing).
    let high = |fd: Option<RawFd>| {
        // SAFETY: F_DUPFD_CLOEXEC returns a new fd or -1.
        fd.map(|f| unsafe { OwnedFd::from_raw_fd(libc::fcntl(f, libc::F_DUPFD_CLOEXEC, 100)) })
    };
    let (h3, h4) = (high(fd3), high(fd4));
    let (fd3, fd4) = (
        h3.as_ref().map(|f| f.as_raw_fd()),
        h4.as_ref().map(|f| f.as_raw_fd()),
    );
    let mut cmd = Command::new(BIN);
    cmd.arg("__dhcp-supervise")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only dup2/close between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            for (src, dst) in [(fd3, 3), (fd4, 4)] {
                match src {
                    Some(s) => {
                        if libc::dup2(s, dst) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    None => {
                        libc::close(dst);
                    }
                }
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(cfg.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let o = Outcome {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        pidfile: pidfile.clone(),
    };
    assert!(
        !o.pidfile.exists(),
        "{tag}: no pidfile written by a refused supervisor"
    );
    let _ = std::fs::remove_dir_all(&dir);
    o
}

fn assert_refused(o: &Outcome, needle: &str) {
    assert_eq!(o.code, Some(1), "exit 1: {}", o.stderr);
    assert!(
        o.stderr.contains("refusing to run") && o.stderr.contains(needle),
        "the refusal names the problem ({needle}): {}",
        o.stderr
    );
    assert!(!o.stderr.contains("panicked"), "{}", o.stderr);
}

#[test]
fn without_inherited_namespace_it_refuses() {
    let o = supervise("none", None, None, own_netns_inode(), None);
    assert_refused(&o, "fd 3 is not a network namespace");
}

#[test]
fn a_file_that_is_not_a_namespace_is_refused() {
    let null = std::fs::File::open("/dev/null").unwrap();
    let o = supervise(
        "null",
        Some(null.as_raw_fd()),
        None,
        own_netns_inode(),
        None,
    );
    assert_refused(&o, "fd 3 is not a network namespace");
}

#[test]
fn another_namespace_than_configured_is_refused() {
    let ns = std::fs::File::open("/proc/self/ns/net").unwrap();
    let o = supervise(
        "other",
        Some(ns.as_raw_fd()),
        None,
        own_netns_inode() + 1,
        None,
    );
    assert_refused(&o, "not the guest's");
}

#[test]
fn a_missing_or_foreign_pidfd_is_refused() {
    let ns = std::fs::File::open("/proc/self/ns/net").unwrap();
    let null = std::fs::File::open("/dev/null").unwrap();
    let me = std::process::id();
    let o = supervise(
        "nopidfd",
        Some(ns.as_raw_fd()),
        Some(null.as_raw_fd()),
        own_netns_inode(),
        Some(me),
    );
    assert_refused(&o, "no pidfd");
    let mut other = Command::new("sleep").arg("30").spawn().unwrap();
    let fd = pidfd(other.id());
    let o = supervise(
        "foreign",
        Some(ns.as_raw_fd()),
        Some(fd.as_raw_fd()),
        own_netns_inode(),
        Some(me),
    );
    assert_refused(&o, &format!("it names {}", other.id()));
    let _ = other.kill();
    let _ = other.wait();
}
