//! Operations: health, version and the OpenAPI document.

use serde::Serialize;
use shared::store::StoreKind;
use shared::{header, ApiResult, Cx, HeaderValue, Response, StatusCode};

/// The OpenAPI 3.1 document, kept in the repository at `infra/openapi.json` (embedded without
/// its indentation by `build.rs`).
pub const OPENAPI: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.min.json"));

#[derive(Serialize)]
struct Checks {
    sqlite: &'static str,
    kv: &'static str,
    /// `ok`, `invalid: <variable>: <why>` (every malformed variable, `; `-separated) or
    /// `unavailable` (the variables host failed).
    config: String,
}

#[derive(Serialize)]
struct Health<'a> {
    status: &'static str,
    checks: Checks,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

/// `GET /health`: SQLite answers a query, the key-value store answers a lookup and every variable
/// the component maps is valid (`shared::config::VARIABLES`). 503 names the failing check (and
/// carries the error envelope's fields); a malformed variable is named with the reason (secret
/// values are never echoed); store causes go to the log only.
pub async fn health(cx: Cx) -> ApiResult<Response> {
    let problems = cx.services.settings().problems();
    let (config_ok, config) = if problems.is_empty() {
        (true, "ok".to_owned())
    } else if problems.iter().all(|p| p.store == StoreKind::Config) {
        let reasons: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
        (false, format!("invalid: {}", reasons.join("; ")))
    } else {
        (false, "unavailable".to_owned())
    };
    let sqlite = cx
        .services
        .db()
        .and_then(|db| db.execute("SELECT 1 AS ok", &[]));
    let kv = cx
        .services
        .kv()
        .and_then(|kv| kv.exists("audit:health-probe"));
    let label = |ok: bool| if ok { "ok" } else { "unavailable" };
    let checks = Checks {
        sqlite: label(sqlite.is_ok()),
        kv: label(kv.is_ok()),
        config,
    };
    let failing: Vec<&str> = [
        ("sqlite", sqlite.is_ok()),
        ("kv", kv.is_ok()),
        ("config", config_ok),
    ]
    .iter()
    .filter(|(_, ok)| !ok)
    .map(|(name, _)| *name)
    .collect();
    if failing.is_empty() {
        return Response::ok_json(&Health {
            status: "ok",
            checks,
            error: None,
            message: None,
            request_id: None,
        });
    }
    let causes: Vec<String> = [sqlite.err(), kv.err()]
        .into_iter()
        .flatten()
        .chain(problems)
        .map(|e| e.to_string())
        .collect();
    let mut response = Response::json(
        StatusCode::SERVICE_UNAVAILABLE,
        &Health {
            status: "unavailable",
            checks,
            error: Some("service_unavailable"),
            message: Some(format!("failing checks: {}", failing.join(", "))),
            request_id: Some(&cx.request_id),
        },
    )?
    .with_header(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response.cause = Some(causes.join("; "));
    Ok(response)
}

#[derive(Serialize)]
struct Version {
    name: &'static str,
    version: &'static str,
    commit: &'static str,
    spin_sdk: &'static str,
}

/// `GET /version` and `GET /api/v1/version`.
pub async fn version(_cx: Cx) -> ApiResult<Response> {
    Response::ok_json(&Version {
        name: "streamspace-on-spin",
        version: env!("CARGO_PKG_VERSION"),
        commit: env!("STREAMSPACE_COMMIT"),
        spin_sdk: env!("STREAMSPACE_SPIN_SDK"),
    })
}

/// `GET /api/openapi.json`: the document as kept in the repository.
pub async fn openapi(_cx: Cx) -> ApiResult<Response> {
    Ok(Response::bytes(
        StatusCode::OK,
        "application/json",
        OPENAPI.as_bytes().to_vec(),
    ))
}

#[cfg(test)]
mod tests {
    use shared::testing::TestStores;

    fn json(r: &shared::Response) -> serde_json::Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    #[test]
    fn health_ok_checks_both_stores() {
        let s = TestStores::new();
        let r = s.call(&crate::table(), "GET", "/health", &[], b"");
        assert_eq!(r.status, 200);
        let v = json(&r);
        assert_eq!(v["status"], "ok");
        assert_eq!(v["checks"]["sqlite"], "ok");
        assert_eq!(v["checks"]["kv"], "ok");
        assert_eq!(v["checks"]["config"], "ok");
    }

    #[test]
    fn out_of_range_variable_is_reported_not_replaced() {
        let s = TestStores::new();
        s.variables.set("rate_limit_api_per_minute", "2000000");
        let r = s.call(&crate::table(), "GET", "/health", &[], b"");
        assert_eq!(r.status, 503);
        let v = json(&r);
        assert_eq!(v["checks"]["sqlite"], "ok");
        assert_eq!(
            v["checks"]["config"],
            "invalid: rate_limit_api_per_minute: must be a whole number in 1..=1000000 (got `2000000`)"
        );
        assert_eq!(v["message"], "failing checks: config");
        assert!(r.cause.unwrap().contains("rate_limit_api_per_minute"));
        // Every other route answers the configuration error rather than a limit of 1000.
        let r = s.call(&crate::table(), "GET", "/api/v1/version", &[], b"");
        assert_eq!(r.status, 503);
        assert_eq!(json(&r)["error"], "configuration_error");
    }

    #[test]
    fn health_names_the_failing_store() {
        let s = TestStores::new();
        s.sql.fail(true);
        let r = s.call(
            &crate::table(),
            "GET",
            "/health",
            &[("x-request-id", "hc-1")],
            b"",
        );
        assert_eq!(r.status, 503);
        let v = json(&r);
        assert_eq!(v["checks"]["sqlite"], "unavailable");
        assert_eq!(v["checks"]["kv"], "ok");
        assert_eq!(v["error"], "service_unavailable");
        assert_eq!(v["request_id"], "hc-1");
        assert!(r.cause.unwrap().contains("injected fault"));

        s.sql.fail(false);
        s.kv.fail(true);
        let v = json(&s.call(&crate::table(), "GET", "/health", &[], b""));
        assert_eq!(v["checks"]["sqlite"], "ok");
        assert_eq!(v["checks"]["kv"], "unavailable");
    }

    #[test]
    fn version_both_paths() {
        let s = TestStores::new();
        for path in ["/version", "/api/v1/version"] {
            let v = json(&s.call(&crate::table(), "GET", path, &[], b""));
            assert_eq!(v["name"], "streamspace-on-spin");
            assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
            assert!(v["spin_sdk"].as_str().unwrap().starts_with("5.2"), "{v}");
            assert!(!v["commit"].as_str().unwrap().is_empty());
        }
    }

    #[test]
    fn openapi_is_served_as_kept() {
        let s = TestStores::new();
        let r = s.call(&crate::table(), "GET", "/api/openapi.json", &[], b"");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, super::OPENAPI.as_bytes());
        assert_eq!(json(&r)["openapi"], "3.1.0");
    }

    #[test]
    fn the_embedded_openapi_document_is_the_repository_one_without_indentation() {
        let kept: serde_json::Value =
            serde_json::from_str(include_str!("../../../../infra/openapi.json")).unwrap();
        let served: serde_json::Value = serde_json::from_str(super::OPENAPI).unwrap();
        assert_eq!(served, kept);
        assert!(!super::OPENAPI.contains("\n  "), "indentation is dropped");
    }
}
