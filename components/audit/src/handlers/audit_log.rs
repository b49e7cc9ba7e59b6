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

use serde::{Deserialize, Serialize};
use shared::audit::chain::{self, Record};

use crate::handlers::verify::seal_chain;
use shared::auth::Role;
use shared::store::{Row, StoreError, Value};
use shared::time::Timestamp;
use shared::{
    header, Access, ApiError, ApiResult, Cx, HeaderName, HeaderValue, Response, Route, StatusCode,
};
use std::collections::BTreeMap;

const READERS: Access = Access::AnyRole(&[Role::Admin, Role::Auditor]);

/// Rows per export call, at most (and by default).
pub const EXPORT_MAX_ROWS: i64 = 10_000;
/// An export call stops after the row that takes it past this many bytes.
pub const EXPORT_MAX_BYTES: usize = 8 * 1024 * 1024;
/// Rows fetched per statement while exporting.
const EXPORT_BATCH: i64 = 500;
/// The continuation header of an export.
pub const NEXT_AFTER_SEQ: &str = "x-next-after-seq";
/// Default stats window.
const STATS_DEFAULT_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;
/// Groups per stats breakdown (actions of unrouted requests are unbounded).
const STATS_MAX_GROUPS: i64 = 100;
pub const RETENTION_DEFAULT_DAYS: i64 = 90;
pub const RETENTION_MAX_DAYS: i64 = 3650;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;
const HOUR_MS: i64 = 60 * 60 * 1000;

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

use shared::audit::chain::COLUMNS;

/// One audit event as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub seq: i64,
    pub id: String,
    pub request_id: String,
    pub ts: Timestamp,
    pub ts_ms: i64,
    pub principal: Option<String>,
    pub user_id: Option<String>,
    pub agent_id: Option<String>,
    pub org_id: Option<String>,
    /// The org the request acted on when it is not the actor's own (the platform admin inside
    /// another org); that org's admins and auditors see the event too.
    pub target_org_id: Option<String>,
    pub method: String,
    pub path: String,
    pub action: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub status: i64,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub duration_ms: f64,
    pub error: Option<String>,
    /// The redacted JSON request body as stored (text), when body logging was on.
    pub body: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl Event {
    /// The stored row: the hashed fields as the chain reads them, plus its place in the chain.
    fn from_row(row: &Row<'_>) -> Result<Self, StoreError> {
        let r = Record::from_row(row)?;
        Ok(Self {
            seq: row.i64("seq")?,
            id: r.id,
            request_id: r.request_id,
            ts: Timestamp::from_ms(r.ts),
            ts_ms: r.ts,
            principal: r.principal,
            user_id: r.user_id,
            agent_id: r.agent_id,
            org_id: r.org_id,
            target_org_id: r.target_org_id,
            method: r.method,
            path: r.path,
            action: r.action,
            resource_type: r.resource_type,
            resource_id: r.resource_id,
            status: r.status,
            client_ip: r.client_ip,
            user_agent: r.user_agent,
            duration_ms: r.duration_ms,
            error: r.error,
            body: r.body,
            prev_hash: row.str("prev_hash")?.to_owned(),
            hash: row.str("hash")?.to_owned(),
        })
    }
}

/// Every query parameter the read routes take (each route uses its part).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    #[serde(default)]
    org_id: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    resource_type: Option<String>,
    #[serde(default)]
    resource_id: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    until: Option<String>,
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    after_seq: Option<String>,
    #[serde(default)]
    limit: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    cursor: Option<String>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_query", message)
}

/// Which orgs' events a caller reads.
#[derive(Debug, Clone, PartialEq)]
enum OrgScope {
    Org(String),
    Unattributed,
    All,
}

fn org_scope(cx: &Cx, requested: Option<&str>) -> ApiResult<OrgScope> {
    let user = cx.user()?;
    match requested.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(OrgScope::Org(user.org_id.clone())),
        Some(id) if id == user.org_id => Ok(OrgScope::Org(user.org_id.clone())),
        Some("*") if user.platform_admin => Ok(OrgScope::All),
        Some("none") if user.platform_admin => Ok(OrgScope::Unattributed),
        // Audit rows outlive their org: a deleted org's trail stays readable.
        Some(id) if user.platform_admin => Ok(OrgScope::Org(id.to_owned())),
        Some(_) => Err(ApiError::not_found("no such org")),
    }
}

/// A WHERE clause built from fixed fragments, with its bound values in order. An org scope
/// matches the org's own actors' rows (`org_id`) and the rows of others acting inside it
/// (`target_org_id`, the platform admin).
#[derive(Default, Clone)]
struct Where {
    fragments: Vec<&'static str>,
    params: Vec<Value>,
    org: Option<String>,
}

impl Where {
    fn add(&mut self, fragment: &'static str, params: impl IntoIterator<Item = Value>) {
        self.fragments.push(fragment);
        self.params.extend(params);
    }

    /// The clause for aggregates (`WHERE …`, possibly empty) and its parameters.
    fn clause(&self) -> (String, Vec<Value>) {
        let mut fragments = Vec::new();
        let mut params = Vec::new();
        if let Some(org) = &self.org {
            fragments.push("(org_id = ? OR target_org_id = ?)");
            params.extend([Value::from(org.as_str()), Value::from(org.as_str())]);
        }
        fragments.extend(self.fragments.iter().copied());
        params.extend(self.params.iter().cloned());
        if fragments.is_empty() {
            (String::new(), params)
        } else {
            (format!("WHERE {}", fragments.join(" AND ")), params)
        }
    }

    /// `SELECT {COLUMNS}` of the matching rows in `seq` order (`ASC`/`DESC`), at most `limit`.
    /// For an org scope this is the union of two index-ordered reads (by `org_id` and by
    /// `target_org_id`, each with its `(…, seq)` index) rather than an `OR`, which would sort the
    /// whole org's rows for every page.
    fn select(&self, order: &'static str, limit: i64) -> (String, Vec<Value>) {
        let Some(org) = &self.org else {
            let (clause, mut params) = self.clause();
            params.push(Value::from(limit));
            return (
                format!("SELECT {COLUMNS} FROM audit_log {clause} ORDER BY seq {order} LIMIT ?"),
                params,
            );
        };
        let rest: String = self.fragments.iter().map(|f| format!(" AND {f}")).collect();
        let mut params = Vec::new();
        for _side in 0..2 {
            params.push(Value::from(org.as_str()));
            params.extend(self.params.iter().cloned());
            params.push(Value::from(limit));
        }
        params.push(Value::from(limit));
        (
            format!(
                "SELECT {COLUMNS} FROM audit_log WHERE seq IN (
                   SELECT seq FROM (SELECT seq FROM audit_log WHERE org_id = ?{rest}
                                     ORDER BY seq {order} LIMIT ?)
                   UNION ALL
                   SELECT seq FROM (SELECT seq FROM audit_log WHERE target_org_id = ?{rest}
                                     ORDER BY seq {order} LIMIT ?))
                 ORDER BY seq {order} LIMIT ?"
            ),
            params,
        )
    }

    fn scope(&mut self, scope: &OrgScope) {
        match scope {
            OrgScope::Org(id) => self.org = Some(id.clone()),
            OrgScope::Unattributed => self.add("org_id IS NULL", []),
            OrgScope::All => {}
        }
    }
}

/// `404` → exactly 404; `4xx` → 400..=499.
fn status_filter(text: &str) -> ApiResult<(i64, i64)> {
    let t = text.trim().to_ascii_lowercase();
    let bad = || invalid("`status` must be a status code (404) or a class (4xx)");
    if let Some(class) = t.strip_suffix("xx") {
        let c: i64 = class.parse().map_err(|_| bad())?;
        if !(1..=5).contains(&c) || class.len() != 1 {
            return Err(bad());
        }
        return Ok((c * 100, c * 100 + 99));
    }
    let code: i64 = t.parse().map_err(|_| bad())?;
    if !(100..=599).contains(&code) {
        return Err(bad());
    }
    Ok((code, code))
}

/// Milliseconds since the epoch, or an RFC 3339 instant.
fn parse_instant(text: &str, name: &str) -> ApiResult<i64> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse()
            .map_err(|_| invalid(format!("`{name}` is out of range")));
    }
    parse_rfc3339(t).ok_or_else(|| {
        invalid(format!(
            "`{name}` must be an RFC 3339 instant or milliseconds since the epoch"
        ))
    })
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; a space in place of `+` (an unescaped `+` in a
/// query string) is accepted.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = s.get(from..from + len)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let digits = &s[start..i.min(start + 3)];
        millis = digits.parse::<i64>().ok()? * 10_i64.pow(3 - digits.len() as u32);
    }
    let offset_min = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-' | b' ') if i + 6 == b.len() && b[i + 3] == b':' => {
            let (h, m) = (num(i + 1, 2)?, num(i + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let total = h * 60 + m;
            if *sign == b'-' {
                -total
            } else {
                total
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset_min * 60;
    Some(secs * 1000 + millis)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The filters shared by list and export.
fn filters(cx: &Cx, q: &AuditQuery) -> ApiResult<Where> {
    let mut w = Where::default();
    w.scope(&org_scope(cx, q.org_id.as_deref())?);
    let exact: [(&Option<String>, &'static str); 5] = [
        (&q.user_id, "user_id = ?"),
        (&q.action, "action = ?"),
        (&q.resource_type, "resource_type = ?"),
        (&q.resource_id, "resource_id = ?"),
        (&q.request_id, "request_id = ?"),
    ];
    for (value, fragment) in exact {
        if let Some(v) = value {
            w.add(fragment, [Value::from(v.as_str())]);
        }
    }
    if let Some(status) = &q.status {
        let (lo, hi) = status_filter(status)?;
        w.add("status BETWEEN ? AND ?", [Value::from(lo), Value::from(hi)]);
    }
    if let Some(since) = &q.since {
        w.add("ts >= ?", [Value::from(parse_instant(since, "since")?)]);
    }
    if let Some(until) = &q.until {
        w.add("ts < ?", [Value::from(parse_instant(until, "until")?)]);
    }
    Ok(w)
}

fn events(rows: &shared::store::Rows) -> ApiResult<Vec<Event>> {
    Ok(rows
        .iter()
        .map(|r| Event::from_row(&r))
        .collect::<Result<Vec<_>, _>>()?)
}

/// `GET /api/v1/admin/audit`: the scope's events, newest first, filtered and paginated.
pub async fn list(cx: Cx) -> ApiResult<Response> {
    let q: AuditQuery = cx.query()?;
    if q.format.is_some() || q.after_seq.is_some() {
        return Err(invalid("`format` and `after_seq` belong to the export"));
    }
    let page = cx.page()?;
    let mut w = filters(&cx, &q)?;
    if let Some(after) = page.after::<i64>()? {
        w.add("seq < ?", [Value::from(after)]);
    }
    let (sql, params) = w.select("DESC", page.fetch_limit());
    seal_chain(&cx)?;
    let rows = cx.db()?.execute(&sql, &params)?;
    Response::ok_json(&page.finish(events(&rows)?, |e| e.seq)?)
}

/// `GET /api/v1/admin/audit/{id}`: one event (a foreign org's answers 404).
pub async fn get(cx: Cx) -> ApiResult<Response> {
    let id: String = cx.param("id")?;
    let user = cx.user()?;
    seal_chain(&cx)?;
    let rows = cx.db()?.execute(
        &format!("SELECT {COLUMNS} FROM audit_log WHERE id = ?"),
        &[Value::from(id.as_str())],
    )?;
    let event = events(&rows)?.into_iter().next();
    match event {
        Some(e)
            if user.platform_admin
                || e.org_id.as_deref() == Some(user.org_id.as_str())
                || e.target_org_id.as_deref() == Some(user.org_id.as_str()) =>
        {
            Response::ok_json(&e)
        }
        _ => Err(ApiError::not_found("no such audit event")),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Ndjson,
    Csv,
}

const CSV_HEADER: &str =
    "seq,id,request_id,ts,ts_ms,principal,user_id,agent_id,org_id,method,path,\
action,resource_type,resource_id,status,client_ip,user_agent,duration_ms,error,body,prev_hash,hash,\
target_org_id\r\n";

/// One CSV cell: formula-looking text gets a leading `'`; quoted when it holds `,`, `"`, CR or LF.
pub fn csv_cell(text: &str) -> String {
    let guarded = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if guarded.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

fn csv_line(e: &Event) -> String {
    let text = |v: &Option<String>| v.as_deref().map(csv_cell).unwrap_or_default();
    let cells = [
        e.seq.to_string(),
        csv_cell(&e.id),
        csv_cell(&e.request_id),
        e.ts.to_rfc3339(),
        e.ts_ms.to_string(),
        text(&e.principal),
        text(&e.user_id),
        text(&e.agent_id),
        text(&e.org_id),
        csv_cell(&e.method),
        csv_cell(&e.path),
        csv_cell(&e.action),
        text(&e.resource_type),
        text(&e.resource_id),
        e.status.to_string(),
        text(&e.client_ip),
        text(&e.user_agent),
        e.duration_ms.to_string(),
        text(&e.error),
        text(&e.body),
        csv_cell(&e.prev_hash),
        csv_cell(&e.hash),
        text(&e.target_org_id),
    ];
    let mut line = cells.join(",");
    line.push_str("\r\n");
    line
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
    let mut after = match q.after_seq.as_deref().map(str::trim) {
        None | Some("") => 0,
        Some(n) => n
            .parse::<i64>()
            .map_err(|_| invalid("`after_seq` must be a number"))?,
    };
    let w = filters(&cx, &q)?;
    let db = cx.db()?;
    let mut out: Vec<u8> = Vec::new();
    if format == Format::Csv {
        out.extend_from_slice(CSV_HEADER.as_bytes());
    }
    let mut written: i64 = 0;
    let mut more = false;
    'batches: loop {
        let mut batch_where = w.clone();
        batch_where.add("seq > ?", [Value::from(after)]);
        let (sql, params) = batch_where.select("ASC", EXPORT_BATCH);
        let batch = events(&db.execute(&sql, &params)?)?;
        let full = i64::try_from(batch.len()).unwrap_or(i64::MAX) == EXPORT_BATCH;
        let n = batch.len();
        for (i, e) in batch.into_iter().enumerate() {
            if written == max_rows || out.len() >= EXPORT_MAX_BYTES {
                more = true;
                break 'batches;
            }
            match format {
                Format::Ndjson => {
                    out.extend_from_slice(&Response::ok_json(&e)?.body);
                    out.push(b'\n');
                }
                Format::Csv => out.extend_from_slice(csv_line(&e).as_bytes()),
            }
            after = e.seq;
            written += 1;
            if i + 1 == n && !full {
                break 'batches;
            }
        }
        if n == 0 {
            break;
        }
    }
    let content_type = match format {
        Format::Ndjson => "application/x-ndjson",
        Format::Csv => "text/csv; charset=utf-8",
    };
    let filename = match format {
        Format::Ndjson => "attachment; filename=\"audit.ndjson\"",
        Format::Csv => "attachment; filename=\"audit.csv\"",
    };
    let mut response = Response::bytes(StatusCode::OK, content_type, out).with_header(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static(filename),
    );
    if more {
        let value = HeaderValue::from_str(&after.to_string())
            .map_err(|e| ApiError::internal(format!("continuation header: {e}")))?;
        response = response.with_header(HeaderName::from_static(NEXT_AFTER_SEQ), value);
    }
    Ok(response)
}

#[derive(Serialize)]
struct Stats {
    since: Timestamp,
    until: Timestamp,
    total: i64,
    by_action: BTreeMap<String, i64>,
    by_status_class: BTreeMap<String, i64>,
    by_resource_type: BTreeMap<String, i64>,
    failed_logins_last_hour: i64,
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
    let scope = org_scope(&cx, q.org_id.as_deref())?;
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
    let mut w = Where::default();
    w.scope(&scope);
    w.add(
        "ts >= ? AND ts < ?",
        [Value::from(since), Value::from(until)],
    );
    let (clause, clause_params) = w.clause();
    let db = cx.db()?;
    let group = |expr: &str| -> ApiResult<BTreeMap<String, i64>> {
        let mut params = clause_params.clone();
        params.push(Value::from(STATS_MAX_GROUPS));
        let rows = db.execute(
            &format!(
                "SELECT {expr} AS k, COUNT(*) AS n FROM audit_log {clause}
                 GROUP BY k ORDER BY n DESC, k LIMIT ?"
            ),
            &params,
        )?;
        let mut map = BTreeMap::new();
        for row in rows.iter() {
            let key = match row.value("k")? {
                Value::Text(t) => t.clone(),
                Value::Integer(i) => i.to_string(),
                _ => "(none)".to_owned(),
            };
            map.insert(key, row.i64("n")?);
        }
        Ok(map)
    };
    let by_action = group("action")?;
    let by_resource_type = group("COALESCE(resource_type, '(none)')")?;
    let by_status_class = group("CAST(status / 100 AS TEXT) || 'xx'")?;
    let total = db
        .execute(
            &format!("SELECT COUNT(*) AS n FROM audit_log {clause}"),
            &clause_params,
        )?
        .first()
        .map(|r| r.i64("n"))
        .transpose()?
        .unwrap_or(0);
    let mut logins = Where::default();
    logins.scope(&scope);
    logins.add(
        "method = 'POST' AND path = '/api/v1/auth/login' AND status = 401 AND ts >= ?",
        [Value::from(now - HOUR_MS)],
    );
    let (logins_clause, logins_params) = logins.clause();
    let failed_logins_last_hour = db
        .execute(
            &format!("SELECT COUNT(*) AS n FROM audit_log {logins_clause}"),
            &logins_params,
        )?
        .first()
        .map(|r| r.i64("n"))
        .transpose()?
        .unwrap_or(0);
    Response::ok_json(&Stats {
        since: Timestamp::from_ms(since),
        until: Timestamp::from_ms(until),
        total,
        by_action,
        by_status_class,
        by_resource_type,
        failed_logins_last_hour,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetentionRequest {
    #[serde(default)]
    older_than_days: Option<i64>,
}

#[derive(Serialize)]
struct RetentionReport {
    older_than_days: i64,
    cutoff: Timestamp,
    deleted: u64,
    /// The first remaining row, where the checkpoint was recorded (`null` when nothing was deleted).
    checkpoint_seq: Option<i64>,
    /// The newest row was older than the cutoff and kept as the chain's tail.
    kept_tail: bool,
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
    let report = cx.db()?.transaction(|db| -> ApiResult<RetentionReport> {
        // Under the lock: every row retention may delete or anchor on is sealed.
        chain::seal_all(db, key.as_deref().map_or(chain::UNKEYED, str::as_bytes))?;
        let first_kept = db
            .execute(
                "SELECT MIN(seq) AS seq FROM audit_log WHERE ts >= ?",
                &[Value::from(cutoff)],
            )?
            .first()
            .map(|r| r.opt_i64("seq"))
            .transpose()?
            .flatten();
        let (keep, kept_tail) = match first_kept {
            Some(seq) => (Some(seq), false),
            None => {
                let newest = db
                    .execute("SELECT MAX(seq) AS seq FROM audit_log", &[])?
                    .first()
                    .map(|r| r.opt_i64("seq"))
                    .transpose()?
                    .flatten();
                (newest, newest.is_some())
            }
        };
        let mut report = RetentionReport {
            older_than_days: days,
            cutoff: Timestamp::from_ms(cutoff),
            deleted: 0,
            checkpoint_seq: None,
            kept_tail,
        };
        let Some(keep) = keep else {
            return Ok(report);
        };
        let rows = db.execute(
            "SELECT prev_hash, (SELECT MAX(seq) FROM audit_log WHERE seq < ?1) AS removed_through
               FROM audit_log WHERE seq = ?1",
            &[Value::from(keep)],
        )?;
        let Some(row) = rows.first() else {
            return Ok(report);
        };
        let Some(removed_through) = row.opt_i64("removed_through")? else {
            // Nothing older than the first row to keep.
            return Ok(report);
        };
        let prev_hash = row.str("prev_hash")?.to_owned();
        db.execute("UPDATE audit_gate SET open = 1 WHERE id = 1", &[])?;
        db.execute("DELETE FROM audit_log WHERE seq < ?", &[Value::from(keep)])?;
        let deleted = db.changes()?;
        chain::record_checkpoint(
            db,
            key.as_deref().map_or(chain::UNKEYED, str::as_bytes),
            &chain::Checkpoint {
                seq: keep,
                prev_hash,
                created_at: now,
                removed_through,
                removed_count: i64::try_from(deleted).unwrap_or(i64::MAX),
            },
        )?;
        db.execute("UPDATE audit_gate SET open = 0 WHERE id = 1", &[])?;
        report.deleted = deleted;
        report.checkpoint_seq = Some(keep);
        Ok(report)
    })?;
    Response::ok_json(&report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value as Json};
    use shared::secrets::TokenHash;
    use shared::services::testing::{insert_user, TestStores};
    use shared::store::Database;

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
