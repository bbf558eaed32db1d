//! plan → system: executes the steps in order, recording how to undo each change. On the first
//! failure every recorded change is undone in reverse order, so a failed attach leaves nothing
//! half-plumbed.

pub mod dhcp;
mod nic;
mod undo;

use std::fmt::Display;
use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::RouteNetlinkMessage;
use serde::Serialize;

use crate::announce;
use crate::driver::get_link;
use crate::driver::{bridge, kernel_lacks, ovs};
use crate::error::Error;
use crate::mac::MacAddr;
use crate::netlink::{msg, Netlink};
use crate::ns::NetNs;
use crate::plan::{GuestLink, Op, Plan, Side, Step};
use crate::request::MacvlanMode;
use netlink_packet_route::link::MacVlanMode;
use undo::Undo;

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
    /// The guest as resolved (for DHCP supervisors and records).
    pub guest_desc: &'a crate::guest::Guest,
    /// The namespace this thread works from (the host side).
    pub home: &'a NetNs,
    pub log: Log,
    /// PIPEWORK_TEST_FAIL_STEP: fail right after this step (tests prove every rollback path).
    pub fail_after: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RouteReport {
    pub dst: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<IpAddr>,
    pub dev: String,
}

/// What apply learnt from the kernel along the way.
#[derive(Debug, Default, Clone)]
pub struct Applied {
    pub guest_mac: Option<MacAddr>,
    pub guest_mtu: Option<u32>,
    pub routes: Vec<RouteReport>,
    /// What DHCP (or SLAAC) gave the interface.
    pub lease: Option<crate::addressing::dhcp::Lease>,
    /// The bridge the plan was to create turned up meanwhile (a concurrent attach): used.
    pub host_interface_existed: bool,
    pub dhcp: Option<dhcp::DhcpReport>,
}

#[derive(Default)]
struct State {
    /// A DHCP client left running: pid, client name, pidfile, info file.
    dhcp_client: Option<(u32, &'static str, std::path::PathBuf, std::path::PathBuf)>,
    bridge_index: Option<u32>,
    guest_index: Option<(String, u32)>,
    applied: Applied,
}

/// Applies the plan; then `record` (the attachment's record for `ls`/`detach`, written last as
/// the step `record`, undone like any other) — a failure there rolls everything back too.
pub fn apply(
    plan: &Plan,
    env: &mut Env<'_>,
    record: impl FnOnce(&Applied, &mut Netlink) -> Result<Vec<std::path::PathBuf>, Error>,
) -> Result<Applied, Error> {
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
            return Err(undo::rollback(e, undo, env));
        }
        times.push((step.name, t.elapsed()));
    }
    env.log
        .step("record", "record the attachment for pipework ls/detach/gc");
    let t = std::time::Instant::now();
    let mut r = record(&st.applied, env.host)
        .map(|paths| undo.extend(paths.into_iter().map(|path| Undo::RemoveFile { path })));
    if r.is_ok() && env.fail_after.as_deref() == Some("record") {
        r = Err(Error::Injected("record"));
    }
    if let Err(e) = r {
        return Err(undo::rollback(e, undo, env));
    }
    times.push(("record", t.elapsed()));
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

fn run_step(
    step: &Step,
    env: &mut Env<'_>,
    st: &mut State,
    undo: &mut Vec<Undo>,
) -> Result<(), Error> {
    match &step.op {
        Op::CreateBridge { name, mtu } => {
            match env
                .host
                .request(msg::new_bridge(name, *mtu), NLM_F_CREATE | NLM_F_EXCL)
            {
                Ok(()) => {
                    let index = link_index(env.host, name, Side::Host)?;
                    undo.push(Undo::DeleteLink {
                        side: Side::Host,
                        index,
                        name: name.clone(),
                    });
                    st.bridge_index = Some(index);
                }
                // Another attach created it in the meantime: use it, if it is a bridge.
                Err(e) if e.errno == libc::EEXIST => {
                    let l = get_link(env.host, name)?.filter(|l| {
                        matches!(
                            msg::link_kind(l),
                            Some(netlink_packet_route::link::InfoKind::Bridge)
                        )
                    });
                    let l =
                        l.ok_or_else(|| Error::netlink(format!("cannot create bridge {name}"), e))?;
                    st.bridge_index = Some(l.header.index);
                    st.applied.host_interface_existed = true;
                }
                Err(e) => return Err(Error::netlink(format!("cannot create bridge {name}"), e)),
            }
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
            // Recorded first: ovs-vsctl may have written the bridge to the database and then
            // timed out waiting for ovs-vswitchd; the (idempotent) removal must run then too.
            undo.push(Undo::OvsDelBridge { name: name.clone() });
            let args = ovs::add_bridge_args(name, datapath.as_deref());
            ovs::vsctl_change(&args, &format!("cannot create Open vSwitch bridge {name}"))?;
        }
        Op::OvsAddPort {
            bridge,
            port,
            tag,
            external_ids,
        } => {
            undo.push(Undo::OvsDelPort {
                bridge: bridge.clone(),
                port: port.clone(),
            });
            let args = ovs::add_port_args(bridge, port, *tag, external_ids);
            ovs::vsctl_change(
                &args,
                &format!("cannot add {port} to Open vSwitch bridge {bridge}"),
            )?;
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
            nic::move_to_guest(env, nic, guest, *mtu)?;
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
            let brd = msg::v4_broadcast(address);
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
        Op::DisableDad { ifname } => {
            announce::write_ipv6_conf(env.guest_ns, env.home, ifname, "accept_dad", "0")?
        }
        Op::Dhcp(d) => dhcp::run(env, st, undo, d)?,
        Op::DhcpRecord { ifname } => {
            if let Some((pid, client, pidfile, infofile)) = &st.dhcp_client {
                let info = crate::addressing::dhcp::supervisor::Info {
                    pid: *pid,
                    client: client.to_string(),
                    guest: env.guest_desc.spec.clone(),
                    netns_inode: env.guest_desc.netns.inode,
                    ifname: ifname.clone(),
                    address: st.applied.lease.as_ref().map(|l| l.address.to_string()),
                    pidfile: pidfile.clone(),
                };
                crate::addressing::dhcp::supervisor::write_info(infofile, &info)?;
            }
        }
        Op::AddRoute { dst, via, ifname } => {
            let i = guest_index(env, st, ifname)?;
            match env
                .guest
                .request(msg::new_route(*dst, *via, i), NLM_F_CREATE | NLM_F_EXCL)
            {
                Ok(()) => {}
                Err(e) if e.errno == libc::EEXIST => {}
                Err(e) => {
                    return Err(Error::netlink(
                        format!("cannot add route {dst} via {via}"),
                        e,
                    ))
                }
            }
            st.applied.routes.push(RouteReport {
                dst: dst.to_string(),
                via: Some(*via),
                dev: ifname.clone(),
            });
        }
        Op::WaitPortReady { port } => bridge::wait_port_ready(env.host, env.log, port)?,
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
