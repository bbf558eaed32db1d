//! Attachment records (`store::parse`): any bytes are a record or a reason, never a panic; a
//! record that parses, written back in the store's own line format, parses to the same record.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use pipework::store::{self, RecordState};

fuzz_target!(|data: &[u8]| {
    let path = Path::new("/run/pipework/attachments/1-eth1.json");
    let Ok(rec) = store::parse(path, data) else {
        return;
    };
    assert_eq!(rec.path, path);
    let again = store::parse(path, &serialise(&rec))
        .unwrap_or_else(|e| panic!("a parsed record does not read back: {e}"));
    assert_eq!(again.header, rec.header);
    assert_eq!(again.undo, rec.undo);
});

/// As `RecordFile` writes it: the header (incomplete while entries follow), one line per undo
/// entry, then the completion line.
fn serialise(rec: &store::Record) -> Vec<u8> {
    let h = &rec.header;
    let mut out = Vec::new();
    let line = |out: &mut Vec<u8>, v: serde_json::Value| {
        out.extend_from_slice(v.to_string().as_bytes());
        out.push(b'\n');
    };
    let completed_later =
        h.state == RecordState::Complete && h.identity.is_some() && h.attachment.is_some();
    let mut first = h.clone();
    if completed_later {
        first.state = RecordState::Incomplete;
    }
    line(&mut out, serde_json::to_value(&first).unwrap());
    for e in &rec.undo {
        line(&mut out, serde_json::to_value(e).unwrap());
    }
    if completed_later {
        line(
            &mut out,
            serde_json::json!({"complete": {
                "identity": h.identity,
                "attachment": h.attachment,
                "host_ifname": h.host_ifname,
            }}),
        );
    }
    out
}
