//! The command line is untrusted input: an argument that is not UTF-8 is a clear exit-2 error
//! naming its position (never a panic in `std::env::args`), also as JSON with `--json`.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::process::Command;

fn run(args: &[OsString]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pipework"))
        .args(args)
        .env(
            "PIPEWORK_RUNTIME_DIR",
            std::env::temp_dir().join("pwt-argv-unused"),
        )
        .output()
        .expect("run pipework")
}

#[test]
fn non_utf8_argument_is_a_usage_error_naming_it() {
    let bad = OsString::from_vec(b"web\xff1".to_vec());
    let out = run(&["br1".into(), bad.clone(), "10.0.0.5/24".into()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("argument 2") && err.contains("not valid UTF-8"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing on stdout without --json");

    let out = run(&["--json".into(), "br1".into(), bad, "10.0.0.5/24".into()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["error"]["kind"], "bad_input");
    assert!(
        !std::env::temp_dir().join("pwt-argv-unused").exists(),
        "nothing written"
    );
}
