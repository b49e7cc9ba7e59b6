//! Atomic admission, proven with real concurrency (SPEC-wave2 §1.4): THREADS threads, each with
//! its own SQLite connection to one database file (as that many Spin instances would have),
//! create a session for the same user at once with room for LIMIT; exactly LIMIT are admitted and
//! the rest get 402. A deliberately naive read-then-write admission (usage read, quota checked,
//! then the insert, without the write lock around them) fails the same test, which shows the
//! test can see the race.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};

use shared::config::Synchronous;
use shared::license::{License, Status};
use shared::migrations::open_database;
use shared::sessions::admission::{self, NewSession};
use shared::sessions::lifecycle::{Ops, SessionSettings};
use shared::sessions::quota::{self, Limits, Requested};
use shared::store::native::{NativeSql, NativeSqlHandle};
use shared::store::{Database, Random, StoreError, Value};
use shared::templates::TemplateRef;

const THREADS: usize = 12;
const LIMIT: i64 = 3;
const NOW: i64 = 1_795_413_600_000;
const ORG: &str = "org-1";
const USER: &str = "user-1";

/// Distinct ids per thread without a shared generator.
struct ThreadRandom {
    thread: u8,
    counter: std::cell::Cell<u64>,
}

impl Random for ThreadRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), StoreError> {
        let n = self.counter.get() + 1;
        self.counter.set(n);
        let seed = [&[self.thread][..], &n.to_le_bytes()[..]].concat();
        for (i, b) in buf.iter_mut().enumerate() {
            *b = seed[i % seed.len()].wrapping_add(u8::try_from(i).unwrap_or(0));
        }
        Ok(())
    }
}

fn settings() -> SessionSettings {
    SessionSettings::defaults()
}

fn new_session() -> NewSession {
    NewSession {
        org_id: ORG.to_owned(),
        owner_id: USER.to_owned(),
        owner_username: "alice".to_owned(),
        team_id: None,
        template: TemplateRef {
            id: "tpl-1".to_owned(),
            name: "firefox".to_owned(),
            enabled: true,
            app_type: "desktop".to_owned(),
            default_cpu: "1000m".to_owned(),
            default_memory: "2Gi".to_owned(),
            streaming_protocol: "vnc".to_owned(),
            streaming_port: 5900,
            streaming_path: String::new(),
            manifest: "{}".to_owned(),
        },
        cpu: "100m".to_owned(),
        memory: "128Mi".to_owned(),
        requested: quota::validate_request("100m", "128Mi", 0).unwrap(),
        persistent_home: true,
        idle_timeout_s: None,
        max_duration_s: None,
        tags: Vec::new(),
    }
}

/// A fresh database with an online agent and the org's `max_sessions` = LIMIT.
fn prepared() -> NativeSql {
    let sql = NativeSql::temp();
    let db = open_database(&sql, Synchronous::Normal, NOW).unwrap();
    db.execute(
        "INSERT INTO agents (id, org_id, name, platform, api_key_hash, status, registered_at,
                last_heartbeat_at, created_at)
         VALUES ('agent-1', ?1, 'a1', 'kubernetes', 'h', 'online', ?2, ?2, ?2)",
        &[Value::from(ORG), Value::from(NOW)],
    )
    .unwrap();
    db.execute(
        "INSERT INTO quota_limits (org_id, user_id, max_sessions, updated_at, updated_by)
         VALUES (?1, '', ?2, ?3, 'test')",
        &[Value::from(ORG), Value::from(LIMIT), Value::from(NOW)],
    )
    .unwrap();
    sql
}

type Attempt = fn(&Database, &ThreadRandom) -> bool;

/// Runs one `attempt` per thread, all released at once; returns how many were admitted.
fn hammer(sql: &NativeSql, attempt: Attempt) -> u64 {
    let admitted = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|i| {
            let path = sql.path().to_owned();
            let (admitted, barrier) = (admitted.clone(), barrier.clone());
            std::thread::spawn(move || {
                let db =
                    open_database(&NativeSqlHandle::at(path), Synchronous::Normal, NOW).unwrap();
                let random = ThreadRandom {
                    thread: u8::try_from(i).unwrap(),
                    counter: std::cell::Cell::new(0),
                };
                barrier.wait();
                if attempt(&db, &random) {
                    admitted.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    admitted.load(Ordering::Relaxed)
}

fn atomic_attempt(db: &Database, random: &ThreadRandom) -> bool {
    let settings = settings();
    let ops = Ops {
        db,
        random,
        now: NOW,
        settings: &settings,
    };
    match admission::admit(&ops, &License::community(Status::None), &new_session()) {
        Ok(_) => true,
        Err(e) => {
            assert_eq!(e.status.as_u16(), 402, "{e}");
            false
        }
    }
}

/// Read usage, check, then insert — each its own statement, no lock around them: the shape the
/// spec forbids (StreamSpace's).
fn naive_attempt(db: &Database, random: &ThreadRandom) -> bool {
    let usage = admission::usage(db, USER).unwrap();
    let limits = admission::effective_limits(db, ORG, USER).unwrap();
    let requested = Requested {
        cpu_millicores: 100,
        memory_bytes: 128 << 20,
        gpu: 0,
    };
    if quota::check(&limits, &usage, &requested).is_err() {
        return false;
    }
    // Another instance's request lands here in real life; a pause makes the window visible.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let id = shared::ids::uuid_v4(random).unwrap();
    db.execute(
        "INSERT INTO sessions (id, org_id, user_id, name, template_id, template_name, state, cpu,
                cpu_millicores, memory, memory_bytes, created_at, updated_at, state_changed_at)
         VALUES (?1, ?2, ?3, 'n', 'tpl-1', 'firefox', 'pending', '100m', 100, '128Mi', ?4, ?5, ?5, ?5)",
        &[
            Value::from(id),
            Value::from(ORG),
            Value::from(USER),
            Value::from(128_i64 << 20),
            Value::from(NOW),
        ],
    )
    .unwrap();
    true
}

#[test]
fn concurrent_creates_admit_exactly_the_quota() {
    let sql = prepared();
    let limits = admission::effective_limits(
        &open_database(&sql, Synchronous::Normal, NOW).unwrap(),
        ORG,
        USER,
    )
    .unwrap();
    assert_eq!(limits.sessions, u64::try_from(LIMIT).unwrap());
    assert_ne!(limits, Limits::BUILT_IN);
    assert_eq!(hammer(&sql, atomic_attempt), u64::try_from(LIMIT).unwrap());
    // And the queue holds exactly one start command per admitted session.
    let db = open_database(&sql, Synchronous::Normal, NOW).unwrap();
    let rows = db
        .execute(
            "SELECT (SELECT COUNT(*) FROM sessions) AS s,
                    (SELECT COUNT(*) FROM agent_commands WHERE action = 'start_session') AS c",
            &[],
        )
        .unwrap();
    let row = rows.first().unwrap();
    assert_eq!(row.i64("s").unwrap(), LIMIT);
    assert_eq!(row.i64("c").unwrap(), LIMIT);
}

#[test]
fn a_naive_read_then_write_admission_over_admits() {
    let sql = prepared();
    let admitted = hammer(&sql, naive_attempt);
    assert!(
        admitted > u64::try_from(LIMIT).unwrap(),
        "the race went unseen: {admitted} admitted"
    );
}
