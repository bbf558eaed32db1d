//! `--direct-phys` in apply: moving a NIC into the guest (back: `phys::return_to_host`). A
//! wireless NIC moves with its phy (by `iw`).

use super::{link_index, Env};
use crate::driver::phys;
use crate::error::Error;
use crate::netlink::msg;
use crate::plan::{NicState, Side};

pub(super) fn move_to_guest(
    env: &mut Env<'_>,
    nic: &NicState,
    guest: &str,
    mtu: Option<u32>,
) -> Result<(), Error> {
    let index = link_index(env.host, &nic.name, Side::Host)?;
    let Some(phy) = &nic.phy else {
        return env
            .host
            .request(msg::move_link(index, env.guest_ns.raw_fd(), guest, mtu), 0)
            .map_err(|e| {
                Error::netlink(
                    format!("cannot move {} into the guest as {guest}", nic.name),
                    e,
                )
            });
    };
    // Wireless: the phy moves (with its interfaces, names unchanged), then the rename.
    phys::run_iw(&phys::iw_move_args(phy, env.guest_ns.raw_fd()), None)?;
    let i = link_index(env.guest, &nic.name, Side::Guest)?;
    env.guest
        .request(msg::rename_link(i, guest), 0)
        .map_err(|e| {
            Error::netlink(
                format!("cannot rename {} to {guest} in the guest", nic.name),
                e,
            )
        })
}
