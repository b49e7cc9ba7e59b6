//! The registries and what must agree with them:
//!
//! * `shared::error_codes::ERROR_CODES`: every error code the sources of `shared/` and
//!   `components/` pass to an `ApiError` constructor (or to the 401 helpers `AuthState::invalid`
//!   and `Refreshed::Invalid`) is registered, with the status that constructor gives it — so a
//!   code means the same status everywhere.
//! * `shared::config::VARIABLES`: `spin.toml`'s `[variables]` are exactly the registry (names,
//!   defaults, secret flags); each component maps exactly the variables the registry says it
//!   needs, each as `"{{ name }}"`; every variable the sources read is registered; the README's
//!   Configuration table lists every variable with its default.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use shared::config::VARIABLES;
use shared::error_codes::{status_named, status_of, ERROR_CODES};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn manifest() -> toml::Value {
    let text = std::fs::read_to_string(root().join("spin.toml")).unwrap();
    toml::Value::Table(toml::from_str(&text).expect("spin.toml parses"))
}

/// Every `.rs` file under `dir`, with its text up to its test module (tests may build errors
/// with any code).
fn sources(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            let cut = ["#[cfg(test)]", "#[cfg(all(test"]
                .iter()
                .filter_map(|m| text.find(m))
                .min()
                .unwrap_or(text.len());
            out.push((path, text[..cut].to_owned()));
        }
    }
}

fn all_sources() -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    sources(&root().join("shared/src"), &mut out);
    sources(&root().join("components"), &mut out);
    assert!(out.len() > 50, "found the sources");
    out
}

/// The string literal that starts `text` after whitespace, if any.
fn leading_literal(text: &str) -> Option<&str> {
    let text = text.trim_start().strip_prefix('"')?;
    Some(&text[..text.find('"')?])
}

/// `(code, status, where)` for every literal code passed to a constructor.
fn codes_used() -> Vec<(String, u16, String)> {
    const CONSTRUCTORS: &[(&str, u16)] = &[
        ("ApiError::bad_request(", 400),
        ("ApiError::unauthorized(", 401),
        ("ApiError::forbidden(", 403),
        ("ApiError::conflict(", 409),
        (".conflict_on_unique(", 409),
        ("AuthState::invalid(", 401),
        ("Refreshed::Invalid(", 401),
    ];
    let mut used = Vec::new();
    for (path, text) in all_sources() {
        let place = |at: usize| {
            let line = text[..at].lines().count();
            format!("{}:{line}", path.display())
        };
        for (ctor, status) in CONSTRUCTORS {
            for (at, _) in text.match_indices(ctor) {
                if let Some(code) = leading_literal(&text[at + ctor.len()..]) {
                    used.push((code.to_owned(), *status, place(at)));
                }
            }
        }
        for (at, _) in text.match_indices("ApiError::new(") {
            let rest = text[at + "ApiError::new(".len()..].trim_start();
            let rest = rest.strip_prefix("http::").unwrap_or(rest);
            let Some(rest) = rest.strip_prefix("StatusCode::") else {
                continue;
            };
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect();
            let after = rest[name.len()..]
                .trim_start()
                .strip_prefix(',')
                .unwrap_or("");
            if let Some(code) = leading_literal(after) {
                let status = status_named(&name)
                    .unwrap_or_else(|| panic!("{}: add StatusCode::{name}", place(at)));
                used.push((code.to_owned(), status, place(at)));
            }
        }
        for (at, _) in text.match_indices("ApiError::registered(") {
            if let Some(code) = leading_literal(&text[at + "ApiError::registered(".len()..]) {
                let status = status_of(code).unwrap_or(0);
                used.push((code.to_owned(), status, place(at)));
            }
        }
    }
    used
}

#[test]
fn every_error_code_maps_to_one_registered_status() {
    let used = codes_used();
    assert!(
        used.len() > 100,
        "the scan finds the constructors ({})",
        used.len()
    );
    let mut problems = Vec::new();
    let mut statuses: BTreeMap<&str, BTreeSet<u16>> = BTreeMap::new();
    for (code, status, place) in &used {
        statuses.entry(code).or_default().insert(*status);
        match status_of(code) {
            None => problems.push(format!(
                "{place}: `{code}` is not in shared::error_codes::ERROR_CODES"
            )),
            Some(registered) if registered != *status => problems.push(format!(
                "{place}: `{code}` answered {status}, registered as {registered}"
            )),
            Some(_) => {}
        }
    }
    for (code, set) in &statuses {
        if set.len() > 1 {
            problems.push(format!("`{code}` is used with several statuses: {set:?}"));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn the_error_code_registry_has_no_dead_entries() {
    let used: BTreeSet<String> = codes_used().into_iter().map(|(c, _, _)| c).collect();
    // Codes set by fixed constructors (`ApiError::not_found`, `unavailable`, …) or written as a
    // literal outside a constructor (`/health`'s envelope).
    let fixed = [
        "configuration_error",
        "internal_error",
        "method_not_allowed",
        "not_found",
        "payload_too_large",
        "service_unavailable",
    ];
    let dead: Vec<&str> = ERROR_CODES
        .iter()
        .map(|(c, _)| *c)
        .filter(|c| !used.contains(*c) && !fixed.contains(c))
        .collect();
    assert!(dead.is_empty(), "registered but never used: {dead:?}");
}

#[test]
fn spin_toml_variables_equal_the_registry() {
    let manifest = manifest();
    let declared = manifest["variables"].as_table().unwrap();
    let mut problems = Vec::new();
    for v in VARIABLES {
        let Some(entry) = declared.get(v.name) else {
            problems.push(format!("{}: missing from spin.toml [variables]", v.name));
            continue;
        };
        let default = entry.get("default").and_then(|d| d.as_str());
        if default != Some(v.default) {
            problems.push(format!(
                "{}: default {default:?} in spin.toml, {:?} in the registry",
                v.name, v.default
            ));
        }
        let secret = entry
            .get("secret")
            .and_then(|s| s.as_bool())
            .unwrap_or(false);
        if secret != v.secret {
            problems.push(format!(
                "{}: secret = {secret} in spin.toml, {} in the registry",
                v.name, v.secret
            ));
        }
    }
    for name in declared.keys() {
        if shared::config::variable(name).is_none() {
            problems.push(format!(
                "{name}: in spin.toml [variables] but not in shared::config::VARIABLES"
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn each_component_maps_exactly_the_variables_it_needs() {
    let manifest = manifest();
    let components = manifest["component"].as_table().unwrap();
    let mut problems = Vec::new();
    for (name, component) in components {
        let mapped: BTreeMap<String, String> = component
            .get("variables")
            .and_then(|v| v.as_table())
            .map(|t| {
                t.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let needed: BTreeSet<&str> = VARIABLES
            .iter()
            .filter(|v| v.components.contains(&name.as_str()))
            .map(|v| v.name)
            .collect();
        for v in &needed {
            match mapped.get(*v) {
                None => problems.push(format!("{name}: does not map `{v}`")),
                Some(value) if *value != format!("{{{{ {v} }}}}") => {
                    problems.push(format!("{name}: maps `{v}` to {value:?}"))
                }
                Some(_) => {}
            }
        }
        for v in mapped.keys() {
            if !needed.contains(v.as_str()) {
                problems.push(format!(
                    "{name}: maps `{v}`, which the registry does not give it"
                ));
            }
        }
    }
    for v in VARIABLES {
        for c in v.components {
            if !components.contains_key(*c) {
                problems.push(format!("{}: names unknown component `{c}`", v.name));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn every_variable_the_sources_read_is_registered() {
    let mut problems = Vec::new();
    for (path, text) in all_sources() {
        for call in [".raw(", ".int(", ".flag(", "variable: \""] {
            for (at, _) in text.match_indices(call) {
                let rest = &text[at + call.len()..];
                let name = if call.ends_with('"') {
                    rest.split('"').next()
                } else {
                    leading_literal(rest)
                };
                if let Some(name) = name.filter(|n| !n.starts_with('(')) {
                    if shared::config::variable(name).is_none() {
                        problems.push(format!("{}: reads unregistered `{name}`", path.display()));
                    }
                }
            }
        }
    }
    for name in [
        shared::license::PUBLIC_KEY_VARIABLE,
        "audit_key",
        "maintenance_token",
    ] {
        assert!(shared::config::variable(name).is_some(), "{name}");
    }
    // Every rate-limit variable a standard class declares is registered.
    use shared::rate_limit::RateClass;
    for class in [
        RateClass::General,
        RateClass::Login,
        RateClass::SecondFactor,
        RateClass::Mint,
        RateClass::Refresh,
        RateClass::Agent,
        RateClass::Webhook,
    ] {
        for spec in class.limits.iter().chain([&shared::rate_limit::GENERAL]) {
            for s in std::iter::once(spec).chain(spec.fallback) {
                if shared::config::variable(s.variable).is_none() {
                    problems.push(format!("{}: `{}` unregistered", class.name, s.variable));
                }
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn the_readme_configuration_table_lists_every_variable() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find("## Configuration")
        .expect("a Configuration section");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let mut problems = Vec::new();
    for v in VARIABLES {
        let row = section
            .lines()
            .find(|l| l.starts_with(&format!("| `{}`", v.name)));
        let Some(row) = row else {
            problems.push(format!(
                "{}: no row in the README's Configuration table",
                v.name
            ));
            continue;
        };
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let default_cell = cells.get(2).copied().unwrap_or("");
        let expected = if v.default.is_empty() {
            "empty".to_owned()
        } else {
            format!("`{}`", v.default)
        };
        if default_cell != expected {
            problems.push(format!(
                "{}: README default {default_cell:?}, registry {expected:?}",
                v.name
            ));
        }
        if v.secret != cells.get(1).is_some_and(|c| c.ends_with("(s)")) {
            problems.push(format!("{}: README's (s) marker disagrees", v.name));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// `spin_sdk` only in the entry points (`components/*/src/lib.rs`, `shared/src/spin_entry.rs`)
/// and the adapters (`shared/src/store/spin.rs`): business logic, the limiter's Redis backend
/// included, talks to the store traits.
#[test]
fn spin_sdk_only_in_entry_points_and_adapters() {
    let mut problems = Vec::new();
    for (path, text) in all_sources() {
        let p = path.to_string_lossy().replace('\\', "/");
        let allowed = p.ends_with("shared/src/store/spin.rs")
            || p.ends_with("shared/src/spin_entry.rs")
            || (p.contains("/components/") && p.ends_with("/src/lib.rs"));
        if allowed {
            continue;
        }
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if code.contains("spin_sdk::") || code.contains("use spin_sdk") {
                problems.push(format!("{p}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}
