//! Small traits for everything outside the component: SQL, key-value, clock, randomness, variables
//! and outbound HTTP.
//!
//! Business logic talks to these traits only, so the same code runs natively in unit tests
//! ([`native`], behind the `native` feature) and inside Spin ([`spin`]). `spin_sdk` appears only in
//! the Spin adapters and the component entry points.
//!
//! Which store holds what (DESIGN §4): SQLite for everything that must be atomic or durable;
//! key-value for small caches only, each value carrying its own expiry ([`Kv::get_fresh`]).

use std::future::Future;
use std::pin::Pin;

pub mod kv;
#[cfg(feature = "native")]
pub mod native;
pub mod redis;
pub mod spin;
pub mod sql;

pub use kv::Kv;
pub use sql::{Database, OutsideUnit, Row, Rows, SqlConnection, Unit, Value};

/// Which backing service failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Sqlite,
    KeyValue,
    Variables,
    OutboundHttp,
    Random,
    /// A variable that is set but malformed or out of range (a configuration error, not a host
    /// failure: answered 503 `configuration_error`, see [`crate::config`]).
    Config,
}

impl StoreKind {
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Sqlite => "sqlite",
            StoreKind::KeyValue => "key-value store",
            StoreKind::Variables => "configuration",
            StoreKind::OutboundHttp => "upstream service",
            StoreKind::Random => "random source",
            StoreKind::Config => "configuration",
        }
    }
}

/// What kind of failure a [`StoreError`] is, so that callers match on a type, never on text.
/// Classified once, in the store adapters ([`StoreError::from_sqlite_text`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ErrorKind {
    /// Anything else (an unreachable store, an I/O error, a bug).
    #[default]
    Other,
    /// A UNIQUE or PRIMARY KEY constraint refused the write; `target` is `table.column` (the
    /// first column of a composite key) when SQLite names it.
    Unique { target: Option<String> },
    /// Another constraint (NOT NULL, CHECK, FOREIGN KEY).
    Constraint,
    /// The schema is behind the code: a table or column it expects does not exist (yet).
    MissingSchema,
}

/// A host call failed. Answered as 503 (see [`crate::ApiError`]); never a panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    pub store: StoreKind,
    pub message: String,
    pub kind: ErrorKind,
}

impl StoreError {
    pub fn new(store: StoreKind, message: impl Into<String>) -> Self {
        Self {
            store,
            message: message.into(),
            kind: ErrorKind::Other,
        }
    }
    pub fn sqlite(message: impl Into<String>) -> Self {
        Self::new(StoreKind::Sqlite, message)
    }

    /// A SQLite failure classified from the engine's message. Spin's `sqlite` interface reports
    /// errors as text only (`Io("UNIQUE constraint failed: users.username")`), so the adapters
    /// call this — the one place in the code base that reads an error's text.
    pub fn from_sqlite_text(message: impl Into<String>) -> Self {
        let message = message.into();
        let kind = classify_sqlite(&message);
        Self {
            store: StoreKind::Sqlite,
            message,
            kind,
        }
    }

    /// A UNIQUE (or PRIMARY KEY) violation, on `table.column` when given.
    pub fn is_unique_violation(&self, target: Option<&str>) -> bool {
        match (&self.kind, target) {
            (ErrorKind::Unique { .. }, None) => true,
            (ErrorKind::Unique { target: Some(t) }, Some(want)) => t == want,
            _ => false,
        }
    }
    pub fn kv(message: impl Into<String>) -> Self {
        Self::new(StoreKind::KeyValue, message)
    }
}

/// SQLite's own wording (`sqlite3.c`: "UNIQUE constraint failed: t.c, t.d", "no such table: t",
/// "table t has no column named c"), wherever it appears in an adapter's message.
fn classify_sqlite(message: &str) -> ErrorKind {
    for marker in [
        "UNIQUE constraint failed: ",
        "PRIMARY KEY constraint failed: ",
    ] {
        if let Some(at) = message.find(marker) {
            let rest = &message[at + marker.len()..];
            let target: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
                .collect();
            return ErrorKind::Unique {
                target: (!target.is_empty()).then_some(target),
            };
        }
    }
    if message.contains("constraint failed") || message.contains("SQLITE_CONSTRAINT") {
        return ErrorKind::Constraint;
    }
    if message.contains("no such table: ")
        || message.contains("no such column: ")
        || (message.contains("table ") && message.contains(" has no column named "))
    {
        return ErrorKind::MissingSchema;
    }
    ErrorKind::Other
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.store.name(), self.message)
    }
}

impl std::error::Error for StoreError {}

/// Opens the `default` SQLite database. Every call is a new connection, as on Spin.
pub trait SqlOpener {
    fn open(&self) -> Result<Box<dyn SqlConnection>, StoreError>;
}

/// Opens the `default` key-value store.
pub trait KvOpener {
    fn open(&self) -> Result<Box<dyn KvStore>, StoreError>;
}

/// Spin's key-value interface (no TTL, no atomics: see DESIGN §4).
pub trait KvStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    fn delete(&self, key: &str) -> Result<(), StoreError>;
    fn exists(&self, key: &str) -> Result<bool, StoreError>;
}

/// Wall-clock time, injected so that expiry is tested without sleeping.
pub trait Clock {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// Cryptographically secure randomness.
pub trait Random {
    fn fill(&self, buf: &mut [u8]) -> Result<(), StoreError>;
}

/// Spin variables. `Ok(None)` when the variable is not defined for this component.
pub trait Variables {
    fn get(&self, name: &str) -> Result<Option<String>, StoreError>;
}

/// A request to another service.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundRequest {
    pub method: http::Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The answer of another service.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A boxed future that need not be `Send` (components are single-threaded).
pub type LocalFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Outbound HTTP, allowed by Spin only to the manifest's `allowed_outbound_hosts`.
pub trait Outbound {
    fn send(
        &self,
        request: OutboundRequest,
    ) -> LocalFuture<'_, Result<OutboundResponse, StoreError>>;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// The OS (or WASI) random source.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), StoreError> {
        getrandom::fill(buf).map_err(|e| StoreError::new(StoreKind::Random, e.to_string()))
    }
}
