//! Agent self-service (seed 000): a streaming agent, authenticated by its API key bound to its id,
//! registers (platform, region, capacity) and then heartbeats. Registration counts against the
//! license's node limit.

use serde::{Deserialize, Serialize};
use shared::agents::{check_label, AgentView, VIEW_COLUMNS};
use shared::license::{self, Resource};
use shared::rate_limit::RateClass;
use shared::store::Value;
use shared::{Access, ApiError, ApiResult, Cx, Response, Route};

/// How often agents should heartbeat; an agent silent for three intervals counts as offline.
pub const HEARTBEAT_INTERVAL_SECONDS: i64 = 30;

pub fn routes() -> Vec<Route> {
    vec![
        Route::post("/api/v1/agents/register", Access::Agent, register).rate(RateClass::Agent),
        Route::post("/api/v1/agents/{id}/heartbeat", Access::Agent, heartbeat)
            .rate(RateClass::Agent),
    ]
}

/// Resources an agent offers; free-form beyond these, bounded in size.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Capacity {
    #[serde(default)]
    max_sessions: Option<u32>,
    #[serde(default)]
    cpu_millicores: Option<u64>,
    #[serde(default)]
    memory_bytes: Option<u64>,
    #[serde(default)]
    active_sessions: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterRequest {
    #[serde(default)]
    platform: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    capacity: Option<Capacity>,
}

#[derive(Serialize)]
struct Registered {
    agent: AgentView,
    heartbeat_interval_seconds: i64,
}

fn bad(message: String) -> ApiError {
    ApiError::bad_request("invalid_field", message)
}

fn capacity_json(capacity: Option<&Capacity>) -> ApiResult<Option<String>> {
    capacity
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| ApiError::internal(format!("encode capacity: {e}")))
}

/// `POST /api/v1/agents/register?agent_id=…`: records platform, region and capacity and marks
/// the agent online. The first registration of an agent counts as a node against the license.
pub async fn register(cx: Cx) -> ApiResult<Response> {
    let agent = cx.agent()?.clone();
    let input: RegisterRequest = cx.json()?;
    let platform = input
        .platform
        .as_deref()
        .map(|p| check_label(p, "platform", false))
        .transpose()
        .map_err(bad)?;
    let region = input
        .region
        .as_deref()
        .map(|r| check_label(r, "region", true))
        .transpose()
        .map_err(bad)?;
    let capacity = capacity_json(input.capacity.as_ref())?;
    let now = cx.now_ms();
    let db = cx.db()?;
    // The write lock from the license count through the update (two agents registering at once
    // cannot both take the last node).
    db.lock_unit()?;
    let registered_before = db
        .execute(
            "SELECT registered_at FROM agents WHERE id = ?",
            &[Value::from(agent.agent_id.as_str())],
        )?
        .first()
        .map(|r| r.opt_i64("registered_at"))
        .transpose()?
        .flatten()
        .is_some();
    // A first registration adds a node (a registered, unrevoked agent): it must fit the license.
    let node_capacity = if registered_before {
        None
    } else {
        Some(license::check_capacity(&cx.services, Resource::Nodes)?)
    };
    let rows = db.execute(
        &format!(
            "UPDATE agents SET platform = coalesce(?, platform), region = coalesce(?, region),
                    capacity = coalesce(?, capacity), status = 'online',
                    registered_at = coalesce(registered_at, ?), last_heartbeat_at = ?
              WHERE id = ? AND org_id = ? RETURNING {VIEW_COLUMNS}"
        ),
        &[
            Value::from(platform),
            Value::from(region),
            Value::from(capacity),
            Value::from(now),
            Value::from(now),
            Value::from(agent.agent_id.as_str()),
            Value::from(agent.org_id.as_str()),
        ],
    )?;
    let row = rows
        .first()
        .ok_or_else(|| ApiError::not_found("no such agent"))?;
    let response = Response::ok_json(&Registered {
        agent: AgentView::from_row(&row)?,
        heartbeat_interval_seconds: HEARTBEAT_INTERVAL_SECONDS,
    })?;
    Ok(match node_capacity {
        Some(node_capacity) => node_capacity.annotate(response),
        None => response,
    })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HeartbeatRequest {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    capacity: Option<Capacity>,
}

#[derive(Serialize)]
struct Beat {
    id: String,
    status: String,
    heartbeat_interval_seconds: i64,
}

/// `POST /api/v1/agents/{id}/heartbeat`: status (`online` or `draining`) and capacity. 409 until
/// the agent has registered.
pub async fn heartbeat(cx: Cx) -> ApiResult<Response> {
    let agent = cx.agent()?.clone();
    let input: HeartbeatRequest = if cx.body.is_empty() {
        HeartbeatRequest::default()
    } else {
        cx.json()?
    };
    if let Some(status) = input.status.as_deref() {
        if status != "online" && status != "draining" {
            return Err(bad("status must be `online` or `draining`".to_owned()));
        }
    }
    let capacity = capacity_json(input.capacity.as_ref())?;
    let rows = cx.db()?.execute(
        "UPDATE agents SET status = coalesce(?, 'online'), capacity = coalesce(?, capacity), last_heartbeat_at = ?
          WHERE id = ? AND org_id = ? AND registered_at IS NOT NULL
          RETURNING id, status",
        &[
            Value::from(input.status.as_deref()),
            Value::from(capacity),
            Value::from(cx.now_ms()),
            Value::from(agent.agent_id.as_str()),
            Value::from(agent.org_id.as_str()),
        ],
    )?;
    let row = rows.first().ok_or_else(|| {
        ApiError::conflict("not_registered", "register the agent before heartbeating")
    })?;
    Response::ok_json(&Beat {
        id: row.str("id")?.to_owned(),
        status: row.str("status")?.to_owned(),
        heartbeat_interval_seconds: HEARTBEAT_INTERVAL_SECONDS,
    })
}
