//! Files inside a guest's own file tree (its resolv.conf). pipework runs as root, and the guest
//! controls every component below its root: a symlink, `..`, a symlinked /etc, a FIFO or a
//! device there must never reach one of this host's files nor block us. So a path is resolved
//! by the kernel with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` from a descriptor of the
//! guest's root: an absolute symlink starts again at the guest's root and `..` stops there.
//! The file is first opened `O_PATH` (opening a FIFO or a device has effects), checked to be a
//! regular file of bounded size, and only then reopened for reading or writing — the same
//! inode, through our own descriptor.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, FileStat, Mode, SFlag};
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The largest file pipework reads back (to restore it on rollback) or overwrites: a
/// resolv.conf is a few hundred bytes; a guest's 1 GB "resolv.conf" is refused, not slurped.
pub const MAX_FILE: u64 = 1 << 20;

/// A file in a guest, named by the guest's root as seen from here and a path below it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestFile {
    /// `/proc/PID/root` (a container's root) or `/etc/netns/NAME` (a named namespace's files).
    pub root: PathBuf,
    /// Relative; resolved by the kernel inside `root` only.
    pub rel: PathBuf,
    /// For a `/proc/PID/root`: the process it must still be (a recycled PID is another root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
}

/// One process for good: its PID and start time (clock ticks since boot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub pid: u32,
    pub start: u64,
}

impl std::fmt::Display for GuestFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.root.join(&self.rel).display())
    }
}

/// What [`GuestFile::open`] found.
enum Found {
    Missing,
    /// A regular file, opened `O_PATH`, with its status.
    File(OwnedFd, FileStat),
}

fn how(flags: OFlag) -> OpenHow {
    // openat2 refuses a mode without O_CREAT (EINVAL), unlike open.
    let mode = if flags.contains(OFlag::O_CREAT) {
        Mode::from_bits_truncate(0o644)
    } else {
        Mode::empty()
    };
    OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .mode(mode)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

fn kind_of(st: &FileStat) -> &'static str {
    match SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFREG => "a regular file",
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFIFO => "a FIFO",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        SFlag::S_IFSOCK => "a socket",
        SFlag::S_IFLNK => "a symlink",
        _ => "not a regular file",
    }
}

fn is_regular(st: &FileStat) -> bool {
    st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFREG.bits()
}

impl GuestFile {
    /// A file below a process's root (`/proc/PID/root/REL`), tied to that very process.
    pub fn of_process(pid: u32, rel: &str) -> Result<GuestFile, Error> {
        let start = crate::process::start_time(pid)
            .ok_or_else(|| Error::Guest(format!("the guest's process {pid} is gone")))?;
        Ok(GuestFile {
            root: PathBuf::from(format!("/proc/{pid}/root")),
            rel: PathBuf::from(rel),
            owner: Some(Owner { pid, start }),
        })
    }

    /// A file of a named namespace (`/etc/netns/NAME/REL`, what `ip netns exec` shows there).
    pub fn of_named_netns(name: &str, rel: &str) -> GuestFile {
        GuestFile {
            root: Path::new("/etc/netns").join(name),
            rel: PathBuf::from(rel),
            owner: None,
        }
    }

    fn err(&self, what: &str, e: Errno) -> Error {
        Error::io(
            format!("{what} {self}"),
            std::io::Error::from_raw_os_error(e as i32),
        )
    }

    /// The guest's root, checked to still belong to the process named (after opening it, so
    /// that the descriptor is the root of that process and no other).
    fn open_root(&self, create: bool) -> Result<OwnedFd, Error> {
        if create && self.owner.is_none() {
            // A named namespace's directory is this host's own (/etc/netns/NAME), not the guest's.
            std::fs::create_dir_all(&self.root)
                .map_err(|e| Error::io(format!("cannot create {}", self.root.display()), e))?;
        }
        let fd = nix::fcntl::open(
            &self.root,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match (e, self.owner) {
            (Errno::ENOENT | Errno::ESRCH, Some(o)) => {
                Error::Guest(format!("the guest's process {} is gone", o.pid))
            }
            _ => self.err("cannot open the guest's root for", e),
        })?;
        if let Some(o) = self.owner {
            if crate::process::start_time(o.pid) != Some(o.start) {
                return Err(Error::Guest(format!(
                    "the guest's process {} is gone (its PID now names another process); \
                     {self} is not written",
                    o.pid
                )));
            }
        }
        Ok(fd)
    }

    fn open(&self, root: &OwnedFd) -> Result<Found, Error> {
        let fd = match openat2(root.as_fd(), &self.rel, how(OFlag::O_PATH)) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(Found::Missing),
            Err(Errno::ELOOP) => {
                return Err(Error::Guest(format!(
                    "{self}: too many levels of symlinks (or a /proc magic link) in the guest; \
                     not touched"
                )))
            }
            Err(Errno::ENOTDIR) => {
                return Err(Error::Guest(format!(
                    "{self}: a component of the path is not a directory in the guest; not \
                     touched"
                )))
            }
            Err(e) => return Err(self.err("cannot open", e)),
        };
        let st = fstat(&fd).map_err(|e| self.err("cannot inspect", e))?;
        if !is_regular(&st) {
            return Err(Error::Guest(format!(
                "{self} is {} in the guest, not a regular file: pipework reads and writes only \
                 regular files there (replace it with a plain file, or drop --dns-resolv)",
                kind_of(&st)
            )));
        }
        if st.st_size as u64 > MAX_FILE {
            return Err(Error::Guest(format!(
                "{self} is {} bytes in the guest: pipework keeps a copy to restore and refuses \
                 files over {} bytes",
                st.st_size, MAX_FILE
            )));
        }
        Ok(Found::File(fd, st))
    }

    /// Reopens an `O_PATH` descriptor for I/O: the same inode, never a path lookup again.
    fn reopen(&self, fd: &OwnedFd, write: bool) -> Result<File, Error> {
        std::fs::OpenOptions::new()
            .read(!write)
            .write(write)
            .open(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .map_err(|e| Error::io(format!("cannot open {self}"), e))
    }

    /// Refuses, before anything changes, a file that a later read or write would refuse (not
    /// a regular file, too big, a guest that is gone); a missing one is fine (it is created).
    /// Returns whether the file is this host's own `host_twin` (the guest shares the host's
    /// tree there: a process in the host's mount namespace, a bind-mounted /etc), which is
    /// never to be written. One opening of the root and the file for both.
    pub fn check(&self, host_twin: &Path) -> Result<bool, Error> {
        if self.owner.is_none() && !self.root.exists() {
            return Ok(false);
        }
        let root = self.open_root(false)?;
        let same = |dev, ino, p: &Path| {
            std::fs::metadata(p).is_ok_and(|m| m.dev() == dev && m.ino() == ino)
        };
        Ok(match self.open(&root)? {
            Found::File(_, st) => same(st.st_dev, st.st_ino, host_twin),
            // Missing: is the guest's root the host's?
            Found::Missing => {
                let rs = fstat(&root).map_err(|e| self.err("cannot inspect the root of", e))?;
                same(rs.st_dev, rs.st_ino, Path::new("/"))
            }
        })
    }

    /// The file's content, or None when it does not exist.
    pub fn read(&self) -> Result<Option<Vec<u8>>, Error> {
        if self.owner.is_none() && !self.root.exists() {
            return Ok(None);
        }
        let root = self.open_root(false)?;
        let Found::File(fd, _) = self.open(&root)? else {
            return Ok(None);
        };
        let mut buf = Vec::new();
        self.reopen(&fd, false)?
            .take(MAX_FILE + 1)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io(format!("cannot read {self}"), e))?;
        if buf.len() as u64 > MAX_FILE {
            return Err(Error::Guest(format!(
                "{self} grew past {MAX_FILE} bytes while being read; not touched"
            )));
        }
        Ok(Some(buf))
    }

    /// Replaces the content in place (a container's resolv.conf is a bind mount: a rename
    /// would detach it), creating a plain file when there is none.
    pub fn write(&self, data: &[u8]) -> Result<(), Error> {
        let root = self.open_root(true)?;
        let mut file = match self.open(&root)? {
            Found::File(fd, _) => self.reopen(&fd, true)?,
            Found::Missing => {
                // O_EXCL does not follow a symlink in the last component: a dangling one
                // (whose target would be created who knows where) is refused.
                let how = how(OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL);
                match openat2(root.as_fd(), &self.rel, how) {
                    Ok(fd) => File::from(fd),
                    Err(Errno::EEXIST) => {
                        return Err(Error::Guest(format!(
                            "{self} is a dangling symlink in the guest: pipework does not \
                             create files through symlinks (make it a plain file)"
                        )))
                    }
                    Err(Errno::ENOENT) => {
                        return Err(Error::Guest(format!(
                            "{self}: its directory does not exist in the guest"
                        )))
                    }
                    Err(e) => return Err(self.err("cannot create", e)),
                }
            }
        };
        file.set_len(0)
            .and_then(|()| file.write_all(data))
            .map_err(|e| Error::io(format!("cannot write {self}"), e))
    }

    /// Removes the file (rollback of a write that created it). A symlink or anything but a
    /// regular file in its place is left alone.
    pub fn remove(&self) -> Result<(), Error> {
        if self.owner.is_none() && !self.root.exists() {
            return Ok(());
        }
        let root = match self.open_root(false) {
            Ok(r) => r,
            // The guest is gone, and its file with it.
            Err(Error::Guest(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let (dir, name) = match (self.rel.parent(), self.rel.file_name()) {
            (Some(d), Some(n)) => (d, n),
            _ => return Err(Error::Invalid(format!("{self}: no file name to remove"))),
        };
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let dfd = match openat2(root.as_fd(), dir, how(OFlag::O_PATH | OFlag::O_DIRECTORY)) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(()),
            Err(e) => return Err(self.err("cannot open the directory of", e)),
        };
        match nix::sys::stat::fstatat(&dfd, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if is_regular(&st) => {}
            Ok(_) | Err(Errno::ENOENT) => return Ok(()),
            Err(e) => return Err(self.err("cannot inspect", e)),
        }
        match nix::unistd::unlinkat(&dfd, name, nix::unistd::UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(self.err("cannot remove", e)),
        }
        if self.owner.is_none() {
            // The named namespace's /etc/netns/NAME that `write` created: gone again if empty
            // (rmdir refuses one that holds anything else).
            let _ = std::fs::remove_dir(&self.root);
        }
        Ok(())
    }

    /// Puts back what was there before a write: the old content, or no file at all.
    pub fn restore(&self, content: Option<&[u8]>) -> Result<(), Error> {
        match content {
            Some(c) => self.write(c),
            None => self.remove(),
        }
    }
}

#[cfg(test)]
mod tests {
    //! Root-free: a temporary directory plays the guest's root (no owner), with the host's
    //! "victim" files beside it.
    use super::*;
    use std::os::unix::fs::symlink;

    struct Tree {
        dir: PathBuf,
    }

    impl Tree {
        fn new(tag: &str) -> Tree {
            let dir = std::env::temp_dir().join(format!(
                "pw-guestfs-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("root/etc")).unwrap();
            std::fs::create_dir_all(dir.join("host/etc")).unwrap();
            std::fs::write(dir.join("host/etc/victim"), b"host secret\n").unwrap();
            Tree { dir }
        }
        fn root(&self) -> PathBuf {
            self.dir.join("root")
        }
        fn victim(&self) -> PathBuf {
            self.dir.join("host/etc/victim")
        }
        fn file(&self) -> GuestFile {
            GuestFile {
                root: self.root(),
                rel: "etc/resolv.conf".into(),
                owner: None,
            }
        }
        fn victim_untouched(&self) {
            assert_eq!(std::fs::read(self.victim()).unwrap(), b"host secret\n");
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[test]
    fn plain_file_is_read_written_and_restored() {
        let t = Tree::new("plain");
        std::fs::write(t.root().join("etc/resolv.conf"), b"old\n").unwrap();
        let f = t.file();
        assert_eq!(f.read().unwrap().as_deref(), Some(&b"old\n"[..]));
        f.write(b"nameserver 10.0.0.1\n").unwrap();
        assert_eq!(
            std::fs::read(t.root().join("etc/resolv.conf")).unwrap(),
            b"nameserver 10.0.0.1\n"
        );
        f.restore(Some(b"old\n")).unwrap();
        assert_eq!(
            std::fs::read(t.root().join("etc/resolv.conf")).unwrap(),
            b"old\n"
        );
    }

    #[test]
    fn missing_file_is_created_and_removed_on_restore() {
        let t = Tree::new("missing");
        let f = t.file();
        assert_eq!(f.read().unwrap(), None);
        f.write(b"x\n").unwrap();
        assert!(t.root().join("etc/resolv.conf").is_file());
        f.restore(None).unwrap();
        assert!(!t.root().join("etc/resolv.conf").exists());
    }

    #[test]
    fn missing_named_root_is_created_and_removed_again() {
        let t = Tree::new("named");
        let f = GuestFile {
            root: t.dir.join("netns/g1"),
            rel: "resolv.conf".into(),
            owner: None,
        };
        assert!(!f.check(Path::new("/etc/resolv.conf")).unwrap());
        assert_eq!(f.read().unwrap(), None);
        f.write(b"nameserver 10.0.0.1\n").unwrap();
        assert!(t.dir.join("netns/g1/resolv.conf").is_file());
        f.restore(None).unwrap();
        assert!(
            !t.dir.join("netns/g1").exists(),
            "the directory it made is gone again"
        );
    }

    #[test]
    fn absolute_symlink_lands_inside_the_guest() {
        let t = Tree::new("abs");
        // From the host's root this points at the victim; inside the guest it does not.
        symlink(t.victim(), t.root().join("etc/resolv.conf")).unwrap();
        let f = t.file();
        // The target does not exist inside the guest's root: a dangling link, refused.
        let e = f.write(b"nameserver 1.2.3.4\n").unwrap_err();
        assert!(e.to_string().contains("dangling symlink"), "{e}");
        t.victim_untouched();
        // Make the same absolute path exist inside the guest: the write goes there.
        let inside = t.root().join(t.victim().strip_prefix("/").unwrap());
        std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
        std::fs::write(&inside, b"guest's own\n").unwrap();
        f.write(b"nameserver 1.2.3.4\n").unwrap();
        assert_eq!(std::fs::read(&inside).unwrap(), b"nameserver 1.2.3.4\n");
        t.victim_untouched();
    }

    #[test]
    fn dotdot_symlink_stops_at_the_guest_root() {
        let t = Tree::new("dotdot");
        symlink(
            "../../../../../../../../host/etc/victim",
            t.root().join("etc/resolv.conf"),
        )
        .unwrap();
        // Resolved inside the root, ../.. stops at it: /host/etc/victim of the guest.
        let inside = t.root().join("host/etc/victim");
        std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
        std::fs::write(&inside, b"guest\n").unwrap();
        t.file().write(b"nameserver 1.2.3.4\n").unwrap();
        assert_eq!(std::fs::read(&inside).unwrap(), b"nameserver 1.2.3.4\n");
        t.victim_untouched();
    }

    #[test]
    fn symlinked_etc_stays_in_the_guest() {
        let t = Tree::new("etc");
        std::fs::remove_dir(t.root().join("etc")).unwrap();
        // The guest's /etc points at the host's directory (by its host path).
        symlink(t.dir.join("host/etc"), t.root().join("etc")).unwrap();
        let e = t.file().write(b"nameserver 1.2.3.4\n").unwrap_err();
        assert!(e.to_string().contains("directory does not exist"), "{e}");
        t.victim_untouched();
        assert!(!t.dir.join("host/etc/resolv.conf").exists());
    }

    #[test]
    fn fifo_is_refused_without_blocking() {
        let t = Tree::new("fifo");
        nix::unistd::mkfifo(
            &t.root().join("etc/resolv.conf"),
            Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        let f = t.file();
        let e = f.read().unwrap_err();
        assert!(e.to_string().contains("a FIFO"), "{e}");
        let e = f.write(b"x").unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        // Restore of a created file leaves a FIFO in its place alone.
        f.remove().unwrap();
        assert!(t.root().join("etc/resolv.conf").exists());
    }

    #[test]
    fn directory_and_device_are_refused() {
        let t = Tree::new("dir");
        std::fs::create_dir(t.root().join("etc/resolv.conf")).unwrap();
        let e = t.file().write(b"x").unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
        let dev = GuestFile {
            root: "/".into(),
            rel: "dev/null".into(),
            owner: None,
        };
        let e = dev.read().unwrap_err();
        assert!(e.to_string().contains("character device"), "{e}");
    }

    #[test]
    fn huge_file_is_refused_unread() {
        let t = Tree::new("huge");
        let p = t.root().join("etc/resolv.conf");
        // Sparse: 1 GB of size without 1 GB of disk.
        File::create(&p).unwrap().set_len(1 << 30).unwrap();
        let e = t.file().read().unwrap_err();
        assert!(e.to_string().contains("1073741824 bytes"), "{e}");
        let e = t.file().write(b"x").unwrap_err();
        assert!(e.to_string().contains("refuses files over"), "{e}");
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 1 << 30);
    }

    #[test]
    fn magic_links_are_refused() {
        let t = Tree::new("magic");
        symlink(
            "/proc/self/root/etc/hostname",
            t.root().join("etc/resolv.conf"),
        )
        .unwrap();
        // Inside the guest /proc does not exist: dangling, refused. With a /proc in the guest
        // that is the kernel's, RESOLVE_NO_MAGICLINKS refuses it; both leave the host alone.
        let e = t.file().write(b"x").unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
    }

    #[test]
    fn recycled_owner_is_refused() {
        let t = Tree::new("owner");
        let f = GuestFile {
            owner: Some(Owner {
                pid: std::process::id(),
                start: crate::process::start_time(std::process::id()).unwrap() + 1,
            }),
            ..t.file()
        };
        let e = f.write(b"x").unwrap_err();
        assert!(e.to_string().contains("another process"), "{e}");
        assert!(!t.root().join("etc/resolv.conf").exists());
    }

    #[test]
    fn host_file_is_recognised() {
        let shared = GuestFile {
            root: "/".into(),
            rel: "etc/hostname".into(),
            owner: None,
        };
        if Path::new("/etc/hostname").is_file() {
            assert!(shared.check(Path::new("/etc/hostname")).unwrap());
        }
        let t = Tree::new("hostfile");
        std::fs::write(t.root().join("etc/resolv.conf"), b"x").unwrap();
        assert!(!t.file().check(Path::new("/etc/resolv.conf")).unwrap());
    }
}
