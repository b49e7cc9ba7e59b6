//! Externally verified tokens (seed 004, Multica's cloud-node tokens).
//!
//! Some bearer tokens are minted and owned by another authority. A token that starts with the
//! configured prefix (`token_verifier_prefix`, default `ssc_`) is checked by POSTing
//! `{"token": "<token>"}` as JSON to `token_verifier_url`, which answers
//! `{"valid": bool, "owner_id": "...", "reason": "..."}`. The authority decides whether the token
//! is good; we decide who its owner is here: `owner_id` must name an existing, active local user,
//! and the request is then authenticated as that user (scope `Full`, [`Credential::External`]).
//!
//! The outcomes (each one is a unit test below and, where it can be, an end-to-end test):
//!
//! | situation | verdict | cached |
//! |---|---|---|
//! | token has one of our prefixes, or not the configured prefix, or is over-long | 401 `invalid_token`, no call | – |
//! | `token_verifier_url` undefined or empty (component not configured) | 401 `invalid_token`, no call | – |
//! | `token_verifier_url` not an absolute `http(s)` URL | 503 (configuration) | – |
//! | verifier unreachable, timed out, refused by `allowed_outbound_hosts` | 503 | no |
//! | 5xx, 3xx, 1xx, 408, 429, any other 4xx not listed below | 503 | no |
//! | 400, 401, 403, 404, 410, 422 (the verifier rejected the token) | 401 `invalid_token` | no |
//! | 2xx with an undecodable body (not JSON, `valid` missing or not a bool, `owner_id` not a string, over 64 KiB) | 503 | no |
//! | `valid: false` | 401 `invalid_token` | no |
//! | `valid: true` without `owner_id` (missing, null, empty) | 401 `invalid_token` | no |
//! | `valid: true`, owner unknown locally | 401 `invalid_token` | no |
//! | `valid: true`, owner disabled | 401 `user_disabled` | no |
//! | `valid: true`, owner active | authenticated | 60 s |
//! | store error during the owner lookup | 503 | no |
//!
//! The cache (key-value, key `auth:ext:<sha256 of the token>`, value: the owner id with its own
//! expiry) only saves the call to the verifier: on a hit the owner is still looked up locally, so
//! a disabled or deleted user is refused on the very next request (and the entry is dropped).
//! The 60 s are the revocation window the seed accepts: a token revoked at the authority keeps
//! working here for at most 60 s. Negative answers are never cached, so a freshly minted token or
//! a freshly created user is never locked out by a stale refusal. The key-value store is a cache
//! only: when it cannot be read or written the verifier decides as if there were no cache (a
//! failing read is a miss, a failing write is dropped), so a key-value outage costs verifier calls,
//! never a wrong or stale answer and never a 503 of its own.
//!
//! The wait for the verifier: `spin_sdk::http::send` passes no request options, so Spin applies its
//! outbound defaults (600 s each for connect, first byte and between bytes in Spin 3.x); in practice
//! the wait is bounded by whatever bounds the incoming request (Spin's HTTP trigger, the ingress in
//! front of SpinKube, Fermyon Cloud's request limit). A timeout reported by the host is a 503 like
//! any other transport failure. The verifier's origin must be in the component's
//! `allowed_outbound_hosts` (`{{ token_verifier_origin }}` in `spin.toml`); a denied request is a
//! 503, because it is a configuration error, not a verdict on the token.

use serde::Deserialize;

use crate::auth::{AuthState, Credential, Principal, Role, Scope};
use crate::secrets::{kind_of, TokenHash, TokenKind};
use crate::services::Services;
use crate::store::{OutboundRequest, OutboundResponse, StoreError, StoreKind, Value};

/// How long a positive verification is reused without asking the verifier again.
pub const CACHE_TTL_MS: i64 = 60_000;

/// Key-value prefix of cached verifications; the rest of the key is the token's SHA-256.
pub const CACHE_PREFIX: &str = "auth:ext:";

/// Longer tokens are refused without a call (no authority mints bearer tokens this long, and the
/// verifier should not be handed arbitrary amounts of attacker-chosen data).
pub const MAX_TOKEN_LEN: usize = 512;

/// A verifier answer larger than this is undecodable (503).
pub const MAX_REPLY_BYTES: usize = 64 * 1024;

/// An `owner_id` longer than this cannot be one of our user ids: unknown owner (401).
const MAX_OWNER_ID_LEN: usize = 128;

/// The key-value key under which a verification of `token` is cached.
pub fn cache_key(token: &str) -> String {
    format!("{CACHE_PREFIX}{}", TokenHash::of(token).as_str())
}

/// The endpoint the token is POSTed to: `token_verifier_url` exactly as configured (trimmed),
/// minus any trailing `/` of its path, so `https://v.example/verify/` and
/// `https://v.example/verify` both POST to `/verify`, and `https://v.example/` POSTs to `/`.
/// A query string is kept as is. `None` unless it starts with `http://` or `https://`, has a host,
/// no user info and no whitespace.
pub fn endpoint(configured: &str) -> Option<String> {
    let configured = configured.trim();
    let split = configured.find(['?', '#']).unwrap_or(configured.len());
    let (base, rest) = configured.split_at(split);
    let url = format!("{}{rest}", base.trim_end_matches('/'));
    // A hand check rather than `http::Uri` (which would add its parser to every component).
    let after_scheme = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = after_scheme
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    let host_ok = !authority.is_empty() && !authority.starts_with(':') && !authority.contains('@');
    (host_ok && url.bytes().all(|b| b.is_ascii_graphic())).then_some(url)
}

/// Verifies a bearer token that is not one of ours (see the module documentation for every
/// outcome). `Err` is a store or verifier failure, answered 503.
pub async fn verify(services: &Services, token: &str) -> Result<AuthState, StoreError> {
    let settings = services.settings();
    let prefix = settings.token_verifier_prefix()?;
    if !is_external(token, &prefix) {
        return Ok(AuthState::invalid(
            "invalid_token",
            "the credential is not recognised",
        ));
    }
    let Some(configured) = settings.token_verifier_url()? else {
        return Ok(AuthState::invalid(
            "invalid_token",
            "externally issued tokens are not accepted here",
        ));
    };
    let url = endpoint(&configured).ok_or_else(|| {
        StoreError::new(
            StoreKind::Config,
            "token_verifier_url is not an absolute http(s) URL",
        )
    })?;

    let key = cache_key(token);
    let now = services.now_ms();
    if let Some(owner_id) = cached_owner(services, &key, now) {
        let state = owner(services, &owner_id)?;
        if !matches!(state, AuthState::Verified(_)) {
            forget(services, &key);
        }
        return Ok(state);
    }

    let owner_id = match ask(services, &url, token).await? {
        Ok(owner_id) => owner_id,
        Err(refused) => return Ok(refused),
    };
    let state = owner(services, &owner_id)?;
    if matches!(state, AuthState::Verified(_)) {
        // Expiry counts from before the call: never longer than the seed's 60 s.
        remember(services, &key, &owner_id, now);
    }
    Ok(state)
}

/// Whether `token` is one the verifier should see: it has the configured prefix and a body, and
/// it is not one of our own kinds (our secrets never leave the app, even if the configured
/// prefix overlaps ours) nor over-long or outside visible ASCII.
fn is_external(token: &str, prefix: &str) -> bool {
    let ours = kind_of(token).is_some()
        || TokenKind::ALL
            .iter()
            .map(|k| k.prefix())
            .any(|p| !p.is_empty() && token.starts_with(p));
    !ours
        && token.len() > prefix.len()
        && token.len() <= MAX_TOKEN_LEN
        && token.starts_with(prefix)
        && token.bytes().all(|b| b.is_ascii_graphic())
}

/// The owner id of a fresh cached verification. Any key-value failure is a miss.
fn cached_owner(services: &Services, key: &str, now: i64) -> Option<String> {
    let kv = services.kv().ok()?;
    kv.get_fresh::<String>(key, now).ok().flatten()
}

/// Caches a positive verification; a failure is dropped (the verifier has answered).
fn remember(services: &Services, key: &str, owner_id: &str, now: i64) {
    if let Ok(kv) = services.kv() {
        let _ = kv.put_fresh(key, &owner_id, now, CACHE_TTL_MS);
    }
}

/// Drops a cached verification whose owner was refused; best effort (the owner is looked up on
/// every hit anyway).
fn forget(services: &Services, key: &str) {
    if let Ok(kv) = services.kv() {
        let _ = kv.delete(key);
    }
}

/// The verifier's answer body.
#[derive(Deserialize)]
struct Reply {
    valid: bool,
    #[serde(default)]
    owner_id: Option<String>,
    /// Informational only; not required to be a string.
    #[serde(default)]
    reason: Option<serde_json::Value>,
}

/// Asks the verifier. `Ok(Ok(owner_id))` for a valid token, `Ok(Err(state))` for a refusal,
/// `Err` when there is no usable answer (503).
async fn ask(
    services: &Services,
    url: &str,
    token: &str,
) -> Result<Result<String, AuthState>, StoreError> {
    let body = serde_json::to_vec(&serde_json::json!({ "token": token })).map_err(|e| {
        StoreError::new(
            StoreKind::OutboundHttp,
            format!("encode verifier request: {e}"),
        )
    })?;
    let request = OutboundRequest {
        method: http::Method::POST,
        url: url.to_owned(),
        headers: vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("accept".to_owned(), "application/json".to_owned()),
            ("content-length".to_owned(), body.len().to_string()),
        ],
        body,
    };
    let response = services.outbound.send(request).await.map_err(|e| {
        StoreError::new(
            StoreKind::OutboundHttp,
            format!("token verifier: {}", e.message),
        )
    })?;
    interpret(&response)
}

fn unavailable(message: String) -> StoreError {
    StoreError::new(StoreKind::OutboundHttp, message)
}

/// Maps the verifier's answer to a verdict (see the table in the module documentation).
fn interpret(response: &OutboundResponse) -> Result<Result<String, AuthState>, StoreError> {
    let status = response.status;
    match status {
        200..=299 => {}
        400 | 401 | 403 | 404 | 410 | 422 => {
            return Ok(Err(AuthState::Invalid {
                code: "invalid_token",
                message: format!("the token was refused by its issuer (HTTP {status})"),
            }))
        }
        _ => {
            return Err(unavailable(format!(
                "token verifier answered HTTP {status}"
            )))
        }
    }
    if response.body.len() > MAX_REPLY_BYTES {
        return Err(unavailable(format!(
            "token verifier answer is {} bytes (limit {MAX_REPLY_BYTES})",
            response.body.len()
        )));
    }
    let reply: Reply = serde_json::from_slice(&response.body)
        .map_err(|e| unavailable(format!("token verifier answer is undecodable: {e}")))?;
    if !reply.valid {
        let message = match reply.reason.as_ref().and_then(serde_json::Value::as_str) {
            Some(reason) if is_plain_reason(reason) => {
                format!("the token was refused by its issuer ({reason})")
            }
            _ => "the token was refused by its issuer".to_owned(),
        };
        return Ok(Err(AuthState::Invalid {
            code: "invalid_token",
            message,
        }));
    }
    // Ids are exact: no trimming or case folding ("u-1\n" is not "u-1").
    match reply.owner_id {
        Some(owner_id) if !owner_id.is_empty() => Ok(Ok(owner_id)),
        _ => Ok(Err(AuthState::invalid(
            "invalid_token",
            "the token's issuer named no owner",
        ))),
    }
}

/// A reason worth repeating to the caller: short, `[a-z0-9_.-]` only (it comes from a third
/// party and ends up in our error message).
fn is_plain_reason(reason: &str) -> bool {
    !reason.is_empty()
        && reason.len() <= 64
        && reason
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
}

/// The verdict for a verified token of `owner_id`: the active local user, or a refusal. Store
/// failures are `Err` (503).
fn owner(services: &Services, owner_id: &str) -> Result<AuthState, StoreError> {
    let unknown = || {
        AuthState::invalid(
            "invalid_token",
            "the token's owner is not a user of this installation",
        )
    };
    if owner_id.len() > MAX_OWNER_ID_LEN || owner_id.chars().any(char::is_control) {
        return Ok(unknown());
    }
    let rows = services.db()?.execute(
        "SELECT id, org_id, username, role, platform_admin, status FROM users WHERE id = ?",
        &[Value::from(owner_id)],
    )?;
    let Some(user) = rows.first() else {
        return Ok(unknown());
    };
    if user.str("status")? != "active" {
        return Ok(AuthState::invalid(
            "user_disabled",
            "the account is disabled",
        ));
    }
    Ok(AuthState::Verified(Principal {
        user_id: user.str("id")?.to_owned(),
        org_id: user.str("org_id")?.to_owned(),
        username: user.str("username")?.to_owned(),
        role: Role::parse(user.str("role")?)
            .ok_or_else(|| StoreError::sqlite("users.role holds an unknown role"))?,
        platform_admin: user.i64("platform_admin")? != 0,
        scope: Scope::Full,
        credential: Credential::External,
    }))
}

#[cfg(all(test, feature = "native"))]
mod tests {
    use super::*;
    use crate::store::{Clock, OutboundResponse};
    use crate::testing::{insert_user, TestStores};

    const TOKEN: &str = "ssc_cloud-node-token-0123456789";
    const URL: &str = "https://verifier.example/api/v1/pat/verify";

    fn stores() -> TestStores {
        let stores = TestStores::new();
        stores.variables.set("token_verifier_url", URL);
        let services = stores.services();
        let db = services.db().unwrap();
        insert_user(db, "u-active", "org-1", "operator").unwrap();
        insert_user(db, "u-disabled", "org-1", "user").unwrap();
        db.execute(
            "UPDATE users SET status = 'disabled' WHERE id = 'u-disabled'",
            &[],
        )
        .unwrap();
        stores
    }

    fn reply(stores: &TestStores, status: u16, body: &str) {
        stores.outbound.reply(Ok(OutboundResponse {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        }));
    }

    fn valid(stores: &TestStores, owner: &str) {
        reply(
            stores,
            200,
            &serde_json::json!({"valid": true, "owner_id": owner}).to_string(),
        );
    }

    fn run(stores: &TestStores, token: &str) -> Result<AuthState, StoreError> {
        futures::executor::block_on(verify(&stores.services(), token))
    }

    fn calls(stores: &TestStores) -> usize {
        stores.outbound.sent().len()
    }

    fn cached(stores: &TestStores, token: &str) -> bool {
        use crate::store::KvStore;
        stores.kv.exists(&cache_key(token)).unwrap()
    }

    #[track_caller]
    fn assert_invalid(state: Result<AuthState, StoreError>, expected: &str) {
        match state {
            Ok(AuthState::Invalid { code, .. }) => assert_eq!(code, expected),
            other => panic!("expected 401 {expected}, got {other:?}"),
        }
    }

    #[track_caller]
    fn assert_unavailable(state: Result<AuthState, StoreError>, kind: StoreKind) {
        match state {
            Err(e) => assert_eq!(e.store, kind, "{e}"),
            other => panic!("expected 503 ({kind:?}), got {other:?}"),
        }
    }

    #[track_caller]
    fn assert_verified(state: Result<AuthState, StoreError>, user_id: &str) -> Principal {
        match state {
            Ok(AuthState::Verified(p)) => {
                assert_eq!(p.user_id, user_id);
                p
            }
            other => panic!("expected {user_id}, got {other:?}"),
        }
    }

    #[test]
    fn valid_token_of_an_active_user_authenticates_as_that_user() {
        let stores = stores();
        valid(&stores, "u-active");
        let p = assert_verified(run(&stores, TOKEN), "u-active");
        assert_eq!(p.org_id, "org-1");
        assert_eq!(p.username, "u-active");
        assert_eq!(p.role, Role::Operator);
        assert!(!p.platform_admin);
        assert_eq!(p.scope, Scope::Full);
        assert_eq!(p.credential, Credential::External);
        assert_eq!(p.session_id(), None);

        let sent = stores.outbound.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].method, http::Method::POST);
        assert_eq!(sent[0].url, URL);
        let body: serde_json::Value = serde_json::from_slice(&sent[0].body).unwrap();
        assert_eq!(body, serde_json::json!({"token": TOKEN}));
        assert!(sent[0]
            .headers
            .iter()
            .any(|(k, v)| k == "content-type" && v == "application/json"));
        assert!(sent[0]
            .headers
            .iter()
            .any(|(k, v)| k == "content-length" && *v == sent[0].body.len().to_string()));
    }

    #[test]
    fn positive_result_is_cached_for_60_seconds_under_the_token_hash() {
        let stores = stores();
        valid(&stores, "u-active");
        assert_verified(run(&stores, TOKEN), "u-active");
        let key = cache_key(TOKEN);
        assert_eq!(key, format!("auth:ext:{}", TokenHash::of(TOKEN).as_str()));
        assert!(!key.contains(TOKEN));
        assert!(cached(&stores, TOKEN));

        // Within 60 s: no second call.
        stores.clock.advance(CACHE_TTL_MS - 1);
        assert_verified(run(&stores, TOKEN), "u-active");
        assert_eq!(calls(&stores), 1);

        // After 60 s the verifier is asked again.
        stores.clock.advance(1);
        valid(&stores, "u-active");
        assert_verified(run(&stores, TOKEN), "u-active");
        assert_eq!(calls(&stores), 2);
    }

    #[test]
    fn cache_hit_still_refuses_a_disabled_or_deleted_owner_at_once() {
        let stores = stores();
        valid(&stores, "u-active");
        assert_verified(run(&stores, TOKEN), "u-active");
        let services = stores.services();
        let db = services.db().unwrap();
        db.execute(
            "UPDATE users SET status = 'disabled' WHERE id = 'u-active'",
            &[],
        )
        .unwrap();
        assert_invalid(run(&stores, TOKEN), "user_disabled");
        assert_eq!(calls(&stores), 1, "served from the cache, owner re-checked");
        assert!(!cached(&stores, TOKEN), "the refused entry is dropped");

        // Same for a deleted owner.
        db.execute(
            "UPDATE users SET status = 'active' WHERE id = 'u-active'",
            &[],
        )
        .unwrap();
        valid(&stores, "u-active");
        assert_verified(run(&stores, TOKEN), "u-active");
        db.execute("DELETE FROM users WHERE id = 'u-active'", &[])
            .unwrap();
        assert_invalid(run(&stores, TOKEN), "invalid_token");
        assert_eq!(calls(&stores), 2);
        assert!(!cached(&stores, TOKEN));
    }

    #[test]
    fn cache_hit_with_a_failing_owner_lookup_is_503() {
        let stores = stores();
        valid(&stores, "u-active");
        assert_verified(run(&stores, TOKEN), "u-active");
        stores.sql.fail(true);
        assert_unavailable(run(&stores, TOKEN), StoreKind::Sqlite);
        assert_eq!(calls(&stores), 1);
    }

    #[test]
    fn valid_false_is_401_and_never_cached() {
        let stores = stores();
        for _ in 0..2 {
            reply(
                &stores,
                200,
                r#"{"valid": false, "reason": "token_revoked"}"#,
            );
            match run(&stores, TOKEN) {
                Ok(AuthState::Invalid { code, message }) => {
                    assert_eq!(code, "invalid_token");
                    assert!(message.contains("token_revoked"), "{message}");
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(calls(&stores), 2, "negative results are not cached");
        assert!(!cached(&stores, TOKEN));
        // A fresh token that turns valid is accepted at once.
        valid(&stores, "u-active");
        assert_verified(run(&stores, TOKEN), "u-active");
    }

    #[test]
    fn every_documented_invalid_reason_is_401() {
        let stores = stores();
        for reason in [
            r#""token_not_found""#,
            r#""token_revoked""#,
            r#""token_expired""#,
            "null",
            "42",
            r#""<script>alert(1)</script>""#,
        ] {
            reply(
                &stores,
                200,
                &format!(r#"{{"valid": false, "owner_id": "u-active", "reason": {reason}}}"#),
            );
            match run(&stores, TOKEN) {
                Ok(AuthState::Invalid { code, message }) => {
                    assert_eq!(code, "invalid_token");
                    assert!(!message.contains('<'), "third-party text is not echoed");
                }
                other => panic!("{reason}: {other:?}"),
            }
        }
        reply(&stores, 200, r#"{"valid": false}"#);
        assert_invalid(run(&stores, TOKEN), "invalid_token");
        assert!(!cached(&stores, TOKEN));
    }

    #[test]
    fn valid_without_owner_is_401() {
        let stores = stores();
        for body in [
            r#"{"valid": true}"#,
            r#"{"valid": true, "owner_id": null}"#,
            r#"{"valid": true, "owner_id": ""}"#,
            r#"{"valid": true, "owner_id": "   "}"#,
        ] {
            reply(&stores, 200, body);
            assert_invalid(run(&stores, TOKEN), "invalid_token");
        }
        assert!(!cached(&stores, TOKEN));
        assert_eq!(calls(&stores), 4);
    }

    #[test]
    fn unknown_owner_is_401_and_not_cached() {
        let stores = stores();
        valid(&stores, "u-nobody");
        assert_invalid(run(&stores, TOKEN), "invalid_token");
        assert!(!cached(&stores, TOKEN));
        // A user created afterwards is not locked out by a stale refusal.
        insert_user(stores.services().db().unwrap(), "u-nobody", "org-1", "user").unwrap();
        valid(&stores, "u-nobody");
        assert_verified(run(&stores, TOKEN), "u-nobody");
        assert_eq!(calls(&stores), 2);

        // Owner ids that cannot be ours are unknown without a lookup error.
        valid(&stores, &"x".repeat(MAX_OWNER_ID_LEN + 1));
        assert_invalid(run(&stores, "ssc_other-token"), "invalid_token");
        valid(&stores, "u-active\n");
        assert_invalid(run(&stores, "ssc_third-token"), "invalid_token");
    }

    #[test]
    fn disabled_owner_is_401_user_disabled_and_not_cached() {
        let stores = stores();
        valid(&stores, "u-disabled");
        assert_invalid(run(&stores, TOKEN), "user_disabled");
        assert!(!cached(&stores, TOKEN));
        valid(&stores, "u-disabled");
        assert_invalid(run(&stores, TOKEN), "user_disabled");
        assert_eq!(calls(&stores), 2);
    }

    #[test]
    fn not_configured_fails_closed_without_a_call() {
        let stores = stores();
        stores.variables.set("token_verifier_url", "  ");
        assert_invalid(run(&stores, TOKEN), "invalid_token");
        let unset = TestStores::new();
        assert_invalid(run(&unset, TOKEN), "invalid_token");
        assert_eq!(calls(&stores) + calls(&unset), 0);
    }

    #[test]
    fn malformed_verifier_url_is_503_without_a_call() {
        let stores = stores();
        for bad in [
            "verifier.example/verify",
            "ftp://verifier.example/",
            "https://",
            "/verify",
        ] {
            stores.variables.set("token_verifier_url", bad);
            assert_unavailable(run(&stores, TOKEN), StoreKind::Config);
        }
        assert_eq!(calls(&stores), 0);
    }

    #[test]
    fn tokens_without_the_prefix_or_of_our_kinds_never_leave() {
        let stores = stores();
        let body = "A".repeat(crate::secrets::token::TOKEN_BODY_LEN);
        let ours = [
            format!("ssa_{body}"),
            format!("ssp_{body}"),
            format!("ssr_{body}"),
            "ssa_malformed".to_owned(),
            "a".repeat(64),
        ];
        for token in ours.iter().map(String::as_str).chain([
            "xyz_whatever",
            "ssc_",
            "ssc_with space",
            "ssc_ünïcode",
            "SSC_upper",
        ]) {
            assert_invalid(run(&stores, token), "invalid_token");
        }
        assert_invalid(
            run(&stores, &format!("ssc_{}", "a".repeat(MAX_TOKEN_LEN))),
            "invalid_token",
        );
        // A prefix overlapping ours still never sends our secrets out.
        stores.variables.set("token_verifier_prefix", "ss");
        for token in &ours[..4] {
            assert_invalid(run(&stores, token), "invalid_token");
        }
        assert_eq!(calls(&stores), 0);
    }

    #[test]
    fn the_configured_prefix_decides() {
        let stores = stores();
        stores.variables.set("token_verifier_prefix", "mcn_");
        assert_invalid(run(&stores, TOKEN), "invalid_token");
        assert_eq!(calls(&stores), 0);
        valid(&stores, "u-active");
        assert_verified(run(&stores, "mcn_node-token"), "u-active");
        assert_eq!(calls(&stores), 1);
        // Empty means the default, not "every token".
        stores.variables.set("token_verifier_prefix", "");
        assert_invalid(run(&stores, "mcn_node-token-2"), "invalid_token");
        assert_eq!(calls(&stores), 1);
    }

    #[test]
    fn transport_failures_are_503() {
        let stores = stores();
        for cause in [
            "connection refused",
            "ConnectionReadTimeout",
            "HttpRequestDenied",
        ] {
            stores
                .outbound
                .reply(Err(StoreError::new(StoreKind::OutboundHttp, cause)));
            assert_unavailable(run(&stores, TOKEN), StoreKind::OutboundHttp);
        }
        // Whatever the adapter calls its failure, it is the verifier that is unavailable.
        stores.outbound.reply(Err(StoreError::kv("odd adapter")));
        assert_unavailable(run(&stores, TOKEN), StoreKind::OutboundHttp);
        assert!(!cached(&stores, TOKEN));
    }

    #[test]
    fn server_errors_and_unexpected_statuses_are_503() {
        let stores = stores();
        let ok = r#"{"valid": true, "owner_id": "u-active"}"#;
        for status in [
            500, 502, 503, 504, 301, 302, 304, 100, 408, 429, 405, 415, 413,
        ] {
            reply(&stores, status, ok);
            assert_unavailable(run(&stores, TOKEN), StoreKind::OutboundHttp);
        }
        assert!(!cached(&stores, TOKEN));
    }

    #[test]
    fn rejection_statuses_are_401_even_with_a_valid_body() {
        let stores = stores();
        let ok = r#"{"valid": true, "owner_id": "u-active"}"#;
        for status in [400, 401, 403, 404, 410, 422] {
            reply(&stores, status, ok);
            assert_invalid(run(&stores, TOKEN), "invalid_token");
        }
        assert!(!cached(&stores, TOKEN));
    }

    #[test]
    fn undecodable_answers_are_503() {
        let stores = stores();
        let huge = format!(
            r#"{{"valid": true, "owner_id": "u-active", "pad": "{}"}}"#,
            "x".repeat(MAX_REPLY_BYTES)
        );
        for body in [
            "",
            "<html>bad gateway</html>",
            "{",
            "[]",
            r#"{"owner_id": "u-active"}"#,
            r#"{"valid": "true", "owner_id": "u-active"}"#,
            r#"{"valid": 1, "owner_id": "u-active"}"#,
            r#"{"valid": true, "owner_id": 7}"#,
            huge.as_str(),
        ] {
            reply(&stores, 200, body);
            assert_unavailable(run(&stores, TOKEN), StoreKind::OutboundHttp);
        }
        // 2xx other than 200 with a proper body is fine; extra fields are ignored.
        reply(
            &stores,
            201,
            r#"{"valid": true, "owner_id": "u-active", "expires_at": 1}"#,
        );
        assert_verified(run(&stores, TOKEN), "u-active");
    }

    #[test]
    fn owner_lookup_failure_after_a_valid_answer_is_503_and_not_cached() {
        let stores = stores();
        valid(&stores, "u-active");
        // The verifier is asked before SQLite is touched, so the failure hits the owner lookup.
        stores.sql.fail(true);
        assert_unavailable(run(&stores, TOKEN), StoreKind::Sqlite);
        assert_eq!(calls(&stores), 1);
        assert!(!cached(&stores, TOKEN));
        stores.sql.fail(false);
        valid(&stores, "u-active");
        assert_verified(run(&stores, TOKEN), "u-active");
    }

    #[test]
    fn a_failing_cache_never_turns_a_good_answer_into_an_error() {
        let stores = stores();
        stores.kv.fail(true);
        valid(&stores, "u-active");
        assert_verified(run(&stores, TOKEN), "u-active");
        // Nothing could be cached, so the verifier decides every time.
        valid(&stores, "u-active");
        assert_verified(run(&stores, TOKEN), "u-active");
        assert_eq!(calls(&stores), 2);
        // Refusals stay refusals.
        reply(&stores, 200, r#"{"valid": false}"#);
        assert_invalid(run(&stores, TOKEN), "invalid_token");
        stores.kv.fail(false);
        assert!(!cached(&stores, TOKEN));
    }

    #[test]
    fn a_failing_cache_read_asks_the_verifier_instead_of_trusting_old_entries() {
        let stores = stores();
        valid(&stores, "u-active");
        assert_verified(run(&stores, TOKEN), "u-active");
        stores.kv.fail(true);
        reply(
            &stores,
            200,
            r#"{"valid": false, "reason": "token_revoked"}"#,
        );
        assert_invalid(run(&stores, TOKEN), "invalid_token");
        assert_eq!(calls(&stores), 2);
    }

    #[test]
    fn expired_or_corrupt_cache_entries_are_misses() {
        use crate::store::KvStore;
        let stores = stores();
        let key = cache_key(TOKEN);
        stores.kv.set(&key, b"not json").unwrap();
        valid(&stores, "u-active");
        assert_verified(run(&stores, TOKEN), "u-active");
        assert_eq!(calls(&stores), 1);
        // An entry that expired a millisecond ago is not served.
        let now = stores.clock.now_ms();
        let kv = crate::store::Kv::new(Box::new(stores.kv.clone()));
        kv.put_fresh(&key, &"u-active", now - CACHE_TTL_MS - 1, CACHE_TTL_MS)
            .unwrap();
        reply(&stores, 200, r#"{"valid": false}"#);
        assert_invalid(run(&stores, TOKEN), "invalid_token");
        assert_eq!(calls(&stores), 2);
    }

    #[test]
    fn trailing_slashes_are_normalised() {
        let cases = [
            (URL, Some(URL)),
            ("https://verifier.example/api/v1/pat/verify/", Some(URL)),
            (" https://verifier.example/api/v1/pat/verify// ", Some(URL)),
            (
                "https://verifier.example/",
                Some("https://verifier.example"),
            ),
            ("https://verifier.example", Some("https://verifier.example")),
            (
                "http://127.0.0.1:8080/verify/?v=1",
                Some("http://127.0.0.1:8080/verify?v=1"),
            ),
            ("https://", None),
            ("https:///verify", None),
            ("https://:443/verify", None),
            ("https://user:pw@verifier.example/verify", None),
            ("https://verifier.example/ver ify", None),
            ("HTTPS://verifier.example/verify", None),
            ("verifier.example/verify", None),
            ("ftp://verifier.example/verify", None),
            ("", None),
        ];
        for (configured, expected) in cases {
            assert_eq!(endpoint(configured).as_deref(), expected, "{configured:?}");
        }
        let stores = stores();
        stores.variables.set(
            "token_verifier_url",
            "https://verifier.example/api/v1/pat/verify/",
        );
        valid(&stores, "u-active");
        assert_verified(run(&stores, TOKEN), "u-active");
        assert_eq!(stores.outbound.sent()[0].url, URL);
    }
}
