//! Catalog repositories (SPEC-wave2 §2.3, Decision 3), operators and admins only, scoped to the
//! caller's org (another org's repository answers 404).

use shared::auth::Role;
use shared::header::LOCATION;
use shared::ids::uuid_v4;
use shared::repositories::allowed_hosts;
use shared::{Access, ApiError, ApiResult, Cx, HeaderValue, Response, Route, StatusCode};

use crate::repositories::{self, CreateRepository};

const OPERATOR: Access = Access::AnyRole(&[Role::Admin, Role::Operator]);

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/api/v1/catalog/repositories", OPERATOR, list),
        Route::post("/api/v1/catalog/repositories", OPERATOR, create),
        Route::get("/api/v1/catalog/repositories/{id}", OPERATOR, get),
        Route::delete("/api/v1/catalog/repositories/{id}", OPERATOR, delete),
        Route::post(
            "/api/v1/catalog/repositories/{id}/webhook-secret",
            OPERATOR,
            rotate_webhook_secret,
        ),
    ]
}

/// `GET /api/v1/catalog/repositories`: the org's repositories by name, paginated.
pub async fn list(cx: Cx) -> ApiResult<Response> {
    let page = cx.page()?;
    Response::ok_json(&repositories::list(cx.db()?, &cx.tenant()?, &page)?)
}

/// `GET /api/v1/catalog/repositories/{id}`.
pub async fn get(cx: Cx) -> ApiResult<Response> {
    let id: String = cx.param("id")?;
    Response::ok_json(&repositories::find(cx.db()?, &cx.tenant()?, &id)?)
}

/// `POST /api/v1/catalog/repositories` `{name, url, branch?, auth_type?, auth_secret?}`: 201 +
/// `Location`, the repository (`pending`, sync requested) with its webhook secret shown once.
pub async fn create(cx: Cx) -> ApiResult<Response> {
    let input = CreateRepository::parse(cx.json()?)?.check(&allowed_hosts(&cx.services)?)?;
    let id = uuid_v4(cx.services.random.as_ref())?;
    let user = cx.user()?;
    let created = repositories::create(
        cx.db()?,
        &cx.services,
        &user.tenant(),
        &id,
        &input,
        &user.user_id,
    )?;
    let location = HeaderValue::from_str(&format!("/api/v1/catalog/repositories/{id}"))
        .map_err(|e| ApiError::internal(format!("location header: {e}")))?;
    Ok(Response::json(StatusCode::CREATED, &created)?.with_header(LOCATION, location))
}

/// `DELETE /api/v1/catalog/repositories/{id}`: 204 (its catalog templates go with it; installed
/// templates stay), 404 when absent.
pub async fn delete(cx: Cx) -> ApiResult<Response> {
    let id: String = cx.param("id")?;
    repositories::delete(cx.db()?, &cx.tenant()?, &id, cx.now_ms())?;
    Ok(Response::no_content())
}

/// `POST /api/v1/catalog/repositories/{id}/webhook-secret`: a new GitHub webhook secret, shown
/// once; the previous one keeps verifying for 24 h.
pub async fn rotate_webhook_secret(cx: Cx) -> ApiResult<Response> {
    let id: String = cx.param("id")?;
    let rotated = repositories::rotate_webhook_secret(cx.db()?, &cx.services, &cx.tenant()?, &id)?;
    Response::ok_json(&rotated)
}
