//! One-time connection tickets (seed 003, late-ssh), served by the sessions component (they let a
//! user into a streaming session): a user asks for a ticket bound to one purpose
//! and one session; the streaming agent redeems it once within 30 s. Consumption is a single
//! `DELETE … RETURNING`, so two agents racing on the same ticket cannot both get it. A ticket is
//! never a long-lived token in a URL: it dies at first use or after 30 s, whichever comes first.

use serde::{Deserialize, Serialize};
use shared::auth::permissions::{can_access, SESSIONS_VIEW};
use shared::auth::tickets::{self, PURPOSES, TTL_SECONDS};
use shared::ids::is_uuid;
use shared::rate_limit::RateClass;
use shared::secrets::{kind_of, TokenHash, TokenKind};
use shared::store::Value;
use shared::{Access, ApiError, ApiResult, Cx, Response, Route, StatusCode};

pub fn routes() -> Vec<Route> {
    vec![
        Route::post("/api/v1/auth/tickets", Access::User, issue).rate(RateClass::Mint),
        Route::post("/api/v1/auth/tickets/redeem", Access::Agent, redeem)
            .rate(RateClass::SecondFactor),
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueRequest {
    purpose: String,
    session_id: String,
}

#[derive(Serialize)]
struct Issued<'a> {
    ticket: &'a str,
    expires_in: i64,
}

fn check_purpose(purpose: &str) -> ApiResult<()> {
    if PURPOSES.contains(&purpose) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_field",
            format!("purpose must be one of: {}", PURPOSES.join(", ")),
        ))
    }
}

/// `POST /api/v1/auth/tickets`: 201 `{ticket, expires_in: 30}`. Only a login session mints
/// tickets (403 `login_session_required` otherwise), and only for a session of its org (404)
/// that it may view (`sessions.view`, 403).
pub async fn issue(cx: Cx) -> ApiResult<Response> {
    let user = cx.user()?;
    user.require_login_session()?;
    let input: IssueRequest = cx.json()?;
    check_purpose(&input.purpose)?;
    if !is_uuid(&input.session_id) {
        return Err(ApiError::bad_request(
            "invalid_field",
            "session_id must be a session id (UUID)",
        ));
    }
    let db = cx.db()?;
    let rows = db.execute(
        "SELECT user_id, team_id FROM sessions WHERE id = ? AND org_id = ?",
        &[
            Value::from(input.session_id.as_str()),
            Value::from(user.org_id.as_str()),
        ],
    )?;
    let row = rows
        .first()
        .ok_or_else(|| ApiError::not_found("no such session"))?;
    if !can_access(
        db,
        user,
        row.str("user_id")?,
        row.opt_str("team_id")?,
        SESSIONS_VIEW,
    )? {
        return Err(ApiError::forbidden(
            "forbidden",
            "you may not connect to this session",
        ));
    }
    let ticket = tickets::mint(
        db,
        cx.services.random.as_ref(),
        cx.now_ms(),
        &user.user_id,
        &user.org_id,
        &input.purpose,
        &input.session_id,
    )?;
    Response::json(
        StatusCode::CREATED,
        &Issued {
            ticket: &ticket,
            expires_in: TTL_SECONDS,
        },
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RedeemRequest {
    ticket: String,
    /// When given, the ticket must have been issued for this purpose.
    #[serde(default)]
    purpose: Option<String>,
    /// When given, the ticket must have been issued for this session.
    #[serde(default)]
    session_id: Option<String>,
}

#[derive(Serialize)]
struct Redeemed {
    user_id: String,
    org_id: String,
    session_id: String,
    purpose: String,
}

fn invalid_ticket() -> ApiError {
    ApiError::unauthorized(
        "invalid_ticket",
        "the ticket is unknown, used, expired or not for this",
    )
}

/// `POST /api/v1/auth/tickets/redeem?agent_id=…` (agent): 200 once; replay, expiry, another org,
/// wrong purpose or session, or a session that is not this agent's → 401. A mismatched
/// redemption still consumes the ticket.
pub async fn redeem(cx: Cx) -> ApiResult<Response> {
    let agent = cx.agent()?;
    let input: RedeemRequest = cx.json()?;
    if kind_of(&input.ticket) != Some(TokenKind::Ticket) {
        return Err(invalid_ticket());
    }
    let rows = cx.db()?.execute(
        "DELETE FROM tickets WHERE ticket_hash = ? AND org_id = ? AND expires_at > ?
         RETURNING user_id, org_id, session_id, purpose",
        &[
            Value::from(TokenHash::of(&input.ticket).as_str()),
            Value::from(agent.org_id.as_str()),
            Value::from(cx.now_ms()),
        ],
    )?;
    let row = rows.first().ok_or_else(invalid_ticket)?;
    let redeemed = Redeemed {
        user_id: row.str("user_id")?.to_owned(),
        org_id: row.str("org_id")?.to_owned(),
        session_id: row.str("session_id")?.to_owned(),
        purpose: row.str("purpose")?.to_owned(),
    };
    let purpose_ok = input
        .purpose
        .as_deref()
        .is_none_or(|p| p == redeemed.purpose);
    let session_ok = input
        .session_id
        .as_deref()
        .is_none_or(|s| s == redeemed.session_id);
    if !(purpose_ok && session_ok) {
        return Err(invalid_ticket());
    }
    // Only the agent running the session may let its user in.
    let runs_it = cx.db()?.execute(
        "SELECT EXISTS (SELECT 1 FROM sessions WHERE id = ? AND org_id = ? AND agent_id = ?) AS ok",
        &[
            Value::from(redeemed.session_id.as_str()),
            Value::from(agent.org_id.as_str()),
            Value::from(agent.agent_id.as_str()),
        ],
    )?;
    if runs_it
        .first()
        .map(|r| r.i64("ok"))
        .transpose()?
        .unwrap_or(0)
        == 0
    {
        return Err(invalid_ticket());
    }
    Response::ok_json(&redeemed)
}

#[cfg(test)]
mod tests {
    use shared::secrets::TokenHash;
    use shared::store::{Clock, SqlOpener, Value};
    use shared::testing::TestStores;
    use shared::Response;

    fn json(r: &Response) -> serde_json::Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    fn post(
        s: &TestStores,
        path: &str,
        headers: &[(&str, &str)],
        body: serde_json::Value,
    ) -> Response {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        s.call(
            &crate::table(),
            "POST",
            path,
            &all,
            body.to_string().as_bytes(),
        )
    }

    #[test]
    fn tickets_expire_after_thirty_seconds() {
        let s = TestStores::new();
        // Users log in through the auth component: here the user and its login session go in
        // directly, as do the agent and the session.
        let db = s.sql.open().unwrap();
        let db = shared::store::Database::from_connection(db)
            .migrating_on_demand(s.clock.now_ms(), true);
        let (user_id, org_id) = ("u-admin", "org-acme");
        shared::testing::insert_user(&db, user_id, org_id, "admin").unwrap();
        let token = shared::testing::login_token(&db, &s.random, user_id, org_id, s.clock.now_ms())
            .unwrap();
        let bearer = format!("Bearer {token}");
        let agent_id = "0a6e4b1c-2d3e-4f50-8a6b-7c8d9e0f1a2b".to_owned();
        let key = "ab".repeat(32);
        db.execute(
            "INSERT INTO agents (id, org_id, name, platform, api_key_hash, created_at)
             VALUES (?, ?, 'a1', 'k8s', ?, 0)",
            &[
                Value::from(agent_id.as_str()),
                Value::from(org_id),
                Value::from(TokenHash::of(&key).as_str()),
            ],
        )
        .unwrap();
        // Tickets are for a real session of the caller, run by the redeeming agent.
        let session_id = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b";
        db.execute(
            "INSERT INTO sessions (id, org_id, user_id, name, template_id, template_name,
                        state, cpu, cpu_millicores, memory, memory_bytes, agent_id, created_at,
                        updated_at, state_changed_at)
                 VALUES (?, ?, ?, 'admin-firefox-6f1c2a3b', 't1', 'firefox', 'running', '1000m',
                        1000, '2Gi', 2147483648, ?, 0, 0, 0)",
            &[
                Value::from(session_id),
                Value::from(org_id),
                Value::from(user_id),
                Value::from(agent_id.as_str()),
            ],
        )
        .unwrap();
        let redeem = format!("/api/v1/auth/tickets/redeem?agent_id={agent_id}");
        let issue = |s: &TestStores| {
            let r = post(
                s,
                "/api/v1/auth/tickets",
                &[("authorization", &bearer)],
                serde_json::json!({"purpose": "session-connect", "session_id": session_id}),
            );
            assert_eq!(r.status, 201);
            json(&r)["ticket"].as_str().unwrap().to_owned()
        };
        let fresh = issue(&s);
        s.clock.advance(29_999);
        assert_eq!(
            post(
                &s,
                &redeem,
                &[("x-agent-api-key", &key)],
                serde_json::json!({"ticket": fresh})
            )
            .status,
            200
        );
        let stale = issue(&s);
        s.clock.advance(30_000);
        let r = post(
            &s,
            &redeem,
            &[("x-agent-api-key", &key)],
            serde_json::json!({"ticket": stale}),
        );
        assert_eq!(r.status, 401);
        assert_eq!(json(&r)["error"], "invalid_ticket");
    }
}
