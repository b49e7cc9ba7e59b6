//! The hash chain: `hash = HMAC-SHA256(audit_key, prev_hash ‖ canonical row)`, rows in a strict
//! sequence (`seq` = previous + 1, no gaps). Changing a column, deleting a row or reordering rows
//! breaks the chain at that row, and [`verify`] names the first broken `seq`.

use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::ids::hex;
use crate::store::{Database, Row, StoreError, Value};

/// `prev_hash` of the very first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Used when `audit_key` is not set, so the chain still detects accidental damage; a deployment
/// sets `audit_key` so that only holders of the key can recompute it (verify reports `keyed`).
pub const UNKEYED: &[u8] = b"streamspace-audit-chain-without-a-configured-key";

/// One audit event, in the canonical field order that is hashed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Record {
    pub id: String,
    pub request_id: String,
    pub ts: i64,
    pub principal: Option<String>,
    pub user_id: Option<String>,
    pub agent_id: Option<String>,
    pub org_id: Option<String>,
    pub method: String,
    pub path: String,
    pub action: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub status: i64,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub duration_ms: f64,
    pub error: Option<String>,
    pub body: Option<String>,
}

/// The columns of a stored row, in [`Record`] order.
pub const COLUMNS: &str = "seq, id, request_id, ts, principal, user_id, agent_id, org_id, method, path, \
     action, resource_type, resource_id, status, client_ip, user_agent, duration_ms, error, body, prev_hash, hash";

impl Record {
    pub fn from_row(row: &Row<'_>) -> Result<Record, StoreError> {
        let opt = |c: &str| -> Result<Option<String>, StoreError> {
            Ok(row.opt_str(c)?.map(str::to_owned))
        };
        Ok(Record {
            id: row.str("id")?.to_owned(),
            request_id: row.str("request_id")?.to_owned(),
            ts: row.i64("ts")?,
            principal: opt("principal")?,
            user_id: opt("user_id")?,
            agent_id: opt("agent_id")?,
            org_id: opt("org_id")?,
            method: row.str("method")?.to_owned(),
            path: row.str("path")?.to_owned(),
            action: row.str("action")?.to_owned(),
            resource_type: opt("resource_type")?,
            resource_id: opt("resource_id")?,
            status: row.i64("status")?,
            client_ip: opt("client_ip")?,
            user_agent: opt("user_agent")?,
            duration_ms: match row.value("duration_ms")? {
                Value::Real(v) => *v,
                Value::Integer(v) => *v as f64,
                other => {
                    return Err(StoreError::sqlite(format!(
                        "audit_log.duration_ms: {other:?}"
                    )))
                }
            },
            error: opt("error")?,
            body: opt("body")?,
        })
    }

    /// The canonical text that is hashed: the record as JSON, fields in declaration order.
    pub fn canonical(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// `HMAC-SHA256(key, prev_hash ‖ canonical)`, lowercase hex.
pub fn link(key: &[u8], prev_hash: &str, canonical: &str) -> String {
    match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(prev_hash.as_bytes());
            mac.update(canonical.as_bytes());
            hex(&mac.finalize().into_bytes())
        }
        // HMAC takes keys of any length; this arm is unreachable in practice.
        Err(_) => String::new(),
    }
}

/// Appends `record` after the current tail. Must run inside a transaction (the caller's unit of
/// work), so reading the tail and inserting after it are one atomic step.
pub fn append(db: &Database, key: &[u8], record: &Record) -> Result<(), StoreError> {
    let tail = db.execute(
        "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
        &[],
    )?;
    let (seq, prev_hash) = match tail.first() {
        Some(row) => (row.i64("seq")? + 1, row.str("hash")?.to_owned()),
        None => start_of_chain(db)?,
    };
    let hash = link(key, &prev_hash, &record.canonical());
    db.execute(
        "INSERT INTO audit_log (seq, id, request_id, ts, principal, user_id, agent_id, org_id, method, path,
            action, resource_type, resource_id, status, client_ip, user_agent, duration_ms, error, body, prev_hash, hash)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        &[
            Value::from(seq),
            Value::from(record.id.as_str()),
            Value::from(record.request_id.as_str()),
            Value::from(record.ts),
            Value::from(record.principal.clone()),
            Value::from(record.user_id.clone()),
            Value::from(record.agent_id.clone()),
            Value::from(record.org_id.clone()),
            Value::from(record.method.as_str()),
            Value::from(record.path.as_str()),
            Value::from(record.action.as_str()),
            Value::from(record.resource_type.clone()),
            Value::from(record.resource_id.clone()),
            Value::from(record.status),
            Value::from(record.client_ip.clone()),
            Value::from(record.user_agent.clone()),
            Value::Real(record.duration_ms),
            Value::from(record.error.clone()),
            Value::from(record.body.clone()),
            Value::from(prev_hash.as_str()),
            Value::from(hash.as_str()),
        ],
    )?;
    Ok(())
}

/// Where the chain starts: after the latest retention checkpoint, or the genesis.
fn start_of_chain(db: &Database) -> Result<(i64, String), StoreError> {
    let checkpoint = db.execute(
        "SELECT seq, prev_hash FROM audit_checkpoints ORDER BY seq DESC LIMIT 1",
        &[],
    )?;
    Ok(match checkpoint.first() {
        Some(row) => (row.i64("seq")?, row.str("prev_hash")?.to_owned()),
        None => (1, GENESIS.to_owned()),
    })
}

/// The outcome of walking the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub ok: bool,
    pub checked: u64,
    pub first_broken: Option<i64>,
    /// False when `audit_key` is not configured (the chain then only detects accidents).
    pub keyed: bool,
}

/// Walks the whole chain from the latest checkpoint (or the genesis), page by page.
pub fn verify(db: &Database, key: &[u8], keyed: bool) -> Result<Report, StoreError> {
    let (mut expected_seq, mut prev_hash) = start_of_chain(db)?;
    let mut checked = 0u64;
    let mut after = expected_seq - 1;
    // Rows before the checkpoint must be gone; a row that survived below it is a break too.
    let stray = db.execute(
        "SELECT seq FROM audit_log WHERE seq < ? ORDER BY seq LIMIT 1",
        &[Value::from(expected_seq)],
    )?;
    if let Some(row) = stray.first() {
        return Ok(Report {
            ok: false,
            checked,
            first_broken: Some(row.i64("seq")?),
            keyed,
        });
    }
    loop {
        let rows = db.execute(
            &format!("SELECT {COLUMNS} FROM audit_log WHERE seq > ? ORDER BY seq LIMIT 1000"),
            &[Value::from(after)],
        )?;
        if rows.is_empty() {
            return Ok(Report {
                ok: true,
                checked,
                first_broken: None,
                keyed,
            });
        }
        for row in rows.iter() {
            let seq = row.i64("seq")?;
            let record = Record::from_row(&row)?;
            let stored_prev = row.str("prev_hash")?;
            let stored_hash = row.str("hash")?;
            let recomputed = link(key, &prev_hash, &record.canonical());
            if seq != expected_seq || stored_prev != prev_hash || stored_hash != recomputed {
                return Ok(Report {
                    ok: false,
                    checked,
                    first_broken: Some(seq.min(expected_seq)),
                    keyed,
                });
            }
            checked += 1;
            prev_hash = stored_hash.to_owned();
            expected_seq += 1;
            after = seq;
        }
    }
}

#[cfg(all(test, feature = "native"))]
mod tests {
    use super::*;
    use crate::services::testing::TestStores;

    const KEY: &[u8] = b"test-audit-key";

    fn record(n: i64) -> Record {
        Record {
            id: format!("id-{n}"),
            request_id: format!("req-{n}"),
            ts: n,
            method: "GET".into(),
            path: format!("/p/{n}"),
            action: "GET /p/{id}".into(),
            status: 200,
            duration_ms: 1.5,
            ..Record::default()
        }
    }

    fn chain_of(n: i64) -> TestStores {
        let stores = TestStores::new();
        let services = stores.services();
        let db = services.db().unwrap();
        for i in 1..=n {
            db.transaction(|db| append(db, KEY, &record(i))).unwrap();
        }
        stores
    }

    fn report(stores: &TestStores) -> Report {
        verify(stores.services().db().unwrap(), KEY, true).unwrap()
    }

    /// Tampering needs the triggers out of the way, as an attacker with file access would do.
    fn tamper(stores: &TestStores, statements: &[&str]) {
        let services = stores.services();
        let db = services.db().unwrap();
        db.execute("DROP TRIGGER audit_log_no_update", &[]).unwrap();
        db.execute("DROP TRIGGER audit_log_no_delete", &[]).unwrap();
        for s in statements {
            db.execute(s, &[]).unwrap();
        }
    }

    #[test]
    fn an_intact_chain_verifies() {
        let stores = chain_of(5);
        assert_eq!(
            report(&stores),
            Report {
                ok: true,
                checked: 5,
                first_broken: None,
                keyed: true
            }
        );
        // The wrong key sees a broken chain from the first row.
        let wrong = verify(stores.services().db().unwrap(), b"other", true).unwrap();
        assert_eq!(wrong.first_broken, Some(1));
    }

    #[test]
    fn triggers_refuse_update_and_delete() {
        let stores = chain_of(2);
        let services = stores.services();
        let db = services.db().unwrap();
        assert!(db
            .execute("UPDATE audit_log SET status = 500 WHERE seq = 1", &[])
            .is_err());
        assert!(db
            .execute("DELETE FROM audit_log WHERE seq = 1", &[])
            .is_err());
        assert!(report(&stores).ok);
    }

    #[test]
    fn a_changed_column_is_found() {
        let stores = chain_of(5);
        tamper(
            &stores,
            &["UPDATE audit_log SET status = 403 WHERE seq = 3"],
        );
        assert_eq!(report(&stores).first_broken, Some(3));
    }

    #[test]
    fn a_deleted_row_is_found() {
        let stores = chain_of(5);
        tamper(&stores, &["DELETE FROM audit_log WHERE seq = 2"]);
        assert_eq!(report(&stores).first_broken, Some(2));
    }

    #[test]
    fn reordered_rows_are_found() {
        let stores = chain_of(5);
        tamper(
            &stores,
            &[
                "UPDATE audit_log SET seq = 100 WHERE seq = 3",
                "UPDATE audit_log SET seq = 3 WHERE seq = 4",
                "UPDATE audit_log SET seq = 4 WHERE seq = 100",
            ],
        );
        assert_eq!(report(&stores).first_broken, Some(3));
    }

    #[test]
    fn a_deleted_tail_is_not_detectable_but_appending_continues_correctly() {
        // Known limit of any hash chain without an external anchor: dropping the newest rows
        // leaves a valid shorter chain. The row count in stats and exports is the cross-check.
        let stores = chain_of(3);
        tamper(&stores, &["DELETE FROM audit_log WHERE seq = 3"]);
        assert!(report(&stores).ok);
    }

    #[test]
    fn retention_through_the_gate_keeps_the_chain_verifiable() {
        let stores = chain_of(6);
        let services = stores.services();
        let db = services.db().unwrap();
        db.transaction(|db| -> Result<(), StoreError> {
            db.execute("UPDATE audit_gate SET open = 1 WHERE id = 1", &[])?;
            db.execute(
                "INSERT INTO audit_checkpoints (seq, prev_hash, created_at, removed_through, removed_count)
                 SELECT seq, prev_hash, 0, seq - 1, seq - 1 FROM audit_log WHERE seq = 4",
                &[],
            )?;
            db.execute("DELETE FROM audit_log WHERE seq < 4", &[])?;
            db.execute("UPDATE audit_gate SET open = 0 WHERE id = 1", &[])?;
            Ok(())
        })
        .unwrap();
        assert_eq!(
            report(&stores),
            Report {
                ok: true,
                checked: 3,
                first_broken: None,
                keyed: true
            }
        );
        db.transaction(|db| append(db, KEY, &record(7))).unwrap();
        assert_eq!(report(&stores).checked, 4);
    }
}
