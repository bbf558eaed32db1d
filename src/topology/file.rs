//! The lab file (YAML; JSON is YAML too): its model, the parse (errors with line:column and, for
//! a key it does not know, the close one), and the checks that need no system state. Pure: the
//! fuzz target and the unit tests drive it from bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;

use crate::error::Error;
use crate::mac::MacAddr;
use crate::request::{Addressing, AttachRequest};

/// A lab file is a few KiB; more is not a lab file.
pub const MAX_FILE: usize = 4 << 20;
/// The kernel's limit of ports on one Linux bridge (BR_MAX_PORTS).
pub const MAX_BRIDGE_PORTS: usize = 1024;
/// Lab names tag everything the lab makes (link names, OVS external-ids): short.
pub const MAX_LAB_NAME: usize = 12;
pub use crate::lab::MAX_VNI;
/// Host names: a few words, as hostnames go.
pub const MAX_HOST_NAME: usize = 32;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabFile {
    pub lab: String,
    /// The lab's machines and their underlay addresses (IPv4 or IPv6).
    #[serde(default)]
    pub hosts: BTreeMap<String, IpAddr>,
    #[serde(default)]
    pub guests: BTreeMap<String, GuestDef>,
    #[serde(default)]
    pub bridges: BTreeMap<String, BridgeDef>,
    /// Each line is pipework's own command line without "pipework"; its guest is a key of
    /// `guests`.
    #[serde(default)]
    pub attach: Vec<String>,
    #[serde(default)]
    pub links: Vec<LinkDef>,
    /// Extra routes per guest, `ip route`'s syntax: `DST via GW [dev IF] [metric N]`.
    #[serde(default)]
    pub routes: BTreeMap<String, Vec<String>>,
}

/// A guest: any pipework guest spec, a PID, or a named namespace the lab makes; the map forms
/// may say which host it is on.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum GuestDef {
    Pid(u32),
    Spec(String),
    Netns(NetnsDef),
    Placed(PlacedDef),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetnsDef {
    pub netns: String,
    #[serde(default)]
    pub host: Option<String>,
}

/// `{spec: docker:web1, host: a}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacedDef {
    pub spec: SpecOrPid,
    #[serde(default)]
    pub host: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum SpecOrPid {
    Pid(u32),
    Spec(String),
}

impl GuestDef {
    /// The host it is on (none: every host has its own).
    pub fn host(&self) -> Option<&str> {
        match self {
            GuestDef::Netns(n) => n.host.as_deref(),
            GuestDef::Placed(p) => p.host.as_deref(),
            GuestDef::Pid(_) | GuestDef::Spec(_) => None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeDef {
    pub mtu: Option<u32>,
    #[serde(default)]
    pub ovs: bool,
    pub datapath: Option<String>,
    /// Must exist already: joined, never changed or deleted.
    #[serde(default)]
    pub external: bool,
    /// The VXLAN network identifier when its members span hosts (default: derived).
    pub vni: Option<u32>,
    /// The VXLAN UDP port (default 4789).
    pub port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkDef {
    /// `guest:ifname`, two of them.
    pub endpoints: Vec<String>,
    #[serde(default)]
    pub ipv4: Vec<IpNet>,
    #[serde(default)]
    pub ipv6: Vec<IpNet>,
    pub mtu: Option<u32>,
    /// tbf on both ends (`10mbit`).
    pub rate: Option<String>,
    /// netem on both ends (`delay 20ms loss 0.1%`).
    pub netem: Option<String>,
}

fn bad(msg: String) -> Error {
    Error::Invalid(msg)
}

/// The known key closest to an unknown one, if it is close enough to be a typo.
pub fn close_key<'a>(unknown: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(unknown, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// serde's "unknown field `x`, expected `a`, `b`…", with the close key suggested.
fn with_suggestion(msg: &str) -> String {
    let names: Vec<&str> = msg.split('`').skip(1).step_by(2).collect();
    match names.split_first() {
        Some((unknown, known)) if msg.contains("unknown field `") => {
            match close_key(unknown, known) {
                Some(k) => format!("{msg} (did you mean `{k}`?)"),
                None => msg.to_string(),
            }
        }
        _ => msg.to_string(),
    }
}

/// Parses the file (YAML or JSON): errors say the line and column.
pub fn parse(bytes: &[u8]) -> Result<LabFile, Error> {
    if bytes.len() > MAX_FILE {
        return Err(bad(format!(
            "the lab file is {} bytes: at most {MAX_FILE}",
            bytes.len()
        )));
    }
    let text =
        std::str::from_utf8(bytes).map_err(|e| bad(format!("the lab file is not UTF-8: {e}")))?;
    serde_yaml_ng::from_str::<LabFile>(text).map_err(|e| {
        let msg = e.to_string();
        // serde_yaml_ng appends " at line L column C"; the suggestion goes before it.
        let (head, at) = match msg.rfind(" at line ") {
            Some(i) => msg.split_at(i),
            None => (msg.as_str(), ""),
        };
        let head = with_suggestion(head);
        match e.location() {
            Some(l) if at.is_empty() => bad(format!(
                "lab file, line {} column {}: {head}",
                l.line(),
                l.column()
            )),
            _ => bad(format!("lab file: {head}{at}")),
        }
    })
}

/// One attach line, parsed with the CLI's grammar.
#[derive(Debug, Clone, PartialEq)]
pub struct AttachLine {
    pub line: usize,
    /// The guest's key in `guests`.
    pub guest: String,
    pub request: AttachRequest,
}

/// The file, checked: every reference resolves, nothing is used twice.
#[derive(Debug, Clone, PartialEq)]
pub struct Lab {
    pub file: LabFile,
    pub attach: Vec<AttachLine>,
    /// Per link: both endpoints as (guest, ifname).
    pub links: Vec<[(String, String); 2]>,
}

fn endpoint(s: &str, i: usize) -> Result<(String, String), Error> {
    let (g, ifname) = s.split_once(':').ok_or_else(|| {
        bad(format!(
            "links[{i}]: endpoint '{s}' must be GUEST:IFNAME (e.g. r1:eth1)"
        ))
    })?;
    crate::naming::validate_ifname(ifname, &format!("links[{i}] endpoint {s}"))?;
    Ok((g.to_string(), ifname.to_string()))
}

/// The checks that need no system state (a guest that is not running is the apply's).
pub fn check(file: LabFile) -> Result<Lab, Error> {
    let lab = &file.lab;
    if lab.is_empty()
        || lab.len() > MAX_LAB_NAME
        || !lab
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(bad(format!(
            "lab name '{lab}' must be 1 to {MAX_LAB_NAME} of a-z, 0-9 and -"
        )));
    }
    let defined = |g: &str, what: String| -> Result<(), Error> {
        if file.guests.contains_key(g) {
            return Ok(());
        }
        let keys: Vec<&str> = file.guests.keys().map(String::as_str).collect();
        let hint = close_key(g, &keys)
            .map(|k| format!(" (did you mean '{k}'?)"))
            .unwrap_or_default();
        Err(bad(format!(
            "{what}: guest '{g}' is not defined under guests{hint}"
        )))
    };
    for (k, g) in &file.guests {
        if let GuestDef::Netns(n) = g {
            crate::naming::validate_ifname(&n.netns, &format!("guests.{k}.netns")).map_err(
                |_| {
                    bad(format!(
                        "guests.{k}.netns '{}' is not a valid namespace name",
                        n.netns
                    ))
                },
            )?;
        }
    }
    check_hosts(&file)?;
    let mut used: BTreeSet<(String, String)> = BTreeSet::new();
    let mut addresses: BTreeMap<IpAddr, String> = BTreeMap::new();
    let mut take_addr = |a: &IpNet, who: String| -> Result<(), Error> {
        if let Some(first) = addresses.insert(a.addr(), who.clone()) {
            return Err(bad(format!(
                "address {} is given twice: {first} and {who}",
                a.addr()
            )));
        }
        Ok(())
    };
    let mut ports: BTreeMap<String, usize> = BTreeMap::new();
    // Names given explicitly (links, `-i`) come first; a line without `-i` gets its guest's
    // first free ethN from eth1 on, so a link's r1:eth1 and `br2 r1 dhcp` can live together.
    let mut named: BTreeSet<(String, String)> = BTreeSet::new();
    for l in &file.links {
        for e in &l.endpoints {
            if let Some((g, i)) = e.split_once(':') {
                named.insert((g.to_string(), i.to_string()));
            }
        }
    }
    let mut attach = Vec::new();
    let mut parsed = Vec::new();
    for (i, line) in file.attach.iter().enumerate() {
        let what = format!("attach[{i}] '{line}'");
        let mut argv = vec!["pipework".to_string()];
        argv.extend(line.split_whitespace().map(String::from));
        let req = match crate::grammar::parse(&argv) {
            Ok(crate::grammar::Invocation::Run(c, _)) => match *c {
                crate::request::Command::Attach(r) => *r,
                _ => return Err(bad(format!("{what}: not an attach line"))),
            },
            Ok(_) => return Err(bad(format!("{what}: not an attach line"))),
            Err(e) => return Err(bad(format!("{what}: {e}"))),
        };
        let guest = req.guest.to_string();
        defined(&guest, what.clone())?;
        if let Some(n) = &req.guest_ifname {
            named.insert((guest.clone(), n.clone()));
        }
        parsed.push((i, what, guest, req));
    }
    for (i, what, guest, mut req) in parsed {
        let ifname = match &req.guest_ifname {
            Some(n) => n.clone(),
            None => {
                let free = (1..)
                    .map(|n| format!("eth{n}"))
                    .find(|n| {
                        !named.contains(&(guest.clone(), n.clone()))
                            && !used.contains(&(guest.clone(), n.clone()))
                    })
                    .expect("a free name");
                req.guest_ifname = Some(free.clone());
                free
            }
        };
        if !used.insert((guest.clone(), ifname.clone())) {
            return Err(bad(format!(
                "{what}: {guest}:{ifname} is used twice (pick another interface with -i)"
            )));
        }
        if let Addressing::Static { address, .. } = &req.addressing {
            take_addr(address, what.clone())?;
        }
        if let crate::request::HostIfSpec::Name(b) = &req.host_if {
            *ports.entry(b.clone()).or_default() += 1;
        }
        attach.push(AttachLine {
            line: i,
            guest,
            request: req,
        });
    }
    let mut links = Vec::new();
    for (i, l) in file.links.iter().enumerate() {
        let [a, b] = l.endpoints.as_slice() else {
            return Err(bad(format!(
                "links[{i}]: endpoints must be two GUEST:IFNAME, got {}",
                l.endpoints.len()
            )));
        };
        let ends = [endpoint(a, i)?, endpoint(b, i)?];
        for (g, ifname) in &ends {
            defined(g, format!("links[{i}]"))?;
            if !used.insert((g.clone(), ifname.clone())) {
                return Err(bad(format!("links[{i}]: {g}:{ifname} is used twice")));
            }
        }
        for (fam, list) in [("ipv4", &l.ipv4), ("ipv6", &l.ipv6)] {
            if !list.is_empty() && list.len() != 2 {
                return Err(bad(format!(
                    "links[{i}].{fam}: give one address per endpoint (2), got {}",
                    list.len()
                )));
            }
            for (n, a) in list.iter().enumerate() {
                if a.addr().is_ipv4() != (fam == "ipv4") {
                    return Err(bad(format!(
                        "links[{i}].{fam}: {a} is not an {fam} address"
                    )));
                }
                take_addr(a, format!("links[{i}] {}", l.endpoints[n]))?;
            }
        }
        links.push(ends);
    }
    for g in file.routes.keys() {
        defined(g, "routes".into())?;
    }
    for (b, n) in &ports {
        if *n > MAX_BRIDGE_PORTS {
            return Err(bad(format!(
                "bridge {b} would get {n} ports: a Linux bridge takes at most {MAX_BRIDGE_PORTS}; \
                 spread the guests over more bridges"
            )));
        }
    }
    Ok(Lab {
        file,
        attach,
        links,
    })
}

/// Hosts, guests' placement and bridges' VXLAN settings.
fn check_hosts(file: &LabFile) -> Result<(), Error> {
    let mut by_addr: BTreeMap<IpAddr, &str> = BTreeMap::new();
    for (h, a) in &file.hosts {
        if h.is_empty()
            || h.len() > MAX_HOST_NAME
            || !h
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(bad(format!(
                "hosts.{h}: a host name is 1 to {MAX_HOST_NAME} of a-z, A-Z, 0-9, '-', '_' and '.'"
            )));
        }
        if a.is_unspecified() || a.is_multicast() {
            return Err(bad(format!(
                "hosts.{h}: {a} is not a host's underlay address (give its unicast IP)"
            )));
        }
        if let Some(other) = by_addr.insert(*a, h) {
            return Err(bad(format!(
                "hosts.{h}: {a} is also host {other}'s address"
            )));
        }
    }
    let families: BTreeSet<bool> = file.hosts.values().map(IpAddr::is_ipv6).collect();
    if families.len() > 1 {
        return Err(bad(
            "hosts: give every host an address of one family (all IPv4 or all IPv6): a VXLAN \
             tunnel's two ends are of one family"
                .into(),
        ));
    }
    let names: Vec<&str> = file.hosts.keys().map(String::as_str).collect();
    for (k, g) in &file.guests {
        let Some(h) = g.host() else { continue };
        if file.hosts.contains_key(h) {
            continue;
        }
        if file.hosts.is_empty() {
            return Err(bad(format!(
                "guests.{k}.host: '{h}', but the file has no hosts: list the lab's machines \
                 under hosts (name: underlay address)"
            )));
        }
        let hint = close_key(h, &names)
            .map(|c| format!(" (did you mean '{c}'?)"))
            .unwrap_or_default();
        return Err(bad(format!(
            "guests.{k}.host: host '{h}' is not defined under hosts{hint}"
        )));
    }
    let mut vnis: BTreeMap<u32, &str> = BTreeMap::new();
    for (b, d) in &file.bridges {
        if d.ovs && (d.vni.is_some() || d.port.is_some()) {
            return Err(bad(format!(
                "bridges.{b}: vni and port stretch Linux bridges; an Open vSwitch bridge is \
                 not stretched (drop ovs: true, or drop vni/port)"
            )));
        }
        if let Some(v) = d.vni {
            if !(1..=MAX_VNI).contains(&v) {
                return Err(bad(format!("bridges.{b}.vni: give 1 to {MAX_VNI}")));
            }
            if let Some(other) = vnis.insert(v, b) {
                return Err(bad(format!(
                    "bridges.{b}.vni: {v} is also bridge {other}'s (each stretched bridge is a \
                     network of its own)"
                )));
            }
        }
        if d.port == Some(0) {
            return Err(bad(format!("bridges.{b}.port: give 1 to 65535")));
        }
    }
    Ok(())
}

/// The stable MAC of an interface the lab makes: the same lab, guest and interface, the same
/// MAC, so re-applies and restarts keep MACs and DHCP leases.
pub fn stable_mac(lab: &str, guest: &str, ifname: &str) -> MacAddr {
    MacAddr::hashed(&format!("{lab}/{guest}/{ifname}"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The issue's example lab (graph's tests draw it too).
    pub(crate) const EXAMPLE: &str = r#"
lab: demo
guests:
  web1: docker:web1
  db: lxc:db
  app: 4242
  r1: {netns: r1}
  r2: {netns: r2}
bridges:
  br1: {}
  br2: {mtu: 9000}
  ovs0: {ovs: true, datapath: netdev}
  lan0: {external: true}
attach:
  - br1 web1 10.0.0.5/24@10.0.0.1
  - br1 -i eth2 app 10.0.0.6/24 U:app
  - ovs0 db 10.0.4.2/24 @10
  - br2 r1 dhcp
links:
  - endpoints: [r1:eth1, r2:eth1]
    ipv4: [10.9.0.1/30, 10.9.0.2/30]
    mtu: 9000
    rate: 10mbit
    netem: "delay 20ms loss 0.1%"
routes:
  r1: ["10.1.0.0/16 via 10.9.0.2"]
"#;

    fn err(text: &str) -> String {
        match parse(text.as_bytes()).and_then(check) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_issue_example_parses_and_checks() {
        let lab = check(parse(EXAMPLE.as_bytes()).unwrap()).unwrap();
        assert_eq!(lab.file.lab, "demo");
        assert_eq!(lab.file.guests["app"], GuestDef::Pid(4242));
        assert_eq!(
            lab.file.guests["r1"],
            GuestDef::Netns(NetnsDef {
                netns: "r1".into(),
                host: None
            })
        );
        assert!(lab.file.bridges["lan0"].external);
        assert_eq!(lab.attach.len(), 4);
        assert_eq!(lab.attach[1].guest, "app");
        assert_eq!(lab.attach[1].request.guest_ifname.as_deref(), Some("eth2"));
        assert_eq!(lab.links[0][1], ("r2".to_string(), "eth1".to_string()));
        // r1's eth1 is the link's: its attach line without -i gets the next free name.
        assert_eq!(lab.attach[3].request.guest_ifname.as_deref(), Some("eth2"));
        assert_eq!(lab.attach[0].request.guest_ifname.as_deref(), Some("eth1"));
        // JSON is YAML too.
        let json =
            r#"{"lab": "j1", "guests": {"a": {"netns": "a"}}, "attach": ["br1 a 10.1.1.1/24"]}"#;
        assert_eq!(
            check(parse(json.as_bytes()).unwrap()).unwrap().attach.len(),
            1
        );
    }

    #[test]
    fn unknown_keys_are_named_with_the_close_one_and_where() {
        let e = err("lab: x\ngusts: {}\n");
        assert!(e.contains("unknown field `gusts`"), "{e}");
        assert!(e.contains("did you mean `guests`"), "{e}");
        assert!(e.contains("line 2"), "{e}");
        let e = err("lab: x\nlinks:\n  - endpoint: [a:e1, b:e1]\n");
        assert!(e.contains("did you mean `endpoints`"), "{e}");
        let e = err("lab: x\nbridges:\n  br1: {mut: 1500}\n");
        assert!(e.contains("did you mean `mtu`"), "{e}");
    }

    #[test]
    fn yaml_errors_say_line_and_column() {
        let e = err("lab: x\nguests: [unclosed\n");
        assert!(e.contains("line") && e.contains("column"), "{e}");
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        for (text, needle) in [
            ("lab: Demo\n", "lab name"),
            ("lab: waytoolongname\n", "lab name"),
            ("lab: x\nattach: [br1 ghost 10.0.0.1/24]\n", "guest 'ghost' is not defined"),
            (
                "lab: x\nguests: {web1: docker:web1}\nattach: [br1 web 10.0.0.1/24]\n",
                "did you mean 'web1'",
            ),
            (
                "lab: x\nguests: {a: 1}\nattach: [br1 -i eth1 a 10.0.0.1/24, br2 -i eth1 a 10.0.1.1/24]\n",
                "a:eth1 is used twice",
            ),
            (
                "lab: x\nguests: {a: 1, b: 2}\nattach: [br1 a 10.0.0.1/24, br1 b 10.0.0.1/24]\n",
                "address 10.0.0.1 is given twice",
            ),
            (
                "lab: x\nguests: {a: 1, b: 2}\nlinks: [{endpoints: [a:eth1, b:eth1]}]\nattach: [br1 -i eth1 a 10.0.0.1/24]\n",
                "a:eth1 is used twice",
            ),
            ("lab: x\nguests: {a: 1}\nlinks: [{endpoints: [a:eth1]}]\n", "endpoints must be two"),
            ("lab: x\nguests: {a: 1, b: 2}\nlinks: [{endpoints: [a, b:eth1]}]\n", "GUEST:IFNAME"),
            (
                "lab: x\nguests: {a: 1, b: 2}\nlinks: [{endpoints: [a:e1, b:e1], ipv4: [10.0.0.1/30]}]\n",
                "one address per endpoint",
            ),
            ("lab: x\nroutes: {nobody: [\"10.0.0.0/8 via 10.9.0.1\"]}\n", "not defined"),
            ("lab: x\nguests: {a: 1}\nattach: [br1 a 10.0.0.1]\n", "netmask"),
        ] {
            let e = err(text);
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn more_than_1024_ports_on_one_bridge_is_refused() {
        let mut text = String::from("lab: big\nguests:\n");
        for i in 0..1025 {
            text.push_str(&format!("  g{i}: {{netns: g{i}}}\n"));
        }
        text.push_str("attach:\n");
        for i in 0..1025 {
            text.push_str(&format!("  - br1 g{i} 10.{}.{}.1/8\n", i / 250, i % 250));
        }
        let e = err(&text);
        assert!(e.contains("at most 1024"), "{e}");
    }

    #[test]
    fn hosts_placement_and_vnis_are_checked() {
        let ok = "lab: s\nhosts: {a: 192.0.2.10, b: 192.0.2.20}\nguests:\n  w: {spec: docker:w, host: a}\n  p: {spec: 4242, host: b}\n  r: {netns: r, host: b}\n  any: {netns: any}\nbridges: {br1: {vni: 42, port: 8472}}\n";
        let lab = check(parse(ok.as_bytes()).unwrap()).unwrap();
        assert_eq!(lab.file.guests["w"].host(), Some("a"));
        assert_eq!(lab.file.guests["r"].host(), Some("b"));
        assert_eq!(lab.file.guests["any"].host(), None);
        assert_eq!(
            lab.file.guests["p"],
            GuestDef::Placed(PlacedDef {
                spec: SpecOrPid::Pid(4242),
                host: Some("b".into())
            })
        );
        assert_eq!(lab.file.bridges["br1"].vni, Some(42));
        for (text, needle) in [
            (
                "lab: s\nhosts: {a: 192.0.2.10}\nguests: {w: {netns: w, host: aa}}\n",
                "host 'aa' is not defined under hosts (did you mean 'a'?)",
            ),
            (
                "lab: s\nguests: {w: {netns: w, host: a}}\n",
                "the file has no hosts",
            ),
            (
                "lab: s\nhosts: {a: 192.0.2.10, b: 192.0.2.10}\n",
                "also host a's address",
            ),
            (
                "lab: s\nhosts: {a: 0.0.0.0}\n",
                "not a host's underlay address",
            ),
            ("lab: s\nhosts: {a: 239.1.1.1}\n", "unicast"),
            (
                "lab: s\nhosts: {a: 192.0.2.1, b: '2001:db8::1'}\n",
                "one family",
            ),
            ("lab: s\nhosts: {'a b': 192.0.2.1}\n", "host name"),
            ("lab: s\nhosts: {a: nope}\n", "hosts"),
            (
                "lab: s\nbridges: {br1: {vni: 0}}\n",
                "vni: give 1 to 16777215",
            ),
            (
                "lab: s\nbridges: {br1: {vni: 16777216}}\n",
                "vni: give 1 to 16777215",
            ),
            (
                "lab: s\nbridges: {br1: {vni: 5}, br2: {vni: 5}}\n",
                "5 is also bridge br1's",
            ),
            (
                "lab: s\nbridges: {br1: {port: 0}}\n",
                "port: give 1 to 65535",
            ),
            (
                "lab: s\nbridges: {o: {ovs: true, vni: 5}}\n",
                "Open vSwitch bridge is not stretched",
            ),
        ] {
            let e = err(text);
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn stable_macs_follow_lab_guest_and_interface() {
        let a = stable_mac("demo", "r1", "eth1");
        assert_eq!(a, stable_mac("demo", "r1", "eth1"));
        assert_ne!(a, stable_mac("demo", "r1", "eth2"));
        assert_ne!(a, stable_mac("demo2", "r1", "eth1"));
        assert_eq!(a.0[0], 0x02);
    }
}
