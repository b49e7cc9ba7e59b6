//! Teams and their members, scoped to the caller's org (a team of another org answers 404).
//!
//! Who may do what:
//! - any user of the org lists and reads the org's teams (names and descriptions are not secret
//!   inside an org), its own teams (`my-teams`) and its own permissions on a team;
//! - org admins create teams;
//! - org admins and team admins (members whose team role grants `team.manage`) rename, describe
//!   and delete a team and add, re-role and remove its members;
//! - team members (any role) and org admins list a team's members;
//! - any member may leave a team (remove itself).
//!
//! Checks run in the order 404 (team not in the org) → 403 (not allowed) → 400 (bad body).

use serde::Deserialize;
use shared::auth::Role;
use shared::ids::uuid_v4;
use shared::{Access, ApiResult, Cx, Response, Route, StatusCode};

use crate::teams::{self, TeamPatch};

const ADMIN: Access = Access::AnyRole(&[Role::Admin]);

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/api/v1/teams", Access::User, list),
        Route::post("/api/v1/teams", ADMIN, create),
        Route::get("/api/v1/teams/my-teams", Access::User, my_teams),
        Route::get("/api/v1/teams/{id}", Access::User, get),
        Route::patch("/api/v1/teams/{id}", Access::User, update),
        Route::delete("/api/v1/teams/{id}", Access::User, delete),
        Route::get("/api/v1/teams/{id}/members", Access::User, members),
        Route::post("/api/v1/teams/{id}/members", Access::User, add_member),
        Route::patch(
            "/api/v1/teams/{id}/members/{user_id}",
            Access::User,
            update_member,
        ),
        Route::delete(
            "/api/v1/teams/{id}/members/{user_id}",
            Access::User,
            remove_member,
        ),
        Route::get(
            "/api/v1/teams/{id}/my-permissions",
            Access::User,
            my_permissions,
        ),
    ]
}

/// `GET /api/v1/teams`: the org's teams by name, paginated.
pub async fn list(cx: Cx) -> ApiResult<Response> {
    let page = cx.page()?;
    Response::ok_json(&teams::list(cx.db()?, &cx.tenant()?, &page)?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTeam {
    name: String,
    #[serde(default)]
    description: Option<String>,
}

/// `POST /api/v1/teams` (org admin): 201 with the team; 409 `team_exists` on a name clash.
pub async fn create(cx: Cx) -> ApiResult<Response> {
    let input: CreateTeam = cx.json()?;
    let name = teams::check_name(&input.name)?;
    let description = teams::check_description(input.description.as_deref().unwrap_or(""))?;
    let id = uuid_v4(cx.services.random.as_ref())?;
    let team = teams::create(
        cx.db()?,
        &cx.tenant()?,
        &id,
        &name,
        &description,
        cx.now_ms(),
    )?;
    Response::json(StatusCode::CREATED, &team)
}

/// `GET /api/v1/teams/my-teams`: the caller's teams with its team role, paginated.
pub async fn my_teams(cx: Cx) -> ApiResult<Response> {
    let page = cx.page()?;
    Response::ok_json(&teams::list_mine(cx.db()?, cx.user()?, &page)?)
}

/// `GET /api/v1/teams/{id}`.
pub async fn get(cx: Cx) -> ApiResult<Response> {
    let id: String = cx.param("id")?;
    Response::ok_json(&teams::find(cx.db()?, &cx.tenant()?, &id)?)
}

/// `PATCH /api/v1/teams/{id}` `{name?, description?}` (org admin or team admin).
pub async fn update(cx: Cx) -> ApiResult<Response> {
    let id: String = cx.param("id")?;
    let (db, tenant, user) = (cx.db()?, cx.tenant()?, cx.user()?);
    let team = teams::find(db, &tenant, &id)?;
    teams::require_manage(db, user, &id)?;
    let patch: TeamPatch = cx.json()?;
    let name = patch.name.as_deref().map(teams::check_name).transpose()?;
    let description = patch
        .description
        .as_deref()
        .map(teams::check_description)
        .transpose()?;
    if name.is_none() && description.is_none() {
        return Response::ok_json(&team);
    }
    let team = teams::update(db, &tenant, &id, name.as_deref(), description.as_deref())?;
    Response::ok_json(&team)
}

/// `DELETE /api/v1/teams/{id}` (org admin or team admin): 204; memberships go with it.
pub async fn delete(cx: Cx) -> ApiResult<Response> {
    let id: String = cx.param("id")?;
    let (db, tenant, user) = (cx.db()?, cx.tenant()?, cx.user()?);
    teams::find(db, &tenant, &id)?;
    teams::require_manage(db, user, &id)?;
    teams::delete(db, &tenant, &id)?;
    Ok(Response::no_content())
}

/// `GET /api/v1/teams/{id}/members` (team member or org admin): by username, paginated.
pub async fn members(cx: Cx) -> ApiResult<Response> {
    let id: String = cx.param("id")?;
    let page = cx.page()?;
    let (db, tenant, user) = (cx.db()?, cx.tenant()?, cx.user()?);
    teams::find(db, &tenant, &id)?;
    teams::require_member_or_admin(db, user, &id)?;
    Response::ok_json(&teams::members(db, &tenant, &id, &page)?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddMember {
    user_id: String,
    role: String,
}

/// `POST /api/v1/teams/{id}/members` `{user_id, role}` (org admin or team admin): 201 with the
/// member; 404 when the user is not in the org; 409 `already_member`.
pub async fn add_member(cx: Cx) -> ApiResult<Response> {
    let id: String = cx.param("id")?;
    let (db, tenant, user) = (cx.db()?, cx.tenant()?, cx.user()?);
    teams::find(db, &tenant, &id)?;
    teams::require_manage(db, user, &id)?;
    let input: AddMember = cx.json()?;
    let role = teams::check_role(db, &input.role)?;
    let member = teams::add_member(db, &tenant, &id, &input.user_id, &role, cx.now_ms())?;
    Response::json(StatusCode::CREATED, &member)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetRole {
    role: String,
}

/// `PATCH /api/v1/teams/{id}/members/{user_id}` `{role}` (org admin or team admin).
pub async fn update_member(cx: Cx) -> ApiResult<Response> {
    let id: String = cx.param("id")?;
    let member_id: String = cx.param("user_id")?;
    let (db, tenant, user) = (cx.db()?, cx.tenant()?, cx.user()?);
    teams::find(db, &tenant, &id)?;
    teams::require_manage(db, user, &id)?;
    let input: SetRole = cx.json()?;
    let role = teams::check_role(db, &input.role)?;
    Response::ok_json(&teams::set_member_role(
        db, &tenant, &id, &member_id, &role,
    )?)
}

/// `DELETE /api/v1/teams/{id}/members/{user_id}` (org admin or team admin; any member may
/// remove itself): 204.
pub async fn remove_member(cx: Cx) -> ApiResult<Response> {
    let id: String = cx.param("id")?;
    let member_id: String = cx.param("user_id")?;
    let (db, tenant, user) = (cx.db()?, cx.tenant()?, cx.user()?);
    teams::find(db, &tenant, &id)?;
    if member_id != user.user_id {
        teams::require_manage(db, user, &id)?;
    }
    teams::remove_member(db, &tenant, &id, &member_id)?;
    Ok(Response::no_content())
}

/// `GET /api/v1/teams/{id}/my-permissions`: `{team_id, role, permissions}`. A team of the org the
/// caller is not in answers 200 with `role: null` and no permissions (an org admin holds every
/// permission); a team of another org is 404.
pub async fn my_permissions(cx: Cx) -> ApiResult<Response> {
    let id: String = cx.param("id")?;
    Response::ok_json(&teams::my_permissions(cx.db()?, cx.user()?, &id)?)
}
