//! `spin.toml` (manifest version 2) parsing.
//!
//! Mirrors the subset of Spin's `spin-manifest` schema that the HTTP trigger
//! needs: `[application]`, `[variables]`, `[[trigger.http]]` and
//! `[component.<id>]` with `source`, `key_value_stores`, `sqlite_databases`,
//! `allowed_outbound_hosts`, `environment` and `[component.<id>.variables]`.
//! Unknown keys (e.g. `[component.<id>.build]`) are ignored, as the host
//! never builds anything.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// A parsed `spin.toml`.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    /// Must be `2`.
    pub spin_manifest_version: u32,
    /// `[application]`.
    #[serde(default)]
    pub application: Application,
    /// `[variables]`: application variables.
    #[serde(default)]
    pub variables: BTreeMap<String, VariableDecl>,
    /// `[[trigger.<type>]]`; only `http` is used.
    #[serde(default)]
    pub trigger: Triggers,
    /// `[component.<id>]`.
    #[serde(default)]
    pub component: BTreeMap<String, ComponentDecl>,
}

/// `[application]`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Application {
    /// Application name.
    #[serde(default)]
    pub name: String,
    /// Application version.
    #[serde(default)]
    pub version: Option<String>,
}

/// One `[variables]` entry: either `default = "..."` or `required = true`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct VariableDecl {
    /// Value used when no provider supplies one.
    #[serde(default)]
    pub default: Option<String>,
    /// Start-up fails when no provider supplies a value.
    #[serde(default)]
    pub required: bool,
    /// Only affects logging in Spin; recorded for completeness.
    #[serde(default)]
    pub secret: bool,
}

/// `[[trigger.*]]` tables.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Triggers {
    /// `[[trigger.http]]`.
    #[serde(default)]
    pub http: Vec<HttpTrigger>,
}

/// One `[[trigger.http]]` entry.
#[derive(Debug, Clone, Deserialize)]
pub struct HttpTrigger {
    /// `route = "/path"`, `route = "/prefix/..."` or `route = { private = true }`.
    pub route: RouteConfig,
    /// The component id (inline component tables are not supported).
    pub component: String,
}

/// The `route` value of an HTTP trigger.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RouteConfig {
    /// A route pattern.
    Route(String),
    /// `{ private = true }`: reachable only via service chaining (never routed).
    Private {
        /// Must be `true`.
        private: bool,
    },
}

/// One `[component.<id>]` table.
#[derive(Debug, Clone, Deserialize)]
pub struct ComponentDecl {
    /// Path to the `.wasm`, relative to the manifest's directory.
    pub source: String,
    /// Key-value store labels the component may open.
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    /// SQLite database labels the component may open.
    #[serde(default)]
    pub sqlite_databases: Vec<String>,
    /// Outbound network permissions (`scheme://host[:port]`, may be templates).
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    /// WASI environment variables.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// Component variables: name -> template over application variables.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
}

impl Manifest {
    /// Parses manifest text (no file-system checks).
    pub fn parse(text: &str) -> Result<Self> {
        let manifest: Manifest = toml::from_str(text).context("invalid spin.toml")?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Reads and parses a manifest file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read manifest {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// Resolves a component's `source` against the manifest's directory.
    pub fn source_path(&self, manifest_path: &Path, component_id: &str) -> Result<PathBuf> {
        let decl = self
            .component
            .get(component_id)
            .with_context(|| format!("unknown component {component_id:?}"))?;
        let base = manifest_path.parent().unwrap_or_else(|| Path::new("."));
        Ok(base.join(&decl.source))
    }

    fn validate(&self) -> Result<()> {
        if self.spin_manifest_version != 2 {
            bail!(
                "unsupported spin_manifest_version {} (only 2 is supported)",
                self.spin_manifest_version
            );
        }
        for (name, decl) in &self.variables {
            crate::variables::validate_name(name)
                .with_context(|| format!("invalid application variable name {name:?}"))?;
            if decl.required && decl.default.is_some() {
                bail!("variable {name:?}: `required` and `default` are mutually exclusive");
            }
            if !decl.required && decl.default.is_none() {
                bail!("variable {name:?} must have a `default` or be `required = true`");
            }
        }
        for trigger in &self.trigger.http {
            if !self.component.contains_key(&trigger.component) {
                bail!(
                    "[[trigger.http]] refers to unknown component {:?}",
                    trigger.component
                );
            }
            if let RouteConfig::Private { private: false } = trigger.route {
                bail!(
                    "component {:?}: route must be a string or {{ private = true }}",
                    trigger.component
                );
            }
        }
        for (id, decl) in &self.component {
            for name in decl.variables.keys() {
                crate::variables::validate_name(name)
                    .with_context(|| format!("component {id:?}: invalid variable name"))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
spin_manifest_version = 2

[application]
name = "streamspace"
version = "0.1.0"
authors = ["someone"]

[variables]
jwt_secret = { required = true, secret = true }
verifier_host = { default = "127.0.0.1:9" }

[[trigger.http]]
route = "/auth/..."
component = "auth"

[[trigger.http]]
route = "/health"
component = "auth"

[[trigger.http]]
route = { private = true }
component = "auth"

[component.auth]
source = "target/wasm32-wasip2/release/auth.wasm"
key_value_stores = ["default"]
sqlite_databases = ["default"]
allowed_outbound_hosts = ["http://{{ verifier_host }}"]
[component.auth.variables]
secret = "{{ jwt_secret }}"
mode = "literal"
[component.auth.build]
command = "cargo build --target wasm32-wasip2 --release"
watch = ["src/**/*.rs"]
"#;

    #[test]
    fn parses_sample_manifest() {
        let m = Manifest::parse(SAMPLE).unwrap();
        assert_eq!(m.application.name, "streamspace");
        assert_eq!(m.trigger.http.len(), 3);
        let auth = &m.component["auth"];
        assert_eq!(auth.key_value_stores, ["default"]);
        assert_eq!(auth.variables["secret"], "{{ jwt_secret }}");
        assert!(m.variables["jwt_secret"].required);
        assert!(m.variables["jwt_secret"].secret);
        let p = m.source_path(Path::new("/app/spin.toml"), "auth").unwrap();
        assert_eq!(p, Path::new("/app/target/wasm32-wasip2/release/auth.wasm"));
    }

    #[test]
    fn rejects_unknown_component_and_bad_version() {
        let bad = SAMPLE.replace(
            "component = \"auth\"\n\n[[trigger.http]]\nroute = \"/health\"",
            "component = \"nope\"\n\n[[trigger.http]]\nroute = \"/health\"",
        );
        assert!(Manifest::parse(&bad).is_err());
        let bad = SAMPLE.replace("spin_manifest_version = 2", "spin_manifest_version = 1");
        assert!(Manifest::parse(&bad).is_err());
    }

    #[test]
    fn rejects_variable_without_default_or_required() {
        let bad = SAMPLE.replace("{ default = \"127.0.0.1:9\" }", "{ secret = true }");
        assert!(Manifest::parse(&bad).is_err());
    }
}
