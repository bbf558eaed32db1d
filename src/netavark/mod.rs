//! pipework as a netavark plugin (containers/netavark plugin-API.md, API 1.0.0): Podman 5's
//! default network backend runs `pipework-netavark info|create|setup NETNS|teardown NETNS`
//! with JSON on stdin and reads JSON on stdout. The same binary answers when its file name
//! (argv[0]) is [`PLUGIN_NAME`]: a symlink or copy in netavark's plugin directory.
//!
//! A thin front end like the CNI plugin: `setup` builds one bridge [`AttachRequest`] and runs it
//! through the same engine session, drivers, journal and records as the CLI; `teardown`
//! removes the container's records (never needing the namespace). `proto` holds the pure
//! JSON types and checks.

pub mod proto;

use std::ffi::OsStr;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use crate::cni::plugin::{host_ifname, stable_mac, Outcome};
use crate::engine::{records, Session, SessionOptions};
use crate::guest::GuestSpec;
use crate::mac::MacAddr;
use crate::plan::Kind;
use crate::request::{Addressing, AttachRequest, BridgeOptions, HostIfSpec, Owner, RouteSpec};
use crate::store::Record;
use proto::{NetAddress, NetInterface, Network, Options, PluginExec, StatusBlock};

/// The file name the binary answers the plugin API under.
pub const PLUGIN_NAME: &str = "pipework-netavark";

/// Whether argv[0]'s file name is [`PLUGIN_NAME`].
pub fn invoked_as_plugin(argv0: Option<&OsStr>) -> bool {
    argv0
        .and_then(|a| Path::new(a).file_name())
        .is_some_and(|n| n == PLUGIN_NAME)
}

/// Runs one invocation: `args` are the arguments after argv[0], `stdin` the JSON input.
pub fn main(args: &[String], stdin: &mut dyn Read) -> Outcome {
    Outcome::answer(run(args, stdin).map_err(|msg| proto::error_json(&format!("pipework: {msg}"))))
}

fn read_stdin(stdin: &mut dyn Read) -> Result<Vec<u8>, String> {
    crate::cni::plugin::read_at_most(stdin, proto::MAX_STDIN)
        .map_err(|e| format!("cannot read stdin: {e}"))?
        .ok_or_else(|| {
            format!(
                "the input is too big: more than {} bytes on stdin",
                proto::MAX_STDIN
            )
        })
}

fn run(args: &[String], stdin: &mut dyn Read) -> Result<Option<serde_json::Value>, String> {
    let netns = |cmd: &str| -> Result<PathBuf, String> {
        match args.get(1) {
            Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
            _ => Err(format!(
                "{cmd}: the container's network namespace path argument is missing"
            )),
        }
    };
    match args.first().map(String::as_str) {
        None | Some("info") => Ok(Some(proto::info())),
        Some("create") => {
            let n: Network = proto::decode(&read_stdin(stdin)?, "network configuration")?;
            let out = proto::create(n)?;
            serde_json::to_value(out)
                .map(Some)
                .map_err(|e| e.to_string())
        }
        Some("setup") => {
            let ns = netns("setup")?;
            let x: PluginExec = proto::decode(&read_stdin(stdin)?, "setup input")?;
            let s = setup(&ns, &x)?;
            serde_json::to_value(s).map(Some).map_err(|e| e.to_string())
        }
        Some("teardown") => {
            netns("teardown")?;
            let x: PluginExec = proto::decode(&read_stdin(stdin)?, "teardown input")?;
            teardown(&x).map(|()| None)
        }
        Some(other) => Err(format!(
            "unknown subcommand {other:?}: netavark plugins answer info, create, setup and teardown"
        )),
    }
}

/// The engine request of a setup: a veth from the network's bridge into `netns`.
pub fn request(netns: &Path, x: &PluginExec) -> Result<AttachRequest, String> {
    let n = &x.network;
    let o = &x.network_options;
    if x.container_id.is_empty() {
        return Err("container_id is empty".into());
    }
    proto::check_ifname(&o.interface_name, "interface_name")?;
    let opts = Options::parse(n.options.as_ref())?;
    let bridge = proto::bridge_of(n)?;
    proto::check_ifname(bridge, "network_interface")?;
    let ips = o.static_ips.as_deref().unwrap_or_default();
    let addrs = proto::addresses_of(n, ips)?;
    let mac = match (&o.static_mac, opts.stable_mac) {
        (Some(m), _) if !m.is_empty() => Some(
            m.parse::<MacAddr>()
                .map_err(|e| format!("static_mac {m:?}: {e}"))?,
        ),
        (_, true) => Some(stable_mac(&x.container_id, &o.interface_name)),
        _ => None,
    };
    // Gateways on the bridge (with their subnet's prefix) and a default route through each
    // family's, for the families the container has an address in.
    let mut gateways: Vec<IpNet> = Vec::new();
    let mut routes: Vec<RouteSpec> = Vec::new();
    if !n.internal {
        for s in n.subnets.iter().flatten() {
            let Some(gw) = s.gateway else { continue };
            if let Ok(net) = IpNet::new(gw, s.subnet.prefix_len()) {
                if !gateways.contains(&net) {
                    gateways.push(net);
                }
            }
        }
        for (_, gw) in &addrs {
            let Some(gw) = gw else { continue };
            let any: IpNet = if gw.is_ipv4() {
                "0.0.0.0/0".parse().expect("literal")
            } else {
                "::/0".parse().expect("literal")
            };
            if !routes.iter().any(|r| r.dst == any) {
                routes.push(RouteSpec {
                    dst: any,
                    via: Some(*gw),
                });
            }
        }
    }
    for r in n.routes.iter().flatten() {
        routes.push(RouteSpec {
            dst: r.destination,
            via: r.gateway,
        });
    }
    let addressing = if addrs.is_empty() {
        Addressing::None
    } else {
        Addressing::List {
            addresses: addrs.iter().map(|(a, _)| *a).collect(),
            routes,
        }
    };
    let req = AttachRequest {
        host_if: HostIfSpec::parse(bridge).map_err(|e| e.to_string())?,
        guest: GuestSpec::Path(netns.to_path_buf()),
        guest_ifname: Some(o.interface_name.clone()),
        host_ifname: Some(host_ifname(&x.container_id, &o.interface_name)),
        family: None,
        addressing,
        mac,
        tag: None,
        mtu: opts.mtu,
        direct_phys: false,
        ovs_datapath: None,
        macvlan_mode: Default::default(),
        dhcp_timeout: Duration::from_secs(10),
        dns_resolv: false,
        kind: Some(Kind::Bridge),
        bridge: Box::new(BridgeOptions {
            gateways,
            hairpin: opts.hairpin,
            isolated: opts.isolate,
            ..BridgeOptions::default()
        }),
        guest_link_down: false,
        dad: false,
        owner: Some(Owner {
            container_id: x.container_id.clone(),
            network: n.name.clone(),
        }),
    };
    req.validate().map_err(|e| e.to_string())?;
    Ok(req)
}

/// The status block of a setup: the container interface, its MAC and its addresses.
pub fn status_of(x: &PluginExec, mac: Option<MacAddr>) -> Result<StatusBlock, String> {
    let addrs = proto::addresses_of(
        &x.network,
        x.network_options.static_ips.as_deref().unwrap_or_default(),
    )?;
    let iface = NetInterface {
        mac_address: mac.map(|m| m.to_string()).unwrap_or_default(),
        subnets: addrs
            .into_iter()
            .map(|(ipnet, gateway)| NetAddress { ipnet, gateway })
            .collect(),
    };
    Ok(StatusBlock {
        dns_search_domains: Vec::new(),
        dns_server_ips: Vec::<IpAddr>::new(),
        interfaces: [(x.network_options.interface_name.clone(), iface)].into(),
    })
}

fn session() -> Result<Session, String> {
    Session::open(SessionOptions::default()).map_err(|e| e.to_string())
}

fn setup(netns: &Path, x: &PluginExec) -> Result<StatusBlock, String> {
    if !netns.exists() {
        return Err(format!(
            "setup: the network namespace {} does not exist",
            netns.display()
        ));
    }
    let req = request(netns, x)?;
    let mut s = session()?;
    let rep = s.attach(&req, false).map_err(|e| e.to_string())?;
    status_of(x, rep.mac)
}

/// This network's records of the container's interface.
fn records_of(x: &PluginExec) -> Vec<Record> {
    let owner = crate::request::Owner {
        container_id: x.container_id.clone(),
        network: x.network.name.clone(),
    };
    records::find_by_owner(&owner, &x.network_options.interface_name)
}

/// Removes the attachment from its record; nothing to remove is a success.
fn teardown(x: &PluginExec) -> Result<(), String> {
    let found = records_of(x);
    if found.is_empty() {
        return Ok(());
    }
    let mut s = session()?;
    s.remove(&found).map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(net_extra: &str, opts_extra: &str) -> PluginExec {
        let j = format!(
            r#"{{"container_id":"c0ffee","container_name":"t",
            "network":{{"name":"nv","id":"abc","driver":"pipework-netavark","network_interface":"br-nv",
              "subnets":[{{"subnet":"10.88.0.0/16","gateway":"10.88.0.1"}},{{"subnet":"fd00:88::/64","gateway":"fd00:88::1"}}]{net_extra}}},
            "network_options":{{"interface_name":"eth0","static_ips":["10.88.0.50","fd00:88::50"]{opts_extra}}}}}"#
        );
        proto::decode(j.as_bytes(), "x").unwrap()
    }

    #[test]
    fn argv0_detection() {
        assert!(invoked_as_plugin(Some(OsStr::new(
            "/usr/libexec/netavark/pipework-netavark"
        ))));
        assert!(invoked_as_plugin(Some(OsStr::new("pipework-netavark"))));
        assert!(!invoked_as_plugin(Some(OsStr::new("/usr/bin/pipework"))));
        assert!(!invoked_as_plugin(Some(OsStr::new(
            "pipework-netavark.old"
        ))));
        assert!(!invoked_as_plugin(None));
    }

    #[test]
    fn request_of_a_setup() {
        let x = exec("", r#","static_mac":"aa:bb:cc:dd:aa:00""#);
        let r = request(Path::new("/run/netns/x"), &x).unwrap();
        assert_eq!(r.kind, Some(Kind::Bridge));
        assert_eq!(r.host_if, HostIfSpec::Name("br-nv".into()));
        assert_eq!(r.guest_ifname.as_deref(), Some("eth0"));
        assert_eq!(r.host_ifname, Some(host_ifname("c0ffee", "eth0")));
        assert_eq!(r.mac, Some("aa:bb:cc:dd:aa:00".parse().unwrap()));
        assert_eq!(
            r.bridge.gateways,
            vec![
                "10.88.0.1/16".parse::<IpNet>().unwrap(),
                "fd00:88::1/64".parse().unwrap()
            ]
        );
        match &r.addressing {
            Addressing::List { addresses, routes } => {
                assert_eq!(
                    addresses,
                    &vec![
                        "10.88.0.50/16".parse::<IpNet>().unwrap(),
                        "fd00:88::50/64".parse().unwrap()
                    ]
                );
                assert_eq!(routes.len(), 2);
                assert_eq!(routes[0].via, Some("10.88.0.1".parse().unwrap()));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.owner.as_ref().unwrap().network, "nv");
    }

    #[test]
    fn request_internal_has_no_gateway_and_routes_of_the_network() {
        let x = exec(
            r#","internal":true,"routes":[{"destination":"10.9.0.0/16","gateway":"10.88.0.9"}]"#,
            "",
        );
        let r = request(Path::new("/run/netns/x"), &x).unwrap();
        assert!(r.bridge.gateways.is_empty());
        match &r.addressing {
            Addressing::List { routes, .. } => {
                assert_eq!(routes.len(), 1);
                assert_eq!(routes[0].dst, "10.9.0.0/16".parse::<IpNet>().unwrap());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn request_stable_mac_and_options() {
        let x = exec(
            r#","options":{"stable_mac":"true","mtu":"1400","hairpin":"true"}"#,
            "",
        );
        let r = request(Path::new("/p"), &x).unwrap();
        assert_eq!(r.mac, Some(stable_mac("c0ffee", "eth0")));
        assert_eq!(r.mtu, Some(1400));
        assert!(r.bridge.hairpin);
    }

    #[test]
    fn request_errors() {
        let x = exec("", r#","static_mac":"zz""#);
        assert!(request(Path::new("/p"), &x)
            .unwrap_err()
            .contains("static_mac \"zz\""));
        let mut x = exec("", "");
        x.network_options.interface_name = "a/b".into();
        assert!(request(Path::new("/p"), &x)
            .unwrap_err()
            .contains("interface_name"));
        let mut x = exec("", "");
        x.network.network_interface = None;
        assert!(request(Path::new("/p"), &x)
            .unwrap_err()
            .contains("no network_interface"));
        let mut x = exec("", "");
        x.network_options.static_ips = Some(vec!["192.0.2.1".parse().unwrap()]);
        assert!(request(Path::new("/p"), &x)
            .unwrap_err()
            .contains("static IP 192.0.2.1"));
    }

    #[test]
    fn status_block_of_a_setup() {
        let x = exec("", "");
        let s = status_of(&x, Some("aa:bb:cc:dd:aa:00".parse().unwrap())).unwrap();
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["interfaces"]["eth0"]["mac_address"], "aa:bb:cc:dd:aa:00");
        assert_eq!(
            v["interfaces"]["eth0"]["subnets"][0]["ipnet"],
            "10.88.0.50/16"
        );
        assert_eq!(
            v["interfaces"]["eth0"]["subnets"][0]["gateway"],
            "10.88.0.1"
        );
        assert_eq!(
            v["interfaces"]["eth0"]["subnets"][1]["ipnet"],
            "fd00:88::50/64"
        );
    }

    fn run_str(args: &[&str], stdin: &str) -> Outcome {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        main(&args, &mut stdin.as_bytes())
    }

    #[test]
    fn main_info_create_and_errors() {
        let o = run_str(&["info"], "");
        assert_eq!(o.code, 0);
        let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
        assert_eq!(v["api_version"], "1.0.0");
        assert_eq!(run_str(&[], "").code, 0);

        let o = run_str(
            &["create"],
            r#"{"name":"n","id":"i","driver":"d","subnets":[{"subnet":"10.1.0.0/24"}]}"#,
        );
        assert_eq!(o.code, 0, "{}", o.stdout);
        let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
        assert_eq!(v["subnets"][0]["gateway"], "10.1.0.1");

        for (args, input, needle) in [
            (
                &["create"][..],
                "{",
                "cannot decode the network configuration",
            ),
            (&["frob"][..], "", "unknown subcommand \"frob\""),
            (&["setup"][..], "{}", "namespace path argument is missing"),
            (
                &["teardown"][..],
                "{}",
                "namespace path argument is missing",
            ),
            (&["setup", "/nonexistent/ns"][..], "", "no setup input"),
        ] {
            let o = run_str(args, input);
            assert_eq!(o.code, 1, "{args:?}");
            let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
            let e = v["error"].as_str().unwrap();
            assert!(e.contains(needle), "{args:?}: {e}");
        }
    }

    #[test]
    fn main_rejects_oversized_input() {
        let big = " ".repeat(proto::MAX_STDIN + 10);
        let o = run_str(&["create"], &big);
        assert_eq!(o.code, 1);
        assert!(o.stdout.contains("too big"));
    }
}
