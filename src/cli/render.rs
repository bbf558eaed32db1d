//! Text and JSON renderings of the engine's reports, for the terminal.

use super::ui::{paint, paint_change, GREEN, RED, YELLOW};
use crate::error::Error;
use crate::list_format::{Template, FIELDS};
use crate::report::{ActionsReport, CheckReport, ListReport};
use crate::request::ListView;

pub fn list(rep: &ListReport, json: bool, view: &ListView, colour: bool) -> Result<String, Error> {
    if json {
        return Ok(serde_json::to_string(&rep.attachments).unwrap_or_else(|_| "[]".into()));
    }
    if let Some(f) = &view.format {
        return Ok(Template::parse(f)?.render(&rep.attachments));
    }
    if view.wide {
        let list = FIELDS.join(",");
        let table = Template::parse(&list)?.render(&rep.attachments);
        return Ok(paint_states(colour, &table));
    }
    let mut s = format!(
        "{:<10} {:<20} {:<8} {:<16} {:<16} {:<8} {:<20} {}\n",
        "STATE", "GUEST", "KIND", "HOST", "HOST-IF", "IFNAME", "ADDRESS", "DHCP"
    );
    for i in &rep.attachments {
        s.push_str(&format!(
            "{:<10} {:<20} {:<8} {:<16} {:<16} {:<8} {:<20} {}\n",
            i.state,
            i.guest_name.as_deref().unwrap_or(&i.guest),
            i.kind,
            i.host_interface,
            i.host_ifname.as_deref().unwrap_or("-"),
            i.ifname,
            i.address.as_deref().unwrap_or("-"),
            match (&i.client, i.pid) {
                (Some(c), Some(p)) => format!("{c} (pid {p})"),
                _ => "-".into(),
            }
        ));
    }
    Ok(paint_states(colour, s.trim_end()))
}

/// The STATE column (each line's first word) in colour: alive green, stale red, incomplete
/// yellow.
fn paint_states(colour: bool, table: &str) -> String {
    if !colour {
        return table.to_string();
    }
    table
        .lines()
        .map(|l| {
            let (w, rest) = l.split_at(l.find(' ').unwrap_or(l.len()));
            let code = match w {
                "alive" => GREEN,
                "stale" => RED,
                "incomplete" => YELLOW,
                _ => return l.to_string(),
            };
            format!("{}{rest}", paint(true, code, w))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What detach/gc did (or, with --dry-run, would do).
pub fn actions(rep: &ActionsReport, json: bool) -> String {
    if json {
        return serde_json::json!({ "dry_run": rep.dry_run, "actions": rep.actions }).to_string();
    }
    if rep.actions.is_empty() {
        return "nothing to do".into();
    }
    let prefix = if rep.dry_run { "would " } else { "" };
    rep.actions
        .iter()
        .map(|d| format!("{prefix}{d}"))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn check(rep: &CheckReport, json: bool) -> String {
    if json {
        return serde_json::to_string(&rep.attachments).unwrap_or_else(|_| "[]".into());
    }
    if rep.attachments.is_empty() {
        return "no attachments".into();
    }
    let mut out = Vec::new();
    for c in &rep.attachments {
        out.push(format!(
            "{:<10} {} of {} ({})",
            c.state, c.ifname, c.guest, c.kind
        ));
        for d in &c.differences {
            out.push(format!("           {d}"));
        }
    }
    out.join("\n")
}

/// Warnings of a report, one line each on stderr (`pipework: warning: …`).
pub fn warnings(w: &[String]) {
    for line in w {
        tracing::warn!("{line}");
    }
}

/// `pipework plan`: one line per object and field, then a summary.
pub fn lab_plan(p: &crate::engine::lab::LabPlan, json: bool, colour: bool) -> String {
    if json {
        return serde_json::to_string(p).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    }
    let mut out: Vec<String> = Vec::new();
    if let Some(n) = p.pending_rollback {
        out.push(format!(
            "! a killed apply left {n} changes: the next apply rolls them back first"
        ));
    }
    out.extend(
        p.changes
            .iter()
            .map(|l| paint_change(colour, &l.to_string())),
    );
    out.push(summary(&p.lab, &p.changes, "to"));
    out.join("\n")
}

/// `pipework apply`: what changed, and how long it took.
pub fn lab_apply(r: &crate::engine::lab::LabReport, json: bool, colour: bool) -> String {
    if json {
        return serde_json::to_string(r).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    }
    let mut out: Vec<String> = r
        .recovered
        .iter()
        .map(|d| format!("rolled back (killed apply): {d}"))
        .collect();
    out.extend(
        r.changes
            .iter()
            .map(|l| paint_change(colour, &l.to_string())),
    );
    out.push(format!(
        "{} in {:.1} ms ({} netlink writes)",
        summary(&r.lab, &r.changes, "made"),
        r.elapsed_ms,
        r.netlink_writes
    ));
    out.join("\n")
}

fn summary(lab: &str, lines: &[crate::engine::lab::diff::PlanLine], verb: &str) -> String {
    let n = |c: char| lines.iter().filter(|l| l.op == c).count();
    if lines.is_empty() {
        return format!("lab {lab}: no changes (the kernel is as the file says)");
    }
    let words: [&str; 3] = if verb == "to" {
        ["to create", "to change", "to remove"]
    } else {
        ["created", "changed", "removed"]
    };
    format!(
        "lab {lab}: {} {}, {} {}, {} {}",
        n('+'),
        words[0],
        n('~'),
        words[1],
        n('-'),
        words[2]
    )
}

/// `pipework ls --lab LAB`.
pub fn lab_list(l: &crate::engine::lab::LabListing, json: bool) -> String {
    if json {
        return serde_json::to_string(l).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    }
    let mut s = format!(
        "{:<10} {:<8} {:<32} {}\n",
        "STATE", "KIND", "OBJECT", "DETAIL"
    );
    for o in &l.objects {
        s.push_str(&format!(
            "{:<10} {:<8} {:<32} {}\n",
            o.state, o.kind, o.name, o.detail
        ));
    }
    s.trim_end().to_string()
}
