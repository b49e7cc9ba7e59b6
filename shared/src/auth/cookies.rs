//! Cookie names and `Set-Cookie` values. Session cookies are `HttpOnly; Secure; SameSite=Strict`.
//!
//! Every cookie carries the `__Host-` prefix: browsers accept such a cookie only when it is
//! `Secure`, has `Path=/` and no `Domain`, so a sibling subdomain (or a plain-HTTP answer) cannot
//! plant or overwrite one (cookie tossing: fixing a victim's session, or its CSRF token). The
//! refresh cookie therefore also has `Path=/` — a path was never an isolation boundary between
//! pages of one origin (RFC 6265 §8.5), and nothing we run logs cookies.

use http::HeaderMap;

/// Carries the access token of a cookie login session.
pub const SESSION: &str = "__Host-ss_session";
/// Carries the refresh token (read only by the refresh route).
pub const REFRESH: &str = "__Host-ss_refresh";
/// The CSRF double-submit cookie (readable by the page's script).
pub const CSRF: &str = "__Host-csrf_token";

/// The only path a `__Host-` cookie may have.
pub const PATH: &str = "/";

/// The value of cookie `name` in the request, if any.
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// `Set-Cookie` for an HttpOnly secure cookie living `max_age_seconds`.
pub fn set(name: &str, value: &str, max_age_seconds: i64) -> String {
    format!(
        "{name}={value}; Path={PATH}; Max-Age={max_age_seconds}; HttpOnly; Secure; SameSite=Strict"
    )
}

/// `Set-Cookie` for the CSRF cookie: like [`set`] but readable by the page's script, which
/// echoes it in `X-CSRF-Token` (the double-submit pattern; a cross-site page can neither read it
/// nor set the header).
pub fn set_readable(name: &str, value: &str, max_age_seconds: i64) -> String {
    format!("{name}={value}; Path={PATH}; Max-Age={max_age_seconds}; Secure; SameSite=Strict")
}

/// `Set-Cookie` that deletes a cookie.
pub fn clear(name: &str) -> String {
    format!("{name}=; Path={PATH}; Max-Age=0; HttpOnly; Secure; SameSite=Strict")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn reads_one_cookie_among_many() {
        let mut h = HeaderMap::new();
        h.append(
            http::header::COOKIE,
            HeaderValue::from_static("a=1; __Host-ss_session=tok; b=2; ss_session=unprefixed"),
        );
        h.append(
            http::header::COOKIE,
            HeaderValue::from_static("__Host-csrf_token=c"),
        );
        assert_eq!(get(&h, SESSION), Some("tok"));
        assert_eq!(get(&h, CSRF), Some("c"));
        assert_eq!(get(&h, "missing"), None);
    }

    #[test]
    fn set_cookie_is_hardened() {
        let c = set(SESSION, "v", 900);
        for attr in [
            "HttpOnly",
            "Secure",
            "SameSite=Strict",
            "Max-Age=900",
            "Path=/;",
        ] {
            assert!(c.contains(attr), "{c}");
        }
        // `__Host-` cookies: Secure, Path=/, no Domain, or the browser drops them.
        for c in [
            set(SESSION, "v", 1),
            set(REFRESH, "v", 1),
            set_readable(CSRF, "v", 1),
            clear(SESSION),
        ] {
            assert!(c.starts_with("__Host-"), "{c}");
            assert!(c.contains("; Secure") && c.contains("; Path=/;"), "{c}");
            assert!(!c.to_ascii_lowercase().contains("domain="), "{c}");
        }
    }
}
