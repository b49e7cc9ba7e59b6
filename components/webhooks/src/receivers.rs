//! Inbound webhooks (SPEC-wave2 §3, Decisions 2 and 3): GitHub (per repository and
//! deployment-wide), StreamSpace's plain HMAC form and Standard Webhooks.
//!
//! Every receiver: `Content-Encoding` refused (415); the secrets read (none → 401
//! `webhook_not_configured`); the signature checked over the **raw body** before anything is
//! parsed ([`crate::verify`], constant time); only then the delivery is stored (so unsigned
//! traffic writes nothing), deduplicated on the sender's delivery id (a replay answers 200
//! `duplicate` and changes nothing; a delivery that failed is processed again when redelivered),
//! and its effect applied: the matched repositories get `sync_requested_at` in the request's unit
//! of work (nothing accepted is lost), the answer is 202, and the syncs run after the response
//! ([`Services::defer`]); the drain (`POST /catalog/sync/pending`) runs whatever is left.
//!
//! Caveat (documented): `X-GitHub-Delivery` is not covered by GitHub's signature, so a captured
//! delivery can be replayed under a new id; its effect (a coalesced sync) is idempotent.

use std::rc::Rc;

use serde_json::{json, Map, Value};
use shared::ids::uuid_v4;
use shared::services::Services;
use shared::store::{Database, Value as Sql};
use shared::{ApiError, ApiResult, Response, StatusCode};

use crate::sync::{self, BUDGET_MS};

/// The most of a delivery's body that is stored.
pub const MAX_STORED_BODY: usize = 256 * 1024;

/// Headers kept with a delivery (signatures are stored as `[redacted]`).
const KEPT_HEADERS: &[&str] = &[
    "content-type",
    "user-agent",
    "x-github-event",
    "x-github-delivery",
    "x-github-hook-id",
    "x-github-hook-installation-target-type",
    "x-github-hook-installation-target-id",
    "webhook-id",
    "webhook-timestamp",
];
const SIGNATURE_HEADERS: &[&str] = &[
    "x-hub-signature",
    "x-hub-signature-256",
    "x-webhook-signature",
    "webhook-signature",
];

/// Events whose effect a replay can run again.
const EFFECT_EVENTS: &[&str] = &["push", "repository.sync", "repository.push"];

/// Who sent a delivery, from its `source` column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// GitHub; `Some(id)`: the repository's own route (only it may be synced).
    GitHub(Option<String>),
    /// StreamSpace's plain HMAC form.
    Plain,
    /// Standard Webhooks.
    Standard,
}

impl Kind {
    pub fn of_source(source: &str) -> Kind {
        if let Some(id) = source.strip_prefix("github:") {
            Kind::GitHub(Some(id.to_owned()))
        } else if source == "github" {
            Kind::GitHub(None)
        } else if source == "plain" {
            Kind::Plain
        } else {
            Kind::Standard
        }
    }
}

/// A verified delivery, about to be stored and processed.
pub struct Delivery<'a> {
    pub source: String,
    pub org_id: Option<String>,
    /// The sender's id; `None` (the plain form): the row's own id, never deduplicated.
    pub delivery_id: Option<String>,
    pub event: String,
    pub headers: &'a shared::http::RequestHead,
    pub body: &'a [u8],
}

/// 415 when the body is encoded (its bytes would not be what was signed).
pub fn refuse_encoding(head: &shared::http::RequestHead) -> ApiResult<()> {
    if head.header("content-encoding").is_some() {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "webhook bodies must not be content-encoded",
        ));
    }
    Ok(())
}

pub fn not_configured(what: &str) -> ApiError {
    ApiError::unauthorized(
        "webhook_not_configured",
        format!("no webhook secret is configured for {what}"),
    )
}

/// A header that must match `ok` byte by byte, else 400 `invalid_header` (absent: `missing`).
pub fn header<'a>(
    head: &'a shared::http::RequestHead,
    name: &str,
    max: usize,
    ok: fn(u8) -> bool,
) -> ApiResult<&'a str> {
    let value = head.header(name).ok_or_else(|| {
        ApiError::bad_request("missing_header", format!("the {name} header is required"))
    })?;
    if value.is_empty() || value.len() > max || !value.bytes().all(ok) {
        return Err(ApiError::bad_request(
            "invalid_header",
            format!("the {name} header is malformed"),
        ));
    }
    Ok(value)
}

/// The normalised key of a repository URL: `host/owner/repo`, lowercased, without `.git` or a
/// trailing slash; from `https://`, `http://`, `ssh://[user@]host[:port]/`, `git://` and
/// `user@host:owner/repo` forms. `None` when it names no `owner/repo`.
pub fn url_key(url: &str) -> Option<String> {
    let url = url.trim();
    let (host, path) = match url.split_once("://") {
        Some((scheme, rest)) => {
            if !matches!(
                scheme.to_ascii_lowercase().as_str(),
                "https" | "http" | "ssh" | "git" | "git+ssh"
            ) {
                return None;
            }
            let (authority, path) = rest.split_once('/')?;
            let host = authority.rsplit('@').next()?;
            (host.split(':').next()?, path)
        }
        None => {
            // scp-like `git@github.com:owner/repo.git`
            let (authority, path) = url.split_once(':')?;
            (authority.rsplit('@').next()?, path)
        }
    };
    let path = path.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    let mut parts = path.split('/');
    let (Some(owner), Some(repo), None) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    let fine = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    };
    if host.is_empty() || !fine(host) || !fine(owner) || !fine(repo) {
        return None;
    }
    Some(format!("{host}/{owner}/{repo}").to_ascii_lowercase())
}

/// The delivery's payload: a JSON object, from a JSON body or a form's one `payload` field.
fn payload(content_type: Option<&str>, body: &[u8]) -> ApiResult<Map<String, Value>> {
    let invalid = |why: &str| ApiError::bad_request("invalid_json", why.to_owned());
    let form = content_type.is_some_and(|t| {
        t.trim_start()
            .to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
    });
    let value: Value = if form {
        let mut fields = form_urlencoded::parse(body).filter(|(k, _)| k == "payload");
        let (Some((_, text)), None) = (fields.next(), fields.next()) else {
            return Err(invalid("a form delivery needs exactly one `payload` field"));
        };
        serde_json::from_str(&text).map_err(|_| invalid("`payload` is not JSON"))?
    } else {
        serde_json::from_slice(body).map_err(|_| invalid("the body is not JSON"))?
    };
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(invalid("the payload must be a JSON object")),
    }
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

/// What a delivery does.
enum Effect {
    /// Syncs requested for these repositories; the 202 body.
    Sync(Vec<String>, Value),
    /// Nothing to do; the 200 body.
    Ignored(Value),
}

fn ignored(reason: &str) -> Effect {
    Effect::Ignored(json!({"status": "ignored", "reason": reason}))
}

/// Repositories of every org on `url_key` (and `branch` when given).
fn match_repositories(
    db: &Database,
    keys: &[String],
    branch: Option<&str>,
) -> ApiResult<Vec<String>> {
    let keys = serde_json::to_string(keys).map_err(|e| ApiError::internal(e.to_string()))?;
    let rows = db.execute(
        "SELECT id FROM repositories WHERE url_key IN (SELECT value FROM json_each(?1))
           AND (?2 IS NULL OR branch = ?2) ORDER BY id",
        &[Sql::from(keys), branch.map_or(Sql::Null, Sql::from)],
    )?;
    let ids = rows
        .iter()
        .map(|r| Ok(r.str("id")?.to_owned()))
        .collect::<Result<Vec<_>, shared::store::StoreError>>()?;
    if ids.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "repository_not_found",
            "no repository matches this URL and branch",
        ));
    }
    Ok(ids)
}

/// A branch from `branch` or `ref` (`refs/heads/<b>`); `Err(())`: a tag or another ref.
fn branch_of(branch: Option<&str>, git_ref: Option<&str>) -> Result<Option<String>, ()> {
    if let Some(b) = branch.filter(|b| !b.is_empty()) {
        return Ok(Some(b.to_owned()));
    }
    match git_ref.filter(|r| !r.is_empty()) {
        None => Ok(None),
        Some(r) => r
            .strip_prefix("refs/heads/")
            .map(|b| Some(b.to_owned()))
            .ok_or(()),
    }
}

/// The `{repository_url, branch?, ref?}` sync of the plain form and of Standard Webhooks'
/// `repository.*` events.
fn url_sync(
    db: &Database,
    url: Option<&str>,
    branch: Option<&str>,
    git_ref: Option<&str>,
) -> ApiResult<Result<(String, Vec<String>), Effect>> {
    let url = url
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ApiError::bad_request("invalid_field", "repository_url is required"))?;
    let key = url_key(url).ok_or_else(|| {
        ApiError::bad_request("invalid_url", "repository_url names no owner/repo")
    })?;
    let Ok(branch) = branch_of(branch, git_ref) else {
        return Ok(Err(ignored("ref")));
    };
    let ids = match_repositories(db, &[key], branch.as_deref())?;
    Ok(Ok((url.to_owned(), ids)))
}

/// The effect of a verified delivery (also run again by a replay, from the stored body).
fn effect(
    db: &Database,
    kind: &Kind,
    event: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> ApiResult<Effect> {
    match kind {
        Kind::GitHub(repository) => {
            if event == "ping" {
                let p = payload(content_type, body)?;
                return Ok(Effect::Ignored(json!({
                    "status": "ok", "event": "ping",
                    "zen": p.get("zen"), "hook_id": p.get("hook_id"),
                })));
            }
            if event != "push" {
                return Ok(ignored("event"));
            }
            let p = Value::Object(payload(content_type, body)?);
            let deleted = p.get("deleted").and_then(Value::as_bool).unwrap_or(false);
            let branch = str_at(&p, "/ref").and_then(|r| r.strip_prefix("refs/heads/"));
            let (Some(branch), false) = (branch, deleted) else {
                return Ok(ignored("ref"));
            };
            let ids = match repository {
                Some(id) => {
                    // The repository's own route syncs it alone, whatever the payload names.
                    let rows = db.execute(
                        "SELECT id FROM repositories WHERE id = ?1 AND branch = ?2",
                        &[Sql::from(id.as_str()), Sql::from(branch)],
                    )?;
                    if rows.is_empty() {
                        return Ok(ignored("branch"));
                    }
                    vec![id.clone()]
                }
                None => {
                    let keys: Vec<String> = ["clone_url", "html_url", "ssh_url", "git_url"]
                        .iter()
                        .filter_map(|k| str_at(&p, &format!("/repository/{k}")).and_then(url_key))
                        .collect();
                    match_repositories(db, &keys, Some(branch))?
                }
            };
            Ok(Effect::Sync(
                ids.clone(),
                json!({"status": "accepted", "repository_ids": ids}),
            ))
        }
        Kind::Plain => {
            let p = Value::Object(payload(content_type, body)?);
            Ok(
                match url_sync(
                    db,
                    str_at(&p, "/repository_url"),
                    str_at(&p, "/branch"),
                    str_at(&p, "/ref"),
                )? {
                    Ok((url, ids)) => Effect::Sync(
                        ids.clone(),
                        json!({"message": "Webhook received, sync triggered", "repository": url,
                               "repository_ids": ids}),
                    ),
                    Err(e) => e,
                },
            )
        }
        Kind::Standard => {
            if !EFFECT_EVENTS[1..].contains(&event) {
                return Ok(Effect::Ignored(json!({"status": "ignored"})));
            }
            let p = Value::Object(payload(content_type, body)?);
            Ok(
                match url_sync(
                    db,
                    str_at(&p, "/data/repository_url"),
                    str_at(&p, "/data/branch"),
                    str_at(&p, "/data/ref"),
                )? {
                    Ok((_, ids)) => Effect::Sync(
                        ids.clone(),
                        json!({"status": "accepted", "repository_ids": ids}),
                    ),
                    Err(e) => e,
                },
            )
        }
    }
}

/// The event of a Standard Webhooks payload (`type`), for the delivery row.
pub fn standard_event(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .as_ref()
        .and_then(|v| str_at(v, "/type"))
        .filter(|t| {
            !t.is_empty()
                && t.len() <= 128
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.'))
        })
        .unwrap_or("unknown")
        .to_owned()
}

/// The headers stored with a delivery: [`KEPT_HEADERS`], signatures redacted.
fn stored_headers(head: &shared::http::RequestHead) -> String {
    let mut map = Map::new();
    for name in KEPT_HEADERS {
        if let Some(v) = head.header(name) {
            map.insert((*name).to_owned(), Value::from(v));
        }
    }
    for name in SIGNATURE_HEADERS {
        if head.header(name).is_some() {
            map.insert((*name).to_owned(), Value::from("[redacted]"));
        }
    }
    Value::Object(map).to_string()
}

/// Stores a verified delivery (deduplicated) and applies its effect.
pub async fn receive(services: &Rc<Services>, d: Delivery<'_>) -> ApiResult<Response> {
    let db = services.db()?;
    let now = services.now_ms();
    let id = uuid_v4(services.random.as_ref())?;
    let delivery_id = d.delivery_id.clone().unwrap_or_else(|| id.clone());
    let stored = &d.body[..d.body.len().min(MAX_STORED_BODY)];
    let rows = db.execute(
        "INSERT INTO webhook_deliveries (id, org_id, source, delivery_id, event, status,
             http_status, headers, body, body_truncated, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'accepted', 202, ?6, ?7, ?8, ?9)
         ON CONFLICT (source, delivery_id) DO NOTHING RETURNING id",
        &[
            Sql::from(id.as_str()),
            d.org_id.as_deref().map_or(Sql::Null, Sql::from),
            Sql::from(d.source.as_str()),
            Sql::from(delivery_id.as_str()),
            Sql::from(d.event.as_str()),
            Sql::from(stored_headers(d.headers)),
            Sql::Blob(stored.to_vec()),
            Sql::from(i64::from(stored.len() < d.body.len())),
            Sql::from(now),
        ],
    )?;
    let row_id = if rows.is_empty() {
        let rows = db.execute(
            "SELECT id, status FROM webhook_deliveries WHERE source = ?1 AND delivery_id = ?2",
            &[
                Sql::from(d.source.as_str()),
                Sql::from(delivery_id.as_str()),
            ],
        )?;
        let row = rows
            .first()
            .ok_or_else(|| ApiError::internal("delivery vanished during dedupe"))?;
        if row.str("status")? != "failed" {
            return Response::ok_json(&json!({"status": "duplicate", "delivery_id": delivery_id}));
        }
        let existing = row.str("id")?.to_owned();
        db.execute(
            "UPDATE webhook_deliveries SET attempts = attempts + 1 WHERE id = ?1",
            &[Sql::from(existing.as_str())],
        )?;
        existing
    } else {
        id
    };
    process(
        services,
        &row_id,
        &Kind::of_source(&d.source),
        &d.event,
        d.headers.header("content-type"),
        d.body,
    )
}

/// Whether a stored delivery's effect can be run again.
pub fn replayable(event: &str, truncated: bool) -> bool {
    !truncated && EFFECT_EVENTS.contains(&event)
}

/// Applies a delivery's effect and records the outcome on its row: 202 with the syncs
/// requested (in the unit of work) and run after the response; 200 ignored; a client error
/// recorded as `failed` (kept: client errors commit their writes).
pub fn process(
    services: &Rc<Services>,
    row_id: &str,
    kind: &Kind,
    event: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> ApiResult<Response> {
    let db = services.db()?;
    let now = services.now_ms();
    let record = |status: &str, http: StatusCode, ids: &[String], error: Option<&str>| {
        let ids = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
        db.execute(
            "UPDATE webhook_deliveries SET status = ?2, http_status = ?3, repository_ids = ?4,
                 error = ?5, processed_at = ?6 WHERE id = ?1",
            &[
                Sql::from(row_id),
                Sql::from(status),
                Sql::from(i64::from(http.as_u16())),
                Sql::from(ids),
                error.map_or(Sql::Null, Sql::from),
                Sql::from(now),
            ],
        )
    };
    match effect(db, kind, event, content_type, body) {
        Ok(Effect::Sync(ids, answer)) => {
            let list =
                serde_json::to_string(&ids).map_err(|e| ApiError::internal(e.to_string()))?;
            db.execute(
                "UPDATE repositories SET sync_requested_at = ?2
                 WHERE id IN (SELECT value FROM json_each(?1))",
                &[Sql::from(list), Sql::from(now)],
            )?;
            record("accepted", StatusCode::ACCEPTED, &ids, None)?;
            defer_syncs(services, ids);
            Response::json(StatusCode::ACCEPTED, &answer)
        }
        Ok(Effect::Ignored(answer)) => {
            record("ignored", StatusCode::OK, &[], None)?;
            Response::ok_json(&answer)
        }
        Err(err) => {
            if !err.status.is_server_error() {
                record("failed", err.status, &[], Some(&err.message))?;
            }
            Err(err)
        }
    }
}

/// Runs the requested syncs after the response (Decision 2); each holds its own lease, and a
/// sync that cannot run now (lease held, instance stopped) stays requested for the drain.
fn defer_syncs(services: &Rc<Services>, ids: Vec<String>) {
    let held = services.clone();
    services.defer(Box::pin(async move {
        for id in ids {
            let deadline = held.now_ms() + BUDGET_MS;
            if let Err(err) = sync::sync_repository(&held, &id, false, deadline).await {
                held.log.write_line(
                    &json!({"level": "warn", "msg": "deferred sync failed", "repository_id": id,
                            "cause": err.message})
                    .to_string(),
                );
            }
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_keys_normalise_every_form_github_sends() {
        for url in [
            "https://github.com/Codertocat/Hello-World",
            "https://github.com/Codertocat/Hello-World.git",
            "https://GitHub.com/codertocat/hello-world/",
            "http://github.com/Codertocat/Hello-World.git/",
            "ssh://git@github.com/Codertocat/Hello-World.git",
            "ssh://git@github.com:22/Codertocat/Hello-World.git",
            "git://github.com/Codertocat/Hello-World.git",
            "git@github.com:Codertocat/Hello-World.git",
            "git@github.com:Codertocat/Hello-World",
        ] {
            assert_eq!(
                url_key(url).as_deref(),
                Some("github.com/codertocat/hello-world"),
                "{url}"
            );
        }
        for bad in [
            "",
            "github.com",
            "https://github.com/o",
            "https://github.com/o/r/tree/main",
            "file:///etc/passwd",
            "https://github.com/o/r?x",
        ] {
            assert_eq!(url_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn form_and_json_payloads_parse_alike() {
        let json = br#"{"ref":"refs/heads/main"}"#;
        let form = b"payload=%7B%22ref%22%3A%22refs%2Fheads%2Fmain%22%7D";
        let a = payload(Some("application/json"), json).unwrap();
        let b = payload(Some("application/x-www-form-urlencoded"), form).unwrap();
        assert_eq!(a, b);
        assert!(payload(Some("application/x-www-form-urlencoded"), b"x=1").is_err());
        assert!(payload(
            Some("application/x-www-form-urlencoded"),
            b"payload=%7B%7D&payload=%7B%7D"
        )
        .is_err());
        assert!(payload(None, b"[1]").is_err());
    }

    /// Decision 2's hook: work deferred by a handler runs after the response was produced (after
    /// the access-log line and the audit row's commit), not before it.
    #[test]
    fn deferred_work_runs_after_the_response() {
        use shared::{Access, Cx, Route, RouteTable};
        async fn defers(cx: Cx) -> ApiResult<Response> {
            let services = cx.services.clone();
            cx.db()?.execute(
                "INSERT INTO repositories (id, org_id, name, url, url_key, created_by, created_at,
                     updated_at) VALUES ('r', 'o', 'n', 'u', 'k', 'x', 0, 0)",
                &[],
            )?;
            cx.services.defer(Box::pin(async move {
                // The request's unit of work (the row, the audit row) is closed by now.
                let committed = services
                    .db()
                    .and_then(|db| db.execute("SELECT id FROM repositories", &[]))
                    .map(|rows| rows.len())
                    .unwrap_or(0);
                services
                    .log
                    .write_line(&format!("deferred committed={committed}"));
            }));
            Response::json(StatusCode::ACCEPTED, &json!({}))
        }
        let s = shared::testing::TestStores::new();
        let table = RouteTable::new(vec![Route::post("/defer", Access::Public, defers)]);
        let r = s.call(&table, "POST", "/defer", &[], b"");
        assert_eq!(r.status, StatusCode::ACCEPTED);
        let lines = s.log.lines();
        let deferred = lines
            .iter()
            .position(|l| l.starts_with("deferred"))
            .unwrap();
        let access = lines
            .iter()
            .position(|l| l.contains("\"status\":202"))
            .unwrap();
        assert!(access < deferred, "{lines:?}");
        assert_eq!(lines[deferred], "deferred committed=1");
    }

    #[test]
    fn branches_come_from_branch_or_heads_refs_only() {
        assert_eq!(branch_of(Some("dev"), None), Ok(Some("dev".into())));
        assert_eq!(
            branch_of(None, Some("refs/heads/main")),
            Ok(Some("main".into()))
        );
        assert_eq!(branch_of(None, None), Ok(None));
        assert_eq!(branch_of(None, Some("refs/tags/v1")), Err(()));
    }
}
