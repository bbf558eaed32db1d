//! What a user at a terminal sees: `ls -o wide` and `--format`, progress (only on a terminal,
//! never with --json or into a pipe), colour (only on a terminal, never with NO_COLOR), logging
//! (-v, -vv, PIPEWORK_LOG), and --json for every command, errors included. Terminals are real
//! pseudo-terminals (openpty); subnets 10.236.x.x.

mod common;
use common::*;

use std::fs::File;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// Runs pipework in `ns` with stdout and stderr on one pseudo-terminal: (exit code, all it
/// wrote).
fn on_a_terminal(ns: &dyn Ns, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let (mut master, mut slave) = (0, 0);
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
    let master = unsafe { OwnedFd::from_raw_fd(master) };
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave.try_clone().unwrap()))
        .env("PIPEWORK_RUNTIME_DIR", test_runtime_dir())
        .env("TERM", "xterm")
        .env_remove("NO_COLOR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let nsf = File::open(ns.ns_path()).unwrap();
    unsafe {
        use std::os::fd::AsRawFd;
        let fd = nsf.as_raw_fd();
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn pipework");
    // The Command keeps its copies of the terminal's fds: both must go, or the master never
    // sees the end.
    drop(cmd);
    drop(slave);
    // Read until the last writer closes (EIO on a pty master).
    let reader = std::thread::spawn(move || {
        let mut f = File::from(master);
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match f.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&all).into_owned()
    });
    let st = child.wait().unwrap();
    let out = reader.join().unwrap();
    (st.code().unwrap_or(-1), out)
}

fn bridge_name() -> String {
    format!("brux{}", rand_hex(6))
}

#[test]
fn ls_wide_and_format_show_the_fields_asked_for() {
    if !root_or_skip("ls_wide_and_format_show_the_fields_asked_for") {
        return;
    }
    let host = Netns::new("h");
    let g = Netns::new("g");
    let br = bridge_name();
    let spec = format!("netns:{}", g.name);
    pipework(&host, &[&br, &spec, "10.236.0.2/24"]).ok();
    let mac = must_link(&g, "eth1").mac;

    let wide = pipework(&host, &["ls", "-o", "wide"]);
    wide.ok();
    let head = wide.stdout.lines().next().unwrap();
    for col in ["STATE", "GUEST", "HOST_IF", "MAC", "ENGINE", "NETNS"] {
        assert!(head.contains(col), "{col}\n{}", wide.show());
    }
    assert!(
        wide.stdout.contains(&mac) && wide.stdout.contains("10.236.0.2/24"),
        "{}",
        wide.show()
    );

    let t = pipework(
        &host,
        &["ls", "--format", "{{.Guest}} {{.Address}} {{.Kind}}"],
    );
    t.ok();
    assert_eq!(
        t.stdout.trim(),
        format!("{} 10.236.0.2/24 bridge", g.name),
        "{}",
        t.show()
    );
    let f = pipework(&host, &["ls", "--format", "ifname,mac"]);
    f.ok();
    let lines: Vec<&str> = f.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", f.show());
    assert!(
        lines[0].starts_with("IFNAME") && lines[1].starts_with("eth1"),
        "{}",
        f.show()
    );
    assert!(lines[1].ends_with(&mac), "{}", f.show());

    // A wrong field: exit 2 before anything runs, the fields listed, nothing changed.
    let before = link_names(&host);
    let bad = pipework(&host, &["ls", "--format", "{{.Adress}}", "--json"]);
    bad.fails(2, "no field 'Adress' (did you mean address?)")
        .clean_error();
    assert!(
        bad.json()["error"].is_object() || bad.json()["error"].is_string(),
        "{}",
        bad.show()
    );
    let bad = pipework(&host, &["ls", "-o", "tall"]);
    bad.fails(2, "ls knows -o wide").clean_error();
    assert_eq!(link_names(&host), before);
    pipework(&host, &["detach", &spec]).ok();
}

#[test]
fn progress_is_drawn_only_on_a_terminal_and_never_with_json() {
    if !root_or_skip("progress_is_drawn_only_on_a_terminal_and_never_with_json") {
        return;
    }
    let host = Netns::new("h");
    let g = Netns::new("g");
    let br = bridge_name();
    let spec = format!("netns:{}", g.name);
    ip(&host, &["link", "add", &br, "type", "bridge"]);
    ip(&host, &["link", "set", &br, "up"]);
    let before = (link_names(&host), link_names(&g));
    // No DHCP server on the bridge: a 2.5 s wait, then a clean failure.
    let args = [br.as_str(), spec.as_str(), "dhcp", "--dhcp-timeout", "2.5"];
    let (code, out) = on_a_terminal(&host, &args, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("waiting for a DHCP lease"),
        "no progress on a terminal:\n{out}"
    );
    assert!(out.contains("pipework: "), "{out}");

    let piped = pipework(&host, &args);
    piped.fails(1, "DHCP");
    assert!(
        !piped.stderr.contains("waiting for a DHCP lease"),
        "{}",
        piped.show()
    );
    assert!(!piped.stderr.contains('\u{1b}'), "{}", piped.show());

    let mut json_args = args.to_vec();
    json_args.push("--json");
    let (code, out) = on_a_terminal(&host, &json_args, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        !out.contains("waiting for a DHCP lease"),
        "progress with --json:\n{out}"
    );
    assert_eq!(
        (link_names(&host), link_names(&g)),
        before,
        "the failed attaches left something"
    );
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    if !root_or_skip("colour_only_on_a_terminal_and_never_with_no_color") {
        return;
    }
    let host = Netns::new("h");
    let g = Netns::new("g");
    let dir = std::env::temp_dir().join(format!("pwt-ux-{}", rand_hex(8)));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("lab.yaml");
    let lab = format!("ux{}", rand_hex(6));
    let br = bridge_name();
    std::fs::write(
        &file,
        format!(
            "lab: {lab}\nguests:\n  g: {{netns: {}}}\nbridges:\n  {br}: {{}}\nattach:\n  - {br} g 10.236.1.2/24\n",
            g.name
        ),
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let (code, out) = on_a_terminal(&host, &["plan", f], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("\u{1b}[32m+ "),
        "no green + on a terminal:\n{out:?}"
    );
    let (code, out) = on_a_terminal(&host, &["plan", f], &[("NO_COLOR", "1")]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains('\u{1b}'), "colour with NO_COLOR:\n{out:?}");
    let piped = pipework(&host, &["plan", f]);
    piped.ok();
    assert!(
        piped.stdout.contains("+ ") && !piped.stdout.contains('\u{1b}'),
        "{}",
        piped.show()
    );
    assert_eq!(link_names(&host), ["lo"], "plan changed the host");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn logging_levels_and_pipework_log() {
    if !root_or_skip("logging_levels_and_pipework_log") {
        return;
    }
    let host = Netns::new("h");
    let quiet = pipework(&host, &["ls"]);
    quiet.ok();
    assert!(!quiet.stderr.contains("debug:"), "{}", quiet.show());
    let vv = pipework(&host, &["ls", "-vv"]);
    vv.ok();
    assert!(
        vv.stderr.contains("pipework: debug: session opened"),
        "{}",
        vv.show()
    );
    let env = pipework_env(&host, &["ls"], &[("PIPEWORK_LOG", "debug")]);
    env.ok();
    assert!(
        env.stderr.contains("pipework: debug: session opened"),
        "{}",
        env.show()
    );
    let only_warn = pipework_env(&host, &["ls", "-vv"], &[("PIPEWORK_LOG", "warn")]);
    assert!(!only_warn.stderr.contains("debug:"), "{}", only_warn.show());
    let bad = pipework_env(&host, &["ls"], &[("PIPEWORK_LOG", "=[bad")]);
    bad.ok();
    assert!(
        bad.stderr.contains("is not a tracing filter"),
        "{}",
        bad.show()
    );
    // With --json, stdout is one JSON document and stderr keeps its text lines.
    let j = pipework_env(&host, &["ls", "--json"], &[("PIPEWORK_LOG", "debug")]);
    j.ok();
    assert_eq!(j.json(), serde_json::json!([]), "{}", j.show());
    assert!(
        j.stderr.contains("pipework: debug: session opened"),
        "{}",
        j.show()
    );
}

#[test]
fn every_command_answers_json_and_its_errors_are_json() {
    if !root_or_skip("every_command_answers_json_and_its_errors_are_json") {
        return;
    }
    let host = Netns::new("h");
    let g = Netns::new("g");
    let spec = format!("netns:{}", g.name);
    // Successes: one JSON document on stdout each.
    for args in [
        vec!["ls", "--json"],
        vec!["gc", "--json"],
        vec!["check", "--json"],
        vec!["detach", "--all", "--json"],
        vec!["completions", "fish", "--json"],
        vec!["man", "--json"],
        vec!["--json", "route", &spec, "show"],
    ] {
        let r = pipework(&host, &args);
        r.ok();
        let _ = r.json();
    }
    let r = pipework(&host, &["--json", "route", &spec, "show"]);
    let v = r.json();
    assert_eq!(v["status"], 0, "{}", r.show());
    assert_eq!(v["tool"], "ip route", "{}", r.show());
    let r = pipework(&host, &["--json", "route", &spec, "bogus-word"]);
    assert_ne!(r.code, 0, "{}", r.show());
    assert!(
        r.json()["stderr"].as_str().is_some_and(|s| !s.is_empty()),
        "{}",
        r.show()
    );
    // Errors: JSON on stdout, the message on stderr, the error's exit code.
    for (args, code) in [
        (vec!["ls", "extra", "--json"], 2),
        (vec!["completions", "tcsh", "--json"], 2),
        (vec!["apply", "/nonexistent/pwt.yaml", "--json"], 2),
        (vec!["destroy", "a/b", "--json"], 2),
        (vec!["stretch", "br0", "--json"], 2),
        (vec!["doctor", "x", "--json"], 2),
        (vec!["man", "a", "b", "--json"], 2),
        (vec!["graph", "/nonexistent/pwt.yaml", "--json"], 2),
        (
            vec!["--json", "route", "netns:pwt-nonexistent-x", "show"],
            1,
        ),
    ] {
        let r = pipework(&host, &args);
        assert_eq!(r.code, code, "{}", r.show());
        r.clean_error();
        assert!(!r.json()["error"].is_null(), "{}", r.show());
    }
    assert_eq!(link_names(&host), ["lo"]);
}

/// The DHCP hook runs before any front end (an external client calls pipework as its script):
/// its error still reaches stderr, in the hook's own shape.
#[test]
fn the_dhcp_hook_reports_its_errors() {
    let out = std::process::Command::new(BIN)
        .arg("bound")
        .env("PIPEWORK_DHCP_HOOK", "udhcpc")
        .env("PIPEWORK_DHCP_RESOLV", "{not json")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("pipework dhcp hook: error: bad PIPEWORK_DHCP_RESOLV"),
        "{err}"
    );
}
