//! Key-value access for caches. Spin's key-value store has no TTL and no atomics and may be
//! eventually consistent (DESIGN §4), so it only ever holds values whose loss or staleness is
//! harmless, and every cached value carries its own expiry time.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{KvStore, StoreError};

/// An open key-value store.
pub struct Kv {
    store: Box<dyn KvStore>,
}

#[derive(Serialize, Deserialize)]
struct Expiring<T> {
    /// Expiry, milliseconds since the Unix epoch.
    exp: i64,
    v: T,
}

impl Kv {
    pub fn new(store: Box<dyn KvStore>) -> Self {
        Self { store }
    }

    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.get(key)
    }

    pub fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.store.set(key, value)
    }

    pub fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.store.delete(key)
    }

    pub fn exists(&self, key: &str) -> Result<bool, StoreError> {
        self.store.exists(key)
    }

    /// Caches `value` until `now_ms + ttl_ms`.
    pub fn put_fresh<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(&Expiring {
            exp: now_ms.saturating_add(ttl_ms),
            v: value,
        })
        .map_err(|e| StoreError::kv(format!("encode {key}: {e}")))?;
        self.store.set(key, &bytes)
    }

    /// A cached value that has not expired at `now_ms`. Expired or undecodable entries count as
    /// absent (and are deleted best-effort), so a cache can never serve a stale answer.
    pub fn get_fresh<T: DeserializeOwned>(
        &self,
        key: &str,
        now_ms: i64,
    ) -> Result<Option<T>, StoreError> {
        let Some(bytes) = self.store.get(key)? else {
            return Ok(None);
        };
        match serde_json::from_slice::<Expiring<T>>(&bytes) {
            Ok(entry) if entry.exp > now_ms => Ok(Some(entry.v)),
            _ => {
                let _ = self.store.delete(key);
                Ok(None)
            }
        }
    }
}

#[cfg(all(test, feature = "native"))]
mod tests {
    use super::*;
    use crate::store::native::MemoryKv;

    #[test]
    fn fresh_values_expire() {
        let kv = Kv::new(Box::new(MemoryKv::default()));
        kv.put_fresh("k", &"v".to_string(), 1_000, 60_000).unwrap();
        assert_eq!(
            kv.get_fresh::<String>("k", 60_999).unwrap().as_deref(),
            Some("v")
        );
        assert_eq!(kv.get_fresh::<String>("k", 61_000).unwrap(), None);
        // The expired entry was removed.
        assert!(!kv.exists("k").unwrap());
    }

    #[test]
    fn undecodable_entries_count_as_absent() {
        let kv = Kv::new(Box::new(MemoryKv::default()));
        kv.set("k", b"not json").unwrap();
        assert_eq!(kv.get_fresh::<String>("k", 0).unwrap(), None);
    }
}
