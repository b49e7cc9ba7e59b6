//! The lazy session sweep (SPEC-wave2 §1.8) with an injected clock: idle auto-hibernation (with
//! its grace, never with a live connection, never when switched off), max duration, sessions
//! stuck with their agent offline, failed stops re-sent a bounded number of times, and the
//! per-rule bound.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use shared::config::Synchronous;
use shared::migrations::open_database;
use shared::sessions::lifecycle::{self, Ops, SessionSettings, Swept, SWEEP_BATCH};
use shared::store::native::{NativeSql, SeqRandom};
use shared::store::{Database, Value};

const T0: i64 = 1_795_413_600_000;
const MIN: i64 = 60_000;

struct World {
    _sql: NativeSql,
    db: Database,
    random: SeqRandom,
}

fn world() -> World {
    let sql = NativeSql::temp();
    let db = open_database(&sql, Synchronous::Normal, T0).unwrap();
    db.execute(
        "INSERT INTO agents (id, org_id, name, platform, api_key_hash, status, registered_at,
                last_heartbeat_at, created_at)
         VALUES ('agent-a', 'org', 'a', 'k8s', 'h', 'online', ?1, ?1, ?1)",
        &[Value::from(T0)],
    )
    .unwrap();
    World {
        _sql: sql,
        db,
        random: SeqRandom::default(),
    }
}

/// A session of agent-a, in `state` since `since`, started at `since`.
fn session(
    db: &Database,
    id: &str,
    state: &str,
    since: i64,
    idle_s: Option<i64>,
    max_s: Option<i64>,
) {
    db.execute(
        "INSERT INTO sessions (id, org_id, user_id, name, template_id, template_name, state, cpu,
                cpu_millicores, memory, memory_bytes, agent_id, idle_timeout_s, max_duration_s,
                created_at, updated_at, state_changed_at, started_at)
         VALUES (?1, 'org', 'u', 'n', 't', 'firefox', ?2, '1000m', 1000, '2Gi', 2147483648,
                'agent-a', ?3, ?4, ?5, ?5, ?5, ?5)",
        &[
            Value::from(id),
            Value::from(state),
            Value::from(idle_s),
            Value::from(max_s),
            Value::from(since),
        ],
    )
    .unwrap();
}

fn sweep_at(w: &World, now: i64, settings: &SessionSettings) -> Swept {
    let ops = Ops {
        db: &w.db,
        random: &w.random,
        now,
        settings,
    };
    lifecycle::sweep(&ops, None).unwrap()
}

fn state(db: &Database, id: &str) -> (String, Option<String>) {
    let rows = db
        .execute(
            "SELECT state, termination_reason FROM sessions WHERE id = ?",
            &[Value::from(id)],
        )
        .unwrap();
    let row = rows.first().unwrap();
    (
        row.str("state").unwrap().to_owned(),
        row.opt_str("termination_reason")
            .unwrap()
            .map(str::to_owned),
    )
}

fn commands(db: &Database, id: &str) -> Vec<String> {
    db.execute(
        "SELECT action FROM agent_commands WHERE session_id = ? ORDER BY seq",
        &[Value::from(id)],
    )
    .unwrap()
    .iter()
    .map(|r| r.str("action").unwrap().to_owned())
    .collect()
}

#[test]
fn an_idle_session_is_hibernated_after_its_timeout_plus_the_grace() {
    let w = world();
    let settings = SessionSettings::defaults(); // grace 300 s
    session(&w.db, "idle", "running", T0, Some(1800), None);
    session(&w.db, "connected", "running", T0, Some(1800), None);
    session(&w.db, "no-timeout", "running", T0, None, None);
    // A live connection (heartbeat within 60 s) keeps a session awake.
    let due = T0 + (1800 + 300) * 1000;
    w.db.execute(
        "INSERT INTO session_connections (id, session_id, org_id, user_id, connected_at,
                last_heartbeat_at)
         VALUES ('c1', 'connected', 'org', 'u', ?1, ?2)",
        &[Value::from(T0), Value::from(due - 1000)],
    )
    .unwrap();
    assert_eq!(
        sweep_at(&w, due - 1, &settings).hibernated_idle,
        0,
        "not before the grace"
    );
    assert_eq!(sweep_at(&w, due, &settings).hibernated_idle, 1);
    assert_eq!(state(&w.db, "idle").0, "hibernating");
    assert_eq!(commands(&w.db, "idle"), vec!["hibernate_session"]);
    assert_eq!(state(&w.db, "connected").0, "running");
    assert_eq!(state(&w.db, "no-timeout").0, "running");
    // Idempotent: a second sweep does nothing more.
    assert_eq!(sweep_at(&w, due + 1, &settings), Swept::default());
}

#[test]
fn auto_hibernation_can_be_switched_off() {
    let w = world();
    let settings = SessionSettings {
        auto_hibernate: false,
        ..SessionSettings::defaults()
    };
    session(&w.db, "idle", "running", T0, Some(60), None);
    sweep_at(&w, T0 + 24 * 60 * MIN, &settings);
    assert_eq!(state(&w.db, "idle").0, "running");
}

#[test]
fn a_session_past_its_max_duration_is_ended() {
    let w = world();
    let settings = SessionSettings::defaults();
    session(&w.db, "long", "hibernated", T0, None, Some(3600));
    assert_eq!(
        sweep_at(&w, T0 + 3600 * 1000 - 1, &settings).ended_max_duration,
        0
    );
    assert_eq!(
        sweep_at(&w, T0 + 3600 * 1000, &settings).ended_max_duration,
        1
    );
    assert_eq!(
        state(&w.db, "long"),
        ("terminating".to_owned(), Some("max_duration".to_owned()))
    );
    assert_eq!(commands(&w.db, "long"), vec!["stop_session"]);
}

#[test]
fn sessions_stuck_with_their_agent_offline_are_resolved() {
    let w = world();
    let settings = SessionSettings::defaults(); // force cleanup 600 s
    for (id, st) in [
        ("p", "pending"),
        ("t", "terminating"),
        ("h", "hibernating"),
        ("w", "waking"),
    ] {
        session(&w.db, id, st, T0, None, None);
    }
    let later = T0 + 601 * 1000;
    // The agent is online (heard from just now): nothing is stuck.
    w.db.execute(
        "UPDATE agents SET last_heartbeat_at = ?1",
        &[Value::from(later)],
    )
    .unwrap();
    assert_eq!(sweep_at(&w, later, &settings).reverted_stuck, 0);
    // Silent for more than 90 s: offline.
    w.db.execute(
        "UPDATE agents SET last_heartbeat_at = ?1",
        &[Value::from(T0)],
    )
    .unwrap();
    assert_eq!(sweep_at(&w, later, &settings).reverted_stuck, 4);
    assert_eq!(
        state(&w.db, "p"),
        ("failed".to_owned(), Some("agent_unavailable".to_owned()))
    );
    assert_eq!(
        state(&w.db, "t"),
        (
            "terminated".to_owned(),
            Some("agent_unavailable".to_owned())
        )
    );
    assert_eq!(state(&w.db, "h").0, "running");
    assert_eq!(state(&w.db, "w").0, "hibernated");
}

#[test]
fn a_failed_stop_is_resent_three_times_then_the_session_is_terminated() {
    let w = world();
    let settings = SessionSettings::defaults();
    session(&w.db, "s", "terminating", T0, None, None);
    let mut now = T0;
    for attempt in 1..=3 {
        now += 301 * 1000;
        // Keep the agent online so the stuck rule does not apply.
        w.db.execute(
            "UPDATE agents SET last_heartbeat_at = ?1",
            &[Value::from(now)],
        )
        .unwrap();
        assert_eq!(
            sweep_at(&w, now, &settings).stops_resent,
            1,
            "retry {attempt}"
        );
        // The agent fails the re-sent stop.
        w.db.execute(
            "UPDATE agent_commands SET status = 'failed', updated_at = ?1 WHERE session_id = 's'",
            &[Value::from(now)],
        )
        .unwrap();
    }
    let payloads =
        w.db.execute(
            "SELECT payload FROM agent_commands WHERE session_id = 's'",
            &[],
        )
        .unwrap();
    assert_eq!(payloads.len(), 3);
    for row in payloads.iter() {
        assert!(row.str("payload").unwrap().contains("\"deletePVC\":false"));
    }
    now += 301 * 1000;
    w.db.execute(
        "UPDATE agents SET last_heartbeat_at = ?1",
        &[Value::from(now)],
    )
    .unwrap();
    assert_eq!(sweep_at(&w, now, &settings).stops_resent, 0);
    assert_eq!(
        state(&w.db, "s"),
        ("terminated".to_owned(), Some("stop_failed".to_owned()))
    );
}

#[test]
fn each_rule_handles_at_most_a_batch_per_call() {
    let w = world();
    let settings = SessionSettings::defaults();
    let n = SWEEP_BATCH + 5;
    for i in 0..n {
        session(&w.db, &format!("s{i:03}"), "running", T0, None, Some(60));
    }
    let now = T0 + 61 * 1000;
    assert_eq!(
        sweep_at(&w, now, &settings).ended_max_duration,
        usize::try_from(SWEEP_BATCH).unwrap()
    );
    assert_eq!(sweep_at(&w, now, &settings).ended_max_duration, 5);
}
