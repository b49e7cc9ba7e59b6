//! gzip of responses (pipeline stage 9) when the client accepts it and the body is worth it:
//! more than 1 KB, a compressible type, not already encoded, and not a HEAD/204/304 answer.

use std::io::Write;

use http::{HeaderMap, HeaderValue, StatusCode};

pub const MIN_SIZE: usize = 1024;

/// True when `Accept-Encoding` lists `gzip` (or `*`) with a non-zero q-value.
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    let Some(header) = accept_encoding else {
        return false;
    };
    header.split(',').any(|item| {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q_zero = parts.any(|p| {
            let p = p.trim().to_ascii_lowercase();
            p.strip_prefix("q=")
                .is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q <= 0.0))
        });
        (coding == "gzip" || coding == "*") && !q_zero
    })
}

fn compressible(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else {
        return false;
    };
    let ct = ct.to_ascii_lowercase();
    ct.starts_with("text/")
        || ct.contains("json")
        || ct.contains("xml")
        || ct.contains("javascript")
}

/// Compresses `body` in place when worthwhile; sets `Content-Encoding` and `Vary`.
pub fn maybe_gzip(
    accept_encoding: Option<&str>,
    status: StatusCode,
    headers: &mut HeaderMap,
    body: &mut Vec<u8>,
) {
    let worth_it = body.len() > MIN_SIZE
        && status != StatusCode::NO_CONTENT
        && status != StatusCode::NOT_MODIFIED
        && !headers.contains_key(http::header::CONTENT_ENCODING)
        && compressible(
            headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
        );
    if !worth_it {
        return;
    }
    // Whether or not this client gets gzip, caches must key on Accept-Encoding.
    headers.append(
        http::header::VARY,
        HeaderValue::from_static("Accept-Encoding"),
    );
    if !accepts_gzip(accept_encoding) {
        return;
    }
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 3),
        flate2::Compression::fast(),
    );
    if encoder.write_all(body).is_err() {
        return;
    }
    if let Ok(compressed) = encoder.finish() {
        if compressed.len() < body.len() {
            *body = compressed;
            headers.insert(
                http::header::CONTENT_ENCODING,
                HeaderValue::from_static("gzip"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn accept_encoding_parsing() {
        assert!(accepts_gzip(Some("gzip")));
        assert!(accepts_gzip(Some("br, gzip;q=0.5")));
        assert!(accepts_gzip(Some("*")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(Some("br, deflate")));
        assert!(!accepts_gzip(None));
    }

    fn json_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h
    }

    #[test]
    fn compresses_large_json_and_round_trips() {
        let original = format!("[{}]", vec!["\"streamspace\""; 200].join(",")).into_bytes();
        let mut body = original.clone();
        let mut h = json_headers();
        maybe_gzip(Some("gzip"), StatusCode::OK, &mut h, &mut body);
        assert_eq!(h[http::header::CONTENT_ENCODING], "gzip");
        assert!(body.len() < original.len());
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, original);
    }

    #[test]
    fn leaves_small_or_unwanted_bodies_alone() {
        let mut small = b"{}".to_vec();
        let mut h = json_headers();
        maybe_gzip(Some("gzip"), StatusCode::OK, &mut h, &mut small);
        assert!(!h.contains_key(http::header::CONTENT_ENCODING));

        let mut big = vec![b'a'; 4096];
        let mut h = json_headers();
        maybe_gzip(None, StatusCode::OK, &mut h, &mut big);
        assert!(!h.contains_key(http::header::CONTENT_ENCODING));
        assert_eq!(h[http::header::VARY], "Accept-Encoding");
        assert_eq!(big.len(), 4096);
    }
}
