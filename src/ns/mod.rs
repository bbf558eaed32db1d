//! Network-namespace handles. A guest's namespace is opened once and held by its fd: later
//! steps use the fd (IFLA_NET_NS_FD, setns), so a recycled PID can never redirect us, and
//! nothing is ever linked under /var/run/netns.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub mod named;

use nix::sched::{setns, CloneFlags};

use crate::error::Error;

/// NSFS_MAGIC from linux/magic.h: the filesystem of /proc/*/ns/* and of their bind mounts.
const NSFS_MAGIC: i64 = 0x6e73_6673;

#[derive(Debug)]
pub struct NetNs {
    file: File,
    /// Where it was opened from (for messages and reports).
    pub path: PathBuf,
    /// The namespace's identity (inode on nsfs), stable for its life.
    pub inode: u64,
}

impl NetNs {
    /// Opens a network-namespace file (/proc/PID/ns/net, /run/netns/NAME, or any bind mount).
    pub fn open(path: &Path) -> Result<NetNs, Error> {
        let file = File::options().read(true).open(path).map_err(|e| {
            Error::io(
                format!("cannot open network namespace {}", path.display()),
                e,
            )
        })?;
        let st = nix::sys::statfs::fstatfs(&file).map_err(|e| {
            Error::io(
                format!("cannot inspect {}", path.display()),
                std::io::Error::from(e),
            )
        })?;
        #[allow(clippy::unnecessary_cast)]
        if st.filesystem_type().0 as i64 != NSFS_MAGIC {
            return Err(Error::Guest(format!(
                "{} is not a namespace file (expected /proc/PID/ns/net, /run/netns/NAME or a \
                 bind mount of one)",
                path.display()
            )));
        }
        // A bind-mounted mount or pid namespace is also nsfs: make sure this one is a netns.
        // SAFETY: NS_GET_NSTYPE takes no argument and only reads the fd.
        let kind = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE) };
        if kind >= 0 && kind != libc::CLONE_NEWNET {
            return Err(Error::Guest(format!(
                "{} is a namespace, but not a network namespace",
                path.display()
            )));
        }
        let inode = file
            .metadata()
            .map_err(|e| Error::io(format!("cannot stat {}", path.display()), e))?
            .ino();
        Ok(NetNs {
            file,
            path: path.to_path_buf(),
            inode,
        })
    }

    /// The network namespace of the calling thread (not the process's main thread).
    pub fn current() -> Result<NetNs, Error> {
        NetNs::open(Path::new("/proc/thread-self/ns/net"))
    }

    pub fn raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Runs `f` inside this namespace and returns what it returned. `home` is the caller's
    /// namespace (opened once with [`NetNs::current`]); when it is this namespace, `f` runs
    /// inline on the calling thread.
    ///
    /// Otherwise `f` runs on a fresh thread that enters this namespace and then simply ends:
    /// nothing ever has to switch back, so no thread can be left in the wrong namespace (which
    /// could plumb the host's interfaces into a container or delete the wrong ones), and no
    /// failure path needs to abort the process. Sockets `f` opens stay bound to this namespace
    /// for life (a socket's netns is fixed at creation), and threads `f` spawns start inside it.
    /// The thread is scoped, so `f` may borrow from the caller. Cost: one thread spawn and one
    /// setns, some tens of microseconds.
    ///
    /// A failed setns is an [`Error::Io`] naming the namespace; a panic in `f` is returned as
    /// an error rather than propagated.
    pub fn run_in<T: Send>(&self, home: &NetNs, f: impl FnOnce() -> T + Send) -> Result<T, Error> {
        if home.inode == self.inode {
            return Ok(f());
        }
        std::thread::scope(|s| {
            let worker = std::thread::Builder::new()
                .name("pipework-netns".into())
                .spawn_scoped(s, || {
                    setns(self.fd(), CloneFlags::CLONE_NEWNET).map_err(|e| {
                        Error::io(
                            format!("cannot enter network namespace {}", self.path.display()),
                            std::io::Error::from(e),
                        )
                    })?;
                    Ok(f())
                })
                .map_err(|e| {
                    Error::io(
                        format!(
                            "cannot start a thread to work in network namespace {}",
                            self.path.display()
                        ),
                        e,
                    )
                })?;
            worker.join().unwrap_or_else(|_| {
                Err(Error::io(
                    format!("network namespace {}", self.path.display()),
                    std::io::Error::other("namespace work panicked"),
                ))
            })
        })
    }
}

/// _IO(0xb7, 0x3): returns the CLONE_NEW* type of a namespace fd.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A fresh, empty network namespace, held by its fd, or None where this process may not
    /// create one (not root): those tests then have nothing to check.
    fn fresh_netns() -> Option<NetNs> {
        std::thread::spawn(|| {
            nix::sched::unshare(CloneFlags::CLONE_NEWNET).ok()?;
            // The fd keeps the namespace alive after this thread (its only member) ends.
            NetNs::current().ok()
        })
        .join()
        .ok()
        .flatten()
    }

    fn thread_netns_inode() -> u64 {
        std::fs::metadata("/proc/thread-self/ns/net")
            .map(|m| m.ino())
            .unwrap_or(0)
    }

    #[test]
    fn same_namespace_runs_inline_on_the_calling_thread() {
        let home = NetNs::current().unwrap();
        let me = std::thread::current().id();
        let ran_on = home.run_in(&home, || std::thread::current().id()).unwrap();
        assert_eq!(ran_on, me);
    }

    #[test]
    fn work_runs_inside_the_namespace_and_the_caller_stays_home() {
        let Some(ns) = fresh_netns() else { return };
        let home = NetNs::current().unwrap();
        let before = thread_netns_inode();
        let mut borrowed = vec![1];
        let inside = ns
            .run_in(&home, || {
                borrowed.push(2); // f may borrow mutably from the caller
                thread_netns_inode()
            })
            .unwrap();
        assert_eq!(inside, ns.inode);
        assert_ne!(inside, home.inode);
        assert_eq!(thread_netns_inode(), before);
        assert_eq!(borrowed, vec![1, 2]);
    }

    #[test]
    fn a_socket_opened_inside_stays_bound_to_the_namespace() {
        let Some(ns) = fresh_netns() else { return };
        let home = NetNs::current().unwrap();
        let nl = ns
            .run_in(&home, crate::netlink::Netlink::open)
            .unwrap()
            .unwrap();
        // A fresh namespace has only lo: proof the socket talks to that namespace.
        let mut nl = nl;
        let links = nl.dump(crate::netlink::msg::dump_links()).unwrap();
        assert_eq!(links.len(), 1, "{links:?}");
    }

    #[test]
    fn a_panic_inside_is_an_error() {
        let Some(ns) = fresh_netns() else { return };
        let home = NetNs::current().unwrap();
        let r: Result<(), Error> = ns.run_in(&home, || panic!("boom"));
        let e = r.unwrap_err();
        assert!(e.to_string().contains("namespace work panicked"), "{e}");
    }

    /// `cargo test --lib ns::tests::cost -- --ignored --nocapture`: thread spawn + setns.
    #[test]
    #[ignore]
    fn cost() {
        let Some(ns) = fresh_netns() else { return };
        let home = NetNs::current().unwrap();
        let n = 2000;
        let t = Instant::now();
        for _ in 0..n {
            ns.run_in(&home, || ()).unwrap();
        }
        let per = t.elapsed() / n;
        let t = Instant::now();
        for _ in 0..n {
            std::thread::scope(|s| s.spawn(|| ()).join().unwrap());
        }
        let spawn = t.elapsed() / n;
        println!(
            "run_in (thread spawn + setns + join): {per:?} per call; spawn + join alone {spawn:?}"
        );
    }
}
