//! The one error type of the API and the one place that maps it to a status and a JSON envelope.
//!
//! Every error a client sees has the body `{"error": "<code>", "message": "<text>", "request_id": "<id>"}`.
//! User errors keep their message; store failures become a generic 503 whose real cause only goes
//! to the log line (never to the client).

use http::{HeaderName, HeaderValue, StatusCode};
use serde::Serialize;

use crate::store::{StoreError, StoreKind};

/// Result of a handler or of any pipeline stage.
pub type ApiResult<T> = Result<T, ApiError>;

/// An error answered to the client as a JSON envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    /// Short machine-readable code, e.g. `invalid_json`.
    pub code: &'static str,
    /// Human text, safe to show to the client.
    pub message: String,
    /// Extra response headers (`Allow`, `Retry-After`, …).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Internal cause: written to the log line, never sent.
    pub cause: Option<Box<str>>,
    /// The typed kind of the store failure this error came from (constraint violations).
    pub store_kind: crate::store::ErrorKind,
    /// One more top-level member of the envelope beside the three, e.g. the 402's `quota`
    /// object (seed 000's quota error format).
    pub extra: Option<Box<(&'static str, serde_json::Value)>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
            cause: None,
            store_kind: crate::store::ErrorKind::Other,
            extra: None,
        }
    }

    /// An error whose status comes from the one list of codes ([`crate::error_codes`]). An
    /// unregistered code is a bug on our side: 500 `internal_error`, the code in the log.
    pub fn registered(code: &'static str, message: impl Into<String>) -> Self {
        match crate::error_codes::status_of(code).and_then(|s| StatusCode::from_u16(s).ok()) {
            Some(status) => Self::new(status, code, message),
            None => Self::internal(format!("unregistered error code `{code}`")),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body exceeds the limit of {limit} bytes"),
        )
    }

    /// 405 with the `Allow` header listing what the resource accepts.
    pub fn method_not_allowed(allow: &str) -> Self {
        let mut err = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed for this resource",
        );
        if let Ok(value) = HeaderValue::from_str(allow) {
            err.headers.push((http::header::ALLOW, value));
        }
        err
    }

    /// 503 for a backing store (SQLite, key-value, variables, outbound HTTP) that failed.
    pub fn unavailable(what: &str, cause: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            format!("{what} is unavailable, try again later"),
        )
        .with_cause(cause)
    }

    /// 503 `configuration_error` for a variable that is malformed or out of range; the cause
    /// (which variable, and why) goes to the log only.
    pub fn configuration(cause: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "configuration_error",
            "the service is misconfigured, try again later",
        )
        .with_cause(cause)
    }

    /// 500 for a bug on our side; the cause goes to the log only.
    pub fn internal(cause: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal server error",
        )
        .with_cause(cause)
    }

    /// Turns a failed write that broke a UNIQUE constraint into 409 `code`; anything else stays.
    pub fn conflict_on_unique(self, code: &'static str, message: &str) -> Self {
        match self.store_kind {
            crate::store::ErrorKind::Unique { .. } => Self::conflict(code, message),
            _ => self,
        }
    }

    pub fn with_cause(mut self, cause: impl Into<String>) -> Self {
        self.cause = Some(cause.into().into_boxed_str());
        self
    }

    /// Adds a member to the envelope (`{"error","message","request_id", name: value}`).
    pub fn with_extra(mut self, name: &'static str, value: serde_json::Value) -> Self {
        self.extra = Some(Box::new((name, value)));
        self
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The JSON envelope for this error.
    pub fn envelope(&self, request_id: &str) -> Vec<u8> {
        #[derive(Serialize)]
        struct Envelope<'a> {
            error: &'a str,
            message: &'a str,
            request_id: &'a str,
        }
        let mut body = serde_json::to_vec(&Envelope {
            error: self.code,
            message: &self.message,
            request_id,
        })
        // Serialising three strings cannot fail; keep a literal fallback rather than a panic.
        .unwrap_or_else(|_| {
            br#"{"error":"internal_error","message":"internal server error","request_id":""}"#
                .to_vec()
        });
        // One more member (`"quota": {…}`): spliced in before the closing brace. The name is a
        // constant identifier of ours, the value serialised JSON.
        if let Some(extra) = &self.extra {
            if let (Some(b'}'), Ok(value)) = (body.last(), serde_json::to_vec(&extra.1)) {
                body.pop();
                body.extend_from_slice(format!(",\"{}\":", extra.0).as_bytes());
                body.extend_from_slice(&value);
                body.push(b'}');
            }
        }
        body
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err.store {
            StoreKind::Config => ApiError::configuration(err.message),
            _ => {
                let mut api = ApiError::unavailable(err.store.name(), err.message);
                api.store_kind = err.kind;
                api
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_has_the_three_fields() {
        let body = ApiError::bad_request("invalid_json", "bad \"quote\"").envelope("rid-1");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"], "invalid_json");
        assert_eq!(v["message"], "bad \"quote\"");
        assert_eq!(v["request_id"], "rid-1");
        assert_eq!(v.as_object().unwrap().len(), 3);
    }

    #[test]
    fn store_errors_become_503_without_leaking_the_cause() {
        let err: ApiError = StoreError::sqlite("disk I/O error at /var/secret").into();
        assert_eq!(err.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!err.message.contains("/var/secret"));
        assert!(err.cause.unwrap().contains("disk I/O"));
    }

    #[test]
    fn configuration_errors_are_503_configuration_error_with_the_cause_in_the_log() {
        let err: ApiError = StoreError::new(
            StoreKind::Config,
            "rate_limit_api_per_minute: must be 1..=1000000 (got 2000000)",
        )
        .into();
        assert_eq!(
            (err.status, err.code),
            (StatusCode::SERVICE_UNAVAILABLE, "configuration_error")
        );
        assert!(!err.message.contains("rate_limit_api_per_minute"));
        assert!(err.cause.unwrap().contains("rate_limit_api_per_minute"));
    }

    #[test]
    fn unique_violations_become_conflicts() {
        let dup: ApiError =
            StoreError::from_sqlite_text("UNIQUE constraint failed: users.username").into();
        let err = dup.conflict_on_unique("user_exists", "taken");
        assert_eq!(
            (err.status, err.code),
            (StatusCode::CONFLICT, "user_exists")
        );
        let other: ApiError = StoreError::sqlite("disk I/O error").into();
        assert_eq!(
            other.conflict_on_unique("x", "y").status,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn method_not_allowed_carries_allow() {
        let err = ApiError::method_not_allowed("GET, HEAD");
        assert_eq!(err.headers[0].0, http::header::ALLOW);
        assert_eq!(err.headers[0].1, "GET, HEAD");
    }
}
