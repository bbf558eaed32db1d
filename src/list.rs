//! The DHCP clients pipework keeps running (the built-in supervisor and kept external
//! clients), from their info files in the runtime directory, checked against the live
//! processes (an info file whose process is gone is not shown). `ls` shows them.

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
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice::<Info>(&b).ok())
        .filter(|i| crate::process::alive(i.pid))
        .collect();
    out.sort_by(|a, b| (&a.guest, &a.ifname).cmp(&(&b.guest, &b.ifname)));
    out
}
