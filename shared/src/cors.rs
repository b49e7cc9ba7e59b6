//! CORS from the `allowed_origins` variable (pipeline stage 6).
//!
//! Origins are compared exactly (scheme, host, port). A listed origin is echoed with
//! `Access-Control-Allow-Credentials: true` and `Vary: Origin`; `*` in the list allows every
//! origin but then never with credentials. Preflights (`OPTIONS` with
//! `Access-Control-Request-Method`) are answered here: 204 when allowed, 403 `cors_denied` when not.
//! A simple request from an origin not listed is served without CORS headers (the browser then
//! withholds the answer from the page).

use http::{HeaderMap, HeaderValue, Method, StatusCode};

use crate::error::ApiError;
use crate::http::Response;

pub const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";
/// Request headers a browser may send cross-origin.
pub const ALLOWED_HEADERS: [&str; 7] = [
    "authorization",
    "content-type",
    "x-request-id",
    "x-csrf-token",
    "x-agent-api-key",
    "if-none-match",
    "accept-encoding",
];
pub const EXPOSED_HEADERS: &str = "X-Request-ID, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, X-CSRF-Token, X-License-Warning, X-Next-After-Seq";
pub const MAX_AGE_SECONDS: &str = "600";

/// The parsed `allowed_origins` setting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsPolicy {
    any: bool,
    origins: Vec<String>,
}

/// What the policy says about one request's `Origin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginDecision {
    /// No `Origin` header: not a CORS request.
    NotCors,
    /// Allowed; echo this value, with credentials when `credentials`.
    Allowed {
        value: String,
        credentials: bool,
    },
    Denied,
}

impl CorsPolicy {
    /// Parses a comma-separated list. Entries that are not a bare `scheme://host[:port]` origin
    /// are ignored (fail closed).
    pub fn parse(setting: &str) -> Self {
        let mut policy = Self::default();
        for entry in setting.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                policy.any = true;
            } else if let Some(origin) = normalise_origin(entry) {
                policy.origins.push(origin);
            }
        }
        policy
    }

    pub fn decide(&self, origin: Option<&str>) -> OriginDecision {
        let Some(origin) = origin else {
            return OriginDecision::NotCors;
        };
        match normalise_origin(origin) {
            Some(o) if self.origins.contains(&o) => OriginDecision::Allowed {
                value: origin.to_owned(),
                credentials: true,
            },
            Some(_) if self.any => OriginDecision::Allowed {
                value: "*".to_owned(),
                credentials: false,
            },
            _ => OriginDecision::Denied,
        }
    }
}

/// Lowercases scheme and host; keeps an explicit port; refuses paths, userinfo and `null`.
fn normalise_origin(origin: &str) -> Option<String> {
    let (scheme, rest) = origin.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if !(scheme == "http" || scheme == "https") || rest.is_empty() {
        return None;
    }
    if rest.contains(['/', '@', '?', '#', ' ']) {
        return None;
    }
    Some(format!("{scheme}://{}", rest.to_ascii_lowercase()))
}

/// True for a preflight request.
pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS && headers.contains_key("access-control-request-method")
}

/// Answers a preflight: 204 with the allow headers, or 403.
pub fn preflight(policy: &CorsPolicy, headers: &HeaderMap) -> Result<Response, ApiError> {
    let origin = headers.get("origin").and_then(|v| v.to_str().ok());
    let OriginDecision::Allowed { value, credentials } = policy.decide(origin) else {
        return Err(ApiError::forbidden("cors_denied", "origin not allowed"));
    };
    let requested_method = headers
        .get("access-control-request-method")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !crate::method_gate::ALLOWED
        .iter()
        .any(|m| m.as_str() == requested_method)
    {
        return Err(ApiError::forbidden(
            "cors_denied",
            "method not allowed for cross-origin requests",
        ));
    }
    let requested_headers = headers
        .get("access-control-request-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    for name in requested_headers
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
    {
        if !ALLOWED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(ApiError::forbidden(
                "cors_denied",
                format!("header `{name}` not allowed for cross-origin requests"),
            ));
        }
    }
    let mut response = Response::new(StatusCode::NO_CONTENT);
    allow_origin(&mut response.headers, &value, credentials);
    let h = &mut response.headers;
    h.insert(
        "access-control-allow-methods",
        HeaderValue::from_static(ALLOWED_METHODS),
    );
    if let Ok(v) = HeaderValue::from_str(&ALLOWED_HEADERS.join(", ")) {
        h.insert("access-control-allow-headers", v);
    }
    h.insert(
        "access-control-max-age",
        HeaderValue::from_static(MAX_AGE_SECONDS),
    );
    Ok(response)
}

/// Adds the CORS headers of an allowed origin to an actual response.
pub fn decorate(
    policy: &CorsPolicy,
    request_headers: &HeaderMap,
    response_headers: &mut HeaderMap,
) {
    let origin = request_headers.get("origin").and_then(|v| v.to_str().ok());
    if let OriginDecision::Allowed { value, credentials } = policy.decide(origin) {
        allow_origin(response_headers, &value, credentials);
        response_headers.insert(
            "access-control-expose-headers",
            HeaderValue::from_static(EXPOSED_HEADERS),
        );
    }
}

fn allow_origin(headers: &mut HeaderMap, value: &str, credentials: bool) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert("access-control-allow-origin", v);
    }
    if credentials {
        headers.insert(
            "access-control-allow-credentials",
            HeaderValue::from_static("true"),
        );
    }
    headers.append(http::header::VARY, HeaderValue::from_static("Origin"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn exact_origins_with_credentials() {
        let p = CorsPolicy::parse("https://app.example.com, http://localhost:5173");
        assert_eq!(
            p.decide(Some("https://app.example.com")),
            OriginDecision::Allowed {
                value: "https://app.example.com".into(),
                credentials: true
            }
        );
        assert_eq!(
            p.decide(Some("https://APP.example.com")),
            OriginDecision::Allowed {
                value: "https://APP.example.com".into(),
                credentials: true
            }
        );
        assert_eq!(
            p.decide(Some("https://evil.example.com")),
            OriginDecision::Denied
        );
        assert_eq!(
            p.decide(Some("http://localhost:5174")),
            OriginDecision::Denied
        );
        assert_eq!(p.decide(Some("null")), OriginDecision::Denied);
        assert_eq!(p.decide(None), OriginDecision::NotCors);
    }

    #[test]
    fn wildcard_never_with_credentials() {
        let p = CorsPolicy::parse("*");
        assert_eq!(
            p.decide(Some("https://x.example")),
            OriginDecision::Allowed {
                value: "*".into(),
                credentials: false
            }
        );
        let mut out = HeaderMap::new();
        decorate(&p, &req(&[("origin", "https://x.example")]), &mut out);
        assert_eq!(out["access-control-allow-origin"], "*");
        assert!(!out.contains_key("access-control-allow-credentials"));
    }

    #[test]
    fn empty_or_malformed_setting_allows_nothing() {
        for s in [
            "",
            "example.com",
            "https://a.example/path",
            "ftp://x",
            "https://u@x",
        ] {
            assert_eq!(
                CorsPolicy::parse(s).decide(Some("https://example.com")),
                OriginDecision::Denied,
                "{s}"
            );
        }
    }

    #[test]
    fn preflight_allowed_and_denied() {
        let p = CorsPolicy::parse("https://app.example.com");
        let ok = preflight(
            &p,
            &req(&[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "POST"),
                (
                    "access-control-request-headers",
                    "Content-Type, Authorization",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(ok.status, StatusCode::NO_CONTENT);
        assert_eq!(
            ok.headers["access-control-allow-origin"],
            "https://app.example.com"
        );
        assert_eq!(ok.headers["access-control-allow-credentials"], "true");
        assert!(preflight(
            &p,
            &req(&[
                ("origin", "https://evil.example"),
                ("access-control-request-method", "POST")
            ])
        )
        .is_err());
        assert!(preflight(
            &p,
            &req(&[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "TRACE")
            ])
        )
        .is_err());
        assert!(preflight(
            &p,
            &req(&[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "GET"),
                ("access-control-request-headers", "x-evil"),
            ])
        )
        .is_err());
    }
}
