//! The host-side packet filter rules a CNI bridge attachment may ask for: masquerading of the
//! guest's addresses (`ipMasq`, with iptables or nftables) and the MAC spoof check
//! (`macspoofchk`, nftables). Each attachment's rules live in a chain or table of their own,
//! named from the network and container (so a DEL removes exactly them, with or without the
//! guest's namespace), and run by argv: `iptables`/`ip6tables` one rule per call, `nft` one
//! atomic transaction on stdin.

use std::net::IpAddr;
use std::process::Command;

use ipnet::IpNet;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::mac::MacAddr;
use crate::request::FirewallBackend;

/// One attachment's masquerading: what the undo entry keeps to take it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasqRules {
    pub backend: FirewallBackend,
    /// The iptables chain (`PWM-` + 16 hex digits) or nftables table (`pipework-masq-…`).
    pub name: String,
    /// `name: NETWORK id: CONTAINER`, as the reference plugin comments its rules.
    pub comment: String,
    /// The guest's addresses with their subnets' prefixes.
    pub sources: Vec<IpNet>,
}

fn tag(network: &str, container: &str, what: &str) -> String {
    let mut h = Md5::new();
    for part in [what, network, container] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl MasqRules {
    pub fn new(
        backend: FirewallBackend,
        network: &str,
        container: &str,
        sources: Vec<IpNet>,
    ) -> MasqRules {
        let t = tag(network, container, "masq");
        MasqRules {
            backend,
            name: match backend {
                FirewallBackend::Iptables => format!("PWM-{t}"),
                FirewallBackend::Nftables => format!("pipework-masq-{t}"),
            },
            comment: format!("name: {network} id: {container}"),
            sources,
        }
    }
}

/// The nftables table of one port's MAC spoof check.
pub fn spoof_table(network: &str, container: &str, port: &str) -> String {
    format!("pipework-mac-{}", tag(network, container, port))
}

/// The default backend: iptables when it is installed (as the reference plugin), else
/// nftables.
pub fn default_backend() -> FirewallBackend {
    if find_program("iptables").is_some() || find_program("nft").is_none() {
        FirewallBackend::Iptables
    } else {
        FirewallBackend::Nftables
    }
}

fn find_program(p: &str) -> Option<std::path::PathBuf> {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin"]
        .iter()
        .map(|d| std::path::Path::new(d).join(p))
        .find(|p| p.is_file())
}

/// The most a rule tool may print: its errors are a line or two.
const MAX_OUTPUT: usize = 64 << 10;
/// iptables waits for the xtables lock (`-w`); a stuck holder must not hang an ADD forever.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs `program args…` (stdin fed when given). `Ok(Err(stderr))` when it ran and failed.
fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<Result<(), String>, Error> {
    let path = find_program(program).ok_or_else(|| {
        Error::Invalid(format!(
            "`{program}` is not installed: install it ({}) or choose the other ipMasqBackend",
            if program == "nft" {
                "package nftables"
            } else {
                "package iptables"
            }
        ))
    })?;
    let mut cmd = Command::new(&path);
    cmd.args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/sbin:/usr/bin:/bin");
    let ran = crate::process::run_bounded(
        &mut cmd,
        stdin.map(str::as_bytes),
        MAX_OUTPUT as u64,
        TIMEOUT,
    )
    .map_err(|e| Error::io(format!("cannot run {}", path.display()), e))?;
    let crate::process::Ran::Exited { status, stderr, .. } = ran else {
        return Ok(Err(format!("no answer within {} s", TIMEOUT.as_secs())));
    };
    if status.success() {
        return Ok(Ok(()));
    }
    let err = &stderr[..stderr.len().min(MAX_OUTPUT)];
    Ok(Err(String::from_utf8_lossy(err).trim().to_string()))
}

fn failed(what: &str, program: &str, args: &[&str], why: String) -> Error {
    Error::Engine(format!(
        "cannot {what}: {program} {}: {why}",
        args.join(" ")
    ))
}

fn nft(what: &str, script: &str) -> Result<(), Error> {
    run("nft", &["-f", "-"], Some(script))?
        .map_err(|why| Error::Engine(format!("cannot {what}: nft: {why}")))
}

fn multicast_of(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "224.0.0.0/4"
    } else {
        "ff00::/8"
    }
}

/// The nftables transaction that creates the masquerade table (also what the unit tests read).
pub fn masq_script(m: &MasqRules) -> String {
    let mut s = format!(
        "add table inet {t}\nadd chain inet {t} postrouting {{ type nat hook postrouting \
         priority srcnat; policy accept; }}\n",
        t = m.name
    );
    for src in &m.sources {
        let (fam, ip) = if src.addr().is_ipv4() {
            ("ip", src.addr())
        } else {
            ("ip6", src.addr())
        };
        s.push_str(&format!(
            "add rule inet {t} postrouting {fam} saddr {ip} {fam} daddr != {net} {fam} daddr != \
             {mc} masquerade comment \"{c}\"\n",
            t = m.name,
            net = src.trunc(),
            mc = multicast_of(&ip),
            c = m.comment,
        ));
    }
    s
}

/// The iptables-restore transactions (one per family present) that create the masquerade
/// chain and the jump to it: one process and one atomic commit per family instead of a call
/// per rule. `--noflush` leaves every other rule alone; `:CHAIN` creates the chain (or empties
/// one a crash left).
pub fn masq_restore(m: &MasqRules) -> Vec<(&'static str, String)> {
    per_family(m, |src, out| {
        out.push_str(&format!(
            "-A {n} -d {net} -j ACCEPT -m comment --comment \"{c}\"\n\
             -A {n} ! -d {mc} -j MASQUERADE -m comment --comment \"{c}\"\n\
             -A POSTROUTING -s {ip} -j {n} -m comment --comment \"{c}\"\n",
            n = m.name,
            net = src.trunc(),
            mc = multicast_of(&src.addr()),
            ip = src.addr(),
            c = m.comment,
        ))
    })
}

/// The transactions that take the jumps and the chain out again.
pub fn unmasq_restore(m: &MasqRules) -> Vec<(&'static str, String)> {
    let mut v = per_family(m, |src, out| {
        out.push_str(&format!(
            "-D POSTROUTING -s {ip} -j {n} -m comment --comment \"{c}\"\n",
            ip = src.addr(),
            n = m.name,
            c = m.comment,
        ))
    });
    for (_, text) in &mut v {
        *text = text.replace(&format!(":{} - [0:0]\n", m.name), "");
        let commit = text.rfind("COMMIT").unwrap_or(text.len());
        text.insert_str(commit, &format!(":{n} - [0:0]\n-X {n}\n", n = m.name));
    }
    v
}

/// `*nat`, the chain, `rules` of each source of the family, `COMMIT`: one text per family.
fn per_family(m: &MasqRules, rules: impl Fn(&IpNet, &mut String)) -> Vec<(&'static str, String)> {
    let mut v = Vec::new();
    for (tool, v4) in [("iptables-restore", true), ("ip6tables-restore", false)] {
        let mine: Vec<&IpNet> = m
            .sources
            .iter()
            .filter(|s| s.addr().is_ipv4() == v4)
            .collect();
        if mine.is_empty() {
            continue;
        }
        let mut t = format!("*nat\n:{} - [0:0]\n", m.name);
        for src in mine {
            rules(src, &mut t);
        }
        t.push_str("COMMIT\n");
        v.push((tool, t));
    }
    v
}

/// Puts the masquerade rules in place.
pub fn masquerade(m: &MasqRules) -> Result<(), Error> {
    match m.backend {
        FirewallBackend::Nftables => nft("set up masquerading", &masq_script(m)),
        FirewallBackend::Iptables => {
            for (tool, text) in masq_restore(m) {
                run(tool, &["-w", "--noflush"], Some(&text))?.map_err(|why| {
                    Error::Engine(format!("cannot set up masquerading: {tool}: {why}"))
                })?;
            }
            Ok(())
        }
    }
}

/// Takes the masquerade rules out; `Ok(false)` when none were there.
pub fn unmasquerade(m: &MasqRules) -> Result<bool, Error> {
    match m.backend {
        FirewallBackend::Nftables => delete_table("inet", &m.name),
        FirewallBackend::Iptables => {
            // One transaction per family when all of it is there (the usual case)...
            let mut all = true;
            for (tool, text) in unmasq_restore(m) {
                all &= run(tool, &["-w", "--noflush"], Some(&text))?.is_ok();
            }
            if all {
                return Ok(true);
            }
            // ...else rule by rule, whatever is left (a crash between the changes).
            let mut any = false;
            for src in &m.sources {
                let ip = src.addr().to_string();
                let jump = [
                    "-w",
                    "-t",
                    "nat",
                    "-D",
                    "POSTROUTING",
                    "-s",
                    &ip,
                    "-j",
                    &m.name,
                    "-m",
                    "comment",
                    "--comment",
                    &m.comment,
                ];
                any |= run(tool_of(src), &jump, None)?.is_ok();
            }
            for src in &m.sources {
                let tool = tool_of(src);
                for op in ["-F", "-X"] {
                    match run(tool, &["-w", "-t", "nat", op, &m.name], None)? {
                        Ok(()) => any = true,
                        Err(why) if absent(&why) => {}
                        Err(why) => {
                            return Err(failed(
                                "remove masquerading",
                                tool,
                                &["-t", "nat", op, &m.name],
                                why,
                            ))
                        }
                    }
                }
            }
            Ok(any)
        }
    }
}

fn tool_of(src: &IpNet) -> &'static str {
    if src.addr().is_ipv4() {
        "iptables"
    } else {
        "ip6tables"
    }
}

fn absent(why: &str) -> bool {
    why.contains("No chain") || why.contains("does not exist") || why.contains("No such file")
}

/// The transaction of a port's MAC spoof check: frames entering the bridge from `port` with
/// any other source MAC are dropped.
pub fn spoof_script(table: &str, port: &str, mac: &MacAddr) -> String {
    format!(
        "add table bridge {table}\nadd chain bridge {table} prerouting {{ type filter hook \
         prerouting priority -300; policy accept; }}\nadd rule bridge {table} prerouting iifname \
         \"{port}\" ether saddr != {mac} drop\n"
    )
}

pub fn spoof_check(table: &str, port: &str, mac: &MacAddr) -> Result<(), Error> {
    nft(
        &format!("set up the MAC spoof check of {port}"),
        &spoof_script(table, port, mac),
    )
}

/// Deletes an nftables table of ours; `Ok(false)` when it was not there.
pub fn delete_table(family: &str, table: &str) -> Result<bool, Error> {
    match run("nft", &["delete", "table", family, table], None)? {
        Ok(()) => Ok(true),
        Err(why) if absent(&why) => Ok(false),
        Err(why) => Err(failed(
            &format!("delete nftables table {family} {table}"),
            "nft",
            &["delete", "table", family, table],
            why,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_per_network_and_container_and_fit() {
        let a = MasqRules::new(FirewallBackend::Iptables, "net1", "c1", vec![]);
        let b = MasqRules::new(FirewallBackend::Iptables, "net1", "c1", vec![]);
        let c = MasqRules::new(FirewallBackend::Iptables, "net1", "c2", vec![]);
        assert_eq!(a.name, b.name);
        assert_ne!(a.name, c.name);
        // iptables chain names are at most 28 bytes.
        assert!(a.name.len() <= 28, "{}", a.name);
        assert_eq!(a.comment, "name: net1 id: c1");
        assert_ne!(spoof_table("n", "c", "p1"), spoof_table("n", "c", "p2"));
    }

    #[test]
    fn masquerade_rules_skip_the_subnet_and_multicast() {
        let m = MasqRules::new(
            FirewallBackend::Nftables,
            "net1",
            "c1",
            vec![
                "10.1.2.5/24".parse().unwrap(),
                "fd00::5/64".parse().unwrap(),
            ],
        );
        let s = masq_script(&m);
        assert!(
            s.contains(
                "ip saddr 10.1.2.5 ip daddr != 10.1.2.0/24 ip daddr != 224.0.0.0/4 masquerade"
            ),
            "{s}"
        );
        assert!(
            s.contains("ip6 saddr fd00::5 ip6 daddr != fd00::/64 ip6 daddr != ff00::/8"),
            "{s}"
        );
        assert!(s.contains("type nat hook postrouting"));
        let m = MasqRules {
            backend: FirewallBackend::Iptables,
            ..m
        };
        let v = masq_restore(&m);
        assert_eq!(v.len(), 2, "one transaction per family");
        assert_eq!(v[0].0, "iptables-restore");
        assert_eq!(v[1].0, "ip6tables-restore");
        let n = &m.name;
        let t = &v[0].1;
        assert!(t.starts_with(&format!("*nat\n:{n} - [0:0]\n")), "{t}");
        let jump =
            format!("-A POSTROUTING -s 10.1.2.5 -j {n} -m comment --comment \"name: net1 id: c1\"");
        assert!(t.contains(&jump), "{t}");
        assert!(t.contains("-d 10.1.2.0/24 -j ACCEPT"), "{t}");
        assert!(t.ends_with("COMMIT\n"), "{t}");
        let u = &unmasq_restore(&m)[0].1;
        assert!(
            u.contains(&format!("-D POSTROUTING -s 10.1.2.5 -j {n}")),
            "{u}"
        );
        assert!(
            u.ends_with(&format!(":{n} - [0:0]\n-X {n}\nCOMMIT\n")),
            "{u}"
        );
        assert!(!u.contains("-A "), "{u}");
    }

    #[test]
    fn spoof_rule_drops_other_source_macs_from_the_port() {
        let mac: MacAddr = "02:00:00:00:00:05".parse().unwrap();
        let s = spoof_script("pipework-mac-x", "pwc0", &mac);
        assert!(
            s.contains("iifname \"pwc0\" ether saddr != 02:00:00:00:00:05 drop"),
            "{s}"
        );
        assert!(s.contains("add table bridge pipework-mac-x"));
    }
}
