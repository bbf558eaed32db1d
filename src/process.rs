//! Processes pipework starts and later stops (DHCP clients): liveness and a polite stop.

use std::time::{Duration, Instant};

/// Running, and not a zombie (PID 1 here may not reap: a dead child can linger as one).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

/// SIGTERM, a short grace period (a DHCP supervisor releases its lease), then SIGKILL.
pub fn stop(pid: u32) {
    // SAFETY: plain kill(2).
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(3);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if alive(pid) {
        // SAFETY: plain kill(2).
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
}

/// The process's start time (clock ticks since boot, field 22 of /proc/PID/stat): with the
/// PID, it names one process for good — a recycled PID has another start time.
pub fn start_time(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may itself hold spaces and parentheses.
    let rest = s.rsplit_once(')')?.1;
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn own_start_time_is_stable() {
        let me = std::process::id();
        let a = super::start_time(me).unwrap();
        assert_eq!(super::start_time(me), Some(a));
        assert!(super::alive(me));
    }
}
