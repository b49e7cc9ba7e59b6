//! The deployment's license: which tier it runs on, and the enforcement helper every component
//! calls before it creates a user, a session or a node (seed 000 license enforcement).
//!
//! # Tiers
//!
//! | tier | users | sessions | nodes |
//! |---|---|---|---|
//! | `community` (no license) | 10 | 20 | 3 |
//! | `pro` | 100 | 200 | 10 |
//! | `enterprise` | unlimited | unlimited | unlimited |
//!
//! # License key format
//!
//! `<payload>.<signature>`, both parts base64url without padding (RFC 4648 §5):
//! - `payload` is the UTF-8 JSON document
//!   `{"issuer": str, "licensee": str, "tier": "community"|"pro"|"enterprise",
//!     "limits": {"users": n|null, "sessions": n|null, "nodes": n|null},
//!     "issued_at": unix_seconds, "expires_at": unix_seconds}`.
//!   `limits` and each of its fields are optional: a missing field takes the tier's limit, `null`
//!   means unlimited. Unknown fields are refused (a typo must not silently fall back to a
//!   default).
//! - `signature` is the 64-byte Ed25519 signature (RFC 8032, pure Ed25519) of the ASCII bytes of
//!   the `payload` part exactly as it appears in the key (the base64url text, not the JSON).
//!
//! The verifying key is the `license_public_key` variable: the 32-byte Ed25519 public key in
//! standard base64 (44 characters with padding). Keys are minted offline with the matching
//! private key (the README shows an `openssl` recipe).
//!
//! # Rules
//!
//! - Every read verifies the stored key again against the configured public key, so rotating the
//!   public key invalidates old licenses; an unverifiable, invalid or expired stored license means
//!   community limits. Nothing here ever blocks a login or a read: enforcement only refuses
//!   creating one more user, session or node beyond the limit (403 `license_limit_exceeded`).
//! - Usage at 80, 90 and 95 % of a limit is reported as a warning: in `GET /admin/license` and,
//!   after a creation, in the `X-License-Warning` response header ([`Capacity::annotate`]).
//! - No cache: a read is one single-row `SELECT` plus one signature check (~70 µs natively, ~0.1 ms
//!   measured inside a component on the test host), so a freshly activated license applies on
//!   the very next request of every component. A key-value cache would save about that much and
//!   add a staleness window after activation or key rotation.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_compact::{PublicKey, Signature};
use http::{HeaderName, HeaderValue};
use serde::Serialize;

use crate::error::{ApiError, ApiResult};
use crate::http::Response;
use crate::services::Services;
use crate::store::{Database, StoreError, Value};

/// The variable holding the base64 Ed25519 public key licenses are verified with.
pub const PUBLIC_KEY_VARIABLE: &str = "license_public_key";
/// The response header carrying a capacity warning, e.g. `users 9/10 (90%)`.
pub const WARNING_HEADER: HeaderName = HeaderName::from_static("x-license-warning");
/// Longer keys are refused before decoding.
const MAX_KEY_LEN: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Community,
    Pro,
    Enterprise,
}

impl Tier {
    pub fn parse(name: &str) -> Option<Tier> {
        match name {
            "community" => Some(Tier::Community),
            "pro" => Some(Tier::Pro),
            "enterprise" => Some(Tier::Enterprise),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Community => "community",
            Tier::Pro => "pro",
            Tier::Enterprise => "enterprise",
        }
    }

    /// The tier's default limits.
    pub fn limits(self) -> Limits {
        let (users, sessions, nodes) = match self {
            Tier::Community => (Some(10), Some(20), Some(3)),
            Tier::Pro => (Some(100), Some(200), Some(10)),
            Tier::Enterprise => (None, None, None),
        };
        Limits {
            users,
            sessions,
            nodes,
        }
    }
}

/// What a license limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Resource {
    /// Active users, platform-wide (a license is per deployment).
    Users,
    /// Sessions, counted by the sessions component.
    Sessions,
    /// Agents (streaming nodes) that have registered and are not revoked.
    Nodes,
}

impl Resource {
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Users => "users",
            Resource::Sessions => "sessions",
            Resource::Nodes => "nodes",
        }
    }
}

/// Limits per resource; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    pub users: Option<u64>,
    pub sessions: Option<u64>,
    pub nodes: Option<u64>,
}

impl Limits {
    pub fn of(&self, resource: Resource) -> Option<u64> {
        match resource {
            Resource::Users => self.users,
            Resource::Sessions => self.sessions,
            Resource::Nodes => self.nodes,
        }
    }
}

/// `limits` in a license document: a missing field is `None` (the tier's), `null` is
/// `Some(None)` (unlimited).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitOverrides {
    pub users: Option<Option<u64>>,
    pub sessions: Option<Option<u64>>,
    pub nodes: Option<Option<u64>>,
}

/// The signed payload of a license key (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub issuer: String,
    pub licensee: String,
    pub tier: Tier,
    pub limits: LimitOverrides,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
}

/// Only these keys, so that a typo is refused rather than silently ignored.
fn only_keys(object: &serde_json::Map<String, serde_json::Value>, keys: &[&str]) -> Option<()> {
    object
        .keys()
        .all(|k| keys.contains(&k.as_str()))
        .then_some(())
}

impl Document {
    /// Parses the payload JSON; `None` unless it is exactly the documented shape. (Read through
    /// `serde_json::Value`, which the component links anyway: a derived `Deserialize` would add
    /// several KB to the wasm for one document.)
    pub fn from_json(json: &[u8]) -> Option<Document> {
        let value: serde_json::Value = serde_json::from_slice(json).ok()?;
        let o = value.as_object()?;
        only_keys(
            o,
            &[
                "issuer",
                "licensee",
                "tier",
                "limits",
                "issued_at",
                "expires_at",
            ],
        )?;
        let text = |k: &str| o.get(k)?.as_str().map(str::to_owned);
        let limits = match o.get("limits") {
            None => LimitOverrides::default(),
            Some(l) => {
                let l = l.as_object()?;
                only_keys(l, &["users", "sessions", "nodes"])?;
                // Missing: the tier's; `null`: unlimited; otherwise a whole number.
                let limit = |k: &str| match l.get(k) {
                    None => Some(None),
                    Some(serde_json::Value::Null) => Some(Some(None)),
                    Some(n) => Some(Some(Some(n.as_u64()?))),
                };
                LimitOverrides {
                    users: limit("users")?,
                    sessions: limit("sessions")?,
                    nodes: limit("nodes")?,
                }
            }
        };
        Some(Document {
            issuer: text("issuer")?,
            licensee: text("licensee")?,
            tier: Tier::parse(o.get("tier")?.as_str()?)?,
            limits,
            issued_at: o.get("issued_at")?.as_i64()?,
            expires_at: o.get("expires_at")?.as_i64()?,
        })
    }

    /// The tier's limits with the document's overrides applied.
    pub fn limits(&self) -> Limits {
        let base = self.tier.limits();
        let o = self.limits;
        Limits {
            users: o.users.unwrap_or(base.users),
            sessions: o.sessions.unwrap_or(base.sessions),
            nodes: o.nodes.unwrap_or(base.nodes),
        }
    }

    pub fn expired(&self, now_ms: i64) -> bool {
        now_ms >= self.expires_at.saturating_mul(1000)
    }
}

/// Checks a key's signature with `public_key` and decodes its document. The error is a message
/// safe to show to the client.
pub fn verify(key: &str, public_key: &PublicKey) -> Result<Document, &'static str> {
    const SHAPE: &str = "a license key is `<payload>.<signature>` in base64url";
    let key = key.trim();
    if key.len() > MAX_KEY_LEN {
        return Err("the license key is too long");
    }
    let (payload, signature) = key.split_once('.').ok_or(SHAPE)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .ok()
        .and_then(|s| <[u8; 64]>::try_from(s).ok())
        .ok_or(SHAPE)?;
    public_key
        .verify(payload.as_bytes(), &Signature::new(signature))
        .map_err(|_| "the license signature does not match the configured public key")?;
    let json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| SHAPE)?;
    let document =
        Document::from_json(&json).ok_or("the license payload is not a valid license document")?;
    if document.expires_at < document.issued_at {
        return Err("the license expires before it was issued");
    }
    Ok(document)
}

/// The configured verifying key.
pub enum Verifier {
    /// `license_public_key` is empty: only the community tier is possible.
    Unconfigured,
    /// `license_public_key` is not 32 bytes in base64.
    Misconfigured,
    Key(PublicKey),
}

impl Verifier {
    pub fn parse(value: Option<&str>) -> Verifier {
        let Some(value) = value else {
            return Verifier::Unconfigured;
        };
        STANDARD
            .decode(value)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .map(PublicKey::new)
            .map_or(Verifier::Misconfigured, Verifier::Key)
    }

    pub fn configured(services: &Services) -> Result<Verifier, StoreError> {
        Ok(Self::parse(
            services.settings().raw(PUBLIC_KEY_VARIABLE)?.as_deref(),
        ))
    }
}

/// What became of the stored license.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// No license was activated.
    None,
    /// The stored license verifies and has not expired: its tier applies.
    Active,
    /// The stored license verifies but has expired: community limits apply.
    Expired,
    /// The stored license does not verify against the configured key (it was rotated).
    Invalid,
    /// A license is stored but no valid public key is configured to verify it.
    Unverifiable,
}

/// The license in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct License {
    /// The tier whose limits apply (community unless `status` is `Active`).
    pub tier: Tier,
    pub limits: Limits,
    pub status: Status,
    /// The stored document when its signature verifies (active or expired).
    pub document: Option<Document>,
    /// Milliseconds since the epoch, when a license is stored.
    pub activated_at: Option<i64>,
    /// The user id that activated the stored license.
    pub activated_by: Option<String>,
}

impl License {
    /// The community tier, for `status`.
    pub fn community(status: Status) -> License {
        License {
            tier: Tier::Community,
            limits: Tier::Community.limits(),
            status,
            document: None,
            activated_at: None,
            activated_by: None,
        }
    }

    /// Evaluates a stored key.
    pub fn from_key(key: &str, verifier: &Verifier, now_ms: i64) -> License {
        let Verifier::Key(public_key) = verifier else {
            return License::community(Status::Unverifiable);
        };
        match verify(key, public_key) {
            Err(_) => License::community(Status::Invalid),
            Ok(document) if document.expired(now_ms) => License {
                document: Some(document),
                ..License::community(Status::Expired)
            },
            Ok(document) => License {
                tier: document.tier,
                limits: document.limits(),
                status: Status::Active,
                document: Some(document),
                activated_at: None,
                activated_by: None,
            },
        }
    }

    /// `license` when a signed license is in force, `default` otherwise.
    pub fn source(&self) -> &'static str {
        if self.status == Status::Active {
            "license"
        } else {
            "default"
        }
    }
}

/// The license in force now: the stored key verified again, or community.
pub fn current(services: &Services) -> Result<License, StoreError> {
    let rows = services.db()?.execute(
        "SELECT license_key, activated_at, activated_by FROM licenses WHERE id = 1",
        &[],
    )?;
    let Some(row) = rows.first() else {
        return Ok(License::community(Status::None));
    };
    let verifier = Verifier::configured(services)?;
    Ok(License {
        activated_at: Some(row.i64("activated_at")?),
        activated_by: Some(row.str("activated_by")?.to_owned()),
        ..License::from_key(row.str("license_key")?, &verifier, services.now_ms())
    })
}

/// Verifies `key` and stores it as the deployment's license (replacing any other).
/// 409 `license_verification_unavailable` without a valid `license_public_key`, 400
/// `invalid_license` for a malformed key or a bad signature, 400 `license_expired`.
pub fn activate(services: &Services, key: &str, user_id: &str) -> ApiResult<License> {
    let public_key = match Verifier::configured(services)? {
        Verifier::Key(k) => k,
        Verifier::Unconfigured => {
            return Err(ApiError::conflict(
                "license_verification_unavailable",
                "no license_public_key is configured, so licenses cannot be verified; \
                 the community tier applies",
            ))
        }
        Verifier::Misconfigured => {
            return Err(ApiError::conflict(
                "license_verification_unavailable",
                "license_public_key is not a base64 Ed25519 public key, so licenses cannot \
                 be verified; the community tier applies",
            ))
        }
    };
    let document =
        verify(key, &public_key).map_err(|msg| ApiError::bad_request("invalid_license", msg))?;
    let now = services.now_ms();
    if document.expired(now) {
        return Err(ApiError::bad_request(
            "license_expired",
            "the license has expired",
        ));
    }
    services.db()?.execute(
        "INSERT INTO licenses (id, license_key, activated_at, activated_by) VALUES (1, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET license_key = excluded.license_key,
             activated_at = excluded.activated_at, activated_by = excluded.activated_by",
        &[
            Value::from(key.trim()),
            Value::from(now),
            Value::from(user_id),
        ],
    )?;
    Ok(License {
        activated_at: Some(now),
        activated_by: Some(user_id.to_owned()),
        ..License::from_key(key, &Verifier::Key(public_key), now)
    })
}

/// How many of `resource` exist now (sessions: those in a state that holds a seat).
pub fn count(db: &Database, resource: Resource) -> Result<Option<u64>, StoreError> {
    let statement = match resource {
        Resource::Users => "SELECT count(*) AS n FROM users WHERE status = 'active'",
        Resource::Nodes => {
            "SELECT count(*) AS n FROM agents WHERE registered_at IS NOT NULL AND revoked_at IS NULL"
        }
        // The states that hold a seat (the sessions module's `COUNTED_SQL`).
        Resource::Sessions => {
            "SELECT count(*) AS n FROM sessions
              WHERE state IN ('pending','running','hibernating','hibernated','waking')"
        }
    };
    let rows = db.execute(statement, &[])?;
    let n = rows.first().map(|r| r.i64("n")).transpose()?.unwrap_or(0);
    Ok(Some(u64::try_from(n).unwrap_or(0)))
}

/// Usage of every resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub users: Option<u64>,
    pub sessions: Option<u64>,
    pub nodes: Option<u64>,
}

impl Usage {
    pub fn read(db: &Database) -> Result<Usage, StoreError> {
        Ok(Usage {
            users: count(db, Resource::Users)?,
            sessions: count(db, Resource::Sessions)?,
            nodes: count(db, Resource::Nodes)?,
        })
    }

    /// The warnings for this usage under `limits`, in resource order.
    pub fn warnings(&self, limits: &Limits) -> Vec<Warning> {
        [
            (Resource::Users, self.users),
            (Resource::Sessions, self.sessions),
            (Resource::Nodes, self.nodes),
        ]
        .into_iter()
        .filter_map(|(r, used)| Warning::of(r, used?, limits.of(r)?))
        .collect()
    }
}

/// Usage at or above 80 % of a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub resource: Resource,
    pub used: u64,
    pub limit: u64,
    /// `used * 100 / limit`, rounded down (100 for a zero limit).
    pub percent: u64,
    /// The threshold reached: 80, 90 or 95.
    pub level: u8,
}

impl Warning {
    pub fn of(resource: Resource, used: u64, limit: u64) -> Option<Warning> {
        let percent = used.saturating_mul(100).checked_div(limit).unwrap_or(100);
        let level = [95, 90, 80]
            .into_iter()
            .find(|l| percent >= u64::from(*l))?;
        Some(Warning {
            resource,
            used,
            limit,
            percent,
            level,
        })
    }

    /// The `X-License-Warning` value: `users 9/10 (90%)`.
    pub fn header_value(&self) -> String {
        format!(
            "{} {}/{} ({}%)",
            self.resource.as_str(),
            self.used,
            self.limit,
            self.percent
        )
    }
}

/// Room for one more of a resource: usage once it is created, under the license in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    pub resource: Resource,
    pub tier: Tier,
    /// How many there will be once the new one exists.
    pub used: u64,
    /// `None`: unlimited.
    pub limit: Option<u64>,
}

impl Capacity {
    /// Checks that one more `resource` fits beside `in_use` under `license`.
    pub fn for_one_more(license: &License, resource: Resource, in_use: u64) -> ApiResult<Self> {
        let capacity = Capacity {
            resource,
            tier: license.tier,
            used: in_use.saturating_add(1),
            limit: license.limits.of(resource),
        };
        match capacity.limit {
            Some(limit) if capacity.used > limit => {
                Err(limit_exceeded(resource, license.tier, in_use, limit))
            }
            _ => Ok(capacity),
        }
    }

    /// The warning once the new resource exists, if usage reaches 80 %.
    pub fn warning(&self) -> Option<Warning> {
        Warning::of(self.resource, self.used, self.limit?)
    }

    /// Adds the `X-License-Warning` header to a successful creation's response when near the limit.
    pub fn annotate(&self, response: Response) -> Response {
        match self
            .warning()
            .and_then(|w| HeaderValue::from_str(&w.header_value()).ok())
        {
            Some(value) => response.with_header(WARNING_HEADER, value),
            None => response,
        }
    }
}

/// 403 `license_limit_exceeded`.
pub fn limit_exceeded(resource: Resource, tier: Tier, in_use: u64, limit: u64) -> ApiError {
    let tier = tier.as_str();
    ApiError::forbidden(
        "license_limit_exceeded",
        format!(
            "the {tier} license allows {limit} {r} and {in_use} exist; \
             remove some or activate a license with a higher limit",
            r = resource.as_str()
        ),
    )
}

/// Counts `resource` and checks that one more fits: 403 `license_limit_exceeded` when it would
/// exceed the limit. Session admission counts inside its own transaction instead
/// (`sessions::admission`, with [`Capacity::for_one_more`]).
pub fn check_capacity(services: &Services, resource: Resource) -> ApiResult<Capacity> {
    let in_use = count(services.db()?, resource)?
        .ok_or_else(|| ApiError::internal(format!("no count for {}", resource.as_str())))?;
    check_capacity_with(services, resource, in_use)
}

/// Checks that one more `resource` fits beside `in_use` existing ones (counted by the caller).
pub fn check_capacity_with(
    services: &Services,
    resource: Resource,
    in_use: u64,
) -> ApiResult<Capacity> {
    Capacity::for_one_more(&current(services)?, resource, in_use)
}

/// Test keys: the RFC 8032 §7.1 "test 1" key pair and a minting function (native builds only;
/// production keys are minted offline with the operator's private key, see the README).
#[cfg(feature = "native")]
pub mod testing {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use ed25519_compact::{KeyPair, Seed};

    /// RFC 8032 §7.1 test 1 secret key.
    pub const SECRET: [u8; 32] = [
        0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c,
        0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae,
        0x7f, 0x60,
    ];
    /// Its public key (`d75a9801…511a`) as `license_public_key` takes it.
    pub const PUBLIC: &str = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

    /// A license key for `payload` signed with `secret`.
    pub fn mint_with(secret: &[u8; 32], payload: &serde_json::Value) -> String {
        let body = URL_SAFE_NO_PAD.encode(payload.to_string());
        let signature = KeyPair::from_seed(Seed::new(*secret))
            .sk
            .sign(body.as_bytes(), None);
        format!("{body}.{}", URL_SAFE_NO_PAD.encode(*signature))
    }

    /// A license key for `payload` signed with [`SECRET`].
    pub fn mint(payload: &serde_json::Value) -> String {
        mint_with(&SECRET, payload)
    }
}

#[cfg(all(test, feature = "native"))]
mod tests {
    use super::testing::{mint, mint_with, PUBLIC, SECRET};
    use super::*;
    use crate::testing::{insert_user, TestStores};
    use ed25519_compact::{KeyPair, Seed};

    fn public_of(secret: &[u8; 32]) -> [u8; 32] {
        *KeyPair::from_seed(Seed::new(*secret)).pk
    }

    const RFC_SIGNATURE: &str = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065\
        224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";
    /// 2026-11-23T06:00:00Z, the test clock.
    const NOW_S: i64 = 1_795_413_600;

    fn doc(tier: &str, expires_at: i64) -> serde_json::Value {
        serde_json::json!({"issuer": "StreamSpace", "licensee": "Acme", "tier": tier,
            "issued_at": NOW_S - 86_400, "expires_at": expires_at})
    }

    fn key() -> PublicKey {
        match Verifier::parse(Some(PUBLIC)) {
            Verifier::Key(k) => k,
            _ => panic!("test public key"),
        }
    }

    fn stores() -> TestStores {
        let stores = TestStores::new();
        stores.variables.set(PUBLIC_KEY_VARIABLE, PUBLIC);
        stores
    }

    #[test]
    fn public_key_matches_the_rfc_vector() {
        assert_eq!(public_of(&SECRET), *key());
        // RFC 8032 §7.1 test 1: the signature of the empty message.
        let mut signature = [0u8; 64];
        for (i, byte) in signature.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&RFC_SIGNATURE[2 * i..2 * i + 2], 16).unwrap();
        }
        key().verify(b"", &Signature::new(signature)).unwrap();
        assert_eq!(
            *KeyPair::from_seed(Seed::new(SECRET)).sk.sign(b"", None),
            signature
        );
        assert!(matches!(Verifier::parse(None), Verifier::Unconfigured));
        for bad in [
            "not base64!",
            "AAAA",
            "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
        ] {
            assert!(matches!(
                Verifier::parse(Some(bad)),
                Verifier::Misconfigured
            ));
        }
    }

    /// A key minted with the README's OpenSSL recipe (fresh key pair, OpenSSL 3.0).
    #[test]
    fn a_key_minted_with_the_openssl_recipe_verifies() {
        let Verifier::Key(public) =
            Verifier::parse(Some("duaYcc+gm7UKJ3WpGnmoc4I3cYcwwVU3GRgcIL6egB0="))
        else {
            panic!("openssl public key");
        };
        let d = verify(
            "eyJpc3N1ZXIiOiJTdHJlYW1TcGFjZSIsImxpY2Vuc2VlIjoiQWNtZSIsInRpZXIiOiJwcm8iLCJpc3N1ZWRfYXQiOjE3NjcyMjU2MDAsImV4cGlyZXNfYXQiOjE3OTg3NjE2MDB9.qhZvpf-Od4IMkodPhO-dLPKs9rf83PBEhKZNn6kxresPeHsKWmYC0ke3w69gyJWcRyTyiIcklAfQJkAoadavAg",
            &public,
        )
        .unwrap();
        assert_eq!((d.tier, d.licensee.as_str()), (Tier::Pro, "Acme"));
        assert_eq!((d.issued_at, d.expires_at), (1_767_225_600, 1_798_761_600));
    }

    #[test]
    fn good_signature_verifies_with_tier_defaults() {
        let d = verify(&mint(&doc("pro", NOW_S + 60)), &key()).unwrap();
        assert_eq!(d.tier, Tier::Pro);
        assert_eq!(d.licensee, "Acme");
        assert_eq!(d.limits(), Tier::Pro.limits());
        assert_eq!(
            Tier::Pro.limits(),
            Limits {
                users: Some(100),
                sessions: Some(200),
                nodes: Some(10)
            }
        );
        assert_eq!(
            Tier::Community.limits(),
            Limits {
                users: Some(10),
                sessions: Some(20),
                nodes: Some(3)
            }
        );
        assert_eq!(
            Tier::Enterprise.limits(),
            Limits {
                users: None,
                sessions: None,
                nodes: None
            }
        );
    }

    #[test]
    fn limit_overrides_missing_number_and_null() {
        let mut payload = doc("pro", NOW_S + 60);
        payload["limits"] = serde_json::json!({"users": 150, "nodes": null});
        let d = verify(&mint(&payload), &key()).unwrap();
        assert_eq!(
            d.limits(),
            Limits {
                users: Some(150),
                sessions: Some(200),
                nodes: None
            }
        );
        for bad in [
            serde_json::json!({"user": 150}),
            serde_json::json!({"users": -1}),
            serde_json::json!({"users": "10"}),
            serde_json::json!(null),
        ] {
            payload["limits"] = bad;
            assert!(verify(&mint(&payload), &key()).is_err(), "{payload}");
        }
        let mut payload = doc("pro", NOW_S + 60);
        payload["tier"] = serde_json::json!("gold");
        assert!(verify(&mint(&payload), &key()).is_err());
        let mut payload = doc("pro", NOW_S + 60);
        payload["expires"] = serde_json::json!(NOW_S);
        assert!(verify(&mint(&payload), &key()).is_err(), "unknown field");
        let mut payload = doc("pro", NOW_S + 60);
        payload.as_object_mut().unwrap().remove("licensee");
        assert!(verify(&mint(&payload), &key()).is_err(), "missing field");
    }

    #[test]
    fn bad_signature_tampered_payload_wrong_key_and_garbage_fail() {
        let good = mint(&doc("enterprise", NOW_S + 60));
        let (payload, signature) = good.split_once('.').unwrap();
        // A flipped signature bit.
        let mut sig = URL_SAFE_NO_PAD.decode(signature).unwrap();
        sig[10] ^= 1;
        let flipped = format!("{payload}.{}", URL_SAFE_NO_PAD.encode(&sig));
        assert!(verify(&flipped, &key()).is_err());
        // The payload of another document under the first signature.
        let other = mint(&doc("enterprise", NOW_S + 10_000_000));
        let tampered = format!("{}.{signature}", other.split_once('.').unwrap().0);
        assert!(verify(&tampered, &key()).is_err());
        // Signed by another key.
        let foreign = mint_with(&[7; 32], &doc("enterprise", NOW_S + 60));
        assert!(verify(&foreign, &key()).is_err());
        for garbage in [
            "",
            ".",
            "abc",
            "abc.def",
            payload,
            &"a".repeat(5000),
            &format!("{payload}.{signature}.x"),
        ] {
            assert!(verify(garbage, &key()).is_err(), "{garbage:.20}");
        }
        // Signed, but not a license document.
        let junk = mint(&serde_json::json!({"hello": 1}));
        assert!(verify(&junk, &key()).is_err());
        let backwards = mint(
            &serde_json::json!({"issuer": "i", "licensee": "l", "tier": "pro",
            "issued_at": NOW_S, "expires_at": NOW_S - 1}),
        );
        assert!(verify(&backwards, &key()).is_err());
        assert!(verify(&good, &key()).is_ok());
    }

    #[test]
    fn no_license_or_no_public_key_is_community() {
        let stores = TestStores::new();
        let s = stores.services();
        let license = current(&s).unwrap();
        assert_eq!(license, License::community(Status::None));
        assert_eq!(license.source(), "default");
        // A key cannot be activated without a public key.
        let err = activate(&s, &mint(&doc("pro", NOW_S + 60)), "admin").unwrap_err();
        assert_eq!(err.status.as_u16(), 409);
        assert_eq!(err.code, "license_verification_unavailable");
        stores.variables.set(PUBLIC_KEY_VARIABLE, "garbage");
        let err =
            activate(&stores.services(), &mint(&doc("pro", NOW_S + 60)), "admin").unwrap_err();
        assert_eq!(err.code, "license_verification_unavailable");
    }

    #[test]
    fn activation_stores_and_every_read_verifies_again() {
        let stores = stores();
        let s = stores.services();
        let license = activate(&s, &mint(&doc("pro", NOW_S + 3600)), "admin-1").unwrap();
        assert_eq!(license.tier, Tier::Pro);
        assert_eq!(license.source(), "license");
        let read = current(&stores.services()).unwrap();
        assert_eq!(read, license);
        assert_eq!(read.activated_by.as_deref(), Some("admin-1"));
        assert_eq!(read.activated_at, Some(NOW_S * 1000));

        // Replaced by another license (upsert of the one row).
        activate(&s, &mint(&doc("enterprise", NOW_S + 3600)), "admin-2").unwrap();
        let read = current(&stores.services()).unwrap();
        assert_eq!(read.tier, Tier::Enterprise);
        assert_eq!(read.activated_by.as_deref(), Some("admin-2"));

        // The license expires: community, document still shown.
        stores.clock.set((NOW_S + 3600) * 1000);
        let read = current(&stores.services()).unwrap();
        assert_eq!(
            (read.tier, read.status, read.source()),
            (Tier::Community, Status::Expired, "default")
        );
        assert_eq!(read.limits, Tier::Community.limits());
        assert_eq!(read.document.unwrap().licensee, "Acme");
        stores.clock.set(NOW_S * 1000);

        // The public key is rotated: the stored license no longer counts.
        let rotated = STANDARD.encode(public_of(&[7; 32]));
        stores.variables.set(PUBLIC_KEY_VARIABLE, &rotated);
        let read = current(&stores.services()).unwrap();
        assert_eq!((read.tier, read.status), (Tier::Community, Status::Invalid));
        assert!(read.document.is_none());

        // The public key is removed.
        stores.variables.set(PUBLIC_KEY_VARIABLE, "");
        let read = current(&stores.services()).unwrap();
        assert_eq!(
            (read.tier, read.status),
            (Tier::Community, Status::Unverifiable)
        );
    }

    #[test]
    fn activation_refuses_bad_and_expired_keys_and_keeps_the_old_one() {
        let stores = stores();
        let s = stores.services();
        activate(&s, &mint(&doc("pro", NOW_S + 3600)), "admin").unwrap();
        let err = activate(&s, &mint(&doc("enterprise", NOW_S)), "admin").unwrap_err();
        assert_eq!((err.status.as_u16(), err.code), (400, "license_expired"));
        let foreign = mint_with(&[7; 32], &doc("enterprise", NOW_S + 60));
        let err = activate(&s, &foreign, "admin").unwrap_err();
        assert_eq!((err.status.as_u16(), err.code), (400, "invalid_license"));
        let err = activate(&s, "garbage", "admin").unwrap_err();
        assert_eq!((err.status.as_u16(), err.code), (400, "invalid_license"));
        assert_eq!(current(&stores.services()).unwrap().tier, Tier::Pro);
    }

    #[test]
    fn warnings_at_80_90_95_percent() {
        let levels: Vec<_> = (0..=11)
            .map(|used| Warning::of(Resource::Users, used, 10).map(|w| (w.percent, w.level)))
            .collect();
        assert_eq!(&levels[..8], &[None; 8]);
        assert_eq!(levels[8], Some((80, 80)));
        assert_eq!(levels[9], Some((90, 90)));
        assert_eq!(levels[10], Some((100, 95)));
        assert_eq!(levels[11], Some((110, 95)));
        let w = Warning::of(Resource::Sessions, 19, 20).unwrap();
        assert_eq!((w.percent, w.level), (95, 95));
        assert_eq!(w.header_value(), "sessions 19/20 (95%)");
        assert_eq!(Warning::of(Resource::Nodes, 0, 0).unwrap().percent, 100);
        assert_eq!(Warning::of(Resource::Users, 179, 200).unwrap().level, 80);
    }

    #[test]
    fn capacity_allows_up_to_the_limit_then_refuses() {
        let community = License::community(Status::None);
        let c = Capacity::for_one_more(&community, Resource::Users, 8).unwrap();
        assert_eq!((c.used, c.limit), (9, Some(10)));
        let response = c.annotate(Response::no_content());
        assert_eq!(
            response.headers.get(WARNING_HEADER).unwrap(),
            "users 9/10 (90%)"
        );
        let c = Capacity::for_one_more(&community, Resource::Users, 6).unwrap();
        assert!(c.warning().is_none());
        assert!(c
            .annotate(Response::no_content())
            .headers
            .get(WARNING_HEADER)
            .is_none());
        assert!(Capacity::for_one_more(&community, Resource::Users, 9).is_ok());
        let err = Capacity::for_one_more(&community, Resource::Users, 10).unwrap_err();
        assert_eq!(
            (err.status.as_u16(), err.code),
            (403, "license_limit_exceeded")
        );
        assert!(err.message.contains("community license allows 10 users"));
        assert!(Capacity::for_one_more(&community, Resource::Nodes, 3).is_err());
        assert!(Capacity::for_one_more(&community, Resource::Sessions, 19).is_ok());
        let unlimited = License {
            tier: Tier::Enterprise,
            limits: Tier::Enterprise.limits(),
            ..community
        };
        let c = Capacity::for_one_more(&unlimited, Resource::Users, 1_000_000).unwrap();
        assert!(c.warning().is_none());
    }

    #[test]
    fn check_capacity_counts_active_users_and_live_agents() {
        let stores = stores();
        let s = stores.services();
        let db = s.db().unwrap();
        for i in 0..10 {
            insert_user(db, &format!("u{i}"), "org", "user").unwrap();
        }
        let err = check_capacity(&s, Resource::Users).unwrap_err();
        assert_eq!(err.code, "license_limit_exceeded");
        db.execute("UPDATE users SET status = 'disabled' WHERE id = 'u0'", &[])
            .unwrap();
        let c = check_capacity(&s, Resource::Users).unwrap();
        assert_eq!(c.warning().unwrap().header_value(), "users 10/10 (100%)");

        assert_eq!(count(db, Resource::Nodes).unwrap(), Some(0));
        // Registered and live, revoked, live, never registered, live.
        let agents = [
            (Some(1_i64), None),
            (Some(1), Some(2_i64)),
            (Some(1), None),
            (None, None),
            (Some(1), None),
        ];
        for (i, (registered, revoked)) in agents.into_iter().enumerate() {
            db.execute(
                "INSERT INTO agents (id, org_id, name, platform, api_key_hash, created_at, registered_at, revoked_at)
                 VALUES (?, 'org', ?, 'docker', ?, 0, ?, ?)",
                &[
                    Value::from(format!("a{i}")),
                    Value::from(format!("agent{i}")),
                    Value::from(format!("hash{i}")),
                    Value::from(registered),
                    Value::from(revoked),
                ],
            )
            .unwrap();
        }
        assert_eq!(count(db, Resource::Nodes).unwrap(), Some(3));
        assert!(check_capacity(&s, Resource::Nodes).is_err());
        assert_eq!(check_capacity(&s, Resource::Sessions).unwrap().used, 1);
        let c = check_capacity_with(&s, Resource::Sessions, 15).unwrap();
        assert_eq!(c.warning().unwrap().level, 80);

        // A pro license raises every limit; expired, it falls back to community again.
        activate(&s, &mint(&doc("pro", NOW_S + 60)), "admin").unwrap();
        assert!(check_capacity(&s, Resource::Users).is_ok());
        assert!(check_capacity(&s, Resource::Nodes).is_ok());
        stores.clock.advance(60_000);
        let s = stores.services();
        assert!(check_capacity(&s, Resource::Nodes).is_err());

        let usage = Usage::read(s.db().unwrap()).unwrap();
        assert_eq!(
            usage,
            Usage {
                users: Some(9),
                sessions: Some(0),
                nodes: Some(3)
            }
        );
        let warnings = usage.warnings(&Tier::Community.limits());
        assert_eq!(
            warnings
                .iter()
                .map(|w| (w.resource, w.level))
                .collect::<Vec<_>>(),
            vec![(Resource::Users, 90), (Resource::Nodes, 95)]
        );
    }

    #[test]
    fn store_failure_is_an_error_not_community() {
        let stores = stores();
        stores.sql.fail(true);
        assert!(current(&stores.services()).is_err());
        assert_eq!(
            check_capacity(&stores.services(), Resource::Users)
                .unwrap_err()
                .status,
            503
        );
    }
}
