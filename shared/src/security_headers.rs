//! Security headers on every response, errors included (pipeline stage 9).
//!
//! Strict (production): HSTS with preload, a CSP with a fresh nonce per response and
//! `frame-ancestors 'none'`, `X-Frame-Options: DENY`, `nosniff`, a strict referrer policy, a
//! Permissions-Policy that turns off powerful features, `X-Permitted-Cross-Domain-Policies: none`,
//! `Cache-Control: no-store`. Relaxed (`security_headers = "relaxed"`, local development over plain
//! HTTP): no HSTS and a CSP that also allows same-origin scripts and styles. No server banner is
//! ever sent.

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::SecurityMode;

const PERMISSIONS_POLICY: &str = "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), payment=(), usb=(), interest-cohort=()";

/// Adds the headers for `mode`; `nonce` is fresh per response (base64url, ≥ 128 bits).
pub fn apply(headers: &mut HeaderMap, mode: SecurityMode, nonce: &str) {
    let csp = match mode {
        SecurityMode::Strict => format!(
            "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        ),
        SecurityMode::Relaxed => format!(
            "default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self' ws: wss:; base-uri 'self'; frame-ancestors 'none'"
        ),
    };
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    if mode == SecurityMode::Strict {
        set(
            "strict-transport-security",
            "max-age=63072000; includeSubDomains; preload",
        );
    }
    set("content-security-policy", &csp);
    set("x-frame-options", "DENY");
    set("x-content-type-options", "nosniff");
    set("referrer-policy", "strict-origin-when-cross-origin");
    set("permissions-policy", PERMISSIONS_POLICY);
    set("x-permitted-cross-domain-policies", "none");
    set("cross-origin-opener-policy", "same-origin");
    set("cache-control", "no-store");
    headers.remove("server");
    headers.remove("x-powered-by");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_set() {
        let mut h = HeaderMap::new();
        h.insert("server", HeaderValue::from_static("x"));
        apply(&mut h, SecurityMode::Strict, "abc");
        assert!(h["strict-transport-security"]
            .to_str()
            .unwrap()
            .contains("preload"));
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("'nonce-abc'"));
        assert!(csp.contains("frame-ancestors 'none'"));
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-permitted-cross-domain-policies"], "none");
        assert_eq!(h["cache-control"], "no-store");
        assert!(h.contains_key("referrer-policy"));
        assert!(h.contains_key("permissions-policy"));
        assert!(!h.contains_key("server"));
    }

    #[test]
    fn relaxed_has_no_hsts_but_keeps_the_rest() {
        let mut h = HeaderMap::new();
        apply(&mut h, SecurityMode::Relaxed, "n");
        assert!(!h.contains_key("strict-transport-security"));
        assert!(h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'"));
        assert_eq!(h["x-frame-options"], "DENY");
    }
}
