//! `GET /api/v1/auth/csrf`: a CSRF token for cookie sessions (see `shared::auth::csrf`).

use serde::Serialize;
use shared::auth::{cookies, csrf};
use shared::{header, ApiError, ApiResult, Cx, HeaderValue, Response};

#[derive(Serialize)]
struct CsrfToken<'a> {
    csrf_token: &'a str,
    expires_in: i64,
}

pub async fn issue(cx: Cx) -> ApiResult<Response> {
    let (token, expires_in) = csrf::issue(&cx.services)?;
    let value = |text: &str| {
        HeaderValue::from_str(text).map_err(|_| ApiError::internal("token is not a header value"))
    };
    // Readable by the page's script (not HttpOnly) so it can echo it in the header: that is the
    // double-submit pattern. A cross-site page can neither read it nor set the header.
    let cookie = format!(
        "{}={}; Path=/; Max-Age={expires_in}; Secure; SameSite=Strict",
        cookies::CSRF,
        token.expose()
    );
    Ok(Response::ok_json(&CsrfToken {
        csrf_token: token.expose(),
        expires_in,
    })?
    .with_header(
        header::HeaderName::from_static(csrf::HEADER),
        value(token.expose())?,
    )
    .with_header(header::SET_COOKIE, value(&cookie)?))
}
