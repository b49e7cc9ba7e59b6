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
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "schema_migrations",
    statements: &["CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at TEXT NOT NULL
        ) STRICT"],
}];

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
    // open. The value comes from a closed enum, never from input.
    conn.execute(synchronous.pragma(), &[])?;
    if user_version(conn.as_ref())? < latest_version() {
        migrate(conn.as_ref(), now_ms)?;
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
    // WAL persists in the database file, so turning it on once is enough; it cannot be changed
    // inside a transaction. Backends that do not support it (libSQL) may refuse: that is fine.
    let _ = conn.execute("PRAGMA journal_mode = WAL", &[]);
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
}
