//! Embedded, numbered, forward-only schema migrations, applied automatically and idempotently the
//! first time a request opens the database, so a fresh `spin up` (or a fresh libSQL database on a
//! deployed app) needs no manual step.
//!
//! Per-request cost: none. Opening a connection runs no schema check (it used to run one
//! `PRAGMA user_version` per request — a round trip on libSQL). The schema is found behind in
//! two ways instead:
//! - a statement fails because a table or column does not exist (a typed
//!   [`ErrorKind::MissingSchema`](crate::store::ErrorKind), see [`Database`]): the connection
//!   checks the version once, migrates if behind and retries the statement — this is how a fresh
//!   database is set up by its first request;
//! - every audit row's insert returns the schema version with it (`RETURNING … (SELECT
//!   user_version FROM pragma_user_version)`, no extra statement), so a migration that adds no
//!   table or column (an index, a trigger) is applied right after the first request that runs on
//!   the new code ([`Database::ensure_schema`]).
//!
//! Migrating takes the write lock (`BEGIN IMMEDIATE`), re-checks under the lock (another instance
//! may have migrated meanwhile), applies what is missing and records each step in
//! `schema_migrations`.
//!
//! A migration is a numbered file, `shared/migrations/NNNN_name.sql`, embedded at build time and
//! split into single statements at compile time ([`crate::sql_file!`]: Spin's `execute` takes one
//! statement at a time); `crate::sql_file` documents the format and checks every file is listed.
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

/// All migrations, in order. Versions are 1, 2, 3, … without gaps (a test checks it). Each is a
/// file in `shared/migrations/` (its SQL, with the comments that explain it).
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "schema_migrations",
        statements: crate::sql_file!("../migrations/0001_schema_migrations.sql"),
    },
    Migration {
        version: 2,
        name: "identity",
        statements: crate::sql_file!("../migrations/0002_identity.sql"),
    },
    Migration {
        version: 3,
        name: "api_key_prefix",
        statements: crate::sql_file!("../migrations/0003_api_key_prefix.sql"),
    },
    Migration {
        version: 4,
        name: "machine_credentials",
        statements: crate::sql_file!("../migrations/0004_machine_credentials.sql"),
    },
    Migration {
        version: 5,
        name: "rate_limits",
        statements: crate::sql_file!("../migrations/0005_rate_limits.sql"),
    },
    Migration {
        version: 6,
        name: "audit_log",
        statements: crate::sql_file!("../migrations/0006_audit_log.sql"),
    },
    Migration {
        version: 7,
        name: "audit_query_indexes",
        statements: crate::sql_file!("../migrations/0007_audit_query_indexes.sql"),
    },
    Migration {
        version: 8,
        name: "audit_hardening",
        statements: crate::sql_file!("../migrations/0008_audit_hardening.sql"),
    },
    Migration {
        version: 9,
        name: "audit_sealer",
        statements: crate::sql_file!("../migrations/0009_audit_sealer.sql"),
    },
    Migration {
        version: 10,
        name: "sessions_templates",
        statements: crate::sql_file!("../migrations/0010_sessions_templates.sql"),
    },
    Migration {
        version: 11,
        name: "catalog",
        statements: crate::sql_file!("../migrations/0011_catalog.sql"),
    },
    Migration {
        version: 12,
        name: "template_list_index",
        statements: crate::sql_file!("../migrations/0012_template_list_index.sql"),
    },
    Migration {
        version: 13,
        name: "webhook_deliveries",
        statements: crate::sql_file!("../migrations/0013_webhook_deliveries.sql"),
    },
];

/// The schema version this code expects.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Opens a connection and applies the per-connection settings. The schema is not checked here
/// (module doc): the returned [`Database`] migrates on demand.
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
    Ok(Database::from_connection(conn).migrating_on_demand(now_ms, local_file))
}

/// Makes sure the schema is current: migrates when it is behind. Must run outside a
/// transaction. `Ok(true)`: the schema is current now.
pub fn migrate_if_behind(
    conn: &dyn SqlConnection,
    now_ms: i64,
    local_file: bool,
) -> Result<bool, StoreError> {
    if user_version(conn)? < latest_version() {
        migrate_with(conn, now_ms, local_file)?;
    }
    Ok(true)
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
    fn opening_a_current_schema_runs_no_schema_check() {
        let sql = NativeSql::temp();
        open_database(&sql, Synchronous::Normal, 0)
            .unwrap()
            .execute("SELECT count(*) AS n FROM schema_migrations", &[])
            .unwrap();
        let db = open_database(&sql, Synchronous::Normal, 0).unwrap();
        // Only the per-connection pragma went to the store; then one statement, no version read.
        db.execute("SELECT count(*) AS n FROM users", &[]).unwrap();
        assert_eq!(db.statements(), 1);
        let conn = sql.open().unwrap();
        assert_eq!(user_version(conn.as_ref()).unwrap(), latest_version());
    }

    #[test]
    fn a_schema_behind_by_a_trigger_only_is_migrated_by_ensure_schema() {
        let sql = NativeSql::temp();
        let db = open_database(&sql, Synchronous::Normal, 0).unwrap();
        db.execute("SELECT 1 FROM users", &[]).unwrap();
        // Pretend migration 9 (triggers only: no table a statement would miss) is not applied,
        // nor anything after it (their tables dropped).
        db.execute("DROP TRIGGER audit_log_seal_once", &[]).unwrap();
        for statement in MIGRATIONS
            .iter()
            .filter(|m| m.version > 9)
            .flat_map(|m| m.statements.iter())
        {
            if let Some(rest) = statement.trim_start().strip_prefix("CREATE TABLE ") {
                let table: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                db.execute(&format!("DROP TABLE {table}"), &[]).unwrap();
            }
        }
        db.execute("PRAGMA user_version = 8", &[]).unwrap();
        db.execute("DELETE FROM schema_migrations WHERE version >= 9", &[])
            .unwrap();
        let db = open_database(&sql, Synchronous::Normal, 0).unwrap();
        db.ensure_schema(8).unwrap();
        let n = db
            .execute(
                "SELECT count(*) AS n FROM sqlite_master WHERE name = 'audit_log_seal_once'",
                &[],
            )
            .unwrap();
        assert_eq!(n.first().unwrap().i64("n").unwrap(), 1);
    }

    #[test]
    fn a_fresh_database_is_migrated_by_a_first_statement_inside_a_transaction() {
        // The limiter's first statement on a fresh database runs in its own `BEGIN IMMEDIATE`.
        let sql = NativeSql::temp();
        let db = open_database(&sql, Synchronous::Normal, 0).unwrap();
        db.execute("BEGIN IMMEDIATE", &[]).unwrap();
        db.execute("INSERT INTO rate_limits (key, tat) VALUES ('k', 1)", &[])
            .unwrap();
        db.execute("COMMIT", &[]).unwrap();
        let mode = db.execute("PRAGMA journal_mode", &[]).unwrap();
        assert_eq!(mode.first().unwrap().str("journal_mode").unwrap(), "wal");
        let n = db
            .execute("SELECT count(*) AS n FROM rate_limits", &[])
            .unwrap();
        assert_eq!(n.first().unwrap().i64("n").unwrap(), 1);
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
