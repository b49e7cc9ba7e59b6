//! MFA enrolment: setup → verify-setup (enables, returns ten backup codes once) → disable.
//!
//! Every step changes a credential, so each needs a login session (never a personal access or
//! external token), and setup and disable also re-authenticate: `current_password`, or a valid
//! TOTP/backup `code` where MFA is on. A stolen session alone can neither plant its own second
//! factor nor remove the owner's. All three are limited like other second-factor attempts.

use serde::{Deserialize, Serialize};
use shared::secrets::{base32_encode, new_backup_codes, new_totp_secret, otpauth_url, verify_totp};
use shared::store::Value;
use shared::{ApiError, ApiResult, Cx, Response, StatusCode};

use crate::{accounts, mfa};

/// Re-authentication for setup and disable: the account password or a valid TOTP/backup code.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Reauth {
    #[serde(default)]
    current_password: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

impl Reauth {
    fn read(cx: &Cx) -> ApiResult<Self> {
        if cx.body.is_empty() {
            Ok(Self::default())
        } else {
            cx.json()
        }
    }

    /// 400 without either proof, 400 `invalid_mfa_code` / 403 `invalid_current_password` when
    /// the given one is wrong. A code is tried first (and consumed when valid); `codes` is false
    /// where there is no enabled second factor to prove (setup), so only the password counts.
    fn check(&self, cx: &Cx, user_id: &str, codes: bool) -> ApiResult<()> {
        let code = self
            .code
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty());
        match (code, self.current_password.as_deref()) {
            (Some(_), _) if !codes => Err(ApiError::bad_request(
                "reauthentication_required",
                "MFA is not on yet: current_password is required",
            )),
            (Some(code), _) => {
                if mfa::accept_code(cx, user_id, code)? {
                    Ok(())
                } else {
                    Err(ApiError::bad_request(
                        "invalid_mfa_code",
                        "the code is not a valid TOTP or backup code",
                    ))
                }
            }
            (None, password) => accounts::require_current_password(cx.db()?, user_id, password)
                .map_err(|e| {
                    if e.code == "current_password_required" {
                        ApiError::bad_request(
                            "reauthentication_required",
                            "current_password (or a valid TOTP/backup code) is required",
                        )
                    } else {
                        e
                    }
                }),
        }
    }
}

#[derive(Serialize)]
struct Enrolment {
    secret: String,
    otpauth_url: String,
}

/// `POST /api/v1/auth/mfa/setup` `{current_password}`: a new TOTP secret, pending until verified.
pub async fn setup(cx: Cx) -> ApiResult<Response> {
    let user = cx.user()?;
    user.require_login_session()?;
    Reauth::read(&cx)?.check(&cx, &user.user_id, false)?;
    let secret = new_totp_secret(cx.services.random.as_ref())?;
    let encoded = base32_encode(secret.as_bytes());
    let db = cx.db()?;
    db.execute(
        "UPDATE users SET mfa_secret = ?, mfa_last_step = NULL, updated_at = ? WHERE id = ? AND mfa_enabled = 0",
        &[Value::from(encoded.as_str()), Value::from(cx.now_ms()), Value::from(user.user_id.as_str())],
    )?;
    if db.changes()? == 0 {
        return Err(ApiError::conflict(
            "mfa_already_enabled",
            "MFA is already enabled; disable it first",
        ));
    }
    Response::json(
        StatusCode::CREATED,
        &Enrolment {
            otpauth_url: otpauth_url(&encoded, "StreamSpace", &user.username),
            secret: encoded,
        },
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeRequest {
    code: String,
}

#[derive(Serialize)]
struct BackupCodes {
    mfa_enabled: bool,
    backup_codes: Vec<String>,
}

/// `POST /api/v1/auth/mfa/verify-setup`: a valid code enables MFA; answers the ten backup codes,
/// shown this once (only their hashes are kept).
pub async fn verify_setup(cx: Cx) -> ApiResult<Response> {
    let user = cx.user()?;
    user.require_login_session()?;
    let input: CodeRequest = cx.json()?;
    let db = cx.db()?;
    let rows = db.execute(
        "SELECT mfa_secret, mfa_enabled FROM users WHERE id = ?",
        &[Value::from(user.user_id.as_str())],
    )?;
    let row = rows
        .first()
        .ok_or_else(|| ApiError::not_found("no such user"))?;
    if row.i64("mfa_enabled")? != 0 {
        return Err(ApiError::conflict(
            "mfa_already_enabled",
            "MFA is already enabled",
        ));
    }
    let secret = row
        .opt_str("mfa_secret")?
        .and_then(shared::secrets::base32_decode)
        .ok_or_else(|| {
            ApiError::bad_request("mfa_not_set_up", "call POST /api/v1/auth/mfa/setup first")
        })?;
    let step =
        verify_totp(&secret, input.code.trim(), cx.now_ms().div_euclid(1000)).ok_or_else(|| {
            ApiError::bad_request("invalid_mfa_code", "the code is not valid for this secret")
        })?;
    let codes = new_backup_codes(cx.services.random.as_ref())?;
    let now = cx.now_ms();
    db.transaction(|db| -> ApiResult<()> {
        db.execute(
            "UPDATE users SET mfa_enabled = 1, mfa_last_step = ?, updated_at = ? WHERE id = ? AND mfa_enabled = 0",
            &[Value::from(step), Value::from(now), Value::from(user.user_id.as_str())],
        )?;
        if db.changes()? == 0 {
            return Err(ApiError::conflict("mfa_already_enabled", "MFA is already enabled"));
        }
        db.execute(
            "DELETE FROM mfa_backup_codes WHERE user_id = ?",
            &[Value::from(user.user_id.as_str())],
        )?;
        for (_, hash) in &codes {
            db.execute(
                "INSERT INTO mfa_backup_codes (user_id, code_hash) VALUES (?, ?)",
                &[Value::from(user.user_id.as_str()), Value::from(hash.as_str())],
            )?;
        }
        Ok(())
    })?;
    Response::ok_json(&BackupCodes {
        mfa_enabled: true,
        backup_codes: codes
            .iter()
            .map(|(code, _)| code.expose().to_owned())
            .collect(),
    })
}

/// `DELETE /api/v1/auth/mfa` `{code}` or `{current_password}`: a valid TOTP or backup code, or
/// the account password, turns MFA off.
pub async fn disable(cx: Cx) -> ApiResult<Response> {
    let user = cx.user()?;
    user.require_login_session()?;
    Reauth::read(&cx)?.check(&cx, &user.user_id, true)?;
    mfa::remove(cx.db()?, &user.user_id, cx.now_ms())?;
    Ok(Response::no_content())
}
