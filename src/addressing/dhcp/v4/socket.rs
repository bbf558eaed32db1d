//! The client's sockets, inside the guest's namespace.
//!
//! Sending: a UDP socket on 0.0.0.0:68 bound to the interface (SO_BINDTODEVICE), with
//! SO_BROADCAST: the kernel builds the IP and UDP headers, from 0.0.0.0 while there is no
//! address, and routes unicast to the server once there is.
//! Receiving: that socket, and while unconfigured, when needed, an AF_PACKET socket on the
//! interface filtered to UDP port 68. Before the address exists, the kernel drops a broadcast
//! OFFER for the UDP socket when the interface has `rp_filter` on (measured: strict rp_filter
//! in the guest, no OFFER on the UDP socket), and a server that ignores the broadcast flag
//! unicasts to the offered address; the packet socket sees both. It is not opened by default
//! because closing one costs an RCU grace period (synchronize_net in packet_release: 8.5 ms
//! measured here, a quarter of a whole attach): only with rp_filter on, or once a DISCOVER
//! went unanswered.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::machine::Dest;
use super::packet::{CLIENT_PORT, SERVER_PORT};

const ETH_P_IP: u16 = 0x0800;
/// Enough for any DHCP message on an Ethernet (and jumbo frames).
const RECV_BUF: usize = 9216;

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn setsockopt<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, v: &T) -> io::Result<()> {
    // SAFETY: v points to a live T of the size given.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// bind(2) to a socket address of type T (sockaddr_in, sockaddr_ll).
fn bind<T>(fd: &OwnedFd, addr: &T) -> io::Result<()> {
    // SAFETY: addr is a live socket address of its size.
    check(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (addr as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

fn sockaddr_in(ip: Ipv4Addr, port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    }
}

fn socket(domain: libc::c_int, kind: libc::c_int, proto: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket() returns a new fd or -1.
    let fd = check(unsafe {
        libc::socket(
            domain,
            kind | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            proto,
        )
    })?;
    // SAFETY: fd is fresh and ours.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn udp_socket(ifname: &str) -> io::Result<OwnedFd> {
    let fd = socket(libc::AF_INET, libc::SOCK_DGRAM, 0)?;
    let one: libc::c_int = 1;
    // Another client (an external one, or a supervisor being replaced) may hold port 68 on
    // another interface of the guest.
    setsockopt(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, &one)?;
    setsockopt(&fd, libc::SOL_SOCKET, libc::SO_BROADCAST, &one)?;
    let mut name = [0u8; libc::IFNAMSIZ];
    let n = ifname.len().min(libc::IFNAMSIZ - 1);
    name[..n].copy_from_slice(&ifname.as_bytes()[..n]);
    setsockopt(&fd, libc::SOL_SOCKET, libc::SO_BINDTODEVICE, &name)?;
    bind(&fd, &sockaddr_in(Ipv4Addr::UNSPECIFIED, CLIENT_PORT))?;
    Ok(fd)
}

/// Classic BPF on the IP header (SOCK_DGRAM packet sockets start there): UDP, not a later
/// fragment, destination port 68. Jump offsets count from the next instruction.
fn port68_filter() -> [libc::sock_filter; 9] {
    let op = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    [
        op(libc::BPF_LD | libc::BPF_B | libc::BPF_ABS, 0, 0, 9),
        op(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            0,
            6,
            libc::IPPROTO_UDP as u32,
        ),
        op(libc::BPF_LD | libc::BPF_H | libc::BPF_ABS, 0, 0, 6),
        op(libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K, 4, 0, 0x1fff),
        op(libc::BPF_LDX | libc::BPF_B | libc::BPF_MSH, 0, 0, 0),
        op(libc::BPF_LD | libc::BPF_H | libc::BPF_IND, 0, 0, 2),
        op(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            0,
            1,
            CLIENT_PORT as u32,
        ),
        op(libc::BPF_RET | libc::BPF_K, 0, 0, RECV_BUF as u32),
        op(libc::BPF_RET | libc::BPF_K, 0, 0, 0),
    ]
}

fn packet_socket(index: u32) -> io::Result<OwnedFd> {
    let proto = ETH_P_IP.to_be();
    let fd = socket(libc::AF_PACKET, libc::SOCK_DGRAM, proto as libc::c_int)?;
    let mut prog = port68_filter();
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    setsockopt(&fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)?;
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = index as libc::c_int;
    bind(&fd, &sll)?;
    Ok(fd)
}

/// The UDP payload of an IPv4 packet to port 68, bounds-checked (the filter already chose UDP
/// to port 68, but the bytes are still the network's).
pub fn udp_payload(ip: &[u8]) -> Option<&[u8]> {
    payload_range(ip).map(|r| &ip[r])
}

fn payload_range(ip: &[u8]) -> Option<std::ops::Range<usize>> {
    let (&vihl, _) = ip.split_first()?;
    let ihl = usize::from(vihl & 0x0f) * 4;
    if vihl >> 4 != 4 || ihl < 20 || ip.len() < ihl + 8 || ip[9] != libc::IPPROTO_UDP as u8 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
    let udp = ip.get(ihl..total)?;
    if udp.len() < 8 || u16::from_be_bytes([udp[2], udp[3]]) != CLIENT_PORT {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([udp[4], udp[5]])).clamp(8, udp.len());
    Some(ihl + 8..ihl + len)
}

fn recv(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is writable for its length.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Whether reverse-path filtering applies to `ifname` (the larger of `all` and the
/// interface's own setting counts); unreadable counts as on. Read from a thread inside the
/// guest's namespace: /proc/sys/net shows the reader's namespace.
pub fn rp_filter_on(ifname: &str) -> bool {
    let read = |key: &str| {
        std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{key}/rp_filter"))
            .ok()
            .and_then(|v| v.trim().parse::<u8>().ok())
    };
    match (read("all"), read(ifname)) {
        (Some(a), Some(i)) => a.max(i) != 0,
        _ => true,
    }
}

pub struct Transport {
    udp: AsyncFd<OwnedFd>,
    raw: Option<AsyncFd<OwnedFd>>,
    index: u32,
    buf: Vec<u8>,
}

/// Registers a socket we own with the runtime.
fn register(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the OwnedFd moves into the AsyncFd, which alone uses and closes it.
    unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.map_err(|e| e.into())
}

impl Transport {
    /// Opens the UDP socket (and the packet socket). Call inside the guest's namespace, from
    /// a tokio runtime.
    pub fn open(ifname: &str, index: u32) -> io::Result<Transport> {
        Ok(Transport {
            udp: register(udp_socket(ifname)?)?,
            raw: None,
            index,
            buf: vec![0; RECV_BUF],
        })
    }

    /// Opens the packet socket (`yes`) or closes it.
    pub fn set_raw(&mut self, yes: bool) -> io::Result<()> {
        match (yes, self.raw.is_some()) {
            (true, false) => self.raw = Some(register(packet_socket(self.index)?)?),
            (false, true) => self.raw = None,
            _ => {}
        }
        Ok(())
    }

    /// Sends without waiting: a full send buffer loses the packet, which the retransmission
    /// timers cover. Not waiting keeps [`Transport::recv`] the only await (cancel-safe).
    pub fn send(&self, to: Dest, packet: &[u8]) -> io::Result<()> {
        let ip = match to {
            Dest::Broadcast => Ipv4Addr::BROADCAST,
            Dest::Unicast(a) => a,
        };
        let sin = sockaddr_in(ip, SERVER_PORT);
        // SAFETY: packet and sin are valid for their lengths.
        let n = unsafe {
            libc::sendto(
                self.udp.get_ref().as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                libc::MSG_DONTWAIT,
                (&sin as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The next DHCP payload from either socket. Cancel-safe: nothing is consumed until a
    /// datagram is returned.
    pub async fn recv(&mut self) -> io::Result<&[u8]> {
        loop {
            let raw = async {
                match &self.raw {
                    Some(r) => r.readable().await,
                    None => std::future::pending().await,
                }
            };
            let (from_raw, mut guard) = tokio::select! {
                g = self.udp.readable() => (false, g?),
                g = raw => (true, g?),
            };
            let fd = guard.get_inner();
            match recv(fd, &mut self.buf) {
                Ok(n) if !from_raw => return Ok(&self.buf[..n]),
                Ok(n) => {
                    if let Some(r) = payload_range(&self.buf[..n]) {
                        return Ok(&self.buf[r]);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => guard.clear_ready(),
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip_udp(dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 255, 255, 255, 255,
        ];
        let total = (20 + 8 + payload.len()) as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&67u16.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn udp_payload_is_bounds_checked() {
        let p = ip_udp(68, b"hello");
        assert_eq!(udp_payload(&p), Some(&b"hello"[..]));
        assert_eq!(udp_payload(&ip_udp(69, b"x")), None);
        for n in 0..p.len() {
            let _ = udp_payload(&p[..n]);
        }
        // UDP length larger than the packet: cut at the packet; IHL of 15 words: too short.
        let mut q = p.clone();
        q[24..26].copy_from_slice(&500u16.to_be_bytes());
        assert_eq!(udp_payload(&q), Some(&b"hello"[..]));
        let mut q = p.clone();
        q[0] = 0x4f;
        assert_eq!(udp_payload(&q), None);
        let mut q = p;
        q[24..26].copy_from_slice(&3u16.to_be_bytes());
        assert_eq!(udp_payload(&q), Some(&b""[..]));
    }
}
