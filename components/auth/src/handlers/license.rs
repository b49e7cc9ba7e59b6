//! The deployment's license (`shared::license` has the format, the tiers and the rules).
//!
//! - `GET /api/v1/admin/license` (admins): tier, source, limits, usage and warnings.
//! - `POST /api/v1/admin/license/activate` `{license_key}` (the platform admin only: a license
//!   applies to the whole deployment, every org): verifies and stores the key, answers the same
//!   view.

use serde::{Deserialize, Serialize};
use shared::auth::Role;
use shared::license::{self, License, Limits, Status, Tier, Usage, Warning};
use shared::time::Timestamp;
use shared::{Access, ApiResult, Cx, Response, Route};

pub fn routes() -> Vec<Route> {
    vec![
        Route::get(
            "/api/v1/admin/license",
            Access::AnyRole(&[Role::Admin]),
            get,
        ),
        Route::post(
            "/api/v1/admin/license/activate",
            Access::PlatformAdmin,
            activate,
        ),
    ]
}

#[derive(Serialize)]
struct View {
    tier: Tier,
    /// `license` when a signed license is in force, `default` for community.
    source: &'static str,
    status: Status,
    licensee: Option<String>,
    issuer: Option<String>,
    issued_at: Option<Timestamp>,
    expires_at: Option<Timestamp>,
    expired: bool,
    activated_at: Option<Timestamp>,
    activated_by: Option<String>,
    /// `null` is unlimited.
    limits: Limits,
    usage: Usage,
    warnings: Vec<Warning>,
}

fn view(cx: &Cx, license: License) -> ApiResult<Response> {
    let usage = Usage::read(cx.db()?)?;
    let source = license.source();
    let document = license.document;
    let seconds = |s: i64| Timestamp::from_ms(s.saturating_mul(1000));
    Response::ok_json(&View {
        tier: license.tier,
        source,
        status: license.status,
        issued_at: document.as_ref().map(|d| seconds(d.issued_at)),
        expires_at: document.as_ref().map(|d| seconds(d.expires_at)),
        licensee: document.as_ref().map(|d| d.licensee.clone()),
        issuer: document.map(|d| d.issuer),
        expired: license.status == Status::Expired,
        activated_at: license.activated_at.map(Timestamp::from_ms),
        activated_by: license.activated_by,
        limits: license.limits,
        warnings: usage.warnings(&license.limits),
        usage,
    })
}

/// `GET /api/v1/admin/license`.
pub async fn get(cx: Cx) -> ApiResult<Response> {
    let license = license::current(&cx.services)?;
    view(&cx, license)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Activate {
    license_key: String,
}

/// `POST /api/v1/admin/license/activate`: 200 with the view; 400 `invalid_license` or
/// `license_expired`; 409 `license_verification_unavailable` without a public key.
pub async fn activate(cx: Cx) -> ApiResult<Response> {
    let input: Activate = cx.json()?;
    let license = license::activate(&cx.services, &input.license_key, &cx.user()?.user_id)?;
    view(&cx, license)
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value as Json};
    use shared::license::testing::{mint, PUBLIC};
    use shared::license::PUBLIC_KEY_VARIABLE;
    use shared::testing::{insert_user, TestStores};
    use shared::Response;

    const PASSWORD: &str = "correct horse battery staple";
    /// 2026-11-23T06:00:00Z, the test clock.
    const NOW_S: i64 = 1_795_413_600;

    fn call(
        s: &TestStores,
        method: &str,
        path: &str,
        token: &str,
        payload: Option<Json>,
    ) -> Response {
        let auth = format!("Bearer {token}");
        let text = payload.map(|p| p.to_string()).unwrap_or_default();
        let headers = [
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ];
        s.call(
            &crate::routes::table(),
            method,
            path,
            &headers,
            text.as_bytes(),
        )
    }

    fn body(r: &Response) -> Json {
        serde_json::from_slice(&r.body).unwrap()
    }

    fn post(s: &TestStores, path: &str, payload: Json) -> Response {
        s.call(
            &crate::routes::table(),
            "POST",
            path,
            &[("content-type", "application/json")],
            payload.to_string().as_bytes(),
        )
    }

    /// First-user setup (the platform admin) plus `extra` active users; the admin's token.
    fn admin_and_users(s: &TestStores, extra: usize) -> String {
        let r = post(
            s,
            "/api/v1/auth/setup",
            json!({"username": "root", "email": "root@example.com", "password": PASSWORD, "org_name": "Acme"}),
        );
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        let db = s.services();
        for i in 0..extra {
            insert_user(db.db().unwrap(), &format!("user{i}"), "other-org", "user").unwrap();
        }
        body(&r)["access_token"].as_str().unwrap().to_owned()
    }

    fn new_user(s: &TestStores, token: &str, name: &str) -> Response {
        call(
            s,
            "POST",
            "/api/v1/users",
            token,
            Some(
                json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}),
            ),
        )
    }

    #[test]
    fn community_by_default_with_usage_and_warnings() {
        let s = TestStores::new();
        let token = admin_and_users(&s, 7);
        let r = call(&s, "GET", "/api/v1/admin/license", &token, None);
        assert_eq!(r.status, 200);
        let v = body(&r);
        assert_eq!(v["tier"], "community");
        assert_eq!(v["source"], "default");
        assert_eq!(v["status"], "none");
        assert_eq!(v["expired"], false);
        assert_eq!(v["licensee"], Json::Null);
        assert_eq!(
            v["limits"],
            json!({"users": 10, "sessions": 20, "nodes": 3})
        );
        assert_eq!(v["usage"], json!({"users": 8, "sessions": 0, "nodes": 0}));
        assert_eq!(
            v["warnings"],
            json!([{"resource": "users", "used": 8, "limit": 10, "percent": 80, "level": 80}])
        );
        // Activation needs a configured public key.
        let r = call(
            &s,
            "POST",
            "/api/v1/admin/license/activate",
            &token,
            Some(json!({"license_key": "x.y"})),
        );
        assert_eq!(r.status, 409);
        assert_eq!(body(&r)["error"], "license_verification_unavailable");
    }

    #[test]
    fn user_creation_stops_at_the_limit_until_a_license_raises_it() {
        let s = TestStores::new();
        s.variables.set(PUBLIC_KEY_VARIABLE, PUBLIC);
        let token = admin_and_users(&s, 8);
        let r = new_user(&s, &token, "tenth");
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(
            r.headers.get("x-license-warning").unwrap(),
            "users 10/10 (100%)"
        );
        let r = new_user(&s, &token, "eleventh");
        assert_eq!(r.status, 403);
        assert_eq!(body(&r)["error"], "license_limit_exceeded");
        // Logins and reads are never blocked.
        let r = post(
            &s,
            "/api/v1/auth/login",
            json!({"username": "tenth", "password": PASSWORD}),
        );
        assert_eq!(r.status, 200);

        let key = mint(
            &json!({"issuer": "StreamSpace", "licensee": "Acme", "tier": "pro",
            "issued_at": NOW_S, "expires_at": NOW_S + 86_400}),
        );
        let r = call(
            &s,
            "POST",
            "/api/v1/admin/license/activate",
            &token,
            Some(json!({"license_key": key})),
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let v = body(&r);
        assert_eq!(
            (v["tier"].clone(), v["source"].clone()),
            (json!("pro"), json!("license"))
        );
        assert_eq!(v["licensee"], "Acme");
        assert_eq!(v["expires_at"], "2026-11-24T06:00:00.000Z");
        assert_eq!(v["warnings"], json!([]));
        let r = new_user(&s, &token, "eleventh");
        assert_eq!(r.status, 201);
        assert!(r.headers.get("x-license-warning").is_none());
    }

    #[test]
    fn only_the_platform_admin_activates_and_only_admins_read() {
        let s = TestStores::new();
        s.variables.set(PUBLIC_KEY_VARIABLE, PUBLIC);
        let token = admin_and_users(&s, 0);
        for (name, role) in [("orgadmin", "admin"), ("plain", "user")] {
            let r = call(
                &s,
                "POST",
                "/api/v1/users",
                &token,
                Some(
                    json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD, "role": role}),
                ),
            );
            assert_eq!(r.status, 201);
        }
        let login = |name: &str| {
            let r = post(
                &s,
                "/api/v1/auth/login",
                json!({"username": name, "password": PASSWORD}),
            );
            body(&r)["access_token"].as_str().unwrap().to_owned()
        };
        let (org_admin, plain) = (login("orgadmin"), login("plain"));
        assert_eq!(
            call(&s, "GET", "/api/v1/admin/license", &org_admin, None).status,
            200
        );
        assert_eq!(
            call(&s, "GET", "/api/v1/admin/license", &plain, None).status,
            403
        );
        let key = mint(
            &json!({"issuer": "i", "licensee": "l", "tier": "enterprise",
            "issued_at": NOW_S, "expires_at": NOW_S + 60}),
        );
        for t in [&org_admin, &plain] {
            let r = call(
                &s,
                "POST",
                "/api/v1/admin/license/activate",
                t,
                Some(json!({"license_key": key})),
            );
            assert_eq!(r.status, 403);
        }
        let r = call(
            &s,
            "POST",
            "/api/v1/admin/license/activate",
            &token,
            Some(json!({"license_key": format!("{key}x")})),
        );
        assert_eq!(
            (r.status.as_u16(), body(&r)["error"].clone()),
            (400, json!("invalid_license"))
        );
    }
}
