//! Quotas (SPEC-wave2 §1.4): the caller's limits and usage, and the admin's per-user overrides
//! and org defaults. Effective value = user row → org defaults row → built-in.

use shared::auth::Role;
use shared::sessions::admission::{limit_rows, usage};
use shared::sessions::quota::{self, LimitRow, Limits, Usage};
use shared::store::{Database, Value};
use shared::{Access, ApiError, ApiResult, Cx, Response, Route};

const ADMIN: Access = Access::AnyRole(&[Role::Admin]);

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/api/v1/quotas/me", Access::User, me),
        Route::get("/api/v1/quotas/defaults", ADMIN, get_defaults),
        Route::put("/api/v1/quotas/defaults", ADMIN, put_defaults),
        Route::get("/api/v1/quotas/users/{id}", ADMIN, get_user),
        Route::put("/api/v1/quotas/users/{id}", ADMIN, put_user),
        Route::delete("/api/v1/quotas/users/{id}", ADMIN, delete_user),
    ]
}

/// `GET /api/v1/quotas/me`: the seed's shape (`limits.current`, `limits.available`).
pub async fn me(cx: Cx) -> ApiResult<Response> {
    let user = cx.user()?;
    let db = cx.db()?;
    let (user_row, org_row) = limit_rows(db, &user.org_id, &user.user_id)?;
    let limits = Limits::effective(&user_row, &org_row);
    Response::ok_json(&quota::me_view(&limits, &usage(db, &user.user_id)?))
}

/// A user of the caller's org, or 404.
fn require_user(db: &Database, org_id: &str, user_id: &str) -> ApiResult<()> {
    let rows = db.execute(
        "SELECT EXISTS (SELECT 1 FROM users WHERE id = ? AND org_id = ?) AS ok",
        &[Value::from(user_id), Value::from(org_id)],
    )?;
    if rows.first().map(|r| r.i64("ok")).transpose()?.unwrap_or(0) == 0 {
        return Err(ApiError::not_found("no such user"));
    }
    Ok(())
}

fn user_view(db: &Database, org_id: &str, user_id: &str) -> ApiResult<Response> {
    let (user_row, org_row) = limit_rows(db, org_id, user_id)?;
    let mut view = quota::me_view(
        &Limits::effective(&user_row, &org_row),
        &usage(db, user_id)?,
    );
    if let Some(object) = view.as_object_mut() {
        object.insert("user_id".to_owned(), serde_json::json!(user_id));
        object.insert("overrides".to_owned(), quota::overrides_view(&user_row));
    }
    Response::ok_json(&view)
}

/// `GET /api/v1/quotas/users/{id}`: the user's effective limits and usage, plus the keys set on
/// its own row (`overrides`).
pub async fn get_user(cx: Cx) -> ApiResult<Response> {
    let id: String = cx.param("id")?;
    let org = cx.tenant()?.org_id().to_owned();
    let db = cx.db()?;
    require_user(db, &org, &id)?;
    user_view(db, &org, &id)
}

/// Writes a `quota_limits` row (one upsert).
fn store(
    db: &Database,
    org_id: &str,
    user_id: &str,
    row: &LimitRow,
    by: &str,
    now: i64,
) -> ApiResult<()> {
    db.execute(
        &format!(
            "INSERT INTO quota_limits (org_id, user_id, {cols}, updated_at, updated_by)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (org_id, user_id) DO UPDATE SET
                max_sessions = excluded.max_sessions,
                max_cpu_millicores = excluded.max_cpu_millicores,
                max_memory_bytes = excluded.max_memory_bytes,
                max_gpu = excluded.max_gpu,
                max_storage_bytes = excluded.max_storage_bytes,
                max_cpu_per_session = excluded.max_cpu_per_session,
                max_memory_per_session = excluded.max_memory_per_session,
                max_gpu_per_session = excluded.max_gpu_per_session,
                updated_at = excluded.updated_at, updated_by = excluded.updated_by",
            cols = LimitRow::COLUMNS
        ),
        &[
            Value::from(org_id),
            Value::from(user_id),
            Value::from(row.max_sessions),
            Value::from(row.max_cpu_millicores),
            Value::from(row.max_memory_bytes),
            Value::from(row.max_gpu),
            Value::from(row.max_storage_bytes),
            Value::from(row.max_cpu_per_session),
            Value::from(row.max_memory_per_session),
            Value::from(row.max_gpu_per_session),
            Value::from(now),
            Value::from(by),
        ],
    )?;
    Ok(())
}

/// `PUT /api/v1/quotas/users/{id}`: any subset of the limit keys; `null` clears one (inherit).
/// A per-session limit above its total is a 400.
pub async fn put_user(cx: Cx) -> ApiResult<Response> {
    let id: String = cx.param("id")?;
    let body: serde_json::Value = cx.json()?;
    let patch = quota::parse_patch(&body, true)?;
    let user = cx.user()?;
    let db = cx.db()?;
    require_user(db, &user.org_id, &id)?;
    // Read-modify-write of the row under the write lock (two admins cannot lose an update).
    db.lock_unit()?;
    let (user_row, org_row) = limit_rows(db, &user.org_id, &id)?;
    let updated = user_row.apply(&patch);
    quota::check_consistent(&Limits::effective(&updated, &org_row))?;
    store(db, &user.org_id, &id, &updated, &user.user_id, cx.now_ms())?;
    user_view(db, &user.org_id, &id)
}

/// `DELETE /api/v1/quotas/users/{id}` → 204: the user inherits the org defaults again.
pub async fn delete_user(cx: Cx) -> ApiResult<Response> {
    let id: String = cx.param("id")?;
    let org = cx.tenant()?.org_id().to_owned();
    let db = cx.db()?;
    require_user(db, &org, &id)?;
    db.execute(
        "DELETE FROM quota_limits WHERE org_id = ? AND user_id = ?",
        &[Value::from(org.as_str()), Value::from(id.as_str())],
    )?;
    Ok(Response::no_content())
}

fn defaults_view(org_row: &LimitRow) -> ApiResult<Response> {
    let limits = Limits::effective(&LimitRow::default(), org_row);
    let mut view = quota::me_view(&limits, &Usage::default());
    if let Some(limits) = view.get_mut("limits").and_then(|l| l.as_object_mut()) {
        limits.remove("current");
        limits.remove("available");
    }
    if let Some(object) = view.as_object_mut() {
        object.insert("overrides".to_owned(), quota::overrides_view(org_row));
    }
    Response::ok_json(&view)
}

/// `GET /api/v1/quotas/defaults`: the org's default limits (`limits`) and the keys its defaults
/// row sets (`overrides`; the rest are built-in).
pub async fn get_defaults(cx: Cx) -> ApiResult<Response> {
    let org = cx.tenant()?.org_id().to_owned();
    let (_, org_row) = limit_rows(cx.db()?, &org, "")?;
    defaults_view(&org_row)
}

/// `PUT /api/v1/quotas/defaults`: sets any subset of the keys for the org (no `null`).
pub async fn put_defaults(cx: Cx) -> ApiResult<Response> {
    let body: serde_json::Value = cx.json()?;
    let patch = quota::parse_patch(&body, false)?;
    let user = cx.user()?;
    let db = cx.db()?;
    db.lock_unit()?;
    let (_, org_row) = limit_rows(db, &user.org_id, "")?;
    let updated = org_row.apply(&patch);
    quota::check_consistent(&Limits::effective(&LimitRow::default(), &updated))?;
    store(db, &user.org_id, "", &updated, &user.user_id, cx.now_ms())?;
    defaults_view(&updated)
}
