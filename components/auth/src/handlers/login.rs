//! Login, refresh (rotation with reuse detection) and logout.

use serde::{Deserialize, Serialize};
use shared::auth::{cookies, csrf, Tenant};
use shared::secrets::{dummy_verify, kind_of, verify_password, TokenHash, TokenKind};
use shared::store::Value;
use shared::{header, ApiError, ApiResult, Cx, HeaderValue, Response, StatusCode};

use crate::accounts::{UserView, VIEW_COLUMNS};
use crate::login_sessions::{self, Issued, Issuer, Refreshed, SESSION_LIFETIME_MS};
use crate::mfa;

#[derive(Serialize)]
struct TokenPair<'a> {
    access_token: &'a str,
    refresh_token: &'a str,
    token_type: &'static str,
    expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a UserView>,
}

/// What a cookie login (or a cookie session's refresh) answers in its body: the tokens travel
/// only in the HttpOnly cookies, never where the page's script (or an injected one) could read
/// them. The CSRF token is not a credential by itself; the page echoes it in `X-CSRF-Token`.
#[derive(Serialize)]
struct CookieSession<'a> {
    token_type: &'static str,
    expires_in: i64,
    csrf_token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a UserView>,
}

/// The token-pair answer. With `cookie`, the tokens go only into `__Host-` cookies (access,
/// refresh) plus the session's CSRF cookie, and the body carries neither token.
pub fn token_response(
    cx: &Cx,
    status: StatusCode,
    issued: &Issued,
    user: Option<&UserView>,
    cookie: bool,
) -> ApiResult<Response> {
    if !cookie {
        return Response::json(
            status,
            &TokenPair {
                access_token: issued.access.expose(),
                refresh_token: issued.refresh.expose(),
                token_type: "Bearer",
                expires_in: issued.expires_in,
                user,
            },
        );
    }
    let lifetime_s = SESSION_LIFETIME_MS / 1000;
    let csrf_token = csrf::token_for(&cx.services, &issued.session_id)?;
    let mut response = Response::json(
        status,
        &CookieSession {
            token_type: "Cookie",
            expires_in: issued.expires_in,
            csrf_token: &csrf_token,
            user,
        },
    )?;
    for value in [
        cookies::set(cookies::SESSION, issued.access.expose(), issued.expires_in),
        cookies::set(cookies::REFRESH, issued.refresh.expose(), lifetime_s),
        cookies::set_readable(cookies::CSRF, &csrf_token, lifetime_s),
    ] {
        response = response.with_header(header::SET_COOKIE, set_cookie(&value)?);
    }
    Ok(response)
}

fn set_cookie(value: &str) -> ApiResult<HeaderValue> {
    HeaderValue::from_str(value).map_err(|_| ApiError::internal("cookie is not a header value"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    username: String,
    password: String,
    #[serde(default)]
    mfa_code: Option<String>,
    #[serde(default)]
    cookie: Option<bool>,
}

fn invalid_credentials() -> ApiError {
    ApiError::unauthorized("invalid_credentials", "invalid username or password")
}

/// `POST /api/v1/auth/login`.
pub async fn login(cx: Cx) -> ApiResult<Response> {
    let input: LoginRequest = cx.json()?;
    let db = cx.db()?;
    let rows = db.execute(
        &format!("SELECT {VIEW_COLUMNS}, password_hash FROM users WHERE username = ?"),
        &[Value::from(input.username.as_str())],
    )?;
    let Some(row) = rows.first() else {
        // Same cost as a wrong password: no user enumeration by timing.
        dummy_verify(&input.password);
        return Err(invalid_credentials());
    };
    if !verify_password(row.str("password_hash")?, &input.password) {
        return Err(invalid_credentials());
    }
    let user = UserView::from_row(&row)?;
    if user.status != "active" {
        return Err(ApiError::forbidden(
            "account_disabled",
            "the account is disabled",
        ));
    }
    if user.mfa_enabled {
        mfa::check_login_code(&cx, &user.id, input.mfa_code.as_deref())?;
    }
    let tenant = Tenant::of_org(user.org_id.clone());
    let issuer = Issuer::new(&cx)?;
    let cookie = input.cookie.unwrap_or(false);
    let issued = db.transaction(|db| issuer.open(db, &user.id, &tenant, cookie))?;
    token_response(&cx, StatusCode::OK, &issued, Some(&user), cookie)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RefreshRequest {
    #[serde(default)]
    refresh_token: Option<String>,
}

/// `POST /api/v1/auth/refresh`: spends the refresh token and issues a new pair. A spent token
/// presented again revokes its whole session (all tokens of the family) and answers 401.
pub async fn refresh(cx: Cx) -> ApiResult<Response> {
    let input: RefreshRequest = if cx.body.is_empty() {
        RefreshRequest::default()
    } else {
        cx.json()?
    };
    let token = input
        .refresh_token
        .or_else(|| cookies::get(&cx.head.headers, cookies::REFRESH).map(str::to_owned))
        .ok_or_else(|| {
            ApiError::unauthorized("missing_refresh_token", "refresh_token is required")
        })?;
    if kind_of(&token) != Some(TokenKind::Refresh) {
        return Err(ApiError::unauthorized(
            "invalid_token",
            "not a refresh token",
        ));
    }
    let hash = TokenHash::of(&token);
    let now = cx.now_ms();
    let issuer = Issuer::new(&cx)?;
    let outcome = cx
        .db()?
        .transaction(|db| login_sessions::refresh(db, issuer, &hash, now))?;
    match outcome {
        Refreshed::Issued(issued, cookie) => {
            token_response(&cx, StatusCode::OK, &issued, None, cookie)
        }
        Refreshed::Reused => Err(ApiError::unauthorized(
            "refresh_token_reused",
            "this refresh token was already used; the login session has been revoked",
        )),
        Refreshed::Invalid(code, message) => Err(ApiError::unauthorized(code, message)),
    }
}

/// `POST /api/v1/auth/logout`: ends the caller's login session at once.
pub async fn logout(cx: Cx) -> ApiResult<Response> {
    let user = cx.user()?;
    let session_id = user.session_id().ok_or_else(|| {
        ApiError::forbidden(
            "not_a_login_session",
            "personal access tokens are revoked, not logged out",
        )
    })?;
    login_sessions::revoke(cx.db()?, session_id, cx.now_ms(), "logout")?;
    let mut response = Response::no_content();
    if user.via_cookie() {
        for value in [
            cookies::clear(cookies::SESSION),
            cookies::clear(cookies::REFRESH),
            cookies::clear(cookies::CSRF),
        ] {
            response = response.with_header(header::SET_COOKIE, set_cookie(&value)?);
        }
    }
    Ok(response)
}
