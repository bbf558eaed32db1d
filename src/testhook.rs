//! Test hooks, compiled in only with the cargo feature `test-hooks` (never in a release
//! binary): fail after a named step, or die right after the Nth kernel change.

pub const FAIL_STEP_ENV: &str = "PIPEWORK_TEST_FAIL_STEP";
pub const KILL_AFTER_MSG_ENV: &str = "PIPEWORK_TEST_KILL_AFTER_MSG";

#[cfg(feature = "test-hooks")]
static CHANGES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Called after every kernel change (netlink ack, ovs-vsctl change).
#[inline]
pub fn change_done() {
    #[cfg(feature = "test-hooks")]
    {
        let n = CHANGES.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if std::env::var(KILL_AFTER_MSG_ENV)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            == Some(n)
        {
            // SAFETY: plain kill(2) of ourselves: a crash at this exact instant.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
    }
}

/// The step after which an attach fails (`PIPEWORK_TEST_FAIL_STEP`).
pub fn fail_after_step() -> Option<String> {
    #[cfg(feature = "test-hooks")]
    {
        std::env::var(FAIL_STEP_ENV).ok().filter(|s| !s.is_empty())
    }
    #[cfg(not(feature = "test-hooks"))]
    {
        None
    }
}
