//! HTTP route table, mirroring Spin's `spin-http` `routes.rs` (routefinder).
//!
//! * `"/exact"` matches only that path (one trailing slash is ignored);
//! * `"/prefix/..."` matches `/prefix`, `/prefix/` and anything below it;
//! * `":name"` segments match one path segment and are exposed as
//!   `spin-path-match-<name>` headers;
//! * exact routes beat wildcard routes, and among wildcards the longest
//!   (most segments, then most literal segments) wins;
//! * the base is always `/`, so the "based" route is the raw route with a
//!   single trailing slash stripped (`"/"` becomes `""`), as in Spin.

use anyhow::{bail, Result};

/// One routable entry.
#[derive(Debug, Clone)]
pub struct Route {
    /// The component that handles the route.
    pub component_id: String,
    /// The route as written in the manifest.
    pub raw_route: String,
    /// The route combined with the (always `/`) base.
    pub based_route: String,
    segments: Vec<Segment>,
    wildcard: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// The result of routing a path.
#[derive(Debug, Clone)]
pub struct RouteMatch<'a> {
    /// The matched route.
    pub route: &'a Route,
    /// Trailing part captured by a `/...` wildcard (`spin-path-info`).
    pub path_info: String,
    /// Named `:param` captures.
    pub params: Vec<(String, String)>,
}

impl RouteMatch<'_> {
    /// The raw route without a trailing `/...` (`spin-component-route`).
    pub fn raw_route_or_prefix(&self) -> &str {
        let raw = &self.route.raw_route;
        raw.strip_suffix("/...").unwrap_or(raw)
    }
}

/// The set of routes of an application.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// Builds a router from `(component_id, raw_route)` pairs. Duplicate
    /// routes are an error (Spin only warns and keeps the last one).
    pub fn build<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let mut routes: Vec<Route> = Vec::new();
        for (component_id, raw) in entries {
            let route = parse_route(component_id, raw)?;
            if let Some(prev) = routes.iter().find(|r| r.based_route == route.based_route) {
                bail!(
                    "duplicate route {raw:?}: used by components {:?} and {component_id:?}",
                    prev.component_id
                );
            }
            routes.push(route);
        }
        Ok(Self { routes })
    }

    /// All routes in manifest order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Finds the most specific route for `path` (no query string).
    pub fn route(&self, path: &str) -> Option<RouteMatch<'_>> {
        self.routes
            .iter()
            .filter_map(|r| match_route(r, path))
            .max_by_key(|m| {
                let literals = m
                    .route
                    .segments
                    .iter()
                    .filter(|s| matches!(s, Segment::Literal(_)))
                    .count();
                (!m.route.wildcard, m.route.segments.len(), literals)
            })
    }
}

fn parse_route(component_id: &str, raw: &str) -> Result<Route> {
    let absolute = if raw.starts_with('/') {
        raw.to_string()
    } else {
        format!("/{raw}")
    };
    let based = absolute.strip_suffix('/').unwrap_or(&absolute).to_string();
    let (pattern, wildcard) = match based.strip_suffix("/...") {
        Some(prefix) => (prefix.to_string(), true),
        None => (based.clone(), false),
    };
    if pattern.contains("...") {
        bail!("route {raw:?}: `...` is only allowed as the final segment");
    }
    let segments = pattern
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| match s.strip_prefix(':') {
            Some(name) => Segment::Param(name.to_string()),
            None => Segment::Literal(s.to_string()),
        })
        .collect();
    Ok(Route {
        component_id: component_id.to_string(),
        raw_route: raw.to_string(),
        based_route: based,
        segments,
        wildcard,
    })
}

fn match_route<'a>(route: &'a Route, path: &str) -> Option<RouteMatch<'a>> {
    let mut rest = path;
    let mut params = Vec::new();
    for segment in &route.segments {
        let after_slash = rest.strip_prefix('/')?;
        let end = after_slash.find('/').unwrap_or(after_slash.len());
        let value = &after_slash[..end];
        if value.is_empty() {
            return None;
        }
        match segment {
            Segment::Literal(lit) if lit == value => {}
            Segment::Literal(_) => return None,
            Segment::Param(name) => params.push((name.clone(), value.to_string())),
        }
        rest = &after_slash[end..];
    }
    if route.wildcard {
        // `rest` is "", "/" or "/more..." here; Spin reports exactly that.
        return Some(RouteMatch {
            route,
            path_info: rest.to_string(),
            params,
        });
    }
    (rest.is_empty() || rest == "/").then(|| RouteMatch {
        route,
        path_info: String::new(),
        params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(entries: &[(&str, &str)]) -> Router {
        Router::build(entries.iter().copied()).unwrap()
    }

    fn id<'a>(r: &'a Router, p: &str) -> Option<&'a str> {
        r.route(p).map(|m| m.route.component_id.as_str())
    }

    #[test]
    fn exact_routes() {
        let r = router(&[("foo", "/foo"), ("foobar", "/foo/bar")]);
        assert_eq!(id(&r, "/foo"), Some("foo"));
        assert_eq!(id(&r, "/foo/"), Some("foo"));
        assert_eq!(id(&r, "/foo/bar"), Some("foobar"));
        assert_eq!(id(&r, "/foo/baz"), None);
        assert_eq!(id(&r, "/foobar"), None);
        assert_eq!(id(&r, "/"), None);
    }

    #[test]
    fn wildcard_matches_prefix_itself_and_below() {
        let r = router(&[("api", "/api/...")]);
        for (path, info) in [
            ("/api", ""),
            ("/api/", "/"),
            ("/api/x", "/x"),
            ("/api/x/y/", "/x/y/"),
        ] {
            let m = r.route(path).unwrap();
            assert_eq!(m.route.component_id, "api");
            assert_eq!(m.path_info, info, "path {path}");
            assert_eq!(m.raw_route_or_prefix(), "/api");
            assert_eq!(m.route.based_route, "/api/...");
        }
        assert_eq!(id(&r, "/apix"), None);
        assert_eq!(id(&r, "/other"), None);
    }

    #[test]
    fn exact_beats_wildcard_and_longest_prefix_wins() {
        let r = router(&[
            ("all", "/..."),
            ("one", "/one/..."),
            ("onetwo", "/one/two/..."),
            ("one_exact", "/one"),
        ]);
        assert_eq!(id(&r, "/one"), Some("one_exact"));
        assert_eq!(id(&r, "/one/x"), Some("one"));
        assert_eq!(id(&r, "/one/two"), Some("onetwo"));
        assert_eq!(id(&r, "/one/two/three"), Some("onetwo"));
        assert_eq!(id(&r, "/"), Some("all"));
        assert_eq!(id(&r, "/zzz"), Some("all"));
        assert_eq!(r.route("/zzz").unwrap().path_info, "/zzz");
    }

    #[test]
    fn root_route_and_params() {
        let r = router(&[("root", "/"), ("user", "/users/:id/...")]);
        assert_eq!(id(&r, "/"), Some("root"));
        assert_eq!(r.routes()[0].based_route, "");
        let m = r.route("/users/42/posts").unwrap();
        assert_eq!(m.route.component_id, "user");
        assert_eq!(m.params, vec![("id".to_string(), "42".to_string())]);
        assert_eq!(m.path_info, "/posts");
        assert_eq!(m.raw_route_or_prefix(), "/users/:id");
    }

    #[test]
    fn duplicates_are_rejected() {
        assert!(Router::build([("a", "/x/..."), ("b", "/x/...")]).is_err());
        assert!(Router::build([("a", "/x"), ("b", "/x/")]).is_err());
        assert!(Router::build([("a", "/x"), ("b", "/x/...")]).is_ok());
    }
}
