//! The request pipeline, assembled in this one place. Every component's entry point calls
//! [`serve`] with its route table. The order, and why:
//!
//! 1. **Request id** — first, so every answer below (405, 413, 503 …) carries it.
//! 2. **Method gate** — TRACE/TRACK/CONNECT/unknown → 405 + `Allow` before anything else runs.
//! 3. **Input guard** — path traversal and oversized query values → 400; cheap, before any I/O.
//! 4. **Body limits** — `Content-Length` checked against the route's cap before a byte is read,
//!    then the body is read with the same cap → 413.
//! 5. **Credential precheck** — on routes that are not `Public`, validates whatever credential is
//!    present and records the verdict; never rejects by itself ([`crate::auth::precheck`]).
//! 6. **Rate limit** — keyed by the verified principal, else the client IP (trusted proxies
//!    honoured); 429/428/503 here ([`crate::rate_limit`]).
//! 7. **CORS** — preflights answered here; allowed origins decorate the response at step 11.
//! 8. **Route** — 404 / 405 with `Allow`; plain OPTIONS answered with `Allow`; the route's
//!    declared [`Access`](crate::router::Access) and token scope are enforced (401/403/503).
//! 9. **CSRF** — cookie-authenticated unsafe methods only ([`crate::auth::csrf`]); it needs the
//!    verified credential, so it follows the access check.
//! 10. **Handler** — typed extraction inside ([`Cx::json`], [`Cx::param`], …). A mutating
//!     request's unit of work is opened by its first write, not before the handler
//!     ([`crate::store::Database::defer_unit`]): reads, credential checks, password hashing and
//!     outbound calls run without SQLite's write lock.
//! 11. **Response** — security headers on every status, CORS headers, `X-Request-ID`, gzip when
//!     accepted and worth it, HEAD bodies dropped.
//! 12. **Access log** — one JSON line per request on stdout.
//! 13. **Audit** — one row per request, one `INSERT` (unsealed: the hash chain is computed by
//!     the sealer after the response, [`crate::audit::chain::seal`]); committed with a mutating
//!     request's own writes in its unit of work, else on its own (autocommit). If it cannot be
//!     written the answer is 503 and the unit of work is undone.
//!
//! Nothing in here panics: every failure is an [`ApiError`] answered with the JSON envelope.

use std::future::Future;
use std::rc::Rc;
use std::time::Instant;

use http::{HeaderValue, Method, StatusCode};

use crate::access_log::{self, AccessLine};
use crate::audit;
use crate::auth::precheck::precheck;
use crate::auth::{csrf, AuthState};
use crate::body_limit;
use crate::client_ip;
use crate::config::SecurityMode;
use crate::context::{Caller, Cx};
use crate::cors::{self, CorsPolicy};
use crate::error::ApiError;
use crate::http::{RequestHead, Response};
use crate::ids::random_base64url;
use crate::input_guard;
use crate::method_gate;
use crate::rate_limit::{self, RateClass, Verdict};
use crate::request_id;
use crate::router::{Access, Match, Params, Route, RouteTable};
use crate::services::Services;
use crate::time::Timestamp;

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    TooLarge,
    Io(String),
}

/// Where the request body comes from (Spin's incoming stream, or bytes in tests).
pub trait BodySource {
    /// Reads the whole body, failing with [`BodyError::TooLarge`] as soon as it exceeds `limit`.
    fn read_limited(self, limit: usize) -> impl Future<Output = Result<Vec<u8>, BodyError>>;
}

impl BodySource for Vec<u8> {
    async fn read_limited(self, limit: usize) -> Result<Vec<u8>, BodyError> {
        if self.len() > limit {
            Err(BodyError::TooLarge)
        } else {
            Ok(self)
        }
    }
}

/// What the pipeline learned about a request, for the response and log stages.
struct Outcome {
    response: Response,
    error: Option<ApiError>,
}

/// Who asked, as far as the pipeline verified it (stage 5) or the handler named it
/// ([`Cx::set_actor`]): what the log line and the audit row say about the actor.
#[derive(Default)]
struct Actor {
    /// `user:<id>`, `agent:<id>`, `webhook:<source>`.
    label: Option<String>,
    user_id: Option<String>,
    agent_id: Option<String>,
    org_id: Option<String>,
}

impl Actor {
    fn of(auth: &AuthState) -> Self {
        let (user_id, agent_id, org_id) = match auth {
            AuthState::Verified(p) => (Some(p.user_id.clone()), None, Some(p.org_id.clone())),
            AuthState::Agent(a) => (None, Some(a.agent_id.clone()), Some(a.org_id.clone())),
            _ => (None, None, None),
        };
        Self {
            label: auth.label(),
            user_id,
            agent_id,
            org_id,
        }
    }
}

/// The route a request reached (stage 8): what the audit row says it did.
struct Target {
    /// `METHOD /pattern`.
    action: String,
    /// The first literal segment after `/api/v1` (skipping `admin`).
    resource_type: Option<String>,
    /// The first path parameter.
    resource_id: Option<String>,
}

impl Target {
    fn of(method: &Method, route: &Route, params: &Params) -> Self {
        let resource_type = route
            .pattern
            .strip_prefix("/api/v1/")
            .and_then(|rest| {
                rest.split('/')
                    .find(|seg| *seg != "admin" && !seg.starts_with('{'))
            })
            .map(str::to_owned);
        Self {
            action: format!("{} {}", method, route.pattern),
            resource_type,
            resource_id: params.first().map(|(_, v)| v.chars().take(200).collect()),
        }
    }
}

/// What the routing stages learned that the log and the audit row need, whether the request
/// succeeded or not. Each stage fills its own typed part.
#[derive(Default)]
struct Trace {
    /// The route is a quiet probe (health).
    quiet: bool,
    actor: Actor,
    /// The rate-limit headers for the answer.
    rate: Verdict,
    /// The client address after trusted-proxy resolution.
    client_ip: Option<std::net::IpAddr>,
    /// The route reached, once stage 8 passed.
    target: Option<Target>,
    /// The org the handler acted on, when it is not the actor's own ([`Cx::set_target_org`]).
    target_org_id: Option<String>,
    /// The redacted body, when `log_bodies` is on.
    audit_body: Option<String>,
    /// A mutating request: its unit of work opens at its first write, and its audit row joins
    /// it when it did.
    unit: bool,
}

/// Runs one request through the whole pipeline.
pub async fn serve(
    table: &RouteTable,
    services: Rc<Services>,
    head: RequestHead,
    body: impl BodySource,
) -> Response {
    let started = Instant::now();
    // 1. Request id.
    let request_id = request_id::resolve(head.header(request_id::HEADER), services.random.as_ref());

    let mut trace = Trace::default();
    let outcome = match route_request(table, &services, &request_id, &head, body, &mut trace).await
    {
        Ok(response) => Outcome {
            response,
            error: None,
        },
        Err(err) => Outcome {
            response: Response::from_error(&err, &request_id),
            error: Some(err),
        },
    };
    // 13. Audit, closing the unit of work.
    let (outcome, request_id) =
        audit_stage(&services, request_id, &head, outcome, &mut trace, started);
    finish(&services, &request_id, &head, outcome, &trace, started)
}

/// Stages 2–10: everything that may end in an error envelope. Each stage is a function that
/// returns what the next ones need; what the log and the audit row need goes into `trace`.
async fn route_request(
    table: &RouteTable,
    services: &Rc<Services>,
    request_id: &str,
    head: &RequestHead,
    body: impl BodySource,
    trace: &mut Trace,
) -> Result<Response, ApiError> {
    // 2. Method gate.
    let method = method_gate::check(head.method.as_ref())?;
    // 3. Input guard.
    input_guard::check(&head.path, &head.query)?;
    // 4. Body limits: the route (if any) decides the cap.
    let found = table.find(&method, &head.path);
    let body = read_body(&found, head, body).await?;
    // 5. Credential precheck. Who asked is recorded from here on, so every later refusal (429,
    // 428, a preflight, 401/403 from the route's access rule) names the verified actor.
    let auth = identify(services, head, &found).await;
    trace.actor = Actor::of(&auth);
    // 6. Rate limit, keyed by the verified principal, else the client IP.
    trace.client_ip = resolve_client_ip(services, head)?;
    trace.rate = limit(services, &found, &auth, head, trace.client_ip, &body)?;
    // 7. CORS preflight.
    if cors::is_preflight(&method, &head.headers) {
        let policy = CorsPolicy::parse(&services.settings().allowed_origins()?);
        return cors::preflight(&policy, &head.headers);
    }
    // 8. Route and access.
    let (route, params) = match route_of(found, &method)? {
        Routed::Handler(route, params) => (route, params),
        Routed::Answered(response) => return Ok(response),
    };
    trace.quiet = route.quiet;
    let caller = authorize(route, &method, &auth)?;
    // 9. CSRF, for cookie-authenticated unsafe methods (needs the verified credential).
    if let Caller::User(p) = &caller {
        csrf::check(services, head, &method, p)?;
    }
    trace.target = Some(Target::of(&method, route, &params));
    trace.audit_body = audit_body(services, route, head, &body)?;
    // 10. Handler.
    let cx = Cx::new(
        request_id.to_owned(),
        method,
        head.clone(),
        body,
        services.clone(),
        caller,
        params,
    );
    run_handler(services, route, cx, trace).await
}

/// Stage 4: the body, read with the route's cap (`Content-Length` checked before a byte is read).
async fn read_body(
    found: &Match<'_>,
    head: &RequestHead,
    body: impl BodySource,
) -> Result<Vec<u8>, ApiError> {
    let kind = match found {
        Match::Found { route, .. } => route.body,
        _ => body_limit::BodyKind::Standard,
    };
    let limit = body_limit::limit_for(kind, head.header("content-type"));
    body_limit::check_declared(head.header("content-length"), limit)?;
    match body.read_limited(limit).await {
        Ok(bytes) => Ok(bytes),
        Err(BodyError::TooLarge) => Err(ApiError::payload_too_large(limit)),
        Err(BodyError::Io(cause)) => Err(ApiError::bad_request(
            "invalid_body",
            "request body could not be read",
        )
        .with_cause(cause)),
    }
}

/// Stage 5: the credential's verdict, only where the route looks at credentials. Never rejects:
/// the route's access rule decides at stage 8.
async fn identify(services: &Services, head: &RequestHead, found: &Match<'_>) -> AuthState {
    match found {
        Match::Found { route, params } if route.access != Access::Public => {
            let path_id = params
                .iter()
                .find(|(name, _)| *name == "id")
                .map(|(_, v)| v.as_str());
            let agent_route = matches!(route.access, Access::Agent | Access::AgentOptional);
            precheck(services, head, agent_route, path_id).await
        }
        _ => AuthState::Anonymous,
    }
}

/// Stage 6: charges the route's rate class (the general one off-route).
fn limit(
    services: &Services,
    found: &Match<'_>,
    auth: &AuthState,
    head: &RequestHead,
    client_ip: Option<std::net::IpAddr>,
    body: &[u8],
) -> Result<Verdict, ApiError> {
    let class = match found {
        Match::Found { route, .. } => route.rate,
        _ => RateClass::General,
    };
    rate_limit::enforce(
        services,
        class,
        auth,
        &head.headers,
        client_ip,
        body,
        Some(head.path.as_str()),
    )
}

/// Where stage 8 sends a request.
enum Routed<'t> {
    Handler(&'t Route, Params),
    /// A plain `OPTIONS` on a known path: `Allow` and nothing else.
    Answered(Response),
}

/// Stage 8: the route, or 404 / 405 with `Allow`.
fn route_of<'t>(found: Match<'t>, method: &Method) -> Result<Routed<'t>, ApiError> {
    match found {
        Match::Found { route, params } => Ok(Routed::Handler(route, params)),
        Match::MethodNotAllowed { allow } if *method == Method::OPTIONS => Ok(Routed::Answered(
            Response::new(StatusCode::NO_CONTENT)
                .with_header(http::header::ALLOW, header_value(&allow)),
        )),
        Match::MethodNotAllowed { allow } => Err(ApiError::method_not_allowed(&allow)),
        Match::NotFound => Err(ApiError::not_found("no such resource")),
    }
}

/// The redacted body for the audit row, when `log_bodies` is on (never for quiet probes).
fn audit_body(
    services: &Services,
    route: &Route,
    head: &RequestHead,
    body: &[u8],
) -> Result<Option<String>, ApiError> {
    if route.quiet || !services.settings().flag("log_bodies")?.unwrap_or(false) {
        return Ok(None);
    }
    let extra = audit::redact::extra_fields(
        &services
            .settings()
            .raw("audit_redact_fields")?
            .unwrap_or_default(),
    );
    Ok(audit::redact::redact_body(
        body,
        head.header("content-type"),
        &extra,
    ))
}

/// Stage 10: the handler. A mutating request runs inside its unit of work, opened by its first
/// write: the handler's writes and the audit row commit together or not at all; a handler that
/// fails with a 5xx has its writes undone.
async fn run_handler(
    services: &Services,
    route: &Route,
    mut cx: Cx,
    trace: &mut Trace,
) -> Result<Response, ApiError> {
    if !matches!(cx.method, Method::GET | Method::HEAD | Method::OPTIONS) && !route.quiet {
        services.db()?.defer_unit();
        trace.unit = true;
    }
    cx.client_ip = trace.client_ip.or(cx.head.client_ip);
    let target_org = cx.target_org_handle();
    let actor = cx.actor_handle();
    let result = route.call(cx).await;
    if trace.actor.label.is_none() {
        trace.actor.label = actor.get();
    }
    trace.target_org_id = target_org
        .get()
        .filter(|target| Some(target) != trace.actor.org_id.as_ref());
    if trace.unit {
        // Client errors keep their deliberate writes (a revoked session on refresh-token reuse, a
        // ticket consumed by a wrong redemption) and commit with the audit row (stage 13);
        // server errors undo the handler's writes now.
        let status = match &result {
            Ok(r) => r.status,
            Err(e) => e.status,
        };
        if status.is_server_error() {
            if let Some(db) = services.open_db() {
                let _ = db.finish_unit(false);
            }
            trace.unit = false;
        }
    }
    result
}

/// Stage 13: one audit row per request: one `INSERT` of an unsealed row, inside the request's
/// unit of work when its handler wrote (then committed with it), else on its own. If the row
/// cannot be written the request fails with 503 and its unit of work is rolled back: nothing is
/// changed unaudited. Quiet probes (health) are not audited. A client-chosen request id that is
/// already in the log is replaced by a fresh one, so ids stay unique without refusing the
/// request. The chain is sealed after the response ([`Services::after_response`]).
fn audit_stage(
    services: &Services,
    request_id: String,
    head: &RequestHead,
    outcome: Outcome,
    trace: &mut Trace,
    started: Instant,
) -> (Outcome, String) {
    let unit = std::mem::take(&mut trace.unit);
    if trace.quiet {
        if unit {
            if let Some(db) = services.open_db() {
                let _ = db.finish_unit(false);
            }
        }
        return (outcome, request_id);
    }
    let target = trace.target.take();
    let actor = std::mem::take(&mut trace.actor);
    let mut record = audit::chain::Record {
        id: crate::ids::uuid_v4(services.random.as_ref()).unwrap_or_else(|_| request_id.clone()),
        request_id: request_id.clone(),
        ts: services.now_ms(),
        principal: actor.label.clone(),
        user_id: actor.user_id,
        agent_id: actor.agent_id,
        org_id: actor.org_id,
        method: head.method_str().chars().take(16).collect(),
        path: head.path.chars().take(2048).collect(),
        resource_type: target.as_ref().and_then(|t| t.resource_type.clone()),
        resource_id: target.as_ref().and_then(|t| t.resource_id.clone()),
        action: target.map(|t| t.action).unwrap_or_else(|| {
            format!("{} {}", head.method_str(), head.path)
                .chars()
                .take(2048)
                .collect()
        }),
        status: i64::from(outcome.response.status.as_u16()),
        client_ip: trace.client_ip.or(head.client_ip).map(|ip| ip.to_string()),
        user_agent: head
            .header("user-agent")
            .map(|ua| ua.chars().take(512).collect()),
        duration_ms: (started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0,
        error: outcome.error.as_ref().map(|e| e.code.to_owned()),
        body: trace.audit_body.take(),
        target_org_id: trace.target_org_id.take(),
    };
    // The log line (stage 12) still names the actor.
    trace.actor.label = actor.label;
    let fail = |err: ApiError, request_id: String| {
        if let Some(db) = services.open_db() {
            let _ = db.finish_unit(false);
        }
        (
            Outcome {
                response: Response::from_error(&err, &request_id),
                error: Some(err),
            },
            request_id,
        )
    };
    // An unset (empty) `audit_key` is the documented unkeyed chain; a key that cannot be read is
    // not: the request fails closed rather than have its row chained with the public fallback
    // (the sealer reads the same, cached, value after the response).
    if let Err(err) = services.settings().raw("audit_key") {
        let err = ApiError::unavailable(
            "audit log",
            format!("audit_key unreadable: {}", err.message),
        );
        return fail(err, request_id);
    }
    let db = match services.db() {
        Ok(db) => db,
        Err(err) => {
            let err =
                ApiError::unavailable("audit log", format!("audit write failed: {}", err.message));
            return fail(err, request_id);
        }
    };
    // A mutation that wrote nothing took no lock: its row is one autocommit insert.
    if db.unit() == crate::store::Unit::Pending {
        let _ = db.finish_unit(true);
    }
    let mut result = audit::chain::insert_unsealed(db, &record);
    let mut request_id = request_id;
    if matches!(&result, Err(e) if e.is_unique_violation(Some("audit_log.request_id"))) {
        // A replayed client request id: keep the row unique with a fresh one. (A failed
        // statement leaves an open unit of work as it was.)
        request_id =
            crate::ids::uuid_v4(services.random.as_ref()).unwrap_or_else(|_| record.id.clone());
        record.request_id = request_id.clone();
        result = audit::chain::insert_unsealed(db, &record);
    }
    let result = result.and_then(|inserted| db.finish_unit(true).map(|()| inserted));
    match result {
        Ok(inserted) => {
            services.defer_seal();
            // The schema version came back with the insert: a migration that no statement
            // would miss (an index, a trigger) is applied now, once, outside any transaction.
            let _ = db.ensure_schema(inserted.schema_version);
            let outcome = match outcome.error {
                // The envelope must carry the id the response is sent with.
                Some(err) => Outcome {
                    response: Response::from_error(&err, &request_id),
                    error: Some(err),
                },
                None => outcome,
            };
            (outcome, request_id)
        }
        Err(err) => {
            let err =
                ApiError::unavailable("audit log", format!("audit write failed: {}", err.message));
            fail(err, request_id)
        }
    }
}

/// Turns the precheck's verdict into the route's answer: the caller the handler sees, or 400/401
/// (no, malformed or invalid credential), 403 (role, token scope, key of another agent), 503
/// (credential not checkable). The token-scope rule applies to every verified user on every
/// route, optional-auth routes included: a read-only token is never handed to a handler of an
/// unsafe method, whatever else the handler accepts.
fn authorize(route: &Route, method: &Method, auth: &AuthState) -> Result<Caller, ApiError> {
    let principal = match route.access {
        Access::Public => return Ok(Caller::Nobody),
        Access::Optional => match auth {
            AuthState::Unavailable(err) => return Err(err.clone().into()),
            AuthState::Verified(p) => p,
            _ => return Ok(Caller::Nobody),
        },
        Access::Agent => return Ok(Caller::Agent(auth.require_agent()?.clone())),
        Access::AgentOptional => {
            return match auth {
                AuthState::Unavailable(err) => Err(err.clone().into()),
                AuthState::Agent(a) => Ok(Caller::Agent(a.clone())),
                _ => Ok(Caller::Nobody),
            }
        }
        Access::User | Access::AnyRole(_) | Access::PlatformAdmin => auth.require()?,
    };
    let allowed = match route.access {
        Access::AnyRole(roles) => roles.contains(&principal.role),
        Access::PlatformAdmin => principal.platform_admin,
        _ => true,
    };
    if !allowed {
        return Err(ApiError::forbidden(
            "forbidden",
            "your role does not allow this",
        ));
    }
    if principal.scope < route.required_scope(method) {
        return Err(ApiError::forbidden(
            "insufficient_scope",
            format!(
                "this token needs the `{}` scope",
                route.required_scope(method).as_str()
            ),
        ));
    }
    Ok(Caller::User(principal.clone()))
}

/// The client address: the peer, or behind trusted proxies the right-most untrusted hop of all
/// `X-Forwarded-For` lines joined in order (RFC 9110 §5.3). The variable is read only when the
/// header is present.
fn resolve_client_ip(
    services: &Services,
    head: &RequestHead,
) -> Result<Option<std::net::IpAddr>, ApiError> {
    let Some(forwarded) = client_ip::forwarded_for(&head.headers) else {
        return Ok(head.client_ip);
    };
    let trusted = client_ip::parse_trusted(
        &services
            .settings()
            .raw("trusted_proxies")?
            .unwrap_or_default(),
    );
    Ok(client_ip::resolve(
        head.client_ip,
        Some(&forwarded),
        &trusted,
    ))
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Stages 11–12: headers, compression, log.
fn finish(
    services: &Services,
    request_id: &str,
    head: &RequestHead,
    outcome: Outcome,
    trace: &Trace,
    started: Instant,
) -> Response {
    let Outcome {
        mut response,
        error,
    } = outcome;
    let settings = services.settings();

    // 11. Security headers: a failing variables host must not weaken them.
    let mode = settings.security_mode().unwrap_or(SecurityMode::Strict);
    let nonce = random_base64url(services.random.as_ref(), 16).unwrap_or_default();
    crate::security_headers::apply(&mut response.headers, mode, &nonce);
    trace.rate.apply(&mut response.headers);
    if head.headers.contains_key("origin")
        && !cors::is_preflight(head.method.as_ref().unwrap_or(&Method::GET), &head.headers)
    {
        if let Ok(origins) = settings.allowed_origins() {
            cors::decorate(
                &CorsPolicy::parse(&origins),
                &head.headers,
                &mut response.headers,
            );
        }
    }
    response.headers.insert(
        http::HeaderName::from_static(request_id::HEADER),
        header_value(request_id),
    );
    if head.method == Some(Method::HEAD) {
        response.body.clear();
    } else {
        crate::compression::maybe_gzip(
            head.header("accept-encoding"),
            response.status,
            &mut response.headers,
            &mut response.body,
        );
        // 204 and 304 answers carry no body and must not carry Content-Length (RFC 9110 §8.6).
        let bodiless = matches!(
            response.status,
            StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED
        );
        if bodiless {
            response.body.clear();
        } else {
            response.headers.insert(
                http::header::CONTENT_LENGTH,
                HeaderValue::from(response.body.len()),
            );
        }
    }

    // 12. Access log.
    let skip = trace.quiet
        && response.status.is_success()
        && !settings.log_health_checks().unwrap_or(false);
    if !skip {
        let status = response.status.as_u16();
        access_log::write(
            services.log.as_ref(),
            &AccessLine {
                ts: Timestamp::from_ms(services.now_ms()).to_rfc3339(),
                level: access_log::level_for(status),
                msg: "request",
                request_id,
                method: head.method_str(),
                path: &head.path,
                status,
                duration_ms: (started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
                client_ip: trace.client_ip.or(head.client_ip).map(|ip| ip.to_string()),
                user_agent: head.header("user-agent"),
                principal: trace.actor.label.as_deref(),
                error: error.as_ref().map(|e| e.code),
                cause: error
                    .as_ref()
                    .and_then(|e| e.cause.as_deref())
                    .or(response.cause.as_deref()),
            },
        );
    }
    response
}

#[cfg(all(test, feature = "native"))]
mod tests {
    use super::*;
    use crate::error::ApiResult;
    use crate::router::Route;
    use crate::testing::TestStores;
    use serde::Deserialize;

    async fn hello(_cx: Cx) -> ApiResult<Response> {
        Response::ok_json(&serde_json::json!({"hello": "world", "pad": "x".repeat(2000)}))
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Echo {
        name: String,
    }

    async fn echo(cx: Cx) -> ApiResult<Response> {
        let input: Echo = cx.json()?;
        Response::json(
            StatusCode::CREATED,
            &serde_json::json!({"name": input.name}),
        )
    }

    async fn needs_db(cx: Cx) -> ApiResult<Response> {
        cx.db()?.execute("SELECT 1", &[])?;
        Ok(Response::no_content())
    }

    async fn who(cx: Cx) -> ApiResult<Response> {
        Response::ok_json(
            &serde_json::json!({"agent": cx.agent.as_ref().map(|a| a.agent_id.clone())}),
        )
    }

    fn table() -> RouteTable {
        RouteTable::new(vec![
            Route::get("/agents/{id}/optional", Access::AgentOptional, who),
            Route::get("/hello", Access::Public, hello),
            Route::post("/echo", Access::Public, echo),
            Route::get("/db", Access::Public, needs_db),
            Route::get("/health", Access::Public, needs_db).quiet(),
        ])
    }

    fn request(
        stores: &TestStores,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        stores.call(&table(), method, path, headers, body)
    }

    fn error_code(r: &Response) -> String {
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert!(v["request_id"].as_str().is_some_and(|s| !s.is_empty()));
        v["error"].as_str().unwrap().to_owned()
    }

    #[test]
    fn security_headers_and_request_id_on_success_and_errors() {
        let s = TestStores::new();
        for (method, path, status) in [
            ("GET", "/hello", 200),
            ("GET", "/nope", 404),
            ("TRACE", "/hello", 405),
            ("PUT", "/hello", 405),
        ] {
            let id = format!("client-{method}-{status}");
            let r = request(&s, method, path, &[("x-request-id", &id)], b"");
            assert_eq!(r.status.as_u16(), status, "{method} {path}");
            assert_eq!(r.headers["x-request-id"], id.as_str());
            assert!(r.headers.contains_key("content-security-policy"));
            assert_eq!(r.headers["x-frame-options"], "DENY");
            assert_eq!(r.headers["cache-control"], "no-store");
        }
    }

    #[test]
    fn nonce_is_fresh_per_response() {
        let s = TestStores::new();
        let a = request(&s, "GET", "/hello", &[], b"");
        let b = request(&s, "GET", "/hello", &[], b"");
        assert_ne!(
            a.headers["content-security-policy"],
            b.headers["content-security-policy"]
        );
    }

    #[test]
    fn trace_gets_allow() {
        let r = request(&TestStores::new(), "TRACE", "/hello", &[], b"");
        assert_eq!(r.headers["allow"], method_gate::ALLOW_HEADER);
        assert_eq!(error_code(&r), "method_not_allowed");
    }

    #[test]
    fn route_405_lists_the_path_methods() {
        let r = request(&TestStores::new(), "DELETE", "/echo", &[], b"");
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers["allow"], "OPTIONS, POST");
    }

    #[test]
    fn json_body_limits() {
        let s = TestStores::new();
        let big = vec![b' '; body_limit::JSON_LIMIT + 1];
        let len = big.len().to_string();
        let r = request(
            &s,
            "POST",
            "/echo",
            &[
                ("content-type", "application/json"),
                ("content-length", &len),
            ],
            b"",
        );
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
        // No Content-Length: the actual size decides.
        let r = request(
            &s,
            "POST",
            "/echo",
            &[("content-type", "application/json")],
            &big,
        );
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(error_code(&r), "payload_too_large");
    }

    #[test]
    fn unknown_field_is_400_and_valid_is_201() {
        let s = TestStores::new();
        let ct = [("content-type", "application/json")];
        let r = request(&s, "POST", "/echo", &ct, br#"{"name":"a","role":"admin"}"#);
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(error_code(&r), "unknown_field");
        let r = request(&s, "POST", "/echo", &ct, br#"{"name":"a"}"#);
        assert_eq!(r.status, StatusCode::CREATED);
    }

    #[test]
    fn traversal_is_400_before_routing() {
        let r = request(&TestStores::new(), "GET", "/hello/%2e%2e/x", &[], b"");
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(error_code(&r), "invalid_path");
    }

    #[test]
    fn store_failure_is_503_with_envelope() {
        let s = TestStores::new();
        s.sql.fail(true);
        let r = request(&s, "GET", "/db", &[], b"");
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(error_code(&r), "service_unavailable");
        assert!(r.headers.contains_key("content-security-policy"));
        s.sql.fail(false);
        assert_eq!(
            request(&s, "GET", "/db", &[], b"").status,
            StatusCode::NO_CONTENT
        );
    }

    #[test]
    fn cors_preflight_and_decoration() {
        let s = TestStores::new();
        s.variables
            .set("allowed_origins", "https://app.example.com");
        let r = request(
            &s,
            "OPTIONS",
            "/echo",
            &[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "POST"),
            ],
            b"",
        );
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(
            r.headers["access-control-allow-origin"],
            "https://app.example.com"
        );
        let r = request(
            &s,
            "OPTIONS",
            "/echo",
            &[
                ("origin", "https://evil.example"),
                ("access-control-request-method", "POST"),
            ],
            b"",
        );
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert!(!r.headers.contains_key("access-control-allow-origin"));
        let r = request(
            &s,
            "GET",
            "/hello",
            &[("origin", "https://app.example.com")],
            b"",
        );
        assert_eq!(r.headers["access-control-allow-credentials"], "true");
        let r = request(
            &s,
            "GET",
            "/hello",
            &[("origin", "https://evil.example")],
            b"",
        );
        assert!(!r.headers.contains_key("access-control-allow-origin"));
    }

    #[test]
    fn plain_options_lists_allow() {
        let r = request(&TestStores::new(), "OPTIONS", "/echo", &[], b"");
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(r.headers["allow"], "OPTIONS, POST");
    }

    #[test]
    fn gzip_when_accepted() {
        let s = TestStores::new();
        let r = request(&s, "GET", "/hello", &[("accept-encoding", "gzip")], b"");
        assert_eq!(r.headers["content-encoding"], "gzip");
        let r = request(&s, "GET", "/hello", &[], b"");
        assert!(!r.headers.contains_key("content-encoding"));
    }

    #[test]
    fn agent_optional_uses_a_valid_key_ignores_a_bad_one_and_fails_on_a_dead_store() {
        let s = TestStores::new();
        let key = "ab".repeat(32);
        s.services()
            .db()
            .unwrap()
            .execute(
                "INSERT INTO agents (id, org_id, name, platform, api_key_hash, created_at) VALUES ('a1', 'o', 'a1', 'k8s', ?, 0)",
                &[crate::store::Value::from(crate::secrets::TokenHash::of(&key).as_str())],
            )
            .unwrap();
        let body = |r: &Response| serde_json::from_slice::<serde_json::Value>(&r.body).unwrap();
        let r = request(
            &s,
            "GET",
            "/agents/a1/optional",
            &[("x-agent-api-key", &key)],
            b"",
        );
        assert_eq!(body(&r)["agent"], "a1");
        let r = request(
            &s,
            "GET",
            "/agents/a1/optional",
            &[("x-agent-api-key", "junk")],
            b"",
        );
        assert_eq!(
            (r.status, body(&r)["agent"].clone()),
            (StatusCode::OK, serde_json::Value::Null)
        );
        let r = request(&s, "GET", "/agents/a1/optional", &[], b"");
        assert_eq!(body(&r)["agent"], serde_json::Value::Null);
        s.sql.fail(true);
        s.variables.set("rate_limit_fail_open", "true");
        let r = request(
            &s,
            "GET",
            "/agents/a1/optional",
            &[("x-agent-api-key", &key)],
            b"",
        );
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn one_log_line_per_request_and_health_is_quiet() {
        let s = TestStores::new();
        request(&s, "GET", "/hello", &[("x-request-id", "line-1")], b"");
        request(&s, "TRACE", "/hello", &[("x-request-id", "line-2")], b"");
        request(&s, "GET", "/health", &[("x-request-id", "line-3")], b"");
        let lines = s.log.lines();
        assert_eq!(lines.len(), 2, "{lines:?}");
        let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(
            (first["request_id"].as_str(), first["status"].as_u64()),
            (Some("line-1"), Some(200))
        );
        let second: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(
            (second["level"].as_str(), second["error"].as_str()),
            (Some("warn"), Some("method_not_allowed"))
        );
        s.variables.set("log_health_checks", "true");
        request(&s, "GET", "/health", &[], b"");
        assert_eq!(s.log.lines().len(), 3);
    }

    #[test]
    fn every_request_is_audited_once_and_the_chain_verifies() {
        let s = TestStores::new();
        let ct = [("content-type", "application/json")];
        request(&s, "GET", "/hello", &[], b"");
        request(&s, "GET", "/nope", &[], b"");
        request(&s, "TRACE", "/hello", &[], b"");
        request(&s, "POST", "/echo", &ct, br#"{"name":"a"}"#);
        request(&s, "POST", "/echo", &ct, br#"{"bad":1}"#);
        request(&s, "GET", "/health", &[], b"");
        let services = s.services();
        let db = services.db().unwrap();
        let rows = db
            .execute("SELECT action, status FROM audit_log ORDER BY seq", &[])
            .unwrap();
        let got: Vec<(String, i64)> = rows
            .iter()
            .map(|r| {
                (
                    r.str("action").unwrap().to_owned(),
                    r.i64("status").unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("GET /hello".to_owned(), 200),
                ("GET /nope".to_owned(), 404),
                ("TRACE /hello".to_owned(), 405),
                ("POST /echo".to_owned(), 201),
                ("POST /echo".to_owned(), 400),
            ],
            "health probes are not audited"
        );
        let report = crate::audit::chain::verify(db, crate::audit::chain::UNKEYED, false).unwrap();
        assert!(report.ok && report.checked == 5, "{report:?}");
    }

    #[test]
    fn a_replayed_request_id_is_replaced_to_keep_audit_rows_unique() {
        let s = TestStores::new();
        let a = request(&s, "GET", "/nope", &[("x-request-id", "same")], b"");
        let b = request(&s, "GET", "/nope", &[("x-request-id", "same")], b"");
        assert_eq!(a.headers["x-request-id"], "same");
        assert_ne!(b.headers["x-request-id"], "same");
        let v: serde_json::Value = serde_json::from_slice(&b.body).unwrap();
        assert_eq!(v["request_id"], b.headers["x-request-id"].to_str().unwrap());
    }

    /// The variables host fails for `audit_key` only (everything else reads normally).
    struct UnreadableAuditKey(crate::store::native::MapVariables);

    impl crate::store::Variables for UnreadableAuditKey {
        fn get(&self, name: &str) -> Result<Option<String>, crate::store::StoreError> {
            if name == "audit_key" {
                return Err(crate::store::StoreError::new(
                    crate::store::StoreKind::Variables,
                    "variables host down",
                ));
            }
            self.0.get(name)
        }
    }

    #[test]
    fn unreadable_audit_key_fails_closed() {
        let s = TestStores::new();
        let mut services = Services::new(
            Box::new(s.clock.clone()),
            Box::new(s.random.clone()),
            Box::new(UnreadableAuditKey(s.variables.clone())),
            Box::new(s.outbound.clone()),
            Box::new(s.sql.handle()),
            Box::new(s.kv.clone()),
        );
        services.log = Box::new(s.log.clone());
        let services = Rc::new(services);
        let ct = ("content-type", "application/json");
        let mut headers = http::HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static(ct.1));
        let head = RequestHead::new(Some(Method::POST), "/echo", headers);
        let r = futures::executor::block_on(serve(
            &table(),
            services.clone(),
            head,
            br#"{"name":"a"}"#.to_vec(),
        ));
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(error_code(&r), "service_unavailable");
        let head = RequestHead::new(Some(Method::GET), "/hello", http::HeaderMap::new());
        let r = futures::executor::block_on(serve(&table(), services, head, Vec::new()));
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        // Nothing was chained with the unkeyed fallback.
        let n = s
            .services()
            .db()
            .unwrap()
            .execute("SELECT count(*) AS n FROM audit_log", &[])
            .unwrap()
            .first()
            .unwrap()
            .i64("n")
            .unwrap();
        assert_eq!(n, 0);
        // An empty audit_key is the documented unkeyed default, not a failure.
        s.variables.set("audit_key", "");
        assert_eq!(
            request(&s, "GET", "/hello", &[], b"").status,
            StatusCode::OK
        );
    }

    async fn acts_on_org_b(cx: Cx) -> ApiResult<Response> {
        cx.set_target_org("org-b");
        Ok(Response::no_content())
    }

    #[test]
    fn a_reported_target_org_is_recorded_in_the_audit_row() {
        let s = TestStores::new();
        let table = RouteTable::new(vec![Route::get("/act", Access::Public, acts_on_org_b)]);
        s.call(&table, "GET", "/act", &[], b"");
        let services = s.services();
        let db = services.db().unwrap();
        let rows = db
            .execute("SELECT target_org_id FROM audit_log", &[])
            .unwrap();
        assert_eq!(
            rows.first().unwrap().opt_str("target_org_id").unwrap(),
            Some("org-b")
        );
        let report = crate::audit::chain::verify(db, crate::audit::chain::UNKEYED, false).unwrap();
        assert!(report.ok, "{report:?}");
    }

    #[test]
    fn no_content_has_no_content_length() {
        let s = TestStores::new();
        let r = request(&s, "OPTIONS", "/echo", &[], b"");
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert!(!r.headers.contains_key("content-length"));
        let r = request(&s, "GET", "/hello", &[], b"");
        assert_eq!(
            r.headers["content-length"],
            r.body.len().to_string().as_str()
        );
    }

    thread_local! {
        /// The database file of the running test, for handlers that probe the write lock.
        static DB_FILE: std::cell::RefCell<Option<std::path::PathBuf>> = const { std::cell::RefCell::new(None) };
    }

    fn lock_is_free() -> bool {
        let path = DB_FILE.with(|f| f.borrow().clone()).unwrap();
        let other = rusqlite::Connection::open(path).unwrap();
        other.busy_timeout(std::time::Duration::ZERO).unwrap();
        let free = other.execute_batch("BEGIN IMMEDIATE").is_ok();
        if free {
            other.execute_batch("ROLLBACK").unwrap();
        }
        free
    }

    /// Shaped like login: a read, slow work (password hashing), then a write.
    async fn login_like(cx: Cx) -> ApiResult<Response> {
        let db = cx.db()?;
        db.execute("SELECT count(*) FROM users", &[])?;
        let free_while_hashing = lock_is_free();
        db.execute(
            "INSERT INTO rate_limits (key, tat) VALUES ('handler-write', 1)",
            &[],
        )?;
        Response::ok_json(&serde_json::json!({
            "free_while_hashing": free_while_hashing,
            "free_after_write": lock_is_free(),
        }))
    }

    /// Writes, then fails with the status in its path.
    async fn writes_then_fails(cx: Cx) -> ApiResult<Response> {
        let status: u16 = cx.param("status")?;
        cx.db()?.execute(
            "INSERT INTO rate_limits (key, tat) VALUES (?, 1)",
            &[crate::store::Value::from(format!("written-{status}"))],
        )?;
        Err(ApiError::new(
            StatusCode::from_u16(status).unwrap(),
            "test_failure",
            "failed on purpose",
        ))
    }

    fn unit_table() -> RouteTable {
        RouteTable::new(vec![
            Route::post("/login-like", Access::Public, login_like),
            Route::post("/fail/{status}", Access::Public, writes_then_fails),
            Route::post("/echo", Access::Public, echo),
            Route::get("/hello", Access::Public, hello),
        ])
    }

    fn written(s: &TestStores, key: &str) -> bool {
        !s.services()
            .db()
            .unwrap()
            .execute(
                "SELECT 1 FROM rate_limits WHERE key = ?",
                &[crate::store::Value::from(key)],
            )
            .unwrap()
            .is_empty()
    }

    fn audit_statuses(s: &TestStores) -> Vec<i64> {
        let services = s.services();
        let rows = services
            .db()
            .unwrap()
            .execute("SELECT status FROM audit_log ORDER BY seq", &[])
            .unwrap();
        rows.iter().map(|r| r.i64("status").unwrap()).collect()
    }

    #[test]
    fn a_mutation_hashes_without_the_write_lock_and_takes_it_at_its_first_write() {
        let s = TestStores::new();
        DB_FILE.with(|f| *f.borrow_mut() = Some(s.sql.path().to_owned()));
        let r = s.call(&unit_table(), "POST", "/login-like", &[], b"");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            (
                v["free_while_hashing"].as_bool(),
                v["free_after_write"].as_bool()
            ),
            (Some(true), Some(false))
        );
        assert!(written(&s, "handler-write"));
        assert!(
            lock_is_free(),
            "the unit of work is closed after the audit row"
        );
    }

    #[test]
    fn a_5xx_undoes_the_handler_writes_a_4xx_keeps_them_and_both_are_audited() {
        let s = TestStores::new();
        assert_eq!(
            s.call(&unit_table(), "POST", "/fail/500", &[], b"").status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            s.call(&unit_table(), "POST", "/fail/409", &[], b"").status,
            StatusCode::CONFLICT
        );
        assert!(!written(&s, "written-500"));
        assert!(written(&s, "written-409"));
        assert_eq!(audit_statuses(&s), vec![500, 409]);
        let services = s.services();
        let report = crate::audit::chain::verify(
            services.db().unwrap(),
            crate::audit::chain::UNKEYED,
            false,
        )
        .unwrap();
        assert!(report.ok && report.checked == 2, "{report:?}");
    }

    #[test]
    fn a_failed_audit_write_undoes_the_mutation() {
        let s = TestStores::new();
        s.call(&unit_table(), "GET", "/hello", &[], b"");
        s.services()
            .db()
            .unwrap()
            .execute(
                "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log
                 BEGIN SELECT RAISE(ABORT, 'disk full'); END",
                &[],
            )
            .unwrap();
        let r = s.call(&unit_table(), "POST", "/fail/409", &[], b"");
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!written(&s, "written-409"), "nothing changed unaudited");
        assert!(lock_is_free_for(&s));
    }

    fn lock_is_free_for(s: &TestStores) -> bool {
        DB_FILE.with(|f| *f.borrow_mut() = Some(s.sql.path().to_owned()));
        lock_is_free()
    }

    /// Serves one request and returns (statements on the request path, after the response).
    fn statements(s: &TestStores, method: &str, path: &str, body: &[u8]) -> (u64, u64) {
        let services = Rc::new(s.services());
        let mut headers = http::HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        let head = RequestHead::new(Method::from_bytes(method.as_bytes()).ok(), path, headers);
        futures::executor::block_on(serve(&unit_table(), services.clone(), head, body.to_vec()));
        let during = services.open_db().map_or(0, |db| db.statements());
        services.after_response();
        let after = services.open_db().map_or(0, |db| db.statements());
        (during, after - during)
    }

    #[test]
    fn a_read_costs_the_limiter_and_one_audit_insert_and_seals_after_the_response() {
        let s = TestStores::new();
        s.call(&unit_table(), "GET", "/hello", &[], b""); // migrates the fresh database
                                                          // No schema check, no transaction: the limiter's upsert and the audit row's insert.
                                                          // After the response: the sealer's read and its one update.
        assert_eq!(statements(&s, "GET", "/hello", b""), (2, 2));
        // A mutation that writes nothing takes no lock: the same two statements.
        assert_eq!(statements(&s, "POST", "/echo", br#"{"name":"a"}"#), (2, 2));
        // One that writes: BEGIN, its write, the audit insert, COMMIT.
        assert_eq!(statements(&s, "POST", "/fail/409", b"").0, 5);
        let services = s.services();
        let report = crate::audit::chain::verify(
            services.db().unwrap(),
            crate::audit::chain::UNKEYED,
            false,
        )
        .unwrap();
        assert!(report.ok && report.checked == 4, "{report:?}");
    }

    #[test]
    fn a_fresh_database_is_migrated_by_the_first_request_without_a_schema_check_per_request() {
        let s = TestStores::new();
        let (first, _) = statements(&s, "GET", "/hello", b"");
        assert!(first > 2, "the first request migrates ({first} statements)");
        assert_eq!(statements(&s, "GET", "/hello", b"").0, 2);
    }

    #[test]
    fn head_has_no_body() {
        let r = request(&TestStores::new(), "HEAD", "/hello", &[], b"");
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.body.is_empty());
    }
}
