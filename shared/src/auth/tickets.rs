//! One-time connection tickets (seed 003): minted for a user, an org, a purpose and a session,
//! redeemed once by the streaming agent within [`TTL_SECONDS`]. Shared by `POST /auth/tickets`
//! (auth) and `/sessions/{id}/connect` (sessions): one code path mints them.

use crate::error::ApiResult;
use crate::secrets::{new_token, TokenKind};
use crate::store::{Database, Random, Value};

/// Lifetime of a ticket.
pub const TTL_SECONDS: i64 = 30;

/// What a ticket may be used for.
pub const PURPOSES: &[&str] = &["session-connect"];

/// Mints a ticket and stores only its hash; returns the ticket (shown once).
pub fn mint(
    db: &Database,
    random: &dyn Random,
    now_ms: i64,
    user_id: &str,
    org_id: &str,
    purpose: &str,
    session_id: &str,
) -> ApiResult<String> {
    let (ticket, hash) = new_token(random, TokenKind::Ticket)?;
    db.execute(
        "INSERT INTO tickets (ticket_hash, user_id, org_id, purpose, session_id, expires_at)
         VALUES (?, ?, ?, ?, ?, ?)",
        &[
            Value::from(hash.as_str()),
            Value::from(user_id),
            Value::from(org_id),
            Value::from(purpose),
            Value::from(session_id),
            Value::from(now_ms + TTL_SECONDS * 1000),
        ],
    )?;
    Ok(ticket.expose().to_owned())
}
