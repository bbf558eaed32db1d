//! Link drivers: what the host interface is, and how the guest gets a link from it. One module
//! per kind; each returns the steps that put the guest interface in place (with its own undo
//! through `apply`).

pub mod bridge;

use netlink_packet_route::link::{InfoKind, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;

use crate::error::Error;
use crate::mac::MacAddr;
use crate::netlink::{msg, Netlink};
use crate::plan::{Plan, PlanCtx};
use crate::request::HostIfSpec;

/// The host interface as found in the host namespace.
pub struct HostIf {
    pub name: String,
    pub link: Option<LinkMessage>,
}

/// Finds the host interface named on the command line (by name, or by MAC for `mac:`).
pub fn find_host_if(nl: &mut Netlink, spec: &HostIfSpec) -> Result<HostIf, Error> {
    match spec {
        HostIfSpec::Name(name) => Ok(HostIf {
            name: name.clone(),
            link: get_link(nl, name)?,
        }),
        HostIfSpec::Mac(mac) => {
            let link = find_by_mac(nl, mac)?.ok_or_else(|| {
                Error::HostInterface(format!(
                    "Mac address {mac} specified for interface but no host interface matched."
                ))
            })?;
            let name = msg::link_name(&link).unwrap_or_default().to_string();
            Ok(HostIf {
                name,
                link: Some(link),
            })
        }
    }
}

pub fn get_link(nl: &mut Netlink, name: &str) -> Result<Option<LinkMessage>, Error> {
    match nl.get(msg::get_link_by_name(name)) {
        Ok(Some(RouteNetlinkMessage::NewLink(m))) => Ok(Some(m)),
        Ok(_) => Ok(None),
        Err(e) => Err(Error::netlink(format!("cannot look up link {name}"), e)),
    }
}

fn find_by_mac(nl: &mut Netlink, mac: &MacAddr) -> Result<Option<LinkMessage>, Error> {
    let links = nl
        .dump(msg::dump_links())
        .map_err(|e| Error::netlink("cannot list host links", e))?;
    Ok(links.into_iter().find_map(|m| match m {
        RouteNetlinkMessage::NewLink(l) if msg::link_mac(&l).as_ref() == Some(mac) => Some(l),
        _ => None,
    }))
}

/// Picks the driver from what the host interface is (or, when missing, from its name, as the
/// original does) and lets it plan the link.
pub fn plan_link(ctx: &mut PlanCtx<'_>) -> Result<Plan, Error> {
    let host_if = find_host_if(ctx.host, &ctx.req.host_if)?;
    match &host_if.link {
        Some(link) => match msg::link_kind(link) {
            Some(InfoKind::Bridge) => bridge::plan(ctx, &host_if),
            other => {
                let kind = other
                    .map(|k| format!("{k:?}").to_lowercase())
                    .unwrap_or_else(|| "physical".into());
                Err(Error::HostInterface(format!(
                    "host interface {} exists but is a {kind} link, not a bridge; this version of \
                     pipework attaches guests to Linux bridges (create one with a name starting \
                     with 'br', e.g. `pipework br1 …`)",
                    host_if.name
                )))
            }
        },
        None if host_if.name.starts_with("br") => bridge::plan(ctx, &host_if),
        None => Err(Error::HostInterface(format!(
            "I do not know how to setup interface {}: no such link, and only names starting \
             with 'br' are created (as bridges)",
            host_if.name
        ))),
    }
}
