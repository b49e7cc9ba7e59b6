//! `fermyon:spin/key-value@2.0.0`, mirroring Spin's `factor-key-value` with
//! its default SQLite backend (`key-value-spin`): one file
//! `<state_dir>/sqlite_key_value.db`, table `spin_key_value`, one shared
//! connection. `open` checks the component's `key_value_stores` first
//! (`access-denied`), then whether the store exists (only `default` does:
//! `no-such-store`). Backend errors map to `other(msg)`.

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Context as _};
use rusqlite::{params, Connection, OptionalExtension};
use wasmtime::component::Resource;

use crate::bindings::fermyon::spin::key_value::{Error, Host, HostStore};
use crate::server::HostState;

/// The resource behind a guest `store` handle.
pub struct KvStore {
    label: String,
}

/// The host-wide key-value database.
pub struct KvBackend {
    conn: Arc<Mutex<Connection>>,
}

impl KvBackend {
    /// Opens (creating if needed) `<state_dir>/sqlite_key_value.db`.
    pub fn open(state_dir: &Path) -> anyhow::Result<Self> {
        let path = state_dir.join("sqlite_key_value.db");
        let conn = Connection::open(&path)
            .with_context(|| format!("cannot open key-value db {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS spin_key_value (
                store TEXT NOT NULL,
                key   TEXT NOT NULL,
                value BLOB NOT NULL,
                PRIMARY KEY (store, key)
            );",
        )?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, Error> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let guard = conn
                .lock()
                .map_err(|_| anyhow!("key-value lock poisoned"))?;
            f(&guard).map_err(anyhow::Error::from)
        })
        .await
        .map_err(|e| Error::Other(e.to_string()))?
        .map_err(|e| Error::Other(e.to_string()))
    }
}

impl HostState {
    fn kv_check(&self) -> Result<(), Error> {
        if self.shared.faults.kv_unavailable() {
            return Err(Error::Other(
                "injected fault: key-value unavailable".to_string(),
            ));
        }
        Ok(())
    }

    fn kv_label(&self, store: &Resource<KvStore>) -> wasmtime::Result<String> {
        Ok(self.table.get(store)?.label.clone())
    }
}

impl Host for HostState {}

impl HostStore for HostState {
    async fn open(&mut self, label: String) -> wasmtime::Result<Result<Resource<KvStore>, Error>> {
        self.shared.faults.count_kv_open();
        if !self.component.key_value_stores.contains(&label) {
            return Ok(Err(Error::AccessDenied));
        }
        if label != "default" {
            return Ok(Err(Error::NoSuchStore));
        }
        if let Err(e) = self.kv_check() {
            return Ok(Err(e));
        }
        Ok(Ok(self.table.push(KvStore { label })?))
    }

    async fn get(
        &mut self,
        store: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        let label = self.kv_label(&store)?;
        if let Err(e) = self.kv_check() {
            return Ok(Err(e));
        }
        Ok(self
            .shared
            .kv
            .run(move |c| {
                c.prepare_cached("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                    .query_row(params![label, key], |r| r.get::<_, Vec<u8>>(0))
                    .optional()
            })
            .await)
    }

    async fn set(
        &mut self,
        store: Resource<KvStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let label = self.kv_label(&store)?;
        if let Err(e) = self.kv_check() {
            return Ok(Err(e));
        }
        Ok(self
            .shared
            .kv
            .run(move |c| {
                c.prepare_cached(
                    "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT(store, key) DO UPDATE SET value = excluded.value",
                )?
                .execute(params![label, key, value])
                .map(|_| ())
            })
            .await)
    }

    async fn delete(
        &mut self,
        store: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        let label = self.kv_label(&store)?;
        if let Err(e) = self.kv_check() {
            return Ok(Err(e));
        }
        Ok(self
            .shared
            .kv
            .run(move |c| {
                c.prepare_cached("DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                    .execute(params![label, key])
                    .map(|_| ())
            })
            .await)
    }

    async fn exists(
        &mut self,
        store: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, Error>> {
        let label = self.kv_label(&store)?;
        if let Err(e) = self.kv_check() {
            return Ok(Err(e));
        }
        Ok(self
            .shared
            .kv
            .run(move |c| {
                c.prepare_cached("SELECT 1 FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                    .exists(params![label, key])
            })
            .await)
    }

    async fn get_keys(
        &mut self,
        store: Resource<KvStore>,
    ) -> wasmtime::Result<Result<Vec<String>, Error>> {
        let label = self.kv_label(&store)?;
        if let Err(e) = self.kv_check() {
            return Ok(Err(e));
        }
        Ok(self
            .shared
            .kv
            .run(move |c| {
                let mut stmt =
                    c.prepare_cached("SELECT key FROM spin_key_value WHERE store = ?1")?;
                let keys = stmt
                    .query_map(params![label], |r| r.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>();
                keys
            })
            .await)
    }

    async fn drop(&mut self, store: Resource<KvStore>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}
