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
            print!("{text}");
            Ok(0)
        }
        Invocation::Run(cmd, opts) => {
            // Watch's stderr is its log: what it does is shown without -v.
            let floor = if matches!(*cmd, Command::Watch { .. }) {
                tracing::Level::INFO
            } else {
                tracing::Level::WARN
            };
            crate::log::init(opts.verbosity, floor);
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
                println!("{}", e.to_json());
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
        Command::Exec(e) => return s.exec(e),
        Command::Wait(w) => {
            s.wait(w)?;
            None
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
        Command::Doctor => {
            let rep = crate::doctor::diagnose();
            println!(
                "{}",
                crate::doctor::render(&rep, opts.json, super::ui::colour(opts.json))
            );
            return Ok(rep.exit_code());
        }
        Command::Completions { shell } => {
            super::docs::completions(shell, &mut std::io::stdout().lock())?;
            None
        }
        Command::Man { dir } => {
            let written = super::docs::man(dir.as_deref(), &mut std::io::stdout().lock())?;
            if opts.json {
                Some(serde_json::json!({ "pages": written }).to_string())
            } else if written.is_empty() {
                None
            } else {
                Some(written.join("\n"))
            }
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
            println!("{}", render::check(&rep, opts.json));
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
        Command::LabGraph { file, format } => {
            let f = crate::topology::graph::Format::parse(format)?;
            let lab = crate::topology::load(file)?;
            let out = crate::topology::graph::render(&lab, f)?;
            use std::io::Write;
            std::io::stdout()
                .write_all(&out)
                .map_err(|e| Error::io("cannot write the graph", e))?;
            None
        }
    };
    if let Some(text) = out {
        println!("{text}");
    }
    Ok(0)
}
