//! The release artefacts: the static binary (scripts/release.sh) and the Debian package
//! (scripts/package-deb.sh).
//!
//! - `static_binary_runs_without_libc`: the artefact is statically linked (no ELF interpreter,
//!   `file`/`ldd` agree), its .sha256 checks, and it runs `--version` chrooted into a directory
//!   holding nothing but itself.
//! - `deb_installs_works_and_removes_cleanly`: `dpkg -i` of the package on this machine, the
//!   installed binary, CNI plugin entries, man page, completions, tmpfiles.d and the watch unit
//!   (present, not enabled), then `dpkg -r` and nothing of it left. A Drop guard removes it
//!   again when the test fails half-way. Skipped when a package named pipework is already
//!   installed, or when a file the package would install exists (never someone else's).
//!
//! Both need root. They build the release binary (cargo, LTO: minutes from cold, seconds when
//! up to date) under an exclusive lock on target/package-test.lock, so the two test processes
//! nextest starts never build at the same time; set PIPEWORK_TEST_STATIC_BIN and
//! PIPEWORK_TEST_DEB to test prebuilt artefacts instead.

mod common;
use common::*;

use std::collections::BTreeSet;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// A cold release build with LTO on a small machine.
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

fn run(cmd: &mut Command) -> Output {
    run_for(cmd, RUN_TIMEOUT)
}

fn must(cmd: &mut Command) -> Output {
    must_run(cmd)
}

fn have(program: &str) -> bool {
    have_program(program)
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                Path::new(ROOT).join(d)
            }
        }
        _ => Path::new(ROOT).join("target"),
    }
}

// ---------------------------------------------------------------------------------------------
// Building the artefacts once at a time
// ---------------------------------------------------------------------------------------------

/// An exclusive flock on target/package-test.lock, held while it lives.
struct BuildLock(#[allow(dead_code)] File);

fn build_lock() -> BuildLock {
    let dir = target_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let f = File::create(dir.join("package-test.lock")).expect("create the lock file");
    // SAFETY: flock on a file descriptor we own.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock: {}", std::io::Error::last_os_error());
    BuildLock(f)
}

/// Runs one of the release scripts (its last stdout line is the artefact's path).
fn script(name: &str) -> PathBuf {
    let _lock = build_lock();
    let started = Instant::now();
    let out = run_for(
        Command::new(Path::new(ROOT).join("scripts").join(name))
            .current_dir(ROOT)
            .env("CARGO_TARGET_DIR", target_dir())
            // The test must not depend on lintian's verdict (nor wait for it).
            .env("PIPEWORK_DEB_LINTIAN", "0"),
        BUILD_TIMEOUT,
    );
    assert!(
        out.status.success(),
        "scripts/{name} failed ({:?})\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    let path = text(&out.stdout).lines().last().unwrap_or("").to_string();
    eprintln!(
        "scripts/{name}: {path} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    PathBuf::from(path)
}

fn prebuilt(var: &str) -> Option<PathBuf> {
    let p = std::env::var_os(var).filter(|v| !v.is_empty())?;
    let p = PathBuf::from(p);
    assert!(p.is_file(), "{var}={} is not a file", p.display());
    Some(p)
}

fn static_binary() -> PathBuf {
    prebuilt("PIPEWORK_TEST_STATIC_BIN").unwrap_or_else(|| script("release.sh"))
}

fn deb() -> PathBuf {
    prebuilt("PIPEWORK_TEST_DEB").unwrap_or_else(|| script("package-deb.sh"))
}

// ---------------------------------------------------------------------------------------------
// The static binary
// ---------------------------------------------------------------------------------------------

#[test]
fn static_binary_runs_without_libc() {
    need_root!();
    let bin = static_binary();
    let name = bin.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(
        name,
        format!("pipework-{VERSION}-x86_64-linux"),
        "artefact name"
    );

    // The checksum file next to it checks.
    let sums = bin.with_file_name(format!("{name}.sha256"));
    assert!(sums.is_file(), "no {}", sums.display());
    must(
        Command::new("sha256sum")
            .args(["--check", "--strict"])
            .arg(&sums)
            .current_dir(bin.parent().unwrap()),
    );

    // No ELF interpreter; file(1) and ldd(1) call it static.
    let headers = must(Command::new("readelf").arg("-lW").arg(&bin));
    assert!(
        !text(&headers.stdout).contains("program interpreter"),
        "{} has an ELF interpreter:\n{}",
        bin.display(),
        text(&headers.stdout)
    );
    if have("file") {
        let f = text(&must(Command::new("file").arg("-b").arg(&bin)).stdout);
        assert!(
            f.contains("static-pie linked") || f.contains("statically linked"),
            "file(1): {f}"
        );
    }
    if have("ldd") {
        let l = run(Command::new("ldd").arg(&bin));
        let all = text(&l.stdout) + &text(&l.stderr);
        assert!(
            all.contains("statically linked") || all.contains("not a dynamic executable"),
            "ldd: {all}"
        );
    }

    // It runs where nothing else is: a root directory holding only the binary (no libc, no
    // loader, no /proc, no /dev).
    let root = TempDir::new("chroot");
    std::fs::copy(&bin, root.path.join("pipework")).unwrap();
    let entries: Vec<_> = std::fs::read_dir(&root.path).unwrap().collect();
    assert_eq!(entries.len(), 1, "the chroot holds only the binary");
    let out = must(
        Command::new("chroot")
            .arg(&root.path)
            .args(["/pipework", "--version"])
            // chroot(8) is found on this PATH; the binary gets nothing else.
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
    );
    assert_eq!(text(&out.stdout).trim(), format!("pipework {VERSION}"));
    // And its usage there.
    let out = must(
        Command::new("chroot")
            .arg(&root.path)
            .args(["/pipework", "--help"])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
    );
    assert!(
        text(&out.stdout).contains("Usage:"),
        "pipework --help in the chroot"
    );
    // The commands that read no kernel state need no /proc either.
    for args in [["completions", "bash"], ["man", "--json"]] {
        let out = must(
            Command::new("chroot")
                .arg(&root.path)
                .arg("/pipework")
                .args(args)
                .env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        );
        assert!(!out.stdout.is_empty(), "pipework {args:?} in the chroot");
    }
}

// ---------------------------------------------------------------------------------------------
// The Debian package
// ---------------------------------------------------------------------------------------------

/// dpkg's state of the package named pipework: "installed", "config-files", ... or None when
/// dpkg does not know it.
fn dpkg_status() -> Option<String> {
    let out = run(Command::new("dpkg-query").args(["-W", "-f=${db:Status-Status}", "pipework"]));
    if !out.status.success() {
        return None;
    }
    let s = text(&out.stdout).trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// The paths the package holds (`dpkg-deb -c`), absolute, directories included.
fn deb_contents(deb: &Path) -> Vec<(String, char)> {
    let out = must(Command::new("dpkg-deb").arg("-c").arg(deb));
    let mut v = Vec::new();
    for line in text(&out.stdout).lines() {
        // drwxr-xr-x root/root 0 2024-01-01 00:00 ./usr/bin/
        // lrwxrwxrwx root/root 0 2024-01-01 00:00 ./opt/cni/bin/pipework -> /usr/bin/pipework
        let kind = line.chars().next().unwrap_or('?');
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 6 {
            continue;
        }
        let path = fields[5..].join(" ");
        let path = path.split(" -> ").next().unwrap_or("");
        let path = path.trim_start_matches('.').trim_end_matches('/');
        if path.is_empty() {
            continue;
        }
        v.push((path.to_string(), kind));
    }
    v
}

/// Every path under DIR (recursively, symlinks not followed).
fn tree(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                todo.push(p.clone());
            }
            out.insert(p);
        }
    }
    out
}

fn exists(p: &str) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// Removes the package on drop when this test installed it (also when it fails half-way).
struct Installed {
    armed: bool,
}

impl Drop for Installed {
    fn drop(&mut self) {
        if self.armed {
            let _ = Command::new("dpkg")
                .args(["-r", "pipework"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

#[test]
fn deb_installs_works_and_removes_cleanly() {
    need_root!();
    for tool in ["dpkg", "dpkg-deb", "dpkg-query"] {
        if !have(tool) {
            skip(format!("SKIP {}: {tool} is not installed", test_name()));
            return;
        }
    }
    if let Some(state) = dpkg_status() {
        if state != "not-installed" {
            skip(format!(
                "SKIP {}: a package named pipework is already on this machine (dpkg state \
                 {state}); this test never removes someone else's (if an earlier run of it \
                 left it, `dpkg -r pipework`)",
                test_name()
            ));
            return;
        }
    }
    let deb = deb();

    // Control fields.
    let fields = text(
        &must(Command::new("dpkg-deb").arg("-f").arg(&deb).args([
            "Package",
            "Version",
            "Architecture",
            "Depends",
            "Recommends",
        ]))
        .stdout,
    );
    for want in [
        "Package: pipework".to_string(),
        format!("Version: {}", VERSION.replace('-', "~")),
        "Architecture: amd64".to_string(),
        "Recommends: iproute2".to_string(),
    ] {
        assert!(
            fields.lines().any(|l| l == want),
            "{want} not in:\n{fields}"
        );
    }
    assert!(
        !fields.contains("Depends:"),
        "a static binary depends on nothing:\n{fields}"
    );
    let name = deb.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(
        name,
        format!("pipework_{}_amd64.deb", VERSION.replace('-', "~"))
    );

    // Nothing the package would write may exist already (directories aside): dpkg -r would
    // remove someone else's file.
    let contents = deb_contents(&deb);
    let files: Vec<&(String, char)> = contents.iter().filter(|(_, k)| *k != 'd').collect();
    for (p, _) in &files {
        if exists(p) {
            skip(format!(
                "SKIP {}: {p} already exists (not from a pipework package); installing over it \
                 and removing it again would destroy it",
                test_name()
            ));
            return;
        }
    }
    let existed_before: BTreeSet<String> = contents
        .iter()
        .filter(|(p, _)| exists(p))
        .map(|(p, _)| p.clone())
        .collect();
    let units_before = tree(Path::new("/etc/systemd/system"));

    let mut guard = Installed { armed: true };
    must(
        Command::new("dpkg")
            .args(["-i"])
            .arg(&deb)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    );
    assert_eq!(dpkg_status().as_deref(), Some("installed"));

    // Every path dpkg lists exists.
    let listed: Vec<String> = text(&must(Command::new("dpkg").args(["-L", "pipework"])).stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| l.starts_with('/') && l != "/.")
        .collect();
    for p in &listed {
        assert!(exists(p), "dpkg -L lists {p}, which does not exist");
    }
    let expected = [
        "/usr/bin/pipework",
        "/usr/lib/cni/pipework",
        "/opt/cni/bin/pipework",
        "/usr/share/man/man1/pipework.1.gz",
        "/usr/share/man/man1/pipework-watch.1.gz",
        "/usr/share/bash-completion/completions/pipework",
        "/usr/share/zsh/vendor-completions/_pipework",
        "/usr/share/fish/vendor_completions.d/pipework.fish",
        "/lib/systemd/system/pipework-watch.service",
        "/usr/lib/tmpfiles.d/pipework.conf",
        "/usr/share/doc/pipework/copyright",
        "/usr/share/doc/pipework/changelog.gz",
    ];
    for p in expected {
        assert!(
            listed.iter().any(|l| l == p),
            "dpkg -L pipework does not list {p}"
        );
    }

    // The binary, as installed.
    let out = must(Command::new("/usr/bin/pipework").arg("--version"));
    assert_eq!(text(&out.stdout).trim(), format!("pipework {VERSION}"));
    // The CNI entries are the same binary, and it answers as a plugin.
    for p in ["/usr/lib/cni/pipework", "/opt/cni/bin/pipework"] {
        assert_eq!(
            std::fs::canonicalize(p).unwrap(),
            Path::new("/usr/bin/pipework"),
            "{p}"
        );
    }
    let out = must(
        Command::new("/opt/cni/bin/pipework")
            .env("CNI_COMMAND", "VERSION")
            .env("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
    );
    assert!(
        text(&out.stdout).contains("cniVersion"),
        "CNI VERSION: {}",
        text(&out.stdout)
    );

    // man finds the installed page.
    let out = must(
        Command::new("man")
            .args(["-P", "cat", "pipework"])
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100"),
    );
    let page = text(&out.stdout);
    assert!(
        page.lines().any(|l| l.trim_end() == "NAME") && page.contains("pipework"),
        "man pipework:\n{page}"
    );
    let out = must(Command::new("man").args(["-P", "cat", "pipework-watch"]));
    assert!(text(&out.stdout).contains("watch"), "man pipework-watch");

    // The runtime directory's tmpfiles.d line.
    let tmpfiles = std::fs::read_to_string("/usr/lib/tmpfiles.d/pipework.conf").unwrap();
    assert!(
        tmpfiles
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["d", "/run/pipework", "0755", "root", "root", "-"]),
        "tmpfiles.d: {tmpfiles}"
    );

    // The watch unit is there, and not enabled: no maintainer script, nothing new under
    // /etc/systemd/system, no symlink there to it.
    let unit = std::fs::read_to_string("/lib/systemd/system/pipework-watch.service").unwrap();
    assert!(
        unit.contains("ExecStart=/usr/bin/pipework watch"),
        "unit:\n{unit}"
    );
    let units_after = tree(Path::new("/etc/systemd/system"));
    let new: Vec<_> = units_after.difference(&units_before).collect();
    assert!(new.is_empty(), "installing pipework added {new:?}");
    for p in &units_after {
        if let Ok(target) = std::fs::read_link(p) {
            assert!(
                !target.to_string_lossy().contains("pipework")
                    && !p.to_string_lossy().contains("pipework"),
                "{} -> {}: the watch unit is enabled",
                p.display(),
                target.display()
            );
        }
    }
    for script in ["postinst", "preinst", "prerm", "postrm"] {
        assert!(
            !Path::new(&format!("/var/lib/dpkg/info/pipework.{script}")).exists(),
            "the package has a {script}"
        );
    }

    // Removal leaves nothing of it.
    must(Command::new("dpkg").args(["-r", "pipework"]));
    guard.armed = false;
    let state = dpkg_status();
    assert!(
        state.is_none() || state.as_deref() == Some("not-installed"),
        "after dpkg -r pipework, dpkg says {state:?}"
    );
    let listed_now = text(&must(Command::new("dpkg").arg("-l")).stdout);
    assert!(
        !listed_now
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some("pipework") && !l.starts_with("un")),
        "dpkg -l still lists pipework"
    );
    for p in &listed {
        if existed_before.contains(p) {
            continue;
        }
        assert!(!exists(p), "{p} is left after dpkg -r pipework");
    }
    for (p, _) in &contents {
        if !existed_before.contains(p) {
            assert!(!exists(p), "{p} is left after dpkg -r pipework");
        }
    }
    let units_end = tree(Path::new("/etc/systemd/system"));
    assert_eq!(units_end, units_before, "/etc/systemd/system changed");
}
