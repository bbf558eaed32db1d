//! The network configuration on stdin (`cni::config::decode`), its version
//! (`cni::version::negotiate`) and the bridge plugin's checks (`cni::config::check`), with
//! CNI_ARGS' MAC (`cni::config::env_args`), pipework's own keys included. Input: the configuration's bytes; if they start with
//! `CNI_ARGS=`, that first line is CNI_ARGS and the rest the configuration.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipework::cni::{config, env, version};
use pipework::naming::MAX_IFNAME;

fuzz_target!(|data: &[u8]| {
    let (args, stdin) = match data.strip_prefix(b"CNI_ARGS=") {
        Some(rest) => {
            let end = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
            (
                String::from_utf8_lossy(&rest[..end]).into_owned(),
                rest.get(end + 1..).unwrap_or_default(),
            )
        }
        None => (String::new(), data),
    };
    let conf = match config::decode(stdin) {
        Ok(c) => c,
        Err(e) => {
            // 2 only for a key the `pipework` object does not know, named in the details.
            match e.code {
                6 => {}
                2 => assert!(e.details.starts_with("unknown field"), "{e:?}"),
                _ => panic!("decode: {e:?}"),
            }
            return;
        }
    };
    let v = match version::negotiate(conf.cni_version.as_deref()) {
        Ok(v) => {
            assert_eq!(Some(v), conf.cni_version.as_deref());
            v
        }
        Err(e) => {
            assert_eq!(e.code, 1, "{e:?}");
            // A plugin still answers in a version the runtime knows.
            version::CURRENT
        }
    };
    let env_vars = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c0ffee"),
        ("CNI_NETNS", "/run/netns/x"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_ARGS", args.as_str()),
    ];
    let get = |k: &str| {
        env_vars
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    };
    let env_mac = match env::parse(&get).and_then(|inv| config::env_args(&inv.args, v)) {
        Ok(mac) => mac,
        Err(e) => {
            assert_eq!(e.code, 4, "{e:?}");
            return;
        }
    };
    let c = match config::check(conf.clone(), v, env_mac.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            assert_eq!(e.code, 7, "{e:?}");
            assert_eq!(e.cni_version, v);
            serde_json::from_str::<serde_json::Value>(&e.to_json()).expect("an error is JSON");
            return;
        }
    };
    assert_eq!(c.is_gateway, conf.is_gateway || conf.is_default_gateway);
    if let Some(id) = c.vlan {
        assert!((1..=4094).contains(&id));
        assert_eq!(i64::from(id), conf.vlan);
    } else {
        assert_eq!(conf.vlan, 0);
    }
    assert!(c.trunk.windows(2).all(|w| w[0] < w[1]), "{:?}", c.trunk);
    assert!(c.trunk.iter().all(|id| (1..=4094).contains(id)));
    if let Some(mtu) = c.mtu {
        assert!((68..=65535).contains(&mtu));
    }
    let b = &c.conf.bridge;
    assert!(
        !b.is_empty() && b.len() <= MAX_IFNAME,
        "bridge {b:?} accepted"
    );
    assert!(!b.contains(['/', ':', '\0']) && b != "." && b != "..");
    if !c.conf.name.is_empty() {
        assert!(env::valid_container_id(&c.conf.name));
    }
    // The MAC is the last source that gives one, written as the reference parses it.
    let sources = [
        env_mac.as_deref(),
        conf.args.cni.mac.as_deref(),
        conf.runtime_config.mac.as_deref(),
    ];
    let given = sources.into_iter().flatten().rfind(|m| !m.is_empty());
    assert_eq!(c.mac.is_some(), given.is_some());
    if let (Some(mac), Some(text)) = (c.mac, given) {
        assert!(
            text.split(':')
                .all(|p| !p.is_empty() && p.len() <= 2 && p.bytes().all(|b| b.is_ascii_hexdigit())),
            "MAC {text:?} accepted as {mac}"
        );
        assert_eq!(
            mac.to_string().parse::<pipework::mac::MacAddr>().ok(),
            Some(mac)
        );
    }
});
