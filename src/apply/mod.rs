//! plan → system: runs the steps in order, each through the driver of the plan's kind or the
//! shared guest-side ops. Every change's undo entry reaches the journal before the change
//! (the ops write it); on the first failure the journal is replayed backwards, so a failed
//! attach leaves nothing half-plumbed — and a killed one leaves a journal that `gc` replays
//! the same way.

pub mod undo;

use crate::driver::{self, Driver};
use crate::env::Env;
use crate::error::Error;
use crate::plan::{Plan, Step};
use crate::report::Applied;

/// Applies the plan; then `finish` (the record's completion, the step `record`) — a failure
/// there rolls everything back too. `fail_after` is the test hook's step name.
pub fn apply(
    plan: &Plan,
    env: &mut Env<'_>,
    fail_after: Option<&str>,
    finish: impl FnOnce(&mut Env<'_>) -> Result<(), Error>,
) -> Result<Applied, Error> {
    let start = std::time::Instant::now();
    let mut times = Vec::with_capacity(plan.steps.len() + 1);
    if let Err(e) = run_steps(plan, env, fail_after, &mut times) {
        return Err(rollback(e, plan, env));
    }
    env.log
        .step("record", "record the attachment for pipework ls/detach/gc");
    let t = std::time::Instant::now();
    let mut r = finish(env);
    if r.is_ok() && fail_after == Some("record") {
        r = Err(Error::Injected("record"));
    }
    if let Err(e) = r {
        return Err(rollback(e, plan, env));
    }
    times.push(("record", t.elapsed()));
    if env.log.verbose {
        let each: Vec<String> = times
            .iter()
            .map(|(n, d)| format!("{n} {:.3}", d.as_secs_f64() * 1e3))
            .collect();
        env.log.info(format_args!(
            "applied {} steps in {:.3} ms ({})",
            times.len(),
            start.elapsed().as_secs_f64() * 1e3,
            each.join(", ")
        ));
    }
    Ok(env.learned.applied.clone())
}

/// The plan's steps in order, without rollback (the caller's): also what a staged attach
/// runs, inside `apply`'s `finish`, once the front end has the addresses.
pub fn run_steps(
    plan: &Plan,
    env: &mut Env<'_>,
    fail_after: Option<&str>,
    times: &mut Vec<(&'static str, std::time::Duration)>,
) -> Result<(), Error> {
    let drv = driver::driver(plan.kind);
    for step in &plan.steps {
        env.log.step(step.name, &step.op);
        let t = std::time::Instant::now();
        let mut r = run_step(drv, step, env).map_err(|e| Error::Step {
            step: step.name,
            object: Some(step.op.object()),
            source: Box::new(e),
        });
        if r.is_ok() && fail_after == Some(step.name) {
            r = Err(Error::Injected(step.name));
        }
        r?;
        times.push((step.name, t.elapsed()));
    }
    Ok(())
}

fn run_step(drv: &dyn Driver, step: &Step, env: &mut Env<'_>) -> Result<(), Error> {
    if drv.apply(&step.op, env)? || crate::addressing::apply::apply(&step.op, env)? {
        return Ok(());
    }
    Err(Error::Internal(format!(
        "no driver applies step {} ({}) for kind {}",
        step.name,
        step.op,
        drv.kind()
    )))
}

/// Undoes everything the journal holds, newest first; never stops at the first failure.
fn rollback(err: Error, plan: &Plan, env: &mut Env<'_>) -> Error {
    let entries: Vec<_> = env.journal.entries().iter().rev().cloned().collect();
    let mut sys = env.sys();
    let mut done = Vec::new();
    let left = undo::replay(plan.kind, &entries, &mut sys, &mut done);
    if left.is_empty() {
        err
    } else {
        Error::Rollback {
            source: Box::new(err),
            left,
        }
    }
}
