//! Request-body redaction for the audit log.
//!
//! [`redact_body`] returns the text to store in `audit_log.body`, or `None` when no body is stored:
//! - only JSON is kept (`application/json` or any `+json` type, parameters ignored); anything else,
//!   an empty body, a body that is not valid UTF-8 JSON, or a body over [`MAX_BODY_BYTES`] (10 KiB)
//!   yields `None` — no marker, so a stored body is always the (redacted) JSON that was sent;
//! - the JSON text is rewritten in place, keeping its key order, spacing and duplicates: only the
//!   value of a sensitive member is replaced, by the string `"[REDACTED]"` (whatever the value was:
//!   a string, a number, an object, an array). The scan goes through objects and arrays at any depth.
//!
//! Which member names are sensitive — the name is first normalised: decoded (so `"pass\u0077ord"`
//! counts), ASCII-lowercased, and stripped of `_`, `-`, `.` and spaces (`apiKey`, `api_key`,
//! `API-KEY` are one name). A normalised name is sensitive when it
//! - contains one of [`SECRET_STEMS`] (`password`, `passwd`, `passphrase`, `secret`, `token`,
//!   `apikey`, `privatekey`, `credential`, `authorization`, `cookie`) — so `new_password`,
//!   `client_secret`, `refresh_token`, `access_token`, `id_token`, `x-api-key` are caught;
//! - ends with `key` (`key`, `license_key`, `private_key`, `signing_key`, `access_key`);
//! - ends with `ticket` (`ticket`, the one-time connection tickets);
//! - is one of [`SECRET_NAMES`]: the one-time codes of our API (`code`, `mfa_code`, `totp_code`,
//!   `otp`, `backup_code(s)`, `recovery_code(s)`, `verification_code`) — exact, because a suffix
//!   rule would also hide harmless names such as `status_code` or `country_code`;
//! - or equals (after the same normalisation) one of the configured extra fields
//!   (`audit_redact_fields`, comma-separated, see [`extra_fields`]).
//!
//! Over-redaction (`token_type`, `"cookie": true`) is accepted: the audit log must never hold a
//! secret, and a hidden harmless value costs little.

use crate::body_limit::is_json;
use serde::de::IgnoredAny;

/// Bodies longer than this many bytes are not stored (seed: "max 10KB").
pub const MAX_BODY_BYTES: usize = 10 * 1024;

/// The replacement value, a JSON string.
pub const REDACTED: &str = "\"[REDACTED]\"";

/// A normalised member name containing one of these is sensitive.
pub const SECRET_STEMS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "privatekey",
    "credential",
    "authorization",
    "cookie",
];

/// Normalised member names that are sensitive exactly (one-time codes).
pub const SECRET_NAMES: &[&str] = &[
    "code",
    "mfacode",
    "totpcode",
    "otp",
    "otpcode",
    "backupcode",
    "backupcodes",
    "recoverycode",
    "recoverycodes",
    "verificationcode",
];

/// The extra field names of the `audit_redact_fields` variable: comma-separated, blanks ignored.
pub fn extra_fields(setting: &str) -> Vec<String> {
    setting
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The body as it is stored in the audit log (see the module documentation), or `None`.
pub fn redact_body(
    body: &[u8],
    content_type: Option<&str>,
    extra_fields: &[String],
) -> Option<String> {
    if body.is_empty() || body.len() > MAX_BODY_BYTES || !is_json(content_type?) {
        return None;
    }
    let text = std::str::from_utf8(body).ok()?;
    // Validate first: the rewriting scan below relies on well-formed JSON.
    serde_json::from_str::<IgnoredAny>(text).ok()?;
    let extra: Vec<String> = extra_fields.iter().map(|f| normalise(f)).collect();
    Some(rewrite(text, &|name: &str| is_sensitive(name, &extra)))
}

fn normalise(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '_' | '-' | '.' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether a (decoded, not yet normalised) member name is sensitive.
pub fn is_sensitive(name: &str, extra_normalised: &[String]) -> bool {
    let n = normalise(name);
    SECRET_STEMS.iter().any(|stem| n.contains(stem))
        || n.ends_with("key")
        || n.ends_with("ticket")
        || SECRET_NAMES.contains(&n.as_str())
        || extra_normalised.iter().any(|e| !e.is_empty() && *e == n)
}

#[derive(Clone, Copy)]
enum Frame {
    /// `true` while the next string is a member name.
    Object(bool),
    Array,
}

/// Rewrites well-formed JSON `text`, replacing the value of every member whose decoded name
/// `sensitive` accepts. Byte offsets always fall on ASCII delimiters, so slicing is UTF-8 safe.
fn rewrite(text: &str, sensitive: &dyn Fn(&str) -> bool) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'{' => {
                stack.push(Frame::Object(true));
                out.push('{');
                i += 1;
            }
            b'[' => {
                stack.push(Frame::Array);
                out.push('[');
                i += 1;
            }
            b'}' | b']' => {
                stack.pop();
                out.push(b[i] as char);
                i += 1;
            }
            b',' => {
                if let Some(Frame::Object(expect)) = stack.last_mut() {
                    *expect = true;
                }
                out.push(',');
                i += 1;
            }
            b'"' => {
                let end = string_end(b, i);
                let raw = &text[i..end];
                out.push_str(raw);
                i = end;
                if let Some(Frame::Object(expect @ true)) = stack.last_mut() {
                    *expect = false;
                    let name = serde_json::from_str::<String>(raw).unwrap_or_default();
                    if sensitive(&name) {
                        // Copy the whitespace and the colon, then replace the value.
                        while i < b.len() && b[i] != b':' {
                            i += 1;
                        }
                        let colon = (i + 1).min(b.len());
                        out.push_str(&text[end..colon]);
                        i = colon;
                        let start = skip_ws(b, i);
                        out.push_str(&text[i..start]);
                        i = value_end(b, start);
                        out.push_str(REDACTED);
                    }
                }
            }
            _ => {
                // Whitespace, colons, numbers, literals: copy up to the next structural byte.
                let start = i;
                while i < b.len() && !matches!(b[i], b'{' | b'}' | b'[' | b']' | b',' | b'"') {
                    i += 1;
                }
                out.push_str(&text[start..i]);
            }
        }
    }
    out
}

/// The offset just past the string starting at `start` (which holds `"`).
fn string_end(b: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// The offset just past the value starting at `start`.
fn value_end(b: &[u8], start: usize) -> usize {
    match b.get(start) {
        Some(b'"') => string_end(b, start),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut i = start;
            while i < b.len() {
                match b[i] {
                    b'"' => {
                        i = string_end(b, i);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            return i + 1;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            b.len()
        }
        _ => {
            let mut i = start;
            while i < b.len() && !matches!(b[i], b',' | b'}' | b']') && !b[i].is_ascii_whitespace()
            {
                i += 1;
            }
            i
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: Option<&str> = Some("application/json");

    fn r(body: &str) -> String {
        redact_body(body.as_bytes(), JSON, &[]).unwrap()
    }

    #[test]
    fn seed_example_exactly() {
        assert_eq!(
            r(r#"{"user": "alice", "password": "secret123", "profile": {"apiKey": "xyz"}}"#),
            r#"{"user": "alice", "password": "[REDACTED]", "profile": {"apiKey": "[REDACTED]"}}"#
        );
    }

    #[test]
    fn seed_fields_and_issue_fields() {
        for field in [
            "password",
            "token",
            "secret",
            "apiKey",
            "api_key",
            "authorization",
            "cookie",
            "refresh_token",
            "access_token",
            "client_secret",
            "private_key",
        ] {
            let body = format!(r#"{{"{field}":"v","keep":"k"}}"#);
            assert_eq!(
                r(&body),
                format!(r#"{{"{field}":"[REDACTED]","keep":"k"}}"#)
            );
        }
    }

    #[test]
    fn nested_arrays_and_objects() {
        assert_eq!(
            r(r#"[{"a":[{"token":"t1"},{"b":{"secret":"s"}}]},[[{"password":1}]]]"#),
            r#"[{"a":[{"token":"[REDACTED]"},{"b":{"secret":"[REDACTED]"}}]},[[{"password":"[REDACTED]"}]]]"#
        );
    }

    #[test]
    fn whole_structured_values_are_replaced() {
        assert_eq!(
            r(r#"{"secret": {"a": [1, "x", {"b": null}]}, "token": [1,2], "n": 5}"#),
            r#"{"secret": "[REDACTED]", "token": "[REDACTED]", "n": 5}"#
        );
        assert_eq!(
            r(r#"{"password":null,"apiKey":true,"token":-1.5e3}"#),
            r#"{"password":"[REDACTED]","apiKey":"[REDACTED]","token":"[REDACTED]"}"#
        );
    }

    #[test]
    fn mixed_case_and_separators() {
        assert_eq!(
            r(
                r#"{"PassWord":"a","APIKEY":"b","Api-Key":"c","REFRESH_TOKEN":"d","Authorization":"e"}"#
            ),
            r#"{"PassWord":"[REDACTED]","APIKEY":"[REDACTED]","Api-Key":"[REDACTED]","REFRESH_TOKEN":"[REDACTED]","Authorization":"[REDACTED]"}"#
        );
    }

    #[test]
    fn escaped_names_are_decoded() {
        assert_eq!(
            r(r#"{"pass\u0077ord":"x","a\"b":"kept"}"#),
            r#"{"pass\u0077ord":"[REDACTED]","a\"b":"kept"}"#
        );
    }

    #[test]
    fn string_values_that_look_like_names_are_kept() {
        // A value equal to a sensitive name is not a member name.
        assert_eq!(
            r(r#"{"field":"password","list":["token","secret"],"s":"a,\"b\"}"}"#),
            r#"{"field":"password","list":["token","secret"],"s":"a,\"b\"}"}"#
        );
    }

    #[test]
    fn our_api_secret_fields() {
        assert_eq!(
            r(r#"{"username":"u","password":"p","mfa_code":"123456","cookie":true}"#),
            r#"{"username":"u","password":"[REDACTED]","mfa_code":"[REDACTED]","cookie":"[REDACTED]"}"#
        );
        assert_eq!(r(r#"{"code":"654321"}"#), r#"{"code":"[REDACTED]"}"#);
        assert_eq!(r(r#"{"ticket":"tk"}"#), r#"{"ticket":"[REDACTED]"}"#);
        assert_eq!(
            r(r#"{"refresh_token":"r"}"#),
            r#"{"refresh_token":"[REDACTED]"}"#
        );
        assert_eq!(
            r(
                r#"{"license_key":"L","key":"K","new_password":"n","current_password":"c","backup_codes":["a"]}"#
            ),
            r#"{"license_key":"[REDACTED]","key":"[REDACTED]","new_password":"[REDACTED]","current_password":"[REDACTED]","backup_codes":"[REDACTED]"}"#
        );
        // Harmless look-alikes stay.
        assert_eq!(
            r(r#"{"status_code":200,"purpose":"session-connect","session_id":"s"}"#),
            r#"{"status_code":200,"purpose":"session-connect","session_id":"s"}"#
        );
    }

    #[test]
    fn extra_fields_from_the_variable() {
        let extra = extra_fields(" ssn , Credit_Card,,  ");
        assert_eq!(extra, vec!["ssn".to_owned(), "Credit_Card".to_owned()]);
        assert_eq!(
            redact_body(
                br#"{"SSN":"1","creditCard":"2","nested":[{"credit-card":"3"}],"name":"n"}"#,
                JSON,
                &extra
            )
            .unwrap(),
            r#"{"SSN":"[REDACTED]","creditCard":"[REDACTED]","nested":[{"credit-card":"[REDACTED]"}],"name":"n"}"#
        );
        assert!(extra_fields("").is_empty());
    }

    #[test]
    fn non_json_is_not_stored() {
        assert_eq!(
            redact_body(
                b"password=x",
                Some("application/x-www-form-urlencoded"),
                &[]
            ),
            None
        );
        assert_eq!(redact_body(b"{}", Some("text/plain"), &[]), None);
        assert_eq!(redact_body(b"{}", None, &[]), None);
        assert_eq!(redact_body(b"{not json", JSON, &[]), None);
        assert_eq!(redact_body(b"", JSON, &[]), None);
        assert_eq!(redact_body(&[b'"', 0xff, b'"'], JSON, &[]), None);
    }

    #[test]
    fn json_content_types() {
        for ct in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/merge-patch+json",
        ] {
            assert_eq!(
                redact_body(br#"{"token":"t"}"#, Some(ct), &[]).as_deref(),
                Some(r#"{"token":"[REDACTED]"}"#)
            );
        }
    }

    #[test]
    fn oversize_is_not_stored() {
        let fill = "a".repeat(MAX_BODY_BYTES);
        let big = format!(r#"{{"password":"p","x":"{fill}"}}"#);
        assert_eq!(redact_body(big.as_bytes(), JSON, &[]), None);
        let exact = format!(r#"{{"x":"{}"}}"#, "a".repeat(MAX_BODY_BYTES - 8));
        assert_eq!(exact.len(), MAX_BODY_BYTES);
        assert_eq!(redact_body(exact.as_bytes(), JSON, &[]), Some(exact));
    }

    #[test]
    fn scalars_and_unicode_pass_through() {
        assert_eq!(r(r#""just a string""#), r#""just a string""#);
        assert_eq!(r("42"), "42");
        assert_eq!(
            r(r#"{"名前":"ü✓","token":"é"}"#),
            r#"{"名前":"ü✓","token":"[REDACTED]"}"#
        );
        assert_eq!(
            r("{\n  \"token\" :\n  \"t\" ,\n  \"a\": 1\n}"),
            "{\n  \"token\" :\n  \"[REDACTED]\" ,\n  \"a\": 1\n}"
        );
    }

    #[test]
    fn duplicate_members_are_both_redacted() {
        assert_eq!(
            r(r#"{"token":"a","token":"b"}"#),
            r#"{"token":"[REDACTED]","token":"[REDACTED]"}"#
        );
    }

    #[test]
    fn output_is_valid_json() {
        let out = r(r#"{"a":[{"secret":{"x":[1,{"y":"}"}]}},{"k":"v"}],"password":"]"}"#);
        assert!(serde_json::from_str::<serde_json::Value>(&out).is_ok());
        assert_eq!(
            out,
            r#"{"a":[{"secret":"[REDACTED]"},{"k":"v"}],"password":"[REDACTED]"}"#
        );
    }
}
