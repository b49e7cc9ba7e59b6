//! `GET /api/v1/auth/csrf`: the CSRF token of the caller's login session (see
//! `shared::auth::csrf`). Derived, never stored: the call writes nothing, and answers 401 without
//! a login session (there is nothing to bind a token to).

use serde::Serialize;
use shared::auth::{cookies, csrf};
use shared::{header, ApiError, ApiResult, Cx, HeaderValue, Response};

use crate::login_sessions::SESSION_LIFETIME_MS;

#[derive(Serialize)]
struct CsrfToken<'a> {
    csrf_token: &'a str,
    expires_in: i64,
}

pub async fn issue(cx: Cx) -> ApiResult<Response> {
    let user = cx.user()?;
    let token = csrf::issue(&cx.services, user)?;
    // The token lives as long as its login session can.
    let expires_in = SESSION_LIFETIME_MS / 1000;
    let value = |text: &str| {
        HeaderValue::from_str(text).map_err(|_| ApiError::internal("token is not a header value"))
    };
    Ok(Response::ok_json(&CsrfToken {
        csrf_token: &token,
        expires_in,
    })?
    .with_header(
        header::HeaderName::from_static(csrf::HEADER),
        value(&token)?,
    )
    .with_header(
        header::SET_COOKIE,
        value(&cookies::set_readable(cookies::CSRF, &token, expires_in))?,
    ))
}
