//! Machine credentials end to end: agent keys (format check, binding to the agent id, rotation,
//! deletion), agent registration and heartbeats, one-time tickets (single use even under
//! concurrent redemption), and the maintenance purge.

use serde_json::json;

use crate::helpers::{Body, TestApp};
use crate::setup::{agent_post, count, create_agent, race_statuses, Agent};

#[test]
fn admins_create_agents_and_see_the_key_once() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let Agent { id, key } = create_agent(&app, &admin.access);
    assert_eq!(key.len(), 64);
    assert!(key.chars().all(|c| c.is_ascii_hexdigit()));
    let list = app.authed("GET", "/api/v1/admin/agents?limit=200", &admin.access);
    assert_eq!(list.status, 200);
    let body = String::from_utf8(list.body.clone()).unwrap();
    assert!(body.contains(&id));
    assert!(!body.contains(&key), "the key is shown only at creation");
}

#[test]
fn agents_register_and_heartbeat_with_their_key() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let Agent { id, key } = create_agent(&app, &admin.access);
    let early = agent_post(
        &app,
        &format!("/api/v1/agents/{id}/heartbeat"),
        &key,
        &json!({}),
    );
    assert_eq!(
        early.status,
        409,
        "{}",
        String::from_utf8_lossy(&early.body)
    );
    let r = agent_post(
        &app,
        &format!("/api/v1/agents/register?agent_id={id}"),
        &key,
        &json!({"platform": "kubernetes", "region": "us-east", "capacity": {"max_sessions": 10, "cpu_millicores": 8000}}),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["agent"]["status"], "online");
    assert_eq!(v["agent"]["region"], "us-east");
    assert_eq!(v["agent"]["capacity"]["max_sessions"], 10);
    let beat = agent_post(
        &app,
        &format!("/api/v1/agents/{id}/heartbeat"),
        &key,
        &json!({"status": "draining"}),
    );
    assert_eq!(beat.status, 200);
    assert_eq!(beat.json()["status"], "draining");
    let listed = app
        .authed("GET", "/api/v1/admin/agents?limit=200", &admin.access)
        .json();
    let me = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id.as_str())
        .unwrap()
        .clone();
    assert!(me["api_key_last_used_at"].is_string());
    assert!(me["last_heartbeat_at"].is_string());
}

#[test]
fn agent_keys_are_checked_and_bound() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let Agent { id: a, key: key_a } = create_agent(&app, &admin.access);
    let Agent { id: b, .. } = create_agent(&app, &admin.access);
    let path_a = format!("/api/v1/agents/{a}/heartbeat");
    // Garbage → 401, another agent's id → 403, no key → 401, no id → 400.
    let r = agent_post(&app, &path_a, "not-a-key", &json!({}));
    assert_eq!(r.status, 401);
    assert_eq!(r.error_code(), "invalid_agent_key");
    let r = agent_post(
        &app,
        &format!("/api/v1/agents/{b}/heartbeat"),
        &key_a,
        &json!({}),
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.error_code(), "agent_key_mismatch");
    let r = app.json("POST", &path_a, None, &json!({}));
    assert_eq!(r.status, 401);
    let r = agent_post(&app, "/api/v1/agents/register", &key_a, &json!({}));
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "agent_id_required");
    // A user's bearer token is not an agent credential.
    let r = app.json("POST", &path_a, Some(&admin.access), &json!({}));
    assert_eq!(r.status, 401);
    // An agent key is not a user credential either.
    let r = app.request(
        "GET",
        "/api/v1/users/me",
        &[("x-agent-api-key", &key_a)],
        Body::Empty,
    );
    assert!(r.status == 401 || r.status == 403, "{}", r.status);
}

#[test]
fn rotation_and_deletion_cut_the_old_key_at_once() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let Agent { id, key: old } = create_agent(&app, &admin.access);
    let register = format!("/api/v1/agents/register?agent_id={id}");
    assert_eq!(agent_post(&app, &register, &old, &json!({})).status, 200);
    let rotated = app.authed(
        "POST",
        &format!("/api/v1/admin/agents/{id}/rotate-key"),
        &admin.access,
    );
    assert_eq!(rotated.status, 200);
    let new = rotated.json()["api_key"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(agent_post(&app, &register, &old, &json!({})).status, 401);
    assert_eq!(agent_post(&app, &register, &new, &json!({})).status, 200);
    assert_eq!(
        app.authed(
            "DELETE",
            &format!("/api/v1/admin/agents/{id}"),
            &admin.access
        )
        .status,
        204
    );
    assert_eq!(agent_post(&app, &register, &new, &json!({})).status, 401);
    assert_eq!(
        app.authed(
            "DELETE",
            &format!("/api/v1/admin/agents/{id}"),
            &admin.access
        )
        .status,
        404
    );
}

fn ticket(app: &TestApp, token: &str, session_id: &str) -> String {
    let r = app.json(
        "POST",
        "/api/v1/auth/tickets",
        Some(token),
        &json!({"purpose": "session-connect", "session_id": session_id}),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["expires_in"], 30);
    r.json()["ticket"].as_str().unwrap().to_owned()
}

/// Ticket minting and redemption are rate-limited (10 and 5 a minute); these tests do more.
const RELAXED: &[(&str, &str)] = &[
    ("rate_limit_mfa_per_minute", "1000"),
    ("rate_limit_mint_per_minute", "1000"),
];

#[test]
fn tickets_are_single_use_and_bound() {
    let app = TestApp::spawn_tuned(RELAXED);
    let admin = app.admin();
    // Tickets are for a real session, redeemed by the agent running it.
    let (session, agent, key) = crate::sessions::running_session(&app, &admin.access);
    let redeem = format!("/api/v1/auth/tickets/redeem?agent_id={agent}");
    let t = ticket(&app, &admin.access, &session);
    let ok = agent_post(
        &app,
        &redeem,
        &key,
        &json!({"ticket": t, "purpose": "session-connect"}),
    );
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    let v = ok.json();
    assert_eq!(v["session_id"], session.as_str());
    assert_eq!(v["purpose"], "session-connect");
    assert_eq!(v["user_id"], admin.user_id.as_str());
    // Replay.
    let again = agent_post(&app, &redeem, &key, &json!({"ticket": t}));
    assert_eq!(again.status, 401);
    assert_eq!(again.error_code(), "invalid_ticket");
    // Wrong purpose or session: refused (and the ticket is spent).
    let t = ticket(&app, &admin.access, &session);
    assert_eq!(
        agent_post(
            &app,
            &redeem,
            &key,
            &json!({"ticket": t, "purpose": "file-transfer"})
        )
        .status,
        401
    );
    assert_eq!(
        agent_post(&app, &redeem, &key, &json!({"ticket": t})).status,
        401
    );
    let t = ticket(&app, &admin.access, &session);
    assert_eq!(
        agent_post(
            &app,
            &redeem,
            &key,
            &json!({"ticket": t, "session_id": "00000000-0000-4000-8000-000000000000"})
        )
        .status,
        401
    );
    // Users cannot redeem, garbage is refused, bad requests are 400.
    let t = ticket(&app, &admin.access, &session);
    assert_eq!(
        app.json(
            "POST",
            "/api/v1/auth/tickets/redeem",
            Some(&admin.access),
            &json!({"ticket": t})
        )
        .status,
        401
    );
    assert_eq!(
        agent_post(&app, &redeem, &key, &json!({"ticket": "sst_garbage"})).status,
        401
    );
    let r = app.json(
        "POST",
        "/api/v1/auth/tickets",
        Some(&admin.access),
        &json!({"purpose": "root-shell", "session_id": session}),
    );
    assert_eq!(r.status, 400);
}

#[test]
fn concurrent_redemption_succeeds_exactly_once() {
    let app = TestApp::spawn_tuned(RELAXED);
    let admin = app.admin();
    let (session, agent, key) = crate::sessions::running_session(&app, &admin.access);
    for _ in 0..3 {
        let t = ticket(&app, &admin.access, &session);
        let path = format!("/api/v1/auth/tickets/redeem?agent_id={agent}");
        let statuses = race_statuses(
            &app,
            6,
            "POST",
            &path,
            &[
                ("x-agent-api-key", &key),
                ("content-type", "application/json"),
            ],
            &json!({"ticket": t}),
        );
        assert_eq!(count(&statuses, 200), 1, "{statuses:?}");
        assert!(
            statuses.iter().all(|s| *s == 200 || *s == 401),
            "{statuses:?}"
        );
    }
}

#[test]
fn maintenance_purge_needs_the_token_or_an_admin() {
    let token = "maintenance-token-for-e2e-0123456789";
    let Some(app) = TestApp::spawn_with(&[("maintenance_token", token)]) else {
        return;
    };
    let admin = app.admin();
    let path = "/api/v1/admin/maintenance/purge";
    assert_eq!(app.request("POST", path, &[], Body::Empty).status, 401);
    assert_eq!(
        app.request(
            "POST",
            path,
            &[("authorization", "Bearer wrong-token")],
            Body::Empty
        )
        .status,
        401
    );
    let by_token = app.request(
        "POST",
        path,
        &[("authorization", &format!("Bearer {token}"))],
        Body::Empty,
    );
    assert_eq!(
        by_token.status,
        200,
        "{}",
        String::from_utf8_lossy(&by_token.body)
    );
    for key in [
        "access_tokens",
        "refresh_tokens",
        "login_sessions",
        "tickets",
        "csrf_tokens",
        "api_keys",
    ] {
        assert!(by_token.json()["purged"][key].is_u64(), "{key}");
    }
    // Logged-out sessions are reclaimed.
    let extra = app.login("e2e-admin", crate::helpers::ADMIN_PASSWORD);
    assert_eq!(
        app.authed("POST", "/api/v1/auth/logout", &extra.access)
            .status,
        204
    );
    let by_admin = app.authed("POST", path, &admin.access);
    assert_eq!(by_admin.status, 200);
    assert!(
        by_admin.json()["purged"]["login_sessions"]
            .as_u64()
            .unwrap()
            >= 1
    );
    assert_eq!(
        app.authed("GET", "/api/v1/users/me", &admin.access).status,
        200,
        "live sessions survive"
    );
}

#[test]
fn maintenance_purge_refuses_everyone_without_a_token_configured() {
    let Some(app) = TestApp::spawn_with(&[]) else {
        return;
    };
    let r = app.request(
        "POST",
        "/api/v1/admin/maintenance/purge",
        &[("authorization", "Bearer ")],
        Body::Empty,
    );
    assert_eq!(r.status, 401);
}
