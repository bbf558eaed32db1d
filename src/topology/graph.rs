//! `pipework graph FILE --format dot|mermaid|svg`: a checked lab drawn as a graph — a node per
//! guest and per bridge (every host interface an attach line names, every entry of `bridges`),
//! an edge per attach line (guest—bridge) and per link (guest—guest). DOT and Mermaid are
//! pure text built here; SVG is Graphviz's `dot -Tsvg` fed the DOT text. Output follows the
//! file's order (maps in key order, lists in file order), so a lab always draws the same.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::Error;
use crate::request::{Addressing, AttachRequest, DhcpClient, HostIfSpec};
use crate::topology::file::{BridgeDef, GuestDef, Lab, LinkDef};

/// What `graph` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Dot,
    Mermaid,
    Svg,
}

impl Format {
    pub fn parse(s: &str) -> Result<Format, Error> {
        match s {
            "dot" => Ok(Format::Dot),
            "mermaid" => Ok(Format::Mermaid),
            "svg" => Ok(Format::Svg),
            _ => Err(Error::Usage(format!(
                "graph format '{s}' is not one of dot, mermaid, svg"
            ))),
        }
    }
}

/// The message when Graphviz is missing: what to install, and the formats that need nothing.
pub const NO_DOT: &str = "graph --format svg needs Graphviz's dot: install the package graphviz \
                          (apt-get install graphviz), or use --format dot|mermaid";

/// A lab's SVG is some KiB; a runaway layout is not worth holding more than this.
const MAX_SVG: u64 = 64 << 20;
/// Layout of a lab's few hundred nodes takes well under a second; a hung dot is killed.
const DOT_DEADLINE: Duration = Duration::from_secs(60);

/// The text or image in format `f`. Only SVG touches the system (it runs `dot`).
pub fn render(lab: &Lab, f: Format) -> Result<Vec<u8>, Error> {
    match f {
        Format::Dot => Ok(dot(lab).into_bytes()),
        Format::Mermaid => Ok(mermaid(lab).into_bytes()),
        Format::Svg => {
            let program = find_dot().ok_or_else(|| Error::NotFound(NO_DOT.into()))?;
            render_svg_with(&program, lab)
        }
    }
}

/// `dot` on PATH (an executable file), the way a shell would find it.
fn find_dot() -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        // A relative PATH entry would depend on the working directory: skipped.
        .filter(|d| d.is_absolute())
        .map(|d| d.join("dot"))
        .find(|p| {
            std::fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// SVG from the Graphviz `dot` at `program` (argv, the DOT text on stdin, no shell).
pub fn render_svg_with(program: &Path, lab: &Lab) -> Result<Vec<u8>, Error> {
    let text = dot(lab);
    let mut cmd = std::process::Command::new(program);
    cmd.arg("-Tsvg");
    let ran =
        match crate::process::run_bounded(&mut cmd, Some(text.as_bytes()), MAX_SVG, DOT_DEADLINE) {
            Ok(r) => r,
            // Not there (or not runnable): the same advice as when PATH has none.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                ) =>
            {
                return Err(Error::NotFound(format!(
                    "{NO_DOT} ({}: {e})",
                    program.display()
                )))
            }
            Err(e) => return Err(Error::io(format!("cannot run {}", program.display()), e)),
        };
    let crate::process::Ran::Exited {
        status,
        stdout,
        stderr,
    } = ran
    else {
        return Err(Error::Timeout(format!(
            "{} -Tsvg did not finish within {}s",
            program.display(),
            DOT_DEADLINE.as_secs()
        )));
    };
    if !status.success() {
        let why = String::from_utf8_lossy(&stderr[..stderr.len().min(4096)])
            .trim()
            .to_string();
        return Err(Error::Internal(format!(
            "{} -Tsvg failed ({status}): {why}",
            program.display()
        )));
    }
    if stdout.len() as u64 > MAX_SVG {
        return Err(Error::Internal(format!(
            "{} -Tsvg printed more than {} MiB",
            program.display(),
            MAX_SVG >> 20
        )));
    }
    Ok(stdout)
}

/// What a bridge node stands for: declared under `bridges`, or only named by attach lines.
struct BridgeNode<'a> {
    name: String,
    def: Option<&'a BridgeDef>,
}

/// The lab as nodes and edges, in output order; each label a list of lines, unescaped.
struct Model<'a> {
    guests: Vec<(String, Vec<String>)>,
    bridges: Vec<(BridgeNode<'a>, Vec<String>)>,
    /// (guest, bridge name, label lines).
    attach: Vec<(String, String, Vec<String>)>,
    /// (guest a, guest b, label lines).
    links: Vec<(String, String, Vec<String>)>,
    /// A multi-host lab's hosts (name, underlay address) and the guests placed on each.
    hosts: Vec<(String, std::net::IpAddr, Vec<String>)>,
}

impl Model<'_> {
    fn placed(&self, guest: &str) -> bool {
        self.hosts
            .iter()
            .any(|(_, _, g)| g.iter().any(|x| x == guest))
    }
}

fn host_if_name(h: &HostIfSpec) -> String {
    match h {
        HostIfSpec::Name(n) => n.clone(),
        HostIfSpec::Mac(m) => format!("mac:{m}"),
    }
}

fn guest_spec(g: &GuestDef) -> String {
    match g {
        GuestDef::Pid(p) => format!("pid {p}"),
        GuestDef::Spec(s) => s.clone(),
        GuestDef::Netns(n) => format!("netns {}", n.netns),
        GuestDef::Placed(p) => match &p.spec {
            crate::topology::file::SpecOrPid::Pid(n) => format!("pid {n}"),
            crate::topology::file::SpecOrPid::Spec(s) => s.clone(),
        },
    }
}

fn bridge_kind(b: &BridgeNode) -> String {
    match b.def {
        Some(d) => {
            let mut k = match (d.external, d.ovs) {
                (true, false) => "external".to_string(),
                (true, true) => "external Open vSwitch".to_string(),
                (false, true) => "Open vSwitch".to_string(),
                (false, false) => "Linux bridge".to_string(),
            };
            if let Some(dp) = &d.datapath {
                k.push_str(&format!(" ({dp})"));
            }
            k
        }
        // Not declared: the driver decides by what exists, and by the name for what does
        // not (br* a Linux bridge, ovs* an OVS bridge, as the original).
        None if b.name.starts_with("ovs") => "Open vSwitch".into(),
        None if b.name.starts_with("br") => "Linux bridge".into(),
        None => "host interface".into(),
    }
}

fn addressing(a: &Addressing) -> String {
    match a {
        Addressing::None => "no address".into(),
        Addressing::Static {
            address,
            gateway: Some(g),
        } => format!("{address} gw {g}"),
        Addressing::Static {
            address,
            gateway: None,
        } => address.to_string(),
        Addressing::Dhcp(d) => match (d.client, d.v6) {
            (DhcpClient::Builtin, false) => "dhcp".into(),
            (DhcpClient::Builtin, true) => "dhcp6".into(),
            (DhcpClient::Slaac, _) => "slaac".into(),
            (c, _) => format!("dhcp ({})", c.name()),
        },
        Addressing::List { addresses, .. } => addresses
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" "),
    }
}

fn attach_label(r: &AttachRequest) -> Vec<String> {
    let mut first = r.guest_ifname.clone().unwrap_or_else(|| "?".into());
    if let Some(t) = &r.tag {
        first.push_str(&format!(" @{t}"));
    }
    let mut lines = vec![first, addressing(&r.addressing)];
    if let Some(m) = r.mtu {
        lines.push(format!("mtu {m}"));
    }
    lines
}

fn link_label(ends: &[(String, String); 2], def: Option<&LinkDef>) -> Vec<String> {
    let mut lines = Vec::new();
    for (n, (g, ifname)) in ends.iter().enumerate() {
        let mut l = format!("{g}:{ifname}");
        if let Some(d) = def {
            for list in [&d.ipv4, &d.ipv6] {
                if let Some(a) = list.get(n) {
                    l.push_str(&format!(" {a}"));
                }
            }
        }
        lines.push(l);
    }
    if let Some(d) = def {
        let mut shaping = Vec::new();
        if let Some(m) = d.mtu {
            shaping.push(format!("mtu {m}"));
        }
        if let Some(r) = &d.rate {
            shaping.push(format!("rate {r}"));
        }
        if !shaping.is_empty() {
            lines.push(shaping.join(", "));
        }
        if let Some(n) = &d.netem {
            lines.push(format!("netem {n}"));
        }
    }
    lines
}

fn model(lab: &Lab) -> Model<'_> {
    let file = &lab.file;
    // Guests referred to but not defined cannot come out of `check`, but a Lab is plain data:
    // they still get a node rather than an edge to nowhere.
    let mut guests: BTreeMap<String, Option<&GuestDef>> = file
        .guests
        .iter()
        .map(|(k, g)| (k.clone(), Some(g)))
        .collect();
    for a in &lab.attach {
        guests.entry(a.guest.clone()).or_insert(None);
    }
    for ends in &lab.links {
        for (g, _) in ends {
            guests.entry(g.clone()).or_insert(None);
        }
    }
    let guests = guests
        .into_iter()
        .map(|(k, def)| {
            let mut lines = vec![k.clone()];
            if let Some(d) = def {
                lines.push(guest_spec(d));
            }
            for r in file.routes.get(&k).into_iter().flatten() {
                lines.push(format!("route {r}"));
            }
            (k, lines)
        })
        .collect();
    let mut bridges: BTreeMap<String, Option<&BridgeDef>> = file
        .bridges
        .iter()
        .map(|(k, b)| (k.clone(), Some(b)))
        .collect();
    for a in &lab.attach {
        bridges
            .entry(host_if_name(&a.request.host_if))
            .or_insert(None);
    }
    let bridges = bridges
        .into_iter()
        .map(|(name, def)| {
            let node = BridgeNode { name, def };
            let mut lines = vec![node.name.clone(), bridge_kind(&node)];
            if let Some(m) = def.and_then(|d| d.mtu) {
                lines.push(format!("mtu {m}"));
            }
            if let Some(v) = def.and_then(|d| d.vni) {
                lines.push(format!("vni {v}"));
            }
            (node, lines)
        })
        .collect();
    let attach = lab
        .attach
        .iter()
        .map(|a| {
            (
                a.guest.clone(),
                host_if_name(&a.request.host_if),
                attach_label(&a.request),
            )
        })
        .collect();
    let host_of = |g: &str| file.guests.get(g).and_then(|d| d.host());
    let links = lab
        .links
        .iter()
        .enumerate()
        .map(|(i, ends)| {
            let mut label = link_label(ends, file.links.get(i));
            if let (Some(a), Some(b)) = (host_of(&ends[0].0), host_of(&ends[1].0)) {
                if a != b {
                    label.push(format!("VXLAN {a} ↔ {b}"));
                }
            }
            (ends[0].0.clone(), ends[1].0.clone(), label)
        })
        .collect();
    let hosts = file
        .hosts
        .iter()
        .map(|(h, a)| {
            let placed = file
                .guests
                .iter()
                .filter(|(_, d)| d.host() == Some(h.as_str()))
                .map(|(k, _)| k.clone())
                .collect();
            (h.clone(), *a, placed)
        })
        .collect();
    Model {
        guests,
        bridges,
        attach,
        links,
        hosts,
    }
}

/// A DOT double-quoted string: `"` and `\` escaped (a lone `\` would start an escape such as
/// `\N`), newlines as DOT's `\n` line breaks, other control characters as spaces.
fn dot_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if c.is_control() => o.push(' '),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn dot_label(lines: &[String]) -> String {
    dot_str(&lines.join("\n"))
}

/// The lab in Graphviz's DOT: undirected, guests as rounded boxes, bridges as hexagons
/// (external ones dashed), links as bold edges. Node ids are quoted and prefixed (`guest:`,
/// `bridge:`) so a guest and a bridge of the same name stay two nodes.
pub fn dot(lab: &Lab) -> String {
    let m = model(lab);
    let gid = |g: &str| dot_str(&format!("guest:{g}"));
    let bid = |b: &str| dot_str(&format!("bridge:{b}"));
    let mut o = String::new();
    o.push_str(&format!("graph {} {{\n", dot_str(&lab.file.lab)));
    o.push_str(&format!(
        "  graph [rankdir=LR, label={}];\n",
        dot_str(&format!("lab {}", lab.file.lab))
    ));
    o.push_str("  node [fontname=\"monospace\"];\n  edge [fontname=\"monospace\"];\n");
    let guest_node = |g: &str, lines: &[String], indent: &str| {
        format!(
            "{indent}{} [shape=box, style=rounded, label={}];\n",
            gid(g),
            dot_label(lines)
        )
    };
    for (g, lines) in m.guests.iter().filter(|(g, _)| !m.placed(g)) {
        o.push_str(&guest_node(g, lines, "  "));
    }
    // A host's guests in a box of their own (a cluster, in DOT's words).
    for (h, addr, placed) in &m.hosts {
        o.push_str(&format!(
            "  subgraph {} {{\n    label={};\n    style=dashed;\n",
            dot_str(&format!("cluster_host:{h}")),
            dot_str(&format!("host {h} ({addr})"))
        ));
        for (g, lines) in m.guests.iter().filter(|(g, _)| placed.contains(g)) {
            o.push_str(&guest_node(g, lines, "    "));
        }
        o.push_str("  }\n");
    }
    for (b, lines) in &m.bridges {
        let style = if b.def.is_some_and(|d| d.external) {
            ", style=dashed"
        } else {
            ""
        };
        o.push_str(&format!(
            "  {} [shape=hexagon{style}, label={}];\n",
            bid(&b.name),
            dot_label(lines)
        ));
    }
    for (g, b, lines) in &m.attach {
        o.push_str(&format!(
            "  {} -- {} [label={}];\n",
            gid(g),
            bid(b),
            dot_label(lines)
        ));
    }
    for (a, b, lines) in &m.links {
        o.push_str(&format!(
            "  {} -- {} [style=bold, label={}];\n",
            gid(a),
            gid(b),
            dot_label(lines)
        ));
    }
    o.push_str("}\n");
    o
}

/// A Mermaid label's text, to go between double quotes: quotes as `#quot;`, and the
/// characters Mermaid or its HTML labels would read (`#` of entity codes, `<`, `>`, `&`,
/// the `|` that closes an edge label, the backtick of Markdown strings) as entity codes;
/// newlines as `<br/>`.
fn mermaid_text(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => o.push_str("#quot;"),
            '#' => o.push_str("#35;"),
            '<' => o.push_str("#60;"),
            '>' => o.push_str("#62;"),
            '&' => o.push_str("#38;"),
            '|' => o.push_str("#124;"),
            '`' => o.push_str("#96;"),
            '\n' => o.push_str("<br/>"),
            c if c.is_control() => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

fn mermaid_label(lines: &[String]) -> String {
    format!("\"{}\"", mermaid_text(&lines.join("\n")))
}

/// Mermaid node ids: `prefix_` + the name with everything outside [A-Za-z0-9_] as `_`, and a
/// `_2`, `_3`… suffix when two names come out the same (`web-1` and `web.1`). The prefix
/// keeps ids off Mermaid's keywords (`end`, `graph`) and apart between guests and bridges.
struct MermaidIds {
    taken: BTreeSet<String>,
    ids: BTreeMap<(char, String), String>,
}

impl MermaidIds {
    fn new() -> Self {
        MermaidIds {
            taken: BTreeSet::new(),
            ids: BTreeMap::new(),
        }
    }

    fn assign(&mut self, kind: char, name: &str) -> String {
        if let Some(id) = self.ids.get(&(kind, name.to_string())) {
            return id.clone();
        }
        let base: String = std::iter::once(kind)
            .chain(std::iter::once('_'))
            .chain(name.chars().map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            }))
            .collect();
        let mut id = base.clone();
        let mut n = 2;
        while self.taken.contains(&id) {
            id = format!("{base}_{n}");
            n += 1;
        }
        self.taken.insert(id.clone());
        self.ids.insert((kind, name.to_string()), id.clone());
        id
    }
}

/// The lab as a Mermaid flowchart: guests as rounded boxes, bridges as hexagons (external
/// ones dashed), attach lines as plain edges, links as thick ones.
pub fn mermaid(lab: &Lab) -> String {
    let m = model(lab);
    let mut ids = MermaidIds::new();
    // Every id assigned in node order first, so an id never depends on the edges' order.
    for (g, _) in &m.guests {
        ids.assign('g', g);
    }
    for (h, _, _) in &m.hosts {
        ids.assign('h', h);
    }
    for (b, _) in &m.bridges {
        ids.assign('b', &b.name);
    }
    let mut o = String::new();
    // The lab name is checked (a-z, 0-9, -), but a comment line must not be broken anyway.
    o.push_str(&format!(
        "%% pipework lab {}\nflowchart LR\n",
        lab.file.lab.replace(['\n', '\r'], " ")
    ));
    let guest_node = |ids: &mut MermaidIds, g: &str, lines: &[String], indent: &str| {
        format!(
            "{indent}{}(\"{}\")\n",
            ids.assign('g', g),
            mermaid_text(&lines.join("\n"))
        )
    };
    for (g, lines) in m.guests.iter().filter(|(g, _)| !m.placed(g)) {
        o.push_str(&guest_node(&mut ids, g, lines, "  "));
    }
    for (h, addr, placed) in &m.hosts {
        o.push_str(&format!(
            "  subgraph {}[\"{}\"]\n",
            ids.assign('h', h),
            mermaid_text(&format!("host {h} ({addr})"))
        ));
        for (g, lines) in m.guests.iter().filter(|(g, _)| placed.contains(g)) {
            o.push_str(&guest_node(&mut ids, g, lines, "    "));
        }
        o.push_str("  end\n");
    }
    let mut external = Vec::new();
    for (b, lines) in &m.bridges {
        let id = ids.assign('b', &b.name);
        o.push_str(&format!(
            "  {id}{{{{\"{}\"}}}}\n",
            mermaid_text(&lines.join("\n"))
        ));
        if b.def.is_some_and(|d| d.external) {
            external.push(id);
        }
    }
    for (g, b, lines) in &m.attach {
        o.push_str(&format!(
            "  {} ---|{}| {}\n",
            ids.assign('g', g),
            mermaid_label(lines),
            ids.assign('b', b)
        ));
    }
    for (a, b, lines) in &m.links {
        o.push_str(&format!(
            "  {} ===|{}| {}\n",
            ids.assign('g', a),
            mermaid_label(lines),
            ids.assign('g', b)
        ));
    }
    if !external.is_empty() {
        o.push_str("  classDef external stroke-dasharray: 5 5\n");
        o.push_str(&format!("  class {} external\n", external.join(",")));
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::file::tests::EXAMPLE;
    use crate::topology::file::{check, parse};

    fn lab(text: &str) -> Lab {
        check(parse(text.as_bytes()).expect("parses")).expect("checks")
    }

    /// Names Mermaid and DOT must escape: '-', '.', a quote and a backslash in a label.
    const WEIRD: &str = r#"
lab: odd
guests:
  web-1: {netns: web-1}
  web.1: {netns: web.1}
  q: 'docker:a"b\c'
attach:
  - br-x web-1 10.0.0.1/24
  - br-x web.1 10.0.0.2/24
links:
  - endpoints: [web-1:eth9, web.1:eth9]
    netem: 'delay "5ms" # <x>|y'
"#;

    #[test]
    fn dot_has_a_node_per_guest_and_bridge_and_an_edge_per_line_and_link() {
        let d = dot(&lab(EXAMPLE));
        for line in [
            "graph \"demo\" {",
            r#"  "guest:web1" [shape=box, style=rounded, label="web1\ndocker:web1"];"#,
            r#"  "guest:app" [shape=box, style=rounded, label="app\npid 4242"];"#,
            r#"  "guest:r1" [shape=box, style=rounded, label="r1\nnetns r1\nroute 10.1.0.0/16 via 10.9.0.2"];"#,
            r#"  "bridge:br1" [shape=hexagon, label="br1\nLinux bridge"];"#,
            r#"  "bridge:br2" [shape=hexagon, label="br2\nLinux bridge\nmtu 9000"];"#,
            r#"  "bridge:ovs0" [shape=hexagon, label="ovs0\nOpen vSwitch (netdev)"];"#,
            r#"  "bridge:lan0" [shape=hexagon, style=dashed, label="lan0\nexternal"];"#,
            r#"  "guest:web1" -- "bridge:br1" [label="eth1\n10.0.0.5/24 gw 10.0.0.1"];"#,
            r#"  "guest:app" -- "bridge:br1" [label="eth2\n10.0.0.6/24"];"#,
            r#"  "guest:db" -- "bridge:ovs0" [label="eth1 @10\n10.0.4.2/24"];"#,
            r#"  "guest:r1" -- "bridge:br2" [label="eth2\ndhcp"];"#,
            r#"  "guest:r1" -- "guest:r2" [style=bold, label="r1:eth1 10.9.0.1/30\nr2:eth1 10.9.0.2/30\nmtu 9000, rate 10mbit\nnetem delay 20ms loss 0.1%"];"#,
        ] {
            assert!(d.lines().any(|l| l == line), "missing {line}\nin\n{d}");
        }
        assert_eq!(d.matches("[shape=box").count(), 5, "{d}");
        assert_eq!(d.matches("[shape=hexagon").count(), 4, "{d}");
        assert_eq!(d.matches(" -- ").count(), 5, "{d}");
        assert!(d.ends_with("}\n"));
        // Deterministic: the same lab, the same text.
        assert_eq!(d, dot(&lab(EXAMPLE)));
    }

    #[test]
    fn mermaid_has_the_same_graph() {
        let m = mermaid(&lab(EXAMPLE));
        for line in [
            "flowchart LR",
            r#"  g_web1("web1<br/>docker:web1")"#,
            r#"  g_r2("r2<br/>netns r2")"#,
            r#"  b_br2{{"br2<br/>Linux bridge<br/>mtu 9000"}}"#,
            r#"  b_ovs0{{"ovs0<br/>Open vSwitch (netdev)"}}"#,
            r#"  g_web1 ---|"eth1<br/>10.0.0.5/24 gw 10.0.0.1"| b_br1"#,
            r#"  g_db ---|"eth1 @10<br/>10.0.4.2/24"| b_ovs0"#,
            r#"  g_r1 ---|"eth2<br/>dhcp"| b_br2"#,
            r#"  g_r1 ===|"r1:eth1 10.9.0.1/30<br/>r2:eth1 10.9.0.2/30<br/>mtu 9000, rate 10mbit<br/>netem delay 20ms loss 0.1%"| g_r2"#,
            "  class b_lan0 external",
        ] {
            assert!(m.lines().any(|l| l == line), "missing {line}\nin\n{m}");
        }
        assert_eq!(m, mermaid(&lab(EXAMPLE)));
    }

    #[test]
    fn weird_names_and_quotes_are_escaped() {
        let l = lab(WEIRD);
        let d = dot(&l);
        assert!(
            d.contains(r#""guest:q" [shape=box, style=rounded, label="q\ndocker:a\"b\\c"];"#),
            "{d}"
        );
        assert!(d.contains(r#"netem delay \"5ms\" # <x>|y"#), "{d}");
        assert!(d.contains(r#""guest:web-1" -- "bridge:br-x""#), "{d}");
        assert!(d.contains(r#""guest:web.1" -- "bridge:br-x""#), "{d}");
        // No unescaped quote inside any label: every line's quotes pair up.
        for line in d.lines() {
            let bare = line.replace("\\\\", "").replace("\\\"", "");
            assert_eq!(bare.matches('"').count() % 2, 0, "{line}");
        }

        let m = mermaid(&l);
        // '-' and '.' both become '_': the second name gets a suffix, in key order.
        assert!(m.contains(r#"  g_web_1("web-1<br/>netns web-1")"#), "{m}");
        assert!(m.contains(r#"  g_web_1_2("web.1<br/>netns web.1")"#), "{m}");
        assert!(m.contains(r#"  b_br_x{{"br-x<br/>Linux bridge"}}"#), "{m}");
        assert!(m.contains(r#"  g_q("q<br/>docker:a#quot;b\c")"#), "{m}");
        assert!(
            m.contains("  g_web_1 ---|\"eth1<br/>10.0.0.1/24\"| b_br_x"),
            "{m}"
        );
        assert!(
            m.contains("  g_web_1_2 ---|\"eth1<br/>10.0.0.2/24\"| b_br_x"),
            "{m}"
        );
        assert!(
            m.contains("netem delay #quot;5ms#quot; #35; #60;x#62;#124;y\"| g_web_1_2"),
            "{m}"
        );
        // Every node line is a sanitised id directly followed by its shape, and ids are unique.
        let mut ids = BTreeSet::new();
        for line in m
            .lines()
            .filter(|l| !l.contains("---") && !l.contains("==="))
        {
            let Some(rest) = line.strip_prefix("  ") else {
                continue;
            };
            let id: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if rest[id.len()..].starts_with(['(', '{']) {
                assert!(ids.insert(id), "{line}");
            }
        }
        assert_eq!(ids.len(), 4, "{m}");
    }

    #[test]
    fn escapes_cover_control_characters() {
        assert_eq!(dot_str("a\nb\tc\\"), r#""a\nb c\\""#);
        assert_eq!(mermaid_text("a\nb&`"), "a<br/>b#38;#96;");
        let mut ids = MermaidIds::new();
        assert_eq!(ids.assign('g', "end"), "g_end");
        assert_eq!(ids.assign('g', "e.nd"), "g_e_nd");
        assert_eq!(ids.assign('g', "e-nd"), "g_e_nd_2");
        assert_eq!(ids.assign('g', "e.nd"), "g_e_nd");
        assert_eq!(ids.assign('b', "end"), "b_end");
    }

    #[test]
    fn undeclared_host_interfaces_are_named_by_their_kind() {
        let l = lab(
            "lab: u\nguests: {a: 1, b: 2, c: 3}\nattach: [ovs9 a 10.0.0.1/24, eth0 b dhcp6, br0 c 0/0]\n",
        );
        let d = dot(&l);
        assert!(d.contains(r#"label="ovs9\nOpen vSwitch""#), "{d}");
        assert!(d.contains(r#"label="eth0\nhost interface""#), "{d}");
        assert!(d.contains(r#"label="br0\nLinux bridge""#), "{d}");
        assert!(d.contains(r#"label="eth1\ndhcp6""#), "{d}");
        assert!(d.contains(r#"label="eth1\nno address""#), "{d}");
    }

    #[test]
    fn format_parse_names_the_choices() {
        assert_eq!(Format::parse("dot").ok(), Some(Format::Dot));
        assert_eq!(Format::parse("mermaid").ok(), Some(Format::Mermaid));
        assert_eq!(Format::parse("svg").ok(), Some(Format::Svg));
        for bad in ["png", "", "DOT"] {
            let e = Format::parse(bad).unwrap_err();
            assert!(matches!(e, Error::Usage(_)), "{e:?}");
            let msg = e.to_string();
            assert!(
                msg.contains("dot") && msg.contains("mermaid") && msg.contains("svg"),
                "{msg}"
            );
            assert_ne!(e.exit_code(), 0);
        }
    }

    #[test]
    fn text_formats_render_as_their_text() {
        let l = lab(EXAMPLE);
        assert_eq!(render(&l, Format::Dot).unwrap(), dot(&l).into_bytes());
        assert_eq!(
            render(&l, Format::Mermaid).unwrap(),
            mermaid(&l).into_bytes()
        );
    }

    #[test]
    fn svg_without_dot_says_what_to_install() {
        let e = render_svg_with(Path::new("/nonexistent/dot"), &lab(EXAMPLE)).unwrap_err();
        assert!(e.to_string().contains(NO_DOT), "{e}");
        assert!(e.to_string().contains("apt-get install graphviz"), "{e}");
        assert_ne!(e.exit_code(), 0);
    }

    #[test]
    fn svg_from_graphviz_or_the_advice() {
        let l = lab(WEIRD);
        match find_dot() {
            Some(_) => {
                let svg = render(&l, Format::Svg).expect("dot renders");
                let text = String::from_utf8_lossy(&svg);
                assert!(text.starts_with("<?xml") || text.contains("<svg"), "{text}");
                assert!(text.contains("web.1"), "{text}");
            }
            None => {
                let e = render(&l, Format::Svg).unwrap_err();
                assert_eq!(e.to_string(), NO_DOT);
            }
        }
    }

    #[test]
    fn svg_reports_dot_failing() {
        // `false` stands in for a dot that rejects its input: a non-zero exit is an error.
        let Some(f) = ["/bin/false", "/usr/bin/false"]
            .iter()
            .map(Path::new)
            .find(|p| p.exists())
        else {
            return;
        };
        let e = render_svg_with(f, &lab(EXAMPLE)).unwrap_err();
        assert!(e.to_string().contains("-Tsvg failed"), "{e}");
    }

    const STRETCHED: &str = "lab: st\nhosts: {a: 192.0.2.10, c: 192.0.2.30}\nguests:\n  r1: {netns: r1, host: a}\n  r9: {netns: r9, host: c}\n  any: {netns: any}\nbridges: {br1: {vni: 42}}\nattach: [br1 r1 10.0.0.1/24, br1 r9 10.0.0.9/24]\nlinks:\n  - endpoints: [r1:eth2, r9:eth2]\n";

    #[test]
    fn hosts_are_boxes_and_tunnels_are_named() {
        let l = lab(STRETCHED);
        let d = dot(&l);
        let start = d
            .find("subgraph \"cluster_host:a\"")
            .expect("a cluster per host");
        let end = start + d[start..].find("  }\n").unwrap();
        let inside = &d[start..end];
        assert!(inside.contains("host a (192.0.2.10)"), "{d}");
        assert!(inside.contains("\"guest:r1\""), "{d}");
        assert!(
            !inside.contains("\"guest:r9\"") && !inside.contains("\"guest:any\""),
            "{d}"
        );
        assert!(d.contains("vni 42"), "{d}");
        assert!(d.contains("VXLAN a ↔ c"), "{d}");
        let m = mermaid(&l);
        assert!(
            m.contains("  subgraph h_a[\"host a (192.0.2.10)\"]\n    g_r1("),
            "{m}"
        );
        assert!(m.contains("  end\n"), "{m}");
        // A one-host lab draws as before: no boxes.
        assert!(!dot(&lab(EXAMPLE)).contains("subgraph"));
    }
}
