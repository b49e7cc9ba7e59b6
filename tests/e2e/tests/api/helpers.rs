//! `TestApp`: the app under test, reached over HTTP only.
//!
//! Three ways to run the same tests:
//! - By default each test starts the Spin-compatible test host (`tests/host`) on a free loopback
//!   port with a fresh state directory, serving the built `.wasm` components named by the
//!   repository's `spin.toml`.
//! - With `E2E_SPIN=/path/to/spin`, each test starts its own real `spin up` the same way: a fresh
//!   `--state-dir`, a free loopback port, the test's variables as `SPIN_VARIABLE_<NAME>`, and the
//!   stores chosen by `E2E_BACKEND`: `local` (default: Spin's SQLite files), `redis` (key-value
//!   and the rate limiter on a `redis-server` started for the test) or `libsql` (SQLite on a `sqld`
//!   started for the test; `E2E_SQLD`, else `../shared/bin/sqld`, else `sqld` on PATH).
//! - With `E2E_BASE_URL` set (a server of your own, e.g. `http://127.0.0.1:3000`), every test talks
//!   to that server; tests that need other variables return early with a note.
//!
//! Only fault injection (`spawn_for_faults`) needs the test host. Every test that returns early
//! for want of it prints `test-host-only: <test>` on stderr and, with `E2E_REPORT=<file>`, appends
//! the same line there (scripts/test counts them).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use spin_test_host::{Faults, HostOptions, RunningHost};

pub struct TestApp {
    pub base: String,
    host: Option<RunningHost>,
    state_dir: Option<PathBuf>,
    spin: Option<SpinApp>,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The stores a real `spin up` runs with (`E2E_BACKEND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Spin's defaults: SQLite files in the state directory.
    Local,
    /// Key-value store and rate limiter on Redis (`infra/runtime-config.redis-local.toml`).
    Redis,
    /// SQLite on a libSQL server (`infra/runtime-config.libsql-local.toml`).
    Libsql,
}

/// The real Spin to start per test, when `E2E_SPIN` names one.
fn spin_binary() -> Option<PathBuf> {
    std::env::var_os("E2E_SPIN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn shared_server() -> bool {
    std::env::var("E2E_BASE_URL").is_ok()
}

/// The backend of the real-Spin runs (`E2E_BACKEND`, default `local`).
pub fn backend() -> Backend {
    match std::env::var("E2E_BACKEND").unwrap_or_default().as_str() {
        "" | "local" => Backend::Local,
        "redis" => Backend::Redis,
        "libsql" => Backend::Libsql,
        other => panic!("E2E_BACKEND={other}: expected local, redis or libsql"),
    }
}

/// Records a test that returned early because it needs the test host.
fn note_host_only(reason: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("<unnamed>")
        .to_owned();
    eprintln!("test-host-only: {test}: {reason}");
    if let Some(path) = std::env::var_os("E2E_REPORT") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "test-host-only {test}");
        }
    }
}

impl TestApp {
    /// The app with its default configuration.
    pub fn spawn() -> TestApp {
        if let Ok(base) = std::env::var("E2E_BASE_URL") {
            return TestApp {
                base: base.trim_end_matches('/').to_owned(),
                host: None,
                state_dir: None,
                spin: None,
            };
        }
        Self::spawn_fresh(&[])
    }

    /// The app with `variables` applied (test host or a real Spin started for the test); against
    /// a shared server (`E2E_BASE_URL`) the server is used as configured (the README says which
    /// settings the suite expects there).
    pub fn spawn_tuned(variables: &[(&str, &str)]) -> TestApp {
        if shared_server() {
            return Self::spawn();
        }
        Self::spawn_fresh(variables)
    }

    /// The app with variable overrides, on the test host or a real Spin started for the test;
    /// `None` against a shared server (`E2E_BASE_URL`), whose configuration is not ours to change.
    pub fn spawn_with(variables: &[(&str, &str)]) -> Option<TestApp> {
        if shared_server() {
            note_host_only("needs its own variables, E2E_BASE_URL is a shared server");
            return None;
        }
        Some(Self::spawn_fresh(variables))
    }

    /// The app on the test host, for tests that inject store faults ([`TestApp::faults`]); `None`
    /// (with a note) on a real Spin, which has no fault switches.
    pub fn spawn_for_faults(variables: &[(&str, &str)]) -> Option<TestApp> {
        if shared_server() || spin_binary().is_some() {
            note_host_only("injects store faults");
            return None;
        }
        Some(Self::spawn_host(variables).expect("test host starts"))
    }

    fn spawn_fresh(variables: &[(&str, &str)]) -> TestApp {
        match spin_binary() {
            Some(spin) => Self::spawn_spin(&spin, variables).expect("spin up starts"),
            None => Self::spawn_host(variables).expect("test host starts"),
        }
    }

    fn check_built(root: &Path) -> anyhow::Result<()> {
        let wasm = root.join("target/wasm32-wasip2/release/streamspace_audit.wasm");
        anyhow::ensure!(
            wasm.exists(),
            "{} is missing: build the components first (scripts/test does; or \
             `cargo build --target wasm32-wasip2 --release --workspace --exclude spin-test-host --exclude e2e`)",
            wasm.display()
        );
        Ok(())
    }

    fn spawn_host(variables: &[(&str, &str)]) -> anyhow::Result<TestApp> {
        let root = repo_root();
        Self::check_built(&root)?;
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
            spin: None,
        })
    }

    fn spawn_spin(spin: &Path, variables: &[(&str, &str)]) -> anyhow::Result<TestApp> {
        let root = repo_root();
        Self::check_built(&root)?;
        let app = SpinApp::start(spin, &root, backend(), variables)?;
        Ok(TestApp {
            base: app.base.clone(),
            host: None,
            state_dir: None,
            spin: Some(app),
        })
    }

    /// Store fault switches (test host only).
    pub fn faults(&self) -> Option<Faults> {
        self.host.as_ref().map(RunningHost::faults)
    }

    /// The SQLite database file, when the suite can reach it (the test host, or a real Spin with
    /// local SQLite files: the `local` and `redis` backends).
    pub fn database_path(&self) -> Option<PathBuf> {
        if let Some(spin) = &self.spin {
            return spin.database_path();
        }
        self.state_dir.as_ref().map(|d| d.join("sqlite_db.db"))
    }

    /// Guest stdout lines captured so far (the test host's capture, or the log files a real Spin
    /// writes in its state directory).
    pub fn log_lines(&self) -> Option<Vec<String>> {
        if let Some(spin) = &self.spin {
            return Some(spin.log_lines());
        }
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
        drop(self.spin.take());
    }
}

/// A real `spin up` started for one test, with the services its backend needs; everything is
/// killed and its directory removed on drop.
struct SpinApp {
    base: String,
    backend: Backend,
    dir: PathBuf,
    /// The spin process first, then the services it uses (stopped in this order).
    children: Vec<Child>,
    /// The `SPIN_VARIABLE_*` values spin was started with (kept for [`TestApp::restart_after_kill`]).
    vars: Vec<(String, String)>,
}

/// A free loopback port (bound, then released for the child to take).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Waits until `port` accepts connections, failing if `child` exits first.
fn wait_for_port(child: &mut Child, port: u16, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("{what} exited ({status}) before listening on {port}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    anyhow::bail!("{what} did not listen on {port} within 20 s")
}

/// The status of `GET /health`, or `None` when nothing answers yet.
fn probe_health(port: u16) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let head = String::from_utf8_lossy(&raw);
    head.split(' ').nth(1)?.parse().ok()
}

/// A runtime configuration from one of `infra/`'s local templates, pointed at `port`.
fn runtime_config(
    root: &Path,
    template: &str,
    placeholder: &str,
    port: u16,
) -> anyhow::Result<String> {
    let path = root.join("infra").join(template);
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
    anyhow::ensure!(
        text.contains(placeholder),
        "{template} does not mention {placeholder}"
    );
    Ok(text.replace(placeholder, &format!("127.0.0.1:{port}")))
}

fn sqld_binary(root: &Path) -> PathBuf {
    if let Some(path) = std::env::var_os("E2E_SQLD").filter(|v| !v.is_empty()) {
        return PathBuf::from(path);
    }
    let shared = root.join("../shared/bin/sqld");
    if shared.exists() {
        return shared;
    }
    PathBuf::from("sqld")
}

impl SpinApp {
    fn start(
        spin: &Path,
        root: &Path,
        backend: Backend,
        variables: &[(&str, &str)],
    ) -> anyhow::Result<SpinApp> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("streamspace-spin-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let mut app = SpinApp {
            base: String::new(),
            backend,
            dir,
            children: Vec::new(),
            vars: Vec::new(),
        };
        let mut vars: Vec<(String, String)> = Vec::new();
        let mut config = None;
        match backend {
            Backend::Local => {}
            Backend::Redis => {
                let port = free_port()?;
                let mut child = Command::new("redis-server")
                    .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                    .args(["--save", "", "--appendonly", "no"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .context("E2E_BACKEND=redis needs redis-server on PATH")?;
                let ready = wait_for_port(&mut child, port, "redis-server");
                app.children.push(child);
                ready?;
                config = Some(runtime_config(
                    root,
                    "runtime-config.redis-local.toml",
                    "127.0.0.1:6379",
                    port,
                )?);
                let url = format!("redis://127.0.0.1:{port}");
                vars.push(("rate_limit_backend".into(), "redis".into()));
                vars.push(("redis_url".into(), url.clone()));
                vars.push(("redis_origin".into(), url));
            }
            Backend::Libsql => {
                let port = free_port()?;
                let sqld = sqld_binary(root);
                let mut child = Command::new(&sqld)
                    .arg("-d")
                    .arg(app.dir.join("sqld"))
                    .args(["--http-listen-addr", &format!("127.0.0.1:{port}")])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .with_context(|| {
                        format!("E2E_BACKEND=libsql needs sqld ({})", sqld.display())
                    })?;
                let ready = wait_for_port(&mut child, port, "sqld");
                app.children.push(child);
                ready?;
                config = Some(runtime_config(
                    root,
                    "runtime-config.libsql-local.toml",
                    "127.0.0.1:8089",
                    port,
                )?);
                vars.push(("sqlite_synchronous".into(), "server".into()));
            }
        }
        // The test's own variables win over the backend's.
        vars.extend(
            variables
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        app.vars.clone_from(&vars);
        let config_path = app.dir.join("runtime-config.toml");
        if let Some(text) = &config {
            std::fs::write(&config_path, text)?;
        }
        app.launch(spin, root)?;
        Ok(app)
    }

    /// Polls `/health` until Spin answers it with 200, or with anything once it has answered for
    /// a while (a test may configure an app that refuses every request). Waiting for the 200
    /// first means the first request has migrated the database (on libSQL, a 503 from a
    /// migration that lost a race must not be mistaken for readiness).
    fn wait_ready(&mut self, port: u16) -> anyhow::Result<()> {
        // The first start after a build compiles the components (wasmtime caches them for the
        // next ones), which takes a while on a busy machine.
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut first_answer: Option<Instant> = None;
        // Our Spin says it serves the port before anything that answers there is believed: a
        // port handed out by `free_port` to two tests at once would let one test talk to the
        // other's Spin, which then stops mid-test (suspected when two tests of one Redis run got
        // a connection closed with no answer at all).
        let serving = format!("Serving http://127.0.0.1:{port}");
        while Instant::now() < deadline {
            if let Some(status) = self.children[0].try_wait()? {
                anyhow::bail!("spin up exited ({status})");
            }
            let ours = std::fs::read_to_string(self.dir.join("spin.out"))
                .is_ok_and(|out| out.contains(&serving));
            if !ours {
                std::thread::sleep(Duration::from_millis(25));
                continue;
            }
            match probe_health(port) {
                Some(200) => return Ok(()),
                Some(_) => {
                    let since = *first_answer.get_or_insert_with(Instant::now);
                    if since.elapsed() > Duration::from_secs(5) {
                        return Ok(());
                    }
                }
                None => {}
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        anyhow::bail!("spin up did not answer /health within 300 s")
    }

    fn database_path(&self) -> Option<PathBuf> {
        match self.backend {
            Backend::Local | Backend::Redis => Some(self.dir.join("state/sqlite_db.db")),
            // sqld keeps the default namespace in an ordinary SQLite file (WAL mode); reading
            // and tampering with it beside the server works like a local file.
            Backend::Libsql => Some(self.dir.join("sqld/dbs/default/data")),
        }
    }

    /// Every component's stdout lines, from the files Spin writes in `<state>/logs/`.
    fn log_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let Ok(entries) = std::fs::read_dir(self.dir.join("state/logs")) else {
            return lines;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with("_stdout.txt"))
            .collect();
        files.sort();
        for file in files {
            if let Ok(text) = std::fs::read_to_string(&file) {
                lines.extend(text.lines().filter(|l| !l.is_empty()).map(str::to_owned));
            }
        }
        lines
    }
}

/// Each real Spin's time to a healthy `/health`, for scripts/test's summary (`E2E_REPORT`).
fn report_startup(elapsed: Duration) {
    if let Some(path) = std::env::var_os("E2E_REPORT") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "spin-startup-ms {}", elapsed.as_millis());
        }
    }
}

/// Kills `child` and every process of its group (`spin up` and its `spin trigger http`).
fn stop_group(mut child: Child) {
    let group = format!("-{}", child.id());
    let killed = Command::new("kill")
        .args(["-KILL", "--", &group])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !killed {
        let _ = child.kill();
    }
    let _ = child.wait();
}

impl Drop for SpinApp {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // A failing test on a real Spin: its error lines (with the 5xx causes) before they go.
            for line in self
                .log_lines()
                .iter()
                .filter(|l| l.contains("\"level\":\"error\""))
            {
                eprintln!("spin log: {line}");
            }
        }
        let mut children = std::mem::take(&mut self.children).into_iter();
        // The spin process first (its own process group), then the services it used.
        if let Some(spin) = children.next() {
            stop_group(spin);
        }
        for mut child in children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
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

/// A response body as text, for assertion messages.
pub fn text(r: &Resp) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// Asserts an error answer: its status and its envelope's error code.
pub fn expect_error(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", text(r));
    assert_eq!(r.error_code(), code, "{}", text(r));
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

/// Makes a live access token expired, as if its lifetime had passed, by moving its expiry into
/// the past in the app's SQLite file. `false` when the suite cannot reach the database (a server
/// of your own via `E2E_BASE_URL`, or a database behind a server such as libSQL).
pub fn expire_access_token(app: &TestApp, token: &str) -> bool {
    let Some(path) = app.database_path() else {
        return false;
    };
    let db = rusqlite::Connection::open(path).expect("open the test host's database");
    db.busy_timeout(Duration::from_secs(10)).ok();
    let changed = db
        .execute(
            "UPDATE access_tokens SET expires_at = 1 WHERE token_hash = ?1",
            [shared::secrets::TokenHash::of(token).as_str()],
        )
        .expect("expire the access token");
    assert_eq!(changed, 1, "the access token is in the database");
    true
}

/// Records a test that returned early because it needs a real Spin (it kills the server, which
/// the in-process test host cannot survive): `real-Spin-only: <test>` on stderr and, with
/// `E2E_REPORT=<file>`, `real-spin-only <test>` there.
pub fn note_real_spin_only(reason: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("<unnamed>")
        .to_owned();
    eprintln!("real-Spin-only: {test}: {reason}");
    if let Some(path) = std::env::var_os("E2E_REPORT") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "real-spin-only {test}");
        }
    }
}

/// True when each test starts its own real `spin up` (`E2E_SPIN` set, no `E2E_BASE_URL`).
pub fn real_spin_per_test() -> bool {
    spin_binary().is_some() && !shared_server()
}

impl TestApp {
    /// Real Spin only: SIGKILLs the whole `spin up` process group (`spin up` and its
    /// `spin trigger http`) and reaps it; the services it used keep running.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        let app = self
            .spin
            .as_mut()
            .context("kill9 needs a real Spin started for the test")?;
        anyhow::ensure!(!app.children.is_empty(), "spin is not running");
        stop_group(app.children.remove(0));
        Ok(())
    }

    /// Real Spin only: after [`TestApp::kill9`], starts `spin up` again on the same state
    /// directory, runtime configuration, variables and services (sqld / redis kept running), on
    /// a fresh port ([`TestApp::base`] follows), and waits until it is ready.
    pub fn restart_after_kill(&mut self) -> anyhow::Result<()> {
        let spin = spin_binary().context("restart_after_kill needs E2E_SPIN")?;
        let app = self
            .spin
            .as_mut()
            .context("restart_after_kill needs a real Spin started for the test")?;
        app.launch(&spin, &repo_root())?;
        self.base = app.base.clone();
        Ok(())
    }
}

/// [`send`] for a server that may die mid-request: a connection error or an incomplete answer is
/// an `Err` instead of a panic (`Content-Length` bodies, as the test client sends them).
pub fn try_send(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Resp> {
    let authority = base.strip_prefix("http://").unwrap_or(base);
    let authority = authority.split('/').next().unwrap_or(authority);
    let mut stream = TcpStream::connect(authority)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.set_nodelay(true)?;
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    stream.write_all(&out)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let incomplete = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "incomplete");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(incomplete)?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let declared = head
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok());
    let chunked_done = raw.ends_with(b"0\r\n\r\n");
    let complete = match declared {
        Some(n) => raw.len() - split - 4 >= n,
        None => chunked_done,
    };
    if !complete {
        return Err(incomplete());
    }
    Ok(parse_response(&raw))
}

impl SpinApp {
    /// Starts `spin up` again as [`SpinApp::start`] did (same state directory, runtime
    /// configuration and variables), on a fresh port, after the previous one was killed.
    /// Starts `spin up` on this app's state directory, runtime configuration and variables (a
    /// first start, or a restart after [`TestApp::kill9`]); a port taken between our probe and
    /// spin's bind fails the start, so another one is tried.
    fn launch(&mut self, spin: &Path, root: &Path) -> anyhow::Result<()> {
        let config_path = self.dir.join("runtime-config.toml");
        let mut last_error = None;
        for _attempt in 0..3 {
            let port = free_port()?;
            let out = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join("spin.out"))?;
            let mut cmd = Command::new(spin);
            cmd.process_group(0);
            cmd.current_dir(root)
                .args(["up", "--from", "spin.toml"])
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .arg("--state-dir")
                .arg(self.dir.join("state"))
                .stdin(Stdio::null())
                .stdout(out.try_clone()?)
                .stderr(out);
            if config_path.exists() {
                cmd.arg("--runtime-config-file").arg(&config_path);
            }
            for (key, _) in std::env::vars_os() {
                if key.to_string_lossy().starts_with("SPIN_VARIABLE_") {
                    cmd.env_remove(key);
                }
            }
            for (name, value) in &self.vars {
                cmd.env(
                    format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase()),
                    value,
                );
            }
            let started = Instant::now();
            let child = cmd
                .spawn()
                .with_context(|| format!("E2E_SPIN={}", spin.display()))?;
            // `spin up` runs the app in a child process (`spin trigger http`): the process group
            // of its own (above) lets drop stop both.
            self.children.insert(0, child);
            match self.wait_ready(port) {
                Ok(()) => {
                    self.base = format!("http://127.0.0.1:{port}");
                    report_startup(started.elapsed());
                    return Ok(());
                }
                Err(err) => {
                    stop_group(self.children.remove(0));
                    let output =
                        std::fs::read_to_string(self.dir.join("spin.out")).unwrap_or_default();
                    last_error = Some(err.context(output));
                }
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("spin up did not start")))
    }
}
