//! The request and response types the pipeline works on, independent of `spin_sdk`.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde::Serialize;

use crate::error::{ApiError, ApiResult};

/// Everything about a request except its body.
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// `None` for a method token that is not valid HTTP.
    pub method: Option<Method>,
    /// The raw (still percent-encoded) path, e.g. `/api/v1/users/42`.
    pub path: String,
    /// The raw query string without `?`, possibly empty.
    pub query: String,
    pub headers: HeaderMap,
    /// The peer address as the host reports it: the *last* `spin-client-addr` line, the one Spin
    /// appends after the client's own headers (see [`peer_addr`]).
    pub client_ip: Option<IpAddr>,
}

impl RequestHead {
    /// Splits `path?query` (the form Spin hands over).
    pub fn new(method: Option<Method>, path_and_query: &str, headers: HeaderMap) -> Self {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, q),
            None => (path_and_query, ""),
        };
        let client_ip = peer_addr(&headers);
        Self {
            method,
            path: if path.is_empty() {
                "/".to_owned()
            } else {
                path.to_owned()
            },
            query: without_empty_values(query),
            headers,
            client_ip,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        header_str(&self.headers, name)
    }

    pub fn method_str(&self) -> &str {
        self.method.as_ref().map_or("INVALID", Method::as_str)
    }
}

/// The query without its empty values: `?sort=&limit=5` is `?limit=5`. An empty value means the
/// same as leaving the parameter out, on every route (as an HTML form sends an empty field), and
/// the OpenAPI document says so for every optional query parameter.
fn without_empty_values(query: &str) -> String {
    let kept = |pair: &&str| {
        !pair.is_empty()
            && pair
                .split_once('=')
                .is_none_or(|(_, value)| !value.is_empty())
    };
    if query.split('&').all(|pair| kept(&pair)) {
        return query.to_owned();
    }
    query.split('&').filter(kept).collect::<Vec<_>>().join("&")
}

/// A header as text, `None` when absent or not visible ASCII.
pub fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The TCP peer as Spin reports it. Spin's HTTP trigger keeps every header the client sent and
/// then *appends* its own `spin-*` headers (`trigger-http` `prepare_request_headers`, then
/// `headers_mut().clear()` + `extend()`), so a client that sends `spin-client-addr` itself puts
/// its forgery first and Spin's value last. Only the last line is Spin's; a malformed last line
/// means no address (never an earlier, client-chosen one).
pub fn peer_addr(headers: &HeaderMap) -> Option<IpAddr> {
    let last = headers.get_all("spin-client-addr").iter().next_back()?;
    parse_client_addr(last.to_str().ok()?)
}

/// `ip:port`, `[v6]:port` or a bare IP.
fn parse_client_addr(addr: &str) -> Option<IpAddr> {
    if let Ok(sock) = addr.parse::<std::net::SocketAddr>() {
        return Some(sock.ip());
    }
    addr.parse().ok()
}

/// A response before the pipeline adds its headers.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// An internal cause for the access log (never sent), for answers built without an
    /// [`ApiError`], such as a health report.
    pub cause: Option<String>,
}

impl Response {
    pub fn new(status: StatusCode) -> Self {
        Self {
            status,
            headers: HeaderMap::new(),
            body: Vec::new(),
            cause: None,
        }
    }

    /// A JSON body. Serialisation of our own types does not fail; if it ever did, the client gets
    /// a 500 envelope rather than a trap.
    pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> ApiResult<Self> {
        let body = serde_json::to_vec(value)
            .map_err(|e| ApiError::internal(format!("serialise response: {e}")))?;
        let mut response = Self::new(status);
        response.headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response.body = body;
        Ok(response)
    }

    pub fn ok_json<T: Serialize + ?Sized>(value: &T) -> ApiResult<Self> {
        Self::json(StatusCode::OK, value)
    }

    pub fn no_content() -> Self {
        Self::new(StatusCode::NO_CONTENT)
    }

    /// A body with an explicit content type (e.g. a document served as-is).
    pub fn bytes(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Self {
        let mut response = Self::new(status);
        response.headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(content_type),
        );
        response.body = body;
        response
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// The response for an error, with its envelope.
    pub fn from_error(err: &ApiError, request_id: &str) -> Self {
        let mut response = Self::bytes(err.status, "application/json", err.envelope(request_id));
        for (name, value) in &err.headers {
            response.headers.append(name.clone(), value.clone());
        }
        response
    }
}

#[cfg(test)]
mod tests {
    /// An empty query value is the same as leaving the parameter out, on every route.
    #[test]
    fn empty_query_values_are_left_out() {
        for (raw, kept) in [
            ("", ""),
            ("a=1&b=2", "a=1&b=2"),
            ("sort=&limit=5", "limit=5"),
            ("a=&b=&&c", "c"),
            ("a==&b=%20", "a==&b=%20"),
            ("flag", "flag"),
        ] {
            assert_eq!(super::without_empty_values(raw), kept, "{raw}");
        }
    }

    use super::*;

    #[test]
    fn splits_path_and_query_and_reads_client_addr() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "spin-client-addr",
            HeaderValue::from_static("127.0.0.1:5555"),
        );
        let head = RequestHead::new(Some(Method::GET), "/a/b?x=1&y=2", headers);
        assert_eq!(head.path, "/a/b");
        assert_eq!(head.query, "x=1&y=2");
        assert_eq!(head.client_ip, Some("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn ipv6_client_addr() {
        let mut headers = HeaderMap::new();
        headers.insert("spin-client-addr", HeaderValue::from_static("[::1]:80"));
        let head = RequestHead::new(Some(Method::GET), "/", headers);
        assert_eq!(head.client_ip, Some("::1".parse().unwrap()));
    }

    /// Spin appends its `spin-client-addr` after the client's headers: a client-sent one comes
    /// first and must never be the address we use.
    #[test]
    fn forged_spin_client_addr_is_ignored() {
        let mut headers = HeaderMap::new();
        headers.append(
            "spin-client-addr",
            HeaderValue::from_static("10.0.0.1:1234"),
        );
        headers.append(
            "spin-client-addr",
            HeaderValue::from_static("198.51.100.20:40000"),
        );
        let head = RequestHead::new(Some(Method::GET), "/", headers.clone());
        assert_eq!(head.client_ip, Some("198.51.100.20".parse().unwrap()));
        // A malformed last line is no address, not the earlier (client-chosen) one.
        headers.append("spin-client-addr", HeaderValue::from_static("garbage"));
        assert_eq!(peer_addr(&headers), None);
    }
}
