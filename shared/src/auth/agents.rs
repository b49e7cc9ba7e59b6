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

#[cfg(all(test, feature = "native"))]
mod tests {
    use super::*;
    use crate::testing::TestStores;

    #[test]
    fn garbage_keys_cost_no_store_call() {
        let stores = TestStores::new();
        let services = stores.services();
        for garbage in [
            "",
            "short",
            &"z".repeat(64),
            &"A".repeat(64),
            &"0".repeat(63),
        ] {
            match verify(&services, garbage, Some("agent-1")).unwrap() {
                AuthState::Invalid { code, .. } => assert_eq!(code, "invalid_agent_key"),
                other => panic!("{garbage:?}: {other:?}"),
            }
        }
        assert_eq!(
            stores.sql.opens(),
            0,
            "no database connection for garbage keys"
        );
    }

    #[test]
    fn a_missing_agent_id_is_400_without_a_store_call() {
        let stores = TestStores::new();
        let services = stores.services();
        match verify(&services, &"a".repeat(64), None).unwrap() {
            AuthState::Refused(err) => assert_eq!(err.code, "agent_id_required"),
            other => panic!("{other:?}"),
        }
        assert_eq!(stores.sql.opens(), 0);
    }

    fn insert_agent(services: &Services, id: &str, key: &str) {
        services
            .db()
            .unwrap()
            .execute(
                "INSERT INTO agents (id, org_id, name, platform, api_key_hash, created_at) VALUES (?, 'org', ?, 'k8s', ?, 0)",
                &[Value::from(id), Value::from(id), Value::from(TokenHash::of(key).as_str())],
            )
            .unwrap();
    }

    #[test]
    fn keys_are_bound_to_their_agent() {
        let stores = TestStores::new();
        let services = stores.services();
        let (key_a, key_b) = ("a".repeat(64), "b".repeat(64));
        insert_agent(&services, "agent-a", &key_a);
        insert_agent(&services, "agent-b", &key_b);
        assert!(
            matches!(verify(&services, &key_a, Some("agent-a")).unwrap(), AuthState::Agent(a) if a.agent_id == "agent-a")
        );
        match verify(&services, &key_a, Some("agent-b")).unwrap() {
            AuthState::Refused(err) => assert_eq!(err.status, http::StatusCode::FORBIDDEN),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            verify(&services, &"c".repeat(64), Some("agent-a")).unwrap(),
            AuthState::Invalid { .. }
        ));
        let used = services
            .db()
            .unwrap()
            .execute(
                "SELECT api_key_last_used_at AS t FROM agents WHERE id = 'agent-a'",
                &[],
            )
            .unwrap();
        assert!(used.first().unwrap().opt_i64("t").unwrap().is_some());
    }
}
