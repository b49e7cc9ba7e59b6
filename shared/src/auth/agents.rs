//! Agent API keys (seed 000 `AgentAuth`): `X-Agent-API-Key` plus the agent id, from the `agent_id`
//! query parameter or the route's `{id}` segment.
//!
//! The key's format (64 hex characters) is checked before any lookup, so garbage costs no store
//! call. Keys are stored as SHA-256: they are 256-bit random values, so a slow KDF would add
//! nothing against brute force, and a deterministic hash lets the key be found by one indexed
//! equality lookup (comparing hashes of unguessable keys leaks nothing useful through timing).
//! A valid key sent with another agent's id is refused with 403: keys are bound to their agent.

use crate::auth::{AgentPrincipal, AuthState};
use crate::error::ApiError;
use crate::secrets::{is_agent_key, TokenHash};
use crate::services::Services;
use crate::store::{StoreError, Value};

pub const HEADER: &str = "x-agent-api-key";

/// Verifies an agent key for `agent_id`; records `api_key_last_used_at` in the same statement.
pub fn verify(
    services: &Services,
    key: &str,
    agent_id: Option<&str>,
) -> Result<AuthState, StoreError> {
    if !is_agent_key(key) {
        return Ok(AuthState::invalid(
            "invalid_agent_key",
            "X-Agent-API-Key must be 64 hexadecimal characters",
        ));
    }
    let Some(agent_id) = agent_id.filter(|id| !id.is_empty()) else {
        return Ok(AuthState::Refused(ApiError::bad_request(
            "agent_id_required",
            "the agent id is required (path or `agent_id` query parameter)",
        )));
    };
    let hash = TokenHash::of(key);
    let db = services.db()?;
    let rows = db.execute(
        "UPDATE agents SET api_key_last_used_at = ?
          WHERE id = ? AND api_key_hash = ? AND revoked_at IS NULL
          RETURNING id, org_id, name",
        &[
            Value::from(services.now_ms()),
            Value::from(agent_id),
            Value::from(hash.as_str()),
        ],
    )?;
    if let Some(row) = rows.first() {
        return Ok(AuthState::Agent(AgentPrincipal {
            agent_id: row.str("id")?.to_owned(),
            org_id: row.str("org_id")?.to_owned(),
            name: row.str("name")?.to_owned(),
        }));
    }
    let owner = db.execute(
        "SELECT id FROM agents WHERE api_key_hash = ? AND revoked_at IS NULL",
        &[Value::from(hash.as_str())],
    )?;
    Ok(if owner.is_empty() {
        AuthState::invalid("invalid_agent_key", "the agent key is unknown or revoked")
    } else {
        AuthState::Refused(ApiError::forbidden(
            "agent_key_mismatch",
            "this key belongs to another agent",
        ))
    })
}
