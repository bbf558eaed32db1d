//! Undoing attachments: `pipework detach` (one guest, one interface, or all) and `pipework gc`
//! (what belongs to guests that no longer exist). Both work from the attachment records,
//! checked against the live kernel state, and are idempotent: what is already gone is fine.

use std::path::PathBuf;

use netlink_packet_route::RouteNetlinkMessage;

use crate::addressing::dhcp::supervisor;
use crate::driver::{get_link, ovs};
use crate::error::Error;
use crate::netlink::{msg, Netlink};
use crate::ns::NetNs;
use crate::state::{self, Record};

/// What to detach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    All,
    Guest {
        spec: String,
        ifname: Option<String>,
    },
    /// The attachments of a container's earlier lives (its namespace is gone), whatever it is
    /// doing now: what `watch` undoes when a container dies, even if it is already running
    /// again by the time the event is handled.
    DeadContainer {
        id: String,
    },
}

/// Detaches; returns one line per thing undone.
pub fn detach(target: &Target, dry_run: bool) -> Result<Vec<String>, Error> {
    let records = state::read_all();
    let chosen: Vec<(PathBuf, Record)> = match target {
        Target::All => records,
        Target::DeadContainer { id } => records
            .into_iter()
            .filter(|(_, r)| {
                r.attachment.guest.id.as_deref() == Some(id.as_str()) && !state::guest_alive(r)
            })
            .collect(),
        Target::Guest { spec, ifname } => {
            let inode = resolve_inode(spec);
            records
                .into_iter()
                .filter(|(_, r)| {
                    let a = &r.attachment;
                    let who =
                        inode == Some(a.netns.inode) || (inode.is_none() && names_guest(r, spec));
                    who && ifname.as_ref().is_none_or(|i| *i == a.guest_ifname)
                })
                .collect()
        }
    };
    let _lock = state::lock(true)?;
    let mut host =
        Netlink::open().map_err(|e| Error::netlink("cannot open a netlink socket", e))?;
    let mut out = Vec::new();
    let mut gone = Gone::default();
    for (path, r) in &chosen {
        out.extend(teardown(&mut host, path, r, dry_run, &mut gone)?);
    }
    Ok(out)
}

/// Removes what belongs to guests that are gone.
pub fn gc(dry_run: bool) -> Result<Vec<String>, Error> {
    let _lock = state::lock(true)?;
    let mut host =
        Netlink::open().map_err(|e| Error::netlink("cannot open a netlink socket", e))?;
    let mut out = Vec::new();
    let mut gone = Gone::default();
    for (path, r) in state::read_all() {
        if !attachment_alive(&mut host, &r) {
            out.extend(teardown(&mut host, &path, &r, dry_run, &mut gone)?);
        }
    }
    Ok(out)
}

/// The guest's namespace inode, if the spec still resolves to a live guest.
fn resolve_inode(spec: &str) -> Option<u64> {
    let gs = crate::guest::GuestSpec::parse(spec).ok()?;
    let home = NetNs::current().ok()?;
    crate::guest::resolve(spec, &gs, &home)
        .ok()
        .map(|g| g.netns.inode)
}

/// Whether a record names this guest (for guests that are gone): as given, by name or by ID.
fn names_guest(r: &Record, spec: &str) -> bool {
    let g = &r.attachment.guest;
    let bare = spec
        .split_once(':')
        .filter(|(p, _)| {
            matches!(
                *p,
                "docker" | "podman" | "lxc" | "containerd" | "netns" | "pid"
            )
        })
        .map(|(_, s)| s)
        .unwrap_or(spec);
    g.spec == spec
        || g.name.as_deref() == Some(bare)
        || g.id
            .as_deref()
            .is_some_and(|id| bare.len() >= 4 && id.starts_with(bare))
        || g.pid.map(|p| p.to_string()).as_deref() == Some(bare)
}

fn guest_ns(r: &Record) -> Option<NetNs> {
    let a = &r.attachment;
    let path = match a.guest.pid {
        Some(pid) => PathBuf::from(format!("/proc/{pid}/ns/net")),
        None => PathBuf::from(&a.netns.path),
    };
    NetNs::open(&path).ok().filter(|n| n.inode == a.netns.inode)
}

/// What this run has undone so far (a dry run removes nothing, so it must remember).
#[derive(Default)]
struct Gone {
    records: std::collections::HashSet<PathBuf>,
    host_ends: std::collections::HashSet<String>,
}

/// Undoes one attachment, as far as it still exists. Returns what was (or would be) done.
fn teardown(
    host: &mut Netlink,
    path: &PathBuf,
    r: &Record,
    dry_run: bool,
    gone: &mut Gone,
) -> Result<Vec<String>, Error> {
    let a = &r.attachment;
    gone.records.insert(path.clone());
    if let Some(h) = &a.host_ifname {
        gone.host_ends.insert(h.clone());
    }
    let who = format!("{} of {}", a.guest_ifname, a.guest.spec);
    let mut done = Vec::new();
    let mut act = |what: String, f: &mut dyn FnMut() -> Result<(), Error>| -> Result<(), Error> {
        if !dry_run {
            f()?;
        }
        done.push(what);
        Ok(())
    };

    // The DHCP client first: it releases the lease while the interface still exists.
    if let Some(pid) = a
        .dhcp
        .as_ref()
        .and_then(|d| d.pointer("/supervisor/pid"))
        .and_then(|p| p.as_u64())
        .map(|p| p as u32)
        .filter(|p| crate::process::alive(*p))
    {
        act(format!("stop DHCP client {pid} of {who}"), &mut || {
            crate::process::stop(pid);
            Ok(())
        })?;
    }

    let home = NetNs::current()?;
    match a.kind.as_str() {
        "bridge" | "ovs" => {
            if a.kind == "ovs" {
                if let Some(port) = &a.host_ifname {
                    if ovs_has_port(&a.host_interface, port) {
                        act(
                            format!(
                                "remove port {port} from Open vSwitch bridge {}",
                                a.host_interface
                            ),
                            &mut || {
                                ovs::vsctl_change(
                                    &["--if-exists", "del-port", &a.host_interface, port],
                                    "detach",
                                )
                            },
                        )?;
                    }
                }
            }
            if let Some(h) = &a.host_ifname {
                if let Some(l) = get_link(host, h)? {
                    let index = l.header.index;
                    act(format!("delete {h} (host end of {who})"), &mut || {
                        delete_link(host, index, h)
                    })?;
                }
            }
        }
        "macvlan" | "ipoib" | "dummy" => {
            if let Some(ns) = guest_ns(r) {
                let mut gnl = ns
                    .run_in(&home, Netlink::open)?
                    .map_err(|e| Error::netlink("cannot open a netlink socket in the guest", e))?;
                if let Some(l) = get_link(&mut gnl, &a.guest_ifname)? {
                    let index = l.header.index;
                    act(format!("delete {who}"), &mut || {
                        delete_link(&mut gnl, index, &a.guest_ifname)
                    })?;
                }
            }
        }
        "phys" => {
            if let (Some(ns), Some(nic)) = (guest_ns(r), &r.undo.moved_nic) {
                let mut gnl = ns
                    .run_in(&home, Netlink::open)?
                    .map_err(|e| Error::netlink("cannot open a netlink socket in the guest", e))?;
                if let Some(l) = get_link(&mut gnl, &a.guest_ifname)? {
                    let index = l.header.index;
                    act(
                        format!("move {who} back to the host as {}", nic.name),
                        &mut || {
                            crate::driver::phys::return_to_host(
                                host, &mut gnl, &ns, &home, index, nic,
                            )
                        },
                    )?;
                }
            }
        }
        _ => {}
    }

    let vlan_parent = (a.kind == "macvlan" || a.kind == "phys")
        .then(|| a.vlan.map(|v| format!("{}.{v}", a.host_interface)))
        .flatten();
    if let Some(v) = vlan_parent.filter(|v| state::was_created(host, "vlan", v)) {
        let v = &v;
        if !used_by_others(gone, |o| {
            o.attachment
                .vlan
                .map(|x| format!("{}.{x}", o.attachment.host_interface))
                .as_deref()
                == Some(v.as_str())
        }) {
            if let Some(l) = get_link(host, v)? {
                let index = l.header.index;
                act(
                    format!("delete VLAN interface {v} (created by pipework, now unused)"),
                    &mut || {
                        state::unmark_created("vlan", v);
                        delete_link(host, index, v)
                    },
                )?;
            }
        }
    }
    if state::was_created(host, &a.kind, &a.host_interface)
        && !used_by_others(gone, |o| o.attachment.host_interface == a.host_interface)
    {
        let b = &a.host_interface;
        // In a dry run the ports of what was undone are still there: they would be gone.
        let ours = if dry_run {
            &gone.host_ends
        } else {
            &Default::default()
        };
        if a.kind == "bridge" {
            if let Some(l) = get_link(host, b)? {
                let index = l.header.index;
                if bridge_ports(host, index, ours)? == 0 {
                    act(
                        format!("delete bridge {b} (created by pipework, now unused)"),
                        &mut || {
                            state::unmark_created("bridge", b);
                            delete_link(host, index, b)
                        },
                    )?;
                }
            }
        } else if a.kind == "ovs"
            && ovs_ports(b).is_some_and(|p| p.iter().all(|x| ours.contains(x)))
        {
            act(
                format!("delete Open vSwitch bridge {b} (created by pipework, now unused)"),
                &mut || {
                    state::unmark_created("ovs", b);
                    ovs::vsctl_change(&["--if-exists", "del-br", b], "detach")
                },
            )?;
        }
    }
    if !dry_run {
        let _ = std::fs::remove_file(path);
    }
    done.push(format!("forget the record of {who}"));
    Ok(done)
}

fn used_by_others(gone: &Gone, pred: impl Fn(&Record) -> bool) -> bool {
    state::read_all()
        .iter()
        .any(|(p, r)| !gone.records.contains(p) && pred(r) && state::guest_alive(r))
}

/// An attachment is alive when its guest is, and its interface is still there: the host end
/// for veth kinds, the guest's interface otherwise (a namespace recreated under the same name
/// can even get the same inode number).
pub fn attachment_alive(host: &mut Netlink, r: &Record) -> bool {
    if !state::guest_alive(r) {
        return false;
    }
    let a = &r.attachment;
    match (a.kind.as_str(), &a.host_ifname) {
        ("bridge" | "ovs", Some(h)) => get_link(host, h).ok().flatten().is_some(),
        _ => match (guest_ns(r), NetNs::current()) {
            (Some(ns), Ok(home)) => ns
                .run_in(&home, Netlink::open)
                .ok()
                .and_then(Result::ok)
                .and_then(|mut g| get_link(&mut g, &a.guest_ifname).ok().flatten())
                .is_some(),
            // Not allowed to look inside (not root): trust the guest's liveness.
            _ => true,
        },
    }
}

fn delete_link(nl: &mut Netlink, index: u32, name: &str) -> Result<(), Error> {
    match nl.request(msg::del_link(index), 0) {
        Ok(()) => Ok(()),
        Err(e) if e.errno == libc::ENODEV => Ok(()),
        Err(e) => Err(Error::netlink(format!("cannot delete {name}"), e)),
    }
}

/// Ports of a bridge, not counting `except` (by name).
fn bridge_ports(
    nl: &mut Netlink,
    bridge: u32,
    except: &std::collections::HashSet<String>,
) -> Result<usize, Error> {
    use netlink_packet_route::link::LinkAttribute;
    let links = nl
        .dump(msg::dump_links())
        .map_err(|e| Error::netlink("cannot list links", e))?;
    Ok(links
        .iter()
        .filter(|m| match m {
            RouteNetlinkMessage::NewLink(l) => {
                l.attributes
                    .iter()
                    .any(|a| matches!(a, LinkAttribute::Controller(c) if *c == bridge))
                    && !msg::link_name(l).is_some_and(|n| except.contains(n))
            }
            _ => false,
        })
        .count())
}

fn ovs_ports(bridge: &str) -> Option<Vec<String>> {
    let out = ovs::vsctl(&["list-ports", bridge]).ok()??;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    })
}

fn ovs_has_port(bridge: &str, port: &str) -> bool {
    ovs_ports(bridge).is_some_and(|p| p.iter().any(|x| x == port))
}

/// Lines of `pipework ls`: every recorded attachment, alive or stale.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listed {
    pub state: &'static str,
    pub guest: String,
    pub engine: String,
    pub guest_id: Option<String>,
    pub guest_name: Option<String>,
    pub guest_pid: Option<u32>,
    pub netns_inode: u64,
    pub kind: String,
    pub host_interface: String,
    pub host_ifname: Option<String>,
    pub ifname: String,
    pub address: Option<String>,
    pub addresses: Vec<String>,
    pub mac: Option<String>,
    pub vlan: Option<u16>,
    /// The DHCP client kept running for this attachment (its PID), if any.
    pub pid: Option<u32>,
    pub client: Option<String>,
    pub pidfile: Option<PathBuf>,
}

pub fn list() -> Vec<Listed> {
    let supervisors = crate::list::dhcp_clients();
    let mut host = Netlink::open().ok();
    state::read_all()
        .into_iter()
        .map(|(_, r)| {
            let a = r.attachment.clone();
            let sup = supervisors
                .iter()
                .find(|s| s.netns_inode == a.netns.inode && s.ifname == a.guest_ifname);
            let _ = supervisor::SUBCOMMAND;
            Listed {
                state: {
                    let alive = match host.as_mut() {
                        Some(h) => attachment_alive(h, &r),
                        None => state::guest_alive(&r),
                    };
                    if alive {
                        "alive"
                    } else {
                        "stale"
                    }
                },
                guest: a.guest.spec.clone(),
                engine: a.guest.engine.clone(),
                guest_id: a.guest.id.clone(),
                guest_name: a.guest.name.clone(),
                guest_pid: a.guest.pid,
                netns_inode: a.netns.inode,
                kind: a.kind.clone(),
                host_interface: a.host_interface.clone(),
                host_ifname: a.host_ifname.clone(),
                ifname: a.guest_ifname.clone(),
                address: a.addresses.first().cloned(),
                addresses: a.addresses.clone(),
                mac: a.mac.clone(),
                vlan: a.vlan,
                pid: sup.map(|s| s.pid),
                client: sup.map(|s| s.client.clone()),
                pidfile: sup.map(|s| s.pidfile.clone()),
            }
        })
        .collect()
}
