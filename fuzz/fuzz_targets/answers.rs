//! What other programs answer pipework: the Docker Engine API (also Podman's compatible socket)
//! for `inspect` and for watch (inspect, list, version, the events stream), `ctr task ls`,
//! `lxc-info`, the OVSDB server's reply to the bridge select and `ovs-vsctl list-ports`. The
//! first byte picks the parser, the rest is the answer.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use pipework::driver::ovs::{self, OvsBridge};
use pipework::guest::{containerd, docker, lxc};
use pipework::watch::{self, Seen};

fuzz_target!(|data: &[u8]| {
    let Some((&which, data)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(data);
    match which % 6 {
        0 => match docker::parse_inspect_answer(data, Path::new("/run/docker.sock"), "web1") {
            Ok(docker::Lookup::Found(c)) => {
                // Only a 200 is a container.
                let end = data.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
                let head = std::str::from_utf8(&data[..end]).unwrap();
                assert_eq!(
                    head.split_whitespace().nth(1).map(str::parse::<u16>),
                    Some(Ok(200))
                );
                let _ = (c.id, c.name, c.state.pid);
            }
            Ok(docker::Lookup::NotFound) => {}
            Ok(docker::Lookup::NoEngine(_)) => panic!("an answer is an engine"),
            Err(e) => assert_ne!(e.exit_code(), 0),
        },
        1 => {
            // `ctr task ls`: the id is the first word of the second line, if any.
            let id = text
                .lines()
                .nth(1)
                .and_then(|l| l.split_whitespace().next());
            let id = id.unwrap_or("c1");
            if let Some(t) = containerd::parse_task_ls(&text, id) {
                assert!(text.contains(id));
                assert!(!t.status.is_empty());
                let _ = t.usable();
            }
        }
        2 => {
            if let Some(i) = lxc::parse_info(&text) {
                assert!(i.pid != Some(0), "PID 0 is no container");
                let _ = i.usable();
            }
            let _ = lxc::cgroup_matches(&text, "web1");
        }
        3 => match ovs::parse_select_bytes(data) {
            Ok(OvsBridge::Exists(dp)) => assert!(text.contains("rows") || dp.is_empty()),
            Ok(OvsBridge::Absent | OvsBridge::NotRunning(_)) => {}
            Ok(OvsBridge::NotInstalled) => panic!("an answer means OVS is installed"),
            Err(e) => assert_ne!(e.exit_code(), 0),
        },
        4 => {
            let ports = ovs::parse_ports(data);
            assert!(ports.iter().all(|p| !p.contains('\n')));
        }
        _ => {
            // watch: an HTTP answer (inspect), then the same bytes as an events stream.
            if let Ok(v) = watch::parse_answer("/containers/x/json", data) {
                let podman = watch::engine_of_version(&v) == pipework::guest::Engine::Podman;
                assert!(
                    !podman || text.to_ascii_lowercase().contains("podman") || text.contains('\\')
                );
                if let Some(c) = watch::container_of(&v) {
                    let rules = watch::Rules::default();
                    let _ = watch::specs_for(&c, &rules);
                }
            }
            let stream =
                serde_json::Deserializer::from_slice(data).into_iter::<serde_json::Value>();
            for ev in stream.take(64) {
                let Ok(ev) = ev else { break };
                match watch::event_of(&ev) {
                    Seen::Start(id) | Seen::Die(id) => assert!(watch::valid_id(id)),
                    Seen::BadId | Seen::Other => {}
                }
            }
        }
    }
});
