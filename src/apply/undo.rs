//! The undo log that makes an attach transactional: each change a step makes is recorded with
//! how to take it back; on failure the records are replayed in reverse. Rollback never stops
//! at the first error: it undoes all it can and reports what it could not.

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::route::RouteMessage;

use super::Env;
use crate::driver::ovs;
use crate::error::Error;
use crate::netlink::msg;
use crate::plan::{NicState, Side};

/// A change made, and how to take it back.
#[derive(Debug)]
pub(super) enum Undo {
    /// A DHCP client we started: SIGTERM (the built-in supervisor then releases its lease),
    /// and its files go.
    StopProcess {
        pid: u32,
        files: Vec<std::path::PathBuf>,
    },
    /// A file we created (the attachment's record).
    RemoveFile {
        path: std::path::PathBuf,
    },
    /// A file we overwrote (the guest's resolv.conf) gets its old content back.
    RestoreFile {
        path: std::path::PathBuf,
        content: Option<Vec<u8>>,
    },
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

pub(super) fn rollback(err: Error, undo: Vec<Undo>, env: &mut Env<'_>) -> Error {
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
            Undo::StopProcess { pid, files } => {
                env.log.step("rollback", format!("stop DHCP client {pid}"));
                crate::process::stop(pid);
                for f in files {
                    let _ = std::fs::remove_file(f);
                }
            }
            Undo::RemoveFile { path } => {
                let _ = std::fs::remove_file(&path);
            }
            Undo::RestoreFile { path, content } => {
                env.log
                    .step("rollback", format!("restore {}", path.display()));
                let r = match content {
                    Some(c) => std::fs::write(&path, c),
                    None => std::fs::remove_file(&path),
                };
                if let Err(e) = r {
                    left.push(format!("{} ({e})", path.display()));
                }
            }
            Undo::OvsDelPort { bridge, port } => {
                env.log
                    .step("rollback", format!("remove port {port} from {bridge}"));
                if let Err(e) = ovs::vsctl_change(
                    &["--no-wait", "--if-exists", "del-port", &bridge, &port],
                    "rollback",
                ) {
                    left.push(format!("Open vSwitch port {port} on {bridge} ({e})"));
                }
            }
            Undo::OvsDelBridge { name } => {
                env.log
                    .step("rollback", format!("delete Open vSwitch bridge {name}"));
                if let Err(e) =
                    ovs::vsctl_change(&["--no-wait", "--if-exists", "del-br", &name], "rollback")
                {
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
                if let Err(e) = crate::driver::phys::return_to_host(
                    env.host,
                    env.guest,
                    env.guest_ns,
                    env.home,
                    guest_index,
                    &nic,
                ) {
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
