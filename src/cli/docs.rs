//! Shell completions (clap_complete) and man pages (clap_mangen), both made from the
//! grammar's own clap definitions (`grammar::command`), so they cannot drift from the parser.

use std::io::Write;
use std::path::Path;

use clap_complete::Shell;

use crate::error::Error;

/// The man page's EXAMPLES: the README's examples, one per capability.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "Attach container web1 to bridge br1 (created if missing) with an address and a gateway",
        "pipework br1 web1 192.168.1.5/24@192.168.1.1",
    ),
    (
        "Get the address by DHCP, and keep renewing the lease",
        "pipework br1 web1 dhcp:-f",
    ),
    (
        "Name the interface inside the container, and set its MAC address",
        "pipework br1 -i eth2 web1 10.0.0.5/24 26:2e:71:98:60:8f",
    ),
    (
        "A port of an Open vSwitch bridge, on VLAN 10",
        "pipework ovsbr0 web1 10.0.0.5/24@10.0.0.1 @10",
    ),
    (
        "A macvlan child of the host's NIC eth0",
        "pipework eth0 web1 192.168.1.50/24@192.168.1.1",
    ),
    (
        "Move the NIC itself into the container",
        "pipework --direct-phys eth1 web1 10.0.0.5/24",
    ),
    (
        "A named network namespace as the guest, and IPv6",
        "pipework br1 netns:lab1 2001:db8::5/64",
    ),
    (
        "Inside the container: wait until eth1 is up",
        "pipework --wait -i eth1 --timeout 30",
    ),
    (
        "A route inside the guest",
        "pipework route web1 add 10.2.0.0/16 via 10.0.0.1",
    ),
    (
        "What pipework made, with every column",
        "pipework ls -o wide",
    ),
    (
        "Just the guests and their addresses",
        "pipework ls --format '{{.Guest}} {{.Address}}'",
    ),
    ("Remove every attachment of web1", "pipework detach web1"),
    ("Remove what stale attachments left behind", "pipework gc"),
    (
        "Keep containers plumbed across restarts",
        "pipework watch --rules /etc/pipework/rules.json",
    ),
    (
        "A lab file: see, apply, and later destroy it",
        "pipework plan lab.yaml; pipework apply lab.yaml; pipework destroy lab.yaml",
    ),
    (
        "One host's share of a multi-host lab",
        "pipework apply stretch.yaml --host a",
    ),
    (
        "Stretch bridge br9 to two other hosts over VXLAN",
        "pipework stretch br9 --vni 77 --remote 192.0.2.20 --remote 192.0.2.30",
    ),
    (
        "What this machine can do, and what is missing",
        "pipework doctor",
    ),
    (
        "Bash completion for this shell",
        "source <(pipework completions bash)",
    ),
];

pub fn completions(shell: &str, out: &mut dyn Write) -> Result<(), Error> {
    let sh = match shell {
        "bash" => Shell::Bash,
        "zsh" => Shell::Zsh,
        "fish" => Shell::Fish,
        other => {
            return Err(Error::Invalid(format!(
                "completions {other}: give bash, zsh or fish"
            )))
        }
    };
    let mut cmd = crate::grammar::command();
    let mut buf = Vec::new();
    clap_complete::generate(sh, &mut cmd, "pipework", &mut buf);
    if sh == Shell::Fish {
        // clap_complete's fish script offers no values of positional arguments: the guest
        // kinds where a guest goes, and the shells, added here.
        let guests: Vec<&str> = crate::grammar::SUBCOMMANDS
            .iter()
            .filter(|s| {
                s.args
                    .iter()
                    .any(|(_, v)| *v == crate::grammar::Value::Guest)
            })
            .map(|s| s.name)
            .collect();
        buf.extend_from_slice(
            format!(
                "complete -c pipework -n \"__fish_seen_subcommand_from {}\" -f -a \"{}\"\n\
                 complete -c pipework -n \"__fish_seen_subcommand_from completions\" -f -a \"{}\"\n",
                guests.join(" "),
                crate::grammar::GUEST_KINDS.join(" "),
                crate::grammar::SHELLS.join(" ")
            )
            .as_bytes(),
        );
    }
    quiet_pipe(out.write_all(&buf)).map_err(|e| Error::io("cannot write the completions", e))
}

/// A reader that went away (`| head`) is fine.
fn quiet_pipe(r: std::io::Result<()>) -> std::io::Result<()> {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

/// roff text with its special characters escaped (a backslash; a line starting with `.` or `'`).
fn roff_text(s: &str) -> String {
    let s = s.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

fn examples_section() -> String {
    let mut s = String::from(".SH EXAMPLES\n");
    for (what, cmd) in EXAMPLES {
        s.push_str(&format!(
            ".PP\n{}\n.PP\n.RS 4\n.nf\n{}\n.fi\n.RE\n",
            roff_text(what),
            roff_text(cmd)
        ));
    }
    s.push_str(
        ".SH SEE ALSO\n\\fBip\\fR(8), \\fBbridge\\fR(8), \\fBtc\\fR(8), \\fBovs\\-vsctl\\fR(8), \
         and the pages \\fBpipework\\-\\fR\\fIcommand\\fR(1)\n",
    );
    s
}

/// pipework(1): the clap page with the examples before its version section.
pub fn main_page() -> Result<Vec<u8>, Error> {
    let cmd = crate::grammar::command();
    let man = clap_mangen::Man::new(cmd.clone());
    let mut out = Vec::new();
    let io = |e| Error::io("cannot render the man page", e);
    man.render_title(&mut out).map_err(io)?;
    man.render_name_section(&mut out).map_err(io)?;
    // The original's usage lines, not clap's list of every option.
    out.extend_from_slice(b".SH SYNOPSIS\n.nf\n");
    for l in crate::grammar::USAGE.lines() {
        out.extend_from_slice(roff_text(l.trim_start()).as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b".fi\n");
    man.render_description_section(&mut out).map_err(io)?;
    man.render_options_section(&mut out).map_err(io)?;
    man.render_subcommands_section(&mut out).map_err(io)?;
    man.render_extra_section(&mut out).map_err(io)?;
    out.extend_from_slice(examples_section().as_bytes());
    man.render_version_section(&mut out).map_err(io)?;
    Ok(out)
}

/// Every page: pipework.1 and pipework-COMMAND.1 for each command.
pub fn pages() -> Result<Vec<(String, Vec<u8>)>, Error> {
    let mut v = vec![("pipework.1".to_string(), main_page()?)];
    let cmd = crate::grammar::command();
    for sub in cmd.get_subcommands() {
        let name = format!("pipework-{}", sub.get_name());
        let page = sub
            .clone()
            .name(name.clone())
            .version(cmd.get_version().unwrap_or_default().to_string());
        let mut out = Vec::new();
        clap_mangen::Man::new(page)
            .render(&mut out)
            .map_err(|e| Error::io("cannot render the man page", e))?;
        v.push((format!("{name}.1"), out));
    }
    Ok(v)
}

/// `pipework man [DIR]`: pipework(1) on stdout, or every page into DIR (made if missing).
pub fn man(dir: Option<&Path>, out: &mut dyn Write) -> Result<Vec<String>, Error> {
    let Some(dir) = dir else {
        quiet_pipe(out.write_all(&main_page()?))
            .map_err(|e| Error::io("cannot write the man page", e))?;
        return Ok(Vec::new());
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("cannot make {}", dir.display()), e))?;
    let mut written = Vec::new();
    for (name, text) in pages()? {
        let p = dir.join(&name);
        std::fs::write(&p, text)
            .map_err(|e| Error::io(format!("cannot write {}", p.display()), e))?;
        written.push(p.display().to_string());
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(shell: &str) -> String {
        let mut v = Vec::new();
        completions(shell, &mut v).unwrap();
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn every_shell_knows_every_command_and_the_guest_kinds() {
        for sh in crate::grammar::SHELLS {
            let t = text(sh);
            for sc in crate::grammar::SUBCOMMANDS {
                assert!(t.contains(sc.name), "{sh}: {}", sc.name);
            }
            let t = t.replace("\\:", ":");
            assert!(t.contains("docker:") && t.contains("netns:"), "{sh}");
            assert!(t.contains("--json") || t.contains("json"), "{sh}");
        }
        assert!(completions("tcsh", &mut Vec::new()).is_err());
    }

    #[test]
    fn the_man_page_has_the_commands_and_the_examples() {
        let page = String::from_utf8(main_page().unwrap()).unwrap();
        assert!(
            page.starts_with(".ie") || page.contains(".TH pipework"),
            "{}",
            &page[..200]
        );
        assert!(page.contains(".SH EXAMPLES") && page.contains(".SH SYNOPSIS"));
        assert!(page.contains("pipework br1 web1 192.168.1.5/24@192.168.1.1"));
        for sc in crate::grammar::SUBCOMMANDS {
            assert!(page.contains(sc.name), "{}", sc.name);
        }
        let all = pages().unwrap();
        assert_eq!(all.len(), crate::grammar::SUBCOMMANDS.len() + 1);
        assert!(all.iter().any(|(n, _)| n == "pipework-doctor.1"));
    }

    #[test]
    fn every_example_parses() {
        for (_, cmd) in EXAMPLES {
            for one in cmd.split("; ") {
                if one.starts_with("source ") {
                    continue;
                }
                let argv: Vec<std::ffi::OsString> =
                    shell_words(one).into_iter().map(Into::into).collect();
                crate::cli::parse_argv(&argv).unwrap_or_else(|e| panic!("{one}: {e}"));
            }
        }
    }

    /// Words of a command with single quotes (all the examples use).
    fn shell_words(s: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = String::new();
        let mut quoted = false;
        for c in s.chars() {
            match c {
                '\'' => quoted = !quoted,
                ' ' if !quoted => {
                    if !cur.is_empty() {
                        out.push(std::mem::take(&mut cur));
                    }
                }
                c => cur.push(c),
            }
        }
        if !cur.is_empty() {
            out.push(cur);
        }
        out
    }
}
