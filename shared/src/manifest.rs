//! Template manifests (SPEC-wave2 §2.2): StreamSpace's `Template` CRD documents, validated,
//! stored whole as canonical JSON with their SHA-256, and their streaming protocol detected.
//!
//! The whole document is kept — unknown keys such as `kasmvnc`, `volumeMounts` or anything a
//! later StreamSpace adds survive (StreamSpace re-marshals its own struct and drops them). Only
//! what the API reads is checked; every refusal names the manifest path at fault.

use crate::validate::{ContainerImage, CpuQuantity, MemoryQuantity, ResourceName};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::yaml;

pub const API_VERSIONS: [&str; 2] = ["stream.space/v1alpha1", "stream.streamspace.io/v1alpha1"];
/// The CRD's enum.
pub const CAPABILITIES: [&str; 5] = ["Network", "Audio", "Clipboard", "USB", "Printing"];
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024;
pub const NAME_MAX: usize = 63;
pub const DISPLAY_NAME_MAX: usize = 200;
pub const DESCRIPTION_MAX: usize = 4000;
pub const CATEGORY_MAX: usize = 100;
pub const ICON_MAX: usize = 2048;
pub const TAGS_MAX: usize = 20;
pub const TAG_MAX: usize = 64;
pub const ENV_MAX: usize = 100;
pub const ENV_VALUE_MAX: usize = 4096;
/// Session resources when the manifest names none (SPEC-wave2 §1.4).
pub const DEFAULT_CPU: &str = "1000m";
pub const DEFAULT_MEMORY: &str = "2Gi";
/// The session min/max (SPEC-wave2 §1.4): defaults outside them could never start.
pub const CPU_MIN_MILLICORES: u64 = 100;
pub const CPU_MAX_MILLICORES: u64 = 64_000;
pub const MEMORY_MIN_BYTES: u64 = 128 << 20;
pub const MEMORY_MAX_BYTES: u64 = 512 << 30;

/// Why a manifest was refused: a message naming the path at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError(pub String);

impl std::fmt::Display for ManifestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn fail<T>(message: impl Into<String>) -> Result<T, ManifestError> {
    Err(ManifestError(message.into()))
}

/// How a session of the template is streamed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Streaming {
    pub protocol: String,
    pub port: i64,
    pub path: String,
}

impl Streaming {
    fn new(protocol: &str, port: i64, path: &str) -> Self {
        Self {
            protocol: protocol.to_owned(),
            port,
            path: path.to_owned(),
        }
    }
}

/// A validated manifest and what the `templates` row keeps of it.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub category: String,
    pub app_type: &'static str,
    pub icon_url: String,
    pub base_image: String,
    pub default_cpu: String,
    pub default_memory: String,
    pub capabilities: Vec<String>,
    pub tags: Vec<String>,
    pub streaming: Streaming,
    /// The whole document, unknown keys included.
    pub document: Value,
    /// The document as canonical JSON (sorted keys, no whitespace).
    pub canonical: String,
    /// Lowercase hex SHA-256 of `canonical`.
    pub sha256: String,
}

/// Parses a YAML manifest (exactly one document) and validates it.
pub fn from_yaml(text: &str) -> Result<Manifest, ManifestError> {
    let doc = yaml::parse_one(text).map_err(|e| ManifestError(format!("manifest: {e}")))?;
    validate(doc)
}

/// Validates a manifest document (§2.2) and computes its canonical form.
pub fn validate(doc: Value) -> Result<Manifest, ManifestError> {
    let Value::Object(root) = &doc else {
        return fail("manifest must be an object");
    };
    match root.get("kind") {
        Some(Value::String(k)) if k == "Template" => {}
        _ => return fail("kind must be Template"),
    }
    match root.get("apiVersion") {
        Some(Value::String(v)) if API_VERSIONS.contains(&v.as_str()) => {}
        _ => {
            return fail(format!(
                "apiVersion must be one of {}",
                API_VERSIONS.join(", ")
            ))
        }
    }
    let metadata = object(root, "metadata", "metadata")?
        .ok_or_else(|| ManifestError("metadata.name is required".into()))?;
    let name = required_str(metadata, "name", "metadata.name")?;
    if let Err(e) = ResourceName::parse(name) {
        return fail(format!("metadata.name: {e}"));
    }
    if name.len() > NAME_MAX {
        return fail(format!(
            "metadata.name must be at most {NAME_MAX} characters"
        ));
    }
    let spec = object(root, "spec", "spec")?
        .ok_or_else(|| ManifestError("spec.displayName is required".into()))?;

    let display_name = required_str(spec, "displayName", "spec.displayName")?;
    if display_name.trim().is_empty() || display_name.chars().count() > DISPLAY_NAME_MAX {
        return fail(format!(
            "spec.displayName must be 1-{DISPLAY_NAME_MAX} characters"
        ));
    }
    let description = text(spec, "description", "spec.description", DESCRIPTION_MAX)?;
    let category = text(spec, "category", "spec.category", CATEGORY_MAX)?;
    let icon_url = text(spec, "icon", "spec.icon", ICON_MAX)?;
    if !icon_url.is_empty() && !is_https_url(&icon_url) {
        return fail("spec.icon must be an https URL or empty");
    }
    let base_image = required_str(spec, "baseImage", "spec.baseImage")?;
    if let Err(e) = ContainerImage::parse(base_image) {
        return fail(format!("spec.baseImage: {e}"));
    }

    for section in ["vnc", "kasmvnc", "webapp"] {
        check_section(spec, section)?;
    }
    let webapp_enabled = enabled(spec, "webapp").is_some();
    let app_type = match optional_str(spec, "appType", "spec.appType")? {
        None | Some("") if webapp_enabled => "webapp",
        None | Some("") => "desktop",
        Some("desktop") => "desktop",
        Some("webapp") => "webapp",
        Some(_) => return fail("spec.appType must be desktop or webapp"),
    };

    let (default_cpu, default_memory) = default_resources(spec)?;
    let capabilities = string_list(spec, "capabilities", "spec.capabilities", usize::MAX, 64)?;
    if let Some(bad) = capabilities
        .iter()
        .find(|c| !CAPABILITIES.contains(&c.as_str()))
    {
        return fail(format!(
            "spec.capabilities: `{bad}` is not one of {}",
            CAPABILITIES.join(", ")
        ));
    }
    let tags = string_list(spec, "tags", "spec.tags", TAGS_MAX, TAG_MAX)?;
    check_ports(spec)?;
    check_env(spec)?;

    let streaming = detect_streaming(spec, base_image);
    let canonical = canonical_json(&doc);
    if canonical.len() > MAX_MANIFEST_BYTES {
        return fail("manifest must be at most 64 KiB as JSON");
    }
    let sha256 = crate::ids::hex(&Sha256::digest(canonical.as_bytes()));
    Ok(Manifest {
        name: name.to_owned(),
        display_name: display_name.to_owned(),
        description,
        category,
        app_type,
        icon_url,
        base_image: base_image.to_owned(),
        default_cpu,
        default_memory,
        capabilities,
        tags,
        streaming,
        canonical,
        sha256,
        document: doc,
    })
}

/// The document with every object's keys sorted and no whitespace: equal documents have equal
/// text, so their hashes compare.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The streaming protocol, port and path, in this order (§2.2, fixing StreamSpace's
/// `detectStreamingProtocol`, where the image heuristic wins over what the manifest says):
/// 1. `kasmvnc` enabled → `selkies` on its port; `vnc` enabled → `vnc` on its port;
/// 2. `webapp` enabled → `http` on its port and path;
/// 3. the first port: named `http`/`https` → `http`; 3000 or 6901 → `selkies`, 8080 →
///    `guacamole`, 5900 → `vnc`;
/// 4. the image: linuxserver → `selkies`:3000, `kasmweb/` → `selkies`:6901, `guacamole/` →
///    `guacamole`:8080, `x2go` → `x2go`:22;
/// 5. else `vnc`:5900.
pub fn detect_streaming(spec: &Map<String, Value>, base_image: &str) -> Streaming {
    if let Some(kasm) = enabled(spec, "kasmvnc") {
        return Streaming::new("selkies", port_of(kasm).unwrap_or(3000), "/websockify");
    }
    if let Some(vnc) = enabled(spec, "vnc") {
        return Streaming::new("vnc", port_of(vnc).unwrap_or(5900), "");
    }
    if let Some(web) = enabled(spec, "webapp") {
        let path = match web.get("path") {
            Some(Value::String(p)) if !p.is_empty() => p.as_str(),
            _ => "/",
        };
        return Streaming::new("http", port_of(web).unwrap_or(8080), path);
    }
    let first_port = spec
        .get("ports")
        .and_then(Value::as_array)
        .and_then(|ports| ports.first())
        .and_then(Value::as_object);
    if let Some(port) = first_port {
        let number = port_of_key(port, "containerPort");
        let named_http = matches!(
            port.get("name")
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("http" | "https")
        );
        match number {
            Some(n) if named_http => return Streaming::new("http", n, "/"),
            Some(n @ (3000 | 6901)) => return Streaming::new("selkies", n, "/websockify"),
            Some(8080) => return Streaming::new("guacamole", 8080, "/guacamole"),
            Some(5900) => return Streaming::new("vnc", 5900, ""),
            _ => {}
        }
    }
    if base_image.contains("lscr.io/linuxserver/") || base_image.contains("linuxserver/") {
        Streaming::new("selkies", 3000, "/websockify")
    } else if base_image.contains("kasmweb/") {
        Streaming::new("selkies", 6901, "/websockify")
    } else if base_image.contains("guacamole/") {
        Streaming::new("guacamole", 8080, "/guacamole")
    } else if base_image.contains("x2go") {
        Streaming::new("x2go", 22, "")
    } else {
        Streaming::new("vnc", 5900, "")
    }
}

/// `spec.<section>` when it is an object with `enabled: true`.
fn enabled<'a>(spec: &'a Map<String, Value>, section: &str) -> Option<&'a Map<String, Value>> {
    let obj = spec.get(section)?.as_object()?;
    (obj.get("enabled") == Some(&Value::Bool(true))).then_some(obj)
}

fn port_of(section: &Map<String, Value>) -> Option<i64> {
    port_of_key(section, "port")
}

fn port_of_key(obj: &Map<String, Value>, key: &str) -> Option<i64> {
    obj.get(key)
        .and_then(Value::as_i64)
        .filter(|p| (1..=65535).contains(p))
}

fn check_section(spec: &Map<String, Value>, section: &str) -> Result<(), ManifestError> {
    let Some(obj) = object(spec, section, &format!("spec.{section}"))? else {
        return Ok(());
    };
    match obj.get("enabled") {
        None | Some(Value::Null | Value::Bool(_)) => {}
        Some(_) => return fail(format!("spec.{section}.enabled must be true or false")),
    }
    check_port(obj.get("port"), &format!("spec.{section}.port"))?;
    match obj.get("path") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(p)) if p.is_empty() || p.starts_with('/') && p.len() <= 1024 => Ok(()),
        Some(_) => fail(format!(
            "spec.{section}.path must be a path starting with /"
        )),
    }
}

fn check_port(value: Option<&Value>, path: &str) -> Result<(), ManifestError> {
    match value {
        None | Some(Value::Null) => Ok(()),
        Some(v) if v.as_i64().is_some_and(|p| (1..=65535).contains(&p)) => Ok(()),
        Some(_) => fail(format!("{path} must be a port number 1-65535")),
    }
}

fn check_ports(spec: &Map<String, Value>) -> Result<(), ManifestError> {
    let Some(ports) = array(spec, "ports", "spec.ports")? else {
        return Ok(());
    };
    for (i, port) in ports.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        let Value::Object(port) = port else {
            return fail(format!("{path} must be an object"));
        };
        if port.get("containerPort").is_none_or(Value::is_null) {
            return fail(format!("{path}.containerPort is required"));
        }
        check_port(port.get("containerPort"), &format!("{path}.containerPort"))?;
        match port.get("protocol") {
            None | Some(Value::Null) => {}
            Some(Value::String(p)) if p == "TCP" || p == "UDP" => {}
            Some(_) => return fail(format!("{path}.protocol must be TCP or UDP")),
        }
        optional_str(port, "name", &format!("{path}.name"))?;
    }
    Ok(())
}

fn check_env(spec: &Map<String, Value>) -> Result<(), ManifestError> {
    let Some(env) = array(spec, "env", "spec.env")? else {
        return Ok(());
    };
    if env.len() > ENV_MAX {
        return fail(format!("spec.env must have at most {ENV_MAX} entries"));
    }
    for (i, var) in env.iter().enumerate() {
        let path = format!("spec.env[{i}]");
        let Value::Object(var) = var else {
            return fail(format!("{path} must be an object"));
        };
        let name = required_str(var, "name", &format!("{path}.name"))?;
        if !is_env_name(name) {
            return fail(format!("{path}.name must match [A-Za-z_][A-Za-z0-9_]*"));
        }
        let len = match var.get("value") {
            None | Some(Value::Null) => 0,
            Some(Value::String(s)) => s.len(),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string().len(),
            Some(_) => return fail(format!("{path}.value must be a string")),
        };
        if len > ENV_VALUE_MAX {
            return fail(format!("{path}.value must be at most 4 KiB"));
        }
    }
    Ok(())
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `spec.defaultResources`, in either form: `{memory, cpu}` or `{requests: {…}, limits: {…}}`
/// (StreamSpace's own generator writes the second; its parser only read the first). Defaults
/// come from `requests`, else the flat keys, else [`DEFAULT_CPU`]/[`DEFAULT_MEMORY`]. Every
/// quantity present is checked, limits included.
fn default_resources(spec: &Map<String, Value>) -> Result<(String, String), ManifestError> {
    let Some(res) = object(spec, "defaultResources", "spec.defaultResources")? else {
        return Ok((DEFAULT_CPU.to_owned(), DEFAULT_MEMORY.to_owned()));
    };
    let mut cpu = quantity(res, "cpu", "spec.defaultResources.cpu", Kind::Cpu)?;
    let mut memory = quantity(res, "memory", "spec.defaultResources.memory", Kind::Memory)?;
    for group in ["requests", "limits"] {
        let path = format!("spec.defaultResources.{group}");
        let Some(obj) = object(res, group, &path)? else {
            continue;
        };
        let c = quantity(obj, "cpu", &format!("{path}.cpu"), Kind::Cpu)?;
        let m = quantity(obj, "memory", &format!("{path}.memory"), Kind::Memory)?;
        if group == "requests" {
            cpu = c.or(cpu);
            memory = m.or(memory);
        }
    }
    Ok((
        cpu.unwrap_or_else(|| DEFAULT_CPU.to_owned()),
        memory.unwrap_or_else(|| DEFAULT_MEMORY.to_owned()),
    ))
}

#[derive(Clone, Copy)]
enum Kind {
    Cpu,
    Memory,
}

/// A quantity (a string, or a bare YAML number such as `cpu: 2`), parsed and within the
/// session min/max.
fn quantity(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
    kind: Kind,
) -> Result<Option<String>, ManifestError> {
    let text = match obj.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return fail(format!("{path} must be a quantity string")),
    };
    match kind {
        Kind::Cpu => {
            let q = CpuQuantity::parse(&text).map_err(|e| ManifestError(format!("{path}: {e}")))?;
            if q.millicores() < CPU_MIN_MILLICORES {
                return fail(format!("{path}: CPU request too low: minimum 100m"));
            }
            if q.millicores() > CPU_MAX_MILLICORES {
                return fail(format!("{path}: CPU request too high: maximum 64000m"));
            }
        }
        Kind::Memory => {
            let q =
                MemoryQuantity::parse(&text).map_err(|e| ManifestError(format!("{path}: {e}")))?;
            if q.bytes() < MEMORY_MIN_BYTES {
                return fail(format!("{path}: memory request too low: minimum 128Mi"));
            }
            if q.bytes() > MEMORY_MAX_BYTES {
                return fail(format!("{path}: memory request too high: maximum 512Gi"));
            }
        }
    }
    Ok(Some(text))
}

fn object<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a Map<String, Value>>, ManifestError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => fail(format!("{path} must be an object")),
    }
}

fn array<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a Vec<Value>>, ManifestError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(_) => fail(format!("{path} must be a list")),
    }
}

fn optional_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, ManifestError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => fail(format!("{path} must be a string")),
    }
}

fn required_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a str, ManifestError> {
    match optional_str(obj, key, path)? {
        Some(s) if !s.is_empty() => Ok(s),
        _ => fail(format!("{path} is required")),
    }
}

/// An optional free-text field of at most `max` characters, without control characters other
/// than line breaks and tabs.
fn text(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
    max: usize,
) -> Result<String, ManifestError> {
    let s = optional_str(obj, key, path)?.unwrap_or("");
    let bad_control = |c: char| c.is_control() && !matches!(c, '\n' | '\r' | '\t');
    if s.chars().count() > max || s.chars().any(bad_control) {
        return fail(format!(
            "{path} must be at most {max} characters without control characters"
        ));
    }
    Ok(s.to_owned())
}

fn string_list(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
    max_items: usize,
    max_len: usize,
) -> Result<Vec<String>, ManifestError> {
    let Some(items) = array(obj, key, path)? else {
        return Ok(Vec::new());
    };
    if items.len() > max_items {
        return fail(format!("{path} must have at most {max_items} entries"));
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::String(s)
                if !s.trim().is_empty()
                    && s.chars().count() <= max_len
                    && !s.chars().any(char::is_control) =>
            {
                out.push(s.clone());
            }
            _ => {
                return fail(format!(
                    "{path} entries must be strings of 1-{max_len} characters"
                ))
            }
        }
    }
    Ok(out)
}

/// `https://host[…]`, no whitespace or control characters.
fn is_https_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("https://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    !host.is_empty()
        && !host.contains('@')
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests;
