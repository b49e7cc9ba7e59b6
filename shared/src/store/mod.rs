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
pub mod spin;
pub mod sql;

pub use kv::Kv;
pub use sql::{Database, Row, Rows, SqlConnection, Value};

/// Which backing service failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Sqlite,
    KeyValue,
    Variables,
    OutboundHttp,
    Random,
}

impl StoreKind {
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Sqlite => "sqlite",
            StoreKind::KeyValue => "key-value store",
            StoreKind::Variables => "configuration",
            StoreKind::OutboundHttp => "upstream service",
            StoreKind::Random => "random source",
        }
    }
}

/// A host call failed. Answered as 503 (see [`crate::ApiError`]); never a panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    pub store: StoreKind,
    pub message: String,
}

impl StoreError {
    pub fn new(store: StoreKind, message: impl Into<String>) -> Self {
        Self {
            store,
            message: message.into(),
        }
    }
    pub fn sqlite(message: impl Into<String>) -> Self {
        Self::new(StoreKind::Sqlite, message)
    }
    pub fn kv(message: impl Into<String>) -> Self {
        Self::new(StoreKind::KeyValue, message)
    }
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
