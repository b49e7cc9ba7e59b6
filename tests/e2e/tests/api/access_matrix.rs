//! Every route's access rule, proven over HTTP from the route tables themselves (issue 9, "Prove
//! the access rules from the route table").
//!
//! The matrix is generated, not listed: each route of the five components' tables is called with
//! every credential its declared [`Access`] must refuse, so a new route is covered the moment it is
//! added to a table. What the tables cannot say is stated here, and a route that needs one of
//! these statements fails the test until someone writes it:
//! - `Access::Optional` routes authorize in their handler: each one names its rule in
//!   [`HANDLER_RULES`].
//! - A path parameter needs a real resource of a second org to prove org scoping: each parameter
//!   kind (the literal segments before it) names its fixture in [`World::foreign_id`].
//!
//! The cells (one request each; all failures are collected and reported together):
//! - routes needing a user (`User`, `AnyRole`, `PlatformAdmin`): 401 for no credential, a garbage
//!   bearer, an expired access token, a revoked one (after logout), a refresh token, an agent key
//!   and an unknown `ssp_` key used as bearer, a disabled user's access token and personal access
//!   token, and a valid agent key (`X-Agent-API-Key`) on a user route;
//! - `AnyRole`: 403 `forbidden` for a full-scope login of every role of the same org not listed;
//!   `PlatformAdmin`: 403 for every role of the same org (an org admin included) and for the admin
//!   of a second org;
//! - every route that looks at user credentials (`Optional` too): 403 `insufficient_scope` for a
//!   read-only personal access token (of a user the role rule admits) on unsafe methods and
//!   wherever the route demands `full`;
//! - every route with a path parameter that a user may call (`User`, `AnyRole`): 404 `not_found`
//!   for the first org's admin (not the platform admin) given the second org's ids;
//! - agent routes: 401 for no key, a garbage key, a deleted agent's key and a user's bearer token;
//!   403 for another agent's key (same org and a second org) and, on `/agents/{id}/…`, for an
//!   `agent_id` query naming another agent than the path.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use shared::auth::{Role, Scope};
use shared::{Access, Route};

use crate::helpers::{text, Body, Resp, Session, TestApp};
use crate::setup::{create_agent, create_org, create_pat, create_user, Agent, User};

/// Routes declared `Access::Optional` decide in their handler who may call them; the table cannot
/// say, so each states its rule here as the `Access` it must behave like (method, pattern, rule,
/// why). A new `Optional` route fails the matrix until it is listed.
const HANDLER_RULES: &[(&str, &str, Access, &str)] = &[
    (
        "POST",
        "/api/v1/admin/maintenance/purge",
        // Without a credential it takes the maintenance token; among users only the platform admin
        // may purge, since the purge spans every org (issue 9, item 6).
        Access::PlatformAdmin,
        "the maintenance token or the platform admin",
    ),
    (
        "POST",
        "/api/v1/catalog/sync/pending",
        // The sync drain spans every org's repositories, like the purge (SPEC-wave2 §2.3).
        Access::PlatformAdmin,
        "the maintenance token or the platform admin",
    ),
];

const ALL_ROLES: [Role; 4] = [Role::Admin, Role::Operator, Role::User, Role::Auditor];

/// An id that no fixture has, for paths whose parameter kind has no fixture (already a failure).
const NO_FIXTURE: &str = "00000000-0000-4000-8000-000000000000";

/// How the request presents itself.
#[derive(Clone)]
struct Cred {
    label: String,
    headers: Vec<(&'static str, String)>,
    /// Extra query parameters (`agent_id=…`).
    query: Vec<(&'static str, String)>,
}

impl Cred {
    fn none(label: &str) -> Cred {
        Cred {
            label: label.to_owned(),
            headers: Vec::new(),
            query: Vec::new(),
        }
    }

    fn bearer(label: &str, token: &str) -> Cred {
        Cred::none(label).header("authorization", format!("Bearer {token}"))
    }

    fn agent(label: &str, key: &str) -> Cred {
        Cred::none(label).header("x-agent-api-key", key.to_owned())
    }

    fn header(mut self, name: &'static str, value: String) -> Cred {
        self.headers.push((name, value));
        self
    }

    fn query(mut self, name: &'static str, value: &str) -> Cred {
        self.query.push((name, value.to_owned()));
        self
    }
}

/// What a cell must answer: a status and one of these error codes (empty: any code).
struct Expect {
    status: u16,
    codes: &'static [&'static str],
}

const fn expect(status: u16, codes: &'static [&'static str]) -> Expect {
    Expect { status, codes }
}

/// One request of the matrix.
struct Cell {
    cred: Cred,
    /// Path ids for the route's parameters; `agent` overrides the `{id}` of agent routes.
    agent: Option<String>,
    expect: Expect,
}

/// Everything the matrix calls with: two orgs, users of every role, broken credentials, agents,
/// and real resources of the second org.
struct World {
    app: TestApp,
    /// The platform admin (org A, created by setup).
    platform: Session,
    /// Full-scope login tokens of org A users (not the platform admin), by role.
    org_a: BTreeMap<&'static str, String>,
    /// The admin of org B.
    b_admin: String,
    /// Read-only personal access tokens, by owner (`platform` or an org A role).
    read_pats: BTreeMap<&'static str, String>,
    /// Credentials every user route refuses with 401, with the codes allowed.
    bad_user_creds: Vec<(Cred, &'static [&'static str])>,
    /// Agents: two of org A, one of org B, one deleted (id, key).
    agent_a1: Agent,
    agent_a2: Agent,
    agent_b: Agent,
    agent_deleted: Agent,
    /// Ids of org B's resources, by parameter kind.
    foreign: BTreeMap<&'static str, String>,
}

impl World {
    /// The id of the second org's resource for a parameter kind: the two literal segments before
    /// the parameter (`teams/members` for `/teams/{id}/members/{user_id}`). A kind without an
    /// entry here is a failure: add a fixture (create the resource in org B in `World::build`).
    fn foreign_id(&self, kind: &str) -> Option<&str> {
        self.foreign.get(kind).map(String::as_str)
    }

    fn build() -> World {
        // A fake GitHub, so org B's repository can sync a catalog template (the fixture of the
        // catalog browse routes).
        let github = e2e::github_fixture::GitHubFixture::start().expect("fixture GitHub");
        let github_origin = github.origin();
        let app = TestApp::spawn_tuned(&[
            ("github_api_url", github_origin.as_str()),
            ("github_raw_url", github_origin.as_str()),
            ("github_api_origin", github_origin.as_str()),
            ("github_raw_origin", github_origin.as_str()),
            ("rate_limit_api_per_minute", "1000000"),
            ("rate_limit_login_per_minute", "100000"),
            ("rate_limit_login_per_hour", "100000"),
            ("rate_limit_login_ip_per_minute", "100000"),
            ("rate_limit_login_ip_per_hour", "100000"),
            ("rate_limit_mint_per_minute", "100000"),
            ("rate_limit_mfa_per_minute", "100000"),
            ("rate_limit_agent_per_minute", "100000"),
            ("max_login_sessions", "100"),
            // Repositories get webhook secrets, so org B can own a webhook delivery.
            (
                "repository_secret_key",
                "8f4c1b2a9d0e7f6a5b4c3d2e1f00112233445566778899aabbccddeeff001122",
            ),
        ]);
        let platform = app.admin();

        // Org A: one user of every role, and an admin who is then disabled.
        let mut org_a = BTreeMap::new();
        for role in ALL_ROLES {
            let token = create_user(&app, &platform.access, role.as_str(), None).token;
            org_a.insert(role.as_str(), token);
        }
        let User {
            id: disabled_id,
            token: disabled_access,
            ..
        } = create_user(&app, &platform.access, "admin", None);
        let disabled_pat = create_pat(&app, &disabled_access, "full");
        let r = app.json(
            "PATCH",
            &format!("/api/v1/users/{disabled_id}"),
            Some(&platform.access),
            &json!({"status": "disabled"}),
        );
        assert_eq!(r.status, 200, "disable: {}", text(&r));

        // The platform admin's broken credentials: an expired access token, a revoked one.
        let expired = app.admin();
        let expired_ok = crate::helpers::expire_access_token(&app, &expired.access);
        let revoked = app.admin();
        let r = app.json(
            "POST",
            "/api/v1/auth/logout",
            Some(&revoked.access),
            &json!({}),
        );
        assert_eq!(r.status, 204, "logout: {}", text(&r));

        // Agents.
        let agent_a1 = create_agent(&app, &platform.access);
        let agent_a2 = create_agent(&app, &platform.access);
        let agent_deleted = create_agent(&app, &platform.access);
        let r = app.authed(
            "DELETE",
            &format!("/api/v1/admin/agents/{}", agent_deleted.id),
            &platform.access,
        );
        assert_eq!(r.status, 204, "delete agent: {}", text(&r));

        // Org B and its resources.
        let org_b = create_org(&app, &platform.access);
        let b_admin = create_user(&app, &platform.access, "admin", Some(&org_b)).token;
        let User {
            id: b_member_id,
            token: b_member,
            ..
        } = create_user(&app, &platform.access, "user", Some(&org_b));
        let r = app.json(
            "POST",
            "/api/v1/teams",
            Some(&b_admin),
            &json!({"name": crate::helpers::unique("matrix-team")}),
        );
        assert_eq!(r.status, 201, "create team: {}", text(&r));
        let team_b = r.json()["id"].as_str().unwrap().to_owned();
        let r = app.json(
            "POST",
            &format!("/api/v1/teams/{team_b}/members"),
            Some(&b_admin),
            &json!({"user_id": b_member_id, "role": "member"}),
        );
        assert_eq!(r.status, 201, "add member: {}", text(&r));
        let r = app.json(
            "POST",
            "/api/v1/api-keys",
            Some(&b_member),
            &json!({"name": "matrix", "scopes": ["read"]}),
        );
        assert_eq!(r.status, 201, "create key: {}", text(&r));
        let key_b = r.json()["id"].as_str().unwrap().to_owned();
        let agent_b = create_agent(&app, &b_admin);
        let sessions = app.authed("GET", "/api/v1/auth/sessions", &b_member).json();
        let session_b = sessions["items"][0]["id"]
            .as_str()
            .expect("org B member's login session")
            .to_owned();
        let events = app
            .authed("GET", "/api/v1/admin/audit?limit=50", &b_admin)
            .json();
        let event_b = events["items"]
            .as_array()
            .and_then(|items| {
                items
                    .iter()
                    .find(|e| e["org_id"] == org_b.as_str())
                    .and_then(|e| e["id"].as_str())
            })
            .expect("an audit event of org B")
            .to_owned();

        let r = app.json(
            "POST",
            "/api/v1/templates",
            Some(&b_admin),
            &json!({"name": crate::helpers::unique("matrix-tpl"), "display_name": "Matrix",
                    "base_image": "nginx:1.27"}),
        );
        assert_eq!(r.status, 201, "create template: {}", text(&r));
        let template_b = r.json()["id"].as_str().unwrap().to_owned();
        // A streaming session of org B on its (registered, heartbeating) agent, and the start
        // command that agent has leased.
        let r = agent_b.post(
            &app,
            &format!("/api/v1/agents/register?agent_id={}", agent_b.id),
            &json!({}),
        );
        assert_eq!(r.status, 200, "register org B's agent: {}", text(&r));
        let r = app.json(
            "POST",
            "/api/v1/sessions",
            Some(&b_admin),
            &json!({"template_id": template_b}),
        );
        assert_eq!(r.status, 202, "create session: {}", text(&r));
        let stream_b = r.json()["id"].as_str().unwrap().to_owned();
        let command_b = r.json()["command_id"].as_str().unwrap().to_owned();
        let r = agent_b.get(&app, &format!("/api/v1/agents/{}/commands", agent_b.id));
        assert_eq!(r.status, 200, "poll: {}", text(&r));
        assert_eq!(r.json()["items"][0]["command_id"], command_b.as_str());

        // A catalog repository of org B, with its own webhook secret.
        let r = app.json(
            "POST",
            "/api/v1/catalog/repositories",
            Some(&b_admin),
            &json!({"name": crate::helpers::unique("matrix-repo"),
                    "url": format!("https://github.com/matrix/{}", crate::helpers::unique("repo"))}),
        );
        assert_eq!(r.status, 201, "create repository: {}", text(&r));
        let repository_b = r.json()["id"].as_str().unwrap().to_owned();
        // … and a webhook delivery of org B (a signed ping to its repository's route).
        let webhook_secret_b = r.json()["webhook_secret"].as_str().unwrap().to_owned();
        let ping = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
        let r = app.request(
            "POST",
            &format!("/api/v1/webhooks/github/{repository_b}"),
            &[
                ("content-type", "application/json"),
                ("x-github-event", "ping"),
                ("x-github-delivery", "matrix-ping-1"),
                (
                    "x-hub-signature-256",
                    &crate::webhooks::github_signature(&webhook_secret_b, ping),
                ),
            ],
            Body::Bytes(ping.to_vec()),
        );
        assert_eq!(r.status, 200, "ping: {}", text(&r));
        let r = app.authed("GET", "/api/v1/admin/webhooks/deliveries", &b_admin);
        let delivery_b = r.json()["items"][0]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("org B's delivery: {}", text(&r)))
            .to_owned();
        // … synced from the fake GitHub: one catalog template of org B.
        let catalog_repo = crate::helpers::unique("catalog");
        github.set_files(
            "matrix",
            &catalog_repo,
            "main",
            &[(
                "apps/matrix.yaml",
                e2e::github_fixture::FixtureFile {
                    content: b"apiVersion: stream.space/v1alpha1\nkind: Template\nmetadata:\n  name: matrix-app\nspec:\n  displayName: Matrix\n  baseImage: nginx:1.27\n".to_vec(),
                    mode: "100644",
                },
            )],
        );
        let r = app.json(
            "POST",
            "/api/v1/catalog/repositories",
            Some(&b_admin),
            &json!({"name": crate::helpers::unique("matrix-catalog"),
                    "url": format!("https://github.com/matrix/{catalog_repo}")}),
        );
        assert_eq!(r.status, 201, "create repository: {}", text(&r));
        let catalog_repo_id = r.json()["id"].as_str().unwrap().to_owned();
        let r = app.json(
            "POST",
            &format!("/api/v1/catalog/repositories/{catalog_repo_id}/sync"),
            Some(&b_admin),
            &json!({}),
        );
        assert_eq!(r.status, 200, "sync: {}", text(&r));
        let r = app.authed(
            "GET",
            &format!("/api/v1/catalog/templates?repository_id={catalog_repo_id}"),
            &b_admin,
        );
        assert_eq!(r.status, 200, "catalog: {}", text(&r));
        let catalog_template_b = r.json()["items"][0]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("a synced catalog template: {}", text(&r)))
            .to_owned();

        let foreign = BTreeMap::from([
            ("catalog/repositories", repository_b.clone()),
            ("webhooks/github", repository_b),
            // Any source name: the route is public (the signature is the credential).
            ("webhooks/standard", "matrix".to_owned()),
            ("webhooks/deliveries", delivery_b),
            ("catalog/templates", catalog_template_b),
            ("v1/templates", template_b.clone()),
            ("preferences/favorites", template_b),
            ("v1/users", b_member_id.clone()),
            ("quotas/users", b_member_id.clone()),
            ("v1/sessions", stream_b.clone()),
            ("agents/sessions", stream_b),
            ("agents/commands", command_b),
            ("teams/members", b_member_id),
            ("v1/teams", team_b),
            ("v1/api-keys", key_b),
            ("admin/agents", agent_b.id.clone()),
            // Agent routes take the agent of each cell; other parameters use org B's agent.
            ("v1/agents", agent_b.id.clone()),
            ("auth/sessions", session_b),
            ("admin/audit", event_b),
            ("v1/orgs", org_b),
        ]);

        // Read-only personal access tokens: the platform admin's, and one per org A role.
        let mut read_pats = BTreeMap::new();
        read_pats.insert("platform", create_pat(&app, &platform.access, "read"));
        for (role, token) in &org_a {
            read_pats.insert(*role, create_pat(&app, token, "read"));
        }

        let unknown_pat = format!("ssp_{}", "A".repeat(43));
        let mut bad_user_creds: Vec<(Cred, &'static [&'static str])> = vec![
            (Cred::none("no credential"), &["unauthenticated"]),
            (
                Cred::bearer("garbage bearer", "not-a-token"),
                &["invalid_token"],
            ),
            (
                Cred::bearer("revoked access token (after logout)", &revoked.access),
                &["invalid_token"],
            ),
            (
                Cred::bearer("refresh token as bearer (ssr_)", &platform.refresh),
                &["invalid_token"],
            ),
            (
                Cred::bearer("unknown personal access token (ssp_)", &unknown_pat),
                &["invalid_token"],
            ),
            (
                Cred::bearer("agent key as bearer", &agent_a1.key),
                &["invalid_token"],
            ),
            (
                // Disabling ends the user's login sessions, so the token is simply dead.
                Cred::bearer("disabled user's access token", &disabled_access),
                &["invalid_token", "user_disabled"],
            ),
            (
                // Whether disabling also revokes the user's keys or the owner check refuses them.
                Cred::bearer("disabled user's personal access token", &disabled_pat),
                &["user_disabled", "invalid_token"],
            ),
            (
                Cred::agent("agent key on a user route", &agent_a1.key)
                    .query("agent_id", &agent_a1.id),
                &["unauthenticated"],
            ),
        ];
        if expired_ok {
            bad_user_creds.push((
                Cred::bearer("expired access token", &expired.access),
                &["invalid_token"],
            ));
        } else {
            eprintln!("note: the database is out of reach, so the expired-token cells are skipped");
        }

        World {
            app,
            platform,
            org_a,
            b_admin,
            read_pats,
            bad_user_creds,
            agent_a1,
            agent_a2,
            agent_b,
            agent_deleted,
            foreign,
        }
    }
}

fn safe(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS")
}

/// The route's path parameters with their kinds: the two literal segments before each.
fn params_of(pattern: &str) -> Vec<(&str, String)> {
    let mut literals: Vec<&str> = Vec::new();
    let mut params = Vec::new();
    for seg in pattern.split('/').filter(|s| !s.is_empty()) {
        if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let n = literals.len();
            let kind = literals[n.saturating_sub(2)..].join("/");
            params.push((name, kind));
        } else {
            literals.push(seg);
        }
    }
    params
}

/// A failure for each path parameter of the route whose kind has no fixture in `foreign`.
fn missing_fixtures(foreign: &BTreeMap<&'static str, String>, route: &Route) -> Vec<String> {
    params_of(route.pattern)
        .into_iter()
        .filter(|(_, kind)| !foreign.contains_key(kind.as_str()))
        .map(|(name, kind)| {
            format!(
                "{} {}: no fixture for path parameter `{{{name}}}` of kind `{kind}`: create such a \
                 resource in the second org in World::build and add it to `foreign` \
                 (tests/e2e/tests/api/access_matrix.rs)",
                route.method, route.pattern
            )
        })
        .collect()
}

/// The rule the route must behave like, and whether its handler (not the pipeline) enforces it.
fn rule_of(route: &Route) -> Result<Access, String> {
    if route.access != Access::Optional {
        return Ok(route.access);
    }
    HANDLER_RULES
        .iter()
        .find(|(m, p, _, _)| *m == route.method.as_str() && *p == route.pattern)
        .map(|(_, _, rule, _)| *rule)
        .ok_or_else(|| {
            format!(
                "{} {} is Access::Optional, so its handler decides who may call it: state its rule \
                 in HANDLER_RULES (tests/e2e/tests/api/access_matrix.rs)",
                route.method, route.pattern
            )
        })
}

fn role_token(world: &World, role: Role) -> &str {
    world.org_a[role.as_str()].as_str()
}

/// The cells of one route, from its declared access.
fn cells_of(world: &World, route: &Route, rule: Access) -> Vec<Cell> {
    let method = route.method.as_str();
    let mut cells = Vec::new();
    let user_cell = |cred: Cred, expect: Expect| Cell {
        cred,
        agent: None,
        expect,
    };
    let needs_user = matches!(
        rule,
        Access::User | Access::AnyRole(_) | Access::PlatformAdmin
    );
    if needs_user {
        // An Optional route's handler sees an invalid credential as none.
        let handler_decides = route.access == Access::Optional;
        for (cred, codes) in &world.bad_user_creds {
            let codes: &'static [&'static str] = if handler_decides {
                &["unauthenticated"]
            } else {
                codes
            };
            cells.push(user_cell(cred.clone(), expect(401, codes)));
        }
    }
    match rule {
        Access::AnyRole(roles) => {
            for role in ALL_ROLES.into_iter().filter(|r| !roles.contains(r)) {
                cells.push(user_cell(
                    Cred::bearer(
                        &format!("{} of the same org", role.as_str()),
                        role_token(world, role),
                    ),
                    expect(403, &["forbidden"]),
                ));
            }
        }
        Access::PlatformAdmin => {
            for role in ALL_ROLES {
                cells.push(user_cell(
                    Cred::bearer(
                        &format!("{} of the platform admin's org", role.as_str()),
                        role_token(world, role),
                    ),
                    expect(403, &["forbidden"]),
                ));
            }
            cells.push(user_cell(
                Cred::bearer("admin of a second org", &world.b_admin),
                expect(403, &["forbidden"]),
            ));
        }
        Access::Public
        | Access::Optional
        | Access::User
        | Access::Agent
        | Access::AgentOptional => {}
    }
    // Scopes apply on every route that looks at user credentials, Optional ones included. The
    // token belongs to a user the role rule admits, so only the scope can refuse it.
    let looks_at_users = needs_user || route.access == Access::Optional;
    let needs_full = !safe(method) || route.required_scope(&route.method) == Scope::Full;
    if looks_at_users && needs_full {
        let owner = match rule {
            Access::AnyRole(roles) if !roles.contains(&Role::Admin) => {
                roles.first().map_or("platform", |r| r.as_str())
            }
            _ => "platform",
        };
        cells.push(user_cell(
            Cred::bearer(
                &format!("read-only personal access token ({owner})"),
                &world.read_pats[owner],
            ),
            expect(403, &["insufficient_scope"]),
        ));
    }
    // Org scoping: the first org's admin (not the platform admin) with the second org's ids.
    // PlatformAdmin routes are excluded: the platform admin acts across orgs by design, and
    // everyone else gets 403 there (cells above). Agent routes: the path id is what the key is
    // bound to, proven by the 403 cells below.
    let scoped = matches!(rule, Access::User | Access::AnyRole(_));
    if scoped && !params_of(route.pattern).is_empty() {
        let role = match rule {
            Access::AnyRole(roles) if !roles.contains(&Role::Admin) => {
                roles.first().copied().unwrap_or(Role::Admin)
            }
            _ => Role::Admin,
        };
        cells.push(user_cell(
            Cred::bearer(
                &format!("{} of the first org, second org's ids", role.as_str()),
                role_token(world, role),
            ),
            expect(404, &["not_found"]),
        ));
    }
    if rule == Access::Agent {
        let a1 = &world.agent_a1.id;
        let (a2, key_a2) = (&world.agent_a2.id, &world.agent_a2.key);
        let has_id = params_of(route.pattern).iter().any(|(n, _)| *n == "id");
        let agent_cell = |cred: Cred, agent: &str, expect: Expect| Cell {
            cred: if has_id {
                cred
            } else {
                cred.query("agent_id", agent)
            },
            agent: Some(agent.to_owned()),
            expect,
        };
        cells.push(agent_cell(
            Cred::none("no agent key"),
            a1,
            expect(401, &["agent_credentials_required"]),
        ));
        cells.push(agent_cell(
            Cred::agent("garbage agent key", "not-a-key"),
            a1,
            expect(401, &["invalid_agent_key"]),
        ));
        cells.push(agent_cell(
            Cred::agent("deleted agent's key", &world.agent_deleted.key),
            &world.agent_deleted.id,
            expect(401, &["invalid_agent_key"]),
        ));
        cells.push(agent_cell(
            Cred::bearer("user's bearer token", &world.platform.access),
            a1,
            expect(401, &["agent_credentials_required"]),
        ));
        cells.push(agent_cell(
            Cred::agent("another agent's key (same org)", key_a2),
            a1,
            expect(403, &["agent_key_mismatch"]),
        ));
        cells.push(agent_cell(
            Cred::agent("another org's agent's key", &world.agent_b.key),
            a1,
            expect(403, &["agent_key_mismatch"]),
        ));
        if has_id {
            // The path id is the only id on `/agents/{id}/…`; a differing `agent_id` query is
            // refused (issue 9, item 7), whether as such or as a key of another agent.
            cells.push(agent_cell(
                Cred::agent(
                    "key of the agent named by ?agent_id, path names another",
                    key_a2,
                )
                .query("agent_id", a2),
                a1,
                expect(403, &["agent_id_mismatch", "agent_key_mismatch"]),
            ));
        }
    }
    cells
}

fn path_of(world: &World, route: &Route, cell: &Cell) -> String {
    let mut path = String::new();
    let params = params_of(route.pattern);
    let mut next = params.iter();
    for seg in route.pattern.split('/').skip(1) {
        path.push('/');
        if seg.starts_with('{') {
            let (name, kind) = next.next().expect("parameter");
            let id = match (&cell.agent, *name) {
                (Some(agent), "id") => agent.as_str(),
                _ => world.foreign_id(kind).unwrap_or(NO_FIXTURE),
            };
            path.push_str(id);
        } else {
            path.push_str(seg);
        }
    }
    let query: Vec<String> = cell
        .cred
        .query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !query.is_empty() {
        path.push('?');
        path.push_str(&query.join("&"));
    }
    path
}

fn call(app: &TestApp, method: &str, path: &str, cred: &Cred) -> Resp {
    let mut headers: Vec<(&str, &str)> =
        cred.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // Unsafe methods carry a valid JSON body, so only the access layer can refuse.
    let body = if safe(method) {
        Body::Empty
    } else {
        headers.push(("content-type", "application/json"));
        Body::Bytes(b"{}".to_vec())
    };
    app.request(method, path, &headers, body)
}

fn error_code(r: &Resp) -> String {
    serde_json::from_slice::<Value>(&r.body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| {
            format!(
                "<no envelope: {}>",
                text(r).chars().take(80).collect::<String>()
            )
        })
}

#[test]
fn every_route_refuses_what_its_declared_access_refuses() {
    let world = World::build();
    let tables = [
        ("audit", streamspace_audit::table()),
        ("auth", streamspace_auth::table()),
        ("sessions", streamspace_sessions::table()),
        ("catalog", streamspace_catalog::table()),
        ("webhooks", streamspace_webhooks::table()),
    ];
    let mut failures: Vec<String> = Vec::new();
    let (mut routes, mut checked) = (0usize, 0usize);
    for (component, table) in &tables {
        for route in table.routes() {
            routes += 1;
            let method = route.method.as_str();
            failures.extend(
                missing_fixtures(&world.foreign, route)
                    .into_iter()
                    .map(|m| format!("{m} ({component})")),
            );
            let rule = match rule_of(route) {
                Ok(rule) => rule,
                Err(message) => {
                    failures.push(message);
                    continue;
                }
            };
            for cell in cells_of(&world, route, rule) {
                checked += 1;
                let path = path_of(&world, route, &cell);
                let r = call(&world.app, method, &path, &cell.cred);
                let code = error_code(&r);
                let ok = r.status == cell.expect.status
                    && (cell.expect.codes.is_empty() || cell.expect.codes.contains(&code.as_str()));
                if !ok {
                    failures.push(format!(
                        "{method} {} [{}]: expected {} {}, got {} {code} ({path})",
                        route.pattern,
                        cell.cred.label,
                        cell.expect.status,
                        if cell.expect.codes.is_empty() {
                            "(any code)".to_owned()
                        } else {
                            cell.expect.codes.join("|")
                        },
                        r.status,
                    ));
                }
            }
        }
    }
    eprintln!("access matrix: {routes} routes, {checked} cells");
    assert!(routes > 0 && checked > 0, "the route tables are empty");
    assert!(
        failures.is_empty(),
        "{} of {checked} access cells failed:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

/// The matrix's own guards, without a server: what the tables cannot describe must fail it.
#[test]
fn a_route_the_matrix_cannot_describe_fails_it() {
    async fn nothing(_cx: shared::Cx) -> shared::ApiResult<shared::Response> {
        Ok(shared::Response::no_content())
    }
    assert_eq!(
        params_of("/api/v1/teams/{id}/members/{user_id}"),
        vec![
            ("id", "v1/teams".to_owned()),
            ("user_id", "teams/members".to_owned())
        ]
    );
    let foreign = BTreeMap::from([("v1/teams", "t".to_owned())]);
    // A new kind of id (a streaming session, say) has no fixture yet: named, not skipped.
    let route = Route::get("/api/v1/sessions/{id}", Access::User, nothing);
    let missing = missing_fixtures(&foreign, &route);
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert!(
        missing[0].contains("`{id}` of kind `v1/sessions`"),
        "{missing:?}"
    );
    assert!(missing_fixtures(
        &foreign,
        &Route::get("/api/v1/teams/{id}", Access::User, nothing)
    )
    .is_empty());
    // A new Optional route: its handler decides, so the matrix needs its rule stated.
    let route = Route::post("/api/v1/admin/new-job", Access::Optional, nothing);
    let err = rule_of(&route).expect_err("an unlisted Optional route has no rule");
    assert!(err.contains("HANDLER_RULES"), "{err}");
    let purge = Route::post("/api/v1/admin/maintenance/purge", Access::Optional, nothing);
    assert_eq!(rule_of(&purge), Ok(Access::PlatformAdmin));
}
