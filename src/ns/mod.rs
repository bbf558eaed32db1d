//! Network-namespace handles. A guest's namespace is opened once and held by its fd: later
//! steps use the fd (IFLA_NET_NS_FD, setns), so a recycled PID can never redirect us, and
//! nothing is ever linked under /var/run/netns.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

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

    /// Runs `f` with the calling thread inside this namespace, then comes back to `home` (the
    /// thread's namespace, opened once by the caller with [`NetNs::current`]). Sockets opened
    /// by `f` stay bound to this namespace for life. `f` must not spawn threads.
    ///
    /// If switching back fails the process aborts: carrying on in the wrong namespace could
    /// plumb the host's interfaces into a container or delete the wrong ones.
    pub fn run_in<T>(&self, home: &NetNs, f: impl FnOnce() -> T) -> Result<T, Error> {
        if home.inode == self.inode {
            return Ok(f());
        }
        setns(self.fd(), CloneFlags::CLONE_NEWNET).map_err(|e| {
            Error::io(
                format!("cannot enter network namespace {}", self.path.display()),
                std::io::Error::from(e),
            )
        })?;
        let out = f();
        if let Err(e) = setns(home.fd(), CloneFlags::CLONE_NEWNET) {
            eprintln!(
                "pipework: fatal: cannot return to the original network namespace ({e}); aborting"
            );
            std::process::abort();
        }
        Ok(out)
    }
}

/// _IO(0xb7, 0x3): returns the CLONE_NEW* type of a namespace fd.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
