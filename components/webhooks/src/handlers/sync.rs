//! Repository syncs (SPEC-wave2 §2.3, §2.4): one repository, the org's repositories, and the
//! maintenance drain of requested and stale repositories (a platform cron calls it every minute;
//! webhook-requested syncs that did not run after their response run here).
//!
//! Every sync runs outside the request's unit of work ([`crate::sync`]): its claim, its commit and
//! its failure record are committed as they happen, and no outbound call runs under SQLite's
//! write lock. The request's audit row is written on its own afterwards.

use serde::Serialize;
use shared::auth::Role;
use shared::{Access, ApiError, ApiResult, Cx, Response, Route, StatusCode};

use crate::repositories;
use crate::sync::{self, Outcome, SyncResult, BUDGET_MS};

const OPERATOR: Access = Access::AnyRole(&[Role::Admin, Role::Operator]);

/// A sync is not started with less time than this left in the request's budget; the repository
/// is queued instead (the drain runs it).
pub const MIN_SLOT_MS: i64 = 5_000;
/// The most repositories one drain call considers.
pub const DRAIN_BATCH: i64 = 100;

pub fn routes() -> Vec<Route> {
    vec![
        Route::post("/api/v1/catalog/repositories/{id}/sync", OPERATOR, sync_one),
        Route::post("/api/v1/catalog/sync", OPERATOR, sync_org),
        Route::post(
            "/api/v1/catalog/sync/pending",
            Access::Optional,
            sync_pending,
        ),
    ]
}

/// `?force=true`: skip the unchanged-commit shortcut.
fn force(cx: &Cx) -> ApiResult<bool> {
    let mut force = false;
    for (name, value) in form_urlencoded::parse(cx.head.query.as_bytes()) {
        if name == "force" {
            force = match value.as_ref() {
                "true" | "1" => true,
                "false" | "0" | "" => false,
                _ => {
                    return Err(ApiError::bad_request(
                        "invalid_field",
                        "force must be true or false",
                    ))
                }
            };
        }
    }
    Ok(force)
}

/// `POST /api/v1/catalog/repositories/{id}/sync` (operator, admin), `?force=true`: runs the sync
/// inline → 200 `{repository, result}` (a failed sync too: `result.status` is `failed` and
/// `result.error` says why, as the repository's `error_message` does); 202
/// `{"status":"syncing", repository}` when another sync holds the lease; 404 outside the org.
pub async fn sync_one(cx: Cx) -> ApiResult<Response> {
    let id: String = cx.param("id")?;
    let force = force(&cx)?;
    let tenant = cx.tenant()?;
    repositories::find(cx.db()?, &tenant, &id)?;
    let deadline = cx.now_ms() + BUDGET_MS;
    let outcome = sync::sync_repository(&cx.services, &id, force, deadline).await?;
    let repository = repositories::find(cx.db()?, &tenant, &id)?;
    match outcome {
        Outcome::Busy => Response::json(
            StatusCode::ACCEPTED,
            &Synced {
                status: Some("syncing"),
                repository,
                result: None,
            },
        ),
        Outcome::Ran(result) => Response::ok_json(&Synced {
            status: None,
            repository,
            result: Some(result),
        }),
    }
}

/// The answer of `POST …/{id}/sync`.
#[derive(Serialize)]
struct Synced {
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    repository: repositories::RepositoryView,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<SyncResult>,
}

/// What a batch did: the syncs it ran, and the repositories left for the drain.
#[derive(Serialize, Default)]
struct Batch {
    /// Each with its repository's `id`.
    synced: Vec<SyncResult>,
    queued: Vec<String>,
}

/// Runs `ids` one by one within one request budget; those it cannot start (budget, or a sync
/// already running) are queued: `sync_requested_at` is set so the drain runs them.
async fn run_batch(cx: &Cx, ids: Vec<String>) -> ApiResult<Batch> {
    let deadline = cx.now_ms() + BUDGET_MS;
    let db = cx.db()?;
    let mut batch = Batch::default();
    for id in ids {
        let now = cx.now_ms();
        if now + MIN_SLOT_MS > deadline {
            sync::request(db, &id, now)?;
            batch.queued.push(id);
            continue;
        }
        match sync::sync_repository(&cx.services, &id, false, deadline).await? {
            Outcome::Ran(mut result) => {
                result.id = Some(id);
                batch.synced.push(result);
            }
            Outcome::Busy => {
                sync::request(db, &id, now)?;
                batch.queued.push(id);
            }
        }
    }
    Ok(batch)
}

/// `POST /api/v1/catalog/sync` (operator, admin): the org's repositories, least recently synced
/// first, one by one within the request's budget → 202 `{synced:[{id, …result}], queued:[id]}`.
pub async fn sync_org(cx: Cx) -> ApiResult<Response> {
    let tenant = cx.tenant()?;
    let rows = cx.db()?.execute(
        "SELECT id FROM repositories WHERE org_id = ?1
         ORDER BY coalesce(last_sync_at, 0), id",
        &[tenant.org_id().into()],
    )?;
    let ids = rows
        .iter()
        .map(|r| Ok(r.str("id")?.to_owned()))
        .collect::<Result<Vec<_>, shared::store::StoreError>>()?;
    let batch = run_batch(&cx, ids).await?;
    Response::json(StatusCode::ACCEPTED, &batch)
}

/// `POST /api/v1/catalog/sync/pending` (`Bearer <maintenance_token>` or the platform admin):
/// drains repositories whose sync was requested after their last successful one, those not
/// synced for `catalog_sync_interval_seconds` (failed ones not retried within it), and those a
/// crashed sync left behind → 200 `{synced:[{id, …result}], queued:[id]}`.
pub async fn sync_pending(cx: Cx) -> ApiResult<Response> {
    shared::auth::maintenance::require(&cx, "drain the sync queue")?;
    let interval_ms = cx
        .services
        .settings()
        .int("catalog_sync_interval_seconds")?
        .saturating_mul(1000);
    crate::deliveries::purge(&cx)?;
    let ids = sync::pending(cx.db()?, cx.now_ms(), interval_ms, DRAIN_BATCH)?;
    let batch = run_batch(&cx, ids).await?;
    Response::ok_json(&batch)
}
