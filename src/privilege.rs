//! The capabilities an attach needs, checked up front so the user gets one clear sentence
//! instead of a kernel EPERM halfway through.

use crate::error::Error;

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;

fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line.split_whitespace().nth(1)?, 16).ok()
}

pub fn missing(caps: u64) -> Vec<&'static str> {
    let mut out = Vec::new();
    if caps & (1 << CAP_NET_ADMIN) == 0 {
        out.push("CAP_NET_ADMIN");
    }
    if caps & (1 << CAP_SYS_ADMIN) == 0 {
        out.push("CAP_SYS_ADMIN");
    }
    out
}

/// Both CAP_NET_ADMIN (links, addresses, routes) and CAP_SYS_ADMIN (entering namespaces).
pub fn require_admin() -> Result<(), Error> {
    let caps = effective_caps().unwrap_or(0);
    let miss = missing(caps);
    if miss.is_empty() {
        return Ok(());
    }
    Err(Error::Permission(format!(
        "pipework must run as root: it needs {} to plumb interfaces into network namespaces \
         (try sudo)",
        miss.join(" and ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_what_is_missing() {
        assert_eq!(missing(u64::MAX), Vec::<&str>::new());
        assert_eq!(missing(0), vec!["CAP_NET_ADMIN", "CAP_SYS_ADMIN"]);
        assert_eq!(missing(1 << 21), vec!["CAP_NET_ADMIN"]);
    }
}
