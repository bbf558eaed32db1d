//! Processes pipework starts and later stops (DHCP clients): liveness and a polite stop.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

/// Running, and not a zombie (PID 1 here may not reap: a dead child can linger as one).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

/// A process held by a pidfd: signals reach that very process, never whatever later got its
/// PID. A PID read from a file or a record is only opened after it is verified to still be the
/// process meant (its start time, or its namespace and command), and verified after opening,
/// so the check and the signal cannot be split by a recycled PID.
#[derive(Debug)]
pub struct Held {
    fd: OwnedFd,
    pub pid: u32,
}

/// A pidfd of `pid` (it names that process for good, even after the PID is reused); None
/// when there is no such process.
pub fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).ok().filter(|p| *p > 0)?;
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new fd or -1.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if r < 0 {
        return None;
    }
    // SAFETY: a fresh fd that nothing else owns.
    Some(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

impl Held {
    /// A child of ours not yet waited for: its PID cannot be reused until it is reaped, so
    /// it needs no verification.
    pub fn own_child(child: &std::process::Child) -> Option<Held> {
        Some(Held {
            fd: pidfd_open(child.id())?,
            pid: child.id(),
        })
    }

    /// The process `pid` if it is the one that started at `start` (clock ticks since boot).
    pub fn verified(pid: u32, start: u64) -> Option<Held> {
        let fd = pidfd_open(pid)?;
        // Checked after opening: if the PID was recycled before, the start time differs now.
        (start_time(pid) == Some(start) && alive(pid)).then_some(Held { fd, pid })
    }

    /// The process `pid` if it lives in the network namespace `netns_inode` and runs one of
    /// `comms` (a daemon known only by the pidfile it wrote itself).
    pub fn in_netns(pid: u32, netns_inode: u64, comms: &[&str]) -> Option<Held> {
        let fd = pidfd_open(pid)?;
        let ns = std::fs::metadata(format!("/proc/{pid}/ns/net")).ok()?.ino();
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        (ns == netns_inode && comms.contains(&comm.trim()) && alive(pid))
            .then_some(Held { fd, pid })
    }

    /// The start time, for a journal entry that names this process for good.
    pub fn start(&self) -> Option<u64> {
        start_time(self.pid)
    }

    pub fn signal(&self, sig: libc::c_int) -> bool {
        // SAFETY: pidfd_send_signal(2) with our own pidfd, no siginfo, no flags.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        r == 0
    }

    /// Waits up to `limit` for the process to end (a zombie counts as ended: PID 1 here may
    /// never reap it). The pidfd becomes readable then.
    pub fn exited_within(&self, limit: Duration) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // SAFETY: one valid pollfd.
            let r =
                unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
            if r > 0 {
                return true;
            }
            if r == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                return false;
            }
        }
    }

    /// SIGTERM, a short grace period (a DHCP supervisor releases its lease), then SIGKILL.
    pub fn stop(&self) {
        self.signal(libc::SIGTERM);
        if !self.exited_within(Duration::from_secs(3)) {
            self.signal(libc::SIGKILL);
            self.exited_within(Duration::from_secs(1));
        }
    }
}

/// The process's start time (clock ticks since boot, field 22 of /proc/PID/stat): with the
/// PID, it names one process for good — a recycled PID has another start time.
pub fn start_time(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may itself hold spaces and parentheses.
    let rest = s.rsplit_once(')')?.1;
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn own_start_time_is_stable() {
        let me = std::process::id();
        let a = super::start_time(me).unwrap();
        assert_eq!(super::start_time(me), Some(a));
        assert!(super::alive(me));
    }

    #[test]
    fn held_child_is_stopped_through_its_pidfd() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let start = super::start_time(pid).unwrap();
        assert!(
            super::Held::verified(pid, start + 1).is_none(),
            "another start time"
        );
        let h = super::Held::verified(pid, start).expect("the child itself");
        h.stop();
        assert!(h.exited_within(std::time::Duration::ZERO));
        let _ = child.wait();
    }

    #[test]
    fn in_netns_wants_the_namespace_and_the_command() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let ino = std::os::unix::fs::MetadataExt::ino(
            &std::fs::metadata(format!("/proc/{pid}/ns/net")).unwrap(),
        );
        assert!(super::Held::in_netns(pid, ino + 1, &["sleep"]).is_none());
        assert!(super::Held::in_netns(pid, ino, &["dhclient"]).is_none());
        assert!(super::Held::in_netns(pid, ino, &["sleep"]).is_some());
        assert!(
            super::Held::verified(0, 0).is_none() && super::Held::verified(u32::MAX, 0).is_none()
        );
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// How a bounded run of a tool ended.
#[derive(Debug)]
pub enum Ran {
    /// It exited: its status and at most `limit + 1` bytes of each output (one more than the
    /// limit says it printed too much).
    Exited {
        status: std::process::ExitStatus,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    },
    /// Still running at the deadline: killed and reaped.
    TimedOut,
}

/// Runs a prepared command: `stdin` written to it (else /dev/null), its outputs read on
/// their own threads (a chatty tool never blocks on a full pipe) and bounded, its end awaited
/// on a pidfd (woken the moment it exits, no polling interval), killed after `timeout`.
pub fn run_bounded(
    cmd: &mut std::process::Command,
    stdin: Option<&[u8]>,
    limit: u64,
    timeout: Duration,
) -> std::io::Result<Ran> {
    use std::io::{Read, Write};
    use std::process::Stdio;
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    if let (Some(data), Some(mut w)) = (stdin, child.stdin.take()) {
        // A tool that exits without reading it all closes the pipe: its answer says why.
        let _ = w.write_all(data);
    }
    let reader = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(r) = r {
                let _ = r.take(limit + 1).read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let ended = Held::own_child(&child).is_none_or(|h| h.exited_within(timeout));
    if !ended {
        let _ = child.kill();
        let _ = child.wait();
        return Ok(Ran::TimedOut);
    }
    let status = child.wait()?;
    Ok(Ran::Exited {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}
