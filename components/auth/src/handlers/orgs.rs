//! Organizations, managed by the platform admin (the account created by first-user setup).

use serde::{Deserialize, Serialize};
use shared::ids::uuid_v4;
use shared::pagination::{asc, Paged};
use shared::store::{Row, StoreError, Value};
use shared::time::Timestamp;
use shared::{Access, ApiError, ApiResult, Cx, Response, Route, StatusCode};

use crate::handlers::setup::check_org_name;

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/api/v1/orgs", Access::PlatformAdmin, list),
        Route::post("/api/v1/orgs", Access::PlatformAdmin, create),
        Route::get("/api/v1/orgs/{id}", Access::PlatformAdmin, get),
        Route::patch("/api/v1/orgs/{id}", Access::PlatformAdmin, update),
    ]
}

#[derive(Serialize)]
struct OrgView {
    id: String,
    name: String,
    display_name: String,
    created_at: Timestamp,
}

const COLUMNS: &str = "id, name, display_name, created_at";

impl OrgView {
    fn from_row(row: &Row<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.str("id")?.to_owned(),
            name: row.str("name")?.to_owned(),
            display_name: row.str("display_name")?.to_owned(),
            created_at: Timestamp::from_ms(row.i64("created_at")?),
        })
    }
}

/// `GET /api/v1/orgs`: by name, cursor-paginated.
pub async fn list(cx: Cx) -> ApiResult<Response> {
    let page = Paged::new(format!("SELECT {COLUMNS} FROM orgs")).fetch(
        cx.db()?,
        &cx.page()?,
        &[asc("name"), asc("id")],
        OrgView::from_row,
        |o| (o.name.clone(), o.id.clone()),
    )?;
    Response::ok_json(&page)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateOrg {
    name: String,
    #[serde(default)]
    display_name: Option<String>,
}

/// `POST /api/v1/orgs`: 201; 409 when the name is taken.
pub async fn create(cx: Cx) -> ApiResult<Response> {
    let input: CreateOrg = cx.json()?;
    let name = check_org_name(&input.name)?;
    let display_name = check_org_name(input.display_name.as_deref().unwrap_or(&name))?;
    let id = uuid_v4(cx.services.random.as_ref())?;
    let rows = cx
        .db()?
        .execute(
            &format!("INSERT INTO orgs (id, name, display_name, created_at) VALUES (?, ?, ?, ?) RETURNING {COLUMNS}"),
            &[Value::from(id.as_str()), Value::from(name.as_str()), Value::from(display_name.as_str()), Value::from(cx.now_ms())],
        )
        .map_err(|e| ApiError::from(e).conflict_on_unique("org_exists", "an org with this name exists"))?;
    let row = rows
        .first()
        .ok_or_else(|| ApiError::internal("insert returned no row"))?;
    cx.set_target_org(&id);
    Response::json(StatusCode::CREATED, &OrgView::from_row(&row)?)
}

/// `GET /api/v1/orgs/{id}`.
pub async fn get(cx: Cx) -> ApiResult<Response> {
    let id: String = cx.param("id")?;
    let rows = cx.db()?.execute(
        &format!("SELECT {COLUMNS} FROM orgs WHERE id = ?"),
        &[Value::from(id.as_str())],
    )?;
    let row = rows
        .first()
        .ok_or_else(|| ApiError::not_found("no such org"))?;
    cx.set_target_org(&id);
    Response::ok_json(&OrgView::from_row(&row)?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateOrg {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
}

/// `PATCH /api/v1/orgs/{id}`: name and display name.
pub async fn update(cx: Cx) -> ApiResult<Response> {
    let id: String = cx.param("id")?;
    let input: UpdateOrg = cx.json()?;
    let name = input.name.as_deref().map(check_org_name).transpose()?;
    let display_name = input
        .display_name
        .as_deref()
        .map(check_org_name)
        .transpose()?;
    let rows = cx
        .db()?
        .execute(
            &format!(
                "UPDATE orgs SET name = coalesce(?, name), display_name = coalesce(?, display_name)
                  WHERE id = ? RETURNING {COLUMNS}"
            ),
            &[
                Value::from(name),
                Value::from(display_name),
                Value::from(id.as_str()),
            ],
        )
        .map_err(|e| {
            ApiError::from(e).conflict_on_unique("org_exists", "an org with this name exists")
        })?;
    let row = rows
        .first()
        .ok_or_else(|| ApiError::not_found("no such org"))?;
    cx.set_target_org(&id);
    Response::ok_json(&OrgView::from_row(&row)?)
}
