//! Personal access tokens end to end: created by a login session and shown once, stored as a hash,
//! listed as metadata, scoped (`read` = safe methods), owner-only, and stopped at once by
//! revocation, deletion or disabling the owner. Expiry is covered by the component's unit tests
//! (a fake clock), since the server's clock cannot be moved from here.
//!
//! Each test works with its own fresh user, so the tests can share one server.

use serde_json::{json, Value};

use crate::helpers::{text, Body, TestApp};
use crate::setup::{create_org, create_user, User};

fn create_key(app: &TestApp, token: &str, body: &Value) -> Value {
    let r = app.json("POST", "/api/v1/api-keys", Some(token), body);
    assert_eq!(
        r.status,
        201,
        "create key: {}",
        String::from_utf8_lossy(&r.body)
    );
    r.json()
}

fn key_of(v: &Value) -> (String, String) {
    (
        v["id"].as_str().unwrap().to_owned(),
        v["key"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn a_key_is_shown_once_and_stored_as_a_hash() {
    let app = TestApp::spawn();
    let user = create_user(&app, &app.admin().access, "user", None).session;
    let v = create_key(
        &app,
        &user.access,
        &json!({"name": "ci", "scopes": ["read"], "expires_in_days": 7}),
    );
    let (id, key) = key_of(&v);
    assert!(key.starts_with("ssp_") && key.len() == 47, "{key}");
    assert_eq!(v["key_prefix"].as_str().unwrap(), &key[..8]);
    assert_eq!(v["scopes"], json!(["read"]));
    assert_eq!(v["name"], "ci");
    assert!(v["expires_at"].as_str().unwrap() > v["created_at"].as_str().unwrap());

    let list = app.authed("GET", "/api/v1/api-keys", &user.access);
    assert_eq!(list.status, 200);
    assert!(!text(&list).contains(&key), "the list shows the key again");
    let items = list.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert_eq!(item["id"], id.as_str());
    assert_eq!(item["key_prefix"], v["key_prefix"]);
    assert_eq!(item["status"], "active");
    assert_eq!(item["use_count"], 0);
    assert!(item["last_used_at"].is_null() && item["revoked_at"].is_null());
    assert_eq!(item["expires_at"], v["expires_at"]);
    assert!(item.get("key").is_none() && item.get("token_hash").is_none());
    assert!(list.json()["next_cursor"].is_null());

    // At rest: the hash, never the key (test host only: the database file is ours to read).
    if let Some(path) = app.database_path() {
        let db = rusqlite::Connection::open(path).unwrap();
        let (hash, prefix): (String, String) = db
            .query_row(
                "SELECT token_hash, key_prefix FROM api_keys WHERE id = ?",
                [&id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(hash, shared::secrets::TokenHash::of(&key).as_str());
        assert_eq!(prefix, &key[..8]);
        let leaked: i64 = db
            .query_row("SELECT count(*) FROM api_keys WHERE instr(token_hash || name || coalesce(user_agent, ''), ?) > 0", [&key], |r| r.get(0))
            .unwrap();
        assert_eq!(leaked, 0);
    }
    if let Some(lines) = app.log_lines() {
        assert!(
            lines.iter().all(|l| !l.contains(&key)),
            "a key reached the log"
        );
    }
}

#[test]
fn invalid_create_requests_are_400() {
    let app = TestApp::spawn();
    let user = create_user(&app, &app.admin().access, "user", None).session;
    let cases = [
        (json!({"name": "", "scopes": ["read"]}), "empty name"),
        (
            json!({"name": "x".repeat(101), "scopes": ["read"]}),
            "name over 100 characters",
        ),
        (json!({"name": "k", "scopes": []}), "no scopes"),
        (
            json!({"name": "k", "scopes": ["read", "write"]}),
            "unknown scope",
        ),
        (
            json!({"name": "k", "scopes": ["read"], "expires_in_days": 0}),
            "zero days",
        ),
        (
            json!({"name": "k", "scopes": ["read"], "expires_in_days": 366}),
            "over a year",
        ),
        (
            json!({"name": "k", "scopes": ["read"], "user_id": user.user_id}),
            "unknown field",
        ),
        (json!({"name": "k"}), "missing scopes"),
    ];
    for (body, why) in cases {
        let r = app.json("POST", "/api/v1/api-keys", Some(&user.access), &body);
        assert_eq!(r.status, 400, "{why}: {}", text(&r));
        r.error_code();
    }
    let r = app.json(
        "POST",
        "/api/v1/api-keys",
        Some(&user.access),
        &json!({"name": "k", "scopes": ["read", "write"]}),
    );
    assert_eq!(r.error_code(), "invalid_scope");
    assert!(
        r.json()["message"].as_str().unwrap().contains("write"),
        "{}",
        text(&r)
    );
    let list = app.authed("GET", "/api/v1/api-keys", &user.access).json();
    assert_eq!(list["items"], json!([]));
}

#[test]
fn scopes_bound_what_a_key_may_do() {
    let app = TestApp::spawn();
    let user = create_user(&app, &app.admin().access, "user", None).session;
    let (_, read) = key_of(&create_key(
        &app,
        &user.access,
        &json!({"name": "read", "scopes": ["read"]}),
    ));
    let (_, full) = key_of(&create_key(
        &app,
        &user.access,
        &json!({"name": "full", "scopes": ["full"]}),
    ));

    let me = app.authed("GET", "/api/v1/users/me", &read);
    assert_eq!(me.status, 200, "{}", text(&me));
    assert_eq!(me.json()["id"], user.user_id.as_str());
    let r = app.authed("POST", "/api/v1/auth/mfa/setup", &read);
    assert_eq!(r.status, 403);
    assert_eq!(r.error_code(), "insufficient_scope");

    // The scope passes; the credential kind does not: MFA enrolment needs a login session.
    let r = app.authed("POST", "/api/v1/auth/mfa/setup", &full);
    assert_eq!(r.status, 403, "{}", text(&r));
    assert_eq!(r.error_code(), "login_session_required");

    // No key mints keys, whatever its scope.
    let child = json!({"name": "child", "scopes": ["full"], "expires_in_days": 365});
    let r = app.json("POST", "/api/v1/api-keys", Some(&full), &child);
    assert_eq!(r.status, 403);
    assert_eq!(r.error_code(), "login_session_required");
    let r = app.json("POST", "/api/v1/api-keys", Some(&read), &child);
    assert_eq!(r.status, 403);
    assert_eq!(r.error_code(), "insufficient_scope");
    assert_eq!(
        app.authed("GET", "/api/v1/api-keys", &read).json()["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Nor does a key's role exceed its owner's.
    let r = app.authed("GET", "/api/v1/users", &full);
    assert_eq!(r.status, 403, "{}", text(&r));
}

#[test]
fn revocation_and_deletion_bite_on_the_next_request() {
    let app = TestApp::spawn();
    let user = create_user(&app, &app.admin().access, "user", None).session;
    let (id, key) = key_of(&create_key(
        &app,
        &user.access,
        &json!({"name": "k", "scopes": ["full"]}),
    ));
    assert_eq!(app.authed("GET", "/api/v1/users/me", &key).status, 200);

    let r = app.authed(
        "POST",
        &format!("/api/v1/api-keys/{id}/revoke"),
        &user.access,
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    let first = r.json();
    assert_eq!(first["status"], "revoked");
    assert_eq!(first["id"], id.as_str());
    assert!(first.get("key").is_none());
    let r = app.authed("GET", "/api/v1/users/me", &key);
    assert_eq!(r.status, 401);
    assert_eq!(r.error_code(), "invalid_token");
    let again = app.authed(
        "POST",
        &format!("/api/v1/api-keys/{id}/revoke"),
        &user.access,
    );
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["revoked_at"], first["revoked_at"]);

    let (id2, key2) = key_of(&create_key(
        &app,
        &user.access,
        &json!({"name": "k2", "scopes": ["read"]}),
    ));
    assert_eq!(app.authed("GET", "/api/v1/users/me", &key2).status, 200);
    let r = app.authed("DELETE", &format!("/api/v1/api-keys/{id2}"), &user.access);
    assert_eq!(r.status, 204);
    assert_eq!(app.authed("GET", "/api/v1/users/me", &key2).status, 401);
    let r = app.authed("DELETE", &format!("/api/v1/api-keys/{id2}"), &user.access);
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "not_found");

    let items = app.authed("GET", "/api/v1/api-keys", &user.access).json()["items"].clone();
    assert_eq!(items.as_array().unwrap().len(), 1);
    assert_eq!(items[0]["id"], id.as_str());
    assert_eq!(items[0]["status"], "revoked");
}

#[test]
fn usage_counts_uses_and_records_where_a_key_was_made() {
    let app = TestApp::spawn();
    let user = create_user(&app, &app.admin().access, "user", None).session;
    let auth = format!("Bearer {}", user.access);
    let r = app.request(
        "POST",
        "/api/v1/api-keys",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
            ("user-agent", "e2e-pat-client/2.0"),
        ],
        Body::Bytes(
            json!({"name": "k", "scopes": ["read"]})
                .to_string()
                .into_bytes(),
        ),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    let (id, key) = key_of(&r.json());
    for _ in 0..3 {
        assert_eq!(app.authed("GET", "/api/v1/users/me", &key).status, 200);
    }
    let r = app.authed("GET", &format!("/api/v1/api-keys/{id}/usage"), &user.access);
    assert_eq!(r.status, 200, "{}", text(&r));
    let u = r.json();
    assert_eq!(u["id"], id.as_str());
    assert_eq!(u["use_count"], 3);
    assert!(u["last_used_at"].is_string());
    assert!(u["created_at"].is_string());
    assert_eq!(u["user_agent"], "e2e-pat-client/2.0");
    assert!(u.get("created_ip").is_some());
    // Reading usage with the key itself counts as one more use.
    let u = app
        .authed("GET", &format!("/api/v1/api-keys/{id}/usage"), &key)
        .json();
    assert_eq!(u["use_count"], 4);
}

#[test]
fn another_users_key_answers_404() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let owner = create_user(&app, &admin.access, "user", None).session;
    let colleague = create_user(&app, &admin.access, "user", None).session;
    let org_id = create_org(&app, &admin.access);
    let outsider = create_user(&app, &admin.access, "user", Some(&org_id)).session;

    let (id, key) = key_of(&create_key(
        &app,
        &owner.access,
        &json!({"name": "mine", "scopes": ["full"]}),
    ));
    for (who, other) in [
        ("colleague", &colleague),
        ("outsider", &outsider),
        ("admin", &admin),
    ] {
        for (method, path) in [
            ("POST", format!("/api/v1/api-keys/{id}/revoke")),
            ("GET", format!("/api/v1/api-keys/{id}/usage")),
            ("DELETE", format!("/api/v1/api-keys/{id}")),
        ] {
            let r = app.authed(method, &path, &other.access);
            assert_eq!(r.status, 404, "{who} {method} {path}: {}", text(&r));
            assert_eq!(r.error_code(), "not_found");
        }
        let list = app.authed("GET", "/api/v1/api-keys", &other.access).json();
        assert!(
            list["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|k| k["id"] != id.as_str()),
            "{who} lists it"
        );
    }
    assert_eq!(
        app.authed("GET", "/api/v1/users/me", &key).status,
        200,
        "still alive"
    );
}

#[test]
fn list_pages_newest_first() {
    let app = TestApp::spawn();
    let user = create_user(&app, &app.admin().access, "user", None).session;
    let created: Vec<String> = (0..5)
        .map(|i| {
            key_of(&create_key(
                &app,
                &user.access,
                &json!({"name": format!("k{i}"), "scopes": ["read"]}),
            ))
            .0
        })
        .collect();
    let mut seen = Vec::new();
    let mut path = "/api/v1/api-keys?limit=2".to_owned();
    for _ in 0..10 {
        let v = app.authed("GET", &path, &user.access).json();
        let items = v["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|k| k["id"].as_str().unwrap().to_owned()));
        match v["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/api-keys?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    let mut expected = created.clone();
    expected.sort();
    let mut got = seen.clone();
    got.sort();
    assert_eq!(got, expected, "every key exactly once");
    // Created a few milliseconds apart at least in order: the last one comes first.
    let all = app.authed("GET", "/api/v1/api-keys", &user.access).json();
    let stamps: Vec<String> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["created_at"].as_str().unwrap().to_owned())
        .collect();
    let mut sorted = stamps.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(stamps, sorted, "newest first");
    let r = app.authed("GET", "/api/v1/api-keys?cursor=not-a-cursor", &user.access);
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "invalid_cursor");
}

#[test]
fn disabling_the_owner_stops_its_keys() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let User {
        id: user_id,
        session: user,
        ..
    } = create_user(&app, &admin.access, "user", None);
    let (id, key) = key_of(&create_key(
        &app,
        &user.access,
        &json!({"name": "k", "scopes": ["read"]}),
    ));
    assert_eq!(app.authed("GET", "/api/v1/users/me", &key).status, 200);
    let r = app.json(
        "PATCH",
        &format!("/api/v1/users/{user_id}"),
        Some(&admin.access),
        &json!({"status": "disabled"}),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    let r = app.authed("GET", "/api/v1/users/me", &key);
    assert_eq!(r.status, 401, "{}", text(&r));
    if let Some(path) = app.database_path() {
        let db = rusqlite::Connection::open(path).unwrap();
        let revoked: Option<i64> = db
            .query_row("SELECT revoked_at FROM api_keys WHERE id = ?", [&id], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(revoked.is_some(), "disabling revokes the user's keys");
    }
    // Enabling the account again does not bring a revoked key back.
    let r = app.json(
        "PATCH",
        &format!("/api/v1/users/{user_id}"),
        Some(&admin.access),
        &json!({"status": "active"}),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(app.authed("GET", "/api/v1/users/me", &key).status, 401);
}

#[test]
fn the_routes_need_a_user() {
    let app = TestApp::spawn();
    let id = "00000000-0000-4000-8000-000000000001";
    for (method, path) in [
        ("POST", "/api/v1/api-keys".to_owned()),
        ("GET", "/api/v1/api-keys".to_owned()),
        ("POST", format!("/api/v1/api-keys/{id}/revoke")),
        ("DELETE", format!("/api/v1/api-keys/{id}")),
        ("GET", format!("/api/v1/api-keys/{id}/usage")),
    ] {
        let r = app.request(method, &path, &[], Body::Empty);
        assert_eq!(r.status, 401, "{method} {path}");
        assert_eq!(r.error_code(), "unauthenticated");
        let r = app.authed(
            method,
            &path,
            "ssp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        );
        assert_eq!(r.status, 401, "{method} {path} with an unknown key");
        assert_eq!(r.error_code(), "invalid_token");
    }
}
