//! The limiter's central claim, proven with real concurrency: N threads, each with its own SQLite
//! connection to one database file (as N Spin instances would have), hammer one key, and exactly
//! the limit is admitted. A deliberately naive read-then-write limiter fails the same test, which
//! shows the test can see races.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};

use shared::rate_limit::ADMIT;

const THREADS: usize = 8;
const ATTEMPTS_PER_THREAD: usize = 40;
const LIMIT: i64 = 50;
const WINDOW_US: i64 = 60_000_000;
const NOW_US: i64 = 1_000_000_000;

fn temp_db(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "streamspace-limiter-{name}-{}.db",
        std::process::id()
    ));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.execute("CREATE TABLE rate_limits (key TEXT PRIMARY KEY, tat INTEGER NOT NULL) STRICT, WITHOUT ROWID", [])
        .unwrap();
    path
}

fn open(path: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .unwrap();
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    conn
}

/// Runs `attempt` from THREADS threads at once (each with its own connection); returns admissions.
fn hammer(path: &Path, attempt: fn(&rusqlite::Connection) -> bool) -> u64 {
    let admitted = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (path, admitted, barrier) = (path.to_owned(), admitted.clone(), barrier.clone());
            std::thread::spawn(move || {
                let conn = open(&path);
                barrier.wait();
                for _ in 0..ATTEMPTS_PER_THREAD {
                    if attempt(&conn) {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    admitted.load(Ordering::Relaxed)
}

const INTERVAL_US: i64 = WINDOW_US / LIMIT;

fn atomic_attempt(conn: &rusqlite::Connection) -> bool {
    let mut stmt = conn.prepare_cached(ADMIT).unwrap();
    let mut rows = stmt
        .query(rusqlite::params!["hot-key", NOW_US, INTERVAL_US, WINDOW_US])
        .unwrap();
    rows.next().unwrap().is_some()
}

/// Read, decide, write: the get-then-set shape the design forbids.
fn naive_attempt(conn: &rusqlite::Connection) -> bool {
    let tat: i64 = conn
        .query_row(
            "SELECT tat FROM rate_limits WHERE key = 'hot-key'",
            [],
            |r| r.get(0),
        )
        .unwrap_or(NOW_US);
    let new_tat = tat.max(NOW_US) + INTERVAL_US;
    if new_tat - NOW_US > WINDOW_US {
        return false;
    }
    // Another instance's request lands here in real life; a yield makes the window visible.
    std::thread::yield_now();
    std::thread::sleep(std::time::Duration::from_micros(200));
    conn.execute(
        "INSERT INTO rate_limits (key, tat) VALUES ('hot-key', ?1) ON CONFLICT (key) DO UPDATE SET tat = ?1",
        [new_tat],
    )
    .unwrap();
    true
}

#[test]
fn concurrent_connections_admit_exactly_the_limit() {
    let path = temp_db("atomic");
    let admitted = hammer(&path, atomic_attempt);
    assert_eq!(
        admitted,
        LIMIT as u64,
        "{} attempts",
        THREADS * ATTEMPTS_PER_THREAD
    );
}

#[test]
fn a_naive_read_then_write_limiter_over_admits() {
    let path = temp_db("naive");
    let admitted = hammer(&path, naive_attempt);
    assert!(
        admitted > LIMIT as u64,
        "the race went unseen: {admitted} admitted"
    );
}
