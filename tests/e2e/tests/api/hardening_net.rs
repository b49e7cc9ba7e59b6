//! Hardening of who the client is and what it may spend (issue 9, items 1, 2, 3, 8, 14, 16): the
//! peer address is the one Spin appends, every `X-Forwarded-For` line counts, IPv6 clients are
//! limited per network, the bypass header is the platform admin's session's only, refresh is
//! limited per user, and failed logins from elsewhere cannot lock a user out.

use serde_json::json;

use crate::helpers::{unique, Body, Resp, TestApp, ADMIN_PASSWORD, ADMIN_USERNAME};
use crate::setup::create_user;

fn get(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> Resp {
    app.request("GET", path, headers, Body::Empty)
}

fn post_json(
    app: &TestApp,
    path: &str,
    headers: &[(&str, &str)],
    body: &serde_json::Value,
) -> Resp {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    app.request(
        "POST",
        path,
        &all,
        Body::Bytes(body.to_string().into_bytes()),
    )
}

fn audit_client_ip(app: &TestApp, request_id: &str) -> Option<String> {
    let db = rusqlite::Connection::open(app.database_path().unwrap()).unwrap();
    db.query_row(
        "SELECT client_ip FROM audit_log WHERE request_id = ?",
        [request_id],
        |r| r.get(0),
    )
    .unwrap()
}

/// Real Spin keeps a client-sent `spin-client-addr` and appends its own after it; the test host
/// now does the same. A forged one must neither pick the rate-limit key, nor pass the
/// trusted-proxy check (and so unlock `X-Forwarded-For`), nor land in the audit row.
#[test]
fn forged_spin_client_addr_is_ignored() {
    let Some(app) = TestApp::spawn_with(&[
        ("rate_limit_api_per_minute", "3"),
        ("trusted_proxies", "10.0.0.0/8"),
    ]) else {
        return;
    };
    let mut statuses = Vec::new();
    let mut ids = Vec::new();
    for i in 0..5 {
        let forged = format!("10.0.0.{i}:4444");
        let claimed = format!("203.0.113.{i}");
        let rid = unique("forged");
        let r = get(
            &app,
            "/version",
            &[
                ("x-request-id", &rid),
                ("spin-client-addr", &forged),
                ("x-forwarded-for", &claimed),
            ],
        );
        statuses.push(r.status);
        ids.push(r.header("x-request-id").unwrap().to_owned());
    }
    // One client (the loopback peer), one budget: a forgery per request buys nothing.
    assert_eq!(statuses, vec![200, 200, 200, 429, 429]);
    for id in &ids {
        assert_eq!(
            audit_client_ip(&app, id).as_deref(),
            Some("127.0.0.1"),
            "the audit row names the real peer"
        );
    }
}

/// A forged `spin-client-addr` cannot move a login onto a fresh per-IP budget either.
#[test]
fn forged_spin_client_addr_does_not_reset_login_limits() {
    let Some(app) = TestApp::spawn_with(&[("rate_limit_login_ip_per_minute", "2")]) else {
        return;
    };
    let statuses: Vec<u16> = (0..3)
        .map(|i| {
            let forged = format!("192.0.2.{i}:1000");
            post_json(
                &app,
                "/api/v1/auth/login",
                &[("spin-client-addr", &forged)],
                &json!({"username": unique("nobody"), "password": "wrong password guess"}),
            )
            .status
        })
        .collect();
    assert_eq!(statuses, vec![401, 401, 429]);
}

/// A proxy may add its own `X-Forwarded-For` line instead of extending the client's. The lines are
/// one list (RFC 9110 §5.3): the right-most untrusted hop is the proxy-added one, never the
/// client-written first line.
#[test]
fn every_forwarded_for_line_is_read() {
    let Some(app) = TestApp::spawn_with(&[
        ("rate_limit_api_per_minute", "2"),
        ("trusted_proxies", "127.0.0.0/8"),
    ]) else {
        return;
    };
    let statuses: Vec<u16> = (0..4)
        .map(|i| {
            let written = format!("6.6.6.{i}");
            get(
                &app,
                "/version",
                &[
                    ("x-forwarded-for", &written),
                    ("x-forwarded-for", "198.51.100.7"),
                ],
            )
            .status
        })
        .collect();
    assert_eq!(statuses, vec![200, 200, 429, 429]);
    // The client the proxy saw is keyed, not what the client wrote.
    assert_eq!(
        get(&app, "/version", &[("x-forwarded-for", "198.51.100.8")]).status,
        200
    );
}

/// One subscriber holds a whole /64: rotating through its addresses buys no extra budget.
#[test]
fn ipv6_clients_are_limited_per_64() {
    let Some(app) = TestApp::spawn_with(&[
        ("rate_limit_api_per_minute", "2"),
        ("trusted_proxies", "127.0.0.0/8"),
    ]) else {
        return;
    };
    let statuses: Vec<u16> = (1..=4)
        .map(|i| {
            let addr = format!("2001:db8:1:2::{i:x}");
            get(&app, "/version", &[("x-forwarded-for", &addr)]).status
        })
        .collect();
    assert_eq!(statuses, vec![200, 200, 429, 429]);
    assert_eq!(
        get(&app, "/version", &[("x-forwarded-for", "2001:db8:1:3::1")]).status,
        200,
        "another /64 has its own budget"
    );
}

/// A bad prefix is a configuration error: 503 with the envelope, never a silent fallback.
#[test]
fn a_bad_ipv6_prefix_answers_503() {
    let Some(app) = TestApp::spawn_with(&[("rate_limit_ipv6_prefix", "129")]) else {
        return;
    };
    let r = app.get("/version");
    assert_eq!(r.status, 503);
    assert_eq!(r.error_code(), "configuration_error");
    let logged = app.log_lines().unwrap().join("\n");
    assert!(
        logged.contains("rate_limit_ipv6_prefix"),
        "the cause is in the log"
    );
}

fn bypass_get(app: &TestApp, token: &str) -> Resp {
    let auth = format!("Bearer {token}");
    get(
        app,
        "/api/v1/users/me",
        &[
            ("authorization", &auth),
            ("x-streamspace-bypass-ratelimit", "1"),
        ],
    )
}

#[test]
fn bypass_header_refused_for_read_pat() {
    let app = TestApp::spawn();
    let admin = app.admin();
    // The platform admin's own read-only and full personal access tokens.
    for scopes in [json!(["read"]), json!(["full"])] {
        let r = app.json(
            "POST",
            "/api/v1/api-keys",
            Some(&admin.access),
            &json!({"name": unique("pat"), "scopes": scopes, "expires_in_days": 1}),
        );
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        let pat = r.json()["key"].as_str().unwrap().to_owned();
        let r = bypass_get(&app, &pat);
        assert_eq!(r.status, 428, "a PAT ({scopes}) never bypasses");
        assert_eq!(r.error_code(), "bypass_not_allowed");
    }
    // An org admin (not the platform admin), even with a login session.
    let org_admin = create_user(&app, &admin.access, "admin", None).token;
    assert_eq!(bypass_get(&app, &org_admin).status, 428);
    // The platform admin's login session may.
    assert_eq!(bypass_get(&app, &admin.access).status, 200);
}

#[test]
fn bypass_header_never_skips_login_limits() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let bypass = ("x-streamspace-bypass-ratelimit", "1");
    let auth = format!("Bearer {}", admin.access);
    // Login and refresh: refused, whoever asks.
    let r = post_json(
        &app,
        "/api/v1/auth/login",
        &[bypass],
        &json!({"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}),
    );
    assert_eq!(r.status, 428);
    let r = post_json(
        &app,
        "/api/v1/auth/refresh",
        &[bypass, ("authorization", &auth)],
        &json!({"refresh_token": admin.refresh}),
    );
    assert_eq!(r.status, 428);
    // Minting and second-factor routes: not even for the platform admin's session.
    let r = post_json(
        &app,
        "/api/v1/api-keys",
        &[bypass, ("authorization", &auth)],
        &json!({"name": "k", "scopes": ["read"]}),
    );
    assert_eq!(r.status, 428);
    let r = post_json(
        &app,
        "/api/v1/auth/mfa/verify-setup",
        &[bypass, ("authorization", &auth)],
        &json!({"code": "123456"}),
    );
    assert_eq!(r.status, 428);
}

/// `POST /auth/refresh` is limited per owner of the refresh token: rotating client addresses gets
/// no extra attempts. Unknown tokens are limited per address.
#[test]
fn refresh_is_limited_per_user_whatever_the_ip() {
    let Some(app) = TestApp::spawn_with(&[
        ("rate_limit_mint_per_minute", "2"),
        ("trusted_proxies", "127.0.0.0/8"),
    ]) else {
        return;
    };
    let mut refresh = app.admin().refresh;
    let mut statuses = Vec::new();
    for i in 0..3 {
        let ip = format!("198.51.100.{}", 20 + i);
        let r = post_json(
            &app,
            "/api/v1/auth/refresh",
            &[("x-forwarded-for", &ip)],
            &json!({"refresh_token": refresh}),
        );
        statuses.push(r.status);
        if r.status == 200 {
            refresh = r.json()["refresh_token"].as_str().unwrap().to_owned();
        } else {
            assert!(r.json()["message"]
                .as_str()
                .unwrap()
                .contains("refresh-user"));
        }
    }
    assert_eq!(statuses, vec![200, 200, 429]);
    let garbage = |ip: &str| {
        post_json(
            &app,
            "/api/v1/auth/refresh",
            &[("x-forwarded-for", ip)],
            &json!({"refresh_token": "ssr_not-a-real-token"}),
        )
        .status
    };
    assert_eq!(
        [
            garbage("203.0.113.9"),
            garbage("203.0.113.9"),
            garbage("203.0.113.9")
        ],
        [401, 401, 429]
    );
    assert_eq!(garbage("203.0.113.10"), 401, "per address");
}

/// Anyone may spend the login attempts of (username, their own address); the real user, from
/// another address, still logs in.
#[test]
fn failed_logins_from_elsewhere_do_not_lock_out_the_user() {
    let Some(app) = TestApp::spawn_with(&[
        ("rate_limit_login_per_minute", "3"),
        ("trusted_proxies", "127.0.0.0/8"),
    ]) else {
        return;
    };
    let _ = app.admin();
    let attempt = |ip: &str, password: &str| {
        post_json(
            &app,
            "/api/v1/auth/login",
            &[("x-forwarded-for", ip)],
            &json!({"username": ADMIN_USERNAME, "password": password}),
        )
    };
    let statuses: Vec<u16> = (0..5)
        .map(|_| attempt("203.0.113.66", "wrong password guess").status)
        .collect();
    assert_eq!(statuses, vec![401, 401, 401, 429, 429]);
    let r = attempt("203.0.113.66", "wrong password guess");
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("login-pair-minute"));
    // The real admin, from its own address: not locked out.
    let r = attempt("198.51.100.1", ADMIN_PASSWORD);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

/// Behind a trusted proxy, the address stored with a login session (and shown in
/// `GET /auth/sessions`) is the client's, as resolved for the limiter and the audit row, not the
/// proxy's.
#[test]
fn created_ip_is_the_resolved_client_behind_a_trusted_proxy() {
    let Some(app) = TestApp::spawn_with(&[("trusted_proxies", "127.0.0.0/8")]) else {
        return;
    };
    let _ = app.admin();
    let r = post_json(
        &app,
        "/api/v1/auth/login",
        &[("x-forwarded-for", "203.0.113.77")],
        &json!({"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let token = r.json()["access_token"].as_str().unwrap().to_owned();
    let sessions = app.authed("GET", "/api/v1/auth/sessions", &token).json();
    let ips: Vec<&str> = sessions["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["created_ip"].as_str())
        .collect();
    assert!(ips.contains(&"203.0.113.77"), "{sessions}");
}
