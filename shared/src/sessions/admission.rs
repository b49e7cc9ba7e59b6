//! Atomic admission of a new session (SPEC-wave2 §1.4): the owner's usage, the quota check, the
//! license's session count, the agent choice and the inserts (session, tags, `start_session`)
//! run in one transaction level that takes the write lock before its first read, so N concurrent
//! creates with room for L admit exactly L (`shared/tests/admission_concurrency.rs` proves it,
//! and that a read-then-write version over-admits).

use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::ids::uuid_v4;
use crate::license::{Capacity, License, Resource};
use crate::store::{Database, StoreError, Value};
use crate::templates::TemplateRef;

use super::lifecycle::{self, Ops, Session, AGENT_FRESH_MS, NAMESPACE};
use super::machine::{Action, COUNTED_SQL};
use super::quota::{self, LimitRow, Limits, Requested, Usage};

/// A validated request for a new session.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub org_id: String,
    pub owner_id: String,
    pub owner_username: String,
    pub team_id: Option<String>,
    pub template: TemplateRef,
    pub cpu: String,
    pub memory: String,
    pub requested: Requested,
    pub persistent_home: bool,
    pub idle_timeout_s: Option<u64>,
    pub max_duration_s: Option<u64>,
    pub tags: Vec<String>,
}

/// An admitted session, its `start_session` command and the license headroom (for the
/// `X-License-Warning` header).
#[derive(Debug, Clone)]
pub struct Admitted {
    pub session: Session,
    pub command_id: String,
    pub capacity: Capacity,
}

/// The owner's usage: counted sessions and the resources they hold.
pub fn usage(db: &Database, user_id: &str) -> Result<Usage, StoreError> {
    let rows = db.execute(
        &format!(
            "SELECT COUNT(*) AS n, coalesce(SUM(cpu_millicores), 0) AS cpu,
                    coalesce(SUM(memory_bytes), 0) AS memory, coalesce(SUM(gpu), 0) AS gpu
               FROM sessions WHERE user_id = ?1 AND state IN {COUNTED_SQL}"
        ),
        &[Value::from(user_id)],
    )?;
    let Some(row) = rows.first() else {
        return Ok(Usage::default());
    };
    let n = |c: &str| row.i64(c).map(|v| u64::try_from(v).unwrap_or(0));
    Ok(Usage {
        sessions: n("n")?,
        cpu_millicores: n("cpu")?,
        memory_bytes: n("memory")?,
        gpu: n("gpu")?,
    })
}

/// The (user row, org defaults row) of `quota_limits`; absent rows are empty.
pub fn limit_rows(
    db: &Database,
    org_id: &str,
    user_id: &str,
) -> Result<(LimitRow, LimitRow), StoreError> {
    let rows = db.execute(
        &format!(
            "SELECT user_id, {} FROM quota_limits WHERE org_id = ?1 AND user_id IN ('', ?2)",
            LimitRow::COLUMNS
        ),
        &[Value::from(org_id), Value::from(user_id)],
    )?;
    let (mut user, mut org) = (LimitRow::default(), LimitRow::default());
    for row in rows.iter() {
        if row.str("user_id")?.is_empty() {
            org = LimitRow::from_row(&row)?;
        } else {
            user = LimitRow::from_row(&row)?;
        }
    }
    Ok((user, org))
}

/// The effective limits of a user.
pub fn effective_limits(db: &Database, org_id: &str, user_id: &str) -> Result<Limits, StoreError> {
    let (user, org) = limit_rows(db, org_id, user_id)?;
    Ok(Limits::effective(&user, &org))
}

/// Sessions holding a license seat, across every org.
pub fn licensed_sessions(db: &Database) -> Result<u64, StoreError> {
    let rows = db.execute(
        &format!("SELECT COUNT(*) AS n FROM sessions WHERE state IN {COUNTED_SQL}"),
        &[],
    )?;
    let n = rows.first().map(|r| r.i64("n")).transpose()?.unwrap_or(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The agent a new session goes to (§1.6): same org, registered, not revoked, online (not
/// draining), heard from within 90 s, of the configured platform if any, with room under its
/// `capacity.max_sessions`; the fewest live sessions first, then the freshest heartbeat.
pub fn pick_agent(
    db: &Database,
    now: i64,
    org_id: &str,
    platform: Option<&str>,
) -> Result<Option<String>, StoreError> {
    let load = format!(
        "(SELECT COUNT(*) FROM sessions s WHERE s.agent_id = a.id AND s.state IN {COUNTED_SQL})"
    );
    let rows = db.execute(
        &format!(
            "SELECT a.id FROM agents a
              WHERE a.org_id = ?1 AND a.registered_at IS NOT NULL AND a.revoked_at IS NULL
                AND a.status = 'online' AND a.last_heartbeat_at > ?2
                AND (?3 IS NULL OR a.platform = ?3)
                AND (json_extract(a.capacity, '$.max_sessions') IS NULL
                     OR json_extract(a.capacity, '$.max_sessions') > {load})
              ORDER BY {load}, a.last_heartbeat_at DESC, a.id LIMIT 1"
        ),
        &[
            Value::from(org_id),
            Value::from(now - AGENT_FRESH_MS),
            Value::from(platform),
        ],
    )?;
    rows.first()
        .map(|r| r.str("id").map(str::to_owned))
        .transpose()
}

pub fn no_agents_available() -> ApiError {
    ApiError::registered(
        "no_agents_available",
        "no streaming agent is available to run the session; try again later",
    )
}

/// Admits a session or refuses it: 402 `quota_exceeded`, 403 `license_limit_exceeded`, 503
/// `no_agents_available`. Everything from the first read to the last insert holds the write
/// lock.
pub fn admit(ops: &Ops<'_>, license: &License, new: &NewSession) -> ApiResult<Admitted> {
    let db = ops.db;
    let now = ops.now;
    let id = uuid_v4(ops.random)?;
    db.transaction(|db| -> ApiResult<Admitted> {
        let usage = usage(db, &new.owner_id)?;
        let limits = effective_limits(db, &new.org_id, &new.owner_id)?;
        quota::check(&limits, &usage, &new.requested).map_err(|e| e.to_api_error())?;
        let capacity = Capacity::for_one_more(license, Resource::Sessions, licensed_sessions(db)?)?;
        let agent_id = pick_agent(db, now, &new.org_id, ops.settings.platform.as_deref())?
            .ok_or_else(no_agents_available)?;
        insert(ops, new, &id, &agent_id)?;
        let manifest: serde_json::Value =
            serde_json::from_str(&new.template.manifest).unwrap_or_else(|_| json!({}));
        let payload = json!({
            "sessionId": id,
            "user": new.owner_username,
            "template": new.template.name,
            "templateManifest": manifest,
            "namespace": NAMESPACE,
            "memory": new.memory,
            "cpu": new.cpu,
            "persistentHome": new.persistent_home,
            "idleTimeout": new.idle_timeout_s.map(super::fields::format_duration),
            "maxSessionDuration": new.max_duration_s.map(super::fields::format_duration),
            "tags": new.tags,
        });
        let command_id =
            lifecycle::enqueue(ops, &new.org_id, &agent_id, &id, Action::Start, &payload)?;
        Ok(Admitted {
            session: lifecycle::require(db, now, &new.org_id, &id)?,
            command_id,
            capacity,
        })
    })
}

fn insert(ops: &Ops<'_>, new: &NewSession, id: &str, agent_id: &str) -> Result<(), StoreError> {
    let short: String = id.chars().filter(|c| *c != '-').take(8).collect();
    let name = format!("{}-{}-{short}", new.owner_username, new.template.name);
    let opt = |v: Option<u64>| v.and_then(|v| i64::try_from(v).ok());
    let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    ops.db.execute(
        "INSERT INTO sessions (id, org_id, user_id, team_id, name, template_id, template_name,
                app_type, state, cpu, cpu_millicores, memory, memory_bytes, gpu, persistent_home,
                idle_timeout_s, max_duration_s, agent_id, streaming_protocol, streaming_port,
                streaming_path, created_at, updated_at, state_changed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                ?17, ?18, ?19, ?20, ?21, ?21, ?21)",
        &[
            Value::from(id),
            Value::from(new.org_id.as_str()),
            Value::from(new.owner_id.as_str()),
            Value::from(new.team_id.as_deref()),
            Value::from(name),
            Value::from(new.template.id.as_str()),
            Value::from(new.template.name.as_str()),
            Value::from(new.template.app_type.as_str()),
            Value::from(new.cpu.as_str()),
            Value::from(int(new.requested.cpu_millicores)),
            Value::from(new.memory.as_str()),
            Value::from(int(new.requested.memory_bytes)),
            Value::from(int(new.requested.gpu)),
            Value::from(i64::from(new.persistent_home)),
            Value::from(opt(new.idle_timeout_s)),
            Value::from(opt(new.max_duration_s)),
            Value::from(agent_id),
            Value::from(new.template.streaming_protocol.as_str()),
            Value::from(new.template.streaming_port),
            Value::from(new.template.streaming_path.as_str()),
            Value::from(ops.now),
        ],
    )?;
    replace_tags(ops.db, &new.org_id, id, &new.tags)
}

/// Replaces a session's tags with `tags` (already normalised).
pub fn replace_tags(
    db: &Database,
    org_id: &str,
    session_id: &str,
    tags: &[String],
) -> Result<(), StoreError> {
    db.execute(
        "DELETE FROM session_tags WHERE session_id = ?1",
        &[Value::from(session_id)],
    )?;
    if tags.is_empty() {
        return Ok(());
    }
    let list =
        serde_json::to_string(tags).map_err(|e| StoreError::sqlite(format!("encode tags: {e}")))?;
    db.execute(
        "INSERT INTO session_tags (session_id, org_id, tag)
         SELECT ?1, ?2, value FROM json_each(?3)",
        &[
            Value::from(session_id),
            Value::from(org_id),
            Value::from(list),
        ],
    )?;
    Ok(())
}
