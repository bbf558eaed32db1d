//! A hostile guest's file tree cannot turn `--dns-resolv` against the host. Each guest here is
//! a real process with its own mount and network namespaces, chrooted into a busybox tree the
//! test controls (`unshare -m -n chroot DIR sleep`), so pipework reaches its files through
//! `/proc/PID/root` exactly as it reaches a container's. Its `/etc/resolv.conf` is made an
//! absolute symlink, a `../../..` symlink, a FIFO or a 1 GB file, or its `/etc` a symlink to a
//! host directory; "victim" files on the host are the symlinks' targets. Every test asserts the
//! victims are byte for byte unchanged, the host's own /etc/resolv.conf too, and that a refused
//! attach leaves nothing behind. Subnets: DhcpLan N = 60–69.

mod common;

use common::*;

use std::os::unix::fs::symlink;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A process in its own mount and network namespaces whose root is `dir/root`, beside the
/// host-side victims in `dir/host`. Killed on drop.
struct RootGuest {
    child: Child,
    pid: u32,
    dir: TempDir,
}

impl RootGuest {
    fn new(tag: &str) -> RootGuest {
        let dir = TempDir::new(tag);
        let root = dir.join("root");
        busybox_rootfs(&root);
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/resolv.conf"), b"nameserver 192.0.2.99\n").unwrap();
        std::fs::create_dir_all(dir.join("host")).unwrap();
        std::fs::write(dir.join("host/victim"), b"the host's secret\n").unwrap();
        std::fs::write(dir.join("host/resolv.conf"), b"the host's resolver\n").unwrap();
        let mut cmd = Command::new("unshare");
        cmd.args(["-m", "-n", "chroot"])
            .arg(&root)
            .args(["/bin/sleep", "1000000"])
            .stdin(Stdio::null());
        // SAFETY: prctl is async-signal-safe; the sleeper dies with the test.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn unshare -m -n chroot");
        let pid = child.id();
        let g = RootGuest { child, pid, dir };
        let mine = inode_of(Path::new("/proc/self/ns/net"));
        let deadline = Instant::now() + Duration::from_secs(5);
        // Wait for the chroot: the process is sleep (its root is the tree) in another netns.
        loop {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let ns = std::fs::metadata(g.ns_path())
                .ok()
                .map(|_| inode_of(&g.ns_path()));
            if comm.trim() == "sleep" && ns.is_some_and(|i| i != mine) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the chrooted guest did not start"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        ip(&g, &["link", "set", "lo", "up"]);
        g
    }

    fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// The guest's resolv.conf as the host's filesystem holds it (the test's view).
    fn resolv(&self) -> PathBuf {
        self.root().join("etc/resolv.conf")
    }

    fn host(&self, f: &str) -> PathBuf {
        self.dir.join("host").join(f)
    }

    /// The same path inside the guest's root as `host(f)` is on the host (where an absolute
    /// symlink to it lands when resolved in the guest).
    fn inside(&self, host_path: &Path) -> PathBuf {
        self.root().join(host_path.strip_prefix("/").unwrap())
    }

    fn assert_victims_unchanged(&self) {
        assert_eq!(
            std::fs::read(self.host("victim")).unwrap(),
            b"the host's secret\n",
            "host victim file unchanged"
        );
        assert_eq!(
            std::fs::read(self.host("resolv.conf")).unwrap(),
            b"the host's resolver\n",
            "host victim resolv.conf unchanged"
        );
        let names: Vec<_> = std::fs::read_dir(self.dir.join("host"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names.len(),
            2,
            "no file created in the host directory: {names:?}"
        );
    }
}

impl Ns for RootGuest {
    fn ns_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.pid))
    }
    fn describe(&self) -> String {
        format!("chrooted pid {}", self.pid)
    }
}

impl Drop for RootGuest {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own unreaped child.
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

fn has_nameserver(text: &str, dns: &str) -> bool {
    text.lines()
        .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["nameserver", dns])
}

/// A refused `--dns-resolv` attach: exit 1 naming the file, the guest's file and every victim
/// unchanged, host and guest namespaces back to their snapshots, nothing left running.
fn assert_refused(lan: &DhcpLan, g: &DhcpGuest<RootGuest>, needles: &[&str]) {
    let hb = snapshot(&lan.host);
    let gb = snapshot(&**g);
    let r = lan.pw(&["--dns-resolv", "br1", &g.pid.to_string(), "dhcp"]);
    r.fails_any(1, needles).clean_error();
    g.assert_victims_unchanged();
    assert_unchanged_soon(&lan.host, &hb, "host after the refusal");
    assert_unchanged_soon(&**g, &gb, "guest after the refusal");
    lan.assert_no_leftovers(Some(netns_inode(&**g)), &[g.pid], "after the refusal");
}

/// With the victim's host path also present inside the guest's tree, the attach succeeds and
/// writes there, in the guest; the host's victim is untouched.
fn assert_lands_inside(lan: &DhcpLan, g: &DhcpGuest<RootGuest>) {
    let inside = g.inside(&g.host("victim"));
    std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
    std::fs::write(&inside, b"guest's own\n").unwrap();
    lan.pw(&["--dns-resolv", "br1", &g.pid.to_string(), "dhcp"])
        .ok();
    let text = std::fs::read_to_string(&inside).unwrap();
    assert!(
        has_nameserver(&text, &lan.dns()),
        "written inside the guest:\n{text}"
    );
    g.assert_victims_unchanged();
}

#[test]
fn plain_chrooted_guest_gets_its_own_file() {
    need_programs!("dnsmasq", "busybox", "chroot");
    let lan = DhcpLan::new(60, &DnsmasqConf::default());
    let g = DhcpGuest::new(RootGuest::new("pw-gp-plain"));
    lan.pw(&["--dns-resolv", "br1", &g.pid.to_string(), "dhcp"])
        .ok();
    let text = std::fs::read_to_string(g.resolv()).unwrap();
    assert!(
        has_nameserver(&text, &lan.dns()),
        "guest's resolv.conf:\n{text}"
    );
    g.assert_victims_unchanged();
    lan.finish();
}

#[test]
fn absolute_symlink_lands_inside_the_guest() {
    need_programs!("dnsmasq", "busybox", "chroot");
    let lan = DhcpLan::new(61, &DnsmasqConf::default());
    let g = DhcpGuest::new(RootGuest::new("pw-gp-abs"));
    std::fs::remove_file(g.resolv()).unwrap();
    symlink(g.host("victim"), g.resolv()).unwrap();
    // Dangling inside the guest (the host's path does not exist in its tree): refused.
    assert_refused(&lan, &g, &["dangling symlink"]);
    // Once the guest has that path itself, the write lands there, in the guest.
    assert_lands_inside(&lan, &g);
    lan.finish();
}

#[test]
fn dotdot_symlink_stops_at_the_guest_root() {
    need_programs!("dnsmasq", "busybox", "chroot");
    let lan = DhcpLan::new(62, &DnsmasqConf::default());
    let g = DhcpGuest::new(RootGuest::new("pw-gp-dotdot"));
    std::fs::remove_file(g.resolv()).unwrap();
    // From the host, enough ../ reach / and then the victim; in the guest they stop at its root.
    let up = "../".repeat(32);
    let target = format!("{up}{}", g.host("victim").display());
    symlink(&target, g.resolv()).unwrap();
    assert_lands_inside(&lan, &g);
    lan.finish();
}

#[test]
fn symlinked_etc_cannot_reach_a_host_directory() {
    need_programs!("dnsmasq", "busybox", "chroot");
    let lan = DhcpLan::new(63, &DnsmasqConf::default());
    let g = DhcpGuest::new(RootGuest::new("pw-gp-etc"));
    std::fs::remove_dir_all(g.root().join("etc")).unwrap();
    symlink(g.dir.join("host"), g.root().join("etc")).unwrap();
    assert_refused(&lan, &g, &["does not exist in the guest"]);
    lan.finish();
}

#[test]
fn fifo_is_refused_without_blocking() {
    need_programs!("dnsmasq", "busybox", "chroot");
    let lan = DhcpLan::new(64, &DnsmasqConf::default());
    let g = DhcpGuest::new(RootGuest::new("pw-gp-fifo"));
    std::fs::remove_file(g.resolv()).unwrap();
    let st = Command::new("mkfifo").arg(g.resolv()).status().unwrap();
    assert!(st.success());
    let t = Instant::now();
    assert_refused(&lan, &g, &["a FIFO"]);
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "the refusal did not block on the FIFO"
    );
    lan.finish();
}

#[test]
fn huge_file_is_refused_and_left_as_is() {
    need_programs!("dnsmasq", "busybox", "chroot");
    let lan = DhcpLan::new(65, &DnsmasqConf::default());
    let g = DhcpGuest::new(RootGuest::new("pw-gp-huge"));
    // 1 GB, sparse but for a marker at each end.
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::File::create(g.resolv()).unwrap();
        f.write_all(b"head\n").unwrap();
        f.seek(SeekFrom::Start((1 << 30) - 5)).unwrap();
        f.write_all(b"tail\n").unwrap();
    }
    assert_refused(&lan, &g, &["1073741824 bytes"]);
    let m = std::fs::metadata(g.resolv()).unwrap();
    assert_eq!(m.len(), 1 << 30, "the guest's file keeps its size");
    let mut head = [0u8; 5];
    use std::io::Read;
    std::fs::File::open(g.resolv())
        .unwrap()
        .read_exact(&mut head)
        .unwrap();
    assert_eq!(&head, b"head\n", "the guest's file is not rewritten");
    lan.finish();
}

/// Rollback restores the guest's old content through the same guarded path: the attach fails
/// right after its DHCP step wrote resolv.conf, and the old file is back, the victims intact.
#[test]
fn rollback_restores_the_old_content_inside_the_guest() {
    need_programs!("dnsmasq", "busybox", "chroot");
    let lan = DhcpLan::new(66, &DnsmasqConf::default());
    let g = DhcpGuest::new(RootGuest::new("pw-gp-rollback"));
    std::fs::remove_file(g.resolv()).unwrap();
    let inside = g.inside(&g.host("resolv.conf"));
    std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
    std::fs::write(&inside, b"nameserver 192.0.2.99\n").unwrap();
    symlink(g.host("resolv.conf"), g.resolv()).unwrap();
    let r = lan.pw_env(
        &["--dns-resolv", "br1", &g.pid.to_string(), "dhcp"],
        &[("PIPEWORK_TEST_FAIL_STEP", "dhcp-lease")],
    );
    r.fails(1, "dhcp-lease");
    assert_eq!(
        std::fs::read(&inside).unwrap(),
        b"nameserver 192.0.2.99\n",
        "rollback put the guest's old resolv.conf back"
    );
    g.assert_victims_unchanged();
    lan.assert_no_leftovers(Some(netns_inode(&*g)), &[g.pid], "after the rollback");
    lan.finish();
}
