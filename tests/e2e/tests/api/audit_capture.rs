//! Audit capture end to end: exactly one row per request, whatever the outcome; a failing audit
//! write fails the request and undoes it; the chain verifies, and tampering is found.

use serde_json::json;

use crate::helpers::{unique, Body, TestApp};

fn rows_for(app: &TestApp, request_ids: &[String]) -> Vec<(String, i64)> {
    let db = rusqlite::Connection::open(app.database_path().unwrap()).unwrap();
    let mut out = Vec::new();
    for id in request_ids {
        let mut stmt = db
            .prepare("SELECT request_id, status FROM audit_log WHERE request_id = ?")
            .unwrap();
        let rows: Vec<(String, i64)> = stmt
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        out.extend(rows);
    }
    out
}

#[test]
fn a_burst_of_mixed_requests_yields_exactly_one_row_each() {
    let Some(app) = TestApp::spawn_with(&[("rate_limit_api_per_minute", "30")]) else {
        return;
    };
    let admin = app.admin();
    let auth = format!("Bearer {}", admin.access);
    let (_, user_token, _) = crate::users::create_user(&app, &admin.access, "user", None);
    let user_auth = format!("Bearer {user_token}");
    let mut ids = Vec::new();
    let mut statuses = Vec::new();
    let mut send = |method: &str, path: &str, headers: &[(&str, &str)], body: Body| {
        let id = unique("burst");
        let mut all = vec![("x-request-id", id.as_str())];
        all.extend_from_slice(headers);
        let r = app.request(method, path, &all, body);
        statuses.push(r.status);
        ids.push(r.header("x-request-id").unwrap().to_owned());
    };
    send(
        "GET",
        "/api/v1/users/me",
        &[("authorization", &auth)],
        Body::Empty,
    ); // 200
    send("GET", "/api/v1/users/me", &[], Body::Empty); // 401
    send(
        "GET",
        "/api/v1/orgs",
        &[("authorization", "Bearer garbage")],
        Body::Empty,
    ); // 401
    send("GET", "/api/v1/auth/nope", &[], Body::Empty); // 404
    send(
        "GET",
        "/api/v1/users",
        &[("authorization", &user_auth)],
        Body::Empty,
    ); // 403
    send(
        "POST",
        "/api/v1/sessions",
        &[("content-type", "application/json")],
        Body::Declared(6 * 1024 * 1024),
    ); // 413
    send("TRACE", "/version", &[], Body::Empty); // 405
    let user = json!({"username": unique("audited"), "email": format!("{}@example.com", unique("a")), "password": "a long enough password 42"});
    send(
        "POST",
        "/api/v1/users",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        Body::Bytes(user.to_string().into_bytes()),
    ); // 201
    for _ in 0..30 {
        send("GET", "/version", &[], Body::Empty); // 200 … then 429
    }
    assert!(
        statuses.contains(&429)
            && statuses.contains(&413)
            && statuses.contains(&404)
            && statuses.contains(&401),
        "{statuses:?}"
    );
    let rows = rows_for(&app, &ids);
    assert_eq!(rows.len(), ids.len(), "one row per request");
    for ((id, status), (row_id, row_status)) in ids.iter().zip(&statuses).zip(&rows) {
        assert_eq!((id, i64::from(*status)), (row_id, *row_status));
    }
}

#[test]
fn the_chain_verifies_and_tampering_is_found() {
    let Some(app) = TestApp::spawn_with(&[]) else {
        return;
    };
    let admin = app.admin();
    for _ in 0..5 {
        app.get("/version");
    }
    let v = app.authed("GET", "/api/v1/admin/audit/verify", &admin.access);
    assert_eq!(v.status, 200, "{}", String::from_utf8_lossy(&v.body));
    let report = v.json();
    assert_eq!(report["ok"], true);
    assert!(report["checked"].as_u64().unwrap() >= 6);
    assert_eq!(report["keyed"], false);
    // Someone with the database file changes a row behind the triggers' back.
    let db = rusqlite::Connection::open(app.database_path().unwrap()).unwrap();
    db.execute_batch(
        "DROP TRIGGER audit_log_no_update; UPDATE audit_log SET status = 204 WHERE seq = 3;",
    )
    .unwrap();
    let report = app
        .authed("GET", "/api/v1/admin/audit/verify", &admin.access)
        .json();
    assert_eq!(report["ok"], false);
    assert_eq!(report["first_broken"], 3);
    // Plain users may not read it.
    let (_, user, _) = crate::users::create_user(&app, &admin.access, "user", None);
    assert_eq!(
        app.authed("GET", "/api/v1/admin/audit/verify", &user)
            .status,
        403
    );
}

#[test]
fn a_failing_audit_write_fails_the_request_and_changes_nothing() {
    let Some(app) = TestApp::spawn_with(&[]) else {
        return;
    };
    let admin = app.admin();
    let db = rusqlite::Connection::open(app.database_path().unwrap()).unwrap();
    db.execute_batch("CREATE TRIGGER fail_audit BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'injected'); END;").unwrap();
    let name = unique("agent");
    let r = app.json(
        "POST",
        "/api/v1/admin/agents",
        Some(&admin.access),
        &json!({"name": name, "platform": "k8s"}),
    );
    assert_eq!(r.status, 503);
    assert_eq!(r.error_code(), "service_unavailable");
    db.execute_batch("DROP TRIGGER fail_audit;").unwrap();
    let n: i64 = db
        .query_row("SELECT count(*) FROM agents WHERE name = ?", [&name], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(n, 0, "the agent was not created unaudited");
}

#[test]
fn bodies_are_recorded_redacted_when_enabled() {
    let Some(app) = TestApp::spawn_with(&[("log_bodies", "true")]) else {
        return;
    };
    let _ = app.admin();
    let r = app.request(
        "POST",
        "/api/v1/auth/login",
        &[
            ("content-type", "application/json"),
            ("x-request-id", "body-probe-1"),
        ],
        Body::Bytes(
            json!({"username": "e2e-admin", "password": "not the password at all"})
                .to_string()
                .into_bytes(),
        ),
    );
    assert_eq!(r.status, 401);
    let db = rusqlite::Connection::open(app.database_path().unwrap()).unwrap();
    let body: String = db
        .query_row(
            "SELECT body FROM audit_log WHERE request_id = 'body-probe-1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["username"], "e2e-admin");
    assert_eq!(v["password"], "[REDACTED]");
    assert!(!body.contains("not the password"));
}
