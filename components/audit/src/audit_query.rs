//! The audit log's queries: events and their filters, list, one event, export, stats and
//! retention — the SQL behind `/api/v1/admin/audit` (the routes and who may call them are in
//! [`crate::handlers::audit_log`]).
//!
//! Every read is scoped by an [`OrgScope`] through [`Where`]: an org scope matches the org's own
//! actors' rows (`org_id`) and the rows of others acting inside it (`target_org_id`).

use serde::{Deserialize, Serialize};
use shared::audit::chain::{self, Record, COLUMNS};
use shared::auth::Principal;
use shared::pagination::{Page, PageRequest};
use shared::store::{Database, Row, StoreError, Value};
use shared::time::Timestamp;
use shared::{ApiError, ApiResult, Response};
use std::collections::BTreeMap;

/// Rows per export call, at most (and by default).
pub const EXPORT_MAX_ROWS: i64 = 10_000;
/// An export call stops after the row that takes it past this many bytes.
pub const EXPORT_MAX_BYTES: usize = 8 * 1024 * 1024;
/// Rows fetched per statement while exporting.
const EXPORT_BATCH: i64 = 500;
/// Default stats window.
pub const STATS_DEFAULT_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;
/// Groups per stats breakdown (actions of unrouted requests are unbounded).
const STATS_MAX_GROUPS: i64 = 100;
const HOUR_MS: i64 = 60 * 60 * 1000;

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
pub struct AuditQuery {
    #[serde(default)]
    pub org_id: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub resource_type: Option<String>,
    #[serde(default)]
    pub resource_id: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub since: Option<String>,
    #[serde(default)]
    pub until: Option<String>,
    #[serde(default)]
    pub request_id: Option<String>,
    #[serde(default)]
    pub format: Option<String>,
    #[serde(default)]
    pub after_seq: Option<String>,
    #[serde(default)]
    pub limit: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    pub cursor: Option<String>,
}

pub fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_query", message)
}

/// Which orgs' events a caller reads.
#[derive(Debug, Clone, PartialEq)]
pub enum OrgScope {
    Org(String),
    Unattributed,
    All,
}

/// The scope a caller reads: its own org by default; the platform admin may name another org,
/// every org (`*`) or the unattributed events (`none`); anyone else naming a foreign org gets 404.
pub fn org_scope(user: &Principal, requested: Option<&str>) -> ApiResult<OrgScope> {
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
pub struct Where {
    fragments: Vec<&'static str>,
    params: Vec<Value>,
    org: Option<String>,
}

impl Where {
    pub fn add(&mut self, fragment: &'static str, params: impl IntoIterator<Item = Value>) {
        self.fragments.push(fragment);
        self.params.extend(params);
    }

    /// The clause for aggregates (`WHERE …`, possibly empty) and its parameters.
    pub fn clause(&self) -> (String, Vec<Value>) {
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
    pub fn select(&self, order: &'static str, limit: i64) -> (String, Vec<Value>) {
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

    pub fn scope(&mut self, scope: &OrgScope) {
        match scope {
            OrgScope::Org(id) => self.org = Some(id.clone()),
            OrgScope::Unattributed => self.add("org_id IS NULL", []),
            OrgScope::All => {}
        }
    }
}

/// `404` → exactly 404; `4xx` → 400..=499.
pub fn status_filter(text: &str) -> ApiResult<(i64, i64)> {
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
pub fn parse_instant(text: &str, name: &str) -> ApiResult<i64> {
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
pub fn parse_rfc3339(s: &str) -> Option<i64> {
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
pub fn filters(user: &Principal, q: &AuditQuery) -> ApiResult<Where> {
    let mut w = Where::default();
    w.scope(&org_scope(user, q.org_id.as_deref())?);
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

/// The matching events, newest first, one page (the cursor is the last `seq` shown).
pub fn list(db: &Database, filter: &Where, page: &PageRequest) -> ApiResult<Page<Event>> {
    let (sql, params) = filter.select("DESC", page.fetch_limit());
    let rows = db.execute(&sql, &params)?;
    page.finish(events(&rows)?, |e| e.seq)
}

/// One event by id, if `user` may read it (the platform admin reads any, others their org's and
/// the events acting inside it); 404 otherwise.
pub fn find(db: &Database, user: &Principal, id: &str) -> ApiResult<Event> {
    let rows = db.execute(
        &format!("SELECT {COLUMNS} FROM audit_log WHERE id = ?"),
        &[Value::from(id)],
    )?;
    let event = events(&rows)?.into_iter().next();
    match event {
        Some(e)
            if user.platform_admin
                || e.org_id.as_deref() == Some(user.org_id.as_str())
                || e.target_org_id.as_deref() == Some(user.org_id.as_str()) =>
        {
            Ok(e)
        }
        _ => Err(ApiError::not_found("no such audit event")),
    }
}

/// One export call's body, and the `seq` to continue after when more rows match.
pub struct Export {
    pub body: Vec<u8>,
    pub next_after_seq: Option<i64>,
}

/// The matching events after `after` (a `seq`), oldest first, at most `max_rows` rows and about
/// [`EXPORT_MAX_BYTES`], fetched [`EXPORT_BATCH`] rows per statement.
pub fn export(
    db: &Database,
    filter: &Where,
    format: Format,
    max_rows: i64,
    mut after: i64,
) -> ApiResult<Export> {
    let mut out: Vec<u8> = Vec::new();
    if format == Format::Csv {
        out.extend_from_slice(CSV_HEADER.as_bytes());
    }
    let mut written: i64 = 0;
    let mut more = false;
    'batches: loop {
        let mut batch_where = filter.clone();
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
    Ok(Export {
        body: out,
        next_after_seq: more.then_some(after),
    })
}

/// The format of an export.
#[derive(Clone, Copy, PartialEq)]
pub enum Format {
    Ndjson,
    Csv,
}

/// The header line of a CSV export.
pub const CSV_HEADER: &str =
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

#[derive(Serialize)]
pub struct Stats {
    pub since: Timestamp,
    pub until: Timestamp,
    pub total: i64,
    pub by_action: BTreeMap<String, i64>,
    pub by_status_class: BTreeMap<String, i64>,
    pub by_resource_type: BTreeMap<String, i64>,
    pub failed_logins_last_hour: i64,
}

/// Counts over `since..until` in `scope` (module doc of the handler), and the failed logins of
/// the hour before `now`.
pub fn stats(
    db: &Database,
    scope: &OrgScope,
    since: i64,
    until: i64,
    now: i64,
) -> ApiResult<Stats> {
    let mut w = Where::default();
    w.scope(scope);
    w.add(
        "ts >= ? AND ts < ?",
        [Value::from(since), Value::from(until)],
    );
    let (clause, clause_params) = w.clause();
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
    logins.scope(scope);
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
    Ok(Stats {
        since: Timestamp::from_ms(since),
        until: Timestamp::from_ms(until),
        total,
        by_action,
        by_status_class,
        by_resource_type,
        failed_logins_last_hour,
    })
}

#[derive(Serialize)]
pub struct RetentionReport {
    pub older_than_days: i64,
    pub cutoff: Timestamp,
    pub deleted: u64,
    /// The first remaining row, where the checkpoint was recorded (`null` when nothing was deleted).
    pub checkpoint_seq: Option<i64>,
    /// The newest row was older than the cutoff and kept as the chain's tail.
    pub kept_tail: bool,
}

/// Deletes the events older than `cutoff` (inside the caller's transaction) through the delete
/// gate, recording a checkpoint at the first remaining row so the rest of the chain still
/// verifies; the chain's tail is never deleted. `key` is the chain key ([`chain::UNKEYED`] when
/// none is set); every row is sealed first.
pub fn retention(
    db: &Database,
    key: &[u8],
    days: i64,
    cutoff: i64,
    now: i64,
) -> ApiResult<RetentionReport> {
    // Under the lock: every row retention may delete or anchor on is sealed.
    chain::seal_all(db, key)?;
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
        key,
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
}
