//! `GET /api/v1/admin/audit/verify`: verifies the hash chain in bounded steps and names the first
//! broken sequence.
//!
//! - Default (admins and auditors of any org): incremental. Each call checks the checkpoints
//!   and that the oldest row is where the chain starts, re-checks
//!   the row where the previous call stopped (the position is stored with the row's hash under a
//!   MAC made with `audit_key`), and then recomputes at most
//!   [`VERIFY_MAX_ROWS`](chain::VERIFY_MAX_ROWS) new rows and remembers where it stopped. With
//!   more to do the answer says `complete: false` and `next_after_seq`: call again.
//! - `?full=true` (platform admin only, 403 otherwise): a re-verification of every row from the
//!   start of the chain, in the same bounded steps, continued with `&cursor=<next_cursor>`. Rows
//!   behind the incremental position were verified once and are not walked again by the
//!   incremental calls, so a later edit or deletion of an old row is found only by a full pass:
//!   run it from the scheduler (cron) as well.

use serde::Deserialize;
use shared::audit::chain;
use shared::auth::Role;
use shared::{Access, ApiError, ApiResult, Cx, Response, Route};

pub fn routes() -> Vec<Route> {
    vec![Route::get(
        "/api/v1/admin/audit/verify",
        Access::AnyRole(&[Role::Admin, Role::Auditor]),
        verify,
    )]
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct VerifyQuery {
    #[serde(default)]
    full: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
}

/// `{"ok", "checked", "first_broken", "keyed", "complete", "full", "reason", "from_seq",
/// "verified_through", "next_after_seq", "next_cursor"}`. The chain is platform-wide (one
/// sequence for all orgs), so the answer says nothing about any org's rows beyond whether they
/// were altered.
pub async fn verify(cx: Cx) -> ApiResult<Response> {
    let q: VerifyQuery = cx.query()?;
    let full = match q.full.as_deref().map(str::trim) {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "`full` must be `true` or `false`",
            ))
        }
    };
    // An empty `cursor=` is no cursor, as on every list (the first page).
    let cursor = q.cursor.as_deref().map(str::trim).filter(|c| !c.is_empty());
    if cursor.is_some() && !full {
        return Err(ApiError::bad_request(
            "invalid_query",
            "`cursor` continues a full pass (`full=true`); the incremental pass continues by itself",
        ));
    }
    if full && !cx.user()?.platform_admin {
        return Err(ApiError::forbidden(
            "forbidden",
            "only the platform admin may run a full re-verification",
        ));
    }
    let key = cx.services.settings().raw("audit_key")?;
    let key_bytes = key.as_deref().map_or(chain::UNKEYED, str::as_bytes);
    let db = cx.db()?;
    chain::seal_all(db, key_bytes)?;
    let now = cx.now_ms();
    let report = if full {
        chain::verify_full(
            db,
            key_bytes,
            key.is_some(),
            now,
            cursor,
            chain::VERIFY_MAX_ROWS,
        )?
        .map_err(|chain::BadCursor| {
            ApiError::bad_request(
                "invalid_cursor",
                "`cursor` must be a `next_cursor` from an earlier full pass",
            )
        })?
    } else {
        chain::verify_incremental(db, key_bytes, key.is_some(), now, chain::VERIFY_MAX_ROWS)?
    };
    Response::ok_json(&report)
}

/// Seals every audit row not sealed yet ([`chain::seal_all`]), so that what an audit read,
/// export or the maintenance route works on is covered by the chain. The request's own row is
/// written after its handler and sealed after its response.
pub fn seal_chain(cx: &Cx) -> ApiResult<()> {
    let key = cx.services.settings().raw("audit_key")?;
    chain::seal_all(
        cx.db()?,
        key.as_deref().map_or(chain::UNKEYED, str::as_bytes),
    )?;
    Ok(())
}
