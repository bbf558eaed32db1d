//! Declarative topologies, the front end: a lab file (YAML or JSON) — guests, bridges, attach
//! lines in the CLI's own grammar, point-to-point links, routes — parsed and checked (`file`),
//! turned into one typed [`LabRequest`] (stable MACs filled in), and handed to the engine's
//! lab session (`engine::lab`: plan, apply, destroy, ls); `graph` draws it. Nothing here
//! touches the kernel.

pub mod file;
pub mod graph;

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::Error;
use crate::guest::GuestSpec;
use crate::lab::{LabAttach, LabBridge, LabGuest, LabLink, LabRequest, LabRoute, LinkEnd};
use file::{GuestDef, Lab};

/// Reads, parses and checks a lab file.
pub fn load(path: &Path) -> Result<Lab, Error> {
    use std::io::Read;
    let f = std::fs::File::open(path)
        .map_err(|e| Error::Invalid(format!("cannot read lab file {}: {e}", path.display())))?;
    let mut buf = Vec::new();
    f.take(file::MAX_FILE as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::Invalid(format!("cannot read lab file {}: {e}", path.display())))?;
    let parsed = file::parse(&buf).map_err(|e| prefix(path, e))?;
    file::check(parsed).map_err(|e| prefix(path, e))
}

fn prefix(path: &Path, e: Error) -> Error {
    match e {
        Error::Invalid(m) => Error::Invalid(format!("{}: {m}", path.display())),
        Error::Usage(m) => Error::Usage(format!("{}: {m}", path.display())),
        e => e,
    }
}

/// The checked file as the engine's request: guests' specs parsed, every interface the lab
/// makes given its stable MAC unless the file gives one.
pub fn to_request(lab: &Lab) -> Result<LabRequest, Error> {
    let f = &lab.file;
    let name = &f.lab;
    let bad = |m: String| Error::Invalid(m);
    let mut guests = BTreeMap::new();
    for (key, g) in &f.guests {
        let spec_of = |p: &file::SpecOrPid| match p {
            file::SpecOrPid::Pid(p) if *p > 0 => Ok(GuestSpec::Pid(*p)),
            file::SpecOrPid::Pid(_) => Err(bad(format!("guests.{key}: PID 0 is no process"))),
            file::SpecOrPid::Spec(s) => {
                GuestSpec::parse(s).map_err(|e| bad(format!("guests.{key}: '{s}': {e}")))
            }
        };
        let host = g.host().map(str::to_string);
        let guest = match g {
            GuestDef::Pid(p) => LabGuest {
                spec: spec_of(&file::SpecOrPid::Pid(*p))?,
                host,
                netns: None,
            },
            GuestDef::Spec(s) => LabGuest {
                spec: spec_of(&file::SpecOrPid::Spec(s.clone()))?,
                host,
                netns: None,
            },
            GuestDef::Placed(p) => LabGuest {
                spec: spec_of(&p.spec)?,
                host,
                netns: None,
            },
            GuestDef::Netns(n) => {
                if !crate::ns::named::valid_name(&n.netns) {
                    return Err(bad(format!(
                        "guests.{key}.netns: '{}' is not a valid namespace name",
                        n.netns
                    )));
                }
                LabGuest {
                    spec: GuestSpec::NetnsName(n.netns.clone()),
                    host,
                    netns: Some(n.netns.clone()),
                }
            }
        };
        guests.insert(key.clone(), guest);
    }
    let mut bridges = BTreeMap::new();
    for (b, d) in &f.bridges {
        crate::naming::validate_ifname(b, &format!("bridges.{b}"))
            .map_err(|e| bad(e.to_string()))?;
        if d.datapath.is_some() && !d.ovs {
            return Err(bad(format!(
                "bridges.{b}: datapath is for Open vSwitch bridges (add ovs: true)"
            )));
        }
        if d.external && (d.mtu.is_some() || d.datapath.is_some()) {
            return Err(bad(format!(
                "bridges.{b}: an external bridge is never changed (drop mtu/datapath)"
            )));
        }
        if d.mtu.is_some_and(|m| !(68..=65535).contains(&m)) {
            return Err(bad(format!("bridges.{b}.mtu: give 68 to 65535")));
        }
        bridges.insert(
            b.clone(),
            LabBridge {
                ovs: d.ovs,
                datapath: d.datapath.clone(),
                mtu: d.mtu,
                external: d.external,
                vni: d.vni,
                port: d.port,
            },
        );
    }
    let mut attach = Vec::new();
    for l in &lab.attach {
        let mut req = l.request.clone();
        req.guest = guests[&l.guest].spec.clone();
        let ifname = req.guest_ifname.clone().unwrap_or_else(|| "eth1".into());
        if req.mac.is_none() {
            req.mac = Some(file::stable_mac(name, &l.guest, &ifname));
        }
        if let crate::request::HostIfSpec::Name(h) = &req.host_if {
            if let Some(b) = bridges.get(h) {
                if b.ovs && req.ovs_datapath.is_none() {
                    req.ovs_datapath = b.datapath.clone();
                }
            }
        }
        attach.push(LabAttach {
            guest: l.guest.clone(),
            line: f.attach[l.line].clone(),
            request: req,
        });
    }
    let mut links = Vec::new();
    for (i, (l, ends)) in f.links.iter().zip(&lab.links).enumerate() {
        if let Some(r) = &l.rate {
            if crate::engine::lab::rate_bits(r).is_none() {
                return Err(bad(format!(
                    "links[{i}].rate: '{r}' is not a tc rate (e.g. 10mbit, 1gbit)"
                )));
            }
        }
        if let Some(n) = &l.netem {
            if n.split_whitespace().next().is_none() || n.contains(['\n', '\0']) {
                return Err(bad(format!(
                    "links[{i}].netem: give netem's arguments, e.g. \"delay 20ms loss 0.1%\""
                )));
            }
        }
        if l.mtu.is_some_and(|m| !(68..=65535).contains(&m)) {
            return Err(bad(format!("links[{i}].mtu: give 68 to 65535")));
        }
        let end = |k: usize| {
            let (g, ifname) = &ends[k];
            let mut addresses = Vec::new();
            addresses.extend(l.ipv4.get(k).copied());
            addresses.extend(l.ipv6.get(k).copied());
            LinkEnd {
                guest: g.clone(),
                ifname: ifname.clone(),
                mac: file::stable_mac(name, g, ifname),
                addresses,
            }
        };
        links.push(LabLink {
            ends: [end(0), end(1)],
            mtu: l.mtu,
            rate: l.rate.clone(),
            netem: l.netem.clone(),
        });
    }
    let mut routes = Vec::new();
    for (g, list) in &f.routes {
        for r in list {
            routes.push(LabRoute::parse(g, r)?);
        }
    }
    Ok(LabRequest {
        lab: name.clone(),
        guests,
        bridges,
        attach,
        links,
        routes,
        hosts: f.hosts.clone(),
        host: None,
        stretch: Vec::new(),
        cross: Vec::new(),
        warnings: Vec::new(),
    })
}

/// `destroy LAB|FILE`: a lab name, or a file naming one.
pub fn lab_name_of(arg: &str) -> Result<String, Error> {
    let p = Path::new(arg);
    if arg.contains('/')
        || arg.ends_with(".yaml")
        || arg.ends_with(".yml")
        || arg.ends_with(".json")
    {
        return Ok(load(p)?.file.lab);
    }
    if p.is_file() {
        return Ok(load(p)?.file.lab);
    }
    if arg.is_empty()
        || arg.len() > file::MAX_LAB_NAME
        || !arg
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(Error::Invalid(format!(
            "'{arg}' is neither a lab name (1 to {} of a-z, 0-9 and -) nor a lab file",
            file::MAX_LAB_NAME
        )));
    }
    Ok(arg.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab(yaml: &str) -> Result<LabRequest, Error> {
        to_request(&file::check(file::parse(yaml.as_bytes())?)?)
    }

    #[test]
    fn the_issue_example_becomes_one_request() {
        let r = lab(r#"
lab: demo
guests:
  web1: docker:web1
  app: 4242
  r1: {netns: r1}
  r2: {netns: r2}
bridges:
  br1: {}
  ovs0: {ovs: true, datapath: netdev}
attach:
  - br1 web1 10.0.0.5/24@10.0.0.1
  - br1 -i eth2 app 10.0.0.6/24 U:app
  - ovs0 r2 10.0.4.2/24 @10
  - br1 r1 dhcp
links:
  - endpoints: [r1:eth1, r2:eth1]
    ipv4: [10.9.0.1/30, 10.9.0.2/30]
    rate: 10mbit
routes:
  r1: ["10.1.0.0/16 via 10.9.0.2"]
"#)
        .unwrap();
        assert_eq!(r.guests["app"].spec, GuestSpec::Pid(4242));
        assert_eq!(r.guests["r1"].netns.as_deref(), Some("r1"));
        let web = &r.attach[0];
        assert_eq!(web.request.guest, GuestSpec::parse("docker:web1").unwrap());
        assert_eq!(
            web.request.mac,
            Some(file::stable_mac("demo", "web1", "eth1"))
        );
        assert_eq!(
            r.attach[1].request.mac,
            Some(crate::mac::MacAddr::hashed("app"))
        );
        assert_eq!(r.attach[2].request.ovs_datapath.as_deref(), Some("netdev"));
        // r1:eth1 is the link's: the dhcp line gets r1's next free name.
        assert_eq!(r.attach[3].ifname(), "eth2");
        assert_eq!(r.links[0].ends[1].addresses[0].to_string(), "10.9.0.2/30");
        assert_eq!(r.links[0].name(), "r1:eth1~r2:eth1");
        assert_eq!(r.routes[0].to_string(), "10.1.0.0/16 via 10.9.0.2");
    }

    #[test]
    fn bad_values_are_refused_with_their_place() {
        for (y, want) in [
            ("lab: a\nguests: {g: 'docker:a b'}\n", "guests.g"),
            ("lab: a\nguests: {g: 0}\n", "PID 0"),
            ("lab: a\nbridges: {br1: {datapath: netdev}}\n", "ovs: true"),
            ("lab: a\nbridges: {br1: {external: true, mtu: 9000}}\n", "never changed"),
            ("lab: a\nbridges: {br1: {mtu: 10}}\n", "68 to 65535"),
            (
                "lab: a\nguests: {a: {netns: a}, b: {netns: b}}\nlinks: [{endpoints: [a:e, b:e], rate: fast}]\n",
                "not a tc rate",
            ),
            (
                "lab: a\nguests: {a: {netns: a}}\nroutes: {a: ['10.0.0.0/8 table 5']}\n",
                "unknown or repeated word",
            ),
        ] {
            let e = lab(y).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{y}: {e}");
            assert!(e.to_string().contains(want), "{y}: {e}");
        }
    }

    #[test]
    fn destroy_takes_a_name_or_a_file() {
        assert_eq!(lab_name_of("demo").unwrap(), "demo");
        let e = lab_name_of("Demo!").unwrap_err();
        assert!(e.to_string().contains("neither a lab name"), "{e}");
        let e = lab_name_of("/nonexistent/lab.yaml").unwrap_err();
        assert!(e.to_string().contains("cannot read lab file"), "{e}");
    }
}
