//! Spin adapters of the store traits (`fermyon:spin/key-value@2.0.0`, `spin:sqlite/sqlite@3.0.0`,
//! `fermyon:spin/variables@2.0.0`, `wasi:http/outgoing-handler`). The only place besides the
//! entry point where `spin_sdk` is used. Every host failure becomes a [`StoreError`], never a panic.

use spin_sdk::key_value;
use spin_sdk::sqlite3;

use crate::config::{Settings, Synchronous};

use super::{
    KvOpener, KvStore, LocalFuture, Outbound, OutboundRequest, OutboundResponse, Rows,
    SqlConnection, SqlOpener, StoreError, StoreKind, Value, Variables,
};

/// The store label every component uses (DESIGN §4).
pub const DEFAULT_LABEL: &str = "default";

/// Opens Spin's `default` SQLite database.
#[derive(Debug, Default, Clone, Copy)]
pub struct SpinSql;

impl SqlOpener for SpinSql {
    fn open(&self) -> Result<Box<dyn SqlConnection>, StoreError> {
        // On a database server (`sqlite_synchronous = "server"`: libSQL), Spin's host-side
        // `changes()` / `last-insert-rowid()` do not see statements run through its `query`
        // (they answer 0), so the counters are read with SQL on the same connection instead.
        let server = Settings::new(&SpinVariables).sqlite_synchronous()? == Synchronous::Server;
        let conn = sqlite3::Connection::open(DEFAULT_LABEL)
            .map_err(|e| StoreError::sqlite(format!("open: {e:?}")))?;
        Ok(Box::new(SpinConnection { conn, server }))
    }
}

struct SpinConnection {
    conn: sqlite3::Connection,
    /// Counters through SQL (`SELECT changes()`), not the host calls.
    server: bool,
}

impl SpinConnection {
    fn counter(&self, expression: &str) -> Result<i64, StoreError> {
        let rows = self.execute(&format!("SELECT {expression} AS n"), &[])?;
        rows.first()
            .ok_or_else(|| StoreError::sqlite(format!("{expression} returned no row")))?
            .i64("n")
    }
}

fn to_spin(value: &Value) -> sqlite3::Value {
    match value {
        Value::Integer(v) => sqlite3::Value::Integer(*v),
        Value::Real(v) => sqlite3::Value::Real(*v),
        Value::Text(v) => sqlite3::Value::Text(v.clone()),
        Value::Blob(v) => sqlite3::Value::Blob(v.clone()),
        Value::Null => sqlite3::Value::Null,
    }
}

fn from_spin(value: sqlite3::Value) -> Value {
    match value {
        sqlite3::Value::Integer(v) => Value::Integer(v),
        sqlite3::Value::Real(v) => Value::Real(v),
        sqlite3::Value::Text(v) => Value::Text(v),
        sqlite3::Value::Blob(v) => Value::Blob(v),
        sqlite3::Value::Null => Value::Null,
    }
}

impl SqlConnection for SpinConnection {
    fn execute(&self, statement: &str, params: &[Value]) -> Result<Rows, StoreError> {
        let params: Vec<sqlite3::Value> = params.iter().map(to_spin).collect();
        let result = self
            .conn
            .execute(statement, &params)
            .map_err(|e| StoreError::from_sqlite_text(format!("{e:?}")))?;
        Ok(Rows {
            columns: result.columns,
            rows: result
                .rows
                .into_iter()
                .map(|row| row.values.into_iter().map(from_spin).collect())
                .collect(),
        })
    }

    fn changes(&self) -> Result<u64, StoreError> {
        if self.server {
            return Ok(u64::try_from(self.counter("changes()")?).unwrap_or(0));
        }
        Ok(self.conn.changes())
    }

    fn last_insert_rowid(&self) -> Result<i64, StoreError> {
        if self.server {
            return self.counter("last_insert_rowid()");
        }
        Ok(self.conn.last_insert_rowid())
    }
}

/// Opens Spin's `default` key-value store.
#[derive(Debug, Default, Clone, Copy)]
pub struct SpinKv;

impl KvOpener for SpinKv {
    fn open(&self) -> Result<Box<dyn KvStore>, StoreError> {
        let store = key_value::Store::open(DEFAULT_LABEL)
            .map_err(|e| StoreError::kv(format!("open: {e:?}")))?;
        Ok(Box::new(SpinKvStore(store)))
    }
}

struct SpinKvStore(key_value::Store);

fn kv_err(op: &str, e: key_value::Error) -> StoreError {
    StoreError::kv(format!("{op}: {e:?}"))
}

impl KvStore for SpinKvStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get(key).map_err(|e| kv_err("get", e))
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.0.set(key, value).map_err(|e| kv_err("set", e))
    }
    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.0.delete(key).map_err(|e| kv_err("delete", e))
    }
    fn exists(&self, key: &str) -> Result<bool, StoreError> {
        self.0.exists(key).map_err(|e| kv_err("exists", e))
    }
}

/// Spin variables (`SPIN_VARIABLE_<NAME>` for `spin up`).
#[derive(Debug, Default, Clone, Copy)]
pub struct SpinVariables;

impl Variables for SpinVariables {
    fn get(&self, name: &str) -> Result<Option<String>, StoreError> {
        use spin_sdk::variables::Error;
        match spin_sdk::variables::get(name) {
            Ok(value) => Ok(Some(value)),
            Err(Error::Undefined(_)) => Ok(None),
            Err(e) => Err(StoreError::new(
                StoreKind::Variables,
                format!("{name}: {e:?}"),
            )),
        }
    }
}

/// Outbound HTTP through `wasi:http/outgoing-handler`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SpinOutbound;

impl Outbound for SpinOutbound {
    fn send(
        &self,
        request: OutboundRequest,
    ) -> LocalFuture<'_, Result<OutboundResponse, StoreError>> {
        Box::pin(async move {
            let err = |e: String| StoreError::new(StoreKind::OutboundHttp, e);
            let method = match request.method.as_str() {
                "GET" => spin_sdk::http::Method::Get,
                "POST" => spin_sdk::http::Method::Post,
                "PUT" => spin_sdk::http::Method::Put,
                "PATCH" => spin_sdk::http::Method::Patch,
                "DELETE" => spin_sdk::http::Method::Delete,
                "HEAD" => spin_sdk::http::Method::Head,
                other => spin_sdk::http::Method::Other(other.to_owned()),
            };
            let mut builder = spin_sdk::http::Request::builder();
            builder.method(method).uri(request.url.as_str());
            for (name, value) in &request.headers {
                builder.header(name.as_str(), value.as_str());
            }
            builder.body(request.body);
            let response: spin_sdk::http::Response = spin_sdk::http::send(builder.build())
                .await
                .map_err(|e| err(e.to_string()))?;
            Ok(OutboundResponse {
                status: *response.status(),
                headers: response
                    .headers()
                    .map(|(k, v)| {
                        (
                            k.to_owned(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect(),
                body: response.into_body(),
            })
        })
    }
}

/// Spin's outbound Redis (`fermyon:spin/redis@2.0.0`); the URL must be allowed by the
/// component's `allowed_outbound_hosts`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SpinRedis;

impl super::redis::RedisOpener for SpinRedis {
    fn open(&self, url: &str) -> Result<Box<dyn super::redis::RedisStore>, StoreError> {
        let conn = spin_sdk::redis::Connection::open(url)
            .map_err(|e| StoreError::kv(format!("redis: {e:?}")))?;
        Ok(Box::new(SpinRedisConnection(conn)))
    }
}

struct SpinRedisConnection(spin_sdk::redis::Connection);

impl super::redis::RedisStore for SpinRedisConnection {
    fn eval(&self, script: &str, keys: &[String], args: &[i64]) -> Result<Vec<i64>, StoreError> {
        use spin_sdk::redis::{RedisParameter, RedisResult};
        let err = |e: String| StoreError::kv(format!("redis: {e}"));
        let mut params = vec![
            RedisParameter::Binary(script.as_bytes().to_vec()),
            RedisParameter::Int64(i64::try_from(keys.len()).unwrap_or(i64::MAX)),
        ];
        params.extend(
            keys.iter()
                .map(|k| RedisParameter::Binary(k.as_bytes().to_vec())),
        );
        params.extend(args.iter().map(|a| RedisParameter::Int64(*a)));
        let reply = self
            .0
            .execute("EVAL", &params)
            .map_err(|e| err(format!("{e:?}")))?;
        reply
            .iter()
            .map(|r| match r {
                RedisResult::Int64(i) => Some(*i),
                RedisResult::Binary(b) => std::str::from_utf8(b).ok()?.parse().ok(),
                RedisResult::Status(s) => s.parse().ok(),
                RedisResult::Nil => None,
            })
            .collect::<Option<Vec<i64>>>()
            .ok_or_else(|| err("non-numeric script reply".to_owned()))
    }
}
