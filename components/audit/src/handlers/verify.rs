//! `GET /api/v1/admin/audit/verify`: walks the hash chain and names the first broken sequence.

use shared::audit::chain;
use shared::auth::Role;
use shared::{Access, ApiResult, Cx, Response, Route};

pub fn routes() -> Vec<Route> {
    vec![Route::get(
        "/api/v1/admin/audit/verify",
        Access::AnyRole(&[Role::Admin, Role::Auditor]),
        verify,
    )]
}

/// `{"ok", "checked", "first_broken", "keyed"}`. The chain is platform-wide (one sequence for all
/// orgs), so the answer says nothing about any org's rows beyond whether they were altered.
pub async fn verify(cx: Cx) -> ApiResult<Response> {
    let key = cx.services.settings().raw("audit_key")?;
    let report = chain::verify(
        cx.db()?,
        key.as_deref().map_or(chain::UNKEYED, str::as_bytes),
        key.is_some(),
    )?;
    Response::ok_json(&report)
}
