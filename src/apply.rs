//! plan → system: executes the steps in order, recording how to undo each change. On the first
//! failure every recorded change is undone in reverse order, so a failed attach leaves nothing
//! half-plumbed.

use std::fmt::Display;
use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::route::RouteMessage;
use netlink_packet_route::RouteNetlinkMessage;
use serde::Serialize;

use crate::announce;
use crate::driver::get_link;
use crate::driver::{kernel_lacks, ovs, phys};
use crate::error::Error;
use crate::mac::MacAddr;
use crate::netlink::{msg, Netlink};
use crate::ns::NetNs;
use crate::plan::{GuestLink, NicState, Op, Plan, Side, Step};
use crate::request::MacvlanMode;
use netlink_packet_route::link::MacVlanMode;

/// Step-by-step logging for `-v`: `pipework: step NAME: what`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Log {
    pub verbose: bool,
}

impl Log {
    pub fn step(&self, name: &str, what: impl Display) {
        if self.verbose {
            eprintln!("pipework: step {name}: {what}");
        }
    }

    pub fn info(&self, what: impl Display) {
        if self.verbose {
            eprintln!("pipework: {what}");
        }
    }
}

pub struct Env<'a> {
    pub host: &'a mut Netlink,
    pub guest: &'a mut Netlink,
    pub guest_ns: &'a NetNs,
    /// The namespace this thread works from (the host side).
    pub home: &'a NetNs,
    pub log: Log,
    /// PIPEWORK_TEST_FAIL_STEP: fail right after this step (tests prove every rollback path).
    pub fail_after: Option<String>,
}

/// A change made, and how to take it back.
#[derive(Debug)]
enum Undo {
    DeleteLink {
        side: Side,
        index: u32,
        name: String,
    },
    ReAddRoute {
        route: Box<RouteMessage>,
        text: String,
    },
    /// A route we added that would outlive the veth's removal ordering: taken out first so
    /// the original default route can be restored in its place.
    DeleteRoute {
        route: Box<RouteMessage>,
        text: String,
    },
    OvsDelPort {
        bridge: String,
        port: String,
    },
    OvsDelBridge {
        name: String,
    },
    /// A host link we brought up goes back down.
    HostLinkDown {
        index: u32,
        name: String,
    },
    /// A NIC moved into the guest goes back, under its name, with its MAC, MTU, addresses and
    /// up/down state.
    MoveBack {
        guest_index: u32,
        nic: Box<NicState>,
    },
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RouteReport {
    pub dst: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<IpAddr>,
    pub dev: String,
}

/// What apply learnt from the kernel along the way.
#[derive(Debug, Default)]
pub struct Applied {
    pub guest_mac: Option<MacAddr>,
    pub guest_mtu: Option<u32>,
    pub routes: Vec<RouteReport>,
}

#[derive(Default)]
struct State {
    bridge_index: Option<u32>,
    guest_index: Option<(String, u32)>,
    applied: Applied,
}

pub fn apply(plan: &Plan, env: &mut Env<'_>) -> Result<Applied, Error> {
    let mut undo: Vec<Undo> = Vec::new();
    let mut st = State::default();
    let start = std::time::Instant::now();
    let mut times = Vec::with_capacity(plan.steps.len());
    for step in &plan.steps {
        env.log.step(step.name, &step.op);
        let t = std::time::Instant::now();
        let mut r = run_step(step, env, &mut st, &mut undo).map_err(|e| Error::Step {
            step: step.name,
            source: Box::new(e),
        });
        if r.is_ok() && env.fail_after.as_deref() == Some(step.name) {
            r = Err(Error::Injected(step.name));
        }
        if let Err(e) = r {
            return Err(rollback(e, undo, env));
        }
        times.push((step.name, t.elapsed()));
    }
    if env.log.verbose {
        let each: Vec<String> = times
            .iter()
            .map(|(n, d)| format!("{n} {:.3}", d.as_secs_f64() * 1e3))
            .collect();
        env.log.info(format_args!(
            "applied {} steps in {:.3} ms ({})",
            times.len(),
            start.elapsed().as_secs_f64() * 1e3,
            each.join(", ")
        ));
    }
    Ok(st.applied)
}

fn rollback(err: Error, undo: Vec<Undo>, env: &mut Env<'_>) -> Error {
    let mut left = Vec::new();
    for u in undo.into_iter().rev() {
        match u {
            Undo::DeleteLink { side, index, name } => {
                env.log
                    .step("rollback", format!("delete {name} ({side:?})"));
                let nl = match side {
                    Side::Host => &mut *env.host,
                    Side::Guest => &mut *env.guest,
                };
                match nl.request(msg::del_link(index), 0) {
                    Ok(()) => {}
                    Err(e) if e.errno == libc::ENODEV => {} // already gone
                    Err(e) => left.push(format!("link {name} ({e})")),
                }
            }
            Undo::OvsDelPort { bridge, port } => {
                env.log
                    .step("rollback", format!("remove port {port} from {bridge}"));
                if let Err(e) =
                    ovs::vsctl_change(&["--if-exists", "del-port", &bridge, &port], "rollback")
                {
                    left.push(format!("Open vSwitch port {port} on {bridge} ({e})"));
                }
            }
            Undo::OvsDelBridge { name } => {
                env.log
                    .step("rollback", format!("delete Open vSwitch bridge {name}"));
                if let Err(e) = ovs::vsctl_change(&["--if-exists", "del-br", &name], "rollback") {
                    left.push(format!("Open vSwitch bridge {name} ({e})"));
                }
            }
            Undo::HostLinkDown { index, name } => {
                env.log.step("rollback", format!("bring {name} back down"));
                match env.host.request(msg::set_link_down(index), 0) {
                    Ok(()) => {}
                    Err(e) if e.errno == libc::ENODEV => {}
                    Err(e) => left.push(format!("{name} is still up ({e})")),
                }
            }
            Undo::MoveBack { guest_index, nic } => {
                env.log
                    .step("rollback", format!("move {} back to the host", nic.name));
                if let Err(e) = move_back(env, guest_index, &nic) {
                    left.push(format!(
                        "{} is not back in the host as it was ({e})",
                        nic.name
                    ));
                }
            }
            Undo::DeleteRoute { route, text } => {
                env.log.step("rollback", format!("delete route {text}"));
                match env.guest.request(msg::del_route(&route), 0) {
                    Ok(()) => {}
                    Err(e) if e.errno == libc::ESRCH || e.errno == libc::ENODEV => {}
                    Err(e) => left.push(format!("route {text} ({e})")),
                }
            }
            Undo::ReAddRoute { route, text } => {
                env.log.step("rollback", format!("restore route {text}"));
                match env
                    .guest
                    .request(msg::readd_route(&route), NLM_F_CREATE | NLM_F_EXCL)
                {
                    Ok(()) => {}
                    Err(e) if e.errno == libc::EEXIST => {}
                    Err(e) => left.push(format!("route {text} was not restored ({e})")),
                }
            }
        }
    }
    if left.is_empty() {
        err
    } else {
        Error::Rollback {
            source: Box::new(err),
            left: left.join("; "),
        }
    }
}

/// Reads the guest interface just created or moved: its index (cached for later steps), MAC
/// and MTU (for the report).
fn learn_guest_link(env: &mut Env<'_>, st: &mut State, name: &str) -> Result<u32, Error> {
    let gl = get_link(env.guest, name)?
        .ok_or_else(|| Error::HostInterface(format!("{name} did not appear in the guest")))?;
    st.guest_index = Some((name.to_string(), gl.header.index));
    st.applied.guest_mac = msg::link_mac(&gl);
    st.applied.guest_mtu = msg::link_mtu(&gl);
    Ok(gl.header.index)
}

fn macvlan_mode(m: MacvlanMode) -> MacVlanMode {
    match m {
        MacvlanMode::Bridge => MacVlanMode::Bridge,
        MacvlanMode::Private => MacVlanMode::Private,
        MacvlanMode::Vepa => MacVlanMode::Vepa,
        MacvlanMode::Passthru => MacVlanMode::Passthrough,
    }
}

fn move_to_guest(
    env: &mut Env<'_>,
    nic: &NicState,
    guest: &str,
    mtu: Option<u32>,
) -> Result<(), Error> {
    let index = link_index(env.host, &nic.name, Side::Host)?;
    let Some(phy) = &nic.phy else {
        return env
            .host
            .request(msg::move_link(index, env.guest_ns.raw_fd(), guest, mtu), 0)
            .map_err(|e| {
                Error::netlink(
                    format!("cannot move {} into the guest as {guest}", nic.name),
                    e,
                )
            });
    };
    // Wireless: the phy moves (with its interfaces, names unchanged), then the rename.
    run_iw(&phys::iw_move_args(phy, env.guest_ns.raw_fd()), None)?;
    let i = link_index(env.guest, &nic.name, Side::Guest)?;
    env.guest
        .request(msg::rename_link(i, guest), 0)
        .map_err(|e| {
            Error::netlink(
                format!("cannot rename {} to {guest} in the guest", nic.name),
                e,
            )
        })
}

fn move_back(env: &mut Env<'_>, guest_index: u32, nic: &NicState) -> Result<(), Error> {
    match &nic.phy {
        None => env
            .guest
            .request(
                msg::move_link(guest_index, env.home.raw_fd(), &nic.name, nic.mtu),
                0,
            )
            .map_err(|e| Error::netlink("cannot move it back", e))?,
        Some(phy) => {
            env.guest
                .request(msg::set_link_down(guest_index), 0)
                .and_then(|()| {
                    env.guest
                        .request(msg::rename_link(guest_index, &nic.name), 0)
                })
                .map_err(|e| Error::netlink("cannot rename it back", e))?;
            run_iw(
                &phys::iw_move_args(phy, env.home.raw_fd()),
                Some(env.guest_ns),
            )?;
        }
    }
    let index = link_index(env.host, &nic.name, Side::Host)?;
    if let Some(mac) = &nic.mac {
        env.host
            .request(msg::set_link_mac(index, mac), 0)
            .map_err(|e| Error::netlink(format!("cannot restore its mac {mac}"), e))?;
    }
    for a in &nic.addresses {
        let brd = match a {
            ipnet::IpNet::V4(n) if n.prefix_len() < 31 => Some(n.broadcast()),
            _ => None,
        };
        match env.host.request(
            msg::new_address(index, a.addr(), a.prefix_len(), brd),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Ok(()) => {}
            Err(e) if e.errno == libc::EEXIST => {}
            Err(e) => return Err(Error::netlink(format!("cannot restore its address {a}"), e)),
        }
    }
    if nic.up {
        env.host
            .request(msg::set_link_up(index), 0)
            .map_err(|e| Error::netlink("cannot bring it back up", e))?;
    }
    Ok(())
}

/// Runs `iw ARGS…` (wireless phys change namespace through nl80211), inside `ns` if given.
fn run_iw(args: &[String], ns: Option<&NetNs>) -> Result<(), Error> {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new("iw");
    cmd.args(args);
    if let Some(ns) = ns {
        let fd = ns.raw_fd();
        // SAFETY: only a setns syscall between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let b = std::os::fd::BorrowedFd::borrow_raw(fd);
                nix::sched::setns(b, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(std::io::Error::from)
            });
        }
    }
    let out = cmd
        .output()
        .map_err(|e| Error::io("cannot run iw (package iw) to move a wireless interface", e))?;
    if !out.status.success() {
        return Err(Error::HostInterface(format!(
            "iw {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

fn link_index(nl: &mut Netlink, name: &str, side: Side) -> Result<u32, Error> {
    get_link(nl, name)?.map(|l| l.header.index).ok_or_else(|| {
        Error::HostInterface(format!(
            "link {name} disappeared from the {} namespace",
            match side {
                Side::Host => "host",
                Side::Guest => "guest",
            }
        ))
    })
}

fn guest_index(env: &mut Env<'_>, st: &mut State, ifname: &str) -> Result<u32, Error> {
    if let Some((n, i)) = &st.guest_index {
        if n == ifname {
            return Ok(*i);
        }
    }
    let i = link_index(env.guest, ifname, Side::Guest)?;
    st.guest_index = Some((ifname.to_string(), i));
    Ok(i)
}

/// How long to wait for the bridge to enable a new port. Normally it is enabled already, or
/// within microseconds; a loaded machine can delay the kernel's link-watch work.
const PORT_READY_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// RTNLGRP_LINK.
const RTNLGRP_LINK: u32 = 1;

fn port_enabled(nl: &mut Netlink, port: &str) -> Result<bool, Error> {
    use netlink_packet_route::link::BridgePortState;
    let link = get_link(nl, port)?.ok_or_else(|| {
        Error::HostInterface(format!("bridge port {port} disappeared from the host"))
    })?;
    // Forwarding, or STP's listening/learning: the bridge has seen the carrier; STP's own
    // delays are the bridge's policy, not ours to wait out.
    Ok(!matches!(
        msg::bridge_port_state(&link),
        Some(BridgePortState::Disabled)
    ))
}

/// Event-driven: the kernel notifies RTM_NEWLINK for the port right after the bridge has
/// processed its carrier change, so we subscribe, re-check, and sleep only on the socket.
fn wait_port_ready(env: &mut Env<'_>, port: &str) -> Result<(), Error> {
    if port_enabled(env.host, port)? {
        return Ok(());
    }
    let mut events =
        Netlink::open().map_err(|e| Error::netlink("cannot open a netlink socket", e))?;
    events
        .subscribe(RTNLGRP_LINK)
        .map_err(|e| Error::netlink("cannot subscribe to link events", e))?;
    let deadline = std::time::Instant::now() + PORT_READY_LIMIT;
    loop {
        if port_enabled(&mut events, port)? {
            return Ok(());
        }
        let now = std::time::Instant::now();
        if now >= deadline {
            env.log.info(format_args!(
                "bridge port {port} still disabled after {PORT_READY_LIMIT:?}; announcing anyway"
            ));
            return Ok(());
        }
        // Any link event may be ours; the re-check above decides.
        events
            .recv_events(deadline - now)
            .map_err(|e| Error::netlink("cannot read link events", e))?;
    }
}

fn run_step(
    step: &Step,
    env: &mut Env<'_>,
    st: &mut State,
    undo: &mut Vec<Undo>,
) -> Result<(), Error> {
    match &step.op {
        Op::CreateBridge { name, mtu } => {
            env.host
                .request(msg::new_bridge(name, *mtu), NLM_F_CREATE | NLM_F_EXCL)
                .map_err(|e| Error::netlink(format!("cannot create bridge {name}"), e))?;
            let index = link_index(env.host, name, Side::Host)?;
            undo.push(Undo::DeleteLink {
                side: Side::Host,
                index,
                name: name.clone(),
            });
            st.bridge_index = Some(index);
        }
        Op::DeleteStaleLink { name } => {
            if let Some(l) = get_link(env.host, name)? {
                match env.host.request(msg::del_link(l.header.index), 0) {
                    Ok(()) => {}
                    Err(e) if e.errno == libc::ENODEV => {}
                    Err(e) => {
                        return Err(Error::netlink(
                            format!("cannot delete leftover link {name}"),
                            e,
                        ))
                    }
                }
            }
        }
        Op::CreateVeth {
            host,
            master,
            guest,
            mtu,
            mac,
        } => {
            let master = match (master, st.bridge_index) {
                (None, _) => None,
                (Some(_), Some(i)) => Some(i),
                (Some(m), None) => Some(link_index(env.host, m, Side::Host)?),
            };
            let peer = msg::PeerSpec {
                name: guest.clone(),
                mtu: *mtu,
                mac: *mac,
                netns_fd: env.guest_ns.raw_fd(),
            };
            env.host
                .request(
                    msg::new_veth(host, *mtu, master, &peer),
                    NLM_F_CREATE | NLM_F_EXCL,
                )
                .map_err(|e| {
                    let what = if e.errno == libc::EEXIST {
                        format!(
                            "cannot create veth pair {host} (host) <-> {guest} (guest): one of the \
                             two names is already taken"
                        )
                    } else {
                        format!("cannot create veth pair {host} (host) <-> {guest} (guest)")
                    };
                    Error::netlink(what, e)
                })?;
            let index = link_index(env.host, host, Side::Host)?;
            // Deleting the host end deletes the guest end, and with it every address and
            // route the later steps put on it: those steps need no undo of their own.
            undo.push(Undo::DeleteLink {
                side: Side::Host,
                index,
                name: host.clone(),
            });
            learn_guest_link(env, st, guest)?;
        }
        Op::OvsAddBridge { name, datapath } => {
            let args = ovs::add_bridge_args(name, datapath.as_deref());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            ovs::vsctl_change(&args, &format!("cannot create Open vSwitch bridge {name}"))?;
            undo.push(Undo::OvsDelBridge { name: name.clone() });
        }
        Op::OvsAddPort {
            bridge,
            port,
            tag,
            external_ids,
        } => {
            let args = ovs::add_port_args(bridge, port, *tag, external_ids);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            ovs::vsctl_change(
                &args,
                &format!("cannot add {port} to Open vSwitch bridge {bridge}"),
            )?;
            undo.push(Undo::OvsDelPort {
                bridge: bridge.clone(),
                port: port.clone(),
            });
        }
        Op::TxChecksumOff { ifname } => ovs::tx_checksum_off(env.guest_ns, env.home, ifname)?,
        Op::CreateVlan {
            parent,
            name,
            id,
            mtu,
        } => {
            let p = link_index(env.host, parent, Side::Host)?;
            env.host
                .request(msg::new_vlan(name, p, *id, *mtu), NLM_F_CREATE | NLM_F_EXCL)
                .map_err(|e| match kernel_lacks(e.errno, "802.1Q VLAN", "8021q") {
                    Some(why) => Error::HostInterface(format!("cannot create {name}: {why}")),
                    None => {
                        Error::netlink(format!("cannot create VLAN {id} on {parent} as {name}"), e)
                    }
                })?;
            let index = link_index(env.host, name, Side::Host)?;
            undo.push(Undo::DeleteLink {
                side: Side::Host,
                index,
                name: name.clone(),
            });
        }
        Op::HostLinkUp { name } => {
            let l = get_link(env.host, name)?
                .ok_or_else(|| Error::HostInterface(format!("no link {name} in the host")))?;
            if !msg::link_is_up(&l) {
                env.host
                    .request(msg::set_link_up(l.header.index), 0)
                    .map_err(|e| Error::netlink(format!("cannot bring {name} up"), e))?;
                undo.push(Undo::HostLinkDown {
                    index: l.header.index,
                    name: name.clone(),
                });
            }
        }
        Op::CreateInGuest {
            link,
            name,
            mtu,
            mac,
        } => {
            let (kind, what, module) = match link {
                GuestLink::Macvlan { parent, mode } => (
                    msg::GuestLinkKind::Macvlan {
                        parent: link_index(env.host, parent, Side::Host)?,
                        mode: macvlan_mode(*mode),
                    },
                    "macvlan",
                    "macvlan",
                ),
                GuestLink::Ipoib { parent, pkey } => (
                    msg::GuestLinkKind::Ipoib {
                        parent: link_index(env.host, parent, Side::Host)?,
                        pkey: *pkey,
                    },
                    "IPoIB",
                    "ib_ipoib",
                ),
                GuestLink::Dummy => (msg::GuestLinkKind::Dummy, "dummy interface", "dummy"),
            };
            let m = msg::new_link_in_guest(&kind, name, *mtu, mac.as_ref(), env.guest_ns.raw_fd());
            env.host
                .request(m, NLM_F_CREATE | NLM_F_EXCL)
                .map_err(|e| match kernel_lacks(e.errno, what, module) {
                    Some(why) => Error::HostInterface(format!("cannot create {name}: {why}")),
                    None => Error::netlink(format!("cannot create {what} {name} in the guest"), e),
                })?;
            let index = learn_guest_link(env, st, name)?;
            undo.push(Undo::DeleteLink {
                side: Side::Guest,
                index,
                name: name.clone(),
            });
        }
        Op::MoveToGuest { nic, guest, mtu } => {
            move_to_guest(env, nic, guest, *mtu)?;
            let index = learn_guest_link(env, st, guest)?;
            undo.push(Undo::MoveBack {
                guest_index: index,
                nic: Box::new(nic.clone()),
            });
            if !nic.addresses.is_empty() {
                let list: Vec<String> = nic.addresses.iter().map(|a| a.to_string()).collect();
                eprintln!(
                    "pipework: warning: moving {} into the guest dropped its host addresses: {}",
                    nic.name,
                    list.join(", ")
                );
            }
        }
        Op::SetMac { ifname, mac } => {
            let i = guest_index(env, st, ifname)?;
            env.guest
                .request(msg::set_link_mac(i, mac), 0)
                .map_err(|e| Error::netlink(format!("cannot set mac {mac} on {ifname}"), e))?;
            st.applied.guest_mac = Some(*mac);
        }
        Op::SetArpNotify { ifname } => {
            let i = guest_index(env, st, ifname)?;
            announce::enable_arp_notify(env.guest, i, ifname)?;
        }
        Op::SetNdiscNotify { ifname } => {
            announce::enable_ndisc_notify(env.guest_ns, env.home, ifname)?;
        }
        Op::LinkUp { ifname } => {
            let i = guest_index(env, st, ifname)?;
            env.guest
                .request(msg::set_link_up(i), 0)
                .map_err(|e| Error::netlink(format!("cannot bring {ifname} up in the guest"), e))?;
        }
        Op::AddAddress { ifname, address } => {
            let i = guest_index(env, st, ifname)?;
            let brd = match address {
                ipnet::IpNet::V4(n) if n.prefix_len() < 31 => Some(n.broadcast()),
                _ => None,
            };
            env.guest
                .request(
                    msg::new_address(i, address.addr(), address.prefix_len(), brd),
                    NLM_F_CREATE | NLM_F_EXCL,
                )
                .map_err(|e| {
                    Error::netlink(format!("cannot add address {address} to {ifname}"), e)
                })?;
        }
        Op::DeleteRoute { route, text } => {
            match env.guest.request(msg::del_route(route), 0) {
                Ok(()) => undo.push(Undo::ReAddRoute {
                    route: route.clone(),
                    text: text.clone(),
                }),
                Err(e) if e.errno == libc::ESRCH => {} // gone meanwhile: nothing to restore
                Err(e) => return Err(Error::netlink(format!("cannot delete route {text}"), e)),
            }
        }
        Op::AddHostRoute { gateway, ifname } => {
            let i = guest_index(env, st, ifname)?;
            let len = if gateway.is_ipv4() { 32 } else { 128 };
            match env
                .guest
                .request(msg::new_host_route(*gateway, i), NLM_F_CREATE | NLM_F_EXCL)
            {
                Ok(()) => {}
                Err(e) if e.errno == libc::EEXIST => {} // a route to it is already there
                Err(e) => {
                    return Err(Error::netlink(
                        format!("cannot add route {gateway}/{len} dev {ifname}"),
                        e,
                    ))
                }
            }
            st.applied.routes.push(RouteReport {
                dst: format!("{gateway}/{len}"),
                via: None,
                dev: ifname.clone(),
            });
        }
        Op::AddDefaultRoute { gateway, ifname } => {
            let i = guest_index(env, st, ifname)?;
            let route = msg::new_default_route(*gateway, i);
            env.guest
                .request(route.clone(), NLM_F_CREATE | NLM_F_REPLACE)
                .map_err(|e| {
                    Error::netlink(
                        format!("cannot set default route via {gateway} dev {ifname}"),
                        e,
                    )
                })?;
            if let RouteNetlinkMessage::NewRoute(r) = route {
                undo.push(Undo::DeleteRoute {
                    route: Box::new(r),
                    text: format!("default via {gateway} dev {ifname}"),
                });
            }
            st.applied.routes.push(RouteReport {
                dst: "default".into(),
                via: Some(*gateway),
                dev: ifname.clone(),
            });
        }
        Op::WaitPortReady { port } => wait_port_ready(env, port)?,
        Op::Announce { ifname } => {
            let i = guest_index(env, st, ifname)?;
            let mac = match st.applied.guest_mac {
                Some(m) => m,
                None => {
                    let l = get_link(env.guest, ifname)?;
                    l.as_ref().and_then(msg::link_mac).ok_or_else(|| {
                        Error::HostInterface(format!("{ifname} has no MAC address to announce"))
                    })?
                }
            };
            announce::announce(env.guest, i, ifname, &mac)?;
        }
    }
    Ok(())
}
