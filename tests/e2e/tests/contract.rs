//! The contract between `infra/openapi.json`, the components' route tables and `spin.toml`:
//! the document's operations are exactly the routes served (both ways), and Spin sends every route
//! to the component that declares it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tables() -> Vec<(&'static str, shared::RouteTable)> {
    vec![
        ("audit", streamspace_audit::table()),
        ("auth", streamspace_auth::table()),
        ("sessions", streamspace_sessions::table()),
        ("catalog", streamspace_catalog::table()),
        ("webhooks", streamspace_webhooks::table()),
    ]
}

fn manifest() -> toml::Value {
    let text = std::fs::read_to_string(root().join("spin.toml")).unwrap();
    toml::Value::Table(toml::from_str(&text).expect("spin.toml parses"))
}

fn triggers(manifest: &toml::Value) -> Vec<(String, String)> {
    manifest["trigger"]["http"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["route"].as_str().unwrap().to_owned(),
                t["component"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Spin's rule: an exact route beats any wildcard; among wildcards the longest prefix wins;
/// `/p/...` also matches `/p`.
fn spin_component_for(triggers: &[(String, String)], path: &str) -> Option<String> {
    if let Some((_, c)) = triggers.iter().find(|(r, _)| r == path) {
        return Some(c.clone());
    }
    triggers
        .iter()
        .filter_map(|(r, c)| {
            let prefix = r.strip_suffix("/...")?;
            (path == prefix || path.starts_with(&format!("{prefix}/"))).then_some((prefix.len(), c))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, c)| c.clone())
}

#[test]
fn openapi_operations_equal_the_routes_served() {
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("infra/openapi.json")).unwrap())
            .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "put", "post", "delete", "patch", "head", "options"]
                .contains(&method.as_str())
            {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let mut served = BTreeSet::new();
    for (_, table) in tables() {
        for route in table.routes() {
            served.insert((route.method.to_string(), route.pattern.to_owned()));
        }
    }
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served but not in openapi.json: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "in openapi.json but not served: {unserved:?}"
    );
}

#[test]
fn spin_routes_every_route_to_its_component() {
    let triggers = triggers(&manifest());
    for (component, table) in tables() {
        for route in table.routes() {
            // A concrete path of the pattern: parameters become a sample segment.
            let sample: String = route
                .pattern
                .split('/')
                .map(|seg| if seg.starts_with('{') { "sample" } else { seg })
                .collect::<Vec<_>>()
                .join("/");
            assert_eq!(
                spin_component_for(&triggers, &sample).as_deref(),
                Some(component),
                "{} {} is declared by {component} but Spin routes it elsewhere",
                route.method,
                route.pattern
            );
        }
    }
}

#[test]
fn every_exact_spin_route_is_served_by_its_component() {
    let tables = tables();
    for (route, component) in triggers(&manifest()) {
        if route.ends_with("/...") {
            continue;
        }
        let (_, table) = tables.iter().find(|(name, _)| *name == component).unwrap();
        assert!(
            table.routes().iter().any(|r| r.pattern == route),
            "spin.toml sends {route} to {component}, whose table has no such route"
        );
    }
}

#[test]
fn manifest_components_are_complete_and_least_privilege() {
    let manifest = manifest();
    let components = manifest["component"].as_table().unwrap();
    let names: BTreeSet<&str> = components.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from(["audit", "auth", "catalog", "docs", "sessions", "webhooks"])
    );
    let mut seen_routes = BTreeSet::new();
    for (route, component) in triggers(&manifest) {
        assert!(
            names.contains(component.as_str()),
            "trigger {route} names unknown {component}"
        );
        assert!(
            seen_routes.insert(route.clone()),
            "route {route} declared twice"
        );
    }
    let variables = manifest["variables"].as_table().unwrap();
    for (name, component) in components {
        let source = component["source"].as_str().unwrap();
        assert_eq!(
            source,
            format!("target/wasm32-wasip2/release/streamspace_{name}.wasm"),
            "{name}: source"
        );
        assert!(
            component["build"]["command"]
                .as_str()
                .unwrap()
                .contains(&format!("-p streamspace-{name}")),
            "{name}: build command"
        );
        for store in ["sqlite_databases", "key_value_stores"] {
            if let Some(list) = component.get(store) {
                assert_eq!(
                    list.as_array().unwrap(),
                    &vec![toml::Value::from("default")],
                    "{name}: {store}"
                );
            }
        }
        if let Some(vars) = component.get("variables").and_then(|v| v.as_table()) {
            for (var, value) in vars {
                let template = value.as_str().unwrap();
                let referenced = template
                    .trim()
                    .trim_start_matches("{{")
                    .trim_end_matches("}}")
                    .trim();
                assert!(
                    variables.contains_key(referenced),
                    "{name}.{var} references undeclared {referenced}"
                );
            }
        }
    }
    // Secrets are marked secret.
    for secret in ["maintenance_token", "audit_key", "redis_url"] {
        assert_eq!(
            variables[secret]["secret"].as_bool(),
            Some(true),
            "{secret} must be secret"
        );
    }
}

#[test]
fn spin_matching_rule_sanity() {
    let t = vec![
        ("/api/v1/admin/audit/...".to_owned(), "audit".to_owned()),
        ("/api/v1/admin/agents/...".to_owned(), "auth".to_owned()),
        ("/health".to_owned(), "audit".to_owned()),
    ];
    assert_eq!(
        spin_component_for(&t, "/api/v1/admin/audit").as_deref(),
        Some("audit")
    );
    assert_eq!(
        spin_component_for(&t, "/api/v1/admin/agents/x").as_deref(),
        Some("auth")
    );
    assert_eq!(spin_component_for(&t, "/api/v1/admin/auditx"), None);
    assert_eq!(spin_component_for(&t, "/healthz"), None);
}

/// Every request type a component deserializes refuses unknown fields (`Cx::json` relies on it,
/// so a typo in a client's body is a 400 rather than a silently ignored setting).
#[test]
fn every_request_type_denies_unknown_fields() {
    let mut offenders = Vec::new();
    let mut checked = 0;
    let mut stack = vec![root().join("components")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                if !(line.contains("#[derive(") && line.contains("Deserialize")) {
                    continue;
                }
                // The attribute block around the derive, up to the item it decorates.
                let mut attrs: Vec<&str> = Vec::new();
                let mut j = i;
                while j < lines.len() && lines[j].trim_start().starts_with("#[") {
                    attrs.push(lines[j]);
                    j += 1;
                }
                let mut k = i;
                while k > 0 && lines[k - 1].trim_start().starts_with("#[") {
                    k -= 1;
                    attrs.push(lines[k]);
                }
                let item = lines.get(j).copied().unwrap_or_default();
                if item.contains("enum ") {
                    continue;
                }
                checked += 1;
                if !attrs.iter().any(|a| a.contains("deny_unknown_fields")) {
                    offenders.push(format!("{}:{} {}", path.display(), i + 1, item.trim()));
                }
            }
        }
    }
    assert!(checked > 10, "the scan found the request types ({checked})");
    assert!(
        offenders.is_empty(),
        "request types without deny_unknown_fields: {offenders:#?}"
    );
}
