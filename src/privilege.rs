//! The capabilities an attach needs, checked up front so the user gets one clear sentence
//! instead of a kernel EPERM halfway through.

use crate::error::Error;

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;

/// The effective capability set, by one capget(2) (no /proc parsing on the hot path).
fn effective_caps() -> Option<u64> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Default, Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let mut hdr = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: version 3 takes a header and an array of two data structs, both valid here.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut hdr, data.as_mut_ptr()) };
    (r == 0).then(|| u64::from(data[0].effective) | (u64::from(data[1].effective) << 32))
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

/// Whether the process has what [`require_admin`] asks for.
pub fn is_admin() -> bool {
    missing(effective_caps().unwrap_or(0)).is_empty()
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
