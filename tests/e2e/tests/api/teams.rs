//! Teams end to end: org admins create teams, team admins manage them, members hold their team
//! role's permissions, and a team of another org answers 404 (never 403).

use serde_json::{json, Value};

use crate::helpers::{expect_error, text, unique, Resp, TestApp};
use crate::setup::{create_org, create_user};

const ALL_PERMISSIONS: [&str; 6] = [
    "sessions.view",
    "sessions.create",
    "sessions.delete",
    "sessions.share",
    "team.manage",
    "team.billing",
];

fn create_team(app: &TestApp, token: &str, name: &str) -> Value {
    let r = app.json(
        "POST",
        "/api/v1/teams",
        Some(token),
        &json!({"name": name, "description": "the team"}),
    );
    assert_eq!(r.status, 201, "create team: {}", text(&r));
    r.json()
}

fn add_member(app: &TestApp, token: &str, team: &str, user: &str, role: &str) -> Resp {
    app.json(
        "POST",
        &format!("/api/v1/teams/{team}/members"),
        Some(token),
        &json!({"user_id": user, "role": role}),
    )
}

#[test]
fn admins_create_read_rename_and_delete_teams() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let name = unique("Platform Team");
    let team = create_team(&app, &admin.access, &format!("  {name}  "));
    let id = team["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 36);
    assert_eq!(team["name"], name.as_str(), "the name is trimmed");
    assert_eq!(team["description"], "the team");
    assert_eq!(team["org_id"], admin.org_id.as_str());
    assert_eq!(team["member_count"], 0);
    assert!(team["created_at"].as_str().unwrap().ends_with('Z'));

    let got = app.authed("GET", &format!("/api/v1/teams/{id}"), &admin.access);
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["name"], name.as_str());

    let dup = app.json(
        "POST",
        "/api/v1/teams",
        Some(&admin.access),
        &json!({"name": name}),
    );
    expect_error(&dup, 409, "team_exists");

    let renamed = format!("{name} renamed");
    let r = app.json(
        "PATCH",
        &format!("/api/v1/teams/{id}"),
        Some(&admin.access),
        &json!({"name": renamed, "description": ""}),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.json()["name"], renamed.as_str());
    assert_eq!(r.json()["description"], "");
    let other = create_team(&app, &admin.access, &unique("Other"));
    let clash = app.json(
        "PATCH",
        &format!("/api/v1/teams/{id}"),
        Some(&admin.access),
        &json!({"name": other["name"]}),
    );
    expect_error(&clash, 409, "team_exists");
    let same = app.json(
        "PATCH",
        &format!("/api/v1/teams/{id}"),
        Some(&admin.access),
        &json!({"name": renamed}),
    );
    assert_eq!(
        same.status,
        200,
        "renaming to its own name is fine: {}",
        text(&same)
    );

    let del = app.authed("DELETE", &format!("/api/v1/teams/{id}"), &admin.access);
    assert_eq!(del.status, 204, "{}", text(&del));
    expect_error(
        &app.authed("GET", &format!("/api/v1/teams/{id}"), &admin.access),
        404,
        "not_found",
    );
    expect_error(
        &app.authed("DELETE", &format!("/api/v1/teams/{id}"), &admin.access),
        404,
        "not_found",
    );
    // The name is free again.
    create_team(&app, &admin.access, &renamed);
}

#[test]
fn team_input_is_validated() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let cases = [
        (json!({"name": ""}), "invalid_field"),
        (json!({"name": "   "}), "invalid_field"),
        (json!({"name": "x".repeat(101)}), "invalid_field"),
        (json!({"name": "bad\u{7}name"}), "invalid_field"),
        (
            json!({"name": "ok", "description": "d".repeat(1001)}),
            "invalid_field",
        ),
        (json!({"name": "ok", "owner": "me"}), "unknown_field"),
        (json!({"description": "no name"}), "invalid_field"),
        (json!({"name": 5}), "invalid_field"),
    ];
    for (body, code) in cases {
        let r = app.json("POST", "/api/v1/teams", Some(&admin.access), &body);
        assert_eq!(r.status, 400, "{body}: {}", text(&r));
        assert_eq!(r.error_code(), code, "{body}");
    }
    let longest = unique("n");
    let longest = format!("{longest}{}", "x".repeat(100 - longest.len()));
    let team = create_team(&app, &admin.access, &longest);
    let id = team["id"].as_str().unwrap();
    let r = app.json(
        "PATCH",
        &format!("/api/v1/teams/{id}"),
        Some(&admin.access),
        &json!({"name": ""}),
    );
    expect_error(&r, 400, "invalid_field");
    let r = app.json(
        "PATCH",
        &format!("/api/v1/teams/{id}"),
        Some(&admin.access),
        &json!({"members": []}),
    );
    expect_error(&r, 400, "unknown_field");
    let r = add_member(&app, &admin.access, id, &admin.user_id, "owner");
    expect_error(&r, 400, "invalid_field");
    let r = app.json(
        "POST",
        &format!("/api/v1/teams/{id}/members"),
        Some(&admin.access),
        &json!({"user_id": admin.user_id}),
    );
    expect_error(&r, 400, "invalid_field");
}

#[test]
fn only_org_admins_create_teams_and_every_org_user_lists_them() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let user = create_user(&app, &admin.access, "user", None);
    let r = app.json(
        "POST",
        "/api/v1/teams",
        Some(&user.token),
        &json!({"name": unique("nope")}),
    );
    expect_error(&r, 403, "forbidden");
    let operator = create_user(&app, &admin.access, "operator", None);
    let r = app.json(
        "POST",
        "/api/v1/teams",
        Some(&operator.token),
        &json!({"name": unique("nope")}),
    );
    expect_error(&r, 403, "forbidden");
    expect_error(&app.get("/api/v1/teams"), 401, "unauthenticated");

    let names: Vec<String> = (0..3).map(|i| unique(&format!("list{i}"))).collect();
    let ids: Vec<String> = names
        .iter()
        .map(|n| {
            create_team(&app, &admin.access, n)["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    // Paging with limit=1 walks the whole list exactly once, in name order.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/teams?limit=1&cursor={c}"),
            None => "/api/v1/teams?limit=1".to_owned(),
        };
        let page = app.authed("GET", &path, &user.token);
        assert_eq!(page.status, 200, "{}", text(&page));
        let page = page.json();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 1);
        seen.extend(items.iter().map(|t| t["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(seen.len() < 10_000, "paging does not end");
    }
    for id in &ids {
        assert_eq!(
            seen.iter().filter(|s| *s == id).count(),
            1,
            "{id} listed once"
        );
    }
    let mut sorted = seen.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len());
    let r = app.authed("GET", "/api/v1/teams?cursor=!!!", &user.token);
    expect_error(&r, 400, "invalid_cursor");
    // Any user of the org reads a team.
    assert_eq!(
        app.authed("GET", &format!("/api/v1/teams/{}", ids[0]), &user.token)
            .status,
        200
    );
}

#[test]
fn team_roles_grant_their_permissions() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let lead = create_user(&app, &admin.access, "user", None);
    let member = create_user(&app, &admin.access, "user", None);
    let viewer = create_user(&app, &admin.access, "user", None);
    let outsider = create_user(&app, &admin.access, "user", None);
    let team = create_team(&app, &admin.access, &unique("roles"));
    let id = team["id"].as_str().unwrap().to_owned();

    let r = add_member(&app, &admin.access, &id, &lead.id, "admin");
    assert_eq!(r.status, 201, "{}", text(&r));
    let m = r.json();
    assert_eq!(m["team_id"], id.as_str());
    assert_eq!(m["user_id"], lead.id.as_str());
    assert_eq!(m["role"], "admin");
    assert!(m["username"].as_str().is_some());
    expect_error(
        &add_member(&app, &admin.access, &id, &lead.id, "member"),
        409,
        "already_member",
    );
    expect_error(
        &add_member(
            &app,
            &admin.access,
            &id,
            "00000000-0000-4000-8000-000000000000",
            "member",
        ),
        404,
        "not_found",
    );

    // A team admin manages members; a plain member does not.
    let r = add_member(&app, &lead.token, &id, &member.id, "member");
    assert_eq!(r.status, 201, "{}", text(&r));
    expect_error(
        &add_member(&app, &member.token, &id, &viewer.id, "viewer"),
        403,
        "forbidden",
    );
    let r = add_member(&app, &lead.token, &id, &viewer.id, "member");
    assert_eq!(r.status, 201);
    let r = app.json(
        "PATCH",
        &format!("/api/v1/teams/{id}/members/{}", viewer.id),
        Some(&lead.token),
        &json!({"role": "viewer"}),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.json()["role"], "viewer");
    let r = app.json(
        "PATCH",
        &format!("/api/v1/teams/{id}/members/{}", viewer.id),
        Some(&member.token),
        &json!({"role": "admin"}),
    );
    expect_error(&r, 403, "forbidden");
    let r = app.json(
        "PATCH",
        &format!("/api/v1/teams/{id}/members/{}", outsider.id),
        Some(&lead.token),
        &json!({"role": "viewer"}),
    );
    expect_error(&r, 404, "not_found");

    let perms = |token: &str| {
        let r = app.authed("GET", &format!("/api/v1/teams/{id}/my-permissions"), token);
        assert_eq!(r.status, 200, "{}", text(&r));
        r.json()
    };
    let p = perms(&lead.token);
    assert_eq!(p["team_id"], id.as_str());
    assert_eq!(p["role"], "admin");
    assert_eq!(p["permissions"], json!(ALL_PERMISSIONS));
    let p = perms(&member.token);
    assert_eq!(p["role"], "member");
    assert_eq!(
        p["permissions"],
        json!(["sessions.view", "sessions.create", "sessions.share"])
    );
    let p = perms(&viewer.token);
    assert_eq!(p["role"], "viewer");
    assert_eq!(p["permissions"], json!(["sessions.view"]));
    let p = perms(&outsider.token);
    assert_eq!(p["role"], Value::Null);
    assert_eq!(p["permissions"], json!([]));
    let p = perms(&admin.access);
    assert_eq!(p["role"], Value::Null);
    assert_eq!(
        p["permissions"],
        json!(ALL_PERMISSIONS),
        "an org admin holds every permission"
    );

    // Members (any role) and org admins list members; other users of the org may not.
    for token in [&admin.access, &lead.token, &member.token, &viewer.token] {
        let r = app.authed("GET", &format!("/api/v1/teams/{id}/members"), token);
        assert_eq!(r.status, 200, "{}", text(&r));
        let items = r.json()["items"].as_array().unwrap().clone();
        assert_eq!(items.len(), 3);
    }
    let page = app
        .authed(
            "GET",
            &format!("/api/v1/teams/{id}/members?limit=2"),
            &viewer.token,
        )
        .json();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let rest = app
        .authed(
            "GET",
            &format!("/api/v1/teams/{id}/members?limit=2&cursor={cursor}"),
            &viewer.token,
        )
        .json();
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next_cursor"], Value::Null);
    expect_error(
        &app.authed(
            "GET",
            &format!("/api/v1/teams/{id}/members"),
            &outsider.token,
        ),
        403,
        "forbidden",
    );

    // my-teams: literal beats `{id}`, and shows the caller's role.
    let mine = app.authed("GET", "/api/v1/teams/my-teams", &member.token);
    assert_eq!(mine.status, 200, "{}", text(&mine));
    let mine = mine.json();
    let entry = mine["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(entry["role"], "member");
    assert_eq!(entry["member_count"], 3);
    assert_eq!(
        app.authed("GET", "/api/v1/teams/my-teams", &outsider.token)
            .json()["items"],
        json!([])
    );

    // Team settings: the team admin may, a member may not.
    let r = app.json(
        "PATCH",
        &format!("/api/v1/teams/{id}"),
        Some(&member.token),
        &json!({"description": "mine now"}),
    );
    expect_error(&r, 403, "forbidden");
    let r = app.json(
        "PATCH",
        &format!("/api/v1/teams/{id}"),
        Some(&lead.token),
        &json!({"description": "led"}),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.json()["description"], "led");
    expect_error(
        &app.authed("DELETE", &format!("/api/v1/teams/{id}"), &member.token),
        403,
        "forbidden",
    );

    // Removing: a member cannot remove others but may leave; the team admin removes anyone.
    expect_error(
        &app.authed(
            "DELETE",
            &format!("/api/v1/teams/{id}/members/{}", viewer.id),
            &member.token,
        ),
        403,
        "forbidden",
    );
    assert_eq!(
        app.authed(
            "DELETE",
            &format!("/api/v1/teams/{id}/members/{}", member.id),
            &member.token
        )
        .status,
        204
    );
    assert_eq!(perms(&member.token)["permissions"], json!([]));
    assert_eq!(
        app.authed(
            "DELETE",
            &format!("/api/v1/teams/{id}/members/{}", viewer.id),
            &lead.token
        )
        .status,
        204
    );
    expect_error(
        &app.authed(
            "DELETE",
            &format!("/api/v1/teams/{id}/members/{}", viewer.id),
            &lead.token,
        ),
        404,
        "not_found",
    );

    // The team admin deletes the team; its memberships go with it.
    assert_eq!(
        app.authed("DELETE", &format!("/api/v1/teams/{id}"), &lead.token)
            .status,
        204
    );
    let mine = app
        .authed("GET", "/api/v1/teams/my-teams", &lead.token)
        .json();
    assert!(!mine["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["id"] == id.as_str()));
    expect_error(
        &app.authed(
            "GET",
            &format!("/api/v1/teams/{id}/my-permissions"),
            &lead.token,
        ),
        404,
        "not_found",
    );
}

#[test]
fn a_foreign_orgs_team_answers_404() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let team = create_team(&app, &admin.access, &unique("home"));
    let id = team["id"].as_str().unwrap().to_owned();
    let home_user = create_user(&app, &admin.access, "user", None);
    assert_eq!(
        add_member(&app, &admin.access, &id, &home_user.id, "member").status,
        201
    );

    let org_id = create_org(&app, &admin.access);
    let foreign_admin = create_user(&app, &admin.access, "admin", Some(&org_id));
    let foreign_user = create_user(&app, &admin.access, "user", Some(&org_id));

    for (method, path) in [
        ("GET", format!("/api/v1/teams/{id}")),
        ("DELETE", format!("/api/v1/teams/{id}")),
        ("GET", format!("/api/v1/teams/{id}/members")),
        ("GET", format!("/api/v1/teams/{id}/my-permissions")),
        (
            "DELETE",
            format!("/api/v1/teams/{id}/members/{}", home_user.id),
        ),
    ] {
        for token in [&foreign_admin.token, &foreign_user.token] {
            expect_error(&app.authed(method, &path, token), 404, "not_found");
        }
    }
    let r = app.json(
        "PATCH",
        &format!("/api/v1/teams/{id}"),
        Some(&foreign_admin.token),
        &json!({"name": "taken over"}),
    );
    expect_error(&r, 404, "not_found");
    expect_error(
        &add_member(&app, &foreign_admin.token, &id, &foreign_user.id, "admin"),
        404,
        "not_found",
    );
    let r = app.json(
        "PATCH",
        &format!("/api/v1/teams/{id}/members/{}", home_user.id),
        Some(&foreign_admin.token),
        &json!({"role": "viewer"}),
    );
    expect_error(&r, 404, "not_found");

    // The foreign org's lists do not show it; its own team of the same name is fine.
    let list = app
        .authed("GET", "/api/v1/teams?limit=200", &foreign_admin.token)
        .json();
    assert!(!list["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["id"] == id.as_str()));
    let twin = create_team(&app, &foreign_admin.token, team["name"].as_str().unwrap());
    assert_eq!(twin["org_id"], org_id.as_str());
    let twin_id = twin["id"].as_str().unwrap();

    // A user of another org cannot be added to a team (404 user), either way round.
    expect_error(
        &add_member(&app, &admin.access, &id, &foreign_user.id, "member"),
        404,
        "not_found",
    );
    expect_error(
        &add_member(&app, &foreign_admin.token, twin_id, &home_user.id, "member"),
        404,
        "not_found",
    );

    // The home team is untouched.
    let members = app
        .authed("GET", &format!("/api/v1/teams/{id}/members"), &admin.access)
        .json();
    assert_eq!(members["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        app.authed("GET", &format!("/api/v1/teams/{id}"), &admin.access)
            .json()["name"],
        team["name"]
    );
}
