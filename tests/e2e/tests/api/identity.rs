//! Identity end to end: setup, login, refresh rotation and reuse, logout, sessions, max
//! sessions, disabled accounts, CSRF with cookies, MFA, and secrets at rest.

use serde_json::json;

use crate::helpers::{unique, Body, Session, TestApp, ADMIN_PASSWORD};
use crate::setup::{cookie_value, count, race_statuses, totp_now};

#[test]
fn setup_runs_once_and_logs_the_admin_in() {
    let Some(app) = TestApp::spawn_with(&[]) else {
        return;
    };
    assert_eq!(
        app.get("/api/v1/auth/setup/status").json()["setup_required"],
        true
    );
    let body = json!({"username": "root-admin", "email": "root@example.com", "password": ADMIN_PASSWORD, "org_name": "Acme"});
    let r = app.json("POST", "/api/v1/auth/setup", None, &body);
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 900);
    assert_eq!(v["user"]["role"], "admin");
    assert_eq!(v["user"]["platform_admin"], true);
    assert!(v["user"].get("password_hash").is_none());
    assert!(v["access_token"].as_str().unwrap().starts_with("ssa_"));
    assert!(v["refresh_token"].as_str().unwrap().starts_with("ssr_"));
    assert_eq!(
        app.get("/api/v1/auth/setup/status").json()["setup_required"],
        false
    );

    let again = app.json("POST", "/api/v1/auth/setup", None, &json!({"username": "other", "email": "o@example.com", "password": ADMIN_PASSWORD, "org_name": "Evil"}));
    assert_eq!(again.status, 409);
    assert_eq!(again.error_code(), "setup_complete");

    let me = app.authed(
        "GET",
        "/api/v1/users/me",
        v["access_token"].as_str().unwrap(),
    );
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["username"], "root-admin");
}

#[test]
fn setup_validates_its_input() {
    let Some(app) = TestApp::spawn_with(&[]) else {
        return;
    };
    let cases = [
        (
            json!({"username": "a", "email": "a@example.com", "password": ADMIN_PASSWORD, "org_name": "Acme"}),
            "invalid_field",
        ),
        (
            json!({"username": "alice", "email": "not-an-email", "password": ADMIN_PASSWORD, "org_name": "Acme"}),
            "invalid_field",
        ),
        (
            json!({"username": "alice", "email": "a@example.com", "password": "short", "org_name": "Acme"}),
            "weak_password",
        ),
        (
            json!({"username": "alice", "email": "a@example.com", "password": ADMIN_PASSWORD, "org_name": "Acme", "role": "admin"}),
            "unknown_field",
        ),
        (
            json!({"username": "alice", "email": "a@example.com", "password": ADMIN_PASSWORD, "org_name": 7}),
            "invalid_field",
        ),
    ];
    for (body, code) in cases {
        let r = app.json("POST", "/api/v1/auth/setup", None, &body);
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(
            r.error_code(),
            code,
            "{body}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    // Nothing was created by the refused attempts.
    assert_eq!(
        app.get("/api/v1/auth/setup/status").json()["setup_required"],
        true
    );
}

#[test]
fn unknown_json_field_is_400_naming_it() {
    let app = TestApp::spawn();
    let r = app.json(
        "POST",
        "/api/v1/auth/login",
        None,
        &json!({"username": "x", "password": "y", "remember_me": true}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "unknown_field");
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("remember_me"));
    let r = app.json(
        "POST",
        "/api/v1/auth/login",
        None,
        &json!({"username": 5, "password": "y"}),
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["message"].as_str().unwrap().contains("username"));
}

#[test]
fn login_failures_do_not_tell_users_apart() {
    let app = TestApp::spawn();
    let _admin = app.admin();
    let wrong = app.json(
        "POST",
        "/api/v1/auth/login",
        None,
        &json!({"username": "e2e-admin", "password": "wrong password here"}),
    );
    let unknown = app.json(
        "POST",
        "/api/v1/auth/login",
        None,
        &json!({"username": unique("nobody"), "password": "wrong password here"}),
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(unknown.status, 401);
    assert_eq!(wrong.error_code(), "invalid_credentials");
    assert_eq!(unknown.error_code(), "invalid_credentials");
    assert_eq!(wrong.json()["message"], unknown.json()["message"]);
}

#[test]
fn protected_routes_need_a_valid_token() {
    let app = TestApp::spawn();
    let r = app.get("/api/v1/users/me");
    assert_eq!(r.status, 401);
    assert_eq!(r.error_code(), "unauthenticated");
    let r = app.authed("GET", "/api/v1/users/me", "garbage");
    assert_eq!(r.status, 401);
    assert_eq!(r.error_code(), "invalid_token");
    let forged = format!("ssa_{}", "A".repeat(43));
    let r = app.authed("GET", "/api/v1/users/me", &forged);
    assert_eq!(r.status, 401);
    assert_eq!(r.error_code(), "invalid_token");
}

#[test]
fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let first = app.json(
        "POST",
        "/api/v1/auth/refresh",
        None,
        &json!({"refresh_token": admin.refresh}),
    );
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    let rotated = Session::from_tokens(&first.json());
    assert_ne!(rotated.refresh, admin.refresh);
    assert_ne!(rotated.access, admin.access);
    assert_eq!(
        app.authed("GET", "/api/v1/users/me", &rotated.access)
            .status,
        200
    );

    // The spent token again: the whole session dies, including the fresh pair.
    let reuse = app.json(
        "POST",
        "/api/v1/auth/refresh",
        None,
        &json!({"refresh_token": admin.refresh}),
    );
    assert_eq!(reuse.status, 401);
    assert_eq!(reuse.error_code(), "refresh_token_reused");
    assert_eq!(
        app.authed("GET", "/api/v1/users/me", &rotated.access)
            .status,
        401
    );
    assert_eq!(
        app.authed("GET", "/api/v1/users/me", &admin.access).status,
        401
    );
    let r = app.json(
        "POST",
        "/api/v1/auth/refresh",
        None,
        &json!({"refresh_token": rotated.refresh}),
    );
    assert_eq!(r.status, 401);
}

#[test]
fn logout_ends_the_session_at_once() {
    let app = TestApp::spawn();
    let admin = app.admin();
    assert_eq!(
        app.authed("GET", "/api/v1/users/me", &admin.access).status,
        200
    );
    assert_eq!(
        app.authed("POST", "/api/v1/auth/logout", &admin.access)
            .status,
        204
    );
    let r = app.authed("GET", "/api/v1/users/me", &admin.access);
    assert_eq!(r.status, 401);
    let r = app.json(
        "POST",
        "/api/v1/auth/refresh",
        None,
        &json!({"refresh_token": admin.refresh}),
    );
    assert_eq!(r.status, 401);
}

#[test]
fn users_list_and_revoke_their_own_sessions() {
    let app = TestApp::spawn();
    let a = app.admin();
    let b = app.admin();
    let r = app.request(
        "GET",
        "/api/v1/auth/sessions",
        &[
            ("authorization", &format!("Bearer {}", a.access)),
            ("user-agent", "e2e-agent"),
        ],
        Body::Empty,
    );
    assert_eq!(r.status, 200);
    let items = r.json()["items"].as_array().unwrap().clone();
    assert!(items.len() >= 2);
    let current: Vec<_> = items.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert!(items
        .iter()
        .all(|s| s.get("created_ip").is_some() && s.get("last_seen_at").is_some()));
    let other = items.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Revoke b's session from a (same user).
    let r = app.authed(
        "DELETE",
        &format!("/api/v1/auth/sessions/{other}"),
        &a.access,
    );
    assert_eq!(r.status, 204);
    let r = app.authed(
        "DELETE",
        &format!("/api/v1/auth/sessions/{other}"),
        &a.access,
    );
    assert_eq!(r.status, 404);
    let _ = b;
}

#[test]
fn max_login_sessions_is_enforced_across_instances() {
    let Some(app) = TestApp::spawn_with(&[("max_login_sessions", "2")]) else {
        return;
    };
    let first = app.admin();
    let _second = app.login("e2e-admin", ADMIN_PASSWORD);
    let r = app.json(
        "POST",
        "/api/v1/auth/login",
        None,
        &json!({"username": "e2e-admin", "password": ADMIN_PASSWORD}),
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.error_code(), "max_sessions");
    // Logging one out frees a place.
    assert_eq!(
        app.authed("POST", "/api/v1/auth/logout", &first.access)
            .status,
        204
    );
    let _third = app.login("e2e-admin", ADMIN_PASSWORD);
}

#[test]
fn concurrent_logins_never_exceed_the_cap() {
    let Some(app) = TestApp::spawn_with(&[("max_login_sessions", "3")]) else {
        return;
    };
    let _ = app.admin();
    let statuses = race_statuses(
        &app,
        8,
        "POST",
        "/api/v1/auth/login",
        &[("content-type", "application/json")],
        &json!({"username": "e2e-admin", "password": ADMIN_PASSWORD}),
    );
    // One session exists from setup: exactly two more may open.
    assert_eq!(count(&statuses, 200), 2, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 403),
        "{statuses:?}"
    );
}

#[test]
fn csrf_applies_to_cookie_sessions_only() {
    let app = TestApp::spawn();
    let _ = app.admin();
    let login = app.json(
        "POST",
        "/api/v1/auth/login",
        None,
        &json!({"username": "e2e-admin", "password": ADMIN_PASSWORD, "cookie": true}),
    );
    assert_eq!(login.status, 200);
    let session = cookie_value(&login, "__Host-ss_session").expect("session cookie");
    let set_cookie: Vec<&str> = login
        .headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .map(|(_, v)| v.as_str())
        .collect();
    assert!(
        set_cookie.iter().all(|c| c.starts_with("__Host-")
            && c.contains("Secure")
            && c.contains("SameSite=Strict")),
        "{set_cookie:?}"
    );
    // The token cookies are HttpOnly; the CSRF cookie is read by the page's script.
    assert!(
        set_cookie
            .iter()
            .all(|c| c.contains("HttpOnly") != c.starts_with("__Host-csrf_token=")),
        "{set_cookie:?}"
    );

    // The login set the session's CSRF token; GET /auth/csrf answers the same one for the session.
    let token = cookie_value(&login, "__Host-csrf_token").expect("csrf cookie");
    let cookie_only = format!("__Host-ss_session={session}");
    let csrf = app.request(
        "GET",
        "/api/v1/auth/csrf",
        &[("cookie", &cookie_only)],
        Body::Empty,
    );
    assert_eq!(csrf.status, 200, "{}", String::from_utf8_lossy(&csrf.body));
    assert_eq!(csrf.header("x-csrf-token"), Some(token.as_str()));
    assert_eq!(
        cookie_value(&csrf, "__Host-csrf_token").as_deref(),
        Some(token.as_str())
    );

    // A safe method with the cookie needs no CSRF token.
    let r = app.request(
        "GET",
        "/api/v1/users/me",
        &[("cookie", &cookie_only)],
        Body::Empty,
    );
    assert_eq!(r.status, 200);

    // Unsafe: missing, mismatched, then valid.
    let r = app.request(
        "POST",
        "/api/v1/auth/mfa/setup",
        &[("cookie", &cookie_only)],
        Body::Empty,
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.error_code(), "csrf_missing");
    let both = format!("__Host-ss_session={session}; __Host-csrf_token={token}");
    let r = app.request(
        "POST",
        "/api/v1/auth/mfa/setup",
        &[("cookie", &both), ("x-csrf-token", "not-the-same")],
        Body::Empty,
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.error_code(), "csrf_mismatch");
    let forged = format!("__Host-ss_session={session}; __Host-csrf_token=made-up-token");
    let r = app.request(
        "POST",
        "/api/v1/auth/mfa/setup",
        &[("cookie", &forged), ("x-csrf-token", "made-up-token")],
        Body::Empty,
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.error_code(), "csrf_invalid");
    // The CSRF token of another login session (here: a bearer session's) is refused too.
    let other = app.login("e2e-admin", ADMIN_PASSWORD);
    let others = app.authed("GET", "/api/v1/auth/csrf", &other.access).json()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(others, token);
    let planted = format!("__Host-ss_session={session}; __Host-csrf_token={others}");
    let r = app.request(
        "POST",
        "/api/v1/auth/mfa/setup",
        &[("cookie", &planted), ("x-csrf-token", &others)],
        Body::Empty,
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.error_code(), "csrf_invalid");
    // Unprefixed cookies (which a sibling subdomain could plant) are not read at all.
    let unprefixed = format!("ss_session={session}; csrf_token={token}");
    let r = app.request(
        "POST",
        "/api/v1/auth/logout",
        &[("cookie", &unprefixed), ("x-csrf-token", &token)],
        Body::Empty,
    );
    assert_eq!(r.status, 401);
    let r = app.request(
        "POST",
        "/api/v1/auth/logout",
        &[("cookie", &both), ("x-csrf-token", &token)],
        Body::Empty,
    );
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));

    // Bearer requests are exempt.
    let bearer = app.login("e2e-admin", ADMIN_PASSWORD);
    let r = app.authed("POST", "/api/v1/auth/logout", &bearer.access);
    assert_eq!(r.status, 204);
}

#[test]
fn mfa_enrol_login_backup_code_and_replay() {
    let Some(app) = TestApp::spawn_with(&[]) else {
        return;
    };
    let admin = app.admin();
    let r = app.json(
        "POST",
        "/api/v1/auth/mfa/setup",
        Some(&admin.access),
        &json!({"current_password": ADMIN_PASSWORD}),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let secret = r.json()["secret"].as_str().unwrap().to_owned();
    assert!(r.json()["otpauth_url"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/"));

    let bad = app.json(
        "POST",
        "/api/v1/auth/mfa/verify-setup",
        Some(&admin.access),
        &json!({"code": "000000"}),
    );
    assert_eq!(bad.status, 400);
    let code = totp_now(&secret);
    let ok = app.json(
        "POST",
        "/api/v1/auth/mfa/verify-setup",
        Some(&admin.access),
        &json!({"code": code}),
    );
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    let backup: Vec<String> = ok.json()["backup_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(backup.len(), 10);

    // Without a code: 401 mfa_required. The code used for enrolment is spent (same step).
    let creds = json!({"username": "e2e-admin", "password": ADMIN_PASSWORD});
    let r = app.json("POST", "/api/v1/auth/login", None, &creds);
    assert_eq!(r.status, 401);
    assert_eq!(r.error_code(), "mfa_required");
    let r = app.json(
        "POST",
        "/api/v1/auth/login",
        None,
        &json!({"username": "e2e-admin", "password": ADMIN_PASSWORD, "mfa_code": code}),
    );
    assert_eq!(r.status, 401, "a TOTP code is never accepted twice");

    // A backup code works once.
    let with_backup =
        json!({"username": "e2e-admin", "password": ADMIN_PASSWORD, "mfa_code": backup[0]});
    assert_eq!(
        app.json("POST", "/api/v1/auth/login", None, &with_backup)
            .status,
        200
    );
    assert_eq!(
        app.json("POST", "/api/v1/auth/login", None, &with_backup)
            .status,
        401
    );

    // Disable with another backup code; then a password alone works again.
    let r = app.json(
        "DELETE",
        "/api/v1/auth/mfa",
        Some(&admin.access),
        &json!({"code": backup[1]}),
    );
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        app.json("POST", "/api/v1/auth/login", None, &creds).status,
        200
    );
}

#[test]
fn no_raw_secret_is_stored_or_logged() {
    let Some(app) = TestApp::spawn_with(&[]) else {
        return;
    };
    let admin = app.admin();
    let second = app.login("e2e-admin", ADMIN_PASSWORD);
    let refreshed = Session::from_tokens(
        &app.json(
            "POST",
            "/api/v1/auth/refresh",
            None,
            &json!({"refresh_token": second.refresh}),
        )
        .json(),
    );
    let csrf = app
        .authed("GET", "/api/v1/auth/csrf", &admin.access)
        .header("x-csrf-token")
        .unwrap()
        .to_owned();
    let secrets = [
        admin.access.as_str(),
        admin.refresh.as_str(),
        second.access.as_str(),
        second.refresh.as_str(),
        refreshed.access.as_str(),
        refreshed.refresh.as_str(),
        csrf.as_str(),
        ADMIN_PASSWORD,
    ];
    let db = rusqlite::Connection::open(app.database_path().unwrap()).unwrap();
    let tables: Vec<String> = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut cells = 0;
    for table in tables {
        let mut stmt = db.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
        let columns = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            for i in 0..columns {
                let text = match row.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                        String::from_utf8_lossy(t).into_owned()
                    }
                    other => format!("{other:?}"),
                };
                cells += 1;
                for secret in secrets {
                    assert!(!text.contains(secret), "{table} stores a raw secret");
                }
            }
        }
    }
    assert!(cells > 10);
    // After creation, no answer shows a secret again.
    for path in [
        "/api/v1/users/me",
        "/api/v1/auth/sessions",
        "/api/v1/api-keys",
        "/api/v1/users",
    ] {
        let body = String::from_utf8(app.authed("GET", path, &refreshed.access).body).unwrap();
        for secret in secrets {
            assert!(!body.contains(secret), "{path} shows a secret");
        }
    }
    for line in app.log_lines().unwrap() {
        for secret in secrets {
            assert!(!line.contains(secret), "a secret reached the log: {line}");
        }
    }
}
