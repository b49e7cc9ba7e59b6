//! Bakes the git commit and the spin-sdk version (from Cargo.lock) into `/version`.

use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=STREAMSPACE_COMMIT={commit}");

    let lock = std::fs::read_to_string("../../Cargo.lock").unwrap_or_default();
    let mut spin_sdk = "unknown".to_owned();
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "name = \"spin-sdk\"" {
            if let Some(version) = lines
                .next()
                .and_then(|l| l.trim().strip_prefix("version = "))
            {
                spin_sdk = version.trim_matches('"').to_owned();
            }
        }
    }
    println!("cargo:rustc-env=STREAMSPACE_SPIN_SDK={spin_sdk}");
    println!("cargo:rerun-if-changed=../../Cargo.lock");
    println!("cargo:rerun-if-changed=../../.git/HEAD");
    println!("cargo:rerun-if-changed=../../.git/refs/heads");
}
