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

fn type_error(column: &str, expected: &str, got: &Value) -> StoreError {
    StoreError::sqlite(format!(
        "column `{column}`: expected {expected}, got {got:?}"
    ))
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
/// savepoints. That lets the pipeline wrap a mutating request's handler and its audit row in one
/// unit of work ([`crate::audit`]) while handlers keep using [`Database::transaction`] freely.
pub struct Database {
    conn: Box<dyn SqlConnection>,
    depth: std::cell::Cell<u32>,
}

impl Database {
    /// Wraps a raw connection. Use [`crate::migrations::open_database`] to get one that is set up.
    pub fn from_connection(conn: Box<dyn SqlConnection>) -> Self {
        Self {
            conn,
            depth: std::cell::Cell::new(0),
        }
    }

    pub fn execute(&self, statement: &str, params: &[Value]) -> Result<Rows, StoreError> {
        self.conn.execute(statement, params)
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

    /// Opens a level: `BEGIN IMMEDIATE` (taking the write lock up front, so two writers never
    /// deadlock upgrading read locks) or, inside one, a savepoint.
    pub fn begin(&self) -> Result<(), StoreError> {
        let depth = self.depth.get();
        if depth == 0 {
            self.execute("BEGIN IMMEDIATE", &[])?;
        } else {
            self.execute(&format!("SAVEPOINT level_{depth}"), &[])?;
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
                if let Err(err) = self.execute("COMMIT", &[]) {
                    let _ = self.execute("ROLLBACK", &[]);
                    self.depth.set(0);
                    return Err(err);
                }
            }
            _ => {
                self.execute(&format!("RELEASE level_{}", depth - 1), &[])?;
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
                let _ = self.execute("ROLLBACK", &[]);
            }
            _ => {
                let _ = self.execute(&format!("ROLLBACK TO level_{}", depth - 1), &[]);
                let _ = self.execute(&format!("RELEASE level_{}", depth - 1), &[]);
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
