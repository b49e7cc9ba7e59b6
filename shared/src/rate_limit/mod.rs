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
//! IP ([`crate::client_ip`]); an IPv6 client is keyed by its network (`/64` by default,
//! `rate_limit_ipv6_prefix`), since one subscriber usually holds a whole /64 and could otherwise
//! rotate through 2^64 keys.
//!
//! A route declares its limits as data ([`RateClass`]: a list of [`LimitSpec`], each naming where
//! its key comes from ([`KeyFrom`]: principal, client IP, path, a JSON body field, the refresh
//! token's owner), the variable holding its maximum, its window, an optional condition and
//! fallback). The standard classes are constants of [`RateClass`]; a component declares another
//! without touching this module. Each maximum is read through [`crate::config`], so a malformed or
//! out-of-range value is a configuration error (503 `configuration_error`), never the default —
//! and never "fail open". The standard classes and their defaults:
//!
//! | class | limits (per key) | variables |
//! |---|---|---|
//! | general (every request) | 1000/min per principal or IP | `rate_limit_api_per_minute` |
//! | login | 10/min and 100/h per (username, IP); 30/min and 300/h per IP; 1000/h per username | `rate_limit_login_per_minute`, `rate_limit_login_per_hour`, `rate_limit_login_ip_per_minute`, `rate_limit_login_ip_per_hour`, `rate_limit_login_user_per_hour` |
//! | second factor (MFA, ticket redemption) | 5/min per user or agent (login with a code: per (username, IP)) | `rate_limit_mfa_per_minute` |
//! | minting (API keys, tickets) | 10/min per user | `rate_limit_mint_per_minute` |
//! | refresh | 10/min per owner of the refresh token; unknown tokens 10/min per IP | `rate_limit_mint_per_minute` |
//! | agent (register, heartbeat) | 120/min per agent | `rate_limit_agent_per_minute` |
//! | webhook (inbound deliveries) | 300/min per source (route path) | `rate_limit_webhook_per_minute` |
//!
//! Why login has three keys: a limit per username alone is a lockout anyone can trigger (ten
//! wrong passwords a minute for `root` keep the real admin out), and a limit per IP alone lets a
//! botnet guess one password at full speed. The tight limit is on the (username, IP) pair — one
//! source guessing one account; the per-IP limit bounds one source across usernames (credential
//! stuffing) and is looser so people behind one NAT can still log in; the per-username limit is
//! an hourly ceiling on distributed guessing, set well above what one source may spend on one
//! account, so only an attacker with many addresses can exhaust it (the README's Rate limiting
//! section says what that still allows).
//!
//! The bypass header ([`BYPASS_HEADER`]) is honoured only for a full-scope login session of the
//! platform admin, and never on the login, second-factor, minting and refresh classes: it answers
//! 428 there and for everyone else.
//!
//! A store failure fails closed (503) for the auth classes; for the general class it follows
//! `rate_limit_fail_open`. A second backend on Redis ([`redis`]) can be selected with
//! `rate_limit_backend = "redis"`.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;

use crate::auth::{cookies, AuthState, Credential, Scope};
use crate::config::ConfigError;
use crate::error::ApiError;
use crate::secrets::{kind_of, TokenHash, TokenKind};
use crate::services::Services;
use crate::store::{Database, StoreError, StoreKind, Value};

pub mod redis;

/// The header that asks to skip rate limits; honoured only for a full-scope login session of the
/// platform admin, on classes other than login, second factor, minting and refresh.
pub const BYPASS_HEADER: &str = "x-streamspace-bypass-ratelimit";

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;

/// Where a limit's key comes from. Routes declare their limits as data ([`LimitSpec`]); these are
/// the ways a request can name what is being limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFrom {
    /// The verified principal (`user:<id>`, `agent:<id>`), else `ip:<client ip>`.
    Principal,
    /// The client IP key ([`ip_key`]).
    ClientIp,
    /// The request path (an inbound webhook's source, e.g. `/api/v1/webhooks/github`).
    Path,
    /// A string field of the JSON body, trimmed and lowercased (1–256 bytes); the limit does not
    /// apply when the field is absent.
    BodyField(&'static str),
    /// `<client ip>|<body field>`; the IP key never contains `|`, so the pair is unambiguous
    /// whatever the field holds. The limit does not apply when the field is absent.
    ClientIpAndBodyField(&'static str),
    /// The user who owns the presented refresh token (body `refresh_token`, else the refresh
    /// cookie; one indexed lookup); absent for a malformed or unknown token.
    RefreshTokenOwner,
}

/// One limit a route declares: at most the value of `variable` requests per `window_ms` for the
/// key `prefix + <key> + suffix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSpec {
    /// Short name shown to clients, e.g. `login-ip-minute`.
    pub name: &'static str,
    pub key: KeyFrom,
    pub prefix: &'static str,
    pub suffix: &'static str,
    /// The variable holding the maximum (registered in [`crate::config::VARIABLES`]).
    pub variable: &'static str,
    pub window_ms: i64,
    /// Applies only when this JSON body field is present (a string), e.g. `mfa_code`.
    pub only_with_field: Option<&'static str>,
    /// Used instead when the key is absent (a refresh token without an owner: per client IP).
    pub fallback: Option<&'static LimitSpec>,
}

impl LimitSpec {
    /// A limit per minute with no condition or fallback.
    pub const fn per_minute(
        name: &'static str,
        key: KeyFrom,
        prefix: &'static str,
        variable: &'static str,
    ) -> Self {
        Self {
            name,
            key,
            prefix,
            suffix: "",
            variable,
            window_ms: MINUTE_MS,
            only_with_field: None,
            fallback: None,
        }
    }

    /// The same limit per hour.
    pub const fn hourly(mut self) -> Self {
        self.window_ms = HOUR_MS;
        self
    }

    pub const fn suffix(mut self, suffix: &'static str) -> Self {
        self.suffix = suffix;
        self
    }

    pub const fn only_with_field(mut self, field: &'static str) -> Self {
        self.only_with_field = Some(field);
        self
    }

    pub const fn or_else(mut self, fallback: &'static LimitSpec) -> Self {
        self.fallback = Some(fallback);
        self
    }
}

/// What a route is rate-limited as, declared as data on the route ([`crate::Route::rate`]):
/// the general per-principal limit every request has, plus the class's own [`LimitSpec`]s. A
/// component adds a class by declaring one (a `const RateClass { … }`); nothing in `shared`
/// changes. The standard classes are the associated constants below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateClass {
    pub name: &'static str,
    /// Limits besides the general one, in the order they are checked.
    pub limits: &'static [LimitSpec],
    /// Guards credentials: a store failure fails closed whatever `rate_limit_fail_open` says, and
    /// the bypass header is refused (428).
    pub guards_credentials: bool,
    /// No limit at all, not even the general one (health probes).
    pub exempt: bool,
}

impl Default for RateClass {
    fn default() -> Self {
        Self::General
    }
}

const LOGIN_LIMITS: &[LimitSpec] = &[
    // One source across usernames: credential stuffing; loose enough for a shared NAT.
    LimitSpec::per_minute(
        "login-ip-minute",
        KeyFrom::ClientIp,
        "login:ip:",
        "rate_limit_login_ip_per_minute",
    )
    .suffix(":m"),
    LimitSpec::per_minute(
        "login-ip-hour",
        KeyFrom::ClientIp,
        "login:ip:",
        "rate_limit_login_ip_per_hour",
    )
    .suffix(":h")
    .hourly(),
    // A second factor tried at login: per (username, IP).
    LimitSpec::per_minute(
        "second-factor",
        KeyFrom::ClientIpAndBodyField("username"),
        "2fa:login:",
        "rate_limit_mfa_per_minute",
    )
    .only_with_field("mfa_code"),
    // The tight limit: one source guessing one account.
    LimitSpec::per_minute(
        "login-pair-minute",
        KeyFrom::ClientIpAndBodyField("username"),
        "login:pair:",
        "rate_limit_login_per_minute",
    )
    .suffix(":m"),
    LimitSpec::per_minute(
        "login-pair-hour",
        KeyFrom::ClientIpAndBodyField("username"),
        "login:pair:",
        "rate_limit_login_per_hour",
    )
    .suffix(":h")
    .hourly(),
    // The ceiling on distributed guessing of one account, well above what one source may spend,
    // so a single attacker cannot exhaust it.
    LimitSpec::per_minute(
        "login-user-hour",
        KeyFrom::BodyField("username"),
        "login:user:",
        "rate_limit_login_user_per_hour",
    )
    .suffix(":h")
    .hourly(),
];

const REFRESH_BY_IP: LimitSpec = LimitSpec::per_minute(
    "refresh-ip",
    KeyFrom::ClientIp,
    "refresh:ip:",
    "rate_limit_mint_per_minute",
);

#[allow(non_upper_case_globals)]
impl RateClass {
    /// Only the general limit.
    pub const General: RateClass = RateClass {
        name: "general",
        limits: &[],
        guards_credentials: false,
        exempt: false,
    };
    /// Password login: per (username, IP), per IP and per username, per minute and per hour.
    pub const Login: RateClass = RateClass {
        name: "login",
        limits: LOGIN_LIMITS,
        guards_credentials: true,
        exempt: false,
    };
    /// Second-factor checks and ticket redemption: few attempts per principal.
    pub const SecondFactor: RateClass = RateClass {
        name: "second-factor",
        limits: &[LimitSpec::per_minute(
            "second-factor",
            KeyFrom::Principal,
            "2fa:",
            "rate_limit_mfa_per_minute",
        )],
        guards_credentials: true,
        exempt: false,
    };
    /// Minting credentials (API keys, tickets).
    pub const Mint: RateClass = RateClass {
        name: "mint",
        limits: &[LimitSpec::per_minute(
            "mint",
            KeyFrom::Principal,
            "mint:",
            "rate_limit_mint_per_minute",
        )],
        guards_credentials: true,
        exempt: false,
    };
    /// `POST /auth/refresh`: per owner of the presented refresh token (one indexed lookup), per
    /// IP for a token that is malformed or unknown.
    pub const Refresh: RateClass = RateClass {
        name: "refresh",
        limits: &[LimitSpec::per_minute(
            "refresh-user",
            KeyFrom::RefreshTokenOwner,
            "refresh:user:",
            "rate_limit_mint_per_minute",
        )
        .or_else(&REFRESH_BY_IP)],
        guards_credentials: true,
        exempt: false,
    };
    /// Agent registration and heartbeats.
    pub const Agent: RateClass = RateClass {
        name: "agent",
        limits: &[LimitSpec::per_minute(
            "agent",
            KeyFrom::Principal,
            "agent:",
            "rate_limit_agent_per_minute",
        )],
        guards_credentials: false,
        exempt: false,
    };
    /// Inbound webhooks: per source (the route's path, e.g. `/api/v1/webhooks/github`).
    pub const Webhook: RateClass = RateClass {
        name: "webhook",
        limits: &[LimitSpec::per_minute(
            "webhook",
            KeyFrom::Path,
            "webhook:",
            "rate_limit_webhook_per_minute",
        )],
        guards_credentials: false,
        exempt: false,
    };
    /// No limit at all (health probes).
    pub const Exempt: RateClass = RateClass {
        name: "exempt",
        limits: &[],
        guards_credentials: false,
        exempt: true,
    };
}

/// The general limit every request that is not exempt is under.
pub const GENERAL: LimitSpec = LimitSpec::per_minute(
    "api",
    KeyFrom::Principal,
    "api:",
    "rate_limit_api_per_minute",
);

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

/// The default IPv6 network a client is keyed by (`rate_limit_ipv6_prefix`).
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

/// `rate_limit_ipv6_prefix`: 1–128, default 64. A value that is set but malformed or out of range
/// is a configuration error (503 `configuration_error`, the variable named in the log), never
/// silently replaced: a typo must not quietly key every IPv6 client per address again.
pub fn ipv6_prefix(services: &Services) -> Result<u8, ApiError> {
    let prefix = services.settings().int("rate_limit_ipv6_prefix")?;
    Ok(u8::try_from(prefix).unwrap_or(DEFAULT_IPV6_PREFIX))
}

/// The rate-limit key of a client address: IPv4 (and IPv4-mapped IPv6) as the address, IPv6 as
/// its network of `v6_prefix` bits (`2001:db8:1:2::/64`).
pub fn ip_key(ip: IpAddr, v6_prefix: u8) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4.to_string();
            }
            let prefix = u32::from(v6_prefix.clamp(1, 128));
            let mask = u128::MAX << (128 - prefix);
            let network = std::net::Ipv6Addr::from(u128::from(v6) & mask);
            format!("{network}/{prefix}")
        }
    }
}

/// The limits a request is under. `client` is the client's [`ip_key`], if known.
pub fn limits_for(
    services: &Services,
    class: RateClass,
    auth: &AuthState,
    client: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
    source: Option<&str>,
) -> Result<Vec<Limit>, StoreError> {
    if class.exempt {
        return Ok(Vec::new());
    }
    let settings = services.settings();
    let request = KeySource {
        services,
        who: auth
            .label()
            .unwrap_or_else(|| format!("ip:{}", client.unwrap_or("unknown"))),
        ip: client.unwrap_or("unknown"),
        source,
        headers,
        body,
        json: std::cell::OnceCell::new(),
    };
    let mut limits = Vec::with_capacity(class.limits.len() + 1);
    for spec in std::iter::once(&GENERAL).chain(class.limits) {
        if let Some(field) = spec.only_with_field {
            if request.field(field).is_none() {
                continue;
            }
        }
        let mut spec = spec;
        let key = loop {
            match request.key(spec.key)? {
                Some(key) => break Some(key),
                None => match spec.fallback {
                    Some(next) => spec = next,
                    None => break None,
                },
            }
        };
        let Some(key) = key else { continue };
        limits.push(Limit {
            name: spec.name,
            key: format!("{}{key}{}", spec.prefix, spec.suffix),
            max: settings.int(spec.variable)?,
            window_ms: spec.window_ms,
        });
    }
    Ok(limits)
}

/// What a request offers to key limits by (the body is parsed at most once, and only when a
/// limit asks for a field).
struct KeySource<'a> {
    services: &'a Services,
    who: String,
    ip: &'a str,
    source: Option<&'a str>,
    headers: &'a HeaderMap,
    body: &'a [u8],
    json: std::cell::OnceCell<serde_json::Value>,
}

impl KeySource<'_> {
    /// A string field of the JSON body, trimmed and lowercased, 1–256 bytes.
    fn field(&self, name: &str) -> Option<String> {
        let json = self
            .json
            .get_or_init(|| serde_json::from_slice(self.body).unwrap_or_default());
        json.get(name)
            .and_then(serde_json::Value::as_str)
            .map(|v| v.trim().to_lowercase())
            .filter(|v| !v.is_empty() && v.len() <= 256)
    }

    fn key(&self, from: KeyFrom) -> Result<Option<String>, StoreError> {
        Ok(match from {
            KeyFrom::Principal => Some(self.who.clone()),
            KeyFrom::ClientIp => Some(self.ip.to_owned()),
            KeyFrom::Path => Some(self.source.unwrap_or("unknown").to_owned()),
            KeyFrom::BodyField(name) => self.field(name),
            KeyFrom::ClientIpAndBodyField(name) => {
                self.field(name).map(|v| format!("{}|{v}", self.ip))
            }
            KeyFrom::RefreshTokenOwner => refresh_owner(self.services, self.headers, self.body)?,
        })
    }
}

#[derive(serde::Deserialize, Default)]
struct RefreshFields {
    refresh_token: Option<String>,
}

/// The user who owns the refresh token of a `POST /auth/refresh` (body `refresh_token`, else the
/// refresh cookie, as the handler reads it): one primary-key lookup, spent and expired tokens
/// included (a replayed token still counts against its owner). `None` for a malformed or unknown
/// token, without a store call when it does not even have the refresh-token shape.
fn refresh_owner(
    services: &Services,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Option<String>, StoreError> {
    let fields: RefreshFields = serde_json::from_slice(body).unwrap_or_default();
    let token = fields
        .refresh_token
        .or_else(|| cookies::get(headers, cookies::REFRESH).map(str::to_owned));
    let Some(token) = token.filter(|t| kind_of(t) == Some(TokenKind::Refresh)) else {
        return Ok(None);
    };
    let rows = services.db()?.execute(
        "SELECT s.user_id FROM refresh_tokens r JOIN login_sessions s ON s.id = r.session_id
          WHERE r.token_hash = ?",
        &[Value::from(TokenHash::of(&token).as_str())],
    )?;
    rows.first()
        .map(|row| row.str("user_id").map(str::to_owned))
        .transpose()
}

/// Whether the bypass header is honoured: only a full-scope login session (not a personal access
/// token, not an external token) of the platform admin, and never on a class that guards
/// credentials.
fn bypass_allowed(class: RateClass, auth: &AuthState) -> bool {
    !class.guards_credentials
        && auth.principal().is_some_and(|p| {
            p.platform_admin
                && p.scope == Scope::Full
                && matches!(p.credential, Credential::Session { .. })
        })
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
        return if bypass_allowed(class, auth) {
            Ok(Verdict::default())
        } else {
            Err(ApiError::registered(
                "bypass_not_allowed",
                "only the platform admin's login session may bypass rate limits, and never on \
                 login, second-factor or credential-minting routes",
            ))
        };
    }
    // A bad `rate_limit_ipv6_prefix` is a configuration error, not a store failure: 503 even
    // when `rate_limit_fail_open` is set.
    let client = match client_ip {
        Some(ip) => Some(ip_key(ip, ipv6_prefix(services)?)),
        None => None,
    };
    let fail = |err: StoreError| -> Result<Verdict, ApiError> {
        // A configuration error is never "the store failed": it fails closed everywhere.
        let fail_open = !class.guards_credentials
            && err.store != StoreKind::Config
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
    let limits = match limits_for(
        services,
        class,
        auth,
        client.as_deref(),
        headers,
        body,
        source,
    ) {
        Ok(limits) if limits.is_empty() => return Ok(Verdict::default()),
        Ok(limits) => limits,
        Err(err) => return fail(err),
    };
    let decisions = match backend_check(services, &limits) {
        Ok(decisions) => decisions,
        Err(err) => return fail(err),
    };
    if let Some(refused) = decisions.iter().find(|d| !d.allowed) {
        let mut err = ApiError::registered(
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
    let settings = services.settings();
    match settings.raw("rate_limit_backend")?.as_deref() {
        Some(backend) if backend.eq_ignore_ascii_case("redis") => {
            let url = settings.raw("redis_url")?.ok_or_else(|| ConfigError {
                variable: "redis_url",
                reason: "must be set when rate_limit_backend is redis".to_owned(),
            })?;
            let conn = services.redis.open(&url)?;
            redis::RedisBackend {
                conn: conn.as_ref(),
            }
            .check(limits, now)
        }
        _ => SqliteBackend { db: services.db()? }.check(limits, now),
    }
}

#[cfg(all(test, feature = "native"))]
mod tests {
    use super::*;
    use crate::testing::TestStores;
    use http::StatusCode;

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

    /// A class is data on the route: a component declares its own limits (here: per search term
    /// and per client) without any change to `shared`.
    #[test]
    fn a_class_declared_by_a_route_needs_no_change_in_shared() {
        const SEARCH: RateClass = RateClass {
            name: "search",
            limits: &[
                LimitSpec::per_minute(
                    "search-term",
                    KeyFrom::BodyField("q"),
                    "search:q:",
                    "rate_limit_mint_per_minute",
                ),
                LimitSpec::per_minute(
                    "search-ip",
                    KeyFrom::ClientIp,
                    "search:ip:",
                    "rate_limit_agent_per_minute",
                ),
            ],
            guards_credentials: true,
            exempt: false,
        };
        let stores = TestStores::new();
        stores.variables.set("rate_limit_mint_per_minute", "2");
        stores.variables.set("rate_limit_agent_per_minute", "3");
        let services = stores.services();
        let search = |ip: &str, body: &str| {
            enforce(
                &services,
                SEARCH,
                &AuthState::Anonymous,
                &HeaderMap::new(),
                Some(ip.parse().unwrap()),
                body.as_bytes(),
                None,
            )
        };
        assert!(search("192.0.2.1", r#"{"q":"Rust"}"#).is_ok());
        assert!(search("192.0.2.2", r#"{"q":" rust "}"#).is_ok());
        assert!(refused_by(search("192.0.2.3", r#"{"q":"RUST"}"#)).contains("search-term"));
        // No field, no per-term limit; the per-IP one (3, one spent above) still applies.
        assert!(search("192.0.2.1", "{}").is_ok());
        assert!(search("192.0.2.1", "{}").is_ok());
        assert!(refused_by(search("192.0.2.1", "{}")).contains("search-ip"));
        // Guarding credentials: the bypass header is refused even for the platform admin.
        let root = principal(true, Scope::Full, session());
        assert_eq!(
            bypass(&services, SEARCH, &root).unwrap_err().code,
            "bypass_not_allowed"
        );
    }

    #[test]
    fn out_of_range_variable_is_reported_not_replaced() {
        for (name, bad) in [
            ("rate_limit_api_per_minute", "2000000"),
            ("rate_limit_login_per_minute", "0"),
            ("rate_limit_login_ip_per_hour", "ten"),
        ] {
            let stores = TestStores::new();
            stores.variables.set(name, bad);
            // Failing open must not turn a misconfiguration into "no limit".
            stores.variables.set("rate_limit_fail_open", "true");
            let services = stores.services();
            let err = enforce(
                &services,
                RateClass::Login,
                &AuthState::Anonymous,
                &HeaderMap::new(),
                Some("192.0.2.1".parse().unwrap()),
                br#"{"username":"root"}"#,
                None,
            )
            .unwrap_err();
            assert_eq!(
                (err.status, err.code),
                (StatusCode::SERVICE_UNAVAILABLE, "configuration_error"),
                "{name}={bad}"
            );
            assert!(err.cause.as_deref().unwrap().starts_with(name), "{name}");
        }
        let stores = TestStores::new();
        stores.variables.set("rate_limit_backend", "redis");
        let err = enforce(
            &stores.services(),
            RateClass::General,
            &AuthState::Anonymous,
            &HeaderMap::new(),
            None,
            b"",
            None,
        )
        .unwrap_err();
        assert_eq!(err.code, "configuration_error", "redis without redis_url");
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

    fn principal(platform_admin: bool, scope: Scope, credential: Credential) -> AuthState {
        AuthState::Verified(crate::auth::Principal {
            user_id: "u1".into(),
            org_id: "o1".into(),
            username: "root".into(),
            role: crate::auth::Role::Admin,
            platform_admin,
            scope,
            credential,
        })
    }

    fn session() -> Credential {
        Credential::Session {
            session_id: "s1".into(),
            cookie: false,
        }
    }

    fn bypass(
        services: &Services,
        class: RateClass,
        auth: &AuthState,
    ) -> Result<Verdict, ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(BYPASS_HEADER, HeaderValue::from_static("1"));
        enforce(
            services,
            class,
            auth,
            &headers,
            Some("192.0.2.1".parse().unwrap()),
            b"{}",
            None,
        )
    }

    #[test]
    fn bypass_header_refused_for_read_pat() {
        let stores = TestStores::new();
        let services = stores.services();
        let refused = [
            // A read-only (or even full) PAT of the platform admin.
            principal(true, Scope::Read, Credential::ApiKey { key_id: "k".into() }),
            principal(true, Scope::Full, Credential::ApiKey { key_id: "k".into() }),
            // An external token of the platform admin.
            principal(true, Scope::Full, Credential::External),
            // An org admin's login session.
            principal(false, Scope::Full, session()),
            AuthState::Anonymous,
        ];
        for auth in &refused {
            let err = bypass(&services, RateClass::General, auth).unwrap_err();
            assert_eq!(err.status, StatusCode::PRECONDITION_REQUIRED, "{auth:?}");
            assert_eq!(err.code, "bypass_not_allowed");
        }
        let root = principal(true, Scope::Full, session());
        assert!(bypass(&services, RateClass::General, &root).is_ok());
        assert!(bypass(&services, RateClass::Agent, &root).is_ok());
    }

    #[test]
    fn bypass_header_never_skips_login_limits() {
        let stores = TestStores::new();
        let services = stores.services();
        let root = principal(true, Scope::Full, session());
        for class in [
            RateClass::Login,
            RateClass::SecondFactor,
            RateClass::Mint,
            RateClass::Refresh,
        ] {
            let err = bypass(&services, class, &root).unwrap_err();
            assert_eq!(err.status, StatusCode::PRECONDITION_REQUIRED, "{class:?}");
        }
    }

    #[test]
    fn ipv6_clients_are_keyed_per_64_by_default() {
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        assert_eq!(ip_key(ip("2001:db8:1:2:aaaa::1"), 64), "2001:db8:1:2::/64");
        assert_eq!(ip_key(ip("2001:db8:1:2:ffff::9"), 64), "2001:db8:1:2::/64");
        assert_eq!(ip_key(ip("2001:db8:1:3::1"), 64), "2001:db8:1:3::/64");
        assert_eq!(ip_key(ip("2001:db8:1:2::1"), 128), "2001:db8:1:2::1/128");
        assert_eq!(ip_key(ip("2001:db8:1:2::1"), 48), "2001:db8:1::/48");
        assert_eq!(ip_key(ip("2001:db8::1"), 1), "::/1");
        assert_eq!(ip_key(ip("::ffff:192.0.2.7"), 64), "192.0.2.7");
        assert_eq!(ip_key(ip("192.0.2.7"), 64), "192.0.2.7");

        let stores = TestStores::new();
        stores.variables.set("rate_limit_api_per_minute", "2");
        let services = stores.services();
        let headers = HeaderMap::new();
        let send = |addr: &str| {
            enforce(
                &services,
                RateClass::General,
                &AuthState::Anonymous,
                &headers,
                Some(ip(addr)),
                b"",
                None,
            )
        };
        // Rotating through addresses of one /64 buys nothing.
        assert!(send("2001:db8:1:2::1").is_ok());
        assert!(send("2001:db8:1:2::2").is_ok());
        assert_eq!(
            send("2001:db8:1:2::3").unwrap_err().status,
            StatusCode::TOO_MANY_REQUESTS
        );
        assert!(
            send("2001:db8:1:3::1").is_ok(),
            "another /64, another budget"
        );
    }

    #[test]
    fn a_bad_ipv6_prefix_is_a_configuration_error_not_a_fallback() {
        for bad in ["0", "129", "64x", "-1", "1000"] {
            let stores = TestStores::new();
            stores.variables.set("rate_limit_ipv6_prefix", bad);
            // Even failing open must not let a misconfiguration through unlimited.
            stores.variables.set("rate_limit_fail_open", "true");
            let services = stores.services();
            let err = enforce(
                &services,
                RateClass::General,
                &AuthState::Anonymous,
                &HeaderMap::new(),
                Some("2001:db8::1".parse().unwrap()),
                b"",
                None,
            )
            .unwrap_err();
            assert_eq!(err.status, StatusCode::SERVICE_UNAVAILABLE, "{bad}");
            assert!(
                err.cause
                    .as_deref()
                    .unwrap()
                    .contains("rate_limit_ipv6_prefix"),
                "{bad}: the cause names the variable for the log"
            );
        }
        let stores = TestStores::new();
        stores.variables.set("rate_limit_ipv6_prefix", "128");
        stores.variables.set("rate_limit_api_per_minute", "1");
        let services = stores.services();
        let send = |addr: &str| {
            enforce(
                &services,
                RateClass::General,
                &AuthState::Anonymous,
                &HeaderMap::new(),
                Some(addr.parse().unwrap()),
                b"",
                None,
            )
        };
        assert!(send("2001:db8::1").is_ok());
        assert!(
            send("2001:db8::2").is_ok(),
            "/128: every address its own key"
        );
    }

    fn login(services: &Services, ip: &str, body: &str) -> Result<Verdict, ApiError> {
        enforce(
            services,
            RateClass::Login,
            &AuthState::Anonymous,
            &HeaderMap::new(),
            Some(ip.parse().unwrap()),
            body.as_bytes(),
            None,
        )
    }

    fn refused_by(result: Result<Verdict, ApiError>) -> String {
        let err = result.unwrap_err();
        assert_eq!(err.status, StatusCode::TOO_MANY_REQUESTS);
        err.message
    }

    #[test]
    fn failed_logins_from_elsewhere_do_not_lock_out_the_user() {
        let stores = TestStores::new();
        stores.variables.set("rate_limit_login_per_minute", "3");
        let services = stores.services();
        let root = r#"{"username":"Root","password":"guess"}"#;
        for _ in 0..3 {
            assert!(login(&services, "203.0.113.66", root).is_ok());
        }
        assert!(refused_by(login(&services, "203.0.113.66", root)).contains("login-pair-minute"));
        // The real admin, from its own address, is not affected.
        assert!(login(
            &services,
            "198.51.100.1",
            r#"{"username":"root","password":"x"}"#
        )
        .is_ok());
        // The attacker's address may still log in as someone else (its per-IP limit is looser).
        assert!(login(
            &services,
            "203.0.113.66",
            r#"{"username":"alice","password":"x"}"#
        )
        .is_ok());
    }

    #[test]
    fn distributed_guessing_of_one_user_hits_the_hourly_ceiling() {
        let stores = TestStores::new();
        stores.variables.set("rate_limit_login_user_per_hour", "4");
        let services = stores.services();
        let body = r#"{"username":"root","password":"guess"}"#;
        for i in 0..4 {
            assert!(login(&services, &format!("198.51.100.{i}"), body).is_ok());
        }
        assert!(refused_by(login(&services, "198.51.100.200", body)).contains("login-user-hour"));
    }

    #[test]
    fn one_address_is_limited_across_usernames() {
        let stores = TestStores::new();
        stores.variables.set("rate_limit_login_ip_per_minute", "3");
        let services = stores.services();
        for i in 0..3 {
            let body = format!(r#"{{"username":"user{i}","password":"x"}}"#);
            assert!(login(&services, "203.0.113.9", &body).is_ok());
        }
        let body = r#"{"username":"user9","password":"x"}"#;
        assert!(refused_by(login(&services, "203.0.113.9", body)).contains("login-ip-minute"));
        // A body without a username is still limited per IP.
        assert!(refused_by(login(&services, "203.0.113.9", "not json")).contains("login-ip-minute"));
    }

    #[test]
    fn mfa_codes_at_login_are_limited_per_username_and_address() {
        let stores = TestStores::new();
        let services = stores.services();
        let body = r#"{"username":"root","password":"x","mfa_code":"123456"}"#;
        for _ in 0..5 {
            assert!(login(&services, "203.0.113.66", body).is_ok());
        }
        assert!(refused_by(login(&services, "203.0.113.66", body)).contains("second-factor"));
        assert!(login(&services, "198.51.100.1", body).is_ok());
    }

    #[test]
    fn refresh_is_limited_per_token_owner_and_garbage_per_ip() {
        let stores = TestStores::new();
        stores.variables.set("rate_limit_mint_per_minute", "2");
        let services = stores.services();
        let db = services.db().unwrap();
        let (secret, _) = crate::secrets::new_token(&*services.random, TokenKind::Refresh).unwrap();
        let token = secret.expose().to_owned();
        db.execute(
            "INSERT INTO login_sessions (id, user_id, org_id, created_at, last_seen_at, expires_at)
             VALUES ('s1', 'u1', 'o1', 0, 0, 9999999999999)",
            &[],
        )
        .unwrap();
        db.execute(
            "INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES (?, 's1', 9999999999999)",
            &[Value::from(TokenHash::of(&token).as_str())],
        )
        .unwrap();
        let refresh = |ip: &str, body: String| {
            enforce(
                &services,
                RateClass::Refresh,
                &AuthState::Anonymous,
                &HeaderMap::new(),
                Some(ip.parse().unwrap()),
                body.as_bytes(),
                None,
            )
        };
        let body = serde_json::json!({ "refresh_token": token }).to_string();
        assert!(refresh("198.51.100.1", body.clone()).is_ok());
        assert!(refresh("198.51.100.2", body.clone()).is_ok());
        // A third address buys nothing: the limit is the owner's.
        assert!(refused_by(refresh("198.51.100.3", body)).contains("refresh-user"));
        // Garbage has no owner: limited per IP, and never reaches the store.
        let garbage = r#"{"refresh_token":"ssr_nope"}"#.to_owned();
        assert!(refresh("203.0.113.5", garbage.clone()).is_ok());
        assert!(refresh("203.0.113.5", garbage.clone()).is_ok());
        assert!(refused_by(refresh("203.0.113.5", garbage.clone())).contains("refresh-ip"));
        assert!(refresh("203.0.113.6", garbage).is_ok());
    }
}
