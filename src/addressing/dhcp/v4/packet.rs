//! DHCPv4 messages (RFC 2131 / 2132): what the client sends, and the decoding of what a server
//! answers. Pure functions on byte slices: everything that arrives is hostile, so decoding
//! checks every length and returns [`BadReply`] instead of trusting a field.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};

use crate::addressing::dhcp::Lease;

pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;

/// BOOTP fixed header (236 bytes) plus the magic cookie.
const HEADER_LEN: usize = 236;
const OPTIONS_AT: usize = HEADER_LEN + 4;
const COOKIE: [u8; 4] = [99, 130, 83, 99];
/// BOOTP's minimum message: some servers and relays drop shorter ones.
const MIN_LEN: usize = 300;
/// "Please broadcast the reply": the only way a reply reaches a client with no address yet.
const FLAG_BROADCAST: u16 = 0x8000;
/// Lease times below this are raised: a server saying 0 would otherwise make us renew in a
/// tight loop.
pub const MIN_LEASE: u32 = 10;
/// RFC 2131 3.3: all ones is an infinite lease.
pub const INFINITE: u32 = u32::MAX;
/// More than this many DNS servers or routes is noise (or an attack); the rest is dropped.
const MAX_LIST: usize = 16;

const OPT_PAD: u8 = 0;
const OPT_SUBNET_MASK: u8 = 1;
const OPT_ROUTER: u8 = 3;
const OPT_DNS: u8 = 6;
const OPT_HOSTNAME: u8 = 12;
const OPT_BROADCAST: u8 = 28;
const OPT_REQUESTED_IP: u8 = 50;
const OPT_LEASE_TIME: u8 = 51;
const OPT_OVERLOAD: u8 = 52;
const OPT_MESSAGE_TYPE: u8 = 53;
const OPT_SERVER_ID: u8 = 54;
const OPT_PARAMS: u8 = 55;
const OPT_MESSAGE: u8 = 56;
const OPT_MAX_SIZE: u8 = 57;
const OPT_T1: u8 = 58;
const OPT_T2: u8 = 59;
const OPT_CLASSLESS_ROUTES: u8 = 121;
const OPT_END: u8 = 255;

/// DHCP message types (option 53).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum MessageType {
    Discover = 1,
    Offer = 2,
    Request = 3,
    Decline = 4,
    Ack = 5,
    Nak = 6,
    Release = 7,
}

/// A server's answer that concerns us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Offer(Lease),
    Ack(Lease),
    Nak {
        server: Option<Ipv4Addr>,
        /// Option 56, printable characters only.
        message: Option<String>,
    },
}

/// Why a received packet was not taken as a reply to us (it is ignored).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadReply {
    #[error("truncated ({0} bytes)")]
    Truncated(usize),
    #[error("not a BOOTREPLY for Ethernet")]
    NotReply,
    #[error("no DHCP magic cookie")]
    NoCookie,
    #[error("transaction ID {0:#010x} is not ours")]
    WrongXid(u32),
    #[error("for another hardware address")]
    WrongChaddr,
    #[error("malformed option {0}")]
    BadOption(u8),
    #[error("no or unknown message type")]
    NoMessageType,
    #[error("message type {0} is not for a client")]
    NotForClient(u8),
    #[error("offered address {0} is not a unicast address")]
    BadAddress(Ipv4Addr),
    #[error("no server identifier")]
    NoServerId,
    #[error("no lease time")]
    NoLeaseTime,
}

/// What every message the client sends carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub mac: [u8; 6],
    pub hostname: Option<String>,
}

/// The parameters we ask for (option 55).
const WANTED: [u8; 9] = [
    OPT_SUBNET_MASK,
    OPT_ROUTER,
    OPT_DNS,
    OPT_BROADCAST,
    OPT_LEASE_TIME,
    OPT_SERVER_ID,
    OPT_T1,
    OPT_T2,
    OPT_CLASSLESS_ROUTES,
];

struct Builder(Vec<u8>);

impl Builder {
    fn new(kind: MessageType, xid: u32, id: &Identity, ciaddr: Ipv4Addr, broadcast: bool) -> Self {
        let mut b = vec![0u8; OPTIONS_AT];
        b[0] = 1; // BOOTREQUEST
        b[1] = 1; // Ethernet
        b[2] = 6;
        b[4..8].copy_from_slice(&xid.to_be_bytes());
        if broadcast {
            b[10..12].copy_from_slice(&FLAG_BROADCAST.to_be_bytes());
        }
        b[12..16].copy_from_slice(&ciaddr.octets());
        b[28..34].copy_from_slice(&id.mac);
        b[HEADER_LEN..OPTIONS_AT].copy_from_slice(&COOKIE);
        let mut me = Builder(b);
        me.opt(OPT_MESSAGE_TYPE, &[kind as u8]);
        // No client identifier (option 61), as before with mozim and as dhclient by default:
        // servers key the lease on chaddr, so a guest with a stable MAC gets its old lease
        // back across pipework versions and clients.
        me
    }

    fn opt(&mut self, code: u8, value: &[u8]) {
        // Every value we send is far below 255 bytes; a longer one (a hostname cannot be) is
        // cut rather than encoded wrong.
        let v = &value[..value.len().min(255)];
        self.0.push(code);
        self.0.push(v.len() as u8);
        self.0.extend_from_slice(v);
    }

    fn asking(mut self, id: &Identity) -> Self {
        self.opt(OPT_MAX_SIZE, &1500u16.to_be_bytes());
        self.opt(OPT_PARAMS, &WANTED);
        if let Some(h) = &id.hostname {
            self.opt(OPT_HOSTNAME, h.as_bytes());
        }
        self
    }

    fn finish(mut self) -> Vec<u8> {
        self.0.push(OPT_END);
        if self.0.len() < MIN_LEN {
            self.0.resize(MIN_LEN, OPT_PAD);
        }
        self.0
    }
}

/// DHCPDISCOVER, broadcast flag set (we have no address to receive a unicast reply on).
pub fn discover(xid: u32, id: &Identity) -> Vec<u8> {
    Builder::new(MessageType::Discover, xid, id, Ipv4Addr::UNSPECIFIED, true)
        .asking(id)
        .finish()
}

/// DHCPREQUEST in SELECTING: takes `offer` from `server` (RFC 2131 4.3.2: options 50 and 54,
/// ciaddr 0).
pub fn request_selecting(xid: u32, id: &Identity, offer: Ipv4Addr, server: Ipv4Addr) -> Vec<u8> {
    let mut b = Builder::new(MessageType::Request, xid, id, Ipv4Addr::UNSPECIFIED, true);
    b.opt(OPT_REQUESTED_IP, &offer.octets());
    b.opt(OPT_SERVER_ID, &server.octets());
    b.asking(id).finish()
}

/// DHCPREQUEST in RENEWING (unicast to the server) or REBINDING (broadcast): ciaddr is our
/// address, no options 50 / 54.
pub fn request_extend(xid: u32, id: &Identity, ours: Ipv4Addr) -> Vec<u8> {
    Builder::new(MessageType::Request, xid, id, ours, false)
        .asking(id)
        .finish()
}

/// DHCPRELEASE of `ours` to `server` (RFC 2131 4.4.6: ciaddr, option 54, unicast).
pub fn release(xid: u32, id: &Identity, ours: Ipv4Addr, server: Ipv4Addr) -> Vec<u8> {
    let mut b = Builder::new(MessageType::Release, xid, id, ours, false);
    b.opt(OPT_SERVER_ID, &server.octets());
    b.finish()
}

/// The options of a message, in the order RFC 2131 4.1 gives for overload (options field,
/// then `file`, then `sname`); a code seen more than once is concatenated (RFC 3396).
struct Options {
    // (code, value) in arrival order; at most a few dozen entries in a packet of <= 64 KiB.
    found: Vec<(u8, Vec<u8>)>,
}

impl Options {
    fn parse(pkt: &[u8]) -> Result<Options, BadReply> {
        let mut o = Options { found: Vec::new() };
        o.scan(&pkt[OPTIONS_AT..])?;
        let overload = o.get(OPT_OVERLOAD).and_then(|v| v.first().copied());
        if let Some(which) = overload {
            if which & 1 != 0 {
                o.scan(&pkt[108..236])?;
            }
            if which & 2 != 0 {
                o.scan(&pkt[44..108])?;
            }
        }
        Ok(o)
    }

    fn scan(&mut self, mut area: &[u8]) -> Result<(), BadReply> {
        while let Some((&code, rest)) = area.split_first() {
            match code {
                OPT_PAD => area = rest,
                OPT_END => break,
                _ => {
                    let (&len, rest) = rest.split_first().ok_or(BadReply::BadOption(code))?;
                    let len = len as usize;
                    if rest.len() < len {
                        return Err(BadReply::BadOption(code));
                    }
                    let (value, rest) = rest.split_at(len);
                    match self.found.iter_mut().find(|(c, _)| *c == code) {
                        Some((_, v)) => v.extend_from_slice(value),
                        None => self.found.push((code, value.to_vec())),
                    }
                    area = rest;
                }
            }
        }
        Ok(())
    }

    fn get(&self, code: u8) -> Option<&[u8]> {
        self.found
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v.as_slice())
    }

    /// A fixed-size option; a wrong size is malformed (and then ignored by the caller).
    fn exact<const N: usize>(&self, code: u8) -> Option<[u8; N]> {
        self.get(code).and_then(|v| v.try_into().ok())
    }

    fn addr(&self, code: u8) -> Option<Ipv4Addr> {
        self.exact::<4>(code).map(Ipv4Addr::from)
    }

    fn secs(&self, code: u8) -> Option<u32> {
        self.exact::<4>(code).map(u32::from_be_bytes)
    }

    /// A list of addresses; trailing bytes that do not make a whole address are dropped.
    fn addrs(&self, code: u8) -> Vec<Ipv4Addr> {
        self.get(code)
            .unwrap_or_default()
            .chunks_exact(4)
            .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
            .filter(|a| usable_host(*a))
            .take(MAX_LIST)
            .collect()
    }
}

/// A unicast address a host can have or talk to.
fn usable_host(a: Ipv4Addr) -> bool {
    !(a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback())
}

/// A subnet mask's prefix length, if it is a mask (contiguous ones).
fn mask_len(mask: Ipv4Addr) -> Option<u8> {
    let m = u32::from(mask);
    let len = m.leading_ones();
    (m.checked_shl(len).unwrap_or(0) == 0).then_some(len as u8)
}

/// Without a mask option: the address's historical class (as dhclient assumes).
fn classful_len(a: Ipv4Addr) -> u8 {
    match a.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

/// Option 121 (RFC 3442): `len, significant octets of the destination, router`, repeated.
/// Any malformed entry (prefix length > 32, cut short) voids the whole option.
fn classless_routes(v: &[u8]) -> Option<Vec<(Ipv4Net, Ipv4Addr)>> {
    let mut out = Vec::new();
    let mut rest = v;
    while let Some((&plen, r)) = rest.split_first() {
        if plen > 32 {
            return None;
        }
        let sig = (plen as usize).div_ceil(8);
        if r.len() < sig + 4 {
            return None;
        }
        let mut dst = [0u8; 4];
        dst[..sig].copy_from_slice(&r[..sig]);
        let router = Ipv4Addr::new(r[sig], r[sig + 1], r[sig + 2], r[sig + 3]);
        let net = Ipv4Net::new(Ipv4Addr::from(dst), plen).ok()?.trunc();
        if out.len() < MAX_LIST * 4 {
            out.push((net, router));
        }
        rest = &r[sig + 4..];
    }
    Some(out)
}

/// Lease, T1 and T2 made consistent: lease >= MIN_LEASE, 0 < T1 <= T2 <= lease, defaults
/// (RFC 2131 4.4.5: T1 = lease / 2, T2 = lease * 7 / 8) for what is absent or out of order.
pub fn lease_times(lease: u32, t1: Option<u32>, t2: Option<u32>) -> (u32, u32, u32) {
    let lease = lease.max(MIN_LEASE);
    let part = |num: u64, den: u64| {
        if lease == INFINITE {
            INFINITE
        } else {
            (lease as u64 * num / den) as u32
        }
    };
    let t2 = t2
        .filter(|t| *t > 0 && *t <= lease)
        .unwrap_or_else(|| part(7, 8));
    let t1 = t1
        .filter(|t| *t > 0 && *t <= t2)
        .unwrap_or_else(|| part(1, 2).min(t2));
    (lease, t1, t2)
}

/// Decodes a server's reply to the client with hardware address `mac` and transaction `xid`.
/// Anything not addressed to us, malformed, or without what a lease needs is an error (the
/// caller ignores the packet); values are clamped to what the client can act on.
pub fn parse_reply(pkt: &[u8], xid: u32, mac: &[u8; 6]) -> Result<Reply, BadReply> {
    if pkt.len() < OPTIONS_AT {
        return Err(BadReply::Truncated(pkt.len()));
    }
    if pkt[0] != 2 || pkt[1] != 1 || pkt[2] != 6 {
        return Err(BadReply::NotReply);
    }
    if pkt[HEADER_LEN..OPTIONS_AT] != COOKIE {
        return Err(BadReply::NoCookie);
    }
    let got = u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]);
    if got != xid {
        return Err(BadReply::WrongXid(got));
    }
    if pkt[28..34] != mac[..] {
        return Err(BadReply::WrongChaddr);
    }
    let o = Options::parse(pkt)?;
    let kind = match o.exact::<1>(OPT_MESSAGE_TYPE) {
        Some([k]) => k,
        None => return Err(BadReply::NoMessageType),
    };
    let server = o.addr(OPT_SERVER_ID).filter(|a| usable_host(*a));
    match kind {
        2 | 5 => {}
        6 => {
            let message = o.get(OPT_MESSAGE).map(|m| {
                m.iter()
                    .take(200)
                    .map(|&c| {
                        if c.is_ascii_graphic() || c == b' ' {
                            c as char
                        } else {
                            '?'
                        }
                    })
                    .collect()
            });
            return Ok(Reply::Nak { server, message });
        }
        1 | 3 | 4 | 7 | 8 => return Err(BadReply::NotForClient(kind)),
        _ => return Err(BadReply::NoMessageType),
    }
    let yiaddr = Ipv4Addr::new(pkt[16], pkt[17], pkt[18], pkt[19]);
    if !usable_host(yiaddr) {
        return Err(BadReply::BadAddress(yiaddr));
    }
    let server = server.ok_or(BadReply::NoServerId)?;
    let (lease_time, t1, t2) = lease_times(
        o.secs(OPT_LEASE_TIME).ok_or(BadReply::NoLeaseTime)?,
        o.secs(OPT_T1),
        o.secs(OPT_T2),
    );
    let plen = o
        .addr(OPT_SUBNET_MASK)
        .and_then(mask_len)
        .unwrap_or_else(|| classful_len(yiaddr));
    let address = Ipv4Net::new(yiaddr, plen).map_err(|_| BadReply::BadOption(OPT_SUBNET_MASK))?;
    let routes = o.get(OPT_CLASSLESS_ROUTES).and_then(classless_routes);
    // RFC 3442: with classless routes, the Router option is ignored; a 0/0 entry is the default.
    let gateway = match &routes {
        Some(r) => r.iter().find(|(n, _)| n.prefix_len() == 0).map(|(_, g)| *g),
        None => o.addrs(OPT_ROUTER).first().copied(),
    }
    .filter(|g| usable_host(*g) && *g != yiaddr);
    let routes = routes
        .unwrap_or_default()
        .into_iter()
        .filter(|(n, g)| n.prefix_len() > 0 && usable_host(*g))
        .map(|(n, g)| (IpNet::V4(n), IpAddr::V4(g)))
        .collect();
    let lease = Lease {
        family: 4,
        address: IpNet::V4(address),
        broadcast: o.addr(OPT_BROADCAST),
        gateway: gateway.map(IpAddr::V4),
        routes,
        dns: o.addrs(OPT_DNS).into_iter().map(IpAddr::V4).collect(),
        server: Some(IpAddr::V4(server)),
        lease_time,
        t1,
        t2,
    };
    Ok(if kind == 2 {
        Reply::Offer(lease)
    } else {
        Reply::Ack(lease)
    })
}

/// xorshift64*: xids and jitter need to differ between clients, not to be unpredictable (an
/// attacker on the link sees the xid anyway). Seeded by the caller, so tests are repeatable.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next_u32(&mut self) -> u32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub const MAC: [u8; 6] = [0x02, 0x42, 0xac, 0x11, 0x00, 0x07];
    pub const XID: u32 = 0x1234_5678;

    /// A server's reply as dnsmasq would send it, with `opts` (code, value) after type 53.
    pub fn reply(kind: u8, xid: u32, yiaddr: [u8; 4], opts: &[(u8, &[u8])]) -> Vec<u8> {
        let mut b = vec![0u8; OPTIONS_AT];
        b[0] = 2;
        b[1] = 1;
        b[2] = 6;
        b[4..8].copy_from_slice(&xid.to_be_bytes());
        b[16..20].copy_from_slice(&yiaddr);
        b[28..34].copy_from_slice(&MAC);
        b[HEADER_LEN..OPTIONS_AT].copy_from_slice(&COOKIE);
        b.extend_from_slice(&[OPT_MESSAGE_TYPE, 1, kind]);
        for (c, v) in opts {
            b.push(*c);
            b.push(v.len() as u8);
            b.extend_from_slice(v);
        }
        b.push(OPT_END);
        b
    }

    pub fn ack_opts(lease: u32) -> Vec<(u8, Vec<u8>)> {
        vec![
            (OPT_SERVER_ID, vec![10, 0, 0, 1]),
            (OPT_LEASE_TIME, lease.to_be_bytes().to_vec()),
            (OPT_SUBNET_MASK, vec![255, 255, 255, 0]),
            (OPT_ROUTER, vec![10, 0, 0, 1]),
            (OPT_DNS, vec![10, 0, 0, 53, 10, 0, 0, 54]),
        ]
    }

    pub fn ack(kind: u8, xid: u32, lease: u32) -> Vec<u8> {
        let o = ack_opts(lease);
        let o: Vec<(u8, &[u8])> = o.iter().map(|(c, v)| (*c, v.as_slice())).collect();
        reply(kind, xid, [10, 0, 0, 7], &o)
    }

    fn lease_of(r: Result<Reply, BadReply>) -> Lease {
        match r {
            Ok(Reply::Ack(l) | Reply::Offer(l)) => l,
            other => panic!("not a lease: {other:?}"),
        }
    }

    #[test]
    fn decodes_an_ack() {
        let l = lease_of(parse_reply(&ack(5, XID, 120), XID, &MAC));
        assert_eq!(l.address, "10.0.0.7/24".parse().unwrap());
        assert_eq!(l.gateway, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(l.server, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(l.dns.len(), 2);
        assert_eq!((l.lease_time, l.t1, l.t2), (120, 60, 105));
        assert!(matches!(
            parse_reply(&ack(2, XID, 120), XID, &MAC),
            Ok(Reply::Offer(_))
        ));
    }

    #[test]
    fn ignores_what_is_not_for_us() {
        let p = ack(5, XID, 120);
        assert_eq!(parse_reply(&p, XID + 1, &MAC), Err(BadReply::WrongXid(XID)));
        let mut other = MAC;
        other[5] ^= 1;
        assert_eq!(parse_reply(&p, XID, &other), Err(BadReply::WrongChaddr));
        let mut req = p.clone();
        req[0] = 1;
        assert_eq!(parse_reply(&req, XID, &MAC), Err(BadReply::NotReply));
        assert!(matches!(
            parse_reply(&ack(3, XID, 120), XID, &MAC),
            Err(BadReply::NotForClient(3))
        ));
    }

    #[test]
    fn every_truncation_is_an_error_never_a_panic() {
        let p = ack(5, XID, 120);
        for n in 0..p.len() {
            let r = parse_reply(&p[..n], XID, &MAC);
            if n < OPTIONS_AT {
                assert_eq!(r, Err(BadReply::Truncated(n)));
            }
        }
        // Cut inside the lease time option: malformed, not a lease with a made-up time.
        let at = p.windows(2).position(|w| w == [OPT_LEASE_TIME, 4]).unwrap();
        assert_eq!(
            parse_reply(&p[..at + 4], XID, &MAC),
            Err(BadReply::BadOption(OPT_LEASE_TIME))
        );
    }

    #[test]
    fn lease_times_are_clamped() {
        assert_eq!(lease_times(0, None, None), (10, 5, 8));
        assert_eq!(
            lease_times(INFINITE, None, None),
            (INFINITE, INFINITE, INFINITE)
        );
        assert_eq!(
            lease_times(INFINITE, Some(30), Some(60)),
            (INFINITE, 30, 60)
        );
        // T1 after T2, T2 after the lease, zeros: defaults instead.
        assert_eq!(lease_times(100, Some(90), Some(80)), (100, 50, 80));
        assert_eq!(lease_times(100, Some(0), Some(200)), (100, 50, 87));
        assert_eq!(lease_times(120, Some(3), Some(100)), (120, 3, 100));
    }

    #[test]
    fn absurd_options_are_dropped_or_clamped() {
        // Non-contiguous mask: the address's class instead.
        let p = reply(
            5,
            XID,
            [10, 0, 0, 7],
            &[
                (OPT_SERVER_ID, &[10, 0, 0, 1]),
                (OPT_LEASE_TIME, &[0, 0, 0, 0]),
                (OPT_SUBNET_MASK, &[255, 0, 255, 0]),
                (OPT_ROUTER, &[255, 255, 255, 255, 10, 0, 0, 1]),
                (OPT_DNS, &[10, 0, 0, 53, 1, 2]),
                (OPT_T1, &[0, 0]),
            ],
        );
        let l = lease_of(parse_reply(&p, XID, &MAC));
        assert_eq!(l.address, "10.0.0.7/8".parse().unwrap());
        assert_eq!(l.gateway, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(l.dns, vec!["10.0.0.53".parse::<IpAddr>().unwrap()]);
        assert_eq!(l.lease_time, MIN_LEASE);
        // Prefix length 33 in option 121: the whole option is void, the router option counts.
        let p = reply(
            5,
            XID,
            [10, 0, 0, 7],
            &[
                (OPT_SERVER_ID, &[10, 0, 0, 1]),
                (OPT_LEASE_TIME, &[0, 0, 0, 60]),
                (OPT_ROUTER, &[10, 0, 0, 1]),
                (OPT_CLASSLESS_ROUTES, &[33, 1, 2, 3, 4, 5, 10, 0, 0, 2]),
            ],
        );
        assert_eq!(
            lease_of(parse_reply(&p, XID, &MAC)).gateway,
            Some("10.0.0.1".parse().unwrap())
        );
        // No server id, broadcast yiaddr, option running past the end.
        let p = reply(5, XID, [10, 0, 0, 7], &[(OPT_LEASE_TIME, &[0, 0, 0, 60])]);
        assert_eq!(parse_reply(&p, XID, &MAC), Err(BadReply::NoServerId));
        let p = reply(5, XID, [255; 4], &[]);
        assert!(matches!(
            parse_reply(&p, XID, &MAC),
            Err(BadReply::BadAddress(_))
        ));
        let mut p = ack(5, XID, 60);
        let n = p.len();
        p[n - 1] = OPT_DNS;
        p.push(200);
        assert_eq!(
            parse_reply(&p, XID, &MAC),
            Err(BadReply::BadOption(OPT_DNS))
        );
    }

    #[test]
    fn classless_routes_and_their_default() {
        let p = reply(
            5,
            XID,
            [10, 0, 0, 7],
            &[
                (OPT_SERVER_ID, &[10, 0, 0, 1]),
                (OPT_LEASE_TIME, &[0, 0, 0, 60]),
                (OPT_ROUTER, &[10, 0, 0, 9]),
                // 10.9.0.0/16 via 10.0.0.2, 0/0 via 10.0.0.3
                (
                    OPT_CLASSLESS_ROUTES,
                    &[16, 10, 9, 10, 0, 0, 2, 0, 10, 0, 0, 3],
                ),
            ],
        );
        let l = lease_of(parse_reply(&p, XID, &MAC));
        assert_eq!(l.gateway, Some("10.0.0.3".parse().unwrap()));
        assert_eq!(
            l.routes,
            vec![("10.9.0.0/16".parse().unwrap(), "10.0.0.2".parse().unwrap())]
        );
    }

    #[test]
    fn overloaded_file_field_and_split_options() {
        let mut p = reply(
            5,
            XID,
            [10, 0, 0, 7],
            &[
                (OPT_OVERLOAD, &[1]),
                (OPT_DNS, &[10, 0, 0, 53]),
                (OPT_DNS, &[10, 0, 0, 54]),
            ],
        );
        // Server id and lease time in the `file` field.
        let file = [
            OPT_SERVER_ID,
            4,
            10,
            0,
            0,
            1,
            OPT_LEASE_TIME,
            4,
            0,
            0,
            0,
            60,
            OPT_END,
        ];
        p[108..108 + file.len()].copy_from_slice(&file);
        let l = lease_of(parse_reply(&p, XID, &MAC));
        assert_eq!(l.server, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(l.dns.len(), 2);
    }

    #[test]
    fn nak_is_decoded_with_a_printable_message() {
        let p = reply(
            6,
            XID,
            [0; 4],
            &[
                (OPT_SERVER_ID, &[10, 0, 0, 1]),
                (OPT_MESSAGE, b"wrong\nnet"),
            ],
        );
        assert_eq!(
            parse_reply(&p, XID, &MAC),
            Ok(Reply::Nak {
                server: Some("10.0.0.1".parse().unwrap()),
                message: Some("wrong?net".into())
            })
        );
    }

    /// A deterministic stand-in for the fuzz target: mutated replies never panic, and every
    /// lease that comes out holds the invariants the client acts on.
    #[test]
    fn mutated_replies_never_panic_and_leases_stay_sane() {
        let mut rng = Rng::new(0x5eed);
        let seeds = [
            ack(5, XID, 120),
            ack(2, XID, 0),
            reply(
                6,
                XID,
                [0; 4],
                &[(OPT_SERVER_ID, &[10, 0, 0, 1]), (OPT_MESSAGE, b"x")],
            ),
            reply(
                5,
                XID,
                [10, 0, 0, 7],
                &[
                    (OPT_SERVER_ID, &[10, 0, 0, 1]),
                    (OPT_LEASE_TIME, &[255; 4]),
                    (OPT_OVERLOAD, &[3]),
                    (
                        OPT_CLASSLESS_ROUTES,
                        &[24, 10, 9, 9, 10, 0, 0, 2, 0, 10, 0, 0, 3],
                    ),
                ],
            ),
        ];
        for i in 0..20_000u32 {
            let mut p = seeds[i as usize % seeds.len()].clone();
            for _ in 0..1 + rng.next_u32() % 8 {
                let r = rng.next_u32();
                let at = (r as usize >> 8) % (p.len() + 1);
                match r % 4 {
                    0 if at < p.len() => p[at] = (r >> 16) as u8,
                    1 => p.truncate(at),
                    2 => p.insert(at.min(p.len()), (r >> 16) as u8),
                    _ => p.extend_from_slice(&[(r >> 16) as u8, (r >> 24) as u8]),
                }
            }
            if let Ok(Reply::Offer(l) | Reply::Ack(l)) = parse_reply(&p, XID, &MAC) {
                assert!(l.address.prefix_len() <= 32);
                assert!(l.lease_time >= MIN_LEASE, "{l:?}");
                assert!(0 < l.t1 && l.t1 <= l.t2 && l.t2 <= l.lease_time, "{l:?}");
                assert!(l.dns.len() <= MAX_LIST && l.routes.len() <= MAX_LIST * 4);
                match l.address.addr() {
                    IpAddr::V4(a) => assert!(usable_host(a), "{l:?}"),
                    a => panic!("{a}"),
                }
            }
        }
    }

    #[test]
    fn sent_messages_are_well_formed() {
        let id = Identity {
            mac: MAC,
            hostname: Some("web1".into()),
        };
        let d = discover(XID, &id);
        assert!(d.len() >= MIN_LEN);
        assert_eq!(&d[..3], &[1, 1, 6]);
        assert_eq!(&d[10..12], &[0x80, 0]);
        assert_eq!(&d[28..34], &MAC);
        let o = Options::parse(&d).unwrap();
        assert_eq!(o.get(OPT_MESSAGE_TYPE), Some(&[1u8][..]));
        assert_eq!(o.get(OPT_HOSTNAME), Some(&b"web1"[..]));
        assert_eq!(
            o.get(61),
            None,
            "no client identifier: the lease is keyed on chaddr"
        );
        let ours = Ipv4Addr::new(10, 0, 0, 7);
        let server = Ipv4Addr::new(10, 0, 0, 1);
        let r = release(XID, &id, ours, server);
        let o = Options::parse(&r).unwrap();
        assert_eq!(o.get(OPT_MESSAGE_TYPE), Some(&[7u8][..]));
        assert_eq!(o.addr(OPT_SERVER_ID), Some(server));
        assert_eq!(&r[12..16], &ours.octets());
        assert_eq!(&r[10..12], &[0, 0]);
        let s = request_selecting(XID, &id, ours, server);
        let o = Options::parse(&s).unwrap();
        assert_eq!(o.addr(OPT_REQUESTED_IP), Some(ours));
        assert_eq!(&s[12..16], &[0; 4]);
        let e = request_extend(XID, &id, ours);
        let o = Options::parse(&e).unwrap();
        assert_eq!(
            (o.get(OPT_REQUESTED_IP), o.get(OPT_SERVER_ID)),
            (None, None)
        );
        assert_eq!(&e[12..16], &ours.octets());
    }
}
