//! CSRF protection for cookie sessions (pipeline stage 8; seed 000's double-submit cookie).
//!
//! `GET /api/v1/auth/csrf` issues a random token in the `X-CSRF-Token` header and the `csrf_token`
//! cookie, and stores its SHA-256 with a 24 h expiry in SQLite, so it works across instances (the
//! seed kept them in process memory). Every unsafe method of a request authenticated by the
//! session cookie must send the header equal to the cookie (compared in constant time) and the
//! token must be one we issued and not expired. Bearer-authenticated requests are exempt: a
//! cross-site page cannot make the browser attach an `Authorization` header.

use http::Method;

use crate::auth::{cookies, Principal};
use crate::error::ApiError;
use crate::http::RequestHead;
use crate::secrets::{constant_time_eq, new_token, Secret, TokenHash, TokenKind};
use crate::services::Services;
use crate::store::Value;

pub const HEADER: &str = "x-csrf-token";
pub const TTL_MS: i64 = 24 * 60 * 60 * 1000;

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Checks a request; a no-op unless it is cookie-authenticated and unsafe.
pub fn check(
    services: &Services,
    head: &RequestHead,
    method: &Method,
    principal: &Principal,
) -> Result<(), ApiError> {
    if !principal.via_cookie() || is_safe(method) {
        return Ok(());
    }
    let header = head.header(HEADER);
    let cookie = cookies::get(&head.headers, cookies::CSRF);
    let (Some(header), Some(cookie)) = (header, cookie) else {
        return Err(ApiError::forbidden(
            "csrf_missing",
            "X-CSRF-Token header and csrf_token cookie are required",
        ));
    };
    if !constant_time_eq(header.as_bytes(), cookie.as_bytes()) {
        return Err(ApiError::forbidden(
            "csrf_mismatch",
            "X-CSRF-Token does not match the csrf_token cookie",
        ));
    }
    let rows = services.db()?.execute(
        "SELECT 1 AS ok FROM csrf_tokens WHERE token_hash = ? AND expires_at > ?",
        &[
            Value::from(TokenHash::of(header).as_str()),
            Value::from(services.now_ms()),
        ],
    )?;
    if rows.is_empty() {
        return Err(ApiError::forbidden(
            "csrf_expired",
            "the CSRF token is unknown or expired; fetch a new one",
        ));
    }
    Ok(())
}

/// Issues a token: stores its hash and returns it with its lifetime in seconds.
pub fn issue(services: &Services) -> Result<(Secret, i64), ApiError> {
    let (secret, hash) = new_token(services.random.as_ref(), TokenKind::Csrf)?;
    let now = services.now_ms();
    services.db()?.execute(
        "INSERT INTO csrf_tokens (token_hash, expires_at) VALUES (?, ?)",
        &[Value::from(hash.as_str()), Value::from(now + TTL_MS)],
    )?;
    Ok((secret, TTL_MS / 1000))
}
