//! Body size limits (pipeline stage 3), the seed's numbers: 10 MB by default, 5 MB for JSON,
//! 50 MB on routes declared as uploads. `Content-Length` is checked before a byte is read; the
//! actual body is then read with the same cap (a missing or lying `Content-Length` changes nothing).

use crate::error::ApiError;

pub const DEFAULT_LIMIT: usize = 10 * 1024 * 1024;
pub const JSON_LIMIT: usize = 5 * 1024 * 1024;
pub const UPLOAD_LIMIT: usize = 50 * 1024 * 1024;

/// What kind of body a route takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyKind {
    /// Ordinary routes: 10 MB, 5 MB when the body is JSON.
    #[default]
    Standard,
    /// File uploads: 50 MB.
    Upload,
}

/// The cap for a request.
pub fn limit_for(kind: BodyKind, content_type: Option<&str>) -> usize {
    match kind {
        BodyKind::Upload => UPLOAD_LIMIT,
        BodyKind::Standard if content_type.is_some_and(is_json) => JSON_LIMIT,
        BodyKind::Standard => DEFAULT_LIMIT,
    }
}

/// `application/json` or `application/<x>+json`, parameters ignored.
pub fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Rejects a declared length over the cap, and a `Content-Length` that is not a number.
pub fn check_declared(content_length: Option<&str>, limit: usize) -> Result<(), ApiError> {
    let Some(raw) = content_length else {
        return Ok(());
    };
    match raw.trim().parse::<u64>() {
        Ok(n) if n > limit as u64 => Err(ApiError::payload_too_large(limit)),
        Ok(_) => Ok(()),
        Err(_) => Err(ApiError::bad_request(
            "invalid_content_length",
            "Content-Length is not a number",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_by_kind_and_type() {
        assert_eq!(limit_for(BodyKind::Standard, None), DEFAULT_LIMIT);
        assert_eq!(
            limit_for(BodyKind::Standard, Some("application/json; charset=utf-8")),
            JSON_LIMIT
        );
        assert_eq!(
            limit_for(BodyKind::Standard, Some("application/merge-patch+json")),
            JSON_LIMIT
        );
        assert_eq!(
            limit_for(BodyKind::Standard, Some("text/plain")),
            DEFAULT_LIMIT
        );
        assert_eq!(
            limit_for(BodyKind::Upload, Some("application/json")),
            UPLOAD_LIMIT
        );
    }

    #[test]
    fn declared_length() {
        assert!(check_declared(None, 10).is_ok());
        assert!(check_declared(Some("10"), 10).is_ok());
        assert_eq!(
            check_declared(Some("11"), 10).unwrap_err().status,
            http::StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            check_declared(Some("ten"), 10).unwrap_err().status,
            http::StatusCode::BAD_REQUEST
        );
    }
}
