//! Typed settings read from Spin variables, and the one list of those variables ([`VARIABLES`]):
//! each one's default, whether it is a secret, how its value is validated and which components
//! map it. `tests/e2e/tests/registries.rs` proves `spin.toml` (`[variables]` and every
//! `[component.<name>.variables]`) and the README's Configuration table agree with the list.
//!
//! Each getter is one host call, made only when a request needs that setting. A variable that is
//! unset or empty takes its default; one that is set but malformed or out of range is a
//! configuration error ([`ConfigError`], a [`StoreError`] of kind [`StoreKind::Config`]): the
//! request answers 503 `configuration_error`, the log line names the variable and why, and
//! `GET /health` reports it. It is never silently replaced by the default.

use crate::store::{StoreError, StoreKind, Variables};

/// Every component (the five of `spin.toml`).
const ALL: &[&str] = &["audit", "auth", "sessions", "catalog", "webhooks"];
/// The components whose users may present external tokens (see the README's Identity section).
const VERIFIERS: &[&str] = &["auth", "sessions", "catalog", "webhooks"];

/// How a variable's value is validated (after trimming; empty means unset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Any text.
    Text,
    /// `true`/`false`/`1`/`0`/`yes`/`no`/`on`/`off`, any case.
    Flag,
    /// A whole number within `min..=max`.
    Int { min: i64, max: i64 },
    /// One of these words, any case.
    OneOf(&'static [&'static str]),
    /// An absolute `http://` or `https://` URL.
    HttpUrl,
    /// Comma-separated IP addresses or CIDRs.
    Cidrs,
    /// A Go-style duration (`30m`, `1h30m`, `90s`) within `min..=max` seconds.
    GoDuration { min: u64, max: u64 },
    /// A 32-byte sealing key, 64 hex digits or base64 (`crate::secrets::seal::parse_key`).
    SealKey,
}

/// The components that run the session sweep (agent polls, the maintenance purge).
const SWEEPERS: &[&str] = &["sessions", "audit"];

/// One Spin variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variable {
    pub name: &'static str,
    /// The default in `spin.toml` (also what an unset or empty value means).
    pub default: &'static str,
    /// `secret = true` in `spin.toml`: never echoed in errors.
    pub secret: bool,
    pub rule: Rule,
    /// The components that map it (`[component.<name>.variables]`). Empty: used only in the
    /// manifest itself (`allowed_outbound_hosts`) or not read yet.
    pub components: &'static [&'static str],
}

const fn var(
    name: &'static str,
    default: &'static str,
    rule: Rule,
    components: &'static [&'static str],
) -> Variable {
    Variable {
        name,
        default,
        secret: false,
        rule,
        components,
    }
}

const fn secret(name: &'static str, components: &'static [&'static str]) -> Variable {
    Variable {
        name,
        default: "",
        secret: true,
        rule: Rule::Text,
        components,
    }
}

const PER_WINDOW: Rule = Rule::Int {
    min: 1,
    max: 1_000_000,
};

/// Every variable the application reads, in `spin.toml` order.
pub const VARIABLES: &[Variable] = &[
    var("allowed_origins", "", Rule::Text, ALL),
    var(
        "security_headers",
        "strict",
        Rule::OneOf(&["strict", "relaxed"]),
        ALL,
    ),
    var("log_bodies", "false", Rule::Flag, ALL),
    var("audit_redact_fields", "", Rule::Text, ALL),
    var("log_health_checks", "false", Rule::Flag, &["audit"]),
    var("trusted_proxies", "", Rule::Cidrs, ALL),
    var(
        "sqlite_synchronous",
        "normal",
        Rule::OneOf(&["normal", "full", "server"]),
        ALL,
    ),
    var(
        "access_token_ttl_seconds",
        "900",
        Rule::Int {
            min: 60,
            max: 86_400,
        },
        &["auth"],
    ),
    var(
        "idle_timeout_seconds",
        "1800",
        Rule::Int {
            min: 60,
            max: 604_800,
        },
        ALL,
    ),
    var(
        "max_login_sessions",
        "5",
        Rule::Int { min: 1, max: 100 },
        &["auth"],
    ),
    var("token_verifier_url", "", Rule::HttpUrl, VERIFIERS),
    var("token_verifier_prefix", "ssc_", Rule::Text, VERIFIERS),
    var(
        "token_verifier_origin",
        "https://token-verifier.invalid",
        Rule::Text,
        &[],
    ),
    var("license_public_key", "", Rule::Text, &["auth", "sessions"]),
    // The audit purge and the catalog sync drain (`POST /catalog/sync/pending`).
    secret("maintenance_token", &["audit", "webhooks"]),
    secret("audit_key", ALL),
    var("rate_limit_login_per_minute", "10", PER_WINDOW, ALL),
    var("rate_limit_api_per_minute", "1000", PER_WINDOW, ALL),
    var(
        "rate_limit_backend",
        "sqlite",
        Rule::OneOf(&["sqlite", "redis"]),
        ALL,
    ),
    var("rate_limit_login_per_hour", "100", PER_WINDOW, ALL),
    var("rate_limit_mfa_per_minute", "5", PER_WINDOW, ALL),
    var("rate_limit_mint_per_minute", "10", PER_WINDOW, ALL),
    var("rate_limit_agent_per_minute", "120", PER_WINDOW, ALL),
    var(
        "rate_limit_webhook_per_minute",
        "300",
        PER_WINDOW,
        &["webhooks"],
    ),
    var("rate_limit_fail_open", "false", Rule::Flag, ALL),
    var(
        "rate_limit_ipv6_prefix",
        "64",
        Rule::Int { min: 1, max: 128 },
        ALL,
    ),
    var("rate_limit_login_ip_per_minute", "30", PER_WINDOW, ALL),
    var("rate_limit_login_ip_per_hour", "300", PER_WINDOW, ALL),
    var("rate_limit_login_user_per_hour", "1000", PER_WINDOW, ALL),
    var(
        "redis_origin",
        "redis://redis.invalid:6379",
        Rule::Text,
        &[],
    ),
    secret("redis_url", ALL),
    // Sessions (SPEC-wave2 §1, §4). The sweep runs in agent polls (sessions) and in the
    // maintenance purge (audit); disabling a user or revoking an agent (auth) enqueues commands.
    var(
        "session_default_idle_timeout",
        "30m",
        Rule::GoDuration {
            min: 60,
            max: 604_800,
        },
        &["sessions"],
    ),
    var("session_auto_hibernate", "true", Rule::Flag, SWEEPERS),
    var(
        "session_idle_grace_seconds",
        "300",
        Rule::Int {
            min: 0,
            max: 86_400,
        },
        SWEEPERS,
    ),
    var(
        "session_force_cleanup_seconds",
        "600",
        Rule::Int {
            min: 60,
            max: 604_800,
        },
        SWEEPERS,
    ),
    var("session_url_template", "", Rule::Text, &["sessions"]),
    var("session_platform", "", Rule::Text, &["sessions"]),
    var(
        "agent_command_lease_seconds",
        "60",
        Rule::Int { min: 5, max: 3600 },
        &["sessions"],
    ),
    var(
        "agent_command_max_attempts",
        "5",
        Rule::Int { min: 1, max: 100 },
        &["sessions", "auth", "audit"],
    ),
    var(
        "agent_poll_interval_seconds",
        "3",
        Rule::Int { min: 1, max: 300 },
        &["sessions"],
    ),
    // Catalog sync over GitHub's HTTP API (SPEC-wave2 §2.4, Decision 4), run by the webhooks
    // component. The origins are used only in `spin.toml`'s `allowed_outbound_hosts`, as
    // `token_verifier_origin` is.
    var(
        "github_api_url",
        "https://api.github.com",
        Rule::HttpUrl,
        &["webhooks"],
    ),
    var(
        "github_raw_url",
        "https://raw.githubusercontent.com",
        Rule::HttpUrl,
        &["webhooks"],
    ),
    var(
        "github_api_origin",
        "https://api.github.com",
        Rule::Text,
        &[],
    ),
    var(
        "github_raw_origin",
        "https://raw.githubusercontent.com",
        Rule::Text,
        &[],
    ),
    secret("github_token", &["webhooks"]),
    var(
        "catalog_sync_interval_seconds",
        "3600",
        Rule::Int {
            min: 60,
            max: 31_536_000,
        },
        &["webhooks"],
    ),
    // Catalog repositories (SPEC-wave2 §2.3, Decision 3): the hosts a repository URL may name,
    // and the key sealing their git credentials and webhook secrets (the webhooks component
    // serves repositories, syncs them and verifies GitHub signatures).
    var("repository_hosts", "github.com", Rule::Text, &["webhooks"]),
    Variable {
        name: "repository_secret_key",
        default: "",
        secret: true,
        rule: Rule::SealKey,
        components: &["webhooks"],
    },
    // Inbound webhooks (SPEC-wave2 §3.1): the Standard Webhooks timestamp tolerance (both ways),
    // the deployment-wide secrets (comma-separated lists for rotation; Standard Webhooks a JSON
    // object of sources), and how long verified deliveries are kept.
    var(
        "webhook_tolerance_seconds",
        "300",
        Rule::Int {
            min: 1,
            max: 86_400,
        },
        &["webhooks"],
    ),
    secret("github_webhook_secret", &["webhooks"]),
    secret("webhook_secret", &["webhooks"]),
    secret("standard_webhook_secrets", &["webhooks"]),
    var(
        "webhook_delivery_retention_days",
        "30",
        Rule::Int { min: 1, max: 3650 },
        &["audit", "webhooks"],
    ),
];

/// The registry entry of `name`.
pub fn variable(name: &str) -> Option<&'static Variable> {
    VARIABLES.iter().find(|v| v.name == name)
}

impl Variable {
    /// Checks a set, non-empty (trimmed) value; `Err` says why it is refused. A secret's value is
    /// never echoed.
    pub fn check(&self, value: &str) -> Result<(), String> {
        let got = |what: String| {
            if self.secret {
                what
            } else {
                format!(
                    "{what} (got `{}`)",
                    value.chars().take(64).collect::<String>()
                )
            }
        };
        match self.rule {
            Rule::Text => Ok(()),
            Rule::Flag => parse_flag(value)
                .map(|_| ())
                .ok_or_else(|| got("must be true or false".to_owned())),
            Rule::Int { min, max } => value
                .parse::<i64>()
                .ok()
                .filter(|v| (min..=max).contains(v))
                .map(|_| ())
                .ok_or_else(|| got(format!("must be a whole number in {min}..={max}"))),
            Rule::OneOf(words) => words
                .iter()
                .any(|w| w.eq_ignore_ascii_case(value))
                .then_some(())
                .ok_or_else(|| got(format!("must be one of {}", words.join(", ")))),
            Rule::HttpUrl => {
                let lower = value.to_ascii_lowercase();
                let rest = lower
                    .strip_prefix("https://")
                    .or_else(|| lower.strip_prefix("http://"));
                rest.filter(|r| !r.is_empty() && !r.starts_with('/'))
                    .map(|_| ())
                    .ok_or_else(|| got("must be an absolute http:// or https:// URL".to_owned()))
            }
            Rule::GoDuration { min, max } => crate::sessions::fields::parse_duration(value)
                .filter(|v| (min..=max).contains(v))
                .map(|_| ())
                .ok_or_else(|| {
                    got(format!(
                        "must be a duration such as 30m or 1h30m, from {min} to {max} seconds"
                    ))
                }),
            Rule::SealKey => crate::secrets::seal::parse_key(value)
                .map(|_| ())
                .map_err(got),
            Rule::Cidrs => value
                .split(',')
                .filter(|part| !part.trim().is_empty())
                .all(|part| crate::client_ip::Cidr::parse(part).is_some())
                .then_some(())
                .ok_or_else(|| got("must be comma-separated IP addresses or CIDRs".to_owned())),
        }
    }
}

/// A variable that is set but malformed or out of range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    pub reason: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.variable, self.reason)
    }
}

impl std::error::Error for ConfigError {}

impl From<ConfigError> for StoreError {
    fn from(err: ConfigError) -> Self {
        StoreError::new(StoreKind::Config, err.to_string())
    }
}

fn parse_flag(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Which set of security headers responses carry (`security_headers` variable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityMode {
    /// Production: HSTS with preload, strict CSP, no framing.
    Strict,
    /// Local development over plain HTTP: no HSTS, CSP that allows same-origin scripts.
    Relaxed,
}

/// SQLite `synchronous` level per connection (`sqlite_synchronous` variable).
///
/// `NORMAL` in WAL mode loses nothing on a process crash; only the last commits may be lost on a
/// power failure or OS crash. `FULL` syncs on every commit (slower, DESIGN §8 measurements).
/// `Server` (`server`) leaves both `synchronous` and the journal mode to a database server (libSQL,
/// Turso), which refuses `PRAGMA name=value`: nothing is set per connection there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    Normal,
    Full,
    Server,
}

impl Synchronous {
    /// The statement that applies the level on a connection; `None` when the server decides.
    pub fn pragma(self) -> Option<&'static str> {
        match self {
            Synchronous::Normal => Some("PRAGMA synchronous = NORMAL"),
            Synchronous::Full => Some("PRAGMA synchronous = FULL"),
            Synchronous::Server => None,
        }
    }
}

/// Reads settings on demand.
pub struct Settings<'a> {
    vars: &'a dyn Variables,
}

impl<'a> Settings<'a> {
    pub fn new(vars: &'a dyn Variables) -> Self {
        Self { vars }
    }

    /// A variable's value, `None` when undefined or empty. A registered variable's value is
    /// validated against its [`Rule`]: a malformed one is a configuration error.
    pub fn raw(&self, name: &str) -> Result<Option<String>, StoreError> {
        let value = self
            .vars
            .get(name)?
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty());
        if let (Some(value), Some(spec)) = (value.as_deref(), variable(name)) {
            spec.check(value).map_err(|reason| ConfigError {
                variable: spec.name,
                reason,
            })?;
        }
        Ok(value)
    }

    /// Every variable this component maps, checked: one entry per variable that is malformed
    /// (kind [`StoreKind::Config`]) or could not be read (another kind). Empty when all is well.
    /// Used by `GET /health`.
    pub fn problems(&self) -> Vec<StoreError> {
        VARIABLES
            .iter()
            .filter_map(|v| self.raw(v.name).err())
            .collect()
    }

    /// `security_headers`; a malformed value is an error (the pipeline then applies `strict`).
    pub fn security_mode(&self) -> Result<SecurityMode, StoreError> {
        Ok(match self.raw("security_headers")?.as_deref() {
            Some(v) if v.eq_ignore_ascii_case("relaxed") => SecurityMode::Relaxed,
            _ => SecurityMode::Strict,
        })
    }

    /// Exact origins allowed for CORS (`allowed_origins`, comma-separated); `*` allows any origin
    /// but never with credentials.
    pub fn allowed_origins(&self) -> Result<String, StoreError> {
        Ok(self.raw("allowed_origins")?.unwrap_or_default())
    }

    /// Whether `/health` requests get an access-log line (`log_health_checks`, default false).
    pub fn log_health_checks(&self) -> Result<bool, StoreError> {
        Ok(self.flag("log_health_checks")?.unwrap_or(false))
    }

    pub fn sqlite_synchronous(&self) -> Result<Synchronous, StoreError> {
        // Validated by `raw`: a typo is a configuration error, not a silent choice.
        Ok(match self.raw("sqlite_synchronous")?.as_deref() {
            Some(v) if v.eq_ignore_ascii_case("full") => Synchronous::Full,
            Some(v) if v.eq_ignore_ascii_case("server") => Synchronous::Server,
            _ => Synchronous::Normal,
        })
    }

    /// A registered whole-number variable: its value, else its default. Malformed or out of
    /// range (the registry's [`Rule::Int`]) is a configuration error, never the default.
    pub fn int(&self, name: &str) -> Result<i64, StoreError> {
        let spec = variable(name).ok_or_else(|| ConfigError {
            variable: "(unregistered)",
            reason: format!("`{name}` is not in config::VARIABLES"),
        })?;
        let text = self.raw(name)?;
        text.as_deref()
            .unwrap_or(spec.default)
            .parse::<i64>()
            .map_err(|_| {
                ConfigError {
                    variable: spec.name,
                    reason: "is not a whole number".to_owned(),
                }
                .into()
            })
    }

    /// Access-token lifetime (`access_token_ttl_seconds`, 60 s – 24 h, default 900).
    pub fn access_token_ttl_seconds(&self) -> Result<i64, StoreError> {
        self.int("access_token_ttl_seconds")
    }

    /// Login-session idle timeout (`idle_timeout_seconds`, 60 s – 7 days, default 1800).
    pub fn idle_timeout_seconds(&self) -> Result<i64, StoreError> {
        self.int("idle_timeout_seconds")
    }

    /// Concurrent login sessions per user (`max_login_sessions`, 1 – 100, default 5).
    pub fn max_login_sessions(&self) -> Result<i64, StoreError> {
        self.int("max_login_sessions")
    }

    /// The external token verifier's endpoint (`token_verifier_url`); `None` when undefined or
    /// empty, which refuses every external token (fail closed).
    pub fn token_verifier_url(&self) -> Result<Option<String>, StoreError> {
        self.raw("token_verifier_url")
    }

    /// The prefix of externally verified tokens (`token_verifier_prefix`, default `ssc_`; empty
    /// means the default, never "every token").
    pub fn token_verifier_prefix(&self) -> Result<String, StoreError> {
        Ok(self
            .raw("token_verifier_prefix")?
            .unwrap_or_else(|| "ssc_".to_owned()))
    }

    /// A boolean variable: `true`/`false`/`1`/`0`/`yes`/`no`/`on`/`off`; `None` when unset. Any
    /// other value is a configuration error.
    pub fn flag(&self, name: &str) -> Result<Option<bool>, StoreError> {
        match self.raw(name)? {
            None => Ok(None),
            Some(v) => parse_flag(&v).map(Some).ok_or_else(|| {
                ConfigError {
                    variable: variable(name).map_or("(unregistered)", |v| v.name),
                    reason: format!("must be true or false (got `{v}`)"),
                }
                .into()
            }),
        }
    }
}

#[cfg(all(test, feature = "native"))]
mod tests {
    use super::*;
    use crate::store::native::MapVariables;

    #[test]
    fn malformed_values_are_configuration_errors() {
        for (name, bad) in [
            ("security_headers", "loose"),
            ("sqlite_synchronous", "OFF"),
            ("log_bodies", "sometimes"),
            ("rate_limit_backend", "memcached"),
            ("trusted_proxies", "10.0.0.0/8, not-a-cidr"),
            ("token_verifier_url", "ftp://verifier"),
            ("idle_timeout_seconds", "30"),
        ] {
            let vars = MapVariables::default().with(name, bad);
            let err = Settings::new(&vars).raw(name).unwrap_err();
            assert_eq!(err.store, StoreKind::Config, "{name}");
            assert!(err.message.starts_with(name), "{name}: {}", err.message);
        }
        let vars = MapVariables::default()
            .with("security_headers", "loose")
            .with("sqlite_synchronous", "OFF");
        let s = Settings::new(&vars);
        assert_eq!(s.security_mode().unwrap_err().store, StoreKind::Config);
        assert_eq!(s.sqlite_synchronous().unwrap_err().store, StoreKind::Config);
        assert_eq!(s.problems().len(), 2);
    }

    #[test]
    fn out_of_range_variable_is_reported_not_replaced() {
        let vars = MapVariables::default().with("rate_limit_api_per_minute", "2000000");
        let s = Settings::new(&vars);
        let err = s.int("rate_limit_api_per_minute").unwrap_err();
        assert_eq!(err.store, StoreKind::Config);
        assert_eq!(
            err.message,
            "rate_limit_api_per_minute: must be a whole number in 1..=1000000 (got `2000000`)"
        );
        let problems = s.problems();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].message, err.message);
        // Malformed is no different from out of range.
        let vars = MapVariables::default().with("max_login_sessions", "5x");
        assert!(Settings::new(&vars).max_login_sessions().is_err());
        // In range, and unset (the registry's default), are fine.
        let vars = MapVariables::default().with("rate_limit_api_per_minute", " 1000000 ");
        assert_eq!(
            Settings::new(&vars)
                .int("rate_limit_api_per_minute")
                .unwrap(),
            1_000_000
        );
        let vars = MapVariables::default();
        assert_eq!(
            Settings::new(&vars)
                .int("rate_limit_api_per_minute")
                .unwrap(),
            1000
        );
        assert!(Settings::new(&vars).problems().is_empty());
    }

    #[test]
    fn secrets_are_never_echoed() {
        for spec in VARIABLES.iter().filter(|v| v.secret) {
            let mut fake = *spec;
            fake.rule = Rule::Int { min: 1, max: 2 };
            let reason = fake.check("hunter2-secret").unwrap_err();
            assert!(!reason.contains("hunter2"), "{}: {reason}", spec.name);
        }
    }

    #[test]
    fn every_default_passes_its_own_rule() {
        for v in VARIABLES {
            if !v.default.is_empty() {
                assert_eq!(v.check(v.default), Ok(()), "{}", v.name);
            }
            assert_eq!(
                VARIABLES.iter().filter(|w| w.name == v.name).count(),
                1,
                "{} listed once",
                v.name
            );
        }
    }

    #[test]
    fn server_leaves_synchronous_to_the_database_server() {
        let vars = MapVariables::default().with("sqlite_synchronous", "Server");
        let s = Settings::new(&vars);
        assert_eq!(s.sqlite_synchronous().unwrap(), Synchronous::Server);
        assert_eq!(Synchronous::Server.pragma(), None);
    }

    #[test]
    fn defaults() {
        let vars = MapVariables::default();
        let s = Settings::new(&vars);
        assert_eq!(s.security_mode().unwrap(), SecurityMode::Strict);
        assert_eq!(s.sqlite_synchronous().unwrap(), Synchronous::Normal);
        assert!(!s.log_health_checks().unwrap());
        assert_eq!(s.allowed_origins().unwrap(), "");
    }

    #[test]
    fn relaxed_and_flags() {
        let vars = MapVariables::default()
            .with("security_headers", "Relaxed")
            .with("log_health_checks", "yes");
        let s = Settings::new(&vars);
        assert_eq!(s.security_mode().unwrap(), SecurityMode::Relaxed);
        assert!(s.log_health_checks().unwrap());
    }
}
