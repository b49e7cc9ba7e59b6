//! Typed extraction of request input, validated in the extractor rather than in the handler:
//! JSON bodies reject unknown fields and wrong types with a 400 that names the field; query strings
//! and path parameters parse into typed values with a 400 naming the parameter.

use std::str::FromStr;

use serde::de::DeserializeOwned;

use crate::body_limit::is_json;
use crate::error::{ApiError, ApiResult};

/// Parses a JSON body into `T`. Unknown fields are refused even when `T` forgets
/// `#[serde(deny_unknown_fields)]`, so a typo never silently drops a setting.
pub fn json_body<T: DeserializeOwned>(content_type: Option<&str>, body: &[u8]) -> ApiResult<T> {
    if !content_type.is_some_and(is_json) {
        return Err(ApiError::new(
            http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected Content-Type: application/json",
        ));
    }
    let mut unknown: Vec<String> = Vec::new();
    let mut track = serde_path_to_error::Track::new();
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed: Result<T, serde_json::Error> = serde_ignored::deserialize(
        serde_path_to_error::Deserializer::new(&mut de, &mut track),
        // serde_ignored writes `?` for an Option layer; drop it from the field path.
        |path| unknown.push(path.to_string().replace(".?", "")),
    );
    let value = match parsed {
        Ok(value) => value,
        Err(err) => return Err(describe(&err, &track.path().to_string())),
    };
    de.end()
        .map_err(|e| ApiError::bad_request("invalid_json", format!("invalid JSON: {e}")))?;
    if let Some(field) = unknown.first() {
        return Err(ApiError::bad_request(
            "unknown_field",
            format!("unknown field `{field}`"),
        ));
    }
    Ok(value)
}

fn describe(err: &serde_json::Error, path: &str) -> ApiError {
    use serde_json::error::Category;
    match err.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::bad_request("invalid_json", format!("invalid JSON: {err}"))
        }
        Category::Data => {
            let text = err.to_string();
            // serde's own text already names unknown/missing fields; otherwise add the path.
            if path.is_empty() || path == "." {
                let code = if text.starts_with("unknown field") {
                    "unknown_field"
                } else {
                    "invalid_field"
                };
                ApiError::bad_request(code, text)
            } else if text.starts_with("unknown field") {
                ApiError::bad_request("unknown_field", format!("{path}: {text}"))
            } else {
                ApiError::bad_request("invalid_field", format!("field `{path}`: {text}"))
            }
        }
    }
}

/// Parses the raw query string into `T` (numbers and booleans from their text form).
pub fn query<T: DeserializeOwned>(raw_query: &str) -> ApiResult<T> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(raw_query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        ApiError::bad_request(
            "invalid_query",
            if path.is_empty() || path == "." {
                err.inner().to_string()
            } else {
                format!("query parameter `{path}`: {}", err.inner())
            },
        )
    })
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
    struct Create {
        name: String,
        count: u32,
        #[serde(default)]
        nested: Option<Inner>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Inner {
        flag: bool,
    }

    const JSON: Option<&str> = Some("application/json");

    #[test]
    fn parses_a_valid_body() {
        let v: Create =
            json_body(JSON, br#"{"name":"a","count":2,"nested":{"flag":true}}"#).unwrap();
        assert_eq!(v.count, 2);
    }

    #[test]
    fn unknown_fields_are_named_even_without_deny_unknown_fields() {
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

    #[test]
    fn typed_query() {
        let q: Q = query("limit=5&q=a%20b").unwrap();
        assert_eq!(q.limit, Some(5));
        let err = query::<Q>("limit=many").unwrap_err();
        assert!(err.message.contains("limit"), "{}", err.message);
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
