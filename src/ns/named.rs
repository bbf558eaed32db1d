//! Named network namespaces as `ip netns add` makes them (`/run/netns/NAME`, a bind mount of
//! a fresh namespace), made and removed in the machine's mount namespace (PID 1's).
//!
//! Why a child process: a bind mount made in a private mount namespace (as under
//! `ip netns exec`, whose mounts are slaves) never reaches the rest of the machine, and
//! `setns(CLONE_NEWNS)` is refused to a multithreaded process. A forked child is
//! single-threaded: it enters PID 1's mount namespace, does the mount, and reports the step
//! and errno through a pipe. Between fork and exit it only makes async-signal-safe calls on
//! memory prepared before the fork.

use std::ffi::CString;
use std::path::PathBuf;

use crate::error::Error;

pub const NETNS_DIR: &str = "/run/netns";

/// Where `ip netns` keeps NAME.
pub fn path_of(name: &str) -> PathBuf {
    PathBuf::from(format!("{NETNS_DIR}/{name}"))
}

/// A name `ip netns` would take: a single path component, not `.`/`..`, at most 255 bytes.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\0')
}

/// The outermost mount namespace we may enter: PID 1's, else that of the highest ancestor
/// whose namespace can be opened (in a sandbox PID 1 may be out of reach), else our own. An
/// `ip netns exec` in between (its private mount namespace) is thereby skipped.
fn machine_mount_ns() -> Result<std::fs::File, Error> {
    let mut chain = vec![std::process::id()];
    while let Some(&p) = chain.last() {
        if p <= 1 || chain.len() > 4096 {
            break;
        }
        match parent_of(p) {
            Some(pp) if pp > 0 => chain.push(pp),
            _ => break,
        }
    }
    for pid in chain.iter().rev() {
        if let Ok(f) = std::fs::File::open(format!("/proc/{pid}/ns/mnt")) {
            return Ok(f);
        }
    }
    std::fs::File::open("/proc/self/ns/mnt")
        .map_err(|e| Error::io("cannot open our own mount namespace", e))
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_ppid(&stat)
}

/// The PPID field of /proc/PID/stat (after the command, which may hold spaces and parens).
fn parse_ppid(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// What a child step failed at (the first word of its report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChildStep {
    EnterMountNs = 1,
    MakeDir,
    Share,
    CreateFile,
    Unshare,
    BindMount,
    Unmount,
    Unlink,
}

impl ChildStep {
    fn from_code(c: i32) -> Option<ChildStep> {
        use ChildStep::*;
        [
            EnterMountNs,
            MakeDir,
            Share,
            CreateFile,
            Unshare,
            BindMount,
            Unmount,
            Unlink,
        ]
        .into_iter()
        .find(|s| *s as i32 == c)
    }

    fn what(self) -> &'static str {
        match self {
            ChildStep::EnterMountNs => "enter the machine's mount namespace",
            ChildStep::MakeDir => "create /run/netns",
            ChildStep::Share => "make /run/netns a shared mount",
            ChildStep::CreateFile => "create the namespace's file",
            ChildStep::Unshare => "create a network namespace",
            ChildStep::BindMount => "bind-mount the namespace on its file",
            ChildStep::Unmount => "unmount the namespace's file",
            ChildStep::Unlink => "remove the namespace's file",
        }
    }
}

/// The error of a child's report (`step`, `errno`) for namespace `name`.
fn child_error(name: &str, step: i32, errno: i32) -> Error {
    let what = ChildStep::from_code(step)
        .map(ChildStep::what)
        .unwrap_or("finish");
    if step == ChildStep::CreateFile as i32 && errno == libc::EEXIST {
        return Error::InterfaceExists(format!(
            "network namespace {name} exists already ({NETNS_DIR}/{name})"
        ));
    }
    let e = std::io::Error::from_raw_os_error(errno);
    Error::io(format!("network namespace {name}: cannot {what}"), e)
}

/// Creates `/run/netns/NAME` holding a new network namespace, visible machine-wide. An
/// existing name is [`Error::InterfaceExists`].
pub fn create(name: &str) -> Result<(), Error> {
    run_child(name, true)
}

/// Unmounts and removes `/run/netns/NAME` (the namespace goes once nothing else holds it). A
/// name that is not there is fine.
pub fn delete(name: &str) -> Result<(), Error> {
    run_child(name, false)
}

fn run_child(name: &str, create: bool) -> Result<(), Error> {
    if !valid_name(name) {
        return Err(Error::Invalid(format!(
            "'{name}' is not a valid network namespace name"
        )));
    }
    let cstr = |s: String| CString::new(s).map_err(|_| Error::Invalid("NUL in a name".into()));
    let dir = cstr(NETNS_DIR.to_string())?;
    let file = cstr(format!("{NETNS_DIR}/{name}"))?;
    let self_net = cstr("/proc/self/ns/net".to_string())?;
    let none = cstr("none".to_string())?;
    let mnt = machine_mount_ns()?;
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills the two fds.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Error::io(
            "cannot make a pipe",
            std::io::Error::last_os_error(),
        ));
    }
    use std::os::fd::AsRawFd;
    let mnt_fd = mnt.as_raw_fd();
    // SAFETY: the child only makes async-signal-safe calls on memory prepared above, then
    // _exits; it never returns into Rust code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let e = std::io::Error::last_os_error();
        // SAFETY: both fds are ours.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        return Err(Error::io("cannot fork", e));
    }
    if pid == 0 {
        // SAFETY: see above.
        unsafe {
            libc::close(fds[0]);
            let code = child(
                create,
                mnt_fd,
                dir.as_ptr(),
                file.as_ptr(),
                self_net.as_ptr(),
                none.as_ptr(),
            );
            let report: [i32; 2] = match code {
                Ok(()) => [0, 0],
                Err((step, errno)) => [step as i32, errno],
            };
            libc::write(fds[1], report.as_ptr().cast(), 8);
            libc::_exit(0);
        }
    }
    // SAFETY: the write end is the child's now.
    unsafe { libc::close(fds[1]) };
    let mut report = [0i32; 2];
    // SAFETY: reads at most 8 bytes into `report`; the fd is ours.
    let n = unsafe {
        let n = libc::read(fds[0], report.as_mut_ptr().cast(), 8);
        libc::close(fds[0]);
        n
    };
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    if n != 8 {
        return Err(Error::Internal(format!(
            "network namespace {name}: the helper process died without a report"
        )));
    }
    match report {
        [0, _] => Ok(()),
        [s, errno] if !create && (errno == libc::ENOENT || errno == libc::EINVAL) && s != 1 => {
            Ok(()) // not there (or not mounted): nothing to remove
        }
        [s, errno] => Err(child_error(name, s, errno)),
    }
}

/// # Safety
/// Only after fork, in the child: raw pointers to NUL-terminated strings that outlive it.
unsafe fn child(
    create: bool,
    mnt_fd: i32,
    dir: *const libc::c_char,
    file: *const libc::c_char,
    self_net: *const libc::c_char,
    none: *const libc::c_char,
) -> Result<(), (ChildStep, i32)> {
    let errno = || *libc::__errno_location();
    if libc::setns(mnt_fd, libc::CLONE_NEWNS) != 0 {
        return Err((ChildStep::EnterMountNs, errno()));
    }
    if !create {
        if libc::umount2(file, libc::MNT_DETACH) != 0 && errno() != libc::EINVAL {
            return Err((ChildStep::Unmount, errno()));
        }
        if libc::unlink(file) != 0 {
            return Err((ChildStep::Unlink, errno()));
        }
        return Ok(());
    }
    if libc::mkdir(dir, 0o755) != 0 && errno() != libc::EEXIST {
        return Err((ChildStep::MakeDir, errno()));
    }
    // As `ip netns add`: /run/netns is a shared mount point, so later namespaces' mounts
    // propagate into mount namespaces made from this one.
    if libc::mount(
        none,
        dir,
        std::ptr::null(),
        libc::MS_SHARED | libc::MS_REC,
        std::ptr::null(),
    ) != 0
    {
        if errno() != libc::EINVAL {
            return Err((ChildStep::Share, errno()));
        }
        if libc::mount(
            dir,
            dir,
            none,
            libc::MS_BIND | libc::MS_REC,
            std::ptr::null(),
        ) != 0
            || libc::mount(
                none,
                dir,
                std::ptr::null(),
                libc::MS_SHARED | libc::MS_REC,
                std::ptr::null(),
            ) != 0
        {
            return Err((ChildStep::Share, errno()));
        }
    }
    let fd = libc::open(file, libc::O_RDONLY | libc::O_CREAT | libc::O_EXCL, 0);
    if fd < 0 {
        return Err((ChildStep::CreateFile, errno()));
    }
    libc::close(fd);
    if libc::unshare(libc::CLONE_NEWNET) != 0 {
        let e = errno();
        libc::unlink(file);
        return Err((ChildStep::Unshare, e));
    }
    if libc::mount(self_net, file, none, libc::MS_BIND, std::ptr::null()) != 0 {
        let e = errno();
        libc::unlink(file);
        return Err((ChildStep::BindMount, e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_ip_netns_takes_them() {
        assert!(valid_name("r1"));
        assert!(valid_name("lab-demo.r1"));
        for bad in ["", ".", "..", "a/b", "a\0b"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert!(!valid_name(&"x".repeat(256)));
    }

    #[test]
    fn child_reports_become_clear_errors() {
        let e = child_error("r1", ChildStep::CreateFile as i32, libc::EEXIST);
        assert!(matches!(e, Error::InterfaceExists(_)));
        assert!(e.to_string().contains("/run/netns/r1"), "{e}");
        let e = child_error("r1", ChildStep::EnterMountNs as i32, libc::EPERM);
        assert!(
            e.to_string().contains("mount namespace") && e.to_string().contains("r1"),
            "{e}"
        );
        let e = child_error("r1", 99, libc::EIO);
        assert!(e.to_string().contains("cannot finish"), "{e}");
    }

    #[test]
    fn ppid_after_the_command() {
        assert_eq!(parse_ppid("42 (a b) c) S 17 42 42"), Some(17));
        assert_eq!(parse_ppid("42 (x) R 1 0"), Some(1));
        assert_eq!(parse_ppid("garbage"), None);
        assert_eq!(parse_ppid("1 (x)"), None);
    }

    #[test]
    fn a_bad_name_is_refused_before_any_process() {
        let e = create("../etc").unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{e}");
    }
}
