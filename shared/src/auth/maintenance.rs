//! Who may run the cross-org maintenance routes (the purge, the catalog sync drain): a platform
//! cron with `Authorization: Bearer <maintenance_token>` (compared in constant time; an empty
//! variable disables it) or the platform admin's own credentials — these routes span every org,
//! so no org's admin may run them. (A verified user reaches a route only with a `full`-scope
//! credential: the pipeline applies token scopes on optional-auth routes too.)

use crate::auth::precheck::bearer;
use crate::context::Cx;
use crate::error::{ApiError, ApiResult};
use crate::secrets::constant_time_eq;

/// Whether the caller may run a maintenance route.
pub fn authorized(cx: &Cx) -> ApiResult<bool> {
    if cx.principal.as_ref().is_some_and(|p| p.platform_admin) {
        return Ok(true);
    }
    let Some(presented) = bearer(&cx.head) else {
        return Ok(false);
    };
    let expected = cx.services.settings().raw("maintenance_token")?;
    Ok(expected.is_some_and(|token| constant_time_eq(token.as_bytes(), presented.as_bytes())))
}

/// [`authorized`], or 403 `forbidden` for another verified user and 401 `unauthenticated`
/// otherwise; `what` completes "may …".
pub fn require(cx: &Cx, what: &str) -> ApiResult<()> {
    if authorized(cx)? {
        return Ok(());
    }
    Err(if cx.principal.is_some() {
        ApiError::forbidden(
            "forbidden",
            format!("only the platform admin or the maintenance token may {what}"),
        )
    } else {
        ApiError::unauthorized(
            "unauthenticated",
            "the maintenance token or the platform admin's login is required",
        )
    })
}
