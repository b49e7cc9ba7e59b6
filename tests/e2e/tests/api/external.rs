//! Externally verified tokens (seed 004) end to end: the test serves a loopback fake verifier,
//! starts the test host with `token_verifier_url` / `token_verifier_origin` pointing at it, and
//! checks Multica's table — 200 for a valid token of a real user (then served from the 60 s
//! cache), 401 for every refusal (never cached), 503 whenever the verifier gives no usable answer,
//! 401 when the component is not configured. These tests need the test host (variables), so they
//! return early against `E2E_BASE_URL`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::json;

use crate::helpers::{unique, TestApp};
use crate::setup::{create_account, PASSWORD};

/// One request the fake verifier received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// A tiny HTTP/1.1 verifier on 127.0.0.1: answers per token from a table (unknown tokens get
/// `{"valid": false, "reason": "token_not_found"}`) and records every request.
struct FakeVerifier {
    port: u16,
    replies: Arc<Mutex<HashMap<String, (u16, String)>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeVerifier {
    fn start() -> FakeVerifier {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let replies: Arc<Mutex<HashMap<String, (u16, String)>>> = Arc::default();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (replies, seen, stop) = (replies.clone(), seen.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        let _ = serve(stream, &replies, &seen);
                    }
                }
            })
        };
        FakeVerifier {
            port,
            replies,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn answer(&self, token: &str, status: u16, body: &str) {
        self.replies
            .lock()
            .unwrap()
            .insert(token.to_owned(), (status, body.to_owned()));
    }

    fn calls(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for FakeVerifier {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(
    stream: TcpStream,
    replies: &Mutex<HashMap<String, (u16, String)>>,
    seen: &Mutex<Vec<Seen>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line)? == 0 {
        return Ok(()); // the wake-up connection of Drop
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(len, 0);
        reader.read_exact(&mut body)?;
    } else if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    let token = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["token"].as_str().map(str::to_owned))
        .unwrap_or_default();
    seen.lock().unwrap().push(Seen {
        method,
        path,
        headers: headers.clone(),
        body,
    });
    let (status, reply) = replies.lock().unwrap().get(&token).cloned().unwrap_or((
        200,
        json!({"valid": false, "reason": "token_not_found"}).to_string(),
    ));
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status} Fake\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    )?;
    out.flush()
}

/// The app, configured to verify through `verifier` at `<origin>/api/v1/pat/verify/` (the
/// trailing slash is normalised away).
fn app_with(verifier: &FakeVerifier) -> Option<TestApp> {
    let url = format!("{}/api/v1/pat/verify/", verifier.origin());
    TestApp::spawn_with(&[
        ("token_verifier_url", url.as_str()),
        ("token_verifier_origin", verifier.origin().as_str()),
    ])
}

fn token(name: &str) -> String {
    format!("ssc_{}", unique(name))
}

fn me(app: &TestApp, token: &str) -> crate::helpers::Resp {
    app.authed("GET", "/api/v1/users/me", token)
}

#[test]
fn a_valid_token_of_a_real_user_authenticates_and_is_cached() {
    let verifier = FakeVerifier::start();
    let Some(app) = app_with(&verifier) else {
        return;
    };
    let admin = app.admin();
    let (owner, _) = create_account(&app, &admin.access, "user", None);
    let good = token("good");
    verifier.answer(
        &good,
        200,
        &json!({"valid": true, "owner_id": owner}).to_string(),
    );

    let r = me(&app, &good);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["id"], owner.as_str());
    assert_eq!(r.json()["org_id"], admin.org_id.as_str());
    assert_eq!(verifier.calls(), 1);

    // What the verifier saw: one JSON POST to the configured path, without the trailing slash.
    let seen = verifier.seen();
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, "/api/v1/pat/verify");
    assert!(seen[0]
        .headers
        .iter()
        .any(|(k, v)| k == "content-type" && v == "application/json"));
    let body: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(body, json!({"token": good}));

    // Served from the cache: the verifier is not asked again.
    assert_eq!(me(&app, &good).status, 200);
    assert_eq!(me(&app, &good).status, 200);
    assert_eq!(verifier.calls(), 1);

    // A cache hit still checks the owner: disabling the user bites on the next request.
    let r = app.json(
        "PATCH",
        &format!("/api/v1/users/{owner}"),
        Some(&admin.access),
        &json!({"status": "disabled"}),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = me(&app, &good);
    assert_eq!(r.status, 401);
    assert_eq!(r.error_code(), "user_disabled");
    assert_eq!(verifier.calls(), 1);

    // The token never reaches a log line.
    if let Some(lines) = app.log_lines() {
        assert!(lines.iter().all(|l| !l.contains(&good)));
    }
}

#[test]
fn external_token_cannot_mint_credentials() {
    let verifier = FakeVerifier::start();
    let Some(app) = app_with(&verifier) else {
        return;
    };
    let admin = app.admin();
    let (owner, _) = create_account(&app, &admin.access, "user", None);
    let ext = token("minter");
    verifier.answer(
        &ext,
        200,
        &json!({"valid": true, "owner_id": owner}).to_string(),
    );
    assert_eq!(me(&app, &ext).status, 200, "the token itself is valid");
    let attempts = [
        (
            "POST",
            "/api/v1/api-keys",
            json!({"name": "forever", "scopes": ["full"], "expires_in_days": 365}),
        ),
        (
            "POST",
            "/api/v1/auth/tickets",
            json!({"purpose": "session-connect", "session_id": "00000000-0000-4000-8000-000000000000"}),
        ),
        (
            "POST",
            "/api/v1/auth/mfa/setup",
            json!({"current_password": PASSWORD}),
        ),
        (
            "DELETE",
            "/api/v1/auth/mfa",
            json!({"current_password": PASSWORD}),
        ),
    ];
    for (method, path, body) in attempts {
        let r = app.json(method, path, Some(&ext), &body);
        assert_eq!(
            r.status,
            403,
            "{method} {path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.error_code(), "login_session_required", "{method} {path}");
    }
    // No key was created for the owner.
    let keys = app.authed("GET", "/api/v1/api-keys", &ext);
    assert_eq!(keys.status, 200);
    assert_eq!(keys.json()["items"].as_array().unwrap().len(), 0);
}

#[test]
fn refusals_are_401_and_never_cached() {
    let verifier = FakeVerifier::start();
    let Some(app) = app_with(&verifier) else {
        return;
    };
    let admin = app.admin();
    let (owner, _) = create_account(&app, &admin.access, "user", None);

    let revoked = token("revoked");
    verifier.answer(
        &revoked,
        200,
        &json!({"valid": false, "owner_id": owner, "reason": "token_revoked"}).to_string(),
    );
    let no_owner = token("no-owner");
    verifier.answer(&no_owner, 200, &json!({"valid": true}).to_string());
    let stranger = token("stranger");
    verifier.answer(
        &stranger,
        200,
        &json!({"valid": true, "owner_id": "no-such-user"}).to_string(),
    );
    let rejected = token("rejected");
    verifier.answer(
        &rejected,
        401,
        &json!({"valid": true, "owner_id": owner}).to_string(),
    );

    let mut expected_calls = 0;
    for t in [&revoked, &no_owner, &stranger, &rejected] {
        for _ in 0..2 {
            let r = me(&app, t);
            assert_eq!(r.status, 401, "{t}: {}", String::from_utf8_lossy(&r.body));
            assert_eq!(r.error_code(), "invalid_token");
            expected_calls += 1;
            assert_eq!(
                verifier.calls(),
                expected_calls,
                "{t}: refusals are not cached"
            );
        }
    }

    // A token that turns valid later is accepted at once (no stale refusal).
    verifier.answer(
        &stranger,
        200,
        &json!({"valid": true, "owner_id": owner}).to_string(),
    );
    assert_eq!(me(&app, &stranger).status, 200);

    // Tokens without the configured prefix never reach the verifier.
    let calls = verifier.calls();
    for t in ["xyz_not-ours", "ssa_malformed-own-token"] {
        let r = me(&app, t);
        assert_eq!(r.status, 401);
        assert_eq!(r.error_code(), "invalid_token");
    }
    assert_eq!(verifier.calls(), calls);
}

#[test]
fn no_usable_answer_from_the_verifier_is_503() {
    let verifier = FakeVerifier::start();
    let Some(app) = app_with(&verifier) else {
        return;
    };
    let admin = app.admin();
    let (owner, _) = create_account(&app, &admin.access, "user", None);
    let ok = json!({"valid": true, "owner_id": owner}).to_string();

    let broken = token("broken");
    verifier.answer(&broken, 500, &ok);
    let garbage = token("garbage");
    verifier.answer(&garbage, 200, "<html>not json</html>");
    let throttled = token("throttled");
    verifier.answer(&throttled, 429, &ok);
    for t in [&broken, &garbage, &throttled] {
        for _ in 0..2 {
            let r = me(&app, t);
            assert_eq!(r.status, 503, "{t}: {}", String::from_utf8_lossy(&r.body));
            assert_eq!(r.error_code(), "service_unavailable");
        }
    }
    assert_eq!(verifier.calls(), 6, "failures are not cached");
}

#[test]
fn an_unreachable_verifier_is_503() {
    // A port that was just free: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let origin = format!("http://127.0.0.1:{port}");
    let url = format!("{origin}/verify");
    let Some(app) = TestApp::spawn_with(&[
        ("token_verifier_url", url.as_str()),
        ("token_verifier_origin", origin.as_str()),
    ]) else {
        return;
    };
    let r = me(&app, &token("closed"));
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.error_code(), "service_unavailable");
}

#[test]
fn a_verifier_outside_allowed_outbound_hosts_is_503_without_a_call() {
    let verifier = FakeVerifier::start();
    let url = format!("{}/verify", verifier.origin());
    // token_verifier_origin keeps its default, so Spin refuses the request.
    let Some(app) = TestApp::spawn_with(&[("token_verifier_url", url.as_str())]) else {
        return;
    };
    let r = me(&app, &token("denied"));
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(verifier.calls(), 0);
}

#[test]
fn not_configured_is_401_without_a_call() {
    let verifier = FakeVerifier::start();
    // The host may reach the verifier, but no URL is configured: fail closed.
    let Some(app) = TestApp::spawn_with(&[("token_verifier_origin", verifier.origin().as_str())])
    else {
        return;
    };
    let admin = app.admin();
    let (owner, _) = create_account(&app, &admin.access, "user", None);
    let t = token("unconfigured");
    verifier.answer(
        &t,
        200,
        &json!({"valid": true, "owner_id": owner}).to_string(),
    );
    let r = me(&app, &t);
    assert_eq!(r.status, 401, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.error_code(), "invalid_token");
    assert_eq!(verifier.calls(), 0);
}
