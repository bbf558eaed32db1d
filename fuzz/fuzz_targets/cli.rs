//! The command line: argv as the binary gets it (NUL-separated OsStrings, not necessarily
//! UTF-8) through `cli::parse_argv`, the path `pipework` itself takes, and each word as an
//! attachment spec (`grammar::parse_attach_spec`, what watch's labels and rules use).
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use libfuzzer_sys::fuzz_target;
use pipework::grammar::{parse_attach_spec, Invocation};
use pipework::guest::GuestSpec;
use pipework::naming::MAX_IFNAME;
use pipework::request::{AttachRequest, Command, Target};

fuzz_target!(|data: &[u8]| {
    let raw: Vec<OsString> = std::iter::once(OsString::from("pipework"))
        .chain(
            data.split(|b| *b == 0)
                .map(|w| OsString::from_vec(w.to_vec())),
        )
        .collect();
    let utf8 = raw.iter().all(|a| a.to_str().is_some());
    match pipework::cli::parse_argv(&raw) {
        Ok(Invocation::Run(cmd, _)) => {
            assert!(utf8, "a non-UTF-8 argv was accepted");
            check_command(&cmd);
        }
        Ok(Invocation::Print(text)) => assert!(!text.is_empty()),
        Err(e) => {
            // Every refusal is the user's input: exit status 2, never "internal".
            assert_eq!(e.exit_code(), 2, "argv {raw:?}: {e:?}");
        }
    }
    // The same words as one attachment spec, as a label or a rules file gives it.
    let text = String::from_utf8_lossy(data).replace('\0', " ");
    if let Ok(req) = parse_attach_spec(&text, GuestSpec::Docker("c0ffee".into())) {
        check_attach(&req);
        assert_eq!(req.guest, GuestSpec::Docker("c0ffee".into()));
    }
});

fn check_ifname(name: &str) {
    assert!(
        !name.is_empty() && name.len() <= MAX_IFNAME,
        "interface name {name:?} accepted"
    );
    pipework::naming::validate_ifname(name, "fuzz").expect("an accepted name validates");
}

fn check_guest(g: &GuestSpec) {
    // A guest spec's text form reads back as the same spec (records and reports store it).
    let again = GuestSpec::parse(&g.to_string()).expect("a spec's own text parses");
    assert_eq!(&again, g);
}

fn check_attach(req: &AttachRequest) {
    req.validate().expect("an accepted request validates");
    for n in [&req.guest_ifname, &req.host_ifname].into_iter().flatten() {
        check_ifname(n);
    }
    if let pipework::request::HostIfSpec::Name(n) = &req.host_if {
        check_ifname(n);
    }
    if let Some(mtu) = req.mtu {
        assert!((68..=65535).contains(&mtu));
    }
}

fn check_command(cmd: &Command) {
    match cmd {
        Command::Attach(req) => {
            check_attach(req);
            check_guest(&req.guest);
        }
        Command::Exec(e) => {
            check_guest(&e.guest);
            assert!(!e.args.is_empty());
        }
        Command::Wait(w) => check_ifname(&w.ifname),
        Command::Detach(t) | Command::Check(t) => {
            if let Target::Guest {
                ifname: Some(n), ..
            } = t
            {
                check_ifname(n);
            }
        }
        _ => {}
    }
}
