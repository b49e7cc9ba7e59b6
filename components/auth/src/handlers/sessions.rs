//! The caller's own login sessions: list and revoke.

use serde::Serialize;
use shared::pagination::Page;
use shared::store::Value;
use shared::time::Timestamp;
use shared::{ApiError, ApiResult, Cx, Response};

#[derive(Serialize)]
struct SessionView {
    id: String,
    created_at: Timestamp,
    last_seen_at: Timestamp,
    created_ip: Option<String>,
    user_agent: Option<String>,
    cookie: bool,
    current: bool,
}

/// `GET /api/v1/auth/sessions`: live sessions, newest first (at most `max_login_sessions`).
pub async fn list(cx: Cx) -> ApiResult<Response> {
    let user = cx.user()?;
    let now = cx.now_ms();
    let idle_ms = cx.services.settings().idle_timeout_seconds()? * 1000;
    let rows = cx.db()?.execute(
        "SELECT id, created_at, last_seen_at, created_ip, user_agent, cookie FROM login_sessions
          WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? AND last_seen_at > ?
          ORDER BY created_at DESC LIMIT 200",
        &[
            Value::from(user.user_id.as_str()),
            Value::from(now),
            Value::from(now - idle_ms),
        ],
    )?;
    let mut items = Vec::with_capacity(rows.len());
    for row in rows.iter() {
        let id = row.str("id")?.to_owned();
        items.push(SessionView {
            current: user.session_id() == Some(id.as_str()),
            id,
            created_at: Timestamp::from_ms(row.i64("created_at")?),
            last_seen_at: Timestamp::from_ms(row.i64("last_seen_at")?),
            created_ip: row.opt_str("created_ip")?.map(str::to_owned),
            user_agent: row.opt_str("user_agent")?.map(str::to_owned),
            cookie: row.i64("cookie")? != 0,
        });
    }
    Response::ok_json(&Page {
        items,
        next_cursor: None,
        total: None,
    })
}

/// `DELETE /api/v1/auth/sessions/{id}`: revokes one of the caller's sessions; 404 for any other.
pub async fn revoke(cx: Cx) -> ApiResult<Response> {
    let user = cx.user()?;
    let id: String = cx.param("id")?;
    let db = cx.db()?;
    db.execute(
        "UPDATE login_sessions SET revoked_at = ?, revoke_reason = 'revoked_by_user'
          WHERE id = ? AND user_id = ? AND revoked_at IS NULL",
        &[
            Value::from(cx.now_ms()),
            Value::from(id.as_str()),
            Value::from(user.user_id.as_str()),
        ],
    )?;
    if db.changes()? == 0 {
        return Err(ApiError::not_found("no such login session"));
    }
    Ok(Response::no_content())
}
