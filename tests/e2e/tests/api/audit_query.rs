//! The audit log's query API end to end: every request leaves a row (`action` = `<METHOD> <route
//! pattern>`, `request_id` = the `X-Request-ID`), which admins and auditors read with filters and
//! cursor pages, export as NDJSON or CSV, count in stats, and purge (platform admin) — org-scoped.
//!
//! Rows are found by request ids and user ids this test chose or created, so the suite also runs
//! against a shared server (`E2E_BASE_URL`).

use serde_json::{json, Value};

use crate::helpers::{unique, Body, Resp, TestApp};
use crate::setup::{create_org, create_user, User};

const AUDIT: &str = "/api/v1/admin/audit";

/// A request with our own request id (and optionally a JSON body and extra headers).
fn with_id(
    app: &TestApp,
    method: &str,
    path: &str,
    token: &str,
    request_id: &str,
    body: Option<&Value>,
    extra: &[(&str, &str)],
) -> Resp {
    let auth = format!("Bearer {token}");
    let mut headers = vec![
        ("authorization", auth.as_str()),
        ("x-request-id", request_id),
    ];
    headers.extend_from_slice(extra);
    let body = match body {
        Some(b) => {
            headers.push(("content-type", "application/json"));
            Body::Bytes(b.to_string().into_bytes())
        }
        None => Body::Empty,
    };
    let r = app.request(method, path, &headers, body);
    assert_eq!(r.header("x-request-id"), Some(request_id));
    r
}

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().expect("items").clone()
}

/// The one event of `request_id`, as `token` sees it.
fn event_of(app: &TestApp, token: &str, request_id: &str) -> Value {
    let r = app.authed("GET", &format!("{AUDIT}?request_id={request_id}"), token);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let list = items(&r.json());
    assert_eq!(list.len(), 1, "one row per request id: {list:?}");
    list[0].clone()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[test]
fn requests_are_queryable_with_filters_and_cursor_pages() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let started = now_ms() - 60_000;
    let created_rid = unique("rid-create");
    let username = unique("audited");
    let r = with_id(
        &app,
        "POST",
        "/api/v1/users",
        &admin.access,
        &created_rid,
        Some(
            &json!({"username": username, "email": format!("{username}@example.com"), "password": "a long enough password 42"}),
        ),
        &[],
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let missing_rid = unique("rid-missing");
    let r = with_id(
        &app,
        "GET",
        "/api/v1/users/00000000-0000-4000-8000-000000000000",
        &admin.access,
        &missing_rid,
        None,
        &[],
    );
    assert_eq!(r.status, 404);

    let e = event_of(&app, &admin.access, &created_rid);
    assert_eq!(e["action"], "POST /api/v1/users");
    assert_eq!(e["method"], "POST");
    assert_eq!(e["path"], "/api/v1/users");
    assert_eq!(e["status"], 201);
    assert_eq!(e["request_id"], created_rid.as_str());
    assert_eq!(e["user_id"], admin.user_id.as_str());
    assert_eq!(e["org_id"], admin.org_id.as_str());
    assert!(e["seq"].as_i64().unwrap() > 0);
    assert!(e["hash"].as_str().unwrap().len() >= 32);
    assert!(e["ts_ms"].as_i64().unwrap() >= started);
    // One event by id.
    let one = app.authed(
        "GET",
        &format!("{AUDIT}/{}", e["id"].as_str().unwrap()),
        &admin.access,
    );
    assert_eq!(one.status, 200);
    assert_eq!(one.json(), e);
    assert_eq!(
        app.authed("GET", &format!("{AUDIT}/no-such-event"), &admin.access)
            .status,
        404
    );

    let missing = event_of(&app, &admin.access, &missing_rid);
    assert_eq!(missing["action"], "GET /api/v1/users/{id}");
    assert_eq!(missing["status"], 404);
    // Status exact and by class, action, user, time window.
    let count = |query: &str| -> usize {
        let r = app.authed("GET", &format!("{AUDIT}?{query}"), &admin.access);
        assert_eq!(
            r.status,
            200,
            "{query}: {}",
            String::from_utf8_lossy(&r.body)
        );
        items(&r.json()).len()
    };
    assert_eq!(count(&format!("request_id={missing_rid}&status=4xx")), 1);
    assert_eq!(count(&format!("request_id={missing_rid}&status=404")), 1);
    assert_eq!(count(&format!("request_id={missing_rid}&status=2xx")), 0);
    assert_eq!(
        count(&format!(
            "request_id={created_rid}&action=POST%20%2Fapi%2Fv1%2Fusers&user_id={}",
            admin.user_id
        )),
        1
    );
    assert_eq!(
        count(&format!(
            "request_id={created_rid}&action=GET%20%2Fapi%2Fv1%2Fusers"
        )),
        0
    );
    assert_eq!(
        count(&format!("request_id={created_rid}&since={started}")),
        1
    );
    assert_eq!(
        count(&format!("request_id={created_rid}&until={started}")),
        0
    );
    assert_eq!(
        count(&format!(
            "request_id={created_rid}&since=2000-01-01T00:00:00Z"
        )),
        1
    );
    for bad in ["status=9xx", "since=yesterday", "bogus=1"] {
        assert_eq!(
            app.authed("GET", &format!("{AUDIT}?{bad}"), &admin.access)
                .status,
            400,
            "{bad}"
        );
    }

    // A fresh user's three reads, paged two at a time, newest first.
    let User {
        id: user_id, token, ..
    } = create_user(&app, &admin.access, "user", None);
    for _ in 0..3 {
        assert_eq!(app.authed("GET", "/api/v1/users/me", &token).status, 200);
    }
    let base = format!("{AUDIT}?user_id={user_id}&action=GET%20%2Fapi%2Fv1%2Fusers%2Fme&limit=2");
    let p1 = app.authed("GET", &base, &admin.access).json();
    let cursor = p1["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_owned();
    let p2 = app
        .authed("GET", &format!("{base}&cursor={cursor}"), &admin.access)
        .json();
    assert_eq!(p2["next_cursor"], Value::Null);
    let seqs: Vec<i64> = items(&p1)
        .iter()
        .chain(items(&p2).iter())
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs.len(), 3);
    assert!(
        seqs.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seqs:?}"
    );
}

#[test]
fn org_scoping_and_who_may_read() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let org_b = create_org(&app, &admin.access);
    let admin_b = create_user(&app, &admin.access, "admin", Some(&org_b)).token;
    let auditor = create_user(&app, &admin.access, "auditor", None).token;
    let plain = create_user(&app, &admin.access, "user", None).token;

    let rid = unique("rid-home");
    assert_eq!(
        with_id(&app, "GET", "/api/v1/users", &admin.access, &rid, None, &[]).status,
        200
    );
    let home_event = event_of(&app, &admin.access, &rid);

    // The other org's admin sees none of it: not in lists, 404 by id and when naming the org.
    let r = app.authed("GET", &format!("{AUDIT}?request_id={rid}"), &admin_b);
    assert_eq!(r.status, 200);
    assert!(items(&r.json()).is_empty());
    let r = app.authed(
        "GET",
        &format!("{AUDIT}/{}", home_event["id"].as_str().unwrap()),
        &admin_b,
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "not_found");
    assert_eq!(
        app.authed("GET", &format!("{AUDIT}?org_id={}", admin.org_id), &admin_b)
            .status,
        404
    );
    let own = app
        .authed("GET", &format!("{AUDIT}?limit=200"), &admin_b)
        .json();
    assert!(!items(&own).is_empty(), "org B's own requests are there");
    // Its own actors' events, and the platform admin's actions inside org B (creating its admin).
    assert!(items(&own)
        .iter()
        .all(|e| e["org_id"] == org_b.as_str() || e["target_org_id"] == org_b.as_str()));
    // The platform admin may name org B.
    let theirs = app.authed(
        "GET",
        &format!("{AUDIT}?org_id={org_b}&limit=200"),
        &admin.access,
    );
    assert_eq!(theirs.status, 200);
    assert!(items(&theirs.json())
        .iter()
        .all(|e| e["org_id"] == org_b.as_str() || e["target_org_id"] == org_b.as_str()));

    // Auditors read (and their reading is itself audited); plain users do not.
    let read_rid = unique("rid-read");
    let r = with_id(
        &app,
        "GET",
        &format!("{AUDIT}?request_id={rid}"),
        &auditor,
        &read_rid,
        None,
        &[],
    );
    assert_eq!(r.status, 200);
    assert_eq!(items(&r.json()).len(), 1);
    let read = event_of(&app, &admin.access, &read_rid);
    assert_eq!(read["action"], "GET /api/v1/admin/audit");
    for path in [
        AUDIT.to_owned(),
        format!("{AUDIT}/stats"),
        format!("{AUDIT}/export"),
        format!("{AUDIT}/{}", home_event["id"].as_str().unwrap()),
    ] {
        let r = app.authed("GET", &path, &plain);
        assert_eq!(r.status, 403, "{path}");
        assert_eq!(app.get(&path).status, 401, "{path}");
    }
    // A denied read is audited too.
    let denied_rid = unique("rid-denied");
    assert_eq!(
        with_id(&app, "GET", AUDIT, &plain, &denied_rid, None, &[]).status,
        403
    );
    // (Seen through the platform admin's every-org view: whether a refused request is
    // attributed to the caller's org is the capture's business.)
    let denied = app
        .authed(
            "GET",
            &format!("{AUDIT}?org_id=*&request_id={denied_rid}"),
            &admin.access,
        )
        .json();
    assert_eq!(items(&denied).len(), 1, "{denied}");
    assert_eq!(denied["items"][0]["status"], 403);
    assert_eq!(denied["items"][0]["error"], "forbidden");
}

#[test]
fn platform_admin_action_in_other_org_is_recorded_with_target_org() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let (org_b, org_c) = (
        create_org(&app, &admin.access),
        create_org(&app, &admin.access),
    );
    let admin_b = create_user(&app, &admin.access, "admin", Some(&org_b)).token;
    let admin_c = create_user(&app, &admin.access, "admin", Some(&org_c)).token;
    // The platform admin creates a user inside org B, then changes it.
    let username = unique("target");
    let create_rid = unique("rid-target-create");
    let r = with_id(
        &app,
        "POST",
        "/api/v1/users",
        &admin.access,
        &create_rid,
        Some(
            &json!({"username": username, "email": format!("{username}@example.com"),
                     "password": "a long enough password 42", "org_id": org_b}),
        ),
        &[],
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let user_b = r.json()["id"].as_str().unwrap().to_owned();
    let patch_rid = unique("rid-target-patch");
    let r = with_id(
        &app,
        "PATCH",
        &format!("/api/v1/users/{user_b}"),
        &admin.access,
        &patch_rid,
        Some(&json!({"role": "operator"})),
        &[],
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    for rid in [&create_rid, &patch_rid] {
        // Org B's admin sees the platform admin's action in their org, by filter and by id …
        let event = event_of(&app, &admin_b, rid);
        assert_eq!(event["user_id"], admin.user_id.as_str(), "the actor");
        assert_eq!(event["org_id"], admin.org_id.as_str(), "the actor's org");
        assert_eq!(event["target_org_id"], org_b.as_str(), "the org acted on");
        let by_id = app.authed(
            "GET",
            &format!("{AUDIT}/{}", event["id"].as_str().unwrap()),
            &admin_b,
        );
        assert_eq!(by_id.status, 200);
        // … an unrelated org's admin does not.
        let r = app.authed("GET", &format!("{AUDIT}?request_id={rid}"), &admin_c);
        assert!(items(&r.json()).is_empty());
        // The platform admin's own org still lists it.
        assert_eq!(event_of(&app, &admin.access, rid)["id"], event["id"]);
    }
    // An action in one's own org names no target.
    let own_rid = unique("rid-own");
    with_id(&app, "GET", "/api/v1/users", &admin_b, &own_rid, None, &[]);
    assert_eq!(
        event_of(&app, &admin_b, &own_rid)["target_org_id"],
        Value::Null
    );
    // The chain (with the new field hashed) still verifies.
    let v = app
        .authed("GET", &format!("{AUDIT}/verify?full=true"), &admin.access)
        .json();
    assert_eq!(v["ok"], true, "{v}");
}

#[test]
fn export_as_ndjson_and_csv_in_bounded_pieces() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let User {
        id: user_id, token, ..
    } = create_user(&app, &admin.access, "user", None);
    let formula_rid = unique("rid-formula");
    for i in 0..3 {
        let rid = if i == 0 {
            formula_rid.clone()
        } else {
            unique("rid-export")
        };
        let r = with_id(
            &app,
            "GET",
            "/api/v1/users/me",
            &token,
            &rid,
            None,
            &[("user-agent", "=cmd|' /C calc'!A0")],
        );
        assert_eq!(r.status, 200);
    }
    let filter = format!("user_id={user_id}&action=GET%20%2Fapi%2Fv1%2Fusers%2Fme");

    // NDJSON, one row per call, oldest first, continued with after_seq.
    let mut seqs = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = format!("{AUDIT}/export?format=ndjson&limit=1&{filter}");
        if let Some(a) = &after {
            path.push_str(&format!("&after_seq={a}"));
        }
        let r = app.authed("GET", &path, &admin.access);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
        for line in String::from_utf8(r.body.clone()).unwrap().lines() {
            let e: Value = serde_json::from_str(line).unwrap();
            assert_eq!(e["user_id"], user_id.as_str());
            seqs.push(e["seq"].as_i64().unwrap());
        }
        match r.header("x-next-after-seq") {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
        assert!(seqs.len() <= 3, "continuation ends");
    }
    assert_eq!(seqs.len(), 3);
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "oldest first: {seqs:?}"
    );

    // CSV: a header row, RFC 4180 quoting, formula cells defused.
    let r = app.authed(
        "GET",
        &format!("{AUDIT}/export?format=csv&{filter}"),
        &admin.access,
    );
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/csv"));
    let text = String::from_utf8(r.body.clone()).unwrap();
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with("seq,id,request_id,ts,"));
    let formula_line = lines.iter().find(|l| l.contains(&formula_rid)).unwrap();
    assert!(
        formula_line.contains(",'=cmd|' /C calc'!A0,"),
        "{formula_line}"
    );
    assert!(!formula_line.contains(",=cmd"));
    assert_eq!(
        app.authed("GET", &format!("{AUDIT}/export?format=xml"), &admin.access)
            .status,
        400
    );
}

#[test]
fn stats_count_actions_classes_and_failed_logins() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let User {
        token: auditor,
        username,
        ..
    } = create_user(&app, &admin.access, "auditor", None);
    for _ in 0..2 {
        let r = app.json(
            "POST",
            "/api/v1/auth/login",
            None,
            &json!({"username": username, "password": "not the password at all"}),
        );
        assert_eq!(r.status, 401);
    }
    // Failed logins carry no principal; the platform admin sees every org's (and no org's) events.
    let r = app.authed("GET", &format!("{AUDIT}/stats?org_id=*"), &admin.access);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert!(v["failed_logins_last_hour"].as_i64().unwrap() >= 2, "{v}");
    assert!(
        v["by_action"]["POST /api/v1/auth/login"].as_i64().unwrap() >= 2,
        "{v}"
    );
    assert!(v["by_status_class"]["4xx"].as_i64().unwrap() >= 2, "{v}");
    assert!(v["by_status_class"]["2xx"].as_i64().unwrap() >= 1, "{v}");
    assert!(v["by_resource_type"].is_object());
    assert!(v["total"].as_i64().unwrap() >= 4);
    // The auditor's view is its org's.
    let r = app.authed(
        "GET",
        &format!("{AUDIT}/stats?since=2000-01-01T00:00:00Z"),
        &auditor,
    );
    assert_eq!(r.status, 200);
    let mine = r.json();
    assert!(
        mine["by_action"]["POST /api/v1/users"].as_i64().unwrap() >= 1,
        "{mine}"
    );
    assert_eq!(mine["since"], "2000-01-01T00:00:00.000Z");
    assert_eq!(
        app.authed("GET", &format!("{AUDIT}/stats?since=soon"), &auditor)
            .status,
        400
    );
}

#[test]
fn retention_is_the_platform_admins_and_keeps_the_chain_verifiable() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let org_admin = create_user(&app, &admin.access, "admin", None).token;
    let auditor = create_user(&app, &admin.access, "auditor", None).token;
    let path = format!("{AUDIT}/retention");
    for token in [&org_admin, &auditor] {
        let r = app.json("POST", &path, Some(token), &json!({"older_than_days": 30}));
        assert_eq!(r.status, 403);
    }
    for bad in [
        json!({"older_than_days": 0}),
        json!({"older_than_days": 3651}),
        json!({"days": 5}),
    ] {
        let r = app.json("POST", &path, Some(&admin.access), &bad);
        assert_eq!(r.status, 400, "{bad}");
    }
    // Everything here is recent: nothing to purge, and the chain still verifies.
    let r = app.json(
        "POST",
        &path,
        Some(&admin.access),
        &json!({"older_than_days": 1}),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["older_than_days"], 1);
    assert_eq!(v["kept_tail"], false);
    let r = app.json("POST", &path, Some(&admin.access), &json!({}));
    assert_eq!(r.json()["older_than_days"], 90);
    let verify = app.authed("GET", &format!("{AUDIT}/verify"), &admin.access);
    assert_eq!(verify.status, 200);
    assert_eq!(verify.json()["ok"], true);
}
