//! The catalog, scoped to the caller's org: any user browses it; operators and admins install a
//! catalog template into the org's templates.

use serde::Deserialize;
use shared::auth::Role;
use shared::header::LOCATION;
use shared::ids::uuid_v4;
use shared::pagination::PageRequest;
use shared::{Access, ApiError, ApiResult, Cx, HeaderValue, Response, Route, StatusCode};

use crate::catalog::{self, CatalogQuery, Sort};
use crate::templates::Viewer;

const OPERATOR: Access = Access::AnyRole(&[Role::Admin, Role::Operator]);

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/api/v1/catalog/templates", Access::User, list),
        Route::get("/api/v1/catalog/templates/featured", Access::User, featured),
        Route::get("/api/v1/catalog/templates/popular", Access::User, popular),
        Route::get("/api/v1/catalog/templates/{id}", Access::User, get),
        Route::post("/api/v1/catalog/templates/{id}/view", Access::User, view),
        Route::post("/api/v1/catalog/templates/{id}/install", OPERATOR, install),
    ]
}

fn answer(cx: &Cx, query: &CatalogQuery, page: &PageRequest) -> ApiResult<Response> {
    Response::ok_json(&catalog::list(cx.db()?, &cx.tenant()?, query, page)?)
}

/// `GET /api/v1/catalog/templates`: `q`/`search`, `category`, `tag` (repeatable, all must
/// match), `app_type`, `featured=true`, `repository_id`;
/// `sort=popular|rating|recent|installs|views|name`; paginated.
pub async fn list(cx: Cx) -> ApiResult<Response> {
    answer(&cx, &CatalogQuery::parse(&cx.head.query)?, &cx.page()?)
}

/// `GET /api/v1/catalog/templates/featured`: the list with `featured=true`.
pub async fn featured(cx: Cx) -> ApiResult<Response> {
    let mut query = CatalogQuery::parse(&cx.head.query)?;
    query.featured = true;
    answer(&cx, &query, &cx.page()?)
}

/// `GET /api/v1/catalog/templates/popular`: most installed first, 12 by default.
pub async fn popular(cx: Cx) -> ApiResult<Response> {
    let mut query = CatalogQuery::parse(&cx.head.query)?;
    query.sort = Sort::Installs;
    let raw = &cx.head.query;
    let page = if shared::extract::query_value(raw, "limit").is_some() {
        cx.page()?
    } else {
        let with_limit = if raw.is_empty() {
            "limit=12".to_owned()
        } else {
            format!("{raw}&limit=12")
        };
        PageRequest::from_query(&with_limit)?
    };
    answer(&cx, &query, &page)
}

/// `GET /api/v1/catalog/templates/{id}`: the detail, with the manifest (counts no view).
pub async fn get(cx: Cx) -> ApiResult<Response> {
    let id: String = cx.param("id")?;
    Response::ok_json(&catalog::find(cx.db()?, &cx.tenant()?, &id)?)
}

/// `POST /api/v1/catalog/templates/{id}/view` → 204: counts a view.
pub async fn view(cx: Cx) -> ApiResult<Response> {
    let id: String = cx.param("id")?;
    catalog::record_view(cx.db()?, &cx.tenant()?, &id)?;
    Ok(Response::no_content())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct InstallRequest {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
}

/// `POST /api/v1/catalog/templates/{id}/install` (operator, admin), optional body
/// `{"name","enabled"}` → 201 new template / 200 updated to the catalog's manifest; 409
/// `name_taken` (a manual template holds the name); 422 `invalid_manifest`.
pub async fn install(cx: Cx) -> ApiResult<Response> {
    let id: String = cx.param("id")?;
    let user = cx.user()?;
    let viewer = Viewer::of(user);
    let db = cx.db()?;
    // 404 before the body is looked at.
    catalog::find(db, &viewer.tenant, &id)?;
    let input: InstallRequest = if cx.body.is_empty() {
        InstallRequest::default()
    } else {
        cx.json()?
    };
    let new_id = uuid_v4(cx.services.random.as_ref())?;
    // The write lock from the name check to the upsert.
    db.lock_unit()?;
    let installed = catalog::install(
        db,
        &viewer,
        &catalog::Install {
            id: &id,
            name_override: input.name.as_deref(),
            enabled: input.enabled.unwrap_or(true),
            new_template_id: &new_id,
            user_id: &user.user_id,
            now_ms: cx.now_ms(),
        },
    )?;
    if !installed.created {
        return Response::ok_json(&installed.template);
    }
    let location = HeaderValue::from_str(&format!("/api/v1/templates/{}", installed.template.id))
        .map_err(|e| ApiError::internal(format!("location header: {e}")))?;
    Ok(Response::json(StatusCode::CREATED, &installed.template)?.with_header(LOCATION, location))
}
