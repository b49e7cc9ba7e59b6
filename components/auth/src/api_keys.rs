//! Personal access tokens: validation, views and the owner-scoped queries behind
//! `/api/v1/api-keys` (seed 003).
//!
//! Every query filters by the caller's user id and org: another user's key is simply not found
//! (404). Keys are stored as SHA-256 only; what clients see is metadata ([`KeyView`]).

use serde::Serialize;
use shared::auth::{Principal, Scope};
use shared::pagination::{desc, Page, PageRequest, Paged};
use shared::store::{Database, Row, StoreError, Value};
use shared::time::Timestamp;
use shared::{ApiError, ApiResult};

/// Lifetime of a key when `expires_in_days` is not given.
pub const DEFAULT_EXPIRES_IN_DAYS: i64 = 90;
/// Longest lifetime a key may be given.
pub const MAX_EXPIRES_IN_DAYS: i64 = 365;
/// Longest key name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// How much of a `User-Agent` is kept.
pub const MAX_USER_AGENT_CHARS: usize = 512;
/// How many leading characters of a key are kept to recognise it (`ssp_` + 4 random ones).
pub const KEY_PREFIX_CHARS: usize = 8;

pub const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// The metadata columns [`KeyView::from_row`] reads.
const VIEW_COLUMNS: &str =
    "id, name, scopes, key_prefix, created_at, expires_at, last_used_at, use_count, revoked_at";

/// A validated create request.
#[derive(Debug, PartialEq, Eq)]
pub struct NewKey {
    pub name: String,
    pub scopes: Vec<Scope>,
    pub expires_in_days: i64,
}

/// Validates a create request: a trimmed name of 1-[`MAX_NAME_CHARS`] characters without control
/// characters, at least one known scope (sorted, deduplicated), a lifetime of
/// 1-[`MAX_EXPIRES_IN_DAYS`] days ([`DEFAULT_EXPIRES_IN_DAYS`] when not given).
pub fn validate(name: &str, scopes: &[String], expires_in_days: Option<i64>) -> ApiResult<NewKey> {
    let name = name.trim();
    let len = name.chars().count();
    if !(1..=MAX_NAME_CHARS).contains(&len) || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!("name must be 1-{MAX_NAME_CHARS} characters without control characters"),
        ));
    }
    if scopes.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_field",
            "scopes must list at least one of `read`, `full`",
        ));
    }
    let mut parsed = Vec::with_capacity(scopes.len());
    for text in scopes {
        let scope = Scope::parse(text).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_scope",
                format!(
                    "unknown scope `{}`: scopes are `read` and `full`",
                    printable(text)
                ),
            )
        })?;
        parsed.push(scope);
    }
    parsed.sort_unstable();
    parsed.dedup();
    let expires_in_days = expires_in_days.unwrap_or(DEFAULT_EXPIRES_IN_DAYS);
    if !(1..=MAX_EXPIRES_IN_DAYS).contains(&expires_in_days) {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!("expires_in_days must be between 1 and {MAX_EXPIRES_IN_DAYS}"),
        ));
    }
    Ok(NewKey {
        name: name.to_owned(),
        scopes: parsed,
        expires_in_days,
    })
}

/// A client-supplied value, shortened and stripped of control characters, for an error message.
fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(40).collect()
}

fn scopes_column(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_scopes(column: &str) -> Vec<Scope> {
    let mut scopes: Vec<Scope> = column
        .split(',')
        .filter_map(|s| Scope::parse(s.trim()))
        .collect();
    scopes.sort_unstable();
    scopes.dedup();
    scopes
}

/// Whether a key works right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    Active,
    Revoked,
    Expired,
}

pub fn status_at(now: i64, revoked_at: Option<i64>, expires_at: Option<i64>) -> KeyStatus {
    if revoked_at.is_some() {
        KeyStatus::Revoked
    } else if expires_at.is_some_and(|e| e <= now) {
        KeyStatus::Expired
    } else {
        KeyStatus::Active
    }
}

/// What clients see of a key: metadata only, never the key or its hash.
#[derive(Debug, Serialize)]
pub struct KeyView {
    pub id: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    /// `None` only for keys created before the prefix was recorded.
    pub key_prefix: Option<String>,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
    pub use_count: i64,
    pub revoked_at: Option<Timestamp>,
    pub status: KeyStatus,
}

impl KeyView {
    fn from_row(row: &Row<'_>, now: i64) -> Result<Self, StoreError> {
        let expires_at = row.opt_i64("expires_at")?;
        let revoked_at = row.opt_i64("revoked_at")?;
        Ok(Self {
            id: row.str("id")?.to_owned(),
            name: row.str("name")?.to_owned(),
            scopes: parse_scopes(row.str("scopes")?),
            key_prefix: row.opt_str("key_prefix")?.map(str::to_owned),
            created_at: Timestamp::from_ms(row.i64("created_at")?),
            expires_at: expires_at.map(Timestamp::from_ms),
            last_used_at: row.opt_i64("last_used_at")?.map(Timestamp::from_ms),
            use_count: row.i64("use_count")?,
            revoked_at: revoked_at.map(Timestamp::from_ms),
            status: status_at(now, revoked_at, expires_at),
        })
    }
}

/// A key to store: everything but the token itself (only its hash is kept).
pub struct KeyRecord<'a> {
    pub id: &'a str,
    pub owner: &'a Principal,
    pub key: &'a NewKey,
    pub token_hash: &'a str,
    pub key_prefix: &'a str,
    pub expires_at: i64,
    pub created_at: i64,
    pub created_ip: Option<String>,
    pub user_agent: Option<String>,
}

/// Stores a new key for its owner (in the owner's org).
pub fn insert(db: &Database, record: KeyRecord<'_>) -> ApiResult<()> {
    db.execute(
        "INSERT INTO api_keys
             (id, user_id, org_id, name, token_hash, key_prefix, scopes, expires_at, created_at,
              created_ip, user_agent)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        &[
            Value::from(record.id),
            Value::from(record.owner.user_id.as_str()),
            Value::from(record.owner.org_id.as_str()),
            Value::from(record.key.name.as_str()),
            Value::from(record.token_hash),
            Value::from(record.key_prefix),
            Value::from(scopes_column(&record.key.scopes)),
            Value::from(record.expires_at),
            Value::from(record.created_at),
            Value::from(record.created_ip),
            Value::from(record.user_agent),
        ],
    )?;
    Ok(())
}

/// Pages through the caller's keys (revoked and expired ones included, with their status as of
/// `now`), newest first.
pub fn list(
    db: &Database,
    user: &Principal,
    page: &PageRequest,
    now: i64,
) -> ApiResult<Page<KeyView>> {
    let mut q = Paged::new(format!("SELECT {VIEW_COLUMNS} FROM api_keys"));
    let (owner, org) = (q.bind(user.user_id.as_str()), q.bind(user.org_id.as_str()));
    q.and(format!("user_id = {owner} AND org_id = {org}"));
    q.fetch(
        db,
        page,
        &[desc("created_at"), desc("id")],
        |row| KeyView::from_row(row, now),
        |k| (k.created_at.as_ms(), k.id.clone()),
    )
}

pub fn no_such_key() -> ApiError {
    ApiError::not_found("no such API key")
}

fn owner_params(id: &str, user: &Principal) -> [Value; 3] {
    [
        Value::from(id),
        Value::from(user.user_id.as_str()),
        Value::from(user.org_id.as_str()),
    ]
}

/// Revokes one of the caller's keys at `now` (idempotent: revoking again keeps the first
/// revocation time); 404 when the caller has no such key.
pub fn revoke(db: &Database, user: &Principal, id: &str, now: i64) -> ApiResult<KeyView> {
    let [id, user_id, org_id] = owner_params(id, user);
    let rows = db.execute(
        &format!(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?)
              WHERE id = ? AND user_id = ? AND org_id = ?
              RETURNING {VIEW_COLUMNS}"
        ),
        &[Value::from(now), id, user_id, org_id],
    )?;
    let row = rows.first().ok_or_else(no_such_key)?;
    Ok(KeyView::from_row(&row, now)?)
}

/// Deletes one of the caller's keys; 404 when the caller has no such key.
pub fn delete(db: &Database, user: &Principal, id: &str) -> ApiResult<()> {
    db.execute(
        "DELETE FROM api_keys WHERE id = ? AND user_id = ? AND org_id = ?",
        &owner_params(id, user),
    )?;
    if db.changes()? == 0 {
        return Err(no_such_key());
    }
    Ok(())
}

/// How often and when a key was used, and where it was made.
#[derive(Debug, Serialize)]
pub struct Usage {
    pub id: String,
    pub use_count: i64,
    pub last_used_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub created_ip: Option<String>,
    pub user_agent: Option<String>,
}

/// The usage of one of the caller's keys; 404 when the caller has no such key.
pub fn usage(db: &Database, user: &Principal, id: &str) -> ApiResult<Usage> {
    let rows = db.execute(
        "SELECT id, use_count, last_used_at, created_at, created_ip, user_agent FROM api_keys
          WHERE id = ? AND user_id = ? AND org_id = ?",
        &owner_params(id, user),
    )?;
    let row = rows.first().ok_or_else(no_such_key)?;
    Ok(Usage {
        id: row.str("id")?.to_owned(),
        use_count: row.i64("use_count")?,
        last_used_at: row.opt_i64("last_used_at")?.map(Timestamp::from_ms),
        created_at: Timestamp::from_ms(row.i64("created_at")?),
        created_ip: row.opt_str("created_ip")?.map(str::to_owned),
        user_agent: row.opt_str("user_agent")?.map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_revocation_then_expiry() {
        assert_eq!(status_at(10, None, None), KeyStatus::Active);
        assert_eq!(status_at(10, None, Some(11)), KeyStatus::Active);
        assert_eq!(status_at(10, None, Some(10)), KeyStatus::Expired);
        assert_eq!(status_at(10, Some(5), Some(1)), KeyStatus::Revoked);
    }
}
