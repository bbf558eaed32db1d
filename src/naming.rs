//! Interface names: the kernel's rules, and the host-side default names.

use md5::{Digest, Md5};

use crate::error::Error;

/// IFNAMSIZ - 1.
pub const MAX_IFNAME: usize = 15;

/// Checks a name the way the kernel's dev_valid_name() does, with a message that says which
/// rule it breaks.
pub fn validate_ifname(name: &str, what: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::Invalid(format!("{what} name is empty")));
    }
    if name.len() > MAX_IFNAME {
        return Err(Error::Invalid(format!(
            "{what} name '{name}' is {} bytes long; Linux allows at most {MAX_IFNAME}",
            name.len()
        )));
    }
    if name == "." || name == ".." {
        return Err(Error::Invalid(format!(
            "{what} name '{name}' is not allowed"
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| *c == '/' || *c == ':' || *c == '\0' || c.is_whitespace())
    {
        return Err(Error::Invalid(format!(
            "{what} name '{name}' contains '{}', which Linux does not allow in interface names",
            c.escape_default()
        )));
    }
    Ok(())
}

/// The host end's default name: the original's `v<IF>pl<PID>` when it fits in 15 bytes;
/// otherwise `vp` + 13 hex digits of a hash of the same inputs — deterministic (the same guest
/// and interface always get the same name) and never a truncation that could collide.
/// Guests without a process (a named namespace, a path) use the namespace inode as the id.
pub fn default_host_ifname(guest_ifname: &str, id: u64) -> String {
    let classic = format!("v{guest_ifname}pl{id}");
    if classic.len() <= MAX_IFNAME {
        return classic;
    }
    let mut h = Md5::new();
    h.update(guest_ifname.as_bytes());
    h.update(b"@");
    h.update(id.to_string().as_bytes());
    let d = h.finalize();
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    format!("vp{}", &hex[..MAX_IFNAME - 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_name_when_it_fits() {
        assert_eq!(default_host_ifname("eth1", 1234), "veth1pl1234");
        assert_eq!(default_host_ifname("eth1", 4194303), "veth1pl4194303");
    }

    #[test]
    fn hashed_name_when_too_long_is_deterministic_and_distinct() {
        let a = default_host_ifname("eth1", 4026532512);
        let b = default_host_ifname("eth1", 4026532513);
        let c = default_host_ifname("eth2", 4026532512);
        assert_eq!(a, default_host_ifname("eth1", 4026532512));
        assert!(a.starts_with("vp") && a.len() == 15, "{a}");
        assert_ne!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn kernel_name_rules() {
        validate_ifname("eth1", "guest interface").unwrap();
        validate_ifname("a23456789012345", "x").unwrap();
        let e = validate_ifname("a234567890123456", "host interface").unwrap_err();
        assert!(e.to_string().contains("at most 15"), "{e}");
        let e = validate_ifname("a/b", "x").unwrap_err();
        assert!(e.to_string().contains("'/'"), "{e}");
        assert!(validate_ifname("", "x").is_err());
        assert!(validate_ifname("..", "x").is_err());
        assert!(
            validate_ifname("eth\x001", "x").is_err(),
            "a NUL would cut the name short"
        );
        assert!(validate_ifname("a b", "x").is_err());
    }
}
