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
        .filter(|i| alive(i.pid))
        .collect();
    out.sort_by(|a, b| (&a.guest, &a.ifname).cmp(&(&b.guest, &b.ifname)));
    out
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

pub fn render(infos: &[Info], json: bool) -> String {
    if json {
        return serde_json::to_string(infos).unwrap_or_else(|_| "[]".into());
    }
    let mut s = format!(
        "{:<8} {:<10} {:<24} {:<10} {}\n",
        "PID", "CLIENT", "GUEST", "IFNAME", "ADDRESS"
    );
    for i in infos {
        s.push_str(&format!(
            "{:<8} {:<10} {:<24} {:<10} {}\n",
            i.pid,
            i.client,
            i.guest,
            i.ifname,
            i.address.as_deref().unwrap_or("-")
        ));
    }
    s.trim_end().to_string()
}
