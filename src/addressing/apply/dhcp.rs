//! The DHCP step in apply: obtain the lease the way the plan chose, then put it on the
//! interface through the same steps (and undo records) as a static address.

use netlink_packet_route::address::AddressScope;
use netlink_packet_route::RouteNetlinkMessage;

use super::{apply, guest_index};
use crate::addressing::dhcp::{self, builtin, external, supervisor, ClientParams, Lease};
use crate::addressing::needs_host_route;
use crate::env::Env;
use crate::error::Error;
use crate::netlink::msg;
use crate::plan::{DhcpStep, Op, UndoEntry};
use crate::report::{DhcpReport, SupervisorReport};
use crate::request::DhcpClient;

pub(super) fn run(env: &mut Env<'_>, d: &DhcpStep) -> Result<(), Error> {
    let index = guest_index(env, &d.ifname)?;
    let guest = env.guest_desc;
    let params = ClientParams {
        ifname: d.ifname.clone(),
        index,
        mac: env.learned.applied.guest_mac,
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
            // Journalled as soon as it has a PID, before the wait for its lease.
            let journal = &mut *env.journal;
            // Still our unreaped child then: its PID cannot have been recycled.
            let (lease, pid) = supervisor::spawn(&cfg, env.guest_ns, |pid| {
                journal.will(stop_entry(
                    pid,
                    crate::process::start_time(pid),
                    &pidfile,
                    &infofile,
                ))
            })?;
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
            if let Some(daemon) = external::run(&r, env.guest_ns)? {
                let entry = stop_entry(daemon.pid, daemon.start(), &pidfile, &infofile);
                env.journal.will(entry)?;
                supervisor_pid = Some(daemon.pid);
            }
            // The client's script (us) configured the interface: read back what it did.
            (lease_on_interface(env, index, d.v6)?, false)
        }
    };
    if configure {
        apply_lease(env, &d.ifname, &lease)?;
        if let (Some(file), false) = (&d.resolv, lease.dns.is_empty()) {
            // Read through the same guarded path as the write: a file that cannot be read back
            // (FIFO, device, huge) is refused before anything is written.
            let old = file.read()?;
            env.journal.will(UndoEntry::RestoreFile {
                file: file.clone(),
                content: old,
            })?;
            dhcp::write_resolv(file, &lease.dns)?;
        }
    }
    env.learned.dhcp_client =
        supervisor_pid.map(|pid| (pid, d.spec.client.name(), pidfile.clone(), infofile));
    env.learned.applied.dhcp = Some(DhcpReport {
        client: d.spec.client.name(),
        family: lease.family,
        server: lease.server,
        lease_time: lease.lease_time,
        t1: lease.t1,
        t2: lease.t2,
        dns: lease.dns.clone(),
        supervisor: supervisor_pid.map(|pid| SupervisorReport { pid, pidfile }),
    });
    env.learned.applied.lease = Some(lease);
    Ok(())
}

/// The lease as static steps: address, then the default route (replacing the guest's, with
/// the on-link host route when needed), then classless routes.
fn apply_lease(env: &mut Env<'_>, ifname: &str, lease: &Lease) -> Result<(), Error> {
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
            via: Some(*via),
            ifname: ifname.to_string(),
        });
    }
    for op in steps {
        env.log.step("dhcp-lease", &op);
        apply(&op, env)?;
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

/// The undo of a DHCP client left running: stop that very process (PID and start time), and
/// its files go.
fn stop_entry(
    pid: u32,
    start: Option<u64>,
    pidfile: &std::path::Path,
    infofile: &std::path::Path,
) -> UndoEntry {
    UndoEntry::StopProcess {
        pid,
        start,
        files: vec![pidfile.to_path_buf(), infofile.to_path_buf()],
    }
}

/// `DhcpRecord`: the info file `pipework ls` reads for a client left running.
pub(super) fn record(env: &mut Env<'_>, ifname: &str) -> Result<(), Error> {
    if let Some((pid, client, pidfile, infofile)) = &env.learned.dhcp_client {
        let info = supervisor::Info {
            pid: *pid,
            client: client.to_string(),
            guest: env.guest_desc.spec.clone(),
            netns_inode: env.guest_desc.netns.inode,
            ifname: ifname.to_string(),
            address: env
                .learned
                .applied
                .lease
                .as_ref()
                .map(|l| l.address.to_string()),
            pidfile: pidfile.clone(),
        };
        supervisor::write_info(infofile, &info)?;
    }
    Ok(())
}
