//! The command line's grammar: the original's positional words on top of clap, into typed
//! requests. Shared by the CLI and by `watch` (whose labels and rules use it without the guest).
//!
//! ```text
//! pipework [OPTIONS] <hostif> [-i IF] [-l LOCAL] [-a 4|6] <guest> <ip>/<len>[@gw]|0/0 [mac|U:str][@vlan]
//! pipework [OPTIONS] route|rule|tc <guest> ARGS…
//! pipework --wait [-i IF] [--timeout S]
//! ```
//! Options may stand before the host interface (like the original's `--direct-phys`) or after
//! the positional arguments. For route/rule/tc everything after the guest is passed verbatim.

use std::time::Duration;

use clap::{ArgAction, CommandFactory, Parser};

use crate::error::Error;
use crate::guest::GuestSpec;
use crate::request::MacvlanMode;
use crate::request::{
    Addressing, AttachRequest, Command, ExecRequest, Family, HostIfSpec, ListView, MacVlan, Tool,
    WaitRequest,
};

pub const USAGE: &str = "\
pipework <hostinterface> [-i containerinterface] [-l localinterfacename] [-a addressfamily] <guest> <ipaddr>/<subnet>[@default_gateway] [macaddr][@vlan]
       pipework mac:<hostinterface_macaddress> [-i containerinterface] [-l localinterfacename] [-a addressfamily] <guest> <ipaddr>/<subnet>[@default_gateway] [macaddr][@vlan]
       pipework <hostinterface> <guest> 0/0
       pipework --direct-phys <hostinterface> [-i containerinterface] <guest> <ipaddr>/<subnet>[@default_gateway] [macaddr]
       pipework dummy <guest> <ipaddr>/<subnet>[@default_gateway]
       pipework ls [-o wide] [--format TEMPLATE|FIELDS] [--json]
       pipework check [<guest> [-i containerinterface]] [--json]
       pipework detach <guest> [-i containerinterface] | pipework detach --all
       pipework gc [--dry-run]
       pipework watch [--rules FILE] [--lab FILE]
       pipework plan|apply <labfile> [--host NAME] [--json]
       pipework destroy <lab>|<labfile> [--json]
       pipework ls --lab <lab>|<labfile> [--json]
       pipework graph <labfile> [--format dot|mermaid|svg]
       pipework stretch <bridge> --vni N --remote ADDR [--remote ADDR ...] [--port P]
       pipework route <guest> <route_command>
       pipework rule <guest> <rule_command>
       pipework tc <guest> <tc_command>
       pipework doctor [--json]
       pipework completions bash|zsh|fish
       pipework man [DIR]
       pipework --wait [-i containerinterface] [--timeout SECONDS]";

const AFTER_HELP: &str = "\
<guest> is a container (Docker, Podman, LXC: name or ID), a PID, a named network namespace
(ip netns add NAME), or a namespace file path; force one kind with docker:NAME, podman:NAME,
lxc:NAME, containerd:NS/ID, netns:NAME or pid:N.
<ipaddr> may be a DHCP client instead: dhcp, dhcp:-f, dhcp6, slaac, udhcpc, dhclient, dhcpcd.
<macaddr> may be U:<string> for a MAC derived from the string (stable across restarts).
-v logs each step, -vv debug detail; or PIPEWORK_LOG=debug (a tracing filter). NO_COLOR turns
colour off; progress and colour appear only on a terminal, never with --json.
Exit status: 0 done, 1 failed (nothing left behind), 2 bad command line or value.";

#[derive(Parser, Debug)]
#[command(
    name = "pipework",
    version,
    about = "Software-defined networking for Linux containers",
    override_usage = USAGE,
    after_help = AFTER_HELP
)]
struct Cli {
    /// Guest-side interface name (default eth1)
    #[arg(short = 'i', value_name = "containerinterface")]
    guest_if: Option<String>,
    /// Host-side interface name (default v<IF>pl<PID>)
    #[arg(short = 'l', value_name = "localinterfacename")]
    local_if: Option<String>,
    /// Address family, 4 or 6 (inferred from the address; accepted for compatibility)
    #[arg(short = 'a', value_name = "addressfamily", allow_hyphen_values = true)]
    family: Option<String>,
    /// Print what was done as one JSON object
    #[arg(long)]
    json: bool,
    /// Log each step on stderr (-vv: debug detail; PIPEWORK_LOG=FILTER overrides)
    #[arg(short = 'v', long, action = ArgAction::Count)]
    verbose: u8,
    /// With ls: `wide` for every column
    #[arg(short = 'o', long, value_name = "wide")]
    output: Option<String>,
    /// MTU of the new interfaces (default: the host interface's)
    #[arg(long, value_name = "N")]
    mtu: Option<u32>,
    /// Show the plan without changing anything
    #[arg(long)]
    dry_run: bool,
    /// Move the host interface itself into the guest (instead of a macvlan child)
    #[arg(long)]
    direct_phys: bool,
    /// Datapath type of an Open vSwitch bridge that pipework creates (e.g. netdev)
    #[arg(long, value_name = "TYPE")]
    ovs_datapath: Option<String>,
    /// Mode of macvlan children of a physical interface: bridge, private, vepa, passthru
    #[arg(long, value_name = "MODE")]
    macvlan_mode: Option<String>,
    /// With dhcp: keep a client running that renews the lease (same as dhcp:-f)
    #[arg(long)]
    dhcp_keep: bool,
    /// With dhcp: seconds to wait for a lease (default 10)
    #[arg(long, value_name = "SECONDS")]
    dhcp_timeout: Option<f64>,
    /// With dhcp: write the lease's DNS servers to the guest's resolv.conf
    #[arg(long)]
    dns_resolv: bool,
    /// With detach: every attachment pipework made
    #[arg(long)]
    all: bool,
    /// With watch: a JSON file of rules (match by name/label/image → attachments)
    #[arg(long, value_name = "FILE")]
    rules: Option<std::path::PathBuf>,
    /// With ls: a lab's objects (LAB or FILE); with watch: re-converge a lab FILE's guests
    #[arg(long, value_name = "LAB|FILE")]
    lab: Option<String>,
    /// With plan/apply of a multi-host lab: which of its hosts this is (default: the host
    /// whose address this machine has)
    #[arg(long, value_name = "NAME")]
    host: Option<String>,
    /// With stretch: the VXLAN network identifier (1 to 16777215)
    #[arg(long, value_name = "N")]
    vni: Option<u32>,
    /// With stretch: another host's underlay address (repeat for each)
    #[arg(long, value_name = "ADDR")]
    remote: Vec<std::net::IpAddr>,
    /// With stretch: the VXLAN UDP port (default 4789)
    #[arg(long, value_name = "P")]
    port: Option<u16>,
    /// With graph: dot, mermaid or svg (default dot); with ls: a template of {{.Field}}
    /// placeholders, or a comma-separated field list
    #[arg(long, value_name = "FORMAT")]
    format: Option<String>,
    /// Wait (inside a guest) until the interface is up
    #[arg(long)]
    wait: bool,
    /// With --wait: give up after this many seconds (default: wait forever, like the original)
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<f64>,
    #[arg(value_name = "ARGS")]
    args: Vec<String>,
}

/// Options that apply to every command.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    pub json: bool,
    /// -v or more.
    pub verbose: bool,
    /// How many -v: 1 steps, 2 debug, 3 trace.
    pub verbosity: u8,
    pub dry_run: bool,
}

#[derive(Debug)]
pub enum Invocation {
    Run(Box<Command>, Options),
    /// --help / --version: text for stdout, exit 0.
    Print(String),
}

/// Options of ours that take a value as the next word.
const VALUE_OPTS: [&str; 17] = [
    "-o",
    "--output",
    "--host",
    "--vni",
    "--remote",
    "--port",
    "--rules",
    "--lab",
    "--format",
    "-i",
    "-l",
    "-a",
    "--mtu",
    "--timeout",
    "--ovs-datapath",
    "--macvlan-mode",
    "--dhcp-timeout",
];

/// For route/rule/tc, cuts argv after the guest: the rest belongs to `ip`/`tc` untouched (it
/// may hold words like `-6` that must not be read as our options).
fn split_passthrough(argv: &[String]) -> (Vec<String>, Vec<String>) {
    let mut positionals = 0;
    let mut is_tool = false;
    let mut i = 1;
    while i < argv.len() {
        let a = &argv[i];
        if VALUE_OPTS.contains(&a.as_str()) {
            i += 2;
            continue;
        }
        if a.starts_with('-') && a.len() > 1 {
            i += 1;
            continue;
        }
        positionals += 1;
        if positionals == 1 {
            is_tool = Tool::from_word(a).is_some();
            if !is_tool {
                break;
            }
        } else if positionals == 2 && is_tool {
            return (argv[..=i].to_vec(), argv[i + 1..].to_vec());
        }
        i += 1;
    }
    (argv.to_vec(), Vec::new())
}

pub fn parse(argv: &[String]) -> Result<Invocation, Error> {
    let (front, passthrough) = split_passthrough(argv);
    let cli = match Cli::try_parse_from(&front) {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    Ok(Invocation::Print(e.to_string()))
                }
                _ => Err(Error::Usage(e.to_string().trim_end().to_string())),
            };
        }
    };
    let opts = Options {
        json: cli.json,
        verbose: cli.verbose > 0,
        verbosity: cli.verbose,
        dry_run: cli.dry_run,
    };

    if cli.wait {
        if !cli.args.is_empty() {
            return Err(Error::Usage(format!(
                "--wait takes no positional arguments (got '{}'); usage: pipework --wait [-i IF] [--timeout S]",
                cli.args.join(" ")
            )));
        }
        let ifname = cli.guest_if.unwrap_or_else(|| "eth1".into());
        crate::naming::validate_ifname(&ifname, "interface (-i)")?;
        // try_: a finite number of seconds can still be too large for a Duration (1e300).
        let timeout = match cli.timeout.map(|t| (t, Duration::try_from_secs_f64(t))) {
            None => None,
            Some((_, Ok(d))) => Some(d),
            Some((t, Err(_))) => {
                return Err(Error::Invalid(format!(
                    "--timeout {t}: give a number of seconds ≥ 0"
                )))
            }
        };
        return Ok(Invocation::Run(
            Box::new(Command::Wait(WaitRequest { ifname, timeout })),
            opts,
        ));
    }

    let first = cli
        .args
        .first()
        .ok_or_else(|| syntax("missing arguments"))?;
    if cli.host.is_some() && !matches!(first.as_str(), "plan" | "apply") {
        return Err(syntax(
            "--host goes with plan and apply of a multi-host lab",
        ));
    }
    if (cli.output.is_some() || cli.format.is_some() && first != "graph") && first != "ls" {
        return Err(syntax(
            "-o and --format go with ls (and --format with graph)",
        ));
    }
    let stretching = cli.vni.is_some() || !cli.remote.is_empty() || cli.port.is_some();
    if stretching && first != "stretch" {
        return Err(syntax("--vni, --remote and --port go with stretch"));
    }
    match (first.as_str(), &cli.args[1..]) {
        ("stretch", [bridge]) => {
            crate::naming::validate_ifname(bridge, "bridge")?;
            let vni = cli.vni.ok_or_else(|| {
                syntax("stretch needs --vni N (the same on every host of the bridge)")
            })?;
            if !(1..=crate::lab::MAX_VNI).contains(&vni) {
                return Err(Error::Invalid(format!(
                    "--vni {vni}: a VXLAN network identifier is 1 to {}",
                    crate::lab::MAX_VNI
                )));
            }
            if cli.remote.is_empty() {
                return Err(syntax(
                    "stretch needs --remote ADDR for each other host (its underlay address)",
                ));
            }
            if cli.port == Some(0) {
                return Err(Error::Invalid("--port 0: give 1 to 65535".into()));
            }
            return Ok(Invocation::Run(
                Box::new(Command::Stretch {
                    bridge: bridge.clone(),
                    vni,
                    remotes: cli.remote,
                    port: cli.port.unwrap_or(crate::lab::VXLAN_PORT),
                }),
                opts,
            ));
        }
        ("stretch", _) => {
            return Err(syntax(
                "stretch takes one bridge: pipework stretch BRIDGE --vni N --remote ADDR…",
            ))
        }
        ("ls", []) => {
            let wide = match cli.output.as_deref() {
                None => false,
                Some("wide") => true,
                Some(o) => {
                    return Err(Error::Invalid(format!(
                        "-o {o}: ls knows -o wide (and --json, --format)"
                    )))
                }
            };
            if let Some(f) = &cli.format {
                crate::list_format::Template::parse(f)?;
            }
            let cmd = match cli.lab {
                Some(_) if wide || cli.format.is_some() => {
                    return Err(syntax("ls --lab takes neither -o nor --format"))
                }
                Some(target) => Command::LabList { target },
                None => Command::List(ListView {
                    wide,
                    format: cli.format,
                }),
            };
            return Ok(Invocation::Run(Box::new(cmd), opts));
        }
        ("doctor", []) => return Ok(Invocation::Run(Box::new(Command::Doctor), opts)),
        ("completions", [shell]) => {
            if !SHELLS.contains(&shell.as_str()) {
                return Err(Error::Invalid(format!(
                    "completions {shell}: give one of {}",
                    SHELLS.join(", ")
                )));
            }
            return Ok(Invocation::Run(
                Box::new(Command::Completions {
                    shell: shell.clone(),
                }),
                opts,
            ));
        }
        ("completions", _) => {
            return Err(syntax(
                "completions takes one shell: pipework completions bash|zsh|fish",
            ))
        }
        ("man", rest) if rest.len() <= 1 => {
            return Ok(Invocation::Run(
                Box::new(Command::Man {
                    dir: rest.first().map(Into::into),
                }),
                opts,
            ))
        }
        ("man", _) => {
            return Err(syntax(
                "man takes at most one directory: pipework man [DIR]",
            ))
        }
        ("plan", [file]) => {
            return Ok(Invocation::Run(
                Box::new(Command::LabPlan {
                    file: file.into(),
                    host: cli.host,
                }),
                opts,
            ))
        }
        ("apply", [file]) => {
            return Ok(Invocation::Run(
                Box::new(Command::LabApply {
                    file: file.into(),
                    host: cli.host,
                }),
                opts,
            ))
        }
        ("destroy", [target]) => {
            return Ok(Invocation::Run(
                Box::new(Command::LabDestroy {
                    target: target.clone(),
                }),
                opts,
            ))
        }
        ("graph", [file]) => {
            return Ok(Invocation::Run(
                Box::new(Command::LabGraph {
                    file: file.into(),
                    format: cli.format.unwrap_or_else(|| "dot".into()),
                }),
                opts,
            ))
        }
        ("plan" | "apply" | "graph", _) => {
            return Err(syntax(&format!(
                "{first} takes one lab file: pipework {first} FILE"
            )))
        }
        ("destroy", _) => {
            return Err(syntax(
                "destroy takes one lab name or file: pipework destroy LAB|FILE",
            ))
        }
        ("check", rest) if rest.len() <= 1 => {
            let t = match rest.first() {
                None => crate::request::Target::All,
                Some(g) => crate::request::Target::Guest {
                    spec: g.clone(),
                    ifname: target_ifname(cli.guest_if)?,
                },
            };
            return Ok(Invocation::Run(Box::new(Command::Check(t)), opts));
        }
        ("check", _) => return Err(syntax("check takes at most one guest")),
        ("gc", []) => return Ok(Invocation::Run(Box::new(Command::Gc), opts)),
        ("watch", []) => {
            return Ok(Invocation::Run(
                Box::new(Command::Watch {
                    rules: cli.rules,
                    lab: cli.lab.map(Into::into),
                }),
                opts,
            ))
        }
        ("detach", []) if cli.all => {
            return Ok(Invocation::Run(
                Box::new(Command::Detach(crate::request::Target::All)),
                opts,
            ))
        }
        ("detach", [guest]) if !cli.all => {
            return Ok(Invocation::Run(
                Box::new(Command::Detach(crate::request::Target::Guest {
                    spec: guest.clone(),
                    ifname: target_ifname(cli.guest_if)?,
                })),
                opts,
            ))
        }
        ("ls" | "gc" | "watch" | "doctor", _) => {
            return Err(syntax(&format!("{first} takes no arguments")))
        }
        ("detach", _) => {
            return Err(syntax(
                "detach takes one guest (pipework detach GUEST [-i IF]) or --all",
            ))
        }
        _ => {}
    }
    if let Some(tool) = Tool::from_word(first) {
        let guest = cli
            .args
            .get(1)
            .ok_or_else(|| syntax(&format!("'{first}' needs a guest")))?;
        let mut args = cli.args[2..].to_vec();
        args.extend(passthrough);
        if args.is_empty() {
            return Err(syntax(&format!("'{first}' needs arguments for the tool")));
        }
        return Ok(Invocation::Run(
            Box::new(Command::Exec(ExecRequest {
                tool,
                guest: GuestSpec::parse(guest)?,
                args,
            })),
            opts,
        ));
    }

    let (host_if, guest, addr, last) = match cli.args.as_slice() {
        [h, g, a] => (h.clone(), g.clone(), a.clone(), None),
        [h, g, a, m] => (h.clone(), g.clone(), a.clone(), Some(m.clone())),
        [_] | [_, _] => return Err(syntax("missing <guest> or <ipaddr>/<subnet>")),
        _ => {
            return Err(syntax(&format!(
                "too many arguments: '{}'",
                cli.args[4..].join(" ")
            )))
        }
    };
    let req = build_attach(
        cli,
        &host_if,
        GuestSpec::parse(&guest)?,
        &addr,
        last.as_deref(),
    )?;
    Ok(Invocation::Run(
        Box::new(Command::Attach(Box::new(req))),
        opts,
    ))
}

/// The typed parser of an attachment spec without its guest (`br1 -i eth2 10.0.0.5/24@10.0.0.1
/// [MAC][@VLAN]`): the command line's own grammar, for `watch`'s labels and rules files (and
/// any front end that names the guest itself).
pub fn parse_attach_spec(spec: &str, guest: GuestSpec) -> Result<AttachRequest, Error> {
    let words: Vec<&str> = spec.split_whitespace().collect();
    if words.is_empty() {
        return Err(Error::Invalid("empty attachment spec".into()));
    }
    let cli = Cli::try_parse_from(std::iter::once("pipework").chain(words.iter().copied()))
        .map_err(|e| Error::Invalid(format!("'{spec}': {}", e.to_string().trim_end())))?;
    if cli.wait || cli.all || cli.rules.is_some() || cli.dry_run || cli.json || cli.verbose > 0 {
        return Err(Error::Invalid(format!(
            "'{spec}' is not an attachment (no --wait, --all, --rules, --dry-run or --json in a spec)"
        )));
    }
    let (host_if, addr, last) = match cli.args.as_slice() {
        [h, a] => (h.clone(), a.clone(), None),
        [h, a, m] => (h.clone(), a.clone(), Some(m.clone())),
        _ => {
            return Err(Error::Invalid(format!(
                "'{spec}' is not an attachment: give <hostinterface> [options] <ipaddr>/<subnet>[@gateway] [macaddr][@vlan]"
            )))
        }
    };
    if Tool::from_word(&host_if).is_some() || SUBCOMMANDS.iter().any(|s| s.name == host_if) {
        return Err(Error::Invalid(format!("'{spec}' is not an attachment")));
    }
    build_attach(cli, &host_if, guest, &addr, last.as_deref())
}

fn build_attach(
    cli: Cli,
    host_if: &str,
    guest: GuestSpec,
    addr: &str,
    last: Option<&str>,
) -> Result<AttachRequest, Error> {
    let macvlan = match last {
        Some(m) => MacVlan::parse(m)?,
        None => MacVlan::default(),
    };
    let mut addressing = Addressing::parse(addr)?;
    if let Addressing::Dhcp(d) = &mut addressing {
        d.keep |= cli.dhcp_keep;
    }
    let dhcp_timeout = match cli.dhcp_timeout {
        None => Duration::from_secs(10),
        Some(t) if t.is_finite() && t > 0.0 && t <= 3600.0 => Duration::from_secs_f64(t),
        Some(t) => {
            return Err(Error::Invalid(format!(
                "--dhcp-timeout {t}: give a number of seconds from 0 to 3600"
            )))
        }
    };
    let req = AttachRequest {
        host_if: HostIfSpec::parse(host_if)?,
        guest,
        guest_ifname: cli.guest_if,
        host_ifname: cli.local_if,
        family: cli.family.as_deref().map(Family::parse).transpose()?,
        addressing,
        mac: macvlan.mac,
        tag: macvlan.tag,
        mtu: cli.mtu,
        direct_phys: cli.direct_phys,
        ovs_datapath: cli.ovs_datapath,
        macvlan_mode: cli
            .macvlan_mode
            .as_deref()
            .map(MacvlanMode::parse)
            .transpose()?
            .unwrap_or_default(),
        dhcp_timeout,
        dns_resolv: cli.dns_resolv,
        kind: None,
        bridge: Default::default(),
        guest_link_down: false,
        dad: false,
        owner: None,
    };
    req.validate()?;
    Ok(req)
}

/// `-i` of check/detach: a name Linux could have (found by fuzzing: it was taken as given, so
/// `detach web1 -i <20 bytes>` looked for an interface no guest can have).
fn target_ifname(ifname: Option<String>) -> Result<Option<String>, Error> {
    if let Some(n) = &ifname {
        crate::naming::validate_ifname(n, "interface (-i)")?;
    }
    Ok(ifname)
}

/// Shells `pipework completions` writes for.
pub const SHELLS: [&str; 3] = ["bash", "zsh", "fish"];

/// Guest kinds, offered by the completions where a guest goes.
pub const GUEST_KINDS: [&str; 6] = [
    "docker:",
    "podman:",
    "lxc:",
    "containerd:",
    "netns:",
    "pid:",
];

/// A word of the command line that is a command rather than a host interface: what the
/// completions and man pages show of it. The parser above matches the same words; a test keeps
/// the two in step.
pub struct Subcommand {
    pub name: &'static str,
    pub about: &'static str,
    /// Positional arguments: name, and what goes there (guest, address, file, dir, shell,
    /// bridge, lab, tool args).
    pub args: &'static [(&'static str, Value)],
    /// Long options (of the global ones) that go with it.
    pub options: &'static [&'static str],
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Value {
    Guest,
    File,
    Dir,
    Shell,
    Name,
    Rest,
}

pub const SUBCOMMANDS: &[Subcommand] = &[
    Subcommand {
        name: "ls",
        about: "List the attachments pipework made (alive, stale or incomplete)",
        args: &[],
        options: &["output", "format", "lab", "json"],
    },
    Subcommand {
        name: "check",
        about: "Check that each attachment still matches its record",
        args: &[("guest", Value::Guest)],
        options: &["guest_if", "json"],
    },
    Subcommand {
        name: "detach",
        about: "Remove a guest's attachment (or a stretched bridge's VXLAN port), or --all",
        args: &[("guest", Value::Guest)],
        options: &["guest_if", "all", "dry_run", "json"],
    },
    Subcommand {
        name: "gc",
        about: "Remove what stale attachments and killed attaches left behind",
        args: &[],
        options: &["dry_run", "json"],
    },
    Subcommand {
        name: "watch",
        about: "Follow the engines' events: re-plumb restarted containers, apply rules and labs",
        args: &[],
        options: &["rules", "lab"],
    },
    Subcommand {
        name: "plan",
        about: "Show what applying a lab file would change",
        args: &[("labfile", Value::File)],
        options: &["host", "json"],
    },
    Subcommand {
        name: "apply",
        about: "Make the kernel as a lab file says (all or nothing)",
        args: &[("labfile", Value::File)],
        options: &["host", "json"],
    },
    Subcommand {
        name: "destroy",
        about: "Remove everything a lab made on this host",
        args: &[("lab", Value::File)],
        options: &["json"],
    },
    Subcommand {
        name: "graph",
        about: "Draw a lab file (dot, mermaid or svg)",
        args: &[("labfile", Value::File)],
        options: &["format"],
    },
    Subcommand {
        name: "stretch",
        about: "Stretch a bridge to other hosts over VXLAN",
        args: &[("bridge", Value::Name)],
        options: &["vni", "remote", "port", "json"],
    },
    Subcommand {
        name: "route",
        about: "Run `ip route` inside a guest",
        args: &[("guest", Value::Guest), ("route_command", Value::Rest)],
        options: &[],
    },
    Subcommand {
        name: "rule",
        about: "Run `ip rule` inside a guest",
        args: &[("guest", Value::Guest), ("rule_command", Value::Rest)],
        options: &[],
    },
    Subcommand {
        name: "tc",
        about: "Run `tc` inside a guest",
        args: &[("guest", Value::Guest), ("tc_command", Value::Rest)],
        options: &[],
    },
    Subcommand {
        name: "doctor",
        about: "Say what this machine can do and what is missing, with the fix",
        args: &[],
        options: &["json"],
    },
    Subcommand {
        name: "completions",
        about: "Print the shell completion script (bash, zsh or fish)",
        args: &[("shell", Value::Shell)],
        options: &[],
    },
    Subcommand {
        name: "man",
        about: "Print the man page, or write every page into DIR",
        args: &[("dir", Value::Dir)],
        options: &[],
    },
];

/// The clap definition the completions and man pages are made from: the parser's own options
/// (with their help), the subcommands above, and value hints for guests, addresses and files.
/// Never used to parse: the original's grammar is positional (see `parse`).
pub fn command() -> clap::Command {
    use clap::builder::PossibleValue;
    use clap::{Arg, ValueHint};
    let top = Cli::command();
    let global: Vec<Arg> = top.get_arguments().cloned().collect();
    let mut cmd = top
        .mut_arg("args", |a| {
            a.value_name("hostinterface").help(
                "Host interface (bridge, OVS bridge, NIC, mac:MAC, dummy), then guest, address",
            )
        })
        .subcommand_negates_reqs(true)
        .disable_help_subcommand(true)
        .args_conflicts_with_subcommands(false);
    for sc in SUBCOMMANDS {
        let mut sub = clap::Command::new(sc.name).about(sc.about);
        for (i, (name, v)) in sc.args.iter().enumerate() {
            let mut a = Arg::new(*name).index(i + 1);
            a = match v {
                Value::Guest => a
                    .help("Container name or ID, PID, named netns, or path; force a kind with KIND:NAME")
                    .value_parser(
                        GUEST_KINDS
                            .iter()
                            .map(|k| PossibleValue::new(*k))
                            .collect::<Vec<_>>(),
                    ),
                Value::File => a.value_hint(ValueHint::FilePath),
                Value::Dir => a.value_hint(ValueHint::DirPath),
                Value::Shell => a.value_parser(SHELLS),
                Value::Name => a.value_hint(ValueHint::Other),
                Value::Rest => a.num_args(1..).trailing_var_arg(true),
            };
            sub = sub.arg(a);
        }
        for id in sc.options {
            if let Some(a) = global.iter().find(|a| a.get_id() == *id) {
                sub = sub.arg(a.clone());
            }
        }
        cmd = cmd.subcommand(sub);
    }
    cmd
}

fn syntax(what: &str) -> Error {
    Error::Usage(format!("{what}\nUsage: {USAGE}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_listed_command_parses_as_itself() {
        let example = |name: &str| -> Vec<String> {
            let rest: &[&str] = match name {
                "ls" | "gc" | "watch" | "doctor" => &[],
                "check" | "detach" => &["web1"],
                "plan" | "apply" | "destroy" | "graph" => &["lab.yaml"],
                "stretch" => &["br9", "--vni", "7", "--remote", "192.0.2.2"],
                "route" | "rule" | "tc" => &["web1", "show"],
                "completions" => &["bash"],
                "man" => &[],
                other => panic!("no example for {other}: add one here"),
            };
            ["pipework", name]
                .iter()
                .chain(rest)
                .map(|s| s.to_string())
                .collect()
        };
        for sc in SUBCOMMANDS {
            let inv = parse(&example(sc.name)).unwrap_or_else(|e| panic!("{}: {e}", sc.name));
            let Invocation::Run(cmd, _) = inv else {
                panic!("{}", sc.name)
            };
            assert!(
                !matches!(*cmd, Command::Attach(_)),
                "{} parsed as an attach",
                sc.name
            );
        }
        // And the clap definition the completions use lists exactly these.
        let names: Vec<String> = command()
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .collect();
        assert_eq!(
            names,
            SUBCOMMANDS.iter().map(|s| s.name).collect::<Vec<_>>()
        );
        command().debug_assert();
    }

    #[test]
    fn ls_views_and_verbosity() {
        let p = |a: &[&str]| parse(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let Ok(Invocation::Run(c, o)) = p(&["pipework", "ls", "-o", "wide", "-vv"]) else {
            panic!()
        };
        assert_eq!(
            *c,
            Command::List(ListView {
                wide: true,
                format: None
            })
        );
        assert_eq!((o.verbose, o.verbosity), (true, 2));
        let Ok(Invocation::Run(c, _)) = p(&["pipework", "ls", "--format", "guest,mac"]) else {
            panic!()
        };
        assert_eq!(
            *c,
            Command::List(ListView {
                wide: false,
                format: Some("guest,mac".into())
            })
        );
        for (bad, want) in [
            (
                vec!["pipework", "ls", "-o", "tall"],
                "-o tall: ls knows -o wide",
            ),
            (
                vec!["pipework", "ls", "--format", "{{.Nope}}"],
                "no field 'Nope'",
            ),
            (
                vec!["pipework", "gc", "-o", "wide"],
                "-o and --format go with ls",
            ),
            (
                vec!["pipework", "ls", "--lab", "x", "-o", "wide"],
                "ls --lab takes neither",
            ),
            (
                vec!["pipework", "completions", "tcsh"],
                "give one of bash, zsh, fish",
            ),
            (
                vec!["pipework", "completions"],
                "completions takes one shell",
            ),
            (
                vec!["pipework", "man", "a", "b"],
                "man takes at most one directory",
            ),
            (vec!["pipework", "doctor", "x"], "doctor takes no arguments"),
        ] {
            let e = p(&bad).unwrap_err();
            assert!(e.to_string().contains(want), "{bad:?}: {e}");
            assert_eq!(e.exit_code(), 2, "{bad:?}");
        }
    }

    use super::*;

    fn unbox(i: Invocation) -> Option<(Command, Options)> {
        match i {
            Invocation::Run(c, o) => Some((*c, o)),
            Invocation::Print(_) => None,
        }
    }

    fn argv(s: &str) -> Vec<String> {
        std::iter::once("pipework")
            .chain(s.split_whitespace())
            .map(String::from)
            .collect()
    }

    fn attach(s: &str) -> (AttachRequest, Options) {
        match unbox(parse(&argv(s)).unwrap()) {
            Some((Command::Attach(r), o)) => (*r, o),
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn main_job() {
        let (r, o) = attach("br1 web1 192.168.1.5/24@192.168.1.1");
        assert_eq!(r.host_if, HostIfSpec::Name("br1".into()));
        assert_eq!(r.guest, GuestSpec::Auto("web1".into()));
        assert_eq!(
            r.addressing,
            Addressing::Static {
                address: "192.168.1.5/24".parse().unwrap(),
                gateway: Some("192.168.1.1".parse().unwrap())
            }
        );
        assert_eq!(o, Options::default());
    }

    #[test]
    fn original_flags_in_original_positions() {
        let (r, _) = attach("br1 -i eth2 -l hostapp1 -a 4 web1 192.168.4.25/20 26:2e:71:98:60:8f");
        assert_eq!(r.guest_ifname.as_deref(), Some("eth2"));
        assert_eq!(r.host_ifname.as_deref(), Some("hostapp1"));
        assert_eq!(r.family, Some(Family::V4));
        assert_eq!(r.mac.unwrap().to_string(), "26:2e:71:98:60:8f");
    }

    #[test]
    fn options_before_hostif_and_after_positionals() {
        let (r, o) = attach("--json --mtu 1400 br1 web1 10.0.0.2/24 -v");
        assert_eq!(r.mtu, Some(1400));
        assert!(o.json && o.verbose);
    }

    #[test]
    fn hashed_mac_and_mac_host_interface() {
        let (r, _) = attach("mac:02:00:00:00:00:01 web1 0/0 U:myhost.foo.com");
        assert_eq!(
            r.host_if,
            HostIfSpec::Mac("02:00:00:00:00:01".parse().unwrap())
        );
        assert_eq!(r.addressing, Addressing::None);
        assert_eq!(r.mac.unwrap().to_string(), "02:72:6c:cd:9b:8d");
    }

    #[test]
    fn route_rule_tc_pass_everything_after_the_guest() {
        match unbox(parse(&argv("route web1 -6 add fd00::/64 via fd00::1")).unwrap()) {
            Some((Command::Exec(e), _)) => {
                assert_eq!(e.tool, Tool::Route);
                assert_eq!(e.args, argv("-6 add fd00::/64 via fd00::1")[1..].to_vec());
            }
            o => panic!("{o:?}"),
        }
        match unbox(parse(&argv("-v tc web1 qdisc add dev eth0 root netem loss 30%")).unwrap()) {
            Some((Command::Exec(e), o)) => {
                assert_eq!(e.tool, Tool::Tc);
                assert_eq!(e.args.len(), 8);
                assert!(o.verbose);
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn wait_forms() {
        match unbox(parse(&argv("--wait -i ib0 --timeout 2.5")).unwrap()) {
            Some((Command::Wait(w), _)) => {
                assert_eq!(w.ifname, "ib0");
                assert_eq!(w.timeout, Some(Duration::from_millis(2500)));
            }
            o => panic!("{o:?}"),
        }
        match unbox(parse(&argv("--wait")).unwrap()) {
            Some((Command::Wait(w), _)) => {
                assert_eq!((w.ifname.as_str(), w.timeout), ("eth1", None))
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn bad_inputs_are_usage_errors_with_exit_2() {
        for (s, want) in [
            ("br1 web1 192.168.1.5", "Maybe you meant 192.168.1.5/24?"),
            ("br1 web1", "missing"),
            ("br1 web1 10.0.0.1/24 02:00:00:00:00:01 extra", "too many"),
            ("br1 web1 10.0.0.1/24 zz:00", "invalid MAC"),
            ("br1 web1 10.0.0.1/24 01:00:00:00:00:01", "multicast"),
            ("averyveryverylongname web1 10.0.0.1/24", "at most 15"),
            (
                "br1 -i averyveryverylongname web1 10.0.0.1/24",
                "at most 15",
            ),
            ("br1 -l a/b web1 10.0.0.1/24", "'/'"),
            ("br1 -a 6 web1 10.0.0.1/24", "does not match"),
            ("br1 -a 5 web1 10.0.0.1/24", "use 4 or 6"),
            ("br1 --mtu 20 web1 10.0.0.1/24", "out of range"),
            ("br1 web1 10.0.0.1/24 @10", "VLAN"),
            ("--bogus br1 web1 10.0.0.1/24", "--bogus"),
            ("route web1", "needs arguments"),
        ] {
            match parse(&argv(s)) {
                Err(e) => {
                    assert!(e.to_string().contains(want), "{s}: {e}");
                    if want != "VLAN" {
                        assert_eq!(e.exit_code(), 2, "{s}");
                    }
                }
                Ok(Invocation::Run(c, _)) if want == "VLAN" => {
                    let Command::Attach(r) = *c else {
                        panic!("{s}")
                    };
                    // VLAN is refused by the bridge driver, which knows the host interface.
                    assert_eq!(r.tag.as_deref(), Some("10"));
                }
                Ok(o) => panic!("{s}: accepted as {o:?}"),
            }
        }
    }

    #[test]
    fn kind_options() {
        let (r, _) = attach("--direct-phys eth1 -i container0 web1 0/0");
        assert!(r.direct_phys);
        let (r, _) = attach("ovsbr0 web1 10.0.4.2/24 @10 --ovs-datapath netdev");
        assert_eq!(r.ovs_datapath.as_deref(), Some("netdev"));
        assert_eq!(r.tag.as_deref(), Some("10"));
        let (r, _) = attach("eth2 web1 10.0.4.2/24 --macvlan-mode private");
        assert_eq!(r.macvlan_mode, MacvlanMode::Private);
        let e = parse(&argv("eth2 web1 10.0.4.2/24 --macvlan-mode source")).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    /// Typed errors, exit 2, no panic: the long -i was found by the cli fuzz target (fuzz/),
    /// the huge --timeout by reading its path.
    #[test]
    fn fuzz_findings_are_usage_errors() {
        for bad in [
            "check netns:blue -i ethSSSSSSSSSSSSSSSSSSSS1 --json",
            "detach web1 -i ethSSSSSSSSSSSSSSSSSSSS1",
            "detach web1 -i ..",
            "--wait --timeout 1e300",
            "--wait --timeout -1",
            "--wait --timeout NaN",
        ] {
            let e = parse(&argv(bad)).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}: {e}");
        }
        let (c, _) = unbox(parse(&argv("--wait --timeout 0")).unwrap()).unwrap();
        assert!(matches!(c, Command::Wait(WaitRequest { timeout: Some(d), .. }) if d.is_zero()));
    }

    #[test]
    fn help_and_version_print() {
        assert!(matches!(
            parse(&argv("--help")).unwrap(),
            Invocation::Print(_)
        ));
        assert!(matches!(
            parse(&argv("--version")).unwrap(),
            Invocation::Print(_)
        ));
    }

    #[test]
    fn stretch_and_host_options() {
        let argv = |s: &str| -> Vec<String> { s.split_whitespace().map(String::from).collect() };
        let (c, _) = unbox(
            parse(&argv(
                "pipework stretch br1 --vni 42 --remote 192.0.2.20 --remote 2001:db8::2 --port 8472",
            ))
            .unwrap(),
        )
        .unwrap();
        let want = Command::Stretch {
            bridge: "br1".into(),
            vni: 42,
            remotes: vec![
                "192.0.2.20".parse().unwrap(),
                "2001:db8::2".parse().unwrap(),
            ],
            port: 8472,
        };
        assert_eq!(format!("{c:?}"), format!("{want:?}"));
        let (c, _) = unbox(parse(&argv("pipework apply lab.yaml --host b")).unwrap()).unwrap();
        assert!(matches!(c, Command::LabApply { host: Some(h), .. } if h == "b"));
        for (line, needle) in [
            ("pipework stretch br1 --remote 192.0.2.2", "needs --vni"),
            ("pipework stretch br1 --vni 42", "needs --remote"),
            (
                "pipework stretch br1 --vni 0 --remote 192.0.2.2",
                "1 to 16777215",
            ),
            (
                "pipework stretch br1 --vni 16777216 --remote 192.0.2.2",
                "1 to 16777215",
            ),
            (
                "pipework stretch br1 --vni 4 --remote 192.0.2.2 --port 0",
                "--port 0",
            ),
            ("pipework stretch br1 --vni 4 --remote nope", "nope"),
            (
                "pipework stretch --vni 4 --remote 192.0.2.2",
                "takes one bridge",
            ),
            ("pipework ls --host a", "--host goes with plan and apply"),
            ("pipework apply lab.yaml --vni 4", "go with stretch"),
        ] {
            let e = parse(&argv(line)).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{line}");
            assert!(e.to_string().contains(needle), "{line}: {e}");
        }
    }
}
