//! pipework's own DHCPv4 client: [`packet`] (encoding, and [`parse_reply`], the one decoder
//! of everything a server sends), [`machine`] (the RFC 2131 state machine, without I/O) and
//! the sockets that drive it. Replaces mozim for v4: mozim waits a random 0–200 ms before
//! its first DISCOVER and cannot be told not to, most of the time a one-shot `dhcp` took.

pub mod machine;
pub mod packet;
mod socket;

pub use machine::{Event, Machine, Phase};
pub use packet::{parse_reply, BadReply, Reply};
pub use socket::udp_payload;

use std::time::Instant;

use super::ClientParams;
use crate::error::Error;
use socket::Transport;

/// A running DHCPv4 client on one interface: the state machine and its sockets.
pub struct Client {
    machine: Machine,
    io: Transport,
    ifname: String,
    /// Listen on a packet socket too while unconfigured (see [`socket`]): rp_filter is on,
    /// or a DISCOVER or REQUEST went unanswered once (then for the client's lifetime).
    want_raw: bool,
}

fn seed() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: b is writable for 8 bytes. On failure (no entropy yet), time and PID still tell
    // clients apart.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), libc::GRND_NONBLOCK) };
    if n != 8 {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        return t ^ (u64::from(std::process::id()) << 32);
    }
    u64::from_ne_bytes(b)
}

fn io_err(p: &str, what: &str, e: std::io::Error) -> Error {
    Error::io(format!("DHCP on {p}: {what}"), e)
}

impl Client {
    /// Opens the sockets (inside the guest's namespace, on a tokio runtime); the first
    /// DISCOVER goes out on the first [`Client::next`].
    pub fn start(p: &ClientParams) -> Result<Client, Error> {
        let mac = p.mac.ok_or_else(|| {
            Error::Guest(format!(
                "DHCP on {}: the interface has no Ethernet address",
                p.ifname
            ))
        })?;
        let id = packet::Identity {
            mac: mac.0,
            hostname: p.hostname.clone(),
        };
        let io = Transport::open(&p.ifname, p.index)
            .map_err(|e| io_err(&p.ifname, "cannot open the client's sockets", e))?;
        Ok(Client {
            machine: Machine::new(id, seed(), Instant::now()),
            io,
            ifname: p.ifname.clone(),
            want_raw: socket::rp_filter_on(&p.ifname),
        })
    }

    pub fn lease(&self) -> Option<&super::Lease> {
        self.machine.lease()
    }

    /// Sends what the machine queued, after opening or closing the packet socket for the
    /// phase it is in (opened before the DISCOVER goes out: the OFFER is back within 1 ms).
    fn flush(&mut self) -> Result<(), Error> {
        self.want_raw |= self.machine.retransmitting();
        let raw = self.want_raw
            && matches!(
                self.machine.phase(),
                Phase::Init | Phase::Selecting | Phase::Requesting
            );
        self.io
            .set_raw(raw)
            .map_err(|e| io_err(&self.ifname, "cannot open a packet socket", e))?;
        for o in self.machine.take_outgoing() {
            // A lost packet is retransmitted on the machine's timer; a send error (no route
            // to the server yet) is one more reason to.
            let _ = self.io.send(o.to, &o.packet);
        }
        Ok(())
    }

    /// Runs until the next event. Cancel-safe (the supervisor selects on it): all state is
    /// in the machine, sends happen before the only await, timers are absolute.
    pub async fn next(&mut self) -> Result<Event, Error> {
        // Due now (the first DISCOVER): without a round through the runtime's timer.
        let mut ev = self.machine.on_timer(Instant::now());
        loop {
            self.flush()?;
            if let Some(ev) = ev {
                return Ok(ev);
            }
            let deadline = self.machine.deadline();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            ev = tokio::select! {
                r = self.io.recv() => {
                    let bytes = r.map_err(|e| io_err(&self.ifname, "cannot receive", e))?;
                    self.machine.on_packet(bytes, Instant::now())
                }
                _ = sleep => self.machine.on_timer(Instant::now()),
            };
        }
    }

    /// Sends DHCPRELEASE for the lease held, if any.
    pub fn release(&mut self) -> Result<(), Error> {
        self.machine.release();
        self.flush()
    }

    /// Starts over from INIT (after a lost lease).
    pub fn reset(&mut self) {
        self.machine.reset(Instant::now());
    }
}
