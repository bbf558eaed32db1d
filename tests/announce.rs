//! The attach announces the new address: a gratuitous ARP (IPv4) / unsolicited neighbour
//! advertisement (IPv6), so neighbours holding a stale entry learn the new MAC at once.
//!
//! Method (TESTENV.md, "Seeing a gratuitous ARP"): a peer on the same bridge gets a stale,
//! wrong neighbour entry for the address (`ip neigh replace ... nud stale`); after more than the
//! 1 s locktime the guest is attached; the peer's entry must then hold the guest's real MAC,
//! without the peer having sent anything. Subnets 10.218.x.x / fd00:218::.

mod common;
use common::*;

use std::time::Duration;

const WRONG_MAC: &str = "02:21:de:ad:00:01";

fn check_announce(peer_addr: &str, guest_addr: &str, v6: bool) {
    let host = Netns::new("h");
    let peer = Netns::new("p");
    let guest = Netns::new("g");
    pipework(&host, &["br1", &peer.name, peer_addr]).ok();
    let target = guest_addr.split('/').next().unwrap();
    let fam = if v6 { "-6" } else { "-4" };
    ip(
        &peer,
        &[
            fam, "neigh", "replace", target, "lladdr", WRONG_MAC, "dev", "eth1", "nud", "stale",
        ],
    );
    assert_eq!(
        neighbour(&peer, target),
        Some((WRONG_MAC.to_string(), "STALE".to_string())),
        "seeded entry"
    );
    // Past the neighbour locktime (1 s), during which updates are ignored.
    std::thread::sleep(Duration::from_millis(1200));
    let mac = "02:21:18:00:00:02";
    pipework(&host, &["br1", &guest.name, guest_addr, mac]).ok();
    let ok = wait_until(Duration::from_secs(3), || {
        neighbour(&peer, target).is_some_and(|(ll, _)| ll == mac)
    });
    assert!(
        ok,
        "no announcement reached the peer: its entry for {target} should now hold {mac}, \
         found {:?} (still the seeded {WRONG_MAC}?)",
        neighbour(&peer, target)
    );
}

#[test]
fn gratuitous_arp_updates_stale_neighbour() {
    need_root!();
    check_announce("10.218.1.3/24", "10.218.1.2/24", false);
}

#[test]
fn unsolicited_na_updates_stale_neighbour() {
    need_root!();
    check_announce("fd00:218:1::3/64", "fd00:218:1::2/64", true);
}
