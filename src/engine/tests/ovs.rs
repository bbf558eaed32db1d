//! Open vSwitch: plans only (its apply runs the real ovs-vsctl), against no OVS and a fake OVSDB.

use super::*;

#[test]
fn ovs_plan_without_a_running_ovs_is_refused() {
    let mut r = Rig::new();
    // OVS_RUNDIR is an empty directory: nothing listens there.
    assert!(matches!(
        crate::driver::ovs::bridge_datapath("ovs1").unwrap(),
        crate::driver::ovs::OvsBridge::NotRunning(why) if why.contains("db.sock")
    ));
    let e = r.plan(&["ovs1", "web1", "10.0.0.5/24"]).unwrap_err();
    assert!(matches!(e, Error::Engine(_)), "{e}");
    assert!(e.to_string().contains("Open vSwitch is not running"), "{e}");
    // A tap might be an OVS bridge of the userspace datapath: asked, and refused.
    r.world.add_link(r.h(), "tap0", Some(InfoKind::Tun));
    let e = r.plan(&["tap0", "web1", "10.0.0.5/24"]).unwrap_err();
    assert!(e.to_string().contains("tap0 is a tap device"), "{e}");
    assert_eq!(r.requests(), 0);
}

/// A fake ovsdb-server on `$OVS_RUNDIR/db.sock` answering the datapath `select`: bridge
/// "ovs0" exists (default datapath), "ovsnd" exists (netdev), any other name is absent.
/// Nothing else of OVS is asked at plan time.
fn fake_ovsdb() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        isolate();
        let sock = crate::driver::ovs::db_socket();
        std::fs::create_dir_all(sock.parent().unwrap()).expect("the OVS run directory");
        let l = std::os::unix::net::UnixListener::bind(&sock).expect("bind the fake OVSDB");
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                std::thread::spawn(move || serve_ovsdb(s));
            }
        });
    });
}

fn serve_ovsdb(mut s: std::os::unix::net::UnixStream) {
    use std::io::Write;
    let Some(Ok(req)) = serde_json::Deserializer::from_reader(&mut s)
        .into_iter::<serde_json::Value>()
        .next()
    else {
        return;
    };
    assert_eq!(req["method"], "transact");
    assert_eq!(req["params"][1]["op"], "select", "plan only reads");
    let rows = match req.pointer("/params/1/where/0/2").and_then(|v| v.as_str()) {
        Some("ovs0") => serde_json::json!([{ "datapath_type": "" }]),
        Some("ovsnd") => serde_json::json!([{ "datapath_type": "netdev" }]),
        _ => serde_json::json!([]),
    };
    let answer =
        serde_json::json!({ "id": req["id"], "result": [{ "rows": rows }], "error": null });
    let _ = s.write_all(answer.to_string().as_bytes());
}

#[test]
fn ovs_plan_existing_absent_and_netdev_bridges() {
    fake_ovsdb();
    let mut r = Rig::new();
    let veth = r.veth_name("eth1");
    // The kernel datapath's bridge device.
    r.world.seed_link(
        r.h(),
        Seed {
            name: "ovs0".into(),
            kind: Some(InfoKind::Other("openvswitch".into())),
            mtu: Some(1450),
            up: true,
            ..Seed::default()
        },
    );
    let p = r
        .plan(&["ovs0", "web1", "10.0.0.5/24@10.0.0.1", "@42"])
        .unwrap();
    assert_eq!(p.kind, Kind::Ovs);
    assert!(!p.host_interface_created);
    assert_eq!(p.vlan, Some(42));
    assert_eq!(
        names(&p),
        [
            "create-veth",
            "ovs-add-port",
            "guest-arp-notify",
            "guest-link-up",
            "add-address",
            "add-default-route",
            "announce"
        ]
    );
    assert_eq!(
        *op(&p, "create-veth"),
        Op::CreateVeth {
            host: veth.clone(),
            master: None,
            guest: "eth1".into(),
            mtu: 1450,
            mac: None
        }
    );
    let inode = r.guest.netns.inode.to_string();
    assert_eq!(
        *op(&p, "ovs-add-port"),
        Op::OvsAddPort {
            bridge: "ovs0".into(),
            port: veth.clone(),
            tag: Some(42),
            external_ids: vec![
                ("pipework.interface".into(), veth.clone()),
                ("pipework.bridge".into(), "ovs0".into()),
                ("pipework.netns".into(), inode),
                ("pipework.vlan".into(), "42".into()),
            ]
        }
    );

    // A name OVS does not know: pipework creates the bridge, with the datapath asked for.
    let p = r
        .plan(&["ovsnew", "--ovs-datapath", "netdev", "web1", "10.0.0.5/24"])
        .unwrap();
    assert!(p.host_interface_created);
    assert_eq!(
        names(&p)[..4],
        [
            "ovs-add-bridge",
            "create-veth",
            "ovs-add-port",
            "guest-tx-checksum-off"
        ]
    );
    assert_eq!(
        *op(&p, "ovs-add-bridge"),
        Op::OvsAddBridge {
            name: "ovsnew".into(),
            datapath: Some("netdev".into())
        }
    );
    assert!(matches!(
        op(&p, "create-veth"),
        Op::CreateVeth { mtu: 1500, .. }
    ));

    // The userspace datapath's bridge is a tap: asked about, found to be OVS (netdev), so the
    // guest end's tx checksum offload is turned off.
    r.world.add_link(r.h(), "ovsnd", Some(InfoKind::Tun));
    let p = r.plan(&["ovsnd", "web1", "10.0.0.5/24"]).unwrap();
    assert_eq!(p.kind, Kind::Ovs);
    assert_eq!(
        *op(&p, "guest-tx-checksum-off"),
        Op::TxChecksumOff {
            ifname: "eth1".into()
        }
    );
    // A tap OVS does not know is any other link: a macvlan parent.
    r.world.add_link(r.h(), "tap7", Some(InfoKind::Tun));
    let p = r.plan(&["tap7", "web1", "10.0.0.5/24"]).unwrap();
    assert_eq!(p.kind, Kind::Macvlan);
    assert_eq!(r.requests(), 0, "planning changed something");
    clean_scratch();
}

#[test]
fn ovs_teardown_removes_the_port_before_the_veth_and_the_bridge_last() {
    let r = Rig::new();
    let mut rec_plan = Plan {
        kind: Kind::Ovs,
        host_interface: "ovsnew".into(),
        host_interface_created: true,
        host_ifname: Some("vx".into()),
        guest_ifname: "eth1".into(),
        mac: None,
        vlan: None,
        dropped_addresses: Vec::new(),
        announce: true,
        addresses: Vec::new(),
        gateway: None,
        steps: Vec::new(),
        ready: None,
    };
    let undo = vec![
        UndoEntry::OvsDelBridge {
            name: "ovsnew".into(),
        },
        UndoEntry::DeleteLink {
            side: Side::Host,
            name: "vx".into(),
            kind: LinkKind::Veth,
        },
        UndoEntry::OvsDelPort {
            bridge: "ovsnew".into(),
            port: "vx".into(),
        },
    ];
    let rec = r.record(&rec_plan, &Applied::default(), undo.clone());
    assert_eq!(
        driver(Kind::Ovs).teardown(&rec),
        [undo[2].clone(), undo[1].clone(), undo[0].clone()]
    );
    // On a bridge it did not create, the bridge's removal (if unused) still comes last.
    rec_plan.host_interface = "ovs0".into();
    let rec = r.record(&rec_plan, &Applied::default(), undo[1..].to_vec());
    assert_eq!(
        driver(Kind::Ovs).teardown(&rec),
        [
            undo[2].clone(),
            undo[1].clone(),
            UndoEntry::OvsDelBridge {
                name: "ovs0".into()
            }
        ]
    );
}
