//! The terminal: colour (only on a terminal, never with NO_COLOR set) and progress bars
//! (indicatif, on stderr, only when stdout is a terminal and `--json` is off, and only for
//! work that has run for a second: a quick apply draws nothing).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// After how long a task's bar appears.
const SHOW_AFTER: Duration = Duration::from_secs(1);

/// Whether output may be coloured: `tty` (is stdout a terminal), `json`, NO_COLOR's value.
pub fn colour_allowed(tty: bool, json: bool, no_color: Option<&str>) -> bool {
    // https://no-color.org: set and not empty turns colour off.
    tty && !json && no_color.is_none_or(|v| v.is_empty())
}

/// For this process.
pub fn colour(json: bool) -> bool {
    colour_allowed(
        std::io::stdout().is_terminal(),
        json,
        std::env::var("NO_COLOR").ok().as_deref(),
    )
}

/// Whether progress is drawn: stdout and stderr terminals, no `--json`.
pub fn progress_allowed(json: bool) -> bool {
    !json && std::io::stdout().is_terminal() && std::io::stderr().is_terminal()
}

pub const GREEN: &str = "32";
pub const YELLOW: &str = "33";
pub const RED: &str = "31";

pub fn paint(on: bool, code: &str, text: &str) -> String {
    if on {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// A plan or apply line by its first character.
pub fn paint_change(on: bool, line: &str) -> String {
    match line.chars().next() {
        Some('+') => paint(on, GREEN, line),
        Some('~') => paint(on, YELLOW, line),
        Some('-') => paint(on, RED, line),
        _ => line.to_string(),
    }
}

/// indicatif bars behind `crate::progress`.
pub struct Bars {
    bars: Mutex<HashMap<u64, ProgressBar>>,
}

impl Bars {
    pub fn install() {
        crate::progress::set_sink(Arc::new(Bars {
            bars: Mutex::new(HashMap::new()),
        }));
    }
}

impl crate::progress::Sink for Bars {
    fn begin(&self, id: u64, what: &str, total: Option<u64>) {
        let bar = match total {
            Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::hidden())
                .with_style(
                    ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({elapsed})")
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                ),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden()).with_style(
                ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        };
        bar.set_message(what.to_string());
        if let Ok(mut m) = self.bars.lock() {
            m.insert(id, bar.clone());
        }
        // Shown only if still running after SHOW_AFTER; the thread holds a clone, and a bar
        // finished meanwhile stays hidden.
        let _ = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                std::thread::sleep(SHOW_AFTER);
                if !bar.is_finished() {
                    bar.set_draw_target(ProgressDrawTarget::stderr());
                    bar.enable_steady_tick(Duration::from_millis(120));
                }
            });
    }

    fn advance(&self, id: u64, done: u64) {
        if let Some(b) = self.bars.lock().ok().and_then(|m| m.get(&id).cloned()) {
            b.set_position(done);
        }
    }

    fn end(&self, id: u64) {
        if let Some(b) = self.bars.lock().ok().and_then(|mut m| m.remove(&id)) {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color_or_json() {
        assert!(colour_allowed(true, false, None));
        assert!(colour_allowed(true, false, Some("")));
        assert!(!colour_allowed(true, false, Some("1")));
        assert!(!colour_allowed(false, false, None));
        assert!(!colour_allowed(true, true, None));
        assert_eq!(paint(false, RED, "x"), "x");
        assert_eq!(paint(true, RED, "x"), "\x1b[31mx\x1b[0m");
        assert_eq!(
            paint_change(true, "+ bridge br1"),
            "\x1b[32m+ bridge br1\x1b[0m"
        );
        assert_eq!(paint_change(true, "lab x: no changes"), "lab x: no changes");
    }
}
