//! Embedded, numbered, forward-only schema migrations, applied automatically and idempotently the
//! first time a request opens the database, so a fresh `spin up` (or a fresh libSQL database on a
//! deployed app) needs no manual step.
//!
//! Per-request cost: the "is the schema current?" check is one `PRAGMA user_version` (a read of the
//! database header, no table access) on each newly opened connection. Only when it is behind does a
//! request take the write lock (`BEGIN IMMEDIATE`), re-check under the lock (another instance may
//! have migrated meanwhile), apply what is missing and record each step in `schema_migrations`.
//!
//! A migration is a list of single statements (Spin's `execute` takes one statement at a time).
//! Never edit a released migration: add a new one with the next number.

use crate::config::Synchronous;
use crate::store::{Database, SqlConnection, SqlOpener, StoreError, Value};
use crate::time::Timestamp;

/// One schema step.
#[derive(Debug)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub statements: &'static [&'static str],
}

/// All migrations, in order. Versions are 1, 2, 3, … without gaps (a test checks it).
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "schema_migrations",
        statements: &["CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at TEXT NOT NULL
        ) STRICT"],
    },
    Migration {
        version: 2,
        name: "identity",
        statements: IDENTITY,
    },
    Migration {
        version: 3,
        name: "api_key_prefix",
        statements: API_KEY_PREFIX,
    },
    Migration {
        version: 4,
        name: "machine_credentials",
        statements: MACHINE_CREDENTIALS,
    },
    Migration {
        version: 5,
        name: "rate_limits",
        statements: &[
            // GCRA state: one theoretical arrival time (µs) per key (see `rate_limit`).
            "CREATE TABLE rate_limits (key TEXT PRIMARY KEY, tat INTEGER NOT NULL) STRICT, WITHOUT ROWID",
        ],
    },
    Migration {
        version: 6,
        name: "audit_log",
        statements: AUDIT,
    },
    Migration {
        version: 7,
        name: "audit_query_indexes",
        statements: &[
            // The query API filters by org and then action or status, newest first.
            "CREATE INDEX audit_log_org_action_seq ON audit_log (org_id, action, seq)",
            "CREATE INDEX audit_log_org_status_seq ON audit_log (org_id, status, seq)",
        ],
    },
    Migration {
        version: 8,
        name: "audit_hardening",
        statements: AUDIT_HARDENING,
    },
];

/// The audit log: one row per request, hash-chained (`hash = HMAC-SHA256(audit_key, prev_hash ‖
/// canonical row)`), append-only by trigger; rows leave only through retention, which opens the
/// gate inside its transaction and records a checkpoint so the rest of the chain still verifies.
const AUDIT: &[&str] = &[
    "CREATE TABLE audit_log (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        request_id TEXT NOT NULL UNIQUE,
        ts INTEGER NOT NULL,
        principal TEXT,
        user_id TEXT,
        agent_id TEXT,
        org_id TEXT,
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        action TEXT NOT NULL,
        resource_type TEXT,
        resource_id TEXT,
        status INTEGER NOT NULL,
        client_ip TEXT,
        user_agent TEXT,
        duration_ms REAL NOT NULL,
        error TEXT,
        body TEXT,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    ) STRICT",
    "CREATE INDEX audit_log_org_seq ON audit_log (org_id, seq)",
    "CREATE INDEX audit_log_ts ON audit_log (ts)",
    "CREATE TABLE audit_gate (id INTEGER PRIMARY KEY CHECK (id = 1), open INTEGER NOT NULL) STRICT",
    "INSERT INTO audit_gate (id, open) VALUES (1, 0)",
    "CREATE TABLE audit_checkpoints (
        seq INTEGER PRIMARY KEY,
        prev_hash TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        removed_through INTEGER NOT NULL,
        removed_count INTEGER NOT NULL
    ) STRICT",
    "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
     BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
     WHEN (SELECT open FROM audit_gate WHERE id = 1) = 0
     BEGIN SELECT RAISE(ABORT, 'audit_log rows leave only through retention'); END",
];

/// Audit hardening: checkpoints carry a MAC chained to the previous checkpoint's (verify checks
/// them, so a checkpoint inserted with file access is found); a row names the org a handler acted
/// on when it is not the actor's own (`target_org_id`, hashed only when present so older rows
/// still verify); the incremental verifier's position (one row: the last verified `seq`, that
/// row's hash and a MAC over both).
const AUDIT_HARDENING: &[&str] = &[
    "ALTER TABLE audit_checkpoints ADD COLUMN mac TEXT",
    "ALTER TABLE audit_log ADD COLUMN target_org_id TEXT",
    "CREATE INDEX audit_log_target_org_seq ON audit_log (target_org_id, seq)
     WHERE target_org_id IS NOT NULL",
    "CREATE TABLE audit_verify_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        seq INTEGER NOT NULL,
        hash TEXT NOT NULL,
        mac TEXT NOT NULL,
        verified_at INTEGER NOT NULL
    ) STRICT",
];

/// Streaming agents (their API keys as SHA-256), one-time connection tickets, the license.
const MACHINE_CREDENTIALS: &[&str] = &[
    "CREATE TABLE agents (
        id TEXT PRIMARY KEY,
        org_id TEXT NOT NULL,
        name TEXT NOT NULL,
        platform TEXT NOT NULL,
        region TEXT NOT NULL DEFAULT '',
        api_key_hash TEXT NOT NULL UNIQUE,
        api_key_last_used_at INTEGER,
        status TEXT NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'online', 'draining', 'offline')),
        capacity TEXT NOT NULL DEFAULT '{}',
        registered_at INTEGER,
        last_heartbeat_at INTEGER,
        created_at INTEGER NOT NULL,
        revoked_at INTEGER,
        UNIQUE (org_id, name)
    ) STRICT",
    "CREATE TABLE tickets (
        ticket_hash TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        org_id TEXT NOT NULL,
        purpose TEXT NOT NULL,
        session_id TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID",
    "CREATE TABLE licenses (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        license_key TEXT NOT NULL,
        activated_at INTEGER NOT NULL,
        activated_by TEXT NOT NULL
    ) STRICT",
];

/// Accounts, orgs, login sessions, tokens (hashes only), API keys, teams, MFA, CSRF.
///
/// Times are milliseconds since the Unix epoch. Every secret column holds a SHA-256 (tokens) or an
/// argon2id PHC string (passwords), never the secret. Foreign keys are documented, not enforced
/// (enforcement needs a pragma on every connection); deletes are explicit, in one transaction.
const IDENTITY: &[&str] = &[
    "CREATE TABLE orgs (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE COLLATE NOCASE,
        display_name TEXT NOT NULL,
        created_at INTEGER NOT NULL
    ) STRICT",
    "CREATE TABLE users (
        id TEXT PRIMARY KEY,
        org_id TEXT NOT NULL,
        username TEXT NOT NULL UNIQUE COLLATE NOCASE,
        email TEXT NOT NULL UNIQUE COLLATE NOCASE,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'user', 'auditor')),
        status TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
        platform_admin INTEGER NOT NULL DEFAULT 0,
        mfa_secret TEXT,
        mfa_enabled INTEGER NOT NULL DEFAULT 0,
        mfa_last_step INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    ) STRICT",
    "CREATE INDEX users_org ON users (org_id)",
    "CREATE TABLE login_sessions (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        org_id TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        last_seen_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        revoked_at INTEGER,
        revoke_reason TEXT,
        created_ip TEXT,
        user_agent TEXT,
        cookie INTEGER NOT NULL DEFAULT 0
    ) STRICT",
    "CREATE INDEX login_sessions_user ON login_sessions (user_id, revoked_at)",
    "CREATE TABLE access_tokens (
        token_hash TEXT PRIMARY KEY,
        session_id TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID",
    "CREATE INDEX access_tokens_session ON access_tokens (session_id)",
    "CREATE TABLE refresh_tokens (
        token_hash TEXT PRIMARY KEY,
        session_id TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at INTEGER
    ) STRICT, WITHOUT ROWID",
    "CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id)",
    "CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        org_id TEXT NOT NULL,
        name TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        scopes TEXT NOT NULL,
        expires_at INTEGER,
        created_at INTEGER NOT NULL,
        created_ip TEXT,
        user_agent TEXT,
        last_used_at INTEGER,
        use_count INTEGER NOT NULL DEFAULT 0,
        revoked_at INTEGER
    ) STRICT",
    "CREATE INDEX api_keys_user ON api_keys (user_id)",
    "CREATE TABLE teams (
        id TEXT PRIMARY KEY,
        org_id TEXT NOT NULL,
        name TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        created_at INTEGER NOT NULL,
        UNIQUE (org_id, name)
    ) STRICT",
    "CREATE TABLE team_members (
        team_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        role TEXT NOT NULL,
        added_at INTEGER NOT NULL,
        PRIMARY KEY (team_id, user_id)
    ) STRICT, WITHOUT ROWID",
    "CREATE INDEX team_members_user ON team_members (user_id)",
    "CREATE TABLE team_role_permissions (
        role TEXT NOT NULL,
        permission TEXT NOT NULL,
        PRIMARY KEY (role, permission)
    ) STRICT, WITHOUT ROWID",
    "INSERT INTO team_role_permissions (role, permission) VALUES
        ('admin', 'sessions.view'), ('admin', 'sessions.create'), ('admin', 'sessions.delete'),
        ('admin', 'sessions.share'), ('admin', 'team.manage'), ('admin', 'team.billing'),
        ('member', 'sessions.view'), ('member', 'sessions.create'), ('member', 'sessions.share'),
        ('viewer', 'sessions.view')",
    "CREATE TABLE mfa_backup_codes (
        user_id TEXT NOT NULL,
        code_hash TEXT NOT NULL,
        used_at INTEGER,
        PRIMARY KEY (user_id, code_hash)
    ) STRICT, WITHOUT ROWID",
    "CREATE TABLE csrf_tokens (
        token_hash TEXT PRIMARY KEY,
        expires_at INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID",
];

/// Personal access tokens: the first characters of the token (`ssp_` + 4 random ones, 24 bits of
/// 256) so owners can recognise a key in lists, and an index in the order of the owner's list
/// (newest first) that also serves every per-user lookup. Older keys have no prefix (NULL).
const API_KEY_PREFIX: &[&str] = &[
    "ALTER TABLE api_keys ADD COLUMN key_prefix TEXT",
    "CREATE INDEX api_keys_user_created ON api_keys (user_id, created_at, id)",
    // Covered by the index above (same leading column).
    "DROP INDEX api_keys_user",
];

/// The schema version this code expects.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Opens a connection, applies the per-connection settings and makes sure the schema is current.
pub fn open_database(
    opener: &dyn SqlOpener,
    synchronous: Synchronous,
    now_ms: i64,
) -> Result<Database, StoreError> {
    let conn = opener.open()?;
    // `synchronous` is per connection (it does not persist in the file), so it is set on every
    // open. The value comes from a closed enum, never from input. On a database server (libSQL,
    // `Synchronous::Server`) durability and the journal mode are the server's: it refuses
    // `PRAGMA name=value`, so neither pragma is sent there.
    let local_file = match synchronous.pragma() {
        Some(pragma) => {
            conn.execute(pragma, &[])?;
            true
        }
        None => false,
    };
    if user_version(conn.as_ref())? < latest_version() {
        migrate_with(conn.as_ref(), now_ms, local_file)?;
    }
    Ok(Database::from_connection(conn))
}

fn user_version(conn: &dyn SqlConnection) -> Result<i64, StoreError> {
    let rows = conn.execute("PRAGMA user_version", &[])?;
    rows.first()
        .ok_or_else(|| StoreError::sqlite("PRAGMA user_version returned no row"))?
        .i64("user_version")
}

/// Applies every migration newer than the database, in one transaction.
pub fn migrate(conn: &dyn SqlConnection, now_ms: i64) -> Result<(), StoreError> {
    migrate_with(conn, now_ms, true)
}

/// [`migrate`]; `set_wal` turns WAL on first (a local SQLite file; not on a database server).
fn migrate_with(conn: &dyn SqlConnection, now_ms: i64, set_wal: bool) -> Result<(), StoreError> {
    if set_wal {
        // WAL persists in the database file, so turning it on once is enough; it cannot be
        // changed inside a transaction. A file that cannot switch keeps its mode: that is fine.
        let _ = conn.execute("PRAGMA journal_mode = WAL", &[]);
    }
    conn.execute("BEGIN IMMEDIATE", &[])?;
    match apply_pending(conn, now_ms) {
        Ok(()) => conn.execute("COMMIT", &[]).map(|_| ()),
        Err(err) => {
            let _ = conn.execute("ROLLBACK", &[]);
            Err(err)
        }
    }
}

fn apply_pending(conn: &dyn SqlConnection, now_ms: i64) -> Result<(), StoreError> {
    let current = user_version(conn)?;
    let applied_at = Timestamp::from_ms(now_ms).to_rfc3339();
    for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
        for statement in migration.statements {
            conn.execute(statement, &[]).map_err(|e| {
                StoreError::sqlite(format!(
                    "migration {} ({}): {}",
                    migration.version, migration.name, e.message
                ))
            })?;
        }
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            &[
                Value::Integer(migration.version),
                Value::from(migration.name),
                Value::from(applied_at.as_str()),
            ],
        )?;
    }
    // PRAGMA takes no bound parameters; the value is our own constant.
    conn.execute(&format!("PRAGMA user_version = {}", latest_version()), &[])?;
    Ok(())
}

#[cfg(all(test, feature = "native"))]
mod tests {
    use super::*;
    use crate::store::native::NativeSql;

    #[test]
    fn versions_are_consecutive_from_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(
                m.version,
                i as i64 + 1,
                "migration {} is out of sequence",
                m.name
            );
        }
    }

    #[test]
    fn all_migrations_apply_to_an_empty_database() {
        let sql = NativeSql::temp();
        let db = open_database(&sql, Synchronous::Normal, 0).unwrap();
        let rows = db
            .execute(
                "SELECT version FROM schema_migrations ORDER BY version",
                &[],
            )
            .unwrap();
        let versions: Vec<i64> = rows.iter().map(|r| r.i64("version").unwrap()).collect();
        assert_eq!(versions, (1..=latest_version()).collect::<Vec<_>>());
        let mode = db.execute("PRAGMA journal_mode", &[]).unwrap();
        assert_eq!(mode.first().unwrap().str("journal_mode").unwrap(), "wal");
    }

    #[test]
    fn applying_twice_is_a_no_op() {
        let sql = NativeSql::temp();
        open_database(&sql, Synchronous::Normal, 0).unwrap();
        let db = open_database(&sql, Synchronous::Full, 1).unwrap();
        // Forcing the migration again under the lock must not duplicate anything.
        migrate_for_test(&sql);
        let n = db
            .execute("SELECT count(*) AS n FROM schema_migrations", &[])
            .unwrap();
        assert_eq!(n.first().unwrap().i64("n").unwrap(), latest_version());
    }

    fn migrate_for_test(sql: &NativeSql) {
        let conn = sql.open().unwrap();
        migrate(conn.as_ref(), 2).unwrap();
    }

    #[test]
    fn a_current_schema_costs_one_pragma_read() {
        let sql = NativeSql::temp();
        open_database(&sql, Synchronous::Normal, 0).unwrap();
        let conn = sql.open().unwrap();
        assert_eq!(user_version(conn.as_ref()).unwrap(), latest_version());
    }

    #[test]
    fn a_failing_database_is_a_store_error() {
        let sql = NativeSql::temp();
        sql.fail(true);
        let err = open_database(&sql, Synchronous::Normal, 0).err().unwrap();
        assert_eq!(err.store, crate::store::StoreKind::Sqlite);
    }

    /// A connection that refuses `PRAGMA name=value` the way libSQL does ("unsupported
    /// statement"), and records what it was asked.
    struct LibsqlLike {
        inner: Box<dyn SqlConnection>,
        seen: std::rc::Rc<std::cell::RefCell<Vec<String>>>,
    }

    impl SqlConnection for LibsqlLike {
        fn execute(
            &self,
            statement: &str,
            params: &[Value],
        ) -> Result<crate::store::Rows, StoreError> {
            self.seen.borrow_mut().push(statement.to_owned());
            let upper = statement.to_ascii_uppercase();
            let refused = ["PRAGMA SYNCHRONOUS", "PRAGMA JOURNAL_MODE"]
                .iter()
                .any(|p| upper.starts_with(p) && upper.contains('='));
            if refused {
                return Err(StoreError::sqlite(format!(
                    "unsupported statement: {statement}"
                )));
            }
            self.inner.execute(statement, params)
        }
        fn changes(&self) -> Result<u64, StoreError> {
            self.inner.changes()
        }
        fn last_insert_rowid(&self) -> Result<i64, StoreError> {
            self.inner.last_insert_rowid()
        }
    }

    struct LibsqlLikeOpener {
        sql: NativeSql,
        seen: std::rc::Rc<std::cell::RefCell<Vec<String>>>,
    }

    impl SqlOpener for LibsqlLikeOpener {
        fn open(&self) -> Result<Box<dyn SqlConnection>, StoreError> {
            Ok(Box::new(LibsqlLike {
                inner: self.sql.open()?,
                seen: self.seen.clone(),
            }))
        }
    }

    #[test]
    fn a_database_server_gets_no_refused_pragma() {
        let opener = LibsqlLikeOpener {
            sql: NativeSql::temp(),
            seen: Default::default(),
        };
        // The local settings fail there, as every request did on libSQL before `server`.
        assert!(open_database(&opener, Synchronous::Normal, 0).is_err());
        opener.seen.borrow_mut().clear();
        open_database(&opener, Synchronous::Server, 0).unwrap();
        let db = open_database(&opener, Synchronous::Server, 1).unwrap();
        let n = db
            .execute("SELECT count(*) AS n FROM schema_migrations", &[])
            .unwrap();
        assert_eq!(n.first().unwrap().i64("n").unwrap(), latest_version());
        let seen = opener.seen.borrow();
        assert!(
            !seen
                .iter()
                .any(|s| s.to_ascii_uppercase().starts_with("PRAGMA")
                    && s.contains('=')
                    && !s.to_ascii_uppercase().starts_with("PRAGMA USER_VERSION")),
            "{seen:?}"
        );
    }
}
