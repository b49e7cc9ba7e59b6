//! The shared pipeline, seen from outside: headers, request ids, method gate, body limits, CORS,
//! gzip, health, version, OpenAPI.

use std::io::Read;

use crate::helpers::{Body, Resp, TestApp};

const SECURITY_HEADERS: [&str; 8] = [
    "content-security-policy",
    "x-frame-options",
    "x-content-type-options",
    "referrer-policy",
    "permissions-policy",
    "x-permitted-cross-domain-policies",
    "cache-control",
    "x-request-id",
];

fn assert_security_headers(r: &Resp, what: &str) {
    for name in SECURITY_HEADERS {
        assert!(
            r.header(name).is_some(),
            "{what}: missing {name} in {:?}",
            r.headers
        );
    }
    assert_eq!(r.header("x-frame-options"), Some("DENY"), "{what}");
    assert_eq!(
        r.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(r.header("cache-control"), Some("no-store"), "{what}");
    assert_eq!(
        r.header("x-permitted-cross-domain-policies"),
        Some("none"),
        "{what}"
    );
    let csp = r.header("content-security-policy").unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(csp.contains("'nonce-"), "{what}: {csp}");
    assert!(
        r.header("server")
            .is_none_or(|s| !s.contains("streamspace")),
        "{what}"
    );
}

#[test]
fn security_headers_on_200_404_405_413() {
    let app = TestApp::spawn();
    let cases = [
        ("200", app.get("/health"), 200),
        ("404", app.get("/api/v1/auth/no-such-route"), 404),
        (
            "405",
            app.request("TRACE", "/health", &[], Body::Empty),
            405,
        ),
        (
            "413",
            app.request(
                "POST",
                "/api/v1/sessions/x",
                &[("content-type", "application/json")],
                Body::Declared(6 * 1024 * 1024),
            ),
            413,
        ),
    ];
    for (what, r, status) in cases {
        assert_eq!(
            r.status,
            status,
            "{what}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_security_headers(&r, what);
        let hsts = r.header("strict-transport-security").unwrap_or_default();
        assert!(
            hsts.contains("preload") && hsts.contains("max-age="),
            "{what}: HSTS {hsts}"
        );
    }
}

#[test]
fn security_headers_and_envelope_on_503() {
    let Some(app) = TestApp::spawn_for_faults(&[]) else {
        return;
    };
    app.faults().unwrap().set_sqlite_unavailable(true);
    let r = app.get("/health");
    assert_eq!(r.status, 503);
    assert_security_headers(&r, "503");
    assert_eq!(r.error_code(), "service_unavailable");
}

#[test]
fn csp_nonce_is_fresh_per_response() {
    let app = TestApp::spawn();
    let a = app.get("/version");
    let b = app.get("/version");
    assert_ne!(
        a.header("content-security-policy"),
        b.header("content-security-policy")
    );
}

#[test]
fn relaxed_security_headers_by_variable() {
    let Some(app) = TestApp::spawn_with(&[("security_headers", "relaxed")]) else {
        return;
    };
    let r = app.get("/version");
    assert_eq!(r.status, 200);
    assert!(r.header("strict-transport-security").is_none());
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
}

#[test]
fn every_component_answers_unknown_paths_with_the_envelope() {
    let app = TestApp::spawn();
    for path in [
        "/api/v1/auth/nope",
        "/api/v1/sessions/nope/deeper",
        "/api/v1/templates/nope/deeper/still",
        "/api/v1/webhooks/nope",
        "/api/v1/admin/audit/nope/deeper",
    ] {
        let r = app.get(path);
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.header("content-type"), Some("application/json"), "{path}");
        assert_eq!(r.error_code(), "not_found", "{path}");
        assert_security_headers(&r, path);
    }
}

#[test]
fn request_id_is_echoed_when_valid_and_replaced_when_not() {
    let app = TestApp::spawn();
    let r = app.request(
        "GET",
        "/version",
        &[("X-Request-ID", "trace-abc_123.4:5")],
        Body::Empty,
    );
    assert_eq!(r.header("x-request-id"), Some("trace-abc_123.4:5"));

    let long = "a".repeat(200);
    for bad in ["has space", "<script>alert(1)</script>", long.as_str()] {
        let r = app.request(
            "GET",
            "/api/v1/auth/nope",
            &[("X-Request-ID", bad)],
            Body::Empty,
        );
        let id = r.header("x-request-id").unwrap().to_owned();
        assert_ne!(id, bad);
        assert_eq!(id.len(), 36, "a UUIDv4 replaces {bad:?}: {id}");
        assert_eq!(&id[14..15], "4");
        assert_eq!(r.error_code(), "not_found");
    }
    let minted = app.get("/version");
    assert_eq!(minted.header("x-request-id").unwrap().len(), 36);
}

#[test]
fn trace_and_unknown_methods_get_405_with_allow() {
    let app = TestApp::spawn();
    for method in ["TRACE", "TRACK", "PROPFIND"] {
        let r = app.request(method, "/health", &[], Body::Empty);
        assert_eq!(r.status, 405, "{method}");
        let allow = r.header("allow").unwrap();
        assert!(
            allow.contains("GET") && !allow.contains("TRACE"),
            "{method}: {allow}"
        );
        assert_eq!(r.error_code(), "method_not_allowed");
    }
    // A known path with a method it does not take lists what it does take.
    let r = app.request("DELETE", "/version", &[], Body::Empty);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
}

#[test]
fn body_limits_by_content_length_and_by_actual_size() {
    let app = TestApp::spawn();
    // Declared: refused before a byte is read (5 MB JSON, 10 MB otherwise). A server that answers
    // before reading the body closes the connection with unread bytes in it; on a loaded machine
    // the answer's body was seen lost to that reset once (a real Spin, Redis run). The status
    // always arrived; the envelope is checked on an answer that kept its body.
    let r = (0..3)
        .map(|_| {
            app.request(
                "POST",
                "/api/v1/sessions",
                &[("content-type", "application/json")],
                Body::Declared(5 * 1024 * 1024 + 1),
            )
        })
        .inspect(|r| assert_eq!(r.status, 413))
        .find(|r| !r.body.is_empty())
        .expect("a 413 with its envelope");
    assert_eq!(r.status, 413);
    assert_eq!(r.error_code(), "payload_too_large");
    let r = app.request(
        "POST",
        "/api/v1/sessions",
        &[("content-type", "application/octet-stream")],
        Body::Declared(10 * 1024 * 1024 + 1),
    );
    assert_eq!(r.status, 413);
    // Under the cap, the request goes on to routing.
    let r = app.request(
        "POST",
        "/api/v1/sessions/nope/deeper/still",
        &[("content-type", "application/json")],
        Body::Declared(0),
    );
    assert_eq!(r.status, 404);
    // Actual: chunked, no Content-Length, over the JSON cap.
    let big = vec![b' '; 5 * 1024 * 1024 + 10];
    let r = app.request(
        "POST",
        "/api/v1/sessions",
        &[("content-type", "application/json")],
        Body::Chunked(big),
    );
    assert_eq!(r.status, 413);
    assert_eq!(r.error_code(), "payload_too_large");
}

#[test]
fn path_traversal_and_long_query_values_are_400() {
    let app = TestApp::spawn();
    for path in [
        "/api/v1/auth/%2e%2e/%2e%2e/etc/passwd",
        "/api/v1/auth/..%5c..%5cwin.ini",
        "/api/v1/auth/x%00y",
    ] {
        let r = app.get(path);
        assert_eq!(r.status, 400, "{path}");
        assert_eq!(r.error_code(), "invalid_path", "{path}");
    }
    let r = app.get(&format!("/version?q={}", "a".repeat(10 * 1024 + 1)));
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "query_too_long");
}

#[test]
fn cors_preflight_allowed_and_denied() {
    let Some(app) = TestApp::spawn_with(&[("allowed_origins", "https://app.example.com")]) else {
        return;
    };
    let preflight = |origin: &str, method: &str| {
        app.request(
            "OPTIONS",
            "/api/v1/version",
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", method),
                (
                    "Access-Control-Request-Headers",
                    "authorization, content-type",
                ),
            ],
            Body::Empty,
        )
    };
    let ok = preflight("https://app.example.com", "GET");
    assert_eq!(ok.status, 204);
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(ok.header("access-control-allow-credentials"), Some("true"));
    assert!(ok
        .header("access-control-allow-methods")
        .unwrap()
        .contains("GET"));
    assert!(ok
        .header("access-control-allow-headers")
        .unwrap()
        .contains("authorization"));
    assert_security_headers(&ok, "preflight");

    let denied = preflight("https://evil.example.com", "GET");
    assert_eq!(denied.status, 403);
    assert_eq!(denied.error_code(), "cors_denied");
    assert!(denied.header("access-control-allow-origin").is_none());

    let simple = app.request(
        "GET",
        "/api/v1/version",
        &[("Origin", "https://app.example.com")],
        Body::Empty,
    );
    assert_eq!(
        simple.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let foreign = app.request(
        "GET",
        "/api/v1/version",
        &[("Origin", "https://evil.example.com")],
        Body::Empty,
    );
    assert_eq!(foreign.status, 200);
    assert!(foreign.header("access-control-allow-origin").is_none());
}

#[test]
fn cors_denies_everything_by_default() {
    let app = TestApp::spawn();
    let r = app.request(
        "OPTIONS",
        "/api/v1/version",
        &[
            ("Origin", "https://app.example.com"),
            ("Access-Control-Request-Method", "GET"),
        ],
        Body::Empty,
    );
    assert_eq!(r.status, 403);
}

#[test]
fn gzip_is_negotiated() {
    let app = TestApp::spawn();
    let plain = app.get("/api/openapi.json");
    assert_eq!(plain.status, 200);
    assert!(plain.header("content-encoding").is_none());
    let gz = app.request(
        "GET",
        "/api/openapi.json",
        &[("Accept-Encoding", "gzip, br")],
        Body::Empty,
    );
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert!(gz
        .header("vary")
        .unwrap_or_default()
        .contains("Accept-Encoding"));
    assert!(gz.body.len() < plain.body.len());
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(&gz.body[..])
        .read_to_end(&mut decoded)
        .unwrap();
    assert_eq!(decoded, plain.body);
    // Small bodies are not worth it.
    let small = app.request(
        "GET",
        "/version",
        &[("Accept-Encoding", "gzip")],
        Body::Empty,
    );
    assert!(small.header("content-encoding").is_none());
}

#[test]
fn health_is_200_and_503_under_an_injected_store_failure() {
    let Some(app) = TestApp::spawn_for_faults(&[]) else {
        let r = TestApp::spawn().get("/health");
        assert_eq!(r.status, 200);
        return;
    };
    let ok = app.get("/health");
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.json(),
        serde_json::json!({"status": "ok", "checks": {"sqlite": "ok", "kv": "ok", "config": "ok"}})
    );

    let faults = app.faults().unwrap();
    faults.set_sqlite_unavailable(true);
    let r = app.get("/health");
    assert_eq!(r.status, 503);
    let v = r.json();
    assert_eq!(v["checks"]["sqlite"], "unavailable");
    assert_eq!(v["checks"]["kv"], "ok");
    assert!(v["message"].as_str().unwrap().contains("sqlite"));

    faults.set_sqlite_unavailable(false);
    faults.set_kv_unavailable(true);
    let r = app.get("/health");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["checks"]["kv"], "unavailable");
    assert_eq!(r.json()["checks"]["sqlite"], "ok");

    faults.set_kv_unavailable(false);
    assert_eq!(app.get("/health").status, 200);
}

#[test]
fn version_on_both_paths() {
    let app = TestApp::spawn();
    let a = app.get("/version").json();
    let b = app.get("/api/v1/version").json();
    assert_eq!(a, b);
    assert_eq!(a["name"], "streamspace-on-spin");
    for key in ["version", "commit", "spin_sdk"] {
        assert!(a[key].as_str().is_some_and(|s| !s.is_empty()), "{key}: {a}");
    }
    assert!(a["spin_sdk"].as_str().unwrap().starts_with("5.2."));
}

#[test]
fn openapi_document_is_served() {
    let app = TestApp::spawn();
    let r = app.get("/api/openapi.json");
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/health",
        "/version",
        "/api/v1/version",
        "/api/openapi.json",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} documented");
    }
}

#[test]
fn head_answers_without_a_body() {
    let app = TestApp::spawn();
    let r = app.request("HEAD", "/version", &[], Body::Empty);
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
}

#[test]
fn one_json_log_line_per_request() {
    let Some(app) = TestApp::spawn_with(&[]) else {
        return;
    };
    let _ = app.request(
        "GET",
        "/version",
        &[("X-Request-ID", "log-probe-1"), ("User-Agent", "e2e-suite")],
        Body::Empty,
    );
    let _ = app.request(
        "GET",
        "/api/v1/auth/nope",
        &[("X-Request-ID", "log-probe-2")],
        Body::Empty,
    );
    let _ = app.request(
        "GET",
        "/health",
        &[("X-Request-ID", "log-probe-3")],
        Body::Empty,
    );
    let lines = app.log_lines().unwrap();
    let parsed: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let find = |id: &str| {
        parsed
            .iter()
            .filter(|v| v["request_id"] == id)
            .collect::<Vec<_>>()
    };
    let first = find("log-probe-1");
    assert_eq!(first.len(), 1, "{lines:?}");
    let v = first[0];
    assert_eq!(v["method"], "GET");
    assert_eq!(v["path"], "/version");
    assert_eq!(v["status"], 200);
    assert_eq!(v["level"], "info");
    assert_eq!(v["user_agent"], "e2e-suite");
    assert_eq!(v["client_ip"], "127.0.0.1");
    assert!(v["duration_ms"].as_f64().is_some());
    let second = find("log-probe-2");
    assert_eq!(second.len(), 1);
    assert_eq!(second[0]["level"], "warn");
    assert_eq!(second[0]["error"], "not_found");
    // Health checks are not logged by default (log_health_checks = false).
    assert!(find("log-probe-3").is_empty());
}

/// An answer given before the body is read (here the method gate's 405) arrives whole: Spin
/// closed the connection of a request whose body was dropped unread, and about 2 % of such
/// answers arrived with their headers and without their body (found by Schemathesis).
#[test]
fn an_answer_given_before_the_body_is_read_arrives_whole() {
    let app = TestApp::spawn();
    let body = br#"{"role": "admin", "user_id": ""}"#.repeat(20);
    for i in 0..300 {
        let method = if i % 2 == 0 { "TRACE" } else { "QUERY" };
        let r = app.request(
            method,
            "/api/v1/teams/0/members",
            &[("content-type", "application/json")],
            Body::Bytes(body.clone()),
        );
        assert_eq!(r.status, 405, "request {i} ({method})");
        assert_eq!(
            r.error_code(),
            "method_not_allowed",
            "request {i} ({method})"
        );
    }
}
