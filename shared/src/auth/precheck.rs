//! The credential precheck (pipeline stage 5; seed 002, Coder's `PrecheckAPIKey`).
//!
//! It looks at `Authorization: Bearer …`, else the `__Host-ss_session` cookie, classifies the token by
//! its prefix and shape without touching a store (garbage is refused for free), then verifies it
//! fully with one indexed lookup by SHA-256: expiry, revocation, idle timeout, user still active.
//! It never rejects: the verdict is an [`AuthState`] the route's declared access turns into an
//! answer. Our own token checks are never cached, so logout and disable bite on the next request.
//!
//! Writes: a login session's `last_seen_at` is refreshed at most once a minute (so idle expiry is
//! exact to within 60 s while most requests write nothing); a personal access token's use count
//! and `last_used_at` are updated by the same single statement that finds it.

use crate::auth::{agents, cookies, external, AuthState, Credential, Principal, Role, Scope};
use crate::error::ApiError;
use crate::extract::query_value;
use crate::http::RequestHead;
use crate::secrets::{kind_of, TokenHash, TokenKind};
use crate::services::Services;
use crate::store::{Row, StoreError, Value};

/// How stale `last_seen_at` may get before a request refreshes it.
pub const LAST_SEEN_GRANULARITY_MS: i64 = 60_000;

/// Runs the precheck for one request. On agent routes (`agent_route`) only the agent key counts:
/// `X-Agent-API-Key` plus the agent id. On a route with an `{id}` segment (`path_id`,
/// `/agents/{id}/…`) the path names the agent and is the only id: an `agent_id` query parameter
/// naming another agent is refused (403 `agent_id_mismatch`), so a key can never act on another
/// agent's route or be recorded under its id. Routes without `{id}` (`/agents/register`,
/// `/auth/tickets/redeem`) take the `agent_id` query parameter. Everywhere else the agent header
/// is ignored and the bearer token or session cookie is checked.
pub async fn precheck(
    services: &Services,
    head: &RequestHead,
    agent_route: bool,
    path_id: Option<&str>,
) -> AuthState {
    if agent_route {
        let Some(key) = head.header(agents::HEADER) else {
            return AuthState::Anonymous;
        };
        let query_id = query_value(&head.query, "agent_id");
        let agent_id = match (path_id, query_id.as_deref()) {
            (Some(path), Some(query)) if query != path => {
                return AuthState::Refused(ApiError::forbidden(
                    "agent_id_mismatch",
                    "the `agent_id` query parameter names another agent than the path",
                ))
            }
            (Some(path), _) => Some(path),
            (None, query) => query,
        };
        return agents::verify(services, key, agent_id).unwrap_or_else(AuthState::Unavailable);
    }
    let (token, cookie) = match bearer(head) {
        Some(token) => (token, false),
        None => match cookies::get(&head.headers, cookies::SESSION) {
            Some(token) => (token, true),
            None => return AuthState::Anonymous,
        },
    };
    let result = match kind_of(token) {
        Some(TokenKind::Access) => verify_access(services, token, cookie),
        Some(TokenKind::PersonalAccess) if !cookie => verify_api_key(services, token),
        _ if !cookie => external::verify(services, token).await,
        _ => return AuthState::invalid("invalid_token", "the credential is not recognised"),
    };
    match result {
        Ok(state) => state,
        Err(err) => AuthState::Unavailable(err),
    }
}

/// The token of an `Authorization: Bearer` header.
pub fn bearer(head: &RequestHead) -> Option<&str> {
    let value = head.header("authorization")?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn principal_from(
    row: &Row<'_>,
    scope: Scope,
    credential: Credential,
) -> Result<Principal, StoreError> {
    Ok(Principal {
        user_id: row.str("user_id")?.to_owned(),
        org_id: row.str("org_id")?.to_owned(),
        username: row.str("username")?.to_owned(),
        role: Role::parse(row.str("role")?)
            .ok_or_else(|| StoreError::sqlite("users.role holds an unknown role"))?,
        platform_admin: row.i64("platform_admin")? != 0,
        scope,
        credential,
    })
}

fn verify_access(services: &Services, token: &str, cookie: bool) -> Result<AuthState, StoreError> {
    let now = services.now_ms();
    let db = services.db()?;
    let rows = db.execute(
        "SELECT s.id AS session_id, s.last_seen_at, u.id AS user_id, u.org_id, u.username, u.role,
                u.platform_admin, u.status
           FROM access_tokens t
           JOIN login_sessions s ON s.id = t.session_id
           JOIN users u ON u.id = s.user_id
          WHERE t.token_hash = ? AND t.expires_at > ? AND s.revoked_at IS NULL AND s.expires_at > ?",
        &[Value::from(TokenHash::of(token).as_str()), Value::from(now), Value::from(now)],
    )?;
    let Some(row) = rows.first() else {
        return Ok(AuthState::invalid(
            "invalid_token",
            "the token is expired, revoked or unknown",
        ));
    };
    if row.str("status")? != "active" {
        return Ok(AuthState::invalid(
            "user_disabled",
            "the account is disabled",
        ));
    }
    let session_id = row.str("session_id")?.to_owned();
    let last_seen = row.i64("last_seen_at")?;
    let idle_ms = services.settings().idle_timeout_seconds()? * 1000;
    if now - last_seen > idle_ms {
        db.execute(
            "UPDATE login_sessions SET revoked_at = ?, revoke_reason = 'idle' WHERE id = ? AND revoked_at IS NULL",
            &[Value::from(now), Value::from(session_id.as_str())],
        )?;
        return Ok(AuthState::invalid(
            "session_expired",
            "the login session expired after inactivity",
        ));
    }
    if now - last_seen > LAST_SEEN_GRANULARITY_MS {
        db.execute(
            "UPDATE login_sessions SET last_seen_at = ? WHERE id = ?",
            &[Value::from(now), Value::from(session_id.as_str())],
        )?;
    }
    let principal = principal_from(
        &row,
        Scope::Full,
        Credential::Session { session_id, cookie },
    )?;
    Ok(AuthState::Verified(principal))
}

fn verify_api_key(services: &Services, token: &str) -> Result<AuthState, StoreError> {
    let now = services.now_ms();
    let db = services.db()?;
    let hash = TokenHash::of(token);
    let rows = db.execute(
        "UPDATE api_keys SET use_count = use_count + 1, last_used_at = ?
          WHERE token_hash = ? AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)
          RETURNING id, user_id, scopes",
        &[
            Value::from(now),
            Value::from(hash.as_str()),
            Value::from(now),
        ],
    )?;
    let Some(key) = rows.first() else {
        return Ok(AuthState::invalid(
            "invalid_token",
            "the token is expired, revoked or unknown",
        ));
    };
    let key_id = key.str("id")?.to_owned();
    // Scopes are stored comma-separated; the widest one counts.
    let scope = key
        .str("scopes")?
        .split(',')
        .filter_map(|s| Scope::parse(s.trim()))
        .max()
        .unwrap_or(Scope::Read);
    let users = db.execute(
        "SELECT id AS user_id, org_id, username, role, platform_admin, status FROM users WHERE id = ?",
        &[Value::from(key.str("user_id")?)],
    )?;
    let Some(user) = users.first() else {
        return Ok(AuthState::invalid(
            "invalid_token",
            "the token's owner no longer exists",
        ));
    };
    if user.str("status")? != "active" {
        return Ok(AuthState::invalid(
            "user_disabled",
            "the account is disabled",
        ));
    }
    let principal = principal_from(&user, scope, Credential::ApiKey { key_id })?;
    Ok(AuthState::Verified(principal))
}
