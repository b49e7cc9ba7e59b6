//! Regression tests for the identity holes of the first wave (issue 9, items 4, 5, 6, 7, 13,
//! 15): taking over the platform admin, credentials minted by tokens, token scopes on
//! optional-auth routes and the platform-wide purge, the agent id on agent routes, MFA
//! re-authentication and reset, and CSRF bound to the login session. Each test attacks the hole
//! over HTTP, as a caller with an account would.

use serde_json::json;

use crate::helpers::{text, Body, Session, TestApp, ADMIN_PASSWORD};
use crate::setup::{
    agent_post, cookie_value, create_agent, create_org, create_pat, create_user, online_agent,
    set_cookies, totp_now, Agent, PASSWORD,
};

/// Enrols `user` in MFA (two second-factor requests); returns the TOTP secret.
fn enrol_mfa(app: &TestApp, user: &Session) -> String {
    let r = app.json(
        "POST",
        "/api/v1/auth/mfa/setup",
        Some(&user.access),
        &json!({"current_password": PASSWORD}),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    let secret = r.json()["secret"].as_str().unwrap().to_owned();
    let r = app.json(
        "POST",
        "/api/v1/auth/mfa/verify-setup",
        Some(&user.access),
        &json!({"code": totp_now(&secret)}),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    secret
}

// ---- 4. The platform admin cannot be taken over ------------------------------------------------

#[test]
fn org_admin_cannot_modify_the_platform_admin() {
    let app = TestApp::spawn();
    let root = app.admin();
    // An admin of the setup org: the platform admin is in its org, so it sees the account.
    let org_admin = create_user(&app, &root.access, "admin", None).session;
    let path = format!("/api/v1/users/{}", root.user_id);
    assert_eq!(app.authed("GET", &path, &org_admin.access).status, 200);
    for change in [
        json!({"password": "the attacker's own password 1"}),
        json!({"role": "user"}),
        json!({"status": "disabled"}),
        json!({"email": "attacker@example.com"}),
    ] {
        let r = app.json("PATCH", &path, Some(&org_admin.access), &change);
        assert_eq!(r.status, 403, "{change}: {}", text(&r));
        assert_eq!(r.error_code(), "platform_admin_protected", "{change}");
    }
    let r = app.authed("DELETE", &path, &org_admin.access);
    assert_eq!(r.status, 403, "{}", text(&r));
    assert_eq!(r.error_code(), "platform_admin_protected");
    // Nothing changed: the platform admin's session and password still work.
    let me = app.authed("GET", "/api/v1/users/me", &root.access);
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["role"], "admin");
    assert_eq!(me.json()["status"], "active");
    assert_ne!(me.json()["email"], "attacker@example.com");
    app.login(crate::helpers::ADMIN_USERNAME, ADMIN_PASSWORD);
    // An org admin still administers ordinary accounts of its org.
    let member = create_user(&app, &root.access, "user", None).session;
    let r = app.json(
        "PATCH",
        &format!("/api/v1/users/{}", member.user_id),
        Some(&org_admin.access),
        &json!({"role": "operator"}),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
}

#[test]
fn last_platform_admin_cannot_be_disabled_or_deleted() {
    let app = TestApp::spawn();
    let root = app.admin();
    let path = format!("/api/v1/users/{}", root.user_id);
    for change in [json!({"status": "disabled"}), json!({"role": "user"})] {
        let r = app.json("PATCH", &path, Some(&root.access), &change);
        assert_eq!(r.status, 409, "{change}: {}", text(&r));
        assert_eq!(r.error_code(), "last_platform_admin");
    }
    let r = app.authed("DELETE", &path, &root.access);
    assert_eq!(r.status, 409, "{}", text(&r));
    assert_eq!(r.error_code(), "last_platform_admin");
    assert_eq!(
        app.authed("GET", "/api/v1/users/me", &root.access).status,
        200
    );

    // With a second platform admin (only the database makes one), one may disable the other —
    // and then the remaining one is the last again.
    let Some(db_path) = app.database_path() else {
        return;
    };
    let second = create_user(&app, &root.access, "admin", None).session;
    rusqlite::Connection::open(db_path)
        .unwrap()
        .execute(
            "UPDATE users SET platform_admin = 1 WHERE id = ?1",
            [&second.user_id],
        )
        .unwrap();
    let r = app.json(
        "PATCH",
        &path,
        Some(&second.access),
        &json!({"status": "disabled"}),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(
        app.authed("GET", "/api/v1/users/me", &root.access).status,
        401
    );
    let own = format!("/api/v1/users/{}", second.user_id);
    let r = app.json(
        "PATCH",
        &own,
        Some(&second.access),
        &json!({"role": "operator"}),
    );
    assert_eq!(r.status, 409, "{}", text(&r));
    assert_eq!(r.error_code(), "last_platform_admin");
    let r = app.authed("DELETE", &own, &second.access);
    assert_eq!(r.error_code(), "last_platform_admin");
}

#[test]
fn own_password_change_needs_current_password() {
    let app = TestApp::spawn();
    let root = app.admin();
    // An org admin changes its own password (not the suite's platform admin: shared servers).
    let me = create_user(&app, &root.access, "admin", None).session;
    let profile = app.authed("GET", "/api/v1/users/me", &me.access).json();
    let other_session = app.login(profile["username"].as_str().unwrap(), PASSWORD);
    let path = format!("/api/v1/users/{}", me.user_id);
    let new_password = "a brand new password 43";
    let r = app.json(
        "PATCH",
        &path,
        Some(&me.access),
        &json!({"password": new_password}),
    );
    assert_eq!(r.status, 400, "{}", text(&r));
    assert_eq!(r.error_code(), "current_password_required");
    let r = app.json(
        "PATCH",
        &path,
        Some(&me.access),
        &json!({"password": new_password, "current_password": "not my password at all"}),
    );
    assert_eq!(r.status, 403, "{}", text(&r));
    assert_eq!(r.error_code(), "invalid_current_password");
    // A token never changes a password, even with the right current one.
    let full = create_pat(&app, &me.access, "full");
    let r = app.json(
        "PATCH",
        &path,
        Some(&full),
        &json!({"password": new_password, "current_password": PASSWORD}),
    );
    assert_eq!(r.status, 403, "{}", text(&r));
    assert_eq!(r.error_code(), "login_session_required");

    let r = app.json(
        "PATCH",
        &path,
        Some(&me.access),
        &json!({"password": new_password, "current_password": PASSWORD}),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    // The session that changed it lives on; every other session and token of the user ends.
    assert_eq!(
        app.authed("GET", "/api/v1/users/me", &me.access).status,
        200
    );
    assert_eq!(
        app.authed("GET", "/api/v1/users/me", &other_session.access)
            .status,
        401
    );
    assert_eq!(app.authed("GET", "/api/v1/users/me", &full).status, 401);

    // An admin setting another user's password needs no current password, and ends that
    // user's sessions.
    let member = create_user(&app, &root.access, "user", None).session;
    let r = app.json(
        "PATCH",
        &format!("/api/v1/users/{}", member.user_id),
        Some(&me.access),
        &json!({"password": "reset by the admin 44"}),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(
        app.authed("GET", "/api/v1/users/me", &member.access).status,
        401
    );
}

// ---- 5. Only a login session mints credentials -------------------------------------------------

#[test]
fn personal_access_token_cannot_mint_or_change_credentials() {
    let app = TestApp::spawn();
    let root = app.admin();
    let user = create_user(&app, &root.access, "user", None).session;
    let full = create_pat(&app, &user.access, "full");
    let attempts = [
        (
            "POST",
            "/api/v1/api-keys".to_owned(),
            json!({"name": "child", "scopes": ["full"], "expires_in_days": 365}),
        ),
        (
            "POST",
            "/api/v1/auth/tickets".to_owned(),
            json!({"purpose": "session-connect", "session_id": "00000000-0000-4000-8000-000000000000"}),
        ),
        (
            "POST",
            "/api/v1/auth/mfa/setup".to_owned(),
            json!({"current_password": PASSWORD}),
        ),
        (
            "DELETE",
            "/api/v1/auth/mfa".to_owned(),
            json!({"current_password": PASSWORD}),
        ),
    ];
    for (method, path, body) in attempts {
        let r = app.json(method, &path, Some(&full), &body);
        assert_eq!(r.status, 403, "{method} {path}: {}", text(&r));
        assert_eq!(r.error_code(), "login_session_required", "{method} {path}");
    }
    let r = app.authed("GET", "/api/v1/auth/csrf", &full);
    assert_eq!(r.status, 403, "{}", text(&r));
    // The login session itself may, for a streaming session of its own.
    let (_, template) = crate::sessions::create_template(&app, &root.access);
    online_agent(&app, &root.access);
    let (session_id, _) = crate::sessions::start_session(&app, &user.access, &template);
    let r = app.json(
        "POST",
        "/api/v1/auth/tickets",
        Some(&full),
        &json!({"purpose": "session-connect", "session_id": session_id}),
    );
    assert_eq!(
        r.status,
        403,
        "a real session changes nothing: {}",
        text(&r)
    );
    assert_eq!(r.error_code(), "login_session_required");
    let r = app.json(
        "POST",
        "/api/v1/auth/tickets",
        Some(&user.access),
        &json!({"purpose": "session-connect", "session_id": session_id}),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
}

// ---- 6. Scopes on every route; the purge is platform-wide ---------------------------------------

const PURGE: &str = "/api/v1/admin/maintenance/purge";

#[test]
fn read_only_pat_cannot_purge() {
    let app = TestApp::spawn();
    let root = app.admin();
    let read = create_pat(&app, &root.access, "read");
    let r = app.authed("POST", PURGE, &read);
    assert_eq!(r.status, 403, "{}", text(&r));
    assert_eq!(r.error_code(), "insufficient_scope");
    // The same key still reads.
    assert_eq!(app.authed("GET", "/api/v1/users/me", &read).status, 200);
    // A full-scope key of the platform admin may purge (the route is not a minting one).
    let full = create_pat(&app, &root.access, "full");
    let r = app.authed("POST", PURGE, &full);
    assert_eq!(r.status, 200, "{}", text(&r));
}

#[test]
fn org_admin_cannot_run_platform_purge() {
    let app = TestApp::spawn();
    let root = app.admin();
    let same_org_admin = create_user(&app, &root.access, "admin", None).session;
    let org = create_org(&app, &root.access);
    let other_org_admin = create_user(&app, &root.access, "admin", Some(&org)).session;
    for admin in [&same_org_admin, &other_org_admin] {
        let r = app.authed("POST", PURGE, &admin.access);
        assert_eq!(r.status, 403, "{}", text(&r));
        assert_eq!(r.error_code(), "forbidden");
    }
    let r = app.authed("POST", PURGE, &root.access);
    assert_eq!(r.status, 200, "{}", text(&r));
}

// ---- 7. The path names the agent ----------------------------------------------------------------

#[test]
fn agent_id_query_cannot_override_path_id() {
    let app = TestApp::spawn();
    let root = app.admin();
    let Agent { id: a, key: key_a } = create_agent(&app, &root.access);
    let Agent { id: b, key: key_b } = create_agent(&app, &root.access);
    for (id, key) in [(&a, &key_a), (&b, &key_b)] {
        let r = agent_post(
            &app,
            &format!("/api/v1/agents/register?agent_id={id}"),
            key,
            &json!({"platform": "kubernetes", "region": "eu-west"}),
        );
        assert_eq!(r.status, 200, "{}", text(&r));
    }
    // A's key on B's route, naming A in the query: refused, and B's state is untouched.
    let r = agent_post(
        &app,
        &format!("/api/v1/agents/{b}/heartbeat?agent_id={a}"),
        &key_a,
        &json!({"status": "draining"}),
    );
    assert_eq!(r.status, 403, "{}", text(&r));
    assert_eq!(r.error_code(), "agent_id_mismatch");
    let listed = app
        .authed("GET", "/api/v1/admin/agents?limit=200", &root.access)
        .json();
    for agent in listed["items"].as_array().unwrap() {
        if agent["id"] == a.as_str() || agent["id"] == b.as_str() {
            assert_ne!(agent["status"], "draining", "{agent}");
        }
    }
    // The query may repeat the path's id.
    let r = agent_post(
        &app,
        &format!("/api/v1/agents/{a}/heartbeat?agent_id={a}"),
        &key_a,
        &json!({}),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
}

// ---- 13. MFA ------------------------------------------------------------------------------------

#[test]
fn mfa_setup_needs_the_current_password() {
    let app = TestApp::spawn();
    let root = app.admin();
    let user = create_user(&app, &root.access, "user", None).session;
    let setup = "/api/v1/auth/mfa/setup";
    let r = app.authed("POST", setup, &user.access);
    assert_eq!(r.status, 400, "{}", text(&r));
    assert_eq!(r.error_code(), "reauthentication_required");
    let r = app.json(
        "POST",
        setup,
        Some(&user.access),
        &json!({"current_password": "not my password at all"}),
    );
    assert_eq!(r.status, 403, "{}", text(&r));
    assert_eq!(r.error_code(), "invalid_current_password");
    let r = app.json(
        "POST",
        setup,
        Some(&user.access),
        &json!({"current_password": PASSWORD}),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
}

#[test]
fn mfa_disable_needs_a_code_or_the_current_password() {
    let app = TestApp::spawn();
    let root = app.admin();
    let user = create_user(&app, &root.access, "user", None).session;
    enrol_mfa(&app, &user);
    let r = app.json("DELETE", "/api/v1/auth/mfa", Some(&user.access), &json!({}));
    assert_eq!(r.status, 400, "{}", text(&r));
    assert_eq!(r.error_code(), "reauthentication_required");
    let r = app.json(
        "DELETE",
        "/api/v1/auth/mfa",
        Some(&user.access),
        &json!({"code": "000000"}),
    );
    assert_eq!(r.status, 400, "{}", text(&r));
    assert_eq!(r.error_code(), "invalid_mfa_code");
    let r = app.json(
        "DELETE",
        "/api/v1/auth/mfa",
        Some(&user.access),
        &json!({"current_password": PASSWORD}),
    );
    assert_eq!(r.status, 204, "{}", text(&r));
}

#[test]
fn mfa_verify_setup_is_rate_limited() {
    let app = TestApp::spawn();
    let root = app.admin();
    let user = create_user(&app, &root.access, "user", None).session;
    let r = app.json(
        "POST",
        "/api/v1/auth/mfa/setup",
        Some(&user.access),
        &json!({"current_password": PASSWORD}),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    // Six-digit codes are guessable without a limit: 5 second-factor attempts a minute.
    let statuses: Vec<u16> = (0..8)
        .map(|_| {
            app.json(
                "POST",
                "/api/v1/auth/mfa/verify-setup",
                Some(&user.access),
                &json!({"code": "000000"}),
            )
            .status
        })
        .collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 400 || *s == 429),
        "{statuses:?}"
    );
}

#[test]
fn platform_admin_can_reset_a_users_mfa() {
    let app = TestApp::spawn();
    let root = app.admin();
    let user = create_user(&app, &root.access, "user", None).session;
    enrol_mfa(&app, &user);
    let username = app.authed("GET", "/api/v1/users/me", &user.access).json()["username"]
        .as_str()
        .unwrap()
        .to_owned();
    let creds = json!({"username": username, "password": PASSWORD});
    let r = app.json("POST", "/api/v1/auth/login", None, &creds);
    assert_eq!(r.error_code(), "mfa_required");

    let reset = format!("/api/v1/users/{}/mfa", user.user_id);
    // Not an org admin, not the user, not a token.
    let org_admin = create_user(&app, &root.access, "admin", None).session;
    for token in [
        org_admin.access.clone(),
        user.access.clone(),
        create_pat(&app, &root.access, "full"),
    ] {
        let r = app.authed("DELETE", &reset, &token);
        assert_eq!(r.status, 403, "{}", text(&r));
    }
    let r = app.authed(
        "DELETE",
        &format!("/api/v1/users/{}/mfa", root.user_id),
        &root.access,
    );
    assert_eq!(r.status, 403, "{}", text(&r));
    assert_eq!(r.error_code(), "cannot_modify_self");
    let r = app.authed(
        "DELETE",
        "/api/v1/users/00000000-0000-4000-8000-000000000000/mfa",
        &root.access,
    );
    assert_eq!(r.status, 404);

    let r = app.authed("DELETE", &reset, &root.access);
    assert_eq!(r.status, 204, "{}", text(&r));
    let r = app.json("POST", "/api/v1/auth/login", None, &creds);
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(
        app.authed("GET", "/api/v1/users/me", &user.access).json()["mfa_enabled"],
        false
    );

    // Audited: who reset whose.
    let events = app.authed(
        "GET",
        &format!("/api/v1/admin/audit?resource_id={}&limit=50", user.user_id),
        &root.access,
    );
    assert_eq!(events.status, 200, "{}", text(&events));
    let found = events.json()["items"].as_array().unwrap().iter().any(|e| {
        e["action"] == "DELETE /api/v1/users/{id}/mfa"
            && e["status"] == 204
            && e["user_id"] == root.user_id.as_str()
    });
    assert!(found, "{}", text(&events));
}

// ---- 15. CSRF bound to the login session ------------------------------------------------------

#[test]
fn anonymous_csrf_request_writes_nothing() {
    let Some(app) = TestApp::spawn_with(&[]) else {
        return;
    };
    for _ in 0..5 {
        let r = app.get("/api/v1/auth/csrf");
        assert_eq!(r.status, 401, "{}", text(&r));
        assert!(set_cookies(&r).is_empty());
    }
    let db = rusqlite::Connection::open(app.database_path().unwrap()).unwrap();
    let rows: i64 = db
        .query_row("SELECT count(*) FROM csrf_tokens", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 0, "anonymous calls stored CSRF tokens");
}

#[test]
fn cookie_login_does_not_return_tokens_in_body() {
    let app = TestApp::spawn();
    let _ = app.admin();
    let login = app.json(
        "POST",
        "/api/v1/auth/login",
        None,
        &json!({"username": crate::helpers::ADMIN_USERNAME, "password": ADMIN_PASSWORD, "cookie": true}),
    );
    assert_eq!(login.status, 200, "{}", text(&login));
    let body = login.json();
    assert!(body.get("access_token").is_none(), "{body}");
    assert!(body.get("refresh_token").is_none(), "{body}");
    let session = cookie_value(&login, "__Host-ss_session").expect("session cookie");
    let refresh = cookie_value(&login, "__Host-ss_refresh").expect("refresh cookie");
    let csrf = cookie_value(&login, "__Host-csrf_token").expect("csrf cookie");
    let raw = text(&login);
    assert!(!raw.contains(&session) && !raw.contains(&refresh), "{raw}");
    assert_eq!(body["csrf_token"], csrf.as_str());
    // Every cookie is a `__Host-` cookie: Secure, Path=/, no Domain.
    for cookie in set_cookies(&login) {
        assert!(cookie.starts_with("__Host-"), "{cookie}");
        assert!(
            cookie.contains("; Secure") && cookie.contains("; Path=/;"),
            "{cookie}"
        );
        assert!(!cookie.to_ascii_lowercase().contains("domain="), "{cookie}");
        assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    }
    // A cookie session's refresh keeps the tokens out of the body too.
    let r = app.request(
        "POST",
        "/api/v1/auth/refresh",
        &[("cookie", &format!("__Host-ss_refresh={refresh}"))],
        Body::Empty,
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    assert!(r.json().get("access_token").is_none(), "{}", text(&r));
    let fresh = cookie_value(&r, "__Host-ss_session").expect("new session cookie");
    assert!(!text(&r).contains(&fresh));
    // A bearer login still answers the tokens in the body.
    let bearer = app.login(crate::helpers::ADMIN_USERNAME, ADMIN_PASSWORD);
    assert!(bearer.access.starts_with("ssa_"));
}

#[test]
fn the_session_csrf_token_is_accepted_by_every_component() {
    // Keyed by audit_key, which every component sees: a token minted by `auth` passes in `audit`.
    let app = TestApp::spawn_tuned(&[("audit_key", "an audit key for the e2e suite 0123")]);
    let _ = app.admin();
    let login = app.json(
        "POST",
        "/api/v1/auth/login",
        None,
        &json!({"username": crate::helpers::ADMIN_USERNAME, "password": ADMIN_PASSWORD, "cookie": true}),
    );
    assert_eq!(login.status, 200, "{}", text(&login));
    let session = cookie_value(&login, "__Host-ss_session").unwrap();
    let csrf = cookie_value(&login, "__Host-csrf_token").unwrap();
    let cookie = format!("__Host-ss_session={session}; __Host-csrf_token={csrf}");
    let r = app.request("POST", PURGE, &[("cookie", &cookie)], Body::Empty);
    assert_eq!(r.status, 403, "{}", text(&r));
    assert_eq!(r.error_code(), "csrf_missing");
    let r = app.request(
        "POST",
        PURGE,
        &[("cookie", &cookie), ("x-csrf-token", &csrf)],
        Body::Empty,
    );
    assert_eq!(r.status, 200, "{}", text(&r));
}
