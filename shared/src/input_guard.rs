//! The seed's request-wide input checks, done without regex "injection detectors": path traversal
//! (`../`, `..\`, `%2e%2e` in any case or mix, NUL) → 400, and any query value over 10 KB → 400.
//!
//! SQL injection is prevented by construction (every statement binds its parameters; see
//! [`crate::store::sql`]); HTML is never rendered from input; field formats are checked by the
//! typed newtypes in [`crate::validate`]. Blocklists of words like `SELECT` only reject honest input.

use crate::error::ApiError;

pub const MAX_QUERY_VALUE: usize = 10 * 1024;

/// Checks the raw path and query.
pub fn check(path: &str, query: &str) -> Result<(), ApiError> {
    if is_traversal(path) {
        return Err(ApiError::bad_request(
            "invalid_path",
            "path contains a traversal sequence or a NUL byte",
        ));
    }
    for pair in query.split('&') {
        let value = pair.split_once('=').map_or("", |(_, v)| v);
        let decoded_len = form_urlencoded::parse(pair.as_bytes())
            .map(|(_, v)| v.len())
            .next()
            .unwrap_or(0);
        if value.len() > MAX_QUERY_VALUE * 3 || decoded_len > MAX_QUERY_VALUE {
            return Err(ApiError::bad_request(
                "query_too_long",
                format!("a query value exceeds {MAX_QUERY_VALUE} bytes"),
            ));
        }
        if pair.contains('\0') || contains_ignore_case(pair, "%00") {
            return Err(ApiError::bad_request(
                "invalid_query",
                "query contains a NUL byte",
            ));
        }
    }
    Ok(())
}

/// Decodes `%2e`/`%2E`, `%2f`, `%5c` once and looks for a `..` path segment or NUL.
pub fn is_traversal(raw_path: &str) -> bool {
    if raw_path.contains('\0') || contains_ignore_case(raw_path, "%00") {
        return true;
    }
    let lowered = raw_path.to_ascii_lowercase();
    // Double-encoded dots (`%252e`) are decoded by some proxies: refuse them too.
    if lowered.contains("%252e") {
        return true;
    }
    let decoded = lowered
        .replace("%2e", ".")
        .replace("%2f", "/")
        .replace("%5c", "\\");
    decoded.split(['/', '\\']).any(|segment| segment == "..")
}

fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack.to_ascii_lowercase().contains(needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_vectors() {
        for path in [
            "/api/v1/../etc/passwd",
            "/api/v1/..",
            "/api/v1/..\\windows",
            "/api/%2e%2e/x",
            "/api/%2E%2e/x",
            "/api/.%2e/x",
            "/api/%2e./x",
            "/api/..%2fx",
            "/api/..%5cx",
            "/api/x%00y",
            "/api/%252e%252e/x",
        ] {
            assert!(is_traversal(path), "{path}");
            assert_eq!(check(path, "").unwrap_err().code, "invalid_path");
        }
    }

    #[test]
    fn honest_paths_pass() {
        for path in [
            "/api/v1/users/me",
            "/health",
            "/a/b.c/d..e/f",
            "/a/.hidden",
            "/",
        ] {
            assert!(!is_traversal(path), "{path}");
        }
    }

    #[test]
    fn query_value_limit() {
        let ok = format!("q={}", "a".repeat(MAX_QUERY_VALUE));
        assert!(check("/", &ok).is_ok());
        let long = format!("q={}", "a".repeat(MAX_QUERY_VALUE + 1));
        assert_eq!(check("/", &long).unwrap_err().code, "query_too_long");
        let encoded = format!("q={}", "%41".repeat(MAX_QUERY_VALUE + 1));
        assert_eq!(check("/", &encoded).unwrap_err().code, "query_too_long");
        assert_eq!(check("/", "q=a%00b").unwrap_err().code, "invalid_query");
    }

    #[test]
    fn sql_looking_input_is_not_blocked() {
        // Parameterised SQL makes this harmless; blocking it would only refuse honest searches.
        assert!(check("/api/v1/templates", "q=select%20union%20drop").is_ok());
    }
}
