//! Logging through `tracing`. Library code emits events; the binary's front end installs the
//! one subscriber (`init`): `-v` shows each step (`pipework: step NAME: what`), `-vv` debug
//! detail, `PIPEWORK_LOG` a tracing filter of its own (`debug`, `pipework::engine=trace`).
//! Lines keep pipework's own shape, `pipework: warning: …`, so scripts that read stderr go on
//! working; the CNI plugin and netavark paths install nothing, and stay silent.

use std::fmt::Display;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// The environment variable of a filter that overrides -v.
pub const LOG_ENV: &str = "PIPEWORK_LOG";

/// What the engine logs step by step with `-v`: a plain value (Copy) that every layer can take.
#[derive(Debug, Clone, Copy, Default)]
pub struct Log {
    pub verbose: bool,
}

impl Log {
    pub fn step(&self, name: &str, what: impl Display) {
        if self.verbose {
            tracing::info!("step {name}: {what}");
        }
    }

    pub fn info(&self, what: impl Display) {
        if self.verbose {
            tracing::info!("{what}");
        }
    }
}

/// The filter for `verbosity` -v (0: warnings only, or `floor` for a daemon's own log), unless
/// PIPEWORK_LOG says otherwise.
pub fn filter(verbosity: u8, floor: Level, env: Option<&str>) -> EnvFilter {
    if let Some(f) = env.filter(|f| !f.trim().is_empty()) {
        if let Ok(f) = EnvFilter::try_new(f) {
            return f;
        }
    }
    let level = match verbosity {
        0 => floor,
        1 => Level::INFO.max(floor),
        2 => Level::DEBUG,
        _ => Level::TRACE,
    };
    // Only our own events: the crates below us (netlink, mozim) speak at debug for themselves.
    let mut f = EnvFilter::new(format!("warn,pipework={}", level.as_str().to_lowercase()));
    if verbosity >= 3 {
        f = EnvFilter::new("trace");
    }
    f
}

/// Installs the process's subscriber (once; later calls keep the first). `floor` is INFO for a
/// daemon whose log is its stderr (watch, the DHCP supervisor), WARN for a command.
/// With `json`, each event is one JSON object on its line (`watch --json`).
pub fn init(verbosity: u8, floor: Level, json: bool) {
    let env = std::env::var(LOG_ENV).ok();
    let bad_env = env
        .as_deref()
        .filter(|f| !f.trim().is_empty() && EnvFilter::try_new(f).is_err())
        .map(str::to_string);
    let f = filter(verbosity, floor, env.as_deref());
    let b = tracing_subscriber::fmt().with_writer(std::io::stderr);
    let _ = if json {
        b.json().with_env_filter(f).try_init()
    } else {
        b.event_format(Line).with_env_filter(f).try_init()
    };
    if let Some(f) = bad_env {
        tracing::warn!("{LOG_ENV}={f:?} is not a tracing filter (e.g. debug, pipework=trace); using -v's level");
    }
}

/// `pipework[ component]: [level: ]message` — the shape pipework's stderr always had.
struct Line;

/// The prefix of an event from `target` (a module path).
pub fn prefix(target: &str) -> &'static str {
    if target.starts_with("pipework::watch") {
        "pipework watch: "
    } else if target.starts_with("pipework::addressing::dhcp::supervisor") {
        "pipework dhcp supervisor: "
    } else if target.starts_with("pipework::addressing::dhcp::external") {
        "pipework dhcp hook: "
    } else {
        "pipework: "
    }
}

pub fn level_word(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error: ",
        Level::WARN => "warning: ",
        Level::INFO => "",
        Level::DEBUG => "debug: ",
        Level::TRACE => "trace: ",
    }
}

impl<S, N> FormatEvent<S, N> for Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let m = event.metadata();
        write!(w, "{}{}", prefix(m.target()), level_word(*m.level()))?;
        if *m.level() >= Level::DEBUG && !m.target().starts_with("pipework") {
            write!(w, "{}: ", m.target())?;
        }
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_keep_the_old_shape() {
        assert_eq!(prefix("pipework::engine::records"), "pipework: ");
        assert_eq!(prefix("pipework::watch"), "pipework watch: ");
        assert_eq!(
            prefix("pipework::addressing::dhcp::supervisor"),
            "pipework dhcp supervisor: "
        );
        assert_eq!(level_word(Level::WARN), "warning: ");
        assert_eq!(level_word(Level::INFO), "");
    }

    #[test]
    fn verbosity_and_the_environment_pick_the_filter() {
        // EnvFilter prints its directives in an order of its own.
        let s = |f: EnvFilter| {
            let t = f.to_string();
            let mut v: Vec<&str> = t.split(',').collect();
            v.sort_unstable();
            v.join(",")
        };
        assert_eq!(s(filter(0, Level::WARN, None)), "pipework=warn,warn");
        assert_eq!(s(filter(1, Level::WARN, None)), "pipework=info,warn");
        assert_eq!(s(filter(0, Level::INFO, None)), "pipework=info,warn");
        assert_eq!(s(filter(2, Level::WARN, None)), "pipework=debug,warn");
        assert_eq!(s(filter(3, Level::WARN, None)), "trace");
        assert_eq!(s(filter(0, Level::WARN, Some("debug"))), "debug");
        // A broken filter falls back to -v's level (init warns about it).
        assert_eq!(
            s(filter(1, Level::WARN, Some("=[bad"))),
            "pipework=info,warn"
        );
        assert_eq!(s(filter(0, Level::WARN, Some(" "))), "pipework=warn,warn");
    }
}
