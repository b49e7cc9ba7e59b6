//! Connecting to a session: a connection row, a one-time ticket for the agent (the same code as
//! `POST /auth/tickets`), heartbeats, disconnects and the live connections. `active_connections`
//! is always computed from the rows (heartbeat within 60 s), never a counter.

use serde::{Deserialize, Serialize};
use shared::auth::permissions::{can_access, SESSIONS_CREATE, SESSIONS_VIEW};
use shared::auth::tickets::{self, TTL_SECONDS};
use shared::extract::query_value;
use shared::ids::uuid_v4;
use shared::sessions::lifecycle::{self, CONNECTION_LIVE_MS};
use shared::sessions::machine::{State, UserEvent};
use shared::store::{Database, Value};
use shared::time::Timestamp;
use shared::{Access, ApiError, ApiResult, Cx, Response, Route};

use crate::access::{load_for, ops_of, settings_of};

pub fn routes() -> Vec<Route> {
    vec![
        // GET is StreamSpace's form; POST is the same, and CSRF-protected for browsers.
        Route::get("/api/v1/sessions/{id}/connect", Access::User, connect)
            .scope(shared::auth::Scope::Full),
        Route::post("/api/v1/sessions/{id}/connect", Access::User, connect),
        Route::post("/api/v1/sessions/{id}/disconnect", Access::User, disconnect),
        Route::post("/api/v1/sessions/{id}/heartbeat", Access::User, heartbeat),
        Route::get(
            "/api/v1/sessions/{id}/connections",
            Access::User,
            connections,
        ),
    ]
}

#[derive(Serialize)]
struct Connected {
    connection_id: String,
    url: Option<String>,
    ticket: String,
    expires_in: i64,
    state: &'static str,
    ready: bool,
    message: &'static str,
}

fn ended(state: State) -> ApiError {
    ApiError::conflict(
        "invalid_state",
        format!(
            "session has ended or is ending (currently: {})",
            state.as_str()
        ),
    )
}

/// `GET|POST /api/v1/sessions/{id}/connect` → 200 `{connection_id, url, ticket, expires_in,
/// state, ready, message}`. A hibernated session is woken when the caller may operate it.
/// Tickets are minted for login sessions only (403 `login_session_required`).
pub async fn connect(cx: Cx) -> ApiResult<Response> {
    let (user, mut session) = load_for(&cx, SESSIONS_VIEW)?;
    user.require_login_session()?;
    if matches!(
        session.state,
        State::Terminating | State::Terminated | State::Failed
    ) {
        return Err(ended(session.state));
    }
    let settings = settings_of(&cx)?;
    let ops = ops_of(&cx, &settings)?;
    let db = ops.db;
    if session.state == State::Hibernated
        && can_access(
            db,
            &user,
            &session.user_id,
            session.team_id.as_deref(),
            SESSIONS_CREATE,
        )?
    {
        session = lifecycle::hibernate_or_wake(&ops, &session, UserEvent::Wake)?.session;
    }
    let connection_id = uuid_v4(ops.random)?;
    let user_agent: Option<String> = cx
        .head
        .header("user-agent")
        .map(|ua| ua.chars().take(512).collect());
    let now = ops.now;
    let ticket = db.transaction(|db| -> ApiResult<String> {
        db.execute(
            "INSERT INTO session_connections (id, session_id, org_id, user_id, client_ip,
                    user_agent, connected_at, last_heartbeat_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            &[
                Value::from(connection_id.as_str()),
                Value::from(session.id.as_str()),
                Value::from(session.org_id.as_str()),
                Value::from(user.user_id.as_str()),
                Value::from(cx.client_ip.map(|ip| ip.to_string())),
                Value::from(user_agent),
                Value::from(now),
                Value::from(now),
            ],
        )?;
        db.execute(
            "UPDATE sessions SET last_connection_at = ?, last_activity_at = ?, updated_at = ?
              WHERE id = ?",
            &[
                Value::from(now),
                Value::from(now),
                Value::from(now),
                Value::from(session.id.as_str()),
            ],
        )?;
        tickets::mint(
            db,
            ops.random,
            now,
            &user.user_id,
            &user.org_id,
            "session-connect",
            &session.id,
        )
    })?;
    let (ready, message) = match (session.state, session.url.is_some()) {
        (State::Running, true) => (true, "Connection established."),
        (State::Running, false) => (
            false,
            "Connection established. Waiting for session endpoint - please wait.",
        ),
        (State::Hibernated | State::Waking | State::Hibernating, _) => (
            false,
            "Connection established. Session is waking from hibernation - please wait.",
        ),
        _ => (
            false,
            "Connection established. Session is starting up - please wait.",
        ),
    };
    Response::ok_json(&Connected {
        connection_id,
        url: session.url.clone(),
        ticket,
        expires_in: TTL_SECONDS,
        state: session.state.as_str(),
        ready,
        message,
    })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConnectionRef {
    #[serde(default)]
    connection_id: Option<String>,
}

/// The connection id from the body (`connection_id`) or the query (`connection_id`, or
/// StreamSpace's `connectionId`).
fn connection_id(cx: &Cx) -> ApiResult<Option<String>> {
    let from_body = if cx.body.is_empty() {
        None
    } else {
        cx.json::<ConnectionRef>()?.connection_id
    };
    Ok(from_body
        .or_else(|| query_value(&cx.head.query, "connection_id"))
        .or_else(|| query_value(&cx.head.query, "connectionId"))
        .filter(|id| !id.is_empty()))
}

fn live_count(db: &Database, now: i64, session_id: &str) -> ApiResult<i64> {
    let rows = db.execute(
        "SELECT COUNT(*) AS n FROM session_connections
          WHERE session_id = ? AND disconnected_at IS NULL AND last_heartbeat_at > ?",
        &[
            Value::from(session_id),
            Value::from(now - CONNECTION_LIVE_MS),
        ],
    )?;
    Ok(rows.first().map(|r| r.i64("n")).transpose()?.unwrap_or(0))
}

#[derive(Serialize)]
struct Closed {
    message: &'static str,
    active_connections: i64,
}

/// `POST /api/v1/sessions/{id}/disconnect` (`connection_id` in body or query) → 200; an
/// already-closed connection → 200 again; another session's or an unknown one → 404.
pub async fn disconnect(cx: Cx) -> ApiResult<Response> {
    // The session first: another org's is 404 whatever the body says.
    let (_, session) = load_for(&cx, SESSIONS_VIEW)?;
    let id = connection_id(&cx)?
        .ok_or_else(|| ApiError::bad_request("invalid_field", "connectionId parameter required"))?;
    let db = cx.db()?;
    let now = cx.now_ms();
    db.transaction(|db| -> ApiResult<()> {
        let rows = db.execute(
            "UPDATE session_connections SET disconnected_at = coalesce(disconnected_at, ?)
              WHERE id = ? AND session_id = ? RETURNING id",
            &[
                Value::from(now),
                Value::from(id.as_str()),
                Value::from(session.id.as_str()),
            ],
        )?;
        if rows.is_empty() {
            return Err(ApiError::not_found("no such connection for this session"));
        }
        db.execute(
            "UPDATE sessions SET last_disconnect_at = ?, updated_at = ? WHERE id = ?",
            &[
                Value::from(now),
                Value::from(now),
                Value::from(session.id.as_str()),
            ],
        )?;
        Ok(())
    })?;
    Response::ok_json(&Closed {
        message: "Connection closed",
        active_connections: live_count(db, now, &session.id)?,
    })
}

#[derive(Serialize)]
struct Beat {
    status: &'static str,
    active_connections: i64,
    last_activity_at: Timestamp,
}

/// `POST /api/v1/sessions/{id}/heartbeat`: activity on a running session; with a
/// `connection_id`, also that (live) connection's heartbeat (404 `connection_expired` once it
/// has been silent for 60 s).
pub async fn heartbeat(cx: Cx) -> ApiResult<Response> {
    let connection = connection_id(&cx)?;
    let (_, session) = load_for(&cx, SESSIONS_VIEW)?;
    if session.state != State::Running {
        return Err(ApiError::conflict(
            "invalid_state",
            format!(
                "session must be running to record activity (currently: {})",
                session.state.as_str()
            ),
        ));
    }
    let db = cx.db()?;
    let now = cx.now_ms();
    db.transaction(|db| -> ApiResult<()> {
        if let Some(connection) = connection.as_deref() {
            let rows = db.execute(
                "UPDATE session_connections SET last_heartbeat_at = ?
                  WHERE id = ? AND session_id = ? AND disconnected_at IS NULL
                    AND last_heartbeat_at > ?
                  RETURNING id",
                &[
                    Value::from(now),
                    Value::from(connection),
                    Value::from(session.id.as_str()),
                    Value::from(now - CONNECTION_LIVE_MS),
                ],
            )?;
            if rows.is_empty() {
                let known = db.execute(
                    "SELECT EXISTS (SELECT 1 FROM session_connections
                            WHERE id = ? AND session_id = ?) AS known",
                    &[Value::from(connection), Value::from(session.id.as_str())],
                )?;
                let known = known
                    .first()
                    .map(|r| r.i64("known"))
                    .transpose()?
                    .unwrap_or(0);
                return Err(if known != 0 {
                    ApiError::registered(
                        "connection_expired",
                        "the connection is closed or timed out; connect again",
                    )
                } else {
                    ApiError::not_found("no such connection for this session")
                });
            }
        }
        db.execute(
            "UPDATE sessions SET last_activity_at = ?, updated_at = ? WHERE id = ?",
            &[
                Value::from(now),
                Value::from(now),
                Value::from(session.id.as_str()),
            ],
        )?;
        Ok(())
    })?;
    Response::ok_json(&Beat {
        status: "ok",
        active_connections: live_count(db, now, &session.id)?,
        last_activity_at: Timestamp::from_ms(now),
    })
}

#[derive(Serialize)]
struct ConnectionView {
    id: String,
    user_id: String,
    client_ip: Option<String>,
    user_agent: Option<String>,
    connected_at: Timestamp,
    last_heartbeat_at: Timestamp,
}

#[derive(Serialize)]
struct ConnectionList {
    items: Vec<ConnectionView>,
    total: usize,
}

/// `GET /api/v1/sessions/{id}/connections`: the live connections.
pub async fn connections(cx: Cx) -> ApiResult<Response> {
    let (_, session) = load_for(&cx, SESSIONS_VIEW)?;
    let now = cx.now_ms();
    let rows = cx.db()?.execute(
        "SELECT id, user_id, client_ip, user_agent, connected_at, last_heartbeat_at
           FROM session_connections
          WHERE session_id = ? AND disconnected_at IS NULL AND last_heartbeat_at > ?
          ORDER BY connected_at, id LIMIT 1000",
        &[
            Value::from(session.id.as_str()),
            Value::from(now - CONNECTION_LIVE_MS),
        ],
    )?;
    let items = rows
        .iter()
        .map(|r| -> ApiResult<ConnectionView> {
            Ok(ConnectionView {
                id: r.str("id")?.to_owned(),
                user_id: r.str("user_id")?.to_owned(),
                client_ip: r.opt_str("client_ip")?.map(str::to_owned),
                user_agent: r.opt_str("user_agent")?.map(str::to_owned),
                connected_at: Timestamp::from_ms(r.i64("connected_at")?),
                last_heartbeat_at: Timestamp::from_ms(r.i64("last_heartbeat_at")?),
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Response::ok_json(&ConnectionList {
        total: items.len(),
        items,
    })
}
