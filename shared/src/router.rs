//! The route table type every component builds in its `routes()` function (axum's "a function that
//! produces our app"): method, path pattern with `{param}` segments, declared access, body kind,
//! handler. Matching prefers literal segments over parameters (`/teams/my-teams` beats
//! `/teams/{id}`), answers 405 with `Allow` when only the method is wrong, and lets HEAD use GET.

use std::future::Future;

use http::Method;

use crate::auth::{Role, Scope};
use crate::body_limit::BodyKind;
use crate::context::Cx;
use crate::error::ApiResult;
use crate::http::Response;
use crate::rate_limit::RateClass;
use crate::store::LocalFuture;

/// Who may call a route. Checked by the pipeline before the handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone; credentials are not even looked at.
    Public,
    /// Anyone; a valid credential is used when present (an invalid one counts as none), a store
    /// failure while checking one is still a 503.
    Optional,
    /// Any verified user.
    User,
    /// A verified user with one of these roles (list `Admin` explicitly where admins may).
    AnyRole(&'static [Role]),
    /// The platform admin (the account created by first-user setup).
    PlatformAdmin,
    /// A verified agent (`X-Agent-API-Key` bound to the agent id).
    Agent,
    /// Anyone; a valid agent key is used when present (seed 000 `OptionalAPIKey`); a store
    /// failure while checking it is still a 503.
    AgentOptional,
}

pub type HandlerFuture = LocalFuture<'static, ApiResult<Response>>;
type Handler = Box<dyn Fn(Cx) -> HandlerFuture>;

/// One route.
pub struct Route {
    pub method: Method,
    pub pattern: &'static str,
    pub access: Access,
    pub body: BodyKind,
    /// High-volume probe routes (health) whose access-log line is skippable by configuration.
    pub quiet: bool,
    /// What the route is rate-limited as (besides the general limit): its limits, as data.
    pub rate: RateClass,
    /// Scope a personal access token needs; `None` derives it from the method (safe methods
    /// need `read`, others `full`).
    pub scope: Option<Scope>,
    handler: Handler,
}

impl Route {
    pub fn new<F, Fut>(method: Method, pattern: &'static str, access: Access, handler: F) -> Self
    where
        F: Fn(Cx) -> Fut + 'static,
        Fut: Future<Output = ApiResult<Response>> + 'static,
    {
        Self {
            method,
            pattern,
            access,
            body: BodyKind::Standard,
            quiet: false,
            scope: None,
            rate: RateClass::General,
            handler: Box::new(move |cx| Box::pin(handler(cx))),
        }
    }

    pub fn get<F, Fut>(pattern: &'static str, access: Access, handler: F) -> Self
    where
        F: Fn(Cx) -> Fut + 'static,
        Fut: Future<Output = ApiResult<Response>> + 'static,
    {
        Self::new(Method::GET, pattern, access, handler)
    }

    pub fn post<F, Fut>(pattern: &'static str, access: Access, handler: F) -> Self
    where
        F: Fn(Cx) -> Fut + 'static,
        Fut: Future<Output = ApiResult<Response>> + 'static,
    {
        Self::new(Method::POST, pattern, access, handler)
    }

    pub fn put<F, Fut>(pattern: &'static str, access: Access, handler: F) -> Self
    where
        F: Fn(Cx) -> Fut + 'static,
        Fut: Future<Output = ApiResult<Response>> + 'static,
    {
        Self::new(Method::PUT, pattern, access, handler)
    }

    pub fn patch<F, Fut>(pattern: &'static str, access: Access, handler: F) -> Self
    where
        F: Fn(Cx) -> Fut + 'static,
        Fut: Future<Output = ApiResult<Response>> + 'static,
    {
        Self::new(Method::PATCH, pattern, access, handler)
    }

    pub fn delete<F, Fut>(pattern: &'static str, access: Access, handler: F) -> Self
    where
        F: Fn(Cx) -> Fut + 'static,
        Fut: Future<Output = ApiResult<Response>> + 'static,
    {
        Self::new(Method::DELETE, pattern, access, handler)
    }

    /// Accepts bodies up to the upload limit (50 MB).
    pub fn upload(mut self) -> Self {
        self.body = BodyKind::Upload;
        self
    }

    /// Marks a probe route: its access-log line is skipped unless `log_health_checks` is on, and
    /// it is not rate-limited (orchestrators probe often, from few addresses).
    pub fn quiet(mut self) -> Self {
        self.quiet = true;
        self.rate = RateClass::Exempt;
        self
    }

    /// Declares what the route is rate-limited as: one of the standard classes
    /// (`RateClass::Login`, …) or the component's own `const RateClass { limits: &[LimitSpec …] }`
    /// — data, so a new class needs no change in `shared` (see [`crate::rate_limit`]).
    pub fn rate(mut self, class: RateClass) -> Self {
        self.rate = class;
        self
    }

    /// Requires this scope of a personal access token regardless of the method.
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = Some(scope);
        self
    }

    /// The scope a token needs for this route and method.
    pub fn required_scope(&self, method: &Method) -> Scope {
        self.scope.unwrap_or(match *method {
            Method::GET | Method::HEAD | Method::OPTIONS => Scope::Read,
            _ => Scope::Full,
        })
    }

    pub(crate) fn call(&self, cx: Cx) -> HandlerFuture {
        (self.handler)(cx)
    }
}

/// Raw (still percent-encoded) path parameters of a match, by name.
pub type Params = Vec<(&'static str, String)>;

/// The outcome of a lookup.
pub enum Match<'a> {
    Found {
        route: &'a Route,
        params: Params,
    },
    /// The path exists but not with this method; `allow` lists what it takes.
    MethodNotAllowed {
        allow: String,
    },
    NotFound,
}

/// A component's routes.
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    pub fn new(routes: Vec<Route>) -> Self {
        Self { routes }
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Finds the route for `method` and `path` (HEAD falls back to GET).
    ///
    /// The resource at `path` is the most literal pattern that matches it: `/users/me` is its own
    /// resource, so `PATCH /users/me` is 405 with `Allow: GET, HEAD, OPTIONS` rather than
    /// `PATCH /users/{id}` with the id `me`.
    pub fn find(&self, method: &Method, path: &str) -> Match<'_> {
        let matching: Vec<(&Route, Params, Vec<bool>)> = self
            .routes
            .iter()
            .filter_map(|route| {
                match_pattern(route.pattern, path).map(|(params, shape)| (route, params, shape))
            })
            .collect();
        let Some(shape) = matching.iter().map(|(_, _, shape)| shape).max().cloned() else {
            return Match::NotFound;
        };
        let mut path_methods: Vec<&Method> = Vec::new();
        let mut found: Option<(&Route, Params)> = None;
        for (route, params, route_shape) in matching {
            if route_shape != shape {
                continue;
            }
            path_methods.push(&route.method);
            let method_fits =
                route.method == *method || (*method == Method::HEAD && route.method == Method::GET);
            if method_fits && found.is_none() {
                found = Some((route, params));
            }
        }
        if let Some((route, params)) = found {
            return Match::Found { route, params };
        }
        let mut allow: Vec<&str> = Vec::new();
        for m in path_methods {
            allow.push(m.as_str());
            if *m == Method::GET {
                allow.push("HEAD");
            }
        }
        allow.push("OPTIONS");
        allow.sort_unstable();
        allow.dedup();
        Match::MethodNotAllowed {
            allow: allow.join(", "),
        }
    }

    /// Methods served at `path`, for a plain `OPTIONS` answer; `None` when nothing is there.
    pub fn allow_header(&self, path: &str) -> Option<String> {
        match self.find(&Method::OPTIONS, path) {
            Match::MethodNotAllowed { allow } => Some(allow),
            Match::Found { .. } | Match::NotFound => None,
        }
    }
}

/// Matches `/a/{id}/b` against a path; returns the params and which segments were literal.
fn match_pattern(pattern: &'static str, path: &str) -> Option<(Params, Vec<bool>)> {
    let mut params = Vec::new();
    let mut shape = Vec::new();
    let mut pattern_segments = pattern.split('/');
    let mut path_segments = path.split('/');
    loop {
        match (pattern_segments.next(), path_segments.next()) {
            (None, None) => return Some((params, shape)),
            (Some(p), Some(s)) => {
                if let Some(name) = p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                    if s.is_empty() {
                        return None;
                    }
                    params.push((name, s.to_owned()));
                    shape.push(false);
                } else if p == s {
                    shape.push(true);
                } else {
                    return None;
                }
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Response;

    async fn ok(_cx: Cx) -> ApiResult<Response> {
        Ok(Response::no_content())
    }

    fn table() -> RouteTable {
        RouteTable::new(vec![
            Route::get("/api/v1/teams/{id}", Access::Public, ok),
            Route::get("/api/v1/teams/my-teams", Access::Public, ok),
            Route::post("/api/v1/teams", Access::Public, ok),
            Route::get("/api/v1/teams", Access::Public, ok),
            Route::delete("/api/v1/teams/{id}/members/{user_id}", Access::Public, ok),
        ])
    }

    #[test]
    fn literal_beats_parameter() {
        let t = table();
        match t.find(&Method::GET, "/api/v1/teams/my-teams") {
            Match::Found { route, params } => {
                assert_eq!(route.pattern, "/api/v1/teams/my-teams");
                assert!(params.is_empty());
            }
            _ => panic!("expected a match"),
        }
        match t.find(&Method::GET, "/api/v1/teams/t1") {
            Match::Found { route, params } => {
                assert_eq!(route.pattern, "/api/v1/teams/{id}");
                assert_eq!(params, vec![("id", "t1".to_owned())]);
            }
            _ => panic!("expected a match"),
        }
    }

    #[test]
    fn two_params() {
        match table().find(&Method::DELETE, "/api/v1/teams/t/members/u") {
            Match::Found { params, .. } => {
                assert_eq!(
                    params,
                    vec![("id", "t".to_owned()), ("user_id", "u".to_owned())]
                )
            }
            _ => panic!("expected a match"),
        }
    }

    #[test]
    fn wrong_method_lists_allow() {
        match table().find(&Method::PUT, "/api/v1/teams") {
            Match::MethodNotAllowed { allow } => assert_eq!(allow, "GET, HEAD, OPTIONS, POST"),
            _ => panic!("expected 405"),
        }
    }

    #[test]
    fn head_uses_get_and_unknown_is_404() {
        assert!(matches!(
            table().find(&Method::HEAD, "/api/v1/teams"),
            Match::Found { .. }
        ));
        assert!(matches!(
            table().find(&Method::GET, "/api/v1/nope"),
            Match::NotFound
        ));
        assert!(matches!(
            table().find(&Method::GET, "/api/v1/teams/"),
            Match::NotFound
        ));
        assert!(matches!(
            table().find(&Method::GET, "/api/v1/teams/a/b"),
            Match::NotFound
        ));
    }

    #[test]
    fn literal_resource_does_not_borrow_the_parameter_routes_methods() {
        let t = RouteTable::new(vec![
            Route::get("/api/v1/users/me", Access::Public, ok),
            Route::get("/api/v1/users/{id}", Access::Public, ok),
            Route::patch("/api/v1/users/{id}", Access::Public, ok),
            Route::delete("/api/v1/users/{id}", Access::Public, ok),
        ]);
        match t.find(&Method::PATCH, "/api/v1/users/me") {
            Match::MethodNotAllowed { allow } => assert_eq!(allow, "GET, HEAD, OPTIONS"),
            _ => panic!("expected 405"),
        }
        assert_eq!(
            t.allow_header("/api/v1/users/me").as_deref(),
            Some("GET, HEAD, OPTIONS")
        );
        assert_eq!(
            t.allow_header("/api/v1/users/u1").as_deref(),
            Some("DELETE, GET, HEAD, OPTIONS, PATCH")
        );
        assert!(matches!(
            t.find(&Method::PATCH, "/api/v1/users/u1"),
            Match::Found { .. }
        ));
    }

    #[test]
    fn options_allow_header() {
        assert_eq!(
            table().allow_header("/api/v1/teams").as_deref(),
            Some("GET, HEAD, OPTIONS, POST")
        );
        assert_eq!(table().allow_header("/nope"), None);
    }
}
