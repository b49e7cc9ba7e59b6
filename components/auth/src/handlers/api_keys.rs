//! Personal access tokens (`ssp_…`, seed 003): created by a login session, shown once, stored as
//! SHA-256 only, with metadata (created_ip, user_agent, last_used_at, use_count) and revocation.
//!
//! The precheck ([`shared::auth::precheck`]) verifies a token on every request without caching,
//! so revocation, deletion, expiry and disabling the owner bite on the very next request. A token
//! acts as its owner within its scope (`read`: safe methods only; `full`: everything the owner may
//! do) — except minting tokens: only a login session may create one, so a leaked token cannot
//! extend its own life or widen itself.
//!
//! The queries live in [`crate::api_keys`]; every one filters by the caller's user id and org, so
//! another user's key answers 404.

use serde::{Deserialize, Serialize};
use shared::auth::Scope;
use shared::ids::uuid_v4;
use shared::rate_limit::RateClass;
use shared::secrets::{new_token, TokenKind};
use shared::time::Timestamp;
use shared::{Access, ApiResult, Cx, Response, Route, StatusCode};

use crate::api_keys::{self, KeyRecord, DAY_MS, KEY_PREFIX_CHARS, MAX_USER_AGENT_CHARS};

pub fn routes() -> Vec<Route> {
    vec![
        Route::post("/api/v1/api-keys", Access::User, create).rate(RateClass::Mint),
        Route::get("/api/v1/api-keys", Access::User, list),
        Route::post("/api/v1/api-keys/{id}/revoke", Access::User, revoke),
        Route::delete("/api/v1/api-keys/{id}", Access::User, delete),
        Route::get("/api/v1/api-keys/{id}/usage", Access::User, usage),
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    name: String,
    scopes: Vec<String>,
    #[serde(default)]
    expires_in_days: Option<i64>,
}

#[derive(Serialize)]
struct Created {
    id: String,
    name: String,
    scopes: Vec<Scope>,
    /// The token, shown this once.
    key: String,
    key_prefix: String,
    expires_at: Timestamp,
    created_at: Timestamp,
}

/// `POST /api/v1/api-keys` `{name, scopes, expires_in_days?}`: 201 with the key, shown once.
/// Only a login session may create keys (403 `login_session_required` for a personal access
/// token or an external token: see `Principal::require_login_session`).
pub async fn create(cx: Cx) -> ApiResult<Response> {
    let user = cx.user()?;
    user.require_login_session()?;
    let input: CreateRequest = cx.json()?;
    let input = api_keys::validate(&input.name, &input.scopes, input.expires_in_days)?;
    let random = cx.services.random.as_ref();
    let id = uuid_v4(random)?;
    let (key, hash) = new_token(random, TokenKind::PersonalAccess)?;
    let key_prefix: String = key.expose().chars().take(KEY_PREFIX_CHARS).collect();
    let now = cx.now_ms();
    let expires_at = now + input.expires_in_days * DAY_MS;
    let user_agent: Option<String> = cx
        .head
        .header("user-agent")
        .map(|ua| ua.chars().take(MAX_USER_AGENT_CHARS).collect());
    api_keys::insert(
        cx.db()?,
        KeyRecord {
            id: &id,
            owner: user,
            key: &input,
            token_hash: hash.as_str(),
            key_prefix: &key_prefix,
            expires_at,
            created_at: now,
            created_ip: cx.client_ip.map(|ip| ip.to_string()),
            user_agent,
        },
    )?;
    Response::json(
        StatusCode::CREATED,
        &Created {
            id,
            name: input.name,
            scopes: input.scopes,
            key: key.expose().to_owned(),
            key_prefix,
            expires_at: Timestamp::from_ms(expires_at),
            created_at: Timestamp::from_ms(now),
        },
    )
}

/// `GET /api/v1/api-keys`: the caller's keys (revoked and expired ones included, with their
/// status), newest first, paginated.
pub async fn list(cx: Cx) -> ApiResult<Response> {
    let user = cx.user()?;
    let page = cx.page()?;
    Response::ok_json(&api_keys::list(cx.db()?, user, &page, cx.now_ms())?)
}

/// The `{id}` of the path; anything that is not a UUID cannot be a key (404, no query).
fn key_id(cx: &Cx) -> ApiResult<String> {
    let id: String = cx.param("id")?;
    if shared::ids::is_uuid(&id) {
        Ok(id)
    } else {
        Err(api_keys::no_such_key())
    }
}

/// `POST /api/v1/api-keys/{id}/revoke`: 200 with the metadata. Idempotent: revoking again keeps
/// the first revocation time.
pub async fn revoke(cx: Cx) -> ApiResult<Response> {
    let user = cx.user()?;
    let id = key_id(&cx)?;
    Response::ok_json(&api_keys::revoke(cx.db()?, user, &id, cx.now_ms())?)
}

/// `DELETE /api/v1/api-keys/{id}`: 204; the key stops working at once. Gone afterwards (404).
pub async fn delete(cx: Cx) -> ApiResult<Response> {
    let user = cx.user()?;
    let id = key_id(&cx)?;
    api_keys::delete(cx.db()?, user, &id)?;
    Ok(Response::no_content())
}

/// `GET /api/v1/api-keys/{id}/usage`: how often and when the key was used, and where it was made.
pub async fn usage(cx: Cx) -> ApiResult<Response> {
    let user = cx.user()?;
    let id = key_id(&cx)?;
    Response::ok_json(&api_keys::usage(cx.db()?, user, &id)?)
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value as Json};
    use shared::store::{Clock, SqlOpener, Value};
    use shared::testing::TestStores;
    use shared::time::Timestamp;

    use super::*;
    use crate::api_keys::{DAY_MS, MAX_USER_AGENT_CHARS};

    const PASSWORD: &str = "correct horse battery staple";

    fn body(r: &Response) -> Json {
        serde_json::from_slice(&r.body).unwrap()
    }

    fn call(
        s: &TestStores,
        method: &str,
        path: &str,
        token: &str,
        payload: Option<Json>,
    ) -> Response {
        let auth = format!("Bearer {token}");
        let text = payload.map(|p| p.to_string()).unwrap_or_default();
        let mut headers = vec![
            ("authorization", auth.as_str()),
            ("spin-client-addr", "203.0.113.7:5555"),
            ("user-agent", "unit-test/1.0"),
        ];
        if !text.is_empty() {
            headers.push(("content-type", "application/json"));
        }
        s.call(&crate::table(), method, path, &headers, text.as_bytes())
    }

    /// First-user setup; returns the admin's access token.
    fn admin(s: &TestStores) -> String {
        let r = s.call(
            &crate::table(),
            "POST",
            "/api/v1/auth/setup",
            &[("content-type", "application/json")],
            json!({"username": "root", "email": "root@example.com", "password": PASSWORD, "org_name": "Acme"})
                .to_string()
                .as_bytes(),
        );
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        body(&r)["access_token"].as_str().unwrap().to_owned()
    }

    fn login(s: &TestStores, username: &str) -> String {
        let r = s.call(
            &crate::table(),
            "POST",
            "/api/v1/auth/login",
            &[("content-type", "application/json")],
            json!({"username": username, "password": PASSWORD})
                .to_string()
                .as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        body(&r)["access_token"].as_str().unwrap().to_owned()
    }

    /// A second account in `org_id` with the admin's password hash (so it logs in with PASSWORD).
    fn other_user(s: &TestStores, username: &str, org_id: &str) -> String {
        let conn = s.sql.open().unwrap();
        let id = format!("00000000-0000-4000-8000-{:012}", username.len());
        conn.execute(
            "INSERT INTO users (id, org_id, username, email, password_hash, role, status, created_at, updated_at)
             SELECT ?, ?, ?, ?, password_hash, 'user', 'active', 0, 0 FROM users WHERE username = 'root'",
            &[
                Value::from(id.as_str()),
                Value::from(org_id),
                Value::from(username),
                Value::from(format!("{username}@example.com")),
            ],
        )
        .unwrap();
        id
    }

    fn create(s: &TestStores, token: &str, payload: Json) -> Json {
        let r = call(s, "POST", "/api/v1/api-keys", token, Some(payload));
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        body(&r)
    }

    fn sql_rows(s: &TestStores, statement: &str) -> shared::store::Rows {
        s.sql.open().unwrap().execute(statement, &[]).unwrap()
    }

    #[test]
    fn create_shows_the_key_once_and_stores_only_its_hash() {
        let s = TestStores::new();
        let token = admin(&s);
        let v = create(
            &s,
            &token,
            json!({"name": " ci ", "scopes": ["full", "read", "full"], "expires_in_days": 30}),
        );
        let key = v["key"].as_str().unwrap();
        assert!(key.starts_with("ssp_"), "{key}");
        assert_eq!(v["key_prefix"].as_str().unwrap(), &key[..8]);
        assert_eq!(v["name"], "ci");
        assert_eq!(v["scopes"], json!(["read", "full"]));
        assert!(shared::ids::is_uuid(v["id"].as_str().unwrap()));
        let created = s.clock.now_ms();
        assert_eq!(v["created_at"], Timestamp::from_ms(created).to_rfc3339());
        assert_eq!(
            v["expires_at"],
            Timestamp::from_ms(created + 30 * DAY_MS).to_rfc3339()
        );

        let rows = sql_rows(&s, "SELECT * FROM api_keys");
        let row = rows.first().unwrap();
        assert_eq!(
            row.str("token_hash").unwrap(),
            shared::secrets::TokenHash::of(key).as_str()
        );
        assert_eq!(row.str("scopes").unwrap(), "read,full");
        assert_eq!(row.opt_str("created_ip").unwrap(), Some("203.0.113.7"));
        assert_eq!(row.opt_str("user_agent").unwrap(), Some("unit-test/1.0"));
        for i in 0..rows.columns.len() {
            if let shared::store::Value::Text(t) = &rows.rows[0][i] {
                assert!(
                    !t.contains(key),
                    "column {} holds the raw key",
                    rows.columns[i]
                );
            }
        }

        // The default lifetime is 90 days.
        let v = create(&s, &token, json!({"name": "default", "scopes": ["read"]}));
        assert_eq!(
            v["expires_at"],
            Timestamp::from_ms(created + 90 * DAY_MS).to_rfc3339()
        );
    }

    #[test]
    fn user_agent_is_truncated() {
        let s = TestStores::new();
        let token = admin(&s);
        let long = "x".repeat(2000);
        let auth = format!("Bearer {token}");
        let r = s.call(
            &crate::table(),
            "POST",
            "/api/v1/api-keys",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
                ("user-agent", &long),
            ],
            json!({"name": "ua", "scopes": ["read"]})
                .to_string()
                .as_bytes(),
        );
        assert_eq!(r.status, 201);
        let rows = sql_rows(&s, "SELECT user_agent, created_ip FROM api_keys");
        let row = rows.first().unwrap();
        assert_eq!(
            row.str("user_agent").unwrap().chars().count(),
            MAX_USER_AGENT_CHARS
        );
        assert_eq!(row.opt_str("created_ip").unwrap(), None);
    }

    #[test]
    fn invalid_requests_are_400() {
        let s = TestStores::new();
        // Many attempts in one instant: lift the minting limit, which is not under test here.
        s.variables.set("rate_limit_mint_per_minute", "1000");
        let token = admin(&s);
        let long = "n".repeat(101);
        let cases = [
            (
                json!({"name": "", "scopes": ["read"]}),
                "invalid_field",
                "empty name",
            ),
            (
                json!({"name": "   ", "scopes": ["read"]}),
                "invalid_field",
                "blank name",
            ),
            (
                json!({"name": long, "scopes": ["read"]}),
                "invalid_field",
                "name over 100 chars",
            ),
            (
                json!({"name": "a\u{7}b", "scopes": ["read"]}),
                "invalid_field",
                "control character",
            ),
            (
                json!({"name": "k", "scopes": []}),
                "invalid_field",
                "no scopes",
            ),
            (
                json!({"name": "k", "scopes": ["read", "admin"]}),
                "invalid_scope",
                "unknown scope",
            ),
            (
                json!({"name": "k", "scopes": ["READ"]}),
                "invalid_scope",
                "scopes are case-sensitive",
            ),
            (
                json!({"name": "k", "scopes": ["read"], "expires_in_days": 0}),
                "invalid_field",
                "zero days",
            ),
            (
                json!({"name": "k", "scopes": ["read"], "expires_in_days": 366}),
                "invalid_field",
                "over a year",
            ),
            (
                json!({"name": "k", "scopes": ["read"], "expires_in_days": -1}),
                "invalid_field",
                "negative days",
            ),
        ];
        for (payload, code, why) in cases {
            let r = call(&s, "POST", "/api/v1/api-keys", &token, Some(payload));
            assert_eq!(r.status, 400, "{why}");
            assert_eq!(body(&r)["error"], code, "{why}");
        }
        let r = call(
            &s,
            "POST",
            "/api/v1/api-keys",
            &token,
            Some(json!({"name": "k", "scopes": ["read", "admin"]})),
        );
        assert!(body(&r)["message"].as_str().unwrap().contains("`admin`"));
        for (payload, why) in [
            (
                json!({"name": "k", "scopes": ["read"], "owner": "x"}),
                "unknown field",
            ),
            (json!({"scopes": ["read"]}), "missing name"),
            (json!({"name": "k"}), "missing scopes"),
            (
                json!({"name": "k", "scopes": "read"}),
                "scopes not an array",
            ),
            (
                json!({"name": "k", "scopes": ["read"], "expires_in_days": 1.5}),
                "fractional days",
            ),
        ] {
            let r = call(&s, "POST", "/api/v1/api-keys", &token, Some(payload));
            assert_eq!(r.status, 400, "{why}");
        }
        assert_eq!(
            sql_rows(&s, "SELECT count(*) AS n FROM api_keys")
                .first()
                .unwrap()
                .i64("n")
                .unwrap(),
            0
        );
    }

    #[test]
    fn a_token_cannot_mint_tokens() {
        let s = TestStores::new();
        let token = admin(&s);
        let full = create(&s, &token, json!({"name": "full", "scopes": ["full"]}))["key"]
            .as_str()
            .unwrap()
            .to_owned();
        let read = create(&s, &token, json!({"name": "read", "scopes": ["read"]}))["key"]
            .as_str()
            .unwrap()
            .to_owned();
        let payload = json!({"name": "child", "scopes": ["full"]});
        let r = call(&s, "POST", "/api/v1/api-keys", &full, Some(payload.clone()));
        assert_eq!(r.status, 403);
        assert_eq!(body(&r)["error"], "login_session_required");
        let r = call(&s, "POST", "/api/v1/api-keys", &read, Some(payload));
        assert_eq!(r.status, 403);
        assert_eq!(body(&r)["error"], "insufficient_scope");
        assert_eq!(
            sql_rows(&s, "SELECT count(*) AS n FROM api_keys")
                .first()
                .unwrap()
                .i64("n")
                .unwrap(),
            2
        );
    }

    #[test]
    fn scopes_are_enforced_through_the_pipeline() {
        let s = TestStores::new();
        let token = admin(&s);
        let read = create(&s, &token, json!({"name": "read", "scopes": ["read"]}))["key"]
            .as_str()
            .unwrap()
            .to_owned();
        let full = create(&s, &token, json!({"name": "full", "scopes": ["full"]}))["key"]
            .as_str()
            .unwrap()
            .to_owned();
        let me = call(&s, "GET", "/api/v1/users/me", &read, None);
        assert_eq!(me.status, 200);
        assert_eq!(body(&me)["username"], "root");
        let r = call(&s, "POST", "/api/v1/auth/mfa/setup", &read, None);
        assert_eq!(r.status, 403);
        assert_eq!(body(&r)["error"], "insufficient_scope");
        // The scope passes; the credential kind does not (MFA enrolment needs a login session).
        let r = call(&s, "POST", "/api/v1/auth/mfa/setup", &full, None);
        assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(body(&r)["error"], "login_session_required");
        // A read key may list and inspect, but not revoke.
        assert_eq!(call(&s, "GET", "/api/v1/api-keys", &read, None).status, 200);
        let id = body(&call(&s, "GET", "/api/v1/api-keys", &read, None))["items"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            call(
                &s,
                "GET",
                &format!("/api/v1/api-keys/{id}/usage"),
                &read,
                None
            )
            .status,
            200
        );
        let r = call(
            &s,
            "POST",
            &format!("/api/v1/api-keys/{id}/revoke"),
            &read,
            None,
        );
        assert_eq!(body(&r)["error"], "insufficient_scope");
    }

    #[test]
    fn list_is_metadata_only_newest_first_and_paginated() {
        let s = TestStores::new();
        let token = admin(&s);
        let mut keys = Vec::new();
        for i in 0..5 {
            keys.push(create(
                &s,
                &token,
                json!({"name": format!("k{i}"), "scopes": ["read"]}),
            ));
            if i % 2 == 0 {
                s.clock.advance(1000);
            }
        }
        let mut seen = Vec::new();
        let mut path = "/api/v1/api-keys?limit=2".to_owned();
        loop {
            let r = call(&s, "GET", &path, &token, None);
            assert_eq!(r.status, 200);
            let text = String::from_utf8_lossy(&r.body).into_owned();
            for k in &keys {
                assert!(
                    !text.contains(k["key"].as_str().unwrap()),
                    "list leaks a key"
                );
            }
            assert!(!text.contains("token_hash"));
            let v = body(&r);
            let items = v["items"].as_array().unwrap();
            assert!(items.len() <= 2);
            for item in items {
                assert_eq!(item["status"], "active");
                assert_eq!(item["use_count"], 0);
                assert!(item["last_used_at"].is_null());
                assert!(item["revoked_at"].is_null());
                assert!(item.get("key").is_none());
                seen.push(item["name"].as_str().unwrap().to_owned());
            }
            match v["next_cursor"].as_str() {
                Some(cursor) => path = format!("/api/v1/api-keys?limit=2&cursor={cursor}"),
                None => break,
            }
        }
        // Pairs share a millisecond (k1/k2, k3/k4): the id breaks ties across page boundaries,
        // nothing is skipped or repeated.
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, ["k0", "k1", "k2", "k3", "k4"]);
        let mut newest = seen[..2].to_vec();
        newest.sort();
        assert_eq!(newest, ["k3", "k4"]);
        assert_eq!(seen[4], "k0");
        let r = call(&s, "GET", "/api/v1/api-keys?cursor=bogus", &token, None);
        assert_eq!(r.status, 400);
        assert_eq!(body(&r)["error"], "invalid_cursor");
    }

    #[test]
    fn revoke_is_idempotent_and_bites_at_once() {
        let s = TestStores::new();
        let token = admin(&s);
        let v = create(&s, &token, json!({"name": "k", "scopes": ["full"]}));
        let (id, key) = (v["id"].as_str().unwrap(), v["key"].as_str().unwrap());
        assert_eq!(call(&s, "GET", "/api/v1/users/me", key, None).status, 200);
        let r = call(
            &s,
            "POST",
            &format!("/api/v1/api-keys/{id}/revoke"),
            &token,
            None,
        );
        assert_eq!(r.status, 200);
        let first = body(&r);
        assert_eq!(first["status"], "revoked");
        assert_eq!(first["use_count"], 1);
        let r = call(&s, "GET", "/api/v1/users/me", key, None);
        assert_eq!(r.status, 401);
        assert_eq!(body(&r)["error"], "invalid_token");
        s.clock.advance(5000);
        let again = body(&call(
            &s,
            "POST",
            &format!("/api/v1/api-keys/{id}/revoke"),
            &token,
            None,
        ));
        assert_eq!(again["revoked_at"], first["revoked_at"]);
        // A revoked key's failed attempts are not counted as uses.
        assert_eq!(again["use_count"], 1);
    }

    #[test]
    fn delete_removes_the_key() {
        let s = TestStores::new();
        let token = admin(&s);
        let v = create(&s, &token, json!({"name": "k", "scopes": ["read"]}));
        let (id, key) = (v["id"].as_str().unwrap(), v["key"].as_str().unwrap());
        assert_eq!(
            call(
                &s,
                "DELETE",
                &format!("/api/v1/api-keys/{id}"),
                &token,
                None
            )
            .status,
            204
        );
        assert_eq!(call(&s, "GET", "/api/v1/users/me", key, None).status, 401);
        let r = call(
            &s,
            "DELETE",
            &format!("/api/v1/api-keys/{id}"),
            &token,
            None,
        );
        assert_eq!(r.status, 404);
        assert_eq!(
            call(
                &s,
                "GET",
                &format!("/api/v1/api-keys/{id}/usage"),
                &token,
                None
            )
            .status,
            404
        );
        assert_eq!(
            call(&s, "DELETE", "/api/v1/api-keys/not-a-uuid", &token, None).status,
            404
        );
    }

    #[test]
    fn usage_counts_each_use() {
        let s = TestStores::new();
        let token = admin(&s);
        let v = create(&s, &token, json!({"name": "k", "scopes": ["read"]}));
        let (id, key) = (v["id"].as_str().unwrap(), v["key"].as_str().unwrap());
        let u = body(&call(
            &s,
            "GET",
            &format!("/api/v1/api-keys/{id}/usage"),
            &token,
            None,
        ));
        assert_eq!(u["use_count"], 0);
        assert!(u["last_used_at"].is_null());
        assert_eq!(u["created_ip"], "203.0.113.7");
        assert_eq!(u["user_agent"], "unit-test/1.0");
        s.clock.advance(60_000);
        for _ in 0..3 {
            assert_eq!(call(&s, "GET", "/api/v1/users/me", key, None).status, 200);
        }
        let used_at = s.clock.now_ms();
        let u = body(&call(
            &s,
            "GET",
            &format!("/api/v1/api-keys/{id}/usage"),
            &token,
            None,
        ));
        assert_eq!(u["id"], id);
        assert_eq!(u["use_count"], 3);
        assert_eq!(u["last_used_at"], Timestamp::from_ms(used_at).to_rfc3339());
        assert!(u.get("key").is_none() && u.get("token_hash").is_none());
    }

    #[test]
    fn expiry_bites_on_the_next_request() {
        let s = TestStores::new();
        let token = admin(&s);
        let v = create(
            &s,
            &token,
            json!({"name": "short", "scopes": ["full"], "expires_in_days": 1}),
        );
        let key = v["key"].as_str().unwrap();
        s.clock.advance(DAY_MS - 1);
        assert_eq!(call(&s, "GET", "/api/v1/users/me", key, None).status, 200);
        s.clock.advance(1);
        let r = call(&s, "GET", "/api/v1/users/me", key, None);
        assert_eq!(r.status, 401);
        assert_eq!(body(&r)["error"], "invalid_token");
        // The login session idled out meanwhile: sign in again to look.
        let token = login(&s, "root");
        let list = body(&call(&s, "GET", "/api/v1/api-keys", &token, None));
        assert_eq!(list["items"][0]["status"], "expired");
        assert_eq!(list["items"][0]["use_count"], 1);
    }

    #[test]
    fn another_users_key_is_not_found() {
        let s = TestStores::new();
        let token = admin(&s);
        let org = sql_rows(&s, "SELECT org_id FROM users")
            .first()
            .unwrap()
            .str("org_id")
            .unwrap()
            .to_owned();
        let v = create(&s, &token, json!({"name": "mine", "scopes": ["read"]}));
        let id = v["id"].as_str().unwrap();
        other_user(&s, "colleague", &org);
        other_user(&s, "outsider-x", "00000000-0000-4000-8000-0000000000ff");
        for name in ["colleague", "outsider-x"] {
            let other = login(&s, name);
            for (method, path) in [
                ("POST", format!("/api/v1/api-keys/{id}/revoke")),
                ("GET", format!("/api/v1/api-keys/{id}/usage")),
                ("DELETE", format!("/api/v1/api-keys/{id}")),
            ] {
                let r = call(&s, method, &path, &other, None);
                assert_eq!(r.status, 404, "{name} {method} {path}");
                assert_eq!(body(&r)["error"], "not_found");
            }
            let list = body(&call(&s, "GET", "/api/v1/api-keys", &other, None));
            assert_eq!(list["items"], json!([]), "{name}");
        }
        let mine = body(&call(
            &s,
            "GET",
            &format!("/api/v1/api-keys/{id}/usage"),
            &token,
            None,
        ));
        assert_eq!(mine["id"], id);
    }

    #[test]
    fn a_disabled_owner_stops_the_key() {
        let s = TestStores::new();
        let token = admin(&s);
        let key = create(&s, &token, json!({"name": "k", "scopes": ["read"]}))["key"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(call(&s, "GET", "/api/v1/users/me", &key, None).status, 200);
        sql_rows(&s, "UPDATE users SET status = 'disabled'");
        let r = call(&s, "GET", "/api/v1/users/me", &key, None);
        assert_eq!(r.status, 401);
        assert_eq!(body(&r)["error"], "user_disabled");
    }

    #[test]
    fn anonymous_callers_are_401() {
        let s = TestStores::new();
        for (method, path) in [
            ("POST", "/api/v1/api-keys"),
            ("GET", "/api/v1/api-keys"),
            (
                "POST",
                "/api/v1/api-keys/00000000-0000-4000-8000-000000000001/revoke",
            ),
            (
                "DELETE",
                "/api/v1/api-keys/00000000-0000-4000-8000-000000000001",
            ),
            (
                "GET",
                "/api/v1/api-keys/00000000-0000-4000-8000-000000000001/usage",
            ),
        ] {
            let r = s.call(&crate::table(), method, path, &[], b"");
            assert_eq!(r.status, 401, "{method} {path}");
        }
    }
}
