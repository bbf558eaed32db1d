//! A delegated plugin's result (`cni::result::CniResult::decode`) read as each supported
//! version, and rendered (`render`) in each: the rendering has the version's shape and reads
//! back as the same result. Input: the first byte picks the version, the rest is stdout.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipework::cni::result::CniResult;
use pipework::cni::version::{ips_have_version, SUPPORTED};

fuzz_target!(|data: &[u8]| {
    let Some((&which, data)) = data.split_first() else {
        return;
    };
    let asked = SUPPORTED[which as usize % SUPPORTED.len()];
    let r = match CniResult::decode(data, asked) {
        Ok(r) => r,
        Err(e) => {
            assert_eq!(e.code, 6, "{e:?}");
            assert_eq!(e.cni_version, asked);
            return;
        }
    };
    for v in SUPPORTED {
        let out = r.render(v);
        assert_eq!(out["cniVersion"], v);
        let ips = out["ips"].as_array().expect("ips is a list");
        assert_eq!(ips.len(), r.ips.len());
        for ip in ips {
            assert_eq!(ip.get("version").is_some(), ips_have_version(v), "{out}");
        }
        let again = CniResult::decode(out.to_string().as_bytes(), v)
            .unwrap_or_else(|e| panic!("a rendered result does not read back: {e:?}\n{out}"));
        assert_eq!(again, r, "{out}");
    }
});
