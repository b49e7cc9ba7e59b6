//! Rate limiting that is exact across Spin instances (pipeline stage 6).
//!
//! Every Spin request is a fresh instance, so the seed's in-memory sliding window cannot work.
//! The state lives in SQLite and is changed by single atomic statements, never read-then-written:
//! the algorithm is GCRA (the generic cell rate algorithm, a sliding window without a log). Each
//! key holds one number, its theoretical arrival time `tat`; a limit of `max` per `window` has an
//! emission interval `T = window / max`; a request at `now` is admitted when
//! `max(tat, now) + T - now <= window`, and then `tat` becomes `max(tat, now) + T`. So a key may
//! spend its whole quota at once (a burst of `max`) and then gets one request per `T`: over any
//! span `d`, at most `max + d / T` requests pass, and an idle key is back to a full quota after
//! one window. That is one
//! `INSERT … ON CONFLICT DO UPDATE … WHERE … RETURNING`: SQLite serialises writers, so N
//! instances hammering one key admit exactly `max` per window. A rejected request changes nothing
//! (the `WHERE` fails), so it does not consume capacity. Requests under several limits at once
//! (login: per IP and per username, each per minute and per hour) are checked in one
//! `BEGIN IMMEDIATE` transaction, all or nothing.
//!
//! Keys are the verified principal from the precheck (`user:<id>`, `agent:<id>`), else the client
//! IP ([`crate::client_ip`]). Classes and their defaults:
//!
//! | class | limits (per key) | variables |
//! |---|---|---|
//! | general (every request) | 1000/min per principal or IP | `rate_limit_api_per_minute` |
//! | login | 10/min and 100/h per IP, and per username | `rate_limit_login_per_minute`, `rate_limit_login_per_hour` |
//! | second factor (MFA, ticket redemption) | 5/min per user or agent | `rate_limit_mfa_per_minute` |
//! | minting (refresh, API keys, tickets) | 10/min per user | `rate_limit_mint_per_minute` |
//! | agent (register, heartbeat) | 120/min per agent | `rate_limit_agent_per_minute` |
//! | webhook (inbound deliveries) | 300/min per source (route path) | `rate_limit_webhook_per_minute` |
//!
//! A store failure fails closed (503) for the auth classes; for the general class it follows
//! `rate_limit_fail_open`. A second backend on Redis ([`redis`]) can be selected with
//! `rate_limit_backend = "redis"`.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::Serialize;

use crate::auth::AuthState;
use crate::error::ApiError;
use crate::services::Services;
use crate::store::{Database, StoreError, Value};

pub mod redis;

/// The header that asks to skip rate limits; honoured only for a verified admin.
pub const BYPASS_HEADER: &str = "x-streamspace-bypass-ratelimit";

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;

/// What a route is limited as, besides the general per-principal limit every request has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RateClass {
    /// Only the general limit.
    #[default]
    General,
    /// Password login: per IP and per username, per minute and per hour.
    Login,
    /// Second-factor checks and ticket redemption: few attempts per principal.
    SecondFactor,
    /// Minting credentials (refresh, API keys, tickets).
    Mint,
    /// Agent registration and heartbeats.
    Agent,
    /// Inbound webhooks: per source (the route's path, e.g. `/api/v1/webhooks/github`).
    Webhook,
    /// No limit at all (health probes).
    Exempt,
}

impl RateClass {
    fn is_auth(self) -> bool {
        matches!(
            self,
            RateClass::Login | RateClass::SecondFactor | RateClass::Mint
        )
    }
}

/// One limit to check: `max` requests per `window_ms` for `key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// Short name shown to clients, e.g. `login-ip-minute`.
    pub name: &'static str,
    pub key: String,
    pub max: i64,
    pub window_ms: i64,
}

impl Limit {
    /// The emission interval in microseconds (at least 1).
    fn interval_us(&self) -> i64 {
        (self.window_ms.saturating_mul(1000) / self.max.max(1)).max(1)
    }

    fn window_us(&self) -> i64 {
        self.window_ms.saturating_mul(1000)
    }
}

/// The verdict on one limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub name: &'static str,
    pub allowed: bool,
    pub limit: i64,
    pub remaining: i64,
    /// Seconds until the full quota is back.
    pub reset_seconds: i64,
    /// Seconds until the next request may pass (0 when allowed).
    pub retry_after_seconds: i64,
}

impl Decision {
    /// From the key's new `tat` after an admitted request.
    fn admitted(limit: &Limit, now_us: i64, tat_us: i64) -> Decision {
        let t = limit.interval_us();
        Decision {
            name: limit.name,
            allowed: true,
            limit: limit.max,
            remaining: ((now_us + limit.window_us() - tat_us) / t).clamp(0, limit.max),
            reset_seconds: ceil_seconds(tat_us - now_us),
            retry_after_seconds: 0,
        }
    }

    /// From the key's current `tat` for a refused request.
    fn refused(limit: &Limit, now_us: i64, tat_us: i64) -> Decision {
        let t = limit.interval_us();
        Decision {
            name: limit.name,
            allowed: false,
            limit: limit.max,
            remaining: 0,
            reset_seconds: ceil_seconds(tat_us - now_us),
            retry_after_seconds: ceil_seconds(tat_us + t - limit.window_us() - now_us).max(1),
        }
    }
}

fn ceil_seconds(us: i64) -> i64 {
    (us.max(0) + 999_999) / 1_000_000
}

/// Where limiter state lives.
pub trait Backend {
    /// Checks all `limits` at `now_ms` atomically: either every one admits the request (and each
    /// is charged) or none is charged. Returns one decision per limit.
    fn check(&self, limits: &[Limit], now_ms: i64) -> Result<Vec<Decision>, StoreError>;
}

/// The SQLite backend (the default).
pub struct SqliteBackend<'a> {
    pub db: &'a Database,
}

/// The admission statement: ?1 key, ?2 now (µs), ?3 interval (µs), ?4 window (µs).
pub const ADMIT: &str = "INSERT INTO rate_limits (key, tat) VALUES (?1, ?2 + ?3)
    ON CONFLICT (key) DO UPDATE SET tat = max(rate_limits.tat, ?2) + ?3
     WHERE max(rate_limits.tat, ?2) + ?3 - ?2 <= ?4
    RETURNING tat";

impl SqliteBackend<'_> {
    /// One limit, one statement: `Ok(Ok(tat))` admitted, `Ok(Err(tat))` refused.
    fn admit(&self, limit: &Limit, now_us: i64) -> Result<Result<i64, i64>, StoreError> {
        let rows = self.db.execute(
            ADMIT,
            &[
                Value::from(limit.key.as_str()),
                Value::from(now_us),
                Value::from(limit.interval_us()),
                Value::from(limit.window_us()),
            ],
        )?;
        if let Some(row) = rows.first() {
            return Ok(Ok(row.i64("tat")?));
        }
        let rows = self.db.execute(
            "SELECT tat FROM rate_limits WHERE key = ?",
            &[Value::from(limit.key.as_str())],
        )?;
        let tat = rows
            .first()
            .map(|r| r.i64("tat"))
            .transpose()?
            .unwrap_or(now_us);
        Ok(Err(tat))
    }
}

impl Backend for SqliteBackend<'_> {
    fn check(&self, limits: &[Limit], now_ms: i64) -> Result<Vec<Decision>, StoreError> {
        let now_us = now_ms.saturating_mul(1000);
        let run = |backend: &Self| -> Result<(Vec<Decision>, bool), StoreError> {
            let mut decisions = Vec::with_capacity(limits.len());
            let mut all = true;
            for limit in limits {
                match backend.admit(limit, now_us)? {
                    Ok(tat) => decisions.push(Decision::admitted(limit, now_us, tat)),
                    Err(tat) => {
                        all = false;
                        decisions.push(Decision::refused(limit, now_us, tat));
                        break;
                    }
                }
            }
            Ok((decisions, all))
        };
        if limits.len() <= 1 {
            return Ok(run(self)?.0);
        }
        // Several limits: all or nothing, so a refusal by one charges none of the others.
        self.db.execute("BEGIN IMMEDIATE", &[])?;
        match run(self) {
            Ok((decisions, true)) => {
                self.db.execute("COMMIT", &[])?;
                Ok(decisions)
            }
            Ok((decisions, false)) => {
                self.db.execute("ROLLBACK", &[])?;
                Ok(decisions)
            }
            Err(err) => {
                let _ = self.db.execute("ROLLBACK", &[]);
                Err(err)
            }
        }
    }
}

/// The limits a request is under.
pub fn limits_for(
    services: &Services,
    class: RateClass,
    auth: &AuthState,
    client_ip: Option<IpAddr>,
    body: &[u8],
    source: Option<&str>,
) -> Result<Vec<Limit>, StoreError> {
    if class == RateClass::Exempt {
        return Ok(Vec::new());
    }
    let settings = services.settings();
    let who = auth
        .label()
        .or_else(|| client_ip.map(|ip| format!("ip:{ip}")))
        .unwrap_or_else(|| "ip:unknown".to_owned());
    let per_min = |name: &str, default: i64| settings.int(name, default, 1, 1_000_000);
    let mut limits = vec![Limit {
        name: "api",
        key: format!("api:{who}"),
        max: per_min("rate_limit_api_per_minute", 1000)?,
        window_ms: MINUTE_MS,
    }];
    match class {
        RateClass::General | RateClass::Exempt => {}
        RateClass::Login => {
            let ip = client_ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
            let per_minute = per_min("rate_limit_login_per_minute", 10)?;
            let per_hour = settings.int("rate_limit_login_per_hour", 100, 1, 1_000_000)?;
            limits.push(Limit {
                name: "login-ip-minute",
                key: format!("login:ip:{ip}:m"),
                max: per_minute,
                window_ms: MINUTE_MS,
            });
            limits.push(Limit {
                name: "login-ip-hour",
                key: format!("login:ip:{ip}:h"),
                max: per_hour,
                window_ms: HOUR_MS,
            });
            let login = login_fields(body);
            if login.mfa_code.is_some() {
                // A second factor is being tried: 5/min per username, wherever it comes from.
                let name = login.username.as_deref().unwrap_or("unknown");
                limits.push(Limit {
                    name: "second-factor",
                    key: format!("2fa:login:{name}"),
                    max: per_min("rate_limit_mfa_per_minute", 5)?,
                    window_ms: MINUTE_MS,
                });
            }
            if let Some(username) = login.username {
                limits.push(Limit {
                    name: "login-user-minute",
                    key: format!("login:user:{username}:m"),
                    max: per_minute,
                    window_ms: MINUTE_MS,
                });
                limits.push(Limit {
                    name: "login-user-hour",
                    key: format!("login:user:{username}:h"),
                    max: per_hour,
                    window_ms: HOUR_MS,
                });
            }
        }
        RateClass::SecondFactor => limits.push(Limit {
            name: "second-factor",
            key: format!("2fa:{who}"),
            max: per_min("rate_limit_mfa_per_minute", 5)?,
            window_ms: MINUTE_MS,
        }),
        RateClass::Mint => limits.push(Limit {
            name: "mint",
            key: format!("mint:{who}"),
            max: per_min("rate_limit_mint_per_minute", 10)?,
            window_ms: MINUTE_MS,
        }),
        RateClass::Agent => limits.push(Limit {
            name: "agent",
            key: format!("agent:{who}"),
            max: per_min("rate_limit_agent_per_minute", 120)?,
            window_ms: MINUTE_MS,
        }),
        RateClass::Webhook => limits.push(Limit {
            name: "webhook",
            key: format!("webhook:{}", source.unwrap_or("unknown")),
            max: per_min("rate_limit_webhook_per_minute", 300)?,
            window_ms: MINUTE_MS,
        }),
    }
    Ok(limits)
}

#[derive(serde::Deserialize, Default)]
struct LoginFields {
    username: Option<String>,
    mfa_code: Option<String>,
}

/// The (lowercased) `username` and whether an `mfa_code` is present in a login body: logins are
/// limited per username too, whichever IP they come from.
fn login_fields(body: &[u8]) -> LoginFields {
    let mut fields: LoginFields = serde_json::from_slice(body).unwrap_or_default();
    fields.username = fields
        .username
        .map(|u| u.trim().to_lowercase())
        .filter(|u| !u.is_empty() && u.len() <= 256);
    fields
}

/// The outcome of the rate-limit stage for one request.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// The tightest admitted limit, for the `RateLimit-*` headers.
    pub tightest: Option<Decision>,
}

impl Verdict {
    /// `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` on an answer.
    pub fn apply(&self, headers: &mut HeaderMap) {
        if let Some(d) = &self.tightest {
            set_headers(headers, d);
        }
    }
}

fn set_headers(headers: &mut HeaderMap, d: &Decision) {
    for (name, value) in [
        ("ratelimit-limit", d.limit),
        ("ratelimit-remaining", d.remaining),
        ("ratelimit-reset", d.reset_seconds),
    ] {
        headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
    }
}

/// Runs the stage: the bypass rule, then the limits. `Ok` carries the headers to add; `Err` is the
/// 428, 429 or 503 to answer.
pub fn enforce(
    services: &Services,
    class: RateClass,
    auth: &AuthState,
    headers: &HeaderMap,
    client_ip: Option<IpAddr>,
    body: &[u8],
    source: Option<&str>,
) -> Result<Verdict, ApiError> {
    if headers.contains_key(BYPASS_HEADER) {
        return match auth.principal() {
            Some(p) if p.is_admin() => Ok(Verdict::default()),
            _ => Err(ApiError::new(
                StatusCode::PRECONDITION_REQUIRED,
                "bypass_not_allowed",
                "only a verified admin may bypass rate limits",
            )),
        };
    }
    let fail = |err: StoreError| -> Result<Verdict, ApiError> {
        let fail_open = !class.is_auth()
            && services
                .settings()
                .flag("rate_limit_fail_open")
                .ok()
                .flatten()
                .unwrap_or(false);
        if fail_open {
            Ok(Verdict::default())
        } else {
            Err(err.into())
        }
    };
    let limits = match limits_for(services, class, auth, client_ip, body, source) {
        Ok(limits) if limits.is_empty() => return Ok(Verdict::default()),
        Ok(limits) => limits,
        Err(err) => return fail(err),
    };
    let decisions = match backend_check(services, &limits) {
        Ok(decisions) => decisions,
        Err(err) => return fail(err),
    };
    if let Some(refused) = decisions.iter().find(|d| !d.allowed) {
        let mut err = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "rate limit `{}` exceeded: {} requests; retry in {} s",
                refused.name, refused.limit, refused.retry_after_seconds
            ),
        )
        .with_header(
            http::header::RETRY_AFTER,
            HeaderValue::from(refused.retry_after_seconds),
        );
        let mut extra = HeaderMap::new();
        set_headers(&mut extra, refused);
        for (name, value) in &extra {
            err = err.with_header(name.clone(), value.clone());
        }
        return Err(err);
    }
    Ok(Verdict {
        tightest: decisions.into_iter().min_by_key(|d| d.remaining),
    })
}

fn backend_check(services: &Services, limits: &[Limit]) -> Result<Vec<Decision>, StoreError> {
    let now = services.now_ms();
    match services.settings().raw("rate_limit_backend")?.as_deref() {
        Some("redis") => {
            let url = services.settings().raw("redis_url")?.ok_or_else(|| {
                StoreError::new(
                    crate::store::StoreKind::KeyValue,
                    "rate_limit_backend is redis but redis_url is empty",
                )
            })?;
            redis::RedisBackend { url: &url }.check(limits, now)
        }
        _ => SqliteBackend { db: services.db()? }.check(limits, now),
    }
}

#[cfg(all(test, feature = "native"))]
mod tests {
    use super::*;
    use crate::services::testing::TestStores;

    fn limit(max: i64, window_ms: i64) -> Limit {
        Limit {
            name: "t",
            key: "k".to_owned(),
            max,
            window_ms,
        }
    }

    fn admits(db: &Database, l: &Limit, now_ms: i64) -> bool {
        SqliteBackend { db }
            .check(std::slice::from_ref(l), now_ms)
            .unwrap()[0]
            .allowed
    }

    #[test]
    fn exactly_max_per_window_then_refusal() {
        let stores = TestStores::new();
        let services = stores.services();
        let db = services.db().unwrap();
        let l = limit(10, 60_000);
        for i in 0..10 {
            assert!(admits(db, &l, 1_000), "request {i}");
        }
        let refused = SqliteBackend { db }
            .check(std::slice::from_ref(&l), 1_000)
            .unwrap();
        assert!(!refused[0].allowed);
        assert_eq!(refused[0].retry_after_seconds, 6);
        // Capacity comes back at the emission interval (6 s), one request at a time.
        assert!(!admits(db, &l, 6_999));
        assert!(admits(db, &l, 7_000));
        assert!(!admits(db, &l, 7_000));
        // A full window of idleness restores the whole quota, no more.
        let later = 7_000 + 60_000;
        for _ in 0..10 {
            assert!(admits(db, &l, later));
        }
        assert!(!admits(db, &l, later));
    }

    #[test]
    fn refused_requests_do_not_consume_capacity() {
        let stores = TestStores::new();
        let services = stores.services();
        let db = services.db().unwrap();
        let l = limit(2, 60_000);
        assert!(admits(db, &l, 0));
        assert!(admits(db, &l, 0));
        for _ in 0..50 {
            assert!(!admits(db, &l, 0));
        }
        // Had the refusals counted, this would still be refused.
        assert!(admits(db, &l, 30_000));
    }

    #[test]
    fn remaining_and_reset_are_reported() {
        let stores = TestStores::new();
        let services = stores.services();
        let db = services.db().unwrap();
        let l = limit(5, 60_000);
        let first = &SqliteBackend { db }
            .check(std::slice::from_ref(&l), 0)
            .unwrap()[0];
        assert_eq!((first.remaining, first.reset_seconds), (4, 12));
        let second = &SqliteBackend { db }
            .check(std::slice::from_ref(&l), 0)
            .unwrap()[0];
        assert_eq!((second.remaining, second.reset_seconds), (3, 24));
    }

    #[test]
    fn several_limits_are_all_or_nothing() {
        let stores = TestStores::new();
        let services = stores.services();
        let db = services.db().unwrap();
        let wide = Limit {
            name: "wide",
            key: "wide".into(),
            max: 100,
            window_ms: 60_000,
        };
        let narrow = Limit {
            name: "narrow",
            key: "narrow".into(),
            max: 1,
            window_ms: 60_000,
        };
        let both = [wide.clone(), narrow.clone()];
        assert!(SqliteBackend { db }
            .check(&both, 0)
            .unwrap()
            .iter()
            .all(|d| d.allowed));
        let second = SqliteBackend { db }.check(&both, 0).unwrap();
        assert!(!second.last().unwrap().allowed);
        // The refusal by `narrow` charged nothing to `wide`: 98 remain after the first request.
        let probe = &SqliteBackend { db }
            .check(std::slice::from_ref(&wide), 0)
            .unwrap()[0];
        assert_eq!(
            probe.remaining, 98,
            "two charges: the first request and this probe"
        );
    }

    #[test]
    fn odd_limits_admit_exactly_max() {
        let stores = TestStores::new();
        let services = stores.services();
        let db = services.db().unwrap();
        for (i, max) in [1, 3, 7, 13, 59, 61, 997].into_iter().enumerate() {
            let l = Limit {
                name: "t",
                key: format!("odd-{i}"),
                max,
                window_ms: 60_000,
            };
            let admitted = (0..max + 5).filter(|_| admits(db, &l, 5)).count() as i64;
            assert_eq!(admitted, max, "max {max}");
        }
    }

    /// A plain-Rust GCRA, the model the SQL statement must match.
    fn model(tat: &mut Option<i64>, now_us: i64, interval: i64, window: i64) -> bool {
        let base = tat.map_or(now_us, |t| t.max(now_us));
        if base + interval - now_us <= window {
            *tat = Some(base + interval);
            true
        } else {
            false
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

        /// Any sequence of request times: the SQL limiter decides exactly as the model, and over
        /// any span `d` no more than `max + d / T` are admitted (GCRA's bound: a burst of `max`,
        /// then one per interval).
        #[test]
        fn sql_matches_the_model(max in 1i64..20, gaps in proptest::collection::vec(0i64..5_000, 1..60)) {
            let stores = TestStores::new();
            let services = stores.services();
            let db = services.db().unwrap();
            let l = Limit { name: "p", key: "p".into(), max, window_ms: 10_000 };
            let mut tat = None;
            let mut now = 1_000_000i64;
            let mut admitted_at = Vec::new();
            for gap in gaps {
                now += gap;
                let sql = admits(db, &l, now);
                let expected = model(&mut tat, now * 1000, l.interval_us(), l.window_us());
                proptest::prop_assert_eq!(sql, expected);
                if sql {
                    admitted_at.push(now);
                }
            }
            for (i, start) in admitted_at.iter().enumerate() {
                for (j, end) in admitted_at.iter().enumerate().skip(i) {
                    let count = (j - i + 1) as i64;
                    let bound = max + (end - start) * 1000 / l.interval_us();
                    proptest::prop_assert!(count <= bound, "{} admitted in {} ms (bound {})", count, end - start, bound);
                }
            }
        }
    }

    #[test]
    fn webhooks_are_limited_per_source() {
        let stores = TestStores::new();
        stores.variables.set("rate_limit_webhook_per_minute", "2");
        let services = stores.services();
        let headers = HeaderMap::new();
        let send = |source: &str| {
            enforce(
                &services,
                RateClass::Webhook,
                &AuthState::Anonymous,
                &headers,
                None,
                b"",
                Some(source),
            )
        };
        assert!(send("/api/v1/webhooks/github").is_ok());
        assert!(send("/api/v1/webhooks/github").is_ok());
        assert_eq!(
            send("/api/v1/webhooks/github").unwrap_err().status,
            StatusCode::TOO_MANY_REQUESTS
        );
        assert!(
            send("/api/v1/webhooks/standard/stripe").is_ok(),
            "another source has its own budget"
        );
    }

    #[test]
    fn store_failures_fail_closed_for_auth_classes_and_follow_the_variable_otherwise() {
        let stores = TestStores::new();
        stores.sql.fail(true);
        let services = stores.services();
        let headers = HeaderMap::new();
        let ip = Some("192.0.2.1".parse().unwrap());
        let login = enforce(
            &services,
            RateClass::Login,
            &AuthState::Anonymous,
            &headers,
            ip,
            b"{}",
            None,
        );
        assert_eq!(login.unwrap_err().status, StatusCode::SERVICE_UNAVAILABLE);
        let general = enforce(
            &services,
            RateClass::General,
            &AuthState::Anonymous,
            &headers,
            ip,
            b"",
            None,
        );
        assert_eq!(general.unwrap_err().status, StatusCode::SERVICE_UNAVAILABLE);
        stores.variables.set("rate_limit_fail_open", "true");
        let services = stores.services();
        assert!(enforce(
            &services,
            RateClass::General,
            &AuthState::Anonymous,
            &headers,
            ip,
            b"",
            None,
        )
        .is_ok());
        let mint = enforce(
            &services,
            RateClass::Mint,
            &AuthState::Anonymous,
            &headers,
            ip,
            b"",
            None,
        );
        assert_eq!(mint.unwrap_err().status, StatusCode::SERVICE_UNAVAILABLE);
    }
}
