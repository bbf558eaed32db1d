//! Crash and failure injection for the integration tests, compiled in only with the
//! `test-hooks` cargo feature. Without it every hook is an empty inline function, so a release
//! binary carries neither the code nor a way to trigger it from the environment.
//!
//! - [`change_done`] is called after every kernel change the netlink client saw acknowledged;
//!   with `PIPEWORK_TEST_KILL_AFTER_MSG=N` the process SIGKILLs itself right after the Nth one,
//!   which is how the tests simulate a crash in the middle of an attach (no unwinding, no
//!   rollback, no destructors — exactly what a power cut or `kill -9` leaves behind).
//! - [`fail_after_step`] names the step after which an attach fails on purpose
//!   (`PIPEWORK_TEST_FAIL_STEP`), to prove every rollback path.

/// Kill the process (SIGKILL) right after this many acknowledged kernel changes (N ≥ 1).
pub const KILL_AFTER_MSG_ENV: &str = "PIPEWORK_TEST_KILL_AFTER_MSG";
/// Fail an attach right after the step of this name.
pub const FAIL_STEP_ENV: &str = "PIPEWORK_TEST_FAIL_STEP";
/// Fail a lab's apply right after its Nth change (1-based), or after its `last`.
pub const LAB_FAIL_ENV: &str = "PIPEWORK_TEST_LAB_FAIL_AFTER";

/// The kill threshold from the value of [`KILL_AFTER_MSG_ENV`]: a positive count, or none
/// (unset, empty, 0 or not a number: no crash is wanted, so none is simulated).
#[cfg(any(feature = "test-hooks", test))]
fn parse_kill_after(value: Option<&str>) -> Option<usize> {
    value
        .map(str::trim)
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n >= 1)
}

/// The step name from the value of [`FAIL_STEP_ENV`]; empty means unset.
#[cfg(any(feature = "test-hooks", test))]
fn parse_fail_step(value: Option<String>) -> Option<String> {
    value.filter(|s| !s.is_empty())
}

#[cfg(feature = "test-hooks")]
mod imp {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::OnceLock;

    /// Acknowledged kernel changes so far, process-wide (all sockets, all threads).
    static CHANGES: AtomicUsize = AtomicUsize::new(0);
    /// Read once: the environment of a running process does not change under it, and
    /// change_done sits on the hot path of every request.
    static KILL_AFTER: OnceLock<Option<usize>> = OnceLock::new();

    pub fn change_done() {
        let n = CHANGES.fetch_add(1, Ordering::SeqCst) + 1;
        let limit = *KILL_AFTER.get_or_init(|| {
            super::parse_kill_after(std::env::var(super::KILL_AFTER_MSG_ENV).ok().as_deref())
        });
        if limit == Some(n) {
            // SAFETY: kill(2) on our own pid has no memory-safety preconditions. SIGKILL cannot
            // be caught, so nothing (no rollback, no destructor) runs after the Nth change.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    }

    pub fn fail_after_step() -> Option<String> {
        super::parse_fail_step(std::env::var(super::FAIL_STEP_ENV).ok())
    }
}

/// Called after every kernel change acknowledged by the netlink client. With the `test-hooks`
/// feature and `PIPEWORK_TEST_KILL_AFTER_MSG=N`, the Nth call kills the process (SIGKILL).
#[cfg(feature = "test-hooks")]
pub fn change_done() {
    imp::change_done()
}

/// Called after every kernel change acknowledged by the netlink client (no-op in this build).
#[cfg(not(feature = "test-hooks"))]
#[inline]
pub fn change_done() {}

/// The lab change after which an apply must fail (`PIPEWORK_TEST_LAB_FAIL_AFTER`: N or
/// `last`), with the `test-hooks` feature; always `None` without it.
#[cfg(feature = "test-hooks")]
pub fn lab_fail_after() -> Option<String> {
    parse_fail_step(std::env::var(LAB_FAIL_ENV).ok())
}

#[cfg(not(feature = "test-hooks"))]
#[inline]
pub fn lab_fail_after() -> Option<String> {
    None
}

/// The step after which an attach must fail (`PIPEWORK_TEST_FAIL_STEP`), with the
/// `test-hooks` feature; always `None` without it.
#[cfg(feature = "test-hooks")]
pub fn fail_after_step() -> Option<String> {
    imp::fail_after_step()
}

/// The step after which an attach must fail: never, in a build without `test-hooks`.
#[cfg(not(feature = "test-hooks"))]
#[inline]
pub fn fail_after_step() -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_threshold_is_a_positive_count() {
        assert_eq!(parse_kill_after(Some("3")), Some(3));
        assert_eq!(parse_kill_after(Some(" 1\n")), Some(1));
        assert_eq!(parse_kill_after(Some("0")), None);
        assert_eq!(parse_kill_after(Some("")), None);
        assert_eq!(parse_kill_after(Some("-2")), None);
        assert_eq!(parse_kill_after(Some("two")), None);
        assert_eq!(parse_kill_after(None), None);
    }

    #[test]
    fn fail_step_ignores_empty_value() {
        assert_eq!(
            parse_fail_step(Some("add-address".into())).as_deref(),
            Some("add-address")
        );
        assert_eq!(parse_fail_step(Some(String::new())), None);
        assert_eq!(parse_fail_step(None), None);
    }

    #[test]
    fn env_names_are_the_documented_ones() {
        assert_eq!(KILL_AFTER_MSG_ENV, "PIPEWORK_TEST_KILL_AFTER_MSG");
        assert_eq!(FAIL_STEP_ENV, "PIPEWORK_TEST_FAIL_STEP");
    }

    /// Without the feature the hooks do nothing, whatever the environment says: counting
    /// changes never kills a release binary.
    #[cfg(not(feature = "test-hooks"))]
    #[test]
    fn hooks_are_inert_without_the_feature() {
        for _ in 0..3 {
            change_done();
        }
        assert_eq!(fail_after_step(), None);
    }

    /// With the feature, a process that never set the kill variable survives many changes.
    #[cfg(feature = "test-hooks")]
    #[test]
    fn counting_without_threshold_does_not_kill() {
        if std::env::var_os(KILL_AFTER_MSG_ENV).is_some() {
            return; // someone runs the unit tests under the crash hook: do not die here
        }
        for _ in 0..3 {
            change_done();
        }
    }
}
