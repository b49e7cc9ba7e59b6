//! The `docs` component: `GET /api/docs`, the API reference in the browser — Swagger UI (vendored
//! from the `swagger-ui-dist` npm package, see `vendor.sh` and `assets/LICENSE`) rendering the
//! document the audit component serves at `/api/openapi.json`.
//!
//! A static-file server written against the Spin SDK directly: it does not link the shared
//! pipeline, so it stays small, and its files are embedded with `include_bytes!`. It keeps the
//! app's rules all the same: GET and HEAD only (anything else is a 405 with `Allow`), unknown
//! paths are a 404, errors are the JSON envelope `{"error","message","request_id"}`, every answer
//! carries `X-Request-ID` (the client's when acceptable, else a fresh UUIDv4) and the strict
//! security headers of `shared::security_headers`, with a CSP that allows only same-origin scripts
//! and styles (no inline code: the page's start-up code is `docs-init.js`).
//!
//! Swagger UI's bundle and stylesheet are stored gzip-compressed (`gzip -9 -n`; 485 KB instead of
//! 1.9 MB, which keeps the component within the 1 MB wasm budget) and sent as they are with
//! `Content-Encoding: gzip` to clients that list gzip in `Accept-Encoding` (every browser); any
//! other client gets them inflated (`Vary: Accept-Encoding`).

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

/// The vendored `swagger-ui-dist` version; `assets/index.html` links the assets with `?v=` it.
pub const SWAGGER_UI_VERSION: &str = "5.35.0";

/// Where the component is mounted (`spin.toml`: `/api/docs/...`).
pub const PREFIX: &str = "/api/docs";

/// The one header value for `Allow` (and the only methods served).
pub const ALLOW: &str = "GET, HEAD";

/// The page's policy: everything from this origin, nothing inline, nothing else.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The strict set of `shared::security_headers` (the CSP aside), values copied as they are there.
const SECURITY_HEADERS: &[(&str, &str)] = &[
    (
        "strict-transport-security",
        "max-age=63072000; includeSubDomains; preload",
    ),
    ("content-security-policy", CSP),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
    (
        "permissions-policy",
        "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), payment=(), usb=(), interest-cohort=()",
    ),
    ("x-permitted-cross-domain-policies", "none"),
    ("cross-origin-opener-policy", "same-origin"),
];

/// Vendored files, linked with `?v=<SWAGGER_UI_VERSION>`, never change at a URL: cached for a year.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Our own page and start-up code change with the app: revalidated on every use.
const REVALIDATE: &str = "no-cache";

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    /// Stored gzip-compressed.
    gzip: bool,
    /// Part of the vendored package (immutable when asked for with its `?v=`).
    vendored: bool,
}

const INDEX: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_bytes!("../assets/index.html"),
    gzip: false,
    vendored: false,
};

const ASSETS: &[Asset] = &[
    INDEX,
    Asset {
        name: "docs-init.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/docs-init.js"),
        gzip: false,
        vendored: false,
    },
    Asset {
        name: "docs.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../assets/docs.css"),
        gzip: false,
        vendored: false,
    },
    Asset {
        name: "swagger-ui-bundle.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/swagger-ui-bundle.js.gz"),
        gzip: true,
        vendored: true,
    },
    Asset {
        name: "swagger-ui.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../assets/swagger-ui.css.gz"),
        gzip: true,
        vendored: true,
    },
    Asset {
        name: "favicon-32x32.png",
        content_type: "image/png",
        body: include_bytes!("../assets/favicon-32x32.png"),
        gzip: false,
        vendored: true,
    },
    Asset {
        name: "LICENSE",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("../assets/LICENSE"),
        gzip: false,
        vendored: true,
    },
    Asset {
        name: "NOTICE",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("../assets/NOTICE"),
        gzip: false,
        vendored: true,
    },
    Asset {
        name: "swagger-ui-bundle.js.LICENSE.txt",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("../assets/swagger-ui-bundle.js.LICENSE.txt"),
        gzip: false,
        vendored: true,
    },
];

/// What the request carries that the answer depends on.
pub struct Request<'a> {
    pub method: &'a str,
    /// Path and query, as received (`/api/docs/docs.css?v=1`).
    pub path_with_query: &'a str,
    pub accept_encoding: Option<&'a str>,
    pub request_id: Option<&'a str>,
}

/// The complete answer (for HEAD, the headers of the GET with an empty body).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Answers one request; `random` fills bytes for a fresh request id (an error gives up on it).
pub fn respond(req: &Request<'_>, random: impl FnOnce(&mut [u8]) -> Result<(), ()>) -> Reply {
    let request_id = resolve_request_id(req.request_id, random);
    let mut reply = route(req, &request_id);
    for (name, value) in SECURITY_HEADERS {
        reply.headers.push((name, (*value).to_owned()));
    }
    reply.headers.push(("x-request-id", request_id));
    if req.method == "HEAD" {
        reply.body.clear();
    }
    reply
}

fn route(req: &Request<'_>, request_id: &str) -> Reply {
    if req.method != "GET" && req.method != "HEAD" {
        let mut reply = error(
            405,
            "method_not_allowed",
            "method not allowed for this resource",
            request_id,
        );
        reply.headers.push(("allow", ALLOW.to_owned()));
        return reply;
    }
    let (path, query) = req
        .path_with_query
        .split_once('?')
        .unwrap_or((req.path_with_query, ""));
    let Some(asset) = find(path) else {
        return error(404, "not_found", "no such resource", request_id);
    };
    let mut headers = vec![("content-type", asset.content_type.to_owned())];
    let versioned = query
        .split('&')
        .any(|pair| pair.strip_prefix("v=") == Some(SWAGGER_UI_VERSION));
    let cache = if asset.vendored && versioned {
        IMMUTABLE
    } else {
        REVALIDATE
    };
    headers.push(("cache-control", cache.to_owned()));
    let body = if !asset.gzip {
        asset.body.to_vec()
    } else {
        // One URL, two possible encodings: caches must key on Accept-Encoding.
        headers.push(("vary", "Accept-Encoding".to_owned()));
        if accepts_gzip(req.accept_encoding) {
            headers.push(("content-encoding", "gzip".to_owned()));
            asset.body.to_vec()
        } else {
            match gunzip(asset.body) {
                Some(plain) => plain,
                None => return error(500, "internal_error", "internal server error", request_id),
            }
        }
    };
    Reply {
        status: 200,
        headers,
        body,
    }
}

/// The asset a path names: the page at `/api/docs` (and `/api/docs/`), a file at `/api/docs/<name>`.
fn find(path: &str) -> Option<&'static Asset> {
    let rest = path.strip_prefix(PREFIX)?;
    if rest.is_empty() || rest == "/" {
        return Some(&INDEX);
    }
    let name = rest.strip_prefix('/')?;
    ASSETS.iter().find(|a| a.name == name)
}

fn error(status: u16, code: &str, message: &str, request_id: &str) -> Reply {
    // The id is of a JSON-safe charset (`is_acceptable_request_id`, or a UUID we made).
    let body = format!(r#"{{"error":"{code}","message":"{message}","request_id":"{request_id}"}}"#);
    Reply {
        status,
        headers: vec![
            ("content-type", "application/json".to_owned()),
            ("cache-control", "no-store".to_owned()),
        ],
        body: body.into_bytes(),
    }
}

/// As `shared::request_id`: 1–128 chars of `A-Z a-z 0-9 - _ . :` are logged and echoed as given.
pub fn is_acceptable_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

fn resolve_request_id(
    client: Option<&str>,
    random: impl FnOnce(&mut [u8]) -> Result<(), ()>,
) -> String {
    if let Some(id) = client.filter(|id| is_acceptable_request_id(id)) {
        return id.to_owned();
    }
    let mut b = [0u8; 16];
    if random(&mut b).is_err() {
        return "unavailable".to_owned();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// True when `Accept-Encoding` lists `gzip` (or `*`) with a non-zero q-value. Without the header
/// the answer is plain, as `shared::compression` does (e.g. `curl` without `--compressed`).
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
        (coding == "gzip" || coding == "x-gzip" || coding == "*") && !q_zero
    })
}

/// Inflates a gzip member (RFC 1952): header, raw deflate data, CRC-32 and size trailer (the size
/// is checked; the CRC is not, the input being our own embedded file).
pub fn gunzip(data: &[u8]) -> Option<Vec<u8>> {
    const FHCRC: u8 = 2;
    const FEXTRA: u8 = 4;
    const FNAME: u8 = 8;
    const FCOMMENT: u8 = 16;
    if data.len() < 18 || data[0..3] != [0x1f, 0x8b, 8] {
        return None;
    }
    let flags = data[3];
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let len = u16::from_le_bytes([*data.get(at)?, *data.get(at + 1)?]) as usize;
        at += 2 + len;
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            at += data.get(at..)?.iter().position(|&b| b == 0)? + 1;
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    let deflated = data.get(at..data.len().checked_sub(8)?)?;
    let trailer = data.get(data.len() - 4..)?;
    let size = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let plain = miniz_oxide::inflate::decompress_to_vec(deflated).ok()?;
    (plain.len() as u32 == size).then_some(plain)
}

/// The Spin entry point (wasm only, so the crate also links natively for tests). The SDK's export
/// macro expands to `unsafe` ABI glue, so this module alone allows it; no code of ours uses it.
/// The request body is never read (only GET and HEAD are served).
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod entry {
    use spin_sdk::http::{Fields, IncomingRequest, Method, OutgoingResponse, ResponseOutparam};

    #[spin_sdk::http_component]
    async fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let method = match req.method() {
            Method::Get => "GET".to_owned(),
            Method::Head => "HEAD".to_owned(),
            Method::Post => "POST".to_owned(),
            Method::Put => "PUT".to_owned(),
            Method::Delete => "DELETE".to_owned(),
            Method::Connect => "CONNECT".to_owned(),
            Method::Options => "OPTIONS".to_owned(),
            Method::Trace => "TRACE".to_owned(),
            Method::Patch => "PATCH".to_owned(),
            Method::Other(token) => token,
        };
        let path_with_query = req.path_with_query().unwrap_or_else(|| "/".to_owned());
        let headers = req.headers();
        let first = |name: &str| -> Option<String> {
            let values = headers.get(name);
            let joined: Vec<String> = values
                .iter()
                .filter_map(|v| String::from_utf8(v.clone()).ok())
                .collect();
            (!joined.is_empty()).then(|| joined.join(","))
        };
        let accept_encoding = first("accept-encoding");
        let request_id = first("x-request-id");
        let reply = super::respond(
            &super::Request {
                method: &method,
                path_with_query: &path_with_query,
                accept_encoding: accept_encoding.as_deref(),
                request_id: request_id.as_deref(),
            },
            |buf| getrandom::fill(buf).map_err(|_| ()),
        );
        let mut entries: Vec<(String, Vec<u8>)> = reply
            .headers
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.as_bytes().to_vec()))
            .collect();
        if method != "HEAD" {
            // An explicit length (otherwise Spin streams the body chunked).
            entries.push((
                "content-length".to_owned(),
                reply.body.len().to_string().into_bytes(),
            ));
        }
        let fields = Fields::from_list(&entries).unwrap_or_else(|_| Fields::new());
        let outgoing = OutgoingResponse::new(fields);
        // Our status codes are all valid; if the host refused one, it answers 200 with our body.
        let _ = outgoing.set_status_code(reply.status);
        // The client may have gone away; there is nobody left to tell.
        let _ = out.set_with_body(outgoing, reply.body).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Reply {
        call("GET", path, Some("gzip, deflate, br"), None)
    }

    fn call(method: &str, path: &str, accept: Option<&str>, id: Option<&str>) -> Reply {
        respond(
            &Request {
                method,
                path_with_query: path,
                accept_encoding: accept,
                request_id: id,
            },
            |buf| {
                buf.fill(7);
                Ok(())
            },
        )
    }

    fn json(reply: &Reply) -> String {
        String::from_utf8(reply.body.clone()).unwrap()
    }

    #[test]
    fn the_page_is_served_at_the_bare_prefix_and_with_a_slash() {
        for path in ["/api/docs", "/api/docs/", "/api/docs?x=1"] {
            let r = get(path);
            assert_eq!(r.status, 200, "{path}");
            assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
            assert!(json(&r).contains("id=\"swagger-ui\""));
        }
    }

    #[test]
    fn the_page_has_no_inline_script_or_style_and_links_the_pinned_version() {
        let page = String::from_utf8(INDEX.body.to_vec()).unwrap();
        // Every <script> has a src and is empty: nothing the CSP would have to allow by hash.
        for chunk in page.split("<script").skip(1) {
            let (open, rest) = chunk.split_once('>').unwrap();
            assert!(open.contains("src=\"/api/docs/"), "{open}");
            assert!(rest.starts_with("</script>"), "inline script: {rest}");
        }
        assert!(!page.contains("<style"));
        assert!(!page.contains("style="));
        let versioned = format!("?v={SWAGGER_UI_VERSION}\"");
        assert_eq!(page.matches(&versioned).count(), 3, "{page}");
    }

    #[test]
    fn strict_security_headers_and_a_csp_without_unsafe_inline() {
        for r in [
            get("/api/docs"),
            get("/api/docs/nope"),
            call("POST", "/api/docs", None, None),
        ] {
            let csp = r.header("content-security-policy").unwrap();
            assert!(csp.contains("default-src 'none'"));
            assert!(csp.contains("script-src 'self';"));
            assert!(csp.contains("frame-ancestors 'none'"));
            assert!(!csp.contains("unsafe"), "{csp}");
            assert!(r.header("strict-transport-security").is_some());
            assert_eq!(r.header("x-frame-options"), Some("DENY"));
            assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
            assert!(r.header("server").is_none());
        }
    }

    /// The copied header values are the pipeline's strict set, header for header (the CSP aside,
    /// which differs on purpose: no nonce, same-origin files).
    #[test]
    fn security_headers_are_the_pipelines_strict_set() {
        let mut shared = http::HeaderMap::new();
        shared::security_headers::apply(&mut shared, shared::config::SecurityMode::Strict, "nonce");
        let ours: Vec<(&str, &str)> = SECURITY_HEADERS
            .iter()
            .copied()
            .filter(|(name, _)| *name != "content-security-policy")
            .collect();
        let theirs: Vec<(&str, &str)> = shared
            .iter()
            .filter(|(name, _)| *name != "content-security-policy" && *name != "cache-control")
            .map(|(name, value)| (name.as_str(), value.to_str().unwrap()))
            .collect();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn other_methods_get_405_with_allow_and_the_envelope() {
        for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "BREW"] {
            let r = call(method, "/api/docs/swagger-ui.css", None, Some("rid-1"));
            assert_eq!(r.status, 405, "{method}");
            assert_eq!(r.header("allow"), Some(ALLOW));
            assert_eq!(
                json(&r),
                r#"{"error":"method_not_allowed","message":"method not allowed for this resource","request_id":"rid-1"}"#
            );
        }
    }

    #[test]
    fn unknown_paths_are_a_json_404() {
        for path in [
            "/api/docs/nope.js",
            "/api/docs/../openapi.json",
            "/api/docs/assets/LICENSE",
            "/api/docsx",
            "/api/docs//",
            "/api/docs/swagger-ui-bundle.js.gz",
        ] {
            let r = get(path);
            assert_eq!(r.status, 404, "{path}");
            assert_eq!(r.header("content-type"), Some("application/json"));
            assert!(json(&r).starts_with(r#"{"error":"not_found","#), "{path}");
        }
    }

    #[test]
    fn request_ids_are_echoed_when_safe_and_minted_otherwise() {
        let r = call("GET", "/api/docs", None, Some("abc-123"));
        assert_eq!(r.header("x-request-id"), Some("abc-123"));
        for bad in [None, Some("<script>"), Some("a\"b"), Some("")] {
            let r = call("GET", "/api/docs/nope", None, bad);
            let id = r.header("x-request-id").unwrap().to_owned();
            assert_eq!(id, "07070707-0707-4707-8707-070707070707", "{bad:?}");
            assert!(json(&r).contains(&format!(r#""request_id":"{id}""#)));
        }
        let failed = respond(
            &Request {
                method: "GET",
                path_with_query: "/api/docs",
                accept_encoding: None,
                request_id: None,
            },
            |_| Err(()),
        );
        assert_eq!(failed.header("x-request-id"), Some("unavailable"));
    }

    #[test]
    fn vendored_assets_are_gzip_for_clients_that_accept_it_and_plain_otherwise() {
        let gz = get("/api/docs/swagger-ui-bundle.js?v=5.35.0");
        assert_eq!(gz.status, 200);
        assert_eq!(gz.header("content-encoding"), Some("gzip"));
        assert_eq!(gz.header("vary"), Some("Accept-Encoding"));
        assert_eq!(&gz.body[..2], &[0x1f, 0x8b]);
        for refuses in ["identity", "gzip;q=0", "br"] {
            let plain = call("GET", "/api/docs/swagger-ui-bundle.js", Some(refuses), None);
            assert_eq!(plain.status, 200);
            assert_eq!(plain.header("content-encoding"), None, "{refuses:?}");
            assert_eq!(plain.header("vary"), Some("Accept-Encoding"));
            assert_eq!(plain.body, gunzip(&gz.body).unwrap());
            assert!(plain.body.len() > 1_000_000);
        }
        let css = call("GET", "/api/docs/swagger-ui.css", Some("identity"), None);
        assert!(String::from_utf8(css.body).unwrap().contains(".swagger-ui"));
    }

    #[test]
    fn only_versioned_vendored_urls_are_immutable() {
        let cache = |path: &str| get(path).header("cache-control").unwrap().to_owned();
        assert_eq!(cache("/api/docs/swagger-ui-bundle.js?v=5.35.0"), IMMUTABLE);
        assert_eq!(cache("/api/docs/swagger-ui.css?a=b&v=5.35.0"), IMMUTABLE);
        assert_eq!(cache("/api/docs/swagger-ui.css"), REVALIDATE);
        assert_eq!(cache("/api/docs/swagger-ui.css?v=4.0.0"), REVALIDATE);
        assert_eq!(cache("/api/docs"), REVALIDATE);
        assert_eq!(cache("/api/docs/docs-init.js?v=5.35.0"), REVALIDATE);
        assert_eq!(cache("/api/docs/nope"), "no-store");
    }

    #[test]
    fn head_has_the_get_headers_and_no_body() {
        let head = call("HEAD", "/api/docs/swagger-ui.css", Some("gzip"), None);
        let get = call("GET", "/api/docs/swagger-ui.css", Some("gzip"), None);
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
        assert_eq!(
            head.header("content-encoding"),
            get.header("content-encoding")
        );
        assert_eq!(head.header("content-type"), get.header("content-type"));
    }

    #[test]
    fn the_licenses_are_served() {
        let r = get("/api/docs/LICENSE");
        assert_eq!(r.status, 200);
        assert!(json(&r).contains("Apache License"));
        assert_eq!(get("/api/docs/NOTICE").status, 200);
        assert_eq!(
            get("/api/docs/swagger-ui-bundle.js.LICENSE.txt").status,
            200
        );
    }

    #[test]
    fn accept_encoding_parsing() {
        assert!(!accepts_gzip(None));
        assert!(accepts_gzip(Some("gzip")));
        assert!(accepts_gzip(Some("br, GZIP;q=0.5")));
        assert!(accepts_gzip(Some("*")));
        assert!(!accepts_gzip(Some("")));
        assert!(!accepts_gzip(Some("identity")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(Some("br, gzip; q=0.0")));
    }

    #[test]
    fn gunzip_refuses_what_is_not_a_whole_gzip_member() {
        let good = ASSETS.iter().find(|a| a.gzip).unwrap().body;
        assert!(gunzip(good).is_some());
        assert!(gunzip(&good[..good.len() - 1]).is_none());
        assert!(gunzip(&good[..10]).is_none());
        assert!(gunzip(b"not gzip at all, not at all").is_none());
        let mut wrong_size = good.to_vec();
        let n = wrong_size.len();
        wrong_size[n - 1] ^= 1;
        assert!(gunzip(&wrong_size).is_none());
    }
}
