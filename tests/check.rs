//! `pipework check`: each attachment compared with its record (host end and bridge, the guest
//! interface's type, MAC, MTU, addresses, up state). Each test has its own host namespace,
//! guests and runtime directory. Subnets 10.239.x.x.

mod common;
use common::*;

use serde_json::Value;

fn pw(host: &Netns, rt: &RuntimeDir, args: &[&str]) -> Run {
    pipework_env(host, args, &[("PIPEWORK_RUNTIME_DIR", rt.path())])
}

fn checked(r: &Run) -> Vec<Value> {
    match serde_json::from_str::<Value>(r.stdout.trim()) {
        Ok(Value::Array(a)) => a,
        other => panic!("check --json is not an array: {other:?}\n{r:?}"),
    }
}

#[test]
fn check_reports_ok_then_each_drift() {
    need_root!();
    let rt = RuntimeDir::new();
    let host = Netns::new("h");
    let g = Netns::new("g");
    pw(&host, &rt, &["br1", &g.name, "10.239.1.2/24@10.239.9.1"]).ok();

    let r = pw(&host, &rt, &["check", "--json"]);
    r.ok();
    let c = checked(&r);
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0]["state"], "ok", "{c:?}");
    assert_eq!(c[0]["differences"], Value::Array(vec![]), "{c:?}");
    let text = pw(&host, &rt, &["check", &g.name]);
    text.ok();
    assert!(text.stdout.starts_with("ok"), "{text:?}");

    // The default route goes behind pipework's back: drift, exit 1, the route named.
    ip(&g, &["route", "del", "default"]);
    let r = pw(&host, &rt, &["check", "--json", &g.name]);
    assert_eq!(r.code, 1, "{r:?}");
    let diffs = checked(&r)[0]["differences"].to_string();
    assert!(
        diffs.contains("lost its route default via 10.239.9.1"),
        "{diffs}"
    );
    assert!(
        !diffs.contains("10.239.9.1/32"),
        "the on-link route is still there: {diffs}"
    );

    // The address too: the address named.
    ip(&g, &["addr", "del", "10.239.1.2/24", "dev", "eth1"]);
    let r = pw(&host, &rt, &["check", "--json", &g.name]);
    assert_eq!(r.code, 1, "{r:?}");
    let c = checked(&r);
    assert_eq!(c[0]["state"], "drift", "{c:?}");
    let diffs = c[0]["differences"].to_string();
    assert!(diffs.contains("10.239.1.2/24"), "{diffs}");

    // The MAC and the up state too.
    ip(&g, &["link", "set", "eth1", "down"]);
    ip(&g, &["link", "set", "eth1", "address", "02:00:00:00:39:01"]);
    let c = checked(&pw(&host, &rt, &["check", "--json"]));
    let diffs = c[0]["differences"].to_string();
    assert!(diffs.contains("02:00:00:00:39:01"), "{diffs}");
    assert!(diffs.contains("is down"), "{diffs}");

    // The host end leaves the bridge.
    let h = c[0]["guest"].as_str().unwrap().to_string();
    assert_eq!(h, g.name);
    let listed: Vec<Value> =
        serde_json::from_str(pw(&host, &rt, &["ls", "--json"]).ok().stdout.trim()).unwrap();
    let host_end = listed[0]["host_ifname"].as_str().unwrap().to_string();
    ip(&host, &["link", "set", &host_end, "nomaster"]);
    let c = checked(&pw(&host, &rt, &["check", "--json"]));
    let diffs = c[0]["differences"].to_string();
    assert!(diffs.contains("no longer a port of br1"), "{diffs}");

    // Gone entirely: stale.
    drop(g);
    let r = pw(&host, &rt, &["check", "--json"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(checked(&r)[0]["state"], "stale");
    pw(&host, &rt, &["gc"]).ok();
    let r = pw(&host, &rt, &["check"]);
    r.ok();
    assert_eq!(r.stdout.trim(), "no attachments", "{r:?}");
}

#[test]
fn check_takes_at_most_one_guest() {
    let rt = RuntimeDir::new();
    let host = Netns::new("h");
    pw(&host, &rt, &["check", "a", "b"]).fails(2, "check takes at most one guest");
}
