//! The agent command queue's lease statement with an injected clock (SPEC-wave2 §1.7): leases
//! expire and come back with the next attempt, only the oldest unfinished command of a session
//! is delivered, attempts run out into the failure mapping, and other agents' commands are never
//! leased.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::json;
use shared::config::Synchronous;
use shared::migrations::open_database;
use shared::sessions::lifecycle::{self, Ops, SessionSettings};
use shared::sessions::machine::Action;
use shared::store::native::{NativeSql, SeqRandom};
use shared::store::{Database, Value};

const T0: i64 = 1_795_413_600_000;
const LEASE_S: i64 = 60;

fn settings(max_attempts: i64) -> SessionSettings {
    SessionSettings {
        lease_seconds: LEASE_S,
        max_attempts,
        ..SessionSettings::defaults()
    }
}

fn session(db: &Database, id: &str, state: &str) {
    db.execute(
        "INSERT INTO sessions (id, org_id, user_id, name, template_id, template_name, state, cpu,
                cpu_millicores, memory, memory_bytes, agent_id, created_at, updated_at,
                state_changed_at)
         VALUES (?1, 'org', 'u', 'n', 't', 'firefox', ?2, '1000m', 1000, '2Gi', 2147483648,
                'agent-a', ?3, ?3, ?3)",
        &[Value::from(id), Value::from(state), Value::from(T0)],
    )
    .unwrap();
}

fn enqueue(
    db: &Database,
    random: &SeqRandom,
    max_attempts: i64,
    session_id: &str,
    action: Action,
) -> String {
    let s = settings(max_attempts);
    let ops = Ops {
        db,
        random,
        now: T0,
        settings: &s,
    };
    lifecycle::enqueue(
        &ops,
        "org",
        "agent-a",
        session_id,
        action,
        &json!({"sessionId": session_id}),
    )
    .unwrap()
}

fn lease(db: &Database, now: i64, agent: &str) -> Vec<(String, i64)> {
    lifecycle::lease(db, now, "org", agent, LEASE_S, 10)
        .unwrap()
        .into_iter()
        .map(|l| (l.command_id, l.attempt))
        .collect()
}

fn state(db: &Database, id: &str) -> String {
    let rows = db
        .execute(
            "SELECT state FROM sessions WHERE id = ?",
            &[Value::from(id)],
        )
        .unwrap();
    rows.first().unwrap().str("state").unwrap().to_owned()
}

#[test]
fn an_expired_lease_is_delivered_again_with_the_next_attempt() {
    let sql = NativeSql::temp();
    let db = open_database(&sql, Synchronous::Normal, T0).unwrap();
    let random = SeqRandom::default();
    session(&db, "s1", "pending");
    let start = enqueue(&db, &random, 5, "s1", Action::Start);
    assert_eq!(lease(&db, T0, "agent-a"), vec![(start.clone(), 1)]);
    // Within the lease: nothing to deliver; another agent never sees it.
    assert!(lease(&db, T0 + LEASE_S * 1000 - 1, "agent-a").is_empty());
    assert!(lease(&db, T0 + LEASE_S * 1000 * 5, "agent-b").is_empty());
    // The agent "crashed": the lease runs out and the command comes back.
    assert_eq!(lease(&db, T0 + LEASE_S * 1000, "agent-a"), vec![(start, 2)]);
}

#[test]
fn only_the_oldest_unfinished_command_of_a_session_is_delivered() {
    let sql = NativeSql::temp();
    let db = open_database(&sql, Synchronous::Normal, T0).unwrap();
    let random = SeqRandom::default();
    session(&db, "s1", "pending");
    session(&db, "s2", "pending");
    let start1 = enqueue(&db, &random, 5, "s1", Action::Start);
    let stop1 = enqueue(&db, &random, 5, "s1", Action::Stop);
    let start2 = enqueue(&db, &random, 5, "s2", Action::Start);
    let first: Vec<String> = lease(&db, T0, "agent-a").into_iter().map(|c| c.0).collect();
    assert_eq!(
        first,
        vec![start1.clone(), start2],
        "queue order, one per session"
    );
    // The stop waits for the in-flight start …
    assert!(lease(&db, T0 + 1, "agent-a").is_empty());
    db.execute(
        "UPDATE agent_commands SET status = 'completed' WHERE id = ?",
        &[Value::from(start1)],
    )
    .unwrap();
    // … and follows once it finished.
    assert_eq!(lease(&db, T0 + 2, "agent-a"), vec![(stop1, 1)]);
}

#[test]
fn exhausted_attempts_fail_the_command_and_apply_the_failure_mapping() {
    let sql = NativeSql::temp();
    let db = open_database(&sql, Synchronous::Normal, T0).unwrap();
    let random = SeqRandom::default();
    session(&db, "s1", "pending");
    session(&db, "s2", "hibernating");
    enqueue(&db, &random, 2, "s1", Action::Start);
    enqueue(&db, &random, 2, "s2", Action::Hibernate);
    let lease_ms = LEASE_S * 1000;
    assert_eq!(lease(&db, T0, "agent-a").len(), 2);
    assert_eq!(lease(&db, T0 + lease_ms, "agent-a").len(), 2);
    // Two attempts used: nothing more is delivered, and once the last lease ran out the
    // commands fail and their sessions move (start → failed, hibernate → running).
    assert!(lease(&db, T0 + 2 * lease_ms, "agent-a").is_empty());
    assert_eq!(
        lifecycle::fail_exhausted(&db, T0 + 2 * lease_ms, "agent-a").unwrap(),
        2
    );
    assert_eq!(state(&db, "s1"), "failed");
    assert_eq!(state(&db, "s2"), "running");
    let rows = db
        .execute(
            "SELECT termination_reason FROM sessions WHERE id = 's1'",
            &[],
        )
        .unwrap();
    assert_eq!(
        rows.first().unwrap().str("termination_reason").unwrap(),
        "start_failed: delivery attempts exhausted"
    );
}

#[test]
fn disabling_a_user_ends_each_of_its_sessions_the_way_delete_would() {
    let sql = NativeSql::temp();
    let db = open_database(&sql, Synchronous::Normal, T0).unwrap();
    let random = SeqRandom::default();
    db.execute(
        "INSERT INTO agents (id, org_id, name, platform, api_key_hash, status, registered_at,
                last_heartbeat_at, created_at)
         VALUES ('agent-a', 'org', 'a', 'k8s', 'h', 'online', ?1, ?1, ?1)",
        &[Value::from(T0)],
    )
    .unwrap();
    session(&db, "undelivered", "pending");
    session(&db, "delivered", "pending");
    session(&db, "running", "running");
    session(&db, "hibernated", "hibernated");
    session(&db, "gone", "running");
    db.execute(
        "UPDATE sessions SET agent_id = 'agent-x' WHERE id = 'gone'",
        &[],
    )
    .unwrap();
    let undelivered = enqueue(&db, &random, 5, "undelivered", Action::Start);
    let delivered = enqueue(&db, &random, 5, "delivered", Action::Start);
    db.execute(
        "UPDATE agent_commands SET status = 'leased', first_delivered_at = ?1 WHERE id = ?2",
        &[Value::from(T0), Value::from(delivered.as_str())],
    )
    .unwrap();
    let s = settings(5);
    let ops = Ops {
        db: &db,
        random: &random,
        now: T0 + 1,
        settings: &s,
    };
    assert_eq!(
        lifecycle::terminate_all_for_user(&ops, "u", "user_disabled").unwrap(),
        5
    );
    assert_eq!(state(&db, "undelivered"), "terminated");
    assert_eq!(state(&db, "delivered"), "terminating");
    assert_eq!(state(&db, "running"), "terminating");
    assert_eq!(state(&db, "hibernated"), "terminating");
    assert_eq!(state(&db, "gone"), "terminated");
    let status = |id: &str| -> String {
        let rows = db
            .execute(
                "SELECT status FROM agent_commands WHERE id = ?",
                &[Value::from(id)],
            )
            .unwrap();
        rows.first().unwrap().str("status").unwrap().to_owned()
    };
    assert_eq!(status(&undelivered), "cancelled");
    assert_eq!(
        status(&delivered),
        "leased",
        "an in-flight start is not taken back"
    );
    let stops = db
        .execute(
            "SELECT session_id, payload, length(id) AS n FROM agent_commands
              WHERE action = 'stop_session' ORDER BY session_id",
            &[],
        )
        .unwrap();
    let got: Vec<String> = stops
        .iter()
        .map(|r| r.str("session_id").unwrap().to_owned())
        .collect();
    assert_eq!(got, vec!["delivered", "hibernated", "running"]);
    for row in stops.iter() {
        assert_eq!(row.i64("n").unwrap(), 36, "a UUID");
        let payload: serde_json::Value = serde_json::from_str(row.str("payload").unwrap()).unwrap();
        assert_eq!(payload["namespace"], "streamspace");
    }
    // The stop of the session whose start is in flight waits for the start.
    let leased: Vec<String> = lifecycle::lease(&db, T0 + 2, "org", "agent-a", LEASE_S, 10)
        .unwrap()
        .into_iter()
        .filter_map(|l| l.session_id)
        .collect();
    assert_eq!(leased, vec!["hibernated", "running"]);
}
