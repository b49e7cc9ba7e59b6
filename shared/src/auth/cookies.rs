//! Cookie names and `Set-Cookie` values. Session cookies are `HttpOnly; Secure; SameSite=Strict`.

use http::HeaderMap;

/// Carries the access token of a cookie login session.
pub const SESSION: &str = "ss_session";
/// Carries the refresh token, sent only to the refresh route.
pub const REFRESH: &str = "ss_refresh";
/// The CSRF double-submit cookie.
pub const CSRF: &str = "csrf_token";

pub const REFRESH_PATH: &str = "/api/v1/auth/refresh";

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
pub fn set(name: &str, value: &str, path: &str, max_age_seconds: i64) -> String {
    format!(
        "{name}={value}; Path={path}; Max-Age={max_age_seconds}; HttpOnly; Secure; SameSite=Strict"
    )
}

/// `Set-Cookie` that deletes a cookie.
pub fn clear(name: &str, path: &str) -> String {
    format!("{name}=; Path={path}; Max-Age=0; HttpOnly; Secure; SameSite=Strict")
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
            HeaderValue::from_static("a=1; ss_session=tok; b=2"),
        );
        h.append(
            http::header::COOKIE,
            HeaderValue::from_static("csrf_token=c"),
        );
        assert_eq!(get(&h, SESSION), Some("tok"));
        assert_eq!(get(&h, CSRF), Some("c"));
        assert_eq!(get(&h, "missing"), None);
    }

    #[test]
    fn set_cookie_is_hardened() {
        let c = set(SESSION, "v", "/", 900);
        for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Max-Age=900"] {
            assert!(c.contains(attr), "{c}");
        }
    }
}
