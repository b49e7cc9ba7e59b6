//! The caller's own profile.

use shared::{ApiResult, Cx, Response};

use crate::accounts;

/// `GET /api/v1/users/me`: the profile, no secrets.
pub async fn me(cx: Cx) -> ApiResult<Response> {
    let user = cx.user()?;
    Response::ok_json(&accounts::find_in_org(
        cx.db()?,
        &user.tenant(),
        &user.user_id,
    )?)
}
