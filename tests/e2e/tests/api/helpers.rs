//! `TestApp`: the app under test, reached over HTTP only.
//!
//! With `E2E_BASE_URL` set (e.g. `http://127.0.0.1:3000` for a real `spin up`), every test talks to
//! that server. Otherwise each test starts the Spin-compatible test host (`tests/host`) on a free
//! loopback port with a fresh state directory, serving the built `.wasm` components named by the
//! repository's `spin.toml`. Tests that need to change variables or inject store faults can only
//! do that on the test host; against a real Spin they return early with a note.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use spin_test_host::{Faults, HostOptions, RunningHost};

pub struct TestApp {
    pub base: String,
    host: Option<RunningHost>,
    state_dir: Option<PathBuf>,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

impl TestApp {
    /// The app with its default configuration.
    pub fn spawn() -> TestApp {
        if let Ok(base) = std::env::var("E2E_BASE_URL") {
            return TestApp {
                base: base.trim_end_matches('/').to_owned(),
                host: None,
                state_dir: None,
            };
        }
        Self::spawn_host(&[]).expect("test host starts")
    }

    /// The app with `variables` applied on the test host; against a real Spin the server is used
    /// as configured (the README says which settings the suite expects there).
    pub fn spawn_tuned(variables: &[(&str, &str)]) -> TestApp {
        if std::env::var("E2E_BASE_URL").is_ok() {
            return Self::spawn();
        }
        Self::spawn_host(variables).expect("test host starts")
    }

    /// The app on the test host with variable overrides; `None` against a real Spin, where the
    /// configuration is not ours to change.
    pub fn spawn_with(variables: &[(&str, &str)]) -> Option<TestApp> {
        if std::env::var("E2E_BASE_URL").is_ok() {
            eprintln!("skipped: needs the test host (variables/faults), E2E_BASE_URL is set");
            return None;
        }
        Some(Self::spawn_host(variables).expect("test host starts"))
    }

    fn spawn_host(variables: &[(&str, &str)]) -> anyhow::Result<TestApp> {
        let root = repo_root();
        let wasm = root.join("target/wasm32-wasip2/release/streamspace_audit.wasm");
        anyhow::ensure!(
            wasm.exists(),
            "{} is missing: build the components first (scripts/test does; or \
             `cargo build --target wasm32-wasip2 --release --workspace --exclude spin-test-host --exclude e2e`)",
            wasm.display()
        );
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let state_dir =
            std::env::temp_dir().join(format!("streamspace-e2e-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state_dir);
        let mut options = HostOptions::new(root.join("spin.toml"), &state_dir);
        for (name, value) in variables {
            options = options.variable(*name, *value);
        }
        let host = RunningHost::start(options)?;
        Ok(TestApp {
            base: host.base_url(),
            host: Some(host),
            state_dir: Some(state_dir),
        })
    }

    /// Store fault switches (test host only).
    pub fn faults(&self) -> Option<Faults> {
        self.host.as_ref().map(RunningHost::faults)
    }

    /// The SQLite database file of the test host (test host only).
    pub fn database_path(&self) -> Option<PathBuf> {
        self.state_dir.as_ref().map(|d| d.join("sqlite_db.db"))
    }

    /// Guest stdout lines captured so far (test host only).
    pub fn log_lines(&self) -> Option<Vec<String>> {
        self.host.as_ref().map(RunningHost::guest_log_lines)
    }

    /// A JSON request, with a bearer token when given.
    pub fn json(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &serde_json::Value,
    ) -> Resp {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(auth) = auth.as_deref() {
            headers.push(("authorization", auth));
        }
        self.request(
            method,
            path,
            &headers,
            Body::Bytes(body.to_string().into_bytes()),
        )
    }

    /// A body-less request with a bearer token.
    pub fn authed(&self, method: &str, path: &str, token: &str) -> Resp {
        let auth = format!("Bearer {token}");
        self.request(method, path, &[("authorization", &auth)], Body::Empty)
    }

    /// Logs in; panics unless it succeeds.
    pub fn login(&self, username: &str, password: &str) -> Session {
        let r = self.json(
            "POST",
            "/api/v1/auth/login",
            None,
            &serde_json::json!({"username": username, "password": password}),
        );
        assert_eq!(
            r.status,
            200,
            "login {username}: {}",
            String::from_utf8_lossy(&r.body)
        );
        Session::from_tokens(&r.json())
    }

    /// The platform admin: created by first-user setup on a fresh host; on a shared server
    /// (E2E_BASE_URL) created on the suite's first run, then logged in with the same credentials
    /// (`E2E_ADMIN_USERNAME` / `E2E_ADMIN_PASSWORD` override them).
    pub fn admin(&self) -> Session {
        let username =
            std::env::var("E2E_ADMIN_USERNAME").unwrap_or_else(|_| ADMIN_USERNAME.to_owned());
        let password =
            std::env::var("E2E_ADMIN_PASSWORD").unwrap_or_else(|_| ADMIN_PASSWORD.to_owned());
        let status = self.get("/api/v1/auth/setup/status").json();
        if status["setup_required"] == true {
            let r = self.json(
                "POST",
                "/api/v1/auth/setup",
                None,
                &serde_json::json!({
                    "username": username,
                    "email": format!("{username}@example.com"),
                    "password": password,
                    "org_name": "E2E Org",
                }),
            );
            if r.status == 201 {
                return Session::from_tokens(&r.json());
            }
            assert_eq!(r.status, 409, "setup: {}", String::from_utf8_lossy(&r.body));
        }
        self.login(&username, &password)
    }

    pub fn get(&self, path: &str) -> Resp {
        self.request("GET", path, &[], Body::Empty)
    }

    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Body) -> Resp {
        send(&self.base, method, path, headers, body)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(host) = self.host.take() {
            host.shutdown();
        }
        if let Some(dir) = self.state_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

pub const ADMIN_USERNAME: &str = "e2e-admin";
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

/// A unique suffix for names, so tests can share one server.
pub fn unique(prefix: &str) -> String {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{prefix}-{}-{n}-{nanos:x}", std::process::id())
}

/// A logged-in user's tokens.
#[derive(Debug, Clone)]
pub struct Session {
    pub access: String,
    pub refresh: String,
    pub user_id: String,
    pub org_id: String,
}

impl Session {
    pub fn from_tokens(v: &serde_json::Value) -> Session {
        Session {
            access: v["access_token"].as_str().expect("access_token").to_owned(),
            refresh: v["refresh_token"]
                .as_str()
                .expect("refresh_token")
                .to_owned(),
            user_id: v["user"]["id"].as_str().unwrap_or_default().to_owned(),
            org_id: v["user"]["org_id"].as_str().unwrap_or_default().to_owned(),
        }
    }
}

/// How a request body is sent.
pub enum Body {
    Empty,
    /// With an honest `Content-Length`.
    Bytes(Vec<u8>),
    /// `Transfer-Encoding: chunked`, so only the actual size can be checked.
    Chunked(Vec<u8>),
    /// A `Content-Length` header claiming `n` bytes, with nothing sent.
    Declared(u64),
}

/// A response as received.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Asserts the error envelope and returns its code.
    pub fn error_code(&self) -> String {
        let v = self.json();
        let obj = v.as_object().expect("envelope is an object");
        assert!(
            obj["message"].as_str().is_some(),
            "envelope without message: {v}"
        );
        assert_eq!(
            obj["request_id"].as_str(),
            self.header("x-request-id"),
            "envelope request_id equals the X-Request-ID header"
        );
        obj["error"].as_str().expect("error code").to_owned()
    }
}

/// A deliberately small HTTP/1.1 client: it sends exactly what a test asks for (custom methods,
/// lying `Content-Length`, chunked bodies) and reads the whole answer (`Connection: close`).
pub fn send(base: &str, method: &str, path: &str, headers: &[(&str, &str)], body: Body) -> Resp {
    let authority = base
        .strip_prefix("http://")
        .expect("E2E_BASE_URL must be an http:// URL (put TLS in front of Spin, not in the suite)");
    let authority = authority.split('/').next().unwrap_or(authority);
    let mut stream = TcpStream::connect(authority).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(60))).ok();
    stream.set_nodelay(true).ok();
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let payload: Vec<u8> = match &body {
        Body::Empty => Vec::new(),
        Body::Bytes(b) => {
            head.push_str(&format!("Content-Length: {}\r\n", b.len()));
            b.clone()
        }
        Body::Chunked(b) => {
            head.push_str("Transfer-Encoding: chunked\r\n");
            let mut out = Vec::with_capacity(b.len() + 64);
            for chunk in b.chunks(64 * 1024) {
                out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                out.extend_from_slice(chunk);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
            out
        }
        Body::Declared(n) => {
            head.push_str(&format!("Content-Length: {n}\r\n"));
            Vec::new()
        }
    };
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("write head");
    // The body goes out on its own thread while this one reads: the server may answer (413) and
    // close before taking the whole body, and the answer must be read before the reset arrives.
    let mut writer = stream.try_clone().expect("clone stream");
    // No half-close after a declared-only body: HTTP/1 servers may drop a connection whose
    // client closed its sending side before the answer went out.
    let write = std::thread::spawn(move || {
        let _ = writer.write_all(&payload);
    });
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    let _ = write.join();
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Resp {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete response: {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Resp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        data = &data[line_end + 2..];
        if size == 0 || data.len() < size {
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[(size + 2).min(data.len())..];
    }
    out
}
