//! Templates and favorites, scoped to the caller's org (a template of another org answers 404).
//!
//! Who may do what:
//! - any user of the org lists and reads the org's enabled templates and keeps its own favorites;
//! - operators and admins also see disabled templates, and create, patch and delete templates.
//!
//! Checks run in the order 404 (template not in the org) → 400 (bad body).

use shared::auth::Role;
use shared::header::LOCATION;
use shared::ids::uuid_v4;
use shared::{Access, ApiError, ApiResult, Cx, HeaderValue, Response, Route, StatusCode};

use crate::templates::{self, CreateTemplate, ListQuery, TemplatePatch, Viewer};

const OPERATOR: Access = Access::AnyRole(&[Role::Admin, Role::Operator]);

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/api/v1/templates", Access::User, list),
        Route::post("/api/v1/templates", OPERATOR, create),
        Route::get("/api/v1/templates/{id}", Access::User, get),
        Route::patch("/api/v1/templates/{id}", OPERATOR, update),
        Route::delete("/api/v1/templates/{id}", OPERATOR, delete),
        Route::get("/api/v1/templates/{id}/favorite", Access::User, is_favorite),
        Route::get("/api/v1/preferences/favorites", Access::User, favorites),
        Route::post(
            "/api/v1/preferences/favorites/{template_id}",
            Access::User,
            add_favorite,
        ),
        Route::delete(
            "/api/v1/preferences/favorites/{template_id}",
            Access::User,
            remove_favorite,
        ),
    ]
}

fn viewer(cx: &Cx) -> ApiResult<Viewer> {
    Ok(Viewer::of(cx.user()?))
}

/// `GET /api/v1/templates`: filters `q`/`search`, `category`, `tag` (repeatable, all must
/// match), `app_type`, `enabled` (operators); `sort=name|popular|newest`; paginated.
pub async fn list(cx: Cx) -> ApiResult<Response> {
    let page = cx.page()?;
    let query = ListQuery::parse(&cx.head.query)?;
    Response::ok_json(&templates::list(cx.db()?, &viewer(&cx)?, &query, &page)?)
}

/// `GET /api/v1/templates/{id}` (id or name): the template with its manifest.
pub async fn get(cx: Cx) -> ApiResult<Response> {
    let id: String = cx.param("id")?;
    Response::ok_json(&templates::find(cx.db()?, &viewer(&cx)?, &id)?)
}

/// `POST /api/v1/templates` (operator, admin): 201 + `Location`; 409 `name_taken`.
pub async fn create(cx: Cx) -> ApiResult<Response> {
    let input: CreateTemplate = cx.json()?;
    let enabled = input.enabled.unwrap_or(true);
    let manifest = input.into_manifest()?;
    let id = uuid_v4(cx.services.random.as_ref())?;
    let user = cx.user()?;
    let view = templates::create(
        cx.db()?,
        &Viewer::of(user),
        &id,
        &manifest,
        enabled,
        &user.user_id,
        cx.now_ms(),
    )?;
    let location = HeaderValue::from_str(&format!("/api/v1/templates/{}", view.id))
        .map_err(|e| ApiError::internal(format!("location header: {e}")))?;
    Ok(Response::json(StatusCode::CREATED, &view)?.with_header(LOCATION, location))
}

/// `PATCH /api/v1/templates/{id}` (operator, admin): `display_name, description, category,
/// app_type, icon_url, tags, default_resources, enabled, manifest`; the name never changes.
pub async fn update(cx: Cx) -> ApiResult<Response> {
    let id: String = cx.param("id")?;
    let (db, viewer) = (cx.db()?, viewer(&cx)?);
    let current = templates::find(db, &viewer, &id)?;
    let patch: TemplatePatch = cx.json()?;
    let enabled = patch.enabled;
    let manifest = patch.apply(&current)?;
    if manifest.is_none() && enabled.is_none() {
        return Response::ok_json(&current);
    }
    let view = templates::update(
        db,
        &viewer,
        &current.id,
        manifest.as_ref(),
        enabled,
        cx.now_ms(),
    )?;
    Response::ok_json(&view)
}

/// `DELETE /api/v1/templates/{id}` (operator, admin): 204; its favorites go with it. Sessions
/// already started keep running on the manifest they were sent.
pub async fn delete(cx: Cx) -> ApiResult<Response> {
    let id: String = cx.param("id")?;
    let (db, viewer) = (cx.db()?, viewer(&cx)?);
    let current = templates::find(db, &viewer, &id)?;
    templates::delete(db, &viewer, &current.id)?;
    Ok(Response::no_content())
}

/// `GET /api/v1/templates/{id}/favorite`: `{"template_id","favorited","favorited_at"}`.
pub async fn is_favorite(cx: Cx) -> ApiResult<Response> {
    let id: String = cx.param("id")?;
    let (db, user) = (cx.db()?, cx.user()?);
    let template = templates::find(db, &Viewer::of(user), &id)?;
    Response::ok_json(&templates::favorite_state(db, &user.user_id, &template.id)?)
}

/// `GET /api/v1/preferences/favorites`: the caller's favorites, newest first, paginated.
pub async fn favorites(cx: Cx) -> ApiResult<Response> {
    let page = cx.page()?;
    let (db, user) = (cx.db()?, cx.user()?);
    Response::ok_json(&templates::favorites(
        db,
        &Viewer::of(user),
        &user.user_id,
        &page,
    )?)
}

/// `POST /api/v1/preferences/favorites/{template_id}` (id or name): 200, idempotent; 404 when
/// the template is not in the org.
pub async fn add_favorite(cx: Cx) -> ApiResult<Response> {
    let id: String = cx.param("template_id")?;
    let (db, user) = (cx.db()?, cx.user()?);
    let viewer = Viewer::of(user);
    let template = templates::find(db, &viewer, &id)?;
    let state = templates::add_favorite(db, &viewer, &user.user_id, &template.id, cx.now_ms())?;
    Response::ok_json(&state)
}

/// `DELETE /api/v1/preferences/favorites/{template_id}` (id or name): 204 whether or not it
/// was a favorite (idempotent; StreamSpace's 404 "Template not in favorites" is not copied), and
/// 404 only when the template is not in the org, as on every template route.
pub async fn remove_favorite(cx: Cx) -> ApiResult<Response> {
    let id: String = cx.param("template_id")?;
    let (db, user) = (cx.db()?, cx.user()?);
    let viewer = Viewer::of(user);
    let template = templates::find(db, &viewer, &id)?;
    templates::remove_favorite(db, &viewer, &user.user_id, &template.id)?;
    Ok(Response::no_content())
}
