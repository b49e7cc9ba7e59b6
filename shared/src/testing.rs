//! Test support (native builds only): [`TestStores`], native services for unit tests with
//! handles to steer every store, and small fixtures ([`principal`], [`insert_user`]).
//!
//! Kept apart from [`crate::services`] so the per-request services do not import the pipeline
//! (which [`TestStores::call`] drives) just for their tests.

use crate::access_log::LogSink;
use crate::services::Services;
use crate::store::native::{
    FixedClock, MapVariables, MemoryKv, NativeSql, ScriptedOutbound, SeqRandom,
};
use crate::store::{Database, StoreError};

/// Owns the test database file and handles to the fakes behind a [`Services`].
pub struct TestStores {
    pub sql: NativeSql,
    pub kv: MemoryKv,
    pub clock: FixedClock,
    pub variables: MapVariables,
    pub outbound: ScriptedOutbound,
    pub random: SeqRandom,
    /// Access-log lines of every request served through these stores.
    pub log: MemoryLog,
}

/// Collects log lines in memory (unit tests read them instead of stdout).
#[derive(Clone, Default)]
pub struct MemoryLog(std::rc::Rc<std::cell::RefCell<Vec<String>>>);

impl MemoryLog {
    pub fn lines(&self) -> Vec<String> {
        self.0.borrow().clone()
    }
}

impl LogSink for MemoryLog {
    fn write_line(&self, line: &str) {
        self.0.borrow_mut().push(line.to_owned());
    }
}

impl TestStores {
    pub fn new() -> Self {
        Self {
            sql: NativeSql::temp(),
            kv: MemoryKv::default(),
            clock: FixedClock::at(1_795_413_600_000),
            variables: MapVariables::default(),
            outbound: ScriptedOutbound::default(),
            random: SeqRandom::default(),
            log: MemoryLog::default(),
        }
    }

    /// A fresh per-request [`Services`] over these stores.
    pub fn services(&self) -> Services {
        let mut services = Services::new(
            Box::new(self.clock.clone()),
            Box::new(self.random.clone()),
            Box::new(self.variables.clone()),
            Box::new(self.outbound.clone()),
            Box::new(self.sql.handle()),
            Box::new(self.kv.clone()),
        );
        services.log = Box::new(self.log.clone());
        services
    }
}

impl TestStores {
    /// Runs one request through the whole pipeline with `table`, as a Spin instance would.
    pub fn call(
        &self,
        table: &crate::router::RouteTable,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> crate::http::Response {
        let mut map = http::HeaderMap::new();
        for (name, value) in headers {
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_str(value),
            ) {
                map.append(name, value);
            }
        }
        let head = crate::http::RequestHead::new(
            http::Method::from_bytes(method.as_bytes()).ok(),
            path,
            map,
        );
        let services = std::rc::Rc::new(self.services());
        let response = futures::executor::block_on(crate::pipeline::serve(
            table,
            services.clone(),
            head,
            body.to_vec(),
        ));
        // As on Spin: the deferred work runs after the response is complete.
        services.after_response();
        futures::executor::block_on(services.run_deferred());
        response
    }
}

/// A verified principal for unit tests (a full-scope bearer login session).
pub fn principal(user_id: &str, org_id: &str, role: crate::auth::Role) -> crate::auth::Principal {
    crate::auth::Principal {
        user_id: user_id.to_owned(),
        org_id: org_id.to_owned(),
        username: user_id.to_owned(),
        role,
        platform_admin: false,
        scope: crate::auth::Scope::Full,
        credential: crate::auth::Credential::Session {
            session_id: "s".to_owned(),
            cookie: false,
        },
    }
}

/// Inserts an active user row (username = id, no usable password) for unit tests.
pub fn insert_user(db: &Database, id: &str, org_id: &str, role: &str) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO users (id, org_id, username, email, password_hash, role, status, created_at, updated_at)
         VALUES (?, ?, ?, ?, 'x', ?, 'active', 0, 0)",
        &[
            crate::store::Value::from(id),
            crate::store::Value::from(org_id),
            crate::store::Value::from(id),
            crate::store::Value::from(format!("{id}@example.com")),
            crate::store::Value::from(role),
        ],
    )
    .map(|_| ())
}

/// A login session of `user_id` valid for a day from `now_ms`, and its bearer access token (for
/// components whose unit tests cannot call auth's login route).
pub fn login_token(
    db: &Database,
    random: &dyn crate::store::Random,
    user_id: &str,
    org_id: &str,
    now_ms: i64,
) -> Result<String, StoreError> {
    use crate::store::Value;
    let session_id = format!("test-session-{user_id}");
    db.execute(
        "INSERT INTO login_sessions (id, user_id, org_id, created_at, last_seen_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?)",
        &[
            Value::from(session_id.as_str()),
            Value::from(user_id),
            Value::from(org_id),
            Value::from(now_ms),
            Value::from(now_ms),
            Value::from(now_ms + 86_400_000),
        ],
    )?;
    let (token, hash) = crate::secrets::new_token(random, crate::secrets::TokenKind::Access)?;
    db.execute(
        "INSERT INTO access_tokens (token_hash, session_id, expires_at) VALUES (?, ?, ?)",
        &[
            Value::from(hash.as_str()),
            Value::from(session_id.as_str()),
            Value::from(now_ms + 86_400_000),
        ],
    )?;
    Ok(token.expose().to_owned())
}

impl Default for TestStores {
    fn default() -> Self {
        Self::new()
    }
}
