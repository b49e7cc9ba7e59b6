//! Application/component variables, mirroring Spin's `factor-variables` and
//! `spin-expressions`.
//!
//! * Application variables (`[variables]`) get their value from a provider —
//!   here the environment (`SPIN_VARIABLE_<UPPERCASE_NAME>`, like Spin's
//!   default env provider) with programmatic overrides taking precedence —
//!   or else from `default`. A `required` variable with no provider value
//!   makes start-up fail, as in Spin.
//! * Component variables (`[component.<id>.variables]`) are templates such as
//!   `"{{ app_var }}"` or literals; only those are visible to `get`.
//! * Names must be lowercase ASCII letters, digits and single underscores,
//!   starting with a letter and not ending with `_` (Spin's `Key` rules).

use std::collections::{BTreeMap, HashMap};

use anyhow::{anyhow, bail, Context, Result};

use crate::manifest::VariableDecl;

/// Checks a variable name against Spin's rules.
pub fn validate_name(name: &str) -> Result<()> {
    let Some(first) = name.chars().next() else {
        bail!("variable name must not be empty");
    };
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        bail!("variable name {name:?} contains invalid character {c:?}");
    }
    if !first.is_ascii_lowercase() {
        bail!("variable name {name:?} must start with a lowercase letter");
    }
    if name.ends_with('_') {
        bail!("variable name {name:?} must end with a letter or digit");
    }
    if name.contains("__") {
        bail!("variable name {name:?} must not contain consecutive underscores");
    }
    Ok(())
}

/// The environment-variable name Spin's env provider reads for `name`.
pub fn env_var_name(name: &str) -> String {
    format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase())
}

/// Resolves every application variable to its value.
///
/// `env` looks up environment variables (normally `std::env::var`);
/// `overrides` win over the environment, which wins over `default`.
pub fn resolve_app_variables(
    decls: &BTreeMap<String, VariableDecl>,
    env: impl Fn(&str) -> Option<String>,
    overrides: &HashMap<String, String>,
) -> Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for (name, decl) in decls {
        let value = overrides
            .get(name)
            .cloned()
            .or_else(|| env(&env_var_name(name)))
            .or_else(|| decl.default.clone());
        match value {
            Some(v) => {
                out.insert(name.clone(), v);
            }
            None => bail!(
                "required variable {name:?} has no value (set {} or pass an override)",
                env_var_name(name)
            ),
        }
    }
    Ok(out)
}

/// Renders a template like `"http://{{ host }}:{{port}}"` against `vars`.
pub fn render_template(template: &str, vars: &HashMap<String, String>) -> Result<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| anyhow!("unterminated `{{{{` in template {template:?}"))?;
        let name = after[..end].trim();
        validate_name(name).with_context(|| format!("in template {template:?}"))?;
        let value = vars
            .get(name)
            .ok_or_else(|| anyhow!("template {template:?} uses undefined variable {name:?}"))?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    if rest.contains("}}") {
        bail!("unbalanced `}}}}` in template {template:?}");
    }
    out.push_str(rest);
    Ok(out)
}

/// Resolves a component's `[component.<id>.variables]` to final values.
pub fn resolve_component_variables(
    component_vars: &BTreeMap<String, String>,
    app_values: &HashMap<String, String>,
) -> Result<HashMap<String, String>> {
    component_vars
        .iter()
        .map(|(name, template)| {
            let value = render_template(template, app_values)
                .with_context(|| format!("component variable {name:?}"))?;
            Ok((name.clone(), value))
        })
        .collect()
}

impl crate::bindings::fermyon::spin::variables::Host for crate::server::HostState {
    async fn get(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<String, crate::bindings::fermyon::spin::variables::Error>> {
        use crate::bindings::fermyon::spin::variables::Error;
        if let Err(e) = validate_name(&name) {
            return Ok(Err(Error::InvalidName(e.to_string())));
        }
        Ok(match self.component.variables.get(&name) {
            Some(v) => Ok(v.clone()),
            None => Err(Error::Undefined(format!("no variable for {name:?}"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decls() -> BTreeMap<String, VariableDecl> {
        let mut d = BTreeMap::new();
        d.insert(
            "jwt_secret".to_string(),
            VariableDecl {
                default: None,
                required: true,
                secret: true,
            },
        );
        d.insert(
            "host".to_string(),
            VariableDecl {
                default: Some("127.0.0.1:9".into()),
                required: false,
                secret: false,
            },
        );
        d
    }

    #[test]
    fn names() {
        for ok in ["a", "jwt_secret", "a1_b2"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "A", "1a", "_a", "a_", "a__b", "a-b", "a.b"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        assert_eq!(env_var_name("jwt_secret"), "SPIN_VARIABLE_JWT_SECRET");
    }

    #[test]
    fn provider_precedence_and_required() {
        let env = |k: &str| (k == "SPIN_VARIABLE_JWT_SECRET").then(|| "from-env".to_string());
        let vals = resolve_app_variables(&decls(), env, &HashMap::new()).unwrap();
        assert_eq!(vals["jwt_secret"], "from-env");
        assert_eq!(vals["host"], "127.0.0.1:9");

        let overrides = HashMap::from([
            ("jwt_secret".to_string(), "override".to_string()),
            ("host".to_string(), "10.0.0.1:80".to_string()),
        ]);
        let vals = resolve_app_variables(&decls(), env, &overrides).unwrap();
        assert_eq!(vals["jwt_secret"], "override");
        assert_eq!(vals["host"], "10.0.0.1:80");

        let err = resolve_app_variables(&decls(), |_| None, &HashMap::new()).unwrap_err();
        assert!(err.to_string().contains("jwt_secret"));
    }

    #[test]
    fn templates() {
        let vars = HashMap::from([
            ("host".to_string(), "example.com".to_string()),
            ("port".to_string(), "8080".to_string()),
        ]);
        assert_eq!(render_template("literal", &vars).unwrap(), "literal");
        assert_eq!(
            render_template("http://{{ host }}:{{port}}/x", &vars).unwrap(),
            "http://example.com:8080/x"
        );
        assert!(render_template("{{ missing }}", &vars).is_err());
        assert!(render_template("{{ host", &vars).is_err());
        assert!(render_template("{{ Host }}", &vars).is_err());

        let comp = BTreeMap::from([
            ("url".to_string(), "https://{{ host }}".to_string()),
            ("mode".to_string(), "fixed".to_string()),
        ]);
        let resolved = resolve_component_variables(&comp, &vars).unwrap();
        assert_eq!(resolved["url"], "https://example.com");
        assert_eq!(resolved["mode"], "fixed");
    }
}
