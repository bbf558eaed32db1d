//! The DHCP step in apply: obtain the lease the way the plan chose, then put it on the
//! interface through the same steps (and undo records) as a static address.

use std::net::IpAddr;
use std::path::PathBuf;

use netlink_packet_route::address::AddressScope;
use netlink_packet_route::RouteNetlinkMessage;
use serde::Serialize;

use super::undo::Undo;
use super::{guest_index, run_step, Env, State};
use crate::addressing::dhcp::{self, builtin, external, supervisor, ClientParams, Lease};
use crate::addressing::needs_host_route;
use crate::error::Error;
use crate::netlink::msg;
use crate::plan::{DhcpStep, Op, Step};
use crate::request::DhcpClient;

/// The `dhcp` object of `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct DhcpReport {
    pub client: &'static str,
    pub family: u8,
    pub server: Option<IpAddr>,
    pub lease_time: u32,
    pub t1: u32,
    pub t2: u32,
    pub dns: Vec<IpAddr>,
    pub supervisor: Option<SupervisorReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SupervisorReport {
    pub pid: u32,
    pub pidfile: PathBuf,
}

pub(super) fn run(
    env: &mut Env<'_>,
    st: &mut State,
    undo: &mut Vec<Undo>,
    d: &DhcpStep,
) -> Result<(), Error> {
    let index = guest_index(env, st, &d.ifname)?;
    let guest = env.guest_desc;
    let params = ClientParams {
        ifname: d.ifname.clone(),
        index,
        mac: st.applied.guest_mac,
        hostname: d.hostname.clone(),
        v6: d.v6,
        timeout: d.timeout,
    };
    let pidfile = dhcp::client_file(guest, &d.ifname, "pid");
    let infofile = dhcp::client_file(guest, &d.ifname, "json");
    let mut supervisor_pid = None;
    let (lease, configure) = match d.spec.client {
        DhcpClient::Builtin if !d.spec.keep => (builtin::obtain(env.guest_ns, &params)?, true),
        DhcpClient::Builtin => {
            let cfg = supervisor::Config {
                params: params.clone(),
                guest_spec: guest.spec.clone(),
                guest_pid: guest.pid,
                netns_path: (guest.pid.is_none()).then(|| guest.netns.path.clone()),
                netns_inode: guest.netns.inode,
                pidfile: pidfile.clone(),
                infofile: infofile.clone(),
                resolv: d.resolv.clone(),
            };
            if let Some(dir) = pidfile.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
            }
            let (lease, pid) = supervisor::spawn(&cfg, env.guest_ns)?;
            undo.push(Undo::StopProcess {
                pid,
                files: vec![pidfile.clone(), infofile.clone()],
            });
            supervisor_pid = Some(pid);
            (lease, true)
        }
        DhcpClient::Slaac => (builtin::wait_slaac(env.guest, &params)?, false),
        client => {
            let r = external::Run {
                client,
                ifname: d.ifname.clone(),
                hostname: d.hostname.clone(),
                v6: d.v6,
                keep: d.spec.keep,
                options: d.spec.options.clone(),
                timeout: d.timeout,
                files: pidfile.with_extension(""),
                resolv: d.resolv.clone(),
            };
            let pid = external::run(&r, env.guest_ns)?;
            if let Some(pid) = pid {
                undo.push(Undo::StopProcess {
                    pid,
                    files: vec![pidfile.clone(), infofile.clone()],
                });
                supervisor_pid = Some(pid);
            }
            // The client's script (us) configured the interface: read back what it did.
            (lease_on_interface(env, index, d.v6)?, false)
        }
    };
    if configure {
        apply_lease(env, st, undo, &d.ifname, &lease)?;
        if let (Some(path), false) = (&d.resolv, lease.dns.is_empty()) {
            let old = dhcp::write_resolv(path, &lease.dns)?;
            undo.push(Undo::RestoreFile {
                path: path.clone(),
                content: old,
            });
        }
    }
    st.dhcp_client =
        supervisor_pid.map(|pid| (pid, d.spec.client.name(), pidfile.clone(), infofile));
    st.applied.dhcp = Some(DhcpReport {
        client: d.spec.client.name(),
        family: lease.family,
        server: lease.server,
        lease_time: lease.lease_time,
        t1: lease.t1,
        t2: lease.t2,
        dns: lease.dns.clone(),
        supervisor: supervisor_pid.map(|pid| SupervisorReport { pid, pidfile }),
    });
    st.applied.lease = Some(lease);
    Ok(())
}

/// The lease as static steps: address, then the default route (replacing the guest's, with
/// the on-link host route when needed), then classless routes.
fn apply_lease(
    env: &mut Env<'_>,
    st: &mut State,
    undo: &mut Vec<Undo>,
    ifname: &str,
    lease: &Lease,
) -> Result<(), Error> {
    let mut steps = vec![Op::AddAddress {
        ifname: ifname.to_string(),
        address: lease.address,
    }];
    if let Some(gw) = lease.gateway {
        let routes = env
            .guest
            .dump(msg::dump_routes(msg::family_of(&gw)))
            .map_err(|e| Error::netlink("cannot list the guest's routes", e))?;
        let routes: Vec<_> = routes
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => Some(r),
                _ => None,
            })
            .collect();
        for r in routes.iter().filter(|r| msg::is_main_default(r)) {
            steps.push(Op::DeleteRoute {
                route: Box::new(r.clone()),
                text: "default (replaced by the lease's router)".into(),
            });
        }
        if needs_host_route(&lease.address, gw, &routes) {
            steps.push(Op::AddHostRoute {
                gateway: gw,
                ifname: ifname.to_string(),
            });
        }
        steps.push(Op::AddDefaultRoute {
            gateway: gw,
            ifname: ifname.to_string(),
        });
    }
    for (dst, via) in &lease.routes {
        steps.push(Op::AddRoute {
            dst: *dst,
            via: *via,
            ifname: ifname.to_string(),
        });
    }
    for op in steps {
        let step = Step::new("dhcp-lease", op);
        env.log.step(step.name, &step.op);
        run_step(&step, env, st, undo)?;
    }
    Ok(())
}

/// What an external client put on the interface: its address of the family, and the default
/// route through it.
fn lease_on_interface(env: &mut Env<'_>, index: u32, v6: bool) -> Result<Lease, Error> {
    let address = dhcp::if_addresses(env.guest, index)?
        .into_iter()
        .find(|a| a.scope == AddressScope::Universe && a.net.addr().is_ipv6() == v6)
        .map(|a| a.net)
        .ok_or_else(|| {
            Error::Guest("the DHCP client reported success but the interface has no address".into())
        })?;
    let gateway = env
        .guest
        .dump(msg::dump_routes(msg::family_of(&address.addr())))
        .ok()
        .into_iter()
        .flatten()
        .find_map(|m| match m {
            RouteNetlinkMessage::NewRoute(r)
                if msg::is_main_default(&r) && msg::route_oif(&r) == Some(index) =>
            {
                msg::route_gateway(&r)
            }
            _ => None,
        });
    Ok(Lease::observed(address, gateway))
}
