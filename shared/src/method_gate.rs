//! Method gate (pipeline stage 2): only GET, HEAD, POST, PUT, PATCH, DELETE and OPTIONS reach the
//! router. TRACE, TRACK, CONNECT and any other token get 405 with `Allow`.

use http::Method;

use crate::error::ApiError;

pub const ALLOWED: [Method; 7] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
];

pub const ALLOW_HEADER: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// `Ok` with the method when it is one we serve.
pub fn check(method: Option<&Method>) -> Result<Method, ApiError> {
    match method {
        Some(m) if ALLOWED.contains(m) => Ok(m.clone()),
        _ => Err(ApiError::method_not_allowed(ALLOW_HEADER)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_track_connect_and_unknown_are_refused() {
        for m in ["TRACE", "TRACK", "CONNECT", "PROPFIND", "BREW"] {
            let method = Method::from_bytes(m.as_bytes()).unwrap();
            let err = check(Some(&method)).unwrap_err();
            assert_eq!(err.status, http::StatusCode::METHOD_NOT_ALLOWED, "{m}");
            assert_eq!(err.headers[0].1, ALLOW_HEADER);
        }
        assert!(check(None).is_err());
    }

    #[test]
    fn the_seven_pass() {
        for m in ALLOWED {
            assert_eq!(check(Some(&m)).unwrap(), m);
        }
    }
}
