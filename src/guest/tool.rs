//! Engine command-line tools (`lxc-info`, `lxc-config`, `ctr`), run by argv, never through a
//! shell, with a deadline. Callers look a tool up on PATH first ([`find`]) so an engine that is
//! not installed costs a few `stat`s and no process.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io(format!("cannot run `{}`", shown()), e))?;
    // Readers on their own threads: a chatty tool never blocks on a full pipe while we wait.
    let reader = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(r) = r {
                // Bounded: a tool's answer is a few lines; never hold more than 16 MiB of it.
                let _ = r.take(MAX_OUTPUT).read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
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
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Timeout(format!(
                    "`{}` did not answer within {}s (is the engine hung?)",
                    shown(),
                    DEADLINE.as_secs()
                )));
            }
            Err(e) => return Err(Error::io(format!("waiting for `{}`", shown()), e)),
        }
    };
    Ok(Output {
        success: status.success(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}
