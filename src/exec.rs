//! `pipework route|rule|tc GUEST ARGS…`: the real iproute2 tools, run by argv inside the
//! guest's namespace (setns in the forked child before exec: no `ip netns exec`, no symlinks).

use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::sched::{setns, CloneFlags};

use crate::error::Error;
use crate::ns::NetNs;
use crate::request::Tool;

/// A command whose child enters `ns` (its network namespace only) before exec.
pub fn command_in(ns: &NetNs, program: &str) -> Command {
    let mut cmd = Command::new(program);
    let fd = ns.raw_fd();
    // SAFETY: only async-signal-safe work between fork and exec: one setns syscall.
    unsafe {
        cmd.pre_exec(move || {
            let borrowed = std::os::fd::BorrowedFd::borrow_raw(fd);
            setns(borrowed, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)
        });
    }
    cmd
}

/// Runs the tool and returns its exit status (signals map to 128 + signal, as shells do).
/// `run_tool` with its output kept, for `--json`: (exit status, stdout, stderr).
pub fn capture_tool(
    tool: Tool,
    args: &[String],
    ns: &NetNs,
) -> Result<(i32, String, String), Error> {
    let argv = tool.argv();
    let mut cmd = command_in(ns, argv[0]);
    cmd.args(&argv[1..]).args(args);
    let out = cmd.output().map_err(|e| {
        Error::io(
            format!(
                "cannot run `{}` in the guest (is iproute2 installed?)",
                argv.join(" ")
            ),
            e,
        )
    })?;
    use std::os::unix::process::ExitStatusExt;
    let code = out
        .status
        .code()
        .unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0));
    Ok((
        code,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

pub fn run_tool(tool: Tool, args: &[String], ns: &NetNs) -> Result<i32, Error> {
    let argv = tool.argv();
    let mut cmd = command_in(ns, argv[0]);
    cmd.args(&argv[1..]).args(args);
    let status = cmd.status().map_err(|e| {
        Error::io(
            format!(
                "cannot run `{}` in the guest (is iproute2 installed?)",
                argv.join(" ")
            ),
            e,
        )
    })?;
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}
