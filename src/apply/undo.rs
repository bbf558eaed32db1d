//! Replaying undo entries: rollback of a failed attach, recovery of a killed one, and a
//! detach, all through this one path. Each entry goes to the module that journals it: the
//! kind's driver, the links every kind shares, or the guest-side ops.

use crate::driver::{self, Undone};
use crate::env::Sys;
use crate::plan::{Kind, UndoEntry};

pub fn undo_one(kind: Kind, entry: &UndoEntry, sys: &mut Sys<'_>) -> Undone {
    sys.log.step("rollback", entry);
    if let Some(r) = driver::driver(kind).undo(entry, sys) {
        return r;
    }
    if let Some(r) = crate::driver_api::undo_common(entry, sys) {
        return r;
    }
    if let Some(r) = crate::addressing::apply::undo(entry, sys) {
        return r;
    }
    Ok(None)
}

/// Runs `entries` in the order given. What was done goes to `done`; what could not be undone
/// is returned, one line each.
pub fn replay(
    kind: Kind,
    entries: &[UndoEntry],
    sys: &mut Sys<'_>,
    done: &mut Vec<String>,
) -> Vec<String> {
    let mut left = Vec::new();
    for e in entries {
        match undo_one(kind, e, sys) {
            Ok(Some(what)) => done.push(what),
            Ok(None) => {}
            Err(err) => left.push(format!("{e}: {err}")),
        }
    }
    left
}
