//! Multi-factor authentication: TOTP (RFC 6238, SHA-1, 6 digits, 30 s, ±1 step) plus ten
//! single-use backup codes stored as hashes. A TOTP code is never accepted twice: the last
//! accepted time step is stored and only a later step passes, by one conditional `UPDATE`, so
//! two instances racing on the same code cannot both accept it. (Attempts are limited to 5 a
//! minute by the rate-limiting stage.)

use shared::secrets::{normalise_backup_code, verify_totp, TokenHash};
use shared::store::{Database, Value};
use shared::{ApiError, ApiResult, Cx};

fn mfa_required() -> ApiError {
    ApiError::unauthorized("mfa_required", "a valid mfa_code is required")
}

/// Checks a login's second factor: a fresh TOTP code or an unused backup code.
pub fn check_login_code(cx: &Cx, user_id: &str, code: Option<&str>) -> ApiResult<()> {
    let code = code
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .ok_or_else(mfa_required)?;
    if accept_code(cx, user_id, code)? {
        Ok(())
    } else {
        Err(mfa_required())
    }
}

/// True when `code` is a TOTP code for a step after the last accepted one, or an unused backup
/// code; either way it is consumed.
pub fn accept_code(cx: &Cx, user_id: &str, code: &str) -> ApiResult<bool> {
    let db = cx.db()?;
    let now = cx.now_ms();
    let rows = db.execute(
        "SELECT mfa_secret FROM users WHERE id = ?",
        &[Value::from(user_id)],
    )?;
    let Some(secret) = rows
        .first()
        .map(|r| r.opt_str("mfa_secret"))
        .transpose()?
        .flatten()
    else {
        return Ok(false);
    };
    let secret = shared::secrets::base32_decode(secret)
        .ok_or_else(|| ApiError::internal("stored MFA secret is not base32"))?;
    if let Some(step) = verify_totp(&secret, code, now.div_euclid(1000)) {
        db.execute(
            "UPDATE users SET mfa_last_step = ? WHERE id = ? AND (mfa_last_step IS NULL OR mfa_last_step < ?)",
            &[Value::from(step), Value::from(user_id), Value::from(step)],
        )?;
        return Ok(db.changes()? == 1);
    }
    let Some(normalised) = normalise_backup_code(code) else {
        return Ok(false);
    };
    db.execute(
        "UPDATE mfa_backup_codes SET used_at = ? WHERE user_id = ? AND code_hash = ? AND used_at IS NULL",
        &[
            Value::from(now),
            Value::from(user_id),
            Value::from(TokenHash::of(&normalised).as_str()),
        ],
    )?;
    Ok(db.changes()? == 1)
}

/// Turns MFA off for `user_id`: the secret, the replay step and every backup code go, in one
/// transaction (own disable, or a platform admin's reset).
pub fn remove(db: &Database, user_id: &str, now: i64) -> ApiResult<()> {
    db.transaction(|db| -> ApiResult<()> {
        db.execute(
            "UPDATE users SET mfa_enabled = 0, mfa_secret = NULL, mfa_last_step = NULL, updated_at = ? WHERE id = ?",
            &[Value::from(now), Value::from(user_id)],
        )?;
        db.execute(
            "DELETE FROM mfa_backup_codes WHERE user_id = ?",
            &[Value::from(user_id)],
        )?;
        Ok(())
    })
}
