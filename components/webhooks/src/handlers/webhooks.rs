//! Inbound webhook routes (SPEC-wave2 §3.2–§3.4): public (the signature is the credential),
//! rate-limited per source, verified over the raw body before anything is parsed or stored
//! ([`crate::receivers`]).

use shared::ids::is_uuid;
use shared::rate_limit::RateClass;
use shared::{Access, ApiError, ApiResult, Cx, Response, Route, StatusCode};

use crate::receivers::{self, Delivery};
use crate::verify::{self, VerifyError};

pub fn routes() -> Vec<Route> {
    vec![
        Route::post("/api/v1/webhooks/github", Access::Public, github_shared),
        Route::post(
            "/api/v1/webhooks/github/{repository_id}",
            Access::Public,
            github_repository,
        ),
        Route::post("/api/v1/webhooks/repository/sync", Access::Public, plain),
        Route::post("/webhooks/repository/sync", Access::Public, plain),
        Route::post(
            "/api/v1/webhooks/standard/{source}",
            Access::Public,
            standard,
        ),
    ]
    .into_iter()
    .map(|route| route.rate(RateClass::Webhook))
    .collect()
}

/// A failed verification as the client sees it (never a secret or an expected signature).
fn rejected(err: VerifyError, services: &shared::services::Services) -> ApiError {
    let message = err.message();
    match err {
        VerifyError::Missing(h) if h.starts_with("webhook-") => {
            ApiError::bad_request("missing_header", message)
        }
        VerifyError::Malformed(h) if h.starts_with("webhook-") => {
            ApiError::bad_request("invalid_header", message)
        }
        VerifyError::Missing(_) => ApiError::unauthorized("missing_signature", message),
        VerifyError::Malformed(_) | VerifyError::Mismatch => {
            ApiError::unauthorized("invalid_signature", message)
        }
        VerifyError::Stale => ApiError::unauthorized("timestamp_out_of_tolerance", message),
        VerifyError::BadSecret(why) => {
            services.log.write_line(
                &serde_json::json!({"level": "error", "msg": "webhook secret misconfigured",
                                    "cause": why})
                .to_string(),
            );
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "webhook_misconfigured",
                message,
            )
        }
    }
}

/// `X-GitHub-Event` / `X-GitHub-Delivery`, checked after the signature (400 `invalid_header`).
fn github_headers(cx: &Cx) -> ApiResult<(String, String)> {
    let event = receivers::header(&cx.head, "x-github-event", 64, |b| {
        b.is_ascii_lowercase() || b == b'_'
    })?;
    let delivery = receivers::header(&cx.head, "x-github-delivery", 64, |b| {
        b.is_ascii_alphanumeric() || b == b'-'
    })?;
    Ok((event.to_owned(), delivery.to_owned()))
}

async fn github(
    cx: &Cx,
    secrets: Vec<Vec<u8>>,
    source: String,
    org_id: Option<String>,
) -> ApiResult<Response> {
    if secrets.is_empty() {
        return Err(receivers::not_configured(&source));
    }
    verify::github_sha256(&secrets, &cx.body, cx.head.header("x-hub-signature-256"))
        .map_err(|e| rejected(e, &cx.services))?;
    cx.set_actor(&format!("webhook:{source}"));
    let (event, delivery) = github_headers(cx)?;
    receivers::receive(
        &cx.services,
        Delivery {
            source,
            org_id,
            delivery_id: Some(delivery),
            event,
            headers: &cx.head,
            body: &cx.body,
        },
    )
    .await
}

/// `POST /api/v1/webhooks/github`: the deployment-wide `github_webhook_secret`; a push matches
/// repositories of every org by URL and branch.
pub async fn github_shared(cx: Cx) -> ApiResult<Response> {
    receivers::refuse_encoding(&cx.head)?;
    let secrets = verify::secrets_from_variable(
        cx.services
            .settings()
            .raw("github_webhook_secret")?
            .as_deref(),
    );
    github(&cx, secrets, "github".to_owned(), None).await
}

/// `POST /api/v1/webhooks/github/{repository_id}`: that repository's secrets (current, and the
/// previous one within its grace); it alone is synced; the delivery belongs to its org.
pub async fn github_repository(cx: Cx) -> ApiResult<Response> {
    receivers::refuse_encoding(&cx.head)?;
    let id: String = cx.param("repository_id")?;
    let not_found = || ApiError::not_found("no such repository");
    if !is_uuid(&id) {
        return Err(not_found());
    }
    let db = cx.db()?;
    let rows = db.execute(
        "SELECT org_id FROM repositories WHERE id = ?1",
        &[id.as_str().into()],
    )?;
    let org_id = rows
        .first()
        .ok_or_else(not_found)?
        .str("org_id")?
        .to_owned();
    let secrets = shared::repositories::webhook_secrets(db, &cx.services, &id)?;
    cx.set_target_org(&org_id);
    github(&cx, secrets, format!("github:{id}"), Some(org_id)).await
}

/// `POST /api/v1/webhooks/repository/sync` and `/webhooks/repository/sync`: StreamSpace's form,
/// `X-Webhook-Signature: <hex>` with `webhook_secret`, body `{repository_url, branch?, ref?}`.
pub async fn plain(cx: Cx) -> ApiResult<Response> {
    receivers::refuse_encoding(&cx.head)?;
    let secrets =
        verify::secrets_from_variable(cx.services.settings().raw("webhook_secret")?.as_deref());
    if secrets.is_empty() {
        return Err(receivers::not_configured("the plain form"));
    }
    verify::plain_hmac(&secrets, &cx.body, cx.head.header("x-webhook-signature"))
        .map_err(|e| rejected(e, &cx.services))?;
    cx.set_actor("webhook:plain");
    receivers::receive(
        &cx.services,
        Delivery {
            source: "plain".to_owned(),
            org_id: None,
            delivery_id: None,
            event: "repository.sync".to_owned(),
            headers: &cx.head,
            body: &cx.body,
        },
    )
    .await
}

/// `POST /api/v1/webhooks/standard/{source}`: Standard Webhooks with the source's secrets of
/// `standard_webhook_secrets`, within `webhook_tolerance_seconds`.
pub async fn standard(cx: Cx) -> ApiResult<Response> {
    receivers::refuse_encoding(&cx.head)?;
    let source: String = cx.param("source")?;
    let unknown = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_source",
            "no Standard Webhooks source of this name is configured",
        )
    };
    let name_ok = (1..=64).contains(&source.len())
        && source.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || (i > 0 && (b == b'_' || b == b'-'))
        });
    if !name_ok {
        return Err(unknown());
    }
    let settings = cx.services.settings();
    let variable = settings.raw("standard_webhook_secrets")?;
    if variable.as_deref().is_none_or(|v| v.trim().is_empty()) {
        return Err(receivers::not_configured("Standard Webhooks"));
    }
    let secrets = verify::standard_secrets_for(variable.as_deref(), &source)
        .map_err(|e| rejected(e, &cx.services))?;
    if secrets.is_empty() {
        return Err(unknown());
    }
    let tolerance = settings.int("webhook_tolerance_seconds")?;
    let id = cx.head.header("webhook-id");
    verify::standard(
        &secrets,
        id,
        cx.head.header("webhook-timestamp"),
        cx.head.header("webhook-signature"),
        &cx.body,
        cx.now_ms().div_euclid(1000),
        tolerance,
    )
    .map_err(|e| rejected(e, &cx.services))?;
    cx.set_actor(&format!("webhook:standard:{source}"));
    receivers::receive(
        &cx.services,
        Delivery {
            source: format!("standard:{source}"),
            org_id: None,
            delivery_id: id.map(str::to_owned),
            event: receivers::standard_event(&cx.body),
            headers: &cx.head,
            body: &cx.body,
        },
    )
    .await
}
