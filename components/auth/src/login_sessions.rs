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
            client_ip: cx.client_ip.map(|ip| ip.to_string()),
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

/// What spending a refresh token came to.
pub enum Refreshed {
    /// A new pair for the session, and whether the session is a cookie session.
    Issued(Issued, bool),
    /// The token was already spent: its whole session has been revoked.
    Reused,
    /// No new pair: the error code and message to answer 401 with.
    Invalid(&'static str, &'static str),
}

/// Spends the refresh token with hash `hash` at `now` and issues a new pair for its session
/// (inside the caller's transaction). A spent token presented again revokes its whole session
/// ([`Refreshed::Reused`]); an expired or unknown token, an ended session or a disabled account
/// is [`Refreshed::Invalid`]; a session idle for longer than the idle timeout is revoked.
pub fn refresh(db: &Database, issuer: Issuer, hash: &TokenHash, now: i64) -> ApiResult<Refreshed> {
    let idle_ms = issuer.idle_ms();
    let spent = db.execute(
        "UPDATE refresh_tokens SET used_at = ?
          WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?
          RETURNING session_id",
        &[
            Value::from(now),
            Value::from(hash.as_str()),
            Value::from(now),
        ],
    )?;
    let Some(spent) = spent.first() else {
        let prior = db.execute(
            "SELECT session_id, used_at FROM refresh_tokens WHERE token_hash = ?",
            &[Value::from(hash.as_str())],
        )?;
        if let Some(prior) = prior.first() {
            if prior.opt_i64("used_at")?.is_some() {
                revoke(db, prior.str("session_id")?, now, "refresh_reuse")?;
                return Ok(Refreshed::Reused);
            }
        }
        return Ok(Refreshed::Invalid(
            "invalid_token",
            "the refresh token is expired or unknown",
        ));
    };
    let session_id = spent.str("session_id")?.to_owned();
    let sessions = db.execute(
        "SELECT s.last_seen_at, s.cookie, u.status FROM login_sessions s JOIN users u ON u.id = s.user_id
          WHERE s.id = ? AND s.revoked_at IS NULL AND s.expires_at > ?",
        &[Value::from(session_id.as_str()), Value::from(now)],
    )?;
    let Some(session) = sessions.first() else {
        return Ok(Refreshed::Invalid(
            "invalid_token",
            "the login session has ended",
        ));
    };
    if session.str("status")? != "active" {
        return Ok(Refreshed::Invalid(
            "user_disabled",
            "the account is disabled",
        ));
    }
    if now - session.i64("last_seen_at")? > idle_ms {
        revoke(db, &session_id, now, "idle")?;
        return Ok(Refreshed::Invalid(
            "session_expired",
            "the login session expired after inactivity",
        ));
    }
    let cookie = session.i64("cookie")? != 0;
    db.execute(
        "UPDATE login_sessions SET last_seen_at = ? WHERE id = ?",
        &[Value::from(now), Value::from(session_id.as_str())],
    )?;
    Ok(Refreshed::Issued(issuer.pair(db, &session_id)?, cookie))
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
    revoke_all_for_user_except(db, user_id, None, now, reason)
}

/// Like [`revoke_all_for_user`], but keeps login session `keep` (the one changing its own
/// password) alive; every other session and every personal access token ends.
pub fn revoke_all_for_user_except(
    db: &Database,
    user_id: &str,
    keep: Option<&str>,
    now: i64,
    reason: &str,
) -> ApiResult<()> {
    db.execute(
        "UPDATE login_sessions SET revoked_at = ?, revoke_reason = ?
          WHERE user_id = ? AND revoked_at IS NULL AND (? IS NULL OR id != ?)",
        &[
            Value::from(now),
            Value::from(reason),
            Value::from(user_id),
            Value::from(keep),
            Value::from(keep),
        ],
    )?;
    db.execute(
        "UPDATE api_keys SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
        &[Value::from(now), Value::from(user_id)],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use shared::testing::TestStores;
    use shared::Response;

    const PASSWORD: &str = "correct horse battery staple";

    fn json(r: &Response) -> serde_json::Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    fn setup(s: &TestStores) -> serde_json::Value {
        let body = serde_json::json!({"username": "admin", "email": "a@example.com", "password": PASSWORD, "org_name": "Acme"});
        let r = s.call(
            &crate::table(),
            "POST",
            "/api/v1/auth/setup",
            &[("content-type", "application/json")],
            body.to_string().as_bytes(),
        );
        assert_eq!(r.status, 201);
        json(&r)
    }

    fn me(s: &TestStores, token: &str) -> Response {
        let auth = format!("Bearer {token}");
        s.call(
            &crate::table(),
            "GET",
            "/api/v1/users/me",
            &[("authorization", &auth)],
            b"",
        )
    }

    #[test]
    fn idle_sessions_expire_with_the_injected_clock() {
        let s = TestStores::new();
        // Long-lived access tokens, so only the idle timeout (30 min default) is under test.
        s.variables.set("access_token_ttl_seconds", "86400");
        let tokens = setup(&s);
        let access = tokens["access_token"].as_str().unwrap();
        assert_eq!(me(&s, access).status, 200);
        // Activity keeps it alive: each request after the 60 s granularity refreshes last_seen.
        for _ in 0..3 {
            s.clock.advance(29 * 60 * 1000);
            assert_eq!(
                me(&s, access).status,
                200,
                "active sessions do not idle out"
            );
        }
        // Then 30 minutes without a request: the session is over, for both tokens.
        let refresh = tokens["refresh_token"].as_str().unwrap();
        s.clock.advance(30 * 60 * 1000 + 1);
        let body = serde_json::json!({ "refresh_token": refresh }).to_string();
        let r = s.call(
            &crate::table(),
            "POST",
            "/api/v1/auth/refresh",
            &[("content-type", "application/json")],
            body.as_bytes(),
        );
        assert_eq!(r.status, 401);
        assert_eq!(json(&r)["error"], "session_expired");
        assert_eq!(me(&s, access).status, 401);
    }

    #[test]
    fn access_tokens_expire_after_their_ttl() {
        let s = TestStores::new();
        let tokens = setup(&s);
        let access = tokens["access_token"].as_str().unwrap();
        s.clock.advance(14 * 60 * 1000);
        assert_eq!(me(&s, access).status, 200);
        s.clock.advance(60 * 1000);
        let r = me(&s, access);
        assert_eq!(r.status, 401);
        assert_eq!(json(&r)["error"], "invalid_token");
        // The refresh token still works (the session is not idle: last seen a minute ago).
        let body = serde_json::json!({ "refresh_token": tokens["refresh_token"] }).to_string();
        let r = s.call(
            &crate::table(),
            "POST",
            "/api/v1/auth/refresh",
            &[("content-type", "application/json")],
            body.as_bytes(),
        );
        assert_eq!(r.status, 200);
        assert_eq!(
            me(&s, json(&r)["access_token"].as_str().unwrap()).status,
            200
        );
    }

    #[test]
    fn idle_timeout_follows_the_variable() {
        let s = TestStores::new();
        s.variables.set("idle_timeout_seconds", "120");
        let tokens = setup(&s);
        let access = tokens["access_token"].as_str().unwrap();
        s.clock.advance(121 * 1000);
        let r = me(&s, access);
        assert_eq!(r.status, 401);
        assert_eq!(json(&r)["error"], "session_expired");
    }

    #[test]
    fn a_failing_audit_write_fails_the_request_and_undoes_its_writes() {
        let s = TestStores::new();
        let tokens = setup(&s);
        let bearer = format!("Bearer {}", tokens["access_token"].as_str().unwrap());
        let services = s.services();
        let db = services.db().unwrap();
        db.execute(
            "CREATE TRIGGER fail_audit BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'injected audit failure'); END",
            &[],
        )
        .unwrap();
        let body = serde_json::json!({"username": "bob", "email": "bob@example.com", "password": "another long password"});
        let r = s.call(
            &crate::table(),
            "POST",
            "/api/v1/users",
            &[
                ("authorization", &bearer),
                ("content-type", "application/json"),
            ],
            body.to_string().as_bytes(),
        );
        assert_eq!(r.status, 503);
        assert_eq!(json(&r)["error"], "service_unavailable");
        // Reads fail too when they cannot be audited.
        assert_eq!(me(&s, tokens["access_token"].as_str().unwrap()).status, 503);
        db.execute("DROP TRIGGER fail_audit", &[]).unwrap();
        let users = db
            .execute(
                "SELECT count(*) AS n FROM users WHERE username = 'bob'",
                &[],
            )
            .unwrap();
        assert_eq!(
            users.first().unwrap().i64("n").unwrap(),
            0,
            "the mutation was rolled back"
        );
        let r = s.call(
            &crate::table(),
            "POST",
            "/api/v1/users",
            &[
                ("authorization", &bearer),
                ("content-type", "application/json"),
            ],
            body.to_string().as_bytes(),
        );
        assert_eq!(r.status, 201);
        let audited = db.execute("SELECT count(*) AS n FROM audit_log WHERE action = 'POST /api/v1/users' AND status = 201", &[]).unwrap();
        assert_eq!(audited.first().unwrap().i64("n").unwrap(), 1);
    }
}
