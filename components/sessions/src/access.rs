//! How every session route finds its session: scoped to the caller's org first (another org's
//! session is 404), then `can_access` with the route's permission (403).

use shared::auth::permissions::can_access;
use shared::auth::Principal;
use shared::sessions::lifecycle::{self, Ops, Session, SessionSettings};
use shared::{ApiError, ApiResult, Cx};

pub fn forbidden(what: &str) -> ApiError {
    ApiError::forbidden("forbidden", format!("you may not {what}"))
}

/// The session `{id}` of the caller's org that the caller holds `permission` on.
pub fn load_for(cx: &Cx, permission: &str) -> ApiResult<(Principal, Session)> {
    let user = cx.user()?.clone();
    let id: String = cx.param("id")?;
    let db = cx.db()?;
    let session = lifecycle::require(db, cx.now_ms(), &user.org_id, &id)?;
    if !can_access(
        db,
        &user,
        &session.user_id,
        session.team_id.as_deref(),
        permission,
    )? {
        return Err(forbidden(&format!(
            "do this to this session (needs {permission})"
        )));
    }
    Ok((user, session))
}

/// The session variables of this request.
pub fn settings_of(cx: &Cx) -> ApiResult<SessionSettings> {
    Ok(SessionSettings::read(&cx.services.settings())?)
}

/// The lifecycle context of this request.
pub fn ops_of<'a>(cx: &'a Cx, settings: &'a SessionSettings) -> ApiResult<Ops<'a>> {
    Ok(Ops {
        db: cx.db()?,
        random: cx.services.random.as_ref(),
        now: cx.now_ms(),
        settings,
    })
}
