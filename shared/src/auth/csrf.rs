//! CSRF protection for cookie sessions (pipeline stage 9; seed 000's double-submit cookie, bound
//! to the login session).
//!
//! A login session's CSRF token is derived, never stored:
//! `base64url(HMAC-SHA256(key, "streamspace-csrf-v1" ‖ 0x00 ‖ session id))`. The cookie login
//! sets it in the `__Host-csrf_token` cookie (and answers it in the body); `GET
//! /api/v1/auth/csrf` answers it again for the caller's own login session. Nothing is written, so
//! anonymous callers cannot fill a table, and it works across instances with no shared state. It
//! lives exactly as long as its session: logout, revocation or expiry of the session kills it.
//!
//! Every unsafe method of a request authenticated by the session cookie must send
//! `X-CSRF-Token` equal to the cookie, and both must be the token of *that* session (compared in
//! constant time): a token planted from elsewhere, or one of another session, is refused.
//! Bearer-authenticated requests are exempt: a cross-site page cannot make the browser attach an
//! `Authorization` header.
//!
//! The key is derived from the secret `audit_key` (HMAC with its own label, so the two uses never
//! share a value). Every component checks CSRF and every one already sees `audit_key`, so one
//! secret keys both and no component can disagree about a token. Without `audit_key` the key is a
//! fixed public one: the token is then only as secret as the session id, which is one more
//! reason production sets `audit_key`. A variables store that cannot answer is a 503 (fail
//! closed), never a fallback to a weaker key.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use http::Method;
use sha2::Sha256;

use crate::auth::{cookies, Principal};
use crate::error::ApiError;
use crate::http::RequestHead;
use crate::secrets::constant_time_eq;
use crate::services::Services;

pub const HEADER: &str = "x-csrf-token";

/// The secret variable the CSRF key is derived from.
pub const KEY_VARIABLE: &str = "audit_key";

const LABEL: &[u8] = b"streamspace-csrf-v1";
const UNKEYED: &[u8] = b"streamspace-csrf-unkeyed";

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn mac(key: &[u8], parts: &[&[u8]]) -> Result<Vec<u8>, ApiError> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .map_err(|_| ApiError::internal("HMAC key rejected"))?;
    for part in parts {
        mac.update(part);
    }
    Ok(mac.finalize().into_bytes().to_vec())
}

/// The HMAC key: derived from `audit_key`, else the public fallback. An unreadable variable is
/// an error (503), not a fallback.
fn key(services: &Services) -> Result<Vec<u8>, ApiError> {
    match services.settings().raw(KEY_VARIABLE)? {
        Some(secret) => mac(secret.as_bytes(), &[b"streamspace-csrf-key-v1"]),
        None => Ok(UNKEYED.to_vec()),
    }
}

/// The CSRF token of login session `session_id`.
pub fn token_for(services: &Services, session_id: &str) -> Result<String, ApiError> {
    let key = key(services)?;
    let tag = mac(&key, &[LABEL, &[0], session_id.as_bytes()])?;
    Ok(URL_SAFE_NO_PAD.encode(tag))
}

/// The CSRF token of the caller's login session (403 `login_session_required` for any other
/// credential: there is no session to bind it to).
pub fn issue(services: &Services, principal: &Principal) -> Result<String, ApiError> {
    token_for(services, principal.require_login_session()?)
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
            "the X-CSRF-Token header and the __Host-csrf_token cookie are required",
        ));
    };
    if !constant_time_eq(header.as_bytes(), cookie.as_bytes()) {
        return Err(ApiError::forbidden(
            "csrf_mismatch",
            "X-CSRF-Token does not match the __Host-csrf_token cookie",
        ));
    }
    let session_id = principal.require_login_session()?;
    let expected = token_for(services, session_id)?;
    if !constant_time_eq(header.as_bytes(), expected.as_bytes()) {
        return Err(ApiError::forbidden(
            "csrf_invalid",
            "the CSRF token is not this login session's; fetch it again from GET /api/v1/auth/csrf",
        ));
    }
    Ok(())
}

#[cfg(all(test, feature = "native"))]
mod tests {
    use super::*;
    use crate::testing::TestStores;

    #[test]
    fn tokens_are_bound_to_the_session_and_the_key() {
        let s = TestStores::new();
        let services = s.services();
        let a = token_for(&services, "session-a").unwrap();
        assert_eq!(a, token_for(&services, "session-a").unwrap(), "stable");
        assert_ne!(a, token_for(&services, "session-b").unwrap());
        // Variables are read once per request: a changed key is seen by the next request.
        s.variables.set("audit_key", "audit secret");
        let keyed = token_for(&s.services(), "session-a").unwrap();
        assert_ne!(a, keyed);
        s.variables.set("audit_key", "another secret");
        assert_ne!(keyed, token_for(&s.services(), "session-a").unwrap());
        assert_eq!(keyed.len(), 43, "256 bits, base64url without padding");
    }

    #[test]
    fn issuing_writes_nothing() {
        let s = TestStores::new();
        let services = s.services();
        let before = s.sql.opens();
        token_for(&services, "session-a").unwrap();
        assert_eq!(s.sql.opens(), before, "no database connection");
    }

    struct Unreadable;

    impl crate::store::Variables for Unreadable {
        fn get(&self, _name: &str) -> Result<Option<String>, crate::store::StoreError> {
            Err(crate::store::StoreError::new(
                crate::store::StoreKind::Variables,
                "host error",
            ))
        }
    }

    #[test]
    fn an_unreadable_key_fails_closed() {
        let s = TestStores::new();
        let mut services = s.services();
        services.variables = Box::new(Unreadable);
        let err = token_for(&services, "session-a").unwrap_err();
        assert_eq!(err.status, http::StatusCode::SERVICE_UNAVAILABLE);
    }
}
