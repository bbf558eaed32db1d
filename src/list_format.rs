//! `pipework ls --format`: a Go-template-like line per attachment (`{{.Guest}} {{.Address}}`,
//! `table` first for a header, as `docker ps --format` does), or a comma-separated field list
//! (`guest,ifname,address`) shown as a table. Checked when the command line is parsed, so a
//! typo is an error before anything runs.

use crate::error::Error;
use crate::report::Listed;

/// Every field a template or list may name, in the order `-o wide` shows them.
pub const FIELDS: [&str; 14] = [
    "state",
    "guest",
    "kind",
    "host",
    "host_if",
    "ifname",
    "address",
    "addresses",
    "mac",
    "vlan",
    "dhcp",
    "engine",
    "id",
    "netns",
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
    /// `table …` or a field list: a header line first.
    header: bool,
    /// A field list: columns padded to their widest value.
    columns: bool,
}

fn field(name: &str, whole: &str) -> Result<&'static str, Error> {
    let key = name.trim().to_ascii_lowercase().replace('-', "_");
    // Docker's and our own spellings of the same thing.
    let key = match key.as_str() {
        "hostif" | "host_ifname" | "hostifname" => "host_if".to_string(),
        "host_interface" | "hostinterface" => "host".to_string(),
        "interface" => "ifname".to_string(),
        "name" => "guest".to_string(),
        _ => key,
    };
    FIELDS.iter().copied().find(|f| *f == key).ok_or_else(|| {
        let near = FIELDS
            .iter()
            .map(|f| (strsim::damerau_levenshtein(&key, f), *f))
            .min()
            .filter(|(d, _)| *d <= 2)
            .map(|(_, f)| format!(" (did you mean {f}?)"))
            .unwrap_or_default();
        Error::Invalid(format!(
            "--format '{whole}': no field '{}'{near}; fields are {}",
            name.trim(),
            FIELDS.join(", ")
        ))
    })
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, Error> {
        if text.trim().is_empty() {
            return Err(Error::Invalid(
                "--format '': give a template ('{{.Guest}} {{.Address}}') or fields (guest,address)"
                    .into(),
            ));
        }
        if !text.contains("{{") {
            let pieces = text
                .split(',')
                .map(|f| field(f, text).map(Piece::Field))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Template {
                pieces,
                header: true,
                columns: true,
            });
        }
        let (header, body) = match text.strip_prefix("table ") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let body = body.replace("\\t", "\t").replace("\\n", "\n");
        let mut pieces = Vec::new();
        let mut rest = body.as_str();
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                pieces.push(Piece::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or_else(|| {
                Error::Invalid(format!("--format '{text}': a '{{{{' without its '}}}}'"))
            })?;
            let inner = after[..end].trim();
            let name = inner.strip_prefix('.').ok_or_else(|| {
                Error::Invalid(format!(
                    "--format '{text}': '{{{{{inner}}}}}' is not a field: write {{{{.Field}}}}"
                ))
            })?;
            pieces.push(Piece::Field(field(name, text)?));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Template {
            pieces,
            header,
            columns: false,
        })
    }

    /// One line per attachment (and the header when asked for).
    pub fn render(&self, rows: &[Listed]) -> String {
        let lines: Vec<Vec<String>> = rows
            .iter()
            .map(|l| {
                self.pieces
                    .iter()
                    .map(|p| match p {
                        Piece::Text(t) => t.clone(),
                        Piece::Field(f) => value(l, f),
                    })
                    .collect()
            })
            .collect();
        let header: Vec<String> = self
            .pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.clone(),
                Piece::Field(f) => f.to_ascii_uppercase(),
            })
            .collect();
        let mut all = Vec::new();
        if self.header {
            all.push(header);
        }
        all.extend(lines);
        if !self.columns {
            return all
                .iter()
                .map(|l| l.concat())
                .collect::<Vec<_>>()
                .join("\n");
        }
        let n = self.pieces.len();
        let widths: Vec<usize> = (0..n)
            .map(|i| all.iter().map(|l| l[i].chars().count()).max().unwrap_or(0))
            .collect();
        all.iter()
            .map(|l| {
                l.iter()
                    .enumerate()
                    .map(|(i, v)| {
                        if i + 1 == n {
                            v.clone()
                        } else {
                            format!("{v:<w$}", w = widths[i])
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_string()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A field's text: `-` where there is nothing.
pub fn value(l: &Listed, f: &str) -> String {
    let or = |o: Option<String>| o.unwrap_or_else(|| "-".into());
    match f {
        "state" => l.state.to_string(),
        "guest" => l.guest_name.clone().unwrap_or_else(|| l.guest.clone()),
        "kind" => l.kind.to_string(),
        "host" => l.host_interface.clone(),
        "host_if" => or(l.host_ifname.clone()),
        "ifname" => l.ifname.clone(),
        "address" => or(l.address.clone()),
        "addresses" => {
            if l.addresses.is_empty() {
                "-".into()
            } else {
                l.addresses.join(",")
            }
        }
        "mac" => or(l.mac.clone()),
        "vlan" => or(l.vlan.map(|v| v.to_string())),
        "dhcp" => match (&l.client, l.pid) {
            (Some(c), Some(p)) => format!("{c} (pid {p})"),
            _ => "-".into(),
        },
        "engine" => serde_json::to_value(l.engine)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| format!("{:?}", l.engine).to_ascii_lowercase()),
        "id" => or(l.guest_id.clone()),
        "netns" => l.netns_inode.to_string(),
        _ => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed() -> Listed {
        Listed {
            state: "alive",
            guest: "docker:web1".into(),
            engine: crate::guest::Engine::Docker,
            guest_id: Some("abc123".into()),
            guest_name: Some("web1".into()),
            guest_pid: Some(42),
            netns_inode: 4026532000,
            kind: crate::request::Kind::Bridge,
            host_interface: "br1".into(),
            host_ifname: Some("veth1pl42".into()),
            ifname: "eth1".into(),
            address: Some("10.0.0.5/24".into()),
            addresses: vec!["10.0.0.5/24".into()],
            mac: Some("02:00:00:00:00:01".into()),
            vlan: None,
            pid: None,
            client: None,
            pidfile: None,
        }
    }

    #[test]
    fn a_template_fills_its_fields() {
        let t = Template::parse("{{.Guest}} {{ .Address }}\\t{{.vlan}}").unwrap();
        assert_eq!(t.render(&[listed()]), "web1 10.0.0.5/24\t-");
    }

    #[test]
    fn table_adds_a_header() {
        let t = Template::parse("table {{.Guest}} {{.IfName}}").unwrap();
        assert_eq!(t.render(&[listed()]), "GUEST IFNAME\nweb1 eth1");
    }

    #[test]
    fn a_field_list_is_a_padded_table() {
        let t = Template::parse("guest,host_if,mac").unwrap();
        assert_eq!(
            t.render(&[listed()]),
            "GUEST  HOST_IF    MAC\nweb1   veth1pl42  02:00:00:00:00:01"
        );
    }

    #[test]
    fn every_field_has_a_value() {
        for f in FIELDS {
            assert!(!value(&listed(), f).is_empty(), "{f}");
        }
        assert_eq!(value(&listed(), "engine"), "docker");
    }

    #[test]
    fn mistakes_are_clear_errors() {
        let e = Template::parse("{{.Adress}}").unwrap_err().to_string();
        assert!(
            e.contains("no field 'Adress'") && e.contains("did you mean address?"),
            "{e}"
        );
        let e = Template::parse("{{.Guest").unwrap_err().to_string();
        assert!(e.contains("without its"), "{e}");
        let e = Template::parse("{{Guest}}").unwrap_err().to_string();
        assert!(e.contains("write {{.Field}}"), "{e}");
        let e = Template::parse("guest,,ifname").unwrap_err().to_string();
        assert!(e.contains("no field ''"), "{e}");
        assert!(Template::parse("  ").is_err());
    }
}
