//! Spin adapters of the store traits (`fermyon:spin/key-value@2.0.0`, `spin:sqlite/sqlite@3.0.0`,
//! `fermyon:spin/variables@2.0.0`, `wasi:http/outgoing-handler`). The only place besides the
//! entry point where `spin_sdk` is used. Every host failure becomes a [`StoreError`], never a panic.

use spin_sdk::key_value;
use spin_sdk::sqlite3;

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
        let conn = sqlite3::Connection::open(DEFAULT_LABEL)
            .map_err(|e| StoreError::sqlite(format!("open: {e:?}")))?;
        Ok(Box::new(SpinConnection(conn)))
    }
}

struct SpinConnection(sqlite3::Connection);

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
            .0
            .execute(statement, &params)
            .map_err(|e| StoreError::sqlite(format!("{e:?}")))?;
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
        Ok(self.0.changes())
    }

    fn last_insert_rowid(&self) -> Result<i64, StoreError> {
        Ok(self.0.last_insert_rowid())
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
