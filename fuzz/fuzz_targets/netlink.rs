//! Netlink replies: a datagram through `netlink::handle_datagram` (framing, sequence and port
//! checks, NLMSG_ERROR/DONE with extended acks, netlink-packet-route's decoding) and through
//! `parse_events`, with every accessor of `netlink::msg` run on what decodes; a route that
//! decodes survives the journal's bytes round trip (`route_to_bytes`/`route_from_bytes`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use pipework::netlink::{handle_datagram, msg, parse_events, Expect};

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, data)) = data.split_first() else {
        return;
    };
    // The answer's own seq/port half of the time, so decoding is reached without guessing.
    let want = if ctl & 2 != 0 && data.len() >= 16 {
        Expect {
            seq: u32::from_ne_bytes(data[8..12].try_into().unwrap()),
            port: u32::from_ne_bytes(data[12..16].try_into().unwrap()),
        }
    } else {
        Expect { seq: 7, port: 4242 }
    };
    let mut seen = 0usize;
    let r = handle_datagram(data, ctl & 1 != 0, want, &mut |m: NetlinkMessage<_>| {
        seen += 1;
        if let NetlinkPayload::InnerMessage(inner) = &m.payload {
            inspect(inner);
        }
        Ok(ctl & 4 != 0)
    });
    if ctl & 1 != 0 {
        // A multicast datagram is never an answer.
        assert!(matches!(r, Ok(false)) && seen == 0);
    }
    if let Err(e) = r {
        assert!(e.errno > 0, "an error without an errno: {e:?}");
    }
    for m in parse_events(data) {
        inspect(&m);
    }
    // Journal bytes are read back from a record file: any bytes.
    if let Some(r) = msg::route_from_bytes(data) {
        route(&r);
    }
});

fn inspect(m: &RouteNetlinkMessage) {
    match m {
        RouteNetlinkMessage::NewLink(l) | RouteNetlinkMessage::DelLink(l) => {
            let _ = msg::link_name(l);
            let _ = msg::link_kind(l);
            let _ = msg::link_kind_name(l);
            let _ = msg::link_mtu(l);
            let _ = msg::link_mac(l);
            let _ = msg::bridge_port_state(l);
            let _ = msg::link_is_up(l);
            let _ = msg::vlan_id(l);
            let _ = msg::link_parent(l);
            let _ = msg::link_master(l);
            let _ = msg::link_group(l);
        }
        RouteNetlinkMessage::NewRoute(r) | RouteNetlinkMessage::DelRoute(r) => route(r),
        _ => {}
    }
}

fn route(r: &netlink_packet_route::route::RouteMessage) {
    if let Some((ip, len)) = msg::route_dst(r) {
        let _ = (ip, len);
    }
    let _ = msg::route_table(r);
    let _ = msg::route_oif(r);
    let _ = msg::route_gateway(r);
    let _ = msg::is_main_default(r);
    let _ = msg::del_route(r);
    let _ = msg::readd_route(r);
    // What the journal stores must read back as the same route (an undo re-adds it); a route
    // pipework could not write back is refused, never encoded.
    let Some(bytes) = msg::route_to_bytes(r) else {
        return;
    };
    let back = msg::route_from_bytes(&bytes).expect("a route's own bytes parse");
    assert_eq!(
        msg::route_to_bytes(&back),
        Some(bytes),
        "route bytes are not a fixed point"
    );
}
