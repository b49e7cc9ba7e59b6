//! The agent command queue over HTTP polling (SPEC-wave2 §1.7; Spin has no WebSocket): an agent
//! polls for leased commands, acknowledges, completes or fails them, and reports session status.
//! Delivery is at-least-once: a lease that expires brings the command back (attempt + 1) until
//! its attempts run out.

use serde::{Deserialize, Serialize};
use shared::rate_limit::RateClass;
use shared::sessions::lifecycle::{
    self, Command, Leased, Outcome, Session, CONNECTION_LIVE_MS, SELECT,
};
use shared::sessions::machine::{self, Action, State, REPORTABLE};
use shared::store::Value;
use shared::time::Timestamp;
use shared::{Access, ApiError, ApiResult, Cx, Response, Route};

use crate::access::{ops_of, settings_of};

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/api/v1/agents/{id}/commands", Access::Agent, poll).rate(RateClass::Agent),
        Route::post(
            "/api/v1/agents/{id}/commands/{command_id}/ack",
            Access::Agent,
            ack,
        )
        .rate(RateClass::Agent),
        Route::post(
            "/api/v1/agents/{id}/sessions/{session_id}/status",
            Access::Agent,
            status,
        )
        .rate(RateClass::Agent),
    ]
}

#[derive(Serialize)]
struct Polled {
    items: Vec<Leased>,
    lease_seconds: i64,
    poll_interval_seconds: i64,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_field", message)
}

/// `GET /api/v1/agents/{id}/commands?limit=1..20`: refreshes the heartbeat, fails commands
/// whose attempts ran out, sweeps this agent's sessions, then leases up to `limit` commands
/// (default 10) in one statement.
pub async fn poll(cx: Cx) -> ApiResult<Response> {
    let agent = cx.agent()?.clone();
    let limit = query_limit(&cx.head.query)?.unwrap_or(10);
    let settings = settings_of(&cx)?;
    let ops = ops_of(&cx, &settings)?;
    let db = ops.db;
    let beat = db.execute(
        "UPDATE agents SET last_heartbeat_at = ? WHERE id = ? AND org_id = ?
            AND registered_at IS NOT NULL RETURNING id",
        &[
            Value::from(ops.now),
            Value::from(agent.agent_id.as_str()),
            Value::from(agent.org_id.as_str()),
        ],
    )?;
    if beat.is_empty() {
        return Err(ApiError::conflict(
            "not_registered",
            "register the agent before polling for commands",
        ));
    }
    lifecycle::fail_exhausted(db, ops.now, &agent.agent_id)?;
    lifecycle::sweep(&ops, Some(&agent.agent_id))?;
    let items = lifecycle::lease(
        db,
        ops.now,
        &agent.org_id,
        &agent.agent_id,
        settings.lease_seconds,
        limit,
    )?;
    Response::ok_json(&Polled {
        items,
        lease_seconds: settings.lease_seconds,
        poll_interval_seconds: settings.poll_interval_seconds,
    })
}

fn query_limit(raw: &str) -> ApiResult<Option<i64>> {
    let Some(text) = shared::extract::query_value(raw, "limit") else {
        return Ok(None);
    };
    let n: i64 = text
        .trim()
        .parse()
        .map_err(|_| ApiError::bad_request("invalid_query", "limit must be a number"))?;
    if !(1..=20).contains(&n) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "limit must be from 1 to 20",
        ));
    }
    Ok(Some(n))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AckRequest {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    result: Option<serde_json::Value>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Serialize)]
struct Acked {
    command_id: String,
    status: String,
    lease_expires_at: Option<Timestamp>,
}

const RESULT_MAX_BYTES: usize = 64 * 1024;
const ERROR_MAX_BYTES: usize = 4 * 1024;

fn finished() -> ApiError {
    ApiError::registered(
        "command_finished",
        "the command is already finished or cancelled; stop working on it",
    )
}

/// An `https://` URL of at most 2048 characters.
fn https_url(url: &str) -> Option<String> {
    let ok = url.len() <= 2048
        && url
            .get(..8)
            .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
        && url.len() > 8
        && !url.chars().any(|c| c.is_control() || c.is_whitespace());
    ok.then(|| url.to_owned())
}

/// The streaming URL of a session that started: the agent's (https), else the configured
/// template with `{session_id}` filled in, else none (connect waits for an endpoint).
fn session_url(reported: Option<&str>, template: Option<&str>, session_id: &str) -> Option<String> {
    reported
        .and_then(https_url)
        .or_else(|| template.map(|t| t.replace("{session_id}", session_id)))
}

/// `podName`, `podIP`, `vncPort` of a start or wake result, as the session's metadata.
fn metadata_of(result: &serde_json::Value) -> Option<String> {
    let mut meta = serde_json::Map::new();
    for key in [
        "podName",
        "podIP",
        "vncPort",
        "deployment",
        "service",
        "pvc",
    ] {
        if let Some(v) = result.get(key).filter(|v| !v.is_null()) {
            meta.insert(key.to_owned(), v.clone());
        }
    }
    (!meta.is_empty()).then(|| serde_json::Value::Object(meta).to_string())
}

/// `POST /api/v1/agents/{id}/commands/{command_id}/ack` `{"status": "acknowledged" |
/// "completed" | "failed", "result"?, "error"?}`. Acknowledging extends the lease; completing
/// or failing finishes the command and moves its session in the same transaction.
pub async fn ack(cx: Cx) -> ApiResult<Response> {
    let agent = cx.agent()?.clone();
    let command_id: String = cx.param("command_id")?;
    let input: AckRequest = if cx.body.is_empty() {
        AckRequest::default()
    } else {
        cx.json()?
    };
    let wanted = input.status.as_deref().unwrap_or("acknowledged");
    if !matches!(wanted, "acknowledged" | "completed" | "failed") {
        return Err(bad("status must be acknowledged, completed or failed"));
    }
    let result = match &input.result {
        None | Some(serde_json::Value::Null) => None,
        Some(v @ serde_json::Value::Object(_)) => {
            let text = v.to_string();
            if text.len() > RESULT_MAX_BYTES {
                return Err(bad("result must be at most 64 KiB"));
            }
            Some(text)
        }
        Some(_) => return Err(bad("result must be a JSON object")),
    };
    if input
        .error
        .as_deref()
        .is_some_and(|e| e.len() > ERROR_MAX_BYTES)
    {
        return Err(bad("error must be at most 4 KiB"));
    }
    let settings = settings_of(&cx)?;
    let db = cx.db()?;
    let now = cx.now_ms();
    // The write lock from the read of the command's status to its update.
    db.lock_unit()?;
    let rows = db.execute(
        &format!(
            "SELECT {} FROM agent_commands WHERE id = ? AND agent_id = ? AND org_id = ?",
            Command::COLUMNS
        ),
        &[
            Value::from(command_id.as_str()),
            Value::from(agent.agent_id.as_str()),
            Value::from(agent.org_id.as_str()),
        ],
    )?;
    let command = rows
        .first()
        .map(|r| Command::from_row(&r))
        .transpose()?
        .ok_or_else(|| ApiError::not_found("no such command for this agent"))?;
    let answer = |status: &str, lease: Option<i64>| {
        Response::ok_json(&Acked {
            command_id: command.id.clone(),
            status: status.to_owned(),
            lease_expires_at: lease.map(Timestamp::from_ms),
        })
    };
    match command.status.as_str() {
        "cancelled" => return Err(finished()),
        "completed" | "failed" if command.status == wanted => {
            return answer(&command.status, command.lease_expires_at)
        }
        "completed" | "failed" => return Err(finished()),
        "pending" if command.first_delivered_at.is_none() => {
            return Err(ApiError::registered(
                "not_delivered",
                "the command has not been delivered to this agent yet",
            ))
        }
        _ => {}
    }
    if wanted == "acknowledged" {
        let lease = now + settings.lease_seconds * 1000;
        db.execute(
            "UPDATE agent_commands SET status = 'acknowledged',
                    acknowledged_at = coalesce(acknowledged_at, ?), lease_expires_at = ?,
                    updated_at = ?
              WHERE id = ?",
            &[
                Value::from(now),
                Value::from(lease),
                Value::from(now),
                Value::from(command.id.as_str()),
            ],
        )?;
        return answer("acknowledged", Some(lease));
    }
    let succeeded = wanted == "completed";
    db.execute(
        "UPDATE agent_commands SET status = ?, result = ?, error_message = ?, completed_at = ?,
                updated_at = ?
          WHERE id = ?",
        &[
            Value::from(wanted),
            Value::from(result.as_deref()),
            Value::from(input.error.as_deref()),
            Value::from(now),
            Value::from(now),
            Value::from(command.id.as_str()),
        ],
    )?;
    if let Some(session_id) = command.session_id.as_deref() {
        let reported = input.result.as_ref();
        let outcome = Outcome {
            succeeded,
            error: input.error.clone(),
            url: match command.action {
                Action::Start | Action::Wake if succeeded => session_url(
                    reported.and_then(|r| r.get("url")).and_then(|u| u.as_str()),
                    settings.url_template.as_deref(),
                    session_id,
                ),
                _ => None,
            },
            platform_metadata: reported.and_then(metadata_of),
        };
        lifecycle::apply_outcome(db, now, command.action, session_id, &outcome)?;
    }
    answer(wanted, command.lease_expires_at)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusReport {
    state: String,
    #[serde(default)]
    vnc_ready: Option<bool>,
    #[serde(default)]
    vnc_port: Option<u16>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    platform_metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// `POST /api/v1/agents/{id}/sessions/{session_id}/status`: the agent reports what it sees of
/// one of its own sessions (another agent's, or another org's → 404). Only the transitions of
/// §1.7 are accepted (409 `invalid_state` otherwise); a same-state report refreshes the URL and
/// metadata.
pub async fn status(cx: Cx) -> ApiResult<Response> {
    let agent = cx.agent()?.clone();
    let session_id: String = cx.param("session_id")?;
    let input: StatusReport = cx.json()?;
    let to = State::parse(&input.state)
        .filter(|s| REPORTABLE.contains(s))
        .ok_or_else(|| bad("state must be one of running, hibernated, terminated, failed"))?;
    if input.url.as_deref().is_some_and(|u| https_url(u).is_none()) {
        return Err(bad(
            "url must be an https:// URL of at most 2048 characters",
        ));
    }
    let mut meta = input.platform_metadata.unwrap_or_default();
    if let Some(port) = input.vnc_port {
        meta.insert("vncPort".to_owned(), serde_json::json!(port));
    }
    if let Some(ready) = input.vnc_ready {
        meta.insert("vncReady".to_owned(), serde_json::json!(ready));
    }
    let meta_text = serde_json::Value::Object(meta).to_string();
    if meta_text.len() > 16 * 1024 {
        return Err(bad("platform_metadata must be at most 16 KiB"));
    }
    let settings = settings_of(&cx)?;
    let db = cx.db()?;
    let now = cx.now_ms();
    let load = || -> ApiResult<Session> {
        let rows = db.execute(
            &format!("{SELECT} WHERE s.id = ?2 AND s.org_id = ?3 AND s.agent_id = ?4"),
            &[
                Value::from(now - CONNECTION_LIVE_MS),
                Value::from(session_id.as_str()),
                Value::from(agent.org_id.as_str()),
                Value::from(agent.agent_id.as_str()),
            ],
        )?;
        rows.first()
            .map(|r| Session::from_row(&r))
            .transpose()?
            .ok_or_else(lifecycle::no_such_session)
    };
    let session = load()?;
    if !machine::agent_report_allowed(session.state, to) {
        return Err(ApiError::conflict(
            "invalid_state",
            format!(
                "cannot report {} for a session that is {}",
                to.as_str(),
                session.state.as_str()
            ),
        ));
    }
    let url = if to == State::Running {
        session_url(
            input.url.as_deref(),
            settings.url_template.as_deref(),
            &session.id,
        )
    } else {
        None
    };
    let reason = match (session.state, to) {
        (from, State::Failed | State::Terminated) if from != State::Terminating && from != to => {
            Some("agent_reported".to_owned())
        }
        _ => None,
    };
    let changes = lifecycle::Changes {
        reason,
        url,
        platform_metadata: (meta_text != "{}").then_some(meta_text),
        started: to == State::Running,
        ended: to == State::Terminated,
    };
    if !lifecycle::transition(db, now, &session.id, &[session.state], to, &changes)? {
        let current = load()?;
        return Err(ApiError::conflict(
            "invalid_state",
            format!(
                "the session moved to {} meanwhile; report again",
                current.state.as_str()
            ),
        ));
    }
    Response::ok_json(&load()?.view(true))
}
