//! SQL access: one statement per `execute`, parameters always bound (never interpolated).
//!
//! Spin's `spin:sqlite/sqlite@3.0.0` has no transaction API; `BEGIN … COMMIT` across `execute`
//! calls on one connection works, which [`Database::transaction`] wraps. Prefer single atomic
//! statements (`INSERT … ON CONFLICT … RETURNING`, `DELETE … RETURNING`, `UPDATE … WHERE` +
//! [`Database::changes`]) and use transactions only where atomicity across statements is needed.

use super::StoreError;

/// A SQLite value, as Spin's interface carries it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
    Null,
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Integer(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Integer(i64::from(v))
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Integer(i64::from(v))
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Integer(i64::from(v))
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Real(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Blob(v)
    }
}
impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::Blob(v.to_vec())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// The result of one statement.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl Rows {
    pub fn iter(&self) -> impl Iterator<Item = Row<'_>> {
        self.rows.iter().map(move |values| Row {
            columns: &self.columns,
            values,
        })
    }

    pub fn first(&self) -> Option<Row<'_>> {
        self.iter().next()
    }

    /// Every row read by `f`, in order.
    pub fn decode<T, E>(&self, f: impl Fn(&Row<'_>) -> Result<T, E>) -> Result<Vec<T>, E> {
        self.iter().map(|row| f(&row)).collect()
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// One row, with typed accessors by column name. A missing column or a wrong type is an error,
/// never a silent default.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    columns: &'a [String],
    values: &'a [Value],
}

impl<'a> Row<'a> {
    pub fn value(&self, column: &str) -> Result<&'a Value, StoreError> {
        self.columns
            .iter()
            .position(|c| c == column)
            .and_then(|i| self.values.get(i))
            .ok_or_else(|| StoreError::sqlite(format!("no column `{column}` in result")))
    }

    pub fn i64(&self, column: &str) -> Result<i64, StoreError> {
        match self.value(column)? {
            Value::Integer(v) => Ok(*v),
            other => Err(type_error(column, "integer", other)),
        }
    }

    pub fn opt_i64(&self, column: &str) -> Result<Option<i64>, StoreError> {
        match self.value(column)? {
            Value::Null => Ok(None),
            Value::Integer(v) => Ok(Some(*v)),
            other => Err(type_error(column, "integer or null", other)),
        }
    }

    pub fn str(&self, column: &str) -> Result<&'a str, StoreError> {
        match self.value(column)? {
            Value::Text(v) => Ok(v),
            other => Err(type_error(column, "text", other)),
        }
    }

    pub fn opt_str(&self, column: &str) -> Result<Option<&'a str>, StoreError> {
        match self.value(column)? {
            Value::Null => Ok(None),
            Value::Text(v) => Ok(Some(v)),
            other => Err(type_error(column, "text or null", other)),
        }
    }

    pub fn blob(&self, column: &str) -> Result<&'a [u8], StoreError> {
        match self.value(column)? {
            Value::Blob(v) => Ok(v),
            other => Err(type_error(column, "blob", other)),
        }
    }
}

/// The value's type is named, not the value (a column may hold a secret's hash, and printing a
/// real number would link float formatting into every component).
fn type_error(column: &str, expected: &str, got: &Value) -> StoreError {
    let got = match got {
        Value::Integer(_) => "integer",
        Value::Real(_) => "real",
        Value::Text(_) => "text",
        Value::Blob(_) => "blob",
        Value::Null => "null",
    };
    StoreError::sqlite(format!("column `{column}`: expected {expected}, got {got}"))
}

/// One open connection (Spin: `spin:sqlite/sqlite@3.0.0` `connection`).
pub trait SqlConnection {
    /// Runs exactly one statement with bound parameters.
    fn execute(&self, statement: &str, params: &[Value]) -> Result<Rows, StoreError>;
    /// Rows changed by the most recent INSERT, UPDATE or DELETE.
    fn changes(&self) -> Result<u64, StoreError>;
    /// Rowid of the most recent successful INSERT.
    fn last_insert_rowid(&self) -> Result<i64, StoreError>;
}

/// A connection that is set up (pragmas) and whose schema is current.
///
/// Transactions nest: the outermost level is `BEGIN IMMEDIATE … COMMIT`, inner levels are
/// savepoints.
///
/// **The unit of work** of a mutating request ([`Database::defer_unit`]) is opened lazily: the
/// first statement that writes (anything but `SELECT`, `VALUES`, `EXPLAIN` or a `PRAGMA` read)
/// or the first [`Database::begin`] issues `BEGIN IMMEDIATE` and so takes SQLite's write lock.
/// Reads, credential checks, password hashing and outbound calls before that point run without
/// the lock; a mutation that never writes never takes it. The pipeline closes the unit after the
/// handler ([`Database::finish_unit`]), with the request's audit row inside it.
///
/// **The schema is migrated on demand**: a statement that fails because a table or column does
/// not exist ([`ErrorKind::MissingSchema`](super::ErrorKind)) makes the connection check the
/// schema version once and migrate if it is behind, then retry the statement (see
/// [`crate::migrations`]).
pub struct Database {
    conn: Box<dyn SqlConnection>,
    depth: std::cell::Cell<u32>,
    unit: std::cell::Cell<Unit>,
    /// `Some((now_ms, local_file))`: migrate on a missing-schema error (see the type's doc).
    migrate_on_miss: Option<(i64, bool)>,
    schema_checked: std::cell::Cell<bool>,
    /// A transaction is open (whoever opened it: this type or a raw `BEGIN`).
    in_txn: std::cell::Cell<bool>,
    /// Statements run since the transaction began.
    since_begin: std::cell::Cell<u32>,
    statements: std::cell::Cell<u64>,
}

/// The state of a request's unit of work ([`Database::defer_unit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// No unit of work (a read, or outside a request).
    None,
    /// A mutating request: the first write will open it.
    Pending,
    /// Open: `BEGIN IMMEDIATE` was issued, the write lock is held.
    Open,
}

/// Whether a statement only reads (it then needs no write lock).
pub fn is_read_only(statement: &str) -> bool {
    let trimmed = statement.trim_start();
    let word: String = trimmed
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_uppercase();
    match word.as_str() {
        "SELECT" | "VALUES" | "EXPLAIN" => true,
        "PRAGMA" => !trimmed.contains('='),
        _ => false,
    }
}

impl Database {
    /// Wraps a raw connection. Use [`crate::migrations::open_database`] to get one that is set up.
    pub fn from_connection(conn: Box<dyn SqlConnection>) -> Self {
        Self {
            conn,
            depth: std::cell::Cell::new(0),
            unit: std::cell::Cell::new(Unit::None),
            migrate_on_miss: None,
            schema_checked: std::cell::Cell::new(false),
            in_txn: std::cell::Cell::new(false),
            since_begin: std::cell::Cell::new(0),
            statements: std::cell::Cell::new(0),
        }
    }

    /// Migrates the schema when a statement finds it behind (`now_ms` stamps the migration;
    /// `local_file`: a local SQLite file, where WAL is switched on first).
    pub fn migrating_on_demand(mut self, now_ms: i64, local_file: bool) -> Self {
        self.migrate_on_miss = Some((now_ms, local_file));
        self
    }

    pub fn execute(&self, statement: &str, params: &[Value]) -> Result<Rows, StoreError> {
        if self.unit.get() == Unit::Pending && !is_read_only(statement) {
            self.open_unit()?;
        }
        self.run(statement, params)
    }

    /// Statements run on this connection so far (pragmas included).
    pub fn statements(&self) -> u64 {
        self.statements.get()
    }

    fn run(&self, statement: &str, params: &[Value]) -> Result<Rows, StoreError> {
        self.statements.set(self.statements.get() + 1);
        let result = self.conn.execute(statement, params);
        let result = match result {
            Err(err) if err.kind == super::ErrorKind::MissingSchema => {
                self.migrate_and_retry(err, statement, params)
            }
            other => other,
        };
        self.track(statement, result.is_ok());
        result
    }

    /// Follows transaction control statements, whoever issues them.
    fn track(&self, statement: &str, ok: bool) {
        let upper: String = statement
            .trim_start()
            .chars()
            .take(12)
            .collect::<String>()
            .to_ascii_uppercase();
        if upper.starts_with("BEGIN") {
            if ok {
                self.in_txn.set(true);
                self.since_begin.set(0);
            }
        } else if upper.starts_with("COMMIT")
            || upper.starts_with("END")
            || (upper.starts_with("ROLLBACK") && !upper.starts_with("ROLLBACK TO"))
        {
            self.in_txn.set(false);
        } else if self.in_txn.get() {
            self.since_begin.set(self.since_begin.get() + 1);
        }
    }

    /// A statement found the schema behind: migrate (once per connection) and retry it. Inside
    /// a transaction that has run nothing else yet (the limiter's, or a unit just opened) the
    /// transaction is restarted around the migration; deeper inside one, the error stands.
    fn migrate_and_retry(
        &self,
        err: StoreError,
        statement: &str,
        params: &[Value],
    ) -> Result<Rows, StoreError> {
        let Some((now_ms, local_file)) = self.migrate_on_miss else {
            return Err(err);
        };
        if self.schema_checked.replace(true) {
            return Err(err);
        }
        let restart = self.in_txn.get();
        if restart && (self.since_begin.get() > 0 || self.depth.get() > 1) {
            return Err(err);
        }
        if restart {
            self.statements.set(self.statements.get() + 1);
            self.conn.execute("ROLLBACK", &[])?;
        }
        self.statements.set(self.statements.get() + 1);
        let mut migrated =
            crate::migrations::migrate_if_behind(self.conn.as_ref(), now_ms, local_file);
        if migrated.is_err() {
            // Once more: a database server may interrupt a long migration transaction under load
            // (seen with sqld as SQLITE_INTERRUPT); migrating is idempotent under its lock.
            self.statements.set(self.statements.get() + 1);
            migrated = crate::migrations::migrate_if_behind(self.conn.as_ref(), now_ms, local_file);
        }
        if restart {
            self.statements.set(self.statements.get() + 1);
            self.conn.execute("BEGIN IMMEDIATE", &[])?;
        }
        match migrated.map_err(|e| {
            StoreError::sqlite(format!(
                "{} (while migrating after: {})",
                e.message, err.message
            ))
        })? {
            true => {
                self.statements.set(self.statements.get() + 1);
                self.conn.execute(statement, params)
            }
            false => Err(err),
        }
    }

    /// A statement reported the schema version (`seen`, e.g. piggybacked on the audit insert):
    /// migrate now if it is behind the code's. Outside a transaction only; a no-op otherwise.
    pub fn ensure_schema(&self, seen: i64) -> Result<(), StoreError> {
        if seen >= crate::migrations::latest_version() || self.in_txn.get() {
            return Ok(());
        }
        let (now_ms, local_file) = self.migrate_on_miss.unwrap_or((0, true));
        self.statements.set(self.statements.get() + 1);
        crate::migrations::migrate_if_behind(self.conn.as_ref(), now_ms, local_file).map(|_| ())
    }

    pub fn changes(&self) -> Result<u64, StoreError> {
        self.conn.changes()
    }

    pub fn last_insert_rowid(&self) -> Result<i64, StoreError> {
        self.conn.last_insert_rowid()
    }

    /// How many transaction levels are open.
    pub fn depth(&self) -> u32 {
        self.depth.get()
    }

    /// Marks this connection as serving a mutating request: its first write (or `begin`) opens
    /// the unit of work. No statement is run here.
    pub fn defer_unit(&self) {
        if self.depth.get() == 0 {
            self.unit.set(Unit::Pending);
        }
    }

    /// The state of the unit of work.
    pub fn unit(&self) -> Unit {
        self.unit.get()
    }

    /// Opens a pending unit of work now, taking the write lock before its first write: for a
    /// check-then-write that must not interleave with another request (the last platform admin,
    /// a licensed seat). Call it after any slow work (hashing, outbound calls). A no-op when no
    /// unit is pending (a read, or the unit is already open).
    pub fn lock_unit(&self) -> Result<(), StoreError> {
        if self.unit.get() == Unit::Pending {
            self.open_unit()?;
        }
        Ok(())
    }

    /// Steps outside a **pending** unit of work until the returned guard is dropped, for work
    /// that must interleave short writes with slow outbound calls (a catalog sync: claim a
    /// lease, fetch from GitHub, commit): while the guard lives each statement autocommits and
    /// each [`Database::transaction`] is its own short `BEGIN IMMEDIATE … COMMIT`, so the write
    /// lock is never held across an outbound call. Those writes are committed as they go and are
    /// not undone if the request later fails (the caller makes them self-consistent). Dropping
    /// the guard makes the unit pending again: the request's later writes and its audit row
    /// still form one unit. Refused when the unit is already open: its lock would be held across
    /// the slow work (and its earlier writes would commit early). Without a unit (a read, or
    /// outside a request) the guard changes nothing.
    pub fn outside_unit(&self) -> Result<OutsideUnit<'_>, StoreError> {
        match self.unit.get() {
            Unit::Open => Err(StoreError::sqlite(
                "outside_unit: the unit of work is already open",
            )),
            Unit::Pending => {
                self.unit.set(Unit::None);
                Ok(OutsideUnit {
                    db: self,
                    restore: true,
                })
            }
            Unit::None => Ok(OutsideUnit {
                db: self,
                restore: false,
            }),
        }
    }

    fn open_unit(&self) -> Result<(), StoreError> {
        self.unit.set(Unit::None);
        self.run("BEGIN IMMEDIATE", &[])?;
        self.depth.set(1);
        self.unit.set(Unit::Open);
        Ok(())
    }

    /// Closes the unit of work: `keep` commits it, otherwise every write of it is undone. A
    /// unit that was never opened (nothing was written) just ends. Levels a handler left open
    /// are undone first.
    pub fn finish_unit(&self, keep: bool) -> Result<(), StoreError> {
        let state = self.unit.replace(Unit::None);
        if state != Unit::Open {
            return Ok(());
        }
        while self.depth.get() > 1 {
            self.rollback();
        }
        if keep {
            self.commit()
        } else {
            self.rollback();
            Ok(())
        }
    }

    /// Opens a level: `BEGIN IMMEDIATE` (taking the write lock up front, so two writers never
    /// deadlock upgrading read locks) or, inside one, a savepoint. Inside a pending unit of work
    /// the unit is opened first.
    pub fn begin(&self) -> Result<(), StoreError> {
        if self.unit.get() == Unit::Pending {
            self.open_unit()?;
        }
        let depth = self.depth.get();
        if depth == 0 {
            self.run("BEGIN IMMEDIATE", &[])?;
        } else {
            self.run(&format!("SAVEPOINT level_{depth}"), &[])?;
        }
        self.depth.set(depth + 1);
        Ok(())
    }

    /// Closes the innermost level, keeping its writes.
    pub fn commit(&self) -> Result<(), StoreError> {
        let depth = self.depth.get();
        match depth {
            0 => return Err(StoreError::sqlite("commit without a transaction")),
            1 => {
                if let Err(err) = self.run("COMMIT", &[]) {
                    let _ = self.run("ROLLBACK", &[]);
                    self.depth.set(0);
                    self.unit.set(Unit::None);
                    return Err(err);
                }
                self.unit.set(Unit::None);
            }
            _ => {
                self.run(&format!("RELEASE level_{}", depth - 1), &[])?;
            }
        }
        self.depth.set(depth - 1);
        Ok(())
    }

    /// Closes the innermost level, undoing its writes (best effort: a failing store has nothing
    /// left to undo).
    pub fn rollback(&self) {
        let depth = self.depth.get();
        match depth {
            0 => return,
            1 => {
                let _ = self.run("ROLLBACK", &[]);
                self.unit.set(Unit::None);
            }
            _ => {
                let _ = self.run(&format!("ROLLBACK TO level_{}", depth - 1), &[]);
                let _ = self.run(&format!("RELEASE level_{}", depth - 1), &[]);
            }
        }
        self.depth.set(depth - 1);
    }

    /// Runs `body` in a transaction level; any error rolls it back.
    pub fn transaction<T, E>(&self, body: impl FnOnce(&Database) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        self.begin()?;
        match body(self) {
            Ok(value) => {
                self.commit()?;
                Ok(value)
            }
            Err(err) => {
                self.rollback();
                Err(err)
            }
        }
    }
}

/// The guard of [`Database::outside_unit`]: dropping it makes a suspended unit of work pending
/// again (unless a level is still open, which the pipeline then closes as usual).
#[must_use = "the unit of work is suspended only while the guard lives"]
pub struct OutsideUnit<'a> {
    db: &'a Database,
    restore: bool,
}

impl Drop for OutsideUnit<'_> {
    fn drop(&mut self) {
        if self.restore && self.db.unit.get() == Unit::None && self.db.depth.get() == 0 {
            self.db.unit.set(Unit::Pending);
        }
    }
}

/// Builds a parameter list: `params![id, name, 3]`.
#[macro_export]
macro_rules! params {
    () => { &[] as &[$crate::store::Value] };
    ($($value:expr),+ $(,)?) => { &[$($crate::store::Value::from($value)),+] };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_accessors_are_typed() {
        let rows = Rows {
            columns: vec!["id".into(), "n".into(), "gone".into()],
            rows: vec![vec![
                Value::Text("a".into()),
                Value::Integer(3),
                Value::Null,
            ]],
        };
        let row = rows.first().unwrap();
        assert_eq!(row.str("id").unwrap(), "a");
        assert_eq!(row.i64("n").unwrap(), 3);
        assert_eq!(row.opt_str("gone").unwrap(), None);
        assert!(row.i64("id").is_err());
        assert!(row.str("missing").is_err());
    }

    #[test]
    fn params_macro_converts() {
        let p: &[Value] = params!["x", 2i64, Option::<String>::None];
        assert_eq!(
            p,
            &[Value::Text("x".into()), Value::Integer(2), Value::Null]
        );
    }
}

#[cfg(all(test, feature = "native"))]
mod nesting_tests {
    use super::*;
    use crate::store::native::NativeSql;
    use crate::store::SqlOpener;

    /// Whether another connection could take the write lock right now (no waiting).
    fn lock_is_free(sql: &NativeSql) -> bool {
        let other = rusqlite::Connection::open(sql.path()).unwrap();
        other.busy_timeout(std::time::Duration::ZERO).unwrap();
        let free = other.execute_batch("BEGIN IMMEDIATE").is_ok();
        if free {
            other.execute_batch("ROLLBACK").unwrap();
        }
        free
    }

    fn count(db: &Database) -> i64 {
        db.execute("SELECT count(*) AS n FROM t", &[])
            .unwrap()
            .first()
            .unwrap()
            .i64("n")
            .unwrap()
    }

    #[test]
    fn the_unit_of_work_takes_the_write_lock_at_the_first_write_not_before() {
        let sql = NativeSql::temp();
        let db = Database::from_connection(sql.open().unwrap());
        db.execute("CREATE TABLE t (x INTEGER)", &[]).unwrap();
        db.defer_unit();
        // Reads (credential checks) and whatever the handler does meanwhile (password hashing,
        // outbound calls) leave the lock free.
        db.execute("SELECT count(*) FROM t", &[]).unwrap();
        db.execute("PRAGMA user_version", &[]).unwrap();
        assert_eq!((db.unit(), db.depth()), (Unit::Pending, 0));
        assert!(lock_is_free(&sql));
        // The first write opens it.
        db.execute("INSERT INTO t VALUES (1)", &[]).unwrap();
        assert_eq!((db.unit(), db.depth()), (Unit::Open, 1));
        assert!(!lock_is_free(&sql));
        // A handler's own transaction nests inside it.
        db.transaction(|db| db.execute("INSERT INTO t VALUES (2)", &[]).map(|_| ()))
            .unwrap();
        db.finish_unit(true).unwrap();
        assert_eq!((db.unit(), db.depth(), count(&db)), (Unit::None, 0, 2));
        assert!(lock_is_free(&sql));
        // Undone as a whole (a 5xx or a failed audit row).
        db.defer_unit();
        db.transaction(|db| db.execute("INSERT INTO t VALUES (3)", &[]).map(|_| ()))
            .unwrap();
        assert_eq!(db.unit(), Unit::Open);
        db.finish_unit(false).unwrap();
        assert_eq!(count(&db), 2);
    }

    #[test]
    fn writes_outside_the_unit_never_hold_the_lock_between_statements() {
        let sql = NativeSql::temp();
        let db = Database::from_connection(sql.open().unwrap());
        db.execute("CREATE TABLE t (x INTEGER)", &[]).unwrap();
        db.defer_unit();
        {
            let _outside = db.outside_unit().unwrap();
            // A claim: one autocommitted write; the lock is free again right after it (the
            // outbound calls of a sync run here).
            db.execute("INSERT INTO t VALUES (1)", &[]).unwrap();
            assert_eq!((db.unit(), db.depth()), (Unit::None, 0));
            assert!(lock_is_free(&sql));
            // A commit: one short transaction of its own.
            db.transaction(|db| db.execute("INSERT INTO t VALUES (2)", &[]).map(|_| ()))
                .unwrap();
            assert!(lock_is_free(&sql));
        }
        // The unit is pending again: the request's later writes and its audit row form one unit,
        // which a failure undoes without touching what was committed outside it.
        assert_eq!(db.unit(), Unit::Pending);
        db.execute("INSERT INTO t VALUES (3)", &[]).unwrap();
        assert_eq!(db.unit(), Unit::Open);
        db.finish_unit(false).unwrap();
        assert_eq!(count(&db), 2);
        // An open unit cannot be stepped out of (its lock would span the slow work).
        db.defer_unit();
        db.execute("INSERT INTO t VALUES (4)", &[]).unwrap();
        assert!(db.outside_unit().is_err());
        db.finish_unit(true).unwrap();
        // Without a unit the guard changes nothing.
        drop(db.outside_unit().unwrap());
        assert_eq!(db.unit(), Unit::None);
    }

    #[test]
    fn a_mutation_that_never_writes_takes_no_lock_and_runs_no_statement_for_it() {
        let sql = NativeSql::temp();
        let db = Database::from_connection(sql.open().unwrap());
        db.execute("CREATE TABLE t (x INTEGER)", &[]).unwrap();
        let before = db.statements();
        db.defer_unit();
        db.execute("SELECT 1", &[]).unwrap();
        db.finish_unit(true).unwrap();
        assert_eq!(db.statements() - before, 1, "no BEGIN, no COMMIT");
        assert_eq!((db.unit(), db.depth()), (Unit::None, 0));
    }

    #[test]
    fn read_only_statements_are_told_apart() {
        for read in [
            "SELECT 1",
            "  select x from t",
            "PRAGMA user_version",
            "VALUES (1)",
        ] {
            assert!(is_read_only(read), "{read}");
        }
        for write in [
            "INSERT INTO t VALUES (1)",
            "update t set x = 1",
            "WITH a AS (SELECT 1) DELETE FROM t",
            "PRAGMA user_version = 3",
            "BEGIN IMMEDIATE",
        ] {
            assert!(!is_read_only(write), "{write}");
        }
    }

    #[test]
    fn inner_levels_are_savepoints() {
        let sql = NativeSql::temp();
        let db = Database::from_connection(sql.open().unwrap());
        db.execute("CREATE TABLE t (x INTEGER)", &[]).unwrap();
        db.begin().unwrap();
        db.execute("INSERT INTO t VALUES (1)", &[]).unwrap();
        // An inner failure undoes only the inner level.
        let inner: Result<(), StoreError> = db.transaction(|db| {
            db.execute("INSERT INTO t VALUES (2)", &[])?;
            Err(StoreError::sqlite("boom"))
        });
        assert!(inner.is_err());
        db.transaction(|db| db.execute("INSERT INTO t VALUES (3)", &[]).map(|_| ()))
            .unwrap();
        assert_eq!(db.depth(), 1);
        db.commit().unwrap();
        assert_eq!(db.depth(), 0);
        let rows = db.execute("SELECT x FROM t ORDER BY x", &[]).unwrap();
        let xs: Vec<i64> = rows.iter().map(|r| r.i64("x").unwrap()).collect();
        assert_eq!(xs, vec![1, 3]);
        // An outer rollback undoes everything, committed inner levels included.
        db.begin().unwrap();
        db.transaction(|db| db.execute("INSERT INTO t VALUES (4)", &[]).map(|_| ()))
            .unwrap();
        db.rollback();
        assert_eq!(
            db.execute("SELECT count(*) AS n FROM t", &[])
                .unwrap()
                .first()
                .unwrap()
                .i64("n")
                .unwrap(),
            2
        );
        assert!(db.commit().is_err(), "nothing left to commit");
    }
}
