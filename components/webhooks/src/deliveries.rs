//! The webhook delivery log (SPEC-wave2 §3.5): listed, shown and replayed by the admins who own
//! the deliveries: a repository's own GitHub route → its org's admins; deployment-wide secrets
//! (`org_id` NULL) → the platform admin. Another org's delivery answers 404.

use serde_json::{json, Value};
use shared::auth::Principal;
use shared::pagination::{desc, Page, PageRequest, Paged};
use shared::store::{Database, Row, Value as Sql};
use shared::time::Timestamp;
use shared::{ApiError, ApiResult};

use crate::sync::github::base64;

const COLUMNS: &str = "id, org_id, source, delivery_id, event, status, http_status, error,
    repository_ids, attempts, received_at, processed_at, body_truncated";

/// The SQL condition (and its parameters) for the deliveries `who` may see.
fn visible(who: &Principal) -> (&'static str, Vec<Sql>) {
    (
        "(org_id = ? OR (? = 1 AND org_id IS NULL))",
        vec![
            Sql::from(who.org_id.as_str()),
            Sql::from(i64::from(who.platform_admin)),
        ],
    )
}

fn time(ms: Option<i64>) -> Value {
    ms.map_or(Value::Null, |ms| {
        Value::from(Timestamp::from_ms(ms).to_rfc3339())
    })
}

/// A delivery's list item.
fn item(row: &Row<'_>) -> ApiResult<Value> {
    let ids: Value = serde_json::from_str(row.str("repository_ids")?).unwrap_or_else(|_| json!([]));
    Ok(json!({
        "id": row.str("id")?,
        "org_id": row.opt_str("org_id")?,
        "source": row.str("source")?,
        "delivery_id": row.str("delivery_id")?,
        "event": row.str("event")?,
        "status": row.str("status")?,
        "http_status": row.i64("http_status")?,
        "error": row.opt_str("error")?,
        "repository_ids": ids,
        "attempts": row.i64("attempts")?,
        "received_at": time(Some(row.i64("received_at")?)),
        "processed_at": time(row.opt_i64("processed_at")?),
    }))
}

/// `source`, `status` and `event` filters; newest first.
pub fn list(
    db: &Database,
    who: &Principal,
    filters: &[(&'static str, Option<String>)],
    page: &PageRequest,
) -> ApiResult<Page<Value>> {
    let (cond, params) = visible(who);
    let mut q = Paged::new(format!("SELECT {COLUMNS} FROM webhook_deliveries"));
    q.and_with(cond, params);
    for (column, value) in filters {
        if let Some(value) = value {
            let v = q.bind(value.as_str());
            q.and(format!("{column} = {v}"));
        }
    }
    let page = q.fetch(
        db,
        page,
        &[desc("received_at"), desc("id")],
        |row| {
            let key = (row.i64("received_at")?, row.str("id")?.to_owned());
            Ok::<_, ApiError>((item(row)?, key))
        },
        |(_, key)| key.clone(),
    )?;
    Ok(Page {
        items: page.items.into_iter().map(|(item, _)| item).collect(),
        next_cursor: page.next_cursor,
        total: page.total,
    })
}

/// A stored delivery, as its owner sees it.
pub struct Stored {
    pub view: Value,
    pub source: String,
    pub event: String,
    pub truncated: bool,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// One delivery visible to `who` (404 otherwise): the item + `headers`, `body` (UTF-8 text, or
/// base64 with `body_encoding`) and `body_truncated`.
pub fn find(db: &Database, who: &Principal, id: &str) -> ApiResult<Stored> {
    let (cond, mut params) = visible(who);
    params.insert(0, Sql::from(id));
    let rows = db.execute(
        &format!("SELECT {COLUMNS}, headers, body FROM webhook_deliveries WHERE id = ? AND {cond}"),
        &params,
    )?;
    let row = rows
        .first()
        .ok_or_else(|| ApiError::not_found("no such delivery"))?;
    let mut view = item(&row)?;
    let headers: Value = serde_json::from_str(row.str("headers")?).unwrap_or_else(|_| json!({}));
    let content_type = headers
        .get("content-type")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let body = row.blob("body")?.to_vec();
    let truncated = row.i64("body_truncated")? != 0;
    if let Value::Object(map) = &mut view {
        match std::str::from_utf8(&body) {
            Ok(text) => map.insert("body".into(), Value::from(text)),
            Err(_) => {
                map.insert("body_encoding".into(), Value::from("base64"));
                map.insert("body".into(), Value::from(base64(&body)))
            }
        };
        map.insert("headers".into(), headers);
        map.insert("body_truncated".into(), Value::from(truncated));
    }
    Ok(Stored {
        source: row.str("source")?.to_owned(),
        event: row.str("event")?.to_owned(),
        view,
        truncated,
        content_type,
        body,
    })
}

/// Retention: deletes deliveries older than `webhook_delivery_retention_days` (run by the drain,
/// `POST /catalog/sync/pending`, which a cron calls every minute).
pub fn purge(cx: &shared::Cx) -> ApiResult<()> {
    let days = cx
        .services
        .settings()
        .int("webhook_delivery_retention_days")?;
    let before = cx.now_ms() - days.saturating_mul(86_400_000);
    let db = cx.db()?;
    // Its own autocommit statement: the drain's syncs step out of the request's unit of work,
    // which must not be open (and hold the write lock) before them.
    let _outside = db.outside_unit()?;
    db.execute(
        "DELETE FROM webhook_deliveries WHERE received_at < ?1",
        &[Sql::from(before)],
    )?;
    Ok(())
}
