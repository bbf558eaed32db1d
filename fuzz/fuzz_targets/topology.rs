//! The lab file (`topology::file::parse` and `check`, then `to_request` and every host's share of
//! a multi-host lab): any bytes are the user's input, refused with exit 2 or accepted as a lab
//! whose references all resolve, whose interfaces and addresses are each used once, and whose
//! shares flood only to other hosts, with VNIs in range.
#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;
use pipework::engine::lab::stretch::{share, Underlay};
use pipework::topology::file;

fuzz_target!(|data: &[u8]| {
    let lab = match file::parse(data).and_then(file::check) {
        Ok(l) => l,
        Err(e) => {
            assert_eq!(e.exit_code(), 2, "a bad lab file is the user's input: {e}");
            return;
        }
    };
    assert!(!lab.file.lab.is_empty() && lab.file.lab.len() <= file::MAX_LAB_NAME);
    let mut used = BTreeSet::new();
    for a in &lab.attach {
        assert!(
            lab.file.guests.contains_key(&a.guest),
            "{} is defined",
            a.guest
        );
        let ifname = a
            .request
            .guest_ifname
            .clone()
            .expect("every line gets a name");
        assert!(
            used.insert((a.guest.clone(), ifname)),
            "an interface used twice"
        );
    }
    for ends in &lab.links {
        for (g, i) in ends {
            assert!(lab.file.guests.contains_key(g));
            assert!(
                used.insert((g.clone(), i.clone())),
                "an endpoint used twice"
            );
        }
    }
    let req = match pipework::topology::to_request(&lab) {
        Ok(r) => r,
        Err(e) => {
            assert_eq!(e.exit_code(), 2, "a bad lab file is the user's input: {e}");
            return;
        }
    };
    for (h, addr) in &req.hosts {
        let mine = share(&req, h, &mut |_| {
            Ok(Underlay {
                dev: None,
                mtu: 1500,
            })
        })
        .expect("every listed host has a share");
        for s in &mine.stretch {
            assert!(!s.remotes.contains(addr), "a host floods to itself");
            assert!((1..=file::MAX_VNI).contains(&s.vni));
            assert!(s.name.len() <= 15);
        }
        for c in &mine.cross {
            assert!(mine.guests.contains_key(&c.end.guest));
            assert_ne!(c.remote, *addr);
        }
        for a in &mine.attach {
            assert!(mine.guests.contains_key(&a.guest));
        }
    }
});
