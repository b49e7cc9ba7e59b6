//! The suite's fixtures, one copy each: orgs, accounts of a role (created through the admin API
//! and logged in), personal access tokens, agents, requests raced on their own connections, and
//! the TOTP codes and cookies of the login tests. Every fixture asserts its own success, so a test
//! fails at the step that broke rather than later.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{text, unique, Body, Resp, Session, TestApp};

/// The password of every account made by [`create_user`] / [`create_account`].
pub const PASSWORD: &str = "a long enough password 42";

/// Creates an org (platform admin only); returns its id.
pub fn create_org(app: &TestApp, platform: &str) -> String {
    let r = app.json(
        "POST",
        "/api/v1/orgs",
        Some(platform),
        &json!({"name": unique("org")}),
    );
    assert_eq!(r.status, 201, "create org: {}", text(&r));
    r.json()["id"].as_str().unwrap().to_owned()
}

/// Creates an account of `role` in the admin's org (or in `org_id`, platform admin only) with
/// [`PASSWORD`], without logging it in; returns (user id, username).
pub fn create_account(
    app: &TestApp,
    admin: &str,
    role: &str,
    org_id: Option<&str>,
) -> (String, String) {
    let username = unique("user");
    let mut body = json!({
        "username": username,
        "email": format!("{username}@example.com"),
        "password": PASSWORD,
        "role": role,
    });
    if let Some(org) = org_id {
        body["org_id"] = json!(org);
    }
    let r = app.json("POST", "/api/v1/users", Some(admin), &body);
    assert_eq!(r.status, 201, "create user: {}", text(&r));
    (r.json()["id"].as_str().unwrap().to_owned(), username)
}

/// An account created through the admin API and logged in.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub username: String,
    /// The login session's access token (`session.access`).
    pub token: String,
    pub session: Session,
}

/// Creates an account of `role` in the admin's org (or in `org_id`) and logs it in.
pub fn create_user(app: &TestApp, admin: &str, role: &str, org_id: Option<&str>) -> User {
    let (id, username) = create_account(app, admin, role, org_id);
    let session = Session {
        user_id: id.clone(),
        ..app.login(&username, PASSWORD)
    };
    User {
        id,
        username,
        token: session.access.clone(),
        session,
    }
}

/// A new org and its admin (logged in); returns (org id, admin).
pub fn org_with_admin(app: &TestApp, platform: &str) -> (String, User) {
    let org = create_org(app, platform);
    let admin = create_user(app, platform, "admin", Some(&org));
    (org, admin)
}

/// A personal access token with `scope`, minted by the login session `token`.
pub fn create_pat(app: &TestApp, token: &str, scope: &str) -> String {
    let r = app.json(
        "POST",
        "/api/v1/api-keys",
        Some(token),
        &json!({"name": unique("key"), "scopes": [scope]}),
    );
    assert_eq!(r.status, 201, "create {scope} key: {}", text(&r));
    r.json()["key"].as_str().unwrap().to_owned()
}

/// A streaming agent as the suite drives it: its id and key.
#[derive(Debug, Clone)]
pub struct Agent {
    pub id: String,
    pub key: String,
}

/// A JSON `POST` with the agent key `key` (any key: tests also send the wrong one).
pub fn agent_post(app: &TestApp, path: &str, key: &str, body: &Value) -> Resp {
    app.request(
        "POST",
        path,
        &[
            ("x-agent-api-key", key),
            ("content-type", "application/json"),
        ],
        Body::Bytes(body.to_string().into_bytes()),
    )
}

impl Agent {
    pub fn get(&self, app: &TestApp, path: &str) -> Resp {
        app.request("GET", path, &[("x-agent-api-key", &self.key)], Body::Empty)
    }

    pub fn post(&self, app: &TestApp, path: &str, body: &Value) -> Resp {
        agent_post(app, path, &self.key, body)
    }
}

/// Creates an agent in the admin's org (not registered yet).
pub fn create_agent(app: &TestApp, admin: &str) -> Agent {
    let r = app.json(
        "POST",
        "/api/v1/admin/agents",
        Some(admin),
        &json!({"name": unique("agent"), "platform": "kubernetes", "region": "eu-west"}),
    );
    assert_eq!(r.status, 201, "create agent: {}", text(&r));
    let v = r.json();
    Agent {
        id: v["id"].as_str().unwrap().to_owned(),
        key: v["api_key"].as_str().unwrap().to_owned(),
    }
}

/// An agent of the admin's org, registered and heartbeating (so sessions may go to it).
pub fn online_agent(app: &TestApp, admin: &str) -> Agent {
    let agent = create_agent(app, admin);
    let r = agent.post(
        app,
        &format!("/api/v1/agents/register?agent_id={}", agent.id),
        &json!({"platform": "kubernetes", "region": "eu-west"}),
    );
    assert_eq!(r.status, 200, "register: {}", text(&r));
    agent
}

/// Runs `racer(0..n)` on `n` threads released together by a barrier (each racer sends on its
/// own connection); returns their results in racer order.
pub fn race<T: Send>(n: usize, racer: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let barrier = Barrier::new(n);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (barrier, racer) = (&barrier, &racer);
                scope.spawn(move || {
                    barrier.wait();
                    racer(i)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// The statuses of `n` identical requests raced by [`race`].
pub fn race_statuses(
    app: &TestApp,
    n: usize,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> Vec<u16> {
    let (base, body) = (app.base.as_str(), body.to_string());
    race(n, |_| {
        crate::helpers::send(
            base,
            method,
            path,
            headers,
            Body::Bytes(body.clone().into_bytes()),
        )
        .status
    })
}

/// How many of `statuses` are `status`.
pub fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

/// Calls `probe` every `every` until it answers `Ok`, and returns that; fails with `what` and the
/// last `Err` detail once `within` has passed.
pub fn wait_for<T>(
    within: Duration,
    every: Duration,
    what: &str,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    loop {
        match probe() {
            Ok(done) => return done,
            Err(detail) => assert!(start.elapsed() < within, "{what}: {detail}"),
        }
        std::thread::sleep(every);
    }
}

/// The current TOTP code of a base32 secret.
pub fn totp_now(secret_b32: &str) -> String {
    let secret = shared::secrets::base32_decode(secret_b32).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    shared::secrets::totp_code(&secret, now)
}

/// The `Set-Cookie` header values of an answer.
pub fn set_cookies(resp: &Resp) -> Vec<&str> {
    resp.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The value the answer sets for cookie `name`.
pub fn cookie_value(resp: &Resp, name: &str) -> Option<String> {
    set_cookies(resp)
        .into_iter()
        .filter_map(|v| v.split(';').next())
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}
