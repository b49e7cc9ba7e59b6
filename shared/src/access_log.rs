//! One structured JSON line per request on stdout (pipeline stage 9). Spin forwards component
//! stdout to its log. Level by status class: `info` for 1xx–3xx, `warn` for 4xx, `error` for 5xx.
//! Internal error causes appear here (field `cause`) and never in the response. Request and
//! response bodies and headers other than the user agent are never logged.

use std::io::Write;

use serde::Serialize;

/// The fields of one access-log line.
#[derive(Debug, Clone, Serialize)]
pub struct AccessLine<'a> {
    pub ts: String,
    pub level: &'static str,
    pub msg: &'static str,
    pub request_id: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<&'a str>,
    /// The verified principal (`user:<id>`, `agent:<id>`), once a credential stage knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<&'a str>,
}

pub fn level_for(status: u16) -> &'static str {
    match status {
        500.. => "error",
        400..=499 => "warn",
        _ => "info",
    }
}

/// Where log lines go: stdout on Spin, a buffer in unit tests.
pub trait LogSink {
    fn write_line(&self, line: &str);
}

/// Standard output (Spin forwards it to its log). A failing stdout is ignored: logging must never
/// fail a request (and `println!` would panic on a write error).
#[derive(Debug, Default, Clone, Copy)]
pub struct Stdout;

impl LogSink for Stdout {
    fn write_line(&self, line: &str) {
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(line.as_bytes());
        let _ = stdout.write_all(b"\n");
    }
}

/// Writes the line to `sink`.
pub fn write(sink: &dyn LogSink, line: &AccessLine<'_>) {
    if let Ok(text) = serde_json::to_string(line) {
        sink.write_line(&text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(level_for(200), "info");
        assert_eq!(level_for(302), "info");
        assert_eq!(level_for(404), "warn");
        assert_eq!(level_for(503), "error");
    }

    #[test]
    fn line_shape() {
        let line = AccessLine {
            ts: "t".into(),
            level: "info",
            msg: "request",
            request_id: "r",
            method: "GET",
            path: "/health",
            status: 200,
            duration_ms: 0.5,
            client_ip: Some("127.0.0.1".into()),
            user_agent: Some("curl"),
            principal: None,
            error: None,
            cause: None,
        };
        let v: serde_json::Value = serde_json::to_value(&line).unwrap();
        for key in [
            "request_id",
            "method",
            "path",
            "status",
            "duration_ms",
            "client_ip",
            "user_agent",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
        assert!(v.get("principal").is_none());
    }
}
