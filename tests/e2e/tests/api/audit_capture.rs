//! Audit capture end to end: exactly one row per request, whatever the outcome; a failing audit
//! write fails the request and undoes it; the chain verifies, and tampering is found.

use serde_json::json;

use crate::helpers::{unique, Body, TestApp};
use crate::setup::create_user;

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
    let user_token = create_user(&app, &admin.access, "user", None).token;
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
    assert_eq!(report["complete"], true);
    let position = report["verified_through"].as_i64().unwrap();
    // Someone with the database file changes a row behind the triggers' back. The row was
    // verified already: incremental calls do not recompute it (documented), a full pass does.
    let db = rusqlite::Connection::open(app.database_path().unwrap()).unwrap();
    db.execute_batch(
        "DROP TRIGGER audit_log_no_update; UPDATE audit_log SET status = 204 WHERE seq = 3;",
    )
    .unwrap();
    let report = app
        .authed("GET", "/api/v1/admin/audit/verify", &admin.access)
        .json();
    assert_eq!(report["ok"], true, "{report}");
    let report = app
        .authed("GET", "/api/v1/admin/audit/verify?full=true", &admin.access)
        .json();
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["first_broken"], 3);
    assert_eq!(report["full"], true);
    // A row after the verified position is found by the incremental pass.
    let later = position + 2;
    db.execute("UPDATE audit_log SET status = 299 WHERE seq = ?", [later])
        .unwrap();
    let report = app
        .authed("GET", "/api/v1/admin/audit/verify", &admin.access)
        .json();
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["first_broken"], later);
    // Plain users may not read it; an org's admin may, but not ask for a full pass.
    let user = create_user(&app, &admin.access, "user", None).token;
    assert_eq!(
        app.authed("GET", "/api/v1/admin/audit/verify", &user)
            .status,
        403
    );
    let org_admin = create_user(&app, &admin.access, "admin", None).token;
    assert_eq!(
        app.authed("GET", "/api/v1/admin/audit/verify", &org_admin)
            .status,
        200
    );
    let r = app.authed("GET", "/api/v1/admin/audit/verify?full=true", &org_admin);
    assert_eq!(r.status, 403);
    let r = app.authed(
        "GET",
        "/api/v1/admin/audit/verify?cursor=1.x",
        &admin.access,
    );
    assert_eq!(r.status, 400);
}

#[test]
fn forged_checkpoint_is_detected() {
    let Some(app) = TestApp::spawn_with(&[("audit_key", "e2e audit key, long and secret")]) else {
        return;
    };
    let admin = app.admin();
    for _ in 0..6 {
        app.get("/version");
    }
    let report = app
        .authed("GET", "/api/v1/admin/audit/verify?full=true", &admin.access)
        .json();
    assert_eq!(
        (report["ok"].clone(), report["keyed"].clone()),
        (true.into(), true.into())
    );
    // With write access to the file: delete the oldest rows and write the checkpoint retention
    // would have written, without the key.
    let db = rusqlite::Connection::open(app.database_path().unwrap()).unwrap();
    db.execute_batch(
        "DROP TRIGGER audit_log_no_delete;
         DELETE FROM audit_log WHERE seq < 4;
         INSERT INTO audit_checkpoints (seq, prev_hash, created_at, removed_through, removed_count, mac)
           SELECT seq, prev_hash, 0, 3, 3,
                  '0000000000000000000000000000000000000000000000000000000000000000'
             FROM audit_log WHERE seq = 4;",
    )
    .unwrap();
    for query in ["", "?full=true"] {
        let report = app
            .authed(
                "GET",
                &format!("/api/v1/admin/audit/verify{query}"),
                &admin.access,
            )
            .json();
        assert_eq!(report["ok"], false, "{query}: {report}");
        assert_eq!(report["first_broken"], 4);
        assert_eq!(report["reason"], "checkpoint");
    }
}

#[test]
fn rate_limited_request_audit_names_the_verified_user() {
    let Some(app) = TestApp::spawn_with(&[("rate_limit_api_per_minute", "5")]) else {
        return;
    };
    let admin = app.admin();
    let auth = format!("Bearer {}", admin.access);
    let mut limited = None;
    for _ in 0..20 {
        let id = unique("limited");
        let r = app.request(
            "GET",
            "/api/v1/users/me",
            &[("authorization", &auth), ("x-request-id", &id)],
            Body::Empty,
        );
        if r.status == 429 {
            limited = Some(r.header("x-request-id").unwrap().to_owned());
            break;
        }
    }
    let id = limited.expect("the limit answers 429");
    let db = rusqlite::Connection::open(app.database_path().unwrap()).unwrap();
    let (status, principal, user_id, org_id): (
        i64,
        Option<String>,
        Option<String>,
        Option<String>,
    ) = db
        .query_row(
            "SELECT status, principal, user_id, org_id FROM audit_log WHERE request_id = ?",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(status, 429);
    assert_eq!(principal, Some(format!("user:{}", admin.user_id)));
    assert_eq!(user_id.as_deref(), Some(admin.user_id.as_str()));
    assert_eq!(org_id.as_deref(), Some(admin.org_id.as_str()));
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
