//! Catalog sync end to end (SPEC-wave2 §2.4): the test serves a fixture repository from a local
//! server that answers exactly as GitHub's API and raw host do (`e2e::github_fixture`), points
//! `github_api_url` / `github_raw_url` (and their origins) at it, and syncs over HTTP: manifests in
//! both `defaultResources` forms, a multi-document file, a `kind: TemplateCatalog` file, an invalid
//! file, a duplicate name, a symlink, a `.github/` directory, a file over 256 KiB and a directory
//! with a comma in its name. Then: a re-sync fetches only the changed blob, an unchanged commit
//! costs one API call and no raw fetch, an emptied repository loses its templates, a failing sync
//! keeps the catalog and stores a sanitised error, the lease, and the maintenance drain.
//!
//! The catalog templates are read from the database file (the browse routes are another part).

use std::collections::BTreeSet;

use e2e::github_fixture::{FixtureFile, GitHubFixture};
use serde_json::{json, Value};

use crate::helpers::{text, Body, TestApp};
use crate::setup::wait_for;

const OWNER: &str = "acme";
const REPO: &str = "templates";
const KEY: &str = "8f4c1b2a9d0e7f6a5b4c3d2e1f00112233445566778899aabbccddeeff001122";
const MAINTENANCE: &str = "maintenance-token-for-sync-tests";

fn file(content: &str) -> FixtureFile {
    FixtureFile {
        content: content.as_bytes().to_vec(),
        mode: "100644",
    }
}

fn template(name: &str, display: &str, image: &str, resources: &str) -> String {
    format!(
        "apiVersion: stream.space/v1alpha1\nkind: Template\nmetadata:\n  name: {name}\n  namespace: workspaces\nspec:\n  displayName: {display}\n  description: The {display} app\n  category: Testing\n  baseImage: {image}\n  {resources}\n  kasmvnc:\n    enabled: true\n    port: 3000\n  tags: [e2e, {name}]\n"
    )
}

/// The fixture repository (see the module documentation).
fn full_repository() -> Vec<(&'static str, FixtureFile)> {
    let mut huge = template(
        "huge",
        "Huge",
        "nginx:1.27",
        "defaultResources: {memory: 1Gi, cpu: 500m}",
    );
    huge.push_str(&format!("# {}\n", "x".repeat(300 * 1024)));
    vec![
        (
            "browsers/firefox.yaml",
            file(&template(
                "firefox",
                "Firefox",
                "lscr.io/linuxserver/firefox:latest",
                "defaultResources: {memory: 2Gi, cpu: 1000m}",
            )),
        ),
        (
            "development/code-server.yaml",
            file(&template(
                "code-server",
                "Code Server",
                "lscr.io/linuxserver/code-server:latest",
                "defaultResources:\n    requests: {memory: 1Gi, cpu: 500m}\n    limits: {memory: 4Gi, cpu: 2000m}",
            )),
        ),
        (
            "design/bundle.yaml",
            file(&format!(
                "{}---\n{}",
                template("gimp", "GIMP", "lscr.io/linuxserver/gimp:latest", "defaultResources: {memory: 2Gi, cpu: 1000m}"),
                template("inkscape", "Inkscape", "lscr.io/linuxserver/inkscape:latest", "defaultResources: {memory: 2Gi, cpu: 1000m}")
            )),
        ),
        (
            "administration,business/odoo.yaml",
            file(&template("odoo", "Odoo", "odoo:17", "defaultResources: {memory: 2Gi, cpu: 1000m}")),
        ),
        (
            "catalog.yaml",
            file("apiVersion: stream.space/v1alpha1\nkind: TemplateCatalog\ntemplates:\n  - firefox\n"),
        ),
        (
            "broken/invalid.yaml",
            file("apiVersion: stream.space/v1alpha1\nkind: Template\nmetadata: {name: broken}\nspec: {displayName: Broken}\n"),
        ),
        (
            "zzz/gimp-again.yaml",
            file(&template("gimp", "GIMP 2", "lscr.io/linuxserver/gimp:2", "defaultResources: {memory: 2Gi, cpu: 1000m}")),
        ),
        (
            "links/firefox-link.yaml",
            FixtureFile {
                content: b"../browsers/firefox.yaml".to_vec(),
                mode: "120000",
            },
        ),
        (
            ".github/workflows/ci.yml",
            file(&template("from-dot-github", "Hidden", "nginx:1.27", "defaultResources: {memory: 1Gi, cpu: 500m}")),
        ),
        ("big/huge.yaml", FixtureFile { content: huge.into_bytes(), mode: "100644" }),
        ("README.md", file("# templates\n")),
    ]
}

const EXPECTED: [&str; 5] = ["code-server", "firefox", "gimp", "inkscape", "odoo"];

struct World {
    app: TestApp,
    github: GitHubFixture,
    admin: String,
    repo_id: String,
}

/// The app pointed at a fixture GitHub, with one repository `acme/templates` holding `files`.
/// `None` against a shared server (its GitHub is not ours to choose).
fn world_with(
    files: &[(&str, FixtureFile)],
    api_path: &str,
    extra: &[(&str, &str)],
) -> Option<World> {
    let github = GitHubFixture::start().unwrap();
    github.set_files(OWNER, REPO, "main", files);
    let origin = github.origin();
    let api = format!("{origin}{api_path}");
    let mut vars = vec![
        ("github_api_url", api.as_str()),
        ("github_raw_url", origin.as_str()),
        ("github_api_origin", origin.as_str()),
        ("github_raw_origin", origin.as_str()),
        ("maintenance_token", MAINTENANCE),
        ("repository_secret_key", KEY),
    ];
    vars.extend_from_slice(extra);
    let app = TestApp::spawn_with(&vars)?;
    let admin = app.admin().access;
    let repo_id = create_repository(
        &app,
        &admin,
        "Fixture",
        &format!("https://github.com/{OWNER}/{REPO}"),
        None,
    );
    Some(World {
        app,
        github,
        admin,
        repo_id,
    })
}

fn world() -> Option<World> {
    world_with(&full_repository(), "", &[])
}

fn create_repository(
    app: &TestApp,
    token: &str,
    name: &str,
    url: &str,
    auth: Option<(&str, &str)>,
) -> String {
    let mut body = json!({"name": name, "url": url});
    if let Some((kind, secret)) = auth {
        body["auth_type"] = json!(kind);
        body["auth_secret"] = json!(secret);
    }
    let r = app.json("POST", "/api/v1/catalog/repositories", Some(token), &body);
    assert_eq!(r.status, 201, "create repository: {}", text(&r));
    r.json()["id"].as_str().unwrap().to_owned()
}

impl World {
    fn sync(&self, query: &str) -> Value {
        self.github.reset_counts();
        let r = self.app.json(
            "POST",
            &format!("/api/v1/catalog/repositories/{}/sync{query}", self.repo_id),
            Some(&self.admin),
            &json!({}),
        );
        assert_eq!(r.status, 200, "sync: {}", text(&r));
        r.json()
    }

    /// `(name, source_path, manifest)` of the repository's catalog templates, by name.
    fn catalog(&self) -> Vec<(String, String, Value)> {
        let path = self.app.database_path().expect("the database file");
        let conn = rusqlite::Connection::open(path).unwrap();
        let mut stmt = conn
            .prepare("SELECT name, source_path, manifest FROM catalog_templates WHERE repository_id = ?1 ORDER BY name")
            .unwrap();
        stmt.query_map([&self.repo_id], |row| {
            let manifest: String = row.get(2)?;
            Ok((
                row.get(0)?,
                row.get(1)?,
                serde_json::from_str(&manifest).unwrap(),
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    /// Whether the database file is reachable (not with libSQL): the catalog rows are read there.
    fn db(&self) -> bool {
        self.app.database_path().is_some()
    }

    /// The repository's catalog template names are `expected` (checked where the database file
    /// is reachable; the counts in the answers are checked everywhere).
    fn assert_names(&self, expected: &[&str], why: &str) {
        if self.db() {
            let names: Vec<String> = self.catalog().into_iter().map(|(n, _, _)| n).collect();
            assert_eq!(names, expected, "{why}");
        }
    }

    fn sql(&self, statement: &str) {
        let path = self.app.database_path().expect("the database file");
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        conn.execute(statement, [&self.repo_id]).unwrap();
    }
}

fn reasons(result: &Value) -> Vec<(String, String)> {
    result["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["path"].as_str().unwrap().to_owned(),
                w["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn sync_reads_a_fixture_repository_as_github_serves_it() {
    let Some(w) = world() else { return };
    let body = w.sync("");
    let result = &body["result"];
    assert_eq!(result["status"], "synced", "{body}");
    assert_eq!(result["added"], 5, "{body}");
    assert_eq!(
        (result["updated"].clone(), result["removed"].clone()),
        (json!(0), json!(0))
    );
    w.assert_names(
        &EXPECTED,
        "both defaultResources forms, every document, a comma directory",
    );

    // Warnings: the invalid file, the duplicate (the first by path wins), the large file.
    let warnings = reasons(result);
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(
        warnings
            .iter()
            .any(|(p, r)| p == "broken/invalid.yaml" && r.contains("baseImage")),
        "{warnings:?}"
    );
    assert!(
        warnings.contains(&(
            "zzz/gimp-again.yaml".to_owned(),
            "duplicate template name 'gimp' (first defined in design/bundle.yaml)".to_owned()
        )),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|(p, r)| p == "big/huge.yaml" && r.contains("file too large")),
        "{warnings:?}"
    );
    if w.db() {
        let gimp = w
            .catalog()
            .into_iter()
            .find(|(n, _, _)| n == "gimp")
            .unwrap();
        assert_eq!(gimp.1, "design/bundle.yaml");
        assert_eq!(
            gimp.2["spec"]["baseImage"],
            "lscr.io/linuxserver/gimp:latest"
        );
        let code = w
            .catalog()
            .into_iter()
            .find(|(n, _, _)| n == "code-server")
            .unwrap();
        assert_eq!(
            code.2["spec"]["defaultResources"]["requests"]["memory"],
            "1Gi"
        );
        assert_eq!(
            code.2["spec"]["kasmvnc"]["enabled"], true,
            "unknown keys are kept"
        );
    }

    // The repository.
    let repo = &body["repository"];
    assert_eq!(repo["status"], "synced");
    assert_eq!(repo["template_count"], 5);
    assert_eq!(repo["error_message"], Value::Null);
    assert_eq!(
        repo["last_sync_commit"],
        w.github.head(OWNER, REPO, "main").unwrap().as_str()
    );
    assert_eq!(repo["sync_warnings"].as_array().unwrap().len(), 3);

    // Exactly two API calls, sent as GitHub asks; raw fetches only for candidates.
    let seen = w.github.seen();
    let api: Vec<_> = seen.iter().filter(|r| r.is_api()).collect();
    assert_eq!(api.len(), 2, "{api:?}");
    assert_eq!(api[0].accept.as_deref(), Some("application/vnd.github.sha"));
    assert!(api[1].target.ends_with("?recursive=1"), "{api:?}");
    assert!(api
        .iter()
        .all(|r| r.api_version.as_deref() == Some("2022-11-28")));
    let raw: BTreeSet<String> = w.github.raw_fetches().into_iter().collect();
    let sha = w.github.head(OWNER, REPO, "main").unwrap();
    let expected: BTreeSet<String> = [
        "administration%2Cbusiness/odoo.yaml",
        "broken/invalid.yaml",
        "browsers/firefox.yaml",
        "catalog.yaml",
        "design/bundle.yaml",
        "development/code-server.yaml",
        "zzz/gimp-again.yaml",
    ]
    .iter()
    .map(|p| format!("/{OWNER}/{REPO}/{sha}/{p}"))
    .collect();
    assert_eq!(
        raw, expected,
        "no symlink, no .github/, no oversized file, no README"
    );
}

#[test]
fn resync_fetches_only_the_changed_blob_and_an_unchanged_commit_fetches_nothing() {
    let Some(w) = world() else { return };
    w.sync("");
    let mut files = full_repository();
    files[0].1 = file(&template(
        "firefox",
        "Firefox ESR",
        "lscr.io/linuxserver/firefox:esr",
        "defaultResources: {memory: 2Gi, cpu: 1000m}",
    ));
    w.github.set_files(OWNER, REPO, "main", &files);
    let body = w.sync("");
    let result = &body["result"];
    assert_eq!(result["status"], "synced", "{body}");
    assert_eq!(
        w.github.raw_fetches().len(),
        1,
        "exactly one raw fetch: {:?}",
        w.github.raw_fetches()
    );
    assert!(w.github.raw_fetches()[0].ends_with("/browsers/firefox.yaml"));
    assert_eq!(w.github.api_calls(), 2);
    assert_eq!(
        (
            result["added"].clone(),
            result["updated"].clone(),
            result["unchanged"].clone()
        ),
        (json!(0), json!(1), json!(4))
    );
    assert_eq!(
        reasons(result).len(),
        3,
        "the memo keeps the warnings of unchanged files"
    );
    let firefox = w
        .catalog()
        .into_iter()
        .find(|(n, _, _)| n == "firefox")
        .unwrap();
    assert_eq!(firefox.2["spec"]["displayName"], "Firefox ESR");

    // The same commit again: one API call, no raw fetch.
    let body = w.sync("");
    assert_eq!(body["result"]["status"], "unchanged", "{body}");
    assert!(w.github.api_calls() <= 2);
    assert_eq!(w.github.raw_fetches().len(), 0);
    assert_eq!(body["repository"]["status"], "synced");

    // Forced: the tree is read again, the memo still spares every fetch.
    let body = w.sync("?force=true");
    assert_eq!(body["result"]["status"], "synced", "{body}");
    assert_eq!(body["result"]["unchanged"], 5);
    assert_eq!(w.github.raw_fetches().len(), 0);
    w.assert_names(&EXPECTED, "");
}

#[test]
fn a_loser_of_a_duplicate_wins_once_the_winner_is_gone() {
    let Some(w) = world() else { return };
    w.sync("");
    // Without design/bundle.yaml, zzz/gimp-again.yaml (unchanged, never stored) defines gimp.
    let files: Vec<_> = full_repository()
        .into_iter()
        .filter(|(p, _)| *p != "design/bundle.yaml")
        .collect();
    w.github.set_files(OWNER, REPO, "main", &files);
    let body = w.sync("");
    assert_eq!(body["result"]["status"], "synced", "{body}");
    let raw = w.github.raw_fetches();
    assert_eq!(
        raw.len(),
        1,
        "only the file that now wins is read again: {raw:?}"
    );
    assert!(raw[0].ends_with("/zzz/gimp-again.yaml"), "{raw:?}");
    assert_eq!(body["repository"]["template_count"], 4, "{body}");
    if w.db() {
        let gimp = w
            .catalog()
            .into_iter()
            .find(|(n, _, _)| n == "gimp")
            .expect("gimp from the other file");
        assert_eq!(gimp.1, "zzz/gimp-again.yaml");
        assert_eq!(gimp.2["spec"]["baseImage"], "lscr.io/linuxserver/gimp:2");
    }
    w.assert_names(&["code-server", "firefox", "gimp", "odoo"], "gimp moved");
}

#[test]
fn emptying_a_repository_removes_its_catalog_templates() {
    let Some(w) = world() else { return };
    w.sync("");
    w.assert_names(&EXPECTED, "synced");
    w.github.set_files(
        OWNER,
        REPO,
        "main",
        &[("README.md", file("# nothing left\n"))],
    );
    let body = w.sync("");
    assert_eq!(body["result"]["status"], "synced", "{body}");
    assert_eq!(body["result"]["removed"], 5);
    assert_eq!(body["repository"]["template_count"], 0);
    w.assert_names(&[], "FIX: StreamSpace kept them when the new set was empty");
}

#[test]
fn a_failing_sync_keeps_the_catalog_and_stores_a_sanitised_error() {
    let Some(w) = world() else { return };
    let first = w.sync("");
    let commit = first["repository"]["last_sync_commit"].clone();

    w.github
        .fail_api(Some((500, "{\"message\":\"Server Error\"}")));
    let body = w.sync("");
    assert_eq!(body["result"]["status"], "failed", "{body}");
    assert_eq!(body["repository"]["status"], "failed");
    assert_eq!(
        body["repository"]["error_message"],
        "GitHub answered 500 to the commit request"
    );
    assert_eq!(
        body["repository"]["last_sync_commit"], commit,
        "the last good commit stays"
    );
    w.assert_names(&EXPECTED, "the previous catalog stays");

    // The branch is gone: GitHub's 422 "No commit found" reads as not found.
    w.github.fail_api(None);
    w.github.remove_branch(OWNER, REPO, "main");
    let body = w.sync("");
    assert_eq!(
        body["repository"]["error_message"], "repository or branch not found",
        "{body}"
    );
    w.assert_names(&EXPECTED, "");

    // Rate limited: the reset time is named.
    w.github.set_files(OWNER, REPO, "main", &full_repository());
    w.github.set_rate_limit_remaining(0);
    let body = w.sync("");
    let error = body["repository"]["error_message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        error.starts_with("GitHub rate limit exceeded (resets at 2030-03-17T"),
        "{error}"
    );

    // The next good sync clears the error.
    w.github.set_rate_limit_remaining(100);
    let body = w.sync("");
    assert_eq!(body["repository"]["status"], "synced", "{body}");
    assert_eq!(body["repository"]["error_message"], Value::Null);
}

#[test]
fn private_repository_credentials_are_sent_and_never_stored_in_errors() {
    let github_token = "ghp_deploymentwidetoken0000000000";
    let Some(w) = world_with(
        &full_repository(),
        "/api/v3",
        &[("github_token", github_token)],
    ) else {
        return;
    };
    // A public repository: the deployment's token goes to the API only (GitHub Enterprise path).
    let body = w.sync("");
    assert_eq!(body["result"]["status"], "synced", "{body}");
    for r in w.github.seen() {
        if r.is_api() {
            assert!(r.target.starts_with("/api/v3/repos/"), "{}", r.target);
            assert_eq!(
                r.authorization.as_deref(),
                Some(format!("Bearer {github_token}").as_str())
            );
        } else {
            assert_eq!(
                r.authorization, None,
                "github_token never goes to the raw host"
            );
        }
    }
    // A private repository: its own token goes to both hosts.
    let secret = "ghp_privaterepotoken1111111111";
    w.github
        .set_files(OWNER, "private-templates", "main", &full_repository());
    let private = create_repository(
        &w.app,
        &w.admin,
        "Private",
        &format!("https://github.com/{OWNER}/private-templates.git"),
        Some(("token", secret)),
    );
    let private_world = World {
        app: w.app,
        github: w.github,
        admin: w.admin,
        repo_id: private,
    };
    let body = private_world.sync("");
    assert_eq!(body["result"]["status"], "synced", "{body}");
    let seen = private_world.github.seen();
    assert!(!seen.is_empty());
    for r in &seen {
        assert_eq!(
            r.authorization.as_deref(),
            Some(format!("Bearer {secret}").as_str()),
            "{}",
            r.target
        );
    }
    // A failure never echoes a credential.
    private_world
        .github
        .fail_api(Some((401, "{\"message\":\"Bad credentials\"}")));
    let body = private_world.sync("");
    let stored = body.to_string();
    assert_eq!(
        body["repository"]["error_message"], "authentication failed",
        "{body}"
    );
    assert!(
        !stored.contains(secret) && !stored.contains(github_token),
        "{stored}"
    );
}

#[test]
fn a_held_lease_answers_202_and_an_expired_one_is_taken_over() {
    let Some(w) = world() else { return };
    if !w.db() {
        return; // the lease is set in the database file
    }
    w.sql("UPDATE repositories SET status = 'syncing', sync_lease_until = 99999999999999 WHERE id = ?1");
    let r = w.app.json(
        "POST",
        &format!("/api/v1/catalog/repositories/{}/sync", w.repo_id),
        Some(&w.admin),
        &json!({}),
    );
    assert_eq!(r.status, 202, "{}", text(&r));
    assert_eq!(r.json()["status"], "syncing");
    assert_eq!(
        w.github.seen().len(),
        0,
        "no call while another sync holds the lease"
    );
    // A crashed sync: its lease has expired.
    w.sql("UPDATE repositories SET sync_lease_until = 1 WHERE id = ?1");
    let body = w.sync("");
    assert_eq!(body["result"]["status"], "synced", "{body}");
}

#[test]
fn the_drain_runs_requested_repositories_with_the_maintenance_token_only() {
    let Some(w) = world() else { return };
    let path = "/api/v1/catalog/sync/pending";
    let r = w.app.request("POST", path, &[], Body::Empty);
    assert_eq!(r.status, 401, "{}", text(&r));
    let r = w.app.request(
        "POST",
        path,
        &[("authorization", "Bearer wrong-token")],
        Body::Empty,
    );
    assert_eq!(r.status, 401, "{}", text(&r));
    let bearer = format!("Bearer {MAINTENANCE}");
    // A new repository is requested at creation.
    let r = w.app.request(
        "POST",
        path,
        &[("authorization", bearer.as_str())],
        Body::Empty,
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    let synced = r.json()["synced"].clone();
    assert_eq!(synced.as_array().unwrap().len(), 1, "{synced}");
    assert_eq!(synced[0]["id"], w.repo_id.as_str());
    assert_eq!(synced[0]["status"], "synced");
    w.assert_names(&EXPECTED, "");
    // Nothing is pending any more.
    w.github.reset_counts();
    let r = w.app.request(
        "POST",
        path,
        &[("authorization", bearer.as_str())],
        Body::Empty,
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.json()["synced"], json!([]));
    assert_eq!(w.github.seen().len(), 0);

    // The org's sync: every repository, one by one.
    let r = w
        .app
        .json("POST", "/api/v1/catalog/sync", Some(&w.admin), &json!({}));
    assert_eq!(r.status, 202, "{}", text(&r));
    assert_eq!(r.json()["synced"][0]["status"], "unchanged", "{}", text(&r));
    assert_eq!(r.json()["queued"], json!([]));
}

#[test]
fn a_sync_holds_no_write_lock_while_it_waits_for_github() {
    let Some(w) = world() else { return };
    w.github.delay_raw(3000);
    let started = std::time::Instant::now();
    let (base, admin, id) = (w.app.base.clone(), w.admin.clone(), w.repo_id.clone());
    let sync = std::thread::spawn(move || {
        crate::helpers::send(
            &base,
            "POST",
            &format!("/api/v1/catalog/repositories/{id}/sync"),
            &[
                ("authorization", &format!("Bearer {admin}")),
                ("content-type", "application/json"),
            ],
            Body::Bytes(b"{}".to_vec()),
        )
    });
    // Once the raw fetches are in flight, another request writes (a template).
    wait_for(
        std::time::Duration::from_secs(20),
        std::time::Duration::from_millis(20),
        "the sync never reached its raw fetches",
        || {
            if w.github.raw_fetches().is_empty() {
                Err("no raw fetch yet".to_owned())
            } else {
                Ok(())
            }
        },
    );
    let write = std::time::Instant::now();
    let r = w.app.json(
        "POST",
        "/api/v1/templates",
        Some(&w.admin),
        &json!({"name": "written-meanwhile", "display_name": "Meanwhile", "base_image": "nginx:1.27"}),
    );
    let waited = write.elapsed();
    assert_eq!(r.status, 201, "{}", text(&r));
    let sync = sync.join().unwrap();
    assert_eq!(sync.status, 200, "{}", text(&sync));
    // Seven files answered 3 s late each: concurrent fetches (at most 8 at a time) take ~3 s.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(12),
        "raw fetches ran one by one: {:?}",
        started.elapsed()
    );
    assert!(
        waited < std::time::Duration::from_millis(2000),
        "a write waited {waited:?} for the sync's outbound calls"
    );
    w.assert_names(&EXPECTED, "");
}
