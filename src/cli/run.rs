//! The command line as a front end: argv → typed command → one engine session → rendered
//! report. Errors are printed here (no `main() -> Result`, whose Debug output would add noise),
//! with the exit status the error's kind defines, and with `--json` also as one JSON object on
//! stdout.

use std::ffi::OsString;
use std::io::Write;

use super::render;
use crate::engine::{Session, SessionOptions};
use crate::error::Error;
use crate::grammar::{parse, Invocation, Options};
use crate::request::Command;

/// Runs one command line; returns the exit status.
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    let raw: Vec<OsString> = args.into_iter().collect();
    // Known before parsing: a command line that fails to parse still gets its JSON error.
    let json = raw.iter().any(|a| a == "--json");
    let result = parse_argv(&raw).and_then(|inv| match inv {
        Invocation::Print(text) => {
            say(&text);
            Ok(0)
        }
        Invocation::Run(cmd, opts) => {
            // Watch's stderr is its log: what it does is shown without -v.
            let floor = if matches!(*cmd, Command::Watch { .. }) {
                tracing::Level::INFO
            } else {
                tracing::Level::WARN
            };
            // `watch --json`: its log is its output, one JSON object a line. Elsewhere --json is
            // stdout's, and stderr keeps the lines scripts already read.
            let json_log = opts.json && matches!(*cmd, Command::Watch { .. });
            crate::log::init(opts.verbosity, floor, json_log);
            if super::ui::progress_allowed(opts.json) {
                super::ui::Bars::install();
            }
            run(&cmd, opts)
        }
    });
    match result {
        Ok(status) => status,
        Err(e) => {
            // The command's answer, not a log line: always shown, in the shape scripts read.
            let _ = writeln!(std::io::stderr(), "pipework: {e}");
            if json {
                say_line(&e.to_json().to_string());
            }
            e.exit_code()
        }
    }
}

/// The binary's argv (as the OS gives it) into a typed invocation; pure, so the fuzzer runs the
/// same path as the binary.
pub fn parse_argv(raw: &[OsString]) -> Result<Invocation, Error> {
    parse(&utf8_args(raw)?)
}

/// Arguments as UTF-8, or a clear error naming the first one that is not.
fn utf8_args(raw: &[OsString]) -> Result<Vec<String>, Error> {
    raw.iter()
        .enumerate()
        .map(|(i, a)| {
            a.to_str().map(str::to_string).ok_or_else(|| {
                Error::Usage(format!(
                    "argument {i} ({}) is not valid UTF-8; pipework's arguments are names, \
                     addresses and numbers",
                    a.to_string_lossy()
                ))
            })
        })
        .collect()
}

fn run(cmd: &Command, opts: Options) -> Result<i32, Error> {
    if let Some(done) = without_session(cmd, opts) {
        return done;
    }
    let mut s = Session::open(SessionOptions {
        verbose: opts.verbose,
    })?;
    let out = match cmd {
        Command::Attach(req) => {
            let rep = s.attach(req, opts.dry_run)?;
            if opts.dry_run {
                let mut err = std::io::stderr().lock();
                for (name, what) in &rep.plan {
                    let _ = writeln!(err, "pipework: plan {name}: {what}");
                }
            }
            opts.json.then(|| {
                serde_json::to_string(&rep).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
            })
        }
        Command::Exec(e) if opts.json => {
            let (status, stdout, stderr) = s.exec_captured(e)?;
            let j = serde_json::json!({
                "tool": e.tool.argv().join(" "),
                "args": e.args,
                "status": status,
                "stdout": stdout,
                "stderr": stderr,
            });
            say_line(&j.to_string());
            return Ok(status);
        }
        Command::Exec(e) => return s.exec(e),
        Command::Wait(w) => {
            s.wait(w)?;
            opts.json
                .then(|| serde_json::json!({ "interface": w.ifname, "up": true }).to_string())
        }
        Command::List(view) => {
            let rep = s.list();
            render::warnings(&rep.warnings);
            Some(render::list(
                &rep,
                opts.json,
                view,
                super::ui::colour(opts.json),
            )?)
        }
        Command::Stretch {
            bridge,
            vni,
            remotes,
            port,
        } => {
            let rep = s.stretch(bridge, *vni, remotes, *port)?;
            render::warnings(&rep.warnings);
            Some(render::lab_apply(
                &rep,
                opts.json,
                super::ui::colour(opts.json),
            ))
        }
        Command::Detach(crate::request::Target::Guest { spec, ifname: None })
            if !opts.dry_run && s.is_stretched(spec) =>
        {
            let rep = s.unstretch(spec).expect("checked: a stretch")?;
            Some(render::actions(&rep, opts.json))
        }
        Command::Detach(t) => {
            let rep = s.detach(t, opts.dry_run)?;
            render::warnings(&rep.warnings);
            Some(render::actions(&rep, opts.json))
        }
        Command::Gc => {
            let rep = s.gc(opts.dry_run)?;
            render::warnings(&rep.warnings);
            Some(render::actions(&rep, opts.json))
        }
        Command::Check(t) => {
            let rep = s.check(t)?;
            render::warnings(&rep.warnings);
            say_line(&render::check(&rep, opts.json));
            return Ok(if rep.all_ok() { 0 } else { 1 });
        }
        Command::Watch { rules, lab } => {
            crate::privilege::require_admin()?;
            if let Some(r) = rules {
                crate::watch::load_rules(r)?; // a broken file is an error now, not at the first start
            }
            if let Some(l) = lab {
                // A multi-host lab must say which host this is now, not at the first start.
                let req = crate::topology::to_request(&crate::topology::load(l)?)?;
                s.lab_localize(&req, None)?;
            }
            drop(s);
            crate::watch::Watcher {
                rules_path: rules.clone(),
                lab_path: lab.clone(),
                verbose: opts.verbose,
            }
            .run()?;
            None
        }
        Command::LabPlan { file, host } => {
            let req = crate::topology::to_request(&crate::topology::load(file)?)?;
            let req = s.lab_localize(&req, host.as_deref())?;
            render::warnings(&req.warnings);
            let plan = s.lab_plan(&req)?;
            Some(render::lab_plan(
                &plan,
                opts.json,
                super::ui::colour(opts.json),
            ))
        }
        Command::LabApply { file, host } => {
            let req = crate::topology::to_request(&crate::topology::load(file)?)?;
            let req = s.lab_localize(&req, host.as_deref())?;
            render::warnings(&req.warnings);
            let rep = s.lab_apply(&req)?;
            Some(render::lab_apply(
                &rep,
                opts.json,
                super::ui::colour(opts.json),
            ))
        }
        Command::LabDestroy { target } => {
            let lab = crate::topology::lab_name_of(target)?;
            let rep = s.lab_destroy(&lab)?;
            Some(render::actions(&rep, opts.json))
        }
        Command::LabList { target } => {
            let lab = crate::topology::lab_name_of(target)?;
            let rep = s.lab_list(&lab)?;
            Some(render::lab_list(&rep, opts.json))
        }
        // Answered before the session (they need no namespace, no root, not even /proc).
        Command::Doctor
        | Command::Completions { .. }
        | Command::Man { .. }
        | Command::LabGraph { .. } => None,
    };
    if let Some(text) = out {
        say_line(&text);
    }
    Ok(0)
}

/// The commands that read no kernel state through a session: they run anywhere (an empty
/// chroot, a package build, as any user).
fn without_session(cmd: &Command, opts: Options) -> Option<Result<i32, Error>> {
    // Each arm: what to print, or the error.
    let text: Result<Option<String>, Error> = match cmd {
        Command::Doctor => {
            let rep = crate::doctor::diagnose();
            say_line(&crate::doctor::render(
                &rep,
                opts.json,
                super::ui::colour(opts.json),
            ));
            return Some(Ok(rep.exit_code()));
        }
        Command::Completions { shell } if opts.json => {
            let mut v = Vec::new();
            super::docs::completions(shell, &mut v).map(|()| {
                let script = String::from_utf8_lossy(&v);
                Some(serde_json::json!({ "shell": shell, "script": script }).to_string())
            })
        }
        Command::Completions { shell } => {
            super::docs::completions(shell, &mut std::io::stdout().lock()).map(|()| None)
        }
        Command::Man { dir: None } if opts.json => super::docs::main_page().map(|page| {
            let roff = String::from_utf8_lossy(&page);
            Some(serde_json::json!({ "page": "pipework.1", "roff": roff }).to_string())
        }),
        Command::Man { dir } => super::docs::man(dir.as_deref(), &mut std::io::stdout().lock())
            .map(|written| {
                if opts.json {
                    Some(serde_json::json!({ "pages": written }).to_string())
                } else if written.is_empty() {
                    None
                } else {
                    Some(written.join("\n"))
                }
            }),
        Command::LabGraph { file, format } => graph(file, format, opts.json),
        _ => return None,
    };
    Some(text.map(|t| {
        if let Some(t) = t {
            say_line(&t);
        }
        0
    }))
}

/// `pipework graph FILE`: the drawing on stdout, or with --json inside one object.
fn graph(file: &std::path::Path, format: &str, json: bool) -> Result<Option<String>, Error> {
    let f = crate::topology::graph::Format::parse(format)?;
    let lab = crate::topology::load(file)?;
    let out = crate::topology::graph::render(&lab, f)?;
    if json {
        let graph = String::from_utf8_lossy(&out);
        let j = serde_json::json!({ "lab": lab.file.lab, "format": format, "graph": graph });
        return Ok(Some(j.to_string()));
    }
    match std::io::stdout().write_all(&out) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::io("cannot write the graph", e))
        }
        _ => Ok(None),
    }
}

/// Writes to stdout; a reader that went away (`| head`) is not an error of ours, and must not
/// panic as `println!` would.
fn say(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn say_line(text: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o
        .write_all(text.as_bytes())
        .and_then(|_| o.write_all(b"\n"));
}
