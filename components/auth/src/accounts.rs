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
