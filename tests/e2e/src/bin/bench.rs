//! `scripts/bench`: serves the built components with the test host and measures them with a
//! keep-alive load generator on loopback. Prints figures; it never fails on time.
//!
//! Environment: `BENCH_SECONDS` (per route, default 10), `BENCH_CONNECTIONS` (default 16),
//! `E2E_BASE_URL` (measure a running server, e.g. a real `spin up`, instead of the test host).
//!
//! `bench spin` (`scripts/bench spin`): the same load against real `spin up`s it starts itself —
//! the floors (`tests/bench-floor/spin.toml`: hello-world and 1 upsert + 1 insert on the app's
//! schema) and the app, on a local SQLite file and on libSQL (`sqld`), side by side; see
//! [`spin_mode`]. `BENCH_SPIN` names the Spin CLI, `BENCH_SQLD` the libSQL server,
//! `BENCH_TIMEOUT` (seconds, default 10) bounds every request.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
#[path = "../../../bench-floor/closed_loop.rs"]
mod closed_loop;
use closed_loop::{connect, exchange, load, read_response, MakeRequest, Stats};
use spin_test_host::{HostOptions, RunningHost};

fn main() -> Result<()> {
    match std::env::args().nth(1).as_deref() {
        Some("spin") => return spin_mode::run(),
        Some("sessions") => return spin_mode::sessions::run(),
        Some("catalog") => return spin_mode::catalog::run(),
        _ => {}
    }
    let seconds: u64 = env_or("BENCH_SECONDS", 10);
    let connections: usize = env_or("BENCH_CONNECTIONS", 16);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");

    let state_dir = std::env::temp_dir().join(format!("streamspace-bench-{}", std::process::id()));
    let (base, host) = match std::env::var("E2E_BASE_URL") {
        Ok(base) => (base, None),
        Err(_) => {
            // Limits high enough never to refuse: the limiter still runs (and costs what it costs).
            let mut options = HostOptions::new(root.join("spin.toml"), &state_dir);
            for name in [
                "rate_limit_api_per_minute",
                "rate_limit_login_per_minute",
                "rate_limit_login_per_hour",
                "rate_limit_login_ip_per_minute",
                "rate_limit_login_ip_per_hour",
                "rate_limit_login_user_per_hour",
                "rate_limit_mint_per_minute",
            ] {
                options = options.variable(name, "1000000");
            }
            let host = RunningHost::start(options)?;
            (host.base_url(), Some(host))
        }
    };
    let authority = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    println!("target: {base} ({connections} connections, {seconds} s per route, keep-alive)");
    println!(
        "machine: {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    let token = login_latency(&authority)?;
    let bearer = format!("Authorization: Bearer {token}\r\n");
    for (path, extra) in [
        ("/health", ""),
        ("/version", ""),
        ("/api/v1/auth/no-such-route", ""),
        ("/api/v1/users/me", bearer.as_str()),
    ] {
        // Warm up: compile caches, SQLite file, WAL.
        run(
            &authority,
            path,
            extra,
            connections.min(4),
            Duration::from_millis(500),
        )?;
        let before = host.as_ref().map(|h| h.faults().sqlite_execute_count());
        let stats = run(
            &authority,
            path,
            extra,
            connections,
            Duration::from_secs(seconds),
        )?;
        let executes = host
            .as_ref()
            .zip(before)
            .map(|(h, b)| (h.faults().sqlite_execute_count() - b) as f64 / stats.requests as f64);
        println!(
            "GET {path:<28} {:>8.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms  ({} requests, {} non-2xx){}",
            stats.requests as f64 / stats.elapsed.as_secs_f64(),
            stats.percentile(50.0),
            stats.percentile(99.0),
            stats.percentile(100.0),
            stats.requests,
            stats.non_2xx,
            executes.map_or(String::new(), |e| format!("  sqlite statements/request {e:.2}")),
        );
    }

    schema_check_cost(&state_dir)?;
    if host.is_some() {
        rate_limit_accuracy(&root)?;
    }
    audit_scaling()?;

    println!("component sizes (release .wasm):");
    for name in ["audit", "auth", "sessions", "catalog", "webhooks"] {
        let file = root.join(format!(
            "target/wasm32-wasip2/release/streamspace_{name}.wasm"
        ));
        let size = std::fs::metadata(&file)
            .with_context(|| format!("{}", file.display()))?
            .len();
        println!(
            "  {name:<10} {size:>8} bytes ({:.0} KiB)",
            size as f64 / 1024.0
        );
    }
    if let Some(host) = host {
        host.shutdown();
    }
    let _ = std::fs::remove_dir_all(&state_dir);
    Ok(())
}

/// The cost of a `PRAGMA user_version` schema check. Requests no longer pay it: it runs only after
/// a statement failed on a missing table or column (then the connection migrates and retries).
/// Kept as a figure for that path and for comparison with the earlier per-request check.
fn schema_check_cost(state_dir: &std::path::Path) -> Result<()> {
    let db = state_dir.join("sqlite_db.db");
    if !db.exists() {
        println!("schema check: skipped (no local database; measuring a remote server)");
        return Ok(());
    }
    let conn = rusqlite::Connection::open(&db)?;
    let n = 100_000;
    let started = Instant::now();
    for _ in 0..n {
        let _: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    }
    let per_check = started.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    let started = Instant::now();
    let opens = 2_000;
    for _ in 0..opens {
        let c = rusqlite::Connection::open(&db)?;
        let _: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    }
    let per_open = started.elapsed().as_secs_f64() * 1e6 / f64::from(opens);
    println!(
        "schema check (only on a missing-schema error now, not per request): PRAGMA user_version {per_check:.2} µs on an open connection; fresh connection + check {per_open:.1} µs (native rusqlite)"
    );
    Ok(())
}

const ADMIN: &str = "bench-admin";
const PASSWORD: &str = "bench password not for production";

/// First-user setup (or login, on a server where it ran before), then sequential logins, each
/// followed by a logout so the session cap never interferes. Returns a live access token.
fn login_latency(authority: &str) -> Result<String> {
    let mut stream = TcpStream::connect(authority)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut buf = Vec::new();
    let setup = format!(
        r#"{{"username":"{ADMIN}","email":"{ADMIN}@example.com","password":"{PASSWORD}","org_name":"Bench"}}"#
    );
    let (status, _) = post(
        &mut stream,
        authority,
        "/api/v1/auth/setup",
        &setup,
        None,
        &mut buf,
    )?;
    if status != 201 && status != 409 {
        bail!("setup answered {status}");
    }
    let login = format!(r#"{{"username":"{ADMIN}","password":"{PASSWORD}"}}"#);
    let mut latencies = Vec::new();
    let mut token = String::new();
    for i in 0..40 {
        let t = Instant::now();
        let (status, body) = post(
            &mut stream,
            authority,
            "/api/v1/auth/login",
            &login,
            None,
            &mut buf,
        )?;
        let elapsed = t.elapsed();
        if status != 200 {
            bail!("login answered {status}: {body}");
        }
        token = body
            .split("\"access_token\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .context("no access_token")?
            .to_owned();
        if i < 39 {
            post(
                &mut stream,
                authority,
                "/api/v1/auth/logout",
                "",
                Some(&token),
                &mut buf,
            )?;
        }
        latencies.push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
    }
    latencies.sort_unstable();
    let stats = Stats {
        requests: 40,
        latencies_us: latencies,
        ..Stats::default()
    };
    println!(
        "POST /api/v1/auth/login (argon2id m=19 MiB t=2 p=1, sequential)  p50 {:.2} ms  p99 {:.2} ms",
        stats.percentile(50.0),
        stats.percentile(99.0)
    );
    Ok(token)
}

fn post(
    stream: &mut TcpStream,
    authority: &str,
    path: &str,
    body: &str,
    token: Option<&str>,
    buf: &mut Vec<u8>,
) -> Result<(u16, String)> {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes())?;
    let status = read_response(stream, buf)?;
    let text = String::from_utf8_lossy(buf).into_owned();
    Ok((status, text))
}

/// How audit queries and chain verification grow with the table (native rusqlite, the same SQL
/// the components run). `BENCH_AUDIT_ROWS` (default `100000,1000000`).
fn audit_scaling() -> Result<()> {
    use shared::audit::chain::{self, Record};
    use shared::store::native::NativeSql;
    let sizes: Vec<u64> = std::env::var("BENCH_AUDIT_ROWS")
        .unwrap_or_else(|_| "100000,1000000".to_owned())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let key = b"bench-audit-key";
    for rows in sizes {
        let sql = NativeSql::temp();
        let db = shared::migrations::open_database(&sql, shared::config::Synchronous::Normal, 0)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let t = Instant::now();
        let mut n = 0u64;
        while n < rows {
            db.begin().map_err(|e| anyhow::anyhow!("{e}"))?;
            for _ in 0..10_000.min(rows - n) {
                n += 1;
                let record = Record {
                    id: format!("ev-{n}"),
                    request_id: format!("rq-{n}"),
                    ts: 1_795_413_600_000 + i64::try_from(n)? * 10,
                    principal: Some(format!("user:u{}", n % 50)),
                    user_id: Some(format!("u{}", n % 50)),
                    org_id: Some(format!("org-{}", n % 5)),
                    method: if n.is_multiple_of(4) {
                        "POST".into()
                    } else {
                        "GET".into()
                    },
                    path: "/api/v1/users/me".into(),
                    action: if n.is_multiple_of(4) {
                        "POST /api/v1/users".into()
                    } else {
                        "GET /api/v1/users/me".into()
                    },
                    resource_type: Some("users".into()),
                    status: if n.is_multiple_of(10) { 401 } else { 200 },
                    duration_ms: 1.25,
                    ..Record::default()
                };
                chain::append(&db, key, &record).map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            db.commit().map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        let insert_us = t.elapsed().as_secs_f64() * 1e6 / rows as f64;
        let timed = |sql_text: &str| -> Result<f64> {
            let t = Instant::now();
            db.execute(sql_text, &[])
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(t.elapsed().as_secs_f64() * 1000.0)
        };
        let newest_page =
            timed("SELECT * FROM audit_log WHERE org_id = 'org-3' ORDER BY seq DESC LIMIT 51")?;
        let filtered = timed("SELECT * FROM audit_log WHERE org_id = 'org-3' AND action = 'POST /api/v1/users' AND status = 401 ORDER BY seq DESC LIMIT 51")?;
        let stats =
            timed("SELECT action, count(*) FROM audit_log WHERE org_id = 'org-3' GROUP BY action")?;
        let t = Instant::now();
        let report = chain::verify(&db, key, true).map_err(|e| anyhow::anyhow!("{e}"))?;
        let verify_s = t.elapsed().as_secs_f64();
        println!(
            "audit {rows} rows: append {insert_us:.1} µs/row; newest page {newest_page:.2} ms; filtered page {filtered:.2} ms; stats {stats:.1} ms; verify {verify_s:.2} s ({} checked, ok {})",
            report.checked, report.ok
        );
    }
    Ok(())
}

/// 50 concurrent clients on one key (one client IP) against a 600/min limit: how many are
/// admitted, against the exact GCRA allowance (the burst plus what refills while they run).
fn rate_limit_accuracy(root: &std::path::Path) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("streamspace-bench-rl-{}", std::process::id()));
    let host = RunningHost::start(
        HostOptions::new(root.join("spin.toml"), &dir).variable("rate_limit_api_per_minute", "600"),
    )?;
    let authority = host.base_url().trim_start_matches("http://").to_owned();
    let seconds = 3;
    let stats = run(&authority, "/version", "", 50, Duration::from_secs(seconds))?;
    let admitted = stats.requests - stats.non_2xx;
    let expected = 600 + (stats.elapsed.as_secs_f64() * 10.0).floor() as u64;
    println!(
        "rate limit accuracy: 50 clients, one key, 600/min for {:.1} s: {} of {} requests admitted (exact allowance {}, burst 600 + 10/s)",
        stats.elapsed.as_secs_f64(),
        admitted,
        stats.requests,
        expected
    );
    host.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn run(
    authority: &str,
    path: &str,
    extra_headers: &str,
    connections: usize,
    duration: Duration,
) -> Result<Stats> {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: streamspace-bench\r\n{extra_headers}\r\n"
    );
    Ok(load(
        authority,
        connections,
        duration,
        Duration::from_secs(env_or("BENCH_TIMEOUT", 10)),
        Arc::new(move |_, _| request.clone()),
    )?)
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `scripts/bench spin`: real `spin up`s, started and stopped here, on a local SQLite file and on
/// libSQL. Per backend, in one run: the hello-world floor and the I/O floor (their own manifest,
/// `tests/bench-floor/spin.toml`, never part of the app), then the app's `GET /version`, `GET
/// /api/v1/users/me` (bearer), `POST /api/v1/teams` (a new team per request) and `/users/me`
/// again while 8 clients flood `POST /api/v1/auth/login` with random usernames, each from its own
/// `X-Forwarded-For` address (`trusted_proxies = 127.0.0.1/32`). Rate limits are raised so that
/// nothing is refused (the limiter still runs). Every request is bounded by `BENCH_TIMEOUT`;
/// nothing here fails on time, and every process it started is killed on the way out.
mod spin_mode {
    use super::*;

    /// First-run setup on a fresh app: a connection to `authority` (reusable for more calls) and
    /// the admin's access token.
    fn admin_session(authority: &str) -> Result<(TcpStream, String)> {
        let mut stream = TcpStream::connect(authority)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let setup = format!(
            r#"{{"username":"{ADMIN}","email":"{ADMIN}@example.com","password":"{PASSWORD}","org_name":"Bench"}}"#
        );
        let (status, body) = sessions::call(
            &mut stream,
            authority,
            "POST",
            "/api/v1/auth/setup",
            "",
            &setup,
        )?;
        if status != 201 {
            bail!("setup answered {status}: {body}");
        }
        let token = body
            .split("\"access_token\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .context("no access_token")?
            .to_owned();
        Ok((stream, token))
    }

    /// The app's rate-limit variables, all raised to their maximum so nothing is refused.
    const LIMITS: &[&str] = &[
        "rate_limit_api_per_minute",
        "rate_limit_login_per_minute",
        "rate_limit_login_per_hour",
        "rate_limit_login_ip_per_minute",
        "rate_limit_login_ip_per_hour",
        "rate_limit_login_user_per_hour",
        "rate_limit_mint_per_minute",
        "rate_limit_mfa_per_minute",
        "rate_limit_agent_per_minute",
        "rate_limit_webhook_per_minute",
    ];

    const FLOOD_CLIENTS: usize = 8;

    #[derive(Clone, Copy, PartialEq)]
    enum Backend {
        Local,
        Libsql,
    }

    impl Backend {
        fn label(self) -> &'static str {
            match self {
                Backend::Local => "Spin + local SQLite",
                Backend::Libsql => "Spin + libSQL (sqld)",
            }
        }
    }

    /// The figures of one backend, in table order.
    #[derive(Default)]
    struct Figures {
        rows: Vec<(String, Option<Stats>)>,
        flood_logins: Option<Stats>,
    }

    impl Figures {
        fn get(&self, label: &str) -> Option<&Stats> {
            self.rows
                .iter()
                .find(|(l, _)| l == label)
                .and_then(|(_, s)| s.as_ref())
        }
    }

    const HELLO: &str = "hello-world floor (GET /hello)";
    const IO: &str = "I/O floor (GET /io: 1 upsert + 1 insert)";
    const VERSION: &str = "GET /version";
    const ME: &str = "GET /api/v1/users/me (bearer)";
    const TEAM: &str = "POST /api/v1/teams (new team)";
    const ME_FLOOD: &str = "GET /api/v1/users/me during the login flood";
    const LOGIN_FLOOD: &str = "POST /api/v1/auth/login flood (8 clients, wrong user)";

    /// Processes started by the bench, killed and waited for on drop (so on every exit path);
    /// their working directory goes with them.
    struct Started {
        children: Vec<(&'static str, Child)>,
        dir: PathBuf,
    }

    impl Started {
        fn new(dir: PathBuf) -> Result<Started> {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)?;
            Ok(Started {
                children: Vec::new(),
                dir,
            })
        }

        /// Stops the processes, newest first (spin before the sqld it uses).
        fn stop(&mut self) {
            while let Some((name, mut child)) = self.children.pop() {
                // Spin runs in a process group of its own: end the whole group.
                let group_killed = name == "spin"
                    && Command::new("kill")
                        .args(["-KILL", "--", &format!("-{}", child.id())])
                        .stderr(Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success());
                if !group_killed {
                    let _ = child.kill();
                }
                let _ = child.wait();
            }
        }
    }

    impl Drop for Started {
        fn drop(&mut self) {
            self.stop();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn free_port() -> Result<u16> {
        Ok(std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port())
    }

    /// The status of `GET path`, or `None` while nothing answers.
    fn probe(port: u16, path: &str) -> Option<u16> {
        let mut stream = connect(
            SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(30),
        )
        .ok()?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).ok()?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).ok()?;
        String::from_utf8_lossy(&raw)
            .split(' ')
            .nth(1)?
            .parse()
            .ok()
    }

    fn tail(path: &Path) -> String {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Starts `sqld` in `started`'s directory; returns its port.
    fn start_sqld(started: &mut Started, sqld: &Path) -> Result<u16> {
        let port = free_port()?;
        let child = Command::new(sqld)
            .arg("-d")
            .arg(started.dir.join("sqld"))
            .args(["--http-listen-addr", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", sqld.display()))?;
        started.children.push(("sqld", child));
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(port);
            }
            if let Some((_, child)) = started.children.last_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!("sqld exited ({status})");
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        bail!("sqld did not listen within 30 s")
    }

    /// The libSQL runtime config (infra's local template, pointed at `port`).
    fn libsql_config(root: &Path, dir: &Path, port: u16) -> Result<PathBuf> {
        let template = root.join("infra/runtime-config.libsql-local.toml");
        let text = std::fs::read_to_string(&template).unwrap_or_else(|_| {
            "[sqlite_database.default]\ntype = \"libsql\"\nurl = \"http://127.0.0.1:8089\"\ntoken = \"unused-without-auth\"\n".to_owned()
        });
        let path = dir.join("runtime-config.toml");
        std::fs::write(
            &path,
            text.replace("127.0.0.1:8089", &format!("127.0.0.1:{port}")),
        )?;
        Ok(path)
    }

    /// Starts `spin up --from manifest` (relative to the repository root) with `vars` as
    /// `SPIN_VARIABLE_*`; waits until `ready_path` answers. Returns `127.0.0.1:port`.
    fn start_spin(
        started: &mut Started,
        spin: &Path,
        root: &Path,
        manifest: &str,
        runtime_config: Option<&Path>,
        vars: &[(String, String)],
        ready_path: &str,
    ) -> Result<String> {
        let port = free_port()?;
        let log = started
            .dir
            .join(format!("spin-{}.out", manifest.replace(['/', '.'], "-")));
        let out = std::fs::File::create(&log)?;
        let mut cmd = Command::new(spin);
        cmd.current_dir(root)
            .args(["up", "--from", manifest])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--state-dir")
            .arg(started.dir.join("state"))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        if let Some(config) = runtime_config {
            cmd.arg("--runtime-config-file").arg(config);
        }
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SPIN_VARIABLE_") {
                cmd.env_remove(key);
            }
        }
        for (name, value) in vars {
            cmd.env(
                format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase()),
                value,
            );
        }
        // `spin up` runs the app in a child (`spin trigger http`): a process group of its own
        // lets `stop` end both (killing `spin up` alone leaves the trigger serving).
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", spin.display()))?;
        started.children.push(("spin", child));
        // The first start after a build compiles the components; that takes a while.
        let deadline = Instant::now() + Duration::from_secs(300);
        while Instant::now() < deadline {
            if let Some((_, child)) = started.children.last_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!("spin up exited ({status}):\n{}", tail(&log));
                }
            }
            if probe(port, ready_path).is_some() {
                return Ok(format!("127.0.0.1:{port}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("spin up did not answer within 300 s:\n{}", tail(&log))
    }

    fn find_spin(root: &Path) -> Option<PathBuf> {
        if let Some(path) = std::env::var_os("BENCH_SPIN").filter(|v| !v.is_empty()) {
            return Some(PathBuf::from(path));
        }
        let output = Command::new(root.join("scripts/find-spin")).output().ok()?;
        let path = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        (output.status.success() && !path.is_empty()).then(|| PathBuf::from(path))
    }

    fn find_sqld(root: &Path) -> Option<PathBuf> {
        if let Some(path) = std::env::var_os("BENCH_SQLD").filter(|v| !v.is_empty()) {
            return Some(PathBuf::from(path));
        }
        let shared = root.join("../shared/bin/sqld");
        if shared.exists() {
            return Some(shared);
        }
        let output = Command::new("sh")
            .args(["-c", "command -v sqld"])
            .output()
            .ok()?;
        let path = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        (output.status.success() && !path.is_empty()).then(|| PathBuf::from(path))
    }

    struct Settings {
        seconds: u64,
        connections: usize,
        timeout: Duration,
    }

    impl Settings {
        fn measure(&self, authority: &str, make: MakeRequest) -> Result<Stats> {
            // Warm up: compile caches, the database file, WAL.
            load(
                authority,
                self.connections.min(4),
                Duration::from_millis(500),
                self.timeout,
                make.clone(),
            )?;
            Ok(load(
                authority,
                self.connections,
                Duration::from_secs(self.seconds),
                self.timeout,
                make,
            )?)
        }
    }

    fn get(authority: &str, path: &str, extra: &str) -> MakeRequest {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: streamspace-bench\r\n{extra}\r\n"
        );
        Arc::new(move |_, _| request.clone())
    }

    fn post_json(authority: &str, path: &str, headers: &str, body: &str) -> String {
        format!(
            "POST {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: streamspace-bench\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    fn print_line(label: &str, stats: &Stats) {
        println!(
            "  {label:<54} {:>7.0} req/s  p50 {:>7.2} ms  p99 {:>8.2} ms  ({} answered: {}){}",
            stats.per_second(),
            stats.percentile(50.0),
            stats.percentile(99.0),
            stats.requests,
            stats.statuses_text(),
            if stats.stalled() { "  STALLED" } else { "" },
        );
        if let Some(body) = &stats.first_5xx {
            println!("    first 5xx: {body}");
        }
    }

    /// A small xorshift seeded from the clock: random usernames without a dependency.
    fn random(seed: u64) -> u64 {
        let mut x = seed ^ 0x9E37_79B9_7F4A_7C15;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }

    fn clock_seed() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    }

    /// Starts what `backend` needs beside Spin (a fresh `sqld` for libSQL) and returns the runtime
    /// configuration to pass to `spin up`, adding the backend's variables to `vars`.
    fn backend_stores(
        started: &mut Started,
        backend: Backend,
        root: &Path,
        sqld: Option<&Path>,
        vars: &mut Vec<(String, String)>,
    ) -> Result<Option<PathBuf>> {
        if backend != Backend::Libsql {
            return Ok(None);
        }
        let sqld = sqld.context("no sqld")?;
        let port = start_sqld(started, sqld)?;
        vars.push(("sqlite_synchronous".to_owned(), "server".to_owned()));
        Ok(Some(libsql_config(root, &started.dir, port)?))
    }

    fn floors(
        set: &Settings,
        figures: &mut Figures,
        backend: Backend,
        spin: &Path,
        root: &Path,
        sqld: Option<&Path>,
    ) -> Result<()> {
        let mut started = Started::new(std::env::temp_dir().join(format!(
            "streamspace-bench-floor-{}-{}",
            std::process::id(),
            backend as u8
        )))?;
        let mut vars = Vec::new();
        let config = backend_stores(&mut started, backend, root, sqld, &mut vars)?;
        let authority = start_spin(
            &mut started,
            spin,
            root,
            "tests/bench-floor/spin.toml",
            config.as_deref(),
            &vars,
            "/hello",
        )?;
        let status = probe(
            authority
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or(0),
            "/io/setup",
        );
        if status != Some(200) {
            bail!("floor /io/setup answered {status:?}");
        }
        let hello = set.measure(&authority, get(&authority, "/hello", ""))?;
        print_line(HELLO, &hello);
        figures.rows.push((HELLO.to_owned(), Some(hello)));
        let io = set.measure(&authority, get(&authority, "/io", ""))?;
        print_line(IO, &io);
        figures.rows.push((IO.to_owned(), Some(io)));
        Ok(())
    }

    fn app(
        set: &Settings,
        figures: &mut Figures,
        backend: Backend,
        spin: &Path,
        root: &Path,
        sqld: Option<&Path>,
    ) -> Result<()> {
        let mut started = Started::new(std::env::temp_dir().join(format!(
            "streamspace-bench-app-{}-{}",
            std::process::id(),
            backend as u8
        )))?;
        let mut vars: Vec<(String, String)> = LIMITS
            .iter()
            .map(|name| ((*name).to_owned(), "1000000".to_owned()))
            .collect();
        // X-Forwarded-For from loopback counts, so each flood client is its own address.
        vars.push(("trusted_proxies".into(), "127.0.0.1/32".into()));
        let config = backend_stores(&mut started, backend, root, sqld, &mut vars)?;
        let authority = start_spin(
            &mut started,
            spin,
            root,
            "spin.toml",
            config.as_deref(),
            &vars,
            "/health",
        )?;
        print!("  ");
        let token = login_latency(&authority)?;
        let bearer = format!("Authorization: Bearer {token}\r\n");

        let version = set.measure(&authority, get(&authority, "/version", ""))?;
        print_line(VERSION, &version);
        figures.rows.push((VERSION.to_owned(), Some(version)));

        let me = get(&authority, "/api/v1/users/me", &bearer);
        let alone = set.measure(&authority, me.clone())?;
        print_line(ME, &alone);
        figures.rows.push((ME.to_owned(), Some(alone)));

        let run_id = clock_seed() % 1_000_000;
        let team = {
            let authority = authority.clone();
            let bearer = bearer.clone();
            Arc::new(move |worker: usize, seq: u64| {
                let body =
                    format!(r#"{{"name":"bench-{run_id}-{worker}-{seq}","description":"bench"}}"#);
                post_json(&authority, "/api/v1/teams", &bearer, &body)
            }) as MakeRequest
        };
        // No warm-up of its own: the names must stay unique, and /users/me warmed the path.
        let teams = load(
            &authority,
            set.connections,
            Duration::from_secs(set.seconds),
            set.timeout,
            team,
        )?;
        print_line(TEAM, &teams);
        figures.rows.push((TEAM.to_owned(), Some(teams)));

        // The flood: 8 clients, each its own forwarded address, random unknown usernames.
        let (during, logins) = flood_during(set, &authority, me, "203.0.113")?;
        print_line(ME_FLOOD, &during);
        print_line(LOGIN_FLOOD, &logins);
        figures.rows.push((ME_FLOOD.to_owned(), Some(during)));
        figures.flood_logins = Some(logins);
        Ok(())
    }

    /// Runs `me` for `set.seconds` while 8 clients flood `POST /api/v1/auth/login` with random
    /// unknown usernames, each from its own forwarded address (`{net}.<client>`). Returns the
    /// figures of `me` during the flood and of the flood itself.
    fn flood_during(
        set: &Settings,
        authority: &str,
        me: MakeRequest,
        net: &'static str,
    ) -> Result<(Stats, Stats)> {
        let seed = clock_seed();
        let flood = {
            let authority = authority.to_owned();
            Arc::new(move |worker: usize, seq: u64| {
                let user = random(seed ^ ((worker as u64) << 40) ^ seq);
                let body = format!(
                    r#"{{"username":"nobody-{user:016x}","password":"not the password at all"}}"#
                );
                let from = format!("X-Forwarded-For: {net}.{}\r\n", worker + 1);
                post_json(&authority, "/api/v1/auth/login", &from, &body)
            }) as MakeRequest
        };
        let flood_thread = {
            let authority = authority.to_owned();
            let seconds = set.seconds;
            let timeout = set.timeout;
            std::thread::spawn(move || {
                load(
                    &authority,
                    FLOOD_CLIENTS,
                    Duration::from_secs(seconds) + Duration::from_millis(300),
                    timeout,
                    flood,
                )
            })
        };
        // Let the flood reach its steady state first.
        std::thread::sleep(Duration::from_millis(300));
        let during = load(
            authority,
            set.connections,
            Duration::from_secs(set.seconds),
            set.timeout,
            me,
        )?;
        let logins = flood_thread
            .join()
            .map_err(|_| anyhow::anyhow!("flood panicked"))??;
        Ok((during, logins))
    }

    /// The same flood against an app that keeps the DEFAULT login limits (every other limit
    /// raised as above): the login limiter runs before any password hash, so each flooding
    /// address gets its per-address allowance of hashes and then cheap 429s. This is the
    /// deployment's real defence; the figure above (login limits raised) shows the raw cost of
    /// argon2id on the machine's cores.
    fn defended_flood(set: &Settings, spin: &Path, root: &Path) -> Result<()> {
        const LOGIN_LIMITS: &[&str] = &[
            "rate_limit_login_per_minute",
            "rate_limit_login_per_hour",
            "rate_limit_login_ip_per_minute",
            "rate_limit_login_ip_per_hour",
            "rate_limit_login_user_per_hour",
        ];
        let mut started = Started::new(
            std::env::temp_dir().join(format!("streamspace-bench-defended-{}", std::process::id())),
        )?;
        let mut vars: Vec<(String, String)> = LIMITS
            .iter()
            .filter(|name| !LOGIN_LIMITS.contains(name))
            .map(|name| ((*name).to_owned(), "1000000".to_owned()))
            .collect();
        vars.push(("trusted_proxies".into(), "127.0.0.1/32".into()));
        let authority = start_spin(
            &mut started,
            spin,
            root,
            "spin.toml",
            None,
            &vars,
            "/health",
        )?;
        let (_, token) = admin_session(&authority)?;
        let me = get(
            &authority,
            "/api/v1/users/me",
            &format!("Authorization: Bearer {token}\r\n"),
        );
        let alone = set.measure(&authority, me.clone())?;
        let (during, logins) = flood_during(set, &authority, me, "198.51.100")?;
        println!("  with the default login limits (a separate app; every other limit raised):");
        print_line(ME, &alone);
        print_line(ME_FLOOD, &during);
        print_line(LOGIN_FLOOD, &logins);
        println!(
            "  /users/me keeps {:.0} % of its throughput during the flood under the default login limits",
            100.0 * during.per_second() / alone.per_second().max(f64::MIN_POSITIVE)
        );
        Ok(())
    }

    /// `req/s | p50 / p99 ms | share of the I/O floor | non-2xx (503s), unanswered, stall`.
    fn cell(stats: Option<&Stats>, floor: Option<&Stats>) -> String {
        let Some(s) = stats else {
            return "— | — | — | —".to_owned();
        };
        let share = floor
            .filter(|f| f.requests > 0)
            .map_or("—".to_owned(), |f| {
                format!("{:.0} %", 100.0 * s.per_second() / f.per_second())
            });
        let mut errors = format!("{} (503: {})", s.non_2xx, s.status(503));
        if s.timeouts + s.failed > 0 {
            errors.push_str(&format!(", {} unanswered", s.timeouts + s.failed));
        }
        if s.stalled() {
            errors.push_str(", **stalled**");
        }
        format!(
            "{:.0} | {:.1} / {:.0} | {share} | {errors}",
            s.per_second(),
            s.percentile(50.0),
            s.percentile(99.0),
        )
    }

    pub(super) fn run() -> Result<()> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let root = root.canonicalize().unwrap_or(root);
        let set = Settings {
            seconds: env_or("BENCH_SECONDS", 10),
            connections: env_or("BENCH_CONNECTIONS", 16),
            timeout: Duration::from_secs(env_or("BENCH_TIMEOUT", 10)),
        };
        let Some(spin) = find_spin(&root) else {
            println!("bench spin: no Spin CLI (BENCH_SPIN, ../shared/bin/spin or spin on PATH); nothing measured");
            return Ok(());
        };
        let sqld = find_sqld(&root);
        let version = Command::new(&spin)
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        let git = |args: &[&str]| {
            Command::new("git")
                .arg("-C")
                .arg(&root)
                .args(args)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_default()
        };
        let commit = git(&["rev-parse", "--short", "HEAD"]);
        let dirty = !git(&["status", "--porcelain", "--untracked-files=no"]).is_empty();
        println!(
            "tree: {commit}{}",
            if dirty { " + working tree" } else { "" }
        );
        println!(
            "bench spin: {} ({version}); {} keep-alive connections, {} s per figure, requests bounded by {} s; {} cores",
            spin.display(),
            set.connections,
            set.seconds,
            set.timeout.as_secs(),
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        let mut all = Vec::new();
        for backend in [Backend::Local, Backend::Libsql] {
            println!("{}:", backend.label());
            let mut figures = Figures::default();
            if backend == Backend::Libsql && sqld.is_none() {
                println!("  skipped: no sqld (BENCH_SQLD, ../shared/bin/sqld or sqld on PATH)");
                all.push((backend, figures));
                continue;
            }
            // A failure to start is reported and the rest still runs: the bench never fails.
            if let Err(err) = floors(&set, &mut figures, backend, &spin, &root, sqld.as_deref()) {
                println!("  floors not measured: {err:#}");
            }
            if let Err(err) = app(&set, &mut figures, backend, &spin, &root, sqld.as_deref()) {
                println!("  app not measured: {err:#}");
            }
            if backend == Backend::Local {
                if let Err(err) = defended_flood(&set, &spin, &root) {
                    println!("  defended flood not measured: {err:#}");
                }
            }
            all.push((backend, figures));
        }

        println!();
        println!("| Route | {} |", {
            all.iter()
                .map(|(b, _)| {
                    format!(
                        "{}: req/s | p50 / p99 ms | of I/O floor | non-2xx",
                        b.label()
                    )
                })
                .collect::<Vec<_>>()
                .join(" | ")
        });
        println!("|---|{}", "--:|--:|--:|---|".repeat(all.len()));
        for label in [HELLO, IO, VERSION, ME, TEAM, ME_FLOOD] {
            let cells: Vec<String> = all
                .iter()
                .map(|(_, f)| cell(f.get(label), f.get(IO)))
                .collect();
            println!("| {label} | {} |", cells.join(" | "));
        }
        let cells: Vec<String> = all
            .iter()
            .map(|(_, f)| cell(f.flood_logins.as_ref(), None))
            .collect();
        println!("| {LOGIN_FLOOD} | {} |", cells.join(" | "));
        println!();
        println!("(issue 11's targets on local SQLite, printed, never asserted: /users/me ≥ 90 % of the I/O floor with p99 ≤ 50 ms; during the flood ≥ 80 % of its throughput and no 503; on libSQL: no stall, no 503)");
        for (backend, f) in &all {
            if let (Some(me), Some(io)) = (f.get(ME), f.get(IO)) {
                println!(
                    "{}: /users/me is {:.0} % of the I/O floor (p99 {:.1} ms; the floor's {:.1} ms)",
                    backend.label(),
                    100.0 * me.per_second() / io.per_second().max(1e-9),
                    me.percentile(99.0),
                    io.percentile(99.0),
                );
            }
            if let (Some(alone), Some(during)) = (f.get(ME), f.get(ME_FLOOD)) {
                println!(
                    "{}: /users/me keeps {:.0} % of its throughput during the login flood (p99 {:.1} → {:.1} ms, 503s {} → {}); the flood got {:.1} logins/s through ({}); stalled: {}",
                    backend.label(),
                    100.0 * during.per_second() / alone.per_second().max(1e-9),
                    alone.percentile(99.0),
                    during.percentile(99.0),
                    alone.status(503),
                    during.status(503),
                    f.flood_logins.as_ref().map_or(0.0, Stats::per_second),
                    f.flood_logins.as_ref().map_or(String::new(), Stats::statuses_text),
                    if f.rows.iter().filter_map(|(_, s)| s.as_ref()).any(Stats::stalled)
                        || f.flood_logins.as_ref().is_some_and(Stats::stalled)
                    {
                        "yes"
                    } else {
                        "no"
                    },
                );
            }
        }
        Ok(())
    }

    /// `bench sessions` (`scripts/bench sessions`): issue 12's figures on one real `spin up` with a
    /// local SQLite file, every rate limit raised and an enterprise license (minted with the test
    /// key, `license_public_key` set to its public half) so admission is bounded by nothing but
    /// the quotas, which are raised too. Prints, in order: session create at `BENCH_CONNECTIONS`
    /// for `BENCH_SECONDS`; agent polls over 1,000 pending commands across 100 agents (seeded in
    /// the database file: leasing one per poll, ten per poll, then polls with nothing
    /// deliverable); `GET /api/v1/sessions` first and deep page (keyset cursor half way down)
    /// with 100,000 sessions in the org (seeded in the database file), at 1 and 16 connections.
    pub(super) mod sessions {
        use super::*;
        use std::sync::atomic::AtomicU64;

        const AGENTS: usize = 100;
        const COMMANDS_PER_AGENT: usize = 10;
        const LISTED: i64 = 100_000;
        pub(super) const PAGE_REQUESTS: u64 = 200;

        /// One request on `stream`; its status and body.
        pub(super) fn call(
            stream: &mut TcpStream,
            authority: &str,
            method: &str,
            path: &str,
            headers: &str,
            body: &str,
        ) -> Result<(u16, String)> {
            let request = format!(
                "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: streamspace-bench\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(request.as_bytes())?;
            let mut buf = Vec::new();
            let status = read_response(stream, &mut buf)?;
            let text = String::from_utf8_lossy(&buf);
            let body = text
                .split_once("\r\n\r\n")
                .map_or("", |(_, b)| b)
                .to_owned();
            Ok((status, body))
        }

        /// `call` that insists on `expected`.
        pub(super) fn expect(
            stream: &mut TcpStream,
            authority: &str,
            (method, path): (&str, &str),
            headers: &str,
            body: &str,
            expected: u16,
        ) -> Result<serde_json::Value> {
            let (status, text) = call(stream, authority, method, path, headers, body)?;
            if status != expected {
                bail!("{method} {path} answered {status}: {text}");
            }
            Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
        }

        fn text(v: &serde_json::Value, name: &str) -> Result<String> {
            v.get(name)
                .and_then(|s| s.as_str())
                .map(str::to_owned)
                .with_context(|| format!("no `{name}` in {v}"))
        }

        /// `total` requests made by `make(worker, n)` for n in 0..total, shared by `connections`
        /// keep-alive clients: every request is timed, none is cut off by a deadline.
        pub(super) fn fixed(
            authority: &str,
            connections: usize,
            total: u64,
            timeout: Duration,
            make: MakeRequest,
        ) -> Result<Stats> {
            let addr: SocketAddr = authority.parse().context("authority is ip:port")?;
            let next = Arc::new(AtomicU64::new(0));
            let started = Instant::now();
            let workers: Vec<_> = (0..connections)
                .map(|id| {
                    let next = next.clone();
                    let make = make.clone();
                    std::thread::spawn(move || {
                        let mut stats = Stats::default();
                        let mut stream: Option<TcpStream> = None;
                        let mut buf = Vec::with_capacity(64 * 1024);
                        loop {
                            let n = next.fetch_add(1, Ordering::Relaxed);
                            if n >= total {
                                break;
                            }
                            exchange(
                                &mut stream,
                                addr,
                                timeout,
                                &make(id, n),
                                &mut buf,
                                &mut stats,
                                started,
                            );
                        }
                        stats
                    })
                })
                .collect();
            let mut stats = Stats::default();
            for w in workers {
                stats.add(w.join().map_err(|_| anyhow::anyhow!("worker panicked"))?);
            }
            stats.elapsed = started.elapsed();
            stats.latencies_us.sort_unstable();
            Ok(stats)
        }

        /// `make`'s requests with `Connection: close`: at one connection, Spin's keep-alive
        /// answers wait ~40 ms on the client's delayed ACK (measured: `/health` 44 ms kept alive,
        /// 2 ms on a new connection), which would hide the server's own time.
        pub(super) fn fresh(make: MakeRequest) -> MakeRequest {
            Arc::new(move |worker: usize, n: u64| {
                make(worker, n).replacen("\r\n", "\r\nConnection: close\r\n", 1)
            })
        }

        /// 1 connection and `connections`, a new connection per request (see [`fresh`]), then
        /// `connections` kept alive.
        pub(super) fn page_figures(
            authority: &str,
            connections: usize,
            timeout: Duration,
            make: &MakeRequest,
        ) -> Result<Vec<(String, Stats)>> {
            fixed(authority, 1, 10, timeout, make.clone())?;
            Ok(vec![
                (
                    "1 conn., new per request".to_owned(),
                    fixed(authority, 1, PAGE_REQUESTS, timeout, fresh(make.clone()))?,
                ),
                (
                    format!("{connections} conn., new per request"),
                    fixed(
                        authority,
                        connections,
                        PAGE_REQUESTS,
                        timeout,
                        fresh(make.clone()),
                    )?,
                ),
                (
                    format!("{connections} conn. kept alive"),
                    fixed(authority, connections, PAGE_REQUESTS, timeout, make.clone())?,
                ),
            ])
        }

        pub(super) fn now_ms() -> i64 {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        }

        struct Agent {
            id: String,
            key: String,
        }

        fn poll(authority: &str, agents: Arc<Vec<Agent>>, limit: Option<u32>) -> MakeRequest {
            let authority = authority.to_owned();
            let limit = limit.map_or(String::new(), |l| format!("&limit={l}"));
            Arc::new(move |worker: usize, n: u64| {
                // Spread the workers over the agents: neighbours never poll the same agent.
                let a = &agents[(worker * 7 + n as usize * 13) % agents.len()];
                format!(
                    "GET /api/v1/agents/{id}/commands?agent_id={id}{limit} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: streamspace-bench\r\nx-agent-api-key: {key}\r\n\r\n",
                    id = a.id,
                    key = a.key
                )
            })
        }

        /// The n-th request leases from agent n % 100 (every agent in turn).
        fn poll_in_turn(
            authority: &str,
            agents: Arc<Vec<Agent>>,
            limit: Option<u32>,
        ) -> MakeRequest {
            let authority = authority.to_owned();
            let limit = limit.map_or(String::new(), |l| format!("&limit={l}"));
            Arc::new(move |_, n: u64| {
                let a = &agents[n as usize % agents.len()];
                format!(
                    "GET /api/v1/agents/{id}/commands?agent_id={id}{limit} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: streamspace-bench\r\nx-agent-api-key: {key}\r\n\r\n",
                    id = a.id,
                    key = a.key
                )
            })
        }

        pub(super) fn count(db: &rusqlite::Connection, sql: &str) -> Result<i64> {
            Ok(db.query_row(sql, [], |r| r.get(0))?)
        }

        pub(in super::super) fn run() -> Result<()> {
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
            let root = root.canonicalize().unwrap_or(root);
            let seconds: u64 = env_or("BENCH_SECONDS", 10);
            let connections: usize = env_or("BENCH_CONNECTIONS", 16);
            let timeout = Duration::from_secs(env_or("BENCH_TIMEOUT", 10));
            let Some(spin) = find_spin(&root) else {
                println!("bench sessions: no Spin CLI (BENCH_SPIN, ../shared/bin/spin or spin on PATH); nothing measured");
                return Ok(());
            };
            let version = Command::new(&spin)
                .arg("--version")
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_default();
            let mut started = Started::new(
                std::env::temp_dir()
                    .join(format!("streamspace-bench-sessions-{}", std::process::id())),
            )?;
            let mut vars: Vec<(String, String)> = LIMITS
                .iter()
                .map(|name| ((*name).to_owned(), "1000000".to_owned()))
                .collect();
            vars.push((
                "license_public_key".into(),
                shared::license::testing::PUBLIC.into(),
            ));
            let authority = start_spin(
                &mut started,
                &spin,
                &root,
                "spin.toml",
                None,
                &vars,
                "/health",
            )?;
            let db_path = started.dir.join("state/sqlite_db.db");
            println!(
                "bench sessions: {} ({version}) + local SQLite; {connections} keep-alive connections, {seconds} s per timed figure; {} cores",
                spin.display(),
                std::thread::available_parallelism().map_or(1, |n| n.get())
            );

            let (mut s, token) = super::admin_session(&authority)?;
            let bearer = format!("Authorization: Bearer {token}\r\n");

            // An enterprise license: no seat limit on sessions.
            let now_s = now_ms() / 1000;
            let key = shared::license::testing::mint(&serde_json::json!({
                "issuer": "StreamSpace bench", "licensee": "Bench", "tier": "enterprise",
                "issued_at": now_s - 60, "expires_at": now_s + 86_400}));
            let license = expect(
                &mut s,
                &authority,
                ("POST", "/api/v1/admin/license/activate"),
                &bearer,
                &serde_json::json!({ "license_key": key }).to_string(),
                200,
            );
            match &license {
                Ok(v) => println!("  license: {} (activated with the test key)", v["tier"]),
                Err(err) => println!("  license NOT activated ({err:#}): community seats (20 sessions) bound the create figure"),
            }
            expect(
                &mut s,
                &authority,
                ("PUT", "/api/v1/quotas/defaults"),
                &bearer,
                r#"{"max_sessions":10000,"max_cpu":"1000000m","max_memory":"9000Gi"}"#,
                200,
            )?;
            let template = call(
                &mut s,
                &authority,
                "POST",
                "/api/v1/templates",
                &bearer,
                r#"{"name":"bench","display_name":"Bench","base_image":"lscr.io/linuxserver/firefox:latest"}"#,
            )?;
            if template.0 != 201 {
                bail!(
                    "POST /api/v1/templates answered {}: {}",
                    template.0,
                    template.1
                );
            }

            let t = Instant::now();
            let mut agents = Vec::with_capacity(AGENTS);
            for i in 0..AGENTS {
                let v = expect(
                    &mut s,
                    &authority,
                    ("POST", "/api/v1/admin/agents"),
                    &bearer,
                    &format!(
                        r#"{{"name":"bench-agent-{i}","platform":"kubernetes","region":"bench"}}"#
                    ),
                    201,
                )?;
                let agent = Agent {
                    id: text(&v, "id")?,
                    key: text(&v, "api_key")?,
                };
                expect(
                    &mut s,
                    &authority,
                    (
                        "POST",
                        &format!("/api/v1/agents/register?agent_id={}", agent.id),
                    ),
                    &format!("x-agent-api-key: {}\r\n", agent.key),
                    r#"{"platform":"kubernetes","capacity":{"max_sessions":100000}}"#,
                    200,
                )?;
                agents.push(agent);
            }
            println!(
                "  {AGENTS} agents created and registered in {:.1} s",
                t.elapsed().as_secs_f64()
            );
            let agents = Arc::new(agents);
            let mut rows: Vec<(String, Stats)> = Vec::new();
            let mut record = |label: String, stats: Stats| {
                print_line(&label, &stats);
                rows.push((label, stats));
            };

            // The machine's state for reference: a cheap authenticated read, same connections.
            let me = get(&authority, "/api/v1/users/me", &bearer);
            for (how, stats) in page_figures(&authority, connections, timeout, &me)? {
                record(format!("reference: GET /api/v1/users/me ({how})"), stats);
            }

            // 1. Session create.
            let create = {
                let request = post_json(
                    &authority,
                    "/api/v1/sessions",
                    &bearer,
                    r#"{"template":"bench","resources":{"cpu":"100m","memory":"128Mi"}}"#,
                );
                Arc::new(move |_: usize, _: u64| request.clone()) as MakeRequest
            };
            fixed(&authority, 4, 20, timeout, create.clone())?;
            let alone = fixed(&authority, 1, PAGE_REQUESTS, timeout, fresh(create.clone()))?;
            record(
                format!(
                    "POST /api/v1/sessions (1 conn., new per request, {PAGE_REQUESTS} requests)"
                ),
                alone,
            );
            for (how, make) in [
                ("kept alive", create.clone()),
                ("new per request", fresh(create)),
            ] {
                let stats = load(
                    &authority,
                    connections,
                    Duration::from_secs(seconds),
                    timeout,
                    make,
                )?;
                record(
                    format!("POST /api/v1/sessions ({connections} conn. {how}, {seconds} s)"),
                    stats,
                );
            }

            let db = rusqlite::Connection::open(&db_path)
                .with_context(|| format!("{}", db_path.display()))?;
            db.busy_timeout(Duration::from_secs(30))?;
            let (org_id, user_id): (String, String) = db.query_row(
                "SELECT org_id, id FROM users WHERE username = ?1",
                [ADMIN],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let template_id: String = db.query_row(
                "SELECT id FROM templates WHERE org_id = ?1 AND name = 'bench'",
                [&org_id],
                |r| r.get(0),
            )?;
            let sessions_created = count(&db, "SELECT count(*) FROM sessions")?;
            println!("  sessions admitted: {sessions_created} (each with its start_session command in the same transaction)");

            // 2. Agent polls: the created sessions are started (as if their agents had done it),
            // their commands completed; then exactly 1,000 pending commands, 10 per agent.
            let now = now_ms();
            db.execute(
                "UPDATE sessions SET state = 'running', started_at = ?1, state_changed_at = ?1
                  WHERE state = 'pending'",
                [now],
            )?;
            db.execute(
                "UPDATE agent_commands SET status = 'completed', completed_at = ?1, updated_at = ?1
                  WHERE status IN ('pending', 'leased', 'acknowledged')",
                [now],
            )?;
            let seq0 = count(&db, "SELECT coalesce(max(seq), 0) FROM agent_commands")?;
            {
                let tx = db.unchecked_transaction()?;
                let mut insert = tx.prepare(
                    "INSERT INTO agent_commands (id, seq, org_id, agent_id, session_id, action,
                        payload, status, attempts, max_attempts, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, 'start_session', '{}', 'pending', 0, 5, ?6, ?6)",
                )?;
                let mut seq = seq0;
                for (a, agent) in agents.iter().enumerate() {
                    for c in 0..COMMANDS_PER_AGENT {
                        seq += 1;
                        insert.execute(rusqlite::params![
                            format!("bench-cmd-{a}-{c}"),
                            seq,
                            org_id,
                            agent.id,
                            format!("bench-cmd-session-{a}-{c}"),
                            now,
                        ])?;
                    }
                }
                drop(insert);
                tx.commit()?;
            }
            let seeded = (AGENTS * COMMANDS_PER_AGENT) as u64;
            let leased_sql =
                "SELECT count(*) FROM agent_commands WHERE id LIKE 'bench-cmd-%' AND status = 'leased'";
            let drain = fixed(
                &authority,
                connections,
                seeded,
                timeout,
                poll_in_turn(&authority, agents.clone(), Some(1)),
            )?;
            let leased = count(&db, leased_sql)?;
            record(
                format!("GET /agents/{{id}}/commands?limit=1, 1,000 pending → 0 ({leased} leased)"),
                drain,
            );
            db.execute(
                "UPDATE agent_commands SET status = 'pending', attempts = 0, lease_expires_at = NULL,
                        first_delivered_at = NULL
                  WHERE id LIKE 'bench-cmd-%'",
                [],
            )?;
            let tens = fixed(
                &authority,
                connections,
                AGENTS as u64,
                timeout,
                poll_in_turn(&authority, agents.clone(), None),
            )?;
            let leased = count(&db, leased_sql)?;
            record(
                format!("GET /agents/{{id}}/commands (limit 10), one per agent ({leased} leased)"),
                tens,
            );
            let idle = poll(&authority, agents.clone(), None);
            let alone = fixed(&authority, 1, PAGE_REQUESTS, timeout, fresh(idle.clone()))?;
            record(
                format!("GET /agents/{{id}}/commands, 1,000 leased, none due (1 conn., new per request, {PAGE_REQUESTS} requests)"),
                alone,
            );
            for (how, make) in [
                ("kept alive", idle.clone()),
                ("new per request", fresh(idle)),
            ] {
                let stats = load(
                    &authority,
                    connections,
                    Duration::from_secs(seconds),
                    timeout,
                    make,
                )?;
                record(
                    format!("GET /agents/{{id}}/commands, 1,000 leased, none due ({connections} conn. {how}, {seconds} s)"),
                    stats,
                );
            }

            // 3. GET /sessions with 100,000 sessions in the org (mostly running); first with the
            // sessions created above only, for the scaling.
            let few = count(&db, "SELECT count(*) FROM sessions")?;
            let make = get(&authority, "/api/v1/sessions?limit=50", &bearer);
            for (how, stats) in page_figures(&authority, connections, timeout, &make)? {
                record(
                    format!("GET /api/v1/sessions?limit=50 first page, {few} sessions ({how})"),
                    stats,
                );
            }
            let existing = count(&db, "SELECT count(*) FROM sessions")?;
            let t = Instant::now();
            {
                let tx = db.unchecked_transaction()?;
                let mut insert = tx.prepare(
                    "INSERT INTO sessions (id, org_id, user_id, name, template_id, template_name,
                        state, cpu, cpu_millicores, memory, memory_bytes, agent_id, created_at,
                        updated_at, state_changed_at, started_at, terminated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, 'bench', ?6, '100m', 100, '128Mi', 134217728, ?7,
                        ?8, ?8, ?8, ?9, ?10)",
                )?;
                for n in 0..(LISTED - existing).max(0) {
                    let state = match n % 20 {
                        0 => "terminated",
                        1 | 2 => "hibernated",
                        3 => "pending",
                        _ => "running",
                    };
                    let created = now - 1_000 - n * 1_000;
                    let id = format!("bench-list-{n:06}");
                    insert.execute(rusqlite::params![
                        id,
                        org_id,
                        user_id,
                        format!("bench-{n}"),
                        template_id,
                        state,
                        agents[n as usize % AGENTS].id,
                        created,
                        (state != "pending").then_some(created),
                        (state == "terminated").then_some(created + 500),
                    ])?;
                }
                drop(insert);
                tx.commit()?;
            }
            // Start from a checkpointed file, as a long-running deployment would be.
            db.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            let total = count(&db, "SELECT count(*) FROM sessions")?;
            let live = count(
                &db,
                "SELECT count(*) FROM sessions WHERE state NOT IN ('terminated', 'failed')",
            )?;
            println!(
                "  {total} sessions in the org ({live} not terminated), seeded in {:.1} s",
                t.elapsed().as_secs_f64()
            );
            let (deep_at, deep_id): (i64, String) = db.query_row(
                "SELECT created_at, id FROM sessions WHERE org_id = ?1
                    AND state NOT IN ('terminated', 'failed')
                  ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET ?2",
                rusqlite::params![org_id, live / 2],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let cursor = shared::pagination::encode_cursor(&(deep_at, deep_id))
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let first_path = "/api/v1/sessions?limit=50".to_owned();
            let deep_path = format!("/api/v1/sessions?limit=50&cursor={cursor}");
            for (what, path) in [("first page", &first_path), ("deep page", &deep_path)] {
                let v = expect(&mut s, &authority, ("GET", path), &bearer, "", 200)?;
                let items = v["items"].as_array().map_or(0, Vec::len);
                println!(
                    "  {what}: {items} items, next_cursor {}",
                    if v["next_cursor"].is_string() {
                        "present"
                    } else {
                        "absent"
                    }
                );
                let make = get(&authority, path, &bearer);
                for (how, stats) in page_figures(&authority, connections, timeout, &make)? {
                    record(
                        format!("GET /api/v1/sessions?limit=50 {what}, 100k ({how})"),
                        stats,
                    );
                }
            }

            println!();
            println!("| Figure (real Spin, local SQLite) | req/s | p50 ms | p99 ms | answered |");
            println!("|---|--:|--:|--:|---|");
            for (label, stats) in &rows {
                println!(
                    "| {label} | {:.0} | {:.2} | {:.2} | {} |",
                    stats.per_second(),
                    stats.percentile(50.0),
                    stats.percentile(99.0),
                    stats.statuses_text(),
                );
            }
            Ok(())
        }
    }

    /// `bench catalog` (`scripts/bench catalog`): issue 13's figures on one real `spin up` with a
    /// local SQLite file, every rate limit raised and GitHub played by the fixture server
    /// (`e2e::github_fixture`, pointed at with `github_api_url`/`github_raw_url` and their
    /// origins). Prints, in order: `GET /api/v1/templates` (first page, a common and a rare
    /// substring search, a tag filter) with 10,000 templates in the org (seeded in the database
    /// file), at 1 and `BENCH_CONNECTIONS` connections; then one full sync of a repository of 300
    /// manifests (wall time, API calls and raw fetches counted by the fixture, the sync's counts),
    /// an unchanged re-sync, a forced re-sync (the blob memo spares every fetch) and a re-sync
    /// after one file changed. Expectations are printed beside the figures, never asserted.
    pub(super) mod catalog {
        use super::sessions::{call, count, expect, now_ms, page_figures, PAGE_REQUESTS};
        use super::*;
        use e2e::github_fixture::{FixtureFile, GitHubFixture};

        const SEEDED: usize = 10_000;
        const MANIFESTS: usize = 300;
        const OWNER: &str = "bench";
        const REPO: &str = "catalog";
        const SECRET_KEY: &str = "8f4c1b2a9d0e7f6a5b4c3d2e1f00112233445566778899aabbccddeeff001122";

        /// (display name, slug, category, image, tags, blurb): the catalog's usual applications.
        type App = (
            &'static str,
            &'static str,
            &'static str,
            &'static str,
            &'static [&'static str],
            &'static str,
        );
        const APPS: &[App] = &[
            (
                "Firefox",
                "firefox",
                "Web Browsers",
                "lscr.io/linuxserver/firefox:latest",
                &["browser", "web", "mozilla"],
                "Mozilla's open-source web browser",
            ),
            (
                "Chromium",
                "chromium",
                "Web Browsers",
                "lscr.io/linuxserver/chromium:latest",
                &["browser", "web", "google"],
                "The open-source browser behind Chrome",
            ),
            (
                "Brave",
                "brave",
                "Web Browsers",
                "lscr.io/linuxserver/brave:latest",
                &["browser", "privacy"],
                "A privacy-first browser that blocks trackers",
            ),
            (
                "Code Server",
                "code-server",
                "Development",
                "lscr.io/linuxserver/code-server:latest",
                &["ide", "vscode", "development"],
                "VS Code in the browser",
            ),
            (
                "JupyterLab",
                "jupyterlab",
                "Data Science",
                "jupyter/datascience-notebook:latest",
                &["python", "notebook", "data"],
                "Notebooks for Python, R and Julia",
            ),
            (
                "RStudio",
                "rstudio",
                "Data Science",
                "rocker/rstudio:4.4",
                &["r", "statistics", "data"],
                "The IDE for R",
            ),
            (
                "DBeaver",
                "dbeaver",
                "Development",
                "lscr.io/linuxserver/dbeaver:latest",
                &["database", "sql", "development"],
                "A universal database tool",
            ),
            (
                "Postman",
                "postman",
                "Development",
                "kasmweb/postman:1.16.0",
                &["api", "http", "development"],
                "Build and test HTTP APIs",
            ),
            (
                "GIMP",
                "gimp",
                "Graphics",
                "lscr.io/linuxserver/gimp:latest",
                &["image", "editor", "graphics"],
                "The GNU image manipulation program",
            ),
            (
                "Inkscape",
                "inkscape",
                "Graphics",
                "lscr.io/linuxserver/inkscape:latest",
                &["vector", "svg", "graphics"],
                "Professional vector graphics",
            ),
            (
                "Krita",
                "krita",
                "Graphics",
                "lscr.io/linuxserver/krita:latest",
                &["painting", "graphics"],
                "Digital painting for artists",
            ),
            (
                "Blender",
                "blender",
                "3D",
                "lscr.io/linuxserver/blender:latest",
                &["3d", "modeling", "rendering"],
                "3D creation suite",
            ),
            (
                "FreeCAD",
                "freecad",
                "3D",
                "lscr.io/linuxserver/freecad:latest",
                &["cad", "3d", "engineering"],
                "Parametric 3D modeler",
            ),
            (
                "KiCad",
                "kicad",
                "Engineering",
                "lscr.io/linuxserver/kicad:latest",
                &["electronics", "pcb", "engineering"],
                "Electronics design automation",
            ),
            (
                "LibreOffice",
                "libreoffice",
                "Office",
                "lscr.io/linuxserver/libreoffice:latest",
                &["office", "documents"],
                "The free office suite",
            ),
            (
                "Thunderbird",
                "thunderbird",
                "Communication",
                "kasmweb/thunderbird:1.16.0",
                &["email", "mozilla"],
                "Email, calendar and chat",
            ),
            (
                "Obsidian",
                "obsidian",
                "Productivity",
                "lscr.io/linuxserver/obsidian:latest",
                &["notes", "markdown"],
                "A private knowledge base on local Markdown files",
            ),
            (
                "Kdenlive",
                "kdenlive",
                "Video",
                "lscr.io/linuxserver/kdenlive:latest",
                &["video", "editor"],
                "Non-linear video editing",
            ),
            (
                "Audacity",
                "audacity",
                "Audio",
                "lscr.io/linuxserver/audacity:latest",
                &["audio", "editor"],
                "Multi-track audio editing and recording",
            ),
            (
                "Darktable",
                "darktable",
                "Graphics",
                "lscr.io/linuxserver/darktable:latest",
                &["photo", "raw", "graphics"],
                "A photography workflow and raw developer",
            ),
        ];
        const EDITIONS: &[&str] = &["Stable", "LTS", "ESR", "Nightly", "Team"];
        const MEMORY: &[&str] = &["1Gi", "2Gi", "4Gi", "8Gi"];
        const CPU: &[&str] = &["500m", "1000m", "2000m"];

        /// Manifest `n` of the fixture repository (`revision` changes its display name).
        fn manifest_yaml(n: usize, revision: u32) -> (String, String) {
            let (display, slug, category, image, tags, blurb) = APPS[n % APPS.len()];
            let name = format!("{slug}-{n:03}");
            let edition = EDITIONS[n % EDITIONS.len()];
            let rev = if revision == 0 {
                String::new()
            } else {
                format!(" r{revision}")
            };
            let yaml = format!(
                "apiVersion: stream.space/v1alpha1\nkind: Template\nmetadata:\n  name: {name}\n  namespace: workspaces\nspec:\n  displayName: {display} {edition} {n}{rev}\n  description: {blurb} ({edition} build, catalog entry {n})\n  category: {category}\n  baseImage: {image}\n  defaultResources: {{memory: {}, cpu: {}}}\n  kasmvnc:\n    enabled: true\n    port: 3000\n  capabilities: [Network, Audio, Clipboard]\n  tags: [{}]\n",
                MEMORY[n % MEMORY.len()],
                CPU[n % CPU.len()],
                tags.join(", "),
            );
            let path = format!(
                "{}/{name}.yaml",
                category.to_ascii_lowercase().replace(' ', "-")
            );
            (path, yaml)
        }

        /// The fixture repository: `MANIFESTS` manifests in one directory per category, plus a
        /// README; `changed` (if any) at revision 1.
        fn repository(changed: Option<usize>) -> Vec<(String, FixtureFile)> {
            let mut files: Vec<(String, FixtureFile)> = (0..MANIFESTS)
                .map(|n| {
                    let (path, yaml) = manifest_yaml(n, u32::from(changed == Some(n)));
                    (
                        path,
                        FixtureFile {
                            content: yaml.into_bytes(),
                            mode: "100644",
                        },
                    )
                })
                .collect();
            files.push((
                "README.md".to_owned(),
                FixtureFile {
                    content: b"# Bench catalog\n".to_vec(),
                    mode: "100644",
                },
            ));
            files
        }

        fn publish(github: &GitHubFixture, files: &[(String, FixtureFile)]) {
            let refs: Vec<(&str, FixtureFile)> =
                files.iter().map(|(p, f)| (p.as_str(), f.clone())).collect();
            github.set_files(OWNER, REPO, "main", &refs);
        }

        /// Seeds `SEEDED` manual templates for the org, realistic in shape: names
        /// `<app>-<n>`, display names "<App> <Edition> <n>", descriptions naming a team
        /// (`team-042`: 10 templates each), the app's tags.
        fn seed_templates(db: &rusqlite::Connection, org_id: &str, user_id: &str) -> Result<()> {
            let now = now_ms();
            let tx = db.unchecked_transaction()?;
            let mut insert = tx.prepare(
                "INSERT INTO templates (id, org_id, name, display_name, description, category,
                    app_type, icon_url, base_image, default_cpu, default_memory, streaming_protocol,
                    streaming_port, streaming_path, manifest, manifest_sha256, tags, enabled,
                    source, install_count, created_by, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, '', ?8, ?9, ?10, 'vnc', 3000, '', ?11, ?12,
                    ?13, 1, 'manual', ?14, ?15, ?16, ?16)",
            )?;
            for n in 0..SEEDED {
                let (display, slug, category, image, tags, blurb) = APPS[n % APPS.len()];
                let edition = EDITIONS[(n / APPS.len()) % EDITIONS.len()];
                let name = format!("{slug}-{n:05}");
                let display_name = format!("{display} {edition} {n}");
                let description = format!(
                    "{blurb}. {edition} image maintained by team-{:03} for the {} department.",
                    n % 1000,
                    ["research", "design", "finance", "support", "platform"][n % 5]
                );
                let app_type = if n % 5 == 4 { "webapp" } else { "desktop" };
                let (cpu, memory) = (CPU[n % CPU.len()], MEMORY[n % MEMORY.len()]);
                let manifest = serde_json::json!({
                    "apiVersion": "stream.space/v1alpha1",
                    "kind": "Template",
                    "metadata": {"name": name},
                    "spec": {
                        "displayName": display_name, "description": description,
                        "category": category, "appType": app_type, "baseImage": image,
                        "defaultResources": {"cpu": cpu, "memory": memory},
                        "capabilities": ["Network", "Audio", "Clipboard"],
                        "tags": tags,
                    }
                })
                .to_string();
                insert.execute(rusqlite::params![
                    format!("bench-tpl-{n:05}"),
                    org_id,
                    name,
                    display_name,
                    description,
                    category,
                    app_type,
                    image,
                    cpu,
                    memory,
                    manifest,
                    format!("{:064x}", random(n as u64)),
                    serde_json::to_string(tags)?,
                    (n % 97) as i64,
                    user_id,
                    now - (n as i64) * 1_000,
                ])?;
            }
            drop(insert);
            tx.commit()?;
            Ok(())
        }

        /// One sync's figures.
        struct SyncRow {
            label: &'static str,
            expected: &'static str,
            wall_ms: f64,
            api: usize,
            raw: usize,
            result: serde_json::Value,
        }

        fn sync(
            authority: &str,
            bearer: &str,
            github: &GitHubFixture,
            repo_id: &str,
            query: &str,
        ) -> Result<(f64, usize, usize, serde_json::Value)> {
            github.reset_counts();
            let mut s = TcpStream::connect(authority)?;
            s.set_read_timeout(Some(Duration::from_secs(120)))?;
            let path = format!("/api/v1/catalog/repositories/{repo_id}/sync{query}");
            let t = Instant::now();
            let (status, body) = call(&mut s, authority, "POST", &path, bearer, "{}")?;
            let wall = t.elapsed().as_secs_f64() * 1000.0;
            if status != 200 {
                bail!("POST {path} answered {status}: {body}");
            }
            let v: serde_json::Value = serde_json::from_str(&body)?;
            Ok((wall, github.api_calls(), github.raw_fetches().len(), v))
        }

        pub(in super::super) fn run() -> Result<()> {
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
            let root = root.canonicalize().unwrap_or(root);
            let connections: usize = env_or("BENCH_CONNECTIONS", 16);
            let timeout = Duration::from_secs(env_or("BENCH_TIMEOUT", 10));
            let Some(spin) = find_spin(&root) else {
                println!("bench catalog: no Spin CLI (BENCH_SPIN, ../shared/bin/spin or spin on PATH); nothing measured");
                return Ok(());
            };
            let version = Command::new(&spin)
                .arg("--version")
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_default();
            let github = GitHubFixture::start()?;
            publish(&github, &repository(None));
            let origin = github.origin();
            let mut started = Started::new(
                std::env::temp_dir()
                    .join(format!("streamspace-bench-catalog-{}", std::process::id())),
            )?;
            let mut vars: Vec<(String, String)> = LIMITS
                .iter()
                .map(|name| ((*name).to_owned(), "1000000".to_owned()))
                .collect();
            for name in [
                "github_api_url",
                "github_raw_url",
                "github_api_origin",
                "github_raw_origin",
            ] {
                vars.push((name.to_owned(), origin.clone()));
            }
            vars.push(("repository_secret_key".into(), SECRET_KEY.into()));
            let authority = start_spin(
                &mut started,
                &spin,
                &root,
                "spin.toml",
                None,
                &vars,
                "/health",
            )?;
            let db_path = started.dir.join("state/sqlite_db.db");
            println!(
                "bench catalog: {} ({version}) + local SQLite, GitHub played by the fixture at {origin}; {} cores",
                spin.display(),
                std::thread::available_parallelism().map_or(1, |n| n.get())
            );

            let (mut s, token) = super::admin_session(&authority)?;
            let bearer = format!("Authorization: Bearer {token}\r\n");
            // One template through the API: the schema exists, and the API's row is the shape
            // the seeded ones follow.
            expect(
                &mut s,
                &authority,
                ("POST", "/api/v1/templates"),
                &bearer,
                r#"{"name":"bench","display_name":"Bench","base_image":"lscr.io/linuxserver/firefox:latest"}"#,
                201,
            )?;

            // 1. Template list with 10,000 templates.
            let db = rusqlite::Connection::open(&db_path)
                .with_context(|| format!("{}", db_path.display()))?;
            db.busy_timeout(Duration::from_secs(30))?;
            let (org_id, user_id): (String, String) = db.query_row(
                "SELECT org_id, id FROM users WHERE username = ?1",
                [ADMIN],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let t = Instant::now();
            seed_templates(&db, &org_id, &user_id)?;
            db.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            println!(
                "  {} templates in the org, seeded in {:.1} s",
                count(&db, "SELECT count(*) FROM templates")?,
                t.elapsed().as_secs_f64()
            );
            let mut rows: Vec<(String, Stats)> = Vec::new();
            let mut record = |label: String, stats: Stats| {
                print_line(&label, &stats);
                rows.push((label, stats));
            };
            let me = get(&authority, "/api/v1/users/me", &bearer);
            for (how, stats) in page_figures(&authority, connections, timeout, &me)? {
                record(format!("reference: GET /api/v1/users/me ({how})"), stats);
            }
            let lists = [
                ("first page (by name)", "/api/v1/templates?limit=50"),
                (
                    "q=inkscape (500 match)",
                    "/api/v1/templates?limit=50&q=inkscape",
                ),
                (
                    "q=team-042 (10 match)",
                    "/api/v1/templates?limit=50&q=team-042",
                ),
                (
                    "tag=browser (1,500 match)",
                    "/api/v1/templates?limit=50&tag=browser",
                ),
                (
                    "q=firefox&tag=mozilla (500 match)",
                    "/api/v1/templates?limit=50&q=firefox&tag=mozilla",
                ),
            ];
            for (what, path) in lists {
                let v = expect(&mut s, &authority, ("GET", path), &bearer, "", 200)?;
                let items = v["items"].as_array().map_or(0, Vec::len);
                println!(
                    "  {path}: {items} items, next_cursor {}",
                    if v["next_cursor"].is_string() {
                        "present"
                    } else {
                        "absent"
                    }
                );
                let make = get(&authority, path, &bearer);
                for (how, stats) in page_figures(&authority, connections, timeout, &make)? {
                    record(
                        format!("GET /templates?limit=50 {what}, 10k ({how})"),
                        stats,
                    );
                }
            }

            // 2-4. The catalog repository's syncs.
            let created = expect(
                &mut s,
                &authority,
                ("POST", "/api/v1/catalog/repositories"),
                &bearer,
                &serde_json::json!({"name": "Bench catalog", "url": format!("https://github.com/{OWNER}/{REPO}")}).to_string(),
                201,
            )?;
            let repo_id = created["id"]
                .as_str()
                .context("repository without id")?
                .to_owned();
            let mut syncs: Vec<SyncRow> = Vec::new();
            let mut run_sync = |label: &'static str,
                                expected: &'static str,
                                query: &str|
             -> Result<()> {
                let (wall_ms, api, raw, body) =
                    sync(&authority, &bearer, &github, &repo_id, query)?;
                let result = body["result"].clone();
                println!(
                    "  {label}: {wall_ms:.0} ms, {api} API calls, {raw} raw fetches, status {}, added {} updated {} unchanged {} removed {}, {} warnings",
                    result["status"], result["added"], result["updated"], result["unchanged"],
                    result["removed"], result["warnings"].as_array().map_or(0, Vec::len)
                );
                syncs.push(SyncRow {
                    label,
                    expected,
                    wall_ms,
                    api,
                    raw,
                    result,
                });
                Ok(())
            };
            run_sync("full sync, 300 manifests", "2 API, 300 raw, added 300", "")?;
            let catalog = count(&db, "SELECT count(*) FROM catalog_templates")?;
            println!("  catalog_templates rows: {catalog}");
            run_sync("re-sync, nothing changed", "≤ 2 API, 0 raw", "")?;
            run_sync(
                "forced re-sync (?force=true)",
                "2 API, 0 raw (memo), unchanged 300",
                "?force=true",
            )?;
            publish(&github, &repository(Some(7)));
            run_sync("re-sync, one file changed", "2 API, 1 raw, updated 1", "")?;

            println!();
            println!(
                "| Figure (real Spin, local SQLite, {PAGE_REQUESTS} requests each) | req/s | p50 ms | p99 ms | answered |"
            );
            println!("|---|--:|--:|--:|---|");
            for (label, stats) in &rows {
                println!(
                    "| {label} | {:.0} | {:.2} | {:.2} | {} |",
                    stats.per_second(),
                    stats.percentile(50.0),
                    stats.percentile(99.0),
                    stats.statuses_text(),
                );
            }
            println!();
            println!("| Sync (fixture GitHub on loopback) | wall ms | API calls | raw fetches | status | added / updated / unchanged / removed | expected |");
            println!("|---|--:|--:|--:|---|---|---|");
            for r in &syncs {
                println!(
                    "| {} | {:.0} | {} | {} | {} | {} / {} / {} / {} | {} |",
                    r.label,
                    r.wall_ms,
                    r.api,
                    r.raw,
                    r.result["status"].as_str().unwrap_or("?"),
                    r.result["added"],
                    r.result["updated"],
                    r.result["unchanged"],
                    r.result["removed"],
                    r.expected,
                );
            }
            drop(github);
            Ok(())
        }
    }
}
