//! DHCPv4 server replies (`v4::parse_reply`), as the UDP socket hands them over or, through
//! `v4::udp_payload`, as the packet socket reads them (IPv4 + UDP headers). Any bytes are a
//! reply or a reason to ignore them, never a panic; a reply taken is sane: a unicast IPv4
//! address with a prefix ≤ 32, T1 ≤ T2 ≤ lease (at least the minimum), bounded lists.
//! Input: one mode byte, then the packet. Bit 0: the packet has IP/UDP headers. Bit 1: the
//! transaction ID and hardware address to match are taken from the message itself, so the
//! fuzzer gets past those checks to the options.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use pipework::addressing::dhcp::v4::{self, Reply};
use pipework::addressing::dhcp::Lease;

const XID: u32 = 0x1234_5678;
const MAC: [u8; 6] = [0x02, 0x42, 0xac, 0x11, 0x00, 0x07];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let msg = if mode & 1 == 1 {
        match v4::udp_payload(rest) {
            Some(p) => p,
            None => return,
        }
    } else {
        rest
    };
    let (xid, mac) = match (mode & 2 == 2, msg.get(4..8), msg.get(28..34)) {
        (true, Some(x), Some(m)) => (
            u32::from_be_bytes(x.try_into().unwrap()),
            <[u8; 6]>::try_from(m).unwrap(),
        ),
        _ => (XID, MAC),
    };
    match v4::parse_reply(msg, xid, &mac) {
        Ok(Reply::Offer(l)) | Ok(Reply::Ack(l)) => sane(&l),
        Ok(Reply::Nak { message, .. }) => {
            if let Some(m) = message {
                assert!(
                    m.chars().all(|c| !c.is_control()),
                    "a NAK's message is printable: {m:?}"
                );
            }
        }
        Err(_) => {}
    }
});

fn sane(l: &Lease) {
    assert_eq!(l.family, 4);
    let IpAddr::V4(a) = l.address.addr() else {
        panic!("a DHCPv4 lease of an IPv6 address: {l:?}");
    };
    assert!(l.address.prefix_len() <= 32);
    assert!(
        !(a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback()),
        "an unusable leased address: {l:?}"
    );
    assert!(
        l.t1 <= l.t2 && l.t2 <= l.lease_time,
        "times out of order: {l:?}"
    );
    assert!(
        l.lease_time >= v4::packet::MIN_LEASE,
        "lease under the minimum: {l:?}"
    );
    assert!(
        l.dns.len() <= 64 && l.routes.len() <= 256,
        "unbounded lists: {l:?}"
    );
    assert!(l.dns.iter().all(IpAddr::is_ipv4));
    assert!(l
        .routes
        .iter()
        .all(|(n, g)| n.addr().is_ipv4() && g.is_ipv4()));
}
