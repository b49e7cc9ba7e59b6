//! Regression tests for what Schemathesis (`scripts/fuzz-contract`) found where the API disagreed
//! with its OpenAPI document: each is named after the disagreement it prevents.

use serde_json::json;

use crate::helpers::{expect_error, Body, TestApp};

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// An empty query value means the same as leaving the parameter out, on every route: an enum,
/// a number or a boolean given as `name=` is not refused.
#[test]
fn an_empty_query_value_is_the_same_as_leaving_it_out() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let auth = bearer(&admin.access);
    for path in [
        "/api/v1/templates?sort=&limit=&enabled=&app_type=",
        "/api/v1/sessions?scope=&include_terminated=&limit=",
        "/api/v1/catalog/templates?featured=&sort=&tag=",
        "/api/v1/metrics?format=",
        "/api/v1/users?limit=&cursor=",
    ] {
        let r = app.request("GET", path, &[("authorization", &auth)], Body::Empty);
        assert_eq!(
            r.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
}

/// A query value outside the documented enum is refused, never read as the default.
#[test]
fn a_query_value_outside_its_enum_is_refused_not_ignored() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let auth = bearer(&admin.access);
    for path in [
        "/api/v1/sessions?scope=everyone",
        "/api/v1/sessions?user=someone-else&scope=all",
        "/api/v1/sessions?include_terminated=yes",
        "/api/v1/metrics?format=xml",
        "/api/v1/catalog/templates?featured=1",
        "/api/v1/templates?sort=random",
    ] {
        let r = app.request("GET", path, &[("authorization", &auth)], Body::Empty);
        expect_error(&r, 400, "invalid_query");
    }
}

/// Every request body is a JSON object: serde would fill a struct from an array
/// (`[null, null]` took `PATCH /users/{id}` to 200), so any other JSON value is a 400.
#[test]
fn a_body_that_is_not_a_json_object_is_refused() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let auth = bearer(&admin.access);
    let path = format!("/api/v1/users/{}", admin.user_id);
    for body in ["[null, null]", "[\"a@example.com\"]", "\"x\"", "7", "null"] {
        let r = app.request(
            "PATCH",
            &path,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            Body::Bytes(body.as_bytes().to_vec()),
        );
        expect_error(&r, 400, "invalid_json");
    }
}

/// JSON Schema counts `90.0` as an integer: an integer field takes it.
#[test]
fn an_integral_float_fills_an_integer_field() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let r = app.json(
        "POST",
        "/api/v1/admin/audit/retention",
        Some(&admin.access),
        &json!({"older_than_days": 3650.0}),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["older_than_days"], 3650);
    let r = app.json(
        "POST",
        "/api/v1/admin/audit/retention",
        Some(&admin.access),
        &json!({"older_than_days": 90.5}),
    );
    expect_error(&r, 400, "invalid_field");
}

/// An optional body member given as `null` is the same as leaving it out (the document says
/// every optional member is nullable).
#[test]
fn a_null_optional_member_is_the_same_as_leaving_it_out() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let r = app.json(
        "POST",
        "/api/v1/teams",
        Some(&admin.access),
        &json!({"name": "nullable", "description": null}),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let r = app.json(
        "POST",
        "/api/v1/admin/agents",
        Some(&admin.access),
        &json!({"name": "nullable-agent", "platform": "kubernetes", "region": null}),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
}

/// A control character anywhere in an org name is refused, even where trimming would have
/// removed it (the document's pattern refuses it, so the server must too).
#[test]
fn a_control_character_around_a_name_is_refused_not_trimmed_away() {
    let app = TestApp::spawn();
    let admin = app.admin();
    for (path, body) in [
        ("/api/v1/orgs", json!({"name": "\tTabbed Org"})),
        ("/api/v1/teams", json!({"name": "team\n"})),
        (
            "/api/v1/teams",
            json!({"name": "described", "description": "\u{9a}ok"}),
        ),
    ] {
        let r = app.json("POST", path, Some(&admin.access), &body);
        expect_error(&r, 400, "invalid_field");
    }
}
