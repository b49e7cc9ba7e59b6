//! Agent administration (seed 000 `AgentAuth`): admins create agents and receive their API key
//! once (64 hex characters, stored as SHA-256 — see `shared::auth::agents` for why), list them,
//! rotate the key (the old one stops at once) and delete them.

use serde::{Deserialize, Serialize};
use shared::agents::{check_label, AgentView, VIEW_COLUMNS};
use shared::auth::Role;
use shared::ids::uuid_v4;
use shared::pagination::{asc, Paged};
use shared::secrets::new_agent_key;
use shared::store::Value;
use shared::{Access, ApiError, ApiResult, Cx, Response, Route, StatusCode};

const ADMIN: &[Role] = &[Role::Admin];

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/api/v1/admin/agents", Access::AnyRole(ADMIN), list),
        Route::post("/api/v1/admin/agents", Access::AnyRole(ADMIN), create),
        Route::delete("/api/v1/admin/agents/{id}", Access::AnyRole(ADMIN), delete),
        Route::post(
            "/api/v1/admin/agents/{id}/rotate-key",
            Access::AnyRole(ADMIN),
            rotate_key,
        ),
    ]
}

/// `GET /api/v1/admin/agents`: the org's agents by name, cursor-paginated.
pub async fn list(cx: Cx) -> ApiResult<Response> {
    let tenant = cx.tenant()?;
    let mut q = Paged::new(format!("SELECT {VIEW_COLUMNS} FROM agents"));
    let org = q.bind(tenant.org_id());
    q.and(format!("org_id = {org}"));
    let page = q.fetch(
        cx.db()?,
        &cx.page()?,
        &[asc("name"), asc("id")],
        AgentView::from_row,
        |a| (a.name.clone(), a.id.clone()),
    )?;
    Response::ok_json(&page)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateAgent {
    name: String,
    platform: String,
    #[serde(default)]
    region: Option<String>,
}

#[derive(Serialize)]
struct WithKey<'a> {
    #[serde(flatten)]
    agent: &'a AgentView,
    /// Shown this once.
    api_key: &'a str,
}

fn bad(message: String) -> ApiError {
    ApiError::bad_request("invalid_field", message)
}

/// `POST /api/v1/admin/agents`: 201 with the agent and its key (shown once); 409 on a name clash.
pub async fn create(cx: Cx) -> ApiResult<Response> {
    let input: CreateAgent = cx.json()?;
    let name = check_label(&input.name, "name", false).map_err(bad)?;
    let platform = check_label(&input.platform, "platform", false).map_err(bad)?;
    let region = check_label(input.region.as_deref().unwrap_or(""), "region", true).map_err(bad)?;
    let tenant = cx.tenant()?;
    let random = cx.services.random.as_ref();
    let id = uuid_v4(random)?;
    let (key, hash) = new_agent_key(random)?;
    let rows = cx
        .db()?
        .execute(
            &format!(
                "INSERT INTO agents (id, org_id, name, platform, region, api_key_hash, created_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING {VIEW_COLUMNS}"
            ),
            &[
                Value::from(id.as_str()),
                Value::from(tenant.org_id()),
                Value::from(name.as_str()),
                Value::from(platform.as_str()),
                Value::from(region.as_str()),
                Value::from(hash.as_str()),
                Value::from(cx.now_ms()),
            ],
        )
        .map_err(|e| {
            ApiError::from(e).conflict_on_unique("agent_exists", "an agent with this name exists")
        })?;
    let row = rows
        .first()
        .ok_or_else(|| ApiError::internal("insert returned no row"))?;
    let agent = AgentView::from_row(&row)?;
    Response::json(
        StatusCode::CREATED,
        &WithKey {
            agent: &agent,
            api_key: key.expose(),
        },
    )
}

/// `POST /api/v1/admin/agents/{id}/rotate-key`: a new key, shown once; the old one stops working
/// on the very next request.
pub async fn rotate_key(cx: Cx) -> ApiResult<Response> {
    let id: String = cx.param("id")?;
    let tenant = cx.tenant()?;
    let (key, hash) = new_agent_key(cx.services.random.as_ref())?;
    let rows = cx.db()?.execute(
        &format!(
            "UPDATE agents SET api_key_hash = ?, api_key_last_used_at = NULL
              WHERE id = ? AND org_id = ? RETURNING {VIEW_COLUMNS}"
        ),
        &[
            Value::from(hash.as_str()),
            Value::from(id.as_str()),
            Value::from(tenant.org_id()),
        ],
    )?;
    let row = rows
        .first()
        .ok_or_else(|| ApiError::not_found("no such agent"))?;
    let agent = AgentView::from_row(&row)?;
    Response::ok_json(&WithKey {
        agent: &agent,
        api_key: key.expose(),
    })
}

/// `DELETE /api/v1/admin/agents/{id}`: removes the agent; its key stops working at once, its
/// sessions end and its unfinished commands are cancelled (the command history stays).
pub async fn delete(cx: Cx) -> ApiResult<Response> {
    let id: String = cx.param("id")?;
    let tenant = cx.tenant()?;
    let db = cx.db()?;
    let rows = db.execute(
        "DELETE FROM agents WHERE id = ? AND org_id = ? RETURNING id",
        &[Value::from(id.as_str()), Value::from(tenant.org_id())],
    )?;
    if rows.is_empty() {
        return Err(ApiError::not_found("no such agent"));
    }
    // Its sessions cannot go on: they end (`agent_unavailable`) and its unfinished commands are
    // cancelled, in this unit of work (the shared sessions domain function).
    shared::sessions::lifecycle::fail_all_for_agent(db, cx.now_ms(), &id)?;
    Ok(Response::no_content())
}
