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

    // The OpenAPI document is served from the component: embed it without the indentation
    // (about half its size) so the component stays within its 1 MB budget as the API grows.
    let openapi = std::fs::read_to_string("../../infra/openapi.json").unwrap_or_default();
    let out = std::env::var("OUT_DIR").unwrap_or_else(|_| ".".to_owned());
    let _ = std::fs::write(
        std::path::Path::new(&out).join("openapi.min.json"),
        minify_json(&openapi),
    );
    println!("cargo:rerun-if-changed=../../infra/openapi.json");
}

/// Drops the whitespace between JSON tokens (never inside strings). The input is the repository's
/// own document, which the contract tests parse; this changes no value.
fn minify_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}
