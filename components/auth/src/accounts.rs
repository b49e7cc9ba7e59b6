//! Accounts: the user row, its public view, and lookups. No secret ever leaves this module in a
//! view: password hashes, MFA secrets and token hashes are not part of [`UserView`].

use serde::Serialize;
use shared::auth::{Role, Tenant};
use shared::store::{Database, Row, StoreError, Value};
use shared::time::Timestamp;
use shared::{ApiError, ApiResult};

/// What clients see of a user.
#[derive(Debug, Clone, Serialize)]
pub struct UserView {
    pub id: String,
    pub org_id: String,
    pub username: String,
    pub email: String,
    pub role: Role,
    pub status: String,
    pub platform_admin: bool,
    pub mfa_enabled: bool,
    pub created_at: Timestamp,
}

/// The columns [`UserView::from_row`] reads.
pub const VIEW_COLUMNS: &str =
    "id, org_id, username, email, role, status, platform_admin, mfa_enabled, created_at";

impl UserView {
    pub fn from_row(row: &Row<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.str("id")?.to_owned(),
            org_id: row.str("org_id")?.to_owned(),
            username: row.str("username")?.to_owned(),
            email: row.str("email")?.to_owned(),
            role: Role::parse(row.str("role")?)
                .ok_or_else(|| StoreError::sqlite("users.role holds an unknown role"))?,
            status: row.str("status")?.to_owned(),
            platform_admin: row.i64("platform_admin")? != 0,
            mfa_enabled: row.i64("mfa_enabled")? != 0,
            created_at: Timestamp::from_ms(row.i64("created_at")?),
        })
    }
}

/// A user of `tenant`'s org by id; a user of another org is not found.
pub fn find_in_org(db: &Database, tenant: &Tenant, user_id: &str) -> ApiResult<UserView> {
    let rows = db.execute(
        &format!("SELECT {VIEW_COLUMNS} FROM users WHERE id = ? AND org_id = ?"),
        &[Value::from(user_id), Value::from(tenant.org_id())],
    )?;
    let row = rows
        .first()
        .ok_or_else(|| ApiError::not_found("no such user"))?;
    Ok(UserView::from_row(&row)?)
}

/// Whether any other active admin-role platform admin than `except` exists: the last one may
/// never be disabled, demoted or deleted, or nobody could manage orgs, licenses and retention.
pub fn another_platform_admin(db: &Database, except: &str) -> Result<bool, StoreError> {
    let rows = db.execute(
        "SELECT EXISTS (SELECT 1 FROM users
                         WHERE platform_admin = 1 AND status = 'active' AND role = 'admin' AND id != ?)
                AS other",
        &[Value::from(except)],
    )?;
    Ok(rows
        .first()
        .map(|r| r.i64("other"))
        .transpose()?
        .unwrap_or(0)
        != 0)
}

/// Checks `password` against the stored hash of `user_id` (argon2id; a missing user costs the
/// same as a wrong password). For re-authentication before credential changes.
pub fn password_matches(db: &Database, user_id: &str, password: &str) -> ApiResult<bool> {
    let rows = db.execute(
        "SELECT password_hash FROM users WHERE id = ?",
        &[Value::from(user_id)],
    )?;
    match rows.first() {
        Some(row) => Ok(shared::secrets::verify_password(
            row.str("password_hash")?,
            password,
        )),
        None => {
            shared::secrets::dummy_verify(password);
            Ok(false)
        }
    }
}

/// 400 `current_password_required` without it, 403 `invalid_current_password` when wrong.
pub fn require_current_password(
    db: &Database,
    user_id: &str,
    current_password: Option<&str>,
) -> ApiResult<()> {
    let Some(current) = current_password.filter(|p| !p.is_empty()) else {
        return Err(ApiError::bad_request(
            "current_password_required",
            "current_password is required to change your own credentials",
        ));
    };
    if password_matches(db, user_id, current)? {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "invalid_current_password",
            "current_password is not your password",
        ))
    }
}

/// True while no account exists (first-user setup is open).
pub fn setup_required(db: &Database) -> Result<bool, StoreError> {
    let rows = db.execute("SELECT EXISTS (SELECT 1 FROM users) AS has_users", &[])?;
    Ok(rows
        .first()
        .map(|r| r.i64("has_users"))
        .transpose()?
        .unwrap_or(0)
        == 0)
}
