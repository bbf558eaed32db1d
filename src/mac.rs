//! MAC addresses: parsing, validation, and the original's `U:<string>` hashed MAC.

use std::fmt;
use std::str::FromStr;

use md5::{Digest, Md5};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The original's `U:<string>`: `echo $string | md5sum` → 02 followed by the first five
    /// bytes of the digest (the string plus a newline is hashed, as `echo` adds one).
    pub fn hashed(unique: &str) -> MacAddr {
        let mut h = Md5::new();
        h.update(unique.as_bytes());
        h.update(b"\n");
        let d = h.finalize();
        MacAddr([0x02, d[0], d[1], d[2], d[3], d[4]])
    }

    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl FromStr for MacAddr {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || {
            Error::Invalid(format!(
                "invalid MAC address '{s}': expected six hexadecimal bytes such as 02:42:ac:11:00:02"
            ))
        };
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 6 {
            return Err(bad());
        }
        let mut a = [0u8; 6];
        for (i, p) in parts.iter().enumerate() {
            // Digits only: from_str_radix alone also takes a sign ("+0").
            if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            a[i] = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        let mac = MacAddr(a);
        if mac.is_multicast() {
            // The suggestion is written out from the bytes: the first part may be one digit.
            let unicast = MacAddr([a[0] & 0xfe, a[1], a[2], a[3], a[4], a[5]]);
            return Err(Error::Invalid(format!(
                "MAC address {s} is a multicast address (lowest bit of the first byte is 1): \
                 use e.g. {unicast}"
            )));
        }
        if a == [0; 6] {
            return Err(Error::Invalid(format!(
                "MAC address {s} is all zeros: give a unicast address such as 02:00:00:00:00:01"
            )));
        }
        Ok(mac)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            a[0], a[1], a[2], a[3], a[4], a[5]
        )
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_mac_matches_the_original_readme() {
        assert_eq!(
            MacAddr::hashed("myhost.foo.com").to_string(),
            "02:72:6c:cd:9b:8d"
        );
    }

    #[test]
    fn parses_and_prints() {
        let m: MacAddr = "26:2E:71:98:60:8f".parse().unwrap();
        assert_eq!(m.to_string(), "26:2e:71:98:60:8f");
    }

    #[test]
    fn rejects_malformed() {
        for s in [
            "",
            "26:2e:71:98:60",
            "26:2e:71:98:60:8f:00",
            "zz:2e:71:98:60:8f",
            "262e:71:98:60:8f:1",
            // A sign is no hex digit (found by fuzz/cni_config:
            // fuzz/corpus/cni_config/regress-mac-sign).
            "02:00:00:00:+0:09",
            "+2:00:00:00:00:01",
            "02:00:00:00:-0:01",
        ] {
            let e = s.parse::<MacAddr>().unwrap_err();
            assert!(e.to_string().contains("invalid MAC address"), "{s}: {e}");
        }
    }

    #[test]
    fn rejects_multicast_and_zero() {
        let e = "01:00:5e:00:00:01".parse::<MacAddr>().unwrap_err();
        assert!(e.to_string().contains("multicast"), "{e}");
        assert!(e.to_string().ends_with("use e.g. 00:00:5e:00:00:01"), "{e}");
        // A one-digit first part: the suggestion is still a whole address.
        let e = "3:2:1:0:a:b".parse::<MacAddr>().unwrap_err();
        assert!(e.to_string().ends_with("use e.g. 02:02:01:00:0a:0b"), "{e}");
        let e = "00:00:00:00:00:00".parse::<MacAddr>().unwrap_err();
        assert!(e.to_string().contains("all zeros"), "{e}");
    }
}
