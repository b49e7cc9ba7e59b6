//! Streaming agents as the API shows them; shared by the `auth` component (admins create,
//! rotate and delete agents) and the `sessions` component (agents register and heartbeat).

use serde::Serialize;

use crate::store::{Row, StoreError};
use crate::time::Timestamp;

/// The columns [`AgentView::from_row`] reads. Never includes the key hash.
pub const VIEW_COLUMNS: &str =
    "id, org_id, name, platform, region, status, capacity, registered_at, \
     last_heartbeat_at, api_key_last_used_at, created_at";

/// What clients see of an agent.
#[derive(Debug, Clone, Serialize)]
pub struct AgentView {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub platform: String,
    pub region: String,
    pub status: String,
    pub capacity: serde_json::Value,
    pub registered_at: Option<Timestamp>,
    pub last_heartbeat_at: Option<Timestamp>,
    pub api_key_last_used_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

impl AgentView {
    pub fn from_row(row: &Row<'_>) -> Result<Self, StoreError> {
        let ts = |column: &str| -> Result<Option<Timestamp>, StoreError> {
            Ok(row.opt_i64(column)?.map(Timestamp::from_ms))
        };
        Ok(Self {
            id: row.str("id")?.to_owned(),
            org_id: row.str("org_id")?.to_owned(),
            name: row.str("name")?.to_owned(),
            platform: row.str("platform")?.to_owned(),
            region: row.str("region")?.to_owned(),
            status: row.str("status")?.to_owned(),
            capacity: serde_json::from_str(row.str("capacity")?)
                .map_err(|e| StoreError::sqlite(format!("agents.capacity is not JSON: {e}")))?,
            registered_at: ts("registered_at")?,
            last_heartbeat_at: ts("last_heartbeat_at")?,
            api_key_last_used_at: ts("api_key_last_used_at")?,
            created_at: Timestamp::from_ms(row.i64("created_at")?),
        })
    }
}

/// A short label (name, platform, region): 1–100 characters of letters, digits, `.`, `_`, `-`,
/// space; `what` names the field in the error text.
pub fn check_label(value: &str, what: &str, allow_empty: bool) -> Result<String, String> {
    let value = value.trim();
    let len = value.chars().count();
    let ok_chars = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ' '));
    if (len == 0 && !allow_empty) || len > 100 || !ok_chars {
        return Err(format!(
            "{what} must be 1-100 characters of letters, digits, '.', '_', '-' or spaces"
        ));
    }
    Ok(value.to_owned())
}
