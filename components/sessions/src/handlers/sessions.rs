//! `/api/v1/sessions`: create (atomic admission), list, by tags, get, state changes, tags.
//! Thin handlers over `shared::sessions` (the domain functions) and [`crate::access`] (load a
//! session of the caller's org, then `can_access`).

use serde::{Deserialize, Deserializer, Serialize};
use shared::auth::permissions::{self, SESSIONS_CREATE, SESSIONS_DELETE, SESSIONS_VIEW};
use shared::auth::Principal;
use shared::extract::percent_decode;
use shared::license;
use shared::pagination::{desc, Page, PageRequest, Paged};
use shared::sessions::admission::{self, NewSession};
use shared::sessions::fields;
use shared::sessions::lifecycle::{
    self, Session, SessionView, Stepped, CONNECTION_LIVE_MS, SELECT,
};
use shared::sessions::machine::{State, UserEvent};
use shared::sessions::quota;
use shared::store::{Database, Value};
use shared::{header, Access, ApiError, ApiResult, Cx, HeaderValue, Response, Route, StatusCode};

use crate::access::{forbidden, load_for, ops_of, settings_of};

pub fn routes() -> Vec<Route> {
    vec![
        Route::post("/api/v1/sessions", Access::User, create),
        Route::get("/api/v1/sessions", Access::User, list),
        Route::get("/api/v1/sessions/by-tags", Access::User, by_tags),
        Route::get("/api/v1/sessions/{id}", Access::User, get),
        Route::patch("/api/v1/sessions/{id}", Access::User, patch),
        Route::delete("/api/v1/sessions/{id}", Access::User, delete),
        Route::put("/api/v1/sessions/{id}/hibernate", Access::User, hibernate),
        Route::put("/api/v1/sessions/{id}/wake", Access::User, wake),
        Route::patch("/api/v1/sessions/{id}/tags", Access::User, tags),
    ]
}

/// `Some(None)` for an explicit `null`, `None` when absent.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ResourcesInput {
    #[serde(default)]
    cpu: Option<String>,
    #[serde(default)]
    memory: Option<String>,
    #[serde(default)]
    gpu: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    #[serde(default)]
    template: Option<String>,
    #[serde(default)]
    template_id: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    team_id: Option<String>,
    #[serde(default)]
    resources: Option<ResourcesInput>,
    #[serde(default)]
    persistent_home: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    idle_timeout: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    max_session_duration: Option<Option<String>>,
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// `{session, command_id}`: the answer of every state change.
#[derive(Serialize)]
struct Changed {
    session: SessionView,
    command_id: Option<String>,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_field", message)
}

/// The owner of a new session: the caller, or (admins only) another active user of its org.
fn owner(db: &Database, user: &Principal, requested: Option<&str>) -> ApiResult<(String, String)> {
    let Some(id) = requested.filter(|id| *id != user.user_id) else {
        return Ok((user.user_id.clone(), user.username.clone()));
    };
    if !user.is_admin() {
        return Err(ApiError::forbidden(
            "forbidden",
            "only an admin may start a session for another user",
        ));
    }
    let rows = db.execute(
        "SELECT username, status FROM users WHERE id = ? AND org_id = ?",
        &[Value::from(id), Value::from(user.org_id.as_str())],
    )?;
    let row = rows
        .first()
        .ok_or_else(|| ApiError::not_found("no such user"))?;
    if row.str("status")? != "active" {
        return Err(bad("user_id names a disabled user"));
    }
    Ok((id.to_owned(), row.str("username")?.to_owned()))
}

/// `POST /api/v1/sessions` → 202 + `Location`: the session (`pending`) and its `start_session`
/// command. 402 quota, 403 license, 503 no agent; everything checked before anything is written.
pub async fn create(cx: Cx) -> ApiResult<Response> {
    let user = cx.user()?.clone();
    let input: CreateRequest = cx.json()?;
    let db = cx.db()?;
    let settings = settings_of(&cx)?;
    let wanted = match (input.template.as_deref(), input.template_id.as_deref()) {
        (Some(t), None) | (None, Some(t)) => t,
        _ => return Err(bad("give exactly one of template and template_id")),
    };
    let template = shared::templates::find(db, &user.org_id, wanted)?.ok_or_else(|| {
        ApiError::registered("template_not_found", format!("no template `{wanted}`"))
    })?;
    if !template.enabled {
        return Err(ApiError::registered(
            "template_disabled",
            format!("template `{}` is disabled", template.name),
        ));
    }
    let (owner_id, owner_username) = owner(db, &user, input.user_id.as_deref())?;
    if let Some(team_id) = input.team_id.as_deref() {
        let perms = permissions::team_permissions(db, &user, team_id)?;
        if !perms.iter().any(|p| p == SESSIONS_CREATE) {
            return Err(forbidden("create sessions for this team"));
        }
    }
    let resources = input.resources.unwrap_or_default();
    let cpu = resources
        .cpu
        .unwrap_or_else(|| template.default_cpu.clone());
    let memory = resources
        .memory
        .unwrap_or_else(|| template.default_memory.clone());
    let requested = quota::validate_request(&cpu, &memory, resources.gpu.unwrap_or(0))?;
    let idle_timeout_s = match input.idle_timeout {
        None => Some(settings.default_idle_timeout_s),
        Some(None) => None,
        Some(Some(text)) => Some(fields::idle_timeout(&text)?),
    };
    let max_duration_s = input
        .max_session_duration
        .flatten()
        .map(|text| fields::max_duration(&text))
        .transpose()?;
    let tags = fields::normalize_tags(&input.tags.unwrap_or_default())?;
    let license = license::current(&cx.services)?;
    let new = NewSession {
        org_id: user.org_id.clone(),
        owner_id,
        owner_username,
        team_id: input.team_id,
        template,
        cpu,
        memory,
        requested,
        persistent_home: input.persistent_home.unwrap_or(true),
        idle_timeout_s,
        max_duration_s,
        tags,
    };
    let admitted = admission::admit(&ops_of(&cx, &settings)?, &license, &new)?;
    let location = HeaderValue::from_str(&format!("/api/v1/sessions/{}", admitted.session.id))
        .map_err(|e| ApiError::internal(format!("location header: {e}")))?;
    let mut created = admitted.session.view(user.is_admin());
    created.command_id = Some(admitted.command_id);
    let response =
        Response::json(StatusCode::ACCEPTED, &created)?.with_header(header::LOCATION, location);
    Ok(admitted.capacity.annotate(response))
}

/// Every value of `name` in the query (`?tags=a&tags=b` and `?tags=a,b` both give `[a, b]`).
fn query_list(raw_query: &str, name: &str) -> ApiResult<Vec<String>> {
    let mut values = Vec::new();
    for pair in raw_query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_decode(key).as_deref() != Some(name) {
            continue;
        }
        let value = percent_decode(&value.replace('+', " ")).ok_or_else(|| {
            ApiError::bad_request("invalid_query", format!("`{name}` is not valid"))
        })?;
        values.extend(
            value
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned),
        );
    }
    Ok(values)
}

fn query_one(raw_query: &str, name: &str) -> ApiResult<Option<String>> {
    Ok(query_list(raw_query, name)?.into_iter().next())
}

/// The visibility and filters shared by the list and by-tags.
fn visible(cx: &Cx, user: &Principal, p: &mut Paged) -> ApiResult<()> {
    let q = &cx.head.query;
    // Checked whatever else the query says: an unknown scope is refused, never ignored.
    let team = match query_one(q, "scope")?.as_deref() {
        None => false,
        Some("team") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "scope must be `team`",
            ))
        }
    };
    let org = p.bind(user.org_id.as_str());
    p.and(format!("s.org_id = {org}"));
    let wanted_user = query_one(q, "user")?;
    if let Some(other) = wanted_user.as_deref().filter(|u| *u != user.user_id) {
        if !user.is_admin() {
            return Err(ApiError::forbidden(
                "forbidden",
                "only an admin may list another user's sessions",
            ));
        }
        let other = p.bind(other);
        p.and(format!("s.user_id = {other}"));
    } else if wanted_user.is_some() || !user.is_admin() {
        let me = p.bind(user.user_id.as_str());
        if team {
            let org = p.bind(user.org_id.as_str());
            let view = p.bind(SESSIONS_VIEW);
            p.and(format!(
                "(s.user_id = {me} OR s.team_id IN (SELECT m.team_id FROM team_members m
                    JOIN teams t ON t.id = m.team_id
                    JOIN team_role_permissions r ON r.role = m.role
                   WHERE m.user_id = {me} AND t.org_id = {org} AND r.permission = {view}))"
            ));
        } else {
            p.and(format!("s.user_id = {me}"));
        }
    }
    let include_terminated = match query_one(q, "include_terminated")?.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "include_terminated must be true or false",
            ))
        }
    };
    let states = query_list(q, "state")?;
    if states.is_empty() {
        if !include_terminated {
            p.and("s.state NOT IN ('terminated', 'failed')".to_owned());
        }
    } else {
        let mut list = Vec::new();
        for s in &states {
            let state = State::parse(s).ok_or_else(|| {
                ApiError::bad_request("invalid_query", format!("unknown state `{s}`"))
            })?;
            list.push(p.bind(state.as_str()));
        }
        p.and(format!("s.state IN ({})", list.join(", ")));
    }
    if let Some(template) = query_one(q, "template")? {
        let t = p.bind(template);
        p.and(format!("(s.template_name = {t} OR s.template_id = {t})"));
    }
    Ok(())
}

fn page_of(
    db: &Database,
    q: Paged,
    page: &PageRequest,
    admin: bool,
) -> ApiResult<Page<SessionView>> {
    let page = q.fetch(
        db,
        page,
        &[desc("s.created_at"), desc("s.id")],
        Session::from_row,
        |s| (s.created_at, s.id.clone()),
    )?;
    Ok(Page {
        items: page.items.iter().map(|s| s.view(admin)).collect(),
        next_cursor: page.next_cursor,
        total: None,
    })
}

/// `GET /api/v1/sessions`: own sessions (`?scope=team` adds the teams' where the caller has
/// `sessions.view`); an admin sees the org (`?user=`). Filters `state`, `template`, `tag`;
/// ended sessions only with `?include_terminated=true`. Newest first.
pub async fn list(cx: Cx) -> ApiResult<Response> {
    let user = cx.user()?;
    let mut p = Paged::new(SELECT);
    p.bind(cx.now_ms() - CONNECTION_LIVE_MS);
    visible(&cx, user, &mut p)?;
    if let Some(tag) = query_one(&cx.head.query, "tag")? {
        let t = p.bind(tag.trim().to_lowercase());
        p.and(format!(
            "EXISTS (SELECT 1 FROM session_tags g WHERE g.session_id = s.id AND g.tag = {t})"
        ));
    }
    let page = page_of(cx.db()?, p, &cx.page()?, user.is_admin())?;
    Response::ok_json(&page)
}

/// `GET /api/v1/sessions/by-tags?tags=a,b&match=any|all`: the list's visibility, sessions
/// carrying any (default) or all of the tags.
pub async fn by_tags(cx: Cx) -> ApiResult<Response> {
    let user = cx.user()?;
    let q = cx.head.query.clone();
    let tags: Vec<String> = query_list(&q, "tags")?
        .into_iter()
        .map(|t| t.to_lowercase())
        .collect();
    if tags.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_query",
            "At least one tag is required",
        ));
    }
    let all = match query_one(&q, "match")?.as_deref() {
        None | Some("any") => false,
        Some("all") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "match must be `any` or `all`",
            ))
        }
    };
    let mut p = Paged::new(SELECT);
    p.bind(cx.now_ms() - CONNECTION_LIVE_MS);
    visible(&cx, user, &mut p)?;
    let list = serde_json::to_string(&tags).map_err(|e| ApiError::internal(e.to_string()))?;
    let l = p.bind(list);
    p.and(if all {
        format!(
            "(SELECT COUNT(DISTINCT g.tag) FROM session_tags g WHERE g.session_id = s.id
                AND g.tag IN (SELECT value FROM json_each({l})))
             = (SELECT COUNT(DISTINCT value) FROM json_each({l}))"
        )
    } else {
        format!(
            "EXISTS (SELECT 1 FROM session_tags g WHERE g.session_id = s.id
                AND g.tag IN (SELECT value FROM json_each({l})))"
        )
    });
    let page = page_of(cx.db()?, p, &cx.page()?, user.is_admin())?;
    Response::ok_json(&page)
}

/// `GET /api/v1/sessions/{id}`.
pub async fn get(cx: Cx) -> ApiResult<Response> {
    let (user, session) = load_for(&cx, SESSIONS_VIEW)?;
    Response::ok_json(&session.view(user.is_admin()))
}

fn changed(user: &Principal, stepped: Stepped) -> ApiResult<Response> {
    Response::json(
        StatusCode::ACCEPTED,
        &Changed {
            session: stepped.session.view(user.is_admin()),
            command_id: stepped.command_id,
        },
    )
}

fn step(cx: &Cx, event: UserEvent) -> ApiResult<Response> {
    let permission = match event {
        UserEvent::Terminate => SESSIONS_DELETE,
        UserEvent::Hibernate | UserEvent::Wake => SESSIONS_CREATE,
    };
    let (user, session) = load_for(cx, permission)?;
    let settings = settings_of(cx)?;
    let ops = ops_of(cx, &settings)?;
    let stepped = match event {
        UserEvent::Terminate => lifecycle::terminate(&ops, &session, "user_requested")?,
        _ => lifecycle::hibernate_or_wake(&ops, &session, event)?,
    };
    changed(&user, stepped)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchRequest {
    state: String,
}

/// `PATCH /api/v1/sessions/{id}` `{"state": "running"|"hibernated"|"terminated"}` → 202
/// `{session, command_id}` through the state machine (wake, hibernate, delete).
pub async fn patch(cx: Cx) -> ApiResult<Response> {
    // The session first: another org's is 404 whatever the body says.
    load_for(&cx, SESSIONS_VIEW)?;
    let input: PatchRequest = cx.json()?;
    let event = match input.state.as_str() {
        "running" => UserEvent::Wake,
        "hibernated" => UserEvent::Hibernate,
        "terminated" => UserEvent::Terminate,
        _ => return Err(bad("state must be one of running, hibernated, terminated")),
    };
    step(&cx, event)
}

/// `DELETE /api/v1/sessions/{id}` → 202 `{session, command_id|null}`; repeated while
/// terminating, the same answer (idempotent).
pub async fn delete(cx: Cx) -> ApiResult<Response> {
    step(&cx, UserEvent::Terminate)
}

/// `PUT /api/v1/sessions/{id}/hibernate` → 202, or 409 `invalid_state` unless running.
pub async fn hibernate(cx: Cx) -> ApiResult<Response> {
    step(&cx, UserEvent::Hibernate)
}

/// `PUT /api/v1/sessions/{id}/wake` → 202, or 409 `invalid_state` unless hibernated.
pub async fn wake(cx: Cx) -> ApiResult<Response> {
    step(&cx, UserEvent::Wake)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TagsRequest {
    tags: Vec<String>,
}

/// `PATCH /api/v1/sessions/{id}/tags` `{"tags": […]}`: replaces the set → 200 session.
pub async fn tags(cx: Cx) -> ApiResult<Response> {
    let (user, session) = load_for(&cx, SESSIONS_CREATE)?;
    let input: TagsRequest = cx.json()?;
    let tags = fields::normalize_tags(&input.tags)?;
    if session.state == State::Terminated {
        return Err(shared::sessions::machine::invalid_state(
            UserEvent::Terminate,
            session.state,
        ));
    }
    let db = cx.db()?;
    let now = cx.now_ms();
    db.transaction(|db| -> ApiResult<()> {
        admission::replace_tags(db, &session.org_id, &session.id, &tags)?;
        db.execute(
            "UPDATE sessions SET updated_at = ? WHERE id = ?",
            &[Value::from(now), Value::from(session.id.as_str())],
        )?;
        Ok(())
    })?;
    let session = lifecycle::require(db, now, &session.org_id, &session.id)?;
    Response::ok_json(&session.view(user.is_admin()))
}
