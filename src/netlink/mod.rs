//! A small synchronous rtnetlink client: one socket per network namespace, request/ack with
//! sequence checks, dumps to NLMSG_DONE, and the kernel's extended-ack text kept in errors.
//!
//! Synchronous on purpose: an attach is ~10 dependent requests; an async runtime buys nothing
//! and costs start-up time and memory (see shared/NETLINK-NOTES.md).

pub mod msg;

use std::fmt;
use std::io;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

const RECV_BUF: usize = 64 * 1024;
/// RTNLGRP_LINK: the multicast group of link events.
pub const RTNLGRP_LINK: u32 = 1;
/// NLMSGERR_ATTR_MSG: the human-readable extended-ack string.
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLMSG_HDRLEN: usize = 16;

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

/// A route-netlink socket bound to the network namespace it was opened in, for life.
pub struct Netlink {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
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
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(|e| NlError::from_io(&e))?;
        Ok(Netlink {
            socket,
            seq: 0,
            buf: vec![0; RECV_BUF],
        })
    }

    fn send(&mut self, msg: RouteNetlinkMessage, flags: u16) -> NlResult<u32> {
        self.seq = self.seq.wrapping_add(1);
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

    /// Receives datagrams until `f` says it is done; `f` sees each message of our sequence.
    fn recv_loop(
        &mut self,
        seq: u32,
        mut f: impl FnMut(NetlinkMessage<RouteNetlinkMessage>) -> NlResult<bool>,
    ) -> NlResult<()> {
        loop {
            let n = self
                .socket
                .recv(&mut &mut self.buf[..], 0)
                .map_err(|e| NlError::from_io(&e))?;
            let mut off = 0;
            while off + NLMSG_HDRLEN <= n {
                let len = u32::from_ne_bytes(self.buf[off..off + 4].try_into().unwrap()) as usize;
                if len < NLMSG_HDRLEN || off + len > n {
                    return Err(NlError {
                        errno: libc::EBADMSG,
                        ext_ack: Some("truncated netlink message".into()),
                    });
                }
                let raw = &self.buf[off..off + len];
                off += (len + 3) & !3;
                let msg_seq = u32::from_ne_bytes(raw[8..12].try_into().unwrap());
                if msg_seq != seq {
                    continue; // a stale answer to an earlier request
                }
                let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(raw);
                let msg = match parsed {
                    Ok(m) => m,
                    Err(_) => {
                        // A message this crate cannot parse (e.g. a newer attribute layout):
                        // skip it rather than fail a whole dump.
                        continue;
                    }
                };
                if let NetlinkPayload::Error(ref e) = msg.payload {
                    if let Some(code) = e.code {
                        return Err(NlError {
                            errno: -code.get(),
                            ext_ack: parse_ext_ack(raw),
                        });
                    }
                }
                if f(msg)? {
                    return Ok(());
                }
            }
        }
    }

    /// Sends a change and waits for the kernel's acknowledgement.
    pub fn request(&mut self, msg: RouteNetlinkMessage, flags: u16) -> NlResult<()> {
        let seq = self.send(msg, flags | NLM_F_ACK)?;
        self.recv_loop(seq, |m| {
            Ok(matches!(m.payload, NetlinkPayload::Error(ref e) if e.code.is_none()))
        })
    }

    /// Sends a GET for one object; `Ok(None)` when the kernel says it does not exist.
    pub fn get(&mut self, msg: RouteNetlinkMessage) -> NlResult<Option<RouteNetlinkMessage>> {
        let seq = self.send(msg, 0)?;
        let mut out = None;
        let r = self.recv_loop(seq, |m| match m.payload {
            NetlinkPayload::InnerMessage(inner) => {
                out = Some(inner);
                Ok(true)
            }
            NetlinkPayload::Error(_) | NetlinkPayload::Done(_) => Ok(true),
            _ => Ok(false),
        });
        match r {
            Ok(()) => Ok(out),
            Err(e) if e.errno == libc::ENODEV || e.errno == libc::ENOENT => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Dumps a table (links, addresses, routes) to NLMSG_DONE.
    pub fn dump(&mut self, msg: RouteNetlinkMessage) -> NlResult<Vec<RouteNetlinkMessage>> {
        let seq = self.send(msg, NLM_F_DUMP)?;
        let mut out = Vec::new();
        self.recv_loop(seq, |m| match m.payload {
            NetlinkPayload::InnerMessage(inner) => {
                out.push(inner);
                Ok(false)
            }
            NetlinkPayload::Done(_) => Ok(true),
            _ => Ok(false),
        })?;
        Ok(out)
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
        let mut out = Vec::new();
        let mut off = 0;
        while off + NLMSG_HDRLEN <= n {
            let len = u32::from_ne_bytes(self.buf[off..off + 4].try_into().unwrap()) as usize;
            if len < NLMSG_HDRLEN || off + len > n {
                break;
            }
            if let Ok(m) =
                NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[off..off + len])
            {
                if let NetlinkPayload::InnerMessage(inner) = m.payload {
                    out.push(inner);
                }
            }
            off += (len + 3) & !3;
        }
        Ok(out)
    }
}

/// Extracts NLMSGERR_ATTR_MSG from an NLMSG_ERROR carrying NLM_F_ACK_TLVS.
/// Layout (cap_ack on): nlmsghdr | error code (4) | echoed nlmsghdr (16) | TLVs.
fn parse_ext_ack(raw: &[u8]) -> Option<String> {
    let flags = u16::from_ne_bytes(raw[6..8].try_into().ok()?);
    if flags & netlink_packet_core::NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let mut off = NLMSG_HDRLEN + 4;
    if flags & netlink_packet_core::NLM_F_CAPPED != 0 {
        off += NLMSG_HDRLEN;
    } else {
        let echoed = u32::from_ne_bytes(raw.get(off..off + 4)?.try_into().ok()?) as usize;
        off += echoed;
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
