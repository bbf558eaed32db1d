//! Open vSwitch driver: a veth pair whose host end becomes a port of an OVS bridge.
//!
//! Changes go through `ovs-vsctl`, run by argv. Speaking OVSDB (JSON-RPC) directly would
//! save a process per call, but ovs-vsctl gives us for free what a correct client must do:
//! transactions with the right preconditions, and waiting until ovs-vswitchd has applied the
//! change (so the port is live when we continue). It also finds the database exactly as the
//! user's own OVS tools do (OVS_RUNDIR, OVS_DB, …), because it is one of them.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{json, Value};

use crate::driver_api::veth::{apply_veth, check_host_end, host_end_matches, plan_veth};
use crate::driver_api::{
    check_guest_link, guest_ifname, new_plan, teardown_then, Driver, Found, HostIf, PlanCtx,
    Undone, DEFAULT_GUEST_IFNAME,
};
use crate::env::{Env, Sys};
use crate::error::Error;
use crate::guest::Engine;
use crate::ns::NetNs;
use crate::plan::{Kind, Op, Plan, Step, UndoEntry};
use crate::request::{vlan_id, AttachRequest};
use crate::store::{self, Record};

pub struct Ovs;

impl Driver for Ovs {
    fn kind(&self) -> Kind {
        Kind::Ovs
    }

    fn guest_link(&self) -> Option<crate::plan::LinkKind> {
        Some(crate::plan::LinkKind::Veth)
    }

    fn claims(&self, host_if: &HostIf, _req: &AttachRequest) -> bool {
        matches!(host_if.found, Found::Ovs(_))
            || (host_if.found == Found::Missing && host_if.name.starts_with("ovs"))
    }

    fn plan(&self, ctx: &mut PlanCtx<'_>, host_if: &HostIf) -> Result<Plan, Error> {
        let dp = match &host_if.found {
            Found::Ovs(dp) => dp.clone(),
            _ => None,
        };
        plan(ctx, host_if, dp)
    }

    fn apply(&self, op: &Op, env: &mut Env<'_>) -> Result<bool, Error> {
        match op {
            Op::OvsAddBridge { name, datapath } => {
                // Journalled first: ovs-vsctl may write the bridge to the database and then
                // time out waiting for ovs-vswitchd; the (idempotent) removal must run then
                // too. The marker tells later detaches that pipework made this bridge.
                env.journal
                    .will(UndoEntry::OvsDelBridge { name: name.clone() })?;
                store::write_atomic(&store::ovs_marker(env.home.inode, name), b"")?;
                let args = add_bridge_args(name, datapath.as_deref());
                if let Err(e) =
                    vsctl_change(&args, &format!("cannot create Open vSwitch bridge {name}"))
                {
                    // Another attach made it meanwhile (its marker is the same file): never
                    // ours to remove on rollback.
                    if e.to_string().contains("already exists") {
                        env.journal.cancel_last()?;
                    }
                    return Err(e);
                }
            }
            Op::OvsAddPort {
                bridge,
                port,
                tag,
                external_ids,
            } => {
                env.journal.will(UndoEntry::OvsDelPort {
                    bridge: bridge.clone(),
                    port: port.clone(),
                })?;
                let args = add_port_args(bridge, port, *tag, external_ids);
                vsctl_change(
                    &args,
                    &format!("cannot add {port} to Open vSwitch bridge {bridge}"),
                )?;
            }
            Op::TxChecksumOff { ifname } => tx_checksum_off(env.guest_ns, env.home, ifname)?,
            _ => return apply_veth(op, env),
        }
        Ok(true)
    }

    fn undo(&self, entry: &UndoEntry, sys: &mut Sys<'_>) -> Option<Undone> {
        Some(match entry {
            UndoEntry::OvsDelPort { bridge, port } => (|| {
                if !has_port(bridge, port) {
                    return Ok(None);
                }
                if !sys.dry_run() {
                    vsctl_change(
                        &["--no-wait", "--if-exists", "del-port", bridge, port],
                        "undo",
                    )?;
                }
                Ok(Some(format!(
                    "remove port {port} from Open vSwitch bridge {bridge}"
                )))
            })(),
            UndoEntry::OvsDelBridge { name } => (|| {
                let marker = store::ovs_marker(sys.home.inode, name);
                // A rollback (no record yet) undoes its own add-br: the journal entry is the
                // proof. A detach removes only a bridge some attach marked as pipework's.
                if sys.record.is_some() && !marker.exists() {
                    return Ok(None);
                }
                // Only once no port is left (the ones this batch removes count as gone). When
                // OVS cannot list them, the (idempotent) removal is tried all the same.
                if ports(name).is_some_and(|p| !p.iter().all(|x| sys.going(x))) {
                    return Ok(None);
                }
                if !sys.dry_run() {
                    vsctl_change(&["--no-wait", "--if-exists", "del-br", name], "undo")?;
                    let _ = std::fs::remove_file(&marker);
                }
                Ok(Some(format!(
                    "delete Open vSwitch bridge {name} (created by pipework, now unused)"
                )))
            })(),
            _ => return None,
        })
    }

    /// Any attachment on a bridge pipework created removes it when it is the last port.
    fn teardown(&self, rec: &Record) -> Vec<UndoEntry> {
        teardown_then(
            rec,
            UndoEntry::OvsDelBridge {
                name: rec.header.host_interface.clone(),
            },
        )
    }

    fn alive(&self, rec: &Record, sys: &mut Sys<'_>) -> bool {
        host_end_matches(rec, sys)
    }

    fn check(&self, rec: &Record, sys: &mut Sys<'_>) -> Result<Vec<String>, Error> {
        let mut d = check_host_end(rec, sys)?;
        if let Some(port) = &rec.header.host_ifname {
            if !has_port(&rec.header.host_interface, port) {
                d.push(format!(
                    "{port} is no longer a port of Open vSwitch bridge {}",
                    rec.header.host_interface
                ));
            }
        }
        d.extend(check_guest_link(rec, sys)?);
        Ok(d)
    }
}

/// The ports of an OVS bridge; `None` when it does not exist (or OVS does not answer).
pub fn ports(bridge: &str) -> Option<Vec<String>> {
    let out = vsctl(&["list-ports", bridge]).ok()??;
    out.status.success().then(|| parse_ports(&out.stdout))
}

/// `ovs-vsctl list-ports` output: one port name a line.
pub fn parse_ports(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn has_port(bridge: &str, port: &str) -> bool {
    ports(bridge).is_some_and(|p| p.iter().any(|x| x == port))
}

const VSCTL: &str = "ovs-vsctl";
/// OVS's run directory when OVS_RUNDIR is not set (Debian's build).
const DEFAULT_RUNDIR: &str = "/var/run/openvswitch";
/// ovs-vsctl waits for ovs-vswitchd to apply each change; never forever (it normally takes
/// 10–20 ms).
const VSCTL_TIMEOUT_S: u32 = 5;

/// What OVS says about a bridge name.
#[derive(Debug, PartialEq, Eq)]
pub enum OvsBridge {
    /// An OVS bridge, with its datapath type ("netdev", "system", or "" for the default).
    Exists(String),
    Absent,
    NotRunning(String),
    NotInstalled,
}

/// Runs `ovs-vsctl ARGS…`; `Ok(None)` when OVS's tools are not installed.
pub fn vsctl<S: AsRef<str>>(args: &[S]) -> Result<Option<Output>, Error> {
    match Command::new(VSCTL)
        .arg(format!("--timeout={VSCTL_TIMEOUT_S}"))
        .args(args.iter().map(AsRef::as_ref))
        .output()
    {
        Ok(o) => Ok(Some(o)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("cannot run {VSCTL}"), e)),
    }
}

/// Runs a change through ovs-vsctl; its own message on failure.
pub fn vsctl_change<S: AsRef<str>>(args: &[S], what: &str) -> Result<(), Error> {
    let out = vsctl(args)?.ok_or_else(not_installed)?;
    let shown: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    if out.status.success() {
        crate::testhook::change_done();
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("Alarm clock") {
        return Err(Error::Timeout(format!(
            "{what}: Open vSwitch did not apply the change within {VSCTL_TIMEOUT_S} s (ovs-vsctl \
             {}): is ovs-vswitchd running?",
            shown.join(" ")
        )));
    }
    Err(Error::HostInterface(format!(
        "{what}: ovs-vsctl {}: {}",
        shown.join(" "),
        err.trim()
    )))
}

pub fn not_installed() -> Error {
    Error::HostInterface(
        "Need OVS installed on the system to create an ovs bridge: ovs-vsctl was not found \
         (install openvswitch-switch)"
            .into(),
    )
}

pub fn not_running(why: &str) -> Error {
    Error::Engine(format!(
        "Open vSwitch is not running: its database cannot be reached ({why}); start \
         ovsdb-server and ovs-vswitchd, or point OVS_RUNDIR at their run directory"
    ))
}

/// Where OVS's database listens: `$OVS_RUNDIR/db.sock`, as OVS's own tools find it.
pub fn db_socket() -> PathBuf {
    let rundir = std::env::var_os("OVS_RUNDIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_RUNDIR));
    rundir.join("db.sock")
}

fn vsctl_installed() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(VSCTL).is_file()))
}

/// Asks OVS whether `name` is one of its bridges, and its datapath type. A read-only OVSDB
/// `select` straight on the database socket (JSON-RPC, ~0.3 ms) rather than a 5 ms ovs-vsctl
/// process: this question is asked on the attach path, also of tap devices that are not OVS.
pub fn bridge_datapath(name: &str) -> Result<OvsBridge, Error> {
    let sock = db_socket();
    let mut stream = match UnixStream::connect(&sock) {
        Ok(s) => s,
        Err(_) if !vsctl_installed() => return Ok(OvsBridge::NotInstalled),
        Err(e) => return Ok(OvsBridge::NotRunning(format!("{}: {e}", sock.display()))),
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let req = select_datapath_request(name);
    let io = |e| Error::io(format!("Open vSwitch database at {}", sock.display()), e);
    stream.write_all(req.to_string().as_bytes()).map_err(io)?;
    // The server keeps the connection open: read exactly one JSON value.
    let answer = serde_json::Deserializer::from_reader(&mut stream)
        .into_iter::<Value>()
        .next();
    parse_select_reply(answer)
}

/// The OVSDB server's reply to [`select_datapath_request`] as bytes (the first JSON value in
/// them; the server may send more): pure, so it can be fuzzed.
pub fn parse_select_bytes(bytes: &[u8]) -> Result<OvsBridge, Error> {
    parse_select_reply(
        serde_json::Deserializer::from_slice(bytes)
            .into_iter::<Value>()
            .next(),
    )
}

fn parse_select_reply(answer: Option<serde_json::Result<Value>>) -> Result<OvsBridge, Error> {
    let answer = answer
        .ok_or_else(|| not_running("the database closed the connection"))?
        .map_err(|e| not_running(&format!("unreadable answer: {e}")))?;
    parse_select_answer(&answer)
}

fn select_datapath_request(name: &str) -> Value {
    json!({
        "id": 0,
        "method": "transact",
        "params": ["Open_vSwitch", {
            "op": "select",
            "table": "Bridge",
            "where": [["name", "==", name]],
            "columns": ["datapath_type"],
        }],
    })
}

fn parse_select_answer(answer: &Value) -> Result<OvsBridge, Error> {
    if let Some(err) = answer.get("error").filter(|e| !e.is_null()) {
        return Ok(OvsBridge::NotRunning(format!("database error: {err}")));
    }
    let rows = answer
        .pointer("/result/0/rows")
        .and_then(Value::as_array)
        .ok_or_else(|| not_running(&format!("unexpected answer: {answer}")))?;
    Ok(match rows.first() {
        None => OvsBridge::Absent,
        Some(row) => OvsBridge::Exists(
            row.get("datapath_type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        ),
    })
}

/// The original's external-ids on the port's Interface row, so OVS tooling can tell which
/// container a port belongs to.
pub fn external_ids(
    ctx: &PlanCtx<'_>,
    bridge: &str,
    port: &str,
    tag: Option<u16>,
) -> Vec<(String, String)> {
    let g = ctx.guest;
    let mut ids = vec![
        ("pipework.interface".to_string(), port.to_string()),
        ("pipework.bridge".to_string(), bridge.to_string()),
    ];
    if g.engine == Engine::Docker {
        if let Some(id) = &g.id {
            ids.push(("pipework.containerid".into(), id.clone()));
        }
        if let Some(n) = &g.name {
            ids.push(("pipework.containername".into(), n.clone()));
        }
    }
    if let Some(pid) = g.pid {
        ids.push(("pipework.nspid".into(), pid.to_string()));
    }
    ids.push(("pipework.netns".into(), g.netns.inode.to_string()));
    if let Some(t) = tag {
        ids.push(("pipework.vlan".into(), t.to_string()));
    }
    ids
}

/// `ovs-vsctl add-port BR PORT [tag=N] -- set Interface PORT external-ids:k="v" …`
pub fn add_port_args(
    bridge: &str,
    port: &str,
    tag: Option<u16>,
    ids: &[(String, String)],
) -> Vec<String> {
    let mut a = vec!["add-port".to_string(), bridge.to_string(), port.to_string()];
    if let Some(t) = tag {
        a.push(format!("tag={t}"));
    }
    a.extend([
        "--".into(),
        "set".into(),
        "Interface".into(),
        port.to_string(),
    ]);
    for (k, v) in ids {
        // Quoted: OVSDB map values are strings, and names may hold characters like '-'.
        a.push(format!("external-ids:{k}=\"{v}\""));
    }
    a
}

pub fn add_bridge_args(name: &str, datapath: Option<&str>) -> Vec<String> {
    let mut a = vec!["add-br".to_string(), name.to_string()];
    if let Some(dp) = datapath {
        a.extend([
            "--".into(),
            "set".into(),
            "bridge".into(),
            name.to_string(),
            format!("datapath_type={dp}"),
        ]);
    }
    a
}

pub fn plan(
    ctx: &mut PlanCtx<'_>,
    host_if: &HostIf,
    datapath: Option<String>,
) -> Result<Plan, Error> {
    let tag = ctx.req.tag.as_deref().map(vlan_id).transpose()?;
    let guest = guest_ifname(ctx, DEFAULT_GUEST_IFNAME)?;
    let mut plan = new_plan(Kind::Ovs, &host_if.name, guest, ctx);
    plan.vlan = tag;
    let effective_dp = match datapath {
        Some(dp) => dp,
        None => match bridge_datapath(&host_if.name)? {
            OvsBridge::Exists(dp) => dp,
            OvsBridge::Absent => {
                plan.host_interface_created = true;
                plan.steps.push(Step::new(
                    "ovs-add-bridge",
                    Op::OvsAddBridge {
                        name: host_if.name.clone(),
                        datapath: ctx.req.ovs_datapath.clone(),
                    },
                ));
                ctx.req.ovs_datapath.clone().unwrap_or_default()
            }
            OvsBridge::NotRunning(why) => return Err(not_running(&why)),
            OvsBridge::NotInstalled => return Err(not_installed()),
        },
    };
    let port = plan_veth(ctx, host_if, &mut plan, None)?;
    plan.steps.push(Step::new(
        "ovs-add-port",
        Op::OvsAddPort {
            bridge: host_if.name.clone(),
            port: port.clone(),
            tag,
            external_ids: external_ids(ctx, &host_if.name, &port, tag),
        },
    ));
    if effective_dp == "netdev" {
        plan.steps.push(Step::new(
            "guest-tx-checksum-off",
            Op::TxChecksumOff {
                ifname: plan.guest_ifname.clone(),
            },
        ));
    }
    Ok(plan)
}

/// `ethtool -K IF tx off`, by the SIOCETHTOOL ioctl on a socket opened inside the guest.
pub fn tx_checksum_off(guest: &NetNs, home: &NetNs, ifname: &str) -> Result<(), Error> {
    const SIOCETHTOOL: libc::c_ulong = 0x8946;
    const ETHTOOL_STXCSUM: u32 = 0x17;
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    #[repr(C)]
    struct Ifreq {
        name: [u8; libc::IFNAMSIZ],
        data: *mut EthtoolValue,
        _pad: [u8; 16],
    }
    let sock = guest
        .run_in(home, || std::net::UdpSocket::bind("0.0.0.0:0"))?
        .map_err(|e| Error::io("cannot open a socket in the guest", e))?;
    let mut value = EthtoolValue {
        cmd: ETHTOOL_STXCSUM,
        data: 0,
    };
    let mut req = Ifreq {
        name: [0; libc::IFNAMSIZ],
        data: &mut value,
        _pad: [0; 16],
    };
    let n = ifname.len().min(libc::IFNAMSIZ - 1);
    req.name[..n].copy_from_slice(&ifname.as_bytes()[..n]);
    // SAFETY: a valid ifreq whose data points at a live ethtool_value, for this call only.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL, &mut req) };
    if r < 0 {
        return Err(Error::io(
            format!("cannot turn off tx checksum offload on {ifname}"),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_port_carries_tag_and_external_ids() {
        let ids = vec![
            ("pipework.interface".to_string(), "veth1pl42".to_string()),
            ("pipework.vlan".to_string(), "10".to_string()),
        ];
        let a = add_port_args("ovsbr0", "veth1pl42", Some(10), &ids);
        assert_eq!(
            a,
            [
                "add-port",
                "ovsbr0",
                "veth1pl42",
                "tag=10",
                "--",
                "set",
                "Interface",
                "veth1pl42",
                "external-ids:pipework.interface=\"veth1pl42\"",
                "external-ids:pipework.vlan=\"10\"",
            ]
        );
    }

    #[test]
    fn add_bridge_with_datapath() {
        assert_eq!(add_bridge_args("ovsbr0", None), ["add-br", "ovsbr0"]);
        assert_eq!(
            add_bridge_args("ovsbr0", Some("netdev")),
            [
                "add-br",
                "ovsbr0",
                "--",
                "set",
                "bridge",
                "ovsbr0",
                "datapath_type=netdev"
            ]
        );
    }

    #[test]
    fn select_answers() {
        let req = select_datapath_request("ovsbr0");
        assert_eq!(req["method"], "transact");
        assert_eq!(req["params"][1]["where"][0][2], "ovsbr0");
        let yes = json!({"id":0,"result":[{"rows":[{"datapath_type":"netdev"}]}],"error":null});
        assert_eq!(
            parse_select_answer(&yes).unwrap(),
            OvsBridge::Exists("netdev".into())
        );
        let no = json!({"id":0,"result":[{"rows":[]}],"error":null});
        assert_eq!(parse_select_answer(&no).unwrap(), OvsBridge::Absent);
        let bad = json!({"id":0,"result":null,"error":"unknown database"});
        assert!(matches!(
            parse_select_answer(&bad).unwrap(),
            OvsBridge::NotRunning(_)
        ));
    }

    #[test]
    fn messages_name_open_vswitch() {
        assert!(not_installed().to_string().contains("Need OVS installed"));
        assert!(not_running("no such file")
            .to_string()
            .contains("Open vSwitch is not running"));
    }
}
