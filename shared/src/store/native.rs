//! Native implementations of the store traits for unit tests: rusqlite (a fresh connection per
//! `open`, as on Spin), an in-memory key-value store, a settable clock, deterministic randomness,
//! map-backed variables and a scripted outbound HTTP client. Each can be told to fail, so tests
//! prove that host failures become 503s.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{
    Clock, KvOpener, KvStore, LocalFuture, Outbound, OutboundRequest, OutboundResponse, Random,
    Rows, SqlConnection, SqlOpener, StoreError, StoreKind, Value, Variables,
};

/// A SQLite file in the temp directory, removed on drop. Every `open` is a new connection.
pub struct NativeSql {
    path: PathBuf,
    failing: Rc<Cell<bool>>,
    opens: Rc<Cell<u64>>,
}

static NEXT_DB: AtomicU64 = AtomicU64::new(0);

impl NativeSql {
    pub fn temp() -> Self {
        let n = NEXT_DB.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "streamspace-test-{}-{n}-{}.db",
            std::process::id(),
            super::SystemClock.now_ms()
        ));
        Self {
            path,
            failing: Rc::default(),
            opens: Rc::default(),
        }
    }

    /// While set, `open` and every statement fail like an unreachable database.
    pub fn fail(&self, failing: bool) {
        self.failing.set(failing);
    }

    /// The database file (tests open a second, raw connection to it, e.g. to probe the lock).
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// How many connections were opened.
    pub fn opens(&self) -> u64 {
        self.opens.get()
    }

    /// A second handle to the same database (shares the failure switch and counter).
    pub fn handle(&self) -> NativeSqlHandle {
        NativeSqlHandle {
            path: self.path.clone(),
            failing: self.failing.clone(),
            opens: self.opens.clone(),
        }
    }
}

impl Drop for NativeSql {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}

/// A cloneable opener for a [`NativeSql`] database.
#[derive(Clone)]
pub struct NativeSqlHandle {
    path: PathBuf,
    failing: Rc<Cell<bool>>,
    opens: Rc<Cell<u64>>,
}

impl NativeSqlHandle {
    /// An opener for the database file at `path` (tests that open it from several threads, as
    /// several Spin instances would).
    pub fn at(path: PathBuf) -> Self {
        Self {
            path,
            failing: Rc::default(),
            opens: Rc::default(),
        }
    }
}

impl SqlOpener for NativeSql {
    fn open(&self) -> Result<Box<dyn SqlConnection>, StoreError> {
        self.handle().open()
    }
}

impl SqlOpener for NativeSqlHandle {
    fn open(&self) -> Result<Box<dyn SqlConnection>, StoreError> {
        if self.failing.get() {
            return Err(StoreError::sqlite("injected fault: sqlite unavailable"));
        }
        self.opens.set(self.opens.get() + 1);
        let conn = rusqlite::Connection::open(&self.path)
            .map_err(|e| StoreError::sqlite(e.to_string()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| StoreError::sqlite(e.to_string()))?;
        Ok(Box::new(NativeConnection {
            conn,
            failing: self.failing.clone(),
        }))
    }
}

struct NativeConnection {
    conn: rusqlite::Connection,
    failing: Rc<Cell<bool>>,
}

fn to_sql(value: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match value {
        Value::Integer(v) => V::Integer(*v),
        Value::Real(v) => V::Real(*v),
        Value::Text(v) => V::Text(v.clone()),
        Value::Blob(v) => V::Blob(v.clone()),
        Value::Null => V::Null,
    }
}

fn from_sql(value: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef as V;
    match value {
        V::Null => Value::Null,
        V::Integer(v) => Value::Integer(v),
        V::Real(v) => Value::Real(v),
        V::Text(v) => Value::Text(String::from_utf8_lossy(v).into_owned()),
        V::Blob(v) => Value::Blob(v.to_vec()),
    }
}

impl SqlConnection for NativeConnection {
    fn execute(&self, statement: &str, params: &[Value]) -> Result<Rows, StoreError> {
        if self.failing.get() {
            return Err(StoreError::sqlite("injected fault: sqlite unavailable"));
        }
        let err = |e: rusqlite::Error| StoreError::from_sqlite_text(e.to_string());
        let mut stmt = self.conn.prepare(statement).map_err(err)?;
        let columns: Vec<String> = stmt.column_names().map(str::to_owned).collect();
        let params: Vec<rusqlite::types::Value> = params.iter().map(to_sql).collect();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params.iter()))
            .map_err(err)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(err)? {
            let mut values = Vec::with_capacity(columns.len());
            for i in 0..columns.len() {
                values.push(from_sql(row.get_ref(i).map_err(err)?));
            }
            out.push(values);
        }
        Ok(Rows { columns, rows: out })
    }

    fn changes(&self) -> Result<u64, StoreError> {
        Ok(self.conn.changes())
    }

    fn last_insert_rowid(&self) -> Result<i64, StoreError> {
        Ok(self.conn.last_insert_rowid())
    }
}

/// An in-memory key-value store (shared between clones).
#[derive(Clone, Default)]
pub struct MemoryKv {
    map: Rc<RefCell<BTreeMap<String, Vec<u8>>>>,
    failing: Rc<Cell<bool>>,
}

impl MemoryKv {
    /// While set, every operation fails like an unreachable store.
    pub fn fail(&self, failing: bool) {
        self.failing.set(failing);
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.failing.get() {
            Err(StoreError::kv("injected fault: key-value unavailable"))
        } else {
            Ok(())
        }
    }
}

impl KvOpener for MemoryKv {
    fn open(&self) -> Result<Box<dyn KvStore>, StoreError> {
        self.check()?;
        Ok(Box::new(self.clone()))
    }
}

impl KvStore for MemoryKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.check()?;
        Ok(self.map.borrow().get(key).cloned())
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.check()?;
        self.map.borrow_mut().insert(key.to_owned(), value.to_vec());
        Ok(())
    }
    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.check()?;
        self.map.borrow_mut().remove(key);
        Ok(())
    }
    fn exists(&self, key: &str) -> Result<bool, StoreError> {
        self.check()?;
        Ok(self.map.borrow().contains_key(key))
    }
}

/// A clock that only moves when told to.
#[derive(Clone, Default)]
pub struct FixedClock(Rc<Cell<i64>>);

impl FixedClock {
    pub fn at(now_ms: i64) -> Self {
        Self(Rc::new(Cell::new(now_ms)))
    }
    pub fn set(&self, now_ms: i64) {
        self.0.set(now_ms);
    }
    pub fn advance(&self, ms: i64) {
        self.0.set(self.0.get() + ms);
    }
}

impl Clock for FixedClock {
    fn now_ms(&self) -> i64 {
        self.0.get()
    }
}

/// Deterministic bytes (SplitMix64) so that ids and tokens in tests are reproducible.
#[derive(Clone, Default)]
pub struct SeqRandom(Rc<Cell<u64>>);

impl Random for SeqRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), StoreError> {
        for chunk in buf.chunks_mut(8) {
            let mut z = self.0.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
            self.0.set(z);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let bytes = z.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        Ok(())
    }
}

/// Variables from a map; names not in the map are undefined.
#[derive(Clone, Default)]
pub struct MapVariables(Rc<RefCell<HashMap<String, String>>>);

impl MapVariables {
    pub fn with(self, name: &str, value: &str) -> Self {
        self.set(name, value);
        self
    }
    pub fn set(&self, name: &str, value: &str) {
        self.0
            .borrow_mut()
            .insert(name.to_owned(), value.to_owned());
    }
}

impl Variables for MapVariables {
    fn get(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self.0.borrow().get(name).cloned())
    }
}

/// Outbound HTTP that answers from a script and records what was sent.
#[derive(Clone, Default)]
pub struct ScriptedOutbound {
    replies: Rc<RefCell<Vec<Result<OutboundResponse, StoreError>>>>,
    sent: Rc<RefCell<Vec<OutboundRequest>>>,
}

impl ScriptedOutbound {
    /// Queues the answer to the next request.
    pub fn reply(&self, reply: Result<OutboundResponse, StoreError>) {
        self.replies.borrow_mut().push(reply);
    }
    pub fn sent(&self) -> Vec<OutboundRequest> {
        self.sent.borrow().clone()
    }
}

impl Outbound for ScriptedOutbound {
    fn send(
        &self,
        request: OutboundRequest,
    ) -> LocalFuture<'_, Result<OutboundResponse, StoreError>> {
        self.sent.borrow_mut().push(request);
        let next = {
            let mut replies = self.replies.borrow_mut();
            if replies.is_empty() {
                Err(StoreError::new(
                    StoreKind::OutboundHttp,
                    "no scripted reply",
                ))
            } else {
                replies.remove(0)
            }
        };
        Box::pin(async move { next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_open_is_a_new_connection_on_the_same_file() {
        let db = NativeSql::temp();
        let a = db.open().unwrap();
        a.execute("CREATE TABLE t (x INTEGER)", &[]).unwrap();
        a.execute("INSERT INTO t VALUES (?)", &[Value::Integer(7)])
            .unwrap();
        assert_eq!(a.changes().unwrap(), 1);
        let b = db.open().unwrap();
        let rows = b.execute("SELECT x FROM t", &[]).unwrap();
        assert_eq!(rows.first().unwrap().i64("x").unwrap(), 7);
        assert_eq!(db.opens(), 2);
    }

    #[test]
    fn injected_faults_fail_open_and_statements() {
        let db = NativeSql::temp();
        let conn = db.open().unwrap();
        db.fail(true);
        assert!(db.open().is_err());
        assert!(conn.execute("SELECT 1", &[]).is_err());
    }

    #[test]
    fn one_statement_per_execute() {
        let db = NativeSql::temp();
        let conn = db.open().unwrap();
        assert!(conn.execute("SELECT 1; SELECT 2", &[]).is_err());
    }

    #[test]
    fn constraint_violations_are_typed_by_the_adapter() {
        let db = NativeSql::temp();
        let conn = db.open().unwrap();
        conn.execute(
            "CREATE TABLE t (a TEXT UNIQUE, b TEXT NOT NULL, c TEXT, UNIQUE (b, c))",
            &[],
        )
        .unwrap();
        conn.execute("INSERT INTO t VALUES ('x', 'y', 'z')", &[])
            .unwrap();
        let dup = conn
            .execute("INSERT INTO t VALUES ('x', 'q', 'z')", &[])
            .unwrap_err();
        assert_eq!(
            dup.kind,
            super::super::ErrorKind::Unique {
                target: Some("t.a".into())
            }
        );
        assert!(dup.is_unique_violation(Some("t.a")) && !dup.is_unique_violation(Some("t.b")));
        let pair = conn
            .execute("INSERT INTO t VALUES ('w', 'y', 'z')", &[])
            .unwrap_err();
        assert!(pair.is_unique_violation(Some("t.b")), "{pair:?}");
        let null = conn
            .execute("INSERT INTO t VALUES ('v', NULL, 'z')", &[])
            .unwrap_err();
        assert_eq!(null.kind, super::super::ErrorKind::Constraint);
        let missing = conn.execute("SELECT * FROM nope", &[]).unwrap_err();
        assert_eq!(missing.kind, super::super::ErrorKind::MissingSchema);
        let other = conn.execute("SELEC 1", &[]).unwrap_err();
        assert_eq!(other.kind, super::super::ErrorKind::Other);
    }

    #[test]
    fn seq_random_is_deterministic() {
        let (a, b) = (SeqRandom::default(), SeqRandom::default());
        let (mut x, mut y) = ([0u8; 20], [0u8; 20]);
        a.fill(&mut x).unwrap();
        b.fill(&mut y).unwrap();
        assert_eq!(x, y);
        assert_ne!(x, [0u8; 20]);
    }
}
