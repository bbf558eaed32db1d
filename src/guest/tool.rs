//! Engine command-line tools (`lxc-info`, `lxc-config`, `ctr`), run by argv, never through a
//! shell, with a deadline. Callers look a tool up on PATH first ([`find`]) so an engine that is
//! not installed costs a few `stat`s and no process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::error::Error;

/// How long an engine tool may take before it is killed and the lookup fails.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// The full path of `program` in one of `$PATH`'s directories or an sbin directory (a
/// non-root PATH may lack those), if it is an executable file there.
pub fn find(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .filter(|d| d.is_absolute())
        .map(|d| d.join(program))
        .find(|p| {
            std::fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// What a tool printed and how it exited.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// stderr (else stdout), trimmed, for messages.
    pub fn message(&self) -> String {
        let e = self.stderr.trim();
        if e.is_empty() {
            self.stdout.trim().to_string()
        } else {
            e.to_string()
        }
    }
}

const MAX_OUTPUT: u64 = 16 << 20;

/// Runs `program args…` (stdin closed), collects its output, kills it after [`DEADLINE`].
pub fn run(program: &Path, args: &[&str]) -> Result<Output, Error> {
    let shown = || {
        std::iter::once(program.display().to_string())
            .chain(args.iter().map(|a| a.to_string()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let ran =
        crate::process::run_bounded(Command::new(program).args(args), None, MAX_OUTPUT, DEADLINE)
            .map_err(|e| Error::io(format!("cannot run `{}`", shown()), e))?;
    let crate::process::Ran::Exited {
        status,
        stdout,
        stderr,
    } = ran
    else {
        return Err(Error::Timeout(format!(
            "`{}` did not answer within {}s (is the engine hung?)",
            shown(),
            DEADLINE.as_secs()
        )));
    };
    // Bounded: a tool's answer is a few lines; never hold more than 16 MiB of it.
    let text = |mut b: Vec<u8>| {
        b.truncate(MAX_OUTPUT as usize);
        String::from_utf8_lossy(&b).into_owned()
    };
    Ok(Output {
        success: status.success(),
        stdout: text(stdout),
        stderr: text(stderr),
    })
}
