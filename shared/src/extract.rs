//! Typed extraction of request input, validated in the extractor rather than in the handler:
//! JSON bodies reject unknown fields and wrong types with a 400 that names the field; query strings
//! and path parameters parse into typed values with a 400 naming the parameter.

use std::str::FromStr;

use serde::de::DeserializeOwned;

use crate::body_limit::is_json;
use crate::error::{ApiError, ApiResult};

/// Parses a JSON body into `T`. Request types declare `#[serde(deny_unknown_fields)]` (a contract
/// test checks every one), so an unknown field is refused instead of silently dropped; a wrong
/// type, a missing field or an unknown field is a 400 that names the field by its path
/// (`nested.flag`, `items[2]`).
///
/// The path is recovered from the error's position with a small scan of the body rather than by
/// wrapping the deserializer: wrappers are instantiated per request type and cost tens of KB of
/// WebAssembly in every component, this costs one function.
pub fn json_body<T: DeserializeOwned>(content_type: Option<&str>, body: &[u8]) -> ApiResult<T> {
    if !content_type.is_some_and(is_json) {
        return Err(ApiError::new(
            http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected Content-Type: application/json",
        ));
    }
    // Every body of the API is a JSON object; serde would fill a struct from an array too
    // (`[null, null]` as its fields in order), which the document does not allow.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request(
            "invalid_json",
            "the body must be a JSON object",
        ));
    }
    let body = integral_floats(body);
    serde_json::from_slice(&body).map_err(|err| describe(&err, &body))
}

/// JSON Schema counts `90.0` as an integer, serde does not: numbers with an all-zero fraction
/// (and no exponent) lose it, outside strings, so an integer field takes them.
fn integral_floats(body: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if !body.windows(2).any(|w| w == b".0") {
        return std::borrow::Cow::Borrowed(body);
    }
    let mut out = Vec::with_capacity(body.len());
    let (mut i, mut in_string, mut escaped) = (0, false, false);
    while i < body.len() {
        let b = body[i];
        if in_string {
            out.push(b);
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
        } else if b == b'.' && out.last().is_some_and(u8::is_ascii_digit) {
            let zeros = body[i + 1..].iter().take_while(|c| **c == b'0').count();
            let next = body.get(i + 1 + zeros).copied();
            if zeros > 0 && !matches!(next, Some(b'0'..=b'9' | b'e' | b'E')) {
                i += 1 + zeros;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    std::borrow::Cow::Owned(out)
}

fn describe(err: &serde_json::Error, body: &[u8]) -> ApiError {
    use serde_json::error::Category;
    if !matches!(err.classify(), Category::Data) {
        return ApiError::bad_request("invalid_json", format!("invalid JSON: {err}"));
    }
    let full = err.to_string();
    // serde_json appends " at line L column C"; the path says where, more usefully.
    let text = full
        .rsplit_once(" at line ")
        .map_or(full.as_str(), |(t, _)| t);
    let path = json_path_at(body, byte_offset(body, err.line(), err.column()));
    if text.starts_with("unknown field") {
        // The scan stops just after the offending key, so the path ends with it.
        let field = if path.is_empty() {
            text.to_owned()
        } else {
            format!("unknown field `{path}`")
        };
        return ApiError::bad_request("unknown_field", field);
    }
    if path.is_empty() {
        ApiError::bad_request("invalid_field", text.to_owned())
    } else {
        ApiError::bad_request("invalid_field", format!("field `{path}`: {text}"))
    }
}

/// The byte offset of a one-based line and column.
fn byte_offset(body: &[u8], line: usize, column: usize) -> usize {
    let line_start: usize = body
        .split(|b| *b == b'\n')
        .take(line.saturating_sub(1))
        .map(|l| l.len() + 1)
        .sum();
    (line_start + column).min(body.len())
}

enum Frame {
    Object {
        key: Option<String>,
        expecting_key: bool,
    },
    Array {
        index: usize,
    },
}

/// The path of the value being read at `offset` in a JSON text: `a.b[2].c`. A tiny scanner: it
/// tracks containers, keys and array indexes, and reads strings with their escapes kept as is.
fn json_path_at(body: &[u8], offset: usize) -> String {
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < offset {
        match body[i] {
            b'{' => stack.push(Frame::Object {
                key: None,
                expecting_key: true,
            }),
            b'[' => stack.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Object { expecting_key, .. }) => *expecting_key = true,
                Some(Frame::Array { index }) => *index += 1,
                None => {}
            },
            b':' => {
                if let Some(Frame::Object { expecting_key, .. }) = stack.last_mut() {
                    *expecting_key = false;
                }
            }
            b'"' => {
                let start = i + 1;
                let mut end = start;
                while end < body.len() && body[end] != b'"' {
                    end += if body[end] == b'\\' { 2 } else { 1 };
                }
                if let Some(Frame::Object {
                    key,
                    expecting_key: true,
                }) = stack.last_mut()
                {
                    *key = Some(
                        String::from_utf8_lossy(&body[start..end.min(body.len())]).into_owned(),
                    );
                }
                i = end;
            }
            _ => {}
        }
        i += 1;
    }
    let mut path = String::new();
    for frame in &stack {
        match frame {
            Frame::Object { key: Some(key), .. } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Frame::Object { key: None, .. } => {}
            Frame::Array { index } => path.push_str(&format!("[{index}]")),
        }
    }
    path
}

/// Parses the raw query string into `T` (numbers and booleans from their text form).
pub fn query<T: DeserializeOwned>(raw_query: &str) -> ApiResult<T> {
    serde_urlencoded::from_str(raw_query)
        .map_err(|err| ApiError::bad_request("invalid_query", format!("query string: {err}")))
}

/// The first value of a query parameter, decoded.
pub fn query_value(raw_query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(raw_query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A path parameter, percent-decoded and parsed into `T`.
pub fn path_param<T: FromStr>(raw: &str, name: &str) -> ApiResult<T> {
    let decoded = percent_decode(raw).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_path_param",
            format!("path parameter `{name}` is not valid UTF-8"),
        )
    })?;
    decoded.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_path_param",
            format!("path parameter `{name}` is not valid"),
        )
    })
}

/// Decodes `%XX` escapes (not `+`: that is only special in query strings). `None` when an escape
/// is malformed or the result is not UTF-8.
pub fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).and_then(|b| char::from(*b).to_digit(16))?;
            let lo = bytes.get(i + 2).and_then(|b| char::from(*b).to_digit(16))?;
            out.push(u8::try_from(hi * 16 + lo).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Create {
        name: String,
        count: u32,
        #[serde(default)]
        nested: Option<Inner>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        flag: bool,
    }

    const JSON: Option<&str> = Some("application/json");

    /// serde fills a struct from an array (`["a", 2]` as `name`, `count`); the API's bodies
    /// are objects, so an array (or any other JSON value) is a 400 (found by Schemathesis:
    /// `PATCH /users/{id}` took `[null, null]`).
    #[test]
    fn a_body_that_is_not_an_object_is_refused() {
        for body in [
            &br#"["a", 2]"#[..],
            b"[null, null]",
            b"\"a\"",
            b"2",
            b"null",
            b" [] ",
        ] {
            let err = json_body::<Create>(JSON, body).unwrap_err();
            assert_eq!(
                err.code,
                "invalid_json",
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let v: Create = json_body(JSON, b" \n{\"name\":\"a\",\"count\":2}").unwrap();
        assert_eq!(v.count, 2);
    }

    /// JSON Schema counts `2.0` as an integer: an integer field takes it (Schemathesis sent
    /// `older_than_days: 2009.0`); a real fraction, an exponent and text inside strings are left
    /// as they are.
    #[test]
    fn integral_floats_fill_integer_fields() {
        let v: Create = json_body(JSON, br#"{"name":"x.0 1.00","count":2009.000}"#).unwrap();
        assert_eq!((v.name.as_str(), v.count), ("x.0 1.00", 2009));
        let v: Create = json_body(JSON, br#"{"name":"a\"1.0","count":1.0}"#).unwrap();
        assert_eq!((v.name.as_str(), v.count), ("a\"1.0", 1));
        for body in [
            &br#"{"name":"a","count":2.5}"#[..],
            br#"{"name":"a","count":2.0e1}"#,
        ] {
            assert_eq!(
                json_body::<Create>(JSON, body).unwrap_err().code,
                "invalid_field",
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn parses_a_valid_body() {
        let v: Create =
            json_body(JSON, br#"{"name":"a","count":2,"nested":{"flag":true}}"#).unwrap();
        assert_eq!(v.count, 2);
    }

    #[test]
    fn unknown_fields_are_named_with_their_path() {
        let err = json_body::<Create>(JSON, br#"{"name":"a","count":2,"admin":true}"#).unwrap_err();
        assert_eq!(err.code, "unknown_field");
        assert!(err.message.contains("admin"), "{}", err.message);
        let err = json_body::<Create>(
            JSON,
            br#"{"name":"a","count":2,"nested":{"flag":true,"x":1}}"#,
        )
        .unwrap_err();
        assert!(err.message.contains("nested.x"), "{}", err.message);
    }

    #[test]
    fn wrong_types_name_the_field() {
        let err = json_body::<Create>(JSON, br#"{"name":"a","count":"two"}"#).unwrap_err();
        assert_eq!(err.code, "invalid_field");
        assert!(err.message.contains("`count`"), "{}", err.message);
        let err = json_body::<Create>(JSON, br#"{"name":"a","count":1,"nested":{"flag":"yes"}}"#)
            .unwrap_err();
        assert!(err.message.contains("nested.flag"), "{}", err.message);
    }

    #[test]
    fn missing_field_and_syntax_errors() {
        let err = json_body::<Create>(JSON, br#"{"name":"a"}"#).unwrap_err();
        assert!(err.message.contains("count"), "{}", err.message);
        assert_eq!(
            json_body::<Create>(JSON, b"{").unwrap_err().code,
            "invalid_json"
        );
        assert_eq!(
            json_body::<Create>(JSON, b"").unwrap_err().code,
            "invalid_json"
        );
        assert_eq!(
            json_body::<Create>(JSON, br#"{"name":"a","count":1} x"#)
                .unwrap_err()
                .code,
            "invalid_json"
        );
    }

    #[test]
    fn wrong_content_type_is_415() {
        let err =
            json_body::<Create>(Some("text/plain"), br#"{"name":"a","count":2}"#).unwrap_err();
        assert_eq!(err.status, http::StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(json_body::<Create>(None, b"{}").is_err());
    }

    #[derive(Debug, Deserialize)]
    struct Q {
        limit: Option<u32>,
        #[allow(dead_code)]
        q: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Listy {
        items: Vec<Item>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        name: String,
        size: u32,
    }

    #[test]
    fn paths_through_arrays_escapes_and_whitespace() {
        let body = br#"{ "items": [ {"name": "a \" b", "size": 1},
            {"name": "c", "size": "big"} ] }"#;
        let err = json_body::<Listy>(JSON, body).unwrap_err();
        assert!(
            err.message.contains("field `items[1].size`"),
            "{}",
            err.message
        );
        let err = json_body::<Listy>(JSON, br#"{"items": [{"name": "a"}]}"#).unwrap_err();
        assert!(
            err.message.contains("items[0]") && err.message.contains("size"),
            "{}",
            err.message
        );
        let err = json_body::<Listy>(
            JSON,
            br#"{"items": [{"name": "a", "size": 1, "colour": 2}]}"#,
        )
        .unwrap_err();
        assert_eq!(err.code, "unknown_field");
        assert!(err.message.contains("items[0].colour"), "{}", err.message);
    }

    #[test]
    fn path_scanner_is_total() {
        // Arbitrary bytes and offsets never panic.
        let bodies: [&[u8]; 7] = [
            b"",
            b"{",
            b"\"",
            b"[[[",
            br#"{"a\"#,
            b"}}]]",
            br#"{"k":"\"}"#,
        ];
        for body in bodies {
            for offset in 0..=body.len() {
                let _ = json_path_at(body, offset);
            }
        }
        assert_eq!(json_path_at(br#"{"a": {"b": [1, 2, 3"#, 19), "a.b[2]");
    }

    #[test]
    fn typed_query() {
        let q: Q = query("limit=5&q=a%20b").unwrap();
        assert_eq!(q.limit, Some(5));
        let err = query::<Q>("limit=many").unwrap_err();
        assert_eq!(err.code, "invalid_query");
        assert_eq!(query_value("a=1&b=x%2By", "b").as_deref(), Some("x+y"));
    }

    #[test]
    fn path_params() {
        assert_eq!(path_param::<u32>("42", "id").unwrap(), 42);
        assert_eq!(path_param::<String>("a%20b", "id").unwrap(), "a b");
        let err = path_param::<u32>("x", "id").unwrap_err();
        assert!(err.message.contains("`id`"));
        assert!(path_param::<String>("%zz", "id").is_err());
        assert!(path_param::<String>("%ff", "id").is_err());
    }
}
