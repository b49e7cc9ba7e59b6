//! Sessions in the database: the row and its JSON, guarded transitions, the agent command queue,
//! and the domain functions other components call in their own unit of work
//! ([`terminate_all_for_user`], [`fail_all_for_agent`]) or from the maintenance route
//! ([`sweep`]).
//!
//! Every transition is one `UPDATE sessions … WHERE id = ? AND state IN (<from>) RETURNING id`:
//! the check and the write cannot race. A transition and the command it enqueues share a
//! transaction level ([`Database::transaction`]), which inside a request's unit of work is a
//! savepoint of it (so the audit row commits with them).

use serde::Serialize;
use serde_json::json;

use crate::config::Settings;
use crate::error::{ApiError, ApiResult};
use crate::ids::uuid_v4;
use crate::store::{Database, Random, Row, StoreError, Value};
use crate::time::Timestamp;

use super::fields::format_duration;
use super::machine::{self, Action, State, UserEvent, LIVE_SQL};

/// The Kubernetes namespace agents run sessions in (StreamSpace's `DefaultNamespace`).
pub const NAMESPACE: &str = "streamspace";
/// A connection without a heartbeat for this long no longer counts.
pub const CONNECTION_LIVE_MS: i64 = 60_000;
/// An agent silent for this long is offline (three 30 s heartbeat intervals).
pub const AGENT_FRESH_MS: i64 = 90_000;
/// The sweep handles at most this many sessions per rule and call.
pub const SWEEP_BATCH: i64 = 20;
/// A failed stop is re-sent after this long, at most [`STOP_RETRIES`] times.
pub const STOP_RETRY_AFTER_MS: i64 = 300_000;
pub const STOP_RETRIES: i64 = 3;

/// The session variables (SPEC-wave2 §4), read once per request.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    pub lease_seconds: i64,
    pub max_attempts: i64,
    pub poll_interval_seconds: i64,
    pub auto_hibernate: bool,
    pub idle_grace_seconds: i64,
    pub force_cleanup_seconds: i64,
    pub url_template: Option<String>,
    pub platform: Option<String>,
    pub default_idle_timeout_s: u64,
}

impl SessionSettings {
    /// Every variable at its default.
    pub fn defaults() -> Self {
        Self {
            lease_seconds: 60,
            max_attempts: 5,
            poll_interval_seconds: 3,
            auto_hibernate: true,
            idle_grace_seconds: 300,
            force_cleanup_seconds: 600,
            url_template: None,
            platform: None,
            default_idle_timeout_s: 1800,
        }
    }

    /// Reads the variables this component maps; one it does not map keeps its default.
    pub fn read(settings: &Settings<'_>) -> Result<Self, StoreError> {
        let int = |name: &str| settings.int(name);
        let default_idle = settings
            .raw("session_default_idle_timeout")?
            .unwrap_or_else(|| "30m".to_owned());
        Ok(Self {
            lease_seconds: int("agent_command_lease_seconds")?,
            max_attempts: int("agent_command_max_attempts")?,
            poll_interval_seconds: int("agent_poll_interval_seconds")?,
            auto_hibernate: settings.flag("session_auto_hibernate")?.unwrap_or(true),
            idle_grace_seconds: int("session_idle_grace_seconds")?,
            force_cleanup_seconds: int("session_force_cleanup_seconds")?,
            url_template: settings.raw("session_url_template")?,
            platform: settings.raw("session_platform")?,
            default_idle_timeout_s: super::fields::parse_duration(&default_idle).unwrap_or(1800),
        })
    }
}

/// What every lifecycle function needs: the connection, ids, the time and the settings.
pub struct Ops<'a> {
    pub db: &'a Database,
    pub random: &'a dyn Random,
    pub now: i64,
    pub settings: &'a SessionSettings,
}

/// A session row.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub name: String,
    pub org_id: String,
    pub user_id: String,
    pub team_id: Option<String>,
    pub template_name: String,
    pub template_id: String,
    pub app_type: String,
    pub state: State,
    pub cpu: String,
    pub memory: String,
    pub gpu: i64,
    pub persistent_home: bool,
    pub idle_timeout_s: Option<i64>,
    pub max_duration_s: Option<i64>,
    pub agent_id: Option<String>,
    pub url: Option<String>,
    pub streaming_protocol: String,
    pub streaming_port: i64,
    pub streaming_path: String,
    pub platform_metadata: String,
    pub termination_reason: Option<String>,
    pub tags: Vec<String>,
    pub active_connections: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    pub last_activity_at: Option<i64>,
    pub last_connection_at: Option<i64>,
    pub last_disconnect_at: Option<i64>,
    pub terminated_at: Option<i64>,
}

/// The session columns, for `FROM sessions s`. Parameter `?1` is the live-connection cutoff
/// (`now - 60 s`); queries built on it number their own parameters from `?2`.
pub const SELECT: &str = "SELECT s.id, s.name, s.org_id, s.user_id, s.team_id, s.template_name,
    s.template_id, s.app_type, s.state, s.cpu, s.memory, s.gpu, s.persistent_home,
    s.idle_timeout_s, s.max_duration_s, s.agent_id, s.url, s.streaming_protocol,
    s.streaming_port, s.streaming_path, s.platform_metadata, s.termination_reason, s.created_at,
    s.updated_at, s.started_at, s.last_activity_at, s.last_connection_at, s.last_disconnect_at,
    s.terminated_at,
    (SELECT group_concat(tag, ',') FROM (SELECT tag FROM session_tags t
        WHERE t.session_id = s.id ORDER BY tag)) AS tags,
    CASE WHEN s.state IN ('terminated', 'failed') THEN 0
        ELSE (SELECT COUNT(*) FROM session_connections c WHERE c.session_id = s.id
              AND c.disconnected_at IS NULL AND c.last_heartbeat_at > ?1)
    END AS active_connections
    FROM sessions s";

impl Session {
    pub fn from_row(row: &Row<'_>) -> Result<Self, StoreError> {
        let text = |c: &str| row.str(c).map(str::to_owned);
        let opt = |c: &str| row.opt_str(c).map(|v| v.map(str::to_owned));
        let state = row.str("state")?;
        Ok(Self {
            id: text("id")?,
            name: text("name")?,
            org_id: text("org_id")?,
            user_id: text("user_id")?,
            team_id: opt("team_id")?,
            template_name: text("template_name")?,
            template_id: text("template_id")?,
            app_type: text("app_type")?,
            state: State::parse(state)
                .ok_or_else(|| StoreError::sqlite(format!("sessions.state `{state}`")))?,
            cpu: text("cpu")?,
            memory: text("memory")?,
            gpu: row.i64("gpu")?,
            persistent_home: row.i64("persistent_home")? != 0,
            idle_timeout_s: row.opt_i64("idle_timeout_s")?,
            max_duration_s: row.opt_i64("max_duration_s")?,
            agent_id: opt("agent_id")?,
            url: opt("url")?,
            streaming_protocol: text("streaming_protocol")?,
            streaming_port: row.i64("streaming_port")?,
            streaming_path: text("streaming_path")?,
            platform_metadata: text("platform_metadata")?,
            termination_reason: opt("termination_reason")?,
            tags: row
                .opt_str("tags")?
                .filter(|t| !t.is_empty())
                .map(|t| t.split(',').map(str::to_owned).collect())
                .unwrap_or_default(),
            active_connections: row.i64("active_connections")?,
            created_at: row.i64("created_at")?,
            updated_at: row.i64("updated_at")?,
            started_at: row.opt_i64("started_at")?,
            last_activity_at: row.opt_i64("last_activity_at")?,
            last_connection_at: row.opt_i64("last_connection_at")?,
            last_disconnect_at: row.opt_i64("last_disconnect_at")?,
            terminated_at: row.opt_i64("terminated_at")?,
        })
    }

    /// The session JSON (SPEC-wave2 §1.2); `platform_metadata` only for admins.
    pub fn view(&self, admin: bool) -> SessionView {
        let ts = |v: Option<i64>| v.map(Timestamp::from_ms);
        let secs = |v: Option<i64>| v.and_then(|s| u64::try_from(s).ok()).map(format_duration);
        SessionView {
            id: self.id.clone(),
            name: self.name.clone(),
            org_id: self.org_id.clone(),
            user_id: self.user_id.clone(),
            team_id: self.team_id.clone(),
            template: self.template_name.clone(),
            template_id: self.template_id.clone(),
            app_type: self.app_type.clone(),
            state: self.state.as_str(),
            resources: Resources {
                cpu: self.cpu.clone(),
                memory: self.memory.clone(),
                gpu: self.gpu,
            },
            persistent_home: self.persistent_home,
            idle_timeout: secs(self.idle_timeout_s),
            max_session_duration: secs(self.max_duration_s),
            tags: self.tags.clone(),
            agent_id: self.agent_id.clone(),
            url: self.url.clone(),
            streaming: Streaming {
                protocol: self.streaming_protocol.clone(),
                port: self.streaming_port,
                path: self.streaming_path.clone(),
            },
            active_connections: self.active_connections,
            termination_reason: self.termination_reason.clone(),
            platform_metadata: admin
                .then(|| serde_json::from_str(&self.platform_metadata).unwrap_or(json!({}))),
            created_at: Timestamp::from_ms(self.created_at),
            updated_at: Timestamp::from_ms(self.updated_at),
            started_at: ts(self.started_at),
            last_activity_at: ts(self.last_activity_at),
            last_connection_at: ts(self.last_connection_at),
            last_disconnect_at: ts(self.last_disconnect_at),
            terminated_at: ts(self.terminated_at),
            command_id: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Resources {
    pub cpu: String,
    pub memory: String,
    pub gpu: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Streaming {
    pub protocol: String,
    pub port: i64,
    pub path: String,
}

/// What clients see of a session.
#[derive(Debug, Clone, Serialize)]
pub struct SessionView {
    pub id: String,
    pub name: String,
    pub org_id: String,
    pub user_id: String,
    pub team_id: Option<String>,
    pub template: String,
    pub template_id: String,
    pub app_type: String,
    pub state: &'static str,
    pub resources: Resources,
    pub persistent_home: bool,
    pub idle_timeout: Option<String>,
    pub max_session_duration: Option<String>,
    pub tags: Vec<String>,
    pub agent_id: Option<String>,
    pub url: Option<String>,
    pub streaming: Streaming,
    pub active_connections: i64,
    pub termination_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform_metadata: Option<serde_json::Value>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub last_activity_at: Option<Timestamp>,
    pub last_connection_at: Option<Timestamp>,
    pub last_disconnect_at: Option<Timestamp>,
    pub terminated_at: Option<Timestamp>,
    /// The `start_session` command, in the answer of `POST /sessions` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
}

pub fn no_such_session() -> ApiError {
    ApiError::not_found("no such session")
}

/// A session of `org_id`, or `None` (a foreign org's session is simply not found).
pub fn load(
    db: &Database,
    now: i64,
    org_id: &str,
    id: &str,
) -> Result<Option<Session>, StoreError> {
    let rows = db.execute(
        &format!("{SELECT} WHERE s.id = ?2 AND s.org_id = ?3"),
        &[
            Value::from(now - CONNECTION_LIVE_MS),
            Value::from(id),
            Value::from(org_id),
        ],
    )?;
    rows.first().map(|r| Session::from_row(&r)).transpose()
}

/// [`load`], 404 when absent.
pub fn require(db: &Database, now: i64, org_id: &str, id: &str) -> ApiResult<Session> {
    load(db, now, org_id, id)?.ok_or_else(no_such_session)
}

fn states_sql(states: &[State]) -> String {
    let list: Vec<String> = states.iter().map(|s| format!("'{}'", s.as_str())).collect();
    format!("({})", list.join(","))
}

/// Extra assignments of a transition, beside `state`, `state_changed_at` and `updated_at`.
#[derive(Debug, Default, Clone)]
pub struct Changes {
    pub reason: Option<String>,
    pub url: Option<String>,
    pub platform_metadata: Option<String>,
    pub started: bool,
    pub ended: bool,
}

/// Moves session `id` from one of `from` to `to` in one guarded statement. `false` when the
/// session was not in `from` (it moved on, or never was).
pub fn transition(
    db: &Database,
    now: i64,
    id: &str,
    from: &[State],
    to: State,
    changes: &Changes,
) -> Result<bool, StoreError> {
    let rows = db.execute(
        &format!(
            "UPDATE sessions SET state = ?1, state_changed_at = ?2, updated_at = ?2,
                    termination_reason = coalesce(?3, termination_reason),
                    url = coalesce(?4, url),
                    platform_metadata = coalesce(?5, platform_metadata),
                    started_at = CASE WHEN ?6 THEN coalesce(started_at, ?2) ELSE started_at END,
                    terminated_at = CASE WHEN ?7 THEN coalesce(terminated_at, ?2) ELSE terminated_at END
              WHERE id = ?8 AND state IN {}
              RETURNING id",
            states_sql(from)
        ),
        &[
            Value::from(to.as_str()),
            Value::from(now),
            Value::from(changes.reason.as_deref()),
            Value::from(changes.url.as_deref()),
            Value::from(changes.platform_metadata.as_deref()),
            Value::from(i64::from(changes.started)),
            Value::from(i64::from(changes.ended)),
            Value::from(id),
        ],
    )?;
    Ok(!rows.is_empty())
}

/// Appends a command to the agent's queue; returns its id.
pub fn enqueue(
    ops: &Ops<'_>,
    org_id: &str,
    agent_id: &str,
    session_id: &str,
    action: Action,
    payload: &serde_json::Value,
) -> Result<String, StoreError> {
    let id = uuid_v4(ops.random)?;
    ops.db.execute(
        "INSERT INTO agent_commands (id, seq, org_id, agent_id, session_id, action, payload,
                status, max_attempts, created_at, updated_at)
         VALUES (?1, (SELECT coalesce(max(seq), 0) + 1 FROM agent_commands), ?2, ?3, ?4, ?5, ?6,
                'pending', ?7, ?8, ?8)",
        &[
            Value::from(id.as_str()),
            Value::from(org_id),
            Value::from(agent_id),
            Value::from(session_id),
            Value::from(action.as_str()),
            Value::from(payload.to_string()),
            Value::from(ops.settings.max_attempts),
            Value::from(ops.now),
        ],
    )?;
    Ok(id)
}

/// `{"sessionId","namespace"}`: the payload of stop, hibernate and wake.
pub fn short_payload(session_id: &str) -> serde_json::Value {
    json!({"sessionId": session_id, "namespace": NAMESPACE})
}

/// Whether the agent can still take commands: it exists, is not revoked and is registered.
pub fn agent_usable(db: &Database, agent_id: Option<&str>) -> Result<bool, StoreError> {
    let Some(agent_id) = agent_id else {
        return Ok(false);
    };
    let rows = db.execute(
        "SELECT EXISTS (SELECT 1 FROM agents WHERE id = ?1 AND revoked_at IS NULL
                AND registered_at IS NOT NULL) AS ok",
        &[Value::from(agent_id)],
    )?;
    Ok(rows.first().map(|r| r.i64("ok")).transpose()?.unwrap_or(0) != 0)
}

/// Cancels the session's commands that were never delivered (optionally only `actions`).
fn cancel_undelivered(
    db: &Database,
    now: i64,
    session_id: &str,
    actions: &[Action],
) -> Result<Vec<String>, StoreError> {
    let list: Vec<String> = actions
        .iter()
        .map(|a| format!("'{}'", a.as_str()))
        .collect();
    let rows = db.execute(
        &format!(
            "UPDATE agent_commands SET status = 'cancelled', updated_at = ?1,
                    error_message = 'session ended before delivery'
              WHERE session_id = ?2 AND status = 'pending' AND action IN ({})
              RETURNING id",
            list.join(",")
        ),
        &[Value::from(now), Value::from(session_id)],
    )?;
    rows.decode(|r| r.str("id").map(str::to_owned))
}

/// The result of a user-driven step: the session after it and the command enqueued, if any.
#[derive(Debug, Clone)]
pub struct Stepped {
    pub session: Session,
    pub command_id: Option<String>,
}

fn agent_unavailable() -> ApiError {
    ApiError::conflict(
        "agent_unavailable",
        "the session's agent is revoked or deleted; it can only be deleted",
    )
}

/// Hibernate or wake (routes, `PATCH {state}`, connect, the idle sweep): the guarded step and
/// its command in one transaction level. 409 `invalid_state` from any other state, 409
/// `agent_unavailable` when its agent is gone.
pub fn hibernate_or_wake(ops: &Ops<'_>, session: &Session, event: UserEvent) -> ApiResult<Stepped> {
    let step = machine::user_step(event, session.state)?;
    if !agent_usable(ops.db, session.agent_id.as_deref())? {
        return Err(agent_unavailable());
    }
    let agent_id = session.agent_id.clone().unwrap_or_default();
    let db = ops.db;
    let command_id = db.transaction(|db| -> ApiResult<Option<String>> {
        if !transition(
            db,
            ops.now,
            &session.id,
            step.from,
            step.to,
            &Changes::default(),
        )? {
            let current = require(db, ops.now, &session.org_id, &session.id)?;
            return Err(machine::invalid_state(event, current.state));
        }
        step.command
            .map(|action| {
                enqueue(
                    ops,
                    &session.org_id,
                    &agent_id,
                    &session.id,
                    action,
                    &short_payload(&session.id),
                )
            })
            .transpose()
            .map_err(ApiError::from)
    })?;
    Ok(Stepped {
        session: require(db, ops.now, &session.org_id, &session.id)?,
        command_id,
    })
}

/// Ends a session (DELETE, `PATCH {state:"terminated"}`, max duration, the owner disabled):
/// - `terminated` → 409;
/// - `terminating` → unchanged, with the stop command already queued (idempotent);
/// - the agent is gone → `terminated` (`agent_unavailable`), its commands cancelled;
/// - `pending` whose start was never delivered → `terminated` directly, the start cancelled;
/// - `failed` → `terminated` (+ stop if anything was ever delivered to the agent);
/// - otherwise → `terminating` + `stop_session`.
pub fn terminate(ops: &Ops<'_>, session: &Session, reason: &str) -> ApiResult<Stepped> {
    machine::user_step(UserEvent::Terminate, session.state)?;
    let db = ops.db;
    let now = ops.now;
    let id = session.id.as_str();
    let command_id = db.transaction(|db| -> ApiResult<Option<String>> {
        let ended = |from: &[State], reason: &str| -> ApiResult<bool> {
            Ok(transition(
                db,
                now,
                id,
                from,
                State::Terminated,
                &Changes {
                    reason: Some(reason.to_owned()),
                    ended: true,
                    ..Changes::default()
                },
            )?)
        };
        if session.state == State::Terminating {
            return Ok(latest_command(db, id, Action::Stop)?);
        }
        let usable = agent_usable(db, session.agent_id.as_deref())?;
        if !usable {
            let from: Vec<State> = machine::ALL_STATES
                .into_iter()
                .filter(|s| *s != State::Terminated)
                .collect();
            if !ended(&from, "agent_unavailable")? {
                return Err(gone_meanwhile(db, now, session));
            }
            cancel_unfinished(db, now, id)?;
            return Ok(None);
        }
        if session.state == State::Failed {
            if !ended(&[State::Failed], reason)? {
                return Err(gone_meanwhile(db, now, session));
            }
            let delivered = db.execute(
                "SELECT EXISTS (SELECT 1 FROM agent_commands WHERE session_id = ?1
                        AND first_delivered_at IS NOT NULL) AS d",
                &[Value::from(id)],
            )?;
            let delivered = delivered
                .first()
                .map(|r| r.i64("d"))
                .transpose()?
                .unwrap_or(0)
                != 0;
            return Ok(if delivered {
                Some(stop_command(ops, session, false)?)
            } else {
                None
            });
        }
        if session.state == State::Pending
            && !cancel_undelivered(db, now, id, &[Action::Start])?.is_empty()
        {
            if !ended(&[State::Pending], reason)? {
                return Err(gone_meanwhile(db, now, session));
            }
            return Ok(None);
        }
        let changes = Changes {
            reason: Some(reason.to_owned()),
            ..Changes::default()
        };
        let live = [
            State::Pending,
            State::Running,
            State::Hibernating,
            State::Hibernated,
            State::Waking,
        ];
        if !transition(db, now, id, &live, State::Terminating, &changes)? {
            return Err(gone_meanwhile(db, now, session));
        }
        cancel_undelivered(db, now, id, &[Action::Hibernate, Action::Wake])?;
        Ok(Some(stop_command(ops, session, false)?))
    })?;
    Ok(Stepped {
        session: require(db, now, &session.org_id, id)?,
        command_id,
    })
}

/// The session moved while we decided: answer from its current state.
fn gone_meanwhile(db: &Database, now: i64, session: &Session) -> ApiError {
    match require(db, now, &session.org_id, &session.id) {
        Ok(current) => machine::invalid_state(UserEvent::Terminate, current.state),
        Err(e) => e,
    }
}

fn stop_command(ops: &Ops<'_>, session: &Session, retry: bool) -> Result<String, StoreError> {
    let mut payload = short_payload(&session.id);
    if retry {
        payload["deletePVC"] = json!(false);
    }
    enqueue(
        ops,
        &session.org_id,
        session.agent_id.as_deref().unwrap_or_default(),
        &session.id,
        Action::Stop,
        &payload,
    )
}

fn latest_command(
    db: &Database,
    session_id: &str,
    action: Action,
) -> Result<Option<String>, StoreError> {
    let rows = db.execute(
        "SELECT id FROM agent_commands WHERE session_id = ?1 AND action = ?2
          ORDER BY seq DESC LIMIT 1",
        &[Value::from(session_id), Value::from(action.as_str())],
    )?;
    rows.first()
        .map(|r| r.str("id").map(str::to_owned))
        .transpose()
}

/// Cancels every unfinished command of a session.
fn cancel_unfinished(db: &Database, now: i64, session_id: &str) -> Result<(), StoreError> {
    db.execute(
        "UPDATE agent_commands SET status = 'cancelled', updated_at = ?1,
                error_message = coalesce(error_message, 'agent unavailable')
          WHERE session_id = ?2 AND status IN ('pending', 'leased', 'acknowledged')",
        &[Value::from(now), Value::from(session_id)],
    )?;
    Ok(())
}

/// A UUIDv4 computed by SQLite (for commands inserted by `INSERT … SELECT`, one per row).
const SQL_UUID_V4: &str = "lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4'
    || substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1)
    || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))";

/// Disabling or deleting a user ends its sessions, in the caller's unit of work, as guarded
/// statements over all of them at once (the same outcomes as [`terminate`], session by session):
/// - the agent is gone → `terminated` (`agent_unavailable`), its commands cancelled;
/// - `pending` with nothing delivered yet → `terminated`, the start cancelled;
/// - `failed` → `terminated` (+ `stop_session` if anything was ever delivered);
/// - every other live session → `terminating` + `stop_session`.
///
/// Returns how many sessions it ended.
pub fn terminate_all_for_user(
    ops: &Ops<'_>,
    user_id: &str,
    reason: &str,
) -> Result<u64, StoreError> {
    let db = ops.db;
    let usable = "EXISTS (SELECT 1 FROM agents a WHERE a.id = s.agent_id
                    AND a.revoked_at IS NULL AND a.registered_at IS NOT NULL)";
    let delivered = "EXISTS (SELECT 1 FROM agent_commands c WHERE c.session_id = s.id
                    AND c.first_delivered_at IS NOT NULL)";
    let end = |condition: &str, to: &str, why: &str| -> Result<u64, StoreError> {
        let rows = db.execute(
            &format!(
                "UPDATE sessions AS s SET state = '{to}', termination_reason = ?1,
                        state_changed_at = ?2, updated_at = ?2,
                        terminated_at = CASE WHEN '{to}' = 'terminated'
                                             THEN coalesce(terminated_at, ?2) END
                  WHERE s.user_id = ?3 AND {condition} RETURNING id"
            ),
            &[Value::from(why), Value::from(ops.now), Value::from(user_id)],
        )?;
        Ok(u64::try_from(rows.len()).unwrap_or(0))
    };
    let stops = |condition: &str| -> Result<(), StoreError> {
        db.execute(
            &format!(
                "INSERT INTO agent_commands (id, seq, org_id, agent_id, session_id, action,
                        payload, status, max_attempts, created_at, updated_at)
                 SELECT {SQL_UUID_V4},
                        (SELECT coalesce(max(seq), 0) FROM agent_commands)
                            + row_number() OVER (ORDER BY s.id),
                        s.org_id, s.agent_id, s.id, 'stop_session',
                        json_object('sessionId', s.id, 'namespace', '{NAMESPACE}'),
                        'pending', ?1, ?2, ?2
                   FROM sessions s WHERE s.user_id = ?3 AND {condition}"
            ),
            &[
                Value::from(ops.settings.max_attempts),
                Value::from(ops.now),
                Value::from(user_id),
            ],
        )?;
        Ok(())
    };
    let mut ended = end(
        &format!("s.state IN {LIVE_SQL} AND s.state <> 'terminating' AND NOT {usable}"),
        "terminated",
        "agent_unavailable",
    )?;
    ended += end(
        &format!("s.state = 'pending' AND NOT {delivered}"),
        "terminated",
        reason,
    )?;
    stops(&format!("s.state = 'failed' AND {usable} AND {delivered}"))?;
    ended += end("s.state = 'failed'", "terminated", reason)?;
    let live = "s.state IN ('pending', 'running', 'hibernating', 'hibernated', 'waking')";
    stops(live)?;
    ended += end(live, "terminating", reason)?;
    // What can no longer happen: anything undelivered but the stops, and everything of the
    // sessions that ended outright.
    db.execute(
        "UPDATE agent_commands SET status = 'cancelled', updated_at = ?1,
                error_message = 'session ended before delivery'
          WHERE session_id IN (SELECT id FROM sessions WHERE user_id = ?2)
            AND ((status = 'pending' AND action <> 'stop_session')
                 OR (status IN ('pending', 'leased', 'acknowledged')
                     AND session_id IN (SELECT id FROM sessions WHERE user_id = ?2
                                          AND state = 'terminated')
                     AND action <> 'stop_session'))",
        &[Value::from(ops.now), Value::from(user_id)],
    )?;
    Ok(ended)
}

/// Revoking or deleting an agent: its live sessions end (`pending` → `failed`, the others →
/// `terminated`, reason `agent_unavailable`) and its unfinished commands are cancelled. Two
/// single statements, in the caller's unit of work.
pub fn fail_all_for_agent(db: &Database, now: i64, agent_id: &str) -> Result<u64, StoreError> {
    let rows = db.execute(
        &format!(
            "UPDATE sessions
                SET state = CASE WHEN state = 'pending' THEN 'failed' ELSE 'terminated' END,
                    termination_reason = 'agent_unavailable', state_changed_at = ?1,
                    updated_at = ?1,
                    terminated_at = CASE WHEN state = 'pending' THEN terminated_at ELSE ?1 END
              WHERE agent_id = ?2 AND state IN {LIVE_SQL}
              RETURNING id"
        ),
        &[Value::from(now), Value::from(agent_id)],
    )?;
    db.execute(
        "UPDATE agent_commands SET status = 'cancelled', updated_at = ?1,
                error_message = 'agent revoked'
          WHERE agent_id = ?2 AND status IN ('pending', 'leased', 'acknowledged')",
        &[Value::from(now), Value::from(agent_id)],
    )?;
    Ok(u64::try_from(rows.len()).unwrap_or(0))
}

// ---------------------------------------------------------------------------------------------
// The agent's side: outcomes of commands and status reports.

/// A command row as the agent's routes need it.
#[derive(Debug, Clone)]
pub struct Command {
    pub id: String,
    pub agent_id: String,
    pub session_id: Option<String>,
    pub action: Action,
    pub status: String,
    pub attempts: i64,
    pub lease_expires_at: Option<i64>,
    pub first_delivered_at: Option<i64>,
}

impl Command {
    pub const COLUMNS: &'static str =
        "id, agent_id, session_id, action, status, attempts, lease_expires_at, first_delivered_at";

    pub fn from_row(row: &Row<'_>) -> Result<Self, StoreError> {
        let action = row.str("action")?;
        Ok(Self {
            id: row.str("id")?.to_owned(),
            agent_id: row.str("agent_id")?.to_owned(),
            session_id: row.opt_str("session_id")?.map(str::to_owned),
            action: Action::parse(action)
                .ok_or_else(|| StoreError::sqlite(format!("agent_commands.action `{action}`")))?,
            status: row.str("status")?.to_owned(),
            attempts: row.i64("attempts")?,
            lease_expires_at: row.opt_i64("lease_expires_at")?,
            first_delivered_at: row.opt_i64("first_delivered_at")?,
        })
    }
}

/// What a finished command tells about its session.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub succeeded: bool,
    pub error: Option<String>,
    pub url: Option<String>,
    pub platform_metadata: Option<String>,
}

/// Applies a finished command to its session (the failure mapping of §1.7). A session that has
/// moved on is left alone. Runs inside the caller's transaction level.
pub fn apply_outcome(
    db: &Database,
    now: i64,
    action: Action,
    session_id: &str,
    outcome: &Outcome,
) -> Result<bool, StoreError> {
    let Some((from, to)) = machine::on_command_finished(action, outcome.succeeded) else {
        return Ok(false);
    };
    let changes = Changes {
        reason: match (action, outcome.succeeded) {
            (Action::Start, false) => Some(format!(
                "start_failed: {}",
                outcome.error.as_deref().unwrap_or("unknown error")
            )),
            _ => None,
        },
        url: outcome.url.clone(),
        platform_metadata: outcome.platform_metadata.clone(),
        started: to == State::Running,
        ended: to == State::Terminated,
    };
    transition(db, now, session_id, &[from], to, &changes)
}

/// Fails this agent's commands whose lease expired with no attempts left, applying the failure
/// mapping to their sessions.
pub fn fail_exhausted(db: &Database, now: i64, agent_id: &str) -> Result<usize, StoreError> {
    // Almost every poll finds none: a read first, so the common case takes no write lock.
    let due = db.execute(
        "SELECT EXISTS (SELECT 1 FROM agent_commands WHERE agent_id = ?1
                AND attempts >= max_attempts AND status IN ('leased', 'acknowledged')
                AND lease_expires_at <= ?2) AS due",
        &[Value::from(agent_id), Value::from(now)],
    )?;
    if due.first().map(|r| r.i64("due")).transpose()?.unwrap_or(0) == 0 {
        return Ok(0);
    }
    db.transaction(|db| {
        let rows = db.execute(
            "UPDATE agent_commands SET status = 'failed', completed_at = ?1, updated_at = ?1,
                    error_message = 'delivery attempts exhausted'
              WHERE agent_id = ?2 AND attempts >= max_attempts
                AND status IN ('leased', 'acknowledged') AND lease_expires_at <= ?1
              RETURNING action, session_id",
            &[Value::from(now), Value::from(agent_id)],
        )?;
        let failed = Outcome {
            succeeded: false,
            error: Some("delivery attempts exhausted".to_owned()),
            ..Outcome::default()
        };
        for row in rows.iter() {
            if let (Some(action), Some(session_id)) = (
                Action::parse(row.str("action")?),
                row.opt_str("session_id")?,
            ) {
                apply_outcome(db, now, action, session_id, &failed)?;
            }
        }
        Ok(rows.len())
    })
}

/// A leased command as the agent receives it.
#[derive(Debug, Clone, Serialize)]
pub struct Leased {
    pub command_id: String,
    pub action: String,
    pub session_id: Option<String>,
    pub payload: serde_json::Value,
    pub attempt: i64,
    pub lease_expires_at: Timestamp,
    pub created_at: Timestamp,
}

/// Leases up to `limit` of the agent's deliverable commands in one statement: pending ones and
/// ones whose lease expired, with attempts left, only the oldest unfinished per session (so a
/// stop waits for an in-flight start), in queue order.
pub fn lease(
    db: &Database,
    now: i64,
    org_id: &str,
    agent_id: &str,
    lease_seconds: i64,
    limit: i64,
) -> Result<Vec<Leased>, StoreError> {
    let rows = db.execute(
        "UPDATE agent_commands SET status = 'leased', attempts = attempts + 1,
                lease_expires_at = ?1 + ?2, first_delivered_at = coalesce(first_delivered_at, ?1),
                updated_at = ?1
          WHERE id IN (SELECT c.id FROM agent_commands c
                        WHERE c.agent_id = ?3 AND c.org_id = ?4 AND c.attempts < c.max_attempts
                          AND (c.status = 'pending'
                               OR (c.status IN ('leased', 'acknowledged') AND c.lease_expires_at <= ?1))
                          AND NOT EXISTS (SELECT 1 FROM agent_commands p
                                           WHERE p.session_id = c.session_id AND p.seq < c.seq
                                             AND p.status IN ('pending', 'leased', 'acknowledged'))
                        ORDER BY c.seq LIMIT ?5)
          RETURNING id, seq, action, session_id, payload, attempts, lease_expires_at, created_at",
        &[
            Value::from(now),
            Value::from(lease_seconds * 1000),
            Value::from(agent_id),
            Value::from(org_id),
            Value::from(limit),
        ],
    )?;
    let mut leased: Vec<(i64, Leased)> = rows
        .iter()
        .map(|r| -> Result<(i64, Leased), StoreError> {
            Ok((
                r.i64("seq")?,
                Leased {
                    command_id: r.str("id")?.to_owned(),
                    action: r.str("action")?.to_owned(),
                    session_id: r.opt_str("session_id")?.map(str::to_owned),
                    payload: serde_json::from_str(r.str("payload")?).map_err(|e| {
                        StoreError::sqlite(format!("agent_commands.payload is not JSON: {e}"))
                    })?,
                    attempt: r.i64("attempts")?,
                    lease_expires_at: Timestamp::from_ms(r.i64("lease_expires_at")?),
                    created_at: Timestamp::from_ms(r.i64("created_at")?),
                },
            ))
        })
        .collect::<Result<_, _>>()?;
    // RETURNING gives no order: deliver in queue order.
    leased.sort_by_key(|(seq, _)| *seq);
    Ok(leased.into_iter().map(|(_, l)| l).collect())
}

// ---------------------------------------------------------------------------------------------
// The sweep (no background work on Spin): run from agent polls and the maintenance route.

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Swept {
    pub hibernated_idle: usize,
    pub ended_max_duration: usize,
    pub reverted_stuck: usize,
    pub stops_resent: usize,
    pub exhausted_commands: usize,
}

/// The lazy sweep of §1.8, bounded to [`SWEEP_BATCH`] sessions per rule: for one agent's
/// sessions (`agent_id`), or for all.
pub fn sweep(ops: &Ops<'_>, agent_id: Option<&str>) -> ApiResult<Swept> {
    let db = ops.db;
    let now = ops.now;
    let cfg = ops.settings;
    let mut swept = Swept::default();
    let by_agent = "(?2 IS NULL OR s.agent_id = ?2)";
    let select = |condition: &str, extra: &[Value]| -> Result<Vec<Session>, StoreError> {
        let mut params = vec![
            Value::from(now - CONNECTION_LIVE_MS),
            Value::from(agent_id),
            Value::from(now),
        ];
        params.extend_from_slice(extra);
        let rows = db.execute(
            &format!("{SELECT} WHERE {by_agent} AND {condition} LIMIT {SWEEP_BATCH}"),
            &params,
        )?;
        rows.decode(Session::from_row)
    };
    // Idle auto-hibernate: running, an idle timeout, no live connection, idle long enough.
    if cfg.auto_hibernate {
        let idle = select(
            "s.state = 'running' AND s.idle_timeout_s IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM session_connections c WHERE c.session_id = s.id
                    AND c.disconnected_at IS NULL AND c.last_heartbeat_at > ?1)
             AND ?3 - max(coalesce(s.last_activity_at, 0), coalesce(s.last_connection_at, 0),
                          coalesce(s.started_at, 0), s.created_at)
                 >= (s.idle_timeout_s + ?4) * 1000",
            &[Value::from(cfg.idle_grace_seconds)],
        )?;
        for session in &idle {
            if ok_or_conflict(hibernate_or_wake(ops, session, UserEvent::Hibernate))? {
                swept.hibernated_idle += 1;
            }
        }
    }
    // Max duration.
    let expired = select(
        "s.state IN ('pending','running','hibernating','hibernated','waking')
         AND s.max_duration_s IS NOT NULL AND s.started_at IS NOT NULL
         AND ?3 - s.started_at >= s.max_duration_s * 1000",
        &[],
    )?;
    for session in &expired {
        if ok_or_conflict(terminate(ops, session, "max_duration"))? {
            swept.ended_max_duration += 1;
        }
    }
    // Stuck in a transitional state with the agent offline.
    let offline = "NOT EXISTS (SELECT 1 FROM agents a WHERE a.id = s.agent_id
                      AND a.revoked_at IS NULL AND a.last_heartbeat_at > ?3 - ?5)";
    let stuck = select(
        &format!(
            "s.state IN ('pending','terminating','hibernating','waking')
             AND s.state_changed_at < ?3 - ?4 * 1000 AND {offline}"
        ),
        &[
            Value::from(cfg.force_cleanup_seconds),
            Value::from(AGENT_FRESH_MS),
        ],
    )?;
    for session in &stuck {
        let (to, reason, ended) = match session.state {
            State::Pending => (State::Failed, Some("agent_unavailable"), false),
            State::Terminating => (State::Terminated, Some("agent_unavailable"), true),
            State::Hibernating => (State::Running, None, false),
            _ => (State::Hibernated, None, false),
        };
        let moved = db.transaction(|db| -> Result<bool, StoreError> {
            let moved = transition(
                db,
                now,
                &session.id,
                &[session.state],
                to,
                &Changes {
                    reason: reason.map(str::to_owned),
                    ended,
                    ..Changes::default()
                },
            )?;
            if moved {
                cancel_unfinished(db, now, &session.id)?;
            }
            Ok(moved)
        })?;
        if moved {
            swept.reverted_stuck += 1;
        }
    }
    // A stop that failed: re-send it after a while, a few times, then give up.
    let failed_stops = select(
        &format!(
            "s.state = 'terminating' AND s.updated_at < ?3 - {STOP_RETRY_AFTER_MS}
             AND NOT EXISTS (SELECT 1 FROM agent_commands p WHERE p.session_id = s.id
                    AND p.status IN ('pending', 'leased', 'acknowledged'))"
        ),
        &[],
    )?;
    for session in &failed_stops {
        let resent = db.transaction(|db| -> ApiResult<bool> {
            let rows = db.execute(
                &format!(
                    "UPDATE sessions SET stop_retries = stop_retries + 1, updated_at = ?1
                      WHERE id = ?2 AND state = 'terminating' AND stop_retries < {STOP_RETRIES}
                      RETURNING id"
                ),
                &[Value::from(now), Value::from(session.id.as_str())],
            )?;
            if rows.is_empty() {
                transition(
                    db,
                    now,
                    &session.id,
                    &[State::Terminating],
                    State::Terminated,
                    &Changes {
                        reason: Some("stop_failed".to_owned()),
                        ended: true,
                        ..Changes::default()
                    },
                )?;
                return Ok(false);
            }
            if agent_usable(db, session.agent_id.as_deref())? {
                stop_command(ops, session, true)?;
            }
            Ok(true)
        })?;
        if resent {
            swept.stops_resent += 1;
        }
    }
    Ok(swept)
}

/// A sweep step that lost a race (409) did nothing; anything else is an error.
fn ok_or_conflict(result: ApiResult<Stepped>) -> ApiResult<bool> {
    match result {
        Ok(_) => Ok(true),
        Err(e) if e.status.as_u16() == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Deletes history the maintenance purge no longer keeps: finished commands older than 30 days
/// and ended connections older than 7 days. Returns (commands, connections) deleted.
pub fn purge_history(db: &Database, now: i64) -> Result<(u64, u64), StoreError> {
    const DAY: i64 = 86_400_000;
    let commands = db.execute(
        "DELETE FROM agent_commands WHERE status IN ('completed', 'failed', 'cancelled')
            AND updated_at < ?1 RETURNING id",
        &[Value::from(now - 30 * DAY)],
    )?;
    let connections = db.execute(
        "DELETE FROM session_connections
          WHERE coalesce(disconnected_at, last_heartbeat_at) < ?1 RETURNING id",
        &[Value::from(now - 7 * DAY)],
    )?;
    Ok((
        u64::try_from(commands.len()).unwrap_or(0),
        u64::try_from(connections.len()).unwrap_or(0),
    ))
}
