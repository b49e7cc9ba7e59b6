//! `GET /api/docs`: the API reference page (the `docs` component, vendored Swagger UI). The
//! browser side (it renders, nothing breaks the CSP) is `scripts/browser-test`; this is the HTTP
//! side: the files, the strict headers, the envelope on errors, gzip negotiation.

use std::io::Read;

use crate::helpers::{Body, TestApp};

const GZIP: &[(&str, &str)] = &[("Accept-Encoding", "gzip, deflate, br")];

#[test]
fn api_reference_page_loads_only_same_origin_files_under_a_strict_csp() {
    let app = TestApp::spawn();
    for path in ["/api/docs", "/api/docs/"] {
        let page = app.request("GET", path, GZIP, Body::Empty);
        assert_eq!(page.status, 200, "{path}");
        assert!(page
            .header("content-type")
            .unwrap()
            .starts_with("text/html"));
        let csp = page.header("content-security-policy").unwrap();
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(csp.contains("connect-src 'self'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-"), "no unsafe-inline/eval: {csp}");
        assert!(page.header("strict-transport-security").is_some());
        assert_eq!(page.header("x-frame-options"), Some("DENY"));
        assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
        assert!(page.header("x-request-id").is_some());
        let html = String::from_utf8(page.body.clone()).unwrap();
        assert!(!html.contains("<script>"), "no inline script");
        assert!(!html.contains("<style"), "no inline style");
        // Every file the page links is served, from this origin, with its type.
        let links: Vec<&str> = html
            .split(['"'])
            .filter(|s| s.starts_with("/api/docs/"))
            .collect();
        assert_eq!(links.len(), 5, "{links:?}");
        for link in links {
            let r = app.request("GET", link, GZIP, Body::Empty);
            assert_eq!(r.status, 200, "{link}");
            let ty = r.header("content-type").unwrap();
            let expected = match link.split('?').next().unwrap().rsplit('.').next() {
                Some("js") => "text/javascript",
                Some("css") => "text/css",
                Some("png") => "image/png",
                other => panic!("unexpected link {link} ({other:?})"),
            };
            assert!(ty.starts_with(expected), "{link}: {ty}");
        }
    }
    // The document it renders is still the audit component's.
    assert_eq!(app.get("/api/openapi.json").json()["openapi"], "3.1.0");
}

#[test]
fn api_reference_bundle_is_gzip_for_browsers_and_plain_for_other_clients() {
    let app = TestApp::spawn();
    let gz = app.request(
        "GET",
        "/api/docs/swagger-ui-bundle.js?v=5.35.0",
        GZIP,
        Body::Empty,
    );
    assert_eq!(gz.status, 200);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(gz.header("vary"), Some("Accept-Encoding"));
    assert!(gz.header("cache-control").unwrap().contains("immutable"));
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(&gz.body[..])
        .read_to_end(&mut decoded)
        .unwrap();
    let plain = app.get("/api/docs/swagger-ui-bundle.js?v=5.35.0");
    assert_eq!(plain.status, 200);
    assert!(plain.header("content-encoding").is_none());
    assert_eq!(plain.body, decoded);
    assert!(String::from_utf8_lossy(&plain.body).contains("SwaggerUIBundle"));
    // The license travels with the code.
    let license = app.get("/api/docs/LICENSE");
    assert_eq!(license.status, 200);
    assert!(String::from_utf8_lossy(&license.body).contains("Apache License"));
}

#[test]
fn api_reference_answers_only_get_and_head_with_the_error_envelope() {
    let app = TestApp::spawn();
    let head = app.request("HEAD", "/api/docs", &[], Body::Empty);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let r = app.request(
            method,
            "/api/docs",
            &[("X-Request-ID", "docs-405")],
            Body::Bytes(b"{}".to_vec()),
        );
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
        assert_eq!(r.header("x-request-id"), Some("docs-405"));
        let v = r.json();
        assert_eq!(v["error"], "method_not_allowed");
        assert_eq!(v["request_id"], "docs-405");
        assert!(v["message"].is_string());
    }
    for path in [
        "/api/docs/nope.js",
        "/api/docs/swagger-ui-bundle.js.gz",
        "/api/docs/%2e%2e/openapi.json",
    ] {
        let r = app.get(path);
        assert_eq!(r.status, 404, "{path}");
        let v = r.json();
        assert_eq!(v["error"], "not_found");
        assert_eq!(v["request_id"], r.header("x-request-id").unwrap());
        assert!(r.header("content-security-policy").is_some());
    }
}
