//! The DHCPv4 client's state machine (RFC 2131 4.4): INIT → SELECTING → REQUESTING → BOUND →
//! RENEWING → REBINDING, and RELEASE. Sans I/O: the caller feeds it the time, timer expiries
//! and received packets, and sends what it queues; so tests drive it with a fake clock.
//!
//! The first DISCOVER goes out at once: RFC 2131's "wait 1 to 10 s" desynchronises a whole
//! network booting together, not one interface plumbed on demand (and it is a SHOULD).

pub use super::packet::Rng;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use super::packet::{self, parse_reply, BadReply, Identity, Reply, INFINITE};
use crate::addressing::dhcp::Lease;

/// Where a queued packet goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    Broadcast,
    Unicast(Ipv4Addr),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub to: Dest,
    pub packet: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Init,
    Selecting,
    Requesting,
    Bound,
    Renewing,
    Rebinding,
}

/// What the caller acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A lease obtained or extended (possibly with new contents).
    Bound(Lease),
    Renewing,
    Rebinding,
    /// Not bound yet, starting over (NAK to our REQUEST, or no answer to it).
    Restarting(String),
    /// The lease is gone (NAK while renewing or rebinding, or expiry): unconfigure it.
    Lost(String),
}

/// RFC 2131 4.1: 4 s, doubled up to 64 s, each randomised by ±1 s.
pub fn backoff(attempt: u32, rng: &mut Rng) -> Duration {
    let base = 4u64 << attempt.min(4);
    let jitter = (rng.next_u32() % 2001) as i64 - 1000;
    Duration::from_millis((base as i64 * 1000 + jitter) as u64)
}

/// REQUESTs sent (first one and retransmissions) before SELECTING starts over.
const REQUEST_TRIES: u32 = 4;
/// RFC 2131 4.4.5: retransmit in RENEWING / REBINDING after half the time left, at least this.
const MIN_EXTEND_RETRY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
struct Held {
    lease: Lease,
    addr: Ipv4Addr,
    server: Ipv4Addr,
    /// None: an infinite lease (nothing to renew).
    t1: Option<Instant>,
    t2: Option<Instant>,
    expiry: Option<Instant>,
}

pub struct Machine {
    id: Identity,
    rng: Rng,
    phase: Phase,
    xid: u32,
    attempt: u32,
    /// Consecutive NAKs to our REQUEST: the second and later restart after a backoff, so a
    /// server that always refuses is not hammered.
    naks: u32,
    /// When the timer of the current phase fires; None: nothing to do until a packet comes.
    deadline: Option<Instant>,
    offer: Option<Lease>,
    held: Option<Held>,
    outbox: Vec<Outgoing>,
    /// Packets that were not a reply to us (wrong xid, chaddr, malformed): counted, ignored.
    pub ignored: u64,
    pub last_ignored: Option<BadReply>,
}

fn v4(ip: Option<IpAddr>) -> Option<Ipv4Addr> {
    match ip {
        Some(IpAddr::V4(a)) => Some(a),
        _ => None,
    }
}

impl Machine {
    /// A client in INIT whose timer fires at `now`: the first DISCOVER goes out immediately.
    pub fn new(id: Identity, seed: u64, now: Instant) -> Machine {
        Machine {
            id,
            rng: Rng::new(seed),
            phase: Phase::Init,
            xid: 0,
            attempt: 0,
            naks: 0,
            deadline: Some(now),
            offer: None,
            held: None,
            outbox: Vec::new(),
            ignored: 0,
            last_ignored: None,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// A DISCOVER or REQUEST of this exchange went unanswered at least once.
    pub fn retransmitting(&self) -> bool {
        self.attempt > 0 && matches!(self.phase, Phase::Selecting | Phase::Requesting)
    }

    pub fn xid(&self) -> u32 {
        self.xid
    }

    pub fn mac(&self) -> [u8; 6] {
        self.id.mac
    }

    /// The lease held (BOUND, RENEWING, REBINDING).
    pub fn lease(&self) -> Option<&Lease> {
        self.held.as_ref().map(|h| &h.lease)
    }

    /// Packets to send now, oldest first.
    pub fn take_outgoing(&mut self) -> Vec<Outgoing> {
        std::mem::take(&mut self.outbox)
    }

    fn send(&mut self, to: Dest, packet: Vec<u8>) {
        self.outbox.push(Outgoing { to, packet });
    }

    fn retry_in(&mut self, now: Instant) {
        self.deadline = Some(now + backoff(self.attempt, &mut self.rng));
    }

    fn discover(&mut self, now: Instant) {
        self.xid = self.rng.next_u32();
        self.attempt = 0;
        self.offer = None;
        self.phase = Phase::Selecting;
        let p = packet::discover(self.xid, &self.id);
        self.send(Dest::Broadcast, p);
        self.retry_in(now);
    }

    fn request_offer(&mut self) {
        let Some(o) = &self.offer else { return };
        let (Some(addr), Some(server)) = (v4(Some(o.address.addr())), v4(o.server)) else {
            return;
        };
        let p = packet::request_selecting(self.xid, &self.id, addr, server);
        self.send(Dest::Broadcast, p);
    }

    /// Back to INIT, the next DISCOVER at `at`.
    fn restart(&mut self, at: Instant) {
        self.phase = Phase::Init;
        self.offer = None;
        self.held = None;
        self.attempt = 0;
        self.deadline = Some(at);
    }

    /// After a lost lease (the caller unconfigured it): start over now.
    pub fn reset(&mut self, now: Instant) {
        self.naks = 0;
        self.restart(now);
    }

    /// The next retransmission in RENEWING / REBINDING: half the time left until `until`, at
    /// least a minute, never past `until` (when the next phase begins).
    fn extend_retry(now: Instant, until: Option<Instant>) -> Option<Instant> {
        let until = until?;
        let left = until.saturating_duration_since(now);
        Some((now + (left / 2).max(MIN_EXTEND_RETRY)).min(until))
    }

    fn extend(&mut self, now: Instant, to: Dest) {
        let Some(h) = &self.held else { return };
        let p = packet::request_extend(self.xid, &self.id, h.addr);
        let until = if to == Dest::Broadcast {
            h.expiry
        } else {
            h.t2
        };
        self.send(to, p);
        self.deadline = Self::extend_retry(now, until);
    }

    fn bind(&mut self, lease: Lease, now: Instant) -> Event {
        let at = |secs: u32| (secs != INFINITE).then(|| now + Duration::from_secs(secs.into()));
        let (addr, server) = match (v4(Some(lease.address.addr())), v4(lease.server)) {
            (Some(a), Some(s)) => (a, s),
            // parse_reply gives IPv4 address and server; anything else is not a lease of ours.
            _ => return Event::Restarting("a lease without an IPv4 address or server".into()),
        };
        let held = Held {
            addr,
            server,
            t1: at(lease.t1),
            t2: at(lease.t2),
            expiry: at(lease.lease_time),
            lease: lease.clone(),
        };
        self.deadline = held.t1;
        self.held = Some(held);
        self.offer = None;
        self.phase = Phase::Bound;
        self.attempt = 0;
        self.naks = 0;
        Event::Bound(lease)
    }

    /// The timer fired (or the caller woke up): does what is due at `now`, if anything.
    pub fn on_timer(&mut self, now: Instant) -> Option<Event> {
        if self.deadline.is_none_or(|d| now < d) {
            return None;
        }
        match self.phase {
            Phase::Init => {
                self.discover(now);
                None
            }
            Phase::Selecting => {
                self.attempt += 1;
                let p = packet::discover(self.xid, &self.id);
                self.send(Dest::Broadcast, p);
                self.retry_in(now);
                None
            }
            Phase::Requesting => {
                self.attempt += 1;
                if self.attempt >= REQUEST_TRIES {
                    self.restart(now);
                    return Some(Event::Restarting(
                        "no answer to DHCPREQUEST; discovering again".into(),
                    ));
                }
                self.request_offer();
                self.retry_in(now);
                None
            }
            Phase::Bound => {
                let server = self.held.as_ref()?.server;
                self.xid = self.rng.next_u32();
                self.phase = Phase::Renewing;
                self.extend(now, Dest::Unicast(server));
                Some(Event::Renewing)
            }
            Phase::Renewing => {
                let h = self.held.as_ref()?;
                if h.t2.is_some_and(|t2| now >= t2) {
                    self.xid = self.rng.next_u32();
                    self.phase = Phase::Rebinding;
                    self.extend(now, Dest::Broadcast);
                    return Some(Event::Rebinding);
                }
                let server = h.server;
                self.extend(now, Dest::Unicast(server));
                None
            }
            Phase::Rebinding => {
                let h = self.held.as_ref()?;
                if h.expiry.is_some_and(|e| now >= e) {
                    self.reset(now);
                    return Some(Event::Lost("the lease expired".into()));
                }
                self.extend(now, Dest::Broadcast);
                None
            }
        }
    }

    /// A packet arrived on the interface's DHCP client port.
    pub fn on_packet(&mut self, bytes: &[u8], now: Instant) -> Option<Event> {
        if matches!(self.phase, Phase::Init | Phase::Bound) {
            return None;
        }
        let reply = match parse_reply(bytes, self.xid, &self.id.mac) {
            Ok(r) => r,
            Err(e) => {
                self.ignored += 1;
                self.last_ignored = Some(e);
                return None;
            }
        };
        let nak_text = |server: Option<Ipv4Addr>, message: Option<String>| {
            format!(
                "DHCPNAK from {}{}",
                server.map_or("a server".into(), |s| s.to_string()),
                message.map_or(String::new(), |m| format!(": {m}"))
            )
        };
        match (self.phase, reply) {
            (Phase::Selecting, Reply::Offer(l)) => {
                // The first offer wins: waiting for more only delays the lease.
                self.offer = Some(l);
                self.phase = Phase::Requesting;
                self.attempt = 0;
                self.request_offer();
                self.retry_in(now);
                None
            }
            (Phase::Requesting, Reply::Ack(l)) => {
                let offer = self.offer.as_ref()?;
                // Only the server we chose (others may answer a broadcast REQUEST with the
                // same xid), for the address it offered.
                if l.server != offer.server || l.address.addr() != offer.address.addr() {
                    self.ignored += 1;
                    return None;
                }
                Some(self.bind(l, now))
            }
            (Phase::Requesting, Reply::Nak { server, message }) => {
                let offer = self.offer.as_ref()?;
                if server.is_some_and(|s| Some(IpAddr::V4(s)) != offer.server) {
                    self.ignored += 1;
                    return None;
                }
                self.naks += 1;
                let at = match self.naks {
                    1 => now,
                    n => now + backoff(n - 2, &mut self.rng),
                };
                self.restart(at);
                Some(Event::Restarting(nak_text(server, message)))
            }
            (Phase::Renewing | Phase::Rebinding, Reply::Ack(l)) => Some(self.bind(l, now)),
            (Phase::Renewing | Phase::Rebinding, Reply::Nak { server, message }) => {
                let held = self.held.as_ref()?;
                if self.phase == Phase::Renewing && server.is_some_and(|s| s != held.server) {
                    self.ignored += 1;
                    return None;
                }
                self.reset(now);
                Some(Event::Lost(nak_text(server, message)))
            }
            // Late or duplicate offers, offers while extending: nothing to do.
            _ => None,
        }
    }

    /// Gives the lease back (DHCPRELEASE, unicast to its server) and stops: no timer runs
    /// until [`Machine::reset`]. Nothing is sent without a lease.
    pub fn release(&mut self) {
        if let Some(h) = self.held.take() {
            self.xid = self.rng.next_u32();
            let p = packet::release(self.xid, &self.id, h.addr, h.server);
            self.send(Dest::Unicast(h.server), p);
        }
        self.phase = Phase::Init;
        self.offer = None;
        self.deadline = None;
    }
}

#[cfg(test)]
mod tests {
    use super::super::packet::tests::{ack, reply, MAC};
    use super::*;

    fn id() -> Identity {
        Identity {
            mac: MAC,
            hostname: Some("web1".into()),
        }
    }

    fn kind(p: &[u8]) -> u8 {
        // Option 53 is the first option we write.
        assert_eq!(p[240], 53);
        p[242]
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// A client that got OFFER + ACK at `t0` for a lease of `lease` s (T1, T2 defaults).
    fn bound(t0: Instant, lease: u32) -> Machine {
        let mut m = Machine::new(id(), 7, t0);
        m.on_timer(t0);
        m.take_outgoing();
        m.on_packet(&ack(2, m.xid(), lease), t0);
        m.take_outgoing();
        assert!(matches!(
            m.on_packet(&ack(5, m.xid(), lease), t0),
            Some(Event::Bound(_))
        ));
        m
    }

    #[test]
    fn first_discover_is_immediate_and_broadcast() {
        let t0 = Instant::now();
        let mut m = Machine::new(id(), 1, t0);
        assert_eq!(m.deadline(), Some(t0));
        assert_eq!(m.on_timer(t0), None);
        let out = m.take_outgoing();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].to, Dest::Broadcast);
        assert_eq!(kind(&out[0].packet), 1);
        assert_eq!(m.phase(), Phase::Selecting);
    }

    #[test]
    fn discover_backoff_is_4_8_16_32_64_64_with_one_second_jitter() {
        let t0 = Instant::now();
        let mut m = Machine::new(id(), 42, t0);
        m.on_timer(t0);
        assert_eq!(m.take_outgoing().len(), 1);
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..7 {
            let d = m.deadline().unwrap();
            // Early wake-ups do nothing.
            assert_eq!(m.on_timer(d - Duration::from_millis(1)), None);
            assert!(m.take_outgoing().is_empty());
            waits.push(d - now);
            now = d;
            m.on_timer(now);
            let out = m.take_outgoing();
            assert_eq!(out.len(), 1, "one retransmission");
            assert_eq!(kind(&out[0].packet), 1);
        }
        for (w, base) in waits.iter().zip([4u64, 8, 16, 32, 64, 64, 64]) {
            assert!(
                *w >= secs(base - 1) && *w <= secs(base + 1),
                "wait {w:?} for base {base}: {waits:?}"
            );
        }
        // The xid stays while retransmitting.
        let xid = m.xid();
        m.on_timer(m.deadline().unwrap());
        assert_eq!(m.xid(), xid);
    }

    #[test]
    fn offer_then_ack_binds_and_wrong_xid_is_ignored() {
        let t0 = Instant::now();
        let mut m = Machine::new(id(), 3, t0);
        m.on_timer(t0);
        m.take_outgoing();
        let xid = m.xid();
        assert_eq!(m.on_packet(&ack(2, xid ^ 1, 120), t0), None);
        assert_eq!(m.ignored, 1);
        assert_eq!(m.last_ignored, Some(BadReply::WrongXid(xid ^ 1)));
        assert_eq!(m.phase(), Phase::Selecting);
        assert_eq!(m.on_packet(&[0u8; 17], t0), None);
        assert_eq!(m.on_packet(&ack(2, xid, 120), t0), None);
        assert_eq!(m.phase(), Phase::Requesting);
        let out = m.take_outgoing();
        assert_eq!((out.len(), out[0].to), (1, Dest::Broadcast));
        assert_eq!(kind(&out[0].packet), 3);
        // Same xid in the REQUEST as in the DISCOVER / OFFER.
        assert_eq!(&out[0].packet[4..8], &xid.to_be_bytes());
        // A second offer changes nothing.
        assert_eq!(m.on_packet(&ack(2, xid, 120), t0), None);
        assert!(m.take_outgoing().is_empty());
        match m.on_packet(&ack(5, xid, 120), t0) {
            Some(Event::Bound(l)) => assert_eq!(l.address, "10.0.0.7/24".parse().unwrap()),
            e => panic!("{e:?}"),
        }
        assert_eq!(m.phase(), Phase::Bound);
        assert_eq!(m.deadline(), Some(t0 + secs(60)));
        // Duplicates while bound are ignored.
        assert_eq!(m.on_packet(&ack(5, xid, 120), t0), None);
    }

    #[test]
    fn renews_at_t1_unicast_rebinds_at_t2_broadcast_and_expires() {
        let t0 = Instant::now();
        let mut m = bound(t0, 1000); // T1 500, T2 875
        assert_eq!(m.on_timer(t0 + secs(499)), None);
        assert_eq!(m.on_timer(t0 + secs(500)), Some(Event::Renewing));
        let out = m.take_outgoing();
        let server = Ipv4Addr::new(10, 0, 0, 1);
        assert_eq!(out[0].to, Dest::Unicast(server));
        assert_eq!(kind(&out[0].packet), 3);
        assert_eq!(&out[0].packet[12..16], &[10, 0, 0, 7], "ciaddr is ours");
        // Retransmission after half the time to T2 (187.5 s), then at least 60 s, capped at T2.
        let d = m.deadline().unwrap();
        assert_eq!(d, t0 + secs(500) + Duration::from_millis(187_500));
        assert_eq!(m.on_timer(d), None);
        assert_eq!(m.take_outgoing()[0].to, Dest::Unicast(server));
        let mut now = d;
        while m.phase() == Phase::Renewing {
            now = m.deadline().unwrap();
            let ev = m.on_timer(now);
            assert!(now <= t0 + secs(875));
            if ev == Some(Event::Rebinding) {
                break;
            }
        }
        assert_eq!(now, t0 + secs(875));
        assert_eq!(m.phase(), Phase::Rebinding);
        let out = m.take_outgoing();
        assert_eq!(out.last().unwrap().to, Dest::Broadcast);
        while m.phase() == Phase::Rebinding {
            now = m.deadline().unwrap();
            if let Some(ev) = m.on_timer(now) {
                assert_eq!(ev, Event::Lost("the lease expired".into()));
            }
        }
        assert_eq!(now, t0 + secs(1000));
        assert_eq!(m.lease(), None);
        // Starts over at once.
        assert_eq!(m.phase(), Phase::Init);
        assert_eq!(m.deadline(), Some(now));
    }

    #[test]
    fn ack_while_renewing_rebinds_timers() {
        let t0 = Instant::now();
        let mut m = bound(t0, 100);
        let t1 = t0 + secs(50);
        m.on_timer(t1);
        m.take_outgoing();
        assert!(matches!(
            m.on_packet(&ack(5, m.xid(), 100), t1),
            Some(Event::Bound(_))
        ));
        assert_eq!(m.deadline(), Some(t1 + secs(50)));
    }

    #[test]
    fn nak_while_requesting_restarts_then_backs_off() {
        let t0 = Instant::now();
        let mut m = Machine::new(id(), 5, t0);
        m.on_timer(t0);
        m.on_packet(&ack(2, m.xid(), 120), t0);
        m.take_outgoing();
        let nak = reply(6, m.xid(), [0; 4], &[(54, &[10, 0, 0, 1])]);
        assert!(matches!(m.on_packet(&nak, t0), Some(Event::Restarting(_))));
        assert_eq!((m.phase(), m.deadline()), (Phase::Init, Some(t0)));
        // Again: the second NAK in a row waits (4 ± 1 s) before discovering again.
        m.on_timer(t0);
        m.on_packet(&ack(2, m.xid(), 120), t0);
        let nak = reply(6, m.xid(), [0; 4], &[(54, &[10, 0, 0, 1])]);
        assert!(matches!(m.on_packet(&nak, t0), Some(Event::Restarting(_))));
        let d = m.deadline().unwrap() - t0;
        assert!(d >= secs(3) && d <= secs(5), "{d:?}");
        // A NAK from another server than the one chosen is not ours to obey.
        m.on_timer(t0 + d);
        m.on_packet(&ack(2, m.xid(), 120), t0 + d);
        let nak = reply(6, m.xid(), [0; 4], &[(54, &[10, 0, 0, 99])]);
        assert_eq!(m.on_packet(&nak, t0 + d), None);
        assert_eq!(m.phase(), Phase::Requesting);
    }

    #[test]
    fn nak_while_renewing_loses_the_lease() {
        let t0 = Instant::now();
        let mut m = bound(t0, 100);
        m.on_timer(t0 + secs(50));
        let nak = reply(6, m.xid(), [0; 4], &[(54, &[10, 0, 0, 1]), (56, b"no")]);
        assert_eq!(
            m.on_packet(&nak, t0 + secs(50)),
            Some(Event::Lost("DHCPNAK from 10.0.0.1: no".into()))
        );
        assert_eq!(m.lease(), None);
        assert_eq!(m.phase(), Phase::Init);
    }

    #[test]
    fn unanswered_requests_fall_back_to_discover() {
        let t0 = Instant::now();
        let mut m = Machine::new(id(), 9, t0);
        m.on_timer(t0);
        m.take_outgoing();
        m.on_packet(&ack(2, m.xid(), 120), t0);
        let mut sent = m.take_outgoing().len();
        let mut ev = None;
        while ev.is_none() {
            ev = m.on_timer(m.deadline().unwrap());
            sent += m.take_outgoing().len();
        }
        assert_eq!(sent, REQUEST_TRIES as usize);
        assert!(matches!(ev, Some(Event::Restarting(_))));
        assert_eq!(m.phase(), Phase::Init);
    }

    #[test]
    fn release_is_unicast_to_the_server_with_our_address() {
        let t0 = Instant::now();
        let mut m = bound(t0, 120);
        m.release();
        let out = m.take_outgoing();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].to, Dest::Unicast(Ipv4Addr::new(10, 0, 0, 1)));
        let p = &out[0].packet;
        assert_eq!(kind(p), 7);
        assert_eq!(&p[12..16], &[10, 0, 0, 7]);
        assert_eq!(&p[28..34], &MAC);
        assert_eq!(m.deadline(), None);
        // Nothing held: nothing to release.
        m.release();
        assert!(m.take_outgoing().is_empty());
    }

    #[test]
    fn infinite_lease_never_renews() {
        let t0 = Instant::now();
        let m = bound(t0, INFINITE);
        assert_eq!(m.deadline(), None);
    }
}
