//! pipework: software-defined networking for Linux containers.
//!
//! Every front end (the CLI today) builds a typed [`request::Command`]; [`run`] resolves the
//! guest, plans the change ([`plan`]), and applies it with an undo log ([`apply`]).
//!
//! Layers, one folder or file each: `cli` (grammar) → `request` (typed values) → `guest`
//! (Docker API, PID, netns name, path) → `ns` (namespace handles) → `plan` → `driver` (one per
//! host-interface kind) + `addressing` + `announce` → `apply` (undo log) → `netlink` (messages
//! and the socket client).

pub mod addressing;
pub mod announce;
pub mod apply;
pub mod cli;
pub mod driver;
pub mod error;
pub mod exec;
pub mod guest;
pub mod lifecycle;
pub mod list;
pub mod mac;
pub mod naming;
pub mod netlink;
pub mod ns;
pub mod plan;
pub mod privilege;
pub mod process;
pub mod report;
pub mod request;
pub mod state;
pub mod testhook;
pub mod wait;
pub mod watch;

use crate::apply::{Env, Log};
use crate::cli::Options;
use crate::error::Error;
use crate::netlink::Netlink;
use crate::ns::NetNs;
use crate::plan::PlanCtx;
use crate::request::{AttachRequest, Command};

/// Environment variable of the test hook that fails an attach right after a named step.
pub const FAIL_STEP_ENV: &str = "PIPEWORK_TEST_FAIL_STEP";

/// What a command produced: text for stdout and the exit status.
pub struct Outcome {
    pub stdout: Option<String>,
    pub status: i32,
}

pub fn run(cmd: &Command, opts: Options) -> Result<Outcome, Error> {
    let log = Log {
        verbose: opts.verbose,
    };
    match cmd {
        Command::Attach(req) => attach(req, opts, log),
        Command::Exec(e) => {
            privilege::require_admin()?;
            let raw = spec_text(&e.guest);
            let home = NetNs::current()?;
            let guest = guest::resolve(&raw, &e.guest, &home)?;
            log.info(format_args!(
                "running {} {} in {}",
                e.tool.argv().join(" "),
                e.args.join(" "),
                guest.netns.path.display()
            ));
            let status = exec::run_tool(e.tool, &e.args, &guest.netns)?;
            Ok(Outcome {
                stdout: None,
                status,
            })
        }
        Command::List => Ok(Outcome {
            stdout: Some(list::render(&lifecycle::list(), opts.json)),
            status: 0,
        }),
        Command::Detach(t) => {
            privilege::require_admin()?;
            let done = lifecycle::detach(t, opts.dry_run)?;
            Ok(Outcome {
                stdout: Some(list::render_actions(&done, opts.json, opts.dry_run)),
                status: 0,
            })
        }
        Command::Watch { rules } => {
            privilege::require_admin()?;
            if let Some(r) = rules {
                watch::load_rules(r)?; // a broken file is an error now, not at the first start
            }
            watch::Watcher {
                rules_path: rules.clone(),
                opts: Options {
                    json: false,
                    ..opts
                },
            }
            .run()?;
            Ok(Outcome {
                stdout: None,
                status: 0,
            })
        }
        Command::Gc => {
            privilege::require_admin()?;
            let done = lifecycle::gc(opts.dry_run)?;
            Ok(Outcome {
                stdout: Some(list::render_actions(&done, opts.json, opts.dry_run)),
                status: 0,
            })
        }
        Command::Wait(w) => {
            wait::wait_for_link(&w.ifname, w.timeout)?;
            Ok(Outcome {
                stdout: None,
                status: 0,
            })
        }
    }
}

/// The guest as reports and records show it (`docker:web1`, `lxc:c1`, `1234`…).
fn spec_text(spec: &guest::GuestSpec) -> String {
    spec.to_string()
}

fn attach(req: &AttachRequest, opts: Options, log: Log) -> Result<Outcome, Error> {
    privilege::require_admin()?;
    let raw = spec_text(&req.guest);
    let home = NetNs::current()?;
    let guest = guest::resolve(&raw, &req.guest, &home)?;
    log.info(format_args!(
        "guest {raw}: {:?}{}, namespace {} (inode {})",
        guest.engine,
        guest.pid.map(|p| format!(" pid {p}")).unwrap_or_default(),
        guest.netns.path.display(),
        guest.netns.inode
    ));
    let mut host_nl =
        Netlink::open().map_err(|e| Error::netlink("cannot open a netlink socket", e))?;
    let mut guest_nl = guest.netns.run_in(&home, Netlink::open)?.map_err(|e| {
        Error::netlink(
            format!("cannot open a netlink socket in the guest {raw}"),
            e,
        )
    })?;
    // Shared with other attaches, exclusive of detach/gc (see state::lock).
    let _lock = if opts.dry_run {
        None
    } else {
        Some(state::lock(false)?)
    };
    let plan = plan::plan_attach(&mut PlanCtx {
        req,
        guest: &guest,
        host: &mut host_nl,
        guest_nl: &mut guest_nl,
    })?;

    let applied = if opts.dry_run {
        for s in &plan.steps {
            eprintln!("pipework: plan {}: {}", s.name, s.op);
        }
        None
    } else {
        let mut env = Env {
            host: &mut host_nl,
            guest: &mut guest_nl,
            guest_ns: &guest.netns,
            guest_desc: &guest,
            home: &home,
            log,
            fail_after: std::env::var(FAIL_STEP_ENV).ok().filter(|s| !s.is_empty()),
        };
        let undo_info = state::undo_info(&plan);
        let record = |applied: &apply::Applied, env_host: &mut Netlink| {
            let rep = report::AttachReport::new(&guest, &plan, Some(applied.clone()));
            let value = serde_json::to_value(&rep)
                .map_err(|e| Error::Invalid(format!("cannot record the attachment: {e}")))?;
            let mut files = Vec::new();
            if plan.host_interface_created {
                let kind = format!("{:?}", plan.kind).to_lowercase();
                if !applied.host_interface_existed {
                    files.push(state::mark_created(env_host, &kind, &plan.host_interface)?);
                }
            }
            if let Some(v) = &undo_info.vlan_created {
                files.push(state::mark_created(env_host, "vlan", v)?);
            }
            let path = state::path_for(guest.netns.inode, &plan.guest_ifname);
            state::write(&path, &value, &undo_info)?;
            files.push(path);
            Ok(files)
        };
        Some(apply::apply(&plan, &mut env, record)?)
    };
    let stdout = if opts.json {
        let rep = report::AttachReport::new(&guest, &plan, applied);
        Some(serde_json::to_string(&rep).expect("report serializes"))
    } else {
        None
    };
    Ok(Outcome { stdout, status: 0 })
}
