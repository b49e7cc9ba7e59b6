//! Typed settings read from Spin variables (names are part of the API contract; see the README).
//! Each getter is one host call, made only when a request needs that setting. A malformed value
//! fails closed: the strict choice is used, never the permissive one.

use crate::store::{StoreError, Variables};

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

    /// A raw variable, `None` when undefined or empty.
    pub fn raw(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .vars
            .get(name)?
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty()))
    }

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
        Ok(match self.raw("sqlite_synchronous")?.as_deref() {
            Some(v) if v.eq_ignore_ascii_case("normal") => Synchronous::Normal,
            None => Synchronous::Normal,
            Some(v) if v.eq_ignore_ascii_case("server") => Synchronous::Server,
            // Anything else, including typos, is the safe choice.
            _ => Synchronous::Full,
        })
    }

    /// A whole-number variable within `min..=max`; undefined, malformed or out-of-range values
    /// fall back to `default` (documented in the README for each setting).
    pub fn int(&self, name: &str, default: i64, min: i64, max: i64) -> Result<i64, StoreError> {
        Ok(self
            .raw(name)?
            .and_then(|v| v.parse::<i64>().ok())
            .filter(|v| (min..=max).contains(v))
            .unwrap_or(default))
    }

    /// Access-token lifetime (`access_token_ttl_seconds`, 60 s – 24 h, default 900).
    pub fn access_token_ttl_seconds(&self) -> Result<i64, StoreError> {
        self.int("access_token_ttl_seconds", 900, 60, 86_400)
    }

    /// Login-session idle timeout (`idle_timeout_seconds`, 60 s – 7 days, default 1800).
    pub fn idle_timeout_seconds(&self) -> Result<i64, StoreError> {
        self.int("idle_timeout_seconds", 1800, 60, 604_800)
    }

    /// Concurrent login sessions per user (`max_login_sessions`, 1 – 100, default 5).
    pub fn max_login_sessions(&self) -> Result<i64, StoreError> {
        self.int("max_login_sessions", 5, 1, 100)
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

    /// A boolean variable: `true`/`false`/`1`/`0`/`yes`/`no`; anything else is `None`.
    pub fn flag(&self, name: &str) -> Result<Option<bool>, StoreError> {
        Ok(
            match self.raw(name)?.map(|v| v.to_ascii_lowercase()).as_deref() {
                Some("true" | "1" | "yes" | "on") => Some(true),
                Some("false" | "0" | "no" | "off") => Some(false),
                _ => None,
            },
        )
    }
}

#[cfg(all(test, feature = "native"))]
mod tests {
    use super::*;
    use crate::store::native::MapVariables;

    #[test]
    fn malformed_values_fail_closed() {
        let vars = MapVariables::default()
            .with("security_headers", "loose")
            .with("sqlite_synchronous", "OFF");
        let s = Settings::new(&vars);
        assert_eq!(s.security_mode().unwrap(), SecurityMode::Strict);
        assert_eq!(s.sqlite_synchronous().unwrap(), Synchronous::Full);
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
