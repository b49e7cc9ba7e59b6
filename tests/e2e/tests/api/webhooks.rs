//! Inbound webhooks end to end (SPEC-wave2 §3): GitHub deliveries shaped as GitHub sends them
//! (octokit's payload examples, JSON and form), signed over the raw bytes; the per-repository
//! route (Decision 3) and the deployment-wide one; StreamSpace's plain HMAC form on both paths;
//! Standard Webhooks; dedupe and replays; the delivery log's access; and the sync running after
//! the 202 (Decision 2) against the fixture GitHub (`e2e::github_fixture`).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use e2e::github_fixture::{FixtureFile, GitHubFixture};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::helpers::{expect_error, text, unique, Body, Resp, TestApp};
use crate::setup::{create_org, create_user, wait_for};

const OWNER: &str = "acme";
const REPO: &str = "templates";
const KEY: &str = "8f4c1b2a9d0e7f6a5b4c3d2e1f00112233445566778899aabbccddeeff001122";
const GITHUB_SECRET: &str = "It's a Secret to Everybody";
const PLAIN_SECRET: &str = "plain-secret-for-e2e";
/// The Standard Webhooks JS/Python/Go test key (SPEC-wave2 §3.6).
const STANDARD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const DELIVERIES: &str = "/api/v1/admin/webhooks/deliveries";

fn mac(secret: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).unwrap();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn github_signature(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", hex(&mac(secret.as_bytes(), &[body])))
}

fn template(name: &str) -> FixtureFile {
    FixtureFile {
        content: format!(
            "apiVersion: stream.space/v1alpha1\nkind: Template\nmetadata:\n  name: {name}\nspec:\n  displayName: {name}\n  description: The {name} app\n  category: Testing\n  baseImage: nginx:1.27\n  defaultResources: {{memory: 1Gi, cpu: 500m}}\n"
        )
        .into_bytes(),
        mode: "100644",
    }
}

struct World {
    app: TestApp,
    github: GitHubFixture,
    admin: String,
    repo_id: String,
    /// The repository's own webhook secret (shown once at creation).
    repo_secret: String,
}

fn world(extra: &[(&str, &str)]) -> Option<World> {
    let github = GitHubFixture::start().unwrap();
    github.set_files(OWNER, REPO, "main", &[("apps/web.yaml", template("web"))]);
    github.set_files("other", "repo", "main", &[("apps/b.yaml", template("b"))]);
    let origin = github.origin();
    let mut vars = vec![
        ("github_api_url", origin.as_str()),
        ("github_raw_url", origin.as_str()),
        ("github_api_origin", origin.as_str()),
        ("github_raw_origin", origin.as_str()),
        ("repository_secret_key", KEY),
        ("github_webhook_secret", GITHUB_SECRET),
        ("webhook_secret", PLAIN_SECRET),
    ];
    vars.extend_from_slice(extra);
    let app = TestApp::spawn_with(&vars)?;
    let admin = app.admin().access;
    let (repo_id, repo_secret) =
        create_repository(&app, &admin, &format!("https://github.com/{OWNER}/{REPO}"));
    Some(World {
        app,
        github,
        admin,
        repo_id,
        repo_secret,
    })
}

fn create_repository(app: &TestApp, token: &str, url: &str) -> (String, String) {
    let r = app.json(
        "POST",
        "/api/v1/catalog/repositories",
        Some(token),
        &json!({"name": unique("hook"), "url": url}),
    );
    assert_eq!(r.status, 201, "create repository: {}", text(&r));
    let v = r.json();
    (
        v["id"].as_str().unwrap().to_owned(),
        v["webhook_secret"].as_str().unwrap().to_owned(),
    )
}

/// octokit `ping/payload.json`, trimmed.
fn ping_payload() -> Vec<u8> {
    serde_json::to_vec_pretty(&json!({
        "zen": "Anything added dilutes everything else.",
        "hook_id": 109948940,
        "hook": {"type": "Repository", "id": 109948940, "name": "web", "active": true,
                 "events": ["*"],
                 "config": {"content_type": "json", "url": "https://smee.io/****************",
                            "insecure_ssl": "0"}},
        "repository": {"id": 186853002, "full_name": "Codertocat/Hello-World",
                       "created_at": "2019-05-15T15:19:25Z"},
        "sender": {"login": "Codertocat", "id": 21031067}
    }))
    .unwrap()
}

/// octokit `push/with-new-branch.payload.json`'s shape (integer times, as push payloads have).
fn push_payload(owner: &str, repo: &str, git_ref: &str, deleted: bool) -> Value {
    json!({
        "ref": git_ref,
        "before": "0000000000000000000000000000000000000000",
        "after": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        "created": !deleted, "deleted": deleted, "forced": false,
        "base_ref": null,
        "compare": format!("https://github.com/{owner}/{repo}/compare/simple-tag"),
        "commits": [], "head_commit": null,
        "repository": {
            "id": 186853002, "name": repo, "full_name": format!("{owner}/{repo}"),
            "private": false,
            "html_url": format!("https://github.com/{owner}/{repo}"),
            "clone_url": format!("https://github.com/{owner}/{repo}.git"),
            "ssh_url": format!("git@github.com:{owner}/{repo}.git"),
            "git_url": format!("git://github.com/{owner}/{repo}.git"),
            "created_at": 1557933565, "pushed_at": 1557933657,
            "default_branch": "main"
        },
        "pusher": {"name": "Codertocat", "email": "21031067+Codertocat@users.noreply.github.com"},
        "sender": {"login": "Codertocat", "id": 21031067}
    })
}

fn send_github(
    app: &TestApp,
    path: &str,
    secret: Option<&str>,
    event: &str,
    delivery: &str,
    content_type: &str,
    body: &[u8],
) -> Resp {
    let signature = secret.map(|s| github_signature(s, body));
    let mut headers = vec![
        ("content-type", content_type),
        ("user-agent", "GitHub-Hookshot/044aadd"),
        ("x-github-event", event),
        ("x-github-delivery", delivery),
        ("x-github-hook-id", "109948940"),
    ];
    if let Some(sig) = signature.as_deref() {
        headers.push(("x-hub-signature-256", sig));
    }
    app.request("POST", path, &headers, Body::Bytes(body.to_vec()))
}

fn push_json(app: &TestApp, path: &str, secret: &str, delivery: &str, payload: &Value) -> Resp {
    let body = serde_json::to_vec_pretty(payload).unwrap();
    send_github(
        app,
        path,
        Some(secret),
        "push",
        delivery,
        "application/json",
        &body,
    )
}

fn guid() -> String {
    let n = unique("d");
    let digits: String = n.chars().filter(char::is_ascii_alphanumeric).collect();
    format!("72d3162e-cc78-11e3-{digits}")
}

fn repository(app: &TestApp, token: &str, id: &str) -> Value {
    let r = app.authed("GET", &format!("/api/v1/catalog/repositories/{id}"), token);
    assert_eq!(r.status, 200, "{}", text(&r));
    r.json()
}

/// Polls the repository until `status` is `synced` (the sync ran after the response).
fn wait_synced(app: &TestApp, token: &str, id: &str) -> Value {
    wait_for(
        Duration::from_secs(30),
        Duration::from_millis(100),
        "never synced",
        || {
            let repo = repository(app, token, id);
            if repo["status"] == "synced" {
                Ok(repo)
            } else {
                Err(repo.to_string())
            }
        },
    )
}

fn deliveries(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let r = app.authed("GET", &format!("{DELIVERIES}{query}"), token);
    assert_eq!(r.status, 200, "{}", text(&r));
    r.json()["items"].as_array().unwrap().clone()
}

#[test]
fn github_ping_and_push_as_github_sends_them_json_and_form() {
    let Some(w) = world(&[]) else { return };
    let shared = "/api/v1/webhooks/github";
    let ping = ping_payload();
    let r = send_github(
        &w.app,
        shared,
        Some(GITHUB_SECRET),
        "ping",
        &guid(),
        "application/json",
        &ping,
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.json()["zen"], "Anything added dilutes everything else.");
    assert_eq!(r.json()["hook_id"], 109948940);
    // The delivery's audit row names the verified sender as its principal.
    let request_id = r.header("x-request-id").unwrap().to_owned();
    let audit = w.app.authed(
        "GET",
        &format!("/api/v1/admin/audit?org_id=*&request_id={request_id}"),
        &w.admin,
    );
    assert_eq!(audit.status, 200, "{}", text(&audit));
    assert_eq!(
        audit.json()["items"][0]["principal"],
        "webhook:github",
        "{}",
        text(&audit)
    );

    // A branch push (JSON), matched across URL forms → 202 and the sync runs after it.
    let r = push_json(
        &w.app,
        shared,
        GITHUB_SECRET,
        &guid(),
        &push_payload("Acme", "Templates", "refs/heads/main", false),
    );
    assert_eq!(r.status, 202, "{}", text(&r));
    assert_eq!(r.json()["repository_ids"], json!([w.repo_id]));
    let synced = wait_synced(&w.app, &w.admin, &w.repo_id);
    assert_eq!(synced["template_count"], 1, "{synced}");

    // The same as a form (`payload=`), GitHub's default for new hooks.
    let json_text =
        serde_json::to_string(&push_payload(OWNER, REPO, "refs/heads/main", false)).unwrap();
    let form: String = form_urlencoded_payload(&json_text);
    let r = send_github(
        &w.app,
        shared,
        Some(GITHUB_SECRET),
        "push",
        &guid(),
        "application/x-www-form-urlencoded",
        form.as_bytes(),
    );
    assert_eq!(r.status, 202, "{}", text(&r));

    // octokit's `push/payload.json` is a tag deletion: ignored; other branches match nothing.
    let r = push_json(
        &w.app,
        shared,
        GITHUB_SECRET,
        &guid(),
        &push_payload(OWNER, REPO, "refs/tags/simple-tag", true),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.json()["reason"], "ref");
    let r = push_json(
        &w.app,
        shared,
        GITHUB_SECRET,
        &guid(),
        &push_payload(OWNER, REPO, "refs/heads/main", true),
    );
    assert_eq!(r.json()["reason"], "ref", "a branch deletion is ignored");
    expect_error(
        &push_json(
            &w.app,
            shared,
            GITHUB_SECRET,
            &guid(),
            &push_payload(OWNER, REPO, "refs/heads/dev", false),
        ),
        404,
        "repository_not_found",
    );
    let r = send_github(
        &w.app,
        shared,
        Some(GITHUB_SECRET),
        "issues",
        &guid(),
        "application/json",
        b"{}",
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.json()["reason"], "event");
    let r = send_github(
        &w.app,
        shared,
        Some(GITHUB_SECRET),
        "push",
        &guid(),
        "application/json",
        b"not json",
    );
    expect_error(&r, 400, "invalid_json");
}

fn form_urlencoded_payload(json: &str) -> String {
    let mut out = String::from("payload=");
    for b in json.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.*".contains(&b) {
            out.push(b as char);
        } else if b == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[test]
fn a_replayed_delivery_id_changes_nothing_and_a_failed_one_is_reprocessed() {
    let Some(w) = world(&[]) else { return };
    let shared = "/api/v1/webhooks/github";
    let id = guid();
    let payload = push_payload(OWNER, REPO, "refs/heads/main", false);
    assert_eq!(
        push_json(&w.app, shared, GITHUB_SECRET, &id, &payload).status,
        202
    );
    let first = wait_synced(&w.app, &w.admin, &w.repo_id);
    let r = push_json(&w.app, shared, GITHUB_SECRET, &id, &payload);
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.json()["status"], "duplicate");
    std::thread::sleep(Duration::from_millis(300));
    let again = repository(&w.app, &w.admin, &w.repo_id);
    assert_eq!(
        again["last_sync_at"], first["last_sync_at"],
        "no second sync"
    );
    let rows = deliveries(&w.app, &w.admin, "?source=github");
    let mine: Vec<&Value> = rows
        .iter()
        .filter(|d| d["delivery_id"] == id.as_str())
        .collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["attempts"], 1);

    // A delivery that failed (no repository yet) is processed again when GitHub redelivers it
    // with the same id.
    let failed = guid();
    let other = push_payload("other", "repo", "refs/heads/main", false);
    expect_error(
        &push_json(&w.app, shared, GITHUB_SECRET, &failed, &other),
        404,
        "repository_not_found",
    );
    let (other_id, _) = create_repository(&w.app, &w.admin, "https://github.com/other/repo");
    let r = push_json(&w.app, shared, GITHUB_SECRET, &failed, &other);
    assert_eq!(r.status, 202, "{}", text(&r));
    assert_eq!(r.json()["repository_ids"], json!([other_id]));
    let row = deliveries(&w.app, &w.admin, "?status=accepted")
        .into_iter()
        .find(|d| d["delivery_id"] == failed.as_str())
        .unwrap();
    assert_eq!(row["attempts"], 2, "{row}");
}

#[test]
fn unsigned_or_wrongly_signed_deliveries_are_401_and_store_nothing() {
    let Some(w) = world(&[]) else { return };
    let shared = "/api/v1/webhooks/github";
    let own = format!("/api/v1/webhooks/github/{}", w.repo_id);
    let body = serde_json::to_vec(&push_payload(OWNER, REPO, "refs/heads/main", false)).unwrap();
    for path in [shared, own.as_str()] {
        let r = send_github(
            &w.app,
            path,
            None,
            "push",
            &guid(),
            "application/json",
            &body,
        );
        expect_error(&r, 401, "missing_signature");
        let r = send_github(
            &w.app,
            path,
            Some("not the secret"),
            "push",
            &guid(),
            "application/json",
            &body,
        );
        expect_error(&r, 401, "invalid_signature");
        // SHA-1 alone is not accepted.
        let r = w.app.request(
            "POST",
            path,
            &[
                ("content-type", "application/json"),
                ("x-github-event", "push"),
                ("x-github-delivery", &guid()),
                (
                    "x-hub-signature",
                    "sha1=0123456789abcdef0123456789abcdef01234567",
                ),
            ],
            Body::Bytes(body.clone()),
        );
        expect_error(&r, 401, "missing_signature");
        // The signature covers the bytes received: one byte more fails.
        let mut tampered = body.clone();
        tampered.push(b' ');
        let sig = github_signature(GITHUB_SECRET, &body);
        let r = w.app.request(
            "POST",
            path,
            &[
                ("content-type", "application/json"),
                ("x-github-event", "push"),
                ("x-github-delivery", &guid()),
                ("x-hub-signature-256", &sig),
            ],
            Body::Bytes(tampered),
        );
        expect_error(&r, 401, "invalid_signature");
        // An encoded body is refused before anything else.
        let r = w.app.request(
            "POST",
            path,
            &[
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
                ("x-github-event", "push"),
                ("x-github-delivery", &guid()),
                ("x-hub-signature-256", &sig),
            ],
            Body::Bytes(body.clone()),
        );
        expect_error(&r, 415, "unsupported_media_type");
    }
    let r = send_github(
        &w.app,
        "/webhooks/repository/sync",
        None,
        "push",
        &guid(),
        "application/json",
        br#"{"repository_url":"https://github.com/acme/templates"}"#,
    );
    expect_error(&r, 401, "missing_signature");
    assert!(
        deliveries(&w.app, &w.admin, "").is_empty(),
        "nothing stored"
    );
    let repo = repository(&w.app, &w.admin, &w.repo_id);
    assert_eq!(repo["status"], "pending", "nothing synced: {repo}");
}

#[test]
fn no_secret_configured_is_401_webhook_not_configured() {
    let Some(app) = TestApp::spawn_with(&[]) else {
        return;
    };
    let body = ping_payload();
    for path in [
        "/api/v1/webhooks/github",
        "/webhooks/repository/sync",
        "/api/v1/webhooks/repository/sync",
        "/api/v1/webhooks/standard/ci",
    ] {
        let r = send_github(
            &app,
            path,
            Some(""),
            "ping",
            &guid(),
            "application/json",
            &body,
        );
        expect_error(&r, 401, "webhook_not_configured");
    }
    // A repository created without a sealing key has no secret of its own.
    let admin = app.admin().access;
    let r = app.json(
        "POST",
        "/api/v1/catalog/repositories",
        Some(&admin),
        &json!({"name": unique("nokey"), "url": "https://github.com/acme/templates"}),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let r = send_github(
        &app,
        &format!("/api/v1/webhooks/github/{id}"),
        Some("x"),
        "ping",
        &guid(),
        "application/json",
        &body,
    );
    expect_error(&r, 401, "webhook_not_configured");
    let r = send_github(
        &app,
        "/api/v1/webhooks/github/00000000-0000-4000-8000-000000000000",
        Some("x"),
        "ping",
        &guid(),
        "application/json",
        &body,
    );
    expect_error(&r, 404, "not_found");
}

#[test]
fn a_push_through_another_orgs_repository_route_cannot_touch_this_org() {
    let Some(w) = world(&[]) else { return };
    let platform = w.app.admin();
    let org_b = create_org(&w.app, &platform.access);
    let b_admin = create_user(&w.app, &platform.access, "admin", Some(&org_b)).token;
    let a_admin = create_user(&w.app, &platform.access, "admin", None).token;
    let (b_repo, b_secret) = create_repository(&w.app, &b_admin, "https://github.com/other/repo");
    let b_route = format!("/api/v1/webhooks/github/{b_repo}");

    // Org B's secret, B's route, a payload naming org A's repository: only B's is synced.
    let r = push_json(
        &w.app,
        &b_route,
        &b_secret,
        &guid(),
        &push_payload(OWNER, REPO, "refs/heads/main", false),
    );
    assert_eq!(r.status, 202, "{}", text(&r));
    assert_eq!(r.json()["repository_ids"], json!([b_repo]));
    wait_synced(&w.app, &b_admin, &b_repo);
    let a = repository(&w.app, &w.admin, &w.repo_id);
    assert_eq!(a["status"], "pending", "org A's repository untouched: {a}");
    assert!(a["last_sync_at"].is_null(), "{a}");
    // Org A's secret does not open B's route, nor B's A's.
    let payload = push_payload(OWNER, REPO, "refs/heads/main", false);
    expect_error(
        &push_json(&w.app, &b_route, &w.repo_secret, &guid(), &payload),
        401,
        "invalid_signature",
    );
    expect_error(
        &push_json(
            &w.app,
            &format!("/api/v1/webhooks/github/{}", w.repo_id),
            &b_secret,
            &guid(),
            &payload,
        ),
        401,
        "invalid_signature",
    );
    // The delivery belongs to org B: its admin sees it, org A's admin does not.
    let b_rows = deliveries(&w.app, &b_admin, "");
    assert_eq!(b_rows.len(), 1, "{b_rows:?}");
    assert_eq!(b_rows[0]["source"], format!("github:{b_repo}").as_str());
    let b_delivery = b_rows[0]["id"].as_str().unwrap().to_owned();
    assert!(deliveries(&w.app, &a_admin, "").is_empty());
    for (method, path) in [
        ("GET", format!("{DELIVERIES}/{b_delivery}")),
        ("POST", format!("{DELIVERIES}/{b_delivery}/replay")),
    ] {
        expect_error(
            &w.app.json(method, &path, Some(&a_admin), &json!({})),
            404,
            "not_found",
        );
    }
    // A push to B's route on another branch is ignored.
    let r = push_json(
        &w.app,
        &b_route,
        &b_secret,
        &guid(),
        &push_payload("other", "repo", "refs/heads/dev", false),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.json()["reason"], "branch");
}

#[test]
fn a_rotated_out_repository_secret_fails_after_the_grace_period() {
    let Some(w) = world(&[]) else { return };
    let Some(db_path) = w.app.database_path() else {
        eprintln!("skipped: the database file is not reachable (libSQL)");
        return;
    };
    let route = format!("/api/v1/webhooks/github/{}", w.repo_id);
    let r = w.app.json(
        "POST",
        &format!("/api/v1/catalog/repositories/{}/webhook-secret", w.repo_id),
        Some(&w.admin),
        &json!({}),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    let new_secret = r.json()["webhook_secret"].as_str().unwrap().to_owned();
    let payload = push_payload(OWNER, REPO, "refs/heads/main", false);
    // Within the grace both verify.
    assert_eq!(
        push_json(&w.app, &route, &w.repo_secret, &guid(), &payload).status,
        202
    );
    assert_eq!(
        push_json(&w.app, &route, &new_secret, &guid(), &payload).status,
        202
    );
    // The grace is over (24 h later): the old secret fails, the new one still verifies.
    let conn = rusqlite::Connection::open(db_path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    conn.execute(
        "UPDATE repositories SET previous_webhook_secret_expires_at = ?1 WHERE id = ?2",
        rusqlite::params![now_ms - 1, w.repo_id],
    )
    .unwrap();
    drop(conn);
    expect_error(
        &push_json(&w.app, &route, &w.repo_secret, &guid(), &payload),
        401,
        "invalid_signature",
    );
    assert_eq!(
        push_json(&w.app, &route, &new_secret, &guid(), &payload).status,
        202
    );
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn send_standard(app: &TestApp, source: &str, id: &str, ts: i64, body: &[u8]) -> Resp {
    let key = base64::engine::general_purpose::STANDARD
        .decode(STANDARD_SECRET.trim_start_matches("whsec_"))
        .unwrap();
    let ts = ts.to_string();
    let sig = base64::engine::general_purpose::STANDARD
        .encode(mac(&key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]));
    let header = format!("v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v1,{sig}");
    app.request(
        "POST",
        &format!("/api/v1/webhooks/standard/{source}"),
        &[
            ("content-type", "application/json"),
            ("webhook-id", id),
            ("webhook-timestamp", &ts),
            ("webhook-signature", &header),
        ],
        Body::Bytes(body.to_vec()),
    )
}

#[test]
fn standard_webhooks_verify_dedupe_and_refuse_stale_timestamps() {
    let secrets = json!({"ci": [STANDARD_SECRET]}).to_string();
    let Some(w) = world(&[("standard_webhook_secrets", secrets.as_str())]) else {
        return;
    };
    let body = serde_json::to_vec(&json!({
        "type": "repository.push",
        "timestamp": "2022-11-03T20:26:10.344522Z",
        "data": {"repository_url": "ssh://git@github.com/acme/templates.git", "branch": "main"}
    }))
    .unwrap();
    let id = format!("msg_{}", unique("s").replace(['-', '.'], ""));
    let r = send_standard(&w.app, "ci", &id, now_s(), &body);
    assert_eq!(r.status, 202, "{}", text(&r));
    assert_eq!(r.json()["repository_ids"], json!([w.repo_id]));
    wait_synced(&w.app, &w.admin, &w.repo_id);
    let r = send_standard(&w.app, "ci", &id, now_s(), &body);
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.json()["status"], "duplicate");
    // ±301 s is outside the default 300 s tolerance, either way.
    for skew in [-301, 301] {
        let r = send_standard(&w.app, "ci", &format!("{id}x"), now_s() + skew, &body);
        expect_error(&r, 401, "timestamp_out_of_tolerance");
    }
    expect_error(
        &send_standard(&w.app, "nope", &id, now_s(), &body),
        404,
        "unknown_source",
    );
    let r = w.app.request(
        "POST",
        "/api/v1/webhooks/standard/ci",
        &[("webhook-id", id.as_str()), ("webhook-signature", "v1,x")],
        Body::Bytes(body.clone()),
    );
    expect_error(&r, 400, "missing_header");
    let other = br#"{"type":"contact.created","data":{}}"#;
    let r = send_standard(&w.app, "ci", &format!("{id}o"), now_s(), other);
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.json()["status"], "ignored");
    let stored = deliveries(&w.app, &w.admin, "?source=standard:ci");
    assert_eq!(stored.len(), 2, "{stored:?}");
}

#[test]
fn streamspace_plain_form_works_on_both_paths() {
    let Some(w) = world(&[]) else { return };
    let body = br#"{"repository_url":"git@github.com:Acme/templates.git","branch":"main","ref":"refs/heads/main"}"#;
    // Upper-case hex and a `sha256=` prefix are tolerated.
    let sig = format!(
        "sha256={}",
        hex(&mac(PLAIN_SECRET.as_bytes(), &[body])).to_uppercase()
    );
    for path in [
        "/webhooks/repository/sync",
        "/api/v1/webhooks/repository/sync",
    ] {
        let r = w.app.request(
            "POST",
            path,
            &[
                ("content-type", "application/json"),
                ("x-webhook-signature", &sig),
            ],
            Body::Bytes(body.to_vec()),
        );
        assert_eq!(r.status, 202, "{path}: {}", text(&r));
        let v = r.json();
        assert_eq!(v["message"], "Webhook received, sync triggered");
        assert_eq!(v["repository_ids"], json!([w.repo_id]));
    }
    wait_synced(&w.app, &w.admin, &w.repo_id);
    let send = |body: &[u8]| {
        let sig = hex(&mac(PLAIN_SECRET.as_bytes(), &[body]));
        w.app.request(
            "POST",
            "/webhooks/repository/sync",
            &[
                ("content-type", "application/json"),
                ("x-webhook-signature", &sig),
            ],
            Body::Bytes(body.to_vec()),
        )
    };
    let r = send(br#"{"repository_url":"https://github.com/acme/templates","ref":"refs/tags/v1"}"#);
    assert_eq!(r.status, 200, "{}", text(&r));
    expect_error(
        &send(br#"{"repository_url":"https://github.com/acme/templates","branch":"dev"}"#),
        404,
        "repository_not_found",
    );
    expect_error(&send(br#"{"branch":"main"}"#), 400, "invalid_field");
    expect_error(&send(b"[]"), 400, "invalid_json");
    let failed = deliveries(&w.app, &w.admin, "?source=plain&status=failed");
    assert_eq!(failed.len(), 3, "{failed:?}");
}

#[test]
fn deliveries_are_listed_shown_and_replayed_by_their_owners_only() {
    let Some(w) = world(&[]) else { return };
    let platform = w.app.admin();
    let a_admin = create_user(&w.app, &platform.access, "admin", None).token;
    let a_user = create_user(&w.app, &platform.access, "user", None).token;
    let shared = "/api/v1/webhooks/github";
    let delivery = guid();
    let payload = push_payload(OWNER, REPO, "refs/heads/main", false);
    assert_eq!(
        push_json(&w.app, shared, GITHUB_SECRET, &delivery, &payload).status,
        202
    );
    let ping = guid();
    let r = send_github(
        &w.app,
        shared,
        Some(GITHUB_SECRET),
        "ping",
        &ping,
        "application/json",
        &ping_payload(),
    );
    assert_eq!(r.status, 200);
    wait_synced(&w.app, &w.admin, &w.repo_id);

    let rows = deliveries(&w.app, &platform.access, "");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["event"], "ping", "newest first");
    assert_eq!(rows[0]["status"], "ignored");
    let push_row = &rows[1];
    assert_eq!(push_row["delivery_id"], delivery.as_str());
    assert_eq!(push_row["status"], "accepted");
    assert_eq!(push_row["http_status"], 202);
    let id = push_row["id"].as_str().unwrap();
    // Deployment-wide deliveries are the platform admin's: an org admin sees none, a user is 403.
    assert!(deliveries(&w.app, &a_admin, "").is_empty());
    expect_error(&w.app.authed("GET", DELIVERIES, &a_user), 403, "forbidden");
    expect_error(
        &w.app.authed("GET", &format!("{DELIVERIES}/{id}"), &a_admin),
        404,
        "not_found",
    );
    // Shown with its headers (signature redacted) and its body as received.
    let r = w
        .app
        .authed("GET", &format!("{DELIVERIES}/{id}"), &platform.access);
    assert_eq!(r.status, 200, "{}", text(&r));
    let shown = r.json();
    assert_eq!(shown["headers"]["x-hub-signature-256"], "[redacted]");
    assert_eq!(shown["headers"]["x-github-event"], "push");
    assert_eq!(
        shown["body"].as_str().unwrap().as_bytes(),
        serde_json::to_vec_pretty(&payload).unwrap().as_slice()
    );
    assert!(!text(&r).contains(&github_signature(GITHUB_SECRET, b"")[7..17]));
    // Replayed from the stored body: another sync is requested and runs.
    let before = repository(&w.app, &w.admin, &w.repo_id)["last_sync_at"].clone();
    std::thread::sleep(Duration::from_millis(20));
    let r = w.app.json(
        "POST",
        &format!("{DELIVERIES}/{id}/replay"),
        Some(&platform.access),
        &json!({}),
    );
    assert_eq!(r.status, 202, "{}", text(&r));
    assert_eq!(r.json()["delivery"]["attempts"], 2);
    wait_for(
        Duration::from_secs(30),
        Duration::from_millis(100),
        "the replay never synced",
        || {
            if repository(&w.app, &w.admin, &w.repo_id)["last_sync_at"] == before {
                Err(format!("last_sync_at is still {before}"))
            } else {
                Ok(())
            }
        },
    );
    // A ping has no effect to replay.
    let ping_id = rows[0]["id"].as_str().unwrap();
    expect_error(
        &w.app.json(
            "POST",
            &format!("{DELIVERIES}/{ping_id}/replay"),
            Some(&platform.access),
            &json!({}),
        ),
        409,
        "not_replayable",
    );
    expect_error(
        &w.app.json(
            "POST",
            &format!("{DELIVERIES}/{id}/replay"),
            Some(&a_user),
            &json!({}),
        ),
        403,
        "forbidden",
    );
}

#[test]
fn the_202_arrives_before_the_sync_finishes_and_the_sync_then_completes() {
    let Some(w) = world(&[]) else { return };
    w.github.delay_raw(2_000);
    let started = Instant::now();
    let r = push_json(
        &w.app,
        "/api/v1/webhooks/github",
        GITHUB_SECRET,
        &guid(),
        &push_payload(OWNER, REPO, "refs/heads/main", false),
    );
    let answered = started.elapsed();
    assert_eq!(r.status, 202, "{}", text(&r));
    assert!(
        answered < Duration::from_millis(1_500),
        "the 202 waited for the sync: {answered:?}"
    );
    let now = repository(&w.app, &w.admin, &w.repo_id);
    assert_ne!(now["status"], "synced", "not synced yet: {now}");
    let synced = wait_synced(&w.app, &w.admin, &w.repo_id);
    assert!(
        started.elapsed() >= Duration::from_millis(2_000),
        "the sync waited for the slow raw host"
    );
    assert_eq!(synced["template_count"], 1, "{synced}");
    assert!(!w.github.raw_fetches().is_empty());
}

#[test]
fn deliveries_older_than_the_retention_are_purged_by_the_drain_and_the_maintenance_purge() {
    let Some(w) = world(&[("maintenance_token", "webhook-maintenance")]) else {
        return;
    };
    let Some(db_path) = w.app.database_path() else {
        eprintln!("skipped: the database file is not reachable (libSQL)");
        return;
    };
    for _ in 0..2 {
        let r = send_github(
            &w.app,
            "/api/v1/webhooks/github",
            Some(GITHUB_SECRET),
            "ping",
            &guid(),
            "application/json",
            &ping_payload(),
        );
        assert_eq!(r.status, 200, "{}", text(&r));
    }
    let rows = deliveries(&w.app, &w.admin, "");
    assert_eq!(rows.len(), 2);
    // Received 31 days ago (the default retention is 30).
    let age = |row: &serde_json::Value| {
        let conn = rusqlite::Connection::open(&db_path).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        conn.execute(
            "UPDATE webhook_deliveries SET received_at = ?1 WHERE id = ?2",
            rusqlite::params![(now_s() - 31 * 86_400) * 1000, row["id"].as_str().unwrap()],
        )
        .unwrap();
    };
    age(&rows[1]);
    let r = w.app.request(
        "POST",
        "/api/v1/catalog/sync/pending",
        &[("authorization", "Bearer webhook-maintenance")],
        Body::Empty,
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    let left = deliveries(&w.app, &w.admin, "");
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["id"], rows[0]["id"]);
    // The maintenance purge applies the same retention.
    age(&rows[0]);
    let r = w.app.request(
        "POST",
        "/api/v1/admin/maintenance/purge",
        &[("authorization", "Bearer webhook-maintenance")],
        Body::Empty,
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.json()["purged"]["webhook_deliveries"], 1, "{}", text(&r));
    assert!(deliveries(&w.app, &w.admin, "").is_empty());
}
