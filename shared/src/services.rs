//! The per-request bundle of stores and policies. A fresh instance per request (Spin P2), so
//! connections are opened lazily, at most once per request, and only when a handler needs them.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;

use crate::access_log::{LogSink, Stdout};
use crate::config::Settings;
use crate::migrations;
use crate::store::{
    Clock, Database, Kv, KvOpener, OsRandom, Outbound, Random, SqlOpener, StoreError, SystemClock,
    Variables,
};

pub struct Services {
    pub log: Box<dyn LogSink>,
    pub clock: Box<dyn Clock>,
    pub random: Box<dyn Random>,
    pub variables: Box<dyn Variables>,
    pub outbound: Box<dyn Outbound>,
    /// Outbound Redis (the `redis` rate-limit backend).
    pub redis: Box<dyn crate::store::redis::RedisOpener>,
    sql: Box<dyn SqlOpener>,
    kv: Box<dyn KvOpener>,
    db: OnceCell<Database>,
    kv_store: OnceCell<Kv>,
    /// This request wrote an audit row: seal the chain after the response ([`Services::after_response`]).
    seal_pending: Cell<bool>,
    /// Work a handler deferred until after the response ([`Services::defer`]).
    deferred: RefCell<Vec<crate::store::LocalFuture<'static, ()>>>,
}

/// Reads each variable from the host once per request (a fresh [`Services`] per request, so a
/// changed variable is seen by the next request). Failures are not cached.
struct CachedVariables {
    inner: Box<dyn Variables>,
    cache: RefCell<HashMap<String, Option<String>>>,
}

impl Variables for CachedVariables {
    fn get(&self, name: &str) -> Result<Option<String>, StoreError> {
        if let Some(value) = self.cache.borrow().get(name) {
            return Ok(value.clone());
        }
        let value = self.inner.get(name)?;
        self.cache
            .borrow_mut()
            .insert(name.to_owned(), value.clone());
        Ok(value)
    }
}

impl Services {
    pub fn new(
        clock: Box<dyn Clock>,
        random: Box<dyn Random>,
        variables: Box<dyn Variables>,
        outbound: Box<dyn Outbound>,
        sql: Box<dyn SqlOpener>,
        kv: Box<dyn KvOpener>,
    ) -> Self {
        Self {
            log: Box::new(Stdout),
            clock,
            random,
            variables: Box::new(CachedVariables {
                inner: variables,
                cache: RefCell::default(),
            }),
            outbound,
            redis: default_redis(),
            sql,
            kv,
            db: OnceCell::new(),
            kv_store: OnceCell::new(),
            seal_pending: Cell::new(false),
            deferred: RefCell::default(),
        }
    }

    /// The stores of the Spin host.
    pub fn spin() -> Self {
        use crate::store::spin::{SpinKv, SpinOutbound, SpinRedis, SpinSql, SpinVariables};
        let mut services = Self::new(
            Box::new(SystemClock),
            Box::new(OsRandom),
            Box::new(SpinVariables),
            Box::new(SpinOutbound),
            Box::new(SpinSql),
            Box::new(SpinKv),
        );
        services.redis = Box::new(SpinRedis);
        services
    }

    pub fn settings(&self) -> Settings<'_> {
        Settings::new(self.variables.as_ref())
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The request's database connection: opened on first use, set up, schema current.
    pub fn db(&self) -> Result<&Database, StoreError> {
        if let Some(db) = self.db.get() {
            return Ok(db);
        }
        let synchronous = self.settings().sqlite_synchronous()?;
        let db = migrations::open_database(self.sql.as_ref(), synchronous, self.now_ms())?;
        Ok(self.db.get_or_init(|| db))
    }

    /// The request's database connection if one was opened.
    pub fn open_db(&self) -> Option<&Database> {
        self.db.get()
    }

    /// Asks for the audit chain to be sealed after the response.
    pub fn defer_seal(&self) {
        self.seal_pending.set(true);
    }

    /// The deferred work of a request, run after its response was sent (Spin keeps the
    /// component running; the client does not wait): seal the audit rows written so far
    /// ([`crate::audit::chain::seal`]). Best effort: a failure is logged, and the next sealer
    /// (any later request, every audit read, the maintenance route) picks the rows up.
    pub fn after_response(&self) {
        if !self.seal_pending.replace(false) {
            return;
        }
        let key = match self.settings().raw("audit_key") {
            Ok(key) => key,
            Err(_) => return,
        };
        let key = key
            .as_deref()
            .map_or(crate::audit::chain::UNKEYED, str::as_bytes);
        let result = self
            .db()
            .and_then(|db| crate::audit::chain::seal(db, key, AFTER_RESPONSE_SEAL_MAX));
        if let Err(err) = result {
            self.log.write_line(
                &serde_json::json!({
                    "level": "warn",
                    "msg": "audit seal deferred",
                    "cause": err.to_string(),
                })
                .to_string(),
            );
        }
    }

    /// Defers `task` until after the response is sent (Spin keeps the instance running; the
    /// client does not wait). For work whose request is already recorded durably in the unit of
    /// work, so a task that never runs (a crash, a host that stops the instance) loses nothing:
    /// e.g. a webhook's sync, whose `sync_requested_at` the drain picks up. A task that needs the
    /// services holds a clone of the request's `Rc<Services>`. Run by [`Services::run_deferred`]
    /// (`spin_entry::serve_with_deferred`, which the component's entry must use, and
    /// `TestStores::call`), in order, after [`Services::after_response`].
    pub fn defer(&self, task: crate::store::LocalFuture<'static, ()>) {
        self.deferred.borrow_mut().push(task);
    }

    /// Runs the deferred tasks ([`Services::defer`]), one after the other, until none is left
    /// (a task may defer more).
    pub async fn run_deferred(&self) {
        loop {
            let tasks = std::mem::take(&mut *self.deferred.borrow_mut());
            if tasks.is_empty() {
                return;
            }
            for task in tasks {
                task.await;
            }
        }
    }

    /// The request's key-value store, opened on first use.
    pub fn kv(&self) -> Result<&Kv, StoreError> {
        if let Some(kv) = self.kv_store.get() {
            return Ok(kv);
        }
        let kv = Kv::new(self.kv.open()?);
        Ok(self.kv_store.get_or_init(|| kv))
    }
}

/// Rows one request's deferred sealing links, at most.
pub const AFTER_RESPONSE_SEAL_MAX: u64 = 1000;

/// Redis outside Spin: plain TCP in native builds (unit tests), none otherwise.
fn default_redis() -> Box<dyn crate::store::redis::RedisOpener> {
    #[cfg(feature = "native")]
    return Box::new(crate::store::redis::TcpRedis);
    #[cfg(not(feature = "native"))]
    return Box::new(crate::store::redis::NoRedis);
}
