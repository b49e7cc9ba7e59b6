//! User and org administration end to end: creation, roles, disable cutting live tokens at once,
//! deletion, org scoping (a foreign org's user answers 404), platform-admin orgs.

use serde_json::json;

use crate::helpers::{unique, TestApp};
use crate::setup::{create_org, create_user, User, PASSWORD};

#[test]
fn admins_create_and_list_users_others_cannot() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let User {
        id,
        token,
        username,
        ..
    } = create_user(&app, &admin.access, "user", None);
    let me = app.authed("GET", "/api/v1/users/me", &token).json();
    assert_eq!(me["id"], id.as_str());
    assert_eq!(me["role"], "user");
    assert!(me.get("password_hash").is_none());

    let r = app.authed("GET", "/api/v1/users", &token);
    assert_eq!(r.status, 403);
    assert_eq!(r.error_code(), "forbidden");

    let list = app
        .authed("GET", "/api/v1/users?limit=200", &admin.access)
        .json();
    assert!(list["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["username"] == username.as_str()));
    assert!(list.get("next_cursor").is_some());

    let dup = app.json(
        "POST",
        "/api/v1/users",
        Some(&admin.access),
        &json!({"username": username, "email": "other@example.com", "password": PASSWORD}),
    );
    assert_eq!(dup.status, 409);
    let weak = app.json(
        "POST",
        "/api/v1/users",
        Some(&admin.access),
        &json!({"username": unique("weak"), "email": "w@example.com", "password": "short"}),
    );
    assert_eq!(weak.status, 400);
    assert_eq!(weak.error_code(), "weak_password");
}

#[test]
fn disabling_a_user_cuts_its_live_tokens_on_the_next_request() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let User {
        id,
        token,
        username,
        ..
    } = create_user(&app, &admin.access, "operator", None);
    assert_eq!(app.authed("GET", "/api/v1/users/me", &token).status, 200);
    let r = app.json(
        "PATCH",
        &format!("/api/v1/users/{id}"),
        Some(&admin.access),
        &json!({"status": "disabled"}),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["status"], "disabled");
    assert_eq!(app.authed("GET", "/api/v1/users/me", &token).status, 401);
    let login = app.json(
        "POST",
        "/api/v1/auth/login",
        None,
        &json!({"username": username, "password": PASSWORD}),
    );
    // API.md: a password login of a disabled account is 403 `account_disabled` (its tokens answer
    // 401 `user_disabled`: one code, one status, shared::error_codes).
    assert_eq!(login.status, 403);
    assert_eq!(login.error_code(), "account_disabled");
    // Re-enabled, the user logs in again (old tokens stay dead).
    let r = app.json(
        "PATCH",
        &format!("/api/v1/users/{id}"),
        Some(&admin.access),
        &json!({"status": "active"}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(app.authed("GET", "/api/v1/users/me", &token).status, 401);
    let _ = app.login(&username, PASSWORD);
}

#[test]
fn deleting_a_user_ends_everything() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let User { id, token, .. } = create_user(&app, &admin.access, "user", None);
    assert_eq!(
        app.authed("DELETE", &format!("/api/v1/users/{id}"), &admin.access)
            .status,
        204
    );
    assert_eq!(app.authed("GET", "/api/v1/users/me", &token).status, 401);
    assert_eq!(
        app.authed("GET", &format!("/api/v1/users/{id}"), &admin.access)
            .status,
        404
    );
    let me = app.authed("GET", "/api/v1/users/me", &admin.access);
    let admin_id = me.json()["id"].as_str().unwrap().to_owned();
    let r = app.authed(
        "DELETE",
        &format!("/api/v1/users/{admin_id}"),
        &admin.access,
    );
    // The suite's admin is the only platform admin: that answer comes first.
    assert_eq!(r.status, 409);
    assert_eq!(r.error_code(), "last_platform_admin");
    let User {
        id: org_admin_id,
        token: org_admin,
        ..
    } = create_user(&app, &admin.access, "admin", None);
    let r = app.authed(
        "DELETE",
        &format!("/api/v1/users/{org_admin_id}"),
        &org_admin,
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.error_code(), "cannot_modify_self");
}

#[test]
fn a_foreign_orgs_user_answers_404() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let org_id = create_org(&app, &admin.access);
    // The platform admin creates an org admin in the new org.
    let User {
        id: foreign_admin_id,
        token: foreign_admin,
        ..
    } = create_user(&app, &admin.access, "admin", Some(&org_id));
    let home_user_id = create_user(&app, &admin.access, "user", None).id;
    // The foreign org's admin cannot see or touch the home org's user: 404, not 403.
    for (method, path) in [
        ("GET", format!("/api/v1/users/{home_user_id}")),
        ("DELETE", format!("/api/v1/users/{home_user_id}")),
    ] {
        let r = app.authed(method, &path, &foreign_admin);
        assert_eq!(r.status, 404, "{method} {path}");
    }
    let r = app.json(
        "PATCH",
        &format!("/api/v1/users/{home_user_id}"),
        Some(&foreign_admin),
        &json!({"status": "disabled"}),
    );
    assert_eq!(r.status, 404);
    // Its list only holds its own org.
    let list = app
        .authed("GET", "/api/v1/users?limit=200", &foreign_admin)
        .json();
    let ids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![foreign_admin_id.as_str()]);
    // Org routes belong to the platform admin only.
    assert_eq!(
        app.authed("GET", "/api/v1/orgs", &foreign_admin).status,
        403
    );
    assert_eq!(
        app.authed("GET", &format!("/api/v1/orgs/{org_id}"), &admin.access)
            .status,
        200
    );
    let renamed = app.json(
        "PATCH",
        &format!("/api/v1/orgs/{org_id}"),
        Some(&admin.access),
        &json!({"display_name": "Renamed Org"}),
    );
    assert_eq!(renamed.json()["display_name"], "Renamed Org");
}
