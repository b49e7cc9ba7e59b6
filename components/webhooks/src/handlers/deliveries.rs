//! Webhook delivery log routes (SPEC-wave2 §3.5), admins only: an org admin sees the org's
//! deliveries (its repositories' GitHub routes), the platform admin also the deployment-wide
//! ones ([`crate::deliveries`]).

use shared::auth::Role;
use shared::{Access, ApiError, ApiResult, Cx, Response, Route, StatusCode};

use crate::deliveries;
use crate::receivers::{self, Kind};

const ADMIN: Access = Access::AnyRole(&[Role::Admin]);

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/api/v1/admin/webhooks/deliveries", ADMIN, list),
        Route::get("/api/v1/admin/webhooks/deliveries/{id}", ADMIN, get),
        Route::post(
            "/api/v1/admin/webhooks/deliveries/{id}/replay",
            ADMIN,
            replay,
        ),
    ]
}

/// `GET /api/v1/admin/webhooks/deliveries?source=&status=&event=`: newest first, paginated.
pub async fn list(cx: Cx) -> ApiResult<Response> {
    let mut filters: [(&'static str, Option<String>); 3] =
        [("source", None), ("status", None), ("event", None)];
    for (name, value) in form_urlencoded::parse(cx.head.query.as_bytes()) {
        if let Some(slot) = filters.iter_mut().find(|(n, _)| *n == name) {
            slot.1 = Some(value.into_owned());
        }
    }
    let page = cx.page()?;
    Response::ok_json(&deliveries::list(cx.db()?, cx.user()?, &filters, &page)?)
}

/// `GET /api/v1/admin/webhooks/deliveries/{id}`: the delivery with its headers and body.
pub async fn get(cx: Cx) -> ApiResult<Response> {
    let id: String = cx.param("id")?;
    Response::ok_json(&deliveries::find(cx.db()?, cx.user()?, &id)?.view)
}

/// `POST /api/v1/admin/webhooks/deliveries/{id}/replay`: runs the delivery's effect again from
/// the stored body (verified when it was received) → 202 `{delivery}` when syncs were requested,
/// 200 when it now has none; 409 `not_replayable` for a truncated body or an event without effect.
pub async fn replay(cx: Cx) -> ApiResult<Response> {
    let id: String = cx.param("id")?;
    let db = cx.db()?;
    let stored = deliveries::find(db, cx.user()?, &id)?;
    if !receivers::replayable(&stored.event, stored.truncated) {
        return Err(ApiError::conflict(
            "not_replayable",
            "only a complete delivery of an event with an effect can be replayed",
        ));
    }
    db.execute(
        "UPDATE webhook_deliveries SET attempts = attempts + 1 WHERE id = ?1",
        &[id.as_str().into()],
    )?;
    let answer = receivers::process(
        &cx.services,
        &id,
        &Kind::of_source(&stored.source),
        &stored.event,
        stored.content_type.as_deref(),
        &stored.body,
    )?;
    let delivery = deliveries::find(db, cx.user()?, &id)?.view;
    let status = if answer.status == StatusCode::ACCEPTED {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Response::json(status, &serde_json::json!({ "delivery": delivery }))
}
