//! Reading the audit log: list, one event, export, stats; and retention.
//!
//! Who: org admins and auditors read their own org's events: those of its actors and those
//! whose `target_org_id` is the org (what the platform admin did inside it). The platform admin reads its own
//! org by default and may name another with `org_id=<id>`, every org with `org_id=*`, or the
//! events no org is attributed to (unauthenticated requests, such as failed logins) with
//! `org_id=none`; anyone else naming a foreign org gets 404. One event by id: the platform admin
//! reads any, others their org's (a foreign org's event answers 404).
//!
//! Filters (list and export): `user_id`, `action`, `resource_type`, `resource_id`, `request_id`
//! (exact), `status` (exact `404` or a class `4xx`), `since` (inclusive) and `until` (exclusive),
//! each an RFC 3339 instant (`2026-11-23T06:00:00Z`, offsets allowed; `+` may arrive as a space)
//! or milliseconds since the Unix epoch.
//!
//! - List: newest first by `seq`, `?limit=`/`?cursor=` pages (`Page`).
//! - Export: `format=ndjson` (default) or `csv`, oldest first, at most `limit` (default and max
//!   10,000) rows and about 8 MiB per call; when more rows match, the response carries
//!   `X-Next-After-Seq: <seq>` and the next call passes `after_seq=<seq>`. CSV cells that start
//!   with `=`, `+`, `-`, `@`, tab or carriage return are prefixed with `'` (formula injection).
//! - Stats: over `since` (default: the last 24 hours) .. `until` (default: now): counts by action
//!   (the 100 most frequent), by status class, by resource type (the 100 most frequent; `(none)`
//!   for events without one), the total, and `failed_logins_last_hour` (`POST
//!   /api/v1/auth/login` answered 401 in the last hour, whatever `since` says). All org-scoped:
//!   failed logins carry no org, so only the platform admin sees them (`org_id=*` or `none`).
//! - Retention (platform admin only: the chain is platform-wide, so a purge is too):
//!   `{"older_than_days": n}` (1..=3650, default 90 when omitted) deletes the events older than
//!   the cutoff, in one transaction that opens the delete gate, records a checkpoint (the first
//!   remaining row's `seq` and `prev_hash`, so the remaining chain still verifies) and closes the
//!   gate. The chain's tail (newest row) is never deleted, even when it is older than the cutoff.
//!
//! Events are shown with every column, `prev_hash` and `hash` included (they let anyone holding
//! the key re-verify an export), `ts` as RFC 3339 and `ts_ms` as milliseconds.

use serde::Deserialize;
use shared::audit::chain;
use shared::auth::Role;
use shared::{
    header, Access, ApiError, ApiResult, Cx, HeaderName, HeaderValue, Response, Route, StatusCode,
};

use crate::audit_query::{
    self, invalid, org_scope, parse_instant, AuditQuery, Format, EXPORT_MAX_ROWS,
    STATS_DEFAULT_WINDOW_MS,
};
use crate::handlers::verify::seal_chain;

const READERS: Access = Access::AnyRole(&[Role::Admin, Role::Auditor]);

/// The continuation header of an export.
pub const NEXT_AFTER_SEQ: &str = "x-next-after-seq";
pub const RETENTION_DEFAULT_DAYS: i64 = 90;
pub const RETENTION_MAX_DAYS: i64 = 3650;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/api/v1/admin/audit", READERS, list),
        Route::get("/api/v1/admin/audit/export", READERS, export),
        Route::get("/api/v1/admin/audit/stats", READERS, stats),
        Route::get("/api/v1/admin/audit/{id}", READERS, get),
        Route::post(
            "/api/v1/admin/audit/retention",
            Access::PlatformAdmin,
            retention,
        ),
    ]
}

/// `GET /api/v1/admin/audit`: the scope's events, newest first, filtered and paginated.
pub async fn list(cx: Cx) -> ApiResult<Response> {
    let q: AuditQuery = cx.query()?;
    if q.format.is_some() || q.after_seq.is_some() {
        return Err(invalid("`format` and `after_seq` belong to the export"));
    }
    let page = cx.page()?;
    let mut w = audit_query::filters(cx.user()?, &q)?;
    if let Some(after) = page.after::<i64>()? {
        w.add("seq < ?", [shared::store::Value::from(after)]);
    }
    seal_chain(&cx)?;
    Response::ok_json(&audit_query::list(cx.db()?, &w, &page)?)
}

/// `GET /api/v1/admin/audit/{id}`: one event (a foreign org's answers 404).
pub async fn get(cx: Cx) -> ApiResult<Response> {
    let id: String = cx.param("id")?;
    let user = cx.user()?;
    seal_chain(&cx)?;
    Response::ok_json(&audit_query::find(cx.db()?, user, &id)?)
}

/// `GET /api/v1/admin/audit/export`: matching events oldest first, bounded per call (module doc).
pub async fn export(cx: Cx) -> ApiResult<Response> {
    let q: AuditQuery = cx.query()?;
    seal_chain(&cx)?;
    let format = match q.format.as_deref().map(str::trim) {
        None | Some("") | Some("ndjson") => Format::Ndjson,
        Some("csv") => Format::Csv,
        Some(_) => return Err(invalid("`format` must be `ndjson` or `csv`")),
    };
    let max_rows = match q.limit.as_deref().map(str::trim) {
        None | Some("") => EXPORT_MAX_ROWS,
        Some(n) => n
            .parse::<i64>()
            .map_err(|_| invalid("`limit` must be a number"))?
            .clamp(1, EXPORT_MAX_ROWS),
    };
    let after = match q.after_seq.as_deref().map(str::trim) {
        None | Some("") => 0,
        Some(n) => n
            .parse::<i64>()
            .map_err(|_| invalid("`after_seq` must be a number"))?,
    };
    let w = audit_query::filters(cx.user()?, &q)?;
    let exported = audit_query::export(cx.db()?, &w, format, max_rows, after)?;
    let content_type = match format {
        Format::Ndjson => "application/x-ndjson",
        Format::Csv => "text/csv; charset=utf-8",
    };
    let filename = match format {
        Format::Ndjson => "attachment; filename=\"audit.ndjson\"",
        Format::Csv => "attachment; filename=\"audit.csv\"",
    };
    let mut response = Response::bytes(StatusCode::OK, content_type, exported.body).with_header(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static(filename),
    );
    if let Some(after) = exported.next_after_seq {
        let value = HeaderValue::from_str(&after.to_string())
            .map_err(|e| ApiError::internal(format!("continuation header: {e}")))?;
        response = response.with_header(HeaderName::from_static(NEXT_AFTER_SEQ), value);
    }
    Ok(response)
}

/// `GET /api/v1/admin/audit/stats`: counts over a window (module doc).
pub async fn stats(cx: Cx) -> ApiResult<Response> {
    let q: AuditQuery = cx.query()?;
    if q.user_id.is_some()
        || q.action.is_some()
        || q.resource_type.is_some()
        || q.resource_id.is_some()
        || q.status.is_some()
        || q.request_id.is_some()
        || q.format.is_some()
        || q.after_seq.is_some()
        || q.limit.is_some()
        || q.cursor.is_some()
    {
        return Err(invalid("stats takes `since`, `until` and `org_id` only"));
    }
    let scope = org_scope(cx.user()?, q.org_id.as_deref())?;
    seal_chain(&cx)?;
    let now = cx.now_ms();
    let since = match &q.since {
        Some(s) => parse_instant(s, "since")?,
        None => now - STATS_DEFAULT_WINDOW_MS,
    };
    let until = match &q.until {
        Some(s) => parse_instant(s, "until")?,
        None => now.saturating_add(1),
    };
    Response::ok_json(&audit_query::stats(cx.db()?, &scope, since, until, now)?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetentionRequest {
    #[serde(default)]
    older_than_days: Option<i64>,
}

/// `POST /api/v1/admin/audit/retention` (platform admin): deletes events older than the cutoff
/// through the gate, recording a checkpoint (module doc).
pub async fn retention(cx: Cx) -> ApiResult<Response> {
    let input: RetentionRequest = cx.json()?;
    let days = input.older_than_days.unwrap_or(RETENTION_DEFAULT_DAYS);
    if !(1..=RETENTION_MAX_DAYS).contains(&days) {
        return Err(ApiError::bad_request(
            "invalid_retention",
            format!("`older_than_days` must be between 1 and {RETENTION_MAX_DAYS}"),
        ));
    }
    let now = cx.now_ms();
    let cutoff = now - days * DAY_MS;
    let key = cx.services.settings().raw("audit_key")?;
    let key = key.as_deref().map_or(chain::UNKEYED, str::as_bytes);
    let report = cx
        .db()?
        .transaction(|db| audit_query::retention(db, key, days, cutoff, now))?;
    Response::ok_json(&report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit_query::{csv_cell, parse_rfc3339, status_filter, CSV_HEADER};
    use serde_json::{json, Value as Json};
    use shared::secrets::TokenHash;
    use shared::store::Database;
    use shared::store::Value;
    use shared::testing::{insert_user, TestStores};

    /// 2026-11-23T06:00:00Z, the test clock.
    const NOW: i64 = 1_795_413_600_000;
    const MIN: i64 = 60_000;

    fn with_db<T>(s: &TestStores, f: impl FnOnce(&Database) -> T) -> T {
        let services = s.services();
        f(services.db().unwrap())
    }

    /// The bearer token `login` gives user `id` (an access-token shape: `ssa_` + 43 characters).
    fn tok(id: &str) -> String {
        format!("ssa_{id:A<43}")
    }

    /// A user with a live bearer token; returns the token.
    fn login(s: &TestStores, id: &str, org: &str, role: &str, platform_admin: bool) -> String {
        with_db(s, |db| {
            insert_user(db, id, org, role).unwrap();
            db.execute(
                "UPDATE users SET platform_admin = ? WHERE id = ?",
                &[Value::from(platform_admin), Value::from(id)],
            )
            .unwrap();
            let session = format!("sess-{id}");
            db.execute(
                "INSERT INTO login_sessions (id, user_id, org_id, created_at, last_seen_at, expires_at)
                 VALUES (?, ?, ?, ?, ?, ?)",
                &[
                    Value::from(session.as_str()),
                    Value::from(id),
                    Value::from(org),
                    Value::from(NOW),
                    Value::from(NOW),
                    Value::from(NOW + 3_600_000),
                ],
            )
            .unwrap();
            let token = tok(id);
            db.execute(
                "INSERT INTO access_tokens (token_hash, session_id, expires_at) VALUES (?, ?, ?)",
                &[
                    Value::from(TokenHash::of(&token).as_str()),
                    Value::from(session),
                    Value::from(NOW + 3_600_000),
                ],
            )
            .unwrap();
            token
        })
    }

    struct Ev<'a> {
        org: Option<&'a str>,
        user: &'a str,
        action: &'a str,
        resource_type: &'a str,
        status: i64,
        ts: i64,
    }

    /// Appends a row directly (after whatever the pipeline captured); returns its `seq`.
    fn seed(s: &TestStores, e: Ev<'_>) -> i64 {
        with_db(s, |db| {
            let seq = db
                .execute("SELECT COALESCE(MAX(seq), 0) + 1 AS n FROM audit_log", &[])
                .unwrap()
                .first()
                .unwrap()
                .i64("n")
                .unwrap();
            let (method, path) = e.action.split_once(' ').unwrap();
            db.execute(
                "INSERT INTO audit_log (seq, id, request_id, ts, principal, user_id, org_id, method, path,
                     action, resource_type, resource_id, status, client_ip, user_agent, duration_ms,
                     error, body, prev_hash, hash)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '192.0.2.1', ?, 1.5, NULL, ?, ?, ?)",
                &[
                    Value::from(seq),
                    Value::from(format!("ev-{seq}")),
                    Value::from(format!("req-{seq}")),
                    Value::from(e.ts),
                    Value::from(format!("user:{}", e.user)),
                    Value::from(e.user),
                    Value::from(e.org),
                    Value::from(method),
                    Value::from(path),
                    Value::from(e.action),
                    Value::from(e.resource_type),
                    Value::from(format!("res-{seq}")),
                    Value::from(e.status),
                    Value::from("=HYPERLINK(\"x\"),ua"),
                    Value::from(r#"{"name":"a,b","password":"[REDACTED]"}"#),
                    Value::from(format!("prev-{seq}")),
                    Value::from(format!("hash-{seq}")),
                ],
            )
            .unwrap();
            seq
        })
    }

    fn call(s: &TestStores, method: &str, path: &str, token: &str, body: Option<Json>) -> Response {
        let auth = format!("Bearer {token}");
        let text = body.map(|b| b.to_string()).unwrap_or_default();
        s.call(
            &crate::routes::table(),
            method,
            path,
            &[
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
            ],
            text.as_bytes(),
        )
    }

    fn get_json(s: &TestStores, path: &str, token: &str) -> (u16, Json) {
        let r = call(s, "GET", path, token, None);
        let v = serde_json::from_slice(&r.body).unwrap_or(Json::Null);
        (r.status.as_u16(), v)
    }

    fn seqs(v: &Json) -> Vec<i64> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_i64().unwrap())
            .collect()
    }

    fn ev<'a>(org: &'a str, user: &'a str, action: &'a str, status: i64, ts: i64) -> Ev<'a> {
        Ev {
            org: Some(org),
            user,
            action,
            resource_type: "widget",
            status,
            ts,
        }
    }

    /// Org A: admin `a-admin`, auditor `a-aud`, user `a-user`; org B: admin `b-admin`; the
    /// platform admin `root` in org P. Seeds five org-A widget rows and two org-B rows.
    fn setup() -> (TestStores, Vec<i64>, Vec<i64>) {
        let s = TestStores::new();
        login(&s, "a-admin", "org-a", "admin", false);
        login(&s, "a-aud", "org-a", "auditor", false);
        login(&s, "a-user", "org-a", "user", false);
        login(&s, "b-admin", "org-b", "admin", false);
        login(&s, "root", "org-p", "admin", true);
        let a = vec![
            seed(
                &s,
                ev("org-a", "u1", "POST /api/v1/users", 201, NOW - 50 * MIN),
            ),
            seed(
                &s,
                ev("org-a", "u1", "GET /api/v1/users/{id}", 404, NOW - 40 * MIN),
            ),
            seed(
                &s,
                ev("org-a", "u2", "POST /api/v1/users", 409, NOW - 30 * MIN),
            ),
            seed(
                &s,
                ev(
                    "org-a",
                    "u2",
                    "DELETE /api/v1/users/{id}",
                    204,
                    NOW - 20 * MIN,
                ),
            ),
            seed(
                &s,
                ev("org-a", "u1", "GET /api/v1/users", 200, NOW - 10 * MIN),
            ),
        ];
        let b = vec![
            seed(
                &s,
                ev("org-b", "u9", "POST /api/v1/users", 201, NOW - 45 * MIN),
            ),
            seed(
                &s,
                ev("org-b", "u9", "GET /api/v1/users", 500, NOW - 5 * MIN),
            ),
        ];
        (s, a, b)
    }

    #[test]
    fn lists_newest_first_with_cursor_pages() {
        let (s, a, _) = setup();
        let (st, p1) = get_json(
            &s,
            "/api/v1/admin/audit?resource_type=widget&limit=2",
            &tok("a-admin"),
        );
        assert_eq!(st, 200, "{p1}");
        assert_eq!(seqs(&p1), vec![a[4], a[3]]);
        let cursor = p1["next_cursor"].as_str().unwrap();
        let (_, p2) = get_json(
            &s,
            &format!("/api/v1/admin/audit?resource_type=widget&limit=2&cursor={cursor}"),
            &tok("a-admin"),
        );
        assert_eq!(seqs(&p2), vec![a[2], a[1]]);
        let cursor = p2["next_cursor"].as_str().unwrap();
        let (_, p3) = get_json(
            &s,
            &format!("/api/v1/admin/audit?resource_type=widget&limit=2&cursor={cursor}"),
            &tok("a-admin"),
        );
        assert_eq!(seqs(&p3), vec![a[0]]);
        assert_eq!(p3["next_cursor"], Json::Null);
        let e = &p3["items"][0];
        assert_eq!(e["id"], format!("ev-{}", a[0]));
        assert_eq!(e["request_id"], format!("req-{}", a[0]));
        assert_eq!(e["action"], "POST /api/v1/users");
        assert_eq!(e["method"], "POST");
        assert_eq!(e["org_id"], "org-a");
        assert_eq!(e["status"], 201);
        assert_eq!(e["ts"], "2026-11-23T05:10:00.000Z");
        assert_eq!(e["ts_ms"], NOW - 50 * MIN);
        assert_eq!(e["duration_ms"], 1.5);
        assert_eq!(e["hash"], format!("hash-{}", a[0]));
        assert_eq!(e["prev_hash"], format!("prev-{}", a[0]));
        assert_eq!(e["body"], r#"{"name":"a,b","password":"[REDACTED]"}"#);
    }

    #[test]
    fn filters() {
        let (s, a, _) = setup();
        let q = |query: &str| -> Vec<i64> {
            let (st, v) = get_json(
                &s,
                &format!("/api/v1/admin/audit?resource_type=widget&{query}"),
                &tok("a-admin"),
            );
            assert_eq!(st, 200, "{query}: {v}");
            seqs(&v)
        };
        assert_eq!(q("user_id=u2"), vec![a[3], a[2]]);
        assert_eq!(q("action=POST%20%2Fapi%2Fv1%2Fusers"), vec![a[2], a[0]]);
        assert_eq!(q("status=4xx"), vec![a[2], a[1]]);
        assert_eq!(q("status=4XX&user_id=u1"), vec![a[1]]);
        assert_eq!(q("status=204"), vec![a[3]]);
        assert_eq!(q("status=5xx"), Vec::<i64>::new());
        assert_eq!(q(&format!("request_id=req-{}", a[1])), vec![a[1]]);
        assert_eq!(q(&format!("resource_id=res-{}", a[4])), vec![a[4]]);
        // since inclusive, until exclusive; RFC 3339 (Z, offsets, `+` as space) or epoch ms.
        assert_eq!(
            q("since=2026-11-23T05:30:00Z&until=2026-11-23T05:50:00.000Z"),
            vec![a[3], a[2]]
        );
        assert_eq!(
            q("since=2026-11-23T07:30:00%2B02:00&until=2026-11-23T01:50:00-04:00"),
            vec![a[3], a[2]]
        );
        assert_eq!(q("since=2026-11-23T07:30:00+02:00"), vec![a[4], a[3], a[2]]);
        assert_eq!(q(&format!("since={}", NOW - 20 * MIN)), vec![a[4], a[3]]);
        for bad in [
            "status=6xx",
            "status=40",
            "status=abc",
            "since=yesterday",
            "until=2026-13-01T00:00:00Z",
            "format=csv",
            "bogus=1",
        ] {
            let (st, v) = get_json(&s, &format!("/api/v1/admin/audit?{bad}"), &tok("a-admin"));
            assert_eq!(st, 400, "{bad}: {v}");
        }
    }

    #[test]
    fn org_scoping_and_roles() {
        let (s, a, b) = setup();
        // Org B's admin sees only org B's seeded rows; org A's admin none of B's.
        let (_, v) = get_json(
            &s,
            "/api/v1/admin/audit?resource_type=widget",
            &tok("b-admin"),
        );
        assert_eq!(seqs(&v), vec![b[1], b[0]]);
        let (_, v) = get_json(&s, "/api/v1/admin/audit?limit=200", &tok("a-admin"));
        assert!(v["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["org_id"] == "org-a"));
        // Naming another org: 404 for an org admin; the platform admin may.
        let (st, _) = get_json(&s, "/api/v1/admin/audit?org_id=org-b", &tok("a-admin"));
        assert_eq!(st, 404);
        let (st, v) = get_json(
            &s,
            "/api/v1/admin/audit?org_id=org-b&resource_type=widget",
            &tok("root"),
        );
        assert_eq!(st, 200);
        assert_eq!(seqs(&v), vec![b[1], b[0]]);
        let (_, v) = get_json(
            &s,
            "/api/v1/admin/audit?org_id=*&resource_type=widget",
            &tok("root"),
        );
        assert_eq!(v["items"].as_array().unwrap().len(), 7);
        let (_, v) = get_json(&s, "/api/v1/admin/audit?resource_type=widget", &tok("root"));
        assert_eq!(seqs(&v), Vec::<i64>::new());
        // One event: own org 200, foreign 404 (the platform admin reads any).
        let (st, v) = get_json(
            &s,
            &format!("/api/v1/admin/audit/ev-{}", a[1]),
            &tok("a-aud"),
        );
        assert_eq!(st, 200);
        assert_eq!(v["seq"], a[1]);
        let (st, v) = get_json(
            &s,
            &format!("/api/v1/admin/audit/ev-{}", b[0]),
            &tok("a-admin"),
        );
        assert_eq!(st, 404);
        assert_eq!(v["error"], "not_found");
        let (st, _) = get_json(&s, "/api/v1/admin/audit/no-such-id", &tok("a-admin"));
        assert_eq!(st, 404);
        let (st, _) = get_json(
            &s,
            &format!("/api/v1/admin/audit/ev-{}", b[0]),
            &tok("root"),
        );
        assert_eq!(st, 200);
        // Auditors read; plain users may not; nobody unauthenticated.
        let (st, _) = get_json(&s, "/api/v1/admin/audit", &tok("a-aud"));
        assert_eq!(st, 200);
        for path in [
            "/api/v1/admin/audit",
            "/api/v1/admin/audit/stats",
            "/api/v1/admin/audit/export",
        ] {
            let (st, _) = get_json(&s, path, &tok("a-user"));
            assert_eq!(st, 403, "{path}");
            let (st, _) = get_json(&s, path, "nope");
            assert_eq!(st, 401, "{path}");
        }
    }

    #[test]
    fn export_ndjson_and_csv_with_continuation() {
        let (s, a, _) = setup();
        let r = call(
            &s,
            "GET",
            "/api/v1/admin/audit/export?resource_type=widget&limit=2",
            &tok("a-admin"),
            None,
        );
        assert_eq!(r.status, 200);
        assert_eq!(
            r.headers.get("content-type").unwrap(),
            "application/x-ndjson"
        );
        let text = String::from_utf8(r.body.clone()).unwrap();
        let lines: Vec<Json> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines
                .iter()
                .map(|e| e["seq"].as_i64().unwrap())
                .collect::<Vec<_>>(),
            vec![a[0], a[1]]
        );
        let next = r.headers.get(NEXT_AFTER_SEQ).unwrap().to_str().unwrap();
        assert_eq!(next, a[1].to_string());
        let r = call(
            &s,
            "GET",
            &format!("/api/v1/admin/audit/export?resource_type=widget&after_seq={next}"),
            &tok("a-admin"),
            None,
        );
        let text = String::from_utf8(r.body.clone()).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(r.headers.get(NEXT_AFTER_SEQ).is_none());

        let r = call(
            &s,
            "GET",
            &format!(
                "/api/v1/admin/audit/export?format=csv&resource_type=widget&request_id=req-{}",
                a[0]
            ),
            &tok("a-aud"),
            None,
        );
        assert_eq!(r.status, 200);
        assert_eq!(
            r.headers.get("content-type").unwrap(),
            "text/csv; charset=utf-8"
        );
        let text = String::from_utf8(r.body.clone()).unwrap();
        let rows: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(rows.len(), 3, "{text}");
        assert_eq!(rows[0], CSV_HEADER.trim_end());
        assert_eq!(rows[2], "");
        assert!(rows[1].starts_with(&format!(
            "{},ev-{0},req-{0},2026-11-23T05:10:00.000Z,",
            a[0]
        )));
        // Formula guard and quoting: the user agent `=HYPERLINK("x"),ua` and the body with a comma.
        assert!(
            rows[1].contains(r#","'=HYPERLINK(""x""),ua","#),
            "{}",
            rows[1]
        );
        assert!(rows[1].contains(r#""{""name"":""a,b"",""password"":""[REDACTED]""}""#));
        let (st, _) = get_json(&s, "/api/v1/admin/audit/export?format=xml", &tok("a-admin"));
        assert_eq!(st, 400);
    }

    #[test]
    fn csv_cells() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("=1+2"), "'=1+2");
        assert_eq!(csv_cell("+1"), "'+1");
        assert_eq!(csv_cell("-1"), "'-1");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("\tx"), "'\tx");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=a,b"), "\"'=a,b\"");
        assert_eq!(csv_cell("l1\nl2"), "\"l1\nl2\"");
    }

    #[test]
    fn instants() {
        assert_eq!(parse_rfc3339("2026-11-23T06:00:00Z"), Some(NOW));
        assert_eq!(parse_rfc3339("2026-11-23T06:00:00.5Z"), Some(NOW + 500));
        assert_eq!(
            parse_rfc3339("2026-11-23t06:00:00.123456z"),
            Some(NOW + 123)
        );
        assert_eq!(parse_rfc3339("2026-11-23T08:00:00+02:00"), Some(NOW));
        assert_eq!(parse_rfc3339("2026-11-23T08:00:00 02:00"), Some(NOW));
        assert_eq!(parse_rfc3339("2026-11-23T01:30:00-04:30"), Some(NOW));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Some(951_782_400_000));
        for bad in [
            "2026-11-23",
            "2026-11-23T06:00:00",
            "2026-02-29T00:00:00Z",
            "2026-11-23T24:00:00Z",
            "2026-11-23T06:00:00.Z",
            "2026-11-23T06:00:00+0200",
            "2026-11-23T06:00:00Zjunk",
            "２026-11-23T06:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        assert_eq!(parse_instant("1795413600000", "since").unwrap(), NOW);
        assert!(parse_instant("99999999999999999999999", "since").is_err());
        assert_eq!(status_filter("2xx").unwrap(), (200, 299));
        assert!(status_filter("22xx").is_err());
        assert!(status_filter("0xx").is_err());
    }

    #[test]
    fn stats_by_action_class_resource_and_failed_logins() {
        let (s, _, _) = setup();
        for ts in [NOW - 5 * MIN, NOW - 30 * MIN, NOW - 2 * 60 * MIN] {
            seed(
                &s,
                Ev {
                    org: Some("org-a"),
                    user: "u1",
                    action: "POST /api/v1/auth/login",
                    resource_type: "auth",
                    status: 401,
                    ts,
                },
            );
        }
        // A login failure of another org, and a successful one, do not count.
        seed(
            &s,
            Ev {
                org: Some("org-b"),
                user: "u9",
                action: "POST /api/v1/auth/login",
                resource_type: "auth",
                status: 401,
                ts: NOW - MIN,
            },
        );
        seed(
            &s,
            Ev {
                org: Some("org-a"),
                user: "u1",
                action: "POST /api/v1/auth/login",
                resource_type: "auth",
                status: 200,
                ts: NOW - MIN,
            },
        );
        let (st, v) = get_json(
            &s,
            "/api/v1/admin/audit/stats?since=2026-11-23T03:00:00Z",
            &tok("a-aud"),
        );
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["failed_logins_last_hour"], 2);
        assert_eq!(v["by_action"]["POST /api/v1/auth/login"], 4);
        assert_eq!(v["by_action"]["POST /api/v1/users"], 2);
        assert_eq!(v["by_action"]["GET /api/v1/users/{id}"], 1);
        assert_eq!(v["by_resource_type"]["widget"], 5);
        assert_eq!(v["by_resource_type"]["auth"], 4);
        assert!(v["by_status_class"]["4xx"].as_i64().unwrap() >= 5);
        assert_eq!(v["since"], "2026-11-23T03:00:00.000Z");
        assert!(
            v["by_status_class"].get("5xx").is_none(),
            "org B's 500 is not counted"
        );
        // The default window is the last 24 hours; a later `since` narrows it.
        let (_, v) = get_json(
            &s,
            &format!("/api/v1/admin/audit/stats?since={}", NOW - 15 * MIN),
            &tok("a-admin"),
        );
        assert_eq!(v["by_resource_type"]["widget"], 1);
        assert_eq!(v["by_action"]["POST /api/v1/auth/login"], 2);
        let (st, _) = get_json(&s, "/api/v1/admin/audit/stats?status=4xx", &tok("a-admin"));
        assert_eq!(st, 400);
    }

    #[test]
    fn retention_deletes_through_the_gate_with_a_checkpoint() {
        let s = TestStores::new();
        login(&s, "root", "org-p", "admin", true);
        login(&s, "a-admin", "org-a", "admin", false);
        let day = 24 * 60 * MIN;
        let old: Vec<i64> = (0..3)
            .map(|i| {
                seed(
                    &s,
                    ev(
                        "org-a",
                        "u1",
                        "GET /api/v1/users",
                        200,
                        NOW - (100 + i) * day,
                    ),
                )
            })
            .collect();
        let recent = seed(
            &s,
            ev("org-b", "u1", "GET /api/v1/users", 200, NOW - 10 * day),
        );
        // Bounds and access.
        for bad in [
            json!({"older_than_days": 0}),
            json!({"older_than_days": 3651}),
        ] {
            let r = call(
                &s,
                "POST",
                "/api/v1/admin/audit/retention",
                &tok("root"),
                Some(bad),
            );
            assert_eq!(r.status, 400);
        }
        let r = call(
            &s,
            "POST",
            "/api/v1/admin/audit/retention",
            &tok("root"),
            Some(json!({"older_than_days": 1, "x": 1})),
        );
        assert_eq!(r.status, 400);
        let r = call(
            &s,
            "POST",
            "/api/v1/admin/audit/retention",
            &tok("a-admin"),
            Some(json!({"older_than_days": 30})),
        );
        assert_eq!(r.status, 403);
        // Default 90 days.
        let r = call(
            &s,
            "POST",
            "/api/v1/admin/audit/retention",
            &tok("root"),
            Some(json!({})),
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let v: Json = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["older_than_days"], 90);
        let first_remaining = with_db(&s, |db| {
            db.execute("SELECT MIN(seq) AS n FROM audit_log", &[])
                .unwrap()
                .first()
                .unwrap()
                .i64("n")
                .unwrap()
        });
        // Everything before the first recent row goes (the pipeline's own rows of the refused
        // calls above are recent and stay).
        assert!(first_remaining > old[2]);
        assert!(first_remaining <= recent);
        assert_eq!(v["checkpoint_seq"], first_remaining);
        assert_eq!(
            v["deleted"].as_u64().unwrap(),
            u64::try_from(first_remaining - 1).unwrap()
        );
        assert_eq!(v["kept_tail"], false);
        with_db(&s, |db| {
            let cp = db.execute("SELECT * FROM audit_checkpoints", &[]).unwrap();
            assert_eq!(cp.len(), 1);
            let row = cp.first().unwrap();
            assert_eq!(row.i64("seq").unwrap(), first_remaining);
            let expected_prev = db
                .execute(
                    "SELECT prev_hash FROM audit_log WHERE seq = ?",
                    &[Value::from(first_remaining)],
                )
                .unwrap()
                .first()
                .unwrap()
                .str("prev_hash")
                .unwrap()
                .to_owned();
            assert_eq!(row.str("prev_hash").unwrap(), expected_prev);
            assert_eq!(row.i64("removed_through").unwrap(), first_remaining - 1);
            assert_eq!(row.i64("removed_count").unwrap(), first_remaining - 1);
            assert_eq!(row.i64("created_at").unwrap(), NOW);
            // Authenticated: chained to the genesis with the (unkeyed) chain key.
            let expected_mac = chain::Checkpoint {
                seq: first_remaining,
                prev_hash: expected_prev.clone(),
                created_at: NOW,
                removed_through: first_remaining - 1,
                removed_count: first_remaining - 1,
            }
            .mac(chain::UNKEYED, chain::GENESIS);
            assert_eq!(row.opt_str("mac").unwrap(), Some(expected_mac.as_str()));
            // The gate is closed again: a direct delete is refused.
            let open = db
                .execute("SELECT open FROM audit_gate", &[])
                .unwrap()
                .first()
                .unwrap()
                .i64("open")
                .unwrap();
            assert_eq!(open, 0);
            assert!(db.execute("DELETE FROM audit_log", &[]).is_err());
        });
        // Nothing more to purge: a second run deletes nothing and records no checkpoint.
        let r = call(
            &s,
            "POST",
            "/api/v1/admin/audit/retention",
            &tok("root"),
            Some(json!({"older_than_days": 90})),
        );
        let v: Json = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["deleted"], 0);
        assert_eq!(v["checkpoint_seq"], Json::Null);
    }

    #[test]
    fn retention_keeps_the_tail_when_everything_is_old() {
        let s = TestStores::new();
        login(&s, "root", "org-p", "admin", true);
        let day = 24 * 60 * MIN;
        for i in 0..3 {
            seed(
                &s,
                ev(
                    "org-a",
                    "u1",
                    "GET /api/v1/users",
                    200,
                    NOW - (200 - i) * day,
                ),
            );
        }
        let tail = with_db(&s, |db| {
            db.execute("SELECT MAX(seq) AS n FROM audit_log", &[])
                .unwrap()
                .first()
                .unwrap()
                .i64("n")
                .unwrap()
        });
        let r = call(
            &s,
            "POST",
            "/api/v1/admin/audit/retention",
            &tok("root"),
            Some(json!({"older_than_days": 30})),
        );
        assert_eq!(r.status, 200);
        let v: Json = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["kept_tail"], true);
        assert_eq!(v["checkpoint_seq"], tail);
        assert_eq!(v["deleted"].as_i64().unwrap(), tail - 1);
        let remaining_old = with_db(&s, |db| {
            db.execute(
                "SELECT COUNT(*) AS n FROM audit_log WHERE ts < ?",
                &[Value::from(NOW - 30 * day)],
            )
            .unwrap()
            .first()
            .unwrap()
            .i64("n")
            .unwrap()
        });
        assert_eq!(remaining_old, 1);
        // Empty window on an empty-before-tail table: nothing to do.
        let s = TestStores::new();
        login(&s, "root", "org-p", "admin", true);
        let r = call(
            &s,
            "POST",
            "/api/v1/admin/audit/retention",
            &tok("root"),
            Some(json!({"older_than_days": 30})),
        );
        let v: Json = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["deleted"], 0);
        assert_eq!(v["kept_tail"], false);
    }
}
