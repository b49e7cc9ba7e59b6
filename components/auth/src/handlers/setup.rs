//! First-user setup: creates the org and its admin (the platform admin), only while no user
//! exists, and logs the new admin in.

use serde::{Deserialize, Serialize};
use shared::auth::Tenant;
use shared::ids::uuid_v4;
use shared::secrets::{check_password_policy, hash_password};
use shared::store::Value;
use shared::validate::{Email, Username};
use shared::{ApiError, ApiResult, Cx, Response, StatusCode};

use crate::accounts::{self, UserView, VIEW_COLUMNS};
use crate::handlers::login::token_response;
use crate::login_sessions::Issuer;

#[derive(Serialize)]
struct Status {
    setup_required: bool,
}

/// `GET /api/v1/auth/setup/status`.
pub async fn status(cx: Cx) -> ApiResult<Response> {
    Response::ok_json(&Status {
        setup_required: accounts::setup_required(cx.db()?)?,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetupRequest {
    username: Username,
    email: Email,
    password: String,
    org_name: String,
}

/// An org name: 2–100 characters, no control characters.
pub fn check_org_name(name: &str) -> ApiResult<String> {
    let control = name.chars().any(char::is_control);
    let name = name.trim();
    let len = name.chars().count();
    if !(2..=100).contains(&len) || control {
        return Err(ApiError::bad_request(
            "invalid_field",
            "org_name must be 2-100 characters without control characters",
        ));
    }
    Ok(name.to_owned())
}

/// `POST /api/v1/auth/setup`: 201 with the admin and a token pair; 409 once any user exists.
pub async fn setup(cx: Cx) -> ApiResult<Response> {
    let input: SetupRequest = cx.json()?;
    let org_name = check_org_name(&input.org_name)?;
    check_password_policy(&input.password, input.username.as_str())
        .map_err(|msg| ApiError::bad_request("weak_password", msg))?;
    let db = cx.db()?;
    if !accounts::setup_required(db)? {
        return Err(setup_complete());
    }
    // The slow hash happens before the write lock is taken.
    let password_hash = hash_password(cx.services.random.as_ref(), &input.password)
        .map_err(|e| ApiError::internal(format!("hash password: {e}")))?;
    let random = cx.services.random.as_ref();
    let (org_id, user_id) = (uuid_v4(random)?, uuid_v4(random)?);
    let tenant = Tenant::of_org(org_id.clone());
    let now = cx.now_ms();
    let issuer = Issuer::new(&cx)?;
    let (user, issued) = db.transaction(|db| {
        // Only while no user exists: checked by the same statement that writes.
        db.execute(
            "INSERT INTO orgs (id, name, display_name, created_at)
             SELECT ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM users)",
            &[
                Value::from(org_id.as_str()),
                Value::from(org_name.as_str()),
                Value::from(org_name.as_str()),
                Value::from(now),
            ],
        )?;
        if db.changes()? == 0 {
            return Err(setup_complete());
        }
        let rows = db.execute(
            &format!(
                "INSERT INTO users (id, org_id, username, email, password_hash, role, status, platform_admin, created_at, updated_at)
                 VALUES (?, ?, ?, ?, ?, 'admin', 'active', 1, ?, ?)
                 RETURNING {VIEW_COLUMNS}"
            ),
            &[
                Value::from(user_id.as_str()),
                Value::from(org_id.as_str()),
                Value::from(input.username.as_str()),
                Value::from(input.email.as_str()),
                Value::from(password_hash.as_str()),
                Value::from(now),
                Value::from(now),
            ],
        )?;
        let user = UserView::from_row(&rows.first().ok_or_else(|| ApiError::internal("insert returned no row"))?)?;
        let issued = issuer.open(db, &user_id, &tenant, false)?;
        Ok((user, issued))
    })?;
    token_response(&cx, StatusCode::CREATED, &issued, Some(&user), false)
}

fn setup_complete() -> ApiError {
    ApiError::conflict("setup_complete", "setup is done: an account already exists")
}
