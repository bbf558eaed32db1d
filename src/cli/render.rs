//! Text and JSON renderings of the engine's reports, for the terminal.

use crate::report::{ActionsReport, CheckReport, ListReport};

pub fn list(rep: &ListReport, json: bool) -> String {
    if json {
        return serde_json::to_string(&rep.attachments).unwrap_or_else(|_| "[]".into());
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
    s.trim_end().to_string()
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

/// Warnings about files that are not records, one line each on stderr.
pub fn warnings(w: &[String]) {
    for line in w {
        eprintln!("pipework: warning: {line}");
    }
}
