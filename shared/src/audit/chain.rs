//! The hash chain: `hash = HMAC-SHA256(audit_key, prev_hash ‖ canonical row)`, rows in a strict
//! sequence (`seq` = previous + 1, no gaps). Changing a column, deleting a row or reordering rows
//! breaks the chain at that row, and verification names the first broken `seq`.
//!
//! Rows are written **unsealed** on the request path ([`insert_unsealed`]: one statement, no
//! lock held across calls, no HMAC) and linked into the chain later by [`seal`], in `seq` order
//! and in batches: after the response, before every audit read, verification, export and
//! retention, and from the maintenance route. Until then a row has empty `prev_hash`/`hash`
//! and is not covered by the chain (README, "Audit log"). Verification treats the unsealed rows
//! at the end as "not yet in the chain", and an unsealed row followed by a sealed one as a break.
//!
//! Retention deletes the oldest rows and records a checkpoint (the first remaining `seq` and its
//! `prev_hash`). Checkpoints are authenticated too: `mac = HMAC(audit_key, previous checkpoint's
//! mac ‖ canonical checkpoint)` (the first one chains to [`GENESIS`]), so a checkpoint inserted,
//! altered or removed by someone with write access to the database file breaks verification.
//! A checkpoint without a MAC (written before migration 8) is reported as broken.
//!
//! Verification ([`verify_incremental`], [`verify_full`]) is bounded: at most
//! [`VERIFY_MAX_ROWS`] rows per call. The incremental verifier remembers where it stopped in
//! `audit_verify_state` (the row's `seq` and hash, MAC'd with `audit_key`) and on the next call
//! re-checks that row before going on. Every call also checks the checkpoints and that the oldest
//! row is where the chain starts. What the incremental verifier does not repeat is walking the
//! rows it already verified, so a later edit or deletion of a row *behind* the stored position
//! is found only by a full re-verification ([`verify_full`], platform admin; run it from the
//! scheduler). (Counting the rows to find a deletion there would cost a scan of the whole log,
//! ~160 ms at 1M rows, on every call.)

use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::ids::hex;
use crate::store::{Database, Row, StoreError, Value};

/// `prev_hash` of the very first row (and the "previous MAC" of the first checkpoint).
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Used when `audit_key` is not set, so the chain still detects accidental damage; a deployment
/// sets `audit_key` so that only holders of the key can recompute it (verify reports `keyed`).
pub const UNKEYED: &[u8] = b"streamspace-audit-chain-without-a-configured-key";

/// Rows whose hashes one verification call recomputes, at most.
pub const VERIFY_MAX_ROWS: u64 = 10_000;

/// Rows fetched per statement while verifying.
const VERIFY_BATCH: u64 = 1000;

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
    /// The org the request acted on when it is not the actor's own (the platform admin inside
    /// another org). Hashed only when present, so rows written before the column existed (and
    /// every row without a foreign target) keep their canonical form.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_org_id: Option<String>,
}

/// The columns of a stored row, in [`Record`] order.
pub const COLUMNS: &str =
    "seq, id, request_id, ts, principal, user_id, agent_id, org_id, method, path, \
     action, resource_type, resource_id, status, client_ip, user_agent, duration_ms, error, body, \
     target_org_id, prev_hash, hash";

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
            target_org_id: opt("target_org_id")?,
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

/// What the insert of an unsealed row returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inserted {
    pub seq: i64,
    /// The database's schema version, piggybacked on the insert ([`crate::migrations`]).
    pub schema_version: i64,
}

/// Writes `record` as the next row, **unsealed** (`prev_hash` and `hash` empty): one statement,
/// no read of the chain's tail, no HMAC. [`seal`] links it into the chain later.
///
/// `seq` is computed by the statement itself — the newest row's + 1, or after a retention that
/// left the table empty the latest checkpoint's — and an insert runs under SQLite's write lock
/// from its first step, so rows commit in `seq` order and the committed rows are always a prefix
/// without gaps: a rolled-back insert leaves no row, and the next insert takes the same `seq`
/// again (nobody can have sealed the rolled-back row: a sealer sees committed rows only).
pub fn insert_unsealed(db: &Database, record: &Record) -> Result<Inserted, StoreError> {
    let rows = db.execute(
        "INSERT INTO audit_log (seq, id, request_id, ts, principal, user_id, agent_id, org_id, method, path,
            action, resource_type, resource_id, status, client_ip, user_agent, duration_ms, error, body,
            target_org_id, prev_hash, hash)
         VALUES (coalesce((SELECT max(seq) FROM audit_log) + 1,
                          (SELECT max(seq) FROM audit_checkpoints), 1),
                 ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', '')
         RETURNING seq, (SELECT user_version FROM pragma_user_version) AS schema_version",
        &[
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
            Value::from(record.target_org_id.clone()),
        ],
    )?;
    let row = rows
        .first()
        .ok_or_else(|| StoreError::sqlite("audit insert returned no row"))?;
    Ok(Inserted {
        seq: row.i64("seq")?,
        schema_version: row.i64("schema_version")?,
    })
}

/// Rows one sealing statement links, at most.
pub const SEAL_BATCH: u64 = 200;

/// Links unsealed rows into the chain, oldest first, in batches of [`SEAL_BATCH`], at most
/// `max_rows` rows; returns how many this call sealed.
///
/// Idempotent and safe to run concurrently: the hash of a row follows only from the row, the
/// row before it and the key, so every sealer computes the same values, and each batch is one
/// `UPDATE … WHERE hash = ''` (a trigger lets the two columns change once, from empty to a
/// value), so a row another sealer got to first is left as it is. A run stops at a gap in `seq`
/// or at an unsealed row at or before the verifier's remembered position (both are damage for
/// [`verify_incremental`] to report, not something to paper over).
pub fn seal(db: &Database, key: &[u8], max_rows: u64) -> Result<u64, StoreError> {
    let mut sealed = 0;
    while sealed < max_rows {
        let want = SEAL_BATCH.min(max_rows - sealed);
        // The newest sealed row (the chain's current end) and the unsealed rows after it.
        let rows = db.execute(
            &format!(
                "SELECT {COLUMNS}, (SELECT seq FROM audit_verify_state WHERE id = 1) AS verified_seq
                   FROM audit_log
                  WHERE seq >= coalesce(
                        (SELECT seq FROM audit_log WHERE hash <> '' ORDER BY seq DESC LIMIT 1), 0)
                  ORDER BY seq LIMIT ?"
            ),
            &[Value::from(i64::try_from(want + 1).unwrap_or(1))],
        )?;
        let mut iter = rows.iter().peekable();
        let (mut prev_seq, mut prev_hash) = match iter.peek() {
            None => return Ok(sealed),
            Some(first) if !first.str("hash")?.is_empty() => {
                let end = (first.i64("seq")?, first.str("hash")?.to_owned());
                iter.next();
                end
            }
            Some(_) => {
                let (start, hash) = start_of_chain(db)?;
                (start - 1, hash)
            }
        };
        let mut links: Vec<Value> = Vec::new();
        let mut count: usize = 0;
        for row in iter.take(usize::try_from(want).unwrap_or(usize::MAX)) {
            let seq = row.i64("seq")?;
            let verified = row.opt_i64("verified_seq")?;
            if seq != prev_seq + 1 || verified.is_some_and(|v| seq <= v) {
                break;
            }
            let hash = link(key, &prev_hash, &Record::from_row(&row)?.canonical());
            links.extend([
                Value::from(seq),
                Value::from(prev_hash.as_str()),
                Value::from(hash.as_str()),
            ]);
            prev_seq = seq;
            prev_hash = hash;
            count += 1;
        }
        if count == 0 {
            return Ok(sealed);
        }
        let values = vec!["(?, ?, ?)"; count].join(", ");
        db.execute(
            &format!(
                "UPDATE audit_log SET prev_hash = v.column2, hash = v.column3
                   FROM (VALUES {values}) AS v
                  WHERE audit_log.seq = v.column1 AND audit_log.hash = ''"
            ),
            &links,
        )?;
        let count = u64::try_from(count).unwrap_or(u64::MAX);
        sealed += count;
        if count < want {
            return Ok(sealed);
        }
    }
    Ok(sealed)
}

/// Seals everything that is unsealed now (bounded: [`SEAL_ALL_MAX`] rows), as every audit read,
/// verification, export and retention does first.
pub fn seal_all(db: &Database, key: &[u8]) -> Result<u64, StoreError> {
    seal(db, key, SEAL_ALL_MAX)
}

/// The most rows one [`seal_all`] links.
pub const SEAL_ALL_MAX: u64 = 100_000;

/// Appends `record` and seals the chain through it (tests and tools; the request path inserts
/// unsealed and seals after the response).
pub fn append(db: &Database, key: &[u8], record: &Record) -> Result<(), StoreError> {
    insert_unsealed(db, record)?;
    seal_all(db, key)?;
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

/// A retention checkpoint: rows before `seq` were deleted; `prev_hash` is the hash of the last
/// deleted row (the `prev_hash` of the row at `seq`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: i64,
    pub prev_hash: String,
    pub created_at: i64,
    pub removed_through: i64,
    pub removed_count: i64,
}

impl Checkpoint {
    fn canonical(&self) -> String {
        format!(
            "audit-checkpoint\n{}\n{}\n{}\n{}\n{}",
            self.seq, self.prev_hash, self.created_at, self.removed_through, self.removed_count
        )
    }

    /// `HMAC(key, previous checkpoint's mac ‖ canonical checkpoint)`.
    pub fn mac(&self, key: &[u8], prev_mac: &str) -> String {
        link(key, prev_mac, &self.canonical())
    }
}

/// Records `checkpoint` after the latest one, its MAC chained to that one's. Runs in the
/// retention's transaction.
pub fn record_checkpoint(
    db: &Database,
    key: &[u8],
    checkpoint: &Checkpoint,
) -> Result<(), StoreError> {
    let latest = db.execute(
        "SELECT mac FROM audit_checkpoints WHERE seq < ? ORDER BY seq DESC LIMIT 1",
        &[Value::from(checkpoint.seq)],
    )?;
    let prev_mac = match latest.first() {
        Some(row) => row.opt_str("mac")?.unwrap_or_default().to_owned(),
        None => GENESIS.to_owned(),
    };
    db.execute(
        "INSERT INTO audit_checkpoints (seq, prev_hash, created_at, removed_through, removed_count, mac)
         VALUES (?, ?, ?, ?, ?, ?)",
        &[
            Value::from(checkpoint.seq),
            Value::from(checkpoint.prev_hash.as_str()),
            Value::from(checkpoint.created_at),
            Value::from(checkpoint.removed_through),
            Value::from(checkpoint.removed_count),
            Value::from(checkpoint.mac(key, &prev_mac)),
        ],
    )?;
    Ok(())
}

/// Why verification failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Broken {
    /// A row's hash, `prev_hash` or `seq` does not follow from the one before it.
    Row,
    /// A checkpoint's MAC does not verify (forged, altered, removed, or written without a MAC).
    Checkpoint,
    /// Rows are missing: the oldest row is not where the chain starts.
    MissingRows,
    /// A row survived below the latest checkpoint.
    StrayRow,
    /// The row where the previous verification stopped is gone or changed since.
    Position,
}

/// The outcome of one verification call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// No break found in what this call checked (with what the earlier calls of the same pass
    /// verified: everything from the start of the chain through `verified_through`).
    pub ok: bool,
    /// Rows whose hashes this call recomputed.
    pub checked: u64,
    pub first_broken: Option<i64>,
    /// False when `audit_key` is not configured (the chain then only detects accidents).
    pub keyed: bool,
    /// This pass reached the newest row (or found a break); false: call again to continue.
    pub complete: bool,
    /// A full re-verification from the start of the chain (`?full=true`).
    pub full: bool,
    /// What broke, when something did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Broken>,
    /// The first row this call checked.
    pub from_seq: Option<i64>,
    /// The newest row known good: the chain verified from its start through this row.
    pub verified_through: Option<i64>,
    /// When not complete: the next call continues after this row.
    pub next_after_seq: Option<i64>,
    /// When a full pass is not complete: pass it back as `cursor` (with `full=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl Report {
    fn new(keyed: bool, full: bool) -> Report {
        Report {
            ok: true,
            checked: 0,
            first_broken: None,
            keyed,
            complete: true,
            full,
            reason: None,
            from_seq: None,
            verified_through: None,
            next_after_seq: None,
            next_cursor: None,
        }
    }

    fn broken(mut self, seq: i64, reason: Broken) -> Report {
        self.ok = false;
        self.first_broken = Some(seq);
        self.reason = Some(reason);
        self.complete = true;
        self.next_after_seq = None;
        self.next_cursor = None;
        self
    }
}

/// The start of the chain (`seq` and the expected `prev_hash` of that row), or where and why it
/// is broken.
type Anchor = Result<(i64, String), (i64, Broken)>;

/// Where the chain starts, after checking every checkpoint's MAC, that no row survived below the
/// latest one and that the oldest row is at the start (all cheap: no scan of the log).
fn anchor(db: &Database, key: &[u8]) -> Result<Anchor, StoreError> {
    let rows = db.execute(
        "SELECT seq, prev_hash, created_at, removed_through, removed_count, mac
           FROM audit_checkpoints ORDER BY seq",
        &[],
    )?;
    let mut prev_mac = GENESIS.to_owned();
    let mut start = (1, GENESIS.to_owned());
    for row in rows.iter() {
        let checkpoint = Checkpoint {
            seq: row.i64("seq")?,
            prev_hash: row.str("prev_hash")?.to_owned(),
            created_at: row.i64("created_at")?,
            removed_through: row.i64("removed_through")?,
            removed_count: row.i64("removed_count")?,
        };
        let expected = checkpoint.mac(key, &prev_mac);
        match row.opt_str("mac")? {
            Some(mac) if crate::secrets::constant_time_eq(mac.as_bytes(), expected.as_bytes()) => {}
            _ => return Ok(Err((checkpoint.seq, Broken::Checkpoint))),
        }
        prev_mac = expected;
        start = (checkpoint.seq, checkpoint.prev_hash);
    }
    let (start_seq, _) = &start;
    // MIN(seq) is one probe of the primary key, whatever the size of the log.
    let lowest = db.execute("SELECT MIN(seq) AS lo FROM audit_log", &[])?;
    let Some(lo) = lowest
        .first()
        .map(|r| r.opt_i64("lo"))
        .transpose()?
        .flatten()
    else {
        return Ok(Ok(start));
    };
    if lo < *start_seq {
        return Ok(Err((lo, Broken::StrayRow)));
    }
    if lo > *start_seq {
        return Ok(Err((*start_seq, Broken::MissingRows)));
    }
    Ok(Ok(start))
}

/// The row at `seq` as it must be to resume after it: present, its stored hash accepted by
/// `accept`, and its hash recomputing from its own columns. Its hash, or why not.
fn position(
    db: &Database,
    key: &[u8],
    seq: i64,
    accept: impl Fn(&str) -> bool,
) -> Result<Result<String, Broken>, StoreError> {
    let rows = db.execute(
        &format!("SELECT {COLUMNS} FROM audit_log WHERE seq = ?"),
        &[Value::from(seq)],
    )?;
    let Some(row) = rows.first() else {
        return Ok(Err(Broken::Position));
    };
    let hash = row.str("hash")?;
    if !accept(hash) {
        return Ok(Err(Broken::Position));
    }
    let record = Record::from_row(&row)?;
    if link(key, row.str("prev_hash")?, &record.canonical()) != hash {
        return Ok(Err(Broken::Row));
    }
    Ok(Ok(hash.to_owned()))
}

/// Walks at most `max` rows after `after`, expecting `after + 1` chained to `prev_hash`.
fn walk(
    db: &Database,
    key: &[u8],
    after: i64,
    prev_hash: String,
    max: u64,
    mut report: Report,
) -> Result<(Report, Option<(i64, String)>), StoreError> {
    let mut expected_seq = after + 1;
    let mut prev_hash = prev_hash;
    let mut after = after;
    let mut last: Option<(i64, String)> = None;
    loop {
        let want = VERIFY_BATCH.min(max - report.checked);
        if want == 0 {
            let more = db.execute(
                "SELECT seq FROM audit_log WHERE seq > ? AND hash <> '' LIMIT 1",
                &[Value::from(after)],
            )?;
            if !more.is_empty() {
                report.complete = false;
                report.next_after_seq = Some(after);
            }
            return Ok((report, last));
        }
        let rows = db.execute(
            &format!("SELECT {COLUMNS} FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?"),
            &[
                Value::from(after),
                Value::from(i64::try_from(want).unwrap_or(1000)),
            ],
        )?;
        if rows.is_empty() {
            return Ok((report, last));
        }
        for row in rows.iter() {
            let seq = row.i64("seq")?;
            let stored_prev = row.str("prev_hash")?;
            let stored_hash = row.str("hash")?;
            if stored_hash.is_empty() {
                // Not sealed yet: the sealed chain ends here — unless a sealed row follows, in
                // which case this row's seal was removed.
                let later = db.execute(
                    "SELECT seq FROM audit_log WHERE seq > ? AND hash <> '' LIMIT 1",
                    &[Value::from(seq)],
                )?;
                if !later.is_empty() || seq != expected_seq {
                    return Ok((report.broken(seq.min(expected_seq), Broken::Row), last));
                }
                return Ok((report, last));
            }
            let record = Record::from_row(&row)?;
            let recomputed = link(key, &prev_hash, &record.canonical());
            if seq != expected_seq || stored_prev != prev_hash || stored_hash != recomputed {
                return Ok((report.broken(seq.min(expected_seq), Broken::Row), last));
            }
            if report.from_seq.is_none() {
                report.from_seq = Some(seq);
            }
            report.checked += 1;
            report.verified_through = Some(seq);
            prev_hash = stored_hash.to_owned();
            last = Some((seq, prev_hash.clone()));
            expected_seq += 1;
            after = seq;
        }
    }
}

/// The MAC that binds a verified position (`seq` and the hash of the row there) to the key.
fn position_mac(key: &[u8], purpose: &str, seq: i64, hash: &str) -> String {
    link(key, purpose, &format!("{seq}\n{hash}"))
}

const STATE_MAC: &str = "audit-verify-state";
const CURSOR_MAC: &str = "audit-verify-cursor";

fn save_state(db: &Database, key: &[u8], seq: i64, hash: &str, now: i64) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO audit_verify_state (id, seq, hash, mac, verified_at) VALUES (1, ?1, ?2, ?3, ?4)
         ON CONFLICT (id) DO UPDATE SET seq = ?1, hash = ?2, mac = ?3, verified_at = ?4",
        &[
            Value::from(seq),
            Value::from(hash),
            Value::from(position_mac(key, STATE_MAC, seq, hash)),
            Value::from(now),
        ],
    )?;
    Ok(())
}

/// The stored position, if its MAC verifies (a position that does not is ignored: the pass
/// restarts from the start of the chain, which checks more, never less).
fn load_state(db: &Database, key: &[u8]) -> Result<Option<(i64, String)>, StoreError> {
    let rows = db.execute(
        "SELECT seq, hash, mac FROM audit_verify_state WHERE id = 1",
        &[],
    )?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let (seq, hash) = (row.i64("seq")?, row.str("hash")?);
    let expected = position_mac(key, STATE_MAC, seq, hash);
    Ok(
        crate::secrets::constant_time_eq(row.str("mac")?.as_bytes(), expected.as_bytes())
            .then(|| (seq, hash.to_owned())),
    )
}

/// The cursor a full pass hands back: `<seq>.<mac of seq and that row's hash>`.
fn cursor_for(key: &[u8], seq: i64, hash: &str) -> String {
    format!("{seq}.{}", position_mac(key, CURSOR_MAC, seq, hash))
}

/// A full pass's cursor could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadCursor;

/// Continues from the remembered position (or the start of the chain), at most `max_rows` rows,
/// and remembers where it stopped. Any org's admin or auditor may run it: the work is bounded.
pub fn verify_incremental(
    db: &Database,
    key: &[u8],
    keyed: bool,
    now: i64,
    max_rows: u64,
) -> Result<Report, StoreError> {
    let report = Report::new(keyed, false);
    let (start_seq, start_hash) = match anchor(db, key)? {
        Ok(start) => start,
        Err((seq, why)) => return Ok(report.broken(seq, why)),
    };
    let (after, prev_hash) = match load_state(db, key)? {
        Some((seq, hash)) if seq >= start_seq => {
            match position(db, key, seq, |stored| stored == hash)? {
                Ok(hash) => (seq, hash),
                Err(why) => return Ok(report.broken(seq, why)),
            }
        }
        // No position yet, an unauthenticated one, or one that retention has since removed.
        _ => (start_seq - 1, start_hash),
    };
    let (mut report, last) = walk(db, key, after, prev_hash, max_rows, report)?;
    if report.verified_through.is_none() && report.ok {
        report.verified_through = (after >= start_seq).then_some(after);
    }
    if let Some((seq, hash)) = last {
        save_state(db, key, seq, &hash, now)?;
    }
    Ok(report)
}

/// A full re-verification from the start of the chain, at most `max_rows` rows per call,
/// continued with the returned `next_cursor`. A pass that reaches the newest row intact also
/// moves the incremental position there.
pub fn verify_full(
    db: &Database,
    key: &[u8],
    keyed: bool,
    now: i64,
    cursor: Option<&str>,
    max_rows: u64,
) -> Result<Result<Report, BadCursor>, StoreError> {
    let report = Report::new(keyed, true);
    let (start_seq, start_hash) = match anchor(db, key)? {
        Ok(start) => start,
        Err((seq, why)) => return Ok(Ok(report.broken(seq, why))),
    };
    let (after, prev_hash) = match cursor {
        None => (start_seq - 1, start_hash),
        Some(text) => {
            let parsed = text
                .split_once('.')
                .and_then(|(seq, mac)| Some((seq.parse::<i64>().ok()?, mac)))
                .filter(|(seq, mac)| *seq >= 1 && mac.len() == 64);
            let Some((seq, mac)) = parsed else {
                return Ok(Err(BadCursor));
            };
            if seq < start_seq {
                // Retention removed the rows this pass had reached: go on from the start.
                (start_seq - 1, start_hash)
            } else {
                let accept = |stored: &str| {
                    crate::secrets::constant_time_eq(
                        position_mac(key, CURSOR_MAC, seq, stored).as_bytes(),
                        mac.as_bytes(),
                    )
                };
                match position(db, key, seq, accept)? {
                    Ok(hash) => (seq, hash),
                    Err(why) => return Ok(Ok(report.broken(seq, why))),
                }
            }
        }
    };
    let (mut report, last) = walk(db, key, after, prev_hash, max_rows, report)?;
    if report.verified_through.is_none() && report.ok {
        report.verified_through = (after >= start_seq).then_some(after);
    }
    if let Some((seq, hash)) = &last {
        if !report.complete {
            report.next_cursor = Some(cursor_for(key, *seq, hash));
        } else if report.ok {
            save_state(db, key, *seq, hash, now)?;
        }
    }
    Ok(Ok(report))
}

/// Walks the whole chain from the start (tests, and callers that accept unbounded work).
pub fn verify(db: &Database, key: &[u8], keyed: bool) -> Result<Report, StoreError> {
    let mut cursor: Option<String> = None;
    let mut checked = 0;
    loop {
        let report = match verify_full(db, key, keyed, 0, cursor.as_deref(), VERIFY_MAX_ROWS)? {
            Ok(report) => report,
            Err(BadCursor) => return Err(StoreError::sqlite("audit verify: bad cursor")),
        };
        checked += report.checked;
        if report.complete {
            return Ok(Report { checked, ..report });
        }
        cursor = report.next_cursor.clone();
    }
}

#[cfg(all(test, feature = "native"))]
mod tests {
    use super::*;
    use crate::testing::TestStores;

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
        db.execute("DROP TRIGGER IF EXISTS audit_log_no_update", &[])
            .unwrap();
        db.execute("DROP TRIGGER IF EXISTS audit_log_no_delete", &[])
            .unwrap();
        for s in statements {
            db.execute(s, &[]).unwrap();
        }
    }

    #[test]
    fn an_intact_chain_verifies() {
        let stores = chain_of(5);
        let r = report(&stores);
        assert_eq!(
            (r.ok, r.checked, r.first_broken, r.keyed, r.complete),
            (true, 5, None, true, true)
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

    /// Retention as the audit component does it: through the gate, with a MAC'd checkpoint.
    fn retain_before(stores: &TestStores, keep: i64) {
        let services = stores.services();
        let db = services.db().unwrap();
        db.transaction(|db| -> Result<(), StoreError> {
            db.execute("UPDATE audit_gate SET open = 1 WHERE id = 1", &[])?;
            let prev_hash = db
                .execute(
                    "SELECT prev_hash FROM audit_log WHERE seq = ?",
                    &[Value::from(keep)],
                )?
                .first()
                .unwrap()
                .str("prev_hash")?
                .to_owned();
            db.execute("DELETE FROM audit_log WHERE seq < ?", &[Value::from(keep)])?;
            record_checkpoint(
                db,
                KEY,
                &Checkpoint {
                    seq: keep,
                    prev_hash,
                    created_at: 0,
                    removed_through: keep - 1,
                    removed_count: keep - 1,
                },
            )?;
            db.execute("UPDATE audit_gate SET open = 0 WHERE id = 1", &[])?;
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn retention_through_the_gate_keeps_the_chain_verifiable() {
        let stores = chain_of(6);
        retain_before(&stores, 4);
        let r = report(&stores);
        assert!(r.ok && r.checked == 3 && r.first_broken.is_none(), "{r:?}");
        let services = stores.services();
        let db = services.db().unwrap();
        db.transaction(|db| append(db, KEY, &record(7))).unwrap();
        assert_eq!(report(&stores).checked, 4);
        // A second checkpoint chains to the first.
        retain_before(&stores, 6);
        let r = report(&stores);
        assert!(r.ok && r.checked == 2, "{r:?}");
    }

    #[test]
    fn forged_checkpoint_is_detected() {
        // Someone with the database file deletes the oldest rows and inserts the checkpoint that
        // retention would have written, without the key.
        let stores = chain_of(6);
        tamper(
            &stores,
            &[
                "DELETE FROM audit_log WHERE seq < 4",
                "INSERT INTO audit_checkpoints (seq, prev_hash, created_at, removed_through, removed_count, mac)
                 SELECT seq, prev_hash, 0, 3, 3, 'ffff' FROM audit_log WHERE seq = 4",
            ],
        );
        let r = report(&stores);
        assert_eq!(
            (r.ok, r.first_broken, r.reason),
            (false, Some(4), Some(Broken::Checkpoint))
        );
        // Without a MAC at all (as before migration 8) it is refused too.
        let stores = chain_of(6);
        tamper(
            &stores,
            &[
                "DELETE FROM audit_log WHERE seq < 4",
                "INSERT INTO audit_checkpoints (seq, prev_hash, created_at, removed_through, removed_count)
                 SELECT seq, prev_hash, 0, 3, 3 FROM audit_log WHERE seq = 4",
            ],
        );
        assert_eq!(report(&stores).reason, Some(Broken::Checkpoint));
        // The same edit without any checkpoint: the oldest rows are missing.
        let stores = chain_of(6);
        tamper(&stores, &["DELETE FROM audit_log WHERE seq < 4"]);
        let r = report(&stores);
        assert_eq!(
            (r.first_broken, r.reason),
            (Some(1), Some(Broken::MissingRows))
        );
    }

    #[test]
    fn altered_or_removed_checkpoints_are_detected() {
        let stores = chain_of(8);
        retain_before(&stores, 3);
        retain_before(&stores, 6);
        assert!(report(&stores).ok);
        // Altering a recorded checkpoint breaks its MAC.
        let services = stores.services();
        let db = services.db().unwrap();
        db.execute(
            "UPDATE audit_checkpoints SET removed_count = 1 WHERE seq = 3",
            &[],
        )
        .unwrap();
        assert_eq!(report(&stores).reason, Some(Broken::Checkpoint));
        db.execute(
            "UPDATE audit_checkpoints SET removed_count = 2 WHERE seq = 3",
            &[],
        )
        .unwrap();
        assert!(report(&stores).ok);
        // Removing the older one breaks the newer one's chained MAC.
        db.execute("DELETE FROM audit_checkpoints WHERE seq = 3", &[])
            .unwrap();
        let r = report(&stores);
        assert_eq!(
            (r.first_broken, r.reason),
            (Some(6), Some(Broken::Checkpoint))
        );
    }

    #[test]
    fn incremental_verification_is_bounded_and_resumes_where_it_stopped() {
        let stores = chain_of(25);
        let services = stores.services();
        let db = services.db().unwrap();
        let step = |max| verify_incremental(db, KEY, true, 0, max).unwrap();
        let r = step(10);
        assert_eq!(
            (r.ok, r.checked, r.complete, r.from_seq, r.next_after_seq),
            (true, 10, false, Some(1), Some(10))
        );
        let r = step(10);
        assert_eq!(
            (r.from_seq, r.verified_through, r.complete),
            (Some(11), Some(20), false)
        );
        let r = step(10);
        assert_eq!(
            (r.checked, r.verified_through, r.complete),
            (5, Some(25), true)
        );
        // Nothing new: nothing to recompute beyond the re-checked position.
        let r = step(10);
        assert_eq!(
            (r.ok, r.checked, r.complete, r.verified_through),
            (true, 0, true, Some(25))
        );
        db.transaction(|db| append(db, KEY, &record(26))).unwrap();
        let r = step(10);
        assert_eq!((r.checked, r.from_seq), (1, Some(26)));
    }

    #[test]
    fn an_edit_at_the_verified_position_or_after_it_is_found_incrementally() {
        let stores = chain_of(10);
        let services = stores.services();
        let db = services.db().unwrap();
        assert!(verify_incremental(db, KEY, true, 0, 5).unwrap().ok);
        tamper(
            &stores,
            &["UPDATE audit_log SET status = 500 WHERE seq = 5"],
        );
        let r = verify_incremental(db, KEY, true, 0, 5).unwrap();
        assert_eq!((r.ok, r.first_broken), (false, Some(5)));
        // Cutting the tail through the verified position is found too.
        let stores = chain_of(10);
        let services = stores.services();
        let db = services.db().unwrap();
        assert!(verify_incremental(db, KEY, true, 0, 100).unwrap().ok);
        tamper(&stores, &["DELETE FROM audit_log WHERE seq > 8"]);
        let r = verify_incremental(db, KEY, true, 0, 100).unwrap();
        assert_eq!(
            (r.first_broken, r.reason),
            (Some(10), Some(Broken::Position))
        );
    }

    #[test]
    fn an_edit_behind_the_verified_position_needs_a_full_pass() {
        let stores = chain_of(10);
        let services = stores.services();
        let db = services.db().unwrap();
        assert!(verify_incremental(db, KEY, true, 0, 100).unwrap().ok);
        tamper(
            &stores,
            &["UPDATE audit_log SET status = 500 WHERE seq = 3"],
        );
        // Documented limit: rows behind the position are not recomputed incrementally …
        assert!(verify_incremental(db, KEY, true, 0, 100).unwrap().ok);
        // … the full pass finds it.
        let r = verify_full(db, KEY, true, 0, None, 100).unwrap().unwrap();
        assert_eq!((r.ok, r.first_broken, r.full), (false, Some(3), true));
        // So is a row deleted behind the position; the oldest rows are checked on every call.
        tamper(&stores, &["DELETE FROM audit_log WHERE seq = 6"]);
        assert!(verify_incremental(db, KEY, true, 0, 100).unwrap().ok);
        let r = verify_full(db, KEY, true, 0, None, 100).unwrap().unwrap();
        assert_eq!(r.first_broken, Some(3));
        tamper(&stores, &["DELETE FROM audit_log WHERE seq = 1"]);
        let r = verify_incremental(db, KEY, true, 0, 100).unwrap();
        assert_eq!(
            (r.first_broken, r.reason),
            (Some(1), Some(Broken::MissingRows))
        );
    }

    #[test]
    fn a_forged_position_is_ignored_and_a_full_pass_continues_with_its_cursor() {
        let stores = chain_of(12);
        let services = stores.services();
        let db = services.db().unwrap();
        // A position written without the key (claiming everything was verified) is not trusted.
        db.execute(
            "INSERT INTO audit_verify_state (id, seq, hash, mac, verified_at)
             SELECT 1, seq, hash, 'forged', 0 FROM audit_log WHERE seq = 12",
            &[],
        )
        .unwrap();
        let r = verify_incremental(db, KEY, true, 0, 100).unwrap();
        assert_eq!((r.from_seq, r.checked), (Some(1), 12));
        // A full pass in pieces.
        let first = verify_full(db, KEY, true, 0, None, 5).unwrap().unwrap();
        assert!(!first.complete);
        let cursor = first.next_cursor.clone().unwrap();
        let second = verify_full(db, KEY, true, 0, Some(&cursor), 5)
            .unwrap()
            .unwrap();
        assert_eq!(
            (second.from_seq, second.verified_through),
            (Some(6), Some(10))
        );
        // A cursor naming a row that was changed since is a break; garbage is refused.
        tamper(
            &stores,
            &["UPDATE audit_log SET status = 500 WHERE seq = 5"],
        );
        let r = verify_full(db, KEY, true, 0, Some(&cursor), 5)
            .unwrap()
            .unwrap();
        assert_eq!((r.ok, r.first_broken), (false, Some(5)));
        assert_eq!(
            verify_full(db, KEY, true, 0, Some("5.zz"), 5).unwrap(),
            Err(BadCursor)
        );
    }

    fn hashes(stores: &TestStores) -> Vec<(i64, String, String)> {
        let services = stores.services();
        let rows = services
            .db()
            .unwrap()
            .execute(
                "SELECT seq, prev_hash, hash FROM audit_log ORDER BY seq",
                &[],
            )
            .unwrap();
        rows.iter()
            .map(|r| {
                (
                    r.i64("seq").unwrap(),
                    r.str("prev_hash").unwrap().to_owned(),
                    r.str("hash").unwrap().to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn rows_are_inserted_unsealed_and_the_sealer_links_them_like_append_did() {
        let stores = TestStores::new();
        let services = stores.services();
        let db = services.db().unwrap();
        for i in 1..=5 {
            let inserted = insert_unsealed(db, &record(i)).unwrap();
            assert_eq!(inserted.seq, i);
            assert_eq!(inserted.schema_version, crate::migrations::latest_version());
        }
        assert!(hashes(&stores)
            .iter()
            .all(|(_, p, h)| p.is_empty() && h.is_empty()));
        // An unsealed tail is "not in the chain yet", not a break.
        let r = report(&stores);
        assert!(r.ok && r.checked == 0, "{r:?}");
        assert_eq!(seal(db, KEY, 2).unwrap(), 2, "bounded");
        assert_eq!(seal_all(db, KEY).unwrap(), 3);
        assert_eq!(seal_all(db, KEY).unwrap(), 0, "idempotent");
        // The same formula as before: each hash chains to the previous one.
        let mut prev = GENESIS.to_owned();
        for (seq, prev_hash, hash) in hashes(&stores) {
            assert_eq!(prev_hash, prev);
            assert_eq!(hash, link(KEY, &prev, &record(seq).canonical()));
            prev = hash;
        }
        let r = report(&stores);
        assert!(r.ok && r.checked == 5, "{r:?}");
    }

    #[test]
    fn concurrent_sealers_agree_and_never_seal_twice() {
        let stores = TestStores::new();
        let (a, b) = (stores.services(), stores.services());
        let (a, b) = (a.db().unwrap(), b.db().unwrap());
        for i in 1..=7 {
            insert_unsealed(a, &record(i)).unwrap();
        }
        // Interleaved batches from two connections (two Spin instances after their responses).
        seal(a, KEY, 3).unwrap();
        seal(b, KEY, 2).unwrap();
        insert_unsealed(b, &record(8)).unwrap();
        seal(a, KEY, 100).unwrap();
        assert_eq!(seal(b, KEY, 100).unwrap(), 0);
        let r = report(&stores);
        assert!(r.ok && r.checked == 8, "{r:?}");
        // A stale sealer (it read the rows before the other sealed them) changes nothing: the
        // update only touches rows still unsealed, and a sealed row refuses a second seal.
        assert!(a
            .execute(
                "UPDATE audit_log SET hash = 'ab', prev_hash = 'cd' WHERE seq = 3",
                &[]
            )
            .is_err());
        assert!(a
            .execute(
                "UPDATE audit_log SET hash = '', prev_hash = '' WHERE seq = 3",
                &[]
            )
            .is_err());
        assert!(report(&stores).ok);
    }

    #[test]
    fn a_seal_removed_before_a_sealed_row_is_a_break() {
        let stores = chain_of(5);
        tamper(
            &stores,
            &[
                "DROP TRIGGER audit_log_seal_once",
                "UPDATE audit_log SET status = 500, hash = '', prev_hash = '' WHERE seq = 3",
            ],
        );
        let r = report(&stores);
        assert_eq!((r.ok, r.first_broken), (false, Some(3)));
        // And the sealer does not paper over it: the chain's end is row 5.
        let services = stores.services();
        assert_eq!(seal_all(services.db().unwrap(), KEY).unwrap(), 0);
        assert_eq!(report(&stores).first_broken, Some(3));
    }

    #[test]
    fn the_sealer_will_not_reseal_rows_the_verifier_already_vouched_for() {
        // Someone with file access clears the seals of the newest rows and rewrites them, hoping
        // the next sealer will chain the forgery: not at or before the verified position.
        let stores = chain_of(5);
        let services = stores.services();
        let db = services.db().unwrap();
        assert!(verify_incremental(db, KEY, true, 0, 100).unwrap().ok);
        tamper(
            &stores,
            &[
                "DROP TRIGGER audit_log_seal_once",
                "UPDATE audit_log SET status = 500, hash = '', prev_hash = '' WHERE seq >= 4",
            ],
        );
        assert_eq!(seal_all(db, KEY).unwrap(), 0);
        let r = verify_incremental(db, KEY, true, 0, 100).unwrap();
        assert_eq!((r.ok, r.first_broken), (false, Some(5)));
    }

    #[test]
    fn after_a_retention_the_next_row_continues_the_sequence() {
        let stores = chain_of(4);
        retain_before(&stores, 4);
        let services = stores.services();
        let db = services.db().unwrap();
        assert_eq!(insert_unsealed(db, &record(5)).unwrap().seq, 5);
        seal_all(db, KEY).unwrap();
        assert!(report(&stores).ok);
    }

    #[test]
    fn rows_without_a_target_org_keep_their_canonical_form() {
        let mut r = record(1);
        assert!(!r.canonical().contains("target_org_id"));
        r.target_org_id = Some("org-b".into());
        assert!(r.canonical().ends_with(r#","target_org_id":"org-b"}"#));
    }
}
