//! Scheduled maintenance (DESIGN §8: no background work on Spin, so the platform's scheduler —
//! cron + curl, a Kubernetes CronJob — calls a protected route). Expired rows are already treated
//! as absent by every read; this only reclaims the space.

use serde::Serialize;
use shared::sessions::lifecycle::{self, Ops, SessionSettings, Swept};
use shared::store::Value;
use shared::{Access, ApiResult, Cx, Response, Route};

/// Revoked or expired personal access tokens stay listed (with their status) this long.
pub const API_KEY_GRACE_MS: i64 = 30 * 24 * 60 * 60 * 1000;

pub fn routes() -> Vec<Route> {
    vec![Route::post(
        "/api/v1/admin/maintenance/purge",
        Access::Optional,
        purge,
    )]
}

#[derive(Serialize, Default)]
struct Purged {
    access_tokens: u64,
    refresh_tokens: u64,
    login_sessions: u64,
    tickets: u64,
    csrf_tokens: u64,
    api_keys: u64,
    rate_limits: u64,
    agent_commands: u64,
    session_connections: u64,
    webhook_deliveries: u64,
}

#[derive(Serialize)]
struct PurgeReport {
    purged: Purged,
    /// What the session sweep did (SPEC-wave2 §1.8), bounded per rule and call.
    sessions: Swept,
}

/// `POST /api/v1/admin/maintenance/purge`: deletes expired tokens, tickets, CSRF tokens, ended
/// login sessions (with their refresh families) and long-dead personal access tokens, in one
/// transaction; returns the counts.
pub async fn purge(cx: Cx) -> ApiResult<Response> {
    shared::auth::maintenance::require(&cx, "purge")?;
    // The maintenance route is also a sealer, for deployments where the audit log is read
    // rarely (the rows are sealed after every response too).
    crate::handlers::verify::seal_chain(&cx)?;
    let now = cx.now_ms();
    let idle_ms = cx.services.settings().idle_timeout_seconds()? * 1000;
    let db = cx.db()?;
    let purged = db.transaction(|db| -> ApiResult<Purged> {
        let run = |sql: &str, params: &[Value]| -> ApiResult<u64> {
            db.execute(sql, params)?;
            Ok(db.changes()?)
        };
        let ended = "SELECT id FROM login_sessions WHERE revoked_at IS NOT NULL OR expires_at <= ?1 OR last_seen_at <= ?2";
        let mut purged = Purged {
            access_tokens: run(
                &format!("DELETE FROM access_tokens WHERE expires_at <= ?1 OR session_id IN ({ended})"),
                &[Value::from(now), Value::from(now - idle_ms)],
            )?,
            refresh_tokens: run(
                &format!("DELETE FROM refresh_tokens WHERE expires_at <= ?1 OR session_id IN ({ended})"),
                &[Value::from(now), Value::from(now - idle_ms)],
            )?,
            ..Purged::default()
        };
        purged.login_sessions = run(
            "DELETE FROM login_sessions WHERE revoked_at IS NOT NULL OR expires_at <= ?1 OR last_seen_at <= ?2",
            &[Value::from(now), Value::from(now - idle_ms)],
        )?;
        purged.tickets = run("DELETE FROM tickets WHERE expires_at <= ?", &[Value::from(now)])?;
        purged.csrf_tokens = run("DELETE FROM csrf_tokens WHERE expires_at <= ?", &[Value::from(now)])?;
        purged.api_keys = run(
            "DELETE FROM api_keys WHERE expires_at <= ?1 OR revoked_at <= ?1",
            &[Value::from(now - API_KEY_GRACE_MS)],
        )?;
        // Limiter keys whose theoretical arrival time has passed hold no state worth keeping.
        purged.rate_limits = run(
            "DELETE FROM rate_limits WHERE tat < ?",
            &[Value::from(now.saturating_mul(1000))],
        )?;
        // Webhook deliveries past their retention (the sync drain deletes them too).
        let retention_days = cx
            .services
            .settings()
            .int("webhook_delivery_retention_days")?;
        purged.webhook_deliveries = run(
            "DELETE FROM webhook_deliveries WHERE received_at < ?",
            &[Value::from(
                now - retention_days.saturating_mul(86_400_000),
            )],
        )?;
        let (commands, connections) = lifecycle::purge_history(db, now)?;
        purged.agent_commands = commands;
        purged.session_connections = connections;
        Ok(purged)
    })?;
    // The lazy session sweep for every org (idle hibernation, max duration, stuck states,
    // failed stops), also run from agent polls for each agent's own sessions.
    let settings = SessionSettings::read(&cx.services.settings())?;
    let ops = Ops {
        db,
        random: cx.services.random.as_ref(),
        now,
        settings: &settings,
    };
    let sessions = lifecycle::sweep(&ops, None)?;
    Response::ok_json(&PurgeReport { purged, sessions })
}
