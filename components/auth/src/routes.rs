//! The `auth` route table: the core identity routes here, each resource's routes in its handler
//! module.

use shared::rate_limit::RateClass;
use shared::{Access, Route, RouteTable};

use crate::handlers::license;
use crate::handlers::{api_keys, csrf, login, me, mfa, orgs, sessions, setup, teams, users};

pub fn table() -> RouteTable {
    let mut routes = vec![
        Route::get("/api/v1/auth/setup/status", Access::Public, setup::status),
        Route::post("/api/v1/auth/setup", Access::Public, setup::setup).rate(RateClass::Login),
        Route::post("/api/v1/auth/login", Access::Public, login::login).rate(RateClass::Login),
        Route::post("/api/v1/auth/refresh", Access::Public, login::refresh)
            .rate(RateClass::Refresh),
        Route::post("/api/v1/auth/logout", Access::User, login::logout),
        Route::get("/api/v1/auth/sessions", Access::User, sessions::list),
        Route::delete("/api/v1/auth/sessions/{id}", Access::User, sessions::revoke),
        Route::get("/api/v1/auth/csrf", Access::User, csrf::issue),
        Route::post("/api/v1/auth/mfa/setup", Access::User, mfa::setup)
            .rate(RateClass::SecondFactor),
        Route::post(
            "/api/v1/auth/mfa/verify-setup",
            Access::User,
            mfa::verify_setup,
        )
        .rate(RateClass::SecondFactor),
        Route::delete("/api/v1/auth/mfa", Access::User, mfa::disable).rate(RateClass::SecondFactor),
        Route::get("/api/v1/users/me", Access::User, me::me),
    ];
    routes.extend(users::routes());
    routes.extend(license::routes());
    routes.extend(orgs::routes());
    routes.extend(teams::routes());
    routes.extend(api_keys::routes());
    RouteTable::new(routes)
}
