//! A small synchronous rtnetlink client: one socket per network namespace, request/ack with
//! sequence checks, dumps to NLMSG_DONE, and the kernel's extended-ack text kept in errors.
//! Strict: every receive times out ([`DEFAULT_TIMEOUT`]), and an answer that is not exactly
//! the one asked for (wrong port, a sequence from the future, undecodable, truncated) is an
//! error rather than something to guess around. [`fake`] is the in-memory stand-in for tests.
//!
//! Synchronous on purpose: an attach is ~10 dependent requests; an async runtime buys nothing
//! and costs start-up time and memory (see shared/NETLINK-NOTES.md).

pub mod fake;
pub mod msg;
pub mod vxlan;

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR,
    NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

const RECV_BUF: usize = 64 * 1024;
/// RTNLGRP_LINK: the multicast group of link events.
pub const RTNLGRP_LINK: u32 = 1;
/// NLMSGERR_ATTR_MSG: the human-readable extended-ack string.
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;

/// An error answered by the kernel (or by the socket).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NlError {
    /// Positive errno value (EEXIST, ENODEV, …).
    pub errno: i32,
    /// The kernel's extended-ack message, e.g. "mtu greater than device maximum".
    pub ext_ack: Option<String>,
}

impl NlError {
    pub fn from_io(e: &io::Error) -> Self {
        NlError {
            errno: e.raw_os_error().unwrap_or(libc::EIO),
            ext_ack: None,
        }
    }
}

impl fmt::Display for NlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = io::Error::from_raw_os_error(self.errno);
        match &self.ext_ack {
            Some(m) => write!(f, "{m} ({text})"),
            None => write!(f, "{text}"),
        }
    }
}

impl std::error::Error for NlError {}

pub type NlResult<T> = Result<T, NlError>;

/// The route-netlink requests the engine makes, behind a trait so that plan, apply, rollback,
/// teardown and check are unit-tested against a recording fake (`fake::World`) without root.
/// The session chooses the implementation by construction, never by `cfg!(test)`.
/// Change requests this process has sent the kernel (what a lab's no-op apply shows is zero).
static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub fn writes() -> u64 {
    WRITES.load(std::sync::atomic::Ordering::Relaxed)
}

/// A change made another way (a `tc` run) counts as a write too.
pub fn note_write() {
    WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

pub trait Rtnl {
    /// Sends a change and waits for the kernel's acknowledgement.
    fn request(&mut self, msg: RouteNetlinkMessage, flags: u16) -> NlResult<()>;
    /// Sends a GET for one object; `Ok(None)` when the kernel says it does not exist.
    fn get(&mut self, msg: RouteNetlinkMessage) -> NlResult<Option<RouteNetlinkMessage>>;
    /// Dumps a table (links, addresses, routes) to NLMSG_DONE.
    fn dump(&mut self, msg: RouteNetlinkMessage) -> NlResult<Vec<RouteNetlinkMessage>>;
}

impl Rtnl for Netlink {
    fn request(&mut self, msg: RouteNetlinkMessage, flags: u16) -> NlResult<()> {
        Netlink::request(self, msg, flags)
    }
    fn get(&mut self, msg: RouteNetlinkMessage) -> NlResult<Option<RouteNetlinkMessage>> {
        Netlink::get(self, msg)
    }
    fn dump(&mut self, msg: RouteNetlinkMessage) -> NlResult<Vec<RouteNetlinkMessage>> {
        Netlink::dump(self, msg)
    }
}

/// How long a request waits for each answer of the kernel unless [`Netlink::set_timeout`] says
/// otherwise. The kernel answers in microseconds; only a wedged rtnl lock or a lost message
/// gets anywhere near this, and then an error beats hanging an attach forever.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A route-netlink socket bound to the network namespace it was opened in, for life.
pub struct Netlink {
    socket: Socket,
    seq: u32,
    /// Our port id (nl_pid), which the kernel puts in every answer to us.
    port: u32,
    buf: Vec<u8>,
    timeout: Duration,
}

/// What a request waits for: answers carry our port id and the request's sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect {
    pub port: u32,
    pub seq: u32,
}

/// `a` was sent before `b` (sequence numbers wrap).
fn seq_before(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) > 0
}

/// A readable name for a netlink message type, for errors about answers.
fn type_name(t: u16) -> String {
    let name = match t {
        1 => "NLMSG_NOOP",
        2 => "NLMSG_ERROR",
        3 => "NLMSG_DONE",
        4 => "NLMSG_OVERRUN",
        16 => "RTM_NEWLINK",
        17 => "RTM_DELLINK",
        20 => "RTM_NEWADDR",
        21 => "RTM_DELADDR",
        24 => "RTM_NEWROUTE",
        25 => "RTM_DELROUTE",
        _ => return format!("message type {t}"),
    };
    name.to_string()
}

fn bad_message(text: String) -> NlError {
    NlError {
        errno: libc::EBADMSG,
        ext_ack: Some(text),
    }
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    // Callers check the length first; a short slice reads as 0 rather than panicking.
    b.get(off..off + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_ne_bytes)
        .unwrap_or(0)
}

/// Walks one received datagram for the request `want`. Returns `Ok(true)` once `f` says the
/// request is complete. Pure (no socket), so every rule is unit-tested with crafted bytes:
/// - a datagram that came through a multicast group is an event, not an answer: skipped
///   (a subscribed socket may see events between a request and its answer);
/// - an answer to an earlier request of ours (our port, older sequence) is skipped: it is the
///   late reply to a request that timed out, or the rest of a dump abandoned on an error;
/// - anything else not addressed to `want` (another port, a sequence from the future), a
///   truncated message, or one this crate cannot decode is an error: guessing would let a
///   caller act on an answer that is not the one it asked for;
/// - NLMSG_ERROR with a code, and NLMSG_DONE with a negative code, are the kernel's error,
///   with its extended-ack text.
pub fn handle_datagram(
    data: &[u8],
    multicast: bool,
    want: Expect,
    f: &mut dyn FnMut(NetlinkMessage<RouteNetlinkMessage>) -> NlResult<bool>,
) -> NlResult<bool> {
    if multicast {
        return Ok(false);
    }
    let mut off = 0;
    while off < data.len() {
        if data.len() - off < NLMSG_HDRLEN {
            return Err(bad_message(format!(
                "truncated netlink message: {} bytes left after the last complete one",
                data.len() - off
            )));
        }
        let len = u32_at(data, off) as usize;
        if len < NLMSG_HDRLEN || len > data.len() - off {
            return Err(bad_message(format!(
                "truncated netlink message: header says {len} bytes, {} received",
                data.len() - off
            )));
        }
        let raw = &data[off..off + len];
        off = (off + ((len + 3) & !3)).min(data.len());
        let kind = u16::from_ne_bytes([raw[4], raw[5]]);
        let seq = u32_at(raw, 8);
        let port = u32_at(raw, 12);
        if seq != want.seq || port != want.port {
            if port == want.port && seq_before(seq, want.seq) {
                continue;
            }
            return Err(NlError {
                errno: libc::EPROTO,
                ext_ack: Some(format!(
                    "unexpected netlink answer ({}, seq {seq}, port {port}) while waiting for \
                     seq {} on port {}",
                    type_name(kind),
                    want.seq,
                    want.port
                )),
            });
        }
        let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(raw).map_err(|e| {
            bad_message(format!(
                "cannot parse the kernel's answer ({}, {len} bytes): {e}",
                type_name(kind)
            ))
        })?;
        match &msg.payload {
            NetlinkPayload::Error(e) => {
                if let Some(code) = e.code {
                    return Err(NlError {
                        errno: errno_of(code.get()),
                        ext_ack: parse_ext_ack(raw),
                    });
                }
            }
            NetlinkPayload::Done(d) if d.code < 0 => {
                return Err(NlError {
                    errno: errno_of(d.code),
                    ext_ack: parse_ext_ack(raw),
                });
            }
            NetlinkPayload::Overrun(_) => {
                return Err(NlError {
                    errno: libc::ENOBUFS,
                    ext_ack: Some("the kernel reports a netlink overrun".into()),
                })
            }
            _ => {}
        }
        if f(msg)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The errno of an NLMSG_ERROR/NLMSG_DONE code (the kernel sends -errno). A code that is no
/// negated errno (positive, or i32::MIN, whose negation overflows) is a protocol error.
fn errno_of(code: i32) -> i32 {
    code.checked_neg()
        .filter(|e| *e > 0)
        .unwrap_or(libc::EPROTO)
}

/// The request is complete when the kernel acknowledged it (NLMSG_ERROR with code 0).
fn ack_done(m: &NetlinkMessage<RouteNetlinkMessage>) -> bool {
    matches!(m.payload, NetlinkPayload::Error(ref e) if e.code.is_none())
}

/// Collects the answer of a GET: the first object, or nothing if the kernel ended otherwise.
fn get_step(
    out: &mut Option<RouteNetlinkMessage>,
    m: NetlinkMessage<RouteNetlinkMessage>,
) -> NlResult<bool> {
    match m.payload {
        NetlinkPayload::InnerMessage(inner) => {
            *out = Some(inner);
            Ok(true)
        }
        NetlinkPayload::Error(_) | NetlinkPayload::Done(_) => Ok(true),
        _ => Ok(false),
    }
}

/// How many times a dump flagged NLM_F_DUMP_INTR is tried before giving up.
const DUMP_ATTEMPTS: usize = 3;

/// The kernel flags a part of a dump (or its NLMSG_DONE) when the table changed under it: the
/// list may miss or repeat entries.
fn dump_interrupted(m: &NetlinkMessage<RouteNetlinkMessage>) -> bool {
    m.header.flags & NLM_F_DUMP_INTR != 0
}

/// Collects a dump until NLMSG_DONE.
fn dump_step(
    out: &mut Vec<RouteNetlinkMessage>,
    m: NetlinkMessage<RouteNetlinkMessage>,
) -> NlResult<bool> {
    match m.payload {
        NetlinkPayload::InnerMessage(inner) => {
            out.push(inner);
            Ok(false)
        }
        NetlinkPayload::Done(_) => Ok(true),
        // An ack in the middle of a dump means the kernel treated it as a plain request.
        NetlinkPayload::Error(_) => Ok(true),
        _ => Ok(false),
    }
}

/// ENODEV/ENOENT on a GET mean "no such object", which is an answer, not a failure.
fn get_result(
    r: NlResult<()>,
    out: Option<RouteNetlinkMessage>,
) -> NlResult<Option<RouteNetlinkMessage>> {
    match r {
        Ok(()) => Ok(out),
        Err(e) if e.errno == libc::ENODEV || e.errno == libc::ENOENT => Ok(None),
        Err(e) => Err(e),
    }
}

impl Netlink {
    /// Opens a socket in the calling thread's current network namespace.
    pub fn open() -> NlResult<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(|e| NlError::from_io(&e))?;
        socket
            .bind(&SocketAddr::new(0, 0))
            .map_err(|e| NlError::from_io(&e))?;
        // Kernel text in errors, and only the header echoed back in acks.
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        // The kernel validates GET/dump headers and filters dumps by them, instead of silently
        // ignoring fields it does not expect (kernels before 4.20 lack it: best effort).
        let _ = socket.set_netlink_get_strict_chk(true);
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(|e| NlError::from_io(&e))?;
        // The port the kernel gave us on bind: every answer to us carries it.
        let mut addr = SocketAddr::new(0, 0);
        socket
            .get_address(&mut addr)
            .map_err(|e| NlError::from_io(&e))?;
        Ok(Netlink {
            socket,
            seq: 0,
            port: addr.port_number(),
            buf: vec![0; RECV_BUF],
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Changes how long each receive waits for the kernel (default [`DEFAULT_TIMEOUT`]).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// How long each receive waits for the kernel.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn send(&mut self, msg: RouteNetlinkMessage, flags: u16) -> NlResult<u32> {
        self.seq = self.seq.wrapping_add(1);
        if self.seq == 0 {
            self.seq = 1; // 0 is what unsolicited messages carry
        }
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        packet.finalize();
        let mut out = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut out);
        self.socket
            .send(&out, 0)
            .map_err(|e| NlError::from_io(&e))?;
        Ok(self.seq)
    }

    /// Waits (at most the timeout) until the socket is readable.
    fn wait_readable(&self) -> NlResult<()> {
        use std::os::fd::AsRawFd;
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // Round up: a 0 ms poll for a sub-millisecond rest would spin instead of wait.
            let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
            let mut pfd = libc::pollfd {
                fd: self.socket.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call.
            let r = unsafe { libc::poll(&mut pfd, 1, ms) };
            if r > 0 {
                return Ok(());
            }
            if r == 0 {
                return Err(NlError {
                    errno: libc::ETIMEDOUT,
                    ext_ack: Some(format!(
                        "no answer from the kernel within {:.1} s",
                        self.timeout.as_secs_f64()
                    )),
                });
            }
            // A signal: wait again for what is left (0 ms left makes the next poll time out).
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(NlError::from_io(&e));
            }
        }
    }

    /// Receives datagrams until `f` says it is done; `f` sees each message of our sequence.
    fn recv_loop(
        &mut self,
        seq: u32,
        mut f: impl FnMut(NetlinkMessage<RouteNetlinkMessage>) -> NlResult<bool>,
    ) -> NlResult<()> {
        let want = Expect {
            port: self.port,
            seq,
        };
        loop {
            self.wait_readable()?;
            // MSG_TRUNC: the real length of a datagram larger than the buffer, so it is
            // reported as truncated instead of being parsed in part.
            let (n, from) = self
                .socket
                .recv_from(&mut &mut self.buf[..], libc::MSG_TRUNC)
                .map_err(|e| NlError::from_io(&e))?;
            if n > self.buf.len() {
                return Err(bad_message(format!(
                    "truncated netlink message: a {n}-byte answer does not fit the {}-byte \
                     receive buffer",
                    self.buf.len()
                )));
            }
            if handle_datagram(&self.buf[..n], from.multicast_groups() != 0, want, &mut f)? {
                return Ok(());
            }
        }
    }

    /// Sends a change and waits for the kernel's acknowledgement.
    pub fn request(&mut self, msg: RouteNetlinkMessage, flags: u16) -> NlResult<()> {
        WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let seq = self.send(msg, flags | NLM_F_ACK)?;
        self.recv_loop(seq, |m| Ok(ack_done(&m)))?;
        crate::testhook::change_done();
        Ok(())
    }

    /// Sends a GET for one object; `Ok(None)` when the kernel says it does not exist.
    pub fn get(&mut self, msg: RouteNetlinkMessage) -> NlResult<Option<RouteNetlinkMessage>> {
        let seq = self.send(msg, 0)?;
        let mut out = None;
        let r = self.recv_loop(seq, |m| get_step(&mut out, m));
        get_result(r, out)
    }

    /// Dumps a table (links, addresses, routes) to NLMSG_DONE.
    /// A dump the kernel flags as interrupted (the table changed while it was read, e.g. by a
    /// parallel attach) is read again, a few times at most.
    pub fn dump(&mut self, msg: RouteNetlinkMessage) -> NlResult<Vec<RouteNetlinkMessage>> {
        for _ in 0..DUMP_ATTEMPTS {
            let seq = self.send(msg.clone(), NLM_F_DUMP)?;
            let mut out = Vec::new();
            let mut interrupted = false;
            self.recv_loop(seq, |m| {
                interrupted |= dump_interrupted(&m);
                dump_step(&mut out, m)
            })?;
            if !interrupted {
                return Ok(out);
            }
        }
        Err(NlError {
            errno: libc::EINTR,
            ext_ack: Some(format!(
                "the kernel's dump was interrupted by concurrent changes {DUMP_ATTEMPTS} times in a row"
            )),
        })
    }

    /// Joins multicast groups (RTMGRP_* bit numbers as in RTNLGRP_*) for event watching.
    pub fn subscribe(&mut self, group: u32) -> NlResult<()> {
        self.socket
            .add_membership(group)
            .map_err(|e| NlError::from_io(&e))
    }

    /// Receives any messages (events) with a timeout; returns an empty list on timeout.
    pub fn recv_events(
        &mut self,
        timeout: std::time::Duration,
    ) -> NlResult<Vec<RouteNetlinkMessage>> {
        use std::os::fd::AsRawFd;
        let mut pfd = libc::pollfd {
            fd: self.socket.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd for the duration of the call.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(Vec::new());
            }
            return Err(NlError::from_io(&e));
        }
        if r == 0 {
            return Ok(Vec::new());
        }
        let n = self
            .socket
            .recv(&mut &mut self.buf[..], 0)
            .map_err(|e| NlError::from_io(&e))?;
        Ok(parse_events(&self.buf[..n]))
    }
}

/// The messages of one event datagram; a truncated tail or a message this crate cannot decode
/// is skipped (an event is a hint, never acted on blindly). Pure, so it can be fuzzed.
pub fn parse_events(data: &[u8]) -> Vec<RouteNetlinkMessage> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + NLMSG_HDRLEN <= data.len() {
        let len = u32_at(data, off) as usize;
        if len < NLMSG_HDRLEN || len > data.len() - off {
            break;
        }
        if let Ok(m) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[off..off + len]) {
            if let NetlinkPayload::InnerMessage(inner) = m.payload {
                out.push(inner);
            }
        }
        off += (len + 3) & !3;
    }
    out
}

/// Extracts NLMSGERR_ATTR_MSG from an NLMSG_ERROR or NLMSG_DONE carrying NLM_F_ACK_TLVS.
/// Layouts: NLMSG_ERROR is nlmsghdr | error code (4) | echoed request (its header only with
/// cap_ack) | TLVs; NLMSG_DONE is nlmsghdr | error code (4) | TLVs.
fn parse_ext_ack(raw: &[u8]) -> Option<String> {
    let kind = u16::from_ne_bytes(raw.get(4..6)?.try_into().ok()?);
    let flags = u16::from_ne_bytes(raw.get(6..8)?.try_into().ok()?);
    if flags & netlink_packet_core::NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let mut off = NLMSG_HDRLEN + 4;
    if kind == NLMSG_ERROR {
        if flags & netlink_packet_core::NLM_F_CAPPED != 0 {
            off += NLMSG_HDRLEN;
        } else {
            let echoed = u32::from_ne_bytes(raw.get(off..off + 4)?.try_into().ok()?) as usize;
            off += (echoed + 3) & !3;
        }
    }
    while off + 4 <= raw.len() {
        let nla_len = u16::from_ne_bytes(raw[off..off + 2].try_into().ok()?) as usize;
        let nla_type = u16::from_ne_bytes(raw[off + 2..off + 4].try_into().ok()?) & 0x3fff;
        if nla_len < 4 || off + nla_len > raw.len() {
            return None;
        }
        if nla_type == NLMSGERR_ATTR_MSG {
            let s = &raw[off + 4..off + nla_len];
            let s = s.split(|b| *b == 0).next().unwrap_or(s);
            return Some(String::from_utf8_lossy(s).into_owned());
        }
        off += (nla_len + 3) & !3;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const PORT: u32 = 4242;

    /// One raw netlink message: header (len, type, flags, seq, port) and body, padded to 4.
    fn raw(kind: u16, flags: u16, seq: u32, port: u32, body: &[u8]) -> Vec<u8> {
        let len = NLMSG_HDRLEN + body.len();
        let mut b = Vec::new();
        b.extend_from_slice(&(len as u32).to_ne_bytes());
        b.extend_from_slice(&kind.to_ne_bytes());
        b.extend_from_slice(&flags.to_ne_bytes());
        b.extend_from_slice(&seq.to_ne_bytes());
        b.extend_from_slice(&port.to_ne_bytes());
        b.extend_from_slice(body);
        while b.len() % 4 != 0 {
            b.push(0);
        }
        b
    }

    /// A well-formed message of the route family, as the kernel would send it.
    fn inner(msg: RouteNetlinkMessage, seq: u32, port: u32) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.sequence_number = seq;
        header.port_number = port;
        let mut p = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        p.finalize();
        let mut out = vec![0; p.buffer_len()];
        p.serialize(&mut out);
        out
    }

    /// NLMSG_ERROR with `code` (0: an ack), capped: the echoed request header only.
    fn error(code: i32, seq: u32, port: u32, ext_ack: Option<&str>) -> Vec<u8> {
        let mut body = code.to_ne_bytes().to_vec();
        body.extend_from_slice(&[0u8; 16]);
        let mut flags = netlink_packet_core::NLM_F_CAPPED;
        if let Some(text) = ext_ack {
            flags |= netlink_packet_core::NLM_F_ACK_TLVS;
            let mut t = text.as_bytes().to_vec();
            t.push(0);
            body.extend_from_slice(&((4 + t.len()) as u16).to_ne_bytes());
            body.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
            body.extend_from_slice(&t);
            while body.len() % 4 != 0 {
                body.push(0);
            }
        }
        raw(NLMSG_ERROR, flags, seq, port, &body)
    }

    fn done(code: i32, seq: u32, port: u32) -> Vec<u8> {
        raw(
            3,
            netlink_packet_core::NLM_F_MULTIPART,
            seq,
            port,
            &code.to_ne_bytes(),
        )
    }

    fn want(seq: u32) -> Expect {
        Expect { port: PORT, seq }
    }

    /// Feeds datagrams to the request loop's rules as `request` would; returns the outcome
    /// and how many messages reached the step function.
    fn run_request(datagrams: &[Vec<u8>], seq: u32) -> (NlResult<bool>, usize) {
        let mut seen = 0;
        let mut step = |m: NetlinkMessage<RouteNetlinkMessage>| {
            seen += 1;
            Ok(ack_done(&m))
        };
        for d in datagrams {
            match handle_datagram(d, false, want(seq), &mut step) {
                Ok(false) => continue,
                other => return (other, seen),
            }
        }
        (Ok(false), seen)
    }

    #[test]
    fn ack_completes_a_request() {
        let (r, seen) = run_request(&[error(0, 7, PORT, None)], 7);
        assert_eq!(r, Ok(true));
        assert_eq!(seen, 1);
    }

    #[test]
    fn kernel_error_carries_errno_and_ext_ack_text() {
        let d = error(
            -libc::EINVAL,
            7,
            PORT,
            Some("mtu greater than device maximum"),
        );
        let (r, _) = run_request(&[d], 7);
        assert_eq!(
            r,
            Err(NlError {
                errno: libc::EINVAL,
                ext_ack: Some("mtu greater than device maximum".into()),
            })
        );
        let (r, _) = run_request(&[error(-libc::EEXIST, 7, PORT, None)], 7);
        assert_eq!(r.unwrap_err().errno, libc::EEXIST);
    }

    #[test]
    fn undecodable_answer_of_our_request_is_an_error() {
        // RTM_NEWLINK whose body is shorter than an ifinfomsg.
        let d = raw(16, 0, 7, PORT, &[0u8; 4]);
        let (r, seen) = run_request(&[d], 7);
        let e = r.unwrap_err();
        assert_eq!(e.errno, libc::EBADMSG);
        let text = e.ext_ack.unwrap();
        assert!(
            text.contains("cannot parse") && text.contains("RTM_NEWLINK"),
            "{text}"
        );
        assert_eq!(seen, 0);
    }

    #[test]
    fn stale_answer_of_an_earlier_request_is_skipped() {
        // The late ack of request 6 (which timed out), then ours, in one datagram.
        let mut d = error(0, 6, PORT, None);
        d.extend(error(0, 7, PORT, None));
        let (r, seen) = run_request(&[d], 7);
        assert_eq!(r, Ok(true));
        assert_eq!(seen, 1, "the stale ack must not complete the request");
        // Stale across the wrap of the sequence counter.
        let (r, _) = run_request(
            &[error(0, u32::MAX, PORT, None), error(0, 1, PORT, None)],
            1,
        );
        assert_eq!(r, Ok(true));
    }

    #[test]
    fn answer_from_the_future_or_another_port_is_an_error() {
        let (r, _) = run_request(&[error(0, 8, PORT, None)], 7);
        let e = r.unwrap_err();
        assert_eq!(e.errno, libc::EPROTO);
        assert!(e.ext_ack.unwrap().contains("seq 8"));
        let (r, _) = run_request(&[error(0, 7, PORT + 1, None)], 7);
        assert_eq!(r.unwrap_err().errno, libc::EPROTO);
        // An older sequence from another port is not ours either.
        let (r, _) = run_request(&[error(0, 3, 99, None)], 7);
        assert_eq!(r.unwrap_err().errno, libc::EPROTO);
    }

    #[test]
    fn multicast_events_are_not_answers() {
        let event = inner(msg::get_link_by_index(3), 912, 77);
        let mut step = |_m: NetlinkMessage<RouteNetlinkMessage>| -> NlResult<bool> {
            panic!("an event reached the request")
        };
        assert_eq!(handle_datagram(&event, true, want(7), &mut step), Ok(false));
    }

    #[test]
    fn truncated_messages_are_errors() {
        let mut d = error(0, 7, PORT, None);
        d.truncate(d.len() - 4); // header says more than arrived
        let (r, _) = run_request(&[d], 7);
        assert_eq!(r.unwrap_err().errno, libc::EBADMSG);
        let mut d = error(0, 6, PORT, None);
        d.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]); // a partial header after a message
        let (r, _) = run_request(&[d], 7);
        assert_eq!(r.unwrap_err().errno, libc::EBADMSG);
        let d = raw(2, 0, 7, PORT, &[]);
        let mut short = d.clone();
        short[0..4].copy_from_slice(&8u32.to_ne_bytes()); // shorter than a header
        let (r, _) = run_request(&[short], 7);
        assert_eq!(r.unwrap_err().errno, libc::EBADMSG);
    }

    /// Found by fuzzing (fuzz/, target netlink): NLMSG_DONE with code i32::MIN overflowed the
    /// negation (a panic in a debug build, a negative errno in a release one).
    #[test]
    fn a_code_that_is_no_errno_is_a_protocol_error() {
        for d in [
            done(i32::MIN, 7, PORT),
            error(i32::MIN, 7, PORT, None),
            error(5, 7, PORT, None),
        ] {
            let e = handle_datagram(&d, false, want(7), &mut |_| Ok(true)).unwrap_err();
            assert_eq!(e.errno, libc::EPROTO);
        }
        let e = handle_datagram(&done(-libc::EEXIST, 7, PORT), false, want(7), &mut |_| {
            Ok(true)
        })
        .unwrap_err();
        assert_eq!(e.errno, libc::EEXIST);
    }

    #[test]
    fn dump_collects_every_part_to_done() {
        let mut first = inner(msg::get_link_by_index(1), 9, PORT);
        first.extend(inner(msg::get_link_by_index(2), 9, PORT));
        let second = [inner(msg::get_link_by_index(3), 9, PORT), done(0, 9, PORT)].concat();
        let mut out = Vec::new();
        let mut step = |m| dump_step(&mut out, m);
        assert_eq!(
            handle_datagram(&first, false, want(9), &mut step),
            Ok(false)
        );
        assert_eq!(
            handle_datagram(&second, false, want(9), &mut step),
            Ok(true)
        );
        let idx: Vec<u32> = out
            .iter()
            .map(|m| match m {
                RouteNetlinkMessage::GetLink(l) => l.header.index,
                _ => 0,
            })
            .collect();
        assert_eq!(idx, vec![1, 2, 3]);
    }

    #[test]
    fn interrupted_dump_is_noticed() {
        let d = [
            inner(msg::get_link_by_index(1), 9, PORT),
            raw(
                3,
                NLM_F_DUMP_INTR | netlink_packet_core::NLM_F_MULTIPART,
                9,
                PORT,
                &0i32.to_ne_bytes(),
            ),
        ]
        .concat();
        let mut out = Vec::new();
        let mut interrupted = false;
        let mut step = |m: NetlinkMessage<RouteNetlinkMessage>| {
            interrupted |= dump_interrupted(&m);
            dump_step(&mut out, m)
        };
        assert_eq!(handle_datagram(&d, false, want(9), &mut step), Ok(true));
        assert!(interrupted);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn dump_ending_in_an_error_is_the_error() {
        let d = done(-libc::EMSGSIZE, 9, PORT);
        let mut out = Vec::new();
        let mut step = |m| dump_step(&mut out, m);
        let e = handle_datagram(&d, false, want(9), &mut step).unwrap_err();
        assert_eq!(e.errno, libc::EMSGSIZE);
    }

    #[test]
    fn get_of_a_missing_object_is_none() {
        let mut out = None;
        let mut step = |m| get_step(&mut out, m);
        let r = handle_datagram(
            &error(-libc::ENODEV, 4, PORT, None),
            false,
            want(4),
            &mut step,
        );
        assert_eq!(get_result(r.map(|_| ()), out), Ok(None));
        let mut out = None;
        let mut step = |m| get_step(&mut out, m);
        let d = inner(msg::get_link_by_index(5), 4, PORT);
        assert_eq!(handle_datagram(&d, false, want(4), &mut step), Ok(true));
        assert!(matches!(
            get_result(Ok(()), out),
            Ok(Some(RouteNetlinkMessage::GetLink(_)))
        ));
    }

    #[test]
    fn sequence_order_wraps() {
        assert!(seq_before(6, 7));
        assert!(!seq_before(7, 7));
        assert!(!seq_before(8, 7));
        assert!(seq_before(u32::MAX, 1));
    }

    /// Runs `f` on a thread inside a fresh network namespace (empty but for lo), or not at
    /// all where this process may not create one: the machine's own interfaces are never
    /// touched.
    fn in_fresh_netns(f: impl FnOnce() + Send + 'static) {
        let r = std::thread::spawn(move || {
            if nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).is_err() {
                return;
            }
            f()
        })
        .join();
        if let Err(p) = r {
            std::panic::resume_unwind(p);
        }
    }

    #[test]
    fn real_socket_requests_gets_dumps_and_errors() {
        use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
        use netlink_packet_route::link::LinkAttribute;
        in_fresh_netns(|| {
            let mut nl = Netlink::open().unwrap();
            assert_ne!(nl.port, 0);
            // A bridge: this kernel has no dummy module.
            let d = msg::new_bridge("d0", None);
            nl.request(d.clone(), NLM_F_CREATE | NLM_F_EXCL).unwrap();
            let e = nl.request(d, NLM_F_CREATE | NLM_F_EXCL).unwrap_err();
            assert_eq!(e.errno, libc::EEXIST);
            let l = nl.get(msg::get_link_by_name("d0")).unwrap().unwrap();
            let RouteNetlinkMessage::NewLink(l) = l else {
                panic!("{l:?}")
            };
            assert!(nl.get(msg::get_link_by_name("nope")).unwrap().is_none());
            nl.request(msg::set_link_up(l.header.index), 0).unwrap();
            let bad = {
                let mut m = netlink_packet_route::link::LinkMessage::default();
                m.header.index = l.header.index;
                m.attributes.push(LinkAttribute::Mtu(1_000_000));
                RouteNetlinkMessage::SetLink(m)
            };
            let e = nl.request(bad, 0).unwrap_err();
            assert_eq!(e.errno, libc::EINVAL);
            assert!(e.ext_ack.is_some(), "the kernel's text is kept: {e:?}");
            nl.request(
                msg::new_address(l.header.index, "10.1.2.3".parse().unwrap(), 24, None),
                NLM_F_CREATE | NLM_F_EXCL,
            )
            .unwrap();
            assert_eq!(nl.dump(msg::dump_links()).unwrap().len(), 2);
            assert!(!nl.dump(msg::dump_addresses()).unwrap().is_empty());
            let routes = nl
                .dump(msg::dump_routes(netlink_packet_route::AddressFamily::Inet))
                .unwrap();
            assert!(!routes.is_empty());
        });
    }

    /// Every link kind the engine creates decodes on this kernel: an undecodable answer is an
    /// error now, so a dump must never meet one in practice.
    #[test]
    fn real_dump_of_every_kind_decodes() {
        use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
        in_fresh_netns(|| {
            let mut nl = Netlink::open().unwrap();
            let here = std::fs::File::open("/proc/thread-self/ns/net").unwrap();
            let fd = std::os::fd::AsRawFd::as_raw_fd(&here);
            let flags = NLM_F_CREATE | NLM_F_EXCL;
            nl.request(msg::new_bridge("br0", None), flags).unwrap();
            let RouteNetlinkMessage::NewLink(br) =
                nl.get(msg::get_link_by_name("br0")).unwrap().unwrap()
            else {
                panic!()
            };
            let peer = msg::PeerSpec {
                name: "eth1".into(),
                mtu: 1500,
                mac: None,
                netns_fd: fd,
            };
            nl.request(
                msg::new_veth("v0", 1500, Some(br.header.index), &peer),
                flags,
            )
            .unwrap();
            let RouteNetlinkMessage::NewLink(eth1) =
                nl.get(msg::get_link_by_name("eth1")).unwrap().unwrap()
            else {
                panic!()
            };
            let parent = eth1.header.index;
            // Optional modules: a kernel without them answers EOPNOTSUPP; skip those kinds.
            let _ = nl.request(msg::new_vlan("eth1.5", parent, 5, None), flags);
            let dm = msg::GuestLinkKind::Dummy;
            let _ = nl.request(msg::new_link_in_guest(&dm, "d0", None, None, fd), flags);
            let mv = msg::GuestLinkKind::Macvlan {
                parent,
                mode: netlink_packet_route::link::MacVlanMode::Bridge,
            };
            nl.request(msg::new_link_in_guest(&mv, "mv0", None, None, fd), flags)
                .unwrap();
            let links = nl.dump(msg::dump_links()).unwrap();
            // lo, br0, v0, eth1, mv0 (+ the optional ones)
            assert!(links.len() >= 5, "{}", links.len());
        });
    }

    /// A subscribed socket (wait, bridge port readiness) finds events queued before the
    /// answer to its GET: they are skipped, not taken for a mismatched answer.
    #[test]
    fn real_subscribed_socket_skips_events_queued_before_an_answer() {
        use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
        in_fresh_netns(|| {
            let mut watcher = Netlink::open().unwrap();
            watcher.subscribe(RTNLGRP_LINK).unwrap();
            let mut changer = Netlink::open().unwrap();
            changer
                .request(msg::new_bridge("br0", None), NLM_F_CREATE | NLM_F_EXCL)
                .unwrap();
            let lo = watcher.get(msg::get_link_by_index(1)).unwrap().unwrap();
            let RouteNetlinkMessage::NewLink(lo) = lo else {
                panic!()
            };
            assert_eq!(msg::link_name(&lo), Some("lo"));
        });
    }

    /// Kernel facts the fake models: RTM_NEWLINK with IFLA_NET_NS_FD looks its IFLA_IFNAME up
    /// in the *target* namespace, not the sender's: a sender's link of the same name does not
    /// clash, the target's does (EEXIST), and without NLM_F_EXCL the request does not touch
    /// the target's link.
    #[test]
    fn real_newlink_into_another_namespace_checks_names_there() {
        use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
        use netlink_packet_route::link::LinkAttribute;
        in_fresh_netns(|| {
            let other = std::thread::spawn(|| {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                let nl = Netlink::open().unwrap();
                (std::fs::File::open("/proc/thread-self/ns/net").unwrap(), nl)
            })
            .join()
            .unwrap();
            let (other, mut there) = other;
            let fd = std::os::fd::AsRawFd::as_raw_fd(&other);
            let mut nl = Netlink::open().unwrap();
            let flags = NLM_F_CREATE | NLM_F_EXCL;
            let veth_into_other = |name: &str, peer: &str| {
                let peer = msg::PeerSpec {
                    name: peer.into(),
                    mtu: 1500,
                    mac: None,
                    netns_fd: fd,
                };
                let RouteNetlinkMessage::NewLink(mut m) = msg::new_veth(name, 1500, None, &peer)
                else {
                    unreachable!()
                };
                m.attributes.push(LinkAttribute::NetNsFd(fd));
                RouteNetlinkMessage::NewLink(m)
            };
            nl.request(msg::new_bridge("x", None), flags).unwrap();
            nl.request(veth_into_other("x", "y"), flags).unwrap();
            assert!(there.get(msg::get_link_by_name("x")).unwrap().is_some());
            let e = nl.request(veth_into_other("x", "z"), flags).unwrap_err();
            assert_eq!(e.errno, libc::EEXIST);
            // Found there, so taken for a change of it, which cannot change a veth's data.
            let e = nl
                .request(veth_into_other("x", "z"), NLM_F_CREATE)
                .unwrap_err();
            assert_eq!(e.errno, libc::EOPNOTSUPP);
            assert_eq!(there.dump(msg::dump_links()).unwrap().len(), 3); // lo, x, y
        });
    }

    /// The kernel's answers (6.18) that `fake::World` reproduces, as one scenario run against
    /// both (here on the real kernel, in `fake::tests` on the fake): if the kernel changes,
    /// the fake must follow. `nl` works in the namespace `here_fd` names; `there` in `fd`.
    pub(super) fn kernel_facts(nl: &mut dyn Rtnl, there: &mut dyn Rtnl, here_fd: i32, fd: i32) {
        use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
        use netlink_packet_route::link::{
            InfoData, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
        };
        use netlink_packet_route::AddressFamily;
        let c = NLM_F_CREATE | NLM_F_EXCL;
        let cr = NLM_F_CREATE | NLM_F_REPLACE;
        let errno = |r: NlResult<()>| r.err().map(|e| e.errno).unwrap_or(0);
        let set_group = |m: &mut LinkMessage, group: u32| {
            m.attributes
                .retain(|a| !matches!(a, LinkAttribute::Group(_)));
            m.attributes.push(LinkAttribute::Group(group));
        };
        let idx = |nl: &mut dyn Rtnl, n: &str| match nl.get(msg::get_link_by_name(n)) {
            Ok(Some(RouteNetlinkMessage::NewLink(l))) => l.header.index,
            other => panic!("{n}: {other:?}"),
        };
        let set = |i: u32, a: LinkAttribute| {
            let mut m = LinkMessage::default();
            m.header.index = i;
            m.attributes.push(a);
            RouteNetlinkMessage::SetLink(m)
        };
        let peer = msg::PeerSpec {
            name: "a1".into(),
            mtu: 1500,
            mac: None,
            netns_fd: here_fd,
        };
        // IFF_UP on the peer in the creating message: ENOTCONN.
        let RouteNetlinkMessage::NewLink(mut up_peer) = msg::new_veth("a0", 1500, None, &peer)
        else {
            unreachable!()
        };
        for a in &mut up_peer.attributes {
            if let LinkAttribute::LinkInfo(infos) = a {
                for i in infos {
                    if let LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))) = i {
                        p.header.flags = LinkFlags::Up;
                        p.header.change_mask = LinkFlags::Up;
                    }
                }
            }
        }
        let up_peer = RouteNetlinkMessage::NewLink(up_peer);
        assert_eq!(errno(nl.request(up_peer, c)), libc::ENOTCONN);
        nl.request(msg::new_veth("a0", 1500, None, &peer), c)
            .unwrap();
        let (a0, a1) = (idx(nl, "a0"), idx(nl, "a1"));
        assert!(a1 < a0, "the peer is registered first");
        let ip: std::net::IpAddr = "10.0.0.2".parse().unwrap();
        nl.request(msg::new_address(a1, ip, 24, None), c).unwrap();
        // Routes over a down link: no gateway is reachable, no device route allowed.
        let gw_in = "10.0.0.1".parse().unwrap();
        let gw_out = "10.9.0.1".parse().unwrap();
        assert_eq!(
            errno(nl.request(msg::new_default_route(gw_in, a1), cr)),
            libc::ENETUNREACH
        );
        let host_route = msg::new_host_route("10.7.7.7".parse().unwrap(), a1);
        assert_eq!(errno(nl.request(host_route, c)), libc::ENETDOWN);
        nl.request(msg::set_link_up(a1), 0).unwrap();
        assert_eq!(
            errno(nl.request(msg::new_default_route(gw_out, a1), cr)),
            libc::ENETUNREACH
        );
        nl.request(msg::new_default_route(gw_in, a1), cr).unwrap();
        // Addresses: a duplicate is EEXIST even without NLM_F_EXCL; a missing one
        // EADDRNOTAVAIL.
        assert_eq!(
            errno(nl.request(msg::new_address(a1, ip, 24, None), NLM_F_CREATE)),
            libc::EEXIST
        );
        let gone = msg::del_address(a1, "10.0.0.9".parse().unwrap(), 24);
        assert_eq!(errno(nl.request(gone, 0)), libc::EADDRNOTAVAIL);
        // Down flushes the link's routes (main table) and its IPv6 addresses, not IPv4's.
        nl.request(
            msg::new_address(a1, "fd00::2".parse().unwrap(), 64, None),
            c,
        )
        .unwrap();
        nl.request(msg::set_link_down(a1), 0).unwrap();
        let main_routes = nl
            .dump(msg::dump_routes(AddressFamily::Inet))
            .unwrap()
            .into_iter()
            .filter(|r| matches!(r, RouteNetlinkMessage::NewRoute(r) if msg::route_table(r) == 254))
            .count();
        assert_eq!(main_routes, 0);
        let on_a1: Vec<AddressFamily> = nl
            .dump(msg::dump_addresses())
            .unwrap()
            .into_iter()
            .filter_map(|a| match a {
                RouteNetlinkMessage::NewAddress(a) if a.header.index == a1 => Some(a.header.family),
                _ => None,
            })
            .collect();
        assert_eq!(on_a1, vec![AddressFamily::Inet]);
        // A default route: EEXIST again unless NLM_F_REPLACE; ESRCH once deleted.
        nl.request(msg::set_link_up(a1), 0).unwrap();
        nl.request(msg::new_default_route(gw_in, a1), cr).unwrap();
        let d = nl
            .dump(msg::dump_routes(AddressFamily::Inet))
            .unwrap()
            .into_iter()
            .find_map(|r| match r {
                RouteNetlinkMessage::NewRoute(r) if msg::is_main_default(&r) => Some(r),
                _ => None,
            })
            .unwrap();
        assert_eq!(
            errno(nl.request(msg::readd_route(&d), NLM_F_CREATE)),
            libc::EEXIST
        );
        nl.request(msg::del_route(&d), 0).unwrap();
        assert_eq!(errno(nl.request(msg::del_route(&d), 0)), libc::ESRCH);
        nl.request(msg::readd_route(&d), c).unwrap();
        // Links.
        nl.request(msg::new_bridge("br0", None), c).unwrap();
        let br = idx(nl, "br0");
        assert_eq!(
            errno(nl.request(msg::move_link(br, fd, "br0", None), 0)),
            libc::EINVAL
        );
        assert_eq!(errno(nl.request(msg::del_link(1), 0)), libc::EOPNOTSUPP);
        assert_eq!(
            errno(nl.request(set(a0, LinkAttribute::Mtu(70000)), 0)),
            libc::EINVAL
        );
        assert_eq!(
            errno(nl.request(set(a0, LinkAttribute::Mtu(60)), 0)),
            libc::EINVAL
        );
        assert_eq!(
            errno(nl.request(set(a0, LinkAttribute::Controller(a1)), 0)),
            libc::EOPNOTSUPP
        );
        assert_eq!(
            errno(nl.request(set(a0, LinkAttribute::Controller(999)), 0)),
            libc::EINVAL
        );
        assert_eq!(
            errno(nl.request(set(a1, LinkAttribute::Address(vec![2, 0, 0])), 0)),
            libc::EINVAL
        );
        nl.request(msg::set_link_up(a0), 0).unwrap();
        nl.request(msg::rename_link(a0, "a0r"), 0).unwrap(); // live rename is allowed
        assert_eq!(errno(nl.request(msg::set_link_up(999), 0)), libc::ENODEV);
        assert_eq!(errno(nl.request(msg::del_link(999), 0)), libc::ENODEV);
        assert_eq!(
            errno(nl.request(msg::new_address(999, ip, 24, None), c)),
            libc::ENODEV
        );
        assert_eq!(
            errno(nl.request(msg::new_host_route(ip, 999), c)),
            libc::ENODEV
        );
        assert_eq!(
            errno(nl.request(msg::new_bridge("brX", None), 0)),
            libc::ENODEV
        );
        let mut g = LinkMessage::default();
        g.attributes.push(LinkAttribute::Group(0));
        assert_eq!(
            errno(nl.request(RouteNetlinkMessage::DelLink(g), 0)),
            libc::EPERM
        );
        // A move keeps the index, arrives down, and drops the addresses.
        nl.request(
            msg::new_address(a0, "10.5.0.2".parse().unwrap(), 24, None),
            c,
        )
        .unwrap();
        nl.request(msg::move_link(a0, fd, "eth1", None), 0).unwrap();
        let Some(RouteNetlinkMessage::NewLink(l)) =
            there.get(msg::get_link_by_name("eth1")).unwrap()
        else {
            panic!("not moved")
        };
        assert_eq!(l.header.index, a0);
        assert!(!msg::link_is_up(&l));
        assert!(there.dump(msg::dump_addresses()).unwrap().is_empty());
        // A group delete takes every link of the group in that namespace, and their peers
        // wherever they are; other groups stay.
        let grouped = |name: &str, peer: &str, peer_fd: i32, group: u32| {
            let peer = msg::PeerSpec {
                name: peer.into(),
                mtu: 1500,
                mac: None,
                netns_fd: peer_fd,
            };
            let RouteNetlinkMessage::NewLink(mut m) = msg::new_veth(name, 1500, None, &peer) else {
                unreachable!()
            };
            // Both ends in `group` (the builder marks both with pipework's own group).
            set_group(&mut m, group);
            for a in m.attributes.iter_mut() {
                if let LinkAttribute::LinkInfo(infos) = a {
                    for i in infos.iter_mut() {
                        if let LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))) = i {
                            set_group(p, group);
                        }
                    }
                }
            }
            RouteNetlinkMessage::NewLink(m)
        };
        nl.request(grouped("g0", "g1", fd, 7), c).unwrap();
        nl.request(grouped("g2", "g3", here_fd, 7), c).unwrap();
        nl.request(grouped("k0", "k1", here_fd, 8), c).unwrap();
        let links_here = nl.dump(msg::dump_links()).unwrap().len();
        let links_there = there.dump(msg::dump_links()).unwrap().len();
        let mut g = LinkMessage::default();
        g.attributes.push(LinkAttribute::Group(7));
        nl.request(RouteNetlinkMessage::DelLink(g), 0).unwrap();
        assert_eq!(nl.dump(msg::dump_links()).unwrap().len(), links_here - 3);
        assert_eq!(
            there.dump(msg::dump_links()).unwrap().len(),
            links_there - 1
        );
        assert!(nl.get(msg::get_link_by_name("k1")).unwrap().is_some());
        // A macvlan created into the other namespace from a parent here: no larger MTU than
        // the parent's, and it dies with its parent.
        let mv = msg::GuestLinkKind::Macvlan {
            parent: a1,
            mode: netlink_packet_route::link::MacVlanMode::Bridge,
        };
        let big = msg::new_link_in_guest(&mv, "mv0", Some(9000), None, fd);
        assert_eq!(errno(nl.request(big, c)), libc::EINVAL);
        nl.request(msg::new_link_in_guest(&mv, "mv0", None, None, fd), c)
            .unwrap();
        assert!(there.get(msg::get_link_by_name("mv0")).unwrap().is_some());
        nl.request(msg::del_link(a1), 0).unwrap();
        assert!(there.get(msg::get_link_by_name("mv0")).unwrap().is_none());
        assert!(there.get(msg::get_link_by_name("eth1")).unwrap().is_none());
    }

    #[test]
    fn real_kernel_answers_as_the_fake_models() {
        in_fresh_netns(|| {
            let (other, mut there) = std::thread::spawn(|| {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                let nl = Netlink::open().unwrap();
                (std::fs::File::open("/proc/thread-self/ns/net").unwrap(), nl)
            })
            .join()
            .unwrap();
            let here = std::fs::File::open("/proc/thread-self/ns/net").unwrap();
            let mut nl = Netlink::open().unwrap();
            kernel_facts(
                &mut nl,
                &mut there,
                std::os::fd::AsRawFd::as_raw_fd(&here),
                std::os::fd::AsRawFd::as_raw_fd(&other),
            );
        });
    }

    #[test]
    fn real_socket_times_out_and_skips_a_stale_answer() {
        in_fresh_netns(|| {
            let mut nl = Netlink::open().unwrap();
            nl.set_timeout(Duration::from_millis(50));
            assert_eq!(nl.timeout(), Duration::from_millis(50));
            // Wait for a sequence number never sent: nothing answers it.
            let t = Instant::now();
            let e = nl.recv_loop(nl.seq + 100, |_| Ok(true)).unwrap_err();
            assert_eq!(e.errno, libc::ETIMEDOUT);
            assert!(e
                .ext_ack
                .unwrap()
                .contains("no answer from the kernel within"));
            assert!(t.elapsed() >= Duration::from_millis(50));
            // A GET whose answer nobody read (as after a timeout), then a request: the old
            // answer is skipped and the request sees its own.
            nl.send(msg::get_link_by_name("lo"), 0).unwrap();
            nl.set_timeout(DEFAULT_TIMEOUT);
            let lo = nl.get(msg::get_link_by_index(1)).unwrap().unwrap();
            let RouteNetlinkMessage::NewLink(lo) = lo else {
                panic!()
            };
            assert_eq!(msg::link_name(&lo), Some("lo"));
        });
    }

    #[test]
    fn ext_ack_message_is_extracted() {
        // nlmsghdr(len, type=2 ERROR, flags=CAPPED|ACK_TLVS) | -22 | echoed hdr | NLA(1,"bad mtu\0")
        let mut raw = Vec::new();
        let text = b"bad mtu\0";
        let nla_len = 4 + text.len();
        let total = 16 + 4 + 16 + ((nla_len + 3) & !3);
        raw.extend_from_slice(&(total as u32).to_ne_bytes());
        raw.extend_from_slice(&2u16.to_ne_bytes());
        raw.extend_from_slice(&(0x100u16 | 0x200).to_ne_bytes());
        raw.extend_from_slice(&7u32.to_ne_bytes());
        raw.extend_from_slice(&0u32.to_ne_bytes());
        raw.extend_from_slice(&(-22i32).to_ne_bytes());
        raw.extend_from_slice(&[0u8; 16]);
        raw.extend_from_slice(&(nla_len as u16).to_ne_bytes());
        raw.extend_from_slice(&1u16.to_ne_bytes());
        raw.extend_from_slice(text);
        while raw.len() < total {
            raw.push(0);
        }
        assert_eq!(parse_ext_ack(&raw).as_deref(), Some("bad mtu"));
    }

    #[test]
    fn error_display_keeps_kernel_text_and_errno() {
        let e = NlError {
            errno: libc::EEXIST,
            ext_ack: None,
        };
        assert!(e.to_string().contains("exists"), "{e}");
        let e = NlError {
            errno: libc::EINVAL,
            ext_ack: Some("mtu greater than device maximum".into()),
        };
        assert!(e
            .to_string()
            .starts_with("mtu greater than device maximum ("));
    }
}
