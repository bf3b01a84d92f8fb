//! Helpers shared by the integration tests that drive the `netc` binary.
#![allow(dead_code)]

use std::process::Command;

/// Run `netc ARGS` in the crate root: (exit code, stdout, stderr).
pub fn netc(args: &[&str]) -> (i32, String, String) {
    let out =
        Command::new(env!("CARGO_BIN_EXE_netc")).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A path in the temp directory, unique to this test process.
pub fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("netc-{}-{name}", std::process::id()))
}

/// The text of the value after `"key": ` in a flat JSON object.
pub fn field<'a>(json: &'a str, key: &str) -> &'a str {
    let start = json.find(&format!("\"{key}\": ")).unwrap_or_else(|| panic!("no {key} in {json}")) + key.len() + 4;
    json[start..].split([',', '}']).next().unwrap().trim()
}
