//! The watch rules file (`watch::parse_rules`) and what watch does with it: the specs for a
//! container (its labels, then the matching rules' globs) and each spec as a typed request.
//! Input: the rules text, then after a NUL the container as `name\nimage\nkey=value\n…`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipework::naming::MAX_IFNAME;
use pipework::watch::{self, Container};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (rules_text, who) = text.split_once('\0').unwrap_or((&text, "web1\nnginx\n"));
    let rules = match watch::parse_rules(rules_text, "fuzz.json") {
        Ok(r) => r,
        Err(e) => {
            assert_eq!(e.exit_code(), 2, "a bad rules file is the user's input");
            watch::Rules::default()
        }
    };
    let mut lines = who.lines();
    let c = Container {
        id: "0123456789abcdef".into(),
        name: lines.next().unwrap_or_default().into(),
        image: lines.next().unwrap_or_default().into(),
        labels: lines
            .take(16)
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap_or((l, ""));
                (k.to_string(), v.to_string())
            })
            .collect(),
    };
    let specs = watch::specs_for(&c, &rules);
    for spec in specs.iter().take(8) {
        if let Ok(req) = watch::request_for(&c, spec) {
            // Without a MAC in the spec the interface gets the container's stable one.
            assert!(req.mac.is_some() || req.direct_phys);
            if let Some(n) = &req.guest_ifname {
                assert!(n.len() <= MAX_IFNAME);
            }
            if let Some(n) = &req.host_ifname {
                assert!(n.len() <= MAX_IFNAME);
            }
        }
    }
});
