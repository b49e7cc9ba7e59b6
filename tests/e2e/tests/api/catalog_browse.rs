//! The catalog over HTTP (SPEC-wave2 §2.3): a repository synced from a fake GitHub fills the
//! org's catalog; users browse and filter it; an operator installs a catalog template (201, then
//! 200 on a re-install), a user starts a streaming session from the installed template, and a
//! changed manifest upstream shows as `update_available` after the next sync.

use e2e::github_fixture::{FixtureFile, GitHubFixture};
use serde_json::json;

use crate::helpers::{text, TestApp};
use crate::sessions::post_session;
use crate::setup::{create_user, online_agent};

fn manifest(name: &str, display: &str, category: &str, tags: &str) -> FixtureFile {
    FixtureFile {
        content: format!(
            "apiVersion: stream.space/v1alpha1\nkind: Template\nmetadata:\n  name: {name}\nspec:\n  displayName: {display}\n  category: {category}\n  baseImage: lscr.io/linuxserver/{name}:latest\n  defaultResources: {{memory: 1Gi, cpu: 500m}}\n  tags: [{tags}]\n"
        )
        .into_bytes(),
        mode: "100644",
    }
}

#[test]
fn a_synced_catalog_is_browsed_installed_and_started_as_a_session() {
    let github = GitHubFixture::start().unwrap();
    let origin = github.origin();
    let Some(app) = TestApp::spawn_with(&[
        ("github_api_url", origin.as_str()),
        ("github_raw_url", origin.as_str()),
        ("github_api_origin", origin.as_str()),
        ("github_raw_origin", origin.as_str()),
    ]) else {
        return;
    };
    let admin = app.admin().access;
    github.set_files(
        "acme",
        "apps",
        "main",
        &[
            (
                "web/firefox.yaml",
                manifest("firefox", "Firefox", "Web Browsers", "web, browser"),
            ),
            (
                "web/chromium.yaml",
                manifest("chromium", "Chromium", "Web Browsers", "web, browser"),
            ),
            (
                "office/libreoffice.yaml",
                manifest("libreoffice", "LibreOffice", "Office", "office"),
            ),
        ],
    );
    let r = app.json(
        "POST",
        "/api/v1/catalog/repositories",
        Some(&admin),
        &json!({"name": "apps", "url": "https://github.com/acme/apps"}),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    let repo = r.json()["id"].as_str().unwrap().to_owned();
    let sync = |expect_added: u64| {
        let r = app.json(
            "POST",
            &format!("/api/v1/catalog/repositories/{repo}/sync"),
            Some(&admin),
            &json!({}),
        );
        assert_eq!(r.status, 200, "{}", text(&r));
        assert_eq!(r.json()["result"]["added"], expect_added, "{}", text(&r));
    };
    sync(3);

    // Any user of the org browses; filters and search apply.
    let user = create_user(&app, &admin, "user", None).token;
    let list = |query: &str| -> Vec<String> {
        let r = app.authed("GET", &format!("/api/v1/catalog/templates?{query}"), &user);
        assert_eq!(r.status, 200, "{query}: {}", text(&r));
        r.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(list("sort=name"), ["chromium", "firefox", "libreoffice"]);
    assert_eq!(list("category=office"), ["libreoffice"]);
    assert_eq!(list("tag=BROWSER&sort=name"), ["chromium", "firefox"]);
    assert_eq!(list("q=fox"), ["firefox"]);
    let r = app.authed("GET", "/api/v1/catalog/templates?q=firefox", &user);
    let firefox = r.json()["items"][0].clone();
    assert_eq!(firefox["repository"]["id"], repo.as_str());
    assert_eq!(firefox["installed"], false);
    let id = firefox["id"].as_str().unwrap().to_owned();
    let detail = app.authed("GET", &format!("/api/v1/catalog/templates/{id}"), &user);
    assert_eq!(detail.status, 200);
    assert_eq!(detail.json()["manifest"]["metadata"]["name"], "firefox");

    // Only operators and admins install; a user gets 403.
    let install = |token: &str| {
        app.json(
            "POST",
            &format!("/api/v1/catalog/templates/{id}/install"),
            Some(token),
            &json!({}),
        )
    };
    assert_eq!(install(&user).status, 403);
    let r = install(&admin);
    assert_eq!(r.status, 201, "{}", text(&r));
    let template = r.json();
    assert_eq!(template["source"], "catalog");
    assert_eq!(template["catalog_template_id"], id.as_str());
    assert_eq!(template["update_available"], false);
    assert!(r
        .header("location")
        .unwrap()
        .ends_with(template["id"].as_str().unwrap()));
    let again = install(&admin);
    assert_eq!(again.status, 200, "{}", text(&again));
    assert_eq!(again.json()["id"], template["id"]);
    let r = app.authed("GET", &format!("/api/v1/catalog/templates/{id}"), &user);
    assert_eq!(r.json()["installed"], true);
    assert_eq!(r.json()["install_count"], 2);

    // The installed template starts a session (with the manifest's default resources).
    online_agent(&app, &admin);
    let r = post_session(&app, &user, &json!({"template": "firefox"}));
    assert_eq!(r.status, 202, "{}", text(&r));
    assert_eq!(r.json()["resources"]["cpu"], "500m");
    assert_eq!(r.json()["streaming"]["protocol"], "selkies");

    // Upstream changes the manifest: after the sync the installed template has an update.
    github.set_files(
        "acme",
        "apps",
        "main",
        &[
            (
                "web/firefox.yaml",
                manifest("firefox", "Firefox ESR", "Web Browsers", "web, browser"),
            ),
            (
                "web/chromium.yaml",
                manifest("chromium", "Chromium", "Web Browsers", "web, browser"),
            ),
            (
                "office/libreoffice.yaml",
                manifest("libreoffice", "LibreOffice", "Office", "office"),
            ),
        ],
    );
    sync(0);
    let tid = template["id"].as_str().unwrap();
    let r = app.authed("GET", &format!("/api/v1/templates/{tid}"), &admin);
    assert_eq!(r.json()["update_available"], true, "{}", text(&r));
    let r = install(&admin);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["display_name"], "Firefox ESR");
    assert_eq!(r.json()["update_available"], false);
}
