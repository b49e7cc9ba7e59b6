//! User administration (org admins; the platform admin also across orgs). Disabling or deleting a
//! user ends every login session and personal access token it has, in the same transaction, so
//! the very next request with any of them is refused.
//!
//! A platform-admin account is modified only by a platform admin (an admin of the setup org is
//! otherwise one PATCH away from taking it over), and the last active platform admin can never
//! be disabled, demoted or deleted. Setting a password needs a login session (never a token),
//! and setting one's own also needs `current_password`. The platform admin can also reset
//! another user's MFA (`DELETE /users/{id}/mfa`) when a device is lost.

use serde::Deserialize;
use shared::auth::{Role, Tenant};
use shared::ids::uuid_v4;
use shared::license::{self, Resource};
use shared::pagination::{asc, Paged};
use shared::secrets::{check_password_policy, hash_password};
use shared::sessions::lifecycle::{self, Ops, SessionSettings};
use shared::store::{Database, Value};
use shared::validate::{Email, Username};
use shared::{Access, ApiError, ApiResult, Cx, Response, Route, StatusCode};

use crate::accounts::{self, UserView, VIEW_COLUMNS};
use crate::login_sessions;

const ADMIN: &[Role] = &[Role::Admin];

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/api/v1/users", Access::AnyRole(ADMIN), list),
        Route::post("/api/v1/users", Access::AnyRole(ADMIN), create),
        Route::get("/api/v1/users/{id}", Access::AnyRole(ADMIN), get),
        Route::patch("/api/v1/users/{id}", Access::AnyRole(ADMIN), update),
        Route::delete("/api/v1/users/{id}", Access::AnyRole(ADMIN), delete),
        Route::delete("/api/v1/users/{id}/mfa", Access::PlatformAdmin, reset_mfa),
    ]
}

/// The org an admin acts on: their own, or (platform admin only) the one named by `org_id`.
fn target_tenant(cx: &Cx, org_id: Option<&str>) -> ApiResult<Tenant> {
    let user = cx.user()?;
    match org_id {
        None => Ok(user.tenant()),
        Some(id) if id == user.org_id => Ok(user.tenant()),
        Some(id) if user.platform_admin => {
            let rows = cx
                .db()?
                .execute("SELECT id FROM orgs WHERE id = ?", &[Value::from(id)])?;
            if rows.is_empty() {
                return Err(ApiError::not_found("no such org"));
            }
            cx.set_target_org(id);
            Ok(Tenant::of_org(id))
        }
        // An org admin naming another org: that org does not exist for them.
        Some(_) => Err(ApiError::not_found("no such org")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    org_id: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    limit: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    cursor: Option<String>,
}

/// `GET /api/v1/users`: the org's users by username, cursor-paginated.
pub async fn list(cx: Cx) -> ApiResult<Response> {
    let query: ListQuery = cx.query()?;
    let tenant = target_tenant(&cx, query.org_id.as_deref())?;
    let mut q = Paged::new(format!("SELECT {VIEW_COLUMNS} FROM users"));
    let org = q.bind(tenant.org_id());
    q.and(format!("org_id = {org}"));
    let page = q.fetch(
        cx.db()?,
        &cx.page()?,
        &[asc("username"), asc("id")],
        UserView::from_row,
        |u| (u.username.clone(), u.id.clone()),
    )?;
    Response::ok_json(&page)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    username: Username,
    email: Email,
    password: String,
    /// `user` when absent or null.
    #[serde(default)]
    role: Option<Role>,
    #[serde(default)]
    org_id: Option<String>,
}

/// `POST /api/v1/users`: 201 with the user (and `X-License-Warning` at 80 % of the license's user
/// limit); 409 when the username or email is taken; 403 `license_limit_exceeded` when the
/// deployment already has as many active users as its license allows. The limit is checked before
/// the (slow) password hash and again by the insert itself, so concurrent creations cannot exceed
/// it.
pub async fn create(cx: Cx) -> ApiResult<Response> {
    let input: CreateUser = cx.json()?;
    let tenant = target_tenant(&cx, input.org_id.as_deref())?;
    check_password_policy(&input.password, input.username.as_str())
        .map_err(|msg| ApiError::bad_request("weak_password", msg))?;
    let capacity = license::check_capacity(&cx.services, Resource::Users)?;
    let password_hash = hash_password(cx.services.random.as_ref(), &input.password)
        .map_err(|e| ApiError::internal(format!("hash password: {e}")))?;
    let id = uuid_v4(cx.services.random.as_ref())?;
    let now = cx.now_ms();
    let limit = capacity.limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
    let rows = cx
        .db()?
        .execute(
            &format!(
                "INSERT INTO users (id, org_id, username, email, password_hash, role, status, created_at, updated_at)
                 SELECT ?, ?, ?, ?, ?, ?, 'active', ?, ?
                  WHERE ? IS NULL OR (SELECT count(*) FROM users WHERE status = 'active') < ?
                 RETURNING {VIEW_COLUMNS}"
            ),
            &[
                Value::from(id.as_str()),
                Value::from(tenant.org_id()),
                Value::from(input.username.as_str()),
                Value::from(input.email.as_str()),
                Value::from(password_hash.as_str()),
                Value::from(input.role.unwrap_or(Role::User).as_str()),
                Value::from(now),
                Value::from(now),
                Value::from(limit),
                Value::from(limit),
            ],
        )
        .map_err(|e| ApiError::from(e).conflict_on_unique("user_exists", "a user with this username or email exists"))?;
    // No row: another request took the last place since the check.
    let row = rows.first().ok_or_else(|| {
        let limit = capacity.limit.unwrap_or_default();
        license::limit_exceeded(Resource::Users, capacity.tier, limit, limit)
    })?;
    let created = Response::json(StatusCode::CREATED, &UserView::from_row(&row)?)?;
    Ok(capacity.annotate(created))
}

/// The user `id` as the caller may see it: same org, or any org for the platform admin.
fn visible_user(cx: &Cx, id: &str) -> ApiResult<UserView> {
    let user = cx.user()?;
    if user.platform_admin {
        let rows = cx.db()?.execute(
            &format!("SELECT {VIEW_COLUMNS} FROM users WHERE id = ?"),
            &[Value::from(id)],
        )?;
        let row = rows
            .first()
            .ok_or_else(|| ApiError::not_found("no such user"))?;
        let view = UserView::from_row(&row)?;
        cx.set_target_org(&view.org_id);
        return Ok(view);
    }
    accounts::find_in_org(cx.db()?, &user.tenant(), id)
}

/// `GET /api/v1/users/{id}`.
pub async fn get(cx: Cx) -> ApiResult<Response> {
    let id: String = cx.param("id")?;
    Response::ok_json(&visible_user(&cx, &id)?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateUser {
    #[serde(default)]
    email: Option<Email>,
    #[serde(default)]
    role: Option<Role>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    password: Option<String>,
    /// Required with `password` when changing one's own.
    #[serde(default)]
    current_password: Option<String>,
}

/// 403 unless the caller may modify `target`: only a platform admin modifies a platform admin.
fn check_may_modify(caller: &shared::auth::Principal, target: &UserView) -> ApiResult<()> {
    if target.platform_admin && !caller.platform_admin {
        return Err(ApiError::forbidden(
            "platform_admin_protected",
            "only a platform admin may modify a platform-admin account",
        ));
    }
    Ok(())
}

fn last_platform_admin() -> ApiError {
    ApiError::conflict(
        "last_platform_admin",
        "the last platform admin cannot be disabled, demoted or deleted",
    )
}

/// `PATCH /api/v1/users/{id}`: email, role, status (`active`/`disabled`), password. Disabling
/// or a password change ends the user's sessions and tokens (one's own password change keeps the
/// session making it). Admins cannot demote or disable themselves (that could lock the org out).
pub async fn update(cx: Cx) -> ApiResult<Response> {
    let id: String = cx.param("id")?;
    let input: UpdateUser = cx.json()?;
    let caller = cx.user()?;
    let target = visible_user(&cx, &id)?;
    check_may_modify(caller, &target)?;
    let own = target.id == caller.user_id;
    // A password is a credential: only a login session sets one, and one's own only with the
    // current password (a stolen session must not be able to lock its owner out).
    let keep_session = match input.password {
        Some(_) => {
            let session_id = caller.require_login_session()?;
            if own {
                accounts::require_current_password(
                    cx.db()?,
                    &caller.user_id,
                    input.current_password.as_deref(),
                )?;
                Some(session_id.to_owned())
            } else {
                None
            }
        }
        None if input.current_password.is_some() => {
            return Err(ApiError::bad_request(
                "invalid_field",
                "current_password goes only with password",
            ))
        }
        None => None,
    };
    if let Some(status) = input.status.as_deref() {
        if status != "active" && status != "disabled" {
            return Err(ApiError::bad_request(
                "invalid_field",
                "status must be `active` or `disabled`",
            ));
        }
    }
    // The slow hash first: the write lock is taken only after it.
    let password_hash = match input.password.as_deref() {
        Some(password) => {
            check_password_policy(password, &target.username)
                .map_err(|msg| ApiError::bad_request("weak_password", msg))?;
            Some(
                hash_password(cx.services.random.as_ref(), password)
                    .map_err(|e| ApiError::internal(format!("hash password: {e}")))?,
            )
        }
        None => None,
    };
    // Checked before the self-lockout rule so the answer names the real reason. The unit of work
    // is opened here (`BEGIN IMMEDIATE`, after the hash): it holds the write lock from these
    // checks through the update, so no concurrent change slips in between.
    cx.db()?.lock_unit()?;
    let disabling = input.status.as_deref() == Some("disabled");
    let demoting = input.role.is_some_and(|r| r != Role::Admin);
    if target.platform_admin
        && (disabling || demoting)
        && !accounts::another_platform_admin(cx.db()?, &target.id)?
    {
        return Err(last_platform_admin());
    }
    let self_lockout = target.id == caller.user_id
        && (input.status.as_deref() == Some("disabled")
            || input.role.is_some_and(|r| r != Role::Admin));
    if self_lockout {
        return Err(ApiError::forbidden(
            "cannot_modify_self",
            "you cannot disable or demote yourself",
        ));
    }
    // Re-enabling a user takes a licensed seat again.
    if target.status != "active" && input.status.as_deref() == Some("active") {
        license::check_capacity(&cx.services, Resource::Users)?;
    }
    let now = cx.now_ms();
    let ends_sessions = disabling || password_hash.is_some();
    let db = cx.db()?;
    let updated = db
        .transaction(|db| -> ApiResult<UserView> {
            let rows = db.execute(
                &format!(
                    "UPDATE users SET email = coalesce(?, email), role = coalesce(?, role),
                            status = coalesce(?, status), password_hash = coalesce(?, password_hash),
                            updated_at = ?
                      WHERE id = ? AND org_id = ?
                  RETURNING {VIEW_COLUMNS}"
                ),
                &[
                    Value::from(input.email.as_ref().map(Email::as_str)),
                    Value::from(input.role.map(Role::as_str)),
                    Value::from(input.status.as_deref()),
                    Value::from(password_hash.as_ref().map(|h| h.as_str())),
                    Value::from(now),
                    Value::from(target.id.as_str()),
                    Value::from(target.org_id.as_str()),
                ],
            )?;
            let row = rows.first().ok_or_else(|| ApiError::not_found("no such user"))?;
            let view = UserView::from_row(&row)?;
            if ends_sessions {
                // Disabling ends everything; one's own password change keeps only this session.
                let keep = if disabling { None } else { keep_session.as_deref() };
                login_sessions::revoke_all_for_user_except(db, &target.id, keep, now, "account_changed")?;
            }
            if disabling {
                // A disabled user's streaming sessions end with it (same unit of work).
                end_streaming_sessions(&cx, db, &target.id, "user_disabled")?;
            }
            Ok(view)
        })
        .map_err(|e| e.conflict_on_unique("user_exists", "a user with this username or email exists"))?;
    Response::ok_json(&updated)
}

/// `DELETE /api/v1/users/{id}`: removes the user, its sessions, tokens, keys, MFA codes and team
/// memberships in one transaction.
pub async fn delete(cx: Cx) -> ApiResult<Response> {
    let id: String = cx.param("id")?;
    let caller = cx.user()?;
    let target = visible_user(&cx, &id)?;
    check_may_modify(caller, &target)?;
    // The write lock from the last-admin check through the delete.
    cx.db()?.lock_unit()?;
    if target.platform_admin && !accounts::another_platform_admin(cx.db()?, &target.id)? {
        return Err(last_platform_admin());
    }
    if target.id == caller.user_id {
        return Err(ApiError::forbidden(
            "cannot_modify_self",
            "you cannot delete yourself",
        ));
    }
    let user_id = Value::from(target.id.as_str());
    cx.db()?.transaction(|db| -> ApiResult<()> {
        end_streaming_sessions(&cx, db, &target.id, "user_deleted")?;
        for statement in [
            "DELETE FROM access_tokens WHERE session_id IN (SELECT id FROM login_sessions WHERE user_id = ?)",
            "DELETE FROM refresh_tokens WHERE session_id IN (SELECT id FROM login_sessions WHERE user_id = ?)",
            "DELETE FROM login_sessions WHERE user_id = ?",
            "DELETE FROM api_keys WHERE user_id = ?",
            "DELETE FROM mfa_backup_codes WHERE user_id = ?",
            "DELETE FROM team_members WHERE user_id = ?",
            "DELETE FROM users WHERE id = ?",
        ] {
            db.execute(statement, std::slice::from_ref(&user_id))?;
        }
        Ok(())
    })?;
    Ok(Response::no_content())
}

/// Ends a user's streaming sessions (`terminating` + `stop_session`, or straight to
/// `terminated` when nothing reached an agent) through the shared sessions domain function, in
/// the caller's unit of work (README: "How components hand work to each other").
fn end_streaming_sessions(cx: &Cx, db: &Database, user_id: &str, reason: &str) -> ApiResult<u64> {
    // Only the command's attempts matter here; the rest are the sweep's and the poll's.
    let settings = SessionSettings {
        max_attempts: cx.services.settings().int("agent_command_max_attempts")?,
        ..SessionSettings::defaults()
    };
    let ops = Ops {
        db,
        random: cx.services.random.as_ref(),
        now: cx.now_ms(),
        settings: &settings,
    };
    Ok(lifecycle::terminate_all_for_user(&ops, user_id, reason)?)
}

/// `DELETE /api/v1/users/{id}/mfa` (platform admin, login session): turns another user's MFA off
/// and deletes their backup codes, so a lost device is recoverable; the user enrols again. The
/// pipeline's audit row records who reset whose (action, actor, target user id). One's own MFA
/// is turned off with `DELETE /auth/mfa` and a code or the password, never here.
pub async fn reset_mfa(cx: Cx) -> ApiResult<Response> {
    let id: String = cx.param("id")?;
    let caller = cx.user()?;
    caller.require_login_session()?;
    let target = visible_user(&cx, &id)?;
    if target.id == caller.user_id {
        return Err(ApiError::forbidden(
            "cannot_modify_self",
            "turn your own MFA off with DELETE /api/v1/auth/mfa",
        ));
    }
    crate::mfa::remove(cx.db()?, &target.id, cx.now_ms())?;
    Ok(Response::no_content())
}
