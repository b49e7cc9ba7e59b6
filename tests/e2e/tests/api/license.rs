//! License end to end: community limits by default, the `X-License-Warning` header at 80/90/95 %,
//! 403 `license_limit_exceeded` past the limit, activation of a signed license (platform admin
//! only) raising it, and refusal of bad, expired or unverifiable keys.
//!
//! Every test needs the test host: it sets `license_public_key` to the test key below (RFC 8032
//! §7.1 test 1), and the limits depend on the number of users, which a shared server does not
//! control.

use ed25519_compact::{KeyPair, Seed};
use serde_json::{json, Value};

use crate::helpers::{text, unique, Resp, TestApp};
use crate::setup::PASSWORD;

/// RFC 8032 §7.1 test 1 secret key and its public key in base64.
const SECRET: [u8; 32] = [
    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
    0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
];
const PUBLIC: &str = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

/// base64url without padding (RFC 4648 §5), as license keys use it.
fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// A license key: `base64url(payload) "." base64url(Ed25519 signature of the first part)`.
fn mint_with(secret: [u8; 32], payload: &Value) -> String {
    let body = b64url(payload.to_string().as_bytes());
    let signature = KeyPair::from_seed(Seed::new(secret))
        .sk
        .sign(body.as_bytes(), None);
    format!("{body}.{}", b64url(&signature[..]))
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn license(tier: &str, expires_at: i64) -> String {
    mint_with(
        SECRET,
        &json!({"issuer": "StreamSpace e2e", "licensee": "E2E Corp", "tier": tier,
            "issued_at": now_s() - 60, "expires_at": expires_at}),
    )
}

fn create_user(app: &TestApp, admin: &str, role: &str) -> (Resp, String) {
    let username = unique("lic");
    let r = app.json(
        "POST",
        "/api/v1/users",
        Some(admin),
        &json!({"username": username, "email": format!("{username}@example.com"),
            "password": PASSWORD, "role": role}),
    );
    (r, username)
}

fn activate(app: &TestApp, token: &str, key: &str) -> Resp {
    app.json(
        "POST",
        "/api/v1/admin/license/activate",
        Some(token),
        &json!({"license_key": key}),
    )
}

#[test]
fn community_limit_warns_then_refuses_until_a_pro_license_is_activated() {
    let Some(app) = TestApp::spawn_with(&[("license_public_key", PUBLIC)]) else {
        return;
    };
    let admin = app.admin().access;
    let r = app.authed("GET", "/api/v1/admin/license", &admin);
    assert_eq!(r.status, 200, "{}", text(&r));
    let v = r.json();
    assert_eq!(v["tier"], "community");
    assert_eq!(v["source"], "default");
    assert_eq!(v["status"], "none");
    assert_eq!(
        v["limits"],
        json!({"users": 10, "sessions": 20, "nodes": 3})
    );
    assert_eq!(v["usage"]["users"], 1, "the setup admin counts");
    assert_eq!(v["warnings"], json!([]));

    // Users 2..=10 fit; the header appears from 80 % on.
    for n in 2..=10 {
        let (r, _) = create_user(&app, &admin, "user");
        assert_eq!(r.status, 201, "user {n}: {}", text(&r));
        let expected = match n {
            8 => Some("users 8/10 (80%)"),
            9 => Some("users 9/10 (90%)"),
            10 => Some("users 10/10 (100%)"),
            _ => None,
        };
        assert_eq!(r.header("x-license-warning"), expected, "user {n}");
    }
    let (r, _) = create_user(&app, &admin, "user");
    assert_eq!(r.status, 403, "{}", text(&r));
    assert_eq!(r.json()["error"], "license_limit_exceeded");
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("allows 10 users"));

    let v = app.authed("GET", "/api/v1/admin/license", &admin).json();
    assert_eq!(v["usage"]["users"], 10);
    assert_eq!(
        v["warnings"],
        json!([{"resource": "users", "used": 10, "limit": 10, "percent": 100, "level": 95}])
    );

    // Logging in is never blocked by the limit.
    app.admin();

    let r = activate(&app, &admin, &license("pro", now_s() + 86_400));
    assert_eq!(r.status, 200, "{}", text(&r));
    let v = r.json();
    assert_eq!(v["tier"], "pro");
    assert_eq!(v["source"], "license");
    assert_eq!(v["status"], "active");
    assert_eq!(v["licensee"], "E2E Corp");
    assert_eq!(v["expired"], false);
    assert_eq!(v["limits"]["users"], 100);
    assert_eq!(v["warnings"], json!([]));
    let (r, _) = create_user(&app, &admin, "user");
    assert_eq!(r.status, 201, "{}", text(&r));
    assert_eq!(r.header("x-license-warning"), None);
    // The next read verifies the stored key again and finds it in force.
    let v = app.authed("GET", "/api/v1/admin/license", &admin).json();
    assert_eq!(
        (v["tier"].clone(), v["usage"]["users"].clone()),
        (json!("pro"), json!(11))
    );
}

#[test]
fn bad_keys_are_refused_and_only_the_platform_admin_activates() {
    let Some(app) = TestApp::spawn_with(&[("license_public_key", PUBLIC)]) else {
        return;
    };
    let admin = app.admin().access;
    let good = license("enterprise", now_s() + 3600);
    let (payload, signature) = good.split_once('.').unwrap();

    let forged = mint_with(
        [7; 32],
        &json!({"issuer": "x", "licensee": "x", "tier": "enterprise",
            "issued_at": now_s(), "expires_at": now_s() + 3600}),
    );
    let other_payload = license("enterprise", now_s() + 7200);
    let tampered = format!("{}.{signature}", other_payload.split_once('.').unwrap().0);
    for key in [forged.as_str(), tampered.as_str(), payload, "not a key", ""] {
        let r = activate(&app, &admin, key);
        assert_eq!(r.status, 400, "{key}: {}", text(&r));
        assert_eq!(r.json()["error"], "invalid_license");
    }
    let r = activate(&app, &admin, &license("pro", now_s() - 1));
    assert_eq!(r.status, 400, "{}", text(&r));
    assert_eq!(r.json()["error"], "license_expired");
    let r = app.json(
        "POST",
        "/api/v1/admin/license/activate",
        Some(&admin),
        &json!({}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        app.authed("GET", "/api/v1/admin/license", &admin).json()["tier"],
        "community"
    );

    // An org admin reads the license but cannot activate one; a user can do neither.
    let (r, org_admin) = create_user(&app, &admin, "admin");
    assert_eq!(r.status, 201);
    let org_admin = app.login(&org_admin, PASSWORD).access;
    let (r, user) = create_user(&app, &admin, "user");
    assert_eq!(r.status, 201);
    let user = app.login(&user, PASSWORD).access;
    assert_eq!(
        app.authed("GET", "/api/v1/admin/license", &org_admin)
            .status,
        200
    );
    assert_eq!(activate(&app, &org_admin, &good).status, 403);
    assert_eq!(
        app.authed("GET", "/api/v1/admin/license", &user).status,
        403
    );
    assert_eq!(activate(&app, &user, &good).status, 403);
    assert_eq!(app.get("/api/v1/admin/license").status, 401);

    let r = activate(&app, &admin, &good);
    assert_eq!(r.status, 200, "{}", text(&r));
    let v = r.json();
    assert_eq!(v["tier"], "enterprise");
    assert_eq!(
        v["limits"],
        json!({"users": null, "sessions": null, "nodes": null})
    );

    // A license that expires falls back to community on the next read; nobody is locked out.
    let r = activate(&app, &admin, &license("pro", now_s() + 2));
    assert_eq!(r.status, 200, "{}", text(&r));
    std::thread::sleep(std::time::Duration::from_millis(3100));
    let r = app.authed("GET", "/api/v1/admin/license", &app.admin().access);
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(
        (&v["tier"], &v["source"], &v["status"], &v["expired"]),
        (
            &json!("community"),
            &json!("default"),
            &json!("expired"),
            &json!(true)
        )
    );
    assert_eq!(v["licensee"], "E2E Corp");
}

#[test]
fn without_a_public_key_the_tier_is_community_and_activation_is_refused() {
    let Some(app) = TestApp::spawn_with(&[]) else {
        return;
    };
    let admin = app.admin().access;
    let r = activate(&app, &admin, &license("pro", now_s() + 3600));
    assert_eq!(r.status, 409, "{}", text(&r));
    assert_eq!(r.json()["error"], "license_verification_unavailable");
    let v = app.authed("GET", "/api/v1/admin/license", &admin).json();
    assert_eq!(
        (v["tier"].clone(), v["source"].clone()),
        (json!("community"), json!("default"))
    );
}
