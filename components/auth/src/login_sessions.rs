//! Login sessions and their token pairs (DESIGN §5).
//!
//! A login session is a row in `login_sessions`; its short-lived access token and its rotating
//! refresh token are stored as SHA-256 only. The refresh tokens of one session form its family:
//! each use spends the token and issues a new pair; presenting a spent one again means it was
//! stolen, so the whole session is revoked. The cap on concurrent sessions is enforced by the
//! same single `INSERT … SELECT … WHERE count < max` statement that creates the session, so two
//! logins racing on two instances cannot both pass it.

use shared::auth::Tenant;
use shared::ids::uuid_v4;
use shared::secrets::{new_token, Secret, TokenHash, TokenKind};
use shared::store::{Database, Value};
use shared::{ApiError, ApiResult, Cx};

/// A login session lives at most this long, however often it is refreshed.
pub const SESSION_LIFETIME_MS: i64 = 30 * 24 * 60 * 60 * 1000;

/// A freshly issued pair.
pub struct Issued {
    pub session_id: String,
    pub access: Secret,
    pub refresh: Secret,
    /// Access-token lifetime in seconds.
    pub expires_in: i64,
}

/// Per-request inputs of session issuance, read before any transaction starts.
pub struct Issuer {
    now: i64,
    ttl_s: i64,
    idle_ms: i64,
    max_sessions: i64,
    client_ip: Option<String>,
    user_agent: Option<String>,
    session_id: String,
    access: (Secret, TokenHash),
    refresh: (Secret, TokenHash),
}

impl Issuer {
    pub fn new(cx: &Cx) -> ApiResult<Self> {
        let services = &cx.services;
        let settings = services.settings();
        let random = services.random.as_ref();
        Ok(Self {
            now: services.now_ms(),
            ttl_s: settings.access_token_ttl_seconds()?,
            idle_ms: settings.idle_timeout_seconds()? * 1000,
            max_sessions: settings.max_login_sessions()?,
            client_ip: cx.head.client_ip.map(|ip| ip.to_string()),
            user_agent: cx
                .head
                .header("user-agent")
                .map(|ua| ua.chars().take(512).collect()),
            session_id: uuid_v4(random)?,
            access: new_token(random, TokenKind::Access)?,
            refresh: new_token(random, TokenKind::Refresh)?,
        })
    }

    pub fn idle_ms(&self) -> i64 {
        self.idle_ms
    }

    /// Opens a session for `user_id` (inside the caller's transaction). 403 `max_sessions` when the
    /// user already has the maximum of live sessions.
    pub fn open(
        self,
        db: &Database,
        user_id: &str,
        tenant: &Tenant,
        cookie: bool,
    ) -> ApiResult<Issued> {
        db.execute(
            "INSERT INTO login_sessions
                 (id, user_id, org_id, created_at, last_seen_at, expires_at, created_ip, user_agent, cookie)
             SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?
              WHERE (SELECT count(*) FROM login_sessions
                      WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? AND last_seen_at > ?) < ?",
            &[
                Value::from(self.session_id.as_str()),
                Value::from(user_id),
                Value::from(tenant.org_id()),
                Value::from(self.now),
                Value::from(self.now),
                Value::from(self.now + SESSION_LIFETIME_MS),
                Value::from(self.client_ip.clone()),
                Value::from(self.user_agent.clone()),
                Value::from(cookie),
                Value::from(user_id),
                Value::from(self.now),
                Value::from(self.now - self.idle_ms),
                Value::from(self.max_sessions),
            ],
        )?;
        if db.changes()? == 0 {
            return Err(ApiError::forbidden(
                "max_sessions",
                format!(
                    "you already have {} active login sessions; log out of one first",
                    self.max_sessions
                ),
            ));
        }
        let session_id = self.session_id.clone();
        self.pair(db, &session_id)
    }

    /// Issues a new pair for an existing session (refresh).
    pub fn pair(self, db: &Database, session_id: &str) -> ApiResult<Issued> {
        db.execute(
            "INSERT INTO access_tokens (token_hash, session_id, expires_at) VALUES (?, ?, ?)",
            &[
                Value::from(self.access.1.as_str()),
                Value::from(session_id),
                Value::from(self.now + self.ttl_s * 1000),
            ],
        )?;
        db.execute(
            "INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES (?, ?, ?)",
            &[
                Value::from(self.refresh.1.as_str()),
                Value::from(session_id),
                Value::from(self.now + SESSION_LIFETIME_MS),
            ],
        )?;
        Ok(Issued {
            session_id: session_id.to_owned(),
            access: self.access.0,
            refresh: self.refresh.0,
            expires_in: self.ttl_s,
        })
    }
}

/// Revokes one session (logout, reuse, idle, admin action). Returns whether it was live.
pub fn revoke(db: &Database, session_id: &str, now: i64, reason: &str) -> ApiResult<bool> {
    db.execute(
        "UPDATE login_sessions SET revoked_at = ?, revoke_reason = ? WHERE id = ? AND revoked_at IS NULL",
        &[Value::from(now), Value::from(reason), Value::from(session_id)],
    )?;
    Ok(db.changes()? > 0)
}

/// Revokes every session and personal access token of a user (disable, delete).
pub fn revoke_all_for_user(db: &Database, user_id: &str, now: i64, reason: &str) -> ApiResult<()> {
    db.execute(
        "UPDATE login_sessions SET revoked_at = ?, revoke_reason = ? WHERE user_id = ? AND revoked_at IS NULL",
        &[Value::from(now), Value::from(reason), Value::from(user_id)],
    )?;
    db.execute(
        "UPDATE api_keys SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
        &[Value::from(now), Value::from(user_id)],
    )?;
    Ok(())
}
