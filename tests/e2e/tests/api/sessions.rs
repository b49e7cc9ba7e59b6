//! Streaming sessions end to end (issue 12, SPEC-wave2 §1): a scripted fake agent drives the
//! state machine through the HTTP command queue; quotas (the exact 402 body, atomic admission
//! under concurrency); at-least-once redelivery and per-session ordering; org scoping and team
//! permissions; tickets bound to real sessions and their agent; metrics; and the sessions that
//! end when their agent or their owner goes.
//!
//! The session fixtures here (`running_session`, `start_session`, …) are reused by other files;
//! agents and accounts come from `setup`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{text, unique, Resp, TestApp};
use crate::setup::{
    count, create_agent, create_user, online_agent, org_with_admin, race_statuses, Agent, User,
};

/// What the suite's fake agent does with the command queue.
impl Agent {
    /// `GET /agents/{id}/commands`: the leased commands.
    pub fn poll(&self, app: &TestApp) -> Vec<Value> {
        let r = self.get(app, &format!("/api/v1/agents/{}/commands", self.id));
        assert_eq!(r.status, 200, "poll: {}", text(&r));
        r.json()["items"].as_array().unwrap().clone()
    }

    /// Polls and expects exactly one command, of `action`.
    pub fn poll_one(&self, app: &TestApp, action: &str) -> Value {
        let items = self.poll(app);
        assert_eq!(items.len(), 1, "one command expected: {items:?}");
        assert_eq!(items[0]["action"], action, "{items:?}");
        items[0].clone()
    }

    /// `POST /agents/{id}/commands/{command_id}/ack`.
    pub fn ack(&self, app: &TestApp, command_id: &str, body: &Value) -> Resp {
        self.post(
            app,
            &format!("/api/v1/agents/{}/commands/{command_id}/ack", self.id),
            body,
        )
    }

    /// Acknowledges, then completes a command with `result`.
    pub fn complete(&self, app: &TestApp, command_id: &str, result: &Value) {
        let r = self.ack(app, command_id, &json!({"status": "acknowledged"}));
        assert_eq!(r.status, 200, "ack: {}", text(&r));
        assert_eq!(r.json()["status"], "acknowledged");
        let r = self.ack(
            app,
            command_id,
            &json!({"status": "completed", "result": result}),
        );
        assert_eq!(r.status, 200, "complete: {}", text(&r));
        assert_eq!(r.json()["status"], "completed");
    }
}

/// A template of the admin's org (1000m / 2Gi by default); returns (id, name).
pub fn create_template(app: &TestApp, admin: &str) -> (String, String) {
    let name = unique("tpl");
    let r = app.json(
        "POST",
        "/api/v1/templates",
        Some(admin),
        &json!({"name": name, "display_name": "Firefox",
                "base_image": "lscr.io/linuxserver/firefox:latest"}),
    );
    assert_eq!(r.status, 201, "create template: {}", text(&r));
    (r.json()["id"].as_str().unwrap().to_owned(), name)
}

/// `POST /sessions` with `body`.
pub fn post_session(app: &TestApp, token: &str, body: &Value) -> Resp {
    app.json("POST", "/api/v1/sessions", Some(token), body)
}

/// Creates a session of `template` (202); returns (session id, start command id).
pub fn start_session(app: &TestApp, token: &str, template: &str) -> (String, String) {
    let r = post_session(app, token, &json!({"template": template}));
    assert_eq!(r.status, 202, "create session: {}", text(&r));
    let v = r.json();
    (
        v["id"].as_str().unwrap().to_owned(),
        v["command_id"].as_str().unwrap().to_owned(),
    )
}

/// The agent takes the start command `command_id` and completes it with a streaming URL.
pub fn agent_starts(app: &TestApp, agent: &Agent, session_id: &str, command_id: &str) {
    let cmd = agent.poll_one(app, "start_session");
    assert_eq!(cmd["command_id"], command_id);
    assert_eq!(cmd["session_id"], session_id);
    agent.complete(
        app,
        command_id,
        &json!({"sessionId": session_id, "url": format!("https://stream.example.com/s/{session_id}/"),
                "podName": "ss-pod", "podIP": "10.0.0.7", "vncPort": 3000, "state": "running"}),
    );
}

/// A running session of the admin, on a fresh registered agent of its org and a fresh template:
/// (session id, agent id, agent key).
pub fn running_session(app: &TestApp, admin: &str) -> (String, String, String) {
    let (_, template) = create_template(app, admin);
    let agent = online_agent(app, admin);
    let (session, command) = start_session(app, admin, &template);
    agent_starts(app, &agent, &session, &command);
    assert_eq!(state_of(app, admin, &session), "running");
    (session, agent.id, agent.key)
}

fn get_session(app: &TestApp, token: &str, id: &str) -> Value {
    let r = app.authed("GET", &format!("/api/v1/sessions/{id}"), token);
    assert_eq!(r.status, 200, "get session: {}", text(&r));
    r.json()
}

fn state_of(app: &TestApp, token: &str, id: &str) -> String {
    get_session(app, token, id)["state"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn put_quota(app: &TestApp, admin: &str, user_id: &str, body: &Value) {
    let r = app.json(
        "PUT",
        &format!("/api/v1/quotas/users/{user_id}"),
        Some(admin),
        body,
    );
    assert_eq!(r.status, 200, "put quota: {}", text(&r));
}

#[test]
fn a_fake_agent_drives_a_session_through_its_whole_lifecycle() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let (_, template) = create_template(&app, &admin.access);
    let agent = online_agent(&app, &admin.access);
    let User {
        id: owner_id,
        token: owner,
        ..
    } = create_user(&app, &admin.access, "user", None);

    // Admission: 202 + Location, pending, with its start command.
    let r = post_session(
        &app,
        &owner,
        &json!({"template": template, "tags": ["Dev", "project-a"]}),
    );
    assert_eq!(r.status, 202, "{}", text(&r));
    let v = r.json();
    let id = v["id"].as_str().unwrap().to_owned();
    let start = v["command_id"].as_str().unwrap().to_owned();
    assert_eq!(
        r.header("location"),
        Some(format!("/api/v1/sessions/{id}").as_str())
    );
    assert_eq!(v["state"], "pending");
    assert_eq!(v["user_id"], owner_id.as_str());
    assert_eq!(v["template"], template.as_str());
    assert_eq!(
        v["resources"],
        json!({"cpu": "1000m", "memory": "2Gi", "gpu": 0})
    );
    assert_eq!(v["agent_id"], agent.id.as_str());
    assert_eq!(v["tags"], json!(["dev", "project-a"]));
    assert!(v["url"].is_null());

    // While starting, connect answers but is not ready.
    let r = app.authed("GET", &format!("/api/v1/sessions/{id}/connect"), &owner);
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.json()["ready"], false);
    assert_eq!(
        r.json()["message"],
        "Connection established. Session is starting up - please wait."
    );

    // The agent polls (lease), acknowledges, completes: running, with the URL it reported.
    let cmd = agent.poll_one(&app, "start_session");
    assert_eq!(cmd["command_id"], start.as_str());
    assert_eq!(cmd["session_id"], id.as_str());
    assert_eq!(cmd["attempt"], 1);
    assert_eq!(cmd["payload"]["sessionId"], id.as_str());
    assert_eq!(cmd["payload"]["namespace"], "streamspace");
    assert_eq!(cmd["payload"]["cpu"], "1000m");
    let r = agent.ack(&app, &start, &json!({"status": "acknowledged"}));
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(state_of(&app, &owner, &id), "pending");
    let url = format!("https://stream.example.com/s/{id}/");
    let r = agent.ack(
        &app,
        &start,
        &json!({"status": "completed", "result": {"sessionId": id, "url": url, "podName": "p1",
                 "podIP": "10.0.0.7", "vncPort": 3000, "state": "running"}}),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    // The same terminal status again is idempotent; another one is refused.
    let again = agent.ack(&app, &start, &json!({"status": "completed", "result": {}}));
    assert_eq!(again.status, 200, "{}", text(&again));
    let other = agent.ack(&app, &start, &json!({"status": "failed", "error": "x"}));
    assert_eq!(other.status, 409);
    assert_eq!(other.error_code(), "command_finished");
    let s = get_session(&app, &owner, &id);
    assert_eq!(s["state"], "running");
    assert_eq!(s["url"], url.as_str());
    assert!(s["started_at"].is_string());

    // The user connects (GET and POST), heartbeats with a connection id, disconnects one.
    let r = app.authed("GET", &format!("/api/v1/sessions/{id}/connect"), &owner);
    assert_eq!(r.status, 200, "{}", text(&r));
    let c = r.json();
    assert_eq!(c["ready"], true);
    assert_eq!(c["state"], "running");
    assert_eq!(c["url"], url.as_str());
    assert_eq!(c["expires_in"], 30);
    assert_eq!(c["message"], "Connection established.");
    assert!(c["ticket"].as_str().unwrap().starts_with("sst_"), "{c}");
    let connection = c["connection_id"].as_str().unwrap().to_owned();
    let r = app.json(
        "POST",
        &format!("/api/v1/sessions/{id}/connect"),
        Some(&owner),
        &json!({}),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    let second = r.json()["connection_id"].as_str().unwrap().to_owned();
    assert_ne!(second, connection);
    // The session's agent redeems the ticket once.
    let redeemed = agent.post(
        &app,
        &format!("/api/v1/auth/tickets/redeem?agent_id={}", agent.id),
        &json!({"ticket": c["ticket"], "purpose": "session-connect"}),
    );
    assert_eq!(redeemed.status, 200, "{}", text(&redeemed));
    assert_eq!(redeemed.json()["session_id"], id.as_str());
    assert_eq!(redeemed.json()["user_id"], owner_id.as_str());

    let r = app.json(
        "POST",
        &format!("/api/v1/sessions/{id}/heartbeat"),
        Some(&owner),
        &json!({"connection_id": connection}),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.json()["status"], "ok");
    assert_eq!(r.json()["active_connections"], 3, "{}", text(&r));
    let r = app.json(
        "POST",
        &format!("/api/v1/sessions/{id}/heartbeat"),
        Some(&owner),
        &json!({"connection_id": "00000000-0000-4000-8000-000000000000"}),
    );
    assert_eq!(r.status, 404, "{}", text(&r));
    let r = app.json(
        "POST",
        &format!("/api/v1/sessions/{id}/disconnect"),
        Some(&owner),
        &json!({"connection_id": second}),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.json()["message"], "Connection closed");
    assert_eq!(r.json()["active_connections"], 2);
    let listed = app
        .authed("GET", &format!("/api/v1/sessions/{id}/connections"), &owner)
        .json();
    assert_eq!(listed["total"], 2, "{listed}");
    assert_eq!(get_session(&app, &owner, &id)["active_connections"], 2);

    // Hibernate: hibernating + hibernate_session; the agent completes → hibernated.
    let r = app.authed("PUT", &format!("/api/v1/sessions/{id}/hibernate"), &owner);
    assert_eq!(r.status, 202, "{}", text(&r));
    assert_eq!(r.json()["session"]["state"], "hibernating");
    let hibernate = r.json()["command_id"].as_str().unwrap().to_owned();
    let cmd = agent.poll_one(&app, "hibernate_session");
    assert_eq!(cmd["command_id"], hibernate.as_str());
    agent.complete(
        &app,
        &hibernate,
        &json!({"sessionId": id, "state": "hibernated"}),
    );
    assert_eq!(state_of(&app, &owner, &id), "hibernated");
    let r = app.json(
        "POST",
        &format!("/api/v1/sessions/{id}/heartbeat"),
        Some(&owner),
        &json!({}),
    );
    assert_eq!(
        r.status,
        409,
        "heartbeat on a hibernated session: {}",
        text(&r)
    );

    // Connect wakes it: waking, not ready, a wake_session command; the agent completes → running.
    let r = app.authed("GET", &format!("/api/v1/sessions/{id}/connect"), &owner);
    assert_eq!(r.status, 200, "{}", text(&r));
    let c = r.json();
    assert_eq!(c["state"], "waking");
    assert_eq!(c["ready"], false);
    assert_eq!(
        c["message"],
        "Connection established. Session is waking from hibernation - please wait."
    );
    let wake = agent.poll_one(&app, "wake_session");
    agent.complete(
        &app,
        wake["command_id"].as_str().unwrap(),
        &json!({"sessionId": id, "podName": "p2", "podIP": "10.0.0.8", "vncPort": 3000, "state": "running"}),
    );
    assert_eq!(state_of(&app, &owner, &id), "running");

    // DELETE: terminating + stop_session; DELETE again is the same answer; the agent completes.
    let r = app.authed("DELETE", &format!("/api/v1/sessions/{id}"), &owner);
    assert_eq!(r.status, 202, "{}", text(&r));
    assert_eq!(r.json()["session"]["state"], "terminating");
    let stop = r.json()["command_id"].as_str().unwrap().to_owned();
    let r = app.authed("DELETE", &format!("/api/v1/sessions/{id}"), &owner);
    assert_eq!(r.status, 202, "second DELETE: {}", text(&r));
    assert_eq!(r.json()["session"]["state"], "terminating");
    assert_eq!(r.json()["command_id"], stop.as_str());
    let cmd = agent.poll_one(&app, "stop_session");
    assert_eq!(cmd["command_id"], stop.as_str());
    assert_eq!(
        cmd["payload"],
        json!({"sessionId": id, "namespace": "streamspace"})
    );
    agent.complete(
        &app,
        &stop,
        &json!({"sessionId": id, "state": "terminated"}),
    );
    let s = get_session(&app, &owner, &id);
    assert_eq!(s["state"], "terminated");
    assert!(s["terminated_at"].is_string());
    assert_eq!(
        s["active_connections"], 0,
        "an ended session has no live connection"
    );

    // Ended: every change is 409 invalid_state.
    let r = app.authed("PUT", &format!("/api/v1/sessions/{id}/hibernate"), &owner);
    assert_eq!(r.status, 409, "{}", text(&r));
    assert_eq!(r.error_code(), "invalid_state");
    assert_eq!(
        r.json()["message"],
        "session must be running to hibernate (currently: terminated)"
    );
    let r = app.authed("DELETE", &format!("/api/v1/sessions/{id}"), &owner);
    assert_eq!(r.status, 409);
    assert_eq!(r.error_code(), "invalid_state");
    let r = app.authed("GET", &format!("/api/v1/sessions/{id}/connect"), &owner);
    assert_eq!(r.status, 409);
    assert_eq!(r.error_code(), "invalid_state");

    // Lists hide ended sessions unless asked.
    let list = app.authed("GET", "/api/v1/sessions", &owner).json();
    assert_eq!(list["items"], json!([]), "{list}");
    let list = app
        .authed("GET", "/api/v1/sessions?include_terminated=true", &owner)
        .json();
    assert_eq!(list["items"][0]["id"], id.as_str(), "{list}");
    assert!(agent.poll(&app).is_empty(), "nothing left to deliver");
}

#[test]
fn quota_402_has_the_seed_body_and_counts_pending_sessions() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let (_, template) = create_template(&app, &admin.access);
    online_agent(&app, &admin.access);
    let User {
        id: user_id,
        token: user,
        ..
    } = create_user(&app, &admin.access, "user", None);
    put_quota(&app, &admin.access, &user_id, &json!({"max_sessions": 1}));

    let (first, _) = start_session(&app, &user, &template);
    let r = post_session(&app, &user, &json!({"template": template}));
    assert_eq!(r.status, 402, "{}", text(&r));
    assert_eq!(
        r.json(),
        json!({
            "error": "quota_exceeded",
            "message": "Session limit reached: 1/1 sessions active",
            "request_id": r.header("x-request-id").unwrap(),
            "quota": {"limit": "1", "current": "1", "requested": "1", "available": "0",
                      "resource": "sessions"}
        })
    );
    // Per-session limits are checked first (seed order): the CPU one wins over the count.
    let r = post_session(
        &app,
        &user,
        &json!({"template": template, "resources": {"cpu": "4000m"}}),
    );
    assert_eq!(r.status, 402, "{}", text(&r));
    assert_eq!(r.error_code(), "quota_exceeded");
    assert_eq!(
        r.json()["message"],
        "CPU per-session limit exceeded: requested 4000m, limit 2000m"
    );
    assert_eq!(r.json()["quota"]["resource"], "cpu_per_session");
    assert_eq!(r.json()["quota"]["limit"], "2000m");
    assert_eq!(r.json()["quota"]["requested"], "4000m");
    assert_eq!(r.json()["quota"]["available"], "2000m");

    // GET /quotas/me: the seed's nesting, usage inside `limits`.
    let me = app.authed("GET", "/api/v1/quotas/me", &user);
    assert_eq!(me.status, 200, "{}", text(&me));
    let l = &me.json()["limits"];
    assert_eq!(l["max_sessions"], 1);
    assert_eq!(l["max_cpu"], "4000m");
    assert_eq!(l["max_memory"], "8Gi");
    assert_eq!(l["max_cpu_per_session"], "2000m");
    assert_eq!(l["max_memory_per_session"], "4Gi");
    assert_eq!(l["max_gpu"], 0);
    assert_eq!(l["max_gpu_per_session"], 0);
    assert_eq!(l["max_storage"], "50Gi");
    assert_eq!(
        l["current"],
        json!({"sessions": 1, "cpu": "1000m", "memory": "2Gi", "gpu": 0, "storage": "0"})
    );
    assert_eq!(l["available"]["sessions"], 0);
    assert_eq!(l["available"]["cpu"], "3000m");
    assert_eq!(l["available"]["memory"], "6Gi");
    // The admin's view adds the user id and the keys set on the user's row.
    let r = app.authed(
        "GET",
        &format!("/api/v1/quotas/users/{user_id}"),
        &admin.access,
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.json()["user_id"], user_id.as_str());
    assert_eq!(r.json()["overrides"], json!({"max_sessions": 1}));
    // Users cannot set quotas.
    let r = app.json(
        "PUT",
        &format!("/api/v1/quotas/users/{user_id}"),
        Some(&user),
        &json!({"max_sessions": 100}),
    );
    assert_eq!(r.status, 403);

    // Deleting the pending session releases its place at once.
    let r = app.authed("DELETE", &format!("/api/v1/sessions/{first}"), &user);
    assert_eq!(r.status, 202, "{}", text(&r));
    assert_eq!(
        r.json()["session"]["state"],
        "terminated",
        "never delivered: ended directly"
    );
    assert!(r.json()["command_id"].is_null());
    start_session(&app, &user, &template);
}

/// N creates at once, each on its own connection: exactly `max_sessions` are admitted.
fn concurrent_creates(app: &TestApp, token: &str, template: &str, n: usize) -> Vec<u16> {
    let auth = format!("Bearer {token}");
    race_statuses(
        app,
        n,
        "POST",
        "/api/v1/sessions",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        &json!({"template": template}),
    )
}

#[test]
fn concurrent_creates_never_exceed_the_session_quota() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let (_, template) = create_template(&app, &admin.access);
    online_agent(&app, &admin.access);
    for _ in 0..2 {
        let User {
            id: user_id,
            token: user,
            ..
        } = create_user(&app, &admin.access, "user", None);
        put_quota(&app, &admin.access, &user_id, &json!({"max_sessions": 3}));
        let statuses = concurrent_creates(&app, &user, &template, 12);
        assert_eq!(count(&statuses, 202), 3, "{statuses:?}");
        assert_eq!(count(&statuses, 402), 9, "{statuses:?}");
        let me = app.authed("GET", "/api/v1/quotas/me", &user).json();
        assert_eq!(me["limits"]["current"]["sessions"], 3);
        let list = app.authed("GET", "/api/v1/sessions", &user).json();
        assert_eq!(list["items"].as_array().unwrap().len(), 3, "{list}");
    }
}

#[test]
fn an_unacknowledged_command_is_redelivered_after_its_lease_and_stop_waits_for_start() {
    let app = TestApp::spawn_tuned(&[("agent_command_lease_seconds", "5")]);
    let admin = app.admin();
    let (_, template) = create_template(&app, &admin.access);
    let agent = online_agent(&app, &admin.access);
    let (id, start) = start_session(&app, &admin.access, &template);

    // The agent leases the start, then "crashes" (never acknowledges).
    let r = agent.get(&app, &format!("/api/v1/agents/{}/commands", agent.id));
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.json()["lease_seconds"], 5);
    let first = &r.json()["items"][0];
    assert_eq!(first["command_id"], start.as_str());
    assert_eq!(first["attempt"], 1);
    assert!(
        agent.poll(&app).is_empty(),
        "a live lease is not handed out twice"
    );
    std::thread::sleep(Duration::from_millis(5_500));
    let again = agent.poll_one(&app, "start_session");
    assert_eq!(
        again["command_id"],
        start.as_str(),
        "the same command again"
    );
    assert_eq!(again["attempt"], 2);

    // Deleted while the start is leased: terminating, but the stop waits for the start.
    let r = app.authed("DELETE", &format!("/api/v1/sessions/{id}"), &admin.access);
    assert_eq!(r.status, 202, "{}", text(&r));
    assert_eq!(r.json()["session"]["state"], "terminating");
    let stop = r.json()["command_id"].as_str().unwrap().to_owned();
    assert!(
        agent.poll(&app).is_empty(),
        "stop_session is not delivered while start_session is unfinished"
    );
    agent.complete(&app, &start, &json!({"sessionId": id, "state": "running"}));
    assert_eq!(
        state_of(&app, &admin.access, &id),
        "terminating",
        "a start completing after the delete changes nothing"
    );
    let cmd = agent.poll_one(&app, "stop_session");
    assert_eq!(cmd["command_id"], stop.as_str());
    assert_eq!(cmd["attempt"], 1);
    agent.complete(
        &app,
        &stop,
        &json!({"sessionId": id, "state": "terminated"}),
    );
    assert_eq!(state_of(&app, &admin.access, &id), "terminated");
}

/// Every session route, as (method, path) for the session `id`.
fn session_routes(id: &str) -> Vec<(&'static str, String)> {
    vec![
        ("GET", format!("/api/v1/sessions/{id}")),
        ("PATCH", format!("/api/v1/sessions/{id}")),
        ("DELETE", format!("/api/v1/sessions/{id}")),
        ("PUT", format!("/api/v1/sessions/{id}/hibernate")),
        ("PUT", format!("/api/v1/sessions/{id}/wake")),
        ("PATCH", format!("/api/v1/sessions/{id}/tags")),
        ("GET", format!("/api/v1/sessions/{id}/connect")),
        ("POST", format!("/api/v1/sessions/{id}/connect")),
        ("POST", format!("/api/v1/sessions/{id}/disconnect")),
        ("POST", format!("/api/v1/sessions/{id}/heartbeat")),
        ("GET", format!("/api/v1/sessions/{id}/connections")),
    ]
}

/// A body each route accepts, so only access decides.
fn body_for(method: &str, path: &str) -> Option<Value> {
    match method {
        "GET" | "DELETE" => None,
        _ if path.ends_with("/tags") => Some(json!({"tags": ["x"]})),
        "PATCH" => Some(json!({"state": "hibernated"})),
        _ if path.ends_with("/disconnect") => {
            Some(json!({"connection_id": "00000000-0000-4000-8000-000000000000"}))
        }
        _ => Some(json!({})),
    }
}

fn call(app: &TestApp, method: &str, path: &str, token: &str) -> Resp {
    match body_for(method, path) {
        Some(body) => app.json(method, path, Some(token), &body),
        None => app.authed(method, path, token),
    }
}

#[test]
fn another_orgs_admin_gets_404_and_same_org_strangers_403_on_every_session_route() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let (id, _, _) = running_session(&app, &admin.access);
    let b_admin = org_with_admin(&app, &admin.access).1.token;
    let stranger = create_user(&app, &admin.access, "user", None).token;
    for (method, path) in session_routes(&id) {
        let r = call(&app, method, &path, &b_admin);
        assert_eq!(
            r.status,
            404,
            "{method} {path} as another org's admin: {}",
            text(&r)
        );
        assert_eq!(r.error_code(), "not_found");
        let r = call(&app, method, &path, &stranger);
        assert_eq!(
            r.status,
            403,
            "{method} {path} as a same-org stranger: {}",
            text(&r)
        );
        assert_eq!(r.error_code(), "forbidden");
    }
    // The session is looked up before the body is judged: an invalid body does not tell another
    // org that the id exists (404, not 400).
    for path in [
        format!("/api/v1/sessions/{id}"),
        format!("/api/v1/sessions/{id}/tags"),
        format!("/api/v1/sessions/{id}/disconnect"),
    ] {
        let method = if path.ends_with("disconnect") {
            "POST"
        } else {
            "PATCH"
        };
        let r = app.json(method, &path, Some(&b_admin), &json!({}));
        assert_eq!(
            r.status,
            404,
            "{method} {path} with an invalid body: {}",
            text(&r)
        );
        let r = app.json(method, &path, Some(&admin.access), &json!({}));
        assert_eq!(
            r.status,
            400,
            "{method} {path}, own org, invalid body: {}",
            text(&r)
        );
    }
    // Nor do lists leak it.
    let list = app
        .authed("GET", "/api/v1/sessions?include_terminated=true", &b_admin)
        .json();
    assert_eq!(list["items"], json!([]), "{list}");
    let r = app.authed(
        "GET",
        &format!("/api/v1/sessions?user={}", admin.user_id),
        &stranger,
    );
    assert_eq!(r.status, 403, "a user may not list another's sessions");
    let r = app.authed(
        "GET",
        &format!("/api/v1/quotas/users/{}", admin.user_id),
        &b_admin,
    );
    assert_eq!(r.status, 404, "{}", text(&r));
    assert_eq!(
        state_of(&app, &admin.access, &id),
        "running",
        "nothing changed"
    );
}

#[test]
fn a_team_viewer_sees_a_team_session_but_may_not_operate_it() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let (_, template) = create_template(&app, &admin.access);
    let agent = online_agent(&app, &admin.access);
    let User {
        id: member_id,
        token: member,
        ..
    } = create_user(&app, &admin.access, "user", None);
    let User {
        id: viewer_id,
        token: viewer,
        ..
    } = create_user(&app, &admin.access, "user", None);
    let r = app.json(
        "POST",
        "/api/v1/teams",
        Some(&admin.access),
        &json!({"name": unique("sess-team")}),
    );
    assert_eq!(r.status, 201, "create team: {}", text(&r));
    let team = r.json()["id"].as_str().unwrap().to_owned();
    // Not a member yet: may not create sessions for the team.
    let r = post_session(
        &app,
        &member,
        &json!({"template": template, "team_id": team}),
    );
    assert_eq!(r.status, 403, "{}", text(&r));
    for (user, role) in [(&member_id, "member"), (&viewer_id, "viewer")] {
        let r = app.json(
            "POST",
            &format!("/api/v1/teams/{team}/members"),
            Some(&admin.access),
            &json!({"user_id": user, "role": role}),
        );
        assert_eq!(r.status, 201, "add {role}: {}", text(&r));
    }
    let r = post_session(
        &app,
        &member,
        &json!({"template": template, "team_id": team}),
    );
    assert_eq!(r.status, 202, "{}", text(&r));
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(r.json()["team_id"], team.as_str());
    agent_starts(&app, &agent, &id, r.json()["command_id"].as_str().unwrap());

    // The viewer (sessions.view) sees it and may connect.
    assert_eq!(state_of(&app, &viewer, &id), "running");
    let own = app.authed("GET", "/api/v1/sessions", &viewer).json();
    assert_eq!(own["items"], json!([]), "not the viewer's own: {own}");
    let team_list = app
        .authed("GET", "/api/v1/sessions?scope=team", &viewer)
        .json();
    assert_eq!(team_list["items"][0]["id"], id.as_str(), "{team_list}");
    let r = app.authed("GET", &format!("/api/v1/sessions/{id}/connect"), &viewer);
    assert_eq!(r.status, 200, "{}", text(&r));
    // But may not operate it (sessions.create / sessions.delete).
    for (method, path) in [
        ("PUT", format!("/api/v1/sessions/{id}/hibernate")),
        ("PATCH", format!("/api/v1/sessions/{id}")),
        ("PATCH", format!("/api/v1/sessions/{id}/tags")),
        ("DELETE", format!("/api/v1/sessions/{id}")),
    ] {
        let r = call(&app, method, &path, &viewer);
        assert_eq!(
            r.status,
            403,
            "{method} {path} as a team viewer: {}",
            text(&r)
        );
        assert_eq!(r.error_code(), "forbidden");
    }
    assert_eq!(state_of(&app, &member, &id), "running");
    // The member (sessions.create) may.
    let r = app.authed("PUT", &format!("/api/v1/sessions/{id}/hibernate"), &member);
    assert_eq!(r.status, 202, "{}", text(&r));
}

#[test]
fn admission_refuses_unknown_templates_and_orgs_without_agents() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let r = post_session(
        &app,
        &admin.access,
        &json!({"template": "no-such-template"}),
    );
    assert_eq!(r.status, 404, "{}", text(&r));
    assert_eq!(r.error_code(), "template_not_found");
    let r = post_session(
        &app,
        &admin.access,
        &json!({"template_id": "00000000-0000-4000-8000-000000000000"}),
    );
    assert_eq!(r.status, 404, "{}", text(&r));
    assert_eq!(r.error_code(), "template_not_found");
    let (_, template) = create_template(&app, &admin.access);
    let r = post_session(&app, &admin.access, &json!({"template": template}));
    assert_eq!(r.status, 503, "{}", text(&r));
    assert_eq!(r.error_code(), "no_agents_available");
    // A created but unregistered agent is no candidate either; another org's agent neither.
    create_agent(&app, &admin.access);
    let b_admin = org_with_admin(&app, &admin.access).1.token;
    online_agent(&app, &b_admin);
    let r = post_session(&app, &admin.access, &json!({"template": template}));
    assert_eq!(r.status, 503, "{}", text(&r));
    assert_eq!(r.error_code(), "no_agents_available");
    // Another org's template is unknown here.
    let (_, b_template) = create_template(&app, &b_admin);
    online_agent(&app, &admin.access);
    let r = post_session(&app, &admin.access, &json!({"template": b_template}));
    assert_eq!(r.status, 404, "{}", text(&r));
    assert_eq!(r.error_code(), "template_not_found");
    let r = post_session(
        &app,
        &admin.access,
        &json!({"template": template, "template_id": "x"}),
    );
    assert_eq!(r.status, 400, "{}", text(&r));
}

#[test]
fn tickets_need_a_viewable_session_and_only_its_agent_redeems_them() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let (id, agent_id, key) = running_session(&app, &admin.access);
    let issue = |token: &str, session: &str| {
        app.json(
            "POST",
            "/api/v1/auth/tickets",
            Some(token),
            &json!({"purpose": "session-connect", "session_id": session}),
        )
    };
    let r = issue(&admin.access, "00000000-0000-4000-8000-000000000000");
    assert_eq!(r.status, 404, "unknown session: {}", text(&r));
    let b_admin = org_with_admin(&app, &admin.access).1.token;
    let r = issue(&b_admin, &id);
    assert_eq!(r.status, 404, "another org's session: {}", text(&r));
    let stranger = create_user(&app, &admin.access, "user", None).token;
    let r = issue(&stranger, &id);
    assert_eq!(
        r.status,
        403,
        "a session the caller may not view: {}",
        text(&r)
    );

    // Another agent of the same org may not redeem it (and the ticket is spent).
    let other = online_agent(&app, &admin.access);
    let r = issue(&admin.access, &id);
    assert_eq!(r.status, 201, "{}", text(&r));
    let ticket = r.json()["ticket"].as_str().unwrap().to_owned();
    let r = other.post(
        &app,
        &format!("/api/v1/auth/tickets/redeem?agent_id={}", other.id),
        &json!({"ticket": ticket}),
    );
    assert_eq!(r.status, 401, "{}", text(&r));
    assert_eq!(r.error_code(), "invalid_ticket");
    let agent = Agent { id: agent_id, key };
    let redeem = format!("/api/v1/auth/tickets/redeem?agent_id={}", agent.id);
    let r = agent.post(&app, &redeem, &json!({"ticket": ticket}));
    assert_eq!(r.status, 401, "spent by the refused attempt: {}", text(&r));
    // The session's own agent redeems a fresh one.
    let r = issue(&admin.access, &id);
    let ticket = r.json()["ticket"].as_str().unwrap().to_owned();
    let r = agent.post(&app, &redeem, &json!({"ticket": ticket}));
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.json()["session_id"], id.as_str());
}

#[test]
fn metrics_count_the_org_as_json_and_prometheus_text_for_admins_only() {
    let app = TestApp::spawn();
    let admin = app.admin();
    running_session(&app, &admin.access);
    let r = app.authed("GET", "/api/v1/metrics", &admin.access);
    assert_eq!(r.status, 200, "{}", text(&r));
    let m = r.json();
    assert_eq!(m["sessions"]["total"], 1, "{m}");
    assert_eq!(m["sessions"]["by_state"]["running"], 1, "{m}");
    assert_eq!(m["sessions"]["by_state"]["pending"], 0, "{m}");
    assert_eq!(m["agents"]["online"], 1, "{m}");
    assert_eq!(m["commands"]["pending"], 0, "{m}");
    assert!(m["users"]["total"].as_i64().unwrap() >= 1, "{m}");

    let r = app.authed("GET", "/api/v1/metrics?format=prometheus", &admin.access);
    assert_eq!(r.status, 200, "{}", text(&r));
    assert!(
        r.header("content-type").unwrap().starts_with("text/plain"),
        "{:?}",
        r.header("content-type")
    );
    let body = text(&r);
    assert!(body.contains("# TYPE streamspace_sessions gauge"), "{body}");
    assert!(
        body.contains("streamspace_sessions{state=\"running\"} 1\n"),
        "{body}"
    );
    assert!(
        body.contains("streamspace_agents{status=\"online\"} 1\n"),
        "{body}"
    );

    let user = create_user(&app, &admin.access, "user", None).token;
    let r = app.authed("GET", "/api/v1/metrics", &user);
    assert_eq!(r.status, 403, "{}", text(&r));
    assert_eq!(r.error_code(), "forbidden");
    let operator = create_user(&app, &admin.access, "operator", None).token;
    assert_eq!(app.authed("GET", "/api/v1/metrics", &operator).status, 200);
}

#[test]
fn deleting_an_agent_ends_its_sessions_as_agent_unavailable() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let (running, agent_id, _) = running_session(&app, &admin.access);
    // A second session on the same agent that never started.
    let (_, template) = create_template(&app, &admin.access);
    let (pending, _) = start_session(&app, &admin.access, &template);
    assert_eq!(
        get_session(&app, &admin.access, &pending)["agent_id"],
        agent_id.as_str()
    );
    let r = app.authed(
        "DELETE",
        &format!("/api/v1/admin/agents/{agent_id}"),
        &admin.access,
    );
    assert_eq!(r.status, 204, "{}", text(&r));
    let s = get_session(&app, &admin.access, &running);
    assert_eq!(s["state"], "terminated", "{s}");
    assert_eq!(s["termination_reason"], "agent_unavailable");
    let s = get_session(&app, &admin.access, &pending);
    assert_eq!(s["state"], "failed", "{s}");
    assert_eq!(s["termination_reason"], "agent_unavailable");
    let m = app.authed("GET", "/api/v1/metrics", &admin.access).json();
    assert_eq!(
        m["commands"]["pending"], 0,
        "its commands are cancelled: {m}"
    );
    // The quota is released.
    let me = app.authed("GET", "/api/v1/quotas/me", &admin.access).json();
    assert_eq!(me["limits"]["current"]["sessions"], 0, "{me}");
}

#[test]
fn disabling_a_user_ends_their_sessions() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let (_, template) = create_template(&app, &admin.access);
    let agent = online_agent(&app, &admin.access);
    let User {
        id: user_id,
        token: user,
        ..
    } = create_user(&app, &admin.access, "user", None);
    let (id, start) = start_session(&app, &user, &template);
    agent_starts(&app, &agent, &id, &start);
    let (never_delivered, _) = start_session(&app, &user, &template);
    let r = app.json(
        "PATCH",
        &format!("/api/v1/users/{user_id}"),
        Some(&admin.access),
        &json!({"status": "disabled"}),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(
        state_of(&app, &admin.access, &id),
        "terminating",
        "a running session is stopped by its agent"
    );
    assert_eq!(
        state_of(&app, &admin.access, &never_delivered),
        "terminated",
        "a start never delivered is simply cancelled"
    );
    let stop = agent.poll_one(&app, "stop_session");
    assert_eq!(stop["session_id"], id.as_str());
    agent.complete(
        &app,
        stop["command_id"].as_str().unwrap(),
        &json!({"sessionId": id, "state": "terminated"}),
    );
    assert_eq!(state_of(&app, &admin.access, &id), "terminated");
}
