//! `spin:sqlite/sqlite@3.0.0`, mirroring Spin's `factor-sqlite` with the
//! local (in-process rusqlite) backend: label `default` is the file
//! `<state_dir>/sqlite_db.db`; **every `open` creates a fresh connection**
//! with a 5 s busy timeout and no pragmas (the application sets WAL etc.
//! itself). `open` checks the component's `sqlite_databases` first
//! (`access-denied`), then whether the database exists (`no-such-database`).
//! `execute` runs one statement; errors map to `io(msg)`. The Spin 2
//! interface `fermyon:spin/sqlite@2.0.0` (used by `spin_sdk::sqlite`) is
//! served by the same code.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::Connection as RusqliteConnection;
use wasmtime::component::Resource;

use crate::bindings::spin::sqlite::sqlite::{
    Error, Host, HostConnection, QueryResult, RowResult, Value,
};
use crate::server::HostState;

/// The resource behind a guest `connection` handle.
pub struct Connection {
    conn: Arc<Mutex<RusqliteConnection>>,
}

fn io(e: impl std::fmt::Display) -> Error {
    Error::Io(e.to_string())
}

impl HostState {
    fn sqlite_check(&self) -> Result<(), Error> {
        if self.shared.faults.sqlite_unavailable() {
            return Err(Error::Io("injected fault: sqlite unavailable".to_string()));
        }
        Ok(())
    }

    fn sqlite_conn(
        &self,
        conn: &Resource<Connection>,
    ) -> wasmtime::Result<Arc<Mutex<RusqliteConnection>>> {
        Ok(self.table.get(conn)?.conn.clone())
    }
}

async fn blocking<T: Send + 'static>(
    conn: Arc<Mutex<RusqliteConnection>>,
    f: impl FnOnce(&RusqliteConnection) -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(move || {
        let guard = conn.lock().map_err(|_| io("connection lock poisoned"))?;
        f(&guard)
    })
    .await
    .map_err(io)?
}

fn to_sql(v: &Value) -> ToSqlOutput<'_> {
    match v {
        Value::Integer(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
        Value::Real(r) => ToSqlOutput::Borrowed(ValueRef::Real(*r)),
        Value::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
        Value::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
    }
}

fn from_sql(i: usize, v: ValueRef<'_>) -> rusqlite::Result<Value> {
    Ok(match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(r) => Value::Real(r),
        ValueRef::Text(t) => Value::Text(
            String::from_utf8(t.to_vec())
                .map_err(|e| rusqlite::Error::Utf8Error(i, e.utf8_error()))?,
        ),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    })
}

/// Runs one statement, collecting column names and all rows (Spin's
/// `InProcConnection::execute`).
fn execute(
    conn: &RusqliteConnection,
    statement: &str,
    params: &[Value],
) -> Result<QueryResult, Error> {
    let mut stmt = conn.prepare_cached(statement).map_err(io)?;
    let columns: Vec<String> = stmt.column_names().map(String::from).collect();
    let ncols = columns.len();
    let params = rusqlite::params_from_iter(params.iter().map(to_sql));
    let rows = stmt
        .query_map(params, |row| {
            let values = (0..ncols)
                .map(|i| from_sql(i, row.get_ref(i)?))
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(RowResult { values })
        })
        .map_err(io)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(io)?;
    Ok(QueryResult { columns, rows })
}

impl Host for HostState {}

impl HostConnection for HostState {
    async fn open(
        &mut self,
        database: String,
    ) -> wasmtime::Result<Result<Resource<Connection>, Error>> {
        self.shared.faults.count_sqlite_open();
        if !self.component.sqlite_databases.contains(&database) {
            return Ok(Err(Error::AccessDenied));
        }
        if database != "default" {
            return Ok(Err(Error::NoSuchDatabase));
        }
        if let Err(e) = self.sqlite_check() {
            return Ok(Err(e));
        }
        let path = self.shared.state_dir.join("sqlite_db.db");
        let opened = tokio::task::spawn_blocking(move || {
            let conn = RusqliteConnection::open(&path)?;
            conn.busy_timeout(Duration::from_secs(5))?;
            Ok::<_, rusqlite::Error>(conn)
        })
        .await?;
        match opened {
            Ok(conn) => Ok(Ok(self.table.push(Connection {
                conn: Arc::new(Mutex::new(conn)),
            })?)),
            Err(e) => Ok(Err(io(e))),
        }
    }

    async fn execute(
        &mut self,
        conn: Resource<Connection>,
        statement: String,
        parameters: Vec<Value>,
    ) -> wasmtime::Result<Result<QueryResult, Error>> {
        self.shared.faults.count_sqlite_execute();
        let conn = self.sqlite_conn(&conn)?;
        if let Err(e) = self.sqlite_check() {
            return Ok(Err(e));
        }
        Ok(blocking(conn, move |c| execute(c, &statement, &parameters)).await)
    }

    async fn last_insert_rowid(&mut self, conn: Resource<Connection>) -> wasmtime::Result<i64> {
        let conn = self.sqlite_conn(&conn)?;
        Ok(blocking(conn, |c| Ok(c.last_insert_rowid()))
            .await
            .unwrap_or(0))
    }

    async fn changes(&mut self, conn: Resource<Connection>) -> wasmtime::Result<u64> {
        let conn = self.sqlite_conn(&conn)?;
        Ok(blocking(conn, |c| Ok(c.changes())).await.unwrap_or(0))
    }

    async fn drop(&mut self, conn: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(conn)?;
        Ok(())
    }
}

/// `fermyon:spin/sqlite@2.0.0`: identical shapes, delegated to 3.0.0.
mod v2 {
    use super::*;
    use crate::bindings::fermyon::spin::sqlite as v2;

    fn value_in(v: v2::Value) -> Value {
        match v {
            v2::Value::Integer(i) => Value::Integer(i),
            v2::Value::Real(r) => Value::Real(r),
            v2::Value::Text(t) => Value::Text(t),
            v2::Value::Blob(b) => Value::Blob(b),
            v2::Value::Null => Value::Null,
        }
    }

    fn value_out(v: Value) -> v2::Value {
        match v {
            Value::Integer(i) => v2::Value::Integer(i),
            Value::Real(r) => v2::Value::Real(r),
            Value::Text(t) => v2::Value::Text(t),
            Value::Blob(b) => v2::Value::Blob(b),
            Value::Null => v2::Value::Null,
        }
    }

    fn error_out(e: Error) -> v2::Error {
        match e {
            Error::NoSuchDatabase => v2::Error::NoSuchDatabase,
            Error::AccessDenied => v2::Error::AccessDenied,
            Error::InvalidConnection => v2::Error::InvalidConnection,
            Error::DatabaseFull => v2::Error::DatabaseFull,
            Error::Io(m) => v2::Error::Io(m),
        }
    }

    impl v2::Host for HostState {}

    impl v2::HostConnection for HostState {
        async fn open(
            &mut self,
            database: String,
        ) -> wasmtime::Result<Result<Resource<Connection>, v2::Error>> {
            Ok(HostConnection::open(self, database)
                .await?
                .map_err(error_out))
        }

        async fn execute(
            &mut self,
            conn: Resource<Connection>,
            statement: String,
            parameters: Vec<v2::Value>,
        ) -> wasmtime::Result<Result<v2::QueryResult, v2::Error>> {
            let params = parameters.into_iter().map(value_in).collect();
            let result = HostConnection::execute(self, conn, statement, params).await?;
            Ok(result
                .map(|r| v2::QueryResult {
                    columns: r.columns,
                    rows: r
                        .rows
                        .into_iter()
                        .map(|row| v2::RowResult {
                            values: row.values.into_iter().map(value_out).collect(),
                        })
                        .collect(),
                })
                .map_err(error_out))
        }

        async fn drop(&mut self, conn: Resource<Connection>) -> wasmtime::Result<()> {
            HostConnection::drop(self, conn).await
        }
    }
}
