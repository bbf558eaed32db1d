//! `pipework --wait`: run inside a guest, returns as soon as the interface exists, is up and
//! has carrier. Event-driven: subscribe to link events first, then read the current state, so
//! no change can slip between the two.

use std::time::{Duration, Instant};

use netlink_packet_route::link::{LinkFlags, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;

use crate::error::Error;
use crate::links::get_link;
use crate::netlink::{msg, Netlink, RTNLGRP_LINK};

pub fn is_ready(l: &LinkMessage) -> bool {
    l.header.flags.contains(LinkFlags::Up) && l.header.flags.contains(LinkFlags::LowerUp)
}

pub fn wait_for_link(ifname: &str, timeout: Option<Duration>) -> Result<(), Error> {
    let mut nl = Netlink::open().map_err(|e| Error::netlink("cannot open a netlink socket", e))?;
    nl.subscribe(RTNLGRP_LINK)
        .map_err(|e| Error::netlink("cannot subscribe to link events", e))?;
    if get_link(&mut nl, ifname)?.is_some_and(|l| is_ready(&l)) {
        return Ok(());
    }
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let left = match deadline {
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return Err(Error::Timeout(format!(
                        "interface {ifname} did not come up within {:.1} s",
                        timeout.unwrap_or_default().as_secs_f64()
                    )));
                }
                d - now
            }
            None => Duration::from_secs(3600),
        };
        for m in nl
            .recv_events(left)
            .map_err(|e| Error::netlink("cannot read link events", e))?
        {
            if let RouteNetlinkMessage::NewLink(l) = m {
                if msg::link_name(&l) == Some(ifname) && is_ready(&l) {
                    return Ok(());
                }
            }
        }
    }
}
