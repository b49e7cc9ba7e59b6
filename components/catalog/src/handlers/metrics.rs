//! `GET /api/v1/metrics` (admins, operators): the org's sessions, users, agents and command
//! queue, as JSON or — for a standard scraper (`Accept: text/plain`, `?format=prometheus`) — in
//! the Prometheus text exposition format (0.0.4).

use serde::Serialize;
use shared::auth::Role;
use shared::extract::query_value;
use shared::sessions::lifecycle::AGENT_FRESH_MS;
use shared::sessions::machine::ALL_STATES;
use shared::store::{Database, Value};
use shared::{Access, ApiResult, Cx, Response, Route, StatusCode};
use std::collections::BTreeMap;

pub fn routes() -> Vec<Route> {
    vec![Route::get(
        "/api/v1/metrics",
        Access::AnyRole(&[Role::Admin, Role::Operator]),
        metrics,
    )]
}

#[derive(Serialize)]
struct Sessions {
    total: i64,
    by_state: BTreeMap<&'static str, i64>,
}

#[derive(Serialize)]
struct Users {
    total: i64,
    active_24h: i64,
}

#[derive(Serialize)]
struct Agents {
    total: i64,
    online: i64,
    draining: i64,
    offline: i64,
    pending: i64,
}

#[derive(Serialize)]
struct Commands {
    pending: i64,
    in_flight: i64,
    failed_24h: i64,
}

#[derive(Serialize)]
struct Metrics {
    sessions: Sessions,
    users: Users,
    agents: Agents,
    commands: Commands,
}

const DAY_MS: i64 = 86_400_000;

fn read(db: &Database, org: &str, now: i64) -> ApiResult<Metrics> {
    let mut by_state: BTreeMap<&'static str, i64> =
        ALL_STATES.iter().map(|s| (s.as_str(), 0)).collect();
    let rows = db.execute(
        "SELECT state, COUNT(*) AS n FROM sessions WHERE org_id = ? GROUP BY state",
        &[Value::from(org)],
    )?;
    for row in rows.iter() {
        let state = row.str("state")?;
        if let Some(slot) = ALL_STATES
            .iter()
            .find(|s| s.as_str() == state)
            .and_then(|s| by_state.get_mut(s.as_str()))
        {
            *slot = row.i64("n")?;
        }
    }
    let one = |sql: &str, params: &[Value]| -> ApiResult<Vec<i64>> {
        let rows = db.execute(sql, params)?;
        let Some(row) = rows.first() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for column in ["a", "b", "c", "d", "e"] {
            match row.opt_i64(column) {
                Ok(v) => out.push(v.unwrap_or(0)),
                Err(_) => break,
            }
        }
        Ok(out)
    };
    let users = one(
        "SELECT (SELECT COUNT(*) FROM users WHERE org_id = ?1) AS a,
                (SELECT COUNT(DISTINCT user_id) FROM login_sessions
                  WHERE org_id = ?1 AND last_seen_at > ?2) AS b",
        &[Value::from(org), Value::from(now - DAY_MS)],
    )?;
    let fresh = now - AGENT_FRESH_MS;
    let agents = one(
        "SELECT COUNT(*) AS a,
                coalesce(SUM(registered_at IS NOT NULL AND status = 'online' AND last_heartbeat_at > ?2), 0) AS b,
                coalesce(SUM(registered_at IS NOT NULL AND status = 'draining' AND last_heartbeat_at > ?2), 0) AS c,
                coalesce(SUM(registered_at IS NOT NULL AND (status = 'offline' OR coalesce(last_heartbeat_at, 0) <= ?2)), 0) AS d,
                coalesce(SUM(registered_at IS NULL), 0) AS e
           FROM agents WHERE org_id = ?1 AND revoked_at IS NULL",
        &[Value::from(org), Value::from(fresh)],
    )?;
    let commands = one(
        "SELECT coalesce(SUM(status = 'pending'), 0) AS a,
                coalesce(SUM(status IN ('leased', 'acknowledged')), 0) AS b,
                coalesce(SUM(status = 'failed' AND updated_at > ?2), 0) AS c
           FROM agent_commands WHERE org_id = ?1",
        &[Value::from(org), Value::from(now - DAY_MS)],
    )?;
    let at = |v: &[i64], i: usize| v.get(i).copied().unwrap_or(0);
    Ok(Metrics {
        sessions: Sessions {
            total: by_state.values().sum(),
            by_state,
        },
        users: Users {
            total: at(&users, 0),
            active_24h: at(&users, 1),
        },
        agents: Agents {
            total: at(&agents, 0),
            online: at(&agents, 1),
            draining: at(&agents, 2),
            offline: at(&agents, 3),
            pending: at(&agents, 4),
        },
        commands: Commands {
            pending: at(&commands, 0),
            in_flight: at(&commands, 1),
            failed_24h: at(&commands, 2),
        },
    })
}

/// The figures in the Prometheus text exposition format.
fn prometheus(m: &Metrics) -> String {
    let mut out = String::new();
    let mut family = |name: &str, help: &str, samples: &[(String, i64)]| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for (labels, value) in samples {
            out.push_str(&format!("{name}{labels} {value}\n"));
        }
    };
    let by_state: Vec<(String, i64)> = m
        .sessions
        .by_state
        .iter()
        .map(|(state, n)| (format!("{{state=\"{state}\"}}"), *n))
        .collect();
    family(
        "streamspace_sessions",
        "Sessions of the org by state.",
        &by_state,
    );
    family(
        "streamspace_users",
        "Users of the org.",
        &[(String::new(), m.users.total)],
    );
    family(
        "streamspace_users_active_24h",
        "Users of the org seen in the last 24 hours.",
        &[(String::new(), m.users.active_24h)],
    );
    let agents = [
        ("online", m.agents.online),
        ("draining", m.agents.draining),
        ("offline", m.agents.offline),
        ("pending", m.agents.pending),
    ];
    let agents: Vec<(String, i64)> = agents
        .iter()
        .map(|(s, n)| (format!("{{status=\"{s}\"}}"), *n))
        .collect();
    family(
        "streamspace_agents",
        "Agents of the org by status.",
        &agents,
    );
    let commands = [
        ("pending", m.commands.pending),
        ("in_flight", m.commands.in_flight),
    ];
    let commands: Vec<(String, i64)> = commands
        .iter()
        .map(|(s, n)| (format!("{{status=\"{s}\"}}"), *n))
        .collect();
    family(
        "streamspace_agent_commands",
        "Unfinished agent commands of the org.",
        &commands,
    );
    family(
        "streamspace_agent_commands_failed_24h",
        "Agent commands of the org that failed in the last 24 hours.",
        &[(String::new(), m.commands.failed_24h)],
    );
    out
}

/// `GET /api/v1/metrics`.
pub async fn metrics(cx: Cx) -> ApiResult<Response> {
    let org = cx.tenant()?.org_id().to_owned();
    let m = read(cx.db()?, &org, cx.now_ms())?;
    let format = query_value(&cx.head.query, "format");
    if !matches!(format.as_deref(), None | Some("prometheus")) {
        return Err(shared::ApiError::bad_request(
            "invalid_query",
            "format must be prometheus",
        ));
    }
    let wants_text = format.as_deref() == Some("prometheus")
        || cx
            .head
            .header("accept")
            .is_some_and(|a| a.contains("text/plain") && !a.contains("application/json"));
    if wants_text {
        return Ok(Response::bytes(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            prometheus(&m).into_bytes(),
        ));
    }
    Response::ok_json(&m)
}
