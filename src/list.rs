//! `pipework ls`: what pipework keeps running on this host — DHCP clients (the built-in
//! supervisor and kept external clients), from their records in the runtime directory,
//! checked against the live processes (a record whose process is gone is not shown).

use crate::addressing::dhcp::runtime_dir;
use crate::addressing::dhcp::supervisor::Info;

/// The DHCP clients that are still running.
pub fn dhcp_clients() -> Vec<Info> {
    let dir = runtime_dir().join("dhcp");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<Info> = entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice::<Info>(&b).ok())
        .filter(|i| crate::process::alive(i.pid))
        .collect();
    out.sort_by(|a, b| (&a.guest, &a.ifname).cmp(&(&b.guest, &b.ifname)));
    out
}

pub fn render(items: &[crate::lifecycle::Listed], json: bool) -> String {
    if json {
        return serde_json::to_string(items).unwrap_or_else(|_| "[]".into());
    }
    let mut s = format!(
        "{:<6} {:<20} {:<8} {:<16} {:<16} {:<8} {:<20} {}\n",
        "STATE", "GUEST", "KIND", "HOST", "HOST-IF", "IFNAME", "ADDRESS", "DHCP"
    );
    for i in items {
        s.push_str(&format!(
            "{:<6} {:<20} {:<8} {:<16} {:<16} {:<8} {:<20} {}\n",
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
pub fn render_actions(done: &[String], json: bool, dry_run: bool) -> String {
    if json {
        return serde_json::json!({ "dry_run": dry_run, "actions": done }).to_string();
    }
    if done.is_empty() {
        return "nothing to do".into();
    }
    let prefix = if dry_run { "would " } else { "" };
    done.iter()
        .map(|d| format!("{prefix}{d}"))
        .collect::<Vec<_>>()
        .join("\n")
}
