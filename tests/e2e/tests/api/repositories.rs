//! Catalog repositories end to end (SPEC-wave2 §2.3, Decision 3): operators and admins add a
//! GitHub repository behind the URL guard, its git credential is sealed at rest and never shown
//! again, each repository gets a webhook secret shown once (rotatable, the previous one kept for
//! 24 h), and another org's repository answers 404.

use serde_json::{json, Value};

use crate::helpers::{expect_error, text, unique, TestApp};
use crate::setup::{create_org, create_user};

/// A valid `repository_secret_key` (32 bytes as hex).
const KEY: &str = "8f4c1b2a9d0e7f6a5b4c3d2e1f00112233445566778899aabbccddeeff001122";
const BASE: &str = "/api/v1/catalog/repositories";

/// The app with a sealing key; `None` against a shared server (not our configuration).
fn app_with_key() -> Option<TestApp> {
    TestApp::spawn_with(&[("repository_secret_key", KEY)])
}

/// A repository URL unique across runs.
fn repo_url() -> String {
    format!("https://github.com/streamspace-e2e/{}", unique("repo"))
}

fn create(app: &TestApp, token: &str, body: &Value) -> Value {
    let r = app.json("POST", BASE, Some(token), body);
    assert_eq!(r.status, 201, "{}", text(&r));
    r.json()
}

#[test]
fn repositories_are_created_listed_read_and_deleted() {
    let Some(app) = app_with_key() else { return };
    let admin = app.admin();
    let name = unique("Templates");
    let url = repo_url();
    let r = app.json(
        "POST",
        BASE,
        Some(&admin.access),
        &json!({"name": name, "url": format!("{url}.git")}),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    let repo = r.json();
    let id = repo["id"].as_str().unwrap().to_owned();
    assert_eq!(r.header("location"), Some(format!("{BASE}/{id}").as_str()));
    assert_eq!(repo["name"], name.as_str());
    assert_eq!(repo["url"], format!("{url}.git").as_str());
    assert_eq!(repo["branch"], "main");
    assert_eq!(repo["type"], "template");
    assert_eq!(repo["auth_type"], "none");
    assert_eq!(repo["has_auth_secret"], false);
    assert_eq!(repo["has_webhook_secret"], true);
    assert_eq!(repo["status"], "pending");
    assert_eq!(repo["template_count"], 0);
    assert_eq!(repo["sync_warnings"], json!([]));
    assert!(repo["sync_requested_at"].is_string(), "{repo}");
    assert!(repo["last_sync_at"].is_null());
    assert_eq!(
        repo["webhook_url"],
        format!("/api/v1/webhooks/github/{id}").as_str()
    );
    let secret = repo["webhook_secret"].as_str().unwrap();
    assert_eq!(secret.len(), 64);
    assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()));

    let got = app.authed("GET", &format!("{BASE}/{id}"), &admin.access);
    assert_eq!(got.status, 200, "{}", text(&got));
    assert_eq!(got.json()["name"], name.as_str());
    let list = app.authed("GET", BASE, &admin.access);
    assert_eq!(list.status, 200, "{}", text(&list));
    assert!(list.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|item| item["id"] == id.as_str()));

    let r = app.authed("DELETE", &format!("{BASE}/{id}"), &admin.access);
    assert_eq!(r.status, 204, "{}", text(&r));
    expect_error(
        &app.authed("GET", &format!("{BASE}/{id}"), &admin.access),
        404,
        "not_found",
    );
    // StreamSpace answers 200 when nothing was deleted; we answer 404.
    expect_error(
        &app.authed("DELETE", &format!("{BASE}/{id}"), &admin.access),
        404,
        "not_found",
    );
}

#[test]
fn duplicate_names_and_repositories_answer_409() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let name = unique("dup");
    let url = repo_url();
    create(&app, &admin.access, &json!({"name": name, "url": url}));
    let r = app.json(
        "POST",
        BASE,
        Some(&admin.access),
        &json!({"name": name, "url": repo_url()}),
    );
    expect_error(&r, 409, "name_taken");
    // The same repository written differently (case, `.git`, trailing slash) on the same branch.
    let same = format!(
        "{}.git/",
        url.to_ascii_uppercase()
            .replace("HTTPS://GITHUB.COM", "https://GitHub.com")
    );
    let r = app.json(
        "POST",
        BASE,
        Some(&admin.access),
        &json!({"name": unique("dup2"), "url": same}),
    );
    expect_error(&r, 409, "repository_exists");
    // Another branch of it is another catalog source.
    create(
        &app,
        &admin.access,
        &json!({"name": unique("dup3"), "url": url, "branch": "release/1.x"}),
    );
}

#[test]
fn repository_url_guard_refuses_ssrf_urls() {
    let app = TestApp::spawn();
    let admin = app.admin();
    for url in [
        "http://github.com/o/r",
        "file:///etc/passwd",
        "git@github.com:o/r.git",
        "https://github.com.evil.example/o/r",
        "https://evil.example/o/r",
        "https://user:pass@github.com/o/r",
        "https://ghp_token@github.com/o/r",
        "https://github.com:8443/o/r",
        "https://127.0.0.1/o/r",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/o/r",
        "https://2130706433/o/r",
        "https://github.com/o/%2e%2e",
        "https://github.com/o%2Fr/x",
        "https://github.com/o/r?x=1",
        "https://github.com/o/r#frag",
        "https://github.com/o/r/tree/main",
        "https://github.com/o/..",
        "https://github.com/o",
    ] {
        let r = app.json(
            "POST",
            BASE,
            Some(&admin.access),
            &json!({"name": unique("ssrf"), "url": url}),
        );
        expect_error(&r, 400, "invalid_url");
        assert!(
            !text(&r).contains("pass@") && !text(&r).contains("ghp_token"),
            "{url}: {}",
            text(&r)
        );
    }
    let long = format!("https://github.com/o/{}", "r".repeat(2100));
    let r = app.json(
        "POST",
        BASE,
        Some(&admin.access),
        &json!({"name": unique("ssrf"), "url": long}),
    );
    expect_error(&r, 400, "invalid_url");
}

#[test]
fn repository_body_is_validated() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let post = |body: Value| app.json("POST", BASE, Some(&admin.access), &body);
    for branch in ["a..b", "/main", "main.lock", "a b", "a~1", "x@{1}", ""] {
        expect_error(
            &post(json!({"name": unique("br"), "url": repo_url(), "branch": branch})),
            400,
            "invalid_field",
        );
    }
    for name in ["", "bad/name", &"n".repeat(101)] {
        expect_error(
            &post(json!({"name": name, "url": repo_url()})),
            400,
            "invalid_field",
        );
    }
    expect_error(
        &post(
            json!({"name": unique("ssh"), "url": repo_url(), "auth_type": "ssh", "auth_secret": "key"}),
        ),
        400,
        "unsupported_auth_type",
    );
    for (auth_type, secret) in [
        (json!("none"), json!("x")),
        (json!("token"), Value::Null),
        (json!("basic"), json!("no-colon")),
        (json!("oauth"), Value::Null),
    ] {
        expect_error(
            &post(
                json!({"name": unique("auth"), "url": repo_url(), "auth_type": auth_type, "auth_secret": secret}),
            ),
            400,
            "invalid_field",
        );
    }
    let r = post(json!({"name": unique("x"), "url": repo_url(), "extra": true}));
    assert_eq!(r.status, 400, "{}", text(&r));
}

#[test]
fn auth_secret_without_a_sealing_key_is_refused() {
    let Some(app) = TestApp::spawn_with(&[]) else {
        return;
    };
    let admin = app.admin();
    let r = app.json(
        "POST",
        BASE,
        Some(&admin.access),
        &json!({"name": unique("closed"), "url": repo_url(), "auth_type": "token", "auth_secret": "ghp_never_in_clear"}),
    );
    expect_error(&r, 400, "secret_storage_unavailable");
    // A public repository works without the key, but has no webhook secret until one is set.
    let repo = create(
        &app,
        &admin.access,
        &json!({"name": unique("public"), "url": repo_url()}),
    );
    assert!(repo["webhook_secret"].is_null(), "{repo}");
    assert_eq!(repo["has_webhook_secret"], false);
    let r = app.json(
        "POST",
        &format!("{BASE}/{}/webhook-secret", repo["id"].as_str().unwrap()),
        Some(&admin.access),
        &json!({}),
    );
    expect_error(&r, 400, "secret_storage_unavailable");
}

#[test]
fn malformed_sealing_key_is_a_configuration_error() {
    let Some(app) = TestApp::spawn_with(&[("repository_secret_key", "not-a-32-byte-key")]) else {
        return;
    };
    let admin = app.admin();
    let r = app.json(
        "POST",
        BASE,
        Some(&admin.access),
        &json!({"name": unique("cfg"), "url": repo_url()}),
    );
    expect_error(&r, 503, "configuration_error");
    assert!(!text(&r).contains("not-a-32-byte-key"), "{}", text(&r));
}

#[test]
fn secrets_never_appear_in_any_response_after_creation() {
    let Some(app) = app_with_key() else { return };
    let admin = app.admin();
    let token = format!("ghp_{}", unique("SeCrEt").replace('-', "x"));
    let r = app.json(
        "POST",
        BASE,
        Some(&admin.access),
        &json!({"name": unique("private"), "url": repo_url(), "auth_type": "token", "auth_secret": token}),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    assert!(
        !text(&r).contains(&token),
        "the git credential is never returned"
    );
    let repo = r.json();
    let id = repo["id"].as_str().unwrap().to_owned();
    assert_eq!(repo["has_auth_secret"], true);
    assert_eq!(repo["auth_type"], "token");
    let webhook_secret = repo["webhook_secret"].as_str().unwrap().to_owned();

    let basic = "deploy:hunter2-basic";
    let r = app.json(
        "POST",
        BASE,
        Some(&admin.access),
        &json!({"name": unique("basic"), "url": repo_url(), "auth_type": "basic", "auth_secret": basic}),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    assert!(!text(&r).contains("hunter2"));

    let rotated = app.json(
        "POST",
        &format!("{BASE}/{id}/webhook-secret"),
        Some(&admin.access),
        &json!({}),
    );
    assert_eq!(rotated.status, 200, "{}", text(&rotated));
    let new_secret = rotated.json()["webhook_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!text(&rotated).contains(&token));

    for r in [
        app.authed("GET", BASE, &admin.access),
        app.authed("GET", &format!("{BASE}/{id}"), &admin.access),
        app.authed("GET", &format!("{BASE}?limit=200"), &admin.access),
    ] {
        assert_eq!(r.status, 200, "{}", text(&r));
        let body = text(&r);
        for secret in [token.as_str(), "hunter2", &webhook_secret, &new_secret] {
            assert!(!body.contains(secret), "a secret leaked: {body}");
        }
        assert!(!body.contains("\"webhook_secret\""), "{body}");
        assert!(!body.contains("sealed"), "{body}");
    }
    // Nor in the logs (access log and audit lines the guest printed), where they are visible.
    if let Some(lines) = app.log_lines() {
        for line in lines {
            for secret in [token.as_str(), "hunter2", &webhook_secret, &new_secret] {
                assert!(!line.contains(secret), "a secret in the log: {line}");
            }
        }
    }
}

#[test]
fn rotating_the_webhook_secret_gives_a_new_one_and_keeps_the_old_for_a_day() {
    let Some(app) = app_with_key() else { return };
    let admin = app.admin();
    let repo = create(
        &app,
        &admin.access,
        &json!({"name": unique("rotate"), "url": repo_url()}),
    );
    let id = repo["id"].as_str().unwrap();
    let first = repo["webhook_secret"].as_str().unwrap();
    let r = app.json(
        "POST",
        &format!("{BASE}/{id}/webhook-secret"),
        Some(&admin.access),
        &json!({}),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    let rotated = r.json();
    let second = rotated["webhook_secret"].as_str().unwrap();
    assert_eq!(second.len(), 64);
    assert_ne!(second, first);
    assert_eq!(rotated["repository_id"], id);
    assert_eq!(
        rotated["webhook_url"],
        format!("/api/v1/webhooks/github/{id}").as_str()
    );
    assert!(
        rotated["previous_secret_expires_at"].is_string(),
        "{rotated}"
    );
    let r = app.json(
        "POST",
        &format!("{BASE}/{id}/webhook-secret"),
        Some(&admin.access),
        &json!({}),
    );
    assert_ne!(r.json()["webhook_secret"].as_str().unwrap(), second);
    expect_error(
        &app.json(
            "POST",
            &format!("{BASE}/00000000-0000-4000-8000-000000000000/webhook-secret"),
            Some(&admin.access),
            &json!({}),
        ),
        404,
        "not_found",
    );
}

#[test]
fn foreign_org_repositories_answer_404_and_users_403() {
    let app = TestApp::spawn();
    let platform = app.admin();
    let org_b = create_org(&app, &platform.access);
    let b_admin = create_user(&app, &platform.access, "admin", Some(&org_b)).token;
    let a_admin = create_user(&app, &platform.access, "admin", None).token;
    let a_operator = create_user(&app, &platform.access, "operator", None).token;
    let a_user = create_user(&app, &platform.access, "user", None).token;
    let url = repo_url();
    let repo = create(
        &app,
        &b_admin,
        &json!({"name": unique("foreign"), "url": url}),
    );
    let id = repo["id"].as_str().unwrap();

    for (method, path) in [
        ("GET", format!("{BASE}/{id}")),
        ("DELETE", format!("{BASE}/{id}")),
        ("POST", format!("{BASE}/{id}/webhook-secret")),
    ] {
        expect_error(
            &app.json(method, &path, Some(&a_admin), &json!({})),
            404,
            "not_found",
        );
        expect_error(
            &app.json(method, &path, Some(&a_operator), &json!({})),
            404,
            "not_found",
        );
    }
    let list = app.authed("GET", BASE, &a_admin).json();
    assert!(!list["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|item| item["id"] == id));
    // Names and URLs are per org: org A may add the same repository under the same name.
    create(
        &app,
        &a_operator,
        &json!({"name": repo["name"], "url": url}),
    );
    // Still there for its own org.
    assert_eq!(
        app.authed("GET", &format!("{BASE}/{id}"), &b_admin).status,
        200
    );

    // Same org, not allowed: users are refused (403), whatever the repository.
    for (method, path) in [
        ("GET", BASE.to_owned()),
        ("POST", BASE.to_owned()),
        ("GET", format!("{BASE}/{id}")),
        ("DELETE", format!("{BASE}/{id}")),
        ("POST", format!("{BASE}/{id}/webhook-secret")),
    ] {
        let r = app.json(
            method,
            &path,
            Some(&a_user),
            &json!({"name": "x", "url": repo_url()}),
        );
        assert_eq!(r.status, 403, "{method} {path}: {}", text(&r));
    }
}
