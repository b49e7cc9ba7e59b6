//! A Spin-compatible **test host**: reads `spin.toml`, loads the HTTP
//! components it names and serves them on `127.0.0.1` the way `spin up` does,
//! for end-to-end tests and benchmarks on machines without the Spin CLI.
//!
//! Module map (each mirrors one part of Spin):
//! * [`manifest`] – `spin.toml` v2 (`spin-manifest`);
//! * [`routes`] – route matching (`spin-http` routes);
//! * [`variables`] – `fermyon:spin/variables` (`factor-variables`);
//! * [`kv`] – `fermyon:spin/key-value` (`factor-key-value`, SQLite backend);
//! * [`sqlite`] – `spin:sqlite/sqlite` (`factor-sqlite`, local backend);
//! * [`outbound`] – `allowed_outbound_hosts` (`factor-outbound-networking`);
//! * [`outbound_redis`] – `fermyon:spin/redis` (`factor-outbound-redis`);
//! * [`server`] – HTTP serving, `spin-*` headers (`trigger-http`).
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use spin_test_host::{HostOptions, RunningHost};
//! let host = RunningHost::start(HostOptions::new("spin.toml", "/tmp/state"))?;
//! println!("{}", host.base_url());
//! # Ok(()) }
//! ```

pub mod kv;
pub mod manifest;
pub mod outbound;
pub mod outbound_redis;
pub mod routes;
pub mod server;
pub mod sqlite;
pub mod variables;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use server::RunningHost;

/// Host bindings for the Spin interfaces (WIT copied from spin-sdk 5.2.0).
pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "spin-host",
        imports: { default: async | trappable },
        with: {
            "fermyon:spin/key-value.store": crate::kv::KvStore,
            "spin:sqlite/sqlite.connection": crate::sqlite::Connection,
            "fermyon:spin/sqlite.connection": crate::sqlite::Connection,
            "fermyon:spin/redis.connection": crate::outbound_redis::Connection,
        },
    });
}

/// Options for [`RunningHost::start`].
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// Path to `spin.toml`; component sources are relative to its directory.
    pub manifest: PathBuf,
    /// Directory for `sqlite_db.db` / `sqlite_key_value.db` (created if missing).
    pub state_dir: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Variable overrides (by application variable name); they win over
    /// `SPIN_VARIABLE_*` environment variables.
    pub variables: HashMap<String, String>,
    /// Also print guest stdout/stderr lines to the host's stdout/stderr.
    pub echo_guest_output: bool,
}

impl HostOptions {
    /// Options listening on `127.0.0.1:0`, no overrides, no echo.
    pub fn new(manifest: impl Into<PathBuf>, state_dir: impl Into<PathBuf>) -> Self {
        Self {
            manifest: manifest.into(),
            state_dir: state_dir.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            variables: HashMap::new(),
            echo_guest_output: false,
        }
    }

    /// Adds a variable override.
    pub fn variable(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.variables.insert(name.into(), value.into());
        self
    }
}

/// Fault injection switches and call counters, shared with a running host.
/// Cloning is cheap; all clones control the same host.
#[derive(Debug, Clone, Default)]
pub struct Faults(Arc<FaultsInner>);

#[derive(Debug, Default)]
struct FaultsInner {
    sqlite_unavailable: AtomicBool,
    kv_unavailable: AtomicBool,
    sqlite_opens: AtomicU64,
    sqlite_executes: AtomicU64,
    kv_opens: AtomicU64,
}

impl Faults {
    /// While set, `sqlite` `open` and every op on open connections fail with
    /// `io("injected fault: sqlite unavailable")`.
    pub fn set_sqlite_unavailable(&self, on: bool) {
        self.0.sqlite_unavailable.store(on, Ordering::SeqCst);
    }
    /// While set, key-value `open` and every store op fail with
    /// `other("injected fault: key-value unavailable")`.
    pub fn set_kv_unavailable(&self, on: bool) {
        self.0.kv_unavailable.store(on, Ordering::SeqCst);
    }
    /// Whether the SQLite fault is active.
    pub fn sqlite_unavailable(&self) -> bool {
        self.0.sqlite_unavailable.load(Ordering::SeqCst)
    }
    /// Whether the key-value fault is active.
    pub fn kv_unavailable(&self) -> bool {
        self.0.kv_unavailable.load(Ordering::SeqCst)
    }
    /// Number of `sqlite` `connection.open` calls so far.
    pub fn sqlite_open_count(&self) -> u64 {
        self.0.sqlite_opens.load(Ordering::SeqCst)
    }
    /// Number of `sqlite` `execute` calls so far.
    pub fn sqlite_execute_count(&self) -> u64 {
        self.0.sqlite_executes.load(Ordering::SeqCst)
    }
    /// Number of key-value `store.open` calls so far.
    pub fn kv_open_count(&self) -> u64 {
        self.0.kv_opens.load(Ordering::SeqCst)
    }
    /// Resets all counters to zero (switches are unchanged).
    pub fn reset_counters(&self) {
        self.0.sqlite_opens.store(0, Ordering::SeqCst);
        self.0.sqlite_executes.store(0, Ordering::SeqCst);
        self.0.kv_opens.store(0, Ordering::SeqCst);
    }
    pub(crate) fn count_sqlite_open(&self) {
        self.0.sqlite_opens.fetch_add(1, Ordering::SeqCst);
    }
    pub(crate) fn count_sqlite_execute(&self) {
        self.0.sqlite_executes.fetch_add(1, Ordering::SeqCst);
    }
    pub(crate) fn count_kv_open(&self) {
        self.0.kv_opens.fetch_add(1, Ordering::SeqCst);
    }
}

/// In-memory, line-wise capture of guest stdout and stderr.
#[derive(Debug, Clone, Default)]
pub struct GuestLog(Arc<Mutex<Vec<String>>>);

impl GuestLog {
    pub(crate) fn push(&self, line: String) {
        if let Ok(mut lines) = self.0.lock() {
            lines.push(line);
        }
    }
    /// A copy of all captured lines.
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().map(|l| l.clone()).unwrap_or_default()
    }
    /// Removes and returns all captured lines.
    pub fn take(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }
}
