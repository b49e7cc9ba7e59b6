//! The one list of error codes a client can see, with the one status each code is answered with.
//!
//! A code means the same status everywhere: a password login of a disabled account is 403
//! `account_disabled` (API.md), a token of a disabled account is 401 `user_disabled`.
//! `tests/e2e/tests/registries.rs` scans the sources of `shared/` and
//! `components/` for every code passed to an [`ApiError`](crate::ApiError) constructor (and to the
//! 401 helpers `AuthState::invalid` / `Refreshed::Invalid`) and fails when a code is missing here
//! or used with another status; the unit tests below prove no code is listed twice.
//! [`ApiError::registered`](crate::ApiError::registered) builds an error from this list alone.

/// `(code, status)`, sorted by code.
pub const ERROR_CODES: &[(&str, u16)] = &[
    ("account_disabled", 403),
    ("agent_credentials_required", 401),
    ("agent_exists", 409),
    ("agent_id_mismatch", 403),
    ("agent_id_required", 400),
    ("agent_key_mismatch", 403),
    ("agent_unavailable", 409),
    ("already_member", 409),
    ("bypass_not_allowed", 428),
    ("cannot_modify_self", 403),
    ("command_finished", 409),
    ("configuration_error", 503),
    ("connection_expired", 404),
    ("cors_denied", 403),
    ("csrf_invalid", 403),
    ("csrf_mismatch", 403),
    ("csrf_missing", 403),
    ("current_password_required", 400),
    ("forbidden", 403),
    ("insufficient_scope", 403),
    ("internal_error", 500),
    ("invalid_agent_key", 401),
    ("invalid_body", 400),
    ("invalid_content_length", 400),
    ("invalid_credentials", 401),
    ("invalid_current_password", 403),
    ("invalid_cursor", 400),
    ("invalid_field", 400),
    ("invalid_header", 400),
    ("invalid_json", 400),
    ("invalid_license", 400),
    ("invalid_manifest", 422),
    ("invalid_mfa_code", 400),
    ("invalid_path", 400),
    ("invalid_path_param", 400),
    ("invalid_query", 400),
    ("invalid_retention", 400),
    ("invalid_scope", 400),
    ("invalid_signature", 401),
    ("invalid_state", 409),
    ("invalid_ticket", 401),
    ("invalid_token", 401),
    ("invalid_url", 400),
    ("last_platform_admin", 409),
    ("license_expired", 400),
    ("license_limit_exceeded", 403),
    ("license_verification_unavailable", 409),
    ("login_session_required", 403),
    ("max_sessions", 403),
    ("method_not_allowed", 405),
    ("mfa_already_enabled", 409),
    ("mfa_not_set_up", 400),
    ("mfa_required", 401),
    ("missing_header", 400),
    ("missing_refresh_token", 401),
    ("missing_signature", 401),
    ("name_taken", 409),
    ("no_agents_available", 503),
    ("not_a_login_session", 403),
    ("not_delivered", 409),
    ("not_found", 404),
    ("not_registered", 409),
    ("not_replayable", 409),
    ("org_exists", 409),
    ("payload_too_large", 413),
    ("platform_admin_protected", 403),
    ("query_too_long", 400),
    ("quota_exceeded", 402),
    ("rate_limited", 429),
    ("reauthentication_required", 400),
    ("refresh_token_reused", 401),
    ("repository_exists", 409),
    ("repository_not_found", 404),
    ("secret_storage_unavailable", 400),
    ("service_unavailable", 503),
    ("session_expired", 401),
    ("setup_complete", 409),
    ("team_exists", 409),
    ("template_disabled", 409),
    ("template_not_found", 404),
    ("timestamp_out_of_tolerance", 401),
    ("unauthenticated", 401),
    ("unknown_field", 400),
    ("unknown_source", 404),
    ("unsupported_auth_type", 400),
    ("unsupported_media_type", 415),
    ("user_disabled", 401),
    ("user_exists", 409),
    ("user_required", 403),
    ("weak_password", 400),
    ("webhook_misconfigured", 503),
    ("webhook_not_configured", 401),
];

/// The status of a registered code.
pub fn status_of(code: &str) -> Option<u16> {
    ERROR_CODES
        .binary_search_by(|(c, _)| (*c).cmp(code))
        .ok()
        .and_then(|i| ERROR_CODES.get(i))
        .map(|(_, status)| *status)
}

/// The HTTP reason names the source scan understands in `ApiError::new(StatusCode::NAME, …)`.
pub fn status_named(name: &str) -> Option<u16> {
    Some(match name {
        "BAD_REQUEST" => 400,
        "UNAUTHORIZED" => 401,
        "FORBIDDEN" => 403,
        "NOT_FOUND" => 404,
        "METHOD_NOT_ALLOWED" => 405,
        "CONFLICT" => 409,
        "GONE" => 410,
        "PAYLOAD_TOO_LARGE" => 413,
        "UNSUPPORTED_MEDIA_TYPE" => 415,
        "UNPROCESSABLE_ENTITY" => 422,
        "PRECONDITION_REQUIRED" => 428,
        "TOO_MANY_REQUESTS" => 429,
        "INTERNAL_SERVER_ERROR" => 500,
        "SERVICE_UNAVAILABLE" => 503,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_exactly_one_status() {
        for pair in ERROR_CODES.windows(2) {
            assert!(
                pair[0].0 < pair[1].0,
                "sorted and unique: `{}` then `{}`",
                pair[0].0,
                pair[1].0
            );
        }
        for (code, status) in ERROR_CODES {
            assert!((400..600).contains(status), "{code}: {status}");
            assert!(
                code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{code}: snake_case"
            );
            assert_eq!(status_of(code), Some(*status));
        }
        assert_eq!(status_of("no_such_code"), None);
    }

    #[test]
    fn fixed_constructors_agree_with_the_registry() {
        use crate::ApiError;
        for err in [
            ApiError::not_found("x"),
            ApiError::payload_too_large(1),
            ApiError::method_not_allowed("GET"),
            ApiError::unavailable("sqlite", "x"),
            ApiError::internal("x"),
            ApiError::configuration("x"),
        ] {
            assert_eq!(
                status_of(err.code),
                Some(err.status.as_u16()),
                "{}",
                err.code
            );
        }
        let err = ApiError::registered("rate_limited", "slow down");
        assert_eq!(err.status.as_u16(), 429);
        let unknown = ApiError::registered("no_such_code", "x");
        assert_eq!(
            unknown.status.as_u16(),
            500,
            "an unregistered code is a bug"
        );
    }
}
