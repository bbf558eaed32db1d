//! The CNI environment (`cni::env::parse`) and CNI_ARGS as the bridge plugin reads them
//! (`cni::config::env_args`). Input: `KEY=VALUE` lines, as a runtime sets the variables (the
//! first line of a key wins, as getenv finds the first); a line without `=` is a variable set
//! to the empty string.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use pipework::cni::env::{self, Command};
use pipework::cni::{config, version};
use pipework::naming::MAX_IFNAME;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut vars: HashMap<&str, &str> = HashMap::new();
    for line in text.split('\n') {
        let (k, v) = line.split_once('=').unwrap_or((line, ""));
        vars.entry(k).or_insert(v);
    }
    let get = |k: &str| vars.get(k).map(|v| v.to_string());
    let inv = match env::parse(&get) {
        Ok(inv) => inv,
        Err(e) => {
            // Always error 4, naming one of the variables it reads.
            assert_eq!(e.code, 4, "{e:?}");
            assert!(e.details.starts_with("CNI_"), "{e:?}");
            let var = e.details.split(':').next().unwrap_or_default();
            assert!(
                [
                    "CNI_COMMAND",
                    "CNI_CONTAINERID",
                    "CNI_NETNS",
                    "CNI_IFNAME",
                    "CNI_ARGS",
                    "CNI_PATH"
                ]
                .contains(&var),
                "{e:?}"
            );
            serde_json::from_str::<serde_json::Value>(&e.to_json()).expect("an error is JSON");
            return;
        }
    };
    let required: &[&str] = match inv.command {
        Command::Add | Command::Check => &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
        Command::Del => &["CNI_CONTAINERID", "CNI_IFNAME"],
        Command::Gc => &["CNI_PATH"],
        Command::Status | Command::Version => &[],
    };
    for var in required {
        assert!(
            vars.get(var).is_some_and(|v| !v.is_empty()),
            "{var} is required"
        );
    }
    if let Some(id) = &inv.container_id {
        assert!(env::valid_container_id(id), "container ID {id:?} accepted");
        assert!(!id.contains(['/', '\0']));
    }
    if let Some(n) = &inv.ifname {
        assert!(
            !n.is_empty() && n.len() <= MAX_IFNAME && n != "." && n != "..",
            "interface name {n:?} accepted"
        );
        assert!(!n.contains(['/', ':', '\0']) && !n.contains(char::is_whitespace));
    }
    if let Some(p) = &inv.netns {
        assert!(p.is_absolute(), "{p:?}");
    }
    for (k, v) in &inv.args {
        assert!(!k.is_empty() && !k.contains([';', '=']) && !v.contains(';'));
    }
    assert!(inv.path.iter().all(|d| !d.as_os_str().is_empty()));
    // The bridge plugin's reading of CNI_ARGS: strict unless IgnoreUnknown.
    match config::env_args(&inv.args, version::CURRENT) {
        Ok(mac) => {
            let last_mac = inv.args.iter().rev().find(|(k, _)| k == "MAC");
            assert_eq!(mac.as_deref(), last_mac.map(|(_, v)| v.as_str()));
        }
        Err(e) => {
            assert_eq!(e.code, 4, "{e:?}");
            assert!(e.details.starts_with("CNI_ARGS"), "{e:?}");
        }
    }
});
